/*
 * Integration: a real nginx (Debian's, with auth_request) in front of a
 * static "meeting app", configured with the shipped example
 * deploy/nginx/roomgate-authz.conf -- only its TLS listen and the two
 * upstream addresses are swapped for loopback ports, each replacement
 * checked, so the file people copy is the file tested. Sign-in goes through
 * nginx to the test IdP and back; access to the app follows roomgate's
 * GET /v1/authz on every request: admitted -> the app (which sees
 * X-Roomgate-User), out of the group -> 403 on the very next request, no
 * session -> redirect to sign in, roomgate or slapd down -> 503, never the
 * app.
 *
 * nginx runs in the foreground as one process (master_process off) with its
 * config, pid, temp and log paths under RG_TEST_TMP/nginx, and is always
 * stopped in teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/prctl.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-nginx.test/saml/metadata"
#define IDP_ENTITY "https://idp-nginx.test/saml"
#define GROUPS "ou=groups,dc=example,dc=com"
#define ALLOWED "cn=meeting-allowed," GROUPS
#define BOB_DN "uid=bob,ou=people,dc=example,dc=com"
#define APP_PAGE "<!DOCTYPE html><title>Meeting app</title><h1>The meeting app</h1>\n"
#define CONF_MAX (64 * 1024)

static struct {
	int idp_port, port, nginx_port, app_port;
	char base[64], idp_base[64], nginx[64];
	char dir[512];
	struct th_server s;
	int server_up;
	pid_t idp, nginx_pid;
	PGconn *pg;
	char cfg_path[512];
	char host_token[64];
	struct sth_browser bob, anon;
} T;

static const char bob_out[] = "dn: " ALLOWED "\nchangetype: modify\n"
                              "delete: member\nmember: " BOB_DN "\n";
static const char bob_back[] = "dn: " ALLOWED "\nchangetype: modify\n"
                               "add: member\nmember: " BOB_DN "\n";

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "nginx-idp-md.xml");
	/* public_url is nginx's: sign-in comes back through it. */
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\ntrusted_proxies = 127.0.0.1\n"
	         "[tokens]\nhs256_secret = nginx-test-shared-secret-0123456789"
	         "\n",
	         T.nginx, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md);
	return ini;
}

/* ---- nginx ------------------------------------------------------------ */

static const char *
nginx_bin(void)
{
	const char *b = getenv("RG_NGINX");

	return b != NULL && *b != '\0' ? b : "/usr/sbin/nginx";
}

/* Replaces the one occurrence of from in s (CONF_MAX buffer) by to; fails
 * the test when from is missing or there twice (the example changed). */
static void
replace_once(char *s, const char *from, const char *to)
{
	char *p = strstr(s, from), *tail;
	size_t fl = strlen(from), tl = strlen(to);

	if (p == NULL || strstr(p + fl, from) != NULL) {
		fail_msg("deploy/nginx/roomgate-authz.conf: expected \"%s\" "
		         "exactly once; update test_nginx.c with the example",
		         from);
		return; /* not reached: fail_msg jumps out of the test */
	}
	assert_true(strlen(s) - fl + tl < CONF_MAX);
	tail = strdup(p + fl);
	assert_non_null(tail);
	memcpy(p, to, tl); /* NOLINT(bugprone-not-null-terminated-result): the tail follows */
	memcpy(p + tl, tail, strlen(tail) + 1);
	free(tail);
}

/* The example, adapted to loopback ports, into dir/roomgate-authz.conf. */
static void
write_example(void)
{
	char src[1024], to[128], path[600];
	char *conf = calloc(1, CONF_MAX);
	FILE *f;
	size_t n;

	assert_non_null(conf);
	snprintf(src, sizeof(src), "%s/deploy/nginx/roomgate-authz.conf",
	         th_env("RG_TEST_ROOT"));
	f = fopen(src, "r");
	assert_non_null(f);
	n = fread(conf, 1, CONF_MAX - 1, f);
	fclose(f);
	conf[n] = '\0';
	snprintf(to, sizeof(to), "server 127.0.0.1:%d;", T.port);
	replace_once(conf, "server 127.0.0.1:8080;", to);
	snprintf(to, sizeof(to), "server 127.0.0.1:%d;", T.app_port);
	replace_once(conf, "server 127.0.0.1:8000;", to);
	snprintf(to, sizeof(to), "listen 127.0.0.1:%d;", T.nginx_port);
	replace_once(conf, "listen 443 ssl;", to);
	replace_once(conf,
	             "ssl_certificate     "
	             "/etc/ssl/certs/meet-gate.example.com.pem;",
	             "");
	replace_once(conf,
	             "ssl_certificate_key "
	             "/etc/ssl/private/meet-gate.example.com.key;",
	             "");
	snprintf(path, sizeof(path), "%s/roomgate-authz.conf", T.dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(conf, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	free(conf);
}

/* nginx.conf: own pid, logs and temp paths; the meeting app (a static
 * page that echoes the identity headers it received) and the example. */
static void
write_nginx_conf(void)
{
	char path[600], *conf = calloc(1, CONF_MAX);
	const char *d = T.dir;
	FILE *f;
	int n;

	assert_non_null(conf);
	n = snprintf(
	    conf, CONF_MAX,
	    "daemon off;\nmaster_process off;\nworker_processes 1;\n"
	    "pid %s/nginx.pid;\nerror_log %s/error.log info;\n"
	    "events { worker_connections 128; }\n"
	    "http {\n"
	    "  access_log %s/access.log;\n"
	    "  client_body_temp_path %s/tmp/body;\n"
	    "  proxy_temp_path %s/tmp/proxy;\n"
	    "  fastcgi_temp_path %s/tmp/fastcgi;\n"
	    "  uwsgi_temp_path %s/tmp/uwsgi;\n"
	    "  scgi_temp_path %s/tmp/scgi;\n"
	    "  default_type text/html;\n"
	    "  # The meeting app: one static page for every path.\n"
	    "  server {\n"
	    "    listen 127.0.0.1:%d;\n"
	    "    root %s/app;\n"
	    "    location / {\n"
	    "      add_header X-App-Saw-User \"$http_x_roomgate_user\" always;\n"
	    "      add_header X-App-Saw-Meeting \"$http_x_roomgate_meeting\" "
	    "always;\n"
	    "      try_files /index.html =404;\n"
	    "    }\n"
	    "  }\n"
	    "  include %s/roomgate-authz.conf;\n"
	    "}\n",
	    d, d, d, d, d, d, d, d, T.app_port, d, d);
	assert_true(n > 0 && n < CONF_MAX);
	snprintf(path, sizeof(path), "%s/nginx.conf", d);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(conf, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	free(conf);
}

static void
nginx_start(void)
{
	char conf[600], err[600], app[600], url[128];
	struct th_http *r = calloc(1, sizeof(*r));
	pid_t pid;
	int st;

	assert_non_null(r);
	if (access(nginx_bin(), X_OK) != 0)
		fail_msg("%s is not installed: run deploy/install-deps.sh as "
		         "root (package nginx, which has auth_request)",
		         nginx_bin());
	assert_int_equal(th_sh("mkdir -p '%s/tmp' '%s/app'", T.dir, T.dir), 0);
	snprintf(app, sizeof(app), "%s/app/index.html", T.dir);
	{
		FILE *f = fopen(app, "w");

		assert_non_null(f);
		fputs(APP_PAGE, f);
		assert_int_equal(fclose(f), 0);
	}
	write_example();
	write_nginx_conf();
	snprintf(conf, sizeof(conf), "%s/nginx.conf", T.dir);
	snprintf(err, sizeof(err), "%s/error.log", T.dir);
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
		execl(nginx_bin(), "nginx", "-p", T.dir, "-c", conf, "-e", err,
		      (char *)NULL);
		_exit(127);
	}
	T.nginx_pid = pid;
	/* Up when the app answers through its own port. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", T.app_port);
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			T.nginx_pid = 0;
			th_sh("cat '%s' >&2", err);
			fail_msg("nginx exited at start (status %d); see above",
			         st);
		}
		if (th_http("GET", url, NULL, NULL, 0, r) == 200) {
			free(r);
			return;
		}
		usleep(100000);
	}
	free(r);
	fail_msg("nginx did not answer on 127.0.0.1:%d; see %s", T.app_port,
	         err);
}

static void
nginx_stop(void)
{
	int st = 0;

	if (T.nginx_pid <= 0)
		return;
	kill(T.nginx_pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(T.nginx_pid, &st, WNOHANG) == T.nginx_pid) {
			T.nginx_pid = 0;
			return;
		}
		usleep(50000);
	}
	kill(T.nginx_pid, SIGKILL);
	waitpid(T.nginx_pid, &st, 0);
	T.nginx_pid = 0;
}

/* ---- requests through nginx ------------------------------------------- */

struct got {
	long status;
	char location[8192];
	char saw_user[128];
	char saw_meeting[128];
	int app_body;         /* the meeting app's page was served */
	int unavailable_body; /* the example's 503 page */
};

static void
header_of(struct sth_browser *b, const char *name, char *out, size_t n)
{
	struct curl_header *h = NULL;

	out[0] = '\0';
	if (curl_easy_header(b->h, name, 0, CURLH_HEADER, -1, &h) ==
	    CURLHE_OK)
		snprintf(out, n, "%s", h->value);
}

/* GET nginx + path with b's cookies (and extra headers). */
static void
get(struct sth_browser *b, const char *path, const char *const *headers,
    struct got *g)
{
	struct sth_resp r;

	memset(g, 0, sizeof(*g));
	g->status = ath_req(T.nginx, b, "GET", path, headers, NULL, &r);
	snprintf(g->location, sizeof(g->location), "%s", r.location);
	header_of(b, "X-App-Saw-User", g->saw_user, sizeof(g->saw_user));
	header_of(b, "X-App-Saw-Meeting", g->saw_meeting,
	          sizeof(g->saw_meeting));
	g->app_body = strstr(r.body, "The meeting app") != NULL;
	g->unavailable_body =
	    strstr(r.body, "access check is unavailable") != NULL;
	sth_resp_free(&r);
}

/* POST /v1/join/{link} through nginx: admitted. */
static void
join(struct sth_browser *b, const char *link, const char *code)
{
	struct sth_resp r;
	char path[128], body[64];

	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	if (ath_req(T.nginx, b, "POST", path, NULL, body, &r) != 200)
		fail_msg("join through nginx: %ld %s", r.status, r.body);
	sth_resp_free(&r);
}

static void
expect_app(struct sth_browser *b, const char *path, const char *user,
           const char *meeting_id)
{
	struct got g;

	get(b, path, NULL, &g);
	if (g.status != 200)
		fail_msg("GET %s through nginx: %ld, expected the app", path,
		         g.status);
	assert_true(g.app_body);
	assert_string_equal(g.saw_user, user);
	assert_string_equal(g.saw_meeting, meeting_id);
}

static void
expect_refused(struct sth_browser *b, const char *path, long status)
{
	struct got g;

	get(b, path, NULL, &g);
	if (g.status != status)
		fail_msg("GET %s through nginx: %ld, expected %ld", path,
		         g.status, status);
	assert_false(g.app_body);
	assert_string_equal(g.saw_user, "");
}

/* ---- fixture ---------------------------------------------------------- */

static void
server_up(void)
{
	th_server_start(&T.s, T.cfg_path, T.port);
	T.server_up = 1;
}

static int
setup(void **state)
{
	char spmd[512];
	const char *sps[2];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	T.idp_port = th_free_port();
	T.port = th_free_port();
	T.nginx_port = th_free_port();
	T.app_port = th_free_port();
	snprintf(T.dir, sizeof(T.dir), "%s/nginx", th_env("RG_TEST_TMP"));
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	snprintf(T.nginx, sizeof(T.nginx), "http://127.0.0.1:%d",
	         T.nginx_port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "nginx-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "nginx-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("nginx.ini", node_ini()));
	server_up();
	nginx_start();
	/* The IdP reads our metadata as nginx serves it. */
	sth_save_sp_metadata(T.nginx, "nginx-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "nginx-host", "alice", T.host_token);
	sth_browser_init(&T.bob);
	sth_browser_init(&T.anon);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	(void)ath_ldap_admin_try(bob_back);
	nginx_stop();
	sth_browser_free(&T.bob);
	sth_browser_free(&T.anon);
	sth_idp_stop(T.idp);
	if (T.server_up)
		th_server_stop(&T.s);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

static void
app_access_ends_when_removed_from_the_group(void **state)
{
	char link[80], code[16], id[40], other[80], ocode[16], oid[40];
	char path[128], deep[160], opath[160], want[200], smuggle[160];
	const char *spoof[] = {"X-Roomgate-User: mallory",
	                       "X-Roomgate-Meeting: forged", NULL};
	const char *smuggled[] = {smuggle, NULL};
	struct got g;

	(void)state;
	ath_new_meeting(T.base, T.host_token, ALLOWED, "nginx meeting", 0,
	                link, code, id);
	ath_new_meeting(T.base, T.host_token, ALLOWED, "nginx other", 0, other,
	                ocode, oid);
	snprintf(path, sizeof(path), "/app/%s/", link);
	snprintf(deep, sizeof(deep), "/app/%s/slides/1.html", link);
	snprintf(opath, sizeof(opath), "/app/%s/", other);

	/* No session: to sign in, and back to the app afterwards. */
	get(&T.anon, path, NULL, &g);
	assert_int_equal(g.status, 302);
	assert_false(g.app_body);
	snprintf(want, sizeof(want), "/saml/login?return=%s", path);
	assert_true(strlen(g.location) >= strlen(want));
	assert_string_equal(g.location + strlen(g.location) - strlen(want),
	                    want);
	/* roomgate takes that return path (through nginx) to the IdP. */
	get(&T.anon, want, NULL, &g);
	assert_int_equal(g.status, 302);
	assert_true(strncmp(g.location, T.idp_base, strlen(T.idp_base)) == 0);

	/* roomgate's own pages stay roomgate's behind this config (the join
	 * page, the host's /m/ pages), never the app's. */
	snprintf(smuggle, sizeof(smuggle), "/j/%s", link);
	get(&T.anon, smuggle, NULL, &g);
	assert_int_equal(g.status, 303);
	assert_non_null(strstr(g.location, "/saml/login?return=/j/"));
	snprintf(smuggle, sizeof(smuggle), "/m/%s/waiting", id);
	get(&T.anon, smuggle, NULL, &g);
	assert_true(g.status >= 300);
	assert_false(g.app_body);

	/* roomgate's metrics are not on the public side. */
	get(&T.anon, "/metrics", NULL, &g);
	assert_int_equal(g.status, 404);

	/* Signed in through nginx, not admitted yet: 403. */
	sth_sign_in(&T.bob, T.nginx, T.idp_base, "bob");
	expect_refused(&T.bob, path, 403);

	/* Joined (through nginx): the app, and it is told who. */
	join(&T.bob, link, code);
	expect_app(&T.bob, path, "bob", id);
	expect_app(&T.bob, deep, "bob", id);
	/* What the client claims is replaced by what roomgate said. */
	get(&T.bob, path, spoof, &g);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.saw_user, "bob");
	assert_string_equal(g.saw_meeting, id);

	/* Another meeting's app: not admitted there, and naming the admitted
	 * meeting in a header does not change which meeting is checked. */
	expect_refused(&T.bob, opath, 403);
	snprintf(smuggle, sizeof(smuggle), "X-Roomgate-Meeting: %s", link);
	get(&T.bob, opath, smuggled, &g);
	assert_int_equal(g.status, 403);
	assert_false(g.app_body);
	snprintf(smuggle, sizeof(smuggle), "X-Original-URI: /j/%s", link);
	get(&T.bob, opath, smuggled, &g);
	assert_int_equal(g.status, 403);
	assert_false(g.app_body);

	/* Out of the group: the very next request is refused. */
	ath_ldap_admin(bob_out);
	expect_refused(&T.bob, path, 403);
	expect_refused(&T.bob, deep, 403);
	ath_ldap_admin(bob_back);
	expect_app(&T.bob, path, "bob", id);

	/* Signed out: no session, so to sign in again. */
	get(&T.bob, "/saml/logout", NULL, &g);
	assert_true(g.status == 302 || g.status == 200);
	get(&T.bob, path, NULL, &g);
	assert_int_equal(g.status, 302);
	assert_false(g.app_body);
	assert_non_null(strstr(g.location, want));
}

static void
fails_closed_when_roomgate_or_the_directory_is_down(void **state)
{
	char link[80], code[16], id[40], path[128];
	struct got g;

	(void)state;
	ath_new_meeting(T.base, T.host_token, ALLOWED, "nginx down", 0, link,
	                code, id);
	snprintf(path, sizeof(path), "/app/%s/", link);
	sth_sign_in(&T.bob, T.nginx, T.idp_base, "bob");
	join(&T.bob, link, code);
	expect_app(&T.bob, path, "bob", id);

	/* slapd down: roomgate answers 503, nginx shows its 503 page. */
	th_ldap_stop();
	get(&T.bob, path, NULL, &g);
	th_ldap_start();
	assert_int_equal(g.status, 503);
	assert_false(g.app_body);
	assert_true(g.unavailable_body);
	for (int i = 0; i < 50; i++) {
		get(&T.bob, path, NULL, &g);
		if (g.status == 200)
			break;
		usleep(100000);
	}
	expect_app(&T.bob, path, "bob", id);

	/* roomgate stopped: nobody gets in. */
	th_server_stop(&T.s);
	T.server_up = 0;
	get(&T.bob, path, NULL, &g);
	assert_int_equal(g.status, 503);
	assert_false(g.app_body);
	assert_true(g.unavailable_body);
	assert_string_equal(g.saw_user, "");
	server_up();
	expect_app(&T.bob, path, "bob", id);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(app_access_ends_when_removed_from_the_group),
	    cmocka_unit_test(fails_closed_when_roomgate_or_the_directory_is_down),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
