-- Version 8: the life cycle of sources (issue 8).
--
-- A pg-outbox source's positions are transaction ids of the application's
-- server, which mean nothing on another server and go back when that
-- server is restored from a backup. outbox_* record which outbox the
-- source reads: the server's system identifier ('' when the server does
-- not let bam read it), the database's oid and name, and the table's
-- schema-qualified name. They are empty until bam first reaches the table.
-- outbox_key is those joined into one text: no two sources of a store read
-- one outbox table, or both would apply every event.
--
-- outbox_stopped is why the source's reader stopped, when it found the
-- server's transaction ids behind a checkpoint: kept, so that the source
-- stays stopped once those ids have run past the checkpoint again (every
-- row written in between would be skipped), until an operator chooses with
-- `bam source reset-checkpoint`.
--
-- floor_partitions and floor_checkpoints (JSON, one {"major","minor"} per
-- partition) are left by `bam source repartition` of a pg-outbox source:
-- the partition count and checkpoints before it. A row at or before its old
-- partition's checkpoint was applied already and is skipped.
ALTER TABLE bam_sources
    ADD COLUMN outbox_system_id    text    NOT NULL DEFAULT '',
    ADD COLUMN outbox_database_oid bigint  NOT NULL DEFAULT 0,
    ADD COLUMN outbox_database     text    NOT NULL DEFAULT '',
    ADD COLUMN outbox_table        text    NOT NULL DEFAULT '',
    ADD COLUMN outbox_key          text    NOT NULL DEFAULT '',
    ADD COLUMN outbox_stopped      text    NOT NULL DEFAULT '',
    ADD COLUMN floor_partitions    integer NOT NULL DEFAULT 0,
    ADD COLUMN floor_checkpoints   text    NOT NULL DEFAULT '';

CREATE UNIQUE INDEX bam_sources_outbox_key ON bam_sources (outbox_key) WHERE outbox_key <> '';

-- The checkpoints of a removed pg-outbox source, by outbox. Its rows up to
-- them were applied, and stay in the application's table until trimmed: a
-- source added again on that table starts from them instead of applying
-- those rows a second time.
CREATE TABLE bam_outbox_tombstones (
    outbox_key  text PRIMARY KEY,
    source      text NOT NULL,
    partitions  integer NOT NULL,
    checkpoints text NOT NULL, -- JSON, one {"major","minor"} per partition
    floor_partitions  integer NOT NULL DEFAULT 0, -- the source's floor, if it had one
    floor_checkpoints text    NOT NULL DEFAULT '',
    removed_at  timestamptz NOT NULL DEFAULT now()
);

-- The store's identity: a random id made once. A pg-outbox reader writes it
-- into the outbox database (bam_outbox_readers, beside the outbox table) so
-- that a second store whose pool would read the same table is refused.
CREATE TABLE bam_store_identity (
    id text PRIMARY KEY
);
INSERT INTO bam_store_identity (id) VALUES (md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));
