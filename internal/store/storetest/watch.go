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
		startWatch(t, ctx, s).listening(t, ctx, s, "src")
	})

	// Another node's appends, through another store on the same database,
	// wake this node's readers too.
	t.Run("BufferNoticeOfAPeer", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		peer := openPeer(t, s)
		mustAddBuffer(t, ctx, s, "src", 1)
		startWatch(t, ctx, s).listening(t, ctx, peer, "src")
	})

	t.Run("SessionsNotices", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		sessionsNotices(t, ctx, s, s)
	})

	// The changes another node makes, through another store on the same
	// database, tell this node to balance too.
	t.Run("SessionsNoticesOfAPeer", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		sessionsNotices(t, ctx, s, openPeer(t, s))
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

// sessionsNotices checks that a watch of s sees a "sessions" notice after
// each change made through by (s itself, or a peer) that a node answers by
// balancing.
func sessionsNotices(t *testing.T, ctx context.Context, s, by PoolStore) {
	t.Helper()
	mustAddBuffer(t, ctx, by, "src", 1)
	joinNodes(t, ctx, by, "a")
	// claimed claims the session for a, then does what a does with it.
	claimed := func(do func(l store.Lease) error) func() error {
		return func() error {
			l, err := by.Claim(ctx, store.SessionID{Source: "src"}, "a", "", time.Minute)
			if err != nil {
				return err
			}
			return do(l)
		}
	}
	type change struct {
		name string
		do   func() error
	}
	changes := []change{
		{"Join", func() error { return by.Join(ctx, node("b")) }},
		{"AddSource", func() error {
			return by.AddSource(ctx, store.Source{Name: "more", Kind: store.KindBuffer, Partitions: 1, Enabled: true})
		}},
		{"SetSourceEnabled", func() error { return by.SetSourceEnabled(ctx, "more", false) }},
		{"SetSourcePaused", func() error { return by.SetSourcePaused(ctx, "more", true) }},
		{"Release", claimed(func(l store.Lease) error { return by.Release(ctx, l, "a") })},
		{"GiveUp", claimed(func(l store.Lease) error { return by.GiveUp(ctx, l, "a", "unreachable") })},
		{"ExpireLeases", claimed(func(store.Lease) error {
			if n, err := by.ExpireLeases(ctx, "a"); err != nil || n != 1 {
				return fmt.Errorf("%d leases expired, %v; want 1", n, err)
			}
			return nil
		})},
		{"Leave", func() error { return by.Leave(ctx, "a") }},
	}
	if r, ok := by.(interface {
		RemoveSource(ctx context.Context, name string, opt store.RemoveOptions) (store.Removal, error)
	}); ok {
		changes = append(changes, change{"RemoveSource", func() error {
			_, err := r.RemoveSource(ctx, "more", store.RemoveOptions{})
			return err
		}})
	}
	w := startWatch(t, ctx, s)
	w.listening(t, ctx, by, "src")
	for _, change := range changes {
		w.drain()
		if err := change.do(); err != nil {
			t.Fatalf("%s: %v", change.name, err)
		}
		w.wait(t, store.TopicSessions, change.name)
	}
	w.stop(t)
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
			if n.Topic == store.TopicBuffer && (n.Source == source || n.Source == "") {
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
func (w *watch) wait(t *testing.T, topic store.Topic, after string) {
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
