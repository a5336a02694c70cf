-- bam store schema, version 5: the rest of the event vocabulary (package event):
-- continuations, relations and references.
--
-- open_continuations counts the continuations linked to the instance
-- (directly or through a continuation of its own) that are enabled and not
-- ended; an instance is completed only when it has begin and end and this
-- is 0. The upsert reads it; Apply recounts it for the instances a batch's
-- continuations touch. A constant default rewrites no row.
ALTER TABLE bam_instances ADD COLUMN open_continuations integer NOT NULL DEFAULT 0;

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
    activity        text NOT NULL,
    token           text NOT NULL,
    parent_instance text,
    parent_token    text,
    instance_id     text,
    enabled_at      timestamptz,
    ended_at        timestamptz,
    first_event_at  timestamptz,
    last_modified   timestamptz,
    events          bigint NOT NULL DEFAULT 0,
    pending_events  bigint NOT NULL DEFAULT 0,
    items           jsonb NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (activity, token),
    CHECK (parent_instance IS NULL OR parent_token IS NULL)
);

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
    activity         text NOT NULL,
    instance_id      text NOT NULL,
    related_activity text NOT NULL,
    related_instance text NOT NULL,
    PRIMARY KEY (activity, instance_id, related_activity, related_instance)
);

-- References, one per (instance, type, name, value): the data of the
-- latest event time, the last applied on a tie.
CREATE TABLE bam_references (
    activity    text NOT NULL,
    instance_id text NOT NULL,
    type        text NOT NULL,
    name        text NOT NULL,
    value       text NOT NULL,
    data        text NOT NULL DEFAULT '',
    event_time  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (activity, instance_id, type, name, value)
);
