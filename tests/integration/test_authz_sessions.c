/*
 * Integration: the forward-auth session cache ([authz] session_cache,
 * server/authz_sessions.h) -- two real `roomgate serve` nodes on one
 * PostgreSQL, real sign-ins at the test IdP, live directory checks
 * against slapd.
 *
 * The bound asserted: once the API call (or statement) that ends access
 * has returned, the OTHER node answers a denial within BOUND_MS -- with
 * session_cache_ttl_ms = 60000 on both, so only the notification (LISTEN
 * roomgate_authz, migration 0025) can explain it. Before each event the
 * other node is shown to answer from its cache (the hit counter moves).
 * The events: logout, the admin's revoke, an admission ended, a meeting's
 * groups changed and the meeting archived, a session expired and a
 * session swept; and the directory watcher ending a removed person's
 * admission (bounded by the watcher's own latency, 15 s). Then: PostgreSQL stopped -> the very next answer is the
 * database's 503, never a cached 200, and the cache answers again once
 * the LISTEN connection is back; the LISTEN connection killed
 * (pg_terminate_backend) -> flushed, reconnected, still right; the TTL and
 * the session's own expiry bound an entry no notification drops (changes
 * written with triggers off); the session's touch still happens while
 * the cache answers; live mode keeps no cache unless asked. Review
 * findings: a notification read together with the LISTEN check's answer
 * is handed over by that wait (F1); one session's spellings of a meeting
 * share one entry and the node's RSS stays flat, a session keeps at most
 * 16 entries, a directory denial stores nothing (F2).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "db/db_authz.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-sessions.test/saml/metadata"
#define IDP_ENTITY "https://idp-sessions.test/saml"
#define GROUPS "ou=groups,dc=example,dc=com"
#define ALLOWED "cn=meeting-allowed," GROUPS
#define ADMINS "cn=compliance," GROUPS
#define BOUND_MS 1000
#define HITS "roomgate_authz_session_cache_requests_total{result=\"hit\"}"
#define MISSES "roomgate_authz_session_cache_requests_total{result=\"miss\"}"
#define INV_SESSION                                                            \
	"roomgate_authz_session_cache_invalidations_total{kind=\"session\"}"
#define INV_MEETING                                                            \
	"roomgate_authz_session_cache_invalidations_total{kind=\"meeting\"}"
#define CONNECTED "roomgate_authz_session_cache_listen_connected"
#define ENTRIES "roomgate_authz_session_cache_entries"
#define STORES "roomgate_authz_session_cache_stores_total"
#define SESSION_MAX 16 /* authz_sessions.c: entries one session keeps */

static struct {
	int idp_port, port, port2, port3;
	char base[64], base2[64], base3[64], idp_base[64];
	struct th_server s, s2, s3;
	pid_t idp;
	PGconn *pg;
	char cfg_path[512], cfg2_path[512], cfg3_path[512];
	char host_token[64], admin_token[64];
	char link[80], code[16], id[40];
} T;

/* A signed-in person: a browser, and its session cookie kept apart so
 * that a logout clearing the browser's jar leaves us the old cookie. */
struct sess {
	struct sth_browser b;
	char cookie[256];
};

static const char *
node_ini(const char *base, const char *node, const char *authz)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "sessions-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\nnode_name = %s\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[directory]\nadmin_group = " ADMINS "\n"
	         "[authz]\n%s\n"
	         "[session]\nidle_timeout = 60\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\n"
	         "[tokens]\nhs256_secret = sessions-test-shared-secret-012345"
	         "\nissuer = roomgate-test\naudience = jitsi\n"
	         "subject = meet.example.com\n",
	         base, node, th_env("RG_TEST_LDAP_BASE_DN"), authz, key, crt,
	         md);
	return ini;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
nap(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* A metric's value on a node (-1 when absent or no answer). */
static double
metric(int port, const char *name)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128], key[200];
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

static int
wait_metric(int port, const char *name, double want)
{
	for (int waited = 0; waited < 15000; waited += 50) {
		if (metric(port, name) == want)
			return 1;
		nap(50);
	}
	return 0;
}

/* The rg_session cookie of b's jar as "rg_session=value". */
static void
cookie_of(struct sth_browser *b, char *out, size_t n)
{
	struct curl_slist *l = NULL, *i;

	out[0] = '\0';
	assert_int_equal(curl_easy_getinfo(b->h, CURLINFO_COOKIELIST, &l),
	                 CURLE_OK);
	for (i = l; i != NULL; i = i->next) {
		/* Netscape format: 7 tab-separated fields, name and value
		 * last. */
		const char *f = i->data, *name = NULL;
		int k = 0;

		for (const char *p = f; *p != '\0'; p++)
			if (*p == '\t' && ++k == 5)
				name = p + 1;
		if (name != NULL && strncmp(name, "rg_session\t", 11) == 0)
			snprintf(out, n, "rg_session=%s", name + 11);
	}
	curl_slist_free_all(l);
	if (out[0] == '\0')
		fail_msg("no rg_session cookie after the sign-in");
}

/* /v1/authz with cookie for meeting ref on base; the body into why. */
static long
authz_ref(const char *base, const char *cookie, const char *ref, char *why,
          size_t whylen)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128], c[300], m[160];
	const char *h[] = {c, m, NULL};
	long st;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/v1/authz", base);
	snprintf(c, sizeof(c), "Cookie: %s", cookie);
	snprintf(m, sizeof(m), "X-Roomgate-Meeting: %s", ref);
	st = th_http("GET", url, h, NULL, 0, r);
	if (why != NULL)
		snprintf(why, whylen, "%s", r->body);
	free(r);
	return st;
}

static long
authz(const char *base, const struct sess *x)
{
	return authz_ref(base, x->cookie, T.link, NULL, 0);
}

static void
join_ref(struct sess *x, const char *link, const char *code)
{
	char path[128], body[64];

	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	if (ath_req_status(T.base, &x->b, "POST", path, NULL, body) != 200)
		fail_msg("join of %s failed", link);
}

/* Signs uid in on node a and admits the session to T's meeting. */
static void
sess_new(struct sess *x, const char *uid)
{
	sth_browser_init(&x->b);
	sth_sign_in(&x->b, T.base, T.idp_base, uid);
	cookie_of(&x->b, x->cookie, sizeof(x->cookie));
	join_ref(x, T.link, T.code);
}

static void
sess_free(struct sess *x)
{
	sth_browser_free(&x->b);
	sodium_memzero(x->cookie, sizeof(x->cookie));
}

/* Until a 200 for (cookie, ref) on the node is answered from its cache. */
static void
warm_ref(const char *base, int port, const char *cookie, const char *ref)
{
	for (int i = 0; i < 50; i++) {
		double h = metric(port, HITS);
		char why[1024];
		long st = authz_ref(base, cookie, ref, why, sizeof(why));

		if (st != 200)
			fail_msg("not admitted on %s: %ld %s", base, st, why);
		if (metric(port, HITS) == h + 1)
			return;
		nap(20);
	}
	fail_msg("never answered from the cache of %s", base);
}

static void
warm(const struct sess *x)
{
	warm_ref(T.base, T.port, x->cookie, T.link);
	warm_ref(T.base2, T.port2, x->cookie, T.link);
}

/*
 * The bound: from now (the event has returned), base answers want for
 * (cookie, ref) within BOUND_MS; what and the body into the failure.
 */
static void
expect_denied(const char *base, const char *cookie, const char *ref,
              long want, const char *what)
{
	long long t0 = now_ms();
	int allowed = 0;
	char why[1024];
	long st;

	for (;;) {
		st = authz_ref(base, cookie, ref, why, sizeof(why));
		if (st != 200)
			break;
		allowed++;
		if (now_ms() - t0 > BOUND_MS)
			fail_msg("%s: %s still answers 200 %lld ms after (%d "
			         "times)",
			         what, base, now_ms() - t0, allowed);
		nap(5);
	}
	if (st != want)
		fail_msg("%s: %s answered %ld, not %ld: %s", what, base, st,
		         want, why);
	if (allowed > 0)
		print_message("%s: %s answered 200 %d time(s) in %lld ms "
		              "before the denial\n",
		              what, base, allowed, now_ms() - t0);
}

static void
sql_on(PGconn *pg, const char *q, const char *param)
{
	const char *v[1] = {param};
	PGresult *res =
	    PQexecParams(pg, q, param != NULL ? 1 : 0, NULL, v, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQerrorMessage(pg));
	PQclear(res);
}

static void
sql(const char *q, const char *param)
{
	sql_on(T.pg, q, param);
}

/* q written with triggers off (session_replication_role = replica, a
 * superuser's setting: the harness's admin role on the test database):
 * no notification. */
static void
sql_unnoticed(const char *q)
{
	const char *k[] = {"dbname", "dbname", NULL};
	const char *v[] = {th_env("RG_TEST_PG_ADMIN_URL"), PQdb(T.pg), NULL};
	PGconn *pg = PQconnectdbParams(k, v, 1);

	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("admin connection: %s", PQerrorMessage(pg));
	sql_on(pg, "SET session_replication_role = replica", NULL);
	sql_on(pg, q, NULL);
	PQfinish(pg);
}

/* ---- fixture ---------------------------------------------------------- */

static int
setup(void **state)
{
	char spmd[512];
	const char *sps[2];

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
	T.port3 = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	snprintf(T.base2, sizeof(T.base2), "http://127.0.0.1:%d", T.port2);
	snprintf(T.base3, sizeof(T.base3), "http://127.0.0.1:%d", T.port3);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "sessions-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "sessions-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("sessions-a.ini",
	                   node_ini(T.base, "sessions-a",
	                            "session_cache = on\n"
	                            "session_cache_ttl_ms = 60000")));
	snprintf(T.cfg2_path, sizeof(T.cfg2_path), "%s",
	         th_config("sessions-b.ini",
	                   node_ini(T.base2, "sessions-b",
	                            "session_cache = on\n"
	                            "session_cache_ttl_ms = 60000")));
	th_server_start(&T.s, T.cfg_path, T.port);
	th_server_start(&T.s2, T.cfg2_path, T.port2);
	sth_save_sp_metadata(T.base, "sessions-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "sessions-host", "user01",
	          T.host_token);
	ath_token(T.cfg_path, "admin", "sessions-admin", "ops",
	          T.admin_token);
	ath_new_meeting(T.base, T.host_token, ALLOWED, "sessions", 0, T.link,
	                T.code, T.id);
	if (!wait_metric(T.port, CONNECTED, 1) ||
	    !wait_metric(T.port2, CONNECTED, 1))
		fail_msg("the LISTEN connections never came up");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	/* A failed watcher test may have left bob out of the group. */
	(void)ath_ldap_admin_try("dn: " ALLOWED "\nchangetype: modify\nadd: "
	                         "member\nmember: uid=bob,ou=people,dc=example,"
	                         "dc=com\n");
	sth_idp_stop(T.idp);
	if (T.s.pid > 0)
		th_server_stop(&T.s);
	if (T.s2.pid > 0)
		th_server_stop(&T.s2);
	if (T.s3.pid > 0)
		th_server_stop(&T.s3);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

static void
served_from_memory(void **state)
{
	struct sess x;
	double h, m;

	(void)state;
	assert_int_equal(metric(T.port, "roomgate_authz_session_cache_enabled"),
	                 1);
	sess_new(&x, "bob");
	warm(&x);
	h = metric(T.port2, HITS);
	m = metric(T.port2, MISSES);
	for (int i = 0; i < 10; i++)
		assert_int_equal(authz(T.base2, &x), 200);
	assert_int_equal(metric(T.port2, HITS), h + 10);
	assert_int_equal(metric(T.port2, MISSES), m);
	assert_true(metric(T.port2, "roomgate_authz_session_cache_entries") >=
	            1);
	/* Not a positive answer: never stored, asked every time. */
	m = metric(T.port2, MISSES);
	for (int i = 0; i < 3; i++)
		assert_int_equal(authz_ref(T.base2, x.cookie, "no-such-meeting-"
		                                              "link-0000",
		                           NULL, 0),
		                 403);
	assert_int_equal(metric(T.port2, MISSES), m + 3);
	sess_free(&x);
}

static void
logout_reaches_the_other_node(void **state)
{
	struct sess x;
	struct sth_resp r;
	char url[128];
	double inv;

	(void)state;
	sess_new(&x, "bob");
	warm(&x);
	inv = metric(T.port2, INV_SESSION);
	snprintf(url, sizeof(url), "%s/saml/logout", T.base);
	sth_do(&x.b, url, NULL, 0, &r);
	assert_true(r.status == 302 || r.status == 200);
	sth_resp_free(&r);
	expect_denied(T.base2, x.cookie, T.link, 401, "logout on a");
	expect_denied(T.base, x.cookie, T.link, 401, "logout on a");
	assert_true(metric(T.port2, INV_SESSION) > inv);
	sess_free(&x);
}

static void
revoke_reaches_the_other_node(void **state)
{
	struct sess x;
	char url[160], auth[128];
	const char *h[] = {auth, NULL};
	struct th_http *r = calloc(1, sizeof(*r));

	(void)state;
	assert_non_null(r);
	sess_new(&x, "carol");
	warm(&x);
	snprintf(url, sizeof(url), "%s/v1/identities/carol:revoke", T.base);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         T.admin_token);
	if (th_http("POST", url, h, NULL, 0, r) != 200)
		fail_msg("revoke: %ld %s", r->status, r->body);
	free(r);
	expect_denied(T.base, x.cookie, T.link, 401, "revoke on a");
	expect_denied(T.base2, x.cookie, T.link, 401, "revoke on a");
	sess_free(&x);
}

static void
admission_ended_reaches_both(void **state)
{
	struct sess x;
	char why[1024];

	(void)state;
	sess_new(&x, "bob");
	warm(&x);
	/* As a host's or the watcher's end of an admission writes it. */
	sql("UPDATE admissions SET state = 'revoked', ended_at = now(), "
	    "revoke_reason = 'host' WHERE meeting_id = $1::uuid AND "
	    "identity = 'bob' AND state = 'admitted'",
	    T.id);
	expect_denied(T.base2, x.cookie, T.link, 403, "admission ended");
	expect_denied(T.base, x.cookie, T.link, 403, "admission ended");
	assert_int_equal(authz_ref(T.base2, x.cookie, T.link, why, sizeof(why)),
	                 403);
	if (strstr(why, "not admitted") == NULL)
		fail_msg("not the admission's denial: %s", why);
	/* Admitted again: cached again. */
	join_ref(&x, T.link, T.code);
	warm(&x);
	sess_free(&x);
}

static void
meeting_changes_reach_both(void **state)
{
	struct sess x;
	char link[80], code[16], id[40], url[160], auth[128];
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	static const char body[] =
	    "{\"allowed_groups\": [\"cn=staff," GROUPS "\"]}";
	struct th_http *r = calloc(1, sizeof(*r));
	double inv;

	(void)state;
	assert_non_null(r);
	ath_new_meeting(T.base, T.host_token, ALLOWED, "sessions-m2", 0, link,
	                code, id);
	sess_new(&x, "bob");
	join_ref(&x, link, code);
	warm_ref(T.base, T.port, x.cookie, link);
	warm_ref(T.base2, T.port2, x.cookie, link);
	inv = metric(T.port2, INV_MEETING);
	/* bob is not in staff: only the old groups, cached, would let him
	 * in. */
	snprintf(url, sizeof(url), "%s/v1/meetings/%s", T.base, id);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         T.host_token);
	if (th_http("PATCH", url, h, body, strlen(body), r) != 200)
		fail_msg("update: %ld %s", r->status, r->body);
	expect_denied(T.base2, x.cookie, link, 403, "groups changed");
	assert_true(metric(T.port2, INV_MEETING) > inv);
	/* Back to the group: admitted again (the admission stood). */
	snprintf(url, sizeof(url), "%s/v1/meetings/%s", T.base, id);
	{
		char back[200];

		snprintf(back, sizeof(back),
		         "{\"allowed_groups\": [\"" ALLOWED "\"]}");
		if (th_http("PATCH", url, h, back, strlen(back), r) != 200)
			fail_msg("update back: %ld %s", r->status, r->body);
	}
	warm_ref(T.base2, T.port2, x.cookie, link);
	/* Archived. */
	if (th_http("DELETE", url, h, NULL, 0, r) / 100 != 2)
		fail_msg("archive: %ld %s", r->status, r->body);
	expect_denied(T.base2, x.cookie, link, 403, "meeting archived");
	expect_denied(T.base, x.cookie, link, 403, "meeting archived");
	free(r);
	sess_free(&x);
}

static void
session_expired_and_swept(void **state)
{
	struct sess x, y;

	(void)state;
	sess_new(&x, "bob");
	sess_new(&y, "carol");
	warm(&x);
	warm(&y);
	sql("UPDATE sessions SET expires_at = now() WHERE identity = 'bob' "
	    "AND revoked_at IS NULL",
	    NULL);
	expect_denied(T.base2, x.cookie, T.link, 401, "session expired");
	/* Housekeeping deletes sessions (and its admissions follow). */
	sql("DELETE FROM sessions WHERE identity = 'carol'", NULL);
	expect_denied(T.base2, y.cookie, T.link, 401, "session swept");
	expect_denied(T.base, y.cookie, T.link, 401, "session swept");
	sess_free(&x);
	sess_free(&y);
}

static void
database_down_never_cached(void **state)
{
	struct sess x;
	double h;
	char why[1024];

	(void)state;
	sess_new(&x, "bob");
	warm(&x);
	th_pg_stop();
	/* The very next answer: the database's 503, not a cached 200. */
	h = metric(T.port2, HITS);
	assert_int_equal(authz_ref(T.base2, x.cookie, T.link, why, sizeof(why)),
	                 503);
	assert_int_equal(metric(T.port2, HITS), h);
	assert_int_equal(metric(T.port2, CONNECTED), 0);
	th_pg_start();
	PQfinish(T.pg);
	T.pg = sth_pg();
	if (!wait_metric(T.port2, CONNECTED, 1))
		fail_msg("the LISTEN connection did not come back");
	warm_ref(T.base2, T.port2, x.cookie, T.link);
	sess_free(&x);
}

static void
listen_killed_flushed_and_back(void **state)
{
	struct sess x;
	double fl, co;
	PGresult *res;

	(void)state;
	sess_new(&x, "bob");
	warm(&x);
	fl = metric(T.port2, "roomgate_authz_session_cache_flushes_total");
	co = metric(T.port2, "roomgate_authz_session_cache_listen_connects_"
	                     "total");
	assert_true(metric(T.port2, "roomgate_authz_session_cache_entries") >=
	            1);
	res = PQexec(T.pg, "SELECT count(pg_terminate_backend(pid)) FROM "
	                   "pg_stat_activity WHERE application_name = "
	                   "'roomgate-authz-listen'");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	/* Both nodes' connections. */
	assert_true(strtol(PQgetvalue(res, 0, 0), NULL, 10) >= 2);
	PQclear(res);
	/* Flushed (the lost connection's and the new one's) and back. */
	for (int waited = 0;
	     metric(T.port2, "roomgate_authz_session_cache_listen_connects_"
	                     "total") < co + 1;
	     waited += 50) {
		if (waited > 15000)
			fail_msg("the LISTEN connection did not come back");
		nap(50);
	}
	assert_true(metric(T.port2,
	                   "roomgate_authz_session_cache_flushes_total") >=
	            fl + 2);
	/* Still right, and cached again. */
	warm(&x);
	sql("UPDATE sessions SET revoked_at = now(), revoke_reason = 'admin' "
	    "WHERE identity = 'bob' AND revoked_at IS NULL",
	    NULL);
	expect_denied(T.base2, x.cookie, T.link, 401, "after the reconnect");
	sess_free(&x);
}

static void
stop_c(void)
{
	if (T.s3.pid > 0) { /* a failed test before left node c */
		th_server_stop(&T.s3);
		T.s3.pid = 0;
	}
}

/* The directory watcher (node c, the leader) ends bob's admissions when
 * he leaves the group: nodes a and b answer 403 "not admitted" (the
 * database's answer) -- their cached entries alone would reach the live
 * directory check's 403 not_member instead. */
static void
watcher_end_reaches_both(void **state)
{
	struct sess x;
	long long t0;
	char why[1024];
	long st = 0;
	double inv;

	(void)state;
	snprintf(T.cfg3_path, sizeof(T.cfg3_path), "%s",
	         th_config("sessions-w.ini",
	                   node_ini(T.base3, "sessions-w",
	                            "session_cache = off\n"
	                            "[directory]\nwatch = on\n"
	                            "watch_retry_ms = 300")));
	th_server_start(&T.s3, T.cfg3_path, T.port3);
	if (!wait_metric(T.port3, "roomgate_directory_watch_leader", 1) ||
	    !wait_metric(T.port3, "roomgate_directory_watch_caught_up", 1))
		fail_msg("node w never led the watch");
	sess_new(&x, "bob");
	warm(&x);
	inv = metric(T.port2, INV_SESSION);
	ath_ldap_admin("dn: " ALLOWED "\nchangetype: modify\ndelete: member\n"
	               "member: uid=bob,ou=people,dc=example,dc=com\n");
	t0 = now_ms();
	while (now_ms() - t0 < 15000) {
		st = authz_ref(T.base2, x.cookie, T.link, why, sizeof(why));
		if (st == 403 && strstr(why, "not admitted") != NULL)
			break;
		/* Meanwhile: b's live check (403 not_member), never a
		 * 200. */
		if (st != 403)
			fail_msg("b answered %ld while bob left: %s", st, why);
		st = 0;
		nap(20);
	}
	ath_ldap_admin("dn: " ALLOWED "\nchangetype: modify\nadd: member\n"
	               "member: uid=bob,ou=people,dc=example,dc=com\n");
	if (st != 403)
		fail_msg("the watcher's end never reached b: %s", why);
	/* Back in the group, the admission stays ended on both. */
	assert_int_equal(authz_ref(T.base, x.cookie, T.link, why, sizeof(why)),
	                 403);
	if (strstr(why, "not admitted") == NULL)
		fail_msg("a: not the admission's denial: %s", why);
	assert_true(metric(T.port2, INV_SESSION) > inv);
	sess_free(&x);
	th_server_stop(&T.s3);
	T.s3.pid = 0;
}

/* With triggers off (session_replication_role = replica) a change
 * notifies nobody: only the TTL and the session's own expiry end what a
 * node holds. */
static void
ttl_and_expiry_bound_an_entry(void **state)
{
	struct sess x;
	long long t0;
	int served = 0;

	(void)state;
	stop_c();
	snprintf(T.cfg3_path, sizeof(T.cfg3_path), "%s",
	         th_config("sessions-c.ini",
	                   node_ini(T.base3, "sessions-c",
	                            "session_cache = on\n"
	                            "session_cache_ttl_ms = 1500")));
	th_server_start(&T.s3, T.cfg3_path, T.port3);
	if (!wait_metric(T.port3, CONNECTED, 1))
		fail_msg("node c never listened");
	sess_new(&x, "carol");
	warm_ref(T.base3, T.port3, x.cookie, T.link);
	sql_unnoticed("UPDATE sessions SET revoked_at = now(), revoke_reason "
	              "= 'admin' WHERE identity = 'carol' AND revoked_at IS "
	              "NULL");
	t0 = now_ms();
	while (authz(T.base3, &x) == 200) {
		served++;
		if (now_ms() - t0 > 1500 + BOUND_MS)
			fail_msg("still 200 %lld ms after, TTL 1500 ms",
			         now_ms() - t0);
		nap(20);
	}
	/* It was the cache that answered (nothing told it), then the TTL. */
	assert_true(served >= 1);
	assert_int_equal(authz(T.base3, &x), 401);
	sess_free(&x);
	th_server_stop(&T.s3);
	T.s3.pid = 0;

	/* The session's expiry, 2 s away, on a node with a 60 s TTL: set
	 * before the first read, the entry ends with it. */
	sess_new(&x, "carol");
	sql_unnoticed("UPDATE sessions SET expires_at = now() + interval "
	              "'2 s' WHERE identity = 'carol' AND revoked_at IS NULL");
	warm_ref(T.base2, T.port2, x.cookie, T.link);
	t0 = now_ms();
	while (authz(T.base2, &x) == 200) {
		if (now_ms() - t0 > 2000 + BOUND_MS)
			fail_msg("still 200 %lld ms after, past the session's "
			         "expiry",
			         now_ms() - t0);
		nap(20);
	}
	assert_int_equal(authz(T.base2, &x), 401);
	sess_free(&x);
}

/* idle_timeout = 60: the touch is due every 3 s (db_session_touch_s). */
static void
touch_still_happens(void **state)
{
	struct sess x;
	char *seen0, *seen1;
	double h;
	long long t0;
	int n = 0;

	(void)state;
	sess_new(&x, "bob");
	warm_ref(T.base2, T.port2, x.cookie, T.link);
	seen0 = sth_pg_value(T.pg,
	                     "SELECT max(last_seen_at)::text FROM sessions "
	                     "WHERE identity = $1 AND revoked_at IS NULL",
	                     "bob");
	h = metric(T.port2, HITS);
	t0 = now_ms();
	while (now_ms() - t0 < 4500) {
		assert_int_equal(authz(T.base2, &x), 200);
		n++;
		nap(50);
	}
	seen1 = sth_pg_value(T.pg,
	                     "SELECT max(last_seen_at)::text FROM sessions "
	                     "WHERE identity = $1 AND revoked_at IS NULL",
	                     "bob");
	assert_non_null(seen0);
	assert_non_null(seen1);
	if (strcmp(seen0, seen1) == 0)
		fail_msg("last_seen_at not touched in 4.5 s: %s", seen1);
	/* Mostly from memory all the same. */
	assert_true(metric(T.port2, HITS) - h >= (double)n / 2);
	free(seen0);
	free(seen1);
	sess_free(&x);
}

/* Live mode (no membership cache) with the default setting keeps none. */
static void
live_mode_keeps_none(void **state)
{
	struct sess x;

	(void)state;
	stop_c();
	snprintf(T.cfg3_path, sizeof(T.cfg3_path), "%s",
	         th_config("sessions-d.ini",
	                   node_ini(T.base3, "sessions-d", "")));
	th_server_start(&T.s3, T.cfg3_path, T.port3);
	assert_int_equal(metric(T.port3, "roomgate_authz_session_cache_enabled"),
	                 0);
	sess_new(&x, "bob");
	for (int i = 0; i < 3; i++)
		assert_int_equal(authz(T.base3, &x), 200);
	assert_int_equal(metric(T.port3, HITS), 0);
	assert_int_equal(metric(T.port3, MISSES), 0);
	sess_free(&x);
	th_server_stop(&T.s3);
	T.s3.pid = 0;
}

/* ---- review findings F1 and F2 ---------------------------------------- */

static long long listen_got_ms = -1;

static void
listen_on(void *arg, const char *payload)
{
	(void)arg;
	(void)payload;
	if (listen_got_ms < 0)
		listen_got_ms = now_ms();
}

static void
listen_busy(void *arg, int b)
{
	(void)arg;
	(void)b;
}

/*
 * F1: a notification that reaches the LISTEN socket right behind the
 * answer to the connection's periodic check is read together with it;
 * the wait that reads them hands it over (it used to sit in libpq's list
 * until the next check's answer, ~1 s later, while the socket looked
 * drained and the cache served). Drives db_authz_listen_wait as the
 * node's thread does, against the test's PostgreSQL.
 */
static void
notify_behind_the_check_answer(void **state)
{
	struct db_authz_listen *l = NULL;
	PGconn *w = sth_pg();
	char err[512];
	long long t;

	(void)state;
	if (db_authz_listen_open(th_env("RG_TEST_PG_URL"), 5, &l, err,
	                         sizeof(err)) != 0)
		fail_msg("listen: %s", err);
	for (int round = 0; round < 2; round++) {
		listen_got_ms = -1;
		/* Quiet past the check interval: this wait sends the check
		 * and returns before its answer is there. */
		nap(1100);
		assert_int_equal(db_authz_listen_wait(l, 0, 1000, listen_on,
		                                      listen_busy, NULL, err,
		                                      sizeof(err)),
		                 0);
		assert_true(listen_got_ms < 0);
		/* The answer arrives; then a notification commits; both wait
		 * unread on the socket, the notification behind. */
		nap(50);
		sql_on(w,
		       "NOTIFY roomgate_authz, 's "
		       "00000000000000000000000000000000"
		       "00000000000000000000000000000000'",
		       NULL);
		t = now_ms();
		nap(50);
		assert_int_equal(db_authz_listen_wait(l, 250, 1000, listen_on,
		                                      listen_busy, NULL, err,
		                                      sizeof(err)),
		                 0);
		if (listen_got_ms < 0)
			fail_msg("round %d: the wait that read the check's "
			         "answer did not hand over the notification "
			         "behind it",
			         round);
		assert_true(listen_got_ms - t < 500);
	}
	db_authz_listen_close(l);
	PQfinish(w);
}

/* Resident set of a node, kB (-1 unknown). */
static long
rss_kb(pid_t pid)
{
	char path[64], buf[4096];
	long kb = -1;
	size_t n;
	FILE *f;
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strstr(buf, "\nVmRSS:")) != NULL)
		kb = strtol(p + 7, NULL, 10);
	return kb;
}

/* Variant i of meeting id id: its hex letters upper-cased by i's bits. */
static void
id_variant(const char *id, int i, char out[40])
{
	int bit = 0;

	snprintf(out, 40, "%s", id);
	for (char *p = out; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'f') {
			if (i & (1 << bit))
				*p = (char)(*p - 'a' + 'A');
			bit++;
		}
}

/* The meetings these tests add leave the lists of the binaries after
 * (one database for the whole run): archived when done. */
static void
archive(const char *id)
{
	sql("UPDATE meetings SET archived_at = now() WHERE id = $1::uuid", id);
}

static void
set_groups(const char *id, const char *groups)
{
	const char *v[2] = {groups, id};
	PGresult *res = PQexecParams(T.pg,
	                             "UPDATE meetings SET allowed_groups = "
	                             "$1::text[] WHERE id = $2::uuid",
	                             2, NULL, v, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s", PQerrorMessage(T.pg));
	PQclear(res);
}

/*
 * F2: one admitted session naming its meeting in many spellings (letter
 * case of the id, the link) holds one entry; with the meeting's groups
 * at what a directory check takes (64 DNs of ~1 KB: a ~60 KB entry), the
 * node's memory does not grow with the spellings. Measured on node c,
 * started with AddressSanitizer's quarantine off (freed memory reused at
 * once, as without it) so that its resident set shows what is held.
 */
static void
spellings_share_one_entry(void **state)
{
	struct sess x;
	char ref[40], link[80], code[16], id[40], *big, saved[512], opts[600];
	const char *asan;
	size_t o = 0, cap = 200000;
	double e0, e1, h0, h1;
	long r0, r1;
	int n = 0;

	(void)state;
	assert_non_null(big = malloc(cap));
	ath_new_meeting(T.base, T.host_token, ALLOWED, "sessions-spell", 0,
	                link, code, id);
	sess_new(&x, "bob");
	join_ref(&x, link, code);
	o += (size_t)snprintf(big + o, cap - o, "{\"%s\"", ALLOWED);
	for (int i = 0; i < 63; i++) {
		o += (size_t)snprintf(big + o, cap - o, ",\"cn=g%03d", i);
		memset(big + o, 'x', 900);
		o += 900;
		o += (size_t)snprintf(big + o, cap - o, ",%s\"", GROUPS);
	}
	snprintf(big + o, cap - o, "}");
	set_groups(id, big);
	free(big);
	stop_c();
	snprintf(T.cfg3_path, sizeof(T.cfg3_path), "%s",
	         th_config("sessions-e.ini",
	                   node_ini(T.base3, "sessions-e",
	                            "session_cache = on\n"
	                            "session_cache_ttl_ms = 60000")));
	asan = getenv("ASAN_OPTIONS");
	snprintf(saved, sizeof(saved), "%s", asan != NULL ? asan : "");
	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=0", saved,
	         saved[0] != '\0' ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	th_server_start(&T.s3, T.cfg3_path, T.port3);
	if (asan != NULL)
		setenv("ASAN_OPTIONS", saved, 1);
	else
		unsetenv("ASAN_OPTIONS");
	if (!wait_metric(T.port3, CONNECTED, 1))
		fail_msg("node e never listened");
	warm_ref(T.base3, T.port3, x.cookie, id);
	/* Settle the allocator's first growth on the warm path. */
	for (int i = 0; i < 50; i++)
		assert_int_equal(authz_ref(T.base3, x.cookie, id, NULL, 0), 200);
	e0 = metric(T.port3, ENTRIES);
	h0 = metric(T.port3, HITS);
	r0 = rss_kb(T.s3.pid);
	for (int i = 1; i < 4096 && n < 800; i++) {
		char why[1024];
		long st;

		id_variant(id, i, ref);
		if (strcmp(ref, id) == 0)
			break; /* every letter done */
		if ((st = authz_ref(T.base3, x.cookie, ref, why,
		                    sizeof(why))) != 200)
			fail_msg("%s: %ld %s", ref, st, why);
		n++;
	}
	e1 = metric(T.port3, ENTRIES);
	h1 = metric(T.port3, HITS);
	r1 = rss_kb(T.s3.pid);
	print_message("%d spellings: entries %.0f -> %.0f, hits +%.0f, RSS "
	              "%ld -> %ld kB\n",
	              n, e0, e1, h1 - h0, r0, r1);
	if (n < 64 || e1 > e0 || h1 - h0 < n * 0.9 || r0 <= 0 ||
	    r1 - r0 >= 8 * 1024)
		fail_msg("%d spellings: entries %.0f -> %.0f, hits +%.0f, RSS "
		         "%ld -> %ld kB",
		         n, e0, e1, h1 - h0, r0, r1);
	/* The link and the id of one meeting: one entry between them. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(authz_ref(T.base3, x.cookie, link, NULL, 0),
		                 200);
		assert_int_equal(authz_ref(T.base3, x.cookie, id, NULL, 0),
		                 200);
	}
	assert_true(metric(T.port3, ENTRIES) <= e0);
	assert_true(metric(T.port3, "roomgate_authz_session_cache_bytes") <=
	            metric(T.port3, "roomgate_authz_session_cache_max_bytes"));
	th_server_stop(&T.s3);
	T.s3.pid = 0;
	archive(id);
	sess_free(&x);
}

/* F2: a session in more meetings than SESSION_MAX keeps its newest. */
static void
a_session_holds_a_few(void **state)
{
	enum { N = SESSION_MAX + 4 };
	struct sess x;
	char link[N][80], code[16], id[N][40], title[32];
	double e0, ev0;

	(void)state;
	sess_new(&x, "bob");
	for (int i = 0; i < N; i++) {
		snprintf(title, sizeof(title), "sessions-cap-%d", i);
		ath_new_meeting(T.base, T.host_token, ALLOWED, title, 0,
		                link[i], code, id[i]);
		join_ref(&x, link[i], code);
	}
	e0 = metric(T.port, ENTRIES);
	ev0 = metric(T.port,
	             "roomgate_authz_session_cache_session_evictions_total");
	for (int i = 0; i < N; i++)
		assert_int_equal(authz_ref(T.base, x.cookie, id[i], NULL, 0),
		                 200);
	assert_true(metric(T.port, ENTRIES) - e0 <= SESSION_MAX);
	assert_true(metric(T.port, "roomgate_authz_session_cache_session_"
	                           "evictions_total") -
	                ev0 >=
	            N - SESSION_MAX);
	/* The newest is still served from memory. */
	warm_ref(T.base, T.port, x.cookie, id[N - 1]);
	for (int i = 0; i < N; i++)
		archive(id[i]);
	sess_free(&x);
}

/* F2: a database "yes" the directory refuses is not stored. */
static void
directory_denial_not_stored(void **state)
{
	struct sess x;
	char link[80], code[16], id[40], why[1024];
	double s0, m0;

	(void)state;
	ath_new_meeting(T.base, T.host_token, ALLOWED, "sessions-deny", 0,
	                link, code, id);
	sess_new(&x, "bob");
	join_ref(&x, link, code);
	set_groups(id, "{\"cn=nobody," GROUPS "\"}");
	/* The meeting's notification has been applied on node a. */
	nap(200);
	s0 = metric(T.port, STORES);
	m0 = metric(T.port, MISSES);
	for (int i = 0; i < 3; i++) {
		long st = authz_ref(T.base, x.cookie, id, why, sizeof(why));

		if (st != 403 || strstr(why, "not_member") == NULL)
			fail_msg("not a directory denial: %ld %s", st, why);
	}
	assert_int_equal(metric(T.port, STORES), s0);
	assert_int_equal(metric(T.port, MISSES), m0 + 3);
	archive(id);
	sess_free(&x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(served_from_memory),
	    cmocka_unit_test(logout_reaches_the_other_node),
	    cmocka_unit_test(revoke_reaches_the_other_node),
	    cmocka_unit_test(admission_ended_reaches_both),
	    cmocka_unit_test(meeting_changes_reach_both),
	    cmocka_unit_test(session_expired_and_swept),
	    cmocka_unit_test(database_down_never_cached),
	    cmocka_unit_test(listen_killed_flushed_and_back),
	    cmocka_unit_test(watcher_end_reaches_both),
	    cmocka_unit_test(ttl_and_expiry_bound_an_entry),
	    cmocka_unit_test(touch_still_happens),
	    cmocka_unit_test(live_mode_keeps_none),
	    cmocka_unit_test(notify_behind_the_check_answer),
	    cmocka_unit_test(spellings_share_one_entry),
	    cmocka_unit_test(a_session_holds_a_few),
	    cmocka_unit_test(directory_denial_not_stored),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
