/*
 * Integration: the outbox deliverer against the harness's real PostgreSQL,
 * real `roomgate serve` processes and a real HTTP receiver in this process
 * (libmicrohttpd) that checks every signature independently (libsodium),
 * records event ids, can stop and start again on its port, answer 500 on
 * demand, or stall.
 *
 * Events are written with SQL straight into the outbox (as the statements
 * that make changes do) and by a real code rotation (code.rotated). The
 * suite's other tests leave events behind; setup marks those delivered so
 * every count here is about this file's events only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>

#include "db/db.h"
#include "tests/lib/th.h"

#define SECRET "webhook-integration-secret-4f1c9a"
#define WINDOW_S 300
#define MAX_REC 4096
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"

#include "tests/integration/webhook_rcv_th.h"

/* ---- database and servers --------------------------------------------- */

static PGconn *pg;
static char base_ini[2048];

static PGresult *
sql(const char *q, const char *p1)
{
	const char *v[1] = {p1};
	PGresult *res = PQexecParams(pg, q, p1 ? 1 : 0, NULL, v, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQerrorMessage(pg));
	return res;
}

static long long
sql_ll(const char *q, const char *p1)
{
	PGresult *res = sql(q, p1);
	long long v = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)
	                  ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
	                  : -1;

	PQclear(res);
	return v;
}

/* Writes n events of topic test.webhook; their ids into ids. */
static void
enqueue(int n, long long *ids)
{
	char ns[16];
	PGresult *res;

	snprintf(ns, sizeof(ns), "%d", n);
	res = sql("INSERT INTO outbox (topic, payload) SELECT 'test.webhook', "
	          "jsonb_build_object('n', g) FROM generate_series(1, "
	          "$1::int) g RETURNING id",
	          ns);
	assert_int_equal(PQntuples(res), n);
	for (int i = 0; i < n; i++)
		ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
}

static int
delivered(long long id)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", id);
	return sql_ll("SELECT count(*) FROM outbox WHERE id = $1::bigint AND "
	              "delivered_at IS NOT NULL",
	              s) == 1;
}

static int
attempts_of(long long id)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", id);
	return (int)sql_ll("SELECT attempts FROM outbox WHERE id = $1::bigint",
	                   s);
}

/* Waits (at most limit_ms) until all n ids are delivered in the db. */
static int
wait_delivered(const long long *ids, int n, int limit_ms)
{
	for (int waited = 0;; waited += 100) {
		int all = 1;

		for (int i = 0; i < n && all; i++)
			all = delivered(ids[i]);
		if (all)
			return 1;
		if (waited >= limit_ms)
			return 0;
		sleep_ms(100);
	}
}

/* A config: the common part plus [webhooks] overrides. */
static const char *
config(const char *name, const char *webhooks_extra)
{
	char ini[4096];

	snprintf(ini, sizeof(ini), "%s%s", base_ini, webhooks_extra);
	return th_config(name, ini);
}

static void
server_kill9(struct th_server *s)
{
	int st;

	assert_true(s->pid > 0);
	assert_int_equal(kill(s->pid, SIGKILL), 0);
	assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
	s->pid = 0;
}

static long
api(int port, const char *method, const char *path, const char *token,
    struct th_http *r)
{
	char url[512], auth[128];
	const char *h[] = {auth, NULL};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         token ? token : "");
	return th_http(method, url, token ? h : NULL, NULL, 0, r);
}

static void
token(const char *cfg, const char *role, const char *identity, char out[64])
{
	static int seq;
	char buf[4096], name[64];
	const char *p;
	const char *argv[] = {th_env("RG_TEST_BIN"),
	                      "-c",
	                      cfg,
	                      "token",
	                      "create",
	                      "--role",
	                      role,
	                      "--name",
	                      name,
	                      "--identity",
	                      identity,
	                      NULL};

	/* Token names are unique among live tokens. */
	snprintf(name, sizeof(name), "webhooks-%s-%d-%d", role, (int)getpid(),
	         ++seq);
	if (th_run_capture(argv, NULL, buf, sizeof(buf)) != 0)
		fail_msg("token create failed: %s", buf);
	p = strstr(buf, "rgt_");
	assert_non_null(p);
	snprintf(out, 64, "%.47s", p);
}

/* A metric's value on a node (the first line starting with name + ' '). */
static double
metric(int port, const char *name)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128], key[160];
	const char *p;
	double v = -1;

	assert_non_null(r);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(r->body, key);
	if (p != NULL)
		v = strtod(p + strlen(key), NULL);
	free(r);
	return v;
}

/* ---- fixture ---------------------------------------------------------- */

static int
setup(void **state)
{
	char err[512];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (sodium_init() < 0)
		fail_msg("sodium_init");
	if (db_migrate(th_env("RG_TEST_PG_URL"), NULL, err, sizeof(err)) != 0)
		fail_msg("migrate: %s", err);
	pg = PQconnectdb(th_env("RG_TEST_PG_URL"));
	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(pg));
	/* Other tests' events are not this file's to count. */
	PQclear(sql("UPDATE outbox SET delivered_at = now() WHERE "
	            "delivered_at IS NULL",
	            NULL));
	R.port = th_free_port();
	snprintf(base_ini, sizeof(base_ini),
	         "[database]\nmigrate_on_start = true\n"
	         "[webhooks]\nurl = http://127.0.0.1:%d/hooks/roomgate\n"
	         "secret = " SECRET "\nconnect_timeout_ms = 1000\n"
	         "poll_interval_ms = 100\nbackoff_base_ms = 200\n",
	         R.port);
	rcv_start();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	rcv_stop();
	PQfinish(pg);
	curl_global_cleanup();
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

/* The receiver's check can fail: an unsigned or wrongly signed POST is
 * refused and counted as bad. */
static void
receiver_rejects_forgeries(void **state)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128];
	const char body[] = "{\"id\":1,\"type\":\"x\",\"created_at\":\"t\","
	                    "\"data\":{}}";
	char ts[32];
	const char zero_sig[] = "X-Roomgate-Signature: v1=00000000000000000000000"
	                        "00000000000000000000000000000000000000000";
	const char *h[] = {"Content-Type: application/json",
	                   "X-Roomgate-Event-Id: 1",
	                   "X-Roomgate-Event-Type: x",
	                   ts,
	                   zero_sig,
	                   NULL};

	(void)state;
	assert_non_null(r);
	snprintf(ts, sizeof(ts), "X-Roomgate-Timestamp: %lld",
	         (long long)time(NULL));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks/roomgate",
	         R.port);
	assert_int_equal(th_http("POST", url, h, body, strlen(body), r), 401);
	assert_int_equal(th_http("POST", url, NULL, body, strlen(body), r),
	                 401);
	rcv_lock();
	assert_int_equal(R.bad, 2);
	R.bad = 0;
	rcv_unlock();
	free(r);
}

/* A node without [webhooks] url starts no workers and says so; its events
 * stay queued, untouched, for a node that delivers. */
static void
no_url_no_delivery(void **state)
{
	struct th_server s;
	long long ids[1];
	char line[4096];
	FILE *f;
	int said = 0;

	(void)state;
	rcv_mode(RCV_OK, 0, 0);
	th_server_start(
	    &s,
	    th_config("wh-none.ini", "[database]\nmigrate_on_start = true\n"),
	    th_free_port());
	enqueue(1, ids);
	sleep_ms(1000);
	assert_false(delivered(ids[0]));
	assert_int_equal(attempts_of(ids[0]), 0);
	assert_int_equal(rcv_count(ids[0]), 0);
	assert_true(metric(s.port, "roomgate_outbox_pending") >= 1);
	th_server_stop(&s);
	f = fopen(s.log_path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		said += strstr(line, "\"webhooks_off\"") != NULL &&
		        strstr(line, "stay queued") != NULL;
	fclose(f);
	assert_int_equal(said, 1);
}

/* An event and a real code rotation arrive once each, signed; the
 * rotation's event names meeting, version, who and why, never the code. */
static void
delivered_signed(void **state)
{
	struct th_server s;
	struct th_http *r = calloc(1, sizeof(*r));
	char host[64], url[256], path[256], mid[40], code[16], type[80];
	char raw[4096];
	const char *cfg =
	    config("wh-a.ini", "workers = 2\n[codes]\nrotation_check_interval "
	                       "= 1\n");
	const char *h[3];
	char auth[128];
	long long ids[1], rot;
	json_t *o, *d;

	(void)state;
	assert_non_null(r);
	rcv_mode(RCV_OK, 0, 0);
	th_server_start(&s, cfg, th_free_port());
	enqueue(1, ids);
	assert_true(wait_delivered(ids, 1, 10000));
	assert_int_equal(rcv_count(ids[0]), 1);
	assert_int_equal(attempts_of(ids[0]), 1);
	o = rcv_event(ids[0], type, NULL, 0);
	assert_string_equal(type, "test.webhook");
	assert_int_equal(json_integer_value(json_object_get(o, "id")), ids[0]);
	assert_int_equal(json_integer_value(
	                     json_object_get(json_object_get(o, "data"), "n")),
	                 1);
	/* RFC 3339 UTC with milliseconds. */
	assert_int_equal(
	    strlen(json_string_value(json_object_get(o, "created_at"))), 24);
	assert_non_null(
	    strchr(json_string_value(json_object_get(o, "created_at")), 'Z'));
	json_decref(o);

	/* A rotation by a host. */
	token(cfg, "host", "user01", host);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", host);
	h[0] = auth;
	h[1] = "Content-Type: application/json";
	h[2] = NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/meetings", s.port);
	snprintf(path, sizeof(path),
	         "{\"title\": \"webhooks\", \"allowed_groups\": [\"" GROUP
	         "\"]}");
	if (th_http("POST", url, h, path, strlen(path), r) != 201)
		fail_msg("create meeting: %ld %s", r->status, r->body);
	o = json_loads(r->body, 0, NULL);
	assert_non_null(o);
	snprintf(mid, sizeof(mid), "%s",
	         json_string_value(json_object_get(o, "id")));
	json_decref(o);
	snprintf(url, sizeof(url),
	         "http://127.0.0.1:%d/v1/meetings/%s/code:rotate", s.port, mid);
	if (th_http("POST", url, h, "{}", 2, r) != 200)
		fail_msg("rotate: %ld %s", r->status, r->body);
	snprintf(path, sizeof(path), "/v1/meetings/%s/code", mid);
	assert_int_equal(api(s.port, "GET", path, host, r), 200);
	o = json_loads(r->body, 0, NULL);
	assert_non_null(o);
	snprintf(code, sizeof(code), "%s",
	         json_string_value(json_object_get(o, "code")));
	json_decref(o);
	assert_true(strlen(code) >= 6);

	rot = sql_ll("SELECT id FROM outbox WHERE topic = 'code.rotated' AND "
	             "payload->>'meeting_id' = $1",
	             mid);
	assert_true(rot > 0);
	assert_true(wait_delivered(&rot, 1, 10000));
	assert_int_equal(rcv_count(rot), 1);
	o = rcv_event(rot, type, raw, sizeof(raw));
	assert_string_equal(type, "code.rotated");
	assert_null(strstr(raw, code)); /* never the code */
	d = json_object_get(o, "data");
	assert_string_equal(json_string_value(json_object_get(d, "meeting_id")),
	                    mid);
	assert_int_equal(json_integer_value(json_object_get(d, "version")), 2);
	assert_string_equal(json_string_value(json_object_get(d, "reason")),
	                    "rotate");
	assert_string_equal(json_string_value(json_object_get(d, "by")),
	                    "user01");
	assert_null(json_object_get(d, "code"));
	json_decref(o);
	/* The rotation's event committed with the rotation: one per version
	 * change of this meeting. */
	assert_int_equal(sql_ll("SELECT count(*) FROM outbox WHERE topic = "
	                        "'code.rotated' AND payload->>'meeting_id' = "
	                        "$1",
	                        mid),
	                 1);

	/* A scheduled rotation (made due here) says so, by the scheduler. */
	PQclear(sql("UPDATE meetings SET rotation_interval = interval '1 "
	            "hour', code_rotates_at = now() - interval '1 second' "
	            "WHERE id = $1::uuid",
	            mid));
	rot = -1;
	for (int waited = 0; waited < 10000 && rot <= 0; waited += 100) {
		rot = sql_ll("SELECT id FROM outbox WHERE topic = "
		             "'code.rotated' AND payload->>'meeting_id' = $1 "
		             "AND payload->>'reason' = 'scheduled'",
		             mid);
		if (rot <= 0)
			sleep_ms(100);
	}
	assert_true(rot > 0);
	assert_true(wait_delivered(&rot, 1, 10000));
	assert_int_equal(rcv_count(rot), 1);
	o = rcv_event(rot, type, NULL, 0);
	assert_string_equal(type, "code.rotated");
	d = json_object_get(o, "data");
	assert_int_equal(json_integer_value(json_object_get(o, "id")), rot);
	assert_string_equal(json_string_value(json_object_get(d, "reason")),
	                    "scheduled");
	assert_int_equal(json_integer_value(json_object_get(d, "version")), 3);
	assert_string_equal(json_string_value(json_object_get(d, "by")),
	                    "roomgate-scheduler");
	json_decref(o);
	rcv_lock();
	assert_int_equal(R.bad, 0);
	rcv_unlock();
	th_server_stop(&s);
	free(r);
}

/* Receiver down for a while: attempts fail and are retried; once it is
 * back, every event arrives exactly once. */
static void
receiver_down_then_back(void **state)
{
	struct th_server s;
	long long ids[5];

	(void)state;
	rcv_mode(RCV_OK, 0, 0);
	th_server_start(&s, config("wh-b.ini", "backoff_cap_ms = 800\n"),
	                th_free_port());
	rcv_stop();
	enqueue(5, ids);
	/* Each tried at least twice while nobody listens. */
	for (int waited = 0; waited < 10000; waited += 100) {
		int all = 1;

		for (int i = 0; i < 5 && all; i++)
			all = attempts_of(ids[i]) >= 2;
		if (all)
			break;
		sleep_ms(100);
	}
	for (int i = 0; i < 5; i++) {
		char s1[24];

		assert_true(attempts_of(ids[i]) >= 2);
		assert_false(delivered(ids[i]));
		snprintf(s1, sizeof(s1), "%lld", ids[i]);
		assert_int_equal(sql_ll("SELECT count(*) FROM outbox WHERE id "
		                        "= $1::bigint AND last_error IS NOT "
		                        "NULL AND dead_at IS NULL",
		                        s1),
		                 1);
	}
	assert_true(metric(s.port, "roomgate_outbox_pending") >= 5);
	assert_true(
	    metric(s.port, "roomgate_outbox_oldest_pending_age_seconds") > 0);
	rcv_start();
	assert_true(wait_delivered(ids, 5, 10000));
	for (int i = 0; i < 5; i++)
		assert_int_equal(rcv_count(ids[i]), 1);
	assert_true(metric(s.port, "roomgate_webhook_deliveries_total{result="
	                           "\"failed\"}") >= 10);
	th_server_stop(&s);
}

/* 500s are retried with the configured backoff (full jitter: each wait at
 * most base * 2^(n-1)), then the event is delivered once. */
static void
retried_after_500s(void **state)
{
	struct th_server s;
	long long ids[1];
	char line[4096], want[64];
	FILE *f;
	int seen = 0;

	(void)state;
	rcv_mode(RCV_FAIL, 3, 0);
	rcv_lock();
	R.n500 = 0;
	rcv_unlock();
	th_server_start(&s,
	                config("wh-c.ini", "workers = 1\nbackoff_cap_ms = "
	                                   "5000\n"),
	                th_free_port());
	enqueue(1, ids);
	assert_true(wait_delivered(ids, 1, 15000));
	assert_int_equal(rcv_count(ids[0]), 1);
	rcv_lock();
	assert_int_equal(R.n500, 3);
	rcv_unlock();
	assert_int_equal(attempts_of(ids[0]), 4);
	th_server_stop(&s);

	/* The node's log names each wait; each is within its ceiling. */
	f = fopen(s.log_path, "r");
	assert_non_null(f);
	snprintf(want, sizeof(want), "event %lld (test.webhook) attempt ",
	         ids[0]);
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, want), *n;
		long att, ms;

		if (p == NULL)
			continue;
		att = strtol(p + strlen(want), NULL, 10);
		n = strstr(p, "next in ");
		assert_non_null(n);
		assert_non_null(strstr(p, "HTTP 500"));
		ms = strtol(n + 8, NULL, 10);
		assert_true(att >= 1 && att <= 3);
		assert_true(ms >= 0 && ms <= 200L << (att - 1));
		seen++;
	}
	fclose(f);
	assert_int_equal(seen, 3);
}

/* A redirect is an answer that is not 2xx: retried, never followed (the
 * event goes only where the configuration says). */
static void
redirects_not_followed(void **state)
{
	struct th_server s;
	long long ids[1];

	(void)state;
	rcv_mode(RCV_REDIRECT, 1, 0);
	rcv_lock();
	R.followed = 0;
	rcv_unlock();
	th_server_start(&s, config("wh-r.ini", "workers = 1\n"),
	                th_free_port());
	enqueue(1, ids);
	assert_true(wait_delivered(ids, 1, 10000));
	assert_int_equal(attempts_of(ids[0]), 2);
	assert_int_equal(rcv_count(ids[0]), 1);
	rcv_lock();
	assert_int_equal(R.followed, 0);
	rcv_unlock();
	th_server_stop(&s);
}

/* Past max_age an event is dead-lettered: kept, visible in the metrics
 * and the admin API; :retry queues it again and it is delivered. */
static void
dead_letter_and_retry(void **state)
{
	struct th_server s;
	struct th_http *r = calloc(1, sizeof(*r));
	const char *cfg = config("wh-d.ini", "max_age = 2\nbackoff_cap_ms = "
	                                     "400\n");
	char admin[64], host[64], path[128], idstr[24];
	long long ids[1];
	json_t *o, *ev = NULL;
	size_t i;

	(void)state;
	assert_non_null(r);
	rcv_mode(RCV_FAIL, 1000000, 0);
	th_server_start(&s, cfg, th_free_port());
	token(cfg, "admin", "ops", admin);
	token(cfg, "host", "user01", host);
	enqueue(1, ids);
	snprintf(idstr, sizeof(idstr), "%lld", ids[0]);
	for (int waited = 0; waited < 10000; waited += 100) {
		if (sql_ll("SELECT count(*) FROM outbox WHERE id = $1::bigint "
		           "AND dead_at IS NOT NULL",
		           idstr) == 1)
			break;
		sleep_ms(100);
	}
	assert_int_equal(sql_ll("SELECT count(*) FROM outbox WHERE id = "
	                        "$1::bigint AND dead_at IS NOT NULL AND "
	                        "delivered_at IS NULL AND last_error LIKE "
	                        "'HTTP 500%'",
	                        idstr),
	                 1);
	/* No longer tried. */
	{
		int a = attempts_of(ids[0]);

		sleep_ms(700);
		assert_int_equal(attempts_of(ids[0]), a);
	}
	assert_true(metric(s.port, "roomgate_outbox_dead") >= 1);
	assert_true(metric(s.port, "roomgate_webhook_dead_letters_total") >= 1);

	/* The admin API: the dead letter is listed with its error. */
	assert_int_equal(api(s.port, "GET", "/v1/outbox?state=dead", admin, r),
	                 200);
	o = json_loads(r->body, 0, NULL);
	assert_non_null(o);
	for (i = 0; i < json_array_size(json_object_get(o, "events")); i++) {
		json_t *e = json_array_get(json_object_get(o, "events"), i);

		if (json_integer_value(json_object_get(e, "id")) == ids[0])
			ev = e;
	}
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "type")),
	                    "test.webhook");
	assert_non_null(strstr(
	    json_string_value(json_object_get(ev, "last_error")), "HTTP 500"));
	assert_true(json_is_string(json_object_get(ev, "dead_at")));
	json_decref(o);
	assert_int_equal(
	    api(s.port, "GET", "/v1/outbox?state=pending&limit=5", admin, r),
	    200);
	assert_int_equal(api(s.port, "GET", "/v1/outbox", admin, r), 400);
	assert_int_equal(api(s.port, "GET", "/v1/outbox?state=all", admin, r),
	                 400);
	assert_int_equal(
	    api(s.port, "GET", "/v1/outbox?state=dead&limit=0", admin, r), 400);
	assert_int_equal(api(s.port, "GET", "/v1/outbox?state=dead", host, r),
	                 403);
	assert_int_equal(api(s.port, "GET", "/v1/outbox?state=dead", NULL, r),
	                 401);

	/* Retry: admin only, a dead letter only. */
	snprintf(path, sizeof(path), "/v1/outbox/%lld:retry", ids[0]);
	assert_int_equal(api(s.port, "POST", path, host, r), 403);
	assert_int_equal(api(s.port, "POST", path, NULL, r), 401);
	assert_int_equal(api(s.port, "POST", "/v1/outbox/abc:retry", admin, r),
	                 400);
	assert_int_equal(api(s.port, "POST", "/v1/outbox/1", admin, r), 404);
	rcv_mode(RCV_OK, 0, 0);
	assert_int_equal(api(s.port, "POST", path, admin, r), 200);
	assert_true(wait_delivered(ids, 1, 10000));
	assert_int_equal(rcv_count(ids[0]), 1);
	assert_int_equal(api(s.port, "POST", path, admin, r), 404);
	assert_int_equal(sql_ll("SELECT count(*) FROM audit_log WHERE "
	                        "event_type = 'outbox.retry' AND "
	                        "details->>'event_id' = $1 AND identity = "
	                        "'ops'",
	                        idstr),
	                 1);
	th_server_stop(&s);
	free(r);
}

/* kill -9 while a POST is in flight: after the lease runs out the
 * restarted node delivers again; every event arrives, each id at least
 * once, and deduping by id leaves exactly the events written. */
static void
kill9_mid_delivery(void **state)
{
	struct th_server s;
	const char *cfg = config("wh-e.ini", "timeout_ms = 3000\n");
	long long ids[3];
	int stalled = 0, distinct = 0, total = 0, retried = 0, twice = 0;

	(void)state;
	rcv_mode(RCV_STALL, 0, 0);
	th_server_start(&s, cfg, th_free_port());
	enqueue(3, ids);
	for (int waited = 0; waited < 5000 && stalled == 0; waited += 20) {
		rcv_lock();
		stalled = R.stalled;
		rcv_unlock();
		if (stalled == 0)
			sleep_ms(20);
	}
	assert_true(stalled > 0);
	server_kill9(&s);
	/* The stalled requests end now (answered into closed sockets). */
	rcv_mode(RCV_OK, 0, 0);
	rcv_lock();
	R.release = 1;
	rcv_unlock();
	th_server_start(&s, cfg, th_free_port());
	assert_true(wait_delivered(ids, 3, 20000));
	for (int i = 0; i < 3; i++) {
		int n = rcv_count(ids[i]);

		/* Every event arrived; one claimed by the killed node went
		 * twice (its first copy reached the receiver before the
		 * kill), which the receiver's dedupe by id absorbs. */
		assert_true(n >= 1);
		retried += attempts_of(ids[i]) >= 2;
		twice += n >= 2;
		distinct += n > 0;
		total += n;
	}
	assert_int_equal(distinct, 3); /* deduped: the events written */
	assert_true(retried >= 1);
	/* What was stalled at the kill reached the receiver, and again. */
	assert_true(twice >= 1);
	assert_true(total > 3);
	th_server_stop(&s);
}

/* A whole small file into a static-size heap buffer (caller frees). */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 16384);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, 16383, f);
	assert_true(n > 0 && feof(f));
	fclose(f);
	return buf;
}

/* https: the receiver's certificate is verified (host name included);
 * an unknown CA is a failed attempt, never a delivery; with [webhooks]
 * ca_file naming it, the event is delivered. Key and certificate are made
 * here, for this run. */
static void
tls_is_verified(void **state)
{
	struct th_server s;
	struct MHD_Daemon *d;
	struct sockaddr_in sa;
	char key[512], crt[512], ini[2048], *kpem, *cpem, idstr[24];
	const char *tmp = th_env("RG_TEST_TMP");
	int port = th_free_port();
	long long ids[1];

	(void)state;
	snprintf(key, sizeof(key), "%s/wh-tls.key", tmp);
	snprintf(crt, sizeof(crt), "%s/wh-tls.crt", tmp);
	assert_int_equal(th_sh("openssl req -x509 -newkey rsa:2048 -nodes "
	                       "-keyout '%s' -out '%s' -days 1 -subj "
	                       "/CN=127.0.0.1 -addext "
	                       "subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
	                       key, crt),
	                 0);
	kpem = slurp(key);
	cpem = slurp(crt);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	        MHD_USE_TLS,
	    (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&sa, MHD_OPTION_HTTPS_MEM_KEY, kpem,
	    MHD_OPTION_HTTPS_MEM_CERT, cpem, MHD_OPTION_NOTIFY_COMPLETED,
	    on_done, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)20,
	    MHD_OPTION_END);
	assert_non_null(d);
	rcv_mode(RCV_OK, 0, 0);

	/* The system store does not know this certificate. */
	snprintf(ini, sizeof(ini),
	         "[database]\nmigrate_on_start = true\n"
	         "[webhooks]\nurl = https://127.0.0.1:%d/hooks\n"
	         "secret = " SECRET "\npoll_interval_ms = 100\n"
	         "backoff_base_ms = 200\nbackoff_cap_ms = 400\n",
	         port);
	th_server_start(&s, th_config("wh-tls1.ini", ini), th_free_port());
	enqueue(1, ids);
	snprintf(idstr, sizeof(idstr), "%lld", ids[0]);
	for (int waited = 0; waited < 10000 && attempts_of(ids[0]) < 2;
	     waited += 100)
		sleep_ms(100);
	assert_true(attempts_of(ids[0]) >= 2);
	assert_false(delivered(ids[0]));
	assert_int_equal(rcv_count(ids[0]), 0);
	assert_int_equal(sql_ll("SELECT count(*) FROM outbox WHERE id = "
	                        "$1::bigint AND last_error ILIKE "
	                        "'%certificate%'",
	                        idstr),
	                 1);
	th_server_stop(&s);

	/* Trusted through ca_file: delivered. */
	snprintf(ini + strlen(ini), sizeof(ini) - strlen(ini), "ca_file = %s\n",
	         crt);
	th_server_start(&s, th_config("wh-tls2.ini", ini), th_free_port());
	assert_true(wait_delivered(ids, 1, 10000));
	assert_int_equal(rcv_count(ids[0]), 1);
	th_server_stop(&s);
	MHD_stop_daemon(d);
	free(kpem);
	free(cpem);
}

/* Two nodes on one database: each event is delivered by exactly one of
 * them, never twice at the same time, and both take part. */
static void
two_nodes_share_the_queue(void **state)
{
	struct th_server a, b;
	const char *cfg = config("wh-f.ini", "workers = 3\n");
	long long ids[60];
	double oka0, okb0, oka, okb;

	(void)state;
	rcv_mode(RCV_OK, 0, 20);
	rcv_lock();
	R.concurrent = 0;
	rcv_unlock();
	th_server_start(&a, cfg, th_free_port());
	th_server_start(&b, cfg, th_free_port());
	oka0 =
	    metric(a.port, "roomgate_webhook_deliveries_total{result=\"ok\"}");
	okb0 =
	    metric(b.port, "roomgate_webhook_deliveries_total{result=\"ok\"}");
	enqueue(60, ids);
	assert_true(wait_delivered(ids, 60, 20000));
	for (int i = 0; i < 60; i++)
		assert_int_equal(rcv_count(ids[i]), 1);
	rcv_lock();
	assert_int_equal(R.concurrent, 0);
	assert_int_equal(R.bad, 0);
	rcv_unlock();
	oka =
	    metric(a.port, "roomgate_webhook_deliveries_total{result=\"ok\"}");
	okb =
	    metric(b.port, "roomgate_webhook_deliveries_total{result=\"ok\"}");
	assert_true(oka - oka0 > 0);
	assert_true(okb - okb0 > 0);
	assert_true((oka - oka0) + (okb - okb0) >= 60);
	th_server_stop(&a);
	th_server_stop(&b);
}

static long long
mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits (at most limit_ms) until the node's LISTEN gauge reads want. */
static int
wait_listen(int port, double want, int limit_ms)
{
	for (int waited = 0;; waited += 100) {
		if (metric(port, "roomgate_webhook_listen_connected") == want)
			return 1;
		if (waited >= limit_ms)
			return 0;
		sleep_ms(100);
	}
}

/* One event written now; how long (ms) until it is marked delivered, at
 * most limit_ms (-1 when not by then). */
static long long
delivery_ms(int limit_ms)
{
	long long id, t0 = mono_ms();

	enqueue(1, &id);
	if (!wait_delivered(&id, 1, limit_ms))
		return -1;
	assert_int_equal(rcv_count(id), 1);
	return mono_ms() - t0;
}

/* With a 10 s poll, an event written by another connection (as another
 * node would) is delivered far sooner: migration 0016's NOTIFY wakes the
 * node's workers. A LISTEN connection killed by the server is opened
 * again, and events written meanwhile are still delivered, once. */
static void
woken_by_notify_not_poll(void **state)
{
	struct th_server s;
	char ini[4096];
	const char *cfg;
	long long ms;
	double w0;

	(void)state;
	snprintf(ini, sizeof(ini),
	         "[database]\nmigrate_on_start = true\n"
	         "[webhooks]\nurl = http://127.0.0.1:%d/hooks/roomgate\n"
	         "secret = " SECRET "\nconnect_timeout_ms = 1000\n"
	         "poll_interval_ms = 10000\nworkers = 2\n",
	         R.port);
	cfg = th_config("wh-notify.ini", ini);
	rcv_mode(RCV_OK, 0, 0);
	th_server_start(&s, cfg, th_free_port());
	assert_true(wait_listen(s.port, 1, 10000));
	/* The workers' first look and the listener's first wake-up are
	 * over: from here on only a notification (or the 10 s poll) can
	 * make them look again. */
	sleep_ms(500);
	w0 = metric(s.port, "roomgate_webhook_wakeups_total");
	for (int i = 0; i < 3; i++) {
		ms = delivery_ms(9000);
		assert_true(ms >= 0);
		/* Generous for a loaded machine, far under the poll. */
		if (ms > 3000)
			fail_msg("delivered after %lld ms: the poll, not the "
			         "notification, found it",
			         ms);
		sleep_ms(200);
	}
	assert_true(metric(s.port, "roomgate_webhook_wakeups_total") >=
	            w0 + 3);

	/* The LISTEN connection dies: no event is lost, the listener comes
	 * back, and wakes the workers again. */
	PQclear(sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	            "WHERE application_name = 'roomgate-outbox-listen'",
	            NULL));
	ms = delivery_ms(15000);
	assert_true(ms >= 0);
	assert_true(wait_listen(s.port, 1, 10000));
	assert_true(sql_ll("SELECT count(*) FROM pg_stat_activity WHERE "
	                   "application_name = 'roomgate-outbox-listen'",
	                   NULL) >= 1);
	sleep_ms(500);
	ms = delivery_ms(9000);
	assert_true(ms >= 0 && ms <= 3000);
	th_server_stop(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(receiver_rejects_forgeries),
	    cmocka_unit_test(no_url_no_delivery),
	    cmocka_unit_test(delivered_signed),
	    cmocka_unit_test(receiver_down_then_back),
	    cmocka_unit_test(retried_after_500s),
	    cmocka_unit_test(redirects_not_followed),
	    cmocka_unit_test(dead_letter_and_retry),
	    cmocka_unit_test(kill9_mid_delivery),
	    cmocka_unit_test(tls_is_verified),
	    cmocka_unit_test(two_nodes_share_the_queue),
	    cmocka_unit_test(woken_by_notify_not_poll),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
