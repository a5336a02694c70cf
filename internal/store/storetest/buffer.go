package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// RunBuffer holds the rules of the ingest buffer: appends land in their
// partition in order, after everything appended before them, trimmed or
// not; an append that cannot land whole lands not at all. open returns a
// fresh store; the suite migrates it if it has a schema.
func RunBuffer(t *testing.T, open func(t *testing.T) PoolStore) {
	setup := func(t *testing.T) (PoolStore, context.Context) { return prepared(t, open) }

	t.Run("AppendReadTrim", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 2)
		mustAddBuffer(t, ctx, s, "other", 1)
		var evs []store.BufferEvent
		for i := 0; i < 10; i++ {
			evs = append(evs, store.BufferEvent{Partition: i % 2, Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		}
		if err := s.AppendBuffer(ctx, "src", evs); err != nil {
			t.Fatalf("AppendBuffer: %v", err)
		}
		if err := s.AppendBuffer(ctx, "other", []store.BufferEvent{{Payload: []byte(`{"n":99}`)}}); err != nil {
			t.Fatal(err)
		}
		p1 := store.SessionID{Source: "src", Partition: 1}
		recs, held, err := s.ReadBuffer(ctx, p1, store.Position{}, 100)
		if err != nil || held || len(recs) != 5 {
			t.Fatalf("ReadBuffer = %d records, held %v, %v; want 5", len(recs), held, err)
		}
		for i, r := range recs {
			if want := fmt.Sprintf(`{"n":%d}`, 2*i+1); string(r.Payload) != want {
				t.Errorf("record %d = %s, want %s", i, r.Payload, want)
			}
			if i > 0 && !recs[i-1].Position.Less(r.Position) {
				t.Errorf("positions not increasing: %v then %v", recs[i-1].Position, r.Position)
			}
			if r.WrittenAt.IsZero() || time.Since(r.WrittenAt) > time.Minute {
				t.Errorf("record %d WrittenAt = %v", i, r.WrittenAt)
			}
		}
		two, _, _ := s.ReadBuffer(ctx, p1, recs[1].Position, 2)
		if len(two) != 2 || two[0].Position != recs[2].Position {
			t.Fatalf("ReadBuffer after the second record, limit 2 = %+v", two)
		}
		if n, err := s.BufferBacklog(ctx, p1, recs[1].Position); err != nil || n != 3 {
			t.Fatalf("BufferBacklog = %d, %v; want 3", n, err)
		}
		if err := s.TrimBuffer(ctx, p1, recs[2].Position); err != nil {
			t.Fatal(err)
		}
		if err := s.TrimBuffer(ctx, p1, recs[2].Position); err != nil {
			t.Fatalf("TrimBuffer must be idempotent: %v", err)
		}
		rest, _, _ := s.ReadBuffer(ctx, p1, store.Position{}, 100)
		if len(rest) != 2 || rest[0].Position != recs[3].Position {
			t.Fatalf("after trim: %d records", len(rest))
		}
		p0, _, _ := s.ReadBuffer(ctx, store.SessionID{Source: "src", Partition: 0}, store.Position{}, 100)
		if len(p0) != 5 {
			t.Fatalf("trim of partition 1 touched partition 0: %d left", len(p0))
		}
		// New appends come after the trimmed ones, never behind them.
		if err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Partition: 1, Payload: []byte(`{"n":10}`)}}); err != nil {
			t.Fatal(err)
		}
		after, _, _ := s.ReadBuffer(ctx, p1, recs[4].Position, 100)
		if len(after) != 1 || string(after[0].Payload) != `{"n":10}` {
			t.Fatalf("new append after trim: %+v", after)
		}
	})

	// Appends to an unknown source, to a source of another kind or to a
	// partition out of range are refused whole.
	t.Run("AppendChecks", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 2)
		if err := s.AddSource(ctx, store.Source{Name: "app", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true, DSN: "postgres://x/y", Table: "outbox"}); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendBuffer(ctx, "nope", []store.BufferEvent{{Payload: []byte(`{}`)}}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("append to an unknown source = %v, want ErrNotFound", err)
		}
		if err := s.AppendBuffer(ctx, "app", []store.BufferEvent{{Payload: []byte(`{}`)}}); err == nil {
			t.Errorf("append to a pg-outbox source succeeded")
		}
		err := s.AppendBuffer(ctx, "src", []store.BufferEvent{{Partition: 0, Payload: []byte(`{"n":1}`)}, {Partition: 2, Payload: []byte(`{"n":2}`)}})
		if err == nil {
			t.Errorf("append to partition 2 of 2 succeeded")
		}
		if n := buffered(t, ctx, s, "src", 2); n != 0 {
			t.Errorf("a refused append left %d events", n)
		}
	})
}
