-- 0015_admission_review_fixes: findings of the admission security review.
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.
--
-- 1. roomgate_admit_record re-checks the session (F8): a session revoked
--    (logout, "revoke everywhere", directory removal) or expired between
--    the attempt's read and its record no longer gets an admission. The
--    row is read FOR SHARE, so a revoke running at the same moment waits
--    for this transaction or this one sees the revoke: either the
--    admission was made before the revoke, or it is refused. Checked only
--    for an attempt that would admit and is not locked, so a "locked"
--    answer costs the same whatever the checks found. The refusal is
--    audited (reason session_revoked) and reported (OUT session_gone).
-- 2. roomgate_lock_key: the identity+meeting lockout key, shortened to a
--    SHA-256 of the identity when the plain key would not fit the
--    counters' 1024-character key (server/admit.c builds the same).
-- 3. An admission whose join token could not be made after it was
--    recorded is ended at once (revoke_reason token_failed): the person
--    was told nobody was admitted (F4: the token is made after the record
--    says "admitted", so a "locked" answer never costs a signature).

-- "<prefix> <identity>", or "<prefix> sha256:<64 hex digits>" when that
-- would be longer than 1024 bytes.
CREATE FUNCTION roomgate_lock_key(p_prefix text, p_identity text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN octet_length(p_prefix) + 1 + octet_length(p_identity)
                     <= 1024
                THEN p_prefix || ' ' || p_identity
                ELSE p_prefix || ' sha256:' ||
                     encode(sha256(convert_to(p_identity, 'UTF8')), 'hex')
           END
$$;

ALTER TABLE admissions DROP CONSTRAINT admissions_revoke_reason_check;
ALTER TABLE admissions ADD CONSTRAINT admissions_revoke_reason_check
    CHECK (revoke_reason IN ('directory_removed', 'directory_disabled',
                             'admin', 'host', 'session_ended',
                             'code_rotated', 'token_failed')) NOT VALID;
ALTER TABLE admissions VALIDATE CONSTRAINT admissions_revoke_reason_check;

-- A new OUT column changes the result type, which CREATE OR REPLACE
-- refuses: dropped and made again with the same arguments. A statement
-- prepared against the old one is planned again and reads its columns by
-- name.
DROP FUNCTION roomgate_admit_record(
    text, text, integer, bigint, boolean, boolean, boolean, integer, bigint,
    bigint[], bigint[], integer, bigint, uuid, uuid, bytea, text, bigint,
    text, text, text, text, text, text, text, text, text, text, boolean,
    boolean, jsonb);

-- As in 0011, plus the session check (see 1. above).
CREATE FUNCTION roomgate_admit_record(
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
        -- is counted.
        PERFORM 1 FROM sessions s
          WHERE s.id_hash = p_session_hash AND s.revoked_at IS NULL
            AND s.expires_at > now()
          FOR SHARE;
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
        VALUES (p_admission_id, p_meeting_id, p_session_hash, p_identity,
                p_matched_group, p_state,
                CASE WHEN p_state = 'admitted' THEN now() END,
                CASE WHEN p_state = 'waiting'
                     THEN now() + make_interval(secs => p_waiting_s) END);
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
