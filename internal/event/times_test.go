package event

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStoredTime(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`"2026-11-25T10:02:43Z"`, `"2026-11-25T10:02:43.000000Z"`},
		{`"2026-11-25T10:02:43.5131Z"`, `"2026-11-25T10:02:43.513100Z"`},
		{`"2026-11-25T10:02:43.123456789Z"`, `"2026-11-25T10:02:43.123456Z"`}, // truncated, as event times
		{`"2026-11-25T10:02:43.9999999Z"`, `"2026-11-25T10:02:43.999999Z"`},   // never rounded into the next second
		{`"2026-11-25T12:02:43.5+02:00"`, `"2026-11-25T10:02:43.500000Z"`},
		{`"2026-11-25T00:30:00-01:30"`, `"2026-11-25T02:00:00.000000Z"`},
		{`"2026-01-01T00:30:00+01:00"`, `"2025-12-31T23:30:00.000000Z"`},
		{`"2026-11-25T10:02:43.000000Z"`, `"2026-11-25T10:02:43.000000Z"`},
		// Not a time in the shape: as it is.
		{`"2026-11-25 10:02:43Z"`, `"2026-11-25 10:02:43Z"`},
		{`"2026-11-25T10:02:43"`, `"2026-11-25T10:02:43"`},
		{`"2026-11-25T10:02:43z"`, `"2026-11-25T10:02:43z"`},
		{`"2026-11-25T10:02:43.Z"`, `"2026-11-25T10:02:43.Z"`},
		{`"2026-11-25T10:02:43.1234567890Z"`, `"2026-11-25T10:02:43.1234567890Z"`},
		{`"2026-11-25T10:02:43,5Z"`, `"2026-11-25T10:02:43,5Z"`},
		{`"2026-02-30T10:02:43Z"`, `"2026-02-30T10:02:43Z"`},
		{`"2026-11-25T24:00:00Z"`, `"2026-11-25T24:00:00Z"`},
		{`"2026-11-25T10:02:60Z"`, `"2026-11-25T10:02:60Z"`},
		{`"2026-11-25T10:02:43+24:00"`, `"2026-11-25T10:02:43+24:00"`},
		{`"2026-11-25T10:02:43\u005a"`, `"2026-11-25T10:02:43\u005a"`}, // escaped: left alone
		{`"2026-11-25"`, `"2026-11-25"`},
		{`"hello"`, `"hello"`},
		{`20261125`, `20261125`},
		{`true`, `true`},
		{`""`, `""`},
	} {
		if got := string(StoredTime(json.RawMessage(c.in))); got != c.want {
			t.Errorf("StoredTime(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestStoredTimesSortAsTimes: whatever form writers use, stored times in
// text order are in time order (issue 9: the SDK's trimmed …43Z sorted
// after …43.5Z).
func TestStoredTimesSortAsTimes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 8))
	base := time.Date(2026, 11, 25, 10, 2, 43, 0, time.UTC)
	zones := []*time.Location{time.UTC, time.FixedZone("", 2*3600), time.FixedZone("", -(5*3600 + 30*60))}
	var times []time.Time
	var stored []string
	for range 2000 {
		tm := base.Add(time.Duration(r.Int64N(int64(3 * time.Second)))).Truncate(time.Duration(1 + r.IntN(3)*999_999)) // whole seconds, micros, and finer
		tm = tm.Truncate(time.Microsecond)
		in, _ := json.Marshal(tm.In(zones[r.IntN(len(zones))]).Format(time.RFC3339Nano))
		out := StoredTime(in)
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatal(err)
		}
		if len(s) != len(StoredTimeLayout) {
			t.Fatalf("stored %s has width %d, want %d", s, len(s), len(StoredTimeLayout))
		}
		times = append(times, tm)
		stored = append(stored, s)
	}
	idx := make([]int, len(times))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(stored[a], stored[b]) })
	for k := 1; k < len(idx); k++ {
		if times[idx[k]].Before(times[idx[k-1]]) {
			t.Fatalf("in text order %s (%v) comes after %s (%v)", stored[idx[k]], times[idx[k]], stored[idx[k-1]], times[idx[k-1]])
		}
	}
}

// TestCoalesceStoresTimesInOneForm: the items a store writes hold times in
// the stored form.
func TestCoalesceStoresTimesInOneForm(t *testing.T) {
	ev := Event{Activity: "PO", Instance: "1", Kind: Update, Time: time.Unix(1, 0),
		Data: map[string]json.RawMessage{"Approved": json.RawMessage(`"2026-11-25T10:02:43Z"`), "Note": json.RawMessage(`"x"`)}}
	d := Coalesce([]Event{ev})[0]
	if got := string(d.Items["Approved"].Value); got != `"2026-11-25T10:02:43.000000Z"` {
		t.Errorf("Approved stored as %s", got)
	}
	if got := string(d.Items["Note"].Value); got != `"x"` {
		t.Errorf("Note stored as %s", got)
	}
}

func BenchmarkStoredTime(b *testing.B) {
	for _, v := range []string{`"2026-11-25T10:02:43.5131Z"`, `"ACME Corp"`, `1200`} {
		b.Run(v, func(b *testing.B) {
			raw := json.RawMessage(v)
			for b.Loop() {
				StoredTime(raw)
			}
		})
	}
}
