/*
 * db/migrate.c -- applies the SQL migrations built into the binary.
 *
 * Several nodes may start at once: a session-level advisory lock makes
 * them take turns, and the one that comes second finds everything applied.
 * Each migration runs in one transaction together with its row in
 * schema_migrations, so a migration is either applied and recorded or
 * neither. Consequently a migration file must not contain BEGIN/COMMIT, nor
 * statements that refuse to run in a transaction (CREATE INDEX
 * CONCURRENTLY, ALTER TYPE ... ADD VALUE before use): that is checked.
 *
 * The recorded checksum (SHA-256 of the SQL) catches a migration edited
 * after it shipped; a recorded version this binary does not know means the
 * database was migrated by a newer roomgate, and an old binary must not
 * write to a schema it does not understand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db/db_int.h"

/* pg_advisory_lock key: the bytes of "roomgate" as a big-endian int64.
 * Fixed forever: every version of roomgate must use the same one. */
#define DB_MIGRATE_LOCK_KEY "8245931958415225957"

#define DB_MIGRATE_CONNECT_TIMEOUT_S 0 /* the conninfo's, else 10 s */

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY CHECK (version > 0),"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

void
db_migration_checksum(const struct db_migration *m, char hex[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)m->sql, m->sql_len);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

/* One statement with text parameters; *resp owned by the caller. */
static int
exec_params(PGconn *pg, const char *sql, int nparams, const char *const *params,
            ExecStatusType want, const char *what, PGresult **resp, char *err,
            size_t errlen)
{
	PGresult *res;
	int r = 0;

	res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != want)
		r = db_result_err(pg, res, what, err, errlen);
	if (r == 0 && resp != NULL)
		*resp = res;
	else
		PQclear(res);
	return r;
}

static void
rollback_quietly(PGconn *pg)
{
	if (PQstatus(pg) == CONNECTION_OK &&
	    PQtransactionStatus(pg) != PQTRANS_IDLE)
		PQclear(
		    PQexecParams(pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0));
}

/* The migration's failure as "migration 0002_x failed at line 7: why". */
static int
migration_err(PGconn *pg, const PGresult *res, const struct db_migration *m,
              char *err, size_t errlen)
{
	char what[160];
	const char *pos = NULL;
	int line = 0;

	if (res != NULL)
		pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	if (pos != NULL) {
		char *end;
		long p = strtol(pos, &end, 10);

		if (end != pos && *end == '\0')
			line = db_sql_line_of(m->sql, m->sql_len, p);
	}
	if (line > 0)
		snprintf(what, sizeof(what), "migration %s failed at line %d",
		         m->name, line);
	else
		snprintf(what, sizeof(what), "migration %s failed", m->name);
	return db_result_err(pg, res, what, err, errlen);
}

static int
apply_one(PGconn *pg, const struct db_migration *m, char *err, size_t errlen)
{
	char hex[65], ver[16];
	const char *params[3];
	PGresult *res = NULL;
	ExecStatusType st;
	int r;

	db_migration_checksum(m, hex);
	snprintf(ver, sizeof(ver), "%d", m->version);
	if ((r = exec_params(pg, "BEGIN", 0, NULL, PGRES_COMMAND_OK,
	                     "starting a migration", NULL, err, errlen)) != 0)
		goto out;
	/* Trusted text compiled into the binary, several statements, no
	 * parameters: the one place PQexec is right. */
	res = PQexec(pg, m->sql);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		r = migration_err(pg, res, m, err, errlen);
		goto out;
	}
	if (PQtransactionStatus(pg) != PQTRANS_INTRANS) {
		db_seterr(err, errlen,
		          "migration %s ended its own transaction: a migration "
		          "must not contain BEGIN, COMMIT or ROLLBACK (each "
		          "runs in one transaction); check what it applied",
		          m->name);
		r = DB_EQUERY;
		goto out;
	}
	params[0] = ver;
	params[1] = m->name;
	params[2] = hex;
	if ((r = exec_params(pg,
	                     "INSERT INTO schema_migrations "
	                     "(version, name, checksum) "
	                     "VALUES ($1::integer, $2, $3)",
	                     3, params, PGRES_COMMAND_OK,
	                     "recording a migration", NULL, err, errlen)) != 0)
		goto out;
	PQclear(res);
	res = PQexecParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK ||
	    PQtransactionStatus(pg) != PQTRANS_IDLE)
		r = migration_err(pg, res, m, err, errlen);
out:
	PQclear(res);
	if (r != 0)
		rollback_quietly(pg);
	return r;
}

static const struct db_migration *
find_migration(const struct db_migration *list, size_t n, long version)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (list[i].version == version)
			return &list[i];
	return NULL;
}

/* Compares what the database recorded with the list: recorded[i] is set
 * for each list[i] found, *max_recorded gets the highest version. */
static int
check_recorded(PGconn *pg, const struct db_migration *list, size_t n,
               unsigned char *recorded, long *max_recorded, char *err,
               size_t errlen)
{
	PGresult *res = NULL;
	const struct db_migration *m;
	char hex[65];
	int r, i, rows;
	long latest = n > 0 ? list[n - 1].version : 0;

	*max_recorded = 0;
	if ((r = exec_params(pg,
	                     "SELECT version, checksum FROM schema_migrations "
	                     "ORDER BY version",
	                     0, NULL, PGRES_TUPLES_OK,
	                     "reading schema_migrations", &res, err, errlen)) !=
	    0)
		goto out;
	rows = PQntuples(res);
	for (i = 0; i < rows; i++) {
		const char *v = PQgetvalue(res, i, 0);
		const char *sum = PQgetvalue(res, i, 1);
		char *end;
		long version = strtol(v, &end, 10);

		r = DB_ESCHEMA;
		if (end == v || *end != '\0') {
			db_seterr(err, errlen,
			          "schema_migrations holds a bad version %.20s",
			          v);
			goto out;
		}
		if (version > *max_recorded)
			*max_recorded = version;
		if (version > latest) {
			db_seterr(err, errlen,
			          "the database schema is at migration %04ld, "
			          "newer than this roomgate binary knows (it "
			          "has up to %04ld) — run a newer roomgate "
			          "against this database; an old binary must "
			          "not use a newer schema",
			          version, latest);
			goto out;
		}
		if ((m = find_migration(list, n, version)) == NULL) {
			db_seterr(err, errlen,
			          "migration %04ld is recorded in the database "
			          "but not built into this roomgate binary — "
			          "was a migration file removed or renumbered?",
			          version);
			goto out;
		}
		recorded[m - list] = 1;
		db_migration_checksum(m, hex);
		if (strcmp(sum, hex) != 0) {
			db_seterr(
			    err, errlen,
			    "migration %04ld was changed after it was "
			    "applied (%s: checksum %.12s... in the "
			    "database, %.12s... in this binary) — restore "
			    "the original file and put the change in a "
			    "new migration",
			    version, m->name, sum, hex);
			goto out;
		}
		r = 0;
	}
out:
	PQclear(res);
	return r;
}

static int
check_list(const struct db_migration *list, size_t n, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (list[i].version <= 0 ||
		    (i > 0 && list[i].version <= list[i - 1].version) ||
		    list[i].sql == NULL ||
		    strlen(list[i].sql) != list[i].sql_len) {
			db_seterr(err, errlen,
			          "built-in migration list is broken at entry "
			          "%zu (versions must be > 0, increasing, SQL "
			          "without NUL bytes)",
			          i);
			return DB_EINVAL;
		}
	}
	return 0;
}

int
db_migrate_list(const char *conninfo, const struct db_migration *list, size_t n,
                int *applied, char *err, size_t errlen)
{
	struct db_params params;
	PGconn *pg = NULL;
	const char *lock_param[1] = {DB_MIGRATE_LOCK_KEY};
	unsigned char *recorded = NULL;
	long max_recorded = 0;
	size_t i;
	int r, done = 0, locked = 0;

	memset(&params, 0, sizeof(params));
	if (applied != NULL)
		*applied = 0;
	if ((r = check_list(list, n, err, errlen)) != 0)
		goto out;
	if (sodium_init() < 0) {
		db_seterr(err, errlen, "libsodium failed to initialize");
		r = DB_EINVAL;
		goto out;
	}
	/* No statement_timeout: a migration may rewrite a big table. */
	if ((r = db_params_build(conninfo, DB_MIGRATE_CONNECT_TIMEOUT_S, 0,
	                         "roomgate-migrate", &params, err, errlen)) !=
	    0)
		goto out;
	if ((r = db_connect(&params, &pg, err, errlen)) != 0)
		goto out;
	if ((r = exec_params(pg, "SELECT pg_advisory_lock($1::bigint)", 1,
	                     lock_param, PGRES_TUPLES_OK,
	                     "taking the migration lock", NULL, err, errlen)) !=
	    0)
		goto out;
	locked = 1;
	if ((r = exec_params(pg, create_table_sql, 0, NULL, PGRES_COMMAND_OK,
	                     "creating schema_migrations", NULL, err,
	                     errlen)) != 0)
		goto out;
	if ((recorded = calloc(n + 1, 1)) == NULL) {
		db_seterr(err, errlen, "out of memory");
		r = DB_ENOMEM;
		goto out;
	}
	if ((r = check_recorded(pg, list, n, recorded, &max_recorded, err,
	                        errlen)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (recorded[i])
			continue;
		if (list[i].version < max_recorded) {
			db_seterr(err, errlen,
			          "migration %s is not applied although the "
			          "later migration %04ld is — it was added out "
			          "of order; renumber it after %04ld",
			          list[i].name, max_recorded, max_recorded);
			r = DB_ESCHEMA;
			goto out;
		}
		if ((r = apply_one(pg, &list[i], err, errlen)) != 0)
			goto out;
		done++;
	}
out:
	if (locked && PQstatus(pg) == CONNECTION_OK)
		PQclear(PQexecParams(pg,
		                     "SELECT pg_advisory_unlock($1::bigint)", 1,
		                     NULL, lock_param, NULL, NULL, 0));
	if (pg != NULL)
		PQfinish(pg); /* also drops the lock if the unlock failed */
	db_params_free(&params);
	free(recorded);
	if (applied != NULL)
		*applied = done;
	return r;
}

int
db_migrate(const char *conninfo, int *applied, char *err, size_t errlen)
{
	return db_migrate_list(conninfo, db_migrations, db_migrations_count,
	                       applied, err, errlen);
}

int
db_migrations_latest(void)
{
	return db_migrations_count > 0
	           ? db_migrations[db_migrations_count - 1].version
	           : 0;
}
