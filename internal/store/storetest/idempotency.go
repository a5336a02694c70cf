package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// RunIdempotentAppends holds the rules of AppendBufferIdempotent, the
// append of a request a client may retry: one key appends once, however
// often and however concurrently it is sent, until its retention ends.
// open returns a fresh store with no schema; the suite migrates it.
func RunIdempotentAppends(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.Store, context.Context) { return prepared(t, open) }

	t.Run("ReplayAndConflict", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 2)
		mustAddBuffer(t, ctx, s, "other", 1)
		evs := []store.BufferEvent{{Partition: 0, Payload: []byte(`{"n":1}`)}, {Partition: 1, Payload: []byte(`{"n":2}`)}}
		key := store.IdempotencyKey{Key: "req-1", BodyHash: []byte("hash-1")}
		resp := store.StoredResponse{Status: 200, Body: []byte(`{"accepted":2,"rejected":[]}`)}
		replay, err := s.AppendBufferIdempotent(ctx, "src", key, evs, resp)
		if err != nil || replay != nil {
			t.Fatalf("first call = %+v, %v; want no replay", replay, err)
		}
		if n := buffered(t, ctx, s, "src", 2); n != 2 {
			t.Fatalf("%d events buffered after the first call, want 2", n)
		}
		replay, err = s.AppendBufferIdempotent(ctx, "src", key, evs, store.StoredResponse{Status: 500, Body: []byte("other")})
		if err != nil || replay == nil {
			t.Fatalf("retry = %+v, %v; want a replay", replay, err)
		}
		if replay.Status != 200 || string(replay.Body) != string(resp.Body) || replay.Source != "src" || string(replay.BodyHash) != "hash-1" {
			t.Errorf("replay = %+v; want the first response", replay)
		}
		if age := time.Since(replay.CreatedAt); age < -time.Minute || age > time.Minute {
			t.Errorf("replay.CreatedAt = %v, not the time of the first call", replay.CreatedAt)
		}
		if n := buffered(t, ctx, s, "src", 2); n != 2 {
			t.Fatalf("%d events buffered after a retry, want still 2", n)
		}
		other := key
		other.BodyHash = []byte("hash-2")
		if replay, err := s.AppendBufferIdempotent(ctx, "src", other, evs, resp); !errors.Is(err, store.ErrIdempotencyConflict) || replay == nil {
			t.Fatalf("same key, other body = %+v, %v; want ErrIdempotencyConflict with the first response", replay, err)
		}
		if _, err := s.AppendBufferIdempotent(ctx, "other", key, evs[:1], resp); !errors.Is(err, store.ErrIdempotencyConflict) {
			t.Fatalf("same key, other source = %v; want ErrIdempotencyConflict", err)
		}
		if n := buffered(t, ctx, s, "src", 2) + buffered(t, ctx, s, "other", 1); n != 2 {
			t.Fatalf("%d events buffered after refused calls, want still 2", n)
		}
		// Nothing to append: the key is recorded all the same.
		empty := store.IdempotencyKey{Key: "req-empty", BodyHash: []byte("h")}
		if replay, err := s.AppendBufferIdempotent(ctx, "src", empty, nil, store.StoredResponse{Status: 422, Body: []byte(`{}`)}); err != nil || replay != nil {
			t.Fatalf("call without events = %+v, %v", replay, err)
		}
		if replay, err := s.AppendBufferIdempotent(ctx, "src", empty, nil, resp); err != nil || replay == nil || replay.Status != 422 {
			t.Fatalf("retry of a call without events = %+v, %v; want the recorded 422", replay, err)
		}
		if _, err := s.AppendBufferIdempotent(ctx, "nope", store.IdempotencyKey{Key: "k", BodyHash: []byte("h")}, evs, resp); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown source = %v, want ErrNotFound", err)
		}
		if err := s.AddSource(ctx, store.Source{Name: "app", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true, DSN: "postgres://u@h/db", Table: "bam_outbox"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendBufferIdempotent(ctx, "app", store.IdempotencyKey{Key: "k", BodyHash: []byte("h")}, evs[:1], resp); err == nil {
			t.Fatal("append to a pg-outbox source succeeded")
		}
		// A record past its retention frees the key, by the store's clock.
		short := store.IdempotencyKey{Key: "req-short", BodyHash: []byte("h1"), Retention: 300 * time.Millisecond}
		if _, err := s.AppendBufferIdempotent(ctx, "other", short, evs[:1], resp); err != nil {
			t.Fatal(err)
		}
		short.BodyHash = []byte("h2")
		testwait.Until(t, 10*time.Second, "the expired key to be free for another source", func() bool {
			replay, err := s.AppendBufferIdempotent(ctx, "other", short, evs[:1], resp)
			if err != nil && !errors.Is(err, store.ErrIdempotencyConflict) {
				t.Fatalf("call with an expiring key: %v", err)
			}
			return err == nil && replay == nil
		})
		if n := buffered(t, ctx, s, "other", 1); n != 2 {
			t.Fatalf("%d events in other after the key expired and was used again, want 2", n)
		}
	})

	// RecordedResponse reads a record without appending, so that a retry
	// is answered before its source is checked again.
	t.Run("RecordedResponse", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		key := store.IdempotencyKey{Key: "req-1", BodyHash: []byte("hash-1")}
		if r, err := s.RecordedResponse(ctx, key); err != nil || r != nil {
			t.Fatalf("RecordedResponse of a key never used = %+v, %v; want nil", r, err)
		}
		resp := store.StoredResponse{Status: 200, Body: []byte(`{"accepted":1,"rejected":[]}`)}
		if _, err := s.AppendBufferIdempotent(ctx, "src", key, []store.BufferEvent{{Payload: []byte(`{}`)}}, resp); err != nil {
			t.Fatal(err)
		}
		r, err := s.RecordedResponse(ctx, key)
		if err != nil || r == nil || r.Status != 200 || string(r.Body) != string(resp.Body) || r.Source != "src" || string(r.BodyHash) != "hash-1" {
			t.Fatalf("RecordedResponse = %+v, %v; want the first response, its source and body hash", r, err)
		}
		if age := time.Since(r.CreatedAt); age < -time.Minute || age > time.Minute {
			t.Errorf("CreatedAt = %v, not the time of the first call", r.CreatedAt)
		}
		if err := r.Answers("src", key); err != nil {
			t.Errorf("the record does not answer its own retry: %v", err)
		}
		// Only read: nothing appended.
		if n := buffered(t, ctx, s, "src", 1); n != 1 {
			t.Fatalf("%d events buffered, want 1", n)
		}
		// Past its retention, by the store's clock, the key has no record.
		short := store.IdempotencyKey{Key: "req-1", Retention: time.Millisecond}
		testwait.Until(t, 10*time.Second, "the record to expire", func() bool {
			r, err := s.RecordedResponse(ctx, short)
			if err != nil {
				t.Fatal(err)
			}
			return r == nil
		})
	})

	t.Run("Purge", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		resp := store.StoredResponse{Status: 200, Body: []byte(`{}`)}
		call := func(key, body string, retention time.Duration) error {
			t.Helper()
			k := store.IdempotencyKey{Key: key, BodyHash: []byte(body), Retention: retention}
			replay, err := s.AppendBufferIdempotent(ctx, "src", k, nil, resp)
			if err != nil && !errors.Is(err, store.ErrIdempotencyConflict) {
				t.Fatalf("AppendBufferIdempotent(%s): %v", key, err)
			}
			if err == nil && replay != nil {
				t.Fatalf("AppendBufferIdempotent(%s) replayed", key)
			}
			return err
		}
		old := store.IdempotencyPurgeBatch + 50
		for i := range old {
			call(fmt.Sprintf("old-%03d", i), "a", time.Hour)
		}
		time.Sleep(20 * time.Millisecond) // the store's clock must pass 1 ms beyond these keys' writes
		// A call that deems records older than 1ms expired purges a batch
		// of them (the others' retention is the caller's to decide).
		call("new", "a", time.Millisecond)
		// Purged keys are free again; the others still answer (another
		// body: a conflict).
		free := 0
		for i := range old {
			if call(fmt.Sprintf("old-%03d", i), "b", time.Hour) == nil {
				free++
			}
		}
		if free != store.IdempotencyPurgeBatch {
			t.Fatalf("%d expired keys purged by one call, want %d", free, store.IdempotencyPurgeBatch)
		}
		// Removing a source removes its keys.
		if err := call("new", "b", time.Hour); !errors.Is(err, store.ErrIdempotencyConflict) {
			t.Fatalf("key new with another body = %v, want ErrIdempotencyConflict", err)
		}
		if _, err := s.RemoveSource(ctx, "src", store.RemoveOptions{}); err != nil {
			t.Fatal(err)
		}
		mustAddBuffer(t, ctx, s, "src", 1)
		if err := call("new", "b", time.Hour); err != nil {
			t.Fatalf("key of a removed source, used again = %v, want free", err)
		}
	})

	t.Run("Concurrently", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 4)
		const callers = 8
		key := store.IdempotencyKey{Key: "same-key", BodyHash: []byte("same-body")}
		evs := []store.BufferEvent{{Partition: 0, Payload: []byte(`{}`)}, {Partition: 1, Payload: []byte(`{}`)}, {Partition: 3, Payload: []byte(`{}`)}}
		type answer struct {
			replay *store.StoredResponse
			err    error
		}
		answers := make(chan answer, callers)
		start := make(chan struct{})
		for i := 0; i < callers; i++ {
			go func() {
				<-start
				r, err := s.AppendBufferIdempotent(ctx, "src", key, evs, store.StoredResponse{Status: 200, Body: []byte(fmt.Sprint(i))})
				answers <- answer{r, err}
			}()
		}
		close(start)
		firsts, replays := 0, 0
		for i := 0; i < callers; i++ {
			a := <-answers
			switch {
			case a.err != nil:
				t.Errorf("concurrent call: %v", a.err)
			case a.replay == nil:
				firsts++
			default:
				replays++
			}
		}
		if firsts != 1 || replays != callers-1 {
			t.Fatalf("%d calls appended and %d replayed; want 1 and %d", firsts, replays, callers-1)
		}
		if n := buffered(t, ctx, s, "src", 4); n != len(evs) {
			t.Fatalf("%d events buffered by %d concurrent calls with one key, want %d", n, callers, len(evs))
		}
	})
}
