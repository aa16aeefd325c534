/*
 * server/authz_cache.c -- the forward-auth membership cache
 * (server/authz_cache.h): a directory sync follower on its own thread and
 * the positive-only question /v1/authz asks it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/authz_cache.h"
#include "server/authz_sessions.h"

struct cache {
	struct dir_watch *dw;
	pthread_t thread;
	atomic_int stop;
};

/*
 * The process's cache. Lookups hold mu for reading: start and stop take
 * it for writing, so no lookup sees a follower being freed (the HTTP
 * service is stopped before the watcher anyway).
 */
static pthread_rwlock_t mu = PTHREAD_RWLOCK_INITIALIZER;
static struct cache *cur;
static atomic_ullong from_cache, from_live;

static int
keep_going(void *arg)
{
	struct cache *c = arg;

	return !atomic_load(&c->stop);
}

static void *
run(void *arg)
{
	struct cache *c = arg;

	dir_watch_run(c->dw);
	return NULL;
}

static int
membership_start(const struct gate_config *cfg, const struct dir_config *dc,
                 int watching, char *err, size_t errlen)
{
	struct dir_config c = *dc; /* its log hook is the server's */
	struct cache *k;

	if (!cfg->authz_membership_cache)
		return 0;
	if (!watching) {
		if (cfg->dir_watch == 2) {
			snprintf(err, errlen,
			         "[authz] membership_cache = on needs the "
			         "directory watcher: set [directory] watch = "
			         "on (an OpenLDAP directory with syncprov), or "
			         "membership_cache = off");
			return -1;
		}
		gate_log(GATE_LOG_WARN, NULL, "authz_cache_off",
		         "membership cache off: the directory watcher does not "
		         "run here ([directory] watch = auto); /v1/authz asks "
		         "the directory every time");
		return 0;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (dir_watch_open_follower(&c, keep_going, k, &k->dw, err, errlen) !=
	    0) {
		free(k);
		return -1;
	}
	if (pthread_create(&k->thread, NULL, run, k) != 0) {
		dir_watch_close(k->dw);
		free(k);
		snprintf(err, errlen,
		         "cannot start the membership cache thread");
		return -1;
	}
	pthread_rwlock_wrlock(&mu);
	cur = k;
	pthread_rwlock_unlock(&mu);
	gate_log(GATE_LOG_INFO, NULL, "authz_cache_on",
	         "membership cache on: /v1/authz admits from this node's "
	         "directory follower while it is caught up, else asks live");
	return 0;
}

/* The session cache (authz_sessions.h) starts and stops with this one:
 * its auto setting follows whether the membership cache runs. */
int
gate_authz_cache_start(const struct gate_config *cfg,
                       const struct dir_config *dc, int watching, char *err,
                       size_t errlen)
{
	int on;

	if (membership_start(cfg, dc, watching, err, errlen) != 0)
		return -1;
	pthread_rwlock_rdlock(&mu);
	on = cur != NULL;
	pthread_rwlock_unlock(&mu);
	if (gate_authz_sessions_start(cfg, on, err, errlen) != 0) {
		gate_authz_cache_stop();
		return -1;
	}
	return 0;
}

void
gate_authz_cache_stop(void)
{
	struct cache *k;

	gate_authz_sessions_stop();

	pthread_rwlock_wrlock(&mu);
	k = cur;
	cur = NULL;
	pthread_rwlock_unlock(&mu);
	if (k == NULL)
		return;
	atomic_store(&k->stop, 1);
	pthread_join(k->thread, NULL);
	dir_watch_close(k->dw);
	free(k);
}

static int
is_invitee(const struct db_meeting *m, const char *identity)
{
	for (size_t i = 0; i < m->ninvitees; i++)
		if (strcmp(m->invitees[i], identity) == 0)
			return 1;
	return 0;
}

int
gate_authz_cache_decide(const struct db_meeting *m, const char *identity,
                        int answer, int gi, const char **group)
{
	*group = NULL;
	if (answer == DIR_WQ_MEMBER && gi >= 0 && (size_t)gi < m->ngroups) {
		*group = m->groups[gi];
		return 1;
	}
	/* gate_admit_member's invitee rule: found, unique and active. */
	if ((answer == DIR_WQ_MEMBER || answer == DIR_WQ_ACTIVE) &&
	    is_invitee(m, identity)) {
		*group = "invitee";
		return 1;
	}
	return 0;
}

int
gate_authz_cache_admits(const struct db_meeting *m, const char *identity,
                        const char **group)
{
	int answer = DIR_WQ_UNKNOWN, gi = -1;

	*group = NULL;
	if (m->ngroups > DIR_MAX_GROUPS)
		return 0;
	pthread_rwlock_rdlock(&mu);
	if (cur != NULL)
		answer = dir_watch_lookup(cur->dw, identity,
		                          (const char *const *)m->groups,
		                          m->ngroups, &gi);
	pthread_rwlock_unlock(&mu);
	return gate_authz_cache_decide(m, identity, answer, gi, group);
}

void
gate_authz_cache_count(int cached)
{
	atomic_fetch_add(cached ? &from_cache : &from_live, 1);
}

void
gate_authz_cache_metrics(struct gate_buf *b)
{
	struct dir_watch_stats st;
	int on, active = 0;

	memset(&st, 0, sizeof(st));
	pthread_rwlock_rdlock(&mu);
	on = cur != NULL;
	if (on) {
		active = dir_watch_usable(cur->dw);
		dir_watch_get_stats(cur->dw, &st);
	}
	pthread_rwlock_unlock(&mu);
	gate_buf_printf(
	    b,
	    "# HELP roomgate_authz_cache_enabled 1 when this node runs the "
	    "membership cache's directory follower\n"
	    "# TYPE roomgate_authz_cache_enabled gauge\n"
	    "roomgate_authz_cache_enabled %d\n"
	    "# HELP roomgate_authz_cache_active 1 when /v1/authz may answer "
	    "from the membership cache now (follower connected and caught "
	    "up)\n"
	    "# TYPE roomgate_authz_cache_active gauge\n"
	    "roomgate_authz_cache_active %d\n"
	    "# HELP roomgate_authz_decisions_total /v1/authz directory "
	    "decisions by source (cache: admitted from the cache; live: "
	    "asked the directory)\n"
	    "# TYPE roomgate_authz_decisions_total counter\n"
	    "roomgate_authz_decisions_total{source=\"cache\"} %llu\n"
	    "roomgate_authz_decisions_total{source=\"live\"} %llu\n"
	    "# HELP roomgate_authz_cache_entries entries the follower holds "
	    "(as of its last refresh)\n"
	    "# TYPE roomgate_authz_cache_entries gauge\n"
	    "roomgate_authz_cache_entries{kind=\"person\"} %zu\n"
	    "roomgate_authz_cache_entries{kind=\"group\"} %zu\n"
	    "# TYPE roomgate_authz_cache_follower_connects_total counter\n"
	    "roomgate_authz_cache_follower_connects_total %llu\n"
	    "# TYPE roomgate_authz_cache_follower_disconnects_total counter\n"
	    "roomgate_authz_cache_follower_disconnects_total %llu\n"
	    "# TYPE roomgate_authz_cache_follower_full_refreshes_total "
	    "counter\n"
	    "roomgate_authz_cache_follower_full_refreshes_total %llu\n",
	    on, active, (unsigned long long)atomic_load(&from_cache),
	    (unsigned long long)atomic_load(&from_live), st.people, st.groups,
	    (unsigned long long)st.connects, (unsigned long long)st.disconnects,
	    (unsigned long long)st.full_refreshes);
	gate_authz_sessions_metrics(b);
}
