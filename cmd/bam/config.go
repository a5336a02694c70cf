package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bam-dev/bam/internal/ops"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/settings"
	"github.com/bam-dev/bam/internal/store"
)

func (a *app) configCommand() *cobra.Command {
	var list strings.Builder
	for _, s := range settings.All() {
		applies := "next start"
		if s.Live {
			applies = "live"
		}
		def := s.Default()
		if s.Unit != "" {
			def += " " + s.Unit
		}
		fmt.Fprintf(&list, "  %-27s %-15s %-10s %s\n", s.Name, def, applies, s.Help)
	}
	return group("config", "Set the pool-wide settings that every node uses",
		a.configSetCommand(list.String()), a.configUnsetCommand(), a.configShowCommand())
}

func (a *app) configSetCommand(list string) *cobra.Command {
	return &cobra.Command{
		Use:   "set NAME VALUE",
		Short: "Set a pool-wide setting for every node",
		Long: `set records NAME=VALUE in the store for the whole pool, with who set it (the
user and host running this command) and when. Every node reads it: the
settings marked live are applied by running nodes within seconds, the others
at each node's next start. A node's own flag, BAM_<FLAG> variable or config
file key for the setting wins over the pool's (bam config show --effective).

The value is checked with the pool's other settings, and refused with the
rule it breaks. The settings, their defaults and when a change applies:

` + list,
		Example: `  bam config set max-event-size 65536
  bam config set lease-ttl 5s
  bam config set require-definitions true`,
		Args: exactArgs("NAME", "VALUE"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			return a.withSetting(cmd.Context(), args[0], func(ctx context.Context, ps store.PoolSettings, s *settings.Setting, v settings.Values) error {
				was := s.Get(v)
				if err := s.Set(&v, args[1]); err != nil {
					return &usageError{err}
				}
				if err := v.Validate(); err != nil {
					return usageErrorf("%s %s refused: %w", s.Name, args[1], err)
				}
				who := ops.Who()
				set, err := ps.SetPoolSetting(ctx, store.PoolSetting{Name: s.Name, Value: s.Get(v), SetBy: who})
				if err != nil {
					return err
				}
				a.auditSetting(ctx, ps, who, "config set", s.Name, set.Value+" (was "+was+")")
				fmt.Fprintf(a.stdout, "%s = %s for the pool (was %s); %s\n", s.Name, set.Value, was, applies(s))
				return nil
			})
		}),
	}
}

func (a *app) configUnsetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "unset NAME",
		Short: "Give a pool-wide setting its default again",
		Args:  exactArgs("NAME"),
		RunE: a.body(func(cmd *cobra.Command, args []string) error {
			return a.withSetting(cmd.Context(), args[0], func(ctx context.Context, ps store.PoolSettings, s *settings.Setting, v settings.Values) error {
				was := s.Get(v)
				if err := s.Set(&v, s.Default()); err != nil {
					return err
				}
				if err := v.Validate(); err != nil {
					return fmt.Errorf("%s back to its default %s refused: %w; change that setting first", s.Name, s.Default(), err)
				}
				if err := ps.UnsetPoolSetting(ctx, s.Name); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("%s is not set for the pool; it has its default, %s", s.Name, s.Default())
					}
					return err
				}
				a.auditSetting(ctx, ps, ops.Who(), "config unset", s.Name, s.Default()+" (was "+was+")")
				fmt.Fprintf(a.stdout, "%s = %s for the pool, its default (was %s); %s\n", s.Name, s.Default(), was, applies(s))
				return nil
			})
		}),
	}
}

// applies says when the nodes apply a change of s.
func applies(s *settings.Setting) string {
	if s.Live {
		return "running nodes apply it within seconds"
	}
	return "each node applies it at its next start"
}

// auditSetting records a change of a pool setting in the audit log, when
// the store keeps one.
func (a *app) auditSetting(ctx context.Context, ps store.PoolSettings, who, action, name, detail string) {
	if oc, ok := ps.(store.OperatorControls); ok {
		a.audit(ctx, oc, who, action, name, detail)
	}
}

// withSetting runs fn with the setting name (an unknown one is a usage
// error), the store's pool settings and the values they give the pool.
func (a *app) withSetting(ctx context.Context, name string, fn func(context.Context, store.PoolSettings, *settings.Setting, settings.Values) error) error {
	s, err := settings.Lookup(name)
	if err != nil {
		return &usageError{err}
	}
	return a.withPoolSettings(ctx, func(ps store.PoolSettings, v settings.Values) error { return fn(ctx, ps, s, v) })
}

// withPoolSettings runs fn with the store's pool settings and the values
// they give the pool (the defaults where none is set).
func (a *app) withPoolSettings(ctx context.Context, fn func(store.PoolSettings, settings.Values) error) error {
	return a.withStore(ctx, func(st store.Store) error {
		ps, ok := st.(store.PoolSettings)
		if !ok {
			return fmt.Errorf("the %s store keeps no pool settings", st.Driver())
		}
		stored, err := ps.PoolSettings(ctx)
		if err != nil {
			return err
		}
		v, _, _ := settings.Resolve(settings.Defaults(), func(string) settings.Origin { return settings.FromDefault }, stored)
		return fn(ps, v)
	})
}

func (a *app) configShowCommand() *cobra.Command {
	var asJSON, effective bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the pool-wide settings: value, default or set, by whom and when",
		Long: `show lists every pool-wide setting: its value for the pool, whether that is its
default or was set (bam config set), by whom and when, and whether running
nodes apply a change at once (live) or at their next start.

--effective shows instead what a node started here with the same flags,
BAM_<FLAG> variables and config file would use, and where each value comes
from: flag, env, file, pool or default. It takes every flag of bam serve:

  bam config show --effective --config /etc/bam/bam.yaml --lease-ttl 5s

A store URL is shown without its password.`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			if !effective {
				var given []string
				cmd.Flags().VisitAll(func(f *pflag.Flag) {
					if f.Hidden && a.origin(f.Name) == settings.FromFlag {
						given = append(given, "--"+f.Name)
					}
				})
				if len(given) > 0 {
					return usageErrorf("%s: bam serve's flags only go with --effective", strings.Join(given, ", "))
				}
			}
			ctx := cmd.Context()
			return a.withStore(ctx, func(st store.Store) error {
				var stored []store.PoolSetting
				if ps, ok := st.(store.PoolSettings); ok {
					var err error
					if stored, err = ps.PoolSettings(ctx); err != nil {
						return err
					}
				}
				if effective {
					_, eff, skipped := a.nodeSettings(cmd.Flags(), stored)
					for _, err := range skipped {
						fmt.Fprintf(a.stderr, "bam: %v\n", err)
					}
					return a.printEffective(cmd.Flags(), eff, asJSON)
				}
				_, eff, _ := settings.Resolve(settings.Defaults(), func(string) settings.Origin { return settings.FromDefault }, stored)
				return a.printPoolSettings(eff, asJSON)
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&effective, "effective", false, "show what a node started with these flags, environment and config file would use, and where each value comes from")
	serveFlags := a.serveCommand().Flags()
	serveFlags.VisitAll(func(f *pflag.Flag) { f.Hidden = true })
	cmd.Flags().AddFlagSet(serveFlags)
	return cmd
}

// poolSettingJSON is a pool-wide setting as bam config show --json gives
// it.
type poolSettingJSON struct {
	Name    string  `json:"name"`
	Value   string  `json:"value"`
	Default string  `json:"default"`
	Set     bool    `json:"set"`
	SetBy   string  `json:"set_by,omitempty"`
	SetAt   *string `json:"set_at,omitempty"`
	Kind    string  `json:"kind"`
	Unit    string  `json:"unit,omitempty"`
	Live    bool    `json:"live"`
}

func (a *app) printPoolSettings(eff []settings.Effective, asJSON bool) error {
	out := make([]poolSettingJSON, 0, len(eff))
	for _, e := range eff {
		p := poolSettingJSON{Name: e.Name, Value: e.Value, Default: e.Default(), Kind: string(e.Kind), Unit: e.Unit, Live: e.Live}
		if e.Pool != nil && e.Origin == settings.FromPool {
			p.Set, p.SetBy, p.SetAt = true, e.Pool.SetBy, jsonTime(&e.Pool.SetAt)
		}
		out = append(out, p)
	}
	if asJSON {
		return printJSON(a.stdout, out)
	}
	t := newTable(a.stdout, "SETTING", "VALUE", "FROM", "SET BY", "SET AT", "APPLIES")
	for _, p := range out {
		state, by, at := "default", "", ""
		if p.Set {
			state, by, at = "set", p.SetBy, *p.SetAt
		}
		applies := "next start"
		if p.Live {
			applies = "live"
		}
		t.row(p.Name, p.Value, state, by, at, applies)
	}
	return t.flush()
}

// effectiveJSON is one value of bam config show --effective --json.
type effectiveJSON struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Origin string `json:"origin"`
	// PoolWide: a setting of the pool (bam config set); the others are
	// the node's own.
	PoolWide bool `json:"pool_wide"`
	// Pool is the pool's value when one is set, even if the node's own
	// overrides it.
	Pool *string `json:"pool,omitempty"`
	Live bool    `json:"live,omitempty"`
}

// printEffective prints the pool-wide settings a node would use, then its
// own flags (bam serve's and the global ones), each with its origin.
func (a *app) printEffective(fs *pflag.FlagSet, eff []settings.Effective, asJSON bool) error {
	var out []effectiveJSON
	pooled := map[string]bool{}
	for _, e := range eff {
		pooled[e.Name] = true
		j := effectiveJSON{Name: e.Name, Value: e.Value, Origin: string(e.Origin), PoolWide: true, Live: e.Live}
		if e.Pool != nil {
			j.Pool = &e.Pool.Value
		}
		out = append(out, j)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		// bam serve's flags are hidden here; the global ones of a node
		// are its store and its logs.
		ofNode := f.Hidden || f.Name == "store" || f.Name == "log-format" || f.Name == "log-level"
		if pooled[f.Name] || !ofNode {
			return
		}
		out = append(out, effectiveJSON{Name: f.Name, Value: shownValue(f.Name, f.Value.String()), Origin: string(a.origin(f.Name))})
	})
	if asJSON {
		return printJSON(a.stdout, out)
	}
	t := newTable(a.stdout, "SETTING", "VALUE", "FROM", "POOL VALUE", "")
	for _, j := range out {
		pool, scope := "", "per node"
		if j.Pool != nil {
			pool = *j.Pool
		}
		if j.PoolWide {
			scope = "pool-wide, next start"
			if j.Live {
				scope = "pool-wide, live"
			}
		}
		t.row(j.Name, j.Value, j.Origin, pool, scope)
	}
	return t.flush()
}

// nodeSettings resolves the pool-wide settings of a node started with fs
// (bam serve's flags, with the environment and config file applied): its
// own values where its flags, environment or file give one, the pool's
// elsewhere (settings.Resolve). base is the node's own values, for
// settings.Follower.
func (a *app) nodeSettings(fs *pflag.FlagSet, stored []store.PoolSetting) (base settings.Values, eff []settings.Effective, skipped []error) {
	base = settings.Defaults()
	for _, s := range settings.All() {
		if f := fs.Lookup(s.Name); f != nil && a.origin(s.Name) != settings.FromDefault {
			// The flag parsed it already: its own form parses again.
			if err := s.Set(&base, f.Value.String()); err != nil {
				skipped = append(skipped, err)
			}
		}
	}
	_, eff, more := settings.Resolve(base, a.origin, stored)
	return base, eff, append(skipped, more...)
}

// poolSettingsForNode reads the pool settings when bam serve starts, gives
// the flags fs of the settings the node does not set itself the pool's
// values, and checks the result. It logs each pool setting that the
// node's own flag, variable or file overrides. It returns the node's own
// values, the ones it runs with and the pool's by name, for
// settings.Follower.
func (a *app) poolSettingsForNode(ctx context.Context, fs *pflag.FlagSet, ps store.PoolSettings) (base, running settings.Values, pool map[string]string, err error) {
	var stored []store.PoolSetting
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		stored, err = ps.PoolSettings(rctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return base, running, nil, fmt.Errorf("not starting the node: %w", err)
		}
		a.log.Warn("cannot read the pool settings yet; retrying", "err", err, "attempt", attempt)
		t := time.NewTimer(min(250*time.Millisecond<<min(attempt-1, 5), 5*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return base, running, nil, fmt.Errorf("not starting the node: %w", err)
		case <-t.C:
		}
	}
	base, eff, skipped := a.nodeSettings(fs, stored)
	for _, err := range skipped {
		a.log.Warn("pool setting not applied", "err", err)
	}
	for _, e := range eff {
		switch {
		case e.Origin == settings.FromPool:
			if err := fs.Lookup(e.Name).Value.Set(e.Value); err != nil {
				return base, running, nil, fmt.Errorf("pool setting %s=%s: %w", e.Name, e.Value, err)
			}
		case e.Pool != nil && e.Origin != settings.FromDefault:
			a.log.Warn("this node's own setting overrides the pool's", "setting", e.Name, "value", e.Value, "from", string(e.Origin), "pool_value", e.Pool.Value)
		}
	}
	running, _, _ = settings.Resolve(base, a.origin, stored)
	pool = make(map[string]string, len(stored))
	for _, p := range stored {
		pool[p.Name] = p.Value
	}
	if err := running.Validate(); err != nil {
		return base, running, pool, fmt.Errorf("the pool's settings and this node's own break a rule: %w (bam config show --effective shows where each value comes from)", err)
	}
	return base, running, pool, nil
}

// followPoolSettings makes the service that applies the pool's live
// changes to a running node: its balance rounds, hand-overs and sessions
// (pool.Node.Tune), then whatever else apply reaches (the checks of
// definitions, the HTTP API, the alert evaluator). It reads the settings
// on every settings notice and every ten balance intervals.
func (a *app) followPoolSettings(ps store.PoolSettings, node *pool.Node, own, running settings.Values, poolValues map[string]string, apply func(settings.Values)) *settings.Follower {
	log := a.log.With("node", node.ID())
	return &settings.Follower{
		Store: ps, Notices: node.SettingsNotices(),
		Every: max(10*running.Pool.BalanceInterval, time.Second),
		Base:  own, Own: a.origin, Running: running, Pool: poolValues, Log: log,
		Apply: func(v settings.Values) {
			err := node.Tune(pool.Live{BalanceInterval: v.Pool.BalanceInterval, MaxMovesPerRound: v.Pool.MaxMovesPerRound,
				SourceGiveUp: v.Pool.SourceGiveUp, MaxEventSize: v.Pool.Session.MaxEventSize})
			if err != nil { // Follower validated them: not expected
				log.Error("pool settings not applied", "err", err)
				return
			}
			apply(v)
		},
	}
}

// poolDefaults gives each flag of fs that names a pool-wide setting, and
// that no flag, variable or file key gave a value, the pool's: a command
// that checks events as the nodes check them (bam failed retry) or judges
// the nodes (bam status) uses what they use.
func (a *app) poolDefaults(ctx context.Context, st store.Store, fs *pflag.FlagSet) error {
	ps, ok := st.(store.PoolSettings)
	if !ok {
		return nil
	}
	stored, err := ps.PoolSettings(ctx)
	if err != nil {
		return err
	}
	for _, p := range stored {
		if f := fs.Lookup(p.Name); f != nil && a.origin(p.Name) == settings.FromDefault {
			if err := f.Value.Set(p.Value); err != nil {
				return fmt.Errorf("pool setting %s=%s: %w", p.Name, p.Value, err)
			}
		}
	}
	return nil
}
