/*
 * The webhook receiver of the integration tests (header-only): a real
 * HTTP server in the test process (libmicrohttpd) that checks every
 * signature independently (libsodium, from the documented recipe),
 * records event ids, can stop and start again on its port, answer 500 on
 * demand, redirect, or stall. Used by test_webhooks.c and
 * test_watcher.c.
 *
 * The including file defines SECRET (the [webhooks] secret), WINDOW_S
 * (the timestamp window in seconds) and MAX_REC (ids kept) first, and
 * sets R.port before rcv_start().
 */
#ifndef ROOMGATE_WEBHOOK_RCV_TH_H
#define ROOMGATE_WEBHOOK_RCV_TH_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>

/* ---- the receiver ----------------------------------------------------- */

enum { RCV_OK, RCV_FAIL, RCV_STALL, RCV_REDIRECT };

static struct rcv {
	struct MHD_Daemon *d;
	int port;
	pthread_mutex_t mu;
	int mode;       /* RCV_* */
	int fail_left;  /* RCV_FAIL: answer 500 this many more times;
	                 * RCV_REDIRECT: 307 to /followed as many times */
	int followed;   /* requests to /followed */
	int release;    /* RCV_STALL: let stalled requests go on */
	int delay_ms;   /* RCV_OK: think this long before answering */
	int started;    /* requests whose body arrived */
	int stalled;    /* requests stalled right now */
	int bad;        /* failed the signature or shape check */
	int n500;       /* 500s answered */
	int concurrent; /* an id arrived while the same id was in flight */
	long long got[MAX_REC]; /* ids received whole and checked, in order */
	int ngot;
	long long inflight[64];
	int ninflight;
	struct { /* the latest checked requests, a ring */
		long long id;
		char type[80];
		char body[4096];
	} ring[32];
	int nring;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct upload {
	char buf[65536];
	size_t len;
	int too_big;
};

__attribute__((unused)) static void
rcv_lock(void)
{
	pthread_mutex_lock(&R.mu);
}

__attribute__((unused)) static void
rcv_unlock(void)
{
	pthread_mutex_unlock(&R.mu);
}

__attribute__((unused)) static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The receiver's own check, written from the documented recipe (not with
 * roomgate's verify function): HMAC-SHA-256 under the secret over
 * timestamp "." body, v1= hex, constant-time compare, 5-minute window;
 * then the body's shape against the headers. 0 when all holds. */
__attribute__((unused)) static int
check_request(struct MHD_Connection *c, const char *body, size_t len,
              long long *id)
{
	const char *ts = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                             "X-Roomgate-Timestamp");
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                              "X-Roomgate-Signature");
	const char *eid = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                              "X-Roomgate-Event-Id");
	const char *typ = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                              "X-Roomgate-Event-Type");
	const char *ct =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	crypto_auth_hmacsha256_state st;
	unsigned char mac[32];
	char hex[65], want[80];
	json_t *o;
	long long t;
	int ok;

	if (ts == NULL || sig == NULL || eid == NULL || typ == NULL ||
	    ct == NULL || strcmp(ct, "application/json") != 0)
		return -1;
	t = strtoll(ts, NULL, 10);
	if (t < (long long)time(NULL) - WINDOW_S ||
	    t > (long long)time(NULL) + WINDOW_S)
		return -1;
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)SECRET,
	                            strlen(SECRET));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts,
	                              strlen(ts));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	snprintf(want, sizeof(want), "v1=%s", hex);
	if (strlen(sig) != strlen(want) ||
	    sodium_memcmp(sig, want, strlen(want)) != 0)
		return -1;
	o = json_loadb(body, len, 0, NULL);
	*id = strtoll(eid, NULL, 10);
	ok = json_is_object(o) &&
	     json_integer_value(json_object_get(o, "id")) == *id &&
	     json_is_string(json_object_get(o, "type")) &&
	     strcmp(json_string_value(json_object_get(o, "type")), typ) == 0 &&
	     json_is_string(json_object_get(o, "created_at")) &&
	     json_is_object(json_object_get(o, "data"));
	json_decref(o);
	return ok ? 0 : -1;
}

__attribute__((unused)) static enum MHD_Result
answer(struct MHD_Connection *c, unsigned status)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (status == 307)
		MHD_add_response_header(r, "Location", "/followed");
	ret = MHD_queue_response(c, status, r);

	MHD_destroy_response(r);
	return ret;
}

__attribute__((unused)) static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *data,
           size_t *data_size, void **con_cls)
{
	struct upload *u = *con_cls;
	long long id = 0;
	int mode, dup = 0, waited = 0;
	unsigned status = 200;

	(void)cls;
	(void)version;
	if (u == NULL) {
		u = calloc(1, sizeof(*u));
		if (u == NULL)
			return MHD_NO;
		*con_cls = u;
		return MHD_YES;
	}
	if (*data_size > 0) {
		if (u->len + *data_size >= sizeof(u->buf))
			u->too_big = 1;
		else {
			memcpy(u->buf + u->len, data, *data_size);
			u->len += *data_size;
		}
		*data_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "POST") != 0 || u->too_big ||
	    check_request(c, u->buf, u->len, &id) != 0) {
		rcv_lock();
		R.bad++;
		rcv_unlock();
		return answer(c, 401);
	}
	rcv_lock();
	R.started++;
	mode = R.mode;
	for (int i = 0; i < R.ninflight; i++)
		if (R.inflight[i] == id)
			dup = 1;
	if (dup)
		R.concurrent++;
	if (R.ninflight < 64)
		R.inflight[R.ninflight++] = id;
	if (strcmp(url, "/followed") == 0)
		R.followed++;
	if (mode == RCV_REDIRECT && R.fail_left > 0) {
		R.fail_left--;
		status = 307;
	}
	if (mode == RCV_FAIL && R.fail_left > 0) {
		R.fail_left--;
		R.n500++;
		status = 500;
	}
	if (mode == RCV_STALL)
		R.stalled++;
	rcv_unlock();
	/* Stalled until released (bounded: a test that forgets fails on
	 * its counts instead of hanging). */
	while (mode == RCV_STALL && waited < 15000) {
		int go;

		rcv_lock();
		go = R.release;
		rcv_unlock();
		if (go)
			break;
		sleep_ms(10);
		waited += 10;
	}
	if (mode == RCV_OK && R.delay_ms > 0)
		sleep_ms(R.delay_ms);
	rcv_lock();
	if (mode == RCV_STALL)
		R.stalled--;
	for (int i = 0; i < R.ninflight; i++)
		if (R.inflight[i] == id) {
			R.inflight[i] = R.inflight[--R.ninflight];
			break;
		}
	if (status == 200 && R.ngot < MAX_REC) {
		R.got[R.ngot++] = id;
		int k = R.nring++ % 32;

		R.ring[k].id = id;
		snprintf(R.ring[k].body, sizeof(R.ring[k].body), "%.*s",
		         (int)u->len, u->buf);
		snprintf(R.ring[k].type, sizeof(R.ring[k].type), "%s",
		         MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		                                     "X-Roomgate-Event-Type"));
	}
	rcv_unlock();
	return answer(c, status);
}

__attribute__((unused)) static void
on_done(void *cls, struct MHD_Connection *c, void **con_cls,
        enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

__attribute__((unused)) static void
rcv_start(void)
{
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)R.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < 50 && R.d == NULL; i++) {
		R.d = MHD_start_daemon(
		    MHD_USE_INTERNAL_POLLING_THREAD |
		        MHD_USE_THREAD_PER_CONNECTION,
		    (uint16_t)R.port, NULL, NULL, on_request, NULL,
		    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		    MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
		    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)20,
		    MHD_OPTION_END);
		if (R.d == NULL)
			sleep_ms(100);
	}
	assert_non_null(R.d);
}

__attribute__((unused)) static void
rcv_stop(void)
{
	rcv_lock();
	R.release = 1;
	rcv_unlock();
	if (R.d != NULL)
		MHD_stop_daemon(R.d);
	R.d = NULL;
	rcv_lock();
	R.release = 0;
	rcv_unlock();
}

__attribute__((unused)) static void
rcv_mode(int mode, int fail_left, int delay_ms)
{
	rcv_lock();
	R.mode = mode;
	R.fail_left = fail_left;
	R.delay_ms = delay_ms;
	R.release = 0;
	rcv_unlock();
}

/* How many times id was received whole (and answered 2xx). */
__attribute__((unused)) static int
rcv_count(long long id)
{
	int n = 0;

	rcv_lock();
	for (int i = 0; i < R.ngot; i++)
		n += R.got[i] == id;
	rcv_unlock();
	return n;
}

/* The body received for id (as JSON, json_decref()) and its type header
 * into type; fails the test when id was not received lately. */
__attribute__((unused)) static json_t *
rcv_event(long long id, char type[80], char *raw, size_t rawlen)
{
	json_t *o = NULL;

	rcv_lock();
	for (int i = 0; i < 32 && i < R.nring; i++) {
		if (R.ring[i].id != id)
			continue;
		o = json_loads(R.ring[i].body, 0, NULL);
		snprintf(type, 80, "%s", R.ring[i].type);
		if (raw != NULL)
			snprintf(raw, rawlen, "%s", R.ring[i].body);
	}
	rcv_unlock();
	if (o == NULL)
		fail_msg("event %lld was not received", id);
	return o;
}

#endif
