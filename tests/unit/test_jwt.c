/* Unit tests: join tokens (sign, decode, verify, tamper) and the redirect
 * URL template. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/admit.h"

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
	static const char *const bad[] = {
	    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
	    "eyJleHAiOjk5OTk5OTk5OTksIm5iZiI6MH0.",
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
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
