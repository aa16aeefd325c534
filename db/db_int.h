/*
 * db/ private declarations, shared by the files of db/ (and by db/'s own
 * tests). Other folders include only db/db.h.
 *
 * libpq types appear here and nowhere in db.h.
 */
#ifndef ROOMGATE_DB_INT_H
#define ROOMGATE_DB_INT_H

#include <stddef.h>

#include <libpq-fe.h>

#include "db/db.h"

/* ---- embedded migrations (gen/migrations.c, by embed-migrations.sh) ---- */

/*
 * One SQL migration, built into the binary. All fields point to static,
 * read-only data. sql is NUL-terminated and sql_len == strlen(sql).
 */
struct db_migration {
	int version;      /* NNNN of the file name, > 0 */
	const char *name; /* "0001_init": the file name without .sql */
	const char *sql;
	size_t sql_len;
};

/* Sorted by version, versions unique. Empty when db_migrations_count == 0
 * (the array then holds one placeholder entry). */
extern const struct db_migration db_migrations[];
extern const size_t db_migrations_count;

/* ---- messages (conn.c) ---------------------------------------------- */

/* snprintf into err (if errlen > 0); a message cut short ends in "...". */
void db_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copies conninfo (URI or key=value) to out with the values of password
 * and sslpassword replaced by "REDACTED", so libpq's parse errors, which
 * quote the input, can be shown. Where the text cannot be scanned past a
 * password, everything from there on is replaced. Returns 0, or -1 if out
 * is too small (out is then an empty string).
 */
int db_conninfo_redact(const char *conninfo, char *out, size_t outlen);

/*
 * Turns libpq's connection failure text (PQerrorMessage after a failed
 * connect) into one line a person can act on, naming host:port, e.g.
 * "database unreachable at 127.0.0.1:5432: connection refused — is
 * PostgreSQL running?". host/port may be NULL. connect_timeout_s is quoted
 * when the cause was a timeout.
 */
void db_connect_errmsg(const char *host, const char *port, const char *pqmsg,
                       int connect_timeout_s, char *err, size_t errlen);

/*
 * The 1-based line of sql that PostgreSQL's error position (1-based, in
 * characters of the UTF-8 text) points into; 0 when pos is out of range.
 */
int db_sql_line_of(const char *sql, size_t sql_len, long pos);

/* ---- connection parameters and connecting (conn.c) ------------------ */

/*
 * conninfo expanded into keyword/value arrays for PQconnectdbParams, with
 * roomgate's additions. Owns every string; db_params_free() wipes the values
 * (one is the password) and frees them.
 */
struct db_params {
	char **keys; /* NULL-terminated */
	char **vals;
	int connect_timeout_s; /* in force, for messages */
};

/*
 * Parses conninfo (PQconninfoParse; the server is not contacted) and adds:
 * connect_timeout (connect_timeout_s if > 0, else the conninfo's own value,
 * else 10), application_name (appname, unless conninfo names one),
 * client_encoding=UTF8 (unless given) and, if statement_timeout_ms > 0,
 * "-c statement_timeout=N" appended to options. DB_EINVAL with a message
 * that never shows a password when conninfo is malformed. On failure *out
 * holds nothing to free.
 */
int db_params_build(const char *conninfo, int connect_timeout_s,
                    int statement_timeout_ms, const char *appname,
                    struct db_params *out, char *err, size_t errlen);
void db_params_free(struct db_params *p);

/*
 * Opens a connection (blocking, bounded by connect_timeout). On success
 * *out is owned by the caller (PQfinish). DB_EUNAVAIL with
 * db_connect_errmsg()'s message, or DB_ENOMEM.
 */
int db_connect(const struct db_params *p, PGconn **out, char *err,
               size_t errlen);

/*
 * Describes a failed statement: "what: <server message> (DETAIL...)".
 * Returns DB_EUNAVAIL when the connection is gone (PQstatus bad), else
 * DB_EQUERY. res may be NULL (out of memory or connection lost).
 */
int db_result_err(PGconn *pg, const PGresult *res, const char *what, char *err,
                  size_t errlen);

/* ---- pool (pool.c) ---------------------------------------------------- */

/* The libpq connection of a borrowed pool connection. Valid until
 * db_release(); do not PQfinish it (release drops broken ones). */
PGconn *db_conn_pg(struct db_conn *c);

/*
 * Makes sure the named statement (name, sql, nparams) is prepared on the
 * borrowed connection c, preparing it on first use: the hot path parses
 * and plans its statements once per connection, not once per request. id
 * (0-31) is the statement's slot; each id must always name the same
 * statement. A reconnected slot starts with nothing prepared. 0, or a
 * DB_E* code with a message.
 */
int db_conn_prepared(struct db_conn *c, unsigned id, const char *name,
                     const char *sql, int nparams, char *err, size_t errlen);

/* ---- rows shared between query files (queries_meetings.c) ---------- */

/* The select list of a meeting row (table alias m), and its reader: the
 * columns from 0 on, into *m (db_meeting_free; nothing to free when it
 * fails with DB_ENOMEM). */
extern const char db_meeting_cols[];
int db_meeting_from_row(const PGresult *res, int row, struct db_meeting *m);
/* The select list of a code row (alias c), and its reader: 0, or -1 when
 * a stored value is malformed. */
extern const char db_code_cols[];
int db_code_from_row(const PGresult *res, int row, struct db_code *out);

/* ---- migrations (migrate.c) ------------------------------------------ */

/* db_migrate() with an explicit list (sorted by version, unique), so tests
 * can run lists with a broken migration. */
int db_migrate_list(const char *conninfo, const struct db_migration *list,
                    size_t n, int *applied, char *err, size_t errlen);

/* Lowercase hex SHA-256 of the SQL text, as stored in schema_migrations. */
void db_migration_checksum(const struct db_migration *m, char hex[65]);

#endif
