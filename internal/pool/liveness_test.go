package pool

import (
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// These tests drive the death-verdict rule (doc.go, "Death verdicts") with
// made-up looks; the tests with whole nodes are in verdicts_test.go.

const (
	testTTL     = 3 * time.Second
	testRenew   = time.Second
	testConfirm = 200 * time.Millisecond
	selfKey     = 1
	peerKey     = 2
)

// clockedLook builds looks of one peer "p" whose heartbeat was at beat (store
// clock), seen at store time storeNow and local time now.
type clockedLook struct {
	t0 time.Time // local clock origin
	s0 time.Time // store clock origin, deliberately far from t0
}

func newClockedLook() clockedLook {
	t0 := time.Now()
	return clockedLook{t0: t0, s0: t0.Add(-17 * time.Minute)}
}

// at returns the look at local offset now, the store's clock at offset
// now too, the peer's last heartbeat at store offset beat, and the locks
// held as given.
func (c clockedLook) at(now, beat time.Duration, selfHeld, peerHeld bool) look {
	storeNow := c.s0.Add(now)
	hb := c.s0.Add(beat)
	return look{
		now:     c.t0.Add(now),
		peers:   []store.NodeRow{{ID: "p", LockKey: peerKey, HeartbeatAt: hb, HeartbeatAge: storeNow.Sub(hb)}},
		held:    map[int64]bool{selfKey: selfHeld, peerKey: peerHeld},
		selfKey: selfKey,
	}
}

func watching() *deathWatch {
	w := newDeathWatch(testTTL, testRenew, testConfirm)
	w.ownTaken(time.Now().Add(-time.Hour), false)
	return w
}

func judgeOne(t *testing.T, w *deathWatch, l look) (verdict, time.Duration) {
	t.Helper()
	v, relook := w.judge(l)
	return v["p"], relook
}

func TestVerdictLockGoneIsConfirmedBeforeDeath(t *testing.T) {
	c, w := newClockedLook(), watching()
	ms := time.Millisecond
	// A SIGKILL at 1000 ms: the last heartbeat was at 900 ms.
	if v, relook := judgeOne(t, w, c.at(1050*ms, 900*ms, true, false)); v != peerAlive || relook != testConfirm {
		t.Fatalf("first look without the lock = %v, relook %v; want alive, relook %v", v, relook, testConfirm)
	}
	if v, relook := judgeOne(t, w, c.at(1150*ms, 900*ms, true, false)); v != peerAlive || relook != 100*ms {
		t.Fatalf("look before the confirmation = %v, relook %v; want alive, relook 100ms", v, relook)
	}
	if v, _ := judgeOne(t, w, c.at(1250*ms, 900*ms, true, false)); v != peerDied {
		t.Fatalf("lock still gone and no heartbeat %v later = %v; want died", testConfirm, v)
	}
}

func TestVerdictLockBackInTimeKeepsThePeer(t *testing.T) {
	c, w := newClockedLook(), watching()
	ms := time.Millisecond
	judgeOne(t, w, c.at(1050*ms, 900*ms, true, false))
	if v, relook := judgeOne(t, w, c.at(1250*ms, 900*ms, true, true)); v != peerAlive || relook != 0 {
		t.Fatalf("lock back = %v, relook %v; want alive, none", v, relook)
	}
	// A later loss starts a new confirmation.
	if v, _ := judgeOne(t, w, c.at(5000*ms, 4900*ms, true, false)); v != peerAlive {
		t.Fatalf("new loss, first look = %v; want alive", v)
	}
}

func TestVerdictHeartbeatWithoutLockKeepsThePeer(t *testing.T) {
	c, w := newClockedLook(), watching()
	ms := time.Millisecond
	judgeOne(t, w, c.at(1050*ms, 900*ms, true, false))
	// It heartbeat at 1100 ms, after the first look (store time 1050 ms):
	// it lives without its lock.
	if v, _ := judgeOne(t, w, c.at(1250*ms, 1100*ms, true, false)); v != peerAlive {
		t.Fatalf("heartbeat since the first look = %v; want alive", v)
	}
	// Judged by heartbeat alone from then on, however long the lock stays
	// gone...
	if v, relook := judgeOne(t, w, c.at(3000*ms, 2100*ms, true, false)); v != peerAlive || relook != 0 {
		t.Fatalf("lockless but heartbeating = %v, relook %v; want alive, none", v, relook)
	}
	if v, _ := judgeOne(t, w, c.at(4000*ms, 2100*ms, true, false)); v != peerAlive {
		t.Fatalf("lockless, heartbeat 1.9 s old = %v; want alive", v)
	}
	// ...until it misses a heartbeat (none for two renew intervals): then
	// both signals agree, before its heartbeat is stale.
	if v, _ := judgeOne(t, w, c.at(4100*ms, 2100*ms, true, false)); v != peerDied {
		t.Fatalf("lockless, a heartbeat missed = %v; want died", v)
	}
	// A lockless peer seen again after it went stale is dead too.
	judgeOne(t, w, c.at(6000*ms, 5900*ms, true, false))
	judgeOne(t, w, c.at(6100*ms, 6050*ms, true, false))
	if v, _ := judgeOne(t, w, c.at(9200*ms, 6050*ms, true, false)); v != peerDied {
		t.Fatalf("stale heartbeat and no lock = %v; want died", v)
	}
}

func TestVerdictStaleHeartbeatWithLockIsSilent(t *testing.T) {
	c, w := newClockedLook(), watching()
	ms := time.Millisecond
	// Paused at 1000 ms: lock held, heartbeat stops.
	if v, _ := judgeOne(t, w, c.at(3500*ms, 900*ms, true, true)); v != peerAlive {
		t.Fatalf("paused, heartbeat 2.6 s old = %v; want alive", v)
	}
	if v, _ := judgeOne(t, w, c.at(4000*ms, 900*ms, true, true)); v != peerSilent {
		t.Fatalf("paused past the TTL = %v; want silent", v)
	}
	// Locks unknown (no liveness in the driver, or the read failed).
	l := c.at(4000*ms, 900*ms, true, true)
	l.held = nil
	if v, _ := judgeOne(t, w, l); v != peerSilent {
		t.Fatalf("stale, locks unknown = %v; want silent", v)
	}
	l.peers[0].HeartbeatAt = c.s0.Add(3900 * ms)
	l.peers[0].HeartbeatAge = 100 * ms
	if v, _ := judgeOne(t, w, l); v != peerAlive {
		t.Fatalf("fresh, locks unknown = %v; want alive", v)
	}
}

// A store restart: every lock vanishes at once, this node's too, while
// heartbeats are fresh. Nobody is found dead while this node's own lock is
// missing, nor for a TTL after it took it again.
func TestVerdictStoreRestartTrustsNoLock(t *testing.T) {
	c, w := newClockedLook(), watching()
	ms := time.Millisecond
	// The round sees its own lock gone before its liveness loop noticed.
	if v, relook := judgeOne(t, w, c.at(1000*ms, 900*ms, false, false)); v != peerAlive || relook != 0 {
		t.Fatalf("own lock gone too = %v, relook %v; want alive, none", v, relook)
	}
	// Its own lock is back (the liveness loop noticed and took it again),
	// the peer's is not, and the peer has not heartbeat since.
	w.ownLost()
	w.ownTaken(c.t0.Add(1100*ms), true)
	for _, at := range []time.Duration{1200 * ms, 1500 * ms, 2500 * ms, 3800 * ms} {
		if v, _ := judgeOne(t, w, c.at(at, 900*ms, true, false)); v != peerAlive {
			t.Fatalf("%v after the restart = %v; want alive (the peer has until a TTL to take its lock again)", at, v)
		}
	}
	// A TTL past its own lock's return the locks count again: a peer that
	// heartbeat at 4100 ms but whose lock is gone is found dead on a
	// second look.
	if v, _ := judgeOne(t, w, c.at(4200*ms, 4100*ms, true, false)); v != peerAlive {
		t.Fatalf("after the distrust, first look = %v; want alive", v)
	}
	if v, _ := judgeOne(t, w, c.at(4400*ms, 4100*ms, true, false)); v != peerDied {
		t.Fatalf("after the distrust, confirmed = %v; want died", v)
	}
}

// While this node's own lock is lost, it judges by heartbeat alone.
func TestVerdictOwnLockLostTrustsNoLock(t *testing.T) {
	c, w := newClockedLook(), watching()
	ms := time.Millisecond
	w.ownLost()
	judgeOne(t, w, c.at(1000*ms, 900*ms, true, false))
	if v, _ := judgeOne(t, w, c.at(2000*ms, 900*ms, true, false)); v != peerAlive {
		t.Fatalf("own lock lost = %v; want alive", v)
	}
	if v, _ := judgeOne(t, w, c.at(5000*ms, 900*ms, true, false)); v != peerSilent {
		t.Fatalf("own lock lost, peer stale = %v; want silent (not known dead)", v)
	}
}

// A suspect that leaves the pool is forgotten: if it comes back under the
// same id, it starts afresh.
func TestVerdictForgetsSuspectsThatLeft(t *testing.T) {
	c, w := newClockedLook(), watching()
	ms := time.Millisecond
	judgeOne(t, w, c.at(1000*ms, 900*ms, true, false))
	empty := c.at(1100*ms, 900*ms, true, false)
	empty.peers = nil
	w.judge(empty)
	if v, _ := judgeOne(t, w, c.at(1300*ms, 900*ms, true, false)); v != peerAlive {
		t.Fatalf("back after leaving = %v; want alive (a first look)", v)
	}
}
