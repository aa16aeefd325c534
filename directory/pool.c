/*
 * directory/pool.c -- the pool of bound connections, the readiness probe
 * (dir_ping), the one-shot dir_check_bind and the stats for /metrics.
 *
 * Slots are handed out under one mutex; a thread that finds none free
 * waits on a condition variable (CLOCK_MONOTONIC) for at most
 * acquire_timeout_ms. The mutex is never held during network I/O:
 * connect, bind, the operations and unbind all run on a slot the thread
 * owns.
 *
 * Connections are made on first use. A connection whose operation ended
 * in a client-side error (server down, timeout) is dropped and remade on
 * next use. Failed connects put the pool in backoff (50 ms doubling to
 * 2 s; 60 s after a refused bind, so a wrong password does not lock the
 * service account out): until it expires, and while one thread is trying,
 * others get the last failure at once instead of piling onto the server.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "directory/dir_int.h"

/* After a refused bind: one try a minute at most (account lockout). */
#define DIR_BACKOFF_AUTH_MS 60000

struct dir_slot {
	struct dir_conn conn; /* ld NULL until connected; owned by the pool */
	int busy;             /* leased to a thread */
};

struct dir_pool {
	struct dir_cfg cfg; /* owned; password wiped on close */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a slot became free */
	struct dir_slot *slots;

	/* Under mu. */
	int in_use;
	int connected;
	int waiting;
	uint64_t connects;
	uint64_t connect_failures;
	uint64_t acquire_timeouts;
	unsigned fails;      /* failed connects in a row */
	int64_t next_try_ms; /* no connect before this (monotonic) */
	int probing;         /* a connect after failures is under way */
	int last_rc;
	char last_err[DIR_ERR_MAX];
	/* Checks (check.c), under mu. */
	uint64_t checks[DIR_V_COUNT];
	uint64_t check_errors[8];
	uint64_t round_trips;
	uint64_t latency_buckets[DIR_LATENCY_BUCKETS + 1];
	uint64_t latency_sum_us;
};

const double dir_latency_bounds_s[DIR_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 5};

static pthread_once_t dir_once = PTHREAD_ONCE_INIT;

/*
 * libldap's first initialisation and its TLS library's global set-up are
 * not safe to race; do both once, before any thread connects.
 */
static void
global_init(void)
{
	LDAP *ld = NULL;
	int req = LDAP_OPT_X_TLS_DEMAND, zero = 0;

	if (ldap_initialize(&ld, NULL) != LDAP_SUCCESS)
		return;
	(void)ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &req);
	(void)ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	ldap_unbind_ext_s(ld, NULL, NULL);
}

static void
dir_global_init(void)
{
	pthread_once(&dir_once, global_init);
}

/* A free slot, preferring one that is connected already; -1 if none. */
static int
pick_free(const struct dir_pool *p)
{
	int i, empty = -1;

	for (i = 0; i < p->cfg.pool_size; i++) {
		if (p->slots[i].busy)
			continue;
		if (p->slots[i].conn.ld != NULL)
			return i;
		if (empty < 0)
			empty = i;
	}
	return empty;
}

/* Connects the lease's empty slot, unless the pool is in backoff. */
static int
lease_connect(struct dir_lease *l, char *err, size_t errlen)
{
	struct dir_pool *p = l->pool;
	struct dir_conn conn = {NULL, NULL};
	int r, probe = 0, backoff;
	int64_t now;

	pthread_mutex_lock(&p->mu);
	now = dir_mono_ms();
	if (p->fails > 0 && (now < p->next_try_ms || p->probing)) {
		r = p->last_rc;
		if (p->probing)
			dir_errf(err, errlen,
			         "%s (%u failed connects in a row; a new "
			         "attempt is under way)",
			         p->last_err, p->fails);
		else
			dir_errf(err, errlen,
			         "%s (%u failed connect%s in a row; next "
			         "attempt in %" PRId64 " ms)",
			         p->last_err, p->fails,
			         p->fails == 1 ? "" : "s",
			         p->next_try_ms - now);
		pthread_mutex_unlock(&p->mu);
		return r;
	}
	if (p->fails > 0)
		probe = p->probing = 1;
	pthread_mutex_unlock(&p->mu);

	r = dir_conn_open(&p->cfg, &conn, err, errlen);

	pthread_mutex_lock(&p->mu);
	if (probe)
		p->probing = 0;
	if (r == 0) {
		p->fails = 0;
		p->slots[l->slot].conn = conn;
		p->connected++;
		p->connects++;
	} else {
		p->fails++;
		p->connect_failures++;
		backoff = dir_backoff_ms(p->fails);
		if (r == DIR_EAUTH)
			backoff = DIR_BACKOFF_AUTH_MS;
		p->next_try_ms = dir_mono_ms() + backoff;
		p->last_rc = r;
		dir_errf(p->last_err, sizeof(p->last_err), "%s", err);
	}
	pthread_mutex_unlock(&p->mu);
	l->fresh = r == 0;
	return r;
}

/* Drops the lease's connection and makes a fresh one in the same slot. */
static int
lease_reconnect(struct dir_lease *l, char *err, size_t errlen)
{
	struct dir_pool *p = l->pool;
	struct dir_conn old;

	pthread_mutex_lock(&p->mu);
	old = l->conn[0];
	if (old.ld != NULL) {
		l->conn->ld = NULL;
		p->connected--;
	}
	pthread_mutex_unlock(&p->mu);
	dir_conn_close(&old);
	l->fresh = 0;
	return lease_connect(l, err, errlen);
}

int
dir_pool_acquire(struct dir_pool *p, struct dir_lease *l, char *err,
                 size_t errlen)
{
	struct timespec deadline;
	int slot, rc = 0, r, need;

	memset(l, 0, sizeof(*l));
	l->slot = -1;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += p->cfg.acquire_timeout_ms / 1000;
	deadline.tv_nsec += (long)(p->cfg.acquire_timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&p->mu);
	while ((slot = pick_free(p)) < 0 && rc == 0) {
		p->waiting++;
		rc = pthread_cond_timedwait(&p->cv, &p->mu, &deadline);
		p->waiting--;
	}
	if (slot < 0) {
		p->acquire_timeouts++;
		pthread_mutex_unlock(&p->mu);
		dir_errf(err, errlen,
		         "all %d directory connections stayed busy for %d ms "
		         "(ldap.acquire_timeout_ms): the directory answers "
		         "slowly, or ldap.pool_size is too small for the load",
		         p->cfg.pool_size, p->cfg.acquire_timeout_ms);
		return DIR_ETIMEOUT;
	}
	p->slots[slot].busy = 1;
	p->in_use++;
	l->pool = p;
	l->slot = slot;
	l->conn = &p->slots[slot].conn;
	need = l->conn->ld == NULL;
	pthread_mutex_unlock(&p->mu);

	if (need && (r = lease_connect(l, err, errlen)) != 0) {
		dir_pool_release(l, 0);
		return r;
	}
	return 0;
}

void
dir_pool_release(struct dir_lease *l, int broken)
{
	struct dir_pool *p = l->pool;
	struct dir_slot *s;
	struct dir_conn drop = {NULL, NULL};

	if (p == NULL || l->slot < 0)
		return;
	pthread_mutex_lock(&p->mu);
	s = &p->slots[l->slot];
	if (broken && s->conn.ld != NULL) {
		drop = s->conn;
		s->conn.ld = NULL;
		p->connected--;
	}
	s->busy = 0;
	p->in_use--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	dir_conn_close(&drop);
	memset(l, 0, sizeof(*l));
	l->slot = -1;
}

const struct dir_cfg *
dir_pool_cfg(const struct dir_pool *p)
{
	return &p->cfg;
}

void
dir_pool_note_check(struct dir_pool *p, int result, int r, int round_trips,
                    int64_t elapsed_us)
{
	double s = (double)elapsed_us / 1e6;
	int b;

	if (p == NULL)
		return;
	for (b = 0; b < DIR_LATENCY_BUCKETS; b++)
		if (s <= dir_latency_bounds_s[b])
			break;
	pthread_mutex_lock(&p->mu);
	if (result >= 0 && result < DIR_V_COUNT)
		p->checks[result]++;
	if (r < 0 && -r < 8)
		p->check_errors[-r]++;
	if (round_trips > 0)
		p->round_trips += (uint64_t)round_trips;
	p->latency_buckets[b]++;
	if (elapsed_us > 0)
		p->latency_sum_us += (uint64_t)elapsed_us;
	pthread_mutex_unlock(&p->mu);
}

int
dir_pool_run(struct dir_pool *p, dir_op_fn fn, void *arg, char *err,
             size_t errlen)
{
	struct dir_lease l;
	int r, lrc = LDAP_SUCCESS;

	if ((r = dir_pool_acquire(p, &l, err, errlen)) != 0)
		return r;
	r = fn(&p->cfg, l.conn, arg, &lrc, err, errlen);
	if (r != 0 && !l.fresh && dir_conn_dead(lrc)) {
		/* A pooled connection found dead (server restarted, idle
		 * connection reaped): the answer is the fresh one's. */
		lrc = LDAP_SUCCESS;
		if ((r = lease_reconnect(&l, err, errlen)) == 0)
			r = fn(&p->cfg, l.conn, arg, &lrc, err, errlen);
	}
	dir_pool_release(&l, dir_conn_broken(lrc));
	return r;
}

/* ldap_whoami_s() without its wait for one message id (a Notice of
 * Disconnection would leak there: dir_wait_answer), within
 * op_timeout_ms. The server's result code; *authzid as ldap_whoami_s. */
static int
ping_whoami(const struct dir_cfg *c, LDAP *ld, struct berval **authzid)
{
	LDAPMessage *res = NULL;
	struct timeval tv;
	int msgid, lrc, srv_rc = LDAP_OTHER;

	lrc = ldap_whoami(ld, NULL, NULL, &msgid);
	if (lrc != LDAP_SUCCESS)
		return lrc;
	tv.tv_sec = (time_t)(c->op_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)((c->op_timeout_ms % 1000) * 1000);
	if ((lrc = dir_wait_answer(ld, msgid, &tv, &res)) != LDAP_SUCCESS)
		return lrc;
	lrc = ldap_parse_whoami(ld, res, authzid);
	if (lrc == LDAP_SUCCESS &&
	    ldap_parse_result(ld, res, &srv_rc, NULL, NULL, NULL, NULL, 0) ==
	        LDAP_SUCCESS)
		lrc = srv_rc; /* the server's answer */
	ldap_msgfree(res);
	return lrc;
}

/* Who am I? (RFC 4532): one round trip that also proves the bind holds. */
static int
ping_op(const struct dir_cfg *c, struct dir_conn *conn, void *arg, int *lrc,
        char *err, size_t errlen)
{
	struct dir_sigpipe sp;
	struct berval *authzid = NULL;
	int r;

	(void)arg;
	dir_sigpipe_block(&sp);
	*lrc = ping_whoami(c, conn->ld, &authzid);
	dir_sigpipe_restore(&sp);
	if (*lrc != LDAP_SUCCESS) {
		r = dir_op_error(c, conn, *lrc, "Who am I?", err, errlen);
		goto out;
	}
	if (authzid == NULL || authzid->bv_len == 0) {
		r = DIR_EAUTH;
		dir_errf(err, errlen,
		         "the directory calls this connection anonymous: the "
		         "bind as %s did not hold",
		         c->bind_dn);
		goto out;
	}
	dir_errf(err, errlen, "%s", "");
	r = 0;
out:
	if (authzid != NULL)
		ber_bvfree(authzid);
	return r;
}

int
dir_ping(struct dir_pool *pool, char *err, size_t errlen)
{
	if (pool == NULL) {
		dir_errf(err, errlen, "no directory pool");
		return DIR_EINVAL;
	}
	return dir_pool_run(pool, ping_op, NULL, err, errlen);
}

int
dir_pool_open(const struct dir_config *cfg, struct dir_pool **out, char *err,
              size_t errlen)
{
	struct dir_pool *p = NULL;
	pthread_condattr_t ca;
	int r, have_mu = 0, have_cv = 0;

	if (out == NULL) {
		dir_errf(err, errlen, "dir_pool_open: no output pointer");
		return DIR_EINVAL;
	}
	*out = NULL;
	dir_global_init();
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		r = DIR_ENOMEM;
		dir_errf(err, errlen, "out of memory");
		goto out;
	}
	if ((r = dir_cfg_load(cfg, 1, &p->cfg, err, errlen)) != 0)
		goto out;
	r = DIR_ENOMEM;
	if ((p->slots = calloc((size_t)p->cfg.pool_size, sizeof(*p->slots))) ==
	    NULL) {
		dir_errf(err, errlen, "out of memory");
		goto out;
	}
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		dir_errf(err, errlen, "cannot create the pool's mutex");
		goto out;
	}
	have_mu = 1;
	if (pthread_condattr_init(&ca) != 0) {
		dir_errf(err, errlen, "cannot create the pool's condition");
		goto out;
	}
	/* Waits must not stretch or shrink when the wall clock is set. */
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&p->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		dir_errf(err, errlen, "cannot create the pool's condition");
		goto out;
	}
	pthread_condattr_destroy(&ca);
	have_cv = 1;
	*out = p;
	p = NULL;
	r = 0;
out:
	if (p != NULL) {
		if (have_cv)
			pthread_cond_destroy(&p->cv);
		if (have_mu)
			pthread_mutex_destroy(&p->mu);
		free(p->slots);
		dir_cfg_free(&p->cfg);
		free(p);
	}
	return r;
}

void
dir_pool_close(struct dir_pool *pool)
{
	int i;

	if (pool == NULL)
		return;
	for (i = 0; i < pool->cfg.pool_size; i++)
		dir_conn_close(&pool->slots[i].conn);
	free(pool->slots);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	dir_cfg_free(&pool->cfg);
	free(pool);
}

void
dir_pool_get_stats(struct dir_pool *pool, struct dir_pool_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->mu);
	st->size = pool->cfg.pool_size;
	st->in_use = pool->in_use;
	st->connected = pool->connected;
	st->waiting = pool->waiting;
	st->connects = pool->connects;
	st->connect_failures = pool->connect_failures;
	st->acquire_timeouts = pool->acquire_timeouts;
	memcpy(st->checks, pool->checks, sizeof(st->checks));
	memcpy(st->check_errors, pool->check_errors,
	       sizeof(st->check_errors));
	st->round_trips = pool->round_trips;
	memcpy(st->latency_buckets, pool->latency_buckets,
	       sizeof(st->latency_buckets));
	st->latency_sum_us = pool->latency_sum_us;
	pthread_mutex_unlock(&pool->mu);
}

int
dir_check_bind(const struct dir_config *cfg, char *err, size_t errlen)
{
	struct dir_cfg c;
	struct dir_conn conn = {NULL, NULL};
	int r;

	dir_global_init();
	if ((r = dir_cfg_load(cfg, 0, &c, err, errlen)) != 0)
		return r;
	r = dir_conn_open(&c, &conn, err, errlen);
	dir_conn_close(&conn);
	dir_cfg_free(&c);
	return r;
}
