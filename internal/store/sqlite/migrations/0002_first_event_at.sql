-- Version 2: the earliest event time an instance has seen (microseconds), so
-- that the upsert can tell the usual case, a delta whose every event is at
-- or after the instance's last change, and replace its items wholesale
-- (json_patch) instead of merging them one by one in bam_merge_items.
-- NULL for instances written before this version: their earliest event is
-- not known.
ALTER TABLE bam_instances ADD COLUMN first_event_at INTEGER;
