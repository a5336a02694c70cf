// Package memstore is an in-memory store of the part of store.Store that a
// node of the pool uses (pool.Store): membership, leases with the store's
// claim semantics, checkpoints that move under the fence, the ingest
// buffer, liveness locks and notices. It backs fast unit tests of the pool
// and the bus: it keeps time with time.Now, so inside a testing/synctest
// bubble leases expire on the bubble's fake clock and a test that covers
// seconds of pool life runs in milliseconds. It is held to the same
// conformance tests as the real drivers for that part of the store
// (storetest.RunPool: membership, leases, paused sources, the buffer,
// notices, liveness locks, departed nodes).
//
// It is not a store for users: instances are not merged (Apply counts the
// events it applied per instance, which is what tests of exactly-once
// look at), and there are no definitions, views or failed-event lists.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// Store is the in-memory store. Its methods are safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	sources  map[string]store.Source
	sessions map[store.SessionID]*session
	nodes    map[string]store.NodeRow // HeartbeatAt set, HeartbeatAge computed on read
	departed []store.DepartedNode
	locks    map[int64]chan struct{} // held liveness locks: closed when lost
	watchers map[int]chan store.Notice
	nextW    int
	bufferID int64

	// applied counts the events applied per instance, all sessions
	// together: a test of exactly-once reads it with Applied.
	applied map[event.Key]int
}

type session struct {
	store.SessionRow
	expires  time.Time // lease expiry, by the store's clock
	givenUp  time.Time // when GivenUpBy gave it up
	buffered []store.Record
}

// New returns an empty store.
func New() *Store {
	return &Store{
		sources: map[string]store.Source{}, sessions: map[store.SessionID]*session{},
		nodes: map[string]store.NodeRow{}, locks: map[int64]chan struct{}{},
		watchers: map[int]chan store.Notice{}, applied: map[event.Key]int{},
	}
}

var (
	_ store.BatchClaimer  = (*Store)(nil)
	_ store.BatchReleaser = (*Store)(nil)
	_ store.Liveness      = (*Store)(nil)
	_ store.Watcher       = (*Store)(nil)
)

// Driver names the store.
func (s *Store) Driver() string { return "memory" }

// AddSource creates a source and its sessions; store.ErrExists if the name
// is taken.
func (s *Store) AddSource(_ context.Context, src store.Source) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sources[src.Name]; ok {
		return fmt.Errorf("source %s: %w", src.Name, store.ErrExists)
	}
	if src.Partitions < 1 {
		return fmt.Errorf("source %s: %d partitions", src.Name, src.Partitions)
	}
	s.sources[src.Name] = src
	for p := range src.Partitions {
		id := store.SessionID{Source: src.Name, Partition: p}
		s.sessions[id] = &session{SessionRow: store.SessionRow{SessionID: id, Kind: src.Kind}}
	}
	s.notify(store.Notice{Topic: store.TopicSessions})
	return nil
}

// Sources lists the sources by name.
func (s *Store) Sources(context.Context) ([]store.Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Source, 0, len(s.sources))
	for _, src := range s.sources {
		out = append(out, src)
	}
	slices.SortFunc(out, func(a, b store.Source) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Source returns one source; store.ErrNotFound if there is none.
func (s *Store) Source(_ context.Context, name string) (store.Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.sources[name]
	if !ok {
		return store.Source{}, fmt.Errorf("source %s: %w", name, store.ErrNotFound)
	}
	return src, nil
}

// SetSourceEnabled sets a source's Enabled and tells the nodes to balance.
func (s *Store) SetSourceEnabled(_ context.Context, name string, enabled bool) error {
	return s.setSource(name, func(src *store.Source) { src.Enabled = enabled })
}

// SetSourcePaused sets a source's Paused and tells the nodes to balance.
func (s *Store) SetSourcePaused(_ context.Context, name string, paused bool) error {
	return s.setSource(name, func(src *store.Source) { src.Paused = paused })
}

func (s *Store) setSource(name string, set func(*store.Source)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.sources[name]
	if !ok {
		return fmt.Errorf("source %s: %w", name, store.ErrNotFound)
	}
	set(&src)
	s.sources[name] = src
	s.notify(store.Notice{Topic: store.TopicSessions})
	return nil
}

// RecordOutbox records nothing: the store has no pg-outbox sources.
func (s *Store) RecordOutbox(context.Context, string, store.OutboxIdentity) error { return nil }

// StoreID returns the store's identity.
func (s *Store) StoreID(context.Context) (string, error) { return "memstore", nil }

// StopOutbox records nothing: the store has no pg-outbox sources.
func (s *Store) StopOutbox(context.Context, store.SessionID, store.Position, string) error {
	return nil
}

// Join inserts or replaces the node's row with a fresh heartbeat, and
// tells the nodes to balance, as the drivers do: a new node gets work
// without waiting for their timers.
func (s *Store) Join(_ context.Context, n store.NodeRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n.HeartbeatAt, n.HeartbeatAge = time.Now(), 0
	if n.StartedAt.IsZero() {
		n.StartedAt = n.HeartbeatAt
	}
	s.nodes[n.ID] = n
	s.notify(store.Notice{Topic: store.TopicSessions})
	return nil
}

// Leave releases every lease of the node and deletes its row, recording
// it as departed cleanly, and tells the nodes to balance.
func (s *Store) Leave(_ context.Context, nodeID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.Owner == nodeID {
			ss.Owner, ss.expires = "", time.Time{}
		}
	}
	s.depart(nodeID, store.Departure{Why: store.DepartedCleanly})
	s.notify(store.Notice{Topic: store.TopicSessions})
	return nil
}

// ForgetNode deletes a dead node's row, recording why; its leases are
// left to expire or be expired.
func (s *Store) ForgetNode(_ context.Context, nodeID string, why store.Departure) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.depart(nodeID, why)
	return nil
}

func (s *Store) depart(nodeID string, why store.Departure) {
	n, ok := s.nodes[nodeID]
	if !ok {
		return // a peer forgot it first
	}
	delete(s.nodes, nodeID)
	now := time.Now().UTC() // the drivers' times are in UTC
	// One record per node, its latest departure, as the drivers keep.
	s.departed = slices.DeleteFunc(s.departed, func(d store.DepartedNode) bool {
		return d.ID == nodeID || now.Sub(d.DepartedAt) > store.DepartedMemory
	})
	s.departed = append(s.departed, store.DepartedNode{NodeRow: n, Departure: why, DepartedAt: now})
}

// Nodes lists every member, with its heartbeat's age by the store's clock.
func (s *Store) Nodes(context.Context) ([]store.NodeRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	out := make([]store.NodeRow, 0, len(s.nodes))
	for _, n := range s.nodes {
		n.HeartbeatAge = now.Sub(n.HeartbeatAt)
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b store.NodeRow) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// DepartedNodes lists the nodes that left less than store.DepartedMemory
// ago and are not members again, the latest first.
func (s *Store) DepartedNodes(context.Context) ([]store.DepartedNode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []store.DepartedNode
	for i := len(s.departed) - 1; i >= 0; i-- {
		d := s.departed[i]
		if _, member := s.nodes[d.ID]; member || now.Sub(d.DepartedAt) > store.DepartedMemory {
			continue
		}
		d.HeartbeatAge, d.DepartedAge = now.Sub(d.HeartbeatAt), now.Sub(d.DepartedAt)
		out = append(out, d)
	}
	return out, nil
}

// Sessions lists every session, by source and partition.
func (s *Store) Sessions(context.Context) ([]store.SessionRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	out := make([]store.SessionRow, 0, len(s.sessions))
	for _, ss := range s.sessions {
		v := ss.SessionRow
		src := s.sources[v.Source]
		v.SourceEnabled, v.SourcePaused = src.Enabled, src.Paused
		if v.Owner != "" {
			v.LeaseRemaining = ss.expires.Sub(now)
		}
		if v.GivenUpBy != "" && now.Sub(ss.givenUp) >= store.GiveUpMemory {
			v.GivenUpBy = ""
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b store.SessionRow) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return a.Partition - b.Partition
	})
	return out, nil
}

// Claim takes a session for node, raising its epoch, if its owner is
// still prevOwner ("": free) and, when prevOwner is another node, that
// node's lease has expired, and its source applies; else
// store.ErrNotClaimable.
func (s *Store) Claim(_ context.Context, id store.SessionID, node, prevOwner string, ttl time.Duration) (store.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.claim(id, node, prevOwner, ttl)
	if !ok {
		return store.Lease{}, fmt.Errorf("claim session %s/%d for node %s: %w", id.Source, id.Partition, node, store.ErrNotClaimable)
	}
	return l, nil
}

// ClaimBatch claims each session as Claim would and returns the leases of
// those it claimed.
func (s *Store) ClaimBatch(_ context.Context, claims []store.ClaimRequest, node string, ttl time.Duration) ([]store.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Lease
	for _, c := range claims {
		if l, ok := s.claim(c.ID, node, c.PrevOwner, ttl); ok {
			out = append(out, l)
		}
	}
	return out, nil
}

func (s *Store) claim(id store.SessionID, node, prevOwner string, ttl time.Duration) (store.Lease, bool) {
	ss, ok := s.sessions[id]
	if !ok || ss.Owner != prevOwner {
		return store.Lease{}, false
	}
	now := time.Now()
	if prevOwner != "" && prevOwner != node && ss.expires.After(now) {
		return store.Lease{}, false
	}
	if src := s.sources[id.Source]; !src.Enabled || src.Paused {
		return store.Lease{}, false
	}
	ss.Owner, ss.Epoch, ss.expires = node, ss.Epoch+1, now.Add(ttl)
	return store.Lease{SessionID: id, Epoch: ss.Epoch, Checkpoint: ss.Checkpoint}, true
}

// Renew heartbeats the node (re-inserting its row if it was forgotten)
// and extends every unexpired lease it owns, returning them. An expired
// lease is not revived, even if nobody took it.
func (s *Store) Renew(_ context.Context, n store.NodeRow, ttl time.Duration) ([]store.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if old, ok := s.nodes[n.ID]; ok && !old.StartedAt.IsZero() {
		n.StartedAt = old.StartedAt
	}
	n.HeartbeatAt, n.HeartbeatAge = now, 0
	s.nodes[n.ID] = n
	var out []store.Lease
	for _, ss := range s.sessions {
		if ss.Owner == n.ID && ss.expires.After(now) {
			ss.expires = now.Add(ttl)
			out = append(out, store.Lease{SessionID: ss.SessionID, Epoch: ss.Epoch, Checkpoint: ss.Checkpoint})
		}
	}
	return out, nil
}

// Release frees a session the node owns under l's epoch; a no-op if it
// does not.
func (s *Store) Release(_ context.Context, l store.Lease, node string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release(l, node) {
		s.notify(store.Notice{Topic: store.TopicSessions})
	}
	return nil
}

// ReleaseBatch releases each lease as Release does, with one notice.
func (s *Store) ReleaseBatch(_ context.Context, leases []store.Lease, node string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	released := false
	for _, l := range leases {
		released = s.release(l, node) || released
	}
	if released {
		s.notify(store.Notice{Topic: store.TopicSessions})
	}
	return nil
}

func (s *Store) release(l store.Lease, node string) bool {
	ss, ok := s.sessions[l.SessionID]
	if !ok || ss.Owner != node || ss.Epoch != l.Epoch {
		return false
	}
	ss.Owner, ss.expires = "", time.Time{}
	return true
}

// GiveUp releases as Release does and records node as the session's
// GivenUpBy and reason as its last error.
func (s *Store) GiveUp(_ context.Context, l store.Lease, node, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.release(l, node) {
		return nil
	}
	ss := s.sessions[l.SessionID]
	now := time.Now()
	ss.GivenUpBy, ss.givenUp, ss.LastError, ss.LastErrorAt = node, now, reason, &now
	s.notify(store.Notice{Topic: store.TopicSessions})
	return nil
}

// ExpireLeases ends every lease of a node at once and, when leases ended,
// tells the nodes to balance.
func (s *Store) ExpireLeases(_ context.Context, nodeID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, n := time.Now(), 0
	for _, ss := range s.sessions {
		if ss.Owner == nodeID && ss.expires.After(now) {
			ss.expires = now
			n++
		}
	}
	if n > 0 {
		s.notify(store.Notice{Topic: store.TopicSessions})
	}
	return n, nil
}

// RecordError stores a session's last error, fenced like Apply.
func (s *Store) RecordError(_ context.Context, l store.Lease, node, msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[l.SessionID]
	if !ok || ss.Owner != node || ss.Epoch != l.Epoch {
		return fmt.Errorf("record error of session %s/%d: %w", l.Source, l.Partition, store.ErrFenced)
	}
	ss.LastError, ss.LastErrorAt = msg, nil
	if msg != "" {
		now := time.Now()
		ss.LastErrorAt = &now
	}
	return nil
}

// Apply moves the session's checkpoint, fenced on owner, epoch and From
// (store.ErrFenced), and counts the events applied per instance.
func (s *Store) Apply(_ context.Context, b store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[b.SessionID]
	if !ok || ss.Owner != b.Node || ss.Epoch != b.Epoch || ss.Checkpoint != b.From {
		return fmt.Errorf("apply batch of session %s/%d: %w", b.Source, b.Partition, store.ErrFenced)
	}
	ss.Checkpoint = b.Checkpoint
	ss.Applied += int64(b.Applied)
	ss.Failed += int64(len(b.Failures))
	ss.LastError, ss.LastErrorAt = "", nil
	for _, d := range b.Deltas {
		s.applied[d.Key] += d.Events
	}
	return nil
}

// Applied returns how many events were applied to each instance.
func (s *Store) Applied() map[event.Key]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[event.Key]int, len(s.applied))
	for k, n := range s.applied {
		out[k] = n
	}
	return out
}

// AppendBuffer appends events to a buffer source and wakes the nodes.
func (s *Store) AppendBuffer(_ context.Context, source string, events []store.BufferEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.sources[source]
	if !ok {
		return fmt.Errorf("append to buffer %q: %w", source, store.ErrNotFound)
	}
	if src.Kind != store.KindBuffer {
		return fmt.Errorf("append to buffer %q: source is of kind %s, not %s", source, src.Kind, store.KindBuffer)
	}
	for i, e := range events {
		if e.Partition < 0 || e.Partition >= src.Partitions {
			return fmt.Errorf("append to buffer %q: event %d: partition %d out of range", source, i, e.Partition)
		}
	}
	now := time.Now()
	for _, e := range events {
		s.bufferID++
		ss := s.sessions[store.SessionID{Source: source, Partition: e.Partition}]
		ss.buffered = append(ss.buffered, store.Record{Position: store.Position{Minor: s.bufferID}, Payload: e.Payload, WrittenAt: now})
	}
	s.notify(store.Notice{Topic: store.TopicBuffer, Source: source})
	return nil
}

// ReadBuffer returns up to limit records after a position. Writes are
// atomic here: nothing is ever held.
func (s *Store) ReadBuffer(_ context.Context, id store.SessionID, after store.Position, limit int) ([]store.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[id]
	if !ok {
		return nil, false, fmt.Errorf("read buffer %s/%d: %w", id.Source, id.Partition, store.ErrNotFound)
	}
	var out []store.Record
	for _, r := range ss.buffered {
		if after.Less(r.Position) && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, false, nil
}

// TrimBuffer deletes the records up to and including a position.
func (s *Store) TrimBuffer(_ context.Context, id store.SessionID, upTo store.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.sessions[id]; ok {
		ss.buffered = slices.DeleteFunc(ss.buffered, func(r store.Record) bool { return !upTo.Less(r.Position) })
	}
	return nil
}

// BufferBacklog counts the records after a position.
func (s *Store) BufferBacklog(_ context.Context, id store.SessionID, after store.Position) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	if ss, ok := s.sessions[id]; ok {
		for _, r := range ss.buffered {
			if after.Less(r.Position) {
				n++
			}
		}
	}
	return n, nil
}

// HoldLiveness takes the liveness lock for key until ctx ends, or until
// DropLiveness (a broken connection, a death) closes lost.
func (s *Store) HoldLiveness(ctx context.Context, key int64) (<-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.locks[key]; held {
		return nil, fmt.Errorf("liveness lock %d is held by another holder", key)
	}
	lost := make(chan struct{})
	s.locks[key] = lost
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.locks[key] == lost {
			delete(s.locks, key)
		}
	})
	return lost, nil
}

// DropLiveness releases the liveness lock for key as a broken connection
// or a dead process would: its holder's lost channel closes.
func (s *Store) DropLiveness(key int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lost, ok := s.locks[key]; ok {
		delete(s.locks, key)
		close(lost)
	}
}

// LivenessHeld reports, for each key, whether it is held.
func (s *Store) LivenessHeld(_ context.Context, keys []int64) (map[int64]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int64]bool, len(keys))
	for _, k := range keys {
		_, out[k] = s.locks[k]
	}
	return out, nil
}

// Watch calls fn for each notice until ctx ends.
func (s *Store) Watch(ctx context.Context, fn func(store.Notice)) error {
	ch := make(chan store.Notice, 64)
	s.mu.Lock()
	id := s.nextW
	s.nextW++
	s.watchers[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, id)
		s.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case n := <-ch:
			fn(n)
		}
	}
}

// notify sends a notice to every watcher; a watcher that lags loses it, as
// a notice is only a hint (nodes also poll). Callers hold mu.
func (s *Store) notify(n store.Notice) {
	for _, ch := range s.watchers {
		select {
		case ch <- n:
		default:
		}
	}
}
