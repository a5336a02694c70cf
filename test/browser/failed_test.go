package browser

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// failedCount asks the API how many failed events there are.
func (p pool) failedCount(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(p.http + "/v1/failed")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Count int `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Count
}

func (p pool) waitFailed(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.failedCount(t) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d failed events after 30s, want %d", p.failedCount(t), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFailedEventRetriedFromPage: an event the node refused (a second
// instance enabling a continuation token another holds) is shown with its
// reason, fixed in its payload and retried from the page, which then lists
// none; another is discarded with "Discard all that match", after the
// confirmation.
func TestFailedEventRetriedFromPage(t *testing.T) {
	ctx := browser(t)
	p := startPool(t, purchaseOrderDefinitions(t))
	enable := func(po, token string) map[string]any {
		return map[string]any{"activity": "PurchaseOrder", "instance": po, "kind": "enable-continuation", "token": token}
	}
	p.post(t, enable("PO-1042", "ship-1"))
	p.waitApplied(t, 1)
	p.post(t, enable("PO-1043", "ship-1"))
	p.waitFailed(t, 1)

	do(t, ctx,
		chromedp.Navigate(p.http+"/failed"),
		chromedp.WaitVisible(css(`#failed-table tbody tr[data-id]`)),
	)
	if reason := get(t, ctx, chromedp.Text(css(`#failed-table td.reason`))); !strings.Contains(reason, `already enabled by instance "PO-1042"`) {
		t.Errorf("reason %q", reason)
	}
	do(t, ctx,
		chromedp.Click(css(`#failed-table button.show`)),
		chromedp.WaitVisible(css(`#failed-table textarea.payload`)),
	)
	payload := get(t, ctx, chromedp.Value(css(`#failed-table textarea.payload`)))
	if !strings.Contains(payload, `"ship-1"`) {
		t.Fatalf("payload %q", payload)
	}
	screenshot(t, ctx, "failed")
	do(t, ctx,
		chromedp.SetValue(css(`#failed-table textarea.payload`), strings.Replace(payload, `"ship-1"`, `"ship-2"`, 1)),
		chromedp.Click(css(`#failed-table button.retry-fixed`)),
		chromedp.WaitVisible(css(`#failed-message .ok`)),
	)
	if msg := get(t, ctx, chromedp.Text(css(`#failed-message .ok`))); !strings.Contains(msg, "applied and removed") {
		t.Errorf("after the retry: %q", msg)
	}
	if n := p.failedCount(t); n != 0 {
		t.Errorf("%d failed events after the retry", n)
	}
	resp, err := http.Get(p.http + "/v1/activities/PurchaseOrder/instances/PO-1043")
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Continuations []struct{ Token string }
	}
	err = json.NewDecoder(resp.Body).Decode(&in)
	resp.Body.Close()
	if err != nil || len(in.Continuations) != 1 || in.Continuations[0].Token != "ship-2" {
		t.Errorf("PO-1043's continuations after the retry: %+v %v", in.Continuations, err)
	}

	// Another refusal, discarded in bulk after the confirmation.
	p.post(t, enable("PO-1044", "ship-1"))
	p.waitFailed(t, 1)
	do(t, ctx,
		chromedp.Navigate(p.http+"/failed?reason=ship-1"),
		chromedp.WaitVisible(css(`#failed-table tbody tr[data-id]`)),
		chromedp.Click(css(`#discard-all`)),
		chromedp.WaitVisible(css(`#confirm-yes`)),
	)
	if text := get(t, ctx, chromedp.Text(css(`#confirm-text`))); !strings.Contains(text, "(1)") {
		t.Errorf("the confirmation says %q", text)
	}
	do(t, ctx, chromedp.Click(css(`#confirm-yes`)), chromedp.WaitVisible(css(`#failed-message .ok`)))
	if msg := get(t, ctx, chromedp.Text(css(`#failed-message .ok`))); !strings.HasPrefix(msg, "Discarded 1 of 1") {
		t.Errorf("after the discard: %q", msg)
	}
	if n := p.failedCount(t); n != 0 {
		t.Errorf("%d failed events after the discard", n)
	}
}
