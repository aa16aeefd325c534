/* Unit tests: join tokens (sign, decode, verify, tamper; HS256 and RS256
 * with keys generated here through libcrypto, alg confusion, kid as the
 * RFC 7638 thumbprint, key files and sizes, the JWKS) and the redirect
 * URL template. */
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

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "server/admit.h"
#include "server/jwt.h"

static const unsigned char secret[] = "jitsi-app-secret-for-tests";
#define SECRET_LEN (sizeof(secret) - 1)

static struct gate_jwt_claims
sample(void)
{
	struct gate_jwt_claims c = {
	    .iss = "roomgate",
	    .aud = "jitsi",
	    .sub = "meet.example.com",
	    .room = "standup-42",
	    .jti = "7f0c1f9e-admission",
	    .user_id = "alice",
	    .user_name = "Alice Liddell",
	    .user_email = "alice@example.com",
	    .nbf = 1000,
	    .exp = 1120,
	};
	return c;
}

static char *
sign(const struct gate_jwt_claims *c)
{
	char err[160], *tok = NULL;

	assert_int_equal(
	    gate_jwt_sign_hs256(c, secret, SECRET_LEN, &tok, err, sizeof(err)),
	    0);
	assert_non_null(tok);
	return tok;
}

/* Decodes one part independently of jwt.c. */
static json_t *
decode_json(const char *s, size_t len)
{
	unsigned char buf[1024];
	size_t n;

	assert_int_equal(
	    sodium_base642bin(buf, sizeof(buf), s, len, NULL, &n, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	    0);
	return json_loadb((const char *)buf, n, 0, NULL);
}

static void
token_decodes_to_jitsi_claims(void **state)
{
	struct gate_jwt_claims c = sample();
	char *tok = sign(&c);
	const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
	json_t *h, *p, *u;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	unsigned char got[crypto_auth_hmacsha256_BYTES];
	size_t n;

	(void)state;
	assert_non_null(d1);
	assert_true(d2 > d1);
	assert_null(strchr(tok, '='));
	h = decode_json(tok, (size_t)(d1 - tok));
	assert_non_null(h);
	assert_string_equal(json_string_value(json_object_get(h, "alg")),
	                    "HS256");
	assert_string_equal(json_string_value(json_object_get(h, "typ")),
	                    "JWT");
	assert_int_equal(json_object_size(h), 2);
	p = decode_json(d1 + 1, (size_t)(d2 - d1 - 1));
	assert_non_null(p);
	assert_string_equal(json_string_value(json_object_get(p, "iss")),
	                    "roomgate");
	assert_string_equal(json_string_value(json_object_get(p, "aud")),
	                    "jitsi");
	assert_string_equal(json_string_value(json_object_get(p, "sub")),
	                    "meet.example.com");
	assert_string_equal(json_string_value(json_object_get(p, "room")),
	                    "standup-42");
	assert_string_equal(json_string_value(json_object_get(p, "jti")),
	                    "7f0c1f9e-admission");
	assert_int_equal(json_integer_value(json_object_get(p, "nbf")), 1000);
	assert_int_equal(json_integer_value(json_object_get(p, "exp")), 1120);
	u = json_object_get(json_object_get(p, "context"), "user");
	assert_string_equal(json_string_value(json_object_get(u, "id")),
	                    "alice");
	assert_string_equal(json_string_value(json_object_get(u, "name")),
	                    "Alice Liddell");
	assert_string_equal(json_string_value(json_object_get(u, "email")),
	                    "alice@example.com");
	/* The signature is HMAC-SHA-256 over "header.payload". */
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, secret, SECRET_LEN);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok,
	                              (size_t)(d2 - tok));
	crypto_auth_hmacsha256_final(&st, mac);
	assert_int_equal(sodium_base642bin(
	                     got, sizeof(got), d2 + 1, strlen(d2 + 1), NULL, &n,
	                     NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	                 0);
	assert_int_equal(n, sizeof(mac));
	assert_memory_equal(mac, got, sizeof(mac));
	json_decref(h);
	json_decref(p);
	free(tok);
}

static void
token_verifies_in_its_window_only(void **state)
{
	struct gate_jwt_claims c = sample();
	char *tok = sign(&c), err[160];
	json_t *claims;

	(void)state;
	assert_int_equal(gate_jwt_verify_hs256(tok, secret, SECRET_LEN, 1000,
	                                       &claims, err, sizeof(err)),
	                 0);
	assert_string_equal(json_string_value(json_object_get(claims, "room")),
	                    "standup-42");
	json_decref(claims);
	assert_int_equal(gate_jwt_verify_hs256(tok, secret, SECRET_LEN, 1119,
	                                       &claims, err, sizeof(err)),
	                 0);
	json_decref(claims);
	/* Jitsi allows no leeway: before nbf and at exp it is refused. */
	assert_int_not_equal(gate_jwt_verify_hs256(tok, secret, SECRET_LEN, 999,
	                                           &claims, err, sizeof(err)),
	                     0);
	assert_null(claims);
	assert_int_not_equal(gate_jwt_verify_hs256(tok, secret, SECRET_LEN,
	                                           1120, &claims, err,
	                                           sizeof(err)),
	                     0);
	assert_null(claims);
	free(tok);
}

static void
tampered_tokens_fail(void **state)
{
	struct gate_jwt_claims c = sample(), other = sample();
	char *tok = sign(&c), *tok2, *mix, err[160];
	const char *d1, *d2, *o1, *o2;
	size_t len = strlen(tok);
	json_t *claims;

	(void)state;
	/* Every single flipped character breaks it (or its encoding). */
	for (size_t i = 0; i < len; i++) {
		char save = tok[i];

		if (save == '.')
			continue;
		tok[i] = save == 'A' ? 'B' : 'A';
		assert_int_not_equal(
		    gate_jwt_verify_hs256(tok, secret, SECRET_LEN, 1000,
		                          &claims, err, sizeof(err)),
		    0);
		assert_null(claims);
		tok[i] = save;
	}
	/* Another secret. */
	assert_int_not_equal(
	    gate_jwt_verify_hs256(tok, (const unsigned char *)"another-secret",
	                          14, 1000, &claims, err, sizeof(err)),
	    0);
	/* A payload from another token (another room) with this signature. */
	other.room = "board-meeting";
	tok2 = sign(&other);
	d1 = strchr(tok, '.');
	d2 = strrchr(tok, '.');
	o1 = strchr(tok2, '.');
	o2 = strrchr(tok2, '.');
	mix = malloc(strlen(tok) + strlen(tok2) + 1);
	assert_non_null(mix);
	memcpy(mix, tok, (size_t)(d1 - tok));
	memcpy(mix + (d1 - tok), o1, (size_t)(o2 - o1));
	memcpy(mix + (d1 - tok) + (o2 - o1), d2, strlen(d2) + 1);
	assert_int_not_equal(gate_jwt_verify_hs256(mix, secret, SECRET_LEN,
	                                           1000, &claims, err,
	                                           sizeof(err)),
	                     0);
	assert_string_equal(err, "token signature does not verify");
	free(mix);
	free(tok2);
	free(tok);
}

static void
alg_none_and_malformed_refused(void **state)
{
	/* {"alg":"none","typ":"JWT"} . {"exp":9999999999,"nbf":0} . "" */
	static const char alg_none[] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
	                               "eyJleHAiOjk5OTk5OTk5OTksIm5iZiI6MH0.";
	static const char *const bad[] = {
	    alg_none,
	    "",
	    "a.b",
	    "a.b.c.d",
	    "...",
	    "eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
	};
	char err[160];
	json_t *claims;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(
		    gate_jwt_verify_hs256(bad[i], secret, SECRET_LEN, 1000,
		                          &claims, err, sizeof(err)),
		    0);
		assert_null(claims);
	}
}

static void
missing_claims_refused(void **state)
{
	struct gate_jwt_claims c = sample();
	char err[160], *tok = (char *)"x";

	(void)state;
	c.room = NULL;
	assert_int_not_equal(
	    gate_jwt_sign_hs256(&c, secret, SECRET_LEN, &tok, err, sizeof(err)),
	    0);
	assert_null(tok);
	c = sample();
	c.exp = c.nbf;
	assert_int_not_equal(
	    gate_jwt_sign_hs256(&c, secret, SECRET_LEN, &tok, err, sizeof(err)),
	    0);
	c = sample();
	assert_int_not_equal(
	    gate_jwt_sign_hs256(&c, secret, 0, &tok, err, sizeof(err)), 0);
	/* Optional user fields may be left out. */
	c.user_name = NULL;
	c.user_email = NULL;
	assert_int_equal(
	    gate_jwt_sign_hs256(&c, secret, SECRET_LEN, &tok, err, sizeof(err)),
	    0);
	free(tok);
}

static void
redirect_url_template(void **state)
{
	char err[160], *url;

	(void)state;
	assert_int_equal(gate_admit_render_url("https://meet.example.com/{room}"
	                                       "?jwt={token}",
	                                       "standup-42", "aa.bb.cc", 2048,
	                                       &url, err, sizeof(err)),
	                 0);
	assert_string_equal(url,
	                    "https://meet.example.com/standup-42?jwt=aa.bb.cc");
	free(url);
	assert_int_equal(gate_admit_render_url("https://m/{room}?jwt={token}"
	                                       "#{room}",
	                                       "a b/c?d&é", "t", 2048, &url,
	                                       err, sizeof(err)),
	                 0);
	assert_string_equal(url, "https://m/a%20b%2Fc%3Fd%26%C3%A9?jwt=t#"
	                         "a%20b%2Fc%3Fd%26%C3%A9");
	free(url);
	assert_int_not_equal(gate_admit_render_url("https://m/{room}", "abc",
	                                           "t", 10, &url, err,
	                                           sizeof(err)),
	                     0);
	assert_null(url);
	assert_int_equal(gate_admit_render_url("https://m/{room}", "abc", "t",
	                                       13, &url, err, sizeof(err)),
	                 0);
	free(url);
}

/* ---- RS256 ------------------------------------------------------------ */

/* Keys made once for the RS256 tests: the signing key, another 2048-bit
 * key (a stranger's, or the rotated-out one) and a 1024-bit one. */
static EVP_PKEY *k_cur, *k_other, *k_small;

static int
rsa_setup(void **state)
{
	(void)state;
	k_cur = EVP_RSA_gen(2048);
	k_other = EVP_RSA_gen(2048);
	k_small = EVP_RSA_gen(1024);
	return k_cur != NULL && k_other != NULL && k_small != NULL ? 0 : -1;
}

static int
rsa_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(k_cur);
	EVP_PKEY_free(k_other);
	EVP_PKEY_free(k_small);
	return 0;
}

static struct gate_jwt_keys *
rs_keys(EVP_PKEY *cur, EVP_PKEY *prev)
{
	struct gate_jwt_keys *ks = NULL;
	char err[200];

	if (gate_jwt_keys_rs256(cur, prev ? &prev : NULL, prev ? 1 : 0, &ks,
	                        err, sizeof(err)) != 0)
		fail_msg("gate_jwt_keys_rs256: %s", err);
	return ks;
}

static char *
rs_mint(const struct gate_jwt_keys *ks, const struct gate_jwt_claims *c)
{
	char err[200], *tok = NULL;

	if (gate_jwt_mint(ks, c, &tok, err, sizeof(err)) != 0)
		fail_msg("gate_jwt_mint: %s", err);
	assert_non_null(tok);
	return tok;
}

/* base64url without padding of data, into a heap string. */
static char *
b64url(const void *data, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(
	    len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *s = malloc(n);

	assert_non_null(s);
	sodium_bin2base64(s, n, data, len,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

/* The RFC 7638 thumbprint of pk computed here, apart from jwt.c: the
 * canonical JSON written out by hand on purpose (the test's own copy). */
static void
thumb_of(EVP_PKEY *pk, char out[GATE_JWT_KID_SIZE])
{
	BIGNUM *n = NULL, *e = NULL;
	unsigned char nb[1024], eb[16], h[crypto_hash_sha256_BYTES];
	char *ns, *es, canon[2048];
	int nl, el;

	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n),
	                 1);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e),
	                 1);
	nl = BN_bn2bin(n, nb);
	el = BN_bn2bin(e, eb);
	ns = b64url(nb, (size_t)nl);
	es = b64url(eb, (size_t)el);
	snprintf(canon, sizeof(canon),
	         "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", es, ns);
	crypto_hash_sha256(h, (const unsigned char *)canon, strlen(canon));
	sodium_bin2base64(out, GATE_JWT_KID_SIZE, h, sizeof(h),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	free(ns);
	free(es);
	BN_free(n);
	BN_free(e);
}

/* RSASSA-PKCS1-v1_5 / SHA-256 check of tok with pk, done here. */
static int
ext_verify(EVP_PKEY *pk, const char *tok)
{
	const char *d2 = strrchr(tok, '.');
	unsigned char sig[1024];
	size_t n;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok;

	assert_non_null(d2);
	assert_int_equal(sodium_base642bin(
	                     sig, sizeof(sig), d2 + 1, strlen(d2 + 1), NULL, &n,
	                     NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	                 0);
	assert_int_equal((int)n, EVP_PKEY_get_size(pk));
	ok = EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pk) == 1 &&
	     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
	     EVP_DigestVerify(md, sig, n, (const unsigned char *)tok,
	                      (size_t)(d2 - tok)) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

static void
assert_sample_claims(json_t *p)
{
	json_t *u;

	assert_non_null(p);
	assert_int_equal(json_object_size(p), 8);
	assert_string_equal(json_string_value(json_object_get(p, "iss")),
	                    "roomgate");
	assert_string_equal(json_string_value(json_object_get(p, "aud")),
	                    "jitsi");
	assert_string_equal(json_string_value(json_object_get(p, "sub")),
	                    "meet.example.com");
	assert_string_equal(json_string_value(json_object_get(p, "room")),
	                    "standup-42");
	assert_string_equal(json_string_value(json_object_get(p, "jti")),
	                    "7f0c1f9e-admission");
	assert_int_equal(json_integer_value(json_object_get(p, "nbf")), 1000);
	assert_int_equal(json_integer_value(json_object_get(p, "exp")), 1120);
	assert_int_equal(json_object_size(json_object_get(p, "context")), 1);
	u = json_object_get(json_object_get(p, "context"), "user");
	assert_int_equal(json_object_size(u), 3);
	assert_string_equal(json_string_value(json_object_get(u, "id")),
	                    "alice");
	assert_string_equal(json_string_value(json_object_get(u, "name")),
	                    "Alice Liddell");
	assert_string_equal(json_string_value(json_object_get(u, "email")),
	                    "alice@example.com");
}

static void
rs256_token_header_claims_and_signature(void **state)
{
	struct gate_jwt_claims c = sample();
	struct gate_jwt_keys *ks = rs_keys(k_cur, NULL);
	char *tok = rs_mint(ks, &c), kid[GATE_JWT_KID_SIZE];
	const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
	json_t *h, *p;

	(void)state;
	assert_int_equal(ks->alg, GATE_JWT_RS256);
	assert_non_null(d1);
	assert_true(d2 > d1);
	assert_null(strchr(tok, '='));
	thumb_of(k_cur, kid);
	assert_int_equal(strlen(kid), 43);
	assert_string_equal(ks->rsa[0].kid, kid);
	h = decode_json(tok, (size_t)(d1 - tok));
	assert_non_null(h);
	assert_int_equal(json_object_size(h), 3);
	assert_string_equal(json_string_value(json_object_get(h, "alg")),
	                    "RS256");
	assert_string_equal(json_string_value(json_object_get(h, "typ")),
	                    "JWT");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), kid);
	p = decode_json(d1 + 1, (size_t)(d2 - d1 - 1));
	assert_sample_claims(p);
	/* The signature checks with the public key, outside jwt.c. */
	assert_true(ext_verify(k_cur, tok));
	assert_false(ext_verify(k_other, tok));
	json_decref(h);
	json_decref(p);
	free(tok);
	gate_jwt_keys_free(ks);
}

static void
rs256_verifies_in_its_window_only(void **state)
{
	struct gate_jwt_claims c = sample();
	struct gate_jwt_keys *ks = rs_keys(k_cur, NULL);
	char *tok = rs_mint(ks, &c), err[200];
	json_t *claims;

	(void)state;
	assert_int_equal(
	    gate_jwt_verify(ks, tok, 1000, &claims, err, sizeof(err)), 0);
	assert_sample_claims(claims);
	json_decref(claims);
	assert_int_equal(
	    gate_jwt_verify(ks, tok, 1119, &claims, err, sizeof(err)), 0);
	json_decref(claims);
	assert_int_not_equal(
	    gate_jwt_verify(ks, tok, 999, &claims, err, sizeof(err)), 0);
	assert_null(claims);
	assert_string_equal(err, "token is not valid at this time");
	assert_int_not_equal(
	    gate_jwt_verify(ks, tok, 1120, &claims, err, sizeof(err)), 0);
	assert_null(claims);
	free(tok);
	gate_jwt_keys_free(ks);
}

static void
rs256_tampered_tokens_fail(void **state)
{
	struct gate_jwt_claims c = sample(), other = sample();
	struct gate_jwt_keys *ks = rs_keys(k_cur, NULL);
	char *tok = rs_mint(ks, &c), *tok2, *mix, err[200];
	const char *d1, *d2, *o1, *o2;
	size_t len = strlen(tok);
	json_t *claims;

	(void)state;
	for (size_t i = 0; i < len; i++) {
		char save = tok[i];

		if (save == '.')
			continue;
		tok[i] = save == 'A' ? 'B' : 'A';
		assert_int_not_equal(
		    gate_jwt_verify(ks, tok, 1000, &claims, err, sizeof(err)),
		    0);
		assert_null(claims);
		tok[i] = save;
	}
	/* Another room's payload under this token's signature. */
	other.room = "board-meeting";
	tok2 = rs_mint(ks, &other);
	d1 = strchr(tok, '.');
	d2 = strrchr(tok, '.');
	o1 = strchr(tok2, '.');
	o2 = strrchr(tok2, '.');
	mix = malloc(strlen(tok) + strlen(tok2) + 1);
	assert_non_null(mix);
	memcpy(mix, tok, (size_t)(d1 - tok));
	memcpy(mix + (d1 - tok), o1, (size_t)(o2 - o1));
	memcpy(mix + (d1 - tok) + (o2 - o1), d2, strlen(d2) + 1);
	assert_int_not_equal(
	    gate_jwt_verify(ks, mix, 1000, &claims, err, sizeof(err)), 0);
	assert_string_equal(err, "token signature does not verify");
	/* A signature cut short. */
	tok[len - 4] = '\0';
	assert_int_not_equal(
	    gate_jwt_verify(ks, tok, 1000, &claims, err, sizeof(err)), 0);
	assert_string_equal(err, "token signature is malformed");
	free(mix);
	free(tok2);
	free(tok);
	gate_jwt_keys_free(ks);
}

/* header.payload.HMAC-SHA-256(key) with the header given as JSON. */
static char *
hs_forge(const char *header, const char *payload_b64, const void *key,
         size_t keylen)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	char *h = b64url(header, strlen(header)), *m, *tok;
	size_t n = strlen(h) + strlen(payload_b64) + 128;

	tok = malloc(n);
	assert_non_null(tok);
	snprintf(tok, n, "%s.%s", h, payload_b64);
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok,
	                              strlen(tok));
	crypto_auth_hmacsha256_final(&st, mac);
	m = b64url(mac, sizeof(mac));
	snprintf(tok + strlen(tok), n - strlen(tok), ".%s", m);
	free(h);
	free(m);
	return tok;
}

static void
rs256_alg_confusion_and_unknown_kid_refused(void **state)
{
	struct gate_jwt_claims c = sample();
	struct gate_jwt_keys *ks = rs_keys(k_cur, NULL);
	struct gate_jwt_keys *stranger = rs_keys(k_other, NULL);
	struct gate_jwt_keys *hs = NULL;
	char *tok = rs_mint(ks, &c), *forged, *payload, hdr[200], err[200];
	char *pem = NULL, *alien, *hs_tok = NULL;
	const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
	BIO *bio = BIO_new(BIO_s_mem());
	long pemlen;
	json_t *claims;

	(void)state;
	payload = strndup(d1 + 1, (size_t)(d2 - d1 - 1));
	assert_non_null(payload);
	/* The classic attack: HS256 "signed" with our public key as the
	 * HMAC secret, with and without our kid. */
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PUBKEY(bio, k_cur), 1);
	pemlen = BIO_get_mem_data(bio, &pem);
	assert_true(pemlen > 0);
	snprintf(hdr, sizeof(hdr),
	         "{\"alg\":\"HS256\",\"kid\":\"%s\",\"typ\":"
	         "\"JWT\"}",
	         ks->rsa[0].kid);
	forged = hs_forge(hdr, payload, pem, (size_t)pemlen);
	assert_int_not_equal(
	    gate_jwt_verify(ks, forged, 1000, &claims, err, sizeof(err)), 0);
	assert_null(claims);
	assert_string_equal(err, "token header is not {alg: RS256, typ: JWT}");
	free(forged);
	assert_int_equal(gate_jwt_sign_hs256(&c, (const unsigned char *)pem,
	                                     (size_t)pemlen, &hs_tok, err,
	                                     sizeof(err)),
	                 0);
	assert_int_not_equal(
	    gate_jwt_verify(ks, hs_tok, 1000, &claims, err, sizeof(err)), 0);
	assert_null(claims);
	/* alg none, with our kid and an empty signature. */
	snprintf(hdr, sizeof(hdr),
	         "{\"alg\":\"none\",\"kid\":\"%s\",\"typ\":"
	         "\"JWT\"}",
	         ks->rsa[0].kid);
	forged = hs_forge(hdr, payload, "", 0);
	strrchr(forged, '.')[1] = '\0'; /* header.payload. */
	assert_int_not_equal(
	    gate_jwt_verify(ks, forged, 1000, &claims, err, sizeof(err)), 0);
	assert_null(claims);
	free(forged);
	/* A validly signed token from a key that is not ours: unknown kid. */
	alien = rs_mint(stranger, &c);
	assert_true(ext_verify(k_other, alien));
	assert_int_not_equal(
	    gate_jwt_verify(ks, alien, 1000, &claims, err, sizeof(err)), 0);
	assert_string_equal(err, "token kid is not one of this server's keys");
	/* Our kid on the stranger's signature. */
	snprintf(hdr, sizeof(hdr), "%.*s", (int)(strchr(tok, '.') - tok), tok);
	forged = malloc(strlen(alien) + strlen(hdr) + 1);
	assert_non_null(forged);
	snprintf(forged, strlen(alien) + strlen(hdr) + 1, "%s%s", hdr,
	         strchr(alien, '.'));
	assert_int_not_equal(
	    gate_jwt_verify(ks, forged, 1000, &claims, err, sizeof(err)), 0);
	assert_string_equal(err, "token signature does not verify");
	free(forged);
	/* And the other way round: under HS256, an RS256 token is refused. */
	assert_int_equal(
	    gate_jwt_keys_hs256(secret, SECRET_LEN, &hs, err, sizeof(err)), 0);
	assert_int_not_equal(
	    gate_jwt_verify(hs, tok, 1000, &claims, err, sizeof(err)), 0);
	assert_null(claims);
	free(alien);
	free(hs_tok);
	free(payload);
	free(tok);
	BIO_free(bio);
	gate_jwt_keys_free(hs);
	gate_jwt_keys_free(stranger);
	gate_jwt_keys_free(ks);
}

static void
rs256_previous_key_verifies_and_is_published(void **state)
{
	struct gate_jwt_claims c = sample();
	struct gate_jwt_keys *before = rs_keys(k_other, NULL);
	struct gate_jwt_keys *after = rs_keys(k_cur, k_other);
	struct gate_jwt_keys *hs = NULL;
	char *old_tok = rs_mint(before, &c), *new_tok = rs_mint(after, &c);
	char kid_cur[GATE_JWT_KID_SIZE], kid_old[GATE_JWT_KID_SIZE], err[200];
	json_t *doc, *keys, *k, *claims, *h;

	(void)state;
	thumb_of(k_cur, kid_cur);
	thumb_of(k_other, kid_old);
	/* New tokens carry the new kid; the old one still verifies. */
	h = decode_json(new_tok, (size_t)(strchr(new_tok, '.') - new_tok));
	assert_string_equal(json_string_value(json_object_get(h, "kid")),
	                    kid_cur);
	json_decref(h);
	assert_int_equal(
	    gate_jwt_verify(after, old_tok, 1000, &claims, err, sizeof(err)),
	    0);
	json_decref(claims);
	assert_int_equal(
	    gate_jwt_verify(after, new_tok, 1000, &claims, err, sizeof(err)),
	    0);
	json_decref(claims);
	/* The JWKS: current first, then the previous one; public parts only. */
	doc = json_loadb(after->jwks, after->jwks_len, JSON_REJECT_DUPLICATES,
	                 NULL);
	assert_non_null(doc);
	assert_int_equal(json_object_size(doc), 1);
	keys = json_object_get(doc, "keys");
	assert_int_equal(json_array_size(keys), 2);
	for (size_t i = 0; i < 2; i++) {
		k = json_array_get(keys, i);
		assert_int_equal(json_object_size(k), 6);
		assert_string_equal(
		    json_string_value(json_object_get(k, "kty")), "RSA");
		assert_string_equal(
		    json_string_value(json_object_get(k, "use")), "sig");
		assert_string_equal(
		    json_string_value(json_object_get(k, "alg")), "RS256");
		assert_string_equal(json_string_value(json_object_get(k, "e")),
		                    "AQAB");
		assert_string_equal(
		    json_string_value(json_object_get(k, "kid")),
		    i == 0 ? kid_cur : kid_old);
		/* n of a 2048-bit modulus: 256 bytes, 342 characters. */
		assert_int_equal(
		    strlen(json_string_value(json_object_get(k, "n"))), 342);
	}
	json_decref(doc);
	/* Under HS256 the set is empty. */
	assert_int_equal(
	    gate_jwt_keys_hs256(secret, SECRET_LEN, &hs, err, sizeof(err)), 0);
	assert_string_equal(hs->jwks, "{\"keys\":[]}");
	assert_null(strstr(hs->jwks, (const char *)secret));
	gate_jwt_keys_free(hs);
	free(old_tok);
	free(new_tok);
	gate_jwt_keys_free(before);
	gate_jwt_keys_free(after);
}

/* RFC 7638 section 3.1: the example RSA key and its thumbprint. */
static const char rfc_n[] =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aP"
    "FFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl9"
    "3lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
    "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3"
    "XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
static const char rfc_thumb[] = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

static void
kid_is_the_rfc7638_thumbprint(void **state)
{
	char kid[GATE_JWT_KID_SIZE];
	unsigned char nb[512], eb[3];
	size_t nl, el;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pub = NULL;
	BIGNUM *n, *e;
	struct gate_jwt_keys *ks;
	json_t *doc, *k;

	(void)state;
	assert_int_equal(gate_jwk_thumbprint(rfc_n, "AQAB", kid), 0);
	assert_string_equal(kid, rfc_thumb);
	/* The same key as an EVP_PKEY (public only) in a key set: jwt.c's
	 * own n/e encoding gives the RFC's thumbprint and n. */
	assert_int_equal(
	    sodium_base642bin(nb, sizeof(nb), rfc_n, strlen(rfc_n), NULL, &nl,
	                      NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	    0);
	assert_int_equal(
	    sodium_base642bin(eb, sizeof(eb), "AQAB", 4, NULL, &el, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	    0);
	n = BN_bin2bn(nb, (int)nl, NULL);
	e = BN_bin2bn(eb, (int)el, NULL);
	assert_non_null(bld);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n),
	                 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e),
	                 1);
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(
	    EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, params), 1);
	ks = rs_keys(k_cur, pub);
	assert_int_equal(ks->nrsa, 2);
	assert_string_equal(ks->rsa[1].kid, rfc_thumb);
	doc = json_loads(ks->jwks, 0, NULL);
	k = json_array_get(json_object_get(doc, "keys"), 1);
	assert_string_equal(json_string_value(json_object_get(k, "n")), rfc_n);
	assert_string_equal(json_string_value(json_object_get(k, "kid")),
	                    rfc_thumb);
	/* Jitsi's asap_key_server name and the PEM served under it. */
	{
		unsigned char h[crypto_hash_sha256_BYTES];
		char want[2 * crypto_hash_sha256_BYTES + 5];
		BIO *bio;
		EVP_PKEY *back;

		crypto_hash_sha256(h, (const unsigned char *)rfc_thumb,
		                   strlen(rfc_thumb));
		sodium_bin2hex(want, sizeof(want), h, sizeof(h));
		memcpy(want + 2 * sizeof(h), ".pem", 5);
		assert_string_equal(ks->rsa[1].asap_name, want);
		bio = BIO_new_mem_buf(ks->rsa[1].pem, (int)ks->rsa[1].pem_len);
		back = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		assert_non_null(back);
		assert_int_equal(EVP_PKEY_eq(back, pub), 1);
		assert_null(strstr(ks->rsa[0].pem, "PRIVATE"));
		EVP_PKEY_free(back);
		BIO_free(bio);
	}
	/* A public key cannot be the signing key. */
	{
		struct gate_jwt_keys *bad = NULL;
		char err[200];

		assert_int_not_equal(
		    gate_jwt_keys_rs256(pub, NULL, 0, &bad, err, sizeof(err)),
		    0);
		assert_null(bad);
		assert_non_null(strstr(err, "public key"));
	}
	json_decref(doc);
	gate_jwt_keys_free(ks);
	EVP_PKEY_free(pub);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
}

static void
small_and_non_rsa_keys_refused(void **state)
{
	struct gate_jwt_keys *ks = NULL;
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char err[200];

	(void)state;
	assert_int_not_equal(
	    gate_jwt_keys_rs256(k_small, NULL, 0, &ks, err, sizeof(err)), 0);
	assert_null(ks);
	assert_non_null(strstr(err, "1024-bit"));
	assert_non_null(strstr(err, "2048"));
	/* Also as a previous key. */
	assert_int_not_equal(
	    gate_jwt_keys_rs256(k_cur, &k_small, 1, &ks, err, sizeof(err)), 0);
	assert_null(ks);
	assert_non_null(strstr(err, "1024-bit"));
	assert_non_null(ec);
	assert_non_null(ed);
	assert_int_not_equal(
	    gate_jwt_keys_rs256(ec, NULL, 0, &ks, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "not an RSA key"));
	assert_int_not_equal(
	    gate_jwt_keys_rs256(ed, NULL, 0, &ks, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "not an RSA key"));
	assert_int_equal(gate_jwt_rsa_key_ok(k_cur, err, sizeof(err)), 0);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
}

/* Writes pk (private, or its public half) as PEM to a fresh temp file with
 * mode; the path into path. */
static void
write_pem(EVP_PKEY *pk, int private_key, const char *pass, mode_t mode,
          char path[64])
{
	FILE *f;
	int fd;

	snprintf(path, 64, "/tmp/rg-jwt-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	if (private_key)
		assert_int_equal(PEM_write_PrivateKey(
		                     f, pk, pass ? EVP_aes_256_cbc() : NULL,
		                     (const unsigned char *)pass,
		                     pass ? (int)strlen(pass) : 0, NULL, NULL),
		                 1);
	else
		assert_int_equal(PEM_write_PUBKEY(f, pk), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
key_files_modes_and_kinds(void **state)
{
	char priv[64], pub[64], small[64], enc[64], err[600];
	EVP_PKEY *pk = NULL;

	(void)state;
	write_pem(k_cur, 1, NULL, 0644, priv);
	write_pem(k_cur, 0, NULL, 0644, pub);
	write_pem(k_small, 1, NULL, 0600, small);
	write_pem(k_cur, 1, "a passphrase", 0600, enc);
	/* A private key others may read is refused, with the fix. */
	assert_int_not_equal(
	    gate_jwt_read_key_file(priv, 1, &pk, err, sizeof(err)), 0);
	assert_null(pk);
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_not_equal(
	    gate_jwt_read_key_file(priv, 0, &pk, err, sizeof(err)), 0);
	assert_int_equal(chmod(priv, 0600), 0);
	assert_int_equal(gate_jwt_read_key_file(priv, 1, &pk, err, sizeof(err)),
	                 0);
	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_eq(pk, k_cur), 1);
	EVP_PKEY_free(pk);
	pk = NULL;
	/* A public key: fine as a previous key (any mode), not to sign. */
	assert_int_equal(gate_jwt_read_key_file(pub, 0, &pk, err, sizeof(err)),
	                 0);
	assert_non_null(pk);
	EVP_PKEY_free(pk);
	pk = NULL;
	assert_int_not_equal(
	    gate_jwt_read_key_file(pub, 1, &pk, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "not a PEM private key"));
	/* Too small; encrypted (refused, never prompted for); missing. */
	assert_int_not_equal(
	    gate_jwt_read_key_file(small, 1, &pk, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "1024-bit"));
	assert_int_not_equal(
	    gate_jwt_read_key_file(enc, 1, &pk, err, sizeof(err)), 0);
	assert_null(pk);
	assert_int_not_equal(gate_jwt_read_key_file("/nonexistent/rg.pem", 1,
	                                            &pk, err, sizeof(err)),
	                     0);
	assert_non_null(strstr(err, "cannot read /nonexistent/rg.pem"));
	unlink(priv);
	unlink(pub);
	unlink(small);
	unlink(enc);
}

static void
keygen_writes_0600_and_never_overwrites(void **state)
{
	char path[64], err[600];
	struct stat st;
	EVP_PKEY *pk = NULL;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/rg-jwt-keygen-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	/* An existing file (even empty) is never overwritten. */
	assert_int_not_equal(gate_jwt_keygen(path, 2048, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "never overwritten"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	unlink(path);
	assert_int_not_equal(gate_jwt_keygen(path, 1024, err, sizeof(err)), 0);
	assert_int_not_equal(stat(path, &st), 0);
	assert_int_equal(gate_jwt_keygen(path, 2048, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(gate_jwt_read_key_file(path, 1, &pk, err, sizeof(err)),
	                 0);
	assert_int_equal(EVP_PKEY_get_bits(pk), 2048);
	EVP_PKEY_free(pk);
	unlink(path);
}

/* gate_config_load over environment settings only; 0 or -1 and err. */
static int
load_env_cfg(struct gate_config *cfg, char *const *env, char *err,
             size_t errlen)
{
	return gate_config_load(cfg, NULL, env, err, errlen);
}

/* [tokens] hs256_secret needs at least 32 bytes. */
#define HS_SECRET "s3cret-0123456789abcdef0123456789"

static void
config_pins_one_algorithm(void **state)
{
	char key[64], pub[64], ek[128], ep[128], err[1200];
	struct gate_config cfg;
	struct gate_jwt_keys *ks = NULL, sentinel;
	char *hs_only[] = {(char *)"ROOMGATE_TOKENS_HS256_SECRET=" HS_SECRET,
	                   NULL};
	char *rs_only[] = {ek, ep, NULL};
	char *both[] = {ek, (char *)"ROOMGATE_TOKENS_HS256_SECRET=" HS_SECRET,
	                NULL};
	char *rs_pinned_no_key[] = {(char *)"ROOMGATE_TOKENS_ALG=RS256",
	                            (char *)"ROOMGATE_TOKENS_HS256_SECRET="
	                                    HS_SECRET,
	                            NULL};
	char *hs_pinned_no_secret[] = {(char *)"ROOMGATE_TOKENS_ALG=HS256", ek,
	                               NULL};
	char *prev_without_key[] = {ep, NULL};
	char *none[] = {NULL};

	(void)state;
	write_pem(k_cur, 1, NULL, 0600, key);
	write_pem(k_other, 0, NULL, 0644, pub);
	snprintf(ek, sizeof(ek), "ROOMGATE_TOKENS_RS256_KEY_FILE=%s", key);
	snprintf(ep, sizeof(ep), "ROOMGATE_TOKENS_RS256_PREVIOUS_KEY_FILES=%s",
	         pub);
	/* Only a secret: HS256 as before, empty JWKS. */
	assert_int_equal(load_env_cfg(&cfg, hs_only, err, sizeof(err)), 0);
	assert_int_equal(cfg.tok_alg, GATE_JWT_HS256);
	assert_int_equal(gate_jwt_keys_open(&cfg, &ks, err, sizeof(err)), 0);
	assert_int_equal(ks->alg, GATE_JWT_HS256);
	assert_string_equal(ks->jwks, "{\"keys\":[]}");
	gate_jwt_keys_free(ks);
	gate_config_free(&cfg);
	/* Only a key file (and a previous public key): RS256. */
	assert_int_equal(load_env_cfg(&cfg, rs_only, err, sizeof(err)), 0);
	assert_int_equal(cfg.tok_alg, GATE_JWT_RS256);
	assert_int_equal(gate_jwt_keys_open(&cfg, &ks, err, sizeof(err)), 0);
	assert_int_equal(ks->alg, GATE_JWT_RS256);
	assert_int_equal(ks->nrsa, 2);
	gate_jwt_keys_free(ks);
	gate_config_free(&cfg);
	/* Both: ambiguous, refused. */
	assert_int_not_equal(load_env_cfg(&cfg, both, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "both set"));
	/* alg = RS256 without a key file. */
	assert_int_not_equal(
	    load_env_cfg(&cfg, rs_pinned_no_key, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "alg = RS256 needs rs256_key_file"));
	/* alg = HS256 without a secret; previous keys without a key. */
	assert_int_not_equal(
	    load_env_cfg(&cfg, hs_pinned_no_secret, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "alg = HS256 needs hs256_secret"));
	assert_int_not_equal(
	    load_env_cfg(&cfg, prev_without_key, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "without rs256_key_file"));
	/* Nothing: no key set, no error (admission says not_configured). */
	assert_int_equal(load_env_cfg(&cfg, none, err, sizeof(err)), 0);
	ks = &sentinel;
	assert_int_equal(gate_jwt_keys_open(&cfg, &ks, err, sizeof(err)), 0);
	assert_null(ks);
	gate_config_free(&cfg);
	/* A key file others may read stops the key set from opening. */
	assert_int_equal(chmod(key, 0640), 0);
	assert_int_equal(load_env_cfg(&cfg, rs_only, err, sizeof(err)), 0);
	assert_int_not_equal(gate_jwt_keys_open(&cfg, &ks, err, sizeof(err)),
	                     0);
	assert_null(ks);
	assert_non_null(strstr(err, "[tokens] rs256_key_file"));
	assert_non_null(strstr(err, "chmod 600"));
	gate_config_free(&cfg);
	unlink(key);
	unlink(pub);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(token_decodes_to_jitsi_claims),
	    cmocka_unit_test(token_verifies_in_its_window_only),
	    cmocka_unit_test(tampered_tokens_fail),
	    cmocka_unit_test(alg_none_and_malformed_refused),
	    cmocka_unit_test(missing_claims_refused),
	    cmocka_unit_test(redirect_url_template),
	    cmocka_unit_test(rs256_token_header_claims_and_signature),
	    cmocka_unit_test(rs256_verifies_in_its_window_only),
	    cmocka_unit_test(rs256_tampered_tokens_fail),
	    cmocka_unit_test(rs256_alg_confusion_and_unknown_kid_refused),
	    cmocka_unit_test(rs256_previous_key_verifies_and_is_published),
	    cmocka_unit_test(kid_is_the_rfc7638_thumbprint),
	    cmocka_unit_test(small_and_non_rsa_keys_refused),
	    cmocka_unit_test(key_files_modes_and_kinds),
	    cmocka_unit_test(keygen_writes_0600_and_never_overwrites),
	    cmocka_unit_test(config_pins_one_algorithm),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, rsa_setup, rsa_teardown);
}
