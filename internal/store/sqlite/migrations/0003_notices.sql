-- Version 3: counters that Watch polls to learn what other processes
-- changed. The 'sessions' row grows by one in every transaction that frees
-- or ends a lease, adds a node, or adds, enables, disables or removes a
-- source: the changes a node answers by balancing at once. (Appends are
-- seen through bam_buffer's AUTOINCREMENT sequence.)
CREATE TABLE bam_notices (
    topic TEXT PRIMARY KEY,
    seq   INTEGER NOT NULL
) STRICT;

INSERT INTO bam_notices (topic, seq) VALUES ('sessions', 0);
