/*
 * Integration: fault injection under a bounded load. Two roomgate nodes
 * share the harness's PostgreSQL and slapd; threads in this process sign
 * in real people through the test IdP and keep sending admissions (right
 * and wrong codes, members, a non-member, a locked account) and
 * forward-auth checks to both nodes while each fault happens:
 *
 *   - PostgreSQL restarted
 *   - slapd stopped and started again, then a member removed from the group
 *   - slapd frozen (SIGSTOP) for three times the LDAP op timeout
 *   - node B killed with SIGKILL while its requests wait inside a
 *     transaction (audit_log held locked by the test)
 *   - the webhook receiver down while code rotations fill the outbox
 *
 * After each: every answer was one the decision allows (never a 500, never
 * a hang, never 200 for a wrong code, a non-member, a locked or a removed
 * person), every admission has its allow audit record (SQL join), every
 * outbox event is delivered and received, the pools' in_use and waiting
 * gauges come back to 0 (nothing leaked), node A is the same process
 * throughout and admits again without a restart.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#define SECRET "fault-webhook-secret-1b7e44c2"
#define WINDOW_S 300
#define MAX_REC 4096

/* The shared SAML helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#include "tests/integration/webhook_rcv_th.h"
#pragma GCC diagnostic pop
#include "tests/lib/th_fault.h"

#define SP_ENTITY "https://roomgate-faults.test/saml/metadata"
#define IDP_ENTITY "https://idp-faults.test/saml"
#define JWT_SECRET "jitsi-shared-secret-for-the-fault-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define BOB_DN "uid=bob,ou=people,dc=example,dc=com"
#define OP_TIMEOUT_MS 1000
#define DB_POOL 4
#define LDAP_POOL 4
/* Longest any answer may take, faults included (a hang otherwise). */
#define MAX_ANSWER_S 12.0

enum { NWORKERS = 5 };

struct worker {
	const char *user;
	int member;    /* an active member of GROUP */
	int removable; /* bob: taken out of the group during a phase */
	struct sth_browser b;
	pthread_t t;
	unsigned seed;
};

static struct {
	int idp_port, a_port, b_port;
	char base[64], base_b[64], idp_base[64];
	char cfg_a[512], cfg_b[512];
	struct th_server a, b;
	pid_t a_pid, idp;
	PGconn *pg;
	char host_token[64];
	char link[80], code[16], id[40];
	char rot_id[40], rot_link[80], rot_code[16]; /* rotated meeting */
	struct sth_browser alice; /* the main thread's own */
	struct worker w[NWORKERS];
	long fds0;
	int rotations_ok;

	/* the load */
	atomic_int stop;
	int nrunning; /* load threads started and not yet joined */
	atomic_int bob_removing; /* the change is on its way */
	atomic_int bob_removed;  /* ... and slapd has confirmed it */
	atomic_int b_down; /* node B is dead: no answer from it is fine */
	pthread_mutex_t mu;
	long n_req, n_200, n_401, n_403, n_503, n_none, n_other;
	long bob_403_after_removal;
	double max_s;
	int violations;
	char first_violation[512];
} T = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char bob_out[] = "dn: " GROUP "\nchangetype: modify\n"
                              "delete: member\nmember: " BOB_DN "\n";
static const char bob_back[] = "dn: " GROUP "\nchangetype: modify\n"
                               "add: member\nmember: " BOB_DN "\n";

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the load --------------------------------------------------------- */

static void
violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
violation(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&T.mu);
	if (T.violations++ == 0) {
		va_start(ap, fmt);
		vsnprintf(T.first_violation, sizeof(T.first_violation), fmt,
		          ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&T.mu);
}

static void
count(long st, double took)
{
	pthread_mutex_lock(&T.mu);
	T.n_req++;
	if (st == 200)
		T.n_200++;
	else if (st == 401)
		T.n_401++;
	else if (st == 403)
		T.n_403++;
	else if (st == 503)
		T.n_503++;
	else if (st == -1)
		T.n_none++;
	else
		T.n_other++;
	if (took > T.max_s)
		T.max_s = took;
	pthread_mutex_unlock(&T.mu);
}

/* One join and one forward-auth check of w at base; every answer is
 * checked against what the decision may say. */
static void
one_round(struct worker *w, const char *base, int node_b)
{
	struct sth_resp r;
	char body[64], path[128], meet[128], xff[64];
	const char *h[] = {meet, xff, NULL}, *hj[] = {xff, NULL};
	int wrong = rand_r(&w->seed) % 7 == 0;
	int removing = w->removable && atomic_load(&T.bob_removing);
	int removed = w->removable && atomic_load(&T.bob_removed);
	int may_admit = w->member && !removed;
	double t0;
	long st;

	/* Each worker's failures count against an address of its own
	 * (the nodes trust 127.0.0.1 as a proxy), not against 127.0.0.1,
	 * which the suite's later tests share. */
	snprintf(xff, sizeof(xff), "X-Forwarded-For: 10.66.0.%d",
	         (int)(w - T.w) + 1);
	snprintf(path, sizeof(path), "/v1/join/%s", T.link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}",
	         wrong ? "00000000" : T.code);
	t0 = mono_s();
	st = ath_req(base, &w->b, "POST", path, hj, body, &r);
	count(st, mono_s() - t0);
	if (mono_s() - t0 > MAX_ANSWER_S)
		violation("%s: join took %.1f s", w->user, mono_s() - t0);
	if (st == 200 && (!may_admit || wrong))
		violation("%s (member %d, removed %d, wrong code %d) was "
		          "admitted: %.200s",
		          w->user, w->member, removed, wrong, r.body);
	else if (st == -1 && !(node_b && atomic_load(&T.b_down)))
		violation("%s: no answer to a join from a live node",
		          w->user);
	else if (st != 200 && st != 401 && st != 403 && st != 503 &&
	         st != -1)
		violation("%s: join answered %ld: %.200s", w->user, st,
		          r.body);
	else if (st == 401 && !wrong)
		violation("%s: the right code was refused as wrong: %.200s",
		          w->user, r.body);
	else if (st == 403 && may_admit && !removing)
		violation("%s: a member was refused: %.200s", w->user,
		          r.body);
	if (st == 403 && removed) {
		pthread_mutex_lock(&T.mu);
		T.bob_403_after_removal++;
		pthread_mutex_unlock(&T.mu);
	}
	sth_resp_free(&r);

	snprintf(meet, sizeof(meet), "X-Roomgate-Meeting: %s", T.link);
	removed = w->removable && atomic_load(&T.bob_removed);
	t0 = mono_s();
	st = ath_req(base, &w->b, "GET", "/v1/authz", h, NULL, &r);
	count(st, mono_s() - t0);
	if (mono_s() - t0 > MAX_ANSWER_S)
		violation("%s: authz took %.1f s", w->user, mono_s() - t0);
	if (st == 200 && (!w->member || removed))
		violation("%s (member %d, removed %d) passed forward-auth",
		          w->user, w->member, removed);
	else if (st == -1 && !(node_b && atomic_load(&T.b_down)))
		violation("%s: no answer to authz from a live node", w->user);
	else if (st != 200 && st != 403 && st != 503 && st != -1)
		violation("%s: authz answered %ld: %.200s", w->user, st,
		          r.body);
	sth_resp_free(&r);
}

static void *
load_thread(void *arg)
{
	struct worker *w = arg;
	int i = 0;

	while (!atomic_load(&T.stop)) {
		int on_b = i++ % 2;

		one_round(w, on_b ? T.base_b : T.base, on_b);
		usleep(20000);
	}
	return NULL;
}

/* Stops and joins the load threads still running. */
static void
load_join(void)
{
	atomic_store(&T.stop, 1);
	for (int i = 0; i < T.nrunning; i++)
		pthread_join(T.w[i].t, NULL);
	T.nrunning = 0;
}

static void
load_start(void)
{
	load_join(); /* a phase that failed left its load running */
	pthread_mutex_lock(&T.mu);
	T.n_req = T.n_200 = T.n_401 = T.n_403 = T.n_503 = T.n_none = 0;
	T.n_other = T.bob_403_after_removal = 0;
	T.max_s = 0;
	T.violations = 0;
	T.first_violation[0] = '\0';
	pthread_mutex_unlock(&T.mu);
	atomic_store(&T.stop, 0);
	for (int i = 0; i < NWORKERS; i++) {
		assert_int_equal(
		    pthread_create(&T.w[i].t, NULL, load_thread, &T.w[i]), 0);
		T.nrunning = i + 1;
	}
}

static void
load_stop(const char *phase)
{
	load_join();
	print_message("%s: %ld requests: %ld x 200, %ld x 401, %ld x 403, "
	              "%ld x 503, %ld unanswered, %ld other; slowest "
	              "%.2f s\n",
	              phase, T.n_req, T.n_200, T.n_401, T.n_403, T.n_503,
	              T.n_none, T.n_other, T.max_s);
	if (T.violations > 0)
		fail_msg("%s: %d wrong answers under load; first: %s", phase,
		         T.violations, T.first_violation);
	/* the load was real: both kinds of answer came */
	assert_true(T.n_req > 40);
	assert_true(T.n_200 > 0);
	assert_true(T.n_403 > 0);
}

/* ---- checks after each fault ------------------------------------------ */

static void
metrics_of(const char *base, struct th_http *r)
{
	char url[128];

	snprintf(url, sizeof(url), "%s/metrics", base);
	/* as long as rotate() may wait, below */
	if (th_http_within(20000, "GET", url, NULL, NULL, 0, r) != 200)
		fail_msg("%s/metrics answered %ld", base, r->status);
}

/* The pools of node base go back to nothing in use and nobody waiting
 * (a leaked connection would stay in use for ever). */
static void
pools_settle(const char *base)
{
	static const char *const series[] = {
	    "roomgate_db_pool_connections{state=\"in_use\"}",
	    "roomgate_db_pool_waiting",
	    "roomgate_ldap_pool_connections{state=\"in_use\"}",
	    "roomgate_ldap_pool_waiting",
	};
	struct th_http *r = calloc(1, sizeof(*r));
	double v[4] = {-1, -1, -1, -1};

	assert_non_null(r);
	for (int i = 0; i < 100; i++) {
		int zero = 1;

		metrics_of(base, r);
		for (int k = 0; k < 4; k++) {
			v[k] = th_metric(r->body, series[k]);
			zero &= v[k] == 0;
		}
		if (zero) {
			/* and nothing more connected than configured */
			assert_true(th_metric(r->body,
			                      "roomgate_db_pool_connections{"
			                      "state=\"connected\"}") <= DB_POOL);
			assert_true(th_metric(r->body,
			                      "roomgate_ldap_pool_connections{"
			                      "state=\"connected\"}") <=
			            LDAP_POOL);
			free(r);
			return;
		}
		usleep(100000);
	}
	fail_msg("pools of %s did not settle: db in_use %g waiting %g, ldap "
	         "in_use %g waiting %g",
	         base, v[0], v[1], v[2], v[3]);
}

/* alice (signed in on the main thread) is admitted again, and passes
 * forward-auth, within 20 s. */
static void
admits_again(const char *base)
{
	struct sth_resp r;
	char body[64], path[128], meet[128];
	const char *h[] = {meet, NULL};
	long st = -1;

	snprintf(path, sizeof(path), "/v1/join/%s", T.link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", T.code);
	snprintf(meet, sizeof(meet), "X-Roomgate-Meeting: %s", T.link);
	for (int i = 0; i < 100 && st != 200; i++) {
		if (i > 0)
			usleep(200000);
		st = ath_req(base, &T.alice, "POST", path, NULL, body, &r);
		sth_resp_free(&r);
	}
	if (st != 200)
		fail_msg("%s did not admit again within 20 s (%ld)", base, st);
	assert_int_equal(ath_req(base, &T.alice, "GET", "/v1/authz", h, NULL,
	                         &r),
	                 200);
	sth_resp_free(&r);
}

/* Every outbox event of the rotated meeting is delivered and was
 * received whole (signature checked by the receiver); none is missing
 * for a rotation that was answered 200. */
static void
outbox_drains(void)
{
	PGresult *res = NULL;
	const char *v[1] = {T.rot_id};
	int n = 0, pending = -1;

	for (int i = 0; i < 300; i++) {
		pending = (int)ath_pg_count(
		    T.pg,
		    "SELECT count(*) FROM outbox WHERE topic = 'code.rotated' "
		    "AND payload->>'meeting_id' = $1 AND delivered_at IS NULL",
		    T.rot_id);
		if (pending == 0)
			break;
		usleep(100000);
	}
	if (pending != 0)
		fail_msg("%d code.rotated events still undelivered after 30 s",
		         pending);
	res = PQexecParams(T.pg,
	                   "SELECT id FROM outbox WHERE topic = "
	                   "'code.rotated' AND payload->>'meeting_id' = $1",
	                   1, NULL, v, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		long long id = strtoll(PQgetvalue(res, i, 0), NULL, 10);

		if (rcv_count(id) < 1)
			fail_msg("outbox event %lld is marked delivered but "
			         "was never received",
			         id);
	}
	PQclear(res);
	/* one event per rotation answered 200 (a rotation answered 503 may
	 * or may not have committed) */
	if (n < T.rotations_ok)
		fail_msg("%d rotations answered 200 but %d events exist",
		         T.rotations_ok, n);
}

static void
after_fault(const char *phase)
{
	(void)phase;
	/* no admission without its allow record (written in the same
	 * transaction) */
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions a "
	                              "WHERE a.meeting_id = $1::uuid AND NOT "
	                              "EXISTS (SELECT 1 FROM audit_log l "
	                              "WHERE l.event_type = 'admission' AND "
	                              "l.outcome = 'allow' AND "
	                              "l.details->>'admission_id' = "
	                              "a.id::text)",
	                              T.id),
	                 0);
	/* nobody outside the group, and no locked account, ever got in */
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid AND identity IN "
	                              "('dave', 'mallory')",
	                              T.id),
	                 0);
	/* and no allow record says otherwise */
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND outcome = "
	                              "'allow' AND identity IN ('dave', "
	                              "'mallory')",
	                              T.id),
	                 0);
	/* the same node A, never restarted */
	assert_int_equal(T.a.pid, T.a_pid);
	assert_int_equal(kill(T.a.pid, 0), 0);
	admits_again(T.base);
	if (!atomic_load(&T.b_down))
		admits_again(T.base_b);
	pools_settle(T.base);
	if (!atomic_load(&T.b_down))
		pools_settle(T.base_b);
	outbox_drains();
	/* no descriptors piling up in node A */
	{
		long fds = th_proc_fds(T.a.pid);

		for (int i = 0; i < 50 && fds > T.fds0 + 12; i++) {
			usleep(100000);
			fds = th_proc_fds(T.a.pid);
		}
		if (fds > T.fds0 + 12)
			fail_msg("node A holds %ld descriptors, %ld at the "
			         "start",
			         fds, T.fds0);
	}
}

/* A rotation of the rotated meeting on base; its status. Like the load's
 * requests, it may wait out a fault (or a stalled machine) for 20 s,
 * never longer. */
static long
rotate(const char *base)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256], auth[128];
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	long st;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/v1/meetings/%s/code:rotate", base,
	         T.rot_id);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         T.host_token);
	st = th_http_within(20000, "POST", url, h, "{}", 2, r);
	if (st == 200)
		T.rotations_ok++;
	else if (st != 503 && st != -1)
		fail_msg("rotation answered %ld: %s", st, r->body);
	free(r);
	return st;
}

/* ---- fixture ---------------------------------------------------------- */

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "faults-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\npool_size = %d\n"
	         "connect_timeout = 2\nacquire_timeout_ms = 3000\n"
	         "[ldap]\nbase_dn = %s\npool_size = %d\n"
	         "network_timeout_ms = %d\nop_timeout_ms = %d\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\nmax_failures = 1000\n"
	         "source_max_failures = 10000000\nprobe_identities = 0\n"
	         "trusted_proxies = 127.0.0.1\n"
	         "[tokens]\nhs256_secret = " JWT_SECRET "\n"
	         "issuer = rg-faults\naudience = jitsi\n"
	         "subject = meet.example.com\n"
	         "[webhooks]\nurl = http://127.0.0.1:%d/hooks\n"
	         "secret = " SECRET "\nworkers = 2\nbackoff_base_ms = 100\n"
	         "backoff_cap_ms = 1000\npoll_interval_ms = 100\n"
	         "connect_timeout_ms = 500\ntimeout_ms = 2000\n",
	         T.base, DB_POOL, th_env("RG_TEST_LDAP_BASE_DN"), LDAP_POOL,
	         OP_TIMEOUT_MS, OP_TIMEOUT_MS, key, crt, md, R.port);
	return ini;
}

static int
setup(void **state)
{
	static const struct {
		const char *user;
		int member, removable;
	} people[NWORKERS] = {
	    /* the test IdP knows these five; alice's worker has a session
	     * of its own, apart from the main thread's */
	    {"alice", 1, 0}, {"carol", 1, 0},   {"bob", 1, 1},
	    {"dave", 0, 0},  {"mallory", 0, 0},
	};
	char spmd[512];
	const char *sps[2];
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	T.idp_port = th_free_port();
	T.a_port = th_free_port();
	T.b_port = th_free_port();
	R.port = th_free_port();
	rcv_start();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.a_port);
	snprintf(T.base_b, sizeof(T.base_b), "http://127.0.0.1:%d", T.b_port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "faults-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "faults-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_a, sizeof(T.cfg_a), "%s",
	         th_config("faults-a.ini", node_ini()));
	snprintf(T.cfg_b, sizeof(T.cfg_b), "%s",
	         th_config("faults-b.ini", node_ini()));
	th_server_start(&T.a, T.cfg_a, T.a_port);
	th_server_start(&T.b, T.cfg_b, T.b_port);
	T.a_pid = T.a.pid;
	sth_save_sp_metadata(T.base, "faults-sp-md.xml");
	T.pg = sth_pg();
	/* Events other tests left behind are not this file's to count. */
	PQclear(PQexec(T.pg, "UPDATE outbox SET delivered_at = now() WHERE "
	                     "delivered_at IS NULL"));
	ath_token(T.cfg_a, "host", "faults-host", "alice", T.host_token);
	ath_new_meeting(T.base, T.host_token, GROUP, "faults", 0, T.link,
	                T.code, T.id);
	ath_new_meeting(T.base, T.host_token, GROUP, "faults rotated", 0,
	                T.rot_link, T.rot_code, T.rot_id);
	sth_browser_init(&T.alice);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	for (int i = 0; i < NWORKERS; i++) {
		T.w[i].user = people[i].user;
		T.w[i].member = people[i].member;
		T.w[i].removable = people[i].removable;
		T.w[i].seed = 1234u + (unsigned)i;
		sth_browser_init(&T.w[i].b);
		/* a request may wait out a fault, never longer */
		curl_easy_setopt(T.w[i].b.h, CURLOPT_TIMEOUT, 20L);
		sth_sign_in(&T.w[i].b, T.base, T.idp_base, people[i].user);
	}
	T.fds0 = th_proc_fds(T.a.pid);
	assert_true(T.fds0 > 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	/* A phase that failed left its load running: it uses the
	 * browsers freed below. */
	load_join();
	(void)ath_ldap_admin_try(bob_back);
	for (int i = 0; i < NWORKERS; i++)
		sth_browser_free(&T.w[i].b);
	sth_browser_free(&T.alice);
	sth_idp_stop(T.idp);
	th_server_stop(&T.a);
	th_server_stop(&T.b);
	rcv_stop();
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- the faults ------------------------------------------------------- */

static void
postgresql_restarts_under_load(void **state)
{
	(void)state;
	load_start();
	usleep(1500000);
	rotate(T.base);
	rotate(T.base_b);
	th_pg_stop();
	/* down: the decision fails closed (503), nobody is admitted */
	usleep(1500000);
	rotate(T.base);
	th_pg_start();
	/* this test's own connection went down with it */
	PQreset(T.pg);
	assert_int_equal(PQstatus(T.pg), CONNECTION_OK);
	usleep(3000000);
	rotate(T.base);
	rotate(T.base_b);
	load_stop("postgresql restart");
	assert_true(T.n_503 > 0);
	after_fault("postgresql restart");
}

static void
slapd_restarts_and_a_member_is_removed(void **state)
{
	(void)state;
	load_start();
	usleep(1500000);
	th_ldap_stop();
	usleep(1500000);
	th_ldap_start();
	usleep(2000000);
	rotate(T.base);
	/* bob leaves the group while his thread keeps trying */
	atomic_store(&T.bob_removing, 1);
	ath_ldap_admin(bob_out);
	atomic_store(&T.bob_removed, 1);
	usleep(3000000);
	load_stop("slapd restart");
	assert_true(T.n_503 > 0);
	/* bob was refused after the change, and no admission of his was
	 * made after it */
	assert_true(T.bob_403_after_removal > 0);
	after_fault("slapd restart");
	ath_ldap_admin(bob_back);
	atomic_store(&T.bob_removed, 0);
	atomic_store(&T.bob_removing, 0);
}

static void
slapd_frozen_longer_than_the_timeout(void **state)
{
	double t0;

	(void)state;
	load_start();
	usleep(1500000);
	th_ldap_freeze();
	t0 = mono_s();
	usleep(3 * OP_TIMEOUT_MS * 1000);
	rotate(T.base); /* the database alone: unaffected */
	th_ldap_thaw();
	usleep(3000000);
	load_stop("slapd frozen");
	/* answered 503 within the timeouts, not held until the thaw */
	assert_true(T.n_503 > 0);
	assert_true(T.max_s < 3.0 * OP_TIMEOUT_MS / 1000.0 + 4.0);
	assert_true(mono_s() - t0 > 3.0);
	after_fault("slapd frozen");
}

static void
node_killed_mid_request(void **state)
{
	PGconn *hold;
	PGresult *res;
	long waiters = 0;

	(void)state;
	hold = sth_pg();
	load_start();
	usleep(1500000);
	/* Hold every recording transaction at its audit insert: the
	 * requests on both nodes are inside a transaction now. */
	res = PQexec(hold, "BEGIN; LOCK TABLE audit_log IN EXCLUSIVE MODE");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	for (int i = 0; i < 50 && waiters < 2; i++) {
		usleep(100000);
		waiters = ath_pg_count(
		    T.pg,
		    "SELECT count(*) FROM pg_stat_activity WHERE "
		    "wait_event_type = 'Lock' AND $1::text IS NOT NULL",
		    "x");
	}
	if (waiters < 2) {
		char *what = sth_pg_value(
		    T.pg,
		    "SELECT string_agg(coalesce(wait_event_type, '-') || ' ' "
		    "|| left(query, 60), E'\n') FROM pg_stat_activity WHERE "
		    "usename = 'roomgate' AND $1::text IS NOT NULL",
		    "x");

		PQclear(PQexec(hold, "ROLLBACK"));
		PQfinish(hold);
		fail_msg("no request waits on the held audit_log:\n%s",
		         what ? what : "-");
	}
	atomic_store(&T.b_down, 1);
	assert_int_equal(kill(T.b.pid, SIGKILL), 0);
	assert_int_equal(waitpid(T.b.pid, NULL, 0), T.b.pid);
	T.b.pid = 0;
	usleep(300000);
	res = PQexec(hold, "ROLLBACK");
	PQclear(res);
	PQfinish(hold);
	usleep(3000000);
	load_stop("node B killed");
	after_fault("node B killed");
	/* B's database sessions went with it: only A's pool (and this
	 * test's connection, and the webhook workers' claims) remain */
	{
		long n = 0;

		for (int i = 0; i < 100; i++) {
			n = ath_pg_count(T.pg,
			                 "SELECT count(*) FROM pg_stat_activity "
			                 "WHERE usename = 'roomgate' AND "
			                 "$1::text IS NOT NULL",
			                 "x");
			if (n <= DB_POOL + 3)
				break;
			usleep(100000);
		}
		if (n > DB_POOL + 3)
			fail_msg("%ld application connections after node B "
			         "died (pool %d)",
			         n, DB_POOL);
	}
	/* a new node B joins and serves */
	th_server_start(&T.b, T.cfg_b, T.b_port);
	atomic_store(&T.b_down, 0);
	admits_again(T.base_b);
}

static void
outbox_fills_while_the_receiver_is_down(void **state)
{
	struct th_http *r = calloc(1, sizeof(*r));
	double failed0, failed1;
	long pending;

	(void)state;
	assert_non_null(r);
	metrics_of(T.base, r);
	failed0 = th_metric(r->body,
	                    "roomgate_webhook_deliveries_total{result="
	                    "\"failed\"}");
	rcv_stop();
	load_start();
	for (int i = 0; i < 12; i++) {
		assert_int_equal(rotate(i % 2 ? T.base_b : T.base), 200);
		usleep(250000);
	}
	pending = ath_pg_count(T.pg,
	                       "SELECT count(*) FROM outbox WHERE topic = "
	                       "'code.rotated' AND payload->>'meeting_id' = "
	                       "$1 AND delivered_at IS NULL",
	                       T.rot_id);
	assert_true(pending >= 10);
	metrics_of(T.base, r);
	failed1 = th_metric(r->body,
	                    "roomgate_webhook_deliveries_total{result="
	                    "\"failed\"}");
	metrics_of(T.base_b, r);
	failed1 += th_metric(r->body,
	                     "roomgate_webhook_deliveries_total{result="
	                     "\"failed\"}");
	assert_true(failed1 > failed0);
	rcv_start();
	load_stop("webhook receiver down");
	after_fault("webhook receiver down");
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(postgresql_restarts_under_load),
	    cmocka_unit_test(slapd_restarts_and_a_member_is_removed),
	    cmocka_unit_test(slapd_frozen_longer_than_the_timeout),
	    cmocka_unit_test(node_killed_mid_request),
	    cmocka_unit_test(outbox_fills_while_the_receiver_is_down),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
