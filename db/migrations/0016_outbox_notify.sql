-- 0016_outbox_notify: wake the webhook deliverers when an event is written.
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.
--
-- Every node's deliverer keeps one connection in LISTEN roomgate_outbox
-- (server/webhooks.c) and wakes its workers when a notification comes,
-- instead of waiting for their next poll ([webhooks] poll_interval_ms).
-- NOTIFY is transactional: it is sent when the transaction that wrote the
-- outbox row commits, never for one that rolls back, so a woken worker
-- finds the row. Per row, not per statement: a statement-level trigger
-- would also fire for the hot path's INSERT ... SELECT that inserts
-- nothing, and a notifying commit takes a cluster-wide lock. PostgreSQL
-- folds equal notifications within a transaction; the payload is empty
-- because a worker claims whatever is due anyway. The poll stays as the fallback:
-- a notification lost with a LISTEN connection loses no event, the row
-- stays in the outbox until a worker claims it.
CREATE FUNCTION roomgate_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('roomgate_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION roomgate_outbox_notify();
