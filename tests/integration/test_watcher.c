/*
 * Integration: push revocation end to end -- real `roomgate serve` nodes
 * with [directory] watch = on, real sign-ins at the test IdP, the
 * harness's slapd (syncprov) changed with ldapmodify, PostgreSQL, and the
 * in-process webhook receiver (webhook_rcv_th.h).
 *
 *   - a member removed from the group: the admission ends (revoked,
 *     directory_removed) without any request, /v1/authz answers 403, an
 *     audit record and the admission.revoked webhook arrive; the session
 *     stays (the person is still somebody);
 *   - a person locked: admissions and sessions end (directory_disabled),
 *     session.revoked arrives;
 *   - slapd restarted while removals happen: none is missed;
 *   - two nodes: exactly one watcher (metric and the lock in pg_locks);
 *     kill -9 it and the other takes over and acts on the next removal;
 *   - a removal while no node runs: the next watcher's full refresh
 *     reconciles the group and ends the admission -- and only that one:
 *     not an admission whose identity is not byte for byte a watched
 *     person's (case-different, unknown), which the live check decides.
 *
 * Every wait polls with a generous bound (a loaded CI machine), never a
 * fixed sleep.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SECRET "watcher-integration-secret-7d2e01"
#define WINDOW_S 300
#define MAX_REC 4096
#include "tests/integration/webhook_rcv_th.h"

#define SP_ENTITY "https://roomgate-watch.test/saml/metadata"
#define IDP_ENTITY "https://idp-watch.test/saml"
#define ALLOWED "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define PEOPLE ",ou=people,dc=example,dc=com"
#define BOUND_MS 15000

static struct {
	int idp_port, port, port2;
	char base[64], base2[64], idp_base[64];
	struct th_server s, s2;
	pid_t idp;
	PGconn *pg;
	char cfg_path[512], cfg2_path[512];
	char host_token[64];
	struct sth_browser bob, carol;
} T;

static const char *
node_ini(const char *base, const char *node)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "watch-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\nnode_name = %s\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[directory]\nwatch = on\nwatch_retry_ms = 300\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\n"
	         "[tokens]\nhs256_secret = watch-test-shared-secret-0123456789"
	         "\nissuer = roomgate-test\naudience = jitsi\n"
	         "subject = meet.example.com\n"
	         "[webhooks]\nurl = http://127.0.0.1:%d/hooks/roomgate\n"
	         "secret = " SECRET "\nconnect_timeout_ms = 1000\n"
	         "poll_interval_ms = 100\nbackoff_base_ms = 200\n",
	         base, node, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md,
	         R.port);
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

/* Polls until node port's watcher leads and is caught up. */
static int
wait_caught_up(int port)
{
	for (int waited = 0; waited < BOUND_MS; waited += 50) {
		if (metric(port, "roomgate_directory_watch_leader") == 1 &&
		    metric(port, "roomgate_directory_watch_caught_up") == 1)
			return 1;
		sleep_a_bit();
	}
	return 0;
}

static long
count(const char *sql, const char *p)
{
	return ath_pg_count(T.pg, sql, p);
}

/* Polls until sql ($1 = p) counts want. */
static int
wait_count(const char *sql, const char *p, long want)
{
	for (int waited = 0; waited < BOUND_MS; waited += 50) {
		if (count(sql, p) == want)
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
	if (strcmp(op, "add") == 0)
		(void)ath_ldap_admin_try(ldif); /* may be there already */
	else
		ath_ldap_admin(ldif);
}

static void
join(struct sth_browser *b, const char *link, const char *code)
{
	struct sth_resp r;
	char path[128], body[64];

	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	if (ath_req(T.base, b, "POST", path, NULL, body, &r) != 200)
		fail_msg("join: %ld %s", r.status, r.body);
	sth_resp_free(&r);
}

/* The admission of identity in meeting id (uuid text, static buffer). */
static const char *
admission_of(const char *identity, const char *meeting)
{
	static char out[64];
	const char *v[2] = {identity, meeting};
	PGresult *res = PQexecParams(
	    T.pg,
	    "SELECT id FROM admissions WHERE identity = $1 AND meeting_id = "
	    "$2::uuid ORDER BY created_at DESC LIMIT 1",
	    2, NULL, v, NULL, NULL, 0);

	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(res), 1);
	snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

/* A live admission written straight into the table, as a join would (for
 * people the test IdP cannot sign in). */
static void
admit_row(const char *identity, const char *meeting)
{
	const char *v[2] = {identity, meeting};
	PGresult *res = PQexecParams(
	    T.pg,
	    "INSERT INTO admissions (meeting_id, identity, matched_group, "
	    "state, admitted_at) VALUES ($2::uuid, $1, '" ALLOWED "', "
	    "'admitted', now())",
	    2, NULL, v, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("insert admission: %s", PQerrorMessage(T.pg));
	PQclear(res);
}

/* Has the receiver got an event of type whose data.field is value? */
static int
rcv_has(const char *type, const char *field, const char *value)
{
	int found = 0;

	rcv_lock();
	for (int i = 0; i < 32 && i < R.nring && !found; i++) {
		json_t *o, *d;

		if (strcmp(R.ring[i].type, type) != 0)
			continue;
		o = json_loads(R.ring[i].body, 0, NULL);
		d = json_object_get(o, "data");
		found = json_is_string(json_object_get(d, field)) &&
		        strcmp(json_string_value(json_object_get(d, field)),
		               value) == 0;
		json_decref(o);
	}
	rcv_unlock();
	return found;
}

static int
wait_rcv(const char *type, const char *field, const char *value)
{
	for (int waited = 0; waited < BOUND_MS; waited += 50) {
		if (rcv_has(type, field, value))
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

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (sodium_init() < 0)
		fail_msg("sodium_init");
	R.port = th_free_port();
	rcv_start();
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
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "watch-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "watch-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("watch.ini", node_ini(T.base, "watch-a")));
	th_server_start(&T.s, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "watch-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "watch-host", "user01", T.host_token);
	sth_browser_init(&T.bob);
	sth_browser_init(&T.carol);
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	sth_sign_in(&T.carol, T.base, T.idp_base, "carol");
	if (!wait_caught_up(T.port))
		fail_msg("the watcher of node a never caught up");
	return 0;
}

static int
teardown(void **state)
{
	static const char *const uids[] = {
	    "bob", "user30", "user31", "user32", "user33", "user34", "user35"};

	(void)state;
	/* Whatever a failed test left changed comes back. */
	for (size_t i = 0; i < sizeof(uids) / sizeof(*uids); i++)
		member("add", uids[i]);
	(void)ath_ldap_admin_try("dn: uid=carol" PEOPLE "\nchangetype: "
	                         "modify\ndelete: pwdAccountLockedTime\n");
	sth_browser_free(&T.bob);
	sth_browser_free(&T.carol);
	sth_idp_stop(T.idp);
	if (T.s.pid > 0)
		th_server_stop(&T.s);
	if (T.s2.pid > 0)
		th_server_stop(&T.s2);
	PQfinish(T.pg);
	rcv_stop();
	curl_global_cleanup();
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

static void
removal_revokes_at_once(void **state)
{
	char link[80], code[16], id[40], hdr[160], adm[64];
	const char *h[] = {hdr, NULL};

	(void)state;
	ath_new_meeting(T.base, T.host_token, ALLOWED, "watch removal", 0, link,
	                code, id);
	join(&T.bob, link, code);
	snprintf(adm, sizeof(adm), "%s", admission_of("bob", id));
	snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", link);
	assert_int_equal(
	    ath_req_status(T.base, &T.bob, "GET", "/v1/authz", h, NULL), 200);

	member("delete", "bob");
	/* Nobody asks anything: the watcher ends the admission itself. */
	if (!wait_count("SELECT count(*) FROM admissions WHERE id = "
	                "$1::uuid AND state = 'revoked' AND revoke_reason = "
	                "'directory_removed' AND ended_at IS NOT NULL",
	                adm, 1))
		fail_msg("admission %s not revoked by the watcher", adm);
	/* Put back at once: only the pushed revocation can have ended it,
	 * and it stays ended. */
	member("add", "bob");
	assert_int_equal(
	    ath_req_status(T.base, &T.bob, "GET", "/v1/authz", h, NULL), 403);
	/* The person is still somebody: the session lives. */
	assert_int_equal(
	    ath_req_status(T.base, &T.bob, "GET", "/v1/me", NULL, NULL), 200);
	assert_int_equal(count("SELECT count(*) FROM audit_log WHERE "
	                       "event_type = 'admission.revoke' AND reason = "
	                       "'directory_removed' AND identity = 'bob' AND "
	                       "details->>'admission' = $1 AND details->>'by' "
	                       "= 'directory_watch'",
	                       adm),
	                 1);
	assert_int_equal(count("SELECT count(*) FROM outbox WHERE topic = "
	                       "'admission.revoked' AND payload->>"
	                       "'admission_id' = $1",
	                       adm),
	                 1);
	if (!wait_rcv("admission.revoked", "admission_id", adm))
		fail_msg("no admission.revoked webhook for %s", adm);
	assert_true(rcv_has("admission.revoked", "admission_id", adm));
	assert_true(metric(T.port, "roomgate_directory_revoked_admissions_"
	                           "total") >= 1);
}

static void
lock_ends_sessions(void **state)
{
	char link[80], code[16], id[40], adm[64];

	(void)state;
	ath_new_meeting(T.base, T.host_token, ALLOWED, "watch lock", 0, link,
	                code, id);
	join(&T.carol, link, code);
	snprintf(adm, sizeof(adm), "%s", admission_of("carol", id));
	assert_int_equal(
	    ath_req_status(T.base, &T.carol, "GET", "/v1/me", NULL, NULL), 200);
	ath_ldap_admin("dn: uid=carol" PEOPLE "\nchangetype: modify\n"
	               "add: pwdAccountLockedTime\n"
	               "pwdAccountLockedTime: 000001010000Z\n");
	if (!wait_count("SELECT count(*) FROM admissions WHERE id = $1::uuid "
	                "AND state = 'revoked' AND revoke_reason = "
	                "'directory_disabled'",
	                adm, 1))
		fail_msg("admission %s not revoked on the lock", adm);
	assert_int_equal(count("SELECT count(*) FROM sessions WHERE identity "
	                       "= $1 AND revoked_at IS NULL",
	                       "carol"),
	                 0);
	assert_true(count("SELECT count(*) FROM sessions WHERE identity = $1 "
	                  "AND revoke_reason = 'directory_disabled'",
	                  "carol") >= 1);
	ath_ldap_admin("dn: uid=carol" PEOPLE "\nchangetype: modify\n"
	               "delete: pwdAccountLockedTime\n");
	/* Unlocked again, but the session is over. */
	assert_int_equal(
	    ath_req_status(T.base, &T.carol, "GET", "/v1/me", NULL, NULL), 401);
	assert_true(count("SELECT count(*) FROM audit_log WHERE event_type = "
	                  "'session.revoke' AND identity = $1 AND reason = "
	                  "'directory_disabled'",
	                  "carol") >= 1);
	if (!wait_rcv("session.revoked", "identity", "carol"))
		fail_msg("no session.revoked webhook for carol");
	if (!wait_rcv("admission.revoked", "admission_id", adm))
		fail_msg("no admission.revoked webhook for %s", adm);
}

static void
slapd_restart_misses_nothing(void **state)
{
	static const char *const uids[] = {"user30", "user31", "user32",
	                                   "user33", "user34"};
	char link[80], code[16], id[40];
	const size_t n = sizeof(uids) / sizeof(*uids);

	(void)state;
	ath_new_meeting(T.base, T.host_token, ALLOWED, "watch restart", 0, link,
	                code, id);
	for (size_t i = 0; i < n; i++)
		admit_row(uids[i], id);
	/* Somebody who stays. */
	admit_row("user35", id);

	/* slapd goes away and comes back; the removals land while the
	 * watcher reconnects (its backoff grew during the outage). */
	th_ldap_stop();
	for (int waited = 0;
	     waited < BOUND_MS &&
	     metric(T.port, "roomgate_directory_watch_connected") != 0;
	     waited += 50)
		sleep_a_bit();
	assert_int_equal(metric(T.port, "roomgate_directory_watch_connected"),
	                 0);
	th_ldap_start();
	for (size_t i = 0; i < n; i++)
		member("delete", uids[i]);
	if (!wait_count("SELECT count(*) FROM admissions WHERE meeting_id = "
	                "$1::uuid AND state = 'revoked' AND revoke_reason = "
	                "'directory_removed'",
	                id, (long)n))
		fail_msg("not every removal during the restart was acted on "
		         "(%ld of %zu)",
		         count("SELECT count(*) FROM admissions WHERE "
		               "meeting_id = $1::uuid AND state = 'revoked'",
		               id),
		         n);
	assert_int_equal(count("SELECT count(*) FROM admissions WHERE "
	                       "meeting_id = $1::uuid AND identity = 'user35' "
	                       "AND state = 'admitted'",
	                       id),
	                 1);
	assert_true(metric(T.port, "roomgate_directory_watch_disconnects_"
	                           "total") >= 1);
	/* The cookie moved and is kept in PostgreSQL. */
	assert_int_equal(count("SELECT count(*) FROM directory_watch WHERE "
	                       "name = $1 AND cookie IS NOT NULL",
	                       "directory"),
	                 1);
	for (size_t i = 0; i < n; i++)
		member("add", uids[i]);
}

static void
two_nodes_one_watcher_and_takeover(void **state)
{
	char link[80], code[16], id[40];
	int st;

	(void)state;
	snprintf(T.cfg2_path, sizeof(T.cfg2_path), "%s",
	         th_config("watch2.ini", node_ini(T.base2, "watch-b")));
	th_server_start(&T.s2, T.cfg2_path, T.port2);
	/* b runs, but a keeps the watcher. */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(
		    metric(T.port, "roomgate_directory_watch_leader"), 1);
		assert_int_equal(
		    metric(T.port2, "roomgate_directory_watch_leader"), 0);
		sleep_a_bit();
	}
	assert_int_equal(count("SELECT count(*) FROM pg_locks l JOIN "
	                       "pg_stat_activity a ON a.pid = l.pid WHERE "
	                       "l.locktype = 'advisory' AND l.granted AND "
	                       "a.application_name = $1",
	                       "roomgate-watch"),
	                 1);
	assert_int_equal(count("SELECT count(*) FROM directory_watch WHERE "
	                       "leader_node = $1",
	                       "watch-a"),
	                 1);

	/* kill -9 the watcher's node: b takes over. */
	assert_int_equal(kill(T.s.pid, SIGKILL), 0);
	assert_int_equal(waitpid(T.s.pid, &st, 0), T.s.pid);
	T.s.pid = 0;
	if (!wait_caught_up(T.port2))
		fail_msg("node b did not take the watcher over");
	assert_int_equal(count("SELECT count(*) FROM directory_watch WHERE "
	                       "leader_node = $1",
	                       "watch-b"),
	                 1);

	/* The next removal is still acted upon, by b. */
	ath_new_meeting(T.base2, T.host_token, ALLOWED, "watch takeover", 0,
	                link, code, id);
	admit_row("user30", id);
	member("delete", "user30");
	if (!wait_count("SELECT count(*) FROM admissions WHERE meeting_id = "
	                "$1::uuid AND identity = 'user30' AND state = "
	                "'revoked' AND revoke_reason = 'directory_removed'",
	                id, 1))
		fail_msg("node b did not act on the removal");
	assert_true(metric(T.port2, "roomgate_directory_revoked_admissions_"
	                            "total") >= 1);
	member("add", "user30");
}

/* No node watches while a member is removed: the next watcher's full
 * refresh reconciles the group and ends the admission anyway. */
static void
removal_while_nobody_watches(void **state)
{
	char link[80], code[16], id[40];

	(void)state;
	assert_true(T.s2.pid > 0);
	ath_new_meeting(T.base2, T.host_token, ALLOWED, "watch gap", 0, link,
	                code, id);
	admit_row("user31", id);
	admit_row("user32", id);
	/* Not byte for byte a watched person's value (a case-different
	 * spelling the live check may admit, someone the watcher does not
	 * know): left to the live check, never revoked by the snapshot
	 * (review F6). */
	admit_row("User32", id);
	admit_row("not-in-ldap", id);
	th_server_stop(&T.s2);
	T.s2.pid = 0;
	member("delete", "user31");
	th_server_start(&T.s, T.cfg_path, T.port);
	if (!wait_caught_up(T.port))
		fail_msg("node a did not become the watcher again");
	if (!wait_count("SELECT count(*) FROM admissions WHERE meeting_id = "
	                "$1::uuid AND identity = 'user31' AND state = "
	                "'revoked' AND revoke_reason = 'directory_removed'",
	                id, 1))
		fail_msg("the removal made while nobody watched was missed");
	/* Only the one who left. */
	assert_int_equal(count("SELECT count(*) FROM admissions WHERE "
	                       "meeting_id = $1::uuid AND identity = 'user32' "
	                       "AND state = 'admitted'",
	                       id),
	                 1);
	assert_int_equal(count("SELECT count(*) FROM admissions WHERE "
	                       "meeting_id = $1::uuid AND identity IN "
	                       "('User32', 'not-in-ldap') AND state = "
	                       "'admitted'",
	                       id),
	                 2);
	assert_int_equal(count("SELECT count(*) FROM audit_log WHERE "
	                       "event_type = 'admission.revoke' AND identity = "
	                       "'user31' AND meeting_id = $1::uuid AND "
	                       "details->>'change' = 'group_members'",
	                       id),
	                 1);
	member("add", "user31");
}

/* watch = on with a setup the watcher cannot follow (no search base)
 * refuses to serve, naming the setting; auto leaves the watcher off and
 * serves. */
static void
watch_setup_checked(void **state)
{
	char out[8192], port_env[64];
	const char *cfg_on =
	    th_config("watch-on.ini", "[directory]\nwatch = on\n"
	                              "[database]\nmigrate_on_start = true\n");
	char on_path[512];
	const char *argv[] = {th_env("RG_TEST_BIN"), "serve", "-c", on_path,
	                      NULL};
	const char *env[] = {port_env, NULL};
	struct th_server s;
	int port = th_free_port();

	(void)state;
	snprintf(on_path, sizeof(on_path), "%s", cfg_on);
	snprintf(port_env, sizeof(port_env), "ROOMGATE_SERVER_PORT=%d", port);
	assert_int_not_equal(th_run_capture(argv, env, out, sizeof(out)), 0);
	if (strstr(out, "base_dn") == NULL)
		fail_msg("no hint at base_dn: %s", out);
	th_server_start(&s,
	                th_config("watch-auto.ini",
	                          "[directory]\nwatch = auto\n"
	                          "[database]\nmigrate_on_start = true\n"),
	                port);
	assert_int_equal(metric(port, "roomgate_directory_watch_leader"), -1);
	th_server_stop(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(removal_revokes_at_once),
	    cmocka_unit_test(lock_ends_sessions),
	    cmocka_unit_test(slapd_restart_misses_nothing),
	    cmocka_unit_test(two_nodes_one_watcher_and_takeover),
	    cmocka_unit_test(removal_while_nobody_watches),
	    cmocka_unit_test(watch_setup_checked),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
