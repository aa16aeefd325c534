/*
 * Integration: the roomgate binary's commands and their messages, run as a
 * person would run them. Migrations against fresh databases of the
 * harness's PostgreSQL, twice and concurrently.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/th.h"

static char out[16384];

static int
rg(const char *a1, const char *a2, const char *a3, const char *a4,
   const char *const *env)
{
	const char *argv[] = {th_env("RG_TEST_BIN"), a1, a2, a3, a4, NULL};

	return th_run_capture(argv, env, out, sizeof(out));
}

static void
version_and_help(void **state)
{
	static const char *const cmds[] = {"serve", "migrate", "keygen",
					   "version"};

	(void)state;
	assert_int_equal(rg("version", NULL, NULL, NULL, NULL), 0);
	assert_non_null(strstr(out, "roomgate "));
	assert_non_null(strstr(out, "schema version"));
	assert_int_equal(rg("--help", NULL, NULL, NULL, NULL), 0);
	assert_non_null(strstr(out, "commands:"));
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char want[64];

		assert_int_equal(rg(cmds[i], "--help", NULL, NULL, NULL), 0);
		snprintf(want, sizeof(want), "usage: roomgate %s", cmds[i]);
		assert_non_null(strstr(out, want));
	}
	assert_int_equal(rg("help", "config", NULL, NULL, NULL), 0);
	assert_non_null(strstr(out, "[database]"));
	assert_non_null(strstr(out, "acquire_timeout_ms"));
	assert_int_equal(rg("frobnicate", NULL, NULL, NULL, NULL), 2);
	assert_non_null(strstr(out, "unknown command \"frobnicate\""));
}

static void
config_errors_are_specific(void **state)
{
	const char *bad, *env[] = {"ROOMGATE_CONFIG=", NULL};
	char missing[600];

	(void)state;
	assert_int_equal(rg("serve", NULL, NULL, NULL, env), 1);
	assert_non_null(strstr(out, "no config file: pass -c FILE or set "
				    "ROOMGATE_CONFIG"));

	snprintf(missing, sizeof(missing), "%s/absent.ini",
		 th_env("RG_TEST_TMP"));
	assert_int_equal(rg("serve", "-c", missing, NULL, NULL), 1);
	assert_non_null(strstr(out, "cannot read config file"));
	assert_non_null(strstr(out, "absent.ini: No such file or directory"));

	bad = th_config("typo.ini", "[server]\nprot = 8080\n");
	assert_int_equal(rg("serve", "-c", bad, NULL, NULL), 1);
	assert_non_null(strstr(out, "typo.ini:10: [server] prot: unknown key"));

	bad = th_config("badval.ini", "[ldap]\nop_timeout_ms = soon\n");
	assert_int_equal(rg("-c", bad, "serve", NULL, NULL), 1);
	assert_non_null(strstr(out, "[ldap] op_timeout_ms = \"soon\": must be "
				    "an integer from 1 to 600000"));
}

static void
keygen_makes_private_file_once(void **state)
{
	char path[600];
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/cli.keys", th_env("RG_TEST_TMP"));
	assert_int_equal(rg("keygen", "-o", path, NULL, NULL), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(rg("keygen", "-o", path, NULL, NULL), 1);
	assert_non_null(strstr(out, "refusing to overwrite"));
	assert_int_equal(rg("keygen", NULL, NULL, NULL, NULL), 2);
}

static void
serve_refuses_readable_keys(void **state)
{
	char keys[600], extra[800];
	const char *cfg;

	(void)state;
	snprintf(keys, sizeof(keys), "%s/open.keys", th_env("RG_TEST_TMP"));
	assert_int_equal(rg("keygen", "-o", keys, NULL, NULL), 0);
	assert_int_equal(chmod(keys, 0644), 0);
	cfg = th_config("openkeys.ini", NULL);
	snprintf(extra, sizeof(extra), "ROOMGATE_KEYS_FILE=%s", keys);
	{
		const char *env[] = {extra, NULL};

		assert_int_equal(rg("serve", "-c", cfg, NULL, env), 1);
	}
	assert_non_null(strstr(out, "chmod 600"));
}

/* A fresh database owned by the application role; returns its URL. */
static const char *
fresh_db(const char *name)
{
	static char u[1024];
	const char *app = th_env("RG_TEST_PG_URL");
	const char *slash = strrchr(app, '/');

	assert_int_equal(th_sh("psql -q -v ON_ERROR_STOP=1 '%s' -c 'DROP "
			       "DATABASE IF EXISTS %s' -c 'CREATE DATABASE %s "
			       "OWNER roomgate' >/dev/null",
			       th_env("RG_TEST_PG_ADMIN_URL"), name, name),
			 0);
	assert_non_null(slash);
	snprintf(u, sizeof(u), "ROOMGATE_DATABASE_URL=%.*s/%s",
		 (int)(slash - app), app, name);
	return u;
}

static void
migrate_twice_applies_once(void **state)
{
	const char *env[] = {NULL, NULL};
	const char *cfg = th_config("mig.ini", NULL);

	(void)state;
	/* the config's url is overridden by the environment */
	env[0] = fresh_db("rg_cli_mig");
	assert_int_equal(rg("migrate", "-c", cfg, NULL, env), 0);
	assert_non_null(strstr(out, "applied "));
	assert_null(strstr(out, "applied 0 migrations"));
	assert_int_equal(rg("migrate", "-c", cfg, NULL, env), 0);
	assert_non_null(strstr(out, "applied 0 migrations"));
}

static void
concurrent_migrations_both_succeed(void **state)
{
	const char *cfg = th_config("migc.ini", NULL);
	const char *url = fresh_db("rg_cli_migc");
	pid_t pids[2];
	int st;

	(void)state;
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char *const argv[] = {(char *)th_env("RG_TEST_BIN"),
					      "migrate", "-c", (char *)cfg,
					      NULL};

			putenv((char *)url);
			if (freopen("/dev/null", "w", stdout) == NULL)
				_exit(127);
			execv(argv[0], argv);
			_exit(127);
		}
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	{
		const char *env[] = {url, NULL};

		assert_int_equal(rg("migrate", "-c", cfg, NULL, env), 0);
		assert_non_null(strstr(out, "applied 0 migrations"));
	}
}

static void
second_server_on_same_port_fails_clearly(void **state)
{
	struct th_server a;
	const char *cfg = th_config("port.ini", NULL);
	int port = th_free_port();
	char penv[64];

	(void)state;
	th_server_start(&a, cfg, port);
	snprintf(penv, sizeof(penv), "ROOMGATE_SERVER_PORT=%d", port);
	{
		const char *env[] = {penv, NULL};

		assert_int_equal(rg("serve", "-c", cfg, NULL, env), 1);
	}
	th_server_stop(&a);
	assert_non_null(strstr(out, "cannot listen on 127.0.0.1 port"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(version_and_help),
		cmocka_unit_test(config_errors_are_specific),
		cmocka_unit_test(keygen_makes_private_file_once),
		cmocka_unit_test(serve_refuses_readable_keys),
		cmocka_unit_test(migrate_twice_applies_once),
		cmocka_unit_test(concurrent_migrations_both_succeed),
		cmocka_unit_test(second_server_on_same_port_fails_clearly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
