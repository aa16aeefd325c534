/*
 * Integration: people's roles from the directory (SSO sessions through the
 * same role checks as API tokens), GET /v1/authz (forward-auth) and
 * POST /v1/identities/{id}:revoke, end to end: real sign-ins at the test
 * IdP, live checks against slapd, PostgreSQL for sessions, admissions,
 * the audit trail and the outbox.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-authz.test/saml/metadata"
#define IDP_ENTITY "https://idp-authz.test/saml"
#define GROUPS "ou=groups,dc=example,dc=com"
#define ALLOWED "cn=meeting-allowed," GROUPS
/* The test IdP knows no member of directory-admins: carol (compliance)
 * is the admin here. */
#define ADMINS "cn=compliance," GROUPS
#define BOB_DN "uid=bob,ou=people,dc=example,dc=com"

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server s;
	pid_t idp;
	PGconn *pg;
	char cfg_path[512];
	char admin_token[64], host_token[64];
	struct sth_browser alice, bob, carol, anon;
} T;

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "authz-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[directory]\nadmin_group = " ADMINS "\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\n"
	         "[tokens]\nhs256_secret = authz-test-shared-secret-0123456789"
	         "\nissuer = roomgate-test\naudience = jitsi\n"
	         "subject = meet.example.com\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md);
	return ini;
}

/* The value of response header name in the last transfer of b. */
static int
header_of(struct sth_browser *b, const char *name, char *out, size_t n)
{
	struct curl_header *h = NULL;

	if (curl_easy_header(b->h, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return -1;
	snprintf(out, n, "%s", h->value);
	return 0;
}

static const char bob_out[] = "dn: " ALLOWED "\nchangetype: modify\n"
                              "delete: member\nmember: " BOB_DN "\n";
static const char bob_back[] = "dn: " ALLOWED "\nchangetype: modify\n"
                               "add: member\nmember: " BOB_DN "\n";

static void
admit(struct sth_browser *b, const char *link, const char *code)
{
	struct sth_resp r;
	char path[128], body[64];

	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	if (ath_req(T.base, b, "POST", path, NULL, body, &r) != 200)
		fail_msg("join: %ld %s", r.status, r.body);
	sth_resp_free(&r);
}

/* GET /v1/authz naming the meeting by header hdr (NULL: none). */
static long
authz(struct sth_browser *b, const char *hdr)
{
	const char *h[] = {hdr, NULL};

	return ath_req_status(T.base, b, "GET", "/v1/authz", h, NULL);
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
	T.port = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "authz-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "authz-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("authz.ini", node_ini()));
	th_server_start(&T.s, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "authz-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "authz-host", "user01", T.host_token);
	ath_token(T.cfg_path, "admin", "authz-admin", "ops", T.admin_token);
	sth_browser_init(&T.alice);
	sth_browser_init(&T.bob);
	sth_browser_init(&T.carol);
	sth_browser_init(&T.anon);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	sth_sign_in(&T.carol, T.base, T.idp_base, "carol");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	/* Whatever a failed test left out comes back (an add of a member
	 * already there fails, harmlessly). */
	(void)ath_ldap_admin_try(bob_back);
	sth_browser_free(&T.alice);
	sth_browser_free(&T.bob);
	sth_browser_free(&T.carol);
	sth_browser_free(&T.anon);
	sth_idp_stop(T.idp);
	th_server_stop(&T.s);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- forward-auth ----------------------------------------------------- */

static void
authz_after_admission(void **state)
{
	char link[80], code[16], id[40], other[80], ocode[16], oid[40];
	char hdr[160], uri[200], got[128];
	struct sth_resp r;
	const char *h[] = {uri, NULL};

	(void)state;
	ath_new_meeting(T.base, T.host_token, ALLOWED, "authz one", 0, link,
	                code, id);
	ath_new_meeting(T.base, T.host_token, ALLOWED, "authz other", 0, other,
	                ocode, oid);
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", link);
	/* Not admitted yet. */
	assert_int_equal(authz(&T.bob, hdr), 403);
	admit(&T.bob, link, code);

	assert_int_equal(ath_req(T.base, &T.bob, "GET", "/v1/authz",
	                         (const char *[]){hdr, NULL}, NULL, &r),
	                 200);
	sth_resp_free(&r);
	assert_int_equal(header_of(&T.bob, "X-Roomgate-User", got, sizeof(got)),
	                 0);
	assert_string_equal(got, "bob");
	assert_int_equal(
	    header_of(&T.bob, "X-Roomgate-Meeting", got, sizeof(got)), 0);
	assert_string_equal(got, id);

	/* By meeting id, and from the proxied URI. */
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", id);
	assert_int_equal(authz(&T.bob, hdr), 200);
	snprintf(uri, sizeof(uri), "X-Original-URI: /j/%s?x=1", link);
	assert_int_equal(
	    ath_req_status(T.base, &T.bob, "GET", "/v1/authz", h, NULL), 200);

	/* No cookie: 401; another meeting, no meeting, unknown: 403. */
	assert_int_equal(authz(&T.anon, hdr), 401);
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", other);
	assert_int_equal(authz(&T.bob, hdr), 403);
	assert_int_equal(authz(&T.bob, NULL), 403);
	assert_int_equal(authz(&T.bob, "X-Roomgate-Meeting: nosuchlink"), 403);
	assert_int_equal(authz(&T.bob, "X-Roomgate-Meeting: ../x"), 403);

	/* Out of the group: the very next request is refused. */
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", link);
	ath_ldap_admin(bob_out);
	assert_int_equal(authz(&T.bob, hdr), 403);
	ath_ldap_admin(bob_back);
	assert_int_equal(authz(&T.bob, hdr), 200);

	/* slapd down: fail closed. */
	th_ldap_stop();
	assert_int_equal(authz(&T.bob, hdr), 503);
	th_ldap_start();
	for (int i = 0; i < 50 && authz(&T.bob, hdr) != 200; i++)
		usleep(100000);
	assert_int_equal(authz(&T.bob, hdr), 200);
}

/* An admission belongs to the session it was made in; the meeting a
 * proxy names must be the one in the request's path. */
static void
authz_session_and_path(void **state)
{
	char link[80], code[16], id[40], other[80], ocode[16], oid[40];
	char h1[200], h2[200];
	const char *hs[] = {h1, h2, NULL};
	struct sth_browser bob2;

	(void)state;
	ath_new_meeting(T.base, T.host_token, ALLOWED, "authz session", 0,
	                link, code, id);
	ath_new_meeting(T.base, T.host_token, ALLOWED, "authz session other",
	                0, other, ocode, oid);
	admit(&T.bob, link, code);
	snprintf(h1, sizeof(h1), "X-Roomgate-Meeting: %s", link);
	assert_int_equal(authz(&T.bob, h1), 200);

	/* bob signed in a second time (another device): that session was
	 * not admitted; it takes the code again. The first one still is. */
	sth_browser_init(&bob2);
	sth_sign_in(&bob2, T.base, T.idp_base, "bob");
	assert_int_equal(authz(&bob2, h1), 403);
	admit(&bob2, link, code);
	assert_int_equal(authz(&bob2, h1), 200);
	assert_int_equal(authz(&T.bob, h1), 200);
	sth_browser_free(&bob2);

	/* Traefik/Caddy send the original URI as X-Forwarded-Uri. */
	snprintf(h1, sizeof(h1), "X-Forwarded-Uri: /j/%s/x?y=1", link);
	assert_int_equal(authz(&T.bob, h1), 200);
	/* A proxy that copies client headers cannot be told to check
	 * another meeting than the one in the path: bob is admitted to
	 * `link`, not to `other`, and asks for other's app naming link. */
	snprintf(h1, sizeof(h1), "X-Roomgate-Meeting: %s", link);
	snprintf(h2, sizeof(h2), "X-Forwarded-Uri: /app/%s/", other);
	assert_int_equal(
	    ath_req_status(T.base, &T.bob, "GET", "/v1/authz", hs, NULL), 403);
	snprintf(h2, sizeof(h2), "X-Original-URI: /app/%s/index.html", link);
	assert_int_equal(
	    ath_req_status(T.base, &T.bob, "GET", "/v1/authz", hs, NULL), 200);
	/* Paths that read two ways are refused: dot segments, encoded
	 * slashes and dots, backslashes; the link only in the query. */
	snprintf(h1, sizeof(h1), "X-Original-URI: /j/%s/../../j/%s/", link,
	         other);
	assert_int_equal(authz(&T.bob, h1), 403);
	snprintf(h1, sizeof(h1), "X-Original-URI: /j/%s/..", link);
	assert_int_equal(authz(&T.bob, h1), 403);
	snprintf(h1, sizeof(h1), "X-Original-URI: /j/%s%%2f..%%2fx", link);
	assert_int_equal(authz(&T.bob, h1), 403);
	snprintf(h1, sizeof(h1), "X-Original-URI: /j/%s/%%2E%%2e/", link);
	assert_int_equal(authz(&T.bob, h1), 403);
	snprintf(h1, sizeof(h1), "X-Original-URI: /app/x?r=/j/%s", link);
	assert_int_equal(authz(&T.bob, h1), 403);
	/* Still fine: a dot inside a segment. */
	snprintf(h1, sizeof(h1), "X-Original-URI: /j/%s/app.js", link);
	assert_int_equal(authz(&T.bob, h1), 200);
}

/* ---- revoke everywhere ------------------------------------------------ */

static void
revoke_everywhere(void **state)
{
	char link[80], code[16], id[40], hdr[160], auth[128];
	const char *ah[] = {auth, NULL};
	struct sth_resp r;
	long n, before;
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, ALLOWED, "authz revoke", 0, link,
	                code, id);
	admit(&T.bob, link, code);
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", link);
	assert_int_equal(authz(&T.bob, hdr), 200);
	assert_int_equal(
	    ath_req_status(T.base, &T.bob, "GET", "/v1/me", NULL, NULL), 200);

	/* Not an admin: a host token, a host via SSO, nobody at all. */
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", T.host_token);
	assert_int_equal(ath_req_status(T.base, &T.anon, "POST",
	                                "/v1/identities/bob:revoke", ah, NULL),
	                 403);
	assert_int_equal(ath_req_status(T.base, &T.alice, "POST",
	                                "/v1/identities/bob:revoke", NULL,
	                                "{}"),
	                 403);
	assert_int_equal(ath_req_status(T.base, &T.anon, "POST",
	                                "/v1/identities/bob:revoke", NULL,
	                                NULL),
	                 401);
	assert_int_equal(authz(&T.bob, hdr), 200);

	/* The admin token: bob's session and admissions end at once. */
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", T.admin_token);
	assert_int_equal(ath_req_status(T.base, &T.anon, "POST",
	                                "/v1/identities/bob:nuke", ah, NULL),
	                 404);
	/* Other suites share the database (and revoke bob too). */
	before = ath_pg_count(T.pg,
	                      "SELECT count(*) FROM admissions WHERE "
	                      "identity = $1 AND state = 'revoked' AND "
	                      "revoke_reason = 'admin'",
	                      "bob");
	if (ath_req(T.base, &T.anon, "POST", "/v1/identities/bob:revoke", ah,
	            "{\"note\": \"left\"}", &r) != 200)
		fail_msg("revoke: %ld %s", r.status, r.body);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	/* Other suites share the database: bob may have more sessions. */
	assert_true(json_integer_value(json_object_get(o, "sessions")) >= 1);
	n = json_integer_value(json_object_get(o, "admissions"));
	assert_true(n >= 1);
	json_decref(o);
	sth_resp_free(&r);
	assert_int_equal(
	    ath_req_status(T.base, &T.bob, "GET", "/v1/me", NULL, NULL), 401);
	assert_int_equal(authz(&T.bob, hdr), 401);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "identity = $1 AND state = 'revoked' AND "
	                              "revoke_reason = 'admin'",
	                              "bob"),
	                 before + n);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM sessions WHERE "
	                              "identity = $1 AND revoked_at IS NULL",
	                              "bob"),
	                 0);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "identity = $1 AND state IN ('admitted', "
	                              "'waiting')",
	                              "bob"),
	                 0);
	assert_int_equal(
	    ath_pg_count(T.pg,
	                 "SELECT count(*) FROM audit_log WHERE "
	                 "event_type = 'identity.revoke' AND "
	                 "reason = 'admin_revoked' AND identity = $1 "
	                 "AND details->>'by' = 'ops' AND "
	                 "details->>'note' = 'left'",
	                 "bob"),
	    1);
	assert_int_equal(
	    ath_pg_count(T.pg,
	                 "SELECT count(*) FROM outbox WHERE topic = "
	                 "'identity.revoked' AND payload->>'identity' "
	                 "= $1 AND payload->>'by' = 'ops'",
	                 "bob"),
	    1);

	/* Signed in again, bob is not admitted any more. */
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	assert_int_equal(authz(&T.bob, hdr), 403);

	/* An admin via SSO (carol: admin_group is compliance here, the test
	 * IdP knowing no member of directory-admins); the identity in the
	 * path is percent-decoded. */
	/* A change by cookie must be JSON (no cross-site form posts). */
	assert_int_equal(
	    ath_req(T.base, &T.carol, "POST",
	            "/v1/identities/someone%40example.com:revoke",
	            (const char *[]){"Content-Type: text/plain", NULL}, NULL,
	            &r),
	    403);
	assert_non_null(strstr(r.body, "csrf"));
	sth_resp_free(&r);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "identity = $1",
	                              "someone@example.com"),
	                 0);
	assert_int_equal(ath_req(T.base, &T.carol, "POST",
	                         "/v1/identities/someone%40example.com:revoke",
	                         NULL, "{}", &r),
	                 200);
	assert_non_null(strstr(r.body, "\"someone@example.com\""));
	sth_resp_free(&r);
	assert_int_equal(
	    ath_pg_count(T.pg,
	                 "SELECT count(*) FROM audit_log WHERE "
	                 "event_type = 'identity.revoke' AND "
	                 "identity = $1 AND details->>'by' = 'carol'",
	                 "someone@example.com"),
	    1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(authz_after_admission),
	    cmocka_unit_test(authz_session_and_path),
	    cmocka_unit_test(revoke_everywhere),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
