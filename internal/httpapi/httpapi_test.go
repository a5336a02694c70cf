package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/health"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/store/sqlite"
	"github.com/bam-dev/bam/internal/testpg"
	"github.com/bam-dev/bam/internal/testwait"
)

// bundle is an API over a migrated store with three sources: orders (a
// buffer of 2 partitions), app (a pg-outbox) and off (a disabled buffer).
type bundle struct {
	st  store.Store
	srv *httptest.Server
	dir string
	ctx context.Context
}

type setupOpt func(*Config)

func setup(t *testing.T, opts ...setupOpt) *bundle {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "bam.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return setupOn(t, st, dir, opts...)
}

func setupOn(t *testing.T, st store.Store, dir string, opts ...setupOpt) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	for _, src := range []store.Source{
		{Name: "orders", Kind: store.KindBuffer, Partitions: 2, Enabled: true},
		{Name: "app", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true, DSN: "postgres://app:s3cret@db/app", Table: "bam_outbox"},
		{Name: "off", Kind: store.KindBuffer, Partitions: 1, Enabled: false},
	} {
		if err := st.AddSource(ctx, src); err != nil {
			t.Fatalf("add source %s: %v", src.Name, err)
		}
	}
	var cfg Config
	for _, o := range opts {
		o(&cfg)
	}
	srv := httptest.NewServer(New(st, cfg, slog.New(slog.DiscardHandler)).Handler())
	t.Cleanup(srv.Close)
	return &bundle{st: st, srv: srv, dir: dir, ctx: ctx}
}

// response is what a request got.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func (r response) result(t *testing.T) ingestResult {
	t.Helper()
	var res ingestResult
	if err := json.Unmarshal(r.body, &res); err != nil || res.Rejected == nil {
		t.Fatalf("body is not an ingest result (rejected must be an array): %v\n%s", err, r.body)
	}
	return res
}

func (b *bundle) do(t *testing.T, method, path string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(b.ctx, method, b.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	yaml := res.StatusCode == http.StatusOK && strings.HasPrefix(path, "/v1/definitions") // the export
	// The probes answer as Kubernetes' own do, in lines of text.
	text := strings.HasPrefix(path, "/livez") || strings.HasPrefix(path, "/readyz")
	if ct := res.Header.Get("Content-Type"); len(got) > 0 && ct != "application/json" && !(yaml && ct == "application/yaml") &&
		!(text && ct == "text/plain; charset=utf-8") {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return response{res.StatusCode, res.Header, got}
}

// post posts body to a source's events with a Content-Type and more
// headers.
func (b *bundle) post(t *testing.T, source, contentType, body string, header ...string) response {
	t.Helper()
	return b.do(t, http.MethodPost, "/v1/sources/"+source+"/events", strings.NewReader(body), append([]string{"Content-Type", contentType}, header...)...)
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
}

// wantError checks an error response: its status and that its message
// holds every want.
func wantError(t *testing.T, r response, status int, want ...string) map[string]any {
	t.Helper()
	wantStatus(t, r, status)
	m := r.json(t)
	msg, _ := m["error"].(string)
	if msg == "" {
		t.Fatalf("error body without an error message: %s", r.body)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
	return m
}

// buffered returns the events in a source's buffer, decoded, in buffer
// order per partition.
func (b *bundle) buffered(t *testing.T, source string, partitions int) []event.Event {
	t.Helper()
	var out []event.Event
	for p := 0; p < partitions; p++ {
		recs, _, err := b.st.ReadBuffer(b.ctx, store.SessionID{Source: source, Partition: p}, store.Position{}, 100000)
		if err != nil {
			t.Fatalf("read buffer: %v", err)
		}
		for _, r := range recs {
			ev, err := event.Decode(r.Payload, r.WrittenAt, 0)
			if err != nil {
				t.Fatalf("buffered event %s: %v", r.Payload, err)
			}
			if want := event.Partition(ev.Instance, partitions); want != p {
				t.Errorf("event of %s is in partition %d, want %d", ev.Instance, p, want)
			}
			out = append(out, ev)
		}
	}
	return out
}

func instances(evs []event.Event) map[string]event.Event {
	m := map[string]event.Event{}
	for _, e := range evs {
		m[e.Instance] = e
	}
	return m
}

const (
	okEvent  = `{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin","time":"2026-11-25T10:00:00Z","data":{"Amount":1200}}`
	okEvent2 = `{"activity":"PurchaseOrder","instance":"PO-2","kind":"update","data":{"Customer":"Contoso"}}`
	badData  = `{"activity":"PurchaseOrder","instance":"PO-3","kind":"update","data":{"Amount":{"v":1}}}`
	badKind  = `{"activity":"PurchaseOrder","instance":"PO-4","kind":"bogus"}`
)

// TestIngestRefusesWhatAStoreRefuses: a number beyond what every store
// holds and text that is not UTF-8 are rejected one by one, naming the
// field, in a JSON array as in NDJSON; the good events beside them are
// written. Before, they were accepted, and PostgreSQL then refused their
// batch on every retry, blocking the partition.
func TestIngestRefusesWhatAStoreRefuses(t *testing.T) {
	bad := []struct{ event, field, says string }{
		{`{"activity":"PurchaseOrder","instance":"PO-3","kind":"update","data":{"Amount":1e200000}}`, "data.Amount", "number 1e200000 is beyond"},
		{`{"activity":"PurchaseOrder","instance":"PO-4","kind":"update","data":{"Amount":1e-20000}}`, "data.Amount", "digits after the decimal point"},
		{`{"activity":"PurchaseOrder","instance":"PO-5","kind":"update","data":{"Customer":"Cont` + "\xff" + `so"}}`, "data.Customer", "valid UTF-8"},
		{`{"activity":"PurchaseOrder","instance":"PO-` + "\xff" + `","kind":"begin"}`, "instance", "valid UTF-8"},
	}
	check := func(t *testing.T, b *bundle, r response, lines bool) {
		t.Helper()
		wantStatus(t, r, http.StatusOK)
		res := r.result(t)
		if res.Accepted != 2 || len(res.Rejected) != len(bad) {
			t.Fatalf("result = %+v; want 2 accepted, %d rejected", res, len(bad))
		}
		for i, rej := range res.Rejected {
			want := bad[i]
			if rej.Index != i+1 || rej.Field != want.field || !strings.Contains(rej.Error, want.says) || (lines && rej.Line != i+2) {
				t.Errorf("rejection %d = %+v; want index %d, field %s, error saying %q", i, rej, i+1, want.field, want.says)
			}
		}
		if got := instances(b.buffered(t, "orders", 2)); len(got) != 2 || got["PO-1"].Instance == "" || got["PO-2"].Instance == "" {
			t.Fatalf("buffered = %+v; want PO-1 and PO-2", got)
		}
	}
	events := []string{okEvent}
	for _, e := range bad {
		events = append(events, e.event)
	}
	events = append(events, okEvent2)
	t.Run("json", func(t *testing.T) {
		b := setup(t)
		check(t, b, b.post(t, "orders", "application/json", "["+strings.Join(events, ",\n")+"]"), false)
	})
	t.Run("ndjson", func(t *testing.T) {
		b := setup(t)
		check(t, b, b.post(t, "orders", "application/x-ndjson", strings.Join(events, "\n")+"\n"), true)
	})
}

func TestIngestJSON(t *testing.T) {
	b := setup(t)
	before := time.Now()
	r := b.post(t, "orders", "application/json", "[\n"+okEvent+",\n"+badData+",\n"+okEvent2+"\n]")
	wantStatus(t, r, http.StatusOK)
	res := r.result(t)
	if res.Accepted != 2 || len(res.Rejected) != 1 {
		t.Fatalf("result = %+v; want 2 accepted, 1 rejected", res)
	}
	if rej := res.Rejected[0]; rej.Index != 1 || rej.Field != "data.Amount" || rej.Line != 0 || !strings.Contains(rej.Error, "object") {
		t.Errorf("rejection = %+v; want index 1, field data.Amount, no line", rej)
	}
	got := instances(b.buffered(t, "orders", 2))
	if len(got) != 2 || string(got["PO-1"].Data["Amount"]) != "1200" || string(got["PO-2"].Data["Customer"]) != `"Contoso"` {
		t.Fatalf("buffered = %+v; want PO-1 and PO-2 with their data", got)
	}
	if !got["PO-1"].Time.Equal(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("PO-1 time = %v, want the event's", got["PO-1"].Time)
	}
	if tm := got["PO-2"].Time; tm.Before(before.Add(-time.Second)) || tm.After(time.Now().Add(time.Second)) {
		t.Errorf("PO-2 has no time and got %v, want the time of the request", tm)
	}

	t.Run("one object", func(t *testing.T) {
		b := setup(t)
		r := b.post(t, "orders", "application/json; charset=utf-8", "  "+okEvent+"\n")
		wantStatus(t, r, http.StatusOK)
		if res := r.result(t); res.Accepted != 1 || len(res.Rejected) != 0 {
			t.Fatalf("result = %+v", res)
		}
		if n := len(b.buffered(t, "orders", 2)); n != 1 {
			t.Fatalf("%d events buffered, want 1", n)
		}
	})

	t.Run("an empty array", func(t *testing.T) {
		b := setup(t)
		r := b.post(t, "orders", "application/json", "[]")
		wantStatus(t, r, http.StatusOK)
		if res := r.result(t); res.Accepted != 0 || len(res.Rejected) != 0 {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("every event invalid", func(t *testing.T) {
		b := setup(t)
		r := b.post(t, "orders", "application/json", "["+badKind+", 42, "+badData+"]")
		wantStatus(t, r, http.StatusUnprocessableEntity)
		res := r.result(t)
		if res.Accepted != 0 || len(res.Rejected) != 3 {
			t.Fatalf("result = %+v; want 3 rejected", res)
		}
		if res.Rejected[0].Field != "kind" || res.Rejected[1].Index != 1 || res.Rejected[2].Field != "data.Amount" {
			t.Errorf("rejections = %+v", res.Rejected)
		}
		if n := len(b.buffered(t, "orders", 2)); n != 0 {
			t.Fatalf("%d events buffered, want none", n)
		}
	})

	t.Run("malformed body", func(t *testing.T) {
		b := setup(t)
		for _, c := range []struct {
			body   string
			offset float64
			says   string
		}{
			{"[" + okEvent + ", {\"activity\": }]", float64(len(okEvent) + 16), "malformed JSON at byte"},
			{"[" + okEvent + "", float64(len(okEvent) + 1), "ends at byte"},
			{"[" + okEvent + "] []", float64(len(okEvent) + 3), "after top-level value"},
			{"[" + okEvent + " " + okEvent + "]", float64(len(okEvent) + 2), "after array element"},
			{"{\"activity\": ", 13, "malformed JSON"},
			{"[{\"a\":1}, {]", 11, "malformed JSON at byte 11"},
			{"[{\"a\":1}, {", 11, "ends at byte 11"},
			{"", 0, "empty body"},
			{"  \n", 3, "empty body"},
			{"42", 0, "JSON array of events or one event object"},
		} {
			r := b.post(t, "orders", "application/json", c.body)
			m := wantError(t, r, http.StatusBadRequest, c.says)
			if off, _ := m["offset"].(float64); off != c.offset {
				t.Errorf("body %q: offset %v, want %v (%s)", c.body, m["offset"], c.offset, r.body)
			}
		}
		if n := len(b.buffered(t, "orders", 2)); n != 0 {
			t.Fatalf("%d events buffered from malformed bodies", n)
		}
	})
}

func TestIngestNDJSON(t *testing.T) {
	b := setup(t)
	body := okEvent + "\r\n\n  \n" + `{"activity": "PurchaseOrder", "instance":` + "\n" + okEvent2 + "\n" + badKind
	r := b.post(t, "orders", "application/x-ndjson", body)
	wantStatus(t, r, http.StatusOK)
	res := r.result(t)
	if res.Accepted != 2 || len(res.Rejected) != 2 {
		t.Fatalf("result = %+v; want 2 accepted, 2 rejected", res)
	}
	if rej := res.Rejected[0]; rej.Index != 1 || rej.Line != 4 || rej.Field != "" || !strings.Contains(rej.Error, "malformed JSON") {
		t.Errorf("first rejection = %+v; want index 1, line 4, malformed JSON", rej)
	}
	if rej := res.Rejected[1]; rej.Index != 3 || rej.Line != 6 || rej.Field != "kind" {
		t.Errorf("second rejection = %+v; want index 3, line 6, field kind", rej)
	}
	if got := instances(b.buffered(t, "orders", 2)); len(got) != 2 || got["PO-1"].Instance == "" || got["PO-2"].Instance == "" {
		t.Fatalf("buffered = %+v; want PO-1 and PO-2", got)
	}
	for _, ct := range []string{"application/ndjson", "application/x-ndjson; charset=UTF-8"} {
		if r := b.post(t, "orders", ct, ""); r.status != http.StatusOK || r.result(t).Accepted != 0 {
			t.Errorf("empty NDJSON as %s: %d %s", ct, r.status, r.body)
		}
	}
}

func TestIngestLimits(t *testing.T) {
	b := setup(t, func(c *Config) { c.MaxBody = 1024; c.MaxEventSize = 200 })
	big := "[" + strings.Repeat(okEvent+",", 1024/len(okEvent)) + okEvent + "]"
	m := wantError(t, b.post(t, "orders", "application/json", big), http.StatusRequestEntityTooLarge, "1024 bytes")
	if m["limit"] != float64(1024) {
		t.Errorf("413 body limit = %v, want 1024", m["limit"])
	}
	// Without a Content-Length the limit holds while reading.
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/v1/sources/orders/events", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	res, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: status %d, want 413", res.StatusCode)
	}
	// One event over the event limit is rejected on its own.
	large := fmt.Sprintf(`{"activity":"PurchaseOrder","instance":"PO-9","kind":"begin","data":{"Note":"%s"}}`, strings.Repeat("x", 200))
	r := b.post(t, "orders", "application/x-ndjson", okEvent+"\n"+large+"\n")
	wantStatus(t, r, http.StatusOK)
	res2 := r.result(t)
	if res2.Accepted != 1 || len(res2.Rejected) != 1 || !strings.Contains(res2.Rejected[0].Error, "over the limit of 200") {
		t.Fatalf("result = %+v; want the large event rejected for its size", res2)
	}
	if n := len(b.buffered(t, "orders", 2)); n != 1 {
		t.Fatalf("%d events buffered, want 1", n)
	}
}

func TestIngestRefusals(t *testing.T) {
	b := setup(t)
	wantError(t, b.post(t, "orders", "text/plain", okEvent), http.StatusUnsupportedMediaType, "text/plain", "application/json", "application/x-ndjson")
	wantError(t, b.do(t, http.MethodPost, "/v1/sources/orders/events", strings.NewReader(okEvent)), http.StatusUnsupportedMediaType, "Content-Type is missing")
	wantError(t, b.post(t, "orders", "application/json; charset=latin1", okEvent), http.StatusUnsupportedMediaType, "latin1")
	wantError(t, b.post(t, "orders", "application/json", okEvent, "Content-Encoding", "gzip"), http.StatusUnsupportedMediaType, "gzip")
	wantError(t, b.post(t, "nope", "application/json", okEvent), http.StatusNotFound, `"nope"`)
	r := b.post(t, "app", "application/json", okEvent)
	wantError(t, r, http.StatusConflict, "pg-outbox")
	if bytes.Contains(r.body, []byte("s3cret")) || bytes.Contains(r.body, []byte("postgres://")) {
		t.Errorf("the 409 shows the source's DSN: %s", r.body)
	}
	wantError(t, b.post(t, "off", "application/json", okEvent), http.StatusConflict, "disabled")
	wantError(t, b.do(t, http.MethodGet, "/v1/nothing", nil), http.StatusNotFound, "no such endpoint")
	r = b.do(t, http.MethodGet, "/v1/sources/orders/events", nil)
	wantError(t, r, http.StatusMethodNotAllowed, "GET")
	if r.header.Get("Allow") != "POST" {
		t.Errorf("405 Allow = %q, want POST", r.header.Get("Allow"))
	}
	if n := len(b.buffered(t, "orders", 2)) + len(b.buffered(t, "off", 1)); n != 0 {
		t.Fatalf("%d events buffered by refused requests", n)
	}
}

// TestIngestSaysWhatIsWrong: a misspelt source is named with the closest
// (before: no did-you-mean); bam.alerts is said to take no events (before:
// "is a alerts source: applications write its events to their own outbox
// table"); an event that is JSON but no object says so in JSON's words
// (before: "must be a event.wire, got number", and null read as an empty
// event).
func TestIngestSaysWhatIsWrong(t *testing.T) {
	b := setup(t)
	wantError(t, b.post(t, "ordres", "application/json", okEvent), http.StatusNotFound, `no source named "ordres" (did you mean orders?`)
	if err := b.st.AddSource(b.ctx, store.Source{Name: store.AlertsSource, Kind: store.KindAlerts, Partitions: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	r := wantError(t, b.post(t, store.AlertsSource, "application/json", okEvent), http.StatusConflict, "evaluates the alerts", "takes no events")
	if msg := r["error"].(string); strings.Contains(msg, "outbox") {
		t.Errorf("bam.alerts is said to be an outbox: %s", msg)
	}
	res := b.post(t, "orders", "application/json", "[42, null]").result(t)
	if len(res.Rejected) != 2 || res.Rejected[0].Error != "the event is a number: each event must be a JSON object" ||
		res.Rejected[1].Error != "the event is null: each event must be a JSON object" {
		t.Errorf("rejected = %+v", res.Rejected)
	}
}

func TestIngestValidateHook(t *testing.T) {
	b := setup(t, func(c *Config) {
		c.Validate = func(_ context.Context, ev event.Event) error {
			if _, ok := ev.Data["Amount"]; ok && ev.Activity == "PurchaseOrder" {
				return nil
			}
			return &event.Error{Field: "data.Amount", Reason: "PurchaseOrder events need an Amount"}
		}
	})
	r := b.post(t, "orders", "application/json", "["+okEvent+","+okEvent2+"]")
	wantStatus(t, r, http.StatusOK)
	res := r.result(t)
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Field != "data.Amount" || res.Rejected[0].Error != "PurchaseOrder events need an Amount" {
		t.Fatalf("result = %+v", res)
	}
}

func TestIdempotency(t *testing.T) {
	b := setup(t)
	body := "[" + okEvent + "," + okEvent2 + "," + badKind + "]"
	first := b.post(t, "orders", "application/json", body, "Idempotency-Key", "batch-0001")
	wantStatus(t, first, http.StatusOK)
	if first.header.Get(ReplayedHeader) != "" {
		t.Errorf("first response has %s", ReplayedHeader)
	}
	again := b.post(t, "orders", "application/json", body, "Idempotency-Key", "batch-0001")
	wantStatus(t, again, http.StatusOK)
	if again.header.Get(ReplayedHeader) != "true" {
		t.Errorf("retry: %s = %q, want true", ReplayedHeader, again.header.Get(ReplayedHeader))
	}
	if !bytes.Equal(again.body, first.body) {
		t.Errorf("retry body %s, want the first %s", again.body, first.body)
	}
	if n := len(b.buffered(t, "orders", 2)); n != 2 {
		t.Fatalf("%d events buffered after a retry, want 2", n)
	}

	m := wantError(t, b.post(t, "orders", "application/json", "["+okEvent+"]", "Idempotency-Key", "batch-0001"), http.StatusUnprocessableEntity, "batch-0001", "first used")
	if m["idempotency_key"] != "batch-0001" {
		t.Errorf("conflict body = %v", m)
	}
	if n := len(b.buffered(t, "orders", 2)); n != 2 {
		t.Fatalf("%d events buffered after a conflict, want 2", n)
	}

	// A 422 is recorded and replayed too.
	bad := b.post(t, "orders", "application/json", "["+badKind+"]", "Idempotency-Key", "batch-0002")
	wantStatus(t, bad, http.StatusUnprocessableEntity)
	bad2 := b.post(t, "orders", "application/json", "["+badKind+"]", "Idempotency-Key", "batch-0002")
	wantStatus(t, bad2, http.StatusUnprocessableEntity)
	if bad2.header.Get(ReplayedHeader) != "true" || !bytes.Equal(bad.body, bad2.body) {
		t.Errorf("422 retry: replayed %q, body %s", bad2.header.Get(ReplayedHeader), bad2.body)
	}

	for _, k := range []string{"", strings.Repeat("k", 256), "caf\u00e9", "tab\there"} {
		wantError(t, b.post(t, "orders", "application/json", okEvent, "Idempotency-Key", k), http.StatusBadRequest, "Idempotency-Key")
	}
	wantError(t, b.post(t, "orders", "application/json", okEvent, "Idempotency-Key", "a", "Idempotency-Key", "b"), http.StatusBadRequest, "2 times")
	wantStatus(t, b.post(t, "orders", "application/json", okEvent, "Idempotency-Key", strings.Repeat("k", 255)), http.StatusOK)
}

// TestIdempotentRetryAfterTheSourceIsDisabled: a retry gets the recorded
// response even when the source was disabled after the first request
// committed (before: 409, so a client that lost the first answer could not
// learn that its events were written); a key never recorded still gets the
// source's checks.
func TestIdempotentRetryAfterTheSourceIsDisabled(t *testing.T) {
	onBothStores(t, func(t *testing.T, b *bundle) {
		first := b.post(t, "orders", "application/json", okEvent, "Idempotency-Key", "k")
		wantStatus(t, first, http.StatusOK)
		if err := b.st.SetSourceEnabled(b.ctx, "orders", false); err != nil {
			t.Fatal(err)
		}
		again := b.post(t, "orders", "application/json", okEvent, "Idempotency-Key", "k")
		wantStatus(t, again, http.StatusOK)
		if again.header.Get(ReplayedHeader) != "true" || !bytes.Equal(again.body, first.body) {
			t.Errorf("retry: %s %q, body %s; want the first body %s, replayed", ReplayedHeader, again.header.Get(ReplayedHeader), again.body, first.body)
		}
		wantError(t, b.post(t, "orders", "application/json", okEvent2, "Idempotency-Key", "k"), http.StatusUnprocessableEntity, "first used")
		wantError(t, b.post(t, "orders", "application/json", okEvent, "Idempotency-Key", "k2"), http.StatusConflict, "disabled")
		if n := len(b.buffered(t, "orders", 2)); n != 1 {
			t.Fatalf("%d events buffered, want 1", n)
		}
	})
}

func TestIdempotencyConcurrent(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { concurrentSameKey(t, setup(t)) })
	t.Run("postgres", func(t *testing.T) {
		url := testpg.NewDatabase(t)
		st, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		concurrentSameKey(t, setupOn(t, st, t.TempDir()))
	})
}

// concurrentSameKey sends one batch with one key from many clients at once:
// its events must be appended once, and every client gets the same answer.
func concurrentSameKey(t *testing.T, b *bundle) {
	const clients = 12
	body := okEvent + "\n" + okEvent2 + "\n" + badKind + "\n"
	var wg sync.WaitGroup
	start := make(chan struct{})
	got := make([]response, clients)
	for i := range clients {
		wg.Go(func() {
			<-start
			got[i] = b.post(t, "orders", "application/x-ndjson", body, "Idempotency-Key", "same-key")
		})
	}
	close(start)
	wg.Wait()
	replayed := 0
	for i, r := range got {
		wantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.body, got[0].body) {
			t.Errorf("client %d got %s, client 0 got %s", i, r.body, got[0].body)
		}
		if r.header.Get(ReplayedHeader) == "true" {
			replayed++
		}
	}
	if replayed != clients-1 {
		t.Errorf("%d responses replayed, want %d", replayed, clients-1)
	}
	if n := len(b.buffered(t, "orders", 2)); n != 2 {
		t.Fatalf("%d events buffered by %d concurrent requests with one key, want 2", n, clients)
	}
}

// TestStoreUnavailable: every endpoint that needs the store says 503
// without saying where the store is; /healthz and /readyz say which check
// failed; /livez, which needs nothing, stays 200.
func TestStoreUnavailable(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	b := setupOn(t, st, dir, func(c *Config) {
		// Not cached, so that the close below shows at once.
		c.Ready = health.NewChecker(health.Config{CacheFor: time.Nanosecond}, health.StoreWriteCheck(st, ""))
	})
	if r := b.do(t, http.MethodGet, "/healthz", nil); r.status != http.StatusOK || r.json(t)["status"] != "ok" {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}
	if r := b.do(t, http.MethodGet, "/readyz?verbose", nil); r.status != http.StatusOK || string(r.body) != "[+]store-write ok\nreadyz check passed\n" {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	b.st.Close()
	healthz := b.do(t, http.MethodGet, "/healthz", nil)
	if healthz.status != http.StatusServiceUnavailable || healthz.json(t)["status"] != "failed" ||
		!strings.HasPrefix(healthz.json(t)["error"].(string), "store-write: the store refused a write") {
		t.Errorf("healthz: %d %s", healthz.status, healthz.body)
	}
	readyz := b.do(t, http.MethodGet, "/readyz", nil)
	if readyz.status != http.StatusServiceUnavailable || !bytes.HasPrefix(readyz.body, []byte("[-]store-write failed: the store refused a write")) {
		t.Errorf("readyz: %d %s", readyz.status, readyz.body)
	}
	if r := b.do(t, http.MethodGet, "/livez", nil); r.status != http.StatusOK || string(r.body) != "ok" {
		t.Errorf("livez: %d %s", r.status, r.body)
	}
	for _, r := range []response{
		b.post(t, "orders", "application/json", okEvent),
		b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances", nil),
		b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances/PO-1", nil),
	} {
		wantError(t, r, http.StatusServiceUnavailable, "store is unavailable")
	}
	for _, r := range []response{healthz, readyz, b.post(t, "orders", "application/json", okEvent)} {
		if r.header.Get("Retry-After") == "" && r.header.Get("Content-Type") == "application/json" {
			t.Errorf("503 without Retry-After: %s", r.body)
		}
		if bytes.Contains(r.body, []byte(b.dir)) || bytes.Contains(r.body, []byte("bam.db")) {
			t.Errorf("503 shows where the store is: %s", r.body)
		}
	}
}

// applyEvents applies events to instances as a node would.
func (b *bundle) applyEvents(t *testing.T, events ...event.Event) {
	t.Helper()
	n := store.NodeRow{ID: "n1", Name: "n1", Host: "test", PID: 1, StartedAt: time.Now(), State: store.NodeRunning}
	if err := b.st.Join(b.ctx, n); err != nil {
		t.Fatal(err)
	}
	id := store.SessionID{Source: "orders", Partition: 0}
	l, err := b.st.Claim(b.ctx, id, n.ID, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	err = b.st.Apply(b.ctx, store.Batch{Lease: l, Node: n.ID, From: l.Checkpoint, Checkpoint: store.Position{Minor: 1},
		Deltas: event.Coalesce(events), Applied: len(events)})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInstances(t *testing.T) {
	b := setup(t)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var evs []event.Event
	for i := range 7 {
		id := fmt.Sprintf("PO-%02d", i)
		evs = append(evs, event.Event{Activity: "PurchaseOrder", Instance: id, Kind: event.Begin, Time: at,
			Data: map[string]json.RawMessage{"Amount": json.RawMessage(fmt.Sprint(100 * i))}})
		if i%2 == 0 {
			evs = append(evs, event.Event{Activity: "PurchaseOrder", Instance: id, Kind: event.End, Time: at.Add(time.Minute)})
		}
	}
	evs = append(evs, event.Event{Activity: "PurchaseOrder", Instance: "a/b c", Kind: event.Update, Time: at},
		event.Event{Activity: "PurchaseOrder", Instance: "PO-02", Kind: event.Relate, Time: at,
			Related: &event.Related{Activity: "Invoice", Instance: "INV-7"}})
	b.applyEvents(t, evs...)

	r := b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances/PO-02", nil)
	wantStatus(t, r, http.StatusOK)
	var in store.InstanceDetailJSON
	if err := json.Unmarshal(r.body, &in); err != nil {
		t.Fatal(err)
	}
	if len(in.Related) != 1 || in.Related[0] != (store.RelatedJSON{Activity: "Invoice", Instance: "INV-7", URL: "/v1/activities/Invoice/instances/INV-7"}) ||
		in.Continuations == nil || in.References == nil {
		t.Errorf("one instance shows its relations, continuations and references: %s", r.body)
	}
	in.Events-- // the relate event
	if in.Activity != "PurchaseOrder" || in.Instance != "PO-02" || in.State != "completed" || in.Events != 2 ||
		string(in.Data["Amount"]) != "200" || in.Begin == nil || *in.Begin != "2026-11-25T10:00:00Z" || *in.End != "2026-11-25T10:01:00Z" {
		t.Errorf("instance = %+v", in)
	}
	r = b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances/a%2Fb%20c", nil)
	if wantStatus(t, r, http.StatusOK); r.json(t)["state"] != "pending" || r.json(t)["begin"] != nil {
		t.Errorf("instance a/b c = %s", r.body)
	}
	wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances/PO-99", nil), http.StatusNotFound, "PO-99")

	// Pages of 3, following next.
	var ids []string
	path := "/v1/activities/PurchaseOrder/instances?limit=3"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("next never ends")
		}
		var page instancePage
		r := b.do(t, http.MethodGet, path, nil)
		wantStatus(t, r, http.StatusOK)
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		for _, in := range page.Instances {
			ids = append(ids, in.Instance)
		}
		if page.Next == "" {
			break
		}
		if len(page.Instances) != 3 {
			t.Errorf("a page with a next holds %d instances, want 3", len(page.Instances))
		}
		path = "/v1/activities/PurchaseOrder/instances?limit=3&after=" + page.Next
	}
	if got := strings.Join(ids, ","); got != "PO-00,PO-01,PO-02,PO-03,PO-04,PO-05,PO-06,a/b c" {
		t.Errorf("paged ids = %s", got)
	}
	r = b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances?state=active", nil)
	wantStatus(t, r, http.StatusOK)
	var page instancePage
	_ = json.Unmarshal(r.body, &page)
	if len(page.Instances) != 3 || page.Next != "" || page.Instances[0].Instance != "PO-01" {
		t.Errorf("active instances = %s", r.body)
	}
	r = b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances?after=zzz", nil)
	if wantStatus(t, r, http.StatusOK); string(r.body) != `{"instances":[]}`+"\n" {
		t.Errorf("no instances = %s, want an empty list", r.body)
	}
	// A name that is no activity is an error naming it, and the closest
	// one (a name in another case is another activity); before, an empty
	// list that read as "no instances".
	wantError(t, b.do(t, http.MethodGet, "/v1/activities/Nothing/instances", nil), http.StatusNotFound, `no activity "Nothing"`)
	wantError(t, b.do(t, http.MethodGet, "/v1/activities/purchaseorder/instances", nil), http.StatusNotFound,
		`no activity "purchaseorder"`, "did you mean PurchaseOrder?")
	wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrdr/instances/PO-02", nil), http.StatusNotFound,
		`no activity "PurchaseOrdr"`, "did you mean PurchaseOrder?")
	wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances?state=open", nil), http.StatusBadRequest, "open")
	for _, l := range []string{"0", "1001", "x"} {
		wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances?limit="+l, nil), http.StatusBadRequest, "limit")
	}
	wantError(t, b.do(t, http.MethodGet, "/v1/activities/PurchaseOrder/instances?stat=active", nil), http.StatusBadRequest, `"stat"`)
}

// TestArchivedInstance: an instance purged into the archive is still
// answered, with archived_at. (Before: 404.)
func TestArchivedInstance(t *testing.T) {
	b := setup(t)
	f, err := definition.Parse([]byte("activities:\n  - name: Shipment\n    items:\n      - {name: Carrier, type: text, max_length: 40}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Deploy(b.ctx, store.DeployRequest{File: f, By: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.SetWindow(b.ctx, "Shipment", store.Window{Keep: time.Hour, Archive: true}, "test"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * time.Hour).UTC()
	b.applyEvents(t, event.Event{Activity: "Shipment", Instance: "S-1", Kind: event.Begin, Time: old},
		event.Event{Activity: "Shipment", Instance: "S-1", Kind: event.End, Time: old.Add(time.Minute)})
	if n, err := store.PurgeWindows(b.ctx, b.st); err != nil || n != 1 {
		t.Fatalf("PurgeWindows = %d, %v; want 1", n, err)
	}
	r := b.do(t, http.MethodGet, "/v1/activities/Shipment/instances/S-1", nil)
	wantStatus(t, r, http.StatusOK)
	if m := r.json(t); m["archived_at"] == nil || m["state"] != "completed" {
		t.Errorf("archived instance = %s", r.body)
	}
}

// failingStore fails appends with err, as a store that went away would.
type failingStore struct {
	store.Store
	err error
}

func (f failingStore) AppendBuffer(context.Context, string, []store.BufferEvent) error { return f.err }

func (f failingStore) AppendBufferIdempotent(context.Context, string, store.IdempotencyKey, []store.BufferEvent, store.StoredResponse) (*store.StoredResponse, error) {
	return nil, f.err
}

func TestAppendFails(t *testing.T) {
	b := setup(t)
	leaky := fmt.Errorf("append to buffer: connect to postgres://bam:hunter22@db.internal:5432/bam: connection refused")
	for _, c := range []struct {
		err    error
		status int
		says   string
	}{
		{leaky, http.StatusServiceUnavailable, "retry with the same Idempotency-Key"},
		{fmt.Errorf("append: %w", store.ErrNotFound), http.StatusNotFound, `"orders"`},
	} {
		srv := httptest.NewServer(New(failingStore{b.st, c.err}, Config{}, slog.New(slog.DiscardHandler)).Handler())
		defer srv.Close()
		for _, key := range []string{"", "k-1"} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/sources/orders/events", strings.NewReader(okEvent))
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("Idempotency-Key", key)
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			r := response{res.StatusCode, res.Header, body}
			wantError(t, r, c.status, c.says)
			if c.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if bytes.Contains(body, []byte("hunter22")) || bytes.Contains(body, []byte("db.internal")) {
				t.Errorf("the response shows the store's error: %s", body)
			}
		}
	}
}

func TestIdempotencyRetention(t *testing.T) {
	b := setup(t, func(c *Config) { c.IdempotencyRetention = 300 * time.Millisecond })
	wantStatus(t, b.post(t, "orders", "application/json", okEvent, "Idempotency-Key", "short"), http.StatusOK)
	wantStatus(t, b.post(t, "orders", "application/json", okEvent2, "Idempotency-Key", "short"), http.StatusUnprocessableEntity)
	testwait.Until(t, 10*time.Second, "the key to be forgotten after its retention of 300ms", func() bool {
		return b.post(t, "orders", "application/json", okEvent2, "Idempotency-Key", "short").status == http.StatusOK
	})
	if n := len(b.buffered(t, "orders", 2)); n != 2 {
		t.Fatalf("%d events buffered, want 2 (one per use of the key)", n)
	}
}

func TestIngestAnswers503WhenTheDefinitionsCannotBeRead(t *testing.T) {
	b := setup(t, func(c *Config) {
		c.Validate = func(context.Context, event.Event) error {
			return errors.New("read the deployed definitions: connection refused to postgres://app:secret@db")
		}
	})
	r := b.post(t, "orders", "application/json", "["+okEvent+"]")
	wantStatus(t, r, http.StatusServiceUnavailable)
	if strings.Contains(string(r.body), "secret") || r.header.Get("Retry-After") == "" {
		t.Errorf("503 body %s, Retry-After %q: want no store detail and a Retry-After", r.body, r.header.Get("Retry-After"))
	}
}
