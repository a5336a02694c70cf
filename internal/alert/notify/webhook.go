package notify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Webhook posts messages to webhook URLs. The zero value is ready to use,
// and a Webhook is safe for concurrent use.
type Webhook struct {
	// Client makes the requests. nil: one with a 10 s timeout that does
	// not follow redirects, so that a 3xx comes back as a permanent error.
	Client *http.Client
	// UserAgent is sent as User-Agent, e.g. "bam/dev"; "": "bam".
	UserAgent string
}

const (
	// webhookTimeout bounds a whole attempt of the default client: a
	// receiver that takes longer is retried later rather than holding a
	// delivery worker.
	webhookTimeout = 10 * time.Second
	// maxErrorBody is how much of a failed answer's body an error quotes:
	// enough for a receiver's one-line reason, not for an HTML page.
	maxErrorBody = 200
	// maxDrain is how much of an answer is read past what is used, so that
	// the connection can be reused without reading an endless body.
	maxDrain = 64 << 10
)

// Send POSTs m as JSON to rawURL (see the package doc for the request and
// how its answer is classified). secret, when not empty, signs it.
func (w *Webhook) Send(ctx context.Context, rawURL string, secret []byte, m Message) error {
	target, err := parseWebhookURL(rawURL)
	if err != nil {
		return err
	}
	if err := checkDeliveryID(m.DeliveryID); err != nil {
		return err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return permanent(target.errorf(nil, "encode the message: %v", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.url.String(), bytes.NewReader(body))
	if err != nil {
		return permanent(target.errorf(nil, "%v", err))
	}
	timestamp := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", cmp.Or(w.UserAgent, "bam"))
	req.Header.Set("X-Bam-Delivery", m.DeliveryID)
	req.Header.Set("X-Bam-Timestamp", timestamp)
	if len(secret) > 0 {
		req.Header.Set("X-Bam-Signature", Sign(secret, timestamp, body))
	}

	client := w.Client
	if client == nil {
		client = &http.Client{
			Timeout: webhookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		// A *url.Error quotes the whole URL, query included: keep only
		// what it wraps (a dial error, a timeout, a context's end).
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return target.errorf(err, "%v", err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}()
	return target.classify(resp)
}

// webhookURL is a webhook's address with what an error may show of it.
type webhookURL struct {
	url     *url.URL
	shown   string   // scheme://host/path: no user information, no query
	secrets redactor // the password and the query, hidden in foreign text
}

// parseWebhookURL accepts an absolute http or https URL. A URL that does
// not is permanent; the error never quotes it whole.
func parseWebhookURL(raw string) (webhookURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// The wrapped error quotes at most a few characters (a port, an
		// escape), the *url.Error around it the whole URL.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return webhookURL{}, permanent(fmt.Errorf("webhook URL does not parse: %v", err))
	}
	t := webhookURL{url: u, shown: showURL(u)}
	if p, ok := u.User.Password(); ok {
		t.secrets = append(t.secrets, p)
	}
	if u.RawQuery != "" {
		t.secrets = append(t.secrets, u.RawQuery)
		for _, values := range u.Query() {
			for _, v := range values {
				// Shorter values are hardly tokens, and hiding them would
				// garble the text ("?v=1" would hide every "1").
				if len(v) >= 4 {
					t.secrets = append(t.secrets, v, url.QueryEscape(v))
				}
			}
		}
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return webhookURL{}, permanent(t.errorf(nil, "not an absolute http or https URL"))
	}
	return t, nil
}

// showURL is u without its user information, query and fragment, for an
// error: a URL may carry a token there. A query is marked, so that the
// reader knows the URL shown is not the whole one.
func showURL(u *url.URL) string {
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	s := shown.String()
	if u.RawQuery != "" {
		s += "?[redacted]"
	}
	return s
}

// errorf builds an error naming the URL. The formatted text is redacted,
// since it may quote the receiver or a library; cause, when not nil, is
// what the error unwraps to and must hold no secret.
func (t webhookURL) errorf(cause error, format string, args ...any) error {
	return &redactedError{
		text:  "webhook " + t.shown + ": " + t.secrets.redact(fmt.Sprintf(format, args...)),
		cause: cause,
	}
}

// classify turns an answer into Send's result.
func (t webhookURL) classify(resp *http.Response) error {
	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return nil
	}
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	if code >= 300 && code <= 399 {
		where := "no Location"
		if loc, err := resp.Location(); err == nil {
			where = "Location " + showURL(loc)
		}
		return permanent(t.errorf(nil, "%s, %s: redirects are not followed, so the subscription's URL needs correcting", status, where))
	}
	if body := errorBody(resp.Body); body != "" {
		status += ": " + body
	}
	err := t.errorf(nil, "%s", status)
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			if after, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				return &RetryAfterError{After: after, Err: err}
			}
		}
		return err
	default:
		return permanent(err)
	}
}

// errorBody is the start of a failed answer's body, on one line, as an
// error may quote it: at most maxErrorBody bytes, control characters and
// runs of white space as one space, invalid UTF-8 replaced.
func errorBody(body io.Reader) string {
	buf, _ := io.ReadAll(io.LimitReader(body, maxErrorBody+1))
	truncated := len(buf) > maxErrorBody
	if truncated {
		buf = buf[:maxErrorBody]
		// Drop the bytes of a character cut in two rather than show it
		// as a replacement character.
		for range utf8.UTFMax - 1 {
			if r, size := utf8.DecodeLastRune(buf); r != utf8.RuneError || size != 1 {
				break
			}
			buf = buf[:len(buf)-1]
		}
	}
	s := strings.ToValidUTF8(string(buf), "\uFFFD")
	s = oneLine(s)
	if truncated && s != "" {
		s += "…"
	}
	return s
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date
// (which gives 0 once past). ok is false when there is none or it does not
// parse.
func parseRetryAfter(v string, now time.Time) (after time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		return time.Duration(min(secs, math.MaxInt64/uint64(time.Second))) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// Sign returns the X-Bam-Signature of a request: "sha256=" and the hex
// HMAC-SHA256, keyed with secret, of timestamp, ".", and body.
func Sign(secret []byte, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(hmacOf(secret, timestamp, body))
}

// Verify reports whether signature is the X-Bam-Signature of timestamp and
// body under secret, comparing in constant time. An empty secret verifies
// nothing. It does not look at the timestamp's age: a receiver should
// also refuse one more than a few minutes from its own clock.
func Verify(secret []byte, timestamp string, body []byte, signature string) bool {
	if len(secret) == 0 {
		return false
	}
	hexMAC, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexMAC)
	if err != nil {
		return false
	}
	return hmac.Equal(got, hmacOf(secret, timestamp, body))
}

func hmacOf(secret []byte, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}
