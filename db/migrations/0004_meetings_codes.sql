-- 0004_meetings_codes: what meetings, access codes and API tokens need
-- beyond 0001 (issue 3).
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.

-- A meeting may name no group when it lists its invitees explicitly
-- (issue 3). "At least one of the two" spans two tables, so the server
-- checks it when it writes both in one transaction and marks such a
-- meeting invitees_only; any other meeting without a group is still
-- refused here, as 0001 intended.
ALTER TABLE meetings ADD COLUMN invitees_only boolean NOT NULL DEFAULT false;
ALTER TABLE meetings DROP CONSTRAINT meetings_allowed_groups_check;
ALTER TABLE meetings ADD CONSTRAINT meetings_allowed_groups_check
    CHECK (array_position(allowed_groups, NULL) IS NULL
           AND (cardinality(allowed_groups) >= 1 OR invitees_only));

-- When the scheduled rotation is due (NULL: on demand only). Kept on the
-- meeting so the rotation job's query is one index range scan.
ALTER TABLE meetings ADD COLUMN code_rotates_at timestamptz;
ALTER TABLE meetings ADD CONSTRAINT meetings_rotates_only_on_schedule
    CHECK (code_rotates_at IS NULL OR rotation_interval IS NOT NULL);
CREATE INDEX meetings_rotation_due ON meetings (code_rotates_at)
    WHERE code_rotates_at IS NOT NULL AND archived_at IS NULL;

-- Each rotation is a row here: version, why, by whom, when -- never the
-- code (only its keyed hash and sealed copy, as 0001 says).
ALTER TABLE meeting_codes
    ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN source text NOT NULL DEFAULT 'generated'
        CHECK (source IN ('generated', 'custom')),
    ADD COLUMN reason text NOT NULL DEFAULT 'created'
        CHECK (reason IN ('created', 'rotate', 'scheduled')),
    ADD COLUMN retired_at timestamptz;
CREATE UNIQUE INDEX meeting_codes_version ON meeting_codes (meeting_id, version);

-- ---- API tokens ------------------------------------------------------------

-- Service tokens for the JSON API (schedulers, admin tools). Only the
-- SHA-256 of the token is kept: the token is 256 random bits, so a fast
-- hash is enough, and the table alone lets nobody call the API.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
    role         text NOT NULL CHECK (role IN ('host', 'admin', 'compliance')),
    -- The identity the token acts as: a host token owns the meetings it
    -- creates under this name.
    identity     text NOT NULL CHECK (length(identity) BETWEEN 1 AND 256),
    token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE UNIQUE INDEX api_tokens_name_live ON api_tokens (name)
    WHERE revoked_at IS NULL;
