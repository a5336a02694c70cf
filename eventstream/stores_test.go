package eventstream_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bam-dev/bam/eventstream"
	"github.com/bam-dev/bam/eventstream/pgstream"
	"github.com/bam-dev/bam/eventstream/sqlitestream"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
	"github.com/bam-dev/bam/internal/testpg"
)

// The tests of the streams against real stores live in this external test
// package: they use both driver packages, which import eventstream.

// driverFor returns the driver of the store at url, as an application that
// takes either kind of store URL chooses it.
func driverFor(url string) eventstream.Driver {
	if strings.HasPrefix(url, "sqlite:") {
		return sqlitestream.New()
	}
	return pgstream.New()
}

// storeURLs runs f with a fresh store URL of each driver, migrated.
func storeURLs(t *testing.T, f func(t *testing.T, url string, st store.Store)) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			url := newStoreURL(t, driver)
			ctx := context.Background()
			st, err := storeurl.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if _, _, err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			f(t, url, st)
		})
	}
}

// newStoreURL returns the URL of a new empty store of driver (sqlite or
// postgres), removed when the test ends.
func newStoreURL(t testing.TB, driver string) string {
	t.Helper()
	if driver == "postgres" {
		return testpg.NewDatabase(t)
	}
	return "sqlite:" + filepath.Join(t.TempDir(), "bam.db")
}

// migrate makes a migrated store at url.
func migrate(t testing.TB, url string) {
	t.Helper()
	st, err := storeurl.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
}
