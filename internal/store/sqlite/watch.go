package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

var _ store.Watcher = (*Store)(nil)

// errClosed ends a Watch when its store is closed.
var errClosed = errors.New("sqlite store closed")

// Watch implements store.Watcher. Appends and session changes made through
// this Store reach fn at once. Those of other processes are found by
// polling, every PollInterval, the buffer's AUTOINCREMENT sequence and the
// 'sessions' and 'settings' counters of bam_notices (one read of three rows
// that never blocks, in WAL mode): an append by another process is reported
// with an empty Source, a session change as Topic "sessions", a pool
// setting change as Topic "settings". A counter move made
// by this Store, already reported, is not reported again. fn runs on the
// caller's goroutine, one notice at a time. Watch returns ctx's error when
// ctx ends.
func (s *Store) Watch(ctx context.Context, fn func(store.Notice)) error {
	sub := s.hub.subscribe()
	defer s.hub.unsubscribe(sub)

	last, err := s.sequences(ctx)
	if err != nil {
		return fmt.Errorf("watch sqlite store %s: %w", s.path, err)
	}
	tick := time.NewTicker(cmp.Or(s.PollInterval, DefaultPollInterval))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return errClosed
		case <-sub.wake:
			for _, n := range sub.take() {
				fn(n)
			}
		case <-tick.C:
			seqs, err := s.sequences(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("watch sqlite store %s: %w", s.path, err)
			}
			if seqs.buffer != last.buffer {
				fn(store.Notice{Topic: store.TopicBuffer})
			}
			if seqs.sessions != last.sessions && !s.own.covers(last.sessions, seqs.sessions) {
				fn(store.Notice{Topic: store.TopicSessions})
			}
			if seqs.settings != last.settings {
				fn(store.Notice{Topic: store.TopicSettings})
			}
			last = seqs
		}
	}
}

// sequences is what Watch polls. Both only grow.
type sequences struct {
	buffer   int64 // the highest buffer id ever assigned, by any process
	sessions int64 // bam_notices' 'sessions' counter
	settings int64 // bam_notices' 'settings' counter (pool settings)
}

func (s *Store) sequences(ctx context.Context) (sequences, error) {
	var seqs sequences
	err := s.db.QueryRowContext(ctx, `
		SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'bam_buffer'), 0),
		       (SELECT seq FROM bam_notices WHERE topic = 'sessions'),
		       coalesce((SELECT seq FROM bam_notices WHERE topic = 'settings'), 0)`).Scan(&seqs.buffer, &seqs.sessions, &seqs.settings)
	return seqs, err
}

// bumpSessions moves the 'sessions' counter, in the transaction that makes
// the change, and returns its new value for sessionsChanged.
func bumpSessions(ctx context.Context, tx *sql.Tx) (int64, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `UPDATE bam_notices SET seq = seq + 1 WHERE topic = 'sessions' RETURNING seq`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("count the session change: %w", err)
	}
	return seq, nil
}

// sessionsChanged tells this process's watchers, after the commit of a
// change counted as seq, and remembers seq so that their poll does not
// report it again. (A poll that runs between the commit and this call
// reports it twice: a hint too many, which costs a balance round.)
func (s *Store) sessionsChanged(seq int64) {
	s.own.add(seq)
	s.hub.publish(store.Notice{Topic: store.TopicSessions})
}

// ownSeqs remembers the last values of the 'sessions' counter that this
// Store set.
type ownSeqs struct {
	mu   sync.Mutex
	ring [64]int64
	n    int
}

func (o *ownSeqs) add(seq int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ring[o.n%len(o.ring)] = seq
	o.n++
}

// covers reports whether every value in (from, to] is one of ours.
func (o *ownSeqs) covers(from, to int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if to-from > int64(min(o.n, len(o.ring))) {
		return false
	}
	for v := from + 1; v <= to; v++ {
		if !slices.Contains(o.ring[:], v) {
			return false
		}
	}
	return true
}

// hub fans this process's notices out to its watchers. Publishing never
// blocks: each subscriber keeps a set of pending notices and a wake signal,
// so a slow watcher coalesces notices instead of stalling AppendBuffer.
type hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	wake    chan struct{} // capacity 1: "pending is not empty"
	mu      sync.Mutex
	pending []store.Notice // without duplicates, in arrival order
}

func (h *hub) subscribe() *subscriber {
	sub := &subscriber{wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[*subscriber]struct{}{}
	}
	h.subs[sub] = struct{}{}
	return sub
}

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, sub)
}

func (h *hub) publish(n store.Notice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		sub.mu.Lock()
		if !slices.Contains(sub.pending, n) {
			sub.pending = append(sub.pending, n)
		}
		sub.mu.Unlock()
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// take returns and clears the pending notices.
func (sub *subscriber) take() []store.Notice {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	out := sub.pending
	sub.pending = nil
	return out
}
