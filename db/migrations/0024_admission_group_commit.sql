-- 0024_admission_group_commit: several admission attempts recorded in one
-- transaction (issue 9, server-side group commit; db/admit_batch.c and
-- db_admit_record_many in db/queries_admit.c). Attempts recorded at the
-- same time on one node pay one round trip, one COMMIT and one WAL flush.
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.
--
-- p_batch is a JSON array of attempts, each an object holding
-- roomgate_admit_record's arguments by name (without the p_ prefix; texts
-- as strings, the lock lengths as bigint[] literals, the session hash in
-- hex). One row comes back per attempt, ord from 1 in array order.
--
-- - Every advisory lock of the batch is taken first, in one order: the
--   identity+meeting keys ascending, then the source keys ascending. A
--   single roomgate_admit_record takes its identity+meeting lock and
--   then its source lock, which is the same order, so two batches (on
--   two nodes) or a batch and a single record never wait on each other
--   in a cycle over these locks. roomgate_admit_record takes them again
--   inside; a lock already held is only counted again.
-- - Then each attempt runs in array (arrival) order in a subtransaction
--   of its own (the BEGIN ... EXCEPTION block): an error raised inside
--   it undoes all of that attempt (its admission row, audit record and
--   counters) and comes back as err_state/err_message, and the next
--   attempt runs. Later attempts see what earlier ones wrote (one
--   transaction, VOLATILE): two attempts of one identity in a batch are
--   counted one after the other, as two single records are.
-- - Errors the block does not catch (a statement timeout, a cancel, the
--   connection lost) and a failed COMMIT undo the whole batch: nothing
--   of it is written and the caller denies every attempt of it.
-- - A deadlock reported inside an attempt (40P01: locks beyond the
--   advisory ones, e.g. a session row a revoke updates) comes back as
--   its err_state; the caller records that attempt again alone.

CREATE FUNCTION roomgate_admit_batch(p_batch jsonb)
RETURNS TABLE (ord integer, err_state text, err_message text,
               locked boolean, retry_at bigint, admitted boolean,
               locked_until bigint, probed boolean, session_gone boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k bigint;
    e record;
    r record;
BEGIN
    FOR k IN SELECT DISTINCT hashtextextended(
                 'roomgate admission ' || (x.v->>'im_key'), 0)
               FROM jsonb_array_elements(p_batch) AS x(v)
              WHERE x.v->>'im_key' IS NOT NULL
              ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(k);
    END LOOP;
    FOR k IN SELECT DISTINCT hashtextextended(
                 'roomgate source ' || (x.v->>'src_key'), 0)
               FROM jsonb_array_elements(p_batch) AS x(v)
              WHERE x.v->>'src_key' IS NOT NULL
              ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(k);
    END LOOP;
    FOR e IN SELECT t.v, t.n
               FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS t(v, n)
              ORDER BY t.n LOOP
        ord := e.n;
        err_state := NULL;
        err_message := NULL;
        BEGIN
            SELECT * INTO r FROM roomgate_admit_record(
                e.v->>'im_key', e.v->>'src_key',
                (e.v->>'max_failures')::integer,
                (e.v->>'window_s')::bigint,
                (e.v->>'lockable')::boolean, (e.v->>'failure')::boolean,
                (e.v->>'count_source')::boolean,
                (e.v->>'src_max')::integer, (e.v->>'quiet_s')::bigint,
                (e.v->>'im_lock_s')::bigint[],
                (e.v->>'src_lock_s')::bigint[],
                (e.v->>'probe_identities')::integer,
                (e.v->>'probe_window_s')::bigint,
                (e.v->>'admission_id')::uuid, (e.v->>'meeting_id')::uuid,
                decode(e.v->>'session_hash', 'hex'), e.v->>'state',
                (e.v->>'waiting_s')::bigint, e.v->>'outcome',
                e.v->>'reason', e.v->>'identity', e.v->>'idp',
                e.v->>'matched_group', e.v->>'source_addr',
                e.v->>'forwarded_for', e.v->>'user_agent',
                e.v->>'request_id', e.v->>'node',
                (e.v->>'code_ok')::boolean, (e.v->>'member_ok')::boolean,
                (e.v->>'details')::jsonb);
            locked := r.locked;
            retry_at := r.retry_at;
            admitted := r.admitted;
            locked_until := r.locked_until;
            probed := r.probed;
            session_gone := r.session_gone;
        EXCEPTION WHEN OTHERS THEN
            err_state := SQLSTATE;
            err_message := SQLERRM;
            locked := NULL;
            retry_at := NULL;
            admitted := NULL;
            locked_until := NULL;
            probed := NULL;
            session_gone := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
