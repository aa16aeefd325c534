/*
 * Integration: the demo stack of `make run` (deploy/dev/stack.sh) started
 * as it is there, but in a directory of its own under the test's temp dir
 * and on free ports, with this build's roomgate and demo IdP. Issue 8
 * asks that the service's database role cannot UPDATE or DELETE audit
 * rows; this checks that it holds in the default setup:
 *
 * - the service runs as the login role of deploy/dev/pg.sh's PG_SERVICE_URL
 *   (a member of roomgate_service), the owner only migrates, its URL is not
 *   in the service's config, /metrics shows roomgate_audit_role_separated 1,
 *   and that role's UPDATE, DELETE and TRUNCATE on audit_log fail
 *   (test_audit_chain.c checks every privilege of such a role; this checks
 *   the stack gives the service one);
 * - what the service does as that role works: sign-in through the demo IdP,
 *   joins (admitted, wrong code, not a member), the sealer chaining every
 *   record (and the start-up retention purge), `audit verify`, `audit
 *   export`, `audit purge` (SECURITY DEFINER), the meeting CLI, a code
 *   rotation's webhook delivered to a receiver in this process; the log
 *   has no error line;
 * - a data directory of the old single-role layout (no service role, the
 *   schema migrated by the service as the owner) is taken over by the next
 *   start: the role is made and granted, the data kept (same demo meeting),
 *   and it is separated too; `stop` stops everything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

/* The helpers' IdP, proxy and key functions go unused here: the stack
 * starts its own. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

/* The stack's webhooks go to the test's receiver (the stack passes
 * ROOMGATE_WEBHOOKS_* on to roomgate): the deliverers, their LISTEN
 * connection and the outbox run as the service role too. */
#define SECRET "devstack-webhook-secret-9c2e71"
#define WINDOW_S 300
#define MAX_REC 256
#include "tests/integration/webhook_rcv_th.h"

static char data[512], ini[600], base[64], idp_base[64], idp_bin[512];
static char demo_pw[128], owner_url[512], svc_url[512], out[65536];
static int http_port, pg_port, ldap_port, ldaps_port, idp_port;

/* deploy/dev/stack.sh VERB with this test's directory, ports and
 * binaries; its output is appended to RG_TEST_TMP/devstack.log. */
static int
stack(const char *verb)
{
	return th_sh("ROOMGATE_DEV_DATA='%s' ROOMGATE_DEV_HTTP_PORT=%d "
	             "ROOMGATE_DEV_PG_PORT=%d ROOMGATE_DEV_LDAP_PORT=%d "
	             "ROOMGATE_DEV_LDAPS_PORT=%d ROOMGATE_DEV_IDP_PORT=%d "
	             "ROOMGATE_BIN='%s' ROOMGATE_IDP_BIN='%s' "
	             "ROOMGATE_WEBHOOKS_URL=http://127.0.0.1:%d/hooks "
	             "ROOMGATE_WEBHOOKS_SECRET=" SECRET " "
	             "'%s/deploy/dev/stack.sh' %s >>'%s/devstack.log' 2>&1",
	             data, http_port, pg_port, ldap_port, ldaps_port, idp_port,
	             th_env("RG_TEST_BIN"), idp_bin, R.port,
	             th_env("RG_TEST_ROOT"), verb, th_env("RG_TEST_TMP"));
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = malloc(1 << 20);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
start_or_fail(void)
{
	if (stack("start") != 0) {
		char p[600], *log;

		snprintf(p, sizeof(p), "%s/devstack.log",
		         th_env("RG_TEST_TMP"));
		log = read_file(p);
		fail_msg("stack.sh start failed:\n%s", log ? log : "(no log)");
	}
}

/* KEY's value in DIR/env (KEY=VALUE lines) into out. */
static void
env_value(const char *file, const char *key, char *val, size_t n)
{
	char *text = read_file(file), *p, *e;
	size_t kl = strlen(key);

	assert_non_null(text);
	for (p = text; p != NULL && *p != '\0'; p = e ? e + 1 : NULL) {
		e = strchr(p, '\n');
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t l =
			    e ? (size_t)(e - p) - kl - 1 : strlen(p + kl + 1);

			assert_true(l > 0 && l < n);
			memcpy(val, p + kl + 1, l);
			val[l] = '\0';
			free(text);
			return;
		}
	}
	free(text);
	fail_msg("%s has no %s", file, key);
}

static PGconn *
connect_or_fail(const char *url)
{
	PGconn *c = PQconnectdb(url);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(c));
	return c;
}

static long long
sql_ll(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long long v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

static void
sql_fails(PGconn *c, const char *sql, const char *want)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);

	PQclear(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		fail_msg("as the service role, this succeeded: %s", sql);
	if (strstr(PQerrorMessage(c), want) == NULL)
		fail_msg("%s: wanted \"%s\", got: %s", sql, want,
		         PQerrorMessage(c));
}

static void
metrics_say_separated(void)
{
	struct th_http r;
	char url[128];

	snprintf(url, sizeof(url), "%s/metrics", base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 200);
	if (strstr(r.body, "roomgate_audit_role_separated 1\n") == NULL)
		fail_msg("metrics: %s", r.body);
}

/* The role the stack's service uses cannot change audit rows. */
static void
service_role_cannot_change_audit(void)
{
	PGconn *v = connect_or_fail(svc_url);
	PGresult *r = PQexec(v, "SELECT current_user");

	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "roomgate_app");
	PQclear(r);
	assert_true(sql_ll(v, "SELECT count(*) FROM audit_log") > 0);
	sql_fails(v, "UPDATE audit_log SET outcome = 'allow'",
	          "permission denied");
	sql_fails(v, "DELETE FROM audit_log", "permission denied");
	sql_fails(v, "TRUNCATE audit_log", "permission denied");
	sql_fails(v, "ALTER TABLE audit_log DISABLE TRIGGER ALL",
	          "must be owner");
	PQfinish(v);
}

/* Signs user in at the stack through its demo IdP (the users' password is
 * the stack's LDAP_DEMO_PASSWORD, so sth_sign_in's fixed one does not
 * do). */
static void
sign_in(struct sth_browser *b, const char *user)
{
	struct sth_resp r;
	char url[8300], body[16384], *q, *eq, *b64, *e, *action;

	snprintf(url, sizeof(url), "%s/saml/login?return=/v1/me", base);
	assert_int_equal(sth_do(b, url, NULL, 0, &r), 302);
	snprintf(url, sizeof(url), "%s", r.location);
	sth_resp_free(&r);
	assert_int_equal(sth_do(b, url, NULL, 0, &r), 200);
	q = sth_form_field(r.body, "q");
	assert_non_null(q);
	sth_resp_free(&r);
	eq = sth_escape(b, q);
	snprintf(body, sizeof(body), "q=%s&user=%s&password=%s", eq, user,
	         demo_pw);
	snprintf(url, sizeof(url), "%s/sso", idp_base);
	if (sth_do(b, url, body, strlen(body), &r) != 200)
		fail_msg("demo IdP answered %ld: %s", r.status, r.body);
	b64 = sth_form_field(r.body, "SAMLResponse");
	action = sth_form_action(r.body);
	assert_non_null(b64);
	assert_non_null(action);
	sth_resp_free(&r);
	e = sth_escape(b, b64);
	assert_true(strlen(e) + 16 < sizeof(body));
	snprintf(body, sizeof(body), "SAMLResponse=%s", e);
	if (sth_do(b, action, body, strlen(body), &r) != 303)
		fail_msg("ACS answered %ld: %s", r.status, r.body);
	sth_resp_free(&r);
	free(e);
	free(action);
	free(b64);
	free(eq);
	free(q);
}

/* The demo meeting's link and current code, from `roomgate meeting show`
 * run as the stack's service (its config). */
static void
demo_meeting(char *id, size_t idn, char *link, size_t linkn, char *code,
             size_t coden)
{
	char p[600], *t, *s;
	size_t l;

	snprintf(p, sizeof(p), "%s/demo-meeting.id", data);
	t = read_file(p);
	assert_non_null(t);
	l = strcspn(t, "\n");
	assert_true(l > 0 && l < idn);
	memcpy(id, t, l);
	id[l] = '\0';
	free(t);
	{
		const char *argv[] = {
		    th_env("RG_TEST_BIN"), "-c", ini, "meeting", "show", id,
		    "--with-code",         NULL};

		if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
			fail_msg("meeting show: %s", out);
	}
	s = strstr(out, "\"link\": \"");
	assert_non_null(s);
	s += 9;
	l = strcspn(s, "\"");
	assert_true(l > 0 && l < linkn);
	memcpy(link, s, l);
	link[l] = '\0';
	s = strstr(out, "\ncode: ");
	assert_non_null(s);
	s += 7;
	l = strspn(s, "0123456789");
	assert_true(l > 0 && l < coden);
	memcpy(code, s, l);
	code[l] = '\0';
}

/* POST /v1/join/{link} as user with code; returns the status. */
static long
join(const char *user, const char *link, const char *code)
{
	struct sth_browser b;
	struct sth_resp r;
	char path[400], body[128];
	const char *slash = strrchr(link, '/');
	long st;

	sth_browser_init(&b);
	sign_in(&b, user);
	snprintf(path, sizeof(path), "/v1/join/%s", slash ? slash + 1 : link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	st = ath_req(base, &b, "POST", path, NULL, body, &r);
	if (st == 200)
		assert_non_null(strstr(r.body, "\"token\""));
	sth_resp_free(&r);
	sth_browser_free(&b);
	return st;
}

/* Every record is chained (the sealer runs as the service role). */
static void
wait_sealed(void)
{
	PGconn *o = connect_or_fail(owner_url);
	long long left = -1;

	for (int i = 0; i < 300; i++) {
		left = sql_ll(o, "SELECT count(*) FROM audit_log l WHERE NOT "
		                 "EXISTS (SELECT 1 FROM audit_chain c WHERE "
		                 "c.seq = l.seq)");
		if (left == 0)
			break;
		usleep(100 * 1000);
	}
	PQfinish(o);
	if (left != 0)
		fail_msg("%lld audit records not sealed after 30 s", left);
}

static void
cli_ok(const char *const *args)
{
	const char *argv[16];
	size_t n = 0;

	argv[n++] = th_env("RG_TEST_BIN");
	argv[n++] = "-c";
	argv[n++] = ini;
	for (; *args != NULL && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("roomgate %s %s: %s", argv[3], argv[4], out);
}

/* `meeting rotate` (the CLI, as the service role) writes a code.rotated
 * outbox event; the stack's deliverer hands it to the receiver. */
static void
rotation_is_delivered(const char *id)
{
	const char *rotate[] = {"meeting", "rotate", id, NULL};
	int before, got = 0;

	rcv_lock();
	before = R.ngot;
	rcv_unlock();
	cli_ok(rotate);
	for (int i = 0; i < 200 && got <= before; i++) {
		rcv_lock();
		got = R.ngot;
		rcv_unlock();
		if (got <= before)
			usleep(100 * 1000);
	}
	if (got <= before)
		fail_msg("no webhook delivered within 20 s of a code rotation");
	rcv_lock();
	assert_int_equal(R.bad, 0);
	rcv_unlock();
}

static void
log_has_no_error(void)
{
	char p[600], *log;

	snprintf(p, sizeof(p), "%s/roomgate.log", data);
	log = read_file(p);
	assert_non_null(log);
	assert_non_null(strstr(log, "\"level\":\"info\""));
	if (strstr(log, "\"level\":\"error\"") != NULL ||
	    strstr(log, "audit_role_not_separated") != NULL ||
	    strstr(log, "audit_role_unknown") != NULL)
		fail_msg("roomgate.log:\n%s", log);
	free(log);
}

static void
mode_is_0600(const char *name)
{
	char p[600];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", data, name);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void
make_run_separates_the_service(void **state)
{
	char id[64], link[256], code[32], wrong[32], export_path[600], *text;
	PGconn *o;

	(void)state;
	start_or_fail();
	snprintf(ini, sizeof(ini), "%s/roomgate.ini", data);
	{
		char p[600];

		snprintf(p, sizeof(p), "%s/pg/env", data);
		env_value(p, "PG_OWNER_URL", owner_url, sizeof(owner_url));
		env_value(p, "PG_SERVICE_URL", svc_url, sizeof(svc_url));
		snprintf(p, sizeof(p), "%s/ldap/env", data);
		env_value(p, "LDAP_DEMO_PASSWORD", demo_pw, sizeof(demo_pw));
	}
	mode_is_0600("pg/env");
	mode_is_0600("migrate.ini");
	mode_is_0600("roomgate.ini");
	/* The service's config names its own role, never the owner's. */
	text = read_file(ini);
	assert_non_null(text);
	assert_non_null(strstr(text, svc_url));
	assert_null(strstr(text, owner_url));
	assert_non_null(strstr(text, "migrate_on_start = false"));
	free(text);
	metrics_say_separated();

	demo_meeting(id, sizeof(id), link, sizeof(link), code, sizeof(code));
	assert_int_equal(join("alice", link, code), 200);
	/* A wrong code of the same length: the last digit changed. */
	snprintf(wrong, sizeof(wrong), "%s", code);
	wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == '0' ? '1' : '0';
	assert_int_equal(join("bob", link, wrong), 401);
	assert_int_equal(join("dave", link, code), 403);
	service_role_cannot_change_audit();
	wait_sealed();
	{
		const char *verify[] = {"audit", "verify", NULL};
		const char *purge[] = {"audit", "purge", NULL};
		const char *exp[] = {"audit", "export", "--out", export_path,
		                     NULL};

		snprintf(export_path, sizeof(export_path), "%s/export.csv",
		         th_env("RG_TEST_TMP"));
		cli_ok(verify);
		cli_ok(exp);
		cli_ok(purge);
	}
	rotation_is_delivered(id);
	o = connect_or_fail(owner_url);
	assert_int_equal(sql_ll(o, "SELECT count(*) FROM audit_exports"), 1);
	assert_true(sql_ll(o, "SELECT count(*) FROM audit_log WHERE "
	                      "event_type = 'admission' AND outcome = "
	                      "'allow'") >= 1);
	PQfinish(o);
	metrics_say_separated();
	log_has_no_error();
}

/* The layout of `make run` before the service role: one role, "roomgate",
 * owned the database and ran the service, which migrated. */
static void
old_single_role_dir_is_taken_over(void **state)
{
	char id[64], link[256], code[32], id2[64], p[600], admin[512];
	PGconn *a;

	(void)state;
	demo_meeting(id, sizeof(id), link, sizeof(link), code, sizeof(code));
	assert_int_equal(stack("stop"), 0);
	snprintf(p, sizeof(p), "%s/pg", data);
	assert_int_equal(th_sh("'%s/deploy/dev/pg.sh' start '%s' >>'%s/"
	                       "devstack.log' 2>&1",
	                       th_env("RG_TEST_ROOT"), p,
	                       th_env("RG_TEST_TMP")),
	                 0);
	snprintf(p, sizeof(p), "%s/pg/env", data);
	env_value(p, "PG_ADMIN_URL", admin, sizeof(admin));
	{
		char *slash = strrchr(admin, '/');

		assert_non_null(slash);
		snprintf(slash + 1, sizeof(admin) - (size_t)(slash + 1 - admin),
		         "roomgate");
	}
	a = connect_or_fail(admin);
	{
		PGresult *r = PQexec(a, "DROP OWNED BY roomgate_app, "
		                        "roomgate_service; DROP ROLE "
		                        "roomgate_app; DROP ROLE "
		                        "roomgate_service");

		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			fail_msg("making the old layout: %s",
			         PQerrorMessage(a));
		PQclear(r);
	}
	PQfinish(a);
	assert_int_equal(
	    th_sh("sed -i '/^PG_OWNER_URL=/d; /^PG_SERVICE_URL=/d' '%s' && "
	          "rm -f '%s/pg/.provisioned-service' '%s/migrate.ini' && "
	          "'%s/deploy/dev/pg.sh' stop '%s/pg' >>'%s/devstack.log' 2>&1",
	          p, data, data, th_env("RG_TEST_ROOT"), data,
	          th_env("RG_TEST_TMP")),
	    0);

	start_or_fail();
	env_value(p, "PG_SERVICE_URL", svc_url, sizeof(svc_url));
	mode_is_0600("pg/env");
	metrics_say_separated();
	service_role_cannot_change_audit();
	/* The data is kept: the same demo meeting, joinable by the new role
	 * (grants on the tables made before it). */
	demo_meeting(id2, sizeof(id2), link, sizeof(link), code, sizeof(code));
	assert_string_equal(id, id2);
	assert_int_equal(join("carol", link, code), 200);
	rotation_is_delivered(id);
	wait_sealed();
	{
		const char *verify[] = {"audit", "verify", NULL};

		cli_ok(verify);
	}
	log_has_no_error();

	/* `stop` (make stop) stops all of it. */
	assert_int_equal(stack("stop"), 0);
	assert_int_equal(stack("status"), 1);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(data, sizeof(data), "%s/devstack", th_env("RG_TEST_TMP"));
	sth_idp_bin(idp_bin, sizeof(idp_bin));
	http_port = th_free_port();
	pg_port = th_free_port();
	ldap_port = th_free_port();
	ldaps_port = th_free_port();
	idp_port = th_free_port();
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", http_port);
	snprintf(idp_base, sizeof(idp_base), "http://127.0.0.1:%d", idp_port);
	R.port = th_free_port();
	rcv_start();
	return 0;
}

/* Whatever failed: the stack's processes are this test's to stop
 * (stack.sh stop succeeds when nothing runs). */
static int
teardown(void **state)
{
	(void)state;
	if (stack("stop") != 0)
		fprintf(stderr, "stack.sh stop failed: see devstack.log\n");
	rcv_stop();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(make_run_separates_the_service),
	    cmocka_unit_test(old_single_role_dir_is_taken_over),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
