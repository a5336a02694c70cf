package eventstream_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/pgstream"
	"github.com/bam-dev/bam/eventstream/sqlitestream"
)

// TestOneDriverLinksOneDatabase: the SDK's core links no database client,
// and a program that names one driver package links that database's client
// and not the other's (go list -deps of the programs in internal/onedriver).
func TestOneDriverLinksOneDatabase(t *testing.T) {
	const pgx, sqlite = "github.com/jackc/", "modernc.org/"
	for _, c := range []struct {
		name, pkg    string
		links, never []string
	}{
		{name: "core", pkg: ".", never: []string{pgx, sqlite}},
		{name: "postgres", pkg: "./internal/onedriver/pgonly", links: []string{"github.com/jackc/pgx/v5"}, never: []string{sqlite}},
		{name: "sqlite", pkg: "./internal/onedriver/sqliteonly", links: []string{"modernc.org/sqlite"}, never: []string{pgx}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", c.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", c.pkg, err)
			}
			deps := strings.Fields(string(out))
			for _, want := range c.links {
				if !slices.Contains(deps, want) {
					t.Errorf("%s does not link %s: the program does not use its driver", c.pkg, want)
				}
			}
			for _, dep := range deps {
				for _, prefix := range c.never {
					if strings.HasPrefix(dep, prefix) {
						t.Errorf("%s links %s", c.pkg, dep)
					}
				}
			}
		})
	}
}

// TestDriversRefuseTheOtherKindOfStore: a store URL of the other kind is
// refused before anything is opened, naming the driver to use, without
// showing a password.
func TestDriversRefuseTheOtherKindOfStore(t *testing.T) {
	ctx := t.Context()
	file := filepath.Join(t.TempDir(), "bam.db")
	_, err := eventstream.OpenDirect(ctx, pgstream.New(), "sqlite:"+file, eventstream.DirectOptions{})
	if err == nil || !strings.Contains(err.Error(), "sqlitestream.New()") {
		t.Errorf("pgstream's driver on a SQLite store: %v, want an error naming sqlitestream.New()", err)
	}
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pgstream's driver touched the SQLite file: %v", err)
	}
	_, err = eventstream.OpenBuffered(ctx, sqlitestream.New(), "postgres://app:s3cret@127.0.0.1:1/bam", "orders", eventstream.BufferedOptions{})
	if err == nil || !strings.Contains(err.Error(), "pgstream.New()") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("sqlitestream's driver on a PostgreSQL store: %v, want an error naming pgstream.New(), without the password", err)
	}
}
