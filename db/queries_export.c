/*
 * db/queries_export.c -- the audit export cursor, finished exports and the
 * compliance reports (access review, failed attempts). See db_export.h.
 *
 * The export runs on a connection of its own: a cursor over a million rows
 * held on a pooled connection would take it from admissions for as long
 * as the client reads, and single-row mode would make the whole export one
 * statement under statement_timeout. A cursor FETCHes in batches, each
 * its own statement, so memory holds one batch whatever the size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_export.h"
#include "db/db_int.h"

#define FETCH_ROWS 1000
#define FETCH_SQL "FETCH FORWARD 1000 FROM rg_export"

#define UTC_US(col)                                                            \
	"to_char(" col " AT TIME ZONE 'UTC', "                                 \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define UTC_S(col)                                                             \
	"to_char(" col " AT TIME ZONE 'UTC', "                                 \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* $1 from (us or NULL), $2 to (us), $3 meeting, $4 identity, $5 outcome */
#define EXPORT_FILTER                                                          \
	" WHERE ($1::bigint IS NULL OR a.at >= "                               \
	"to_timestamp($1::bigint / 1000000.0)) AND a.at < "                    \
	"to_timestamp($2::bigint / 1000000.0) AND ($3::uuid IS NULL OR "       \
	"a.meeting_id = $3::uuid) AND ($4::text IS NULL OR a.identity = $4) "  \
	"AND ($5::text IS NULL OR a.outcome = $5)"
#define EXPORT_WHERE " FROM audit_log a" EXPORT_FILTER

/* The cursor; chain columns and join depend on the schema. The filter's
 * columns are named through a (audit_log). */
#define DECLARE_SQL(chain_cols, chain_join)                                    \
	"DECLARE rg_export NO SCROLL CURSOR FOR SELECT a.seq::text, "          \
	DB_AUDIT_FIELDS_SQL ", " chain_cols " FROM audit_log a" chain_join    \
	EXPORT_FILTER " ORDER BY a.seq"

struct db_export {
	PGconn *pg;
	PGresult *batch;
	int row, nrows;
	int done;
	const char *vals[DB_EXPORT_NCOLS];
};

static int
ok(const PGresult *res)
{
	return res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK ||
	                       PQresultStatus(res) == PGRES_TUPLES_OK);
}

static int
run(PGconn *pg, const char *sql, int n, const char *const *v, const char *what,
    PGresult **keep, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(pg, sql, n, NULL, v, NULL, NULL, 0);
	int r;

	if (!ok(res)) {
		r = db_result_err(pg, res, what, err, errlen);
		PQclear(res);
		return r;
	}
	if (keep != NULL)
		*keep = res;
	else
		PQclear(res);
	return 0;
}

static void
filter_params(const struct db_export_filter *f, char from[24], char to[24],
              const char *v[5])
{
	snprintf(from, 24, "%lld", f->from_us);
	snprintf(to, 24, "%lld", f->to_us);
	v[0] = f->from_us > 0 ? from : NULL;
	v[1] = to;
	v[2] = f->meeting_id;
	v[3] = f->identity;
	v[4] = f->outcome;
}

int
db_export_open(const char *conninfo, int connect_timeout_s,
               int statement_timeout_ms, const struct db_export_filter *f,
               int with_count, long long *total, char **last_checkpoint,
               struct db_export **out, char *err, size_t errlen)
{
	struct db_params p;
	struct db_export *x = NULL;
	PGresult *res = NULL;
	char from[24], to[24];
	const char *v[5];
	int r, chain;

	*out = NULL;
	if (total != NULL)
		*total = 0;
	if (last_checkpoint != NULL)
		*last_checkpoint = NULL;
	if ((r = db_params_build(conninfo, connect_timeout_s,
	                         statement_timeout_ms, "roomgate-export", &p,
	                         err, errlen)) != 0)
		return r;
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		db_params_free(&p);
		db_seterr(err, errlen, "out of memory");
		return DB_ENOMEM;
	}
	r = db_connect(&p, &x->pg, err, errlen);
	db_params_free(&p);
	if (r != 0)
		goto fail;
	filter_params(f, from, to, v);
	if ((r = run(x->pg,
	             "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0,
	             NULL, "starting the export", NULL, err, errlen)) != 0)
		goto fail;
	if (with_count) {
		if ((r = run(x->pg, "SELECT count(*)" EXPORT_WHERE, 5, v,
		             "counting the records to export", &res, err,
		             errlen)) != 0)
			goto fail;
		if (total != NULL)
			*total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		res = NULL;
	}
	/* The chain and its checkpoints come with migration 0010; a
	 * database without them exports records without chain positions. */
	if ((r = run(x->pg,
	             "SELECT to_regclass('audit_chain') IS NOT NULL AND "
	             "to_regclass('audit_checkpoints') IS NOT NULL",
	             0, NULL, "looking for the audit chain", &res, err,
	             errlen)) != 0)
		goto fail;
	chain = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	res = NULL;
	if (last_checkpoint != NULL && chain) {
		if ((r = run(x->pg,
		             "SELECT json_build_object('id', id, 'kid', kid, "
		             "'last_seq', last_seq, 'count', count, 'last_hash', "
		             "encode(last_hash, 'hex'), 'created_at', "
		             UTC_US("created_at") ", 'body', body, 'sig', "
		             "translate(encode(sig, 'base64'), E'\\n', ''))::"
		             "text FROM "
		             "audit_checkpoints ORDER BY id DESC LIMIT 1",
		             0, NULL, "reading the last checkpoint", &res, err,
		             errlen)) != 0)
			goto fail;
		if (PQntuples(res) == 1 &&
		    (*last_checkpoint = strdup(PQgetvalue(res, 0, 0))) == NULL) {
			r = DB_ENOMEM;
			db_seterr(err, errlen, "out of memory");
			goto fail;
		}
		PQclear(res);
		res = NULL;
	}
	if ((r = run(x->pg,
	             chain ? DECLARE_SQL(
	                         "ch.seq IS NOT NULL, ch.pos::text, "
	                         "encode(ch.content_hash, 'hex'), "
	                         "encode(ch.hash, 'hex')",
	                         " LEFT JOIN audit_chain ch ON ch.seq = a.seq")
	                   : DECLARE_SQL("false, NULL::text, NULL::text, "
	                                 "NULL::text",
	                                 ""),
	             5, v, "opening the export cursor", NULL, err, errlen)) !=
	    0)
		goto fail;
	*out = x;
	return 0;
fail:
	PQclear(res);
	if (last_checkpoint != NULL) {
		free(*last_checkpoint);
		*last_checkpoint = NULL;
	}
	db_export_close(x);
	return r;
}

int
db_export_next(struct db_export *x, const char *const **row, char *err,
               size_t errlen)
{
	int r;

	*row = NULL;
	if (x->batch == NULL || x->row >= x->nrows) {
		if (x->done)
			return 0;
		PQclear(x->batch);
		x->batch = NULL;
		if ((r = run(x->pg, FETCH_SQL, 0, NULL,
		             "reading audit records", &x->batch, err,
		             errlen)) != 0)
			return r;
		x->nrows = PQntuples(x->batch);
		x->row = 0;
		if (x->nrows < FETCH_ROWS)
			x->done = 1;
		if (x->nrows == 0)
			return 0;
	}
	for (int i = 0; i < DB_EXPORT_NCOLS; i++)
		x->vals[i] = PQgetisnull(x->batch, x->row, i)
		                 ? NULL
		                 : PQgetvalue(x->batch, x->row, i);
	x->row++;
	*row = x->vals;
	return 1;
}

void
db_export_close(struct db_export *x)
{
	if (x == NULL)
		return;
	PQclear(x->batch);
	if (x->pg != NULL)
		PQfinish(x->pg); /* ends the read-only transaction */
	free(x);
}

int
db_export_record(struct db_pool *pool, const char *export_id,
                 const char *identity, const char *format,
                 const char *manifest, const char *details_json,
                 const struct db_actor *by, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[8] = {export_id,  identity,     format,
	                    manifest,   details_json, by ? by->request_id : NULL,
	                    by ? by->node : NULL, by ? by->source_addr : NULL};
	int r;

	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r = run(db_conn_pg(c),
	        "WITH e AS (INSERT INTO audit_exports (id, requested_by, "
	        "format, manifest) VALUES ($1::uuid, $2, $3, $4) RETURNING id) "
	        "INSERT INTO audit_log (event_type, outcome, reason, identity, "
	        "request_id, node, source_addr, details) SELECT 'audit.export', "
	        "'info', 'exported', $2, $6, $7, $8::inet, $5::jsonb FROM e",
	        8, v, "recording the export", NULL, err, errlen);
	db_release(pool, c);
	return r;
}

int
db_export_manifest(struct db_pool *pool, const char *export_id,
                   char **manifest, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[1] = {export_id};
	PGresult *res = NULL;
	int r;

	*manifest = NULL;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r = run(db_conn_pg(c),
	        "SELECT manifest FROM audit_exports WHERE id = $1::uuid", 1, v,
	        "reading the export manifest", &res, err, errlen);
	if (r == 0 && PQntuples(res) == 1) {
		*manifest = strdup(PQgetvalue(res, 0, 0));
		if (*manifest == NULL) {
			db_seterr(err, errlen, "out of memory");
			r = DB_ENOMEM;
		} else {
			r = 1;
		}
	}
	PQclear(res);
	db_release(pool, c);
	return r;
}

/* ---- tables ------------------------------------------------------------ */

const char *
db_table_get(const struct db_table *t, int row, int col)
{
	const PGresult *res = t->res;

	if (res == NULL || row < 0 || row >= t->nrows || col < 0 ||
	    col >= t->ncols || PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

void
db_table_free(struct db_table *t)
{
	if (t == NULL)
		return;
	PQclear(t->res);
	memset(t, 0, sizeof(*t));
}

static int
table(struct db_pool *pool, const char *sql, int n, const char *const *v,
      const char *what, struct db_table *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r = run(db_conn_pg(c), sql, n, v, what, &res, err, errlen);
	db_release(pool, c);
	if (r != 0)
		return r;
	out->res = res;
	out->nrows = PQntuples(res);
	out->ncols = PQnfields(res);
	return 0;
}

int
db_access_review(struct db_pool *pool, const char *meeting_id,
                 long long day_start_us, struct db_table *out, char *err,
                 size_t errlen)
{
	char day[24];
	const char *v[2] = {meeting_id, day};

	snprintf(day, sizeof(day), "%lld", day_start_us);
	return table(
	    pool,
	    "SELECT a.identity, a.matched_group, " UTC_S("a.admitted_at") ", "
	    UTC_S("a.ended_at") ", a.state, a.revoke_reason, a.decided_by, "
	    "a.id::text, (SELECT l.idp FROM audit_log l WHERE l.meeting_id = "
	    "a.meeting_id AND l.event_type = 'admission' AND l.details->>"
	    "'admission_id' = a.id::text LIMIT 1) FROM admissions a WHERE "
	    "a.meeting_id = $1::uuid AND a.admitted_at IS NOT NULL AND "
	    "a.admitted_at < to_timestamp($2::bigint / 1000000.0) + "
	    "interval '1 day' AND (a.ended_at IS NULL OR a.ended_at >= "
	    "to_timestamp($2::bigint / 1000000.0)) ORDER BY a.identity, "
	    "a.admitted_at, a.id",
	    2, v, "reading the access review", out, err, errlen);
}

/* $1 meeting (or NULL), $2 from us, $3 to us */
#define ATT_WHERE                                                              \
	" FROM audit_log WHERE event_type = 'admission' AND ($1::uuid IS "    \
	"NULL OR meeting_id = $1::uuid) AND at >= to_timestamp($2::bigint / " \
	"1000000.0) AND at < to_timestamp($3::bigint / 1000000.0)"

static void
att_params(const struct db_attempts_q *q, char a[24], char b[24], char c[24],
           char d[24], const char *v[5])
{
	snprintf(a, 24, "%lld", q->from_us);
	snprintf(b, 24, "%lld", q->to_us);
	snprintf(c, 24, "%lld", q->interval_s);
	snprintf(d, 24, "%d", q->top);
	v[0] = q->meeting_id;
	v[1] = a;
	v[2] = b;
	v[3] = c;
	v[4] = d;
}

int
db_attempts_buckets(struct db_pool *pool, const struct db_attempts_q *q,
                    struct db_table *out, char *err, size_t errlen)
{
	char a[24], b[24], c[24], d[24];
	const char *v[5];

	att_params(q, a, b, c, d, v);
	return table(pool,
	             "SELECT floor((extract(epoch FROM at) * 1000000 - "
	             "$2::bigint) / ($4::bigint * 1000000))::bigint AS k, "
	             "outcome, coalesce(reason, ''), count(*)" ATT_WHERE
	             " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
	             4, v, "counting attempts", out, err, errlen);
}

int
db_attempts_by(struct db_pool *pool, const struct db_attempts_q *q,
               int by_source, struct db_table *out, char *err, size_t errlen)
{
	char a[24], b[24], c[24], d[24];
	const char *v[5];

	att_params(q, a, b, c, d, v);
	v[3] = d;
	return table(
	    pool,
	    by_source
	        ? "SELECT host(source_addr) AS k, count(*), string_agg("
	          "DISTINCT coalesce(reason, ''), ','), " UTC_S("min(at)") ", "
	          UTC_S("max(at)") ", count(DISTINCT identity)" ATT_WHERE
	          " AND outcome = 'deny' AND source_addr IS NOT NULL GROUP BY "
	          "1 ORDER BY 2 DESC, 1 LIMIT $4::int"
	        : "SELECT identity AS k, count(*), string_agg(DISTINCT "
	          "coalesce(reason, ''), ','), " UTC_S("min(at)") ", "
	          UTC_S("max(at)") ", count(DISTINCT source_addr)" ATT_WHERE
	          " AND outcome = 'deny' AND identity IS NOT NULL GROUP BY 1 "
	          "ORDER BY 2 DESC, 1 LIMIT $4::int",
	    4, v, "counting failed attempts", out, err, errlen);
}

int
db_attempts_lockouts(struct db_pool *pool, const struct db_attempts_q *q,
                     struct db_table *out, char *err, size_t errlen)
{
	char a[24], b[24], c[24], d[24];
	const char *v[5];

	att_params(q, a, b, c, d, v);
	return table(pool,
	             "SELECT identity, count(*), " UTC_S("min(at)") ", "
	             UTC_S("max(at)") ATT_WHERE " AND outcome = 'deny' AND "
	             "reason = 'locked' GROUP BY 1 ORDER BY min(at), 1",
	             3, v, "reading lockouts", out, err, errlen);
}

int
db_attempts_probes(struct db_pool *pool, const struct db_attempts_q *q,
                   struct db_table *out, char *err, size_t errlen)
{
	char a[24], b[24], c[24], d[24];
	const char *v[5];

	att_params(q, a, b, c, d, v);
	return table(pool,
	             "SELECT meeting_id::text, " UTC_S("at") ", details->>"
	             "'failed_identities', floor((extract(epoch FROM at) * "
	             "1000000 - $2::bigint) / ($4::bigint * 1000000))::bigint "
	             "FROM audit_log WHERE event_type = 'meeting.probed' AND "
	             "($1::uuid IS NULL OR meeting_id = $1::uuid) AND at >= "
	             "to_timestamp($2::bigint / 1000000.0) AND at < "
	             "to_timestamp($3::bigint / 1000000.0) ORDER BY at",
	             4, v, "reading probing flags", out, err, errlen);
}

int
db_meeting_probed_at(struct db_pool *pool, const char *meeting_id,
                     char out[40], char *err, size_t errlen)
{
	const char *v[1] = {meeting_id};
	struct db_table t;
	int r;

	out[0] = '\0';
	r = table(pool,
	          "SELECT " UTC_S("probed_at") " FROM meetings WHERE id = "
	          "$1::uuid AND probed_at IS NOT NULL",
	          1, v, "reading the probing flag", &t, err, errlen);
	if (r != 0)
		return r;
	if (t.nrows == 1) {
		snprintf(out, 40, "%s", db_table_get(&t, 0, 0));
		r = 1;
	}
	db_table_free(&t);
	return r;
}
