package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/testpg"
)

// onBothStores runs test on an API over SQLite and over PostgreSQL, each
// with the sources of setupOn.
func onBothStores(t *testing.T, test func(t *testing.T, b *bundle), opts ...setupOpt) {
	t.Run("sqlite", func(t *testing.T) { test(t, setup(t, opts...)) })
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), testpg.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		test(t, setupOn(t, st, t.TempDir(), opts...))
	})
}

// decode decodes a response's JSON body into a value of type T.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not a %T: %v\n%s", v, err, r.body)
	}
	return v
}

// sendJSON sends a request with a JSON body.
func (b *bundle) sendJSON(t *testing.T, method, path, body string) response {
	t.Helper()
	return b.do(t, method, path, strings.NewReader(body), "Content-Type", "application/json")
}

const poDefinition = `activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone}
      - {name: Approved, type: milestone}
      - {name: Shipped, type: milestone}
      - {name: Amount, type: decimal, precision: 12, scale: 2, index: true}
`

func (b *bundle) deploy(t *testing.T, text string) {
	t.Helper()
	f, err := definition.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Deploy(b.ctx, store.DeployRequest{File: f, Text: text, By: "test"}); err != nil {
		t.Fatal(err)
	}
}

func TestActivitiesAndDefinitions(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		wantError(t, b.do(t, http.MethodGet, "/v1/definitions", nil), http.StatusNotFound, "no activities deployed")
		b.deploy(t, poDefinition)
		b.applyEvents(t,
			event.Event{Activity: "PurchaseOrder", Instance: "PO-1", Kind: event.Begin, Time: at, Data: map[string]json.RawMessage{
				"Approved": json.RawMessage(`"2026-11-25T10:05:00Z"`), "Received": json.RawMessage(`"2026-11-25T10:01:00Z"`), "Amount": json.RawMessage(`12.5`)}},
			event.Event{Activity: "PurchaseOrder", Instance: "PO-2", Kind: event.Begin, Time: at},
			event.Event{Activity: "PurchaseOrder", Instance: "PO-2", Kind: event.End, Time: at.Add(time.Minute)},
			event.Event{Activity: "Untyped", Instance: "U-1", Kind: event.Update, Time: at})

		list := decode[activityList](t, b.do(t, http.MethodGet, "/v1/activities", nil))
		if list.Version != 1 || len(list.Activities) != 2 || list.Activities[0].Name != "PurchaseOrder" || !list.Activities[0].Deployed ||
			len(list.Activities[0].Items) != 4 || list.Activities[0].Instances != nil || list.Activities[1].Name != "Untyped" || list.Activities[1].Deployed {
			t.Fatalf("activities = %+v", list)
		}
		if it := list.Activities[0].Items[3]; it.Name != "Amount" || it.Describe != "decimal(12,2)" || !it.Index || it.Column != "amount" {
			t.Errorf("item = %+v", it)
		}
		list = decode[activityList](t, b.do(t, http.MethodGet, "/v1/activities?counts=true", nil))
		if n := list.Activities[0].Instances; n["active"] != 1 || n["completed"] != 1 || n["pending"] != 0 {
			t.Errorf("counts = %v", n)
		}
		if n := list.Activities[1].Instances; n["pending"] != 1 {
			t.Errorf("untyped counts = %v", n)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/activities?counts=yes", nil), http.StatusBadRequest, "counts")
		wantError(t, b.do(t, http.MethodGet, "/v1/activities?count=true", nil), http.StatusBadRequest, `"count"`, "counts")

		one := decode[activityJSONForTest](t, b.do(t, http.MethodGet, "/v1/activities/purchaseorder", nil))
		if one.Name != "PurchaseOrder" || !one.Deployed || one.Instances["active"] != 1 || len(one.Views) == 0 || one.Window.Keep != "0s" {
			t.Errorf("activity = %+v", one)
		}
		untyped := decode[activityJSONForTest](t, b.do(t, http.MethodGet, "/v1/activities/Untyped", nil))
		if untyped.Deployed || untyped.Instances["pending"] != 1 {
			t.Errorf("untyped activity = %+v", untyped)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrdr", nil), http.StatusNotFound, "did you mean PurchaseOrder")

		r := b.do(t, http.MethodGet, "/v1/definitions", nil)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/yaml" ||
			!strings.HasPrefix(string(r.body), "# exported from definitions version 1\n") || !strings.Contains(string(r.body), "PurchaseOrder") {
			t.Errorf("export = %d %q\n%s", r.status, r.header.Get("Content-Type"), r.body)
		}
		if _, err := definition.Parse(r.body); err != nil {
			t.Errorf("the export does not parse as a definitions file: %v", err)
		}
		wantStatus(t, b.do(t, http.MethodGet, "/v1/definitions?activity=purchaseorder", nil), http.StatusOK)
		wantError(t, b.do(t, http.MethodGet, "/v1/definitions?activity=PurchaseOrdr", nil), http.StatusNotFound, "did you mean PurchaseOrder")
		wantError(t, b.do(t, http.MethodGet, "/v1/definitions?activity=Untyped", nil), http.StatusNotFound, "no deployed definition")

		deps := decode[deploymentList](t, b.do(t, http.MethodGet, "/v1/deployments", nil))
		if len(deps.Deployments) != 1 || deps.Deployments[0].Version != 1 || deps.Deployments[0].By != "test" || deps.Deployments[0].File != "" || len(deps.Deployments[0].Changes) == 0 {
			t.Errorf("deployments = %+v", deps)
		}
		deps = decode[deploymentList](t, b.do(t, http.MethodGet, "/v1/deployments?files=true&limit=1", nil))
		if len(deps.Deployments) != 1 || deps.Deployments[0].File != poDefinition {
			t.Errorf("deployments with files = %+v", deps)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/deployments?limit=0", nil), http.StatusBadRequest, "limit")

		// One instance: its milestones in time order, its own URL.
		in := decode[store.InstanceDetailJSON](t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances/PO-1", nil))
		want := []store.MilestoneJSON{{Item: "Received", Time: "2026-11-25T10:01:00Z"}, {Item: "Approved", Time: "2026-11-25T10:05:00Z"}}
		if fmt.Sprint(in.Timeline) != fmt.Sprint(want) || in.Archived || in.URL != "/v1/activities/PurchaseOrder/instances/PO-1" {
			t.Errorf("instance timeline %v, archived %v, url %q; want %v", in.Timeline, in.Archived, in.URL, want)
		}
		in = decode[store.InstanceDetailJSON](t, b.do(t, http.MethodGet, "/v1/activities/Untyped/instances/U-1", nil))
		if in.Timeline == nil || len(in.Timeline) != 0 {
			t.Errorf("an undeployed activity's instance has timeline %v, want []", in.Timeline)
		}
	})
}

// activityJSONForTest reads ops.ActivityJSON's fields the tests look at.
type activityJSONForTest struct {
	Name      string   `json:"name"`
	Deployed  bool     `json:"deployed"`
	Views     []string `json:"views"`
	Window    struct{ Keep string }
	Instances map[string]int64 `json:"instances"`
}
