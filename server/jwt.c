/*
 * Join tokens in the shape Jitsi Meet's token auth verifies: a compact JWT,
 * header {"alg":"HS256","typ":"JWT"}, HMAC-SHA-256 with the platform's
 * shared secret (not a server key: the platform holds it too). JSON through
 * jansson, base64url through libsodium, the MAC through libsodium; the
 * verifier exists for our tests and for checks a platform would make.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/admit.h"

#define B64_LEN(n)                                                             \
	sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING)

static void
set_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* Appends base64url(data) to out at *pos (bounded by outsize). */
static int
append_b64(char *out, size_t outsize, size_t *pos, const unsigned char *data,
           size_t len)
{
	size_t need = B64_LEN(len);

	if (*pos >= outsize || outsize - *pos < need)
		return -1;
	sodium_bin2base64(out + *pos, need, data, len,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	*pos += need - 1; /* need counts the NUL */
	return 0;
}

static int
set_str(json_t *obj, const char *key, const char *val)
{
	if (val == NULL)
		return 0;
	return json_object_set_new(obj, key, json_string(val));
}

static char *
claims_json(const struct gate_jwt_claims *c)
{
	json_t *p = NULL, *ctx = NULL, *user = NULL;
	char *s = NULL;
	int r = 0;

	if ((p = json_object()) == NULL || (ctx = json_object()) == NULL ||
	    (user = json_object()) == NULL)
		goto out;
	r |= set_str(user, "id", c->user_id);
	r |= set_str(user, "name", c->user_name);
	r |= set_str(user, "email", c->user_email);
	r |= json_object_set(ctx, "user", user);
	r |= set_str(p, "iss", c->iss);
	r |= set_str(p, "aud", c->aud);
	r |= set_str(p, "sub", c->sub);
	r |= set_str(p, "room", c->room);
	r |= json_object_set_new(p, "nbf", json_integer(c->nbf));
	r |= json_object_set_new(p, "exp", json_integer(c->exp));
	r |= set_str(p, "jti", c->jti);
	r |= json_object_set(p, "context", ctx);
	if (r != 0)
		goto out;
	s = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
out:
	json_decref(user);
	json_decref(ctx);
	json_decref(p);
	return s;
}

int
gate_jwt_sign_hs256(const struct gate_jwt_claims *c, const unsigned char *key,
                    size_t keylen, char **out, char *err, size_t errlen)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	char *payload = NULL, *tok = NULL;
	size_t pos = 0;
	int r = -1;

	*out = NULL;
	if (c->iss == NULL || c->aud == NULL || c->sub == NULL ||
	    c->room == NULL || c->jti == NULL || c->user_id == NULL ||
	    key == NULL || keylen == 0 || c->exp <= c->nbf) {
		set_err(err, errlen,
		        "join token: a required claim or the "
		        "secret is missing");
		goto out;
	}
	if ((payload = claims_json(c)) == NULL ||
	    (tok = malloc(GATE_JWT_MAX)) == NULL) {
		set_err(err, errlen, "join token: out of memory");
		goto out;
	}
	if (append_b64(tok, GATE_JWT_MAX, &pos, (const unsigned char *)header,
	               sizeof(header) - 1) != 0 ||
	    pos + 1 >= GATE_JWT_MAX)
		goto toolong;
	tok[pos++] = '.';
	if (append_b64(tok, GATE_JWT_MAX, &pos, (const unsigned char *)payload,
	               strlen(payload)) != 0 ||
	    pos + 1 >= GATE_JWT_MAX)
		goto toolong;
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok, pos);
	crypto_auth_hmacsha256_final(&st, mac);
	tok[pos++] = '.';
	if (append_b64(tok, GATE_JWT_MAX, &pos, mac, sizeof(mac)) != 0)
		goto toolong;
	*out = tok;
	tok = NULL;
	r = 0;
	goto out;
toolong:
	set_err(err, errlen, "join token: claims too long");
out:
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(mac, sizeof(mac));
	if (tok != NULL) {
		sodium_memzero(tok, GATE_JWT_MAX);
		free(tok);
	}
	free(payload);
	return r;
}

/* Decodes one base64url part (no padding) into a NUL-terminated buffer. */
static int
decode_part(const char *s, size_t len, unsigned char *out, size_t outsize,
            size_t *outlen)
{
	const char *end = NULL;

	if (len == 0 || outsize == 0)
		return -1;
	if (sodium_base642bin(out, outsize - 1, s, len, NULL, outlen, &end,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != s + len)
		return -1;
	out[*outlen] = '\0';
	return 0;
}

static int
header_ok(const unsigned char *h, size_t len)
{
	json_t *j =
	    json_loadb((const char *)h, len, JSON_REJECT_DUPLICATES, NULL);
	const char *alg, *typ;
	int ok = 0;

	if (j == NULL || !json_is_object(j))
		goto out;
	alg = json_string_value(json_object_get(j, "alg"));
	typ = json_string_value(json_object_get(j, "typ"));
	ok = alg != NULL && strcmp(alg, "HS256") == 0 && typ != NULL &&
	     strcmp(typ, "JWT") == 0;
out:
	json_decref(j);
	return ok;
}

int
gate_jwt_verify_hs256(const char *token, const unsigned char *key,
                      size_t keylen, int64_t now, json_t **claims, char *err,
                      size_t errlen)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	unsigned char got[crypto_auth_hmacsha256_BYTES + 1];
	unsigned char *buf = NULL;
	const char *d1, *d2;
	size_t tlen, n = 0;
	crypto_auth_hmacsha256_state st;
	json_t *p = NULL, *nbf, *exp;
	int r = -1;

	*claims = NULL;
	tlen = token == NULL ? 0 : strnlen(token, GATE_JWT_MAX + 1);
	if (tlen == 0 || tlen > GATE_JWT_MAX || key == NULL || keylen == 0) {
		set_err(err, errlen, "token missing or too long");
		goto out;
	}
	d1 = memchr(token, '.', tlen);
	d2 = d1 == NULL ? NULL
	                : memchr(d1 + 1, '.', tlen - (size_t)(d1 + 1 - token));
	if (d1 == NULL || d2 == NULL ||
	    memchr(d2 + 1, '.', tlen - (size_t)(d2 + 1 - token)) != NULL) {
		set_err(err, errlen, "token is not three dot-separated parts");
		goto out;
	}
	if ((buf = malloc(tlen + 1)) == NULL) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	if (decode_part(token, (size_t)(d1 - token), buf, tlen + 1, &n) != 0 ||
	    !header_ok(buf, n)) {
		set_err(err, errlen,
		        "token header is not {alg: HS256, typ: JWT}");
		goto out;
	}
	if (decode_part(d2 + 1, tlen - (size_t)(d2 + 1 - token), got,
	                sizeof(got), &n) != 0 ||
	    n != sizeof(mac)) {
		set_err(err, errlen, "token signature is malformed");
		goto out;
	}
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)token,
	                              (size_t)(d2 - token));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
	if (sodium_memcmp(mac, got, sizeof(mac)) != 0) {
		set_err(err, errlen, "token signature does not verify");
		goto out;
	}
	if (decode_part(d1 + 1, (size_t)(d2 - d1 - 1), buf, tlen + 1, &n) !=
	        0 ||
	    (p = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES,
	                    NULL)) == NULL ||
	    !json_is_object(p)) {
		set_err(err, errlen, "token claims are not a JSON object");
		goto out;
	}
	nbf = json_object_get(p, "nbf");
	exp = json_object_get(p, "exp");
	if (!json_is_integer(nbf) || !json_is_integer(exp) ||
	    json_integer_value(nbf) > now || json_integer_value(exp) <= now) {
		set_err(err, errlen, "token is not valid at this time");
		goto out;
	}
	*claims = p;
	p = NULL;
	r = 0;
out:
	json_decref(p);
	sodium_memzero(mac, sizeof(mac));
	if (buf != NULL) {
		sodium_memzero(buf, tlen + 1);
		free(buf);
	}
	return r;
}

static int
unreserved(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
	       ch == '_' || ch == '~';
}

int
gate_admit_render_url(const char *tmpl, const char *room, const char *token,
                      size_t max, char **out, char *err, size_t errlen)
{
	static const char hex[] = "0123456789ABCDEF";
	char *buf = NULL;
	size_t pos = 0;
	const char *t;
	int r = -1;

	*out = NULL;
	if (tmpl == NULL || room == NULL || token == NULL || max == 0 ||
	    (buf = malloc(max + 1)) == NULL) {
		set_err(err, errlen, "redirect URL: nothing to render");
		goto out;
	}
	for (t = tmpl; *t != '\0';) {
		if (strncmp(t, "{room}", 6) == 0) {
			for (const unsigned char *s =
			         (const unsigned char *)room;
			     *s != '\0'; s++) {
				if (pos + (unreserved(*s) ? 1 : 3) > max)
					goto toolong;
				if (unreserved(*s)) {
					buf[pos++] = (char)*s;
				} else {
					buf[pos++] = '%';
					buf[pos++] = hex[*s >> 4];
					buf[pos++] = hex[*s & 15];
				}
			}
			t += 6;
		} else if (strncmp(t, "{token}", 7) == 0) {
			size_t n = strlen(token);

			if (n > max - pos)
				goto toolong;
			memcpy(buf + pos, token, n);
			pos += n;
			t += 7;
		} else {
			if (pos + 1 > max)
				goto toolong;
			buf[pos++] = *t++;
		}
	}
	buf[pos] = '\0';
	*out = buf;
	buf = NULL;
	r = 0;
	goto out;
toolong:
	set_err(err, errlen, "redirect URL longer than allowed");
out:
	if (buf != NULL) {
		sodium_memzero(buf, max + 1);
		free(buf);
	}
	return r;
}
