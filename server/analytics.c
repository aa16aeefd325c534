/*
 * server/analytics.c -- failed-attempt analytics: admission attempts per
 * interval by outcome and reason, failures by identity and by source,
 * lockouts and the probing flag, for one meeting (its host, admins,
 * compliance) or every meeting (admins, compliance). JSON at
 * GET /v1/meetings/{id}/attempts and GET /v1/attempts, and an HTML page
 * GET /m/{id}/attempts with a server-rendered SVG chart: no scripts, no
 * external assets, every value escaped, the pages' CSP.
 *
 * Every figure is counted by PostgreSQL from the audit trail itself
 * ("admission" records), so the page and the JSON say what an export of
 * the same range would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "server/audit_export.h"
#include "server/meetings.h"

#define PAGE_CSP                                                               \
	"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "  \
	"frame-ancestors 'none'"
#define MAX_BUCKETS 1000
#define TOP 20
#define DAY_US (86400LL * 1000000LL)

struct att_params {
	long long from_us, to_us, interval_s;
	int have_from, have_to, have_interval, bad;
	char err[300];
};

/* "300", "5m", "1h", "1d" -> seconds; -1 if none of these. */
static long long
interval_parse(const char *s)
{
	char *end;
	long long n, unit = 1;

	if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 8)
		return -1;
	n = strtoll(s, &end, 10);
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		unit = 1;
	else if (strcmp(end, "m") == 0)
		unit = 60;
	else if (strcmp(end, "h") == 0)
		unit = 3600;
	else if (strcmp(end, "d") == 0)
		unit = 86400;
	else
		return -1;
	return n * unit;
}

static enum MHD_Result
att_arg(void *cls, enum MHD_ValueKind kind, const char *key,
        const char *value)
{
	struct att_params *a = cls;
	long long us;

	(void)kind;
	if (a->bad)
		return MHD_NO;
	if (value == NULL)
		value = "";
	if (strcmp(key, "from") == 0 || strcmp(key, "to") == 0) {
		if (gate_time_parse_us(value, &us) != 0 || us <= 0) {
			snprintf(a->err, sizeof(a->err),
			         "%s must be an RFC 3339 time such as "
			         "2026-11-28T06:00:00Z or a date such as "
			         "2026-11-28",
			         key);
			a->bad = 1;
		} else if (key[0] == 'f') {
			a->from_us = us;
			a->have_from = 1;
		} else {
			a->to_us = us;
			a->have_to = 1;
		}
	} else if (strcmp(key, "interval") == 0) {
		a->interval_s = interval_parse(value);
		if (a->interval_s < 60 || a->interval_s > 7 * 86400) {
			snprintf(a->err, sizeof(a->err),
			         "interval must be 60 seconds to 7 days, as "
			         "seconds or with a unit: 300, 5m, 1h, 1d");
			a->bad = 1;
		}
		a->have_interval = 1;
	} else {
		snprintf(a->err, sizeof(a->err),
		         "unknown parameter \"%.64s\"; attempts take from, to "
		         "and interval",
		         key);
		a->bad = 1;
	}
	return a->bad ? MHD_NO : MHD_YES;
}

/* Reads and completes the parameters: to defaults to now, from to 24 h
 * before to, interval to the smallest step giving at most 96 bars. */
static int
att_params_get(const struct gate_rq *rq, struct att_params *a)
{
	static const long long steps[] = {60,    300,   900,   3600,
	                                  10800, 21600, 86400, 604800};

	memset(a, 0, sizeof(*a));
	if (rq->conn != NULL)
		MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND,
		                          att_arg, a);
	if (a->bad)
		return -1;
	if (!a->have_to)
		a->to_us = ((long long)time(NULL) + 1) * 1000000LL;
	if (!a->have_from)
		a->from_us = a->to_us - DAY_US;
	if (a->from_us >= a->to_us) {
		snprintf(a->err, sizeof(a->err),
		         "from must be earlier than to");
		return -1;
	}
	if (!a->have_interval) {
		a->interval_s = steps[sizeof(steps) / sizeof(steps[0]) - 1];
		for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
			if ((a->to_us - a->from_us) / (steps[i] * 1000000LL) <
			    96) {
				a->interval_s = steps[i];
				break;
			}
	}
	if ((a->to_us - a->from_us) / (a->interval_s * 1000000LL) >=
	    MAX_BUCKETS) {
		snprintf(a->err, sizeof(a->err),
		         "from..to at this interval makes more than %d "
		         "intervals; choose a larger interval or a shorter "
		         "range",
		         MAX_BUCKETS);
		return -1;
	}
	return 0;
}

static json_t *
reasons_array(const char *list)
{
	json_t *a = json_array();
	const char *p = list;

	while (a != NULL && p != NULL && *p != '\0') {
		size_t n = strcspn(p, ",");

		json_array_append_new(a, json_stringn(p, n));
		p += n;
		if (*p == ',')
			p++;
	}
	return a;
}

/*
 * The figures as JSON (see README). meeting_id NULL: every meeting.
 * probed_at: the meeting's flag (may be NULL). 0, or a DB_E* with err.
 */
static int
att_build(struct gate_app *app, const char *meeting_id, const char *probed_at,
          const struct att_params *a, json_t **out, char *err, size_t errlen)
{
	struct db_attempts_q q;
	struct db_table b, by_id, by_src, locks, probes;
	long long nb, allowed = 0, failed = 0;
	json_t *o = NULL, *buckets = NULL, *totals_r = NULL, *list;
	char from[40], to[40], t[40];
	int r;

	*out = NULL;
	memset(&b, 0, sizeof(b));
	memset(&by_id, 0, sizeof(by_id));
	memset(&by_src, 0, sizeof(by_src));
	memset(&locks, 0, sizeof(locks));
	memset(&probes, 0, sizeof(probes));
	memset(&q, 0, sizeof(q));
	q.meeting_id = meeting_id;
	q.from_us = a->from_us;
	q.to_us = a->to_us;
	q.interval_s = a->interval_s;
	q.top = TOP;
	if ((r = db_attempts_buckets(app->db, &q, &b, err, errlen)) != 0 ||
	    (r = db_attempts_by(app->db, &q, 0, &by_id, err, errlen)) != 0 ||
	    (r = db_attempts_by(app->db, &q, 1, &by_src, err, errlen)) != 0 ||
	    (r = db_attempts_lockouts(app->db, &q, &locks, err, errlen)) != 0 ||
	    (r = db_attempts_probes(app->db, &q, &probes, err, errlen)) != 0)
		goto out;
	r = DB_ENOMEM;
	nb = (a->to_us - a->from_us + a->interval_s * 1000000LL - 1) /
	     (a->interval_s * 1000000LL);
	buckets = json_array();
	totals_r = json_object();
	if (buckets == NULL || totals_r == NULL)
		goto out;
	for (long long i = 0; i < nb; i++) {
		gate_time_fmt_us(a->from_us + i * a->interval_s * 1000000LL, t,
		                 sizeof(t));
		if (json_array_append_new(
		        buckets,
		        json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:b, s:{}}",
		                  "start", t, "index", (json_int_t)i, "attempts",
		                  0, "allowed", 0, "failed", 0, "locked", 0,
		                  "probing_flagged", 0, "by_reason")) != 0)
			goto out;
	}
	for (int i = 0; i < b.nrows; i++) {
		long long k = strtoll(db_table_get(&b, i, 0), NULL, 10);
		const char *oc = db_table_get(&b, i, 1);
		const char *rs = db_table_get(&b, i, 2);
		long long n = strtoll(db_table_get(&b, i, 3), NULL, 10);
		json_t *bk = json_array_get(buckets, (size_t)k), *br;
		int allow = strcmp(oc, "allow") == 0;

		if (bk == NULL)
			continue;
		br = json_object_get(bk, "by_reason");
		json_object_set_new(bk, "attempts",
		                    json_integer(json_integer_value(json_object_get(
		                                     bk, "attempts")) +
		                                 n));
		json_object_set_new(
		    bk, allow ? "allowed" : "failed",
		    json_integer(json_integer_value(json_object_get(
		                     bk, allow ? "allowed" : "failed")) +
		                 n));
		if (strcmp(rs, "locked") == 0)
			json_object_set_new(bk, "locked", json_integer(n));
		if (!allow) {
			json_object_set_new(
			    br, rs,
			    json_integer(
			        json_integer_value(json_object_get(br, rs)) + n));
			json_object_set_new(
			    totals_r, rs,
			    json_integer(json_integer_value(
			                     json_object_get(totals_r, rs)) +
			                 n));
		}
		if (allow)
			allowed += n;
		else
			failed += n;
	}
	gate_time_fmt_us(a->from_us, from, sizeof(from));
	gate_time_fmt_us(a->to_us, to, sizeof(to));
	o = json_pack("{s:o, s:s, s:s, s:I, s:{s:I, s:I, s:I, s:O}}",
	              "meeting_id",
	              meeting_id ? json_string(meeting_id) : json_null(),
	              "from", from, "to", to, "interval_seconds",
	              (json_int_t)a->interval_s, "totals", "attempts",
	              (json_int_t)(allowed + failed), "allowed",
	              (json_int_t)allowed, "failed", (json_int_t)failed,
	              "failed_by_reason", totals_r);
	if (o == NULL)
		goto out;
	json_object_set(o, "buckets", buckets);
	list = json_array();
	for (int i = 0; list != NULL && i < by_id.nrows; i++)
		json_array_append_new(
		    list,
		    json_pack("{s:s, s:I, s:o, s:s, s:s, s:I}", "identity",
		              db_table_get(&by_id, i, 0), "failures",
		              (json_int_t)strtoll(db_table_get(&by_id, i, 1),
		                                  NULL, 10),
		              "reasons",
		              reasons_array(db_table_get(&by_id, i, 2)),
		              "first_at", db_table_get(&by_id, i, 3), "last_at",
		              db_table_get(&by_id, i, 4), "sources",
		              (json_int_t)strtoll(db_table_get(&by_id, i, 5),
		                                  NULL, 10)));
	json_object_set_new(o, "failures_by_identity", list);
	list = json_array();
	for (int i = 0; list != NULL && i < by_src.nrows; i++)
		json_array_append_new(
		    list,
		    json_pack("{s:s, s:I, s:o, s:s, s:s, s:I}", "source",
		              db_table_get(&by_src, i, 0), "failures",
		              (json_int_t)strtoll(db_table_get(&by_src, i, 1),
		                                  NULL, 10),
		              "reasons",
		              reasons_array(db_table_get(&by_src, i, 2)),
		              "first_at", db_table_get(&by_src, i, 3),
		              "last_at", db_table_get(&by_src, i, 4),
		              "identities",
		              (json_int_t)strtoll(db_table_get(&by_src, i, 5),
		                                  NULL, 10)));
	json_object_set_new(o, "failures_by_source", list);
	list = json_array();
	for (int i = 0; list != NULL && i < locks.nrows; i++)
		json_array_append_new(
		    list, json_pack("{s:s, s:I, s:s, s:s}", "identity",
		                    db_table_get(&locks, i, 0), "locked_answers",
		                    (json_int_t)strtoll(
		                        db_table_get(&locks, i, 1), NULL, 10),
		                    "first_at", db_table_get(&locks, i, 2),
		                    "last_at", db_table_get(&locks, i, 3)));
	json_object_set_new(o, "lockouts", list);
	list = json_array();
	for (int i = 0; list != NULL && i < probes.nrows; i++) {
		const char *fi = db_table_get(&probes, i, 2);
		long long k = strtoll(db_table_get(&probes, i, 3), NULL, 10);
		json_t *bk = json_array_get(buckets, (size_t)k);

		if (bk != NULL)
			json_object_set_new(bk, "probing_flagged", json_true());
		json_array_append_new(
		    list, json_pack("{s:s, s:s, s:I}", "meeting_id",
		                    db_table_get(&probes, i, 0), "at",
		                    db_table_get(&probes, i, 1),
		                    "failed_identities",
		                    (json_int_t)(fi ? strtoll(fi, NULL, 10)
		                                    : 0)));
	}
	json_object_set_new(
	    o, "probing",
	    json_pack("{s:b, s:o, s:o*}", "flagged", probed_at != NULL,
	              "probed_at",
	              probed_at ? json_string(probed_at) : json_null(),
	              "flags_in_range", list));
	*out = o;
	o = NULL;
	r = 0;
out:
	json_decref(o);
	json_decref(buckets);
	json_decref(totals_r);
	db_table_free(&b);
	db_table_free(&by_id);
	db_table_free(&by_src);
	db_table_free(&locks);
	db_table_free(&probes);
	return r;
}

static int
uuid_param(const struct gate_rq *rq, char id[37])
{
	if (rq->nparams < 1)
		return -1;
	return gate_uuid_parse(rq->params[0].p, rq->params[0].len, id);
}

static void
db_unavailable(struct gate_resp *out, const struct gate_rq *rq,
               const char *err)
{
	gate_log(GATE_LOG_ERROR, rq->id, "db_error", "attempts: %s", err);
	gate_resp_error(out, rq, 503, "database_unavailable", NULL,
	                "the attempts cannot be counted now: the database is "
	                "unavailable; retry shortly");
	out->retry_after = 2;
}

void
gate_h_meeting_attempts(struct gate_app *app, const struct gate_rq *rq,
                        struct gate_resp *out)
{
	struct gate_principal who;
	struct att_params a;
	struct db_meeting m;
	char id[37], err[512], probed[40];
	json_t *o = NULL;
	int r;

	memset(&m, 0, sizeof(m));
	if (gate_auth_request(app, rq, &who, out) != 0)
		return;
	if (uuid_param(rq, id) != 0) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "no such meeting: meeting ids are UUIDs");
		return;
	}
	if (att_params_get(rq, &a) != 0) {
		gate_resp_error(out, rq, 400, "invalid_parameter", NULL, "%s",
		                a.err);
		return;
	}
	r = db_meeting_get(app->db, id, &m, err, sizeof(err));
	if (r == DB_ENOTFOUND) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "no such meeting");
		return;
	}
	if (r != 0) {
		db_unavailable(out, rq, err);
		return;
	}
	if (!gate_may_read(&who, m.host_identity)) {
		gate_resp_error(out, rq, 403, "forbidden", NULL,
		                "%s may not see this meeting's attempts: only "
		                "its host, an admin or compliance",
		                who.via);
		goto out;
	}
	if ((r = db_meeting_probed_at(app->db, id, probed, err,
	                              sizeof(err))) < 0 ||
	    att_build(app, id, r == 1 ? probed : NULL, &a, &o, err,
	              sizeof(err)) != 0) {
		db_unavailable(out, rq, err);
		goto out;
	}
	json_object_set_new(o, "title", json_string(m.title));
	gate_resp_json(out, 200, o);
out:
	db_meeting_free(&m);
}

void
gate_h_attempts(struct gate_app *app, const struct gate_rq *rq,
                struct gate_resp *out)
{
	struct gate_principal who;
	struct att_params a;
	char err[512];
	json_t *o = NULL;

	if (gate_auth_request(app, rq, &who, out) != 0)
		return;
	if (!(who.roles & (GATE_ROLE_ADMIN | GATE_ROLE_COMPLIANCE))) {
		gate_resp_error(out, rq, 403, "forbidden", NULL,
		                "%s may not see every meeting's attempts (role "
		                "needed: admin or compliance); a host asks "
		                "/v1/meetings/{id}/attempts",
		                who.via);
		return;
	}
	if (att_params_get(rq, &a) != 0) {
		gate_resp_error(out, rq, 400, "invalid_parameter", NULL, "%s",
		                a.err);
		return;
	}
	if (att_build(app, NULL, NULL, &a, &o, err, sizeof(err)) != 0) {
		db_unavailable(out, rq, err);
		return;
	}
	gate_resp_json(out, 200, o);
}

/* ---- the page ------------------------------------------------------------ */

static void
esc(struct gate_buf *b, const char *s)
{
	gate_html_escape(b, s != NULL ? s : "");
}

static long long
geti(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

#define SVG_W 840
#define SVG_H 260
#define PAD_L 48
#define PAD_R 12
#define PAD_T 24
#define PAD_B 40

/* The chart: a bar per interval, failed stacked on allowed; an orange
 * mark over intervals with lockout answers, a purple line where the
 * probing flag was raised. */
static void
chart(struct gate_buf *b, json_t *o)
{
	json_t *bk = json_object_get(o, "buckets");
	size_t n = json_array_size(bk);
	long long ymax = 1;
	double plot_w = SVG_W - PAD_L - PAD_R, plot_h = SVG_H - PAD_T - PAD_B;
	double bw;

	for (size_t i = 0; i < n; i++)
		if (geti(json_array_get(bk, i), "attempts") > ymax)
			ymax = geti(json_array_get(bk, i), "attempts");
	bw = n > 0 ? plot_w / (double)n : plot_w;
	gate_buf_printf(
	    b,
	    "<svg id=\"attempts-chart\" xmlns=\"http://www.w3.org/2000/svg\" "
	    "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
	    "aria-labelledby=\"chart-title\"><title id=\"chart-title\">"
	    "Admission attempts per %lld seconds: %lld allowed, %lld failed"
	    "</title>",
	    SVG_W, SVG_H, SVG_W, SVG_H, geti(o, "interval_seconds"),
	    geti(json_object_get(o, "totals"), "allowed"),
	    geti(json_object_get(o, "totals"), "failed"));
	gate_buf_printf(b,
	                "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" "
	                "fill=\"#fff\"/>"
	                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
	                "stroke=\"#444\"/><line x1=\"%d\" y1=\"%d\" x2=\"%d\" "
	                "y2=\"%d\" stroke=\"#444\"/>"
	                "<text x=\"%d\" y=\"%d\" font-size=\"11\" "
	                "text-anchor=\"end\">%lld</text>"
	                "<text x=\"%d\" y=\"%d\" font-size=\"11\" "
	                "text-anchor=\"end\">0</text>",
	                SVG_W, SVG_H, PAD_L, PAD_T, PAD_L, SVG_H - PAD_B, PAD_L,
	                SVG_H - PAD_B, SVG_W - PAD_R, SVG_H - PAD_B, PAD_L - 4,
	                PAD_T + 4, ymax, PAD_L - 4, SVG_H - PAD_B);
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(bk, i);
		long long al = geti(x, "allowed"), fa = geti(x, "failed");
		double xx = PAD_L + bw * (double)i + (bw > 3 ? 1 : 0);
		double w = bw > 3 ? bw - 2 : bw;
		double ha = plot_h * (double)al / (double)ymax;
		double hf = plot_h * (double)fa / (double)ymax;
		double base = SVG_H - PAD_B;
		const char *start =
		    json_string_value(json_object_get(x, "start"));

		if (al > 0)
			gate_buf_printf(b,
			                "<rect class=\"bar allowed\" "
			                "x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			                "height=\"%.1f\" fill=\"#2a8a3a\">"
			                "<title>%s: %lld allowed</title></rect>",
			                xx, base - ha, w, ha, start, al);
		if (fa > 0)
			gate_buf_printf(b,
			                "<rect class=\"bar failed\" "
			                "data-failed=\"%lld\" x=\"%.1f\" "
			                "y=\"%.1f\" width=\"%.1f\" "
			                "height=\"%.1f\" fill=\"#c0392b\">"
			                "<title>%s: %lld failed</title></rect>",
			                fa, xx, base - ha - hf, w, hf, start, fa);
		if (geti(x, "locked") > 0)
			gate_buf_printf(b,
			                "<path class=\"mark lockout\" d=\"M%.1f "
			                "%d l6 -10 l-12 0 z\" fill=\"#e67e22\">"
			                "<title>%s: %lld lockout answers"
			                "</title></path>",
			                xx + w / 2, PAD_T - 2, start,
			                geti(x, "locked"));
		if (json_is_true(json_object_get(x, "probing_flagged")))
			gate_buf_printf(b,
			                "<line class=\"mark probing\" x1=\"%.1f\" "
			                "y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
			                "stroke=\"#8e44ad\" stroke-width=\"3\" "
			                "stroke-dasharray=\"4 3\"><title>%s: "
			                "probing flag raised</title></line>",
			                xx + w / 2, PAD_T - 14, xx + w / 2,
			                SVG_H - PAD_B, start);
	}
	if (n > 0) {
		gate_buf_printf(b,
		                "<text x=\"%d\" y=\"%d\" font-size=\"11\">",
		                PAD_L, SVG_H - PAD_B + 16);
		esc(b, json_string_value(json_object_get(o, "from")));
		gate_buf_printf(b,
		                "</text><text x=\"%d\" y=\"%d\" font-size=\"11\" "
		                "text-anchor=\"end\">",
		                SVG_W - PAD_R, SVG_H - PAD_B + 16);
		esc(b, json_string_value(json_object_get(o, "to")));
		gate_buf_printf(b, "</text>");
	}
	gate_buf_printf(
	    b, "<g font-size=\"11\"><rect x=\"%d\" y=\"%d\" width=\"10\" "
	       "height=\"10\" fill=\"#2a8a3a\"/><text x=\"%d\" y=\"%d\">allowed"
	       "</text><rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" "
	       "fill=\"#c0392b\"/><text x=\"%d\" y=\"%d\">failed</text>"
	       "<path d=\"M%d %d l6 -10 l-12 0 z\" fill=\"#e67e22\"/><text "
	       "x=\"%d\" y=\"%d\">lockout</text><line x1=\"%d\" y1=\"%d\" "
	       "x2=\"%d\" y2=\"%d\" stroke=\"#8e44ad\" stroke-width=\"2\" "
	       "stroke-dasharray=\"4 3\"/><text x=\"%d\" y=\"%d\">probing "
	       "flag</text></g></svg>",
	    PAD_L, SVG_H - 14, PAD_L + 14, SVG_H - 5, PAD_L + 80, SVG_H - 14,
	    PAD_L + 94, SVG_H - 5, PAD_L + 166, SVG_H - 4, PAD_L + 176,
	    SVG_H - 5, PAD_L + 250, SVG_H - 15, PAD_L + 250, SVG_H - 3,
	    PAD_L + 258, SVG_H - 5);
}

static void
table_of(struct gate_buf *b, json_t *list, const char *id, const char *key,
         const char *key_label, const char *count_key)
{
	size_t n = json_array_size(list);
	int with_reasons;

	if (n == 0) {
		gate_buf_printf(b, "<p id=\"%s\">None.</p>", id);
		return;
	}
	with_reasons =
	    json_object_get(json_array_get(list, 0), "reasons") != NULL;

	gate_buf_printf(b,
	                "<table id=\"%s\"><thead><tr><th>%s</th><th>"
	                "count</th>%s<th>first</th><th>last</th></tr>"
	                "</thead><tbody>",
	                id, key_label, with_reasons ? "<th>reasons</th>" : "");
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(list, i), *rs;
		size_t k;
		json_t *r;

		gate_buf_printf(b, "<tr><td>");
		esc(b, json_string_value(json_object_get(x, key)));
		gate_buf_printf(b, "</td><td class=\"num\">%lld</td>",
		                geti(x, count_key));
		if (with_reasons) {
			gate_buf_printf(b, "<td>");
			rs = json_object_get(x, "reasons");
			json_array_foreach(rs, k, r)
			{
				if (k > 0)
					gate_buf_printf(b, ", ");
				esc(b, json_string_value(r));
			}
			gate_buf_printf(b, "</td>");
		}
		gate_buf_printf(b, "<td>");
		esc(b, json_string_value(json_object_get(x, "first_at")));
		gate_buf_printf(b, "</td><td>");
		esc(b, json_string_value(json_object_get(x, "last_at")));
		gate_buf_printf(b, "</td></tr>");
	}
	gate_buf_printf(b, "</tbody></table>");
}

static void
page(struct gate_resp *out, const struct gate_rq *rq, int status,
     const char *heading, const char *msg, const char *body)
{
	struct gate_buf b;

	gate_buf_init(&b, 4u * 1024 * 1024);
	gate_buf_printf(&b,
	                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta "
	                "charset=\"utf-8\"><meta name=\"viewport\" "
	                "content=\"width=device-width, initial-scale=1\">"
	                "<title>");
	esc(&b, heading);
	gate_buf_printf(
	    &b, "</title><style>body{font-family:system-ui,sans-serif;"
	        "max-width:60rem;margin:0 auto;padding:1rem;line-height:1.4}"
	        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:"
	        "1px solid #ccc;padding:.25rem .5rem;text-align:left}"
	        "td.num{text-align:right}.msg{padding:.75rem;border-left:4px "
	        "solid #b00;background:#fee}.flag{padding:.75rem;border-left:"
	        "4px solid #8e44ad;background:#f5eefa}svg{max-width:100%%;"
	        "height:auto;border:1px solid #ddd}</style></head><body><main>"
	        "<h1>");
	esc(&b, heading);
	gate_buf_printf(&b, "</h1>");
	if (msg != NULL) {
		gate_buf_printf(&b, "<p class=\"msg\" role=\"alert\">");
		esc(&b, msg);
		gate_buf_printf(&b, "</p>");
	}
	if (body != NULL)
		gate_buf_add(&b, body, strlen(body));
	gate_buf_printf(&b,
	                "<p><small>Request id <code>%s</code></small></p>"
	                "</main></body></html>\n",
	                rq->id);
	out->csp = PAGE_CSP;
	gate_resp_html(out, b.failed ? 503 : status,
	               b.failed ? strdup("<!DOCTYPE html><p>The page is too "
	                                 "large; choose a shorter range.</p>")
	                        : gate_buf_take(&b, NULL));
	gate_buf_free(&b);
}

static void
page_body(struct gate_buf *b, const char *id, const char *title, json_t *o)
{
	json_t *t = json_object_get(o, "totals"), *v;
	json_t *pr = json_object_get(o, "probing");
	const char *k;

	gate_buf_printf(b, "<p>Meeting: <strong>");
	esc(b, title);
	gate_buf_printf(b, "</strong><br>From ");
	esc(b, json_string_value(json_object_get(o, "from")));
	gate_buf_printf(b, " to ");
	esc(b, json_string_value(json_object_get(o, "to")));
	gate_buf_printf(b, ", one bar per %lld seconds. Show: ",
	                geti(o, "interval_seconds"));
	gate_buf_printf(b,
	                "<a href=\"/m/%s/attempts?interval=5m&amp;from=",
	                id);
	{
		char t1[40];
		long long now = (long long)time(NULL) * 1000000LL;

		gate_time_fmt_us(now - 3600LL * 1000000LL, t1, sizeof(t1));
		esc(b, t1);
		gate_buf_printf(b, "\">last hour</a> &middot; <a href=\"/m/%s/"
		                   "attempts\">last 24 hours</a> &middot; <a "
		                   "href=\"/m/%s/attempts?interval=1d&amp;from=",
		                id, id);
		gate_time_fmt_us(now - 30 * DAY_US, t1, sizeof(t1));
		esc(b, t1);
		gate_buf_printf(b, "\">last 30 days</a></p>");
	}
	if (json_is_true(json_object_get(pr, "flagged"))) {
		gate_buf_printf(b, "<p class=\"flag\" id=\"probing\">This "
		                   "meeting was flagged as probed at <strong>");
		esc(b, json_string_value(json_object_get(pr, "probed_at")));
		gate_buf_printf(b, "</strong> (failed attempts from many "
		                   "identities); its waiting room is on.</p>");
	}
	gate_buf_printf(b,
	                "<table id=\"totals\"><tr><th>attempts</th><td "
	                "class=\"num\" id=\"total-attempts\">%lld</td></tr>"
	                "<tr><th>allowed</th><td class=\"num\" "
	                "id=\"total-allowed\">%lld</td></tr><tr><th>failed"
	                "</th><td class=\"num\" id=\"total-failed\">%lld</td>"
	                "</tr>",
	                geti(t, "attempts"), geti(t, "allowed"),
	                geti(t, "failed"));
	json_object_foreach(json_object_get(t, "failed_by_reason"), k, v)
	{
		gate_buf_printf(b, "<tr><th>&nbsp;&nbsp;");
		esc(b, k);
		gate_buf_printf(b, "</th><td class=\"num\">%lld</td></tr>",
		                (long long)json_integer_value(v));
	}
	gate_buf_printf(b, "</table>");
	chart(b, o);
	gate_buf_printf(b, "<h2>Failures by identity</h2>");
	table_of(b, json_object_get(o, "failures_by_identity"), "by-identity",
	         "identity", "identity", "failures");
	gate_buf_printf(b, "<h2>Failures by source address</h2>");
	table_of(b, json_object_get(o, "failures_by_source"), "by-source",
	         "source", "source", "failures");
	gate_buf_printf(b, "<h2>Lockouts</h2>");
	table_of(b, json_object_get(o, "lockouts"), "lockouts", "identity",
	         "identity", "locked_answers");
	gate_buf_printf(b, "<p><a href=\"/v1/meetings/%s/attempts\">These "
	                   "figures as JSON</a></p>",
	                id);
}

void
gate_h_attempts_page(struct gate_app *app, const struct gate_rq *rq,
                     struct gate_resp *out)
{
	struct gate_principal who;
	struct att_params a;
	struct db_meeting m;
	struct gate_buf b;
	char id[37], err[512], probed[40], login[128];
	json_t *o = NULL;
	char *body;
	int r;

	memset(&m, 0, sizeof(m));
	if (uuid_param(rq, id) != 0) {
		page(out, rq, 404, "Meeting not found",
		     "No such meeting: meeting ids are UUIDs.", NULL);
		return;
	}
	if (gate_auth_request(app, rq, &who, out) != 0) {
		if (out->status == 401) {
			/* Not signed in: sign in, then back here. */
			free(out->body);
			out->body = NULL;
			for (int i = 0; i < out->nheaders; i++)
				free(out->headers[i].value);
			out->nheaders = 0;
			snprintf(login, sizeof(login),
			         "/saml/login?return=/m/%s/attempts", id);
			(void)gate_resp_header(out, MHD_HTTP_HEADER_LOCATION,
			                       login);
			out->csp = PAGE_CSP;
			gate_resp_html(out, 303, strdup(""));
		} else if (out->status == 403) {
			free(out->body);
			out->body = NULL;
			page(out, rq, 403, "Not allowed",
			     "You may not see this page.", NULL);
		} else {
			free(out->body);
			out->body = NULL;
			page(out, rq, 503, "Try again in a moment",
			     "Your roles could not be checked. Try again in a "
			     "moment.",
			     NULL);
		}
		return;
	}
	if (att_params_get(rq, &a) != 0) {
		page(out, rq, 400, "Failed attempts", a.err, NULL);
		return;
	}
	r = db_meeting_get(app->db, id, &m, err, sizeof(err));
	if (r == DB_ENOTFOUND) {
		page(out, rq, 404, "Meeting not found", "No such meeting.",
		     NULL);
		return;
	}
	if (r != 0)
		goto unavailable;
	if (!gate_may_read(&who, m.host_identity)) {
		page(out, rq, 403, "Not allowed",
		     "Only the meeting's host, an administrator or compliance "
		     "can see its failed attempts.",
		     NULL);
		goto out;
	}
	if ((r = db_meeting_probed_at(app->db, id, probed, err,
	                              sizeof(err))) < 0 ||
	    att_build(app, id, r == 1 ? probed : NULL, &a, &o, err,
	              sizeof(err)) != 0)
		goto unavailable;
	gate_buf_init(&b, 3u * 1024 * 1024);
	page_body(&b, id, m.title, o);
	body = b.failed ? NULL : gate_buf_take(&b, NULL);
	gate_buf_free(&b);
	if (body == NULL) {
		page(out, rq, 503, "Failed attempts",
		     "The page could not be made; choose a shorter range.",
		     NULL);
		goto out;
	}
	page(out, rq, 200, "Failed attempts", NULL, body);
	free(body);
	goto out;
unavailable:
	gate_log(GATE_LOG_ERROR, rq->id, "db_error", "attempts page: %s", err);
	page(out, rq, 503, "Try again in a moment",
	     "The attempts could not be counted now. Try again in a moment.",
	     NULL);
out:
	json_decref(o);
	db_meeting_free(&m);
}
