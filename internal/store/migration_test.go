package store

import (
	"errors"
	"testing"
	"testing/fstest"
)

func TestLoadMigrationsRefusesGapsAndBadNames(t *testing.T) {
	ok := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
	}
	ms, err := LoadMigrations(ok, "m")
	if err != nil || len(ms) != 2 || ms[0].SQL != "A" || ms[1].Version != 2 || ms[1].Name != "0002_more.sql" {
		t.Fatalf("LoadMigrations = %+v, %v", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"bad name": {"m/init.sql": {}},
		"not sql":  {"m/0001_a.txt": {}},
	} {
		if _, err := LoadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: LoadMigrations accepted it", name)
		}
	}
}

func TestCompareSchema(t *testing.T) {
	if err := CompareSchema(3, 3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		have int
		want error
	}{{0, ErrSchemaMissing}, {2, ErrSchemaOld}, {4, ErrSchemaNewer}} {
		if err := CompareSchema(c.have, 3); !errors.Is(err, c.want) {
			t.Errorf("CompareSchema(%d, 3) = %v, want %v", c.have, err, c.want)
		}
	}
}
