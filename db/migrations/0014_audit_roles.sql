-- 0014_audit_roles: the audit trail's findings of the security review
-- (issue 8): a purge the service role cannot forge, role separation, and
-- record times the service role cannot choose. README.md, "Audit trail".
--
-- The triggers bind every role, but a table's owner (and a superuser) can
-- switch them off, so the real line is drawn by privileges: production
-- runs the migrations as an owner role and the service as a member of the
-- NOLOGIN group role roomgate_service, granted only what it needs
-- (roomgate_grant_service() below). What the owner can still do is
-- caught by `roomgate audit verify` and its external anchors.

-- ---- record time ----------------------------------------------------------

-- at is the moment the row was written, whatever the INSERT said, for
-- every role that does not own audit_log. The owner is left alone: it can
-- switch the trigger off anyway, and test fixtures seed history as it.
CREATE FUNCTION audit_log_stamp_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_has_role(current_user,
                       (SELECT c.relowner FROM pg_class c
                        WHERE c.oid = TG_RELID), 'MEMBER') THEN
        NEW.at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_stamp_at
    BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_stamp_at();

-- ---- the retention floor ----------------------------------------------------

-- The youngest records a purge may delete are min_retention old, whatever
-- cutoff its caller passes. One row; only the owner may change it, and a
-- change is an audit record of its own.
CREATE TABLE audit_policy (
    one           boolean PRIMARY KEY DEFAULT true CHECK (one),
    min_retention interval NOT NULL DEFAULT interval '1 day'
                  CHECK (min_retention >= interval '0')
);
INSERT INTO audit_policy DEFAULT VALUES;

CREATE FUNCTION audit_policy_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'audit_policy has one row: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO audit_log (event_type, outcome, reason, identity, details)
        VALUES ('audit.policy', 'info', 'min_retention', current_user,
                jsonb_build_object('old', OLD.min_retention::text,
                                   'new', NEW.min_retention::text));
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_policy_one_row
    BEFORE INSERT OR DELETE ON audit_policy
    FOR EACH ROW EXECUTE FUNCTION audit_policy_changed();
CREATE TRIGGER audit_policy_audited
    AFTER UPDATE ON audit_policy
    FOR EACH ROW EXECUTE FUNCTION audit_policy_changed();

-- ---- deletes only inside this transaction's own purge ---------------------

-- As in 0010, but the purge row must have been written by the current
-- transaction and name exactly the seq the switch names: an old purge
-- row plus the (session-settable) switch opens nothing any more.
CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    upto bigint;
BEGIN
    IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' THEN
        upto := nullif(current_setting('roomgate.audit_purge_upto', true),
                       '')::bigint;
        IF upto IS NOT NULL AND OLD.seq <= upto AND EXISTS (
               SELECT 1 FROM audit_purges p
               WHERE p.upto_seq = upto
                 AND p.xmin = pg_current_xact_id()::xid) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME,
        TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit records can only be inserted; old ones go '
                     'through the retention purge (roomgate audit purge)';
END
$$;

-- ---- the purge --------------------------------------------------------------

-- As in 0010, plus: the cutoff is at least audit_policy.min_retention in
-- the past (a caller cannot pass now() + 1 day), and it runs as the owner
-- (SECURITY DEFINER) so that a separated service role may purge without
-- any DELETE or audit_purges privilege of its own.
CREATE OR REPLACE FUNCTION audit_purge(p_checkpoint bigint,
                                       p_cutoff timestamptz,
                                       p_node text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    c audit_checkpoints%ROWTYPE;
    done bigint;
    n bigint;
    keep interval;
BEGIN
    SELECT min_retention INTO keep FROM audit_policy;
    keep := coalesce(keep, interval '1 day');
    IF p_cutoff IS NULL OR p_cutoff > clock_timestamp() - keep THEN
        RAISE EXCEPTION 'audit purge: the cutoff % is too recent: records '
                        'younger than % are kept (audit_policy.'
                        'min_retention)', p_cutoff, keep
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'pass an older --before, or raise [audit] '
                         'retention_days';
    END IF;
    SELECT * INTO c FROM audit_checkpoints WHERE id = p_checkpoint;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit purge: no checkpoint %', p_checkpoint;
    END IF;
    SELECT coalesce(max(upto_seq), 0) INTO done FROM audit_purges;
    IF c.last_seq <= done THEN
        RETURN 0;
    END IF;
    IF EXISTS (SELECT 1 FROM audit_log a
               WHERE a.seq <= c.last_seq AND a.seq > done
                 AND (a.at >= p_cutoff OR NOT EXISTS (
                      SELECT 1 FROM audit_chain k WHERE k.seq = a.seq))) THEN
        RAISE EXCEPTION 'audit purge: records up to seq % are not all '
                        'sealed and older than %', c.last_seq, p_cutoff;
    END IF;
    SELECT count(*) INTO n FROM audit_log
        WHERE seq <= c.last_seq AND seq > done;
    INSERT INTO audit_purges (upto_seq, checkpoint_id, cutoff, records, node)
        VALUES (c.last_seq, c.id, p_cutoff, n, p_node);
    PERFORM set_config('roomgate.audit_purge_upto', c.last_seq::text, true);
    DELETE FROM audit_log WHERE seq <= c.last_seq;
    DELETE FROM audit_chain WHERE seq <= c.last_seq;
    PERFORM set_config('roomgate.audit_purge_upto', '', true);
    INSERT INTO audit_log (event_type, outcome, reason, node, details)
        VALUES ('audit.purge', 'info', 'retention', p_node,
                jsonb_build_object('upto_seq', c.last_seq,
                                   'checkpoint', c.id, 'records', n,
                                   'cutoff', p_cutoff));
    RETURN n;
END
$$;

-- A SECURITY DEFINER function must not find a caller's temporary tables
-- first: this schema, then pg_temp last.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_purge(bigint, timestamptz, text) '
                   'SET search_path = %I, pg_temp', current_schema());
END
$$;

REVOKE ALL ON FUNCTION audit_purge(bigint, timestamptz, text) FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_policy FROM PUBLIC;

-- ---- role separation --------------------------------------------------------

-- Grants the group role roomgate_service what the service needs, when a
-- DBA has created it (CREATE ROLE roomgate_service NOLOGIN; GRANT
-- roomgate_service TO <the service's login role>): on the audit tables
-- INSERT and SELECT only (audit_purges and audit_policy: SELECT), on the
-- rest the usual four, and EXECUTE on audit_purge. Run by this migration;
-- run it again as the owner (SELECT roomgate_grant_service()) when the
-- role is created later. Tables of later migrations get the same through
-- default privileges; a later audit table revokes what it must.
CREATE FUNCTION roomgate_grant_service() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    svc constant text := 'roomgate_service';
    sch text := current_schema();
    t record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = svc) THEN
        RETURN 'no role ' || svc || ': nothing granted';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', sch, svc);
    FOR t IN SELECT c.relname, c.relkind FROM pg_class c
             WHERE c.relnamespace = sch::regnamespace
               AND c.relkind IN ('r', 'p', 'v', 'S') LOOP
        IF t.relkind = 'S' THEN
            EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %I.%I TO %I',
                           sch, t.relname, svc);
        ELSIF t.relname IN ('audit_log', 'audit_chain', 'audit_checkpoints',
                            'audit_exports') THEN
            EXECUTE format('GRANT SELECT, INSERT ON %I.%I TO %I', sch,
                           t.relname, svc);
        ELSIF t.relname IN ('audit_purges', 'audit_policy',
                            'schema_migrations') THEN
            EXECUTE format('GRANT SELECT ON %I.%I TO %I', sch, t.relname,
                           svc);
        ELSE
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE '
                           'ON %I.%I TO %I', sch, t.relname, svc);
        END IF;
    END LOOP;
    EXECUTE format('GRANT EXECUTE ON FUNCTION %I.audit_purge(bigint, '
                   'timestamptz, text) TO %I', sch, svc);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, '
                   'INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO %I', sch,
                   svc);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, '
                   'SELECT ON SEQUENCES TO %I', sch, svc);
    RETURN 'granted to ' || svc;
END
$$;

REVOKE ALL ON FUNCTION roomgate_grant_service() FROM PUBLIC;
SELECT roomgate_grant_service();
