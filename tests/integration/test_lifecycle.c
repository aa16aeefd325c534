/*
 * Integration: the life of a running node -- SIGHUP reloads (new IdP
 * metadata after a key rollover, settings read per request, and configs
 * that must be refused whole while the node keeps serving with the old
 * one) and SIGTERM drains (a request in progress while slapd is frozen is
 * answered in full, new connections are refused, the process exits 0).
 * Real test IdP, slapd and PostgreSQL; nodes are `roomgate serve`
 * processes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sys/prctl.h>

#include <linux/capability.h>

#include <jansson.h>

#include "server/admit.h"
/* The shared helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-life.test/saml/metadata"
/* The two nodes behind nginx (their public URL is nginx's). */
#define SP_LB_ENTITY "https://roomgate-life-lb.test/saml/metadata"
#define IDP_ENTITY "https://idp-life.test/saml"
#define SECRET "jitsi-shared-secret-for-the-lifecycle-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"

static struct {
	int idp_port, a_port;
	char base[64], idp_base[64];
	char cfg[512];	 /* node A's config file, rewritten by the tests */
	char md[512];	 /* the IdP metadata file node A reads */
	char host_token[64];
	struct th_server a;
	pid_t idp;
	pid_t frozen; /* slapd while SIGSTOPped, for teardown */
	/* nginx balancing two nodes */
	int lb_port, l1_port, l2_port;
	char lb[64], lb_dir[512], lb_cfg[600];
	struct th_server l1, l2;
	pid_t nginx;
} T;

/* A node's settings; extra is appended (it may reopen sections). */
static const char *
node_ini_for(const char *public_url, const char *entity, const char *extra)
{
	static char ini[8192];
	char key[512], crt[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	snprintf(ini, sizeof(ini),
		 "[server]\npublic_url = %s\nthreads = 4\n"
		 "[database]\nmigrate_on_start = true\n"
		 "[ldap]\nbase_dn = %s\n"
		 "[saml]\nentity_id = %s\nkey_file = %s\n"
		 "cert_file = %s\nidp_metadata_file = %s\n"
		 "directory_key = uid\n"
		 "[admission]\nredirect_url = https://meet.example.com/{room}"
		 "?jwt={token}\n"
		 "[tokens]\nhs256_secret = " SECRET "\n%s",
		 public_url, th_env("RG_TEST_LDAP_BASE_DN"), entity, key, crt,
		 T.md, extra ? extra : "");
	return ini;
}

/* Node A's settings. */
static const char *
node_ini(const char *extra)
{
	return node_ini_for(T.base, SP_ENTITY, extra);
}

/* How many times needle occurs in the file at path. */
static int
log_count(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char *buf, *p;
	long n;
	int count = 0;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	n = (long)fread(buf, 1, (size_t)n, f);
	buf[n] = '\0';
	fclose(f);
	for (p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		count++;
	free(buf);
	return count;
}

/* Sends SIGHUP to node A and waits for the outcome event named (one more
 * than before); fails the test after 10 s. */
static void
hup_expect(const char *event)
{
	char needle[128];
	int before, i;

	snprintf(needle, sizeof(needle), "\"event\":\"%s\"", event);
	before = log_count(T.a.log_path, needle);
	assert_int_equal(kill(T.a.pid, SIGHUP), 0);
	for (i = 0; i < 200; i++) {
		if (log_count(T.a.log_path, needle) > before)
			return;
		usleep(50 * 1000);
	}
	fail_msg("no %s in %s after SIGHUP", event, T.a.log_path);
}

static void
write_config(const char *extra)
{
	snprintf(T.cfg, sizeof(T.cfg), "%s",
		 th_config("life-a.ini", node_ini(extra)));
}

/* Replaces path's content in one step (rename), as a deploy tool would. */
static void
replace_file(const char *path, const char *text)
{
	char tmp[600];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/* The metadata the IdP serves now, into node A's metadata file. */
static void
save_idp_metadata(void)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256];

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/metadata", T.idp_base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	assert_non_null(strstr(r->body, IDP_ENTITY));
	replace_file(T.md, r->body);
	free(r);
}

static void
idp_mode(const char *mode)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256];

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/admin?mode=%s", T.idp_base, mode);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	free(r);
}

/* A whole sign-in of user at base; returns the ACS status (303 when
 * signed in, 403 when the response was refused). */
static long
login_at(const char *base, const char *post_base, const char *user)
{
	struct sth_browser b;
	struct sth_resp r;
	char url[8300], *q, *eq, *body, *b64, *action, *e;
	size_t n;
	long st;

	sth_browser_init(&b);
	snprintf(url, sizeof(url), "%s/saml/login?return=/", base);
	assert_int_equal(sth_do(&b, url, NULL, 0, &r), 302);
	snprintf(url, sizeof(url), "%s", r.location);
	sth_resp_free(&r);
	assert_int_equal(sth_do(&b, url, NULL, 0, &r), 200);
	q = sth_form_field(r.body, "q");
	assert_non_null(q);
	sth_resp_free(&r);
	eq = sth_escape(&b, q);
	n = strlen(eq) + 256;
	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "q=%s&user=%s&password=%s", eq, user, STH_PASSWORD);
	snprintf(url, sizeof(url), "%s/sso", T.idp_base);
	assert_int_equal(sth_do(&b, url, body, strlen(body), &r), 200);
	b64 = sth_form_field(r.body, "SAMLResponse");
	action = sth_form_action(r.body);
	assert_non_null(b64);
	assert_non_null(action);
	sth_resp_free(&r);
	e = sth_escape(&b, b64);
	free(body);
	n = strlen(e) + 32;
	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "SAMLResponse=%s", e);
	/* The response names our public URL's ACS; post_base is the node
	 * that receives it (same public URL, as behind a balancer). */
	assert_true(strncmp(action, T.base, strlen(T.base)) == 0);
	snprintf(url, sizeof(url), "%s%s", post_base, action + strlen(T.base));
	st = sth_do(&b, url, body, strlen(body), &r);
	sth_resp_free(&r);
	if (st == 303) {
		snprintf(url, sizeof(url), "%s/v1/me", post_base);
		assert_int_equal(sth_do(&b, url, NULL, 0, &r), 200);
		sth_resp_free(&r);
	}
	free(e);
	free(action);
	free(b64);
	free(body);
	free(eq);
	free(q);
	sth_browser_free(&b);
	return st;
}

static long
login(const char *base, const char *user)
{
	return login_at(base, base, user);
}

static long
get_status(const char *base, const char *path)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256];
	long st;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s%s", base, path);
	st = th_http("GET", url, NULL, NULL, 0, r);
	free(r);
	return st;
}

/* The value of an unlabelled or labelled sample in node A's /metrics. */
static long
metric(const char *sample)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256], *p;
	long v = -1;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/metrics", T.base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	snprintf(url, sizeof(url), "\n%s", sample); /* not the HELP line */
	p = strstr(r->body, url);
	if (p != NULL)
		v = strtol(p + strlen(url), NULL, 10);
	free(r);
	return v;
}

static pid_t
slapd_pid(void)
{
	char path[512], buf[32];
	FILE *f;
	size_t n;
	long pid;

	snprintf(path, sizeof(path), "%s/slapd.pid",
		 th_env("RG_TEST_LDAP_DIR"));
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	assert_true(pid > 1);
	return (pid_t)pid;
}

static void
thaw(void)
{
	if (T.frozen > 0)
		kill(T.frozen, SIGCONT);
	T.frozen = 0;
}

/* ---- nginx in front of two nodes --------------------------------------- */

static const char *
nginx_bin(void)
{
	const char *b = getenv("RG_NGINX");

	return b != NULL && *b != '\0' ? b : "/usr/sbin/nginx";
}

/* nginx round-robin over nodes L1 and L2, the way a load balancer in
 * front of roomgate is set up: the client's address in X-Forwarded-For,
 * the Host kept, a connection that fails tried on the other node. */
static void
nginx_start(void)
{
	char conf[8192], path[600], err[600];
	const char *d = T.lb_dir;
	pid_t pid;
	int st, n;

	if (access(nginx_bin(), X_OK) != 0)
		fail_msg("%s is not installed: run deploy/install-deps.sh as "
			 "root (package nginx)",
			 nginx_bin());
	assert_int_equal(th_sh("mkdir -p '%s/tmp'", d), 0);
	n = snprintf(
		conf, sizeof(conf),
		"daemon off;\nmaster_process off;\nworker_processes 1;\n"
		"pid %s/nginx.pid;\nerror_log %s/error.log info;\n"
		"events { worker_connections 256; }\n"
		"http {\n"
		"  access_log %s/access.log;\n"
		"  client_body_temp_path %s/tmp/body;\n"
		"  proxy_temp_path %s/tmp/proxy;\n"
		"  fastcgi_temp_path %s/tmp/fastcgi;\n"
		"  uwsgi_temp_path %s/tmp/uwsgi;\n"
		"  scgi_temp_path %s/tmp/scgi;\n"
		"  upstream roomgate {\n"
		"    server 127.0.0.1:%d;\n"
		"    server 127.0.0.1:%d;\n"
		"  }\n"
		"  server {\n"
		"    listen 127.0.0.1:%d;\n"
		"    location / {\n"
		"      proxy_pass http://roomgate;\n"
		"      proxy_set_header Host $http_host;\n"
		"      proxy_set_header X-Forwarded-For "
		"$proxy_add_x_forwarded_for;\n"
		"      proxy_next_upstream error timeout;\n"
		"    }\n"
		"  }\n"
		"}\n",
		d, d, d, d, d, d, d, d, T.l1_port, T.l2_port, T.lb_port);
	assert_true(n > 0 && (size_t)n < sizeof(conf));
	snprintf(path, sizeof(path), "%s/nginx.conf", d);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		assert_int_equal(fputs(conf, f) >= 0, 1);
		assert_int_equal(fclose(f), 0);
	}
	snprintf(err, sizeof(err), "%s/error.log", d);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(err, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		/* Gone with this test process, however it ends. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(nginx_bin(), "nginx", "-p", d, "-c", path, "-e", err,
		      (char *)NULL);
		_exit(127);
	}
	T.nginx = pid;
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			T.nginx = 0;
			fail_msg("nginx exited at start (status %d); see %s", st,
				 err);
		}
		if (get_status(T.lb, "/healthz") == 200)
			return;
		usleep(100 * 1000);
	}
	fail_msg("nginx did not answer on %s; see %s", T.lb, err);
}

static void
nginx_stop(void)
{
	int st;

	if (T.nginx <= 0)
		return;
	kill(T.nginx, SIGTERM);
	waitpid(T.nginx, &st, 0);
	T.nginx = 0;
}

/* ---- fixture ---------------------------------------------------------- */

static int
setup(void **state)
{
	char spmd[512], lbmd[512];
	const char *sps[3];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	T.idp_port = th_free_port();
	T.a_port = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
		 T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.a_port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "life-idp-md.xml");
	sth_path(T.md, sizeof(T.md), "life-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "life-sp-md.xml");
	sth_path(lbmd, sizeof(lbmd), "life-lb-sp-md.xml");
	sps[0] = spmd;
	sps[1] = lbmd;
	sps[2] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	write_config(NULL);
	th_server_start(&T.a, T.cfg, T.a_port);
	sth_save_sp_metadata(T.base, "life-sp-md.xml");
	ath_token(T.cfg, "host", "life-host", "alice", T.host_token);

	/* Two nodes behind nginx: nginx's URL is their public URL, and they
	 * believe X-Forwarded-For from it. */
	T.lb_port = th_free_port();
	T.l1_port = th_free_port();
	T.l2_port = th_free_port();
	snprintf(T.lb, sizeof(T.lb), "http://127.0.0.1:%d", T.lb_port);
	sth_path(T.lb_dir, sizeof(T.lb_dir), "life-nginx");
	snprintf(T.lb_cfg, sizeof(T.lb_cfg), "%s",
		 th_config("life-lb.ini",
			   node_ini_for(T.lb, SP_LB_ENTITY,
					"[admission]\ntrusted_proxies = "
					"127.0.0.1\n")));
	th_server_start(&T.l1, T.lb_cfg, T.l1_port);
	th_server_start(&T.l2, T.lb_cfg, T.l2_port);
	nginx_start();
	sth_save_sp_metadata(T.lb, "life-lb-sp-md.xml");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	thaw();
	nginx_stop();
	sth_idp_stop(T.idp);
	th_server_stop(&T.a);
	th_server_stop(&T.l1);
	th_server_stop(&T.l2);
	curl_global_cleanup();
	return 0;
}

/* ---- reload ------------------------------------------------------------ */

/* ---- the deployment files, checked against this binary ------------------ */

/* Whole file under the repository root, NUL-terminated; caller frees. */
static char *
repo_file(const char *rel)
{
	char path[1024];
	FILE *f;
	char *buf;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", th_env("RG_TEST_ROOT"), rel);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("cannot read %s", path);
	buf = malloc(1 << 20);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The number after "key" (e.g. "TimeoutStopSec=") in text; -1 if none. */
static long
number_after(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p != NULL ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* A setting's default from `roomgate help config`. */
static long
config_default(const char *key)
{
	static char out[65536];
	const char *argv[] = {th_env("RG_TEST_BIN"), "help", "config", NULL};
	char pat[64];
	const char *p;

	assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)), 0);
	snprintf(pat, sizeof(pat), "\n  %s ", key);
	p = strstr(out, pat);
	assert_non_null(p);
	p = strstr(p, "default: ");
	assert_non_null(p);
	return strtol(p + 9, NULL, 10);
}

/* prog's path from $PATH (th_run_capture takes a path); fails if none. */
static const char *
which(const char *prog, char *out, size_t outlen)
{
	const char *p = getenv("PATH");

	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, ":");

		snprintf(out, outlen, "%.*s/%s", (int)n, p, prog);
		if (access(out, X_OK) == 0)
			return out;
		p += n;
		if (*p == ':')
			p++;
	}
	fail_msg("%s is not on PATH (Debian package systemd)", prog);
	return NULL;
}

/* The shipped unit passes `systemd-analyze verify` (with ExecStart on
 * this build's binary, which verify requires to exist), and its stop
 * timeout covers the drain and the longest wait of a stopping thread. */
static void
systemd_unit_verifies(void **state)
{
	char *unit = repo_file("deploy/systemd/roomgate.service");
	static char out[16384];
	const char *argv[4];
	char *at, *fixed, path[600], prog[600];
	size_t n;
	long stop = number_after(unit, "\nTimeoutStopSec=");

	(void)state;
	at = strstr(unit, "/usr/local/bin/roomgate ");
	assert_non_null(at);
	n = strlen(unit) + strlen(th_env("RG_TEST_BIN")) + 1;
	fixed = malloc(n);
	assert_non_null(fixed);
	snprintf(fixed, n, "%.*s%s%s", (int)(at - unit), unit,
		 th_env("RG_TEST_BIN"), at + strlen("/usr/local/bin/roomgate"));
	snprintf(path, sizeof(path), "%s",
		 th_write_file("roomgate.service", fixed));
	argv[0] = which("systemd-analyze", prog, sizeof(prog));
	argv[1] = "verify";
	argv[2] = path;
	argv[3] = NULL;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0 || out[0] != '\0')
		fail_msg("systemd-analyze verify: %s", out);
	assert_true(strstr(unit, "\nExecReload=/bin/kill -HUP $MAINPID") !=
		    NULL);
	assert_true(stop > config_default("drain_timeout") +
				   config_default("timeout_ms") / 1000);
	free(fixed);
	free(unit);
}

/* The Kubernetes ConfigMap's roomgate.ini is a config this binary
 * accepts (secret files stand in by temp files), and the pods' grace
 * period covers preStop, the drain and a stopping webhook POST. */
static void
k8s_config_is_accepted(void **state)
{
	char *cm = repo_file("deploy/k8s/configmap.yaml");
	char *dep = repo_file("deploy/k8s/deployment.yaml");
	char *ini, *o, path[600], out[4096], pw[600], wh[600];
	const char *p, *line, *argv[7];
	long grace = number_after(dep, "terminationGracePeriodSeconds: ");
	long presleep = number_after(dep, "seconds: ");
	long drain;

	(void)state;
	snprintf(pw, sizeof(pw), "%s",
		 th_write_file("k8s-bind-password", "not-the-real-one\n"));
	snprintf(wh, sizeof(wh), "%s",
		 th_write_file("k8s-webhook-secret",
			       "a-webhook-secret-of-32-bytes-xx\n"));
	p = strstr(cm, "  roomgate.ini: |\n");
	assert_non_null(p);
	p = strchr(p, '\n') + 1;
	ini = calloc(1, strlen(p) + 2048);
	assert_non_null(ini);
	/* The block: lines indented by four spaces (or empty). */
	for (o = ini, line = p; *line == '\n' || strncmp(line, "    ", 4) == 0;) {
		const char *e = strchr(line, '\n');
		size_t len = e ? (size_t)(e - line) : strlen(line);

		if (len >= 4) {
			memcpy(o, line + 4, len - 4);
			o += len - 4;
		}
		*o++ = '\n';
		if (e == NULL)
			break;
		line = e + 1;
	}
	*o = '\0';
	drain = number_after(ini, "\ndrain_timeout = ");
	assert_true(drain > 0);
	assert_true(grace > presleep + drain + config_default("timeout_ms") /
						     1000);
	/* Secret files the load reads at once: point them at temp files. */
	{
		const char *from[] = {"/etc/roomgate/secrets/ldap/bind-password",
				      "/etc/roomgate/secrets/webhooks/secret"};
		const char *to[] = {pw, wh};

		for (int i = 0; i < 2; i++) {
			char *at = strstr(ini, from[i]);
			char *rest;

			assert_non_null(at);
			rest = strdup(at + strlen(from[i]));
			assert_non_null(rest);
			snprintf(at, strlen(p) + 2048 - (size_t)(at - ini),
				 "%s%s", to[i], rest);
			free(rest);
		}
	}
	snprintf(path, sizeof(path), "%s", th_write_file("k8s.ini", ini));
	argv[0] = th_env("RG_TEST_BIN");
	argv[1] = "-c";
	argv[2] = path;
	argv[3] = "code";
	argv[4] = "check";
	argv[5] = "40817263";
	argv[6] = NULL;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("the ConfigMap's roomgate.ini is refused: %s", out);
	/* And a broken copy is refused, so the check above means something. */
	th_write_file("k8s.ini", "[server]\ndrain_timeout = forever\n");
	assert_int_not_equal(th_run_capture(argv, NULL, out, sizeof(out)), 0);
	free(ini);
	free(dep);
	free(cm);
}

/* The IdP rolls its signing key over; the node reads a metadata file, so
 * sign-ins fail until the new metadata is in the file and SIGHUP tells
 * the node -- no restart. */
static void
sighup_reads_new_idp_metadata(void **state)
{
	(void)state;
	assert_int_equal(login(T.base, "alice"), 303);
	idp_mode("rollover");
	assert_int_equal(login(T.base, "alice"), 403);
	save_idp_metadata();
	/* The file alone changes nothing until SIGHUP. */
	assert_int_equal(login(T.base, "alice"), 403);
	hup_expect("config_reloaded");
	assert_true(log_count(T.a.log_path, "new IdP metadata in use") >= 1);
	assert_int_equal(login(T.base, "bob"), 303);
	assert_true(metric("roomgate_config_reloads_total{result=\"ok\"} ") >=
		    1);
	assert_true(metric("roomgate_config_last_reload_success_timestamp_"
			   "seconds ") > 0);
	/* And back, the same way. */
	idp_mode("normal");
	save_idp_metadata();
	hup_expect("config_reloaded");
	assert_int_equal(login(T.base, "alice"), 303);
}

/* Every refused reload leaves the node serving with the config and IdP
 * metadata it had, and says why. */
static void
sighup_refuses_bad_config_and_keeps_the_old(void **state)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256], good_md[65536];
	long failed0 = metric("roomgate_config_reloads_total{result=\"failed\"} ");
	FILE *f;
	size_t n;

	(void)state;
	assert_non_null(r);
	assert_true(failed0 >= 0);
	/* 1: not a valid config at all. */
	th_write_file("life-a.ini", "[server]\nport = 80\nbogus = 1\n");
	hup_expect("config_reload_failed");
	assert_true(log_count(T.a.log_path, "bogus: unknown key") >= 1);
	assert_int_equal(get_status(T.base, "/healthz"), 200);
	assert_int_equal(login(T.base, "alice"), 303);

	/* 2: valid, but changes settings only a restart applies (and one
	 * that a reload could apply): nothing is applied. */
	write_config("[server]\nlog_level = error\n"
		     "[database]\npool_size = 3\n"
		     "[codes]\nlength = 9\n");
	hup_expect("config_reload_refused");
	assert_true(log_count(T.a.log_path,
			      "[database] pool_size, [codes] length changed") >=
		    1);
	/* log_level = error was not applied: requests are still logged. */
	{
		int before = log_count(T.a.log_path, "\"http_request\"");

		assert_int_equal(get_status(T.base, "/healthz"), 200);
		usleep(200 * 1000);
		assert_true(log_count(T.a.log_path, "\"http_request\"") >
			    before);
	}

	/* 3: a valid config but broken IdP metadata: the old stays. */
	f = fopen(T.md, "r");
	assert_non_null(f);
	n = fread(good_md, 1, sizeof(good_md) - 1, f);
	good_md[n] = '\0';
	fclose(f);
	write_config(NULL);
	replace_file(T.md, "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:"
			   "tc:SAML:2.0:metadata\" entityID=\"https://"
			   "someone-else.test/\"/>");
	hup_expect("config_reload_failed");
	assert_true(log_count(T.a.log_path, "names another entityID") >= 1);
	assert_int_equal(login(T.base, "bob"), 303);
	assert_int_equal(
		metric("roomgate_config_reloads_total{result=\"failed\"} "),
		failed0 + 3);

	/* Fixed again: the next SIGHUP applies. */
	replace_file(T.md, good_md);
	hup_expect("config_reloaded");
	snprintf(url, sizeof(url), "%s/readyz", T.base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	free(r);
}

/* Settings read per request change on SIGHUP: the join token's lifetime
 * ([tokens] ttl, through the swapped config and a key set made anew) and
 * the log level. */
static void
sighup_applies_settings_read_per_request(void **state)
{
	struct sth_browser alice;
	struct sth_resp r;
	char link[80], code[16], id[40], err[160], body[64];
	json_t *o, *claims = NULL;
	const char *tok;
	int before;

	(void)state;
	sth_browser_init(&alice);
	sth_sign_in(&alice, T.base, T.idp_base, "alice");
	write_config("[server]\nlog_level = warn\n"
		     "[tokens]\nttl = 300\n");
	hup_expect("config_reloaded");
	assert_true(log_count(T.a.log_path,
			      "applied: [server] log_level, [tokens] ttl") >=
		    1);
	before = log_count(T.a.log_path, "\"http_request\"");
	ath_new_meeting(T.base, T.host_token, GROUP, "lifecycle ttl", 0, link,
			code, id);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	snprintf(err, sizeof(err), "/v1/join/%s", link);
	assert_int_equal(ath_req(T.base, &alice, "POST", err, NULL, body, &r),
			 200);
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	tok = json_string_value(json_object_get(o, "token"));
	assert_non_null(tok);
	assert_int_equal(gate_jwt_verify_hs256(tok,
					       (const unsigned char *)SECRET,
					       strlen(SECRET), time(NULL),
					       &claims, err, sizeof(err)),
			 0);
	assert_int_equal(json_integer_value(json_object_get(claims, "exp")) -
				 json_integer_value(
					 json_object_get(claims, "nbf")),
			 300);
	json_decref(claims);
	json_decref(o);
	sth_resp_free(&r);
	/* At warn, the answered requests wrote no info line. */
	assert_int_equal(log_count(T.a.log_path, "\"http_request\""), before);

	write_config(NULL);
	hup_expect("config_reloaded");
	assert_int_equal(get_status(T.base, "/healthz"), 200);
	usleep(200 * 1000);
	assert_true(log_count(T.a.log_path, "\"http_request\"") > before);
	sth_browser_free(&alice);
}

static int wait_exit(pid_t pid, int limit_ms);

/* One line of f into buf (NUL-terminated, cut at buflen - 1); 0 at end. */
static int
read_line(FILE *f, char *buf, size_t buflen)
{
	size_t n = 0;
	int ch;

	while ((ch = fgetc(f)) != EOF && ch != '\n')
		if (n + 1 < buflen)
			buf[n++] = (char)ch;
	buf[n] = '\0';
	return ch != EOF || n > 0;
}

/* ---- the unit's restrictions, applied by hand ------------------------- */

/* Linux >= 6.3 (uapi/linux/prctl.h); the Debian 12 headers predate it. */
#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

/*
 * What the unit's NoNewPrivileges=, CapabilityBoundingSet= (empty),
 * UMask=0077 and MemoryDenyWriteExecute= mean for the process, applied in
 * the child before exec (systemd does MemoryDenyWriteExecute with a
 * seccomp filter; the kernel's MDWE flag refuses the same mappings).
 * Exits 3 when the kernel has no MDWE, 4 when a step failed.
 */
static pid_t
start_restricted(const char *cfg, int port, const char *log)
{
	char portenv[64];
	pid_t pid;
	int fd;

	snprintf(portenv, sizeof(portenv), "ROOMGATE_SERVER_PORT=%d", port);
	pid = fork();
	assert_true(pid >= 0);
	if (pid != 0)
		return pid;
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0) {
		dup2(fd, 2);
		dup2(fd, 1);
		close(fd);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		_exit(4);
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
		    errno != EINVAL)
			_exit(4);
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0)
		_exit(errno == EINVAL ? 3 : 4);
	umask(077);
	putenv(portenv);
	execl(th_env("RG_TEST_BIN"), "roomgate", "serve", "-c", cfg,
	      (char *)NULL);
	_exit(127);
}

/* A node under those restrictions does a whole job: SAML sign-in (lasso,
 * xmlsec and OpenSSL checking the signature), a live directory check, an
 * admission with a join token, a reload, and a clean stop. */
static void
runs_under_the_units_restrictions(void **state)
{
	struct sth_browser alice;
	struct sth_resp r;
	char base[64], log[600], path[128], body[64], link[80], code[16];
	char id[40], caps[256];
	int port = th_free_port(), st = 0, up = 0;
	pid_t pid;
	FILE *f;

	(void)state;
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
	snprintf(log, sizeof(log), "%s/restricted-%d.log", th_env("RG_TEST_TMP"),
		 port);
	pid = start_restricted(T.cfg, port, log);
	for (int i = 0; i < 200 && !up; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
				fail_msg("this kernel has no PR_SET_MDWE "
					 "(Linux >= 6.3): cannot run the node "
					 "as MemoryDenyWriteExecute would");
			fail_msg("restricted node exited (status %d); see %s",
				 st, log);
		}
		up = get_status(base, "/healthz") == 200;
		if (!up)
			usleep(100 * 1000);
	}
	assert_true(up);
	/* It really runs with no capabilities and no new privileges. */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	{
		int seen = 0;

		while (read_line(f, caps, sizeof(caps)))
			if (strcmp(caps, "CapBnd:\t0000000000000000") == 0 ||
			    strcmp(caps, "CapEff:\t0000000000000000") == 0 ||
			    strncmp(caps, "NoNewPrivs:\t1", 13) == 0)
				seen++;
		assert_int_equal(seen, 3);
	}
	fclose(f);

	assert_int_equal(login_at(base, base, "alice"), 303);
	sth_browser_init(&alice);
	sth_sign_in(&alice, T.base, T.idp_base, "alice");
	ath_new_meeting(T.base, T.host_token, GROUP, "lifecycle restricted", 0,
			link, code, id);
	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	if (ath_req(base, &alice, "POST", path, NULL, body, &r) != 200)
		fail_msg("join through the restricted node: %ld %s", r.status,
			 r.body);
	assert_non_null(strstr(r.body, "\"token\""));
	sth_resp_free(&r);
	sth_browser_free(&alice);
	assert_int_equal(kill(pid, SIGHUP), 0);
	usleep(300 * 1000);
	assert_int_equal(get_status(base, "/healthz"), 200);
	assert_int_equal(kill(pid, SIGTERM), 0);
	st = wait_exit(pid, 15000);
	if (st != 0) {
		if (st < 0)
			kill(pid, SIGKILL);
		fail_msg("restricted node exited with %d; see %s", st, log);
	}
	assert_true(log_count(log, "\"event\":\"config_reloaded\"") == 1);
}

/* ---- graceful stop ----------------------------------------------------- */

struct join_call {
	struct sth_browser *b;
	const char *base;
	char path[128], body[64];
	struct sth_resp r;
};

static void *
join_thread(void *arg)
{
	struct join_call *j = arg;

	(void)ath_req(j->base, j->b, "POST", j->path, NULL, j->body, &j->r);
	return NULL;
}

/* Waits for a child to exit; its status, or -1 after limit_ms. */
static int
wait_exit(pid_t pid, int limit_ms)
{
	int st;

	for (int i = 0; i < limit_ms / 20; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st)
					     : 128 + WTERMSIG(st);
		usleep(20 * 1000);
	}
	return -1;
}

/*
 * SIGTERM while an admission waits on a frozen slapd: the node stops
 * taking connections at once, waits for the admission, which completes
 * (thaw: 200 with a token) or ends with a clean 503 (slapd stays frozen
 * past [ldap] op_timeout_ms), and exits 0 right after.
 */
static void
drain_one(int thaw_after_ms, long want_status, const char *want_error)
{
	struct sth_browser alice;
	struct th_server c;
	struct join_call j;
	char link[80], code[16], id[40], ini[8192], cbase[64], *cfg;
	pthread_t th;
	json_t *o;
	int port = th_free_port(), st;
	struct timespec t0, t1;
	double took;

	snprintf(ini, sizeof(ini), "%s",
		 node_ini("[ldap]\nop_timeout_ms = 3000\n"
			  "[server]\ndrain_timeout = 15\n"));
	cfg = strdup(th_config("life-c.ini", ini));
	assert_non_null(cfg);
	th_server_start(&c, cfg, port);
	sth_browser_init(&alice);
	/* Signed in through A; the session (in the database) is good on C
	 * too: the same public URL, as behind one load balancer. */
	sth_sign_in(&alice, T.base, T.idp_base, "alice");
	ath_new_meeting(T.base, T.host_token, GROUP, "lifecycle drain", 0,
			link, code, id);
	memset(&j, 0, sizeof(j));
	j.b = &alice;
	snprintf(cbase, sizeof(cbase), "http://127.0.0.1:%d", port);
	j.base = cbase;
	snprintf(j.path, sizeof(j.path), "/v1/join/%s", link);
	snprintf(j.body, sizeof(j.body), "{\"code\": \"%s\"}", code);

	T.frozen = slapd_pid();
	assert_int_equal(kill(T.frozen, SIGSTOP), 0);
	assert_int_equal(pthread_create(&th, NULL, join_thread, &j), 0);
	usleep(600 * 1000); /* the admission is waiting on slapd */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(kill(c.pid, SIGTERM), 0);
	usleep(300 * 1000);
	/* Still running (draining), but no longer taking connections. */
	assert_int_equal(waitpid(c.pid, &st, WNOHANG), 0);
	assert_int_equal(get_status(j.base, "/healthz"), -1);
	if (thaw_after_ms > 0) {
		usleep((useconds_t)thaw_after_ms * 1000);
		thaw();
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	thaw();
	st = wait_exit(c.pid, 10000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	took = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (st != 0) {
		if (st < 0)
			kill(c.pid, SIGKILL);
		fail_msg("node exited with %d (-1: still running after 10 s); "
			 "see %s",
			 st, c.log_path);
	}
	c.pid = 0;
	if (j.r.status != want_status)
		fail_msg("in-flight admission: want %ld, got %ld: %s",
			 want_status, j.r.status, j.r.body);
	o = json_loads(j.r.body, 0, NULL);
	assert_non_null(o);
	if (want_error == NULL)
		assert_non_null(json_string_value(json_object_get(o, "token")));
	else {
		json_t *e = json_object_get(o, "error");

		assert_string_equal(
			json_string_value(json_object_get(e, "code")),
			want_error);
		assert_non_null(strstr(
			json_string_value(json_object_get(e, "message")),
			"directory"));
	}
	json_decref(o);
	/* The exit follows the answer: within the LDAP timeout (3 s) and
	 * the stop of the background threads, far below drain_timeout. */
	assert_true(took < 8.0);
	assert_true(log_count(c.log_path, "\"event\":\"drained\"") == 1);
	sth_resp_free(&j.r);
	sth_browser_free(&alice);
	free(cfg);
}

static void
sigterm_finishes_the_admission_in_progress(void **state)
{
	(void)state;
	drain_one(700, 200, NULL);
}

static void
sigterm_answers_a_hung_directory_cleanly(void **state)
{
	(void)state;
	drain_one(0, 503, "directory_unavailable");
}

/* ---- two nodes behind nginx ------------------------------------------- */

/* Lines of a node's log for a route ("route":"NAME"). */
static int
route_lines(const struct th_server *n, const char *route)
{
	char needle[128];

	snprintf(needle, sizeof(needle), "\"route\":\"%s\"", route);
	return log_count(n->log_path, needle);
}

struct me_loop {
	struct sth_browser *b;
	_Atomic int stop;
	int ok, bad;
	long last_bad;
};

/* GET /v1/me through nginx, over and over, until told to stop. */
static void *
me_loop(void *arg)
{
	struct me_loop *m = arg;
	struct sth_resp r;

	while (!m->stop) {
		if (ath_req(T.lb, m->b, "GET", "/v1/me", NULL, NULL, &r) == 200)
			m->ok++;
		else {
			m->bad++;
			m->last_bad = r.status;
		}
		sth_resp_free(&r);
		usleep(20 * 1000);
	}
	return NULL;
}

/*
 * The acceptance: two nodes behind nginx round-robin, and full
 * joins (sign-in at the IdP, code, token) work whichever node each step
 * lands on. Then one node gets SIGTERM while requests keep coming: it
 * refuses new connections at once, nginx sends them to the other node,
 * and not one request fails.
 */
static void
nginx_balances_two_nodes_and_a_stop_loses_nothing(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	struct me_loop m;
	pthread_t th;
	char link[80], code[16], id[40], path[128], body[64];
	int acs1 = route_lines(&T.l1, "/saml/acs");
	int acs2 = route_lines(&T.l2, "/saml/acs");
	int join1, join2, st;

	(void)state;
	join1 = route_lines(&T.l1, "/v1/join/{link}");
	join2 = route_lines(&T.l2, "/v1/join/{link}");
	for (int i = 0; i < 4; i++) {
		sth_browser_init(&b);
		sth_sign_in(&b, T.lb, T.idp_base, "alice");
		ath_new_meeting(T.base, T.host_token, GROUP, "lifecycle lb", 0,
				link, code, id);
		snprintf(path, sizeof(path), "/v1/join/%s", link);
		snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
		/* Twice per sign-in: round-robin puts the two on different
		 * nodes. A second admission to the same meeting is fine. */
		for (int k = 0; k < 2; k++) {
			if (ath_req(T.lb, &b, "POST", path, NULL, body, &r) !=
			    200)
				fail_msg("join through nginx: %ld %s",
					 r.status, r.body);
			assert_non_null(strstr(r.body, "\"token\""));
			sth_resp_free(&r);
		}
		sth_browser_free(&b);
	}
	usleep(300 * 1000); /* the access lines follow the answers */
	/* Sign-ins and joins landed on both nodes. */
	assert_true(route_lines(&T.l1, "/saml/acs") + route_lines(&T.l2,
								"/saml/acs") ==
		    acs1 + acs2 + 4);
	assert_true(route_lines(&T.l1, "/v1/join/{link}") > join1);
	assert_true(route_lines(&T.l2, "/v1/join/{link}") > join2);

	/* A rolling restart's stop, under traffic. */
	sth_browser_init(&b);
	sth_sign_in(&b, T.lb, T.idp_base, "bob");
	memset(&m, 0, sizeof(m));
	m.b = &b;
	assert_int_equal(pthread_create(&th, NULL, me_loop, &m), 0);
	usleep(700 * 1000);
	assert_int_equal(kill(T.l2.pid, SIGTERM), 0);
	st = wait_exit(T.l2.pid, 15000);
	if (st != 0)
		fail_msg("node L2 exited with %d; see %s", st, T.l2.log_path);
	T.l2.pid = 0;
	usleep(700 * 1000);
	m.stop = 1;
	assert_int_equal(pthread_join(th, NULL), 0);
	sth_browser_free(&b);
	print_message("    /v1/me through nginx during the stop: %d ok, %d "
		      "failed\n",
		      m.ok, m.bad);
	if (m.bad != 0)
		fail_msg("%d requests failed while a node stopped (last: %ld)",
			 m.bad, m.last_bad);
	assert_true(m.ok >= 10);
	assert_true(log_count(T.l2.log_path, "\"event\":\"drained\"") == 1);
	/* Back to two nodes, for whatever runs next. */
	th_server_start(&T.l2, T.lb_cfg, T.l2_port);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(systemd_unit_verifies),
		cmocka_unit_test(k8s_config_is_accepted),
		cmocka_unit_test(runs_under_the_units_restrictions),
		cmocka_unit_test(sighup_reads_new_idp_metadata),
		cmocka_unit_test(sighup_refuses_bad_config_and_keeps_the_old),
		cmocka_unit_test(sighup_applies_settings_read_per_request),
		cmocka_unit_test(sigterm_finishes_the_admission_in_progress),
		cmocka_unit_test(sigterm_answers_a_hung_directory_cleanly),
		cmocka_unit_test(
			nginx_balances_two_nodes_and_a_stop_loses_nothing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
