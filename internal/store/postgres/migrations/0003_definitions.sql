-- bam store schema, version 3: deployed activity definitions, their
-- deployments, the archive of completed instances, and the guarded casts
-- the activity views read items with (see internal/store/definitions.go).

-- One row per deployed activity. name is as declared (events name the
-- activity that way); definition is definition.Activity as JSON; version is
-- the deployment that last changed it. keep is the online window of
-- completed instances (NULL: kept for ever); archive moves them to
-- bam_instances_archive instead of deleting them; archive_view is true once
-- archiving was turned on: the <name>_archive view exists from then until
-- the activity is removed.
CREATE TABLE bam_definitions (
    name         text PRIMARY KEY,
    definition   jsonb NOT NULL,
    version      bigint NOT NULL,
    keep         interval CHECK (keep > interval '0'),
    archive      boolean NOT NULL DEFAULT false,
    archive_view boolean NOT NULL DEFAULT false
);

-- Activity names are unique without regard to case (so are their views).
CREATE UNIQUE INDEX bam_definitions_name ON bam_definitions (lower(name));

-- Every change of the deployed definitions: one line per change in changes;
-- file is the definition file deployed ('' for a removal or a window);
-- forced is true when the deployment made destructive changes to items
-- that instances held.
CREATE TABLE bam_deployments (
    version     bigint PRIMARY KEY,
    deployed_at timestamptz NOT NULL DEFAULT now(),
    deployed_by text NOT NULL,
    file        text NOT NULL DEFAULT '',
    changes     text NOT NULL,
    forced      boolean NOT NULL DEFAULT false
);

-- Completed instances moved out of bam_instances when their online window
-- ends, with the same columns and the time they were moved.
CREATE TABLE bam_instances_archive (
    activity       text NOT NULL,
    instance_id    text NOT NULL,
    state          text NOT NULL,
    begin_time     timestamptz,
    end_time       timestamptz,
    last_modified  timestamptz NOT NULL,
    events         bigint NOT NULL DEFAULT 0,
    items          jsonb NOT NULL DEFAULT '{}',
    updated_at     timestamptz NOT NULL,
    first_event_at timestamptz,
    archived_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (activity, instance_id)
);

CREATE INDEX bam_instances_archive_end ON bam_instances_archive (activity, end_time);

-- "Completed between t1 and t2" of an activity (its <name>_completed view),
-- and PurgeCompleted's search for instances past their window.
CREATE INDEX bam_instances_completed ON bam_instances (activity, end_time) WHERE state = 'completed';

-- Guarded casts: an item's stored value as its type, or NULL when it does
-- not fit (a value written before the definition, or before a forced
-- retype), so that a view never fails at query time. Each checks the JSON
-- type first; CASE, unlike AND, guarantees that order. IMMUTABLE so that
-- they can be indexed.

CREATE FUNCTION bam_text(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string' THEN v #>> '{}' END
$$;

CREATE FUNCTION bam_bool(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'boolean' THEN v::boolean END
$$;

-- A whole number within 64 bits (1.0 and 1e3 count, as event validation
-- says).
CREATE FUNCTION bam_int(v jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN
        CASE WHEN v::numeric = trunc(v::numeric)
              AND v::numeric BETWEEN -9223372036854775808 AND 9223372036854775807
        THEN v::numeric::bigint END
    END
$$;

-- A number within float8's range, and not so close to 0 that the cast
-- refuses it.
CREATE FUNCTION bam_float(v jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN
        CASE WHEN abs(v::numeric) <= 1.7976931348623157e308
              AND (v::numeric = 0 OR abs(v::numeric) >= 1e-307)
        THEN v::numeric::double precision END
    END
$$;

-- A number, or a string holding one (clients that keep decimals exact send
-- strings), rounded to scale s, NULL unless it has at most p - s digits
-- before the point. The view casts the result to numeric(p, s), which then
-- cannot fail. Written as plain expressions so that PostgreSQL inlines them
-- into the view (a SQL function it cannot inline costs microseconds a row).
CREATE FUNCTION bam_num_fit(n numeric, p integer, s integer) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN abs(round(n, s)) < 10::numeric ^ (p - s) THEN round(n, s) END
$$;

CREATE FUNCTION bam_num(v jsonb, p integer, s integer) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(v)
        WHEN 'number' THEN bam_num_fit(v::numeric, p, s)
        WHEN 'string' THEN
            CASE WHEN length(v #>> '{}') <= 200
                  AND (v #>> '{}') ~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$'
            THEN bam_num_fit((v #>> '{}')::numeric, p, s) END
    END
$$;

-- An RFC 3339 time in a string: its shape is checked by a regular
-- expression and its day against its month before the cast, so that no
-- string can make the cast fail. PL/pgSQL, because the text is extracted
-- once and the cast is PostgreSQL's own (about 2 µs a value; PostgreSQL 16's
-- pg_input_is_valid would be cheaper). The cast of text to timestamptz is
-- only STABLE (it may read the TimeZone setting), but a string with an
-- explicit offset, which the expression requires, reads the same under every
-- setting: IMMUTABLE is true here, and lets the function be indexed.
CREATE FUNCTION bam_ts(v jsonb) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    t text;
BEGIN
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' THEN
        RETURN NULL;
    END IF;
    t := v #>> '{}';
    IF t !~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-5]):[0-5][0-9])$'
       OR substr(t, 1, 4) = '0000' THEN
        RETURN NULL;
    END IF;
    IF substr(t, 9, 2)::integer > extract(day FROM
            make_date(substr(t, 1, 4)::integer, substr(t, 6, 2)::integer, 1) + interval '1 month - 1 day') THEN
        RETURN NULL;
    END IF;
    RETURN t::timestamptz;
END
$$;
