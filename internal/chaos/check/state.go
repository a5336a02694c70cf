package check

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// state is what an instance's data says about the events applied to it,
// parsed once.
type state struct {
	events int64
	items  []int  // n of every "e<n>" item, ascending
	seq    string // the "seq" item as stored, "" when absent
	// extra holds the keys and values of the items not shaped like the
	// workload's ("seq" or "e<n>" with a number), where a poison event's ID
	// would show if it were applied.
	extra []byte
}

func parse(in *Instance) state {
	st := state{events: in.Events, items: make([]int, 0, len(in.Data))}
	for k, v := range in.Data {
		v = bytes.TrimSpace(v)
		number := isNumber(v)
		n, isItem := itemNumber(k)
		switch {
		case isItem:
			st.items = append(st.items, n)
		case k == "seq":
			st.seq = string(v)
		}
		if !number || !isItem && k != "seq" {
			st.extra = append(st.extra, k...)
			st.extra = append(st.extra, 0)
			st.extra = append(st.extra, v...)
			st.extra = append(st.extra, 0)
		}
	}
	slices.Sort(st.items)
	return st
}

func (st *state) has(n int) bool {
	_, ok := slices.BinarySearch(st.items, n)
	return ok
}

// surplus is how many more events were applied than there are distinct
// items: the applications of an event beyond its first.
func (st *state) surplus() int64 { return st.events - int64(len(st.items)) }

// orderProblem says why the "seq" item is not the largest n among the
// "e<n>" items, or returns "" when it is.
func (st *state) orderProblem() string {
	if len(st.items) == 0 {
		if st.seq == "" {
			return ""
		}
		return fmt.Sprintf("item seq = %s but no e<n> item", st.seq)
	}
	last := st.items[len(st.items)-1]
	if st.seq == "" {
		return fmt.Sprintf("no item seq, though %s is present", itemKey(last))
	}
	seq, ok := integer([]byte(st.seq))
	if !ok {
		return fmt.Sprintf("item seq = %s is not an integer", st.seq)
	}
	if seq != last {
		return fmt.Sprintf("item seq = %d but the latest item is %s: event %d was applied after a later one", seq, itemKey(last), seq)
	}
	return ""
}

// itemNumber returns n for a key "e<n>" with n ≥ 1 written as EventData
// writes it (no sign, no leading zero).
func itemNumber(k string) (int, bool) {
	if len(k) < 2 || k[0] != 'e' || k[1] < '1' || k[1] > '9' {
		return 0, false
	}
	for i := 2; i < len(k); i++ {
		if k[i] < '0' || k[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(k[1:])
	return n, err == nil
}

// isNumber says v looks like a JSON number. It need not be exact: it only
// decides which items are searched for poison IDs.
func isNumber(v []byte) bool {
	if len(v) == 0 || v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return false
	}
	for _, b := range v {
		if (b < '0' || b > '9') && b != '-' && b != '+' && b != '.' && b != 'e' && b != 'E' {
			return false
		}
	}
	return true
}

// integer parses a JSON number holding an integer, such as 3 or 3.0.
func integer(v []byte) (int, bool) {
	if n, err := strconv.Atoi(string(v)); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int(f), true
}

// missingFrom returns an element of a, ascending, that b lacks.
func missingFrom(a, b []int) (int, bool) {
	j := 0
	for _, n := range a {
		for j < len(b) && b[j] < n {
			j++
		}
		if j == len(b) || b[j] != n {
			return n, true
		}
	}
	return 0, false
}

// matcher finds a set of IDs inside byte strings, as whole words: an ID
// counts only where neither neighbour could continue it (a letter, digit,
// '-', '_' or '.'), so that "p-1" is not found inside "p-10". It looks up
// every window of each distinct ID length, so a search costs the length of
// the text times the number of distinct lengths, whatever the number of IDs.
type matcher struct {
	ids  map[string][]int // ID → indices of the IDs given to newMatcher
	lens []int            // the distinct lengths of the IDs
}

func newMatcher(ids []string) *matcher {
	m := &matcher{ids: make(map[string][]int, len(ids))}
	for i, id := range ids {
		if id == "" {
			continue // found nowhere, rather than everywhere
		}
		if _, ok := m.ids[id]; !ok && !slices.Contains(m.lens, len(id)) {
			m.lens = append(m.lens, len(id))
		}
		m.ids[id] = append(m.ids[id], i)
	}
	return m
}

// each calls fn with the index of every ID found in text, possibly more
// than once.
func (m *matcher) each(text []byte, fn func(int)) {
	for _, l := range m.lens {
		for i := 0; i+l <= len(text); i++ {
			if i > 0 && wordByte(text[i-1]) || i+l < len(text) && wordByte(text[i+l]) {
				continue
			}
			for _, j := range m.ids[string(text[i:i+l])] {
				fn(j)
			}
		}
	}
}

func wordByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
}
