package notify_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/bam-dev/bam/internal/alert/notify"
	"github.com/bam-dev/bam/internal/alert/notify/notifytest"
)

const recipient = "Ops <ops@example.com>"

func mailer(srv *notifytest.SMTPServer) *notify.Mailer {
	return &notify.Mailer{Addr: srv.Addr(), From: "bam <bam@example.com>"}
}

func decodedSubject(t *testing.T, m notifytest.Mail) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("Subject %q: %v", m.Header.Get("Subject"), err)
	}
	return s
}

func TestMailDelivers(t *testing.T) {
	srv := notifytest.NewSMTPServer(t)
	msg := firing()
	if err := mailer(srv).Send(testContext(t), recipient, msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.WaitFor(t, 1, time.Minute)[0]
	if got.From != "bam@example.com" || !slices.Equal(got.To, []string{"ops@example.com"}) {
		t.Errorf("envelope from %q to %q", got.From, got.To)
	}
	if got.TLS {
		t.Error("came over TLS from a server that does not offer it")
	}
	h := got.Header
	for name, want := range map[string]string{
		"From":                      `"bam" <bam@example.com>`,
		"To":                        `"Ops" <ops@example.com>`,
		"Message-Id":                "<f1207-s3@bam>",
		"X-Bam-Delivery":            "f1207-s3",
		"Auto-Submitted":            "auto-generated",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
	} {
		if h.Get(name) != want {
			t.Errorf("%s: %q, want %q", name, h.Get(name), want)
		}
	}
	if subject := decodedSubject(t, got); subject != "[bam warning] orders.late_shipment: Order order-88412 not shipped after 48h" {
		t.Errorf("Subject: %q", subject)
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	for _, want := range []string{
		"Order order-88412 not shipped after 48h\r\n",
		"Key:      order-88412\r\n",
		"Value:    17\r\n",
		"Fired at: 2026-03-02T14:05:09Z\r\n",
		"Link:     https://bam.example.com/activities/orders/instances/order-88412\r\n",
	} {
		if !strings.Contains(got.Body, want) {
			t.Errorf("body lacks %q:\n%s", want, got.Body)
		}
	}
	if strings.Contains(got.Body, "test") {
		t.Errorf("a real firing's body speaks of a test:\n%s", got.Body)
	}
}

// TestMailOptionalFields: no Value or Link line when there is none, and a
// test says so.
func TestMailOptionalFields(t *testing.T) {
	srv := notifytest.NewSMTPServer(t)
	msg := firing()
	msg.Value, msg.Link, msg.Test = "", "", true
	if err := mailer(srv).Send(testContext(t), "ops@example.com", msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	body := srv.WaitFor(t, 1, time.Minute)[0].Body
	if strings.Contains(body, "Value:") || strings.Contains(body, "Link:") {
		t.Errorf("empty fields shown:\n%s", body)
	}
	if !strings.Contains(body, "bam alert test") {
		t.Errorf("a test does not say so:\n%s", body)
	}
}

// TestMailSubjectLongAndNonASCII: the subject quotes only the first line,
// cut to 120 characters, and survives encoding and folding intact.
func TestMailSubjectLongAndNonASCII(t *testing.T) {
	srv := notifytest.NewSMTPServer(t)
	msg := firing()
	first := strings.Repeat("注文が遅れています ", 30)
	msg.Message = first + "\nsecond line"
	if err := mailer(srv).Send(testContext(t), "ops@example.com", msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.WaitFor(t, 1, time.Minute)[0]
	want := "[bam warning] orders.late_shipment: " + string([]rune(first)[:119]) + "…"
	if subject := decodedSubject(t, got); subject != want {
		t.Errorf("Subject:\n%q\nwant\n%q", subject, want)
	}
	header, _, _ := bytes.Cut(got.Data, []byte("\r\n\r\n"))
	for line := range strings.SplitSeq(string(header), "\r\n") {
		if len(line) > 78 {
			t.Errorf("header line of %d characters: %q", len(line), line)
		}
	}
	if !strings.Contains(got.Body, "second line") {
		t.Errorf("body lacks the second line:\n%s", got.Body)
	}
}

// TestMailHeaderInjection: CR and LF in the fields never start a header
// of their own, nor add a recipient.
func TestMailHeaderInjection(t *testing.T) {
	srv := notifytest.NewSMTPServer(t)
	msg := firing()
	msg.Message = "Disk full\r\nBcc: evil@example.com\r\nX-Injected: message\r\n\r\nbody"
	msg.Alert = "late\r\nX-Injected: alert"
	msg.Activity = "orders\nX-Injected: activity"
	msg.Severity = "warning\rX-Injected: severity"
	msg.Key = "k1\r\nX-Injected: key"
	if err := mailer(srv).Send(testContext(t), "ops@example.com", msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.WaitFor(t, 1, time.Minute)[0]
	if !slices.Equal(got.To, []string{"ops@example.com"}) {
		t.Errorf("recipients %q", got.To)
	}
	want := []string{"Auto-Submitted", "Content-Transfer-Encoding", "Content-Type", "Date", "From",
		"Message-Id", "Mime-Version", "Subject", "To", "X-Bam-Delivery"}
	if names := slices.Sorted(maps.Keys(got.Header)); !slices.Equal(names, want) {
		t.Errorf("headers %v, want %v", names, want)
	}
	const subject = "[bam warning X-Injected: severity] orders X-Injected: activity.late X-Injected: alert: Disk full"
	if s := decodedSubject(t, got); s != subject {
		t.Errorf("Subject %q, want %q", s, subject)
	}
	if !strings.Contains(got.Body, "Key:      k1 X-Injected: key\r\n") {
		t.Errorf("the key is not on one line:\n%s", got.Body)
	}
}

func TestMailRefusals(t *testing.T) {
	for _, tc := range []struct {
		code int
		want outcome
	}{
		{451, retryable},
		{452, retryable},
		{550, permanentFailure},
		{554, permanentFailure},
	} {
		srv := notifytest.NewSMTPServer(t)
		srv.FailNext(1, tc.code)
		err := mailer(srv).Send(testContext(t), "ops@example.com", firing())
		if got, _ := classify(err); got != tc.want {
			t.Errorf("%d: %v: classified %v, want %v", tc.code, err, got, tc.want)
		}
		var reply *smtp.SMTPError
		if !errors.As(err, &reply) || reply.Code != tc.code {
			t.Errorf("%d: %v: want the server's reply", tc.code, err)
		}
		// The failure was the next message's only.
		if err := mailer(srv).Send(testContext(t), "ops@example.com", firing()); err != nil {
			t.Errorf("%d: the next Send: %v", tc.code, err)
		}
		if n := len(srv.Messages()); n != 1 {
			t.Errorf("%d: %d messages accepted, want 1", tc.code, n)
		}
	}
}

func TestMailBadAddresses(t *testing.T) {
	srv := notifytest.NewSMTPServer(t)
	for _, to := range []string{
		"",
		"ops",
		"not an address",
		"ops@example.com, evil@example.com",
		"ops@example.com\r\nBcc: evil@example.com",
		"Ops <ops@example.com>\nBcc: evil@example.com",
	} {
		if err := mailer(srv).Send(testContext(t), to, firing()); !errors.Is(err, notify.ErrPermanent) {
			t.Errorf("to %q: err = %v, want permanent", to, err)
		}
	}
	bad := mailer(srv)
	bad.From = "bam@example.com\r\nBcc: evil@example.com"
	if err := bad.Send(testContext(t), "ops@example.com", firing()); !errors.Is(err, notify.ErrPermanent) {
		t.Errorf("from %q: err = %v, want permanent", bad.From, err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages accepted", n)
	}
}

func TestMailConnectionRefused(t *testing.T) {
	m := &notify.Mailer{Addr: refusedAddr(t), From: "bam@example.com"}
	err := m.Send(testContext(t), "ops@example.com", firing())
	if got, _ := classify(err); got != retryable {
		t.Fatalf("%v: classified %v, want retryable", err, got)
	}
}

// TestMailPasswordNeverShown: a refused login's error hides the password
// even though the test server quotes it back, in every form.
func TestMailPasswordNeverShown(t *testing.T) {
	const password = "hunter2-wrong"
	srv := notifytest.NewSMTPServer(t)
	srv.RequireAuth("bam", "the-right-one")
	m := mailer(srv)
	m.Username, m.Password = "bam", password
	err := m.Send(testContext(t), "ops@example.com", firing())
	if !errors.Is(err, notify.ErrPermanent) {
		t.Fatalf("err = %v, want a permanent refusal", err)
	}
	var reply *smtp.SMTPError
	if !errors.As(err, &reply) || reply.Code != 535 {
		t.Fatalf("err = %v, want the server's 535", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q: the server was expected to quote the password", err)
	}
	b64 := base64.StdEncoding.EncodeToString
	for _, form := range []string{password, b64([]byte(password)), b64([]byte("\x00bam\x00" + password))} {
		if strings.Contains(err.Error(), form) || strings.Contains(reply.Message, form) {
			t.Errorf("error %q shows %q", err, form)
		}
	}

	// The right password is accepted.
	m.Password = "the-right-one"
	if err := m.Send(testContext(t), "ops@example.com", firing()); err != nil {
		t.Fatalf("Send with the right password: %v", err)
	}
	srv.WaitFor(t, 1, time.Minute)
}

// TestMailNoAuthOffered: credentials for a server that offers no login
// are a permanent mistake, and the error does not show the password.
func TestMailNoAuthOffered(t *testing.T) {
	srv := notifytest.NewSMTPServer(t)
	m := mailer(srv)
	m.Username, m.Password = "bam", "hunter2"
	err := m.Send(testContext(t), "ops@example.com", firing())
	if !errors.Is(err, notify.ErrPermanent) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v, want permanent without the password", err)
	}
}

// tlsConfigs returns a server configuration with a certificate for
// 127.0.0.1 and the roots that trust it, borrowed from httptest.
func tlsConfigs(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	https := httptest.NewUnstartedServer(http.NotFoundHandler())
	https.StartTLS()
	t.Cleanup(https.Close)
	roots := x509.NewCertPool()
	roots.AddCert(https.Certificate())
	cfg := https.TLS.Clone()
	cfg.NextProtos = nil
	return cfg, roots
}

// TestMailSTARTTLS: a server that offers STARTTLS gets the message over
// TLS, and authentication with it.
func TestMailSTARTTLS(t *testing.T) {
	serverTLS, roots := tlsConfigs(t)
	for _, require := range []bool{false, true} {
		srv := notifytest.NewSMTPServerTLS(t, serverTLS)
		srv.RequireAuth("bam", "s3cret")
		m := mailer(srv)
		m.Username, m.Password = "bam", "s3cret"
		m.TLSConfig = &tls.Config{RootCAs: roots}
		m.RequireTLS = require
		if err := m.Send(testContext(t), "ops@example.com", firing()); err != nil {
			t.Fatalf("RequireTLS %v: Send: %v", require, err)
		}
		if got := srv.WaitFor(t, 1, time.Minute)[0]; !got.TLS {
			t.Errorf("RequireTLS %v: the message came in plain text", require)
		}
	}
}

// TestMailSTARTTLSUntrusted: a certificate that does not verify is
// refused, never passed over in favour of plain text.
func TestMailSTARTTLSUntrusted(t *testing.T) {
	serverTLS, _ := tlsConfigs(t)
	srv := notifytest.NewSMTPServerTLS(t, serverTLS)
	err := mailer(srv).Send(testContext(t), "ops@example.com", firing())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages accepted", n)
	}
}

func TestMailRequireTLSWithoutIt(t *testing.T) {
	srv := notifytest.NewSMTPServer(t)
	m := mailer(srv)
	m.RequireTLS = true
	err := m.Send(testContext(t), "ops@example.com", firing())
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err = %v, want a refusal to go without STARTTLS", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages accepted in plain text", n)
	}
}

func TestMailContextEnded(t *testing.T) {
	srv := notifytest.NewSMTPServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := mailer(srv).Send(ctx, "ops@example.com", firing())
	if got, _ := classify(err); got != retryable || !errors.Is(err, context.Canceled) {
		t.Fatalf("%v: classified %v, want retryable and context.Canceled", err, got)
	}
}
