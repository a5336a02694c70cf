package eventstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
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
