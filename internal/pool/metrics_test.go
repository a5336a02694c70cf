package pool

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// countingMetrics counts what a node reports through Metrics.
type countingMetrics struct {
	mu       sync.Mutex
	changes  map[OwnerChange]int
	renewals int
	rounds   int
	moves    int
}

func (m *countingMetrics) OwnerChanged(_ store.SessionID, cause OwnerChange) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.changes == nil {
		m.changes = map[OwnerChange]int{}
	}
	m.changes[cause]++
}

func (m *countingMetrics) Renewed(time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.renewals++
}

func (m *countingMetrics) Balanced(handedOver int, _ error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rounds++
	m.moves += handedOver
}

func (m *countingMetrics) count(cause OwnerChange) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changes[cause]
}

// TestOwnerChangesAreCountedByCause drives two nodes through a join, a
// silence past their leases, a return and a death, and checks that each
// owner change is counted once, with its cause, by the node it happened to.
func TestOwnerChangesAreCountedByCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 4)
		defer p.stopAll()
		ma, mb := &countingMetrics{}, &countingMetrics{}
		a := p.startWith(Config{Name: "a", Metrics: ma}, nil)
		p.waitOwned(10*time.Second, "a to own every session", map[*fakeNode]int{a: 4})
		b := p.startWith(Config{Name: "b", Metrics: mb}, nil)
		p.waitOwned(10*time.Second, "a and b to own two sessions each", map[*fakeNode]int{a: 2, b: 2})
		testwait.Until(t, 5*time.Second, "the handoffs to be counted", func() bool { return ma.count(HandedOver) == 2 })
		if c, hb := ma.count(Claimed), mb.count(Claimed); c != 4 || hb != 2 {
			t.Errorf("claims: a %d, b %d; want 4 and 2", c, hb)
		}
		ma.mu.Lock()
		moves, rounds, renewals := ma.moves, ma.rounds, ma.renewals
		ma.mu.Unlock()
		if moves != 2 || rounds == 0 || renewals == 0 {
			t.Errorf("a: %d moves in %d rounds, %d renewals; want 2 moves, and rounds and renewals", moves, rounds, renewals)
		}

		// b falls silent (paused, cut off): a takes its sessions when their
		// leases expire; back, b finds them lost and gets two back.
		b.view.silent.Store(true)
		p.waitOwned(10*time.Second, "a to own every session", map[*fakeNode]int{a: 4})
		testwait.Until(t, 5*time.Second, "the takeovers to be counted", func() bool { return ma.count(TakenFromExpired) == 2 })
		b.view.silent.Store(false)
		p.waitOwned(10*time.Second, "b to get two sessions back", map[*fakeNode]int{a: 2, b: 2})
		testwait.Until(t, 5*time.Second, "b's losses and a's handoffs to be counted", func() bool {
			return mb.count(Lost) == 2 && ma.count(HandedOver) == 4 && mb.count(Claimed) == 4
		})

		// b dies: a takes its sessions over, found dead.
		p.kill(b)
		p.waitOwned(10*time.Second, "a to own every session", map[*fakeNode]int{a: 4})
		testwait.Until(t, 5*time.Second, "the takeovers from a dead node to be counted", func() bool { return ma.count(TakenFromDead) == 2 })
		if n := ma.count(TakenFromExpired); n != 2 {
			t.Errorf("a counted %d takeovers after expiry, want still 2", n)
		}
		if n := ma.count(Lost); n != 0 {
			t.Errorf("a counted %d sessions lost, want 0", n)
		}
	})
}
