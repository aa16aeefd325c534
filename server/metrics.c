/*
 * Prometheus metrics. Counters are lock-free atomics indexed by route and
 * status so the request path never takes a lock to count itself.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "server/admit.h"
#include "server/audit_seal.h"
#include "server/meetings.h"
#include "server/server.h"
#include "server/watcher.h"
#include "server/webhooks.h"

#define MAX_ROUTES 64
#define MIN_STATUS 100
#define NSTATUS 500 /* 100..599 */

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				 0.05,	 0.1,	0.25,	0.5,   1,    2.5,
				 5,	 10};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static _Atomic uint64_t requests[MAX_ROUTES][NSTATUS];
static _Atomic uint64_t hist[MAX_ROUTES][NBUCKETS + 1];
static _Atomic uint64_t hist_sum_us[MAX_ROUTES];
static _Atomic uint64_t hist_count[MAX_ROUTES];

void
gate_metrics_observe(int route, int status, double seconds)
{
	size_t b;

	if (route < 0 || route >= MAX_ROUTES)
		route = gate_route_count() - 1;
	if (status >= MIN_STATUS && status < MIN_STATUS + NSTATUS)
		atomic_fetch_add_explicit(&requests[route][status - MIN_STATUS],
					  1, memory_order_relaxed);
	for (b = 0; b < NBUCKETS; b++)
		if (seconds <= buckets[b])
			break;
	atomic_fetch_add_explicit(&hist[route][b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&hist_sum_us[route],
				  (uint64_t)(seconds * 1e6),
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&hist_count[route], 1, memory_order_relaxed);
}

static void
render_pool(struct gate_buf *b, const char *name, int size, int in_use,
	    int connected, int waiting, uint64_t connects, uint64_t failures,
	    uint64_t timeouts)
{
	gate_buf_printf(b,
			"# HELP roomgate_%s_pool_connections Pooled "
			"connections by state.\n"
			"# TYPE roomgate_%s_pool_connections gauge\n",
			name, name);
	gate_buf_printf(b,
			"roomgate_%s_pool_connections{state=\"configured\"} %d\n"
			"roomgate_%s_pool_connections{state=\"connected\"} %d\n"
			"roomgate_%s_pool_connections{state=\"in_use\"} %d\n",
			name, size, name, connected, name, in_use);
	gate_buf_printf(b,
			"# HELP roomgate_%s_pool_waiting Threads waiting for "
			"a pooled connection.\n"
			"# TYPE roomgate_%s_pool_waiting gauge\n"
			"roomgate_%s_pool_waiting %d\n",
			name, name, name, waiting);
	gate_buf_printf(b,
			"# HELP roomgate_%s_connects_total Successful "
			"(re)connects.\n"
			"# TYPE roomgate_%s_connects_total counter\n"
			"roomgate_%s_connects_total %llu\n",
			name, name, name, (unsigned long long)connects);
	gate_buf_printf(b,
			"# HELP roomgate_%s_connect_failures_total Failed "
			"connection attempts.\n"
			"# TYPE roomgate_%s_connect_failures_total counter\n"
			"roomgate_%s_connect_failures_total %llu\n",
			name, name, name, (unsigned long long)failures);
	gate_buf_printf(b,
			"# HELP roomgate_%s_acquire_timeouts_total Waits for a "
			"pooled connection that timed out.\n"
			"# TYPE roomgate_%s_acquire_timeouts_total counter\n"
			"roomgate_%s_acquire_timeouts_total %llu\n",
			name, name, name, (unsigned long long)timeouts);
}

/* The live directory checks (dir_check_member / dir_check_role). */
static void
render_dir_checks(struct gate_buf *b, const struct dir_pool_stats *st)
{
	static const char *const errs[8] = {NULL,	  "invalid", "unavailable",
					    "timeout",	  "auth",    "tls",
					    "no_memory", NULL};
	uint64_t cum = 0, count = 0;
	int i;

	gate_buf_printf(b, "# HELP roomgate_directory_checks_total Live "
			   "directory checks by verdict.\n"
			   "# TYPE roomgate_directory_checks_total counter\n");
	for (i = 0; i < DIR_V_COUNT; i++)
		gate_buf_printf(b,
				"roomgate_directory_checks_total{verdict=\"%s\"}"
				" %llu\n",
				dir_verdict_name(i),
				(unsigned long long)st->checks[i]);
	gate_buf_printf(b, "# HELP roomgate_directory_check_errors_total "
			   "Checks the directory did not answer, by cause.\n"
			   "# TYPE roomgate_directory_check_errors_total "
			   "counter\n");
	for (i = 1; i < 7; i++)
		gate_buf_printf(b,
				"roomgate_directory_check_errors_total{error="
				"\"%s\"} %llu\n",
				errs[i], (unsigned long long)st->check_errors[i]);
	gate_buf_printf(b,
			"# HELP roomgate_directory_round_trips_total LDAP "
			"operations sent by checks.\n"
			"# TYPE roomgate_directory_round_trips_total counter\n"
			"roomgate_directory_round_trips_total %llu\n",
			(unsigned long long)st->round_trips);
	gate_buf_printf(b, "# HELP roomgate_directory_check_duration_seconds "
			   "Time of one check, pool wait included.\n"
			   "# TYPE roomgate_directory_check_duration_seconds "
			   "histogram\n");
	for (i = 0; i <= DIR_LATENCY_BUCKETS; i++)
		count += st->latency_buckets[i];
	for (i = 0; i < DIR_LATENCY_BUCKETS; i++) {
		cum += st->latency_buckets[i];
		gate_buf_printf(b,
				"roomgate_directory_check_duration_seconds_"
				"bucket{le=\"%g\"} %llu\n",
				dir_latency_bounds_s[i],
				(unsigned long long)cum);
	}
	gate_buf_printf(b,
			"roomgate_directory_check_duration_seconds_bucket{le="
			"\"+Inf\"} %llu\n"
			"roomgate_directory_check_duration_seconds_sum %.6f\n"
			"roomgate_directory_check_duration_seconds_count %llu\n",
			(unsigned long long)count,
			(double)st->latency_sum_us / 1e6,
			(unsigned long long)count);
}

void
gate_metrics_render(struct gate_buf *b, struct db_pool *db,
		    struct dir_pool *dir)
{
	int nroutes = gate_route_count();

	gate_buf_printf(b,
			"# HELP roomgate_build_info Version of this binary.\n"
			"# TYPE roomgate_build_info gauge\n"
			"roomgate_build_info{version=\"%s\"} 1\n",
			ROOMGATE_VERSION);
	gate_lifecycle_metrics(b);
	gate_buf_printf(b, "# HELP roomgate_http_requests_total HTTP requests "
			   "by route and status.\n"
			   "# TYPE roomgate_http_requests_total counter\n");
	for (int r = 0; r < nroutes && r < MAX_ROUTES; r++)
		for (int s = 0; s < NSTATUS; s++) {
			uint64_t v = atomic_load_explicit(
				&requests[r][s], memory_order_relaxed);

			if (v != 0)
				gate_buf_printf(
					b,
					"roomgate_http_requests_total{route="
					"\"%s\",status=\"%d\"} %llu\n",
					gate_route_name(r), s + MIN_STATUS,
					(unsigned long long)v);
		}
	gate_buf_printf(b, "# HELP roomgate_http_request_duration_seconds "
			   "Time from request start to response queued.\n"
			   "# TYPE roomgate_http_request_duration_seconds "
			   "histogram\n");
	for (int r = 0; r < nroutes && r < MAX_ROUTES; r++) {
		uint64_t cum = 0, count;

		count = atomic_load_explicit(&hist_count[r],
					     memory_order_relaxed);
		if (count == 0)
			continue;
		for (size_t i = 0; i < NBUCKETS; i++) {
			cum += atomic_load_explicit(&hist[r][i],
						    memory_order_relaxed);
			gate_buf_printf(b,
					"roomgate_http_request_duration_"
					"seconds_bucket{route=\"%s\",le=\"%g\"}"
					" %llu\n",
					gate_route_name(r), buckets[i],
					(unsigned long long)cum);
		}
		cum += atomic_load_explicit(&hist[r][NBUCKETS],
					    memory_order_relaxed);
		gate_buf_printf(
			b,
			"roomgate_http_request_duration_seconds_bucket{route="
			"\"%s\",le=\"+Inf\"} %llu\n"
			"roomgate_http_request_duration_seconds_sum{route="
			"\"%s\"} %.6f\n"
			"roomgate_http_request_duration_seconds_count{route="
			"\"%s\"} %llu\n",
			gate_route_name(r), (unsigned long long)cum,
			gate_route_name(r),
			(double)atomic_load_explicit(&hist_sum_us[r],
						     memory_order_relaxed) /
				1e6,
			gate_route_name(r), (unsigned long long)cum);
	}
	gate_webhooks_metrics(b, db);
	gate_watcher_metrics(b, db);
	gate_sealer_metrics(b);
	gate_audit_records_metrics(b);
	gate_housekeeping_metrics(b);
	gate_admit_metrics(b);
	if (db != NULL) {
		struct db_pool_stats st;

		db_pool_get_stats(db, &st);
		render_pool(b, "db", st.size, st.in_use, st.connected,
			    st.waiting, st.connects, st.connect_failures,
			    st.acquire_timeouts);
	}
	if (dir != NULL) {
		struct dir_pool_stats st;

		dir_pool_get_stats(dir, &st);
		render_pool(b, "ldap", st.size, st.in_use, st.connected,
			    st.waiting, st.connects, st.connect_failures,
			    st.acquire_timeouts);
		render_dir_checks(b, &st);
	}
}
