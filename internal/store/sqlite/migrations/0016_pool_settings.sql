-- Version 16: pool-wide settings (bam config set). The PostgreSQL driver's
-- 0015_pool_settings.sql says why. set_at is in microseconds since the
-- epoch, by the store's clock, like every time of this driver. A change
-- bumps bam_notices' 'settings' counter, which Watch polls.
CREATE TABLE bam_pool_settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at INTEGER NOT NULL
) STRICT;

INSERT INTO bam_notices (topic, seq) VALUES ('settings', 0);
