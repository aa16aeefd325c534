/*
 * Integration: the lockout sweep (db/db_sweep.h) against the harness's
 * real PostgreSQL. Only counters that can no longer change a decision go:
 * quiet for longer than the given time and not locked now; the batch limit
 * holds; a database that is down is an error, not a silent zero.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "db/db_sweep.h"
#include "tests/lib/th.h"

#define QUIET 3600

static PGconn *pg;
static struct db_pool *pool;

static void
sql_ok(const char *sql)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(pg));
	PQclear(res);
}

static long
count(const char *where)
{
	char sql[512];
	PGresult *res;
	long n;

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM lockout_counters WHERE key LIKE "
	         "'sweeptest:%%' AND (%s)",
	         where);
	res = PQexec(pg, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(pg));
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

static int
setup(void **state)
{
	struct db_config cfg = {getenv("RG_TEST_PG_URL"), 2, 3, 5000, 2000};
	char err[512];

	(void)state;
	assert_non_null(cfg.conninfo);
	if (db_migrate(cfg.conninfo, NULL, err, sizeof(err)) != 0)
		fail_msg("migrate: %s", err);
	pg = PQconnectdb(cfg.conninfo);
	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(pg));
	if (db_pool_open(&cfg, &pool, err, sizeof(err)) != 0)
		fail_msg("pool: %s", err);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (pg != NULL) {
		PGresult *res = PQexec(pg, "DELETE FROM lockout_counters WHERE "
		                           "key LIKE 'sweeptest:%'");
		PQclear(res);
		PQfinish(pg);
	}
	db_pool_close(pool);
	return 0;
}

/* Only quiet, unlocked counters go; everything that can still matter
 * stays, whatever its scope. */
static void
sweeps_only_what_cannot_matter(void **state)
{
	char err[512];
	int deleted = -1;

	(void)state;
	sql_ok("DELETE FROM lockout_counters WHERE key LIKE 'sweeptest:%'");
	sql_ok("INSERT INTO lockout_counters (scope, key, failures, "
	       "locked_until, lock_count, updated_at) VALUES "
	       /* quiet for 2 h, never locked: goes */
	       "('identity_meeting', 'sweeptest:old', 3, NULL, 0, "
	       " now() - interval '2 hours'),"
	       /* quiet for 2 h, lock ended an hour ago: goes */
	       "('source', 'sweeptest:old-lock-over', 100, "
	       " now() - interval '1 hour', 1, now() - interval '2 hours'),"
	       /* quiet for 2 h but still locked (a long lock): stays */
	       "('identity_meeting', 'sweeptest:locked', 5, "
	       " now() + interval '10 hours', 4, now() - interval '2 hours'),"
	       /* a failure 10 minutes ago: stays */
	       "('identity_meeting', 'sweeptest:recent', 1, NULL, 0, "
	       " now() - interval '10 minutes'),"
	       /* quiet for 50 min (< QUIET), lock over: stays (its
	        * lock_count still doubles the next lock) */
	       "('meeting', 'sweeptest:recent-lock-over', 9, "
	       " now() - interval '40 minutes', 2, "
	       " now() - interval '50 minutes')");
	assert_int_equal(db_sweep_lockouts(pool, QUIET, 100, &deleted, err,
	                                   sizeof(err)),
	                 0);
	assert_int_equal(deleted, 2);
	assert_int_equal(count("key IN ('sweeptest:old', "
	                       "'sweeptest:old-lock-over')"),
	                 0);
	assert_int_equal(count("key IN ('sweeptest:locked', 'sweeptest:recent',"
	                       " 'sweeptest:recent-lock-over')"),
	                 3);
	/* A second pass finds nothing more. */
	assert_int_equal(db_sweep_lockouts(pool, QUIET, 100, &deleted, err,
	                                   sizeof(err)),
	                 0);
	assert_int_equal(deleted, 0);
}

/* A flood leaves many rows: each pass deletes at most `limit`. */
static void
batches_are_bounded(void **state)
{
	char err[512];
	int deleted = -1;

	(void)state;
	sql_ok("DELETE FROM lockout_counters WHERE key LIKE 'sweeptest:%'");
	sql_ok("INSERT INTO lockout_counters (scope, key, failures, "
	       "updated_at) SELECT 'source', 'sweeptest:flood-' || i, 1, "
	       "now() - interval '3 hours' FROM generate_series(1, 250) i");
	assert_int_equal(db_sweep_lockouts(pool, QUIET, 100, &deleted, err,
	                                   sizeof(err)),
	                 0);
	assert_int_equal(deleted, 100);
	assert_int_equal(count("true"), 150);
	assert_int_equal(db_sweep_lockouts(pool, QUIET, 1000, &deleted, err,
	                                   sizeof(err)),
	                 0);
	assert_int_equal(deleted, 150);
	assert_int_equal(count("true"), 0);
}

static void
bad_arguments_and_a_stopped_database_are_errors(void **state)
{
	char err[512];
	int deleted = -1;

	(void)state;
	assert_int_equal(db_sweep_lockouts(pool, 0, 100, &deleted, err,
	                                   sizeof(err)),
	                 DB_EINVAL);
	assert_int_equal(deleted, 0);
	th_pg_stop();
	deleted = -1;
	err[0] = '\0';
	assert_true(db_sweep_lockouts(pool, QUIET, 100, &deleted, err,
	                              sizeof(err)) < 0);
	assert_int_equal(deleted, 0);
	assert_true(err[0] != '\0');
	th_pg_start();
	PQreset(pg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sweeps_only_what_cannot_matter),
	    cmocka_unit_test(batches_are_bounded),
	    cmocka_unit_test(bad_arguments_and_a_stopped_database_are_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
