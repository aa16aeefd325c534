/*
 * SAML sign-in endpoints: /saml/metadata, /saml/login, /saml/acs,
 * /saml/logout, and /v1/me. The SAML decisions are in saml/; this file
 * binds them to the browser (cookies), the database (pending requests,
 * replay cache, sessions) and the audit log. Every failure of the ACS
 * ends with an error page, an audit record with the reason and no
 * session; an audit write that fails turns the answer into 503.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "server/http_int.h"

/* Longest form field we copy out of an ACS body. */
#define FORM_FIELD_MAX (8 * 1024 * 1024)

static const char *
header(const struct gate_rq *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

static const char *
source_addr(const struct gate_rq *rq)
{
	return (rq->remote != NULL && strcmp(rq->remote, "-") != 0)
		       ? rq->remote
		       : NULL;
}

/* Writes one 'sso' audit row; 0 or -1 (then the caller fails closed). */
static int
audit(struct gate_app *app, const struct gate_rq *rq, const char *event,
      const char *outcome, const char *reason, const char *identity,
      const char *idp, const char *detail)
{
	struct db_audit_sso a;
	struct db_actor by;
	json_t *d = NULL;
	char *dj = NULL, err[512], src[64];
	int r;

	if (detail != NULL && *detail != '\0') {
		d = json_pack("{s:s}", "detail", detail);
		dj = d ? json_dumps(d, JSON_COMPACT) : NULL;
		json_decref(d);
	}
	memset(&a, 0, sizeof(a));
	a.event_type = event;
	a.outcome = outcome;
	a.reason = reason;
	a.identity = identity;
	a.idp = idp;
	/* The source by the [admission] trusted_proxies rule, and the
	 * forwarded chain as received, as every other record has them. */
	gate_rq_actor(app, rq, NULL, &by, src);
	a.source_addr = by.source_addr;
	a.forwarded_for = by.forwarded_for;
	a.user_agent = by.user_agent;
	a.request_id = rq->id;
	a.node = app->cfg->node_name;
	a.details_json = dj;
	r = db_audit_sso(app->db, &a, err, sizeof(err));
	free(dj);
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "audit_failed", "%s", err);
		return -1;
	}
	return 0;
}

void
gate_html_escape(struct gate_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': gate_buf_add(b, "&amp;", 5); break;
		case '<': gate_buf_add(b, "&lt;", 4); break;
		case '>': gate_buf_add(b, "&gt;", 4); break;
		case '"': gate_buf_add(b, "&quot;", 6); break;
		case '\'': gate_buf_add(b, "&#39;", 5); break;
		default: gate_buf_add(b, s, 1); break;
		}
	}
}

/* A plain error page a person can act on. */
static void
error_page(struct gate_resp *out, const struct gate_rq *rq, int status,
	   const char *reason, const char *what)
{
	struct gate_buf b;
	char *html;

	gate_buf_init(&b, 16384);
	gate_buf_printf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
			    "<title>Sign-in failed</title></head><body>"
			    "<h1>Sign-in failed</h1><p>");
	gate_html_escape(&b, what);
	gate_buf_printf(&b, "</p><p>Start again from the meeting link. If "
			    "this keeps happening, give your administrator "
			    "the code <code>");
	gate_html_escape(&b, reason);
	gate_buf_printf(&b, "</code> and request id <code>%s</code>.</p>"
			    "</body></html>\n",
			rq->id);
	html = gate_buf_take(&b, NULL);
	if (html == NULL) {
		gate_resp_error(out, rq, status, reason, NULL, "%s", what);
		return;
	}
	gate_resp_html(out, status, html);
}

static int
saml_ready(struct gate_app *app, const struct gate_rq *rq,
	   struct gate_resp *out)
{
	if (app->saml != NULL)
		return 1;
	gate_resp_error(out, rq, 503, "saml_not_configured", NULL,
			"SAML sign-in is not configured on this server: set "
			"[saml] entity_id, key_file, cert_file and "
			"idp_metadata_file");
	return 0;
}

void
gate_h_saml_metadata(struct gate_app *app, const struct gate_rq *rq,
		     struct gate_resp *out)
{
	const char *md;

	if (!saml_ready(app, rq, out))
		return;
	md = saml_sp_metadata(app->saml);
	free(out->body);
	out->body = strdup(md);
	out->len = out->body ? strlen(md) : 0;
	out->status = out->body ? 200 : 503;
	out->content_type = "application/samlmetadata+xml";
}

void
gate_h_saml_login(struct gate_app *app, const struct gate_rq *rq,
		  struct gate_resp *out)
{
	const char *ret;
	char *id = NULL, *url = NULL, *html = NULL, err[512], cookie[65];
	unsigned char hash[32];

	if (!saml_ready(app, rq, out))
		return;
	ret = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
					  "return");
	if (ret == NULL || *ret == '\0')
		ret = "/";
	if (!saml_return_path_ok(ret)) {
		if (audit(app, rq, "sso", "deny", "return_path_rejected", NULL,
			  NULL, "return value is not a path on this site") != 0) {
			gate_resp_error(out, rq, 503, "audit_unavailable", NULL,
					"the audit log cannot be written; try "
					"again later");
			return;
		}
		gate_resp_error(out, rq, 400, "return_path_rejected", NULL,
				"return must be a path on this site, starting "
				"with a single /");
		return;
	}
	if (saml_sp_authn_request(app->saml, NULL, &id, &url, &html, err,
				  sizeof(err)) != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "saml_authn_request", "%s",
			 err);
		gate_resp_error(out, rq, 500, "saml_error", NULL, "%s", err);
		return;
	}
	gate_random_token(cookie, hash);
	if (db_saml_request_put(app->db, id, hash, ret,
				app->cfg->saml_request_ttl_s, err,
				sizeof(err)) != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "saml_request_store", "%s",
			 err);
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
				"cannot start sign-in: the database is "
				"unavailable; try again shortly");
		goto out;
	}
	if (gate_cookie_add(out, app->cfg, GATE_SAML_BINDING_COOKIE, cookie,
			    "/saml/acs", app->cfg->saml_request_ttl_s,
			    1) != 0) {
		gate_resp_error(out, rq, 500, "internal", NULL,
				"cannot set the sign-in cookie");
		goto out;
	}
	if (url != NULL) {
		if (gate_resp_header(out, MHD_HTTP_HEADER_LOCATION, url) != 0) {
			gate_resp_error(out, rq, 500, "internal", NULL,
					"out of memory");
			goto out;
		}
		gate_resp_html(out, 302, strdup(""));
	} else {
		out->csp = "default-src 'none'; script-src 'unsafe-inline'; "
			   "form-action *; frame-ancestors 'none'";
		gate_resp_html(out, 200, html);
		html = NULL;
	}
out:
	sodium_memzero(cookie, sizeof(cookie));
	free(id);
	free(url);
	free(html);
}

char *
gate_form_value(const char *body, size_t len, const char *name, size_t *outlen)
{
	size_t nl = strlen(name), i = 0;

	while (i < len) {
		const char *f = body + i, *amp, *eq;
		size_t flen;

		amp = memchr(f, '&', len - i);
		flen = amp ? (size_t)(amp - f) : len - i;
		eq = memchr(f, '=', flen);
		if (eq != NULL && (size_t)(eq - f) == nl &&
		    memcmp(f, name, nl) == 0) {
			size_t vl = flen - nl - 1;
			char *v;

			if (vl > FORM_FIELD_MAX || (v = malloc(vl + 1)) == NULL)
				return NULL;
			memcpy(v, eq + 1, vl);
			v[vl] = '\0';
			for (size_t k = 0; k < vl; k++)
				if (v[k] == '+')
					v[k] = ' ';
			*outlen = MHD_http_unescape(v);
			/* Decoding shrinks in place: wipe what is left of
			 * the encoded value (it may be a secret). */
			sodium_memzero(v + *outlen, vl - *outlen);
			return v;
		}
		i += flen + 1;
	}
	return NULL;
}

/* ACS failure: audit, error page, no session. */
static void
acs_deny(struct gate_app *app, const struct gate_rq *rq,
	 struct gate_resp *out, const char *reason, const char *identity,
	 const char *idp, const char *detail)
{
	gate_log(GATE_LOG_WARN, rq->id, "sso_denied", "%s: %s", reason,
		 detail ? detail : "");
	if (audit(app, rq, "sso", "deny", reason, identity, idp, detail) != 0) {
		gate_resp_error(out, rq, 503, "audit_unavailable", NULL,
				"the audit log cannot be written; try again "
				"later");
		return;
	}
	if (strcmp(reason, "database_unavailable") == 0)
		error_page(out, rq, 503, reason,
			   "Sign-in is unavailable for a moment (the "
			   "database cannot be reached); try again shortly.");
	else
		error_page(out, rq, 403, reason,
			   "Your identity provider's answer was not "
			   "accepted.");
}

void
gate_h_saml_acs(struct gate_app *app, const struct gate_rq *rq,
		struct gate_resp *out)
{
	struct saml_identity id;
	struct db_session_new sn;
	const char *reason = SAML_R_INTERNAL;
	char *b64 = NULL, *ret = NULL, detail[512] = "", err[512];
	char cookie[65] = "", *loc = NULL;
	unsigned char bind[32], sid[32];
	size_t b64len = 0, loclen;
	int r;

	memset(&id, 0, sizeof(id));
	if (!saml_ready(app, rq, out))
		return;
	b64 = gate_form_value(rq->body, rq->body_len, "SAMLResponse", &b64len);
	if (b64 == NULL) {
		acs_deny(app, rq, out, SAML_R_BAD_REQUEST, NULL, NULL,
			 "no SAMLResponse form field");
		goto out;
	}
	if (saml_sp_acs(app->saml, b64, b64len, time(NULL), &id, &reason,
			detail, sizeof(detail)) != 0) {
		acs_deny(app, rq, out, reason, NULL, NULL, detail);
		goto out;
	}
	/* The replay cache first: a used assertion is refused as a replay
	 * on any node, whatever its request binding. */
	r = db_saml_replay_add(app->db, id.assertion_id,
			       (long long)id.replay_until, err, sizeof(err));
	if (r <= 0) {
		acs_deny(app, rq, out, r < 0 ? "database_unavailable"
					     : SAML_R_REPLAY,
			 id.identity, id.idp,
			 r < 0 ? err : "assertion id seen before");
		goto out;
	}

	/* InResponseTo must name a pending request of this very browser. */
	if (id.in_response_to != NULL) {
		if (!gate_cookie_hash(rq, GATE_SAML_BINDING_COOKIE, bind)) {
			acs_deny(app, rq, out, SAML_R_IN_RESPONSE_TO,
				 id.identity, id.idp,
				 "no sign-in cookie in this browser");
			goto out;
		}
		r = db_saml_request_take(app->db, id.in_response_to, bind, &ret,
					 err, sizeof(err));
		if (r < 0) {
			acs_deny(app, rq, out, "database_unavailable",
				 id.identity, id.idp, err);
			goto out;
		}
		if (r == 0) {
			acs_deny(app, rq, out, SAML_R_IN_RESPONSE_TO,
				 id.identity, id.idp,
				 "InResponseTo is not a pending request of "
				 "this browser");
			goto out;
		}
	}
	/* A fresh session id at every login (no fixation). */
	gate_random_token(cookie, sid);
	memset(&sn, 0, sizeof(sn));
	sn.id_hash = sid;
	sn.identity = id.identity;
	sn.idp = id.idp;
	sn.name_id = id.name_id;
	sn.name_id_format = id.name_id_format;
	sn.session_index = id.session_index;
	sn.authn_instant = id.authn_instant;
	sn.attributes_json = id.attributes_json;
	sn.absolute_timeout_s = app->cfg->session_absolute_timeout_s;
	sn.source_addr = source_addr(rq);
	sn.user_agent = header(rq, MHD_HTTP_HEADER_USER_AGENT);
	if (db_session_create(app->db, &sn, err, sizeof(err)) != 0) {
		acs_deny(app, rq, out, "database_unavailable", id.identity,
			 id.idp, err);
		goto out;
	}
	if (audit(app, rq, "sso", "allow", "login", id.identity, id.idp,
		  NULL) != 0) {
		/* Fail closed: no record, no session. */
		(void)db_session_revoke(app->db, sid, "security", err,
					sizeof(err));
		gate_resp_error(out, rq, 503, "audit_unavailable", NULL,
				"the audit log cannot be written; try again "
				"later");
		goto out;
	}
	loclen = strlen(app->cfg->public_url) + strlen(ret ? ret : "/") + 1;
	loc = malloc(loclen);
	if (loc == NULL ||
	    (size_t)snprintf(loc, loclen, "%s%s", app->cfg->public_url,
			     ret ? ret : "/") >= loclen ||
	    gate_cookie_add(out, app->cfg, GATE_SESSION_COOKIE, cookie, "/",
			    -1, 0) != 0 ||
	    gate_cookie_add(out, app->cfg, GATE_SAML_BINDING_COOKIE, "",
			    "/saml/acs", 0, 1) != 0 ||
	    gate_resp_header(out, MHD_HTTP_HEADER_LOCATION, loc) != 0) {
		gate_resp_error(out, rq, 500, "internal", NULL,
				"out of memory");
		goto out;
	}
	gate_log(GATE_LOG_INFO, rq->id, "sso_login", "%s signed in via %s",
		 id.identity, id.idp);
	gate_resp_html(out, 303, strdup(""));
out:
	sodium_memzero(cookie, sizeof(cookie));
	sodium_memzero(sid, sizeof(sid));
	saml_identity_free(&id);
	free(b64);
	free(ret);
	free(loc);
}

static void
signed_out_page(struct gate_resp *out)
{
	gate_resp_html(out, 200,
		       strdup("<!DOCTYPE html>\n<html><head><meta "
			      "charset=\"utf-8\"><title>Signed out</title>"
			      "</head><body><h1>You are signed out</h1>"
			      "</body></html>\n"));
}

/*
 * Ends roomgate's session first (so a failing IdP never keeps it alive),
 * then, when the IdP has an SLO endpoint, sends the browser there with a
 * signed LogoutRequest.
 */
void
gate_h_saml_logout(struct gate_app *app, const struct gate_rq *rq,
		   struct gate_resp *out)
{
	struct db_session s;
	unsigned char hash[32];
	char err[512], *url = NULL;
	int r = 0;

	memset(&s, 0, sizeof(s));
	if (gate_cookie_hash(rq, GATE_SESSION_COOKIE, hash)) {
		r = gate_session_of(app, rq, &s, err, sizeof(err));
		if (r < 0 || db_session_revoke(app->db, hash, "logout", err,
					       sizeof(err)) != 0) {
			gate_resp_error(out, rq, 503, "database_unavailable",
					NULL, "cannot sign out now: %s", err);
			goto out;
		}
		if (r == 1 && audit(app, rq, "logout", "info", "logout",
				    s.identity, s.idp, NULL) != 0) {
			gate_resp_error(out, rq, 503, "audit_unavailable", NULL,
					"the audit log cannot be written; try "
					"again later");
			goto out;
		}
	}
	if (gate_cookie_add(out, app->cfg, GATE_SESSION_COOKIE, "", "/", 0,
			    0) != 0) {
		gate_resp_error(out, rq, 500, "internal", NULL,
				"out of memory");
		goto out;
	}
	if (r == 1 && app->saml != NULL &&
	    strcmp(s.idp, saml_sp_idp_entity_id(app->saml)) == 0) {
		if (saml_sp_logout_request(app->saml, s.name_id,
					   s.name_id_format, s.session_index,
					   &url, err, sizeof(err)) != 0)
			gate_log(GATE_LOG_WARN, rq->id, "slo_failed",
				 "local logout only: %s", err);
		if (url != NULL) {
			if (gate_resp_header(out, MHD_HTTP_HEADER_LOCATION,
					     url) != 0) {
				gate_resp_error(out, rq, 500, "internal", NULL,
						"out of memory");
				goto out;
			}
			gate_resp_html(out, 302, strdup(""));
			goto out;
		}
	}
	signed_out_page(out);
out:
	sodium_memzero(hash, sizeof(hash));
	db_session_free(&s);
	free(url);
}

/* The IdP's SLO messages: its LogoutRequest (IdP-initiated, signature
 * required) or its LogoutResponse to ours. */
void
gate_h_saml_slo(struct gate_app *app, const struct gate_rq *rq,
		struct gate_resp *out)
{
	struct saml_slo_request q;
	const char *reason = SAML_R_INTERNAL;
	char detail[512] = "", err[512], *url = NULL;
	long n = 0;
	int kind = 0;

	memset(&q, 0, sizeof(q));
	if (!saml_ready(app, rq, out))
		return;
	if (saml_sp_slo(app->saml, rq->query, &kind, &q, &url, &reason,
			detail, sizeof(detail)) != 0) {
		gate_log(GATE_LOG_WARN, rq->id, "slo_denied", "%s: %s", reason,
			 detail);
		if (audit(app, rq, "logout", "deny", reason, NULL,
			  saml_sp_idp_entity_id(app->saml), detail) != 0) {
			gate_resp_error(out, rq, 503, "audit_unavailable", NULL,
					"the audit log cannot be written; try "
					"again later");
			goto out;
		}
		error_page(out, rq, 403, reason,
			   "The identity provider's logout message was not "
			   "accepted.");
		goto out;
	}
	if (kind == SAML_SLO_RESPONSE) {
		signed_out_page(out);
		goto out;
	}
	if (db_session_revoke_subject(app->db, saml_sp_idp_entity_id(app->saml),
				      q.name_id, q.session_index, "idp_logout",
				      &n, err, sizeof(err)) != 0) {
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
				"cannot end the session now: %s", err);
		goto out;
	}
	if (audit(app, rq, "logout", "info", "idp_logout", q.name_id,
		  saml_sp_idp_entity_id(app->saml), NULL) != 0) {
		gate_resp_error(out, rq, 503, "audit_unavailable", NULL,
				"the audit log cannot be written; try again "
				"later");
		goto out;
	}
	gate_log(GATE_LOG_INFO, rq->id, "idp_logout",
		 "IdP ended %ld session(s) of %s", n, q.name_id);
	if (gate_resp_header(out, MHD_HTTP_HEADER_LOCATION, url) != 0) {
		gate_resp_error(out, rq, 500, "internal", NULL, "out of memory");
		goto out;
	}
	gate_resp_html(out, 302, strdup(""));
out:
	saml_slo_request_free(&q);
	free(url);
}

void
gate_h_me(struct gate_app *app, const struct gate_rq *rq,
	  struct gate_resp *out)
{
	struct db_session s;
	json_t *o, *attrs;
	json_error_t je;
	char err[512];
	int r;

	r = gate_session_of(app, rq, &s, err, sizeof(err));
	if (r < 0) {
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
				"cannot check your session: %s", err);
		return;
	}
	if (r == 0) {
		gate_resp_error(out, rq, 401, "not_signed_in", NULL,
				"sign in first: GET /saml/login");
		return;
	}
	attrs = json_loads(s.attributes_json, 0, &je);
	o = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:o?, s:s}",
		      "identity", s.identity, "idp", s.idp, "name_id",
		      s.name_id, "name_id_format", s.name_id_format,
		      "session_index", s.session_index, "authn_instant",
		      s.authn_instant, "attributes", attrs, "expires_at",
		      s.expires_at);
	db_session_free(&s);
	if (o == NULL) {
		gate_resp_error(out, rq, 500, "internal", NULL,
				"out of memory");
		return;
	}
	gate_resp_json(out, 200, o);
}
