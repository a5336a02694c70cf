package eventstream

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testpg"
)

// fakeBuffer is a buffer that fails on demand and keeps what it committed.
type fakeBuffer struct {
	mu        sync.Mutex
	fail      error
	committed []store.BufferEvent
	calls     []int // events per AppendBuffer call that committed
}

func (f *fakeBuffer) AppendBuffer(_ context.Context, source string, events []store.BufferEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.committed = append(f.committed, events...)
	f.calls = append(f.calls, len(events))
	return nil
}

func (f *fakeBuffer) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// decoded returns the committed events, decoded.
func (f *fakeBuffer) decoded(t *testing.T) []event.Event {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]event.Event, len(f.committed))
	for i, rec := range f.committed {
		ev, err := event.Decode(rec.Payload, time.Time{}, 0)
		if err != nil {
			t.Fatalf("committed event %d does not decode: %v", i, err)
		}
		if p := event.Partition(ev.Segment(), 4); rec.Partition != p {
			t.Errorf("event of %s in partition %d, want %d", ev.Segment(), rec.Partition, p)
		}
		out[i] = ev
	}
	return out
}

func fakeStream(t *testing.T, opts BufferedOptions) (*Buffered, *fakeBuffer) {
	t.Helper()
	f := &fakeBuffer{}
	b, err := newBufferedTo(f, "orders", 4, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, f
}

func begin(t *testing.T, w Writer, n int) {
	t.Helper()
	for i := range n {
		if err := w.BeginActivity(context.Background(), "PurchaseOrder", fmt.Sprintf("PO-%d", i)); err != nil {
			t.Fatalf("begin %d: %v", i, err)
		}
	}
}

func TestBufferedFlushesAtThreshold(t *testing.T) {
	b, f := fakeStream(t, BufferedOptions{FlushThreshold: 3})
	begin(t, b, 7)
	if got := fmt.Sprint(f.calls); got != "[3 3]" {
		t.Errorf("flushes of %s events, want [3 3]", got)
	}
	if b.Pending() != 1 {
		t.Errorf("%d events pending, want 1", b.Pending())
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(context.Background()); err != nil { // nothing left: no write
		t.Fatal(err)
	}
	if got := fmt.Sprint(f.calls); got != "[3 3 1]" {
		t.Errorf("flushes of %s events, want [3 3 1]", got)
	}
	evs := f.decoded(t)
	for i, ev := range evs {
		if ev.Instance != fmt.Sprintf("PO-%d", i) {
			t.Errorf("event %d is of %s: order lost", i, ev.Instance)
		}
	}
}

func TestBufferedCloseRefusesToDropEvents(t *testing.T) {
	b, f := fakeStream(t, BufferedOptions{})
	ctx := context.Background()
	begin(t, b, 2)
	err := b.Close(ctx)
	if !errors.Is(err, ErrUnflushed) || !strings.Contains(err.Error(), "2 events") {
		t.Fatalf("Close with 2 events held = %v, want ErrUnflushed with the count", err)
	}
	// Still open, events kept: flush, then close.
	if err := b.UpdateActivity(ctx, "PurchaseOrder", "PO-0", Data{"Amount": 3}); err != nil {
		t.Fatalf("write after a refused Close: %v", err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close after Flush = %v", err)
	}
	if len(f.decoded(t)) != 3 {
		t.Errorf("%d events committed, want 3", len(f.committed))
	}
	if err := b.BeginActivity(ctx, "PurchaseOrder", "PO-9"); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close = %v, want ErrClosed", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestBufferedDiscardIsExplicit(t *testing.T) {
	b, f := fakeStream(t, BufferedOptions{})
	begin(t, b, 5)
	if n := b.Discard(); n != 5 {
		t.Errorf("Discard dropped %d, want 5", n)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.committed) != 0 {
		t.Errorf("discarded events were written")
	}
}

func TestBufferedFailedFlushKeepsEvents(t *testing.T) {
	b, f := fakeStream(t, BufferedOptions{FlushThreshold: 4, MaxPending: 6})
	ctx := context.Background()
	down := errors.New("store unreachable")
	f.setFail(down)

	begin(t, b, 3)
	// The fourth event reaches the threshold: it is accepted, the flush
	// fails and says so.
	err := b.BeginActivity(ctx, "PurchaseOrder", "PO-3")
	if !errors.Is(err, ErrFlushFailed) || !errors.Is(err, down) || !strings.Contains(err.Error(), `begin event of PurchaseOrder "PO-3" was accepted`) ||
		!strings.Contains(err.Error(), "4 events") {
		t.Fatalf("write at the threshold with the store down = %v, want ErrFlushFailed wrapping the cause", err)
	}
	for i := 4; i < 6; i++ {
		err := b.BeginActivity(ctx, "PurchaseOrder", fmt.Sprintf("PO-%d", i))
		if !errors.Is(err, ErrFlushFailed) {
			t.Fatalf("write %d = %v, want ErrFlushFailed", i, err)
		}
	}
	// Full: the next event is refused, and not kept.
	err = b.BeginActivity(ctx, "PurchaseOrder", "PO-6")
	if !errors.Is(err, ErrStreamFull) || !errors.Is(err, down) || errors.Is(err, ErrFlushFailed) {
		t.Fatalf("write when full = %v, want ErrStreamFull (and not ErrFlushFailed, which says the event was kept)", err)
	}
	if b.Pending() != 6 {
		t.Fatalf("%d events held, want 6", b.Pending())
	}
	if err := b.Flush(ctx); !errors.Is(err, ErrFlushFailed) {
		t.Fatalf("Flush with the store down = %v", err)
	}
	if err := b.Close(ctx); !errors.Is(err, ErrUnflushed) {
		t.Fatalf("Close with the store down = %v, want ErrUnflushed", err)
	}

	f.setFail(nil)
	if err := b.Flush(ctx); err != nil {
		t.Fatalf("Flush once the store is back: %v", err)
	}
	evs := f.decoded(t)
	if len(evs) != 6 {
		t.Fatalf("%d events committed, want the 6 accepted", len(evs))
	}
	for i, ev := range evs {
		if ev.Instance != fmt.Sprintf("PO-%d", i) {
			t.Errorf("event %d is of %s, want PO-%d: order lost on retry", i, ev.Instance, i)
		}
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBufferedConcurrentWriters writes from many goroutines while flushes
// run, and checks that every event is committed once and that each
// instance's events keep their order.
func TestBufferedConcurrentWriters(t *testing.T) {
	b, f := fakeStream(t, BufferedOptions{FlushThreshold: 7})
	ctx := context.Background()
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("PO-%d", w)
			for i := range each {
				if err := b.UpdateActivity(ctx, "PurchaseOrder", id, Data{"Seq": i}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if i%50 == 0 {
					if err := b.Flush(ctx); err != nil {
						t.Errorf("writer %d: flush: %v", w, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	evs := f.decoded(t)
	for _, ev := range evs {
		var seq int
		fmt.Sscan(string(ev.Data["Seq"]), &seq)
		if seq != next[ev.Instance] {
			t.Fatalf("%s: event %d committed where %d was expected", ev.Instance, seq, next[ev.Instance])
		}
		next[ev.Instance]++
	}
	if len(evs) != writers*each {
		t.Errorf("%d events committed, want %d", len(evs), writers*each)
	}
}

func TestBufferedOptionsAreChecked(t *testing.T) {
	for _, o := range []BufferedOptions{{FlushThreshold: -1}, {FlushThreshold: 10, MaxPending: 5}, {MaxEventSize: -1}} {
		if _, err := newBufferedTo(&fakeBuffer{}, "orders", 4, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

// storeURLs runs f with a fresh store URL of each driver, migrated.
func storeURLs(t *testing.T, f func(t *testing.T, url string, st store.Store)) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			url := newStoreURL(t, driver)
			ctx := context.Background()
			st, err := storeurl.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if _, _, err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			f(t, url, st)
		})
	}
}

// newStoreURL returns the URL of a new empty store of driver (sqlite or
// postgres), removed when the test ends.
func newStoreURL(t testing.TB, driver string) string {
	t.Helper()
	if driver == "postgres" {
		return testpg.NewDatabase(t)
	}
	return "sqlite:" + filepath.Join(t.TempDir(), "bam.db")
}

// TestBufferedIntoStore writes through OpenBuffered into a real store and
// reads the buffer back as a node would, then lets a node apply it.
func TestBufferedIntoStore(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		if err := st.AddSource(ctx, store.Source{Name: "orders", Kind: store.KindBuffer, Partitions: 3, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		b, err := OpenBuffered(ctx, url, "orders", BufferedOptions{})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		for i := range 10 {
			id := fmt.Sprintf("PO-%d", i)
			if err := b.BeginActivity(ctx, "PurchaseOrder", id, At(at)); err != nil {
				t.Fatal(err)
			}
			if err := b.UpdateActivity(ctx, "PurchaseOrder", id, Data{"Amount": "12.50", "Received": at}, At(at)); err != nil {
				t.Fatal(err)
			}
			if err := b.EndActivity(ctx, "PurchaseOrder", id, At(at.Add(time.Minute))); err != nil {
				t.Fatal(err)
			}
		}
		// Nothing reaches the store before Flush.
		if n := backlog(t, st, 3); n != 0 {
			t.Fatalf("%d events in the buffer before Flush", n)
		}
		if err := b.Close(ctx); !errors.Is(err, ErrUnflushed) {
			t.Fatalf("Close before Flush = %v, want ErrUnflushed", err)
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if n := backlog(t, st, 3); n != 30 {
			t.Fatalf("%d events in the buffer after Flush, want 30", n)
		}
		for p := range 3 {
			recs, _, err := st.ReadBuffer(ctx, store.SessionID{Source: "orders", Partition: p}, store.Position{}, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				ev, err := event.Decode(rec.Payload, rec.WrittenAt, 0)
				if err != nil {
					t.Fatalf("buffered event does not decode: %v", err)
				}
				if event.Partition(ev.Instance, 3) != p {
					t.Errorf("event of %s in partition %d", ev.Instance, p)
				}
			}
		}
		runNode(t, st)
		waitFor(t, "the instances to be applied", func() bool {
			in, err := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "PO-9"})
			return err == nil && in.State == store.StateCompleted
		})
		in, _ := st.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "PO-9"})
		if in.Events != 3 || string(in.Data["Amount"]) != `"12.50"` || !in.Begin.Equal(at) {
			t.Errorf("PO-9 = %+v, data %s", in, in.Data)
		}
	})
}

func backlog(t *testing.T, st store.Store, partitions int) int64 {
	t.Helper()
	var n int64
	for p := range partitions {
		k, err := st.BufferBacklog(context.Background(), store.SessionID{Source: "orders", Partition: p}, store.Position{})
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}

func TestOpenBufferedSaysWhatIsWrong(t *testing.T) {
	ctx := context.Background()
	fresh := "sqlite:" + filepath.Join(t.TempDir(), "bam.db")
	if _, err := OpenBuffered(ctx, fresh, "orders", BufferedOptions{}); err == nil || !strings.Contains(err.Error(), "bam migrate") {
		t.Errorf("open on a store without schema = %v, want advice to migrate", err)
	}
	if _, err := OpenBuffered(ctx, "mysql://x", "orders", BufferedOptions{}); err == nil {
		t.Error("an unknown store URL was accepted")
	}
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		if err := st.AddSource(ctx, store.Source{Name: "shop", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true,
			DSN: "postgres://app@db/app", Table: "bam_outbox"}); err != nil {
			t.Fatal(err)
		}
		if err := st.AddSource(ctx, store.Source{Name: "off", Kind: store.KindBuffer, Partitions: 1, Enabled: false}); err != nil {
			t.Fatal(err)
		}
		for source, want := range map[string]string{
			"orders": "bam source add orders --kind buffer",
			"shop":   "not a buffer source",
			"off":    "bam source enable off",
		} {
			_, err := OpenBuffered(ctx, url, source, BufferedOptions{})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("open source %s = %v, want %q", source, err, want)
			}
		}
		if _, err := OpenBuffered(ctx, url, "off", BufferedOptions{FlushThreshold: -2}); err == nil {
			t.Error("bad options accepted")
		}
	})
}

// TestBufferedWritesToAPausedSource: a paused source takes the stream's
// events (they wait in it until bam source resume); only a disabled one
// refuses them.
func TestBufferedWritesToAPausedSource(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		if err := st.AddSource(ctx, store.Source{Name: "held", Kind: store.KindBuffer, Partitions: 1, Enabled: true, Paused: true}); err != nil {
			t.Fatal(err)
		}
		b, err := OpenBuffered(ctx, url, "held", BufferedOptions{})
		if err != nil {
			t.Fatalf("open a paused source: %v", err)
		}
		if err := b.BeginActivity(ctx, "PurchaseOrder", "PO-1"); err != nil {
			t.Fatal(err)
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatalf("write to a paused source: %v", err)
		}
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := st.BufferBacklog(ctx, store.SessionID{Source: "held"}, store.Position{}); err != nil || n != 1 {
			t.Errorf("backlog of the paused source = %d, %v; want the 1 event written", n, err)
		}
	})
}

func TestBufferedOptionsValidateIsApplied(t *testing.T) {
	errNo := errors.New("no")
	b, _ := fakeStream(t, BufferedOptions{Validate: func(Event) error { return errNo }})
	if err := b.BeginActivity(context.Background(), "PurchaseOrder", "PO-1"); !errors.Is(err, errNo) {
		t.Fatalf("write = %v, want the validator's error", err)
	}
	if b.Pending() != 0 {
		t.Errorf("a refused event is held")
	}
}

func TestBufferedChecksTheDeployedDefinitions(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		if err := st.AddSource(ctx, store.Source{Name: "orders", Kind: store.KindBuffer, Partitions: 2, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		deploy(t, st, quantityIsAnInteger)
		b, err := OpenBuffered(ctx, url, "orders", BufferedOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Discard()
		if err := b.UpdateActivity(ctx, "PurchaseOrder", "PO-1", Data{"Quantity": 3}); err != nil {
			t.Fatalf("a valid event: %v", err)
		}
		err = b.UpdateActivity(ctx, "PurchaseOrder", "PO-1", Data{"Quantity": "three"})
		var evErr *EventError
		if !errors.As(err, &evErr) || evErr.Field != "data.Quantity" || !errors.Is(err, ErrInvalidEvent) {
			t.Fatalf("a text in an integer item: %v, want an *EventError on data.Quantity", err)
		}
		if b.Pending() != 1 {
			t.Errorf("%d events held, want the valid one only", b.Pending())
		}
	})
}
