package settings

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/sqlite"
)

func TestLookupSuggestsTheClosestName(t *testing.T) {
	s, err := Lookup("lease-ttl")
	if err != nil || s.Name != "lease-ttl" || s.Kind != Duration || s.Live {
		t.Fatalf("Lookup(lease-ttl) = %+v, %v", s, err)
	}
	_, err = Lookup("lease-tll")
	if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), `did you mean lease-ttl?`) {
		t.Fatalf("Lookup(lease-tll) = %v, want ErrUnknown suggesting lease-ttl", err)
	}
}

// Every setting reads back what it writes, and its default is bam
// serve's (pool.DefaultConfig and the others').
func TestSetGetRoundTrip(t *testing.T) {
	for _, s := range All() {
		v := Defaults()
		if err := s.Set(&v, s.Default()); err != nil {
			t.Fatalf("%s: Set(its default %q) = %v", s.Name, s.Default(), err)
		}
		if !same(v, Defaults()) {
			t.Fatalf("%s: setting the default changed the values", s.Name)
		}
	}
	v := Defaults()
	for name, text := range map[string]string{"lease-ttl": "4s", "max-event-size": "2048", "require-definitions": "true"} {
		s, _ := Lookup(name)
		if err := s.Set(&v, " "+text+" "); err != nil || s.Get(v) != text {
			t.Fatalf("%s: Set(%q) = %v, Get = %q", name, text, err, s.Get(v))
		}
	}
	if v.Pool.LeaseTTL != 4*time.Second || v.Pool.Session.MaxEventSize != 2048 || !v.RequireDefinitions {
		t.Fatalf("values = %+v", v)
	}
}

// same reports whether a and b hold the same value of every setting.
func same(a, b Values) bool {
	for _, s := range All() {
		if s.Get(a) != s.Get(b) {
			return false
		}
	}
	return true
}

func TestSetRefusesWhatDoesNotParse(t *testing.T) {
	v := Defaults()
	for name, want := range map[string]string{
		"lease-ttl":           `lease-ttl "3x": not a duration; write it like 500ms, 3s or 2m`,
		"max-event-size":      `max-event-size "3x": not a whole number of bytes`,
		"require-definitions": `require-definitions "3x": write true or false`,
	} {
		s, _ := Lookup(name)
		text := "3x"
		if err := s.Set(&v, text); err == nil || err.Error() != want {
			t.Errorf("%s.Set(%q) = %v, want %q", name, text, err, want)
		}
	}
	if !same(v, Defaults()) {
		t.Fatal("a refused value changed the values")
	}
}

// A value is judged with the whole configuration it makes, and refused
// in the setting's name.
func TestValidateNamesTheSetting(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		set  map[string]string
		name string
		rule string
	}{
		{map[string]string{"safety-margin": "3s"}, "safety-margin", "must be less than lease TTL − renew interval (2s)"},
		{map[string]string{"lease-ttl": "1s"}, "lease-ttl", "must be at least twice the renew interval"},
		{map[string]string{"max-moves": "0"}, "max-moves", "must be positive"},
		{map[string]string{"max-event-size": "-1"}, "max-event-size", "must be positive"},
		{map[string]string{"alert-interval": "0s"}, "alert-interval", "must be positive"},
		{map[string]string{"http-idempotency-retention": "-1h"}, "http-idempotency-retention", "must be positive"},
		{map[string]string{"batch-wait": "-1s"}, "batch-wait", "must not be negative"},
	} {
		v := Defaults()
		for name, text := range c.set {
			s, _ := Lookup(name)
			if err := s.Set(&v, text); err != nil {
				t.Fatal(err)
			}
		}
		err := v.Validate()
		var se *Error
		if !errors.As(err, &se) || se.Name != c.name || !strings.Contains(err.Error(), c.rule) || !strings.HasPrefix(err.Error(), c.name+" ") {
			t.Errorf("%v: Validate = %v, want %s refused: %s", c.set, err, c.name, c.rule)
		}
	}
}

// The node's own values win over the pool's, the pool's over the
// defaults; what a stored value cannot give is reported, not used.
func TestResolvePrecedence(t *testing.T) {
	base := Defaults()
	base.Pool.BalanceInterval = time.Second // from the node's flag
	own := func(name string) Origin {
		switch name {
		case "balance-interval":
			return FromFlag
		case "max-moves":
			return FromEnv // with the default's value: an override all the same
		}
		return FromDefault
	}
	stored := []store.PoolSetting{
		{Name: "balance-interval", Value: "2s", SetBy: "ann@h"},
		{Name: "max-moves", Value: "4", SetBy: "ann@h"},
		{Name: "max-event-size", Value: "100", SetBy: "ann@h"},
		{Name: "lease-ttl", Value: "soon", SetBy: "ann@h"},
		{Name: "from-a-newer-bam", Value: "1", SetBy: "ann@h"},
	}
	v, eff, skipped := Resolve(base, own, stored)
	if v.Pool.BalanceInterval != time.Second || v.Pool.MaxMovesPerRound != 32 || v.Pool.Session.MaxEventSize != 100 || v.Pool.LeaseTTL != 3*time.Second {
		t.Fatalf("Resolve = %+v", v.Pool)
	}
	got := map[string]string{}
	for _, e := range eff {
		got[e.Name] = e.Value + " " + string(e.Origin)
		if (e.Pool != nil) != (e.Name == "balance-interval" || e.Name == "max-moves" || e.Name == "max-event-size" || e.Name == "lease-ttl") {
			t.Errorf("%s: Pool = %+v", e.Name, e.Pool)
		}
	}
	for name, want := range map[string]string{
		"balance-interval": "1s flag", "max-moves": "32 env", "max-event-size": "100 pool",
		"lease-ttl": "3s default", "alert-interval": "10s default",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	if len(eff) != len(All()) || len(skipped) != 2 {
		t.Fatalf("%d effective, skipped %v", len(eff), skipped)
	}
}

// A running node applies a Live change of the pool's settings at once,
// logged once with the old and new value, and leaves the others to its
// next start; its own overrides stay.
func TestFollowerAppliesLiveChanges(t *testing.T) {
	ctx := t.Context()
	st := migratedStore(t)
	var logs bytes.Buffer
	var applied []Values
	base := Defaults()
	base.AlertInterval = time.Minute
	own := func(name string) Origin {
		if name == "alert-interval" {
			return FromFile
		}
		return FromDefault
	}
	f := &Follower{Store: st, Every: time.Hour, Base: base, Own: own, Running: base,
		Apply: func(v Values) { applied = append(applied, v) },
		Log:   slog.New(slog.NewTextHandler(&logs, nil))}
	set := func(name, value string) {
		t.Helper()
		if _, err := st.SetPoolSetting(ctx, store.PoolSetting{Name: name, Value: value, SetBy: "ann@h"}); err != nil {
			t.Fatal(err)
		}
	}
	set("max-event-size", "100")
	set("lease-ttl", "6s")
	set("alert-interval", "5s")
	f.Reread(ctx)
	f.Reread(ctx) // nothing new: nothing applied, nothing logged again
	if len(applied) != 1 || applied[0].Pool.Session.MaxEventSize != 100 || applied[0].Pool.LeaseTTL != 3*time.Second || applied[0].AlertInterval != time.Minute {
		t.Fatalf("applied %+v, want max-event-size 100 only", applied)
	}
	out := logs.String()
	for _, want := range []string{
		fmt.Sprintf(`msg="pool setting applied" setting=max-event-size old=%d new=100`, Defaults().Pool.Session.MaxEventSize),
		`msg="pool setting changed; this node applies it at its next start" setting=lease-ttl running=3s new=6s`,
	} {
		if strings.Count(out, want) != 1 {
			t.Errorf("logs hold %q %d times, want once:\n%s", want, strings.Count(out, want), out)
		}
	}
	if want := `msg="pool setting changed; this node keeps its own value" setting=alert-interval value=1m0s from=file pool_value=5s pool_set=true`; strings.Count(out, want) != 1 {
		t.Errorf("logs hold %q %d times, want once:\n%s", want, strings.Count(out, want), out)
	}
	if strings.Contains(out, "setting=alert-interval old=") {
		t.Errorf("the node's own alert-interval was applied as changed:\n%s", out)
	}
	if err := st.UnsetPoolSetting(ctx, "max-event-size"); err != nil {
		t.Fatal(err)
	}
	f.Reread(ctx)
	if len(applied) != 2 || applied[1].Pool.Session.MaxEventSize != Defaults().Pool.Session.MaxEventSize {
		t.Fatalf("after unset, applied %+v, want the default max-event-size back", applied)
	}
}

// The follower reads on a notice, and stops with its context.
func TestFollowerRunsOnNotices(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	st := migratedStore(t)
	notices := make(chan struct{})
	got := make(chan Values, 1)
	f := &Follower{Store: st, Notices: notices, Every: time.Hour, Base: Defaults(), Own: func(string) Origin { return FromDefault },
		Running: Defaults(), Apply: func(v Values) { got <- v }, Log: slog.New(slog.DiscardHandler)}
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	if _, err := st.SetPoolSetting(ctx, store.PoolSetting{Name: "max-moves", Value: "3", SetBy: "ann@h"}); err != nil {
		t.Fatal(err)
	}
	notices <- struct{}{}
	if v := <-got; v.Pool.MaxMovesPerRound != 3 {
		t.Fatalf("applied max-moves %d, want 3", v.Pool.MaxMovesPerRound)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// migratedStore opens a new SQLite store, closed when the test ends.
func migratedStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "bam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}
