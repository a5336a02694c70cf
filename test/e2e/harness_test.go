// Package e2e runs real `bam serve` processes against real stores and
// checks the promises of DESIGN.md from the outside: processes are killed
// with SIGKILL and paused with SIGSTOP, never mocked.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testproc"
	"github.com/bam-dev/bam/internal/testwait"
)

var bamBinary string

func TestMain(m *testing.M) {
	if code, ok := runAsDocsCommand(); ok { // a command of TestDocs's blocks
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "bam-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if bamBinary, err = testproc.Build(dir, "github.com/bam-dev/bam/cmd/bam", "-race"); err != nil {
		fmt.Fprintln(os.Stderr, "build bam:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stores runs f once per store driver, each with a fresh store URL.
func stores(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, "sqlite:"+filepath.Join(t.TempDir(), "bam.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		f(t, testpg.NewDatabase(t))
	})
}

// Short leases keep the tests quick; the ratios are the defaults'.
var fastFlags = []string{"--lease-ttl", "2s", "--renew-interval", "500ms", "--safety-margin", "300ms", "--balance-interval", "250ms", "--poll-interval", "500ms", "--batch-size", "200"}

// node is a `bam serve` process of a test.
type node struct{ *testproc.Proc }

// startNode starts `bam serve` with fastFlags and returns once the process
// runs; it is killed when the test ends.
func startNode(t *testing.T, url, name string, extra ...string) node {
	t.Helper()
	args := append([]string{"serve", "--store", url, "--name", name, "--log-format", "json"}, fastFlags...)
	return node{testproc.StartTest(t, testproc.Config{Path: bamBinary, Name: name, Args: append(args, extra...)})}
}

// id returns the node id from its "node joined the pool" log line.
func (n node) id(t *testing.T) string {
	t.Helper()
	id, _, err := n.WaitJoined(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (n node) lines(t *testing.T) []map[string]any {
	t.Helper()
	out, err := n.Lines()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (n node) logged(t *testing.T, msg string) int {
	count := 0
	for _, l := range n.lines(t) {
		if l["msg"] == msg {
			count++
		}
	}
	return count
}

func bam(t *testing.T, url string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bamBinary, append(args, "--store", url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bam %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func openStore(t *testing.T, url string) store.Store {
	t.Helper()
	st, err := storeurl.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// owners maps each session to its owner node id.
func owners(t *testing.T, st store.Store) map[store.SessionID]store.SessionRow {
	t.Helper()
	ss, err := st.Sessions(context.Background())
	if err != nil {
		t.Fatalf("read sessions: %v", err)
	}
	out := map[store.SessionID]store.SessionRow{}
	for _, s := range ss {
		out[s.SessionID] = s
	}
	return out
}

func ownedBy(t *testing.T, st store.Store, nodeID string) int {
	count := 0
	for _, s := range owners(t, st) {
		if s.Owner == nodeID && s.LeaseRemaining > 0 {
			count++
		}
	}
	return count
}

// writer appends purchase-order events to buffer sources continuously and
// records every write the store acknowledged. All events of an instance
// carry the same time, so the merged Seq item is the one applied last: it
// equals the last Seq written only if the instance's events were applied
// in order.
type writer struct {
	st      store.Store
	sources map[string]int // name → partitions

	mu      sync.Mutex
	written map[string]int // instance → events acknowledged
	lastSeq map[string]int
	total   int
}

func newWriter(st store.Store, sources map[string]int) *writer {
	return &writer{st: st, sources: sources, written: map[string]int{}, lastSeq: map[string]int{}}
}

// startWriter runs a writer until the returned stop is called (at the
// latest when the test ends).
func startWriter(t *testing.T, st store.Store, sources map[string]int) (*writer, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	w := newWriter(st, sources)
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx, t) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return w, stop
}

// run writes until ctx ends: every 5 ms, one batch of events over 20
// instances of each source.
func (w *writer) run(ctx context.Context, t *testing.T) {
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	round := 0
	for ctx.Err() == nil {
		for name, parts := range w.sources {
			var batch []store.BufferEvent
			var ids []string
			for i := 0; i < 20; i++ {
				id := fmt.Sprintf("%s-PO-%d", name, (round*7+i)%60)
				w.mu.Lock()
				seq := w.lastSeq[id] + 1
				w.mu.Unlock()
				kind := event.Update
				if seq == 1 {
					kind = event.Begin
				}
				ev := event.Event{Activity: "PurchaseOrder", Instance: id, Kind: kind, Time: base,
					Data: map[string]json.RawMessage{"Seq": json.RawMessage(fmt.Sprint(seq))}}
				batch = append(batch, store.BufferEvent{Partition: event.Partition(id, parts), Payload: event.Encode(ev)})
				ids = append(ids, id)
				w.mu.Lock()
				w.lastSeq[id] = seq // tentative; undone if the write fails
				w.mu.Unlock()
			}
			err := w.st.AppendBuffer(context.Background(), name, batch)
			w.mu.Lock()
			if err != nil {
				for _, id := range ids {
					w.lastSeq[id]--
				}
				t.Logf("write failed (not counted): %v", err)
			} else {
				for _, id := range ids {
					w.written[id]++
					w.total++
				}
			}
			w.mu.Unlock()
		}
		round++
		time.Sleep(5 * time.Millisecond) // the writer's pace
	}
}

// check waits until every acknowledged event is applied, then checks each
// instance: applied exactly as many times as written, last Seq last.
func (w *writer) check(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	w.mu.Lock()
	defer w.mu.Unlock()
	testwait.Until(t, 60*time.Second, "the pool to drain the sources", func() bool {
		for _, s := range owners(t, w.st) {
			n, err := w.st.BufferBacklog(ctx, s.SessionID, s.Checkpoint)
			if err != nil || n > 0 {
				return false
			}
		}
		return true
	})
	lost, doubled, disorder := 0, 0, 0
	for id, n := range w.written {
		in, err := w.st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: id})
		if err != nil {
			t.Errorf("instance %s: %v", id, err)
			lost += n
			continue
		}
		switch {
		case in.Events < int64(n):
			lost += n - int(in.Events)
			t.Errorf("instance %s: %d events applied, %d written: %d lost", id, in.Events, n, n-int(in.Events))
		case in.Events > int64(n):
			doubled += int(in.Events) - n
			t.Errorf("instance %s: %d events applied, %d written: %d doubled", id, in.Events, n, int(in.Events)-n)
		}
		if got, want := string(in.Data["Seq"]), fmt.Sprint(w.lastSeq[id]); got != want {
			disorder++
			t.Errorf("instance %s: last applied Seq %s, last written %s: applied out of order", id, got, want)
		}
	}
	t.Logf("written %d events to %d instances: lost %d, doubled %d, out of order %d", w.total, len(w.written), lost, doubled, disorder)
	if w.total == 0 {
		t.Fatal("the writer wrote nothing")
	}
}
