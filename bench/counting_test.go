package bench

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// countingStore is a store.Store that counts every method call its node
// makes, by method. A call is about one SQL statement: most methods send
// one statement (Renew renews every lease of the node in one), a few send
// one pipelined transaction (Apply, Claim on some drivers). What a driver
// does on its own, outside any call (PostgreSQL's pings of its LISTEN and
// liveness connections, SQLite's Watch poll), is not counted.
//
// Watch and the Liveness methods go to w and lv, which the caller sets:
// the node's own store, or what stands in for it when several in-process
// nodes share one (see BenchmarkBalance).
type countingStore struct {
	store.Store
	n  *callCounter
	w  store.Watcher
	lv store.Liveness
	// rounds counts this node's balance rounds (a round reads the nodes
	// once, first); claimedIn is the last round in which the node claimed
	// a session: for BenchmarkBalance's rounds to converge. (Handovers are
	// not rounds of the taker: a giver woken by every notice runs many.)
	rounds, claimedIn atomic.Int64
}

// claimed notes that the node's current round claimed a session.
func (s *countingStore) claimed() { s.claimedIn.Store(s.rounds.Load()) }

var (
	_ store.Watcher       = (*countingStore)(nil)
	_ store.Liveness      = (*countingStore)(nil)
	_ store.BatchReleaser = (*countingStore)(nil)
	_ store.BatchClaimer  = (*countingStore)(nil)
)

// callCounter adds up the calls of every countingStore sharing it, and
// how long they took.
type callCounter struct {
	mu          sync.Mutex
	calls       map[string]int64
	took        map[string]time.Duration // total
	longest     map[string]time.Duration
	sessionRows int64 // rows returned by Sessions: the size of the views read
}

func newCallCounter() *callCounter {
	return &callCounter{calls: map[string]int64{}, took: map[string]time.Duration{}, longest: map[string]time.Duration{}}
}

// add counts a call of method that started at start and has returned
// (Watch and HoldLiveness: has begun).
func (c *callCounter) add(method string, start time.Time) {
	d := time.Since(start)
	c.mu.Lock()
	c.calls[method]++
	c.took[method] += d
	c.longest[method] = max(c.longest[method], d)
	c.mu.Unlock()
}

// snapshot returns the counts so far, and the session rows read.
func (c *callCounter) snapshot() (map[string]int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls), c.sessionRows
}

// latencies returns, for each method called, its mean and longest call
// in milliseconds, over the counter's whole life.
func (c *callCounter) latencies() map[string][2]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][2]float64{}
	for m, n := range c.calls {
		out[m] = [2]float64{ms(c.took[m]) / float64(n), ms(c.longest[m])}
	}
	return out
}

// coordination are the membership, lease and balancing calls: what
// DESIGN.md wants O(nodes) per interval. The others are the sessions' own
// (reads of the source, batches).
var coordination = map[string]bool{
	"Join": true, "Leave": true, "ForgetNode": true, "Nodes": true, "Sessions": true,
	"Claim": true, "Renew": true, "Release": true, "ReleaseBatch": true, "ClaimBatch": true, "ExpireLeases": true, "RecordError": true,
	"Watch": true, "HoldLiveness": true, "LivenessHeld": true,
}

func (s *countingStore) Migrate(ctx context.Context) (int, int, error) {
	defer s.n.add("Migrate", time.Now())
	return s.Store.Migrate(ctx)
}

func (s *countingStore) CheckSchema(ctx context.Context) error {
	defer s.n.add("CheckSchema", time.Now())
	return s.Store.CheckSchema(ctx)
}

func (s *countingStore) AddSource(ctx context.Context, src store.Source) error {
	defer s.n.add("AddSource", time.Now())
	return s.Store.AddSource(ctx, src)
}

func (s *countingStore) Sources(ctx context.Context) ([]store.Source, error) {
	defer s.n.add("Sources", time.Now())
	return s.Store.Sources(ctx)
}

func (s *countingStore) Source(ctx context.Context, name string) (store.Source, error) {
	defer s.n.add("Source", time.Now())
	return s.Store.Source(ctx, name)
}

func (s *countingStore) SetSourceEnabled(ctx context.Context, name string, enabled bool) error {
	defer s.n.add("SetSourceEnabled", time.Now())
	return s.Store.SetSourceEnabled(ctx, name, enabled)
}

func (s *countingStore) SetSourcePaused(ctx context.Context, name string, paused bool) error {
	defer s.n.add("SetSourcePaused", time.Now())
	return s.Store.SetSourcePaused(ctx, name, paused)
}

func (s *countingStore) RemoveSource(ctx context.Context, name string, opt store.RemoveOptions) (store.Removal, error) {
	defer s.n.add("RemoveSource", time.Now())
	return s.Store.RemoveSource(ctx, name, opt)
}

func (s *countingStore) Join(ctx context.Context, n store.NodeRow) error {
	defer s.n.add("Join", time.Now())
	return s.Store.Join(ctx, n)
}

func (s *countingStore) Leave(ctx context.Context, nodeID string) error {
	defer s.n.add("Leave", time.Now())
	return s.Store.Leave(ctx, nodeID)
}

func (s *countingStore) ForgetNode(ctx context.Context, nodeID string, why store.Departure) error {
	defer s.n.add("ForgetNode", time.Now())
	return s.Store.ForgetNode(ctx, nodeID, why)
}

func (s *countingStore) Nodes(ctx context.Context) ([]store.NodeRow, error) {
	defer s.n.add("Nodes", time.Now())
	s.rounds.Add(1)
	return s.Store.Nodes(ctx)
}

func (s *countingStore) Sessions(ctx context.Context) ([]store.SessionRow, error) {
	start := time.Now()
	ss, err := s.Store.Sessions(ctx)
	s.n.add("Sessions", start)
	s.n.mu.Lock()
	s.n.sessionRows += int64(len(ss))
	s.n.mu.Unlock()
	return ss, err
}

func (s *countingStore) Claim(ctx context.Context, id store.SessionID, node, prevOwner string, ttl time.Duration) (store.Lease, error) {
	defer s.n.add("Claim", time.Now())
	l, err := s.Store.Claim(ctx, id, node, prevOwner, ttl)
	if err == nil {
		s.claimed()
	}
	return l, err
}

func (s *countingStore) Renew(ctx context.Context, n store.NodeRow, ttl time.Duration) ([]store.Lease, error) {
	defer s.n.add("Renew", time.Now())
	return s.Store.Renew(ctx, n, ttl)
}

func (s *countingStore) Release(ctx context.Context, l store.Lease, node string) error {
	defer s.n.add("Release", time.Now())
	return s.Store.Release(ctx, l, node)
}

// ReleaseBatch passes through to the driver's (both drivers have one), so
// that a node sees the same optional extras through the wrapper.
func (s *countingStore) ReleaseBatch(ctx context.Context, leases []store.Lease, node string) error {
	defer s.n.add("ReleaseBatch", time.Now())
	return s.Store.(store.BatchReleaser).ReleaseBatch(ctx, leases, node)
}

// ClaimBatch passes through to the driver's, as ReleaseBatch.
func (s *countingStore) ClaimBatch(ctx context.Context, claims []store.ClaimRequest, node string, ttl time.Duration) ([]store.Lease, error) {
	defer s.n.add("ClaimBatch", time.Now())
	leases, err := s.Store.(store.BatchClaimer).ClaimBatch(ctx, claims, node, ttl)
	if len(leases) > 0 {
		s.claimed()
	}
	return leases, err
}

func (s *countingStore) ExpireLeases(ctx context.Context, nodeID string) (int, error) {
	defer s.n.add("ExpireLeases", time.Now())
	return s.Store.ExpireLeases(ctx, nodeID)
}

func (s *countingStore) RecordError(ctx context.Context, l store.Lease, node, msg string) error {
	defer s.n.add("RecordError", time.Now())
	return s.Store.RecordError(ctx, l, node, msg)
}

func (s *countingStore) Apply(ctx context.Context, b store.Batch) error {
	defer s.n.add("Apply", time.Now())
	return s.Store.Apply(ctx, b)
}

func (s *countingStore) AppendBuffer(ctx context.Context, source string, events []store.BufferEvent) error {
	defer s.n.add("AppendBuffer", time.Now())
	return s.Store.AppendBuffer(ctx, source, events)
}

func (s *countingStore) ReadBuffer(ctx context.Context, id store.SessionID, after store.Position, limit int) ([]store.Record, bool, error) {
	defer s.n.add("ReadBuffer", time.Now())
	return s.Store.ReadBuffer(ctx, id, after, limit)
}

func (s *countingStore) TrimBuffer(ctx context.Context, id store.SessionID, upTo store.Position) error {
	defer s.n.add("TrimBuffer", time.Now())
	return s.Store.TrimBuffer(ctx, id, upTo)
}

func (s *countingStore) BufferBacklog(ctx context.Context, id store.SessionID, after store.Position) (int64, error) {
	defer s.n.add("BufferBacklog", time.Now())
	return s.Store.BufferBacklog(ctx, id, after)
}

func (s *countingStore) Instance(ctx context.Context, k event.Key) (store.Instance, error) {
	defer s.n.add("Instance", time.Now())
	return s.Store.Instance(ctx, k)
}

func (s *countingStore) Instances(ctx context.Context, f store.InstanceFilter) ([]store.Instance, error) {
	defer s.n.add("Instances", time.Now())
	return s.Store.Instances(ctx, f)
}

func (s *countingStore) FailedEvents(ctx context.Context, source string, limit int) ([]store.FailedEvent, error) {
	defer s.n.add("FailedEvents", time.Now())
	return s.Store.FailedEvents(ctx, source, limit)
}

func (s *countingStore) FailedEvent(ctx context.Context, id int64) (store.FailedEvent, error) {
	defer s.n.add("FailedEvent", time.Now())
	return s.Store.FailedEvent(ctx, id)
}

func (s *countingStore) RetryFailed(ctx context.Context, id int64, payload []byte, maxEventSize int) error {
	defer s.n.add("RetryFailed", time.Now())
	return s.Store.RetryFailed(ctx, id, payload, maxEventSize)
}

func (s *countingStore) DiscardFailed(ctx context.Context, id int64) error {
	defer s.n.add("DiscardFailed", time.Now())
	return s.Store.DiscardFailed(ctx, id)
}

// Watch is one call for as long as the node watches; what the driver
// reads meanwhile is not counted.
func (s *countingStore) Watch(ctx context.Context, fn func(store.Notice)) error {
	s.n.add("Watch", time.Now())
	return s.w.Watch(ctx, fn)
}

func (s *countingStore) HoldLiveness(ctx context.Context, key int64) (<-chan struct{}, error) {
	defer s.n.add("HoldLiveness", time.Now())
	return s.lv.HoldLiveness(ctx, key)
}

func (s *countingStore) LivenessHeld(ctx context.Context, keys []int64) (map[int64]bool, error) {
	defer s.n.add("LivenessHeld", time.Now())
	return s.lv.LivenessHeld(ctx, keys)
}
