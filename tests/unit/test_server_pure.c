/* Unit tests: routing table, bounded buffer, server key files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/admit.h"
#include "server/server.h"

static void
routes_match_exact_paths(void **state)
{
	char allow[64];
	int route = -1;

	(void)state;
	assert_int_equal(gate_route_lookup("GET", "/healthz", &route, allow,
					   sizeof(allow)),
			 GATE_ROUTE_OK);
	assert_string_equal(gate_route_name(route), "/healthz");
	assert_int_equal(gate_route_lookup("HEAD", "/readyz", &route, allow,
					   sizeof(allow)),
			 GATE_ROUTE_OK);
	assert_string_equal(gate_route_name(route), "/readyz");
}

static void
unknown_paths_are_404(void **state)
{
	static const char *const paths[] = {"/", "/healthz/", "/healthzx",
					    "/healthz%00", "//healthz", "",
					    "/HEALTHZ", "/metrics/x"};
	char allow[64];
	int route;

	(void)state;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		assert_int_equal(gate_route_lookup("GET", paths[i], &route,
						   allow, sizeof(allow)),
				 GATE_ROUTE_NOT_FOUND);
		assert_string_equal(gate_route_name(route), "unmatched");
	}
}

static void
wrong_method_is_405_with_allow(void **state)
{
	char allow[64];
	int route;

	(void)state;
	assert_int_equal(gate_route_lookup("POST", "/healthz", &route, allow,
					   sizeof(allow)),
			 GATE_ROUTE_BAD_METHOD);
	assert_string_equal(allow, "GET, HEAD");
	assert_int_equal(gate_route_lookup("TRACE", "/metrics", &route, allow,
					   sizeof(allow)),
			 GATE_ROUTE_BAD_METHOD);
}

static void
buffer_enforces_its_maximum(void **state)
{
	struct gate_buf b;
	size_t len;
	char *p;

	(void)state;
	gate_buf_init(&b, 10);
	assert_int_equal(gate_buf_add(&b, "12345", 5), 0);
	assert_int_equal(gate_buf_printf(&b, "%d", 6789), 0);
	assert_int_equal(b.len, 9);
	assert_int_equal(gate_buf_add(&b, "ab", 2), -1);
	/* sticky: a later small append fails too, and take() gives NULL */
	assert_int_equal(gate_buf_add(&b, "a", 1), -1);
	assert_null(gate_buf_take(&b, &len));

	gate_buf_init(&b, 1000);
	for (int i = 0; i < 100; i++)
		assert_int_equal(gate_buf_printf(&b, "%03d,", i), 0);
	p = gate_buf_take(&b, &len);
	assert_non_null(p);
	assert_int_equal(len, 400);
	assert_memory_equal(p + 396, "099,", 4);
	free(p);
}

static void
keys_roundtrip_and_are_protected(void **state)
{
	char dir[] = "/tmp/rgkeys.XXXXXX", path[128], err[512], cmd[160];
	struct gate_keys *k = NULL, *k2 = NULL;
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/server.keys", dir);
	assert_int_equal(gate_keys_generate(path, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* never overwritten */
	assert_int_not_equal(gate_keys_generate(path, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "refusing to overwrite"));

	assert_int_equal(gate_keys_load(path, &k, err, sizeof(err)), 0);
	assert_int_equal(strlen(k->key_id), 16);
	/* distinct random keys */
	assert_memory_not_equal(k->code_hmac, k->code_seal, GATE_KEY_LEN);
	assert_int_equal(gate_keys_load(path, &k2, err, sizeof(err)), 0);
	assert_memory_equal(k->code_hmac, k2->code_hmac, GATE_KEY_LEN);
	gate_keys_free(k);
	gate_keys_free(k2);

	/* readable by others: refused, with the fix in the message */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_not_equal(gate_keys_load(path, &k, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(k);

	/* corrupt file: refused */
	assert_int_equal(chmod(path, 0600), 0);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs("{\"format\":\"roomgate-keys-v1\",\"key_id\":"
		      "\"0123456789abcdef\",\"keys\":{\"code_hmac\":\"c2hvcnQ=\"}}",
		      f);
		fclose(f);
	}
	assert_int_not_equal(gate_keys_load(path, &k, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "code_hmac"));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0); /* NOLINT(cert-env33-c): a fixed rm -rf of the test's own mkdtemp dir */
}

/* Token claims are cut on a UTF-8 character boundary. */
static void
utf8_prefix_ends_on_a_character(void **state)
{
	static const char euro3[] = "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac";

	(void)state;
	assert_int_equal(gate_utf8_prefix("abc", 10), 3);
	assert_int_equal(gate_utf8_prefix("abcdef", 4), 4);
	assert_int_equal(gate_utf8_prefix(euro3, 9), 9);
	assert_int_equal(gate_utf8_prefix(euro3, 8), 6);
	assert_int_equal(gate_utf8_prefix(euro3, 7), 6);
	assert_int_equal(gate_utf8_prefix(euro3, 6), 6);
	assert_int_equal(gate_utf8_prefix(euro3, 2), 0);
	assert_int_equal(gate_utf8_prefix("a\xc3\xa9", 2), 1);
	assert_int_equal(gate_utf8_prefix("", 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(utf8_prefix_ends_on_a_character),
		cmocka_unit_test(routes_match_exact_paths),
		cmocka_unit_test(unknown_paths_are_404),
		cmocka_unit_test(wrong_method_is_405_with_allow),
		cmocka_unit_test(buffer_enforces_its_maximum),
		cmocka_unit_test(keys_roundtrip_and_are_protected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
