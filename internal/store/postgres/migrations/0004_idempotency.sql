-- bam store schema, version 4: idempotency records of the HTTP ingest API.
--
-- A request that carries an Idempotency-Key appends its events and records
-- its key, the source, a SHA-256 of its body and the response it got, in
-- one transaction; a retry with the key gets the recorded response back and
-- appends nothing. The primary key makes a concurrent request with the same
-- key wait for the first one's commit, then replay it. Records older than
-- the retention (by this server's now()) are purged a few at a time by later
-- requests. Removing a source removes its records.
CREATE TABLE bam_idempotency (
    key        text PRIMARY KEY,
    source     text NOT NULL REFERENCES bam_sources (name) ON DELETE CASCADE,
    body_hash  bytea NOT NULL,
    status     integer NOT NULL,
    response   bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX bam_idempotency_created ON bam_idempotency (created_at);
CREATE INDEX bam_idempotency_source ON bam_idempotency (source);
