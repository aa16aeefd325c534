-- 0001_init: roomgate's first schema.
--
-- Runs in one transaction (db/migrate.c); do not add BEGIN/COMMIT. Once
-- shipped, never edit this file: its checksum is recorded, and a change
-- belongs in a new migration.
--
-- Conventions, and why:
-- * Enumerations are text + CHECK, not CREATE TYPE: a CHECK can be replaced
--   in one migration, while enum values cannot be removed or reordered.
-- * Every time is timestamptz: nodes may run in different time zones.
-- * Secrets never appear in clear. Access codes are stored twice: a keyed
--   hash (HMAC with a server key kept outside the database) to check a typed
--   code, and a sealed copy (encrypted with a server key) so the host can see
--   it again. Session ids and browser bindings are stored as hashes only, so
--   a database dump does not hand out sessions.
-- * Identities are the SSO identity strings the server derives from the
--   assertion (configured NameID or attribute); they are not foreign keys:
--   users live in the directory, not here.
-- * audit_log has no foreign keys: it must outlive the rows it talks about,
--   and being append-only it could not follow an ON DELETE action anyway.

-- ---- meetings ------------------------------------------------------------

CREATE TABLE meetings (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The public part of the join link (/j/{link_id}): random, URL-safe, and
    -- separate from id so a leaked link can be replaced without renaming
    -- the meeting everywhere else.
    link_id           text NOT NULL UNIQUE
                      CHECK (link_id ~ '^[A-Za-z0-9_-]{16,64}$'),
    title             text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    host_identity     text NOT NULL CHECK (host_identity <> ''),
    -- Group DNs as the directory returned them. Admission needs live
    -- membership in at least one; a meeting nobody could join is a
    -- mistake caught at write time.
    allowed_groups    text[] NOT NULL
                      CHECK (cardinality(allowed_groups) >= 1
                             AND array_position(allowed_groups, NULL) IS NULL),
    waiting_room      boolean NOT NULL DEFAULT false,
    -- Set when failed attempts from many identities flag the meeting as
    -- probed; the waiting room is switched on at the same time.
    probed_at         timestamptz,
    starts_at         timestamptz,
    ends_at           timestamptz,
    code_length       smallint NOT NULL DEFAULT 8
                      CHECK (code_length BETWEEN 6 AND 12),
    -- NULL: rotate only on demand. Recurring meetings rotate on a schedule.
    rotation_interval interval CHECK (rotation_interval > interval '0'),
    -- How long the previous code keeps working after a rotation.
    grace_period      interval NOT NULL DEFAULT interval '0'
                      CHECK (grace_period >= interval '0'),
    -- The exact room name on the meeting platform (the join token's "room"
    -- claim).
    platform_room     text NOT NULL
                      CHECK (length(platform_room) BETWEEN 1 AND 256),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    archived_at       timestamptz,
    CHECK (ends_at > starts_at)
);

-- Two live meetings on one platform room would let a token for one open
-- the other.
CREATE UNIQUE INDEX meetings_platform_room_live
    ON meetings (platform_room) WHERE archived_at IS NULL;
CREATE INDEX meetings_host ON meetings (host_identity)
    WHERE archived_at IS NULL;
-- The rotation job looks for meetings due for a new code.
CREATE INDEX meetings_rotating ON meetings (id)
    WHERE rotation_interval IS NOT NULL AND archived_at IS NULL;

CREATE FUNCTION meetings_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- updated_at kept by the database so no code path can forget it.
CREATE TRIGGER meetings_touch BEFORE UPDATE ON meetings
    FOR EACH ROW EXECUTE FUNCTION meetings_touch();

-- ---- access codes ----------------------------------------------------------

CREATE TABLE meeting_codes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    meeting_id  uuid NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL CHECK (octet_length(code_hash) BETWEEN 16 AND 64),
    code_sealed bytea NOT NULL CHECK (octet_length(code_sealed) BETWEEN 16 AND 256),
    -- Which server key produced hash and seal, so keys can be rotated with
    -- old codes still checkable.
    key_id      text NOT NULL CHECK (key_id <> ''),
    state       text NOT NULL DEFAULT 'current'
                CHECK (state IN ('current', 'previous', 'retired')),
    valid_from  timestamptz NOT NULL DEFAULT now(),
    -- For 'previous': the end of the grace period after a rotation.
    grace_until timestamptz,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (state <> 'previous' OR grace_until IS NOT NULL)
);

-- Exactly one code is "the" code; a rotation demotes the old one and
-- inserts the new one in one transaction, and this index makes a race
-- between two rotations fail instead of leaving two current codes.
CREATE UNIQUE INDEX meeting_codes_one_current
    ON meeting_codes (meeting_id) WHERE state = 'current';
-- A join checks the current and (in grace) previous codes of one meeting.
CREATE INDEX meeting_codes_live
    ON meeting_codes (meeting_id) WHERE state IN ('current', 'previous');

-- ---- invitees ------------------------------------------------------------

-- People the host invited (notifications, co-hosts). An invitation never
-- replaces the group check: invitees are admitted only as active members
-- of an allowed group, like everyone else.
CREATE TABLE meeting_invitees (
    meeting_id  uuid NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    identity    text NOT NULL CHECK (identity <> ''),
    role        text NOT NULL DEFAULT 'attendee'
                CHECK (role IN ('attendee', 'cohost')),
    invited_by  text,
    invited_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meeting_id, identity)
);

CREATE INDEX meeting_invitees_identity ON meeting_invitees (identity);

-- ---- SSO sessions ----------------------------------------------------------

CREATE TABLE sessions (
    -- Hash of the 256-bit session id from the cookie: stealing the table
    -- does not yield usable cookies.
    id_hash            bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    identity           text NOT NULL CHECK (identity <> ''),
    idp_entity_id      text NOT NULL,
    name_id            text NOT NULL,
    name_id_format     text,
    -- SAML SessionIndex, to end this session on an IdP LogoutRequest.
    saml_session_index text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at         timestamptz,
    revoke_reason      text CHECK (revoke_reason IN (
                           'logout', 'idp_logout', 'directory_removed',
                           'directory_disabled', 'admin', 'security')),
    source_addr        inet,
    user_agent         text CHECK (length(user_agent) <= 1024),
    CHECK (expires_at > created_at),
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);

-- Push revocation ends every live session of one identity.
CREATE INDEX sessions_identity_live ON sessions (identity)
    WHERE revoked_at IS NULL;
-- IdP-initiated logout names the NameID (and maybe a SessionIndex).
CREATE INDEX sessions_name_id_live ON sessions (idp_entity_id, name_id)
    WHERE revoked_at IS NULL;
-- Sweeping expired sessions.
CREATE INDEX sessions_expires ON sessions (expires_at);

-- ---- admissions ------------------------------------------------------------

CREATE TABLE admissions (
    -- Also the join token's jti.
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    meeting_id    uuid NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    -- Kept when the session row is swept: the admission's history stays.
    session_hash  bytea REFERENCES sessions (id_hash) ON DELETE SET NULL,
    identity      text NOT NULL CHECK (identity <> ''),
    -- The allowed group the identity was found in, as the directory named it.
    matched_group text,
    -- 'host_denied': a host turned the person away from the waiting room.
    state         text NOT NULL
                  CHECK (state IN ('admitted', 'waiting', 'revoked',
                                   'expired', 'host_denied')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    admitted_at   timestamptz,
    expires_at    timestamptz,
    ended_at      timestamptz,
    -- The host who let the person in or turned them away.
    decided_by    text,
    revoke_reason text CHECK (revoke_reason IN (
                      'directory_removed', 'directory_disabled', 'admin',
                      'host', 'session_ended', 'code_rotated')),
    -- Nobody is admitted or waiting without having matched a group.
    CHECK (state NOT IN ('admitted', 'waiting') OR matched_group IS NOT NULL),
    CHECK (state <> 'admitted' OR admitted_at IS NOT NULL),
    -- Ended states carry when they ended, live states do not.
    CHECK ((state IN ('revoked', 'expired', 'host_denied')) =
           (ended_at IS NOT NULL)),
    CHECK (state <> 'revoked' OR revoke_reason IS NOT NULL)
);

-- "Revoke this person everywhere now" and the directory watcher.
CREATE INDEX admissions_identity_live ON admissions (identity)
    WHERE state IN ('admitted', 'waiting');
-- The waiting room and attendee lists of one meeting.
CREATE INDEX admissions_meeting_state ON admissions (meeting_id, state);
-- Ending a session ends its admissions (and ON DELETE SET NULL needs it).
CREATE INDEX admissions_session ON admissions (session_hash)
    WHERE session_hash IS NOT NULL;

-- ---- brute-force limits ----------------------------------------------------

-- Kept here rather than in memory so limits hold across nodes. One row per
-- scope and key, updated with INSERT ... ON CONFLICT in the same
-- transaction as the audit record.
CREATE TABLE lockout_counters (
    scope        text NOT NULL
                 CHECK (scope IN ('identity_meeting', 'source', 'meeting')),
    -- identity_meeting: identity + meeting id; source: the address or its
    -- prefix; meeting: the meeting id. Built by the server, opaque here.
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 1024),
    window_start timestamptz NOT NULL DEFAULT now(),
    failures     integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Sweeping counters whose window is long past.
CREATE INDEX lockout_counters_updated ON lockout_counters (updated_at);

-- ---- audit trail -----------------------------------------------------------

-- One row per access decision and per host/admin action. Compliance
-- exports it and verifies it: nothing may change or disappear. The hash
-- chain (prev_hash, hash) is filled in by a later migration, at INSERT
-- time (an UPDATE is refused below), so the columns are nullable.
CREATE TABLE audit_log (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- clock_timestamp(), not now(): now() is the transaction start, and a
    -- decision's record should carry the moment it was written.
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- e.g. join, authz, login, logout, code_rotate, meeting_create,
    -- revoke; open-ended, so a format check instead of a list.
    event_type    text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_.]{0,63}$'),
    outcome       text NOT NULL
                  CHECK (outcome IN ('allow', 'deny', 'error', 'info')),
    reason        text,
    identity      text,
    idp           text,
    meeting_id    uuid,
    matched_group text,
    source_addr   inet,
    -- The X-Forwarded-For chain as received, kept verbatim as evidence.
    forwarded_for text CHECK (length(forwarded_for) <= 2048),
    user_agent    text CHECK (length(user_agent) <= 1024),
    request_id    text,
    node          text,
    -- Both facts of a join decision, whatever the answer was.
    code_ok       boolean,
    member_ok     boolean,
    details       jsonb,
    prev_hash     bytea,
    hash          bytea
);

-- Export by time range.
CREATE INDEX audit_log_at ON audit_log (at);
-- A meeting's failed attempts over time (host view, probing detection).
CREATE INDEX audit_log_meeting_at ON audit_log (meeting_id, at)
    WHERE meeting_id IS NOT NULL;
-- Everything about one person (compliance requests).
CREATE INDEX audit_log_identity_at ON audit_log (identity, at)
    WHERE identity IS NOT NULL;

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit records can only be inserted';
END
$$;

-- Privileges alone do not stop the table owner (roomgate's own role), so
-- the refusal lives in triggers, which apply to every role.
CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
-- And no other role gets a way in through a broad GRANT to PUBLIC.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;

-- ---- webhook outbox ----------------------------------------------------------

-- Webhooks are written in the same transaction as the change they report
-- and delivered afterwards, so none is lost when a node dies or the
-- receiver is down.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    topic           text NOT NULL CHECK (topic ~ '^[a-z][a-z0-9_.]{0,63}$'),
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text
);

-- The deliverer's query: undelivered, due first.
CREATE INDEX outbox_pending ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL;

-- ---- SAML state ----------------------------------------------------------------

-- Assertion IDs seen, kept until the assertion would have expired anyway,
-- so a captured assertion cannot be replayed on any node.
CREATE TABLE saml_replay (
    assertion_id text PRIMARY KEY
                 CHECK (length(assertion_id) BETWEEN 1 AND 256),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX saml_replay_expires ON saml_replay (expires_at);

-- AuthnRequests sent and not yet answered: a response's InResponseTo must
-- name one of these, issued to the same browser, used once.
CREATE TABLE saml_requests (
    request_id   text PRIMARY KEY
                 CHECK (length(request_id) BETWEEN 1 AND 256),
    -- Hash of the random value in the browser's binding cookie.
    binding_hash bytea NOT NULL CHECK (octet_length(binding_hash) = 32),
    -- Where to go after login: a path on our own origin only (no scheme,
    -- no "//host", no backslash that browsers read as a slash).
    return_path  text NOT NULL
                 CHECK (return_path LIKE '/%'
                        AND return_path NOT LIKE '//%'
                        AND strpos(return_path, E'\\') = 0
                        AND length(return_path) <= 2048),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    CHECK (expires_at > created_at)
);

CREATE INDEX saml_requests_expires ON saml_requests (expires_at);
