// Package notifytest holds in-process receivers for the tests of alert
// delivery: an SMTP server and a webhook endpoint that record what they
// get and can be told to fail the next deliveries, so that a test checks
// what was delivered, and how a failure was classified, without sleeping.
package notifytest

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/bam-dev/bam/internal/testwait"
)

// Mail is one message an SMTPServer accepted.
type Mail struct {
	From   string      // the envelope sender (MAIL FROM)
	To     []string    // the envelope recipients (RCPT TO)
	Header mail.Header // nil when the message does not parse
	// Body is the body after its Content-Transfer-Encoding when that is
	// quoted-printable, as received otherwise.
	Body string
	Data []byte // the message exactly as received after DATA
	TLS  bool   // whether it came over TLS (STARTTLS)
}

// SMTPServer is an SMTP server on 127.0.0.1 that records the mail it
// accepts. It is safe for concurrent use.
type SMTPServer struct {
	srv  *smtp.Server
	addr string

	mu       sync.Mutex
	mails    []Mail
	failN    int // how many of the next messages to refuse
	failCode int
	username string // "": no authentication
	password string
}

// NewSMTPServer starts a server without TLS or authentication on
// 127.0.0.1; t's cleanup closes it.
func NewSMTPServer(t testing.TB) *SMTPServer {
	return NewSMTPServerTLS(t, nil)
}

// NewSMTPServerTLS starts a server on 127.0.0.1 that offers STARTTLS
// with cfg (nil: it does not); t's cleanup closes it.
func NewSMTPServerTLS(t testing.TB, cfg *tls.Config) *SMTPServer {
	t.Helper()
	s := &SMTPServer{}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{server: s, tls: isTLS}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.TLSConfig = cfg
	// Authentication is offered only when RequireAuth was called, and
	// then also in plain text: the clients under test allow that on
	// loopback.
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	// Its complaints about clients would be logged after the test ended.
	s.srv.ErrorLog = log.New(io.Discard, "", 0)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for the SMTP server: %v", err)
	}
	s.addr = ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		// Close misses a listener that Serve has not registered yet, and
		// Serve would then accept forever.
		_ = ln.Close()
		<-served
	})
	return s
}

// Addr is the server's host:port.
func (s *SMTPServer) Addr() string { return s.addr }

// Messages returns the mail accepted so far, in order.
func (s *SMTPServer) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

// WaitFor waits until at least n messages have been accepted, failing t
// after timeout, and returns them.
func (s *SMTPServer) WaitFor(t testing.TB, n int, timeout time.Duration) []Mail {
	t.Helper()
	testwait.Until(t, timeout, fmt.Sprintf("%d mails at %s", n, s.addr), func() bool {
		return len(s.Messages()) >= n
	})
	return s.Messages()
}

// FailNext makes the server refuse the next n messages with code, once
// they are read (the reply to the end of DATA): 451 to test a temporary
// failure, 550 a permanent one. A refused message is not recorded.
func (s *SMTPServer) FailNext(n, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, code
}

// RequireAuth makes the server offer AUTH PLAIN and refuse mail from a
// client that has not authenticated as username with password. A refused
// login is answered 535 with the credentials it got quoted back, as some
// careless servers do, so that a test can check the client never passes
// them on.
func (s *SMTPServer) RequireAuth(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.username, s.password = username, password
}

// takeFailure returns the code with which to refuse the message just
// read, or 0 to accept it.
func (s *SMTPServer) takeFailure() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN == 0 {
		return 0
	}
	s.failN--
	return s.failCode
}

func (s *SMTPServer) credentials() (username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.username, s.password
}

// session is one client's connection.
type session struct {
	server *SMTPServer
	tls    bool
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*session)(nil)

func (se *session) AuthMechanisms() []string {
	if username, _ := se.server.credentials(); username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		wantUser, wantPassword := se.server.credentials()
		if username != wantUser || password != wantPassword {
			return &smtp.SMTPError{
				Code:         535,
				EnhancedCode: smtp.EnhancedCode{5, 7, 8},
				Message:      fmt.Sprintf("authentication failed for %q with password %q", username, password),
			}
		}
		se.authed = true
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if username, _ := se.server.credentials(); username != "" && !se.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if code := se.server.takeFailure(); code != 0 {
		return &smtp.SMTPError{
			Code:         code,
			EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0},
			Message:      "notifytest: refusing this message on purpose",
		}
	}
	m := Mail{From: se.from, To: slices.Clone(se.to), Data: data, TLS: se.tls}
	// A message that does not parse is recorded with its Data alone, for
	// the test to look at.
	if parsed, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		m.Header = parsed.Header
		var body io.Reader = parsed.Body
		if strings.EqualFold(parsed.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			return fmt.Errorf("notifytest: decode the body: %w", err)
		}
		m.Body = string(b)
	}
	se.server.mu.Lock()
	se.server.mails = append(se.server.mails, m)
	se.server.mu.Unlock()
	return nil
}

func (se *session) Reset() {
	se.from, se.to = "", nil
}

func (se *session) Logout() error { return nil }
