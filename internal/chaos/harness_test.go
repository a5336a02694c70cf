package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/chaos/check"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testpg"
)

// TestWriterBatches checks the workload's contract with the checker: each
// track of an instance (its own events, its continuation's) comes in order,
// one event a batch, the instance's begin first and each track's end last,
// all with the instance's time; enable-continuation and relate come with
// the begin; every event decodes, fits the workload's definition and is
// partitioned by its segment; and poison events never pass both.
func TestWriterBatches(t *testing.T) {
	src := store.Source{Name: "buf1", Kind: store.KindBuffer, Partitions: 4}
	w := newWriter("buf1-w1", src, 7, 0.5, &history{}, &load{})
	def := workloadDefinition("http://127.0.0.1:1/hook").Activities[0]
	type track struct {
		instance string
		t        check.Track
	}
	next := map[track]int{}
	times := map[string]time.Time{}
	ended := map[track]bool{}
	poison, enables, relates := 0, 0, 0
	for range 200 {
		evs, payloads := w.batch(6)
		if len(evs) != len(payloads) {
			t.Fatalf("%d events, %d payloads", len(evs), len(payloads))
		}
		seen := map[track]bool{}
		for i, e := range evs {
			ev, err := event.Decode(payloads[i], time.Now(), 0)
			if e.Poison {
				poison++
				if err == nil {
					err = def.Validate(ev) // the kind only the definition refuses
				}
				if e.PoisonKind == "store-refused" {
					// Only the store refuses it (storeRefusal).
					if err != nil || string(ev.Data["seq"]) != fmt.Sprint(refusedSeq) {
						t.Fatalf("poison event %s for the store: %v, %s", e.ID, err, payloads[i])
					}
				} else if err == nil {
					t.Fatalf("poison event %s passes: %s", e.ID, payloads[i])
				} else if !strings.Contains(err.Error(), e.WantReason) {
					t.Fatalf("poison event %s (%s) refused with %q, want it to say %q", e.ID, e.PoisonKind, err, e.WantReason)
				}
				if !bytes.Contains(payloads[i], []byte(e.ID)) {
					t.Fatalf("poison payload %s does not hold its id %s", payloads[i], e.ID)
				}
				continue
			}
			if err != nil {
				t.Fatalf("event %s: %v: %s", e.ID, err, payloads[i])
			}
			if err := def.Validate(ev); err != nil {
				t.Fatalf("event %s does not fit the workload's definition: %v", e.ID, err)
			}
			if t0, ok := times[e.Instance]; ok && !t0.Equal(ev.Time) {
				t.Fatalf("%s: time %v, the instance's first event had %v", e.ID, ev.Time, t0)
			}
			times[e.Instance] = ev.Time
			if event.Partition(ev.Segment(), 4) != event.Partition(e.PartitionKey(), 4) {
				t.Fatalf("%s: partitioned by %q, the event's segment is %q", e.ID, e.PartitionKey(), ev.Segment())
			}
			if e.Itemless {
				// enable-continuation and relate come with the begin.
				if next[track{e.Instance, check.Main}] != 1 {
					t.Fatalf("%s: %s after event %d of the instance", e.ID, ev.Kind, next[track{e.Instance, check.Main}])
				}
				switch {
				case ev.Kind == event.EnableContinuation && ev.Token == e.Token && e.Related == "":
					enables++
				case ev.Kind == event.Relate && e.Related == activity+"/"+ev.Related.Instance:
					relates++
				default:
					t.Fatalf("itemless event %s is %s: %s", e.ID, ev.Kind, payloads[i])
				}
				continue
			}
			k := track{e.Instance, e.Track}
			if seen[k] {
				t.Fatalf("two events of %s (track %d) in one batch", e.Instance, e.Track)
			}
			seen[k] = true
			if ended[k] {
				t.Fatalf("event %s after its track's end", e.ID)
			}
			if e.Seq != next[k]+1 {
				t.Fatalf("%s: seq %d after %d", e.ID, e.Seq, next[k])
			}
			next[k] = e.Seq
			if e.Track == check.Main && (e.Seq == 1) != (ev.Kind == event.Begin) {
				t.Fatalf("%s: kind %s at seq %d", e.ID, ev.Kind, e.Seq)
			}
			if e.Track == check.Cont && (ev.Continuation != e.Token || ev.Instance != "" || ev.Kind == event.Begin) {
				t.Fatalf("%s: a continuation's event is %s under %q, instance %q", e.ID, ev.Kind, ev.Continuation, ev.Instance)
			}
			if (ev.Kind == event.End) != e.Last {
				t.Fatalf("%s: kind %s, last %v", e.ID, ev.Kind, e.Last)
			}
			if ev.Kind == event.End {
				ended[k] = true
			}
			data := check.EventData(e.Seq)
			if e.Track == check.Cont {
				data = check.ContinuationData(e.Seq)
			}
			for item := range data {
				if ev.Data[item] == nil {
					t.Fatalf("%s: data %v lacks %s", e.ID, ev.Data, item)
				}
			}
		}
	}
	if poison < 50 || len(ended) < 50 || enables < 20 || relates < 20 {
		t.Fatalf("200 batches made %d poison events, ended %d tracks, enabled %d continuations, related %d times", poison, len(ended), enables, relates)
	}
}

// TestClaimLog reads claims from a node's JSON log lines (the lines reach
// the log file through package testproc).
func TestClaimLog(t *testing.T) {
	var c claimLog
	for _, line := range []string{
		`{"time":"2026-11-25T21:00:00.5Z","level":"INFO","msg":"session claimed","node":"a1","source":"buf1","partition":2,"epoch":7,"checkpoint":"0/5"}`,
		`{"time":"2026-11-25T21:00:01Z","level":"INFO","msg":"session taken over from a dead node","node":"b2","source":"obx2","partition":0,"epoch":3,"from":"a1"}`,
		`{"time":"2026-11-25T21:00:02Z","level":"WARN","msg":"batch failed; retrying","node":"b2"}`,
		`not json at all`,
	} {
		c.record([]byte(line), "n1")
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
	if names := c.nodeNames(); names["a1"] != "n1" || names["b2"] != "n1" || c.idOf("n1") != "b2" {
		t.Fatalf("node names %v, id of n1 %q; want a1 and b2 of n1, b2 last", names, c.idOf("n1"))
	}
}

func TestOwnerSamples(t *testing.T) {
	at := time.Now()
	got := ownerSamples([]store.SessionRow{
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

// TestStoreRefusal: with storeRefusal, each store refuses the
// store-refused poison's value as data (store.ErrDataRefused), and takes
// the workload's own.
func TestStoreRefusal(t *testing.T) {
	ctx := context.Background()
	for _, driver := range []string{"postgres", "sqlite"} {
		t.Run(driver, func(t *testing.T) {
			url := "sqlite:" + filepath.Join(t.TempDir(), "bam.db")
			if driver == "postgres" {
				url = testpg.NewDatabase(t)
			}
			st, err := storeurl.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, _, err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := storeRefusal(ctx, st.Driver(), url); err != nil {
				t.Fatal(err)
			}
			if err := st.AddSource(ctx, store.Source{Name: "s", Kind: store.KindBuffer, Partitions: 1, Enabled: true}); err != nil {
				t.Fatal(err)
			}
			l, err := st.Claim(ctx, store.SessionID{Source: "s"}, "n", "", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			apply := func(seq any, at int64) error {
				ev := event.Event{Activity: activity, Instance: fmt.Sprint("i-", at), Kind: event.Begin, Time: time.Now(),
					Data: map[string]json.RawMessage{"seq": json.RawMessage(fmt.Sprint(seq))}}
				return st.Apply(ctx, store.Batch{Lease: l, Node: "n", From: store.Position{Minor: at - 1}, Checkpoint: store.Position{Minor: at},
					Deltas: event.Coalesce([]event.Event{ev}), Applied: 1})
			}
			if err := apply(12, 1); err != nil {
				t.Fatalf("a workload value: %v", err)
			}
			if err := apply(refusedSeq, 2); !errors.Is(err, store.ErrDataRefused) {
				t.Fatalf("the store-refused value: %v, want ErrDataRefused", err)
			}
		})
	}
}
