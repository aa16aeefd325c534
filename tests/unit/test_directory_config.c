/*
 * Unit tests for directory/: configuration checks (no server needed: every
 * case fails before anything connects), error formatting, the password
 * scrubber and the reconnect backoff.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "directory/dir_int.h"
#include "directory/directory.h"

#define PW "Unit-Secret-pw-4711"

static struct dir_config
good_cfg(void)
{
	struct dir_config c;

	memset(&c, 0, sizeof(c));
	c.uris = "ldap://127.0.0.1:1";
	c.bind_dn = "cn=roomgate,ou=services,dc=example,dc=com";
	c.bind_password = PW;
	c.tls = DIR_TLS_NONE;
	c.network_timeout_ms = 1000;
	c.op_timeout_ms = 1000;
	c.pool_size = 2;
	c.acquire_timeout_ms = 100;
	c.base_dn = "dc=example,dc=com";
	return c;
}

/* Expects DIR_EINVAL from both entry points, a message holding `needle`
 * and never the password; a failed open leaves no pool behind. */
static void
expect_einval(const struct dir_config *c, const char *needle)
{
	char err[1024];
	struct dir_pool *p = (struct dir_pool *)0x1;

	memset(err, 'x', sizeof(err));
	assert_int_equal(dir_pool_open(c, &p, err, sizeof(err)), DIR_EINVAL);
	assert_null(p);
	if (strstr(err, needle) == NULL)
		fail_msg("message '%s' lacks '%s'", err, needle);
	assert_null(strstr(err, PW));

	memset(err, 'x', sizeof(err));
	assert_int_equal(dir_check_bind(c, err, sizeof(err)), DIR_EINVAL);
	if (strstr(err, needle) == NULL)
		fail_msg("message '%s' lacks '%s'", err, needle);
}

static void
test_uri_checks(void **state)
{
	struct dir_config c = good_cfg();

	(void)state;
	c.uris = NULL;
	expect_einval(&c, "ldap.uri is empty");
	c.uris = "";
	expect_einval(&c, "ldap.uri is empty");
	c.uris = "   \t ";
	expect_einval(&c, "ldap.uri is empty");
	c.uris = "http://ldap.example.com";
	expect_einval(&c, "ldap:// or ldaps://");
	c.uris = "ldap:///";
	expect_einval(&c, "names no host");
	c.uris = "ldap://a.example.com,ldap://b.example.com";
	expect_einval(&c, "separate several URIs with spaces");
	c.uris = "ldap://a.example.com ldapi://%2Fsock";
	expect_einval(&c, "ldapi://%2Fsock");
}

static void
test_tls_mode_vs_scheme(void **state)
{
	struct dir_config c = good_cfg();

	(void)state;
	c.tls = DIR_TLS_STARTTLS;
	c.uris = "ldaps://ldap.example.com";
	expect_einval(&c, "StartTLS is for ldap:// URIs");
	/* One ldaps:// among ldap:// URIs is enough to refuse. */
	c.uris = "ldap://a.example.com ldaps://b.example.com";
	expect_einval(&c, "ldaps://b.example.com");
	c.tls = DIR_TLS_LDAPS;
	c.uris = "ldap://ldap.example.com";
	expect_einval(&c, "clear-text ldap:// URI");
	c.tls = (enum dir_tls_mode)42;
	c.uris = "ldap://ldap.example.com";
	expect_einval(&c, "ldap.tls");
}

static void
test_credentials_and_dns(void **state)
{
	struct dir_config c = good_cfg();
	char big[DIR_MAX_PASSWORD_LEN + 2];

	(void)state;
	c.bind_dn = "";
	expect_einval(&c, "ldap.bind_dn is empty");
	c = good_cfg();
	c.bind_password = "";
	expect_einval(&c, "ldap.bind_password is empty");
	c.bind_password = NULL;
	expect_einval(&c, "ldap.bind_password is empty");
	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	c.bind_password = big;
	expect_einval(&c, "ldap.bind_password is longer");
	c = good_cfg();
	c.base_dn = "not a dn";
	expect_einval(&c, "ldap.base_dn 'not a dn' is not a valid DN");
}

static void
test_numbers(void **state)
{
	struct dir_config c = good_cfg();
	char err[512];

	(void)state;
	c.network_timeout_ms = 0;
	expect_einval(&c, "ldap.network_timeout_ms");
	c = good_cfg();
	c.op_timeout_ms = -5;
	expect_einval(&c, "ldap.op_timeout_ms");
	c = good_cfg();
	c.op_timeout_ms = DIR_MAX_TIMEOUT_MS + 1;
	expect_einval(&c, "ldap.op_timeout_ms");

	/* Pool settings matter to the pool only. */
	c = good_cfg();
	c.pool_size = 0;
	{
		struct dir_pool *p = NULL;

		assert_int_equal(dir_pool_open(&c, &p, err, sizeof(err)),
		                 DIR_EINVAL);
		assert_null(p);
		assert_non_null(strstr(err, "ldap.pool_size"));
		c.pool_size = 2;
		c.acquire_timeout_ms = -1;
		assert_int_equal(dir_pool_open(&c, &p, err, sizeof(err)),
		                 DIR_EINVAL);
		assert_non_null(strstr(err, "ldap.acquire_timeout_ms"));
	}
}

static void
test_ca_file_checks(void **state)
{
	struct dir_config c = good_cfg();
	char path[] = "/tmp/rg-dir-unit-XXXXXX";
	int fd;

	(void)state;
	c.tls = DIR_TLS_LDAPS;
	c.uris = "ldaps://ldap.example.com";
	c.ca_file = "/nonexistent/roomgate/ca.pem";
	expect_einval(&c, "No such file or directory");
	c.ca_file = "/tmp";
	expect_einval(&c, "not a regular file");

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not a certificate\n", 18), 18);
	close(fd);
	c.ca_file = path;
	expect_einval(&c, "holds no PEM certificate");

	/* Looks like PEM, is not a certificate. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	{
		static const char fake[] = "-----BEGIN CERTIFICATE-----\n"
		                           "bm90IGEgY2VydGlmaWNhdGU=\n"
		                           "-----END CERTIFICATE-----\n";

		assert_int_equal(write(fd, fake, sizeof(fake) - 1),
		                 (ssize_t)sizeof(fake) - 1);
	}
	close(fd);
	expect_einval(&c, "could not be loaded as CA certificates");
	unlink(path);
}

static void
test_pool_open_is_lazy(void **state)
{
	struct dir_config c = good_cfg();
	struct dir_pool_stats st;
	struct dir_pool *p = NULL;
	char err[256];

	(void)state;
	/* Nothing listens on port 1: opening must not care. */
	assert_int_equal(dir_pool_open(&c, &p, err, sizeof(err)), 0);
	assert_non_null(p);
	assert_string_equal(err, "");
	dir_pool_get_stats(p, &st);
	assert_int_equal(st.size, 2);
	assert_int_equal(st.connected, 0);
	assert_int_equal(st.connects, 0);
	assert_int_equal(st.in_use, 0);
	dir_pool_close(p);
	dir_pool_close(NULL);
	dir_pool_get_stats(NULL, &st);
	assert_int_equal(st.size, 0);
}

static void
test_errf_truncates_visibly(void **state)
{
	char small[12];

	(void)state;
	dir_errf(small, sizeof(small), "%s", "0123456789abcdef");
	assert_string_equal(small, "01234567...");
	dir_errf(small, sizeof(small), "ab");
	dir_errcat(small, sizeof(small), "%s", "cd");
	assert_string_equal(small, "abcd");
	dir_errcat(small, sizeof(small), "%s", "efghijklmnop");
	assert_string_equal(small, "abcdefgh...");
	dir_errf(NULL, 0, "nothing");
}

static void
test_scrub(void **state)
{
	char m[128];

	(void)state;
	dir_errf(m, sizeof(m), "bind with %s failed, %s again", PW, PW);
	dir_err_scrub(m, PW, strlen(PW));
	assert_string_equal(m, "bind with **** failed, **** again");
	/* A secret that looks like the mask must not loop forever. */
	dir_errf(m, sizeof(m), "a**b**");
	dir_err_scrub(m, "**", 2);
	assert_string_equal(m, "a**b**");
	dir_errf(m, sizeof(m), "abc");
	dir_err_scrub(m, "abc", 3);
	assert_string_equal(m, "***");
}

static void
test_printable(void **state)
{
	char m[32];

	(void)state;
	dir_errf(m, sizeof(m), "a\nb\rc\033[31md\x7f");
	dir_printable(m);
	assert_string_equal(m, "a?b?c?[31md?");
	dir_printable(NULL);
}

static void
test_backoff(void **state)
{
	(void)state;
	assert_int_equal(dir_backoff_ms(0), 0);
	assert_int_equal(dir_backoff_ms(1), 50);
	assert_int_equal(dir_backoff_ms(2), 100);
	assert_int_equal(dir_backoff_ms(3), 200);
	assert_int_equal(dir_backoff_ms(6), 1600);
	assert_int_equal(dir_backoff_ms(7), 2000);
	assert_int_equal(dir_backoff_ms(1000), 2000);
	assert_int_equal(dir_backoff_ms(~0u), 2000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uri_checks),
	    cmocka_unit_test(test_tls_mode_vs_scheme),
	    cmocka_unit_test(test_credentials_and_dns),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_ca_file_checks),
	    cmocka_unit_test(test_pool_open_is_lazy),
	    cmocka_unit_test(test_errf_truncates_visibly),
	    cmocka_unit_test(test_scrub),
	    cmocka_unit_test(test_printable),
	    cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
