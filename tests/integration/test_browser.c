/*
 * Integration, real browser (see browser_th.h): headless Chromium against
 * the test IdP and roomgate -- the lockout page after five failures (even
 * the right code refused afterwards, nothing reaches the platform), and the
 * waiting room (the participant's page waits and refreshes itself, the host
 * admits over the API, the page lands on the platform with a token that
 * names that admission). This node signs join tokens RS256, so the
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lockout_page_after_five_failures),
	    cmocka_unit_test(waiting_room_until_the_host_admits),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
