/*
 * db/admit_batch.c -- the queue in front of db_admit_record_many: group
 * commit of admission records (see db_admit_batch.h for the contract).
 *
 * The committer is a waiting request thread, not a thread of its own: an
 * attempt's thread that finds a committer slot free takes the head of
 * the queue (its own attempt, when nothing waited before it) and records
 * it; the others wait on their own condition variable until their
 * attempt is answered, or until a slot frees up while theirs is still
 * queued, and then one of them takes its turn as committer. So a lone
 * attempt is recorded at once on its own thread, a busy node records in
 * batches of whatever queued meanwhile, and no wait depends on a thread
 * that is not itself serving a request.
 *
 * Every queue entry belongs to the thread that waits for it (allocated
 * and freed there); the queue only links them. An entry is taken (unlinked) under mu and answered under mu, and
 * its thread returns only after it saw the answer or unlinked the entry
 * itself, so a committer never touches an entry whose thread has gone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db_admit_batch.h"
#include "db/db_int.h"

enum { E_QUEUED, E_TAKEN, E_DONE };

struct entry {
	struct db_admit_one one;
	struct db_pool *pool;
	int state;	   /* under mu */
	pthread_cond_t cv; /* CLOCK_MONOTONIC; signalled under mu */
	struct entry *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* under mu */
static struct entry *head, *tail;
static struct db_admit_batch_stats stats;

static void
deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Under mu. */
static void
count_batch(size_t n, int failed, int retried)
{
	int b = 0;

	stats.batches++;
	stats.attempts += n;
	while (b < DB_ADMIT_BATCH_BUCKETS - 1 && ((size_t)1 << b) < n)
		b++;
	stats.size_le[b]++;
	if (failed)
		stats.failed++;
	stats.retried += (uint64_t)retried;
}

/* Unlinks e (queued) from the queue. Under mu. */
static void
unlink_entry(struct entry *e)
{
	struct entry **pp, *prev = NULL;

	for (pp = &head; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
		if (*pp != e)
			continue;
		*pp = e->next;
		if (tail == e)
			tail = prev;
		e->next = NULL;
		stats.queued--;
		return;
	}
}

/*
 * One turn as committer: takes up to batch_max queued entries of pool,
 * oldest first, records them in one transaction and answers them. Called
 * and returns with mu held (released while recording).
 */
static void
commit_turn(struct db_pool *pool, int batch_max, int committers)
{
	struct entry *batch[DB_ADMIT_BATCH_MAX];
	struct db_admit_one *ones[DB_ADMIT_BATCH_MAX];
	struct entry *e, *next;
	size_t n = 0, i;
	int r, retried = 0;

	for (e = head; e != NULL && n < (size_t)batch_max; e = next) {
		next = e->next;
		if (e->pool != pool)
			continue;
		unlink_entry(e);
		e->state = E_TAKEN;
		ones[n] = &e->one;
		batch[n++] = e;
	}
	stats.committing++;
	/* Another slot free and more waiting: let the next one start. */
	if (head != NULL && stats.committing < committers)
		pthread_cond_signal(&head->cv);
	pthread_mutex_unlock(&mu);

	r = n == 1 ? db_admit_record(pool, ones[0]->a, &ones[0]->res,
	                             ones[0]->err, sizeof(ones[0]->err))
	           : db_admit_record_many(pool, ones, n, &retried);
	if (n == 1)
		ones[0]->rc = r;

	pthread_mutex_lock(&mu);
	stats.committing--;
	count_batch(n, r != 0, retried);
	for (i = 0; i < n; i++) {
		batch[i]->state = E_DONE;
		pthread_cond_signal(&batch[i]->cv);
	}
	/* A slot is free: the oldest waiting attempt's thread takes it. */
	if (head != NULL)
		pthread_cond_signal(&head->cv);
}

int
db_admit_record_grouped(struct db_pool *pool, const struct db_admit_group *g,
                        const struct db_attempt *a,
                        struct db_attempt_result *out, char *err,
                        size_t errlen)
{
	struct entry *e;
	pthread_condattr_t ca;
	struct timespec deadline;
	int batch_max, committers, queue_max, r, rc = 0;

	if (g == NULL || g->batch_max <= 1) {
		r = db_admit_record(pool, a, out, err, errlen);
		pthread_mutex_lock(&mu);
		count_batch(1, r != 0, 0);
		pthread_mutex_unlock(&mu);
		return r;
	}
	batch_max = g->batch_max < DB_ADMIT_BATCH_MAX ? g->batch_max
	                                              : DB_ADMIT_BATCH_MAX;
	committers = g->committers > 0 ? g->committers : 1;
	queue_max = 4 * batch_max * committers;
	memset(out, 0, sizeof(*out));
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		db_seterr(err, errlen, "out of memory");
		return DB_ENOMEM;
	}
	e->one.a = a;
	e->one.rc = DB_EUNAVAIL;
	e->pool = pool;
	e->state = E_QUEUED;
	if (pthread_condattr_init(&ca) != 0) {
		free(e);
		db_seterr(err, errlen, "cannot wait for the attempt's record");
		return DB_ENOMEM;
	}
	r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&e->cv, &ca) != 0;
	pthread_condattr_destroy(&ca);
	if (r) {
		free(e);
		db_seterr(err, errlen, "cannot wait for the attempt's record");
		return DB_ENOMEM;
	}
	deadline_after(&deadline, g->wait_ms > 0 ? g->wait_ms : 1);

	pthread_mutex_lock(&mu);
	if (stats.queued >= queue_max) {
		stats.queue_full++;
		pthread_mutex_unlock(&mu);
		pthread_cond_destroy(&e->cv);
		free(e);
		db_seterr(err, errlen,
		          "%d admission attempts are already waiting to be "
		          "recorded on this node, so this one is not taken; "
		          "try again in a moment (or raise [database] "
		          "committers)",
		          queue_max);
		return DB_ETIMEOUT;
	}
	if (tail != NULL)
		tail->next = e;
	else
		head = e;
	tail = e;
	stats.queued++;
	for (;;) {
		if (e->state == E_DONE)
			break;
		if (e->state == E_QUEUED && stats.committing < committers) {
			commit_turn(pool, batch_max, committers);
			continue;
		}
		if (e->state == E_TAKEN) {
			/* Bounded by the committer's acquire and statement
			 * timeouts. */
			pthread_cond_wait(&e->cv, &mu);
			continue;
		}
		if (rc == ETIMEDOUT) {
			unlink_entry(e);
			stats.queue_timeouts++;
			e->one.rc = DB_ETIMEOUT;
			db_seterr(e->one.err, sizeof(e->one.err),
			          "no committer took the attempt within %d ms "
			          "([database] acquire_timeout_ms): the "
			          "database is too slow or stuck",
			          g->wait_ms);
			break;
		}
		rc = pthread_cond_timedwait(&e->cv, &mu, &deadline);
	}
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&e->cv);
	r = e->one.rc;
	if (r == 0)
		*out = e->one.res;
	else
		db_seterr(err, errlen, "%s", e->one.err);
	free(e);
	return r;
}

void
db_admit_batch_get_stats(struct db_admit_batch_stats *st)
{
	pthread_mutex_lock(&mu);
	*st = stats;
	pthread_mutex_unlock(&mu);
}
