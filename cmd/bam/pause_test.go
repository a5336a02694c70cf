package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestPausedSourceKeepsItsWrites is issue 9's pause: a paused source takes
// events from bam emit and the HTTP API while a node runs, applies none of
// them, and once resumed applies each of them once. (Before, the only way
// to stop applying was disable, which refuses the writes.)
func TestPausedSourceKeepsItsWrites(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testPausedSourceKeepsItsWrites(t, migrated(t)) })
	t.Run("postgres", func(t *testing.T) {
		b := newBench(t)
		b.url = testpg.NewDatabase(t)
		b.ok("migrate")
		testPausedSourceKeepsItsWrites(t, b)
	})
}

func testPausedSourceKeepsItsWrites(t *testing.T, b *bench) {
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "2")
	base := serveHTTP(t, b, "--balance-interval", "100ms").base
	testwait.Until(t, 15*time.Second, "the node to own both sessions", func() bool { return owned(t, b) == 2 })

	if r := b.ok("source", "pause", "orders"); !strings.Contains(r.stdout, "source orders paused: writes to it are accepted") {
		t.Errorf("pause printed %q", r.stdout)
	}
	testwait.Until(t, 15*time.Second, "the node to let both sessions go", func() bool { return owned(t, b) == 0 })

	// Writes while paused: one event from flags, two from a file, two over HTTP.
	r := b.ok("emit", "--source", "orders", "--activity", "PO", "--instance", "PO-1", "--kind", "begin")
	if !strings.Contains(r.stdout, "wrote 1 event to source orders") || !strings.Contains(r.stderr, "source orders is paused") {
		t.Errorf("emit while paused: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = b.run(`{"activity":"PO","instance":"PO-2","kind":"begin"}
{"activity":"PO","instance":"PO-1","kind":"update","data":{"Amount":3}}
`, "emit", "--source", "orders", "--file", "-")
	if r.code != 0 || !strings.Contains(r.stdout, "wrote 2 events") {
		t.Fatalf("emit --file while paused: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/sources/orders/events", strings.NewReader(`{"activity":"PO","instance":"PO-2","kind":"update","data":{"Amount":5}}
{"activity":"PO","instance":"PO-3","kind":"begin"}
`))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Idempotency-Key", "paused-1")
	if res := httpDo(t, req); res.status != http.StatusOK || !strings.Contains(res.body, `"accepted":2`) {
		t.Fatalf("post while paused: %d %s", res.status, res.body)
	}

	// Shown as paused.
	if r := b.ok("source", "list"); !strings.Contains(r.stdout, "paused") {
		t.Errorf("source list does not show the source paused:\n%s", r.stdout)
	}
	if r := b.ok("status"); !strings.Contains(r.stdout, "orders (paused)") {
		t.Errorf("status does not show the source paused:\n%s", r.stdout)
	}

	// Nothing is applied while paused: the node, idle and balancing every
	// 100 ms, had ten rounds and twenty polls to take the sessions.
	time.Sleep(time.Second)
	s := readStatusJSON(t, b)
	var backlog int64
	for _, se := range s.Sessions {
		if !se.Paused || se.Owner != "" || se.Applied != 0 {
			t.Errorf("session %s/%d while paused: paused %t, owner %q, %d applied; want paused, free, none",
				se.Source, se.Partition, se.Paused, se.Owner, se.Applied)
		}
		if se.Backlog != nil {
			backlog += *se.Backlog
		}
	}
	if backlog != 5 {
		t.Errorf("backlog while paused = %d, want the 5 events written", backlog)
	}
	if all, err := b.store().Instances(context.Background(), store.InstanceFilter{Activity: "PO"}); err != nil || len(all) != 0 {
		t.Fatalf("instances while paused = %+v, %v; want none", all, err)
	}

	if r := b.ok("source", "resume", "orders"); !strings.Contains(r.stdout, "source orders resumed: it accepts writes and the nodes apply its events") {
		t.Errorf("resume printed %q", r.stdout)
	}
	testwait.Until(t, 15*time.Second, "the 5 events to be applied", func() bool { return applied(t, b) == 5 })
	time.Sleep(500 * time.Millisecond) // anything applied twice would show by now
	if n := applied(t, b); n != 5 {
		t.Errorf("%d events applied after resume, want 5", n)
	}
	want := map[string]int64{"PO-1": 2, "PO-2": 2, "PO-3": 1}
	for id, n := range want {
		in, err := b.store().Instance(context.Background(), event.Key{Activity: "PO", Instance: id})
		if err != nil || in.Events != n {
			t.Errorf("instance %s: %d events, %v; want %d", id, in.Events, err, n)
		}
	}
}

// readStatusJSON runs bam status --json and decodes it.
func readStatusJSON(t *testing.T, b *bench) status {
	t.Helper()
	var s status
	if err := json.Unmarshal([]byte(b.ok("status", "--json").stdout), &s); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	return s
}

// owned counts the sessions with an owner whose lease runs.
func owned(t *testing.T, b *bench) int {
	t.Helper()
	n := 0
	for _, se := range readStatusJSON(t, b).Sessions {
		if se.Owner != "" && se.LeaseRemainingMS > 0 {
			n++
		}
	}
	return n
}

// applied adds up the events every session applied.
func applied(t *testing.T, b *bench) int64 {
	t.Helper()
	var n int64
	for _, se := range readStatusJSON(t, b).Sessions {
		n += se.Applied
	}
	return n
}

// TestSwitchingAgainChangesNothing: bam pause on a paused pool, and bam
// source pause, resume, disable or enable on a source already so, say
// there is nothing to do, exit 0 and add no audit row, as bam resume and
// bam node undrain do. Before, a repeated pause was reported and audited
// as a fresh one.
func TestSwitchingAgainChangesNothing(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "1")
	if r := b.ok("pause"); !strings.HasPrefix(r.stdout, "pool paused: no session is applied") {
		t.Errorf("pause printed %q", r.stdout)
	}
	if r := b.ok("pause"); !strings.HasPrefix(r.stdout, "the pool was paused already (since ") || !strings.Contains(r.stdout, "nothing changed: no session is applied") {
		t.Errorf("pause again printed %q", r.stdout)
	}
	b.ok("resume")
	for _, step := range []struct{ verb, again string }{
		{"pause", "source orders is paused already: nothing to do"},
		{"resume", "source orders is not paused: nothing to do"},
		{"disable", "source orders is disabled already: nothing to do"},
		{"enable", "source orders is enabled already: nothing to do"},
	} {
		if r := b.ok("source", step.verb, "orders"); strings.Contains(r.stdout, "nothing to do") {
			t.Errorf("source %s printed %q", step.verb, r.stdout)
		}
		if r := b.ok("source", step.verb, "orders"); r.stdout != step.again+"\n" {
			t.Errorf("source %s again printed %q, want %q", step.verb, r.stdout, step.again)
		}
	}
	b.fails(exitError, "", []string{"source", "pause", "ordres"}, `no source named "ordres"`, "did you mean orders?")

	audit := b.audit()
	counts := map[string]int{}
	for _, e := range audit {
		counts[e.Action]++
	}
	for _, action := range []string{"pause", "resume", "source pause", "source resume", "source disable", "source enable"} {
		if counts[action] != 1 {
			t.Errorf("%d audit rows %q, want 1: %v", counts[action], action, counts)
		}
	}
}
