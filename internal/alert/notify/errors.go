package notify

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrPermanent is wrapped by the errors that retrying cannot fix: an HTTP
// 4xx other than 408, 425 and 429, a 3xx, an SMTP 5xx reply, a bad address
// or URL. Callers wrap it too for failures of their own that are as final,
// such as a secret's environment variable that is not set.
var ErrPermanent = errors.New("permanent delivery failure")

// permanent marks err as final: errors.Is(result, ErrPermanent) holds and
// the text stays err's, so that the caller decides how to say "giving up".
func permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// RetryAfterError is a failure worth retrying whose receiver said how long
// to wait first (HTTP 429 or 503 with Retry-After). After is never
// negative (an HTTP date already past gives 0) and is not capped: the
// caller bounds it by its own policy.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// redactor hides secrets (a URL's password and query values, an SMTP
// password and its encodings) in text that came from elsewhere: an
// answer's body, a server's reply, a library's error. Such text can quote
// the request back, and it is about to go into an error that will be
// logged and stored.
type redactor []string

func (r redactor) redact(s string) string {
	// Longest first: a short secret inside a longer one would otherwise
	// break it up and leave the rest of it shown.
	longestFirst := slices.SortedFunc(slices.Values(r), func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, secret := range longestFirst {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// redactedError is a failure whose text was built and redacted here. It
// unwraps to a cause only when the cause's own text is known to hold no
// secret, so that errors.As cannot reach an unredacted one.
type redactedError struct {
	text  string
	cause error // nil when there is none that is safe to expose
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.cause }
