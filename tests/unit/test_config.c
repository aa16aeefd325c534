/* Unit tests: configuration parsing, environment overrides, messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"

static char dir[] = "/tmp/rgcfg.XXXXXX";

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1; /* NOLINT(cert-env33-c): a fixed rm -rf of the test's own mkdtemp dir */
}

static const char *
write_ini(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static char *const no_env[] = {NULL};

static void
defaults_without_file(void **state)
{
	struct gate_config c;
	char err[512];

	(void)state;
	assert_int_equal(gate_config_load(&c, NULL, no_env, err, sizeof(err)),
			 0);
	assert_int_equal(c.port, 8080);
	assert_string_equal(c.listen, "127.0.0.1");
	assert_int_equal(c.db_pool_size, 8);
	assert_int_equal(c.ldap_tls, DIR_TLS_NONE);
	assert_int_equal(c.log_level, GATE_LOG_INFO);
	assert_null(c.db_url);
	gate_config_free(&c);
}

static void
full_file_is_read(void **state)
{
	struct gate_config c;
	char err[512];
	const char *p = write_ini(
		"ok.ini", "; comment\n[server]\nport = 9090\nthreads = 4\n"
			  "log_level = debug\n\n[database]\n"
			  "url = postgresql://u@127.0.0.1/db\n"
			  "migrate_on_start = yes\n[ldap]\n"
			  "uri = ldaps://a.example ldaps://b.example\n"
			  "tls = ldaps\nbind_dn = cn=x\nbind_password = s3cret\n"
			  "[keys]\nfile = /etc/roomgate/keys\n");

	(void)state;
	assert_int_equal(gate_config_load(&c, p, no_env, err, sizeof(err)), 0);
	assert_int_equal(c.port, 9090);
	assert_int_equal(c.threads, 4);
	assert_int_equal(c.log_level, GATE_LOG_DEBUG);
	assert_int_equal(c.db_migrate_on_start, 1);
	assert_int_equal(c.ldap_tls, DIR_TLS_LDAPS);
	assert_string_equal(c.ldap_uri, "ldaps://a.example ldaps://b.example");
	assert_string_equal(c.ldap_bind_password, "s3cret");
	assert_int_equal(gate_config_check_serve(&c, err, sizeof(err)), 0);
	gate_config_free(&c);
}

static void
unknown_key_names_file_line_and_choices(void **state)
{
	struct gate_config c;
	char err[512];
	const char *p = write_ini("uk.ini", "[server]\nport = 1\n\nprot = 2\n");

	(void)state;
	assert_int_not_equal(gate_config_load(&c, p, no_env, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "uk.ini:4:"));
	assert_non_null(strstr(err, "[server] prot: unknown key"));
	assert_non_null(strstr(err, "keys in [server] are listen, port"));
}

static void
unknown_section_is_rejected(void **state)
{
	struct gate_config c;
	char err[512];
	const char *p = write_ini("us.ini", "[sever]\nport = 1\n");

	(void)state;
	assert_int_not_equal(gate_config_load(&c, p, no_env, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "us.ini:2: unknown section [sever]"));
	assert_non_null(strstr(err, "[server]"));
}

static void
bad_values_say_what_is_allowed(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"[server]\nport = 99999\n",
		 "bad.ini:2: [server] port = \"99999\": must be an integer "
		 "from 1 to 65535"},
		{"[server]\nport = 80x\n", "must be an integer from 1 to 65535"},
		{"[server]\nport =\n", "must be an integer from 1 to 65535"},
		{"[server]\nthreads = -1\n", "must be an integer from 1 to 256"},
		{"[database]\nmigrate_on_start = maybe\n",
		 "must be true or false"},
		{"[ldap]\ntls = ssl\n", "must be one of none, starttls, ldaps"},
		{"[server]\nlog_level = loud\n",
		 "must be one of debug, info, warn, error"},
		{"[server]\npublic_url = ftp://x\n",
		 "must start with http:// or https://"},
		{"[server]\nport = 1\nport = 2\n", "key given twice"},
		{"[server]\nthis line has no equals sign\n",
		 "bad.ini:2: not an INI line"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gate_config c;
		char err[512];
		const char *p = write_ini("bad.ini", cases[i].text);

		assert_int_not_equal(
			gate_config_load(&c, p, no_env, err, sizeof(err)), 0);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err,
				 cases[i].want);
	}
}

static void
missing_file_is_reported(void **state)
{
	struct gate_config c;
	char err[512], p[300];

	(void)state;
	snprintf(p, sizeof(p), "%s/nope.ini", dir);
	assert_int_not_equal(gate_config_load(&c, p, no_env, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "cannot read config file"));
	assert_non_null(strstr(err, "nope.ini"));
	assert_non_null(strstr(err, "No such file or directory"));
}

static void
environment_overrides_file(void **state)
{
	struct gate_config c;
	char err[512];
	char *env[] = {"PATH=/bin", "ROOMGATE_SERVER_PORT=7070",
		       "ROOMGATE_LDAP_BIND_DN=cn=env",
		       "ROOMGATE_CONFIG=/ignored", NULL};
	const char *p = write_ini("env.ini", "[server]\nport = 9090\n");

	(void)state;
	assert_int_equal(gate_config_load(&c, p, env, err, sizeof(err)), 0);
	assert_int_equal(c.port, 7070);
	assert_string_equal(c.ldap_bind_dn, "cn=env");
	gate_config_free(&c);
}

static void
environment_errors_name_the_variable(void **state)
{
	struct gate_config c;
	char err[512];
	char *typo[] = {"ROOMGATE_SERVR_PORT=1", NULL};
	char *bad[] = {"ROOMGATE_SERVER_PORT=0", NULL};

	(void)state;
	assert_int_not_equal(gate_config_load(&c, NULL, typo, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "ROOMGATE_SERVR_PORT is not a roomgate "
				    "setting"));
	assert_int_not_equal(gate_config_load(&c, NULL, bad, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "environment ROOMGATE_SERVER_PORT"));
	assert_non_null(strstr(err, "from 1 to 65535"));
}

static void
secrets_are_never_echoed(void **state)
{
	struct gate_config c;
	char err[512];
	char *env[] = {"ROOMGATE_LDAP_BIND_PASSWORD=hunter2\x01x", NULL};

	(void)state;
	assert_int_not_equal(gate_config_load(&c, NULL, env, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "control character"));
	assert_null(strstr(err, "hunter2"));
}

static void
password_file_is_read_and_exclusive(void **state)
{
	struct gate_config c;
	char err[512], pwpath[300], ini[700];
	FILE *f;

	(void)state;
	snprintf(pwpath, sizeof(pwpath), "%s/pw", dir);
	f = fopen(pwpath, "w");
	assert_non_null(f);
	fputs("from-file\n", f);
	fclose(f);
	snprintf(ini, sizeof(ini), "[ldap]\nbind_password_file = %s\n", pwpath);
	assert_int_equal(gate_config_load(&c, write_ini("pw.ini", ini), no_env,
					  err, sizeof(err)),
			 0);
	assert_string_equal(c.ldap_bind_password, "from-file");
	gate_config_free(&c);

	snprintf(ini, sizeof(ini),
		 "[ldap]\nbind_password = x\nbind_password_file = %s\n",
		 pwpath);
	assert_int_not_equal(gate_config_load(&c, write_ini("pw2.ini", ini),
					      no_env, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "both set"));
}

static void
serve_requires_its_keys(void **state)
{
	struct gate_config c;
	char err[512];
	const char *p = write_ini("req.ini", "[ldap]\nuri = ldap://x\n");

	(void)state;
	assert_int_equal(gate_config_load(&c, p, no_env, err, sizeof(err)), 0);
	assert_int_not_equal(gate_config_check_serve(&c, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "[database] url is required"));
	assert_non_null(strstr(err, "ROOMGATE_DATABASE_URL"));
	gate_config_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_without_file),
		cmocka_unit_test(full_file_is_read),
		cmocka_unit_test(unknown_key_names_file_line_and_choices),
		cmocka_unit_test(unknown_section_is_rejected),
		cmocka_unit_test(bad_values_say_what_is_allowed),
		cmocka_unit_test(missing_file_is_reported),
		cmocka_unit_test(environment_overrides_file),
		cmocka_unit_test(environment_errors_name_the_variable),
		cmocka_unit_test(secrets_are_never_echoed),
		cmocka_unit_test(password_file_is_read_and_exclusive),
		cmocka_unit_test(serve_requires_its_keys),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
