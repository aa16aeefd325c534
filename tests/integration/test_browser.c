/*
 * Integration, real browser (see browser_th.h): headless Chromium against
 * the test IdP and roomgate -- the lockout page after five failures (even
 * the right code refused afterwards, nothing reaches the platform). The
 * join flow itself is test_browser_join.c.
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
	bth_setup("browser");
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lockout_page_after_five_failures),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
