/*
 * Integration: the audit chain against the harness's real PostgreSQL, in a
 * database of its own. 100,000 records (with a rolled-back insert leaving
 * a hole in seq) are written with SQL, a real `roomgate serve` seals them
 * (the time is printed), and `roomgate audit verify` passes. Then, as the
 * database superuser with triggers off: a changed field, a deleted row, an
 * inserted row, two swapped rows, a truncated tail (records and chain
 * entries), a checkpoint with a bad signature and one signed by an
 * unknown key -- verify names the first bad record (or checkpoint) each
 * time and exits 1, and passes again once the change is undone. The
 * service role cannot UPDATE, DELETE or TRUNCATE any audit table. A
 * retention purge keeps the rest verifiable. The public-key route serves
 * the key file's text; the metrics show the sealer. API token create and
 * revoke leave audit records (never the token).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tests/lib/th.h"

#define DBNAME "rg_audit_chain"
#define NRECORDS 100000

static char app_ci[2048], admin_ci[2048], app_user[128];
static char cfg_path[600], pub_path[700], other_pub[600];
static struct th_server srv;
static char out[65536];
static long long gap_seq, max_seq;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

/* url with dbname replaced, as key=value conninfo; *user gets the user. */
static void
conninfo_for(const char *url, const char *dbname, char *ci, size_t cilen,
	     char *user, size_t userlen)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL;

	opts = PQconninfoParse(url, &perr);
	assert_non_null(opts);
	ci[0] = '\0';
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
			continue;
		if (user != NULL && strcmp(o->keyword, "user") == 0)
			snprintf(user, userlen, "%s", o->val);
		kv_append(ci, cilen, o->keyword, o->val);
	}
	kv_append(ci, cilen, "dbname", dbname);
	PQconninfoFree(opts);
}

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

static void
sql_fails(PGconn *c, const char *sql, const char *want)
{
	PGresult *res = PQexec(c, sql);
	const char *msg;

	if (PQresultStatus(res) != PGRES_FATAL_ERROR)
		fail_msg("expected an error from: %s", sql);
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	assert_non_null(msg);
	if (strstr(msg, want) == NULL)
		fail_msg("error for %s was \"%s\", expected \"%s\" in it", sql,
			 msg, want);
	PQclear(res);
}

static long long
sql_ll(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	long long v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	v = PQgetisnull(res, 0, 0) ? -1
				   : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

static void
sqlf(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
sqlf(PGconn *c, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(sql));
	sql_ok(c, sql);
}

/* The superuser, with triggers off (as an attacker with full access). */
static PGconn *
attacker(void)
{
	PGconn *c = connect_or_fail(admin_ci);

	sql_ok(c, "SET session_replication_role = replica");
	return c;
}

/* `roomgate -c CFG audit verify [args]`: exit status, output in out. */
static int
verify(const char *a1, const char *a2)
{
	const char *argv[] = {th_env("RG_TEST_BIN"), "-c", cfg_path, "audit",
			      "verify", a1, a2, NULL};

	return th_run_capture(argv, NULL, out, sizeof(out));
}

static void
verify_fails_with(const char *what, long long seq)
{
	char want[160];
	int rc = verify(NULL, NULL);

	if (rc != 1) {
		fprintf(stderr, "verify output: %.2000s\n", out);
		fail_msg("verify exited %d (want 1)", rc);
	}
	snprintf(want, sizeof(want), "seq %lld: %s", seq, what);
	if (strstr(out, want) == NULL)
		fail_msg("verify did not report \"%s\": %s", want, out);
}

static void
verify_passes(void)
{
	int rc = verify(NULL, NULL);

	if (rc != 0 || strstr(out, "audit verify: OK") == NULL)
		fail_msg("verify exited %d: %s", rc, out);
}

/* Waits until every record up to max(seq) is chained. */
static void
wait_sealed(PGconn *c, int timeout_s)
{
	double t0 = now_s();

	for (;;) {
		long long unsealed = sql_ll(
			c, "SELECT count(*) FROM audit_log a WHERE NOT EXISTS "
			   "(SELECT 1 FROM audit_chain k WHERE k.seq = a.seq)");

		if (unsealed == 0)
			return;
		if (now_s() - t0 > timeout_s)
			fail_msg("%lld records still not sealed after %d s",
				 unsealed, timeout_s);
		usleep(100 * 1000);
	}
}

static const char gen_sql[] =
	"INSERT INTO audit_log (at, event_type, outcome, reason, identity, "
	"idp, meeting_id, matched_group, source_addr, forwarded_for, "
	"user_agent, request_id, node, code_ok, member_ok, details) "
	"SELECT %s, (ARRAY['join', 'authz', 'meeting.update', "
	"'code.rotate'])[1 + i %% 4], CASE WHEN i %% 10 = 0 THEN 'deny' "
	"ELSE 'allow' END, CASE WHEN i %% 10 = 0 THEN 'wrong_code' END, "
	"'user' || (i %% 977), CASE WHEN i %% 3 <> 0 THEN "
	"'https://idp.example.org/saml' END, md5((i %% 50)::text)::uuid, "
	"CASE WHEN i %% 2 = 0 THEN 'cn=staff,ou=groups,dc=example,dc=org' "
	"END, ('10.0.' || (i %% 250) || '.' || (i %% 200))::inet, CASE WHEN "
	"i %% 7 = 0 THEN '203.0.113.9, 10.0.0.1' END, 'Mozilla/5.0 "
	"(X11; \xc3\xbcn\xc3\xaf)', md5(i::text), 'node-' || (i %% 2), "
	"CASE WHEN i %% 11 = 0 THEN NULL ELSE i %% 10 <> 0 END, i %% 13 <> "
	"0, CASE WHEN i %% 5 = 0 THEN jsonb_build_object('n', i, 'why', "
	"'a \"quoted\" \\\\ value', 'empty', '') END FROM generate_series(%d, "
	"%d) AS i";

static int
setup(void **state)
{
	char keys_ini[1024], text[8192], keyfile[600], cmd[1200];
	const char *argv[8];
	PGconn *a;
	int n;

	(void)state;
	conninfo_for(th_env("RG_TEST_PG_URL"), DBNAME, app_ci, sizeof(app_ci),
		     app_user, sizeof(app_user));
	conninfo_for(th_env("RG_TEST_PG_ADMIN_URL"), DBNAME, admin_ci,
		     sizeof(admin_ci), NULL, 0);
	{
		char postgres_ci[2048];

		conninfo_for(th_env("RG_TEST_PG_ADMIN_URL"), "postgres",
			     postgres_ci, sizeof(postgres_ci), NULL, 0);
		a = connect_or_fail(postgres_ci);
		sql_ok(a, "DROP DATABASE IF EXISTS " DBNAME);
		sqlf(a, "CREATE DATABASE " DBNAME " OWNER \"%s\"", app_user);
		PQfinish(a);
	}

	/* The server key file th_config makes once per run. */
	th_config("audit-chain-dummy.ini", NULL);
	snprintf(keys_ini, sizeof(keys_ini), "%s/server.keys",
		 th_env("RG_TEST_TMP"));
	snprintf(keyfile, sizeof(keyfile), "%s/audit-chain.key",
		 th_env("RG_TEST_TMP"));
	snprintf(pub_path, sizeof(pub_path), "%s.pub", keyfile);
	snprintf(other_pub, sizeof(other_pub), "%s/audit-other.key.pub",
		 th_env("RG_TEST_TMP"));
	unlink(keyfile);
	unlink(pub_path);
	argv[0] = th_env("RG_TEST_BIN");
	argv[1] = "audit";
	argv[2] = "keygen";
	argv[3] = "--out";
	argv[4] = keyfile;
	argv[5] = NULL;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0 ||
	    strstr(out, "kid ") == NULL)
		fail_msg("audit keygen: %s", out);
	/* A second key that no config knows. */
	snprintf(cmd, sizeof(cmd), "%s/audit-other.key", th_env("RG_TEST_TMP"));
	unlink(cmd);
	unlink(other_pub);
	argv[4] = cmd;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("audit keygen: %s", out);

	srv.port = th_free_port();
	n = snprintf(text, sizeof(text),
		     "[server]\nport = %d\nnode_name = node-a\n"
		     "[database]\nurl = %s\n"
		     "[ldap]\nuri = %s\nbind_dn = %s\nbind_password = %s\n"
		     "[keys]\nfile = %s\n"
		     "[audit]\nsigning_key_file = %s\n"
		     "checkpoint_interval_ms = 200\ngap_timeout_ms = 1000\n",
		     srv.port, app_ci, th_env("RG_TEST_LDAP_URI"),
		     th_env("RG_TEST_LDAP_BIND_DN"),
		     th_env("RG_TEST_LDAP_BIND_PASSWORD"), keys_ini, keyfile);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	snprintf(cfg_path, sizeof(cfg_path), "%s",
		 th_write_file("audit-chain.ini", text));
	argv[1] = "-c";
	argv[2] = cfg_path;
	argv[3] = "migrate";
	argv[4] = NULL;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("migrate: %s", out);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (srv.pid > 0)
		th_server_stop(&srv);
	return 0;
}

/* 100k records, a hole, sealed by the server; verify passes. */
static void
seals_and_verifies_100k(void **state)
{
	PGconn *c = connect_or_fail(app_ci);
	double t0, t_seal, t_verify;
	char sql[4096];
	int rc;

	(void)state;
	/* Half of them 400 days old (for the purge below), then a
	 * rolled-back insert (a hole in seq for ever), then recent ones. */
	snprintf(sql, sizeof(sql), gen_sql,
		 "now() - interval '400 days' + i * interval '1 second'", 1,
		 NRECORDS / 2);
	sql_ok(c, sql);
	sql_ok(c, "BEGIN");
	snprintf(sql, sizeof(sql), gen_sql, "now()", 1, 3);
	sql_ok(c, sql);
	sql_ok(c, "ROLLBACK");
	snprintf(sql, sizeof(sql), gen_sql,
		 "now() - interval '1 hour' + i * interval '1 millisecond'",
		 NRECORDS / 2 + 1, NRECORDS);
	sql_ok(c, sql);
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_log"),
			 NRECORDS);
	gap_seq = sql_ll(c, "SELECT min(s) FROM generate_series(1, (SELECT "
			    "max(seq) FROM audit_log)) s WHERE NOT EXISTS "
			    "(SELECT 1 FROM audit_log WHERE seq = s)");
	assert_int_equal(gap_seq, NRECORDS / 2 + 1);
	max_seq = sql_ll(c, "SELECT max(seq) FROM audit_log");

	t0 = now_s();
	th_server_start(&srv, cfg_path, srv.port);
	wait_sealed(c, 600);
	t_seal = now_s() - t0;
	/* Each record once, in order, positions 1..N without a hole. */
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_chain"),
			 NRECORDS);
	assert_int_equal(sql_ll(c, "SELECT max(pos) FROM audit_chain"),
			 NRECORDS);
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_chain WHERE "
				   "seq BETWEEN 50001 AND 50003"),
			 0);
	assert_true(sql_ll(c, "SELECT count(*) FROM audit_checkpoints") >= 20);
	assert_int_equal(sql_ll(c, "SELECT max(last_seq) FROM "
				   "audit_checkpoints"),
			 max_seq);

	t0 = now_s();
	rc = verify(NULL, NULL);
	t_verify = now_s() - t0;
	if (rc != 0 || strstr(out, "audit verify: OK: 100000 records") == NULL)
		fail_msg("verify exited %d: %s", rc, out);
	print_message("# sealed %d records in %.2f s (from server start), "
		      "verified in %.2f s\n",
		      NRECORDS, t_seal, t_verify);

	/* A range: from a seq and to a time. */
	rc = verify("--from=60000", "--to=2100-01-01T00:00:00Z");
	if (rc != 0 || strstr(out, "audit verify: OK") == NULL)
		fail_msg("verify --from --to exited %d: %s", rc, out);
	rc = verify("--from=yesterday-ish", NULL);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "not a seq or a time"));
	PQfinish(c);
}

static void
changed_field_is_named(void **state)
{
	PGconn *a = attacker();

	(void)state;
	sql_ok(a, "UPDATE audit_log SET outcome = 'allow', reason = NULL "
		  "WHERE seq = 31410");
	verify_fails_with("modified", 31410);
	/* A NULL where there was "" (or the reverse) is a change too. */
	sql_ok(a, "UPDATE audit_log SET outcome = 'deny', reason = "
		  "'wrong_code' WHERE seq = 31410");
	verify_passes();
	/* Record 69998 (i = 69995 in the generator) has details. */
	sql_ok(a, "UPDATE audit_log SET details = details || '{\"n\": 1}' "
		  "WHERE seq = 69998 AND details IS NOT NULL");
	verify_fails_with("modified", 69998);
	sql_ok(a, "UPDATE audit_log SET details = jsonb_set(details, '{n}', "
		  "'69995') WHERE seq = 69998");
	verify_passes();
	PQfinish(a);
}

static void
deleted_row_is_named(void **state)
{
	PGconn *a = attacker();

	(void)state;
	sql_ok(a, "CREATE TEMP TABLE saved AS SELECT * FROM audit_log WHERE "
		  "seq = 12345");
	sql_ok(a, "DELETE FROM audit_log WHERE seq = 12345");
	verify_fails_with("deleted", 12345);
	/* Deleting its chain entry too breaks the chain right there. */
	sql_ok(a, "CREATE TEMP TABLE saved_k AS SELECT * FROM audit_chain "
		  "WHERE seq = 12345");
	sql_ok(a, "DELETE FROM audit_chain WHERE seq = 12345");
	verify_fails_with("chain position", 12346);
	sql_ok(a, "INSERT INTO audit_chain SELECT * FROM saved_k");
	sql_ok(a, "INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT * "
		  "FROM saved");
	verify_passes();
	PQfinish(a);
}

static void
inserted_row_is_named(void **state)
{
	PGconn *a = attacker();

	(void)state;
	/* Into the hole the rolled-back insert left. */
	sqlf(a,
	     "INSERT INTO audit_log (seq, event_type, outcome, identity) "
	     "OVERRIDING SYSTEM VALUE VALUES (%lld, 'join', 'allow', "
	     "'mallory')",
	     gap_seq);
	verify_fails_with("inserted", gap_seq);
	sqlf(a, "DELETE FROM audit_log WHERE seq = %lld", gap_seq);
	verify_passes();
	PQfinish(a);
}

static void
swapped_rows_are_named(void **state)
{
	PGconn *a = attacker();
	static const char swap[] =
		"UPDATE audit_log d SET at = s.at, event_type = s.event_type, "
		"outcome = s.outcome, reason = s.reason, identity = "
		"s.identity, idp = s.idp, meeting_id = s.meeting_id, "
		"matched_group = s.matched_group, source_addr = "
		"s.source_addr, forwarded_for = s.forwarded_for, user_agent = "
		"s.user_agent, request_id = s.request_id, node = s.node, "
		"code_ok = s.code_ok, member_ok = s.member_ok, details = "
		"s.details FROM audit_log s WHERE (d.seq, s.seq) IN ((77777, "
		"77778), (77778, 77777))";

	(void)state;
	sql_ok(a, swap);
	verify_fails_with("reordered -- it holds the record that was sealed "
			  "at seq 77778",
			  77777);
	sql_ok(a, swap);
	verify_passes();
	PQfinish(a);
}

static void
truncated_tail_is_named(void **state)
{
	PGconn *a = attacker();
	char want[128];

	(void)state;
	sqlf(a, "CREATE TEMP TABLE tail AS SELECT * FROM audit_log WHERE seq "
		"> %lld",
	     max_seq - 10);
	sqlf(a, "CREATE TEMP TABLE tail_k AS SELECT * FROM audit_chain WHERE "
		"seq > %lld",
	     max_seq - 10);
	/* Records only: each is missing from the log. */
	sqlf(a, "DELETE FROM audit_log WHERE seq > %lld", max_seq - 10);
	verify_fails_with("deleted", max_seq - 9);
	/* Records and chain entries: the last checkpoint still tells. */
	sqlf(a, "DELETE FROM audit_chain WHERE seq > %lld", max_seq - 10);
	assert_int_equal(verify(NULL, NULL), 1);
	snprintf(want, sizeof(want), "records after seq %lld were deleted",
		 max_seq - 10);
	if (strstr(out, "truncated") == NULL || strstr(out, want) == NULL)
		fail_msg("verify did not report the truncation: %s", out);
	sql_ok(a, "INSERT INTO audit_chain SELECT * FROM tail_k");
	sql_ok(a, "INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT * "
		  "FROM tail");
	verify_passes();
	PQfinish(a);
}

static void
bad_checkpoint_signature_is_reported(void **state)
{
	PGconn *a = attacker();
	long long id;
	char pubtext[256];
	FILE *f;
	size_t n;
	int rc;

	(void)state;
	id = sql_ll(a, "SELECT id FROM audit_checkpoints ORDER BY last_seq "
		       "OFFSET 3 LIMIT 1");
	sqlf(a,
	     "UPDATE audit_checkpoints SET sig = set_byte(sig, 5, "
	     "get_byte(sig, 5) # 1) WHERE id = %lld",
	     id);
	assert_int_equal(verify(NULL, NULL), 1);
	if (strstr(out, "bad signature") == NULL)
		fail_msg("verify did not report the signature: %s", out);
	sqlf(a,
	     "UPDATE audit_checkpoints SET sig = set_byte(sig, 5, "
	     "get_byte(sig, 5) # 1) WHERE id = %lld",
	     id);
	verify_passes();
	/* A checkpoint by a key no config lists. */
	sqlf(a,
	     "UPDATE audit_checkpoints SET kid = '0123456789abcdef', body = "
	     "regexp_replace(body, 'kid [0-9a-f]{16}', 'kid "
	     "0123456789abcdef') WHERE id = %lld",
	     id);
	assert_int_equal(verify(NULL, NULL), 1);
	if (strstr(out, "not among the known public keys") == NULL)
		fail_msg("verify did not report the unknown key: %s", out);
	PQfinish(a);
	a = connect_or_fail(admin_ci);
	sql_ok(a, "SET session_replication_role = replica");
	/* Restore from the signed body's own kid (the key's). */
	f = fopen(pub_path, "r");
	assert_non_null(f);
	n = fread(pubtext, 1, sizeof(pubtext) - 1, f);
	fclose(f);
	pubtext[n] = '\0';
	assert_non_null(strstr(pubtext, "\nkid "));
	sqlf(a,
	     "UPDATE audit_checkpoints SET kid = '%.16s', body = "
	     "regexp_replace(body, 'kid [0-9a-f]{16}', 'kid %.16s') WHERE id "
	     "= %lld",
	     strstr(pubtext, "\nkid ") + 5, strstr(pubtext, "\nkid ") + 5, id);
	verify_passes();
	/* Only the other key given: the real checkpoints do not verify. */
	{
		const char *argv[] = {th_env("RG_TEST_BIN"), "audit", "verify",
				      "--public-key", other_pub, NULL};
		const char *env[] = {NULL, NULL};
		char e[700];

		snprintf(e, sizeof(e), "ROOMGATE_CONFIG=%s", cfg_path);
		env[0] = e;
		rc = th_run_capture(argv, env, out, sizeof(out));
		assert_int_equal(rc, 0); /* the config's key is there too */
	}
	PQfinish(a);
}

static void
service_role_cannot_change_audit_rows(void **state)
{
	PGconn *c = connect_or_fail(app_ci);

	(void)state;
	sql_fails(c, "UPDATE audit_log SET outcome = 'allow' WHERE seq = 5",
		  "append-only");
	sql_fails(c, "DELETE FROM audit_log WHERE seq = 5", "append-only");
	sql_fails(c, "TRUNCATE audit_log", "append-only");
	sql_fails(c, "UPDATE audit_chain SET pos = pos WHERE seq = 5",
		  "append-only");
	sql_fails(c, "DELETE FROM audit_chain WHERE seq = 5", "append-only");
	sql_fails(c, "TRUNCATE audit_chain", "append-only");
	sql_fails(c, "UPDATE audit_checkpoints SET count = count",
		  "append-only");
	sql_fails(c, "DELETE FROM audit_checkpoints", "append-only");
	sql_fails(c, "TRUNCATE audit_checkpoints CASCADE", "append-only");
	sql_fails(c, "TRUNCATE audit_purges", "append-only");
	/* The purge switch alone opens nothing: no purge is recorded. */
	sql_ok(c, "SET roomgate.audit_purge_upto = '1000000'");
	sql_fails(c, "DELETE FROM audit_log WHERE seq = 5", "append-only");
	sql_ok(c, "RESET roomgate.audit_purge_upto");
	/* Nor can it purge records that are not old enough. */
	sql_fails(c,
		  "SELECT audit_purge((SELECT max(id) FROM audit_checkpoints), "
		  "now() - interval '1 day', 'test')",
		  "not all sealed and older");
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_log"),
			 NRECORDS);
	PQfinish(c);
}

static void
purge_keeps_the_rest_verifiable(void **state)
{
	PGconn *c = connect_or_fail(app_ci);
	const char *argv[] = {th_env("RG_TEST_BIN"), "-c", cfg_path,
			      "audit", "purge", "--before",
			      "now() - interval '200 days'", NULL};
	long long upto, left;

	(void)state;
	/* "now() - ..." is no time PostgreSQL reads: refused. */
	assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)), 1);
	argv[6] = "2000-01-01T00:00:00Z";
	assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "nothing to purge"));
	argv[6] = NULL;
	argv[5] = NULL;
	/* Without --before: retention_days, which is 0 here. */
	assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "retention_days"));
	{
		const char *env[] = {"ROOMGATE_AUDIT_RETENTION_DAYS=200",
				     NULL};

		if (th_run_capture(argv, env, out, sizeof(out)) != 0)
			fail_msg("purge: %s", out);
	}
	assert_non_null(strstr(out, "records before"));
	upto = sql_ll(c, "SELECT max(upto_seq) FROM audit_purges");
	/* Every old record went (the newest checkpoint below the recent
	 * ones is at the hole), every recent one stayed. */
	assert_int_equal(upto, NRECORDS / 2);
	assert_int_equal(sql_ll(c, "SELECT min(seq) FROM audit_log WHERE "
				   "event_type <> 'audit.purge'"),
			 NRECORDS / 2 + 4);
	left = sql_ll(c, "SELECT count(*) FROM audit_log");
	assert_int_equal(left, NRECORDS / 2 + 1); /* + the purge's record */
	assert_int_equal(sql_ll(c, "SELECT records FROM audit_purges"),
			 NRECORDS / 2);
	wait_sealed(c, 60);
	verify_passes();
	assert_non_null(strstr(out, "purged under retention"));
	assert_non_null(strstr(out, "50001 records"));
	/* Tampering after a purge is still found. */
	{
		PGconn *a = attacker();

		sql_ok(a, "UPDATE audit_log SET identity = 'someone-else' "
			  "WHERE seq = 60001");
		verify_fails_with("modified", 60001);
		sql_ok(a, "UPDATE audit_log SET identity = 'user' || (60001 "
			  "- 3) % 977 WHERE seq = 60001");
		PQfinish(a);
	}
	verify_passes();
	PQfinish(c);
}

static void
public_key_route_and_metrics(void **state)
{
	struct th_http r;
	char url[256], pubtext[256];
	FILE *f;
	size_t n;

	(void)state;
	f = fopen(pub_path, "r");
	assert_non_null(f);
	n = fread(pubtext, 1, sizeof(pubtext) - 1, f);
	fclose(f);
	pubtext[n] = '\0';
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/audit/public-key",
		 srv.port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 200);
	assert_string_equal(r.body, pubtext);
	snprintf(url, sizeof(url),
		 "http://127.0.0.1:%d/v1/audit/public-key?kid=0000000000000000",
		 srv.port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 404);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", srv.port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 200);
	assert_non_null(strstr(r.body, "roomgate_audit_sealer_leader 1"));
	assert_non_null(strstr(r.body, "roomgate_audit_gap_seqs_skipped_total 3"));
	/* The CLI prints the same text. */
	{
		const char *argv[] = {th_env("RG_TEST_BIN"), "-c", cfg_path,
				      "audit", "public-key", NULL};

		assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)),
				 0);
		assert_string_equal(out, pubtext);
	}
}

/* Issue 8 item 1: API token create and revoke are audit records (the
 * token itself never is); they are sealed like any other. */
static void
token_create_and_revoke_are_audited(void **state)
{
	PGconn *c = connect_or_fail(app_ci);
	const char *create[] = {th_env("RG_TEST_BIN"), "-c", cfg_path,
				"token", "create", "--role", "compliance",
				"--name", "auditor-1", NULL};
	const char *revoke[] = {th_env("RG_TEST_BIN"), "-c", cfg_path,
				"token", "revoke", "auditor-1", NULL};
	char tok[64], sql[512];
	const char *p;

	(void)state;
	if (th_run_capture(create, NULL, out, sizeof(out)) != 0)
		fail_msg("token create: %s", out);
	p = strstr(out, "rgt_");
	assert_non_null(p);
	snprintf(tok, sizeof(tok), "%.47s", p);
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_log WHERE "
				   "event_type = 'token.create' AND outcome = "
				   "'info' AND identity = 'token:auditor-1' AND "
				   "details->>'name' = 'auditor-1' AND "
				   "details->>'role' = 'compliance' AND "
				   "details->>'token_id' IS NOT NULL"),
			 1);
	if (th_run_capture(revoke, NULL, out, sizeof(out)) != 0)
		fail_msg("token revoke: %s", out);
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_log WHERE "
				   "event_type = 'token.revoke' AND "
				   "details->>'name' = 'auditor-1'"),
			 1);
	/* A second revoke finds nothing and records nothing. */
	assert_int_not_equal(th_run_capture(revoke, NULL, out, sizeof(out)),
			     0);
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_log WHERE "
				   "event_type = 'token.revoke'"),
			 1);
	/* Never the token. */
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM audit_log a WHERE strpos(a::text, "
		 "'%s') > 0",
		 tok);
	assert_int_equal(sql_ll(c, sql), 0);
	wait_sealed(c, 60);
	verify_passes();
	PQfinish(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seals_and_verifies_100k),
		cmocka_unit_test(changed_field_is_named),
		cmocka_unit_test(deleted_row_is_named),
		cmocka_unit_test(inserted_row_is_named),
		cmocka_unit_test(swapped_rows_are_named),
		cmocka_unit_test(truncated_tail_is_named),
		cmocka_unit_test(bad_checkpoint_signature_is_reported),
		cmocka_unit_test(service_role_cannot_change_audit_rows),
		cmocka_unit_test(public_key_route_and_metrics),
		cmocka_unit_test(purge_keeps_the_rest_verifiable),
		cmocka_unit_test(token_create_and_revoke_are_audited),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
