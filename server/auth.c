/*
 * API authentication and role checks. Service tokens are 256 random bits,
 * shown once; only their SHA-256 is stored, so a lookup is one indexed
 * query and a database dump holds no usable token. Every caller ends up as
 * a gate_principal with role bits; people signed in with SSO get theirs
 * from the directory's role groups, asked on every request, so the checks
 * below are the only ones.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>
#include <sodium.h>

#include "server/admit.h"
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
	snprintf(p->idp, sizeof(p->idp), "%s", s.idp ? s.idp : "");
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
	/* Noted for the role-use record written after the handler. */
	if (r == 0 && rq->caller != NULL) {
		rq->caller->known = 1;
		rq->caller->roles = p->roles;
		snprintf(rq->caller->identity, sizeof(rq->caller->identity),
		         "%s", p->identity);
		snprintf(rq->caller->idp, sizeof(rq->caller->idp), "%s",
		         p->idp);
		snprintf(rq->caller->via, sizeof(rq->caller->via), "%s",
		         p->via);
	}
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

/* ---- the request context of audit records, and role use ------------------ */

static const char *const rec_events[] = {"role.use", "role.denied", "code.read",
                                         "authz.deny"};
#define REC_NEVENTS (sizeof(rec_events) / sizeof(rec_events[0]))
static _Atomic uint64_t rec_count[REC_NEVENTS][2];

void
gate_audit_records_count(const char *event, int failed)
{
	for (size_t i = 0; i < REC_NEVENTS; i++)
		if (strcmp(event, rec_events[i]) == 0)
			rec_count[i][failed ? 1 : 0]++;
}

void
gate_audit_records_metrics(struct gate_buf *b)
{
	gate_buf_printf(b, "# HELP roomgate_audit_request_records_total "
	                   "Audit records of role use, code reads and "
	                   "forward-auth denials written.\n"
	                   "# TYPE roomgate_audit_request_records_total "
	                   "counter\n");
	for (size_t i = 0; i < REC_NEVENTS; i++)
		gate_buf_printf(b,
		                "roomgate_audit_request_records_total{event="
		                "\"%s\"} %llu\n",
		                rec_events[i],
		                (unsigned long long)rec_count[i][0]);
	gate_buf_printf(b,
	                "# HELP roomgate_audit_request_record_failures_total "
	                "Such records that could not be written (a read "
	                "was then answered 503; a denial stayed one).\n"
	                "# TYPE roomgate_audit_request_record_failures_total "
	                "counter\n");
	for (size_t i = 0; i < REC_NEVENTS; i++)
		gate_buf_printf(b,
		                "roomgate_audit_request_record_failures_total{"
		                "event=\"%s\"} %llu\n",
		                rec_events[i],
		                (unsigned long long)rec_count[i][1]);
}

void
gate_rq_actor(const struct gate_app *app, const struct gate_rq *rq,
              const struct gate_principal *p, struct db_actor *by, char src[64])
{
	const char *xff = NULL;

	memset(by, 0, sizeof(*by));
	src[0] = '\0';
	if (rq->conn != NULL) {
		xff = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
		                                  "X-Forwarded-For");
		by->user_agent = MHD_lookup_connection_value(
		    rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
	}
	/* The same source the admission records and lockouts use. */
	if (rq->remote != NULL && strcmp(rq->remote, "-") != 0 &&
	    gate_lockout_source_addr(
	        rq->remote, xff, app->cfg->adm_trusted_proxies, src, 64) == 0)
		by->source_addr = src;
	by->forwarded_for = xff;
	by->request_id = rq->id;
	by->node = app->cfg->node_name;
	if (p != NULL) {
		by->identity = p->identity;
		by->idp = p->idp[0] != '\0' ? p->idp : NULL;
		by->via = p->via[0] != '\0' ? p->via : NULL;
	}
}

/* Empties a response (body, headers, stream) so another can be set. */
static void
resp_reset(struct gate_resp *out)
{
	free(out->body);
	for (int i = 0; i < out->nheaders; i++)
		free(out->headers[i].value);
	if (out->stream_free != NULL)
		out->stream_free(out->stream_cls);
	memset(out, 0, sizeof(*out));
}

/* The {id} of a meeting route, when it is a meeting id. */
static int
route_meeting(const struct gate_rq *rq, char id[37])
{
	if (rq->nparams < 1 || rq->params[0].len != 36 ||
	    (strncmp(rq->path, "/v1/meetings/", 13) != 0 &&
	     strncmp(rq->path, "/m/", 3) != 0))
		return 0;
	for (size_t i = 0; i < 36; i++) {
		char c = rq->params[0].p[i];
		int dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? c != '-'
		         : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		             (c >= 'A' && c <= 'F')))
			return 0;
		id[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	id[36] = '\0';
	return 1;
}

/*
 * The rule (README "Audit trail"): what an auditor must be able to list
 * is every use of a power beyond hosting one's own meetings -- the admin
 * and compliance roles, and API tokens (a credential that is not a
 * person's sign-in) -- and every refusal for want of a role or of
 * ownership. A host's own acts carry their own records (meeting.*,
 * code.*, waiting.*) and are not repeated here.
 */
void
gate_role_audit(struct gate_app *app, const struct gate_rq *rq,
                struct gate_resp *out)
{
	const struct gate_rq_caller *c = rq->caller;
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{GATE_ROLE_HOST, "host"},
	             {GATE_ROLE_ADMIN, "admin"},
	             {GATE_ROLE_COMPLIANCE, "compliance"}};
	struct gate_principal p;
	struct db_actor by;
	struct db_audit_rec a;
	char src[64], err[512], mid[37];
	char *dj = NULL;
	json_t *d = NULL, *roles = NULL, *body = NULL, *e;
	const char *route_name = NULL, *code = NULL;
	int route, denied, token, r;

	if (c == NULL || !c->known || out->status == 0)
		return;
	token = strncmp(c->via, "token:", 6) == 0;
	denied = out->status == 403;
	if (!denied && !(c->roles & (GATE_ROLE_ADMIN | GATE_ROLE_COMPLIANCE)) &&
	    !token)
		return;
	memset(&p, 0, sizeof(p));
	snprintf(p.identity, sizeof(p.identity), "%s", c->identity);
	snprintf(p.idp, sizeof(p.idp), "%s", c->idp);
	snprintf(p.via, sizeof(p.via), "%s", c->via);
	gate_rq_actor(app, rq, &p, &by, src);

	roles = json_array();
	for (size_t i = 0;
	     roles != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (c->roles & names[i].bit)
			json_array_append_new(roles,
			                      json_string(names[i].name));
	if (gate_route_lookup(rq->method, rq->path, &route, NULL, 0) ==
	    GATE_ROUTE_OK)
		route_name = gate_route_name(route);
	d = json_pack("{s:o*, s:s, s:s?, s:s, s:i}", "roles", roles, "method",
	              rq->method, "route", route_name, "path", rq->path,
	              "status", out->status);
	if (denied && out->body != NULL) {
		/* The refusal's own words (never a secret: error bodies
		 * carry none). */
		body = json_loadb(out->body, out->len, 0, NULL);
		e = json_object_get(body, "error");
		code = json_string_value(json_object_get(e, "code"));
		if (d != NULL && json_is_string(json_object_get(e, "message")))
			json_object_set(d, "message",
			                json_object_get(e, "message"));
	}
	dj = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;

	memset(&a, 0, sizeof(a));
	a.event_type = denied ? "role.denied" : "role.use";
	a.outcome = denied ? "deny" : out->status < 400 ? "allow" : "error";
	if (denied)
		a.reason = code != NULL ? code : "forbidden";
	else
		a.reason = (c->roles & (GATE_ROLE_ADMIN | GATE_ROLE_COMPLIANCE))
		               ? "elevated_role"
		               : "api_token";
	a.meeting_id = route_meeting(rq, mid) ? mid : NULL;
	a.code_ok = a.member_ok = -1;
	a.details_json = dj;
	a.by = &by;
	if (dj == NULL) {
		r = DB_ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
	} else {
		r = db_audit_write(app->db, &a, err, sizeof(err));
	}
	gate_audit_records_count(a.event_type, r != 0);
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "role_audit_failed",
		         "%s of %s on %s not recorded: %s", a.event_type,
		         c->identity, rq->path, err);
		/* A read's data leaves only with its record. A change has
		 * committed with its own record and keeps its answer; a
		 * denial stays a denial. */
		if (!denied && out->status < 400 &&
		    strcmp(rq->method, "GET") == 0) {
			resp_reset(out);
			gate_resp_error(out, rq, 503, "audit_unavailable", NULL,
			                "this use of your role could not be "
			                "recorded, so the answer is withheld; "
			                "retry shortly");
			out->retry_after = 2;
		}
	}
	free(dj);
	json_decref(d);
	json_decref(body);
}
