-- Version 11: paused sources, and the nodes that left the pool (issue 9).
-- The PostgreSQL driver's 0010_pause_and_departed_nodes.sql says why each
-- is there.
ALTER TABLE bam_sources ADD COLUMN paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1));

CREATE TABLE bam_departed_nodes (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    departed_at   INTEGER NOT NULL,
    found_dead_by TEXT NOT NULL DEFAULT '',
    why           TEXT NOT NULL
) STRICT;
