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
#include "tests/integration/saml_th.h"
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

static void
make_token(const char *role, const char *name, const char *identity,
           char out[64])
{
	char buf[4096];
	const char *argv[] = {th_env("RG_TEST_BIN"),
	                      "-c",
	                      T.cfg_path,
	                      "token",
	                      "create",
	                      "--role",
	                      role,
	                      "--name",
	                      name,
	                      "--identity",
	                      identity,
	                      NULL};
	const char *p;

	if (th_run_capture(argv, NULL, buf, sizeof(buf)) != 0)
		fail_msg("token create failed: %s", buf);
	p = strstr(buf, "rgt_");
	assert_non_null(p);
	memcpy(out, p, 47);
	out[47] = '\0';
}

/* A request with browser b's cookies and extra headers (NULL-ended). */
static long
req(struct sth_browser *b, const char *method, const char *path,
    const char *const *headers, const char *body, struct sth_resp *r)
{
	struct curl_slist *hl = NULL;
	char url[512];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", T.base, path);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		hl = curl_slist_append(hl, headers[i]);
	if (body != NULL)
		hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(b->h, CURLOPT_URL, url);
	curl_easy_setopt(b->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, sth_write);
	curl_easy_setopt(b->h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(b->h, CURLOPT_HEADERFUNCTION, sth_header);
	curl_easy_setopt(b->h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, hl);
	if (body != NULL) {
		curl_easy_setopt(b->h, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)strlen(body));
		curl_easy_setopt(b->h, CURLOPT_COPYPOSTFIELDS, body);
	} else {
		curl_easy_setopt(b->h, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(b->h, CURLOPT_CUSTOMREQUEST,
	                 strcmp(method, "GET") == 0 ? NULL : method);
	rc = curl_easy_perform(b->h);
	curl_easy_setopt(b->h, CURLOPT_CUSTOMREQUEST, NULL);
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
req_status(struct sth_browser *b, const char *method, const char *path,
           const char *const *headers, const char *body)
{
	struct sth_resp r;
	long st = req(b, method, path, headers, body, &r);

	sth_resp_free(&r);
	return st;
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

static long
pg_count(const char *sql, const char *param)
{
	char *v = sth_pg_value(T.pg, sql, param);
	long n = v ? strtol(v, NULL, 10) : -1;

	free(v);
	return n;
}

static int
ldap_admin_try(const char *ldif)
{
	const char *path = th_write_file("authz-fixture.ldif", ldif);

	return th_sh("ldapmodify -x -H \"$RG_TEST_LDAP_URI\" -D "
	             "\"$RG_TEST_LDAP_ADMIN_DN\" -w "
	             "\"$RG_TEST_LDAP_ADMIN_PASSWORD\" -c -f '%s' "
	             ">>\"$RG_TEST_TMP/authz-fixture.log\" 2>&1",
	             path);
}

static void
ldap_admin(const char *ldif)
{
	if (ldap_admin_try(ldif) != 0)
		fail_msg("ldapmodify failed:\n%s", ldif);
}

static const char bob_out[] = "dn: " ALLOWED "\nchangetype: modify\n"
                              "delete: member\nmember: " BOB_DN "\n";
static const char bob_back[] = "dn: " ALLOWED "\nchangetype: modify\n"
                               "add: member\nmember: " BOB_DN "\n";

/* A meeting allowing ALLOWED, made with the host token: link and id. */
static void
new_meeting(const char *title, char link[80], char code[16], char id[40])
{
	struct sth_resp r;
	char auth[128], body[256];
	const char *h[] = {auth, NULL};
	json_t *o;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", T.host_token);
	snprintf(body, sizeof(body),
	         "{\"title\": \"%s\", \"allowed_groups\": [\"" ALLOWED "\"]}",
	         title);
	if (req(&T.anon, "POST", "/v1/meetings", h, body, &r) != 201)
		fail_msg("create meeting: %ld %s", r.status, r.body);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	snprintf(link, 80, "%s",
	         json_string_value(json_object_get(o, "link_id")));
	snprintf(code, 16, "%s",
	         json_string_value(
	             json_object_get(json_object_get(o, "code"), "code")));
	snprintf(id, 40, "%s", json_string_value(json_object_get(o, "id")));
	json_decref(o);
	sth_resp_free(&r);
}

static void
admit(struct sth_browser *b, const char *link, const char *code)
{
	struct sth_resp r;
	char path[128], body[64];

	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	if (req(b, "POST", path, NULL, body, &r) != 200)
		fail_msg("join: %ld %s", r.status, r.body);
	sth_resp_free(&r);
}

/* GET /v1/authz naming the meeting by header hdr (NULL: none). */
static long
authz(struct sth_browser *b, const char *hdr)
{
	const char *h[] = {hdr, NULL};

	return req_status(b, "GET", "/v1/authz", h, NULL);
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
	make_token("host", "authz-host", "user01", T.host_token);
	make_token("admin", "authz-admin", "ops", T.admin_token);
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
	(void)ldap_admin_try(bob_back);
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
	new_meeting("authz one", link, code, id);
	new_meeting("authz other", other, ocode, oid);
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", link);
	/* Not admitted yet. */
	assert_int_equal(authz(&T.bob, hdr), 403);
	admit(&T.bob, link, code);

	assert_int_equal(req(&T.bob, "GET", "/v1/authz",
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
	assert_int_equal(req_status(&T.bob, "GET", "/v1/authz", h, NULL), 200);

	/* No cookie: 401; another meeting, no meeting, unknown: 403. */
	assert_int_equal(authz(&T.anon, hdr), 401);
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", other);
	assert_int_equal(authz(&T.bob, hdr), 403);
	assert_int_equal(authz(&T.bob, NULL), 403);
	assert_int_equal(authz(&T.bob, "X-Roomgate-Meeting: nosuchlink"), 403);
	assert_int_equal(authz(&T.bob, "X-Roomgate-Meeting: ../x"), 403);

	/* Out of the group: the very next request is refused. */
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", link);
	ldap_admin(bob_out);
	assert_int_equal(authz(&T.bob, hdr), 403);
	ldap_admin(bob_back);
	assert_int_equal(authz(&T.bob, hdr), 200);

	/* slapd down: fail closed. */
	th_ldap_stop();
	assert_int_equal(authz(&T.bob, hdr), 503);
	th_ldap_start();
	for (int i = 0; i < 50 && authz(&T.bob, hdr) != 200; i++)
		usleep(100000);
	assert_int_equal(authz(&T.bob, hdr), 200);
}

/* ---- revoke everywhere ------------------------------------------------ */

static void
revoke_everywhere(void **state)
{
	char link[80], code[16], id[40], hdr[160], auth[128];
	const char *ah[] = {auth, NULL};
	struct sth_resp r;
	long n;
	json_t *o;

	(void)state;
	new_meeting("authz revoke", link, code, id);
	admit(&T.bob, link, code);
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", link);
	assert_int_equal(authz(&T.bob, hdr), 200);
	assert_int_equal(req_status(&T.bob, "GET", "/v1/me", NULL, NULL), 200);

	/* Not an admin: a host token, a host via SSO, nobody at all. */
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", T.host_token);
	assert_int_equal(
	    req_status(&T.anon, "POST", "/v1/identities/bob:revoke", ah, NULL),
	    403);
	assert_int_equal(req_status(&T.alice, "POST",
	                            "/v1/identities/bob:revoke", NULL, "{}"),
	                 403);
	assert_int_equal(req_status(&T.anon, "POST",
	                            "/v1/identities/bob:revoke", NULL, NULL),
	                 401);
	assert_int_equal(authz(&T.bob, hdr), 200);

	/* The admin token: bob's session and admissions end at once. */
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", T.admin_token);
	assert_int_equal(
	    req_status(&T.anon, "POST", "/v1/identities/bob:nuke", ah, NULL),
	    404);
	if (req(&T.anon, "POST", "/v1/identities/bob:revoke", ah,
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
	assert_int_equal(req_status(&T.bob, "GET", "/v1/me", NULL, NULL), 401);
	assert_int_equal(authz(&T.bob, hdr), 401);
	assert_int_equal(pg_count("SELECT count(*) FROM admissions WHERE "
	                          "identity = $1 AND state = 'revoked' AND "
	                          "revoke_reason = 'admin'",
	                          "bob"),
	                 n);
	assert_int_equal(pg_count("SELECT count(*) FROM sessions WHERE "
	                          "identity = $1 AND revoked_at IS NULL",
	                          "bob"),
	                 0);
	assert_int_equal(pg_count("SELECT count(*) FROM admissions WHERE "
	                          "identity = $1 AND state IN ('admitted', "
	                          "'waiting')",
	                          "bob"),
	                 0);
	assert_int_equal(pg_count("SELECT count(*) FROM audit_log WHERE "
	                          "event_type = 'identity.revoke' AND "
	                          "reason = 'admin_revoked' AND identity = $1 "
	                          "AND details->>'by' = 'ops' AND "
	                          "details->>'note' = 'left'",
	                          "bob"),
	                 1);
	assert_int_equal(pg_count("SELECT count(*) FROM outbox WHERE topic = "
	                          "'identity.revoked' AND payload->>'identity' "
	                          "= $1",
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
	    req(&T.carol, "POST", "/v1/identities/someone%40example.com:revoke",
	        (const char *[]){"Content-Type: text/plain", NULL}, NULL, &r),
	    403);
	assert_non_null(strstr(r.body, "csrf"));
	sth_resp_free(&r);
	assert_int_equal(pg_count("SELECT count(*) FROM audit_log WHERE "
	                          "identity = $1",
	                          "someone@example.com"),
	                 0);
	assert_int_equal(req(&T.carol, "POST",
	                     "/v1/identities/someone%40example.com:revoke",
	                     NULL, "{}", &r),
	                 200);
	assert_non_null(strstr(r.body, "\"someone@example.com\""));
	sth_resp_free(&r);
	assert_int_equal(pg_count("SELECT count(*) FROM audit_log WHERE "
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
	    cmocka_unit_test(revoke_everywhere),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
