-- bam store schema, version 6.
--
-- written_at is when a failed event was written to its source. A retried
-- event without a time of its own is given it, as it would have been had it
-- been applied in its batch; failures recorded before this version keep
-- NULL and fall back to failed_at.
ALTER TABLE bam_failed ADD COLUMN written_at timestamptz;
