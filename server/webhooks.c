/*
 * The outbox deliverer (see webhooks.h for what a receiver is sent).
 *
 * Each worker loops: claim one due event with a lease (one short
 * statement; no connection or transaction is held while posting), POST it
 * with libcurl, then record delivered or the next attempt (exponential
 * backoff with full jitter) or, past [webhooks] max_age, the dead letter.
 * Every node runs workers; FOR UPDATE SKIP LOCKED and the lease keep two
 * of them off the same event while the lease runs.
 *
 * Workers idle for [webhooks] poll_interval_ms between looks, but a
 * listener thread per node holds a LISTEN roomgate_outbox connection
 * (migration 0016 notifies when an outbox row commits, on any node) and
 * wakes them at once, so an event goes out within milliseconds. The poll
 * stays the fallback: while the listener is disconnected events wait at
 * most one poll, and none is lost (rows stay in the outbox).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "db/db_outbox.h"
#include "server/http_int.h"
#include "server/meetings.h"
#include "server/webhooks.h"

#define RESP_KEEP 200        /* response bytes quoted in last_error */
#define RESP_MAX 65536       /* response bytes read at most */
#define LEASE_MARGIN_MS 2000 /* lease beyond the transfer timeout */
#define DB_RETRY_MS 2000     /* wait after a database failure */
#define LISTEN_WAIT_MS 250   /* listener's look at the stop flag */
#define LIST_DEFAULT 100
#define LIST_MAX 1000

/* ---- signature and backoff (pure) ------------------------------------- */

int
gate_webhook_sign(const unsigned char *key, size_t keylen, long long ts,
                  const char *body, size_t len, char out[GATE_WEBHOOK_SIG_LEN])
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char tss[24];
	int n;

	out[0] = '\0';
	if (key == NULL || keylen == 0 || (body == NULL && len > 0) || ts < 0)
		return -1;
	n = snprintf(tss, sizeof(tss), "%lld.", ts);
	if (n < 0 || (size_t)n >= sizeof(tss))
		return -1;
	if (crypto_auth_hmacsha256_init(&st, key, keylen) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const unsigned char *)tss,
	                                  (unsigned long long)n) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body,
	                                  (unsigned long long)len) != 0 ||
	    crypto_auth_hmacsha256_final(&st, mac) != 0) {
		sodium_memzero(&st, sizeof(st));
		return -1;
	}
	sodium_memzero(&st, sizeof(st));
	memcpy(out, "v1=", 3);
	sodium_bin2hex(out + 3, GATE_WEBHOOK_SIG_LEN - 3, mac, sizeof(mac));
	return 0;
}

int
gate_webhook_verify(const unsigned char *key, size_t keylen, const char *ts_hdr,
                    const char *sig_hdr, const char *body, size_t len,
                    long long now, int window_s)
{
	char want[GATE_WEBHOOK_SIG_LEN];
	char *end;
	long long ts;
	int r;

	if (ts_hdr == NULL || sig_hdr == NULL || *ts_hdr < '0' ||
	    *ts_hdr > '9' || strlen(ts_hdr) > 18 ||
	    strlen(sig_hdr) != GATE_WEBHOOK_SIG_LEN - 1)
		return GATE_WH_MALFORMED;
	errno = 0;
	ts = strtoll(ts_hdr, &end, 10);
	if (errno != 0 || *end != '\0')
		return GATE_WH_MALFORMED;
	if (gate_webhook_sign(key, keylen, ts, body, len, want) != 0)
		return GATE_WH_MALFORMED;
	r = sodium_memcmp(want, sig_hdr, GATE_WEBHOOK_SIG_LEN - 1) == 0
	        ? GATE_WH_OK
	        : GATE_WH_BAD_SIG;
	/* The signature first: a stale but authentic request is a replay,
	 * a forged one is a forgery, whatever its time. */
	if (r == GATE_WH_OK && (ts < now - window_s || ts > now + window_s))
		r = GATE_WH_STALE;
	return r;
}

long long
gate_webhook_backoff_ceiling_ms(int failed, long long base_ms, long long cap_ms)
{
	long long c = base_ms;

	if (base_ms <= 0 || cap_ms <= 0)
		return 0;
	if (base_ms > cap_ms)
		return cap_ms;
	/* Doubles failed-1 times, stopping at the cap before it can
	 * overflow. */
	for (int i = 1; i < failed && c < cap_ms; i++)
		c = c > cap_ms / 2 ? cap_ms : c * 2;
	return c < cap_ms ? c : cap_ms;
}

long long
gate_webhook_backoff_ms(int failed, long long base_ms, long long cap_ms,
                        uint32_t rnd)
{
	long long ceil =
	    gate_webhook_backoff_ceiling_ms(failed, base_ms, cap_ms);

	/* ceil <= cap_ms <= 86400000 < 2^32: (rnd * (ceil + 1)) >> 32 is
	 * uniform in [0, ceil] without modulo bias worth the name. */
	return (long long)(((uint64_t)rnd * (uint64_t)(ceil + 1)) >> 32);
}

/* ---- metrics ---------------------------------------------------------- */

static _Atomic uint64_t n_ok, n_failed, n_dead, n_wakeups;
static atomic_int listen_up;

void
gate_webhooks_metrics(struct gate_buf *b, struct db_pool *db)
{
	struct db_outbox_stats st;
	char err[256];

	if (db != NULL && db_outbox_stats(db, &st, err, sizeof(err)) == 0) {
		gate_buf_printf(
		    b,
		    "# HELP roomgate_outbox_pending Outbox events not yet "
		    "delivered (dead letters excluded).\n"
		    "# TYPE roomgate_outbox_pending gauge\n"
		    "roomgate_outbox_pending %lld\n"
		    "# HELP roomgate_outbox_dead Outbox events given up after "
		    "[webhooks] max_age.\n"
		    "# TYPE roomgate_outbox_dead gauge\n"
		    "roomgate_outbox_dead %lld\n"
		    "# HELP roomgate_outbox_oldest_pending_age_seconds Age of "
		    "the oldest undelivered event.\n"
		    "# TYPE roomgate_outbox_oldest_pending_age_seconds gauge\n"
		    "roomgate_outbox_oldest_pending_age_seconds %.3f\n",
		    st.pending, st.dead, st.oldest_pending_s);
	}
	gate_buf_printf(
	    b,
	    "# HELP roomgate_webhook_deliveries_total Webhook POSTs by this "
	    "node, by result.\n"
	    "# TYPE roomgate_webhook_deliveries_total counter\n"
	    "roomgate_webhook_deliveries_total{result=\"ok\"} %llu\n"
	    "roomgate_webhook_deliveries_total{result=\"failed\"} %llu\n"
	    "# HELP roomgate_webhook_dead_letters_total Events this node "
	    "dead-lettered.\n"
	    "# TYPE roomgate_webhook_dead_letters_total counter\n"
	    "roomgate_webhook_dead_letters_total %llu\n"
	    "# HELP roomgate_webhook_listen_connected 1 while this node's "
	    "LISTEN connection for outbox wake-ups is up (else workers "
	    "poll).\n"
	    "# TYPE roomgate_webhook_listen_connected gauge\n"
	    "roomgate_webhook_listen_connected %d\n"
	    "# HELP roomgate_webhook_wakeups_total Outbox notifications "
	    "that woke this node's workers.\n"
	    "# TYPE roomgate_webhook_wakeups_total counter\n"
	    "roomgate_webhook_wakeups_total %llu\n",
	    (unsigned long long)atomic_load(&n_ok),
	    (unsigned long long)atomic_load(&n_failed),
	    (unsigned long long)atomic_load(&n_dead),
	    atomic_load(&listen_up),
	    (unsigned long long)atomic_load(&n_wakeups));
}

/* ---- delivery --------------------------------------------------------- */

struct gate_webhooks {
	struct gate_app *app;
	pthread_t *threads;
	int nthreads;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	atomic_int stop;
	unsigned long wake_seq; /* under mu; moved by each wake-up */
	pthread_t listener;
	int have_listener;
};

struct worker_resp {
	char keep[RESP_KEEP + 1];
	size_t len;
};

static size_t
on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct worker_resp *r = ud;
	size_t len = sz * n;

	if (r->len < RESP_KEEP) {
		size_t take =
		    RESP_KEEP - r->len < len ? RESP_KEEP - r->len : len;

		memcpy(r->keep + r->len, p, take);
		r->keep[r->len + take] = '\0';
	}
	r->len += len;
	return r->len > RESP_MAX ? 0 : len; /* enough: the status is known */
}

static int
on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
            curl_off_t un)
{
	struct gate_webhooks *w = ud;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return atomic_load(&w->stop) ? 1 : 0; /* non-zero aborts */
}

/* The JSON body of event e (malloc()ed), or NULL. */
static char *
event_body(const struct db_outbox_event *e, size_t *len)
{
	json_t *data = json_loads(e->payload, 0, NULL), *o;
	char *s;

	if (data == NULL)
		return NULL;
	o = json_pack("{s:I, s:s, s:s, s:o}", "id", (json_int_t)e->id, "type",
	              e->topic, "created_at", e->created_at, "data", data);
	if (o == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s != NULL)
		*len = strlen(s);
	return s;
}

/* Printable, one line: response snippets go into last_error and logs. */
static void
sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = ' ';
}

/*
 * POSTs e. 1 when the receiver answered 2xx, 0 otherwise with why filled;
 * -1 when the node is stopping (the transfer was aborted).
 */
static int
deliver(struct gate_webhooks *w, CURL *h, const struct db_outbox_event *e,
        char *why, size_t whylen)
{
	const struct gate_config *cfg = w->app->cfg;
	struct worker_resp resp;
	struct curl_slist *hl = NULL;
	char hdr[4][128], sig[GATE_WEBHOOK_SIG_LEN], ua[64];
	char *body;
	size_t len = 0;
	long long ts = (long long)time(NULL);
	long status = 0;
	CURLcode rc;
	int r = 0;

	body = event_body(e, &len);
	if (body == NULL) {
		snprintf(why, whylen, "the event's payload is not JSON");
		return 0;
	}
	if (gate_webhook_sign((const unsigned char *)cfg->wh_secret,
	                      strlen(cfg->wh_secret), ts, body, len,
	                      sig) != 0) {
		snprintf(why, whylen, "the event could not be signed");
		goto out;
	}
	snprintf(hdr[0], sizeof(hdr[0]), "X-Roomgate-Event-Id: %lld", e->id);
	snprintf(hdr[1], sizeof(hdr[1]), "X-Roomgate-Event-Type: %s", e->topic);
	snprintf(hdr[2], sizeof(hdr[2]), "X-Roomgate-Timestamp: %lld", ts);
	snprintf(hdr[3], sizeof(hdr[3]), "X-Roomgate-Signature: %s", sig);
	snprintf(ua, sizeof(ua), "roomgate/%s", ROOMGATE_VERSION);
	for (int i = 0; i < 6; i++) {
		static const char *const fixed[2] = {
		    "Content-Type: application/json", "Expect:"};
		struct curl_slist *n =
		    curl_slist_append(hl, i < 2 ? fixed[i] : hdr[i - 2]);

		if (n == NULL) {
			curl_slist_free_all(hl);
			hl = NULL;
			break;
		}
		hl = n;
	}
	if (hl == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	memset(&resp, 0, sizeof(resp));
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, cfg->wh_url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)cfg->wh_connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg->wh_timeout_ms);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cfg->wh_ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->wh_ca_file);
	curl_easy_setopt(h, CURLOPT_USERAGENT, ua);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status <= 299) {
		r = 1; /* a 2xx is a delivery, whatever came after it */
	} else if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&w->stop)) {
		snprintf(why, whylen, "the node stopped mid-delivery");
		r = -1;
	} else if (status != 0) {
		snprintf(why, whylen, "HTTP %ld: %s", status, resp.keep);
	} else {
		snprintf(why, whylen, "%s", curl_easy_strerror(rc));
	}
	sanitize(why);
out:
	curl_slist_free_all(hl);
	free(body);
	return r;
}

static unsigned long
wake_seq_of(struct gate_webhooks *w)
{
	unsigned long v;

	pthread_mutex_lock(&w->mu);
	v = w->wake_seq;
	pthread_mutex_unlock(&w->mu);
	return v;
}

static void
wake_all(struct gate_webhooks *w)
{
	pthread_mutex_lock(&w->mu);
	w->wake_seq++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Sleeps ms, or less when the deliverer is stopping or a wake-up came
 * after the caller read seen (wake_seq_of), so one that arrives while the
 * caller was still looking is not slept through. */
static void
nap(struct gate_webhooks *w, int ms, unsigned long seen)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while (!atomic_load(&w->stop) && w->wake_seq == seen &&
	       pthread_cond_timedwait(&w->cv, &w->mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&w->mu);
}

struct worker_arg {
	struct gate_webhooks *w;
	int index;
};

/* One claim, delivery and outcome. 1 when an event was handled (look
 * again at once), 0 when none was due, -1 when the database failed. */
static int
work_once(struct gate_webhooks *w, CURL *h, const char *owner)
{
	const struct gate_config *cfg = w->app->cfg;
	struct db_outbox_event e;
	char err[512], why[512];
	long long delay;
	int r, dead = 0;

	r = db_outbox_claim(w->app->db, owner,
	                    (long long)cfg->wh_timeout_ms + LEASE_MARGIN_MS, &e,
	                    err, sizeof(err));
	if (r < 0) {
		gate_log(GATE_LOG_WARN, NULL, "outbox_claim_failed",
		         "looking for outbox events failed, will retry: %s",
		         err);
		return -1;
	}
	if (r == 0)
		return 0;
	why[0] = '\0';
	r = deliver(w, h, &e, why, sizeof(why));
	if (r == 1) {
		atomic_fetch_add(&n_ok, 1);
		if (db_outbox_delivered(w->app->db, e.id, err, sizeof(err)) !=
		    0)
			/* The lease runs out and the event goes again: at
			 * least once. */
			gate_log(GATE_LOG_WARN, NULL, "outbox_mark_failed",
			         "event %lld was delivered but could not be "
			         "marked so (it will be sent again): %s",
			         e.id, err);
		else
			gate_log(
			    GATE_LOG_DEBUG, NULL, "webhook_delivered",
			    "event %lld (%s) delivered after %d attempt(s)",
			    e.id, e.topic, e.attempts);
		db_outbox_event_free(&e);
		return 1;
	}
	/* Stopping: put the event back at once for the next node; a
	 * failure: wait as the backoff says. */
	delay = r < 0 ? 0
	              : gate_webhook_backoff_ms(
	                    e.attempts, cfg->wh_backoff_base_ms,
	                    cfg->wh_backoff_cap_ms, randombytes_random());
	if (r == 0)
		atomic_fetch_add(&n_failed, 1);
	if (db_outbox_failed(w->app->db, e.id, owner, why, delay,
	                     cfg->wh_max_age_s, &dead, err, sizeof(err)) != 0) {
		gate_log(GATE_LOG_WARN, NULL, "outbox_mark_failed",
		         "event %lld: recording the failed attempt failed (the "
		         "lease runs out, then it is tried again): %s",
		         e.id, err);
	} else if (dead) {
		atomic_fetch_add(&n_dead, 1);
		gate_log(GATE_LOG_ERROR, NULL, "webhook_dead_letter",
		         "event %lld (%s) given up after %d attempt(s) and "
		         "[webhooks] max_age %d s: %s; POST "
		         "/v1/outbox/%lld:retry queues it again",
		         e.id, e.topic, e.attempts, cfg->wh_max_age_s, why,
		         e.id);
	} else if (r == 0) {
		gate_log(GATE_LOG_WARN, NULL, "webhook_failed",
		         "event %lld (%s) attempt %d failed: %s; next in %lld "
		         "ms",
		         e.id, e.topic, e.attempts, why, delay);
	}
	db_outbox_event_free(&e);
	return r == 0; /* after a failure, the next due event at once */
}

static void *
worker(void *arg)
{
	struct worker_arg *a = arg;
	struct gate_webhooks *w = a->w;
	unsigned long long seq = 0;
	char owner[129], tag[17];
	unsigned char rnd[8];
	unsigned long seen;
	CURL *h;
	int r;

	/* The lease owner: node, a random tag for this thread and a
	 * sequence, so a stale worker never overwrites a newer claim. */
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(tag, sizeof(tag), rnd, sizeof(rnd));
	h = curl_easy_init();
	if (h == NULL) {
		gate_log(GATE_LOG_ERROR, NULL, "webhook_worker_failed",
		         "worker %d: libcurl could not start; this worker "
		         "delivers nothing",
		         a->index);
		free(a);
		return NULL;
	}
	while (!atomic_load(&w->stop)) {
		snprintf(owner, sizeof(owner), "%.80s/%s/%llu",
		         w->app->cfg->node_name ? w->app->cfg->node_name : "",
		         tag, ++seq);
		seen = wake_seq_of(w);
		r = work_once(w, h, owner);
		/* A database that fails is asked again less often, so an
		 * outage does not flood the log. */
		if (r < 0)
			nap(w,
			    w->app->cfg->wh_poll_ms > DB_RETRY_MS
			        ? w->app->cfg->wh_poll_ms
			        : DB_RETRY_MS,
			    seen);
		else if (r == 0)
			nap(w, w->app->cfg->wh_poll_ms, seen);
	}
	curl_easy_cleanup(h);
	free(a);
	return NULL;
}

/* The node's LISTEN connection: a notification wakes every worker. A
 * lost connection is opened again (every DB_RETRY_MS while the database
 * is away); meanwhile the workers' poll delivers. */
static void *
listener(void *arg)
{
	struct gate_webhooks *w = arg;
	const struct gate_config *cfg = w->app->cfg;
	struct db_outbox_listen *l = NULL;
	char err[512];
	int r, warned = 0;

	while (!atomic_load(&w->stop)) {
		if (l == NULL) {
			if (db_outbox_listen_open(cfg->db_url,
			                          cfg->db_connect_timeout_s, &l,
			                          err, sizeof(err)) != 0) {
				l = NULL;
				if (!warned)
					gate_log(GATE_LOG_WARN, NULL,
					         "outbox_listen_failed",
					         "cannot listen for outbox "
					         "events (workers poll every "
					         "%d ms meanwhile): %s",
					         cfg->wh_poll_ms, err);
				warned = 1;
				nap(w, DB_RETRY_MS, wake_seq_of(w));
				continue;
			}
			warned = 0;
			atomic_store(&listen_up, 1);
			/* Events committed while nobody listened. */
			wake_all(w);
		}
		r = db_outbox_listen_wait(l, LISTEN_WAIT_MS, err, sizeof(err));
		if (r > 0) {
			atomic_fetch_add(&n_wakeups, 1);
			wake_all(w);
		} else if (r < 0) {
			gate_log(GATE_LOG_WARN, NULL, "outbox_listen_lost",
			         "%s; listening again (workers poll every %d "
			         "ms meanwhile)",
			         err, cfg->wh_poll_ms);
			atomic_store(&listen_up, 0);
			db_outbox_listen_close(l);
			l = NULL;
		}
	}
	atomic_store(&listen_up, 0);
	db_outbox_listen_close(l);
	return NULL;
}

/* scheme://host[:port] of url for the log: a path or query may carry a
 * receiver's credential. */
static void
url_host(const char *url, char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;

	snprintf(out, outlen, "(unparsable url)");
	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
			port = NULL;
		snprintf(out, outlen, "%s://%s%s%s", scheme, host,
		         port ? ":" : "", port ? port : "");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

int
gate_webhooks_start(struct gate_app *app, struct gate_webhooks **out, char *err,
                    size_t errlen)
{
	const struct gate_config *cfg = app->cfg;
	struct gate_webhooks *w;
	pthread_condattr_t ca;
	char host[300];

	*out = NULL;
	if (cfg->wh_url == NULL) {
		gate_log(GATE_LOG_INFO, NULL, "webhooks_off",
		         "[webhooks] url is not set: no delivery workers on "
		         "this node; outbox events stay queued until a node "
		         "with an url delivers them");
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->threads = calloc((size_t)cfg->wh_workers,
	                                      sizeof(pthread_t))) == NULL) {
		free(w);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->app = app;
	atomic_init(&w->stop, 0);
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	for (int i = 0; i < cfg->wh_workers; i++) {
		struct worker_arg *a = calloc(1, sizeof(*a));

		if (a != NULL) {
			a->w = w;
			a->index = i;
		}
		if (a == NULL ||
		    pthread_create(&w->threads[i], NULL, worker, a) != 0) {
			free(a);
			gate_webhooks_stop(w);
			snprintf(err, errlen,
			         "cannot start webhook worker %d of %d", i + 1,
			         cfg->wh_workers);
			return -1;
		}
		w->nthreads++;
	}
	if (pthread_create(&w->listener, NULL, listener, w) == 0)
		w->have_listener = 1;
	else
		gate_log(GATE_LOG_WARN, NULL, "outbox_listen_failed",
		         "cannot start the outbox listener thread; workers "
		         "poll every %d ms",
		         cfg->wh_poll_ms);
	url_host(cfg->wh_url, host, sizeof(host));
	gate_log(GATE_LOG_INFO, NULL, "webhooks_on",
	         "%d webhook worker(s) delivering outbox events to %s",
	         w->nthreads, host);
	*out = w;
	return 0;
}

void
gate_webhooks_stop(struct gate_webhooks *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	atomic_store(&w->stop, 1);
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	if (w->have_listener)
		pthread_join(w->listener, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->threads);
	free(w);
}

/* ---- admin API -------------------------------------------------------- */

static int
need_admin(struct gate_app *app, const struct gate_rq *rq,
           struct gate_principal *p, struct gate_resp *out)
{
	if (gate_auth_request(app, rq, p, out) != 0)
		return -1;
	if (!(p->roles & GATE_ROLE_ADMIN)) {
		gate_resp_error(out, rq, 403, "forbidden", NULL,
		                "the outbox API needs the admin role");
		return -1;
	}
	return 0;
}

static void
db_unavailable(struct gate_resp *out, const struct gate_rq *rq, const char *err)
{
	gate_log(GATE_LOG_ERROR, rq->id, "outbox_db_error", "%s", err);
	gate_resp_error(out, rq, 503, "database_unavailable", NULL,
	                "the database is unavailable; retry shortly");
	out->retry_after = 2;
}

void
gate_h_outbox_list(struct gate_app *app, const struct gate_rq *rq,
                   struct gate_resp *out)
{
	struct gate_principal p;
	const char *state, *lim;
	char err[512], *text = NULL;
	long limit = LIST_DEFAULT;
	json_t *arr;

	if (need_admin(app, rq, &p, out) != 0)
		return;
	state = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
	                                    "state");
	lim = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
	                                  "limit");
	if (state == NULL ||
	    (strcmp(state, "pending") != 0 && strcmp(state, "dead") != 0)) {
		gate_resp_error(out, rq, 400, "invalid", NULL,
		                "add ?state=pending (queued, being retried) or "
		                "?state=dead (given up)");
		return;
	}
	if (lim != NULL) {
		char *end;

		errno = 0;
		limit = strtol(lim, &end, 10);
		if (*lim == '\0' || *end != '\0' || errno != 0 || limit < 1 ||
		    limit > LIST_MAX) {
			gate_resp_error(out, rq, 400, "invalid", NULL,
			                "limit must be a whole number from 1 "
			                "to %d",
			                LIST_MAX);
			return;
		}
	}
	if (db_outbox_list_json(app->db, state, (int)limit, &text, err,
	                        sizeof(err)) != 0) {
		db_unavailable(out, rq, err);
		return;
	}
	arr = json_loads(text, 0, NULL);
	free(text);
	if (arr == NULL) {
		gate_resp_error(out, rq, 500, "internal", NULL,
		                "the list could not be built");
		return;
	}
	gate_resp_json(out, 200,
	               json_pack("{s:s, s:I, s:o}", "state", state, "limit",
	                         (json_int_t)limit, "events", arr));
}

void
gate_h_outbox_retry(struct gate_app *app, const struct gate_rq *rq,
                    struct gate_resp *out)
{
	static const char suffix[] = ":retry";
	const size_t slen = sizeof(suffix) - 1;
	struct gate_principal p;
	struct db_actor by;
	const char *seg = rq->params[0].p;
	size_t n = rq->params[0].len;
	char digits[20], err[512];
	long long id;
	int r;

	if (need_admin(app, rq, &p, out) != 0)
		return;
	if (n <= slen || memcmp(seg + n - slen, suffix, slen) != 0) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "use POST /v1/outbox/{id}:retry");
		return;
	}
	n -= slen;
	if (n >= sizeof(digits)) {
		gate_resp_error(out, rq, 400, "invalid", NULL,
		                "the event id is a number (see GET "
		                "/v1/outbox?state=dead)");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (seg[i] < '0' || seg[i] > '9') {
			gate_resp_error(out, rq, 400, "invalid", NULL,
			                "the event id is a number (see GET "
			                "/v1/outbox?state=dead)");
			return;
		}
	}
	memcpy(digits, seg, n);
	digits[n] = '\0';
	id = strtoll(digits, NULL, 10);
	by.identity = p.identity;
	by.request_id = rq->id;
	by.node = app->cfg->node_name;
	by.source_addr = rq->remote;
	r = db_outbox_retry(app->db, id, &by, err, sizeof(err));
	if (r == DB_ENOTFOUND) {
		gate_resp_error(out, rq, 404, "not_dead", NULL,
		                "event %lld is not a dead letter (unknown, "
		                "delivered or still being retried)",
		                id);
		return;
	}
	if (r != 0) {
		db_unavailable(out, rq, err);
		return;
	}
	gate_log(GATE_LOG_INFO, rq->id, "outbox_retry",
	         "%s queued dead event %lld again", p.identity, id);
	gate_resp_json(
	    out, 200,
	    json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "pending"));
}
