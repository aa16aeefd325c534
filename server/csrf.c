/*
 * CSRF tokens for the join form. A token is bound to the browser's session
 * (the hash of its session id) and needs no storage: any node with the
 * same server keys computes and checks it. The MAC key is derived from the
 * code HMAC key under its own label, so the two uses never share a key.
 */
#include <string.h>

#include <sodium.h>

#include "server/http_int.h"

#define CSRF_LABEL "roomgate csrf v1"

static int
csrf_mac(const struct gate_keys *keys, const unsigned char session_hash[32],
         unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
	unsigned char k[crypto_auth_hmacsha256_BYTES];
	int r = -1;

	if (keys == NULL)
		goto out;
	if (crypto_auth_hmacsha256(k, (const unsigned char *)CSRF_LABEL,
	                           strlen(CSRF_LABEL), keys->code_hmac) != 0 ||
	    crypto_auth_hmacsha256(mac, session_hash, 32, k) != 0)
		goto out;
	r = 0;
out:
	sodium_memzero(k, sizeof(k));
	return r;
}

int
gate_csrf_token(const struct gate_keys *keys,
                const unsigned char session_hash[32], char out[GATE_CSRF_HEX])
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	int r = -1;

	out[0] = '\0';
	if (csrf_mac(keys, session_hash, mac) != 0)
		goto out;
	sodium_bin2hex(out, GATE_CSRF_HEX, mac, sizeof(mac));
	r = 0;
out:
	sodium_memzero(mac, sizeof(mac));
	return r;
}

int
gate_csrf_check(const struct gate_keys *keys,
                const unsigned char session_hash[32], const char *tok,
                size_t len)
{
	char want[GATE_CSRF_HEX];
	int ok = 0;

	if (tok == NULL || len != GATE_CSRF_HEX - 1 ||
	    gate_csrf_token(keys, session_hash, want) != 0)
		goto out;
	ok = sodium_memcmp(want, tok, GATE_CSRF_HEX - 1) == 0;
out:
	sodium_memzero(want, sizeof(want));
	return ok;
}
