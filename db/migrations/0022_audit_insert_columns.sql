-- 0022_audit_insert_columns: a security review finding (F1) against 0014.
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.
--
-- 1. The separated service role could still choose a record's time and
--    seq: audit_log_stamp_at() asked an unqualified pg_class, which a
--    session's temporary table of that name shadows (pg_temp is searched
--    before pg_catalog unless the path names it), and INSERT ...
--    OVERRIDING SYSTEM VALUE needs no privilege beyond INSERT, so a record
--    could be placed at any seq (one far ahead would leave the sealer
--    waiting behind it). The service now gets INSERT on audit_log's
--    columns except seq, at and the unused prev_hash/hash: naming any of
--    them is "permission denied"; every record's seq is the identity's and
--    its time the insert's.
-- 2. The audit triggers' functions name the catalogs qualified, and those
--    that read tables of this schema run with a pinned search_path
--    (pg_catalog, this schema, then pg_temp), so no temporary table can
--    stand in for what they read. (Functions and operators are never
--    looked up in pg_temp; only relations and types are. The stamp
--    trigger, on every insert, reads only the qualified catalog, so it
--    goes without the per-call SET.)

CREATE OR REPLACE FUNCTION audit_log_stamp_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_catalog.pg_has_role(current_user,
                       (SELECT c.relowner FROM pg_catalog.pg_class c
                        WHERE c.oid = TG_RELID), 'MEMBER') THEN
        NEW.at := pg_catalog.clock_timestamp();
    END IF;
    RETURN NEW;
END
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_log_refuse_change() '
                   'SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION audit_refuse_any_change() '
                   'SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION audit_policy_changed() '
                   'SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
END
$$;

-- As in 0014, but audit_log's INSERT is granted column by column: every
-- column but seq, at, prev_hash and hash, as they are when this runs (a
-- migration that adds a column to audit_log calls this again).
CREATE OR REPLACE FUNCTION roomgate_grant_service() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    svc constant text := 'roomgate_service';
    sch text := current_schema();
    t record;
    cols text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                   WHERE rolname = svc) THEN
        RETURN 'no role ' || svc || ': nothing granted';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', sch, svc);
    FOR t IN SELECT c.relname, c.relkind FROM pg_catalog.pg_class c
             WHERE c.relnamespace = sch::regnamespace
               AND c.relkind IN ('r', 'p', 'v', 'S') LOOP
        IF t.relkind = 'S' THEN
            EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %I.%I TO %I',
                           sch, t.relname, svc);
        ELSIF t.relname = 'audit_log' THEN
            SELECT string_agg(format('%I', a.attname), ', '
                              ORDER BY a.attnum)
              INTO cols
              FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = format('%I.%I', sch, t.relname)::regclass
               AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attname NOT IN ('seq', 'at', 'prev_hash', 'hash');
            EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON '
                           '%I.%I FROM %I', sch, t.relname, svc);
            EXECUTE format('GRANT SELECT ON %I.%I TO %I', sch, t.relname,
                           svc);
            EXECUTE format('GRANT INSERT (%s) ON %I.%I TO %I', cols, sch,
                           t.relname, svc);
        ELSIF t.relname IN ('audit_chain', 'audit_checkpoints',
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
