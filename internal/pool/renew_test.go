package pool

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/source"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/memstore"
)

// TestRenewedKeepsSessionsClaimedSinceItBegan: a renewal whose statement
// ran before a claim committed does not return that lease. The session
// must not be taken for lost (it used to be stopped, and its lease then
// released as stale by the next renewal: a needless move under load).
func TestRenewedKeepsSessionsClaimedSinceItBegan(t *testing.T) {
	n := newTestNode(t, memstore.New(), DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	began := time.Now()
	old := store.Lease{SessionID: store.SessionID{Source: "s", Partition: 0}, Epoch: 3}
	fresh := store.Lease{SessionID: store.SessionID{Source: "s", Partition: 1}, Epoch: 5}
	gone := store.Lease{SessionID: store.SessionID{Source: "s", Partition: 2}, Epoch: 2}
	add := func(l store.Lease, claimedAt time.Time) func() bool {
		held := lease.New(t.Context(), l, began.Add(time.Second))
		s := bus.NewSession(n.cfg.Session, nil, n.self.ID, held,
			func(context.Context) (source.Reader, error) { return nil, nil }, n.log)
		n.sessions[l.SessionID] = &running{s: s, lease: held, cancel: func() {}, claimedAt: claimedAt}
		return func() bool { return held.Ctx().Err() != nil }
	}
	oldCanceled := add(old, began.Add(-time.Minute))
	freshCanceled := add(fresh, began.Add(time.Millisecond))
	goneCanceled := add(gone, began.Add(-time.Minute))
	n.claiming[store.SessionID{Source: "s", Partition: 3}] = true

	// The renewal saw old, and a lease being claimed right now (partition
	// 3, not started yet), but neither fresh (claimed after it began) nor
	// gone (lost to a peer).
	n.renewed([]store.Lease{old, {SessionID: store.SessionID{Source: "s", Partition: 3}, Epoch: 1}}, began, began.Add(2*time.Second))

	if oldCanceled() || n.sessions[old.SessionID] == nil {
		t.Error("a session the renewal returned was stopped")
	}
	if freshCanceled() || n.sessions[fresh.SessionID] == nil {
		t.Error("a session claimed after the renewal began was taken for lost")
	}
	if !goneCanceled() || n.sessions[gone.SessionID] != nil {
		t.Error("a session claimed before the renewal began, and missing from it, was kept")
	}
	n.wg.Wait() // no stale release may have started for partition 3
}

// TestRenewedKeepsBusyLeases: a lease the renewal returned busy (its row
// locked by the node's own batch in progress) keeps its session running on
// its current deadline, and is not released as stale when nothing runs it.
func TestRenewedKeepsBusyLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t, memstore.New(), DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		began := time.Now()
		deadline := began.Add(100 * time.Millisecond)
		busy := store.Lease{SessionID: store.SessionID{Source: "s", Partition: 0}, Epoch: 3}
		held := lease.New(t.Context(), busy, deadline)
		s := bus.NewSession(n.cfg.Session, nil, n.self.ID, held,
			func(context.Context) (source.Reader, error) { return nil, nil }, n.log)
		n.sessions[busy.SessionID] = &running{s: s, lease: held, cancel: func() {}, claimedAt: began.Add(-time.Minute)}

		busy.Busy = true
		notRunning := store.Lease{SessionID: store.SessionID{Source: "s", Partition: 1}, Epoch: 1, Busy: true}
		n.renewed([]store.Lease{busy, notRunning}, began, began.Add(time.Hour))

		if held.Ctx().Err() != nil || n.sessions[busy.SessionID] == nil {
			t.Error("a session whose lease came back busy was stopped")
		}
		// Its deadline did not move: it ends when the old one passes.
		if !held.Trusted() {
			t.Fatal("the lease is untrusted before its deadline")
		}
		time.Sleep(time.Until(deadline))
		synctest.Wait()
		if held.Trusted() {
			t.Error("a busy lease's deadline was extended")
		}
		n.wg.Wait() // no release may have started for the busy lease nobody runs
	})
}
