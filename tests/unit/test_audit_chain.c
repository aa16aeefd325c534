/* Unit tests: the audit chain's canonical encoding (server/audit_seal.h)
 * recomputed here from the README's description with plain SHA-256 --
 * field order, u32 big-endian lengths, 0xFFFFFFFF for NULL (so NULL and ""
 * differ), the link hash over prev || pos || seq || content -- and the
 * checkpoint text: written, parsed back, and any other spelling refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "server/audit_seal.h"

static const char *const sample[DB_AUDIT_NFIELDS] = {
	"2026-11-28T06:00:00.123456Z", "join", "deny", "wrong_code", "alice",
	"https://idp.example.org/saml", "5f0c6f1e-0b7e-4c1a-9a53-3c8a1f0e2b44",
	NULL, "10.0.0.7", "203.0.113.9, 10.0.0.1", "Mozilla/5.0", "abc123",
	"node-a", "f", "t", "{\"n\": 1}",
};

/* The README's recipe, written out independently. */
static void
reference_content(const char *const f[], unsigned char out[32])
{
	unsigned char buf[4096];
	size_t n = 0;
	const char dom[] = "roomgate-audit-record-v1\n";

	memcpy(buf, dom, sizeof(dom) - 1);
	n = sizeof(dom) - 1;
	for (int i = 0; i < DB_AUDIT_NFIELDS; i++) {
		uint32_t len = f[i] ? (uint32_t)strlen(f[i]) : 0xFFFFFFFFu;

		buf[n++] = (unsigned char)(len >> 24);
		buf[n++] = (unsigned char)(len >> 16);
		buf[n++] = (unsigned char)(len >> 8);
		buf[n++] = (unsigned char)len;
		if (f[i] != NULL) {
			memcpy(buf + n, f[i], strlen(f[i]));
			n += strlen(f[i]);
		}
	}
	crypto_hash_sha256(out, buf, n);
}

static void
lens_of(const char *const f[], size_t len[])
{
	for (int i = 0; i < DB_AUDIT_NFIELDS; i++)
		len[i] = f[i] ? strlen(f[i]) : 0;
}

static void
content_hash_is_the_documented_one(void **state)
{
	const char *f[DB_AUDIT_NFIELDS];
	size_t len[DB_AUDIT_NFIELDS];
	unsigned char a[32], b[32], c[32];

	(void)state;
	memcpy(f, sample, sizeof(f));
	lens_of(f, len);
	gate_audit_content_hash(f, len, a);
	reference_content(f, b);
	assert_memory_equal(a, b, 32);

	/* NULL and "" are different records. */
	f[7] = "";
	lens_of(f, len);
	gate_audit_content_hash(f, len, c);
	assert_memory_not_equal(a, c, 32);
	reference_content(f, b);
	assert_memory_equal(c, b, 32);

	/* Moving bytes between fields changes the hash (lengths count). */
	memcpy(f, sample, sizeof(f));
	f[1] = "joind";
	f[2] = "eny";
	lens_of(f, len);
	gate_audit_content_hash(f, len, c);
	assert_memory_not_equal(a, c, 32);
}

static void
link_hash_is_the_documented_one(void **state)
{
	unsigned char prev[32], content[32], got[32], want[32];
	unsigned char buf[200];
	const char dom[] = "roomgate-audit-link-v1\n";
	size_t n;

	(void)state;
	for (int i = 0; i < 32; i++) {
		prev[i] = (unsigned char)i;
		content[i] = (unsigned char)(0xA0 + i);
	}
	gate_audit_link_hash(prev, 258, 0x0102030405LL, content, got);
	memcpy(buf, dom, sizeof(dom) - 1);
	n = sizeof(dom) - 1;
	memcpy(buf + n, prev, 32);
	n += 32;
	memcpy(buf + n, "\0\0\0\0\0\0\x01\x02", 8); /* NOLINT(bugprone-not-null-terminated-result): raw bytes */
	n += 8;
	memcpy(buf + n, "\0\0\0\x01\x02\x03\x04\x05", 8); /* NOLINT(bugprone-not-null-terminated-result): raw bytes */
	n += 8;
	memcpy(buf + n, content, 32);
	n += 32;
	crypto_hash_sha256(want, buf, n);
	assert_memory_equal(got, want, 32);
	/* pos and seq both count. */
	gate_audit_link_hash(prev, 259, 0x0102030405LL, content, want);
	assert_memory_not_equal(got, want, 32);
}

static void
checkpoint_text_round_trips(void **state)
{
	struct gate_audit_ckpt c, d;
	char body[512], bad[600];
	int n;

	(void)state;
	memset(&c, 0, sizeof(c));
	memcpy(c.kid, "00112233445566ff", 17);
	c.last_seq = 100003;
	c.count = 100000;
	for (int i = 0; i < 32; i++)
		c.last_hash[i] = (unsigned char)(i * 7);
	snprintf(c.time, sizeof(c.time), "2026-11-28T06:00:01.000002Z");
	n = gate_audit_ckpt_body(&c, body, sizeof(body));
	assert_true(n > 0);
	assert_string_equal(
		body, "roomgate-audit-checkpoint-v1\n"
		      "kid 00112233445566ff\nlast_seq 100003\ncount 100000\n"
		      "last_hash 00070e151c232a31383f464d545b626970777e858c939a"
		      "a1a8afb6bdc4cbd2d9\ntime 2026-11-28T06:00:01.000002Z\n");
	assert_int_equal(gate_audit_ckpt_parse(body, (size_t)n, &d), 0);
	assert_memory_equal(&c, &d, sizeof(c));

	/* Another spelling of the same numbers is not accepted. */
	snprintf(bad, sizeof(bad), "%s", body);
	memcpy(strstr(bad, "count 100000"), "count 0100000", 13); /* NOLINT(bugprone-not-null-terminated-result): overwrites inside bad */
	assert_int_equal(gate_audit_ckpt_parse(bad, strlen(bad), &d), -1);
	snprintf(bad, sizeof(bad), "%s\n", body);
	assert_int_equal(gate_audit_ckpt_parse(bad, strlen(bad), &d), -1);
	assert_int_equal(gate_audit_ckpt_parse(body, (size_t)n - 1, &d), -1);
	assert_int_equal(gate_audit_ckpt_parse("x", 1, &d), -1);
	/* Too small a buffer is refused, not cut. */
	assert_int_equal(gate_audit_ckpt_body(&c, body, 50), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(content_hash_is_the_documented_one),
		cmocka_unit_test(link_hash_is_the_documented_one),
		cmocka_unit_test(checkpoint_text_round_trips),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
