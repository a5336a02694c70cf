package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/alert/notify"
	"github.com/bam-dev/bam/internal/alert/notify/notifytest"
)

// firing is a typical aggregate alert's message.
func firing() notify.Message {
	return notify.Message{
		DeliveryID: "f1207-s3",
		FiringID:   1207,
		Activity:   "orders",
		Alert:      "late_shipment",
		Severity:   "warning",
		Key:        "order-88412",
		Message:    "Order order-88412 not shipped after 48h",
		Value:      "17",
		FiredAt:    time.Date(2026, 3, 2, 14, 5, 9, 481230000, time.UTC),
		Link:       "https://bam.example.com/activities/orders/instances/order-88412",
	}
}

// testContext bounds a test's sends generously: they are meant to end at
// once, and the bound only keeps a broken one from hanging the run.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// refusedAddr is a loopback address where nothing listens any more.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestSignVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"delivery_id":"f1-s1"}`)
	sig := notify.Sign(secret, "1767225600", body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("Sign = %q, want sha256= and 64 hex digits", sig)
	}
	if !notify.Verify(secret, "1767225600", body, sig) {
		t.Fatal("Verify refuses what Sign signed")
	}
	hexPart := strings.TrimPrefix(sig, "sha256=")
	if !notify.Verify(secret, "1767225600", body, "sha256="+strings.ToUpper(hexPart)) {
		t.Error("Verify refuses the signature in upper-case hex")
	}
	for _, tc := range []struct {
		name      string
		secret    []byte
		timestamp string
		body      []byte
		signature string
	}{
		{"another body", secret, "1767225600", []byte(`{"delivery_id":"f1-s2"}`), sig},
		{"another timestamp", secret, "1767225601", body, sig},
		{"another secret", []byte("s3creT"), "1767225600", body, sig},
		{"no secret", nil, "1767225600", body, notify.Sign(nil, "1767225600", body)},
		{"no prefix", secret, "1767225600", body, hexPart},
		{"not hex", secret, "1767225600", body, "sha256=" + strings.Repeat("zz", 32)},
		{"truncated", secret, "1767225600", body, sig[:len(sig)-2]},
		{"empty", secret, "1767225600", body, ""},
	} {
		if notify.Verify(tc.secret, tc.timestamp, tc.body, tc.signature) {
			t.Errorf("%s: Verify = true", tc.name)
		}
	}
}

// TestWebhookDelivers: the request carries the message as JSON, the
// delivery id and timestamp headers, and a signature that verifies.
func TestWebhookDelivers(t *testing.T) {
	secret := []byte("s3cret")
	recv := notifytest.NewWebhookReceiver(t, secret)
	w := &notify.Webhook{UserAgent: "bam/test"}
	m := firing()
	if err := w.Send(testContext(t), recv.URL(), secret, m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := recv.WaitFor(t, 1, time.Minute)
	if len(got) != 1 {
		t.Fatalf("received %d requests, want 1", len(got))
	}
	r := got[0]
	if !r.SignatureValid {
		t.Errorf("signature %q does not verify", r.Signature)
	}
	if r.DeliveryID != m.DeliveryID {
		t.Errorf("X-Bam-Delivery = %q, want %q", r.DeliveryID, m.DeliveryID)
	}
	if _, err := strconv.ParseInt(r.Timestamp, 10, 64); err != nil {
		t.Errorf("X-Bam-Timestamp = %q, not Unix seconds", r.Timestamp)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if ua := r.Header.Get("User-Agent"); ua != "bam/test" {
		t.Errorf("User-Agent = %q", ua)
	}
	if r.DecodeErr != nil {
		t.Fatalf("body %s: %v", r.Body, r.DecodeErr)
	}
	if !r.Message.FiredAt.Equal(m.FiredAt) {
		t.Errorf("fired_at = %v, want %v", r.Message.FiredAt, m.FiredAt)
	}
	r.Message.FiredAt, m.FiredAt = time.Time{}, time.Time{}
	if r.Message != m {
		t.Errorf("decoded %+v, want %+v", r.Message, m)
	}
}

// TestWebhookBody pins the JSON field names and that the optional ones
// are left out when empty: receivers are written against them.
func TestWebhookBody(t *testing.T) {
	fields := func(m notify.Message) map[string]any {
		t.Helper()
		body, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	full := firing()
	full.Test = true
	got := fields(full)
	want := []string{"activity", "alert", "delivery_id", "fired_at", "firing_id", "key", "link", "message", "severity", "test", "value"}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Errorf("fields %v, want %v", keys, want)
	}
	if got["fired_at"] != "2026-03-02T14:05:09.481230Z" {
		t.Errorf("fired_at = %v", got["fired_at"])
	}
	if got["firing_id"] != float64(1207) || got["test"] != true {
		t.Errorf("firing_id = %v, test = %v", got["firing_id"], got["test"])
	}

	bare := firing()
	bare.Value, bare.Link = "", ""
	bare.FiredAt = time.Date(2026, 3, 2, 15, 5, 9, 0, time.FixedZone("CET", 3600))
	got = fields(bare)
	for _, omitted := range []string{"value", "link", "test"} {
		if v, ok := got[omitted]; ok {
			t.Errorf("%s = %v, want it left out", omitted, v)
		}
	}
	if got["fired_at"] != "2026-03-02T14:05:09.000000Z" {
		t.Errorf("fired_at = %v, want it in UTC with six fractional digits", got["fired_at"])
	}
}

func TestWebhookUnsigned(t *testing.T) {
	recv := notifytest.NewWebhookReceiver(t, nil)
	if err := new(notify.Webhook).Send(testContext(t), recv.URL(), nil, firing()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := recv.WaitFor(t, 1, time.Minute)
	if got[0].Signature != "" {
		t.Errorf("X-Bam-Signature = %q without a secret", got[0].Signature)
	}
	if got[0].Header.Get("User-Agent") != "bam" {
		t.Errorf("User-Agent = %q, want the default bam", got[0].Header.Get("User-Agent"))
	}
}

// TestWebhookWrongSecret: a receiver that refuses the signature answers
// 401, which retrying cannot fix.
func TestWebhookWrongSecret(t *testing.T) {
	recv := notifytest.NewWebhookReceiver(t, []byte("theirs"))
	err := new(notify.Webhook).Send(testContext(t), recv.URL(), []byte("ours"), firing())
	if !errors.Is(err, notify.ErrPermanent) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v, want a permanent 401", err)
	}
}

// outcome is how an attempt's error is classified.
type outcome int

const (
	delivered outcome = iota
	retryable
	retryAfter
	permanentFailure
)

func (o outcome) String() string {
	return [...]string{"delivered", "retryable", "retry after", "permanent"}[o]
}

func classify(err error) (outcome, time.Duration) {
	var ra *notify.RetryAfterError
	switch {
	case err == nil:
		return delivered, 0
	case errors.Is(err, notify.ErrPermanent):
		return permanentFailure, 0
	case errors.As(err, &ra):
		return retryAfter, ra.After
	default:
		return retryable, 0
	}
}

func TestWebhookStatusClasses(t *testing.T) {
	later := time.Now().Add(2 * time.Hour).UTC().Format(http.TimeFormat)
	earlier := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		status     int
		retryAfter string
		want       outcome
		// minAfter and maxAfter bound a *RetryAfterError's After.
		minAfter, maxAfter time.Duration
	}{
		{status: 200, want: delivered},
		{status: 202, want: delivered},
		{status: 204, want: delivered},
		{status: 301, want: permanentFailure},
		{status: 302, want: permanentFailure},
		{status: 307, want: permanentFailure},
		{status: 400, want: permanentFailure},
		{status: 401, want: permanentFailure},
		{status: 404, want: permanentFailure},
		{status: 410, want: permanentFailure},
		{status: 408, want: retryable},
		{status: 425, want: retryable},
		{status: 429, want: retryable},
		{status: 429, retryAfter: "120", want: retryAfter, minAfter: 120 * time.Second, maxAfter: 120 * time.Second},
		{status: 429, retryAfter: later, want: retryAfter, minAfter: time.Hour, maxAfter: 2 * time.Hour},
		{status: 429, retryAfter: "soon", want: retryable},
		{status: 500, want: retryable},
		{status: 500, retryAfter: "120", want: retryable}, // Retry-After counts on 429 and 503 only
		{status: 502, want: retryable},
		{status: 503, want: retryable},
		{status: 503, retryAfter: "0", want: retryAfter},
		{status: 503, retryAfter: later, want: retryAfter, minAfter: time.Hour, maxAfter: 2 * time.Hour},
		{status: 503, retryAfter: earlier, want: retryAfter},
	} {
		name := fmt.Sprintf("%d %s", tc.status, tc.retryAfter)
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				if tc.status >= 300 && tc.status <= 399 {
					w.Header().Set("Location", "https://elsewhere.example/hook")
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte("the reason"))
			}))
			defer srv.Close()
			err := new(notify.Webhook).Send(testContext(t), srv.URL+"/hook", nil, firing())
			got, after := classify(err)
			if got != tc.want {
				t.Fatalf("%v: classified %v, want %v", err, got, tc.want)
			}
			if got == retryAfter && (after < tc.minAfter || after > tc.maxAfter) {
				t.Errorf("After = %v, want within [%v, %v]", after, tc.minAfter, tc.maxAfter)
			}
			if err == nil {
				return
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tc.status)) || !strings.Contains(err.Error(), srv.URL+"/hook") {
				t.Errorf("error %q does not name the status and the URL", err)
			}
			if tc.status >= 300 && tc.status <= 399 {
				if !strings.Contains(err.Error(), "https://elsewhere.example/hook") {
					t.Errorf("error %q does not name the Location", err)
				}
			} else if !strings.Contains(err.Error(), "the reason") {
				t.Errorf("error %q does not quote the body", err)
			}
		})
	}
}

func TestWebhookConnectionRefused(t *testing.T) {
	err := new(notify.Webhook).Send(testContext(t), "http://"+refusedAddr(t)+"/hook", nil, firing())
	if got, _ := classify(err); got != retryable {
		t.Fatalf("%v: classified %v, want retryable", err, got)
	}
}

func TestWebhookContextEnded(t *testing.T) {
	recv := notifytest.NewWebhookReceiver(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := new(notify.Webhook).Send(ctx, recv.URL(), nil, firing())
	if got, _ := classify(err); got != retryable || !errors.Is(err, context.Canceled) {
		t.Fatalf("%v: classified %v, want retryable and context.Canceled", err, got)
	}
}

// TestWebhookErrorsHideSecrets: a URL's password and query never show
// in an error, even when the receiver quotes them back in its body.
func TestWebhookErrorsHideSecrets(t *testing.T) {
	const password, token = "hunter2", "s3cr3t-token"
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("Send succeeded")
		}
		for _, secret := range []string{password, token} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows %q", err, secret)
			}
		}
	}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprintf(w, "no hook at %s for %s:%s", r.URL.RequestURI(), user, pass)
	}))
	defer echo.Close()
	host := strings.TrimPrefix(echo.URL, "http://")

	t.Run("body quoting them", func(t *testing.T) {
		err := new(notify.Webhook).Send(testContext(t), "http://bam:"+password+"@"+host+"/hook?token="+token, nil, firing())
		check(t, err)
		if !strings.Contains(err.Error(), "http://"+host+"/hook?[redacted]") || !strings.Contains(err.Error(), "500") {
			t.Errorf("error %q does not name the redacted URL and the status", err)
		}
	})
	t.Run("password inside the token", func(t *testing.T) {
		err := new(notify.Webhook).Send(testContext(t), "http://bam:"+password+"@"+host+"/hook?token="+password+"-"+token, nil, firing())
		check(t, err)
	})
	t.Run("connection refused", func(t *testing.T) {
		err := new(notify.Webhook).Send(testContext(t), "http://bam:"+password+"@"+refusedAddr(t)+"/hook?token="+token, nil, firing())
		check(t, err)
	})
	t.Run("redirect", func(t *testing.T) {
		redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://bam:"+password+"@elsewhere.example/hook?token="+token, http.StatusFound)
		}))
		defer redirect.Close()
		check(t, new(notify.Webhook).Send(testContext(t), redirect.URL+"/hook", nil, firing()))
	})
	for _, bad := range []string{
		"ftp://bam:" + password + "@example.com/hook?token=" + token,
		"http://bam:" + password + "@exa mple.com/hook?token=" + token,
		"http://bam:" + password + "@example.com:port/hook?token=" + token,
		"/hook?token=" + token,
	} {
		t.Run("bad URL", func(t *testing.T) {
			err := new(notify.Webhook).Send(testContext(t), bad, nil, firing())
			check(t, err)
			if !errors.Is(err, notify.ErrPermanent) {
				t.Errorf("%v: not permanent", err)
			}
		})
	}
}

// TestWebhookErrorBodyIsShort: an error quotes at most 200 bytes of the
// answer, on one line.
func TestWebhookErrorBodyIsShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("line one\r\nline two\n" + strings.Repeat("x", 5000)))
	}))
	defer srv.Close()
	err := new(notify.Webhook).Send(testContext(t), srv.URL, nil, firing())
	if err == nil {
		t.Fatal("Send succeeded")
	}
	if n := strings.Count(err.Error(), "x"); n > 200 {
		t.Errorf("error quotes %d bytes of the body's x's", n)
	}
	if strings.ContainsAny(err.Error(), "\r\n") || !strings.Contains(err.Error(), "line one line two xxx") {
		t.Errorf("error %q: want the body on one line", err)
	}
}

func TestWebhookBadDeliveryID(t *testing.T) {
	recv := notifytest.NewWebhookReceiver(t, nil)
	for _, id := range []string{"", "f1\r\nX-Injected: 1", "f1 s2", strings.Repeat("a", 129)} {
		m := firing()
		m.DeliveryID = id
		if err := new(notify.Webhook).Send(testContext(t), recv.URL(), nil, m); !errors.Is(err, notify.ErrPermanent) {
			t.Errorf("delivery id %q: err = %v, want permanent", id, err)
		}
	}
	if n := len(recv.Received()); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
}

// TestWebhookReceiverFailNext: the test receiver's failures are
// classified as a caller's retry loop expects, and the retry carries the
// same delivery id.
func TestWebhookReceiverFailNext(t *testing.T) {
	recv := notifytest.NewWebhookReceiver(t, []byte("s3cret"))
	recv.FailNextRetryAfter(1, http.StatusTooManyRequests, "30")
	w := new(notify.Webhook)
	err := w.Send(testContext(t), recv.URL(), []byte("s3cret"), firing())
	if got, after := classify(err); got != retryAfter || after != 30*time.Second {
		t.Fatalf("%v: classified %v after %v, want retry after 30s", err, got, after)
	}
	if err := w.Send(testContext(t), recv.URL(), []byte("s3cret"), firing()); err != nil {
		t.Fatalf("retry: %v", err)
	}
	got := recv.WaitFor(t, 2, time.Minute)
	if got[0].Status != http.StatusTooManyRequests || got[1].Status != http.StatusNoContent {
		t.Errorf("answered %d then %d", got[0].Status, got[1].Status)
	}
	if got[0].DeliveryID != got[1].DeliveryID {
		t.Errorf("delivery ids %q then %q: a retry must keep it", got[0].DeliveryID, got[1].DeliveryID)
	}
}
