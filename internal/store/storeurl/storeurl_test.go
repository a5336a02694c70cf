package storeurl

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/testpg"
)

func TestRedactHidesPasswords(t *testing.T) {
	for _, raw := range []string{
		"postgres://app:s3cret@db:5432/app",
		"postgresql://app:s3cret@db/app?sslmode=disable",
		"postgres://app@db/app?password=s3cret",
		"host=db user=app password=s3cret dbname=app",
		"host=db password='s3 cret' dbname=app",
		"host=db PASSWORD = s3cret",
	} {
		if got := Redact(raw); strings.Contains(got, "s3") {
			t.Errorf("Redact(%q) = %q: the password shows", raw, got)
		}
	}
	if got := Redact("sqlite:bam-data/bam.db"); got != "sqlite:bam-data/bam.db" {
		t.Errorf("Redact of a sqlite URL = %q", got)
	}
	if got := Redact("postgres://app@db/app"); got != "postgres://app@db/app" {
		t.Errorf("Redact of a URL without password = %q", got)
	}
}

// TestSourcesKeepTheRecordedServer: an outbox identity recorded without a
// system identifier reads back, on both drivers, with the server its reader
// reached, not what the source's DSN would resolve to in this process; the
// SQLite driver so needs no PostgreSQL client to read it.
func TestSourcesKeepTheRecordedServer(t *testing.T) {
	ctx := context.Background()
	for kind, url := range map[string]string{
		"sqlite":   "sqlite:" + filepath.Join(t.TempDir(), "bam.db"),
		"postgres": testpg.NewDatabase(t),
	} {
		t.Run(kind, func(t *testing.T) {
			st, err := Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, _, err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			recorded := store.OutboxIdentity{Server: "/var/run/postgresql:5433", DatabaseOID: 16384, Database: "shop", Table: "public.bam_outbox"}
			if err := st.AddSource(ctx, store.Source{Name: "shop", Kind: store.KindPgOutbox, Partitions: 1, Enabled: true,
				DSN: "postgres://app@db.example.com/shop", Table: "bam_outbox", Outbox: recorded}); err != nil {
				t.Fatal(err)
			}
			src, err := st.Source(ctx, "shop")
			if err != nil {
				t.Fatal(err)
			}
			if src.Outbox != recorded {
				t.Fatalf("Source(shop).Outbox = %+v, want %+v as recorded", src.Outbox, recorded)
			}
		})
	}
}
