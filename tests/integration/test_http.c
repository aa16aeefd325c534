/*
 * Integration: a real `roomgate serve` against the harness's PostgreSQL and
 * slapd. Error shape, 404/405/413, request ids, readiness with each
 * dependency down and back (no restart of roomgate), metrics, JSON logs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/lib/th.h"

static struct th_server srv;
static char base[64];

static int
setup(void **state)
{
	const char *cfg;

	(void)state;
	cfg = th_config("http.ini",
			"[server]\nmax_body_bytes = 1024\n"
			"max_header_bytes = 4096\nthreads = 4\n"
			"[database]\nmigrate_on_start = true\n"
			"connect_timeout = 2\n"
			"[ldap]\nnetwork_timeout_ms = 1000\n"
			"op_timeout_ms = 1000\n");
	th_server_start(&srv, cfg, th_free_port());
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", srv.port);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	th_server_stop(&srv);
	return 0;
}

static const char *
url(const char *path)
{
	static char u[256];

	snprintf(u, sizeof(u), "%s%s", base, path);
	return u;
}

static struct th_http *
get(const char *method, const char *path, const char *body)
{
	static struct th_http r;

	th_http(method, url(path), NULL, body, body ? strlen(body) : 0, &r);
	return &r;
}

static json_t *
body_json(const struct th_http *r)
{
	json_error_t e;
	json_t *o = json_loadb(r->body, r->body_len, 0, &e);

	if (o == NULL)
		fail_msg("response body is not JSON (%s): %.200s", e.text,
			 r->body);
	return o;
}

static void
assert_error_shape(const struct th_http *r, const char *code)
{
	char rid[80];
	json_t *o = body_json(r), *e;

	e = json_object_get(o, "error");
	assert_true(json_is_object(e));
	assert_string_equal(json_string_value(json_object_get(e, "code")),
			    code);
	assert_true(strlen(json_string_value(json_object_get(e, "message"))) >
		    10);
	assert_non_null(th_http_header(r, "X-Request-Id", rid, sizeof(rid)));
	assert_string_equal(json_string_value(json_object_get(e, "request_id")),
			    rid);
	json_decref(o);
}

static char first_rid[80];

static void
healthz_answers_with_request_id(void **state)
{
	struct th_http *r;
	char rid[80], h[128];

	(void)state;
	r = get("GET", "/healthz", NULL);
	assert_int_equal(r->status, 200);
	assert_non_null(strstr(r->body, "\"status\":\"ok\""));
	assert_non_null(th_http_header(r, "X-Request-Id", rid, sizeof(rid)));
	assert_int_equal(strlen(rid), 32);
	for (const char *p = rid; *p; p++)
		assert_true(isxdigit((unsigned char)*p));
	assert_non_null(th_http_header(r, "Content-Type", h, sizeof(h)));
	assert_string_equal(h, "application/json");
	assert_non_null(th_http_header(r, "X-Content-Type-Options", h,
				       sizeof(h)));
	assert_non_null(th_http_header(r, "Cache-Control", h, sizeof(h)));
	assert_string_equal(h, "no-store");
	snprintf(first_rid, sizeof(first_rid), "%s", rid);

	r = get("GET", "/healthz", NULL);
	assert_non_null(th_http_header(r, "X-Request-Id", rid, sizeof(rid)));
	assert_string_not_equal(rid, first_rid);
	r = get("HEAD", "/healthz", NULL);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->body_len, 0);
}

static void
unknown_route_is_404_with_error_shape(void **state)
{
	struct th_http *r;

	(void)state;
	r = get("GET", "/no/such/thing", NULL);
	assert_int_equal(r->status, 404);
	assert_error_shape(r, "not_found");
	assert_non_null(strstr(r->body, "/no/such/thing"));
}

static void
nul_in_path_does_not_reach_a_route(void **state)
{
	static const char req[] =
		"GET /healthz%00x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char out[4096];

	(void)state;
	assert_int_equal(th_raw(srv.port, req, sizeof(req) - 1, 5000, out,
				sizeof(out)),
			 404);
}

static void
wrong_method_is_405_with_allow(void **state)
{
	struct th_http *r;
	char allow[64];

	(void)state;
	r = get("POST", "/readyz", "x=1");
	assert_int_equal(r->status, 405);
	assert_error_shape(r, "method_not_allowed");
	assert_non_null(th_http_header(r, "Allow", allow, sizeof(allow)));
	assert_string_equal(allow, "GET, HEAD");
	r = get("DELETE", "/metrics", NULL);
	assert_int_equal(r->status, 405);
}

static void
oversized_body_is_413(void **state)
{
	char big[4096], out[4096], req[8192];
	struct th_http *r;
	int n;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* declared length over the limit: refused before reading it */
	r = get("GET", "/healthz", big);
	assert_int_equal(r->status, 413);
	assert_error_shape(r, "body_too_large");
	assert_non_null(strstr(r->body, "1024 bytes"));

	/* chunked, no length: refused once the limit is crossed */
	n = snprintf(req, sizeof(req),
		     "GET /healthz HTTP/1.1\r\nHost: x\r\n"
		     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
		     "800\r\n%.2048s\r\n0\r\n\r\n",
		     big);
	assert_true(n > 0 && (size_t)n < sizeof(req));
	assert_int_equal(th_raw(srv.port, req, (size_t)n, 5000, out,
				sizeof(out)),
			 413);

	/* at the limit: accepted */
	big[1024] = '\0';
	r = get("GET", "/healthz", big);
	assert_int_equal(r->status, 200);
}

static void
oversized_headers_are_431(void **state)
{
	char req[16384], out[4096];
	size_t n;
	int st;

	(void)state;
	n = (size_t)snprintf(req, sizeof(req),
			     "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + n, 'b', 9000);
	n += 9000;
	/* raw bytes sent with their length: NOLINTNEXTLINE(bugprone-not-null-terminated-result) */
	memcpy(req + n, "\r\n\r\n", 4);
	n += 4;
	st = th_raw(srv.port, req, n, 5000, out, sizeof(out));
	/* 431 Request Header Fields Too Large (RFC 6585), libmicrohttpd's
	 * answer when the request line and headers outgrow max_header_bytes */
	assert_int_equal(st, 431);
	/* and the service is still there */
	assert_int_equal(get("GET", "/healthz", NULL)->status, 200);
}

/* Polls /readyz until it answers want (at most 15 s). */
static struct th_http *
wait_ready(int want)
{
	struct th_http *r = NULL;

	for (int i = 0; i < 150; i++) {
		r = get("GET", "/readyz", NULL);
		if (r->status == want)
			return r;
		usleep(100000);
	}
	fail_msg("/readyz stayed %ld, wanted %d: %.300s", r->status, want,
		 r->body);
	return r;
}

static void
readyz_follows_ldap(void **state)
{
	struct th_http *r;

	(void)state;
	r = wait_ready(200);
	assert_non_null(strstr(r->body, "\"status\":\"ready\""));

	th_ldap_stop();
	r = get("GET", "/readyz", NULL);
	assert_int_equal(r->status, 503);
	assert_error_shape(r, "not_ready");
	assert_non_null(strstr(r->body, "LDAP is unavailable"));
	assert_null(strstr(r->body, "PostgreSQL is unavailable"));
	assert_non_null(strstr(r->body, "\"ldap\":{\"ok\":false"));

	th_ldap_start();
	wait_ready(200);
}

static void
readyz_follows_postgresql(void **state)
{
	struct th_http *r;

	(void)state;
	wait_ready(200);
	th_pg_stop();
	r = get("GET", "/readyz", NULL);
	assert_int_equal(r->status, 503);
	assert_error_shape(r, "not_ready");
	assert_non_null(strstr(r->body, "PostgreSQL is unavailable"));
	assert_null(strstr(r->body, "LDAP is unavailable"));

	th_pg_start();
	wait_ready(200);
	/* the same process answered throughout */
	assert_int_equal(kill(srv.pid, 0), 0);
}

static void
metrics_expose_routes_latency_and_pools(void **state)
{
	struct th_http *r;
	char ct[128];

	(void)state;
	r = get("GET", "/metrics", NULL);
	assert_int_equal(r->status, 200);
	assert_non_null(th_http_header(r, "Content-Type", ct, sizeof(ct)));
	assert_non_null(strstr(ct, "text/plain; version=0.0.4"));
	assert_non_null(strstr(r->body, "roomgate_http_requests_total{route=\""
					"/healthz\",status=\"200\"}"));
	assert_non_null(strstr(r->body, "roomgate_http_requests_total{route=\""
					"unmatched\",status=\"404\"}"));
	assert_non_null(strstr(r->body, "roomgate_http_requests_total{route=\""
					"/readyz\",status=\"503\"}"));
	assert_non_null(strstr(r->body,
			       "roomgate_http_request_duration_seconds_bucket{"
			       "route=\"/healthz\",le=\"+Inf\"}"));
	assert_non_null(strstr(r->body, "roomgate_db_pool_connections{state="
					"\"configured\"} "));
	assert_non_null(strstr(r->body, "roomgate_housekeeping_deleted_total{"
					"kind=\"saml_requests\"} "));
	assert_non_null(strstr(r->body, "roomgate_housekeeping_deleted_total{"
					"kind=\"admissions_ended\"} "));
	assert_non_null(strstr(r->body, "roomgate_ldap_pool_connections{state="
					"\"in_use\"} 0"));
	assert_non_null(strstr(r->body, "# TYPE roomgate_http_request_duration_"
					"seconds histogram"));
}

static void
logs_are_json_lines_with_request_ids(void **state)
{
	char line[8192];
	int lines = 0, found = 0;
	FILE *f;

	(void)state;
	f = fopen(srv.log_path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *o = json_loads(line, 0, NULL);
		const char *rid;

		if (o == NULL)
			fail_msg("log line is not JSON: %s", line);
		assert_non_null(json_string_value(json_object_get(o, "ts")));
		assert_non_null(json_string_value(json_object_get(o, "level")));
		assert_non_null(json_string_value(json_object_get(o, "event")));
		rid = json_string_value(json_object_get(o, "request_id"));
		if (rid != NULL && strcmp(rid, first_rid) == 0 &&
		    strcmp(json_string_value(json_object_get(o, "event")),
			   "http_request") == 0) {
			assert_int_equal(
				json_integer_value(json_object_get(o, "status")),
				200);
			found = 1;
		}
		json_decref(o);
		lines++;
	}
	fclose(f);
	assert_true(lines > 5);
	assert_true(found);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(healthz_answers_with_request_id),
		cmocka_unit_test(unknown_route_is_404_with_error_shape),
		cmocka_unit_test(nul_in_path_does_not_reach_a_route),
		cmocka_unit_test(wrong_method_is_405_with_allow),
		cmocka_unit_test(oversized_body_is_413),
		cmocka_unit_test(oversized_headers_are_431),
		cmocka_unit_test(readyz_follows_ldap),
		cmocka_unit_test(readyz_follows_postgresql),
		cmocka_unit_test(metrics_expose_routes_latency_and_pools),
		cmocka_unit_test(logs_are_json_lines_with_request_ids),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
