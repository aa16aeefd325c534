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

#endif
