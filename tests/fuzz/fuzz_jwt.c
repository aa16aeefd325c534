/*
 * libFuzzer target: join tokens (server/jwt.c) -- verification of
 * untrusted tokens and minting from untrusted claim values.
 *
 * The keys are made when the fuzzer starts (none is committed): a random
 * 32-byte HS256 secret and a fresh 2048-bit RSA key for RS256.
 *
 * Input byte 0 picks the mode:
 *  - even: the rest is a token. It must be refused under both key sets:
 *    the fuzzer does not know the keys, so any acceptance is a forgery
 *    (an alg confusion, a signature check skipped, a parser that reads
 *    past a part...).
 *  - odd: the rest is claims, "iss\naud\nsub\nroom\njti\nuser id\nname\n
 *    email", with nbf/exp from bytes 1-2. A minted token must be three
 *    base64url parts, verify under its own key set at any time in
 *    [nbf, exp) and not outside it, never under the other key set, and
 *    carry room, sub, jti and the user back unchanged. Bit 1 of byte 0
 *    also mints with RS256 (slower: an RSA signature per input).
 * Also renders the redirect URL template with the room and token.
 * Run: build/fuzz/fuzz_jwt tests/fuzz/corpus/jwt
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "server/admit.h"
#include "server/jwt.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1893456000 /* 2030-01-01 */

static struct gate_jwt_keys *hs, *rs;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	unsigned char secret[32];
	char err[256];
	EVP_PKEY *pk;

	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	randombytes_buf(secret, sizeof(secret));
	pk = EVP_RSA_gen(2048);
	if (pk == NULL ||
	    gate_jwt_keys_hs256(secret, sizeof(secret), &hs, err,
	                        sizeof(err)) != 0 ||
	    gate_jwt_keys_rs256(pk, NULL, 0, &rs, err, sizeof(err)) != 0)
		abort();
	EVP_PKEY_free(pk);
	sodium_memzero(secret, sizeof(secret));
	return 0;
}

static void
must_refuse(const char *token, int64_t now)
{
	json_t *claims = NULL;
	char err[256];

	err[0] = '\0';
	if (gate_jwt_verify(hs, token, now, &claims, err, sizeof(err)) == 0 ||
	    claims != NULL || err[0] == '\0')
		abort();
	err[0] = '\0';
	if (gate_jwt_verify(rs, token, now, &claims, err, sizeof(err)) == 0 ||
	    claims != NULL || err[0] == '\0')
		abort();
}

static const char *
str_at(json_t *o, const char *k1, const char *k2, const char *k3)
{
	json_t *v = json_object_get(o, k1);

	if (k2 != NULL)
		v = json_object_get(v, k2);
	if (k3 != NULL)
		v = json_object_get(v, k3);
	return json_string_value(v);
}

static void
check_same(const char *got, const char *want)
{
	if (want == NULL)
		return;
	if (got == NULL || strcmp(got, want) != 0)
		abort();
}

static void
roundtrip(const struct gate_jwt_keys *ks, const struct gate_jwt_keys *other,
          const struct gate_jwt_claims *c)
{
	char err[256], *tok = NULL, *url = NULL;
	json_t *claims = NULL;
	int dots = 0;

	err[0] = '\0';
	if (gate_jwt_mint(ks, c, &tok, err, sizeof(err)) != 0) {
		if (tok != NULL || err[0] == '\0')
			abort();
		return;
	}
	for (const char *p = tok; *p != '\0'; p++) {
		if (*p == '.')
			dots++;
		else if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
		                "tuvwxyz0123456789-_",
		                *p) == NULL)
			abort();
	}
	if (dots != 2)
		abort();
	if (gate_jwt_verify(ks, tok, c->nbf, &claims, err, sizeof(err)) != 0 ||
	    claims == NULL)
		abort();
	check_same(str_at(claims, "room", NULL, NULL), c->room);
	check_same(str_at(claims, "sub", NULL, NULL), c->sub);
	check_same(str_at(claims, "jti", NULL, NULL), c->jti);
	check_same(str_at(claims, "context", "user", "id"), c->user_id);
	check_same(str_at(claims, "context", "user", "name"), c->user_name);
	check_same(str_at(claims, "context", "user", "email"), c->user_email);
	json_decref(claims);
	claims = NULL;
	if (gate_jwt_verify(ks, tok, c->exp - 1, &claims, err, sizeof(err)) !=
	        0)
		abort();
	json_decref(claims);
	claims = NULL;
	if (gate_jwt_verify(ks, tok, c->exp, &claims, err, sizeof(err)) == 0 ||
	    gate_jwt_verify(ks, tok, c->nbf - 1, &claims, err, sizeof(err)) ==
	        0 ||
	    gate_jwt_verify(other, tok, c->nbf, &claims, err, sizeof(err)) ==
	        0)
		abort();
	/* The room may hold anything; the URL gets it percent-encoded. */
	if (gate_admit_render_url("https://meet.example/{room}?jwt={token}",
	                          c->room, tok, 16384, &url, err,
	                          sizeof(err)) == 0) {
		for (const char *p = url; *p != '\0'; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
			    *p == '"' || *p == '<' || *p == '>')
				abort();
		free(url);
	}
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gate_jwt_claims c;
	const char *f[8];
	char *buf, *p;
	size_t nf = 0;

	if (size < 3)
		return 0;
	buf = malloc(size - 2);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 3, size - 3);
	buf[size - 3] = '\0';
	if ((data[0] & 1) == 0) {
		must_refuse(buf, NOW);
		must_refuse(buf, 0);
		free(buf);
		return 0;
	}
	memset(f, 0, sizeof(f));
	for (p = buf; nf < 8 && p != NULL;) {
		char *nl = strchr(p, '\n');

		f[nf++] = p;
		if (nl != NULL)
			*nl++ = '\0';
		p = nl;
	}
	memset(&c, 0, sizeof(c));
	c.iss = f[0];
	c.aud = f[1];
	c.sub = f[2];
	c.room = f[3];
	c.jti = f[4];
	c.user_id = f[5];
	c.user_name = f[6];
	c.user_email = f[7];
	c.nbf = NOW - 60 + data[1];
	c.exp = c.nbf + 1 + data[2];
	roundtrip(hs, rs, &c);
	if (data[0] & 2)
		roundtrip(rs, hs, &c);
	free(buf);
	return 0;
}
