/*
 * Integration: the session read behind forward-auth and every cookie
 * request (db_session_get) writes last_seen_at only when it is older than
 * the touch interval (idle timeout / 16, at most 60 s), against the real
 * services -- a fresh session's /v1/authz leaves its row untouched (same
 * last_seen_at, same row version), a stale one's moves it, and revoked,
 * expired or idle sessions are still refused on the stored row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* The shared SAML helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-touch.test/saml/metadata"
#define IDP_ENTITY "https://idp-touch.test/saml"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
/* This file's sessions only: other tests sign alice in too. */
#define MINE "idp_entity_id = '" IDP_ENTITY "' AND identity = 'alice'"

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server a;
	pid_t idp;
	char host_token[64];
	char cfg_path[512];
	char hdr[160];
	struct sth_browser alice;
} T;

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "touch-idp-md.xml");
	/* idle timeout 1800 s: touch interval 60 s. */
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\npool_size = 2\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[session]\nidle_timeout = 1800\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\n"
	         "[tokens]\nhs256_secret = touch-test-shared-secret-0123456789"
	         "\nissuer = roomgate-test\naudience = jitsi\n"
	         "subject = meet.example.com\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md);
	return ini;
}

/* One statement as the superuser in the application's database; the
 * first value of its first row (or "" when none), malloc()ed. */
static char *
admin_sql(const char *sql)
{
	const char *k[] = {"dbname", "dbname", NULL};
	const char *v[] = {th_env("RG_TEST_PG_ADMIN_URL"), "roomgate", NULL};
	PGconn *ad = PQconnectdbParams(k, v, 1);
	PGresult *res;
	char *out;
	int st;

	assert_int_equal(PQstatus(ad), CONNECTION_OK);
	res = PQexec(ad, sql);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s failed: %s", sql, PQerrorMessage(ad));
	out = strdup(st == PGRES_TUPLES_OK && PQntuples(res) > 0
	                 ? PQgetvalue(res, 0, 0)
	                 : "");
	assert_non_null(out);
	PQclear(res);
	PQfinish(ad);
	return out;
}

static void
admin_exec(const char *sql)
{
	free(admin_sql(sql));
}

/* Exactly one session of this file, and its row's version and
 * last_seen_at, as "xmin|last_seen_at" into out. */
static void
row_state(char *out, size_t outlen)
{
	char *n = admin_sql("SELECT count(*) FROM sessions WHERE " MINE);
	char *v = admin_sql("SELECT xmin::text || '|' || "
	                    "last_seen_at::text FROM sessions WHERE " MINE);

	assert_string_equal(n, "1");
	assert_true(v[0] != '\0');
	snprintf(out, outlen, "%s", v);
	free(n);
	free(v);
}

/* Seconds since the session was last seen. */
static long
idle_s(void)
{
	char *v = admin_sql("SELECT floor(extract(epoch FROM now() - "
	                    "last_seen_at))::bigint FROM sessions WHERE " MINE);
	long s = strtol(v, NULL, 10);

	assert_true(v[0] != '\0');
	free(v);
	return s;
}

static void
seen_ago(int seconds)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	         "UPDATE sessions SET last_seen_at = now() - "
	         "make_interval(secs => %d) WHERE " MINE,
	         seconds);
	admin_exec(sql);
}

static long
authz(void)
{
	const char *h[] = {T.hdr, NULL};

	return ath_req_status(T.base, &T.alice, "GET", "/v1/authz", h, NULL);
}

/* Used 20 s ago (under the 60 s interval): forward-auth answers from the
 * row and writes nothing -- the row keeps its version and last_seen_at. */
static void
fresh_session_is_not_written(void **state)
{
	char before[128], after[128];
	int i;

	(void)state;
	seen_ago(20);
	row_state(before, sizeof(before));
	for (i = 0; i < 5; i++)
		assert_int_equal(authz(), 200);
	row_state(after, sizeof(after));
	assert_string_equal(before, after);
	assert_in_range(idle_s(), 19, 40);
}

/* Used 300 s ago: the first forward-auth moves last_seen_at (a new row
 * version); the next ones, now fresh, do not. */
static void
stale_session_is_written(void **state)
{
	char before[128], after[128], again[128];

	(void)state;
	seen_ago(300);
	row_state(before, sizeof(before));
	assert_int_equal(authz(), 200);
	row_state(after, sizeof(after));
	assert_string_not_equal(before, after);
	assert_in_range(idle_s(), 0, 5);
	assert_int_equal(authz(), 200);
	row_state(again, sizeof(again));
	assert_string_equal(after, again);
}

/* The exact checks still hold on the stored row: idle past the timeout,
 * expired and revoked are refused (401) and not brought back. */
static void
ended_sessions_are_refused(void **state)
{
	(void)state;
	seen_ago(1801);
	assert_int_equal(authz(), 401);
	assert_in_range(idle_s(), 1801, 1830);
	seen_ago(1790);
	assert_int_equal(authz(), 200);
	assert_in_range(idle_s(), 0, 5);

	/* Expired a second ago (created earlier: CHECK expires_at >
	 * created_at). */
	admin_exec("UPDATE sessions SET created_at = now() - interval '1 h', "
	           "expires_at = now() - interval '1 s' WHERE " MINE);
	assert_int_equal(authz(), 401);
	admin_exec("UPDATE sessions SET expires_at = now() + interval '1 h' "
	           "WHERE " MINE);
	assert_int_equal(authz(), 200);

	admin_exec("UPDATE sessions SET revoked_at = now(), revoke_reason = "
	           "'logout' WHERE " MINE);
	assert_int_equal(authz(), 401);
	seen_ago(300);
	assert_int_equal(authz(), 401);
	assert_in_range(idle_s(), 299, 330);
}

static int
setup(void **state)
{
	char spmd[512], link[80], code[16], id[40], path[128], body[64];
	const char *sps[2];
	struct sth_resp r;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt"); /* the test IdP reads it */
	T.idp_port = th_free_port();
	T.port = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "touch-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "touch-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("touch.ini", node_ini()));
	th_server_start(&T.a, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "touch-sp-md.xml");
	ath_token(T.cfg_path, "host", "touch-host", "alice", T.host_token);
	sth_browser_init(&T.alice);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");

	ath_new_meeting(T.base, T.host_token, GROUP, "touch", 0, link, code,
	                id);
	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	if (ath_req(T.base, &T.alice, "POST", path, NULL, body, &r) != 200)
		fail_msg("join: %ld %s", r.status, r.body);
	sth_resp_free(&r);
	snprintf(T.hdr, sizeof(T.hdr), "X-Roomgate-Meeting: %s", link);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sth_browser_free(&T.alice);
	sth_idp_stop(T.idp);
	th_server_stop(&T.a);
	curl_global_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fresh_session_is_not_written),
	    cmocka_unit_test(stale_session_is_written),
	    cmocka_unit_test(ended_sessions_are_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
