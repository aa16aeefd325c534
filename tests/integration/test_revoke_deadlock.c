/*
 * Integration: a revocation against an admission batch that holds one
 * session of the person and waits for another (review finding G1).
 *
 * Made deterministic as the review's reproduction does: on a fresh,
 * migrated database, person x has sessions s2 then s1 (s2 first in the
 * heap, and also first by id_hash, so even the ordered lock of the
 * revocation meets the batch's lock on s1 while holding s2). A two-attempt
 * batch (x@s1 in meeting M1, x@s2 in M2) is paused between its attempts by
 * a connection holding M2's meeting lock (as a meeting deletion does); the
 * revocation runs once the batch waits there (pg_locks). PostgreSQL sees the
 * cycle (pg_stat_database counts it) and aborts one side. What is shown: the
 * revocation still succeeds (db_identity_revoke, the admin's revoke, and
 * db_session_revoke_subject, the IdP logout), every session of x is
 * revoked, no admission of x stays live, and the admin's revoke wrote
 * exactly one audit record and one outbox event.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "tests/lib/th.h"

#define M1 "11111111-1111-1111-1111-111111111111"
#define M2 "22222222-2222-2222-2222-222222222222"
#define IDP "https://idp-deadlock.test/saml"

static char dbname[64];
static char conninfo[2048];

/* Appends key='value' (libpq quoting) to buf. */
static void
kv_add(char *buf, size_t len, const char *key, const char *val)
{
	size_t n = strlen(buf);

	n += (size_t)snprintf(buf + n, len - n, "%s%s='", n ? " " : "", key);
	for (; *val != '\0' && n + 3 < len; val++) {
		if (*val == '\'' || *val == '\\')
			buf[n++] = '\\';
		buf[n++] = *val;
	}
	assert_true(n + 2 < len);
	buf[n++] = '\'';
	buf[n] = '\0';
}

static PGconn *
conn(const char *ci)
{
	PGconn *c = PQconnectdb(ci);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(c));
	return c;
}

static void
exec_ok(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	int st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
}

static long
count(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	long v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

static long
deadlocks(void)
{
	PGconn *c = conn(conninfo);
	long n;

	/* statistics are sent at the end of each transaction; take a fresh
	 * snapshot of them */
	exec_ok(c, "SELECT pg_stat_clear_snapshot()");
	n = count(c, "SELECT deadlocks FROM pg_stat_database WHERE datname "
	             "= current_database()");
	PQfinish(c);
	return n;
}

static int
group_setup(void **state)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL, sql[256], err[512];
	PGconn *a;
	int applied;

	(void)state;
	snprintf(dbname, sizeof(dbname), "roomgate_dl_%d", (int)getpid());
	opts = PQconninfoParse(th_env("RG_TEST_PG_URL"), &perr);
	assert_non_null(opts);
	conninfo[0] = '\0';
	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, "dbname") != 0)
			kv_add(conninfo, sizeof(conninfo), o->keyword, o->val);
	kv_add(conninfo, sizeof(conninfo), "dbname", dbname);
	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, "user") == 0)
			break;
	assert_non_null(o->keyword);
	a = conn(th_env("RG_TEST_PG_ADMIN_URL"));
	{
		char *id = PQescapeIdentifier(a, o->val, strlen(o->val));

		assert_non_null(id);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s",
		         dbname, id);
		PQfreemem(id);
	}
	PQconninfoFree(opts);
	exec_ok(a, sql);
	PQfinish(a);
	if (db_migrate(conninfo, &applied, err, sizeof(err)) != 0)
		fail_msg("migrate: %s", err);
	return 0;
}

static int
group_teardown(void **state)
{
	char sql[160];
	PGconn *a;

	(void)state;
	a = conn(th_env("RG_TEST_PG_ADMIN_URL"));
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
	         dbname);
	exec_ok(a, sql);
	PQfinish(a);
	return 0;
}

/* Person x: meetings M1 and M2, sessions s2 then s1, nothing else. */
static void
seed(PGconn *c)
{
	exec_ok(c, "DELETE FROM admissions WHERE identity = 'x'");
	exec_ok(c, "DELETE FROM sessions WHERE identity = 'x'");
	exec_ok(c, "DELETE FROM meetings WHERE id IN ('" M1 "', '" M2 "')");
	exec_ok(c, "INSERT INTO meetings (id, link_id, title, host_identity, "
	           "allowed_groups, platform_room) VALUES ('" M1 "', "
	           "'dllinkone0000000', 't', 'h', '{cn=g}', 'dlroom1'), ('" M2
	           "', 'dllinktwo0000000', 't', 'h', '{cn=g}', 'dlroom2')");
	exec_ok(c, "INSERT INTO sessions (id_hash, identity, idp_entity_id, "
	           "name_id, expires_at) VALUES (sha256('s2'), 'x', '" IDP
	           "', 'x', now() + interval '1 hour')");
	exec_ok(c, "INSERT INTO sessions (id_hash, identity, idp_entity_id, "
	           "name_id, expires_at) VALUES (sha256('s1'), 'x', '" IDP
	           "', 'x', now() + interval '1 hour')");
	/* the cycle needs s2 before s1 in the revocation's lock order */
	assert_int_equal(count(c, "SELECT (sha256('s2') < sha256('s1'))::int"),
	                 1);
}

/* One allowed attempt of x in meeting m with session label s, in
 * roomgate_admit_batch's input form (migration 0024). */
static void
attempt(char *out, size_t len, const char *m, const char *s, const char *aid)
{
	snprintf(out, len,
	         "{\"im_key\":\"x %s\",\"src_key\":\"127.0.0.1\","
	         "\"max_failures\":5,\"window_s\":600,\"lockable\":true,"
	         "\"failure\":false,\"count_source\":true,\"src_max\":100,"
	         "\"quiet_s\":0,\"im_lock_s\":\"{60}\",\"src_lock_s\":\"{60}\","
	         "\"probe_identities\":0,\"probe_window_s\":600,"
	         "\"admission_id\":\"%s\",\"meeting_id\":\"%s\","
	         "\"session_hash\":\"' || encode(sha256('%s'), 'hex') || '\","
	         "\"state\":\"admitted\",\"waiting_s\":1800,\"outcome\":"
	         "\"allow\",\"reason\":\"admitted\",\"identity\":\"x\","
	         "\"idp\":\"" IDP "\",\"matched_group\":\"cn=g\","
	         "\"source_addr\":\"127.0.0.1\",\"forwarded_for\":null,"
	         "\"user_agent\":\"ua\",\"request_id\":\"r\",\"node\":\"n\","
	         "\"code_ok\":true,\"member_ok\":true,\"details\":\"{}\"}",
	         m, aid, m, s);
}

/* Polls sql (one %d: pid) until it counts at least one row (20 s). */
static void
wait_for(int pid, const char *sql)
{
	char q[512];
	PGconn *c = conn(conninfo);

	snprintf(q, sizeof(q), sql, pid);
	for (int ms = 0; ms < 20000; ms += 20) {
		if (count(c, q) > 0) {
			PQfinish(c);
			return;
		}
		usleep(20000);
	}
	PQfinish(c);
	fail_msg("timed out: %s", q);
}

struct race {
	PGconn *pause, *batch;
	long deadlocks0;
};

/* Starts the meeting-lock pause and, once it holds M2, the batch. */
static void
race_start(struct race *rc)
{
	char a1[1200], a2[1200], sql[3000];

	rc->deadlocks0 = deadlocks();
	rc->pause = conn(conninfo);
	rc->batch = conn(conninfo);
	assert_int_equal(PQsendQuery(rc->pause,
	                             "BEGIN; SELECT pg_advisory_xact_lock("
	                             "roomgate_meeting_lock('" M2 "')); SELECT "
	                             "pg_sleep(3); COMMIT"),
	                 1);
	wait_for(PQbackendPID(rc->pause),
	         "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
	         "AND granted AND pid = %d");
	attempt(a1, sizeof(a1), M1, "s1",
	        "aaaaaaaa-0000-0000-0000-000000000001");
	attempt(a2, sizeof(a2), M2, "s2",
	        "aaaaaaaa-0000-0000-0000-000000000002");
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FILTER (WHERE err_state IS NULL) FROM "
	         "roomgate_admit_batch(('[%s,%s]')::jsonb)",
	         a1, a2);
	assert_int_equal(PQsendQuery(rc->batch, sql), 1);
	/* the batch holds s1 and waits for M2 */
	wait_for(PQbackendPID(rc->batch),
	         "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
	         "AND NOT granted AND pid = %d");
}

static void
drain(PGconn *c)
{
	PGresult *res;

	while ((res = PQgetResult(c)) != NULL) {
		int st = PQresultStatus(res);

		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
			fail_msg("%s", PQresultErrorMessage(res));
		PQclear(res);
	}
}

static void
race_end(struct race *rc)
{
	drain(rc->batch);
	drain(rc->pause);
	PQfinish(rc->batch);
	PQfinish(rc->pause);
	/* the revocation met the batch in a real cycle (statistics reach
	 * pg_stat_database some time after the victim's transaction) */
	for (int ms = 0; deadlocks() <= rc->deadlocks0; ms += 100) {
		if (ms >= 20000)
			fail_msg("no deadlock was counted");
		usleep(100000);
	}
}

static void
open_pool(struct db_pool **pool)
{
	struct db_config cfg = {conninfo, 2, 5, 20000, 20000};
	char err[512];

	if (db_pool_open(&cfg, pool, err, sizeof(err)) != 0)
		fail_msg("db_pool_open: %s", err);
}

static void
admin_revoke_wins_over_a_batch(void **state)
{
	struct db_identity_revoke rv = {.identity = "x",
	                                .actor = "admin",
	                                .via = "test",
	                                .source_addr = "127.0.0.1",
	                                .user_agent = "ua",
	                                .request_id = "rq-deadlock",
	                                .node = "n",
	                                .note = "g1",
	                                .idp = IDP,
	                                .forwarded_for = NULL};
	struct db_pool *pool;
	struct race rc;
	PGconn *c = conn(conninfo);
	long ns = -1, na = -1;
	char err[512] = "";
	int r;

	(void)state;
	seed(c);
	open_pool(&pool);
	race_start(&rc);
	r = db_identity_revoke(pool, &rv, &ns, &na, err, sizeof(err));
	race_end(&rc);
	if (r != 0)
		fail_msg("revoke failed: %d %s", r, err);
	assert_int_equal(ns, 2);
	assert_int_equal(count(c, "SELECT count(*) FROM sessions WHERE "
	                          "identity = 'x' AND revoked_at IS NULL"),
	                 0);
	assert_int_equal(count(c, "SELECT count(*) FROM admissions WHERE "
	                          "identity = 'x' AND state IN ('admitted', "
	                          "'waiting')"),
	                 0);
	/* PostgreSQL aborts either side of the cycle: the revocation
	 * (run again, it ends both admissions the batch wrote) or the
	 * batch's second attempt (recorded again alone after the revocation,
	 * it finds s2 revoked and admits nothing) */
	assert_in_range(na, 1, 2);
	assert_int_equal(count(c, "SELECT count(*) FROM admissions WHERE "
	                          "identity = 'x' AND state = 'revoked' AND "
	                          "revoke_reason = 'admin'"),
	                 na);
	assert_int_equal(count(c, "SELECT count(*) FROM audit_log WHERE "
	                          "event_type = 'identity.revoke' AND "
	                          "identity = 'x'"),
	                 1);
	assert_int_equal(count(c, "SELECT count(*) FROM outbox WHERE topic "
	                          "= 'identity.revoked' AND payload->>"
	                          "'identity' = 'x'"),
	                 1);
	db_pool_close(pool);
	PQfinish(c);
}

static void
idp_logout_wins_over_a_batch(void **state)
{
	struct db_pool *pool;
	struct race rc;
	PGconn *c = conn(conninfo);
	long n = -1;
	char err[512] = "";
	int r;

	(void)state;
	seed(c);
	open_pool(&pool);
	race_start(&rc);
	r = db_session_revoke_subject(pool, IDP, "x", NULL, "logout", &n, err,
	                              sizeof(err));
	race_end(&rc);
	if (r != 0)
		fail_msg("logout failed: %d %s", r, err);
	assert_int_equal(n, 2);
	assert_int_equal(count(c, "SELECT count(*) FROM sessions WHERE "
	                          "identity = 'x' AND revoked_at IS NULL"),
	                 0);
	db_pool_close(pool);
	PQfinish(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(admin_revoke_wins_over_a_batch),
	    cmocka_unit_test(idp_logout_wins_over_a_batch),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
