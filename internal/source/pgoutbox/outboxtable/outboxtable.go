// Package outboxtable reads the name of a pg-outbox table as an operator
// (bam source add --table) or an application (eventstream.OutboxConfig)
// gives it, and quotes it for SQL. It imports no PostgreSQL client, so that
// the SDK's outbox writer, which talks to the application's database
// through the application's own driver, links none; package pgoutbox, the
// reader, parses names with it too.
package outboxtable

import (
	"errors"
	"fmt"
	"strings"
)

// Default is the outbox table used when none is named.
const Default = "bam_outbox"

// MaxIdentLen is PostgreSQL's identifier and NOTIFY channel limit in bytes
// (NAMEDATALEN − 1). Longer names would be truncated silently by the
// server, so the table the reader names and the table the trigger fires on
// could differ; Parse refuses them instead.
const MaxIdentLen = 63

// ErrInvalid is wrapped by the errors of Parse: the name cannot name an
// outbox table.
var ErrInvalid = errors.New("invalid outbox table name")

// Parse splits a table name into its parts: "" is Default, "name" is a
// table found through the search_path, and "schema.name" is a table in
// that schema. Each part is taken literally (case and spaces kept, quoted
// by Quote when it reaches SQL), so quotes are refused rather than guessed
// at: write App.Outbox, not "App"."Outbox".
func Parse(table string) ([]string, error) {
	if table == "" {
		return []string{Default}, nil
	}
	parts := strings.Split(table, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%w %q: use name or schema.name", ErrInvalid, table)
	}
	for _, p := range parts {
		switch {
		case p == "":
			return nil, fmt.Errorf("%w %q: empty schema or table name", ErrInvalid, table)
		case len(p) > MaxIdentLen:
			return nil, fmt.Errorf("%w %q: %q is over PostgreSQL's limit of %d bytes", ErrInvalid, table, p, MaxIdentLen)
		case strings.ContainsAny(p, "\"\x00"):
			return nil, fmt.Errorf("%w %q: write names without quotes, they are taken literally", ErrInvalid, table)
		}
	}
	return parts, nil
}

// Quote returns the parts of a name as one quoted SQL identifier,
// "schema"."name", as pgx.Identifier.Sanitize does (which a test holds it
// to).
func Quote(parts []string) string {
	quoted := make([]string, len(parts))
	for i, p := range parts {
		p = strings.ReplaceAll(p, "\x00", "")
		quoted[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(quoted, ".")
}
