package settings

import (
	"fmt"

	"github.com/bam-dev/bam/internal/store"
)

// Origin says where a node's value of a setting comes from.
type Origin string

const (
	FromFlag    Origin = "flag"    // the command line
	FromEnv     Origin = "env"     // a BAM_<FLAG> environment variable
	FromFile    Origin = "file"    // the config file (--config)
	FromPool    Origin = "pool"    // bam config set
	FromDefault Origin = "default" // none of the above
)

// Overrides reports the origin of each setting that the node's own
// command line, environment or config file gives (FromFlag, FromEnv or
// FromFile), and FromDefault for the others.
type Overrides func(name string) Origin

// Effective is a node's value of one setting, and where it comes from.
type Effective struct {
	*Setting
	Value  string
	Origin Origin
	// Pool is the pool's value when one is set, overridden or not.
	Pool *store.PoolSetting
}

// Resolve returns the values a node uses (doc.go, "Precedence"): base
// holds what the node's own flags, environment and file give (and the
// defaults elsewhere), own says which of them are its own, and stored
// are the pool settings. A stored value that does not parse (written by
// another version of bam) or names no setting of this one is left out
// and reported in skipped; the result is not validated (Values.Validate).
func Resolve(base Values, own Overrides, stored []store.PoolSetting) (v Values, eff []Effective, skipped []error) {
	v = base
	byName := make(map[string]store.PoolSetting, len(stored))
	for _, p := range stored {
		if _, err := Lookup(p.Name); err != nil {
			skipped = append(skipped, fmt.Errorf("pool setting %s=%s (set by %s): %w; ignored", p.Name, p.Value, p.SetBy, err))
			continue
		}
		byName[p.Name] = p
	}
	for _, s := range all {
		e := Effective{Setting: s, Origin: own(s.Name)}
		if p, ok := byName[s.Name]; ok {
			e.Pool = &p
			if e.Origin == FromDefault {
				if err := s.Set(&v, p.Value); err != nil {
					skipped = append(skipped, fmt.Errorf("pool setting %s (set by %s): %w; using %s", s.Name, p.SetBy, err, s.Get(v)))
				} else {
					e.Origin = FromPool
				}
			}
		}
		e.Value = s.Get(v)
		eff = append(eff, e)
	}
	return v, eff, skipped
}
