package e2e

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/metrics/metricstest"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestMetricsMoveWithTheEvents scrapes real nodes over HTTP and parses
// what they serve: node 1 (--metrics) counts the batches it commits and
// the poison event it quarantines; node 2 (--http) joins and claims a
// session node 1 hands over; node 1 is killed with SIGKILL, and node 2
// counts the takeover of its session with the cause takeover_death.
func TestMetricsMoveWithTheEvents(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		bam(t, url, "migrate")
		bam(t, url, "source", "add", "orders", "--kind", "buffer", "--partitions", "2")
		st := openStore(t, url)
		client := &http.Client{Timeout: 10 * time.Second}

		n1 := startNode(t, url, "node-1", "--metrics", "127.0.0.1:0")
		id1 := n1.id(t)
		metrics1 := n1.listenURL(t, "metrics listening")
		testwait.Until(t, 10*time.Second, "node 1 to own both sessions", func() bool { return ownedBy(t, st, id1) == 2 })

		// 40 events over both partitions, and a poison event (not JSON).
		var evs []store.BufferEvent
		for i := range 40 {
			id := "PO-" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			ev := event.Event{Activity: "PurchaseOrder", Instance: id, Kind: event.Update, Time: time.Now().UTC()}
			evs = append(evs, store.BufferEvent{Partition: event.Partition(id, 2), Payload: event.Encode(ev)})
		}
		evs = append(evs, store.BufferEvent{Partition: 1, Payload: []byte(`{"activity": "PurchaseOrder", "instance": `)})
		if err := st.AppendBuffer(context.Background(), "orders", evs); err != nil {
			t.Fatal(err)
		}
		fams := scrapeUntil(t, client, metrics1, "node 1 to apply 40 events and quarantine 1", func(f metricstest.Families) bool {
			applied, _ := f.Sum("bam_events_committed_total")
			failed, _ := f.Sum("bam_events_failed_total", "source", "orders", "partition", "1")
			return applied == 40 && failed == 1
		})
		if b, _ := fams.Sum("bam_batches_committed_total"); b < 2 {
			t.Errorf("node 1 counts %v batches committed, want one per partition at least", b)
		}
		if c, _ := fams.Sum("bam_session_owner_changes_total", "cause", "claim"); c != 2 {
			t.Errorf("node 1 counts %v claims, want 2", c)
		}
		// The metrics listener serves the node's health too.
		base := strings.TrimSuffix(metrics1, "/metrics")
		for _, path := range []string{"/livez", "/readyz"} {
			testwait.Until(t, 10*time.Second, "node 1's "+path+" on its metrics listener to answer 200", func() bool {
				resp, err := client.Get(base + path)
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
		}

		// Node 2 joins; node 1 hands a session over.
		n2 := startNode(t, url, "node-2", "--http", "127.0.0.1:0")
		id2 := n2.id(t)
		metrics2 := n2.httpURL(t) + "/metrics"
		testwait.Until(t, 10*time.Second, "the nodes to share the sessions", func() bool {
			return ownedBy(t, st, id1) == 1 && ownedBy(t, st, id2) == 1
		})
		scrapeUntil(t, client, metrics1, "node 1 to count its handoff", func(f metricstest.Families) bool {
			handoffs, _ := f.Sum("bam_session_owner_changes_total", "cause", "handoff")
			owned, _ := f.Sum("bam_sessions_owned")
			return handoffs == 1 && owned == 1
		})
		scrapeUntil(t, client, metrics2, "node 2 to count its claim", func(f metricstest.Families) bool {
			claims, _ := f.Sum("bam_session_owner_changes_total", "cause", "claim")
			return claims == 1
		})

		// Node 1 dies: node 2 takes its session over, found dead.
		if err := n1.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		fams = scrapeUntil(t, client, metrics2, "node 2 to count a takeover after death", func(f metricstest.Families) bool {
			died, _ := f.Sum("bam_session_owner_changes_total", "cause", "takeover_death")
			owned, _ := f.Sum("bam_sessions_owned")
			return died == 1 && owned == 2
		})
		if e, _ := fams.Sum("bam_session_owner_changes_total", "cause", "takeover_expiry"); e != 0 {
			t.Errorf("node 2 counts %v takeovers after expiry, want 0: node 1 was killed, and seen dead", e)
		}
		if r, _ := fams.Sum("bam_http_requests_total", "route", "GET /metrics", "code", "200"); r < 1 {
			t.Errorf("node 2 counts %v scrapes of GET /metrics, want at least 1", r)
		}
	})
}

// scrapeUntil scrapes url until cond holds, and returns that scrape.
func scrapeUntil(t *testing.T, client *http.Client, url, what string, cond func(metricstest.Families) bool) metricstest.Families {
	t.Helper()
	var fams metricstest.Families
	testwait.Until(t, 20*time.Second, what, func() bool {
		var err error
		if fams, err = metricstest.Get(client, url); err != nil {
			t.Fatalf("scrape %s: %v", url, err)
		}
		return cond(fams)
	})
	return fams
}
