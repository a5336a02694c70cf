-- Version 9: times in data items have one stored form (issue 9). A value
-- that is an RFC 3339 time is kept in UTC with six fractional digits
-- (event.StoredTimeLayout: 2026-11-25T10:02:43.513100Z), so that text order
-- is time order for every reader of the items, as on SQLite, where the
-- views give milestones as text. New writes take that form in Go
-- (event.Coalesce); this rewrites the items written before, with
-- bam_stored_time, which follows event.StoredTime: the same shape
-- (YYYY-MM-DDTHH:MM:SS, a fraction of 1-9 digits, Z or an offset below 24
-- hours), the same ranges, the fraction truncated to the microsecond. The
-- offset is applied by hand, not by a cast with the offset, because
-- PostgreSQL refuses offsets beyond 15:59 that Go accepts. A value it
-- cannot read (a year 0000, which Go accepts and PostgreSQL does not) is
-- left as it is.
CREATE FUNCTION bam_stored_time(t text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m text[];
    utc timestamp;
BEGIN
    m := regexp_match(t, '^([0-9]{4}-[0-9]{2}-[0-9]{2})T([01][0-9]|2[0-3])(:[0-5][0-9]:[0-5][0-9])(?:\.([0-9]{1,9}))?(Z|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))$');
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        utc := (m[1] || ' ' || m[2] || m[3])::timestamp;
    EXCEPTION WHEN others THEN
        RETURN NULL; -- 30 February, year 0000
    END;
    IF m[5] <> 'Z' THEN
        utc := utc - (CASE m[6] WHEN '-' THEN -1 ELSE 1 END)
            * make_interval(hours => m[7]::integer, mins => m[8]::integer);
    END IF;
    RETURN to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS') || '.'
        || substr(coalesce(m[4], '') || '000000', 1, 6) || 'Z';
END
$$;

-- bam_stored_times returns items with every time value in its stored form,
-- or NULL when none changes.
CREATE FUNCTION bam_stored_times(items jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bool_or(s IS NOT NULL AND s <> e.value ->> 'v')
        THEN jsonb_object_agg(e.key, CASE WHEN s IS NULL THEN e.value ELSE jsonb_set(e.value, '{v}', to_jsonb(s)) END)
    END
    FROM jsonb_each(items) AS e,
         LATERAL (SELECT CASE WHEN jsonb_typeof(e.value -> 'v') = 'string' THEN bam_stored_time(e.value ->> 'v') END AS s) AS x
$$;

UPDATE bam_instances SET items = bam_stored_times(items)
    WHERE bam_stored_times(items) IS NOT NULL;
UPDATE bam_instances_archive SET items = bam_stored_times(items)
    WHERE bam_stored_times(items) IS NOT NULL;
UPDATE bam_continuations SET items = bam_stored_times(items)
    WHERE bam_stored_times(items) IS NOT NULL;
