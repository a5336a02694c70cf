package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/alert/notify"
	"github.com/bam-dev/bam/internal/alert/notify/notifytest"
	"github.com/bam-dev/bam/internal/bus"
	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/lease"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testwait"
)

const orders = `
activities:
  - name: Order
    items:
      - {name: Approved, type: milestone}
      - {name: Customer, type: text, max_length: 40}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
    aggregations:
      - name: ByCustomer
        dimensions: [{item: Customer}]
        measures: [{name: total, function: sum, item: Amount}]
    alerts:
      - name: Big
        where: state = 'active' AND Amount > 1000
        message: "{Customer}'s order {instance} is for {Amount}"
        severity: critical
        subscribers:
          - {webhook: WEBHOOK, secret_env: TEST_BAM_SECRET}
          - {email: ops@example.com}
      - name: Busy
        aggregation: ByCustomer
        state: active
        above: 2
        message: "{customer} has {value} open orders"
        subscribers:
          - {webhook: WEBHOOK}
`

// rig is a store with the orders deployed, and an evaluator of its alerts
// delivering to an in-process webhook receiver and SMTP server.
type rig struct {
	t      *testing.T
	ctx    context.Context
	st     *sqlite.Store
	hook   *notifytest.WebhookReceiver
	mail   *notifytest.SMTPServer
	rounds chan error
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, ctx: ctx, st: st, hook: notifytest.NewWebhookReceiver(t, []byte("s3cret")), mail: notifytest.NewSMTPServer(t), rounds: make(chan error, 100)}
	text := strings.ReplaceAll(orders, "WEBHOOK", r.hook.URL())
	f, err := definition.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(f); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Deploy(ctx, store.DeployRequest{File: f, Text: text, By: "test"}); err != nil {
		t.Fatal(err)
	}
	if added, err := EnsureSession(ctx, st); err != nil || !added {
		t.Fatalf("EnsureSession = %t, %v; want the session added", added, err)
	}
	if added, err := EnsureSession(ctx, st); err != nil || added {
		t.Fatalf("EnsureSession again = %t, %v; want nothing to add", added, err)
	}
	return r
}

// start runs an evaluator of node under a fresh claim of the alerts
// session; the returned channel gives Run's result.
func (r *rig) start(node string, tune ...func(*Config)) (*Evaluator, <-chan error) {
	r.t.Helper()
	if err := r.st.Join(r.ctx, store.NodeRow{ID: node, Name: node, StartedAt: time.Now()}); err != nil {
		r.t.Fatal(err)
	}
	l, err := r.st.Claim(r.ctx, store.SessionID{Source: store.AlertsSource}, node, "", time.Hour)
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Interval, cfg.DeliveryPoll, cfg.RetryBase = 20*time.Millisecond, 10*time.Millisecond, 10*time.Millisecond
	cfg.Link = "http://bam.example.com"
	for _, f := range tune {
		f(&cfg)
	}
	cfg.Send = Sender{Node: node, Mailer: &notify.Mailer{Addr: r.mail.Addr(), From: "bam@example.com"},
		Getenv: func(name string) string {
			if name == "TEST_BAM_SECRET" {
				return "s3cret"
			}
			return ""
		}}
	e := NewEvaluator(cfg, r.st, node, lease.New(r.ctx, l, time.Now().Add(time.Hour)), slog.New(slog.NewTextHandler(io.Discard, nil)))
	e.afterRound = func(err error) {
		select {
		case r.rounds <- err:
		default:
		}
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(r.ctx) }()
	return e, done
}

// settle waits for n evaluations to end after now, each without error.
func (r *rig) settle(n int) {
	r.t.Helper()
	for len(r.rounds) > 0 {
		<-r.rounds
	}
	for range n {
		select {
		case err := <-r.rounds:
			if err != nil {
				r.t.Fatalf("evaluation: %v", err)
			}
		case <-r.ctx.Done():
			r.t.Fatal("no evaluation")
		}
	}
}

func (r *rig) emit(instance string, kind event.Kind, data map[string]any) {
	r.t.Helper()
	ev := event.Event{Activity: "Order", Instance: instance, Kind: kind, Time: time.Now().UTC(), Data: map[string]json.RawMessage{}}
	for k, v := range data {
		b, _ := json.Marshal(v)
		ev.Data[k] = b
	}
	if err := r.st.WriteEvents(r.ctx, []event.Event{ev}); err != nil {
		r.t.Fatal(err)
	}
}

// openKeys lists the keys of an alert's open firings, sorted.
func (r *rig) openKeys(alert string) []string {
	r.t.Helper()
	var keys []string
	for _, f := range r.history(alert) {
		if f.ClearedAt == nil {
			keys = append(keys, f.Key)
		}
	}
	slices.Sort(keys)
	return keys
}

func (r *rig) history(alert string) []store.Firing {
	r.t.Helper()
	h, err := r.st.AlertHistory(r.ctx, store.AlertHistoryQuery{Activity: "Order", Alert: alert})
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func TestInstanceAlertFiresOnTheEdge(t *testing.T) {
	r := newRig(t)
	_, done := r.start("n1")
	r.emit("o1", event.Begin, map[string]any{"Customer": "acme", "Amount": 5000})
	r.emit("o2", event.Begin, map[string]any{"Customer": "zeta", "Amount": 5})

	got := r.hook.WaitFor(t, 1, 30*time.Second)
	mails := r.mail.WaitFor(t, 1, 30*time.Second)
	r.settle(5) // five more evaluations: the condition still holds, nothing fires again
	if h := r.history("Big"); len(h) != 1 || h[0].Key != "o1" || h[0].ClearedAt != nil {
		t.Fatalf("history of Big = %+v, want one open firing for o1", h)
	}
	m := got[0]
	if !m.SignatureValid || m.Message.Alert != "Big" || m.Message.Key != "o1" || m.Message.Severity != "critical" ||
		m.Message.Message != "acme's order o1 is for 5000" || m.Message.Link != "http://bam.example.com/activities/Order/instances/o1" {
		t.Errorf("webhook delivery = %+v (signature valid %t)", m.Message, m.SignatureValid)
	}
	if !strings.Contains(mails[0].Body, "acme's order o1 is for 5000") {
		t.Errorf("email body = %q", mails[0].Body)
	}
	if n := len(r.hook.Received()); n != 1 {
		t.Fatalf("%d webhook deliveries after more evaluations, want 1", n)
	}

	// It clears, then fires again: a second firing, a new delivery id.
	r.emit("o1", event.Update, map[string]any{"Amount": 10})
	r.settle(2)
	if h := r.history("Big"); len(h) != 1 || h[0].ClearedAt == nil {
		t.Fatalf("history of Big after the amount fell = %+v, want the firing cleared", h)
	}
	r.emit("o1", event.Update, map[string]any{"Amount": 2000})
	got = r.hook.WaitFor(t, 2, 30*time.Second)
	if got[1].DeliveryID == got[0].DeliveryID || got[1].Message.Key != "o1" {
		t.Fatalf("second firing's delivery = %+v, first %s", got[1].Message, got[0].DeliveryID)
	}
	h := r.history("Big")
	if len(h) != 2 || h[0].ClearedAt != nil {
		t.Fatalf("history of Big = %+v, want a new open firing and the cleared one", h)
	}
	// The receivers answered; the answers are recorded right after.
	testwait.Until(t, 30*time.Second, "the second firing's deliveries recorded", func() bool {
		for _, d := range r.history("Big")[0].Deliveries {
			if d.State != store.DeliveryDelivered || d.Attempts != 1 {
				return false
			}
		}
		return true
	})
	// Completed, the instance no longer matches (state = 'active').
	r.emit("o1", event.End, nil)
	r.settle(2)
	if h := r.history("Big"); h[0].ClearedAt == nil {
		t.Fatalf("a completed instance's firing stays open: %+v", h[0])
	}
	select {
	case err := <-done:
		t.Fatalf("evaluator ended: %v", err)
	default:
	}
}

func TestAggregateAlertFiresPerCell(t *testing.T) {
	r := newRig(t)
	_, _ = r.start("n1")
	for _, id := range []string{"a1", "a2", "a3"} {
		r.emit(id, event.Begin, map[string]any{"Customer": "acme", "Amount": 1})
	}
	r.emit("b1", event.Begin, map[string]any{"Customer": "bolt", "Amount": 1})
	got := r.hook.WaitFor(t, 1, 30*time.Second)
	r.settle(3)
	h := r.history("Busy")
	if len(h) != 1 || h[0].Key != `{"customer":"acme"}` || h[0].Value != "3" || h[0].Message != "acme has 3 open orders" {
		t.Fatalf("history of Busy = %+v, want acme's cell at 3", h)
	}
	if got[0].Message.Value != "3" || got[0].Message.Link != "http://bam.example.com/activities/Order/aggregations/ByCustomer" || got[0].Signature != "" {
		t.Errorf("delivery = %+v, signature %q (the subscriber has no secret)", got[0].Message, got[0].Signature)
	}
	// Two end: the cell falls to 1 active, the firing clears.
	r.emit("a1", event.End, nil)
	r.emit("a2", event.End, nil)
	r.settle(2)
	if h := r.history("Busy"); h[0].ClearedAt == nil {
		t.Fatalf("firing not cleared: %+v", h[0])
	}
}

func TestDeliveriesRetryThenGiveUp(t *testing.T) {
	r := newRig(t)
	r.hook.FailNext(2, 503)
	_, _ = r.start("n1")
	r.emit("o1", event.Begin, map[string]any{"Customer": "acme", "Amount": 5000})
	got := r.hook.WaitFor(t, 3, 30*time.Second)
	if got[0].DeliveryID != got[2].DeliveryID || got[2].Status/100 != 2 {
		t.Fatalf("retries: %+v", got)
	}
	webhook := func(key string) store.Delivery {
		for _, f := range r.history("Big") {
			for _, d := range f.Deliveries {
				if f.Key == key && d.Channel == store.ChannelWebhook {
					return d
				}
			}
		}
		return store.Delivery{}
	}
	testwait.Until(t, 30*time.Second, "o1's webhook delivery recorded delivered at the third attempt", func() bool {
		d := webhook("o1")
		return d.State == store.DeliveryDelivered && d.Attempts == 3
	})

	// A permanent refusal is not retried.
	r.hook.FailNext(1, 404)
	r.emit("o2", event.Begin, map[string]any{"Customer": "acme", "Amount": 5000})
	r.hook.WaitFor(t, 4, 30*time.Second)
	testwait.Until(t, 30*time.Second, "o2's webhook delivery recorded failed", func() bool {
		return webhook("o2").State == store.DeliveryFailed
	})
	if d := webhook("o2"); !strings.Contains(d.LastError, "404") || d.Attempts != 1 {
		t.Errorf("delivery %+v, want failed at the first attempt with the 404", d)
	}
	r.settle(3) // more evaluations and delivery rounds: nothing is sent again
	if n := len(r.hook.Received()); n != 4 {
		t.Fatalf("%d webhook requests, want 4 (a 404 is not retried)", n)
	}
}

func TestFencedEvaluatorCommitsNothing(t *testing.T) {
	r := newRig(t)
	_, done := r.start("n1")
	r.settle(1)
	// n2 takes the session over (n1 was found dead, say): n1's next
	// commit is fenced, and it stops.
	if _, err := r.st.ExpireLeases(r.ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if err := r.st.Join(r.ctx, store.NodeRow{ID: "n2", Name: "n2", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.Claim(r.ctx, store.SessionID{Source: store.AlertsSource}, "n2", "n1", time.Hour); err != nil {
		t.Fatal(err)
	}
	r.emit("o1", event.Begin, map[string]any{"Customer": "acme", "Amount": 5000})
	select {
	case err := <-done:
		if !errors.Is(err, bus.ErrLost) {
			t.Fatalf("Run = %v, want bus.ErrLost", err)
		}
	case <-r.ctx.Done():
		t.Fatal("a fenced evaluator goes on")
	}
	if h := r.history(""); len(h) != 0 {
		t.Fatalf("a fenced evaluator fired: %+v", h)
	}
}

// TestManyMatchesFireRoundAfterRound: with more matching instances than
// a round reads or fires, the rounds read on from where the last stopped,
// so every instance fires, once, and the ones that stop matching are
// cleared, wherever they are in the order.
func TestManyMatchesFireRoundAfterRound(t *testing.T) {
	r := newRig(t)
	r.start("n1", func(c *Config) { c.MaxKeys, c.MaxFirings = 3, 2 })
	var ids []string
	for i := range 11 {
		id := fmt.Sprintf("o%02d", i)
		ids = append(ids, id)
		r.emit(id, event.Begin, map[string]any{"Customer": "acme", "Amount": 5000})
	}
	openKeys := func() []string { return r.openKeys("Big") }
	testwait.Until(t, 30*time.Second, "every matching instance to fire", func() bool { return slices.Equal(openKeys(), ids) })
	r.settle(12) // four passes over the matches: nothing fires twice
	if h := r.history("Big"); len(h) != len(ids) {
		t.Fatalf("%d firings for %d instances", len(h), len(ids))
	}
	r.emit("o01", event.Update, map[string]any{"Amount": 1})
	r.emit("o09", event.Update, map[string]any{"Amount": 1})
	want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "o01" || id == "o09" })
	testwait.Until(t, 30*time.Second, "o01 and o09 cleared", func() bool { return slices.Equal(openKeys(), want) })
}

// TestManyCellsFireRoundAfterRound: an aggregation with more cells than a
// round reads is read a page a round; every crossing cell fires once, and
// a cell that empties (its instances all ended) is cleared once a pass
// has read every page without it.
func TestManyCellsFireRoundAfterRound(t *testing.T) {
	r := newRig(t)
	r.start("n1", func(c *Config) { c.MaxKeys, c.MaxFirings = 2, 3 })
	var want []string
	for c := range 7 {
		customer := fmt.Sprintf("c%d", c)
		want = append(want, `{"customer":"`+customer+`"}`)
		for i := range 3 {
			r.emit(fmt.Sprintf("%s-%d", customer, i), event.Begin, map[string]any{"Customer": customer, "Amount": 1})
		}
	}
	openKeys := func() []string { return r.openKeys("Busy") }
	testwait.Until(t, 30*time.Second, "every busy customer's cell to fire", func() bool { return slices.Equal(openKeys(), want) })
	r.settle(12)
	if h := r.history("Busy"); len(h) != len(want) {
		t.Fatalf("%d firings for %d cells", len(h), len(want))
	}
	for i := range 3 {
		r.emit(fmt.Sprintf("c3-%d", i), event.End, nil)
	}
	want = slices.DeleteFunc(want, func(k string) bool { return k == `{"customer":"c3"}` })
	testwait.Until(t, 30*time.Second, "c3's emptied cell cleared", func() bool { return slices.Equal(openKeys(), want) })
}
