/*
 * Unit tests for db/'s pure logic, no server: password redaction of
 * connection strings, the connection-failure messages people read, and
 * mapping an error position to a line of a migration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "db/db_int.h"

static void
redact_one(const char *in, const char *want)
{
	char out[512];

	assert_int_equal(db_conninfo_redact(in, out, sizeof(out)), 0);
	if (strcmp(out, want) != 0)
		fail_msg("redact(%s) = \"%s\", want \"%s\"", in, out, want);
}

static void
redacts_key_value_passwords(void **state)
{
	(void)state;
	redact_one("host=h password=s3cret user=u",
	           "host=h password=REDACTED user=u");
	redact_one("password = s3cret", "password = REDACTED");
	redact_one("password='se cr\\'et' dbname=d",
	           "password=REDACTED dbname=d");
	redact_one("sslpassword=k3y host=h", "sslpassword=REDACTED host=h");
	redact_one("host=h password=a\\ b user=u",
	           "host=h password=REDACTED user=u");
	/* unterminated quote: everything after is the password */
	redact_one("dbname=d password='abc user=u",
	           "dbname=d password=REDACTED");
	/* other keys are left exactly as typed */
	redact_one("host=h passwordx=1 application_name='a b'",
	           "host=h passwordx=1 application_name='a b'");
	redact_one("", "");
}

static void
redacts_uri_passwords(void **state)
{
	(void)state;
	redact_one("postgresql://u:s3cret@h:5432/db",
	           "postgresql://u:REDACTED@h:5432/db");
	redact_one("postgres://u:s3:cr@et@h/db",
	           "postgres://u:REDACTED@et@h/db");
	redact_one("postgresql://u@h/db?sslmode=require&password=p2&x=1",
	           "postgresql://u@h/db?sslmode=require&password=REDACTED&x=1");
	redact_one("postgresql://h/db?pass%77ord=p3",
	           "postgresql://h/db?pass%77ord=REDACTED");
	redact_one("postgresql://u:pw@[::1/db",
	           "postgresql://u:REDACTED@[::1/db");
	redact_one("postgresql://h/db", "postgresql://h/db");
	/* no userinfo: the host's colon is a port, not a password */
	redact_one("postgresql://h:5432/db", "postgresql://h:5432/db");
}

static void
redact_reports_short_buffer(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(
	    db_conninfo_redact("host=localhost password=x", out, sizeof(out)),
	    -1);
	assert_string_equal(out, "");
}

static void
errmsg_is(const char *host, const char *port, const char *pqmsg, int cto,
          const char *want)
{
	char err[512];

	db_connect_errmsg(host, port, pqmsg, cto, err, sizeof(err));
	if (strcmp(err, want) != 0)
		fail_msg("got  \"%s\"\nwant \"%s\"", err, want);
}

static void
connect_errors_say_what_to_do(void **state)
{
	(void)state;
	errmsg_is("127.0.0.1", "5432",
	          "connection to server at \"127.0.0.1\", port 5432 failed: "
	          "Connection refused\n\tIs the server running on that host "
	          "and accepting TCP/IP connections?\n",
	          10,
	          "database unreachable at 127.0.0.1:5432: connection refused "
	          "— is PostgreSQL running?");
	errmsg_is("/run/pg", "5433",
	          "connection to server on socket \"/run/pg/.s.PGSQL.5433\" "
	          "failed: No such file or directory\n\tIs the server running "
	          "locally and accepting connections on that socket?\n",
	          10,
	          "database unreachable at /run/pg (local socket, port 5433): "
	          "no server socket there — is PostgreSQL running?");
	errmsg_is(
	    "db.example.com", "5432",
	    "connection to server at \"db.example.com\" (192.0.2.7), port "
	    "5432 failed: timeout expired\n",
	    3,
	    "database unreachable at db.example.com:5432: no answer "
	    "within 3 s — check the host, the port and any firewall in "
	    "between");
	errmsg_is("nohost.invalid", NULL,
	          "could not translate host name \"nohost.invalid\" to "
	          "address: Name or service not known\n",
	          10,
	          "database unreachable at nohost.invalid:5432: could not "
	          "translate host name \"nohost.invalid\" to address: Name or "
	          "service not known — check the host name in the database "
	          "URL");
	errmsg_is(
	    "::1", "5432",
	    "connection to server at \"::1\", port 5432 failed: FATAL:  "
	    "password authentication failed for user \"roomgate\"\n",
	    10,
	    "the database at [::1]:5432 refused the connection: password "
	    "authentication failed for user \"roomgate\" — check the user "
	    "name and password in the database URL");
	errmsg_is(
	    "h", "1",
	    "connection to server at \"h\" (192.0.2.1), port 1 failed: "
	    "FATAL:  database \"nope\" does not exist\n",
	    10,
	    "the database at h:1 refused the connection: database \"nope\" "
	    "does not exist — create it or fix the database URL");
	errmsg_is("h", "1",
	          "connection to server at \"h\" (192.0.2.1), port 1 failed: "
	          "FATAL:  the database system is starting up\n",
	          10,
	          "database not ready at h:1: the database system is starting "
	          "up — retry in a moment");
	/* several hosts tried: the last failure is reported */
	errmsg_is("b", "1",
	          "connection to server at \"a\" (192.0.2.1), port 1 failed: "
	          "FATAL:  the database system is shutting down\n"
	          "connection to server at \"b\" (192.0.2.2), port 1 failed: "
	          "Connection refused\n\tIs the server running...\n",
	          10,
	          "database unreachable at b:1: connection refused — is "
	          "PostgreSQL running?");
	errmsg_is("b", "1",
	          "connection to server at \"a\" (192.0.2.1), port 1 failed: "
	          "Connection refused\n\tIs the server running...\n"
	          "connection to server at \"b\" (192.0.2.2), port 1 failed: "
	          "FATAL:  the database system is starting up\n",
	          10,
	          "database not ready at b:1: the database system is starting "
	          "up — retry in a moment");
	/* unknown causes keep libpq's words */
	errmsg_is("h", "1",
	          "connection to server at \"h\", port 1 failed: SSL error: "
	          "certificate verify failed\n",
	          10,
	          "database unreachable at h:1: SSL error: certificate verify "
	          "failed");
}

static void
errmsg_truncates_safely(void **state)
{
	char err[24];

	(void)state;
	db_connect_errmsg("127.0.0.1", "5432", "x failed: Connection refused",
	                  10, err, sizeof(err));
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_string_equal(err + sizeof(err) - 4, "...");
	db_seterr(NULL, 0, "%s", "nothing happens");
}

static void
error_positions_map_to_lines(void **state)
{
	static const char sql[] = "SELECT 1;\nSELECT x;\n\nSELECT y;";
	static const char utf8[] = "-- \xc3\xa9t\xc3\xa9\nSELECT z;";

	(void)state;
	assert_int_equal(db_sql_line_of(sql, strlen(sql), 1), 1);
	assert_int_equal(db_sql_line_of(sql, strlen(sql), 10), 1); /* \n */
	assert_int_equal(db_sql_line_of(sql, strlen(sql), 11), 2);
	assert_int_equal(db_sql_line_of(sql, strlen(sql), 22), 4);
	assert_int_equal(db_sql_line_of(sql, strlen(sql), 0), 0);
	assert_int_equal(db_sql_line_of(sql, strlen(sql), 999), 0);
	/* positions count characters: "-- été\n" is 7 characters, 9 bytes */
	assert_int_equal(db_sql_line_of(utf8, strlen(utf8), 7), 1);
	assert_int_equal(db_sql_line_of(utf8, strlen(utf8), 8), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(redacts_key_value_passwords),
	    cmocka_unit_test(redacts_uri_passwords),
	    cmocka_unit_test(redact_reports_short_buffer),
	    cmocka_unit_test(connect_errors_say_what_to_do),
	    cmocka_unit_test(errmsg_truncates_safely),
	    cmocka_unit_test(error_positions_map_to_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
