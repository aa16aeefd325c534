/*
 * Sessions after SAML sign-in: the cookie (256-bit random id, only its
 * SHA-256 in the database), its attributes, and looking up the person
 * behind a request. Cookie values are wiped after use.
 */
#include <stdio.h>
#include <string.h>

#include <microhttpd.h>
#include <sodium.h>

#include "server/http_int.h"

/*
 * Secure cookies everywhere except a plain-http public URL on loopback
 * (the local stack), where a browser would drop them.
 */
int
gate_cookie_secure(const struct gate_config *cfg)
{
	static const char *const loop[] = {"http://127.", "http://localhost:",
					   "http://localhost/", "http://[::1]"};
	const char *u = cfg->public_url;

	if (strcmp(u, "http://localhost") == 0)
		return 0;
	for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
		if (strncmp(u, loop[i], strlen(loop[i])) == 0)
			return 0;
	return 1;
}

int
gate_cookie_add(struct gate_resp *out, const struct gate_config *cfg,
		const char *name, const char *value, const char *path,
		int max_age, int cross_site_post)
{
	char c[512], age[32] = "";
	int secure = gate_cookie_secure(cfg), n, r;

	if (max_age >= 0)
		snprintf(age, sizeof(age), "; Max-Age=%d", max_age);
	/* SameSite=None only where the IdP's cross-site POST must carry it,
	 * and browsers accept None only with Secure. */
	n = snprintf(c, sizeof(c), "%s=%s; Path=%s%s; HttpOnly%s; SameSite=%s",
		     name, value, path, age, secure ? "; Secure" : "",
		     cross_site_post && secure ? "None" : "Lax");
	if (n < 0 || (size_t)n >= sizeof(c)) {
		sodium_memzero(c, sizeof(c));
		return -1;
	}
	r = gate_resp_header(out, MHD_HTTP_HEADER_SET_COOKIE, c);
	sodium_memzero(c, sizeof(c));
	return r;
}

int
gate_cookie_hash(const struct gate_rq *rq, const char *name,
		 unsigned char hash[32])
{
	const char *v;
	unsigned char raw[32];
	size_t n = 0;

	v = MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND, name);
	if (v == NULL || strlen(v) != 64 ||
	    sodium_hex2bin(raw, sizeof(raw), v, 64, NULL, &n, NULL) != 0 ||
	    n != sizeof(raw))
		return 0;
	crypto_hash_sha256(hash, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	return 1;
}

int
gate_random_token(char hex[65], unsigned char hash[32])
{
	unsigned char raw[32];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, 65, raw, sizeof(raw));
	crypto_hash_sha256(hash, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	return 0;
}

int
gate_session_of(struct gate_app *app, const struct gate_rq *rq,
		struct db_session *out, char *err, size_t errlen)
{
	unsigned char hash[32];
	int r;

	memset(out, 0, sizeof(*out));
	if (!gate_cookie_hash(rq, GATE_SESSION_COOKIE, hash))
		return 0;
	r = db_session_get(app->db, hash, app->cfg->session_idle_timeout_s,
			   out, err, errlen);
	sodium_memzero(hash, sizeof(hash));
	return r;
}
