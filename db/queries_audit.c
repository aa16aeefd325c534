/*
 * db/queries_audit.c -- the audit chain's rows (db/db_audit.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db/db_audit.h"
#include "db/db_export.h"
#include "db/db_int.h"

/* Rows per round trip when reading records. */
#define WALK_BATCH 10000

const char *const db_audit_field_names[DB_AUDIT_NFIELDS] = {
    "at",	   "event_type", "outcome",	"reason",
    "identity",	   "idp",	 "meeting_id",	"matched_group",
    "source_addr", "forwarded_for", "user_agent", "request_id",
    "node",	   "code_ok",	 "member_ok",	"details",
};

/* The canonical text of each field (db_audit.h), table alias a: the
 * export prints the same (db_export.h). */
#define FIELDS_SQL DB_AUDIT_FIELDS_SQL

struct db_audit_leader {
	PGconn *pg;
};

static int
res_ok(const PGresult *res)
{
	return res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK ||
	                       PQresultStatus(res) == PGRES_COMMAND_OK);
}

static int
fail_res(PGconn *pg, PGresult *res, const char *what, char *err, size_t errlen)
{
	int r = db_result_err(pg, res, what, err, errlen);

	PQclear(res);
	return r == 0 ? DB_EQUERY : r;
}

static int
exec_ok(PGconn *pg, const char *sql, const char *what, char *err,
        size_t errlen)
{
	PGresult *res = PQexec(pg, sql);

	if (!res_ok(res))
		return fail_res(pg, res, what, err, errlen);
	PQclear(res);
	return 0;
}

static void
rollback(PGconn *pg)
{
	PQclear(PQexec(pg, "ROLLBACK"));
}

static int
parse_ll(const char *s, long long *out)
{
	char *end;

	*out = strtoll(s, &end, 10);
	return (*s == '\0' || *end != '\0') ? -1 : 0;
}

static int
hex32(const char *s, unsigned char out[32])
{
	size_t n = 0;

	return (sodium_hex2bin(out, 32, s, strlen(s), NULL, &n, NULL) != 0 ||
	        n != 32)
	           ? -1
	           : 0;
}

/* ---- the sealer ---------------------------------------------------------- */

int
db_audit_leader_try(const char *conninfo, int connect_timeout_s,
                    struct db_audit_leader **out, char *err, size_t errlen)
{
	struct db_params p;
	PGconn *pg = NULL;
	PGresult *res;
	int r;

	*out = NULL;
	if ((r = db_params_build(conninfo, connect_timeout_s, 60000,
	                         "roomgate-sealer", &p, err, errlen)) != 0)
		return r;
	r = db_connect(&p, &pg, err, errlen);
	db_params_free(&p);
	if (r != 0)
		return r;
	res = PQexec(pg, "SELECT pg_try_advisory_lock(" DB_AUDIT_LOCK_KEY ")");
	if (!res_ok(res) || PQntuples(res) != 1) {
		r = fail_res(pg, res, "trying the sealer lock", err, errlen);
		PQfinish(pg);
		return r;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		PQclear(res);
		PQfinish(pg); /* another node seals */
		return 0;
	}
	PQclear(res);
	*out = calloc(1, sizeof(**out));
	if (*out == NULL) {
		PQfinish(pg);
		return DB_ENOMEM;
	}
	(*out)->pg = pg;
	return 1;
}

int
db_audit_leader_alive(struct db_audit_leader *l, char *err, size_t errlen)
{
	return exec_ok(l->pg, "SELECT 1", "checking the sealer lock", err,
	               errlen);
}

void
db_audit_leader_release(struct db_audit_leader *l)
{
	if (l == NULL)
		return;
	PQfinish(l->pg); /* ends the lock */
	free(l);
}

int
db_audit_head(struct db_audit_leader *l, long long *seq, long long *pos,
              unsigned char hash[32], char *err, size_t errlen)
{
	PGresult *res;

	*seq = *pos = 0;
	memset(hash, 0, 32);
	/*
	 * The newest of the chain's last entry and the newest signed
	 * checkpoint: a purge up to the newest checkpoint leaves audit_chain
	 * empty, and the chain must go on from that checkpoint, not from 0.
	 */
	res = PQexec(l->pg, "SELECT seq, pos, encode(hash, 'hex') FROM ("
	                    "(SELECT seq, pos, hash FROM audit_chain ORDER BY "
	                    "seq DESC LIMIT 1) UNION ALL (SELECT last_seq, "
	                    "count, last_hash FROM audit_checkpoints ORDER BY "
	                    "last_seq DESC LIMIT 1)) h ORDER BY seq DESC LIMIT "
	                    "1");
	if (!res_ok(res))
		return fail_res(l->pg, res, "reading the chain head", err,
		                errlen);
	if (PQntuples(res) == 1 &&
	    (parse_ll(PQgetvalue(res, 0, 0), seq) != 0 ||
	     parse_ll(PQgetvalue(res, 0, 1), pos) != 0 ||
	     hex32(PQgetvalue(res, 0, 2), hash) != 0)) {
		PQclear(res);
		db_seterr(err, errlen, "the chain head is malformed");
		return DB_EQUERY;
	}
	PQclear(res);
	return 0;
}

/* Fills r's fields from columns first.. of row i. */
static void
row_fields(const PGresult *res, int i, int first, struct db_audit_row *r)
{
	for (int k = 0; k < DB_AUDIT_NFIELDS; k++) {
		if (PQgetisnull(res, i, first + k)) {
			r->f[k] = NULL;
			r->len[k] = 0;
		} else {
			r->f[k] = PQgetvalue(res, i, first + k);
			r->len[k] = (size_t)PQgetlength(res, i, first + k);
		}
	}
}

int
db_audit_pending(struct db_audit_leader *l, long long after, int limit,
                 unsigned long long *xmin, unsigned long long *xmax,
                 db_audit_row_fn cb, void *arg, char *err, size_t errlen)
{
	char sa[24], sl[16];
	const char *v[2] = {sa, sl};
	struct db_audit_row row;
	PGresult *res = NULL;
	int r, n;

	snprintf(sa, sizeof(sa), "%lld", after);
	snprintf(sl, sizeof(sl), "%d", limit);
	/* One snapshot for both statements. */
	if ((r = exec_ok(l->pg,
	                 "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	                 "starting the sealer's read", err, errlen)) != 0)
		return r;
	res = PQexec(l->pg, "SELECT pg_snapshot_xmin(pg_current_snapshot()), "
	                    "pg_snapshot_xmax(pg_current_snapshot())");
	if (!res_ok(res) || PQntuples(res) != 1) {
		r = fail_res(l->pg, res, "reading the snapshot", err, errlen);
		goto out;
	}
	*xmin = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	*xmax = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	res = PQexecParams(l->pg,
	                   "SELECT a.seq, " FIELDS_SQL " FROM audit_log a "
	                   "WHERE a.seq > $1::bigint ORDER BY a.seq "
	                   "LIMIT $2::int",
	                   2, NULL, v, NULL, NULL, 0);
	if (!res_ok(res)) {
		r = fail_res(l->pg, res, "reading new audit records", err,
		             errlen);
		goto out;
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		memset(&row, 0, sizeof(row));
		if (parse_ll(PQgetvalue(res, i, 0), &row.seq) != 0)
			continue;
		row.in_log = 1;
		row_fields(res, i, 1, &row);
		if ((r = cb(arg, &row)) != 0)
			break;
	}
	PQclear(res);
out:
	rollback(l->pg);
	return r;
}

/* Appends "{a,b,c}" pieces: a bounded char array that grows. */
struct arr {
	char *p;
	size_t len, cap;
};

static int
arr_add(struct arr *a, const char *s, size_t n)
{
	if (a->len + n + 2 > a->cap) {
		size_t cap = (a->cap ? a->cap * 2 : 4096) + n;
		char *q = realloc(a->p, cap);

		if (q == NULL)
			return -1;
		a->p = q;
		a->cap = cap;
	}
	memcpy(a->p + a->len, s, n);
	a->len += n;
	a->p[a->len] = '\0';
	return 0;
}

int
db_audit_append(struct db_audit_leader *l, const struct db_audit_link *lk,
                size_t n, struct db_audit_ckpt *c, char *err, size_t errlen)
{
	struct arr seqs = {0}, poss = {0}, chs = {0}, hs = {0};
	char num[48], hex[65];
	PGresult *res = NULL;
	int r = DB_ENOMEM, fail = 0;

	for (size_t i = 0; i < n; i++) {
		const char *sep = i ? "," : "{";
		int k;

		k = snprintf(num, sizeof(num), "%s%lld", sep, lk[i].seq);
		fail |= arr_add(&seqs, num, (size_t)k);
		k = snprintf(num, sizeof(num), "%s%lld", sep, lk[i].pos);
		fail |= arr_add(&poss, num, (size_t)k);
		fail |= arr_add(&chs, sep, 1);
		sodium_bin2hex(hex, sizeof(hex), lk[i].content_hash, 32);
		fail |= arr_add(&chs, hex, 64);
		fail |= arr_add(&hs, sep, 1);
		sodium_bin2hex(hex, sizeof(hex), lk[i].hash, 32);
		fail |= arr_add(&hs, hex, 64);
	}
	if (n == 0) {
		fail |= arr_add(&seqs, "{", 1) | arr_add(&poss, "{", 1) |
		        arr_add(&chs, "{", 1) | arr_add(&hs, "{", 1);
	}
	fail |= arr_add(&seqs, "}", 1) | arr_add(&poss, "}", 1) |
	        arr_add(&chs, "}", 1) | arr_add(&hs, "}", 1);
	if (fail) {
		db_seterr(err, errlen, "out of memory building the chain");
		goto done;
	}
	if ((r = exec_ok(l->pg, "BEGIN", "starting the chain append", err,
	                 errlen)) != 0)
		goto done;
	if (n > 0) {
		const char *v[4] = {seqs.p, poss.p, chs.p, hs.p};

		res = PQexecParams(
		    l->pg,
		    "INSERT INTO audit_chain (seq, pos, content_hash, hash) "
		    "SELECT s, p, decode(ch, 'hex'), decode(h, 'hex') FROM "
		    "unnest($1::bigint[], $2::bigint[], $3::text[], "
		    "$4::text[]) AS t(s, p, ch, h)",
		    4, NULL, v, NULL, NULL, 0);
		if (!res_ok(res)) {
			r = fail_res(l->pg, res, "appending to the chain", err,
			             errlen);
			res = NULL;
			goto fail;
		}
		PQclear(res);
		res = NULL;
	}
	if (c != NULL) {
		char sseq[24], scount[24], lh[65], sig[129];
		const char *v[8] = {c->kid, sseq,    scount, lh,
		                    c->time, c->node, c->body, sig};

		snprintf(sseq, sizeof(sseq), "%lld", c->last_seq);
		snprintf(scount, sizeof(scount), "%lld", c->count);
		sodium_bin2hex(lh, sizeof(lh), c->last_hash, 32);
		sodium_bin2hex(sig, sizeof(sig), c->sig, 64);
		res = PQexecParams(
		    l->pg,
		    "INSERT INTO audit_checkpoints (kid, last_seq, count, "
		    "last_hash, created_at, node, body, sig) VALUES ($1, "
		    "$2::bigint, $3::bigint, decode($4, 'hex'), "
		    "$5::timestamptz, left($6, 256), $7, decode($8, 'hex')) "
		    "RETURNING id",
		    8, NULL, v, NULL, NULL, 0);
		if (!res_ok(res) || PQntuples(res) != 1 ||
		    parse_ll(PQgetvalue(res, 0, 0), &c->id) != 0) {
			r = fail_res(l->pg, res, "writing a checkpoint", err,
			             errlen);
			res = NULL;
			goto fail;
		}
		PQclear(res);
		res = NULL;
	}
	r = exec_ok(l->pg, "COMMIT", "committing the chain", err, errlen);
	goto done;
fail:
	rollback(l->pg);
done:
	free(seqs.p);
	free(poss.p);
	free(chs.p);
	free(hs.p);
	return r;
}

int
db_audit_purge(struct db_pool *pool, const char *cutoff, const char *node,
               long long *purged, long long *upto, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res = NULL;
	const char *v[2] = {cutoff, node};
	int r;

	*purged = *upto = 0;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	/*
	 * The newest checkpoint below the first record at or after the
	 * cutoff (records are nearly in time order by seq; audit_purge()
	 * checks every one of them), beyond the last purge.
	 */
	res = PQexecParams(
	    db_conn_pg(c),
	    "WITH keep AS (SELECT coalesce((SELECT seq FROM audit_log WHERE "
	    "at >= $1::timestamptz ORDER BY at LIMIT 1), (SELECT max(seq) + "
	    "1 FROM audit_log), 0) AS s), done AS (SELECT coalesce(max("
	    "upto_seq), 0) AS u FROM audit_purges), pick AS (SELECT k.id, "
	    "k.last_seq FROM audit_checkpoints k, keep, done WHERE k.last_seq "
	    "< keep.s AND k.last_seq > done.u ORDER BY k.last_seq DESC LIMIT "
	    "1) SELECT pick.last_seq, audit_purge(pick.id, $1::timestamptz, "
	    "$2) FROM pick",
	    2, NULL, v, NULL, NULL, 0);
	if (!res_ok(res)) {
		r = fail_res(db_conn_pg(c), res, "purging old audit records",
		             err, errlen);
		res = NULL;
		goto out;
	}
	if (PQntuples(res) == 1) {
		parse_ll(PQgetvalue(res, 0, 0), upto);
		parse_ll(PQgetvalue(res, 0, 1), purged);
	}
out:
	PQclear(res);
	db_release(pool, c);
	return r;
}

/* ---- verification ---------------------------------------------------------- */

int
db_audit_anchor(struct db_pool *pool, long long *ckpt_id, long long *upto,
                char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res;
	int r;

	*ckpt_id = *upto = 0;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = PQexec(db_conn_pg(c), "SELECT checkpoint_id, upto_seq FROM "
	                            "audit_purges ORDER BY upto_seq DESC LIMIT "
	                            "1");
	if (!res_ok(res)) {
		r = fail_res(db_conn_pg(c), res, "reading the purges", err,
		             errlen);
		db_release(pool, c);
		return r;
	}
	if (PQntuples(res) == 1) {
		parse_ll(PQgetvalue(res, 0, 0), ckpt_id);
		parse_ll(PQgetvalue(res, 0, 1), upto);
	}
	PQclear(res);
	db_release(pool, c);
	return 0;
}

void
db_audit_ckpts_free(struct db_audit_ckpt *c, size_t n)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(c[i].body);
		free((char *)c[i].node);
		free((char *)c[i].time);
	}
	free(c);
}

int
db_audit_ckpts(struct db_pool *pool, long long min_seq, long long also_id,
               struct db_audit_ckpt **out, size_t *n, char *err,
               size_t errlen)
{
	struct db_conn *c = NULL;
	struct db_audit_ckpt *a = NULL;
	PGresult *res;
	char smin[24], sid[24];
	const char *v[2] = {smin, sid};
	int r, rows;

	*out = NULL;
	*n = 0;
	snprintf(smin, sizeof(smin), "%lld", min_seq);
	snprintf(sid, sizeof(sid), "%lld", also_id);
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = PQexecParams(db_conn_pg(c),
	                   "SELECT id, kid, last_seq, count, encode(last_hash, "
	                   "'hex'), body, encode(sig, 'hex'), coalesce(node, "
	                   "'') FROM audit_checkpoints WHERE last_seq > "
	                   "$1::bigint OR id = $2::bigint ORDER BY last_seq",
	                   2, NULL, v, NULL, NULL, 0);
	if (!res_ok(res)) {
		r = fail_res(db_conn_pg(c), res, "reading checkpoints", err,
		             errlen);
		db_release(pool, c);
		return r;
	}
	rows = PQntuples(res);
	a = calloc((size_t)rows + 1, sizeof(*a));
	if (a == NULL) {
		r = DB_ENOMEM;
		db_seterr(err, errlen, "out of memory reading checkpoints");
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		size_t sl = 0;
		const char *sig = PQgetvalue(res, i, 6);

		parse_ll(PQgetvalue(res, i, 0), &a[i].id);
		snprintf(a[i].kid, sizeof(a[i].kid), "%s",
		         PQgetvalue(res, i, 1));
		parse_ll(PQgetvalue(res, i, 2), &a[i].last_seq);
		parse_ll(PQgetvalue(res, i, 3), &a[i].count);
		a[i].body = strdup(PQgetvalue(res, i, 5));
		a[i].node = strdup(PQgetvalue(res, i, 7));
		if (a[i].body == NULL || a[i].node == NULL ||
		    hex32(PQgetvalue(res, i, 4), a[i].last_hash) != 0 ||
		    sodium_hex2bin(a[i].sig, 64, sig, strlen(sig), NULL, &sl,
		                   NULL) != 0 ||
		    sl != 64) {
			db_audit_ckpts_free(a, (size_t)i + 1);
			a = NULL;
			r = DB_EQUERY;
			db_seterr(err, errlen,
			          "checkpoint row %d is malformed (or out of "
			          "memory)",
			          i);
			goto out;
		}
	}
	*out = a;
	*n = (size_t)rows;
out:
	PQclear(res);
	db_release(pool, c);
	return r;
}

int
db_audit_walk(struct db_pool *pool, long long after, long long upto,
              db_audit_row_fn cb, void *arg, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	struct db_audit_row row;
	PGresult *res = NULL;
	PGconn *pg;
	char sa[24], su[24], sl[16];
	const char *v[3] = {sa, su, sl};
	int r, n, stop = 0;

	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	pg = db_conn_pg(c);
	if ((r = exec_ok(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	                 "starting the verification read", err, errlen)) != 0)
		goto out;
	/* No statement timeout for this long read (local to the
	 * transaction). */
	if ((r = exec_ok(pg, "SET LOCAL statement_timeout = 0",
	                 "lifting the statement timeout", err, errlen)) != 0)
		goto out;
	snprintf(su, sizeof(su), "%lld", upto > 0 ? upto : 9223372036854775807LL);
	snprintf(sl, sizeof(sl), "%d", WALK_BATCH);
	while (!stop) {
		snprintf(sa, sizeof(sa), "%lld", after);
		res = PQexecParams(
		    pg,
		    "SELECT coalesce(a.seq, k.seq), a.seq IS NOT NULL, k.seq IS "
		    "NOT NULL, " FIELDS_SQL ", k.pos, encode(k.content_hash, "
		    "'hex'), encode(k.hash, 'hex') FROM (SELECT * FROM "
		    "audit_log WHERE seq > $1::bigint AND seq <= $2::bigint "
		    "ORDER BY seq LIMIT $3::int) a FULL JOIN (SELECT * FROM "
		    "audit_chain WHERE seq > $1::bigint AND seq <= $2::bigint "
		    "ORDER BY seq LIMIT $3::int) k ON a.seq = k.seq ORDER BY 1 "
		    "LIMIT $3::int",
		    3, NULL, v, NULL, NULL, 0);
		if (!res_ok(res)) {
			r = fail_res(pg, res, "reading audit records", err,
			             errlen);
			res = NULL;
			goto out;
		}
		n = PQntuples(res);
		for (int i = 0; i < n && !stop; i++) {
			memset(&row, 0, sizeof(row));
			parse_ll(PQgetvalue(res, i, 0), &row.seq);
			row.in_log = PQgetvalue(res, i, 1)[0] == 't';
			row.in_chain = PQgetvalue(res, i, 2)[0] == 't';
			if (row.in_log)
				row_fields(res, i, 3, &row);
			if (row.in_chain &&
			    (parse_ll(PQgetvalue(res, i, 3 + DB_AUDIT_NFIELDS),
			              &row.pos) != 0 ||
			     hex32(PQgetvalue(res, i, 4 + DB_AUDIT_NFIELDS),
			           row.content_hash) != 0 ||
			     hex32(PQgetvalue(res, i, 5 + DB_AUDIT_NFIELDS),
			           row.hash) != 0)) {
				r = DB_EQUERY;
				db_seterr(err, errlen,
				          "chain entry of seq %lld is malformed",
				          row.seq);
				stop = 1;
				break;
			}
			after = row.seq;
			if ((r = cb(arg, &row)) != 0)
				stop = 1;
		}
		PQclear(res);
		res = NULL;
		if (n < WALK_BATCH)
			break;
	}
out:
	PQclear(res);
	rollback(pg);
	db_release(pool, c);
	return r;
}

int
db_audit_find_content(struct db_pool *pool, const unsigned char ch[32],
                      long long near, long long *seq, char *err,
                      size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res;
	char hex[65], sn[24];
	const char *v[2] = {hex, sn};
	int r;

	*seq = 0;
	sodium_bin2hex(hex, sizeof(hex), ch, 32);
	snprintf(sn, sizeof(sn), "%lld", near);
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = PQexecParams(db_conn_pg(c),
	                   "SELECT seq FROM audit_chain WHERE seq BETWEEN "
	                   "$2::bigint - 1000000 AND $2::bigint + 1000000 AND "
	                   "content_hash = decode($1, 'hex') ORDER BY "
	                   "abs(seq - $2::bigint) LIMIT 1",
	                   2, NULL, v, NULL, NULL, 0);
	if (!res_ok(res)) {
		r = fail_res(db_conn_pg(c), res, "searching the chain", err,
		             errlen);
		db_release(pool, c);
		return r;
	}
	if (PQntuples(res) == 1)
		parse_ll(PQgetvalue(res, 0, 0), seq);
	PQclear(res);
	db_release(pool, c);
	return 0;
}

static int
one_ll(struct db_pool *pool, const char *sql, const char *param,
       long long *out, const char *what, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res;
	const char *v[1] = {param};
	int r;

	*out = 0;
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = PQexecParams(db_conn_pg(c), sql, param ? 1 : 0, NULL, v, NULL,
	                   NULL, 0);
	if (!res_ok(res)) {
		r = fail_res(db_conn_pg(c), res, what, err, errlen);
		db_release(pool, c);
		return r;
	}
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		parse_ll(PQgetvalue(res, 0, 0), out);
	PQclear(res);
	db_release(pool, c);
	return 0;
}

int
db_audit_seq_at(struct db_pool *pool, const char *time, int last,
                long long *seq, char *err, size_t errlen)
{
	return one_ll(pool,
	              last ? "SELECT seq FROM audit_log WHERE at <= "
	                     "$1::timestamptz ORDER BY at DESC LIMIT 1"
	                   : "SELECT seq FROM audit_log WHERE at >= "
	                     "$1::timestamptz ORDER BY at LIMIT 1",
	              time, seq, "finding the record at that time", err,
	              errlen);
}

int
db_audit_ckpt_before(struct db_pool *pool, long long seq, long long *last_seq,
                     char *err, size_t errlen)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", seq);
	return one_ll(pool,
	              "SELECT coalesce(max(last_seq), 0) FROM audit_checkpoints "
	              "WHERE last_seq < $1::bigint",
	              s, last_seq, "finding the checkpoint before --from", err,
	              errlen);
}

int
db_audit_max_chained(struct db_pool *pool, long long *seq, char *err,
                     size_t errlen)
{
	return one_ll(pool, "SELECT max(seq) FROM audit_chain", NULL, seq,
	              "reading the chain head", err, errlen);
}

int
db_audit_max_ckpt(struct db_pool *pool, long long *seq, char *err,
                  size_t errlen)
{
	return one_ll(pool, "SELECT max(last_seq) FROM audit_checkpoints",
	              NULL, seq, "reading the newest checkpoint", err, errlen);
}

#define UTC_SQL(col)                                                       \
	"to_char(" col " AT TIME ZONE 'UTC', "                              \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static void
copy_col(const PGresult *res, int col, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s",
	         PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col));
}

int
db_audit_purge_newest(struct db_pool *pool, int retention_days,
                      struct db_audit_purge *out, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res;
	char days[16];
	const char *v[1] = {days};
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(days, sizeof(days), "%d",
	         retention_days > 0 ? retention_days : 0);
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	/*
	 * The newest purge, its checkpoint, and the audit.purge record that
	 * the purge wrote after deleting (the first one after upto_seq whose
	 * details name the same range, checkpoint, count and cutoff); and
	 * how many purges name a checkpoint that ends elsewhere.
	 */
	res = PQexecParams(
	    db_conn_pg(c),
	    "WITH p AS (SELECT * FROM audit_purges ORDER BY upto_seq DESC, id "
	    "DESC LIMIT 1) SELECT p.id, p.upto_seq, p.checkpoint_id, "
	    "coalesce(k.last_seq, -1), p.records, " UTC_SQL("p.cutoff") ", "
	    UTC_SQL("p.at") ", coalesce(r.seq, 0), r.seq IS NOT NULL AND "
	    "EXISTS (SELECT 1 FROM audit_chain x WHERE x.seq = r.seq), "
	    UTC_SQL("r.at") ", coalesce(p.cutoff <= r.at - make_interval("
	    "days => $1::int), false), (SELECT count(*) FROM audit_purges q "
	    "LEFT JOIN audit_checkpoints y ON y.id = q.checkpoint_id WHERE "
	    "y.last_seq IS DISTINCT FROM q.upto_seq) FROM p LEFT JOIN "
	    "audit_checkpoints k ON k.id = p.checkpoint_id LEFT JOIN LATERAL "
	    "(SELECT a.seq, a.at FROM audit_log a WHERE a.seq > p.upto_seq "
	    "AND a.event_type = 'audit.purge' AND a.details->'upto_seq' = "
	    "to_jsonb(p.upto_seq) AND a.details->'checkpoint' = "
	    "to_jsonb(p.checkpoint_id) AND a.details->'records' = "
	    "to_jsonb(p.records) AND CASE WHEN a.details->>'cutoff' ~ "
	    "'^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]{8,15}([+-][0-9:]{2,5}|Z)$' "
	    "THEN (a.details->>'cutoff')::timestamptz = p.cutoff ELSE false "
	    "END ORDER BY a.seq LIMIT 1) r ON true",
	    1, NULL, v, NULL, NULL, 0);
	if (!res_ok(res)) {
		r = fail_res(db_conn_pg(c), res, "reading the purges", err,
		             errlen);
		db_release(pool, c);
		return r;
	}
	if (PQntuples(res) == 1) {
		parse_ll(PQgetvalue(res, 0, 0), &out->id);
		parse_ll(PQgetvalue(res, 0, 1), &out->upto_seq);
		parse_ll(PQgetvalue(res, 0, 2), &out->checkpoint_id);
		parse_ll(PQgetvalue(res, 0, 3), &out->ckpt_last_seq);
		parse_ll(PQgetvalue(res, 0, 4), &out->records);
		copy_col(res, 5, out->cutoff, sizeof(out->cutoff));
		copy_col(res, 6, out->at, sizeof(out->at));
		parse_ll(PQgetvalue(res, 0, 7), &out->rec_seq);
		out->rec_sealed = PQgetvalue(res, 0, 8)[0] == 't';
		copy_col(res, 9, out->rec_at, sizeof(out->rec_at));
		out->cutoff_ok = PQgetvalue(res, 0, 10)[0] == 't';
		parse_ll(PQgetvalue(res, 0, 11), &out->inconsistent);
	}
	PQclear(res);
	db_release(pool, c);
	return 0;
}

int
db_audit_ckpt_at(struct db_pool *pool, long long last_seq,
                 struct db_audit_ckpt *out, int *found, char *err,
                 size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res;
	char s[24];
	const char *v[1] = {s};
	size_t sl = 0;
	const char *sig;
	int r;

	memset(out, 0, sizeof(*out));
	*found = 0;
	snprintf(s, sizeof(s), "%lld", last_seq);
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	res = PQexecParams(db_conn_pg(c),
	                   "SELECT id, kid, count, encode(last_hash, 'hex'), "
	                   "body, encode(sig, 'hex') FROM audit_checkpoints "
	                   "WHERE last_seq = $1::bigint",
	                   1, NULL, v, NULL, NULL, 0);
	if (!res_ok(res)) {
		r = fail_res(db_conn_pg(c), res, "reading a checkpoint", err,
		             errlen);
		db_release(pool, c);
		return r;
	}
	if (PQntuples(res) == 1) {
		sig = PQgetvalue(res, 0, 5);
		out->last_seq = last_seq;
		parse_ll(PQgetvalue(res, 0, 0), &out->id);
		snprintf(out->kid, sizeof(out->kid), "%s",
		         PQgetvalue(res, 0, 1));
		parse_ll(PQgetvalue(res, 0, 2), &out->count);
		out->body = strdup(PQgetvalue(res, 0, 4));
		if (out->body == NULL ||
		    hex32(PQgetvalue(res, 0, 3), out->last_hash) != 0 ||
		    sodium_hex2bin(out->sig, 64, sig, strlen(sig), NULL, &sl,
		                   NULL) != 0 ||
		    sl != 64) {
			free(out->body);
			out->body = NULL;
			r = DB_EQUERY;
			db_seterr(err, errlen,
			          "the checkpoint at seq %lld is malformed (or "
			          "out of memory)",
			          last_seq);
		} else {
			*found = 1;
		}
	}
	PQclear(res);
	db_release(pool, c);
	return r;
}

int
db_audit_role_check(struct db_pool *pool, int *separated, char *owner,
                    size_t ownerlen, char *err, size_t errlen)
{
	struct db_conn *c = NULL;
	PGresult *res;
	int r;

	*separated = 0;
	if (ownerlen > 0)
		owner[0] = '\0';
	if ((r = db_acquire(pool, &c, err, errlen)) != 0)
		return r;
	/* Owner of audit_log, or a member of its owner, or a superuser:
	 * this role can switch the triggers off. */
	res = PQexec(db_conn_pg(c),
	             "SELECT r.rolsuper OR pg_has_role(current_user, "
	             "c.relowner, 'MEMBER'), pg_get_userbyid(c.relowner) FROM "
	             "pg_class c, pg_roles r WHERE c.oid = 'audit_log'::regclass "
	             "AND r.rolname = current_user");
	if (!res_ok(res) || PQntuples(res) != 1) {
		r = fail_res(db_conn_pg(c), res, "checking the audit roles",
		             err, errlen);
		db_release(pool, c);
		return r;
	}
	*separated = PQgetvalue(res, 0, 0)[0] != 't';
	if (ownerlen > 0)
		snprintf(owner, ownerlen, "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	db_release(pool, c);
	return 0;
}
