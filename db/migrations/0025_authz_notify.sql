-- 0025_authz_notify: tell every node when a forward-auth "yes" may have
-- become a "no" (issue 9).
--
-- Runs in one transaction (db/migrate.c); never edit once shipped.
--
-- Each node keeps the database part of recent positive /v1/authz
-- decisions in memory (server/authz_sessions.c: a live session holding an
-- admitted admission to a meeting, with the meeting's groups and invitee
-- fact) and drops them when one of these notifications arrives on its
-- LISTEN roomgate_authz connection. Payloads:
--   s <64 hex digits>  everything cached for this session (its id hash)
--   m <uuid>           everything cached for this meeting
--   *                  everything
-- Per row, on the rows and columns a cached "yes" was read from; the
-- frequent writes that cannot turn a "yes" into a "no" do not notify (a
-- session's last_seen_at moving forward, an admission's token pickup, a
-- new session or admission). NOTIFY is transactional: it is sent when the
-- writing transaction commits, so a node that re-reads after it sees the
-- change. A node whose LISTEN connection is down answers from the
-- database only, so a notification lost with a connection loses nothing.
--
-- Every path that ends access writes one of these rows: logout and IdP
-- logout, the admin's revoke, the directory watcher, a host ending an
-- admission, housekeeping (expired sessions and admissions swept), a
-- meeting archived, deleted or changed, an invitee removed -- whoever
-- writes it, roomgate or a hand-written statement.

CREATE FUNCTION roomgate_authz_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        -- TRUNCATE.
        PERFORM pg_notify('roomgate_authz', '*');
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'sessions' THEN
        PERFORM pg_notify('roomgate_authz', 's ' || encode(OLD.id_hash, 'hex'));
    ELSIF TG_TABLE_NAME = 'admissions' THEN
        PERFORM pg_notify('roomgate_authz',
                          's ' || encode(OLD.session_hash, 'hex'));
    ELSIF TG_TABLE_NAME = 'meetings' THEN
        PERFORM pg_notify('roomgate_authz', 'm ' || OLD.id::text);
    ELSIF TG_TABLE_NAME = 'meeting_invitees' THEN
        -- An invitee added can turn a "no" into a "yes" only; dropping
        -- the meeting's entries keeps every node's view exact anyway.
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('roomgate_authz', 'm ' || OLD.meeting_id::text);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('roomgate_authz', 'm ' || NEW.meeting_id::text);
        END IF;
    ELSE
        PERFORM pg_notify('roomgate_authz', '*');
    END IF;
    RETURN NULL;
END
$$;

-- Its search_path pinned, as roomgate_meeting_deleted (0023).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION roomgate_authz_notify() '
                   'SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
END
$$;

-- Sessions: ended (revoked_at), shortened or moved (expires_at, identity,
-- IdP, the hash itself), made to look idle (last_seen_at going back), or
-- deleted. last_seen_at moving forward is the touch: no notification.
CREATE TRIGGER sessions_authz_notify_update
    AFTER UPDATE ON sessions FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.identity IS DISTINCT FROM NEW.identity
          OR OLD.idp_entity_id IS DISTINCT FROM NEW.idp_entity_id
          OR OLD.id_hash IS DISTINCT FROM NEW.id_hash
          OR NEW.last_seen_at < OLD.last_seen_at)
    EXECUTE FUNCTION roomgate_authz_notify();
CREATE TRIGGER sessions_authz_notify_delete
    AFTER DELETE ON sessions FOR EACH ROW
    EXECUTE FUNCTION roomgate_authz_notify();

-- Admissions: only an admitted one bound to a session backs a cached
-- "yes"; it notifies when it ends, expires sooner, moves or goes.
CREATE TRIGGER admissions_authz_notify_update
    AFTER UPDATE ON admissions FOR EACH ROW
    WHEN (OLD.state = 'admitted' AND OLD.session_hash IS NOT NULL
          AND (OLD.state IS DISTINCT FROM NEW.state
               OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
               OR OLD.session_hash IS DISTINCT FROM NEW.session_hash
               OR OLD.identity IS DISTINCT FROM NEW.identity
               OR OLD.meeting_id IS DISTINCT FROM NEW.meeting_id))
    EXECUTE FUNCTION roomgate_authz_notify();
CREATE TRIGGER admissions_authz_notify_delete
    AFTER DELETE ON admissions FOR EACH ROW
    WHEN (OLD.state = 'admitted' AND OLD.session_hash IS NOT NULL)
    EXECUTE FUNCTION roomgate_authz_notify();

-- Meetings: any change but the updated_at stamp itself (archived, groups,
-- link, and whatever a later column adds), or deleted. Meetings change
-- rarely; a rotation's schedule update costs a re-read, nothing more.
CREATE TRIGGER meetings_authz_notify_update
    AFTER UPDATE ON meetings FOR EACH ROW
    WHEN ((to_jsonb(OLD) - 'updated_at') IS DISTINCT FROM
          (to_jsonb(NEW) - 'updated_at'))
    EXECUTE FUNCTION roomgate_authz_notify();
CREATE TRIGGER meetings_authz_notify_delete
    AFTER DELETE ON meetings FOR EACH ROW
    EXECUTE FUNCTION roomgate_authz_notify();

CREATE TRIGGER meeting_invitees_authz_notify
    AFTER INSERT OR UPDATE OR DELETE ON meeting_invitees FOR EACH ROW
    EXECUTE FUNCTION roomgate_authz_notify();

-- TRUNCATE fires no row trigger: everything goes.
CREATE TRIGGER sessions_authz_notify_truncate
    AFTER TRUNCATE ON sessions FOR EACH STATEMENT
    EXECUTE FUNCTION roomgate_authz_notify();
CREATE TRIGGER admissions_authz_notify_truncate
    AFTER TRUNCATE ON admissions FOR EACH STATEMENT
    EXECUTE FUNCTION roomgate_authz_notify();
CREATE TRIGGER meetings_authz_notify_truncate
    AFTER TRUNCATE ON meetings FOR EACH STATEMENT
    EXECUTE FUNCTION roomgate_authz_notify();
CREATE TRIGGER meeting_invitees_authz_notify_truncate
    AFTER TRUNCATE ON meeting_invitees FOR EACH STATEMENT
    EXECUTE FUNCTION roomgate_authz_notify();
