-- The admission's recording transaction in one round trip (issue 9):
-- roomgate_admit_record is one statement for the client, run as its own
-- transaction, and PL/pgSQL keeps its plans per connection. VOLATILE on
-- purpose: in READ COMMITTED each statement inside takes a fresh
-- snapshot, so the read after the advisory locks sees what the attempt
-- that held them last committed.

-- Counts one failure on (scope, key): a new window once the old one has
-- passed, nothing while a lock is in force. When the count reaches
-- p_max, locks for p_lock_s[lock_count + 1] seconds (the last element
-- for any later lock) and starts a fresh window. lock_count is forgotten
-- after p_quiet_s without failures. Returns the end of the lock set here
-- (epoch seconds), 0 for none. The row lock of the upsert is held to
-- COMMIT, so racing attempts are counted one after the other.
CREATE FUNCTION roomgate_count_failure(p_scope text, p_key text,
                                       p_max integer, p_window_s bigint,
                                       p_quiet_s bigint, p_lock_s bigint[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n_failures integer;
    n_locks integer;
    is_locked boolean;
    lock_end bigint;
BEGIN
    INSERT INTO lockout_counters AS c (scope, key, failures)
    VALUES (p_scope, p_key, 1)
    ON CONFLICT (scope, key) DO UPDATE SET
        lock_count = CASE WHEN c.updated_at < now()
                               - make_interval(secs => p_quiet_s)
                          THEN 0 ELSE c.lock_count END,
        failures = CASE WHEN c.locked_until > now() THEN c.failures
                        WHEN c.window_start < now()
                             - make_interval(secs => p_window_s)
                        THEN 1 ELSE c.failures + 1 END,
        window_start = CASE WHEN c.locked_until > now() THEN c.window_start
                            WHEN c.window_start < now()
                                 - make_interval(secs => p_window_s)
                            THEN now() ELSE c.window_start END,
        updated_at = now()
    RETURNING c.failures, c.lock_count,
              (c.locked_until IS NOT NULL AND c.locked_until > now())
      INTO n_failures, n_locks, is_locked;
    IF is_locked OR n_failures < p_max THEN
        RETURN 0;
    END IF;
    UPDATE lockout_counters c
       SET lock_count = c.lock_count + 1,
           locked_until = now() + make_interval(secs =>
               p_lock_s[least(n_locks + 1, array_length(p_lock_s, 1))]),
           failures = 0, window_start = now(), updated_at = now()
     WHERE c.scope = p_scope AND c.key = p_key
    RETURNING ceil(extract(epoch FROM c.locked_until))::bigint
      INTO lock_end;
    RETURN coalesce(lock_end, 0);
END
$$;

-- Records one admission attempt (db_admit_record in db/queries_admit.c):
-- serialized per identity+meeting, then per source address (advisory
-- transaction locks, always in that order, so two attempts never wait for
-- each other), the lock state read again under them -- a lockable attempt
-- that finds a lock in force (or a full failure window) is recorded as a
-- 'locked' denial -- then the admission row (outcome allow), the audit
-- record (a plain INSERT), the failure counters and the probing check.
-- Any error rolls all of it back: no admission without its record.
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
    OUT locked_until bigint, OUT probed boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_outcome text := p_outcome;
    v_reason text := p_reason;
    v_failure boolean := p_failure;
    v_src_until bigint;
    v_written bigint;
BEGIN
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
