/*
 * Integration: the edges of forward-auth's one-round-trip read
 * (db/queries_authz_read.c) against the real services -- a meeting named
 * by link, by id and by an upper-case id; an expired admission; an
 * archived meeting; a revoked session; a member of an allowed group that
 * is not the first; an invitee of an invitee-only meeting, and one whose
 * invitation is gone. Each answer is checked with its status and reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>

#include <jansson.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-authz-read.test/saml/metadata"
#define IDP_ENTITY "https://idp-authz-read.test/saml"
#define GROUPS "ou=groups,dc=example,dc=com"
#define ALLOWED "cn=meeting-allowed," GROUPS
#define HOSTS "cn=meeting-hosts," GROUPS

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server s;
	pid_t idp;
	PGconn *pg;
	char cfg_path[512];
	char host_token[64];
	struct sth_browser bob, carol, dave, anon;
} T;

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "authz-read-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\n"
	         "[tokens]\nhs256_secret = authz-read-test-secret-0123456789"
	         "\nissuer = roomgate-test\naudience = jitsi\n"
	         "subject = meet.example.com\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md);
	return ini;
}

/* A meeting from a JSON body (POST /v1/meetings as the host). */
static void
new_meeting(const char *body, char link[80], char code[16], char id[40])
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256], auth[128];
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	json_t *o;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/v1/meetings", T.base);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", T.host_token);
	if (th_http("POST", url, h, body, strlen(body), r) != 201)
		fail_msg("create meeting: %ld %s", r->status, r->body);
	o = json_loads(r->body, 0, NULL);
	assert_non_null(o);
	snprintf(link, 80, "%s",
	         json_string_value(json_object_get(o, "link_id")));
	snprintf(code, 16, "%s",
	         json_string_value(
	             json_object_get(json_object_get(o, "code"), "code")));
	snprintf(id, 40, "%s", json_string_value(json_object_get(o, "id")));
	json_decref(o);
	free(r);
}

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

/* GET /v1/authz for meeting ref; its status, and the body must hold
 * want (NULL: anything). */
static long
authz(struct sth_browser *b, const char *ref, const char *want)
{
	char hdr[160];
	const char *h[] = {hdr, NULL};
	struct sth_resp r;
	long st;

	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", ref);
	st = ath_req(T.base, b, "GET", "/v1/authz", h, NULL, &r);
	if (want != NULL && (r.body == NULL || strstr(r.body, want) == NULL))
		fail_msg("authz %s: %ld %s (wanted \"%s\")", ref, st,
		         r.body ? r.body : "", want);
	sth_resp_free(&r);
	return st;
}

/* Rows changed by one statement with one parameter. */
static long
pg_changed(const char *sql, const char *param)
{
	char q[512];

	snprintf(q, sizeof(q),
	         "WITH u AS (%s RETURNING 1) SELECT count(*) "
	         "FROM u",
	         sql);
	return ath_pg_count(T.pg, q, param);
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
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "authz-read-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "authz-read-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("authz-read.ini", node_ini()));
	th_server_start(&T.s, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "authz-read-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "authz-read-host", "user01",
	          T.host_token);
	sth_browser_init(&T.bob);
	sth_browser_init(&T.carol);
	sth_browser_init(&T.dave);
	sth_browser_init(&T.anon);
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	sth_sign_in(&T.carol, T.base, T.idp_base, "carol");
	sth_sign_in(&T.dave, T.base, T.idp_base, "dave");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sth_browser_free(&T.bob);
	sth_browser_free(&T.carol);
	sth_browser_free(&T.dave);
	sth_browser_free(&T.anon);
	sth_idp_stop(T.idp);
	th_server_stop(&T.s);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

/* One meeting by link, id and upper-case id; an admission that expired;
 * an archived meeting, by link and by id. */
static void
refs_expiry_archive(void **state)
{
	char link[80], code[16], id[40], upper[40], body[256], path[128];
	char auth[128];
	const char *ah[] = {auth, NULL};

	(void)state;
	snprintf(body, sizeof(body),
	         "{\"title\": \"authz read\", \"allowed_groups\": "
	         "[\"" ALLOWED "\"]}");
	new_meeting(body, link, code, id);
	assert_int_equal(authz(&T.bob, link, "not admitted"), 403);
	admit(&T.bob, link, code);
	assert_int_equal(authz(&T.bob, link, "\"bob\""), 200);
	assert_int_equal(authz(&T.bob, id, id), 200);
	for (size_t i = 0; i <= strlen(id); i++)
		upper[i] = (char)toupper((unsigned char)id[i]);
	assert_int_equal(authz(&T.bob, upper, id), 200);
	/* An id no meeting has: unknown. */
	assert_int_equal(authz(&T.bob, "00000000-0000-4000-8000-000000000000",
	                       "unknown meeting"),
	                 403);

	/* The admission's expiry passes: refused; moved on: back. */
	assert_int_equal(pg_changed("UPDATE admissions SET expires_at = "
	                            "now() - interval '1 second' WHERE "
	                            "meeting_id = $1::uuid AND identity = "
	                            "'bob' AND state = 'admitted'",
	                            id),
	                 1);
	assert_int_equal(authz(&T.bob, link, "not admitted"), 403);
	assert_int_equal(authz(&T.bob, id, "not admitted"), 403);
	assert_int_equal(pg_changed("UPDATE admissions SET expires_at = "
	                            "now() + interval '1 hour' WHERE "
	                            "meeting_id = $1::uuid AND identity = "
	                            "'bob' AND state = 'admitted'",
	                            id),
	                 1);
	assert_int_equal(authz(&T.bob, link, NULL), 200);

	/* Archived: unknown, whichever way it is named. */
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", T.host_token);
	snprintf(path, sizeof(path), "/v1/meetings/%s", id);
	assert_int_equal(
	    ath_req_status(T.base, &T.anon, "DELETE", path, ah, NULL), 200);
	assert_int_equal(authz(&T.bob, link, "unknown meeting"), 403);
	assert_int_equal(authz(&T.bob, id, "unknown meeting"), 403);
}

/* A revoked session is no sign-in, whatever it was admitted to. */
static void
revoked_session(void **state)
{
	char link[80], code[16], id[40], body[256];

	(void)state;
	snprintf(body, sizeof(body),
	         "{\"title\": \"authz read revoked\", \"allowed_groups\": "
	         "[\"" ALLOWED "\"]}");
	new_meeting(body, link, code, id);
	admit(&T.carol, link, code);
	assert_int_equal(authz(&T.carol, link, "\"carol\""), 200);
	/* This file's sessions of carol only (other suites share the
	 * database). */
	assert_true(pg_changed("UPDATE sessions SET revoked_at = now(), "
	                       "revoke_reason = 'security' WHERE identity = "
	                       "'carol' AND revoked_at IS NULL AND "
	                       "idp_entity_id = $1",
	                       IDP_ENTITY) >= 1);
	assert_int_equal(authz(&T.carol, link, "unauthenticated"), 401);
	assert_int_equal(authz(&T.carol, id, "unauthenticated"), 401);
	/* A bad reference from a revoked session: still a 401 first. */
	assert_int_equal(authz(&T.carol, "../x", "unauthenticated"), 401);
	sth_sign_in(&T.carol, T.base, T.idp_base, "carol");
	assert_int_equal(authz(&T.carol, link, "not admitted"), 403);
}

/* Membership through the second allowed group; an invitee of an
 * invitee-only meeting, then with the invitation gone. */
static void
groups_and_invitees(void **state)
{
	char link[80], code[16], id[40], body[512];

	(void)state;
	/* bob is in meeting-allowed, not meeting-hosts. */
	snprintf(body, sizeof(body),
	         "{\"title\": \"authz read groups\", \"allowed_groups\": "
	         "[\"" HOSTS "\", \"" ALLOWED "\"]}");
	new_meeting(body, link, code, id);
	admit(&T.bob, link, code);
	assert_int_equal(authz(&T.bob, link, "\"bob\""), 200);
	assert_int_equal(authz(&T.bob, id, "\"bob\""), 200);

	/* dave is in no allowed group: an invitee only. */
	snprintf(body, sizeof(body),
	         "{\"title\": \"authz read invitees\", \"invitees\": "
	         "[\"dave\", \"zed-not-dave\"]}");
	new_meeting(body, link, code, id);
	admit(&T.dave, link, code);
	assert_int_equal(authz(&T.dave, link, "\"dave\""), 200);
	assert_int_equal(authz(&T.dave, id, "\"dave\""), 200);
	/* The invitation is asked on every request. */
	assert_int_equal(pg_changed("DELETE FROM meeting_invitees WHERE "
	                            "meeting_id = $1::uuid AND identity = "
	                            "'dave'",
	                            id),
	                 1);
	assert_int_equal(authz(&T.dave, link, "not_member"), 403);
	assert_int_equal(authz(&T.dave, id, "not_member"), 403);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(refs_expiry_archive),
	    cmocka_unit_test(revoked_session),
	    cmocka_unit_test(groups_and_invitees),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
