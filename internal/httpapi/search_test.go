package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
)

const aggregatedDefinition = `activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone}
      - {name: Customer, type: text, max_length: 100, index: true}
      - {name: Amount,   type: decimal, precision: 12, scale: 2}
    aggregations:
      - name: ByCustomer
        dimensions:
          - {item: Customer}
        measures:
          - {name: total, function: sum, item: Amount}
          - {name: largest, function: max, item: Amount}
`

func TestSearchAndAggregations(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		b.deploy(t, aggregatedDefinition)
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		po := func(id, customer, amount string, kind event.Kind) event.Event {
			return event.Event{Activity: "PurchaseOrder", Instance: id, Kind: kind, Time: at, Data: map[string]json.RawMessage{
				"Customer": json.RawMessage(`"` + customer + `"`), "Amount": json.RawMessage(amount)}}
		}
		b.applyEvents(t, po("PO-1", "Contoso", "1200.50", event.Begin), po("PO-2", "Contoso", "80", event.Begin),
			po("PO-3", "Fabrikam", "5000", event.Begin), po("PO-4", "Fabrikam", "10", event.Begin),
			event.Event{Activity: "PurchaseOrder", Instance: "PO-4", Kind: event.End, Time: at.Add(time.Minute)})

		type page struct {
			Rows []struct {
				Instance string         `json:"instance_id"`
				State    string         `json:"state"`
				Items    map[string]any `json:"items"`
			} `json:"rows"`
			Next              *string `json:"next"`
			Where, Order      string
			Count             *int64 `json:"count"`
			CountIsLowerBound bool   `json:"count_is_lower_bound"`
		}
		q := url.Values{"where": {"customer = 'Contoso' OR Amount >= 5000"}, "order": {"Amount DESC"}, "limit": {"2"}, "columns": {"Amount"}, "count": {"true"}}
		p := decode[page](t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/search?"+q.Encode(), nil))
		if len(p.Rows) != 2 || p.Rows[0].Instance != "PO-3" || p.Rows[1].Instance != "PO-1" || p.Next == nil ||
			p.Where != "Customer = 'Contoso' OR Amount >= 5000" || p.Count == nil || *p.Count != 3 || p.CountIsLowerBound {
			t.Fatalf("first page %+v", p)
		}
		q.Set("cursor", *p.Next)
		q.Del("count")
		p = decode[page](t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/search?"+q.Encode(), nil))
		if len(p.Rows) != 1 || p.Rows[0].Instance != "PO-2" || p.Next != nil || p.Count != nil {
			t.Fatalf("second page %+v", p)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/search?where="+url.QueryEscape("Custmer = 'x'"), nil),
			http.StatusBadRequest, "did you mean Customer?")
		q.Set("order", "Amount")
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/search?"+q.Encode(), nil), http.StatusBadRequest, "cursor")
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrdr/search", nil), http.StatusNotFound, "did you mean PurchaseOrder?")
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/search?sort=x", nil), http.StatusBadRequest, `"sort"`)

		type cells struct {
			View  string           `json:"view"`
			Cells []map[string]any `json:"cells"`
		}
		c := decode[cells](t, b.do(t, http.MethodGet, "/v1/activities/purchaseorder/aggregations/bycustomer?state=active", nil))
		if c.View != "purchaseorder_bycustomer" || len(c.Cells) != 2 {
			t.Fatalf("cells %+v", c)
		}
		for _, cell := range c.Cells {
			// Every cell's instances_url lists exactly its instances.
			p := decode[page](t, b.do(t, http.MethodGet, cell["instances_url"].(string)+"&count=true", nil))
			if p.Count == nil || float64(*p.Count) != cell["instances"].(float64) {
				t.Errorf("cell %v: its search counts %v", cell, p.Count)
			}
		}
		if c.Cells[0]["customer"] != "Contoso" || c.Cells[0]["instances"] != float64(2) || c.Cells[1]["largest"] != float64(5000) {
			t.Errorf("active cells %v", c.Cells)
		}
		c = decode[cells](t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/aggregations/ByCustomer?state=all&where="+url.QueryEscape("Amount < 1000"), nil))
		if len(c.Cells) != 2 || c.Cells[1]["customer"] != "Fabrikam" || c.Cells[1]["instances"] != float64(1) || c.Cells[1]["largest"] != float64(10) {
			t.Errorf("cells of Amount < 1000: %v", c.Cells)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/aggregations/ByCustomr", nil), http.StatusNotFound, "did you mean ByCustomer?")
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/aggregations/ByCustomer?state=done", nil), http.StatusBadRequest, "state")
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/aggregations/ByCustomer?where=Amount", nil), http.StatusBadRequest, "filter")
	})
}

// TestCheckFilter: GET /v1/activities/{activity}/filter answers a filter
// as bam writes it, as a tree, and the fields a query builder offers, or
// the error a search would give.
func TestCheckFilter(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		b.deploy(t, aggregatedDefinition)
		type body struct {
			Activity, Where, Order string
			Tree                   *struct {
				Or []struct {
					Field  string `json:"field"`
					Op     string `json:"op"`
					Values []struct{ Kind, Text string }
				} `json:"or"`
			} `json:"tree"`
			Fields []struct {
				Name      string   `json:"name"`
				Type      string   `json:"type"`
				Item      bool     `json:"item"`
				Operators []string `json:"operators"`
			} `json:"fields"`
		}
		q := url.Values{"where": {"customer = 'O''Neil' or amount >= 5000"}, "order": {"amount desc"}}
		got := decode[body](t, b.do(t, http.MethodGet, "/v1/activities/purchaseorder/filter?"+q.Encode(), nil))
		if got.Activity != "PurchaseOrder" || got.Where != "Customer = 'O''Neil' OR Amount >= 5000" || got.Order != "Amount DESC" {
			t.Errorf("filter %+v", got)
		}
		if got.Tree == nil || len(got.Tree.Or) != 2 || got.Tree.Or[0].Field != "Customer" || got.Tree.Or[0].Values[0].Text != "O'Neil" ||
			got.Tree.Or[1].Op != ">=" || got.Tree.Or[1].Values[0].Kind != "number" {
			t.Errorf("tree %+v", got.Tree)
		}
		if len(got.Fields) != 9 || got.Fields[1].Name != "Customer" || got.Fields[1].Type != "text" || !got.Fields[1].Item ||
			got.Fields[2].Type != "decimal" || got.Fields[3].Name != "instance_id" || got.Fields[3].Item {
			t.Errorf("fields %+v", got.Fields)
		}
		empty := decode[body](t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/filter", nil))
		if empty.Tree != nil || empty.Where != "" || len(empty.Fields) != 9 {
			t.Errorf("the empty filter: %+v", empty)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/filter?where="+url.QueryEscape("Amount > 'x'"), nil),
			http.StatusBadRequest, "filter: at 10")
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/filter?where="+url.QueryEscape("Custmer = 'x'"), nil),
			http.StatusBadRequest, "did you mean Customer?")
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrdr/filter", nil), http.StatusNotFound, "did you mean PurchaseOrder?")
	})
}

// TestAggregationLimit: ?limit= answers the first cells, in their order,
// and says when it left some out.
func TestAggregationLimit(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		b.deploy(t, aggregatedDefinition)
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		var evs []event.Event
		for i, c := range []string{"Contoso", "Fabrikam", "Northwind"} {
			evs = append(evs, event.Event{Activity: "PurchaseOrder", Instance: fmt.Sprint("PO-", i), Kind: event.Begin, Time: at,
				Data: map[string]json.RawMessage{"Customer": json.RawMessage(`"` + c + `"`), "Amount": json.RawMessage("10")}})
		}
		b.applyEvents(t, evs...)
		type cells struct {
			Cells []map[string]any `json:"cells"`
			More  bool             `json:"more"`
		}
		c := decode[cells](t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/aggregations/ByCustomer?state=active&limit=2", nil))
		if len(c.Cells) != 2 || !c.More || c.Cells[0]["customer"] != "Contoso" || c.Cells[1]["customer"] != "Fabrikam" {
			t.Errorf("limit 2 of 3: %+v", c)
		}
		c = decode[cells](t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/aggregations/ByCustomer?state=active&limit=3", nil))
		if len(c.Cells) != 3 || c.More {
			t.Errorf("limit 3 of 3: %+v", c)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/aggregations/ByCustomer?limit=0", nil), http.StatusBadRequest, "limit")
	})
}

// TestActivitiesAreNamedAlikeByEveryEndpoint: the instance endpoints find a
// deployed activity named in any case, as GET /v1/activities/{activity}
// does (before: 404 for /v1/activities/purchaseorder/instances while
// /v1/activities/purchaseorder answered); a name that is no activity is
// 404 on every page of the list (before: 200 and no instances with
// after=); and an activity with instances but no definition is told it
// has no aggregations for that reason (before: "no activity is deployed
// or has instances").
func TestActivitiesAreNamedAlikeByEveryEndpoint(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		b.deploy(t, aggregatedDefinition)
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		b.applyEvents(t,
			event.Event{Activity: "PurchaseOrder", Instance: "PO-1", Kind: event.Begin, Time: at},
			event.Event{Activity: "Untyped", Instance: "U-1", Kind: event.Begin, Time: at})

		wantStatus(t, b.do(t, http.MethodGet, "/v1/activities/purchaseorder", nil), http.StatusOK)
		if page := decode[instancePage](t, b.do(t, http.MethodGet, "/v1/activities/purchaseorder/instances", nil)); len(page.Instances) != 1 ||
			page.Instances[0].Activity != "PurchaseOrder" {
			t.Errorf("instances of purchaseorder = %+v, want PO-1 of PurchaseOrder", page)
		}
		r := b.do(t, http.MethodGet, "/v1/activities/PURCHASEORDER/instances/PO-1", nil)
		if wantStatus(t, r, http.StatusOK); r.json(t)["url"] != "/v1/activities/PurchaseOrder/instances/PO-1" {
			t.Errorf("instance PO-1 of PURCHASEORDER = %s", r.body)
		}
		// Instances of an activity without a definition are named as
		// their events name them.
		wantStatus(t, b.do(t, http.MethodGet, "/v1/activities/Untyped/instances/U-1", nil), http.StatusOK)
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/untyped/instances", nil), http.StatusNotFound, `no activity "untyped"`, "did you mean Untyped?")

		for _, path := range []string{"/v1/activities/PurchaseOrdr/instances?after=A", "/v1/activities/PurchaseOrdr/instances"} {
			wantError(t, b.do(t, http.MethodGet, path, nil), http.StatusNotFound, `no activity "PurchaseOrdr"`, "did you mean PurchaseOrder?")
		}
		wantStatus(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances?after=zzz", nil), http.StatusOK)

		wantError(t, b.do(t, http.MethodGet, "/v1/activities/Untyped/aggregations/X", nil), http.StatusNotFound,
			"activity Untyped has instances but no deployed definition, so it has no aggregations")
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrdr/aggregations/ByCustomer", nil), http.StatusNotFound,
			`no activity "PurchaseOrdr" is deployed or has instances (did you mean PurchaseOrder?)`)
	})
}
