/*
 * Integration: the admission's hot path (issue 9) against the real
 * services -- the one read (session, meeting, codes, lock state) with its
 * throttled last_seen_at write, statements prepared once per pooled
 * connection (and again after the connection is replaced), and the lock
 * lengths the database picks by lock number (roomgate_count_failure).
 * And the security review's admission findings: a "locked" answer to the
 * right code makes no join token (the token comes after the record), an
 * admission whose token cannot be made is ended again, a session revoked
 * while the attempt runs gets no admission, and an identity too long for
 * the lockout key is decided and audited under its hash.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

/* The shared SAML helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-hot.test/saml/metadata"
#define IDP_ENTITY "https://idp-hot.test/saml"
#define SECRET "jitsi-shared-secret-for-the-hot-path-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define LOCK_S 30

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server a;
	pid_t idp;
	PGconn *pg;
	char host_token[64];
	char cfg_path[512];
	struct sth_browser alice, bob, carol;
} T;

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "hot-idp-md.xml");
	/* idle timeout 1800 s: last_seen_at is written when older than
	 * 60 s (a sixteenth of it, at most a minute). */
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\npool_size = 2\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[session]\nidle_timeout = 1800\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\nmax_failures = 2\nfailure_window = 600\n"
	         "lock_time = %d\nlock_time_max = 3600\n"
	         "[tokens]\nhs256_secret = " SECRET "\nissuer = roomgate-test\n"
	         "audience = jitsi\nsubject = meet.example.com\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md, LOCK_S);
	return ini;
}

static long
join(struct sth_browser *b, const char *link, const char *code,
     struct sth_resp *r)
{
	struct curl_slist *hl = NULL;
	char url[256], body[128];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s/v1/join/%s", T.base, link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(b->h, CURLOPT_URL, url);
	curl_easy_setopt(b->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, sth_write);
	curl_easy_setopt(b->h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(b->h, CURLOPT_HEADERFUNCTION, sth_header);
	curl_easy_setopt(b->h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(b->h, CURLOPT_POSTFIELDSIZE_LARGE,
	                 (curl_off_t)strlen(body));
	curl_easy_setopt(b->h, CURLOPT_COPYPOSTFIELDS, body);
	rc = curl_easy_perform(b->h);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	r->status = -1;
	if (rc == CURLE_OK)
		curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body == NULL) {
		r->body = calloc(1, 1);
		assert_non_null(r->body);
	}
	return r->status;
}

static void
expect_join(struct sth_browser *b, const char *link, const char *code,
            long status)
{
	struct sth_resp r;

	if (join(b, link, code, &r) != status)
		fail_msg("expected %ld, got %ld: %s", status, r.status, r.body);
	sth_resp_free(&r);
}

/* One statement as the superuser in the application's database; the
 * first value of its first row (or "" when none), malloc()ed. */
static char *
admin_sql(const char *sql)
{
	const char *k[] = {"dbname", "dbname", NULL};
	const char *v[] = {th_env("RG_TEST_PG_ADMIN_URL"), "roomgate", NULL};
	PGconn *ad = PQconnectdbParams(k, v, 1);
	PGresult *res;
	char *out;
	int st;

	assert_int_equal(PQstatus(ad), CONNECTION_OK);
	res = PQexec(ad, sql);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s failed: %s", sql, PQerrorMessage(ad));
	out = strdup(st == PGRES_TUPLES_OK && PQntuples(res) > 0
	                 ? PQgetvalue(res, 0, 0)
	                 : "");
	assert_non_null(out);
	PQclear(res);
	PQfinish(ad);
	return out;
}

static void
admin_exec(const char *sql)
{
	free(admin_sql(sql));
}

/* Seconds since alice's newest session was last seen. */
static long
alice_idle_s(void)
{
	char *v = admin_sql("SELECT floor(extract(epoch FROM now() - "
	                    "last_seen_at))::bigint FROM sessions WHERE "
	                    "identity = 'alice' AND revoked_at IS NULL "
	                    "ORDER BY created_at DESC LIMIT 1");
	long s = strtol(v, NULL, 10);

	assert_true(v[0] != '\0');
	free(v);
	return s;
}

static void
alice_seen_ago(int seconds)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	         "UPDATE sessions SET last_seen_at = now() - "
	         "make_interval(secs => %d) WHERE identity = 'alice' AND "
	         "revoked_at IS NULL",
	         seconds);
	admin_exec(sql);
}

/* A session used a moment ago is not written again (no WAL flush per
 * attempt); one last seen over a minute ago is; one idle past the
 * timeout is over, as before. */
static void
last_seen_is_written_only_when_stale(void **state)
{
	char link[80], code[16], id[40];

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "hot last seen", 0, link,
	                code, id);
	alice_seen_ago(20);
	expect_join(&T.alice, link, code, 200);
	assert_in_range(alice_idle_s(), 19, 40);

	alice_seen_ago(300);
	expect_join(&T.alice, link, code, 200);
	assert_in_range(alice_idle_s(), 0, 5);

	alice_seen_ago(1801);
	expect_join(&T.alice, link, code, 401);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	expect_join(&T.alice, link, code, 200);
	/* Every 200 above is one admission with its allow record. */
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 3);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND event_type = "
	                              "'admission' AND outcome = 'allow'",
	                              id),
	                 3);
}

/* The pooled connections die (the server ends their backends): new ones
 * prepare the statements again, and the next attempts are full
 * decisions -- a 200 only with its admission and record. */
static void
statements_are_prepared_again_after_a_reconnect(void **state)
{
	char link[80], code[16], id[40], *before;
	int ok = 0;
	struct sth_resp r;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "hot reconnect", 0, link,
	                code, id);
	expect_join(&T.bob, link, code, 200);
	expect_join(&T.bob, link, code, 200);
	before = admin_sql("SELECT count(*) FROM pg_stat_activity WHERE "
	                   "application_name = 'roomgate'");
	assert_string_not_equal(before, "0");
	free(before);
	admin_exec("SELECT count(pg_terminate_backend(pid)) FROM "
	           "pg_stat_activity WHERE application_name = 'roomgate'");
	for (int i = 0; i < 6; i++) {
		long st = join(&T.bob, link, code, &r);

		sth_resp_free(&r);
		assert_true(st == 200 || st == 503);
		ok += st == 200;
	}
	/* A dead connection is found before use (or costs one 503), never
	 * more than the pool's two. */
	assert_in_range(ok, 4, 6);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 2 + ok);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND event_type = "
	                              "'admission' AND outcome = 'allow'",
	                              id),
	                 2 + ok);
}

/* Retry-After of a 429, 0 when none. */
static long
retry_after(const struct sth_resp *r)
{
	json_t *o = json_loads(r->body, 0, NULL);
	long s = (long)json_integer_value(
	    json_object_get(json_object_get(o, "error"), "retry_after"));

	if (s == 0)
		s = (long)json_integer_value(json_object_get(o, "retry_after"));
	json_decref(o);
	return s;
}

/* The first lock lasts lock_time, the second twice that: the lengths
 * by lock number reach the database's counter function. */
static void
second_lock_lasts_twice_as_long(void **state)
{
	char link[80], code[16], id[40], wrong[16];
	struct sth_resp r;
	long s;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "hot locks", 0, link,
	                code, id);
	snprintf(wrong, sizeof(wrong), "%s", code);
	wrong[0] = wrong[0] == '9' ? '0' : (char)(wrong[0] + 1);
	expect_join(&T.bob, link, wrong, 401);
	expect_join(&T.bob, link, wrong, 401);
	assert_int_equal(join(&T.bob, link, code, &r), 429);
	s = retry_after(&r);
	sth_resp_free(&r);
	assert_in_range(s, LOCK_S - 2, LOCK_S + 1);

	/* The lock has passed (kept as lock number 1). */
	admin_exec("UPDATE lockout_counters SET locked_until = now() - "
	           "interval '1 second' WHERE scope = 'identity_meeting' AND "
	           "key LIKE '% bob' AND locked_until > now()");
	expect_join(&T.bob, link, wrong, 401);
	expect_join(&T.bob, link, wrong, 401);
	assert_int_equal(join(&T.bob, link, code, &r), 429);
	s = retry_after(&r);
	sth_resp_free(&r);
	assert_in_range(s, 2 * LOCK_S - 2, 2 * LOCK_S + 1);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	admin_exec("DELETE FROM lockout_counters WHERE key LIKE '% bob'");
}

/* ---- attempts held inside their record ------------------------------- */

/* A superuser connection that holds the advisory lock the record of
 * "<meeting id> <identity>" attempts takes first, so a join sent now has
 * done its read and waits inside roomgate_admit_record. */
static PGconn *
hold_record(const char *meeting_id, const char *identity)
{
	const char *k[] = {"dbname", "dbname", NULL};
	const char *v[] = {th_env("RG_TEST_PG_ADMIN_URL"), "roomgate", NULL};
	const char *pv[2] = {meeting_id, identity};
	PGconn *ad = PQconnectdbParams(k, v, 1);
	PGresult *res;

	assert_int_equal(PQstatus(ad), CONNECTION_OK);
	res = PQexecParams(ad,
	                   "SELECT pg_advisory_lock(hashtextextended("
	                   "'roomgate admission ' || roomgate_lock_key($1, $2), "
	                   "0))",
	                   2, NULL, pv, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("advisory lock: %s", PQerrorMessage(ad));
	PQclear(res);
	return ad;
}

/* Waits (at most 10 s) until a backend waits for an advisory lock. */
static void
wait_for_held_attempt(void)
{
	for (int i = 0; i < 200; i++) {
		char *n = admin_sql("SELECT count(*) FROM pg_stat_activity "
		                    "WHERE wait_event_type = 'Lock' AND "
		                    "wait_event = 'advisory'");
		int waiting = strcmp(n, "0") != 0;

		free(n);
		if (waiting)
			return;
		usleep(50000);
	}
	fail_msg("no attempt came to wait inside its record");
}

struct bg_join {
	pthread_t t;
	struct sth_browser *b;
	const char *base, *link, *code;
	long status;
	char *body;
};

static void *
bg_join_run(void *arg)
{
	struct bg_join *j = arg;
	struct curl_slist *hl = NULL;
	struct sth_resp r;
	char url[256], body[128];

	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "%s/v1/join/%s", j->base, j->link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", j->code);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(j->b->h, CURLOPT_URL, url);
	curl_easy_setopt(j->b->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(j->b->h, CURLOPT_WRITEFUNCTION, sth_write);
	curl_easy_setopt(j->b->h, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(j->b->h, CURLOPT_HEADERFUNCTION, sth_header);
	curl_easy_setopt(j->b->h, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(j->b->h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(j->b->h, CURLOPT_POSTFIELDSIZE_LARGE,
	                 (curl_off_t)strlen(body));
	curl_easy_setopt(j->b->h, CURLOPT_COPYPOSTFIELDS, body);
	j->status = -1;
	if (curl_easy_perform(j->b->h) == CURLE_OK)
		curl_easy_getinfo(j->b->h, CURLINFO_RESPONSE_CODE, &j->status);
	curl_easy_setopt(j->b->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	j->body = r.body != NULL ? r.body : strdup("");
	r.body = NULL;
	sth_resp_free(&r);
	return NULL;
}

/* Sends the join from a thread; bg_join_wait collects the answer. */
static void
bg_join_start(struct bg_join *j, struct sth_browser *b, const char *base,
              const char *link, const char *code)
{
	memset(j, 0, sizeof(*j));
	j->b = b;
	j->base = base;
	j->link = link;
	j->code = code;
	assert_int_equal(pthread_create(&j->t, NULL, bg_join_run, j), 0);
}

static void
bg_join_wait(struct bg_join *j)
{
	assert_int_equal(pthread_join(j->t, NULL), 0);
	assert_non_null(j->body);
}

/* Ends the hold: the waiting attempt records. */
static void
release_record(PGconn *ad)
{
	PGresult *res = PQexec(ad, "SELECT pg_advisory_unlock_all()");

	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	PQfinish(ad);
}

/* A lock on bob at meeting_id, set behind the attempt's back. */
static void
lock_bob(const char *meeting_id)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "INSERT INTO lockout_counters (scope, key, failures, "
	         "locked_until) VALUES ('identity_meeting', '%s bob', 0, "
	         "now() + interval '60 seconds') ON CONFLICT (scope, key) DO "
	         "UPDATE SET locked_until = now() + interval '60 seconds'",
	         meeting_id);
	admin_exec(sql);
}

/* Review F4: the record finds the lock a racing attempt set after this
 * attempt's read. The answer is "locked", with no token, no admission,
 * and no token was even made for it -- shown on a node whose tokens can
 * never be made (a redirect URL longer than any answer may be): had it
 * tried, the answer would be its 503. That node's admissions are ended
 * again at once, each with a record. */
static void
locked_answer_to_right_code_makes_no_token(void **state)
{
	char link[80], code[16], id[40], base_b[64], *url;
	struct th_server b;
	struct bg_join j;
	PGconn *ad;
	/* The template may hold 4096 bytes; its rooms (20+ bytes each)
	 * make the URL longer than the 8192 an answer may carry. */
	size_t rooms = 600;
	int port_b;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "hot locked race", 0, link,
	                code, id);

	/* Node A: locked while it ran -> 429, no token, no admission. */
	ad = hold_record(id, "bob");
	bg_join_start(&j, &T.bob, T.base, link, code);
	wait_for_held_attempt();
	lock_bob(id);
	release_record(ad);
	bg_join_wait(&j);
	if (j.status != 429)
		fail_msg("expected 429, got %ld: %s", j.status, j.body);
	assert_null(strstr(j.body, "token"));
	free(j.body);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND reason = "
	                              "'locked' AND code_ok",
	                              id),
	                 1);
	admin_exec("DELETE FROM lockout_counters WHERE key LIKE '% bob'");

	/* Node B: no token can be made there (the URL would not fit). */
	url = calloc(1, 4096);
	assert_non_null(url);
	snprintf(url, 4096, "https://meet.example.com/{room}?jwt={token}&r=");
	for (size_t i = 0; i < rooms; i++)
		memcpy(url + strlen(url), "{room}", 7);
	assert_int_equal(setenv("ROOMGATE_ADMISSION_REDIRECT_URL", url, 1), 0);
	free(url);
	/* Chosen now, not when the test began: a port free then may be
	 * taken by the time node A's part is done. */
	port_b = th_free_port();
	th_server_start(&b, T.cfg_path, port_b);
	unsetenv("ROOMGATE_ADMISSION_REDIRECT_URL");
	snprintf(base_b, sizeof(base_b), "http://127.0.0.1:%d", port_b);

	/* The right code, nothing racing: admitted on record, no token
	 * made -> 503, and the admission ended again with its record. */
	bg_join_start(&j, &T.bob, base_b, link, code);
	bg_join_wait(&j);
	if (j.status != 503)
		fail_msg("expected 503, got %ld: %s", j.status, j.body);
	assert_null(strstr(j.body, "\"token\""));
	free(j.body);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid AND state = "
	                              "'revoked' AND revoke_reason = "
	                              "'token_failed' AND ended_at IS NOT NULL",
	                              id),
	                 1);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 1);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log a JOIN "
	                              "admissions d ON d.id::text = "
	                              "a.details->>'admission_id' WHERE "
	                              "d.meeting_id = $1::uuid AND "
	                              "a.event_type = 'admission.unissued' AND "
	                              "a.reason = 'token_failed' AND "
	                              "a.identity = 'bob'",
	                              id),
	                 1);

	/* Locked while it ran on node B: 429 (a token made before the
	 * record would have failed there: 503). */
	ad = hold_record(id, "bob");
	bg_join_start(&j, &T.bob, base_b, link, code);
	wait_for_held_attempt();
	lock_bob(id);
	release_record(ad);
	bg_join_wait(&j);
	if (j.status != 429)
		fail_msg("expected 429, got %ld: %s", j.status, j.body);
	free(j.body);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 1);
	th_server_stop(&b);
	admin_exec("DELETE FROM lockout_counters WHERE key LIKE '% bob'");
}

/* Review F8: signed out while the attempt waited to record -> refused
 * (sign in again), recorded as session_revoked, nothing admitted. */
static void
session_revoked_during_the_attempt_is_refused(void **state)
{
	char link[80], code[16], id[40];
	struct bg_join j;
	PGconn *ad;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "hot revoked race", 0,
	                link, code, id);
	sth_browser_init(&T.carol);
	sth_sign_in(&T.carol, T.base, T.idp_base, "bob");
	ad = hold_record(id, "bob");
	bg_join_start(&j, &T.carol, T.base, link, code);
	wait_for_held_attempt();
	/* carol's is bob's newest session. */
	admin_exec("UPDATE sessions SET revoked_at = now(), revoke_reason = "
	           "'logout' WHERE id_hash = (SELECT id_hash FROM sessions "
	           "WHERE identity = 'bob' AND revoked_at IS NULL ORDER BY "
	           "created_at DESC LIMIT 1)");
	release_record(ad);
	bg_join_wait(&j);
	if (j.status != 401 || strstr(j.body, "login_required") == NULL)
		fail_msg("expected 401 login_required, got %ld: %s", j.status,
		         j.body);
	free(j.body);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM admissions WHERE "
	                              "meeting_id = $1::uuid",
	                              id),
	                 0);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND event_type = "
	                              "'admission' AND outcome = 'deny' AND "
	                              "reason = 'session_revoked' AND code_ok "
	                              "AND member_ok",
	                              id),
	                 1);
	/* Nothing counted against bob. */
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM lockout_counters "
	                              "WHERE key = $1 || ' bob'",
	                              id),
	                 0);
	/* The other session (bob's browser) still gets in. */
	expect_join(&T.bob, link, code, 200);
	sth_browser_free(&T.carol);
}

/* Review F8: an identity too long for the lockout key is decided and
 * audited, counted under its hash -- the same key the read computes
 * (roomgate_lock_key). */
static void
long_identity_is_decided_and_audited(void **state)
{
	char link[80], code[16], id[40];
	struct sth_resp r;
	long st;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "hot long identity", 0,
	                link, code, id);
	sth_browser_init(&T.carol);
	sth_sign_in(&T.carol, T.base, T.idp_base, "bob");
	admin_exec("UPDATE sessions SET identity = repeat('z', 1100) WHERE "
	           "id_hash = (SELECT id_hash FROM sessions WHERE identity = "
	           "'bob' AND revoked_at IS NULL ORDER BY created_at DESC "
	           "LIMIT 1)");
	st = join(&T.carol, link, code, &r);
	/* Nobody by that name in the directory: not on the list. */
	if (st != 403)
		fail_msg("expected 403, got %ld: %s", st, r.body);
	sth_resp_free(&r);
	assert_int_equal(ath_pg_count(T.pg,
	                              "SELECT count(*) FROM audit_log WHERE "
	                              "meeting_id = $1::uuid AND event_type = "
	                              "'admission' AND reason = 'not_member' "
	                              "AND length(identity) = 1100",
	                              id),
	                 1);
	assert_int_equal(
	    ath_pg_count(T.pg,
	                 "SELECT count(*) FROM lockout_counters WHERE scope = "
	                 "'identity_meeting' AND failures = 1 AND key = "
	                 "roomgate_lock_key($1, repeat('z', 1100)) AND key = "
	                 "$1 || ' sha256:' || encode(sha256(repeat('z', "
	                 "1100)::bytea), 'hex')",
	                 id),
	    1);
	/* Counted under that key: max_failures (2) locks it. */
	expect_join(&T.carol, link, code, 403);
	expect_join(&T.carol, link, code, 429);
	sth_browser_free(&T.carol);
}

static int
setup(void **state)
{
	char spmd[512];
	const char *sps[2];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt"); /* the test IdP reads it */
	T.idp_port = th_free_port();
	T.port = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "hot-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "hot-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("hot.ini", node_ini()));
	th_server_start(&T.a, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "hot-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "hot-host", "alice", T.host_token);
	sth_browser_init(&T.alice);
	sth_browser_init(&T.bob);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	sth_sign_in(&T.bob, T.base, T.idp_base, "bob");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sth_browser_free(&T.alice);
	sth_browser_free(&T.bob);
	sth_idp_stop(T.idp);
	th_server_stop(&T.a);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(last_seen_is_written_only_when_stale),
	    cmocka_unit_test(statements_are_prepared_again_after_a_reconnect),
	    cmocka_unit_test(second_lock_lasts_twice_as_long),
	    cmocka_unit_test(locked_answer_to_right_code_makes_no_token),
	    cmocka_unit_test(session_revoked_during_the_attempt_is_refused),
	    cmocka_unit_test(long_identity_is_decided_and_audited),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
