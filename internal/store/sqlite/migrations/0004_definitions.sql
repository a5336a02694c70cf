-- Version 4: deployed activity definitions, their deployments, and the
-- archive of completed instances (see internal/store/definitions.go).

-- One row per deployed activity. name is as declared (events name the
-- activity that way); definition is the JSON of definition.Activity; version
-- is the deployment that last changed it. keep_us is the online window of
-- completed instances in microseconds (0: kept for ever); archive moves them
-- to bam_instances_archive instead of deleting them. archive_view is 1 once
-- archiving was turned on: the <name>_archive view exists from then until
-- the activity is removed.
CREATE TABLE bam_definitions (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    version    INTEGER NOT NULL,
    keep_us    INTEGER NOT NULL DEFAULT 0 CHECK (keep_us >= 0),
    archive    INTEGER NOT NULL DEFAULT 0 CHECK (archive IN (0, 1)),
    archive_view INTEGER NOT NULL DEFAULT 0 CHECK (archive_view IN (0, 1))
) STRICT;

-- Activity names are unique without regard to case (so are their views).
CREATE UNIQUE INDEX bam_definitions_name ON bam_definitions (lower(name));

-- Every change of the deployed definitions. changes holds one line per
-- change; file is the definition file deployed ('' for a removal or a
-- window); forced is 1 when the deployment made destructive changes to
-- items that instances held.
CREATE TABLE bam_deployments (
    version     INTEGER PRIMARY KEY,
    deployed_at INTEGER NOT NULL,
    deployed_by TEXT NOT NULL,
    file        TEXT NOT NULL DEFAULT '',
    changes     TEXT NOT NULL,
    forced      INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1))
) STRICT;

-- Completed instances moved out of bam_instances when their online window
-- ends, with the same columns and the time they were moved.
CREATE TABLE bam_instances_archive (
    activity       TEXT NOT NULL,
    instance_id    TEXT NOT NULL,
    state          TEXT NOT NULL,
    begin_time     INTEGER,
    end_time       INTEGER,
    last_modified  INTEGER NOT NULL,
    items          TEXT NOT NULL DEFAULT '{}',
    events         INTEGER NOT NULL DEFAULT 0,
    updated_at     INTEGER NOT NULL,
    first_event_at INTEGER,
    archived_at    INTEGER NOT NULL,
    PRIMARY KEY (activity, instance_id)
) STRICT;

CREATE INDEX bam_instances_archive_end ON bam_instances_archive (activity, end_time);

-- "Completed between t1 and t2" of an activity, through its views, whose
-- end_time is ISO 8601 text: the expression is exactly the views' (views.go,
-- isoTime), so that a range on the view's column is a range scan here.
-- PurgeCompleted finds the instances past their window through it too.
CREATE INDEX bam_instances_completed ON bam_instances (activity,
    strftime('%Y-%m-%dT%H:%M:%S', (end_time - (end_time % 1000000 + 1000000) % 1000000) / 1000000, 'unixepoch')
        || printf('.%06dZ', (end_time % 1000000 + 1000000) % 1000000))
    WHERE state = 'completed';
