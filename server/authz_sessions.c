/*
 * server/authz_sessions.c -- the forward-auth session cache
 * (server/authz_sessions.h): striped hash table of positive database
 * answers, and the LISTEN thread that invalidates them.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "server/authz_ref.h"
#include "server/authz_sessions.h"

#define NSTRIPES 64
#define RETRY_MS 500
#define WAIT_MS 250
#define PING_MS 1000
/* Entries one session keeps (a person is in few meetings at once); its
 * oldest goes first. */
#define SESSION_MAX 16
/* The byte budget: 1 KiB per allowed entry, at least 256 KiB a stripe;
 * an entry over an eighth of its stripe's budget is not stored. */
#define ENTRY_BUDGET 1024
#define STRIPE_MIN_BYTES (256 * 1024)

struct gate_authz_entry {
	struct gate_authz_entry *next;	       /* bucket chain */
	struct gate_authz_entry *older, *newer; /* the stripe's age order */
	atomic_int refs; /* the table's one while linked, plus lenders */
	long long deadline_ns;
	unsigned long long seq; /* the stripe's store order */
	size_t bytes;		/* what it holds, counted against the stripe */
	unsigned char hash[32];
	char ref[GATE_AUTHZ_REF_MAX + 1];
	char mid[37];
	char *identity, *idp;
	char **groups;
	size_t ngroups;
	char *inv[2];
	size_t ninv;
};

struct bucket {
	struct gate_authz_entry *head;
};

struct stripe {
	pthread_mutex_t mu;
	struct bucket *b;
	size_t nb, n, cap, bytes, cap_bytes;
	unsigned long long seq;
	struct gate_authz_entry *oldest, *newest;
	atomic_ullong gen;
};

static struct {
	int on;
	int ttl_ms;
	const struct gate_config *cfg;
	struct stripe st[NSTRIPES];
	pthread_t thread;
	atomic_int stop;
	/* The LISTEN connection: 1 while it is trusted; its socket; 1 while
	 * the thread reads and applies notifications. */
	atomic_int connected, busy, fd;
	atomic_ullong gen; /* bumped by every meeting-wide or full drop */
} C;

static atomic_ullong n_hits, n_misses, n_stores, n_stale_reads, n_inv_session,
    n_inv_meeting, n_inv_all, n_dropped, n_flushes, n_evictions, n_connects,
    n_too_large, n_session_evictions;

static long long
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct stripe *
stripe_of(const unsigned char hash[32])
{
	return &C.st[hash[0] % NSTRIPES];
}

static size_t
bucket_of(const struct stripe *s, const unsigned char hash[32])
{
	uint64_t v;

	/* The id hash is SHA-256 of a server-made 256-bit random id: its
	 * bytes are already uniform. */
	memcpy(&v, hash + 1, sizeof(v));
	return (size_t)(v & (s->nb - 1));
}

/*
 * The key's spelling of ref: a meeting id in lower case (the database
 * reads any letter case as the same uuid), a link id as it is (matched
 * exactly). 0, or -1 when ref cannot be a reference.
 */
static int
canon_ref(const char *ref, char out[GATE_AUTHZ_REF_MAX + 1])
{
	size_t n = strlen(ref);

	if (n > GATE_AUTHZ_REF_MAX)
		return -1;
	memcpy(out, ref, n + 1);
	if (db_authz_is_uuid(out))
		for (size_t i = 0; i < n; i++)
			if (out[i] >= 'A' && out[i] <= 'F')
				out[i] = (char)(out[i] - 'A' + 'a');
	return 0;
}

static void
entry_free(struct gate_authz_entry *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->ngroups; i++)
		free(e->groups[i]);
	free(e->groups);
	free(e->identity);
	free(e->idp);
	sodium_memzero(e->hash, sizeof(e->hash));
	free(e);
}

void
gate_authz_sessions_release(struct gate_authz_entry *e)
{
	if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
		entry_free(e);
}

/* Unlinks e from its stripe (locked) and drops the table's reference. */
static void
unlink_entry(struct stripe *s, struct gate_authz_entry *e)
{
	struct gate_authz_entry **pp = &s->b[bucket_of(s, e->hash)].head;

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->next;
	if (*pp == e)
		*pp = e->next;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		s->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		s->newest = e->older;
	s->n--;
	s->bytes -= e->bytes;
	atomic_fetch_add(&n_dropped, 1);
	gate_authz_sessions_release(e);
}

/* Drops every entry (a lost connection, a "*" notification). */
static void
flush_all(void)
{
	atomic_fetch_add(&C.gen, 1);
	for (int i = 0; i < NSTRIPES; i++) {
		struct stripe *s = &C.st[i];

		pthread_mutex_lock(&s->mu);
		atomic_fetch_add(&s->gen, 1);
		while (s->oldest != NULL)
			unlink_entry(s, s->oldest);
		pthread_mutex_unlock(&s->mu);
	}
	atomic_fetch_add(&n_flushes, 1);
}

static void
drop_session(const unsigned char hash[32])
{
	struct stripe *s = stripe_of(hash);
	struct gate_authz_entry *e, *next;

	pthread_mutex_lock(&s->mu);
	atomic_fetch_add(&s->gen, 1);
	for (e = s->b[bucket_of(s, hash)].head; e != NULL; e = next) {
		next = e->next;
		if (sodium_memcmp(e->hash, hash, 32) == 0)
			unlink_entry(s, e);
	}
	pthread_mutex_unlock(&s->mu);
}

/* Every entry whose meeting id (what == 0) or identity (what == 1) is v. */
static void
drop_matching(int what, const char *v)
{
	atomic_fetch_add(&C.gen, 1);
	for (int i = 0; i < NSTRIPES; i++) {
		struct stripe *s = &C.st[i];
		struct gate_authz_entry *e, *newer;

		pthread_mutex_lock(&s->mu);
		atomic_fetch_add(&s->gen, 1);
		for (e = s->oldest; e != NULL; e = newer) {
			newer = e->newer;
			if (strcmp(what == 0 ? e->mid : e->identity, v) == 0)
				unlink_entry(s, e);
		}
		pthread_mutex_unlock(&s->mu);
	}
}

void
gate_authz_sessions_drop_identity(const char *identity)
{
	if (C.on && identity != NULL)
		drop_matching(1, identity);
}

/* One notification (migration 0025). Anything unexpected drops all. */
static void
on_notify(void *arg, const char *p)
{
	unsigned char h[32];
	size_t hl = 0;

	(void)arg;
	if (p[0] == 's' && p[1] == ' ' && strlen(p + 2) == 64 &&
	    sodium_hex2bin(h, sizeof(h), p + 2, 64, NULL, &hl, NULL) == 0 &&
	    hl == 32) {
		atomic_fetch_add(&n_inv_session, 1);
		drop_session(h);
		return;
	}
	if (p[0] == 'm' && p[1] == ' ' && strlen(p + 2) == 36) {
		atomic_fetch_add(&n_inv_meeting, 1);
		drop_matching(0, p + 2);
		return;
	}
	atomic_fetch_add(&n_inv_all, 1);
	flush_all();
}

static void
on_busy(void *arg, int b)
{
	(void)arg;
	atomic_store(&C.busy, b);
}

/* The connection cannot be trusted any more: bypass, then flush. */
static void
distrust(void)
{
	atomic_store(&C.connected, 0);
	atomic_store(&C.fd, -1);
	flush_all();
	atomic_store(&C.busy, 0);
}

static void
nap_ms(int ms)
{
	for (int i = 0; i < ms / 50 && !atomic_load(&C.stop); i++) {
		struct timespec ts = {0, 50 * 1000000L};

		nanosleep(&ts, NULL);
	}
}

static void *
listener(void *arg)
{
	struct db_authz_listen *l = NULL;
	char err[512];
	int warned = 0;

	(void)arg;
	while (!atomic_load(&C.stop)) {
		if (l == NULL) {
			if (db_authz_listen_open(C.cfg->db_url,
			                         C.cfg->db_connect_timeout_s, &l,
			                         err, sizeof(err)) != 0) {
				l = NULL;
				if (!warned)
					gate_log(GATE_LOG_WARN, NULL,
					         "authz_listen_failed",
					         "cannot listen for forward-auth "
					         "changes (the session cache is "
					         "bypassed meanwhile): %s",
					         err);
				warned = 1;
				nap_ms(RETRY_MS);
				continue;
			}
			if (warned)
				gate_log(GATE_LOG_INFO, NULL,
				         "authz_listen_back",
				         "listening for forward-auth changes "
				         "again: the session cache answers");
			warned = 0;
			/* Reads begun before now may have missed a change
			 * made while nobody listened: none of them is
			 * stored (the generation moves), nothing old is
			 * served (flushed when the connection was lost). */
			flush_all();
			atomic_store(&C.fd, db_authz_listen_fd(l));
			atomic_store(&C.connected, 1);
			atomic_fetch_add(&n_connects, 1);
		}
		if (db_authz_listen_wait(l, WAIT_MS, PING_MS, on_notify,
		                         on_busy, NULL, err, sizeof(err)) != 0) {
			distrust();
			gate_log(GATE_LOG_WARN, NULL, "authz_listen_lost",
			         "%s; the session cache is bypassed until it "
			         "listens again",
			         err);
			warned = 1;
			db_authz_listen_close(l);
			l = NULL;
		}
	}
	distrust();
	db_authz_listen_close(l);
	return NULL;
}

int
gate_authz_sessions_start(const struct gate_config *cfg, int membership_on,
                          char *err, size_t errlen)
{
	size_t per, nb;

	/* 0 auto, 1 on, 2 off */
	if (cfg->authz_session_cache == 2 || cfg->authz_session_cache_ttl_ms <= 0 ||
	    (cfg->authz_session_cache == 0 && !membership_on))
		return 0;
	memset(&C, 0, sizeof(C));
	C.cfg = cfg;
	C.ttl_ms = cfg->authz_session_cache_ttl_ms;
	per = ((size_t)cfg->authz_session_cache_max_entries + NSTRIPES - 1) / NSTRIPES;
	for (nb = 16; nb < per; nb *= 2)
		;
	atomic_store(&C.fd, -1);
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&C.st[i].mu, NULL);
	for (int i = 0; i < NSTRIPES; i++) {
		struct stripe *s = &C.st[i];

		s->cap = per;
		s->cap_bytes = per * ENTRY_BUDGET;
		if (s->cap_bytes < STRIPE_MIN_BYTES)
			s->cap_bytes = STRIPE_MIN_BYTES;
		s->nb = nb;
		if ((s->b = calloc(nb, sizeof(*s->b))) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (pthread_create(&C.thread, NULL, listener, NULL) != 0) {
		snprintf(err, errlen,
		         "cannot start the forward-auth session cache thread");
		goto fail;
	}
	C.on = 1;
	gate_log(GATE_LOG_INFO, NULL, "authz_session_cache_on",
	         "forward-auth session cache on (%d ms, at most %d entries, "
	         "%zu KiB, %d a session): repeat /v1/authz answers skip the "
	         "database while its LISTEN connection is up",
	         C.ttl_ms, cfg->authz_session_cache_max_entries,
	         C.st[0].cap_bytes * NSTRIPES / 1024, SESSION_MAX);
	return 0;
fail:
	for (int i = 0; i < NSTRIPES; i++) {
		free(C.st[i].b);
		pthread_mutex_destroy(&C.st[i].mu);
	}
	memset(&C, 0, sizeof(C));
	return -1;
}

void
gate_authz_sessions_stop(void)
{
	if (!C.on)
		return;
	atomic_store(&C.stop, 1);
	pthread_join(C.thread, NULL);
	flush_all();
	for (int i = 0; i < NSTRIPES; i++) {
		free(C.st[i].b);
		pthread_mutex_destroy(&C.st[i].mu);
	}
	C.on = 0;
}

/* Nothing unread or being read on the LISTEN connection. */
static int
listen_quiet(void)
{
	struct pollfd pfd;

	if (!atomic_load(&C.connected) || atomic_load(&C.busy))
		return 0;
	pfd.fd = atomic_load(&C.fd);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0 || poll(&pfd, 1, 0) != 0)
		return 0;
	return !atomic_load(&C.busy) && atomic_load(&C.connected);
}

int
gate_authz_sessions_get(const unsigned char id_hash[32], const char *ref,
                        struct gate_authz_ticket *t,
                        struct gate_authz_entry **hit, struct db_session *s,
                        struct db_meeting *m)
{
	struct stripe *st;
	struct gate_authz_entry *e;
	char key[GATE_AUTHZ_REF_MAX + 1];
	long long now;

	*hit = NULL;
	memset(t, 0, sizeof(*t));
	if (!C.on || ref == NULL || canon_ref(ref, key) != 0)
		return 0;
	st = stripe_of(id_hash);
	/* The ticket first: a change seen after it stops the store. */
	t->usable = atomic_load(&C.connected);
	t->gen = atomic_load(&C.gen);
	t->stripe_gen = atomic_load(&st->gen);
	t->t0_ns = now = mono_ns();
	if (!t->usable || !listen_quiet()) {
		atomic_fetch_add(&n_misses, 1);
		return 0;
	}
	pthread_mutex_lock(&st->mu);
	for (e = st->b[bucket_of(st, id_hash)].head; e != NULL; e = e->next)
		if (sodium_memcmp(e->hash, id_hash, 32) == 0 &&
		    strcmp(e->ref, key) == 0)
			break;
	if (e != NULL && e->deadline_ns <= now) {
		unlink_entry(st, e);
		e = NULL;
	}
	if (e != NULL)
		atomic_fetch_add(&e->refs, 1);
	pthread_mutex_unlock(&st->mu);
	if (e == NULL) {
		atomic_fetch_add(&n_misses, 1);
		return 0;
	}
	atomic_fetch_add(&n_hits, 1);
	*hit = e;
	memset(s, 0, sizeof(*s));
	memset(m, 0, sizeof(*m));
	s->identity = e->identity;
	s->idp = e->idp;
	memcpy(m->id, e->mid, sizeof(m->id));
	m->groups = e->groups;
	m->ngroups = e->ngroups;
	m->invitees = e->ninv > 0 ? e->inv : NULL;
	m->ninvitees = e->ninv;
	return 1;
}

long long
gate_authz_sessions_life_ms(const struct db_authz_read *found, int ttl_ms,
                            int touch_s)
{
	double life = ttl_ms;

	if (!found->have_session || !found->have_meeting || !found->admitted ||
	    touch_s <= 0)
		return 0;
	if (found->session_left_s * 1000 < life)
		life = found->session_left_s * 1000;
	if (found->admission_left_s * 1000 < life)
		life = found->admission_left_s * 1000;
	/* The read after the touch interval touches the session again. */
	if ((touch_s - found->idle_age_s) * 1000 < life)
		life = (touch_s - found->idle_age_s) * 1000;
	return life > 0 ? (long long)life : 0;
}

static struct gate_authz_entry *
entry_new(const unsigned char id_hash[32], const char *ref,
          const struct db_session *s, const struct db_meeting *m)
{
	struct gate_authz_entry *e;

	if (strlen(ref) > GATE_AUTHZ_REF_MAX || strlen(m->id) >= sizeof(e->mid) ||
	    (e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->hash, id_hash, 32);
	memcpy(e->ref, ref, strlen(ref) + 1);
	memcpy(e->mid, m->id, strlen(m->id) + 1);
	if ((e->identity = strdup(s->identity)) == NULL ||
	    (e->idp = strdup(s->idp != NULL ? s->idp : "")) == NULL)
		goto fail;
	e->bytes = sizeof(*e) + strlen(e->identity) + 1 + strlen(e->idp) + 1;
	if (m->ngroups > 0) {
		if ((e->groups = calloc(m->ngroups + 1, sizeof(*e->groups))) ==
		    NULL)
			goto fail;
		e->bytes += (m->ngroups + 1) * sizeof(*e->groups);
		for (size_t i = 0; i < m->ngroups; i++) {
			if ((e->groups[i] = strdup(m->groups[i])) == NULL)
				goto fail;
			e->ngroups++;
			e->bytes += strlen(m->groups[i]) + 1;
		}
	}
	/* db_authz_read's invitees: the session's identity alone, or none. */
	for (size_t i = 0; i < m->ninvitees; i++)
		if (strcmp(m->invitees[i], s->identity) == 0) {
			e->inv[0] = e->identity;
			e->ninv = 1;
		}
	atomic_init(&e->refs, 1);
	return e;
fail:
	entry_free(e);
	return NULL;
}

void
gate_authz_sessions_put(const struct gate_authz_ticket *t,
                        const unsigned char id_hash[32], const char *ref,
                        const struct db_session *s, const struct db_meeting *m,
                        const struct db_authz_read *found, int touch_s)
{
	struct stripe *st;
	struct gate_authz_entry *e, *old, *next, *mine;
	char key[GATE_AUTHZ_REF_MAX + 1];
	size_t nmine;
	long long life;

	if (!C.on || !t->usable || ref == NULL || canon_ref(ref, key) != 0)
		return;
	life = gate_authz_sessions_life_ms(found, C.ttl_ms, touch_s);
	if (life <= 0 || (e = entry_new(id_hash, key, s, m)) == NULL)
		return;
	e->deadline_ns = t->t0_ns + life * 1000000LL;
	st = stripe_of(id_hash);
	if (e->bytes > st->cap_bytes / 8) {
		/* Asked from the database every time instead. */
		atomic_fetch_add(&n_too_large, 1);
		entry_free(e);
		return;
	}
	pthread_mutex_lock(&st->mu);
	if (!atomic_load(&C.connected) || atomic_load(&C.gen) != t->gen ||
	    atomic_load(&st->gen) != t->stripe_gen) {
		pthread_mutex_unlock(&st->mu);
		atomic_fetch_add(&n_stale_reads, 1);
		entry_free(e);
		return;
	}
	/* One entry per (session, meeting): the same reference or another
	 * one of the same meeting (its id and a link id) is replaced; then
	 * at most SESSION_MAX per session, the session's oldest first. */
	do {
		nmine = 0;
		mine = NULL;
		for (old = st->b[bucket_of(st, id_hash)].head; old != NULL;
		     old = next) {
			next = old->next;
			if (sodium_memcmp(old->hash, id_hash, 32) != 0)
				continue;
			if (strcmp(old->ref, key) == 0 ||
			    strcmp(old->mid, e->mid) == 0) {
				unlink_entry(st, old);
				continue;
			}
			nmine++;
			if (mine == NULL || old->seq < mine->seq)
				mine = old;
		}
		if (nmine >= SESSION_MAX && mine != NULL) {
			unlink_entry(st, mine);
			atomic_fetch_add(&n_session_evictions, 1);
		}
	} while (nmine > SESSION_MAX);
	while ((st->n >= st->cap || st->bytes + e->bytes > st->cap_bytes) &&
	       st->oldest != NULL) {
		unlink_entry(st, st->oldest);
		atomic_fetch_add(&n_evictions, 1);
	}
	e->seq = ++st->seq;
	e->next = st->b[bucket_of(st, id_hash)].head;
	st->b[bucket_of(st, id_hash)].head = e;
	e->older = st->newest;
	if (st->newest != NULL)
		st->newest->newer = e;
	else
		st->oldest = e;
	st->newest = e;
	st->n++;
	st->bytes += e->bytes;
	pthread_mutex_unlock(&st->mu);
	atomic_fetch_add(&n_stores, 1);
}

void
gate_authz_sessions_metrics(struct gate_buf *b)
{
	size_t n = 0, bytes = 0, cap_bytes = 0;

	if (C.on)
		for (int i = 0; i < NSTRIPES; i++) {
			pthread_mutex_lock(&C.st[i].mu);
			n += C.st[i].n;
			bytes += C.st[i].bytes;
			cap_bytes += C.st[i].cap_bytes;
			pthread_mutex_unlock(&C.st[i].mu);
		}
	gate_buf_printf(
	    b,
	    "# HELP roomgate_authz_session_cache_enabled 1 when /v1/authz "
	    "keeps positive database answers in memory ([authz] "
	    "session_cache)\n"
	    "# TYPE roomgate_authz_session_cache_enabled gauge\n"
	    "roomgate_authz_session_cache_enabled %d\n"
	    "# HELP roomgate_authz_session_cache_listen_connected 1 while the "
	    "LISTEN roomgate_authz connection is up and trusted (else the "
	    "cache is bypassed)\n"
	    "# TYPE roomgate_authz_session_cache_listen_connected gauge\n"
	    "roomgate_authz_session_cache_listen_connected %d\n"
	    "# TYPE roomgate_authz_session_cache_listen_connects_total "
	    "counter\n"
	    "roomgate_authz_session_cache_listen_connects_total %llu\n"
	    "# HELP roomgate_authz_session_cache_entries entries held now\n"
	    "# TYPE roomgate_authz_session_cache_entries gauge\n"
	    "roomgate_authz_session_cache_entries %zu\n"
	    "# HELP roomgate_authz_session_cache_bytes bytes the entries "
	    "hold now, and the most they may (max_bytes: 1 KiB per "
	    "session_cache_max_entries, at least 16 MiB)\n"
	    "# TYPE roomgate_authz_session_cache_bytes gauge\n"
	    "roomgate_authz_session_cache_bytes %zu\n"
	    "# TYPE roomgate_authz_session_cache_max_bytes gauge\n"
	    "roomgate_authz_session_cache_max_bytes %zu\n"
	    "# HELP roomgate_authz_session_cache_requests_total /v1/authz "
	    "requests naming a meeting, by result (hit: no database read)\n"
	    "# TYPE roomgate_authz_session_cache_requests_total counter\n"
	    "roomgate_authz_session_cache_requests_total{result=\"hit\"} "
	    "%llu\n"
	    "roomgate_authz_session_cache_requests_total{result=\"miss\"} "
	    "%llu\n"
	    "# HELP roomgate_authz_session_cache_stores_total positive "
	    "answers stored; stale_reads: not stored, a change came during "
	    "the read\n"
	    "# TYPE roomgate_authz_session_cache_stores_total counter\n"
	    "roomgate_authz_session_cache_stores_total %llu\n"
	    "# TYPE roomgate_authz_session_cache_stale_reads_total counter\n"
	    "roomgate_authz_session_cache_stale_reads_total %llu\n"
	    "# HELP roomgate_authz_session_cache_invalidations_total "
	    "notifications applied, by what they named\n"
	    "# TYPE roomgate_authz_session_cache_invalidations_total counter\n"
	    "roomgate_authz_session_cache_invalidations_total{kind="
	    "\"session\"} %llu\n"
	    "roomgate_authz_session_cache_invalidations_total{kind="
	    "\"meeting\"} %llu\n"
	    "roomgate_authz_session_cache_invalidations_total{kind=\"all\"} "
	    "%llu\n"
	    "# TYPE roomgate_authz_session_cache_dropped_total counter\n"
	    "roomgate_authz_session_cache_dropped_total %llu\n"
	    "# HELP roomgate_authz_session_cache_flushes_total whole-cache "
	    "drops (connection lost or back, a \"*\" notification)\n"
	    "# TYPE roomgate_authz_session_cache_flushes_total counter\n"
	    "roomgate_authz_session_cache_flushes_total %llu\n"
	    "# TYPE roomgate_authz_session_cache_evictions_total counter\n"
	    "roomgate_authz_session_cache_evictions_total %llu\n"
	    "# HELP roomgate_authz_session_cache_session_evictions_total a "
	    "session's oldest entry dropped for its newest (at most 16 a "
	    "session)\n"
	    "# TYPE roomgate_authz_session_cache_session_evictions_total "
	    "counter\n"
	    "roomgate_authz_session_cache_session_evictions_total %llu\n"
	    "# HELP roomgate_authz_session_cache_too_large_total answers not "
	    "stored: over an eighth of a stripe's byte budget\n"
	    "# TYPE roomgate_authz_session_cache_too_large_total counter\n"
	    "roomgate_authz_session_cache_too_large_total %llu\n",
	    C.on, C.on ? atomic_load(&C.connected) : 0,
	    (unsigned long long)atomic_load(&n_connects), n, bytes, cap_bytes,
	    (unsigned long long)atomic_load(&n_hits),
	    (unsigned long long)atomic_load(&n_misses),
	    (unsigned long long)atomic_load(&n_stores),
	    (unsigned long long)atomic_load(&n_stale_reads),
	    (unsigned long long)atomic_load(&n_inv_session),
	    (unsigned long long)atomic_load(&n_inv_meeting),
	    (unsigned long long)atomic_load(&n_inv_all),
	    (unsigned long long)atomic_load(&n_dropped),
	    (unsigned long long)atomic_load(&n_flushes),
	    (unsigned long long)atomic_load(&n_evictions),
	    (unsigned long long)atomic_load(&n_session_evictions),
	    (unsigned long long)atomic_load(&n_too_large));
}
