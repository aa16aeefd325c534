/*
 * `make soak` (tests/soak/run.sh; not in CI): SOAK_SECONDS of mixed load
 * against one roomgate node (the release build) on the stack run.sh
 * started -- sign-ins through the test IdP, joins with right and wrong
 * codes, a non-member's joins, forward-auth checks and host API reads --
 * while roomgate's resident set (VmRSS) and open descriptors are sampled
 * every SOAK_SAMPLE_SECONDS into a CSV.
 *
 * Verdict: after the warm-up (SOAK_WARMUP_SECONDS, default a fifth of the
 * run, at most 120 s), the median of the last five samples may exceed the
 * median of the first five by at most SOAK_RSS_TOLERANCE_KB (default
 * 4096) of RSS and SOAK_FD_TOLERANCE (default 4) descriptors; every
 * answer must be the one the decision gives (no 5xx, no admission for a
 * wrong code or a non-member). Knobs (environment, defaults in brackets):
 *   SOAK_SECONDS [600]  SOAK_CLIENTS [8]  SOAK_SAMPLE_SECONDS [5]
 *   SOAK_WARMUP_SECONDS [min(120, SOAK_SECONDS/5)]
 *   SOAK_RSS_TOLERANCE_KB [4096]  SOAK_FD_TOLERANCE [4]
 *   SOAK_CSV [RG_TEST_TMP/soak.csv; run.sh copies it to BUILD/soak/]
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

/* The shared SAML helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop
#include "tests/lib/th_fault.h"

#define SP_ENTITY "https://roomgate-soak.test/saml/metadata"
#define IDP_ENTITY "https://idp-soak.test/saml"
#define JWT_SECRET "jitsi-shared-secret-for-the-soak-run"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define NMEET 4
#define MAX_SAMPLES 20000
#define MAX_CLIENTS 64

enum { A_JOIN_RIGHT, A_JOIN_WRONG, A_AUTHZ, A_HOST, A_SIGNIN, A_N };
static const char *const action_name[A_N] = {"join right code",
                                             "join wrong code", "authz",
                                             "host API", "sign-in"};

struct client {
	const char *user;
	int member;
	struct sth_browser b;
	pthread_t t;
	unsigned seed;
	int admitted[NMEET]; /* joined in this session */
};

struct sample {
	double t;
	long rss_kb, fds, requests;
};

static struct {
	int idp_port, port;
	char base[64], idp_base[64];
	struct th_server srv;
	pid_t idp;
	char host_token[64];
	char link[NMEET][80], code[NMEET][16], id[NMEET][40];
	struct client c[MAX_CLIENTS];
	int nclients;
	atomic_int stop;
	atomic_long n[A_N], bad, requests;
	pthread_mutex_t mu;
	char first_bad[512];
	struct sample s[MAX_SAMPLES];
	int ns;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static long
env_long(const char *name, long def, long lo, long hi)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return def;
	n = strtol(v, &end, 10);
	if (*end != '\0' || n < lo || n > hi)
		fail_msg("%s = \"%s\": a whole number from %ld to %ld", name, v,
		         lo, hi);
	return n;
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
bad(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&S.mu);
	if (atomic_fetch_add(&S.bad, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(S.first_bad, sizeof(S.first_bad), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&S.mu);
}

/* sth_sign_in without assertions (it runs on load threads): 0 when the
 * browser holds a new session. */
static int
sign_in(struct sth_browser *b, const char *user)
{
	struct sth_resp r;
	char url[8300], *q = NULL, *eq = NULL, *body = NULL, *b64 = NULL;
	char *action = NULL, *e = NULL;
	size_t n;
	int rc = -1;

	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "%s/saml/login?return=/", S.base);
	if (sth_do(b, url, NULL, 0, &r) != 302)
		goto out;
	snprintf(url, sizeof(url), "%s", r.location);
	sth_resp_free(&r);
	if (sth_do(b, url, NULL, 0, &r) != 200 ||
	    (q = sth_form_field(r.body, "q")) == NULL)
		goto out;
	sth_resp_free(&r);
	eq = sth_escape(b, q);
	n = strlen(eq) + 256;
	if ((body = malloc(n)) == NULL)
		goto out;
	snprintf(body, n, "q=%s&user=%s&password=%s", eq, user, STH_PASSWORD);
	snprintf(url, sizeof(url), "%s/sso", S.idp_base);
	if (sth_do(b, url, body, strlen(body), &r) != 200 ||
	    (b64 = sth_form_field(r.body, "SAMLResponse")) == NULL ||
	    (action = sth_form_action(r.body)) == NULL)
		goto out;
	sth_resp_free(&r);
	e = sth_escape(b, b64);
	free(body);
	n = strlen(e) + 32;
	if ((body = malloc(n)) == NULL)
		goto out;
	snprintf(body, n, "SAMLResponse=%s", e);
	if (sth_do(b, action, body, strlen(body), &r) != 303)
		goto out;
	rc = 0;
out:
	sth_resp_free(&r);
	free(e);
	free(action);
	free(b64);
	free(body);
	free(eq);
	free(q);
	return rc;
}

/* One action of client c; each answer checked against the decision. */
static void
act(struct client *c)
{
	int roll = (int)(rand_r(&c->seed) % 100);
	int m = (int)(rand_r(&c->seed) % NMEET);
	int a;
	struct sth_resp r;
	char path[256], body[64], hdr[160];
	const char *h[] = {hdr, NULL};
	long st, want = 0;

	/* 45% right codes, 10% wrong, 28% authz, 15% host API, 2% sign-in */
	if (roll < 45)
		a = A_JOIN_RIGHT;
	else if (roll < 55)
		a = A_JOIN_WRONG;
	else if (roll < 83)
		a = A_AUTHZ;
	else if (roll < 98)
		a = A_HOST;
	else
		a = A_SIGNIN;

	memset(&r, 0, sizeof(r));
	switch (a) {
	case A_JOIN_RIGHT:
	case A_JOIN_WRONG:
		snprintf(path, sizeof(path), "/v1/join/%s", S.link[m]);
		snprintf(body, sizeof(body), "{\"code\": \"%s\"}",
		         a == A_JOIN_RIGHT ? S.code[m] : "00000000");
		st = ath_req(S.base, &c->b, "POST", path, NULL, body, &r);
		want = !c->member ? 403 : a == A_JOIN_RIGHT ? 200 : 401;
		if (st == 200)
			c->admitted[m] = 1;
		break;
	case A_AUTHZ:
		snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s",
		         S.link[m]);
		st = ath_req(S.base, &c->b, "GET", "/v1/authz", h, NULL, &r);
		want = c->admitted[m] ? 200 : 403;
		break;
	case A_HOST:
		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s",
		         S.host_token);
		if (roll % 2)
			snprintf(path, sizeof(path), "/v1/meetings/%s",
			         S.id[m]);
		else
			snprintf(path, sizeof(path), "/v1/meetings?limit=10");
		{
			/* no cookies: the host token alone */
			struct th_http *hr = calloc(1, sizeof(*hr));
			char url[512];

			if (hr == NULL)
				return;
			snprintf(url, sizeof(url), "%s%s", S.base, path);
			st = th_http("GET", url, h, NULL, 0, hr);
			r.body = strndup(hr->body, 200);
			free(hr);
		}
		want = 200;
		break;
	default:
		/* a new session: the admissions of the old one stay there */
		sth_browser_free(&c->b);
		sth_browser_init(&c->b);
		memset(c->admitted, 0, sizeof(c->admitted));
		st = sign_in(&c->b, c->user) == 0 ? 200 : -1;
		want = 200;
		break;
	}
	atomic_fetch_add(&S.n[a], 1);
	atomic_fetch_add(&S.requests, 1);
	if (st != want)
		bad("%s by %s: %ld, expected %ld: %.200s", action_name[a],
		    c->user, st, want, r.body ? r.body : "");
	sth_resp_free(&r);
}

static void *
client_thread(void *arg)
{
	struct client *c = arg;

	while (!atomic_load(&S.stop))
		act(c);
	return NULL;
}

static void
sample(double t0)
{
	struct sample *s;

	if (S.ns == MAX_SAMPLES)
		return;
	s = &S.s[S.ns++];
	s->t = mono_s() - t0;
	s->rss_kb = th_proc_rss_kb(S.srv.pid);
	s->fds = th_proc_fds(S.srv.pid);
	s->requests = atomic_load(&S.requests);
}

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* Median of field (0 rss, 1 fds) over samples [from, from+5). */
static long
median5(int from, int field)
{
	long v[5];

	for (int i = 0; i < 5; i++)
		v[i] = field == 0 ? S.s[from + i].rss_kb : S.s[from + i].fds;
	qsort(v, 5, sizeof(v[0]), cmp_long);
	return v[2];
}

/* ---- the run ---------------------------------------------------------- */

static int
setup(void **state)
{
	static const struct {
		const char *user;
		int member;
	} who[] = {{"alice", 1}, {"carol", 1}, {"bob", 1}, {"dave", 0}};
	char spmd[512], key[512], crt[512], md[512], ini[4096], cfg[1024];
	const char *sps[2];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	S.nclients = (int)env_long("SOAK_CLIENTS", 8, 1, MAX_CLIENTS);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	S.idp_port = th_free_port();
	S.port = th_free_port();
	snprintf(S.idp_base, sizeof(S.idp_base), "http://127.0.0.1:%d",
	         S.idp_port);
	snprintf(S.base, sizeof(S.base), "http://127.0.0.1:%d", S.port);
	sth_idp_metadata(IDP_ENTITY, S.idp_base, "soak-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "soak-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	S.idp = sth_idp_start(IDP_ENTITY, S.idp_base, S.idp_port, sps);
	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "soak-idp-md.xml");
	/* Lockout on, with limits the run's own wrong codes cannot reach
	 * (every request comes from 127.0.0.1). */
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\nmax_failures = 1000\nfailure_window = 60\n"
	         "source_max_failures = 10000000\nprobe_identities = 0\n"
	         "[tokens]\nhs256_secret = " JWT_SECRET "\n"
	         "issuer = rg-soak\naudience = jitsi\n"
	         "subject = meet.example.com\n",
	         S.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md);
	/* th_config's buffer is reused by the next file written */
	snprintf(cfg, sizeof(cfg), "%s", th_config("soak.ini", ini));
	th_server_start(&S.srv, cfg, S.port);
	sth_save_sp_metadata(S.base, "soak-sp-md.xml");
	ath_token(cfg, "host", "soak-host", "alice", S.host_token);
	for (int i = 0; i < NMEET; i++)
		ath_new_meeting(S.base, S.host_token, GROUP, "soak", 0,
		                S.link[i], S.code[i], S.id[i]);
	for (int i = 0; i < S.nclients; i++) {
		struct client *c = &S.c[i];

		c->user = who[i % 4].user;
		c->member = who[i % 4].member;
		c->seed = 7919u * (unsigned)(i + 1);
		sth_browser_init(&c->b);
		curl_easy_setopt(c->b.h, CURLOPT_TIMEOUT, 30L);
		if (sign_in(&c->b, c->user) != 0)
			fail_msg("%s could not sign in", c->user);
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (int i = 0; i < S.nclients; i++)
		sth_browser_free(&S.c[i].b);
	sth_idp_stop(S.idp);
	th_server_stop(&S.srv);
	curl_global_cleanup();
	return 0;
}

static void
soak(void **state)
{
	long secs = env_long("SOAK_SECONDS", 600, 10, 86400);
	long every = env_long("SOAK_SAMPLE_SECONDS", 5, 1, 3600);
	long warm = env_long("SOAK_WARMUP_SECONDS",
	                     secs / 5 < 120 ? secs / 5 : 120, 0, 86400);
	long rss_tol = env_long("SOAK_RSS_TOLERANCE_KB", 4096, 0, 10000000);
	long fd_tol = env_long("SOAK_FD_TOLERANCE", 4, 0, 100000);
	const char *csv = getenv("SOAK_CSV");
	char csv_path[1024];
	long rss0, rss1, fd0, fd1, rss_max = 0, fd_max = 0;
	double t0, next;
	int first = -1;
	FILE *f;

	(void)state;
	if (csv == NULL || *csv == '\0') {
		snprintf(csv_path, sizeof(csv_path), "%s/soak.csv",
		         th_env("RG_TEST_TMP"));
		csv = csv_path;
	}
	t0 = mono_s();
	sample(t0);
	for (int i = 0; i < S.nclients; i++)
		assert_int_equal(pthread_create(&S.c[i].t, NULL,
		                                client_thread, &S.c[i]),
		                 0);
	next = t0 + (double)every;
	while (mono_s() - t0 < (double)secs) {
		double now = mono_s();

		if (now < next) {
			usleep((useconds_t)((next - now) * 1e6));
			continue;
		}
		next += (double)every;
		sample(t0);
		if (S.s[S.ns - 1].rss_kb < 0)
			break; /* the server is gone: reported below */
		if (S.ns % 12 == 0)
			print_message("soak: %.0f s, %ld requests, RSS %ld kB, "
			              "%ld fds, %ld wrong answers\n",
			              S.s[S.ns - 1].t, S.s[S.ns - 1].requests,
			              S.s[S.ns - 1].rss_kb, S.s[S.ns - 1].fds,
			              atomic_load(&S.bad));
	}
	atomic_store(&S.stop, 1);
	for (int i = 0; i < S.nclients; i++)
		pthread_join(S.c[i].t, NULL);
	sample(t0);

	f = fopen(csv, "w");
	assert_non_null(f);
	fprintf(f, "elapsed_s,rss_kb,fds,requests\n");
	for (int i = 0; i < S.ns; i++) {
		fprintf(f, "%.1f,%ld,%ld,%ld\n", S.s[i].t, S.s[i].rss_kb,
		        S.s[i].fds, S.s[i].requests);
		if (S.s[i].t >= (double)warm && first < 0)
			first = i;
		if (S.s[i].rss_kb > rss_max)
			rss_max = S.s[i].rss_kb;
		if (S.s[i].fds > fd_max)
			fd_max = S.s[i].fds;
	}
	assert_int_equal(fclose(f), 0);
	for (int i = 0; i < S.ns; i++)
		if (S.s[i].rss_kb < 0 || S.s[i].fds < 0)
			fail_msg("roomgate was gone at %.0f s; see %s",
			         S.s[i].t, S.srv.log_path);
	if (first < 0 || S.ns - first < 10)
		fail_msg("too few samples after the %ld s warm-up (%d in all): "
		         "run longer or sample more often",
		         warm, S.ns);
	rss0 = median5(first, 0);
	fd0 = median5(first, 1);
	rss1 = median5(S.ns - 5, 0);
	fd1 = median5(S.ns - 5, 1);
	print_message(
	    "soak: %ld s, %d clients, %ld requests (%.0f/s): %ld joins "
	    "right, %ld joins wrong, %ld authz, %ld host API, %ld sign-ins; "
	    "%ld wrong answers\n",
	    secs, S.nclients, atomic_load(&S.requests),
	    (double)atomic_load(&S.requests) / (double)secs,
	    atomic_load(&S.n[A_JOIN_RIGHT]), atomic_load(&S.n[A_JOIN_WRONG]),
	    atomic_load(&S.n[A_AUTHZ]), atomic_load(&S.n[A_HOST]),
	    atomic_load(&S.n[A_SIGNIN]), atomic_load(&S.bad));
	print_message("soak: RSS after warm-up (%ld s) %ld kB, at the end "
	              "%ld kB (%+ld kB, tolerance %ld), peak %ld kB\n",
	              warm, rss0, rss1, rss1 - rss0, rss_tol, rss_max);
	print_message("soak: fds after warm-up %ld, at the end %ld (%+ld, "
	              "tolerance %ld), peak %ld; samples in %s\n",
	              fd0, fd1, fd1 - fd0, fd_tol, fd_max, csv);
	if (atomic_load(&S.bad) > 0)
		fail_msg("%ld wrong answers; first: %s", atomic_load(&S.bad),
		         S.first_bad);
	if (rss1 - rss0 > rss_tol)
		fail_msg("RSS grew by %ld kB after the warm-up (tolerance %ld "
		         "kB)",
		         rss1 - rss0, rss_tol);
	if (fd1 - fd0 > fd_tol)
		fail_msg("open descriptors grew by %ld after the warm-up "
		         "(tolerance %ld)",
		         fd1 - fd0, fd_tol);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(soak),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
