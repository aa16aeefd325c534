/*
 * API authentication and role checks. Service tokens are 256 random bits,
 * shown once; only their SHA-256 is stored, so a lookup is one indexed
 * query and a database dump holds no usable token. Every caller ends up as
 * a gate_principal with role bits; people signed in with SSO get theirs
 * from the directory's role groups, asked on every request, so the checks
 * below are the only ones.
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

/*
 * A signed-in person (session cookie, no bearer token): the roles come
 * from the configured role groups, asked live on every request. A role
 * without a group is nobody's; a directory that cannot answer is a 503
 * (fail closed), never a request with fewer roles.
 */
static int
auth_session(struct gate_app *app, const struct gate_rq *rq,
             struct gate_principal *p, struct gate_resp *out)
{
	static const struct {
		enum dir_role role;
		unsigned bit;
	} map[] = {{DIR_ROLE_HOST, GATE_ROLE_HOST},
	           {DIR_ROLE_ADMIN, GATE_ROLE_ADMIN},
	           {DIR_ROLE_COMPLIANCE, GATE_ROLE_COMPLIANCE}};
	const char *groups[DIR_ROLE_COUNT], *ct;
	struct db_session s;
	struct dir_verdict v;
	char err[512];
	int r = -1, found;

	/* A cookie rides along on cross-site requests too: a change made
	 * with one must be JSON, which a foreign form cannot send without
	 * a CORS preflight (that we never grant). */
	ct = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                 MHD_HTTP_HEADER_CONTENT_TYPE);
	if (strcmp(rq->method, "GET") != 0 &&
	    (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
	     (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' '))) {
		memset(&s, 0, sizeof(s));
		gate_resp_error(out, rq, 403, "csrf", NULL,
		                "a change made with the session cookie must be "
		                "sent as Content-Type: application/json");
		goto out;
	}
	found = gate_session_of(app, rq, &s, err, sizeof(err));
	if (found < 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "auth_db_error", "%s", err);
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
		                "cannot check the sign-in: the database is "
		                "unavailable; retry shortly");
		out->retry_after = 2;
		goto out;
	}
	if (found == 0) {
		gate_resp_error(out, rq, 401, "unauthenticated", NULL,
		                "the sign-in has ended; sign in again at "
		                "/saml/login, or send an API token");
		goto out;
	}
	if (snprintf(p->identity, sizeof(p->identity), "%s", s.identity) >=
	    (int)sizeof(p->identity)) {
		gate_resp_error(out, rq, 403, "forbidden", NULL,
		                "the signed-in identity is too long");
		goto out;
	}
	groups[DIR_ROLE_HOST] = app->cfg->dir_host_group;
	groups[DIR_ROLE_ADMIN] = app->cfg->dir_admin_group;
	groups[DIR_ROLE_COMPLIANCE] = app->cfg->dir_compliance_group;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (groups[map[i].role] == NULL || app->dir == NULL)
			continue;
		memset(&v, 0, sizeof(v));
		v.result = DIR_V_UNAVAILABLE;
		if (dir_check_role(app->dir, s.identity, strlen(s.identity),
		                   map[i].role, &v, err, sizeof(err)) < 0 &&
		    v.result == DIR_V_UNAVAILABLE) {
			gate_log(GATE_LOG_ERROR, rq->id, "auth_dir_error", "%s",
			         err);
			gate_resp_error(
			    out, rq, 503, "directory_unavailable", NULL,
			    "cannot check your roles: the directory "
			    "is unavailable; retry shortly");
			out->retry_after = 2;
			goto out;
		}
		if (v.result == DIR_V_MEMBER)
			p->roles |= map[i].bit;
	}
	snprintf(p->via, sizeof(p->via), "session");
	r = 0;
out:
	db_session_free(&s);
	if (r != 0)
		memset(p, 0, sizeof(*p));
	return r;
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
	if (h == NULL && rq->conn != NULL &&
	    MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND,
	                                GATE_SESSION_COOKIE) != NULL) {
		r = auth_session(app, rq, p, out);
		goto out;
	}
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
