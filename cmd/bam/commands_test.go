package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

func TestMigrate(t *testing.T) {
	b := newBench(t)
	b.fails(exitError, "", []string{"status"}, "does not exist", "bam migrate")
	if _, err := os.Stat(filepath.Join(b.dir, "bam.db")); err == nil {
		t.Errorf("status created the store file; it should only tell the user to migrate")
	}
	r := b.ok("migrate")
	if !regexp.MustCompile(`^store sqlite:.*bam\.db migrated from version 0 to [1-9]\d*\n$`).MatchString(r.stdout) {
		t.Errorf("first migrate printed %q", r.stdout)
	}
	r = b.ok("migrate")
	if !regexp.MustCompile(`^store sqlite:.*bam\.db already at version [1-9]\d*\n$`).MatchString(r.stdout) {
		t.Errorf("second migrate printed %q", r.stdout)
	}
}

func TestStoreFromEnvironment(t *testing.T) {
	b := newBench(t)
	b.env["BAM_STORE"] = b.url
	var out, errOut syncBuffer
	code := run(context.Background(), []string{"migrate"}, strings.NewReader(""), &out, &errOut, environOf(b.env))
	if code != 0 || !strings.Contains(out.String(), b.url) {
		t.Fatalf("migrate with BAM_STORE: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

func TestUsageErrors(t *testing.T) {
	b := migrated(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"source", "bogus"}, `unknown command "bogus"`},
		{[]string{"source", "add"}, "needs NAME"},
		{[]string{"source", "add", "s"}, `required flag(s) "kind", "partitions" not set`},
		{[]string{"source", "add", "s", "--kind", "kafka", "--partitions", "1"}, `--kind "kafka"`},
		{[]string{"source", "add", "s", "--kind", "buffer", "--partitions", "0"}, "--partitions 0: use 1 to 1024"},
		{[]string{"source", "add", "s", "--kind", "buffer", "--partitions", "1025"}, "use 1 to 1024"},
		{[]string{"source", "add", "bad name", "--kind", "buffer", "--partitions", "1"}, "letters, digits, _ or -"},
		{[]string{"source", "add", strings.Repeat("x", 65), "--kind", "buffer", "--partitions", "1"}, "1 to 64"},
		{[]string{"source", "add", "s", "--kind", "pg-outbox", "--partitions", "1"}, "needs --dsn"},
		{[]string{"source", "add", "s", "--kind", "buffer", "--partitions", "1", "--dsn", "postgres://h/db"}, "--dsn is for pg-outbox"},
		{[]string{"source", "add", "s", "--kind", "pg-outbox", "--partitions", "1", "--dsn", "postgres://h/db", "--table", `"Q"`}, "invalid outbox table name"},
		{[]string{"emit", "--source", "s"}, "nothing to emit"},
		{[]string{"emit", "--source", "s", "--activity", "A"}, "needs --activity, --instance (or --continuation) and --kind"},
		{[]string{"emit", "--source", "s", "--activity", "A", "--instance", "1", "--kind", "begin", "--file", "-"}, "not both"},
		{[]string{"emit", "--source", "s", "--activity", "A", "--instance", "1", "--kind", "begin", "--data", "novalue"}, "use NAME=VALUE"},
		{[]string{"emit", "--source", "s", "--activity", "A", "--instance", "1", "--kind", "shipped"}, `--kind: unknown kind "shipped"`},
		{[]string{"emit", "--source", "s", "--activity", "A", "--instance", "1", "--kind", "begin", "--time", "yesterday"}, "--time:"},
		{[]string{"emit", "--source", "s", "--activity", "A", "--instance", "1", "--kind", "begin", "--data", "Tags=[1]"}, "--data Tags: value must be"},
		{[]string{"instance", "list", "A", "--state", "done"}, `--state "done"`},
		{[]string{"failed", "show", "x"}, "not a failed event id"},
		{[]string{"serve", "--lease-ttl", "1s", "--renew-interval", "1s"}, "at least twice the renew interval"},
		{[]string{"serve", "--safety-margin", "0"}, "must be positive"},
		{[]string{"status", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"--log-format", "xml", "status"}, `--log-format "xml"`},
	} {
		r := b.fails(exitUsage, "", tc.args, tc.want)
		if !strings.HasPrefix(r.stderr, "bam: ") || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("bam %s: stderr %q, want `bam: ...` and a pointer to --help", strings.Join(tc.args, " "), r.stderr)
		}
	}
}

func TestSources(t *testing.T) {
	b := migrated(t)
	r := b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "4")
	if !strings.Contains(r.stdout, "added source orders: buffer, 4 partitions, enabled") {
		t.Errorf("add printed %q", r.stdout)
	}
	b.ok("source", "add", "shop", "--kind", "pg-outbox", "--partitions", "2", "--dsn", "postgres://app:s3cret@db:5432/shop", "--table", "app.outbox", "--disabled")
	b.ok("source", "add", "kv", "--kind", "pg-outbox", "--partitions", "1", "--dsn", "host=db user=app password=s3cret dbname=shop")
	b.fails(exitError, "", []string{"source", "add", "orders", "--kind", "buffer", "--partitions", "1"}, `source "orders" already exists`)

	r = b.ok("source", "list")
	if strings.Contains(r.stdout, "s3cret") {
		t.Fatalf("source list shows a password:\n%s", r.stdout)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("source list:\n%s", r.stdout)
	}
	if fields := strings.Fields(lines[2]); !reflect.DeepEqual(fields, []string{"orders", "buffer", "4", "enabled", "-", "-"}) {
		t.Errorf("orders row = %q", fields)
	}
	if fields := strings.Fields(lines[3]); !reflect.DeepEqual(fields, []string{"shop", "pg-outbox", "2", "disabled", "postgres://app:xxxxx@db:5432/shop", "app.outbox"}) {
		t.Errorf("shop row = %q", fields)
	}
	// Columns are aligned: every row starts its KIND column at one offset.
	col := strings.Index(lines[0], "KIND")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row not aligned on KIND (column %d): %q", col, l)
		}
	}

	r = b.ok("source", "list", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("source list --json: %v\n%s", err, r.stdout)
	}
	if len(got) != 3 || got[0]["name"] != "kv" || got[0]["dsn"] != "host=db user=app password=xxxxx dbname=shop" || got[0]["table"] != "bam_outbox" {
		t.Errorf("source list --json = %v", got)
	}
	if got[1]["name"] != "orders" || got[1]["kind"] != "buffer" || got[1]["partitions"] != 4.0 || got[1]["enabled"] != true {
		t.Errorf("orders in --json = %v", got[1])
	}
	if strings.Contains(r.stdout, "s3cret") {
		t.Errorf("source list --json shows a password")
	}

	b.ok("source", "disable", "orders")
	b.ok("source", "enable", "shop")
	r = b.ok("source", "list", "--json")
	if !strings.Contains(r.stdout, `"name": "orders",
    "kind": "buffer",
    "partitions": 4,
    "enabled": false`) {
		t.Errorf("orders not disabled:\n%s", r.stdout)
	}
	b.fails(exitError, "", []string{"source", "enable", "nope"}, `no source named "nope"`)
	r = b.ok("source", "remove", "orders")
	if r.stdout != "removed source orders\n" {
		t.Errorf("remove printed %q", r.stdout)
	}
	b.fails(exitError, "", []string{"source", "remove", "orders"}, `no source named "orders"`)
	b.fails(exitError, "", []string{"source", "install-outbox", "nope"}, `no source named "nope"`)
	b.ok("source", "add", "buf", "--kind", "buffer", "--partitions", "1")
	b.fails(exitError, "", []string{"source", "install-outbox", "buf"}, "install-outbox is for pg-outbox sources")
}

func TestOutboxSQL(t *testing.T) {
	b := newBench(t) // needs no store
	r := b.ok("source", "outbox-sql", "--table", "app.events")
	for _, want := range []string{"BEGIN;", `CREATE TABLE IF NOT EXISTS "app"."events"`, "COMMIT;", `INSERT INTO "app"."events" (instance_id, event) VALUES ($1, $2);`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("outbox-sql lacks %q:\n%s", want, r.stdout)
		}
	}
}

// buffered returns the events in a buffer source, by partition.
func buffered(t *testing.T, st store.Store, source string, partitions int) map[int][]event.Event {
	t.Helper()
	out := map[int][]event.Event{}
	for p := range partitions {
		recs, _, err := st.ReadBuffer(context.Background(), store.SessionID{Source: source, Partition: p}, store.Position{}, 100000)
		if err != nil {
			t.Fatalf("read buffer: %v", err)
		}
		for _, rec := range recs {
			// The payload carries its own time: decode with a default far
			// from it to tell.
			ev, err := event.Decode(rec.Payload, time.Unix(0, 0), 0)
			if err != nil {
				t.Fatalf("buffered payload %s: %v", rec.Payload, err)
			}
			if p != event.Partition(ev.Instance, partitions) {
				t.Errorf("event of %s in partition %d, want %d", ev.Instance, p, event.Partition(ev.Instance, partitions))
			}
			out[p] = append(out[p], ev)
		}
	}
	return out
}

func TestEmitFromFlags(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "3")
	before := time.Now()
	r := b.ok("emit", "--source", "orders", "--activity", "PurchaseOrder", "--instance", "PO-1042", "--kind", "update",
		"--data", "Amount=1200", "--data", "Customer=Contoso", "--data", `Code="0042"`, "--data", "Rush=true",
		"--data", "Note=null", "--data", "Text=a, b=c")
	if r.stdout != "wrote 1 event to source orders\n" {
		t.Errorf("emit printed %q", r.stdout)
	}
	b.ok("emit", "--source", "orders", "--activity", "PurchaseOrder", "--instance", "PO-7", "--kind", "begin", "--time", "2026-11-25T10:02:00+01:00")

	all := buffered(t, b.store(), "orders", 3)
	var evs []event.Event
	for _, e := range all {
		evs = append(evs, e...)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Instance < evs[j].Instance })
	if len(evs) != 2 {
		t.Fatalf("buffered %d events, want 2", len(evs))
	}
	got := map[string]string{}
	for k, v := range evs[0].Data {
		got[k] = string(v)
	}
	want := map[string]string{"Amount": "1200", "Customer": `"Contoso"`, "Code": `"0042"`, "Rush": "true", "Note": "null", "Text": `"a, b=c"`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("data = %v, want %v", got, want)
	}
	if evs[0].Time.Before(before.Add(-time.Second)) || evs[0].Time.After(time.Now()) {
		t.Errorf("time defaulted to %v, want now", evs[0].Time)
	}
	if !evs[1].Time.Equal(time.Date(2026, 11, 25, 9, 2, 0, 0, time.UTC)) {
		t.Errorf("--time stored as %v", evs[1].Time)
	}
}

// TestEmitEveryKindFromFlags: every kind of docs/EVENTS.md can be emitted
// from flags, and a missing or misplaced field names its flag. (Before,
// --kind enable-continuation asked for a --token flag that did not exist.)
func TestEmitEveryKindFromFlags(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "1")
	emit := []string{"emit", "--source", "orders", "--activity", "PurchaseOrder"}
	for _, args := range [][]string{
		{"--instance", "PO-1", "--kind", "begin", "--data", "Amount=10"},
		{"--instance", "PO-1", "--kind", "enable-continuation", "--token", "ship-PO-1"},
		{"--continuation", "ship-PO-1", "--kind", "update", "--data", "Carrier=UPS"},
		{"--instance", "PO-1", "--kind", "relate", "--related", "Invoice/INV/7"},
		{"--instance", "PO-1", "--kind", "reference", "--reference-type", "message", "--reference-name", "order",
			"--reference-value", "<m-1@contoso>", "--reference-data", "<order/>"},
	} {
		b.ok(append(emit, args...)...)
	}
	evs := buffered(t, b.store(), "orders", 1)[0]
	if len(evs) != 5 {
		t.Fatalf("buffered %d events, want 5", len(evs))
	}
	if evs[1].Token != "ship-PO-1" || evs[2].Continuation != "ship-PO-1" || string(evs[2].Data["Carrier"]) != `"UPS"` ||
		evs[3].Related == nil || *evs[3].Related != (event.Related{Activity: "Invoice", Instance: "INV/7"}) ||
		evs[4].Reference == nil || *evs[4].Reference != (event.Reference{Type: "message", Name: "order", Value: "<m-1@contoso>", Data: "<order/>"}) {
		t.Errorf("events from flags = %+v", evs)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--instance", "PO-1", "--kind", "enable-continuation"}, "--token: missing"},
		{[]string{"--instance", "PO-1", "--kind", "relate"}, "--related: missing"},
		{[]string{"--instance", "PO-1", "--kind", "relate", "--related", "INV-7"}, "use ACTIVITY/INSTANCE"},
		{[]string{"--instance", "PO-1", "--kind", "reference", "--reference-type", "message"}, "--reference-name"},
		{[]string{"--instance", "PO-1", "--kind", "begin", "--token", "t"}, "--token: belongs to enable-continuation"},
		{[]string{"--kind", "begin"}, "--instance (or --continuation)"},
	} {
		b.fails(exitUsage, "", append(emit, c.args...), c.want)
	}
}

// TestEmitInterruptedResumes: an emit --file stopped midway says up to which
// line it wrote and how to resume, and running it again writes the rest
// without doubling what was written. (Before: no word, and a rerun doubled
// the lines written.)
func TestEmitInterruptedResumes(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "2")
	var lines []string
	for i := range 3000 {
		lines = append(lines, fmt.Sprintf(`{"activity":"PO","instance":"PO-%d","kind":"begin"}`, i))
	}
	countBuffered := func() int {
		n := 0
		for _, evs := range buffered(t, b.store(), "orders", 2) {
			n += len(evs)
		}
		return n
	}

	// The first run reads a pipe and is interrupted after two batches.
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--store", b.url, "emit", "--source", "orders", "--file", "-"}, pr, &out, &errOut, nil)
	}()
	if _, err := io.WriteString(pw, strings.Join(lines[:2500], "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stderr: %s", errOut.String())
		}
	})
	testwait.Until(t, 20*time.Second, "two batches to be written", func() bool { return countBuffered() >= 2000 })
	cancel()
	_, _ = io.WriteString(pw, lines[2500]+"\n") // the next line finds it interrupted
	if code := <-done; code != exitError {
		t.Fatalf("interrupted emit exit %d, want %d\nstdout: %s\nstderr: %s", code, exitError, out.String(), errOut.String())
	}
	pw.Close()
	if !strings.Contains(out.String(), "wrote 2000 events to source orders, up to line 2000, before it stopped") ||
		!strings.Contains(errOut.String(), "interrupted; run the same command again to write the rest") {
		t.Errorf("an interrupted emit says:\nstdout: %s\nstderr: %s", out.String(), errOut.String())
	}

	// The same input again, whole, from a file: the rest is written, the
	// first 2000 are not doubled.
	path := filepath.Join(b.dir, "events.ndjson")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := b.ok("emit", "--source", "orders", "--file", path)
	if !strings.Contains(r.stdout, "wrote 1000 events to source orders; 2000 events an earlier run of this input wrote skipped") {
		t.Errorf("the rerun says %q", r.stdout)
	}
	if n := countBuffered(); n != 3000 {
		t.Fatalf("%d events buffered after the rerun, want 3000 (none doubled)", n)
	}
	// --again writes everything once more, on purpose.
	if r := b.ok("emit", "--source", "orders", "--file", path, "--again"); !strings.Contains(r.stdout, "wrote 3000 events") {
		t.Errorf("emit --again says %q", r.stdout)
	}
}

func TestEmitNDJSON(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "2")
	input := strings.Join([]string{
		`{"activity": "PurchaseOrder", "instance": "PO-1", "kind": "begin", "time": "2026-11-25T10:00:00Z", "data": {"Amount": 1200}}`,
		`{"activity": "PurchaseOrder", "instance": "PO-2", "kind": "begin"}`,
		``,
		`   `,
		`{"activity": "PurchaseOrder", "instance": "PO-1", "kind": "update", "data": {"Approved": "2026-11-25T10:02:00Z"}}` + "\r",
		`{"activity": "PurchaseOrder", "instance": "PO-3", "kind": "begin", "data": {"Amount": {"v": 1}}}`,
		`{"activity": "PurchaseOrder", "instance": "PO-3", "kind": "shipped"}`,
		`{"activity": "PurchaseOrder", "instance": "PO-1", "kind": "end", "time": "2026-11-25T11:00:00Z"}`,
		`{"activity": "PurchaseOrder", "instance": "PO-4", "kind": "begin", "colour": "red"}`,
		`not json`,
		`{"activity": "PurchaseOrder", "instance": "PO-2", "kind": "end"}`,
	}, "\n") // no newline after the last line
	r := b.fails(exitError, input, []string{"emit", "--source", "orders", "--file", "-"},
		"line 6: data.Amount: value must be a string, number, boolean or null, got an object",
		`line 7: kind: unknown kind "shipped" (known: begin, update, end, enable-continuation, relate, reference)`,
		"line 9: colour: unknown field",
		"line 10: malformed JSON",
		"refused 4 lines")
	if r.stdout != "wrote 5 events to source orders\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if strings.Contains(r.stderr, "line 3") || strings.Contains(r.stderr, "line 4") || strings.Contains(r.stderr, "line 5") {
		t.Errorf("blank lines or a CRLF line were refused:\n%s", r.stderr)
	}

	all := buffered(t, b.store(), "orders", 2)
	var order []string
	for _, p := range []int{event.Partition("PO-1", 2)} {
		for _, e := range all[p] {
			if e.Instance == "PO-1" {
				order = append(order, string(e.Kind))
			}
		}
	}
	if !reflect.DeepEqual(order, []string{"begin", "update", "end"}) {
		t.Errorf("PO-1's events in its partition: %v, want begin, update, end in order", order)
	}
	total := len(all[0]) + len(all[1])
	if total != 5 {
		t.Errorf("buffered %d events, want 5", total)
	}
	for _, evs := range all {
		for _, e := range evs {
			if e.Time.Equal(time.Unix(0, 0)) {
				t.Errorf("event %s/%s stored without its time", e.Instance, e.Kind)
			}
		}
	}

	// From a file, all good.
	path := filepath.Join(b.dir, "events.ndjson")
	if err := os.WriteFile(path, []byte(`{"activity":"PurchaseOrder","instance":"PO-9","kind":"begin"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := b.ok("emit", "--source", "orders", "--file", path); r.stdout != "wrote 1 event to source orders\n" {
		t.Errorf("emit --file printed %q", r.stdout)
	}
	b.fails(exitError, "", []string{"emit", "--source", "orders", "--file", filepath.Join(b.dir, "missing.ndjson")}, "no such file")
}

// TestEmitRefusesWhatAStoreRefuses: a line whose number is beyond what
// every store holds, or whose text is not UTF-8, is refused with its line
// and field, and the good lines are written; so is one event from flags.
// Before, they were written, and PostgreSQL then refused their batch on
// every retry, blocking the partition.
func TestEmitRefusesWhatAStoreRefuses(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "1")
	input := strings.Join([]string{
		`{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin"}`,
		`{"activity":"PurchaseOrder","instance":"PO-1","kind":"update","data":{"Amount":1e200000}}`,
		`{"activity":"PurchaseOrder","instance":"PO-1","kind":"update","data":{"Customer":"Cont` + "\xff" + `so"}}`,
		`{"activity":"PurchaseOrder","instance":"PO-` + "\xff" + `","kind":"begin"}`,
		`{"activity":"PurchaseOrder","instance":"PO-1","kind":"end"}`,
	}, "\n")
	r := b.fails(exitError, input, []string{"emit", "--source", "orders", "--file", "-"},
		"line 2: data.Amount: number 1e200000 is beyond",
		"line 3: data.Customer: text must be valid UTF-8",
		"line 4: instance: text must be valid UTF-8",
		"refused 3 lines")
	if r.stdout != "wrote 2 events to source orders\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	b.fails(exitUsage, "", []string{"emit", "--source", "orders", "--activity", "PurchaseOrder", "--instance", "PO-2", "--kind", "update",
		"--data", "Amount=1e400"}, "--data Amount: number 1e400 is beyond")
	if n := len(buffered(t, b.store(), "orders", 1)[0]); n != 2 {
		t.Errorf("buffered %d events, want the 2 good ones", n)
	}
}

func TestEmitLargeAndOversize(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "big", "--kind", "buffer", "--partitions", "4")
	var in strings.Builder
	const n = 2500
	for i := range n {
		if i == 1200 {
			// Over --max-event-size: refused, and the lines after still count.
			fmt.Fprintf(&in, `{"activity":"A","instance":"X","kind":"begin","data":{"Pad":"%s"}}`+"\n", strings.Repeat("x", 3000))
		}
		fmt.Fprintf(&in, `{"activity":"A","instance":"I-%d","kind":"begin"}`+"\n", i)
	}
	r := b.fails(exitError, in.String(), []string{"emit", "--source", "big", "--file", "-", "--max-event-size", "2048"},
		"line 1201: event is 3064 bytes, over the limit of 2048", "refused 1 line")
	if r.stdout != fmt.Sprintf("wrote %d events to source big\n", n) {
		t.Errorf("stdout = %q", r.stdout)
	}
	all := buffered(t, b.store(), "big", 4)
	seen := map[string]bool{}
	for _, evs := range all {
		for _, e := range evs {
			seen[e.Instance] = true
		}
	}
	if len(seen) != n {
		t.Errorf("buffered %d distinct instances, want %d", len(seen), n)
	}
}

func TestEmitRefusedSources(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "off", "--kind", "buffer", "--partitions", "1", "--disabled")
	b.ok("source", "add", "shop", "--kind", "pg-outbox", "--partitions", "1", "--dsn", "postgres://app:pw@127.0.0.1:1/shop")
	one := []string{"--activity", "A", "--instance", "1", "--kind", "begin"}
	b.fails(exitError, "", append([]string{"emit", "--source", "off"}, one...), "source off is disabled", "bam source enable off")
	b.fails(exitError, "", append([]string{"emit", "--source", "shop"}, one...), "pg-outbox source", "outbox table")
	b.fails(exitError, "", append([]string{"emit", "--source", "nope"}, one...), `no source named "nope"`)
}

// TestEmitWriteRefused: when the store refuses the write, emit says so and
// exits non-zero, in both forms. (The one-event form used to print "wrote 1
// event" and exit 0: its error was declared anew inside an if.)
func TestEmitWriteRefused(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "1")
	db, err := sql.Open("sqlite", strings.TrimPrefix(b.url, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse_writes BEFORE INSERT ON bam_buffer BEGIN SELECT RAISE(ABORT, 'writes refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	r := b.fails(exitError, "", []string{"emit", "--source", "orders", "--activity", "A", "--instance", "1", "--kind", "begin"},
		"writes refused by the test")
	if strings.Contains(r.stdout, "wrote") {
		t.Errorf("emit claims a write it did not make: %q", r.stdout)
	}
	r = b.fails(exitError, `{"activity":"A","instance":"1","kind":"begin"}`+"\n", []string{"emit", "--source", "orders", "--file", "-"},
		"writes refused by the test")
	if strings.Contains(r.stdout, "wrote") {
		t.Errorf("emit --file claims a write it did not make: %q", r.stdout)
	}
	if n := len(buffered(t, b.store(), "orders", 1)[0]); n != 0 {
		t.Errorf("%d events buffered, want 0", n)
	}
}

func TestInstanceVocabulary(t *testing.T) {
	b := migrated(t)
	ap := b.applier("apply")
	ap.apply([]event.Event{
		mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin","time":"2026-11-25T10:00:00Z"}`),
		mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"enable-continuation","token":"ship-1","time":"2026-11-25T10:01:00Z"}`),
		mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"end","time":"2026-11-25T10:02:00Z"}`),
		mustDecode(t, `{"activity":"PurchaseOrder","continuation":"ship-1","kind":"update","time":"2026-11-25T10:03:00Z","data":{"Carrier":"UPS"}}`),
		mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"relate","related":{"activity":"Invoice","instance":"INV-7"},"time":"2026-11-25T10:04:00Z"}`),
		mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"reference","reference":{"type":"message","name":"order","value":"msg-1","data":"<order/>"},"time":"2026-11-25T10:05:00Z"}`),
		mustDecode(t, `{"activity":"PurchaseOrder","continuation":"bill-9","kind":"update","time":"2026-11-25T10:06:00Z"}`),
	})

	r := b.ok("instance", "get", "PurchaseOrder", "PO-1")
	for _, want := range []string{
		"Continuations:", "ship-1", "instance PO-1", "2026-11-25 10:01:00Z", "true",
		"Related:", "Invoice", "INV-7",
		"References:", "message", "order", "msg-1", "8 bytes",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("instance get does not show %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(strings.Split(r.stdout, "\n")[1], "active") {
		t.Errorf("PO-1 ended with an open continuation must be active:\n%s", r.stdout)
	}

	r = b.ok("instance", "get", "PurchaseOrder", "PO-1", "--json")
	var got struct {
		Events        int64               `json:"events"`
		Data          map[string]any      `json:"data"`
		Continuations []map[string]any    `json:"continuations"`
		Related       []store.RelatedJSON `json:"related"`
		References    []map[string]any    `json:"references"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("instance get --json: %v\n%s", err, r.stdout)
	}
	wantCont := map[string]any{
		"activity": "PurchaseOrder", "token": "ship-1", "instance": "PO-1",
		"enabled_by_instance": "PO-1", "enabled_by_continuation": nil,
		"enabled_at": "2026-11-25T10:01:00Z", "ended_at": nil, "last_modified": "2026-11-25T10:03:00Z",
		"open": true, "events": 1.0, "pending_events": 0.0,
	}
	if got.Events != 6 || got.Data["Carrier"] != "UPS" || len(got.Continuations) != 1 || !reflect.DeepEqual(got.Continuations[0], wantCont) {
		t.Errorf("instance get --json: events %d, data %v, continuations %v\nwant 6 events, Carrier UPS, %v", got.Events, got.Data, got.Continuations, wantCont)
	}
	wantRef := map[string]any{"type": "message", "name": "order", "value": "msg-1", "data": "<order/>", "time": "2026-11-25T10:05:00Z"}
	if !reflect.DeepEqual(got.Related, []store.RelatedJSON{{Activity: "Invoice", Instance: "INV-7"}}) || len(got.References) != 1 || !reflect.DeepEqual(got.References[0], wantRef) {
		t.Errorf("related %v, references %v", got.Related, got.References)
	}

	// An orphan: events of a token whose enable has not arrived.
	r = b.ok("instance", "continuation", "PurchaseOrder", "bill-9")
	if !strings.Contains(r.stdout, "- (not linked)") || !strings.Contains(r.stdout, "PENDING") {
		t.Errorf("instance continuation of an orphan:\n%s", r.stdout)
	}
	r = b.ok("instance", "continuation", "PurchaseOrder", "bill-9", "--json")
	if !strings.Contains(r.stdout, `"instance": null`) || !strings.Contains(r.stdout, `"pending_events": 1`) {
		t.Errorf("instance continuation --json of an orphan:\n%s", r.stdout)
	}
	r = b.ok("instance", "continuation", "PurchaseOrder", "ship-1")
	if !strings.Contains(r.stdout, "PO-1") {
		t.Errorf("instance continuation of a linked token:\n%s", r.stdout)
	}
	b.fails(exitError, "", []string{"instance", "continuation", "PurchaseOrder", "nope"}, `no continuation "nope" of activity PurchaseOrder`)
}

func TestInstances(t *testing.T) {
	b := migrated(t)
	ap := b.applier("apply")
	ap.apply([]event.Event{
		mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin","time":"2026-11-25T10:00:00Z","data":{"Customer":"Contoso","Amount":1200}}`),
		mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"end","time":"2026-11-25T11:30:00Z","data":{"Approved":true}}`),
		mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-2","kind":"begin","time":"2026-11-25T10:05:00Z"}`),
		mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-3","kind":"update","time":"2026-11-25T10:06:00Z","data":{"Amount":5}}`),
		mustDecode(t, `{"activity":"Claim","instance":"C-1","kind":"begin","time":"2026-11-25T10:06:00Z"}`),
	})

	r := b.ok("instance", "get", "PurchaseOrder", "PO-1")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("instance get:\n%s", r.stdout)
	}
	header := regexp.MustCompile(`\s{2,}`).Split(lines[0], -1)
	if !reflect.DeepEqual(header, []string{"ID", "STATE", "BEGIN", "END", "LAST MODIFIED", "EVENTS", "DATA"}) {
		t.Errorf("header = %q", header)
	}
	row := regexp.MustCompile(`\s{2,}`).Split(lines[1], -1)
	wantRow := []string{"PO-1", "completed", "2026-11-25 10:00:00Z", "2026-11-25 11:30:00Z", "2026-11-25 11:30:00Z", "2", `Amount=1200 Approved=true Customer="Contoso"`}
	if !reflect.DeepEqual(row, wantRow) {
		t.Errorf("row = %q\nwant  %q", row, wantRow)
	}
	if strings.Index(lines[0], "EVENTS") != strings.Index(lines[1], "2 ") {
		t.Errorf("columns not aligned:\n%s", r.stdout)
	}

	r = b.ok("instance", "get", "PurchaseOrder", "PO-1", "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("instance get --json: %v\n%s", err, r.stdout)
	}
	want := map[string]any{
		"activity": "PurchaseOrder", "instance": "PO-1", "state": "completed",
		"begin": "2026-11-25T10:00:00Z", "end": "2026-11-25T11:30:00Z", "last_modified": "2026-11-25T11:30:00Z",
		"events": 2.0, "data": map[string]any{"Amount": 1200.0, "Approved": true, "Customer": "Contoso"},
		"continuations": []any{}, "related": []any{}, "references": []any{}, "archived_at": nil,
		"archived": false, "timeline": []any{}, // no definition deployed: no milestones
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("instance get --json = %v\nwant %v", got, want)
	}

	r = b.ok("instance", "get", "PurchaseOrder", "PO-3", "--json")
	if !strings.Contains(r.stdout, `"state": "pending"`) || !strings.Contains(r.stdout, `"begin": null`) {
		t.Errorf("pending instance:\n%s", r.stdout)
	}
	b.fails(exitError, "", []string{"instance", "get", "PurchaseOrder", "PO-404"}, `no instance "PO-404" of activity PurchaseOrder`)

	ids := func(r result) []string {
		var out []string
		for _, l := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")[1:] {
			out = append(out, strings.Fields(l)[0])
		}
		return out
	}
	if got := ids(b.ok("instance", "list", "PurchaseOrder")); !reflect.DeepEqual(got, []string{"PO-1", "PO-2", "PO-3"}) {
		t.Errorf("instance list = %v", got)
	}
	if got := ids(b.ok("instance", "list", "PurchaseOrder", "--state", "active")); !reflect.DeepEqual(got, []string{"PO-2"}) {
		t.Errorf("instance list --state active = %v", got)
	}
	r = b.ok("instance", "list", "PurchaseOrder", "--limit", "2")
	if got := ids(r); !reflect.DeepEqual(got, []string{"PO-1", "PO-2"}) {
		t.Errorf("instance list --limit 2 = %v", got)
	}
	if !strings.Contains(r.stderr, "next page: --after PO-2") {
		t.Errorf("no paging hint on stderr: %q", r.stderr)
	}
	if got := ids(b.ok("instance", "list", "PurchaseOrder", "--after", "PO-2")); !reflect.DeepEqual(got, []string{"PO-3"}) {
		t.Errorf("instance list --after PO-2 = %v", got)
	}
	r = b.ok("instance", "list", "PurchaseOrder", "--state", "completed", "--json")
	var list []map[string]any
	// The list leaves out what only get reads: continuations, related, references.
	for _, k := range []string{"continuations", "related", "references", "archived_at", "archived", "timeline"} {
		delete(want, k)
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], want) {
		t.Errorf("instance list --json = %v, %v", list, err)
	}
	if r := b.ok("instance", "list", "PurchaseOrder", "--after", "ZZZ", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty list --json = %q", r.stdout)
	}
	if r := b.ok("instance", "list", "PurchaseOrder", "--after", "ZZZ"); r.stdout != "no instances of activity PurchaseOrder\n" {
		t.Errorf("empty list = %q", r.stdout)
	}
	b.fails(exitError, "", []string{"instance", "list", "Nothing", "--json"}, `no activity "Nothing"`)
}

func TestFailed(t *testing.T) {
	b := migrated(t)
	ap := b.applier("orders")
	bad := `{"activity":"PurchaseOrder","instance":"PO-1","kind":"shipped","time":"2026-11-25T10:00:00Z"}`
	ap.apply(nil,
		store.Failure{Reason: `kind: unknown kind "shipped" (known: begin, update, end)`, Payload: []byte(bad)},
		store.Failure{Reason: "malformed JSON", Payload: []byte("\xff\xfe{\"a\"\n")},
	)
	r := b.ok("failed", "list")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], `kind: unknown kind "shipped"`) {
		t.Fatalf("failed list:\n%s", r.stdout)
	}
	fields := strings.Fields(lines[1])
	id1 := fields[0]
	if fields[1] != "orders" || fields[2] != "0" || fields[3] != "0/1" {
		t.Errorf("failed list row = %q", fields)
	}
	id2 := strings.Fields(lines[2])[0]

	r = b.ok("failed", "list", "--json", "--source", "orders")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("failed list --json = %v, %v\n%s", list, err, r.stdout)
	}
	for _, k := range []string{"id", "source", "partition", "position", "reason", "failed_at", "size"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("failed list --json lacks %q: %v", k, list[0])
		}
	}
	b.fails(exitError, "", []string{"failed", "list", "--source", "other"}, `no source named "other"`)
	// The filters the HTTP API has.
	if r := b.ok("failed", "list", "--reason", "malformed", "--source", "orders", "--partition", "0"); !strings.Contains(r.stdout, "malformed JSON") || strings.Contains(r.stdout, "unknown kind") {
		t.Errorf("failed list --reason malformed:\n%s", r.stdout)
	}
	if r := b.ok("failed", "list", "--since", "2999-01-01T00:00:00Z"); r.stdout != "no failed events\n" {
		t.Errorf("failed list --since the future = %q", r.stdout)
	}
	if r := b.ok("failed", "list", "--until", "2999-01-01T00:00:00Z", "--json"); strings.Count(r.stdout, `"id"`) != 2 {
		t.Errorf("failed list --until the future:\n%s", r.stdout)
	}
	// A date alone, as the filter language takes it: its midnight, UTC.
	if r := b.ok("failed", "list", "--since", "2999-01-01"); r.stdout != "no failed events\n" {
		t.Errorf("failed list --since a future date = %q", r.stdout)
	}
	if r := b.ok("failed", "list", "--until", "2999-01-01", "--json"); strings.Count(r.stdout, `"id"`) != 2 {
		t.Errorf("failed list --until a future date:\n%s", r.stdout)
	}
	b.fails(exitUsage, "", []string{"failed", "list", "--since", "yesterday"}, `--since "yesterday"`, "or a date such as 2026-11-25")
	b.fails(exitUsage, "", []string{"failed", "list", "--partition", "1"}, "--partition needs --source")

	r = b.ok("failed", "show", id1)
	for _, want := range []string{`reason\s+kind: unknown kind "shipped"`, `source\s+orders\n`, `partition\s+0\n`, `position\s+0/1\n`, `failed at\s+20\d\d-`, regexp.QuoteMeta(bad)} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("failed show lacks %s:\n%s", want, r.stdout)
		}
	}
	r = b.ok("failed", "show", id2)
	if !strings.Contains(r.stdout, `"\xff\xfe{\"a\"\n"`) || !strings.Contains(r.stdout, "not valid UTF-8") {
		t.Errorf("failed show of non-UTF-8 bytes:\n%s", r.stdout)
	}
	r = b.ok("failed", "show", id2, "--json")
	var one map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || one["payload_base64"] != "//57ImEiCg==" {
		t.Errorf("failed show --json = %v, %v", one, err)
	}

	// Retried as it is: still invalid, kept.
	b.fails(exitError, "", []string{"failed", "retry", id1}, "failed event "+id1+" is still invalid, kept", `kind: unknown kind "shipped"`)
	b.ok("failed", "show", id1)
	// Retried fixed: applied and gone.
	fixed := filepath.Join(b.dir, "fixed.json")
	if err := os.WriteFile(fixed, []byte(strings.Replace(bad, "shipped", "begin", 1)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = b.ok("failed", "retry", id1, "--payload", fixed)
	if !strings.Contains(r.stdout, "applied") {
		t.Errorf("retry printed %q", r.stdout)
	}
	if r := b.ok("instance", "get", "PurchaseOrder", "PO-1", "--json"); !strings.Contains(r.stdout, `"state": "active"`) {
		t.Errorf("retried event not applied:\n%s", r.stdout)
	}
	b.fails(exitError, "", []string{"failed", "show", id1}, "no failed event "+id1)
	// A fixed payload from stdin that is still wrong: not kept, the
	// original bytes stay.
	before := b.ok("failed", "show", id2).stdout
	b.fails(exitError, `{"activity":"PurchaseOrder"}`, []string{"failed", "retry", id2, "--payload", "-"}, "the replacement for failed event "+id2+" is invalid too", "instance: missing", "kept unchanged")
	if after := b.ok("failed", "show", id2).stdout; after != before {
		t.Errorf("an invalid replacement changed the failed event:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	r = b.ok("failed", "discard", id2)
	if r.stdout != "failed event "+id2+" discarded\n" {
		t.Errorf("discard printed %q", r.stdout)
	}
	b.fails(exitError, "", []string{"failed", "discard", id2}, "no failed event "+id2)
	if r := b.ok("failed", "list"); r.stdout != "no failed events\n" {
		t.Errorf("failed list after all = %q", r.stdout)
	}
}

// TestFailedRetryAsTheNodes: a retry holds the event to the settings the
// nodes run with, and gives an event without a time of its own the time it
// was written to its source. (Before, the check used no definitions
// requirement and the default size, and the time was the quarantine's.)
func TestFailedRetryAsTheNodes(t *testing.T) {
	b := migrated(t)
	ap := b.applier("orders")
	written := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	ap.apply(nil,
		store.Failure{Reason: "activity Unknown has no deployed definition", WrittenAt: written,
			Payload: []byte(`{"activity":"Unknown","instance":"U-1","kind":"begin"}`)},
		store.Failure{Reason: "too large", WrittenAt: written,
			Payload: []byte(`{"activity":"Unknown","instance":"U-2","kind":"begin","data":{"Note":"` + strings.Repeat("x", 300) + `"}}`)},
	)
	list, err := ap.st.FailedEvents(context.Background(), "orders", 0)
	if err != nil || len(list) != 2 {
		t.Fatalf("failed events = %v, %v", list, err)
	}
	id1, id2 := fmt.Sprint(list[0].ID), fmt.Sprint(list[1].ID)

	b.fails(exitError, "", []string{"failed", "retry", id1, "--require-definitions"}, "still refused", "Unknown")
	b.ok("failed", "show", id1)
	b.ok("failed", "retry", id1)
	r := b.ok("instance", "get", "Unknown", "U-1", "--json")
	var in struct {
		Begin time.Time `json:"begin"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil || !in.Begin.Equal(written) {
		t.Errorf("retried event began at %v (%v), want its write time %v:\n%s", in.Begin, err, written, r.stdout)
	}

	b.fails(exitError, "", []string{"failed", "retry", id2, "--max-event-size", "200"}, "still invalid", "over the limit of 200")
	// The pool's setting is what the nodes check with: a retry too, unless
	// its own flag says otherwise.
	b.ok("config", "set", "max-event-size", "250")
	b.fails(exitError, "", []string{"failed", "retry", id2}, "still invalid", "over the limit of 250")
	b.ok("failed", "retry", id2, "--max-event-size", "1000")
}

// TestMisspelledNames: a name that names nothing is an error that names it
// and the closest known one, never an empty answer that reads as "nothing
// there". (Before, instance list and failed list answered "no instances" and
// "no failed events", exit 0.)
func TestMisspelledNames(t *testing.T) {
	b := migrated(t)
	ap := b.applier("orders")
	ap.apply([]event.Event{mustDecode(t, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin"}`)})

	b.fails(exitError, "", []string{"instance", "list", "purchaseorder"}, `no activity "purchaseorder"`, "did you mean PurchaseOrder?")
	b.fails(exitError, "", []string{"instance", "list", "Invoice"}, `no activity "Invoice"`)
	b.fails(exitError, "", []string{"instance", "get", "PurchaseOrdr", "PO-1"}, `no activity "PurchaseOrdr"`, "did you mean PurchaseOrder?")
	b.fails(exitError, "", []string{"instance", "get", "PurchaseOrder", "PO-2"}, `no instance "PO-2" of activity PurchaseOrder`)
	if r := b.ok("instance", "list", "PurchaseOrder", "--state", "completed"); !strings.Contains(r.stdout, "no completed instances of activity PurchaseOrder") {
		t.Errorf("a known activity without completed instances: %q", r.stdout)
	}
	b.fails(exitError, "", []string{"failed", "list", "--source", "order"}, `no source named "order"`, "did you mean orders?")
	if r := b.ok("failed", "list", "--source", "orders"); r.stdout != "no failed events\n" {
		t.Errorf("failed list of a known source = %q", r.stdout)
	}
	b.fails(exitError, "", []string{"emit", "--source", "ordres", "--activity", "A", "--instance", "1", "--kind", "begin"},
		`no source named "ordres"`, "did you mean orders?")
	b.fails(exitUsage, "", []string{"stauts"}, `unknown command "stauts"`, "did you mean status?")
	b.fails(exitUsage, "", []string{"source", "lst"}, `unknown command "lst"`, "did you mean list?")

	// An activity with instances but no definition is listed too.
	if r := b.ok("activity", "list"); !strings.Contains(r.stdout, "with instances but no deployed definition") || !strings.Contains(r.stdout, "PurchaseOrder") {
		t.Errorf("activity list does not show the undeployed activity:\n%s", r.stdout)
	}
	var acts []map[string]any
	if err := json.Unmarshal([]byte(b.ok("activity", "list", "--json").stdout), &acts); err != nil || len(acts) != 1 || acts[0]["name"] != "PurchaseOrder" || acts[0]["deployed"] != false {
		t.Errorf("activity list --json = %v, %v", acts, err)
	}
}

// TestStatusShowsOutstandingFailures: FAILED counts the failed events still
// kept, not every event ever quarantined; --json gives both. (Before, it
// stayed at its running total after every failed event was retried or
// discarded.)
func TestStatusShowsOutstandingFailures(t *testing.T) {
	b := migrated(t)
	ap := b.applier("orders")
	ap.apply(nil,
		store.Failure{Reason: "malformed JSON", Payload: []byte(`{"x":`)},
		store.Failure{Reason: "malformed JSON", Payload: []byte(`{"y":`)},
	)
	failed := func() (outstanding, total float64) {
		t.Helper()
		var s struct {
			Sessions []map[string]any `json:"sessions"`
		}
		if err := json.Unmarshal([]byte(b.ok("status", "--json").stdout), &s); err != nil || len(s.Sessions) != 1 {
			t.Fatalf("status --json: %v, %+v", err, s)
		}
		return s.Sessions[0]["failed"].(float64), s.Sessions[0]["failed_total"].(float64)
	}
	if o, tot := failed(); o != 2 || tot != 2 {
		t.Fatalf("failed %v, total %v; want 2 and 2", o, tot)
	}
	list, err := ap.st.FailedEvents(context.Background(), "orders", 0)
	if err != nil || len(list) != 2 {
		t.Fatalf("failed events: %v, %v", list, err)
	}
	for _, f := range list {
		b.ok("failed", "discard", fmt.Sprint(f.ID))
	}
	if o, tot := failed(); o != 0 || tot != 2 {
		t.Fatalf("after discarding both: failed %v, total %v; want 0 and 2", o, tot)
	}
}

// TestFailedInBulk: failed events are retried or discarded by filter, after
// a count and a confirmation, and the list shows each one's activity and
// instance. (Before: one ID at a time, and no activity in the list.)
func TestFailedInBulk(t *testing.T) {
	b := migrated(t)
	ap := b.applier("orders")
	refused := func(instance string) store.Failure {
		return store.Failure{Reason: "item Rush: not deployed yet", Payload: []byte(`{"activity":"PurchaseOrder","instance":"` + instance + `","kind":"begin"}`)}
	}
	ap.apply(nil, refused("PO-1"), refused("PO-2"), refused("PO-3"),
		store.Failure{Reason: "malformed JSON", Payload: []byte(`{"activity":`)},
		store.Failure{Reason: "kind: unknown", Payload: []byte(`{"activity":"Shipment","continuation":"ship-1","kind":"x"}`)})

	r := b.ok("failed", "list")
	if !regexp.MustCompile(`PurchaseOrder\s+PO-2\s+item Rush`).MatchString(r.stdout) || !regexp.MustCompile(`Shipment\s+~ship-1\s`).MatchString(r.stdout) {
		t.Errorf("failed list lacks activity and instance:\n%s", r.stdout)
	}

	// Not confirmed: nothing happens.
	r = b.fails(exitError, "n\n", []string{"failed", "retry", "--activity", "PurchaseOrder"}, "not confirmed")
	if !strings.Contains(r.stdout, `3 failed events match --activity "PurchaseOrder": retry them? [y/N]`) {
		t.Errorf("retry did not say how many it would retry:\n%s", r.stdout)
	}
	if n := len(mustFailed(t, ap.st)); n != 5 {
		t.Fatalf("%d failed events after a refused confirmation, want 5", n)
	}
	// Confirmed: all three applied.
	r = b.run("y\n", "failed", "retry", "--activity", "PurchaseOrder", "--reason", "not deployed")
	if r.code != 0 || !strings.Contains(r.stdout, "applied 3 failed events; 0 still failed") {
		t.Fatalf("bulk retry: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, id := range []string{"PO-1", "PO-2", "PO-3"} {
		b.ok("instance", "get", "PurchaseOrder", id)
	}
	// What stays invalid is kept and counted; --yes does not ask.
	r = b.fails(exitError, "", []string{"failed", "retry", "--all", "--yes"}, "2 failed events still failed")
	if !strings.Contains(r.stdout, "applied 0 failed events; 2 still failed") {
		t.Errorf("bulk retry of invalid events:\n%s", r.stdout)
	}
	b.fails(exitUsage, "", []string{"failed", "retry"}, "give a failed event's ID, or filters")
	b.fails(exitUsage, "", []string{"failed", "retry", "1", "--all"}, "not both")
	b.fails(exitUsage, "", []string{"failed", "retry", "--all", "--payload", "x.json"}, "--payload replaces one event")
	b.fails(exitError, "", []string{"failed", "discard", "--source", "ordres", "--yes"}, `no source named "ordres"`, "did you mean orders?")
	r = b.ok("failed", "discard", "--source", "orders", "--yes")
	if !strings.Contains(r.stdout, "discarded 2 failed events") {
		t.Errorf("bulk discard: %s", r.stdout)
	}
	if n := len(mustFailed(t, ap.st)); n != 0 {
		t.Fatalf("%d failed events left, want 0", n)
	}
	if r := b.ok("failed", "discard", "--all", "--yes"); !strings.Contains(r.stdout, "no failed events match --all") {
		t.Errorf("bulk discard of nothing: %s", r.stdout)
	}

	// One event: "1 failed event matches", and a retry and a discard by
	// id are in the audit log too.
	ap.apply(nil, refused("PO-4"), store.Failure{Reason: "malformed JSON", Payload: []byte(`{"activity":`)})
	r = b.fails(exitError, "n\n", []string{"failed", "retry", "--activity", "PurchaseOrder"}, "not confirmed")
	if !strings.Contains(r.stdout, `1 failed event matches --activity "PurchaseOrder": retry it? [y/N]`) {
		t.Errorf("retry of one:\n%s", r.stdout)
	}
	list := mustFailed(t, ap.st)
	b.ok("failed", "retry", strconv.FormatInt(list[0].ID, 10))
	b.ok("failed", "discard", strconv.FormatInt(list[1].ID, 10))
	audit := b.audit()
	var got []string
	for _, e := range audit {
		got = append(got, e.Action+" "+e.Target+": "+e.Detail)
	}
	want := []string{
		"failed discard " + strconv.FormatInt(list[1].ID, 10) + ": ",
		"failed retry " + strconv.FormatInt(list[0].ID, 10) + ": applied",
		"failed discard --source \"orders\": 2 discarded",
		"failed retry --all: 0 applied, 2 still failed",
		`failed retry --activity "PurchaseOrder" --reason "not deployed": 3 applied, 0 still failed`,
	}
	if len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("audit log, the latest first:\n%s\nwant first:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func mustFailed(t *testing.T, st store.Store) []store.FailedEvent {
	t.Helper()
	list, err := st.FailedEvents(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func TestStatusJSON(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "src2", "--kind", "buffer", "--partitions", "2")
	ap := b.applier("src1") // joins node test-node and owns src1/0
	b.ok("emit", "--source", "src2", "--activity", "A", "--instance", "I-1", "--kind", "begin")
	ap.apply([]event.Event{mustDecode(t, `{"activity":"A","instance":"I-0","kind":"begin"}`)})
	if err := ap.st.RecordError(context.Background(), ap.lease, "test-node", "source unreachable"); err != nil {
		t.Fatal(err)
	}

	r := b.ok("status", "--json")
	var s struct {
		Nodes    []map[string]any `json:"nodes"`
		Sessions []map[string]any `json:"sessions"`
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if len(s.Nodes) != 1 || len(s.Sessions) != 3 {
		t.Fatalf("status --json: %d nodes, %d sessions\n%s", len(s.Nodes), len(s.Sessions), r.stdout)
	}
	keys := func(m map[string]any) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		sort.Strings(k)
		return k
	}
	if got, want := keys(s.Nodes[0]), []string{"heartbeat_age_ms", "heartbeat_at", "host", "id", "name", "pid", "started_at", "state"}; !reflect.DeepEqual(got, want) {
		t.Errorf("node keys = %v, want %v", got, want)
	}
	if s.Nodes[0]["id"] != "test-node" || s.Nodes[0]["name"] != "tester" || s.Nodes[0]["state"] != "running" {
		t.Errorf("node = %v", s.Nodes[0])
	}
	var order []string
	for _, se := range s.Sessions {
		order = append(order, fmt.Sprintf("%v/%v", se["source"], se["partition"]))
	}
	if !reflect.DeepEqual(order, []string{"src1/0", "src2/0", "src2/1"}) {
		t.Errorf("sessions order = %v", order)
	}
	for _, k := range []string{"source", "partition", "kind", "enabled", "owner", "owner_name", "epoch", "lease_remaining_ms", "checkpoint", "backlog", "applied", "failed", "last_error", "last_error_at"} {
		if _, ok := s.Sessions[0][k]; !ok {
			t.Errorf("session lacks %q: %v", k, s.Sessions[0])
		}
	}
	src1 := s.Sessions[0]
	if src1["owner"] != "test-node" || src1["owner_name"] != "tester" || src1["epoch"] != 1.0 || src1["applied"] != 1.0 ||
		src1["last_error"] != "source unreachable" || src1["last_error_at"] == nil || src1["lease_remaining_ms"].(float64) <= 0 {
		t.Errorf("src1/0 = %v", src1)
	}
	var backlog float64
	for _, se := range s.Sessions[1:] {
		backlog += se["backlog"].(float64)
		if se["owner"] != "" {
			t.Errorf("free session shows owner %v", se["owner"])
		}
	}
	if backlog != 1 {
		t.Errorf("src2 backlog = %v, want 1", backlog)
	}

	// A node silent for longer than --lease-ttl is silent, not dead: it
	// is still a member (it was not found dead), and may only be paused.
	time.Sleep(5 * time.Millisecond) // its heartbeat older than the 1ms TTL below, on the store's clock
	r = b.ok("status", "--json", "--lease-ttl", "1ms")
	if !strings.Contains(r.stdout, `"state": "silent"`) {
		t.Errorf("status --lease-ttl 1ms does not show the node silent:\n%s", r.stdout)
	}

	// The human form: two headed, aligned tables.
	r = b.ok("status")
	for _, want := range []string{"NODES", "SESSIONS", "test-node (tester)", "source unreachable (since ", "HEARTBEAT", "BACKLOG"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestStatusShowsGoneNodes: a node found dead, or that left, is shown as
// gone, with when and why, and the sessions it still owns say so. (Before,
// a node found dead vanished from status at once.)
func TestStatusShowsGoneNodes(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "1")
	st := b.store()
	ctx := context.Background()
	for _, n := range []store.NodeRow{
		{ID: "aaaa", Name: "alpha", Host: "h1", PID: 11, StartedAt: time.Now(), State: store.NodeRunning},
		{ID: "bbbb", Name: "beta", Host: "h2", PID: 22, StartedAt: time.Now(), State: store.NodeRunning},
		{ID: "cccc", Name: "gamma", Host: "h3", PID: 33, StartedAt: time.Now(), State: store.NodeRunning},
	} {
		if err := st.Join(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Claim(ctx, store.SessionID{Source: "orders"}, "bbbb", "", time.Minute); err != nil {
		t.Fatal(err)
	}
	why := "its liveness lock was released with its connection, and it had not heartbeat since (its last heartbeat 120ms before)"
	if err := st.ForgetNode(ctx, "bbbb", store.Departure{FoundDeadBy: "aaaa", Why: why}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // SQLite's clock counts milliseconds: gamma goes later
	if err := st.Leave(ctx, "cccc"); err != nil {
		t.Fatal(err)
	}

	s := readStatusJSON(t, b)
	if len(s.Nodes) != 1 || s.Nodes[0].ID != "aaaa" {
		t.Errorf("status nodes = %+v, want alpha alone", s.Nodes)
	}
	if len(s.Gone) != 2 {
		t.Fatalf("status gone = %+v, want gamma and beta", s.Gone)
	}
	left, dead := s.Gone[0], s.Gone[1]
	if left.ID != "cccc" || left.Name != "gamma" || left.FoundDeadBy != "" || left.Why != store.DepartedCleanly || left.GoneAt == nil {
		t.Errorf("gone gamma = %+v, want left cleanly", left)
	}
	if dead.ID != "bbbb" || dead.Host != "h2" || dead.PID != 22 || dead.FoundDeadBy != "aaaa" || dead.FoundDeadByName != "alpha" ||
		dead.Why != why || dead.GoneAt == nil || dead.HeartbeatAt == nil || dead.GoneAgeMS < 0 || dead.GoneAgeMS > 10000 {
		t.Errorf("gone beta = %+v, want found dead by alpha", dead)
	}
	// A record for people: beta's session is still beta's, its lease running.
	if se := s.Sessions[0]; se.Owner != "bbbb" || se.OwnerName != "beta" || !se.OwnerGone || se.LeaseRemainingMS <= 0 {
		t.Errorf("beta's session = %+v", se)
	}

	r := b.ok("status")
	for _, want := range []string{
		"GONE (nodes that left the pool or were found dead in the last 10m0s)",
		"found dead by aaaa (alpha)",
		"bbbb: " + why,
		"cccc: " + store.DepartedCleanly,
		"bbbb (beta, gone)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if !regexp.MustCompile(`cccc\s+gamma\s+h3\s+33\s+\S+ ago\s+\S+ ago\s+left\n`).MatchString(r.stdout) {
		t.Errorf("status does not show gamma as left:\n%s", r.stdout)
	}
}

func TestStatusUnreachableOutbox(t *testing.T) {
	b := migrated(t)
	// Port 1 on loopback refuses at once.
	b.ok("source", "add", "shop", "--kind", "pg-outbox", "--partitions", "1", "--dsn", "postgres://app:s3cret@127.0.0.1:1/shop")
	start := time.Now()
	r := b.ok("status", "--json")
	if time.Since(start) > 10*time.Second {
		t.Errorf("status took %v with an unreachable outbox", time.Since(start))
	}
	if strings.Contains(r.stdout, "s3cret") {
		t.Errorf("status shows the outbox password:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, `"backlog": null`) || !strings.Contains(r.stdout, `"backlog_error": "`) {
		t.Errorf("unreachable outbox backlog:\n%s", r.stdout)
	}
	r = b.ok("status")
	if !regexp.MustCompile(`shop\s+0\s+-\s+0\s+-\s+0/0\s+\?`).MatchString(r.stdout) {
		t.Errorf("status does not show the backlog as ?:\n%s", r.stdout)
	}
}

func TestServe(t *testing.T) {
	t.Run("refuses an unmigrated store", func(t *testing.T) {
		b := newBench(t)
		st := b.store() // creates an empty database file
		_ = st
		b.fails(exitError, "", []string{"serve"}, "not starting the node", "bam migrate")
	})

	t.Run("refuses a store URL it cannot use, at once", func(t *testing.T) {
		// A URL that can never open is not a store that is down: waiting
		// for it would leave a node retrying for ever.
		for _, url := range []string{"/var/lib/bam/bam.db", "postgres://bam@127.0.0.1:5432/bam?pool_max_conns=many"} {
			b := newBench(t)
			b.url = url
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			r := b.runCtx(ctx, "", "serve")
			waited := ctx.Err()
			cancel()
			if r.code != exitError || waited != nil || strings.Contains(r.stderr, "waiting for it") {
				t.Errorf("serve --store %s: exit %d (context %v), want %d at once\nstderr:\n%s", url, r.code, waited, exitError, r.stderr)
			}
			if !strings.Contains(r.stderr, "not starting the node") {
				t.Errorf("serve --store %s does not say it is not starting:\n%s", url, r.stderr)
			}
		}
	})

	t.Run("moves events and stops cleanly", func(t *testing.T) {
		b := migrated(t)
		b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "2")
		b.ok("emit", "--source", "orders", "--activity", "A", "--instance", "I-1", "--kind", "begin", "--data", "Amount=3")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan result, 1)
		go func() {
			done <- b.runCtx(ctx, "", "serve", "--name", "inproc", "--log-format", "json", "--poll-interval", "50ms")
		}()
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := b.run("", "instance", "get", "A", "I-1", "--json")
			if r.code == 0 && strings.Contains(r.stdout, `"Amount": 3`) {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				res := <-done
				t.Fatalf("the event was not applied within 15s; serve exit %d, log:\n%s", res.code, res.stderr)
			}
			time.Sleep(20 * time.Millisecond) // polls a running serve; on failure the loop shows its log
		}
		cancel()
		var r result
		select {
		case r = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not stop within 20s of its context ending")
		}
		if r.code != 0 {
			t.Fatalf("serve exit %d, log:\n%s", r.code, r.stderr)
		}
		var last map[string]any
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
			t.Fatalf("last log line is not JSON: %v\n%s", err, r.stderr)
		}
		if msg, _ := last["msg"].(string); !regexp.MustCompile(`^bam serve: node [0-9a-f]+ stopped$`).MatchString(msg) {
			t.Errorf("last log line = %v", last)
		}
		if s := b.ok("status", "--json"); !strings.Contains(s.stdout, `"nodes": []`) {
			t.Errorf("the node did not leave the pool:\n%s", s.stdout)
		}
		// It is shown as gone, having left cleanly.
		if s := readStatusJSON(t, b); len(s.Gone) != 1 || s.Gone[0].Name != "inproc" || s.Gone[0].FoundDeadBy != "" || s.Gone[0].Why != store.DepartedCleanly {
			t.Errorf("status gone = %+v, want inproc, left cleanly", s.Gone)
		}
	})
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db":                 "postgres://u:xxxxx@h:5432/db",
		"postgresql://h/db?password=pw&sslmode=off": "postgresql://h/db?password=xxxxx&sslmode=off",
		"host=h password=pw dbname=d":               "host=h password=xxxxx dbname=d",
		"host=h password = 'p w\\'x' dbname=d":      "host=h password = xxxxx dbname=d",
		"host=h PASSWORD=pw":                        "host=h PASSWORD=xxxxx",
		"postgres://u@h/db":                         "postgres://u@h/db",
		"":                                          "",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseData(t *testing.T) {
	got, err := parseData([]string{"N=12.5", "S=hello world", "Q=\"x\"", "B=false", "Z=null", "E=", "J={not json"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"N": "12.5", "S": `"hello world"`, "Q": `"x"`, "B": "false", "Z": "null", "E": `""`, "J": `"{not json"`}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
	if _, err := parseData([]string{"A=1", "A=2"}); err == nil {
		t.Errorf("a repeated name was accepted")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1234567 * time.Microsecond:                   "1.2s",
		350 * time.Millisecond:                       "350ms",
		252 * time.Second:                            "4m12s",
		3*time.Hour + 5*time.Minute + 10*time.Second: "3h5m",
		-1500 * time.Millisecond:                     "-1.5s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo starts real processes; skipped with -short")
	}
	t.Setenv(runAsBam, "1") // the nodes are this test binary, acting as bam
	b := newBench(t)
	dir := filepath.Join(b.dir, "demo")
	r := b.run("", "demo", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"node-1 | ", "node-2 | ", "node-1 owns both sessions", "each node owns one",
		"node-2 owns both sessions", "applied exactly once", "(lost 0, doubled 0)", "node-2 stopped cleanly",
		"bam instance list PurchaseOrder --store sqlite:" + filepath.ToSlash(dir) + "/bam.db",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", r.stdout)
	}
	// The store is left to explore; a directory with other files is refused.
	b.url = "sqlite:" + filepath.Join(dir, "bam.db")
	if r := b.ok("instance", "list", "PurchaseOrder", "--state", "completed", "--limit", "1"); !strings.Contains(r.stdout, "completed") {
		t.Errorf("no completed instance left by the demo:\n%s", r.stdout)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.fails(exitError, "", []string{"demo", "--dir", dir}, "notes.txt", "--dir")
}

func TestPostgresOutbox(t *testing.T) {
	b := newBench(t)
	b.url = testpg.NewDatabase(t)
	app := testpg.NewDatabase(t)
	if r := b.ok("migrate"); !strings.Contains(r.stdout, "migrated from version 0 to") {
		t.Errorf("migrate printed %q", r.stdout)
	}
	b.ok("source", "add", "shop", "--kind", "pg-outbox", "--partitions", "2", "--dsn", app, "--table", "public.orders_outbox")
	r := b.ok("source", "install-outbox", "shop")
	for _, want := range []string{"installed outbox table public.orders_outbox", `INSERT INTO "public"."orders_outbox" (instance_id, event) VALUES ($1, $2);`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("install-outbox lacks %q:\n%s", want, r.stdout)
		}
	}
	b.ok("source", "install-outbox", "shop") // idempotent

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, id := range []string{"PO-1", "PO-2", "PO-3"} {
		ev := fmt.Sprintf(`{"activity":"PurchaseOrder","instance":%q,"kind":"begin"}`, id)
		if _, err := conn.Exec(ctx, `INSERT INTO public.orders_outbox (instance_id, event) VALUES ($1, $2)`, id, ev); err != nil {
			t.Fatal(err)
		}
	}
	r = b.ok("status", "--json")
	var s struct {
		Sessions []struct {
			Source       string `json:"source"`
			Backlog      *int64 `json:"backlog"`
			BacklogError string `json:"backlog_error"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.Sessions) != 2 {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	var total int64
	for _, se := range s.Sessions {
		if se.Backlog == nil {
			t.Fatalf("backlog of %s not counted: %s", se.Source, se.BacklogError)
		}
		total += *se.Backlog
	}
	if total != 3 {
		t.Errorf("outbox backlog = %d, want 3", total)
	}
}

func TestDemoStartsOverOnlyOverAPreviousDemo(t *testing.T) {
	dir := t.TempDir()
	if cleared, err := prepareDemoDir(filepath.Join(dir, "missing")); err != nil || cleared {
		t.Fatalf("a missing directory: cleared %v, %v", cleared, err)
	}
	for _, name := range []string{"bam.db", "bam.db-wal", "bam.db-shm"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "bam.db-nodes"), 0o755); err != nil {
		t.Fatal(err)
	}
	cleared, err := prepareDemoDir(dir)
	if err != nil || !cleared {
		t.Fatalf("a previous demo's directory: cleared %v, %v", cleared, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := prepareDemoDir(dir); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("a directory with other files: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("the other file was touched: %v", err)
	}
}

// TestEmitChecksWithThePoolsSettings: emit checks events with the pool's
// max-event-size and require-definitions (bam config), as the nodes do,
// unless its own flag, variable or file key says otherwise. Before, it
// used the built-in defaults: an event over the pool's limit was written,
// and the node quarantined it.
func TestEmitChecksWithThePoolsSettings(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "1")
	b.ok("config", "set", "max-event-size", "120")
	big := []string{"emit", "--source", "orders", "--activity", "PurchaseOrder", "--instance", "PO-1042", "--kind", "begin",
		"--time", "2026-11-25T10:00:00Z", "--data", "Customer=Contoso Pharmaceuticals"}
	b.fails(exitError, "", big, "event refused", "bytes as written", "over the limit of 120")
	b.ok(append(big, "--max-event-size", "1000")...)
	b.env["BAM_MAX_EVENT_SIZE"] = "1000"
	b.ok(big...)
	delete(b.env, "BAM_MAX_EVENT_SIZE")

	// A line under the limit that is over it as written, once given its
	// time, is refused too: the node would see the larger one.
	line := `{"activity":"PurchaseOrder","instance":"PO-1043","kind":"begin","data":{"Customer":"Contoso"}}`
	if len(line) > 120 {
		t.Fatalf("the test line is %d bytes, over the limit", len(line))
	}
	b.fails(exitError, line+"\n", []string{"emit", "--source", "orders", "--file", "-"}, "line 1: event is", "bytes as written", "refused 1 line")
	if n := len(buffered(t, b.store(), "orders", 1)[0]); n != 2 {
		t.Errorf("buffered %d events, want the 2 given a larger limit", n)
	}

	b.ok("config", "set", "require-definitions", "true")
	invoice := []string{"emit", "--source", "orders", "--activity", "Invoice", "--instance", "INV-1", "--kind", "begin"}
	b.fails(exitError, "", invoice, `activity "Invoice" is not deployed`)
	b.ok(append(invoice, "--require-definitions=false")...)
}

// TestEmitRefusedLinesKeptToSendAlone: emit --refused FILE keeps the lines
// it refused, as they were read (an oversize one whole), to fix and send
// alone; sending that file with --refused naming it again keeps what is
// still refused. Every refusal says not to send the input again: its good
// lines are written, and a fixed input has other idempotency keys, so
// they would be written twice.
func TestEmitRefusedLinesKeptToSendAlone(t *testing.T) {
	b := migrated(t)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "1")
	good := func(i int) string { return fmt.Sprintf(`{"activity":"A","instance":"I-%d","kind":"begin"}`, i) }
	huge := fmt.Sprintf(`{"activity":"A","instance":"X","kind":"begin","data":{"Pad":"%s"}}`, strings.Repeat("x", 100_000))
	justOver := fmt.Sprintf(`{"activity":"A","instance":"Y","kind":"begin","data":{"Pad":"%s"}}`, strings.Repeat("y", 2000-63))
	if len(justOver) != 2001 {
		t.Fatalf("justOver is %d bytes, want 2001", len(justOver))
	}
	input := strings.Join([]string{good(1), `{"activity":"A","instance":"I-2","kind":"begn"}`, huge, good(3), `not json`, good(4), justOver}, "\n") // no end of line after the last
	in := filepath.Join(b.dir, "events.ndjson")
	writeFile(t, in, input)
	refused := filepath.Join(b.dir, "refused.ndjson")
	emit := []string{"emit", "--source", "orders", "--max-event-size", "2000", "--file"}

	b.fails(exitError, "", append(emit, in), "refused 4 lines (see above); the other 3 events are written",
		"not this input again, which would write its good lines twice", "--refused FILE keeps the refused lines")
	r := b.fails(exitError, "", append(emit, in, "--refused", refused), "refused 4 lines (see above), kept in "+refused,
		"the other 3 events are written", "fix "+refused+" and send it alone (bam emit --source orders --file "+refused+")")
	if strings.Contains(r.stdout, "wrote 3") || !strings.Contains(r.stdout, "3 events an earlier run of this input wrote skipped") {
		t.Errorf("the unchanged input, sent again, says %q", r.stdout)
	}
	kept, err := os.ReadFile(refused)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{`{"activity":"A","instance":"I-2","kind":"begn"}`, huge, `not json`, justOver}, "\n") + "\n"
	if string(kept) != want {
		t.Errorf("the refused file holds %d bytes, want the 4 refused lines as read (%d bytes):\n%.300s", len(kept), len(want), kept)
	}

	// Fix one line in place and send the file again, keeping in it what
	// is still refused.
	writeFile(t, refused, strings.Replace(string(kept), `"begn"`, `"begin"`, 1))
	b.fails(exitError, "", append(emit, refused, "--refused", refused), "refused 3 lines", "the other 1 event is written")
	if kept, _ := os.ReadFile(refused); string(kept) != strings.Join([]string{huge, `not json`, justOver}, "\n")+"\n" {
		t.Errorf("after the second run, the refused file holds:\n%.300s", kept)
	}
	if n := len(buffered(t, b.store(), "orders", 1)[0]); n != 4 {
		t.Errorf("buffered %d events, want the 4 good ones, each once", n)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(b.dir, ".refused.ndjson.*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// Nothing refused: the file is emptied, not left with old lines.
	b.ok("emit", "--source", "orders", "--file", "-", "--refused", refused, "--again")
	if kept, err := os.ReadFile(refused); err != nil || len(kept) != 0 {
		t.Errorf("with nothing refused, the refused file holds %q (%v)", kept, err)
	}
	b.fails(exitUsage, "", []string{"emit", "--source", "orders", "--activity", "A", "--instance", "1", "--kind", "begin", "--refused", refused},
		"--refused goes with --file")
}
