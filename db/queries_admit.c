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

int
db_admit_record(struct db_pool *pool, const struct db_attempt *a,
                struct db_attempt_result *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char sess[65];
	const char *v[16];
	PGresult *res = NULL;
	PGconn *pg;
	long long until;
	int r, admit = strcmp(a->outcome, "allow") == 0;

	memset(out, 0, sizeof(*out));
	if (admit && (a->meeting_id == NULL || a->state == NULL ||
	              a->session_hash == NULL || a->matched_group == NULL)) {
		db_seterr(err, errlen,
		          "an admission needs a meeting, a state, "
		          "a session and a matched group");
		return DB_EINVAL;
	}
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	if ((r = run(pg, "BEGIN", 0, NULL, "recording the attempt", NULL, err,
	             errlen)) != 0)
		goto out;
	if (admit) {
		sodium_bin2hex(sess, sizeof(sess), a->session_hash, 32);
		v[0] = a->meeting_id;
		v[1] = sess;
		v[2] = a->identity;
		v[3] = a->matched_group;
		v[4] = a->state;
		if ((r = run(
		         pg,
		         "INSERT INTO admissions (meeting_id, session_hash, "
		         "identity, matched_group, state, admitted_at) "
		         "VALUES ($1::uuid, decode($2, 'hex'), $3, $4, $5, "
		         "CASE WHEN $5 = 'admitted' THEN now() END) "
		         "RETURNING id",
		         5, v, "recording the admission", &res, err, errlen)) !=
		    0)
			goto out;
		snprintf(out->admission_id, sizeof(out->admission_id), "%s",
		         PQgetvalue(res, 0, 0));
		PQclear(res);
		res = NULL;
	}
	v[0] = a->outcome;
	v[1] = a->reason;
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
	if (a->failure) {
		if ((r = count_failure(pg, "identity_meeting", a->im_key,
		                       a->max_failures, a->window_s, a->quiet_s,
		                       a->im_duration, a->duration_ctx, 0,
		                       &until, err, errlen)) != 0)
			goto out;
		out->locked_until = until;
		if (a->src_key != NULL &&
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
