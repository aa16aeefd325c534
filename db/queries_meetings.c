/*
 * db/queries_meetings.c -- meetings, their invitees and their access codes
 * (as keyed hashes and sealed copies only), rotations and the scheduled
 * rotation job. See db.h for the contracts.
 *
 * Lists (groups, invitees) travel as JSON text parameters and come back as
 * JSON text, so no SQL array literal is ever built by hand. Binary values
 * travel hex-encoded. Every statement uses parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "db/db_int.h"

/* Any constant distinct from other advisory locks (the migrator's). */
#define ROTATION_LOCK_KEY "7242360117312211001"

static PGresult *
q(PGconn *pg, const char *sql, int n, const char *const *vals)
{
	return PQexecParams(pg, sql, n, NULL, vals, NULL, NULL, 0);
}

/* Maps a failed statement to an error value; a unique violation is a
 * conflict named by its constraint. Clears res. */
static int
qfail(PGconn *pg, PGresult *res, const char *what, char *err, size_t errlen)
{
	const char *state =
	    res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *cons =
	    res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
	int r;

	if (state != NULL && strcmp(state, "23505") == 0) {
		db_seterr(err, errlen, "%s: already taken (%s)", what,
		          cons ? cons : "unique");
		r = DB_ECONFLICT;
	} else {
		r = db_result_err(pg, res, what, err, errlen);
	}
	PQclear(res);
	return r;
}

static int
cmd_ok(PGresult *res)
{
	return res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK ||
	                       PQresultStatus(res) == PGRES_TUPLES_OK);
}

static int
simple(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *res = PQexec(pg, sql);

	if (!cmd_ok(res))
		return qfail(pg, res, what, err, errlen);
	PQclear(res);
	return 0;
}

static char *
strlist_json(char *const *v, size_t n)
{
	json_t *a = json_array();
	char *s;

	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

static int
strlist_parse(const char *text, char ***out, size_t *n)
{
	json_t *a = json_loads(text, 0, NULL);
	char **v = NULL;
	size_t k;

	*out = NULL;
	*n = 0;
	if (!json_is_array(a)) {
		json_decref(a);
		return -1;
	}
	k = json_array_size(a);
	v = calloc(k + 1, sizeof(*v));
	if (v == NULL) {
		json_decref(a);
		return -1;
	}
	for (size_t i = 0; i < k; i++) {
		const char *s = json_string_value(json_array_get(a, i));

		if (s == NULL || (v[i] = strdup(s)) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(v[j]);
			free(v);
			json_decref(a);
			return -1;
		}
	}
	json_decref(a);
	*out = v;
	*n = k;
	return 0;
}

static void
strlist_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
db_meeting_free(struct db_meeting *m)
{
	if (m == NULL)
		return;
	free(m->title);
	free(m->host_identity);
	free(m->platform_room);
	strlist_free(m->groups, m->ngroups);
	strlist_free(m->invitees, m->ninvitees);
	memset(m, 0, sizeof(*m));
}

static void
lltoa(long long v, char *buf, size_t len)
{
	snprintf(buf, len, "%lld", v);
}

static long long
getll(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

const char db_meeting_cols[] =
    "m.id, m.link_id, m.title, m.host_identity, m.platform_room, "
    "array_to_json(m.allowed_groups)::text, "
    "(SELECT coalesce(json_agg(i.identity ORDER BY i.identity), "
    "'[]'::json) FROM meeting_invitees i WHERE i.meeting_id = m.id)::text, "
    "m.waiting_room, extract(epoch FROM m.starts_at)::bigint, "
    "extract(epoch FROM m.ends_at)::bigint, m.code_length, "
    "extract(epoch FROM m.rotation_interval)::bigint, "
    "extract(epoch FROM m.grace_period)::bigint, "
    "extract(epoch FROM m.created_at)::bigint, "
    "extract(epoch FROM m.updated_at)::bigint, "
    "extract(epoch FROM m.archived_at)::bigint, "
    "extract(epoch FROM m.code_rotates_at)::bigint, "
    "(SELECT c.version FROM meeting_codes c WHERE c.meeting_id = m.id "
    "AND c.state = 'current') ";

int
db_meeting_from_row(const PGresult *res, int row, struct db_meeting *m)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", PQgetvalue(res, row, 0));
	snprintf(m->link_id, sizeof(m->link_id), "%s", PQgetvalue(res, row, 1));
	m->title = strdup(PQgetvalue(res, row, 2));
	m->host_identity = strdup(PQgetvalue(res, row, 3));
	m->platform_room = strdup(PQgetvalue(res, row, 4));
	if (m->title == NULL || m->host_identity == NULL ||
	    m->platform_room == NULL ||
	    strlist_parse(PQgetvalue(res, row, 5), &m->groups, &m->ngroups) !=
	        0 ||
	    strlist_parse(PQgetvalue(res, row, 6), &m->invitees,
	                  &m->ninvitees) != 0) {
		db_meeting_free(m);
		return DB_ENOMEM;
	}
	m->waiting_room = strcmp(PQgetvalue(res, row, 7), "t") == 0;
	m->starts_at = getll(res, row, 8);
	m->ends_at = getll(res, row, 9);
	m->code_length = (int)getll(res, row, 10);
	m->rotation_interval_s = getll(res, row, 11);
	m->grace_period_s = getll(res, row, 12);
	m->created_at = getll(res, row, 13);
	m->updated_at = getll(res, row, 14);
	m->archived_at = getll(res, row, 15);
	m->code_rotates_at = getll(res, row, 16);
	m->code_version = (int)getll(res, row, 17);
	return 0;
}

/* One administrative record with the actor's whole request context
 * (db_actor); via joins the details. */
static int
audit(PGconn *pg, const char *event, const char *reason, const char *meeting_id,
      const struct db_actor *by, const char *details_json, char *err,
      size_t errlen)
{
	const char *v[12];
	PGresult *res;

	v[0] = event;
	v[1] = by ? by->identity : NULL;
	v[2] = meeting_id;
	v[3] = by ? by->request_id : NULL;
	v[4] = by ? by->node : NULL;
	v[5] = by ? by->source_addr : NULL;
	v[6] = details_json;
	v[7] = by ? by->idp : NULL;
	v[8] = by ? by->forwarded_for : NULL;
	v[9] = by ? by->user_agent : NULL;
	v[10] = by ? by->via : NULL;
	v[11] = reason;
	res = q(pg,
	        "INSERT INTO audit_log (event_type, outcome, reason, identity, "
	        "meeting_id, request_id, node, source_addr, idp, "
	        "forwarded_for, user_agent, details) VALUES "
	        "($1, 'info', $12, $2, $3::uuid, $4, $5, $6::inet, $8, "
	        "left($9, 2048), left($10, 1024), CASE WHEN $11::text IS NULL "
	        "THEN $7::jsonb ELSE coalesce($7::jsonb, '{}'::jsonb) || "
	        "jsonb_build_object('via', $11::text) END)",
	        12, v);
	if (!cmd_ok(res))
		return qfail(pg, res, "recording the audit entry", err, errlen);
	PQclear(res);
	return 0;
}

static void
hex(const unsigned char *b, size_t n, char *out, size_t outlen)
{
	sodium_bin2hex(out, outlen, b, n);
}

/* Inserts code as version `version` of meeting_id, state current. */
static int
insert_code(PGconn *pg, const char *meeting_id, const struct db_code *c,
            int version, const char *reason, const char *by, char *err,
            size_t errlen)
{
	char hh[65], sh[2 * sizeof(c->sealed) + 1], ver[16];
	const char *v[8];
	PGresult *res;
	int r;

	if (c->sealed_len == 0 || c->sealed_len > sizeof(c->sealed)) {
		db_seterr(err, errlen, "storing the code: bad sealed length");
		return DB_EINVAL;
	}
	hex(c->hash, sizeof(c->hash), hh, sizeof(hh));
	hex(c->sealed, c->sealed_len, sh, sizeof(sh));
	snprintf(ver, sizeof(ver), "%d", version);
	v[0] = meeting_id;
	v[1] = hh;
	v[2] = sh;
	v[3] = c->key_id;
	v[4] = ver;
	v[5] = c->source[0] ? c->source : "generated";
	v[6] = reason;
	v[7] = by;
	res =
	    q(pg,
	      "INSERT INTO meeting_codes (meeting_id, code_hash, code_sealed, "
	      "key_id, version, source, reason, created_by) VALUES ($1::uuid, "
	      "decode($2, 'hex'), decode($3, 'hex'), $4, $5::int, $6, $7, $8)",
	      8, v);
	r = cmd_ok(res) ? 0 : qfail(pg, res, "storing the code", err, errlen);
	if (r == 0)
		PQclear(res);
	sodium_memzero(hh, sizeof(hh));
	sodium_memzero(sh, sizeof(sh));
	return r;
}

static int
write_invitees(PGconn *pg, const struct db_meeting *m, const char *by,
               char *err, size_t errlen)
{
	const char *v[3];
	char *inv = strlist_json(m->invitees, m->ninvitees);
	PGresult *res;
	int r;

	if (inv == NULL) {
		db_seterr(err, errlen, "out of memory");
		return DB_ENOMEM;
	}
	v[0] = m->id;
	v[1] = inv;
	v[2] = by;
	res =
	    q(pg,
	      "WITH want AS (SELECT DISTINCT x AS identity FROM "
	      "jsonb_array_elements_text($2::jsonb) x), "
	      "gone AS (DELETE FROM meeting_invitees i WHERE i.meeting_id = "
	      "$1::uuid AND i.identity NOT IN (SELECT identity FROM want)) "
	      "INSERT INTO meeting_invitees (meeting_id, identity, invited_by) "
	      "SELECT $1::uuid, identity, $3 FROM want "
	      "ON CONFLICT (meeting_id, identity) DO NOTHING",
	      3, v);
	free(inv);
	r = cmd_ok(res) ? 0
	                : qfail(pg, res, "storing the invitees", err, errlen);
	if (r == 0)
		PQclear(res);
	return r;
}

int
db_meeting_create(struct db_pool *pool, const struct db_meeting *m,
                  const struct db_code *code, const struct db_actor *by,
                  char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char sa[24], ea[24], cl[8], ri[24], gp[24];
	char *groups = NULL;
	const char *v[12];
	PGconn *pg;
	PGresult *res;
	int r;

	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	groups = strlist_json(m->groups, m->ngroups);
	if (groups == NULL) {
		r = DB_ENOMEM;
		db_seterr(err, errlen, "out of memory");
		goto out;
	}
	if ((r = simple(pg, "BEGIN", "creating the meeting", err, errlen)) != 0)
		goto out;
	lltoa(m->starts_at, sa, sizeof(sa));
	lltoa(m->ends_at, ea, sizeof(ea));
	snprintf(cl, sizeof(cl), "%d", m->code_length);
	lltoa(m->rotation_interval_s, ri, sizeof(ri));
	lltoa(m->grace_period_s, gp, sizeof(gp));
	v[0] = m->id;
	v[1] = m->link_id;
	v[2] = m->title;
	v[3] = m->host_identity;
	v[4] = groups;
	v[5] = m->waiting_room ? "true" : "false";
	v[6] = m->starts_at ? sa : NULL;
	v[7] = m->ends_at ? ea : NULL;
	v[8] = cl;
	v[9] = m->rotation_interval_s ? ri : NULL;
	v[10] = gp;
	v[11] = m->platform_room;
	res = q(
	    pg,
	    "INSERT INTO meetings (id, link_id, title, host_identity, "
	    "allowed_groups, waiting_room, starts_at, ends_at, code_length, "
	    "rotation_interval, grace_period, platform_room, "
	    "code_rotates_at, invitees_only) VALUES ($1::uuid, $2, $3, $4, "
	    "ARRAY(SELECT jsonb_array_elements_text($5::jsonb)), "
	    "$6::boolean, to_timestamp($7::bigint), to_timestamp($8::bigint), "
	    "$9::smallint, make_interval(secs => $10::bigint), "
	    "make_interval(secs => $11::bigint), $12, "
	    "now() + make_interval(secs => $10::bigint), "
	    "jsonb_array_length($5::jsonb) = 0)",
	    12, v);
	if (!cmd_ok(res)) {
		r = qfail(pg, res, "creating the meeting", err, errlen);
		goto out;
	}
	PQclear(res);
	if ((r = write_invitees(pg, m, by ? by->identity : NULL, err,
	                        errlen)) != 0 ||
	    (r = insert_code(pg, m->id, code, 1, "created",
	                     by ? by->identity : NULL, err, errlen)) != 0 ||
	    (r = audit(pg, "meeting.create", "created", m->id, by, NULL, err,
	               errlen)) != 0 ||
	    (r = simple(pg, "COMMIT", "creating the meeting", err, errlen)) !=
	        0)
		goto out;
	r = 0;
out:
	free(groups);
	db_release(pool, c);
	return r;
}

int
db_meeting_get(struct db_pool *pool, const char *id, struct db_meeting *out,
               char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char sql[2048];
	const char *v[1] = {id};
	PGresult *res;
	PGconn *pg;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM meetings m WHERE m.id = $1::uuid",
	         db_meeting_cols);
	res = q(pg, sql, 1, v);
	if (!cmd_ok(res)) {
		r = qfail(pg, res, "reading the meeting", err, errlen);
		goto out;
	}
	if (PQntuples(res) != 1) {
		db_seterr(err, errlen, "no meeting with id %s", id);
		r = DB_ENOTFOUND;
	} else {
		r = db_meeting_from_row(res, 0, out);
		if (r != 0)
			db_seterr(err, errlen, "out of memory");
	}
	PQclear(res);
out:
	db_release(pool, c);
	return r;
}

int
db_meeting_update(struct db_pool *pool, const struct db_meeting *m,
                  const struct db_actor *by, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char sa[24], ea[24], ri[24], gp[24];
	char *groups = NULL;
	const char *v[10];
	PGconn *pg;
	PGresult *res;
	int r;

	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	groups = strlist_json(m->groups, m->ngroups);
	if (groups == NULL) {
		r = DB_ENOMEM;
		db_seterr(err, errlen, "out of memory");
		goto out;
	}
	if ((r = simple(pg, "BEGIN", "updating the meeting", err, errlen)) != 0)
		goto out;
	lltoa(m->starts_at, sa, sizeof(sa));
	lltoa(m->ends_at, ea, sizeof(ea));
	lltoa(m->rotation_interval_s, ri, sizeof(ri));
	lltoa(m->grace_period_s, gp, sizeof(gp));
	v[0] = m->id;
	v[1] = m->title;
	v[2] = groups;
	v[3] = m->waiting_room ? "true" : "false";
	v[4] = m->starts_at ? sa : NULL;
	v[5] = m->ends_at ? ea : NULL;
	v[6] = m->rotation_interval_s ? ri : NULL;
	v[7] = gp;
	v[8] = m->platform_room;
	res = q(
	    pg,
	    "UPDATE meetings SET title = $2, allowed_groups = "
	    "ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), "
	    "invitees_only = jsonb_array_length($3::jsonb) = 0, "
	    "waiting_room = $4::boolean, starts_at = to_timestamp($5::bigint), "
	    "ends_at = to_timestamp($6::bigint), "
	    "code_rotates_at = CASE WHEN $7::bigint IS NULL THEN NULL "
	    "WHEN rotation_interval IS NOT DISTINCT FROM "
	    "make_interval(secs => $7::bigint) THEN code_rotates_at "
	    "ELSE now() + make_interval(secs => $7::bigint) END, "
	    "rotation_interval = make_interval(secs => $7::bigint), "
	    "grace_period = make_interval(secs => $8::bigint), "
	    "platform_room = $9 "
	    "WHERE id = $1::uuid AND archived_at IS NULL",
	    9, v);
	if (!cmd_ok(res)) {
		r = qfail(pg, res, "updating the meeting", err, errlen);
		goto out;
	}
	if (strcmp(PQcmdTuples(res), "1") != 0) {
		PQclear(res);
		db_seterr(err, errlen, "no live meeting with id %s", m->id);
		r = DB_ENOTFOUND;
		goto out;
	}
	PQclear(res);
	if ((r = write_invitees(pg, m, by ? by->identity : NULL, err,
	                        errlen)) != 0 ||
	    (r = audit(pg, "meeting.update", "updated", m->id, by, NULL, err,
	               errlen)) != 0 ||
	    (r = simple(pg, "COMMIT", "updating the meeting", err, errlen)) !=
	        0)
		goto out;
	r = 0;
out:
	free(groups);
	db_release(pool, c);
	return r;
}

int
db_meeting_archive(struct db_pool *pool, const char *id,
                   const struct db_actor *by, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	const char *v[1] = {id};
	PGconn *pg;
	PGresult *res;
	int r;

	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	if ((r = simple(pg, "BEGIN", "archiving the meeting", err, errlen)) !=
	    0)
		goto out;
	res =
	    q(pg,
	      "UPDATE meetings SET archived_at = coalesce(archived_at, now()), "
	      "code_rotates_at = NULL WHERE id = $1::uuid",
	      1, v);
	if (!cmd_ok(res)) {
		r = qfail(pg, res, "archiving the meeting", err, errlen);
		goto out;
	}
	if (strcmp(PQcmdTuples(res), "1") != 0) {
		PQclear(res);
		db_seterr(err, errlen, "no meeting with id %s", id);
		r = DB_ENOTFOUND;
		goto out;
	}
	PQclear(res);
	res =
	    q(pg,
	      "UPDATE meeting_codes SET state = 'retired', retired_at = now() "
	      "WHERE meeting_id = $1::uuid AND state <> 'retired'",
	      1, v);
	if (!cmd_ok(res)) {
		r = qfail(pg, res, "archiving the meeting", err, errlen);
		goto out;
	}
	PQclear(res);
	if ((r = audit(pg, "meeting.archive", "archived", id, by, NULL, err,
	               errlen)) != 0 ||
	    (r = simple(pg, "COMMIT", "archiving the meeting", err, errlen)) !=
	        0)
		goto out;
	r = 0;
out:
	db_release(pool, c);
	return r;
}

int
db_meeting_list(struct db_pool *pool, const char *host, int include_archived,
                const char *after, int limit, struct db_meeting **out,
                size_t *n, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	struct db_meeting *arr = NULL;
	char sql[2600], lim[16];
	const char *v[4];
	PGresult *res = NULL;
	PGconn *pg;
	int r, rows;

	*out = NULL;
	*n = 0;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	snprintf(lim, sizeof(lim), "%d", limit);
	v[0] = host;
	v[1] = include_archived ? "true" : "false";
	v[2] = after;
	v[3] = lim;
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM meetings m WHERE ($1::text IS NULL OR "
	         "m.host_identity = $1) AND ($2::boolean OR m.archived_at IS "
	         "NULL) AND ($3::uuid IS NULL OR (m.created_at, m.id) < "
	         "(SELECT a.created_at, a.id FROM meetings a WHERE a.id = "
	         "$3::uuid)) ORDER BY m.created_at DESC, m.id DESC LIMIT "
	         "$4::int",
	         db_meeting_cols);
	res = q(pg, sql, 4, v);
	if (!cmd_ok(res)) {
		r = qfail(pg, res, "listing meetings", err, errlen);
		res = NULL;
		goto out;
	}
	rows = PQntuples(res);
	arr = calloc((size_t)rows + 1, sizeof(*arr));
	if (arr == NULL) {
		r = DB_ENOMEM;
		db_seterr(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		if ((r = db_meeting_from_row(res, i, &arr[i])) != 0) {
			for (int j = 0; j < i; j++)
				db_meeting_free(&arr[j]);
			free(arr);
			arr = NULL;
			db_seterr(err, errlen, "out of memory");
			goto out;
		}
	}
	*out = arr;
	*n = (size_t)rows;
	r = 0;
out:
	PQclear(res);
	db_release(pool, c);
	return r;
}

int
db_code_from_row(const PGresult *res, int row, struct db_code *out)
{
	size_t len = 0;
	const char *sh = PQgetvalue(res, row, 1);

	memset(out, 0, sizeof(*out));
	if (sodium_hex2bin(
	        out->hash, sizeof(out->hash), PQgetvalue(res, row, 0),
	        strlen(PQgetvalue(res, row, 0)), NULL, &len, NULL) != 0 ||
	    len != sizeof(out->hash))
		return -1;
	if (sodium_hex2bin(out->sealed, sizeof(out->sealed), sh, strlen(sh),
	                   NULL, &out->sealed_len, NULL) != 0)
		return -1;
	snprintf(out->key_id, sizeof(out->key_id), "%s",
	         PQgetvalue(res, row, 2));
	out->version = (int)getll(res, row, 3);
	snprintf(out->state, sizeof(out->state), "%s", PQgetvalue(res, row, 4));
	out->valid_from = getll(res, row, 5);
	out->grace_until = getll(res, row, 6);
	snprintf(out->source, sizeof(out->source), "%s",
	         PQgetvalue(res, row, 7));
	return 0;
}

const char db_code_cols[] =
    "encode(c.code_hash, 'hex'), encode(c.code_sealed, 'hex'), c.key_id, "
    "c.version, c.state, extract(epoch FROM c.valid_from)::bigint, "
    "extract(epoch FROM c.grace_until)::bigint, c.source ";

int
db_code_current(struct db_pool *pool, const char *meeting_id,
                struct db_code *out, char *err, size_t errlen)
{
	struct db_code two[2];
	size_t n = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = db_code_live(pool, meeting_id, two, &n, err, errlen);
	if (r == 0 && n == 0) {
		db_seterr(err, errlen, "meeting %s has no current code",
		          meeting_id);
		r = DB_ENOTFOUND;
	}
	if (r == 0)
		*out = two[0];
	sodium_memzero(two, sizeof(two));
	return r;
}

int
db_code_live(struct db_pool *pool, const char *meeting_id,
             struct db_code out[2], size_t *n, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	char sql[1024];
	const char *v[1] = {meeting_id};
	PGresult *res;
	PGconn *pg;
	int r, rows;

	*n = 0;
	memset(out, 0, 2 * sizeof(*out));
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM meeting_codes c JOIN meetings m ON m.id = "
	         "c.meeting_id WHERE c.meeting_id = $1::uuid AND "
	         "m.archived_at IS NULL AND (c.state = 'current' OR "
	         "(c.state = 'previous' AND c.grace_until > now())) "
	         "ORDER BY c.version DESC LIMIT 2",
	         db_code_cols);
	res = q(pg, sql, 1, v);
	if (!cmd_ok(res)) {
		r = qfail(pg, res, "reading the meeting's code", err, errlen);
		goto out;
	}
	rows = PQntuples(res);
	for (int i = 0; i < rows && i < 2; i++) {
		if (db_code_from_row(res, i, &out[*n]) != 0) {
			PQclear(res);
			sodium_memzero(out, 2 * sizeof(*out));
			*n = 0;
			db_seterr(err, errlen, "a stored code is malformed");
			r = DB_EQUERY;
			goto out;
		}
		(*n)++;
	}
	/* Only a current code makes the pair meaningful. */
	if (*n > 0 && strcmp(out[0].state, "current") != 0) {
		sodium_memzero(out, 2 * sizeof(*out));
		*n = 0;
	}
	PQclear(res);
	r = 0;
out:
	db_release(pool, c);
	return r;
}

/* The rotation itself, inside the caller's transaction on pg. */
static int
rotate_on(PGconn *pg, const char *meeting_id, const struct db_code *code,
          int code_length, long long grace_s, const char *reason,
          int only_if_due, const struct db_actor *by, int *version, char *err,
          size_t errlen)
{
	const char *v[3], *ev[5];
	char gs[24], cl[8], ver[16], details[160];
	PGresult *res;
	int r, cur;

	v[0] = meeting_id;
	res = q(pg,
	        "SELECT (SELECT max(version) FROM meeting_codes WHERE "
	        "meeting_id = m.id), m.code_rotates_at <= now() "
	        "FROM meetings m WHERE m.id = $1::uuid AND m.archived_at IS "
	        "NULL FOR UPDATE",
	        1, v);
	if (!cmd_ok(res))
		return qfail(pg, res, "rotating the code", err, errlen);
	if (PQntuples(res) != 1 ||
	    (only_if_due && strcmp(PQgetvalue(res, 0, 1), "t") != 0)) {
		PQclear(res);
		db_seterr(err, errlen, "no live meeting %s%s", meeting_id,
		          only_if_due ? " due for rotation" : "");
		return DB_ENOTFOUND;
	}
	cur = (int)getll(res, 0, 0);
	PQclear(res);
	lltoa(grace_s, gs, sizeof(gs));
	v[1] = gs;
	res =
	    q(pg,
	      "WITH old AS (UPDATE meeting_codes SET state = 'retired', "
	      "retired_at = now() WHERE meeting_id = $1::uuid AND state = "
	      "'previous' RETURNING 1) "
	      "UPDATE meeting_codes SET "
	      "state = CASE WHEN $2::bigint > 0 THEN 'previous' ELSE 'retired' "
	      "END, "
	      "grace_until = CASE WHEN $2::bigint > 0 THEN now() + "
	      "make_interval(secs => $2::bigint) END, "
	      "retired_at = CASE WHEN $2::bigint > 0 THEN NULL ELSE now() END "
	      "WHERE meeting_id = $1::uuid AND state = 'current' "
	      "AND (SELECT count(*) FROM old) >= 0",
	      2, v);
	if (!cmd_ok(res))
		return qfail(pg, res, "rotating the code", err, errlen);
	PQclear(res);
	if ((r = insert_code(pg, meeting_id, code, cur + 1, reason,
	                     by ? by->identity : NULL, err, errlen)) != 0)
		return r;
	snprintf(cl, sizeof(cl), "%d", code_length);
	v[1] = code_length > 0 ? cl : NULL;
	res = q(pg,
	        "UPDATE meetings SET code_length = coalesce($2::smallint, "
	        "code_length), code_rotates_at = CASE WHEN rotation_interval "
	        "IS NULL THEN NULL ELSE now() + rotation_interval END "
	        "WHERE id = $1::uuid",
	        2, v);
	if (!cmd_ok(res))
		return qfail(pg, res, "rotating the code", err, errlen);
	PQclear(res);
	snprintf(details, sizeof(details),
	         "{\"version\": %d, \"reason\": \"%s\", \"source\": \"%s\", "
	         "\"grace_seconds\": %lld}",
	         cur + 1, reason, code->source[0] ? code->source : "generated",
	         grace_s);
	if ((r = audit(pg, "code.rotate", reason, meeting_id, by, details, err,
	               errlen)) != 0)
		return r;
	/* The webhook, in the rotation's transaction: who and why, never
	 * the code. */
	snprintf(ver, sizeof(ver), "%d", cur + 1);
	ev[0] = meeting_id;
	ev[1] = ver;
	ev[2] = reason;
	ev[3] = by ? by->identity : NULL;
	ev[4] = gs;
	res = q(pg,
	        "INSERT INTO outbox (topic, payload) VALUES ('code.rotated', "
	        "jsonb_build_object('meeting_id', $1::uuid, 'version', "
	        "$2::int, 'reason', $3::text, 'by', $4::text, "
	        "'grace_seconds', $5::bigint))",
	        5, ev);
	if (!cmd_ok(res))
		return qfail(pg, res, "queueing the code.rotated event", err,
		             errlen);
	PQclear(res);
	*version = cur + 1;
	return 0;
}

int
db_code_rotate(struct db_pool *pool, const char *meeting_id,
               const struct db_code *code, int code_length, long long grace_s,
               const char *reason, int only_if_due, const struct db_actor *by,
               int *version, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGconn *pg;
	int r;

	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	if ((r = simple(pg, "BEGIN", "rotating the code", err, errlen)) != 0 ||
	    (r = rotate_on(pg, meeting_id, code, code_length, grace_s, reason,
	                   only_if_due, by, version, err, errlen)) != 0 ||
	    (r = simple(pg, "COMMIT", "rotating the code", err, errlen)) != 0)
		goto out;
out:
	db_release(pool, c);
	return r;
}

int
db_rotation_run(struct db_pool *pool, int limit, db_code_maker make, void *ctx,
                const char *node, int *rotated, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	struct db_actor by = {.identity = "roomgate-scheduler", .node = node};
	struct db_code code;
	char lim[16];
	const char *v[1];
	PGresult *res = NULL, *due = NULL;
	PGconn *pg;
	int r, locked = 0, version;

	if (rotated != NULL)
		*rotated = 0;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	res = PQexec(pg, "SELECT pg_try_advisory_lock(" ROTATION_LOCK_KEY ")");
	if (!cmd_ok(res)) {
		r = qfail(pg, res, "taking the rotation lock", err, errlen);
		res = NULL;
		goto out;
	}
	locked = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	res = NULL;
	if (!locked) {
		r = 0; /* another node is at it */
		goto out;
	}
	snprintf(lim, sizeof(lim), "%d", limit);
	v[0] = lim;
	due = q(
	    pg,
	    "SELECT id, code_length, extract(epoch FROM grace_period)::bigint "
	    "FROM meetings WHERE code_rotates_at <= now() AND archived_at "
	    "IS NULL ORDER BY code_rotates_at LIMIT $1::int",
	    1, v);
	if (!cmd_ok(due)) {
		r = qfail(pg, due, "finding meetings due for rotation", err,
		          errlen);
		due = NULL;
		goto out;
	}
	for (int i = 0; i < PQntuples(due); i++) {
		const char *id = PQgetvalue(due, i, 0);

		if (make(ctx, id, (int)getll(due, i, 1), &code) != 0) {
			db_seterr(err, errlen, "no code could be made for %s",
			          id);
			r = DB_EINVAL;
			goto out;
		}
		r = simple(pg, "BEGIN", "scheduled rotation", err, errlen);
		if (r == 0)
			r = rotate_on(pg, id, &code, 0, getll(due, i, 2),
			              "scheduled", 1, &by, &version, err,
			              errlen);
		if (r == 0)
			r = simple(pg, "COMMIT", "scheduled rotation", err,
			           errlen);
		sodium_memzero(&code, sizeof(code));
		if (r == DB_ENOTFOUND) {
			(void)simple(pg, "ROLLBACK", "scheduled rotation", err,
			             errlen);
			continue; /* archived or rotated meanwhile */
		}
		if (r != 0)
			goto out;
		if (rotated != NULL)
			(*rotated)++;
	}
	r = 0;
out:
	PQclear(due);
	if (locked) {
		res = PQexec(pg, "ROLLBACK");
		PQclear(res);
		res = PQexec(pg, "SELECT pg_advisory_unlock(" ROTATION_LOCK_KEY
		                 ")");
		PQclear(res);
	}
	db_release(pool, c);
	return r;
}
