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
 *
 * The security review's findings (issue 8), each reproduced: chain entries
 * no checkpoint covers, records never sealed, a tail cut together with its
 * checkpoints (found through the checkpoint journal as --anchor), purges
 * forged by hand (no audit.purge record, a future cutoff, a checkpoint
 * that ends elsewhere), the service role passing a future cutoff to
 * audit_purge(), the sealer's restart after a purge of everything, and a
 * separated service role (a member of roomgate_service in a database of
 * its own) that can neither change nor purge nor backdate anything.
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

#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "tests/lib/th.h"

#define DBNAME "rg_audit_chain"
#define ROLES_DB "rg_audit_roles"
#define SVC_ROLE "rg_audit_svc"
#define NRECORDS 100000

static char app_ci[2048], admin_ci[2048], app_user[128];
static char cfg_path[600], pub_path[700], other_pub[600];
static struct th_server srv;
static char out[65536];
static long long gap_seq, max_seq;
static char ldap_ini[2048], keys_path[1024];

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

/* As conninfo_for, connecting as user with password instead. */
static void
conninfo_as(const char *url, const char *dbname, const char *user,
	    const char *pw, char *ci, size_t cilen)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL;

	opts = PQconninfoParse(url, &perr);
	assert_non_null(opts);
	ci[0] = '\0';
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || strcmp(o->keyword, "dbname") == 0 ||
		    strcmp(o->keyword, "user") == 0 ||
		    strcmp(o->keyword, "password") == 0)
			continue;
		kv_append(ci, cilen, o->keyword, o->val);
	}
	kv_append(ci, cilen, "dbname", dbname);
	kv_append(ci, cilen, "user", user);
	kv_append(ci, cilen, "password", pw);
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

/* verify must fail (exit 1) with want in its output. */
static void
verify_fails_saying(const char *a1, const char *want)
{
	int rc = verify(a1, NULL);

	if (rc != 1 || strstr(out, "audit verify: FAILED") == NULL)
		fail_msg("verify exited %d (want 1): %.3000s", rc, out);
	if (strstr(out, want) == NULL)
		fail_msg("verify did not say \"%s\": %.3000s", want, out);
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

/* The whole file, NUL-terminated (free it); NULL when unreadable. */
static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			char *p = realloc(buf, cap = cap * 2 + 8192);

			assert_non_null(p);
			buf = p;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
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
	n = snprintf(ldap_ini, sizeof(ldap_ini),
		     "[ldap]\nuri = %s\nbind_dn = %s\nbind_password = %s\n",
		     th_env("RG_TEST_LDAP_URI"), th_env("RG_TEST_LDAP_BIND_DN"),
		     th_env("RG_TEST_LDAP_BIND_PASSWORD"));
	assert_true(n > 0 && (size_t)n < sizeof(ldap_ini));
	snprintf(keys_path, sizeof(keys_path), "%s", keys_ini);
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
	/* Nor pass a cutoff in the future (the review's reproduction). */
	sql_fails(c,
		  "SELECT audit_purge((SELECT max(id) FROM audit_checkpoints), "
		  "now() + interval '1 day', 'x')",
		  "too recent");
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
	/* The service role owns the tables here: said at start, and 0. */
	assert_non_null(strstr(r.body, "roomgate_audit_role_separated 0\n"));
	{
		char *log = read_file(srv.log_path);

		assert_non_null(log);
		assert_non_null(strstr(log, "audit_role_not_separated"));
		assert_non_null(strstr(log, "AUDIT TRAIL NOT PROTECTED"));
		free(log);
	}
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


/* F2 (a): chain entries that no signed checkpoint covers (the sealer writes
 * both in one transaction), and records never sealed, fail verify. */
static void
uncovered_chain_fails(void **state)
{
	PGconn *a = attacker();
	char want[160], q[256];
	long long last;

	(void)state;
	sql_ok(a, "CREATE TEMP TABLE ck AS SELECT * FROM audit_checkpoints");
	last = sql_ll(a, "SELECT last_seq FROM audit_checkpoints ORDER BY "
			 "last_seq DESC OFFSET 1 LIMIT 1");
	/* The newest checkpoint gone: the chain runs past what is signed. */
	sqlf(a, "DELETE FROM audit_checkpoints WHERE last_seq > %lld", last);
	snprintf(q, sizeof(q),
		 "SELECT min(seq) FROM audit_chain WHERE seq > %lld", last);
	snprintf(want, sizeof(want),
		 "seq %lld: chained but no signed checkpoint covers it",
		 sql_ll(a, q));
	verify_fails_saying(NULL, want);
	/* Zero checkpoints at all. */
	sql_ok(a, "DELETE FROM audit_checkpoints");
	verify_fails_saying(NULL,
			    "seq 1: chained but no signed checkpoint covers it");
	/* Zero checkpoints and no chain: old records never sealed. */
	sql_ok(a, "CREATE TEMP TABLE ch AS SELECT * FROM audit_chain");
	sql_ok(a, "DELETE FROM audit_chain");
	verify_fails_saying(NULL, "seq 1: not sealed -- written at");
	sql_ok(a, "INSERT INTO audit_chain SELECT * FROM ch");
	sql_ok(a, "INSERT INTO audit_checkpoints OVERRIDING SYSTEM VALUE "
		  "SELECT * FROM ck");
	verify_passes();
	PQfinish(a);
}

/* F2 (b): a tail cut with its chain entries and checkpoints leaves a
 * consistent database; the checkpoint journal (the server's log, kept
 * elsewhere) finds it. */
static void
anchors_find_a_cut_tail(void **state)
{
	PGconn *a = attacker();
	char anchors[700], want[640];
	char *log = read_file(srv.log_path);
	long long cut;
	int rc;

	(void)state;
	assert_non_null(log);
	assert_non_null(strstr(log, "roomgate-audit-anchor-v1 last_seq="));
	free(log);
	snprintf(anchors, sizeof(anchors), "--anchor=%s", srv.log_path);
	rc = verify(anchors, NULL);
	if (rc != 0 || strstr(out, "anchored checkpoints match") == NULL ||
	    strstr(out, " 0 anchored") != NULL)
		fail_msg("verify --anchor exited %d: %s", rc, out);
	/* Everything after the second newest checkpoint. */
	cut = sql_ll(a, "SELECT last_seq FROM audit_checkpoints ORDER BY "
			"last_seq DESC OFFSET 1 LIMIT 1");
	sqlf(a, "CREATE TEMP TABLE t_log AS SELECT * FROM audit_log WHERE seq "
		"> %lld",
	     cut);
	sqlf(a, "CREATE TEMP TABLE t_ch AS SELECT * FROM audit_chain WHERE "
		"seq > %lld",
	     cut);
	sqlf(a, "CREATE TEMP TABLE t_ck AS SELECT * FROM audit_checkpoints "
		"WHERE last_seq > %lld",
	     cut);
	sqlf(a, "DELETE FROM audit_log WHERE seq > %lld", cut);
	sqlf(a, "DELETE FROM audit_chain WHERE seq > %lld", cut);
	sqlf(a, "DELETE FROM audit_checkpoints WHERE last_seq > %lld", cut);
	/* Without the anchor nothing tells. */
	verify_passes();
	snprintf(want, sizeof(want), ": truncated -- the checkpoint anchored "
				     "in %s",
		 srv.log_path);
	verify_fails_saying(anchors, want);
	/* A rebuilt checkpoint (same seq, other content) differs. */
	sql_ok(a, "INSERT INTO audit_checkpoints OVERRIDING SYSTEM VALUE "
		  "SELECT * FROM t_ck");
	sql_ok(a, "INSERT INTO audit_chain SELECT * FROM t_ch");
	sql_ok(a, "INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT * "
		  "FROM t_log");
	rc = verify(anchors, NULL);
	if (rc != 0)
		fail_msg("verify --anchor after the restore exited %d: %s", rc,
			 out);
	/* An anchor file that was edited is refused. */
	{
		char *text = read_file(srv.log_path), *p, path[700];

		assert_non_null(text);
		p = strstr(text, "roomgate-audit-anchor-v1 last_seq=");
		assert_non_null(p);
		p = strstr(p, " count=");
		assert_non_null(p);
		p[7] = p[7] == '9' ? '8' : (char)(p[7] + 1);
		snprintf(path, sizeof(path), "--anchor=%s",
			 th_write_file("anchors-edited.log", text));
		free(text);
		verify_fails_saying(path, "is not a checkpoint signed by a "
					  "known key");
	}
	PQfinish(a);
}

/* `roomgate -c CFG audit export --out DIR/name --format fmt [filter]`
 * into body (manifest: body.manifest.json). */
static void
export_to(const char *name, const char *fmt, const char *filter, char *body,
	  size_t bodylen, char *man, size_t manlen)
{
	const char *argv[] = {th_env("RG_TEST_BIN"), "-c", cfg_path, "audit",
			      "export", "--out", body, "--format", fmt, filter,
			      NULL};

	snprintf(body, bodylen, "%s/%s", th_env("RG_TEST_TMP"), name);
	snprintf(man, manlen, "%s.manifest.json", body);
	unlink(body);
	unlink(man);
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("audit export %s: %s", name, out);
}

/* `roomgate audit verify-export BODY MANIFEST --public-key PUB`. */
static int
verify_export(const char *body, const char *man)
{
	const char *argv[] = {th_env("RG_TEST_BIN"), "audit", "verify-export",
			      body, man, "--public-key", pub_path, NULL};

	return th_run_capture(argv, NULL, out, sizeof(out));
}

static void
verify_export_ok(const char *body, const char *man, const char *want)
{
	int rc = verify_export(body, man);

	if (rc != 0 || strstr(out, "OK: ") == NULL)
		fail_msg("verify-export %s exited %d: %.3000s", body, rc, out);
	if (want != NULL && strstr(out, want) == NULL)
		fail_msg("verify-export did not say \"%s\": %.3000s", want,
			 out);
}

/* Issue 8, item 3: exports carry what the chain hashes (source_addr as
 * inet text, NULL apart from "", jsonb text), and verify-export checks
 * each record against its sealed content hash, the links between
 * consecutive chain positions and the manifest's signed checkpoint. */
static void
export_rows_verify_against_the_chain(void **state)
{
	PGconn *c = connect_or_fail(app_ci), *a;
	char body[600], man[700], want[256], sql[4096];
	const char *fmts[] = {"csv", "jsonl"};
	long long n, k, from;
	char *text;

	(void)state;
	if (srv.pid <= 0)
		th_server_start(&srv, cfg_path, srv.port);
	verify_passes();
	for (int i = 0; i < 2; i++) {
		char name[32];

		wait_sealed(c, 60);
		n = sql_ll(c, "SELECT count(*) FROM audit_log");
		snprintf(name, sizeof(name), "chain-all.%s", fmts[i]);
		export_to(name, fmts[i], NULL, body, sizeof(body), man,
			  sizeof(man));
		/* All sealed, one run of chain positions ending at the
		 * manifest's checkpoint: every record is covered. */
		snprintf(want, sizeof(want),
			 "OK: %lld records, ", n);
		verify_export_ok(body, man, want);
		snprintf(want, sizeof(want),
			 "%lld sealed records match their content hashes", n);
		verify_export_ok(body, man, want);
		snprintf(want, sizeof(want),
			 "1 run of consecutive chain positions), %lld of them "
			 "covered by 1 signed checkpoint",
			 n);
		verify_export_ok(body, man, want);
		assert_null(strstr(out, "NOT SEALED"));
		text = read_file(body);
		assert_non_null(text);
		/* source_addr as the chain hashes it: with its prefix. */
		assert_non_null(strstr(text, i == 0 ? "/32," : "/32\""));
		free(text);
	}
	/* Filtered: each record on its own. */
	export_to("chain-user5.csv", "csv", "--identity=user5", body,
		  sizeof(body), man, sizeof(man));
	n = sql_ll(c, "SELECT count(*) FROM audit_log WHERE identity = "
		      "'user5'");
	assert_true(n > 10);
	snprintf(want, sizeof(want),
		 "%lld sealed records match their content hashes (0 links "
		 "checked, %lld runs",
		 n, n);
	verify_export_ok(body, man, want);

	/* A field changed in the database after sealing: the export,
	 * signed as read, names the record offline. */
	a = attacker();
	k = sql_ll(c, "SELECT seq FROM audit_log WHERE identity = 'user5' "
		      "ORDER BY seq OFFSET 3 LIMIT 1");
	sqlf(a, "CREATE TEMP TABLE t_r AS SELECT seq, user_agent FROM "
		"audit_log WHERE seq = %lld",
	     k);
	sqlf(a, "UPDATE audit_log SET user_agent = '=cmd|x' WHERE seq = %lld",
	     k);
	export_to("chain-user5-edited.csv", "csv", "--identity=user5", body,
		  sizeof(body), man, sizeof(man));
	assert_int_equal(verify_export(body, man), 1);
	snprintf(want, sizeof(want), "seq %lld: modified -- its exported "
				     "fields do not match the content hash",
		 k);
	if (strstr(out, "FAILED") == NULL || strstr(out, want) == NULL)
		fail_msg("verify-export did not say \"%s\": %s", want, out);
	/* The neutralised cell is shown; the hash is over the raw value. */
	text = read_file(body);
	assert_non_null(text);
	assert_non_null(strstr(text, ",'=cmd|x,"));
	free(text);
	sql_ok(a, "UPDATE audit_log SET user_agent = t.user_agent FROM t_r t "
		  "WHERE audit_log.seq = t.seq");
	PQfinish(a);
	verify_passes();

	/* Records no node has sealed yet are marked, not passed. */
	th_server_stop(&srv);
	wait_sealed(c, 1);
	from = sql_ll(c, "SELECT max(seq) FROM audit_log") + 1;
	snprintf(sql, sizeof(sql), gen_sql, "now()", 1, 2);
	sql_ok(c, sql);
	/* (to: the default, now, is whole seconds; these are newer) */
	export_to("chain-unsealed.jsonl", "jsonl", "--to=2100-01-01", body,
		  sizeof(body), man, sizeof(man));
	snprintf(want, sizeof(want),
		 "; 2 NOT SEALED (seq %lld..%lld, newer than the last "
		 "checkpoint",
		 from, from + 1);
	verify_export_ok(body, man, want);
	text = read_file(body);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"sealed\":false,\"chain_pos\":null"));
	free(text);
	th_server_start(&srv, cfg_path, srv.port);
	wait_sealed(c, 60);
	verify_passes();
	PQfinish(c);
}

/* Issue 8, item 2: an export manifest is an anchor too -- its signed last
 * checkpoint must still be in the database, unchanged. */
static void
manifest_anchors_the_chain(void **state)
{
	PGconn *c = connect_or_fail(app_ci), *a;
	char body[600], man[700], anchor[800], want[1400];
	json_t *m;
	const char *id;
	long long ck, ck_id, cut;
	int rc;

	(void)state;
	if (srv.pid <= 0)
		th_server_start(&srv, cfg_path, srv.port);
	wait_sealed(c, 60);
	export_to("anchor.csv", "csv", NULL, body, sizeof(body), man,
		  sizeof(man));
	m = json_load_file(man, 0, NULL);
	assert_non_null(m);
	ck = json_integer_value(json_object_get(
		json_object_get(m, "last_checkpoint"), "last_seq"));
	ck_id = json_integer_value(
		json_object_get(json_object_get(m, "last_checkpoint"), "id"));
	id = json_string_value(json_object_get(m, "export_id"));
	assert_true(ck > 0 && ck_id > 0 && id != NULL);
	snprintf(anchor, sizeof(anchor), "--anchor=%s", man);
	rc = verify(anchor, NULL);
	if (rc != 0 || strstr(out, "; 1 anchored checkpoints match") == NULL)
		fail_msg("verify --anchor MANIFEST exited %d: %s", rc, out);

	/* The tail cut back to the checkpoint before the export's, with
	 * its chain entries and checkpoints: consistent without the
	 * manifest, found with it. */
	a = attacker();
	sqlf(a, "CREATE TEMP TABLE t_cut AS SELECT max(last_seq) AS s FROM "
		"audit_checkpoints WHERE last_seq < %lld",
	     ck);
	cut = sql_ll(a, "SELECT s FROM t_cut");
	assert_true(cut > 0 && cut < ck);
	sqlf(a, "CREATE TEMP TABLE t_log AS SELECT * FROM audit_log WHERE seq "
		"> %lld",
	     cut);
	sqlf(a, "CREATE TEMP TABLE t_ch AS SELECT * FROM audit_chain WHERE "
		"seq > %lld",
	     cut);
	sqlf(a, "CREATE TEMP TABLE t_ck AS SELECT * FROM audit_checkpoints "
		"WHERE last_seq > %lld",
	     cut);
	sqlf(a, "DELETE FROM audit_log WHERE seq > %lld", cut);
	sqlf(a, "DELETE FROM audit_chain WHERE seq > %lld", cut);
	sqlf(a, "DELETE FROM audit_checkpoints WHERE last_seq > %lld", cut);
	verify_passes();
	snprintf(want, sizeof(want),
		 "seq %lld: truncated -- the checkpoint anchored in export "
		 "%s's manifest %s as checkpoint #%lld",
		 ck, id, man, ck_id);
	verify_fails_saying(anchor, want);
	/* Put back: the manifest anchors again. */
	sql_ok(a, "INSERT INTO audit_checkpoints OVERRIDING SYSTEM VALUE "
		  "SELECT * FROM t_ck");
	sql_ok(a, "INSERT INTO audit_chain SELECT * FROM t_ch");
	sql_ok(a, "INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT * "
		  "FROM t_log");
	rc = verify(anchor, NULL);
	if (rc != 0)
		fail_msg("verify --anchor MANIFEST after the restore exited "
			 "%d: %s",
			 rc, out);
	/* A manifest edited by hand is refused as an anchor. */
	{
		char *text = read_file(man), *p, path[800];

		assert_non_null(text);
		p = strstr(text, "\"count\": ");
		assert_non_null(p);
		p[9] = p[9] == '9' ? '8' : (char)(p[9] + 1);
		snprintf(path, sizeof(path), "--anchor=%s",
			 th_write_file("anchor-edited.manifest.json", text));
		free(text);
		verify_fails_saying(path, "is an export manifest that does "
					  "not check: the manifest's signature "
					  "does not verify");
	}
	rc = verify(anchor, NULL);
	if (rc != 0)
		fail_msg("verify --anchor MANIFEST at the end exited %d: %s", rc,
			 out);
	json_decref(m);
	PQfinish(a);
	PQfinish(c);
}

/* F1: purges written by hand, as the owner with the triggers off can:
 * each is refused by verify, which always prints the purged range. */
static void
forged_purges_fail_verify(void **state)
{
	PGconn *c = connect_or_fail(app_ci), *a;
	long long k_seq, k_id, done;
	char want[200];

	(void)state;
	/* The reviewer's call: a cutoff in the future. */
	sql_fails(c,
		  "SELECT audit_purge((SELECT max(id) FROM audit_checkpoints), "
		  "now() + interval '1 day', 'x')",
		  "too recent");
	PQfinish(c);
	th_server_stop(&srv);
	a = attacker();
	done = sql_ll(a, "SELECT max(upto_seq) FROM audit_purges");
	k_seq = sql_ll(a, "SELECT max(last_seq) FROM audit_checkpoints");
	k_id = sql_ll(a, "SELECT id FROM audit_checkpoints ORDER BY last_seq "
			 "DESC LIMIT 1");
	sqlf(a, "CREATE TEMP TABLE f_log AS SELECT * FROM audit_log WHERE seq "
		"<= %lld",
	     k_seq);
	sqlf(a, "CREATE TEMP TABLE f_ch AS SELECT * FROM audit_chain WHERE "
		"seq <= %lld",
	     k_seq);
	/* What the old audit_purge() did with a future cutoff. */
	sql_ok(a, "BEGIN");
	sqlf(a,
	     "INSERT INTO audit_purges (upto_seq, checkpoint_id, cutoff, "
	     "records, node) SELECT %lld, %lld, now() + interval '1 day', "
	     "count(*), 'x' FROM audit_log WHERE seq > %lld AND seq <= %lld",
	     k_seq, k_id, done, k_seq);
	sqlf(a, "DELETE FROM audit_log WHERE seq <= %lld", k_seq);
	sqlf(a, "DELETE FROM audit_chain WHERE seq <= %lld", k_seq);
	sqlf(a,
	     "INSERT INTO audit_log (event_type, outcome, reason, node, "
	     "details) SELECT 'audit.purge', 'info', 'retention', 'x', "
	     "jsonb_build_object('upto_seq', upto_seq, 'checkpoint', "
	     "checkpoint_id, 'records', records, 'cutoff', cutoff) FROM "
	     "audit_purges WHERE upto_seq = %lld",
	     k_seq);
	sql_ok(a, "COMMIT");
	verify_fails_saying(NULL, "not at least retention_days (0) before "
				  "the purge");
	snprintf(want, sizeof(want),
		 "audit verify: purged: records up to seq %lld were purged "
		 "under retention at 20",
		 k_seq);
	if (strstr(out, want) == NULL)
		fail_msg("verify did not print the purge: %s", out);
	/* A purge row without its audit.purge record. */
	sqlf(a, "DELETE FROM audit_log WHERE seq > %lld", k_seq);
	verify_fails_saying(NULL, "is not followed by its audit.purge record");
	/* A purge row whose range is not its checkpoint's. */
	sqlf(a, "UPDATE audit_purges SET upto_seq = upto_seq - 1 WHERE "
		"upto_seq = %lld",
	     k_seq);
	verify_fails_saying(NULL, "name a checkpoint that does not end at "
				  "the purged seq");
	/* Undone: back to the genuine purge. */
	sqlf(a, "DELETE FROM audit_purges WHERE upto_seq = %lld", k_seq - 1);
	sql_ok(a, "INSERT INTO audit_chain SELECT * FROM f_ch");
	sql_ok(a, "INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT * "
		  "FROM f_log");
	verify_passes();
	assert_non_null(strstr(out, "audit verify: purged: records up to "
				    "seq 50000 were purged"));
	PQfinish(a);
}

/* F3: a purge up to the newest checkpoint leaves audit_chain empty; the
 * sealer, restarted, goes on from that checkpoint. */
static void
purge_everything_then_restart(void **state)
{
	PGconn *c = connect_or_fail(app_ci);
	const char *argv[] = {th_env("RG_TEST_BIN"), "-c", cfg_path,
			      "audit", "purge", "--before", NULL, NULL};
	char cutoff[64], sql[4096];
	long long count;
	PGresult *res;

	(void)state;
	/* The owner lowers the retention floor (an audited change). */
	sql_ok(c, "UPDATE audit_policy SET min_retention = interval '0'");
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_log WHERE "
				   "event_type = 'audit.policy'"),
			 1);
	th_server_start(&srv, cfg_path, srv.port);
	wait_sealed(c, 60);
	count = sql_ll(c, "SELECT count FROM audit_checkpoints ORDER BY "
			  "last_seq DESC LIMIT 1");
	usleep(20 * 1000);
	res = PQexec(c, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
			"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	snprintf(cutoff, sizeof(cutoff), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	argv[6] = cutoff;
	/* Stopped, so that nothing is sealed before the restart. */
	th_server_stop(&srv);
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("purge: %s", out);
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_chain"), 0);
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_log"), 1);
	/* Restart: the head comes from the checkpoint, not from 0. */
	snprintf(sql, sizeof(sql), gen_sql, "now()", 1, 5);
	sql_ok(c, sql);
	th_server_start(&srv, cfg_path, srv.port);
	wait_sealed(c, 60);
	assert_int_equal(sql_ll(c, "SELECT min(pos) FROM audit_chain"),
			 count + 1);
	verify_passes();
	assert_int_equal(sql_ll(c, "SELECT count(*) FROM audit_chain"),
			 sql_ll(c, "SELECT count(*) FROM audit_log"));
	PQfinish(c);
}

/* F2 (c) and F7: migrations as the owner, the service as a member of
 * roomgate_service. That role cannot change, cut, unprotect or purge the
 * trail, nor choose a record's time; the server says it is separated. */
static void
separated_service_role(void **state)
{
	char postgres_ci[2048], owner_ci[2048], svc_ci[2048], text[8192];
	char pw[33], env_url[2200], cfg2[600], url[256];
	unsigned char rnd[16];
	const char *argv[] = {th_env("RG_TEST_BIN"), "migrate", NULL};
	const char *env[] = {env_url, NULL};
	struct th_server s2;
	struct th_http r;
	PGconn *a, *o, *v;
	long long seq, ck;
	int n;

	(void)state;
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(pw, sizeof(pw), rnd, sizeof(rnd));
	conninfo_for(th_env("RG_TEST_PG_ADMIN_URL"), "postgres", postgres_ci,
		     sizeof(postgres_ci), NULL, 0);
	a = connect_or_fail(postgres_ci);
	sql_ok(a, "DROP DATABASE IF EXISTS " ROLES_DB);
	sqlf(a, "CREATE DATABASE " ROLES_DB " OWNER \"%s\"", app_user);
	sql_ok(a, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE "
		  "rolname = 'roomgate_service') THEN CREATE ROLE "
		  "roomgate_service NOLOGIN; END IF; IF NOT EXISTS (SELECT 1 "
		  "FROM pg_roles WHERE rolname = '" SVC_ROLE "') THEN CREATE "
		  "ROLE " SVC_ROLE " LOGIN IN ROLE roomgate_service; END IF; "
		  "END $$");
	sqlf(a, "ALTER ROLE " SVC_ROLE " PASSWORD '%s'", pw);
	PQfinish(a);
	/* Migrated by the owner (the app role of the other tests). */
	conninfo_for(th_env("RG_TEST_PG_URL"), ROLES_DB, owner_ci,
		     sizeof(owner_ci), NULL, 0);
	conninfo_as(th_env("RG_TEST_PG_URL"), ROLES_DB, SVC_ROLE, pw, svc_ci,
		    sizeof(svc_ci));
	snprintf(env_url, sizeof(env_url), "ROOMGATE_DATABASE_URL=%s",
		 owner_ci);
	{
		const char *mig[] = {argv[0], "-c", cfg_path, "migrate", NULL};

		if (th_run_capture(mig, env, out, sizeof(out)) != 0)
			fail_msg("migrate as the owner: %s", out);
	}
	o = connect_or_fail(owner_ci);
	v = connect_or_fail(svc_ci);
	/* F7, and F1 of the second review: the service cannot name a
	 * record's time or seq (INSERT is granted on the other columns
	 * only, migration 0022), not even with OVERRIDING SYSTEM VALUE; a
	 * temporary table named pg_class changes nothing; the time is the
	 * insert's. */
	sql_fails(v, "INSERT INTO audit_log (at, event_type, outcome) "
		     "VALUES ('2000-01-01T00:00:00Z', 'join', 'deny')",
		  "permission denied");
	sql_fails(v, "INSERT INTO audit_log (seq, event_type, outcome) "
		     "OVERRIDING SYSTEM VALUE VALUES (4611686018427387904, "
		     "'join', 'deny')",
		  "permission denied");
	sql_ok(v, "CREATE TEMP TABLE pg_class (oid oid, relowner oid)");
	sql_ok(v, "INSERT INTO pg_class SELECT 'audit_log'::regclass, oid "
		  "FROM pg_roles WHERE rolname = current_user");
	sql_fails(v, "INSERT INTO audit_log (at, event_type, outcome) "
		     "VALUES ('2000-01-01T00:00:00Z', 'join', 'deny')",
		  "permission denied");
	seq = sql_ll(v, "INSERT INTO audit_log (event_type, outcome) "
			"VALUES ('join', 'deny') RETURNING seq");
	{
		char q[256];

		snprintf(q, sizeof(q),
			 "SELECT count(*) FROM audit_log WHERE seq = %lld AND "
			 "at > now() - interval '1 minute'",
			 seq);
		assert_int_equal(sql_ll(o, q), 1);
	}
	/* A checkpoint over it (the owner writes one; the sealer would). */
	ck = sql_ll(o, "INSERT INTO audit_checkpoints (kid, last_seq, count, "
		       "last_hash, created_at, node, body, sig) SELECT "
		       "'0123456789abcdef', max(seq), 1, decode(repeat('00', "
		       "32), 'hex'), now() - interval '3 days', 'x', 'b', "
		       "decode(repeat('00', 64), 'hex') FROM audit_log "
		       "RETURNING id");
	sql_fails(v, "UPDATE audit_log SET outcome = 'allow'",
		  "permission denied");
	sql_fails(v, "DELETE FROM audit_log", "permission denied");
	sql_fails(v, "TRUNCATE audit_log", "permission denied");
	sql_fails(v, "ALTER TABLE audit_log DISABLE TRIGGER ALL",
		  "must be owner");
	sql_fails(v, "ALTER TABLE audit_chain DISABLE TRIGGER USER",
		  "must be owner");
	sql_fails(v, "DELETE FROM audit_chain", "permission denied");
	sql_fails(v, "DELETE FROM audit_checkpoints", "permission denied");
	sql_fails(v, "UPDATE audit_checkpoints SET count = 2",
		  "permission denied");
	sql_fails(v, "SET session_replication_role = replica",
		  "permission denied");
	sql_fails(v, "UPDATE audit_policy SET min_retention = interval '0'",
		  "permission denied");
	/* A purge forged by hand: no row, no delete. */
	sqlf(v, "SET roomgate.audit_purge_upto = '%lld'", seq);
	sqlf(v, "SELECT set_config('roomgate.audit_purge_upto', '%lld', "
		"false)",
	     seq);
	{
		char q[512];

		snprintf(q, sizeof(q),
			 "INSERT INTO audit_purges (upto_seq, checkpoint_id, "
			 "cutoff, records) VALUES (%lld, %lld, now(), 1)",
			 seq, ck);
		sql_fails(v, q, "permission denied");
		snprintf(q, sizeof(q), "DELETE FROM audit_log WHERE seq = %lld",
			 seq);
		sql_fails(v, q, "permission denied");
		/* Through audit_purge(): not with a cutoff of its choosing. */
		snprintf(q, sizeof(q),
			 "SELECT audit_purge(%lld, now() + interval '1 day', "
			 "'x')",
			 ck);
		sql_fails(v, q, "too recent");
		snprintf(q, sizeof(q),
			 "SELECT audit_purge(%lld, now() - interval '2 days', "
			 "'x')",
			 ck);
		sql_fails(v, q, "not all sealed and older");
	}
	assert_int_equal(sql_ll(o, "SELECT count(*) FROM audit_purges"), 0);
	assert_true(sql_ll(o, "SELECT count(*) FROM audit_log") >= 1);
	/* What the service does need still works. */
	sql_ok(v, "INSERT INTO audit_chain (seq, pos, content_hash, hash) "
		  "VALUES (1, 1, decode(repeat('00', 32), 'hex'), "
		  "decode(repeat('00', 32), 'hex'))");
	PQfinish(v);
	PQfinish(o);

	/* A server connected as that role says it is separated. */
	memset(&s2, 0, sizeof(s2));
	s2.port = th_free_port();
	n = snprintf(text, sizeof(text),
		     "[server]\nport = %d\nnode_name = node-r\n"
		     "[database]\nurl = %s\n%s[keys]\nfile = %s\n",
		     s2.port, svc_ci, ldap_ini, keys_path);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	snprintf(cfg2, sizeof(cfg2), "%s",
		 th_write_file("audit-roles.ini", text));
	th_server_start(&s2, cfg2, s2.port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", s2.port);
	/* The role check runs once the node is up: the gauge appears when
	 * it has answered (absent before). */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 200);
		if (strstr(r.body, "roomgate_audit_role_separated ") != NULL)
			break;
		usleep(100 * 1000);
	}
	if (strstr(r.body, "roomgate_audit_role_separated 1\n") == NULL)
		fail_msg("metrics: %s", r.body);
	th_server_stop(&s2);
	{
		char *log = read_file(s2.log_path);

		assert_non_null(log);
		assert_null(strstr(log, "audit_role_not_separated"));
		free(log);
	}
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
		cmocka_unit_test(uncovered_chain_fails),
		cmocka_unit_test(anchors_find_a_cut_tail),
		cmocka_unit_test(service_role_cannot_change_audit_rows),
		cmocka_unit_test(public_key_route_and_metrics),
		cmocka_unit_test(purge_keeps_the_rest_verifiable),
		cmocka_unit_test(token_create_and_revoke_are_audited),
		cmocka_unit_test(export_rows_verify_against_the_chain),
		cmocka_unit_test(manifest_anchors_the_chain),
		cmocka_unit_test(forged_purges_fail_verify),
		cmocka_unit_test(purge_everything_then_restart),
		cmocka_unit_test(separated_service_role),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
