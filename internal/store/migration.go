package store

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one versioned schema script of a driver. A released script
// is never edited; a change is a new script.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads a driver's embedded scripts, named NNNN_what.sql, from
// dir of fsys, in version order. The versions must run 1, 2, 3… without a
// gap, so that a missing file cannot go unnoticed.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %s is not named NNNN_what.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", m.Name, i+1)
		}
	}
	return out, nil
}

// CompareSchema returns nil when a store's schema version (0: none) is the
// one this binary knows, else ErrSchemaMissing, ErrSchemaOld or
// ErrSchemaNewer with both versions.
func CompareSchema(have, know int) error {
	switch {
	case have == 0:
		return fmt.Errorf("%w (this bam knows version %d)", ErrSchemaMissing, know)
	case have < know:
		return fmt.Errorf("%w (store has version %d, this bam knows %d)", ErrSchemaOld, have, know)
	case have > know:
		return fmt.Errorf("%w (store has version %d, this bam knows %d)", ErrSchemaNewer, have, know)
	}
	return nil
}
