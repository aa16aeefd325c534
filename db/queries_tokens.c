/*
 * db/queries_tokens.c -- API service tokens. Only the SHA-256 of a token
 * is stored; a lookup is one indexed query on that hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db/db_int.h"

static int
tok_fail(PGconn *pg, PGresult *res, const char *what, char *err, size_t errlen)
{
	const char *state =
	    res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	int r;

	if (state != NULL && strcmp(state, "23505") == 0) {
		db_seterr(err, errlen,
		          "%s: a live token already has this name; revoke it "
		          "or pick another name",
		          what);
		r = DB_ECONFLICT;
	} else {
		r = db_result_err(pg, res, what, err, errlen);
	}
	PQclear(res);
	return r;
}

static const char tok_cols[] =
    "id, name, role, identity, extract(epoch FROM created_at)::bigint, "
    "coalesce(extract(epoch FROM revoked_at)::bigint, 0) ";

static void
tok_from_row(const PGresult *res, int row, struct db_token *t)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(res, row, 0));
	snprintf(t->name, sizeof(t->name), "%s", PQgetvalue(res, row, 1));
	snprintf(t->role, sizeof(t->role), "%s", PQgetvalue(res, row, 2));
	snprintf(t->identity, sizeof(t->identity), "%s",
	         PQgetvalue(res, row, 3));
	t->created_at = strtoll(PQgetvalue(res, row, 4), NULL, 10);
	t->revoked_at = strtoll(PQgetvalue(res, row, 5), NULL, 10);
}

int
db_token_create(struct db_pool *pool, const char *name, const char *role,
                const char *identity, const unsigned char hash[32],
                struct db_token *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char hh[65], sql[1024];
	const char *v[4];
	PGresult *res;
	PGconn *pg;
	int r;

	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	sodium_bin2hex(hh, sizeof(hh), hash, 32);
	v[0] = name;
	v[1] = role;
	v[2] = identity;
	v[3] = hh;
	/* The token's id, name and role (never the token or its hash) go on
	 * the audit record in the same statement: a token exists only with
	 * its record. The CLI has no request: node is the connection's
	 * application_name, the source the address the database sees the
	 * CLI at (NULL over a Unix socket), the actor the database role
	 * (db_user). */
	snprintf(sql, sizeof(sql),
	         "WITH t AS (INSERT INTO api_tokens (name, role, identity, "
	         "token_hash) VALUES ($1, $2, $3, decode($4, 'hex')) "
	         "RETURNING *), a AS (INSERT INTO audit_log (event_type, "
	         "outcome, reason, identity, node, source_addr, details) "
	         "SELECT 'token.create', 'info', 'admin', t.identity, "
	         "current_setting('application_name'), inet_client_addr(), "
	         "jsonb_build_object("
	         "'token_id', t.id, 'name', t.name, 'role', t.role, 'via', "
	         "'cli', 'db_user', current_user) FROM t) SELECT %s FROM t",
	         tok_cols);
	res = PQexecParams(pg, sql, 4, NULL, v, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = tok_fail(pg, res, "creating the token", err, errlen);
		goto out;
	}
	tok_from_row(res, 0, out);
	PQclear(res);
	r = 0;
out:
	sodium_memzero(hh, sizeof(hh));
	db_release(pool, c);
	return r;
}

int
db_token_lookup(struct db_pool *pool, const unsigned char hash[32],
                struct db_token *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char hh[65], sql[512];
	const char *v[1] = {hh};
	PGresult *res;
	PGconn *pg;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	sodium_bin2hex(hh, sizeof(hh), hash, 32);
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM api_tokens WHERE token_hash = decode($1, "
	         "'hex') AND revoked_at IS NULL",
	         tok_cols);
	res = PQexecParams(pg, sql, 1, NULL, v, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = tok_fail(pg, res, "checking the API token", err, errlen);
		goto out;
	}
	r = PQntuples(res) == 1;
	if (r)
		tok_from_row(res, 0, out);
	PQclear(res);
out:
	sodium_memzero(hh, sizeof(hh));
	db_release(pool, c);
	return r;
}

int
db_token_revoke(struct db_pool *pool, const char *id_or_name, char *err,
                size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[1] = {id_or_name};
	PGresult *res;
	PGconn *pg;
	int r;

	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	res =
	    PQexecParams(pg,
	                 "WITH u AS (UPDATE api_tokens SET revoked_at = now() "
	                 "WHERE revoked_at IS NULL AND (name = $1 OR "
	                 "id::text = lower($1)) RETURNING *), a AS (INSERT "
	                 "INTO audit_log (event_type, outcome, reason, "
	                 "identity, node, source_addr, details) SELECT "
	                 "'token.revoke', 'info', 'admin', u.identity, "
	                 "current_setting('application_name'), "
	                 "inet_client_addr(), jsonb_build_object("
	                 "'token_id', u.id, 'name', u.name, 'role', u.role, "
	                 "'via', 'cli', 'db_user', current_user) FROM u) "
	                 "SELECT count(*) FROM u",
	                 1, NULL, v, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK ||
	    PQntuples(res) != 1) {
		r = tok_fail(pg, res, "revoking the token", err, errlen);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
		db_seterr(err, errlen, "no live token named or with id \"%s\"",
		          id_or_name);
		r = DB_ENOTFOUND;
	}
	PQclear(res);
out:
	db_release(pool, c);
	return r;
}

int
db_token_list(struct db_pool *pool, int include_revoked, struct db_token **out,
              size_t *n, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char sql[512];
	const char *v[1] = {include_revoked ? "true" : "false"};
	PGresult *res;
	PGconn *pg;
	int r, rows;

	*out = NULL;
	*n = 0;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM api_tokens WHERE $1::boolean OR revoked_at "
	         "IS NULL ORDER BY created_at DESC, name",
	         tok_cols);
	res = PQexecParams(pg, sql, 1, NULL, v, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = tok_fail(pg, res, "listing tokens", err, errlen);
		goto out;
	}
	rows = PQntuples(res);
	*out = calloc((size_t)rows + 1, sizeof(**out));
	if (*out == NULL) {
		PQclear(res);
		db_seterr(err, errlen, "out of memory");
		r = DB_ENOMEM;
		goto out;
	}
	for (int i = 0; i < rows; i++)
		tok_from_row(res, i, &(*out)[i]);
	*n = (size_t)rows;
	PQclear(res);
	r = 0;
out:
	db_release(pool, c);
	return r;
}
