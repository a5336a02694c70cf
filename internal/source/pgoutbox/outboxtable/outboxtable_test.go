package outboxtable

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestParse(t *testing.T) {
	for table, want := range map[string]string{
		"":                      "bam_outbox",
		"orders_outbox":         "orders_outbox",
		"Sales.Order Outbox":    "Sales|Order Outbox",
		strings.Repeat("x", 63): strings.Repeat("x", 63),
	} {
		got, err := Parse(table)
		if err != nil || strings.Join(got, "|") != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", table, got, err, want)
		}
	}
	for _, bad := range []string{`"quoted"`, "a.b.c", ".x", "x.", strings.Repeat("x", 64), "a\x00b"} {
		if got, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %q, %v; want ErrInvalid", bad, got, err)
		}
	}
}

// TestQuoteIsPgxs: the outbox writer's INSERT and the reader's queries name
// the same table.
func TestQuoteIsPgxs(t *testing.T) {
	for _, parts := range [][]string{{"bam_outbox"}, {"Sales", "Order Outbox"}, {`a"b`, "c\x00d"}, {"ü", "x.y"}} {
		if got, want := Quote(parts), pgx.Identifier(parts).Sanitize(); got != want {
			t.Errorf("Quote(%q) = %s, pgx says %s", parts, got, want)
		}
	}
}
