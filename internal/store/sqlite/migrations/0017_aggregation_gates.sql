-- Version 17: an aggregation's row triggers are small gates that hand a
-- row to the aggregation's mover (aggregation.go says why: a batch no
-- longer pays for every aggregation's program on each of its rows).
-- The schema of the tables is unchanged; migrating to this version writes
-- the triggers of every deployed activity again, as this bam writes them
-- (migrate.go). bam_schema records the version.
SELECT 1;
