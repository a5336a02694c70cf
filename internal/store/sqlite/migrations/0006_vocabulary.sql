-- Version 6: the rest of the event vocabulary (package event):
-- continuations, relations and references.
--
-- open_continuations counts the continuations linked to the instance
-- (directly or through a continuation of its own) that are enabled and not
-- ended; an instance is completed only when it has begin and end and this
-- is 0. The upsert reads it; Apply recounts it for the instances a batch's
-- continuations touch.
ALTER TABLE bam_instances ADD COLUMN open_continuations INTEGER NOT NULL DEFAULT 0;

-- One row per continuation token of an activity. A row is made by the
-- token's enable or by its first events, whichever comes first.
-- parent_instance or parent_token is the segment that enabled the token
-- (both NULL until the enable arrives; the first enable applied keeps
-- them). instance_id is the root instance, once the chain of enables up to
-- an instance is known. Until then the token's events are kept aside:
-- items (the stored form of event.Items) and pending_events, folded into
-- the instance when the link is known. events counts every event applied
-- under the token; ended_at is the latest end under it.
CREATE TABLE bam_continuations (
    activity        TEXT NOT NULL,
    token           TEXT NOT NULL,
    parent_instance TEXT,
    parent_token    TEXT,
    instance_id     TEXT,
    enabled_at      INTEGER,
    ended_at        INTEGER,
    first_event_at  INTEGER,
    last_modified   INTEGER,
    events          INTEGER NOT NULL DEFAULT 0,
    pending_events  INTEGER NOT NULL DEFAULT 0,
    items           TEXT NOT NULL DEFAULT '{}',
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (activity, token),
    CHECK (parent_instance IS NULL OR parent_token IS NULL)
) STRICT;

-- An instance's continuations (reading, and the open count).
CREATE INDEX bam_continuations_instance ON bam_continuations (activity, instance_id)
    WHERE instance_id IS NOT NULL;
-- Nested continuations waiting for their parent's link.
CREATE INDEX bam_continuations_unlinked ON bam_continuations (activity, parent_token)
    WHERE instance_id IS NULL AND parent_token IS NOT NULL;
-- Linked continuations with data still to fold (none between batches).
CREATE INDEX bam_continuations_pending ON bam_continuations (activity, token)
    WHERE instance_id IS NOT NULL AND pending_events > 0;

-- Relations, written in both directions: each instance shows the other.
CREATE TABLE bam_relations (
    activity         TEXT NOT NULL,
    instance_id      TEXT NOT NULL,
    related_activity TEXT NOT NULL,
    related_instance TEXT NOT NULL,
    PRIMARY KEY (activity, instance_id, related_activity, related_instance)
) STRICT, WITHOUT ROWID;

-- References, one per (instance, type, name, value): the data of the
-- latest event time (event_time, microseconds), the last applied on a tie.
CREATE TABLE bam_references (
    activity    TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    type        TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '',
    event_time  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (activity, instance_id, type, name, value)
) STRICT;
