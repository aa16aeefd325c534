/*
 * server/routes_audit.c -- the compliance endpoints: the streamed audit
 * export and its manifest, and a meeting's access review.
 *
 * The export is answered with a libmicrohttpd content reader: it is asked
 * for more only when the client has taken what was sent (back-pressure),
 * and each call turns the next records of the database cursor into bytes,
 * so a million records cost the memory of one batch. The manifest is
 * signed once the last byte has been made and is fetched afterwards by id
 * (X-Roomgate-Export-Id, Link rel=describedby).
 *
 * Each export holds a database connection and a snapshot for as long as
 * its client reads, so a node streams at most [audit] max_exports at once
 * (more get 429) and cuts an export off after [audit] export_timeout
 * seconds, however slowly its client reads.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "server/audit_export.h"
#include "server/meetings.h"

struct qctx {
	struct gate_export_params *p;
	char err[512];
	int bad;
};

static enum MHD_Result
export_arg(void *cls, enum MHD_ValueKind kind, const char *key,
           const char *value)
{
	struct qctx *q = cls;

	(void)kind;
	if (q->bad)
		return MHD_NO;
	if (gate_export_param(q->p, key, value, q->err, sizeof(q->err)) != 0)
		q->bad = 1;
	return q->bad ? MHD_NO : MHD_YES;
}

static void
actor_of(const struct gate_app *app, const struct gate_rq *rq,
         const struct gate_principal *p, struct db_actor *by)
{
	memset(by, 0, sizeof(*by));
	by->identity = p->identity;
	by->request_id = rq->id;
	by->node = app->cfg->node_name;
	by->source_addr = rq->remote != NULL && strcmp(rq->remote, "-") != 0
	                      ? rq->remote
	                      : NULL;
}

/* The export's stream: one gate_export per response. */
struct stream {
	struct gate_export *x;
	char rid[33];
	struct timespec deadline; /* CLOCK_MONOTONIC */
};

/* Exports streaming on this node now. */
static atomic_int exports_running;

static int
past(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec ||
	       (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	char err[1024];
	ssize_t n;

	(void)pos;
	if (past(&s->deadline)) {
		/* Incomplete on purpose: no terminating chunk, no manifest. */
		gate_log(GATE_LOG_WARN, s->rid, "audit_export_timeout",
		         "export %s cut off after [audit] export_timeout with "
		         "%lld records sent: narrow the range or read faster",
		         gate_export_id(s->x), gate_export_count(s->x));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	n = gate_export_read(s->x, buf, max, err, sizeof(err));
	if (n > 0)
		return n;
	if (n == 0) {
		gate_log(GATE_LOG_INFO, s->rid, "audit_export",
		         "export %s: %lld records", gate_export_id(s->x),
		         gate_export_count(s->x));
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	/* The body stops short (no terminating chunk): the client sees an
	 * incomplete transfer and no manifest exists for it. */
	gate_log(GATE_LOG_ERROR, s->rid, "audit_export_failed", "export %s: %s",
	         gate_export_id(s->x), err);
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void
stream_free(void *cls)
{
	struct stream *s = cls;

	gate_export_free(s->x);
	free(s);
	atomic_fetch_sub(&exports_running, 1);
}

static int
need_compliance(const struct gate_rq *rq, const struct gate_principal *p,
                struct gate_resp *out)
{
	if (p->roles & GATE_ROLE_COMPLIANCE)
		return 0;
	gate_resp_error(out, rq, 403, "forbidden", NULL,
	                "%s may not read the audit trail (role needed: "
	                "compliance)",
	                p->via);
	return -1;
}

void
gate_h_audit_export(struct gate_app *app, const struct gate_rq *rq,
                    struct gate_resp *out)
{
	struct gate_export_params p;
	struct gate_principal who;
	struct db_actor by;
	struct stream *s = NULL;
	struct qctx q;
	char err[1024], hdr[160];
	int status;

	if (gate_auth_request(app, rq, &who, out) != 0 ||
	    need_compliance(rq, &who, out) != 0)
		return;
	gate_export_params_init(&p);
	memset(&q, 0, sizeof(q));
	q.p = &p;
	MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, export_arg,
	                          &q);
	if (!q.bad && gate_export_params_finish(
	                  &p, (long long)time(NULL) * 1000000LL, q.err,
	                  sizeof(q.err)) != 0)
		q.bad = 1;
	if (q.bad) {
		gate_resp_error(out, rq, 400, "invalid_parameter", NULL, "%s",
		                q.err);
		return;
	}
	if (atomic_fetch_add(&exports_running, 1) >= app->cfg->audit_max_exports) {
		atomic_fetch_sub(&exports_running, 1);
		gate_resp_error(out, rq, 429, "too_many_exports", NULL,
		                "%d export(s) are streaming on this node already "
		                "([audit] max_exports); retry when one has "
		                "finished",
		                app->cfg->audit_max_exports);
		out->retry_after = 30;
		return;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		atomic_fetch_sub(&exports_running, 1);
		gate_resp_error(out, rq, 503, "internal", NULL,
		                "out of memory; retry shortly");
		return;
	}
	snprintf(s->rid, sizeof(s->rid), "%s", rq->id);
	clock_gettime(CLOCK_MONOTONIC, &s->deadline);
	s->deadline.tv_sec += app->cfg->audit_export_timeout_s;
	actor_of(app, rq, &who, &by);
	if (gate_export_begin(app->cfg, app->db, &p, &by, 0, &s->x, &status,
	                      err, sizeof(err)) != 0) {
		free(s);
		atomic_fetch_sub(&exports_running, 1);
		gate_log(GATE_LOG_ERROR, rq->id, "audit_export_failed", "%s",
		         err);
		gate_resp_error(out, rq, status,
		                status == 503 ? "unavailable" : "bad_request",
		                NULL, "%s", err);
		if (status == 503)
			out->retry_after = 5;
		return;
	}
	out->status = 200;
	out->content_type = p.format == GATE_EXPORT_CSV
	                        ? "text/csv; charset=utf-8; header=present"
	                        : "application/x-ndjson";
	out->stream = stream_read;
	out->stream_free = stream_free;
	out->stream_cls = s;
	(void)gate_resp_header(out, "X-Roomgate-Export-Id",
	                       gate_export_id(s->x));
	snprintf(hdr, sizeof(hdr),
	         "</v1/audit/exports/%s/manifest>; rel=\"describedby\"",
	         gate_export_id(s->x));
	(void)gate_resp_header(out, "Link", hdr);
	snprintf(hdr, sizeof(hdr),
	         "attachment; filename=\"roomgate-audit-%s.%s\"",
	         gate_export_id(s->x),
	         p.format == GATE_EXPORT_CSV ? "csv" : "jsonl");
	(void)gate_resp_header(out, "Content-Disposition", hdr);
}

/* The {id} parameter i as a lower-case UUID. */
static int
uuid_of(const struct gate_rq *rq, int i, char id[37])
{
	if (rq->nparams <= i)
		return -1;
	return gate_uuid_parse(rq->params[i].p, rq->params[i].len, id);
}

void
gate_h_audit_export_manifest(struct gate_app *app, const struct gate_rq *rq,
                             struct gate_resp *out)
{
	struct gate_principal who;
	char id[37], err[512], *m = NULL;
	int r;

	if (gate_auth_request(app, rq, &who, out) != 0 ||
	    need_compliance(rq, &who, out) != 0)
		return;
	if (uuid_of(rq, 0, id) != 0) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "no such export: export ids are UUIDs (the "
		                "X-Roomgate-Export-Id of the export's answer)");
		return;
	}
	r = db_export_manifest(app->db, id, &m, err, sizeof(err));
	if (r < 0) {
		gate_log(GATE_LOG_ERROR, rq->id, "db_error", "%s", err);
		gate_resp_error(out, rq, 503, "database_unavailable", NULL,
		                "the manifest cannot be read now: the database "
		                "is unavailable; retry shortly");
		out->retry_after = 2;
		return;
	}
	if (r == 0) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "no finished export %s: a manifest exists once "
		                "the whole export has been sent (an interrupted "
		                "export has none; export again)",
		                id);
		return;
	}
	out->status = 200;
	out->content_type = "application/json";
	out->body = m;
	out->len = strlen(m);
}

/* ---- access review ------------------------------------------------------ */

static const char *const review_cols[] = {
    "identity",      "matched_group", "admitted_at",
    "ended_at",      "state",         "revoke_reason",
    "decided_by",    "admission_id",  "idp"};
#define NREVIEW ((int)(sizeof(review_cols) / sizeof(review_cols[0])))

struct review_q {
	char date[11];
	int have_date, csv, bad;
	char err[256];
};

static enum MHD_Result
review_arg(void *cls, enum MHD_ValueKind kind, const char *key,
           const char *value)
{
	struct review_q *q = cls;
	long long us;

	(void)kind;
	if (q->bad)
		return MHD_NO;
	if (value == NULL)
		value = "";
	if (strcmp(key, "date") == 0) {
		if (strlen(value) != 10 || gate_time_parse_us(value, &us) != 0) {
			snprintf(q->err, sizeof(q->err),
			         "date must be a day as YYYY-MM-DD (UTC), e.g. "
			         "2026-11-28");
			q->bad = 1;
		} else {
			memcpy(q->date, value, 11);
			q->have_date = 1;
		}
	} else if (strcmp(key, "format") == 0) {
		if (strcmp(value, "csv") == 0)
			q->csv = 1;
		else if (strcmp(value, "json") == 0)
			q->csv = 0;
		else {
			snprintf(q->err, sizeof(q->err),
			         "format must be csv or json");
			q->bad = 1;
		}
	} else {
		snprintf(q->err, sizeof(q->err),
		         "unknown parameter \"%.64s\"; the access review takes "
		         "date and format",
		         key);
		q->bad = 1;
	}
	return q->bad ? MHD_NO : MHD_YES;
}

void
gate_h_access_review(struct gate_app *app, const struct gate_rq *rq,
                     struct gate_resp *out)
{
	struct gate_principal who;
	struct db_meeting m;
	struct db_table t;
	struct review_q q;
	struct gate_buf b;
	char id[37], err[512], hdr[160];
	long long day;
	json_t *o = NULL, *list = NULL, *groups = NULL, *ag = NULL;
	time_t now = time(NULL);
	struct tm tm;
	int r, people = 0;

	memset(&m, 0, sizeof(m));
	memset(&t, 0, sizeof(t));
	if (gate_auth_request(app, rq, &who, out) != 0)
		return;
	if (uuid_of(rq, 0, id) != 0) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "no such meeting: meeting ids are UUIDs");
		return;
	}
	memset(&q, 0, sizeof(q));
	MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, review_arg,
	                          &q);
	if (q.bad) {
		gate_resp_error(out, rq, 400, "invalid_parameter", NULL, "%s",
		                q.err);
		return;
	}
	if (!q.have_date) {
		gmtime_r(&now, &tm);
		strftime(q.date, sizeof(q.date), "%Y-%m-%d", &tm);
	}
	(void)gate_time_parse_us(q.date, &day);
	r = db_meeting_get(app->db, id, &m, err, sizeof(err));
	if (r == DB_ENOTFOUND) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "no such meeting");
		return;
	}
	if (r != 0)
		goto unavailable;
	if (!gate_may_read(&who, m.host_identity)) {
		gate_resp_error(out, rq, 403, "forbidden", NULL,
		                "%s may not see this meeting's access review: "
		                "only its host, an admin or compliance",
		                who.via);
		goto out;
	}
	if (db_access_review(app->db, id, day, &t, err, sizeof(err)) != 0)
		goto unavailable;
	for (int i = 0; i < t.nrows; i++)
		if (i == 0 || strcmp(db_table_get(&t, i, 0),
		                     db_table_get(&t, i - 1, 0)) != 0)
			people++;
	if (q.csv) {
		gate_buf_init(&b, 64u * 1024 * 1024);
		for (int c = 0; c < NREVIEW; c++) {
			if (c > 0)
				gate_buf_add(&b, ",", 1);
			gate_csv_cell(&b, review_cols[c]);
		}
		gate_buf_add(&b, "\r\n", 2);
		for (int i = 0; i < t.nrows; i++) {
			for (int c = 0; c < NREVIEW; c++) {
				if (c > 0)
					gate_buf_add(&b, ",", 1);
				gate_csv_cell(&b, db_table_get(&t, i, c));
			}
			gate_buf_add(&b, "\r\n", 2);
		}
		if (b.failed) {
			gate_buf_free(&b);
			gate_resp_error(out, rq, 503, "internal", NULL,
			                "the review is too large to make now");
			goto out;
		}
		out->status = 200;
		out->content_type = "text/csv; charset=utf-8; header=present";
		out->body = gate_buf_take(&b, &out->len);
		snprintf(hdr, sizeof(hdr),
		         "attachment; filename=\"access-review-%s-%s.csv\"", id,
		         q.date);
		(void)gate_resp_header(out, "Content-Disposition", hdr);
		goto out;
	}
	list = json_array();
	groups = json_object();
	ag = json_array();
	for (size_t i = 0; i < m.ngroups && ag != NULL; i++)
		json_array_append_new(ag, json_string(m.groups[i]));
	for (int i = 0; i < t.nrows && list != NULL && groups != NULL; i++) {
		json_t *row = json_object();
		const char *g = db_table_get(&t, i, 1);

		for (int c = 0; c < NREVIEW && row != NULL; c++) {
			const char *v = db_table_get(&t, i, c);

			json_object_set_new(row, review_cols[c],
			                    v ? json_string(v) : json_null());
		}
		json_array_append_new(list, row);
		if (g != NULL)
			json_object_set_new(
			    groups, g,
			    json_integer(json_integer_value(
			                     json_object_get(groups, g)) +
			                 1));
	}
	o = json_pack("{s:s, s:s, s:s, s:o*, s:s, s:i, s:i, s:o*, s:o*}",
	              "meeting_id", id, "title", m.title, "host_identity",
	              m.host_identity, "allowed_groups", ag, "date", q.date,
	              "population", people, "admissions_count", t.nrows,
	              "admissions_by_group", groups, "admissions", list);
	ag = groups = list = NULL;
	if (o == NULL) {
		gate_resp_error(out, rq, 503, "internal", NULL,
		                "out of memory; retry shortly");
		goto out;
	}
	gate_resp_json(out, 200, o);
	goto out;
unavailable:
	gate_log(GATE_LOG_ERROR, rq->id, "db_error", "access review: %s", err);
	gate_resp_error(out, rq, 503, "database_unavailable", NULL,
	                "the access review cannot be read now: the database "
	                "is unavailable; retry shortly");
	out->retry_after = 2;
out:
	json_decref(ag);
	json_decref(groups);
	json_decref(list);
	db_table_free(&t);
	db_meeting_free(&m);
}
