package notifytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/alert/notify"
	"github.com/bam-dev/bam/internal/testwait"
)

// Received is one request a WebhookReceiver got, whatever it answered.
type Received struct {
	DeliveryID string // the X-Bam-Delivery header
	Timestamp  string // the X-Bam-Timestamp header
	Signature  string // the X-Bam-Signature header; "" when unsigned
	// SignatureValid is whether Signature verifies under the receiver's
	// secret; always false when the receiver has none.
	SignatureValid bool
	Message        notify.Message // the decoded body
	DecodeErr      error          // why the body did not decode; nil when it did
	Header         http.Header
	Body           []byte
	Status         int // what the receiver answered
}

// WebhookReceiver is an HTTP server on 127.0.0.1 that takes webhook
// deliveries like a careful receiver would, and records them. It is safe
// for concurrent use.
type WebhookReceiver struct {
	srv    *httptest.Server
	secret []byte

	mu         sync.Mutex
	received   []Received
	failN      int // how many of the next requests to fail
	failStatus int
	retryAfter string // the Retry-After of the failures; "": none
}

// NewWebhookReceiver starts a receiver; t's cleanup closes it. With a
// secret, it verifies each request's signature and answers 401 to one
// that is missing or wrong (the request is recorded either way); without
// one, it accepts any. It answers 400 to a body that does not decode and
// 204 to the rest, unless told to fail by FailNext.
func NewWebhookReceiver(t testing.TB, secret []byte) *WebhookReceiver {
	t.Helper()
	r := &WebhookReceiver{secret: slices.Clone(secret)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// URL is where to send deliveries.
func (r *WebhookReceiver) URL() string { return r.srv.URL + "/hook" }

// Received returns the requests received so far, in order.
func (r *WebhookReceiver) Received() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.received)
}

// WaitFor waits until at least n requests have been received, failing t
// after timeout, and returns them.
func (r *WebhookReceiver) WaitFor(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	testwait.Until(t, timeout, fmt.Sprintf("%d webhook requests at %s", n, r.URL()), func() bool {
		return len(r.Received()) >= n
	})
	return r.Received()
}

// FailNext makes the receiver answer status to the next n requests, after
// recording them.
func (r *WebhookReceiver) FailNext(n, status int) {
	r.FailNextRetryAfter(n, status, "")
}

// FailNextRetryAfter is FailNext with a Retry-After header, written as
// given: seconds ("120") or an HTTP date.
func (r *WebhookReceiver) FailNextRetryAfter(n, status int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failN, r.failStatus, r.retryAfter = n, status, retryAfter
}

func (r *WebhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "read the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	got := Received{
		DeliveryID: req.Header.Get("X-Bam-Delivery"),
		Timestamp:  req.Header.Get("X-Bam-Timestamp"),
		Signature:  req.Header.Get("X-Bam-Signature"),
		Header:     req.Header.Clone(),
		Body:       body,
		Status:     http.StatusNoContent,
	}
	got.SignatureValid = notify.Verify(r.secret, got.Timestamp, body, got.Signature)
	got.DecodeErr = json.Unmarshal(body, &got.Message)

	r.mu.Lock()
	var retryAfter string
	switch {
	case r.failN > 0:
		r.failN--
		got.Status, retryAfter = r.failStatus, r.retryAfter
	case len(r.secret) > 0 && !got.SignatureValid:
		got.Status = http.StatusUnauthorized
	case got.DecodeErr != nil:
		got.Status = http.StatusBadRequest
	}
	r.received = append(r.received, got)
	r.mu.Unlock()

	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	if got.Status == http.StatusNoContent {
		w.WriteHeader(got.Status)
		return
	}
	http.Error(w, "notifytest: answering "+strconv.Itoa(got.Status), got.Status)
}
