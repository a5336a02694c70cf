-- Version 12: what lets a batch keep its aggregations once per batch
-- rather than once per changed instance (aggregation.go says how).
--
-- bam_agg_deferred holds a row only inside a transaction that folds its
-- aggregation changes itself (Apply's): SQLite has one writer at a time and
-- no reader sees an uncommitted row, so the row is seen by that transaction
-- alone, and it is gone at its commit or rollback.
CREATE TABLE bam_agg_deferred (
    deferred INTEGER PRIMARY KEY CHECK (deferred = 1)
) STRICT;
