// Package storeurl opens a store from the URL an operator gives with
// --store or BAM_STORE: postgres://… (or postgresql://…) for PostgreSQL,
// sqlite:PATH for the embedded default.
package storeurl

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/postgres"
	"github.com/bam-dev/bam/internal/store/sqlite"
)

// Default is the store a new user gets: a SQLite file in ./bam-data.
const Default = sqlite.DefaultURL

// Open opens the store a URL names. It links both drivers: a program that
// knows its kind of store opens it with that driver's package alone (as the
// SDK's driver packages, eventstream/pgstream and eventstream/sqlitestream,
// do), and links only that one.
func Open(ctx context.Context, raw string) (store.Store, error) {
	switch {
	case postgres.IsURL(raw):
		st, err := postgres.Open(ctx, raw)
		if err != nil {
			return nil, err // it names the store, password masked
		}
		return st, nil
	case strings.HasPrefix(raw, "sqlite:"):
		st, err := sqlite.OpenURL(ctx, raw)
		if err != nil {
			return nil, err // not a nil *sqlite.Store in a non-nil store.Store
		}
		return st, nil
	default:
		return nil, fmt.Errorf("store URL %s: unknown kind; use postgres://USER@HOST:PORT/DB or sqlite:PATH (%w)", Redact(raw), store.ErrBadURL)
	}
}

// SQLitePath returns the file a sqlite: store URL names, and whether raw
// is a sqlite: URL at all.
func SQLitePath(raw string) (string, bool) { return sqlite.PathOf(raw) }

// kvPassword finds the password of a key=value PostgreSQL connection string.
var kvPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redact returns a store URL or PostgreSQL DSN (URL or key=value form) fit
// for logs and errors: no password.
func Redact(raw string) string {
	switch {
	case raw == "", strings.HasPrefix(raw, "sqlite:"):
		return raw
	case !postgres.IsURL(raw):
		return kvPassword.ReplaceAllString(raw, "${1}xxxxx")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
