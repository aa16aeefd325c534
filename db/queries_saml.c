/*
 * db/queries_saml.c -- the SAML and session queries: pending AuthnRequests
 * bound to a browser, the assertion-ID replay cache, server-side sessions
 * and the 'sso' audit records. Every statement is parameterized; hashes go
 * as binary parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"
#include "db/db_retry.h"

/*
 * Runs one statement on a pooled connection. want: the expected result
 * status. On success *res (may be NULL: discarded) is the caller's.
 */
static int
run(struct db_pool *pool, const char *what, const char *sql, int n,
    const char *const *vals, const int *lens, const int *fmts,
    ExecStatusType want, PGresult **resp, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res = NULL;
	int r;

	if (resp != NULL)
		*resp = NULL;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = PQexecParams(db_conn_pg(c), sql, n, NULL, vals, lens, fmts, 0);
	if (res == NULL || PQresultStatus(res) != want) {
		r = db_result_err(db_conn_pg(c), res, what, err, errlen);
		PQclear(res);
		db_release(pool, c);
		return r;
	}
	db_release(pool, c);
	if (resp != NULL)
		*resp = res;
	else
		PQclear(res);
	return 0;
}

/* run() for a statement that may lose a deadlock (db_exec_retry). */
static int
run_retry(struct db_pool *pool, const char *what, const char *sql, int n,
	  const char *const *vals, ExecStatusType want, PGresult **resp,
	  char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res;
	int r;

	*resp = NULL;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = db_exec_retry(db_conn_pg(c), sql, n, vals, NULL, NULL, NULL);
	if (res == NULL || PQresultStatus(res) != want) {
		r = db_result_err(db_conn_pg(c), res, what, err, errlen);
		PQclear(res);
		db_release(pool, c);
		return r;
	}
	db_release(pool, c);
	*resp = res;
	return 0;
}

static char *
col(PGresult *res, int c)
{
	if (PQgetisnull(res, 0, c))
		return NULL;
	return strdup(PQgetvalue(res, 0, c));
}

int
db_saml_request_put(struct db_pool *pool, const char *request_id,
		    const unsigned char binding_hash[32],
		    const char *return_path, int ttl_s, char *err,
		    size_t errlen)
{
	char ttl[16];
	const char *v[4] = {request_id, (const char *)binding_hash,
			    return_path, ttl};
	int l[4] = {0, 32, 0, 0}, f[4] = {0, 1, 0, 0};

	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	return run(pool, "saving the sign-in request",
		   "INSERT INTO saml_requests (request_id, binding_hash, "
		   "return_path, expires_at) VALUES ($1, $2, $3, "
		   "now() + make_interval(secs => $4::int))",
		   4, v, l, f, PGRES_COMMAND_OK, NULL, err, errlen);
}

int
db_saml_request_take(struct db_pool *pool, const char *request_id,
		     const unsigned char binding_hash[32], char **return_path,
		     char *err, size_t errlen)
{
	const char *v[2] = {request_id, (const char *)binding_hash};
	int l[2] = {0, 32}, f[2] = {0, 1};
	PGresult *res;
	int r;

	*return_path = NULL;
	r = run(pool, "checking the sign-in request",
		"UPDATE saml_requests SET used_at = now() "
		"WHERE request_id = $1 AND binding_hash = $2 "
		"AND used_at IS NULL AND expires_at > now() "
		"RETURNING return_path",
		2, v, l, f, PGRES_TUPLES_OK, &res, err, errlen);
	if (r != 0)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 0;
	}
	*return_path = col(res, 0);
	PQclear(res);
	if (*return_path == NULL) {
		db_seterr(err, errlen, "out of memory");
		return DB_ENOMEM;
	}
	return 1;
}

int
db_saml_replay_add(struct db_pool *pool, const char *assertion_id,
		   long long until, char *err, size_t errlen)
{
	char t[32];
	const char *v[2] = {assertion_id, t};
	PGresult *res;
	int r;

	snprintf(t, sizeof(t), "%lld", until);
	/* Expired entries go first, so the table stays small. */
	(void)run(pool, "sweeping the replay cache",
		  "DELETE FROM saml_replay WHERE expires_at < now() - "
		  "interval '1 hour'",
		  0, NULL, NULL, NULL, PGRES_COMMAND_OK, NULL, err, errlen);
	r = run(pool, "recording the assertion id",
		"INSERT INTO saml_replay (assertion_id, expires_at) "
		"VALUES ($1, to_timestamp($2::bigint)) "
		"ON CONFLICT (assertion_id) DO NOTHING",
		2, v, NULL, NULL, PGRES_COMMAND_OK, &res, err, errlen);
	if (r != 0)
		return r;
	r = strcmp(PQcmdTuples(res), "1") == 0 ? 1 : 0;
	PQclear(res);
	return r;
}

int
db_session_create(struct db_pool *pool, const struct db_session_new *s,
		  char *err, size_t errlen)
{
	char abs_s[16];
	const char *v[11] = {(const char *)s->id_hash, s->identity, s->idp,
			     s->name_id, s->name_id_format, s->session_index,
			     s->authn_instant, s->attributes_json, abs_s,
			     s->source_addr, s->user_agent};
	int l[11] = {32, 0}, f[11] = {1, 0};

	snprintf(abs_s, sizeof(abs_s), "%d", s->absolute_timeout_s);
	return run(pool, "creating the session",
		   "INSERT INTO sessions (id_hash, identity, idp_entity_id, "
		   "name_id, name_id_format, saml_session_index, "
		   "authn_instant, attributes, expires_at, source_addr, "
		   "user_agent) VALUES ($1, $2, $3, $4, $5, $6, "
		   "$7::timestamptz, $8::jsonb, "
		   "now() + make_interval(secs => $9::int), "
		   "$10::inet, left($11, 1024))",
		   11, v, l, f, PGRES_COMMAND_OK, NULL, err, errlen);
}

int
db_session_touch_s(int idle_timeout_s)
{
	int t = idle_timeout_s / 16;

	return t < 0 ? 0 : t > 60 ? 60 : t;
}

int
db_session_get(struct db_pool *pool, const unsigned char id_hash[32],
	       int idle_timeout_s, struct db_session *out, char *err,
	       size_t errlen)
{
	char idle[16], touch[16];
	const char *v[3] = {(const char *)id_hash, idle, touch};
	int l[3] = {32, 0, 0}, f[3] = {1, 0, 0};
	PGresult *res;
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(idle, sizeof(idle), "%d", idle_timeout_s);
	snprintf(touch, sizeof(touch), "%d",
		 db_session_touch_s(idle_timeout_s));
	/* Live means: not revoked, before the absolute expiry, and seen
	 * within the idle timeout -- checked on the stored row every time.
	 * Using it moves last_seen_at, but only once it is older than the
	 * touch interval: a write on every forward-auth request was a
	 * commit (a WAL flush) per request. Both parts see one snapshot, so
	 * the SELECT judges the row as it was before the touch. */
	r = run(pool, "reading the session",
		"WITH t AS (UPDATE sessions SET last_seen_at = now() "
		"WHERE id_hash = $1 AND revoked_at IS NULL "
		"AND expires_at > now() "
		"AND last_seen_at > now() - make_interval(secs => $2::int) "
		"AND last_seen_at <= now() - make_interval(secs => $3::int) "
		"RETURNING 1) "
		"SELECT identity, idp_entity_id, name_id, name_id_format, "
		"saml_session_index, "
		"to_char(authn_instant AT TIME ZONE 'UTC', "
		"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
		"coalesce(attributes::text, '{}'), "
		"to_char(expires_at AT TIME ZONE 'UTC', "
		"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
		"FROM sessions WHERE id_hash = $1 AND revoked_at IS NULL "
		"AND expires_at > now() "
		"AND last_seen_at > now() - make_interval(secs => $2::int)",
		3, v, l, f, PGRES_TUPLES_OK, &res, err, errlen);
	if (r != 0)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 0;
	}
	out->identity = col(res, 0);
	out->idp = col(res, 1);
	out->name_id = col(res, 2);
	out->name_id_format = col(res, 3);
	out->session_index = col(res, 4);
	out->authn_instant = col(res, 5);
	out->attributes_json = col(res, 6);
	out->expires_at = col(res, 7);
	PQclear(res);
	if (out->identity == NULL || out->idp == NULL || out->name_id == NULL ||
	    out->attributes_json == NULL || out->expires_at == NULL) {
		db_session_free(out);
		db_seterr(err, errlen, "out of memory");
		return DB_ENOMEM;
	}
	return 1;
}

void
db_session_free(struct db_session *s)
{
	free(s->identity);
	free(s->idp);
	free(s->name_id);
	free(s->name_id_format);
	free(s->session_index);
	free(s->authn_instant);
	free(s->attributes_json);
	free(s->expires_at);
	memset(s, 0, sizeof(*s));
}

int
db_session_revoke(struct db_pool *pool, const unsigned char id_hash[32],
		  const char *reason, char *err, size_t errlen)
{
	const char *v[2] = {(const char *)id_hash, reason};
	int l[2] = {32, 0}, f[2] = {1, 0};

	return run(pool, "ending the session",
		   "UPDATE sessions SET revoked_at = now(), revoke_reason = $2 "
		   "WHERE id_hash = $1 AND revoked_at IS NULL",
		   2, v, l, f, PGRES_COMMAND_OK, NULL, err, errlen);
}

int
db_audit_sso(struct db_pool *pool, const struct db_audit_sso *a, char *err,
	     size_t errlen)
{
	const char *v[9] = {a->event_type, a->outcome, a->reason, a->identity,
			    a->idp, a->source_addr, a->user_agent,
			    a->request_id, a->node};
	const char *v11[11];

	memcpy(v11, v, sizeof(v));
	v11[9] = a->details_json;
	v11[10] = a->forwarded_for;
	return run(pool, "writing the audit record",
		   "INSERT INTO audit_log (event_type, outcome, reason, "
		   "identity, idp, source_addr, user_agent, request_id, node, "
		   "details, forwarded_for) VALUES ($1, $2, $3, $4, $5, "
		   "$6::inet, left($7, 1024), $8, $9, $10::jsonb, "
		   "left($11, 2048))",
		   11, v11, NULL, NULL, PGRES_COMMAND_OK, NULL, err, errlen);
}

int
db_session_revoke_subject(struct db_pool *pool, const char *idp,
			  const char *name_id, const char *session_index,
			  const char *reason, long *count, char *err,
			  size_t errlen)
{
	const char *v[4] = {idp, name_id, session_index, reason};
	PGresult *res;
	int r;

	*count = 0;
	/* The person's sessions are locked in one fixed order (id_hash)
	 * before they are changed; a deadlock or serialization victim runs
	 * again (run_retry): an admission batch never leaves them live. */
	r = run_retry(pool, "ending the sessions",
		      "WITH l AS (SELECT id_hash FROM sessions WHERE "
		      "idp_entity_id = $1 AND name_id = $2 AND ($3::text IS "
		      "NULL OR saml_session_index = $3) AND revoked_at IS NULL "
		      "ORDER BY id_hash FOR UPDATE) "
		      "UPDATE sessions SET revoked_at = now(), revoke_reason = "
		      "$4 WHERE id_hash IN (SELECT id_hash FROM l) "
		      "AND idp_entity_id = $1 AND name_id = $2 "
		      "AND ($3::text IS NULL OR saml_session_index = $3) "
		      "AND revoked_at IS NULL",
		      4, v, PGRES_COMMAND_OK, &res, err, errlen);
	if (r != 0)
		return r;
	*count = strtol(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}
