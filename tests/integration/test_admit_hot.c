/*
 * Integration: the admission's hot path (issue 9) against the real
 * services -- the one read (session, meeting, codes, lock state) with its
 * throttled last_seen_at write, statements prepared once per pooled
 * connection (and again after the connection is replaced), and the lock
 * lengths the database picks by lock number (roomgate_count_failure).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

/* The shared SAML helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-hot.test/saml/metadata"
#define IDP_ENTITY "https://idp-hot.test/saml"
#define SECRET "jitsi-shared-secret-for-the-hot-path-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define LOCK_S 30

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server a;
	pid_t idp;
	PGconn *pg;
	char host_token[64];
	char cfg_path[512];
	struct sth_browser alice, bob;
} T;

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "hot-idp-md.xml");
	/* idle timeout 1800 s: last_seen_at is written when older than
	 * 60 s (a sixteenth of it, at most a minute). */
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\npool_size = 2\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[session]\nidle_timeout = 1800\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\nmax_failures = 2\nfailure_window = 600\n"
	         "lock_time = %d\nlock_time_max = 3600\n"
	         "[tokens]\nhs256_secret = " SECRET "\nissuer = roomgate-test\n"
	         "audience = jitsi\nsubject = meet.example.com\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md, LOCK_S);
	return ini;
}

static long
join(struct sth_browser *b, const char *link, const char *code,
     struct sth_resp *r)
{
	struct curl_slist *hl = NULL;
	char url[256], body[128];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s/v1/join/%s", T.base, link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(b->h, CURLOPT_URL, url);
	curl_easy_setopt(b->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, sth_write);
	curl_easy_setopt(b->h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(b->h, CURLOPT_HEADERFUNCTION, sth_header);
	curl_easy_setopt(b->h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(b->h, CURLOPT_POSTFIELDSIZE_LARGE,
	                 (curl_off_t)strlen(body));
	curl_easy_setopt(b->h, CURLOPT_COPYPOSTFIELDS, body);
	rc = curl_easy_perform(b->h);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	r->status = -1;
	if (rc == CURLE_OK)
		curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body == NULL) {
		r->body = calloc(1, 1);
		assert_non_null(r->body);
	}
	return r->status;
}

static void
expect_join(struct sth_browser *b, const char *link, const char *code,
            long status)
{
	struct sth_resp r;

	if (join(b, link, code, &r) != status)
		fail_msg("expected %ld, got %ld: %s", status, r.status, r.body);
	sth_resp_free(&r);
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

/* Seconds since alice's newest session was last seen. */
static long
alice_idle_s(void)
{
	char *v = admin_sql("SELECT floor(extract(epoch FROM now() - "
	                    "last_seen_at))::bigint FROM sessions WHERE "
	                    "identity = 'alice' AND revoked_at IS NULL "
	                    "ORDER BY created_at DESC LIMIT 1");
	long s = strtol(v, NULL, 10);

	assert_true(v[0] != '\0');
	free(v);
	return s;
}

static void
alice_seen_ago(int seconds)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	         "UPDATE sessions SET last_seen_at = now() - "
	         "make_interval(secs => %d) WHERE identity = 'alice' AND "
	         "revoked_at IS NULL",
	         seconds);
	admin_exec(sql);
}

/* A session used a moment ago is not written again (no WAL flush per
 * attempt); one last seen over a minute ago is; one idle past the
 * timeout is over, as before. */
static void
last_seen_is_written_only_when_stale(void **state)
{
	char link[80], code[16], id[40];

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "hot last seen", 0, link,
	                code, id);
	alice_seen_ago(20);
	expect_join(&T.alice, link, code, 200);
	assert_in_range(alice_idle_s(), 19, 40);

	alice_seen_ago(300);
	expect_join(&T.alice, link, code, 200);
	assert_in_range(alice_idle_s(), 0, 5);

	alice_seen_ago(1801);
	expect_join(&T.alice, link, code, 401);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	expect_join(&T.alice, link, code, 200);
	/* Every 200 above is one admission with its allow record. */
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 3);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND event_type = "
	                              "'admission' AND outcome = 'allow'",
	                              id),
	                 3);
}

/* The pooled connections die (the server ends their backends): new ones
 * prepare the statements again, and the next attempts are full
 * decisions -- a 200 only with its admission and record. */
static void
statements_are_prepared_again_after_a_reconnect(void **state)
{
	char link[80], code[16], id[40], *before;
	int ok = 0;
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "hot reconnect", 0, link,
	                code, id);
	expect_join(&T.bob, link, code, 200);
	expect_join(&T.bob, link, code, 200);
	before = admin_sql("SELECT count(*) FROM pg_stat_activity WHERE "
	                   "application_name = 'roomgate'");
	assert_string_not_equal(before, "0");
	free(before);
	admin_exec("SELECT count(pg_terminate_backend(pid)) FROM "
	           "pg_stat_activity WHERE application_name = 'roomgate'");
	for (int i = 0; i < 6; i++) {
		long st = join(&T.bob, link, code, &r);

		sth_resp_free(&r);
		assert_true(st == 200 || st == 503);
		ok += st == 200;
	}
	/* A dead connection is found before use (or costs one 503), never
	 * more than the pool's two. */
	assert_in_range(ok, 4, 6);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 2 + ok);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND event_type = "
	                              "'admission' AND outcome = 'allow'",
	                              id),
	                 2 + ok);
}

/* Retry-After of a 429, 0 when none. */
static long
retry_after(const struct sth_resp *r)
{
	json_t *o = json_loads(r->body, 0, NULL);
	long s = (long)json_integer_value(
	    json_object_get(json_object_get(o, "error"), "retry_after"));

	if (s == 0)
		s = (long)json_integer_value(json_object_get(o, "retry_after"));
	json_decref(o);
	return s;
}

/* The first lock lasts lock_time, the second twice that: the lengths
 * by lock number reach the database's counter function. */
static void
second_lock_lasts_twice_as_long(void **state)
{
	char link[80], code[16], id[40], wrong[16];
	struct sth_resp r;
	long s;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "hot locks", 0, link,
	                code, id);
	snprintf(wrong, sizeof(wrong), "%s", code);
	wrong[0] = wrong[0] == '9' ? '0' : (char)(wrong[0] + 1);
	expect_join(&T.bob, link, wrong, 401);
	expect_join(&T.bob, link, wrong, 401);
	assert_int_equal(join(&T.bob, link, code, &r), 429);
	s = retry_after(&r);
	sth_resp_free(&r);
	assert_in_range(s, LOCK_S - 2, LOCK_S + 1);

	/* The lock has passed (kept as lock number 1). */
	admin_exec("UPDATE lockout_counters SET locked_until = now() - "
	           "interval '1 second' WHERE scope = 'identity_meeting' AND "
	           "key LIKE '% bob' AND locked_until > now()");
	expect_join(&T.bob, link, wrong, 401);
	expect_join(&T.bob, link, wrong, 401);
	assert_int_equal(join(&T.bob, link, code, &r), 429);
	s = retry_after(&r);
	sth_resp_free(&r);
	assert_in_range(s, 2 * LOCK_S - 2, 2 * LOCK_S + 1);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	admin_exec("DELETE FROM lockout_counters WHERE key LIKE '% bob'");
}

static int
setup(void **state)
{
	char spmd[512];
	const char *sps[2];

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
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "hot-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "hot-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("hot.ini", node_ini()));
	th_server_start(&T.a, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "hot-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "hot-host", "alice", T.host_token);
	sth_browser_init(&T.alice);
	sth_browser_init(&T.bob);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sth_browser_free(&T.alice);
	sth_browser_free(&T.bob);
	sth_idp_stop(T.idp);
	th_server_stop(&T.a);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(last_seen_is_written_only_when_stale),
	    cmocka_unit_test(statements_are_prepared_again_after_a_reconnect),
	    cmocka_unit_test(second_lock_lasts_twice_as_long),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
