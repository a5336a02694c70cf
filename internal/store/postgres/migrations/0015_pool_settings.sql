-- Version 15: pool-wide settings (bam config set), one row per setting an
-- operator set; a setting without a row has its default. The value is text
-- in the setting's own syntax ("5s", "1048576", "true"): package settings
-- knows the names and their rules, the store keeps what was set, who set it
-- (user@host) and when, by the store's clock. A change sends NOTIFY
-- bam_settings, and the nodes read the table again.
CREATE TABLE bam_pool_settings (
    name   text PRIMARY KEY,
    value  text NOT NULL,
    set_by text NOT NULL,
    set_at timestamptz NOT NULL DEFAULT now()
);
