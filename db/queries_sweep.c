/*
 * db/queries_sweep.c -- housekeeping deletes (see db_sweep.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "db/db_int.h"
#include "db/db_sweep.h"

int
db_sweep_lockouts(struct db_pool *pool, long long quiet_s, int limit,
                  int *deleted, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char quiet[24], lim[16];
	const char *v[2];
	PGresult *res;
	int r;

	*deleted = 0;
	if (quiet_s < 1 || limit < 1) {
		db_seterr(err, errlen, "sweep: quiet time and limit must be "
		                       "positive");
		return DB_EINVAL;
	}
	snprintf(quiet, sizeof(quiet), "%lld", quiet_s);
	snprintf(lim, sizeof(lim), "%d", limit);
	v[0] = quiet;
	v[1] = lim;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	/* One statement: a counter touched by a failure between the
	 * sub-select and the delete is skipped (the outer WHERE is evaluated
	 * again on the locked row), so no live count is lost. The batch is
	 * a CTE, run once: as an IN (sub-select) the planner may run it
	 * again per row (a plain SubPlan) and delete more than the limit. */
	res = PQexecParams(
	    db_conn_pg(c),
	    "WITH batch AS MATERIALIZED ("
	    "  SELECT scope, key FROM lockout_counters"
	    "  WHERE updated_at < now() - make_interval(secs => $1::bigint)"
	    "  ORDER BY updated_at LIMIT $2::int FOR UPDATE SKIP LOCKED)"
	    " DELETE FROM lockout_counters l USING batch b"
	    " WHERE l.scope = b.scope AND l.key = b.key"
	    " AND l.updated_at < now() - make_interval(secs => $1::bigint)"
	    " AND (l.locked_until IS NULL OR l.locked_until < now())",
	    2, NULL, v, NULL, NULL, 0);
	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
		*deleted = (int)strtol(PQcmdTuples(res), NULL, 10);
		PQclear(res);
	} else {
		r = db_result_err(db_conn_pg(c), res, "sweeping lockout counters",
		                  err, errlen);
		PQclear(res);
	}
	db_release(pool, c);
	return r;
}

/* Per kind: the table, its key, the time column and an extra condition.
 * Fixed strings, never built from input. */
static const struct sweep_sql {
	const char *name;
	const char *sql;
} sweep_sql[DB_SWEEP_NKINDS] = {
    [DB_SWEEP_SAML_REQUESTS] =
        {"saml_requests",
         "WITH batch AS MATERIALIZED (SELECT request_id FROM saml_requests"
         " WHERE expires_at < now() - make_interval(secs => $1::bigint)"
         " ORDER BY expires_at LIMIT $2::int FOR UPDATE SKIP LOCKED)"
         " DELETE FROM saml_requests t USING batch b"
         " WHERE t.request_id = b.request_id"},
    [DB_SWEEP_SAML_REPLAY] =
        {"saml_replay",
         "WITH batch AS MATERIALIZED (SELECT assertion_id FROM saml_replay"
         " WHERE expires_at < now() - make_interval(secs => $1::bigint)"
         " ORDER BY expires_at LIMIT $2::int FOR UPDATE SKIP LOCKED)"
         " DELETE FROM saml_replay t USING batch b"
         " WHERE t.assertion_id = b.assertion_id"},
    [DB_SWEEP_SESSIONS] =
        {"sessions",
         "WITH batch AS MATERIALIZED (SELECT id_hash FROM sessions"
         " WHERE expires_at < now() - make_interval(secs => $1::bigint)"
         " ORDER BY expires_at LIMIT $2::int FOR UPDATE SKIP LOCKED)"
         " DELETE FROM sessions t USING batch b"
         " WHERE t.id_hash = b.id_hash"},
    [DB_SWEEP_OUTBOX_DELIVERED] =
        {"outbox_delivered",
         "WITH batch AS MATERIALIZED (SELECT id FROM outbox"
         " WHERE delivered_at IS NOT NULL"
         " AND delivered_at < now() - make_interval(secs => $1::bigint)"
         " ORDER BY delivered_at LIMIT $2::int FOR UPDATE SKIP LOCKED)"
         " DELETE FROM outbox t USING batch b WHERE t.id = b.id"},
    /* Dead-lettered and not queued again since (a retry clears dead_at,
     * and a row being delivered holds its lease). */
    [DB_SWEEP_OUTBOX_DEAD] =
        {"outbox_dead",
         "WITH batch AS MATERIALIZED (SELECT id FROM outbox"
         " WHERE dead_at IS NOT NULL AND delivered_at IS NULL"
         " AND dead_at < now() - make_interval(secs => $1::bigint)"
         " ORDER BY dead_at LIMIT $2::int FOR UPDATE SKIP LOCKED)"
         " DELETE FROM outbox t USING batch b WHERE t.id = b.id"
         " AND t.dead_at IS NOT NULL"},
    [DB_SWEEP_ADMISSIONS_ENDED] =
        {"admissions_ended",
         "WITH batch AS MATERIALIZED (SELECT id FROM admissions"
         " WHERE ended_at IS NOT NULL"
         " AND ended_at < now() - make_interval(secs => $1::bigint)"
         " ORDER BY ended_at LIMIT $2::int FOR UPDATE SKIP LOCKED)"
         " DELETE FROM admissions t USING batch b WHERE t.id = b.id"},
};

const char *
db_sweep_kind_name(enum db_sweep_kind kind)
{
	if ((int)kind < 0 || kind >= DB_SWEEP_NKINDS)
		return "unknown";
	return sweep_sql[kind].name;
}

int
db_sweep_old(struct db_pool *pool, enum db_sweep_kind kind,
             long long older_than_s, int limit, int *deleted, char *err,
             size_t errlen)
{
	struct db_conn *c = NULL;
	char older[24], lim[16], what[64];
	const char *v[2];
	PGresult *res;
	int r;

	*deleted = 0;
	if ((int)kind < 0 || kind >= DB_SWEEP_NKINDS || older_than_s < 0 ||
	    limit < 1) {
		db_seterr(err, errlen, "sweep: unknown kind, negative age or "
		                       "a limit below 1");
		return DB_EINVAL;
	}
	snprintf(older, sizeof(older), "%lld", older_than_s);
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(what, sizeof(what), "sweeping %s", sweep_sql[kind].name);
	v[0] = older;
	v[1] = lim;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = PQexecParams(db_conn_pg(c), sweep_sql[kind].sql, 2, NULL, v,
	                   NULL, NULL, 0);
	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
		*deleted = (int)strtol(PQcmdTuples(res), NULL, 10);
		PQclear(res);
	} else {
		r = db_result_err(db_conn_pg(c), res, what, err, errlen);
		PQclear(res);
	}
	db_release(pool, c);
	return r;
}
