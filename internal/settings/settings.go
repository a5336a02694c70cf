package settings

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/alert"
	"github.com/bam-dev/bam/internal/pool"
	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/suggest"
)

// Values are the pool-wide settings of a node, with everything else of
// its pool.Config (per node: its name, its stop timeout) alongside.
type Values struct {
	Pool pool.Config
	// RequireDefinitions: quarantine (and refuse over HTTP) the events of
	// activities without a deployed definition.
	RequireDefinitions bool
	// IdempotencyRetention is how long an HTTP Idempotency-Key answers
	// retries.
	IdempotencyRetention time.Duration
	// AlertInterval is the time between two evaluations of the alerts.
	AlertInterval time.Duration
}

// Defaults returns the default of every setting: bam serve's flags'.
func Defaults() Values {
	return Values{
		Pool:                 pool.DefaultConfig(),
		IdempotencyRetention: store.DefaultIdempotencyRetention,
		AlertInterval:        alert.DefaultConfig().Interval,
	}
}

// Kind is the type of a setting's value.
type Kind string

const (
	Duration Kind = "duration" // Go's syntax: 500ms, 3s, 2m, 1h30m
	Integer  Kind = "integer"
	Boolean  Kind = "boolean" // true or false
)

// Setting is one pool-wide setting.
type Setting struct {
	Name string // bam serve's flag and the config file's key: "lease-ttl"
	Kind Kind
	Unit string // what an Integer counts ("bytes"); empty for the others
	// Live: a running node applies a change at once; otherwise at its
	// next start.
	Live bool
	Help string // one line, for bam config and the docs
	// field is the pool.ConfigError field that names this setting.
	field string
	// duration, integer or boolean is the field of Values the setting
	// holds, by its Kind.
	duration func(*Values) *time.Duration
	integer  func(*Values) *int
	boolean  func(*Values) *bool
}

func dur(name, field string, live bool, help string, at func(*Values) *time.Duration) *Setting {
	return &Setting{Name: name, Kind: Duration, Live: live, Help: help, field: field, duration: at}
}

func integer(name, unit, field string, live bool, help string, at func(*Values) *int) *Setting {
	return &Setting{Name: name, Kind: Integer, Unit: unit, Live: live, Help: help, field: field, integer: at}
}

// all is the registry, in the order bam config show lists it.
var all = []*Setting{
	dur("lease-ttl", "LeaseTTL", false, "how long a session lease lives past its last renewal",
		func(v *Values) *time.Duration { return &v.Pool.LeaseTTL }),
	dur("renew-interval", "RenewInterval", false, "time between lease renewals (and heartbeats)",
		func(v *Values) *time.Duration { return &v.Pool.RenewInterval }),
	dur("safety-margin", "SafetyMargin", false, "stop committing this long before a lease could expire",
		func(v *Values) *time.Duration { return &v.Pool.SafetyMargin }),
	dur("liveness-confirm", "LivenessConfirm", false, "a peer whose liveness lock stays gone this long, with no heartbeat from it, is found dead",
		func(v *Values) *time.Duration { return &v.Pool.LivenessConfirm }),
	dur("balance-interval", "BalanceInterval", true, "time between balance rounds",
		func(v *Values) *time.Duration { return &v.Pool.BalanceInterval }),
	integer("max-moves", "sessions", "MaxMovesPerRound", true, "sessions a node above its share hands to each node below it per balance round",
		func(v *Values) *int { return &v.Pool.MaxMovesPerRound }),
	dur("source-give-up", "SourceGiveUp", true, "hand over a session whose source a node has failed to read for this long",
		func(v *Values) *time.Duration { return &v.Pool.SourceGiveUp }),
	integer("batch-size", "events", "Session.BatchSize", false, "events per batch (one store transaction)",
		func(v *Values) *int { return &v.Pool.Session.BatchSize }),
	integer("max-batch-size", "events", "Session.MaxBatchSize", false, "events per batch while a backlog drains",
		func(v *Values) *int { return &v.Pool.Session.MaxBatchSize }),
	dur("batch-wait", "Session.BatchWait", false, "after reading a partial batch, wait this long for more events (0: apply at once)",
		func(v *Values) *time.Duration { return &v.Pool.Session.BatchWait }),
	dur("poll-interval", "Session.PollInterval", false, "fallback read interval of an idle session without notifications",
		func(v *Values) *time.Duration { return &v.Pool.Session.PollInterval }),
	integer("max-event-size", "bytes", "Session.MaxEventSize", true, "a larger event is quarantined (and refused by the HTTP API)",
		func(v *Values) *int { return &v.Pool.Session.MaxEventSize }),
	{Name: "require-definitions", Kind: Boolean, Live: true, Help: "quarantine (and refuse over HTTP) the events of activities that have no deployed definition",
		boolean: func(v *Values) *bool { return &v.RequireDefinitions }},
	dur("http-idempotency-retention", "", true, "how long an HTTP Idempotency-Key answers retries",
		func(v *Values) *time.Duration { return &v.IdempotencyRetention }),
	dur("alert-interval", "", true, "time between two evaluations of the alerts",
		func(v *Values) *time.Duration { return &v.AlertInterval }),
}

// All returns every pool-wide setting, in a stable order.
func All() []*Setting { return slices.Clone(all) }

// Names returns the names of every pool-wide setting.
func Names() []string {
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.Name
	}
	return names
}

// ErrUnknown: no pool-wide setting has that name.
var ErrUnknown = errors.New("no such pool-wide setting")

// Lookup returns the setting name, or an error wrapping ErrUnknown that
// suggests the closest name.
func Lookup(name string) (*Setting, error) {
	for _, s := range all {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: %q%s", ErrUnknown, name, suggest.DidYouMean(name, Names()))
}

// Get returns the setting's value in v, in the form Set reads.
func (s *Setting) Get(v Values) string {
	switch s.Kind {
	case Duration:
		return s.duration(&v).String()
	case Integer:
		return strconv.Itoa(*s.integer(&v))
	default:
		return strconv.FormatBool(*s.boolean(&v))
	}
}

// Default returns the setting's default value.
func (s *Setting) Default() string { return s.Get(Defaults()) }

// Set parses text as the setting's value and sets it in v. It checks the
// syntax only: Values.Validate checks the rules.
func (s *Setting) Set(v *Values, text string) error {
	text = strings.TrimSpace(text)
	switch s.Kind {
	case Duration:
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("%s %q: not a duration; write it like 500ms, 3s or 2m", s.Name, text)
		}
		*s.duration(v) = d
	case Integer:
		n, err := strconv.Atoi(text)
		if err != nil {
			return fmt.Errorf("%s %q: not a whole number%s", s.Name, text, unitHint(s.Unit))
		}
		*s.integer(v) = n
	default:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%s %q: write true or false", s.Name, text)
		}
		*s.boolean(v) = b
	}
	return nil
}

func unitHint(unit string) string {
	if unit == "" {
		return ""
	}
	return " of " + unit
}

// Error is a value refused by a rule, naming the setting it breaks.
type Error struct {
	Name string // the setting
	Err  error  // the rule, in words
}

func (e *Error) Error() string { return e.Name + " " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Validate reports the first setting of v out of range, or a combination
// that would break the lease protocol, as an *Error naming the setting.
func (v Values) Validate() error {
	if err := v.Pool.Validate(); err != nil {
		var ce *pool.ConfigError
		if errors.As(err, &ce) {
			for _, s := range all {
				if s.field != "" && s.field == ce.Field {
					return &Error{Name: s.Name, Err: ce.Err}
				}
			}
		}
		return err // a per-node setting: its own flag's check names it
	}
	switch {
	case v.IdempotencyRetention <= 0:
		return &Error{Name: "http-idempotency-retention", Err: errors.New("must be positive")}
	case v.AlertInterval <= 0:
		return &Error{Name: "alert-interval", Err: errors.New("must be positive")}
	}
	return nil
}
