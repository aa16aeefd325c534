/*
 * db/pool.c -- a fixed-size, thread-safe pool of libpq connections.
 *
 * Slots are connected lazily and reconnected after they break, so the
 * service can start before the database and survives its restarts. The
 * mutex guards only slot bookkeeping and counters: connecting, the liveness
 * check, ROLLBACK and queries all run without it, so one slow connect never
 * stalls threads that could use another slot.
 *
 * Ownership: the pool owns every PGconn. A borrower has exclusive use of
 * its slot's PGconn between db_acquire() and db_release(); the pool reads
 * or replaces a slot's PGconn only while nobody has borrowed it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db_int.h"

#define DB_POOL_MAX 1024

struct db_conn {
	PGconn *pg; /* owned by the borrower while in_use, else by the pool */
	int in_use; /* under pool->mu */
	int live;   /* under pool->mu: pg was connected when last seen */
	/* Borrower only: bit i set once statement i is prepared on pg
	 * (db_conn_prepared); cleared whenever pg is replaced. */
	uint32_t prepared;
};

struct db_pool {
	pthread_mutex_t mu;
	pthread_cond_t freed; /* a slot became free; CLOCK_MONOTONIC */
	struct db_params params;
	int size;
	int acquire_timeout_ms;
	struct db_conn *slots;
	/* under mu */
	int in_use;
	int waiting;
	uint64_t connects;
	uint64_t connect_failures;
	uint64_t acquire_timeouts;
};

int
db_pool_open(const struct db_config *cfg, struct db_pool **out, char *err,
             size_t errlen)
{
	struct db_pool *pool = NULL;
	pthread_condattr_t ca;
	int r = DB_EINVAL, have_mu = 0, have_cv = 0, have_ca = 0;

	if (out != NULL)
		*out = NULL;
	if (cfg == NULL || out == NULL) {
		db_seterr(err, errlen, "db_pool_open: no configuration");
		goto out;
	}
	if (cfg->pool_size < 1 || cfg->pool_size > DB_POOL_MAX) {
		db_seterr(err, errlen,
		          "database pool_size %d is out of range: use 1 to %d",
		          cfg->pool_size, DB_POOL_MAX);
		goto out;
	}
	if (cfg->connect_timeout_s < 1 || cfg->connect_timeout_s > 3600) {
		db_seterr(err, errlen,
		          "database connect_timeout %d s is out of range: use "
		          "1 to 3600",
		          cfg->connect_timeout_s);
		goto out;
	}
	if (cfg->statement_timeout_ms < 0 || cfg->acquire_timeout_ms < 0) {
		db_seterr(err, errlen,
		          "database statement and acquire timeouts must not be "
		          "negative");
		goto out;
	}
	r = DB_ENOMEM;
	if ((pool = calloc(1, sizeof(*pool))) == NULL ||
	    (pool->slots = calloc((size_t)cfg->pool_size,
	                          sizeof(*pool->slots))) == NULL) {
		db_seterr(err, errlen, "out of memory");
		goto out;
	}
	if ((r = db_params_build(cfg->conninfo, cfg->connect_timeout_s,
	                         cfg->statement_timeout_ms, "roomgate",
	                         &pool->params, err, errlen)) != 0)
		goto out;
	r = DB_ENOMEM;
	if (pthread_mutex_init(&pool->mu, NULL) != 0)
		goto sys;
	have_mu = 1;
	if (pthread_condattr_init(&ca) != 0)
		goto sys;
	have_ca = 1;
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&pool->freed, &ca) != 0)
		goto sys;
	have_cv = 1;
	pool->size = cfg->pool_size;
	pool->acquire_timeout_ms = cfg->acquire_timeout_ms;
	*out = pool;
	pool = NULL;
	r = 0;
	goto out;
sys:
	db_seterr(err, errlen, "cannot create the database pool's lock");
out:
	if (have_ca)
		pthread_condattr_destroy(&ca);
	if (pool != NULL) {
		if (have_cv)
			pthread_cond_destroy(&pool->freed);
		if (have_mu)
			pthread_mutex_destroy(&pool->mu);
		db_params_free(&pool->params);
		free(pool->slots);
		free(pool);
	}
	return r;
}

void
db_pool_close(struct db_pool *pool)
{
	int i;

	if (pool == NULL)
		return;
	for (i = 0; i < pool->size; i++)
		if (pool->slots[i].pg != NULL)
			PQfinish(pool->slots[i].pg);
	pthread_cond_destroy(&pool->freed);
	pthread_mutex_destroy(&pool->mu);
	db_params_free(&pool->params);
	free(pool->slots);
	free(pool);
}

/* A free slot, preferring one that already has a connection. Under mu. */
static struct db_conn *
pick_free(struct db_pool *pool)
{
	struct db_conn *spare = NULL;
	int i;

	for (i = 0; i < pool->size; i++) {
		struct db_conn *c = &pool->slots[i];

		if (c->in_use)
			continue;
		if (c->live)
			return c;
		if (spare == NULL)
			spare = c;
	}
	return spare;
}

/*
 * Cheap check, no round trip. An idle connection has nothing to read: we
 * never LISTEN, and every result was consumed before release. When
 * PostgreSQL shuts down or a backend is terminated, the server sends a
 * FATAL message and closes the socket, so readable data on an idle
 * connection means it is dying (the FATAL may arrive a moment before the
 * close, when libpq still calls it healthy). Such a connection is replaced
 * rather than trusted. One that died silently (network cut) passes;
 * db_ping()'s retry and the query helpers' handling of DB_EUNAVAIL cover
 * that.
 */
static int
conn_alive(PGconn *pg)
{
	struct pollfd pfd;
	int n;

	if (PQstatus(pg) != CONNECTION_OK ||
	    PQtransactionStatus(pg) != PQTRANS_IDLE)
		return 0;
	if ((pfd.fd = PQsocket(pg)) < 0)
		return 0;
	pfd.events = POLLIN;
	pfd.revents = 0;
	do
		n = poll(&pfd, 1, 0);
	while (n < 0 && errno == EINTR);
	return n == 0;
}

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

int
db_acquire(struct db_pool *pool, struct db_conn **out, char *err, size_t errlen)
{
	struct db_conn *c;
	struct timespec deadline;
	int r, rc = 0;

	if (out != NULL)
		*out = NULL;
	if (pool == NULL || out == NULL) {
		db_seterr(err, errlen, "db_acquire: no pool");
		return DB_EINVAL;
	}
	deadline_after(&deadline, pool->acquire_timeout_ms);

	pthread_mutex_lock(&pool->mu);
	while ((c = pick_free(pool)) == NULL) {
		if (rc == ETIMEDOUT) {
			pool->acquire_timeouts++;
			pthread_mutex_unlock(&pool->mu);
			db_seterr(err, errlen,
			          "no database connection became free within "
			          "%d ms (all %d in use) — raise the pool size "
			          "or look for slow queries",
			          pool->acquire_timeout_ms, pool->size);
			return DB_ETIMEOUT;
		}
		pool->waiting++;
		rc = pthread_cond_timedwait(&pool->freed, &pool->mu, &deadline);
		pool->waiting--;
	}
	c->in_use = 1;
	pool->in_use++;
	pthread_mutex_unlock(&pool->mu);

	/* Outside the lock: this slot is ours. */
	if (c->pg != NULL && !conn_alive(c->pg)) {
		PQfinish(c->pg);
		c->pg = NULL;
		c->prepared = 0;
		pthread_mutex_lock(&pool->mu);
		c->live = 0; /* for the stats while we reconnect */
		pthread_mutex_unlock(&pool->mu);
	}
	if (c->pg != NULL) {
		*out = c;
		return 0;
	}
	c->prepared = 0;
	r = db_connect(&pool->params, &c->pg, err, errlen);

	pthread_mutex_lock(&pool->mu);
	if (r == 0) {
		pool->connects++;
		c->live = 1;
	} else {
		pool->connect_failures++;
		c->live = 0;
		c->in_use = 0;
		pool->in_use--;
		pthread_cond_signal(&pool->freed);
	}
	pthread_mutex_unlock(&pool->mu);
	if (r == 0)
		*out = c;
	return r;
}

PGconn *
db_conn_pg(struct db_conn *c)
{
	return c != NULL ? c->pg : NULL;
}

int
db_conn_prepared(struct db_conn *c, unsigned id, const char *name,
                 const char *sql, int nparams, char *err, size_t errlen)
{
	PGresult *res;
	int r;

	if (c == NULL || c->pg == NULL || id >= 32) {
		db_seterr(err, errlen, "db_conn_prepared: no connection");
		return DB_EINVAL;
	}
	if (c->prepared & (UINT32_C(1) << id))
		return 0;
	res = PQprepare(c->pg, name, sql, nparams, NULL);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = db_result_err(c->pg, res, "preparing a statement", err,
		                  errlen);
		PQclear(res);
		return r;
	}
	PQclear(res);
	c->prepared |= UINT32_C(1) << id;
	return 0;
}

/* Whether a returned connection can serve the next borrower as is; rolls
 * back a transaction left open. */
static int
conn_reusable(PGconn *pg)
{
	PGresult *res;
	int ok;

	if (pg == NULL || PQstatus(pg) != CONNECTION_OK)
		return 0;
	/* Left in pipeline mode by a failed pipeline: results may still be
	 * on their way, and synchronous calls would fail on it. */
	if (PQpipelineStatus(pg) != PQ_PIPELINE_OFF)
		return 0;
	switch (PQtransactionStatus(pg)) {
	case PQTRANS_IDLE:
		return 1;
	case PQTRANS_INTRANS:
	case PQTRANS_INERROR:
		res =
		    PQexecParams(pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK &&
		     PQtransactionStatus(pg) == PQTRANS_IDLE;
		PQclear(res);
		return ok;
	default:
		/* A query still running or results unread: not worth
		 * untangling, a new connection is cheaper and certain. */
		return 0;
	}
}

void
db_release(struct db_pool *pool, struct db_conn *c)
{
	int keep;

	if (pool == NULL || c == NULL || c < pool->slots ||
	    c >= pool->slots + pool->size)
		return;
	keep = conn_reusable(c->pg);
	if (!keep && c->pg != NULL) {
		PQfinish(c->pg);
		c->pg = NULL;
		c->prepared = 0;
	}
	pthread_mutex_lock(&pool->mu);
	if (c->in_use) {
		c->in_use = 0;
		c->live = keep;
		pool->in_use--;
		pthread_cond_signal(&pool->freed);
	}
	pthread_mutex_unlock(&pool->mu);
}

int
db_ping(struct db_pool *pool, char *err, size_t errlen)
{
	struct db_conn *c;
	PGresult *res;
	int r = DB_EUNAVAIL, attempt, lost;

	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = db_acquire(pool, &c, err, errlen)) != 0)
			return r;
		res = PQexecParams(c->pg, "SELECT 1", 0, NULL, NULL, NULL, NULL,
		                   0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK &&
		    PQntuples(res) == 1 &&
		    strcmp(PQgetvalue(res, 0, 0), "1") == 0) {
			PQclear(res);
			db_release(pool, c);
			return 0;
		}
		lost = PQstatus(c->pg) == CONNECTION_BAD;
		r = db_result_err(c->pg, res, "database ping", err, errlen);
		PQclear(res);
		db_release(pool, c); /* drops it if lost */
		/* A connection that died while idle (e.g. the server
		 * restarted) says nothing about the server now: ask again on
		 * a fresh one. Any other failure is the answer. */
		if (!lost)
			return r;
	}
	return r;
}

void
db_pool_get_stats(struct db_pool *pool, struct db_pool_stats *st)
{
	int i;

	memset(st, 0, sizeof(*st));
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->mu);
	st->size = pool->size;
	st->in_use = pool->in_use;
	st->waiting = pool->waiting;
	for (i = 0; i < pool->size; i++)
		if (pool->slots[i].live)
			st->connected++;
	st->connects = pool->connects;
	st->connect_failures = pool->connect_failures;
	st->acquire_timeouts = pool->acquire_timeouts;
	pthread_mutex_unlock(&pool->mu);
}
