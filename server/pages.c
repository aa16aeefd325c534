/*
 * The HTML join pages: GET /j/{link} shows the code form to a signed-in
 * person, POST /j/{link} takes it. The decision is admit.c's
 * (gate_join_decide), shared with POST /v1/join/{link}; this file only
 * checks the form's CSRF token first and renders each verdict as a page a
 * person can act on. Pages are self-contained (inline CSS, no scripts, no
 * external assets), every dynamic value is HTML-escaped, and the typed
 * code is wiped after use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "server/admit.h"
#include "server/http_int.h"

#define PAGES_CSP                                                              \
	"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "  \
	"frame-ancestors 'none'"
#define PAGE_MAX (64 * 1024)
#define LOGIN_URL_MAX 160

/* What one page shows; NULL fields are left out. */
struct page {
	int status;
	const char *heading;
	const char *meeting;  /* the meeting's title */
	const char *identity; /* "Signed in as ..." */
	const char *message;  /* what happened and what to do */
	const char *csrf;     /* non-NULL: the code form, with this token */
	const char *link;     /* the form's /j/{link} */
	int refresh;          /* seconds; 0: none */
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
	if (p->refresh > 0)
		gate_buf_printf(&b,
		                "<meta http-equiv=\"refresh\" content=\"%d\">",
		                p->refresh);
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
	out->csp = PAGES_CSP;
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
	out->csp = PAGES_CSP;
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
	char msg[512];
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
		p.heading = "Waiting for the host";
		p.message = "The host will let you in. This page checks "
		            "again every few seconds; keep it open.";
		p.refresh = 5;
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
		 * by the same decision as every other. */
		gate_join_decide(app, rq, NULL, NULL, &v);
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
