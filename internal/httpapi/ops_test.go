package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/source/pgoutbox"
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

// quarantine files failed events under a session of orders, as a batch
// that could not apply them does.
func (b *bundle) quarantine(t *testing.T, partition int, payloads ...string) {
	t.Helper()
	n := store.NodeRow{ID: "q", Name: "q", Host: "test", PID: 1, StartedAt: time.Now(), State: store.NodeRunning}
	if err := b.st.Join(b.ctx, n); err != nil {
		t.Fatal(err)
	}
	id := store.SessionID{Source: "orders", Partition: partition}
	l, err := b.st.Claim(b.ctx, id, n.ID, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	batch := store.Batch{Lease: l, Node: n.ID, From: l.Checkpoint, Checkpoint: store.Position{Minor: l.Checkpoint.Minor + int64(len(payloads))}}
	for i, p := range payloads {
		reason := "refused"
		if _, err := event.Decode([]byte(p), time.Now(), 0); err != nil {
			reason = err.Error()
		} else {
			reason = "activity Ghost has no deployed definition"
		}
		batch.Failures = append(batch.Failures, store.Failure{SessionID: id, Position: store.Position{Minor: l.Checkpoint.Minor + int64(i) + 1},
			Reason: reason, Payload: []byte(p), WrittenAt: time.Now()})
	}
	if err := b.st.Apply(b.ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := b.st.Release(b.ctx, store.Lease{SessionID: id, Epoch: l.Epoch}, n.ID); err != nil {
		t.Fatal(err)
	}
}

// failedPageForTest reads failedPage.
type failedPageForTest struct {
	Failed []struct {
		ID            int64  `json:"id"`
		Source        string `json:"source"`
		Partition     int    `json:"partition"`
		Reason        string `json:"reason"`
		Activity      string `json:"activity"`
		Payload       *string
		PayloadBase64 *string `json:"payload_base64"`
	} `json:"failed"`
	Count             *int64 `json:"count"`
	CountIsLowerBound bool   `json:"count_is_lower_bound"`
	Next              string `json:"next"`
}

const (
	validPO    = `{"activity":"PurchaseOrder","instance":"PO-9","kind":"begin","time":"2026-11-25T10:00:00Z"}`
	ghostEvent = `{"activity":"Ghost","instance":"G-1","kind":"begin","time":"2026-11-25T10:00:00Z"}`
	malformed  = `{"activity":`
)

// TestFailedRequestsOfWhatIsNotThere: a partition the source does not have
// is a 400 naming its partitions, in the list and in a bulk request
// (before: 200, nothing failed there); an id given twice is one event
// (before: matched 3, discarded 1, gone 2 for [4,4,4]).
func TestFailedRequestsOfWhatIsNotThere(t *testing.T) {
	b := setup(t)
	b.quarantine(t, 1, ghostEvent)
	wantError(t, b.do(t, http.MethodGet, "/v1/failed?source=orders&partition=9", nil), http.StatusBadRequest, "partition 9: source orders has partitions 0 to 1")
	wantError(t, b.sendJSON(t, http.MethodPost, "/v1/failed:discard", `{"source":"orders","partition":77}`), http.StatusBadRequest, "partition 77: source orders has partitions 0 to 1")
	if page := decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed?source=orders&partition=1", nil)); len(page.Failed) != 1 {
		t.Fatalf("failed events of orders/1 = %+v", page)
	}
	// A partition a repartition took away keeps its failed events: they
	// are listed, not refused as out of range.
	if _, err := b.st.Repartition(b.ctx, "orders", 1); err != nil {
		t.Fatal(err)
	}
	if page := decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed?source=orders&partition=1", nil)); len(page.Failed) != 1 {
		t.Fatalf("failed events of orders/1, a partition repartitioned away = %+v", page)
	}
	wantError(t, b.do(t, http.MethodGet, "/v1/failed?source=orders&partition=2", nil), http.StatusBadRequest, "partition 2: source orders has partitions 0 to 0")
	id := decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed", nil)).Failed[0].ID
	r := b.sendJSON(t, http.MethodPost, "/v1/failed:discard", fmt.Sprintf(`{"ids":[%d,%d,%d]}`, id, id, id))
	wantStatus(t, r, http.StatusOK)
	if res := decode[bulkResult](t, r); res.Matched != 1 || *res.Discarded != 1 || res.Gone != 0 {
		t.Errorf("discard of one id given three times = %s, want matched 1, discarded 1, gone 0", r.body)
	}
	// The discard is in the audit log, as bam failed discard's is.
	audit, err := b.st.AuditLog(b.ctx, 1)
	if want := fmt.Sprintf("failed discard ids %d: 1 discarded", id); err != nil || len(audit) != 1 || audit[0].Action+" "+audit[0].Target+": "+audit[0].Detail != want {
		t.Errorf("audit log = %+v, %v; want %q", audit, err, want)
	}
}

func TestFailedEvents(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		b.deploy(t, poDefinition)
		b.quarantine(t, 0, malformed, validPO, ghostEvent)
		b.quarantine(t, 1, strings.Replace(validPO, "PO-9", "PO-10", 1), "\xff\xfe not UTF-8")

		page := decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed", nil))
		if len(page.Failed) != 5 || page.Count == nil || *page.Count != 5 || page.CountIsLowerBound || page.Next != "" {
			t.Fatalf("failed = %+v", page)
		}
		if f := page.Failed[1]; f.Source != "orders" || f.Activity != "PurchaseOrder" || f.Payload != nil {
			t.Errorf("a listed failed event = %+v (no payload in a list)", f)
		}
		ids := make([]int64, len(page.Failed))
		for i, f := range page.Failed {
			ids[i] = f.ID
		}

		// Filters, paging, bounded counts.
		for _, c := range []struct {
			query string
			want  int
		}{
			{"source=orders&partition=1", 2},
			{"reason=no+deployed+definition", 3},
			{"activity=PurchaseOrder", 2},
			{"since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z", 5},
			{"until=2000-01-01T00:00:00Z", 0},
			{"source=(direct)", 0},
		} {
			p := decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed?"+c.query, nil))
			if len(p.Failed) != c.want {
				t.Errorf("?%s: %d failed events, want %d", c.query, len(p.Failed), c.want)
			}
			if strings.Contains(c.query, "activity=") != (p.Count == nil) {
				t.Errorf("?%s: count %v; want null exactly with the activity filter", c.query, p.Count)
			}
		}
		p := decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed?limit=2", nil))
		if len(p.Failed) != 2 || p.Next != fmt.Sprint(ids[1]) {
			t.Fatalf("limit 2 = %+v; want 2 and next %d", p, ids[1])
		}
		p = decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed?limit=2&after="+p.Next, nil))
		if len(p.Failed) != 2 || p.Failed[0].ID != ids[2] || *p.Count != 5 {
			t.Fatalf("second page = %+v", p)
		}
		for _, q := range []string{"limit=0", "limit=1001", "after=x", "partition=1", "source=orders&partition=-1", "since=yesterday", "sorce=orders", "source=a&source=b"} {
			wantError(t, b.do(t, http.MethodGet, "/v1/failed?"+q, nil), http.StatusBadRequest)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/failed?source=order", nil), http.StatusNotFound, "did you mean orders")

		// One, with its bytes.
		one := decode[map[string]any](t, b.do(t, http.MethodGet, fmt.Sprint("/v1/failed/", ids[0]), nil))
		if one["payload"] != malformed || one["reason"] == "" || one["size"] != float64(len(malformed)) {
			t.Errorf("failed event = %v", one)
		}
		binary := decode[map[string]any](t, b.do(t, http.MethodGet, fmt.Sprint("/v1/failed/", ids[4]), nil))
		if binary["payload"] != nil || binary["payload_base64"] == nil {
			t.Errorf("a failed event not in UTF-8 = %v; want payload_base64", binary)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/failed/999999", nil), http.StatusNotFound, "no failed event 999999")
		wantError(t, b.do(t, http.MethodGet, "/v1/failed/x", nil), http.StatusBadRequest, "id")

		// Retry one: still invalid (422, kept), then fixed (200, gone).
		path := fmt.Sprint("/v1/failed/", ids[0], "/retry")
		wantError(t, b.do(t, http.MethodPost, path, nil), http.StatusUnprocessableEntity, "still invalid")
		wantStatus(t, b.do(t, http.MethodGet, fmt.Sprint("/v1/failed/", ids[0]), nil), http.StatusOK)
		fixed, _ := json.Marshal(map[string]string{"payload": `{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin","time":"2026-11-25T10:00:00Z"}`})
		wantStatus(t, b.sendJSON(t, http.MethodPost, path, string(fixed)), http.StatusOK)
		wantStatus(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances/PO-1", nil), http.StatusOK)
		wantError(t, b.do(t, http.MethodPost, path, nil), http.StatusNotFound)
		wantError(t, b.sendJSON(t, http.MethodPost, fmt.Sprint("/v1/failed/", ids[1], "/retry"), `{"payload": 1}`), http.StatusBadRequest)

		// Discard one.
		wantStatus(t, b.do(t, http.MethodDelete, fmt.Sprint("/v1/failed/", ids[4]), nil), http.StatusNoContent)
		wantError(t, b.do(t, http.MethodDelete, fmt.Sprint("/v1/failed/", ids[4]), nil), http.StatusNotFound)
		wantError(t, b.do(t, http.MethodPut, fmt.Sprint("/v1/failed/", ids[4]), nil), http.StatusMethodNotAllowed)
	})
}

// bulkResultForTest reads bulkResult.
type bulkResultForTest struct {
	Matched   int  `json:"matched"`
	Retried   *int `json:"retried"`
	Discarded *int `json:"discarded"`
	Refused   []struct {
		ID     int64  `json:"id"`
		Reason string `json:"reason"`
	} `json:"refused"`
	Gone int   `json:"gone"`
	More bool  `json:"more"`
	Next int64 `json:"next"`
}

func TestFailedInBulk(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		b.deploy(t, poDefinition)
		var evs []string
		for i := range 4 {
			evs = append(evs, strings.Replace(validPO, "PO-9", fmt.Sprint("PO-", i), 1))
		}
		b.quarantine(t, 0, evs[0], ghostEvent, evs[1], evs[2], evs[3], malformed)
		b.quarantine(t, 1, strings.Replace(ghostEvent, "G-1", "G-2", 1))

		// With --require-definitions, the Ghost events stay failed.
		r := decode[bulkResultForTest](t, b.sendJSON(t, http.MethodPost, "/v1/failed:retry", `{"source": "orders", "partition": 0}`))
		if r.Matched != 3 || r.Retried == nil || *r.Retried != 2 || len(r.Refused) != 1 || r.Gone != 0 || !r.More || r.Discarded != nil {
			t.Fatalf("first bulk retry (at most 3) = %+v; want 2 retried, 1 refused, more", r)
		}
		first := r.Refused[0].ID
		r = decode[bulkResultForTest](t, b.sendJSON(t, http.MethodPost, "/v1/failed:retry", `{"source": "orders", "partition": 0}`))
		if r.Matched != 3 || *r.Retried != 2 || len(r.Refused) != 1 || r.Refused[0].ID != first || !r.More {
			t.Fatalf("second bulk retry = %+v; want 2 retried, 1 refused (the refused one again), more (the malformed one)", r)
		}
		r = decode[bulkResultForTest](t, b.sendJSON(t, http.MethodPost, "/v1/failed:retry", `{"all": true}`))
		if r.Matched != 3 || *r.Retried != 0 || len(r.Refused) != 3 || r.More {
			t.Fatalf("bulk retry of the rest = %+v; want 3 refused", r)
		}
		// after goes past the events refused.
		r = decode[bulkResultForTest](t, b.sendJSON(t, http.MethodPost, "/v1/failed:retry", fmt.Sprintf(`{"all": true, "after": %d}`, first)))
		if r.Matched != 2 || len(r.Refused) != 2 || r.Refused[0].ID == first {
			t.Fatalf("bulk retry after %d = %+v; want the 2 after it", first, r)
		}
		for _, f := range r.Refused {
			if f.Reason == "" {
				t.Errorf("refusal without a reason: %+v", f)
			}
		}
		for i := range 4 {
			wantStatus(t, b.do(t, http.MethodGet, fmt.Sprint("/v1/activities/PurchaseOrder/instances/PO-", i), nil), http.StatusOK)
		}

		page := decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed", nil))
		if len(page.Failed) != 3 {
			t.Fatalf("%d failed events left, want the 2 Ghost events and the malformed one", len(page.Failed))
		}
		// Discard by ids, one of them gone already.
		body := fmt.Sprintf(`{"ids": [%d, 999999]}`, page.Failed[0].ID)
		d := decode[bulkResultForTest](t, b.sendJSON(t, http.MethodPost, "/v1/failed:discard", body))
		if d.Matched != 2 || d.Discarded == nil || *d.Discarded != 1 || d.Gone != 1 || d.Retried != nil {
			t.Fatalf("bulk discard by ids = %+v; want 1 discarded, 1 gone", d)
		}
		d = decode[bulkResultForTest](t, b.sendJSON(t, http.MethodPost, "/v1/failed:discard", `{"reason": "no deployed definition"}`))
		if d.Matched != 1 || *d.Discarded != 1 || d.More {
			t.Fatalf("bulk discard by reason = %+v; want 1 discarded (G-2; G-1 went by id)", d)
		}

		for _, c := range []struct{ body, says string }{
			{`{}`, "say which failed events"},
			{`{"ids": [1], "source": "orders"}`, "not ids with the others"},
			{`{"all": true, "reason": "x"}`, "without filters"},
			{`{"partition": 0}`, "give source too"},
			{`{"ids": [0]}`, "positive"},
			{`{"since": "today"}`, "RFC 3339"},
			{`{"sorce": "orders"}`, "unknown field"},
			{`{"all": true} {}`, "more than one"},
			{`{"ids": [1], "after": 1}`, "not ids with the others"},
			{`{"all": true, "after": -1}`, "after -1"},
		} {
			wantError(t, b.sendJSON(t, http.MethodPost, "/v1/failed:retry", c.body), http.StatusBadRequest, c.says)
		}
		wantError(t, b.sendJSON(t, http.MethodPost, "/v1/failed:discard", `{"source": "order"}`), http.StatusNotFound, "did you mean orders")
		wantError(t, b.do(t, http.MethodPost, "/v1/failed:retry", strings.NewReader(`{"all": true}`), "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
		wantError(t, b.do(t, http.MethodGet, "/v1/failed:retry", nil), http.StatusMethodNotAllowed)
	}, func(c *Config) { c.RequireDefinitions, c.MaxBulk, c.CountBound = true, 3, 2 })
}

func TestFailedCountIsBounded(t *testing.T) {
	b := setup(t, func(c *Config) { c.CountBound = 2 })
	b.quarantine(t, 0, malformed, malformed, malformed)
	p := decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed", nil))
	if len(p.Failed) != 3 || p.Count == nil || *p.Count != 2 || !p.CountIsLowerBound {
		t.Fatalf("page = %+v; want 3 listed, counted as at least 2", p)
	}
	p = decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed?source=orders&partition=1", nil))
	if *p.Count != 0 || p.CountIsLowerBound {
		t.Fatalf("page = %+v; want 0 exactly", p)
	}
	// The activity is read from each payload: a page reads at most the
	// bound's rows, and says where to go on.
	p = decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed?activity=PurchaseOrder&limit=1", nil))
	if len(p.Failed) != 0 || p.Next == "" {
		t.Fatalf("page = %+v; want none found in the 2 rows read, and a next", p)
	}
	p = decode[failedPageForTest](t, b.do(t, http.MethodGet, "/v1/failed?activity=PurchaseOrder&after="+p.Next, nil))
	if len(p.Failed) != 0 || p.Next != "" {
		t.Fatalf("second page = %+v; want none, and no next", p)
	}
}

// sourceForTest reads sourceJSON.
type sourceForTest struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Partitions int    `json:"partitions"`
	Enabled    bool   `json:"enabled"`
	Paused     bool   `json:"paused"`
	Table      string `json:"table"`
	Outbox     string `json:"outbox"`
	Backlog    *struct {
		Events             int64   `json:"events"`
		EventsIsLowerBound bool    `json:"events_is_lower_bound"`
		OldestAgeSeconds   float64 `json:"oldest_age_seconds"`
		Held               bool    `json:"held"`
	} `json:"backlog"`
	BacklogError string `json:"backlog_error"`
	Warning      string `json:"warning"`
}

// loggedServer serves the API over b's store with a log of its own, so
// that a test can read what it logs.
func loggedServer(t *testing.T, b *bundle, cfg Config) (*bundle, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	srv := httptest.NewServer(New(b.st, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))).Handler())
	t.Cleanup(srv.Close)
	return &bundle{st: b.st, srv: srv, dir: b.dir, ctx: b.ctx}, logs
}

// syncBuffer is a bytes.Buffer for a log written by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSources(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		b, logs := loggedServer(t, b, Config{})
		secrets := []string{"s3cret", "hunter22", "postgres://u:", "postgres://app:"} // passwords and DSNs
		var bodies []string
		do := func(method, path, body string) response {
			t.Helper()
			var r response
			if body == "" {
				r = b.do(t, method, path, nil)
			} else {
				r = b.sendJSON(t, method, path, body)
			}
			bodies = append(bodies, string(r.body))
			return r
		}

		list := decode[struct{ Sources []sourceForTest }](t, do(http.MethodGet, "/v1/sources", ""))
		if len(list.Sources) != 3 {
			t.Fatalf("sources = %+v", list)
		}
		byName := map[string]sourceForTest{}
		for _, s := range list.Sources {
			byName[s.Name] = s
		}
		if o := byName["orders"]; o.Kind != "buffer" || o.Partitions != 2 || !o.Enabled || o.Backlog == nil || o.Backlog.Events != 0 {
			t.Errorf("orders = %+v", o)
		}
		if a := byName["app"]; a.Kind != "pg-outbox" || a.Table != "bam_outbox" || a.Backlog != nil || a.BacklogError == "" {
			t.Errorf("app (its database unreachable) = %+v", a)
		}
		if off := byName["off"]; off.Enabled {
			t.Errorf("off = %+v", off)
		}
		wantError(t, do(http.MethodGet, "/v1/sources/order", ""), http.StatusNotFound, "did you mean orders")
		wantStatus(t, do(http.MethodGet, "/v1/sources/orders", ""), http.StatusOK)

		// Add.
		r := do(http.MethodPost, "/v1/sources", `{"name": "new", "kind": "buffer", "partitions": 3, "paused": true}`)
		wantStatus(t, r, http.StatusCreated)
		if added := decode[sourceForTest](t, r); added.Name != "new" || added.Partitions != 3 || !added.Paused || !added.Enabled || r.header.Get("Location") != "/v1/sources/new" {
			t.Errorf("added = %+v, Location %q", added, r.header.Get("Location"))
		}
		if n := len(mustSessionsOf(t, b, "new")); n != 3 {
			t.Errorf("the new source has %d sessions, want 3", n)
		}
		wantError(t, do(http.MethodPost, "/v1/sources", `{"name": "new", "kind": "buffer", "partitions": 1}`), http.StatusConflict, "already exists")
		for _, c := range []struct{ body, says string }{
			{`{"name": "bad name", "kind": "buffer", "partitions": 1}`, "letters, digits"},
			{`{"name": "x", "kind": "buffer", "partitions": 0}`, "partitions 0: use 1 to 1024"},
			{`{"name": "x", "kind": "kafka", "partitions": 1}`, `kind "kafka"`},
			{`{"name": "x", "kind": "buffer", "partitions": 1, "dsn": "postgres://u:hunter22@h/db"}`, "dsn is for pg-outbox"},
			{`{"name": "x", "kind": "buffer", "partitions": 1, "table": "t"}`, "table is for pg-outbox"},
			{`{"name": "x", "kind": "pg-outbox", "partitions": 1}`, "needs dsn"},
			{`{"name": "x", "kind": "pg-outbox", "partitions": 1, "dsn": "postgres://u:hunter22@[::1"}`, "not shown"},
			{`{"name": "x", "kind": "pg-outbox", "partitions": 1, "dsn": "postgres://u:hunter22@h/db", "table": "\"Q\""}`, "outbox table"},
			{`{"name": "x", "kind": "buffer", "partitions": 1, "password": "hunter22"}`, "unknown field"},
		} {
			wantError(t, do(http.MethodPost, "/v1/sources", c.body), http.StatusBadRequest, c.says)
		}
		// A pg-outbox source whose database cannot be reached is added,
		// with a warning that never shows the DSN.
		r = do(http.MethodPost, "/v1/sources", `{"name": "far", "kind": "pg-outbox", "partitions": 1, "dsn": "postgres://u:hunter22@127.0.0.1:1/x?connect_timeout=2"}`)
		wantStatus(t, r, http.StatusCreated)
		if far := decode[sourceForTest](t, r); far.Warning == "" || far.Outbox != "" {
			t.Errorf("a pg-outbox source added out of reach = %+v; want a warning", far)
		}
		wantStatus(t, do(http.MethodGet, "/v1/sources/far", ""), http.StatusOK)

		// Switch.
		for _, c := range []struct {
			verb            string
			enabled, paused bool
			ingest          int
		}{
			{"pause", true, true, http.StatusOK},
			{"resume", true, false, http.StatusOK},
			{"disable", false, false, http.StatusConflict},
			{"enable", true, false, http.StatusOK},
		} {
			s := decode[sourceForTest](t, do(http.MethodPost, "/v1/sources/orders/"+c.verb, ""))
			if s.Enabled != c.enabled || s.Paused != c.paused {
				t.Errorf("after %s: %+v", c.verb, s)
			}
			wantStatus(t, b.post(t, "orders", "application/json", okEvent), c.ingest)
		}
		// Switched to what it is already: answered, and not recorded again.
		if s := decode[sourceForTest](t, do(http.MethodPost, "/v1/sources/orders/enable", "")); !s.Enabled {
			t.Errorf("after a second enable: %+v", s)
		}
		wantError(t, do(http.MethodPost, "/v1/sources/order/pause", ""), http.StatusNotFound, "did you mean orders")
		wantError(t, do(http.MethodGet, "/v1/sources/orders/pause", ""), http.StatusMethodNotAllowed)
		wantError(t, do(http.MethodPost, "/v1/sources/orders/pause?now=1", ""), http.StatusBadRequest, `"now"`)

		// What the API changed is in the audit log, by the client's address.
		audit, err := b.st.AuditLog(b.ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range audit {
			if !strings.HasPrefix(e.Who, "http ") {
				t.Errorf("audit entry %+v: who is not the HTTP client", e)
			}
			got = append(got, e.Action+" "+e.Target)
		}
		if want := "source enable orders|source disable orders|source resume orders|source pause orders|source add far|source add new"; !strings.HasPrefix(strings.Join(got, "|"), want) {
			t.Errorf("audit log = %q, want it to begin %q", got, want)
		}

		for _, secret := range secrets {
			for _, body := range bodies {
				if strings.Contains(body, secret) {
					t.Errorf("a response shows %q: %s", secret, body)
				}
			}
			if strings.Contains(logs.String(), secret) {
				t.Errorf("the log shows %q:\n%s", secret, logs.String())
			}
		}
	})
}

func mustSessionsOf(t *testing.T, b *bundle, source string) []store.SessionRow {
	t.Helper()
	ss, err := b.st.Sessions(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.SessionRow
	for _, s := range ss {
		if s.Source == source {
			out = append(out, s)
		}
	}
	return out
}

// sessionForTest reads sessionJSON.
type sessionForTest struct {
	Source                string  `json:"source"`
	Partition             int     `json:"partition"`
	Owner                 string  `json:"owner"`
	OwnerName             string  `json:"owner_name"`
	Epoch                 int64   `json:"epoch"`
	LeaseRemainingSeconds float64 `json:"lease_remaining_seconds"`
	FailedOutstanding     int64   `json:"failed_outstanding"`
	Backlog               *struct {
		Events             int64   `json:"events"`
		EventsIsLowerBound bool    `json:"events_is_lower_bound"`
		OldestAgeSeconds   float64 `json:"oldest_age_seconds"`
		Held               bool    `json:"held"`
		Holder             *struct {
			Kind       string  `json:"kind"`
			PID        int     `json:"pid"`
			Database   string  `json:"database"`
			State      string  `json:"state"`
			AgeSeconds float64 `json:"age_seconds"`
		} `json:"holder"`
		HolderError string `json:"holder_error"`
	} `json:"backlog"`
	BacklogError string `json:"backlog_error"`
}

func TestNodesAndSessions(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		for _, id := range []string{"n1", "n2"} {
			n := store.NodeRow{ID: id, Name: "node-" + id, Host: "host-" + id, PID: 7, StartedAt: time.Now(), State: store.NodeRunning}
			if err := b.st.Join(b.ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.st.Claim(b.ctx, store.SessionID{Source: "orders", Partition: 1}, "n1", "", time.Minute); err != nil {
			t.Fatal(err)
		}
		events := make([]store.BufferEvent, 3)
		for i := range events {
			events[i] = store.BufferEvent{Partition: 1, Payload: []byte(okEvent)}
		}
		if err := b.st.AppendBuffer(b.ctx, "orders", events); err != nil {
			t.Fatal(err)
		}
		b.quarantine(t, 0, malformed)
		if err := b.st.Leave(b.ctx, "q"); err != nil { // quarantine's node
			t.Fatal(err)
		}

		nodes := decode[nodeList](t, b.do(t, http.MethodGet, "/v1/nodes", nil))
		if len(nodes.Nodes) != 2 || nodes.Nodes[0].ID != "n1" || nodes.Nodes[0].State != "running" || nodes.Nodes[0].Host != "host-n1" ||
			fmt.Sprint(nodes.Nodes[0].Sessions) != "[{orders 1}]" || len(nodes.Nodes[1].Sessions) != 0 || nodes.Nodes[0].JoinedAt == nil {
			t.Errorf("nodes = %+v", nodes.Nodes)
		}
		if len(nodes.Gone) != 1 || nodes.Gone[0].ID != "q" || nodes.Gone[0].Why != store.DepartedCleanly {
			t.Errorf("gone = %+v", nodes.Gone)
		}

		all := decode[struct{ Sessions []sessionForTest }](t, b.do(t, http.MethodGet, "/v1/sessions", nil))
		if len(all.Sessions) != 4 || all.Sessions[0].Source != "app" || all.Sessions[0].Backlog != nil || all.Sessions[0].BacklogError == "" {
			t.Fatalf("sessions = %+v", all.Sessions)
		}
		orders := decode[struct{ Sessions []sessionForTest }](t, b.do(t, http.MethodGet, "/v1/sessions?source=orders", nil)).Sessions
		if len(orders) != 2 {
			t.Fatalf("orders' sessions = %+v", orders)
		}
		if p0 := orders[0]; p0.Owner != "" || p0.FailedOutstanding != 1 || p0.Backlog == nil || p0.Backlog.Events != 0 || p0.Backlog.OldestAgeSeconds != 0 {
			t.Errorf("orders/0 = %+v", p0)
		}
		p1 := orders[1]
		if p1.Owner != "n1" || p1.OwnerName != "node-n1" || p1.Epoch != 1 || p1.LeaseRemainingSeconds <= 0 || p1.LeaseRemainingSeconds > 60 ||
			p1.Backlog == nil || p1.Backlog.Events != 3 || p1.Backlog.EventsIsLowerBound || p1.Backlog.OldestAgeSeconds < 0 || p1.Backlog.OldestAgeSeconds > 60 || p1.Backlog.Held {
			t.Errorf("orders/1 = %+v (backlog %+v)", p1, p1.Backlog)
		}
		wantError(t, b.do(t, http.MethodGet, "/v1/sessions?source=order", nil), http.StatusNotFound, "did you mean orders")
		wantError(t, b.do(t, http.MethodGet, "/v1/sessions?sauce=orders", nil), http.StatusBadRequest, `"sauce"`)
		wantError(t, b.do(t, http.MethodGet, "/v1/nodes?all=1", nil), http.StatusBadRequest, `"all"`)

		// A bound below the backlog says so.
		bounded, _ := loggedServer(t, b, Config{CountBound: 2})
		p1 = decode[struct{ Sessions []sessionForTest }](t, bounded.do(t, http.MethodGet, "/v1/sessions?source=orders", nil)).Sessions[1]
		if p1.Backlog.Events != 2 || !p1.Backlog.EventsIsLowerBound {
			t.Errorf("backlog bounded at 2 = %+v", p1.Backlog)
		}
		src := decode[sourceForTest](t, bounded.do(t, http.MethodGet, "/v1/sources/orders", nil))
		if src.Backlog == nil || src.Backlog.Events != 2 || !src.Backlog.EventsIsLowerBound {
			t.Errorf("source backlog bounded at 2 = %+v", src.Backlog)
		}
	})
}

// TestOutboxSessionHeldByHorizon: a pg-outbox source's session whose rows
// wait behind a transaction still open on the outbox's server is shown
// held, with that transaction (or why it cannot be named).
func TestOutboxSessionHeldByHorizon(t *testing.T) {
	b := setup(t)
	appURL := testpg.NewDatabase(t)
	app, err := pgxpool.New(b.ctx, appURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	if err := pgoutbox.Install(b.ctx, app, ""); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"name": "shop", "kind": "pg-outbox", "partitions": 1, "dsn": appURL})
	r := b.sendJSON(t, http.MethodPost, "/v1/sources", string(body))
	wantStatus(t, r, http.StatusCreated)
	if shop := decode[sourceForTest](t, r); shop.Warning != "" || shop.Outbox == "" {
		t.Fatalf("a reachable pg-outbox source = %+v; want its outbox recorded", shop)
	}
	body, _ = json.Marshal(map[string]any{"name": "shop2", "kind": "pg-outbox", "partitions": 1, "dsn": appURL})
	wantError(t, b.sendJSON(t, http.MethodPost, "/v1/sources", string(body)), http.StatusConflict, "two sources on one outbox table")

	long, err := app.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(b.ctx)
	if _, err := long.Exec(b.ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(b.ctx, `INSERT INTO bam_outbox (instance_id, event) VALUES ('PO-1', $1)`, okEvent); err != nil {
		t.Fatal(err)
	}
	se := decode[struct{ Sessions []sessionForTest }](t, b.do(t, http.MethodGet, "/v1/sessions?source=shop", nil)).Sessions[0]
	if se.Backlog == nil || se.Backlog.Events != 1 || !se.Backlog.Held {
		t.Fatalf("shop/0 behind an open transaction = %+v (backlog %+v); want 1 event, held", se, se.Backlog)
	}
	// The server is shared with other tests, whose transactions may be
	// older than this one: the holder is the oldest, whichever it is.
	if h := se.Backlog.Holder; (h == nil) == (se.Backlog.HolderError == "") || (h != nil && (h.Database == "" || h.AgeSeconds < 0)) {
		t.Errorf("holder = %+v, holder_error %q; want one or the other", h, se.Backlog.HolderError)
	}
	if err := long.Rollback(b.ctx); err != nil {
		t.Fatal(err)
	}
	src := decode[sourceForTest](t, b.do(t, http.MethodGet, "/v1/sources/shop", nil))
	if src.Backlog == nil || src.Backlog.Events != 1 || src.Table != "bam_outbox" {
		t.Errorf("shop = %+v", src)
	}
	if strings.Contains(string(b.do(t, http.MethodGet, "/v1/sources", nil).body), appURL) {
		t.Errorf("GET /v1/sources shows the DSN")
	}
}

// downStore fails every read the operations make, with an error that
// names the store's URL, as a store that went away does.
type downStore struct{ store.Store }

var errDown = errors.New("connect to postgres://bam:hunter22@db.internal:5432/bam: connection refused")

func (downStore) Definitions(context.Context) ([]store.DeployedActivity, int64, error) {
	return nil, 0, errDown
}
func (downStore) Deployments(context.Context, int) ([]store.Deployment, error) { return nil, errDown }
func (downStore) Nodes(context.Context) ([]store.NodeRow, error)               { return nil, errDown }
func (downStore) Sessions(context.Context) ([]store.SessionRow, error)         { return nil, errDown }
func (downStore) Sources(context.Context) ([]store.Source, error)              { return nil, errDown }
func (downStore) Source(context.Context, string) (store.Source, error) {
	return store.Source{}, errDown
}
func (downStore) FailedEvent(context.Context, int64) (store.FailedEvent, error) {
	return store.FailedEvent{}, errDown
}
func (downStore) FailedEventsWhere(context.Context, store.FailedQuery) ([]store.FailedEvent, error) {
	return nil, errDown
}
func (downStore) DiscardFailed(context.Context, int64) error { return errDown }

func TestOperationsAnswer503WhenTheStoreFails(t *testing.T) {
	b := setup(t)
	srv := httptest.NewServer(New(downStore{b.st}, Config{}, slog.New(slog.DiscardHandler)).Handler())
	t.Cleanup(srv.Close)
	down := &bundle{st: b.st, srv: srv, ctx: b.ctx}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/activities", ""},
		{http.MethodGet, "/v1/activities/PurchaseOrder", ""},
		{http.MethodGet, "/v1/definitions", ""},
		{http.MethodGet, "/v1/deployments", ""},
		{http.MethodGet, "/v1/nodes", ""},
		{http.MethodGet, "/v1/sessions", ""},
		{http.MethodGet, "/v1/failed", ""},
		{http.MethodGet, "/v1/failed/1", ""},
		{http.MethodPost, "/v1/failed/1/retry", ""},
		{http.MethodDelete, "/v1/failed/1", ""},
		{http.MethodPost, "/v1/failed:retry", `{"all": true}`},
		{http.MethodPost, "/v1/failed:discard", `{"all": true}`},
		{http.MethodGet, "/v1/sources", ""},
		{http.MethodGet, "/v1/sources/orders", ""},
		{http.MethodPost, "/v1/sources/orders/pause", ""},
	} {
		var r response
		if c.body != "" {
			r = down.sendJSON(t, c.method, c.path, c.body)
		} else {
			r = down.do(t, c.method, c.path, nil)
		}
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s = %d, Retry-After %q: %s; want 503 with Retry-After", c.method, c.path, r.status, r.header.Get("Retry-After"), r.body)
		}
		if bytes.Contains(r.body, []byte("hunter22")) || bytes.Contains(r.body, []byte("db.internal")) {
			t.Errorf("%s %s shows the store's error: %s", c.method, c.path, r.body)
		}
	}
}
