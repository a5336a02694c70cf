package browser

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// orders posts the purchase orders the tests search: PO-100..PO-139,
// customers, amounts and rush flags in a pattern, every third one ended.
// It returns how many events it sent.
func orders(t *testing.T, p pool) int {
	t.Helper()
	customers := []string{"Contoso", "Fabrikam", "Northwind", "O'Brien & Sons"}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var evs []map[string]any
	for i := range 40 {
		id := fmt.Sprintf("PO-%d", 100+i)
		received := at.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		evs = append(evs, map[string]any{"activity": "PurchaseOrder", "instance": id, "kind": "begin", "time": received,
			"data": map[string]any{"Received": received, "Customer": customers[i%len(customers)], "Amount": 250 * (i % 9), "Quantity": i % 5, "Rush": i%4 == 1}})
		if i%3 == 0 {
			evs = append(evs, map[string]any{"activity": "PurchaseOrder", "instance": id, "kind": "end", "time": at.Add(time.Hour).Format(time.RFC3339)})
		}
	}
	p.post(t, evs...)
	return len(evs)
}

func purchaseOrderDefinitions(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/purchase-order/definitions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestActivitiesPage: the portal's first page lists the deployed
// activities with their instances by state, linked to their search.
func TestActivitiesPage(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	p.waitApplied(t, orders(t, p))

	const row = `#activities tr[data-activity="PurchaseOrder"]`
	do(t, ctx, chromedp.Navigate(p.http+"/"), chromedp.WaitVisible(css(row)))
	active := get(t, ctx, chromedp.Text(css(row+` td:nth-of-type(1)`)))
	completed := get(t, ctx, chromedp.Text(css(row+` td:nth-of-type(2)`)))
	link := get(t, ctx, chromedp.AttributeValue(css(row+` th a`), "href")).Value
	if active != "26" || completed != "14" || link != "/activities/PurchaseOrder/search" {
		t.Errorf("PurchaseOrder: active %q, completed %q, link %q; want 26, 14, /activities/PurchaseOrder/search", active, completed, link)
	}

	// Events flow: the page shows the activity's rate, and none for the
	// activity that gets none.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var evs []map[string]any
			for j := range 50 {
				evs = append(evs, map[string]any{"activity": "PurchaseOrder", "instance": fmt.Sprintf("PO-R%d-%d", i, j), "kind": "begin"})
			}
			p.post(t, evs...)
		}
	}()
	do(t, ctx, until(`Number(document.querySelector('`+row+` td.rate').textContent.replace(/,/g, '')) > 0`))
	close(stop)
	<-done
	// The counts follow too, every fifth read (ten seconds).
	do(t, ctx, until(`Number(document.querySelector('`+row+` td.active').textContent.replace(/,/g, '')) > 26`))
	if idle := get(t, ctx, chromedp.Text(css(`#activities tr[data-activity="Shipment"] td.rate`))); idle != "0" {
		t.Errorf("Shipment, which gets no events, shows %q events/s", idle)
	}
	screenshot(t, ctx, "activities")
}

// TestSearchBuilderMatchesCLI builds a filter with the query builder (a
// condition, and a group of two in OR), searches, and finds the instances
// `bam instance list --where` finds for the filter the page wrote; the
// page's URL, opened again, shows the same conditions.
func TestSearchBuilderMatchesCLI(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	p.waitApplied(t, orders(t, p))

	const (
		want   = `Customer = 'O''Brien & Sons' AND (Amount > 1000 OR Rush = true)`
		nested = `#builder .group .group`
	)
	do(t, ctx,
		chromedp.Navigate(p.http+"/"),
		chromedp.Click(css(`tr[data-activity="PurchaseOrder"] th a`)),
		searched(),
		// Customer = 'O''Brien & Sons'
		chromedp.Click(css(`#builder button.add-condition`)),
		chromedp.WaitVisible(css(`#builder .cond select.field`)),
		choose(`#builder .cond select.field`, "Customer"),
		choose(`#builder .cond select.op`, "="),
		chromedp.SendKeys(css(`#builder .cond input.value`), "O'Brien & Sons"),
		// AND (Amount > 1000 OR Rush = true)
		chromedp.Click(css(`#builder > .group > div.row:last-child button.add-group`)),
		chromedp.WaitVisible(css(nested+` .cond select.field`)),
		choose(nested+` .cond select.field`, "Amount"),
		choose(nested+` .cond select.op`, ">"),
		chromedp.SendKeys(css(nested+` .cond input.value`), "1000"),
		chromedp.Click(css(nested+` button.add-condition`)),
		chromedp.WaitVisible(css(nested+` .cond:nth-of-type(2) select.field`)),
		choose(nested+` .cond:nth-of-type(2) select.field`, "Rush"),
		choose(nested+` .cond:nth-of-type(2) select.value`, "true"),
	)
	if text := get(t, ctx, chromedp.Value(css(`#filter-text`))); text != want {
		t.Fatalf("the builder wrote %q, want %q", text, want)
	}
	screenshot(t, ctx, "search-builder")

	do(t, ctx, chromedp.Click(css(`#search`)), until(`location.search.includes('where=')`), searched())
	location := get(t, ctx, chromedp.Location())
	ids := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#result-table tbody tr')].map(r => r.dataset.instance)`))
	u, err := url.Parse(location)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query().Get("where"); got != want {
		t.Errorf("the URL's filter is %q, want %q", got, want)
	}
	var cli struct {
		Rows []struct {
			ID string `json:"instance_id"`
		} `json:"rows"`
	}
	out := p.bam(t, "instance", "list", "PurchaseOrder", "--where", u.Query().Get("where"), "--format", "json")
	if err := json.Unmarshal([]byte(out), &cli); err != nil {
		t.Fatalf("bam instance list: %v\n%s", err, out)
	}
	var cliIDs []string
	for _, r := range cli.Rows {
		cliIDs = append(cliIDs, r.ID)
	}
	if len(ids) == 0 || !slices.Equal(ids, cliIDs) {
		t.Errorf("the page found %v, bam instance list %v", ids, cliIDs)
	}
	do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('#results').scrollIntoView()`))
	screenshot(t, ctx, "search-results")

	// The URL alone gives the same builder back.
	do(t, ctx, chromedp.Navigate(location), searched())
	text := get(t, ctx, chromedp.Value(css(`#filter-text`)))
	conds := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#builder .cond')].map(c => c.querySelector('select.field').value + ' ' + c.querySelector('select.op').value)`))
	if text != want || strings.Join(conds, ", ") != "Customer =, Amount >, Rush =" {
		t.Errorf("the URL opened again: filter %q, conditions %v", text, conds)
	}
}

// TestSearchShowsFilterErrors: a filter typed as text that does not fit
// the definition is refused where it was typed, with the store's words,
// and the page's URL does not change.
func TestSearchShowsFilterErrors(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	do(t, ctx, chromedp.Navigate(p.http+"/activities/PurchaseOrder/search"), searched())
	before := get(t, ctx, chromedp.Location())
	do(t, ctx,
		chromedp.SetValue(css(`#filter-text`), "Custmer = 'x'"),
		chromedp.Click(css(`#search`)),
		chromedp.WaitVisible(css(`#filter-problem .error`)))
	problem := get(t, ctx, chromedp.Text(css(`#filter-problem .error`)))
	after := get(t, ctx, chromedp.Location())
	if !strings.Contains(problem, "did you mean Customer?") || before != after {
		t.Errorf("problem %q; location %s then %s", problem, before, after)
	}
}

// TestModulesLoad imports every module of the portal in the browser: a
// syntax error in a page nobody opened yet fails here.
func TestModulesLoad(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	files, err := os.ReadDir("../../internal/portal/assets")
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(p.http+"/"), chromedp.WaitVisible(css(`h1`)))
	n := 0
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".js") {
			continue
		}
		n++
		got := get(t, ctx, chromedp.Evaluate[string](`import('/assets/`+f.Name()+`').then(() => 'ok', e => String(e))`, chromedp.EvalAwaitPromise))
		if got != "ok" {
			t.Errorf("%s: %s", f.Name(), got)
		}
	}
	if n < 5 {
		t.Errorf("%d modules found", n)
	}
}

// TestSearchExportsAndSaves: Export CSV writes every match of the search
// (past the page of 50), with the columns shown, and a search saved under
// a name is listed on the activity's search page, opens its URL, and can
// be forgotten.
func TestSearchExportsAndSaves(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	var evs []map[string]any
	for i := range 120 {
		evs = append(evs, map[string]any{"activity": "PurchaseOrder", "instance": fmt.Sprintf("PO-%03d", i), "kind": "begin",
			"data": map[string]any{"Customer": []string{"Contoso", "Fabrikam"}[i%2], "Amount": i}})
	}
	p.post(t, evs...)
	p.waitApplied(t, len(evs))

	// The download is caught where the page makes it: the Blob it links.
	do(t, ctx,
		chromedp.Navigate(p.http+"/activities/PurchaseOrder/search?where="+url.QueryEscape("Customer = 'Contoso'")+"&columns=Customer,Amount"),
		searched(),
		chromedp.Evaluate[chromedp.Void](`window.exported = null; URL.createObjectURL = (b) => { b.text().then(t => { window.exported = t; }); return 'blob:caught'; };
			const click = HTMLAnchorElement.prototype.click;
			HTMLAnchorElement.prototype.click = function () { if (!this.hasAttribute('download')) click.call(this); };`),
		chromedp.Click(css(`#export`)),
		until(`window.exported !== null`),
	)
	csv := get(t, ctx, chromedp.Evaluate[string](`window.exported`))
	lines := strings.Split(strings.TrimRight(csv, "\r\n"), "\r\n")
	if len(lines) != 61 || lines[0] != "instance_id,state,begin_time,end_time,last_modified,events,Customer,Amount" ||
		!strings.HasPrefix(lines[1], "PO-000,active,") || !strings.HasSuffix(lines[1], ",Contoso,0") || !strings.HasSuffix(lines[60], ",Contoso,118") {
		t.Errorf("the export has %d lines: %q … %q", len(lines), lines[:min(2, len(lines))], lines[len(lines)-1])
	}

	saved := `#saved a`
	do(t, ctx,
		chromedp.SendKeys(css(`#save-name`), "Contoso orders"),
		chromedp.Click(css(`#save`)),
		chromedp.WaitVisible(css(saved)),
		chromedp.Navigate(p.http+"/activities/PurchaseOrder/search"),
		searched(),
		chromedp.Click(css(saved)),
		until(`location.search.includes('Contoso')`),
		searched(),
	)
	if text := get(t, ctx, chromedp.Value(css(`#filter-text`))); text != "Customer = 'Contoso'" {
		t.Errorf("the saved search opened with the filter %q", text)
	}
	do(t, ctx, chromedp.Click(css(`#saved button`)), until(`!document.querySelector('#saved')`))
}

// TestSearchBuilderFollowsTypedText: a filter typed into the text shows
// in the builder, so that a change made there (a "not" ticked) keeps it;
// a text the builder cannot show yet (half typed) stays as typed, and the
// builder, inert, says why.
func TestSearchBuilderFollowsTypedText(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	do(t, ctx,
		chromedp.Navigate(p.http+"/activities/PurchaseOrder/search"), searched(),
		chromedp.SendKeys(css(`#filter-text`), "Amount > 1000 AND Rush = true"),
		until(`[...document.querySelectorAll('#builder .cond select.field')].map(s => s.value).join() === 'Amount,Rush'`),
		chromedp.Click(css(`#builder .cond input.cond-not`)),
	)
	if text := get(t, ctx, chromedp.Value(css(`#filter-text`))); text != "NOT Amount > 1000 AND Rush = true" {
		t.Errorf("after ticking not on the typed filter's first condition the text is %q", text)
	}
	do(t, ctx, choose(`#builder select.group-op`, "OR"))
	if text := get(t, ctx, chromedp.Value(css(`#filter-text`))); text != "NOT Amount > 1000 OR Rush = true" {
		t.Errorf("after choosing any of, the text is %q", text)
	}

	const half = "Customer = 'Contoso' AND Amount >"
	do(t, ctx,
		setValue(`#filter-text`, ""),
		chromedp.SendKeys(css(`#filter-text`), half),
		until(`document.querySelector('#builder').inert && /^The builder shows this filter once it reads: /.test(document.querySelector('#builder-note').textContent)`),
	)
	if text := get(t, ctx, chromedp.Value(css(`#filter-text`))); text != half {
		t.Errorf("the half-typed filter became %q", text)
	}
	do(t, ctx,
		chromedp.SendKeys(css(`#filter-text`), " 10"),
		until(`!document.querySelector('#builder').inert && document.querySelector('#builder-note').textContent === '' &&
			[...document.querySelectorAll('#builder .cond select.field')].map(s => s.value).join() === 'Customer,Amount'`),
	)
}

// TestSearchPendingInstances: the activities page's Pending count links
// to the search of the pending instances (updated, never begun), which
// lists them as bam instance list --state pending does; a state the URL
// names that is none (?state=bogus) is refused in words, and the
// selector shows that state, not "all".
func TestSearchPendingInstances(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	n := orders(t, p)
	for _, id := range []string{"PO-P1", "PO-P2"} {
		p.post(t, map[string]any{"activity": "PurchaseOrder", "instance": id, "kind": "update", "data": map[string]any{"Customer": "Contoso"}})
	}
	p.waitApplied(t, n+2)

	const pending = `#activities tr[data-activity="PurchaseOrder"] td.pending a`
	do(t, ctx, chromedp.Navigate(p.http+"/"), chromedp.WaitVisible(css(pending)))
	if text := get(t, ctx, chromedp.Text(css(pending))); text != "2" {
		t.Errorf("Pending shows %q, want 2", text)
	}
	do(t, ctx, chromedp.Click(css(pending)), until(`location.search === '?state=pending'`), searched())
	ids := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#result-table tbody tr')].map(r => r.dataset.instance)`))
	if strings.Join(ids, ",") != "PO-P1,PO-P2" {
		t.Errorf("the pending search lists %v, want PO-P1 and PO-P2", ids)
	}
	if out := p.bam(t, "instance", "list", "PurchaseOrder", "--state", "pending", "--format", "csv"); strings.Count(out, "PO-P") != 2 {
		t.Errorf("bam instance list --state pending:\n%s", out)
	}
	if state := get(t, ctx, chromedp.Value(css(`#state`))); state != "pending" {
		t.Errorf("the state selector says %q", state)
	}

	do(t, ctx, chromedp.Navigate(p.http+"/activities/PurchaseOrder/search?state=bogus"), searched())
	if msg := get(t, ctx, chromedp.Text(css(`#results .error`))); !strings.Contains(msg, `"bogus"`) || !strings.Contains(msg, "pending") {
		t.Errorf("?state=bogus: %q", msg)
	}
	if state := get(t, ctx, chromedp.Value(css(`#state`))); state != "bogus" {
		t.Errorf("?state=bogus: the state selector says %q", state)
	}
}
