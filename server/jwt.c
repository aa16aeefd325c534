/*
 * Join tokens in the shape Jitsi Meet's token auth verifies: a compact JWT,
 * header {"alg":"HS256","typ":"JWT"}, HMAC-SHA-256 with the platform's
 * shared secret (not a server key: the platform holds it too), or header
 * {"alg":"RS256","kid":...,"typ":"JWT"}, RSASSA-PKCS1-v1_5 with SHA-256
 * under our RSA key, whose public half the JWKS publishes. JSON through
 * jansson, base64url, the MAC and SHA-256 through libsodium, RSA through
 * OpenSSL libcrypto; the verifiers exist for our tests and for the checks
 * a platform would make.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "server/admit.h"
#include "server/jwt.h"

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

/* ---- RS256 ----------------------------------------------------------- */

/* Longest RSA signature (8192-bit modulus) and a public value in bytes. */
#define RSA_MAX_BYTES (GATE_JWT_RSA_MAX_BITS / 8)
/* Largest key file we read: a PEM 8192-bit private key is under 7 KB. */
#define KEY_FILE_MAX 65536

/* Encrypted PEM keys are refused rather than prompted for. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int
gate_jwt_rsa_key_ok(EVP_PKEY *pk, char *err, size_t errlen)
{
	int bits;

	if (pk == NULL || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
		set_err(err, errlen,
		        "not an RSA key; RS256 needs an RSA key (make one with "
		        "`roomgate jwt-keygen FILE`)");
		return -1;
	}
	bits = EVP_PKEY_get_bits(pk);
	if (bits < GATE_JWT_RSA_MIN_BITS || bits > GATE_JWT_RSA_MAX_BITS) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			         "a %d-bit RSA key; RS256 join tokens need "
			         "%d to %d bits (make one with `roomgate "
			         "jwt-keygen FILE`)",
			         bits, GATE_JWT_RSA_MIN_BITS,
			         GATE_JWT_RSA_MAX_BITS);
		return -1;
	}
	return 0;
}

/* 1 when pk holds an RSA private exponent. */
static int
has_private(EVP_PKEY *pk)
{
	BIGNUM *d = NULL;
	int ok = EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_D, &d) == 1;

	BN_clear_free(d);
	return ok;
}

int
gate_jwt_read_key_file(const char *path, int want_private, EVP_PKEY **out,
                       char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	ssize_t n = 0;
	BIO *bio = NULL;
	EVP_PKEY *pk = NULL;
	int fd = -1, r = -1, priv = 0;
	char why[160];

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		         strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto out;
	}
	if ((buf = malloc(KEY_FILE_MAX)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (len < KEY_FILE_MAX - 1 &&
	       (n = read(fd, buf + len, KEY_FILE_MAX - 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0 || len == KEY_FILE_MAX - 1 || len == 0) {
		snprintf(err, errlen, "%s is %s", path,
		         n < 0 || len == 0 ? "empty or unreadable"
		                           : "too large");
		goto out;
	}
	buf[len] = '\0';
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	pk = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (pk != NULL) {
		priv = 1;
	} else if (!want_private) {
		(void)BIO_reset(bio);
		pk = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	}
	if (pk == NULL) {
		snprintf(err, errlen,
		         "%s is not a PEM %s (an unencrypted one; make one "
		         "with `roomgate jwt-keygen FILE`)",
		         path,
		         want_private ? "private key"
		                      : "public or private key");
		goto out;
	}
	/* Like the server keys file: a private key readable by others is
	 * a leaked key, so it is refused rather than used. */
	if (priv && (st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		         "%s holds a private key and is accessible to group or "
		         "others (mode %04o); run: chmod 600 %s",
		         path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (gate_jwt_rsa_key_ok(pk, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	*out = pk;
	pk = NULL;
	r = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(pk);
	BIO_free(bio);
	if (buf != NULL) {
		sodium_memzero(buf, KEY_FILE_MAX);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return r;
}

/* base64url of one public RSA parameter (heap string), or NULL. */
static char *
rsa_param_b64(EVP_PKEY *pk, const char *name)
{
	unsigned char bin[RSA_MAX_BYTES];
	BIGNUM *bn = NULL;
	char *s = NULL;
	int n;

	if (EVP_PKEY_get_bn_param(pk, name, &bn) != 1)
		goto out;
	n = BN_num_bytes(bn);
	/* JWK wants the minimal big-endian octets: BN_bn2bin gives those. */
	if (n <= 0 || (size_t)n > sizeof(bin) || BN_bn2bin(bn, bin) != n)
		goto out;
	if ((s = malloc(B64_LEN((size_t)n))) == NULL)
		goto out;
	sodium_bin2base64(s, B64_LEN((size_t)n), bin, (size_t)n,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
out:
	BN_free(bn);
	return s;
}

int
gate_jwk_thumbprint(const char *n, const char *e, char out[GATE_JWT_KID_SIZE])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	json_t *o;
	char *canon = NULL;
	int r = -1;

	out[0] = '\0';
	if (n == NULL || e == NULL)
		return -1;
	/* RFC 7638: the required members only, sorted, no whitespace. */
	o = json_pack("{s:s, s:s, s:s}", "e", e, "kty", "RSA", "n", n);
	if (o == NULL ||
	    (canon = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	crypto_hash_sha256(h, (const unsigned char *)canon, strlen(canon));
	sodium_bin2base64(out, GATE_JWT_KID_SIZE, h, sizeof(h),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	r = 0;
out:
	free(canon);
	json_decref(o);
	return r;
}

void
gate_jwt_keys_free(struct gate_jwt_keys *ks)
{
	if (ks == NULL)
		return;
	for (size_t i = 0; i < ks->nrsa; i++) {
		EVP_PKEY_free(ks->rsa[i].pkey);
		free(ks->rsa[i].pem);
	}
	if (ks->secret != NULL) {
		sodium_memzero(ks->secret, ks->secretlen);
		free(ks->secret);
	}
	free(ks->jwks);
	free(ks);
}

int
gate_jwt_keys_hs256(const unsigned char *secret, size_t len,
                    struct gate_jwt_keys **out, char *err, size_t errlen)
{
	struct gate_jwt_keys *ks = NULL;
	json_t *doc = NULL;

	*out = NULL;
	if (secret == NULL || len == 0) {
		set_err(err, errlen, "[tokens] hs256_secret is empty");
		return -1;
	}
	if ((ks = calloc(1, sizeof(*ks))) == NULL ||
	    (ks->secret = malloc(len)) == NULL ||
	    (doc = json_pack("{s:[]}", "keys")) == NULL ||
	    (ks->jwks = json_dumps(doc, JSON_COMPACT)) == NULL) {
		json_decref(doc);
		gate_jwt_keys_free(ks);
		set_err(err, errlen, "out of memory");
		return -1;
	}
	json_decref(doc);
	ks->alg = GATE_JWT_HS256;
	memcpy(ks->secret, secret, len);
	ks->secretlen = len;
	ks->jwks_len = strlen(ks->jwks);
	*out = ks;
	return 0;
}

/* Adds pk (a new reference) with its kid, and its JWK to keys; a key
 * already in the set is skipped. */
static int
add_rsa(struct gate_jwt_keys *ks, EVP_PKEY *pk, json_t *keys, char *err,
        size_t errlen)
{
	char *n = NULL, *e = NULL, kid[GATE_JWT_KID_SIZE], *pem = NULL;
	unsigned char h[crypto_hash_sha256_BYTES];
	struct gate_jwt_rsa *slot;
	json_t *jwk = NULL;
	BIO *bio = NULL;
	long pemlen;
	int r = -1;

	if (gate_jwt_rsa_key_ok(pk, err, errlen) != 0)
		return -1;
	if ((n = rsa_param_b64(pk, OSSL_PKEY_PARAM_RSA_N)) == NULL ||
	    (e = rsa_param_b64(pk, OSSL_PKEY_PARAM_RSA_E)) == NULL ||
	    gate_jwk_thumbprint(n, e, kid) != 0) {
		set_err(err, errlen, "cannot read the RSA key's n and e");
		goto out;
	}
	for (size_t i = 0; i < ks->nrsa; i++)
		if (strcmp(ks->rsa[i].kid, kid) == 0) {
			r = 0;
			goto out;
		}
	if (ks->nrsa == GATE_JWT_MAX_KEYS) {
		set_err(err, errlen, "too many RS256 keys (at most 8)");
		goto out;
	}
	slot = &ks->rsa[ks->nrsa];
	/* Jitsi fetches asap_key_server/hex(sha256(kid)).pem. */
	crypto_hash_sha256(h, (const unsigned char *)kid, strlen(kid));
	sodium_bin2hex(slot->asap_name, sizeof(slot->asap_name), h, sizeof(h));
	memcpy(slot->asap_name + 2 * sizeof(h), ".pem", 5);
	jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "use",
	                "sig", "alg", "RS256", "kid", kid, "n", n, "e", e);
	if (jwk == NULL || json_array_append_new(keys, jwk) != 0 ||
	    (bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PUBKEY(bio, pk) != 1 ||
	    (pemlen = BIO_get_mem_data(bio, &pem)) <= 0 ||
	    (slot->pem = malloc((size_t)pemlen + 1)) == NULL ||
	    EVP_PKEY_up_ref(pk) != 1) {
		free(slot->pem);
		slot->pem = NULL;
		set_err(err, errlen, "out of memory");
		goto out;
	}
	memcpy(slot->pem, pem, (size_t)pemlen);
	slot->pem[pemlen] = '\0';
	slot->pem_len = (size_t)pemlen;
	slot->pkey = pk;
	memcpy(slot->kid, kid, sizeof(kid));
	ks->nrsa++;
	r = 0;
out:
	BIO_free(bio);
	free(n);
	free(e);
	return r;
}

int
gate_jwt_keys_rs256(EVP_PKEY *current, EVP_PKEY *const *previous,
                    size_t nprevious, struct gate_jwt_keys **out, char *err,
                    size_t errlen)
{
	struct gate_jwt_keys *ks = NULL;
	json_t *keys = NULL, *doc = NULL;
	char why[200];
	int r = -1;

	*out = NULL;
	if ((ks = calloc(1, sizeof(*ks))) == NULL ||
	    (keys = json_array()) == NULL) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	ks->alg = GATE_JWT_RS256;
	if (current == NULL ||
	    gate_jwt_rsa_key_ok(current, why, sizeof(why)) != 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "the RS256 signing key is %s",
			         current == NULL ? "missing" : why);
		goto out;
	}
	if (!has_private(current)) {
		set_err(err, errlen,
		        "the RS256 signing key is a public key; it must be "
		        "the private key");
		goto out;
	}
	if (add_rsa(ks, current, keys, err, errlen) != 0)
		goto out;
	for (size_t i = 0; i < nprevious; i++) {
		if (add_rsa(ks, previous[i], keys, why, sizeof(why)) != 0) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen,
				         "previous RS256 key %zu: %s", i + 1,
				         why);
			goto out;
		}
	}
	if ((doc = json_pack("{s:O}", "keys", keys)) == NULL ||
	    (ks->jwks = json_dumps(doc, JSON_COMPACT)) == NULL) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	ks->jwks_len = strlen(ks->jwks);
	*out = ks;
	ks = NULL;
	r = 0;
out:
	json_decref(doc);
	json_decref(keys);
	gate_jwt_keys_free(ks);
	return r;
}

int
gate_jwt_keys_open(const struct gate_config *cfg, struct gate_jwt_keys **out,
                   char *err, size_t errlen)
{
	EVP_PKEY *cur = NULL, *prev[GATE_JWT_MAX_KEYS] = {0};
	size_t nprev = 0;
	const char *p;
	char e[600];
	int r = -1;

	*out = NULL;
	if (cfg->tok_alg == GATE_JWT_HS256)
		return gate_jwt_keys_hs256(
		    (const unsigned char *)cfg->tok_hs256_secret,
		    cfg->tok_hs256_secret ? strlen(cfg->tok_hs256_secret) : 0,
		    out, err, errlen);
	if (cfg->tok_alg != GATE_JWT_RS256)
		return 0; /* no join tokens configured */
	if (cfg->tok_rs256_key_file == NULL ||
	    gate_jwt_read_key_file(cfg->tok_rs256_key_file, 1, &cur, e,
	                           sizeof(e)) != 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "[tokens] rs256_key_file: %s",
			         cfg->tok_rs256_key_file ? e : "not set");
		goto out;
	}
	for (p = cfg->tok_rs256_previous_key_files; p != NULL && *p != '\0';) {
		char path[1024];
		size_t n;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (n == 0)
			break;
		if (n >= sizeof(path) || nprev == GATE_JWT_MAX_KEYS - 1) {
			if (err != NULL && errlen > 0)
				snprintf(
				    err, errlen,
				    "[tokens] rs256_previous_key_files: at "
				    "most %d files of at most %zu bytes of "
				    "path each",
				    GATE_JWT_MAX_KEYS - 1, sizeof(path) - 1);
			goto out;
		}
		memcpy(path, p, n);
		path[n] = '\0';
		p += n;
		if (gate_jwt_read_key_file(path, 0, &prev[nprev], e,
		                           sizeof(e)) != 0) {
			if (err != NULL && errlen > 0)
				snprintf(
				    err, errlen,
				    "[tokens] rs256_previous_key_files: %s", e);
			goto out;
		}
		nprev++;
	}
	if (gate_jwt_keys_rs256(cur, prev, nprev, out, e, sizeof(e)) != 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "[tokens]: %s", e);
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_free(cur);
	for (size_t i = 0; i < nprev; i++)
		EVP_PKEY_free(prev[i]);
	return r;
}

/* Checks the claims every token must carry. */
static int
claims_ok(const struct gate_jwt_claims *c)
{
	return c->iss != NULL && c->aud != NULL && c->sub != NULL &&
	       c->room != NULL && c->jti != NULL && c->user_id != NULL &&
	       c->exp > c->nbf;
}

static int
sign_rs256(const struct gate_jwt_rsa *key, const struct gate_jwt_claims *c,
           char **out, char *err, size_t errlen)
{
	unsigned char sig[RSA_MAX_BYTES];
	size_t siglen = sizeof(sig), pos = 0;
	char *payload = NULL, *header = NULL, *tok = NULL;
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	json_t *h = NULL;
	int r = -1;

	*out = NULL;
	if (!claims_ok(c)) {
		set_err(err, errlen, "join token: a required claim is missing");
		goto out;
	}
	h = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "kid", key->kid, "typ",
	              "JWT");
	if (h == NULL ||
	    (header = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
	    (payload = claims_json(c)) == NULL ||
	    (tok = malloc(GATE_JWT_MAX)) == NULL ||
	    (md = EVP_MD_CTX_new()) == NULL) {
		set_err(err, errlen, "join token: out of memory");
		goto out;
	}
	if (append_b64(tok, GATE_JWT_MAX, &pos, (const unsigned char *)header,
	               strlen(header)) != 0 ||
	    pos + 1 >= GATE_JWT_MAX)
		goto toolong;
	tok[pos++] = '.';
	if (append_b64(tok, GATE_JWT_MAX, &pos, (const unsigned char *)payload,
	               strlen(payload)) != 0 ||
	    pos + 1 >= GATE_JWT_MAX)
		goto toolong;
	/* RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 3.3). */
	if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key->pkey) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)tok, pos) !=
	        1) {
		ERR_clear_error();
		set_err(err, errlen, "join token: RSA signing failed");
		goto out;
	}
	tok[pos++] = '.';
	if (append_b64(tok, GATE_JWT_MAX, &pos, sig, siglen) != 0)
		goto toolong;
	*out = tok;
	tok = NULL;
	r = 0;
	goto out;
toolong:
	set_err(err, errlen, "join token: claims too long");
out:
	EVP_MD_CTX_free(md);
	json_decref(h);
	if (tok != NULL) {
		sodium_memzero(tok, GATE_JWT_MAX);
		free(tok);
	}
	free(header);
	free(payload);
	return r;
}

int
gate_jwt_mint(const struct gate_jwt_keys *ks, const struct gate_jwt_claims *c,
              char **out, char *err, size_t errlen)
{
	*out = NULL;
	if (ks == NULL) {
		set_err(err, errlen, "join tokens are not configured");
		return -1;
	}
	if (ks->alg == GATE_JWT_HS256)
		return gate_jwt_sign_hs256(c, ks->secret, ks->secretlen, out,
		                           err, errlen);
	if (ks->alg == GATE_JWT_RS256 && ks->nrsa > 0)
		return sign_rs256(&ks->rsa[0], c, out, err, errlen);
	set_err(err, errlen, "join tokens are not configured");
	return -1;
}

/* The RS256 key named by a header, or NULL when the header is not
 * {alg: RS256, typ: JWT, kid: one of ours}; why says which. */
static const struct gate_jwt_rsa *
rs256_header_key(const struct gate_jwt_keys *ks, const unsigned char *hdr,
                 size_t len, const char **why)
{
	json_t *j =
	    json_loadb((const char *)hdr, len, JSON_REJECT_DUPLICATES, NULL);
	const struct gate_jwt_rsa *k = NULL;
	const char *alg, *typ, *kid;

	*why = "token header is not {alg: RS256, typ: JWT}";
	if (j == NULL || !json_is_object(j))
		goto out;
	alg = json_string_value(json_object_get(j, "alg"));
	typ = json_string_value(json_object_get(j, "typ"));
	kid = json_string_value(json_object_get(j, "kid"));
	if (alg == NULL || strcmp(alg, "RS256") != 0 || typ == NULL ||
	    strcmp(typ, "JWT") != 0)
		goto out;
	*why = "token kid is not one of this server's keys";
	for (size_t i = 0; kid != NULL && i < ks->nrsa; i++)
		if (strcmp(ks->rsa[i].kid, kid) == 0)
			k = &ks->rsa[i];
out:
	json_decref(j);
	return k;
}

static int
verify_rs256(const struct gate_jwt_keys *ks, const char *token, int64_t now,
             json_t **claims, char *err, size_t errlen)
{
	unsigned char sig[RSA_MAX_BYTES + 1];
	unsigned char *buf = NULL;
	const struct gate_jwt_rsa *key;
	const char *d1, *d2, *why;
	size_t tlen, n = 0;
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	json_t *p = NULL, *nbf, *exp;
	int r = -1;

	tlen = token == NULL ? 0 : strnlen(token, GATE_JWT_MAX + 1);
	if (tlen == 0 || tlen > GATE_JWT_MAX) {
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
	if (decode_part(token, (size_t)(d1 - token), buf, tlen + 1, &n) != 0) {
		set_err(err, errlen, "token header is not base64url");
		goto out;
	}
	if ((key = rs256_header_key(ks, buf, n, &why)) == NULL) {
		set_err(err, errlen, why);
		goto out;
	}
	if (decode_part(d2 + 1, tlen - (size_t)(d2 + 1 - token), sig,
	                sizeof(sig), &n) != 0 ||
	    n != (size_t)EVP_PKEY_get_size(key->pkey)) {
		set_err(err, errlen, "token signature is malformed");
		goto out;
	}
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, key->pkey) !=
	        1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
	    EVP_DigestVerify(md, sig, n, (const unsigned char *)token,
	                     (size_t)(d2 - token)) != 1) {
		ERR_clear_error();
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
	EVP_MD_CTX_free(md);
	json_decref(p);
	free(buf);
	return r;
}

int
gate_jwt_verify(const struct gate_jwt_keys *ks, const char *token, int64_t now,
                json_t **claims, char *err, size_t errlen)
{
	*claims = NULL;
	if (ks == NULL) {
		set_err(err, errlen, "join tokens are not configured");
		return -1;
	}
	/* Pinned: the header's alg must be the configured one, so a token
	 * "signed" with HS256 over our public key never meets an HMAC. */
	if (ks->alg == GATE_JWT_HS256)
		return gate_jwt_verify_hs256(token, ks->secret, ks->secretlen,
		                             now, claims, err, errlen);
	if (ks->alg == GATE_JWT_RS256)
		return verify_rs256(ks, token, now, claims, err, errlen);
	set_err(err, errlen, "join tokens are not configured");
	return -1;
}

int
gate_jwt_keygen(const char *path, int bits, char *err, size_t errlen)
{
	EVP_PKEY *pk = NULL;
	FILE *f = NULL;
	int fd, r = -1, made = 0;

	if (bits < GATE_JWT_RSA_MIN_BITS || bits > GATE_JWT_RSA_MAX_BITS) {
		snprintf(err, errlen, "--bits %d: must be %d to %d", bits,
		         GATE_JWT_RSA_MIN_BITS, GATE_JWT_RSA_MAX_BITS);
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s%s", path,
		         strerror(errno),
		         errno == EEXIST ? " (never overwritten; remove it "
		                           "first)"
		                         : "");
		return -1;
	}
	made = 1;
	if ((f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "cannot write %s: %s", path,
		         strerror(errno));
		close(fd);
		goto out;
	}
	if ((pk = EVP_RSA_gen((unsigned int)bits)) == NULL) {
		snprintf(err, errlen, "RSA key generation failed");
		goto out;
	}
	if (PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) != 1) {
		snprintf(err, errlen, "cannot write %s", path);
		goto out;
	}
	r = 0;
out:
	ERR_clear_error();
	if (f != NULL && fclose(f) != 0 && r == 0) {
		snprintf(err, errlen, "cannot write %s: %s", path,
		         strerror(errno));
		r = -1;
	}
	if (r != 0 && made)
		unlink(path);
	EVP_PKEY_free(pk);
	return r;
}
