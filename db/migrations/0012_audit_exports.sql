-- 0012_audit_exports: finished audit exports and their signed manifests.
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.
--
-- An export streams its body first; the manifest (count, SHA-256 of the
-- body, last checkpoint, Ed25519 signature) can only be made once the
-- last byte has gone out. It is kept here, as the exact signed text, so
-- the client fetches it afterwards from any node
-- (GET /v1/audit/exports/{id}/manifest). The export itself is also an
-- audit record ("audit.export").
CREATE TABLE audit_exports (
    id           uuid PRIMARY KEY,
    requested_by text NOT NULL CHECK (requested_by <> ''),
    format       text NOT NULL CHECK (format IN ('csv', 'jsonl')),
    manifest     text NOT NULL CHECK (length(manifest) <= 65536),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Failed-attempt analytics across all meetings read admission denials
-- by time (the per-meeting view has audit_log_admission_denied).
CREATE INDEX audit_log_admission_at ON audit_log (at)
    WHERE event_type = 'admission';
