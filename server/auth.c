/*
 * API authentication and role checks. Service tokens are 256 random bits,
 * shown once; only their SHA-256 is stored, so a lookup is one indexed
 * query and a database dump holds no usable token. Every caller ends up as
 * a gate_principal with role bits, the shape SSO sessions with
 * directory-derived roles will produce too, so the checks below are the
 * only ones.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>
#include <sodium.h>

#include "server/http_int.h"
#include "server/meetings.h"

#define TOKEN_PREFIX "rgt_"
#define TOKEN_RAW 32

unsigned
gate_role_parse(const char *name)
{
	if (strcmp(name, "host") == 0)
		return GATE_ROLE_HOST;
	if (strcmp(name, "admin") == 0)
		return GATE_ROLE_ADMIN;
	if (strcmp(name, "compliance") == 0)
		return GATE_ROLE_COMPLIANCE;
	return 0;
}

void
gate_token_new(char tok[GATE_TOKEN_LEN], unsigned char hash[32])
{
	unsigned char raw[TOKEN_RAW];

	memcpy(tok, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(tok + sizeof(TOKEN_PREFIX) - 1,
	                  GATE_TOKEN_LEN - (sizeof(TOKEN_PREFIX) - 1), raw,
	                  sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	crypto_hash_sha256(hash, (const unsigned char *)tok, strlen(tok));
	sodium_memzero(raw, sizeof(raw));
}

int
gate_token_hash(const char *tok, size_t len, unsigned char hash[32])
{
	const size_t want = sizeof(TOKEN_PREFIX) - 1 + 43;

	if (len != want || memcmp(tok, TOKEN_PREFIX, 4) != 0)
		return -1;
	for (size_t i = 4; i < len; i++) {
		char ch = tok[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return -1;
	}
	crypto_hash_sha256(hash, (const unsigned char *)tok, len);
	return 0;
}

int
gate_auth_request(struct gate_app *app, const struct gate_rq *rq,
                  struct gate_principal *p, struct gate_resp *out)
{
	const char *h = NULL, *tok;
	unsigned char hash[32];
	struct db_token t;
	char err[512];
	int r = -1, found;

	memset(p, 0, sizeof(*p));
	if (rq->conn != NULL)
		h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
		                                MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		gate_resp_error(out, rq, 401, "unauthenticated", NULL,
		                "send an API token as \"Authorization: Bearer "
		                "TOKEN\" (make one with `roomgate token "
		                "create`)");
		goto out;
	}
	tok = h + 7;
	while (*tok == ' ')
		tok++;
	if (gate_token_hash(tok, strlen(tok), hash) != 0) {
		gate_resp_error(out, rq, 401, "unauthenticated", NULL,
		                "the bearer token is not a roomgate API token");
		goto out;
	}
	found = db_token_lookup(app->db, hash, &t, err, sizeof(err));
	if (found < 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "auth_db_error", "%s", err);
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
		                "cannot check the API token: the database is "
		                "unavailable; retry shortly");
		out->retry_after = 2;
		goto out;
	}
	if (found == 0) {
		gate_resp_error(out, rq, 401, "unauthenticated", NULL,
		                "the API token is unknown or revoked");
		goto out;
	}
	snprintf(p->identity, sizeof(p->identity), "%s", t.identity);
	p->roles = gate_role_parse(t.role);
	snprintf(p->via, sizeof(p->via), "token:%s", t.name);
	r = 0;
out:
	/* RFC 6750: say which scheme a 401 wants. */
	if (r != 0 && out->status == 401)
		(void)gate_resp_header(out, "WWW-Authenticate",
		                       "Bearer realm=\"roomgate\"");
	sodium_memzero(hash, sizeof(hash));
	return r;
}

int
gate_may_manage(const struct gate_principal *p, const char *host)
{
	int ok = 0;

	if (p->roles & GATE_ROLE_ADMIN)
		ok = 1;
	else if ((p->roles & GATE_ROLE_HOST) && host != NULL &&
	         strcmp(p->identity, host) == 0)
		ok = 1;
	return ok;
}

int
gate_may_read(const struct gate_principal *p, const char *host)
{
	return gate_may_manage(p, host) || (p->roles & GATE_ROLE_COMPLIANCE);
}
