-- Version 11: statistics beside every indexed item's index.
--
-- An item declared with index: true has a partial expression index on
-- bam_instances, from which PostgreSQL takes no statistics: it guessed
-- 0.5 % of the instances for any one value, and a page of one customer's
-- completed orders by end time walked them all. Deployments now create
-- statistics on the index's expression beside it (bam_st_<the index's
-- name after bam_ix_>: store.StatisticsName) and analyse the table; those
-- made by an earlier bam have none, which this creates from the indexes
-- themselves, and fills.
DO $$
DECLARE
	ix   record;
	made boolean := false;
BEGIN
	FOR ix IN
		SELECT 'bam_st_' || substr(c.relname, 8) AS stats, pg_get_indexdef(c.oid, 1, true) AS expr
		FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
		WHERE i.indrelid = 'bam_instances'::regclass AND c.relname LIKE 'bam\_ix\_%'
		  AND NOT EXISTS (SELECT 1 FROM pg_statistic_ext AS s
		                  WHERE s.stxname = 'bam_st_' || substr(c.relname, 8) AND s.stxnamespace = c.relnamespace)
	LOOP
		EXECUTE format('CREATE STATISTICS %I ON (%s) FROM bam_instances', ix.stats, ix.expr);
		made := true;
	END LOOP;
	IF made THEN
		ANALYZE bam_instances;
	END IF;
END
$$;
