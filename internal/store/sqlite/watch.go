package sqlite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// errClosed ends a Watch when its store is closed.
var errClosed = errors.New("sqlite store closed")

// Watch implements store.Watcher. Appends and session changes made through
// this Store reach fn at once; appends by other processes are found by
// polling the buffer's AUTOINCREMENT sequence every PollInterval (a read of
// one row that never blocks, in WAL mode) and reported with an empty
// Source. Session changes by other processes are not reported: nodes also
// balance on a timer. fn runs on the caller's goroutine, one notice at a
// time. Watch returns ctx's error when ctx ends.
func (s *Store) Watch(ctx context.Context, fn func(store.Notice)) error {
	sub := s.hub.subscribe()
	defer s.hub.unsubscribe(sub)

	last, err := s.bufferSeq(ctx)
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
			seq, err := s.bufferSeq(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("watch sqlite store %s: %w", s.path, err)
			}
			if seq != last {
				last = seq
				fn(store.Notice{Topic: "buffer"})
			}
		}
	}
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
