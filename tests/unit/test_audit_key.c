/* Unit tests: the audit signing key files (server/audit_key.h) -- keygen
 * writes a 0600 secret file and a public file whose kid belongs to the
 * key, both load back to the same key, signatures verify and fail on any
 * change, and malformed, edited or too-open files are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "server/audit_key.h"

static char dir[] = "/tmp/rg-audit-key-XXXXXX";

static const char *
path_of(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void
write_text(const char *path, const char *text, mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void
keygen_load_sign_verify(void **state)
{
	struct gate_audit_key k;
	unsigned char pk[32], sig[64];
	char kid[17], kid2[17], kid3[17], want[17], err[512];
	const char *sec = path_of("k1"), *pub = path_of("k1.pub");
	static const unsigned char msg[] = "checkpoint body";
	struct stat st;

	(void)state;
	assert_int_equal(gate_audit_key_generate(sec, pub, kid, err,
						 sizeof(err)),
			 0);
	assert_int_equal(strlen(kid), 16);
	assert_int_equal(stat(sec, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	assert_int_equal(gate_audit_key_load(sec, &k, err, sizeof(err)), 0);
	assert_string_equal(k.kid, kid);
	gate_audit_kid(k.pk, want);
	assert_string_equal(want, kid);

	assert_int_equal(gate_audit_key_pub_load(pub, pk, kid2, err,
						 sizeof(err)),
			 0);
	assert_string_equal(kid2, kid);
	assert_memory_equal(pk, k.pk, 32);
	/* A secret file also yields its public half. */
	assert_int_equal(gate_audit_key_pub_load(sec, pk, kid3, err,
						 sizeof(err)),
			 0);
	assert_string_equal(kid3, kid);

	gate_audit_sign(&k, msg, sizeof(msg) - 1, sig);
	assert_int_equal(gate_audit_verify(pk, msg, sizeof(msg) - 1, sig), 0);
	/* Any change to message or signature fails. */
	assert_int_equal(gate_audit_verify(pk, msg, sizeof(msg) - 2, sig), -1);
	sig[10] ^= 1;
	assert_int_equal(gate_audit_verify(pk, msg, sizeof(msg) - 1, sig), -1);

	gate_audit_key_wipe(&k);
	assert_true(sodium_is_zero(k.sk, sizeof(k.sk)));

	/* Never overwritten. */
	assert_int_equal(gate_audit_key_generate(sec, path_of("other.pub"),
						 kid, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "already exists"));
	assert_int_equal(access(path_of("other.pub"), F_OK), -1);
}

static void
refuses_bad_files(void **state)
{
	struct gate_audit_key k;
	unsigned char pk[32];
	char kid[17], err[512], text[512], hex[65];
	const char *p = path_of("bad");
	unsigned char seed[32] = {1, 2, 3};
	unsigned char epk[32], esk[64];
	char ekid[17];

	(void)state;
	crypto_sign_seed_keypair(epk, esk, seed);
	gate_audit_kid(epk, ekid);
	sodium_bin2hex(hex, sizeof(hex), seed, sizeof(seed));

	/* The good file, for reference. */
	snprintf(text, sizeof(text), "roomgate-audit-key-v1\nkid %s\nseed %s\n",
		 ekid, hex);
	write_text(p, text, 0600);
	assert_int_equal(gate_audit_key_load(p, &k, err, sizeof(err)), 0);
	assert_memory_equal(k.pk, epk, 32);

	/* Readable by others. */
	write_text(p, text, 0644);
	assert_int_equal(gate_audit_key_load(p, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));

	/* A kid that is not the key's. */
	snprintf(text, sizeof(text),
		 "roomgate-audit-key-v1\nkid 0123456789abcdef\nseed %s\n", hex);
	write_text(p, text, 0600);
	assert_int_equal(gate_audit_key_load(p, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not belong"));

	/* Short seed, extra line, missing newline, upper-case kid. */
	snprintf(text, sizeof(text), "roomgate-audit-key-v1\nkid %s\nseed %.62s\n",
		 ekid, hex);
	write_text(p, text, 0600);
	assert_int_equal(gate_audit_key_load(p, &k, err, sizeof(err)), -1);
	snprintf(text, sizeof(text),
		 "roomgate-audit-key-v1\nkid %s\nseed %s\n\n", ekid, hex);
	write_text(p, text, 0600);
	assert_int_equal(gate_audit_key_load(p, &k, err, sizeof(err)), -1);
	snprintf(text, sizeof(text), "roomgate-audit-key-v1\nkid %s\nseed %s",
		 ekid, hex);
	write_text(p, text, 0600);
	assert_int_equal(gate_audit_key_load(p, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "roomgate-audit-key-v1"));

	/* A public file is no signing key. */
	gate_audit_pub_text(epk, text);
	write_text(p, text, 0644);
	assert_int_equal(gate_audit_key_load(p, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "only a public key"));
	assert_int_equal(gate_audit_key_pub_load(p, pk, kid, err, sizeof(err)),
			 0);
	assert_memory_equal(pk, epk, 32);
	/* ... and an edited one is refused. */
	text[strlen(text) - 2] = text[strlen(text) - 2] == '0' ? '1' : '0';
	write_text(p, text, 0644);
	assert_int_equal(gate_audit_key_pub_load(p, pk, kid, err, sizeof(err)),
			 -1);

	assert_int_equal(gate_audit_key_load(path_of("missing"), &k, err,
					     sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "roomgate audit keygen"));
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1; /* NOLINT(cert-env33-c): a fixed rm -rf of the test's own mkdtemp dir */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keygen_load_sign_verify),
		cmocka_unit_test(refuses_bad_files),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
