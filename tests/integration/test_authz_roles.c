/*
 * Integration: people's roles from the directory. SSO sessions go through
 * the same role checks as API tokens, with host/admin/compliance asked of
 * slapd on every request: real sign-ins at the test IdP, no caching.
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

#define SP_ENTITY "https://roomgate-roles.test/saml/metadata"
#define IDP_ENTITY "https://idp-roles.test/saml"
#define GROUPS "ou=groups,dc=example,dc=com"
#define ALLOWED "cn=meeting-allowed," GROUPS
#define HOSTS "cn=meeting-hosts," GROUPS
#define ALICE_DN "uid=alice,ou=people,dc=example,dc=com"
#define BOB_DN "uid=bob,ou=people,dc=example,dc=com"

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server s;
	pid_t idp;
	PGconn *pg;
	char cfg_path[512];
	char host_token[64];
	struct sth_browser alice, bob;
} T;

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "roles-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[directory]\nhost_group = " HOSTS "\n"
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

static const char alice_host_out[] = "dn: " HOSTS "\nchangetype: modify\n"
                                     "delete: member\nmember: " ALICE_DN "\n";
static const char alice_host_back[] = "dn: " HOSTS "\nchangetype: modify\n"
                                      "add: member\nmember: " ALICE_DN "\n";
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
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "roles-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "roles-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("roles.ini", node_ini()));
	th_server_start(&T.s, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "roles-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "roles-host", "user01", T.host_token);
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
	/* Whatever a failed test left out comes back (an add of a member
	 * already there fails, harmlessly). */
	(void)ath_ldap_admin_try(alice_host_back);
	sth_browser_free(&T.alice);
	sth_browser_free(&T.bob);
	sth_idp_stop(T.idp);
	th_server_stop(&T.s);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- roles of people -------------------------------------------------- */

/* alice (meeting-hosts) hosts through her session; bob may not; alice
 * taken out of the group loses it on her very next request. */
static void
host_role_from_the_directory_live(void **state)
{
	const char body[] = "{\"title\": \"alice via sso\", "
	                    "\"allowed_groups\": [\"" ALLOWED "\"]}";
	struct sth_resp r;
	json_t *o, *arr;

	(void)state;
	assert_int_equal(
	    ath_req(T.base, &T.alice, "POST", "/v1/meetings", NULL, body, &r),
	    201);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	assert_string_equal(
	    json_string_value(json_object_get(o, "host_identity")), "alice");
	json_decref(o);
	sth_resp_free(&r);
	assert_int_equal(
	    ath_req_status(T.base, &T.bob, "POST", "/v1/meetings", NULL, body),
	    403);

	/* A host via SSO sees only her own meetings. */
	assert_int_equal(
	    ath_req(T.base, &T.alice, "GET", "/v1/meetings", NULL, NULL, &r),
	    200);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	arr = json_is_array(o) ? o : json_object_get(o, "meetings");
	assert_true(json_array_size(arr) >= 1);
	for (size_t i = 0; i < json_array_size(arr); i++)
		assert_string_equal(
		    json_string_value(json_object_get(json_array_get(arr, i),
		                                      "host_identity")),
		    "alice");
	json_decref(o);
	sth_resp_free(&r);

	ath_ldap_admin(alice_host_out);
	assert_int_equal(ath_req_status(T.base, &T.alice, "POST",
	                                "/v1/meetings", NULL, body),
	                 403);
	ath_ldap_admin(alice_host_back);
	assert_int_equal(ath_req_status(T.base, &T.alice, "POST",
	                                "/v1/meetings", NULL, body),
	                 201);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(host_role_from_the_directory_live),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
