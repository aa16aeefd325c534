-- 0005_admission: what the admission decision (issue 6) needs beyond 0001.
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.

-- How many times an identity+meeting has been locked: each new lock lasts
-- twice as long as the previous one (capped by the server). Forgotten
-- when the counter has been quiet for the server's longest lock.
ALTER TABLE lockout_counters
    ADD COLUMN lock_count integer NOT NULL DEFAULT 0 CHECK (lock_count >= 0);

-- Probing detection counts the distinct identities with failed attempts
-- at one meeting in a recent window, from the audit trail itself.
CREATE INDEX audit_log_admission_denied ON audit_log (meeting_id, at)
    WHERE event_type = 'admission' AND outcome = 'deny';
