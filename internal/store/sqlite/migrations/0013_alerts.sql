-- Version 13: alerts (package alert). The PostgreSQL driver's
-- 0012_alerts.sql says why each table and index is there. Instants are
-- microseconds since the Unix epoch, as everywhere in this driver.
CREATE TABLE bam_alert_firings (
    id         INTEGER PRIMARY KEY,
    activity   TEXT NOT NULL,
    alert      TEXT NOT NULL,
    key        TEXT NOT NULL,
    severity   TEXT NOT NULL,
    message    TEXT NOT NULL,
    value      TEXT NOT NULL DEFAULT '',
    fired_at   INTEGER NOT NULL,
    cleared_at INTEGER,
    node       TEXT NOT NULL,
    epoch      INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX bam_alert_firings_open ON bam_alert_firings (activity, alert, key) WHERE cleared_at IS NULL;
CREATE INDEX bam_alert_firings_by_alert ON bam_alert_firings (lower(activity), lower(alert), id);

CREATE TABLE bam_alert_deliveries (
    id           TEXT PRIMARY KEY,
    firing_id    INTEGER NOT NULL REFERENCES bam_alert_firings (id) ON DELETE CASCADE,
    channel      TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
    target       TEXT NOT NULL,
    secret_env   TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_error   TEXT NOT NULL DEFAULT '',
    delivered_at INTEGER
) STRICT;
CREATE INDEX bam_alert_deliveries_due ON bam_alert_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX bam_alert_deliveries_firing ON bam_alert_deliveries (firing_id);
