-- Version 10: paused sources, and the nodes that left the pool (issue 9).
--
-- paused: no node applies the source's events (its sessions are released
-- after their batch and not claimed), as when it is disabled, but writes
-- to it are still accepted and wait in the source. A disabled source
-- refuses writes; a paused one keeps them for `bam source resume`, when
-- the sessions go on from their checkpoints.
ALTER TABLE bam_sources ADD COLUMN paused boolean NOT NULL DEFAULT false;

-- A node that left the pool cleanly (Leave) or was found dead by a peer
-- (ForgetNode): its last membership row, when it went, who found it dead
-- ('' when it left by itself) and why. Written in the transaction that
-- deletes its bam_nodes row, shown by `bam status` for
-- store.DepartedMemory and pruned by age as other nodes go. A record for
-- people: nothing in the pool decides on it.
CREATE TABLE bam_departed_nodes (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    host          text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL,
    departed_at   timestamptz NOT NULL DEFAULT now(),
    found_dead_by text NOT NULL DEFAULT '',
    why           text NOT NULL
);
