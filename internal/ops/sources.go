package ops

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bam-dev/bam/internal/source/pgoutbox"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/suggest"
)

// InvalidError is a request that is wrong as written: retrying it cannot
// help, fixing it can.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

// Invalidf makes an *InvalidError.
func Invalidf(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

// Limits on a source's configuration.
const (
	MaxSourceName = 64
	MaxPartitions = 1024
)

var sourceName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// CheckSourceName checks a new source's name.
func CheckSourceName(name string) error {
	if len(name) > MaxSourceName || !sourceName.MatchString(name) {
		return Invalidf("source name %q: use 1 to %d letters, digits, _ or -", name, MaxSourceName)
	}
	return nil
}

// NewSource is a source to add, as an operator asks for it.
type NewSource struct {
	Name       string
	Kind       store.SourceKind
	Partitions int
	// DSN and Table are a pg-outbox source's database and outbox table
	// (Table "" is pgoutbox.DefaultTable). The DSN may hold a password:
	// no error shows it.
	DSN, Table string
	// TableSet: a table was given (refused for a buffer source).
	TableSet bool
	Disabled bool // added disabled: writes refused, nothing applied
	Paused   bool // added paused: writes accepted, nothing applied
	// FieldPrefix is put before the fields' names in errors: "--" on the
	// command line (--dsn), "" in the HTTP API (dsn, its JSON field).
	FieldPrefix string
}

// Source checks n, as `bam source add` does, and returns the source to
// add; every error is an *InvalidError naming the field at fault. A pg-outbox source's outbox is not identified
// yet: see Identify.
func (n NewSource) Source() (store.Source, error) {
	if err := CheckSourceName(n.Name); err != nil {
		return store.Source{}, err
	}
	f := n.FieldPrefix
	if n.Partitions < 1 || n.Partitions > MaxPartitions {
		return store.Source{}, Invalidf("%spartitions %d: use 1 to %d", f, n.Partitions, MaxPartitions)
	}
	src := store.Source{Name: n.Name, Kind: n.Kind, Partitions: n.Partitions, Enabled: !n.Disabled, Paused: n.Paused}
	switch n.Kind {
	case store.KindBuffer:
		if n.DSN != "" {
			return store.Source{}, Invalidf("%sdsn is for pg-outbox sources; a buffer source lives in the store", f)
		}
		if n.TableSet {
			return store.Source{}, Invalidf("%stable is for pg-outbox sources; a buffer source lives in the store", f)
		}
	case store.KindPgOutbox:
		if n.DSN == "" {
			return store.Source{}, Invalidf("a pg-outbox source needs %sdsn, the application's database (postgres://USER@HOST:PORT/DB)", f)
		}
		if _, err := pgx.ParseConfig(n.DSN); err != nil {
			// pgx's message may quote the DSN: say nothing of its content.
			return store.Source{}, Invalidf("%sdsn is not a valid PostgreSQL URL or key=value string (not shown: it may hold a password)", f)
		}
		table := n.Table
		if !n.TableSet && table == "" {
			table = pgoutbox.DefaultTable
		}
		if _, err := pgoutbox.ParseTable(table); err != nil {
			return store.Source{}, &InvalidError{Msg: err.Error()}
		}
		src.DSN, src.Table = n.DSN, table
	default:
		return store.Source{}, Invalidf("%skind %q: use buffer or pg-outbox", f, n.Kind)
	}
	return src, nil
}

// Identify records in src which outbox a pg-outbox source reads, trying
// for up to timeout, so that a second source on the same table is refused
// at once; when the database cannot be reached it returns why (a warning:
// a node records the outbox when it first reaches it). Buffer sources are
// left alone.
func Identify(ctx context.Context, src *store.Source, timeout time.Duration) (warning error) {
	if src.Kind != store.KindPgOutbox {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	o, err := pgoutbox.Identify(ctx, src.DSN, src.Table)
	src.Outbox = o
	return err
}

// AddSource adds src, saying what a refusal means: a name taken (wraps
// store.ErrExists), an outbox another source reads (store.ErrOutboxTaken).
func AddSource(ctx context.Context, st store.Store, src store.Source) error {
	err := st.AddSource(ctx, src)
	switch {
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("source %q already exists: %w", src.Name, err)
	case errors.Is(err, store.ErrOutboxTaken):
		return fmt.Errorf("%w; two sources on one outbox table would both apply every event", err)
	}
	return err
}

// SourceJSON is a source in JSON (`bam source list --json`, the HTTP
// API). ToSourceJSON never fills DSN: the HTTP API never shows it, and
// the command line shows it with its password masked.
type SourceJSON struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Partitions int    `json:"partitions"`
	Enabled    bool   `json:"enabled"`
	Paused     bool   `json:"paused"`
	DSN        string `json:"dsn,omitempty"`   // password masked
	Table      string `json:"table,omitempty"` // pg-outbox only
	CreatedAt  string `json:"created_at,omitempty"`
	// Outbox is the outbox the source's checkpoints are positions in
	// (pg-outbox, once recorded); Stopped why its sessions stopped.
	Outbox  string `json:"outbox,omitempty"`
	Stopped string `json:"stopped,omitempty"`
}

// ToSourceJSON returns src's JSON form.
func ToSourceJSON(s store.Source) SourceJSON {
	j := SourceJSON{Name: s.Name, Kind: string(s.Kind), Partitions: s.Partitions, Enabled: s.Enabled, Paused: s.Paused}
	if t := rfc3339(&s.CreatedAt); t != nil {
		j.CreatedAt = *t
	}
	if s.Kind == store.KindPgOutbox {
		j.Table, j.Stopped = s.Table, s.OutboxStopped
		if !s.Outbox.IsZero() {
			j.Outbox = s.Outbox.String()
		}
	}
	return j
}

// SourceState says whether a source takes writes and whether its events
// are applied: "enabled" (both), "paused" (writes only), "disabled"
// (neither), "disabled, paused" (neither, and paused once enabled).
func SourceState(src store.Source) string {
	switch {
	case src.Enabled && src.Paused:
		return "paused"
	case src.Enabled:
		return "enabled"
	case src.Paused:
		return "disabled, paused"
	}
	return "disabled"
}

// NoSourceError is the error for a source name the store does not know,
// with the closest known name. errors.Is(err, store.ErrNotFound) holds.
type NoSourceError struct {
	Name    string
	Closest string
	// Hint is said after the name: where to see the sources.
	Hint string
}

// NoSource returns a *NoSourceError for name, suggesting the closest of
// known; hint says where to see the sources ("see bam source list").
func NoSource(name, hint string, known ...string) error {
	return &NoSourceError{Name: name, Closest: suggest.Closest(name, known), Hint: hint}
}

func (e *NoSourceError) Error() string {
	if e.Closest != "" {
		return fmt.Sprintf("no source named %q (did you mean %s? %s)", e.Name, e.Closest, e.Hint)
	}
	return fmt.Sprintf("no source named %q (%s)", e.Name, e.Hint)
}

func (e *NoSourceError) Is(target error) bool { return target == store.ErrNotFound }

// SourceNames returns the names of the store's sources, for suggestions;
// none when they cannot be read (the error at hand says enough).
func SourceNames(ctx context.Context, st interface {
	Sources(ctx context.Context) ([]store.Source, error)
}) []string {
	srcs, err := st.Sources(ctx)
	if err != nil {
		return nil
	}
	names := make([]string, len(srcs))
	for i, s := range srcs {
		names[i] = s.Name
	}
	return names
}

// rfc3339 formats a time for JSON: RFC 3339 in UTC, nil when unknown.
func rfc3339(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}
