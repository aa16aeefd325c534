/*
 * Integration: every administrative act and every use of a role is one
 * complete audit record (issue 8, "Record content"). Real sign-ins at the
 * test IdP, live role checks against slapd, PostgreSQL for the records:
 *
 *   - a host's acts (meeting create/update/archive, code read and
 *     rotation) carry identity, IdP, source (trusted-proxy rule),
 *     forwarded chain, user agent, request id, node and a reason;
 *   - reads by the compliance role, requests with API tokens and admin
 *     acts are "role.use" records; a refusal after sign-in, "role.denied";
 *     a host's own read and /healthz write none;
 *   - forward-auth denials are "authz.deny" records, allows write none;
 *   - a record that cannot be written withholds the code and a role's
 *     read (503), and leaves a denial a denial;
 *   - no record of the whole run holds a meeting code, a session cookie
 *     or an API token.
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

#define SP_ENTITY "https://roomgate-records.test/saml/metadata"
#define IDP_ENTITY "https://idp-records.test/saml"
#define GROUPS "ou=groups,dc=example,dc=com"
#define ALLOWED "cn=meeting-allowed," GROUPS
#define HOSTS "cn=meeting-hosts," GROUPS
#define COMPLIANCE "cn=compliance," GROUPS
#define BOB_DN "uid=bob,ou=people,dc=example,dc=com"
#define UA "User-Agent: rg-records-test/1.0"
#define XFF "X-Forwarded-For: 198.51.100.9, 203.0.113.7"
#define SRC "203.0.113.7"

/* Secrets seen during the run; none may appear in any audit row. */
#define MAX_SECRETS 32

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server s;
	pid_t idp;
	PGconn *pg, *admin;
	char cfg_path[512];
	char admin_token[64], host_token[64];
	struct sth_browser alice, bob, carol;
	char meeting[40], link[80], code[16];
	char secrets[MAX_SECRETS][128];
	int nsecrets;
} T;

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "records-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "node_name = records-node\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[directory]\nhost_group = " HOSTS "\n"
	         "compliance_group = " COMPLIANCE "\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\ntrusted_proxies = 127.0.0.1\n"
	         "[tokens]\nhs256_secret = records-test-shared-secret-0123456"
	         "\nissuer = roomgate-test\naudience = jitsi\n"
	         "subject = meet.example.com\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md);
	return ini;
}

static const char bob_out[] = "dn: " ALLOWED "\nchangetype: modify\n"
                              "delete: member\nmember: " BOB_DN "\n";
static const char bob_back[] = "dn: " ALLOWED "\nchangetype: modify\n"
                               "add: member\nmember: " BOB_DN "\n";

static void
secret(const char *s)
{
	assert_true(T.nsecrets < MAX_SECRETS);
	assert_true(strlen(s) >= 6);
	snprintf(T.secrets[T.nsecrets++], sizeof(T.secrets[0]), "%s", s);
}

/* The session cookie's value in b's jar. */
static void
session_cookie(struct sth_browser *b)
{
	struct curl_slist *list = NULL, *it;
	int found = 0;

	assert_int_equal(curl_easy_getinfo(b->h, CURLINFO_COOKIELIST, &list),
	                 CURLE_OK);
	for (it = list; it != NULL; it = it->next) {
		/* Netscape format: the name is field 6, the value field 7. */
		const char *f = it->data, *name = NULL;
		int i;

		for (i = 0; i < 5 && f != NULL; i++) {
			f = strchr(f, '\t');
			if (f != NULL)
				f++;
		}
		if (f == NULL)
			continue;
		name = f;
		f = strchr(f, '\t');
		if (f == NULL)
			continue;
		if ((size_t)(f - name) == strlen("rg_session") &&
		    strncmp(name, "rg_session", 10) == 0) {
			secret(f + 1);
			found = 1;
		}
	}
	curl_slist_free_all(list);
	assert_true(found);
}

/* A request with the browser's cookies plus the proxy headers. */
static long
req(struct sth_browser *b, const char *method, const char *path,
    const char *extra, const char *body, struct sth_resp *r)
{
	const char *h[] = {UA, XFF, extra, NULL};

	return ath_req(T.base, b, method, path, h, body, r);
}

/* A request with an API token (no cookies) plus the proxy headers. */
static long
req_token(const char *token, const char *method, const char *path,
          const char *body, struct sth_resp *r)
{
	struct sth_browser anon;
	char auth[128];
	const char *h[] = {UA, XFF, auth, NULL};
	long st;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	sth_browser_init(&anon);
	st = ath_req(T.base, &anon, method, path, h, body, r);
	sth_browser_free(&anon);
	return st;
}

/* The one record of request rid with event ev: its columns as text
 * (NULL for SQL NULL), in the order of the SELECT below. */
enum {
	C_EVENT,
	C_OUTCOME,
	C_REASON,
	C_IDENTITY,
	C_IDP,
	C_MEETING,
	C_SOURCE,
	C_XFF,
	C_UA,
	C_RID,
	C_NODE,
	C_CODE_OK,
	C_MEMBER_OK,
	C_DETAILS,
	C_N
};
struct rec {
	char *c[C_N];
};

static void
rec_free(struct rec *r)
{
	for (int i = 0; i < C_N; i++)
		free(r->c[i]);
	memset(r, 0, sizeof(*r));
}

/* Exactly one record of event ev made by request rid, into out. */
static void
record_of(const char *rid, const char *ev, struct rec *out)
{
	const char *v[2] = {rid, ev};
	PGresult *res = PQexecParams(
	    T.pg,
	    "SELECT event_type, outcome, reason, identity, idp, "
	    "meeting_id::text, host(source_addr), forwarded_for, user_agent, "
	    "request_id, node, code_ok::text, member_ok::text, details::text "
	    "FROM audit_log WHERE request_id = $1 AND event_type = $2",
	    2, NULL, v, NULL, NULL, 0);

	memset(out, 0, sizeof(*out));
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("query failed: %s", PQerrorMessage(T.pg));
	if (PQntuples(res) != 1)
		fail_msg("%d %s records of request %s, want 1", PQntuples(res),
		         ev, rid);
	for (int i = 0; i < C_N; i++)
		out->c[i] = PQgetisnull(res, 0, i)
		                ? NULL
		                : strdup(PQgetvalue(res, 0, i));
	PQclear(res);
}

static long
records_of(const char *rid)
{
	return ath_pg_count(T.pg,
	                    "SELECT count(*) FROM audit_log WHERE "
	                    "request_id = $1",
	                    rid);
}

/* The request facts every record of these tests must carry. */
static void
assert_context(const struct rec *r, const char *rid)
{
	assert_non_null(r->c[C_SOURCE]);
	assert_string_equal(r->c[C_SOURCE], SRC);
	assert_non_null(r->c[C_XFF]);
	assert_string_equal(r->c[C_XFF], "198.51.100.9, 203.0.113.7");
	assert_non_null(r->c[C_UA]);
	assert_string_equal(r->c[C_UA], "rg-records-test/1.0");
	assert_string_equal(r->c[C_RID], rid);
	assert_non_null(r->c[C_NODE]);
	assert_string_equal(r->c[C_NODE], "records-node");
	assert_non_null(r->c[C_REASON]);
}

static json_t *
details(const struct rec *r)
{
	json_t *d;

	assert_non_null(r->c[C_DETAILS]);
	d = json_loads(r->c[C_DETAILS], 0, NULL);
	assert_non_null(d);
	return d;
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
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "records-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "records-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("records.ini", node_ini()));
	th_server_start(&T.s, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "records-sp-md.xml");
	T.pg = sth_pg();
	/* The superuser, in the application's database. */
	T.admin = PQconnectdbParams(
	    (const char *[]){"dbname", "dbname", NULL},
	    (const char *[]){th_env("RG_TEST_PG_ADMIN_URL"), "roomgate", NULL},
	    1);
	assert_int_equal(PQstatus(T.admin), CONNECTION_OK);
	ath_token(T.cfg_path, "host", "records-host", "user01", T.host_token);
	ath_token(T.cfg_path, "admin", "records-admin", "ops", T.admin_token);
	secret(T.host_token);
	secret(T.admin_token);
	sth_browser_init(&T.alice);
	sth_browser_init(&T.bob);
	sth_browser_init(&T.carol);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	sth_sign_in(&T.carol, T.base, T.idp_base, "carol");
	session_cookie(&T.alice);
	session_cookie(&T.bob);
	session_cookie(&T.carol);
	return 0;
}

static int
teardown(void **state)
{
	PGresult *res;

	(void)state;
	(void)ath_ldap_admin_try(bob_back);
	res = PQexec(T.admin, "ALTER TABLE audit_log DROP CONSTRAINT IF "
	                      "EXISTS records_test_refuse");
	PQclear(res);
	sth_browser_free(&T.alice);
	sth_browser_free(&T.bob);
	sth_browser_free(&T.carol);
	sth_idp_stop(T.idp);
	th_server_stop(&T.s);
	PQfinish(T.pg);
	PQfinish(T.admin);
	curl_global_cleanup();
	return 0;
}

/* ---- a host's acts ---------------------------------------------------- */

static void
host_acts_carry_the_request_context(void **state)
{
	const char body[] = "{\"title\": \"records\", \"allowed_groups\": "
	                    "[\"" ALLOWED "\"]}";
	struct sth_resp r;
	struct rec rc;
	char path[160];
	json_t *o, *d;

	(void)state;
	/* Create (alice signs in as a host). */
	assert_int_equal(req(&T.alice, "POST", "/v1/meetings", NULL, body, &r),
	                 201);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	snprintf(T.meeting, sizeof(T.meeting), "%s",
	         json_string_value(json_object_get(o, "id")));
	snprintf(T.link, sizeof(T.link), "%s",
	         json_string_value(json_object_get(o, "link_id")));
	secret(json_string_value(
	    json_object_get(json_object_get(o, "code"), "code")));
	json_decref(o);
	record_of(r.request_id, "meeting.create", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "alice");
	assert_non_null(rc.c[C_IDP]);
	assert_string_equal(rc.c[C_IDP], IDP_ENTITY);
	assert_string_equal(rc.c[C_MEETING], T.meeting);
	assert_string_equal(rc.c[C_REASON], "created");
	d = details(&rc);
	assert_string_equal(json_string_value(json_object_get(d, "via")),
	                    "session");
	json_decref(d);
	rec_free(&rc);
	/* alice acting as the host of her own meeting uses no elevated
	 * role: no role.use record. */
	assert_int_equal(records_of(r.request_id), 1);
	sth_resp_free(&r);

	/* Reading the code is on record, without the code. */
	snprintf(path, sizeof(path), "/v1/meetings/%s/code", T.meeting);
	assert_int_equal(req(&T.alice, "GET", path, NULL, NULL, &r), 200);
	record_of(r.request_id, "code.read", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "alice");
	assert_string_equal(rc.c[C_IDP], IDP_ENTITY);
	assert_string_equal(rc.c[C_MEETING], T.meeting);
	assert_string_equal(rc.c[C_OUTCOME], "allow");
	assert_string_equal(rc.c[C_REASON], "host");
	d = details(&rc);
	assert_int_equal(json_integer_value(json_object_get(d, "version")), 1);
	json_decref(d);
	rec_free(&rc);
	sth_resp_free(&r);

	/* Update, rotate. */
	snprintf(path, sizeof(path), "/v1/meetings/%s", T.meeting);
	assert_int_equal(req(&T.alice, "PATCH", path, NULL,
	                     "{\"title\": \"records 2\"}", &r),
	                 200);
	record_of(r.request_id, "meeting.update", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "alice");
	assert_string_equal(rc.c[C_IDP], IDP_ENTITY);
	assert_string_equal(rc.c[C_REASON], "updated");
	rec_free(&rc);
	sth_resp_free(&r);

	snprintf(path, sizeof(path), "/v1/meetings/%s/code:rotate", T.meeting);
	assert_int_equal(req(&T.alice, "POST", path, NULL, "{}", &r), 200);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	secret(json_string_value(json_object_get(o, "code")));
	snprintf(T.code, sizeof(T.code), "%s",
	         json_string_value(json_object_get(o, "code")));
	json_decref(o);
	record_of(r.request_id, "code.rotate", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "alice");
	assert_string_equal(rc.c[C_IDP], IDP_ENTITY);
	assert_string_equal(rc.c[C_MEETING], T.meeting);
	assert_string_equal(rc.c[C_REASON], "rotate");
	rec_free(&rc);
	sth_resp_free(&r);

	/* An API token acting as a host: the act and its role use. */
	snprintf(path, sizeof(path), "/v1/meetings/%s", T.meeting);
	assert_int_equal(req_token(T.admin_token, "GET", path, NULL, &r), 200);
	record_of(r.request_id, "role.use", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "ops");
	assert_null(rc.c[C_IDP]);
	assert_string_equal(rc.c[C_OUTCOME], "allow");
	assert_string_equal(rc.c[C_REASON], "elevated_role");
	assert_string_equal(rc.c[C_MEETING], T.meeting);
	d = details(&rc);
	assert_string_equal(json_string_value(json_object_get(d, "via")),
	                    "token:records-admin");
	assert_string_equal(json_string_value(json_object_get(d, "route")),
	                    "/v1/meetings/{id}");
	assert_int_equal(json_integer_value(json_object_get(d, "status")), 200);
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(d, "roles"), 0)),
	    "admin");
	json_decref(d);
	rec_free(&rc);
	sth_resp_free(&r);
}

/* ---- roles ------------------------------------------------------------ */

static void
role_use_and_refusals_are_recorded(void **state)
{
	struct sth_resp r;
	struct rec rc;
	char path[160];
	json_t *d;

	(void)state;
	assert_true(T.meeting[0] != '\0');
	snprintf(path, sizeof(path), "/v1/meetings/%s", T.meeting);

	/* carol reads alice's meeting through the compliance role. */
	assert_int_equal(req(&T.carol, "GET", path, NULL, NULL, &r), 200);
	record_of(r.request_id, "role.use", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "carol");
	assert_string_equal(rc.c[C_IDP], IDP_ENTITY);
	assert_string_equal(rc.c[C_MEETING], T.meeting);
	assert_string_equal(rc.c[C_OUTCOME], "allow");
	d = details(&rc);
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(d, "roles"), 0)),
	    "compliance");
	assert_string_equal(json_string_value(json_object_get(d, "via")),
	                    "session");
	assert_string_equal(json_string_value(json_object_get(d, "method")),
	                    "GET");
	json_decref(d);
	rec_free(&rc);
	sth_resp_free(&r);

	/* Her attempts view of it, too. */
	snprintf(path, sizeof(path), "/v1/meetings/%s/attempts", T.meeting);
	assert_int_equal(req(&T.carol, "GET", path, NULL, NULL, &r), 200);
	record_of(r.request_id, "role.use", &rc);
	assert_string_equal(rc.c[C_MEETING], T.meeting);
	rec_free(&rc);
	sth_resp_free(&r);

	/* bob has no role: refused, and the refusal is on record. */
	snprintf(path, sizeof(path), "/v1/meetings/%s", T.meeting);
	assert_int_equal(req(&T.bob, "GET", path, NULL, NULL, &r), 403);
	record_of(r.request_id, "role.denied", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "bob");
	assert_string_equal(rc.c[C_IDP], IDP_ENTITY);
	assert_string_equal(rc.c[C_OUTCOME], "deny");
	assert_string_equal(rc.c[C_REASON], "forbidden");
	assert_string_equal(rc.c[C_MEETING], T.meeting);
	d = details(&rc);
	assert_int_equal(json_integer_value(json_object_get(d, "status")), 403);
	assert_non_null(json_string_value(json_object_get(d, "message")));
	json_decref(d);
	rec_free(&rc);
	sth_resp_free(&r);

	/* A host token refused the outbox (admin only). */
	assert_int_equal(
	    req_token(T.host_token, "GET", "/v1/outbox?state=dead", NULL, &r),
	    403);
	record_of(r.request_id, "role.denied", &rc);
	assert_string_equal(rc.c[C_IDENTITY], "user01");
	rec_free(&rc);
	sth_resp_free(&r);

	/* The admin token lists the outbox and revokes a person. */
	assert_int_equal(
	    req_token(T.admin_token, "GET", "/v1/outbox?state=dead", NULL, &r),
	    200);
	record_of(r.request_id, "role.use", &rc);
	assert_null(rc.c[C_MEETING]);
	d = details(&rc);
	assert_string_equal(json_string_value(json_object_get(d, "route")),
	                    "/v1/outbox");
	json_decref(d);
	rec_free(&rc);
	sth_resp_free(&r);

	assert_int_equal(req_token(T.admin_token, "POST",
	                           "/v1/identities/mallory:revoke",
	                           "{\"note\": \"records test\"}", &r),
	                 200);
	record_of(r.request_id, "identity.revoke", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "mallory");
	d = details(&rc);
	assert_string_equal(json_string_value(json_object_get(d, "by")), "ops");
	assert_string_equal(json_string_value(json_object_get(d, "via")),
	                    "token:records-admin");
	json_decref(d);
	rec_free(&rc);
	record_of(r.request_id, "role.use", &rc);
	assert_context(&rc, r.request_id);
	rec_free(&rc);
	sth_resp_free(&r);

	/* alice reading her own meeting, and /healthz: nothing. */
	assert_int_equal(req(&T.alice, "GET", path, NULL, NULL, &r), 200);
	assert_int_equal(records_of(r.request_id), 0);
	sth_resp_free(&r);
	assert_int_equal(req(&T.alice, "GET", "/healthz", NULL, NULL, &r), 200);
	assert_int_equal(records_of(r.request_id), 0);
	sth_resp_free(&r);
}

/* ---- forward-auth ----------------------------------------------------- */

static void
authz_denials_are_recorded_allows_are_not(void **state)
{
	struct sth_resp r;
	struct rec rc;
	char hdr[160], path[160], code[16], body[64];
	json_t *o, *d;

	(void)state;
	assert_true(T.meeting[0] != '\0');
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", T.link);

	/* Not admitted yet. */
	assert_int_equal(req(&T.bob, "GET", "/v1/authz", hdr, NULL, &r), 403);
	record_of(r.request_id, "authz.deny", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "bob");
	assert_string_equal(rc.c[C_IDP], IDP_ENTITY);
	assert_string_equal(rc.c[C_MEETING], T.meeting);
	assert_string_equal(rc.c[C_OUTCOME], "deny");
	assert_string_equal(rc.c[C_REASON], "not_admitted");
	assert_null(rc.c[C_CODE_OK]);
	assert_null(rc.c[C_MEMBER_OK]);
	d = details(&rc);
	assert_string_equal(
	    json_string_value(json_object_get(d, "meeting_ref")), T.link);
	json_decref(d);
	rec_free(&rc);
	sth_resp_free(&r);

	/* Admitted (alice reads the current code for bob): an allow
	 * writes no record. */
	snprintf(path, sizeof(path), "/v1/meetings/%s/code", T.meeting);
	assert_int_equal(req(&T.alice, "GET", path, NULL, NULL, &r), 200);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	snprintf(code, sizeof(code), "%s",
	         json_string_value(json_object_get(o, "code")));
	json_decref(o);
	sth_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/join/%s", T.link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	assert_int_equal(req(&T.bob, "POST", path, NULL, body, &r), 200);
	sth_resp_free(&r);
	assert_int_equal(req(&T.bob, "GET", "/v1/authz", hdr, NULL, &r), 200);
	assert_int_equal(records_of(r.request_id), 0);
	sth_resp_free(&r);

	/* Out of the group: denied, member_ok false. */
	ath_ldap_admin(bob_out);
	assert_int_equal(req(&T.bob, "GET", "/v1/authz", hdr, NULL, &r), 403);
	record_of(r.request_id, "authz.deny", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_REASON], "not_member");
	assert_non_null(rc.c[C_MEMBER_OK]);
	assert_string_equal(rc.c[C_MEMBER_OK], "false");
	rec_free(&rc);
	sth_resp_free(&r);
	ath_ldap_admin(bob_back);

	/* An unknown meeting. */
	assert_int_equal(req(&T.bob, "GET", "/v1/authz",
	                     "X-Roomgate-Meeting: no-such-meeting-link", NULL,
	                     &r),
	                 403);
	record_of(r.request_id, "authz.deny", &rc);
	assert_string_equal(rc.c[C_REASON], "unknown_meeting");
	assert_null(rc.c[C_MEETING]);
	rec_free(&rc);
	sth_resp_free(&r);
}

/* ---- no record, no data ----------------------------------------------- */

static long
metric(const char *line_prefix)
{
	struct th_http *h = calloc(1, sizeof(*h));
	char url[128];
	const char *p;
	long v = -1;

	assert_non_null(h);
	snprintf(url, sizeof(url), "%s/metrics", T.base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, h), 200);
	p = strstr(h->body, line_prefix);
	if (p != NULL)
		v = strtol(p + strlen(line_prefix), NULL, 10);
	free(h);
	return v;
}

static void
unrecorded_reads_are_withheld_denials_stay(void **state)
{
	static const char fails[] = "roomgate_audit_request_record_failures_"
	                            "total{event=\"code.read\"} ";
	struct sth_resp r;
	PGresult *res;
	char path[160], hdr[160];
	long before;

	(void)state;
	assert_true(T.meeting[0] != '\0');
	before = metric(fails);
	assert_true(before >= 0);
	/* The database refuses these records (NOT VALID: old rows stay). */
	res = PQexec(T.admin,
	             "ALTER TABLE audit_log ADD CONSTRAINT records_test_refuse "
	             "CHECK (event_type NOT IN ('code.read', 'role.use', "
	             "'authz.deny')) NOT VALID");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("constraint: %s", PQerrorMessage(T.admin));
	PQclear(res);

	snprintf(path, sizeof(path), "/v1/meetings/%s/code", T.meeting);
	assert_int_equal(req(&T.alice, "GET", path, NULL, NULL, &r), 503);
	assert_true(strlen(T.code) == 8);
	assert_null(strstr(r.body, T.code));
	assert_non_null(strstr(r.body, "audit_unavailable"));
	sth_resp_free(&r);
	assert_int_equal(metric(fails), before + 1);

	/* A compliance read without its record: withheld. */
	snprintf(path, sizeof(path), "/v1/meetings/%s", T.meeting);
	assert_int_equal(req(&T.carol, "GET", path, NULL, NULL, &r), 503);
	assert_null(strstr(r.body, "records 2"));
	sth_resp_free(&r);

	/* A forward-auth denial stays a denial. */
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", T.link);
	assert_int_equal(req(&T.carol, "GET", "/v1/authz", hdr, NULL, &r), 403);
	sth_resp_free(&r);

	res = PQexec(T.admin, "ALTER TABLE audit_log DROP CONSTRAINT "
	                      "records_test_refuse");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	snprintf(path, sizeof(path), "/v1/meetings/%s/code", T.meeting);
	assert_int_equal(req(&T.alice, "GET", path, NULL, NULL, &r), 200);
	sth_resp_free(&r);
}

/* Archive last (the other tests use the meeting), then look at every
 * record of the run for a secret. */
static void
no_record_holds_a_code_session_or_token(void **state)
{
	struct sth_resp r;
	struct rec rc;
	char path[160];

	(void)state;
	assert_true(T.meeting[0] != '\0');
	snprintf(path, sizeof(path), "/v1/meetings/%s", T.meeting);
	assert_int_equal(req(&T.alice, "DELETE", path, NULL, "{}", &r), 200);
	record_of(r.request_id, "meeting.archive", &rc);
	assert_context(&rc, r.request_id);
	assert_string_equal(rc.c[C_IDENTITY], "alice");
	assert_string_equal(rc.c[C_IDP], IDP_ENTITY);
	assert_string_equal(rc.c[C_REASON], "archived");
	rec_free(&rc);
	sth_resp_free(&r);

	/* The run wrote records of every kind checked here. */
	assert_true(
	    ath_pg_count(T.pg,
	                 "SELECT count(DISTINCT event_type) FROM "
	                 "audit_log WHERE event_type = ANY "
	                 "(string_to_array($1, ','))",
	                 "meeting.create,meeting.update,"
	                 "meeting.archive,code.read,code.rotate,"
	                 "role.use,role.denied,authz.deny,"
	                 "identity.revoke,token.create,admission,sso") == 12);
	assert_true(T.nsecrets >= 7);
	for (int i = 0; i < T.nsecrets; i++) {
		long n = ath_pg_count(T.pg,
		                      "SELECT count(*) FROM audit_log a WHERE "
		                      "strpos(a::text, $1) > 0",
		                      T.secrets[i]);

		if (n != 0)
			fail_msg("%ld audit records hold secret #%d", n, i);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(host_acts_carry_the_request_context),
	    cmocka_unit_test(role_use_and_refusals_are_recorded),
	    cmocka_unit_test(authz_denials_are_recorded_allows_are_not),
	    cmocka_unit_test(unrecorded_reads_are_withheld_denials_stay),
	    cmocka_unit_test(no_record_holds_a_code_session_or_token),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
