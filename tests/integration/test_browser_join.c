/*
 * Integration, real browser (see browser_th.h): the join flow in headless
 * Chromium -- sign in at the test IdP, a wrong code shows "invalid code",
 * seven digits of an eight-digit code show the leading-zero hint, the right
 * code lands on the platform URL with a join token the scenario verifies
 * (HS256 signature and claims), then ldapmodify takes the person out of the
 * group and the next attempt gets the not-on-the-list page. Afterwards the
 * token's jti and every attempt's audit record are checked in PostgreSQL.
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

#define CAROL_DN "uid=carol,ou=people,dc=example,dc=com"

static const char carol_out[] = "dn: " BTH_ALLOWED "\nchangetype: modify\n"
                                "delete: member\nmember: " CAROL_DN "\n";
static const char carol_back[] = "dn: " BTH_ALLOWED "\nchangetype: modify\n"
                                 "add: member\nmember: " CAROL_DN "\n";

static int
setup(void **state)
{
	(void)state;
	bth_setup("browser-join", 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	/* Whatever a failed test left out comes back (adding a member who
	 * is there already fails, harmlessly). */
	(void)ath_ldap_admin_try(carol_back);
	bth_teardown();
	return 0;
}

static void
join_flow_until_removed_from_the_group(void **state)
{
	char link[80], code[16], id[40], room[300], ldif_env[600], jti[40];
	const char *more[2] = {ldif_env, NULL}, *p;
	int st;
	static const char *const steps[] = {
	    "the stand-in platform listens",
	    "Chromium starts with a fresh profile",
	    "the join page sends us to the IdP, and back to the code form "
	    "after sign-in",
	    "a wrong code shows \"invalid code\" and the form again",
	    "seven digits of an eight-digit code show the leading-zero hint",
	    "the right code lands on the platform URL with a token that "
	    "verifies",
	    "ldapmodify takes the person out of the allowed group",
	    "the next attempt is refused with the not-on-the-list page",
	    NULL};

	(void)state;
	ath_new_meeting(B.base, B.host_token, BTH_ALLOWED, "Browser stand-up",
	                0, link, code, id);
	snprintf(room, sizeof(room), "%s",
	         bth_value("SELECT platform_room FROM meetings WHERE id = $1",
	                   id));
	assert_true(room[0] != '\0');
	snprintf(ldif_env, sizeof(ldif_env), "RG_LDIF_REMOVE=%s",
	         th_write_file("browser-carol-out.ldif", carol_out));
	st = bth_run("join", bth_env("carol", link, code, room, more));
	bth_expect_steps("join", st, steps);

	/* The token's jti is carol's admission to this meeting, the only
	 * one. */
	p = strstr(B.out, "# jti ");
	assert_non_null(p);
	snprintf(jti, sizeof(jti), "%.36s", p + 6);
	assert_int_equal(ath_pg_count(B.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "id::text = $1 AND identity = 'carol' "
	                              "AND state = 'admitted'",
	                              jti),
	                 1);
	assert_int_equal(ath_pg_count(B.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 1);
	/* Every attempt the browser made, recorded in order. */
	assert_string_equal(bth_audit_reasons(id),
	                    "deny:invalid_code deny:malformed "
	                    "allow:admitted deny:not_member");
	/* Back in the group for the other tests. */
	ath_ldap_admin(carol_back);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(join_flow_until_removed_from_the_group),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
