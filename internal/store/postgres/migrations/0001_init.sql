-- bam store schema, version 1.
--
-- Every time that decides something (lease expiry, heartbeat age) is this
-- server's now(): nodes never compare their own clocks.

-- bam_schema records each migration applied; the store's version is the
-- highest. Migrate creates it before running this file.

-- Configured sources. dsn may hold a password: bam never logs it.
CREATE TABLE bam_sources (
    name       text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('buffer', 'pg-outbox')),
    partitions integer NOT NULL CHECK (partitions > 0),
    enabled    boolean NOT NULL DEFAULT true,
    dsn        text NOT NULL DEFAULT '',
    tbl        text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per source partition: who owns it (owner, epoch, lease) and how
-- far it has been applied (checkpoint). Apply fences on owner, epoch and
-- checkpoint in the same UPDATE that moves the checkpoint.
CREATE TABLE bam_sessions (
    source           text NOT NULL REFERENCES bam_sources (name) ON DELETE CASCADE,
    partition        integer NOT NULL,
    owner            text,
    epoch            bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    checkpoint_major bigint NOT NULL DEFAULT 0,
    checkpoint_minor bigint NOT NULL DEFAULT 0,
    applied_count    bigint NOT NULL DEFAULT 0,
    failed_count     bigint NOT NULL DEFAULT 0,
    last_error       text,
    last_error_at    timestamptz,
    PRIMARY KEY (source, partition)
) WITH (fillfactor = 50); -- every batch and renewal updates a row: room for HOT updates

-- Renew, Leave and ExpireLeases find a node's leases by owner.
CREATE INDEX bam_sessions_owner ON bam_sessions (owner) WHERE owner IS NOT NULL;

-- Membership: one row per running node, heartbeated even when it owns
-- nothing. lock_key is the advisory lock the node holds while it lives.
CREATE TABLE bam_nodes (
    id           text PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    host         text NOT NULL DEFAULT '',
    pid          integer NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL DEFAULT 'running',
    lock_key     bigint NOT NULL DEFAULT 0
);

-- The ingest buffer. A row's position is (xid, id): xid is the writing
-- transaction, so a reader that stops below the oldest running transaction
-- (pg_snapshot_xmin) never moves past a row that is still to commit.
CREATE TABLE bam_buffer (
    id         bigserial PRIMARY KEY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    source     text NOT NULL,
    partition  integer NOT NULL,
    payload    bytea NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX bam_buffer_read ON bam_buffer (source, partition, xid, id);

-- Activity instances, merged from events whatever their arrival order.
-- items maps an item name to {"v": value, "t": event time in microseconds}.
CREATE TABLE bam_instances (
    activity      text NOT NULL,
    instance_id   text NOT NULL,
    state         text NOT NULL CHECK (state IN ('pending', 'active', 'completed')),
    begin_time    timestamptz,
    end_time      timestamptz,
    last_modified timestamptz NOT NULL,
    events        bigint NOT NULL DEFAULT 0,
    items         jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (activity, instance_id)
) WITH (fillfactor = 80); -- instances are updated in place by each event: room for HOT updates

CREATE INDEX bam_instances_state ON bam_instances (activity, state, instance_id);

-- Quarantined events, with their reason and original bytes.
CREATE TABLE bam_failed (
    id        bigserial PRIMARY KEY,
    source    text NOT NULL,
    partition integer NOT NULL,
    pos_major bigint NOT NULL,
    pos_minor bigint NOT NULL,
    reason    text NOT NULL,
    payload   bytea NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX bam_failed_source ON bam_failed (source, id);

-- bam_merge_items is event.Merge in SQL: b merged into a, b applied after a.
-- Per item the value with the larger event time "t" wins; on a tie the
-- newly applied one (b) wins. Only b is walked (a delta is small, a stored
-- instance may be large): a value of b is kept unless a holds the same item
-- from a strictly later event.
CREATE FUNCTION bam_merge_items(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN b IS NULL OR b = '{}'::jsonb THEN coalesce(a, '{}'::jsonb)
        WHEN a IS NULL OR a = '{}'::jsonb THEN b
        ELSE a || coalesce((
            SELECT jsonb_object_agg(e.key, e.value)
            FROM jsonb_each(b) AS e
            WHERE NOT coalesce((a -> e.key ->> 't')::bigint > (e.value ->> 't')::bigint, false)
        ), '{}'::jsonb)
    END
$$;

-- bam_fence aborts the transaction it runs in when the fencing UPDATE
-- touched no row, so that the statements pipelined after it in the same
-- transaction cannot write anything. SQLSTATE BAM01 is read as
-- store.ErrFenced.
CREATE FUNCTION bam_fence(touched bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF touched = 0 THEN
        RAISE EXCEPTION 'session is no longer owned by this node under this epoch and checkpoint'
            USING ERRCODE = 'BAM01';
    END IF;
    RETURN touched;
END
$$;
