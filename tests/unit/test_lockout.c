/* Unit tests: lockout durations (doubling, cap) and the source address an
 * attempt counts against (X-Forwarded-For only from trusted proxies). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "server/admit.h"

static void
lock_doubles_up_to_the_cap(void **state)
{
	struct gate_lockout_policy p = {.lock_s = 900, .lock_max_s = 86400};

	(void)state;
	assert_int_equal(gate_lockout_duration(&p, 1), 900);
	assert_int_equal(gate_lockout_duration(&p, 0), 900);
	assert_int_equal(gate_lockout_duration(&p, 2), 1800);
	assert_int_equal(gate_lockout_duration(&p, 3), 3600);
	assert_int_equal(gate_lockout_duration(&p, 7), 57600);
	assert_int_equal(gate_lockout_duration(&p, 8), 86400);
	assert_int_equal(gate_lockout_duration(&p, 1000000), 86400);
	p.lock_s = 0;
	assert_int_equal(gate_lockout_duration(&p, 3), 0);
}

static void
check_addr(const char *peer, const char *xff, const char *trusted,
           const char *want)
{
	char out[64];

	assert_int_equal(
	    gate_lockout_source_addr(peer, xff, trusted, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void
peer_is_the_client_without_trusted_proxy(void **state)
{
	(void)state;
	check_addr("192.0.2.7", NULL, NULL, "192.0.2.7");
	/* A client that sends its own X-Forwarded-For is ignored. */
	check_addr("192.0.2.7", "10.9.9.9", NULL, "192.0.2.7");
	check_addr("192.0.2.7", "10.9.9.9", "127.0.0.1", "192.0.2.7");
	check_addr("2001:db8::0:1", NULL, "", "2001:db8::1");
}

static void
trusted_proxy_forwards_the_client(void **state)
{
	(void)state;
	check_addr("127.0.0.1", "198.51.100.4", "127.0.0.1", "198.51.100.4");
	check_addr("127.0.0.1", " 198.51.100.4 ", "::1 127.0.0.1",
	           "198.51.100.4");
	/* Spoofed entries on the left are not believed: the first hop our
	 * proxies did not add is the client. */
	check_addr("127.0.0.1", "6.6.6.6, 198.51.100.4, 10.0.0.2",
	           "127.0.0.1 10.0.0.2", "198.51.100.4");
	/* No header: the proxy itself. */
	check_addr("127.0.0.1", NULL, "127.0.0.1", "127.0.0.1");
	/* A malformed hop: nothing left of it is trusted. */
	check_addr("127.0.0.1", "198.51.100.4, bogus", "127.0.0.1",
	           "127.0.0.1");
	check_addr("127.0.0.1", "", "127.0.0.1", "127.0.0.1");
	/* Every hop is a proxy of ours: the leftmost. */
	check_addr("127.0.0.1", "10.0.0.3, 10.0.0.2",
	           "127.0.0.1 10.0.0.2,"
	           "10.0.0.3",
	           "10.0.0.3");
	check_addr("::1", "2001:db8::5", "::1", "2001:db8::5");
}

static void
bad_peer_is_an_error(void **state)
{
	char out[64];

	(void)state;
	assert_int_not_equal(
	    gate_lockout_source_addr("nope", NULL, NULL, out, sizeof(out)), 0);
	assert_int_not_equal(
	    gate_lockout_source_addr(NULL, NULL, NULL, out, sizeof(out)), 0);
	assert_int_not_equal(
	    gate_lockout_source_addr("2001:db8::1", NULL, NULL, out, 4), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lock_doubles_up_to_the_cap),
	    cmocka_unit_test(peer_is_the_client_without_trusted_proxy),
	    cmocka_unit_test(trusted_proxy_forwards_the_client),
	    cmocka_unit_test(bad_peer_is_an_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
