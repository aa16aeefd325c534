/*
 * Unit tests: gate_authz_ref(), which meeting a forward-auth request
 * names (server/authz_ref.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "server/authz_ref.h"

struct case_ {
	const char *hdr, *uri, *want; /* want NULL: refused */
};

static const struct case_ cases[] = {
    /* The header alone, the URI alone. */
    {"abcDEF_12-3", NULL, "abcDEF_12-3"},
    {"6d73e50d-b8c4-4539-b52d-b83609d4282f", NULL,
     "6d73e50d-b8c4-4539-b52d-b83609d4282f"},
    {NULL, "/j/abc", "abc"},
    {NULL, "/j/abc/", "abc"},
    {NULL, "/j/abc/app.js?x=/j/def", "abc"},
    {NULL, "/prefix/j/abc#frag", "abc"},
    /* Both: the header must be a segment of the path. */
    {"abc", "/app/abc/index.html", "abc"},
    {"abc", "/app/abc", "abc"},
    {"abc", "/app/def/", NULL},
    {"abc", "/app/abcd/", NULL},
    {"abc", "/app/x?m=/abc/", NULL},
    {"abc", "/app/x#/abc", NULL},
    /* Nothing named. */
    {NULL, NULL, NULL},
    {NULL, "/app/abc/", NULL},
    {NULL, "/j/", NULL},
    {NULL, "/jj/abc", NULL},
    {NULL, "/app/x?r=/j/abc", NULL},
    /* Malformed references. */
    {"", NULL, NULL},
    {"../x", NULL, NULL},
    {"a b", NULL, NULL},
    {"abc\xc3\xa9", NULL, NULL},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     NULL, NULL}, /* 65 */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL,
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
    /* URIs that read two ways. */
    {NULL, "/j/abc/../../j/def/", NULL},
    {NULL, "/j/abc/..", NULL},
    {NULL, "/j/abc/.", NULL},
    {NULL, "/./j/abc", NULL},
    {NULL, "/j/abc%2f..%2fx", NULL},
    {NULL, "/j/abc/%2E%2e/", NULL},
    {NULL, "/j/abc%5cx", NULL},
    {NULL, "/j\\abc", NULL},
    {"abc", "/app/abc/../def/", NULL},
    {NULL, "j/abc", NULL},
    {NULL, "", NULL},
    /* Dots inside a segment are fine. */
    {NULL, "/j/abc/.well-known/..x", "abc"},
    {NULL, "/j/abc/a..b", "abc"},
};

static void
table(void **state)
{
	char ref[GATE_AUTHZ_REF_MAX + 1];
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct case_ *c = &cases[i];
		int r;

		why = NULL;
		r = gate_authz_ref(c->hdr, c->uri, ref, &why);
		if (c->want == NULL) {
			if (r != -1 || why == NULL)
				fail_msg("case %zu (%s | %s): want refused, "
				         "got %d %s",
				         i, c->hdr ? c->hdr : "-",
				         c->uri ? c->uri : "-", r, ref);
		} else if (r != 0 || strcmp(ref, c->want) != 0) {
			fail_msg("case %zu (%s | %s): want %s, got %d %s (%s)",
			         i, c->hdr ? c->hdr : "-",
			         c->uri ? c->uri : "-", c->want, r, ref,
			         why ? why : "");
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
