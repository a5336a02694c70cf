package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
)

// TestStatusCheck: `bam status --check` exits 0, silently, on a healthy
// pool, and 1 with one line naming the session (or alert) and why for each
// problem: an unowned session, an expired lease, a recent session error,
// an old backlog, a failed event, a delivery given up. Each case is built
// on a real store, SQLite and PostgreSQL.
func TestStatusCheck(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			b := newBench(t)
			if kind == "postgres" {
				b.url = testpg.NewDatabase(t)
			}
			b.ok("migrate")
			ap := b.applier("orders") // orders/0, owned by test-node for a minute
			ctx := context.Background()
			// test-node never heartbeats after it joined: every check but
			// the silent case's takes it for alive (--silent-for 1h),
			// whatever --lease-ttl it gives.
			alive := true
			check := func(args ...string) result {
				t.Helper()
				if alive && !slices.Contains(args, "--silent-for") {
					args = append(args, "--silent-for", "1h")
				}
				return b.run("", append([]string{"status", "--check"}, args...)...)
			}
			wantOK := func(args ...string) {
				t.Helper()
				if r := check(args...); r.code != exitOK || r.stdout != "" {
					t.Fatalf("bam status --check %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
				}
			}
			// wantProblems wants exit 1 and lines lines, holding every want.
			wantProblems := func(args []string, lines int, want ...string) result {
				t.Helper()
				r := check(args...)
				if r.code != exitError || !strings.Contains(r.stderr, "status --check: "+count(lines, "problem")+"\n") { // "1 problem", "2 problems"
					t.Fatalf("bam status --check %s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
				}
				if got := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(got) != lines {
					t.Errorf("bam status --check %s: %d lines, want %d:\n%s", strings.Join(args, " "), len(got), lines, r.stdout)
				}
				for _, w := range want {
					if !strings.Contains(r.stdout, w) {
						t.Errorf("bam status --check %s: no %q in\n%s", strings.Join(args, " "), w, r.stdout)
					}
				}
				return r
			}
			wantOK()

			// unowned
			{
				b.ok("source", "add", "idle", "--kind", "buffer", "--partitions", "1")
				wantProblems([]string{"--lease-ttl", "200ms"}, 1, "unowned idle/0: no live owner at two reads 200ms apart, and no claim between (epoch 0): no node applies its events; the running node tester has not claimed it")
				// Every running node drained (bam node drain --force): the
				// hint says so, not that no node runs.
				if err := ap.st.SetNodeDraining(ctx, "test-node", true); err != nil {
					t.Fatal(err)
				}
				wantProblems([]string{"--lease-ttl", "200ms"}, 1, "no node applies its events; every running node is draining (tester): bam node undrain NODE, or start a node")
				if err := ap.st.SetNodeDraining(ctx, "test-node", false); err != nil {
					t.Fatal(err)
				}
				// A paused source is applied by no node on purpose.
				b.ok("source", "pause", "idle")
				wantOK("--lease-ttl", "200ms")
				b.ok("source", "resume", "idle")
				if _, err := ap.st.Claim(ctx, store.SessionID{Source: "idle"}, "test-node", "", 20*time.Millisecond); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
				wantProblems([]string{"--lease-ttl", "50ms"}, 1, "unowned idle/0: the lease of node test-node expired")
				b.ok("source", "disable", "idle")
				wantOK("--lease-ttl", "50ms")
			}

			// error
			{
				if err := ap.st.RecordError(ctx, ap.lease, "test-node", "apply batch: database is locked"); err != nil {
					t.Fatal(err)
				}
				wantProblems(nil, 1, "error orders/0: last error ", "(bound 10m0s), nothing applied since: apply batch: database is locked")
				time.Sleep(10 * time.Millisecond)
				wantOK("--error-within", "5ms")
				if err := ap.st.RecordError(ctx, ap.lease, "test-node", ""); err != nil {
					t.Fatal(err)
				}
				wantOK()
			}

			// failed events
			{
				ap.apply(nil, store.Failure{Reason: "malformed JSON", Payload: []byte("{")})
				wantProblems(nil, 1, "failed-events orders/0: 1 event failed and kept (bam failed list --source orders --partition 0)")
				b.ok("failed", "discard", "--all", "--yes")
				wantOK()
			}

			// backlog
			{
				b.ok("emit", "--source", "orders", "--activity", "PurchaseOrder", "--instance", "PO-1", "--kind", "begin")
				b.ok("emit", "--source", "orders", "--activity", "PurchaseOrder", "--instance", "PO-2", "--kind", "begin")
				wantOK() // fresh events are no problem
				time.Sleep(50 * time.Millisecond)
				wantProblems([]string{"--backlog-age", "20ms"}, 1, "backlog orders/0: the oldest of ", " waiting has waited ", " (bound 20ms)")
				// Applied up to the last event's position, which on PostgreSQL
				// is in transaction ids.
				recs, _, err := ap.st.ReadBuffer(ctx, ap.lease.SessionID, ap.pos, 10)
				if err != nil || len(recs) == 0 {
					t.Fatalf("read buffer: %d records, %v", len(recs), err)
				}
				var events []event.Event
				for _, rec := range recs {
					events = append(events, mustDecode(t, string(rec.Payload)))
				}
				err = ap.st.Apply(ctx, store.Batch{Lease: ap.lease, Node: "test-node", From: ap.pos, Checkpoint: recs[len(recs)-1].Position,
					Deltas: event.Coalesce(events), Applied: len(events)})
				if err != nil {
					t.Fatal(err)
				}
				wantOK("--backlog-age", "20ms")
			}

			// a pause nobody ended
			{
				if err := ap.st.SetPoolPaused(ctx, true, "ops@host"); err != nil {
					t.Fatal(err)
				}
				wantOK() // a pause for a backup is no problem
				time.Sleep(50 * time.Millisecond)
				wantProblems([]string{"--paused-for", "20ms"}, 1, "paused: the pool has been paused for ", "by ops@host; bound 20ms): no event is applied until bam resume")
				if err := ap.st.SetPoolPaused(ctx, false, "ops@host"); err != nil {
					t.Fatal(err)
				}
				wantOK("--paused-for", "20ms")
			}

			// a node silent past the lease TTL, and not found dead
			{
				alive = false
				time.Sleep(60 * time.Millisecond)
				wantProblems([]string{"--lease-ttl", "50ms"}, 1, "silent: node tester (test-node) on test, pid 1, has not heartbeat for ", "(bound 50ms) and no peer found it dead", "its sessions move to a live peer, if any, when their leases expire")
				wantOK("--lease-ttl", "50ms", "--silent-for", "1h")
				r := check("--json", "--lease-ttl", "50ms")
				var report checkReport
				if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || len(report.Problems) != 1 || report.Problems[0].Node != "test-node" {
					t.Errorf("--json: %+v, %v\n%s", report, err, r.stdout)
				}
				if _, err := ap.st.Renew(ctx, store.NodeRow{ID: "test-node", Name: "tester", Host: "test", PID: 1, State: store.NodeRunning}, time.Minute); err != nil {
					t.Fatal(err)
				}
				wantOK() // heartbeat again, within the pool's lease TTL (3s)
				alive = true
			}

			// delivery given up
			{
				as := ap.st.(store.AlertStore)
				if err := ap.st.AddSource(ctx, store.AlertsSessionSource); err != nil {
					t.Fatal(err)
				}
				l, err := ap.st.Claim(ctx, store.SessionID{Source: store.AlertsSource}, "test-node", "", time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				err = as.CommitAlerts(ctx, store.AlertRound{Lease: l, Node: "test-node", Fire: []store.NewFiring{{
					Activity: "PurchaseOrder", Alert: "Late", Key: "PO-1", Severity: "warning", Message: "PO-1 is late",
					Deliveries: []store.Delivery{{ID: "d-1", Channel: store.ChannelWebhook, Target: "https://hooks.example.com/bam?token=s3cret"}},
				}}})
				if err != nil {
					t.Fatal(err)
				}
				wantOK()
				if err := as.RecordDelivery(ctx, "d-1", store.DeliveryResult{Failed: true, Error: "404 Not Found"}); err != nil {
					t.Fatal(err)
				}
				r := wantProblems(nil, 1, "delivery: alert PurchaseOrder/Late (key PO-1): delivery d-1 by webhook to https://hooks.example.com/bam?… given up after 1 attempts", "(bound 1h0m): 404 Not Found")
				if strings.Contains(r.stdout, "s3cret") {
					t.Errorf("the webhook's token is shown:\n%s", r.stdout)
				}
				time.Sleep(10 * time.Millisecond)
				wantOK("--delivery-within", "5ms")

				// --json: the same problems, as data.
				r = check("--json")
				var report checkReport
				if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || r.code != exitError || report.OK ||
					len(report.Problems) != 1 || report.Problems[0].Check != "delivery" || report.Problems[0].Partition != nil {
					t.Errorf("--json: exit %d, %+v, %v\n%s", r.code, report, err, r.stdout)
				}
				r = check("--json", "--delivery-within", "5ms")
				if r.code != exitOK || strings.TrimSpace(r.stdout) != "{\n  \"ok\": true,\n  \"problems\": []\n}" {
					t.Errorf("--json when healthy: exit %d\n%s", r.code, r.stdout)
				}
			}

			b.fails(exitUsage, "", []string{"status", "--backlog-age", "1m"}, "--backlog-age needs --check")
			b.fails(exitUsage, "", []string{"status", "--check", "--error-within", "0s"}, "--error-within must be positive")
			b.fails(exitUsage, "", []string{"status", "--check", "--silent-for", "0s"}, "--silent-for must be positive")
			b.fails(exitUsage, "", []string{"status", "--silent-for", "1m"}, "--silent-for needs --check")
		})
	}
}

// TestFailedEventsOfNoSession: failed events kept under a partition that a
// repartition took away are still reported by status --check and shown by
// status (a view by session missed them: check exited 0 while they were
// outstanding).
func TestFailedEventsOfNoSession(t *testing.T) {
	b := migrated(t)
	ctx := context.Background()
	b.ok("source", "add", "two", "--kind", "buffer", "--partitions", "2")
	st := b.store()
	n := store.NodeRow{ID: "test-node", Name: "tester", Host: "test", PID: 1, StartedAt: time.Now(), State: store.NodeRunning}
	if err := st.Join(ctx, n); err != nil {
		t.Fatal(err)
	}
	id := store.SessionID{Source: "two", Partition: 1}
	l, err := st.Claim(ctx, id, n.ID, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Apply(ctx, store.Batch{Lease: l, Node: n.ID, From: l.Checkpoint, Checkpoint: store.Position{Minor: 1},
		Failures: []store.Failure{{SessionID: id, Position: store.Position{Minor: 1}, Reason: "malformed JSON", Payload: []byte("{")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Release(ctx, l, n.ID); err != nil {
		t.Fatal(err)
	}
	b.ok("source", "repartition", "two", "1")
	b.ok("source", "pause", "two") // no node runs: its session is no problem

	r := b.run("", "status", "--check", "--silent-for", "1h")
	want := "failed-events two/1: 1 event failed and kept, of partition 1, which source two no longer has (repartitioned) (bam failed list --source two --partition 1)"
	if r.code != exitError || strings.TrimSpace(r.stdout) != want {
		t.Errorf("status --check: exit %d\n%s\nwant exit 1 and\n%s", r.code, r.stdout, want)
	}
	r = b.ok("status")
	if !strings.Contains(r.stdout, "FAILED EVENTS OF NO SESSION") || !strings.Contains(r.stdout, "two/1: 1 event, of partition 1, which source two no longer has") {
		t.Errorf("status does not show the failed event of no session:\n%s", r.stdout)
	}
	if r := b.ok("failed", "list", "--source", "two", "--partition", "1"); !strings.Contains(r.stdout, "malformed JSON") {
		t.Errorf("the command the line gives does not list the event:\n%s", r.stdout)
	}
	var s status
	if err := json.Unmarshal([]byte(b.ok("status", "--json").stdout), &s); err != nil || len(s.FailedUnfiled) != 1 || s.FailedUnfiled[0].Failed != 1 {
		t.Errorf("status --json failed_unfiled = %+v, %v", s.FailedUnfiled, err)
	}
	b.ok("failed", "discard", "--all", "--yes")
	if r := b.run("", "status", "--check", "--silent-for", "1h"); r.code != exitOK {
		t.Errorf("status --check after the discard: exit %d\n%s", r.code, r.stdout)
	}
}
