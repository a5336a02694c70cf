package pool

import (
	"cmp"
	"errors"
	"log/slog"
	"testing"
)

// newTestNode returns a node with cfg, its zero settings filled with the
// defaults, so that a test states only what it is about.
func newTestNode(t testing.TB, st Store, cfg Config, log *slog.Logger) *Node {
	t.Helper()
	d := DefaultConfig()
	cfg.LeaseTTL = cmp.Or(cfg.LeaseTTL, d.LeaseTTL)
	cfg.RenewInterval = cmp.Or(cfg.RenewInterval, d.RenewInterval)
	cfg.SafetyMargin = cmp.Or(cfg.SafetyMargin, d.SafetyMargin)
	cfg.BalanceInterval = cmp.Or(cfg.BalanceInterval, d.BalanceInterval)
	cfg.MaxMovesPerRound = cmp.Or(cfg.MaxMovesPerRound, d.MaxMovesPerRound)
	cfg.ForgetAfter = cmp.Or(cfg.ForgetAfter, d.ForgetAfter)
	cfg.LivenessConfirm = cmp.Or(cfg.LivenessConfirm, d.LivenessConfirm)
	cfg.StopTimeout = cmp.Or(cfg.StopTimeout, d.StopTimeout)
	cfg.SourceGiveUp = cmp.Or(cfg.SourceGiveUp, d.SourceGiveUp)
	cfg.PurgeInterval = cmp.Or(cfg.PurgeInterval, d.PurgeInterval)
	s, ds := &cfg.Session, d.Session
	s.BatchSize = cmp.Or(s.BatchSize, ds.BatchSize)
	s.MaxBatchSize = cmp.Or(s.MaxBatchSize, ds.MaxBatchSize)
	s.PollInterval = cmp.Or(s.PollInterval, ds.PollInterval)
	s.HeldRetry = cmp.Or(s.HeldRetry, ds.HeldRetry)
	s.MaxBackoff = cmp.Or(s.MaxBackoff, ds.MaxBackoff)
	s.MaxEventSize = cmp.Or(s.MaxEventSize, ds.MaxEventSize)
	s.TrimEvery = cmp.Or(s.TrimEvery, ds.TrimEvery)
	n, err := NewNode(st, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConfigValidateNamesTheField: a setting out of range is refused with
// the field's name, a zero included (it no longer means the default).
func TestConfigValidateNamesTheField(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	for _, c := range []struct {
		field  string
		change func(*Config)
	}{
		{"SafetyMargin", func(c *Config) { c.SafetyMargin = 0 }},
		{"PurgeInterval", func(c *Config) { c.PurgeInterval = 0 }},
		{"LivenessConfirm", func(c *Config) { c.LivenessConfirm = c.LeaseTTL }},
		{"LeaseTTL", func(c *Config) { c.RenewInterval = c.LeaseTTL }},
		{"SafetyMargin", func(c *Config) { c.SafetyMargin = c.LeaseTTL - c.RenewInterval }},
		{"Session.BatchSize", func(c *Config) { c.Session.BatchSize = 0 }},
		{"Session.BatchWait", func(c *Config) { c.Session.BatchWait = -1 }},
	} {
		cfg := DefaultConfig()
		c.change(&cfg)
		err := cfg.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("Validate with a bad %s = %v, want a *ConfigError for it", c.field, err)
		}
		if _, nerr := NewNode(nil, cfg, slog.New(slog.DiscardHandler)); nerr == nil {
			t.Errorf("NewNode accepted a bad %s", c.field)
		}
	}
}
