package pool

import (
	"errors"
	"fmt"
	"time"

	"github.com/bam-dev/bam/internal/bus"
)

// Config tunes a node. Start from DefaultConfig and change what you need:
// every field must be set (Validate), so that a zero typed on a command
// line is refused instead of quietly meaning a default. The defaults are
// chosen so that a crashed node's sessions run elsewhere within 5 s (TTL +
// a balance round) and a clean handoff takes well under 1 s.
type Config struct {
	Name             string        // shown in status; the host name when empty
	LeaseTTL         time.Duration // a lease lives this long past its last renewal; default 3s
	RenewInterval    time.Duration // between renewals; default 1s
	SafetyMargin     time.Duration // stop committing this long before the lease could expire; default 500ms
	BalanceInterval  time.Duration // between balance rounds (±20% jitter); default 500ms
	MaxMovesPerRound int           // handovers from one node to another per round; default 32 (each pauses only the session it moves)
	ForgetAfter      time.Duration // a dead node's row is deleted after this; default 1m
	LivenessConfirm  time.Duration // a peer's liveness lock gone this long, with no heartbeat from it: dead (doc.go, "Death verdicts"); default 200ms
	StopTimeout      time.Duration // how long a clean stop waits for batches in hand; default 10s
	// SourceGiveUp: a session whose source this node has failed to read
	// for this long is handed over, so that a peer that may reach the
	// source tries it (store.Store.GiveUp); only while another node
	// works. Default 30s.
	SourceGiveUp time.Duration
	// PurgeInterval is how often the node purges the completed instances
	// past their activity's window (when its store keeps windows:
	// WindowStore); default 1m.
	PurgeInterval time.Duration
	Session       bus.Config
	// Metrics, when set, records claims, handoffs, takeovers, losses,
	// renewals and balance rounds (metrics.go); Session.Metrics records
	// the sessions' batches.
	Metrics Metrics
}

// ConfigError names the setting of a Config that is out of range, by its
// field name ("LeaseTTL", "Session.BatchSize").
type ConfigError = bus.ConfigError

// DefaultConfig returns the defaults, the session's included.
func DefaultConfig() Config {
	return Config{
		LeaseTTL:         3 * time.Second,
		RenewInterval:    time.Second,
		SafetyMargin:     500 * time.Millisecond,
		BalanceInterval:  500 * time.Millisecond,
		MaxMovesPerRound: 32,
		ForgetAfter:      time.Minute,
		LivenessConfirm:  200 * time.Millisecond,
		StopTimeout:      10 * time.Second,
		SourceGiveUp:     30 * time.Second,
		PurgeInterval:    time.Minute,
		Session:          bus.DefaultConfig(),
	}
}

// Validate reports the first setting out of range, or a combination
// that would break the lease protocol, as a *ConfigError.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"LeaseTTL", c.LeaseTTL > 0},
		{"RenewInterval", c.RenewInterval > 0},
		{"SafetyMargin", c.SafetyMargin > 0},
		{"BalanceInterval", c.BalanceInterval > 0},
		{"MaxMovesPerRound", c.MaxMovesPerRound > 0},
		{"ForgetAfter", c.ForgetAfter > 0},
		{"LivenessConfirm", c.LivenessConfirm > 0},
		{"StopTimeout", c.StopTimeout > 0},
		{"SourceGiveUp", c.SourceGiveUp > 0},
		{"PurgeInterval", c.PurgeInterval > 0},
	} {
		if !f.ok {
			return &ConfigError{Field: f.name, Err: errors.New("must be positive")}
		}
	}
	switch {
	case c.LivenessConfirm >= c.LeaseTTL:
		return &ConfigError{Field: "LivenessConfirm", Err: fmt.Errorf("%v must be shorter than the lease TTL (%v): past the TTL a silent node's leases expire anyway", c.LivenessConfirm, c.LeaseTTL)}
	case c.LeaseTTL < 2*c.RenewInterval:
		return &ConfigError{Field: "LeaseTTL", Err: fmt.Errorf("%v must be at least twice the renew interval (%v), so one slow renewal does not lose every lease", c.LeaseTTL, c.RenewInterval)}
	case c.SafetyMargin >= c.LeaseTTL-c.RenewInterval:
		return &ConfigError{Field: "SafetyMargin", Err: fmt.Errorf("%v must be less than lease TTL − renew interval (%v)", c.SafetyMargin, c.LeaseTTL-c.RenewInterval)}
	}
	if err := c.Session.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return &ConfigError{Field: "Session." + ce.Field, Err: ce.Err}
		}
		return err
	}
	return nil
}
