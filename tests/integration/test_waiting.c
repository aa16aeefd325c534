/*
 * Integration: the waiting room and invitee-only meetings, end to end --
 * real sign-ins at the test IdP (scripted browsers with cookie jars), the
 * live directory check against slapd, PostgreSQL for admissions and the
 * audit trail.
 *
 * The waiting room: a right code at a meeting with the waiting room on
 * waits; the participant polls GET /v1/join/{link}/status (JSON) or
 * GET /j/{link}/wait (a page that refreshes itself); the host lists
 * GET /v1/meetings/{id}/waiting and decides with POST
 * .../waiting/{admission}:admit or :deny (or on the page /m/{id}/waiting).
 * Admitting asks the directory again, live.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include <jansson.h>

#include "server/admit.h"
/* The shared SAML helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-waiting.test/saml/metadata"
#define IDP_ENTITY "https://idp-waiting.test/saml"
#define SECRET "jitsi-shared-secret-for-the-waiting-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define HOSTS "cn=meeting-hosts,ou=groups,dc=example,dc=com"
#define BOB_DN "uid=bob,ou=people,dc=example,dc=com"
#define WAITING_S 600
#define TTL_S 90

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server srv;
	pid_t idp;
	PGconn *pg;
	char host_token[64], bob_token[64];
	char cfg_path[512];
	struct sth_browser alice, bob, carol, dave, mallory, anon;
} T;

static const char bob_out[] = "dn: " GROUP "\nchangetype: modify\n"
                              "delete: member\nmember: " BOB_DN "\n";
static const char bob_back[] = "dn: " GROUP "\nchangetype: modify\n"
                               "add: member\nmember: " BOB_DN "\n";

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "waiting-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 8\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[directory]\nhost_group = " HOSTS "\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\nwaiting_timeout = %d\n"
	         "[tokens]\nhs256_secret = " SECRET "\nissuer = roomgate-test\n"
	         "audience = jitsi\nsubject = meet.example.com\nttl = %d\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md,
	         WAITING_S, TTL_S);
	return ini;
}

/* ---- requests ------------------------------------------------------------ */

/* POST /v1/join/{link} {"code": code} as browser b; the JSON answer. */
static json_t *
join(struct sth_browser *b, const char *link, const char *code, long want)
{
	struct sth_resp r;
	char path[160], body[96];
	json_t *o;

	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	ath_req(T.base, b, "POST", path, NULL, body, &r);
	if (r.status != want)
		fail_msg("join %s: %ld, want %ld: %s", link, r.status, want,
		         r.body);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	sth_resp_free(&r);
	return o;
}

/* b joins a waiting-room meeting: 202, the admission id into adm. */
static void
join_waiting(struct sth_browser *b, const char *link, const char *code,
             char adm[40])
{
	json_t *o = join(b, link, code, 202);

	assert_string_equal(json_string_value(json_object_get(o, "state")),
	                    "waiting");
	snprintf(adm, 40, "%s",
	         json_string_value(json_object_get(o, "admission_id")));
	assert_int_equal(strlen(adm), 36);
	json_decref(o);
}

/* GET /v1/join/{link}/status as b; the status, the body into *out. */
static long
status_of(struct sth_browser *b, const char *link, json_t **out)
{
	struct sth_resp r;
	char path[160];
	long st;

	snprintf(path, sizeof(path), "/v1/join/%s/status", link);
	st = ath_req(T.base, b, "GET", path, NULL, NULL, &r);
	*out = json_loads(r.body, 0, NULL);
	if (*out == NULL)
		fail_msg("status %ld not JSON: %s", st, r.body);
	sth_resp_free(&r);
	return st;
}

static const char *
error_code(json_t *o)
{
	return json_string_value(
	    json_object_get(json_object_get(o, "error"), "code"));
}

/* POST .../waiting/{adm}:{verb} with a host token (tok) or, tok NULL,
 * browser b's cookie. */
static long
decide(struct sth_browser *b, const char *tok, const char *mid, const char *adm,
       const char *verb, json_t **out)
{
	struct sth_resp r;
	char path[200], auth[128];
	const char *h[] = {auth, NULL};
	long st;

	snprintf(path, sizeof(path), "/v1/meetings/%s/waiting/%s:%s", mid, adm,
	         verb);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         tok ? tok : "");
	st = ath_req(T.base, b, "POST", path, tok ? h : NULL, "{}", &r);
	if (out != NULL) {
		*out = json_loads(r.body, 0, NULL);
		if (*out == NULL)
			fail_msg("decide %ld not JSON: %s", st, r.body);
	}
	sth_resp_free(&r);
	return st;
}

/* GET /v1/meetings/{id}/waiting as b (cookie) or with token tok. */
static long
list_of(struct sth_browser *b, const char *tok, const char *mid, json_t **out)
{
	struct sth_resp r;
	char path[160], auth[128];
	const char *h[] = {auth, NULL};
	long st;

	snprintf(path, sizeof(path), "/v1/meetings/%s/waiting", mid);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         tok ? tok : "");
	st = ath_req(T.base, b, "GET", path, tok ? h : NULL, NULL, &r);
	*out = json_loads(r.body, 0, NULL);
	if (*out == NULL)
		fail_msg("list %ld not JSON: %s", st, r.body);
	sth_resp_free(&r);
	return st;
}

/* Whether adm is on the meeting's waiting list (asked with the token). */
static int
listed(const char *mid, const char *adm)
{
	json_t *o, *e;
	size_t i;
	int found = 0;

	assert_int_equal(list_of(&T.anon, T.host_token, mid, &o), 200);
	json_array_foreach(json_object_get(o, "waiting"), i, e)
	{
		if (strcmp(
		        json_string_value(json_object_get(e, "admission_id")),
		        adm) == 0)
			found = 1;
	}
	json_decref(o);
	return found;
}

static char *
adm_value(const char *sql, const char *adm)
{
	return sth_pg_value(T.pg, sql, adm);
}

/* "state revoke_reason decided_by" of an admission. */
static void
expect_state(const char *adm, const char *want)
{
	char *got = adm_value("SELECT state || ' ' || coalesce(revoke_reason, "
	                      "'-') || ' ' || coalesce(decided_by, '-') FROM "
	                      "admissions WHERE id = $1::uuid",
	                      adm);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

/* The waiting.* audit records of an admission:
 * "event outcome reason identity decided_by via member_ok", one per line
 * in order. */
static char *
decisions_of(const char *adm)
{
	char *s = adm_value(
	    "SELECT coalesce(string_agg(event_type || ' ' || outcome || ' ' || "
	    "reason || ' ' || identity || ' ' || (details->>'decided_by') || "
	    "' ' || split_part(details->>'via', ':', 1) || ' ' || "
	    "coalesce(member_ok::text, '-'), E'\\n' ORDER BY seq), '') FROM "
	    "audit_log WHERE event_type IN ('waiting.admit', 'waiting.deny', "
	    "'waiting.end') AND details->>'admission_id' = $1",
	    adm);

	assert_non_null(s);
	return s;
}

static void
expect_decisions(const char *adm, const char *want)
{
	char *got = decisions_of(adm);

	assert_string_equal(got, want);
	free(got);
}

/* ---- fixture --------------------------------------------------------------
 */

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
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "waiting-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "waiting-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("waiting.ini", node_ini()));
	th_server_start(&T.srv, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "waiting-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "waiting-host", "alice", T.host_token);
	ath_token(T.cfg_path, "host", "waiting-other-host", "bob", T.bob_token);
	sth_browser_init(&T.alice);
	sth_browser_init(&T.bob);
	sth_browser_init(&T.carol);
	sth_browser_init(&T.dave);
	sth_browser_init(&T.mallory);
	sth_browser_init(&T.anon);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	sth_sign_in(&T.carol, T.base, T.idp_base, "carol");
	sth_sign_in(&T.dave, T.base, T.idp_base, "dave");
	sth_sign_in(&T.mallory, T.base, T.idp_base, "mallory");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	/* Whatever a failed test left behind (bob is normally back
	 * already: that add then fails, harmlessly). */
	(void)ath_ldap_admin_try(bob_back);
	sth_browser_free(&T.alice);
	sth_browser_free(&T.bob);
	sth_browser_free(&T.carol);
	sth_browser_free(&T.dave);
	sth_browser_free(&T.mallory);
	sth_browser_free(&T.anon);
	sth_idp_stop(T.idp);
	th_server_stop(&T.srv);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- the waiting room -----------------------------------------------------
 */

/* Wait, be listed, be let in by the host: the status URL then carries
 * a fresh join token (jti = the admission, exp from now). */
static void
host_admits_and_status_redirects_with_a_token(void **state)
{
	char link[80], code[16], id[40], adm[40], err[160], path[160];
	char *room, *jwt;
	struct sth_resp r;
	json_t *o, *e, *claims;
	long long t0 = (long long)time(NULL), until;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting admit", 1, link,
	                code, id);
	join_waiting(&T.bob, link, code, adm);
	expect_state(adm, "waiting - -");
	/* The entry lasts [admission] waiting_timeout. */
	{
		char *secs = adm_value("SELECT extract(epoch FROM expires_at "
		                       "- created_at)::bigint FROM admissions "
		                       "WHERE id = $1::uuid",
		                       adm);

		assert_non_null(secs);
		until = strtoll(secs, NULL, 10);
		free(secs);
	}
	assert_int_equal(until, WAITING_S);

	/* The participant sees the wait, as JSON and as a page. */
	assert_int_equal(status_of(&T.bob, link, &o), 202);
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	                    "waiting");
	assert_string_equal(
	    json_string_value(json_object_get(o, "admission_id")), adm);
	assert_string_equal(json_string_value(json_object_get(o, "meeting_id")),
	                    id);
	assert_true(json_integer_value(json_object_get(o, "waiting_until")) >=
	            t0 + WAITING_S - 5);
	assert_null(json_object_get(o, "token"));
	json_decref(o);
	snprintf(path, sizeof(path), "/j/%s/wait", link);
	assert_int_equal(ath_req(T.base, &T.bob, "GET", path, NULL, NULL, &r),
	                 202);
	assert_non_null(strstr(r.body, "Waiting for the host to let you in"));
	assert_non_null(strstr(r.body, "waiting admit"));
	assert_non_null(strstr(r.body, "Signed in as <strong>bob</strong>"));
	{
		char want[200];

		snprintf(want, sizeof(want),
		         "<meta http-equiv=\"refresh\" content=\"5; "
		         "url=/j/%s/wait\">",
		         link);
		assert_non_null(strstr(r.body, want));
	}
	assert_null(strstr(r.body, "<script"));
	sth_resp_free(&r);

	/* The host lists it: by SSO session and by service token. */
	assert_int_equal(list_of(&T.alice, NULL, id, &o), 200);
	assert_int_equal(json_array_size(json_object_get(o, "waiting")), 1);
	e = json_array_get(json_object_get(o, "waiting"), 0);
	assert_string_equal(
	    json_string_value(json_object_get(e, "admission_id")), adm);
	assert_string_equal(json_string_value(json_object_get(e, "identity")),
	                    "bob");
	assert_non_null(json_string_value(json_object_get(e, "since")));
	assert_non_null(json_string_value(json_object_get(e, "expires_at")));
	assert_true(json_object_get(e, "display_name") != NULL);
	json_decref(o);
	assert_true(listed(id, adm));

	/* Not the host: 403, and nothing about the entry. */
	assert_int_equal(list_of(&T.bob, NULL, id, &o), 403);
	assert_null(json_object_get(o, "waiting"));
	json_decref(o);
	assert_int_equal(list_of(&T.anon, T.bob_token, id, &o), 403);
	json_decref(o);
	assert_int_equal(decide(&T.anon, T.bob_token, id, adm, "admit", &o),
	                 403);
	json_decref(o);
	assert_int_equal(decide(&T.bob, NULL, id, adm, "admit", &o), 403);
	json_decref(o);
	/* A cookie-authenticated change must be JSON (CSRF). */
	snprintf(path, sizeof(path), "/v1/meetings/%s/waiting/%s:admit", id,
	         adm);
	assert_int_equal(
	    ath_req_status(T.base, &T.alice, "POST", path, NULL, NULL), 403);
	expect_state(adm, "waiting - -");
	expect_decisions(adm, "");

	/* The host (SSO) lets bob in. */
	assert_int_equal(decide(&T.alice, NULL, id, adm, "admit", &o), 200);
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	                    "admitted");
	assert_string_equal(json_string_value(json_object_get(o, "identity")),
	                    "bob");
	assert_string_equal(json_string_value(json_object_get(o, "decided_by")),
	                    "alice");
	json_decref(o);
	expect_state(adm, "admitted - alice");
	expect_decisions(adm, "waiting.admit allow host_admitted bob alice "
	                      "session true");
	{
		/* The record carries the host's IdP and where the request
		 * came from. */
		char *ctx = adm_value(
		    "SELECT (details->>'decided_by_idp' IS NOT NULL AND "
		    "source_addr IS NOT NULL AND request_id IS NOT NULL)::text "
		    "FROM audit_log WHERE event_type = 'waiting.admit' AND "
		    "details->>'admission_id' = $1",
		    adm);

		assert_non_null(ctx);
		assert_string_equal(ctx, "true");
		free(ctx);
	}
	assert_false(listed(id, adm));
	/* Twice is a conflict, and leaves no second record. */
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 409);
	assert_string_equal(error_code(o), "not_waiting");
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	                    "admitted");
	json_decref(o);
	expect_decisions(adm, "waiting.admit allow host_admitted bob alice "
	                      "session true");

	/* bob's status now carries a token minted now. */
	t0 = (long long)time(NULL);
	assert_int_equal(status_of(&T.bob, link, &o), 200);
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	                    "admitted");
	assert_int_equal(gate_jwt_verify_hs256(
	                     json_string_value(json_object_get(o, "token")),
	                     (const unsigned char *)SECRET, strlen(SECRET),
	                     time(NULL), &claims, err, sizeof(err)),
	                 0);
	room = sth_pg_value(T.pg,
	                    "SELECT platform_room FROM meetings WHERE "
	                    "id = $1",
	                    id);
	assert_non_null(room);
	assert_string_equal(json_string_value(json_object_get(claims, "jti")),
	                    adm);
	assert_string_equal(json_string_value(json_object_get(claims, "room")),
	                    room);
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(claims, "context"), "user"),
	        "id")),
	    "bob");
	assert_true(json_integer_value(json_object_get(claims, "nbf")) >= t0);
	assert_int_equal(json_integer_value(json_object_get(claims, "exp")) -
	                     json_integer_value(json_object_get(claims, "nbf")),
	                 TTL_S);
	assert_non_null(strstr(
	    json_string_value(json_object_get(o, "redirect_url")), room));
	json_decref(claims);
	json_decref(o);

	/* One token per admit: the page, asked after the JSON poll took it,
	 * gets none. */
	snprintf(path, sizeof(path), "/j/%s/wait", link);
	assert_int_equal(ath_req(T.base, &T.bob, "GET", path, NULL, NULL, &r),
	                 409);
	assert_int_equal(r.location[0], '\0');
	assert_null(strstr(r.body, "jwt="));
	sth_resp_free(&r);

	/* The page redirects to the platform with such a token: bob waits
	 * again and is let in again. */
	join_waiting(&T.bob, link, code, adm);
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 200);
	json_decref(o);
	assert_int_equal(ath_req(T.base, &T.bob, "GET", path, NULL, NULL, &r),
	                 303);
	assert_true(strncmp(r.location, "https://meet.example.com/", 25) == 0);
	assert_non_null(strstr(r.location, room));
	jwt = strstr(r.location, "?jwt=");
	assert_non_null(jwt);
	assert_int_equal(gate_jwt_verify_hs256(jwt + 5,
	                                       (const unsigned char *)SECRET,
	                                       strlen(SECRET), time(NULL),
	                                       &claims, err, sizeof(err)),
	                 0);
	assert_string_equal(json_string_value(json_object_get(claims, "jti")),
	                    adm);
	json_decref(claims);
	sth_resp_free(&r);

	/* Each token that left is on record, with the group that matched
	 * at that moment. */
	{
		char *n = adm_value(
		    "SELECT count(*) FROM audit_log WHERE event_type = "
		    "'waiting.token' AND outcome = 'allow' AND reason = "
		    "'token_issued' AND identity = 'bob' AND member_ok AND "
		    "matched_group = '" GROUP "' AND "
		    "meeting_id = $1::uuid",
		    id);

		assert_string_equal(n, "2");
		free(n);
	}

	/* Someone else's session has no entry here. */
	assert_int_equal(status_of(&T.carol, link, &o), 404);
	assert_string_equal(error_code(o), "not_waiting");
	json_decref(o);
	free(room);
}

/* Removed from the group while waiting: the host's admit is refused and
 * the entry ends. */
static void
removed_while_waiting_is_refused_at_admit(void **state)
{
	char link[80], code[16], id[40], adm[40], path[160];
	struct sth_resp r;
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting removal", 1, link,
	                code, id);
	join_waiting(&T.bob, link, code, adm);
	ath_ldap_admin(bob_out);
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 409);
	assert_string_equal(error_code(o), "not_on_access_list");
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	                    "revoked");
	assert_string_equal(json_string_value(json_object_get(o, "directory")),
	                    "not_member");
	assert_non_null(strstr(json_string_value(json_object_get(
	                           json_object_get(o, "error"), "message")),
	                       "no longer an active member"));
	json_decref(o);
	ath_ldap_admin(bob_back);
	expect_state(adm, "revoked directory_removed alice");
	expect_decisions(adm, "waiting.end deny not_member bob alice token "
	                      "false");
	assert_false(listed(id, adm));
	/* Back in the group changes nothing for this entry. */
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 409);
	assert_string_equal(error_code(o), "not_waiting");
	json_decref(o);
	/* bob learns why. */
	assert_int_equal(status_of(&T.bob, link, &o), 403);
	assert_string_equal(error_code(o), "revoked");
	json_decref(o);
	snprintf(path, sizeof(path), "/j/%s/wait", link);
	assert_int_equal(ath_req(T.base, &T.bob, "GET", path, NULL, NULL, &r),
	                 403);
	assert_non_null(strstr(r.body, "no longer on this meeting"));
	assert_null(strstr(r.body, "http-equiv=\"refresh\""));
	sth_resp_free(&r);
}

/* bob back in the group even when a test stopped halfway. */
static int
bob_back_teardown(void **state)
{
	(void)state;
	(void)ath_ldap_admin_try(bob_back);
	return 0;
}

/* Let in, then removed from the group before the page came back: no
 * token, and the admission ends. */
static void
removed_after_the_host_admit_gets_no_token(void **state)
{
	char link[80], code[16], id[40], adm[40];
	json_t *o;
	char *rec;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting late removal", 1,
	                link, code, id);
	join_waiting(&T.bob, link, code, adm);
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 200);
	json_decref(o);
	ath_ldap_admin(bob_out);
	assert_int_equal(status_of(&T.bob, link, &o), 403);
	assert_string_equal(error_code(o), "not_on_access_list");
	assert_null(json_object_get(o, "token"));
	json_decref(o);
	ath_ldap_admin(bob_back);
	expect_state(adm, "revoked directory_removed alice");
	rec = adm_value("SELECT string_agg(outcome || ' ' || reason || ' ' || "
	                "coalesce(member_ok::text, '-') || ' ' || "
	                "(details->>'directory'), ',' ORDER BY seq) FROM "
	                "audit_log WHERE event_type = 'waiting.token' AND "
	                "details->>'admission_id' = $1",
	                adm);
	assert_non_null(rec);
	assert_string_equal(rec, "deny not_member false not_member");
	free(rec);
	/* Back in the group: this admission stays ended. */
	assert_int_equal(status_of(&T.bob, link, &o), 403);
	assert_string_equal(error_code(o), "revoked");
	json_decref(o);
}

/* As the superuser, in the application's database. */
static void
admin_sql(const char *sql)
{
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

static int
grant_teardown(void **state)
{
	(void)state;
	admin_sql("GRANT INSERT ON audit_log TO roomgate");
	return 0;
}

/* No audit record, no change: the host's admit and the token both fail
 * closed while the audit trail cannot be written. */
static void
audit_failure_fails_closed(void **state)
{
	char link[80], code[16], id[40], adm[40];
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting audit", 1, link,
	                code, id);
	join_waiting(&T.bob, link, code, adm);
	admin_sql("REVOKE INSERT ON audit_log FROM roomgate");
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 503);
	assert_string_equal(error_code(o), "database_unavailable");
	json_decref(o);
	admin_sql("GRANT INSERT ON audit_log TO roomgate");
	expect_state(adm, "waiting - -");
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 200);
	json_decref(o);
	admin_sql("REVOKE INSERT ON audit_log FROM roomgate");
	assert_int_equal(status_of(&T.bob, link, &o), 503);
	assert_null(json_object_get(o, "token"));
	assert_null(json_object_get(o, "redirect_url"));
	json_decref(o);
	admin_sql("GRANT INSERT ON audit_log TO roomgate");
	assert_int_equal(status_of(&T.bob, link, &o), 200);
	assert_non_null(json_string_value(json_object_get(o, "token")));
	json_decref(o);
}

/* Denied: the participant is told; no later admit. */
static void
host_denies(void **state)
{
	char link[80], code[16], id[40], adm[40], path[160];
	struct sth_resp r;
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting deny", 1, link,
	                code, id);
	join_waiting(&T.carol, link, code, adm);
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "deny", &o),
	                 200);
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	                    "host_denied");
	json_decref(o);
	expect_state(adm, "host_denied - alice");
	expect_decisions(adm, "waiting.deny deny host_denied carol alice "
	                      "token -");
	assert_int_equal(decide(&T.alice, NULL, id, adm, "admit", &o), 409);
	assert_string_equal(error_code(o), "not_waiting");
	json_decref(o);
	assert_int_equal(status_of(&T.carol, link, &o), 403);
	assert_string_equal(error_code(o), "host_denied");
	json_decref(o);
	snprintf(path, sizeof(path), "/j/%s/wait", link);
	assert_int_equal(ath_req(T.base, &T.carol, "GET", path, NULL, NULL, &r),
	                 403);
	assert_non_null(strstr(r.body, "The host did not let you in"));
	sth_resp_free(&r);
	/* Unknown entries and verbs. */
	assert_int_equal(decide(&T.anon, T.host_token, id,
	                        "00000000-0000-0000-0000-000000000000", "admit",
	                        &o),
	                 404);
	json_decref(o);
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "maybe", &o),
	                 404);
	json_decref(o);
}

struct racer {
	const char *mid, *adm, *verb;
	long status;
};

static void *
race(void *arg)
{
	struct racer *x = arg;
	struct th_http *r = calloc(1, sizeof(*r));
	char url[300], auth[128];
	const char *h[] = {auth, "Content-Type: application/json", NULL};

	if (r == NULL)
		return NULL;
	snprintf(url, sizeof(url), "%s/v1/meetings/%s/waiting/%s:%s", T.base,
	         x->mid, x->adm, x->verb);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", T.host_token);
	x->status = th_http("POST", url, h, "{}", 2, r);
	free(r);
	return NULL;
}

/* Racing decisions on one entry: exactly one applies, the others 409. */
static void
racing_decisions_one_wins(void **state)
{
	enum { ROUNDS = 4, RACERS = 4 };
	char link[80], code[16], id[40], adm[40];
	struct racer x[RACERS];
	pthread_t th[RACERS];
	char *n;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting race", 1, link,
	                code, id);
	for (int round = 0; round < ROUNDS; round++) {
		int won = 0, lost = 0;

		join_waiting(&T.bob, link, code, adm);
		for (int i = 0; i < RACERS; i++) {
			x[i].mid = id;
			x[i].adm = adm;
			/* Admit against admit, and against deny. */
			x[i].verb =
			    (round % 2 == 1 && i == 0) ? "deny" : "admit";
			x[i].status = -1;
			assert_int_equal(
			    pthread_create(&th[i], NULL, race, &x[i]), 0);
		}
		for (int i = 0; i < RACERS; i++) {
			pthread_join(th[i], NULL);
			if (x[i].status == 200)
				won++;
			else if (x[i].status == 409)
				lost++;
		}
		assert_int_equal(won, 1);
		assert_int_equal(lost, RACERS - 1);
		n = adm_value("SELECT count(*) FROM audit_log WHERE "
		              "event_type IN ('waiting.admit', "
		              "'waiting.deny', 'waiting.end') AND "
		              "details->>'admission_id' = $1",
		              adm);
		assert_string_equal(n, "1");
		free(n);
	}
}

/* Directory down at the host's admit: 503, the person still waits. */
static void
directory_down_at_admit_changes_nothing(void **state)
{
	char link[80], code[16], id[40], adm[40];
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting slapd", 1, link,
	                code, id);
	join_waiting(&T.bob, link, code, adm);
	th_ldap_stop();
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 503);
	assert_string_equal(error_code(o), "directory_unavailable");
	json_decref(o);
	th_ldap_start();
	expect_state(adm, "waiting - -");
	expect_decisions(adm, "");
	assert_true(listed(id, adm));
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 200);
	json_decref(o);
	expect_state(adm, "admitted - alice");
}

/* An entry past waiting_timeout is over: not listed, not admittable. */
static void
waiting_entry_expires(void **state)
{
	char link[80], code[16], id[40], adm[40], path[160];
	struct sth_resp r;
	PGresult *res;
	const char *v[1];
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting expiry", 1, link,
	                code, id);
	join_waiting(&T.bob, link, code, adm);
	/* Waiting_timeout seconds later, as far as the row knows. */
	v[0] = adm;
	res = PQexecParams(T.pg,
	                   "UPDATE admissions SET created_at = created_at - "
	                   "interval '601 seconds', expires_at = expires_at - "
	                   "interval '601 seconds' WHERE id = $1::uuid",
	                   1, NULL, v, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	assert_false(listed(id, adm));
	expect_state(adm, "expired - -");
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 409);
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	                    "expired");
	json_decref(o);
	expect_decisions(adm, "");
	assert_int_equal(status_of(&T.bob, link, &o), 410);
	assert_string_equal(error_code(o), "waiting_expired");
	json_decref(o);
	snprintf(path, sizeof(path), "/j/%s/wait", link);
	assert_int_equal(ath_req(T.base, &T.bob, "GET", path, NULL, NULL, &r),
	                 410);
	assert_non_null(strstr(r.body, "The wait has ended"));
	snprintf(path, sizeof(path), "href=\"/j/%s\"", link);
	assert_non_null(strstr(r.body, path));
	sth_resp_free(&r);
	/* Typing the code again starts a new wait. */
	join_waiting(&T.bob, link, code, adm);
	assert_true(listed(id, adm));
}

/* The participant page without a session, or without a wait. */
static void
wait_page_without_session_or_entry(void **state)
{
	char link[80], code[16], id[40], path[160], want[160];
	struct sth_resp r;
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting none", 1, link,
	                code, id);
	snprintf(path, sizeof(path), "/j/%s/wait", link);
	snprintf(want, sizeof(want), "/saml/login?return=/j/%s", link);
	assert_int_equal(ath_req(T.base, &T.anon, "GET", path, NULL, NULL, &r),
	                 303);
	assert_string_equal(r.location, want);
	sth_resp_free(&r);
	assert_int_equal(status_of(&T.anon, link, &o), 401);
	assert_string_equal(error_code(o), "login_required");
	assert_string_equal(json_string_value(json_object_get(o, "login_url")),
	                    want);
	json_decref(o);
	/* Signed in, never waited: back to the code form. */
	snprintf(want, sizeof(want), "/j/%s", link);
	assert_int_equal(ath_req(T.base, &T.carol, "GET", path, NULL, NULL, &r),
	                 303);
	assert_string_equal(r.location, want);
	sth_resp_free(&r);
	assert_int_equal(ath_req(T.base, &T.carol, "GET",
	                         "/j/no-such-link-here/wait", NULL, NULL, &r),
	                 404);
	assert_non_null(strstr(r.body, "Meeting not found"));
	sth_resp_free(&r);
}

/* A straight admission (no waiting room) gets no token from the status
 * URL: a new join link costs the code again. */
static void
status_mints_only_after_a_host_admit(void **state)
{
	char link[80], code[16], id[40];
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting straight", 0,
	                link, code, id);
	o = join(&T.bob, link, code, 200);
	json_decref(o);
	assert_int_equal(status_of(&T.bob, link, &o), 409);
	assert_string_equal(error_code(o), "already_admitted");
	assert_null(json_object_get(o, "token"));
	json_decref(o);
}

/* A host's admit lets one token out: the poll that takes it marks the
 * admission (in the statement that records it), a second poll gets 409
 * and no token. */
static void
one_token_per_host_admit(void **state)
{
	char link[80], code[16], id[40], adm[40];
	json_t *o;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting one token", 1,
	                link, code, id);
	join_waiting(&T.bob, link, code, adm);
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 200);
	json_decref(o);
	assert_int_equal(status_of(&T.bob, link, &o), 200);
	assert_non_null(json_string_value(json_object_get(o, "token")));
	json_decref(o);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(status_of(&T.bob, link, &o), 409);
		assert_string_equal(error_code(o), "already_admitted");
		assert_null(json_object_get(o, "token"));
		assert_null(json_object_get(o, "redirect_url"));
		json_decref(o);
	}
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "event_type = 'waiting.token' AND "
	                              "outcome = 'allow' AND "
	                              "details->>'admission_id' = $1",
	                              adm),
	                 1);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "id = $1::uuid AND token_collected_at IS "
	                              "NOT NULL AND state = 'admitted'",
	                              adm),
	                 1);
}

static void
pg_ok(PGconn *pg, const char *sql, const char *param)
{
	PGresult *res = PQexecParams(pg, sql, param ? 1 : 0, NULL,
	                             param ? &param : NULL, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(pg));
	PQclear(res);
}

/* A revoke that lands while the token is being handed out (the directory
 * was asked, the token minted) wins: the pickup needs the admission still
 * "admitted" in the statement that records it. The test holds the row,
 * lets the poll run into it, revokes, and lets go. */
static void
revoke_during_the_pickup_lets_no_token_out(void **state)
{
	char link[80], code[16], id[40], adm[40], url[256];
	struct curl_slist *cookies = NULL, *c;
	struct sth_resp r;
	PGconn *hold;
	CURLM *m;
	CURL *h;
	json_t *o;
	long st = 0;
	int running = 1, held = 1;
	time_t t0;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "waiting revoke race", 1,
	                link, code, id);
	join_waiting(&T.bob, link, code, adm);
	assert_int_equal(decide(&T.anon, T.host_token, id, adm, "admit", &o),
	                 200);
	json_decref(o);

	hold = sth_pg();
	assert_non_null(hold);
	pg_ok(hold, "BEGIN", NULL);
	pg_ok(hold, "SELECT id FROM admissions WHERE id = $1::uuid FOR UPDATE",
	      adm);

	memset(&r, 0, sizeof(r));
	m = curl_multi_init();
	h = curl_easy_init();
	assert_non_null(h);
	curl_easy_getinfo(T.bob.h, CURLINFO_COOKIELIST, &cookies);
	snprintf(url, sizeof(url), "%s/v1/join/%s/status", T.base, link);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_COOKIEFILE, "");
	for (c = cookies; c != NULL; c = c->next)
		curl_easy_setopt(h, CURLOPT_COOKIELIST, c->data);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sth_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_multi_add_handle(m, h);
	t0 = time(NULL);
	while (running) {
		curl_multi_perform(m, &running);
		if (held &&
		    (!running ||
		     ath_pg_count(T.pg,
		                  "SELECT count(*) FROM pg_stat_activity "
		                  "WHERE wait_event_type = 'Lock' AND "
		                  "$1::text IS NOT NULL",
		                  "x") >= 1 ||
		     time(NULL) - t0 > 10)) {
			pg_ok(hold,
			      "UPDATE admissions SET state = 'revoked', "
			      "revoke_reason = 'admin', ended_at = now() "
			      "WHERE id = $1::uuid",
			      adm);
			pg_ok(hold, "COMMIT", NULL);
			held = 0;
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 50, NULL);
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	curl_multi_remove_handle(m, h);
	curl_easy_cleanup(h);
	curl_multi_cleanup(m);
	curl_slist_free_all(cookies);
	PQfinish(hold);
	if (st != 403 || r.body == NULL || strstr(r.body, "token") != NULL)
		fail_msg("poll during the revoke: %ld %s", st,
		         r.body ? r.body : "");
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	assert_string_equal(error_code(o), "revoked");
	json_decref(o);
	free(r.body);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "event_type = 'waiting.token' AND "
	                              "outcome = 'deny' AND reason = "
	                              "'not_admitted' AND "
	                              "details->>'admission_id' = $1",
	                              adm),
	                 1);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "event_type = 'waiting.token' AND "
	                              "outcome = 'allow' AND "
	                              "details->>'admission_id' = $1",
	                              adm),
	                 0);
}

/* The host's page: list, escaped, CSRF-protected Admit and Deny. */
static void
host_page_lists_and_decides(void **state)
{
	char link[80], code[16], id[40], adm[40], adm2[40], path[160];
	char body[300], want[200];
	struct sth_resp r;
	char *csrf;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "<b>waiting page</b>", 1,
	                link, code, id);
	join_waiting(&T.bob, link, code, adm);
	join_waiting(&T.carol, link, code, adm2);
	snprintf(path, sizeof(path), "%s/m/%s/waiting", T.base, id);

	/* Without a session: sign in first, then back here. */
	assert_int_equal(sth_do(&T.anon, path, NULL, 0, &r), 303);
	snprintf(want, sizeof(want), "/saml/login?return=/m/%s/waiting", id);
	assert_string_equal(r.location, want);
	sth_resp_free(&r);
	/* Not the host. */
	assert_int_equal(sth_do(&T.bob, path, NULL, 0, &r), 403);
	assert_null(strstr(r.body, "carol"));
	sth_resp_free(&r);

	assert_int_equal(sth_do(&T.alice, path, NULL, 0, &r), 200);
	assert_non_null(strstr(r.body, "&lt;b&gt;waiting page&lt;/b&gt;"));
	assert_null(strstr(r.body, "<b>waiting"));
	assert_non_null(strstr(r.body, "2 people are waiting"));
	assert_non_null(strstr(r.body, "(bob)"));
	assert_non_null(strstr(r.body, "(carol)"));
	assert_non_null(strstr(r.body, "value=\"admit\""));
	assert_non_null(strstr(r.body, "value=\"deny\""));
	snprintf(want, sizeof(want),
	         "<meta http-equiv=\"refresh\" content=\"10; "
	         "url=/m/%s/waiting\">",
	         id);
	assert_non_null(strstr(r.body, want));
	assert_null(strstr(r.body, "<script"));
	csrf = sth_form_field(r.body, "csrf");
	assert_non_null(csrf);
	assert_int_equal(strlen(csrf), 64);
	sth_resp_free(&r);

	/* A forged form (no token, or bob's token) changes nothing. */
	snprintf(body, sizeof(body), "admission=%s&action=admit", adm);
	assert_int_equal(sth_do(&T.alice, path, body, strlen(body), &r), 403);
	assert_non_null(strstr(r.body, "This form expired"));
	sth_resp_free(&r);
	snprintf(body, sizeof(body), "csrf=%064d&admission=%s&action=admit", 0,
	         adm);
	assert_int_equal(sth_do(&T.alice, path, body, strlen(body), &r), 403);
	sth_resp_free(&r);
	expect_state(adm, "waiting - -");

	/* Admit bob, deny carol. */
	snprintf(body, sizeof(body), "csrf=%s&admission=%s&action=admit", csrf,
	         adm);
	assert_int_equal(sth_do(&T.alice, path, body, strlen(body), &r), 200);
	assert_non_null(strstr(r.body, "bob was let in"));
	assert_non_null(strstr(r.body, "1 person is waiting"));
	assert_null(strstr(r.body, "(bob)"));
	assert_non_null(strstr(r.body, "(carol)"));
	sth_resp_free(&r);
	expect_state(adm, "admitted - alice");
	expect_decisions(adm, "waiting.admit allow host_admitted bob alice "
	                      "session true");
	snprintf(body, sizeof(body), "csrf=%s&admission=%s&action=deny", csrf,
	         adm2);
	assert_int_equal(sth_do(&T.alice, path, body, strlen(body), &r), 200);
	assert_non_null(strstr(r.body, "carol was turned away"));
	assert_non_null(strstr(r.body, "Nobody is waiting."));
	sth_resp_free(&r);
	expect_state(adm2, "host_denied - alice");
	/* Deciding again: a 409 page. */
	assert_int_equal(sth_do(&T.alice, path, body, strlen(body), &r), 409);
	assert_non_null(strstr(r.body, "no longer waiting"));
	sth_resp_free(&r);
	/* Nonsense in the form: 400, nothing changes. */
	snprintf(body, sizeof(body), "csrf=%s&admission=%s&action=maybe", csrf,
	         adm2);
	assert_int_equal(sth_do(&T.alice, path, body, strlen(body), &r), 400);
	sth_resp_free(&r);
	free(csrf);
}

/* ---- invitee-only meetings ------------------------------------------------
 */

/* A meeting that names invitees and no group, made with the host token. */
static void
new_invitee_meeting(const char *invitees, const char *groups, char link[80],
                    char code[16], char id[40])
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256], auth[128], body[512];
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	json_t *o;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/v1/meetings", T.base);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", T.host_token);
	snprintf(body, sizeof(body),
	         "{\"title\": \"invitees\", \"invitees\": %s%s%s}", invitees,
	         groups ? ", \"allowed_groups\": " : "", groups ? groups : "");
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

/* "outcome reason matched_group code_ok member_ok" of the newest
 * admission attempt of identity at meeting id. */
static char *
last_attempt(const char *id, const char *identity)
{
	const char *v[2] = {id, identity};
	PGresult *res = PQexecParams(
	    T.pg,
	    "SELECT outcome || ' ' || reason || ' ' || coalesce(matched_group, "
	    "'-') || ' ' || coalesce(code_ok::text, '-') || ' ' || "
	    "coalesce(member_ok::text, '-') FROM audit_log WHERE meeting_id = "
	    "$1::uuid AND identity = $2 AND event_type = 'admission' ORDER BY "
	    "seq DESC LIMIT 1",
	    2, NULL, v, NULL, NULL, 0);
	char *s;

	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(res), 1);
	s = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return s;
}

static void
expect_attempt(const char *id, const char *identity, const char *want)
{
	char *got = last_attempt(id, identity);

	assert_string_equal(got, want);
	free(got);
}

static void
invitee_only_meeting(void **state)
{
	char link[80], code[16], id[40], hdr[120];
	struct sth_resp r;
	json_t *o;

	(void)state;
	/* dave is in no meeting group, mallory is locked. */
	new_invitee_meeting("[\"dave\", \"mallory\"]", NULL, link, code, id);
	o = join(&T.dave, link, code, 200);
	assert_non_null(json_string_value(json_object_get(o, "token")));
	json_decref(o);
	expect_attempt(id, "dave", "allow admitted invitee true true");
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid AND identity = "
	                              "'dave' AND matched_group = 'invitee' "
	                              "AND state = 'admitted'",
	                              id),
	                 1);
	/* Forward-auth applies the same rule. */
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", id);
	{
		const char *h[] = {hdr, NULL};

		assert_int_equal(ath_req_status(T.base, &T.dave, "GET",
		                                "/v1/authz", h, NULL),
		                 200);
	}
	/* Locked invitee: refused, like any non-member. */
	o = join(&T.mallory, link, code, 403);
	assert_string_equal(error_code(o), "not_on_access_list");
	json_decref(o);
	expect_attempt(id, "mallory", "deny not_member - true false");
	/* Not invited: refused, whatever groups they are in. */
	o = join(&T.carol, link, code, 403);
	assert_string_equal(error_code(o), "not_on_access_list");
	json_decref(o);
	expect_attempt(id, "carol", "deny not_member - true false");
	/* Directory down: 503, nobody admitted. */
	th_ldap_stop();
	o = join(&T.dave, link, code, 503);
	assert_string_equal(error_code(o), "directory_unavailable");
	json_decref(o);
	th_ldap_start();
	expect_attempt(id, "dave", "deny directory_unavailable - true -");
	{
		const char *h[] = {hdr, NULL};

		assert_int_equal(
		    ath_req(T.base, &T.dave, "GET", "/v1/authz", h, NULL, &r),
		    200);
		sth_resp_free(&r);
	}
}

#define DAVE_DN "uid=dave,ou=people,dc=example,dc=com"
static const char dave_lock[] = "dn: " DAVE_DN "\nchangetype: modify\n"
                                "add: pwdAccountLockedTime\n"
                                "pwdAccountLockedTime: 000001010000Z\n";
static const char dave_unlock[] = "dn: " DAVE_DN "\nchangetype: modify\n"
                                  "delete: pwdAccountLockedTime\n";

static int
dave_unlock_teardown(void **state)
{
	(void)state;
	(void)ath_ldap_admin_try(dave_unlock);
	return 0;
}

/* An admitted invitee locked in the directory loses access at once:
 * forward-auth and the next join refuse. */
static void
invitee_locked_after_admission(void **state)
{
	char link[80], code[16], id[40], hdr[120];
	const char *h[] = {hdr, NULL};
	json_t *o;

	(void)state;
	new_invitee_meeting("[\"dave\"]", NULL, link, code, id);
	o = join(&T.dave, link, code, 200);
	json_decref(o);
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", id);
	assert_int_equal(
	    ath_req_status(T.base, &T.dave, "GET", "/v1/authz", h, NULL), 200);
	ath_ldap_admin(dave_lock);
	assert_int_equal(
	    ath_req_status(T.base, &T.dave, "GET", "/v1/authz", h, NULL), 403);
	o = join(&T.dave, link, code, 403);
	assert_string_equal(error_code(o), "not_on_access_list");
	json_decref(o);
	expect_attempt(id, "dave", "deny not_member - true false");
	ath_ldap_admin(dave_unlock);
	assert_int_equal(
	    ath_req_status(T.base, &T.dave, "GET", "/v1/authz", h, NULL), 200);
}

/* A meeting with groups admits a listed invitee outside them too. */
static void
invitee_beside_groups(void **state)
{
	char link[80], code[16], id[40];
	json_t *o;

	(void)state;
	new_invitee_meeting("[\"dave\"]", "[\"" GROUP "\"]", link, code, id);
	o = join(&T.dave, link, code, 200);
	json_decref(o);
	expect_attempt(id, "dave", "allow admitted invitee true true");
	o = join(&T.bob, link, code, 200);
	json_decref(o);
	expect_attempt(id, "bob", "allow admitted " GROUP " true true");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(host_admits_and_status_redirects_with_a_token),
	    cmocka_unit_test_teardown(removed_while_waiting_is_refused_at_admit,
	                              bob_back_teardown),
	    cmocka_unit_test_teardown(
	        removed_after_the_host_admit_gets_no_token, bob_back_teardown),
	    cmocka_unit_test_teardown(audit_failure_fails_closed,
	                              grant_teardown),
	    cmocka_unit_test(host_denies),
	    cmocka_unit_test(racing_decisions_one_wins),
	    cmocka_unit_test(directory_down_at_admit_changes_nothing),
	    cmocka_unit_test(waiting_entry_expires),
	    cmocka_unit_test(wait_page_without_session_or_entry),
	    cmocka_unit_test(status_mints_only_after_a_host_admit),
	    cmocka_unit_test(one_token_per_host_admit),
	    cmocka_unit_test(revoke_during_the_pickup_lets_no_token_out),
	    cmocka_unit_test(host_page_lists_and_decides),
	    cmocka_unit_test(invitee_only_meeting),
	    cmocka_unit_test(invitee_beside_groups),
	    cmocka_unit_test_teardown(invitee_locked_after_admission,
	                              dave_unlock_teardown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
