/*
 * db/db_admit_batch.h -- group commit of admission records (issue 9):
 * attempts recorded at the same time share one transaction, so N
 * decisions pay one round trip, one COMMIT and one WAL flush
 * (db/admit_batch.c, migration 0024's roomgate_admit_batch).
 *
 * Batching is natural: nothing waits for company. An attempt is queued;
 * when fewer than committers batches are being recorded, the attempt's
 * own thread becomes a committer at once and takes whatever is queued
 * (up to batch_max, oldest first), so a lone attempt is recorded alone
 * and at once, exactly as db_admit_record does. Attempts that arrive
 * while every committer is busy wait in the queue and are taken together
 * by the next committer free -- which is one of the waiting threads
 * itself, so there is no committer thread that could die apart from the
 * requests it serves.
 *
 * Each attempt gets exactly its own answer (the db_admit_record
 * contract). Within the one transaction each attempt runs in its own
 * subtransaction: an error raised inside one attempt writes nothing of
 * it and fails it alone (DB_EQUERY), its batch-mates are recorded. When
 * the transaction as a whole fails (COMMIT, the connection, the statement
 * timeout), nothing of the batch is written and every attempt of it
 * fails. A deadlock or serialization failure (40P01, 40001) is not an
 * answer: the attempts it hit are recorded again, each alone.
 *
 * Errors are DB_E* values (db.h) with a message in err.
 */
#ifndef ROOMGATE_DB_ADMIT_BATCH_H
#define ROOMGATE_DB_ADMIT_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

/* The largest batch: each attempt of a batch is a subtransaction, and a
 * backend keeps at most 64 of them in its shared cache before other
 * sessions' snapshots must look them up in pg_subtrans. */
#define DB_ADMIT_BATCH_MAX 64

struct db_admit_group {
	int batch_max;	/* attempts per transaction, 1..DB_ADMIT_BATCH_MAX;
			 * 1: every attempt is recorded alone (no queue) */
	int committers; /* batches recorded at once on this node, >= 1 */
	/* Longest wait in the queue for a committer (ms): then DB_ETIMEOUT.
	 * Once taken, an attempt waits for its batch, which is bounded by
	 * the pool's acquire timeout and the statement timeout. */
	int wait_ms;
};

/*
 * Records attempt a as db_admit_record does (same inputs, same *out, same
 * errors), grouped with the attempts of other threads recorded at the
 * same time. a and everything it points to must stay valid until this
 * returns (another thread may read them meanwhile). The queue holds at
 * most 4 * batch_max * committers attempts: beyond, DB_ETIMEOUT at once,
 * nothing recorded. All attempts recorded through one process share one
 * queue; a committer batches only attempts for the same pool.
 */
int db_admit_record_grouped(struct db_pool *pool, const struct db_admit_group *g,
			    const struct db_attempt *a,
			    struct db_attempt_result *out, char *err,
			    size_t errlen);

/*
 * The transaction under the queue: records the n attempts (n <= DB_ADMIT_
 * BATCH_MAX) in one transaction, one round trip -- all of their advisory
 * locks first, identity+meeting keys then source keys, each in ascending
 * order (the order a single record takes its two in, so batches and
 * single records never wait on each other in a cycle), then each attempt
 * in arrival order in its own subtransaction. Each v[i]->a is borrowed;
 * v[i]->res, rc and err are its answer. Returns 0 when the transaction
 * committed (single attempts may still have failed: their rc), else the
 * DB_E* of the whole, which every attempt also holds. *retried: attempts
 * recorded again alone after a deadlock or serialization failure.
 */
struct db_admit_one {
	const struct db_attempt *a;
	struct db_attempt_result res;
	int rc;
	char err[512];
};
int db_admit_record_many(struct db_pool *pool, struct db_admit_one *const *v,
			 size_t n, int *retried);

/* Batch sizes are counted in these buckets: le 1, 2, 4, 8, 16, 32, 64. */
#define DB_ADMIT_BATCH_BUCKETS 7

struct db_admit_batch_stats {
	uint64_t batches;   /* transactions recorded (also batches of 1) */
	uint64_t attempts;  /* attempts in them (sum of the batch sizes) */
	uint64_t size_le[DB_ADMIT_BATCH_BUCKETS]; /* batches of size <= 2^i */
	uint64_t failed;    /* batches whose transaction failed as a whole */
	uint64_t retried;   /* attempts recorded again alone (40P01/40001) */
	uint64_t queue_full;	 /* attempts refused: the queue was full */
	uint64_t queue_timeouts; /* attempts no committer took in time */
	int queued;		 /* waiting now */
	int committing;		 /* batches being recorded now */
};
void db_admit_batch_get_stats(struct db_admit_batch_stats *st);

#endif
