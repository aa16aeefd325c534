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
