-- Version 14: what operators do to the pool as a whole (bam pause, bam
-- node drain, bam session move), and the audit log of who did what.
--
-- bam_pool has one row: the pool-wide pause. While paused, no session is
-- applied (SessionRow.Applies) and no claim succeeds; writers keep writing
-- into the sources.
CREATE TABLE bam_pool (
    id         integer PRIMARY KEY CHECK (id = 1),
    paused     boolean NOT NULL DEFAULT false,
    paused_at  timestamptz,
    paused_by  text NOT NULL DEFAULT ''
);
INSERT INTO bam_pool (id) VALUES (1);

-- A draining node hands every session over and claims none, and stays up
-- (bam node drain): its peers see it as stopping.
ALTER TABLE bam_nodes ADD COLUMN draining boolean NOT NULL DEFAULT false;

-- move_to is the node a session is moved to (bam session move): its owner
-- hands it over, only that node claims it, and keeps it while it works.
ALTER TABLE bam_sessions ADD COLUMN move_to text;

-- Who did what, when: every operator command that changes the pool.
CREATE TABLE bam_audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    who     text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL DEFAULT '',
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX bam_audit_at ON bam_audit (at);
