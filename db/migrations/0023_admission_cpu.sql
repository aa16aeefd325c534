-- 0023_admission_cpu: what an admission costs PostgreSQL (issue 9),
-- measured with pgbench calling roomgate_admit_record at 16 and 64
-- clients over 8 meetings and with the bench (README "Benchmarks").
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.
--
-- 1. roomgate_lock_key (0015) was IMMUTABLE STRICT with a CASE body, so
--    the planner never inlined it (a strict function is inlined only when
--    its body is strict, and CASE is not; an immutable one only when its
--    body is, and convert_to is stable): the admission's read ran it as a
--    SQL function call, planned and executed on every attempt, a third of
--    that read's PostgreSQL CPU. Declared STABLE and not STRICT it is
--    inlined into the read's lockout lookup; the value is the same for
--    every input, NULL included (the body yields NULL for a NULL input).
--
-- 2. admissions.meeting_id lost its foreign key. Every admission row made
--    the key check lock the meeting row FOR KEY SHARE: with many people
--    joining one meeting at once those share locks pile up on one row, so
--    nearly every admission made a new MultiXact and rewrote the meeting
--    row's lock (one MultiXact per admission at 64 clients over 8
--    meetings, and one page holding every meeting row). What the key
--    guaranteed is kept another way:
--    - an admission names an existing meeting: roomgate_admit_record
--      inserts the row only when the meeting is there, under a shared
--      advisory lock of the meeting (below), and fails with
--      foreign_key_violation (23503) as the key did when it is not;
--    - deleting a meeting deletes its admissions (was ON DELETE CASCADE):
--      an AFTER DELETE trigger takes the meeting's advisory lock
--      exclusively -- so it waits for admissions of it still being
--      recorded, and admissions starting later wait for the deletion and
--      then find no meeting -- and deletes its admissions with a snapshot
--      taken after the wait. roomgate never deletes meetings (it archives
--      them); this is for a deletion by hand. A deletion run in a
--      REPEATABLE READ transaction does not see admissions committed
--      after its snapshot: delete meetings in READ COMMITTED.
--    Rows written by hand into admissions are not checked any more.
--    admissions.session_hash keeps its key: the attempt already holds the
--    session row FOR SHARE (0015), so its check adds no lock of another
--    transaction's.

-- ---- 1. the lockout key, inlinable ------------------------------------------

CREATE OR REPLACE FUNCTION roomgate_lock_key(p_prefix text, p_identity text)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN octet_length(p_prefix) + 1 + octet_length(p_identity)
                     <= 1024
                THEN p_prefix || ' ' || p_identity
                ELSE p_prefix || ' sha256:' ||
                     encode(sha256(convert_to(p_identity, 'UTF8')), 'hex')
           END
$$;

-- ---- 2. the meeting reference without a row lock ----------------------------

ALTER TABLE admissions DROP CONSTRAINT admissions_meeting_id_fkey;

-- The advisory lock key of a meeting's admissions (a name space of its
-- own: the attempt's locks hash 'roomgate admission ...' and 'roomgate
-- source ...').
CREATE FUNCTION roomgate_meeting_lock(p_meeting_id uuid)
RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT hashtextextended('roomgate meeting ' || p_meeting_id::text, 0)
$$;

CREATE FUNCTION roomgate_meeting_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(roomgate_meeting_lock(OLD.id));
    DELETE FROM admissions WHERE meeting_id = OLD.id;
    RETURN NULL;
END
$$;

-- Its search_path pinned (catalogs, this schema, then pg_temp): a
-- session's temporary table named admissions cannot stand in for the
-- one it deletes from.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION roomgate_meeting_deleted() '
                   'SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
END
$$;

CREATE TRIGGER meetings_delete_admissions
    AFTER DELETE ON meetings
    FOR EACH ROW EXECUTE FUNCTION roomgate_meeting_deleted();

-- As in 0015, but the admission row is written only when its meeting
-- exists, under the meeting's shared advisory lock (taken with the
-- session check, the statement before the INSERT, so the INSERT's
-- snapshot sees any deletion that held the lock).
CREATE OR REPLACE FUNCTION roomgate_admit_record(
    p_im_key text, p_src_key text, p_max_failures integer,
    p_window_s bigint, p_lockable boolean, p_failure boolean,
    p_count_source boolean, p_src_max integer, p_quiet_s bigint,
    p_im_lock_s bigint[], p_src_lock_s bigint[],
    p_probe_identities integer, p_probe_window_s bigint,
    p_admission_id uuid, p_meeting_id uuid, p_session_hash bytea,
    p_state text, p_waiting_s bigint,
    p_outcome text, p_reason text, p_identity text, p_idp text,
    p_matched_group text, p_source_addr text, p_forwarded_for text,
    p_user_agent text, p_request_id text, p_node text,
    p_code_ok boolean, p_member_ok boolean, p_details jsonb,
    OUT locked boolean, OUT retry_at bigint, OUT admitted boolean,
    OUT locked_until bigint, OUT probed boolean, OUT session_gone boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_outcome text := p_outcome;
    v_reason text := p_reason;
    v_failure boolean := p_failure;
    v_src_until bigint;
    v_written bigint;
BEGIN
    session_gone := false;
    PERFORM pg_advisory_xact_lock(
        hashtextextended('roomgate admission ' || p_im_key, 0));
    IF p_src_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(
            hashtextextended('roomgate source ' || p_src_key, 0));
    END IF;
    SELECT coalesce(max(ceil(extract(epoch FROM CASE
               WHEN c.locked_until > now() THEN c.locked_until
               WHEN c.scope = 'identity_meeting' AND p_max_failures > 0
                    AND c.failures >= p_max_failures
                    AND c.window_start > now()
                        - make_interval(secs => p_window_s)
               THEN c.window_start + make_interval(secs => p_window_s)
               END))), 0)::bigint
      INTO retry_at
      FROM lockout_counters c
     WHERE (c.scope = 'identity_meeting' AND c.key = p_im_key)
        OR (c.scope = 'source' AND c.key = p_src_key);
    locked := p_lockable AND retry_at > 0;
    IF locked THEN
        -- The answer is the lock, whatever the checks found (they stay
        -- in the record).
        v_outcome := 'deny';
        v_reason := 'locked';
        v_failure := false;
    ELSE
        retry_at := 0;
    END IF;
    IF v_outcome = 'allow' THEN
        -- Still signed in? (F8) Not a failure of the person's: nothing
        -- is counted. The meeting's shared lock comes with it (see 2.).
        PERFORM pg_advisory_xact_lock_shared(
                    roomgate_meeting_lock(p_meeting_id))
           FROM sessions s
          WHERE s.id_hash = p_session_hash AND s.revoked_at IS NULL
            AND s.expires_at > now()
          FOR SHARE OF s;
        IF NOT FOUND THEN
            v_outcome := 'deny';
            v_reason := 'session_revoked';
            v_failure := false;
            session_gone := true;
        END IF;
    END IF;
    admitted := v_outcome = 'allow';
    IF admitted THEN
        -- A waiting entry ends by itself after p_waiting_s.
        INSERT INTO admissions (id, meeting_id, session_hash, identity,
                                matched_group, state, admitted_at,
                                expires_at)
        SELECT p_admission_id, m.id, p_session_hash, p_identity,
               p_matched_group, p_state,
               CASE WHEN p_state = 'admitted' THEN now() END,
               CASE WHEN p_state = 'waiting'
                    THEN now() + make_interval(secs => p_waiting_s) END
          FROM meetings m
         WHERE m.id = p_meeting_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'meeting % does not exist', p_meeting_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
    INSERT INTO audit_log (event_type, outcome, reason, identity, idp,
                           meeting_id, matched_group, source_addr,
                           forwarded_for, user_agent, request_id, node,
                           code_ok, member_ok, details)
    VALUES ('admission', v_outcome, v_reason, p_identity, p_idp,
            p_meeting_id, p_matched_group, p_source_addr::inet,
            left(p_forwarded_for, 2048), left(p_user_agent, 1024),
            p_request_id, p_node, p_code_ok, p_member_ok,
            coalesce(p_details, '{}'::jsonb) || CASE WHEN admitted
                THEN jsonb_build_object('admission_id',
                                        p_admission_id::text)
                ELSE '{}'::jsonb END);
    locked_until := 0;
    probed := false;
    IF NOT v_failure THEN
        RETURN;
    END IF;
    locked_until := roomgate_count_failure('identity_meeting', p_im_key,
                                           p_max_failures, p_window_s,
                                           p_quiet_s, p_im_lock_s);
    IF p_src_key IS NOT NULL AND p_count_source THEN
        v_src_until := roomgate_count_failure('source', p_src_key,
                                              p_src_max, p_window_s,
                                              p_quiet_s, p_src_lock_s);
        locked_until := greatest(locked_until, v_src_until);
    END IF;
    IF p_meeting_id IS NULL OR p_probe_identities <= 0 THEN
        RETURN;
    END IF;
    -- The meeting flagged as probed when enough distinct identities
    -- failed there lately; once (probed_at set), with the waiting room on
    -- and the host told. A meeting already flagged skips the count.
    WITH n AS (
        SELECT count(DISTINCT a.identity) AS ids
          FROM audit_log a
         WHERE (SELECT m0.probed_at IS NULL FROM meetings m0
                 WHERE m0.id = p_meeting_id)
           AND a.meeting_id = p_meeting_id
           AND a.event_type = 'admission' AND a.outcome = 'deny'
           AND a.reason IN ('malformed', 'not_member', 'invalid_code')
           AND a.at > now() - make_interval(secs => p_probe_window_s)),
    f AS (
        UPDATE meetings m SET probed_at = now(), waiting_room = true
          FROM n
         WHERE m.id = p_meeting_id AND m.probed_at IS NULL
           AND n.ids >= p_probe_identities
        RETURNING m.id, m.host_identity, m.title, n.ids),
    o AS (
        INSERT INTO outbox (topic, payload)
        SELECT 'meeting.probed', jsonb_build_object('meeting_id', f.id,
               'host', f.host_identity, 'title', f.title,
               'failed_identities', f.ids, 'window_s', p_probe_window_s)
          FROM f
        RETURNING id),
    au AS (
        INSERT INTO audit_log (event_type, outcome, reason, meeting_id,
                               node, details)
        SELECT 'meeting.probed', 'info', 'probing', f.id, p_node,
               jsonb_build_object('failed_identities', f.ids,
                                  'window_s', p_probe_window_s)
          FROM f
        RETURNING seq)
    SELECT (SELECT count(*) FROM o) + (SELECT count(*) FROM au)
      INTO v_written;
    probed := v_written > 0;
END
$$;
