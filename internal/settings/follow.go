package settings

import (
	"context"
	"log/slog"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// Follower keeps a running node's Live settings in step with the pool's
// (doc.go, "Live changes"). It is a pool.Service: it runs as long as the
// node.
type Follower struct {
	Store store.PoolSettings
	// Notices wakes the follower to read now: the node's settings
	// notices (pool.Node.SettingsNotices).
	Notices <-chan struct{}
	// Every is the fallback read interval, for a missed notice.
	Every time.Duration
	// Base and Own are what Resolve takes: the node's own values and
	// which settings they override.
	Base Values
	Own  Overrides
	// Running is what the node started with.
	Running Values
	// Pool is the pool's values the node started with, by name (a setting
	// not set is absent): a later change of one the node overrides is
	// logged, once, as not applied.
	Pool map[string]string
	// Apply gives the node its new values; only Live settings differ
	// from Running's. It runs on the follower's goroutine.
	Apply func(Values)
	Log   *slog.Logger

	failing bool
	said    map[string]bool // warnings already logged, so each is logged once
}

// Name implements pool.Service.
func (f *Follower) Name() string { return "pool settings" }

// Run implements pool.Service.
func (f *Follower) Run(ctx context.Context) error {
	t := time.NewTicker(f.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.Notices:
		case <-t.C:
		}
		f.Reread(ctx)
	}
}

// Reread reads the pool settings once and applies what changed.
func (f *Follower) Reread(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, f.Every)
	stored, err := f.Store.PoolSettings(rctx)
	cancel()
	if err != nil {
		if !f.failing && ctx.Err() == nil {
			f.Log.Warn("cannot read the pool settings; keeping the current ones", "err", err)
		}
		f.failing = true
		return
	}
	if f.failing {
		f.Log.Info("reading the pool settings works again")
		f.failing = false
	}
	next, eff, skipped := Resolve(f.Base, f.Own, stored)
	f.overridden(eff)
	for _, err := range skipped {
		f.once(err.Error(), "pool setting not applied", "err", err)
	}
	if err := next.Validate(); err != nil {
		// The pool's values are valid together (bam config set checks),
		// but this node's own overrides may not fit them.
		f.once(err.Error(), "pool settings not applied: with this node's own settings they break a rule", "err", err)
		return
	}
	applied := f.Running
	changed := false
	for _, s := range all {
		was, now := s.Get(f.Running), s.Get(next)
		switch {
		case was == now:
		case s.Live:
			_ = s.Set(&applied, now) // now is Get's own form
			f.Log.Info("pool setting applied", "setting", s.Name, "old", was, "new", now)
			changed = true
		default:
			f.once(s.Name+"="+now, "pool setting changed; this node applies it at its next start",
				"setting", s.Name, "running", was, "new", now)
		}
	}
	if !changed {
		return
	}
	if err := applied.Validate(); err != nil {
		f.once(err.Error(), "pool settings not applied: with the settings this node started with they break a rule (restart it)", "err", err)
		return
	}
	f.Running = applied
	f.Apply(applied)
}

// overridden logs each change of the pool's value of a setting the node
// gives itself: the node keeps its own.
func (f *Follower) overridden(eff []Effective) {
	now := make(map[string]string, len(eff))
	for _, e := range eff {
		if e.Pool != nil {
			now[e.Name] = e.Pool.Value
		}
		if e.Origin == FromPool || e.Origin == FromDefault {
			continue
		}
		was, wasSet := f.Pool[e.Name]
		is, isSet := now[e.Name]
		if was != is || wasSet != isSet {
			f.Log.Info("pool setting changed; this node keeps its own value", "setting", e.Name,
				"value", e.Value, "from", string(e.Origin), "pool_value", is, "pool_set", isSet)
		}
	}
	f.Pool = now
}

// once logs a warning the first time its key is seen.
func (f *Follower) once(key, msg string, args ...any) {
	if f.said == nil {
		f.said = map[string]bool{}
	}
	if f.said[key] {
		return
	}
	f.said[key] = true
	f.Log.Warn(msg, args...)
}
