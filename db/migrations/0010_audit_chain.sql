-- 0010_audit_chain: tamper evidence for audit_log -- the hash chain, the
-- signed checkpoints and the retention purges (server/audit_seal.c; the
-- encoding is written up in README.md, "Audit trail").
--
-- Why beside audit_log and not in its prev_hash/hash columns: audit rows
-- cannot be updated (the trigger below), and filling the hash at INSERT
-- time would make every admission wait for the previous record's hash --
-- one global lock on the hot path. Instead the hot path stays a plain
-- INSERT, and one sealer (one node at a time) follows committed records in
-- seq order and appends one audit_chain row per record, then a signed
-- checkpoint. Both tables are append-only like audit_log itself.

CREATE TABLE audit_chain (
    -- audit_log.seq of the record (no foreign key: a deleted record must
    -- leave its chain entry behind, as evidence).
    seq          bigint PRIMARY KEY,
    -- 1, 2, 3... in seq order since the first record ever sealed, across
    -- purges; a checkpoint's count is the pos of its last record.
    pos          bigint NOT NULL UNIQUE CHECK (pos >= 1),
    content_hash bytea NOT NULL CHECK (octet_length(content_hash) = 32),
    hash         bytea NOT NULL CHECK (octet_length(hash) = 32),
    sealed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE audit_checkpoints (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kid        text NOT NULL CHECK (kid ~ '^[0-9a-f]{16}$'),
    last_seq   bigint NOT NULL UNIQUE,
    count      bigint NOT NULL CHECK (count >= 1),
    last_hash  bytea NOT NULL CHECK (octet_length(last_hash) = 32),
    created_at timestamptz NOT NULL,
    node       text CHECK (length(node) <= 256),
    -- The signed text itself; the columns above repeat it for queries,
    -- and verify checks that they agree.
    body       text NOT NULL CHECK (length(body) <= 1024),
    sig        bytea NOT NULL CHECK (octet_length(sig) = 64)
);

-- Retention: records up to a checkpoint's last_seq were deleted; verify
-- starts from that (signed) checkpoint's hash.
CREATE TABLE audit_purges (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    upto_seq      bigint NOT NULL,
    checkpoint_id bigint NOT NULL REFERENCES audit_checkpoints (id),
    cutoff        timestamptz NOT NULL,
    records       bigint NOT NULL CHECK (records >= 0),
    node          text CHECK (length(node) <= 256),
    at            timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX audit_purges_upto ON audit_purges (upto_seq);

-- audit_log and audit_chain: no UPDATE, no TRUNCATE, and DELETE only of
-- records a retention purge (audit_purge below) has recorded first, inside
-- that purge. The service role owns the tables (it runs the migrations),
-- so the rule lives in triggers, which apply to every role but a
-- superuser who disables them -- which the chain and the signed
-- checkpoints then reveal.
CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    upto bigint;
BEGIN
    IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' THEN
        upto := nullif(current_setting('roomgate.audit_purge_upto', true),
                       '')::bigint;
        IF upto IS NOT NULL AND OLD.seq <= upto AND OLD.seq <= (
               SELECT coalesce(max(p.upto_seq), 0) FROM audit_purges p) THEN
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

CREATE TRIGGER audit_chain_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_chain_no_truncate
    BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- Checkpoints and purges never change.
CREATE FUNCTION audit_refuse_any_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME,
        TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_any_change();
CREATE TRIGGER audit_checkpoints_no_truncate
    BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_any_change();
CREATE TRIGGER audit_purges_append_only
    BEFORE UPDATE OR DELETE ON audit_purges
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_any_change();
CREATE TRIGGER audit_purges_no_truncate
    BEFORE TRUNCATE ON audit_purges
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_any_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_chain, audit_checkpoints,
    audit_purges FROM PUBLIC;

-- The retention purge: deletes every record up to checkpoint p_checkpoint's
-- last_seq, and only if each of them is sealed in the chain and older
-- than p_cutoff; records the purge first (verify starts from its
-- checkpoint) and writes an audit record of its own. Returns how many
-- records went.
CREATE FUNCTION audit_purge(p_checkpoint bigint, p_cutoff timestamptz,
                            p_node text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    c audit_checkpoints%ROWTYPE;
    done bigint;
    n bigint;
BEGIN
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
