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
 *
 * With the session cache on (authz_sessions.h; [authz] session_cache,
 * auto = with the membership cache), a repeat request for a (session,
 * meeting) the database admitted moments ago takes that database part
 * from memory; the directory part is asked as above every time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>
#include <sodium.h>

#include "db/db_authz.h"
#include "server/admit.h"
#include "server/authz_cache.h"
#include "server/authz_ref.h"
#include "server/authz_sessions.h"
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

/*
 * A denial of a signed-in person is on record before it is answered
 * (event "authz.deny"; README "Audit trail"). The answer stays a denial
 * when the record cannot be written: logged and counted. An allow writes
 * nothing: it is the re-use of an admission that has its own record.
 */
static void
authz_record(struct gate_app *app, const struct gate_rq *rq,
             const struct db_session *s, const char *meeting_id,
             const char *reason, int member_ok, const char *matched_group,
             const char *ref, const char *detail, int status)
{
	struct gate_principal p;
	struct db_audit_rec a;
	struct db_actor by;
	char src[64], err[512], *dj = NULL;
	json_t *d;
	int r;

	memset(&p, 0, sizeof(p));
	snprintf(p.identity, sizeof(p.identity), "%s", s->identity);
	snprintf(p.idp, sizeof(p.idp), "%s", s->idp ? s->idp : "");
	gate_rq_actor(app, rq, &p, &by, src);
	d = json_pack("{s:s?, s:s?, s:i}", "meeting_ref", ref, "detail", detail,
	              "status", status);
	dj = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	memset(&a, 0, sizeof(a));
	a.event_type = "authz.deny";
	a.outcome = "deny";
	a.reason = reason;
	a.meeting_id =
	    meeting_id != NULL && meeting_id[0] != '\0' ? meeting_id : NULL;
	a.matched_group = matched_group;
	a.code_ok = -1; /* forward-auth checks no code */
	a.member_ok = member_ok;
	a.details_json = dj;
	a.by = &by;
	r = db_audit_write(app->db, &a, err, sizeof(err));
	gate_audit_records_count("authz.deny", r != 0);
	if (r != 0)
		gate_log(GATE_LOG_ERROR, rq->id, "authz_audit_failed",
		         "denial of %s not recorded (still denied): %s",
		         s->identity, err);
	free(dj);
}


void
gate_h_authz(struct gate_app *app, const struct gate_rq *rq,
             struct gate_resp *out)
{
	struct db_session s;
	struct db_meeting m;
	struct db_authz_read found;
	struct dir_verdict v;
	struct gate_authz_ticket tk;
	struct gate_authz_entry *hit = NULL;
	char ref[GATE_AUTHZ_REF_MAX + 1], err[512];
	unsigned char shash[32];
	const char *group = NULL, *why = NULL;
	int r, have_ref, member, touch_s = 0;
	json_t *o;

	memset(&s, 0, sizeof(s));
	memset(&m, 0, sizeof(m));
	/* One round trip (db_authz.h): the session behind the cookie and,
	 * when the request names a meeting, this session's admission to it
	 * and the meeting's groups and invitee fact; answered in the order
	 * below (no sign-in, no meeting named, unknown, not admitted). */
	have_ref = authz_meeting_ref(rq, ref, &why) == 0;
	if (!gate_cookie_hash(rq, GATE_SESSION_COOKIE, shash)) {
		gate_resp_error(out, rq, 401, "unauthenticated", NULL,
		                "sign in first at /saml/login");
		goto out;
	}
	if (gate_authz_sessions_get(shash, have_ref ? ref : NULL, &tk, &hit,
	                            &s, &m)) {
		/* Only ever a positive answer (authz_sessions.h). */
		sodium_memzero(shash, sizeof(shash));
		memset(&found, 0, sizeof(found));
		found.have_session = found.have_meeting = found.admitted = 1;
		goto decided;
	}
	touch_s = db_session_touch_s(app->cfg->session_idle_timeout_s);
	r = db_authz_read(app->db, shash, app->cfg->session_idle_timeout_s,
	                  touch_s, have_ref ? ref : NULL, &s, &m, &found, err,
	                  sizeof(err));
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "authz_db_error", "%s", err);
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
		                "the sign-in could not be checked; retry "
		                "shortly");
		out->retry_after = 2;
		goto out;
	}
	if (!found.have_session) {
		gate_resp_error(out, rq, 401, "unauthenticated", NULL,
		                "sign in first at /saml/login");
		goto out;
	}
	if (!have_ref) {
		authz_record(app, rq, &s, NULL, "no_meeting", -1, NULL, NULL,
		             why, 403);
		authz_deny(out, rq, why);
		goto out;
	}
	if (!found.have_meeting) {
		authz_record(app, rq, &s, NULL, "unknown_meeting", -1, NULL,
		             ref, NULL, 403);
		authz_deny(out, rq, "unknown meeting");
		goto out;
	}
	if (!found.admitted) {
		authz_record(app, rq, &s, m.id, "not_admitted", -1, NULL, ref,
		             NULL, 403);
		authz_deny(out, rq, "not admitted");
		goto out;
	}
decided:
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
		authz_record(app, rq, &s, m.id, "directory_unavailable", -1,
		             NULL, ref, NULL, 503);
		gate_resp_error(out, rq, 503, "directory_unavailable", NULL,
		                "the directory could not be asked; retry "
		                "shortly");
		out->retry_after = 2;
		goto out;
	}
	if (!member) {
		authz_record(app, rq, &s, m.id, dir_verdict_name(v.result), 0,
		             NULL, ref, NULL, 403);
		authz_deny(out, rq, dir_verdict_name(v.result));
		goto out;
	}
	/* Stored only now, the whole answer being a 200 (a directory
	 * denial stores nothing). */
	if (hit == NULL)
		gate_authz_sessions_put(&tk, shash, ref, &s, &m, &found,
		                        touch_s);
	if (gate_resp_header(out, "X-Roomgate-User", s.identity) != 0 ||
	    gate_resp_header(out, "X-Roomgate-Meeting", m.id) != 0) {
		gate_resp_error(out, rq, 500, "internal", NULL,
		                "the answer could not be built");
		goto out;
	}
	o = json_pack("{s:s, s:s}", "user", s.identity, "meeting", m.id);
	gate_resp_json(out, 200, o);
out:
	sodium_memzero(shash, sizeof(shash));
	if (hit != NULL) {
		/* s and m point into the lent entry. */
		gate_authz_sessions_release(hit);
	} else {
		db_session_free(&s);
		db_meeting_free(&m);
	}
}

void
gate_h_identity_revoke(struct gate_app *app, const struct gate_rq *rq,
                       struct gate_resp *out)
{
	static const char suffix[] = ":revoke";
	const size_t slen = sizeof(suffix) - 1;
	struct gate_principal p;
	struct db_identity_revoke rv;
	struct db_actor by;
	char ident[257], err[512], src[64];
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
	gate_rq_actor(app, rq, &p, &by, src);
	memset(&rv, 0, sizeof(rv));
	rv.identity = ident;
	rv.actor = p.identity;
	rv.via = p.via;
	rv.idp = by.idp;
	rv.source_addr = by.source_addr;
	rv.forwarded_for = by.forwarded_for;
	rv.user_agent = by.user_agent;
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
	/* This node at once; the others by the notifications the revoke
	 * committed (migration 0025). */
	gate_authz_sessions_drop_identity(ident);
	gate_log(GATE_LOG_INFO, rq->id, "identity_revoked",
	         "%s revoked %s: %ld sessions, %ld admissions", p.identity,
	         ident, ns, na);
	o = json_pack("{s:s, s:I, s:I}", "identity", ident, "sessions",
	              (json_int_t)ns, "admissions", (json_int_t)na);
	gate_resp_json(out, 200, o);
out:
	json_decref(in);
}
