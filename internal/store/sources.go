package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/bam-dev/bam/internal/event"
)

// Errors of the source life cycle (sources.go of each driver).
var (
	// ErrUnapplied: the source still holds events no checkpoint covers.
	// Wrapped with how many.
	ErrUnapplied = errors.New("source still holds unapplied events")
	// ErrOutboxTaken: another source of this store reads that outbox table.
	ErrOutboxTaken = errors.New("another source of this store reads that outbox table")
	// ErrOutboxChanged: the outbox a pg-outbox source reaches is not the one
	// its checkpoints were taken on (another server, a restored one,
	// another database or table).
	ErrOutboxChanged = errors.New("the source's outbox is not the one its checkpoints were taken on")
	// ErrTombstone: a removed source left checkpoints on that outbox table
	// that the new source cannot take over.
	ErrTombstone = errors.New("a removed source left checkpoints on that outbox table")
)

// OutboxIdentity names the outbox table a pg-outbox source reads, in a way
// that survives another DSN for the same server (an IP instead of a host
// name) and changes when the server is not the one the checkpoints were
// taken on.
type OutboxIdentity struct {
	// SystemID is the server's system identifier (pg_control_system()),
	// made by initdb: a dump restored elsewhere has another. Empty when
	// the server does not let bam read it; Server then stands in.
	SystemID string
	// Server is "host:port" from the DSN: part of the key only when
	// SystemID is empty.
	Server string
	// DatabaseOID and Database are the database's oid and name.
	DatabaseOID int64
	Database    string
	// Table is the table's schema-qualified name, as the server resolves
	// the configured one.
	Table string
}

// WithRecordedKey returns o, as a driver reads it back from a source's
// columns, with Server taken from key, the Key o was recorded under: the
// drivers keep the server only there. It is the address the reader reached
// when it recorded the identity, not what the source's DSN would resolve
// to in this process (whose PGHOST, PGPORT or default socket may differ),
// and knowing it needs no PostgreSQL client: a SQLite store links none.
func (o OutboxIdentity) WithRecordedKey(key string) OutboxIdentity {
	if o.SystemID != "" || o.Table == "" {
		return o
	}
	server, ok := strings.CutPrefix(key, "addr:")
	suffix := "/" + strconv.FormatInt(o.DatabaseOID, 10) + "/" + o.Table
	if ok && strings.HasSuffix(server, suffix) {
		o.Server = strings.TrimSuffix(server, suffix)
	}
	return o
}

// IsZero reports whether no identity is recorded.
func (o OutboxIdentity) IsZero() bool { return o.Key() == "" }

// Key is the identity as one text: two sources whose keys are equal read
// one table.
func (o OutboxIdentity) Key() string {
	if o.Table == "" {
		return ""
	}
	server := "sys:" + o.SystemID
	if o.SystemID == "" {
		server = "addr:" + o.Server
	}
	return server + "/" + strconv.FormatInt(o.DatabaseOID, 10) + "/" + o.Table
}

// String describes the identity for people.
func (o OutboxIdentity) String() string {
	if o.IsZero() {
		return "(not recorded)"
	}
	sys := "system identifier " + o.SystemID
	if o.SystemID == "" {
		sys = "server " + o.Server + " (system identifier not readable)"
	}
	return fmt.Sprintf("table %s in database %s (oid %d), %s", o.Table, o.Database, o.DatabaseOID, sys)
}

// Diff says what differs between a recorded identity and the one found,
// for an error message; empty when they are the same outbox.
func (o OutboxIdentity) Diff(found OutboxIdentity) string {
	switch {
	case o.SystemID != found.SystemID && o.SystemID != "" && found.SystemID != "":
		return fmt.Sprintf("the server's system identifier was %s and is now %s (another server: a dump restored elsewhere, a new cluster)", o.SystemID, found.SystemID)
	case o.DatabaseOID != found.DatabaseOID:
		return fmt.Sprintf("database %s had oid %d and %s has oid %d now (the database was dropped and created again, or restored)", o.Database, o.DatabaseOID, found.Database, found.DatabaseOID)
	case o.Table != found.Table:
		return fmt.Sprintf("the table was %s and is now %s", o.Table, found.Table)
	case o.Key() != found.Key():
		return fmt.Sprintf("the outbox was %s and is now %s", o, found)
	}
	return ""
}

// HorizonPosition is the position just before every transaction id from
// horizon on: a checkpoint there skips every row whose transaction is
// below the horizon and reads the others.
func HorizonPosition(horizon int64) Position {
	return Position{Major: horizon - 1, Minor: math.MaxInt64}
}

// Floor is what a repartition of a pg-outbox source leaves: the partition
// count and the checkpoints before it. A row at or before the checkpoint
// of its old partition was applied then, and is skipped.
type Floor struct {
	Partitions  int
	Checkpoints []Position
}

// Max is the latest of the checkpoints: once every session is past it, the
// floor skips nothing more.
func (f Floor) Max() Position {
	var m Position
	for _, p := range f.Checkpoints {
		if m.Less(p) {
			m = p
		}
	}
	return m
}

// EncodePositions and DecodePositions are the JSON form of a list of
// checkpoints that drivers keep in a text column.
func EncodePositions(ps []Position) string {
	b, _ := json.Marshal(ps)
	return string(b)
}

func DecodePositions(s string) ([]Position, error) {
	if s == "" {
		return nil, nil
	}
	var ps []Position
	if err := json.Unmarshal([]byte(s), &ps); err != nil {
		return nil, fmt.Errorf("decode checkpoints %q: %w", s, err)
	}
	return ps, nil
}

// RemoveOptions say what RemoveSource may drop.
type RemoveOptions struct {
	// DropUnapplied removes a buffer source even though its buffer holds
	// events after its checkpoints: they are deleted, and counted.
	DropUnapplied bool
}

// Removal is what RemoveSource did.
type Removal struct {
	Source Source
	// Dropped counts the buffered events deleted that no checkpoint
	// covered (buffer sources).
	Dropped int64
	// Checkpoints are the sessions' checkpoints when the source was
	// removed, by partition. For a pg-outbox source whose outbox is
	// recorded they are kept as its tombstone.
	Checkpoints []Position
}

// CheckpointReset is what ResetCheckpoints writes.
type CheckpointReset struct {
	// To holds the new checkpoint of each partition.
	To []Position
	// Expect, when not nil, holds the checkpoints the caller decided
	// from: when a session has moved since, nothing is written and the
	// error wraps ErrFenced (a reset to checkpoints read before a batch
	// committed would apply that batch's events again).
	Expect []Position
	// Outbox, when not zero, is recorded as the source's outbox (the
	// server the new checkpoints are positions on).
	Outbox OutboxIdentity
}

// Repartitioned is what Repartition did.
type Repartitioned struct {
	From, To int
	// Moved counts the buffered events filed under a new partition;
	// Deleted the applied ones deleted (buffer sources).
	Moved, Deleted int64
	// Floor is the floor left (pg-outbox sources).
	Floor *Floor
}

// SegmentOf returns the segment (event.Event.Segment: the continuation
// token, else the instance id) of an encoded event, "" when it cannot be
// read: such an event is quarantined by whichever partition reads it.
func SegmentOf(payload []byte) string {
	var ev struct {
		Instance     string `json:"instance"`
		Continuation string `json:"continuation"`
	}
	if json.Unmarshal(payload, &ev) != nil {
		return ""
	}
	if ev.Continuation != "" {
		return ev.Continuation
	}
	return ev.Instance
}

// PartitionOf is the partition of n that an encoded event belongs to, as
// writers choose it (event.Partition of its segment).
func PartitionOf(payload []byte, n int) int {
	return event.Partition(SegmentOf(payload), n)
}

// ParseFloor is the Floor of a source's floor_* columns, nil when none.
func ParseFloor(partitions int, checkpoints string) (*Floor, error) {
	if partitions == 0 {
		return nil, nil
	}
	ps, err := DecodePositions(checkpoints)
	if err != nil {
		return nil, err
	}
	if len(ps) != partitions {
		return nil, fmt.Errorf("floor of %d partitions holds %d checkpoints", partitions, len(ps))
	}
	return &Floor{Partitions: partitions, Checkpoints: ps}, nil
}

// Tombstone is what a removed pg-outbox source left on its outbox.
type Tombstone struct {
	Source      string
	Checkpoints []Position
	Floor       *Floor
}

// ParseTombstone reads a tombstone's columns.
func ParseTombstone(source string, partitions int, checkpoints string, floorPartitions int, floorCheckpoints string) (Tombstone, error) {
	ps, err := DecodePositions(checkpoints)
	if err != nil {
		return Tombstone{}, err
	}
	if len(ps) != partitions {
		return Tombstone{}, fmt.Errorf("tombstone of source %q: %d checkpoints for %d partitions", source, len(ps), partitions)
	}
	floor, err := ParseFloor(floorPartitions, floorCheckpoints)
	return Tombstone{Source: source, Checkpoints: ps, Floor: floor}, err
}

// Fits returns nil when a source of that many partitions can start from
// the tombstone's checkpoints, else ErrTombstone with what to do.
func (t Tombstone) Fits(partitions int) error {
	if len(t.Checkpoints) == partitions {
		return nil
	}
	return fmt.Errorf("%w: source %q, removed, had applied its rows up to its checkpoints in %d partitions, and "+
		"those rows are still in the table: add the source with --partitions %d (it then starts from them), "+
		"and change the count afterwards with bam source repartition",
		ErrTombstone, t.Source, len(t.Checkpoints), len(t.Checkpoints))
}

// AllAtStart returns nil when every checkpoint is the zero position, else
// an error naming the first that is not.
func AllAtStart(checkpoints []Position) error {
	for p, c := range checkpoints {
		if c != (Position{}) {
			return fmt.Errorf("partition %d is at %d/%d", p, c.Major, c.Minor)
		}
	}
	return nil
}

// CheckExpected returns nil when the checkpoints are the ones a reset
// expects (or it expects none), else an error wrapping ErrFenced.
func (r CheckpointReset) CheckExpected(checkpoints []Position) error {
	if r.Expect == nil {
		return nil
	}
	for p, c := range checkpoints {
		if p >= len(r.Expect) || r.Expect[p] != c {
			return fmt.Errorf("%w: partition %d moved to %d/%d since its checkpoints were read; look again and run it again", ErrFenced, p, c.Major, c.Minor)
		}
	}
	if len(r.Expect) != len(checkpoints) {
		return fmt.Errorf("%w: %d checkpoints expected, the source has %d", ErrFenced, len(r.Expect), len(checkpoints))
	}
	return nil
}

// PlanRecordOutbox decides RecordOutbox for a source whose sessions are at
// checkpoints, tombstoned telling whether a removed source left a
// tombstone on o: record is false when o is recorded already; an error
// when another outbox is (ErrOutboxChanged), or when a tombstone cannot
// be taken over because the source has read already (it was made by a bam
// that recorded no outbox).
func PlanRecordOutbox(src Source, checkpoints []Position, o OutboxIdentity, tombstoned bool) (record bool, err error) {
	if src.Kind != KindPgOutbox {
		return false, fmt.Errorf("source is of kind %s, not %s", src.Kind, KindPgOutbox)
	}
	if !src.Outbox.IsZero() {
		if d := src.Outbox.Diff(o); d != "" {
			return false, fmt.Errorf("%w: %s", ErrOutboxChanged, d)
		}
		return false, nil
	}
	if err := AllAtStart(checkpoints); err != nil && tombstoned {
		return false, fmt.Errorf("%w, and this source has read already (%v): remove one of them with care", ErrTombstone, err)
	}
	return true, nil
}

// RepartitionPlan is where the sessions of a repartitioned source start,
// and the floor it keeps.
type RepartitionPlan struct {
	Start Position
	Floor *Floor
}

// PlanRepartition decides Repartition for a source whose sessions are at
// checkpoints (by partition). A buffer source's sessions start at the
// beginning: the driver deletes the applied events and refiles the others.
// A pg-outbox source's rows stay where the application wrote them: its
// sessions start at the earliest checkpoint, and the floor (the old count
// and checkpoints) skips the rows between that and their old partition's
// checkpoint, which were applied. A floor left by an earlier repartition
// must skip nothing more first: two floors do not compose.
func PlanRepartition(src Source, checkpoints []Position, partitions int) (RepartitionPlan, error) {
	if src.Kind != KindPgOutbox {
		return RepartitionPlan{}, nil
	}
	if src.Floor != nil {
		reach := src.Floor.Max()
		for p, c := range checkpoints {
			if c.Less(reach) {
				return RepartitionPlan{}, fmt.Errorf("the previous repartition is still catching up: partition %d is at %d/%d "+
					"and rows up to %d/%d may still be skipped as applied; retry once every session has read past it (bam status)",
					p, c.Major, c.Minor, reach.Major, reach.Minor)
			}
		}
	}
	start := checkpoints[0]
	var floor *Floor
	for _, c := range checkpoints {
		if c.Less(start) {
			start = c
		}
		if c != checkpoints[0] {
			floor = &Floor{Partitions: len(checkpoints), Checkpoints: checkpoints}
		}
	}
	return RepartitionPlan{Start: start, Floor: floor}, nil
}
