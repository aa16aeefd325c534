/*
 * db/db_authz.h -- the read behind one forward-auth decision (GET
 * /v1/authz; server/authz.c), in one database round trip on a statement
 * prepared once per pooled connection (db/queries_authz_read.c).
 *
 * Errors are DB_E* values (db.h) with a message in err.
 */
#ifndef ROOMGATE_DB_AUTHZ_H
#define ROOMGATE_DB_AUTHZ_H

#include <stddef.h>

#include "db/db.h"

/*
 * What one request found. have_session: the session behind the cookie
 * hash is live (not revoked, before its expiry, seen within the idle
 * timeout; judged on the stored row as db_session_get does).
 * have_meeting: a live (not archived) meeting has the id or link id asked
 * for. admitted: this very session holds an admitted, unexpired
 * admission to it.
 */
struct db_authz_read {
	int have_session, have_meeting, admitted;
	/* How long the facts above stay true by themselves, in seconds from
	 * the statement's now(): with have_session, until the session
	 * expires (session_left_s) and how long ago it was last seen after
	 * this request's touch (idle_age_s; 0 when this request touched it);
	 * with admitted, until the admission expires (admission_left_s; 1e9
	 * when it has no expiry). */
	double session_left_s, idle_age_s, admission_left_s;
};

/*
 * Reads it. id_hash: SHA-256 of the session cookie; meeting_ref: a
 * meeting id (8-4-4-4-12 hex) or a link id, NULL for the session alone.
 * As db_session_get, the session's last_seen_at is written only when
 * older than touch_s seconds (db_session_touch_s) -- by the same
 * statement, which judges the row as it was before.
 *
 * *s (with have_session): only identity and idp are filled. *m (with
 * have_meeting): what a membership decision needs (gate_admit_member,
 * gate_authz_cache_admits) -- id, the allowed groups in their stored
 * order, and as invitees the session's identity alone when it is one of
 * the meeting's invitees (no one otherwise); every other field is empty.
 * Both are zeroed first; free them with db_session_free and
 * db_meeting_free whatever the outcome. 0, or DB_E*.
 */
int db_authz_read(struct db_pool *pool, const unsigned char id_hash[32],
                  int idle_timeout_s, int touch_s, const char *meeting_ref,
                  struct db_session *s, struct db_meeting *m,
                  struct db_authz_read *found, char *err, size_t errlen);

/* 1 when meeting_ref reads as a meeting id (8-4-4-4-12 hex digits, any
 * letter case: the uuid cast accepts both), 0 when it is a link id. */
int db_authz_is_uuid(const char *meeting_ref);

/*
 * A connection of its own in LISTEN roomgate_authz (migration 0025: every
 * change that can end a forward-auth "yes" notifies it), for the node's
 * cache of positive answers (server/authz_sessions.h). db/authz_listen.c.
 *
 * _open connects and listens: 0 and *out (free with _close), or DB_E*.
 * Notifications sent after _open returned 0 are all delivered by _wait
 * while it keeps returning 0.
 */
struct db_authz_listen;
int db_authz_listen_open(const char *conninfo, int connect_timeout_s,
                         struct db_authz_listen **out, char *err,
                         size_t errlen);
/*
 * Waits up to timeout_ms for notifications and hands each payload to
 * on(arg, payload) (the string lives for that call only). busy(arg, 1)
 * is called before bytes are read from the socket and busy(arg, 0) after
 * every notification they held was handed over, so a reader of the
 * socket's state (db_authz_listen_fd) can tell "nothing pending" from
 * "being handled" (on DB_EUNAVAIL there is no busy(arg, 0): the caller
 * stops trusting the connection, then resets it). The connection is also
 * checked: a query every
 * ping_ms of quiet, which must be answered within ping_ms. 0, or
 * DB_EUNAVAIL with err when the connection is gone or does not answer
 * (close it; notifications may have been lost).
 */
int db_authz_listen_wait(struct db_authz_listen *l, int timeout_ms,
                         int ping_ms, void (*on)(void *, const char *),
                         void (*busy)(void *, int), void *arg, char *err,
                         size_t errlen);
/* The connection's socket (for poll), -1 when none. */
int db_authz_listen_fd(const struct db_authz_listen *l);
/* Closes and frees; NULL is a no-op. */
void db_authz_listen_close(struct db_authz_listen *l);

#endif
