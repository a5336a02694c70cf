package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
)

const exampleDefinitions = "../../examples/purchase-order/definitions.yaml"

func TestDeployAndActivities(t *testing.T) {
	b := migrated(t)
	r := b.ok("deploy", exampleDefinitions, "--by", "alice")
	for _, want := range []string{"plan (21 changes):", "    add activity PurchaseOrder", "    add index PurchaseOrder.Customer", "    add aggregation PurchaseOrder.ByCustomer", "    add alert PurchaseOrder.LateApproval",
		"deployed version 1 by alice", "views of PurchaseOrder: purchaseorder_active, purchaseorder_completed, purchaseorder_all, purchaseorder_bycustomer, purchaseorder_progress",
		"note: each index slows"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("deploy printed no %q:\n%s", want, r.stdout)
		}
	}
	r = b.ok("deploy", exampleDefinitions)
	if r.stdout != "nothing to change: the store is at version 1\n" {
		t.Errorf("deploying again printed %q", r.stdout)
	}

	r = b.ok("activity", "list")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") || strings.Fields(lines[1])[0] != "PurchaseOrder" ||
		strings.Fields(lines[1])[2] != "Customer" || lines[3] != "definitions at version 1" {
		t.Fatalf("activity list:\n%s", r.stdout)
	}
	r = b.ok("activity", "list", "--json")
	var list []ops.ActivityJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 || list[1].Name != "Shipment" ||
		list[1].Items[3].Column != "tracking" || !list[1].Items[3].Index || list[1].Items[4].Type != "float" {
		t.Fatalf("activity list --json: %v\n%s", err, r.stdout)
	}

	// Instances show in the counts and in the views.
	ap := b.applier("src")
	ap.apply([]event.Event{{Activity: "PurchaseOrder", Instance: "PO-1", Kind: event.Begin, Time: time.Now(),
		Data: map[string]json.RawMessage{"Amount": json.RawMessage(`1200.50`)}}})
	r = b.ok("activity", "list", "--counts")
	if fields := strings.Fields(strings.Split(r.stdout, "\n")[1]); fields[len(fields)-3] != "1" || fields[len(fields)-2] != "0" {
		t.Errorf("activity list --counts:\n%s", r.stdout)
	}
	r = b.ok("activity", "show", "purchaseorder")
	for _, want := range []string{"activity PurchaseOrder (changed by version 1)", "Amount", "decimal(12,2)", "amount",
		"views: purchaseorder_active, purchaseorder_completed, purchaseorder_all", "window: keep for ever",
		"instances: 1 active, 0 completed, 0 pending"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("activity show printed no %q:\n%s", want, r.stdout)
		}
	}
	b.fails(exitError, "", []string{"activity", "show", "Nope"}, `no activity "Nope" is deployed`)

	// Retyping Amount, which PO-1 holds, is refused; --dry-run --force shows it; --force makes it.
	retyped := filepath.Join(b.dir, "retyped.yaml")
	src, _ := os.ReadFile(exampleDefinitions)
	writeFile(t, retyped, strings.Replace(string(src), "type: decimal, precision: 12, scale: 2", "type: float", 1))
	r = b.fails(exitError, "", []string{"deploy", retyped}, "deployment refused, nothing changed",
		"retype item PurchaseOrder.Amount: decimal(12,2) → float", "--force")
	if !strings.Contains(r.stdout, "  ! retype item PurchaseOrder.Amount") {
		t.Errorf("refusal printed no marked plan:\n%s", r.stdout)
	}
	r = b.ok("deploy", retyped, "--dry-run", "--force")
	if !strings.Contains(r.stdout, "dry run: this would deploy version 2; nothing was written") {
		t.Errorf("dry run printed:\n%s", r.stdout)
	}
	r = b.ok("deploy", retyped, "--force", "--by", "bob")
	if !strings.Contains(r.stdout, "deployed version 2 by bob") || !strings.Contains(r.stdout, ", forced") {
		t.Errorf("forced deploy printed:\n%s", r.stdout)
	}

	r = b.ok("definition", "history")
	if !strings.HasPrefix(r.stdout, "version 2  ") || !strings.Contains(r.stdout, "bob  forced\n    retype item PurchaseOrder.Amount") ||
		!strings.Contains(r.stdout, "version 1  ") || !strings.Contains(r.stdout, "alice\n    add activity PurchaseOrder") {
		t.Errorf("definition history:\n%s", r.stdout)
	}
	r = b.ok("definition", "history", "--json", "--limit", "1", "--files")
	var hist []ops.DeploymentJSON
	if err := json.Unmarshal([]byte(r.stdout), &hist); err != nil || len(hist) != 1 || hist[0].Version != 2 || !hist[0].Forced ||
		!strings.Contains(hist[0].File, "type: float") {
		t.Fatalf("definition history --json: %v\n%s", err, r.stdout)
	}

	// Windows, purge, removal.
	r = b.ok("activity", "window", "PurchaseOrder", "--keep", "720h", "--archive")
	if !strings.Contains(r.stdout, "set window PurchaseOrder: keep 720h0m0s, then archive (version 3)") ||
		!strings.Contains(r.stdout, "view purchaseorder_archive") {
		t.Errorf("activity window printed:\n%s", r.stdout)
	}
	r = b.ok("activity", "purge", "PurchaseOrder")
	if !strings.Contains(r.stdout, "purged 0 completed instances of PurchaseOrder ended more than 720h0m0s ago: moved to purchaseorder_archive") {
		t.Errorf("activity purge printed:\n%s", r.stdout)
	}
	b.fails(exitError, "", []string{"activity", "remove", "PurchaseOrder"}, "the activity still has instances: 1 online, 0 archived; to delete them with it: bam activity remove PurchaseOrder --drop-data")
	r = b.ok("activity", "remove", "PurchaseOrder", "--drop-data")
	if !strings.Contains(r.stdout, "remove activity PurchaseOrder\ndelete 1 instances") || !strings.Contains(r.stdout, "deployed version 4") {
		t.Errorf("activity remove --drop-data printed:\n%s", r.stdout)
	}
	b.fails(exitError, "", []string{"activity", "remove", "PurchaseOrder"}, `no activity "PurchaseOrder" is deployed`)
}

func TestDefinitionExportRoundTrip(t *testing.T) {
	b := migrated(t)
	b.fails(exitError, "", []string{"definition", "export"}, "no activities deployed")
	b.ok("deploy", exampleDefinitions)
	r := b.ok("definition", "export")
	if !strings.HasPrefix(r.stdout, "# exported from definitions version 1\nactivities:\n") ||
		!strings.Contains(r.stdout, "{name: Customer, type: text, max_length: 100, index: true}") {
		t.Fatalf("export:\n%s", r.stdout)
	}
	// The export deploys back as no change, on this store and on a new one.
	exported := filepath.Join(b.dir, "exported.yaml")
	writeFile(t, exported, r.stdout)
	if r := b.ok("deploy", exported); !strings.HasPrefix(r.stdout, "nothing to change") {
		t.Fatalf("deploying the export back printed:\n%s", r.stdout)
	}
	other := migrated(t)
	other.ok("deploy", exported)
	if r2 := other.ok("definition", "export"); r2.stdout != r.stdout {
		t.Fatalf("export of a store deployed from an export differs:\n%s\nwant\n%s", r2.stdout, r.stdout)
	}
	r = b.ok("definition", "export", "--activity", "shipment")
	if strings.Contains(r.stdout, "PurchaseOrder") || !strings.Contains(r.stdout, "- name: Shipment") {
		t.Fatalf("export --activity shipment:\n%s", r.stdout)
	}
	b.fails(exitError, "", []string{"definition", "export", "--activity", "Nope"}, `no activity "Nope"`)
}

func TestDeployBadFiles(t *testing.T) {
	b := migrated(t)
	bad := filepath.Join(b.dir, "bad.yaml")
	writeFile(t, bad, "activities:\n  - name: 9Lives\n    items:\n      - {name: Amount, type: money}\n      - {name: state, type: integer}\n")
	r := b.fails(exitError, "", []string{"deploy", bad}, "bad.yaml: 3 problem(s) in the definition, nothing deployed",
		`line 2: activity "9Lives": activity name "9Lives" must start with a letter`, `unknown type "money"`, "reserved")
	if strings.Count(r.stderr, "bad.yaml: line") != 3 {
		t.Errorf("each problem on its own line:\n%s", r.stderr)
	}
	b.fails(exitError, "", []string{"deploy", filepath.Join(b.dir, "missing.yaml")}, "read definition file")
	b.fails(exitUsage, "", []string{"deploy"}, "needs FILE")
	b.fails(exitUsage, "", []string{"activity", "window", "X"}, "needs --keep")
	b.fails(exitUsage, "", []string{"activity", "window", "X", "--keep", "-1h"}, "--keep -1h0m0s")
	b.fails(exitUsage, "", []string{"activity", "window", "X", "--keep", "0", "--archive"}, "--archive needs a --keep window")
	b.fails(exitError, "", []string{"activity", "window", "X", "--keep", "1h"}, `no activity "X" is deployed`)
	if r := b.ok("definition", "history"); r.stdout != "no deployments yet\n" {
		t.Errorf("history of a new store: %q", r.stdout)
	}
	if r := b.ok("activity", "list"); !strings.HasPrefix(r.stdout, "no activities deployed") {
		t.Errorf("activity list of a new store: %q", r.stdout)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestArchivedInstanceReadable: an instance purged into the archive is
// still found by instance get, which says it is archived. (Before: "no
// instance".)
func TestArchivedInstanceReadable(t *testing.T) {
	b := migrated(t)
	b.ok("deploy", exampleDefinitions)
	b.ok("activity", "window", "Shipment", "--keep", "1h", "--archive")
	ap := b.applier("src")
	old := time.Now().Add(-3 * time.Hour)
	ap.apply([]event.Event{
		{Activity: "Shipment", Instance: "S-1", Kind: event.Begin, Time: old},
		{Activity: "Shipment", Instance: "S-1", Kind: event.End, Time: old.Add(time.Minute)},
	})
	if n, err := store.PurgeWindows(context.Background(), b.store()); err != nil || n != 1 {
		t.Fatalf("PurgeWindows = %d, %v; want 1", n, err)
	}
	r := b.ok("instance", "get", "Shipment", "S-1")
	if !strings.Contains(r.stdout, "S-1") || !strings.Contains(r.stdout, "completed") || !strings.Contains(r.stdout, "archived at 20") {
		t.Errorf("instance get of an archived instance:\n%s", r.stdout)
	}
	r = b.ok("instance", "get", "Shipment", "S-1", "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got["archived_at"] == nil || got["state"] != "completed" {
		t.Errorf("instance get --json of an archived instance = %v, %v", got, err)
	}
	if r := b.ok("instance", "list", "Shipment"); !strings.Contains(r.stdout, "no instances of activity Shipment") {
		t.Errorf("the online list holds an archived instance:\n%s", r.stdout)
	}
}

// TestDefinitionsHideWebhookTokens: the export and the history of the
// files deployed hide a webhook's query (it may hold a token), as bam
// alert list does; the export, deployed back, is refused rather than
// deployed without the token. (Before: both printed it.)
func TestDefinitionsHideWebhookTokens(t *testing.T) {
	b := migrated(t)
	file := filepath.Join(b.dir, "alerts.yaml")
	writeFile(t, file, `activities:
  - name: Shipment
    items: [{name: Weight, type: float}]
    alerts:
      - {name: Heavy, where: Weight > 100, subscribers: [{webhook: "https://hooks.example.com/x?token=SECRET"}]}
`)
	b.ok("deploy", file)
	for _, args := range [][]string{{"definition", "export"}, {"definition", "history", "--files"}, {"definition", "history", "--files", "--json"}} {
		r := b.ok(args...)
		if strings.Contains(r.stdout, "SECRET") || !strings.Contains(r.stdout, "https://hooks.example.com/x?…") {
			t.Errorf("bam %s shows the webhook's token, or no webhook:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
	exported := filepath.Join(b.dir, "exported.yaml")
	writeFile(t, exported, b.ok("definition", "export").stdout)
	b.fails(exitError, "", []string{"deploy", exported}, "its query was hidden")
}
