/*
 * Integration: the forward-auth membership cache ([authz] membership_cache
 * = on) -- real `roomgate serve` nodes, real sign-ins at the test IdP, the
 * harness's slapd (syncprov) changed with ldapmodify, PostgreSQL.
 *
 * The test holds the watcher's advisory lock itself, so no node becomes
 * the watcher: nothing revokes admissions or ends sessions, and every
 * denial below can only come from /v1/authz's own directory question --
 * the cache dropping what it knew, or the live check behind it.
 *
 *   - an admitted member's /v1/authz is answered from the cache
 *     (roomgate_authz_decisions_total{source="cache"} grows, "live" does
 *     not);
 *   - removed from the group with ldapmodify -> 403 not_member; put back
 *     -> 200 from the cache again;
 *   - locked (pwdAccountLockedTime) -> 403 inactive; unlocked -> 200;
 *   - someone added to the group later joins and is answered 200 from the
 *     cache;
 *   - slapd stopped -> the very next /v1/authz is 503 (asked live), the
 *     cache is inactive; slapd back -> active again, 200 from the cache;
 *   - two nodes: both caches active, a removal -> 403 on both;
 *   - membership_cache = on with watch = off refuses to start.
 *
 * Every wait polls with a generous bound (a loaded CI machine).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <unistd.h>

#include <sodium.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#include "db/db_watch.h"

#define SP_ENTITY "https://roomgate-cache.test/saml/metadata"
#define IDP_ENTITY "https://idp-cache.test/saml"
#define ALLOWED "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define PEOPLE ",ou=people,dc=example,dc=com"
#define BOUND_MS 15000
#define CACHE_HITS "roomgate_authz_decisions_total{source=\"cache\"}"
#define LIVE_ASKS "roomgate_authz_decisions_total{source=\"live\"}"

static struct {
	int idp_port, port, port2;
	char base[64], base2[64], idp_base[64];
	struct th_server s, s2;
	pid_t idp;
	PGconn *pg, *lock_pg;
	char cfg_path[512], cfg2_path[512];
	char host_token[64];
	struct sth_browser bob, carol, dave;
	char link[80], code[16], id[40];
} T;

static const char *
node_ini(const char *base, const char *node)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "cache-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\nnode_name = %s\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[directory]\nwatch = on\nwatch_retry_ms = 300\n"
	         "[authz]\nmembership_cache = on\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\n"
	         "[tokens]\nhs256_secret = cache-test-shared-secret-0123456789"
	         "\nissuer = roomgate-test\naudience = jitsi\n"
	         "subject = meet.example.com\n",
	         base, node, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md);
	return ini;
}

/* A metric's value on a node (-1 when absent or no answer). */
static double
metric(int port, const char *name)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128], key[160];
	const char *p;
	double v = -1;

	assert_non_null(r);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	if (th_http("GET", url, NULL, NULL, 0, r) == 200) {
		snprintf(key, sizeof(key), "\n%s ", name);
		p = strstr(r->body, key);
		if (p != NULL)
			v = strtod(p + strlen(key), NULL);
	}
	free(r);
	return v;
}

static void
sleep_a_bit(void)
{
	usleep(50 * 1000);
}

/* Polls until node port's cache answers. */
static int
wait_cache(int port, int want)
{
	for (int waited = 0; waited < BOUND_MS; waited += 50) {
		if (metric(port, "roomgate_authz_cache_active") == want)
			return 1;
		sleep_a_bit();
	}
	return 0;
}

static void
member(const char *op, const char *uid)
{
	char ldif[512];

	snprintf(ldif, sizeof(ldif),
	         "dn: " ALLOWED "\nchangetype: modify\n%s: member\n"
	         "member: uid=%s" PEOPLE "\n",
	         op, uid);
	/* An add may find the member there already (teardown). */
	(void)ath_ldap_admin_try(ldif);
}

static void
lock(const char *uid, int on)
{
	char ldif[512];

	snprintf(ldif, sizeof(ldif),
	         "dn: uid=%s" PEOPLE "\nchangetype: modify\n%s: "
	         "pwdAccountLockedTime\n%s",
	         uid, on ? "add" : "delete",
	         on ? "pwdAccountLockedTime: 000001010000Z\n" : "");
	ath_ldap_admin(ldif);
}

static long
join(const char *base, struct sth_browser *b)
{
	char path[128], body[64];

	snprintf(path, sizeof(path), "/v1/join/%s", T.link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", T.code);
	return ath_req_status(base, b, "POST", path, NULL, body);
}

/* /v1/authz for T's meeting on base; the body into why (may be NULL). */
static long
authz(const char *base, struct sth_browser *b, char *why, size_t whylen)
{
	char hdr[160];
	const char *h[] = {hdr, NULL};
	struct sth_resp r;
	long st;

	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", T.link);
	st = ath_req(base, b, "GET", "/v1/authz", h, NULL, &r);
	if (why != NULL)
		snprintf(why, whylen, "%s", r.body);
	sth_resp_free(&r);
	return st;
}

/* Polls /v1/authz until it answers want; the last body into why. */
static int
wait_authz(const char *base, struct sth_browser *b, long want, char *why,
           size_t whylen)
{
	for (int waited = 0; waited < BOUND_MS; waited += 50) {
		if (authz(base, b, why, whylen) == want)
			return 1;
		sleep_a_bit();
	}
	return 0;
}

/* Polls until an authz on node port is a 200 answered from the cache (the
 * follower may take a moment to have a change the live check already
 * sees). */
static int
wait_cache_hit(const char *base, int port, struct sth_browser *b)
{
	for (int waited = 0; waited < BOUND_MS; waited += 50) {
		double hits = metric(port, CACHE_HITS);

		if (authz(base, b, NULL, 0) == 200 &&
		    metric(port, CACHE_HITS) == hits + 1)
			return 1;
		sleep_a_bit();
	}
	return 0;
}

/* ---- fixture ---------------------------------------------------------- */

static int
setup(void **state)
{
	char spmd[512];
	const char *sps[2];
	PGresult *res;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (sodium_init() < 0)
		fail_msg("sodium_init");
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	T.idp_port = th_free_port();
	T.port = th_free_port();
	T.port2 = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	snprintf(T.base2, sizeof(T.base2), "http://127.0.0.1:%d", T.port2);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "cache-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "cache-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	/* No node may become the watcher (see the top). The lock is taken
	 * once the nodes have migrated the database. */
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("cache.ini", node_ini(T.base, "cache-a")));
	T.lock_pg = sth_pg();
	res =
	    PQexec(T.lock_pg, "SELECT pg_advisory_lock(" DB_WATCH_LOCK_KEY ")");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("cannot hold the watcher lock: %s",
		         PQerrorMessage(T.lock_pg));
	PQclear(res);
	th_server_start(&T.s, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "cache-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "cache-host", "user01", T.host_token);
	sth_browser_init(&T.bob);
	sth_browser_init(&T.carol);
	sth_browser_init(&T.dave);
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	sth_sign_in(&T.carol, T.base, T.idp_base, "carol");
	sth_sign_in(&T.dave, T.base, T.idp_base, "dave");
	ath_new_meeting(T.base, T.host_token, ALLOWED, "cache", 0, T.link,
	                T.code, T.id);
	if (join(T.base, &T.bob) != 200 || join(T.base, &T.carol) != 200)
		fail_msg("bob and carol could not join");
	if (!wait_cache(T.port, 1))
		fail_msg("the cache of node a never became active");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	/* Whatever a failed test left changed comes back. */
	member("add", "bob");
	member("add", "carol");
	member("delete", "dave");
	(void)ath_ldap_admin_try("dn: uid=carol" PEOPLE "\nchangetype: "
	                         "modify\ndelete: pwdAccountLockedTime\n");
	sth_browser_free(&T.bob);
	sth_browser_free(&T.carol);
	sth_browser_free(&T.dave);
	sth_idp_stop(T.idp);
	if (T.s.pid > 0)
		th_server_stop(&T.s);
	if (T.s2.pid > 0)
		th_server_stop(&T.s2);
	PQfinish(T.pg);
	PQfinish(T.lock_pg); /* lets go of the watcher lock */
	curl_global_cleanup();
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

static void
admitted_member_served_from_cache(void **state)
{
	double hits, asks;

	(void)state;
	assert_int_equal(metric(T.port, "roomgate_authz_cache_enabled"), 1);
	/* [authz] session_cache = auto: on with the membership cache. */
	assert_int_equal(
	    metric(T.port, "roomgate_authz_session_cache_enabled"), 1);
	assert_int_equal(metric(T.port, "roomgate_directory_watch_leader"), 0);
	assert_true(metric(T.port, "roomgate_authz_cache_entries{kind="
	                           "\"person\"}") >= 6);
	assert_true(metric(T.port, "roomgate_authz_cache_follower_connects_"
	                           "total") >= 1);
	hits = metric(T.port, CACHE_HITS);
	asks = metric(T.port, LIVE_ASKS);
	assert_true(hits >= 0 && asks >= 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(authz(T.base, &T.bob, NULL, 0), 200);
	assert_int_equal(metric(T.port, CACHE_HITS), hits + 5);
	assert_int_equal(metric(T.port, LIVE_ASKS), asks);
}

static void
removal_denied_then_back(void **state)
{
	char why[1024];

	(void)state;
	assert_int_equal(authz(T.base, &T.bob, NULL, 0), 200);
	member("delete", "bob");
	if (!wait_authz(T.base, &T.bob, 403, why, sizeof(why)))
		fail_msg("bob still admitted after the removal: %s", why);
	/* The live check said so: the admission itself was not touched. */
	if (strstr(why, "not_member") == NULL)
		fail_msg("not a directory denial: %s", why);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid AND identity = "
	                              "'bob' AND state = 'admitted'",
	                              T.id),
	                 1);
	/* Stays denied while out of the group. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(authz(T.base, &T.bob, NULL, 0), 403);
	member("add", "bob");
	if (!wait_authz(T.base, &T.bob, 200, why, sizeof(why)))
		fail_msg("bob not admitted again after coming back: %s", why);
	if (!wait_cache_hit(T.base, T.port, &T.bob))
		fail_msg("bob's admission not served from the cache again");
}

static void
lock_denied_then_unlock(void **state)
{
	char why[1024];

	(void)state;
	assert_int_equal(authz(T.base, &T.carol, NULL, 0), 200);
	lock("carol", 1);
	if (!wait_authz(T.base, &T.carol, 403, why, sizeof(why)))
		fail_msg("carol still admitted after the lock: %s", why);
	if (strstr(why, "inactive") == NULL)
		fail_msg("not the lock that denied: %s", why);
	/* The session lives (no watcher ended it). */
	assert_int_equal(
	    ath_req_status(T.base, &T.carol, "GET", "/v1/me", NULL, NULL), 200);
	lock("carol", 0);
	if (!wait_authz(T.base, &T.carol, 200, why, sizeof(why)))
		fail_msg("carol not admitted after the unlock: %s", why);
	if (!wait_cache_hit(T.base, T.port, &T.carol))
		fail_msg("carol's admission not served from the cache again");
}

static void
added_later_gets_in(void **state)
{
	char why[1024];

	(void)state;
	/* dave is not in the group: no admission, so authz denies. */
	assert_int_equal(join(T.base, &T.dave), 403);
	assert_int_equal(authz(T.base, &T.dave, NULL, 0), 403);
	member("add", "dave");
	assert_int_equal(join(T.base, &T.dave), 200);
	if (!wait_authz(T.base, &T.dave, 200, why, sizeof(why)))
		fail_msg("dave not admitted after being added: %s", why);
	/* Once the follower has the new member list, from the cache. */
	if (!wait_cache_hit(T.base, T.port, &T.dave))
		fail_msg("dave's admission never served from the cache");
	member("delete", "dave");
	if (!wait_authz(T.base, &T.dave, 403, why, sizeof(why)))
		fail_msg("dave still admitted after the removal: %s", why);
}

static void
slapd_stop_drops_cache(void **state)
{
	char why[1024];
	double hits, asks;

	(void)state;
	/* Active (a change from the test before may still be on its way
	 * to the follower) and answering. */
	if (!wait_cache_hit(T.base, T.port, &T.bob))
		fail_msg("the cache does not answer before slapd stops");
	th_ldap_stop();
	/* At once: the very next answer is the live check's 503, never the
	 * cache's 200. */
	asks = metric(T.port, LIVE_ASKS);
	hits = metric(T.port, CACHE_HITS);
	assert_int_equal(authz(T.base, &T.bob, why, sizeof(why)), 503);
	assert_int_equal(metric(T.port, "roomgate_authz_cache_active"), 0);
	assert_int_equal(metric(T.port, LIVE_ASKS), asks + 1);
	assert_int_equal(metric(T.port, CACHE_HITS), hits);
	if (strstr(why, "directory_unavailable") == NULL)
		fail_msg("not the directory's 503: %s", why);
	th_ldap_start();
	if (!wait_cache(T.port, 1))
		fail_msg("the cache did not come back after slapd did");
	assert_true(metric(T.port, "roomgate_authz_cache_follower_"
	                           "disconnects_total") >= 1);
	if (!wait_cache_hit(T.base, T.port, &T.bob))
		fail_msg("not served from the cache after slapd came back");
}

static void
two_nodes_both_cached(void **state)
{
	char why[1024];

	(void)state;
	snprintf(T.cfg2_path, sizeof(T.cfg2_path), "%s",
	         th_config("cache2.ini", node_ini(T.base2, "cache-b")));
	th_server_start(&T.s2, T.cfg2_path, T.port2);
	if (!wait_cache(T.port2, 1))
		fail_msg("the cache of node b never became active");
	assert_int_equal(metric(T.port, "roomgate_authz_cache_active"), 1);
	if (!wait_cache_hit(T.base, T.port, &T.bob) ||
	    !wait_cache_hit(T.base2, T.port2, &T.bob))
		fail_msg("bob not served from both caches");
	member("delete", "bob");
	if (!wait_authz(T.base, &T.bob, 403, why, sizeof(why)))
		fail_msg("node a still admits bob: %s", why);
	if (!wait_authz(T.base2, &T.bob, 403, why, sizeof(why)))
		fail_msg("node b still admits bob: %s", why);
	member("add", "bob");
	if (!wait_authz(T.base2, &T.bob, 200, why, sizeof(why)))
		fail_msg("node b does not admit bob again: %s", why);
	th_server_stop(&T.s2);
	T.s2.pid = 0;
}

/* membership_cache = on where the watcher is off refuses to serve,
 * naming the setting. */
static void
cache_needs_watcher(void **state)
{
	char out[8192], port_env[64], path[512];
	const char *argv[] = {th_env("RG_TEST_BIN"), "serve", "-c", path, NULL};
	const char *env[] = {port_env, NULL};

	(void)state;
	snprintf(path, sizeof(path), "%s",
	         th_config("cache-nowatch.ini",
	                   "[directory]\nwatch = off\n"
	                   "[authz]\nmembership_cache = on\n"
	                   "[database]\nmigrate_on_start = true\n"));
	snprintf(port_env, sizeof(port_env), "ROOMGATE_SERVER_PORT=%d",
	         th_free_port());
	assert_int_not_equal(th_run_capture(argv, env, out, sizeof(out)), 0);
	if (strstr(out, "watch = on") == NULL ||
	    strstr(out, "membership_cache") == NULL)
		fail_msg("no hint at the settings: %s", out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(admitted_member_served_from_cache),
	    cmocka_unit_test(removal_denied_then_back),
	    cmocka_unit_test(lock_denied_then_unlock),
	    cmocka_unit_test(added_later_gets_in),
	    cmocka_unit_test(slapd_stop_drops_cache),
	    cmocka_unit_test(two_nodes_both_cached),
	    cmocka_unit_test(cache_needs_watcher),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
