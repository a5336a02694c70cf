package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// RunAlerts holds the store's part of alerts (store.AlertStore): a round
// commits only under the alerts session's lease, a key has at most one open
// firing, deliveries are due at once and move as their attempts say, and
// the history lists firings with their deliveries. open returns a fresh
// store; the suite migrates it.
func RunAlerts(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.AlertStore, store.Store, context.Context) {
		s, ctx := prepared(t, open)
		as, ok := s.(store.AlertStore)
		if !ok {
			t.Skipf("%s store keeps no alerts", s.Driver())
		}
		if err := s.AddSource(ctx, store.AlertsSessionSource); err != nil {
			t.Fatalf("AddSource(%s): %v", store.AlertsSource, err)
		}
		joinNodes(t, ctx, s, "a", "b")
		return as, s, ctx
	}
	alerts := store.SessionID{Source: store.AlertsSource}
	firing := func(key string, subscribers ...string) store.NewFiring {
		f := store.NewFiring{Activity: "PurchaseOrder", Alert: "Late", Key: key, Severity: "warning", Message: "order " + key + " is late"}
		for _, id := range subscribers {
			f.Deliveries = append(f.Deliveries, store.Delivery{ID: id, Channel: store.ChannelWebhook, Target: "http://127.0.0.1:1/hook?token=x", SecretEnv: "SECRET"})
		}
		return f
	}

	t.Run("Fenced", func(t *testing.T) {
		t.Parallel()
		as, s, ctx := setup(t)
		if err := as.CommitAlerts(ctx, store.AlertRound{Lease: store.Lease{SessionID: alerts, Epoch: 1}, Node: "a", Fire: []store.NewFiring{firing("1")}}); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("CommitAlerts without the lease = %v, want ErrFenced", err)
		}
		l, err := s.Claim(ctx, alerts, "a", "", 30*time.Second)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if err := as.CommitAlerts(ctx, store.AlertRound{Lease: l, Node: "a", Fire: []store.NewFiring{firing("1", "d1"), firing("2")}}); err != nil {
			t.Fatalf("CommitAlerts under the lease: %v", err)
		}
		// b takes the session over: a's next round is refused whole.
		if _, err := s.ExpireLeases(ctx, "a"); err != nil {
			t.Fatalf("ExpireLeases: %v", err)
		}
		if _, err := s.Claim(ctx, alerts, "b", "a", 30*time.Second); err != nil {
			t.Fatalf("Claim by b: %v", err)
		}
		open, err := as.OpenFirings(ctx)
		if err != nil || len(open) != 2 {
			t.Fatalf("OpenFirings = %+v, %v; want the 2 fired", open, err)
		}
		if err := as.CommitAlerts(ctx, store.AlertRound{Lease: l, Node: "a", Fire: []store.NewFiring{firing("3")}, Clear: []int64{open[0].ID}}); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("CommitAlerts after a takeover = %v, want ErrFenced", err)
		}
		if again, _ := as.OpenFirings(ctx); len(again) != 2 {
			t.Fatalf("a fenced round changed the firings: %+v", again)
		}
		if f := open[0]; f.Key != "1" || f.Node != "a" || f.Epoch != l.Epoch || f.ClearedAt != nil || f.FiredAt.IsZero() || f.Message != "order 1 is late" {
			t.Errorf("firing = %+v", f)
		}
		for _, se := range mustSessions(t, ctx, s) {
			if se.SessionID == alerts && se.Applied != 2 {
				t.Errorf("alerts session applied %d, want the 2 firings", se.Applied)
			}
		}
	})

	t.Run("OneOpenFiringPerKey", func(t *testing.T) {
		t.Parallel()
		as, s, ctx := setup(t)
		l, err := s.Claim(ctx, alerts, "a", "", 30*time.Second)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		commit := func(r store.AlertRound) error { r.Lease, r.Node = l, "a"; return as.CommitAlerts(ctx, r) }
		if err := commit(store.AlertRound{Fire: []store.NewFiring{firing("1")}}); err != nil {
			t.Fatal(err)
		}
		if err := commit(store.AlertRound{Fire: []store.NewFiring{firing("2", "d2"), firing("1")}}); err == nil {
			t.Fatal("a second open firing of key 1 was accepted")
		}
		open, _ := as.OpenFirings(ctx)
		if len(open) != 1 {
			t.Fatalf("a refused round left %d open firings, want 1: %+v", len(open), open)
		}
		if due, _ := as.DueDeliveries(ctx, 10); len(due) != 0 {
			t.Fatalf("a refused round left deliveries: %+v", due)
		}
		// Cleared, it fires again.
		if err := commit(store.AlertRound{Clear: []int64{open[0].ID}}); err != nil {
			t.Fatal(err)
		}
		if err := commit(store.AlertRound{Fire: []store.NewFiring{firing("1")}}); err != nil {
			t.Fatalf("firing a cleared key again: %v", err)
		}
		h, err := as.AlertHistory(ctx, store.AlertHistoryQuery{Activity: "purchaseorder", Alert: "LATE"})
		if err != nil || len(h) != 2 || h[0].ClearedAt != nil || h[1].ClearedAt == nil || h[0].ID <= h[1].ID {
			t.Fatalf("history = %+v, %v; want the open firing, then the cleared one", h, err)
		}
		if open, _ := as.AlertHistory(ctx, store.AlertHistoryQuery{OpenOnly: true}); len(open) != 1 || open[0].ID != h[0].ID {
			t.Fatalf("open history = %+v", open)
		}
		if older, _ := as.AlertHistory(ctx, store.AlertHistoryQuery{BeforeID: h[0].ID}); len(older) != 1 || older[0].ID != h[1].ID {
			t.Fatalf("history before %d = %+v", h[0].ID, older)
		}
		if none, _ := as.AlertHistory(ctx, store.AlertHistoryQuery{Alert: "Other"}); len(none) != 0 {
			t.Fatalf("history of another alert = %+v", none)
		}
		if n, last, err := as.AlertSummary(ctx, "PurchaseOrder", "Late"); err != nil || n != 1 || last == nil || !last.Equal(h[0].FiredAt) {
			t.Fatalf("AlertSummary = %d, %v, %v; want 1 open, last fired %v", n, last, err, h[0].FiredAt)
		}
		if n, last, err := as.AlertSummary(ctx, "PurchaseOrder", "Other"); err != nil || n != 0 || last != nil {
			t.Fatalf("AlertSummary of an alert that never fired = %d, %v, %v", n, last, err)
		}
	})

	t.Run("Deliveries", func(t *testing.T) {
		t.Parallel()
		as, s, ctx := setup(t)
		l, err := s.Claim(ctx, alerts, "a", "", 30*time.Second)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if err := as.CommitAlerts(ctx, store.AlertRound{Lease: l, Node: "a", Fire: []store.NewFiring{firing("1", "d1", "d2", "d3")}}); err != nil {
			t.Fatal(err)
		}
		due, err := as.DueDeliveries(ctx, 10)
		if err != nil || len(due) != 3 {
			t.Fatalf("DueDeliveries = %+v, %v; want 3", due, err)
		}
		if bl, err := as.PendingDeliveries(ctx, 2); err != nil || bl.Events != 2 || !bl.AtLeast || bl.OldestAge < 0 || bl.OldestAge > time.Minute {
			t.Fatalf("PendingDeliveries(2) = %+v, %v; want at least 2, lately fired", bl, err)
		}
		if d := due[0]; d.State != store.DeliveryPending || d.Attempts != 0 || d.SecretEnv != "SECRET" || d.Firing.Key != "1" || d.Firing.Activity != "PurchaseOrder" || d.Target != "http://127.0.0.1:1/hook?token=x" {
			t.Errorf("due delivery = %+v", d)
		}
		if err := as.RecordDelivery(ctx, "d1", store.DeliveryResult{Delivered: true}); err != nil {
			t.Fatal(err)
		}
		if err := as.RecordDelivery(ctx, "d2", store.DeliveryResult{Error: "503 Service Unavailable", RetryIn: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if err := as.RecordDelivery(ctx, "d3", store.DeliveryResult{Failed: true, Error: "404 Not Found"}); err != nil {
			t.Fatal(err)
		}
		// Recorded once: a late second answer changes nothing.
		if err := as.RecordDelivery(ctx, "d1", store.DeliveryResult{Failed: true, Error: "late"}); err != nil {
			t.Fatal(err)
		}
		if due, err := as.DueDeliveries(ctx, 10); err != nil || len(due) != 0 {
			t.Fatalf("DueDeliveries after the attempts = %+v, %v; want none (d2 waits an hour)", due, err)
		}
		if bl, err := as.PendingDeliveries(ctx, 10); err != nil || bl.Events != 1 || bl.AtLeast {
			t.Fatalf("PendingDeliveries = %+v, %v; want d2 alone", bl, err)
		}
		h, err := as.AlertHistory(ctx, store.AlertHistoryQuery{})
		if err != nil || len(h) != 1 || len(h[0].Deliveries) != 3 {
			t.Fatalf("history = %+v, %v", h, err)
		}
		byID := map[string]store.Delivery{}
		for _, d := range h[0].Deliveries {
			byID[d.ID] = d
		}
		if d := byID["d1"]; d.State != store.DeliveryDelivered || d.Attempts != 1 || d.DeliveredAt == nil {
			t.Errorf("d1 = %+v, want delivered after 1 attempt", d)
		}
		if d := byID["d2"]; d.State != store.DeliveryPending || d.Attempts != 1 || d.LastError != "503 Service Unavailable" || time.Until(d.NextAt) < 30*time.Minute {
			t.Errorf("d2 = %+v, want pending, retried in an hour", d)
		}
		if d := byID["d3"]; d.State != store.DeliveryFailed || d.LastError != "404 Not Found" {
			t.Errorf("d3 = %+v, want failed", d)
		}
		given, err := as.GivenUpDeliveries(ctx, time.Minute, 10)
		if err != nil || len(given) != 1 || given[0].ID != "d3" || given[0].LastError != "404 Not Found" || given[0].Firing.Alert != "Late" {
			t.Fatalf("GivenUpDeliveries(1m) = %+v, %v; want d3 with its firing", given, err)
		}
		// d3 was due at once: it gave up at its firing's time, not within
		// a microsecond of now.
		if given, err := as.GivenUpDeliveries(ctx, time.Microsecond, 10); err != nil || len(given) != 0 {
			t.Fatalf("GivenUpDeliveries(1µs) = %+v, %v; want none", given, err)
		}
	})

	t.Run("DeployExpectsVersion", func(t *testing.T) {
		t.Parallel()
		_, s, ctx := setup(t)
		dep, err := s.Deploy(ctx, store.DeployRequest{File: parse(t, poV1), By: "x", Expect: 0})
		if err != nil {
			t.Fatal(err)
		}
		withAlert := parse(t, poV1+"    alerts:\n      - {name: Big, where: \"Amount > 10\"}\n")
		if _, err := s.Deploy(ctx, store.DeployRequest{File: withAlert, By: "x", Expect: dep.Version + 5}); !errors.Is(err, store.ErrDefinitionsMoved) {
			t.Fatalf("Deploy expecting another version = %v, want ErrDefinitionsMoved", err)
		}
		if got, err := s.Deploy(ctx, store.DeployRequest{File: withAlert, By: "x", Expect: dep.Version}); err != nil || got.Version != dep.Version+1 {
			t.Fatalf("Deploy expecting the version = %+v, %v", got, err)
		}
		acts, _, _ := s.Definitions(ctx)
		if len(acts) != 1 || len(acts[0].Alerts) != 1 || acts[0].Alerts[0].Where != "Amount > 10" {
			t.Fatalf("deployed alerts = %+v", acts)
		}
	})

	t.Run("Purge", func(t *testing.T) {
		t.Parallel()
		as, s, ctx := setup(t)
		l, err := s.Claim(ctx, alerts, "a", "", 30*time.Second)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if err := as.CommitAlerts(ctx, store.AlertRound{Lease: l, Node: "a", Fire: []store.NewFiring{firing("1", "d1"), firing("2", "d2")}}); err != nil {
			t.Fatal(err)
		}
		open, _ := as.OpenFirings(ctx)
		if err := as.CommitAlerts(ctx, store.AlertRound{Lease: l, Node: "a", Clear: []int64{open[0].ID}}); err != nil {
			t.Fatal(err)
		}
		if n, err := as.PurgeAlertHistory(ctx, time.Hour); err != nil || n != 0 {
			t.Fatalf("PurgeAlertHistory(1h) = %d, %v; want nothing purged", n, err)
		}
		time.Sleep(5 * time.Millisecond) // the store's clock moves past the clearing
		if n, err := as.PurgeAlertHistory(ctx, 0); err != nil || n != 1 {
			t.Fatalf("PurgeAlertHistory(0) = %d, %v; want the cleared firing", n, err)
		}
		h, _ := as.AlertHistory(ctx, store.AlertHistoryQuery{})
		if len(h) != 1 || h[0].Key != "2" || len(h[0].Deliveries) != 1 {
			t.Fatalf("history after the purge = %+v; want the open firing and its delivery", h)
		}
	})
}
