package check

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Track tells the events of an instance's own segment (Main) from those of
// its continuation (Cont), which go through another partition and so may
// arrive in any order relative to the instance's: each track has its own
// items and its own order.
type Track int

const (
	Main Track = iota // items "e<n>" and "seq"
	Cont              // items "c<n>" and "cseq"
)

var (
	trackPrefix = [...]byte{Main: 'e', Cont: 'c'}
	trackSeq    = [...]string{Main: "seq", Cont: "cseq"}
)

// track is what one track's items say.
type track struct {
	items []int  // n of every "<prefix><n>" item, ascending
	seq   string // the track's seq item as stored, "" when absent
}

// state is what an instance's data says about the events applied to it,
// parsed once.
type state struct {
	events int64
	tracks [2]track
	// extra holds the keys and values of the items not shaped like the
	// workload's (a track's seq or item with a number), where a poison
	// event's ID would show if it were applied.
	extra []byte
}

func parse(in *Instance) state {
	st := state{events: in.Events}
	st.tracks[Main].items = make([]int, 0, len(in.Data))
	for k, v := range in.Data {
		v = bytes.TrimSpace(v)
		number := isNumber(v)
		t, n, isItem := itemNumber(k)
		isSeq := k == trackSeq[Main] || k == trackSeq[Cont]
		switch {
		case isItem:
			st.tracks[t].items = append(st.tracks[t].items, n)
		case k == trackSeq[Main]:
			st.tracks[Main].seq = string(v)
		case k == trackSeq[Cont]:
			st.tracks[Cont].seq = string(v)
		}
		if !number || !isItem && !isSeq {
			st.extra = append(st.extra, k...)
			st.extra = append(st.extra, 0)
			st.extra = append(st.extra, v...)
			st.extra = append(st.extra, 0)
		}
	}
	for t := range st.tracks {
		slices.Sort(st.tracks[t].items)
	}
	return st
}

func (st *state) has(t Track, n int) bool {
	_, ok := slices.BinarySearch(st.tracks[t].items, n)
	return ok
}

// distinct counts the distinct items of both tracks.
func (st *state) distinct() int64 {
	return int64(len(st.tracks[Main].items) + len(st.tracks[Cont].items))
}

// surplus is how many more events were applied than there are distinct
// items and events that set none (at most itemless of them were
// written): the applications of an event beyond its first.
func (st *state) surplus(itemless int) int64 { return st.events - st.distinct() - int64(itemless) }

// orderProblem says why a track's seq item is not the largest n among its
// items, or returns "" when it is so on both tracks.
func (st *state) orderProblem() string {
	for t := range st.tracks {
		if why := st.tracks[t].orderProblem(Track(t)); why != "" {
			return why
		}
	}
	return ""
}

func (tr *track) orderProblem(t Track) string {
	name := trackSeq[t]
	if len(tr.items) == 0 {
		if tr.seq == "" {
			return ""
		}
		return fmt.Sprintf("item %s = %s but no %c<n> item", name, tr.seq, trackPrefix[t])
	}
	last := tr.items[len(tr.items)-1]
	if tr.seq == "" {
		return fmt.Sprintf("no item %s, though %s is present", name, itemKey(t, last))
	}
	seq, ok := integer([]byte(tr.seq))
	if !ok {
		return fmt.Sprintf("item %s = %s is not an integer", name, tr.seq)
	}
	if seq != last {
		return fmt.Sprintf("item %s = %d but the latest item is %s: event %d was applied after a later one", name, seq, itemKey(t, last), seq)
	}
	return ""
}

// itemNumber returns the track and n of a key "e<n>" or "c<n>" with n ≥ 1
// written as EventData writes it (no sign, no leading zero).
func itemNumber(k string) (Track, int, bool) {
	if len(k) < 2 || k[1] < '1' || k[1] > '9' {
		return 0, 0, false
	}
	t := Main
	switch k[0] {
	case trackPrefix[Main]:
	case trackPrefix[Cont]:
		t = Cont
	default:
		return 0, 0, false
	}
	for i := 2; i < len(k); i++ {
		if k[i] < '0' || k[i] > '9' {
			return 0, 0, false
		}
	}
	n, err := strconv.Atoi(k[1:])
	return t, n, err == nil
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
