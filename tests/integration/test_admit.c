/*
 * Integration: POST /v1/join/{link}, the admission decision, end to end --
 * real sign-ins at the test IdP (scripted browsers with cookie jars), the
 * live directory check against slapd, PostgreSQL for codes, lockout and
 * the audit trail. Two roomgate nodes share the database (and the public
 * URL, as behind one load balancer). Every attempt must leave exactly one
 * audit record with both facts (code_ok, member_ok).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "server/admit.h"
/* The shared SAML helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-admit.test/saml/metadata"
#define IDP_ENTITY "https://idp-admit.test/saml"
#define SECRET "jitsi-shared-secret-for-the-admit-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define BOB_DN "uid=bob,ou=people,dc=example,dc=com"

static struct {
	int idp_port, a_port, b_port;
	char base[64], base_b[64], idp_base[64];
	struct th_server a, b;
	pid_t idp;
	PGconn *pg;
	char host_token[64];
	char cfg_path[512];
	struct sth_browser alice, bob, dave, mallory, anon;
} T;

/* Node B believes X-Forwarded-For from 127.0.0.1; node A does not. */
static const char *
node_ini(int trust_loopback)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "admit-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\nprobe_identities = 3\n%s"
	         "[tokens]\nhs256_secret = " SECRET "\nissuer = roomgate-test\n"
	         "audience = jitsi\nsubject = meet.example.com\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md,
	         trust_loopback ? "trusted_proxies = 127.0.0.1\n" : "");
	return ini;
}

/* A code of the same length that is not the meeting's. */
static void
wrong_of(const char *code, char out[16])
{
	snprintf(out, 16, "%s", code);
	out[0] = out[0] == '9' ? '0' : (char)(out[0] + 1);
}

/* POST {"code": code} (raw body when code starts with '{') to base's
 * /v1/join/link with browser b's cookies. */
static long
join_h(struct sth_browser *b, const char *base, const char *link,
       const char *code, const char *header, struct sth_resp *r)
{
	struct curl_slist *hl = NULL;
	char url[256], body[256];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s/v1/join/%s", base, link);
	if (code[0] == '{')
		snprintf(body, sizeof(body), "%s", code);
	else
		snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	/* header may replace the JSON Content-Type. */
	if (header == NULL || strncasecmp(header, "Content-Type:", 13) != 0)
		hl = curl_slist_append(hl, "Content-Type: application/json");
	if (header != NULL)
		hl = curl_slist_append(hl, header);
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

static long
join(struct sth_browser *b, const char *base, const char *link,
     const char *code, struct sth_resp *r)
{
	return join_h(b, base, link, code, NULL, r);
}

static void
expect_join(struct sth_browser *b, const char *base, const char *link,
            const char *code, long status, const char *error_code)
{
	struct sth_resp r;
	json_t *o;

	if (join(b, base, link, code, &r) != status)
		fail_msg("expected %ld, got %ld: %s", status, r.status, r.body);
	if (error_code != NULL) {
		o = json_loads(r.body, 0, NULL);
		assert_non_null(o);
		assert_string_equal(json_string_value(json_object_get(
		                        json_object_get(o, "error"), "code")),
		                    error_code);
		json_decref(o);
	}
	sth_resp_free(&r);
}

/* The audit record of the request with this id: "reason code_ok
 * member_ok" (t/f/-), and there is exactly one. */
static void
expect_audit(const char *request_id, const char *want)
{
	char *got;

	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "request_id = $1",
	                              request_id),
	                 1);
	got = sth_pg_value(T.pg,
	                   "SELECT event_type || ' ' || outcome || ' ' || "
	                   "reason || ' ' || coalesce(code_ok::text, '-') || "
	                   "' ' || coalesce(member_ok::text, '-') FROM "
	                   "audit_log WHERE request_id = $1",
	                   request_id);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static const char bob_back[] = "dn: " GROUP "\nchangetype: modify\n"
                               "add: member\nmember: " BOB_DN "\n";

static void
admin_sql(const char *sql)
{
	/* The superuser, in the application's database. */
	const char *k[] = {"dbname", "dbname", NULL};
	const char *v[] = {th_env("RG_TEST_PG_ADMIN_URL"), "roomgate", NULL};
	PGconn *ad = PQconnectdbParams(k, v, 1);
	PGresult *res;
	int ok;

	assert_int_equal(PQstatus(ad), CONNECTION_OK);
	res = PQexec(ad, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	PQfinish(ad);
	if (!ok)
		fail_msg("%s failed", sql);
}

/* ---- fixture ---------------------------------------------------------- */

static int
setup(void **state)
{
	char spmd[512];
	const char *sps[2];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	T.idp_port = th_free_port();
	T.a_port = th_free_port();
	T.b_port = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.a_port);
	snprintf(T.base_b, sizeof(T.base_b), "http://127.0.0.1:%d", T.b_port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "admit-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "admit-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("admit-a.ini", node_ini(0)));
	th_server_start(&T.a, T.cfg_path, T.a_port);
	th_server_start(&T.b, th_config("admit-b.ini", node_ini(1)), T.b_port);
	sth_save_sp_metadata(T.base, "admit-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "admit-host", "alice", T.host_token);
	sth_browser_init(&T.alice);
	sth_browser_init(&T.bob);
	sth_browser_init(&T.dave);
	sth_browser_init(&T.mallory);
	sth_browser_init(&T.anon);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	sth_sign_in(&T.dave, T.base, T.idp_base, "dave");
	sth_sign_in(&T.mallory, T.base, T.idp_base, "mallory");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	/* Whatever a failed test left behind: the demo data and grants
	 * (bob is normally back already: that add then fails, harmlessly). */
	(void)ath_ldap_admin_try(bob_back);
	admin_sql("GRANT INSERT ON audit_log TO roomgate");
	sth_browser_free(&T.alice);
	sth_browser_free(&T.bob);
	sth_browser_free(&T.dave);
	sth_browser_free(&T.mallory);
	sth_browser_free(&T.anon);
	sth_idp_stop(T.idp);
	th_server_stop(&T.a);
	th_server_stop(&T.b);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

static void
member_with_right_code_gets_a_token(void **state)
{
	char link[80], code[16], id[40], err[160], *room;
	struct sth_resp r;
	json_t *o, *claims, *user;
	const char *tok, *url, *adm;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit ok", 0, link, code,
	                id);
	assert_int_equal(join(&T.alice, T.base, link, code, &r), 200);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	tok = json_string_value(json_object_get(o, "token"));
	url = json_string_value(json_object_get(o, "redirect_url"));
	adm = json_string_value(json_object_get(o, "admission_id"));
	assert_non_null(tok);
	assert_non_null(url);
	assert_non_null(adm);
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	                    "admitted");
	assert_int_equal(gate_jwt_verify_hs256(
	                     tok, (const unsigned char *)SECRET, strlen(SECRET),
	                     time(NULL), &claims, err, sizeof(err)),
	                 0);
	assert_string_equal(json_string_value(json_object_get(claims, "jti")),
	                    adm);
	assert_string_equal(json_string_value(json_object_get(claims, "iss")),
	                    "roomgate-test");
	assert_string_equal(json_string_value(json_object_get(claims, "aud")),
	                    "jitsi");
	assert_string_equal(json_string_value(json_object_get(claims, "sub")),
	                    "meet.example.com");
	room = sth_pg_value(T.pg,
	                    "SELECT platform_room FROM meetings WHERE "
	                    "id = $1",
	                    id);
	assert_non_null(room);
	assert_string_equal(json_string_value(json_object_get(claims, "room")),
	                    room);
	free(room);
	assert_int_equal(json_integer_value(json_object_get(claims, "exp")) -
	                     json_integer_value(json_object_get(claims, "nbf")),
	                 120);
	user = json_object_get(json_object_get(claims, "context"), "user");
	assert_string_equal(json_string_value(json_object_get(user, "id")),
	                    "alice");
	assert_string_equal(json_string_value(json_object_get(user, "email")),
	                    "alice@example.com");
	assert_true(strncmp(url, "https://meet.example.com/", 25) == 0);
	assert_non_null(strstr(url, tok));
	/* Another secret does not verify it. */
	json_decref(claims);
	assert_int_not_equal(
	    gate_jwt_verify_hs256(tok, (const unsigned char *)"x", 1,
	                          time(NULL), &claims, err, sizeof(err)),
	    0);
	expect_audit(r.request_id, "admission allow admitted true true");
	assert_int_equal(
	    ath_pg_count(T.pg,
	                 "SELECT count(*) FROM admissions WHERE "
	                 "id = $1::uuid AND state = 'admitted' AND "
	                 "identity = 'alice' AND matched_group = '" GROUP "'",
	                 adm),
	    1);
	json_decref(o);
	sth_resp_free(&r);
}

static void
member_with_wrong_code_is_401(void **state)
{
	char link[80], code[16], id[40], bad[16];
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit wrong", 0, link,
	                code, id);
	wrong_of(code, bad);
	assert_int_equal(join(&T.alice, T.base, link, bad, &r), 401);
	assert_non_null(strstr(r.body, "invalid code"));
	expect_audit(r.request_id, "admission deny invalid_code false true");
	sth_resp_free(&r);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
}

/* dave is not in the group: the same 403 whatever the code, so the code
 * is not confirmed to him. */
static void
non_member_never_learns_the_code(void **state)
{
	char link[80], code[16], id[40], bad[16], *b1, *b2, *p;
	struct sth_resp r1, r2;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit dave", 0, link,
	                code, id);
	wrong_of(code, bad);
	assert_int_equal(join(&T.dave, T.base, link, code, &r1), 403);
	assert_int_equal(join(&T.dave, T.base, link, bad, &r2), 403);
	expect_audit(r1.request_id, "admission deny not_member true false");
	expect_audit(r2.request_id, "admission deny not_member false false");
	/* Identical bodies apart from the request id. */
	b1 = strdup(r1.body);
	b2 = strdup(r2.body);
	p = strstr(b1, r1.request_id);
	assert_non_null(p);
	memset(p, 'x', strlen(r1.request_id));
	p = strstr(b2, r2.request_id);
	assert_non_null(p);
	memset(p, 'x', strlen(r2.request_id));
	assert_string_equal(b1, b2);
	assert_non_null(
	    strstr(b1, "you are not on this meeting's access list"));
	free(b1);
	free(b2);
	sth_resp_free(&r1);
	sth_resp_free(&r2);
}

static void
locked_account_is_403(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit mallory", 0, link,
	                code, id);
	assert_int_equal(join(&T.mallory, T.base, link, code, &r), 403);
	expect_audit(r.request_id, "admission deny not_member true false");
	sth_resp_free(&r);
}

static void
malformed_code_is_400_and_counts(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit malformed", 0, link,
	                code, id);
	assert_int_equal(join(&T.alice, T.base, link, "1234567", &r), 400);
	assert_non_null(strstr(r.body, "leading zero"));
	expect_audit(r.request_id, "admission deny malformed false true");
	sth_resp_free(&r);
	expect_join(&T.alice, T.base, link, "{\"code\": 12345678}", 400,
	            "malformed_code");
	expect_join(&T.alice, T.base, link, "not json", 400, "malformed_code");
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT failures FROM lockout_counters "
	                              "WHERE scope = 'identity_meeting' AND "
	                              "key = $1 || ' alice'",
	                              id),
	                 3);
}

/* Five failures lock; then even the right code is 429, with Retry-After.
 * The failures are spread over both nodes. */
static void
five_failures_lock_across_nodes(void **state)
{
	char link[80], code[16], id[40], bad[16];
	struct sth_resp r;
	const char *bases[2] = {T.base, T.base_b};

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit lock", 0, link,
	                code, id);
	wrong_of(code, bad);
	for (int i = 0; i < 5; i++)
		expect_join(&T.bob, bases[i % 2], link, bad, 401,
		            "invalid_code");
	assert_int_equal(join(&T.bob, T.base_b, link, code, &r), 429);
	assert_non_null(strstr(r.body, "\"retry_after\""));
	expect_audit(r.request_id, "admission deny locked true true");
	sth_resp_free(&r);
	expect_join(&T.bob, T.base, link, code, 429, "locked");
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND event_type = "
	                              "'admission'",
	                              id),
	                 7);
	/* The lock is bob's for this meeting, not alice's. */
	expect_join(&T.alice, T.base_b, link, code, 200, NULL);
}

static void
unknown_link_is_404_and_counts(void **state)
{
	struct sth_resp r;

	(void)state;
	assert_int_equal(
	    join(&T.alice, T.base, "NoSuchLinkNoSuchLink", "1", &r), 404);
	expect_audit(r.request_id, "admission deny unknown_link - -");
	sth_resp_free(&r);
	assert_true(ath_pg_count(T.pg,
	                         "SELECT failures FROM lockout_counters WHERE "
	                         "scope = 'identity_meeting' AND key = $1",
	                         "unknown-link alice") >= 1);
}

static void
no_session_is_401_with_login_url(void **state)
{
	char link[80], code[16], id[40], want[160];
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit anon", 0, link,
	                code, id);
	assert_int_equal(join(&T.anon, T.base, link, code, &r), 401);
	snprintf(want, sizeof(want), "/saml/login?return=/j/%s", link);
	assert_non_null(strstr(r.body, want));
	sth_resp_free(&r);
}

static void
waiting_room_is_202(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit waiting", 1, link,
	                code, id);
	assert_int_equal(join(&T.alice, T.base, link, code, &r), 202);
	assert_null(strstr(r.body, "token"));
	expect_audit(r.request_id, "admission allow waiting true true");
	sth_resp_free(&r);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid AND state = "
	                              "'waiting'",
	                              id),
	                 1);
}

/* Removed from the group: the very next attempt is refused. */
static void
removal_from_group_counts_at_once(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit removal", 0, link,
	                code, id);
	expect_join(&T.bob, T.base, link, code, 200, NULL);
	ath_ldap_admin("dn: " GROUP "\nchangetype: modify\n"
	               "delete: member\nmember: " BOB_DN "\n");
	assert_int_equal(join(&T.bob, T.base_b, link, code, &r), 403);
	expect_audit(r.request_id, "admission deny not_member true false");
	sth_resp_free(&r);
	ath_ldap_admin(bob_back);
	expect_join(&T.bob, T.base, link, code, 200, NULL);
}

/* The audit record cannot be written: 503 and nobody admitted. */
static void
audit_failure_fails_closed(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit audit", 0, link,
	                code, id);
	admin_sql("REVOKE INSERT ON audit_log FROM roomgate");
	assert_int_equal(join(&T.alice, T.base, link, code, &r), 503);
	assert_null(strstr(r.body, "token"));
	sth_resp_free(&r);
	admin_sql("GRANT INSERT ON audit_log TO roomgate");
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND event_type = "
	                              "'admission'",
	                              id),
	                 0);
	expect_join(&T.alice, T.base, link, code, 200, NULL);
}

/* slapd down: 503, recorded as a denial, nobody admitted. */
static void
directory_down_fails_closed(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit ldap down", 0, link,
	                code, id);
	th_ldap_stop();
	assert_int_equal(join(&T.alice, T.base, link, code, &r), 503);
	assert_non_null(strstr(r.body, "directory_unavailable"));
	expect_audit(r.request_id,
	             "admission deny directory_unavailable true -");
	sth_resp_free(&r);
	th_ldap_start();
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	for (int i = 0; i < 50; i++) {
		if (join(&T.alice, T.base, link, code, &r) == 200)
			break;
		sth_resp_free(&r);
		usleep(100000);
	}
	assert_int_equal(r.status, 200);
	sth_resp_free(&r);
}

static void
pg_ok(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(pg));
	PQclear(res);
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Backends of the application waiting on a lock (row or advisory). */
static long
lock_waiters(void)
{
	return ath_pg_count(T.pg,
	                    "SELECT count(*) FROM pg_stat_activity WHERE "
	                    "wait_event_type = 'Lock' AND pid <> "
	                    "pg_backend_pid() AND $1::text IS NOT NULL",
	                    "x");
}

/*
 * n attempts of browser b at the same time, alternating between the nodes
 * (curl multi; each handle gets b's cookies); codes[i] is attempt i's
 * code, st[i] gets its status. hold: NULL, or the test's open transaction
 * holding a row lock the recording waits on; it is committed once the
 * attempts sent are all waiting on a lock or done (or after 5 s). With
 * one_by_one each attempt is sent only when the previous one waits or is
 * done, so their order is known; else all at once, and the hold ends
 * when two of them wait (and half a second more for the rest to queue).
 */
static void
burst(struct sth_browser *b, const char *link, const char *const *codes,
      int n, PGconn *hold, int one_by_one, long *st)
{
	CURLM *m = curl_multi_init();
	CURL *h[16];
	struct curl_slist *cookies = NULL, *hl = NULL, *c;
	struct sth_resp r[16];
	char url[256], body[64];
	int running = 1, added, held = hold != NULL;
	double t0 = mono_s(), reached = 0;

	assert_true(n <= 16);
	curl_easy_getinfo(b->h, CURLINFO_COOKIELIST, &cookies);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	for (int i = 0; i < n; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		h[i] = curl_easy_init();
		assert_non_null(h[i]);
		snprintf(url, sizeof(url), "%s/v1/join/%s",
		         i % 2 ? T.base_b : T.base, link);
		snprintf(body, sizeof(body), "{\"code\": \"%s\"}", codes[i]);
		curl_easy_setopt(h[i], CURLOPT_URL, url);
		curl_easy_setopt(h[i], CURLOPT_COOKIEFILE, "");
		for (c = cookies; c != NULL; c = c->next)
			curl_easy_setopt(h[i], CURLOPT_COOKIELIST, c->data);
		curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h[i], CURLOPT_COPYPOSTFIELDS, body);
		curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, sth_write);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &r[i]);
		curl_easy_setopt(h[i], CURLOPT_TIMEOUT, 30L);
	}
	added = hold != NULL && one_by_one ? 1 : n;
	for (int i = 0; i < added; i++)
		curl_multi_add_handle(m, h[i]);
	while (running || added < n) {
		curl_multi_perform(m, &running);
		if (held) {
			long sent_done = added - running;
			long want = one_by_one ? added : 2;
			int ok = lock_waiters() + sent_done >= want;

			if (ok && !one_by_one && reached == 0)
				reached = mono_s();
			if ((ok && (one_by_one || mono_s() - reached > 0.5)) ||
			    mono_s() - t0 > 5) {
				if (added < n) {
					curl_multi_add_handle(m, h[added++]);
					running = 1;
					t0 = mono_s();
				} else {
					pg_ok(hold, "COMMIT");
					held = 0;
				}
			}
		}
		if (running)
			curl_multi_poll(m, NULL, 0, held ? 50 : 1000, NULL);
	}
	assert_false(held);
	for (int i = 0; i < n; i++) {
		st[i] = 0;
		curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &st[i]);
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
		free(r[i].body);
	}
	curl_slist_free_all(cookies);
	curl_slist_free_all(hl);
	curl_multi_cleanup(m);
}

/* n wrong-code attempts of browser b at the same time, all answered 401. */
static void
concurrent_failures(struct sth_browser *b, const char *link, const char *bad,
                    int n)
{
	const char *codes[16];
	long st[16];

	assert_true(n <= 16);
	for (int i = 0; i < n; i++)
		codes[i] = bad;
	burst(b, link, codes, n, NULL, 0, st);
	for (int i = 0; i < n; i++)
		if (st[i] != 401)
			fail_msg("attempt %d: %ld", i, st[i]);
}

/* Attempts racing on both nodes are all counted (no lost update), and
 * the lock comes at the configured count. */
static void
racing_nodes_count_every_failure(void **state)
{
	char link[80], code[16], id[40], bad[16], key[128];

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit race", 0, link,
	                code, id);
	wrong_of(code, bad);
	snprintf(key, sizeof(key), "%s bob", id);
	concurrent_failures(&T.bob, link, bad, 4);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT failures FROM lockout_counters "
	                              "WHERE scope = 'identity_meeting' AND "
	                              "key = $1",
	                              key),
	                 4);
	expect_join(&T.bob, T.base_b, link, bad, 401, "invalid_code");
	expect_join(&T.bob, T.base, link, code, 429, "locked");
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT lock_count FROM lockout_counters "
	                              "WHERE scope = 'identity_meeting' AND "
	                              "key = $1",
	                              key),
	                 1);
}

/* n wrong codes of b one after the other, alternating nodes, each 401. */
static void
seed_failures(struct sth_browser *b, const char *link, const char *bad, int n)
{
	for (int i = 0; i < n; i++)
		expect_join(b, i % 2 ? T.base_b : T.base, link, bad, 401,
		            "invalid_code");
}

/* A new connection in a transaction holding the identity+meeting counter
 * row of key, so attempts that count a failure wait at the counter. */
static PGconn *
hold_counter(const char *key)
{
	PGconn *pg = sth_pg();
	PGresult *res;

	assert_non_null(pg);
	pg_ok(pg, "BEGIN");
	res = PQexecParams(pg,
	                   "SELECT failures FROM lockout_counters WHERE "
	                   "scope = 'identity_meeting' AND key = $1 "
	                   "FOR UPDATE",
	                   1, NULL, &key, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(res), 1);
	PQclear(res);
	return pg;
}

static long
meeting_audits(const char *id, const char *reason)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM audit_log WHERE meeting_id = $1::uuid "
	         "AND event_type = 'admission'%s",
	         reason ? " AND reason = 'locked'" : "");
	return ath_pg_count(T.pg, sql, id);
}

/* A burst of wrong codes over both nodes gets at most max_failures
 * answers "invalid code": the lock is read again where the attempt is
 * recorded, one attempt of an identity+meeting after the other. */
static void
burst_never_gets_more_than_max_failures(void **state)
{
	char link[80], code[16], id[40], bad[16], key[128];
	const char *codes[16];
	long st[16], n401 = 0, n429 = 0;
	PGconn *hold;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit burst", 0, link,
	                code, id);
	wrong_of(code, bad);
	for (int i = 0; i < 16; i++)
		codes[i] = bad;
	burst(&T.bob, link, codes, 16, NULL, 0, st);
	for (int i = 0; i < 16; i++) {
		n401 += st[i] == 401;
		n429 += st[i] == 429;
	}
	if (n401 > 5 || n401 + n429 != 16)
		fail_msg("16 wrong codes at once: %ld x 401, %ld x 429", n401,
		         n429);
	assert_int_equal(meeting_audits(id, NULL), 16);
	assert_int_equal(meeting_audits(id, "locked"), n429);

	/* The same, made certain: four failures, then eight attempts that
	 * all get past the first lock read while the fifth is being
	 * recorded. Exactly one more "invalid code". */
	ath_new_meeting(T.base, T.host_token, GROUP, "admit burst held", 0,
	                link, code, id);
	wrong_of(code, bad);
	snprintf(key, sizeof(key), "%s bob", id);
	seed_failures(&T.bob, link, bad, 4);
	hold = hold_counter(key);
	burst(&T.bob, link, codes, 8, hold, 0, st);
	PQfinish(hold);
	n401 = n429 = 0;
	for (int i = 0; i < 8; i++) {
		n401 += st[i] == 401;
		n429 += st[i] == 429;
	}
	if (n401 != 1 || n429 != 7)
		fail_msg("after 4 failures, 8 wrong codes at once: %ld x 401, "
		         "%ld x 429",
		         n401, n429);
	assert_int_equal(meeting_audits(id, NULL), 12);
	assert_int_equal(meeting_audits(id, "locked"), 7);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT lock_count FROM lockout_counters "
	                              "WHERE scope = 'identity_meeting' AND "
	                              "key = $1",
	                              key),
	                 1);
}

/* The right code arriving while the fifth failure is being recorded
 * waits for it and is then refused as locked: no admission, and the
 * answer does not say the code was right (the record does). */
static void
right_code_behind_the_locking_failure_is_429(void **state)
{
	char link[80], code[16], id[40], bad[16], key[128];
	const char *codes[2];
	long st[2];
	PGconn *hold;
	char *got;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit burst right", 0,
	                link, code, id);
	wrong_of(code, bad);
	snprintf(key, sizeof(key), "%s bob", id);
	seed_failures(&T.bob, link, bad, 4);
	hold = hold_counter(key);
	codes[0] = bad;
	codes[1] = code;
	burst(&T.bob, link, codes, 2, hold, 1, st);
	PQfinish(hold);
	if (st[0] != 401 || st[1] != 429)
		fail_msg("wrong code then right code: %ld, %ld", st[0], st[1]);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	got = sth_pg_value(T.pg,
	                   "SELECT outcome || ' ' || coalesce(code_ok::text, "
	                   "'-') || ' ' || coalesce(member_ok::text, '-') "
	                   "FROM audit_log WHERE meeting_id = $1::uuid AND "
	                   "reason = 'locked'",
	                   id);
	assert_non_null(got);
	assert_string_equal(got, "deny true true");
	free(got);
	assert_int_equal(meeting_audits(id, NULL), 6);
}

/* The session cookie rides along on a cross-site form post, which can be
 * text/plain but not JSON: such a post is refused before the decision --
 * no attempt recorded, nothing counted, nobody admitted. */
static void
cookie_post_must_be_json(void **state)
{
	static const char *const types[] = {
	    "Content-Type: text/plain", "Content-Type: text/plain; charset=utf-8",
	    "Content-Type: application/x-www-form-urlencoded",
	    "Content-Type: application/jsonp", "Content-Type:"};
	char link[80], code[16], id[40];
	struct sth_resp r;
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit csrf", 0, link,
	                code, id);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (join_h(&T.bob, i % 2 ? T.base_b : T.base, link, code,
		           types[i], &r) != 403)
			fail_msg("%s: %ld %s", types[i], r.status, r.body);
		o = json_loads(r.body, 0, NULL);
		assert_non_null(o);
		assert_string_equal(json_string_value(json_object_get(
		                        json_object_get(o, "error"), "code")),
		                    "csrf");
		json_decref(o);
		assert_int_equal(ath_pg_count(T.pg,
		                              "SELECT count(*) FROM audit_log "
		                              "WHERE request_id = $1",
		                              r.request_id),
		                 0);
		sth_resp_free(&r);
	}
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	/* JSON with a charset parameter is JSON. */
	expect_join(&T.bob, T.base, link, code, 200, NULL);
	assert_int_equal(join_h(&T.bob, T.base_b, link, code,
	                        "Content-Type: application/json; charset=utf-8",
	                        &r),
	                 200);
	sth_resp_free(&r);
}

/* The IdP's attributes are unbounded, a join token is not: an over-long
 * displayName is cut at a character boundary and an over-long mail left
 * out, so the token is made; it is made before the attempt commits, so the
 * record and the answer agree (one allow, one admission, a 200). */
static void
long_attributes_still_make_a_token(void **state)
{
	char link[80], code[16], id[40], want[200] = "";
	const char *tok;
	char *saved;
	struct sth_resp r;
	json_t *o, *claims, *user;
	char err[256];
	PGresult *res;
	const char *pv[1];

	(void)state;
	saved = sth_pg_value(T.pg,
	                     "SELECT attributes::text FROM sessions WHERE "
	                     "identity = $1 AND revoked_at IS NULL "
	                     "ORDER BY created_at DESC LIMIT 1",
	                     "bob");
	assert_non_null(saved);
	res = PQexec(T.pg,
	             "UPDATE sessions SET attributes = jsonb_build_object("
	             "'displayName', jsonb_build_array(repeat(U&'\\20AC', "
	             "3000)), 'mail', jsonb_build_array(repeat('m', 300) || "
	             "'@example.com')) WHERE identity = 'bob' AND "
	             "revoked_at IS NULL");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	ath_new_meeting(T.base, T.host_token, GROUP, "admit long attrs", 0,
	                link, code, id);
	if (join(&T.bob, T.base, link, code, &r) != 200)
		fail_msg("long attributes: %ld %s", r.status, r.body);
	expect_audit(r.request_id, "admission allow admitted true true");
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	tok = json_string_value(json_object_get(o, "token"));
	assert_non_null(tok);
	assert_int_equal(gate_jwt_verify_hs256(tok, (const unsigned char *)SECRET,
	                                       strlen(SECRET), time(NULL),
	                                       &claims, err, sizeof(err)),
	                 0);
	user = json_object_get(json_object_get(claims, "context"), "user");
	/* 128 bytes hold 42 three-byte characters, not 42 and two thirds. */
	for (int i = 0; i < 42; i++)
		memcpy(want + 3 * i, "\xe2\x82\xac", 3);
	want[3 * 42] = '\0';
	assert_string_equal(json_string_value(json_object_get(user, "name")),
	                    want);
	assert_null(json_object_get(user, "email"));
	assert_string_equal(json_string_value(json_object_get(claims, "jti")),
	                    json_string_value(json_object_get(o, "admission_id")));
	json_decref(claims);
	json_decref(o);
	sth_resp_free(&r);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid AND state = "
	                              "'admitted'",
	                              id),
	                 1);
	pv[0] = saved;
	res = PQexecParams(T.pg,
	                   "UPDATE sessions SET attributes = $1::jsonb WHERE "
	                   "identity = 'bob' AND revoked_at IS NULL",
	                   1, NULL, pv, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	free(saved);
}

/* Failures from three identities flag the meeting: waiting room on,
 * the host told through the outbox, once. */
static void
probing_switches_the_waiting_room_on(void **state)
{
	char link[80], code[16], id[40], bad[16];

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit probing", 0, link,
	                code, id);
	wrong_of(code, bad);
	expect_join(&T.alice, T.base, link, bad, 401, "invalid_code");
	expect_join(&T.dave, T.base_b, link, bad, 403, "not_on_access_list");
	assert_int_equal(
	    ath_pg_count(T.pg,
	                 "SELECT count(*) FROM meetings WHERE id = "
	                 "$1::uuid AND probed_at IS NULL AND NOT "
	                 "waiting_room",
	                 id),
	    1);
	expect_join(&T.mallory, T.base, link, bad, 403, "not_on_access_list");
	assert_int_equal(
	    ath_pg_count(T.pg,
	                 "SELECT count(*) FROM meetings WHERE id = "
	                 "$1::uuid AND probed_at IS NOT NULL AND "
	                 "waiting_room",
	                 id),
	    1);
	assert_int_equal(
	    ath_pg_count(T.pg,
	                 "SELECT count(*) FROM outbox WHERE topic = "
	                 "'meeting.probed' AND payload->>'meeting_id' "
	                 "= $1 AND payload->>'host' = 'alice'",
	                 id),
	    1);
	/* More failures do not notify again. */
	expect_join(&T.dave, T.base, link, code, 403, "not_on_access_list");
	assert_int_equal(
	    ath_pg_count(T.pg,
	                 "SELECT count(*) FROM outbox WHERE topic = "
	                 "'meeting.probed' AND payload->>'meeting_id' "
	                 "= $1",
	                 id),
	    1);
	/* A member with the right code now waits for the host. */
	expect_join(&T.alice, T.base, link, code, 202, NULL);
}

/* X-Forwarded-For is believed only from a configured trusted proxy. */
static void
forwarded_for_only_from_trusted_proxies(void **state)
{
	char link[80], code[16], id[40], bad[16];
	struct sth_resp r;
	char *addr;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "admit xff", 0, link, code,
	                id);
	wrong_of(code, bad);
	/* Node A trusts nobody: the connection's address counts. */
	assert_int_equal(join_h(&T.alice, T.base, link, bad,
	                        "X-Forwarded-For: 198.51.100.7", &r),
	                 401);
	addr = sth_pg_value(T.pg,
	                    "SELECT host(source_addr) || ' ' || "
	                    "forwarded_for FROM audit_log WHERE "
	                    "request_id = $1",
	                    r.request_id);
	assert_non_null(addr);
	assert_string_equal(addr, "127.0.0.1 198.51.100.7");
	free(addr);
	sth_resp_free(&r);
	/* Node B trusts 127.0.0.1: the client it names counts, and a
	 * spoofed entry left of it does not. */
	assert_int_equal(join_h(&T.alice, T.base_b, link, bad,
	                        "X-Forwarded-For: 6.6.6.6, 198.51.100.7", &r),
	                 401);
	addr = sth_pg_value(T.pg,
	                    "SELECT host(source_addr) FROM audit_log "
	                    "WHERE request_id = $1",
	                    r.request_id);
	assert_non_null(addr);
	assert_string_equal(addr, "198.51.100.7");
	free(addr);
	sth_resp_free(&r);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT failures FROM lockout_counters "
	                              "WHERE scope = 'source' AND key = $1",
	                              "198.51.100.7"),
	                 1);
}

/* A revoke on one node is seen by the other at once: sessions and
 * admissions live in PostgreSQL, no node keeps a copy. */
static void
revoke_on_one_node_holds_on_the_other(void **state)
{
	char link[80], code[16], id[40], hdr[160], auth[128], admin[64];
	const char *ah[] = {auth, NULL};
	const char *mh[] = {hdr, NULL};
	struct sth_resp r;

	(void)state;
	ath_token(T.cfg_path, "admin", "admit-admin", "ops-admit", admin);
	ath_new_meeting(T.base, T.host_token, GROUP, "admit revoke two nodes",
	                0, link, code, id);
	expect_join(&T.bob, T.base, link, code, 200, NULL);
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", link);
	assert_int_equal(
	    ath_req_status(T.base_b, &T.bob, "GET", "/v1/authz", mh, NULL),
	    200);

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", admin);
	if (ath_req(T.base, &T.anon, "POST", "/v1/identities/bob:revoke", ah,
	            NULL, &r) != 200)
		fail_msg("revoke on node A: %ld %s", r.status, r.body);
	sth_resp_free(&r);

	/* Node B: no session, no access, no join. */
	assert_int_equal(
	    ath_req_status(T.base_b, &T.bob, "GET", "/v1/authz", mh, NULL),
	    401);
	assert_int_equal(
	    ath_req_status(T.base_b, &T.bob, "GET", "/v1/me", NULL, NULL), 401);
	expect_join(&T.bob, T.base_b, link, code, 401, "login_required");
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid AND state = "
	                              "'admitted'",
	                              id),
	                 0);
	/* Signed in again (later tests use bob), still not admitted. */
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	assert_int_equal(
	    ath_req_status(T.base_b, &T.bob, "GET", "/v1/authz", mh, NULL),
	    403);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(member_with_right_code_gets_a_token),
	    cmocka_unit_test(member_with_wrong_code_is_401),
	    cmocka_unit_test(non_member_never_learns_the_code),
	    cmocka_unit_test(locked_account_is_403),
	    cmocka_unit_test(malformed_code_is_400_and_counts),
	    cmocka_unit_test(five_failures_lock_across_nodes),
	    cmocka_unit_test(racing_nodes_count_every_failure),
	    cmocka_unit_test(burst_never_gets_more_than_max_failures),
	    cmocka_unit_test(right_code_behind_the_locking_failure_is_429),
	    cmocka_unit_test(unknown_link_is_404_and_counts),
	    cmocka_unit_test(cookie_post_must_be_json),
	    cmocka_unit_test(long_attributes_still_make_a_token),
	    cmocka_unit_test(no_session_is_401_with_login_url),
	    cmocka_unit_test(waiting_room_is_202),
	    cmocka_unit_test(probing_switches_the_waiting_room_on),
	    cmocka_unit_test(forwarded_for_only_from_trusted_proxies),
	    cmocka_unit_test(removal_from_group_counts_at_once),
	    cmocka_unit_test(audit_failure_fails_closed),
	    cmocka_unit_test(directory_down_fails_closed),
	    cmocka_unit_test(revoke_on_one_node_holds_on_the_other),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
