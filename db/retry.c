/*
 * db/retry.c -- one statement, run again when it lost a deadlock or a
 * serialization conflict (db/db_retry.h).
 *
 * A revocation locks every session of a person; an admission batch holds
 * share locks on some of them while it waits for another. PostgreSQL
 * breaks such a cycle by aborting one side; a revocation must not stay
 * that victim, and run once more it finds the batch committed.
 */
#include <string.h>

#include "db/db_retry.h"

int
db_res_is_victim(const PGresult *res)
{
	const char *st;

	if (res == NULL || PQresultStatus(res) != PGRES_FATAL_ERROR)
		return 0;
	st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return st != NULL &&
	       (strcmp(st, "40P01") == 0 || strcmp(st, "40001") == 0);
}

PGresult *
db_exec_retry(PGconn *pg, const char *sql, int n, const char *const *vals,
              const int *lens, const int *fmts, int *retries)
{
	PGresult *res;
	int tries = 0;

	for (;;) {
		res = PQexecParams(pg, sql, n, NULL, vals, lens, fmts, 0);
		if (!db_res_is_victim(res) || tries >= DB_RETRY_MAX ||
		    PQtransactionStatus(pg) != PQTRANS_IDLE)
			break;
		PQclear(res);
		tries++;
	}
	if (retries != NULL)
		*retries = tries;
	return res;
}

/* Runs sql (no parameters); 0 when it answered want. */
static int
simple(PGconn *pg, const char *sql, PGresult **fail)
{
	PGresult *res = PQexec(pg, sql);

	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
		PQclear(res);
		return 0;
	}
	*fail = res;
	return -1;
}

PGresult *
db_exec_locked(PGconn *pg, const char *lock_sql, int lock_n, const char *sql,
               int n, const char *const *vals, int *retries)
{
	PGresult *res = NULL, *done = NULL;
	int tries = 0;

	for (;;) {
		if (simple(pg, "BEGIN", &res) != 0)
			break;
		res = PQexecParams(pg, lock_sql, lock_n, NULL, vals, NULL, NULL,
		                   0);
		if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
			PQclear(res);
			res =
			    PQexecParams(pg, sql, n, NULL, vals, NULL, NULL, 0);
			if (res != NULL &&
			    PQresultStatus(res) == PGRES_TUPLES_OK) {
				done = res;
				res = NULL;
				if (simple(pg, "COMMIT", &res) == 0) {
					res = done;
					break;
				}
				PQclear(done);
				done = NULL;
			}
		}
		/* failed: nothing of this transaction stays */
		if (PQtransactionStatus(pg) != PQTRANS_IDLE) {
			PGresult *rb = PQexec(pg, "ROLLBACK");

			PQclear(rb);
		}
		if (!db_res_is_victim(res) || tries >= DB_RETRY_MAX ||
		    PQtransactionStatus(pg) != PQTRANS_IDLE)
			break;
		PQclear(res);
		res = NULL;
		tries++;
	}
	if (retries != NULL)
		*retries = tries;
	return res;
}
