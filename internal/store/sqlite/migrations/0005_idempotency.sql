-- Version 5: idempotency records of the HTTP ingest API. A request that
-- carries an Idempotency-Key appends its events and records its key, the
-- source, a SHA-256 of its body and the response it got, in one
-- transaction; a retry with the key gets the recorded response back and
-- appends nothing. created_at is the store's clock in microseconds; records
-- older than the retention are purged a few at a time by later requests.
-- Removing a source removes its records.
CREATE TABLE bam_idempotency (
    key        TEXT PRIMARY KEY,
    source     TEXT NOT NULL REFERENCES bam_sources (name) ON DELETE CASCADE,
    body_hash  BLOB NOT NULL,
    status     INTEGER NOT NULL,
    response   BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX bam_idempotency_created ON bam_idempotency (created_at);
CREATE INDEX bam_idempotency_source ON bam_idempotency (source);
