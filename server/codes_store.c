/*
 * Access codes at rest: a keyed hash to check a typed code (HMAC-SHA-256,
 * bound to the meeting) and a sealed copy so the host can read the code
 * again (libsodium secretbox). Both keys live in the server key file, never
 * in the database, so a dump alone reveals nothing.
 */
#include <string.h>

#include <sodium.h>

#include "server/codes.h"

/* Versioned domain tag: a hash from any other use of the key never
 * matches a code hash. */
static const char hash_tag[] = "roomgate/code-hash/v1";

void
gate_code_hash(const unsigned char key[32], const char *meeting_id,
               const char *code, size_t len,
               unsigned char out[GATE_CODE_HASH_LEN])
{
	crypto_auth_hmacsha256_state st;
	const unsigned char zero = 0;

	crypto_auth_hmacsha256_init(&st, key, 32);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)hash_tag,
	                              sizeof(hash_tag));
	/* NUL-separated so (meeting, code) splits one way only. */
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)meeting_id,
	                              strlen(meeting_id));
	crypto_auth_hmacsha256_update(&st, &zero, 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)code, len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

int
gate_code_seal(const unsigned char key[32], const char *code, size_t len,
               unsigned char *out, size_t outsize, size_t *outlen)
{
	size_t need =
	    crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;

	if (len == 0 || len > GATE_CODE_MAX_LEN || outsize < need)
		return -1;
	randombytes_buf(out, crypto_secretbox_NONCEBYTES);
	if (crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES,
	                          (const unsigned char *)code, len, out,
	                          key) != 0)
		return -1;
	*outlen = need;
	return 0;
}

int
gate_code_unseal(const unsigned char key[32], const unsigned char *in,
                 size_t inlen, char *out, size_t outsize)
{
	size_t len;

	if (inlen <= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		return -1;
	len = inlen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	if (len > GATE_CODE_MAX_LEN || outsize < len + 1)
		return -1;
	if (crypto_secretbox_open_easy(
	        (unsigned char *)out, in + crypto_secretbox_NONCEBYTES,
	        inlen - crypto_secretbox_NONCEBYTES, in, key) != 0) {
		sodium_memzero(out, outsize);
		return -1;
	}
	out[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (out[i] < '0' || out[i] > '9') {
			sodium_memzero(out, outsize);
			return -1;
		}
	}
	return 0;
}
