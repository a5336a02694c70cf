// Package storetest is the conformance suite every store driver passes, so
// that PostgreSQL and SQLite behave the same to the rest of bam, and so
// that the in-memory store the pool's unit tests run on (memstore) keeps
// the claim semantics of the real ones.
//
// The suite has one entry point per area, each in its own file: RunSchema,
// RunSources, RunPausedSources, RunLeases, RunApply, RunVocabulary,
// RunFailedEvents, RunBacklog, RunBuffer, RunIdempotentAppends, RunWatch, RunLiveness,
// RunDepartedNodes, RunDefinitions, RunAggregations, RunAlerts, RunActivityEvents and
// RunPoolSettings (and RunDirect for a driver's
// WriteEvents). Run runs them all: a driver's TestConformance calls it with
// a function that opens a fresh, empty store. Every test opens a store of
// its own, so the tests run in parallel.
//
// The areas of the part of the store a node of the pool uses (pool.Store)
// take a PoolStore, not a whole store.Store, and RunPool runs them: a
// store of only that part (memstore) is held to them too.
package storetest

import (
	"context"
	"encoding/json"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// PoolStore is the part of store.Store that a node of the pool uses:
// sources and their switches, membership, sessions and their leases,
// Apply's fence and the ingest buffer. The optional extras
// (store.BatchClaimer, store.BatchReleaser, store.Watcher, store.Liveness)
// are found by type assertion, as the pool finds them; a test of one the
// store lacks is skipped. The suite migrates a PoolStore that has a
// Migrate method and closes one that has a Close method.
type PoolStore interface {
	Driver() string

	AddSource(ctx context.Context, src store.Source) error
	Source(ctx context.Context, name string) (store.Source, error)
	SetSourceEnabled(ctx context.Context, name string, enabled bool) error
	SetSourcePaused(ctx context.Context, name string, paused bool) error

	Join(ctx context.Context, n store.NodeRow) error
	Leave(ctx context.Context, nodeID string) error
	ForgetNode(ctx context.Context, nodeID string, why store.Departure) error
	Nodes(ctx context.Context) ([]store.NodeRow, error)
	DepartedNodes(ctx context.Context) ([]store.DepartedNode, error)

	Sessions(ctx context.Context) ([]store.SessionRow, error)
	Claim(ctx context.Context, id store.SessionID, node, prevOwner string, ttl time.Duration) (store.Lease, error)
	Renew(ctx context.Context, n store.NodeRow, ttl time.Duration) ([]store.Lease, error)
	Release(ctx context.Context, l store.Lease, node string) error
	GiveUp(ctx context.Context, l store.Lease, node, reason string) error
	ExpireLeases(ctx context.Context, nodeID string) (int, error)
	RecordError(ctx context.Context, l store.Lease, node, msg string) error
	Apply(ctx context.Context, b store.Batch) error

	AppendBuffer(ctx context.Context, source string, events []store.BufferEvent) error
	ReadBuffer(ctx context.Context, id store.SessionID, after store.Position, limit int) (recs []store.Record, held bool, err error)
	TrimBuffer(ctx context.Context, id store.SessionID, upTo store.Position) error
	BufferBacklog(ctx context.Context, id store.SessionID, after store.Position) (int64, error)
}

var _ PoolStore = store.Store(nil)

// Peer is an optional extra of the stores a driver's test passes to the
// suite: OpenPeer opens another store on the same database, as another
// node's process does, closed when the test ends. The tests of what one
// node sees of another's doings (liveness locks, notices) need it, and
// are skipped without it.
type Peer interface {
	OpenPeer(t *testing.T) PoolStore
}

// openPeer opens a peer of s, or skips the test if s opens none.
func openPeer(t *testing.T, s PoolStore) PoolStore {
	t.Helper()
	p, ok := s.(Peer)
	if !ok {
		t.Skip("the store opens no peer (storetest.Peer)")
	}
	peer := p.OpenPeer(t)
	if c, ok := peer.(io.Closer); ok {
		t.Cleanup(func() { _ = c.Close() })
	}
	return peer
}

// Run runs the whole suite. open returns a fresh store with no schema;
// the suite migrates it, and closes it when the test ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	RunPool(t, func(t *testing.T) PoolStore { return open(t) })
	runAreas(t, []area{
		{"Schema", func(t *testing.T) { RunSchema(t, open) }},
		{"Sources", func(t *testing.T) { RunSources(t, open) }},
		{"Apply", func(t *testing.T) { RunApply(t, open) }},
		{"Vocabulary", func(t *testing.T) { RunVocabulary(t, open) }},
		{"FailedEvents", func(t *testing.T) { RunFailedEvents(t, open) }},
		{"Backlog", func(t *testing.T) { RunBacklog(t, open) }},
		{"IdempotentAppends", func(t *testing.T) { RunIdempotentAppends(t, open) }},
		{"Definitions", func(t *testing.T) { RunDefinitions(t, open) }},
		{"Aggregations", func(t *testing.T) { RunAggregations(t, open) }},
		{"Alerts", func(t *testing.T) { RunAlerts(t, open) }},
		{"ActivityEvents", func(t *testing.T) { RunActivityEvents(t, open) }},
		{"OperatorControls", func(t *testing.T) { RunOperatorControls(t, open) }},
		{"PoolSettings", func(t *testing.T) { RunPoolSettings(t, open) }},
	})
}

// RunPool runs the areas of the suite that a PoolStore is held to: those
// of the part of the store a node of the pool uses. open returns a fresh
// store; the suite migrates it if it has a schema, and closes it when the
// test ends if it has a Close method.
func RunPool(t *testing.T, open func(t *testing.T) PoolStore) {
	runAreas(t, []area{
		{"PausedSources", func(t *testing.T) { RunPausedSources(t, open) }},
		{"Leases", func(t *testing.T) { RunLeases(t, open) }},
		{"Buffer", func(t *testing.T) { RunBuffer(t, open) }},
		{"Watch", func(t *testing.T) { RunWatch(t, open) }},
		{"Liveness", func(t *testing.T) { RunLiveness(t, open) }},
		{"DepartedNodes", func(t *testing.T) { RunDepartedNodes(t, open) }},
	})
}

// area is one entry point of the suite, as Run and RunPool run it.
type area struct {
	name string
	run  func(t *testing.T)
}

// runAreas runs each area as a subtest, all of them in parallel (as
// their tests are).
func runAreas(t *testing.T, areas []area) {
	for _, a := range areas {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			a.run(t)
		})
	}
}

// prepared opens a fresh store for one test: migrated if it has a schema,
// closed when the test ends if it can be, with a context that ends then
// too.
func prepared[S any](t *testing.T, open func(t *testing.T) S) (S, context.Context) {
	t.Helper()
	s := open(t)
	if c, ok := any(s).(io.Closer); ok {
		t.Cleanup(func() { _ = c.Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if m, ok := any(s).(interface {
		Migrate(ctx context.Context) (from, to int, err error)
	}); ok {
		if _, _, err := m.Migrate(ctx); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	return s, ctx
}

func at(sec int) time.Time {
	return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second)
}

func ev(activity, instance string, kind event.Kind, sec int, data map[string]string) event.Event {
	e := event.Event{Activity: activity, Instance: instance, Kind: kind, Time: at(sec)}
	if data != nil {
		e.Data = map[string]json.RawMessage{}
		for k, v := range data {
			e.Data[k] = json.RawMessage(v)
		}
	}
	return e
}

func batch(l store.Lease, node string, cp store.Position, events ...event.Event) store.Batch {
	return store.Batch{Lease: l, Node: node, Checkpoint: cp, Deltas: event.Coalesce(events), Applied: len(events)}
}

func node(id string) store.NodeRow {
	return store.NodeRow{ID: id, Name: id, Host: "test", PID: 1, StartedAt: time.Now(), State: store.NodeRunning}
}

func joinNodes(t *testing.T, ctx context.Context, s PoolStore, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.Join(ctx, node(id)); err != nil {
			t.Fatalf("Join(%s): %v", id, err)
		}
	}
}

func mustAddBuffer(t *testing.T, ctx context.Context, s PoolStore, name string, partitions int) {
	t.Helper()
	if err := s.AddSource(ctx, store.Source{Name: name, Kind: store.KindBuffer, Partitions: partitions, Enabled: true}); err != nil {
		t.Fatalf("AddSource(%s): %v", name, err)
	}
}

// buffered counts the events in a buffer source's partitions.
func buffered(t *testing.T, ctx context.Context, s PoolStore, source string, partitions int) int {
	t.Helper()
	total := 0
	for p := 0; p < partitions; p++ {
		n, err := s.BufferBacklog(ctx, store.SessionID{Source: source, Partition: p}, store.Position{})
		if err != nil {
			t.Fatalf("BufferBacklog(%s/%d): %v", source, p, err)
		}
		total += int(n)
	}
	return total
}

func mustSessions(t *testing.T, ctx context.Context, s PoolStore) []store.SessionRow {
	t.Helper()
	ss, err := s.Sessions(ctx)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	return ss
}

func session(t *testing.T, ctx context.Context, s PoolStore, id store.SessionID) store.SessionRow {
	t.Helper()
	for _, se := range mustSessions(t, ctx, s) {
		if se.SessionID == id {
			return se
		}
	}
	t.Fatalf("no session %v", id)
	return store.SessionRow{}
}

func instance(t *testing.T, ctx context.Context, s store.Store, k event.Key) store.Instance {
	t.Helper()
	in, err := s.Instance(ctx, k)
	if err != nil {
		t.Fatalf("Instance(%v): %v", k, err)
	}
	return in
}

func dataStrings(d map[string]json.RawMessage) map[string]string {
	out := map[string]string{}
	for k, v := range d {
		out[k] = string(v)
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}
