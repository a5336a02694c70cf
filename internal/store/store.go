// Package store is the activity store: the one database that the nodes of a
// pool share. It holds the schema version, the configured sources and their
// sessions (owner, epoch, lease, checkpoint), the node membership rows (and,
// for a while, those of the nodes that left: DepartedNodes), the
// ingest buffer, the activity instances and the failed events.
//
// Two drivers implement Store: postgres (production) and sqlite (the
// embedded default). storetest holds the conformance suite both must pass.
// Open picks the driver from a store URL.
//
// Every time that decides anything (lease expiry, node liveness) is the
// store's own clock: drivers compute it in SQL with now(), never from the
// caller's clock.
//
// A source's positions change only by a fenced batch (Apply) or by an
// operation that raises the epoch of every session it touches and frees it
// in the same transaction (ResetCheckpoints, Repartition), so that no batch
// read before can commit after. A pg-outbox source records which outbox
// its positions are in (OutboxIdentity), one source per outbox table, and
// a removed one leaves its checkpoints as a tombstone that a source added
// on the same table takes over (sources.go).
//
// The store also holds the deployed activity definitions and exposes each
// activity as typed views over the instances. A deployment is one
// transaction under a lock: RunDeploy (deploy.go) plans the file over what
// is deployed, refuses to lose data that instances hold unless forced, and
// has the driver write the definitions, record the deployment and recreate
// the changed activities' views and indexes; the view SQL is written once
// (ViewSQL), each driver supplying how it reads a typed item and a time.
// Instances stay where they are (bam_instances, items as JSON): views are
// the typed, stable surface BI tools read, and they never fail on a value
// that does not fit (definitions.go).
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bam-dev/bam/internal/event"
)

// Sentinel errors callers branch on with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrFenced        = errors.New("session is no longer owned by this node under this epoch")
	ErrNotClaimable  = errors.New("session is owned by a live lease")
	ErrSchemaOld     = errors.New("store schema is older than this bam; run `bam migrate`")
	ErrSchemaNewer   = errors.New("store schema is newer than this bam; upgrade bam")
	ErrSchemaMissing = errors.New("store has no bam schema; run `bam migrate`")
	// ErrBadURL: the store URL cannot be used as written (an unknown kind,
	// a setting that does not parse); retrying cannot help.
	ErrBadURL = errors.New("bad store URL")
	// ErrIdempotencyConflict: an idempotency key is recorded for another
	// request (another source or another body).
	ErrIdempotencyConflict = errors.New("idempotency key was first used for another request")
	// ErrDataRefused: the database refused a value of a batch as data
	// (PostgreSQL: SQLSTATE class 22, data exception; SQLite:
	// SQLITE_TOOBIG or SQLITE_MISMATCH). The same batch fails the same way
	// on every retry, unlike a lost connection, a serialization failure or
	// a lock timeout. Apply returns it as a *DataRefusedError.
	ErrDataRefused = errors.New("the store refused a value of the batch")
)

// DataRefusedError is how Apply reports ErrDataRefused. Drivers classify
// their database's errors here, once, so that callers never read SQLSTATEs
// or result codes.
type DataRefusedError struct {
	// Reason is the database's own message, with its SQLSTATE or result
	// code: what a quarantined event is filed with.
	Reason string
	Err    error // the driver's error
}

func (e *DataRefusedError) Error() string { return "the store refused a value: " + e.Reason }

// Unwrap makes errors.Is find ErrDataRefused and the driver's error.
func (e *DataRefusedError) Unwrap() []error { return []error{ErrDataRefused, e.Err} }

// ErrLocked: the session's row is locked by a transaction still in
// progress (a batch being committed, or one whose client stopped sending
// mid-request), and waiting for it would hold up the caller. A claim that
// meets it is skipped for now, like ErrNotClaimable.
var ErrLocked = errors.New("session is locked by a transaction in progress")

// Position is a place in one source partition. Events are read in
// (Major, Minor) order. Buffer on SQLite: Major 0, Minor the row id. Buffer
// on PostgreSQL and pg-outbox: Major the writing transaction's xid8, Minor the
// row id. The zero Position is before every event.
type Position struct {
	Major int64 `json:"major"`
	Minor int64 `json:"minor"`
}

// Less reports whether p is before q.
func (p Position) Less(q Position) bool {
	return p.Major < q.Major || (p.Major == q.Major && p.Minor < q.Minor)
}

// SourceKind is where a source's events are written.
type SourceKind string

const (
	KindBuffer   SourceKind = "buffer"    // the store's own ingest buffer
	KindPgOutbox SourceKind = "pg-outbox" // an outbox table in an application's PostgreSQL
)

// Source is a configured source of events.
type Source struct {
	Name       string
	Kind       SourceKind
	Partitions int
	// Enabled: writes to the source are accepted and its events applied.
	// A disabled source refuses writes (bam emit, the HTTP API, the SDK's
	// streams) and no node applies it.
	Enabled bool
	// Paused: no node applies the source's events, but writes are still
	// accepted and wait in the source until it is resumed; its sessions
	// then go on from their checkpoints. Independent of Enabled: a source
	// is applied only when it is enabled and not paused (SessionRow.Applies).
	Paused bool
	// DSN is the application's database (pg-outbox only). It may hold a
	// password: never log it or show it unredacted.
	DSN string
	// Table is the outbox table (pg-outbox only), possibly schema-qualified.
	Table     string
	CreatedAt time.Time
	// Outbox (pg-outbox only) is the outbox the checkpoints are positions
	// in: recorded when the source is added, or when a node first reaches
	// the table (RecordOutbox); zero until then. A reader that finds
	// another outbox there stops (ErrOutboxChanged).
	Outbox OutboxIdentity
	// Floor (pg-outbox only) is what the last repartition left; nil when
	// none is needed any more.
	Floor *Floor
	// OutboxStopped (pg-outbox only) is why a reader stopped the source
	// (StopOutbox); empty while it reads. Cleared by ResetCheckpoints.
	OutboxStopped string
}

// NodeState is what a node says of itself in its membership row.
type NodeState string

const (
	NodeRunning  NodeState = "running"
	NodeStopping NodeState = "stopping" // draining on SIGTERM: gets no new work
)

// NodeRow is a membership row.
type NodeRow struct {
	ID        string
	Name      string
	Host      string
	PID       int
	StartedAt time.Time
	// HeartbeatAt is the store time of the last heartbeat; HeartbeatAge is
	// the store's now() minus it, computed by the store.
	HeartbeatAt  time.Time
	HeartbeatAge time.Duration
	State        NodeState
	// LockKey identifies what the node holds for as long as its store
	// connection lives (a PostgreSQL advisory lock key, a lock file number),
	// so peers can tell that it died before its heartbeat goes stale.
	LockKey int64
	// Draining is set by an operator (bam node drain: SetNodeDraining),
	// never by the node: it hands every session over, claims none, and
	// stays up. Join and Renew leave it as it is.
	Draining bool
}

// Departure is how a node left the pool.
type Departure struct {
	// FoundDeadBy is the node that found it dead and forgot it; empty when
	// it left by itself.
	FoundDeadBy string
	// Why says, for people, what the verdict rested on (a peer's), or
	// DepartedCleanly.
	Why string
}

// DepartedCleanly is the Why of a node that left the pool by itself
// (Leave).
const DepartedCleanly = "left the pool cleanly, releasing its leases"

// DepartedNode is a node that left the pool: its last membership row (its
// state is not kept), and when and how it went.
type DepartedNode struct {
	NodeRow // HeartbeatAge is the store's now() minus its last heartbeat
	Departure
	DepartedAt time.Time
	// DepartedAge is the store's now() minus DepartedAt.
	DepartedAge time.Duration
}

// DepartedMemory is how long a node that left the pool, or was found dead,
// is listed by DepartedNodes (and shown by bam status as gone): long
// enough to look after an alert, short enough that a pool restarted every
// few minutes does not list a crowd.
const DepartedMemory = 10 * time.Minute

// SessionID names a session: one partition of one source.
type SessionID struct {
	Source    string
	Partition int
}

// SessionRow is a session's row, with the source's kind and state joined in.
type SessionRow struct {
	SessionID
	Kind          SourceKind
	SourceEnabled bool
	SourcePaused  bool
	Owner         string // node id; empty when free
	Epoch         int64
	// LeaseRemaining is the lease expiry minus the store's now(); zero or
	// negative when expired, meaningless when Owner is empty.
	LeaseRemaining time.Duration
	Checkpoint     Position
	Applied        int64 // events applied, all owners together
	Failed         int64 // events quarantined, ever: a running total (FailedOutstanding counts those still failed)
	LastError      string
	LastErrorAt    *time.Time
	// GivenUpBy is the node that handed the session over, less than
	// GiveUpMemory ago by the store's clock, because it could not reach the
	// session's source (GiveUp): balancing deals the session to it last.
	// Empty otherwise.
	GivenUpBy string
	// PoolPaused: the whole pool is paused (bam pause: SetPoolPaused).
	PoolPaused bool
	// MoveTo is the node an operator moved the session to (bam session
	// move: MoveSession); empty when none. Balancing hands the session to
	// that node, and leaves it there, while the node works.
	MoveTo string
}

// Applies reports whether nodes apply the session's events: its source is
// enabled and not paused, and the pool is not paused. Claims of other
// sessions are refused.
func (s SessionRow) Applies() bool { return s.SourceEnabled && !s.SourcePaused && !s.PoolPaused }

// GiveUpMemory is how long SessionRow.GivenUpBy names the node that gave a
// session up: long enough for the session to find a node that reaches its
// source, short enough that a node whose trouble is over is dealt it again.
const GiveUpMemory = 10 * time.Minute

// OperatorControls are what an operator changes in the pool as a whole
// (docs/OPERATIONS.md): each takes effect at the nodes' next balance round,
// which it starts at once (a "sessions" notice), and none needs a node to
// restart.
type OperatorControls interface {
	// PoolState reads the pool-wide pause.
	PoolState(ctx context.Context) (PoolState, error)
	// SetPoolPaused pauses or resumes every session of the pool at once:
	// while paused, no session applies (SessionRow.PoolPaused) and Claim
	// refuses every session; the sources keep accepting writes. A pause
	// records who and when; pausing a paused pool changes nothing.
	SetPoolPaused(ctx context.Context, paused bool, who string) error
	// SetNodeDraining marks a member as draining, or not (ErrNotFound when
	// it is not a member): its peers see it as stopping, and it hands its
	// sessions over and claims none, while it stays up.
	SetNodeDraining(ctx context.Context, nodeID string, draining bool) error
	// MoveSession records the node a session is moved to (to "" forgets
	// it; ErrNotFound when there is no such session). A claim by another
	// node forgets it too: the move ended when its node stopped working.
	// It returns ErrLocked when a batch in progress holds the session's
	// row for long: the caller tries again.
	MoveSession(ctx context.Context, id SessionID, to string) error
	// RecordAudit appends an entry to the audit log (At is the store's
	// now()); AuditLog lists the latest limit entries, the latest first.
	RecordAudit(ctx context.Context, e AuditEntry) error
	AuditLog(ctx context.Context, limit int) ([]AuditEntry, error)
}

// PoolState is the pool-wide pause.
type PoolState struct {
	Paused   bool
	PausedAt *time.Time // nil while not paused
	PausedBy string
}

// AuditEntry is one thing an operator did to the pool.
type AuditEntry struct {
	ID     int64
	At     time.Time
	Who    string // the OS user and host of the command (user@host), or the HTTP client
	Action string // e.g. "pause", "node drain", "session move"
	Target string // what it was done to: a node, source, session; empty for the pool
	Detail string
}

// Lease is a session this node owns under an epoch.
type Lease struct {
	SessionID
	Epoch      int64
	Checkpoint Position // the checkpoint when claimed
	// Busy is set by Renew only: the node still holds the lease, but its
	// row was locked by a transaction in progress (the node's own batch),
	// so it was not extended this time; the next renewal tries again.
	Busy bool
	// EndedBackends is set by Claim only: how many backends of the expired
	// previous owner, stalled while holding the session's row, the claim
	// ended so that it could proceed (PostgreSQL).
	EndedBackends int
}

// Record is one event as read from a source, not yet decoded.
type Record struct {
	Position  Position
	Payload   []byte
	WrittenAt time.Time // default event time
	// Segment is the instance id (or continuation token) the source filed
	// the record under, when it keeps one apart from the payload (a
	// pg-outbox row's instance_id): it chose the partition, so an event
	// of another segment would be applied out of its instance's order,
	// and is quarantined instead. Empty: not known.
	Segment string
}

// Failure is an event that cannot be applied, to be quarantined.
type Failure struct {
	SessionID
	Position Position
	Reason   string
	Payload  []byte
	// WrittenAt is when the event was written to its source (Record's
	// WrittenAt): the time an event without one of its own is given when
	// it is retried, as it would have been had it been applied. Zero: not
	// known (the failure time stands in).
	WrittenAt time.Time
}

// FailedEvent is a quarantined event.
type FailedEvent struct {
	ID int64
	Failure
	FailedAt time.Time
}

// EventTime is the time a retried event without one of its own is given:
// when it was first written, or, for a failure recorded before bam kept
// that, when it failed.
func (f FailedEvent) EventTime() time.Time {
	if !f.WrittenAt.IsZero() {
		return f.WrittenAt
	}
	return f.FailedAt
}

// Batch is what a session commits in one store transaction.
type Batch struct {
	Lease
	Node string
	// From is the checkpoint the batch starts after, as the session last
	// committed it. Apply fences on it too: if a commit whose answer was
	// lost did land, the retry finds the checkpoint moved and is refused
	// (ErrFenced) instead of applying the same events twice.
	From       Position
	Checkpoint Position      // the position of the last record the batch covers
	Deltas     []event.Delta // at most one per instance (event.Coalesce)
	Applied    int           // events in Deltas
	Failures   []Failure
}

// InstanceState is where an instance is in its life.
type InstanceState string

const (
	StatePending   InstanceState = "pending" // updates or end seen, begin not yet
	StateActive    InstanceState = "active"
	StateCompleted InstanceState = "completed"
)

// Instance is one activity instance's merged state.
type Instance struct {
	Activity     string
	ID           string
	State        InstanceState
	Begin        *time.Time
	End          *time.Time
	LastModified time.Time
	// Events counts the events applied to the instance: each event once,
	// whatever failed over meanwhile.
	Events int64
	Data   map[string]json.RawMessage
	// ArchivedAt is when the instance left the online window for the
	// archive (bam activity window --archive); nil for an online instance.
	// Store.Instance reads the archive when the instance is not online;
	// Store.Instances lists online instances only.
	ArchivedAt *time.Time

	// The vocabulary beyond begin, update and end (package event). Store.Instance
	// fills these; Store.Instances, the list, leaves them empty to stay one
	// cheap query.
	//
	// Continuations are the tokens linked to the instance, directly or
	// through a continuation of its own, by token. The instance is
	// completed only once it has begin and end and none of them is open.
	Continuations []Continuation
	// Related lists the instances related to this one, in both directions
	// (a relate event on either side), by activity and instance id.
	Related []event.Key
	// References lists the instance's references by type, name and value.
	References []Reference
}

// Continuation is a continuation token as the store keeps it.
type Continuation struct {
	Activity string
	Token    string
	// Instance is the instance the token continues (the root, for a
	// continuation enabled by a continuation); empty while the link is
	// not known: the token's events are then kept aside, not counted in
	// any instance.
	Instance string
	// ParentInstance or ParentToken names the segment that enabled the token: an instance
	// (ParentInstance) or another continuation (ParentToken). Both are
	// empty while the enable has not been applied.
	ParentInstance string
	ParentToken    string
	EnabledAt      *time.Time // the enable's event time; nil while not enabled
	EndedAt        *time.Time // the latest end under the token; nil while open
	LastModified   *time.Time // the latest event time under the token
	// Events counts the events applied under the token; Pending those of
	// them kept aside, not yet folded into an instance.
	Events  int64
	Pending int64
}

// Open reports whether the continuation keeps its instance from being
// completed: enabled, and not ended.
func (c Continuation) Open() bool { return c.EnabledAt != nil && c.EndedAt == nil }

// Reference is a reference of an instance (event.Reference) with the time
// of the event whose data it keeps.
type Reference struct {
	event.Reference
	Time time.Time
}

// DirectSource is the source a driver files failed events under when they
// came through its WriteEvents, outside any session (a conflicting
// enable-continuation).
const DirectSource = "(direct)"

// InstanceFilter selects instances of one activity, ordered by instance id.
type InstanceFilter struct {
	Activity string
	State    InstanceState // empty: every state
	After    string        // instance ids after this one (paging)
	Limit    int           // 0: no limit
}

// Store is the activity store, as one driver sees it. Methods are safe for
// concurrent use. Lease methods take ttl from the caller and compute expiry
// with the store's clock.
type Store interface {
	AggregationReader

	// Driver is "postgres" or "sqlite".
	Driver() string
	Close() error

	// Migrate brings the schema to the newest version this binary knows,
	// returning the versions before and after. CheckSchema returns nil only
	// when the schema is exactly that version (else ErrSchemaMissing,
	// ErrSchemaOld or ErrSchemaNewer, wrapped with the versions).
	Migrate(ctx context.Context) (from, to int, err error)
	CheckSchema(ctx context.Context) error

	// Sources. AddSource creates the source's sessions too; ErrExists if the
	// name is taken, ErrOutboxTaken if src.Outbox is read by another
	// source. When a removed source left a tombstone on src.Outbox, the
	// sessions start from its checkpoints (ErrTombstone when the partition
	// counts differ).
	AddSource(ctx context.Context, src Source) error
	Sources(ctx context.Context) ([]Source, error)
	Source(ctx context.Context, name string) (Source, error)
	// SetSourceEnabled and SetSourcePaused set a source's Enabled and
	// Paused (ErrNotFound when there is no such source) and tell the nodes
	// to balance: a source that stops applying has its sessions released
	// after their batch, one that applies again is claimed.
	SetSourceEnabled(ctx context.Context, name string, enabled bool) error
	SetSourcePaused(ctx context.Context, name string, paused bool) error
	// RemoveSource deletes the source, its sessions and its buffered
	// events, in one transaction. It is refused while a session is owned
	// by a live lease unless the source is disabled first, and, for a
	// buffer source whose buffer holds events after the checkpoints,
	// unless opt.DropUnapplied (ErrUnapplied, wrapped with the count). A
	// pg-outbox source with a recorded outbox leaves its checkpoints as a
	// tombstone (see AddSource); one whose reader stopped (OutboxStopped)
	// is refused with ErrOutboxChanged until ResetCheckpoints.
	RemoveSource(ctx context.Context, name string, opt RemoveOptions) (Removal, error)
	// RecordOutbox records the outbox a pg-outbox source reads, once:
	// nil when it is recorded already, ErrOutboxChanged when another is,
	// ErrOutboxTaken when another source reads it. A tombstone on it is
	// taken over as AddSource does, while the sessions are all at the
	// start.
	RecordOutbox(ctx context.Context, name string, o OutboxIdentity) error
	// ResetCheckpoints sets the checkpoint of every session of a source
	// (and its recorded outbox, when r.Outbox is set; and clears
	// OutboxStopped and the floor), raising each
	// session's epoch and freeing it in the same transaction: a batch in
	// flight under the old epoch is fenced, so nothing is applied on top
	// of the new checkpoints by an owner that read before them. With
	// r.Expect it writes only if the checkpoints are still those (else
	// ErrFenced). It returns the checkpoints it replaced.
	ResetCheckpoints(ctx context.Context, name string, r CheckpointReset) ([]Position, error)
	// StopOutbox records why a pg-outbox source's reader stopped (the
	// server's transaction ids are behind the checkpoint of session at),
	// unless a reason is recorded already: readers opened later, on any
	// node, stay stopped even once the ids have passed the checkpoint
	// again, until ResetCheckpoints. It records nothing when the session's
	// checkpoint is no longer checkpoint, the one found ahead of the
	// server: a reset came in between, and the stop is stale.
	StopOutbox(ctx context.Context, at SessionID, checkpoint Position, reason string) error
	// StoreID is the store's identity, a random id made by its migration:
	// what a pg-outbox reader writes into the outbox database to claim the
	// table for this store (pgoutbox.Reader.Claim).
	StoreID(ctx context.Context) (string, error)
	// Repartition changes a source's partition count in one transaction,
	// raising the epochs as ResetCheckpoints does, so that every event is
	// still applied once: a buffer source's applied events are deleted and
	// the others filed under their new partition; a pg-outbox source keeps
	// the old partitions' checkpoints as its Floor and its sessions start
	// from the earliest of them. A pg-outbox source whose previous floor
	// still skips rows (a session is not past it yet) is refused.
	Repartition(ctx context.Context, name string, partitions int) (Repartitioned, error)

	// Membership. Join inserts or replaces the node's row with a fresh
	// heartbeat. Leave releases every lease of the node and deletes its row.
	// ForgetNode deletes a dead node's row (its leases are left to expire or
	// be expired). Nodes lists every row. Leave and ForgetNode record the
	// row as departed, with why (Leave: DepartedCleanly), in the same
	// transaction, unless it is gone already (a peer forgot it first), and
	// prune the records older than DepartedMemory. DepartedNodes lists the
	// records younger than DepartedMemory by the store's clock, of nodes
	// that are not members again, the latest first: what bam status shows
	// as gone. Nothing in the pool decides on them.
	Join(ctx context.Context, n NodeRow) error
	Leave(ctx context.Context, nodeID string) error
	ForgetNode(ctx context.Context, nodeID string, why Departure) error
	Nodes(ctx context.Context) ([]NodeRow, error)
	DepartedNodes(ctx context.Context) ([]DepartedNode, error)

	// Sessions lists every session of every source.
	Sessions(ctx context.Context) ([]SessionRow, error)

	OperatorControls
	// Claim takes a session for node, raising its epoch by one, if its owner
	// is still prevOwner (empty: free) and, when prevOwner is another node,
	// that node's lease has expired, and its source applies (enabled and
	// not paused: SessionRow.Applies). Else ErrNotClaimable, or ErrLocked
	// when the session's row stays locked by a transaction in progress:
	// a claim never waits long for a lock.
	Claim(ctx context.Context, id SessionID, node, prevOwner string, ttl time.Duration) (Lease, error)
	// Renew heartbeats the node (re-inserting its row if it was forgotten,
	// with state) and extends every unexpired lease it owns in one
	// statement, returning the leases it still holds. A lease whose row is
	// locked by a transaction in progress is returned Busy, not extended:
	// a renewal never waits long behind a batch.
	Renew(ctx context.Context, n NodeRow, ttl time.Duration) ([]Lease, error)
	// Release frees a session the node owns under epoch; a no-op if it does not.
	Release(ctx context.Context, l Lease, node string) error
	// GiveUp is Release for a session the node hands over because it
	// cannot reach the session's source: it also records the node as
	// SessionRow.GivenUpBy and reason as the session's last error, so that a
	// peer tries the source. A no-op if the node does not own the session
	// under l's epoch.
	GiveUp(ctx context.Context, l Lease, node, reason string) error
	// ExpireLeases ends every lease of a node found dead, at once.
	ExpireLeases(ctx context.Context, nodeID string) (int, error)
	// RecordError stores a session's last error (empty msg clears it),
	// fenced like Apply: only while node owns the session under l's epoch,
	// else ErrFenced and nothing is written, so a node that lost the
	// session cannot overwrite what its new owner shows.
	RecordError(ctx context.Context, l Lease, node, msg string) error

	// Apply commits a batch in one transaction: the checkpoint moves (fenced
	// on owner, epoch and From, else ErrFenced and nothing is written), the deltas
	// merge into instances, the failures are quarantined, the counts grow.
	// When the database refuses a value of the batch as data, nothing is
	// written and the error wraps a *DataRefusedError (ErrDataRefused).
	Apply(ctx context.Context, b Batch) error

	// The ingest buffer (sources of kind buffer). AppendBuffer writes events
	// durably in one transaction and wakes the nodes. ReadBuffer returns up
	// to limit records after a position, and whether more records exist that
	// cannot be read yet (a writer before them has not committed).
	AppendBuffer(ctx context.Context, source string, events []BufferEvent) error
	ReadBuffer(ctx context.Context, id SessionID, after Position, limit int) (recs []Record, held bool, err error)
	TrimBuffer(ctx context.Context, id SessionID, upTo Position) error
	BufferBacklog(ctx context.Context, id SessionID, after Position) (int64, error)
	// BufferPending is BufferBacklog for a count that must stay cheap
	// however far behind the session is: it counts at most bound events
	// (Backlog.AtLeast when more wait) and gives the age of the first one,
	// by the store's clock.
	BufferPending(ctx context.Context, id SessionID, after Position, bound int64) (Backlog, error)
	// AppendBufferIdempotent is AppendBuffer for a request a client may
	// retry (the HTTP ingest API). In one transaction it either appends the
	// events (possibly none) and records key with response, or, when key is
	// already recorded and younger than key.Retention by the store's clock,
	// appends nothing and returns the recorded response: the same source and
	// body hash replay it (replay != nil), another source or body is
	// ErrIdempotencyConflict (wrapped, with the recorded response as
	// replay, so that the caller can say when the key was first used).
	// Concurrent calls with one key append once: the others wait for the
	// first to commit and replay it. Records past their retention are
	// purged a few at a time by later calls.
	AppendBufferIdempotent(ctx context.Context, source string, key IdempotencyKey, events []BufferEvent, response StoredResponse) (replay *StoredResponse, err error)
	// RecordedResponse returns what AppendBufferIdempotent recorded for
	// key.Key, as a replay has it (with its source, body hash and time),
	// while it is younger than key.Retention by the store's clock; nil when
	// nothing is. It only reads, so that a retry is answered from its
	// record before anything that may have changed since the first request
	// (the source disabled) is checked; a key it finds nothing for still
	// goes through AppendBufferIdempotent, which settles a first request
	// that commits meanwhile.
	RecordedResponse(ctx context.Context, key IdempotencyKey) (*StoredResponse, error)

	// Instances. Instance reads an online instance, or else an archived
	// one (ArchivedAt set); ErrNotFound when neither holds it.
	Instance(ctx context.Context, k event.Key) (Instance, error)
	Instances(ctx context.Context, f InstanceFilter) ([]Instance, error)
	// Continuation returns a continuation token, linked or not: the way to
	// see a continuation whose events are kept aside because its
	// enable-continuation has not arrived (an orphan). ErrNotFound if the
	// store never saw the token.
	Continuation(ctx context.Context, activity, token string) (Continuation, error)

	// Failed events. RetryFailed decodes the payload (replaced by payload
	// when not nil) with maxEventSize (0: event.DefaultMaxSize) and, when
	// it has no time of its own, the time it was first written
	// (Failure.WrittenAt, else the failure time), applies it to its
	// instance and deletes the failed event, in one transaction; when it
	// is still invalid it keeps it and returns the *event.Error: with the
	// new reason when retried as is, unchanged (original bytes and
	// reason) when the replacement was refused.
	FailedEvents(ctx context.Context, source string, limit int) ([]FailedEvent, error)
	FailedEvent(ctx context.Context, id int64) (FailedEvent, error)
	// FailedEventsWhere lists the failed events q selects, oldest first,
	// at most q.Limit. CountFailed counts them (q.AfterID and q.Limit
	// aside) up to bound, reading at most bound+1 rows: atLeast is set
	// when there are more.
	FailedEventsWhere(ctx context.Context, q FailedQuery) ([]FailedEvent, error)
	CountFailed(ctx context.Context, q FailedQuery, bound int64) (n int64, atLeast bool, err error)
	// FailedOutstanding counts, per session, the failed events still
	// kept (neither retried nor discarded); sessions without any are
	// absent.
	FailedOutstanding(ctx context.Context) (map[SessionID]int64, error)
	RetryFailed(ctx context.Context, id int64, payload []byte, maxEventSize int) error
	DiscardFailed(ctx context.Context, id int64) error

	// Activity definitions (definitions.go has the rules). Deploy plans
	// req.File over what is deployed and, in one transaction under a lock
	// that serializes deployments, writes the definitions, records the
	// deployment under the next version and recreates the changed
	// activities' views and indexes. Destructive changes to items that
	// instances hold are refused with a *DeployRefusedError unless
	// req.Force; a file that changes nothing records nothing and returns
	// the current version. A *definition.Error names an activity deployed
	// under another case.
	Deploy(ctx context.Context, req DeployRequest) (Deployment, error)
	// Definitions returns the deployed activities, by name, and the
	// version they are at. DefinitionsVersion is that version alone, a
	// cheap read that nodes poll to know when to read the definitions
	// again (0: nothing ever deployed).
	Definitions(ctx context.Context) ([]DeployedActivity, int64, error)
	DefinitionsVersion(ctx context.Context) (int64, error)
	// Deployments lists the recorded deployments, newest first, at most
	// limit (0: all).
	Deployments(ctx context.Context, limit int) ([]Deployment, error)
	// RemoveActivity removes a deployed activity (name in any case), its
	// views and indexes, as a recorded deployment. While instances of it
	// remain (archived ones included) it is refused with ErrInstancesExist,
	// unless dropData, which deletes them in the same transaction.
	// ErrNotFound if it is not deployed.
	RemoveActivity(ctx context.Context, name, by string, dropData bool) (Deployment, error)
	// SetWindow sets how long an activity's completed instances stay
	// online, as a recorded deployment; turning archiving on creates the
	// <name>_archive view. ErrNotFound if the activity is not deployed.
	SetWindow(ctx context.Context, activity string, w Window, by string) (Deployment, error)
	// PurgeCompleted deletes, or moves to bam_instances_archive, the
	// completed instances of an activity whose end time is older than its
	// window by the store's clock, in batches of their own transactions,
	// and returns how many it purged. Without a window it purges nothing.
	// Safe to run on several nodes at once: each instance is purged once.
	PurgeCompleted(ctx context.Context, activity string) (int64, error)
	// CountInstances counts an activity's instances by state (it reads
	// an index entry per instance: seconds at tens of millions).
	CountInstances(ctx context.Context, activity string) (map[InstanceState]int64, error)
	// InstanceActivities lists, by name, the activities that have
	// instances, online or archived, deployed or not (one index probe per
	// activity: InstanceActivitiesSQL).
	InstanceActivities(ctx context.Context) ([]string, error)
}

// InstanceActivitiesSQL lists the activities that have instances, online or
// archived, in both drivers' SQL: a loose scan of the indexes that lead
// with the activity, one probe per distinct name instead of a read of every
// instance.
const InstanceActivitiesSQL = `
	WITH RECURSIVE online (name) AS (
		SELECT min(activity) FROM bam_instances
		UNION ALL
		SELECT (SELECT min(i.activity) FROM bam_instances AS i WHERE i.activity > o.name)
		FROM online AS o WHERE o.name IS NOT NULL
	), archived (name) AS (
		SELECT min(activity) FROM bam_instances_archive
		UNION ALL
		SELECT (SELECT min(i.activity) FROM bam_instances_archive AS i WHERE i.activity > a.name)
		FROM archived AS a WHERE a.name IS NOT NULL
	)
	SELECT name FROM online WHERE name IS NOT NULL
	UNION
	SELECT name FROM archived WHERE name IS NOT NULL
	ORDER BY 1`

// BufferEvent is one event to append to a buffer source.
type BufferEvent struct {
	Partition int
	Payload   []byte
}

// IdempotencyKey identifies a request that a client may send again, for
// AppendBufferIdempotent.
type IdempotencyKey struct {
	// Key is the client's key (the HTTP Idempotency-Key header): 1 to
	// MaxIdempotencyKeyLen bytes. Keys are global to the store, not per
	// source.
	Key string
	// BodyHash identifies the request's content (a SHA-256 of the HTTP
	// body): a retry must carry the same.
	BodyHash []byte
	// Retention is how long the record answers retries, from its creation
	// by the store's clock; after that the key is free again. Zero means
	// DefaultIdempotencyRetention.
	Retention time.Duration
}

// Limits and defaults of idempotency records.
const (
	MaxIdempotencyKeyLen        = 255
	DefaultIdempotencyRetention = 24 * time.Hour
	// IdempotencyPurgeBatch bounds how many expired records of other keys
	// one AppendBufferIdempotent deletes: enough to keep up with the calls
	// that create them, few enough never to slow one down.
	IdempotencyPurgeBatch = 100
)

// StoredResponse is the response recorded with an idempotency key, replayed
// to a retry.
type StoredResponse struct {
	Status int    // an HTTP status code
	Body   []byte // the response body, as sent
	// Source and BodyHash are the request's; CreatedAt is the store's time
	// of the first request. All three are set by the store on a replay and
	// ignored when recording.
	Source    string
	BodyHash  []byte
	CreatedAt time.Time
}

// Answers returns nil when r, recorded for an idempotency key, answers a
// retry of the request (source, key): the same source and the same body
// hash. Else it returns ErrIdempotencyConflict, wrapped with what differs
// and when the key was first used.
func (r *StoredResponse) Answers(source string, key IdempotencyKey) error {
	first := r.CreatedAt.UTC().Format(time.RFC3339)
	switch {
	case r.Source != source:
		return fmt.Errorf("%w: key %q was first used at %s for source %s", ErrIdempotencyConflict, key.Key, first, r.Source)
	case !bytes.Equal(r.BodyHash, key.BodyHash):
		return fmt.Errorf("%w: key %q was first used at %s with another body", ErrIdempotencyConflict, key.Key, first)
	}
	return nil
}

// Notice says that something a node may act on changed in the store.
type Notice struct {
	Topic Topic
	// Source is the buffer source a TopicBuffer notice is about; empty
	// means any buffer source.
	Source string
}

// Topic is what a Notice is about.
type Topic string

const (
	// TopicBuffer: events were appended to a buffer source (read now).
	TopicBuffer Topic = "buffer"
	// TopicSessions: a lease was released, a node joined or left, or a
	// source was added, enabled, disabled, paused or resumed (balance now).
	TopicSessions Topic = "sessions"
	// TopicSettings: a pool-wide setting was set or unset (read the
	// settings now: PoolSettings).
	TopicSettings Topic = "settings"
)

// Watcher is an optional extra of a driver. Watch calls fn for each notice
// until ctx ends or the watch fails (it returns the error; callers retry
// with backoff). fn runs on the goroutine that called Watch, one notice at
// a time. A driver that can miss changes while it starts listening
// sends a TopicSessions and a TopicBuffer notice once it listens. Notices are hints: a missed one costs latency, never an
// event, because nodes also read and balance on timers.
// PostgreSQL: LISTEN on a dedicated connection. SQLite: an in-process
// signal for changes made by this process, and for changes made by others
// a cheap 50 ms poll of the buffer's sequence and of a counter that lease
// and source changes bump.
type Watcher interface {
	Watch(ctx context.Context, fn func(Notice)) error
}

// BatchReleaser is an optional extra of a driver: Release of many leases in
// one statement, with one notice to the nodes. A node handing over many
// sessions at once (balancing may hand a newcomer's share to each of 49
// newcomers in one round) releases them together, so the releases neither
// queue ahead of its renewal for the lease connections nor wake every node
// once per session.
type BatchReleaser interface {
	// ReleaseBatch frees each session of leases that node owns under the
	// lease's epoch, as Release does one by one; the others are left alone.
	ReleaseBatch(ctx context.Context, leases []Lease, node string) error
}

// BatchClaimer is an optional extra of a driver: Claim of many sessions in
// one statement. A node that joins a pool claims its share (20 sessions of
// 1,000 over 50 nodes) at once instead of one round trip each.
type BatchClaimer interface {
	// ClaimBatch claims each session of claims as Claim would, and returns
	// the leases of those it claimed. A session that Claim would refuse
	// with ErrNotClaimable, or whose row another transaction holds locked
	// at that moment (a batch being committed), is left out, never waited
	// on.
	ClaimBatch(ctx context.Context, claims []ClaimRequest, node string, ttl time.Duration) ([]Lease, error)
}

// ClaimRequest is one session to claim, with the owner it must still have
// ("" for none), as Claim's id and prevOwner.
type ClaimRequest struct {
	ID        SessionID
	PrevOwner string
}

// Liveness is an optional extra of a driver: something the store or the OS
// releases the moment a node's process dies (a PostgreSQL session-level
// advisory lock held on a dedicated connection; an OS file lock beside the
// SQLite file), so peers detect a crash before the heartbeat goes stale.
type Liveness interface {
	// HoldLiveness takes the liveness lock for key and holds it until ctx
	// ends (then releases it). It returns once the lock is held. If the
	// lock is lost (the connection broke), lost is closed.
	HoldLiveness(ctx context.Context, key int64) (lost <-chan struct{}, err error)
	// LivenessHeld reports, for each key, whether some process holds it.
	LivenessHeld(ctx context.Context, keys []int64) (map[int64]bool, error)
}

// WriteProber is an optional extra of a driver: a short write transaction
// that proves the store takes writes now (a node's readiness, package
// health). It is bounded by ctx, and holds the store's write lock (SQLite)
// or a row lock (PostgreSQL) no longer than it runs.
type WriteProber interface {
	// ProbeWrite begins a write transaction the way batches do, rewrites
	// node's membership row as it is (no row when node has not joined:
	// the transaction still takes what a write takes) and commits. It
	// fails when the store refuses or holds up writes: SQLite's write lock
	// held by another process, a PostgreSQL server or table that refuses
	// or blocks them, a full disk. An error that wraps
	// context.DeadlineExceeded says it could not commit by ctx's deadline.
	ProbeWrite(ctx context.Context, node string) error
}

// PartitionsChangedError is an append refused because an event's
// partition is not one of its source's: the writer computed it from a
// partition count that a repartition changed since (bam source
// repartition). Nothing of the append was written; the writer reads the
// source again, files each event under event.Partition with the new
// count, and appends again.
type PartitionsChangedError struct {
	Source     string
	Partitions int // the source's partitions now
	Partition  int // the event's, out of range
}

func (e *PartitionsChangedError) Error() string {
	return fmt.Sprintf("source %s has %d partitions now, not partition %d: it was repartitioned since its partitions were read; read the source again and append again",
		e.Source, e.Partitions, e.Partition)
}

// AppendRefiled runs appendEvents, an append of events, and, while it is
// refused with a PartitionsChangedError (the source was repartitioned
// since its partitions were read; nothing was written), files the events
// under the new count (RefileBuffer) and runs it again, three times at
// most. It returns the count the events were filed under last, 0 when
// they never were: a writer that keeps a count takes it from then on.
func AppendRefiled(events []BufferEvent, appendEvents func() error) (partitions int, err error) {
	for attempt := 1; ; attempt++ {
		err := appendEvents()
		var changed *PartitionsChangedError
		if !errors.As(err, &changed) || attempt == 3 {
			return partitions, err
		}
		if err := RefileBuffer(events, changed.Partitions); err != nil {
			return partitions, err
		}
		partitions = changed.Partitions
	}
}

// RefileBuffer files each event under its partition of a source of
// partitions, read from its payload: what a writer does with the events
// of an append refused with a PartitionsChangedError.
func RefileBuffer(events []BufferEvent, partitions int) error {
	for i := range events {
		ev, err := event.Decode(events[i].Payload, time.Now(), len(events[i].Payload)+1)
		if err != nil {
			return fmt.Errorf("file event %d under the new partitions: %w", i, err)
		}
		events[i].Partition = event.Partition(ev.Segment(), partitions)
	}
	return nil
}

// CountEvents says n events in words: "1 event", "3 events".
func CountEvents(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}
