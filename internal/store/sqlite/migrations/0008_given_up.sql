-- Version 8: a node that cannot reach a session's source hands the session
-- over and records itself as the node to deal it to last (given_up_by), for
-- a while by the store's clock (given_up_at, microseconds), so that a healthy
-- node tries the source instead of the same node taking it back.
ALTER TABLE bam_sessions ADD COLUMN given_up_by TEXT;
ALTER TABLE bam_sessions ADD COLUMN given_up_at INTEGER;
