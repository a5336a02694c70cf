package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
)

// RunPoolSettings holds the pool-wide settings (store.PoolSettings): a set
// value is kept with who set it and when, by the store's clock; setting it
// again replaces it; unsetting removes it, once; and every change notifies
// the nodes, a peer's too. open returns a fresh store; the suite migrates
// it. A store without pool settings skips them.
func RunPoolSettings(t *testing.T, open func(t *testing.T) store.Store) {
	setup := func(t *testing.T) (store.PoolSettings, store.Store) {
		s, ctx := prepared(t, open)
		ps, ok := s.(store.PoolSettings)
		if !ok {
			t.Skipf("%s store keeps no pool settings", s.Driver())
		}
		if got, err := ps.PoolSettings(ctx); err != nil || len(got) != 0 {
			t.Fatalf("PoolSettings of a new store = %v, %v; want none", got, err)
		}
		return ps, s
	}

	t.Run("SetReplaceUnset", func(t *testing.T) {
		t.Parallel()
		ps, _ := setup(t)
		ctx := t.Context()
		before := time.Now().Add(-time.Minute) // the store's clock may differ a little
		first, err := ps.SetPoolSetting(ctx, store.PoolSetting{Name: "lease-ttl", Value: "5s", SetBy: "ann@h1", SetAt: time.Unix(1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		if first.Name != "lease-ttl" || first.Value != "5s" || first.SetBy != "ann@h1" || first.SetAt.Before(before) || first.SetAt.Location() != time.UTC {
			t.Fatalf("SetPoolSetting = %+v, want lease-ttl=5s by ann@h1 at the store's now() in UTC (not the caller's SetAt)", first)
		}
		if _, err := ps.SetPoolSetting(ctx, store.PoolSetting{Name: "max-moves", Value: "8", SetBy: "ann@h1"}); err != nil {
			t.Fatal(err)
		}
		second, err := ps.SetPoolSetting(ctx, store.PoolSetting{Name: "lease-ttl", Value: "6s", SetBy: "bob@h2"})
		if err != nil {
			t.Fatal(err)
		}
		if second.SetAt.Before(first.SetAt) {
			t.Fatalf("set again at %v, before the first set at %v", second.SetAt, first.SetAt)
		}
		got, err := ps.PoolSettings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != second || got[1].Name != "max-moves" || got[1].Value != "8" {
			t.Fatalf("PoolSettings = %+v, want lease-ttl as set again (%+v), then max-moves=8", got, second)
		}
		if err := ps.UnsetPoolSetting(ctx, "lease-ttl"); err != nil {
			t.Fatal(err)
		}
		if err := ps.UnsetPoolSetting(ctx, "lease-ttl"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UnsetPoolSetting of a setting not set = %v, want ErrNotFound", err)
		}
		if got, err := ps.PoolSettings(ctx); err != nil || len(got) != 1 || got[0].Name != "max-moves" {
			t.Fatalf("PoolSettings after unset = %+v, %v; want max-moves alone", got, err)
		}
	})

	// A node hears of a change another process makes, so that it reads
	// the settings again at once.
	t.Run("NoticesOfAPeer", func(t *testing.T) {
		t.Parallel()
		_, s := setup(t)
		ctx := t.Context()
		peer, ok := openPeer(t, s).(store.PoolSettings)
		if !ok {
			t.Skip("the peer keeps no pool settings")
		}
		w := startWatch(t, ctx, s)
		mustAddBuffer(t, ctx, s, "src", 1)
		w.listening(t, ctx, s, "src")
		w.drain()
		if _, err := peer.SetPoolSetting(ctx, store.PoolSetting{Name: "max-event-size", Value: "100", SetBy: "ann@h1"}); err != nil {
			t.Fatal(err)
		}
		w.wait(t, store.TopicSettings, "SetPoolSetting")
		w.drain()
		if err := peer.UnsetPoolSetting(ctx, "max-event-size"); err != nil {
			t.Fatal(err)
		}
		w.wait(t, store.TopicSettings, "UnsetPoolSetting")
		w.stop(t)
	})
}
