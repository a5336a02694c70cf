-- Version 9: the life cycle of sources (issue 8). The PostgreSQL driver's
-- 0008_source_life_cycle.sql says why each column is there.
ALTER TABLE bam_sources ADD COLUMN outbox_system_id TEXT NOT NULL DEFAULT '';
ALTER TABLE bam_sources ADD COLUMN outbox_database_oid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE bam_sources ADD COLUMN outbox_database TEXT NOT NULL DEFAULT '';
ALTER TABLE bam_sources ADD COLUMN outbox_table TEXT NOT NULL DEFAULT '';
ALTER TABLE bam_sources ADD COLUMN outbox_key TEXT NOT NULL DEFAULT '';
ALTER TABLE bam_sources ADD COLUMN outbox_stopped TEXT NOT NULL DEFAULT '';
ALTER TABLE bam_sources ADD COLUMN floor_partitions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE bam_sources ADD COLUMN floor_checkpoints TEXT NOT NULL DEFAULT '';

CREATE UNIQUE INDEX bam_sources_outbox_key ON bam_sources (outbox_key) WHERE outbox_key <> '';

CREATE TABLE bam_outbox_tombstones (
    outbox_key  TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    partitions  INTEGER NOT NULL,
    checkpoints TEXT NOT NULL,
    floor_partitions  INTEGER NOT NULL DEFAULT 0,
    floor_checkpoints TEXT    NOT NULL DEFAULT '',
    removed_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE bam_store_identity (
    id TEXT PRIMARY KEY
) STRICT;
INSERT INTO bam_store_identity (id) VALUES (lower(hex(randomblob(16))));
