/*
 * Generated access codes: every digit from libsodium's CSPRNG, uniform over
 * 0-9 (randombytes_uniform rejects the biased tail, so no modulo bias), and
 * a whole code redrawn until it passes the strength policy -- a generated
 * code must never be one a host would be told is weak.
 */
#include <string.h>

#include <sodium.h>

#include "server/codes.h"

/* Far more than needed: at 6 digits about one draw in eight fails the
 * full policy, at 8 digits about one in fifty. */
#define GEN_MAX_DRAWS 10000

int
gate_code_generate(const struct gate_code_policy *p, int length, char *out,
                   size_t outlen)
{
	struct gate_code_policy gp;
	struct gate_code_verdict v;
	int r = -1;

	if (length < GATE_CODE_MIN_LEN || length > GATE_CODE_MAX_LEN ||
	    outlen < (size_t)length + 1)
		return -1;
	gp = *p;
	gp.min_length = length;
	gp.max_length = length;
	for (int draw = 0; draw < GEN_MAX_DRAWS; draw++) {
		for (int i = 0; i < length; i++)
			out[i] = (char)('0' + randombytes_uniform(10));
		out[length] = '\0';
		if (gate_code_check(&gp, out, (size_t)length, &v) == 0) {
			r = 0;
			break;
		}
	}
	/* The verdict quotes the code. */
	sodium_memzero(&v, sizeof(v));
	if (r != 0)
		sodium_memzero(out, outlen);
	return r;
}
