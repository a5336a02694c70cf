-- Version 1: the whole store. Times are INTEGER microseconds since the Unix
-- epoch, read from the store's clock. Tables are STRICT so that a wrong type
-- is an error rather than a silently stored string.

CREATE TABLE bam_schema (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
) STRICT;

CREATE TABLE bam_sources (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    partitions INTEGER NOT NULL CHECK (partitions > 0),
    enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    dsn        TEXT NOT NULL DEFAULT '',
    tbl        TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
) STRICT;

-- One row per source partition. owner and lease_expires_at are NULL when the
-- session is free; epoch only grows (it is the fencing token).
CREATE TABLE bam_sessions (
    source           TEXT NOT NULL REFERENCES bam_sources (name) ON DELETE CASCADE,
    partition        INTEGER NOT NULL,
    owner            TEXT,
    epoch            INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER,
    checkpoint_major INTEGER NOT NULL DEFAULT 0,
    checkpoint_minor INTEGER NOT NULL DEFAULT 0,
    applied_count    INTEGER NOT NULL DEFAULT 0,
    failed_count     INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    last_error_at    INTEGER,
    PRIMARY KEY (source, partition)
) STRICT;

-- Renew, Leave and ExpireLeases find a node's sessions by owner.
CREATE INDEX bam_sessions_owner ON bam_sessions (owner) WHERE owner IS NOT NULL;

CREATE TABLE bam_nodes (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL DEFAULT '',
    host         TEXT NOT NULL DEFAULT '',
    pid          INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    state        TEXT NOT NULL,
    lock_key     INTEGER NOT NULL DEFAULT 0
) STRICT;

-- The ingest buffer. AUTOINCREMENT is essential: without it SQLite may hand
-- out an id again once the highest rows are trimmed, and a reader whose
-- checkpoint is past that id would skip the new event. Writes serialize on
-- the database's write lock, so id order is commit order.
CREATE TABLE bam_buffer (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    source     TEXT NOT NULL REFERENCES bam_sources (name) ON DELETE CASCADE,
    partition  INTEGER NOT NULL,
    payload    BLOB NOT NULL,
    written_at INTEGER NOT NULL
) STRICT;

CREATE INDEX bam_buffer_read ON bam_buffer (source, partition, id);

-- items is the JSON form of event.Items: {"Amount": {"v": 1200, "t": <micros>}}.
-- events counts the events applied to the instance (each once: a batch's
-- count is added in the transaction that fences on the session's epoch and
-- starting checkpoint).
CREATE TABLE bam_instances (
    activity      TEXT NOT NULL,
    instance_id   TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'active', 'completed')),
    begin_time    INTEGER,
    end_time      INTEGER,
    last_modified INTEGER NOT NULL,
    items         TEXT NOT NULL DEFAULT '{}',
    events        INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (activity, instance_id)
) STRICT;

CREATE INDEX bam_instances_state ON bam_instances (activity, state, instance_id);

-- Quarantined events. AUTOINCREMENT so that an id an operator saw is never
-- given to another event after a discard.
CREATE TABLE bam_failed (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    source    TEXT NOT NULL,
    partition INTEGER NOT NULL,
    pos_major INTEGER NOT NULL,
    pos_minor INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    payload   BLOB NOT NULL,
    failed_at INTEGER NOT NULL
) STRICT;

CREATE INDEX bam_failed_source ON bam_failed (source, id);
