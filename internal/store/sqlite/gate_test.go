package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/testwait"
)

// enqueue starts a waiter and returns once it is queued; got receives its
// name when it gets the gate.
func enqueue(t *testing.T, g *writeGate, ctx context.Context, name string, urgent bool, got chan<- string) {
	t.Helper()
	want := len(g.queued()) + 1
	go func() {
		if err := g.acquire(ctx, urgent); err != nil {
			got <- name + ": " + err.Error()
			return
		}
		got <- name
	}()
	testwait.Until(t, 5*time.Second, name+" to queue", func() bool { return len(g.queued()) >= want })
}

func (g *writeGate) queued() []chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append(append([]chan struct{}{}, g.urgent...), g.normal...)
}

func TestGateOrder(t *testing.T) {
	var g writeGate
	ctx := context.Background()
	if err := g.acquire(ctx, false); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	enqueue(t, &g, ctx, "batch1", false, got)
	enqueue(t, &g, ctx, "batch2", false, got)
	enqueue(t, &g, ctx, "renew1", true, got)
	enqueue(t, &g, ctx, "renew2", true, got)
	// Lease writers go first, but not twice in a row while batches wait.
	for _, want := range []string{"renew1", "batch1", "renew2", "batch2"} {
		g.release()
		if name := <-got; name != want {
			t.Fatalf("gate went to %s, want %s", name, want)
		}
	}
	g.release()
	if len(g.queued()) != 0 || g.held {
		t.Fatalf("gate not free after the last release")
	}
}

func TestGateCanceledWaiter(t *testing.T) {
	var g writeGate
	if err := g.acquire(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 10)
	enqueue(t, &g, ctx, "canceled", false, got)
	enqueue(t, &g, context.Background(), "next", false, got)
	cancel()
	if name := <-got; name != "canceled: "+context.Canceled.Error() {
		t.Fatalf("got %s, want the canceled waiter to give up", name)
	}
	g.release()
	if name := <-got; name != "next" {
		t.Fatalf("gate went to %s, want next", name)
	}
	g.release()

}

// A waiter canceled just as the gate is handed to it must pass it on, not
// leak it: race cancel against release many times and check the gate still
// opens.
func TestGateCancelRacesRelease(t *testing.T) {
	var g writeGate
	for range 200 {
		if err := g.acquire(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan string, 1)
		enqueue(t, &g, ctx, "w", false, got)
		go cancel()
		g.release()
		if name := <-got; name == "w" {
			g.release()
		}
		cancel()
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := g.acquire(wctx, false); err != nil {
			t.Fatalf("gate leaked: %v", err)
		}
		wcancel()
		g.release()
	}
}
