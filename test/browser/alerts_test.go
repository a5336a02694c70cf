package browser

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bam-dev/bam/internal/alert/notify/notifytest"
	"github.com/bam-dev/bam/internal/testwait"
)

// TestAlertsPages: the example's LateApproval alert fires for the two
// large orders not approved in time, each delivered to a webhook; the
// alerts page lists the alert with its two open firings and their
// deliveries, and its own page names the evaluating node and links each
// firing to its instance.
func TestAlertsPages(t *testing.T) {
	ctx := browser(t)
	hook := notifytest.NewWebhookReceiver(t, nil)
	defs := strings.Replace(purchaseOrderDefinitions(t),
		`        message: "{Customer}'s order {instance} for {Amount} is not approved 2 hours after it was received"`,
		`        message: "{Customer}'s order {instance} for {Amount} is not approved 2 hours after it was received"
        subscribers: [{webhook: "`+hook.URL()+`"}]`, 1)
	p := startPool(t, defs)
	n := orders(t, p) // none of them over 10,000
	received := time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339)
	for _, po := range []string{"PO-900", "PO-901"} {
		p.post(t, map[string]any{"activity": "PurchaseOrder", "instance": po, "kind": "begin", "time": received,
			"data": map[string]any{"Received": received, "Customer": "Contoso", "Amount": 25000}})
	}
	p.waitApplied(t, n+2)
	hook.WaitFor(t, 2, 30*time.Second)
	testwait.Until(t, 20*time.Second, "both deliveries recorded", func() bool {
		var page struct {
			Firings []struct {
				Deliveries []struct{ State string } `json:"deliveries"`
			} `json:"firings"`
		}
		resp, err := http.Get(p.http + "/v1/firings?open=true")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&page) != nil || len(page.Firings) != 2 {
			return false
		}
		for _, f := range page.Firings {
			if len(f.Deliveries) != 1 || f.Deliveries[0].State != "delivered" {
				return false
			}
		}
		return true
	})

	const row = `#alerts tr[data-alert="PurchaseOrder.LateApproval"]`
	do(t, ctx,
		chromedp.Navigate(p.http+"/"),
		chromedp.Click(css(`.top nav a[href="/alerts"]`)),
		chromedp.WaitVisible(css(row)),
	)
	if open := get(t, ctx, chromedp.Text(css(row+` td.open`))); open != "2" {
		t.Errorf("LateApproval open: %q, want 2", open)
	}
	if busy := get(t, ctx, chromedp.Text(css(`#alerts tr[data-alert="PurchaseOrder.BusyCustomer"] td.open`))); busy != "0" {
		t.Errorf("BusyCustomer open: %q, want 0", busy)
	}
	keys := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('table.firings tbody td.key')].map(c => c.textContent).sort()`))
	if strings.Join(keys, ",") != "PO-900,PO-901" {
		t.Errorf("firings of %q, want PO-900 and PO-901", keys)
	}
	if d := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('table.firings li.delivery-delivered').length`)); d != 2 {
		t.Errorf("%d deliveries shown delivered, want 2", d)
	}
	screenshot(t, ctx, "alerts")

	do(t, ctx,
		chromedp.Click(css(row+` th a`)),
		until(`location.pathname === '/alerts/PurchaseOrder/LateApproval'`),
		chromedp.WaitVisible(css(`#alert-facts`)),
	)
	// By name and id, as the pool page shows the node.
	if ev := get(t, ctx, chromedp.Text(css(`#alert-evaluator`))); !strings.HasPrefix(ev, "node node-1 (") {
		t.Errorf("evaluated by %q, want node node-1 (its id)", ev)
	}
	if open := get(t, ctx, chromedp.Text(css(`#alert-open`))); open != "2" {
		t.Errorf("open %q, want 2", open)
	}
	screenshot(t, ctx, "alert")
	do(t, ctx,
		chromedp.Click(css(`table.firings tr[data-firing] td.key a`)),
		until(`location.pathname.startsWith('/activities/PurchaseOrder/instances/PO-90')`),
	)
}

// TestAlertDefinedFromPage: an alert added on the alerts page (a bad
// filter refused first, in words) fires for the orders it matches; changed
// on its own page, its firings follow its new condition; removed after the
// confirmation, it is gone from the page and from the exported definitions.
func TestAlertDefinedFromPage(t *testing.T) {
	ctx := browser(t)
	hook := notifytest.NewWebhookReceiver(t, nil)
	p := startPool(t, purchaseOrderDefinitions(t))

	do(t, ctx,
		chromedp.Navigate(p.http+"/alerts"),
		chromedp.Click(css(`#alert-new`)),
		chromedp.WaitVisible(css(`#alert-form`)),
		chromedp.SendKeys(css(`#alert-name`), "BigOrder"),
		chromedp.SendKeys(css(`#alert-where`), "Amout > 1500"),
		chromedp.SendKeys(css(`#alert-message`), "{instance} is for {Amount}"),
		chromedp.SendKeys(css(`#alert-subscribers`), hook.URL()),
		choose(`#alert-severity`, "critical"),
		chromedp.Click(css(`#alert-save`)),
		chromedp.WaitVisible(css(`#alert-problem .error`)),
	)
	if msg := get(t, ctx, chromedp.Text(css(`#alert-problem .error`))); !strings.Contains(msg, "did you mean Amount?") {
		t.Errorf("the refusal says %q", msg)
	}
	screenshot(t, ctx, "alert-form")
	do(t, ctx,
		setValue(`#alert-where`, "Amount > 1500"),
		chromedp.Click(css(`#alert-save`)),
		until(`location.pathname === '/alerts/PurchaseOrder/BigOrder'`),
		chromedp.WaitVisible(css(`#alert-facts`)),
	)
	if c := get(t, ctx, chromedp.Text(css(`#alert-facts dd.condition`))); !strings.HasPrefix(c, "Amount > 1500") {
		t.Errorf("condition shown: %q", c)
	}

	// 250 × (i mod 9) over 40 orders: 8 above 1,500, 4 of them 2,000.
	p.waitApplied(t, orders(t, p))
	got := hook.WaitFor(t, 8, 30*time.Second)
	if m := got[0].Message; m.Alert != "BigOrder" || m.Severity != "critical" || !strings.HasSuffix(m.Message, "is for 1750") && !strings.HasSuffix(m.Message, "is for 2000") {
		t.Errorf("delivery %+v", m)
	}

	do(t, ctx,
		chromedp.Click(css(`#alert-change`)),
		chromedp.WaitVisible(css(`#alert-form`)),
		setValue(`#alert-where`, "Amount > 1900"),
		chromedp.Click(css(`#alert-save`)),
		chromedp.WaitVisible(css(`#alert-facts`)),
	)
	testwait.Until(t, 20*time.Second, "the firings of the 1,750 orders cleared", func() bool { return p.openFirings(t, "BigOrder") == 4 })

	do(t, ctx,
		chromedp.Navigate(p.http+"/alerts/PurchaseOrder/BigOrder"),
		chromedp.Click(css(`#alert-remove`)),
		chromedp.WaitVisible(css(`#confirm-yes`)),
		chromedp.Click(css(`#confirm-yes`)),
		until(`location.pathname === '/alerts'`),
		chromedp.WaitVisible(css(`#alerts`)),
	)
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#alerts tr[data-alert="PurchaseOrder.BigOrder"]').length`)); n != 0 {
		t.Errorf("the removed alert is still listed")
	}
	if export := p.bam(t, "definition", "export"); strings.Contains(export, "BigOrder") || !strings.Contains(export, "LateApproval") {
		t.Errorf("export after the removal:\n%s", export)
	}
}

// openFirings asks the API how many firings of an alert are open.
func (p pool) openFirings(t *testing.T, alert string) int {
	t.Helper()
	resp, err := http.Get(p.http + "/v1/firings?open=true&alert=" + alert)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Firings []json.RawMessage `json:"firings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return len(page.Firings)
}

// TestAlertFromSearch: "Alert on this search" opens the alert form with
// the search's filter and state; saved, the alert has that condition.
func TestAlertFromSearch(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	do(t, ctx,
		chromedp.Navigate(p.http+"/activities/PurchaseOrder/search?where=Amount+%3E+1500&state=active"),
		searched(),
		chromedp.Click(css(`#alert-from-search`)),
		until(`location.pathname === '/alerts'`),
		chromedp.WaitVisible(css(`#alert-form`)),
	)
	if where := get(t, ctx, chromedp.Value(css(`#alert-where`))); where != "state = 'active' AND (Amount > 1500)" {
		t.Errorf("the form's filter is %q", where)
	}
	if a := get(t, ctx, chromedp.Value(css(`#alert-activity`))); a != "PurchaseOrder" {
		t.Errorf("the form's activity is %q", a)
	}
	do(t, ctx,
		chromedp.SendKeys(css(`#alert-name`), "ActiveBig"),
		chromedp.Click(css(`#alert-save`)),
		until(`location.pathname === '/alerts/PurchaseOrder/ActiveBig'`),
		chromedp.WaitVisible(css(`#alert-facts`)),
	)
	if c := get(t, ctx, chromedp.Text(css(`#alert-facts dd.condition`))); !strings.HasPrefix(c, "state = 'active' AND (Amount > 1500)") {
		t.Errorf("condition shown: %q", c)
	}
}

// TestNewAlertKeepsAnExistingOne: "New alert" under the name of an alert
// the activity has (LateApproval) is refused, with a link to that alert,
// which stays as it was; "Change" on the alert's own page still replaces
// it, and its form's fields are labelled (no id twice on the page).
func TestNewAlertKeepsAnExistingOne(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	condition := func() string {
		t.Helper()
		resp, err := http.Get(p.http + "/v1/alerts/PurchaseOrder/LateApproval")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct{ Condition string }
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		return a.Condition
	}
	before := condition()

	do(t, ctx,
		chromedp.Navigate(p.http+"/alerts"),
		chromedp.Click(css(`#alert-new`)),
		chromedp.WaitVisible(css(`#alert-form`)),
		chromedp.SendKeys(css(`#alert-name`), "lateApproval"),
		chromedp.SendKeys(css(`#alert-where`), "Amount > 1"),
		chromedp.Click(css(`#alert-save`)),
		chromedp.WaitVisible(css(`#alert-problem .error`)),
	)
	if msg := get(t, ctx, chromedp.Text(css(`#alert-problem .error`))); !strings.Contains(msg, "already has an alert named LateApproval") {
		t.Errorf("the form says %q", msg)
	}
	if after := condition(); after != before {
		t.Fatalf("New alert replaced LateApproval: its condition was %q, is %q", before, after)
	}

	do(t, ctx,
		chromedp.Click(css(`#alert-problem .error a`)),
		until(`location.pathname === '/alerts/PurchaseOrder/LateApproval'`),
		chromedp.WaitVisible(css(`#alert-facts`)),
		chromedp.Click(css(`#alert-change`)),
		chromedp.WaitVisible(css(`#alert-form`)),
	)
	dup := get(t, ctx, chromedp.Evaluate[[]string](`(() => { const seen = new Map();
		for (const e of document.querySelectorAll('[id]')) seen.set(e.id, (seen.get(e.id) || 0) + 1);
		return [...seen].filter(([, n]) => n > 1).map(([id]) => id); })()`))
	if len(dup) != 0 {
		t.Errorf("ids given twice on the alert's page with its form: %v", dup)
	}
	labelled := get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#alert-form label[for="alert-message"]').control?.tagName || 'nothing'`))
	if labelled != "TEXTAREA" {
		t.Errorf("the form's Message label points at %s, not its textarea", labelled)
	}
	do(t, ctx,
		setValue(`#alert-where`, "Amount > 5"),
		chromedp.Click(css(`#alert-save`)),
		until(`document.querySelector('#alert-facts dd.condition')?.textContent.includes('Amount > 5')`),
	)
	if after := condition(); !strings.Contains(after, "Amount > 5") {
		t.Errorf("Change did not replace the alert: its condition is %q", after)
	}
}
