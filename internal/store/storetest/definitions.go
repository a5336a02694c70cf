package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// SQL is what the suite needs to read the activity views as a BI tool
// would. A driver's test passes stores that also implement it (a wrapper
// in its _test.go file); without it the view tests are skipped.
type SQL interface {
	// QuerySQL runs a query (or a statement, returning no rows) and
	// returns its rows, each value one of nil, int64, float64, string
	// (PostgreSQL numeric as its exact text), bool or time.Time (UTC).
	QuerySQL(ctx context.Context, query string, args ...any) ([][]any, error)
}

const poV1 = `activities:
  - name: PurchaseOrder
    items:
      - {name: Received, type: milestone}
      - {name: Customer, type: text, max_length: 100, index: true}
      - {name: Amount, type: decimal, precision: 12, scale: 2}
      - {name: Quantity, type: integer}
      - {name: Weight, type: float}
      - {name: Rush, type: boolean}
`

// poV2 adds an item and an activity.
const poV2 = poV1 + `      - {name: Shipped, type: milestone}
  - name: Shipment
    items:
      - {name: Carrier, type: text, max_length: 40}
      - {name: Tracking, type: text, max_length: 64, index: true}
`

func parse(t *testing.T, src string) definition.File {
	t.Helper()
	f, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return f
}

func deploy(t *testing.T, ctx context.Context, s store.Store, src string) store.Deployment {
	t.Helper()
	dep, err := s.Deploy(ctx, store.DeployRequest{File: parse(t, src), Text: src, By: "tester@host"})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	return dep
}

func evAt(activity, instance string, kind event.Kind, at time.Time, data map[string]string) event.Event {
	e := ev(activity, instance, kind, 0, data)
	e.Time = at
	return e
}

func query(t *testing.T, ctx context.Context, s PoolStore, q string, args ...any) [][]any {
	t.Helper()
	db, ok := s.(SQL)
	if !ok {
		t.Skip("the driver's test store does not implement storetest.SQL")
	}
	rows, err := db.QuerySQL(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows
}

// RunDefinitions holds the rules of the activity definitions: deployments
// that extend but never lose data, typed views that a BI tool reads,
// removal, and the windows that purge and archive completed instances.
// open returns a fresh store with no schema; the suite migrates it.
func RunDefinitions(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.Store, context.Context) { return prepared(t, open) }

	t.Run("DeployAndExtend", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if v, err := s.DefinitionsVersion(ctx); err != nil || v != 0 {
			t.Fatalf("DefinitionsVersion of a new store = %d, %v; want 0", v, err)
		}
		dep := deploy(t, ctx, s, poV1)
		if dep.Version != 1 || dep.At.IsZero() || dep.By != "tester@host" || len(dep.Changes) != 8 ||
			dep.Changes[0] != "add activity PurchaseOrder" || dep.Changes[3] != "add index PurchaseOrder.Customer" || dep.Forced {
			t.Fatalf("first deployment = %+v", dep)
		}
		if time.Since(dep.At) > time.Minute || time.Since(dep.At) < -time.Minute {
			t.Errorf("deployed at %v, not the store's now", dep.At)
		}
		again := deploy(t, ctx, s, poV1)
		if again.Version != 1 || len(again.Changes) != 0 {
			t.Fatalf("deploying the same file again = %+v; want version 1, no changes", again)
		}
		dep2 := deploy(t, ctx, s, poV2)
		want := []string{"add item PurchaseOrder.Shipped: milestone", "add activity Shipment",
			"add item Shipment.Carrier: text(40)", "add item Shipment.Tracking: text(64)", "add index Shipment.Tracking"}
		if dep2.Version != 2 || !reflect.DeepEqual(dep2.Changes, want) {
			t.Fatalf("second deployment = %d %q; want 2 %q", dep2.Version, dep2.Changes, want)
		}
		acts, v, err := s.Definitions(ctx)
		if err != nil || v != 2 || len(acts) != 2 {
			t.Fatalf("Definitions = %d activities, version %d, %v", len(acts), v, err)
		}
		po, sh := acts[0], acts[1]
		if po.Name != "PurchaseOrder" || po.Version != 2 || len(po.Items) != 7 || sh.Name != "Shipment" || sh.Version != 2 {
			t.Fatalf("Definitions = %+v", acts)
		}
		amount := po.Items[2]
		if amount.Type != definition.Decimal || amount.Precision != 12 || amount.Scale == nil || *amount.Scale != 2 || !po.Items[1].Index {
			t.Fatalf("items read back = %+v", po.Items)
		}
		if v, _ := s.DefinitionsVersion(ctx); v != 2 {
			t.Fatalf("DefinitionsVersion = %d, want 2", v)
		}
		deps, err := s.Deployments(ctx, 0)
		if err != nil || len(deps) != 2 || deps[0].Version != 2 || deps[1].Version != 1 || deps[1].Text != poV1 ||
			!reflect.DeepEqual(deps[0].Changes, want) || deps[0].By != "tester@host" {
			t.Fatalf("Deployments = %+v, %v", deps, err)
		}
		if one, _ := s.Deployments(ctx, 1); len(one) != 1 || one[0].Version != 2 {
			t.Fatalf("Deployments(1) = %+v", one)
		}
		// An activity deployed under another case is refused.
		_, err = s.Deploy(ctx, store.DeployRequest{File: parse(t, strings.Replace(poV1, "PurchaseOrder", "purchaseOrder", 1)), By: "x"})
		var defErr *definition.Error
		if !errors.As(err, &defErr) || !strings.Contains(err.Error(), `deployed as "PurchaseOrder"`) {
			t.Fatalf("deploying purchaseOrder over PurchaseOrder = %v, want a *definition.Error naming the deployed spelling", err)
		}
	})

	t.Run("DeployRefusesDataLoss", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		deploy(t, ctx, s, poV1)
		apply := newApplier(t, ctx, s).apply
		apply(ev("PurchaseOrder", "PO-1", event.Begin, 0, map[string]string{"Amount": "1200.50", "Customer": `"Contoso"`}))

		// Amount is held by PO-1: retyping it is refused, with the plan.
		retyped := strings.Replace(poV1, "{name: Amount, type: decimal, precision: 12, scale: 2}", "{name: Amount, type: integer}", 1)
		_, err := s.Deploy(ctx, store.DeployRequest{File: parse(t, retyped), By: "x"})
		var refused *store.DeployRefusedError
		if !errors.As(err, &refused) || len(refused.Blocking) != 1 || refused.Blocking[0].String() != "retype item PurchaseOrder.Amount: decimal(12,2) → integer" {
			t.Fatalf("retyping an item in use = %v, want a *DeployRefusedError blocking on Amount", err)
		}
		if !strings.Contains(err.Error(), "Amount") || !strings.Contains(err.Error(), "force") {
			t.Errorf("refusal %q should name the item and how to force", err)
		}
		if v, _ := s.DefinitionsVersion(ctx); v != 1 {
			t.Fatalf("a refused deployment moved the version to %d", v)
		}
		// Removing Weight, which no instance holds, needs no force.
		noWeight := strings.Replace(poV1, "      - {name: Weight, type: float}\n", "", 1)
		dep, err := s.Deploy(ctx, store.DeployRequest{File: parse(t, noWeight), By: "x"})
		if err != nil || dep.Version != 2 || dep.Forced || len(dep.Changes) != 1 || dep.Changes[0] != "remove item PurchaseOrder.Weight (was float)" {
			t.Fatalf("removing an unused item = %+v, %v", dep, err)
		}
		retyped = strings.Replace(noWeight, "{name: Amount, type: decimal, precision: 12, scale: 2}", "{name: Amount, type: integer}", 1)
		// A dry run with force says what would happen and writes nothing.
		dry, err := s.Deploy(ctx, store.DeployRequest{File: parse(t, retyped), By: "x", Force: true, DryRun: true})
		if err != nil || !dry.DryRun || dry.Version != 3 || !dry.Forced || len(dry.Changes) != 1 {
			t.Fatalf("dry run = %+v, %v", dry, err)
		}
		if acts, v, _ := s.Definitions(ctx); v != 2 || acts[0].Items[2].Type != definition.Decimal {
			t.Fatalf("a dry run changed the definitions: version %d, %+v", v, acts[0].Items[2])
		}
		// Forced: made and recorded as forced; the view reads PO-1's
		// 1200.50 as no integer (NULL), not an error.
		dep, err = s.Deploy(ctx, store.DeployRequest{File: parse(t, retyped), Text: retyped, By: "x", Force: true})
		if err != nil || dep.Version != 3 || !dep.Forced {
			t.Fatalf("forced deployment = %+v, %v", dep, err)
		}
		if deps, _ := s.Deployments(ctx, 1); len(deps) != 1 || !deps[0].Forced || deps[0].Text != retyped {
			t.Fatalf("forced deployment recorded as %+v", deps)
		}
		if _, ok := s.(SQL); ok {
			rows := query(t, ctx, s, `SELECT instance_id, amount, customer FROM purchaseorder_all`)
			if len(rows) != 1 || rows[0][1] != nil || rows[0][2] != "Contoso" {
				t.Fatalf("purchaseorder_all after the retype = %v; want PO-1, NULL, Contoso", rows)
			}
		}
	})

	t.Run("FailedDeployChangesNothing", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		query(t, ctx, s, `CREATE TABLE shipment_all (x integer)`) // in the way of Shipment's view
		deploy(t, ctx, s, poV1)
		_, err := s.Deploy(ctx, store.DeployRequest{File: parse(t, poV2), By: "x"})
		if err == nil || !strings.Contains(err.Error(), "shipment_all") {
			t.Fatalf("deploy over a table named shipment_all = %v, want an error naming it", err)
		}
		acts, v, _ := s.Definitions(ctx)
		if v != 1 || len(acts) != 1 || len(acts[0].Items) != 6 {
			t.Fatalf("after a failed deployment: version %d, %+v", v, acts)
		}
		if deps, _ := s.Deployments(ctx, 0); len(deps) != 1 {
			t.Fatalf("a failed deployment was recorded: %+v", deps)
		}
		// PurchaseOrder's views were recreated before Shipment failed: they
		// are as they were (no shipped column).
		if _, err := s.(SQL).QuerySQL(ctx, `SELECT shipped FROM purchaseorder_all`); err == nil {
			t.Fatalf("purchaseorder_all has the column of the failed deployment")
		}
		query(t, ctx, s, `SELECT rush FROM purchaseorder_all`)
		query(t, ctx, s, `DROP TABLE shipment_all`)
		if dep := deploy(t, ctx, s, poV2); dep.Version != 2 {
			t.Fatalf("deploying again once fixed = %+v", dep)
		}
	})

	t.Run("ConcurrentDeploysSerialize", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				src := fmt.Sprintf("activities:\n  - name: A%d\n    items: [{name: X, type: integer, index: true}]\n", i)
				f, err := definition.Parse([]byte(src))
				if err == nil {
					_, err = s.Deploy(ctx, store.DeployRequest{File: f, Text: src, By: fmt.Sprint(i)})
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Deploy: %v", err)
			}
		}
		deps, err := s.Deployments(ctx, 0)
		if err != nil || len(deps) != n {
			t.Fatalf("Deployments = %d, %v; want %d", len(deps), err, n)
		}
		for i, d := range deps {
			if d.Version != int64(n-i) {
				t.Fatalf("versions %v: want %d down to 1, each once", deps, n)
			}
		}
		if acts, v, _ := s.Definitions(ctx); len(acts) != n || v != n {
			t.Fatalf("Definitions = %d activities at version %d; want %d", len(acts), v, n)
		}
	})

	// Milestones sort as times in the views, whatever form writers used:
	// the Go SDK trims trailing zeros (…43.5131Z) and as text …43Z sorted
	// after …43.5Z on SQLite, whose views give milestones as text (issue 9).
	t.Run("ViewsSortMilestonesAsTimes", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if _, ok := s.(SQL); !ok {
			t.Skip("the driver's test store does not implement storetest.SQL")
		}
		deploy(t, ctx, s, poV1)
		apply := newApplier(t, ctx, s).apply
		sent := map[string]string{ // instance: Received, in time order by instance
			"PO-1": `"2026-11-25T10:02:42.9Z"`,
			"PO-2": `"2026-11-25T10:02:43Z"`,
			"PO-3": `"2026-11-25T12:02:43.25+02:00"`,
			"PO-4": `"2026-11-25T10:02:43.5Z"`,
			"PO-5": `"2026-11-25T10:02:43.5131Z"`,
			"PO-6": `"2026-11-25T05:02:44-05:00"`,
		}
		for id, v := range sent {
			apply(ev("PurchaseOrder", id, event.Begin, 0, map[string]string{"Received": v}))
		}
		rows := query(t, ctx, s, `SELECT instance_id FROM purchaseorder_active ORDER BY received`)
		var got []string
		for _, r := range rows {
			got = append(got, r[0].(string))
		}
		if want := []string{"PO-1", "PO-2", "PO-3", "PO-4", "PO-5", "PO-6"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("ordered by received: %v, want %v", got, want)
		}
		in, err := s.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "PO-3"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(in.Data["Received"]), `"2026-11-25T10:02:43.250000Z"`; got != want {
			t.Errorf("PO-3 Received reads %s, want the stored form %s", got, want)
		}
	})

	t.Run("ViewsAreTyped", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if _, ok := s.(SQL); !ok {
			t.Skip("the driver's test store does not implement storetest.SQL")
		}
		pg := s.Driver() == "postgres"
		pick := func(pgValue, sqliteValue any) any {
			if pg {
				return pgValue
			}
			return sqliteValue
		}
		// Written before the definition: the views read it all the same.
		apply := newApplier(t, ctx, s).apply
		apply(ev("PurchaseOrder", "PO-1", event.Begin, 0, map[string]string{
			"Received": `"2026-11-25T10:02:00Z"`, "Customer": `"Contoso"`, "Amount": "1200.50",
			"Quantity": "3", "Weight": "2.5", "Rush": "true", "Other": `"not an item"`}))
		deploy(t, ctx, s, poV1)
		// Values that fit no item: each reads as NULL, and no query fails.
		apply(ev("PurchaseOrder", "PO-2", event.Begin, 0, map[string]string{
			"Received": `"yesterday"`, "Customer": "42", "Amount": `"lots"`,
			"Quantity": "12345678901234567890", "Weight": `"heavy"`, "Rush": `"yes"`}),
			ev("PurchaseOrder", "PO-3", event.Begin, 0, map[string]string{"Amount": `"99.5"`, "Quantity": "1.5", "Rush": "false"}),
			ev("PurchaseOrder", "PO-3", event.End, 60, nil),
			ev("Other", "O-1", event.Begin, 0, nil))

		rows := query(t, ctx, s, `SELECT instance_id, state, begin_time, end_time, events,
			received, customer, amount, quantity, weight, rush FROM purchaseorder_active ORDER BY instance_id`)
		begin := pick(at(0), "2026-11-25T10:00:00.000000Z")
		want := [][]any{
			{"PO-1", "active", begin, nil, int64(1), pick(time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC), "2026-11-25T10:02:00.000000Z"),
				"Contoso", "1200.50", int64(3), 2.5, pick(true, int64(1))},
			{"PO-2", "active", begin, nil, int64(1), nil, nil, nil, nil, nil, nil},
		}
		if !reflect.DeepEqual(rows, want) {
			t.Fatalf("purchaseorder_active:\n%#v\nwant\n%#v", rows, want)
		}
		rows = query(t, ctx, s, `SELECT instance_id, end_time, amount, quantity, rush FROM purchaseorder_completed`)
		want = [][]any{{"PO-3", pick(at(60), "2026-11-25T10:01:00.000000Z"), "99.50", nil, pick(false, int64(0))}}
		if !pg {
			want[0][2] = "99.5" // SQLite keeps a decimal's text as written
		}
		if !reflect.DeepEqual(rows, want) {
			t.Fatalf("purchaseorder_completed:\n%#v\nwant\n%#v", rows, want)
		}
		if rows := query(t, ctx, s, `SELECT count(*) FROM purchaseorder_all`); rows[0][0] != int64(3) {
			t.Fatalf("purchaseorder_all counts %v, want 3 (Other's instance is not one)", rows[0][0])
		}
		// The columns, in order.
		rows = query(t, ctx, s, `SELECT * FROM purchaseorder_all WHERE instance_id = 'PO-1'`)
		if len(rows) != 1 || len(rows[0]) != 12 {
			t.Fatalf("purchaseorder_all has %v; want 6 + 6 columns", rows)
		}
		// "Completed between t1 and t2", through the view.
		from, to := pick(at(30), "2026-11-25T10:00:30"), pick(at(90), "2026-11-25T10:01:30")
		rows = query(t, ctx, s, sqlArgs(pg, `SELECT instance_id FROM purchaseorder_completed WHERE end_time BETWEEN ? AND ?`), from, to)
		if len(rows) != 1 || rows[0][0] != "PO-3" {
			t.Fatalf("completed between 10:00:30 and 10:01:30 = %v, want PO-3", rows)
		}
		rows = query(t, ctx, s, sqlArgs(pg, `SELECT instance_id FROM purchaseorder_active WHERE customer = ?`), "Contoso")
		if len(rows) != 1 || rows[0][0] != "PO-1" {
			t.Fatalf("active with customer Contoso = %v, want PO-1", rows)
		}
	})

	t.Run("RemoveActivity", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		deploy(t, ctx, s, poV2)
		apply := newApplier(t, ctx, s).apply
		apply(ev("PurchaseOrder", "PO-1", event.Begin, 0, nil))
		_, err := s.RemoveActivity(ctx, "purchaseorder", "x", false)
		if !errors.Is(err, store.ErrInstancesExist) || !strings.Contains(err.Error(), "1 online") {
			t.Fatalf("RemoveActivity with instances = %v, want ErrInstancesExist counting 1 online", err)
		}
		dep, err := s.RemoveActivity(ctx, "purchaseorder", "x", true)
		if err != nil || dep.Version != 2 || len(dep.Changes) != 2 || dep.Changes[0] != "remove activity PurchaseOrder" {
			t.Fatalf("RemoveActivity with its data = %+v, %v", dep, err)
		}
		if _, err := s.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "PO-1"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("PO-1 after removing its activity with its data: %v", err)
		}
		if acts, _, _ := s.Definitions(ctx); len(acts) != 1 || acts[0].Name != "Shipment" {
			t.Fatalf("Definitions after remove = %+v", acts)
		}
		if db, ok := s.(SQL); ok {
			if _, err := db.QuerySQL(ctx, `SELECT * FROM purchaseorder_all`); err == nil {
				t.Fatalf("purchaseorder_all still exists")
			}
		}
		if _, err := s.RemoveActivity(ctx, "PurchaseOrder", "x", false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RemoveActivity twice = %v, want ErrNotFound", err)
		}
		// Without instances, no data flag is needed; deploying it again works.
		if _, err := s.RemoveActivity(ctx, "Shipment", "x", false); err != nil {
			t.Fatalf("RemoveActivity without instances: %v", err)
		}
		if dep := deploy(t, ctx, s, poV2); dep.Version != 4 {
			t.Fatalf("deploying again after removal = %+v", dep)
		}
	})

	t.Run("WindowPurgeAndArchive", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		deploy(t, ctx, s, poV1)
		apply := newApplier(t, ctx, s).apply
		now := time.Now().UTC()
		old := func(id string, ago time.Duration) {
			apply(evAt("PurchaseOrder", id, event.Begin, now.Add(-ago-time.Hour), map[string]string{"Customer": `"C-` + id + `"`}),
				evAt("PurchaseOrder", id, event.End, now.Add(-ago), nil))
		}
		old("OLD-1", 48*time.Hour)
		old("NEW-1", 0)
		apply(evAt("PurchaseOrder", "ACTIVE-1", event.Begin, now.Add(-72*time.Hour), nil))

		if n, err := s.PurgeCompleted(ctx, "PurchaseOrder"); err != nil || n != 0 {
			t.Fatalf("PurgeCompleted without a window = %d, %v; want 0", n, err)
		}
		dep, err := s.SetWindow(ctx, "purchaseorder", store.Window{Keep: 24 * time.Hour}, "x")
		if err != nil || dep.Version != 2 || dep.Changes[0] != "set window PurchaseOrder: keep 24h0m0s, then delete" {
			t.Fatalf("SetWindow = %+v, %v", dep, err)
		}
		if acts, _, _ := s.Definitions(ctx); acts[0].Window != (store.Window{Keep: 24 * time.Hour}) || acts[0].Archived {
			t.Fatalf("window read back = %+v", acts[0])
		}
		if n, err := store.PurgeWindows(ctx, s); err != nil || n != 1 {
			t.Fatalf("PurgeWindows = %d, %v; want 1 (OLD-1)", n, err)
		}
		for id, want := range map[string]bool{"OLD-1": false, "NEW-1": true, "ACTIVE-1": true} {
			_, err := s.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: id})
			if got := err == nil; got != want {
				t.Errorf("%s present = %v after the purge, want %v (%v)", id, got, want, err)
			}
		}
		if n, _ := s.PurgeCompleted(ctx, "PurchaseOrder"); n != 0 {
			t.Fatalf("a second purge purged %d", n)
		}

		// Archive: moved, readable through purchaseorder_archive.
		old("OLD-2", 30*time.Hour)
		if _, err := s.SetWindow(ctx, "PurchaseOrder", store.Window{Keep: 24 * time.Hour, Archive: true}, "x"); err != nil {
			t.Fatal(err)
		}
		if acts, _, _ := s.Definitions(ctx); !acts[0].Window.Archive || !acts[0].Archived {
			t.Fatalf("archive window read back = %+v", acts[0])
		}
		var wg sync.WaitGroup
		counts := make([]int64, 3)
		for i := range counts { // several nodes at once: each instance once
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := s.PurgeCompleted(ctx, "PurchaseOrder")
				if err != nil {
					t.Errorf("concurrent PurgeCompleted: %v", err)
				}
				counts[i] = n
			}()
		}
		wg.Wait()
		if counts[0]+counts[1]+counts[2] != 1 {
			t.Fatalf("concurrent purges moved %v instances, want 1 in all", counts)
		}
		// Out of the online list, still readable one by one, said archived.
		online, err := s.Instances(ctx, store.InstanceFilter{Activity: "PurchaseOrder"})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range online {
			if in.ID == "OLD-2" {
				t.Fatalf("OLD-2 still online")
			}
		}
		in, err := s.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "OLD-2"})
		if err != nil || in.ArchivedAt == nil || in.State != store.StateCompleted || string(in.Data["Customer"]) != `"C-OLD-2"` {
			t.Fatalf("archived OLD-2 = %+v, %v; want it read from the archive", in, err)
		}
		if in.ArchivedAt.Before(now.Add(-time.Minute)) || in.ArchivedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("OLD-2 archived at %v, want about now", in.ArchivedAt)
		}
		if in, err := s.Instance(ctx, event.Key{Activity: "PurchaseOrder", Instance: "NEW-1"}); err != nil || in.ArchivedAt != nil {
			t.Fatalf("online NEW-1 = %+v, %v; want it online, not archived", in, err)
		}
		if _, ok := s.(SQL); ok {
			rows := query(t, ctx, s, `SELECT instance_id, state, customer FROM purchaseorder_archive`)
			if len(rows) != 1 || rows[0][0] != "OLD-2" || rows[0][1] != "completed" || rows[0][2] != "C-OLD-2" {
				t.Fatalf("purchaseorder_archive = %v", rows)
			}
		}
		// Archived instances hold the activity too.
		if _, err := s.RemoveActivity(ctx, "PurchaseOrder", "x", false); !errors.Is(err, store.ErrInstancesExist) {
			t.Fatalf("RemoveActivity = %v, want ErrInstancesExist", err)
		}
		if _, err := s.SetWindow(ctx, "Nope", store.Window{}, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetWindow of an unknown activity = %v, want ErrNotFound", err)
		}
	})

	// The activities that have instances: online or only archived,
	// deployed or not, each once, by name.
	t.Run("InstanceActivities", func(t *testing.T) {
		t.Parallel()
		s, ctx := setup(t)
		if names, err := s.InstanceActivities(ctx); err != nil || len(names) != 0 {
			t.Fatalf("InstanceActivities of an empty store = %v, %v", names, err)
		}
		deploy(t, ctx, s, poV1)
		apply := newApplier(t, ctx, s).apply
		now := time.Now().UTC()
		apply(evAt("PurchaseOrder", "OLD", event.Begin, now.Add(-50*time.Hour), nil),
			evAt("PurchaseOrder", "OLD", event.End, now.Add(-49*time.Hour), nil),
			evAt("Untyped", "U-1", event.Begin, now, nil), evAt("Untyped", "U-2", event.Begin, now, nil),
			evAt("Claim", "C-1", event.Begin, now, nil))
		if _, err := s.SetWindow(ctx, "PurchaseOrder", store.Window{Keep: 24 * time.Hour, Archive: true}, "x"); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PurgeCompleted(ctx, "PurchaseOrder"); err != nil || n != 1 {
			t.Fatalf("PurgeCompleted = %d, %v; want 1", n, err)
		}
		names, err := s.InstanceActivities(ctx)
		if want := []string{"Claim", "PurchaseOrder", "Untyped"}; err != nil || !slices.Equal(names, want) {
			t.Fatalf("InstanceActivities = %v, %v; want %v", names, err, want)
		}
	})
}

// sqlArgs writes ? placeholders as PostgreSQL's $1, $2, ...
func sqlArgs(pg bool, q string) string {
	if !pg {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
