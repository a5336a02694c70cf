package catalog

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bam-dev/bam/internal/definition"
	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Source is where the deployed definitions come from: a store.Store is one.
type Source interface {
	// Definitions returns every deployed activity and the deployment
	// version they belong to.
	Definitions(ctx context.Context) ([]store.DeployedActivity, int64, error)
	// DefinitionsVersion returns the current deployment version (0: none).
	DefinitionsVersion(ctx context.Context) (int64, error)
}

// Options tune a Catalog. Zero fields take the defaults.
type Options struct {
	// Strict refuses events of activities without a deployed definition.
	Strict bool
	// MaxAge is how old the copy may get before Refresh asks the store
	// for its version again; default 1s.
	MaxAge time.Duration
	// MinRecheck is the least time between two refreshes forced by an
	// event that fails the check; default 250ms.
	MinRecheck time.Duration
}

// Catalog is a copy of the deployed definitions. Safe for concurrent use.
type Catalog struct {
	src  Source
	opts Options
	now  func() time.Time
	// strict is Options.Strict as it is now: SetStrict changes it live.
	strict atomic.Bool

	refreshing sync.Mutex // one refresh at a time

	mu        sync.RWMutex
	version   int64
	byName    map[string]*definition.Activity // exact names
	byFold    map[string]string               // lower-case name → deployed name
	misses    map[string]string               // name not deployed as it is → deployed name in another case, or ""
	checkedAt time.Time                       // when the version was last asked
	forcedAt  time.Time                       // when a failed check last forced a refresh
	loaded    bool
}

// New returns a catalog that has not loaded anything yet: the first
// Refresh or Validate loads it.
func New(src Source, opts Options) *Catalog {
	opts.MaxAge = cmp.Or(opts.MaxAge, time.Second)
	opts.MinRecheck = cmp.Or(opts.MinRecheck, 250*time.Millisecond)
	c := &Catalog{src: src, opts: opts, now: time.Now}
	c.strict.Store(opts.Strict)
	return c
}

// SetStrict turns Options.Strict on or off for the checks that begin
// after it: the pool-wide setting require-definitions, changed live.
func (c *Catalog) SetStrict(strict bool) { c.strict.Store(strict) }

// Version is the deployment version of the copy (0: none deployed, or not
// loaded yet).
func (c *Catalog) Version() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.version
}

// Activity returns the deployed definition of an activity, by its exact name.
func (c *Catalog) Activity(name string) (*definition.Activity, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	a, ok := c.byName[name]
	return a, ok
}

// Refresh brings the copy up to date if it is older than MaxAge: it asks
// the store for its version and reloads the definitions if it moved. While
// another goroutine is at it, Refresh returns at once and the caller goes on
// with the copy in hand (older than MaxAge by one query at most): the many
// sessions of a node that find the copy old in the same instant must not
// queue behind one another, each holding its batch in memory.
func (c *Catalog) Refresh(ctx context.Context) error {
	if c.fresh() {
		return nil
	}
	return c.refresh(ctx, false)
}

// fresh says the copy is loaded and younger than MaxAge.
func (c *Catalog) fresh() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.loaded && c.now().Sub(c.checkedAt) < c.opts.MaxAge
}

// refresh asks the store now; unless force, only if no other goroutine is
// asking (or has asked meanwhile) and a copy is loaded.
func (c *Catalog) refresh(ctx context.Context, force bool) error {
	c.mu.RLock()
	loaded := c.loaded
	c.mu.RUnlock()
	if force || !loaded {
		c.refreshing.Lock()
	} else if !c.refreshing.TryLock() {
		return nil
	}
	defer c.refreshing.Unlock()
	if !force && c.fresh() {
		return nil // refreshed by another goroutine while this one waited
	}
	asked := c.now()
	v, err := c.src.DefinitionsVersion(ctx)
	if err != nil {
		return fmt.Errorf("read the deployed definitions' version: %w", err)
	}
	c.mu.RLock()
	same := c.loaded && v == c.version
	c.mu.RUnlock()
	if same {
		c.mu.Lock()
		c.checkedAt = asked
		c.mu.Unlock()
		return nil
	}
	acts, v, err := c.src.Definitions(ctx)
	if err != nil {
		return fmt.Errorf("read the deployed definitions: %w", err)
	}
	byName := make(map[string]*definition.Activity, len(acts))
	byFold := make(map[string]string, len(acts))
	for i := range acts {
		a := &acts[i].Activity
		byName[a.Name] = a
		byFold[strings.ToLower(a.Name)] = a.Name
	}
	c.mu.Lock()
	c.version, c.byName, c.byFold, c.misses, c.checkedAt, c.loaded = v, byName, byFold, nil, asked, true
	c.mu.Unlock()
	return nil
}

// Validate checks an event against its activity's definition, refreshing
// the copy first when it is older than MaxAge, and once more before
// refusing the event. An error from the store is returned as it is (not an
// *event.Error): the event is not at fault, and the caller should retry
// rather than quarantine it.
func (c *Catalog) Validate(ctx context.Context, ev event.Event) error {
	if err := c.Refresh(ctx); err != nil {
		return err
	}
	err := c.check(ev)
	if err == nil {
		return nil
	}
	c.mu.Lock()
	force := c.now().Sub(c.forcedAt) >= c.opts.MinRecheck
	if force {
		c.forcedAt = c.now()
	}
	c.mu.Unlock()
	if !force {
		return err
	}
	if rerr := c.refresh(ctx, true); rerr != nil {
		return rerr
	}
	return c.check(ev)
}

// folded returns the deployed activity whose name equals name but for
// case. Events of an undeployed activity come by the thousand: the answer
// is remembered per name (up to maxMisses names per copy), so that they do
// not each allocate a lower-case copy of their name.
func (c *Catalog) folded(name string) (string, bool) {
	c.mu.RLock()
	deployed, seen := c.misses[name]
	c.mu.RUnlock()
	if seen {
		return deployed, deployed != ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	deployed = c.byFold[strings.ToLower(name)]
	if len(c.misses) < maxMisses {
		if c.misses == nil {
			c.misses = map[string]string{}
		}
		c.misses[name] = deployed
	}
	return deployed, deployed != ""
}

// maxMisses bounds the names folded remembers: a stream of bad events
// with ever new activity names must not grow it without end.
const maxMisses = 1024

// check checks ev against the copy as it is.
func (c *Catalog) check(ev event.Event) error {
	c.mu.RLock()
	a, ok := c.byName[ev.Activity]
	c.mu.RUnlock()
	if ok {
		return a.Validate(ev)
	}
	deployed, folded := c.folded(ev.Activity)
	switch {
	case folded:
		return &event.Error{Field: "activity", Reason: fmt.Sprintf("activity %q is not deployed (did you mean %s? names are case-sensitive)", ev.Activity, deployed)}
	case c.strict.Load():
		return &event.Error{Field: "activity", Reason: fmt.Sprintf("activity %q is not deployed: deploy a definition for it (bam deploy), or turn require-definitions off", ev.Activity)}
	}
	return nil
}
