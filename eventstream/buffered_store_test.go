package eventstream_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/pgstream"
	"github.com/bam-dev/bam/eventstream/sqlitestream"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestBufferedIntoStore writes through OpenBuffered into a real store and
// reads the buffer back as a node would, then lets a node apply it.
func TestBufferedIntoStore(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		b := openOrders(t, url, st, 3)
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		for i := range 10 {
			id := fmt.Sprintf("PO-%d", i)
			if err := b.BeginActivity(ctx, "PurchaseOrder", id, eventstream.At(at)); err != nil {
				t.Fatal(err)
			}
			if err := b.UpdateActivity(ctx, "PurchaseOrder", id, eventstream.Data{"Amount": "12.50", "Received": at}, eventstream.At(at)); err != nil {
				t.Fatal(err)
			}
			if err := b.EndActivity(ctx, "PurchaseOrder", id, eventstream.At(at.Add(time.Minute))); err != nil {
				t.Fatal(err)
			}
		}
		// Nothing reaches the store before Flush.
		if n := backlog(t, st, 3); n != 0 {
			t.Fatalf("%d events in the buffer before Flush", n)
		}
		if err := b.Close(ctx); !errors.Is(err, eventstream.ErrUnflushed) {
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
		bufferedByInstance(t, st, 3)
		runNode(t, st)
		testwait.Until(t, 20*time.Second, "the instances to be applied", func() bool {
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
	if _, err := eventstream.OpenBuffered(ctx, sqlitestream.New(), fresh, "orders", eventstream.BufferedOptions{}); err == nil || !strings.Contains(err.Error(), "bam migrate") {
		t.Errorf("open on a store without schema = %v, want advice to migrate", err)
	}
	for _, drv := range []eventstream.Driver{sqlitestream.New(), pgstream.New()} {
		if _, err := eventstream.OpenBuffered(ctx, drv, "mysql://app:s3cret@db/app", "orders", eventstream.BufferedOptions{}); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%T: an unknown store URL: %v, want an error that does not show it", drv, err)
		}
	}
	if _, err := eventstream.OpenBuffered(ctx, nil, fresh, "orders", eventstream.BufferedOptions{}); err == nil || !strings.Contains(err.Error(), "sqlitestream.New()") {
		t.Errorf("no driver: %v, want an error naming the drivers", err)
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
			_, err := eventstream.OpenBuffered(ctx, driverFor(url), url, source, eventstream.BufferedOptions{})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("open source %s = %v, want %q", source, err, want)
			}
		}
		if _, err := eventstream.OpenBuffered(ctx, driverFor(url), url, "off", eventstream.BufferedOptions{FlushThreshold: -2}); err == nil {
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
		b, err := eventstream.OpenBuffered(ctx, driverFor(url), url, "held", eventstream.BufferedOptions{})
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

func TestBufferedChecksTheDeployedDefinitions(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		if err := st.AddSource(ctx, store.Source{Name: "orders", Kind: store.KindBuffer, Partitions: 2, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		deploy(t, st, quantityIsAnInteger)
		b, err := eventstream.OpenBuffered(ctx, driverFor(url), url, "orders", eventstream.BufferedOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Discard()
		if err := b.UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Quantity": 3}); err != nil {
			t.Fatalf("a valid event: %v", err)
		}
		err = b.UpdateActivity(ctx, "PurchaseOrder", "PO-1", eventstream.Data{"Quantity": "three"})
		var evErr *eventstream.EventError
		if !errors.As(err, &evErr) || evErr.Field != "data.Quantity" || !errors.Is(err, eventstream.ErrInvalidEvent) {
			t.Fatalf("a text in an integer item: %v, want an *EventError on data.Quantity", err)
		}
		if b.Pending() != 1 {
			t.Errorf("%d events held, want the valid one only", b.Pending())
		}
	})
}

// TestBufferedFollowsARepartition: a stream opened before its source was
// repartitioned files its held events under the new partitions when the
// store refuses them, and every later event too: nothing is lost or
// doubled, each event lands where the nodes read it. (Every flush failed
// for as long as the stream lived.)
func TestBufferedFollowsARepartition(t *testing.T) {
	storeURLs(t, func(t *testing.T, url string, st store.Store) {
		ctx := context.Background()
		b := openOrders(t, url, st, 4)
		defer b.Close(ctx)
		begin := func(from, to int) {
			for i := from; i < to; i++ {
				if err := b.BeginActivity(ctx, "PurchaseOrder", fmt.Sprintf("PO-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		begin(0, 20)
		if _, err := st.Repartition(ctx, "orders", 2); err != nil {
			t.Fatal(err)
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatalf("Flush after a repartition: %v", err)
		}
		begin(20, 40)
		if err := b.Flush(ctx); err != nil {
			t.Fatalf("the next Flush: %v", err)
		}
		seen := bufferedByInstance(t, st, 2)
		for i := range 40 {
			if n := seen[fmt.Sprintf("PO-%d", i)]; n != 1 {
				t.Errorf("PO-%d written %d times, want once", i, n)
			}
		}
	})
}

// openOrders adds the buffer source "orders" of partitions to st and
// opens a stream into it.
func openOrders(t *testing.T, url string, st store.Store, partitions int) *eventstream.Buffered {
	t.Helper()
	ctx := context.Background()
	if err := st.AddSource(ctx, store.Source{Name: "orders", Kind: store.KindBuffer, Partitions: partitions, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	b, err := eventstream.OpenBuffered(ctx, driverFor(url), url, "orders", eventstream.BufferedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bufferedByInstance reads the buffer of the source "orders" of
// partitions, wants every event in its own partition, where a node reads
// it, and counts the events of each instance.
func bufferedByInstance(t *testing.T, st store.Store, partitions int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for p := range partitions {
		recs, _, err := st.ReadBuffer(context.Background(), store.SessionID{Source: "orders", Partition: p}, store.Position{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			ev, err := event.Decode(rec.Payload, rec.WrittenAt, 0)
			if err != nil {
				t.Fatalf("buffered event does not decode: %v", err)
			}
			if event.Partition(ev.Segment(), partitions) != p {
				t.Errorf("event of %s in partition %d", ev.Instance, p)
			}
			seen[ev.Instance]++
		}
	}
	return seen
}
