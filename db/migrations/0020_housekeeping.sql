-- 0020_housekeeping: indexes for the housekeeping sweep (db/queries_sweep.c),
-- which deletes rows that no longer mean anything, oldest first, in
-- bounded batches: delivered webhook events, ended admissions past the
-- audit retention. (Expired sessions, SAML requests and replay entries
-- already have their expires_at indexes from 0001.)
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.

CREATE INDEX outbox_delivered ON outbox (delivered_at)
    WHERE delivered_at IS NOT NULL;

CREATE INDEX admissions_ended ON admissions (ended_at)
    WHERE ended_at IS NOT NULL;
