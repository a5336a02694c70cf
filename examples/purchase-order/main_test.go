package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testproc"
	"github.com/bam-dev/bam/internal/testwait"
)

// These tests run the application as an operator would: the built binary,
// a real store, a real `bam serve` node, and `bam instance get`.

var bamBinary, appBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "purchase-order-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bamBinary, appBinary = filepath.Join(dir, "bam"), filepath.Join(dir, "purchase-order")
	for bin, pkg := range map[string]string{bamBinary: "github.com/bam-dev/bam/cmd/bam", appBinary: "."} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func command(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "BAM_STORE=") // only the flags decide
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// serve starts a bam node on the store and returns what stops it
// (SIGTERM, then SIGKILL after 15 s), which the end of the test does too.
func serve(t *testing.T, storeURL string) (stop func()) {
	t.Helper()
	p := testproc.StartTest(t, testproc.Config{Path: bamBinary, Name: "po-test", Args: []string{
		"serve", "--store", storeURL, "--name", "po-test",
		"--lease-ttl", "2s", "--renew-interval", "500ms", "--safety-margin", "300ms",
		"--balance-interval", "250ms", "--poll-interval", "500ms"}})
	stop = func() { _ = p.Stop(15 * time.Second) }
	t.Cleanup(stop) // before StartTest's, which shows the log if the test failed
	return stop
}

func openStore(t *testing.T, url string) store.Store {
	t.Helper()
	st, err := storeurl.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func instance(t *testing.T, st store.Store, activity, id string) (store.Instance, bool) {
	t.Helper()
	in, err := st.Instance(context.Background(), event.Key{Activity: activity, Instance: id})
	if errors.Is(err, store.ErrNotFound) {
		return in, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return in, true
}

// continued returns an item the shipping desk set on an order under its
// continuation token: the store folds it into the order.
func continued(t *testing.T, st store.Store, order, item string) (string, bool) {
	t.Helper()
	if in, ok := instance(t, st, activityPO, order); ok && in.Data[item] != nil {
		return string(in.Data[item]), true
	}
	return "", false
}

// checkFlow runs the application on a prepared store and checks what a
// node makes of its events. app runs the application with its mode's
// flags; rows counts the rows in its source.
func checkFlow(t *testing.T, storeURL, source string, app func(args ...string) string, rows func() int64) {
	st := openStore(t, storeURL)
	out := app()
	for _, want := range []string{
		"PO-1001 Contoso 1200.00 shipped SHP-1 1Z4700000001",
		"PO-1002 Fabrikam 310.50 delivered SHP-2 1Z4700000002",
		"PO-1003 Northwind Traders 18750.00 awaiting approval (over 5000.00) - -",
		"bam instance get PurchaseOrder PO-1001", "purchase-order deliver SHP-1 ",
	} {
		if !strings.Contains(squeeze(out), want) {
			t.Errorf("the application's output lacks %q:\n%s", want, out)
		}
	}
	stop := serve(t, storeURL)
	// Every partition's events: the sessions apply theirs independently.
	testwait.Until(t, 30*time.Second, "the orders and shipments to be applied", func() bool {
		_, shipped := continued(t, st, "PO-1001", "Shipped")
		_, delivered := continued(t, st, "PO-1002", "Delivered")
		shp, ok := instance(t, st, activityShipment, "SHP-3")
		_, held := instance(t, st, activityPO, "PO-1003")
		_, shp1 := instance(t, st, activityShipment, "SHP-1")
		return shipped && delivered && ok && shp.State == store.StateCompleted && held && shp1
	})

	po, _ := instance(t, st, activityPO, "PO-1001")
	for item, want := range map[string]string{"Customer": `"Contoso"`, "Amount": `"1200.00"`, "Quantity": "12", "Rush": "false"} {
		if got := string(po.Data[item]); got != want {
			t.Errorf("PO-1001 %s = %s, want %s", item, got, want)
		}
	}
	if po.Data["Received"] == nil || po.Data["Approved"] == nil || po.Begin == nil || po.End == nil {
		t.Errorf("PO-1001 = %+v, data %s: want begun, received, approved and ended", po, po.Data)
	}
	// Ended, but its shipping continuation is open until delivery.
	if po.State != store.StateActive {
		t.Errorf("PO-1001 is %s before its delivery, want active (its continuation is open)", po.State)
	}
	if _, ok := instance(t, st, activityPO, "ship-PO-1001"); ok {
		t.Error("the continuation's token shows as an instance of its own")
	}
	held, _ := instance(t, st, activityPO, "PO-1003")
	if held.State != store.StateActive || held.Data["Approved"] != nil || string(held.Data["Amount"]) != `"18750.00"` {
		t.Errorf("PO-1003 (over the limit) = %+v, data %s: want active, not approved", held, held.Data)
	}
	shp, _ := instance(t, st, activityShipment, "SHP-1")
	if shp.State != store.StateActive || string(shp.Data["Carrier"]) != `"UPS Ground"` ||
		string(shp.Data["Weight"]) != "14.5" || string(shp.Data["Tracking"]) != `"1Z4700000001"` || shp.Data["Shipped"] == nil {
		t.Errorf("SHP-1 = %+v, data %s", shp, shp.Data)
	}
	if got, _ := continued(t, st, "PO-1001", "Shipped"); got != string(shp.Data["Shipped"]) {
		t.Errorf("PO-1001 Shipped = %s, want the shipment's %s", got, shp.Data["Shipped"])
	}
	if _, delivered := continued(t, st, "PO-1001", "Delivered"); delivered {
		t.Errorf("PO-1001 is delivered before its shipment was")
	}
	if _, delivered := continued(t, st, "PO-1002", "Delivered"); !delivered {
		t.Errorf("PO-1002, a rush order, is not delivered")
	}
	shown := command(t, bamBinary, "instance", "get", activityPO, "PO-1001", "--store", storeURL)
	if !strings.Contains(shown, `Customer="Contoso"`) || !strings.Contains(shown, "Approved=") {
		t.Errorf("bam instance get PurchaseOrder PO-1001 shows:\n%s", shown)
	}

	// The carrier delivers SHP-1, in another run of the application.
	app("deliver", "SHP-1")
	testwait.Until(t, 30*time.Second, "SHP-1's delivery to be applied", func() bool {
		shp, _ := instance(t, st, activityShipment, "SHP-1")
		po, _ := instance(t, st, activityPO, "PO-1001")
		_, delivered := continued(t, st, "PO-1001", "Delivered")
		return shp.State == store.StateCompleted && delivered && po.State == store.StateCompleted
	})
	failed, err := st.FailedEvents(context.Background(), source, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 0 {
		t.Errorf("failed events: %+v", failed)
	}

	// Run again with the node stopped, so that nothing is trimmed: every
	// order was received already, and nothing is written twice.
	stop()
	before := rows()
	again := app()
	if n := strings.Count(again, "skipped: already received"); n != 4 {
		t.Errorf("second run skipped %d orders, want 4:\n%s", n, again)
	}
	if after := rows(); after != before {
		t.Errorf("the second run wrote %d events", after-before)
	}
}

// TestBufferedOnSQLite runs the application in its default mode: its data
// in a SQLite file, its events through a buffered stream into a SQLite
// store.
func TestBufferedOnSQLite(t *testing.T) {
	dir := t.TempDir()
	storeURL := "sqlite:" + filepath.Join(dir, "bam.db")
	command(t, bamBinary, "migrate", "--store", storeURL)
	command(t, bamBinary, "source", "add", "orders", "--kind", "buffer", "--partitions", "2", "--store", storeURL)
	st := openStore(t, storeURL)
	app := func(args ...string) string {
		return command(t, appBinary, append([]string{"--store", storeURL, "--app-db", filepath.Join(dir, "po.db")}, args...)...)
	}
	rows := func() int64 {
		var n int64
		for p := range 2 {
			k, err := st.BufferBacklog(context.Background(), store.SessionID{Source: "orders", Partition: p}, store.Position{})
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		return n
	}
	checkFlow(t, storeURL, "orders", app, rows)
}

// TestOutboxOnPostgres runs the application with --pg-dsn: its data and
// its outbox in PostgreSQL, read by a node into a SQLite store.
func TestOutboxOnPostgres(t *testing.T) {
	appURL := testpg.NewDatabase(t)
	storeURL := "sqlite:" + filepath.Join(t.TempDir(), "bam.db")
	command(t, bamBinary, "migrate", "--store", storeURL)
	command(t, bamBinary, "source", "add", "shop", "--kind", "pg-outbox", "--partitions", "2", "--dsn", appURL, "--store", storeURL)
	command(t, bamBinary, "source", "install-outbox", "shop", "--store", storeURL)
	app := func(args ...string) string {
		return command(t, appBinary, append([]string{"--pg-dsn", appURL}, args...)...)
	}
	db, err := sql.Open("pgx", appURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rows := func() int64 {
		var n int64
		if err := db.QueryRow("SELECT count(*) FROM bam_outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	checkFlow(t, storeURL, "shop", app, rows)
}

// squeeze turns every run of spaces in s into one, line by line.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
