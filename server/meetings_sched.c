/*
 * Housekeeping thread of `serve`:
 * - scheduled code rotation: every [codes] rotation_check_interval seconds
 *   it rotates the codes of meetings whose rotation is due.
 *   db_rotation_run() takes a PostgreSQL advisory lock, so with several
 *   nodes only one works at a time, and each rotation re-checks that it is
 *   still due, so none happens twice;
 * - lockout sweep: deletes lockout counters that can no longer change a
 *   decision (db_sweep.h), so a flood of wrong codes from many addresses
 *   does not leave the table growing. Safe on every node at once;
 * - housekeeping: expired SAML requests, replay entries and sessions,
 *   webhook events delivered (or given up) long ago, and admissions that
 *   ended before the audit retention's cutoff (db_sweep_old()); every
 *   node, batches with SKIP LOCKED, so nodes never wait on each other.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "db/db_sweep.h"
#include "server/meetings.h"

#define BATCH 100
#define SWEEP_BATCH 1000
#define SWEEP_BATCHES 20  /* per pass: at most 20k rows, then yield */
#define SWEEP_INTERVAL_S 60 /* when rotation is off */

/* How long past its time a row of each kind is kept (seconds). */
#define KEEP_SAML_REQUESTS (60 * 60)        /* answered or not */
#define KEEP_SAML_REPLAY (5 * 60)           /* past the assertion's expiry */
#define KEEP_SESSIONS (24 * 60 * 60)        /* past expiry: "signed out" */
#define KEEP_OUTBOX_DELIVERED (7 * 24 * 60 * 60)
#define KEEP_OUTBOX_DEAD (30 * 24 * 60 * 60) /* time to requeue by hand */

/* Rows deleted by housekeeping since start, per kind (the metrics). */
static atomic_llong swept[DB_SWEEP_NKINDS];

struct gate_rotation {
	struct gate_app *app;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	int stop;
};

static int
make_code(void *ctx, const char *meeting_id, int code_length,
          struct db_code *out)
{
	const struct gate_codes *codes = ctx;
	char code[GATE_CODE_BUF];
	int r;

	r = gate_meeting_new_code(codes, meeting_id, code_length, NULL, code,
	                          sizeof(code), out);
	sodium_memzero(code, sizeof(code));
	return r;
}

int
gate_rotation_once(struct gate_app *app, int *rotated, char *err, size_t errlen)
{
	int n = 0, r, total = 0;

	/* Batches until nothing is due (or an error). */
	do {
		r = db_rotation_run(app->db, BATCH, make_code, app->codes,
		                    app->cfg->node_name, &n, err, errlen);
		total += n;
	} while (r == 0 && n == BATCH);
	if (rotated != NULL)
		*rotated = total;
	return r;
}

/* The longest time a counter can still matter: its counting windows and
 * the longest lock (after which lock_count is forgotten too). */
static long long
sweep_quiet_s(const struct gate_config *cfg)
{
	long long q = cfg->adm_lock_max_s;

	if (cfg->adm_window_s > q)
		q = cfg->adm_window_s;
	if (cfg->adm_probe_window_s > q)
		q = cfg->adm_probe_window_s;
	if (cfg->adm_lock_s > q)
		q = cfg->adm_lock_s;
	return q + 60; /* clock skew between nodes */
}

int
gate_sweep_once(struct gate_app *app, int *deleted, char *err, size_t errlen)
{
	int n = 0, r = 0, total = 0;

	for (int i = 0; i < SWEEP_BATCHES; i++) {
		r = db_sweep_lockouts(app->db, sweep_quiet_s(app->cfg),
		                      SWEEP_BATCH, &n, err, errlen);
		total += n;
		if (r != 0 || n < SWEEP_BATCH)
			break;
	}
	if (deleted != NULL)
		*deleted = total;
	return r;
}

/* How long past its time a row of `kind` is kept; -1: kept for ever. */
static long long
keep_s(const struct gate_config *cfg, enum db_sweep_kind kind)
{
	switch (kind) {
	case DB_SWEEP_SAML_REQUESTS:
		return KEEP_SAML_REQUESTS;
	case DB_SWEEP_SAML_REPLAY:
		return KEEP_SAML_REPLAY;
	case DB_SWEEP_SESSIONS:
		return KEEP_SESSIONS;
	case DB_SWEEP_OUTBOX_DELIVERED:
		return KEEP_OUTBOX_DELIVERED;
	case DB_SWEEP_OUTBOX_DEAD:
		return KEEP_OUTBOX_DEAD;
	case DB_SWEEP_ADMISSIONS_ENDED:
		return cfg->audit_retention_days > 0
		           ? (long long)cfg->audit_retention_days * 86400
		           : -1;
	case DB_SWEEP_NKINDS:
		break;
	}
	return -1;
}

int
gate_housekeeping_once(struct gate_app *app, int deleted[DB_SWEEP_NKINDS],
                       char *err, size_t errlen)
{
	int rc = 0;

	for (int k = 0; k < DB_SWEEP_NKINDS; k++) {
		long long keep = keep_s(app->cfg, (enum db_sweep_kind)k);
		int n = 0, r = 0;

		deleted[k] = 0;
		if (keep < 0)
			continue;
		for (int i = 0; i < SWEEP_BATCHES; i++) {
			r = db_sweep_old(app->db, (enum db_sweep_kind)k, keep,
			                 SWEEP_BATCH, &n, err, errlen);
			deleted[k] += n;
			if (r != 0 || n < SWEEP_BATCH)
				break;
		}
		atomic_fetch_add(&swept[k], deleted[k]);
		if (r != 0 && rc == 0)
			rc = r; /* the other kinds still get their pass */
	}
	return rc;
}

void
gate_housekeeping_metrics(struct gate_buf *b)
{
	gate_buf_printf(b, "# HELP roomgate_housekeeping_deleted_total Rows "
	                   "deleted by housekeeping since start, by kind.\n"
	                   "# TYPE roomgate_housekeeping_deleted_total "
	                   "counter\n");
	for (int k = 0; k < DB_SWEEP_NKINDS; k++)
		gate_buf_printf(b,
		                "roomgate_housekeeping_deleted_total{kind=\"%s\"}"
		                " %lld\n",
		                db_sweep_kind_name((enum db_sweep_kind)k),
		                (long long)atomic_load(&swept[k]));
}

static void
pass(struct gate_app *app)
{
	char err[512];
	int n, hk[DB_SWEEP_NKINDS];

	if (gate_sweep_once(app, &n, err, sizeof(err)) != 0)
		gate_log(GATE_LOG_WARN, NULL, "sweep_failed",
		         "sweeping lockout counters failed, will retry: %s",
		         err);
	else if (n > 0)
		gate_log(GATE_LOG_INFO, NULL, "sweep",
		         "deleted %d expired lockout counter(s)", n);
	if (gate_housekeeping_once(app, hk, err, sizeof(err)) != 0)
		gate_log(GATE_LOG_WARN, NULL, "housekeeping_failed",
		         "housekeeping failed, will retry: %s", err);
	for (int k = 0; k < DB_SWEEP_NKINDS; k++)
		if (hk[k] > 0)
			gate_log(GATE_LOG_INFO, NULL, "housekeeping",
			         "deleted %d row(s) of %s", hk[k],
			         db_sweep_kind_name((enum db_sweep_kind)k));
	if (app->codes->rotation_check_s <= 0)
		return;
	if (gate_rotation_once(app, &n, err, sizeof(err)) != 0)
		gate_log(GATE_LOG_WARN, NULL, "rotation_failed",
		         "scheduled code rotation failed, will retry: %s", err);
	else if (n > 0)
		gate_log(GATE_LOG_INFO, NULL, "rotation",
		         "rotated the codes of %d meeting(s)", n);
}

static void *
run(void *arg)
{
	struct gate_rotation *rt = arg;
	int every = rt->app->codes->rotation_check_s > 0
	                ? rt->app->codes->rotation_check_s
	                : SWEEP_INTERVAL_S;
	struct timespec until;

	pthread_mutex_lock(&rt->mu);
	while (!rt->stop) {
		pthread_mutex_unlock(&rt->mu);
		pass(rt->app);
		pthread_mutex_lock(&rt->mu);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += every;
		while (!rt->stop && pthread_cond_timedwait(&rt->cv, &rt->mu,
		                                           &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&rt->mu);
	return NULL;
}

int
gate_rotation_start(struct gate_app *app, struct gate_rotation **out, char *err,
                    size_t errlen)
{
	struct gate_rotation *rt;
	pthread_condattr_t ca;

	*out = NULL;
	rt = calloc(1, sizeof(*rt));
	if (rt == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rt->app = app;
	pthread_mutex_init(&rt->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rt->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&rt->thread, NULL, run, rt) != 0) {
		snprintf(err, errlen, "cannot start the housekeeping thread");
		pthread_cond_destroy(&rt->cv);
		pthread_mutex_destroy(&rt->mu);
		free(rt);
		return -1;
	}
	*out = rt;
	return 0;
}

void
gate_rotation_stop(struct gate_rotation *rt)
{
	if (rt == NULL)
		return;
	pthread_mutex_lock(&rt->mu);
	rt->stop = 1;
	pthread_cond_signal(&rt->cv);
	pthread_mutex_unlock(&rt->mu);
	pthread_join(rt->thread, NULL);
	pthread_cond_destroy(&rt->cv);
	pthread_mutex_destroy(&rt->mu);
	free(rt);
}
