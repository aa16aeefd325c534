/*
 * Helpers for the real-browser tests (test_browser*.c, header-only like
 * admit_th.h which it builds on): the test IdP and a roomgate node whose
 * admission redirect goes to a stand-in platform on a loopback port, and
 * running one scenario of tests/browser (headless Chromium driven by
 * playwright-core, installed by `make test` with npm ci) per node process.
 *
 * A scenario reports its steps as TAP lines; they are echoed here as "# "
 * lines (so tests/run.sh counts the cmocka tests, not the steps) and every
 * expected step must be "ok". A scenario is killed with its process group
 * after BTH_SCENARIO_TIMEOUT_S; on failure it leaves a screenshot in
 * RG_TEST_TMP (kept with RG_KEEP_TMP=1).
 */
#ifndef ROOMGATE_BROWSER_TH_H
#define ROOMGATE_BROWSER_TH_H

#include <errno.h>
#include <sys/prctl.h>

#include "tests/integration/admit_th.h"

#define BTH_SECRET "browser-test-shared-secret-0123456789abcdef"
#define BTH_ISSUER "roomgate-browser"
#define BTH_AUDIENCE "jitsi"
#define BTH_SUBJECT "meet.example.com"
#define BTH_TTL "120"
#define BTH_MAX_FAILURES "5"
#define BTH_ALLOWED "cn=meeting-allowed,ou=groups,dc=example,dc=com"
/* alice is in it: she hosts through her SSO session on the host page. */
#define BTH_HOSTS "cn=meeting-hosts,ou=groups,dc=example,dc=com"
#define BTH_SCENARIO_TIMEOUT_S 150
#define BTH_OUT_MAX (256 * 1024)

static struct {
	int idp_port, port, platform_port;
	char base[64], idp_base[64];
	char prefix[32];
	int rs256; /* join tokens signed RS256 (JWKS) instead of HS256 */
	struct th_server s;
	pid_t idp;
	PGconn *pg;
	char cfg_path[512];
	char host_token[64];
	char out[BTH_OUT_MAX]; /* the last scenario's output */
	char value[4096];      /* bth_value's answer */
} B;

static const char *
bth_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512], mdname[64], tokens[1024];
	char jwtkey[512], jwtname[64], out[2048];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	snprintf(mdname, sizeof(mdname), "%s-idp-md.xml", B.prefix);
	sth_path(md, sizeof(md), mdname);
	if (B.rs256) {
		const char *argv[] = {th_env("RG_TEST_BIN"), "jwt-keygen",
		                      "--bits", "2048", jwtkey, NULL};

		/* Made at test time, never committed. */
		snprintf(jwtname, sizeof(jwtname), "%s-jwt.key", B.prefix);
		sth_path(jwtkey, sizeof(jwtkey), jwtname);
		if (access(jwtkey, F_OK) != 0 &&
		    th_run_capture(argv, NULL, out, sizeof(out)) != 0)
			fail_msg("roomgate jwt-keygen failed: %s", out);
		snprintf(tokens, sizeof(tokens),
		         "alg = RS256\nrs256_key_file = %s\n", jwtkey);
	} else {
		snprintf(tokens, sizeof(tokens),
		         "hs256_secret = " BTH_SECRET "\n");
	}
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[directory]\nhost_group = " BTH_HOSTS "\n"
	         "[saml]\nentity_id = https://roomgate-%s.test/saml/metadata"
	         "\nkey_file = %s\ncert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nmax_failures = " BTH_MAX_FAILURES "\n"
	         "redirect_url = http://127.0.0.1:%d/{room}?jwt={token}\n"
	         "[tokens]\n%s"
	         "issuer = " BTH_ISSUER "\naudience = " BTH_AUDIENCE "\n"
	         "subject = " BTH_SUBJECT "\nttl = " BTH_TTL "\n",
	         B.base, th_env("RG_TEST_LDAP_BASE_DN"), B.prefix, key, crt, md,
	         B.platform_port, tokens);
	return ini;
}

/* Fails the test, saying what to do, when node, Chromium or the npm
 * packages are missing (never a silent skip). */
static void
bth_require_tools(void)
{
	char path[1024];
	const char *chromium = getenv("RG_CHROMIUM");

	snprintf(path, sizeof(path),
	         "%s/tests/browser/node_modules/playwright-core/package.json",
	         th_env("RG_TEST_ROOT"));
	if (access(path, R_OK) != 0)
		fail_msg("playwright-core is not installed: run `make test` "
		         "(it runs npm ci) or `cd tests/browser && npm ci`");
	if (th_sh("command -v node >/dev/null 2>&1") != 0)
		fail_msg("node is not installed: run deploy/install-deps.sh "
		         "as root");
	if (access(chromium ? chromium : "/usr/bin/chromium", X_OK) != 0)
		fail_msg("chromium is not installed: run "
		         "deploy/install-deps.sh as root");
}

/* The test IdP and one roomgate node; prefix names their files. rs256:
 * join tokens signed RS256 with a key made here (else HS256, BTH_SECRET). */
static void
bth_setup(const char *prefix, int rs256)
{
	char spmd[512], name[64], ini[64], entity[128], tname[64];
	const char *sps[2];

	curl_global_init(CURL_GLOBAL_DEFAULT);
	bth_require_tools();
	snprintf(B.prefix, sizeof(B.prefix), "%s", prefix);
	B.rs256 = rs256;
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	B.idp_port = th_free_port();
	B.port = th_free_port();
	B.platform_port = th_free_port();
	snprintf(B.idp_base, sizeof(B.idp_base), "http://127.0.0.1:%d",
	         B.idp_port);
	snprintf(B.base, sizeof(B.base), "http://127.0.0.1:%d", B.port);
	snprintf(entity, sizeof(entity), "https://idp-%s.test/saml", prefix);
	snprintf(name, sizeof(name), "%s-idp-md.xml", prefix);
	sth_idp_metadata(entity, B.idp_base, name);
	snprintf(name, sizeof(name), "%s-sp-md.xml", prefix);
	sth_path(spmd, sizeof(spmd), name);
	sps[0] = spmd;
	sps[1] = NULL;
	B.idp = sth_idp_start(entity, B.idp_base, B.idp_port, sps);
	snprintf(ini, sizeof(ini), "%s.ini", prefix);
	snprintf(B.cfg_path, sizeof(B.cfg_path), "%s",
	         th_config(ini, bth_ini()));
	th_server_start(&B.s, B.cfg_path, B.port);
	sth_save_sp_metadata(B.base, name);
	B.pg = sth_pg();
	snprintf(tname, sizeof(tname), "%s-host", prefix);
	ath_token(B.cfg_path, "host", tname, "alice", B.host_token);
}

static void
bth_teardown(void)
{
	sth_idp_stop(B.idp);
	th_server_stop(&B.s);
	PQfinish(B.pg);
	curl_global_cleanup();
}

/*
 * Runs `node tests/browser/<name>.mjs` with env ("K=V", NULL-ended) added,
 * its output into a file (no pipe a stray child could hold open), killed
 * with its process group after BTH_SCENARIO_TIMEOUT_S. Returns the exit
 * status, or -1 when killed; B.out receives the output.
 */
static int
bth_run(const char *name, const char *const *env)
{
	char script[1024], log[512], logname[128];
	struct timespec t0, now;
	int st = 0, fd, done = 0;
	pid_t pid;
	FILE *f;
	size_t n;

	snprintf(script, sizeof(script), "%s/tests/browser/%s.mjs",
	         th_env("RG_TEST_ROOT"), name);
	snprintf(logname, sizeof(logname), "browser-%s.out", name);
	sth_path(log, sizeof(log), logname);
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		for (size_t i = 0; env[i] != NULL; i++)
			putenv((char *)env[i]);
		setenv("RG_SCENARIO", name, 1);
		setenv("RG_SHOT_DIR", th_env("RG_TEST_TMP"), 1);
		/* Gone with this test process, however it ends (Chromium
		 * follows node: its control pipe closes). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execlp("node", "node", script, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid) {
			done = 1;
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > BTH_SCENARIO_TIMEOUT_S) {
			kill(-pid, SIGTERM);
			usleep(3000000);
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(100000);
	}
	B.out[0] = '\0';
	f = fopen(log, "r");
	if (f != NULL) {
		n = fread(B.out, 1, sizeof(B.out) - 1, f);
		B.out[n] = '\0';
		fclose(f);
	}
	if (!done) {
		printf("# scenario %s killed after %d s\n", name,
		       BTH_SCENARIO_TIMEOUT_S);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Echoes the scenario's output as TAP comments. */
static void
bth_echo(const char *name)
{
	const char *p = B.out;

	printf("# scenario %s:\n", name);
	while (*p != '\0') {
		const char *e = strchr(p, '\n');
		int len = e ? (int)(e - p) : (int)strlen(p);

		printf("#   %.*s\n", len, p);
		p += len + (e ? 1 : 0);
	}
	fflush(stdout);
}

/* Every step in want (NULL-ended) was reported "ok N - step", none failed,
 * the exit status was 0. */
static void
bth_expect_steps(const char *name, int status, const char *const *want)
{
	char line[512];

	bth_echo(name);
	if (strstr(B.out, "not ok ") != NULL)
		fail_msg("scenario %s: a step failed (see above)", name);
	for (size_t i = 0; want[i] != NULL; i++) {
		const char *p = B.out;
		int found = 0;

		snprintf(line, sizeof(line), " - %s\n", want[i]);
		while ((p = strstr(p, line)) != NULL) {
			const char *bol = p;

			while (bol > B.out && bol[-1] != '\n')
				bol--;
			if (strncmp(bol, "ok ", 3) == 0)
				found = 1;
			p += strlen(line);
		}
		if (!found)
			fail_msg("scenario %s: step not reported ok: %s", name,
			         want[i]);
	}
	if (status != 0)
		fail_msg("scenario %s: exit status %d", name, status);
}

/* The environment of a scenario; the strings live in statics until the
 * next call. more: extra "K=V" strings (NULL-ended, may be NULL). */
static const char **
bth_env(const char *user, const char *link, const char *code,
        const char *room, const char *const *more)
{
	static char e_base[128], e_idp[128], e_user[64], e_link[128],
	    e_code[32], e_room[320], e_pport[64];
	static const char *env[32];
	/* Copies of the extra entries: the table outlives the caller's
	 * locals it would otherwise point at. */
	static char e_more[16][1024];
	size_t n = 0;

	snprintf(e_base, sizeof(e_base), "RG_BASE=%s", B.base);
	snprintf(e_idp, sizeof(e_idp), "RG_IDP_BASE=%s", B.idp_base);
	snprintf(e_user, sizeof(e_user), "RG_USER=%s", user);
	snprintf(e_link, sizeof(e_link), "RG_LINK=%s", link);
	snprintf(e_code, sizeof(e_code), "RG_CODE=%s", code);
	snprintf(e_room, sizeof(e_room), "RG_ROOM=%s", room ? room : "");
	snprintf(e_pport, sizeof(e_pport), "RG_PLATFORM_PORT=%d",
	         B.platform_port);
	env[n++] = e_base;
	env[n++] = e_idp;
	env[n++] = e_user;
	env[n++] = e_link;
	env[n++] = e_code;
	env[n++] = e_room;
	env[n++] = e_pport;
	env[n++] = "RG_PASSWORD=" STH_PASSWORD;
	if (B.rs256) {
		env[n++] = "RG_JWT_ALG=RS256";
	} else {
		env[n++] = "RG_JWT_ALG=HS256";
		env[n++] = "RG_JWT_SECRET=" BTH_SECRET;
	}
	env[n++] = "RG_JWT_ISS=" BTH_ISSUER;
	env[n++] = "RG_JWT_AUD=" BTH_AUDIENCE;
	env[n++] = "RG_JWT_SUB=" BTH_SUBJECT;
	env[n++] = "RG_JWT_TTL=" BTH_TTL;
	env[n++] = "RG_MAX_FAILURES=" BTH_MAX_FAILURES;
	for (size_t i = 0; more != NULL && more[i] != NULL && i < 16 && n < 31;
	     i++) {
		assert_true(strlen(more[i]) < sizeof(e_more[i]));
		memcpy(e_more[i], more[i], strlen(more[i]) + 1);
		env[n++] = e_more[i];
	}
	env[n] = NULL;
	return env;
}

/* One text value of sql ($1 = param) into B.value ("" when no row or
 * NULL), so a failing assertion leaks nothing. */
static const char *
bth_value(const char *sql, const char *param)
{
	char *v = sth_pg_value(B.pg, sql, param);

	snprintf(B.value, sizeof(B.value), "%s", v ? v : "");
	free(v);
	return B.value;
}

/* "outcome:reason" of every admission audit record of the meeting, in
 * order, space-separated. */
static const char *
bth_audit_reasons(const char *meeting_id)
{
	return bth_value("SELECT string_agg(outcome || ':' || reason, ' ' "
	                 "ORDER BY seq) FROM audit_log WHERE meeting_id = "
	                 "$1::uuid AND event_type = 'admission'",
	                 meeting_id);
}

#endif
