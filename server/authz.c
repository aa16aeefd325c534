/*
 * Ongoing access and revocation (DESIGN.md flows 2 and 3, by hand):
 *
 *   GET /v1/authz                   forward-auth for nginx auth_request
 *                                   (and Traefik/Caddy forward-auth)
 *   POST /v1/identities/{id}:revoke  end a person's sessions and
 *                                   admissions everywhere, now
 *
 * /v1/authz answers 200 only for a live session whose identity holds an
 * admitted admission to the meeting and is still, right now, an active
 * member of one of its allowed groups (or an invitee the directory still
 * knows as active: gate_admit_member, the admission's own rule). Everything else is a denial; a database or directory
 * that cannot answer is a 503, never a 200.
 *
 * With [authz] membership_cache = on, the directory question is first put
 * to this node's membership cache (authz_cache.h), which only ever says
 * "yes" and only while its directory follower is caught up; any other
 * answer is asked live, as above.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>
#include <sodium.h>

#include "server/admit.h"
#include "server/authz_cache.h"
#include "server/authz_ref.h"
#include "server/http_int.h"
#include "server/meetings.h"

/* The meeting the proxied request is for (authz_ref.h). */
static int
authz_meeting_ref(const struct gate_rq *rq, char ref[GATE_AUTHZ_REF_MAX + 1],
                  const char **why)
{
	const char *uri;

	uri = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                  "X-Original-URI");
	if (uri == NULL)
		uri = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
		                                  "X-Forwarded-Uri");
	return gate_authz_ref(MHD_lookup_connection_value(rq->conn,
	                                                  MHD_HEADER_KIND,
	                                                  "X-Roomgate-Meeting"),
	                      uri, ref, why);
}

static void
authz_deny(struct gate_resp *out, const struct gate_rq *rq, const char *why)
{
	gate_resp_error(out, rq, 403, "forbidden", NULL,
	                "no access to this meeting (%s)", why);
}

void
gate_h_authz(struct gate_app *app, const struct gate_rq *rq,
             struct gate_resp *out)
{
	struct db_session s;
	struct db_meeting m;
	struct dir_verdict v;
	char ref[GATE_AUTHZ_REF_MAX + 1], mid[37], err[512];
	unsigned char shash[32];
	const char *group = NULL, *why = NULL;
	int r, admitted = 0, member;
	json_t *o;

	memset(&m, 0, sizeof(m));
	r = gate_session_of(app, rq, &s, err, sizeof(err));
	if (r < 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "authz_db_error", "%s", err);
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
		                "the sign-in could not be checked; retry "
		                "shortly");
		out->retry_after = 2;
		goto out;
	}
	if (r == 0) {
		gate_resp_error(out, rq, 401, "unauthenticated", NULL,
		                "sign in first at /saml/login");
		goto out;
	}
	if (authz_meeting_ref(rq, ref, &why) != 0) {
		authz_deny(out, rq, why);
		goto out;
	}
	if (!gate_cookie_hash(rq, GATE_SESSION_COOKIE, shash)) {
		gate_resp_error(out, rq, 401, "unauthenticated", NULL,
		                "sign in first at /saml/login");
		goto out;
	}
	r = db_authz_lookup(app->db, ref, s.identity, shash, mid, &admitted,
	                    err, sizeof(err));
	sodium_memzero(shash, sizeof(shash));
	if (r == DB_ENOTFOUND) {
		authz_deny(out, rq, "unknown meeting");
		goto out;
	}
	if (r == 0 && admitted)
		r = db_meeting_get(app->db, mid, &m, err, sizeof(err));
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "authz_db_error", "%s", err);
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
		                "the admission could not be checked; retry "
		                "shortly");
		out->retry_after = 2;
		goto out;
	}
	if (!admitted) {
		authz_deny(out, rq, "not admitted");
		goto out;
	}
	memset(&v, 0, sizeof(v));
	if (gate_authz_cache_admits(&m, s.identity, &group)) {
		member = 1;
		gate_authz_cache_count(1);
	} else {
		member = gate_admit_member(app->dir, &m, s.identity, &v, &group,
		                           err, sizeof(err));
		gate_authz_cache_count(0);
	}
	if (member < 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "authz_dir_error", "%s", err);
		gate_resp_error(out, rq, 503, "directory_unavailable", NULL,
		                "the directory could not be asked; retry "
		                "shortly");
		out->retry_after = 2;
		goto out;
	}
	if (!member) {
		authz_deny(out, rq, dir_verdict_name(v.result));
		goto out;
	}
	if (gate_resp_header(out, "X-Roomgate-User", s.identity) != 0 ||
	    gate_resp_header(out, "X-Roomgate-Meeting", m.id) != 0) {
		gate_resp_error(out, rq, 500, "internal", NULL,
		                "the answer could not be built");
		goto out;
	}
	o = json_pack("{s:s, s:s}", "user", s.identity, "meeting", m.id);
	gate_resp_json(out, 200, o);
out:
	db_session_free(&s);
	db_meeting_free(&m);
}

void
gate_h_identity_revoke(struct gate_app *app, const struct gate_rq *rq,
                       struct gate_resp *out)
{
	static const char suffix[] = ":revoke";
	const size_t slen = sizeof(suffix) - 1;
	struct gate_principal p;
	struct db_identity_revoke rv;
	char ident[257], err[512];
	const char *seg = rq->params[0].p, *note = NULL;
	size_t n = rq->params[0].len;
	long ns = 0, na = 0;
	json_t *in = NULL, *o;
	int r;

	if (gate_auth_request(app, rq, &p, out) != 0)
		goto out;
	if (!(p.roles & GATE_ROLE_ADMIN)) {
		gate_resp_error(out, rq, 403, "forbidden", NULL,
		                "revoking a person needs the admin role");
		goto out;
	}
	/* The segment is "<identity>:revoke" (already percent-decoded). */
	if (n <= slen || memcmp(seg + n - slen, suffix, slen) != 0) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "use POST /v1/identities/{identity}:revoke");
		goto out;
	}
	n -= slen;
	if (n >= sizeof(ident) || memchr(seg, '\0', n) != NULL) {
		gate_resp_error(out, rq, 400, "invalid", NULL,
		                "the identity must be 1 to %zu bytes",
		                sizeof(ident) - 1);
		goto out;
	}
	memcpy(ident, seg, n);
	ident[n] = '\0';
	if (rq->body_len > 0) {
		in = json_loadb(rq->body, rq->body_len, 0, NULL);
		if (!json_is_object(in)) {
			gate_resp_error(out, rq, 400, "invalid", NULL,
			                "send no body or a JSON object, e.g. "
			                "{\"note\": \"left the company\"}");
			goto out;
		}
		note = json_string_value(json_object_get(in, "note"));
	}
	memset(&rv, 0, sizeof(rv));
	rv.identity = ident;
	rv.actor = p.identity;
	rv.via = p.via;
	rv.source_addr = rq->remote;
	rv.user_agent = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                            "User-Agent");
	rv.request_id = rq->id;
	rv.node = app->cfg->node_name;
	rv.note = note;
	r = db_identity_revoke(app->db, &rv, &ns, &na, err, sizeof(err));
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "revoke_db_error", "%s", err);
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
		                "nothing was revoked: the database is "
		                "unavailable; retry");
		out->retry_after = 2;
		goto out;
	}
	gate_log(GATE_LOG_INFO, rq->id, "identity_revoked",
	         "%s revoked %s: %ld sessions, %ld admissions", p.identity,
	         ident, ns, na);
	o = json_pack("{s:s, s:I, s:I}", "identity", ident, "sessions",
	              (json_int_t)ns, "admissions", (json_int_t)na);
	gate_resp_json(out, 200, o);
out:
	json_decref(in);
}
