/*
 * db/queries_outbox.c -- the webhook outbox (see db_outbox.h for the
 * contracts). Every statement is one short autocommit statement: the
 * deliverer holds no connection and no transaction while it posts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "db/db_outbox.h"

static int
ob_ok(const PGresult *res)
{
	return res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK ||
	                       PQresultStatus(res) == PGRES_COMMAND_OK);
}

/* Runs one parameterized statement on a pooled connection. On success
 * *res is the result (caller PQclear()s); on failure nothing to free. */
static int
ob_exec(struct db_pool *pool, const char *what, const char *sql, int n,
        const char *const *v, PGresult **res, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *r0;
	int r;

	*res = NULL;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r0 = PQexecParams(db_conn_pg(c), sql, n, NULL, v, NULL, NULL, 0);
	if (!ob_ok(r0)) {
		r = db_result_err(db_conn_pg(c), r0, what, err, errlen);
		if (r == 0)
			r = DB_EQUERY;
		PQclear(r0);
	} else {
		*res = r0;
	}
	db_release(pool, c);
	return r;
}

void
db_outbox_event_free(struct db_outbox_event *e)
{
	free(e->payload);
	memset(e, 0, sizeof(*e));
}

int
db_outbox_claim(struct db_pool *pool, const char *owner, long long lease_ms,
                struct db_outbox_event *out, char *err, size_t errlen)
{
	char lease[24];
	const char *v[2] = {owner, lease};
	PGresult *res;
	int r;

	memset(out, 0, sizeof(*out));
	if (owner == NULL || strlen(owner) > 128 || lease_ms < 1) {
		db_seterr(err, errlen, "outbox claim: bad owner or lease");
		return DB_EINVAL;
	}
	snprintf(lease, sizeof(lease), "%lld", lease_ms);
	/* The sub-select locks the row it picks (SKIP LOCKED: a row another
	 * node is claiming right now is passed over, not waited for); a row
	 * claimed and committed meanwhile is re-checked against the WHERE
	 * on its new version, so its fresh lease keeps it out. */
	r = ob_exec(
	    pool, "claiming an outbox event",
	    "UPDATE outbox SET lease_owner = $1, lease_until = now() + "
	    "make_interval(secs => $2::double precision / 1000), attempts = "
	    "attempts + 1, last_attempt_at = now() WHERE id = ("
	    " SELECT id FROM outbox WHERE delivered_at IS NULL AND dead_at IS "
	    " NULL AND next_attempt_at <= now() AND (lease_until IS NULL OR "
	    " lease_until < now()) ORDER BY next_attempt_at, id LIMIT 1 "
	    " FOR UPDATE SKIP LOCKED) "
	    "RETURNING id, topic, payload::text, to_char(created_at AT TIME "
	    "ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), attempts, "
	    "(extract(epoch FROM now() - coalesce(requeued_at, created_at)) "
	    "* 1000)::bigint",
	    2, v, &res, err, errlen);
	if (r != 0)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 0;
	}
	out->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	snprintf(out->topic, sizeof(out->topic), "%s", PQgetvalue(res, 0, 1));
	snprintf(out->created_at, sizeof(out->created_at), "%s",
	         PQgetvalue(res, 0, 3));
	out->attempts = (int)strtol(PQgetvalue(res, 0, 4), NULL, 10);
	out->age_ms = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
	out->payload = strdup(PQgetvalue(res, 0, 2));
	PQclear(res);
	if (out->payload == NULL) {
		db_seterr(err, errlen, "out of memory");
		return DB_ENOMEM; /* the lease runs out; retried then */
	}
	return 1;
}

int
db_outbox_delivered(struct db_pool *pool, long long id, char *err,
                    size_t errlen)
{
	char ids[24];
	const char *v[1] = {ids};
	PGresult *res;
	int r;

	snprintf(ids, sizeof(ids), "%lld", id);
	r = ob_exec(pool, "marking an outbox event delivered",
	            "UPDATE outbox SET delivered_at = now(), dead_at = NULL, "
	            "lease_until = NULL, lease_owner = NULL, last_error = NULL "
	            "WHERE id = $1::bigint AND delivered_at IS NULL",
	            1, v, &res, err, errlen);
	PQclear(res);
	return r;
}

int
db_outbox_failed(struct db_pool *pool, long long id, const char *owner,
                 const char *error, long long delay_ms, long long max_age_s,
                 int *dead, char *err, size_t errlen)
{
	char ids[24], delay[24], age[24];
	const char *v[5] = {ids, owner, error, delay, age};
	PGresult *res;
	int r;

	if (dead != NULL)
		*dead = 0;
	snprintf(ids, sizeof(ids), "%lld", id);
	snprintf(delay, sizeof(delay), "%lld", delay_ms < 0 ? 0 : delay_ms);
	snprintf(age, sizeof(age), "%lld", max_age_s);
	r = ob_exec(
	    pool, "scheduling an outbox retry",
	    "WITH t AS (SELECT now() + make_interval(secs => $4::double "
	    "precision / 1000) AS next) "
	    "UPDATE outbox SET last_error = left($3::text, 1024), lease_until "
	    "= NULL, lease_owner = NULL, next_attempt_at = t.next, dead_at = "
	    "CASE WHEN t.next > coalesce(requeued_at, created_at) + "
	    "make_interval(secs => $5::bigint) THEN now() END FROM t "
	    "WHERE id = $1::bigint AND lease_owner = $2 AND delivered_at IS "
	    "NULL RETURNING dead_at IS NOT NULL",
	    5, v, &res, err, errlen);
	if (r != 0)
		return r;
	if (dead != NULL && PQntuples(res) == 1)
		*dead = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return 0;
}

int
db_outbox_stats(struct db_pool *pool, struct db_outbox_stats *st, char *err,
                size_t errlen)
{
	PGresult *res;
	int r;

	memset(st, 0, sizeof(*st));
	r = ob_exec(pool, "counting the outbox",
	            "SELECT count(*) FILTER (WHERE dead_at IS NULL), count(*) "
	            "FILTER (WHERE dead_at IS NOT NULL), coalesce(extract("
	            "epoch FROM now() - min(created_at) FILTER (WHERE dead_at "
	            "IS NULL)), 0) FROM outbox WHERE delivered_at IS NULL",
	            0, NULL, &res, err, errlen);
	if (r != 0)
		return r;
	st->pending = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	st->dead = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	st->oldest_pending_s = strtod(PQgetvalue(res, 0, 2), NULL);
	PQclear(res);
	return 0;
}

#define LIST_COLS                                                              \
	"SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'type', "      \
	"topic, 'created_at', created_at, 'attempts', attempts, "              \
	"'next_attempt_at', next_attempt_at, 'last_attempt_at', "              \
	"last_attempt_at, 'dead_at', dead_at, 'last_error', last_error, "      \
	"'data', payload) ORDER BY k), '[]'::jsonb)::text FROM (SELECT *, "    \
	"row_number() OVER () AS k FROM (SELECT * FROM outbox WHERE "

int
db_outbox_list_json(struct db_pool *pool, const char *state, int limit,
                    char **json, char *err, size_t errlen)
{
	char lim[16];
	const char *v[1] = {lim};
	const char *sql;
	PGresult *res;
	int r;

	*json = NULL;
	if (limit < 1 || limit > 1000) {
		db_seterr(err, errlen, "outbox list: limit must be 1 to 1000");
		return DB_EINVAL;
	}
	if (strcmp(state, "pending") == 0)
		sql = LIST_COLS "delivered_at IS NULL AND dead_at IS NULL "
		                "ORDER BY next_attempt_at, id LIMIT $1::int) "
		                "o) x";
	else if (strcmp(state, "dead") == 0)
		sql = LIST_COLS "delivered_at IS NULL AND dead_at IS NOT NULL "
		                "ORDER BY dead_at DESC, id DESC LIMIT $1::int) "
		                "o) x";
	else {
		db_seterr(err, errlen,
		          "outbox list: state must be pending or "
		          "dead");
		return DB_EINVAL;
	}
	snprintf(lim, sizeof(lim), "%d", limit);
	r = ob_exec(pool, "listing the outbox", sql, 1, v, &res, err, errlen);
	if (r != 0)
		return r;
	*json = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (*json == NULL) {
		db_seterr(err, errlen, "out of memory");
		return DB_ENOMEM;
	}
	return 0;
}

int
db_outbox_retry(struct db_pool *pool, long long id, const struct db_actor *by,
                char *err, size_t errlen)
{
	char ids[24];
	const char *v[5];
	PGresult *res;
	int r;

	snprintf(ids, sizeof(ids), "%lld", id);
	v[0] = ids;
	v[1] = by ? by->identity : NULL;
	v[2] = by ? by->request_id : NULL;
	v[3] = by ? by->node : NULL;
	v[4] = by ? by->source_addr : NULL;
	/* attempts restart so the backoff starts small again; last_error
	 * stays as the record of why it died until the next attempt. The
	 * audit record commits with the change. */
	r = ob_exec(
	    pool, "queueing a dead outbox event again",
	    "WITH u AS (UPDATE outbox SET dead_at = NULL, requeued_at = now(), "
	    "next_attempt_at = now(), attempts = 0, lease_until = NULL, "
	    "lease_owner = NULL WHERE id = $1::bigint AND dead_at IS NOT NULL "
	    "AND delivered_at IS NULL RETURNING id, topic), "
	    "a AS (INSERT INTO audit_log (event_type, outcome, reason, "
	    "identity, request_id, node, source_addr, details) SELECT "
	    "'outbox.retry', 'info', 'admin_retry', $2::text, $3::text, "
	    "$4::text, $5::inet, jsonb_build_object('event_id', u.id, 'type', "
	    "u.topic) FROM u RETURNING 1) "
	    "SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM a)",
	    5, v, &res, err, errlen);
	if (r != 0)
		return r;
	r = strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? 0 : DB_ENOTFOUND;
	PQclear(res);
	if (r == DB_ENOTFOUND)
		db_seterr(err, errlen, "outbox event %lld is not a dead letter",
		          id);
	return r;
}
