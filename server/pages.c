/*
 * The HTML join pages: GET /j/{link} shows the code form to a signed-in
 * person, POST /j/{link} takes it. The decision is admit.c's
 * (gate_join_decide), shared with POST /v1/join/{link}; this file only
 * checks the form's CSRF token first and renders each verdict as a page a
 * person can act on. Pages are self-contained (inline CSS, no scripts, no
 * external assets), every dynamic value is HTML-escaped, and the typed
 * code is wiped after use.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <sodium.h>

#include "server/admit.h"
#include "server/http_int.h"
#include "server/meetings.h"

#define PAGES_CSP                                                              \
	"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "  \
	"frame-ancestors 'none'"
#define PAGE_MAX (64 * 1024)
#define LOGIN_URL_MAX 160

/*
 * The pages' CSP. Browsers apply form-action to the redirects that follow
 * a form post too, so the join form's 303 to the meeting platform needs
 * the platform's origin there beside 'self'. Made once per process from
 * [admission] redirect_url (the origin as libcurl parses it, http(s)
 * only); without a usable one, 'self' alone.
 */
static pthread_mutex_t csp_mu = PTHREAD_MUTEX_INITIALIZER;
static char csp_buf[512];
static int csp_made;

/* "scheme://host[:port]" of url, checked to be safe inside a CSP. */
static int
platform_origin(const char *url, char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int r = -1, n;

	if (u == NULL ||
	    curl_url_set(u, CURLUPART_URL, url, CURLU_ALLOW_SPACE) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)
		goto out;
	/* A host name or an IP literal: nothing that could end the
	 * directive or start another. */
	if (host[0] == '\0' ||
	    strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                 "0123456789.-[]:") != strlen(host) ||
	    (port != NULL && strspn(port, "0123456789") != strlen(port)))
		goto out;
	n = snprintf(out, outlen, "%s://%s%s%s", scheme, host,
	             port ? ":" : "", port ? port : "");
	if (n < 0 || (size_t)n >= outlen)
		goto out;
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return r;
}

static const char *
pages_csp(const struct gate_config *cfg)
{
	char origin[300];

	pthread_mutex_lock(&csp_mu);
	if (!csp_made) {
		snprintf(csp_buf, sizeof(csp_buf), "%s", PAGES_CSP);
		if (cfg != NULL && cfg->adm_redirect_url != NULL &&
		    platform_origin(cfg->adm_redirect_url, origin,
		                    sizeof(origin)) == 0)
			snprintf(csp_buf, sizeof(csp_buf),
			         "default-src 'none'; style-src "
			         "'unsafe-inline'; form-action 'self' %s; "
			         "frame-ancestors 'none'",
			         origin);
		csp_made = 1;
	}
	pthread_mutex_unlock(&csp_mu);
	return csp_buf;
}

/* What one page shows; NULL fields are left out. */
struct page {
	int status;
	const char *heading;
	const char *meeting;  /* the meeting's title */
	const char *identity; /* "Signed in as ..." */
	const char *message;  /* what happened and what to do */
	const char *note;     /* a state to wait in (not an error) */
	const char *csrf;     /* non-NULL: the code form, with this token */
	const char *link;     /* the form's /j/{link} */
	int refresh;          /* seconds; 0: none */
	const char *refresh_url; /* where the refresh goes (a path of ours);
	                            NULL: this page again */
	const char *fragment;    /* HTML made here, every value in it
	                            escaped; shown after the message */
};

static void
page_render(struct gate_resp *out, const struct gate_rq *rq,
            const struct page *p)
{
	struct gate_buf b;
	char *html;

	gate_buf_init(&b, PAGE_MAX);
	gate_buf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	                    "<meta charset=\"utf-8\">"
	                    "<meta name=\"viewport\" content=\"width=device-"
	                    "width, initial-scale=1\">");
	if (p->refresh > 0 && p->refresh_url != NULL) {
		gate_buf_printf(&b,
		                "<meta http-equiv=\"refresh\" content=\"%d; "
		                "url=",
		                p->refresh);
		gate_html_escape(&b, p->refresh_url);
		gate_buf_printf(&b, "\">");
	} else if (p->refresh > 0) {
		gate_buf_printf(&b,
		                "<meta http-equiv=\"refresh\" content=\"%d\">",
		                p->refresh);
	}
	gate_buf_printf(&b, "<title>");
	gate_html_escape(&b, p->heading);
	gate_buf_printf(&b,
	                "</title><style>"
	                "body{font-family:system-ui,sans-serif;max-width:"
	                "32rem;margin:0 auto;padding:1rem;line-height:1.5}"
	                "label{display:block;font-weight:bold;margin-top:1rem}"
	                "input[name=code]{font-size:1.5rem;width:100%%;"
	                "box-sizing:border-box;padding:.5rem;letter-spacing:"
	                ".1em}button{font-size:1.1rem;margin-top:1rem;"
	                "padding:.5rem 1.5rem}.msg{padding:.75rem;"
	                "border-left:4px solid #b00;background:#fee}"
	                ".wait{padding:.75rem;border-left:4px solid #06c;"
	                "background:#eef5ff}ul.waiting{list-style:none;"
	                "padding:0}ul.waiting li{border-bottom:1px solid #ccc;"
	                "padding:.5rem 0}ul.waiting form{display:inline;"
	                "margin-right:.5rem}"
	                "</style></head><body><main><h1>");
	gate_html_escape(&b, p->heading);
	gate_buf_printf(&b, "</h1>");
	if (p->meeting != NULL) {
		gate_buf_printf(&b, "<p>Meeting: <strong>");
		gate_html_escape(&b, p->meeting);
		gate_buf_printf(&b, "</strong></p>");
	}
	if (p->message != NULL) {
		gate_buf_printf(&b, "<p class=\"msg\" role=\"alert\">");
		gate_html_escape(&b, p->message);
		gate_buf_printf(&b, "</p>");
	}
	if (p->note != NULL) {
		gate_buf_printf(&b, "<p class=\"wait\" role=\"status\">");
		gate_html_escape(&b, p->note);
		gate_buf_printf(&b, "</p>");
	}
	if (p->fragment != NULL)
		gate_buf_add(&b, p->fragment, strlen(p->fragment));
	if (p->csrf != NULL && p->link != NULL) {
		gate_buf_printf(&b, "<form method=\"post\" action=\"/j/");
		gate_html_escape(&b, p->link);
		gate_buf_printf(&b, "\"><input type=\"hidden\" name=\"csrf\" "
		                    "value=\"");
		gate_html_escape(&b, p->csrf);
		gate_buf_printf(
		    &b, "\"><label for=\"code\">Access code</label>"
		        "<input id=\"code\" name=\"code\" type=\"text\" "
		        "inputmode=\"numeric\" "
		        "autocomplete=\"one-time-code\" required "
		        "autofocus><button type=\"submit\">Join"
		        "</button></form>");
	}
	if (p->identity != NULL) {
		gate_buf_printf(&b, "<p>Signed in as <strong>");
		gate_html_escape(&b, p->identity);
		gate_buf_printf(&b,
		                "</strong> &mdash; not you? "
		                "<a href=\"/saml/logout\">Sign out</a></p>");
	}
	gate_buf_printf(&b,
	                "<p><small>Request id <code>%s</code></small></p>"
	                "</main></body></html>\n",
	                rq->id);
	html = gate_buf_take(&b, NULL);
	if (html == NULL) {
		gate_resp_error(out, rq, 500, "internal", NULL,
		                "the page could not be made; try again");
		return;
	}
	out->csp = pages_csp(NULL);
	gate_resp_html(out, p->status, html);
}

/* 303 to target (a path on this site or the platform's URL). */
static void
redirect(struct gate_resp *out, const struct gate_rq *rq, const char *target)
{
	if (gate_resp_header(out, MHD_HTTP_HEADER_LOCATION, target) != 0) {
		gate_resp_error(out, rq, 500, "internal", NULL,
		                "out of memory");
		return;
	}
	out->csp = pages_csp(NULL);
	gate_resp_html(out, 303, strdup(""));
}

/* Not signed in: sign in first, then back to this page. */
static void
to_login(struct gate_resp *out, const struct gate_rq *rq)
{
	char url[LOGIN_URL_MAX];

	if (gate_join_link_ok(rq->params[0].p, rq->params[0].len))
		snprintf(url, sizeof(url), "/saml/login?return=/j/%.*s",
		         (int)rq->params[0].len, rq->params[0].p);
	else
		snprintf(url, sizeof(url), "/saml/login");
	redirect(out, rq, url);
}

#define WAIT_REFRESH_S 5
#define WAITING_NOTE                                                           \
	"Waiting for the host to let you in. This page checks again "          \
	"every 5 seconds and takes you to the meeting when the host "          \
	"admits you; keep it open."

/* The participant's waiting page, /j/{link}/wait. */
static void
wait_url(const char *link, char *out, size_t outlen)
{
	if (link != NULL && gate_join_link_ok(link, strlen(link)))
		snprintf(out, outlen, "/j/%s/wait", link);
	else
		snprintf(out, outlen, "/");
}

static void
unavailable_page(struct gate_resp *out, const struct gate_rq *rq,
                 const char *msg)
{
	struct page p;

	memset(&p, 0, sizeof(p));
	p.status = 503;
	p.heading = "Try again in a moment";
	p.message = msg;
	page_render(out, rq, &p);
}

/*
 * The page of a verdict. link and csrf give the form again where typing
 * the code again helps (400, 401).
 */
static void
verdict_page(struct gate_resp *out, const struct gate_rq *rq,
             const struct gate_join_verdict *v, const char *link,
             const char *csrf)
{
	struct page p;
	char msg[512], refresh[96];
	time_t at;
	struct tm tm;
	char when[32];

	memset(&p, 0, sizeof(p));
	p.status = v->status;
	p.meeting = v->title;
	p.identity = v->identity;
	p.message = v->message;
	switch (v->status) {
	case 200:
		if (v->redirect_url == NULL) {
			unavailable_page(out, rq,
			                 "the join link could not "
			                 "be made; try again in a "
			                 "moment");
			return;
		}
		redirect(out, rq, v->redirect_url);
		return;
	case 202:
		wait_url(link, refresh, sizeof(refresh));
		p.heading = "Waiting for the host";
		p.message = NULL;
		p.note = WAITING_NOTE;
		p.refresh = WAIT_REFRESH_S;
		p.refresh_url = refresh;
		break;
	case 400:
		p.heading = "Check the code";
		snprintf(msg, sizeof(msg),
		         "%s. If the code you were given starts with 0, type "
		         "every digit, including the leading zeros.",
		         v->message);
		p.message = msg;
		p.csrf = csrf;
		p.link = link;
		break;
	case 401:
		if (strcmp(v->code, "login_required") == 0) {
			redirect(out, rq, v->login_url);
			return;
		}
		p.heading = "Invalid code";
		p.message = "Invalid code. Check the code you were given and "
		            "type it again.";
		p.csrf = csrf;
		p.link = link;
		break;
	case 403:
		p.heading = "You cannot join this meeting";
		p.message = "You are not on this meeting's access list. Ask "
		            "the host to add you, or sign out and sign in as "
		            "the person who was invited.";
		break;
	case 404:
		p.heading = "Meeting not found";
		p.message = "No meeting has this link. Check the link you were "
		            "sent.";
		break;
	case 429:
		at = (time_t)v->retry_at;
		if (gmtime_r(&at, &tm) == NULL ||
		    strftime(when, sizeof(when), "%H:%M:%S UTC", &tm) == 0)
			snprintf(when, sizeof(when), "later");
		snprintf(msg, sizeof(msg),
		         "Too many failed attempts. Try again in %lld "
		         "seconds (after %s).",
		         v->retry_after, when);
		p.heading = "Too many attempts";
		p.message = msg;
		out->retry_after = (int)v->retry_after;
		break;
	default:
		p.status = 503;
		p.heading = "Try again in a moment";
		break;
	}
	page_render(out, rq, &p);
}

/* How many fields of the form body are named name. */
static int
form_field_count(const char *body, size_t len, const char *name)
{
	size_t nl = strlen(name), i = 0;
	int n = 0;

	while (i < len) {
		const char *f = body + i, *amp = memchr(f, '&', len - i);
		size_t flen = amp ? (size_t)(amp - f) : len - i;

		if (flen > nl && f[nl] == '=' && memcmp(f, name, nl) == 0)
			n++;
		i += flen + 1;
	}
	return n;
}

/* The session's id hash and the form's token; 0, or -1 (then out holds the
 * answer: the login redirect or a 503 page). */
static int
signed_in(struct gate_app *app, const struct gate_rq *rq, struct gate_resp *out,
          struct db_session *sess, unsigned char sh[32],
          char csrf[GATE_CSRF_HEX])
{
	char err[512];
	int r;

	r = gate_session_of(app, rq, sess, err, sizeof(err));
	if (r < 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "join_page.session", "%s",
		         err);
		unavailable_page(out, rq,
		                 "The sign-in could not be checked. "
		                 "Try again in a moment.");
		return -1;
	}
	if (r == 0 || !gate_cookie_hash(rq, GATE_SESSION_COOKIE, sh)) {
		if (r > 0)
			db_session_free(sess);
		to_login(out, rq);
		return -1;
	}
	if (gate_csrf_token(app->keys, sh, csrf) != 0) {
		db_session_free(sess);
		unavailable_page(out, rq,
		                 "This server cannot make the join "
		                 "form (no server keys). Tell your "
		                 "administrator.");
		return -1;
	}
	return 0;
}

void
gate_h_join_page(struct gate_app *app, const struct gate_rq *rq,
                 struct gate_resp *out)
{
	struct db_session sess;
	struct db_meeting m;
	struct gate_join_verdict v;
	struct page p;
	unsigned char sh[32];
	char csrf[GATE_CSRF_HEX], link[80], err[512];
	int r = DB_ENOTFOUND;

	(void)pages_csp(app->cfg); /* made once, from the config */

	memset(&m, 0, sizeof(m));
	if (signed_in(app, rq, out, &sess, sh, csrf) != 0)
		goto wipe;
	if (gate_join_link_ok(rq->params[0].p, rq->params[0].len)) {
		snprintf(link, sizeof(link), "%.*s", (int)rq->params[0].len,
		         rq->params[0].p);
		r = db_admit_meeting_by_link(app->db, link, &m, err,
		                             sizeof(err));
	}
	if (r == DB_ENOTFOUND) {
		/* An unknown link is a failed attempt of this person, counted
		 * by the same decision as every other -- but not against the
		 * source address: any site can send a browser here. */
		gate_join_decide_get(app, rq, &v);
		verdict_page(out, rq, &v, NULL, NULL);
		gate_join_verdict_free(&v);
		goto out;
	}
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "join_page.meeting", "%s",
		         err);
		unavailable_page(out, rq,
		                 "The meeting could not be looked "
		                 "up. Try again in a moment.");
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.status = 200;
	p.heading = "Join the meeting";
	p.meeting = m.title ? m.title : "";
	p.identity = sess.identity;
	p.csrf = csrf;
	p.link = link;
	page_render(out, rq, &p);
	db_meeting_free(&m);
out:
	db_session_free(&sess);
wipe:
	sodium_memzero(sh, sizeof(sh));
	sodium_memzero(csrf, sizeof(csrf));
}

void
gate_h_join_form(struct gate_app *app, const struct gate_rq *rq,
                 struct gate_resp *out)
{
	struct db_session sess;
	struct gate_join_verdict v;
	struct page p;
	unsigned char sh[32];
	char csrf[GATE_CSRF_HEX], link[80];
	char *tok = NULL, *code = NULL;
	size_t toklen = 0, codelen = 0;

	(void)pages_csp(app->cfg); /* made once, from the config */

	memset(&v, 0, sizeof(v));
	link[0] = '\0';
	if (signed_in(app, rq, out, &sess, sh, csrf) != 0)
		goto wipe;
	db_session_free(&sess); /* the decision looks it up again */
	if (gate_join_link_ok(rq->params[0].p, rq->params[0].len))
		snprintf(link, sizeof(link), "%.*s", (int)rq->params[0].len,
		         rq->params[0].p);

	/* The token first: a forged form never reaches the decision. */
	tok = gate_form_value(rq->body, rq->body_len, "csrf", &toklen);
	if (!gate_csrf_check(app->keys, sh, tok, toklen)) {
		memset(&p, 0, sizeof(p));
		p.status = 403;
		p.heading = "This form expired";
		p.message = "This form expired; reload the page and type the "
		            "code again.";
		page_render(out, rq, &p);
		goto wipe;
	}
	if (form_field_count(rq->body, rq->body_len, "code") > 1) {
		/* Which one was meant? Neither reaches the decision. */
		memset(&p, 0, sizeof(p));
		p.status = 400;
		p.heading = "Type the code once";
		p.message = "The form sent a code more than once; reload the "
		            "page and type the code once.";
		page_render(out, rq, &p);
		goto wipe;
	}
	code = gate_form_value(rq->body, rq->body_len, "code", &codelen);
	gate_join_decide(app, rq, code,
	                 "no code was typed; enter the code you were given",
	                 &v);
	verdict_page(out, rq, &v, link[0] ? link : NULL, csrf);
wipe:
	if (tok != NULL) {
		sodium_memzero(tok, toklen);
		free(tok);
	}
	if (code != NULL) {
		sodium_memzero(code, codelen);
		free(code);
	}
	gate_join_verdict_free(&v);
	sodium_memzero(sh, sizeof(sh));
	sodium_memzero(csrf, sizeof(csrf));
}

/* ---- the waiting room: the participant's page -------------------------- */

void
gate_h_join_wait_page(struct gate_app *app, const struct gate_rq *rq,
                      struct gate_resp *out)
{
	struct gate_join_verdict v;
	struct gate_buf fb;
	struct page p;
	char link[80], again[96], refresh[96], *frag = NULL;

	(void)pages_csp(app->cfg); /* made once, from the config */

	link[0] = '\0';
	if (gate_join_link_ok(rq->params[0].p, rq->params[0].len))
		snprintf(link, sizeof(link), "%.*s", (int)rq->params[0].len,
		         rq->params[0].p);
	snprintf(again, sizeof(again), "/j/%s", link);
	wait_url(link, refresh, sizeof(refresh));
	gate_wait_status(app, rq, &v);
	memset(&p, 0, sizeof(p));
	p.status = v.status;
	p.meeting = v.title;
	p.identity = v.identity;
	p.message = v.message;
	switch (v.status) {
	case 200:
		if (v.redirect_url == NULL)
			unavailable_page(out, rq,
			                 "The join link could not be made. Try "
			                 "again in a moment.");
		else
			redirect(out, rq, v.redirect_url);
		goto out;
	case 202:
		p.heading = "Waiting for the host";
		p.message = NULL;
		p.note = WAITING_NOTE;
		p.refresh = WAIT_REFRESH_S;
		p.refresh_url = refresh;
		break;
	case 401:
		redirect(out, rq, v.login_url);
		goto out;
	case 403:
		if (strcmp(v.code, "host_denied") == 0) {
			p.heading = "The host did not let you in";
			p.message = "The host did not let you in to this "
			            "meeting. If you think this is a mistake, "
			            "contact the host.";
		} else {
			p.heading = "You cannot join this meeting";
		}
		break;
	case 404:
		if (strcmp(v.code, "not_waiting") == 0 && link[0] != '\0') {
			/* Not waiting: the code form is where to start. */
			redirect(out, rq, again);
			goto out;
		}
		p.heading = "Meeting not found";
		p.message = "No meeting has this link. Check the link you were "
		            "sent.";
		break;
	case 409:
	case 410:
		p.heading = v.status == 410 ? "The wait has ended"
		                            : "You were already let in";
		gate_buf_init(&fb, 1024);
		gate_buf_printf(&fb, "<p><a href=\"");
		gate_html_escape(&fb, again);
		gate_buf_printf(&fb, "\">Enter the code again</a></p>");
		frag = gate_buf_take(&fb, NULL);
		p.fragment = frag;
		break;
	default:
		/* Keep checking: the wait goes on once the service is back. */
		p.status = 503;
		p.heading = "Try again in a moment";
		p.refresh = WAIT_REFRESH_S;
		p.refresh_url = refresh;
		break;
	}
	page_render(out, rq, &p);
out:
	free(frag);
	gate_join_verdict_free(&v);
}

/* ---- the waiting room: the host's page --------------------------------- */

#define HOST_REFRESH_S 10
#define HOST_LIST_MAX 200

/* Everything the host page needs, made by host_begin(). */
struct host_ctx {
	struct gate_principal p;
	struct db_meeting m;
	unsigned char sh[32];
	char csrf[GATE_CSRF_HEX];
	char self[64]; /* /m/{id}/waiting */
	int have_m;
};

static void
host_end(struct host_ctx *h)
{
	if (h->have_m)
		db_meeting_free(&h->m);
	sodium_memzero(h->sh, sizeof(h->sh));
	sodium_memzero(h->csrf, sizeof(h->csrf));
}

static void
error_page(struct gate_resp *out, const struct gate_rq *rq, int status,
           const char *heading, const char *msg)
{
	struct page p;

	memset(&p, 0, sizeof(p));
	p.status = status;
	p.heading = heading;
	p.message = msg;
	page_render(out, rq, &p);
}

/*
 * The signed-in host of the meeting in the path, and the session's CSRF
 * token. 0, or -1 with the answer in out (login redirect or error page).
 * check_csrf: a form post, whose token is checked before anything else;
 * the role check then runs as for a GET, since the token (not the
 * content type the JSON API relies on) is what stops a forged post.
 */
static int
host_begin(struct gate_app *app, const struct gate_rq *rq,
           struct gate_resp *out, int check_csrf, struct host_ctx *h)
{
	struct db_session sess;
	struct gate_rq asked = *rq;
	char id[37], err[512], login[128], *tok = NULL;
	size_t toklen = 0;
	int r, ok = -1;

	memset(h, 0, sizeof(*h));
	if (rq->params[0].len != 36) {
		error_page(out, rq, 404, "Meeting not found",
		           "No such meeting: meeting ids are UUIDs.");
		return -1;
	}
	for (size_t i = 0; i < 36; i++) {
		char c = rq->params[0].p[i];
		int dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? c != '-'
		         : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		             (c >= 'A' && c <= 'F'))) {
			error_page(out, rq, 404, "Meeting not found",
			           "No such meeting: meeting ids are UUIDs.");
			return -1;
		}
		id[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	id[36] = '\0';
	snprintf(h->self, sizeof(h->self), "/m/%s/waiting", id);
	r = gate_session_of(app, rq, &sess, err, sizeof(err));
	if (r < 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "host_page.session", "%s",
		         err);
		unavailable_page(out, rq,
		                 "The sign-in could not be checked. Try again "
		                 "in a moment.");
		return -1;
	}
	if (r > 0)
		db_session_free(&sess);
	if (r == 0 || !gate_cookie_hash(rq, GATE_SESSION_COOKIE, h->sh)) {
		snprintf(login, sizeof(login), "/saml/login?return=%s",
		         h->self);
		redirect(out, rq, login);
		return -1;
	}
	if (gate_csrf_token(app->keys, h->sh, h->csrf) != 0) {
		unavailable_page(out, rq,
		                 "This server cannot make its forms (no "
		                 "server keys). Tell your administrator.");
		goto out;
	}
	if (check_csrf) {
		tok = gate_form_value(rq->body, rq->body_len, "csrf", &toklen);
		if (!gate_csrf_check(app->keys, h->sh, tok, toklen)) {
			error_page(out, rq, 403, "This form expired",
			           "This form expired; reload the waiting room "
			           "and choose again.");
			goto out;
		}
		asked.method = "GET";
	}
	if (gate_auth_request(app, &asked, &h->p, out) != 0) {
		if (out->status == 401) {
			snprintf(login, sizeof(login),
			         "/saml/login?return=%s", h->self);
			redirect(out, rq, login);
		} else if (out->status == 403) {
			error_page(out, rq, 403, "Not allowed",
			           "Only the meeting's host (or an "
			           "administrator) can see its waiting room.");
		} else {
			unavailable_page(out, rq,
			                 "Your roles could not be checked. Try "
			                 "again in a moment.");
		}
		goto out;
	}
	r = db_meeting_get(app->db, id, &h->m, err, sizeof(err));
	if (r == DB_ENOTFOUND || (r == 0 && h->m.archived_at != 0)) {
		if (r == 0)
			db_meeting_free(&h->m);
		error_page(out, rq, 404, "Meeting not found",
		           "No such meeting (or it is archived).");
		goto out;
	}
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "host_page.meeting", "%s",
		         err);
		unavailable_page(out, rq,
		                 "The meeting could not be looked up. Try "
		                 "again in a moment.");
		goto out;
	}
	h->have_m = 1;
	if (!gate_may_manage(&h->p, h->m.host_identity)) {
		error_page(out, rq, 403, "Not allowed",
		           "Only the meeting's host (or an administrator) can "
		           "see its waiting room.");
		goto out;
	}
	ok = 0;
out:
	if (tok != NULL) {
		sodium_memzero(tok, toklen);
		free(tok);
	}
	if (ok != 0)
		host_end(h);
	return ok;
}

/* The waiting list with an Admit and a Deny button per person. */
static void
host_list_page(struct gate_app *app, const struct gate_rq *rq,
               struct gate_resp *out, struct host_ctx *h, int status,
               const char *note, const char *alert)
{
	struct db_waiting *w = NULL;
	struct gate_buf fb;
	struct page p;
	struct tm tm;
	time_t at;
	char err[512], when[32], count[640], *frag;
	size_t n = 0;
	int r;

	r = db_waiting_list(app->db, h->m.id, HOST_LIST_MAX, &w, &n, err,
	                    sizeof(err));
	if (r != 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "host_page.list", "%s", err);
		unavailable_page(out, rq,
		                 "The waiting room could not be read. Try again "
		                 "in a moment.");
		return;
	}
	gate_buf_init(&fb, PAGE_MAX / 2);
	if (n == 0)
		gate_buf_printf(&fb, "<p>Nobody is waiting.</p>");
	else
		gate_buf_printf(&fb, "<ul class=\"waiting\">");
	for (size_t i = 0; i < n; i++) {
		const char *name =
		    w[i].display_name ? w[i].display_name : w[i].identity;

		at = (time_t)w[i].since;
		if (gmtime_r(&at, &tm) == NULL ||
		    strftime(when, sizeof(when), "%H:%M:%S UTC", &tm) == 0)
			snprintf(when, sizeof(when), "a while");
		gate_buf_printf(&fb, "<li><strong>");
		gate_html_escape(&fb, name);
		gate_buf_printf(&fb, "</strong> (");
		gate_html_escape(&fb, w[i].identity);
		gate_buf_printf(&fb, "), waiting since %s<br>", when);
		gate_buf_printf(&fb, "<form method=\"post\" action=\"");
		gate_html_escape(&fb, h->self);
		gate_buf_printf(&fb, "\"><input type=\"hidden\" name=\"csrf\" "
		                     "value=\"%s\"><input type=\"hidden\" "
		                     "name=\"admission\" value=\"%s\">"
		                     "<button type=\"submit\" name=\"action\" "
		                     "value=\"admit\" aria-label=\"Admit ",
		                h->csrf, w[i].admission_id);
		gate_html_escape(&fb, name);
		gate_buf_printf(&fb, "\">Admit</button> <button "
		                     "type=\"submit\" name=\"action\" "
		                     "value=\"deny\" aria-label=\"Deny ");
		gate_html_escape(&fb, name);
		gate_buf_printf(&fb, "\">Deny</button></form></li>");
	}
	if (n > 0)
		gate_buf_printf(&fb, "</ul>");
	frag = gate_buf_take(&fb, NULL);
	db_waiting_free(w, n);
	if (frag == NULL) {
		unavailable_page(out, rq,
		                 "The waiting room page could not be made. Try "
		                 "again.");
		return;
	}
	snprintf(count, sizeof(count),
	         "%s%s%zu %s waiting. This page refreshes every %d seconds.",
	         note != NULL ? note : "", note != NULL ? ". " : "", n,
	         n == 1 ? "person is" : "people are", HOST_REFRESH_S);
	memset(&p, 0, sizeof(p));
	p.status = status;
	p.heading = "Waiting room";
	p.meeting = h->m.title;
	p.identity = h->p.identity;
	p.message = alert;
	p.note = count;
	p.fragment = frag;
	p.refresh = HOST_REFRESH_S;
	p.refresh_url = h->self;
	page_render(out, rq, &p);
	free(frag);
}

void
gate_h_host_waiting_page(struct gate_app *app, const struct gate_rq *rq,
                         struct gate_resp *out)
{
	struct host_ctx h;

	(void)pages_csp(app->cfg); /* made once, from the config */

	if (host_begin(app, rq, out, 0, &h) != 0)
		return;
	host_list_page(app, rq, out, &h, 200, NULL, NULL);
	host_end(&h);
}

void
gate_h_host_waiting_form(struct gate_app *app, const struct gate_rq *rq,
                         struct gate_resp *out)
{
	struct host_ctx h;
	struct gate_wait_decision d;
	char *adm = NULL, *act = NULL;
	size_t admlen = 0, actlen = 0;
	int admit;

	(void)pages_csp(app->cfg); /* made once, from the config */

	if (host_begin(app, rq, out, 1, &h) != 0)
		return;
	adm = gate_form_value(rq->body, rq->body_len, "admission", &admlen);
	act = gate_form_value(rq->body, rq->body_len, "action", &actlen);
	if (adm == NULL || admlen != 36 || act == NULL ||
	    (strcmp(act, "admit") != 0 && strcmp(act, "deny") != 0)) {
		host_list_page(app, rq, out, &h, 400, NULL,
		               "Choose Admit or Deny next to a person in the "
		               "list.");
		goto out;
	}
	admit = strcmp(act, "admit") == 0;
	gate_waiting_decide(app, rq, &h.p, &h.m, adm, admit, &d);
	if (d.status == 200)
		host_list_page(app, rq, out, &h, 200, d.message, NULL);
	else
		host_list_page(app, rq, out, &h, d.status, NULL, d.message);
out:
	free(adm);
	free(act);
	host_end(&h);
}
