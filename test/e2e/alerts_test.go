package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/alert/notify/notifytest"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testwait"
)

const alertDefinitions = `
activities:
  - name: Order
    items:
      - {name: Customer, type: text, max_length: 40}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
    alerts:
      - name: Big
        where: state = 'active' AND Amount > 1000
        message: "{Customer}'s order {instance} is for {Amount}"
        subscribers:
          - {webhook: WEBHOOK, secret_env: BAM_E2E_ALERT_SECRET}
          - {email: ops@example.com}
`

// TestAlertsSurviveKillOfTheEvaluator runs two nodes, fires an alert
// while its receivers refuse it, SIGKILLs the node that evaluates the
// alerts, and checks that the other takes the evaluation over: the firing
// stays one firing, its deliveries are delivered by the new evaluator under
// their first ids, and an instance that matches afterwards fires once.
func TestAlertsSurviveKillOfTheEvaluator(t *testing.T) {
	stores(t, func(t *testing.T, url string) {
		t.Setenv("BAM_E2E_ALERT_SECRET", "e2e-secret") // the nodes inherit it
		hook := notifytest.NewWebhookReceiver(t, []byte("e2e-secret"))
		mail := notifytest.NewSMTPServer(t)
		bam(t, url, "migrate")
		bam(t, url, "source", "add", "orders", "--kind", "buffer", "--partitions", "2")
		defs := filepath.Join(t.TempDir(), "alerts.yaml")
		if err := os.WriteFile(defs, []byte(strings.ReplaceAll(alertDefinitions, "WEBHOOK", hook.URL())), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := bam(t, url, "deploy", defs); !strings.Contains(out, "alerts: evaluated by the session bam.alerts/0") {
			t.Fatalf("deploy said:\n%s", out)
		}
		st := openStore(t, url)
		as := st.(store.AlertStore)

		flags := []string{"--alert-interval", "200ms", "--smtp", mail.Addr(), "--smtp-from", "bam@example.com"}
		nodes := map[string]node{}
		for _, name := range []string{"node-1", "node-2"} {
			n := startNode(t, url, name, flags...)
			nodes[n.id(t)] = n
		}
		alerts := store.SessionID{Source: store.AlertsSource}
		var evaluator string
		testwait.Until(t, 15*time.Second, "a node to own the alerts session", func() bool {
			evaluator = owners(t, st)[alerts].Owner
			return evaluator != ""
		})

		// The receivers refuse the first deliveries: they stay pending.
		hook.FailNext(1000, 503)
		mail.FailNext(1000, 451)
		emitOrder(t, url, "o1", 5000)
		testwait.Until(t, 15*time.Second, "the firing, its deliveries attempted", func() bool {
			return len(hook.Received()) > 0 && len(mail.Messages()) == 0 && attempted(t, as) == 2
		})
		refused := hook.Received()[0].DeliveryID
		// What waits shows as the alerts session's backlog.
		var status struct {
			Sessions []struct {
				Source  string `json:"source"`
				Backlog int    `json:"backlog"`
			} `json:"sessions"`
		}
		if err := json.Unmarshal([]byte(bam(t, url, "status", "--json")), &status); err != nil {
			t.Fatal(err)
		}
		for _, s := range status.Sessions {
			if s.Source == store.AlertsSource && s.Backlog != 2 {
				t.Errorf("bam status: the alerts session's backlog is %d, want its 2 pending deliveries", s.Backlog)
			}
		}
		// The node that fired is the one to kill, if it still evaluates
		// (the nodes may have moved the session meanwhile: then its owner).
		h, err := as.AlertHistory(context.Background(), store.AlertHistoryQuery{})
		if err != nil || len(h) != 1 {
			t.Fatalf("history = %+v, %v", h, err)
		}
		evaluator = owners(t, st)[alerts].Owner
		if evaluator == "" {
			evaluator = h[0].Node
		}

		// The evaluator dies; its peer takes the session over and delivers.
		if err := nodes[evaluator].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		hook.FailNext(0, 0)
		mail.FailNext(0, 0)
		testwait.Until(t, 20*time.Second, "the other node to own the alerts session", func() bool {
			o := owners(t, st)[alerts].Owner
			return o != "" && o != evaluator
		})
		t.Logf("alerts session taken over %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
		emitOrder(t, url, "o2", 7000)
		emitOrder(t, url, "o3", 10) // matches nothing

		testwait.Until(t, 30*time.Second, "both firings' deliveries recorded delivered", func() bool {
			h, err := as.AlertHistory(context.Background(), store.AlertHistoryQuery{Activity: "Order", Alert: "Big"})
			if err != nil || len(h) != 2 {
				return false
			}
			for _, f := range h {
				for _, d := range f.Deliveries {
					if d.State != store.DeliveryDelivered {
						return false
					}
				}
			}
			return true
		})

		h, err = as.AlertHistory(context.Background(), store.AlertHistoryQuery{Activity: "Order", Alert: "Big"})
		if err != nil {
			t.Fatal(err)
		}
		byKey := map[string]store.Firing{}
		for _, f := range h {
			if _, twice := byKey[f.Key]; twice {
				t.Errorf("instance %s fired twice: %+v", f.Key, h)
			}
			byKey[f.Key] = f
		}
		if len(byKey) != 2 || byKey["o1"].ID == 0 || byKey["o2"].ID == 0 {
			t.Fatalf("firings = %+v, want one for o1 and one for o2", h)
		}
		if byKey["o2"].Node == evaluator {
			t.Errorf("o2 was fired by the killed node %s", evaluator)
		}
		// Every delivery is delivered, once recorded; a receiver saw only
		// the ids of these deliveries, each at least once.
		ids := map[string]string{}
		for _, f := range h {
			for _, d := range f.Deliveries {
				ids[d.ID] = f.Key
				if d.State != store.DeliveryDelivered {
					t.Errorf("delivery %s of %s: %s (%s), want delivered", d.ID, f.Key, d.State, d.LastError)
				}
			}
		}
		if ids[refused] != "o1" {
			t.Errorf("the refused delivery %s is not o1's webhook delivery (deliveries %v)", refused, ids)
		}
		for _, r := range hook.Received() {
			if _, known := ids[r.DeliveryID]; !known || !r.SignatureValid {
				t.Errorf("webhook request with delivery %s (signature valid %t): not a delivery of the store", r.DeliveryID, r.SignatureValid)
			}
		}
		for _, m := range mail.Messages() {
			if _, known := ids[m.Header.Get("X-Bam-Delivery")]; !known {
				t.Errorf("email with delivery %q: not a delivery of the store", m.Header.Get("X-Bam-Delivery"))
			}
		}

		// What a user reads.
		out := bam(t, url, "alert", "history", "Order.Big")
		if !strings.Contains(out, "2 delivered") || !strings.Contains(out, "o1") || !strings.Contains(out, "o2") {
			t.Errorf("bam alert history:\n%s", out)
		}
		if out := bam(t, url, "alert", "show", "Big"); !strings.Contains(out, "evaluated:  by node") {
			t.Errorf("bam alert show:\n%s", out)
		}
	})
}

// attempted counts the deliveries attempted at least once.
func attempted(t *testing.T, as store.AlertStore) int {
	h, err := as.AlertHistory(context.Background(), store.AlertHistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range h {
		for _, d := range f.Deliveries {
			if d.Attempts > 0 {
				n++
			}
		}
	}
	return n
}

func emitOrder(t *testing.T, url, id string, amount float64) {
	t.Helper()
	bam(t, url, "emit", "--source", "orders", "--activity", "Order", "--instance", id, "--kind", "begin",
		"--data", "Customer=acme", "--data", fmt.Sprintf("Amount=%g", amount))
}
