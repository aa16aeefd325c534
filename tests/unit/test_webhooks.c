/* Unit tests: the webhook signature (HMAC-SHA-256 over timestamp "." body,
 * checked by a receiver with a replay window) and the retry backoff
 * (exponential, capped, full jitter). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server/webhooks.h"

static const unsigned char key[] = "webhook-unit-test-secret-0123456789";
#define KEYLEN (sizeof(key) - 1)

/* The signature is HMAC-SHA-256 of exactly "<ts>.<body>", in lowercase
 * hex after "v1=": computed here in one piece for comparison. */
static void
signature_is_hmac_of_ts_dot_body(void **state)
{
	const char body[] = "{\"id\":7,\"type\":\"code.rotated\"}";
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char msg[128], hex[65], want[80], got[GATE_WEBHOOK_SIG_LEN];
	crypto_auth_hmacsha256_state st;
	int n;

	(void)state;
	n = snprintf(msg, sizeof(msg), "1700000000.%s", body);
	crypto_auth_hmacsha256_init(&st, key, KEYLEN);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg,
	                              (unsigned long long)n);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	snprintf(want, sizeof(want), "v1=%s", hex);

	assert_int_equal(gate_webhook_sign(key, KEYLEN, 1700000000LL, body,
	                                   strlen(body), got),
	                 0);
	assert_string_equal(got, want);
	assert_int_equal(strlen(got), GATE_WEBHOOK_SIG_LEN - 1);
	/* Another timestamp, another signature. */
	assert_int_equal(gate_webhook_sign(key, KEYLEN, 1700000001LL, body,
	                                   strlen(body), got),
	                 0);
	assert_string_not_equal(got, want);
	/* Bad input is refused, not signed. */
	assert_int_equal(gate_webhook_sign(NULL, 0, 1, body, 3, got), -1);
	assert_int_equal(gate_webhook_sign(key, KEYLEN, -1, body, 3, got), -1);
}

/* Secrets of any length work (libsodium's init takes any key length):
 * a 4-byte key against the one-piece computation; and RFC 4231 test case 2
 * pins libsodium's HMAC-SHA-256 itself down. */
static void
signature_works_with_any_key_length(void **state)
{
	const unsigned char jefe[] = "Jefe";
	const char body[] = "what do ya want for nothing?";
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char hex[65], got[GATE_WEBHOOK_SIG_LEN];
	crypto_auth_hmacsha256_state st;

	(void)state;
	crypto_auth_hmacsha256_init(&st, jefe, 4);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)"0.", 2);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body,
	                              strlen(body));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	assert_int_equal(gate_webhook_sign(jefe, 4, 0, body, strlen(body), got),
	                 0);
	assert_string_equal(got + 3, hex);
	assert_memory_equal(got, "v1=", 3);

	/* And the RFC's own vector, to pin libsodium's HMAC down. */
	crypto_auth_hmacsha256_init(&st, jefe, 4);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body,
	                              strlen(body));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c7"
	                         "5a003f089d2739839dec58b964ec3843");
}

static void
verify_accepts_fresh_and_rejects_the_rest(void **state)
{
	const char body[] = "{\"id\":42,\"data\":{}}";
	const long long now = 1800000000LL;
	char sig[GATE_WEBHOOK_SIG_LEN], ts[24], bad[GATE_WEBHOOK_SIG_LEN];

	(void)state;
	assert_int_equal(
	    gate_webhook_sign(key, KEYLEN, now - 10, body, strlen(body), sig),
	    0);
	snprintf(ts, sizeof(ts), "%lld", now - 10);
	assert_int_equal(gate_webhook_verify(key, KEYLEN, ts, sig, body,
	                                     strlen(body), now, 300),
	                 GATE_WH_OK);
	/* Body changed by one byte. */
	assert_int_equal(gate_webhook_verify(key, KEYLEN, ts, sig,
	                                     "{\"id\":43,\"data\":{}}",
	                                     strlen(body), now, 300),
	                 GATE_WH_BAD_SIG);
	/* Another secret. */
	assert_int_equal(gate_webhook_verify((const unsigned char *)"other-"
	                                                            "secret",
	                                     12, ts, sig, body, strlen(body),
	                                     now, 300),
	                 GATE_WH_BAD_SIG);
	/* The timestamp header changed: the signature covers it. */
	assert_int_equal(gate_webhook_verify(key, KEYLEN, "1800000001", sig,
	                                     body, strlen(body), now, 300),
	                 GATE_WH_BAD_SIG);
	/* Authentic but outside the window either way: a replay. */
	assert_int_equal(gate_webhook_verify(key, KEYLEN, ts, sig, body,
	                                     strlen(body), now + 600, 300),
	                 GATE_WH_STALE);
	assert_int_equal(gate_webhook_verify(key, KEYLEN, ts, sig, body,
	                                     strlen(body), now - 600, 300),
	                 GATE_WH_STALE);
	/* Malformed headers. */
	assert_int_equal(gate_webhook_verify(key, KEYLEN, NULL, sig, body,
	                                     strlen(body), now, 300),
	                 GATE_WH_MALFORMED);
	assert_int_equal(gate_webhook_verify(key, KEYLEN, "12x", sig, body,
	                                     strlen(body), now, 300),
	                 GATE_WH_MALFORMED);
	assert_int_equal(gate_webhook_verify(key, KEYLEN, "-5", sig, body,
	                                     strlen(body), now, 300),
	                 GATE_WH_MALFORMED);
	assert_int_equal(gate_webhook_verify(key, KEYLEN, ts, "v1=abc", body,
	                                     strlen(body), now, 300),
	                 GATE_WH_MALFORMED);
	snprintf(bad, sizeof(bad), "%s", sig);
	bad[3] = bad[3] == 'a' ? 'b' : 'a';
	assert_int_equal(gate_webhook_verify(key, KEYLEN, ts, bad, body,
	                                     strlen(body), now, 300),
	                 GATE_WH_BAD_SIG);
}

static void
backoff_ceiling_doubles_to_the_cap(void **state)
{
	(void)state;
	assert_int_equal(gate_webhook_backoff_ceiling_ms(1, 1000, 300000),
	                 1000);
	assert_int_equal(gate_webhook_backoff_ceiling_ms(0, 1000, 300000),
	                 1000);
	assert_int_equal(gate_webhook_backoff_ceiling_ms(2, 1000, 300000),
	                 2000);
	assert_int_equal(gate_webhook_backoff_ceiling_ms(3, 1000, 300000),
	                 4000);
	assert_int_equal(gate_webhook_backoff_ceiling_ms(9, 1000, 300000),
	                 256000);
	assert_int_equal(gate_webhook_backoff_ceiling_ms(10, 1000, 300000),
	                 300000);
	/* No overflow however many failures. */
	assert_int_equal(
	    gate_webhook_backoff_ceiling_ms(1000000, 1000, 86400000), 86400000);
	assert_int_equal(gate_webhook_backoff_ceiling_ms(2147483647, 10, 10),
	                 10);
	/* A base above the cap is the cap. */
	assert_int_equal(gate_webhook_backoff_ceiling_ms(1, 5000, 3000), 3000);
	assert_int_equal(gate_webhook_backoff_ceiling_ms(3, 0, 3000), 0);
}

static void
backoff_is_full_jitter_within_the_ceiling(void **state)
{
	long long lo = -1, hi = -1;

	(void)state;
	/* The random number maps onto [0, ceiling], both ends reached. */
	assert_int_equal(gate_webhook_backoff_ms(3, 1000, 300000, 0), 0);
	assert_int_equal(gate_webhook_backoff_ms(3, 1000, 300000, UINT32_MAX),
	                 4000);
	assert_int_equal(gate_webhook_backoff_ms(3, 1000, 300000, 1U << 31),
	                 2000);
	assert_int_equal(
	    gate_webhook_backoff_ms(40, 1000, 86400000, UINT32_MAX), 86400000);
	/* Random inputs: always inside, and spread (not one value). */
	for (int i = 0; i < 2000; i++) {
		long long d = gate_webhook_backoff_ms(5, 100, 60000,
		                                      randombytes_random());

		assert_true(d >= 0 && d <= 1600);
		if (lo < 0 || d < lo)
			lo = d;
		if (d > hi)
			hi = d;
	}
	assert_true(lo < 200);
	assert_true(hi > 1400);
}

/* [webhooks] settings: an url needs a secret, http(s) only, secret_file
 * read like the other secret files, sane backoff bounds. */
static void
config_rules(void **state)
{
	struct gate_config cfg;
	char err[512], path[] = "/tmp/rg-wh-secret-XXXXXX", fileenv[128];
	int fd;

	(void)state;
	{
		char *const env[] = {"ROOMGATE_WEBHOOKS_URL=https://hooks."
		                     "example.com/roomgate",
		                     NULL};

		assert_int_equal(
		    gate_config_load(&cfg, NULL, env, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "secret"));
	}
	{
		char *const env[] = {
		    "ROOMGATE_WEBHOOKS_URL=https://hooks.example.com/x",
		    "ROOMGATE_WEBHOOKS_SECRET=short", NULL};

		assert_int_equal(
		    gate_config_load(&cfg, NULL, env, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "at least 16 bytes"));
		assert_null(strstr(err, "short")); /* never echoed */
	}
	{
		char *const env[] = {
		    "ROOMGATE_WEBHOOKS_URL=ftp://hooks.example.com/x",
		    "ROOMGATE_WEBHOOKS_SECRET=0123456789abcdef0123", NULL};

		assert_int_equal(
		    gate_config_load(&cfg, NULL, env, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "http:// or https://"));
	}
	{
		char *const env[] = {
		    "ROOMGATE_WEBHOOKS_URL=http://127.0.0.1:9/x",
		    "ROOMGATE_WEBHOOKS_SECRET=0123456789abcdef0123",
		    "ROOMGATE_WEBHOOKS_BACKOFF_BASE_MS=5000",
		    "ROOMGATE_WEBHOOKS_BACKOFF_CAP_MS=1000", NULL};

		assert_int_equal(
		    gate_config_load(&cfg, NULL, env, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "backoff_cap_ms"));
	}
	{
		char *const env[] = {"ROOMGATE_WEBHOOKS_WORKERS=0", NULL};

		assert_int_equal(
		    gate_config_load(&cfg, NULL, env, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "workers"));
	}
	/* No url: nothing required, defaults in place. */
	assert_int_equal(gate_config_load(&cfg, NULL, NULL, err, sizeof(err)),
	                 0);
	assert_null(cfg.wh_url);
	assert_int_equal(cfg.wh_workers, 2);
	assert_int_equal(cfg.wh_timeout_ms, 10000);
	assert_int_equal(cfg.wh_backoff_base_ms, 1000);
	assert_int_equal(cfg.wh_backoff_cap_ms, 300000);
	assert_int_equal(cfg.wh_max_age_s, 259200);
	gate_config_free(&cfg);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "file-secret-0123456789\n", 23), 23);
	close(fd);
	snprintf(fileenv, sizeof(fileenv), "ROOMGATE_WEBHOOKS_SECRET_FILE=%s",
	         path);
	{
		char *const env[] = {
		    "ROOMGATE_WEBHOOKS_URL=https://hooks.example.com/x",
		    fileenv, NULL};

		assert_int_equal(
		    gate_config_load(&cfg, NULL, env, err, sizeof(err)), 0);
		assert_string_equal(cfg.wh_secret, "file-secret-0123456789");
		gate_config_free(&cfg);
	}
	{
		char *const env[] = {
		    "ROOMGATE_WEBHOOKS_URL=https://hooks.example.com/x",
		    "ROOMGATE_WEBHOOKS_SECRET=0123456789abcdef0123", fileenv,
		    NULL};

		assert_int_equal(
		    gate_config_load(&cfg, NULL, env, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "keep one"));
	}
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(signature_is_hmac_of_ts_dot_body),
	    cmocka_unit_test(signature_works_with_any_key_length),
	    cmocka_unit_test(verify_accepts_fresh_and_rejects_the_rest),
	    cmocka_unit_test(backoff_ceiling_doubles_to_the_cap),
	    cmocka_unit_test(backoff_is_full_jitter_within_the_ceiling),
	    cmocka_unit_test(config_rules),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
