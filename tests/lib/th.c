/* Test helpers; see th.h. Failures call cmocka's fail_msg(). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/th.h"

extern char **environ;

const char *
th_env(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL || *v == '\0')
		fail_msg("environment variable %s is not set: run integration "
			 "tests through tests/run.sh (make test)",
			 name);
	return v;
}

int
th_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int n, st;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		fail_msg("th_sh: command too long");
	st = system(cmd); /* NOLINT(cert-env33-c): th_sh runs the test's own shell commands */
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void
stack_ctl(const char *script, const char *dirvar, const char *verb)
{
	int r = th_sh("'%s/deploy/dev/%s' %s '%s' >>'%s/stack-ctl.log' 2>&1",
		      th_env("RG_TEST_ROOT"), script, verb, th_env(dirvar),
		      th_env("RG_TEST_TMP"));

	if (r != 0)
		fail_msg("%s %s failed (%d); see %s/stack-ctl.log", script,
			 verb, r, th_env("RG_TEST_TMP"));
}

void
th_pg_stop(void)
{
	stack_ctl("pg.sh", "RG_TEST_PG_DIR", "stop");
}

void
th_pg_start(void)
{
	stack_ctl("pg.sh", "RG_TEST_PG_DIR", "start");
}

void
th_ldap_stop(void)
{
	stack_ctl("slapd.sh", "RG_TEST_LDAP_DIR", "stop");
}

void
th_ldap_start(void)
{
	stack_ctl("slapd.sh", "RG_TEST_LDAP_DIR", "start");
}

int
th_free_port(void)
{
	static unsigned int seed;
	static int given[256], ngiven;
	struct sockaddr_in sa;
	unsigned int lo = 32768;
	FILE *f;
	int fd, port;

	/* Below the kernel's ephemeral range: a port the kernel hands out
	 * (bind to 0) can be taken by any outgoing connection before the
	 * service under test binds it. */
	if ((f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) != NULL) {
		char line[64];

		if (fgets(line, sizeof(line), f) != NULL)
			lo = (unsigned int)strtoul(line, NULL, 10);
		if (lo < 21000 || lo > 65535)
			lo = 32768;
		fclose(f);
	}
	if (seed == 0)
		seed = (unsigned int)getpid() * 2654435761u ^
		       (unsigned int)time(NULL);
	for (int i = 0; i < 500; i++) {
		int seen = 0;

		port = 20000 + (int)(rand_r(&seed) % (lo - 20000));
		/* Handed out already but maybe not bound yet by its user. */
		for (int k = 0; k < ngiven; k++)
			seen |= given[k] == port;
		if (seen)
			continue;
		fd = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fd >= 0);
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			if (ngiven < (int)(sizeof(given) / sizeof(given[0])))
				given[ngiven++] = port;
			return port;
		}
		close(fd);
	}
	fail_msg("no free loopback port below %u", lo);
	return -1;
}

const char *
th_write_file(const char *name, const char *text)
{
	static char path[1024];
	FILE *f;
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", th_env("RG_TEST_TMP"), name);
	assert_true(n > 0 && (size_t)n < sizeof(path));
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * Every server a test starts, by PID, until it is stopped. A failed
 * assertion longjmps out of a test or teardown and can skip the stops
 * after it; a server left running would then serve the next binary's
 * database (deliver its webhooks, take its locks). At exit each one still
 * running is stopped; waitpid() first, so a PID already reaped (and
 * perhaps reused by then) is never signalled.
 */
#define TH_SERVERS_MAX 64
static pid_t th_servers[TH_SERVERS_MAX];

static void
th_servers_reap(void)
{
	for (int i = 0; i < TH_SERVERS_MAX; i++) {
		pid_t pid = th_servers[i];
		int st, j;

		if (pid <= 0 || waitpid(pid, &st, WNOHANG) != 0)
			continue;
		kill(pid, SIGTERM);
		for (j = 0; j < 200; j++) {
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
			sleep_ms(50);
		}
		if (j == 200) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
		fprintf(stderr, "th: stopped roomgate serve %d, left running "
				"by a failed test\n",
			(int)pid);
		th_servers[i] = 0;
	}
}

static void
th_servers_note(pid_t pid, pid_t gone)
{
	static int hooked;

	if (!hooked && atexit(th_servers_reap) == 0)
		hooked = 1;
	for (int i = 0; i < TH_SERVERS_MAX; i++) {
		if (th_servers[i] == gone) {
			th_servers[i] = pid;
			return;
		}
	}
}

/* What a server wrote that is not a JSON log line (a sanitizer report,
 * an abort message), the last lines of it, so a failure in CI shows its
 * cause and not only the path of a log that is gone. */
static void
th_server_tell(const char *log_path)
{
	char line[1024];
	static char keep[40][1024];
	int n = 0;
	FILE *f = fopen(log_path, "r");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '{')
			continue;
		snprintf(keep[n % 40], sizeof(keep[0]), "%s", line);
		n++;
	}
	fclose(f);
	fprintf(stderr, "---- %s, lines not in JSON (last %d):\n", log_path,
		n < 40 ? n : 40);
	for (int i = n < 40 ? 0 : n - 40; i < n; i++)
		fputs(keep[i % 40], stderr);
	fprintf(stderr, "----\n");
}

void
th_server_start(struct th_server *s, const char *config_path, int port)
{
	char url[128];
	char portenv[64];
	struct th_http *r;
	int i, n, fd;
	pid_t pid;

	memset(s, 0, sizeof(*s));
	s->port = port;
	n = snprintf(s->log_path, sizeof(s->log_path), "%s/server-%d.log",
		     th_env("RG_TEST_TMP"), port);
	assert_true(n > 0 && (size_t)n < sizeof(s->log_path));
	snprintf(portenv, sizeof(portenv), "ROOMGATE_SERVER_PORT=%d", port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		putenv(portenv);
		execl(th_env("RG_TEST_BIN"), "roomgate", "serve", "-c",
		      config_path, (char *)NULL);
		_exit(127);
	}
	s->pid = pid;
	th_servers_note(pid, 0);
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	for (i = 0; i < 200; i++) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			s->pid = 0;
			th_servers_note(0, pid);
			break;
		}
		if (th_http("GET", url, NULL, NULL, 0, r) == 200) {
			free(r);
			return;
		}
		sleep_ms(100);
	}
	free(r);
	if (s->pid == 0) {
		th_server_tell(s->log_path);
		fail_msg("roomgate serve exited early; see %s", s->log_path);
	}
	th_server_stop(s);
	fail_msg("roomgate serve did not answer /healthz; see %s",
		 s->log_path);
}

void
th_server_stop(struct th_server *s)
{
	int st = 0, i;

	if (s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	for (i = 0; i < 300; i++) {
		if (waitpid(s->pid, &st, WNOHANG) == s->pid)
			break;
		sleep_ms(50);
	}
	if (i == 300) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &st, 0);
		th_servers_note(0, s->pid);
		s->pid = 0;
		th_server_tell(s->log_path);
		fail_msg("roomgate serve did not stop within 15 s of SIGTERM");
	}
	th_servers_note(0, s->pid);
	s->pid = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		th_server_tell(s->log_path);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("roomgate serve exited with status %d (signal %d); "
			 "see %s",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1,
			 WIFSIGNALED(st) ? WTERMSIG(st) : 0, s->log_path);
}

static size_t
body_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct th_http *r = ud;
	size_t len = sz * n, room = sizeof(r->body) - 1 - r->body_len;

	if (len > room)
		len = room;
	memcpy(r->body + r->body_len, p, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return sz * n;
}

static size_t
header_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct th_http *r = ud;
	size_t have = strlen(r->headers), len = sz * n;

	if (have + len < sizeof(r->headers)) {
		memcpy(r->headers + have, p, len);
		r->headers[have + len] = '\0';
	}
	return sz * n;
}

long
th_http(const char *method, const char *url, const char *const *req_headers,
	const char *req_body, size_t req_body_len, struct th_http *out)
{
	return th_http_within(10000, method, url, req_headers, req_body,
			      req_body_len, out);
}

long
th_http_within(long timeout_ms, const char *method, const char *url,
	       const char *const *req_headers, const char *req_body,
	       size_t req_body_len, struct th_http *out)
{
	struct curl_slist *hl = NULL;
	CURL *c;
	CURLcode cr;

	memset(out, 0, sizeof(*out));
	out->status = -1;
	c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	for (; req_headers != NULL && *req_headers != NULL; req_headers++)
		hl = curl_slist_append(hl, *req_headers);
	if (hl != NULL)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	if (req_body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req_body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req_body_len);
	}
	cr = curl_easy_perform(c);
	if (cr == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return out->status;
}

const char *
th_http_header(const struct th_http *r, const char *name, char *buf,
	       size_t buflen)
{
	size_t nl = strlen(name);
	const char *p = r->headers;

	while (p != NULL && *p != '\0') {
		const char *eol = strstr(p, "\r\n");
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			size_t vl;

			while (*v == ' ')
				v++;
			vl = len - (size_t)(v - p);
			if (vl >= buflen)
				vl = buflen - 1;
			memcpy(buf, v, vl);
			buf[vl] = '\0';
			return buf;
		}
		p = eol ? eol + 2 : NULL;
	}
	return NULL;
}

int
th_run_capture(const char *const *argv, const char *const *extra_env,
	       char *out, size_t outlen)
{
	char *envp[512];
	size_t ne = 0, used = 0;
	int pfd[2], st;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	ssize_t n;

	for (char **e = environ; *e != NULL && ne < 400; e++)
		envp[ne++] = *e;
	for (; extra_env != NULL && *extra_env != NULL && ne < 510;
	     extra_env++)
		envp[ne++] = (char *)*extra_env;
	envp[ne] = NULL;

	assert_int_equal(pipe(pfd), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv,
			envp) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	while (outlen > 0 &&
	       (n = read(pfd[0], out + used, outlen - 1 - used)) > 0) {
		used += (size_t)n;
		if (used == outlen - 1)
			break;
	}
	if (outlen > 0)
		out[used] = '\0';
	/* Drain whatever did not fit so the child cannot block on us. */
	{
		char sink[4096];

		while (read(pfd[0], sink, sizeof(sink)) > 0)
			;
	}
	close(pfd[0]);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int
th_raw(int port, const char *req, size_t len, int timeout_ms, char *out,
       size_t outlen)
{
	struct sockaddr_in sa;
	char buf[65536];
	size_t used = 0, off = 0;
	struct timespec t0, now;
	int fd, status = 0;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (off < len) {
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			break; /* the server may answer and close early */
		off += (size_t)n;
	}
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout_ms - ((now.tv_sec - t0.tv_sec) * 1000 +
				     (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			break;
		n = recv(fd, buf + used, sizeof(buf) - 1 - used, 0);
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == sizeof(buf) - 1)
			break;
	}
	buf[used] = '\0';
	close(fd);
	if (strncmp(buf, "HTTP/1.", 7) == 0 && used > 12)
		status = (int)strtol(buf + 9, NULL, 10);
	if (out != NULL && outlen > 0)
		snprintf(out, outlen, "%s", buf);
	return status;
}

const char *
th_config(const char *name, const char *extra_ini)
{
	char keys[600], text[8192];
	const char *argv[5];
	char out[1024];
	int n;

	n = snprintf(keys, sizeof(keys), "%s/server.keys", th_env("RG_TEST_TMP"));
	assert_true(n > 0 && (size_t)n < sizeof(keys));
	if (access(keys, F_OK) != 0) {
		argv[0] = th_env("RG_TEST_BIN");
		argv[1] = "keygen";
		argv[2] = "-o";
		argv[3] = keys;
		argv[4] = NULL;
		if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
			fail_msg("roomgate keygen failed: %s", out);
	}
	n = snprintf(text, sizeof(text),
		     "[database]\nurl = %s\n"
		     "[ldap]\nuri = %s\nbind_dn = %s\nbind_password = %s\n"
		     "[keys]\nfile = %s\n%s",
		     th_env("RG_TEST_PG_URL"), th_env("RG_TEST_LDAP_URI"),
		     th_env("RG_TEST_LDAP_BIND_DN"),
		     th_env("RG_TEST_LDAP_BIND_PASSWORD"), keys,
		     extra_ini ? extra_ini : "");
	assert_true(n > 0 && (size_t)n < sizeof(text));
	return th_write_file(name, text);
}
