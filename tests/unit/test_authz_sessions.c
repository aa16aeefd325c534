/*
 * Unit: how long the forward-auth session cache may keep an answer
 * (gate_authz_sessions_life_ms, server/authz_sessions.h): the TTL, the
 * session's and the admission's expiry and the next touch bound it, and
 * only a positive answer lives at all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "server/authz_sessions.h"

static struct db_authz_read
positive(void)
{
	struct db_authz_read f;

	memset(&f, 0, sizeof(f));
	f.have_session = f.have_meeting = f.admitted = 1;
	f.session_left_s = 3600;
	f.admission_left_s = 1e9;
	f.idle_age_s = 0;
	return f;
}

static void
ttl_bounds_a_long_lived_answer(void **state)
{
	struct db_authz_read f = positive();

	(void)state;
	assert_int_equal(gate_authz_sessions_life_ms(&f, 2000, 60), 2000);
}

static void
expiries_bound_it(void **state)
{
	struct db_authz_read f = positive();

	(void)state;
	f.session_left_s = 0.5;
	assert_int_equal(gate_authz_sessions_life_ms(&f, 2000, 60), 500);
	f = positive();
	f.admission_left_s = 1.25;
	assert_int_equal(gate_authz_sessions_life_ms(&f, 2000, 60), 1250);
	/* Already past: not stored. */
	f.admission_left_s = -1;
	assert_true(gate_authz_sessions_life_ms(&f, 2000, 60) <= 0);
}

static void
next_touch_bounds_it(void **state)
{
	struct db_authz_read f = positive();

	(void)state;
	/* Seen 2.5 s ago, touched every 3 s: half a second left. */
	f.idle_age_s = 2.5;
	assert_int_equal(gate_authz_sessions_life_ms(&f, 2000, 3), 500);
	/* Touch overdue (another node touched less recently): none. */
	f.idle_age_s = 4;
	assert_true(gate_authz_sessions_life_ms(&f, 2000, 3) <= 0);
	/* No touch interval: never stored. */
	f = positive();
	assert_true(gate_authz_sessions_life_ms(&f, 2000, 0) <= 0);
}

static void
only_positive_answers_live(void **state)
{
	struct db_authz_read f = positive();

	(void)state;
	f.admitted = 0;
	assert_true(gate_authz_sessions_life_ms(&f, 2000, 60) <= 0);
	f = positive();
	f.have_meeting = 0;
	assert_true(gate_authz_sessions_life_ms(&f, 2000, 60) <= 0);
	f = positive();
	f.have_session = 0;
	assert_true(gate_authz_sessions_life_ms(&f, 2000, 60) <= 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ttl_bounds_a_long_lived_answer),
	    cmocka_unit_test(expiries_bound_it),
	    cmocka_unit_test(next_touch_bounds_it),
	    cmocka_unit_test(only_positive_answers_live),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
