package main

// Helpers shared by the commands: opening the store, printing tables and
// JSON, parsing --data, formatting times and durations.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

// withStore opens the store named by --store as openStore does, runs fn on
// it and closes it: how every command that reads or writes the store
// reaches it. An error opening it is returned as openStore words it, so
// that each command says an unreachable or unmigrated store the same way.
func (a *app) withStore(ctx context.Context, fn func(store.Store) error) error {
	return withStoreOpened(ctx, a.openStore, fn)
}

// withStoreOpened opens the store with open, runs fn on it and closes it
// after fn returns: the one place the commands close what they open.
func withStoreOpened(ctx context.Context, open func(context.Context) (store.Store, error), fn func(store.Store) error) error {
	st, err := open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// openStore opens the store named by --store and checks that its schema is
// the one this bam knows. A SQLite file that does not exist is not created:
// the user is told to run `bam migrate`.
func (a *app) openStore(ctx context.Context) (store.Store, error) {
	if path, ok := storeurl.SQLitePath(a.storeURL); ok {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, &noStoreFileError{url: a.storeURL}
		}
	}
	st, err := storeurl.Open(ctx, a.storeURL)
	if err != nil {
		return nil, err
	}
	if err := st.CheckSchema(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("store %s: %w", storeurl.Redact(a.storeURL), err)
	}
	return st, nil
}

// noStoreFileError: the SQLite file of the store does not exist.
type noStoreFileError struct{ url string }

func (e *noStoreFileError) Error() string {
	return fmt.Sprintf("store %s does not exist; create it with `bam migrate --store %s`", e.url, e.url)
}

// openStoreWaiting opens the store as openStore does, but waits while it
// cannot be reached (a server down, a connection refused), logging each
// try, until ctx ends: a pool restarted together with its store comes up by
// itself. A store that answers but needs an operator (no bam schema, an
// older or newer one, a SQLite file that does not exist) is an error at
// once: waiting would not fix it. It is bam serve's: its errors say that
// the node is not starting.
func (a *app) openStoreWaiting(ctx context.Context) (store.Store, error) {
	st, err := a.waitForStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("not starting the node: %w", err)
	}
	return st, nil
}

// waitForStore is openStoreWaiting's loop.
func (a *app) waitForStore(ctx context.Context) (store.Store, error) {
	for attempt := 1; ; attempt++ {
		st, err := a.openStore(ctx)
		if err == nil {
			if attempt > 1 {
				a.log.Info("store reachable; starting", "store", storeurl.Redact(a.storeURL), "after_attempts", attempt)
			}
			return st, nil
		}
		// What an operator must fix stops the node at once; only a store
		// that does not answer is waited for.
		if errors.As(err, new(*noStoreFileError)) || errors.Is(err, store.ErrSchemaMissing) || errors.Is(err, store.ErrSchemaOld) ||
			errors.Is(err, store.ErrSchemaNewer) || errors.Is(err, store.ErrBadURL) || ctx.Err() != nil {
			return nil, err
		}
		wait := min(250*time.Millisecond<<min(attempt-1, 5), 5*time.Second)
		a.log.Warn("store unreachable; waiting for it (stop with SIGTERM or Ctrl-C)",
			"store", storeurl.Redact(a.storeURL), "err", err, "attempt", attempt, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("stopped while waiting for the store: %w", err)
		case <-t.C:
		}
	}
}

// openStoreToMigrate opens the store without checking its schema, creating
// a SQLite file's directory if needed.
func (a *app) openStoreToMigrate(ctx context.Context) (store.Store, error) {
	if path, ok := storeurl.SQLitePath(a.storeURL); ok && path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create the store's directory: %w", err)
		}
	}
	return storeurl.Open(ctx, a.storeURL)
}

// redactDSN returns a DSN fit to show: no password, whether it is a URL or
// a key=value string.
func redactDSN(dsn string) string { return storeurl.Redact(dsn) }

// table prints aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		// A tab or newline inside a cell would break the columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// printJSON prints v as indented JSON, HTML characters unescaped.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// parseData turns --data NAME=VALUE flags into an event's data. VALUE is
// taken as JSON when it is valid JSON (1200, true, null, "quoted text"; an
// object or array too, which the event check then refuses with its field
// name), and as a string otherwise.
func parseData(pairs []string) (map[string]json.RawMessage, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	data := make(map[string]json.RawMessage, len(pairs))
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return nil, usageErrorf("--data %q: use NAME=VALUE, e.g. --data Amount=1200 --data Customer=Contoso", p)
		}
		if _, dup := data[name]; dup {
			return nil, usageErrorf("--data %s is given twice", name)
		}
		if v := strings.TrimSpace(value); v != "" && json.Valid([]byte(v)) {
			data[name] = json.RawMessage(v)
			continue
		}
		s, err := json.Marshal(value)
		if err != nil {
			return nil, usageErrorf("--data %s: %v", name, err)
		}
		data[name] = s
	}
	return data, nil
}

// formatData prints data items as NAME=VALUE, sorted by name, VALUE in its
// JSON form (so "1200" and 1200 read differently).
func formatData(data map[string]json.RawMessage) string {
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		var b bytes.Buffer
		if err := json.Compact(&b, data[k]); err != nil {
			b.Reset()
			b.Write(data[k])
		}
		parts[i] = k + "=" + b.String()
	}
	return strings.Join(parts, " ")
}

// formatTime prints an instant in UTC to the second; "-" for none.
func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// jsonTime is an instant in JSON: RFC 3339 in UTC, null for none.
func jsonTime(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// formatDuration rounds a duration for people: 1.2s, 350ms, 4m12s, 3h5m.
func formatDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		s = d.Round(time.Millisecond).String()
	case d < time.Minute:
		s = d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		s = d.Round(time.Second).String()
	default:
		s = d.Round(time.Minute).String()
		s = strings.TrimSuffix(s, "0s")
	}
	if neg {
		return "-" + s
	}
	return s
}

// parseID reads a failed event's id.
func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErrorf("%q is not a failed event id (a positive number, see `bam failed list`)", s)
	}
	return id, nil
}

// showBytes returns an event's original bytes as text: as they are when
// they are UTF-8, else Go-quoted so that every byte shows.
func showBytes(b []byte) (text string, quoted bool) {
	if utf8.Valid(b) {
		return string(b), false
	}
	return strconv.Quote(string(b)), true
}

// readInput reads a file, or stdin for "-".
func (a *app) readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(a.stdin)
	}
	return os.ReadFile(path)
}

// openInput opens a file, or stdin for "-".
func (a *app) openInput(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(a.stdin), nil
	}
	return os.Open(path)
}

// sourceListHint is where a NoSourceError of the command line sends people.
const sourceListHint = "see bam source list"

// noSource is the error for a source name the store does not know; known
// are the names it does know, for a suggestion.
func noSource(name string, known ...string) error {
	return ops.NoSource(name, sourceListHint, known...)
}

// sourceNames returns the names of the store's sources, for suggestions.
func sourceNames(ctx context.Context, st store.Store) []string { return ops.SourceNames(ctx, st) }

// noFailedEvent is the error for a failed-event id the store does not
// know; errors.Is(err, store.ErrNotFound) holds.
func noFailedEvent(id int64) error {
	return fmt.Errorf("%w (see bam failed list)", ops.NoFailedEventError(id))
}
