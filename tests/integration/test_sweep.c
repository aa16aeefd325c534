/*
 * Integration: the lockout sweep (db/db_sweep.h) against the harness's
 * real PostgreSQL. Only counters that can no longer change a decision go:
 * quiet for longer than the given time and not locked now; the batch limit
 * holds; a database that is down is an error, not a silent zero. The
 * housekeeping sweep (db_sweep_old) deletes only rows past their time.
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

static long
count_sql(const char *sql)
{
	PGresult *res = PQexec(pg, sql);
	long n;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(pg));
	n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

/* Sweeps one kind keeping rows `keep` seconds past their time; at least
 * `at_least` rows went (other tests' rows of the same age may go too). */
static void
sweep_kind(enum db_sweep_kind kind, long long keep, int at_least)
{
	char err[512];
	int deleted = -1;

	if (db_sweep_old(pool, kind, keep, 1000, &deleted, err,
	                 sizeof(err)) != 0)
		fail_msg("sweep %s: %s", db_sweep_kind_name(kind), err);
	if (deleted < at_least)
		fail_msg("sweep %s deleted %d, expected at least %d",
		         db_sweep_kind_name(kind), deleted, at_least);
}

/* Housekeeping: each kind deletes its rows whose time lies more than the
 * given age in the past, and nothing younger or still live; a session's
 * admission outlives it (session_hash NULL). */
static void
housekeeping_deletes_only_old_rows(void **state)
{
	(void)state;
	sql_ok("INSERT INTO saml_requests (request_id, binding_hash, "
	       "return_path, created_at, expires_at) VALUES "
	       "('hk-req-old', sha256('a'), '/', now() - interval '3 hours', "
	       " now() - interval '2 hours'),"
	       "('hk-req-fresh', sha256('b'), '/', now() - interval '3 hours',"
	       " now() - interval '10 minutes'),"
	       "('hk-req-live', sha256('c'), '/', now(), "
	       " now() + interval '5 minutes')");
	sql_ok("INSERT INTO saml_replay (assertion_id, expires_at) VALUES "
	       "('hk-rep-old', now() - interval '1 hour'),"
	       "('hk-rep-live', now() + interval '1 hour')");
	sql_ok("INSERT INTO sessions (id_hash, identity, idp_entity_id, "
	       "name_id, created_at, expires_at, revoked_at, revoke_reason) "
	       "VALUES "
	       "(sha256('hk-s-old'), 'hk-old', 'idp', 'n', "
	       " now() - interval '3 days', now() - interval '2 days', NULL,"
	       " NULL),"
	       "(sha256('hk-s-revoked-old'), 'hk-rev', 'idp', 'n', "
	       " now() - interval '3 days', now() - interval '2 days', "
	       " now() - interval '3 days' + interval '1 hour', 'logout'),"
	       "(sha256('hk-s-expired-recent'), 'hk-rec', 'idp', 'n', "
	       " now() - interval '10 hours', now() - interval '1 hour', NULL,"
	       " NULL),"
	       "(sha256('hk-s-live'), 'hk-live', 'idp', 'n', now(), "
	       " now() + interval '8 hours', NULL, NULL)");
	sql_ok("INSERT INTO meetings (id, link_id, title, host_identity, "
	       "allowed_groups, platform_room) VALUES "
	       "('00000000-0000-4000-8000-00000000a11a', "
	       " 'hk-link-0123456789abcdef', 'hk', 'host', "
	       " ARRAY['cn=g'], 'hk-room')");
	sql_ok("INSERT INTO admissions (id, meeting_id, session_hash, identity,"
	       " matched_group, state, admitted_at, ended_at, revoke_reason) "
	       "VALUES "
	       "('00000000-0000-4000-8000-0000000000a1', "
	       " '00000000-0000-4000-8000-00000000a11a', sha256('hk-s-old'), "
	       " 'hk-old', 'cn=g', 'admitted', now() - interval '3 days', "
	       " NULL, NULL),"
	       "('00000000-0000-4000-8000-0000000000a2', "
	       " '00000000-0000-4000-8000-00000000a11a', NULL, 'hk-ended-old',"
	       " 'cn=g', 'revoked', now() - interval '40 days', "
	       " now() - interval '40 days', 'admin'),"
	       "('00000000-0000-4000-8000-0000000000a3', "
	       " '00000000-0000-4000-8000-00000000a11a', NULL, 'hk-ended-new',"
	       " 'cn=g', 'revoked', now() - interval '2 days', "
	       " now() - interval '2 days', 'admin')");
	sql_ok("INSERT INTO outbox (topic, payload, delivered_at, dead_at) "
	       "VALUES "
	       "('hk.delivered_old', '{}', now() - interval '8 days', NULL),"
	       "('hk.delivered_new', '{}', now() - interval '1 day', NULL),"
	       "('hk.dead_old', '{}', NULL, now() - interval '31 days'),"
	       "('hk.dead_new', '{}', NULL, now() - interval '2 days'),"
	       "('hk.pending', '{}', NULL, NULL)");

	sweep_kind(DB_SWEEP_SAML_REQUESTS, 3600, 1);
	assert_int_equal(count_sql("SELECT count(*) FROM saml_requests WHERE "
	                           "request_id LIKE 'hk-req-%'"),
	                 2);
	assert_int_equal(count_sql("SELECT count(*) FROM saml_requests WHERE "
	                           "request_id = 'hk-req-old'"),
	                 0);
	sweep_kind(DB_SWEEP_SAML_REPLAY, 300, 1);
	assert_int_equal(count_sql("SELECT count(*) FROM saml_replay WHERE "
	                           "assertion_id LIKE 'hk-rep-%'"),
	                 1);
	assert_int_equal(count_sql("SELECT count(*) FROM saml_replay WHERE "
	                           "assertion_id = 'hk-rep-live'"),
	                 1);
	sweep_kind(DB_SWEEP_SESSIONS, 86400, 2);
	assert_int_equal(count_sql("SELECT count(*) FROM sessions WHERE "
	                           "identity LIKE 'hk-%'"),
	                 2);
	assert_int_equal(count_sql("SELECT count(*) FROM sessions WHERE "
	                           "identity IN ('hk-rec', 'hk-live')"),
	                 2);
	/* The old session's admission is still there, without its session. */
	assert_int_equal(count_sql("SELECT count(*) FROM admissions WHERE "
	                           "identity = 'hk-old' AND session_hash IS "
	                           "NULL"),
	                 1);
	sweep_kind(DB_SWEEP_OUTBOX_DELIVERED, 7 * 86400, 1);
	sweep_kind(DB_SWEEP_OUTBOX_DEAD, 30 * 86400, 1);
	assert_int_equal(count_sql("SELECT count(*) FROM outbox WHERE "
	                           "topic LIKE 'hk.%'"),
	                 3);
	assert_int_equal(count_sql("SELECT count(*) FROM outbox WHERE topic IN "
	                           "('hk.delivered_new', 'hk.dead_new', "
	                           "'hk.pending')"),
	                 3);
	sweep_kind(DB_SWEEP_ADMISSIONS_ENDED, 30 * 86400, 1);
	assert_int_equal(count_sql("SELECT count(*) FROM admissions WHERE "
	                           "meeting_id = "
	                           "'00000000-0000-4000-8000-00000000a11a'"),
	                 2);
	assert_int_equal(count_sql("SELECT count(*) FROM admissions WHERE "
	                           "identity = 'hk-ended-old'"),
	                 0);
	/* A second pass of each finds nothing of ours. */
	for (int k = 0; k < DB_SWEEP_NKINDS; k++)
		sweep_kind((enum db_sweep_kind)k, 30 * 86400, 0);
	assert_int_equal(count_sql("SELECT count(*) FROM outbox WHERE "
	                           "topic LIKE 'hk.%'"),
	                 3);
	assert_string_equal(db_sweep_kind_name(DB_SWEEP_OUTBOX_DEAD),
	                    "outbox_dead");
	sql_ok("DELETE FROM admissions WHERE meeting_id = "
	       "'00000000-0000-4000-8000-00000000a11a'");
	sql_ok("DELETE FROM meetings WHERE id = "
	       "'00000000-0000-4000-8000-00000000a11a'");
	sql_ok("DELETE FROM outbox WHERE topic LIKE 'hk.%'");
	sql_ok("DELETE FROM sessions WHERE identity LIKE 'hk-%'");
	sql_ok("DELETE FROM saml_requests WHERE request_id LIKE 'hk-req-%'");
	sql_ok("DELETE FROM saml_replay WHERE assertion_id LIKE 'hk-rep-%'");
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
	deleted = -1;
	assert_int_equal(db_sweep_old(pool, DB_SWEEP_SESSIONS, -1, 100,
	                              &deleted, err, sizeof(err)),
	                 DB_EINVAL);
	assert_int_equal(deleted, 0);
	assert_int_equal(db_sweep_old(pool, DB_SWEEP_NKINDS, 10, 100, &deleted,
	                              err, sizeof(err)),
	                 DB_EINVAL);
	assert_int_equal(db_sweep_old(pool, DB_SWEEP_SESSIONS, 10, 0, &deleted,
	                              err, sizeof(err)),
	                 DB_EINVAL);
	th_pg_stop();
	deleted = -1;
	err[0] = '\0';
	assert_true(db_sweep_lockouts(pool, QUIET, 100, &deleted, err,
	                              sizeof(err)) < 0);
	assert_int_equal(deleted, 0);
	assert_true(err[0] != '\0');
	deleted = -1;
	err[0] = '\0';
	assert_true(db_sweep_old(pool, DB_SWEEP_SESSIONS, 10, 100, &deleted,
	                         err, sizeof(err)) < 0);
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
	    cmocka_unit_test(housekeeping_deletes_only_old_rows),
	    cmocka_unit_test(bad_arguments_and_a_stopped_database_are_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
