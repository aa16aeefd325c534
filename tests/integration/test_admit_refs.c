/*
 * Integration: migration 0023 (issue 9, what an admission costs
 * PostgreSQL) against the harness's real PostgreSQL, on a fresh database.
 * An admission no longer locks its meeting's row (the foreign key that
 * did is gone), yet an admission still needs an existing meeting, and
 * deleting a meeting still deletes its admissions -- also one being
 * recorded at that moment, whose deletion waits for it. And the lockout
 * key is inlined into the queries that use it, with the same values.
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

#define MEETING "00000000-0000-4000-8000-0000000017a1"
#define SESSION "sha256('refs-session')"

static char dbname[64];
static char conninfo[1024];

static PGconn *
connect_or_fail(const char *ci)
{
	PGconn *c = PQconnectdb(ci);

	assert_non_null(c);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("cannot connect: %s", PQerrorMessage(c));
	return c;
}

static void
sql_ok(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
}

/* The SQLSTATE of SQL that must fail (static buffer). */
static const char *
sql_state(PGconn *c, const char *sql)
{
	static char state[6];
	PGresult *res = PQexec(c, sql);
	const char *s;

	if (PQresultStatus(res) != PGRES_FATAL_ERROR)
		fail_msg("expected an error from: %s", sql);
	s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	assert_non_null(s);
	snprintf(state, sizeof(state), "%s", s);
	PQclear(res);
	return state;
}

/* The one value of a query, as text (static buffer; "NULL" for null). */
static const char *
sql_text(PGconn *c, const char *sql)
{
	static char v[512];
	PGresult *res = PQexec(c, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	snprintf(v, sizeof(v), "%s",
	         PQgetisnull(res, 0, 0) ? "NULL" : PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

static long
sql_long(PGconn *c, const char *sql)
{
	return strtol(sql_text(c, sql), NULL, 10);
}

/* The record of one attempt as db_admit_record sends it: an admission
 * (outcome allow) or a wrong code (deny, counted) for meeting_id. */
static void
record_sql(char *out, size_t len, const char *meeting_id, int allow,
           const char *admission_id)
{
	int n = snprintf(
	    out, len,
	    "SELECT admitted FROM roomgate_admit_record("
	    "'%s refs', NULL, 5, 600, true, %s, true, 100, 3600, "
	    "'{60}'::bigint[], '{60}'::bigint[], 0, 600, %s%s%s, '%s', "
	    "%s, 'admitted', 1800, '%s', %s, 'refs', 'idp', %s, "
	    "'127.0.0.1', NULL, 'test', 'rq', 'node', %s, true, '{}')",
	    meeting_id, allow ? "false" : "true", allow ? "'" : "",
	    allow ? admission_id : "NULL", allow ? "'" : "", meeting_id,
	    allow ? SESSION : "NULL", allow ? "allow" : "deny",
	    allow ? "NULL" : "'invalid_code'", allow ? "'cn=g'" : "NULL",
	    allow ? "true" : "false");

	assert_true(n > 0 && (size_t)n < len);
}

static void
add_meeting(PGconn *c)
{
	sql_ok(c, "INSERT INTO meetings (id, link_id, title, host_identity, "
	          "allowed_groups, platform_room) VALUES ('" MEETING "', "
	          "'refs-link-0123456789abcdef', 'refs', 'host', "
	          "ARRAY['cn=g'], 'refs-room')");
}

static void
admission_locks_no_meeting_row_and_deletion_still_cascades(void **state)
{
	char sql[2048];
	PGconn *a, *b;

	(void)state;
	a = connect_or_fail(conninfo);
	b = connect_or_fail(conninfo);
	add_meeting(a);
	sql_ok(a, "INSERT INTO sessions (id_hash, identity, idp_entity_id, "
	          "name_id, expires_at) VALUES (" SESSION ", 'refs', 'idp', "
	          "'refs', now() + interval '1 hour')");
	record_sql(sql, sizeof(sql), MEETING, 1,
	           "00000000-0000-4000-8000-0000000017b1");
	assert_string_equal(sql_text(a, sql), "t");

	/* An admission being recorded: the meeting's row is not locked
	 * (no xmax written), unlike with a foreign key's FOR KEY SHARE. */
	sql_ok(a, "BEGIN");
	record_sql(sql, sizeof(sql), MEETING, 1,
	           "00000000-0000-4000-8000-0000000017b2");
	assert_string_equal(sql_text(a, sql), "t");
	assert_string_equal(sql_text(b, "SELECT xmax::text FROM meetings "
	                                "WHERE id = '" MEETING "'"),
	                    "0");
	/* Deleting the meeting waits for that admission ... */
	sql_ok(b, "SET lock_timeout = '300ms'");
	assert_string_equal(
	    sql_state(b, "DELETE FROM meetings WHERE id = '" MEETING "'"),
	    "55P03");
	sql_ok(a, "COMMIT");
	assert_int_equal(sql_long(b, "SELECT count(*) FROM admissions WHERE "
	                             "meeting_id = '" MEETING "'"),
	                 2);
	/* ... and takes both admissions along (was ON DELETE CASCADE). */
	sql_ok(b, "DELETE FROM meetings WHERE id = '" MEETING "'");
	assert_int_equal(sql_long(b, "SELECT count(*) FROM admissions WHERE "
	                             "meeting_id = '" MEETING "'"),
	                 0);

	/* No admission for a meeting that is not there (as the key
	 * refused it), and nothing of the attempt is kept. */
	record_sql(sql, sizeof(sql), MEETING, 1,
	           "00000000-0000-4000-8000-0000000017b3");
	assert_string_equal(sql_state(a, sql), "23503");
	assert_int_equal(sql_long(a, "SELECT count(*) FROM audit_log WHERE "
	                             "meeting_id = '" MEETING "'"),
	                 2);
	/* A denial names the meeting only in its audit record: recorded. */
	record_sql(sql, sizeof(sql), MEETING, 0, NULL);
	assert_string_equal(sql_text(a, sql), "f");
	assert_int_equal(sql_long(a, "SELECT count(*) FROM audit_log WHERE "
	                             "meeting_id = '" MEETING "'"),
	                 3);
	assert_int_equal(sql_long(a, "SELECT count(*) FROM admissions"), 0);
	PQfinish(a);
	PQfinish(b);
}

static void
lock_key_is_inlined_with_the_same_values(void **state)
{
	PGconn *c;
	const char *plan;

	(void)state;
	c = connect_or_fail(conninfo);
	assert_string_equal(sql_text(c, "SELECT roomgate_lock_key('m', "
	                                "'alice')"),
	                    "m alice");
	assert_string_equal(
	    sql_text(c, "SELECT roomgate_lock_key('m', repeat('z', 1100)) = "
	                "'m sha256:' || encode(sha256(convert_to("
	                "repeat('z', 1100), 'UTF8')), 'hex')"),
	    "t");
	assert_string_equal(sql_text(c, "SELECT roomgate_lock_key('m', NULL)"),
	                    "NULL");
	/* Planned as an expression, not called as a function. */
	plan = sql_text(c, "EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) "
	                   "SELECT 1 FROM lockout_counters l, meetings m "
	                   "WHERE l.scope = 'identity_meeting' AND l.key = "
	                   "roomgate_lock_key(m.id::text, m.host_identity)");
	assert_null(strstr(plan, "roomgate_lock_key"));
	assert_non_null(strstr(plan, "sha256"));
	PQfinish(c);
}

static int
group_setup(void **state)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL, sql[256], *ident, err[512], user[128] = "";
	size_t n = 0;
	int applied = 0;
	PGconn *a;

	(void)state;
	snprintf(dbname, sizeof(dbname), "roomgate_refs_%d", (int)getpid());
	opts = PQconninfoParse(th_env("RG_TEST_PG_URL"), &perr);
	assert_non_null(opts);
	conninfo[0] = '\0';
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
			continue;
		if (strcmp(o->keyword, "user") == 0)
			snprintf(user, sizeof(user), "%s", o->val);
		/* harness values: no quotes or backslashes to escape */
		assert_null(strpbrk(o->val, "'\\"));
		n += (size_t)snprintf(conninfo + n, sizeof(conninfo) - n,
		                      "%s='%s' ", o->keyword, o->val);
		assert_true(n < sizeof(conninfo));
	}
	assert_true(user[0] != '\0');
	a = connect_or_fail(th_env("RG_TEST_PG_ADMIN_URL"));
	ident = PQescapeIdentifier(a, user, strlen(user));
	assert_non_null(ident);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s", dbname,
	         ident);
	PQfreemem(ident);
	PQconninfoFree(opts);
	sql_ok(a, sql);
	PQfinish(a);
	n += (size_t)snprintf(conninfo + n, sizeof(conninfo) - n,
	                      "dbname='%s'", dbname);
	assert_true(n < sizeof(conninfo));
	if (db_migrate(conninfo, &applied, err, sizeof(err)) != 0)
		fail_msg("db_migrate: %s", err);
	return 0;
}

static int
group_teardown(void **state)
{
	char sql[160];
	PGconn *a;

	(void)state;
	a = connect_or_fail(th_env("RG_TEST_PG_ADMIN_URL"));
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
	         dbname);
	sql_ok(a, sql);
	PQfinish(a);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        admission_locks_no_meeting_row_and_deletion_still_cascades),
	    cmocka_unit_test(lock_key_is_inlined_with_the_same_values),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
