-- Version 15: the pool-wide pause, draining nodes, moved sessions and the
-- audit log. The PostgreSQL driver's 0014_operator_controls.sql says why.
CREATE TABLE bam_pool (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    paused     INTEGER NOT NULL DEFAULT 0,
    paused_at  INTEGER,
    paused_by  TEXT NOT NULL DEFAULT ''
);
INSERT INTO bam_pool (id) VALUES (1);

ALTER TABLE bam_nodes ADD COLUMN draining INTEGER NOT NULL DEFAULT 0;

ALTER TABLE bam_sessions ADD COLUMN move_to TEXT;

CREATE TABLE bam_audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    who     TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX bam_audit_at ON bam_audit (at);
