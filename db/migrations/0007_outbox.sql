-- 0007_outbox: what the webhook deliverer (issue 7, item 3) needs beyond
-- the outbox table of 0001.
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.

-- A worker claims a row by setting a lease and posts with no transaction
-- open; a node that dies mid-delivery leaves a lease that runs out, and
-- another node delivers the row again (at least once: receivers dedupe by
-- event id). lease_owner lets only the claimant schedule the retry.
-- dead_at: given up after [webhooks] max_age (kept, never deleted by the
-- deliverer; POST /v1/outbox/{id}:retry queues it again from requeued_at).
ALTER TABLE outbox
    ADD COLUMN lease_until     timestamptz,
    ADD COLUMN lease_owner     text CHECK (length(lease_owner) <= 128),
    ADD COLUMN last_attempt_at timestamptz,
    ADD COLUMN dead_at         timestamptz,
    ADD COLUMN requeued_at     timestamptz,
    ADD CONSTRAINT outbox_last_error_len CHECK (length(last_error) <= 1024);

-- The claim: undelivered, not dead, due first. Replaces 0001's index,
-- which did not leave the dead-lettered rows out.
DROP INDEX outbox_pending;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE delivered_at IS NULL AND dead_at IS NULL;

-- The admin API's and the metrics' view of the dead letters.
CREATE INDEX outbox_dead ON outbox (dead_at, id) WHERE dead_at IS NOT NULL;
