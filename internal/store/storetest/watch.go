package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// RunWatch holds the rules of the notices a store sends its nodes
// (store.Watcher): an append wakes the readers, every change a node
// answers by balancing tells it to balance, and a watch ends with its
// context or its store. open returns a fresh store; the suite migrates it
// if it has a schema. A store that is no store.Watcher skips them.
func RunWatch(t *testing.T, open func(t *testing.T) PoolStore) {
	setup := func(t *testing.T) (PoolStore, context.Context) { return prepared(t, open) }

	t.Run("BufferNotice", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		w := startWatch(t, ctx, s)
		w.listening(t, ctx, s, "src")
	})

	t.Run("SessionsNotices", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		mustAddBuffer(t, ctx, s, "src", 1)
		joinNodes(t, ctx, s, "a")
		// claimed claims the session for a, then does what a does with it.
		claimed := func(do func(l store.Lease) error) func() error {
			return func() error {
				l, err := s.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
				if err != nil {
					return err
				}
				return do(l)
			}
		}
		w := startWatch(t, ctx, s)
		w.listening(t, ctx, s, "src")
		for _, change := range []struct {
			name string
			do   func() error
		}{
			{"Join", func() error { return s.Join(ctx, node("b")) }},
			{"AddSource", func() error {
				return s.AddSource(ctx, store.Source{Name: "more", Kind: store.KindBuffer, Partitions: 1, Enabled: true})
			}},
			{"SetSourceEnabled", func() error { return s.SetSourceEnabled(ctx, "more", false) }},
			{"SetSourcePaused", func() error { return s.SetSourcePaused(ctx, "more", true) }},
			{"Release", claimed(func(l store.Lease) error { return s.Release(ctx, l, "a") })},
			{"GiveUp", claimed(func(l store.Lease) error { return s.GiveUp(ctx, l, "a", "unreachable") })},
			{"ExpireLeases", claimed(func(store.Lease) error {
				if n, err := s.ExpireLeases(ctx, "a"); err != nil || n != 1 {
					return fmt.Errorf("%d leases expired, %v; want 1", n, err)
				}
				return nil
			})},
			{"Leave", func() error { return s.Leave(ctx, "a") }},
		} {
			w.drain()
			if err := change.do(); err != nil {
				t.Fatalf("%s: %v", change.name, err)
			}
			w.wait(t, "sessions", change.name)
		}
		w.stop(t)
	})

	// A watch ends when its store is closed, with an error (not ctx's):
	// a node's watch loop must not take a closed store for a quiet one.
	t.Run("EndsOnClose", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		c, ok := s.(io.Closer)
		if !ok {
			t.Skip("the store has no Close")
		}
		w := startWatch(t, ctx, s)
		_ = c.Close()
		select {
		case err := <-w.done:
			if err == nil || errors.Is(err, context.Canceled) {
				t.Fatalf("Watch of a closed store = %v, want an error of its own", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Watch did not end when its store was closed")
		}
	})
}

// watch is a Watch running on its own goroutine, its notices on got.
type watch struct {
	got    chan store.Notice
	done   chan error
	cancel context.CancelFunc
}

// startWatch starts watching s, or skips the test if s is no
// store.Watcher. The watch ends with the test.
func startWatch(t *testing.T, ctx context.Context, s PoolStore) *watch {
	t.Helper()
	wr, ok := s.(store.Watcher)
	if !ok {
		t.Skip("the store has no Watch")
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watch{got: make(chan store.Notice, 100), done: make(chan error, 1), cancel: cancel}
	go func() { w.done <- wr.Watch(wctx, func(n store.Notice) { w.got <- n }) }()
	t.Cleanup(cancel)
	return w
}

// listening appends to source until a buffer notice comes: the watch may
// need a moment to start listening.
func (w *watch) listening(t *testing.T, ctx context.Context, s PoolStore, source string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case n := <-w.got:
			if n.Topic == "buffer" && (n.Source == source || n.Source == "") {
				return
			}
		case <-tick.C:
			if err := s.AppendBuffer(ctx, source, []store.BufferEvent{{Payload: []byte(`{}`)}}); err != nil {
				t.Fatal(err)
			}
		case err := <-w.done:
			t.Fatalf("Watch ended early: %v", err)
		case <-deadline:
			t.Fatal("no buffer notice within 10s of appending")
		}
	}
}

// drain drops the notices received so far.
func (w *watch) drain() {
	for {
		select {
		case <-w.got:
		default:
			return
		}
	}
}

// wait waits for a notice of topic, other topics aside.
func (w *watch) wait(t *testing.T, topic, after string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case n := <-w.got:
			if n.Topic == topic {
				return
			}
		case err := <-w.done:
			t.Fatalf("Watch ended early: %v", err)
		case <-deadline:
			t.Fatalf("no %q notice within 10s of %s", topic, after)
		}
	}
}

// stop ends the watch, which must return its context's error.
func (w *watch) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	if err := <-w.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch after its context ended = %v, want context.Canceled", err)
	}
}
