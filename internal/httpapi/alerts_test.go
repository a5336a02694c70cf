package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/alert"
	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/store"
)

func TestAlertsAPI(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		b.deploy(t, poDefinition)
		if list := decode[alertList](t, b.do(t, http.MethodGet, "/v1/alerts", nil)); list.Alerts == nil || len(list.Alerts) != 0 {
			t.Fatalf("alerts before any = %+v", list)
		}

		r := b.sendJSON(t, http.MethodPut, "/v1/alerts/purchaseorder/Big",
			`{"where": "Amount > 1000", "severity": "critical", "message": "{instance}: {Amount}", "subscribers": [{"webhook": "https://h.example/x?token=s3cret", "secret_env": "HOOK_SECRET"}]}`)
		if r.status != http.StatusCreated {
			t.Fatalf("PUT a new alert: %d %s", r.status, r.body)
		}
		put := decode[alertChanged](t, r)
		if put.Alert == nil || put.Alert.Activity != "PurchaseOrder" || put.Alert.Name != "Big" || put.Alert.Severity != "critical" ||
			put.Version != 2 || strings.Join(put.Changes, "|") != "add alert PurchaseOrder.Big" {
			t.Fatalf("PUT answered %+v", put)
		}
		if strings.Contains(string(r.body), "s3cret") {
			t.Errorf("the webhook's token is shown: %s", r.body)
		}
		if ss, err := b.st.Sessions(b.ctx); err != nil || !hasSession(ss, store.AlertsSource) {
			t.Errorf("no alerts session after the first alert: %+v, %v", ss, err)
		}

		r = b.sendJSON(t, http.MethodPut, "/v1/alerts/PurchaseOrder/big", `{"where": "Amount > 2000", "severity": "critical"}`)
		if changed := decode[alertChanged](t, r); r.status != http.StatusOK || changed.Alert.Name != "Big" || changed.Alert.Where != "Amount > 2000" ||
			strings.Join(changed.Changes, "|") != "change alert PurchaseOrder.Big" {
			t.Fatalf("PUT a change: %d %+v", r.status, changed)
		}
		// If-None-Match: * adds a new alert only: the one of that name (in
		// any case) is kept, 412.
		putAlert := func(name, body string, header ...string) response {
			return b.do(t, http.MethodPut, "/v1/alerts/PurchaseOrder/"+name, strings.NewReader(body), append([]string{"Content-Type", "application/json"}, header...)...)
		}
		wantError(t, putAlert("BIG", `{"where": "Amount > 1"}`, "If-None-Match", "*"), http.StatusPreconditionFailed, "alert PurchaseOrder.Big: the activity has an alert of that name: kept as it is")
		if got := decode[map[string]any](t, b.do(t, http.MethodGet, "/v1/alerts/PurchaseOrder/Big", nil)); got["where"] != "Amount > 2000" {
			t.Errorf("after a refused If-None-Match PUT, Big = %v", got)
		}
		if r := putAlert("Fresh", `{"where": "Amount > 1"}`, "If-None-Match", "*"); r.status != http.StatusCreated {
			t.Errorf("If-None-Match: * of a new name: %d %s", r.status, r.body)
		}
		wantStatus(t, b.do(t, http.MethodDelete, "/v1/alerts/PurchaseOrder/Fresh", nil), http.StatusOK)
		wantError(t, putAlert("Other", `{"where": "Amount > 1"}`, "If-None-Match", `"v1"`), http.StatusBadRequest, "only * is understood")
		wantError(t, b.sendJSON(t, http.MethodPut, "/v1/alerts/PurchaseOrder/Typo", `{"where": "Amout > 1"}`), http.StatusBadRequest, "did you mean Amount?")
		wantError(t, b.sendJSON(t, http.MethodPut, "/v1/alerts/PurchaseOrder/Loud", `{"where": "Amount > 1", "severity": "loud"}`), http.StatusBadRequest, `unknown severity "loud"`)
		wantError(t, b.sendJSON(t, http.MethodPut, "/v1/alerts/PurchaseOrder/Odd", `{"where": "Amount > 1", "colour": "red"}`), http.StatusBadRequest, `unknown field "colour"`)
		wantError(t, b.sendJSON(t, http.MethodPut, "/v1/alerts/PurchaseOrder/A", `{"name": "B", "where": "Amount > 1"}`), http.StatusBadRequest, `the body names alert "B"`)
		wantError(t, b.sendJSON(t, http.MethodPut, "/v1/alerts/PurchaseOrdr/A", `{"where": "Amount > 1"}`), http.StatusNotFound, "did you mean PurchaseOrder?")

		list := decode[alertList](t, b.do(t, http.MethodGet, "/v1/alerts", nil))
		if len(list.Alerts) != 1 || len(list.Alerts[0].Subscribers) != 0 {
			t.Fatalf("alerts = %+v", list)
		}
		one := decode[alert.DetailJSON](t, b.do(t, http.MethodGet, "/v1/alerts/PurchaseOrder/Big", nil))
		if one.Condition != "Amount > 2000" || one.Evaluator != "" || one.Open != 0 || one.OpenFirings == nil || one.Recent == nil {
			t.Errorf("alert = %+v", one)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/alerts/PurchaseOrder/Bog", nil), http.StatusNotFound, "did you mean PurchaseOrder.Big?")
		if page := decode[firingPage](t, b.do(t, http.MethodGet, "/v1/firings?open=true", nil)); page.Firings == nil || len(page.Firings) != 0 {
			t.Errorf("firings = %+v", page)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/firings?limit=0", nil), http.StatusBadRequest, "limit")
		if export := b.do(t, http.MethodGet, "/v1/definitions", nil); !strings.Contains(string(export.body), "    alerts:\n      - name: Big\n") {
			t.Errorf("the export lacks the alert:\n%s", export.body)
		}

		r = b.do(t, http.MethodDelete, "/v1/alerts/purchaseorder/BIG", nil)
		if del := decode[alertChanged](t, r); r.status != http.StatusOK || del.Alert != nil || strings.Join(del.Changes, "|") != "remove alert PurchaseOrder.Big" {
			t.Fatalf("DELETE: %d %s", r.status, r.body)
		}
		wantError(t, b.do(t, http.MethodDelete, "/v1/alerts/PurchaseOrder/Big", nil), http.StatusNotFound, "not found")
	})
}

// TestWebhookTokensAreNeverShown: a webhook's query (it may hold a token)
// is hidden by every answer that holds a definition, as GET /v1/alerts
// hides it. (Before: the export and the deployment history showed it.)
func TestWebhookTokensAreNeverShown(t *testing.T) {
	b := setup(t)
	b.deploy(t, poDefinition+`    alerts:
      - name: Late
        where: Amount > 1
        subscribers:
          - webhook: https://hooks.example.com/late?token=FILESECRET
            secret_env: K
`)
	r := b.sendJSON(t, http.MethodPut, "/v1/alerts/PurchaseOrder/BigOrder",
		`{"where": "Amount > 5000", "subscribers": [{"webhook": "https://hooks.example.com/x?token=APISECRET"}]}`)
	wantStatus(t, r, http.StatusCreated)
	for _, path := range []string{"/v1/definitions?activity=PurchaseOrder", "/v1/definitions", "/v1/deployments?files=true", "/v1/alerts"} {
		r := b.do(t, http.MethodGet, path, nil)
		wantStatus(t, r, http.StatusOK)
		if strings.Contains(string(r.body), "SECRET") {
			t.Errorf("GET %s shows a webhook's token:\n%s", path, r.body)
		}
		if !strings.Contains(string(r.body), "https://hooks.example.com/x?…") {
			t.Errorf("GET %s does not show the webhook, its query hidden:\n%s", path, r.body)
		}
	}
	// The export, deployed back, is refused rather than deployed without
	// the token.
	export := b.do(t, http.MethodGet, "/v1/definitions", nil)
	if _, err := definition.Parse(export.body); err == nil || !strings.Contains(err.Error(), "its query was hidden") {
		t.Errorf("the export with hidden tokens parses: %v", err)
	}
}

func hasSession(ss []store.SessionRow, source string) bool {
	for _, s := range ss {
		if s.Source == source {
			return true
		}
	}
	return false
}
