/*
 * db/ -- PostgreSQL access for roomgate: a thread-safe libpq connection
 * pool with reconnect, versioned SQL migrations, and (in later issues) the
 * queries, the audit chain, the outbox and the export.
 *
 * This is the only header other folders include. libpq types stay inside
 * db/: callers hold opaque handles. Every SQL statement is sent with
 * parameters (PQexecParams); no caller-provided text is ever spliced into
 * SQL.
 *
 * Errors: functions return 0 on success and a negative DB_E* value on
 * failure, and write a message a person can act on into err (always
 * NUL-terminated when errlen > 0). Messages never contain the password.
 */
#ifndef ROOMGATE_DB_H
#define ROOMGATE_DB_H

#include <stddef.h>
#include <stdint.h>

enum {
	DB_OK = 0,
	DB_EINVAL = -1,	 /* bad configuration or argument */
	DB_EUNAVAIL = -2, /* server unreachable, connection lost */
	DB_ETIMEOUT = -3, /* no pool connection free within acquire_timeout */
	DB_EQUERY = -4,	 /* the server rejected a statement */
	DB_ENOMEM = -5,
	DB_ESCHEMA = -6,  /* the database schema does not fit this binary:
			   * a migration changed after it was applied, or the
			   * database is newer than the binary. Not retryable. */
};

struct db_config {
	const char *conninfo;	/* libpq URI or key=value string */
	int pool_size;		/* connections kept, >= 1 */
	int connect_timeout_s;	/* libpq connect_timeout, >= 1 */
	int statement_timeout_ms; /* server-side per-statement limit */
	int acquire_timeout_ms; /* longest wait for a free connection */
};

struct db_pool;
struct db_conn;

/*
 * Creates a pool. Validates conninfo (PQconninfoParse) but does not need
 * the server to be up: connections are made on first use and remade after
 * they break, so the service starts and becomes ready when the database
 * does. The strings in cfg are copied. On success *out is owned by the
 * caller and freed with db_pool_close(), which must not be called while a
 * connection is borrowed or a thread is inside db_acquire()/db_ping().
 */
int db_pool_open(const struct db_config *cfg, struct db_pool **out,
		 char *err, size_t errlen);
void db_pool_close(struct db_pool *pool);

/*
 * Borrows a connected connection, waiting at most acquire_timeout_ms for a
 * free one (DB_ETIMEOUT) and reconnecting a broken one (DB_EUNAVAIL if the
 * server cannot be reached). Give it back with db_release() exactly once.
 * db_release() rolls back a transaction left open and drops a connection
 * that is broken or busy, so the next borrower always gets a clean one.
 * Queries on a borrowed connection use the helpers in db/ (later issues).
 */
int db_acquire(struct db_pool *pool, struct db_conn **out, char *err,
	       size_t errlen);
void db_release(struct db_pool *pool, struct db_conn *conn);

/*
 * Readiness probe: a round trip ("SELECT 1") on a pooled connection. A
 * connection found dead is replaced and the probe tried once more, so the
 * first probe after a database restart already answers correctly.
 */
int db_ping(struct db_pool *pool, char *err, size_t errlen);

struct db_pool_stats {
	int size;		/* configured connections */
	int in_use;		/* borrowed right now */
	int connected;		/* slots with a live connection */
	int waiting;		/* threads waiting in db_acquire */
	uint64_t connects;	/* successful (re)connects since open */
	uint64_t connect_failures;
	uint64_t acquire_timeouts;
};
void db_pool_get_stats(struct db_pool *pool, struct db_pool_stats *st);

/*
 * Migrations: the SQL files under db/migrations/ (NNNN_name.sql), embedded
 * in the binary at build time, applied in order, each in its own
 * transaction together with its row in schema_migrations. A
 * session-level advisory lock serializes concurrent runs from several
 * nodes; a run that finds everything applied changes nothing.
 *
 * *applied (may be NULL) receives how many migrations this call applied
 * (also on failure: the ones before the failing one stay applied).
 *
 * Errors: DB_EINVAL (conninfo), DB_EUNAVAIL (cannot connect, connection
 * lost), DB_EQUERY ("migration 0002_x failed at line 7: <server message>";
 * that migration was rolled back), DB_ESCHEMA (a recorded migration differs
 * from the built-in one, or the database has a version this binary does not
 * know: an old binary must not run against a newer schema).
 */
int db_migrate(const char *conninfo, int *applied, char *err, size_t errlen);

/* The highest migration version built into this binary. */
int db_migrations_latest(void);

#endif
