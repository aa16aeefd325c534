/*
 * Integration, real browser (see browser_th.h): the failed-attempts page of
 * a meeting in headless Chromium. The driver writes admission records into
 * the audit log (allowed, refused, locked out) and the probing flag,
 * counts them with SQL, and the scenario (tests/browser/attempts.mjs)
 * signs the host in and checks the page's totals and its SVG chart against
 * those counts; the screenshots it takes are checked here, and the JSON
 * figures (GET /v1/meetings/{id}/attempts) against the same counts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/browser_th.h"
#pragma GCC diagnostic pop

static int
setup(void **state)
{
	(void)state;
	bth_setup("browser-attempts", 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	bth_teardown();
	return 0;
}

/* A PNG of some size at RG_TEST_TMP/name. */
static void
expect_png(const char *name)
{
	char path[600], magic[8];
	struct stat st;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", th_env("RG_TEST_TMP"), name);
	if (stat(path, &st) != 0)
		fail_msg("no screenshot %s", path);
	assert_true(st.st_size > 2000);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(magic, 1, 8, f), 8);
	fclose(f);
	assert_memory_equal(magic, "\x89PNG\r\n\x1a\n", 8);
	printf("# screenshot %s: %lld bytes\n", name, (long long)st.st_size);
}

static void
attempts_page_shows_the_audit_log(void **state)
{
	char link[80], code[16], id[40], sql[2048], e_id[80], e_f[48], e_a[48];
	char auth[128], url[256];
	const char *more[] = {e_id, e_f, e_a, NULL};
	const char *h[] = {auth, NULL};
	struct th_http *r = calloc(1, sizeof(*r));
	static const char *const steps[] = {
	    "Chromium starts with a fresh profile",
	    "the attempts page sends the host to sign in, and back",
	    "the totals are the audit log's",
	    "the chart is inline SVG whose failed bars add up to the total",
	    "lockouts and the probing flag are marked",
	    "no scripts, no external assets, the pages' CSP",
	    "screenshots of the page and of the chart are taken",
	    NULL};
	long failed, allowed;
	json_t *o;
	int st;

	(void)state;
	assert_non_null(r);
	ath_new_meeting(B.base, B.host_token, BTH_ALLOWED, "Attempts board",
	                0, link, code, id);
	/* Three hours of attempts ending ten minutes ago, in the page's
	 * default window (the last 24 hours). */
	snprintf(sql, sizeof(sql),
	         "INSERT INTO audit_log (at, event_type, outcome, reason, "
	         "identity, meeting_id, source_addr) SELECT now() - interval "
	         "'190 minutes' + i * interval '6 minutes', 'admission', CASE "
	         "WHEN i %% 4 = 0 THEN 'allow' ELSE 'deny' END, CASE WHEN i %% "
	         "4 = 0 THEN 'admitted' WHEN i BETWEEN 20 AND 24 THEN 'locked' "
	         "WHEN i %% 4 = 1 THEN 'not_member' ELSE 'invalid_code' END, "
	         "'u' || (i %% 5), $1::uuid, ('10.7.0.' || (i %% 4 + 1))::inet "
	         "FROM generate_series(0, 29) i");
	{
		const char *v[1] = {id};
		PGresult *res = PQexecParams(B.pg, sql, 1, NULL, v, NULL, NULL,
		                             0);

		assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
		PQclear(res);
		res = PQexecParams(
		    B.pg,
		    "WITH f AS (UPDATE meetings SET probed_at = now() - "
		    "interval '1 hour' WHERE id = $1::uuid RETURNING id, "
		    "probed_at) INSERT INTO audit_log (at, event_type, outcome, "
		    "reason, meeting_id, details) SELECT probed_at, "
		    "'meeting.probed', 'info', 'probing', id, "
		    "'{\"failed_identities\": 5}' FROM f",
		    1, NULL, v, NULL, NULL, 0);
		assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
		PQclear(res);
	}
	failed = ath_pg_count(B.pg,
	                      "SELECT count(*) FROM audit_log WHERE meeting_id "
	                      "= $1::uuid AND event_type = 'admission' AND "
	                      "outcome <> 'allow'",
	                      id);
	allowed = ath_pg_count(B.pg,
	                       "SELECT count(*) FROM audit_log WHERE "
	                       "meeting_id = $1::uuid AND event_type = "
	                       "'admission' AND outcome = 'allow'",
	                       id);
	assert_int_equal(failed + allowed, 30);
	snprintf(e_id, sizeof(e_id), "RG_MEETING_ID=%s", id);
	snprintf(e_f, sizeof(e_f), "RG_WANT_FAILED=%ld", failed);
	snprintf(e_a, sizeof(e_a), "RG_WANT_ALLOWED=%ld", allowed);
	st = bth_run("attempts", bth_env("alice", link, code, NULL, more));
	bth_expect_steps("attempts", st, steps);
	expect_png("attempts-page.png");
	expect_png("attempts-chart.png");

	/* The JSON says the same. */
	snprintf(url, sizeof(url), "%s/v1/meetings/%s/attempts", B.base, id);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", B.host_token);
	assert_int_equal(th_http("GET", url, h, NULL, 0, r), 200);
	o = json_loads(r->body, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(
	                     json_object_get(o, "totals"), "failed")),
	                 failed);
	assert_int_equal(json_integer_value(json_object_get(
	                     json_object_get(o, "totals"), "allowed")),
	                 allowed);
	json_decref(o);
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(attempts_page_shows_the_audit_log),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
