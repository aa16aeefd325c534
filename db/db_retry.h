/*
 * db/ private: run one statement in its own transaction and run it again
 * when PostgreSQL aborted it as a deadlock or serialization victim.
 */
#ifndef ROOMGATE_DB_RETRY_H
#define ROOMGATE_DB_RETRY_H

#include <libpq-fe.h>

/* Runs after the first attempt at most this many times. */
#define DB_RETRY_MAX 3

/*
 * PQexecParams(pg, sql, n, NULL, vals, lens, fmts, 0), run again (a fresh
 * transaction each time) while it fails with SQLSTATE 40P01
 * (deadlock_detected) or 40001 (serialization_failure), at most
 * DB_RETRY_MAX times. Only for one statement run outside an explicit
 * transaction (the failed attempt then wrote nothing): when the
 * connection is inside a transaction after the failure, the result is
 * returned as it is. Returns the last result (the caller PQclears it; NULL
 * like PQexecParams when out of memory or the connection is lost).
 * *retries (may be NULL) is set to the number of runs after the first.
 */
PGresult *db_exec_retry(PGconn *pg, const char *sql, int n,
                        const char *const *vals, const int *lens,
                        const int *fmts, int *retries);

/*
 * db_exec_retry() for a statement that must see what was committed by
 * those it waited for: one transaction of lock_sql (its first lock_n
 * parameters; it takes the row locks, in a fixed order, and waits for
 * their holders) and then sql (a statement of its own, so its snapshot
 * is taken after those holders committed: it sees, e.g., the admissions an
 * admission batch wrote while it held a session lock). The whole
 * transaction runs again on 40P01/40001, at most DB_RETRY_MAX times.
 * Returns sql's result, or the first failed one (rolled back); NULL as
 * PQexecParams. Only on a connection outside a transaction.
 */
PGresult *db_exec_locked(PGconn *pg, const char *lock_sql, int lock_n,
                         const char *sql, int n, const char *const *vals,
                         int *retries);

/* 1 when res failed as a deadlock or serialization victim, else 0. */
int db_res_is_victim(const PGresult *res);

#endif
