/*
 * server/watcher.c -- push revocation (server/watcher.h): leader election
 * over a PostgreSQL advisory lock, the directory watcher on the leader,
 * and each change applied in one transaction (db_watch_apply).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db_watch.h"
#include "server/authz_cache.h"
#include "server/watcher.h"

/* How often the leader checks that its lock connection lives. */
#define LEADER_CHECK_MS 1000

struct gate_watcher {
	struct gate_app *app;
	struct dir_watch *dw;
	struct db_watch_leader *leader;
	pthread_t thread;
	atomic_int stop;
	atomic_int is_leader;
	atomic_ullong applied, apply_failures, revoked_admissions,
	    revoked_sessions, takeovers;
	int64_t last_check_ms;
};

/* The one watcher of this process, for the metrics page. */
static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gate_watcher *cur;

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
same_group(const char *stored, const char *group_dn)
{
	char *n = NULL;
	int same;

	if (dir_dn_normalize(stored, &n) != 0)
		return 0;
	same = strcmp(n, group_dn) == 0;
	free(n);
	return same;
}

static int
on_change(void *arg, const struct dir_watch_event *ev)
{
	struct gate_watcher *w = arg;
	struct db_watch_change ch;
	char err[1024];
	long na = 0, ns = 0;
	int r;

	memset(&ch, 0, sizeof(ch));
	ch.kind = ev->kind == DIR_WATCH_LOST       ? DB_WATCH_LOST
	          : ev->kind == DIR_WATCH_DISABLED ? DB_WATCH_DISABLED
	          : ev->kind == DIR_WATCH_DELETED  ? DB_WATCH_DELETED
	                                           : DB_WATCH_GROUP_MEMBERS;
	ch.identity = ev->identity;
	ch.group_dn = ev->group_dn;
	ch.members = ev->members;
	ch.nmembers = ev->nmembers;
	ch.revocable = ev->revocable;
	ch.revocable_ctx = ev->revocable_ctx;
	ch.node = w->app->cfg->node_name;
	r = db_watch_apply(w->app->db, &ch, same_group, &na, &ns, err,
	                   sizeof(err));
	if (r != 0) {
		atomic_fetch_add(&w->apply_failures, 1);
		gate_log(GATE_LOG_ERROR, NULL, "directory_change_failed",
		         "a directory change (%s %s) could not be applied: "
		         "%s; the watcher resyncs the whole directory",
		         ev->identity ? ev->identity : "group",
		         ev->group_dn ? ev->group_dn : "", err);
		return -1;
	}
	atomic_fetch_add(&w->applied, 1);
	atomic_fetch_add(&w->revoked_admissions, (unsigned long long)na);
	atomic_fetch_add(&w->revoked_sessions, (unsigned long long)ns);
	if (na > 0 || ns > 0)
		gate_log(GATE_LOG_INFO, NULL, "directory_revoked",
		         "directory change: %s%s%s -- %ld admission(s) and "
		         "%ld session(s) ended",
		         ev->kind == DIR_WATCH_LOST       ? "lost membership "
		         : ev->kind == DIR_WATCH_DISABLED ? "disabled "
		         : ev->kind == DIR_WATCH_DELETED  ? "deleted "
		                                          : "group members ",
		         ev->identity ? ev->identity : "",
		         ev->group_dn ? ev->group_dn : "", na, ns);
	return 0;
}

static void
on_cookie(void *arg, const char *cookie, size_t len)
{
	struct gate_watcher *w = arg;
	char err[512];

	/* A cookie not saved only costs a longer resume elsewhere. */
	if (db_watch_cookie_save(w->app->db, cookie, len, err, sizeof(err)) !=
	    0)
		gate_log(GATE_LOG_WARN, NULL, "directory_cookie_not_saved",
		         "%s", err);
}

static int
keep_going(void *arg)
{
	struct gate_watcher *w = arg;
	char err[512];
	int64_t now;

	if (atomic_load(&w->stop))
		return 0;
	now = mono_ms();
	if (now - w->last_check_ms >= LEADER_CHECK_MS) {
		w->last_check_ms = now;
		if (db_watch_leader_alive(w->leader, err, sizeof(err)) != 0) {
			gate_log(GATE_LOG_WARN, NULL,
			         "directory_watch_lost_lock",
			         "the watcher lock's database connection "
			         "broke (%s): stepping down",
			         err);
			return 0;
		}
	}
	return 1;
}

/* Sleeps ms in small steps; 0 when stopping. */
static int
nap(struct gate_watcher *w, int ms)
{
	while (ms > 0 && !atomic_load(&w->stop)) {
		int step = ms > 100 ? 100 : ms;

		usleep((useconds_t)step * 1000);
		ms -= step;
	}
	return !atomic_load(&w->stop);
}

static void *
run(void *arg)
{
	struct gate_watcher *w = arg;
	const struct gate_config *cfg = w->app->cfg;
	char err[1024];
	int r, last_err = 0;

	while (!atomic_load(&w->stop)) {
		r = db_watch_leader_try(cfg->db_url, cfg->db_connect_timeout_s,
		                        cfg->node_name, &w->leader, err,
		                        sizeof(err));
		if (r < 0 && !last_err)
			gate_log(GATE_LOG_WARN, NULL, "directory_watch_no_lock",
			         "cannot ask for the watcher lock: %s", err);
		last_err = r < 0;
		if (r != 1) {
			nap(w, cfg->dir_watch_retry_ms);
			continue;
		}
		atomic_store(&w->is_leader, 1);
		atomic_fetch_add(&w->takeovers, 1);
		gate_log(GATE_LOG_INFO, NULL, "directory_watch_leader",
		         "this node now runs the directory watcher");
		/* A new leader has no baseline: full refresh and reconcile. */
		dir_watch_reset(w->dw);
		w->last_check_ms = mono_ms();
		dir_watch_run(w->dw);
		atomic_store(&w->is_leader, 0);
		db_watch_leader_release(w->leader);
		w->leader = NULL;
		if (!atomic_load(&w->stop))
			gate_log(GATE_LOG_INFO, NULL, "directory_watch_standby",
			         "this node no longer runs the directory "
			         "watcher; trying again");
		nap(w, cfg->dir_watch_retry_ms);
	}
	return NULL;
}

int
gate_watcher_start(struct gate_app *app, const struct dir_config *dc,
                   struct gate_watcher **out, char *err, size_t errlen)
{
	const struct gate_config *cfg = app->cfg;
	struct gate_watcher *w;
	struct dir_watch_hooks h;
	int on;

	*out = NULL;
	/* auto: on for the directories it can follow -- OpenLDAP (content
	 * sync) and AD (change notification; if the server refuses it the
	 * watcher logs why and retries, admissions are still checked
	 * live). */
	on = cfg->dir_watch == 1 ||
	     (cfg->dir_watch == 0 && (cfg->dir_active == DIR_ACTIVE_OPENLDAP ||
	                              cfg->dir_active == DIR_ACTIVE_AD));
	if (!on) {
		gate_log(GATE_LOG_INFO, NULL, "directory_watch_off",
		         "directory watcher off ([directory] watch): "
		         "admissions end at the next live check only");
		return gate_authz_cache_start(cfg, dc, 0, err, errlen);
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->app = app;
	memset(&h, 0, sizeof(h));
	h.change = on_change;
	h.cookie = on_cookie;
	h.keep_going = keep_going;
	h.arg = w;
	if (dir_watch_open(dc, &h, &w->dw, err, errlen) != 0) {
		free(w);
		if (cfg->dir_watch == 1)
			return -1;
		/* auto: a setup the watcher cannot follow (no base, a
		 * filter without (attr={identity})) leaves it off rather
		 * than refusing to serve. */
		gate_log(GATE_LOG_WARN, NULL, "directory_watch_off",
		         "directory watcher off (watch = auto): %s", err);
		if (errlen > 0)
			err[0] = '\0';
		return gate_authz_cache_start(cfg, dc, 0, err, errlen);
	}
	if (pthread_create(&w->thread, NULL, run, w) != 0) {
		dir_watch_close(w->dw);
		free(w);
		snprintf(err, errlen, "cannot start the watcher thread");
		return -1;
	}
	pthread_mutex_lock(&cur_mu);
	cur = w;
	pthread_mutex_unlock(&cur_mu);
	/* The membership cache follows the directory wherever the watcher
	 * runs (every node, leader or not). It follows OpenLDAP-style
	 * directories only: with AD under watch = auto it stays off as
	 * before (its own warning) rather than refusing to start. */
	if (gate_authz_cache_start(
	        cfg, dc,
	        !(cfg->dir_watch == 0 && cfg->dir_active == DIR_ACTIVE_AD), err,
	        errlen) != 0) {
		gate_watcher_stop(w);
		return -1;
	}
	*out = w;
	return 0;
}

void
gate_watcher_stop(struct gate_watcher *w)
{
	gate_authz_cache_stop();
	if (w == NULL)
		return;
	pthread_mutex_lock(&cur_mu);
	if (cur == w)
		cur = NULL;
	pthread_mutex_unlock(&cur_mu);
	atomic_store(&w->stop, 1);
	pthread_join(w->thread, NULL);
	db_watch_leader_release(w->leader);
	dir_watch_close(w->dw);
	free(w);
}

void
gate_watcher_metrics(struct gate_buf *b, struct db_pool *db)
{
	struct dir_watch_stats st;
	struct db_watch_status ds;
	char err[256];
	int64_t now_ms;
	struct timespec ts;

	gate_authz_cache_metrics(b);
	pthread_mutex_lock(&cur_mu);
	if (cur == NULL) {
		pthread_mutex_unlock(&cur_mu);
		return;
	}
	dir_watch_get_stats(cur->dw, &st);
	gate_buf_printf(
	    b,
	    "# HELP roomgate_directory_watch_leader 1 when this node runs "
	    "the directory watcher\n"
	    "# TYPE roomgate_directory_watch_leader gauge\n"
	    "roomgate_directory_watch_leader %d\n"
	    "# HELP roomgate_directory_watch_connected 1 while the sync "
	    "search runs\n"
	    "# TYPE roomgate_directory_watch_connected gauge\n"
	    "roomgate_directory_watch_connected %d\n"
	    "# HELP roomgate_directory_watch_caught_up 1 when connected and "
	    "the refresh is done\n"
	    "# TYPE roomgate_directory_watch_caught_up gauge\n"
	    "roomgate_directory_watch_caught_up %d\n"
	    "# TYPE roomgate_directory_watch_connects_total counter\n"
	    "roomgate_directory_watch_connects_total %llu\n"
	    "# TYPE roomgate_directory_watch_disconnects_total counter\n"
	    "roomgate_directory_watch_disconnects_total %llu\n"
	    "# TYPE roomgate_directory_watch_full_refreshes_total counter\n"
	    "roomgate_directory_watch_full_refreshes_total %llu\n"
	    "# TYPE roomgate_directory_watch_messages_total counter\n"
	    "roomgate_directory_watch_messages_total %llu\n"
	    "# HELP roomgate_directory_changes_applied_total directory "
	    "changes applied by this node\n"
	    "# TYPE roomgate_directory_changes_applied_total counter\n"
	    "roomgate_directory_changes_applied_total %llu\n"
	    "# TYPE roomgate_directory_change_failures_total counter\n"
	    "roomgate_directory_change_failures_total %llu\n"
	    "# TYPE roomgate_directory_revoked_admissions_total counter\n"
	    "roomgate_directory_revoked_admissions_total %llu\n"
	    "# TYPE roomgate_directory_revoked_sessions_total counter\n"
	    "roomgate_directory_revoked_sessions_total %llu\n"
	    "# TYPE roomgate_directory_watch_takeovers_total counter\n"
	    "roomgate_directory_watch_takeovers_total %llu\n"
	    "# TYPE roomgate_directory_watch_entries gauge\n"
	    "roomgate_directory_watch_entries{kind=\"person\"} %zu\n"
	    "roomgate_directory_watch_entries{kind=\"group\"} %zu\n",
	    atomic_load(&cur->is_leader), st.connected, st.caught_up,
	    (unsigned long long)st.connects, (unsigned long long)st.disconnects,
	    (unsigned long long)st.full_refreshes,
	    (unsigned long long)st.entries,
	    (unsigned long long)atomic_load(&cur->applied),
	    (unsigned long long)atomic_load(&cur->apply_failures),
	    (unsigned long long)atomic_load(&cur->revoked_admissions),
	    (unsigned long long)atomic_load(&cur->revoked_sessions),
	    (unsigned long long)atomic_load(&cur->takeovers), st.people,
	    st.groups);
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	gate_buf_printf(b,
	                "# HELP roomgate_directory_watch_last_message_age_"
	                "seconds since this node's watcher last heard from "
	                "the directory (-1: never)\n"
	                "# TYPE roomgate_directory_watch_last_message_age_"
	                "seconds gauge\n"
	                "roomgate_directory_watch_last_message_age_seconds "
	                "%.3f\n",
	                st.last_event_unix_ms > 0
	                    ? (double)(now_ms - st.last_event_unix_ms) / 1000.0
	                    : -1.0);
	pthread_mutex_unlock(&cur_mu);
	if (db != NULL && db_watch_status(db, &ds, err, sizeof(err)) == 0)
		gate_buf_printf(
		    b,
		    "# HELP roomgate_directory_watch_cookie_age_seconds since "
		    "the leader last saved a sync cookie (-1: never)\n"
		    "# TYPE roomgate_directory_watch_cookie_age_seconds gauge\n"
		    "roomgate_directory_watch_cookie_age_seconds %.3f\n"
		    "# TYPE roomgate_directory_watch_last_change_age_seconds "
		    "gauge\n"
		    "roomgate_directory_watch_last_change_age_seconds %.3f\n"
		    "# TYPE roomgate_directory_watch_changes_applied gauge\n"
		    "roomgate_directory_watch_changes_applied %lld\n",
		    ds.cookie_age_s, ds.change_age_s, ds.changes_applied);
}
