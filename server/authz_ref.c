/*
 * Which meeting a forward-auth request is for (GET /v1/authz): parsing of
 * the proxy's headers, kept apart from the handler so it can be fuzzed
 * (tests/fuzz/fuzz_authz_ref.c) and unit-tested without a server.
 */
#include <string.h>

#include "server/authz_ref.h"

/* A meeting reference: uuid or link id characters only. */
static int
authz_ref_ok(const char *p, size_t n)
{
	if (n == 0 || n > GATE_AUTHZ_REF_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

/* The path of a proxied URI (up to '?' or '#'), or -1 when it could be
 * read two ways: dot segments, backslashes, or percent-encoded dots,
 * slashes or backslashes (a proxy and an app may resolve them
 * differently from us). */
static int
authz_uri_path(const char *uri, size_t *len)
{
	size_t n = strcspn(uri, "?#");

	if (n == 0 || uri[0] != '/' || memchr(uri, '\\', n) != NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (uri[i] == '%' && i + 2 < n) {
			char a = uri[i + 1], b = (char)(uri[i + 2] | 0x20);

			if ((a == '2' && (b == 'e' || b == 'f')) ||
			    (a == '5' && b == 'c'))
				return -1;
		}
		if (uri[i] == '/' && uri[i + 1] == '.' &&
		    (i + 2 >= n || uri[i + 2] == '/' ||
		     (uri[i + 2] == '.' && (i + 3 >= n || uri[i + 3] == '/'))))
			return -1;
	}
	*len = n;
	return 0;
}

/* Whether the path (len bytes) has a segment equal to ref. */
static int
authz_path_has(const char *path, size_t len, const char *ref)
{
	size_t rn = strlen(ref), i = 0;

	while (i < len) {
		size_t j = i + 1, sn;

		while (j < len && path[j] != '/')
			j++;
		sn = j - i - 1;
		if (sn == rn && memcmp(path + i + 1, ref, rn) == 0)
			return 1;
		i = j;
	}
	return 0;
}

int
gate_authz_ref(const char *meeting_hdr, const char *uri,
               char ref[GATE_AUTHZ_REF_MAX + 1], const char **why)
{
	const char *h = meeting_hdr;
	size_t n, plen = 0;

	ref[0] = '\0';
	if (uri != NULL && authz_uri_path(uri, &plen) != 0) {
		*why = "the original URI is ambiguous (dot segments or "
		       "encoded slashes)";
		return -1;
	}
	if (h != NULL) {
		n = strlen(h);
	} else {
		const char *s = NULL;

		/* The first "j" segment of the path, then the link. */
		for (size_t i = 0; uri != NULL && i + 2 < plen; i++)
			if (uri[i] == '/' && uri[i + 1] == 'j' &&
			    uri[i + 2] == '/') {
				s = uri + i + 3;
				break;
			}
		if (s == NULL) {
			*why = "the request names no meeting";
			return -1;
		}
		h = s;
		n = strcspn(h, "/?#");
	}
	if (!authz_ref_ok(h, n)) {
		*why = "the request names no meeting";
		return -1;
	}
	memcpy(ref, h, n);
	ref[n] = '\0';
	if (uri != NULL && !authz_path_has(uri, plen, ref)) {
		*why = "the meeting named is not the one in the request's path";
		ref[0] = '\0';
		return -1;
	}
	return 0;
}
