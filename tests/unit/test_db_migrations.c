/*
 * Unit tests, no server: the migrations built into the binary, and
 * db/embed-migrations.sh, which builds them (ordering, refusing malformed
 * names, duplicate versions, empty files and NUL bytes; its output compiles,
 * also with no migrations at all).
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

#include "db/db_int.h"
#include "tests/lib/th.h"

static char dir[512];

static void
embedded_list_is_sane(void **state)
{
	char prefix[16], hex[65];
	size_t i;

	(void)state;
	assert_true(db_migrations_count >= 1);
	assert_int_equal(db_migrations[0].version, 1);
	assert_string_equal(db_migrations[0].name, "0001_init");
	for (i = 0; i < db_migrations_count; i++) {
		const struct db_migration *m = &db_migrations[i];

		snprintf(prefix, sizeof(prefix), "%04d_", m->version);
		assert_memory_equal(m->name, prefix, 5);
		assert_int_equal(strlen(m->sql), m->sql_len);
		if (i > 0)
			assert_true(m->version > db_migrations[i - 1].version);
		db_migration_checksum(m, hex);
		assert_int_equal(strspn(hex, "0123456789abcdef"), 64);
	}
	assert_int_equal(db_migrations_latest(),
	                 db_migrations[db_migrations_count - 1].version);
	/* the SQL text made it through od/awk byte for byte */
	assert_non_null(
	    strstr(db_migrations[0].sql, "CREATE TABLE audit_log ("));
	assert_memory_equal(db_migrations[0].sql, "-- 0001_init", 12);
	assert_int_equal(db_migrations[0].sql[db_migrations[0].sql_len - 1],
	                 '\n');
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/embed", th_env("RG_TEST_TMP"));
	th_sh("rm -rf '%s'", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	return 0;
}

static void
put(const char *name, const char *text, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Runs the script on files in dir; output in dir/out.c, stderr in
 * dir/err. Returns its exit status. */
static int
embed(const char *files)
{
	return th_sh("cd '%s' && sh '%s/db/embed-migrations.sh' %s >out.c "
	             "2>err",
	             dir, th_env("RG_TEST_ROOT"), files);
}

static int
file_has(const char *name, const char *needle)
{
	return th_sh("grep -qF -e '%s' '%s/%s'", needle, dir, name) == 0;
}

static void
script_sorts_and_embeds(void **state)
{
	(void)state;
	put("0010_later.sql", "SELECT 10;\n", 11);
	put("0002_second.sql", "SELECT 'a\"b\\\\c';\n", 17);
	put("0001_first.sql", "S\xc3\xa9", 3);
	assert_int_equal(embed("0010_later.sql 0002_second.sql "
	                       "0001_first.sql"),
	                 0);
	/* entries in version order, whatever the argument order */
	assert_int_equal(th_sh("grep -o '{ [0-9]*, \"[0-9a-z_]*\"' '%s/out.c' "
	                       "| tr -d '{\" ' | tr '\\n' ' ' | grep -qx "
	                       "'1,0001_first 2,0002_second 10,0010_later '",
	                       dir),
	                 0);
	assert_true(file_has("out.c", "db_migrations_count = 3;"));
	/* bytes as hex, UTF-8 and quotes untouched */
	assert_true(file_has("out.c", "0x53,0xc3,0xa9,0x00"));
	/* the output compiles against db_int.h */
	assert_int_equal(th_sh("cd '%s' && cc -std=c11 -Wall -Wextra -Werror "
	                       "-fsyntax-only -I'%s' $(pkg-config --cflags "
	                       "libpq) out.c",
	                       dir, th_env("RG_TEST_ROOT")),
	                 0);
}

static void
script_accepts_no_migrations(void **state)
{
	(void)state;
	assert_int_equal(embed(""), 0);
	assert_true(file_has("out.c", "db_migrations_count = 0;"));
	assert_int_equal(th_sh("cd '%s' && cc -std=c11 -Wall -Wextra -Werror "
	                       "-fsyntax-only -I'%s' $(pkg-config --cflags "
	                       "libpq) out.c",
	                       dir, th_env("RG_TEST_ROOT")),
	                 0);
}

static void
script_refuses_bad_input(void **state)
{
	static const char *const bad_names[] = {
	    "1_short.sql", "0001-dash.sql",  "0001_Upper.sql", "init.sql",
	    "0001_.sql",   "00001_five.sql", "0001_x.sql.bak",
	};
	char name[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		put(bad_names[i], "SELECT 1;\n", 10);
		snprintf(name, sizeof(name), "'%s'", bad_names[i]);
		if (embed(name) == 0)
			fail_msg("accepted the file name %s", bad_names[i]);
		assert_true(file_has("err", "must be named NNNN_name.sql"));
	}

	put("0003_a.sql", "SELECT 1;\n", 10);
	assert_int_equal(th_sh("mkdir -p '%s/other'", dir), 0);
	put("other/0003_b.sql", "SELECT 2;\n", 10);
	assert_int_not_equal(embed("0003_a.sql other/0003_b.sql"), 0);
	assert_true(file_has("err", "version 0003 is used by both"));

	put("0000_zero.sql", "SELECT 1;\n", 10);
	assert_int_not_equal(embed("0000_zero.sql"), 0);
	assert_true(file_has("err", "0000 is reserved"));

	put("0004_empty.sql", "", 0);
	assert_int_not_equal(embed("0004_empty.sql"), 0);
	assert_true(file_has("err", "empty"));

	put("0005_nul.sql", "SELECT 1;\0DROP TABLE x;\n", 24);
	assert_int_not_equal(embed("0005_nul.sql"), 0);
	assert_true(file_has("err", "NUL byte"));

	assert_int_not_equal(embed("0006_missing.sql"), 0);
	assert_true(file_has("err", "cannot read"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(embedded_list_is_sane),
	    cmocka_unit_test_setup(script_sorts_and_embeds, setup),
	    cmocka_unit_test_setup(script_accepts_no_migrations, setup),
	    cmocka_unit_test_setup(script_refuses_bad_input, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
