package store

import (
	"context"
	"time"
)

// Pool-wide settings (bam config set) are rows of bam_pool_settings: the
// value an operator set for the whole pool, as text in the setting's own
// syntax ("5s", "1048576", "true"), who set it and when by the store's
// clock. Only set values are stored; a setting without a row has its
// default. What a name means, its type and its rules are package
// settings' (the registry), not the store's: the store keeps text.
//
// A change notifies the nodes (Notice TopicSettings), which read the
// settings again; they also read them on a timer, so a missed notice costs
// latency only.

// PoolSetting is one pool-wide setting that an operator set.
type PoolSetting struct {
	Name  string
	Value string
	// SetBy says who set it: "user@host" of the bam config set command.
	SetBy string
	SetAt time.Time // by the store's clock
}

// PoolSettings is an optional extra of a driver: the pool-wide settings.
// Both SQL drivers have it.
type PoolSettings interface {
	// PoolSettings returns the settings that are set, by name.
	PoolSettings(ctx context.Context) ([]PoolSetting, error)
	// SetPoolSetting sets (or replaces) s.Name to s.Value, recorded as set
	// by s.SetBy at the store's now() (s.SetAt is ignored), and notifies
	// the nodes. It returns the row as stored.
	SetPoolSetting(ctx context.Context, s PoolSetting) (PoolSetting, error)
	// UnsetPoolSetting removes the setting name, so that it has its default
	// again, and notifies the nodes; ErrNotFound if it was not set.
	UnsetPoolSetting(ctx context.Context, name string) error
}
