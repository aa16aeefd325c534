/*
 * Helpers for the SAML integration tests (included by test_saml*.c only):
 * a scripted browser on libcurl with a cookie jar, the test IdP process
 * (build dir's `idp`), key pairs made with `roomgate saml-keygen`, and a
 * libpq connection to read audit records and count sessions.
 *
 * Everything here is static; each test binary gets its own copy. Strings
 * returned are malloc()ed for the caller unless said otherwise.
 */
#ifndef ROOMGATE_SAML_TH_H
#define ROOMGATE_SAML_TH_H

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <libpq-fe.h>
#include <openssl/ssl.h>

#include "tests/lib/th.h"

#define STH_PASSWORD "Corr3ct-horse-run"

/* A browser: one curl handle with its own in-memory cookie jar. */
struct sth_browser {
	CURL *h;
};

struct sth_resp {
	long status;
	char *body; /* NUL-terminated, malloc()ed */
	size_t len;
	char location[8192];
	char request_id[64];
	char set_cookie[4096]; /* all Set-Cookie values, "\n"-separated */
};

static size_t
sth_write(char *p, size_t sz, size_t n, void *ud)
{
	struct sth_resp *r = ud;
	size_t add = sz * n;
	char *nb = realloc(r->body, r->len + add + 1);

	if (nb == NULL)
		return 0;
	memcpy(nb + r->len, p, add);
	r->len += add;
	nb[r->len] = '\0';
	r->body = nb;
	return add;
}

static void
sth_hdr_value(const char *line, size_t n, char *out, size_t outlen)
{
	const char *c = memchr(line, ':', n);
	size_t vl;

	if (c == NULL)
		return;
	c++;
	while (c < line + n && *c == ' ')
		c++;
	vl = (size_t)(line + n - c);
	while (vl > 0 && (c[vl - 1] == '\r' || c[vl - 1] == '\n'))
		vl--;
	if (vl >= outlen)
		vl = outlen - 1;
	memcpy(out, c, vl);
	out[vl] = '\0';
}

static size_t
sth_header(char *p, size_t sz, size_t n, void *ud)
{
	struct sth_resp *r = ud;
	size_t len = sz * n;

	if (len > 9 && strncasecmp(p, "Location:", 9) == 0)
		sth_hdr_value(p, len, r->location, sizeof(r->location));
	else if (len > 13 && strncasecmp(p, "X-Request-Id:", 13) == 0)
		sth_hdr_value(p, len, r->request_id, sizeof(r->request_id));
	else if (len > 11 && strncasecmp(p, "Set-Cookie:", 11) == 0) {
		size_t used = strlen(r->set_cookie);

		sth_hdr_value(p, len, r->set_cookie + used,
			      sizeof(r->set_cookie) - used - 1);
		used = strlen(r->set_cookie);
		if (used + 1 < sizeof(r->set_cookie)) {
			r->set_cookie[used] = '\n';
			r->set_cookie[used + 1] = '\0';
		}
	}
	return len;
}

static void
sth_browser_init(struct sth_browser *b)
{
	b->h = curl_easy_init();
	assert_non_null(b->h);
	curl_easy_setopt(b->h, CURLOPT_COOKIEFILE, "");
	curl_easy_setopt(b->h, CURLOPT_TIMEOUT, 30L);
}

static void
sth_browser_free(struct sth_browser *b)
{
	if (b->h)
		curl_easy_cleanup(b->h);
	b->h = NULL;
}

static void
sth_resp_free(struct sth_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* GET (body NULL) or POST a form body. Never follows redirects. */
static long
sth_do(struct sth_browser *b, const char *url, const char *body, size_t len,
       struct sth_resp *r)
{
	struct curl_slist *hl = NULL;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	curl_easy_setopt(b->h, CURLOPT_URL, url);
	curl_easy_setopt(b->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, sth_write);
	curl_easy_setopt(b->h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(b->h, CURLOPT_HEADERFUNCTION, sth_header);
	curl_easy_setopt(b->h, CURLOPT_HEADERDATA, r);
	if (body != NULL) {
		hl = curl_slist_append(
			hl, "Content-Type: application/x-www-form-urlencoded");
		curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(b->h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
		curl_easy_setopt(b->h, CURLOPT_POSTFIELDS, body);
	} else {
		curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(b->h, CURLOPT_HTTPGET, 1L);
	}
	rc = curl_easy_perform(b->h);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	if (rc != CURLE_OK)
		r->status = -1;
	else
		curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body == NULL) {
		r->body = calloc(1, 1);
		assert_non_null(r->body);
	}
	return r->status;
}

/* The value="..." of the input named `name` in html, entities decoded. */
static char *
sth_form_field(const char *html, const char *name)
{
	char pat[128];
	const char *p, *v, *e;
	char *out, *o;

	snprintf(pat, sizeof(pat), "name=\"%s\" value=\"", name);
	p = strstr(html, pat);
	if (p == NULL)
		return NULL;
	v = p + strlen(pat);
	e = strchr(v, '"');
	if (e == NULL)
		return NULL;
	out = malloc((size_t)(e - v) + 1);
	assert_non_null(out);
	for (o = out; v < e;) {
		if (strncmp(v, "&amp;", 5) == 0) {
			*o++ = '&';
			v += 5;
		} else if (strncmp(v, "&quot;", 6) == 0) {
			*o++ = '"';
			v += 6;
		} else if (strncmp(v, "&lt;", 4) == 0) {
			*o++ = '<';
			v += 4;
		} else if (strncmp(v, "&gt;", 4) == 0) {
			*o++ = '>';
			v += 4;
		} else {
			*o++ = *v++;
		}
	}
	*o = '\0';
	return out;
}

static char *
sth_form_action(const char *html)
{
	const char *p = strstr(html, "action=\""), *e;
	char *out;

	if (p == NULL)
		return NULL;
	p += 8;
	e = strchr(p, '"');
	out = strndup(p, (size_t)(e - p));
	assert_non_null(out);
	return out;
}

static char *
sth_escape(struct sth_browser *b, const char *s)
{
	char *e = curl_easy_escape(b->h, s, 0), *out;

	assert_non_null(e);
	out = strdup(e);
	curl_free(e);
	return out;
}

/* ---- processes and files ---------------------------------------------- */

static void
sth_path(char *out, size_t n, const char *name)
{
	int k = snprintf(out, n, "%s/%s", th_env("RG_TEST_TMP"), name);

	assert_true(k > 0 && (size_t)k < n);
}

/* `roomgate saml-keygen` into RG_TEST_TMP/<prefix>.key/.crt, once. */
static void
sth_keypair(const char *prefix)
{
	char key[512], crt[512], kn[128], cn[128], out[2048];
	const char *argv[10];

	snprintf(kn, sizeof(kn), "%s.key", prefix);
	snprintf(cn, sizeof(cn), "%s.crt", prefix);
	sth_path(key, sizeof(key), kn);
	sth_path(crt, sizeof(crt), cn);
	if (access(key, F_OK) == 0)
		return;
	argv[0] = th_env("RG_TEST_BIN");
	argv[1] = "saml-keygen";
	argv[2] = "--key";
	argv[3] = key;
	argv[4] = "--cert";
	argv[5] = crt;
	argv[6] = "--name";
	argv[7] = prefix;
	argv[8] = NULL;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("saml-keygen failed: %s", out);
}

/* The idp binary next to roomgate. */
static void
sth_idp_bin(char *out, size_t n)
{
	const char *bin = th_env("RG_TEST_BIN");
	const char *slash = strrchr(bin, '/');
	int k = snprintf(out, n, "%.*s/idp", (int)(slash - bin), bin);

	assert_true(k > 0 && (size_t)k < n);
}

/* Writes the IdP metadata for entity/base to RG_TEST_TMP/<name>. */
static void
sth_idp_metadata(const char *entity, const char *base, const char *name)
{
	char bin[512], key[512], crt[512], md[512], out[2048];
	const char *argv[14];

	sth_idp_bin(bin, sizeof(bin));
	sth_path(key, sizeof(key), "idp.key");
	sth_path(crt, sizeof(crt), "idp.crt");
	sth_path(md, sizeof(md), name);
	argv[0] = bin;
	argv[1] = "--entity-id";
	argv[2] = entity;
	argv[3] = "--base-url";
	argv[4] = base;
	argv[5] = "--key";
	argv[6] = key;
	argv[7] = "--cert";
	argv[8] = crt;
	argv[9] = "--metadata-out";
	argv[10] = md;
	argv[11] = "--sign-metadata";
	argv[12] = NULL;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("idp --metadata-out failed: %s", out);
}

/* Starts the IdP on port with the given SP metadata files (NULL-ended);
 * waits for /metadata. */
static pid_t
sth_idp_start(const char *entity, const char *base, int port,
	      const char *const *sp_md)
{
	char bin[512], key[512], crt[512], akey[512], acrt[512], users[512];
	char ports[16], log[512], url[256];
	const char *argv[40];
	struct th_http *r;
	int n = 0, fd;
	pid_t pid;

	sth_idp_bin(bin, sizeof(bin));
	sth_path(key, sizeof(key), "idp.key");
	sth_path(crt, sizeof(crt), "idp.crt");
	sth_path(akey, sizeof(akey), "alt.key");
	sth_path(acrt, sizeof(acrt), "alt.crt");
	sth_path(users, sizeof(users), "idp-users.txt");
	snprintf(ports, sizeof(ports), "%d", port);
	sth_path(log, sizeof(log), "idp.log");
	th_write_file("idp-users.txt",
		      "alice:" STH_PASSWORD ":alice@example.com\n"
		      "bob:" STH_PASSWORD ":bob@example.com\n"
		      "carol:" STH_PASSWORD ":carol@example.com\n"
		      "dave:" STH_PASSWORD ":dave@example.com\n"
		      "mallory:" STH_PASSWORD ":mallory@example.com\n");
	argv[n++] = bin;
	argv[n++] = "--entity-id";
	argv[n++] = entity;
	argv[n++] = "--base-url";
	argv[n++] = base;
	argv[n++] = "--key";
	argv[n++] = key;
	argv[n++] = "--cert";
	argv[n++] = crt;
	argv[n++] = "--alt-key";
	argv[n++] = akey;
	argv[n++] = "--alt-cert";
	argv[n++] = acrt;
	argv[n++] = "--users";
	argv[n++] = users;
	argv[n++] = "--port";
	argv[n++] = ports;
	argv[n++] = "--allow-break";
	argv[n++] = "--sign-metadata";
	for (int i = 0; sp_md[i] != NULL && n < 36; i++) {
		argv[n++] = "--sp-metadata";
		argv[n++] = sp_md[i];
	}
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		/* A test tool: lasso and OpenSSL keep per-process caches
		 * LeakSanitizer reports; roomgate itself runs with leak
		 * checks on. */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		execv(bin, (char *const *)(void *)argv);
		_exit(127);
	}
	snprintf(url, sizeof(url), "%s/metadata", base);
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	for (int i = 0; i < 200; i++) {
		if (th_http("GET", url, NULL, NULL, 0, r) == 200) {
			free(r);
			return pid;
		}
		usleep(100000);
	}
	free(r);
	kill(pid, SIGTERM);
	fail_msg("the test IdP did not start; see %s", log);
	return -1;
}

static void
sth_idp_stop(pid_t pid)
{
	int st = 0;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Writes the SP metadata served by base to RG_TEST_TMP/name. */
__attribute__((unused)) static void
sth_save_sp_metadata(const char *base, const char *name)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256];

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/saml/metadata", base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	th_write_file(name, r->body);
	free(r);
}

/*
 * Signs user in with browser b at the SP served by base, whose IdP runs at
 * idp_base: /saml/login, the IdP's form, the credentials, the signed
 * response posted to the ACS. Afterwards b's cookie jar holds the session.
 */
__attribute__((unused)) static void
sth_sign_in(struct sth_browser *b, const char *base, const char *idp_base,
	    const char *user)
{
	struct sth_resp r;
	char url[8300], *q, *eq, *body, *b64, *action, *e;
	size_t n;

	snprintf(url, sizeof(url), "%s/saml/login?return=/", base);
	assert_int_equal(sth_do(b, url, NULL, 0, &r), 302);
	assert_true(strncmp(r.location, idp_base, strlen(idp_base)) == 0);
	snprintf(url, sizeof(url), "%s", r.location);
	sth_resp_free(&r);
	assert_int_equal(sth_do(b, url, NULL, 0, &r), 200);
	q = sth_form_field(r.body, "q");
	assert_non_null(q);
	sth_resp_free(&r);
	eq = sth_escape(b, q);
	n = strlen(eq) + 256;
	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "q=%s&user=%s&password=%s", eq, user, STH_PASSWORD);
	snprintf(url, sizeof(url), "%s/sso", idp_base);
	if (sth_do(b, url, body, strlen(body), &r) != 200)
		fail_msg("IdP answered %ld: %s", r.status, r.body);
	b64 = sth_form_field(r.body, "SAMLResponse");
	action = sth_form_action(r.body);
	assert_non_null(b64);
	assert_non_null(action);
	sth_resp_free(&r);
	e = sth_escape(b, b64);
	free(body);
	n = strlen(e) + 32;
	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "SAMLResponse=%s", e);
	if (sth_do(b, action, body, strlen(body), &r) != 303)
		fail_msg("ACS answered %ld: %s", r.status, r.body);
	sth_resp_free(&r);
	free(e);
	free(action);
	free(b64);
	free(body);
	free(eq);
	free(q);
}

/* ---- database ---------------------------------------------------------- */

static PGconn *
sth_pg(void)
{
	PGconn *pg = PQconnectdb(th_env("RG_TEST_PG_URL"));

	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("cannot connect to the test database: %s",
			 PQerrorMessage(pg));
	return pg;
}

/* One text value of a one-parameter query; NULL when no row or NULL. */
static char *
sth_pg_value(PGconn *pg, const char *sql, const char *param)
{
	const char *v[1] = {param};
	PGresult *res = PQexecParams(pg, sql, param ? 1 : 0, NULL, v, NULL,
				     NULL, 0);
	char *out = NULL;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("query failed: %s", PQerrorMessage(pg));
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		out = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

static long
sth_sessions(PGconn *pg)
{
	char *v = sth_pg_value(pg, "SELECT count(*) FROM sessions", NULL);
	long n = v ? strtol(v, NULL, 10) : -1;

	free(v);
	return n;
}

/* ---- a TLS-terminating reverse proxy --------------------------------- */

static int
sth_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One proxied connection, in its own process. */
static void
sth_proxy_conn(SSL_CTX *ctx, int cfd, int target_port)
{
	struct sockaddr_in sa;
	struct pollfd pf[2];
	char buf[16384];
	SSL *ssl = SSL_new(ctx);
	int t = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)target_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ssl == NULL || t < 0 || SSL_set_fd(ssl, cfd) != 1 ||
	    SSL_accept(ssl) <= 0 ||
	    connect(t, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		_exit(0);
	for (;;) {
		int n;

		pf[0].fd = cfd;
		pf[1].fd = t;
		pf[0].events = pf[1].events = POLLIN;
		pf[0].revents = pf[1].revents = 0;
		if (SSL_pending(ssl) == 0 && poll(pf, 2, 30000) <= 0)
			break;
		if (SSL_pending(ssl) > 0 || pf[0].revents) {
			n = SSL_read(ssl, buf, sizeof(buf));
			if (n <= 0 || sth_write_all(t, buf, (size_t)n) != 0)
				break;
		}
		if (pf[1].revents) {
			n = (int)read(t, buf, sizeof(buf));
			if (n <= 0 || SSL_write(ssl, buf, n) <= 0)
				break;
		}
	}
	_exit(0);
}

/* Listens with TLS on 127.0.0.1:port (cert/key PEM) and forwards plain
 * HTTP to 127.0.0.1:target_port. A process group; stop with
 * sth_proxy_stop(). */
static pid_t
sth_proxy_start(int port, int target_port, const char *cert,
		const char *key)
{
	struct sockaddr_in sa;
	int one = 1, l;
	pid_t pid;

	l = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l >= 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 64), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

		setpgid(0, 0);
		signal(SIGCHLD, SIG_IGN);
		if (ctx == NULL ||
		    SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) !=
			    1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
			_exit(1);
		for (;;) {
			int c = accept(l, NULL, NULL);

			if (c < 0)
				continue;
			if (fork() == 0) {
				close(l);
				sth_proxy_conn(ctx, c, target_port);
			}
			close(c);
		}
	}
	close(l);
	return pid;
}

static void
sth_proxy_stop(pid_t pid)
{
	if (pid > 0) {
		kill(-pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

#endif
