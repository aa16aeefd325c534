/*
 * Integration: the bad-input catalogue. Malformed, oversized, slow and
 * ambiguous requests sent over raw sockets (libcurl would normalize most of
 * them) to the real endpoints of a real `roomgate serve` -- join, authz,
 * the meetings API, the SAML ACS and the pages -- with a real signed-in
 * session and a real meeting. Each must get a clear 4xx (the JSON error
 * shape with an actionable message, or the HTML page), never a 500, a
 * crash or a hang, and /healthz must answer 200 after each one. At the end
 * the metrics must hold no 5xx answer at all and the server must stop
 * cleanly (ASan found nothing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>

/* The shared SAML helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-badinput.test/saml/metadata"
#define IDP_ENTITY "https://idp-badinput.test/saml"
#define SECRET "jitsi-shared-secret-for-the-badinput-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
/* [server] connection_timeout of this file's node, in seconds. */
#define CONN_TIMEOUT_S 2
#define SESSION_COOKIE "rg_session"

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server srv;
	pid_t idp;
	PGconn *pg;
	char host_token[64], admin_token[64];
	char cookie[160]; /* "rg_session=..." of alice */
	char link[80], code[16], id[40];
	struct sth_browser alice;
} T;

/* ---- helpers ---------------------------------------------------------- */

/* A string literal and its length (NULs inside included). */
#define LIT(s) s, sizeof(s) - 1

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
healthy(const char *after)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128];

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/healthz", T.base);
	if (th_http("GET", url, NULL, NULL, 0, r) != 200)
		fail_msg("/healthz answered %ld after %s", r->status, after);
	free(r);
}

/* The body of a raw answer (after the blank line). */
static const char *
raw_body(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\n");

	return p ? p + 4 : "";
}

/*
 * Sends len raw bytes; the answer must have status want and contain each
 * of the NULL-ended strings in subs (the body's error code, a part of its
 * message). A JSON answer must have the error shape with a message long
 * enough to say what to do. Then /healthz must be 200.
 */
static void
expect_raw_v(const char *what, const char *req, size_t len, int want,
             const char *const *subs)
{
	static char out[65536];
	int st = th_raw(T.port, req, len, 10000, out, sizeof(out));
	const char *body = raw_body(out);

	if (st != want)
		fail_msg("%s: expected %d, got %d:\n%.600s", what, want, st,
		         out);
	for (size_t i = 0; subs != NULL && subs[i] != NULL; i++)
		if (strstr(out, subs[i]) == NULL)
			fail_msg("%s: answer lacks \"%s\":\n%.600s", what,
			         subs[i], out);
	if (strstr(out, "application/json") != NULL && *body == '{') {
		json_t *o = json_loads(body, 0, NULL), *e;
		const char *msg;

		if (o == NULL)
			fail_msg("%s: JSON answer does not parse: %.300s",
			         what, body);
		e = json_object_get(o, "error");
		msg = json_string_value(json_object_get(e, "message"));
		if (want >= 400 && (msg == NULL || strlen(msg) < 15 ||
		                    json_string_value(json_object_get(
		                        e, "code")) == NULL))
			fail_msg("%s: no actionable error: %.300s", what,
			         body);
		json_decref(o);
	}
	healthy(what);
}

#define expect_raw(what, req, len, want, ...)                              \
	do {                                                               \
		const char *subs_[] = {__VA_ARGS__, NULL};                 \
		expect_raw_v(what, req, len, want, subs_);                 \
	} while (0)

/* A request from a format; its length is the formatted length. */
static size_t
fmt_req(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t
fmt_req(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

/* POST path with a JSON (or other) body and alice's cookie. */
static size_t
post_req(char *buf, size_t cap, const char *path, const char *ctype,
         const char *auth, const char *body, size_t blen)
{
	/* auth: one header line without its CRLF, "" for none, NULL for
	 * alice's cookie */
	size_t n = fmt_req(buf, cap,
	                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                   "Content-Type: %s\r\n%s%s%s"
	                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                   path, ctype, auth ? auth : "Cookie: ",
	                   auth ? "" : T.cookie,
	                   auth != NULL && *auth == '\0' ? "" : "\r\n", blen);

	assert_true(n + blen < cap);
	memcpy(buf + n, body, blen);
	return n + blen;
}

static void
new_meeting(void)
{
	ath_new_meeting(T.base, T.host_token, GROUP, "bad input", 0, T.link,
	                T.code, T.id);
}

/* Open descriptors of the server process. */
static int
server_fds(void)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)T.srv.pid);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int
tcp_connect(void)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)T.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Waits until the server closes fd (read 0 or an error); the seconds it
 * took, or -1 when it stayed open for max_s. */
static double
wait_closed(int fd, double t0, double max_s)
{
	char buf[4096];

	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		double left = max_s - (mono_s() - t0);

		if (left <= 0)
			return -1;
		if (poll(&p, 1, (int)(left * 1000) + 1) > 0) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);

			if (n <= 0)
				return mono_s() - t0;
		}
	}
}

/* ---- fixture ---------------------------------------------------------- */

static int
setup(void **state)
{
	char spmd[512], key[512], crt[512], md[512], ini[4096];
	const char *sps[2];
	struct curl_slist *cl = NULL;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	T.idp_port = th_free_port();
	T.port = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "badinput-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "badinput-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "badinput-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "connection_timeout = %d\nmax_header_bytes = 8192\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\nacs_max_body_bytes = 65536\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\nmax_failures = 1000\nprobe_identities = 0\n"
	         "source_max_failures = 100000\n"
	         "[tokens]\nhs256_secret = " SECRET "\nissuer = rg-test\n"
	         "audience = jitsi\nsubject = meet.example.com\n",
	         T.base, CONN_TIMEOUT_S, th_env("RG_TEST_LDAP_BASE_DN"), key,
	         crt, md);
	th_server_start(&T.srv, th_config("badinput.ini", ini), T.port);
	sth_save_sp_metadata(T.base, "badinput-sp-md.xml");
	T.pg = sth_pg();
	ath_token(th_config("badinput.ini", ini), "host", "bad-host", "alice",
	          T.host_token);
	ath_token(th_config("badinput.ini", ini), "admin", "bad-admin",
	          "alice", T.admin_token);
	sth_browser_init(&T.alice);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	/* alice's session cookie, for requests written by hand */
	assert_int_equal(curl_easy_getinfo(T.alice.h, CURLINFO_COOKIELIST, &cl),
	                 CURLE_OK);
	for (struct curl_slist *c = cl; c != NULL; c = c->next) {
		const char *p = strstr(c->data, "\t" SESSION_COOKIE "\t");

		if (p != NULL)
			snprintf(T.cookie, sizeof(T.cookie), "%s=%s",
			         SESSION_COOKIE,
			         p + strlen(SESSION_COOKIE) + 2);
	}
	curl_slist_free_all(cl);
	assert_true(strlen(T.cookie) > 40);
	new_meeting();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sth_browser_free(&T.alice);
	sth_idp_stop(T.idp);
	th_server_stop(&T.srv);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- sizes ------------------------------------------------------------ */

static void
oversized_headers_cookies_and_bodies(void **state)
{
	static char req[2 * 1024 * 1024];
	char path[128];
	char *big;
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "/v1/join/%s", T.link);
	/* one header over max_header_bytes, on the join endpoint */
	n = fmt_req(req, sizeof(req),
	            "POST %s HTTP/1.1\r\nHost: x\r\nX-Pad: ", path);
	memset(req + n, 'p', 20000);
	n += 20000;
	n += (size_t)snprintf(req + n, 64,
	                      "\r\nContent-Length: 2\r\n\r\n{}");
	expect_raw("20 kB header", req, n, 431, "431");

	/* a 20 kB cookie on a page */
	n = fmt_req(req, sizeof(req),
	            "GET /j/%s HTTP/1.1\r\nHost: x\r\nCookie: rg_session=",
	            T.link);
	memset(req + n, 'c', 20000);
	n += 20000;
	n += (size_t)snprintf(req + n, 64, "\r\nConnection: close\r\n\r\n");
	expect_raw("20 kB cookie", req, n, 431, "431");

	/* a cookie under the limit that is no session: not signed in */
	big = malloc(3001);
	assert_non_null(big);
	memset(big, 'A', 3000);
	big[3000] = '\0';
	n = fmt_req(req, sizeof(req),
	            "POST %s HTTP/1.1\r\nHost: x\r\nCookie: rg_session=%s; "
	            "other=1\r\nContent-Type: application/json\r\n"
	            "Content-Length: 15\r\nConnection: close\r\n\r\n"
	            "{\"code\": \"1\"}  ",
	            path, big);
	expect_raw("3 kB session cookie", req, n, 401, "login_required");
	free(big);

	/* many small headers adding up over the limit */
	n = fmt_req(req, sizeof(req), "GET /v1/authz HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(req + n, 32, "X-H%d: v\r\n", i);
	n += (size_t)snprintf(req + n, 32, "\r\n");
	expect_raw("1000 headers", req, n, 431, "431");

	/* a body over max_body_bytes (64 kB), declared */
	big = calloc(1, 100001);
	assert_non_null(big);
	memset(big, ' ', 100000);
	big[0] = '{';
	big[99999] = '}';
	n = post_req(req, sizeof(req), path, "application/json", NULL, big,
	             100000);
	expect_raw("100 kB join body", req, n, 413, "body_too_large",
	           "65536 bytes");
	/* the ACS has its own limit */
	n = post_req(req, sizeof(req), "/saml/acs",
	             "application/x-www-form-urlencoded", "", big, 100000);
	expect_raw("100 kB ACS body", req, n, 413, "body_too_large",
	           "65536 bytes");
	free(big);
	/* chunked without a length, crossing the limit */
	n = fmt_req(req, sizeof(req),
	            "POST %s HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	            "Content-Type: application/json\r\n"
	            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
	            path, T.cookie);
	for (int i = 0; i < 40; i++) {
		n += (size_t)snprintf(req + n, 16, "800\r\n");
		memset(req + n, ' ', 2048);
		n += 2048;
		n += (size_t)snprintf(req + n, 8, "\r\n");
	}
	n += (size_t)snprintf(req + n, 16, "0\r\n\r\n");
	expect_raw("80 kB chunked body", req, n, 413, "body_too_large");
	/* a Content-Length no machine holds */
	n = fmt_req(req, sizeof(req),
	            "POST %s HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	            "Content-Type: application/json\r\n"
	            "Content-Length: 184467440737095516160000\r\n"
	            "Connection: close\r\n\r\n{}",
	            path, T.cookie);
	expect_raw("huge Content-Length", req, n, 413, "413");
}

/* ---- slow clients ----------------------------------------------------- */

/* Half a request, then silence: dropped after connection_timeout. */
static void
silent_half_request_is_dropped(void **state)
{
	static const char half[] = "POST /v1/join/x HTTP/1.1\r\nHost: x\r\n";
	double t0 = mono_s(), took;
	int fd = tcp_connect();

	(void)state;
	assert_int_equal(send(fd, half, sizeof(half) - 1, MSG_NOSIGNAL),
	                 (ssize_t)(sizeof(half) - 1));
	took = wait_closed(fd, t0, CONN_TIMEOUT_S + 8);
	close(fd);
	if (took < 0)
		fail_msg("a silent half request was still open after %d s",
		         CONN_TIMEOUT_S + 8);
	assert_true(took >= CONN_TIMEOUT_S - 0.5);
	healthy("a silent half request");
}

/*
 * A body trickled a byte at a time, each byte well inside the idle
 * timeout (slowloris on the body, "R-U-Dead-Yet"): the whole body has
 * connection_timeout seconds, then the connection is dropped.
 */
static void
trickled_body_is_dropped(void **state)
{
	char head[512];
	double t0, took = -1;
	int fd = tcp_connect(), n;

	(void)state;
	n = snprintf(head, sizeof(head),
	             "POST /v1/join/%s HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	             "Content-Type: application/json\r\n"
	             "Content-Length: 1000\r\n\r\n{",
	             T.link, T.cookie);
	t0 = mono_s();
	assert_int_equal(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
	for (int i = 0; i < 200; i++) {
		struct pollfd p = {fd, POLLIN, 0};

		if (poll(&p, 1, 300) > 0) {
			char buf[4096];

			if (recv(fd, buf, sizeof(buf), 0) <= 0) {
				took = mono_s() - t0;
				break;
			}
		}
		if (send(fd, " ", 1, MSG_NOSIGNAL) != 1) {
			took = mono_s() - t0;
			break;
		}
	}
	close(fd);
	if (took < 0)
		fail_msg("a trickled body kept its connection for 60 s");
	/* the budget is connection_timeout; a poll of slack on top */
	assert_true(took < CONN_TIMEOUT_S + 2.0);
	healthy("a trickled body");
}

/* Many slow connections at once do not starve anyone, and go away. */
static void
many_slow_connections_do_not_starve_the_service(void **state)
{
	enum { NSLOW = 64 };
	int fds[NSLOW], before = server_fds(), during;
	double t0;

	(void)state;
	for (int i = 0; i < NSLOW; i++) {
		fds[i] = tcp_connect();
		assert_int_equal(send(fds[i], "GET /heal", 9, MSG_NOSIGNAL), 9);
	}
	usleep(200000);
	during = server_fds();
	t0 = mono_s();
	healthy("64 slow connections");
	/* answered at once, not after a slow client's timeout */
	assert_true(mono_s() - t0 < 1.0);
	assert_true(during >= before + NSLOW / 2);
	for (int i = 0; i < NSLOW; i++) {
		double took = wait_closed(fds[i], mono_s(), CONN_TIMEOUT_S + 8);

		assert_true(took >= 0);
		close(fds[i]);
	}
	/* every descriptor of theirs is given back */
	for (int i = 0; i < 50 && server_fds() > before + 2; i++)
		usleep(100000);
	assert_true(server_fds() <= before + 2);
}

/* ---- encodings -------------------------------------------------------- */

static void
malformed_percent_encoding_and_utf8(void **state)
{
	static char req[8192];
	char path[128], auth[128];
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "/v1/join/%s", T.link);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         T.host_token);
	/* broken escapes in a path: no such meeting link, the page says so */
	n = fmt_req(req, sizeof(req),
	            "GET /j/%%zz%%4 HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	            "Connection: close\r\n\r\n",
	            T.cookie);
	expect_raw("%zz in a link", req, n, 404, "text/html");
	/* an overlong UTF-8 slash in a link */
	n = fmt_req(req, sizeof(req),
	            "GET /j/%s%%C0%%AF..%%C0%%AFx HTTP/1.1\r\nHost: x\r\n"
	            "Cookie: %s\r\nConnection: close\r\n\r\n",
	            T.link, T.cookie);
	expect_raw("overlong UTF-8 in a link", req, n, 404, "text/html");
	/* a broken escape in a query number */
	n = fmt_req(req, sizeof(req),
	            "GET /v1/meetings?limit=%%zz HTTP/1.1\r\nHost: x\r\n"
	            "%s\r\nConnection: close\r\n\r\n",
	            auth);
	expect_raw("%zz as limit", req, n, 400, "\"invalid_field\"",
	           "limit must be a whole number");
	/* %00 in a query value */
	n = fmt_req(req, sizeof(req),
	            "GET /v1/meetings?limit=1%%00 HTTP/1.1\r\nHost: x\r\n"
	            "%s\r\nConnection: close\r\n\r\n",
	            auth);
	expect_raw("%00 in limit", req, n, 400, "\"invalid_field\"",
	           "limit must be a whole number");
	/* invalid UTF-8 in a JSON body */
	n = post_req(req, sizeof(req), path, "application/json", NULL,
	             LIT("{\"code\": \"\xff\xfe\"}"));
	expect_raw("invalid UTF-8 code", req, n, 400, "\"malformed_code\"",
	           "code as a string");
	n = post_req(req, sizeof(req), "/v1/meetings", "application/json",
	             auth,
	             "{\"title\": \"caf\xc3\", \"allowed_groups\": [\"" GROUP
	             "\"]}",
	             strlen("{\"title\": \"caf\xc3\", \"allowed_groups\": "
	                    "[\"" GROUP "\"]}"));
	expect_raw("invalid UTF-8 title", req, n, 400, "\"invalid_field\"",
	           "unable to decode byte 0xc3");
	/* an escaped NUL in a JSON string, and a raw NUL byte */
	n = post_req(req, sizeof(req), path, "application/json", NULL,
	             LIT("{\"code\": \"1234\\u0000567\"}"));
	expect_raw("\\u0000 in the code", req, n, 400, "\"malformed_code\"");
	n = post_req(req, sizeof(req), path, "application/json", NULL,
	             LIT("{\"code\": \"1234\0005678\"}"));
	expect_raw("raw NUL in the body", req, n, 400, "\"malformed_code\"");
	/* a raw NUL inside a header value: the request is refused whole */
	n = fmt_req(req, sizeof(req),
	            "GET /v1/authz HTTP/1.1\r\nHost: x\r\n"
	            "X-Roomgate-Meeting: %s",
	            T.link);
	memcpy(req + n, "\0x\r\nConnection: close\r\n\r\n", 26);
	n += 26;
	expect_raw("raw NUL in a header", req, n, 401, "\"unauthenticated\"");
	/* invalid UTF-8 naming the meeting to forward-auth */
	n = fmt_req(req, sizeof(req),
	            "GET /v1/authz HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	            "X-Roomgate-Meeting: \xff\xfe%s\r\n"
	            "Connection: close\r\n\r\n",
	            T.cookie, T.link);
	expect_raw("invalid UTF-8 meeting", req, n, 403, "\"forbidden\"",
	           "names no meeting");
	/* a form code that is not digits, escaped badly */
	n = post_req(req, sizeof(req), "/saml/acs",
	             "application/x-www-form-urlencoded", "",
	             LIT("SAMLResponse=%zz%ff%00"));
	expect_raw("garbage SAMLResponse", req, n, 403, "text/html");
}

/* ---- numbers and nesting ---------------------------------------------- */

static void
huge_numbers_and_deep_nesting(void **state)
{
	static char req[131072];
	char path[128], auth[128], body[512];
	char *deep;
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "/v1/join/%s", T.link);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         T.host_token);
	n = post_req(req, sizeof(req), path, "application/json", NULL,
	             LIT("{\"code\": 123456789012345678901234567890}"));
	expect_raw("huge number code", req, n, 400, "\"malformed_code\"");
	n = post_req(req, sizeof(req), path, "application/json", NULL,
	             LIT("{\"code\": 12345678}"));
	expect_raw("number code", req, n, 400, "\"malformed_code\"");
	snprintf(body, sizeof(body),
	         "{\"title\": \"n\", \"allowed_groups\": [\"" GROUP "\"], "
	         "\"code_length\": 1e400}");
	n = post_req(req, sizeof(req), "/v1/meetings", "application/json",
	             auth, body, strlen(body));
	expect_raw("1e400 code_length", req, n, 400, "\"invalid_field\"",
	           "real number overflow");
	snprintf(body, sizeof(body),
	         "{\"title\": \"n\", \"allowed_groups\": [\"" GROUP "\"], "
	         "\"code_length\": 18446744073709551617}");
	n = post_req(req, sizeof(req), "/v1/meetings", "application/json",
	             auth, body, strlen(body));
	expect_raw("2^64+1 code_length", req, n, 400, "\"invalid_field\"",
	           "too big integer");
	n = fmt_req(req, sizeof(req),
	            "GET /v1/meetings?limit=99999999999999999999999 HTTP/1.1\r\n"
	            "Host: x\r\n%s\r\nConnection: close\r\n\r\n",
	            auth);
	expect_raw("huge limit", req, n, 400, "\"invalid_field\"",
	           "limit must be a whole number");
	n = fmt_req(req, sizeof(req),
	            "GET /v1/outbox?state=pending&limit=-1 HTTP/1.1\r\nHost: x\r\n"
	            "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
	            T.admin_token);
	expect_raw("negative outbox limit", req, n, 400, "limit");
	/* 60,000 levels of arrays: a parse error, not a stack overflow */
	deep = malloc(60001);
	assert_non_null(deep);
	memset(deep, '[', 60000);
	deep[60000] = '\0';
	n = post_req(req, sizeof(req), path, "application/json", NULL, deep,
	             60000);
	expect_raw("deep arrays on join", req, n, 400, "\"malformed_code\"");
	memcpy(deep, "{\"title\":", 9);
	n = post_req(req, sizeof(req), "/v1/meetings", "application/json",
	             auth, deep, 60000);
	expect_raw("deep arrays on create", req, n, 400, "\"invalid_field\"",
	           "maximum parsing depth");
	free(deep);
}

/* ---- ambiguity -------------------------------------------------------- */

static void
duplicate_parameters_are_refused(void **state)
{
	static char req[8192];
	char path[128], auth[128], *csrf, body[512];
	struct sth_resp r;
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "/v1/join/%s", T.link);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         T.host_token);
	n = fmt_req(req, sizeof(req),
	            "GET /v1/meetings?limit=1&limit=500 HTTP/1.1\r\nHost: x\r\n"
	            "%s\r\nConnection: close\r\n\r\n",
	            auth);
	expect_raw("limit twice", req, n, 400, "duplicate_parameter",
	           "limit");
	n = post_req(req, sizeof(req), path, "application/json", NULL,
	             LIT("{\"code\": \"11111111\", \"code\": \"22222222\"}"));
	expect_raw("code twice in JSON", req, n, 400, "\"malformed_code\"");
	n = fmt_req(req, sizeof(req),
	            "GET /v1/authz HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	            "X-Roomgate-Meeting: %s\r\nX-Roomgate-Meeting: other\r\n"
	            "Connection: close\r\n\r\n",
	            T.cookie, T.link);
	expect_raw("meeting header twice", req, n, 400, "duplicate_header",
	           "X-Roomgate-Meeting");
	n = fmt_req(req, sizeof(req),
	            "GET /v1/me HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	            "Cookie: rg_session=x\r\nConnection: close\r\n\r\n",
	            T.cookie);
	expect_raw("Cookie twice", req, n, 400, "duplicate_header",
	           "Cookie");
	n = fmt_req(req, sizeof(req),
	            "POST %s HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	            "Content-Type: application/json\r\n"
	            "Content-Length: 2\r\nContent-Length: 40\r\n"
	            "Connection: close\r\n\r\n{}",
	            path, T.cookie);
	expect_raw("Content-Length twice", req, n, 400, "duplicate_header");
	/* the form: a code twice is refused (which one was meant?) */
	snprintf(body, sizeof(body), "%s/j/%s", T.base, T.link);
	assert_int_equal(sth_do(&T.alice, body, NULL, 0, &r), 200);
	csrf = sth_form_field(r.body, "csrf");
	assert_non_null(csrf);
	sth_resp_free(&r);
	n = (size_t)snprintf(body, sizeof(body), "csrf=%s&code=%s&code=%s",
	                     csrf, T.code, "00000000");
	free(csrf);
	{
		char p2[128];

		snprintf(p2, sizeof(p2), "/j/%s", T.link);
		n = post_req(req, sizeof(req), p2,
		             "application/x-www-form-urlencoded", NULL, body,
		             n);
	}
	expect_raw("code twice in the form", req, n, 400, "text/html",
	           "more than once");
	/* nobody got in through any of it */
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions "
	                              "WHERE meeting_id = $1::uuid",
	                              T.id),
	                 0);
}

static void
wrong_content_types(void **state)
{
	static char req[8192];
	char path[128], auth[128], body[256];
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "/v1/join/%s", T.link);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         T.host_token);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", T.code);
	n = post_req(req, sizeof(req), path, "text/plain", NULL, body,
	             strlen(body));
	expect_raw("join as text/plain", req, n, 403, "\"csrf\"",
	           "application/json");
	n = post_req(req, sizeof(req), path, "multipart/form-data; boundary=x",
	             NULL, body, strlen(body));
	expect_raw("join as multipart", req, n, 403, "\"csrf\"");
	n = post_req(req, sizeof(req), "/v1/meetings", "text/plain", auth,
	             LIT("{\"title\": \"t\"}"));
	expect_raw("create as text/plain", req, n, 415,
	           "unsupported_media_type", "application/json");
	n = post_req(req, sizeof(req), "/saml/acs", "application/json", "",
	             LIT("{\"SAMLResponse\": \"x\"}"));
	expect_raw("ACS as JSON", req, n, 403, "text/html");
	snprintf(body, sizeof(body), "/j/%s", T.link);
	n = post_req(req, sizeof(req), body, "application/json", NULL,
	             LIT("{\"code\": \"1\"}"));
	expect_raw("form post as JSON", req, n, 403, "text/html");
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions "
	                              "WHERE meeting_id = $1::uuid",
	                              T.id),
	                 0);
}

/* ---- methods, versions, request targets ------------------------------- */

static void
methods_versions_and_targets(void **state)
{
	static char req[4096];
	static char out[65536];
	size_t n;

	(void)state;
	n = fmt_req(req, sizeof(req),
	            "OPTIONS /v1/join/%s HTTP/1.1\r\nHost: x\r\n"
	            "Origin: https://evil.example\r\n"
	            "Access-Control-Request-Method: POST\r\n"
	            "Connection: close\r\n\r\n",
	            T.link);
	expect_raw("OPTIONS preflight", req, n, 405, "method_not_allowed",
	           "Allow: POST");
	assert_int_equal(th_raw(T.port, req, n, 5000, out, sizeof(out)), 405);
	assert_null(strstr(out, "Access-Control-Allow"));
	n = fmt_req(req, sizeof(req),
	            "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	expect_raw("OPTIONS *", req, n, 404, "not_found");
	n = fmt_req(req, sizeof(req),
	            "TRACE /healthz HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	            "Connection: close\r\n\r\n",
	            T.cookie);
	expect_raw("TRACE", req, n, 405, "method_not_allowed");
	/* TRACE must not echo the cookie back */
	assert_int_equal(th_raw(T.port, req, n, 5000, out, sizeof(out)), 405);
	assert_null(strstr(out, T.cookie + 11));
	n = fmt_req(req, sizeof(req),
	            "BREW /v1/authz HTTP/1.1\r\nHost: x\r\n"
	            "Connection: close\r\n\r\n");
	expect_raw("unknown method", req, n, 405, "method_not_allowed");
	n = fmt_req(req, sizeof(req),
	            "HEAD /j/%s HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
	            "Connection: close\r\n\r\n",
	            T.link, T.cookie);
	assert_int_equal(th_raw(T.port, req, n, 5000, out, sizeof(out)), 200);
	assert_string_equal(raw_body(out), "");
	healthy("HEAD");
	/* HTTP/1.0: no Host needed, answered and closed */
	n = fmt_req(req, sizeof(req), "GET /healthz HTTP/1.0\r\n\r\n");
	expect_raw("HTTP/1.0", req, n, 200, "\"ok\"");
	n = fmt_req(req, sizeof(req),
	            "POST /v1/join/%s HTTP/1.0\r\nContent-Type: "
	            "application/json\r\nContent-Length: 13\r\n\r\n"
	            "{\"code\": \"1\"}",
	            T.link);
	expect_raw("HTTP/1.0 join", req, n, 401, "login_required");
	n = fmt_req(req, sizeof(req),
	            "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
	expect_raw("HTTP/1.1 without Host", req, n, 400, "needs a Host header");
	n = fmt_req(req, sizeof(req),
	            "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n");
	expect_raw("HTTP/2.0 as text", req, n, 505, "505");
	n = fmt_req(req, sizeof(req), "GET /healthz\r\n\r\n");
	expect_raw("HTTP/0.9", req, n, 400, "syntactically incorrect");
	/* absolute-form targets are for proxies: refused with a reason */
	n = fmt_req(req, sizeof(req),
	            "GET http://127.0.0.1:%d/healthz HTTP/1.1\r\nHost: x\r\n"
	            "Connection: close\r\n\r\n",
	            T.port);
	expect_raw("absolute-form", req, n, 400, "absolute_form",
	           "path");
	n = fmt_req(req, sizeof(req),
	            "POST http://evil.example/v1/join/%s HTTP/1.1\r\nHost: x\r\n"
	            "Cookie: %s\r\nContent-Type: application/json\r\n"
	            "Content-Length: 13\r\nConnection: close\r\n\r\n"
	            "{\"code\": \"1\"}",
	            T.link, T.cookie);
	expect_raw("absolute-form join", req, n, 400, "absolute_form");
}

/* Whatever came before: no 5xx was ever answered, nobody admitted. */
static void
no_5xx_and_nobody_admitted(void **state)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128];

	(void)state;
	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/metrics", T.base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	if (strstr(r->body, "status=\"5") != NULL)
		fail_msg("a 5xx was answered: %s",
		         strstr(r->body, "status=\"5") - 80);
	free(r);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions "
	                              "WHERE meeting_id = $1::uuid",
	                              T.id),
	                 0);
	/* and the real thing still works */
	{
		struct sth_resp jr;
		char body[64];

		snprintf(body, sizeof(body), "{\"code\": \"%s\"}", T.code);
		assert_int_equal(ath_req(T.base, &T.alice, "POST",
		                         "/v1/join/dummy", NULL, body, &jr),
		                 404);
		sth_resp_free(&jr);
		snprintf(url, sizeof(url), "/v1/join/%s", T.link);
		if (ath_req(T.base, &T.alice, "POST", url, NULL, body, &jr) !=
		    200)
			fail_msg("join after the catalogue: %ld %s", jr.status,
			         jr.body);
		sth_resp_free(&jr);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(oversized_headers_cookies_and_bodies),
		cmocka_unit_test(silent_half_request_is_dropped),
		cmocka_unit_test(trickled_body_is_dropped),
		cmocka_unit_test(many_slow_connections_do_not_starve_the_service),
		cmocka_unit_test(malformed_percent_encoding_and_utf8),
		cmocka_unit_test(huge_numbers_and_deep_nesting),
		cmocka_unit_test(duplicate_parameters_are_refused),
		cmocka_unit_test(wrong_content_types),
		cmocka_unit_test(methods_versions_and_targets),
		cmocka_unit_test(no_5xx_and_nobody_admitted),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
