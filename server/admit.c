/*
 * POST /v1/join/{link}: the admission decision as a JSON API.
 *
 * Every attempt runs both checks, the live directory check and the code
 * check, whatever the first one found, so the time an answer takes says
 * nothing about either. The answer follows DESIGN.md's order (malformed,
 * locked, directory unavailable, not a member, wrong code, admitted); a
 * non-member never learns whether the code was right. The decision
 * starts as a denial and becomes an admission only on the last line,
 * after the attempt (audit record, lockout counters, admission row) is
 * committed in one transaction; if that fails the answer is 503.
 *
 * What an attempt costs (issue 9): one database round trip reads the
 * session, the meeting, its codes and the lock state (db_admit_context),
 * one directory round trip checks the person (memberof), and one more
 * database round trip records it (db_admit_record). The record is group
 * committed (db_admit_batch.h): attempts recorded at the same time on this
 * node share one transaction, round trip and WAL flush ([database]
 * commit_batch_max, committers), each with its own answer; a lone attempt
 * is recorded alone at once.
 *
 * The join token is made only after the record says "admitted" (its id,
 * the token's jti, is known from the read): the record can still turn
 * the attempt into a "locked" denial (a racing attempt locked it), and a
 * signature made before would let a "locked" answer to the right code
 * take longer than one to a wrong code. When the token cannot be made
 * the admission is ended again at once, with its own audit record, so
 * nobody told "not admitted" holds an admission.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "db/db_admit_batch.h"
#include "server/admit.h"
#include "server/http_int.h"
#include "server/jwt.h"
#include "server/meetings.h"

#define LINK_MAX 64
#define REDIRECT_MAX 8192
/* lockout_counters.key holds at most 1024 characters (0001_init.sql). */
#define LOCK_KEY_MAX 1024

int
gate_join_link_ok(const char *p, size_t len)
{
	if (len == 0 || len > LINK_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

/* First string of attribute name (a string or an array of strings). */
static const char *
attr(json_t *attrs, const char *name)
{
	json_t *v = json_object_get(attrs, name);

	if (json_is_array(v))
		v = json_array_get(v, 0);
	return json_string_value(v);
}

size_t
gate_utf8_prefix(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	/* Back off continuation bytes (10xxxxxx) to a character start. */
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

static long long
lock_duration(void *ctx, int lock_count)
{
	return gate_lockout_duration(ctx, lock_count);
}

static void
policy_of(const struct gate_config *cfg, struct gate_lockout_policy *p)
{
	p->max_failures = cfg->adm_max_failures;
	p->window_s = cfg->adm_window_s;
	p->lock_s = cfg->adm_lock_s;
	p->lock_max_s = cfg->adm_lock_max_s;
	p->addr_max_failures = cfg->adm_src_max_failures;
	p->probe_identities = cfg->adm_probe_identities;
	p->probe_window_s = cfg->adm_probe_window_s;
}

static int
is_invitee(const struct db_meeting *m, const char *identity)
{
	for (size_t i = 0; i < m->ninvitees; i++)
		if (strcmp(m->invitees[i], identity) == 0)
			return 1;
	return 0;
}

int
gate_admit_member(struct dir_pool *dir, const struct db_meeting *m,
                  const char *identity, struct dir_verdict *v,
                  const char **group, char *err, size_t errlen)
{
	int r = -1;

	*group = NULL;
	memset(v, 0, sizeof(*v));
	v->result = DIR_V_UNAVAILABLE;
	/* A meeting without groups admits its invitees only: their entry
	 * must still exist and be active, asked without a group. */
	if (m->ngroups > 0)
		(void)dir_check_member(dir, identity, strlen(identity),
		                       (const char *const *)m->groups,
		                       m->ngroups, v, err, errlen);
	else
		(void)dir_check_active(dir, identity, strlen(identity), v, err,
		                       errlen);
	if (v->result == DIR_V_UNAVAILABLE)
		goto out;
	r = 0;
	if (v->result == DIR_V_MEMBER) {
		*group = v->group_dn;
		r = 1;
	} else if (v->result == DIR_V_NOT_MEMBER && is_invitee(m, identity)) {
		*group = "invitee";
		r = 1;
	}
out:
	return r;
}

/* The join token from one reload's config and keys (live): claims and
 * signature never from two. */
static int
join_token(const struct gate_live *live, const struct db_meeting *m,
           const struct db_session *s, const char *admission_id,
           struct gate_join_verdict *v)
{
	const struct gate_config *cfg = live->cfg;
	struct gate_jwt_claims c;
	json_t *attrs = NULL;
	const char *name, *mail;
	char *tok = NULL, *url = NULL, err[256];
	char name_buf[GATE_CLAIM_NAME_MAX + 1];
	int64_t now = (int64_t)time(NULL);
	int r = -1;

	if (s->attributes_json != NULL)
		attrs = json_loads(s->attributes_json, 0, NULL);
	memset(&c, 0, sizeof(c));
	c.iss = cfg->tok_issuer;
	c.aud = cfg->tok_audience;
	c.sub = cfg->tok_subject;
	c.room = m->platform_room;
	c.jti = admission_id;
	c.user_id = s->identity;
	/* The IdP's attributes are unbounded, the token is not: a long name
	 * is cut at a character boundary; a long address is left out (cut,
	 * it could name someone else). */
	if ((name = attr(attrs, "displayName")) == NULL)
		name = attr(attrs, "cn");
	if (name != NULL) {
		snprintf(name_buf, sizeof(name_buf), "%.*s",
		         (int)gate_utf8_prefix(name, GATE_CLAIM_NAME_MAX), name);
		c.user_name = name_buf;
	}
	if ((mail = attr(attrs, "mail")) == NULL)
		mail = attr(attrs, "email");
	if (mail != NULL && strlen(mail) <= GATE_CLAIM_MAIL_MAX)
		c.user_email = mail;
	c.nbf = now;
	c.exp = now + cfg->tok_ttl_s;
	if (gate_jwt_mint(live->jwt, &c, &tok, err, sizeof(err)) != 0 ||
	    gate_admit_render_url(cfg->adm_redirect_url, m->platform_room, tok,
	                          REDIRECT_MAX, &url, err, sizeof(err)) != 0) {
		gate_log(GATE_LOG_ERROR, NULL, "admission.token", "%s", err);
		goto out;
	}
	v->token = tok;
	v->redirect_url = url;
	v->expires_at = c.exp;
	tok = url = NULL;
	r = 0;
out:
	if (tok != NULL) {
		sodium_memzero(tok, strlen(tok));
		free(tok);
	}
	if (url != NULL) {
		sodium_memzero(url, strlen(url));
		free(url);
	}
	json_decref(attrs);
	return r;
}

int
gate_join_token(struct gate_app *app, const struct db_meeting *m,
                const struct db_session *s, const char *admission_id,
                struct gate_join_verdict *v)
{
	struct gate_live live;

	gate_app_live(app, &live);
	return join_token(&live, m, s, admission_id, v);
}

/*
 * The identity+meeting lockout key: "<prefix> <identity>", or, when that
 * does not fit the counters' key, "<prefix> sha256:<hex of the
 * identity's SHA-256>" -- the same rule as roomgate_lock_key (migration
 * 0015), which the attempt's read uses. 0, or -1 when out is too small.
 */
static int
lock_key(const char *prefix, const char *identity, char *out, size_t outlen)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	int n = snprintf(out, outlen, "%s %s", prefix, identity);

	if (n >= 0 && (size_t)n <= LOCK_KEY_MAX && (size_t)n < outlen)
		return 0;
	crypto_hash_sha256(h, (const unsigned char *)identity,
	                   strlen(identity));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	n = snprintf(out, outlen, "%s sha256:%s", prefix, hex);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Ends an admission just recorded whose answer could not be made (see
 * the top of this file). */
static void
unissue(struct gate_app *app, const struct gate_rq *rq,
        const struct db_attempt *a, const char *admission_id)
{
	char err[512];
	int ended = 0;

	if (db_admission_unissue(app->db, a, admission_id, &ended, err,
	                         sizeof(err)) != 0)
		gate_log(GATE_LOG_ERROR, rq->id, "admission.unissue_failed",
		         "admission %s was recorded but its answer could not "
		         "be made, and ending it failed too: it stays live "
		         "until revoked: %s",
		         admission_id, err);
	else
		gate_log(GATE_LOG_WARN, rq->id, "admission.unissued",
		         "admission %s ended again (%s): its join token could "
		         "not be made",
		         admission_id, ended ? "ended" : "already over");
}

/* Takes a token made for an attempt that was not committed back. */
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

/* What a person can do about a 503 with this reason. */
static const char *
unavailable_message(const char *reason)
{
	if (strcmp(reason, "directory_unavailable") == 0)
		return "the directory cannot be reached, so nobody is "
		       "admitted; try again in a moment";
	return "the service cannot decide right now, so nobody is admitted; "
	       "try again in a moment";
}

/* Sets a denial: status, stable error code and a message to act on. */
static void
deny(struct gate_join_verdict *v, int status, const char *code, const char *msg)
{
	v->status = status;
	v->code = code;
	snprintf(v->message, sizeof(v->message), "%s", msg);
}

/* No session: where to sign in first. */
static void
need_login(const char *link, size_t linklen, struct gate_join_verdict *v)
{
	if (gate_join_link_ok(link, linklen))
		snprintf(v->login_url, sizeof(v->login_url),
		         "/saml/login?return=/j/%.*s", (int)linklen, link);
	else
		snprintf(v->login_url, sizeof(v->login_url), "/saml/login");
	deny(v, 401, "login_required",
	     "sign in first, then try the code again");
}

void
gate_join_verdict_free(struct gate_join_verdict *v)
{
	if (v->token != NULL) {
		sodium_memzero(v->token, strlen(v->token));
		free(v->token);
	}
	if (v->redirect_url != NULL) {
		sodium_memzero(v->redirect_url, strlen(v->redirect_url));
		free(v->redirect_url);
	}
	free(v->identity);
	free(v->title);
	free(v->admission_id);
	memset(v, 0, sizeof(*v));
}

/* count_source: 0 when a failure is not counted against the source
 * address (see gate_join_decide_get). */
static int
join_decide(struct gate_app *app, const struct gate_rq *rq,
            const char *code_in, const char *code_hint, int count_source,
            struct gate_join_verdict *v)
{
	struct gate_live live;
	const struct gate_config *cfg;
	struct gate_lockout_policy pol;
	struct db_admit_ctx ctx;
	const struct db_session *sess = &ctx.session;
	const struct db_meeting *m = &ctx.meeting;
	struct db_attempt a;
	struct db_attempt_result res;
	struct db_admit_group group_of;
	struct dir_verdict dv;
	json_t *details = NULL;
	char link[LINK_MAX + 1], src[64], im_key[LOCK_KEY_MAX + 1], err[512];
	char cerr[256];
	char derr[256];
	char digits[GATE_CODE_BUF], *details_s = NULL;
	const char *xff = NULL, *ua = NULL, *reason = "error", *group = NULL;
	unsigned char shash[32];
	size_t ndigits = 0;
	long long until = 0, now = (long long)time(NULL);
	int have_m = 0, link_ok, malformed = 0;
	int code_ok = -1, member_ok = -1, code_rc = -1, lock_rc = -1;
	int status = 503, r;

	/* One config (and its keys) for the whole attempt, whatever a
	 * reload swaps in meanwhile. */
	gate_app_live(app, &live);
	cfg = live.cfg;
	memset(v, 0, sizeof(*v));
	deny(v, 503, "unavailable",
	     "the service cannot decide right now, so nobody is admitted; "
	     "try again in a moment");
	memset(&ctx, 0, sizeof(ctx));
	memset(&dv, 0, sizeof(dv));
	memset(&a, 0, sizeof(a));
	digits[0] = '\0';
	cerr[0] = '\0';
	derr[0] = '\0';
	policy_of(cfg, &pol);

	if (!gate_cookie_hash(rq, GATE_SESSION_COOKIE, shash)) {
		need_login(rq->params[0].p, rq->params[0].len, v);
		goto out;
	}
	xff = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                  "X-Forwarded-For");
	ua = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                 "User-Agent");
	if (gate_lockout_source_addr(rq->remote, xff, cfg->adm_trusted_proxies,
	                             src, sizeof(src)) != 0)
		snprintf(src, sizeof(src), "0.0.0.0");
	link_ok = gate_join_link_ok(rq->params[0].p, rq->params[0].len);
	if (link_ok)
		snprintf(link, sizeof(link), "%.*s", (int)rq->params[0].len,
		         rq->params[0].p);

	/* The session, the meeting (an unknown link is a failed attempt of
	 * this person), its codes and the lock state: one read. */
	r = db_admit_context(app->db, shash, cfg->session_idle_timeout_s,
	                     db_session_touch_s(cfg->session_idle_timeout_s),
	                     link_ok ? link : NULL,
	                     src, &ctx, err, sizeof(err));
	if (r != 0) {
		deny(v, 503, "database_unavailable",
		     "the sign-in could not be checked; try again in a moment");
		goto out;
	}
	if (!ctx.have_session) {
		need_login(rq->params[0].p, rq->params[0].len, v);
		goto out;
	}
	if ((v->identity = strdup(sess->identity)) == NULL)
		goto out;
	if (live.jwt == NULL || cfg->adm_redirect_url == NULL) {
		deny(v, 503, "not_configured",
		     "admission is not configured on this server: set "
		     "[tokens] hs256_secret or rs256_key_file, and "
		     "[admission] redirect_url");
		goto out;
	}
	have_m = ctx.have_meeting;
	until = ctx.locked_until;
	lock_rc = 0;
	if (have_m && (v->title = strdup(m->title ? m->title : "")) == NULL) {
		reason = "database_unavailable";
		goto decide;
	}
	/* An identity too long for the key is counted under its hash. */
	if (lock_key(have_m ? m->id : "unknown-link", sess->identity, im_key,
	             sizeof(im_key)) != 0) {
		reason = "database_unavailable";
		goto decide;
	}

	/* Both checks, whatever the first found. */
	if (have_m) {
		member_ok = gate_admit_member(app->dir, m, sess->identity, &dv,
		                              &group, derr, sizeof(derr));
		if (code_in == NULL) {
			malformed = 1;
			snprintf(cerr, sizeof(cerr), "%s",
			         code_hint ? code_hint : "enter the code");
		} else if (gate_code_normalize(code_in, strlen(code_in),
		                               m->code_length, digits,
		                               sizeof(digits), &ndigits, cerr,
		                               sizeof(cerr)) != GATE_CODE_OK) {
			malformed = 1;
		} else {
			code_rc = gate_code_verify_live(app, m->id, ctx.codes,
			                                ctx.ncodes, digits,
			                                ndigits, NULL);
			code_ok = code_rc == 1;
		}
		if (malformed)
			code_ok = 0;
	}

	/* DESIGN.md's order of answers. */
	if (!have_m && lock_rc != 0) {
		reason = "database_unavailable";
	} else if (!have_m) {
		status = until > now ? 429 : 404;
		reason = until > now ? "locked" : "unknown_link";
	} else if (malformed) {
		status = 400;
		reason = "malformed";
	} else if (lock_rc != 0) {
		reason = "database_unavailable";
	} else if (until > now) {
		status = 429;
		reason = "locked";
	} else if (member_ok < 0) {
		reason = "directory_unavailable";
	} else if (code_rc < 0) {
		reason = "database_unavailable";
	} else if (!member_ok) {
		status = 403;
		reason = "not_member";
	} else if (!code_ok) {
		status = 401;
		reason = "invalid_code";
	} else {
		status = m->waiting_room ? 202 : 200;
		reason = m->waiting_room ? "waiting" : "admitted";
	}

decide:
	details =
	    json_pack("{s:s}", "directory", dir_verdict_name(dv.result));
	if (details != NULL && have_m && dv.result != DIR_V_MEMBER &&
	    member_ok == 1)
		json_object_set_new(details, "invitee", json_true());
	details_s = details ? json_dumps(details, JSON_COMPACT) : NULL;
	a.meeting_id = have_m ? m->id : NULL;
	a.identity = sess->identity;
	a.idp = sess->idp;
	a.source_addr = src;
	a.forwarded_for = xff;
	a.user_agent = ua;
	a.request_id = rq->id;
	a.node = cfg->node_name;
	a.outcome = status == 200 || status == 202 ? "allow" : "deny";
	a.reason = reason;
	a.matched_group = member_ok == 1 ? group : NULL;
	a.code_ok = code_ok;
	a.member_ok = member_ok;
	a.details_json = details_s;
	a.state = status == 202 ? "waiting" : "admitted";
	a.admission_id = ctx.new_id[0] ? ctx.new_id : NULL;
	a.session_hash = shash;
	a.failure =
	    status == 400 || status == 401 || status == 403 || status == 404;
	a.im_key = im_key;
	a.src_key = src;
	a.max_failures = pol.max_failures;
	a.window_s = pol.window_s;
	a.src_max_failures = pol.addr_max_failures;
	a.src_lock_s = pol.lock_s;
	a.quiet_s = pol.lock_max_s;
	a.im_duration = lock_duration;
	a.duration_ctx = &pol;
	a.probe_identities = pol.probe_identities;
	a.probe_window_s = pol.probe_window_s;
	a.waiting_s = cfg->adm_waiting_s;
	/* Malformed input is answered before the lock (DESIGN.md). */
	a.lockable = status != 400;
	a.source_not_counted = !count_source;
	/* Recorded together with the attempts of other requests recorded at
	 * the same time (group commit): its own answer all the same. */
	group_of.batch_max = cfg->db_commit_batch_max;
	group_of.committers = cfg->db_committers;
	group_of.wait_ms = cfg->db_acquire_timeout_ms;
	if (db_admit_record_grouped(app->db, &group_of, &a, &res, err,
	                            sizeof(err)) != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "admission.record",
		         "the attempt could not be recorded, denied: %s", err);
		deny(v, 503, "unavailable",
		     "the attempt could not be recorded, so nobody is "
		     "admitted; try again in a moment");
		goto out;
	}
	if (res.locked) {
		/* Another attempt locked this identity+meeting (or the source)
		 * while this one ran: recorded as "locked", answered so, and
		 * the code's verdict stays unsaid. No token was made for it,
		 * so this answer costs the same whatever the code was. */
		status = 429;
		until = res.retry_at;
	} else if (res.session_gone) {
		/* Signed out (or revoked) while this attempt ran: recorded as
		 * "session_revoked", nothing admitted. */
		need_login(rq->params[0].p, rq->params[0].len, v);
		goto out;
	}

	switch (status) {
	case 404:
		deny(v, 404, "unknown_link",
		     "no meeting has this link; check the link you were sent");
		break;
	case 400:
		deny(v, 400, "malformed_code", cerr);
		break;
	case 429:
		v->retry_after = until - now;
		v->retry_at = until;
		v->status = 429;
		v->code = "locked";
		snprintf(v->message, sizeof(v->message),
		         "too many failed attempts; try again in %lld seconds",
		         until - now);
		break;
	case 403:
		deny(v, 403, "not_on_access_list",
		     "you are not on this meeting's access list");
		break;
	case 401:
		deny(v, 401, "invalid_code", "invalid code");
		break;
	case 200:
	case 202:
		snprintf(v->meeting_id, sizeof(v->meeting_id), "%s", m->id);
		if (res.admission_id[0] == '\0') {
			deny(v, 503, "unavailable",
			     "the attempt could not be recorded, so nobody is "
			     "admitted; try again in a moment");
			break;
		}
		/* The token only now, for an admission on record. */
		if ((v->admission_id = strdup(res.admission_id)) == NULL ||
		    (status == 200 &&
		     join_token(&live, m, sess, res.admission_id, v) != 0)) {
			drop_token(v);
			unissue(app, rq, &a, res.admission_id);
			deny(v, 503, "unavailable",
			     "the join token could not be made, so nobody is "
			     "admitted; try again in a moment");
			break;
		}
		v->status = status;
		v->code = status == 202 ? "waiting" : "admitted";
		v->message[0] = '\0';
		break;
	default:
		gate_log(GATE_LOG_WARN, rq->id, "admission.unavailable",
		         "denied (%s)%s%s", reason, derr[0] ? ": " : "",
		         derr);
		deny(v, 503, reason, unavailable_message(reason));
		break;
	}
out:
	sodium_memzero(digits, sizeof(digits));
	sodium_memzero(shash, sizeof(shash));
	json_decref(details);
	free(details_s);
	db_admit_ctx_free(&ctx);
	return v->status == 200 || v->status == 202 ? 0 : -1;
}

int
gate_join_decide(struct gate_app *app, const struct gate_rq *rq,
                 const char *code_in, const char *code_hint,
                 struct gate_join_verdict *v)
{
	return join_decide(app, rq, code_in, code_hint, 1, v);
}

int
gate_join_decide_get(struct gate_app *app, const struct gate_rq *rq,
                     struct gate_join_verdict *v)
{
	return join_decide(app, rq, NULL, NULL, 0, v);
}

/* A JSON Content-Type, as auth.c requires of cookie-authenticated changes:
 * a foreign page cannot send one without a CORS preflight. */
static int
json_content_type(const struct gate_rq *rq)
{
	const char *ct = MHD_lookup_connection_value(
	    rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);

	return ct != NULL && strncasecmp(ct, "application/json", 16) == 0 &&
	       (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* The JSON rendering of a verdict. */
void
gate_h_join(struct gate_app *app, const struct gate_rq *rq,
            struct gate_resp *out)
{
	struct gate_join_verdict v;
	json_t *body, *ok = NULL, *extra = NULL;
	const char *code_in;

	/* The session cookie rides along on a cross-site form post too; such
	 * a post (text/plain) must not reach the decision. */
	if (MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND,
	                                GATE_SESSION_COOKIE) != NULL &&
	    !json_content_type(rq)) {
		gate_resp_error(out, rq, 403, "csrf", NULL,
		                "a change made with the session cookie must be "
		                "sent as Content-Type: application/json");
		return;
	}
	body = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES,
	                  NULL);
	code_in = json_string_value(json_object_get(body, "code"));
	gate_join_decide(app, rq, code_in,
	                 "send a JSON object with the code as a string: "
	                 "{\"code\": \"...\"}",
	                 &v);
	switch (v.status) {
	case 200:
	case 202:
		ok = json_pack("{s:s,s:s,s:s}", "admission_id", v.admission_id,
		               "state", v.code, "meeting_id", v.meeting_id);
		if (ok != NULL && v.status == 200 &&
		    (json_object_set_new(ok, "token", json_string(v.token)) !=
		         0 ||
		     json_object_set_new(ok, "redirect_url",
		                         json_string(v.redirect_url)) != 0 ||
		     json_object_set_new(ok, "expires_at",
		                         json_integer(v.expires_at)) != 0)) {
			json_decref(ok);
			ok = NULL;
		}
		if (ok == NULL) {
			gate_resp_error(out, rq, 503, "unavailable", NULL,
			                "the join token could not be made; "
			                "try again in a moment");
			break;
		}
		gate_resp_json(out, v.status, ok);
		break;
	default:
		if (strcmp(v.code, "login_required") == 0)
			extra = json_pack("{s:s}", "login_url", v.login_url);
		else if (v.status == 429) {
			out->retry_after = (int)v.retry_after;
			extra = json_pack("{s:I,s:I}", "retry_after",
			                  (json_int_t)v.retry_after, "retry_at",
			                  (json_int_t)v.retry_at);
		}
		gate_resp_error(out, rq, v.status, v.code, extra, "%s",
		                v.message);
		break;
	}
	if (body != NULL) {
		/* The typed code lives in the parsed body and the raw body;
		 * the raw body is wiped by gate_buf_free when http.c ends the
		 * request. */
		json_t *c = json_object_get(body, "code");

		if (json_is_string(c))
			sodium_memzero((char *)json_string_value(c),
			               json_string_length(c));
		json_decref(body);
	}
	gate_join_verdict_free(&v);
}

void
gate_admit_metrics(struct gate_buf *b)
{
	struct db_admit_batch_stats st;
	static const char *const le[DB_ADMIT_BATCH_BUCKETS] = {
	    "1", "2", "4", "8", "16", "32", "64"};
	uint64_t cum = 0;

	db_admit_batch_get_stats(&st);
	gate_buf_printf(b, "# HELP roomgate_admit_batch_size Admission "
	                   "attempts recorded per transaction (group "
	                   "commit).\n"
	                   "# TYPE roomgate_admit_batch_size histogram\n");
	for (int i = 0; i < DB_ADMIT_BATCH_BUCKETS; i++) {
		cum += st.size_le[i];
		gate_buf_printf(b,
		                "roomgate_admit_batch_size_bucket{le=\"%s\"} "
		                "%llu\n",
		                le[i], (unsigned long long)cum);
	}
	gate_buf_printf(
	    b,
	    "roomgate_admit_batch_size_bucket{le=\"+Inf\"} %llu\n"
	    "roomgate_admit_batch_size_sum %llu\n"
	    "roomgate_admit_batch_size_count %llu\n"
	    "# HELP roomgate_admit_batches_failed_total Admission batches "
	    "whose transaction failed as a whole (every attempt denied).\n"
	    "# TYPE roomgate_admit_batches_failed_total counter\n"
	    "roomgate_admit_batches_failed_total %llu\n"
	    "# HELP roomgate_admit_batch_retried_total Attempts recorded "
	    "again alone after a deadlock or serialization failure.\n"
	    "# TYPE roomgate_admit_batch_retried_total counter\n"
	    "roomgate_admit_batch_retried_total %llu\n"
	    "# HELP roomgate_admit_queue_refused_total Attempts denied "
	    "because the record queue was full or no committer took them "
	    "in time.\n"
	    "# TYPE roomgate_admit_queue_refused_total counter\n"
	    "roomgate_admit_queue_refused_total{reason=\"full\"} %llu\n"
	    "roomgate_admit_queue_refused_total{reason=\"timeout\"} %llu\n"
	    "# HELP roomgate_admit_queue_waiting Attempts waiting to be "
	    "recorded now.\n"
	    "# TYPE roomgate_admit_queue_waiting gauge\n"
	    "roomgate_admit_queue_waiting %d\n"
	    "# HELP roomgate_admit_committing Admission batches being "
	    "recorded now.\n"
	    "# TYPE roomgate_admit_committing gauge\n"
	    "roomgate_admit_committing %d\n",
	    (unsigned long long)st.batches, (unsigned long long)st.attempts,
	    (unsigned long long)st.batches, (unsigned long long)st.failed,
	    (unsigned long long)st.retried,
	    (unsigned long long)st.queue_full,
	    (unsigned long long)st.queue_timeouts, st.queued, st.committing);
}
