// Package sourcetest is the conformance suite every source.Reader passes:
// the buffer on each store and the pg-outbox reader today, and any reader
// added later (NATS JetStream) from its first day. It holds a reader to
// DESIGN.md's promise 4 — nothing is ever inserted behind a record the
// reader returned — under writers that commit out of order, roll back, and
// write while it reads; and to the rest of the contract: every committed
// record once, in order per segment, trims and backlogs that agree.
//
// A driver's test calls Run with a function that sets up a fresh source
// and returns a Harness: the reader, and the means to write to the source
// as its real writers do (an application's transaction for pg-outbox, the
// store's own insert for the buffer), so that the suite can hold a write
// open while another commits.
package sourcetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
)

// Harness is one reader under test with its writers.
type Harness struct {
	Reader source.Reader
	// Begin starts a writer's transaction. What it writes is readable once
	// Commit returns, and never if it rolls back.
	Begin func(ctx context.Context) (Tx, error)
	// Concurrent is true when two writers' transactions can be open at
	// once and commit in either order (PostgreSQL); false when writers
	// take turns (SQLite), and the suite never holds two open.
	Concurrent bool
}

// Tx is a writer's open transaction.
type Tx interface {
	// Write writes one event's payload for a segment (an instance id): the
	// source files it in that segment's partition, in write order.
	Write(ctx context.Context, segment string, payload []byte) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Open sets up a fresh source with that many partitions.
type Open func(t *testing.T, partitions int) Harness

// Run runs the suite.
func Run(t *testing.T, open Open) {
	t.Run("ReadsEveryRecordOnceInOrder", func(t *testing.T) { readsEveryRecordOnceInOrder(t, open) })
	t.Run("NothingBehindAReturnedRecord", func(t *testing.T) { nothingBehindAReturnedRecord(t, open) })
	t.Run("WritersWhileReading", func(t *testing.T) { writersWhileReading(t, open) })
	t.Run("RollbackIsNotWaitedFor", func(t *testing.T) { rollbackIsNotWaitedFor(t, open) })
	t.Run("TrimAndBacklog", func(t *testing.T) { trimAndBacklog(t, open) })
	t.Run("Watch", func(t *testing.T) { watch(t, open) })
}

// written is what the suite writes: an event whose data says who wrote it.
type written struct {
	Segment string
	N       int
}

func payload(w written) []byte {
	return fmt.Appendf(nil, `{"activity":"Conformance","instance":%q,"kind":"update","data":{"N":%d}}`, w.Segment, w.N)
}

// parse reads back what payload wrote (a source may store it as jsonb and
// return it reformatted).
func parse(t *testing.T, rec store.Record) written {
	t.Helper()
	var ev struct {
		Instance string
		Data     struct{ N int }
	}
	if err := json.Unmarshal(rec.Payload, &ev); err != nil {
		t.Fatalf("record at %v: payload %q: %v", rec.Position, rec.Payload, err)
	}
	return written{ev.Instance, ev.Data.N}
}

// write commits one transaction of events.
func write(t *testing.T, h Harness, ws ...written) {
	t.Helper()
	ctx := context.Background()
	tx, err := h.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if err := tx.Write(ctx, w.Segment, payload(w)); err != nil {
			_ = tx.Rollback(ctx)
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// cursor reads one partition incrementally, as a session does, and checks
// every batch: positions strictly increasing, write times set, a segment
// (when the source keeps one) that is the event's.
type cursor struct {
	t         *testing.T
	r         source.Reader
	partition int
	after     store.Position
	got       []written
}

// read reads one batch of at most limit; it reports whether the partition
// was read to the end (a short batch, nothing held).
func (c *cursor) read(limit int) bool {
	c.t.Helper()
	recs, held, err := c.r.Read(context.Background(), c.partition, c.after, limit)
	if err != nil {
		c.t.Fatalf("read partition %d after %v: %v", c.partition, c.after, err)
	}
	if len(recs) > limit {
		c.t.Fatalf("read of at most %d returned %d records", limit, len(recs))
	}
	for _, rec := range recs {
		if !c.after.Less(rec.Position) {
			c.t.Fatalf("partition %d: record at %v returned after %v: positions must increase", c.partition, rec.Position, c.after)
		}
		if rec.WrittenAt.IsZero() {
			c.t.Fatalf("record at %v has no write time", rec.Position)
		}
		w := parse(c.t, rec)
		if rec.Segment != "" && rec.Segment != w.Segment {
			c.t.Fatalf("record at %v: segment %q, its event's instance %q", rec.Position, rec.Segment, w.Segment)
		}
		c.after = rec.Position
		c.got = append(c.got, w)
	}
	return len(recs) < limit && !held
}

// drain reads until the end, waiting for what is held (another test's
// transaction on a shared server may hold a horizon for a moment).
func (c *cursor) drain(limit int) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !c.read(limit) {
		if time.Now().After(deadline) {
			c.t.Fatalf("partition %d not read to the end within 20s (still held after %v)", c.partition, c.after)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readAll reads every partition from the start to the end.
func readAll(t *testing.T, h Harness, partitions, limit int) []written {
	t.Helper()
	var all []written
	for p := range partitions {
		c := &cursor{t: t, r: h.Reader, partition: p}
		c.drain(limit)
		all = append(all, c.got...)
	}
	return all
}

// checkOnceInOrder fails unless got holds every one of want exactly once,
// and each segment's events in want's order.
func checkOnceInOrder(t *testing.T, got, want []written) {
	t.Helper()
	seen := map[written]int{}
	for _, w := range got {
		seen[w]++
	}
	for _, w := range want {
		if seen[w] != 1 {
			t.Errorf("%v read %d times, want once", w, seen[w])
		}
		delete(seen, w)
	}
	for w, n := range seen {
		t.Errorf("%v read %d times, never committed", w, n)
	}
	order := func(ws []written) map[string][]int {
		m := map[string][]int{}
		for _, w := range ws {
			m[w.Segment] = append(m[w.Segment], w.N)
		}
		return m
	}
	g, w := order(got), order(want)
	for seg, ns := range w {
		if !slices.Equal(g[seg], ns) {
			t.Errorf("segment %s read in order %v, written %v", seg, g[seg], ns)
		}
	}
}

func readsEveryRecordOnceInOrder(t *testing.T, open Open) {
	const partitions = 3
	h := open(t, partitions)
	var want []written
	n := 0
	for i := range 20 {
		var tx []written
		for range 1 + i%3 {
			n++
			tx = append(tx, written{fmt.Sprintf("PO-%d", n%6), n})
		}
		write(t, h, tx...)
		want = append(want, tx...)
	}
	checkOnceInOrder(t, readAll(t, h, partitions, 7), want)
}

// nothingBehindAReturnedRecord: A's transaction begins first and commits
// last; B commits in between, either before A writes (A's transaction
// holds the older id) or after. Whatever the reader returns while A is
// open (nothing and held, or B when A will land after it), once A commits,
// reading on from the last record returned finds A: nothing was inserted
// behind it.
func nothingBehindAReturnedRecord(t *testing.T, open Open) {
	for _, aWritesFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("A writes first %v", aWritesFirst), func(t *testing.T) {
			h := open(t, 1)
			if !h.Concurrent {
				t.Skip("writers take turns on this source: no transaction commits behind another")
			}
			ctx := context.Background()
			txA, err := h.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = txA.Rollback(ctx) }()
			a, b := written{"PO-A", 1}, written{"PO-B", 2}
			writeA := func() {
				if err := txA.Write(ctx, a.Segment, payload(a)); err != nil {
					t.Fatal(err)
				}
			}
			if aWritesFirst {
				writeA()
				write(t, h, b)
			} else {
				write(t, h, b)
				writeA()
			}
			c := &cursor{t: t, r: h.Reader}
			c.read(10)
			if err := txA.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			c.drain(10)
			checkOnceInOrder(t, c.got, []written{a, b})
			checkOnceInOrder(t, readAll(t, h, 1, 10), []written{a, b})
		})
	}
}

// writersWhileReading: writers commit, roll back and hold transactions
// open for a moment while a session-like cursor reads on; what it read is
// every committed event once, in order per segment, and a fresh read from
// the start agrees.
func writersWhileReading(t *testing.T, open Open) {
	const partitions = 2
	h := open(t, partitions)
	writers, txs := 1, 60
	if h.Concurrent {
		writers, txs = 4, 25
	}
	ctx := context.Background()
	var mu sync.Mutex
	var committed []written
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range txs {
				tx, err := h.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				var ws []written
				for k := range 1 + r.IntN(3) {
					wr := written{fmt.Sprintf("W%d-%d", w, r.IntN(3)), w*10000 + i*10 + k}
					if err := tx.Write(ctx, wr.Segment, payload(wr)); err != nil {
						_ = tx.Rollback(ctx)
						errs <- err
						return
					}
					ws = append(ws, wr)
				}
				time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
				if r.IntN(6) == 0 {
					if err := tx.Rollback(ctx); err != nil {
						errs <- err
						return
					}
					continue
				}
				// Committed is recorded under the lock with the commit, so
				// that per segment its order is the commit order.
				mu.Lock()
				err = tx.Commit(ctx)
				if err == nil {
					committed = append(committed, ws...)
				}
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	cursors := make([]*cursor, partitions)
	for p := range cursors {
		cursors[p] = &cursor{t: t, r: h.Reader, partition: p}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		for _, c := range cursors {
			c.read(5)
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var got []written
	for _, c := range cursors {
		c.drain(5)
		got = append(got, c.got...)
	}
	checkOnceInOrder(t, got, committed)
	checkOnceInOrder(t, readAll(t, h, partitions, 50), committed)
}

func rollbackIsNotWaitedFor(t *testing.T, open Open) {
	h := open(t, 1)
	ctx := context.Background()
	tx, err := h.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(ctx, "PO-1", payload(written{"PO-1", 1})); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, h, written{"PO-1", 2})
	checkOnceInOrder(t, readAll(t, h, 1, 10), []written{{"PO-1", 2}})
}

func trimAndBacklog(t *testing.T, open Open) {
	h := open(t, 1)
	ctx := context.Background()
	var want []written
	for n := range 10 {
		want = append(want, written{"PO-1", n})
		write(t, h, want[n])
	}
	c := &cursor{t: t, r: h.Reader}
	c.drain(10)
	checkOnceInOrder(t, c.got, want)
	backlog := func(after store.Position) int64 {
		t.Helper()
		n, err := h.Reader.Backlog(ctx, 0, after)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := backlog(store.Position{}); n != 10 {
		t.Fatalf("backlog from the start = %d, want 10", n)
	}
	// The fifth record's position, read again.
	fifth := &cursor{t: t, r: h.Reader}
	fifth.read(5)
	if len(fifth.got) != 5 {
		t.Fatalf("read of 5 returned %d", len(fifth.got))
	}
	if n := backlog(fifth.after); n != 5 {
		t.Fatalf("backlog after the fifth = %d, want 5", n)
	}
	for range 2 { // idempotent
		if err := h.Reader.Trim(ctx, 0, fifth.after); err != nil {
			t.Fatal(err)
		}
	}
	rest := &cursor{t: t, r: h.Reader}
	rest.drain(10)
	checkOnceInOrder(t, rest.got, want[5:])
	if n := backlog(store.Position{}); n != 5 {
		t.Fatalf("backlog from the start after a trim of 5 = %d, want 5", n)
	}
	if err := h.Reader.Trim(ctx, 0, c.after); err != nil {
		t.Fatal(err)
	}
	if n := backlog(store.Position{}); n != 0 {
		t.Fatalf("backlog after trimming everything = %d, want 0", n)
	}
}

func watch(t *testing.T, open Open) {
	h := open(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	woken := make(chan struct{}, 1)
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- h.Reader.Watch(ctx, func() {
			select {
			case woken <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case err := <-watchErr:
		if errors.Is(err, source.ErrNoWatch) {
			t.Skip("the reader does not notify (source.ErrNoWatch): its owner wakes sessions another way")
		}
		t.Fatalf("Watch ended before any write: %v", err)
	case <-time.After(200 * time.Millisecond): // watching, it seems
	}
	// A wake may come before the write (a watch starting up); the one
	// that counts comes after it.
	select {
	case <-woken:
	default:
	}
	write(t, h, written{"PO-1", 1})
	select {
	case <-woken:
	case err := <-watchErr:
		t.Fatalf("Watch ended: %v", err)
	case <-ctx.Done():
		t.Fatal("no wake within 20s of a committed write")
	}
}
