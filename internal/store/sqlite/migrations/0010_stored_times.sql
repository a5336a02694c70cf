-- Version 10: times in data items have one stored form (issue 9). A value
-- that is an RFC 3339 time is kept in UTC with six fractional digits
-- (event.StoredTimeLayout), so that text order is time order: the activity
-- views give milestones as text, and …43Z sorted after …43.5Z. New writes
-- take that form in Go (event.Coalesce); this rewrites the items written
-- before, with bam_stored_times, the same Go rule (NULL: nothing to change).
UPDATE bam_instances SET items = bam_stored_times(items)
    WHERE bam_stored_times(items) IS NOT NULL;
UPDATE bam_instances_archive SET items = bam_stored_times(items)
    WHERE bam_stored_times(items) IS NOT NULL;
UPDATE bam_continuations SET items = bam_stored_times(items)
    WHERE bam_stored_times(items) IS NOT NULL;
