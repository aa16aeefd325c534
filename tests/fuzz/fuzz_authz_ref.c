/*
 * libFuzzer target: gate_authz_ref(), the parsing of a forward-auth
 * request's meeting from proxy headers (X-Roomgate-Meeting and the
 * original URI). Input: "<meeting header>\n<uri>"; an empty part means
 * the header is absent. Checks the contract, not just absence of crashes:
 * an accepted reference is 1-64 id characters and, with a URI, one of the
 * URI's path segments.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/authz_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
is_segment(const char *uri, const char *ref)
{
	size_t plen = strcspn(uri, "?#"), rn = strlen(ref);

	for (size_t i = 0; i < plen; i++)
		if (uri[i] == '/' && i + 1 + rn <= plen &&
		    memcmp(uri + i + 1, ref, rn) == 0 &&
		    (i + 1 + rn == plen || uri[i + 1 + rn] == '/'))
			return 1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *nl, *hdr, *uri;
	char ref[GATE_AUTHZ_REF_MAX + 1];
	const char *why = NULL;
	size_t n;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	nl = strchr(buf, '\n');
	hdr = buf;
	uri = NULL;
	if (nl != NULL) {
		*nl = '\0';
		uri = nl + 1;
	}
	if (gate_authz_ref(*hdr != '\0' ? hdr : NULL,
	                   uri != NULL && *uri != '\0' ? uri : NULL, ref,
	                   &why) == 0) {
		n = strlen(ref);
		if (n == 0 || n > GATE_AUTHZ_REF_MAX)
			abort();
		for (size_t i = 0; i < n; i++)
			if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"
			           "RSTUVWXYZ0123456789-_",
			           ref[i]) == NULL)
				abort();
		if (uri != NULL && *uri != '\0' && !is_segment(uri, ref))
			abort();
	} else if (why == NULL) {
		abort();
	}
	free(buf);
	return 0;
}
