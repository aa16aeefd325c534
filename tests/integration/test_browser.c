/*
 * Integration, real browser (see browser_th.h): headless Chromium against
 * the test IdP and roomgate -- the lockout page after five failures (even
 * the right code refused afterwards, nothing reaches the platform), and the
 * waiting room (the participant's page waits and refreshes itself, the host
 * admits over the API, the page lands on the platform with a token that
 * names that admission), and the host's waiting-room page (the host signs
 * in and clicks Admit and Deny). This node signs join tokens RS256, so the
 * scenario verifies that token with the key from /.well-known/jwks.json;
 * the join flow (test_browser_join.c) checks an HS256 one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/browser_th.h"
#pragma GCC diagnostic pop

/* Scripted (curl) participants, freed in teardown whatever happened. */
static struct {
	struct sth_browser bob, carol;
} P;

static int
setup(void **state)
{
	(void)state;
	bth_setup("browser", 1);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sth_browser_free(&P.bob);
	sth_browser_free(&P.carol);
	bth_teardown();
	return 0;
}

static void
lockout_page_after_five_failures(void **state)
{
	char link[80], code[16], id[40];
	int st;
	static const char *const steps[] = {
	    "Chromium starts with a fresh profile",
	    "sign in and reach the code form",
	    "wrong code 1 of 5 shows \"invalid code\"",
	    "wrong code 5 of 5 shows \"invalid code\"",
	    "then even the right code gets the lockout page",
	    "reloading the join page and trying again is still locked",
	    NULL};

	(void)state;
	ath_new_meeting(B.base, B.host_token, BTH_ALLOWED, "Browser lockout", 0,
	                link, code, id);
	st = bth_run("lockout", bth_env("bob", link, code, NULL, NULL));
	bth_expect_steps("lockout", st, steps);
	assert_string_equal(bth_audit_reasons(id),
	                    "deny:invalid_code deny:invalid_code "
	                    "deny:invalid_code deny:invalid_code "
	                    "deny:invalid_code deny:locked deny:locked");
	assert_int_equal(ath_pg_count(B.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
}

static void
waiting_room_until_the_host_admits(void **state)
{
	char link[80], code[16], id[40], room[300], e_id[80], e_tok[100];
	char jti[40];
	const char *more[] = {e_id, e_tok, NULL}, *p;
	int st;
	static const char *const steps[] = {
	    "sign in and reach the code form",
	    "the right code shows the waiting page, which refreshes itself",
	    "the page keeps waiting across a refresh",
	    "the host sees the person waiting and lets them in",
	    /* one step on two lines: NOLINTNEXTLINE(bugprone-suspicious-missing-comma) */
	    "the waiting page lands on the platform URL with a token that "
	    "verifies",
	    NULL};

	(void)state;
	ath_new_meeting(B.base, B.host_token, BTH_ALLOWED, "Browser waiting", 1,
	                link, code, id);
	snprintf(room, sizeof(room), "%s",
	         bth_value("SELECT platform_room FROM meetings WHERE id = $1",
	                   id));
	assert_true(room[0] != '\0');
	snprintf(e_id, sizeof(e_id), "RG_MEETING_ID=%s", id);
	snprintf(e_tok, sizeof(e_tok), "RG_HOST_TOKEN=%s", B.host_token);
	st = bth_run("waiting", bth_env("alice", link, code, room, more));
	bth_expect_steps("waiting", st, steps);
	/* The token names the admission the host decided on. */
	p = strstr(B.out, "# jti ");
	assert_non_null(p);
	snprintf(jti, sizeof(jti), "%.36s", p + 6);
	assert_int_equal(ath_pg_count(B.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "id::text = $1 AND identity = 'alice' "
	                              "AND state = 'admitted' AND decided_by "
	                              "IS NOT NULL",
	                              jti),
	                 1);
	assert_string_equal(bth_audit_reasons(id), "allow:waiting");
}

/* b signs in (scripted, curl) and joins a waiting-room meeting: 202. */
static void
wait_in(struct sth_browser *b, const char *user, const char *link,
        const char *code)
{
	struct sth_resp r;
	char path[128], body[64];

	sth_browser_init(b);
	sth_sign_in(b, B.base, B.idp_base, user);
	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	if (ath_req(B.base, b, "POST", path, NULL, body, &r) != 202)
		fail_msg("%s joins: %ld %s", user, r.status, r.body);
	sth_resp_free(&r);
}

/* GET /v1/join/{link}/status as b: the status, "token" present or not. */
static long
status_of(struct sth_browser *b, const char *link, int *has_token)
{
	struct sth_resp r;
	char path[160];
	json_t *o;
	long st;

	snprintf(path, sizeof(path), "/v1/join/%s/status", link);
	st = ath_req(B.base, b, "GET", path, NULL, NULL, &r);
	o = json_loads(r.body, 0, NULL);
	sth_resp_free(&r);
	*has_token = o != NULL &&
	             json_string_length(json_object_get(o, "token")) > 0;
	json_decref(o);
	return st;
}

static void
host_page_admits_and_denies(void **state)
{
	char link[80], code[16], id[40], e_id[80];
	const char *more[] = {e_id, "RG_ADMIT=bob", "RG_DENY=carol", NULL};
	int st, tok;
	static const char *const steps[] = {
	    "the host page sends the host to sign in, and back",
	    "the page lists both people waiting and refreshes itself",
	    "Admit lets the first person in",
	    "Deny turns the second person away and the list empties",
	    NULL};

	(void)state;
	ath_new_meeting(B.base, B.host_token, BTH_ALLOWED, "Browser host page",
	                1, link, code, id);
	wait_in(&P.bob, "bob", link, code);
	wait_in(&P.carol, "carol", link, code);
	snprintf(e_id, sizeof(e_id), "RG_MEETING_ID=%s", id);
	st = bth_run("host", bth_env("alice", link, code, NULL, more));
	bth_expect_steps("host", st, steps);
	/* Both decisions are on record as alice's, through her session. */
	assert_string_equal(bth_value("SELECT string_agg(identity || ' ' || "
	                              "state || ' ' || coalesce(decided_by, "
	                              "'-'), ', ' ORDER BY identity) FROM "
	                              "admissions WHERE meeting_id = $1::uuid",
	                              id),
	                    "bob admitted alice, carol host_denied alice");
	/* bob picks up his join token; carol is told no. */
	assert_int_equal(status_of(&P.bob, link, &tok), 200);
	assert_true(tok);
	assert_int_equal(status_of(&P.carol, link, &tok), 403);
	assert_false(tok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lockout_page_after_five_failures),
	    cmocka_unit_test(waiting_room_until_the_host_admits),
	    cmocka_unit_test(host_page_admits_and_denies),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
