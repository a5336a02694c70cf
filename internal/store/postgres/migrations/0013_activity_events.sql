-- Version 13: the events each session applied, by activity.
--
-- applied_by_activity is {"PurchaseOrder": 1042, ...}: what applied_count
-- counts, split by the activity of the instances the events went to.
-- Apply adds a batch's counts in its fence statement, on the session's own
-- row (no other row is locked, so sessions never wait for each other);
-- the portal's activities page sums the sessions' counts twice and shows
-- the difference as events per second.
ALTER TABLE bam_sessions ADD COLUMN applied_by_activity jsonb NOT NULL DEFAULT '{}';
