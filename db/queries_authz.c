/*
 * db/queries_authz.c -- "revoke this person everywhere" and the audit
 * records of requests (db_audit_write). See db.h for the contracts; the
 * forward-auth read is db/queries_authz_read.c.
 *
 * The revocation is one statement (data-modifying CTEs): sessions,
 * admissions, the audit record and the outbox event commit together or
 * not at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "db/db_retry.h"

static int
authz_ok(const PGresult *res)
{
	return res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK;
}

int
db_identity_revoke(struct db_pool *pool, const struct db_identity_revoke *rv,
                   long *sessions, long *admissions, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[10] = {rv->identity,     rv->actor,      rv->via,
	                     rv->source_addr,  rv->request_id, rv->node,
	                     rv->note,         rv->user_agent, rv->idp,
	                     rv->forwarded_for};
	PGresult *res = NULL;
	int r;

	*sessions = *admissions = 0;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	/* The person's sessions, then their admissions, are locked in one
	 * fixed order (id_hash, id) before they are changed, and a deadlock
	 * or serialization victim runs again: a revocation is never the
	 * lasting loser against an admission batch. */
	res = db_exec_locked(
	    db_conn_pg(c),
	    "SELECT 1 FROM sessions WHERE identity = $1::text AND revoked_at "
	    "IS NULL ORDER BY id_hash FOR UPDATE",
	    1,
	    "WITH ls AS (SELECT id_hash FROM sessions WHERE identity = "
	    "$1::text AND revoked_at IS NULL ORDER BY id_hash FOR UPDATE), "
	    "s AS (UPDATE sessions SET revoked_at = now(), "
	    "revoke_reason = 'admin' WHERE id_hash IN (SELECT id_hash FROM "
	    "ls) AND identity = $1::text AND revoked_at IS NULL RETURNING 1), "
	    "la AS (SELECT id FROM admissions WHERE identity = $1 AND state "
	    "IN ('admitted', 'waiting') AND (SELECT count(*) FROM s) >= 0 "
	    "ORDER BY id FOR UPDATE), "
	    "a AS (UPDATE admissions SET state = 'revoked', revoke_reason = "
	    "'admin', ended_at = now() WHERE id IN (SELECT id FROM la) AND "
	    "identity = $1 AND state IN ('admitted', 'waiting') RETURNING "
	    "meeting_id), "
	    "n AS (SELECT (SELECT count(*) FROM s) AS ns, (SELECT count(*) "
	    "FROM a) AS na, (SELECT coalesce(jsonb_agg(DISTINCT meeting_id), "
	    "'[]'::jsonb) FROM a) AS ms), "
	    "au AS (INSERT INTO audit_log (event_type, outcome, reason, "
	    "identity, source_addr, user_agent, request_id, node, "
	    "forwarded_for, details) "
	    "SELECT 'identity.revoke', 'info', 'admin_revoked', $1, "
	    "$4::inet, left($8, 1024), $5, $6, left($10, 2048), "
	    "jsonb_build_object('by', "
	    "$2::text, 'by_idp', $9::text, "
	    "'via', $3::text, 'sessions', n.ns, 'admissions', n.na, "
	    "'meetings', "
	    "n.ms, 'note', $7::text) FROM n RETURNING seq), "
	    "o AS (INSERT INTO outbox (topic, payload) SELECT "
	    "'identity.revoked', jsonb_build_object('identity', $1::text, "
	    "'reason', 'admin_revoked', 'by', $2::text, 'sessions', n.ns, "
	    "'admissions', n.na, 'meetings', n.ms) FROM n RETURNING id) "
	    "SELECT n.ns, n.na, (SELECT count(*) FROM au), (SELECT count(*) "
	    "FROM o) FROM n",
	    10, v, NULL);
	if (!authz_ok(res) || PQntuples(res) != 1) {
		r = db_result_err(db_conn_pg(c), res,
		                  "revoking the identity's sessions and "
		                  "admissions",
		                  err, errlen);
		if (r == 0)
			r = DB_EQUERY;
		goto out;
	}
	*sessions = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	*admissions = strtol(PQgetvalue(res, 0, 1), NULL, 10);
	r = 0;
out:
	PQclear(res);
	db_release(pool, c);
	return r;
}

/* NULL for -1 (not known), else "true"/"false". */
static const char *
tri(int v)
{
	return v < 0 ? NULL : v ? "true" : "false";
}

int
db_audit_write(struct db_pool *pool, const struct db_audit_rec *a, char *err,
               size_t errlen)
{
	static const struct db_actor none;
	const struct db_actor *by = a->by ? a->by : &none;
	struct db_conn *c = NULL;
	const char *v[16];
	PGresult *res = NULL;
	int r;

	v[0] = a->event_type;
	v[1] = a->outcome;
	v[2] = a->reason;
	v[3] = by->identity;
	v[4] = by->idp;
	v[5] = a->meeting_id;
	v[6] = a->matched_group;
	v[7] = by->source_addr;
	v[8] = by->forwarded_for;
	v[9] = by->user_agent;
	v[10] = by->request_id;
	v[11] = by->node;
	v[12] = tri(a->code_ok);
	v[13] = tri(a->member_ok);
	v[14] = a->details_json;
	v[15] = by->via;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	/* Over-long client-supplied text is cut to the column limits
	 * rather than losing the record. */
	res = PQexecParams(
	    db_conn_pg(c),
	    "INSERT INTO audit_log (event_type, outcome, reason, identity, "
	    "idp, meeting_id, matched_group, source_addr, forwarded_for, "
	    "user_agent, request_id, node, code_ok, member_ok, details) "
	    "VALUES ($1, $2, $3, $4, $5, $6::uuid, $7, $8::inet, "
	    "left($9, 2048), left($10, 1024), $11, $12, $13::boolean, "
	    "$14::boolean, CASE WHEN $16::text IS NULL THEN $15::jsonb ELSE "
	    "coalesce($15::jsonb, '{}'::jsonb) || jsonb_build_object('via', "
	    "$16::text) END)",
	    16, NULL, v, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = db_result_err(db_conn_pg(c), res,
		                  "recording the audit entry", err, errlen);
		if (r == 0)
			r = DB_EQUERY;
		goto out;
	}
	r = 0;
out:
	PQclear(res);
	db_release(pool, c);
	return r;
}
