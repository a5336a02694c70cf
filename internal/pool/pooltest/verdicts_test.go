package pooltest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// The death verdicts (pool's doc.go) where only a real PostgreSQL server
// shows the fault: the server ends a liveness lock's connection, or
// restarts. The verdicts' logic is tested on the in-memory store in
// package pool (verdicts_test.go, liveness_test.go).

// terminateLiveness ends the backend that holds the liveness lock key, as
// a network blip or a proxy recycling the connection would, and returns
// how many it ended.
func terminateLiveness(t *testing.T, url string, key int64) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `
		SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks AS l
		JOIN pg_stat_activity AS a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid::bigint = ($1::bigint >> 32) & 4294967295 AND l.objid::bigint = $1::bigint & 4294967295
		  AND a.application_name = 'bam-liveness'`, key).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLockResetMovesNoSession: the server ends a live node's liveness-lock
// connection (pg_terminate_backend, as a proxy recycling it would). Its
// peer sees the lock gone while the node's heartbeat is fresh. The node
// takes its lock back late on purpose (a slow reconnect: 300 ms, then
// 1.5 s, more than LivenessConfirm), heartbeating meanwhile, and no
// session moves. Before the death verdicts were confirmed, the peer
// expired every lease of the node at its first look and the pool
// reshuffled.
func TestLockResetMovesNoSession(t *testing.T) {
	for _, delay := range []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond} {
		t.Run(fmt.Sprint("retake after ", delay), func(t *testing.T) { testLockReset(t, delay) })
	}
}

func testLockReset(t *testing.T, retakeDelay time.Duration) {
	url := testpg.NewDatabase(t)
	st := openPostgres(t, url)
	setupStore(t, st, 8)
	cfg := fastConfig("")
	// Renewals as rare as by default: the node's usual heartbeat is no
	// help within a LivenessConfirm.
	cfg.LeaseTTL, cfg.RenewInterval, cfg.SafetyMargin = 3*time.Second, time.Second, 500*time.Millisecond
	// The confirmation, not the speed of a loaded machine, is what this
	// test is about: with the default 200 ms, a CI run beside a chaos
	// run's checker once saw b's first renewal after the reset come later
	// than that, and a found b dead (a wrong verdict costs moves, never a
	// duplicate: doc.go).
	cfg.LivenessConfirm = time.Second
	cfgA, cfgB := cfg, cfg
	cfgA.Name, cfgB.Name = "a", "b"
	as := &watchedStore{Store: openPostgres(t, url)}
	bs := &watchedStore{Store: openPostgres(t, url), retakeDelay: retakeDelay}
	a := runNode(t, as, cfgA)
	b := runNode(t, bs, cfgB)
	testwait.Until(t, 10*time.Second, "a and b to own four sessions each", func() bool {
		o := ownedCount(t, st)
		return o[a.ID()] == 4 && o[b.ID()] == 4
	})
	before := epochs(t, st)
	looked := as.lookCount()
	bKey := b.lockKey(t, st)

	if n := terminateLiveness(t, url, bKey); n != 1 {
		t.Fatalf("ended %d backends holding b's liveness lock, want 1", n)
	}
	testwait.Until(t, 10*time.Second, "b to take its liveness lock again", func() bool {
		return b.log.Count("liveness lock taken again", "") == 1
	})
	// Until a has looked five times since, at least once without b's lock
	// and then three times with it.
	var sawGone bool
	testwait.Until(t, 10*time.Second, "a to see b's lock gone, then back", func() bool {
		back := 0
		sawGone = false
		for _, held := range as.looksSince(looked) {
			switch {
			case !held[bKey]:
				sawGone, back = true, 0
			case sawGone:
				back++
			}
		}
		return sawGone && back >= 3
	})
	if !sawGone {
		t.Fatal("a never saw b's lock gone: the test proves nothing")
	}
	after := epochs(t, st)
	if m := moves(before, after); m != 0 {
		a.log.Dump(t)
		t.Fatalf("%d sessions moved after b's lock connection was reset; want 0", m)
	}
	if n := a.log.Count("node died: its liveness lock was released with its connection; its leases are expired now", ""); n != 0 {
		t.Errorf("a logged b dead %d times", n)
	}
}

// TestStoreRestartMovesNoSession restarts the PostgreSQL server under two
// nodes: every liveness lock vanishes at once while every heartbeat is
// fresh. The nodes reconnect and take their locks back within the lease
// TTL, and no session moves. A restart takes 1 to 4 s on the shared test
// machine (a crash, "immediate", recovers from the WAL), so the lease TTL
// is 8 s: a store down longer than the local deadline (TTL − safety margin
// after the last renewal began) lets sessions stop and leases expire, and
// sessions then move by design. BenchmarkLivenessLoss measures restarts
// with the default TTL of 3 s.
func TestStoreRestartMovesNoSession(t *testing.T) {
	const ttl = 8 * time.Second
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) {
			server, url := testpg.NewServer(t)
			st := openPostgres(t, url)
			setupStore(t, st, 8)
			cfg := fastConfig("")
			cfg.LeaseTTL, cfg.RenewInterval, cfg.SafetyMargin = ttl, time.Second, 500*time.Millisecond
			cfgA, cfgB := cfg, cfg
			cfgA.Name, cfgB.Name = "a", "b"
			as := &watchedStore{Store: openPostgres(t, url)}
			bs := &watchedStore{Store: openPostgres(t, url)}
			a := runNode(t, as, cfgA)
			b := runNode(t, bs, cfgB)
			testwait.Until(t, 10*time.Second, "a and b to own four sessions each", func() bool {
				o := ownedCount(t, st)
				return o[a.ID()] == 4 && o[b.ID()] == 4
			})
			before := epochs(t, st)

			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := server.Restart(ctx, mode); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			t.Logf("PostgreSQL restarted (%s) in %v", mode, took.Round(time.Millisecond))
			if budget := ttl - 500*time.Millisecond - time.Second; took > budget {
				t.Fatalf("the restart took %v, longer than the sessions' local deadline allows (%v): the test cannot judge; is the machine overloaded?", took, budget)
			}
			testwait.Until(t, 10*time.Second, "a and b to take their liveness locks again", func() bool {
				return a.log.Count("liveness lock taken again", "") >= 1 && b.log.Count("liveness lock taken again", "") >= 1
			})
			back := time.Now()
			t.Logf("both locks back %v after the restart began", back.Sub(start).Round(time.Millisecond))
			// Each node trusts the locks again a lease TTL after it took its
			// own back (doc.go): a rule of time, waited for as such. Then
			// until each has looked at them twice since.
			time.Sleep(time.Until(back.Add(ttl)))
			for _, ws := range []*watchedStore{as, bs} {
				looked := ws.lookCount()
				testwait.Until(t, 10*time.Second, "two more looks", func() bool { return ws.lookCount() >= looked+2 })
			}
			var after map[store.SessionID]store.SessionRow
			testwait.Until(t, 10*time.Second, "the store to answer", func() bool {
				ss, err := st.Sessions(context.Background())
				if err != nil {
					return false
				}
				after = map[store.SessionID]store.SessionRow{}
				for _, s := range ss {
					after[s.SessionID] = s
				}
				return true
			})
			if m := moves(before, after); m != 0 {
				t.Logf("a:")
				a.log.Dump(t)
				t.Logf("b:")
				b.log.Dump(t)
				t.Fatalf("%d sessions moved after a store restart (%s); want 0", m, mode)
			}
		})
	}
}
