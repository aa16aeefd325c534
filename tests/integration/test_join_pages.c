/*
 * Integration: the HTML join pages GET and POST /j/{link}, end to end --
 * real sign-ins at the test IdP (scripted browsers with cookie jars), the
 * live directory check against slapd, PostgreSQL for codes and the audit
 * trail. The pages share POST /v1/join's decision; these tests check what
 * the pages add: the login redirect, escaping, the form, the CSRF token
 * (checked before the decision, so a forged form leaves no trace) and one
 * page per verdict.
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

#define SP_ENTITY "https://roomgate-pages.test/saml/metadata"
#define IDP_ENTITY "https://idp-pages.test/saml"
#define SECRET "jitsi-shared-secret-for-the-page-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server srv;
	pid_t idp;
	PGconn *pg;
	char host_token[64];
	char cfg_path[512];
	struct sth_browser alice, bob, dave, anon;
} T;

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "pages-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\n"
	         "[tokens]\nhs256_secret = " SECRET "\nissuer = roomgate-test\n"
	         "audience = jitsi\nsubject = meet.example.com\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md);
	return ini;
}

/* The Content-Security-Policy of the last response. */
static char last_csp[512];

static size_t
csp_header(char *p, size_t sz, size_t n, void *ud)
{
	size_t len = sz * n;

	if (len > 24 && strncasecmp(p, "Content-Security-Policy:", 24) == 0)
		sth_hdr_value(p, len, last_csp, sizeof(last_csp));
	return sth_header(p, sz, n, ud);
}

/* GET /j/link with b's cookies. */
static long
page_get(struct sth_browser *b, const char *link, struct sth_resp *r)
{
	char url[256];

	snprintf(url, sizeof(url), "%s/j/%s", T.base, link);
	sth_do(b, url, NULL, 0, r);
	return r->status;
}

/* POST the form (csrf NULL: left out) with b's cookies. */
static long
page_post(struct sth_browser *b, const char *link, const char *csrf,
          const char *code, struct sth_resp *r)
{
	char url[256], body[512];

	snprintf(url, sizeof(url), "%s/j/%s", T.base, link);
	if (csrf != NULL)
		snprintf(body, sizeof(body), "csrf=%s&code=%s", csrf, code);
	else
		snprintf(body, sizeof(body), "code=%s", code);
	return sth_do(b, url, body, strlen(body), r);
}

/* The CSRF token of b's form page for link. */
static char *
csrf_of(struct sth_browser *b, const char *link)
{
	struct sth_resp r;
	char *tok;

	if (page_get(b, link, &r) != 200)
		fail_msg("GET /j/%s: %ld %s", link, r.status, r.body);
	tok = sth_form_field(r.body, "csrf");
	assert_non_null(tok);
	assert_int_equal(strlen(tok), 64);
	sth_resp_free(&r);
	return tok;
}

/* The audit record of a request: "reason code_ok member_ok". */
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
	                   "SELECT outcome || ' ' || reason || ' ' || "
	                   "coalesce(code_ok::text, '-') || ' ' || "
	                   "coalesce(member_ok::text, '-') FROM audit_log "
	                   "WHERE request_id = $1",
	                   request_id);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void
expect_page_csp(void)
{
	/* No scripts; forms post to us, and the redirect after the join
	 * form's post may go to the platform's origin (form-action covers
	 * redirects) and nowhere else. */
	assert_string_equal(last_csp,
	                    "default-src 'none'; style-src 'unsafe-inline'; "
	                    "form-action 'self' https://meet.example.com; "
	                    "frame-ancestors 'none'");
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
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "pages-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "pages-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("pages.ini", node_ini()));
	th_server_start(&T.srv, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "pages-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "pages-host", "alice", T.host_token);
	sth_browser_init(&T.alice);
	sth_browser_init(&T.bob);
	sth_browser_init(&T.dave);
	sth_browser_init(&T.anon);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	sth_sign_in(&T.dave, T.base, T.idp_base, "dave");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sth_browser_free(&T.alice);
	sth_browser_free(&T.bob);
	sth_browser_free(&T.dave);
	sth_browser_free(&T.anon);
	sth_idp_stop(T.idp);
	th_server_stop(&T.srv);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

static void
no_session_redirects_to_login(void **state)
{
	char link[80], code[16], id[40], want[160];
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages login", 0, link,
	                code, id);
	snprintf(want, sizeof(want), "/saml/login?return=/j/%s", link);
	assert_int_equal(page_get(&T.anon, link, &r), 303);
	assert_string_equal(r.location, want);
	sth_resp_free(&r);
	/* The form too: no session, no decision, no record. */
	assert_int_equal(page_post(&T.anon, link, "x", code, &r), 303);
	assert_string_equal(r.location, want);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND "
	                              "event_type = 'admission'",
	                              id),
	                 0);
	sth_resp_free(&r);
}

static void
page_shows_escaped_title_identity_and_form(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;
	char *tok;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "<script>x</script>", 0,
	                link, code, id);
	curl_easy_setopt(T.alice.h, CURLOPT_HEADERFUNCTION, csp_header);
	last_csp[0] = '\0';
	{
		char url[256];

		snprintf(url, sizeof(url), "%s/j/%s", T.base, link);
		memset(&r, 0, sizeof(r));
		/* sth_do resets the callback; do the request by hand. */
		curl_easy_setopt(T.alice.h, CURLOPT_URL, url);
		curl_easy_setopt(T.alice.h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(T.alice.h, CURLOPT_WRITEFUNCTION, sth_write);
		curl_easy_setopt(T.alice.h, CURLOPT_WRITEDATA, &r);
		curl_easy_setopt(T.alice.h, CURLOPT_HEADERDATA, &r);
		assert_int_equal(curl_easy_perform(T.alice.h), CURLE_OK);
		curl_easy_getinfo(T.alice.h, CURLINFO_RESPONSE_CODE, &r.status);
	}
	assert_int_equal(r.status, 200);
	expect_page_csp();
	assert_non_null(strstr(r.body, "&lt;script&gt;x&lt;/script&gt;"));
	assert_null(strstr(r.body, "<script"));
	assert_non_null(strstr(r.body, "Signed in as <strong>alice</strong>"));
	assert_non_null(
	    strstr(r.body, "<a href=\"/saml/logout\">Sign out</a>"));
	assert_non_null(strstr(r.body, "name=\"viewport\""));
	assert_non_null(strstr(r.body, "<label for=\"code\">"));
	assert_non_null(strstr(r.body, "id=\"code\" name=\"code\""));
	assert_non_null(strstr(r.body, "inputmode=\"numeric\""));
	assert_non_null(strstr(r.body, "autocomplete=\"one-time-code\""));
	tok = sth_form_field(r.body, "csrf");
	assert_non_null(tok);
	assert_int_equal(strlen(tok), 64);
	/* Showing the page is not an attempt. */
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND "
	                              "event_type = 'admission'",
	                              id),
	                 0);
	free(tok);
	sth_resp_free(&r);
	curl_easy_setopt(T.alice.h, CURLOPT_HEADERFUNCTION, sth_header);
}

static void
csrf_missing_or_wrong_is_403_without_a_trace(void **state)
{
	char link[80], code[16], id[40], bad[80];
	struct sth_resp r;
	char *mine, *bobs;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages csrf", 0, link,
	                code, id);
	mine = csrf_of(&T.alice, link);
	bobs = csrf_of(&T.bob, link);
	assert_string_not_equal(mine, bobs);
	/* Missing. */
	assert_int_equal(page_post(&T.alice, link, NULL, code, &r), 403);
	assert_non_null(strstr(r.body, "form expired; reload the page"));
	sth_resp_free(&r);
	/* Another session's token. */
	assert_int_equal(page_post(&T.alice, link, bobs, code, &r), 403);
	sth_resp_free(&r);
	/* One character off; and a prefix. */
	snprintf(bad, sizeof(bad), "%s", mine);
	bad[10] = bad[10] == 'a' ? 'b' : 'a';
	assert_int_equal(page_post(&T.alice, link, bad, code, &r), 403);
	sth_resp_free(&r);
	bad[10] = mine[10];
	bad[63] = '\0';
	assert_int_equal(page_post(&T.alice, link, bad, code, &r), 403);
	sth_resp_free(&r);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND "
	                              "event_type = 'admission'",
	                              id),
	                 0);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	/* The right token with the right code then admits. */
	assert_int_equal(page_post(&T.alice, link, mine, code, &r), 303);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 1);
	sth_resp_free(&r);
	free(mine);
	free(bobs);
}

static void
wrong_code_is_401_page_with_the_form(void **state)
{
	char link[80], code[16], id[40], bad[16];
	struct sth_resp r;
	char *tok, *again;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages wrong", 0, link,
	                code, id);
	tok = csrf_of(&T.alice, link);
	snprintf(bad, sizeof(bad), "%s", code);
	bad[0] = bad[0] == '9' ? '0' : (char)(bad[0] + 1);
	assert_int_equal(page_post(&T.alice, link, tok, bad, &r), 401);
	assert_non_null(strstr(r.body, "Invalid code"));
	assert_null(strstr(r.body, bad));
	again = sth_form_field(r.body, "csrf");
	assert_non_null(again);
	assert_string_equal(again, tok);
	assert_non_null(strstr(r.body, "inputmode=\"numeric\""));
	expect_audit(r.request_id, "deny invalid_code false true");
	free(again);
	free(tok);
	sth_resp_free(&r);
}

static void
seven_digits_is_400_with_the_leading_zero_hint(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;
	char *tok;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages short", 0, link,
	                code, id);
	tok = csrf_of(&T.alice, link);
	code[7] = '\0';
	assert_int_equal(page_post(&T.alice, link, tok, code, &r), 400);
	assert_non_null(strstr(r.body, "leading zero"));
	assert_non_null(strstr(r.body, "name=\"csrf\""));
	assert_non_null(strstr(r.body, "inputmode=\"numeric\""));
	expect_audit(r.request_id, "deny malformed false true");
	free(tok);
	sth_resp_free(&r);
}

static void
right_code_redirects_to_the_platform(void **state)
{
	char link[80], code[16], id[40], err[160], *room;
	struct sth_resp r;
	json_t *claims;
	char *tok, *jwt;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages ok", 0, link, code,
	                id);
	tok = csrf_of(&T.alice, link);
	assert_int_equal(page_post(&T.alice, link, tok, code, &r), 303);
	room = sth_pg_value(T.pg,
	                    "SELECT platform_room FROM meetings WHERE "
	                    "id = $1",
	                    id);
	assert_non_null(room);
	assert_true(strncmp(r.location, "https://meet.example.com/", 25) == 0);
	assert_non_null(strstr(r.location, room));
	jwt = strstr(r.location, "?jwt=");
	assert_non_null(jwt);
	assert_int_equal(gate_jwt_verify_hs256(jwt + 5,
	                                       (const unsigned char *)SECRET,
	                                       strlen(SECRET), time(NULL),
	                                       &claims, err, sizeof(err)),
	                 0);
	assert_string_equal(json_string_value(json_object_get(claims, "room")),
	                    room);
	json_decref(claims);
	expect_audit(r.request_id, "allow admitted true true");
	free(room);
	free(tok);
	sth_resp_free(&r);
}

static void
waiting_room_page_refreshes_itself(void **state)
{
	char link[80], code[16], id[40], want[160];
	struct sth_resp r;
	char *tok;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages waiting", 1, link,
	                code, id);
	tok = csrf_of(&T.alice, link);
	assert_int_equal(page_post(&T.alice, link, tok, code, &r), 202);
	/* It reloads the waiting URL (a GET), never the form's POST. */
	snprintf(want, sizeof(want),
	         "<meta http-equiv=\"refresh\" content=\"5; "
	         "url=/j/%s/wait\">",
	         link);
	assert_non_null(strstr(r.body, want));
	assert_non_null(strstr(r.body, "Waiting for the host to let you in"));
	expect_audit(r.request_id, "allow waiting true true");
	free(tok);
	sth_resp_free(&r);
}

static void
non_member_gets_the_403_page(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;
	char *tok;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages dave", 0, link,
	                code, id);
	tok = csrf_of(&T.dave, link);
	assert_int_equal(page_post(&T.dave, link, tok, code, &r), 403);
	assert_non_null(strstr(r.body, "You are not on this meeting&#39;s "
	                               "access list"));
	assert_null(strstr(r.body, "name=\"code\""));
	expect_audit(r.request_id, "deny not_member true false");
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	free(tok);
	sth_resp_free(&r);
}

static void
five_failures_lock_with_a_429_page(void **state)
{
	char link[80], code[16], id[40], bad[16];
	struct sth_resp r;
	char *tok;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages lock", 0, link,
	                code, id);
	tok = csrf_of(&T.bob, link);
	snprintf(bad, sizeof(bad), "%s", code);
	bad[0] = bad[0] == '9' ? '0' : (char)(bad[0] + 1);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(page_post(&T.bob, link, tok, bad, &r), 401);
		sth_resp_free(&r);
	}
	/* Locked: even the right code is refused, and the page says when. */
	assert_int_equal(page_post(&T.bob, link, tok, code, &r), 429);
	assert_non_null(strstr(r.body, "Too many failed attempts"));
	assert_non_null(strstr(r.body, "Try again in "));
	assert_null(strstr(r.body, "name=\"code\""));
	expect_audit(r.request_id, "deny locked true true");
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	free(tok);
	sth_resp_free(&r);
}

static void
unknown_link_is_404_page_and_counts(void **state)
{
	struct sth_resp r;

	(void)state;
	assert_int_equal(page_get(&T.bob, "no-such-meeting-link", &r), 404);
	assert_non_null(strstr(r.body, "Meeting not found"));
	assert_non_null(strstr(r.body, "No meeting has this link"));
	assert_non_null(strstr(r.body, "<!DOCTYPE html>"));
	expect_audit(r.request_id, "deny unknown_link - -");
	sth_resp_free(&r);
}

/* Failures counted on scope/key (0 when there is no counter yet). */
static long
failures_of(const char *scope, const char *key)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	         "SELECT coalesce((SELECT failures + 1000 * lock_count FROM "
	         "lockout_counters WHERE scope = '%s' AND key = $1), 0)",
	         scope);
	return ath_pg_count(T.pg, sql, key);
}

/* Any site can send a browser to /j/junk (SameSite=Lax cookies ride on
 * top-level GETs): that counts against the person, never against the
 * source address, or one page could lock out a whole NAT. The form post
 * (CSRF-checked) counts both. */
static void
unknown_link_get_does_not_count_the_source(void **state)
{
	char link[80], code[16], id[40], junk[64], *tok;
	long src, who;
	struct sth_resp r;

	(void)state;
	src = failures_of("source", "127.0.0.1");
	who = failures_of("identity_meeting", "unknown-link dave");
	for (int i = 0; i < 3; i++) {
		snprintf(junk, sizeof(junk), "junk-link-%d", i);
		assert_int_equal(page_get(&T.dave, junk, &r), 404);
		expect_audit(r.request_id, "deny unknown_link - -");
		sth_resp_free(&r);
	}
	assert_int_equal(failures_of("identity_meeting", "unknown-link dave"),
	                 who + 3);
	assert_int_equal(failures_of("source", "127.0.0.1"), src);

	ath_new_meeting(T.base, T.host_token, GROUP, "pages junk post", 0,
	                link, code, id);
	tok = csrf_of(&T.dave, link);
	assert_int_equal(page_post(&T.dave, "junk-link-post", tok, "1", &r),
	                 404);
	expect_audit(r.request_id, "deny unknown_link - -");
	sth_resp_free(&r);
	free(tok);
	assert_int_equal(failures_of("identity_meeting", "unknown-link dave"),
	                 who + 4);
	assert_int_equal(failures_of("source", "127.0.0.1"), src + 1);
}

/* A 503 page says what to do and nothing about the inside. */
static void
expect_clean_503_page(const struct sth_resp *r, const char *what)
{
	static const char *const inside[] = {
	    "ldap://", "LDAP", "Can't contact", "PQ",      "postgres",
	    "errno",   "SQL",          "stack",   "{\"error\"",
	    "127.0.0.1", "connection refused",  "Connection refused"};

	assert_int_equal(r->status, 503);
	assert_non_null(strstr(r->body, "<!DOCTYPE html>"));
	assert_non_null(strstr(r->body, "Try again in a moment"));
	assert_non_null(strstr(r->body, what));
	assert_null(strstr(r->body, "name=\"code\""));
	for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++)
		if (strstr(r->body, inside[i]) != NULL)
			fail_msg("the 503 page shows \"%s\":\n%s", inside[i],
			         r->body);
}

static void
directory_down_is_a_503_page_then_recovers(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;
	char *tok;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages slapd", 0, link,
	                code, id);
	tok = csrf_of(&T.alice, link);
	th_ldap_stop();
	page_post(&T.alice, link, tok, code, &r);
	th_ldap_start();
	expect_clean_503_page(&r, "directory cannot be reached");
	expect_audit(r.request_id, "deny directory_unavailable true -");
	sth_resp_free(&r);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	/* Back: the same form admits. */
	assert_int_equal(page_post(&T.alice, link, tok, code, &r), 303);
	assert_true(strncmp(r.location, "https://meet.example.com/", 25) == 0);
	sth_resp_free(&r);
	free(tok);
}

static void
database_down_is_a_503_page_then_recovers(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;
	char *tok;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "pages pg", 0, link, code,
	                id);
	tok = csrf_of(&T.alice, link);
	PQfinish(T.pg);
	th_pg_stop();
	page_post(&T.alice, link, tok, code, &r);
	expect_clean_503_page(&r, "could not be checked");
	sth_resp_free(&r);
	/* The page itself, too. */
	page_get(&T.alice, link, &r);
	expect_clean_503_page(&r, "could not be checked");
	sth_resp_free(&r);
	th_pg_start();
	T.pg = sth_pg();
	/* Nothing was recorded while it was down; afterwards it admits. */
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	assert_int_equal(page_post(&T.alice, link, tok, code, &r), 303);
	assert_true(strncmp(r.location, "https://meet.example.com/", 25) == 0);
	expect_audit(r.request_id, "allow admitted true true");
	sth_resp_free(&r);
	free(tok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(no_session_redirects_to_login),
	    cmocka_unit_test(page_shows_escaped_title_identity_and_form),
	    cmocka_unit_test(csrf_missing_or_wrong_is_403_without_a_trace),
	    cmocka_unit_test(wrong_code_is_401_page_with_the_form),
	    cmocka_unit_test(seven_digits_is_400_with_the_leading_zero_hint),
	    cmocka_unit_test(right_code_redirects_to_the_platform),
	    cmocka_unit_test(waiting_room_page_refreshes_itself),
	    cmocka_unit_test(non_member_gets_the_403_page),
	    cmocka_unit_test(five_failures_lock_with_a_429_page),
	    cmocka_unit_test(unknown_link_is_404_page_and_counts),
	    cmocka_unit_test(unknown_link_get_does_not_count_the_source),
	    cmocka_unit_test(directory_down_is_a_503_page_then_recovers),
	    cmocka_unit_test(database_down_is_a_503_page_then_recovers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
