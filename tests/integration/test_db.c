/*
 * Integration: db/ against the harness's real PostgreSQL. Migrations on
 * fresh databases (made through the admin URL, owned by the application
 * role, dropped at the end), two processes migrating at once, the schema's
 * append-only audit_log and key constraints, and the pool: lazy connect,
 * acquire timeout, waiters, clean-up on release, a killed backend, a full
 * PostgreSQL restart, and messages without passwords.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "db/db_int.h"
#include "tests/lib/th.h"

#define MAX_DBS 32

static char app_user[128];
static char app_password[256];
static char created[MAX_DBS][64];
static int ncreated;
static int pg_stopped; /* restart test: start it again in teardown */

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static PGconn *
connect_or_fail(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	assert_non_null(c);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("cannot connect: %s", PQerrorMessage(c));
	return c;
}

/* Runs fixed test SQL (no parameters) and asserts it worked. */
static void
sql_ok(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
}

/* Runs SQL that must fail; returns its SQLSTATE (static buffer). */
static const char *
sql_fails(PGconn *c, const char *sql, const char *want_in_message)
{
	static char state[6];
	PGresult *res = PQexec(c, sql);
	const char *s, *msg;

	if (PQresultStatus(res) != PGRES_FATAL_ERROR)
		fail_msg("expected an error from: %s", sql);
	s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	assert_non_null(s);
	assert_non_null(msg);
	if (want_in_message != NULL && strstr(msg, want_in_message) == NULL)
		fail_msg("error for %s was \"%s\", expected \"%s\" in it", sql,
		         msg, want_in_message);
	snprintf(state, sizeof(state), "%s", s);
	PQclear(res);
	return state;
}

static long
sql_long(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	long v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	v = PQgetisnull(res, 0, 0) ? -1
	                           : strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

/* Appends key='value' (libpq quoting) to buf. */
static void
kv_append(char *buf, size_t len, const char *key, const char *val)
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

/* url (a harness URL) with another database, as key=value conninfo. */
static void
conninfo_for(const char *url, const char *dbname, char *out, size_t outlen)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL;

	opts = PQconninfoParse(url, &perr);
	assert_non_null(opts);
	out[0] = '\0';
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
			continue;
		kv_append(out, outlen, o->keyword, o->val);
	}
	kv_append(out, outlen, "dbname", dbname);
	PQconninfoFree(opts);
}

/* A new empty database owned by the application role; conninfo for it. */
static void
fresh_db(char *conninfo, size_t len)
{
	char sql[256], *ident;
	PGconn *a;

	assert_true(ncreated < MAX_DBS);
	snprintf(created[ncreated], sizeof(created[0]), "roomgate_mig_%d_%d",
	         (int)getpid(), ncreated);
	a = connect_or_fail(th_env("RG_TEST_PG_ADMIN_URL"));
	ident = PQescapeIdentifier(a, app_user, strlen(app_user));
	assert_non_null(ident);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s",
	         created[ncreated], ident);
	PQfreemem(ident);
	sql_ok(a, sql);
	PQfinish(a);
	conninfo_for(th_env("RG_TEST_PG_URL"), created[ncreated], conninfo,
	             len);
	ncreated++;
}

static int
group_setup(void **state)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL;

	(void)state;
	opts = PQconninfoParse(th_env("RG_TEST_PG_URL"), &perr);
	assert_non_null(opts);
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "user") == 0)
			snprintf(app_user, sizeof(app_user), "%s", o->val);
		if (strcmp(o->keyword, "password") == 0)
			snprintf(app_password, sizeof(app_password), "%s",
			         o->val);
	}
	PQconninfoFree(opts);
	assert_true(app_user[0] != '\0');
	return 0;
}

static int
group_teardown(void **state)
{
	char sql[160];
	PGconn *a;
	int i;

	(void)state;
	a = connect_or_fail(th_env("RG_TEST_PG_ADMIN_URL"));
	for (i = 0; i < ncreated; i++) {
		snprintf(sql, sizeof(sql),
		         "DROP DATABASE IF EXISTS %s WITH (FORCE)", created[i]);
		sql_ok(a, sql);
	}
	PQfinish(a);
	return 0;
}

static void
open_pool(struct db_pool **pool, const char *conninfo, int size, int acquire_ms)
{
	struct db_config cfg = {conninfo, size, 2, 5000, acquire_ms};
	char err[512];
	int r = db_pool_open(&cfg, pool, err, sizeof(err));

	if (r != 0)
		fail_msg("db_pool_open: %d %s", r, err);
}

/* ---- migrations -------------------------------------------------------- */

static void
migrate_applies_all_then_nothing(void **state)
{
	char ci[1024], err[512], sum[65];
	int applied = -1;
	size_t i;
	PGconn *c;
	long first_applied_at;

	(void)state;
	fresh_db(ci, sizeof(ci));
	assert_true(db_migrations_count >= 1);
	assert_int_equal(db_migrate(ci, &applied, err, sizeof(err)), 0);
	assert_int_equal(applied, (int)db_migrations_count);

	c = connect_or_fail(ci);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM schema_migrations"),
	                 (long)db_migrations_count);
	assert_int_equal(sql_long(c, "SELECT max(version) FROM "
	                             "schema_migrations"),
	                 db_migrations_latest());
	for (i = 0; i < db_migrations_count; i++) {
		char q[256];

		db_migration_checksum(&db_migrations[i], sum);
		snprintf(q, sizeof(q),
		         "SELECT count(*) FROM schema_migrations WHERE "
		         "version = %d AND name = '%s' AND checksum = '%s'",
		         db_migrations[i].version, db_migrations[i].name, sum);
		assert_int_equal(sql_long(c, q), 1);
	}
	/* the schema is really there */
	assert_int_equal(sql_long(c, "SELECT count(*) FROM pg_tables WHERE "
	                             "schemaname = 'public' AND tablename IN "
	                             "('meetings','meeting_codes',"
	                             "'meeting_invitees','sessions',"
	                             "'admissions','lockout_counters',"
	                             "'audit_log','outbox','saml_replay',"
	                             "'saml_requests')"),
	                 10);
	first_applied_at = sql_long(
	    c, "SELECT (extract(epoch FROM max(applied_at)) * 1000000)::bigint "
	       "FROM schema_migrations");

	applied = -1;
	assert_int_equal(db_migrate(ci, &applied, err, sizeof(err)), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM schema_migrations"),
	                 (long)db_migrations_count);
	assert_int_equal(
	    sql_long(c, "SELECT (extract(epoch FROM max(applied_at)) * 1000000)"
	                "::bigint FROM schema_migrations"),
	    first_applied_at);
	PQfinish(c);
}

static void
migrate_two_processes_at_once(void **state)
{
	char ci[1024];
	int round;

	(void)state;
	/* Several rounds: a missing lock loses this race most of the time,
	 * not necessarily every time. */
	for (round = 0; round < 3; round++) {
		int gate[2], st, codes[2], k;
		pid_t pid[2];
		PGconn *c;

		fresh_db(ci, sizeof(ci));
		assert_int_equal(pipe(gate), 0);
		for (k = 0; k < 2; k++) {
			pid[k] = fork();
			assert_true(pid[k] >= 0);
			if (pid[k] == 0) {
				char err[512], b;
				int applied = -1, r;

				close(gate[1]);
				/* both start when the parent closes the pipe */
				while (read(gate[0], &b, 1) > 0)
					;
				r = db_migrate(ci, &applied, err, sizeof(err));
				if (r != 0)
					fprintf(stderr, "child %d: %s\n", k,
					        err);
				_exit(r == 0 ? applied : 100 - r);
			}
		}
		close(gate[0]);
		close(gate[1]);
		for (k = 0; k < 2; k++) {
			assert_int_equal(waitpid(pid[k], &st, 0), pid[k]);
			assert_true(WIFEXITED(st));
			codes[k] = WEXITSTATUS(st);
			assert_true(codes[k] < 100); /* db_migrate succeeded */
		}
		/* one applied everything, the other found it done */
		assert_int_equal(codes[0] + codes[1], (int)db_migrations_count);
		assert_true(codes[0] == 0 || codes[1] == 0);

		c = connect_or_fail(ci);
		assert_int_equal(
		    sql_long(c, "SELECT count(*) FROM schema_migrations"),
		    (long)db_migrations_count);
		assert_int_equal(sql_long(c, "SELECT count(DISTINCT version) "
		                             "FROM schema_migrations"),
		                 (long)db_migrations_count);
		PQfinish(c);
	}
}

static void
migrate_reports_changed_migration(void **state)
{
	char ci[1024], err[512];
	int applied = -1;
	PGconn *c;

	(void)state;
	fresh_db(ci, sizeof(ci));
	assert_int_equal(db_migrate(ci, NULL, err, sizeof(err)), 0);
	c = connect_or_fail(ci);
	sql_ok(c, "UPDATE schema_migrations SET checksum = repeat('0', 64) "
	          "WHERE version = 1");
	assert_int_equal(db_migrate(ci, &applied, err, sizeof(err)),
	                 DB_ESCHEMA);
	assert_int_equal(applied, 0);
	assert_non_null(
	    strstr(err, "migration 0001 was changed after it was applied"));
	PQfinish(c);
}

static void
migrate_refuses_newer_schema(void **state)
{
	char ci[1024], err[512];
	PGconn *c;

	(void)state;
	fresh_db(ci, sizeof(ci));
	assert_int_equal(db_migrate(ci, NULL, err, sizeof(err)), 0);
	c = connect_or_fail(ci);
	sql_ok(c, "INSERT INTO schema_migrations (version, name, checksum) "
	          "VALUES (9999, '9999_future', repeat('a', 64))");
	assert_int_equal(db_migrate(ci, NULL, err, sizeof(err)), DB_ESCHEMA);
	assert_non_null(strstr(err, "9999"));
	assert_non_null(strstr(err, "newer than this roomgate binary"));
	PQfinish(c);
}

static void
failed_migration_is_rolled_back(void **state)
{
	static const char broken_sql[] =
	    "CREATE TABLE t_partial (x integer);\n"
	    "INSERT INTO t_partial VALUES (1);\n"
	    "SELECT no_such_column FROM t_partial;\n";
	static const char commits_sql[] =
	    "CREATE TABLE t_committed (x integer);\nCOMMIT;\n";
	struct db_migration list[64];
	char ci[1024], err[512], want[128];
	int applied = -1, latest = db_migrations_latest();
	size_t n = db_migrations_count;
	PGconn *c;

	(void)state;
	assert_true(n + 1 < sizeof(list) / sizeof(list[0]));
	memcpy(list, db_migrations, n * sizeof(list[0]));
	list[n].version = latest + 1;
	list[n].name = "9000_broken";
	list[n].sql = broken_sql;
	list[n].sql_len = strlen(broken_sql);

	fresh_db(ci, sizeof(ci));
	assert_int_equal(
	    db_migrate_list(ci, list, n + 1, &applied, err, sizeof(err)),
	    DB_EQUERY);
	/* the good ones before it stay applied */
	assert_int_equal(applied, (int)n);
	snprintf(want, sizeof(want), "migration 9000_broken failed at line 3");
	if (strstr(err, want) == NULL)
		fail_msg("message was: %s", err);
	assert_non_null(strstr(err, "no_such_column"));

	c = connect_or_fail(ci);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM pg_tables WHERE "
	                             "tablename = 't_partial'"),
	                 0);
	assert_int_equal(sql_long(c, "SELECT count(*) FROM schema_migrations"),
	                 (long)n);

	/* a migration that commits by itself is refused */
	list[n].sql = commits_sql;
	list[n].sql_len = strlen(commits_sql);
	assert_int_equal(
	    db_migrate_list(ci, list, n + 1, &applied, err, sizeof(err)),
	    DB_EQUERY);
	assert_int_equal(applied, 0);
	assert_non_null(strstr(err, "must not contain BEGIN, COMMIT"));
	assert_int_equal(sql_long(c, "SELECT count(*) FROM schema_migrations"),
	                 (long)n);
	PQfinish(c);
}

/* ---- schema -------------------------------------------------------------- */

static void
audit_log_is_append_only(void **state)
{
	char ci[1024], err[512];
	PGconn *c, *a;

	(void)state;
	fresh_db(ci, sizeof(ci));
	assert_int_equal(db_migrate(ci, NULL, err, sizeof(err)), 0);
	c = connect_or_fail(ci);
	sql_ok(c, "INSERT INTO audit_log (event_type, outcome, reason, "
	          "identity, source_addr, code_ok, member_ok, details) VALUES "
	          "('join', 'deny', 'not_member', 'alice', '192.0.2.1', true, "
	          "false, '{\"k\": 1}')");
	assert_int_equal(sql_long(c, "SELECT count(*) FROM audit_log WHERE "
	                             "at IS NOT NULL AND seq > 0"),
	                 1);

	sql_fails(c, "UPDATE audit_log SET outcome = 'allow'", "append-only");
	sql_fails(c, "DELETE FROM audit_log", "append-only");
	sql_fails(c, "TRUNCATE audit_log", "append-only");
	/* the owner role is refused, and so is a superuser */
	conninfo_for(th_env("RG_TEST_PG_ADMIN_URL"), PQdb(c), ci, sizeof(ci));
	a = connect_or_fail(ci);
	sql_fails(a, "DELETE FROM audit_log", "append-only");
	sql_fails(a, "TRUNCATE audit_log", "append-only");
	PQfinish(a);

	assert_int_equal(sql_long(c, "SELECT count(*) FROM audit_log WHERE "
	                             "outcome = 'deny'"),
	                 1);
	/* inserting still works after the refusals */
	sql_ok(c, "INSERT INTO audit_log (event_type, outcome) VALUES "
	          "('meeting_create', 'info')");
	assert_int_equal(sql_long(c, "SELECT count(*) FROM audit_log"), 2);
	PQfinish(c);
}

static void
schema_constraints_hold(void **state)
{
	char ci[1024], err[512];
	PGconn *c;

	(void)state;
	fresh_db(ci, sizeof(ci));
	assert_int_equal(db_migrate(ci, NULL, err, sizeof(err)), 0);
	c = connect_or_fail(ci);

	/* code length outside 6..12 */
	assert_string_equal(
	    sql_fails(c,
	              "INSERT INTO meetings (link_id, title, host_identity, "
	              "allowed_groups, platform_room, code_length) VALUES "
	              "('aaaaaaaaaaaaaaaa', 't', 'h', "
	              "'{cn=g,dc=example}', 'r1', 5)",
	              NULL),
	    "23514");
	/* a meeting no group may join */
	assert_string_equal(
	    sql_fails(c,
	              "INSERT INTO meetings (link_id, title, host_identity, "
	              "allowed_groups, platform_room) VALUES "
	              "('bbbbbbbbbbbbbbbb', 't', 'h', '{}', 'r1')",
	              NULL),
	    "23514");
	sql_ok(c,
	       "INSERT INTO meetings (id, link_id, title, host_identity, "
	       "allowed_groups, platform_room) VALUES "
	       "('00000000-0000-4000-8000-000000000001', "
	       "'cccccccccccccccc', 'Board', 'host', "
	       "'{\"cn=board,ou=groups,dc=example,dc=com\"}', 'board-room')");
	assert_int_equal(sql_long(c, "SELECT code_length FROM meetings"), 8);
	/* two live meetings on one platform room */
	assert_string_equal(
	    sql_fails(c,
	              "INSERT INTO meetings (link_id, title, host_identity, "
	              "allowed_groups, platform_room) VALUES "
	              "('dddddddddddddddd', 't', 'h', '{g}', 'board-room')",
	              NULL),
	    "23505");

	/* at most one current code per meeting */
	sql_ok(c, "INSERT INTO meeting_codes (meeting_id, code_hash, "
	          "code_sealed, key_id) VALUES "
	          "('00000000-0000-4000-8000-000000000001', "
	          "decode(repeat('ab', 32), 'hex'), "
	          "decode(repeat('cd', 40), 'hex'), 'k1')");
	assert_string_equal(
	    sql_fails(c,
	              "INSERT INTO meeting_codes (meeting_id, code_hash, "
	              "code_sealed, key_id) VALUES "
	              "('00000000-0000-4000-8000-000000000001', "
	              "decode(repeat('ef', 32), 'hex'), "
	              "decode(repeat('cd', 40), 'hex'), 'k1')",
	              "meeting_codes_one_current"),
	    "23505");
	/* a previous code needs the end of its grace period */
	assert_string_equal(
	    sql_fails(c,
	              "INSERT INTO meeting_codes (meeting_id, code_hash, "
	              "code_sealed, key_id, state) VALUES "
	              "('00000000-0000-4000-8000-000000000001', "
	              "decode(repeat('ef', 32), 'hex'), "
	              "decode(repeat('cd', 40), 'hex'), 'k1', 'previous')",
	              NULL),
	    "23514");
	/* nobody admitted without a matched group */
	assert_string_equal(
	    sql_fails(c,
	              "INSERT INTO admissions (meeting_id, identity, state, "
	              "admitted_at) VALUES "
	              "('00000000-0000-4000-8000-000000000001', 'alice', "
	              "'admitted', now())",
	              NULL),
	    "23514");
	/* return paths stay on our origin */
	assert_string_equal(
	    sql_fails(c,
	              "INSERT INTO saml_requests (request_id, binding_hash, "
	              "return_path, expires_at) VALUES ('_r1', "
	              "decode(repeat('00', 32), 'hex'), '//evil.example/', "
	              "now() + interval '5 minutes')",
	              NULL),
	    "23514");
	/* lockout scopes are a closed set */
	assert_string_equal(
	    sql_fails(c,
	              "INSERT INTO lockout_counters (scope, key) VALUES "
	              "('planet', 'x')",
	              NULL),
	    "23514");
	/* deleting a meeting takes its codes along */
	sql_ok(c, "DELETE FROM meetings");
	assert_int_equal(sql_long(c, "SELECT count(*) FROM meeting_codes"), 0);
	PQfinish(c);
}

/* ---- pool ------------------------------------------------------------------
 */

static void
pool_connects_lazily_and_pings(void **state)
{
	struct db_pool *pool;
	struct db_pool_stats st;
	char err[512];

	(void)state;
	open_pool(&pool, th_env("RG_TEST_PG_URL"), 3, 1000);
	db_pool_get_stats(pool, &st);
	assert_int_equal(st.size, 3);
	assert_int_equal(st.connected, 0); /* nothing until first use */
	assert_true(st.connects == 0);

	assert_int_equal(db_ping(pool, err, sizeof(err)), 0);
	assert_int_equal(db_ping(pool, err, sizeof(err)), 0);
	db_pool_get_stats(pool, &st);
	assert_int_equal(st.connected, 1); /* reused, not reconnected */
	assert_true(st.connects == 1);
	assert_int_equal(st.in_use, 0);
	db_pool_close(pool);
}

static void
pool_sets_session_parameters(void **state)
{
	struct db_pool *pool;
	struct db_conn *c;
	char err[512];
	PGresult *res;

	(void)state;
	open_pool(&pool, th_env("RG_TEST_PG_URL"), 1, 1000);
	assert_int_equal(db_acquire(pool, &c, err, sizeof(err)), 0);
	res =
	    PQexec(db_conn_pg(c), "SELECT current_setting('application_name'), "
	                          "current_setting('statement_timeout')");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(res, 0, 0), "roomgate");
	assert_string_equal(PQgetvalue(res, 0, 1), "5s");
	PQclear(res);
	/* the statement timeout really cuts a slow statement */
	res = PQexec(db_conn_pg(c), "SET statement_timeout = 200");
	PQclear(res);
	res = PQexec(db_conn_pg(c), "SELECT pg_sleep(3)");
	assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
	assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "57014");
	PQclear(res);
	db_release(pool, c);
	db_pool_close(pool);
}

static void
acquire_times_out_when_all_borrowed(void **state)
{
	struct db_pool *pool;
	struct db_pool_stats st;
	struct db_conn *a, *b, *c;
	char err[512];
	long t0, took;

	(void)state;
	open_pool(&pool, th_env("RG_TEST_PG_URL"), 2, 300);
	assert_int_equal(db_acquire(pool, &a, err, sizeof(err)), 0);
	assert_int_equal(db_acquire(pool, &b, err, sizeof(err)), 0);
	assert_ptr_not_equal(a, b);

	t0 = now_ms();
	c = (struct db_conn *)&c; /* must be reset to NULL */
	assert_int_equal(db_acquire(pool, &c, err, sizeof(err)), DB_ETIMEOUT);
	took = now_ms() - t0;
	assert_null(c);
	assert_true(took >= 280);
	assert_true(took < 2000);
	assert_non_null(strstr(err, "no database connection became free "
	                            "within 300 ms"));
	db_pool_get_stats(pool, &st);
	assert_true(st.acquire_timeouts == 1);
	assert_int_equal(st.in_use, 2);
	assert_int_equal(st.waiting, 0);

	db_release(pool, a);
	assert_int_equal(db_acquire(pool, &c, err, sizeof(err)), 0);
	assert_ptr_equal(c, a); /* the freed slot, still connected */
	db_release(pool, b);
	db_release(pool, c);
	db_pool_get_stats(pool, &st);
	assert_int_equal(st.in_use, 0);
	assert_true(st.connects == 2);
	db_pool_close(pool);
}

struct waiter {
	struct db_pool *pool;
	int r;
	long took;
	struct db_conn *c;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;
	char err[512];
	long t0 = now_ms();

	w->r = db_acquire(w->pool, &w->c, err, sizeof(err));
	w->took = now_ms() - t0;
	return NULL;
}

static void
waiter_gets_released_connection(void **state)
{
	struct db_pool *pool;
	struct db_pool_stats st;
	struct db_conn *mine;
	struct waiter w;
	pthread_t t;
	char err[512];
	int i;

	(void)state;
	open_pool(&pool, th_env("RG_TEST_PG_URL"), 1, 10000);
	assert_int_equal(db_acquire(pool, &mine, err, sizeof(err)), 0);
	memset(&w, 0, sizeof(w));
	w.pool = pool;
	w.r = 99;
	assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
	for (i = 0; i < 100; i++) {
		db_pool_get_stats(pool, &st);
		if (st.waiting == 1)
			break;
		sleep_ms(10);
	}
	assert_int_equal(st.waiting, 1);
	sleep_ms(200);
	db_release(pool, mine);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.r, 0);
	assert_ptr_equal(w.c, mine);
	assert_true(w.took >= 150);
	assert_true(w.took < 5000); /* woken, not timed out */
	db_release(pool, w.c);
	db_pool_close(pool);
}

struct hammer {
	struct db_pool *pool;
	int ok;
	int failed;
};

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct db_conn *c;
	char err[512];
	int i;

	for (i = 0; i < 40; i++) {
		PGresult *res;

		if (db_acquire(h->pool, &c, err, sizeof(err)) != 0) {
			h->failed++;
			continue;
		}
		res = PQexecParams(db_conn_pg(c), "SELECT pg_backend_pid()", 0,
		                   NULL, NULL, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			h->ok++;
		else
			h->failed++;
		PQclear(res);
		db_release(h->pool, c);
		if (i % 10 == 0 && db_ping(h->pool, err, sizeof(err)) != 0)
			h->failed++;
	}
	return NULL;
}

static void
many_threads_share_a_small_pool(void **state)
{
	struct db_pool *pool;
	struct db_pool_stats st;
	struct hammer h[8];
	pthread_t t[8];
	int i, ok = 0;

	(void)state;
	open_pool(&pool, th_env("RG_TEST_PG_URL"), 3, 20000);
	for (i = 0; i < 8; i++) {
		h[i].pool = pool;
		h[i].ok = h[i].failed = 0;
		assert_int_equal(
		    pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(h[i].failed, 0);
		ok += h[i].ok;
	}
	assert_int_equal(ok, 8 * 40);
	db_pool_get_stats(pool, &st);
	assert_int_equal(st.in_use, 0);
	assert_int_equal(st.waiting, 0);
	assert_true(st.connects >= 1 && st.connects <= 3); /* never more */
	assert_true(st.acquire_timeouts == 0);
	db_pool_close(pool);
}

static void
release_cleans_up_transactions(void **state)
{
	struct db_pool *pool;
	struct db_conn *c;
	char err[512];
	PGresult *res;
	int pid;

	(void)state;
	open_pool(&pool, th_env("RG_TEST_PG_URL"), 1, 1000);
	assert_int_equal(db_acquire(pool, &c, err, sizeof(err)), 0);
	pid = PQbackendPID(db_conn_pg(c));
	sql_ok(db_conn_pg(c), "BEGIN");
	sql_ok(db_conn_pg(c), "CREATE TEMP TABLE t_rb (x integer)");
	assert_int_equal(PQtransactionStatus(db_conn_pg(c)), PQTRANS_INTRANS);
	db_release(pool, c);

	assert_int_equal(db_acquire(pool, &c, err, sizeof(err)), 0);
	assert_int_equal(PQbackendPID(db_conn_pg(c)), pid); /* kept */
	assert_int_equal(PQtransactionStatus(db_conn_pg(c)), PQTRANS_IDLE);
	assert_int_equal(sql_long(db_conn_pg(c),
	                          "SELECT count(*) FROM pg_class WHERE "
	                          "relname = 't_rb'"),
	                 0); /* rolled back */

	/* an aborted transaction is rolled back too */
	sql_ok(db_conn_pg(c), "BEGIN");
	res = PQexec(db_conn_pg(c), "SELECT 1/0");
	PQclear(res);
	assert_int_equal(PQtransactionStatus(db_conn_pg(c)), PQTRANS_INERROR);
	db_release(pool, c);
	assert_int_equal(db_acquire(pool, &c, err, sizeof(err)), 0);
	assert_int_equal(PQbackendPID(db_conn_pg(c)), pid);
	assert_int_equal(PQtransactionStatus(db_conn_pg(c)), PQTRANS_IDLE);

	/* a query still running: the connection is dropped, not reused */
	assert_int_equal(PQsendQuery(db_conn_pg(c), "SELECT pg_sleep(0.2)"), 1);
	db_release(pool, c);
	assert_int_equal(db_acquire(pool, &c, err, sizeof(err)), 0);
	assert_int_not_equal(PQbackendPID(db_conn_pg(c)), pid);
	assert_int_equal(sql_long(db_conn_pg(c), "SELECT 7"), 7);
	db_release(pool, c);
	db_pool_close(pool);
}

/* Terminates one backend through the admin URL and waits until it is
 * gone. */
static void
kill_backend(int pid)
{
	char q[128];
	PGconn *a;
	int i;

	a = connect_or_fail(th_env("RG_TEST_PG_ADMIN_URL"));
	snprintf(q, sizeof(q), "SELECT pg_terminate_backend(%d)::int", pid);
	assert_int_equal(sql_long(a, q), 1);
	snprintf(q, sizeof(q),
	         "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
	for (i = 0; i < 100 && sql_long(a, q) != 0; i++)
		sleep_ms(20);
	PQfinish(a);
}

static void
killed_backend_is_replaced(void **state)
{
	struct db_pool *pool;
	struct db_pool_stats st;
	struct db_conn *c;
	char err[512];
	int pid, pid2;

	(void)state;
	open_pool(&pool, th_env("RG_TEST_PG_URL"), 1, 1000);
	assert_int_equal(db_acquire(pool, &c, err, sizeof(err)), 0);
	pid = PQbackendPID(db_conn_pg(c));
	db_release(pool, c);

	/* db_acquire notices the dead connection and hands out a new one */
	kill_backend(pid);
	assert_int_equal(db_acquire(pool, &c, err, sizeof(err)), 0);
	pid2 = PQbackendPID(db_conn_pg(c));
	assert_int_not_equal(pid2, pid);
	assert_int_equal(sql_long(db_conn_pg(c), "SELECT 7"), 7);
	db_release(pool, c);

	/* and the very first probe after a kill answers correctly */
	kill_backend(pid2);
	assert_int_equal(db_ping(pool, err, sizeof(err)), 0);
	db_pool_get_stats(pool, &st);
	assert_true(st.connects == 3);
	assert_int_equal(st.connected, 1);
	assert_int_equal(st.in_use, 0);
	db_pool_close(pool);
}

static void
pool_survives_postgres_restart(void **state)
{
	struct db_pool *pool;
	struct db_pool_stats st;
	char err[512];
	long t0, took;

	(void)state;
	open_pool(&pool, th_env("RG_TEST_PG_URL"), 2, 1000);
	assert_int_equal(db_ping(pool, err, sizeof(err)), 0);
	db_pool_get_stats(pool, &st);
	assert_int_equal(st.connected, 1);

	pg_stopped = 1;
	th_pg_stop();
	t0 = now_ms();
	assert_int_equal(db_ping(pool, err, sizeof(err)), DB_EUNAVAIL);
	took = now_ms() - t0;
	assert_true(took < 5000);
	if (strstr(err, "database unreachable at 127.0.0.1:") == NULL ||
	    strstr(err, "is PostgreSQL running?") == NULL)
		fail_msg("unhelpful message: %s", err);
	if (app_password[0] != '\0')
		assert_null(strstr(err, app_password));
	db_pool_get_stats(pool, &st);
	assert_int_equal(st.connected, 0);
	assert_true(st.connect_failures >= 1);
	assert_int_equal(st.in_use, 0);

	th_pg_start();
	pg_stopped = 0;
	/* same pool, no reopen: the first probe is right */
	assert_int_equal(db_ping(pool, err, sizeof(err)), 0);
	db_pool_get_stats(pool, &st);
	assert_int_equal(st.connected, 1);
	assert_true(st.connects >= 2);
	db_pool_close(pool);
}

static int
restart_teardown(void **state)
{
	(void)state;
	if (pg_stopped) {
		th_pg_start();
		pg_stopped = 0;
	}
	return 0;
}

static void
wrong_password_is_explained_without_it(void **state)
{
	static const char wrong[] = "Wr0ngPassw0rd-xyz";
	struct db_pool *pool;
	char ci[1024], err[512];
	PQconninfoOption *opts, *o;

	(void)state;
	opts = PQconninfoParse(th_env("RG_TEST_PG_URL"), NULL);
	assert_non_null(opts);
	ci[0] = '\0';
	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL && strcmp(o->keyword, "password") != 0)
			kv_append(ci, sizeof(ci), o->keyword, o->val);
	kv_append(ci, sizeof(ci), "password", wrong);
	PQconninfoFree(opts);

	open_pool(&pool, ci, 1, 1000);
	assert_int_equal(db_ping(pool, err, sizeof(err)), DB_EUNAVAIL);
	if (strstr(err, "password authentication failed") == NULL ||
	    strstr(err, "check the user name and password") == NULL)
		fail_msg("unhelpful message: %s", err);
	assert_null(strstr(err, wrong));
	db_pool_close(pool);

	assert_int_equal(db_migrate(ci, NULL, err, sizeof(err)), DB_EUNAVAIL);
	assert_non_null(strstr(err, "password authentication failed"));
	assert_null(strstr(err, wrong));
}

static void
bad_config_is_rejected(void **state)
{
	static const struct {
		const char *conninfo;
		const char *want;   /* in the message */
		const char *secret; /* never in the message */
	} cases[] = {
	    {"host=localhost bogus=1", "bogus", NULL},
	    {"postgresql://u:Sup3rS3cret@[::1/db",
	     "invalid database "
	     "connection string",
	     "Sup3rS3cret"},
	    {"postgresql://u:bad%zzS3cret@localhost/db",
	     "the password part is malformed", "S3cret"},
	    {"dbname=x password='S3cret", "invalid database connection string",
	     "S3cret"},
	    {"postgresql://u@localhost/db?password=S3cret&nope=1", "nope",
	     "S3cret"},
	};
	struct db_config cfg = {NULL, 2, 2, 1000, 1000};
	struct db_pool *pool;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cfg.conninfo = cases[i].conninfo;
		pool = (struct db_pool *)&pool;
		assert_int_equal(db_pool_open(&cfg, &pool, err, sizeof(err)),
		                 DB_EINVAL);
		assert_null(pool);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: message \"%s\" lacks \"%s\"", i,
			         err, cases[i].want);
		if (cases[i].secret != NULL &&
		    strstr(err, cases[i].secret) != NULL)
			fail_msg("case %zu: message shows the password: %s", i,
			         err);
		assert_int_equal(
		    db_migrate(cases[i].conninfo, NULL, err, sizeof(err)),
		    DB_EINVAL);
		if (cases[i].secret != NULL)
			assert_null(strstr(err, cases[i].secret));
	}

	cfg.conninfo = th_env("RG_TEST_PG_URL");
	cfg.pool_size = 0;
	assert_int_equal(db_pool_open(&cfg, &pool, err, sizeof(err)),
	                 DB_EINVAL);
	assert_non_null(strstr(err, "pool_size"));
	cfg.pool_size = 2;
	cfg.connect_timeout_s = 0;
	assert_int_equal(db_pool_open(&cfg, &pool, err, sizeof(err)),
	                 DB_EINVAL);
	assert_non_null(strstr(err, "connect_timeout"));
	cfg.connect_timeout_s = 2;
	cfg.acquire_timeout_ms = -1;
	assert_int_equal(db_pool_open(&cfg, &pool, err, sizeof(err)),
	                 DB_EINVAL);
	cfg.conninfo = NULL;
	cfg.acquire_timeout_ms = 100;
	assert_int_equal(db_pool_open(&cfg, &pool, err, sizeof(err)),
	                 DB_EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(migrate_applies_all_then_nothing),
	    cmocka_unit_test(migrate_two_processes_at_once),
	    cmocka_unit_test(migrate_reports_changed_migration),
	    cmocka_unit_test(migrate_refuses_newer_schema),
	    cmocka_unit_test(failed_migration_is_rolled_back),
	    cmocka_unit_test(audit_log_is_append_only),
	    cmocka_unit_test(schema_constraints_hold),
	    cmocka_unit_test(pool_connects_lazily_and_pings),
	    cmocka_unit_test(pool_sets_session_parameters),
	    cmocka_unit_test(acquire_times_out_when_all_borrowed),
	    cmocka_unit_test(waiter_gets_released_connection),
	    cmocka_unit_test(many_threads_share_a_small_pool),
	    cmocka_unit_test(release_cleans_up_transactions),
	    cmocka_unit_test(killed_backend_is_replaced),
	    cmocka_unit_test_teardown(pool_survives_postgres_restart,
	                              restart_teardown),
	    cmocka_unit_test(wrong_password_is_explained_without_it),
	    cmocka_unit_test(bad_config_is_rejected),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
