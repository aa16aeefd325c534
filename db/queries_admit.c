/*
 * db/queries_admit.c -- the database side of an admission attempt: the
 * meeting behind a link, the lock state, and the one transaction that
 * records the attempt (audit record, lockout counters, admission row,
 * probing flag and the host's outbox event). See db.h for the contracts.
 *
 * The hot path (issue 9: what bounds admissions is PostgreSQL's CPU per
 * statement and round trip, and WAL flushes) is two round trips on
 * statements prepared once per pooled connection: the read
 * (db_admit_context: session, meeting, codes and lock state in one libpq
 * pipeline; the session's last_seen_at written only now and then) and
 * the record (db_admit_record: one call of migration 0011's
 * roomgate_admit_record, run as its own transaction -- advisory locks,
 * the lock state read again under them, admission row, audit record,
 * counters and probing check; any error rolls all of it back, so nothing
 * is admitted without its audit record). The counters are UPSERTs whose
 * row lock is held to COMMIT, so attempts racing on several nodes are
 * counted one after the other and lock at the same count.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "db/db_admit_batch.h"
#include "db/db_int.h"

static int is_uuid(const char *s);

static PGresult *
q(PGconn *pg, const char *sql, int n, const char *const *vals)
{
	return PQexecParams(pg, sql, n, NULL, vals, NULL, NULL, 0);
}

static int
ok(const PGresult *res)
{
	return res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK ||
	                       PQresultStatus(res) == PGRES_TUPLES_OK);
}

/* Describes a failed statement and clears res. */
static int
fail(PGconn *pg, PGresult *res, const char *what, char *err, size_t errlen)
{
	int r = db_result_err(pg, res, what, err, errlen);

	PQclear(res);
	return r;
}

static int
run(PGconn *pg, const char *sql, int n, const char *const *v, const char *what,
    PGresult **keep, char *err, size_t errlen)
{
	PGresult *res = q(pg, sql, n, v);

	if (!ok(res))
		return fail(pg, res, what, err, errlen);
	if (keep != NULL)
		*keep = res;
	else
		PQclear(res);
	return 0;
}

static long long
getll(const PGresult *res, int row, int col)
{
	if (PQntuples(res) <= row || PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* ---- pipelines of prepared statements ------------------------------------ */

/* The hot path's statements: slot (db_conn_prepared), name, text. */
enum {
	ST_CONTEXT,
	ST_CODES,
	ST_RECORD,
	/* 16 and 17: queries_authz_read.c */
	ST_BATCH = 24,
};

/* One statement of a pipeline. sql NULL: name is sent as plain text
 * without preparing (BEGIN, COMMIT). res: kept when keep is set, else
 * cleared. */
struct pstep {
	unsigned id;
	const char *name, *sql;
	int n;
	const char *const *v;
	const int *len, *fmt; /* NULL: all text */
	const char *what;     /* for the message when it fails */
	int keep;
	PGresult *res;
};

static void
pipe_clear(struct pstep *s, int n)
{
	for (int i = 0; i < n; i++) {
		PQclear(s[i].res);
		s[i].res = NULL;
	}
}

/*
 * Sends the n statements in one pipeline with one sync (one round trip)
 * and reads every result. 0 when all succeeded (kept results in s[i].res;
 * pipe_clear frees them); else the first failure's DB_E* code and message,
 * nothing kept. After a failure the connection may still be in a pipeline
 * or a failed transaction: db_release rolls back or drops it.
 */
static int
pipe_run(struct db_conn *c, struct pstep *s, int n, char *err, size_t errlen)
{
	PGconn *pg = db_conn_pg(c);
	PGresult *res;
	int i, r = 0, sent = 0, st;

	for (i = 0; i < n; i++) {
		s[i].res = NULL;
		if (s[i].sql != NULL &&
		    (r = db_conn_prepared(c, s[i].id, s[i].name, s[i].sql,
		                          s[i].n, err, errlen)) != 0)
			return r;
	}
	if (PQenterPipelineMode(pg) != 1)
		return db_result_err(pg, NULL, "starting a pipeline", err,
		                     errlen);
	for (i = 0; i < n; i++) {
		int ok = s[i].sql != NULL
		             ? PQsendQueryPrepared(pg, s[i].name, s[i].n,
		                                   s[i].v, s[i].len, s[i].fmt, 0)
		             : PQsendQueryParams(pg, s[i].name, 0, NULL, NULL,
		                                 NULL, NULL, 0);
		if (ok != 1)
			break;
		sent++;
	}
	if (sent < n || PQpipelineSync(pg) != 1)
		return db_result_err(pg, NULL, s[sent < n ? sent : 0].what, err,
		                     errlen);
	for (i = 0; i < sent; i++) {
		if ((res = PQgetResult(pg)) == NULL) {
			r = r ? r : db_result_err(pg, NULL, s[i].what, err,
			                          errlen);
			goto lost;
		}
		st = PQresultStatus(res);
		if (r == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
			r = db_result_err(pg, res, s[i].what, err, errlen);
		if (r == 0 && s[i].keep)
			s[i].res = res;
		else
			PQclear(res);
		/* The end of this statement's results. */
		while ((res = PQgetResult(pg)) != NULL) {
			PQclear(res);
			if (PQstatus(pg) == CONNECTION_BAD)
				goto lost;
		}
	}
	res = PQgetResult(pg);
	st = res != NULL ? (int)PQresultStatus(res) : -1;
	PQclear(res);
	if (st != PGRES_PIPELINE_SYNC) {
		r = r ? r : db_result_err(pg, NULL, "ending a pipeline", err,
		                          errlen);
		goto lost;
	}
	if (PQexitPipelineMode(pg) != 1 && r == 0)
		r = db_result_err(pg, NULL, "ending a pipeline", err, errlen);
	if (r != 0)
		pipe_clear(s, n);
	return r;
lost:
	pipe_clear(s, n);
	return r != 0 ? r : DB_EUNAVAIL;
}

/* ---- the read: db_admit_context ------------------------------------------ */

#define TS_UTC(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* $1 session id hash (binary), $2 idle timeout s, $3 touch interval s,
 * $4 link, $5 source key. The meeting's columns first (db_meeting_from_row
 * reads from 0), then the session's, the lock state and a new admission
 * id. The UPDATE runs
 * whatever the SELECT finds; it writes (and costs a WAL flush) only when
 * last_seen_at is older than the touch interval. */
static char context_text[4096];
/* $1 link: the live codes of the live meeting behind it (db_code_live's
 * rows). */
static char admit_codes_sql[1024];
static int context_ok;

static void
context_make(void)
{
	int n = snprintf(
	    context_text, sizeof(context_text),
	    "WITH t AS (UPDATE sessions SET last_seen_at = now() "
	    "WHERE id_hash = $1 AND revoked_at IS NULL AND expires_at > now() "
	    "AND last_seen_at > now() - make_interval(secs => $2::int) "
	    "AND last_seen_at <= now() - make_interval(secs => $3::int) "
	    "RETURNING 1) "
	    "SELECT %s, s.identity, s.idp_entity_id, s.name_id, "
	    "s.name_id_format, s.saml_session_index, " TS_UTC("s.authn_instant")
	    ", coalesce(s.attributes::text, '{}'), " TS_UTC("s.expires_at") ", "
	    "(SELECT ceil(extract(epoch FROM max(l.locked_until)))::bigint "
	    "FROM lockout_counters l WHERE l.locked_until > now() AND "
	    "((l.scope = 'identity_meeting' AND l.key = roomgate_lock_key("
	    "coalesce(m.id::text, 'unknown-link'), s.identity)) OR "
	    "(l.scope = 'source' AND l.key = $5))), gen_random_uuid()::text "
	    "FROM (SELECT 1) one LEFT JOIN sessions s ON s.id_hash = $1 AND "
	    "s.revoked_at IS NULL AND s.expires_at > now() AND "
	    "s.last_seen_at > now() - make_interval(secs => $2::int) "
	    "LEFT JOIN meetings m ON m.link_id = $4 AND m.archived_at IS NULL",
	    db_meeting_cols);

	context_ok = n > 0 && (size_t)n < sizeof(context_text);
	n = snprintf(admit_codes_sql, sizeof(admit_codes_sql),
	             "SELECT %s FROM meeting_codes c JOIN meetings m ON "
	             "m.id = c.meeting_id WHERE m.link_id = $1 AND "
	             "m.archived_at IS NULL AND (c.state = 'current' OR "
	             "(c.state = 'previous' AND c.grace_until > now())) "
	             "ORDER BY c.version DESC LIMIT 2",
	             db_code_cols);
	context_ok = context_ok && n > 0 && (size_t)n < sizeof(admit_codes_sql);
}

static pthread_once_t context_once = PTHREAD_ONCE_INIT;


static char *
dup_col(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL
	                                  : strdup(PQgetvalue(res, row, col));
}

void
db_admit_ctx_free(struct db_admit_ctx *c)
{
	if (c->have_session)
		db_session_free(&c->session);
	if (c->have_meeting)
		db_meeting_free(&c->meeting);
	sodium_memzero(c->codes, sizeof(c->codes));
	memset(c, 0, sizeof(*c));
}

/* The session's columns of the context row, from col on. */
static int
session_from_row(const PGresult *res, int col, struct db_session *s)
{
	memset(s, 0, sizeof(*s));
	s->identity = dup_col(res, 0, col);
	s->idp = dup_col(res, 0, col + 1);
	s->name_id = dup_col(res, 0, col + 2);
	s->name_id_format = dup_col(res, 0, col + 3);
	s->session_index = dup_col(res, 0, col + 4);
	s->authn_instant = dup_col(res, 0, col + 5);
	s->attributes_json = dup_col(res, 0, col + 6);
	s->expires_at = dup_col(res, 0, col + 7);
	if (s->identity == NULL || s->idp == NULL || s->name_id == NULL ||
	    s->attributes_json == NULL || s->expires_at == NULL) {
		db_session_free(s);
		return DB_ENOMEM;
	}
	return 0;
}

int
db_admit_context(struct db_pool *pool, const unsigned char id_hash[32],
                 int idle_timeout_s, int touch_s, const char *link,
                 const char *src_key, struct db_admit_ctx *out, char *err,
                 size_t errlen)
{
	struct db_conn *c = NULL;
	char idle[16], touch[16];
	const char *v[5];
	const int len[5] = {32, 0, 0, 0, 0}, fmt[5] = {1, 0, 0, 0, 0};
	struct pstep st[2];
	const PGresult *res;
	int r, ncols, rows, i;

	memset(out, 0, sizeof(*out));
	pthread_once(&context_once, context_make);
	if (!context_ok) {
		db_seterr(err, errlen, "the admission's read does not fit");
		return DB_EINVAL;
	}
	snprintf(idle, sizeof(idle), "%d", idle_timeout_s);
	snprintf(touch, sizeof(touch), "%d", touch_s > 0 ? touch_s : 0);
	v[0] = (const char *)id_hash;
	v[1] = idle;
	v[2] = touch;
	v[3] = link;
	v[4] = src_key;
	memset(st, 0, sizeof(st));
	st[0] = (struct pstep){ST_CONTEXT, "rg_admit_context", context_text, 5,
	                       v, len, fmt, "reading the sign-in and meeting",
	                       1, NULL};
	st[1] = (struct pstep){
	    ST_CODES, "rg_admit_codes", NULL, 1, &v[3], NULL, NULL,
	    "reading the meeting's code", 1, NULL};
	st[1].sql = admit_codes_sql;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r = pipe_run(c, st, link != NULL ? 2 : 1, err, errlen);
	db_release(pool, c);
	if (r != 0)
		return r;
	res = st[0].res;
	ncols = PQnfields(res);
	if (PQntuples(res) != 1 || ncols < 12) {
		db_seterr(err, errlen, "the admission's read came back empty");
		r = DB_EQUERY;
		goto out;
	}
	r = DB_ENOMEM;
	if (!PQgetisnull(res, 0, 0)) {
		if (db_meeting_from_row(res, 0, &out->meeting) != 0)
			goto nomem;
		out->have_meeting = 1;
	}
	if (!PQgetisnull(res, 0, ncols - 10)) {
		if (session_from_row(res, ncols - 10, &out->session) != 0)
			goto nomem;
		out->have_session = 1;
	}
	out->locked_until = getll(res, 0, ncols - 2);
	snprintf(out->new_id, sizeof(out->new_id), "%s",
	         PQgetvalue(res, 0, ncols - 1));
	if (link != NULL && out->have_meeting) {
		res = st[1].res;
		rows = PQntuples(res);
		for (i = 0; i < rows && i < 2; i++) {
			if (db_code_from_row(res, i, &out->codes[i]) != 0) {
				db_seterr(err, errlen,
				          "a stored code is malformed");
				r = DB_EQUERY;
				goto fail;
			}
			out->ncodes++;
		}
		/* Only a current code makes the pair meaningful. */
		if (out->ncodes > 0 &&
		    strcmp(out->codes[0].state, "current") != 0) {
			sodium_memzero(out->codes, sizeof(out->codes));
			out->ncodes = 0;
		}
	}
	r = 0;
	goto out;
nomem:
	db_seterr(err, errlen, "out of memory");
fail:
	db_admit_ctx_free(out);
out:
	pipe_clear(st, 2);
	return r;
}

int
db_admit_meeting_by_link(struct db_pool *pool, const char *link_id,
                         struct db_meeting *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[1] = {link_id};
	PGresult *res = NULL;
	char sql[2048];
	int r;

	memset(out, 0, sizeof(*out));
	r = snprintf(sql, sizeof(sql),
	             "SELECT %s FROM meetings m WHERE m.link_id = $1 "
	             "AND m.archived_at IS NULL",
	             db_meeting_cols);
	if (r < 0 || (size_t)r >= sizeof(sql)) {
		db_seterr(err, errlen, "the meeting's read does not fit");
		return DB_EINVAL;
	}
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r = run(db_conn_pg(c), sql, 1, v, "looking the join link up", &res,
	        err, errlen);
	if (r == 0 && PQntuples(res) != 1) {
		db_seterr(err, errlen, "no meeting has this join link");
		r = DB_ENOTFOUND;
	} else if (r == 0 && db_meeting_from_row(res, 0, out) != 0) {
		db_seterr(err, errlen, "out of memory");
		r = DB_ENOMEM;
	}
	PQclear(res);
	db_release(pool, c);
	return r;
}

/* The whole record: roomgate_admit_record (migration 0011, with the
 * session check of 0015), one statement run as its own transaction. */
static const char record_sql[] =
    "SELECT locked, retry_at, admitted, locked_until, probed, "
    "session_gone FROM "
    "roomgate_admit_record($1, $2, $3::int, $4::bigint, $5::boolean, "
    "$6::boolean, $7::boolean, $8::int, $9::bigint, $10::bigint[], "
    "$11::bigint[], $12::int, $13::bigint, $14::uuid, $15::uuid, "
    "decode($16, 'hex'), $17, $18::bigint, $19, $20, $21, $22, $23, $24, "
    "$25, $26, $27, $28, $29::boolean, $30::boolean, $31::jsonb)";

static const char *
tri(int v)
{
	return v < 0 ? NULL : v ? "true" : "false";
}

static const char *
yes(int v)
{
	return v ? "true" : "false";
}

/*
 * The lock lengths for lock numbers 1, 2, ... as a bigint[] literal, up
 * to where they stop changing (the database takes the last one for any
 * later lock): duration(lock number) seconds, or fixed_s for all.
 */
static void
lock_lengths(db_lock_duration_fn duration, void *ctx, long long fixed_s,
             char *out, size_t outlen)
{
	long long prev = 0, d;
	size_t used;
	int k, n;

	used = (size_t)snprintf(out, outlen, "{");
	for (k = 1; k <= 24; k++) {
		d = duration != NULL ? duration(ctx, k) : fixed_s;
		if (k > 1 && d == prev)
			break;
		n = snprintf(out + used, outlen - used, "%s%lld",
		             k > 1 ? "," : "", d);
		if (n < 0 || (size_t)n >= outlen - used - 1)
			break;
		used += (size_t)n;
		prev = d;
	}
	snprintf(out + used, outlen - used, "}");
}

static int
is_bool_t(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) &&
	       strcmp(PQgetvalue(res, row, col), "t") == 0;
}

/* The checks db_admit_record makes before it sends anything. */
static int
attempt_check(const struct db_attempt *a, char *err, size_t errlen)
{
	int admit = a->outcome != NULL && strcmp(a->outcome, "allow") == 0;

	if (a->outcome == NULL || a->reason == NULL) {
		db_seterr(err, errlen, "an attempt needs an outcome and reason");
		return DB_EINVAL;
	}
	if (admit && (a->meeting_id == NULL || a->state == NULL ||
	              a->session_hash == NULL || a->matched_group == NULL ||
	              a->admission_id == NULL)) {
		db_seterr(err, errlen,
		          "an admission needs a meeting, a state, a session, "
		          "a matched group and its new id");
		return DB_EINVAL;
	}
	if (a->im_key == NULL) {
		db_seterr(err, errlen, "an attempt needs its lockout key");
		return DB_EINVAL;
	}
	return 0;
}

/* The answer of one attempt from a row whose record columns (locked,
 * retry_at, admitted, locked_until, probed, session_gone) start at col. */
static void
result_of(const PGresult *res, int row, int col, const struct db_attempt *a,
          struct db_attempt_result *out)
{
	memset(out, 0, sizeof(*out));
	out->locked = is_bool_t(res, row, col);
	out->retry_at = out->locked ? getll(res, row, col + 1) : 0;
	out->locked_until = getll(res, row, col + 3);
	out->probed = is_bool_t(res, row, col + 4);
	out->session_gone = is_bool_t(res, row, col + 5);
	if (is_bool_t(res, row, col + 2))
		snprintf(out->admission_id, sizeof(out->admission_id), "%s",
		         a->admission_id);
}

int
db_admit_record(struct db_pool *pool, const struct db_attempt *a,
                struct db_attempt_result *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char sess[65] = "", wait_s[24], maxf[24], win[24], quiet[24];
	char srcmax[24], pwin[24], pneed[24], im_lens[512], src_lens[32];
	const char *v[31];
	PGresult *res = NULL;
	int r, admit = a->outcome != NULL && strcmp(a->outcome, "allow") == 0;

	memset(out, 0, sizeof(*out));
	if ((r = attempt_check(a, err, errlen)) != 0)
		return r;
	if (admit)
		sodium_bin2hex(sess, sizeof(sess), a->session_hash, 32);
	snprintf(maxf, sizeof(maxf), "%d", a->max_failures);
	snprintf(win, sizeof(win), "%d", a->window_s);
	snprintf(quiet, sizeof(quiet), "%lld", a->quiet_s);
	snprintf(srcmax, sizeof(srcmax), "%d", a->src_max_failures);
	snprintf(pwin, sizeof(pwin), "%d", a->probe_window_s);
	snprintf(pneed, sizeof(pneed), "%d", a->probe_identities);
	snprintf(wait_s, sizeof(wait_s), "%lld",
	         a->waiting_s > 0 ? a->waiting_s : 1800);
	lock_lengths(a->im_duration, a->duration_ctx, 0, im_lens,
	             sizeof(im_lens));
	lock_lengths(NULL, NULL, a->src_lock_s, src_lens, sizeof(src_lens));
	v[0] = a->im_key;
	v[1] = a->src_key;
	v[2] = maxf;
	v[3] = win;
	v[4] = yes(a->lockable);
	v[5] = yes(a->failure);
	v[6] = yes(!a->source_not_counted);
	v[7] = srcmax;
	v[8] = quiet;
	v[9] = im_lens;
	v[10] = src_lens;
	v[11] = pneed;
	v[12] = pwin;
	v[13] = admit ? a->admission_id : NULL;
	v[14] = a->meeting_id;
	v[15] = admit ? sess : NULL;
	v[16] = a->state;
	v[17] = wait_s;
	v[18] = a->outcome;
	v[19] = a->reason;
	v[20] = a->identity;
	v[21] = a->idp;
	v[22] = a->matched_group;
	v[23] = a->source_addr;
	v[24] = a->forwarded_for;
	v[25] = a->user_agent;
	v[26] = a->request_id;
	v[27] = a->node;
	v[28] = tri(a->code_ok);
	v[29] = tri(a->member_ok);
	v[30] = a->details_json;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		goto out;
	if ((r = db_conn_prepared(c, ST_RECORD, "rg_admit_record", record_sql,
	                          31, err, errlen)) != 0)
		goto out;
	res = PQexecPrepared(db_conn_pg(c), "rg_admit_record", 31, v, NULL,
	                     NULL, 0);
	if (!ok(res) || PQntuples(res) != 1) {
		r = fail(db_conn_pg(c), res, "recording the attempt", err,
		         errlen);
		res = NULL;
		if (r == 0)
			r = DB_EQUERY;
		goto out;
	}
	result_of(res, 0, 0, a, out);
	r = 0;
out:
	PQclear(res);
	sodium_memzero(sess, sizeof(sess));
	if (r != 0)
		memset(out, 0, sizeof(*out));
	db_release(pool, c);
	return r;
}

/* ---- several attempts in one transaction (group commit) ----------------- */

/* Migration 0024's roomgate_admit_batch: $1 a JSON array of attempts,
 * one row per attempt back (ord from 1), with the SQLSTATE and message
 * of an error raised inside it. */
static const char batch_sql[] =
    "SELECT ord, err_state, err_message, locked, retry_at, admitted, "
    "locked_until, probed, session_gone FROM roomgate_admit_batch($1::jsonb)";

/* Sets key to a string, or JSON null for NULL; -1 when s is not valid
 * UTF-8 (PostgreSQL would refuse it too) or out of memory. */
static int
jset_str(json_t *o, const char *key, const char *s)
{
	return json_object_set_new(o, key,
	                            s != NULL ? json_string(s) : json_null());
}

static int
jset_int(json_t *o, const char *key, long long v)
{
	return json_object_set_new(o, key, json_integer((json_int_t)v));
}

static int
jset_tri(json_t *o, const char *key, int v)
{
	return json_object_set_new(o, key,
	                           v < 0 ? json_null() : json_boolean(v));
}

/* One attempt as roomgate_admit_batch reads it: the arguments of
 * roomgate_admit_record by name, with db_admit_record's values. NULL when
 * a text is not valid UTF-8 (or out of memory). */
static json_t *
attempt_json(const struct db_attempt *a)
{
	char sess[65] = "", im_lens[512], src_lens[32];
	int admit = strcmp(a->outcome, "allow") == 0;
	json_t *o = json_object();
	int bad = o == NULL;

	if (admit)
		sodium_bin2hex(sess, sizeof(sess), a->session_hash, 32);
	lock_lengths(a->im_duration, a->duration_ctx, 0, im_lens,
	             sizeof(im_lens));
	lock_lengths(NULL, NULL, a->src_lock_s, src_lens, sizeof(src_lens));
	bad = bad || jset_str(o, "im_key", a->im_key) ||
	      jset_str(o, "src_key", a->src_key) ||
	      jset_int(o, "max_failures", a->max_failures) ||
	      jset_int(o, "window_s", a->window_s) ||
	      jset_tri(o, "lockable", a->lockable != 0) ||
	      jset_tri(o, "failure", a->failure != 0) ||
	      jset_tri(o, "count_source", !a->source_not_counted) ||
	      jset_int(o, "src_max", a->src_max_failures) ||
	      jset_int(o, "quiet_s", a->quiet_s) ||
	      jset_str(o, "im_lock_s", im_lens) ||
	      jset_str(o, "src_lock_s", src_lens) ||
	      jset_int(o, "probe_identities", a->probe_identities) ||
	      jset_int(o, "probe_window_s", a->probe_window_s) ||
	      jset_str(o, "admission_id", admit ? a->admission_id : NULL) ||
	      jset_str(o, "meeting_id", a->meeting_id) ||
	      jset_str(o, "session_hash", admit ? sess : NULL) ||
	      jset_str(o, "state", a->state) ||
	      jset_int(o, "waiting_s", a->waiting_s > 0 ? a->waiting_s : 1800) ||
	      jset_str(o, "outcome", a->outcome) ||
	      jset_str(o, "reason", a->reason) ||
	      jset_str(o, "identity", a->identity) ||
	      jset_str(o, "idp", a->idp) ||
	      jset_str(o, "matched_group", a->matched_group) ||
	      jset_str(o, "source_addr", a->source_addr) ||
	      jset_str(o, "forwarded_for", a->forwarded_for) ||
	      jset_str(o, "user_agent", a->user_agent) ||
	      jset_str(o, "request_id", a->request_id) ||
	      jset_str(o, "node", a->node) ||
	      jset_tri(o, "code_ok", a->code_ok) ||
	      jset_tri(o, "member_ok", a->member_ok) ||
	      jset_str(o, "details", a->details_json);
	sodium_memzero(sess, sizeof(sess));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A deadlock or serialization failure: not an answer, the attempt is
 * recorded again alone. */
static int
retryable(const char *sqlstate)
{
	return sqlstate != NULL && (strcmp(sqlstate, "40P01") == 0 ||
	                            strcmp(sqlstate, "40001") == 0);
}

static void
one_fail(struct db_admit_one *o, int rc, const char *msg)
{
	memset(&o->res, 0, sizeof(o->res));
	o->rc = rc;
	db_seterr(o->err, sizeof(o->err), "%s", msg);
}

int
db_admit_record_many(struct db_pool *pool, struct db_admit_one *const *v,
                     size_t n, int *retried)
{
	struct db_conn *c = NULL;
	json_t *arr = NULL, *el;
	char *text = NULL, err[512];
	const char *p[1];
	/* sent[k]: the index in v of the k-th attempt sent (ord k + 1). */
	size_t sent[DB_ADMIT_BATCH_MAX], nsent = 0, i, k;
	int again[DB_ADMIT_BATCH_MAX];
	PGresult *res = NULL;
	const char *state;
	int r = 0, rows, row, whole_retry = 0;

	*retried = 0;
	if (n == 0)
		return 0;
	if (n > DB_ADMIT_BATCH_MAX) {
		for (i = 0; i < n; i++)
			one_fail(v[i], DB_EINVAL, "too many attempts for one "
			                          "transaction");
		return DB_EINVAL;
	}
	memset(again, 0, sizeof(again));
	for (i = 0; i < n; i++) {
		v[i]->rc = DB_EQUERY;
		v[i]->err[0] = '\0';
		memset(&v[i]->res, 0, sizeof(v[i]->res));
	}
	if ((arr = json_array()) == NULL) {
		r = DB_ENOMEM;
		db_seterr(err, sizeof(err), "out of memory");
		goto whole;
	}
	for (i = 0; i < n; i++) {
		if ((r = attempt_check(v[i]->a, v[i]->err,
		                       sizeof(v[i]->err))) != 0) {
			v[i]->rc = r;
			continue;
		}
		if ((el = attempt_json(v[i]->a)) == NULL ||
		    json_array_append_new(arr, el) != 0) {
			one_fail(v[i], DB_EINVAL,
			         "the attempt's text is not valid UTF-8, so it "
			         "cannot be recorded");
			continue;
		}
		sent[nsent++] = i;
	}
	r = 0;
	if (nsent == 0)
		goto out;
	if ((text = json_dumps(arr, JSON_COMPACT)) == NULL) {
		r = DB_ENOMEM;
		db_seterr(err, sizeof(err), "out of memory");
		goto whole;
	}
	p[0] = text;
	if ((r = db_acquire(pool, &c, err, sizeof(err))) != 0 ||
	    (r = db_conn_prepared(c, ST_BATCH, "rg_admit_batch", batch_sql, 1,
	                          err, sizeof(err))) != 0)
		goto whole;
	res = PQexecPrepared(db_conn_pg(c), "rg_admit_batch", 1, p, NULL, NULL,
	                     0);
	if (!ok(res)) {
		/* Nothing of the batch is written (one transaction). */
		whole_retry = res != NULL &&
		              retryable(PQresultErrorField(res, PG_DIAG_SQLSTATE));
		r = fail(db_conn_pg(c), res, "recording attempts together", err,
		         sizeof(err));
		res = NULL;
		if (r == 0)
			r = DB_EQUERY;
		goto whole;
	}
	rows = PQntuples(res);
	for (row = 0; row < rows; row++) {
		long long ord = getll(res, row, 0);
		struct db_admit_one *o;

		if (ord < 1 || (size_t)ord > nsent)
			continue;
		k = (size_t)ord - 1;
		o = v[sent[k]];
		if (!PQgetisnull(res, row, 1)) {
			state = PQgetvalue(res, row, 1);
			if (retryable(state)) {
				again[sent[k]] = 1;
				continue;
			}
			o->rc = DB_EQUERY;
			db_seterr(o->err, sizeof(o->err),
			          "recording the attempt: %s (SQLSTATE %s)",
			          PQgetvalue(res, row, 2), state);
			continue;
		}
		result_of(res, row, 3, o->a, &o->res);
		o->rc = 0;
	}
	for (k = 0; k < nsent; k++) {
		struct db_admit_one *o = v[sent[k]];

		if (o->rc != 0 && o->err[0] == '\0' && !again[sent[k]])
			one_fail(o, DB_EQUERY,
			         "recording the attempt: no answer came back "
			         "for it");
	}
	r = 0;
	goto out;
whole:
	/* The transaction failed as a whole (or never started): every
	 * attempt sent fails with its reason, unless it was a deadlock. */
	for (k = 0; k < nsent; k++) {
		if (whole_retry)
			again[sent[k]] = 1;
		else
			one_fail(v[sent[k]], r, err);
	}
	if (nsent == 0)
		for (i = 0; i < n; i++)
			if (v[i]->err[0] == '\0')
				one_fail(v[i], r, err);
out:
	PQclear(res);
	if (text != NULL) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	/* The sessions' hashes are wiped as db_admit_record wipes its
	 * copy. */
	for (k = 0; k < json_array_size(arr); k++) {
		json_t *h = json_object_get(json_array_get(arr, k),
		                            "session_hash");

		if (json_is_string(h))
			sodium_memzero((char *)json_string_value(h),
			               json_string_length(h));
	}
	json_decref(arr);
	db_release(pool, c);
	/* Deadlock victims, each alone now (its own transaction, its locks
	 * in the one order): no other attempt's locks are held any more. */
	for (i = 0; i < n; i++) {
		if (!again[i])
			continue;
		v[i]->rc = db_admit_record(pool, v[i]->a, &v[i]->res,
		                           v[i]->err, sizeof(v[i]->err));
		(*retried)++;
	}
	if (whole_retry)
		r = 0;
	return r;
}

int
db_admission_unissue(struct db_pool *pool, const struct db_attempt *a,
                     const char *admission_id, int *ended, char *err,
                     size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[8];
	PGresult *res = NULL;
	int r;

	*ended = 0;
	if (a->meeting_id == NULL || admission_id == NULL ||
	    !is_uuid(admission_id)) {
		db_seterr(err, errlen, "ending an admission needs its ids");
		return DB_EINVAL;
	}
	v[0] = admission_id;
	v[1] = a->meeting_id;
	v[2] = a->identity;
	v[3] = a->idp;
	v[4] = a->source_addr;
	v[5] = a->user_agent;
	v[6] = a->request_id;
	v[7] = a->node;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	/* One statement: the end and its audit record, or neither. */
	r = run(db_conn_pg(c),
	        "WITH u AS (UPDATE admissions SET state = 'revoked', "
	        "revoke_reason = 'token_failed', ended_at = now() WHERE id = "
	        "$1::uuid AND meeting_id = $2::uuid AND state IN ('admitted', "
	        "'waiting') RETURNING id), "
	        "au AS (INSERT INTO audit_log (event_type, outcome, reason, "
	        "identity, idp, meeting_id, source_addr, user_agent, "
	        "request_id, node, details) SELECT 'admission.unissued', "
	        "'deny', 'token_failed', $3, $4, $2::uuid, $5::inet, "
	        "left($6, 1024), $7, $8, jsonb_build_object('admission_id', "
	        "$1::text, 'ended', (SELECT count(*) FROM u) > 0) "
	        "RETURNING seq) "
	        "SELECT (SELECT count(*) FROM au), (SELECT count(*) FROM u)",
	        8, v, "ending an admission whose token was not made", &res,
	        err, errlen);
	if (r == 0 && getll(res, 0, 0) != 1) {
		r = DB_EQUERY;
		db_seterr(err, errlen, "the end of the admission was not "
		                       "recorded");
	} else if (r == 0) {
		*ended = getll(res, 0, 1) > 0;
	}
	PQclear(res);
	db_release(pool, c);
	return r;
}

/* ---- the waiting room ---------------------------------------------------- */

/* The session's display name: displayName, else cn, from its attributes
 * ({"name": ["value", ...]}; a plain string is taken too). */
#define DISPLAY_NAME(s)                                                        \
	"coalesce(" s ".attributes->'displayName'->>0, "                       \
	"CASE WHEN jsonb_typeof(" s ".attributes->'displayName') = 'string' "  \
	"THEN " s ".attributes->>'displayName' END, "                          \
	s ".attributes->'cn'->>0)"

int
db_waiting_list(struct db_pool *pool, const char *meeting_id, int limit,
                struct db_waiting **out, size_t *n, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char lim[16];
	const char *v[2] = {meeting_id, lim};
	PGresult *res = NULL;
	struct db_waiting *w = NULL;
	int r, rows, i;

	*out = NULL;
	*n = 0;
	snprintf(lim, sizeof(lim), "%d", limit);
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r = run(db_conn_pg(c),
	        "WITH x AS (UPDATE admissions SET state = 'expired', "
	        "ended_at = now() WHERE meeting_id = $1::uuid AND "
	        "state = 'waiting' AND expires_at <= now() RETURNING id) "
	        "SELECT a.id, a.identity, " DISPLAY_NAME("s") ", "
	        "extract(epoch FROM a.created_at)::bigint, "
	        "coalesce(extract(epoch FROM a.expires_at)::bigint, 0) "
	        "FROM admissions a JOIN sessions s ON s.id_hash = "
	        "a.session_hash WHERE a.meeting_id = $1::uuid AND "
	        "a.state = 'waiting' AND (a.expires_at IS NULL OR "
	        "a.expires_at > now()) AND a.id NOT IN (SELECT id FROM x) "
	        "AND s.revoked_at IS NULL AND s.expires_at > now() "
	        "ORDER BY a.created_at, a.id LIMIT $2::int",
	        2, v, "listing the waiting room", &res, err, errlen);
	if (r != 0)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (w = calloc((size_t)rows, sizeof(*w))) == NULL) {
		r = DB_ENOMEM;
		db_seterr(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < rows; i++) {
		snprintf(w[i].admission_id, sizeof(w[i].admission_id), "%s",
		         PQgetvalue(res, i, 0));
		w[i].identity = strdup(PQgetvalue(res, i, 1));
		if (!PQgetisnull(res, i, 2))
			w[i].display_name = strdup(PQgetvalue(res, i, 2));
		w[i].since = getll(res, i, 3);
		w[i].expires_at = getll(res, i, 4);
		if (w[i].identity == NULL ||
		    (!PQgetisnull(res, i, 2) && w[i].display_name == NULL)) {
			db_waiting_free(w, (size_t)i + 1);
			w = NULL;
			r = DB_ENOMEM;
			db_seterr(err, errlen, "out of memory");
			goto out;
		}
	}
	*out = w;
	*n = (size_t)rows;
	r = 0;
out:
	PQclear(res);
	db_release(pool, c);
	return r;
}

void
db_waiting_free(struct db_waiting *w, size_t n)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(w[i].identity);
		free(w[i].display_name);
	}
	free(w);
}

/* The columns of a db_admission_view, in view_of()'s order; "x" holds the
 * ids a statement's CTE just expired. */
#define VIEW_COLS                                                              \
	"a.id, a.meeting_id, CASE WHEN a.state = 'waiting' AND "              \
	"a.expires_at <= now() THEN 'expired' ELSE a.state END, "              \
	"coalesce(a.revoke_reason, ''), a.identity, "                          \
	"(a.decided_by IS NOT NULL AND a.state = 'admitted')::int, "           \
	"coalesce(extract(epoch FROM a.expires_at)::bigint, 0), "              \
	"coalesce(extract(epoch FROM a.admitted_at)::bigint, 0), "            \
	"(a.token_collected_at IS NOT NULL)::int"

static void
view_of(const PGresult *res, int row, struct db_admission_view *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s", PQgetvalue(res, row, 0));
	snprintf(o->meeting_id, sizeof(o->meeting_id), "%s",
	         PQgetvalue(res, row, 1));
	snprintf(o->state, sizeof(o->state), "%s", PQgetvalue(res, row, 2));
	snprintf(o->revoke_reason, sizeof(o->revoke_reason), "%s",
	         PQgetvalue(res, row, 3));
	snprintf(o->identity, sizeof(o->identity), "%s",
	         PQgetvalue(res, row, 4));
	o->host_decided = getll(res, row, 5) != 0;
	o->expires_at = strcmp(o->state, "waiting") == 0 ? getll(res, row, 6)
	                                                 : 0;
	o->admitted_at = getll(res, row, 7);
	o->token_collected = getll(res, row, 8) != 0;
}

/* A uuid as text: 8-4-4-4-12 hex digits (else the cast would fail the
 * statement and read as a database error). */
static int
is_uuid(const char *s)
{
	size_t i;

	for (i = 0; i < 36 && s[i] != '\0'; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		char ch = s[i];

		if (dash ? ch != '-'
		         : !((ch >= '0' && ch <= '9') ||
		             (ch >= 'a' && ch <= 'f') ||
		             (ch >= 'A' && ch <= 'F')))
			return 0;
	}
	return i == 36 && s[i] == '\0';
}

/* Runs a statement returning VIEW_COLS rows; the first into *out. */
static int
view_query(struct db_pool *pool, const char *sql, int nv, const char *const *v,
           struct db_admission_view *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r = run(db_conn_pg(c), sql, nv, v, "reading the admission", &res, err,
	        errlen);
	if (r == 0 && PQntuples(res) == 0) {
		r = DB_ENOTFOUND;
		db_seterr(err, errlen, "no such admission for this meeting");
	} else if (r == 0) {
		view_of(res, 0, out);
	}
	PQclear(res);
	db_release(pool, c);
	return r;
}

int
db_admission_get(struct db_pool *pool, const char *meeting_id,
                 const char *admission_id, struct db_admission_view *out,
                 char *err, size_t errlen)
{
	const char *v[2] = {meeting_id, admission_id};

	if (!is_uuid(meeting_id) || !is_uuid(admission_id)) {
		memset(out, 0, sizeof(*out));
		db_seterr(err, errlen, "admission ids are UUIDs");
		return DB_ENOTFOUND;
	}
	return view_query(
	    pool,
	    "WITH x AS (UPDATE admissions SET state = 'expired', ended_at = "
	    "now() WHERE id = $2::uuid AND meeting_id = $1::uuid AND state = "
	    "'waiting' AND expires_at <= now() RETURNING id) "
	    "SELECT " VIEW_COLS " FROM admissions a WHERE a.id = $2::uuid "
	    "AND a.meeting_id = $1::uuid",
	    2, v, out, err, errlen);
}

int
db_admission_of_session(struct db_pool *pool, const char *meeting_id,
                        const unsigned char session_hash[32],
                        struct db_admission_view *out, char *err,
                        size_t errlen)
{
	char sess[65];
	const char *v[2] = {meeting_id, sess};
	int r;

	sodium_bin2hex(sess, sizeof(sess), session_hash, 32);
	r = view_query(
	    pool,
	    "WITH x AS (UPDATE admissions SET state = 'expired', ended_at = "
	    "now() WHERE meeting_id = $1::uuid AND session_hash = "
	    "decode($2, 'hex') AND state = 'waiting' AND expires_at <= now() "
	    "RETURNING id) "
	    "SELECT " VIEW_COLS " FROM admissions a WHERE a.meeting_id = "
	    "$1::uuid AND a.session_hash = decode($2, 'hex') "
	    "ORDER BY a.created_at DESC, a.id DESC LIMIT 1",
	    2, v, out, err, errlen);
	sodium_memzero(sess, sizeof(sess));
	return r;
}

int
db_waiting_decide(struct db_pool *pool, const struct db_waiting_decision *d,
                  struct db_admission_view *out, char *err, size_t errlen)
{
	struct db_admission_view scratch;
	const char *v[16];
	const char *state, *outcome;
	int r;

	if (out == NULL)
		out = &scratch;
	memset(out, 0, sizeof(*out));
	if (strcmp(d->action, "admit") == 0) {
		state = "admitted";
		outcome = "allow";
		if (d->matched_group == NULL) {
			db_seterr(err, errlen, "an admit needs a matched group");
			return DB_EINVAL;
		}
	} else if (strcmp(d->action, "deny") == 0) {
		state = "host_denied";
		outcome = "deny";
	} else if (strcmp(d->action, "end") == 0) {
		state = "revoked";
		outcome = "deny";
		if (d->revoke_reason == NULL) {
			db_seterr(err, errlen, "ending an entry needs a reason");
			return DB_EINVAL;
		}
	} else {
		db_seterr(err, errlen, "unknown waiting-room action");
		return DB_EINVAL;
	}
	if (!is_uuid(d->meeting_id) || !is_uuid(d->admission_id)) {
		db_seterr(err, errlen, "admission ids are UUIDs");
		return DB_ENOTFOUND;
	}
	v[0] = d->meeting_id;
	v[1] = d->admission_id;
	v[2] = state;
	v[3] = d->matched_group;
	v[4] = d->revoke_reason;
	v[5] = d->actor;
	v[6] = outcome;
	v[7] = d->audit_reason;
	v[8] = d->source_addr;
	v[9] = d->user_agent;
	v[10] = d->request_id;
	v[11] = d->node;
	v[12] = d->via;
	v[13] = d->directory;
	v[14] = d->forwarded_for;
	v[15] = d->actor_idp;
	/*
	 * One statement: the row lock of the UPDATE makes a racing decision
	 * wait, then re-check "still waiting" on the new row and change
	 * nothing; the audit record exists only for the one that applied.
	 */
	r = view_query(
	    pool,
	    "WITH u AS (UPDATE admissions SET state = $3, "
	    "admitted_at = CASE WHEN $3 = 'admitted' THEN now() END, "
	    "expires_at = NULL, "
	    "ended_at = CASE WHEN $3 = 'admitted' THEN NULL ELSE now() END, "
	    "matched_group = CASE WHEN $3 = 'admitted' THEN $4 ELSE "
	    "matched_group END, "
	    "revoke_reason = CASE WHEN $3 = 'revoked' THEN $5 END, "
	    "decided_by = $6 "
	    "WHERE id = $2::uuid AND meeting_id = $1::uuid AND "
	    "state = 'waiting' AND (expires_at IS NULL OR expires_at > now()) "
	    "RETURNING *), "
	    "au AS (INSERT INTO audit_log (event_type, outcome, reason, "
	    "identity, meeting_id, matched_group, source_addr, forwarded_for, "
	    "user_agent, request_id, node, member_ok, details) SELECT "
	    "'waiting.' || "
	    "CASE $3 WHEN 'admitted' THEN 'admit' WHEN 'host_denied' THEN "
	    "'deny' ELSE 'end' END, $7, $8, u.identity, u.meeting_id, "
	    "CASE WHEN $3 = 'admitted' THEN $4 END, $9::inet, "
	    "left($15, 2048), "
	    "left($10, 1024), $11, $12, CASE $3 WHEN 'admitted' THEN true "
	    "WHEN 'revoked' THEN false END, jsonb_build_object("
	    "'admission_id', u.id, 'decided_by', $6::text, 'via', $13::text, "
	    "'decided_by_idp', $16::text, "
	    "'state', $3::text, 'revoke_reason', $5::text, 'directory', "
	    "$14::text) FROM u RETURNING seq) "
	    "SELECT " VIEW_COLS " FROM u a WHERE (SELECT count(*) FROM au) = 1",
	    16, v, out, err, errlen);
	if (r != DB_ENOTFOUND)
		return r;
	/* Nothing applied: no such entry, or it is no longer waiting. */
	r = db_admission_get(pool, d->meeting_id, d->admission_id, out, err,
	                     errlen);
	if (r != 0)
		return r;
	db_seterr(err, errlen, "the entry is %s, no longer waiting",
	          out->state);
	return DB_ECONFLICT;
}

int
db_waiting_token(struct db_pool *pool, const struct db_waiting_token *t,
                 char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[15];
	PGresult *res = NULL;
	int r;

	if (!is_uuid(t->meeting_id) || !is_uuid(t->admission_id)) {
		db_seterr(err, errlen, "admission ids are UUIDs");
		return DB_EINVAL;
	}
	v[0] = t->meeting_id;
	v[1] = t->admission_id;
	v[2] = t->identity;
	v[3] = t->idp;
	v[4] = t->outcome;
	v[5] = t->reason;
	v[6] = t->matched_group;
	v[7] = tri(t->member_ok);
	v[8] = t->directory;
	v[9] = t->revoke_reason;
	v[10] = t->source_addr;
	v[11] = t->user_agent;
	v[12] = t->request_id;
	v[13] = t->node;
	v[14] = t->forwarded_for;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	/* k: the one pickup, only of a live, uncollected admission (the
	 * row lock makes a racing revoke or second poll wait and then find
	 * nothing to change). */
	r = run(db_conn_pg(c),
	        "WITH k AS (UPDATE admissions SET token_collected_at = now() "
	        "WHERE $5 = 'allow' AND id = $2::uuid AND meeting_id = "
	        "$1::uuid AND state = 'admitted' AND token_collected_at IS "
	        "NULL RETURNING id), "
	        "u AS (UPDATE admissions SET state = 'revoked', "
	        "revoke_reason = $10, ended_at = now() WHERE $10::text IS NOT "
	        "NULL AND id = $2::uuid AND meeting_id = $1::uuid AND state = "
	        "'admitted' RETURNING id), "
	        "no AS (SELECT $5 = 'allow' AND NOT EXISTS (SELECT 1 FROM k) "
	        "AS refused), "
	        "au AS (INSERT INTO audit_log (event_type, outcome, reason, "
	        "identity, idp, meeting_id, matched_group, source_addr, "
	        "forwarded_for, user_agent, request_id, node, member_ok, "
	        "details) SELECT "
	        "'waiting.token', CASE WHEN no.refused THEN 'deny' ELSE $5 "
	        "END, CASE WHEN no.refused THEN 'not_admitted' ELSE $6 END, "
	        "$3, $4, $1::uuid, CASE WHEN no.refused THEN NULL ELSE $7 END, "
	        "$11::inet, left($15, 2048), left($12, 1024), $13, $14, "
	        "$8::boolean, "
	        "jsonb_build_object('admission_id', $2::text, 'directory', "
	        "$9::text, 'ended', (SELECT count(*) FROM u) > 0) FROM no "
	        "RETURNING seq) "
	        "SELECT (SELECT count(*) FROM au), (SELECT refused::int FROM no)",
	        15, v, "recording the join token", &res, err, errlen);
	if (r == 0 && getll(res, 0, 0) != 1) {
		r = DB_EQUERY;
		db_seterr(err, errlen, "the join token was not recorded");
	} else if (r == 0 && getll(res, 0, 1) != 0) {
		r = DB_ECONFLICT;
		db_seterr(err, errlen,
		          "the admission is no longer admitted, or its token "
		          "was already collected");
	}
	PQclear(res);
	db_release(pool, c);
	return r;
}
