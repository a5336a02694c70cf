package chaos

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// TestWriterBatches checks the workload's contract with the checker: each
// instance's events come in order, begin first and end last, all with the
// instance's time, each decodes, and poison events never do.
func TestWriterBatches(t *testing.T) {
	src := store.Source{Name: "buf1", Kind: store.KindBuffer, Partitions: 4}
	w := newWriter("buf1-w1", src, 7, 0.5, &history{}, &load{})
	next := map[string]int{}
	times := map[string]time.Time{}
	ended := map[string]bool{}
	poison := 0
	for range 200 {
		evs, payloads := w.batch(6)
		if len(evs) != len(payloads) {
			t.Fatalf("%d events, %d payloads", len(evs), len(payloads))
		}
		seen := map[string]bool{}
		for i, e := range evs {
			ev, err := event.Decode(payloads[i], time.Now(), 0)
			if e.Poison {
				poison++
				if err == nil {
					t.Fatalf("poison event %s decodes: %s", e.ID, payloads[i])
				}
				if !bytes.Contains(payloads[i], []byte(e.ID)) {
					t.Fatalf("poison payload %s does not hold its id %s", payloads[i], e.ID)
				}
				continue
			}
			if err != nil {
				t.Fatalf("event %s: %v: %s", e.ID, err, payloads[i])
			}
			if seen[e.Instance] {
				t.Fatalf("two events of %s in one batch", e.Instance)
			}
			seen[e.Instance] = true
			if ended[e.Instance] {
				t.Fatalf("event %s after the instance's end", e.ID)
			}
			if e.Seq != next[e.Instance]+1 {
				t.Fatalf("%s: seq %d after %d", e.Instance, e.Seq, next[e.Instance])
			}
			next[e.Instance] = e.Seq
			if (e.Seq == 1) != (ev.Kind == event.Begin) {
				t.Fatalf("%s: kind %s at seq %d", e.ID, ev.Kind, e.Seq)
			}
			if t0, ok := times[e.Instance]; ok && !t0.Equal(ev.Time) {
				t.Fatalf("%s: time %v, the instance's first event had %v", e.ID, ev.Time, t0)
			}
			times[e.Instance] = ev.Time
			if ev.Kind == event.End {
				ended[e.Instance] = true
			}
			if string(ev.Data["seq"]) == "" || ev.Data["e"+strconv.Itoa(e.Seq)] == nil {
				t.Fatalf("%s: data %v lacks seq and e%d", e.ID, ev.Data, e.Seq)
			}
		}
	}
	if poison < 50 || len(ended) < 50 {
		t.Fatalf("200 batches made %d poison events and ended %d instances", poison, len(ended))
	}
}

// TestClaimLog reads claims from a node's JSON log lines and copies every
// line through.
func TestClaimLog(t *testing.T) {
	in := strings.Join([]string{
		`{"time":"2026-11-25T21:00:00.5Z","level":"INFO","msg":"session claimed","node":"a1","source":"buf1","partition":2,"epoch":7,"checkpoint":"0/5"}`,
		`{"time":"2026-11-25T21:00:01Z","level":"INFO","msg":"session taken over from a dead node","node":"b2","source":"obx2","partition":0,"epoch":3,"from":"a1"}`,
		`{"time":"2026-11-25T21:00:02Z","level":"WARN","msg":"batch failed; retrying","node":"b2"}`,
		`not json at all`,
	}, "\n") + "\n"
	var c claimLog
	var out bytes.Buffer
	c.scan(strings.NewReader(in), &out)
	if out.String() != in {
		t.Fatalf("copied %q, want %q", out.String(), in)
	}
	claims, lines := c.snapshot()
	if len(claims) != 2 {
		t.Fatalf("claims %+v, want 2", claims)
	}
	if got := claims[0]; got.Session != "buf1/2" || got.Node != "a1" || got.Epoch != 7 || got.At.Second() != 0 || got.At.Nanosecond() != 5e8 {
		t.Fatalf("first claim %+v", got)
	}
	if got := claims[1]; got.Session != "obx2/0" || got.Node != "b2" || got.Epoch != 3 {
		t.Fatalf("second claim %+v", got)
	}
	if lines["batch failed; retrying"] != 1 || lines["session claimed"] != 1 {
		t.Fatalf("line counts %v", lines)
	}
}

func TestOwnerSamples(t *testing.T) {
	at := time.Now()
	got := ownerSamples([]store.Session{
		{SessionID: store.SessionID{Source: "a", Partition: 1}, SourceEnabled: true, Owner: "n1", Epoch: 4, LeaseRemaining: time.Second},
		{SessionID: store.SessionID{Source: "a", Partition: 2}, SourceEnabled: true, Owner: "n1", Epoch: 2, LeaseRemaining: -time.Second},
		{SessionID: store.SessionID{Source: "a", Partition: 3}, SourceEnabled: true},
		{SessionID: store.SessionID{Source: "off", Partition: 0}, SourceEnabled: false, Owner: "n2"},
	}, at)
	if len(got) != 3 {
		t.Fatalf("%d samples, want 3 (a disabled source's sessions are left out)", len(got))
	}
	if !got[0].Live || got[1].Live || got[2].Live || got[0].Session != "a/1" || got[1].Epoch != 2 {
		t.Fatalf("samples %+v", got)
	}
}
