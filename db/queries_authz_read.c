/*
 * db/queries_authz_read.c -- the read behind one forward-auth decision
 * (db_authz.h): session, admission and the meeting's membership facts in
 * one statement, prepared once per pooled connection.
 *
 * Issue 9: forward-auth was three round trips, each parsed and planned
 * every time (the session read, the admission lookup, the whole meeting
 * row). Now one: the session's touch (a data-modifying CTE that writes
 * only when last_seen_at is stale, as db_session_get), the session, the
 * live meeting by id or by link, whether this session is admitted to it,
 * whether its identity is an invitee, and one row per allowed group (in
 * the stored order; one row with no group when there is none).
 *
 * The same row also says how long what it found stays true by itself (the
 * session's expiry, its idle clock after this touch, the admission's
 * expiry), for the node's cache of positive answers
 * (server/authz_sessions.h); every other way it stops being true notifies
 * (migration 0025).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_authz.h"
#include "db/db_int.h"

/* db_conn_prepared slots (queries_admit.c holds 0-2). */
enum {
	ST_AUTHZ_BY_ID = 16,
	ST_AUTHZ_BY_LINK = 17,
};

/* $1 session id hash (binary), $2 idle timeout s, $3 touch interval s,
 * $4 the meeting reference; the meeting's condition follows. The
 * admission must belong to this very session: signing in again means
 * typing the code again. Both parts of the statement see one snapshot. */
#define AUTHZ_READ_Q(meeting_cond)                                             \
	"WITH t AS (UPDATE sessions SET last_seen_at = now() "                 \
	"WHERE id_hash = $1 AND revoked_at IS NULL AND expires_at > now() "    \
	"AND last_seen_at > now() - make_interval(secs => $2::int) "           \
	"AND last_seen_at <= now() - make_interval(secs => $3::int) "          \
	"RETURNING 1) "                                                        \
	"SELECT s.identity, s.idp_entity_id, m.id::text, "                     \
	"(SELECT max(coalesce(extract(epoch FROM a.expires_at - now()), "      \
	"1e9))::float8 FROM admissions a WHERE a.meeting_id = m.id "           \
	"AND a.identity = s.identity AND a.session_hash = $1 "                 \
	"AND a.state = 'admitted' "                                            \
	"AND (a.expires_at IS NULL OR a.expires_at > now())), "                \
	"EXISTS (SELECT 1 FROM meeting_invitees i WHERE i.meeting_id = m.id "  \
	"AND i.identity = s.identity), g.dn, "                                 \
	"extract(epoch FROM s.expires_at - now())::float8, "                   \
	"CASE WHEN EXISTS (SELECT 1 FROM t) THEN 0 "                           \
	"ELSE extract(epoch FROM now() - s.last_seen_at)::float8 END "         \
	"FROM (SELECT 1) one LEFT JOIN sessions s ON s.id_hash = $1 AND "      \
	"s.revoked_at IS NULL AND s.expires_at > now() AND "                   \
	"s.last_seen_at > now() - make_interval(secs => $2::int) "             \
	"LEFT JOIN meetings m ON s.id_hash IS NOT NULL AND " meeting_cond      \
	" AND m.archived_at IS NULL "                                          \
	"LEFT JOIN LATERAL unnest(m.allowed_groups) WITH ORDINALITY "          \
	"g(dn, n) ON true ORDER BY g.n"

static const char by_id_sql[] = AUTHZ_READ_Q("m.id = $4::uuid");
static const char by_link_sql[] = AUTHZ_READ_Q("m.link_id = $4::text");

/* 8-4-4-4-12 hex digits: the shape a uuid cast accepts as a meeting id
 * (anything else is a link id). */
int
db_authz_is_uuid(const char *s)
{
	size_t i;

	for (i = 0; i < 36 && s[i] != '\0'; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		char ch = s[i];

		if (dash ? ch != '-'
		         : !((ch >= '0' && ch <= '9') ||
		             (ch >= 'a' && ch <= 'f') ||
		             (ch >= 'A' && ch <= 'F')))
			return 0;
	}
	return i == 36 && s[i] == '\0';
}

static char *
dup_col(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL
	                                  : strdup(PQgetvalue(res, row, col));
}

/* A float8 column; NULL or unreadable reads as 0 (a cache entry that
 * expires at once: the safe side). */
static double
col_num(const PGresult *res, int col)
{
	char *end;
	double d;

	if (PQgetisnull(res, 0, col))
		return 0;
	d = strtod(PQgetvalue(res, 0, col), &end);
	return *end == '\0' && d == d ? d : 0;
}

/* The meeting's facts from the rows (the meeting's columns are not NULL). */
static int
meeting_from_rows(const PGresult *res, const char *identity,
                  struct db_meeting *m)
{
	int rows = PQntuples(res);

	snprintf(m->id, sizeof(m->id), "%s", PQgetvalue(res, 0, 2));
	if (strcmp(PQgetvalue(res, 0, 4), "t") == 0) {
		if ((m->invitees = calloc(2, sizeof(*m->invitees))) == NULL ||
		    (m->invitees[0] = strdup(identity)) == NULL)
			return -1;
		m->ninvitees = 1;
	}
	if (PQgetisnull(res, 0, 5))
		return 0; /* no allowed group: invitees only */
	if ((m->groups = calloc((size_t)rows + 1, sizeof(*m->groups))) == NULL)
		return -1;
	for (int i = 0; i < rows; i++) {
		if ((m->groups[i] = dup_col(res, i, 5)) == NULL)
			return -1;
		m->ngroups++;
	}
	return 0;
}

int
db_authz_read(struct db_pool *pool, const unsigned char id_hash[32],
              int idle_timeout_s, int touch_s, const char *meeting_ref,
              struct db_session *s, struct db_meeting *m,
              struct db_authz_read *found, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char idle[16], touch[16];
	const char *v[4];
	const int len[4] = {32, 0, 0, 0}, fmt[4] = {1, 0, 0, 0};
	int by_id = meeting_ref != NULL && db_authz_is_uuid(meeting_ref);
	PGresult *res = NULL;
	int r;

	memset(s, 0, sizeof(*s));
	memset(m, 0, sizeof(*m));
	memset(found, 0, sizeof(*found));
	snprintf(idle, sizeof(idle), "%d", idle_timeout_s);
	snprintf(touch, sizeof(touch), "%d", touch_s > 0 ? touch_s : 0);
	v[0] = (const char *)id_hash;
	v[1] = idle;
	v[2] = touch;
	v[3] = meeting_ref;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	/* Both shapes of reference are unique and indexed: each has the
	 * statement that uses its index. */
	r = by_id ? db_conn_prepared(c, ST_AUTHZ_BY_ID, "rg_authz_by_id",
	                             by_id_sql, 4, err, errlen)
	          : db_conn_prepared(c, ST_AUTHZ_BY_LINK, "rg_authz_by_link",
	                             by_link_sql, 4, err, errlen);
	if (r != 0)
		goto out;
	res = PQexecPrepared(db_conn_pg(c),
	                     by_id ? "rg_authz_by_id" : "rg_authz_by_link", 4,
	                     v, len, fmt, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = db_result_err(db_conn_pg(c), res,
		                  "reading the sign-in and admission", err,
		                  errlen);
		goto out;
	}
	if (PQntuples(res) < 1 || PQnfields(res) != 8) {
		db_seterr(err, errlen, "the forward-auth read came back empty");
		r = DB_EQUERY;
		goto out;
	}
	r = 0;
	if (PQgetisnull(res, 0, 0))
		goto out; /* no live session */
	if ((s->identity = dup_col(res, 0, 0)) == NULL ||
	    (s->idp = dup_col(res, 0, 1)) == NULL)
		goto nomem;
	found->have_session = 1;
	found->session_left_s = col_num(res, 6);
	found->idle_age_s = col_num(res, 7);
	if (PQgetisnull(res, 0, 2))
		goto out; /* no live meeting of that reference */
	if (meeting_from_rows(res, s->identity, m) != 0)
		goto nomem;
	found->have_meeting = 1;
	found->admitted = !PQgetisnull(res, 0, 3);
	if (found->admitted)
		found->admission_left_s = col_num(res, 3);
	goto out;
nomem:
	db_seterr(err, errlen, "out of memory");
	r = DB_ENOMEM;
	db_session_free(s);
	db_meeting_free(m);
	memset(found, 0, sizeof(*found));
out:
	PQclear(res);
	db_release(pool, c);
	return r;
}
