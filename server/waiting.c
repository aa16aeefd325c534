/*
 * The waiting room. A right code at a meeting whose waiting room is on
 * records an admission in state "waiting" (admit.c); this file is the
 * rest:
 *
 *   the participant's side  gate_wait_status: this session's entry --
 *                           still waiting, let in (the join token is
 *                           minted then, exp from now), turned away,
 *                           ended or expired -- rendered as JSON by
 *                           GET /v1/join/{link}/status and as the
 *                           self-refreshing page by pages.c;
 *   the host's side         gate_waiting_decide: admit or deny one
 *                           entry. Admitting asks the directory again,
 *                           live, with the join's own rule; a person no
 *                           longer admitted is refused and the entry
 *                           ends. Every decision is audited in the
 *                           statement that changes the state, and two
 *                           racing decisions cannot both apply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "server/admit.h"
#include "server/http_int.h"
#include "server/meetings.h"

#define LINK_MAX 64

static void
wait_deny(struct gate_join_verdict *v, int status, const char *code,
          const char *msg)
{
	v->status = status;
	v->code = code;
	snprintf(v->message, sizeof(v->message), "%s", msg);
}

/* Why an entry in state "revoked" ended, for the person. */
static const char *
revoked_message(const char *reason)
{
	if (strcmp(reason, "directory_removed") == 0 ||
	    strcmp(reason, "directory_disabled") == 0)
		return "you are no longer on this meeting's access list, so "
		       "the host could not let you in";
	if (strcmp(reason, "admin") == 0)
		return "an administrator revoked your access";
	if (strcmp(reason, "session_ended") == 0)
		return "your sign-in ended; sign in and enter the code again";
	return "your place in the waiting room was withdrawn";
}

/* Takes a minted token back out of v (it is not to leave). */
static void
drop_token(struct gate_join_verdict *v)
{
	if (v->token != NULL) {
		sodium_memzero(v->token, strlen(v->token));
		free(v->token);
		v->token = NULL;
	}
	if (v->redirect_url != NULL) {
		sodium_memzero(v->redirect_url, strlen(v->redirect_url));
		free(v->redirect_url);
		v->redirect_url = NULL;
	}
}

/*
 * A host let the person in: the directory is asked once more before the
 * token leaves, as at every admission, and the outcome is on record
 * before the answer (audit "waiting.token"). No longer admitted: the
 * admission ends. Directory down or no record: 503, no token.
 */
static void
token_after_admit(struct gate_app *app, const struct gate_rq *rq,
                  const struct db_meeting *m, const struct db_session *s,
                  const struct db_admission_view *a,
                  struct gate_join_verdict *v)
{
	struct db_waiting_token t;
	struct db_admission_view now_a;
	struct dir_verdict dv;
	const char *group = NULL, *xff;
	char err[512], src[64];
	int member, r;

	member = gate_admit_member(app->dir, m, s->identity, &dv, &group, err,
	                           sizeof(err));
	memset(&t, 0, sizeof(t));
	t.meeting_id = m->id;
	t.admission_id = a->id;
	t.identity = s->identity;
	t.idp = s->idp;
	t.member_ok = member;
	t.directory = dir_verdict_name(dv.result);
	xff = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                  "X-Forwarded-For");
	if (gate_lockout_source_addr(rq->remote, xff,
	                             app->cfg->adm_trusted_proxies, src,
	                             sizeof(src)) == 0)
		t.source_addr = src;
	t.forwarded_for = xff;
	t.user_agent = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                           "User-Agent");
	t.request_id = rq->id;
	t.node = app->cfg->node_name;
	if (member < 0) {
		gate_log(GATE_LOG_WARN, rq->id, "waiting.directory", "%s", err);
		t.outcome = "deny";
		t.reason = "directory_unavailable";
		if (db_waiting_token(app->db, &t, err, sizeof(err)) != 0)
			gate_log(GATE_LOG_ERROR, rq->id, "waiting.record", "%s",
			         err);
		wait_deny(v, 503, "directory_unavailable",
		          "the directory cannot be reached, so nobody is "
		          "admitted; try again in a moment");
		return;
	}
	if (member == 0) {
		t.outcome = "deny";
		t.reason = "not_member";
		t.revoke_reason = dv.result == DIR_V_INACTIVE
		                      ? "directory_disabled"
		                      : "directory_removed";
		if (db_waiting_token(app->db, &t, err, sizeof(err)) != 0) {
			gate_log(GATE_LOG_ERROR, rq->id, "waiting.record", "%s",
			         err);
			wait_deny(v, 503, "unavailable",
			          "the service cannot answer right now; try "
			          "again in a moment");
			return;
		}
		wait_deny(v, 403, "not_on_access_list",
		          "you are not on this meeting's access list");
		return;
	}
	if (gate_join_token(app, m, s, a->id, v) != 0) {
		wait_deny(v, 503, "unavailable",
		          "the join token could not be made; try again in a "
		          "moment");
		return;
	}
	t.outcome = "allow";
	t.reason = "token_issued";
	t.matched_group = group;
	r = db_waiting_token(app->db, &t, err, sizeof(err));
	if (r == DB_ECONFLICT) {
		/* Revoked while the directory was asked, or another poll
		 * took the one token first. */
		drop_token(v);
		if (db_admission_get(app->db, m->id, a->id, &now_a, err,
		                     sizeof(err)) == 0 &&
		    strcmp(now_a.state, "revoked") == 0)
			wait_deny(v, 403, "revoked",
			          revoked_message(now_a.revoke_reason));
		else
			wait_deny(v, 409, "already_admitted",
			          "you were already let in; to get a new join "
			          "link, enter the code again");
		return;
	}
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "waiting.record",
		         "the token could not be recorded, withheld: %s", err);
		drop_token(v);
		wait_deny(v, 503, "unavailable",
		          "the join could not be recorded, so it is not "
		          "allowed; try again in a moment");
		return;
	}
	v->status = 200;
	v->code = "admitted";
	v->message[0] = '\0';
}

void
gate_wait_status(struct gate_app *app, const struct gate_rq *rq,
                 struct gate_join_verdict *v)
{
	const struct gate_config *cfg = app->cfg;
	struct db_session sess;
	struct db_meeting m;
	struct db_admission_view a;
	char link[LINK_MAX + 1], err[512];
	unsigned char shash[32];
	long long now = (long long)time(NULL);
	int have_sess = 0, have_m = 0, r;

	memset(v, 0, sizeof(*v));
	memset(&m, 0, sizeof(m));
	memset(shash, 0, sizeof(shash));
	wait_deny(v, 503, "unavailable",
	          "the service cannot answer right now; try again in a "
	          "moment");
	if (!gate_join_link_ok(rq->params[0].p, rq->params[0].len)) {
		wait_deny(v, 404, "unknown_link",
		          "no meeting has this link; check the link you were "
		          "sent");
		goto out;
	}
	snprintf(link, sizeof(link), "%.*s", (int)rq->params[0].len,
	         rq->params[0].p);
	r = gate_session_of(app, rq, &sess, err, sizeof(err));
	if (r < 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "waiting.session", "%s", err);
		wait_deny(v, 503, "database_unavailable",
		          "the sign-in could not be checked; try again in a "
		          "moment");
		goto out;
	}
	if (r == 0 || !gate_cookie_hash(rq, GATE_SESSION_COOKIE, shash)) {
		if (r > 0)
			db_session_free(&sess);
		snprintf(v->login_url, sizeof(v->login_url),
		         "/saml/login?return=/j/%s", link);
		wait_deny(v, 401, "login_required",
		          "sign in first, then enter the code");
		goto out;
	}
	have_sess = 1;
	if ((v->identity = strdup(sess.identity)) == NULL)
		goto out;
	r = db_admit_meeting_by_link(app->db, link, &m, err, sizeof(err));
	if (r == DB_ENOTFOUND) {
		wait_deny(v, 404, "unknown_link",
		          "no meeting has this link; check the link you were "
		          "sent");
		goto out;
	}
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "waiting.meeting", "%s", err);
		wait_deny(v, 503, "database_unavailable",
		          "the meeting could not be looked up; try again in a "
		          "moment");
		goto out;
	}
	have_m = 1;
	if ((v->title = strdup(m.title ? m.title : "")) == NULL)
		goto out;
	snprintf(v->meeting_id, sizeof(v->meeting_id), "%s", m.id);
	r = db_admission_of_session(app->db, m.id, shash, &a, err, sizeof(err));
	if (r == DB_ENOTFOUND) {
		wait_deny(v, 404, "not_waiting",
		          "you are not waiting for this meeting; enter the "
		          "code first");
		goto out;
	}
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "waiting.lookup", "%s", err);
		wait_deny(v, 503, "database_unavailable",
		          "your place in the waiting room could not be looked "
		          "up; try again in a moment");
		goto out;
	}
	if ((v->admission_id = strdup(a.id)) == NULL)
		goto out;

	if (strcmp(a.state, "waiting") == 0) {
		v->status = 202;
		v->code = "waiting";
		v->expires_at = a.expires_at;
		snprintf(v->message, sizeof(v->message),
		         "waiting for the host to let you in");
	} else if (strcmp(a.state, "host_denied") == 0) {
		wait_deny(v, 403, "host_denied",
		          "the host did not let you in to this meeting");
	} else if (strcmp(a.state, "revoked") == 0) {
		wait_deny(v, 403, "revoked", revoked_message(a.revoke_reason));
	} else if (strcmp(a.state, "expired") == 0) {
		wait_deny(v, 410, "waiting_expired",
		          "nobody let you in while you waited; enter the code "
		          "again to wait again");
	} else if (strcmp(a.state, "admitted") != 0 || !a.host_decided ||
	           a.token_collected ||
	           a.admitted_at + cfg->adm_waiting_s < now) {
		/* A token from here only right after a host's admit, and
		 * once: any other join link costs the code again. */
		wait_deny(v, 409, "already_admitted",
		          "you were already let in; to get a new join link, "
		          "enter the code again");
	} else if (app->jwt == NULL || cfg->adm_redirect_url == NULL) {
		wait_deny(v, 503, "not_configured",
		          "admission is not configured on this server: set "
		          "[tokens] hs256_secret or rs256_key_file, and "
		          "[admission] redirect_url");
	} else {
		token_after_admit(app, rq, &m, &sess, &a, v);
	}
out:
	sodium_memzero(shash, sizeof(shash));
	if (have_m)
		db_meeting_free(&m);
	if (have_sess)
		db_session_free(&sess);
}

void
gate_h_join_status(struct gate_app *app, const struct gate_rq *rq,
                   struct gate_resp *out)
{
	struct gate_join_verdict v;
	json_t *o = NULL, *extra = NULL;

	gate_wait_status(app, rq, &v);
	if (v.status == 200 || v.status == 202) {
		o = json_pack("{s:s,s:s,s:s}", "admission_id", v.admission_id,
		              "meeting_id", v.meeting_id, "state", v.code);
		if (o != NULL && v.status == 202)
			json_object_set_new(o, "waiting_until",
			                    json_integer(v.expires_at));
		if (o != NULL && v.status == 200 &&
		    (json_object_set_new(o, "token", json_string(v.token)) !=
		         0 ||
		     json_object_set_new(o, "redirect_url",
		                         json_string(v.redirect_url)) != 0 ||
		     json_object_set_new(o, "expires_at",
		                         json_integer(v.expires_at)) != 0)) {
			json_decref(o);
			o = NULL;
		}
		if (o == NULL)
			gate_resp_error(out, rq, 503, "unavailable", NULL,
			                "the answer could not be made; try "
			                "again in a moment");
		else
			gate_resp_json(out, v.status, o);
	} else {
		if (strcmp(v.code, "login_required") == 0)
			extra = json_pack("{s:s}", "login_url", v.login_url);
		else if (v.admission_id != NULL)
			extra =
			    json_pack("{s:s}", "admission_id", v.admission_id);
		if (v.status == 503)
			out->retry_after = 2;
		gate_resp_error(out, rq, v.status, v.code, extra, "%s",
		                v.message);
	}
	gate_join_verdict_free(&v);
}

/* ---- the host's side --------------------------------------------------- */

static void
decision_set(struct gate_wait_decision *d, int status, const char *code,
             const char *fmt, const char *arg)
{
	d->status = status;
	d->code = code;
	snprintf(d->message, sizeof(d->message), fmt, arg);
}

void
gate_waiting_decide(struct gate_app *app, const struct gate_rq *rq,
                    const struct gate_principal *p, const struct db_meeting *m,
                    const char *admission_id, int admit,
                    struct gate_wait_decision *d)
{
	struct db_admission_view a, after;
	struct db_waiting_decision wd;
	struct dir_verdict dv;
	const char *group = NULL, *xff;
	char err[512], src[64];
	int r, member = 0;

	memset(d, 0, sizeof(*d));
	decision_set(d, 503, "database_unavailable",
	             "%s: nothing was changed; retry shortly",
	             "the database is unavailable");
	r = db_admission_get(app->db, m->id, admission_id, &a, err,
	                     sizeof(err));
	if (r == DB_ENOTFOUND) {
		decision_set(d, 404, "not_found",
		             "no waiting entry %s in this meeting",
		             admission_id);
		return;
	}
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "waiting.db_error", "%s", err);
		return;
	}
	snprintf(d->admission_id, sizeof(d->admission_id), "%s", a.id);
	snprintf(d->identity, sizeof(d->identity), "%s", a.identity);
	snprintf(d->state, sizeof(d->state), "%s", a.state);
	if (strcmp(a.state, "waiting") != 0) {
		decision_set(d, 409, "not_waiting",
		             "this person is no longer waiting (the entry is "
		             "%s); nothing was changed",
		             a.state);
		return;
	}

	memset(&wd, 0, sizeof(wd));
	if (admit) {
		member = gate_admit_member(app->dir, m, a.identity, &dv, &group,
		                           err, sizeof(err));
		d->directory = dir_verdict_name(dv.result);
		if (member < 0) {
			gate_log(GATE_LOG_WARN, rq->id, "waiting.directory",
			         "%s", err);
			decision_set(
			    d, 503, "directory_unavailable",
			    "%s: the person was not let in and is still "
			    "waiting; retry shortly",
			    "the directory cannot be reached");
			return;
		}
		if (member) {
			wd.action = "admit";
			wd.matched_group = group;
			wd.audit_reason = "host_admitted";
		} else {
			/* Not admitted any more: the entry ends, so it does
			 * not stay on the list for another try. */
			wd.action = "end";
			wd.revoke_reason = dv.result == DIR_V_INACTIVE
			                       ? "directory_disabled"
			                       : "directory_removed";
			wd.audit_reason = dir_verdict_name(dv.result);
		}
		wd.directory = d->directory;
	} else {
		wd.action = "deny";
		wd.audit_reason = "host_denied";
	}
	xff = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                  "X-Forwarded-For");
	wd.source_addr = NULL;
	if (gate_lockout_source_addr(rq->remote, xff,
	                             app->cfg->adm_trusted_proxies, src,
	                             sizeof(src)) == 0)
		wd.source_addr = src;
	wd.forwarded_for = xff;
	wd.meeting_id = m->id;
	wd.admission_id = a.id;
	wd.actor = p->identity;
	wd.via = p->via;
	wd.actor_idp = p->idp[0] != '\0' ? p->idp : NULL;
	wd.user_agent = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                            "User-Agent");
	wd.request_id = rq->id;
	wd.node = app->cfg->node_name;
	r = db_waiting_decide(app->db, &wd, &after, err, sizeof(err));
	if (r == DB_ECONFLICT) {
		snprintf(d->state, sizeof(d->state), "%s", after.state);
		decision_set(d, 409, "not_waiting",
		             "someone decided first: the entry is %s; nothing "
		             "was changed",
		             after.state);
		return;
	}
	if (r == DB_ENOTFOUND) {
		decision_set(d, 404, "not_found",
		             "no waiting entry %s in this meeting",
		             admission_id);
		return;
	}
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "waiting.db_error", "%s", err);
		decision_set(d, 503, "database_unavailable",
		             "%s: nothing was changed; retry shortly",
		             "the database is unavailable");
		return;
	}
	snprintf(d->state, sizeof(d->state), "%s", after.state);
	gate_log(GATE_LOG_INFO, rq->id, "waiting.decided", "%s: %s -> %s (%s)",
	         p->identity, after.identity, after.state, wd.audit_reason);
	if (strcmp(wd.action, "admit") == 0) {
		decision_set(d, 200, "admitted", "%s was let in",
		             after.identity);
	} else if (strcmp(wd.action, "deny") == 0) {
		d->status = 200;
		d->code = "host_denied";
		snprintf(d->message, sizeof(d->message), "%s was turned away",
		         after.identity);
	} else {
		d->status = 409;
		d->code = "not_on_access_list";
		snprintf(d->message, sizeof(d->message),
		         "%s is no longer an active member of an allowed group "
		         "or an active invitee (directory: %s), so they were "
		         "not let in; their waiting-room entry has ended",
		         after.identity, d->directory);
	}
}
