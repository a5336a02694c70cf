package pool

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestHealth: a node reports that it joined, holds its liveness lock,
// heartbeats and runs its sessions, each with its progress; and what
// changes when its renewals fail, when its lock is lost, and when it stops.
func TestHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePool(t, 1, 3)
		defer p.stopAll()
		if h := newTestNode(t, &cutStore{Store: p.st}, Config{Name: "unstarted"}, testLogger(t)).Health(); h.Joined || !h.LastHeartbeat.IsZero() || h.Liveness != LivenessLost {
			t.Fatalf("a node not started: %+v", h)
		}
		n := p.startWith(Config{Name: "healthy"}, func(fn *fakeNode) { fn.view.noRelock.Store(true) })
		time.Sleep(2 * time.Second)
		cfg := DefaultConfig()
		h := n.Health()
		if !h.Joined || h.Stopping || h.Liveness != LivenessHeld || time.Since(h.LastHeartbeat) > cfg.RenewInterval {
			t.Fatalf("a working node: %+v", h)
		}
		if len(h.Sessions) != 3 {
			t.Fatalf("sessions %+v, want 3", h.Sessions)
		}
		for i, s := range h.Sessions {
			if s.Partition != i || s.Epoch != 1 || !s.HasProgress || s.Progress.Failures != 0 || s.Progress.LastSuccess.IsZero() {
				t.Errorf("session %d: %+v", i, s)
			}
		}

		n.view.silent.Store(true)
		time.Sleep(2 * cfg.RenewInterval)
		if age := time.Since(n.Health().LastHeartbeat); age < cfg.RenewInterval {
			t.Errorf("heartbeat %v old while every renewal fails", age)
		}
		n.view.silent.Store(false)
		time.Sleep(2 * cfg.RenewInterval)
		if age := time.Since(n.Health().LastHeartbeat); age > cfg.RenewInterval {
			t.Errorf("heartbeat %v old after renewals work again", age)
		}

		p.st.DropLiveness(n.self.LockKey)
		time.Sleep(100 * time.Millisecond)
		if l := n.Health().Liveness; l != LivenessLost {
			t.Errorf("liveness %s after the lock was dropped and cannot be taken again", l)
		}

		if err := n.stop(); err != nil {
			t.Fatal(err)
		}
		if h := n.Health(); h.Joined || !h.Stopping || len(h.Sessions) != 0 {
			t.Errorf("a stopped node: %+v", h)
		}
	})
}
