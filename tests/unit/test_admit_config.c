/* Unit tests: the [admission] and [tokens] configuration keys (defaults,
 * the shared secret from a file, refusals). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"

static char dir[] = "/tmp/rgadmcfg.XXXXXX";
static char *const no_env[] = {NULL};

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1; /* NOLINT(cert-env33-c): a fixed rm -rf of the test's own mkdtemp dir */
}

static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
defaults(void **state)
{
	struct gate_config c;
	char err[512];

	(void)state;
	assert_int_equal(gate_config_load(&c, NULL, no_env, err, sizeof(err)),
	                 0);
	assert_int_equal(c.adm_max_failures, 5);
	assert_int_equal(c.adm_window_s, 900);
	assert_int_equal(c.adm_lock_s, 900);
	assert_int_equal(c.adm_lock_max_s, 86400);
	assert_int_equal(c.adm_src_max_failures, 100);
	assert_int_equal(c.adm_probe_identities, 10);
	assert_int_equal(c.tok_ttl_s, 120);
	assert_string_equal(c.tok_issuer, "roomgate");
	assert_string_equal(c.tok_audience, "jitsi");
	assert_null(c.tok_hs256_secret);
	assert_null(c.adm_redirect_url);
	gate_config_free(&c);
}

static void
secret_from_file(void **state)
{
	struct gate_config c;
	char err[512], ini[600];
	const char *sec = write_file("app_secret", "s3cret-for-jitsi-0123456789abcdef\n");

	(void)state;
	snprintf(ini, sizeof(ini),
	         "[tokens]\nhs256_secret_file = %s\nttl = 60\n"
	         "[admission]\nmax_failures = 3\ntrusted_proxies = 127.0.0.1 "
	         "::1\nredirect_url = https://m/{room}?jwt={token}\n",
	         sec);
	assert_int_equal(gate_config_load(&c, write_file("a.ini", ini), no_env,
	                                  err, sizeof(err)),
	                 0);
	assert_string_equal(c.tok_hs256_secret,
	                    "s3cret-for-jitsi-0123456789abcdef");
	assert_int_equal(c.tok_ttl_s, 60);
	assert_int_equal(c.adm_max_failures, 3);
	assert_string_equal(c.adm_trusted_proxies, "127.0.0.1 ::1");
	gate_config_free(&c);
}

static void
refusals_name_the_key(void **state)
{
	struct gate_config c;
	char err[512], ini[600];
	const char *sec = write_file("s2", "x\n");

	(void)state;
	snprintf(ini, sizeof(ini),
	         "[tokens]\nhs256_secret = a\nhs256_secret_file = %s\n", sec);
	assert_int_not_equal(gate_config_load(&c, write_file("b.ini", ini),
	                                      no_env, err, sizeof(err)),
	                     0);
	assert_non_null(strstr(err, "[tokens] hs256_secret and "
	                            "hs256_secret_file are both set"));
	assert_int_not_equal(
	    gate_config_load(&c,
	                     write_file("c.ini", "[tokens]\nhs256_secret_"
	                                         "file = /nonexistent/x\n"),
	                     no_env, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "[tokens] hs256_secret_file: cannot "
	                            "read /nonexistent/x"));
	assert_int_not_equal(
	    gate_config_load(&c, write_file("d.ini", "[tokens]\nttl = 5\n"),
	                     no_env, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "ttl"));
	/* A guessable join-token secret is refused. */
	assert_int_not_equal(
	    gate_config_load(&c,
	                     write_file("f.ini", "[tokens]\nhs256_secret = "
	                                         "only-31-bytes-0123456789abcdefg\n"),
	                     no_env, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "at least 32 bytes"));
	assert_int_not_equal(
	    gate_config_load(&c,
	                     write_file("e.ini", "[admission]\nmax_"
	                                         "failures = 0\n"),
	                     no_env, err, sizeof(err)),
	    0);
	assert_non_null(strstr(err, "max_failures"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults),
	    cmocka_unit_test(secret_from_file),
	    cmocka_unit_test(refusals_name_the_key),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
