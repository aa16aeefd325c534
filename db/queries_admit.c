/*
 * db/queries_admit.c -- the database side of an admission attempt: the
 * meeting behind a link, the lock state, and the one transaction that
 * records the attempt (audit record, lockout counters, admission row,
 * probing flag and the host's outbox event). See db.h for the contracts.
 *
 * The counters are single UPSERT statements: the row lock they take is
 * held to COMMIT, so attempts racing on several nodes are counted one
 * after the other and lock at the same count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db/db_int.h"

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

int
db_admit_meeting_by_link(struct db_pool *pool, const char *link_id,
                         struct db_meeting *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[1] = {link_id};
	PGresult *res = NULL;
	char id[37] = "";
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r = run(db_conn_pg(c),
	        "SELECT id FROM meetings WHERE link_id = $1 "
	        "AND archived_at IS NULL",
	        1, v, "looking the join link up", &res, err, errlen);
	if (r == 0 && PQntuples(res) == 1)
		snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	db_release(pool, c);
	if (r != 0)
		return r;
	if (id[0] == '\0') {
		db_seterr(err, errlen, "no meeting has this join link");
		return DB_ENOTFOUND;
	}
	return db_meeting_get(pool, id, out, err, errlen);
}

int
db_lockout_until(struct db_pool *pool, const char *im_key, const char *src_key,
                 long long *until, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[2] = {im_key, src_key};
	PGresult *res = NULL;
	int r;

	*until = 0;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	r = run(db_conn_pg(c),
	        "SELECT ceil(extract(epoch FROM max(locked_until)))::bigint "
	        "FROM lockout_counters WHERE locked_until > now() AND "
	        "((scope = 'identity_meeting' AND key = $1) OR "
	        "(scope = 'source' AND key = $2))",
	        2, v, "reading the lockout state", &res, err, errlen);
	if (r == 0) {
		*until = getll(res, 0, 0);
		PQclear(res);
	}
	db_release(pool, c);
	return r;
}

/*
 * Counts one failure on (scope, key): a new window once the old one has
 * passed, nothing while a lock is in force. When the count reaches max,
 * locks for duration(lock_count + 1) (or fixed_s) seconds and starts a
 * fresh window. *until: the lock set here, 0 for none.
 */
static int
count_failure(PGconn *pg, const char *scope, const char *key, int max,
              int window_s, long long quiet_s, db_lock_duration_fn duration,
              void *ctx, long long fixed_s, long long *until, char *err,
              size_t errlen)
{
	char win[24], quiet[24], secs[24];
	const char *v[4];
	PGresult *res = NULL;
	long long failures, lock_count, locked;
	int r;

	*until = 0;
	snprintf(win, sizeof(win), "%d", window_s);
	snprintf(quiet, sizeof(quiet), "%lld", quiet_s);
	v[0] = scope;
	v[1] = key;
	v[2] = win;
	v[3] = quiet;
	r = run(
	    pg,
	    "INSERT INTO lockout_counters AS c (scope, key, failures) "
	    "VALUES ($1, $2, 1) ON CONFLICT (scope, key) DO UPDATE SET "
	    "lock_count = CASE WHEN c.updated_at < now() - "
	    "make_interval(secs => $4::bigint) THEN 0 ELSE c.lock_count END, "
	    "failures = CASE WHEN c.locked_until > now() THEN c.failures "
	    "WHEN c.window_start < now() - make_interval(secs => $3::bigint) "
	    "THEN 1 ELSE c.failures + 1 END, "
	    "window_start = CASE WHEN c.locked_until > now() THEN "
	    "c.window_start WHEN c.window_start < now() - "
	    "make_interval(secs => $3::bigint) THEN now() "
	    "ELSE c.window_start END, updated_at = now() "
	    "RETURNING failures, lock_count, "
	    "(locked_until IS NOT NULL AND locked_until > now())::int",
	    4, v, "counting the failed attempt", &res, err, errlen);
	if (r != 0)
		return r;
	failures = getll(res, 0, 0);
	lock_count = getll(res, 0, 1);
	locked = getll(res, 0, 2);
	PQclear(res);
	if (locked || failures < max)
		return 0;
	snprintf(secs, sizeof(secs), "%lld",
	         duration != NULL ? duration(ctx, (int)lock_count + 1)
	                          : fixed_s);
	v[2] = secs;
	r = run(pg,
	        "UPDATE lockout_counters SET lock_count = lock_count + 1, "
	        "locked_until = now() + make_interval(secs => $3::bigint), "
	        "failures = 0, window_start = now(), updated_at = now() "
	        "WHERE scope = $1 AND key = $2 "
	        "RETURNING ceil(extract(epoch FROM locked_until))::bigint",
	        3, v, "locking after too many failures", &res, err, errlen);
	if (r != 0)
		return r;
	*until = getll(res, 0, 0);
	PQclear(res);
	return 0;
}

/* Flags the meeting when enough distinct identities failed there lately;
 * once (probed_at set), with the waiting room on and the host told. */
static int
probe_check(PGconn *pg, const struct db_attempt *a, int *probed, char *err,
            size_t errlen)
{
	char win[24], need[24];
	const char *v[4];
	PGresult *res = NULL;
	int r;

	*probed = 0;
	snprintf(win, sizeof(win), "%d", a->probe_window_s);
	snprintf(need, sizeof(need), "%d", a->probe_identities);
	v[0] = a->meeting_id;
	v[1] = win;
	v[2] = need;
	v[3] = a->node;
	r = run(pg,
	        "WITH n AS (SELECT count(DISTINCT identity) AS ids "
	        "FROM audit_log WHERE meeting_id = $1::uuid "
	        "AND event_type = 'admission' AND outcome = 'deny' "
	        "AND reason IN ('malformed', 'not_member', 'invalid_code') "
	        "AND at > now() - make_interval(secs => $2::bigint)), "
	        "f AS (UPDATE meetings m SET probed_at = now(), "
	        "waiting_room = true FROM n WHERE m.id = $1::uuid "
	        "AND m.probed_at IS NULL AND n.ids >= $3::bigint "
	        "RETURNING m.id, m.host_identity, m.title, n.ids), "
	        "o AS (INSERT INTO outbox (topic, payload) SELECT "
	        "'meeting.probed', jsonb_build_object('meeting_id', f.id, "
	        "'host', f.host_identity, 'title', f.title, "
	        "'failed_identities', f.ids, 'window_s', $2::bigint) FROM f "
	        "RETURNING id), "
	        "au AS (INSERT INTO audit_log (event_type, outcome, reason, "
	        "meeting_id, node, details) SELECT 'meeting.probed', 'info', "
	        "'probing', f.id, $4, jsonb_build_object('failed_identities', "
	        "f.ids, 'window_s', $2::bigint) FROM f RETURNING seq) "
	        "SELECT (SELECT count(*) FROM o) + (SELECT count(*) FROM au)",
	        4, v, "checking the meeting for probing", &res, err, errlen);
	if (r != 0)
		return r;
	*probed = getll(res, 0, 0) > 0;
	PQclear(res);
	return 0;
}

static const char *
tri(int v)
{
	return v < 0 ? NULL : v ? "true" : "false";
}

/*
 * Serializes the attempts of one identity+meeting (and then of one source
 * address) across nodes, and reads the lock state under those locks: the
 * read before the directory call may be stale by the time the attempt is
 * recorded. The two advisory locks are always taken in this order, so two
 * attempts cannot wait for each other. *retry_at: the end of the lock in
 * force, 0 for none.
 */
static int
lock_recheck(PGconn *pg, const struct db_attempt *a, long long *retry_at,
             char *err, size_t errlen)
{
	char maxf[24], win[24];
	const char *v[4];
	PGresult *res = NULL;
	int r;

	*retry_at = 0;
	v[0] = a->im_key;
	if ((r = run(pg,
	             "SELECT pg_advisory_xact_lock(hashtextextended("
	             "'roomgate admission ' || $1, 0))",
	             1, v, "serializing the attempt", NULL, err, errlen)) != 0)
		return r;
	v[0] = a->src_key;
	if (a->src_key != NULL &&
	    (r = run(pg,
	             "SELECT pg_advisory_xact_lock(hashtextextended("
	             "'roomgate source ' || $1, 0))",
	             1, v, "serializing the attempt", NULL, err, errlen)) != 0)
		return r;
	snprintf(maxf, sizeof(maxf), "%d", a->max_failures);
	snprintf(win, sizeof(win), "%d", a->window_s);
	v[0] = a->im_key;
	v[1] = a->src_key;
	v[2] = maxf;
	v[3] = win;
	/* A full window without a lock cannot be left by count_failure; it
	 * is read as locked until the window ends all the same. */
	if ((r = run(pg,
	             "SELECT coalesce(max(ceil(extract(epoch FROM CASE "
	             "WHEN locked_until > now() THEN locked_until "
	             "WHEN scope = 'identity_meeting' AND $3::int > 0 AND "
	             "failures >= $3::int AND window_start > now() - "
	             "make_interval(secs => $4::bigint) THEN window_start + "
	             "make_interval(secs => $4::bigint) END))), 0)::bigint "
	             "FROM lockout_counters WHERE (scope = 'identity_meeting' "
	             "AND key = $1) OR (scope = 'source' AND key = $2)",
	             4, v, "reading the lockout state", &res, err, errlen)) !=
	    0)
		return r;
	*retry_at = getll(res, 0, 0);
	PQclear(res);
	return 0;
}

int
db_admit_record(struct db_pool *pool, const struct db_attempt *a,
                struct db_attempt_result *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char sess[65], wait_s[24];
	const char *v[16];
	const char *outcome = a->outcome, *reason = a->reason;
	PGresult *res = NULL;
	PGconn *pg;
	long long until, retry_at = 0;
	int r, admit = strcmp(a->outcome, "allow") == 0, failure = a->failure;

	memset(out, 0, sizeof(*out));
	if (admit && (a->meeting_id == NULL || a->state == NULL ||
	              a->session_hash == NULL || a->matched_group == NULL)) {
		db_seterr(err, errlen,
		          "an admission needs a meeting, a state, "
		          "a session and a matched group");
		return DB_EINVAL;
	}
	if (a->im_key == NULL) {
		db_seterr(err, errlen, "an attempt needs its lockout key");
		return DB_EINVAL;
	}
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	if ((r = run(pg, "BEGIN", 0, NULL, "recording the attempt", NULL, err,
	             errlen)) != 0)
		goto out;
	if ((r = lock_recheck(pg, a, &retry_at, err, errlen)) != 0)
		goto out;
	if (a->lockable && retry_at > 0) {
		/* Locked meanwhile: the answer is the lock, whatever the
		 * checks found (they stay in the record). */
		outcome = "deny";
		reason = "locked";
		admit = 0;
		failure = 0;
		out->locked = 1;
		out->retry_at = retry_at;
	}
	if (admit) {
		/* The id first: the join token carries it as jti and is made
		 * before COMMIT, so no admission is on record that the person
		 * did not get, and none is handed out unrecorded. */
		if ((r = run(pg, "SELECT gen_random_uuid()::text", 0, NULL,
		             "making the admission id", &res, err, errlen)) !=
		    0)
			goto out;
		snprintf(out->admission_id, sizeof(out->admission_id), "%s",
		         PQgetvalue(res, 0, 0));
		PQclear(res);
		res = NULL;
		if (a->mint != NULL &&
		    a->mint(a->mint_ctx, out->admission_id) != 0) {
			outcome = "deny";
			reason = "token_failed";
			admit = 0;
			out->mint_failed = 1;
			out->admission_id[0] = '\0';
		}
	}
	if (admit) {
		sodium_bin2hex(sess, sizeof(sess), a->session_hash, 32);
		v[0] = a->meeting_id;
		v[1] = sess;
		v[2] = a->identity;
		v[3] = a->matched_group;
		v[4] = a->state;
		snprintf(wait_s, sizeof(wait_s), "%lld",
		         a->waiting_s > 0 ? a->waiting_s : 1800);
		v[5] = wait_s;
		v[6] = out->admission_id;
		/* A waiting entry ends by itself after waiting_s. */
		if ((r = run(
		         pg,
		         "INSERT INTO admissions (id, meeting_id, session_hash, "
		         "identity, matched_group, state, admitted_at, "
		         "expires_at) VALUES ($7::uuid, $1::uuid, "
		         "decode($2, 'hex'), $3, $4, $5, CASE WHEN $5 = "
		         "'admitted' THEN now() END, CASE WHEN $5 = 'waiting' "
		         "THEN now() + make_interval(secs => $6::bigint) END)",
		         7, v, "recording the admission", NULL, err, errlen)) !=
		    0)
			goto out;
	}
	v[0] = outcome;
	v[1] = reason;
	v[2] = a->identity;
	v[3] = a->idp;
	v[4] = a->meeting_id;
	v[5] = a->matched_group;
	v[6] = a->source_addr;
	v[7] = a->forwarded_for;
	v[8] = a->user_agent;
	v[9] = a->request_id;
	v[10] = a->node;
	v[11] = tri(a->code_ok);
	v[12] = tri(a->member_ok);
	v[13] = a->details_json;
	v[14] = out->admission_id[0] ? out->admission_id : NULL;
	if ((r = run(pg,
	             "INSERT INTO audit_log (event_type, outcome, reason, "
	             "identity, idp, meeting_id, matched_group, source_addr, "
	             "forwarded_for, user_agent, request_id, node, code_ok, "
	             "member_ok, details) VALUES ('admission', $1, $2, $3, $4, "
	             "$5::uuid, $6, $7::inet, left($8, 2048), left($9, 1024), "
	             "$10, $11, $12::boolean, $13::boolean, "
	             "coalesce($14::jsonb, '{}'::jsonb) || CASE WHEN $15::text "
	             "IS NULL THEN '{}'::jsonb ELSE jsonb_build_object("
	             "'admission_id', $15::text) END)",
	             15, v, "writing the audit record", NULL, err, errlen)) !=
	    0)
		goto out;
	if (failure) {
		if ((r = count_failure(pg, "identity_meeting", a->im_key,
		                       a->max_failures, a->window_s, a->quiet_s,
		                       a->im_duration, a->duration_ctx, 0,
		                       &until, err, errlen)) != 0)
			goto out;
		out->locked_until = until;
		if (a->src_key != NULL && !a->source_not_counted &&
		    (r = count_failure(pg, "source", a->src_key,
		                       a->src_max_failures, a->window_s,
		                       a->quiet_s, NULL, NULL, a->src_lock_s,
		                       &until, err, errlen)) != 0)
			goto out;
		if (until > out->locked_until)
			out->locked_until = until;
		if (a->meeting_id != NULL && a->probe_identities > 0 &&
		    (r = probe_check(pg, a, &out->probed, err, errlen)) != 0)
			goto out;
	}
	if ((r = run(pg, "COMMIT", 0, NULL, "committing the attempt", NULL, err,
	             errlen)) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		memset(out, 0, sizeof(*out));
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

	for (i = 0; s[i] != '\0' && i < 36; i++) {
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
	const char *v[14];
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
	    "identity, meeting_id, matched_group, source_addr, user_agent, "
	    "request_id, node, member_ok, details) SELECT 'waiting.' || "
	    "CASE $3 WHEN 'admitted' THEN 'admit' WHEN 'host_denied' THEN "
	    "'deny' ELSE 'end' END, $7, $8, u.identity, u.meeting_id, "
	    "CASE WHEN $3 = 'admitted' THEN $4 END, $9::inet, "
	    "left($10, 1024), $11, $12, CASE $3 WHEN 'admitted' THEN true "
	    "WHEN 'revoked' THEN false END, jsonb_build_object("
	    "'admission_id', u.id, 'decided_by', $6::text, 'via', $13::text, "
	    "'state', $3::text, 'revoke_reason', $5::text, 'directory', "
	    "$14::text) FROM u RETURNING seq) "
	    "SELECT " VIEW_COLS " FROM u a WHERE (SELECT count(*) FROM au) = 1",
	    14, v, out, err, errlen);
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
	const char *v[14];
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
	        "user_agent, request_id, node, member_ok, details) SELECT "
	        "'waiting.token', CASE WHEN no.refused THEN 'deny' ELSE $5 "
	        "END, CASE WHEN no.refused THEN 'not_admitted' ELSE $6 END, "
	        "$3, $4, $1::uuid, CASE WHEN no.refused THEN NULL ELSE $7 END, "
	        "$11::inet, left($12, 1024), $13, $14, $8::boolean, "
	        "jsonb_build_object('admission_id', $2::text, 'directory', "
	        "$9::text, 'ended', (SELECT count(*) FROM u) > 0) FROM no "
	        "RETURNING seq) "
	        "SELECT (SELECT count(*) FROM au), (SELECT refused::int FROM no)",
	        14, v, "recording the join token", &res, err, errlen);
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
