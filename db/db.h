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

/* ---- SAML and sessions (queries_saml.c) -------------------------------
 *
 * Hashes are 32 raw bytes (SHA-256 of a browser-held random value); the
 * random values themselves never reach the database. Strings passed in
 * are borrowed; strings returned are malloc()ed for the caller.
 */

/* Records a pending AuthnRequest bound to one browser, for ttl_s. */
int db_saml_request_put(struct db_pool *pool, const char *request_id,
			const unsigned char binding_hash[32],
			const char *return_path, int ttl_s, char *err,
			size_t errlen);
/* Marks the pending request request_id of this browser used. 1 and
 * *return_path (caller frees) if it was pending, unexpired and bound to
 * binding_hash; 0 if not; < 0 on a database error. */
int db_saml_request_take(struct db_pool *pool, const char *request_id,
			 const unsigned char binding_hash[32],
			 char **return_path, char *err, size_t errlen);
/* Adds an assertion id to the replay cache, kept until `until` (Unix
 * time). 1 if new, 0 if already seen (a replay), < 0 on error. */
int db_saml_replay_add(struct db_pool *pool, const char *assertion_id,
		       long long until, char *err, size_t errlen);

struct db_session_new {
	const unsigned char *id_hash; /* 32 bytes */
	const char *identity, *idp, *name_id;
	const char *name_id_format, *session_index; /* may be NULL */
	const char *authn_instant;  /* xsd:dateTime or NULL */
	const char *attributes_json; /* JSON object or NULL */
	int absolute_timeout_s;
	const char *source_addr, *user_agent; /* may be NULL */
};
int db_session_create(struct db_pool *pool, const struct db_session_new *s,
		      char *err, size_t errlen);

/* A live session; every string malloc()ed, freed by db_session_free(). */
struct db_session {
	char *identity, *idp, *name_id, *name_id_format, *session_index;
	char *authn_instant, *attributes_json, *expires_at;
};
/* 1 and *out when the session is live (and marks it used), 0 when it is
 * unknown, revoked, expired or idle too long, < 0 on error. */
int db_session_get(struct db_pool *pool, const unsigned char id_hash[32],
		   int idle_timeout_s, struct db_session *out, char *err,
		   size_t errlen);
void db_session_free(struct db_session *s);
/* reason: a sessions.revoke_reason value ('logout', 'idp_logout'...). */
int db_session_revoke(struct db_pool *pool, const unsigned char id_hash[32],
		      const char *reason, char *err, size_t errlen);

/* One audit_log row for sign-in events (event_type 'sso'/'logout').
 * Every field may be NULL except event_type and outcome. */
struct db_audit_sso {
	const char *event_type, *outcome, *reason, *identity, *idp;
	const char *source_addr, *user_agent, *request_id, *node;
	const char *details_json;
};
int db_audit_sso(struct db_pool *pool, const struct db_audit_sso *a,
		 char *err, size_t errlen);

#endif
