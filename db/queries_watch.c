/*
 * db/queries_watch.c -- the directory watcher's leader lock, cookie and
 * revocations (db/db_watch.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db/db_int.h"
#include "db/db_retry.h"
#include "db/db_watch.h"

#define WATCH_NAME "directory"

struct db_watch_leader {
	PGconn *pg;
};

static int
res_ok(const PGresult *res)
{
	return res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK ||
	                       PQresultStatus(res) == PGRES_COMMAND_OK);
}

int
db_watch_leader_try(const char *conninfo, int connect_timeout_s,
                    const char *node, struct db_watch_leader **out, char *err,
                    size_t errlen)
{
	struct db_params p;
	PGconn *pg = NULL;
	PGresult *res = NULL;
	const char *v[2] = {WATCH_NAME, node};
	int r;

	*out = NULL;
	if ((r = db_params_build(conninfo, connect_timeout_s, 10000,
	                         "roomgate-watch", &p, err, errlen)) != 0)
		return r;
	r = db_connect(&p, &pg, err, errlen);
	db_params_free(&p);
	if (r != 0)
		return r;
	res = PQexec(pg, "SELECT pg_try_advisory_lock(" DB_WATCH_LOCK_KEY ")");
	if (!res_ok(res) || PQntuples(res) != 1) {
		r = db_result_err(pg, res, "trying the watcher lock", err,
		                  errlen);
		goto fail;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		r = 0;
		goto fail; /* another node leads */
	}
	PQclear(res);
	res = PQexecParams(
	    pg,
	    "INSERT INTO directory_watch (name, leader_node, leader_since) "
	    "VALUES ($1, left($2, 256), now()) ON CONFLICT (name) DO UPDATE "
	    "SET leader_node = excluded.leader_node, leader_since = now()",
	    2, NULL, v, NULL, NULL, 0);
	if (!res_ok(res)) {
		r = db_result_err(pg, res, "recording the watcher leader", err,
		                  errlen);
		if (r == 0)
			r = DB_EQUERY;
		goto fail;
	}
	PQclear(res);
	*out = calloc(1, sizeof(**out));
	if (*out == NULL) {
		PQfinish(pg);
		return DB_ENOMEM;
	}
	(*out)->pg = pg;
	return 1;
fail:
	PQclear(res);
	PQfinish(pg); /* ends the lock if it was taken */
	return r;
}

int
db_watch_leader_alive(struct db_watch_leader *l, char *err, size_t errlen)
{
	PGresult *res;
	int r = 0;

	res = PQexec(l->pg, "SELECT 1");
	if (!res_ok(res)) {
		r = db_result_err(l->pg, res, "checking the watcher lock", err,
		                  errlen);
		if (r == 0)
			r = DB_EUNAVAIL;
	}
	PQclear(res);
	return r;
}

void
db_watch_leader_release(struct db_watch_leader *l)
{
	if (l == NULL)
		return;
	PQfinish(l->pg);
	free(l);
}

int
db_watch_cookie_save(struct db_pool *pool, const char *cookie, size_t len,
                     char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res = NULL;
	const char *v[2] = {WATCH_NAME, cookie};
	int lens[2] = {(int)strlen(WATCH_NAME), (int)len};
	int fmts[2] = {0, 1};
	int r;

	if (cookie == NULL || len == 0 || len > 4096) {
		db_seterr(err, errlen, "watcher cookie: bad length");
		return DB_EINVAL;
	}
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = PQexecParams(db_conn_pg(c),
	                   "INSERT INTO directory_watch (name, cookie, "
	                   "cookie_at) VALUES ($1, $2::bytea, now()) ON "
	                   "CONFLICT (name) DO UPDATE SET cookie = "
	                   "excluded.cookie, cookie_at = now()",
	                   2, NULL, v, lens, fmts, 0);
	if (!res_ok(res)) {
		r = db_result_err(db_conn_pg(c), res,
		                  "saving the watcher cookie", err, errlen);
		if (r == 0)
			r = DB_EQUERY;
	}
	PQclear(res);
	db_release(pool, c);
	return r;
}

/*
 * The revocation statement. $1 identity (LOST, DISABLED, DELETED) or the
 * identities to end as a JSON array (GROUP_MEMBERS), $2 the stored group names
 * that mean group_dn (JSON array), $3 reason, $4 node, $5 the change,
 * $6 group_dn.
 */
#define W_ADM_LIVE "state IN ('admitted', 'waiting') AND "
#define W_COND_LOST                                                            \
	"identity = $1::text AND matched_group IN (SELECT "                    \
	"jsonb_array_elements_text($2::jsonb))"
#define W_COND_IDENT "identity = $1::text AND $2::jsonb IS NOT NULL"
#define W_COND_GROUP                                                           \
	"matched_group IN (SELECT jsonb_array_elements_text($2::jsonb)) "      \
	"AND identity IN (SELECT jsonb_array_elements_text($1::text::jsonb))"
#define W_SESS_NONE "false AND identity = $1::text"
#define W_SESS_IDENT "identity = $1::text"

/* Sessions, then admissions, are locked in one fixed order (id_hash, id)
 * before they are changed, as the admin's revoke does (db_identity_revoke);
 * the statement runs again when it is a deadlock or serialization victim. */
/* The sessions W_STMT ends, locked in its own statement first. */
#define W_LOCK(scond)                                                          \
	"SELECT 1 FROM sessions WHERE revoked_at IS NULL AND " scond           \
	" ORDER BY id_hash FOR UPDATE"

#define W_STMT(acond, scond)                                                   \
	"WITH ls AS (SELECT id_hash FROM sessions WHERE revoked_at IS NULL "   \
	"AND " scond " ORDER BY id_hash FOR UPDATE), "                         \
	"s AS (UPDATE sessions SET revoked_at = now(), revoke_reason = $3 "    \
	"WHERE id_hash IN (SELECT id_hash FROM ls) AND revoked_at IS NULL "    \
	"AND " scond " RETURNING identity), "                                  \
	"la AS (SELECT id FROM admissions WHERE " W_ADM_LIVE acond " AND "     \
	"(SELECT count(*) FROM s) >= 0 ORDER BY id FOR UPDATE), "              \
	"a AS (UPDATE admissions SET state = 'revoked', revoke_reason "        \
	"= $3, ended_at = now() WHERE id IN (SELECT id FROM la) AND "          \
	W_ADM_LIVE acond " RETURNING id, meeting_id, identity, "               \
	"matched_group), "                                                     \
	"au AS (INSERT INTO audit_log (event_type, outcome, reason, "          \
	"identity, meeting_id, matched_group, node, details) SELECT "          \
	"'admission.revoke', 'info', $3, a.identity, a.meeting_id, "           \
	"a.matched_group, $4, jsonb_build_object('admission', a.id, 'by', "    \
	"'directory_watch', 'change', $5::text, 'group', $6::text) FROM a "    \
	"RETURNING 1), "                                                       \
	"sn AS (SELECT identity, count(*) AS n FROM s GROUP BY identity), "    \
	"aus AS (INSERT INTO audit_log (event_type, outcome, reason, "         \
	"identity, node, details) SELECT 'session.revoke', 'info', $3, "       \
	"sn.identity, $4, jsonb_build_object('by', 'directory_watch', "        \
	"'change', $5::text, 'sessions', sn.n) FROM sn RETURNING 1), "         \
	"oa AS (INSERT INTO outbox (topic, payload) SELECT "                   \
	"'admission.revoked', jsonb_build_object('admission_id', a.id, "       \
	"'meeting_id', a.meeting_id, 'identity', a.identity, 'reason', "       \
	"$3::text, "                                                           \
	"'group', a.matched_group, 'source', 'directory', 'change', "          \
	"$5::text) FROM a RETURNING 1), "                                      \
	"os AS (INSERT INTO outbox (topic, payload) SELECT "                   \
	"'session.revoked', jsonb_build_object('identity', sn.identity, "      \
	"'reason', $3::text, 'sessions', sn.n, 'source', 'directory', "        \
	"'change', "                                                           \
	"$5::text) FROM sn RETURNING 1), "                                     \
	"w AS (UPDATE directory_watch SET changes_applied = changes_applied "  \
	"+ 1, last_change_at = now() WHERE name = '" WATCH_NAME "' RETURNING " \
	"1) "                                                                  \
	"SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM s), (SELECT "  \
	"count(*) FROM au) + (SELECT count(*) FROM aus), (SELECT count(*) "    \
	"FROM oa) + (SELECT count(*) FROM os), (SELECT count(*) FROM w)"

/* The stored group names (of live admissions, for identity when given)
 * that mean group_dn, as a JSON array text. */
static int
matching_groups(PGconn *pg, const char *identity, const char *group_dn,
                db_watch_same_group_fn same, char **json, char *err,
                size_t errlen)
{
	PGresult *res;
	json_t *arr = json_array();
	const char *v[1] = {identity};
	int r = 0;

	*json = NULL;
	if (arr == NULL)
		return DB_ENOMEM;
	if (identity != NULL)
		res = PQexecParams(pg,
		                   "SELECT DISTINCT matched_group FROM "
		                   "admissions WHERE identity = $1 AND "
		                   "state IN ('admitted', 'waiting')",
		                   1, NULL, v, NULL, NULL, 0);
	else
		res = PQexec(pg, "SELECT DISTINCT matched_group FROM "
		                 "admissions WHERE state IN ('admitted', "
		                 "'waiting')");
	if (!res_ok(res)) {
		r = db_result_err(pg, res, "finding the admissions of a group",
		                  err, errlen);
		if (r == 0)
			r = DB_EQUERY;
		goto out;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *g = PQgetvalue(res, i, 0);

		if (!PQgetisnull(res, i, 0) && same(g, group_dn) &&
		    json_array_append_new(arr, json_string(g)) != 0) {
			r = DB_ENOMEM;
			goto out;
		}
	}
	if ((*json = json_dumps(arr, JSON_COMPACT)) == NULL)
		r = DB_ENOMEM;
out:
	PQclear(res);
	json_decref(arr);
	return r;
}

/*
 * GROUP_MEMBERS: the identities of the live admissions that depend on the
 * group (groups: its stored names, JSON) that the change says may end,
 * as a JSON array text ("[]": none). Admissions made after this read are
 * not ended by the change (the live check decides for them).
 */
static int
group_revocable(PGconn *pg, const struct db_watch_change *ch,
                const char *groups, char **json, char *err, size_t errlen)
{
	PGresult *res;
	json_t *arr = json_array();
	const char *v[1] = {groups};
	int r = 0;

	*json = NULL;
	if (arr == NULL)
		return DB_ENOMEM;
	res = PQexecParams(pg,
	                   "SELECT DISTINCT identity FROM admissions WHERE "
	                   "state IN ('admitted', 'waiting') AND "
	                   "matched_group IN (SELECT "
	                   "jsonb_array_elements_text($1::jsonb))",
	                   1, NULL, v, NULL, NULL, 0);
	if (!res_ok(res)) {
		r = db_result_err(pg, res, "finding the admissions of a group",
		                  err, errlen);
		if (r == 0)
			r = DB_EQUERY;
		goto out;
	}
	for (int i = 0; i < PQntuples(res) && ch->revocable != NULL; i++) {
		const char *id = PQgetvalue(res, i, 0);

		if (!PQgetisnull(res, i, 0) &&
		    ch->revocable(ch->revocable_ctx, id) &&
		    json_array_append_new(arr, json_string(id)) != 0) {
			r = DB_ENOMEM;
			goto out;
		}
	}
	if ((*json = json_dumps(arr, JSON_COMPACT)) == NULL)
		r = DB_ENOMEM;
out:
	PQclear(res);
	json_decref(arr);
	return r;
}

int
db_watch_apply(struct db_pool *pool, const struct db_watch_change *ch,
               db_watch_same_group_fn same, long *admissions, long *sessions,
               char *err, size_t errlen)
{
	static const char *const kinds[] = {"", "lost", "disabled", "deleted",
	                                    "group_members"};
	struct db_conn *c = NULL;
	PGresult *res = NULL;
	char *groups = NULL, *members = NULL;
	const char *sql, *lock, *v[6];
	int r;

	*admissions = *sessions = 0;
	if (ch->kind < DB_WATCH_LOST || ch->kind > DB_WATCH_GROUP_MEMBERS ||
	    (ch->kind != DB_WATCH_GROUP_MEMBERS &&
	     (ch->identity == NULL || ch->identity[0] == '\0')) ||
	    ((ch->kind == DB_WATCH_LOST ||
	      ch->kind == DB_WATCH_GROUP_MEMBERS) &&
	     (ch->group_dn == NULL || same == NULL))) {
		db_seterr(err, errlen, "watcher change: bad arguments");
		return DB_EINVAL;
	}
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	switch (ch->kind) {
	case DB_WATCH_LOST:
		r = matching_groups(db_conn_pg(c), ch->identity, ch->group_dn,
		                    same, &groups, err, errlen);
		sql = W_STMT(W_COND_LOST, W_SESS_NONE);
		lock = W_LOCK(W_SESS_NONE);
		v[0] = ch->identity;
		v[2] = "directory_removed";
		break;
	case DB_WATCH_GROUP_MEMBERS:
		r = matching_groups(db_conn_pg(c), NULL, ch->group_dn, same,
		                    &groups, err, errlen);
		if (r == 0 && strcmp(groups, "[]") != 0)
			r = group_revocable(db_conn_pg(c), ch, groups, &members,
			                    err, errlen);
		/* Nobody the change may end: nothing to write. */
		if (r == 0 && (members == NULL || strcmp(members, "[]") == 0))
			goto out;
		sql = W_STMT(W_COND_GROUP, W_SESS_NONE);
		lock = W_LOCK(W_SESS_NONE);
		v[0] = members;
		v[2] = "directory_removed";
		break;
	default:
		groups = strdup("[]");
		if (groups == NULL)
			r = DB_ENOMEM;
		sql = W_STMT(W_COND_IDENT, W_SESS_IDENT);
		lock = W_LOCK(W_SESS_IDENT);
		v[0] = ch->identity;
		v[2] = ch->kind == DB_WATCH_DISABLED ? "directory_disabled"
		                                     : "directory_removed";
		break;
	}
	if (r != 0)
		goto out;
	/* No live admission names the group: nothing to end. */
	if (ch->kind != DB_WATCH_DISABLED && ch->kind != DB_WATCH_DELETED &&
	    strcmp(groups, "[]") == 0)
		goto out;
	v[1] = groups;
	v[3] = ch->node;
	v[4] = kinds[ch->kind];
	v[5] = ch->group_dn;
	res = db_exec_locked(db_conn_pg(c), lock, 1, sql, 6, v, NULL);
	if (!res_ok(res) || PQntuples(res) != 1) {
		r = db_result_err(db_conn_pg(c), res,
		                  "ending what a directory change revoked", err,
		                  errlen);
		if (r == 0)
			r = DB_EQUERY;
		goto out;
	}
	*admissions = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	*sessions = strtol(PQgetvalue(res, 0, 1), NULL, 10);
out:
	PQclear(res);
	free(groups);
	free(members);
	db_release(pool, c);
	return r;
}

int
db_watch_status(struct db_pool *pool, struct db_watch_status *st, char *err,
                size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res = NULL;
	int r;

	memset(st, 0, sizeof(*st));
	st->cookie_age_s = st->change_age_s = -1;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = PQexec(db_conn_pg(c),
	             "SELECT coalesce(leader_node, ''), extract(epoch FROM "
	             "now() - cookie_at), extract(epoch FROM now() - "
	             "last_change_at), changes_applied FROM directory_watch "
	             "WHERE name = '" WATCH_NAME "'");
	if (!res_ok(res)) {
		r = db_result_err(db_conn_pg(c), res,
		                  "reading the watcher status", err, errlen);
		if (r == 0)
			r = DB_EQUERY;
		goto out;
	}
	if (PQntuples(res) == 1) {
		snprintf(st->leader_node, sizeof(st->leader_node), "%s",
		         PQgetvalue(res, 0, 0));
		if (!PQgetisnull(res, 0, 1))
			st->cookie_age_s = strtod(PQgetvalue(res, 0, 1), NULL);
		if (!PQgetisnull(res, 0, 2))
			st->change_age_s = strtod(PQgetvalue(res, 0, 2), NULL);
		st->changes_applied = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	}
out:
	PQclear(res);
	db_release(pool, c);
	return r;
}
