package notify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mailer sends messages by email through one SMTP server. A Mailer is
// safe for concurrent use: each Send opens a connection of its own.
type Mailer struct {
	Addr string // host:port of the SMTP server, usually the submission port 587
	From string // the sender, with or without a display name: "bam <bam@example.com>"
	// Username, when not empty, authenticates with AUTH PLAIN, which is
	// only ever sent over TLS or to a server on a loopback address.
	Username string
	Password string // never appears in an error
	// RequireTLS refuses to send in plain text to a loopback server that
	// does not offer STARTTLS. A server that is not on a loopback address
	// always has to offer it.
	RequireTLS bool
	// TLSConfig is used for STARTTLS. nil: the system's roots; an empty
	// ServerName is taken from Addr.
	TLSConfig *tls.Config
	Timeout   time.Duration // bounds a whole attempt; 0: 30 s
}

const (
	defaultMailTimeout = 30 * time.Second
	// maxSubjectLine is how much of the message's first line the subject
	// quotes, in characters: what a mail client's list shows, about.
	maxSubjectLine = 120
	// heloName is how bam introduces itself (EHLO): a submission server
	// identifies the sender by its login, not by this name.
	heloName = "localhost"
)

// Send makes one attempt to deliver msg to the address to (see the
// package doc for the email and how failures are classified).
func (m *Mailer) Send(ctx context.Context, to string, msg Message) error {
	if err := checkDeliveryID(msg.DeliveryID); err != nil {
		return err
	}
	rcpt, err := parseAddress("recipient", to)
	if err != nil {
		return err
	}
	from, err := parseAddress("sender", m.From)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return permanent(fmt.Errorf("SMTP server address %q: %v", m.Addr, err))
	}
	data := compose(from, rcpt, msg, time.Now())

	// The context bounds the attempt; its end closes the connection, which
	// ends whatever exchange is under way (go-smtp resets the connection's
	// deadlines after each command, so they cannot bound it).
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(m.Timeout, defaultMailTimeout))
	defer cancel()
	c, err := m.open(ctx, host)
	if err != nil {
		return err
	}
	defer c.Close()

	if m.Username != "" {
		// open ensured TLS, or a loopback server, so the password goes
		// nowhere else.
		if !c.SupportsAuth(sasl.Plain) {
			return permanent(m.failure(ctx, "AUTH", errors.New("the server does not offer AUTH PLAIN")))
		}
		if err := c.Auth(sasl.NewPlainClient("", m.Username, m.Password)); err != nil {
			return m.failure(ctx, "AUTH", err)
		}
	}
	var opts *smtp.MailOptions
	if !isASCII(from.Address) || !isASCII(rcpt.Address) {
		opts = &smtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(from.Address, opts); err != nil {
		return m.failure(ctx, "MAIL FROM", err)
	}
	if err := c.Rcpt(rcpt.Address, nil); err != nil {
		return m.failure(ctx, "RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return m.failure(ctx, "DATA", err)
	}
	if _, err := w.Write(data); err != nil {
		return m.failure(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return m.failure(ctx, "end of DATA", err)
	}
	// The server has taken the message: a failed goodbye changes nothing.
	_ = c.Quit()
	return nil
}

// open connects to the server and says hello, over TLS (STARTTLS) unless
// the server is on a loopback address, does not offer it, and RequireTLS
// is not set.
func (m *Mailer) open(ctx context.Context, host string) (*smtp.Client, error) {
	conn, err := m.dial(ctx)
	if err != nil {
		return nil, err
	}
	if !m.RequireTLS && isLoopback(conn) {
		c := smtp.NewClient(conn)
		if err := c.Hello(heloName); err != nil {
			_ = c.Close()
			return nil, m.failure(ctx, "EHLO", err)
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return c, nil
		}
		// It offers TLS after all. go-smtp starts TLS only on a client
		// that has not said hello yet, so dial again: a connection more,
		// on a path that only local relays take.
		_ = c.Quit()
		if conn, err = m.dial(ctx); err != nil {
			return nil, err
		}
	}
	cfg := &tls.Config{}
	if m.TLSConfig != nil {
		cfg = m.TLSConfig.Clone()
	}
	cfg.ServerName = cmp.Or(cfg.ServerName, host)
	cfg.MinVersion = cmp.Or(cfg.MinVersion, tls.VersionTLS12)
	c, err := smtp.NewClientStartTLS(conn, cfg)
	if err != nil {
		return nil, m.failure(ctx, "STARTTLS", err)
	}
	// The handshake happens with the first command after STARTTLS; say
	// hello now so that its failure is reported as such.
	if err := c.Hello(heloName); err != nil {
		_ = c.Close()
		return nil, m.failure(ctx, "EHLO after STARTTLS", err)
	}
	return c, nil
}

// dial connects to the server; the connection is closed when ctx ends.
func (m *Mailer) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return nil, m.failure(ctx, "connect", err)
	}
	context.AfterFunc(ctx, func() { _ = conn.Close() })
	return conn, nil
}

func isLoopback(conn net.Conn) bool {
	addr, ok := conn.RemoteAddr().(*net.TCPAddr)
	return ok && addr.IP.IsLoopback()
}

// failure builds the error of a failed step. Its text is redacted of the
// password, which a server may quote back; a reply of 5xx is permanent.
// It unwraps to the reply (*smtp.SMTPError, redacted too), to the network
// error, or to the context's error when the context ended the attempt,
// and to nothing else, since other errors can quote the server.
func (m *Mailer) failure(ctx context.Context, step string, err error) error {
	prefix := fmt.Sprintf("smtp %s: %s: ", m.Addr, step)
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The connection was closed under the exchange: what that
		// caused is noise next to why.
		return &redactedError{text: prefix + ctxErr.Error(), cause: ctxErr}
	}
	secrets := m.secrets()
	text := prefix + secrets.redact(err.Error())
	if reply, ok := errors.AsType[*smtp.SMTPError](err); ok {
		safe := *reply
		safe.Message = secrets.redact(reply.Message)
		failed := &redactedError{text: text, cause: &safe}
		if reply.Code >= 500 {
			return permanent(failed)
		}
		return failed
	}
	if netErr, ok := errors.AsType[*net.OpError](err); ok {
		return &redactedError{text: text, cause: netErr}
	}
	return &redactedError{text: text}
}

// secrets are the password and the forms in which a server could quote it
// back: base64 of itself and of the whole AUTH PLAIN response.
func (m *Mailer) secrets() redactor {
	if m.Password == "" {
		return nil
	}
	b64 := base64.StdEncoding.EncodeToString
	return redactor{
		b64([]byte("\x00" + m.Username + "\x00" + m.Password)),
		b64([]byte(m.Password)),
		m.Password,
	}
}

// parseAddress accepts exactly one address, with or without a display
// name. Anything else is permanent: retrying will not make it parse.
func parseAddress(role, s string) (*mail.Address, error) {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return nil, permanent(fmt.Errorf("%s address %q: control characters are not allowed", role, s))
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, permanent(fmt.Errorf("%s address %q: %v", role, s, err))
	}
	return a, nil
}

// compose returns the email as sent after DATA: headers, a blank line,
// and the body in quoted-printable, with CRLF line ends.
func compose(from, to *mail.Address, msg Message, now time.Time) []byte {
	var b bytes.Buffer
	writeHeader(&b, "From", from.String())
	writeHeader(&b, "To", to.String())
	writeHeader(&b, "Subject", mime.QEncoding.Encode("utf-8", subject(msg)))
	writeHeader(&b, "Date", now.Format(time.RFC1123Z))
	writeHeader(&b, "Message-ID", "<"+msg.DeliveryID+"@bam>")
	writeHeader(&b, "X-Bam-Delivery", msg.DeliveryID)
	// RFC 3834: tells vacation responders not to answer.
	writeHeader(&b, "Auto-Submitted", "auto-generated")
	writeHeader(&b, "MIME-Version", "1.0")
	writeHeader(&b, "Content-Type", "text/plain; charset=utf-8")
	writeHeader(&b, "Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	// Writes to a bytes.Buffer do not fail.
	_, _ = qp.Write([]byte(body(msg)))
	_ = qp.Close()
	return b.Bytes()
}

// writeHeader writes one header field, folded at spaces so that its lines
// stay near 76 characters (a long subject, or one of many encoded-words,
// could pass the 998 that RFC 5322 allows). value must be one line, as
// oneLine and the mime and mail encoders make it.
func writeHeader(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for _, word := range strings.Split(value, " ") {
		if len(line)+1+len(word) > 76 && line != name+":" {
			b.WriteString(line)
			b.WriteString("\r\n")
			line = ""
		}
		line += " " + word
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}

// subject is "[bam severity] activity.alert: first line of the message",
// that line cut to maxSubjectLine characters.
func subject(msg Message) string {
	first, _, _ := strings.Cut(strings.ReplaceAll(strings.TrimSpace(msg.Message), "\r", "\n"), "\n")
	first = oneLine(first)
	if utf8.RuneCountInString(first) > maxSubjectLine {
		first = string([]rune(first)[:maxSubjectLine-1]) + "…"
	}
	return fmt.Sprintf("[bam %s] %s.%s: %s", oneLine(msg.Severity), oneLine(msg.Activity), oneLine(msg.Alert), first)
}

// body is the email's text: the message, then one line per field.
func body(msg Message) string {
	var b strings.Builder
	if msg.Test {
		b.WriteString("This is a test sent by `bam alert test`, not a real firing.\n\n")
	}
	b.WriteString(strings.TrimRight(msg.Message, " \t\r\n"))
	b.WriteString("\n\n")
	field := func(name, value string) {
		fmt.Fprintf(&b, "%-10s%s\n", name+":", oneLine(value))
	}
	field("Activity", msg.Activity)
	field("Alert", msg.Alert)
	field("Severity", msg.Severity)
	field("Key", msg.Key)
	if msg.Value != "" {
		field("Value", msg.Value)
	}
	field("Fired at", msg.FiredAt.UTC().Format(time.RFC3339))
	if msg.Link != "" {
		field("Link", msg.Link)
	}
	field("Delivery", msg.DeliveryID)
	return b.String()
}

// oneLine is s with control characters (CR and LF among them) and runs of
// white space made one space: what may go into a header, or a line of
// its own in the body.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
