-- 0008_directory_watch: the directory watcher's shared state (issue 7,
-- items 1 and 2).
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.

-- One row per watcher (name 'directory'). Written only by the node that
-- holds the watcher's advisory lock (a session lock on a connection of
-- its own, so it ends with the node): the sync cookie after every poll
-- that moved it, who leads since when, and what the watcher applied.
-- Every node reads it for its metrics.
CREATE TABLE directory_watch (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,31}$'),
    cookie          bytea CHECK (octet_length(cookie) <= 4096),
    cookie_at       timestamptz,
    leader_node     text CHECK (length(leader_node) <= 256),
    leader_since    timestamptz,
    last_change_at  timestamptz,
    changes_applied bigint NOT NULL DEFAULT 0 CHECK (changes_applied >= 0)
);

-- The watcher ends live admissions by identity (index of 0001) or by the
-- group they matched.
CREATE INDEX admissions_group_live ON admissions (matched_group)
    WHERE state IN ('admitted', 'waiting');
