/*
 * Integration: group commit of admission records (issue 9,
 * db/admit_batch.c, migration 0024) against the real services.
 *
 * To make a batch for sure, the node records with one committer and the
 * test first parks it: a superuser connection holds the advisory lock of
 * a "blocker" attempt (carol at a meeting of its own), so that attempt's
 * record waits inside PostgreSQL while the attempts under test queue up
 * (the queue gauge says how many). Released, the blocker records and the
 * next committer takes the whole queue as one transaction -- checked on
 * the batch-size histogram.
 *
 * What is shown: each attempt of a batch gets its own answer and its own
 * audit record; lockout counts every attempt of a batch (a batch holding
 * more wrong codes than max_failures locks within itself); an error
 * raised inside one attempt fails that one alone (503, nothing of it
 * written) while its batch-mates are recorded; a deadlock reported for
 * one attempt is recorded again alone; a batch whose transaction dies
 * (its backend terminated) denies every attempt of it and writes nothing
 * of it; a lone attempt is recorded alone at once; and commit_batch_max
 * = 1 records every attempt alone.
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

#define SP_ENTITY "https://roomgate-batch.test/saml/metadata"
#define IDP_ENTITY "https://idp-batch.test/saml"
#define SECRET "jitsi-shared-secret-for-the-batch-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define MAX_FAILURES 3
#define NB 12 /* browsers: 4 each for alice, bob and dave */
#define WAIT_MS 15000

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server a;
	pid_t idp;
	PGconn *pg;
	char host_token[64];
	char cfg_path[512];
	/* b[0..3] alice, b[4..7] bob, b[8..11] dave (not a member) */
	struct sth_browser b[NB];
	struct sth_browser carol; /* the blocker */
	char block_link[80], block_code[16], block_id[40];
} T;

#define ALICE(i) (&T.b[(i)])
#define BOB(i) (&T.b[4 + (i)])
#define DAVE(i) (&T.b[8 + (i)])

static const char *
node_ini(void)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "batch-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 24\n"
	         "[database]\nmigrate_on_start = true\npool_size = 8\n"
	         "commit_batch_max = 32\ncommitters = 1\n"
	         /* The parked committer and the queue wait as long as the
	          * test takes to queue its attempts one by one, which on a
	          * loaded machine (CI: ASan, 2 cores) can pass 20 s. */
	         "statement_timeout_ms = 120000\nacquire_timeout_ms = 120000\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\nmax_failures = %d\nfailure_window = 600\n"
	         "lock_time = 60\nlock_time_max = 3600\n"
	         "source_max_failures = 1000\n"
	         "[tokens]\nhs256_secret = " SECRET "\nissuer = roomgate-test\n"
	         "audience = jitsi\nsubject = meet.example.com\n",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md,
	         MAX_FAILURES);
	return ini;
}

/* ---- the database as superuser ----------------------------------------- */

static PGconn *
admin_conn(void)
{
	const char *k[] = {"dbname", "dbname", NULL};
	const char *v[] = {th_env("RG_TEST_PG_ADMIN_URL"), "roomgate", NULL};
	PGconn *ad = PQconnectdbParams(k, v, 1);

	assert_int_equal(PQstatus(ad), CONNECTION_OK);
	return ad;
}

/* One statement; the first value of its first row ("" when none),
 * malloc()ed. */
static char *
admin_sql(const char *sql)
{
	PGconn *ad = admin_conn();
	PGresult *res = PQexec(ad, sql);
	int st = PQresultStatus(res);
	char *out;

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

static long
admin_count(const char *sql)
{
	char *v = admin_sql(sql);
	long n = strtol(v, NULL, 10);

	free(v);
	return n;
}

/* A connection holding the advisory lock the record of "<meeting id>
 * <identity>" takes first (session-level, so it conflicts with the
 * record's transaction-level one). */
static PGconn *
hold_record(const char *meeting_id, const char *identity)
{
	PGconn *ad = admin_conn();
	const char *pv[2] = {meeting_id, identity};
	PGresult *res = PQexecParams(
	    ad,
	    "SELECT pg_advisory_lock(hashtextextended('roomgate admission ' "
	    "|| roomgate_lock_key($1, $2), 0))",
	    2, NULL, pv, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("advisory lock: %s", PQerrorMessage(ad));
	PQclear(res);
	return ad;
}

static void
release_record(PGconn *ad)
{
	PGresult *res = PQexec(ad, "SELECT pg_advisory_unlock_all()");

	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	PQfinish(ad);
}

/* Backends of roomgate waiting for an advisory lock in a statement that
 * contains what. */
static long
waiting_in(const char *what)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pg_stat_activity WHERE "
	         "application_name = 'roomgate' AND wait_event_type = 'Lock' "
	         "AND wait_event = 'advisory' AND query LIKE '%%%s%%'",
	         what);
	return admin_count(sql);
}

static void
wait_until_waiting_in(const char *what)
{
	for (int ms = 0; ms < WAIT_MS; ms += 50) {
		if (waiting_in(what) > 0)
			return;
		usleep(50000);
	}
	fail_msg("no record came to wait in %s", what);
}

/* ---- metrics ------------------------------------------------------------ */

/* A metric's value (the first line starting with name and a space or a
 * label); -1 when absent. */
static double
metric(const char *name)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128], key[200];
	const char *p;
	double v = -1;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/metrics", T.base);
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
wait_queued(int n)
{
	for (int ms = 0; ms < WAIT_MS; ms += 50) {
		if (metric("roomgate_admit_queue_waiting") == n)
			return;
		usleep(50000);
	}
	fail_msg("expected %d attempts queued, the gauge says %g", n,
	         metric("roomgate_admit_queue_waiting"));
}

/* ---- joins from threads -------------------------------------------------- */

struct bg_join {
	pthread_t t;
	struct sth_browser *b;
	const char *base, *link, *code;
	long status;
	char request_id[64];
	char *body;
};

static void *
bg_join_run(void *arg)
{
	struct bg_join *j = arg;
	struct sth_resp r;
	char path[160], body[128];

	snprintf(path, sizeof(path), "/v1/join/%s", j->link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", j->code);
	/* A connection of its own: a kept-alive one stays with the server
	 * thread that accepted it, which may be the one parked. */
	curl_easy_setopt(j->b->h, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(j->b->h, CURLOPT_FORBID_REUSE, 1L);
	j->status = ath_req(j->base, j->b, "POST", path, NULL, body, &r);
	curl_easy_setopt(j->b->h, CURLOPT_FRESH_CONNECT, 0L);
	curl_easy_setopt(j->b->h, CURLOPT_FORBID_REUSE, 0L);
	snprintf(j->request_id, sizeof(j->request_id), "%s", r.request_id);
	j->body = r.body;
	r.body = NULL;
	sth_resp_free(&r);
	return NULL;
}

static void
bg_join_start(struct bg_join *j, struct sth_browser *b, const char *link,
              const char *code)
{
	memset(j, 0, sizeof(*j));
	j->b = b;
	j->base = T.base;
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

static void
bg_join_free(struct bg_join *j)
{
	free(j->body);
	j->body = NULL;
}

/* The audit record of a request: "outcome reason", or "" when none. */
static char *
record_of(const struct bg_join *j)
{
	char *v = sth_pg_value(T.pg,
	                       "SELECT coalesce(string_agg(outcome || ' ' || "
	                       "reason, ','), '') FROM audit_log WHERE "
	                       "event_type = 'admission' AND request_id = $1",
	                       j->request_id);

	assert_non_null(v);
	return v;
}

/* ---- a parked committer --------------------------------------------------- */

struct park {
	PGconn *hold;
	struct bg_join blocker;
};

/* The one committer records carol's attempt at the blocker meeting and
 * waits there: what is sent next queues. */
static void
park(struct park *p)
{
	p->hold = hold_record(T.block_id, "carol");
	bg_join_start(&p->blocker, &T.carol, T.block_link, T.block_code);
	wait_until_waiting_in("roomgate_admit_record");
}

/* Lets the blocker record; the queue (n attempts) goes next, as one
 * batch. */
static void
unpark(struct park *p)
{
	release_record(p->hold);
	bg_join_wait(&p->blocker);
	assert_int_equal(p->blocker.status, 200);
	bg_join_free(&p->blocker);
}

/* Sends n joins while the committer is parked and returns once they all
 * wait in the queue. One after the other: a server thread that accepted
 * two new connections at once would serve the second only after the
 * first's answer, and that one waits in the queue. */
static void
queue_joins(struct bg_join *j, int n, struct sth_browser *const *b,
            const char *link, const char *const *codes)
{
	for (int i = 0; i < n; i++) {
		bg_join_start(&j[i], b[i], link, codes[i]);
		wait_queued(i + 1);
	}
}

static void
wrong_of(const char *code, char wrong[16])
{
	snprintf(wrong, 16, "%s", code);
	wrong[0] = wrong[0] == '9' ? '0' : (char)(wrong[0] + 1);
}

static long
count_at(const char *sql, const char *meeting_id)
{
	return ath_pg_count(T.pg, sql, meeting_id);
}

/* ---- the tests ------------------------------------------------------------ */

/* Mixed right and wrong codes, members and a non-member, one identity
 * more than once: one batch, and every answer and record is the one the
 * attempt alone would have had. */
static void
each_attempt_of_a_batch_gets_its_own_answer(void **state)
{
	char link[80], code[16], id[40], wrong[16];
	struct bg_join j[9];
	struct park p;
	double batches0, sum0;
	struct sth_browser *who[9] = {ALICE(0), ALICE(1), ALICE(2),
	                              BOB(0),   BOB(1),   DAVE(0),
	                              DAVE(1),  BOB(2),   ALICE(3)};
	const char *codes[9];
	const long want[9] = {200, 401, 200, 401, 200, 403, 403, 200, 401};
	const char *rec[9] = {"allow admitted",     "deny invalid_code",
	                      "allow admitted",     "deny invalid_code",
	                      "allow admitted",     "deny not_member",
	                      "deny not_member",    "allow admitted",
	                      "deny invalid_code"};

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "batch answers", 0, link,
	                code, id);
	wrong_of(code, wrong);
	for (int i = 0; i < 9; i++)
		codes[i] = want[i] == 401 || i == 6 ? wrong : code;
	batches0 = metric("roomgate_admit_batch_size_count");
	sum0 = metric("roomgate_admit_batch_size_sum");

	park(&p);
	queue_joins(j, 9, who, link, codes);
	unpark(&p);
	for (int i = 0; i < 9; i++) {
		char *r;

		bg_join_wait(&j[i]);
		if (j[i].status != want[i])
			fail_msg("attempt %d: expected %ld, got %ld: %s", i,
			         want[i], j[i].status, j[i].body);
		if (want[i] == 200)
			assert_non_null(strstr(j[i].body, "\"token\""));
		else
			assert_null(strstr(j[i].body, "\"token\""));
		r = record_of(&j[i]);
		if (strcmp(r, rec[i]) != 0)
			fail_msg("attempt %d: expected record '%s', got '%s'",
			         i, rec[i], r);
		free(r);
		bg_join_free(&j[i]);
	}
	/* The blocker alone, then the nine together. */
	assert_int_equal(metric("roomgate_admit_batch_size_count") - batches0,
	                 2);
	assert_int_equal(metric("roomgate_admit_batch_size_sum") - sum0, 10);
	assert_int_equal(
	    count_at("SELECT count(*) FROM admissions WHERE meeting_id = "
	             "$1::uuid AND state = 'admitted'",
	             id),
	    4);
	assert_int_equal(
	    count_at("SELECT count(*) FROM audit_log WHERE meeting_id = "
	             "$1::uuid AND event_type = 'admission'",
	             id),
	    9);
	/* alice: two failures, counted one after the other. */
	assert_int_equal(
	    count_at("SELECT failures FROM lockout_counters WHERE scope = "
	             "'identity_meeting' AND key = $1 || ' alice'",
	             id),
	    2);
}

/* Four wrong codes of bob in one batch, max_failures 3: three are
 * counted, the third locks, the one after it finds the lock. */
static void
lockout_counts_every_attempt_of_a_batch(void **state)
{
	char link[80], code[16], id[40], wrong[16];
	struct bg_join j[4];
	struct park p;
	struct sth_browser *who[4] = {BOB(0), BOB(1), BOB(2), BOB(3)};
	const char *codes[4];
	int n401 = 0, n429 = 0;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "batch lockout", 0, link,
	                code, id);
	wrong_of(code, wrong);
	for (int i = 0; i < 4; i++)
		codes[i] = wrong;
	park(&p);
	queue_joins(j, 4, who, link, codes);
	unpark(&p);
	for (int i = 0; i < 4; i++) {
		bg_join_wait(&j[i]);
		n401 += j[i].status == 401;
		n429 += j[i].status == 429;
		if (j[i].status == 429)
			assert_non_null(strstr(j[i].body, "retry_after"));
		bg_join_free(&j[i]);
	}
	assert_int_equal(n401, MAX_FAILURES);
	assert_int_equal(n429, 4 - MAX_FAILURES);
	assert_int_equal(
	    count_at("SELECT count(*) FROM audit_log WHERE meeting_id = "
	             "$1::uuid AND event_type = 'admission' AND reason = "
	             "'invalid_code'",
	             id),
	    MAX_FAILURES);
	assert_int_equal(
	    count_at("SELECT count(*) FROM audit_log WHERE meeting_id = "
	             "$1::uuid AND event_type = 'admission' AND reason = "
	             "'locked'",
	             id),
	    4 - MAX_FAILURES);
	assert_int_equal(
	    count_at("SELECT count(*) FROM lockout_counters WHERE scope = "
	             "'identity_meeting' AND key = $1 || ' bob' AND "
	             "locked_until > now() AND lock_count = 1",
	             id),
	    1);
	/* And the right code now: locked. */
	{
		struct sth_resp r;
		char path[160], body[64];

		snprintf(path, sizeof(path), "/v1/join/%s", link);
		snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
		assert_int_equal(
		    ath_req(T.base, BOB(0), "POST", path, NULL, body, &r), 429);
		sth_resp_free(&r);
	}
	admin_exec("DELETE FROM lockout_counters WHERE key LIKE '% bob'");
}

/* A trigger (only while the test runs) that raises errcode when the
 * audit record of identity's attempt at meeting_id is written: always,
 * or only the first time (once). */
static void
poison(const char *meeting_id, const char *identity, const char *errcode,
       int once)
{
	char sql[1024];

	admin_exec("DROP SEQUENCE IF EXISTS h2_batch_once");
	admin_exec("CREATE SEQUENCE h2_batch_once");
	snprintf(sql, sizeof(sql),
	         "CREATE OR REPLACE FUNCTION h2_batch_poison() RETURNS "
	         "trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN "
	         "IF NEW.meeting_id = '%s' AND NEW.identity = '%s' AND "
	         "NEW.event_type = 'admission' AND (%s OR "
	         "nextval('h2_batch_once') = 1) THEN "
	         "RAISE EXCEPTION 'poisoned by the test' USING ERRCODE = "
	         "'%s'; END IF; RETURN NEW; END $$",
	         meeting_id, identity, once ? "false" : "true", errcode);
	admin_exec(sql);
	admin_exec("CREATE TRIGGER h2_batch_poison BEFORE INSERT ON audit_log "
	           "FOR EACH ROW EXECUTE FUNCTION h2_batch_poison()");
}

static void
unpoison(void)
{
	admin_exec("DROP TRIGGER IF EXISTS h2_batch_poison ON audit_log");
	admin_exec("DROP FUNCTION IF EXISTS h2_batch_poison()");
	admin_exec("DROP SEQUENCE IF EXISTS h2_batch_once");
}

/* bob's record raises an error inside the batch: bob is denied (503)
 * with nothing of his written, alice and dave are recorded as usual. */
static void
an_error_inside_one_attempt_fails_it_alone(void **state)
{
	char link[80], code[16], id[40], wrong[16];
	struct bg_join j[4];
	struct park p;
	struct sth_browser *who[4] = {ALICE(0), BOB(0), DAVE(0), BOB(1)};
	const char *codes[4];
	double failed0;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "batch poison", 0, link,
	                code, id);
	wrong_of(code, wrong);
	codes[0] = code;
	codes[1] = code;
	codes[2] = code;
	codes[3] = wrong;
	failed0 = metric("roomgate_admit_batches_failed_total");
	poison(id, "bob", "P0001", 0);
	park(&p);
	queue_joins(j, 4, who, link, codes);
	unpark(&p);
	for (int i = 0; i < 4; i++)
		bg_join_wait(&j[i]);
	unpoison();
	if (j[0].status != 200 || j[2].status != 403)
		fail_msg("alice %ld (%s), dave %ld (%s)", j[0].status,
		         j[0].body, j[2].status, j[2].body);
	assert_int_equal(j[1].status, 503);
	assert_int_equal(j[3].status, 503);
	assert_null(strstr(j[1].body, "\"token\""));
	for (int i = 0; i < 4; i++)
		bg_join_free(&j[i]);
	/* Nothing of bob's: no record, no admission, no failure counted. */
	assert_int_equal(
	    count_at("SELECT count(*) FROM audit_log WHERE meeting_id = "
	             "$1::uuid AND identity = 'bob'",
	             id),
	    0);
	assert_int_equal(
	    count_at("SELECT count(*) FROM admissions WHERE meeting_id = "
	             "$1::uuid AND identity = 'bob'",
	             id),
	    0);
	assert_int_equal(
	    count_at("SELECT count(*) FROM lockout_counters WHERE key = $1 "
	             "|| ' bob'",
	             id),
	    0);
	/* alice's admission and dave's failure are on record. */
	assert_int_equal(
	    count_at("SELECT count(*) FROM admissions WHERE meeting_id = "
	             "$1::uuid AND identity = 'alice' AND state = 'admitted'",
	             id),
	    1);
	assert_int_equal(
	    count_at("SELECT count(*) FROM audit_log WHERE meeting_id = "
	             "$1::uuid AND event_type = 'admission' AND ((identity = "
	             "'alice' AND reason = 'admitted') OR (identity = 'dave' "
	             "AND reason = 'not_member'))",
	             id),
	    2);
	assert_int_equal(
	    count_at("SELECT failures FROM lockout_counters WHERE key = $1 "
	             "|| ' dave'",
	             id),
	    1);
	/* The transaction itself committed. */
	assert_int_equal(metric("roomgate_admit_batches_failed_total"),
	                 failed0);
}

/* A deadlock reported inside bob's attempt (once): bob is recorded again
 * alone and admitted; one record each. */
static void
a_deadlock_victim_is_recorded_again_alone(void **state)
{
	char link[80], code[16], id[40];
	struct bg_join j[3];
	struct park p;
	struct sth_browser *who[3] = {ALICE(0), BOB(0), ALICE(1)};
	const char *codes[3];
	double retried0;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "batch deadlock", 0, link,
	                code, id);
	for (int i = 0; i < 3; i++)
		codes[i] = code;
	retried0 = metric("roomgate_admit_batch_retried_total");
	poison(id, "bob", "40P01", 1);
	park(&p);
	queue_joins(j, 3, who, link, codes);
	unpark(&p);
	for (int i = 0; i < 3; i++) {
		bg_join_wait(&j[i]);
		if (j[i].status != 200)
			fail_msg("attempt %d: %ld %s", i, j[i].status,
			         j[i].body);
		bg_join_free(&j[i]);
	}
	unpoison();
	assert_int_equal(metric("roomgate_admit_batch_retried_total") -
	                     retried0,
	                 1);
	assert_int_equal(
	    count_at("SELECT count(*) FROM audit_log WHERE meeting_id = "
	             "$1::uuid AND event_type = 'admission' AND reason = "
	             "'admitted'",
	             id),
	    3);
	assert_int_equal(
	    count_at("SELECT count(*) FROM admissions WHERE meeting_id = "
	             "$1::uuid",
	             id),
	    3);
}

/* The batch's backend is terminated while it waits for a lock inside its
 * transaction: every attempt of it is denied (503) and nothing of it is
 * written -- the batch is one transaction. */
static void
a_failed_batch_denies_all_and_writes_nothing(void **state)
{
	char link[80], code[16], id[40], wrong[16];
	struct bg_join j[4];
	struct park p;
	struct sth_browser *who[4] = {ALICE(0), BOB(0), BOB(1), DAVE(0)};
	const char *codes[4];
	PGconn *hold_alice;
	double failed0;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "batch dies", 0, link,
	                code, id);
	wrong_of(code, wrong);
	codes[0] = code;
	codes[1] = code;
	codes[2] = wrong;
	codes[3] = code;
	failed0 = metric("roomgate_admit_batches_failed_total");
	park(&p);
	queue_joins(j, 4, who, link, codes);
	/* alice's lock is taken after bob's and dave's or before them
	 * (the batch sorts them): either way the batch stops inside its
	 * transaction, some of its locks held. */
	hold_alice = hold_record(id, "alice");
	unpark(&p);
	wait_until_waiting_in("roomgate_admit_batch");
	admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	           "WHERE application_name = 'roomgate' AND query LIKE "
	           "'%roomgate_admit_batch%' AND wait_event = 'advisory'");
	for (int i = 0; i < 4; i++) {
		bg_join_wait(&j[i]);
		if (j[i].status != 503)
			fail_msg("attempt %d: expected 503, got %ld: %s", i,
			         j[i].status, j[i].body);
		assert_non_null(strstr(j[i].body, "could not be recorded"));
		bg_join_free(&j[i]);
	}
	release_record(hold_alice);
	assert_int_equal(metric("roomgate_admit_batches_failed_total") -
	                     failed0,
	                 1);
	assert_int_equal(
	    count_at("SELECT count(*) FROM audit_log WHERE meeting_id = "
	             "$1::uuid AND event_type = 'admission'",
	             id),
	    0);
	assert_int_equal(
	    count_at("SELECT count(*) FROM admissions WHERE meeting_id = "
	             "$1::uuid",
	             id),
	    0);
	assert_int_equal(
	    count_at("SELECT count(*) FROM lockout_counters WHERE key LIKE "
	             "$1 || ' %'",
	             id),
	    0);
	/* The node records again afterwards (a fresh connection). */
	{
		struct sth_resp r;
		char path[160], body[64];

		snprintf(path, sizeof(path), "/v1/join/%s", link);
		snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
		assert_int_equal(
		    ath_req(T.base, ALICE(0), "POST", path, NULL, body, &r),
		    200);
		sth_resp_free(&r);
	}
}

/* Nothing else going on: an attempt is recorded alone (a batch of one),
 * at once. */
static void
a_lone_attempt_is_recorded_alone(void **state)
{
	char link[80], code[16], id[40], path[160], body[64];
	struct sth_resp r;
	double le1, count0;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "batch alone", 0, link,
	                code, id);
	le1 = metric("roomgate_admit_batch_size_bucket{le=\"1\"}");
	count0 = metric("roomgate_admit_batch_size_count");
	snprintf(path, sizeof(path), "/v1/join/%s", link);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
		    ath_req(T.base, ALICE(0), "POST", path, NULL, body, &r),
		    200);
		sth_resp_free(&r);
	}
	assert_int_equal(metric("roomgate_admit_batch_size_bucket{le=\"1\"}") -
	                     le1,
	                 3);
	assert_int_equal(metric("roomgate_admit_batch_size_count") - count0,
	                 3);
	assert_int_equal(metric("roomgate_admit_queue_waiting"), 0);
	assert_int_equal(metric("roomgate_admit_committing"), 0);
}

/* commit_batch_max = 1 (a second node): concurrent attempts are each
 * recorded alone, with the same answers. */
static void
batch_max_one_records_each_alone(void **state)
{
	char link[80], code[16], id[40], wrong[16], base_b[64], url[128];
	struct th_server b;
	struct bg_join j[6];
	struct sth_browser *who[6] = {ALICE(0), ALICE(1), BOB(0),
	                              BOB(1),   DAVE(0),  ALICE(2)};
	const char *codes[6];
	const long want[6] = {200, 401, 200, 200, 403, 200};
	int port_b = th_free_port();
	struct th_http *m;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "batch of one", 0, link,
	                code, id);
	wrong_of(code, wrong);
	for (int i = 0; i < 6; i++)
		codes[i] = want[i] == 401 ? wrong : code;
	assert_int_equal(setenv("ROOMGATE_DATABASE_COMMIT_BATCH_MAX", "1", 1),
	                 0);
	th_server_start(&b, T.cfg_path, port_b);
	unsetenv("ROOMGATE_DATABASE_COMMIT_BATCH_MAX");
	snprintf(base_b, sizeof(base_b), "http://127.0.0.1:%d", port_b);
	for (int i = 0; i < 6; i++) {
		memset(&j[i], 0, sizeof(j[i]));
		j[i].b = who[i];
		j[i].base = base_b;
		j[i].link = link;
		j[i].code = codes[i];
	}
	for (int i = 0; i < 6; i++)
		assert_int_equal(
		    pthread_create(&j[i].t, NULL, bg_join_run, &j[i]), 0);
	for (int i = 0; i < 6; i++) {
		bg_join_wait(&j[i]);
		if (j[i].status != want[i])
			fail_msg("attempt %d: expected %ld, got %ld: %s", i,
			         want[i], j[i].status, j[i].body);
		bg_join_free(&j[i]);
	}
	m = calloc(1, sizeof(*m));
	assert_non_null(m);
	snprintf(url, sizeof(url), "%s/metrics", base_b);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, m), 200);
	/* Every batch on node B was one attempt. */
	assert_non_null(
	    strstr(m->body, "roomgate_admit_batch_size_bucket{le=\"1\"} 6\n"));
	assert_non_null(strstr(m->body, "roomgate_admit_batch_size_sum 6\n"));
	free(m);
	th_server_stop(&b);
	assert_int_equal(
	    count_at("SELECT count(*) FROM audit_log WHERE meeting_id = "
	             "$1::uuid AND event_type = 'admission'",
	             id),
	    6);
}

static int
setup(void **state)
{
	char spmd[512];
	const char *sps[2];
	static const char *const names[3] = {"alice", "bob", "dave"};

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
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "batch-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "batch-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("batch.ini", node_ini()));
	th_server_start(&T.a, T.cfg_path, T.port);
	sth_save_sp_metadata(T.base, "batch-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "batch-host", "alice", T.host_token);
	for (int i = 0; i < NB; i++) {
		sth_browser_init(&T.b[i]);
		sth_sign_in(&T.b[i], T.base, T.idp_base, names[i / 4]);
	}
	sth_browser_init(&T.carol);
	sth_sign_in(&T.carol, T.base, T.idp_base, "carol");
	ath_new_meeting(T.base, T.host_token, GROUP, "batch blocker", 0,
	                T.block_link, T.block_code, T.block_id);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unpoison();
	admin_exec("DELETE FROM lockout_counters WHERE key LIKE '% bob' OR "
	           "key LIKE '% alice' OR key LIKE '% dave'");
	for (int i = 0; i < NB; i++)
		sth_browser_free(&T.b[i]);
	sth_browser_free(&T.carol);
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
	    cmocka_unit_test(a_lone_attempt_is_recorded_alone),
	    cmocka_unit_test(each_attempt_of_a_batch_gets_its_own_answer),
	    cmocka_unit_test(lockout_counts_every_attempt_of_a_batch),
	    cmocka_unit_test(an_error_inside_one_attempt_fails_it_alone),
	    cmocka_unit_test(a_deadlock_victim_is_recorded_again_alone),
	    cmocka_unit_test(a_failed_batch_denies_all_and_writes_nothing),
	    cmocka_unit_test(batch_max_one_records_each_alone),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
