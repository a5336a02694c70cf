-- Version 12: alerts (package alert).
--
-- The alerts are evaluated by the one session of the built-in source
-- bam.alerts, of kind alerts (store.AlertsSource), dealt like any other.
ALTER TABLE bam_sources DROP CONSTRAINT bam_sources_kind_check;
ALTER TABLE bam_sources ADD CONSTRAINT bam_sources_kind_check CHECK (kind IN ('buffer', 'pg-outbox', 'alerts'));
--
-- A firing is a key (an instance id, or an aggregation cell as JSON) for
-- which an alert's condition became true; cleared_at is set when it no
-- longer holds. At most one firing of a key is open at a time: the unique
-- index below is the edge of the edge-triggered alert, kept by the store
-- whatever the evaluator does. node and epoch are the owner of the
-- bam.alerts session that fired it, under the fence.
CREATE TABLE bam_alert_firings (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    activity   text NOT NULL,
    alert      text NOT NULL,
    key        text NOT NULL,
    severity   text NOT NULL,
    message    text NOT NULL,
    value      text NOT NULL DEFAULT '',
    fired_at   timestamptz NOT NULL DEFAULT now(),
    cleared_at timestamptz,
    node       text NOT NULL,
    epoch      bigint NOT NULL
);
CREATE UNIQUE INDEX bam_alert_firings_open ON bam_alert_firings (activity, alert, key) WHERE cleared_at IS NULL;
CREATE INDEX bam_alert_firings_by_alert ON bam_alert_firings (lower(activity), lower(alert), id);

-- A delivery of a firing to one subscriber, made in the firing's
-- transaction: its id is what the receiver sees (X-Bam-Delivery) and
-- drops a repeat by. target is the webhook URL or the email address;
-- secret_env names the environment variable that holds the webhook's
-- signing secret on the delivering node (the secret itself is never
-- stored).
CREATE TABLE bam_alert_deliveries (
    id           text PRIMARY KEY,
    firing_id    bigint NOT NULL REFERENCES bam_alert_firings (id) ON DELETE CASCADE,
    channel      text NOT NULL CHECK (channel IN ('webhook', 'email')),
    target       text NOT NULL,
    secret_env   text NOT NULL DEFAULT '',
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    last_error   text NOT NULL DEFAULT '',
    delivered_at timestamptz
);
CREATE INDEX bam_alert_deliveries_due ON bam_alert_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX bam_alert_deliveries_firing ON bam_alert_deliveries (firing_id);
