-- Version 14: the events each session applied, by activity. The
-- PostgreSQL driver's 0013_activity_events.sql says why.
ALTER TABLE bam_sessions ADD COLUMN applied_by_activity TEXT NOT NULL DEFAULT '{}';
