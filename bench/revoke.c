/*
 * bench/revoke -- how fast a removal from the directory takes effect, for
 * `make bench` (bench/run.sh). Not part of roomgate; never linked into it.
 *
 *   revoke roomgate LDAP_URI BIND_DN PASSWORD_FILE GROUP_DN PEOPLE_BASE
 *                   BASE SESSIONS MEETINGS HOOK_PORT HOOK_SECRET_FILE
 *                   FIRST N WAIT_MS LABEL OUT_JSON
 *       Runs a webhook receiver (libmicrohttpd) on 127.0.0.1:HOOK_PORT,
 *       which roomgate's [webhooks] url names. For each of the N member
 *       sessions from line FIRST (0-based) of SESSIONS -- session i holds
 *       an admission to meeting i % (lines of MEETINGS), as `loadgen
 *       admit` made them -- it checks GET /v1/authz answers 200, removes
 *       the person from GROUP_DN with an LDAP modify and, from the moment
 *       the modify returned, measures (a) the first refused POST
 *       /v1/join/{link} with the right code (every 200 before it is a
 *       stale admission), (b) the first 403 from /v1/authz, (c) the
 *       arrival of an admission.revoked webhook naming the person (its
 *       signature checked). Each wait ends after WAIT_MS (counted as a
 *       timeout). Afterwards every removed person is put back in the
 *       group, so the directory is as before.
 *   revoke apache LDAP_URI BIND_DN PASSWORD_FILE GROUP_DN PEOPLE_BASE URL
 *                 UID USER_PASSWORD_FILE BOUND_S LABEL OUT_JSON
 *       The peer: checks URL admits UID (HTTP Basic), removes UID from
 *       GROUP_DN, then asks every 50 ms until the answer is not 200 or
 *       BOUND_S seconds passed (a request under way runs to its end);
 *       reports when the last 200 and the refusal came; puts UID back.
 *
 * Times are CLOCK_MONOTONIC in this one process (the receiver too), so
 * they compare directly.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <ldap.h>
#include <microhttpd.h>
#include <sodium.h>

#define MAX_LINE 8192
#define MAX_BODY 65536

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("revoke: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static long
num_arg(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi)
		die("%s must be a number in %ld..%ld, got '%s'", what, lo, hi,
		    s);
	return v;
}

static void
read_secret(const char *path, char *out, size_t outlen)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		die("cannot read %s: %s", path, strerror(errno));
	n = fread(out, 1, outlen - 1, f);
	fclose(f);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	out[n] = '\0';
	if (n == 0)
		die("%s is empty", path);
}

/* ---- the directory ------------------------------------------------------ */

static LDAP *
ldap_open_bound(const char *uri, const char *bind_dn, const char *pwfile)
{
	LDAP *ld = NULL;
	int v3 = LDAP_VERSION3, rc;
	char pw[256];
	struct berval cred;

	read_secret(pwfile, pw, sizeof(pw));
	if (ldap_initialize(&ld, uri) != LDAP_SUCCESS)
		die("ldap_initialize(%s) failed", uri);
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	cred.bv_val = pw;
	cred.bv_len = strlen(pw);
	rc = ldap_sasl_bind_s(ld, bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
			      NULL);
	sodium_memzero(pw, sizeof(pw));
	if (rc != LDAP_SUCCESS)
		die("bind as %s: %s", bind_dn, ldap_err2string(rc));
	return ld;
}

/* Adds (op LDAP_MOD_ADD) or deletes (LDAP_MOD_DELETE) the member values
 * dns[0..n-1] of group in one modify; dies on failure. */
static void
group_modify(LDAP *ld, const char *group, int op, char **dns, size_t n)
{
	LDAPMod mod, *mods[2] = {&mod, NULL};
	char **vals = calloc(n + 1, sizeof(*vals));
	int rc;

	if (vals == NULL)
		die("out of memory");
	memcpy(vals, dns, n * sizeof(*vals));
	mod.mod_op = op;
	mod.mod_type = "member";
	mod.mod_values = vals;
	rc = ldap_modify_ext_s(ld, group, mods, NULL, NULL);
	free(vals);
	if (rc != LDAP_SUCCESS)
		die("modify of %s (%s %zu members): %s", group,
		    op == LDAP_MOD_ADD ? "add" : "delete", n,
		    ldap_err2string(rc));
}

static char *
person_dn(const char *uid, const char *people)
{
	size_t n = strlen(uid) + strlen(people) + 8;
	char *dn = malloc(n);

	if (dn == NULL)
		die("out of memory");
	snprintf(dn, n, "uid=%s,%s", uid, people);
	return dn;
}

/* ---- distributions ------------------------------------------------------ */

struct dist {
	double v[4096];
	size_t n;
	unsigned timeouts;
};

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
dist_add(struct dist *d, double secs)
{
	if (d->n < sizeof(d->v) / sizeof(d->v[0]))
		d->v[d->n++] = secs;
}

/* Nearest-rank percentile in ms. */
static double
dist_pct(const struct dist *d, double p)
{
	size_t k = (size_t)ceil(p / 100.0 * (double)d->n);

	if (d->n == 0)
		return NAN;
	return d->v[(k < 1 ? 1 : k) - 1] * 1000.0;
}

static json_t *
dist_json(struct dist *d)
{
	qsort(d->v, d->n, sizeof(d->v[0]), cmp_double);
	if (d->n == 0)
		return json_pack("{s:i, s:i}", "n", 0, "timeouts",
				 (int)d->timeouts);
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:i}", "n",
			 (json_int_t)d->n, "p50_ms", dist_pct(d, 50), "p99_ms",
			 dist_pct(d, 99), "min_ms", d->v[0] * 1000.0, "max_ms",
			 d->v[d->n - 1] * 1000.0, "timeouts", (int)d->timeouts);
}

/* ---- the webhook receiver ---------------------------------------------- */

struct arrival {
	char identity[128];
	double at;
};

static struct {
	unsigned char key[256];
	size_t keylen;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct arrival *got;
	size_t ngot, cap;
	unsigned bad_signatures, events;
} H = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

struct upload {
	char *p;
	size_t n;
	int too_big;
};

/* X-Roomgate-Signature: v1=hex(HMAC-SHA-256(secret, ts "." body)). */
static int
signature_ok(struct MHD_Connection *c, const struct upload *u)
{
	const char *ts = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     "X-Roomgate-Timestamp");
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      "X-Roomgate-Signature");
	unsigned char want[crypto_auth_hmacsha256_BYTES];
	unsigned char got[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	size_t glen = 0;

	if (ts == NULL || sig == NULL || strncmp(sig, "v1=", 3) != 0)
		return 0;
	if (sodium_hex2bin(got, sizeof(got), sig + 3, strlen(sig + 3), NULL,
			   &glen, NULL) != 0 ||
	    glen != sizeof(got))
		return 0;
	crypto_auth_hmacsha256_init(&st, H.key, H.keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts,
				      strlen(ts));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)u->p, u->n);
	crypto_auth_hmacsha256_final(&st, want);
	return sodium_memcmp(want, got, sizeof(got)) == 0;
}

static void
record_event(const struct upload *u, double at)
{
	json_t *o = json_loadb(u->p, u->n, 0, NULL);
	const char *type = json_string_value(json_object_get(o, "type"));
	const char *who = json_string_value(
		json_object_get(json_object_get(o, "data"), "identity"));

	pthread_mutex_lock(&H.mu);
	H.events++;
	if (type != NULL && strcmp(type, "admission.revoked") == 0 &&
	    who != NULL) {
		if (H.ngot == H.cap) {
			H.cap = H.cap ? H.cap * 2 : 256;
			H.got = realloc(H.got, H.cap * sizeof(*H.got));
			if (H.got == NULL)
				die("out of memory");
		}
		snprintf(H.got[H.ngot].identity,
			 sizeof(H.got[H.ngot].identity), "%s", who);
		H.got[H.ngot++].at = at;
		pthread_cond_broadcast(&H.cv);
	}
	pthread_mutex_unlock(&H.mu);
	json_decref(o);
}

static enum MHD_Result
on_hook(void *cls, struct MHD_Connection *c, const char *url,
	const char *method, const char *version, const char *data,
	size_t *data_len, void **state)
{
	static const char ok[] = "ok\n";
	struct upload *u = *state;
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned status = MHD_HTTP_OK;

	(void)cls;
	(void)url;
	(void)version;
	if (u == NULL) {
		u = calloc(1, sizeof(*u));
		if (u == NULL)
			return MHD_NO;
		*state = u;
		return MHD_YES;
	}
	if (*data_len > 0) {
		if (u->n + *data_len > MAX_BODY) {
			u->too_big = 1;
		} else {
			char *np = realloc(u->p, u->n + *data_len + 1);

			if (np == NULL)
				return MHD_NO;
			memcpy(np + u->n, data, *data_len);
			u->n += *data_len;
			np[u->n] = '\0';
			u->p = np;
		}
		*data_len = 0;
		return MHD_YES;
	}
	if (strcmp(method, "POST") != 0 || u->too_big || u->p == NULL) {
		status = MHD_HTTP_BAD_REQUEST;
	} else if (!signature_ok(c, u)) {
		pthread_mutex_lock(&H.mu);
		H.bad_signatures++;
		pthread_mutex_unlock(&H.mu);
		status = MHD_HTTP_UNAUTHORIZED;
	} else {
		record_event(u, now_s());
	}
	r = MHD_create_response_from_buffer(sizeof(ok) - 1, (void *)ok,
					    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void
on_done(void *cls, struct MHD_Connection *c, void **state,
	enum MHD_RequestTerminationCode why)
{
	struct upload *u = *state;

	(void)cls;
	(void)c;
	(void)why;
	if (u != NULL) {
		free(u->p);
		free(u);
		*state = NULL;
	}
}

/* The first admission.revoked for uid (the identity is the uid or its
 * mail, uid@...) that arrived at or after since; waits until deadline.
 * Returns the arrival time, or NAN. */
static double
hook_wait(const char *uid, double since, double deadline)
{
	size_t ulen = strlen(uid), seen = 0;
	double at = NAN;

	pthread_mutex_lock(&H.mu);
	for (;;) {
		for (; seen < H.ngot; seen++) {
			const char *id = H.got[seen].identity;

			if (H.got[seen].at >= since &&
			    strncmp(id, uid, ulen) == 0 &&
			    (id[ulen] == '\0' || id[ulen] == '@')) {
				at = H.got[seen].at;
				break;
			}
		}
		if (!isnan(at) || now_s() >= deadline)
			break;
		{
			struct timespec ts;
			double rt;

			/* The condition variable waits on CLOCK_REALTIME;
			 * wake at least every 20 ms to look at the
			 * monotonic deadline. */
			clock_gettime(CLOCK_REALTIME, &ts);
			rt = (double)ts.tv_nsec / 1e9 + 0.02;
			ts.tv_sec += (time_t)rt;
			ts.tv_nsec = (long)((rt - floor(rt)) * 1e9);
			pthread_cond_timedwait(&H.cv, &H.mu, &ts);
		}
	}
	pthread_mutex_unlock(&H.mu);
	return at;
}

/* ---- roomgate's side ---------------------------------------------------- */

static size_t
discard(char *p, size_t sz, size_t nm, void *ud)
{
	(void)p;
	(void)ud;
	return sz * nm;
}

struct victim {
	char uid[64];
	char cookie[1024];
	const char *link;
	char *join_body;
};

struct prober {
	const char *base;
	const struct victim *v;
	double since, deadline;
	int join; /* 1: POST /v1/join until refused; 0: GET /v1/authz until 403 */
	double at; /* when the refusal arrived; NAN: never */
	long status; /* that answer */
	unsigned stale; /* 200 answers after the removal */
};

static CURL *
rg_handle(const char *base, const struct victim *v, int join,
	  struct curl_slist **hl)
{
	CURL *h = curl_easy_init();
	char url[512], hdr[160];

	if (h == NULL)
		die("curl_easy_init failed");
	*hl = NULL;
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_COOKIE, v->cookie);
	if (join) {
		snprintf(url, sizeof(url), "%s/v1/join/%s", base, v->link);
		*hl = curl_slist_append(*hl, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, v->join_body);
	} else {
		snprintf(url, sizeof(url), "%s/v1/authz", base);
		snprintf(hdr, sizeof(hdr), "X-Roomgate-Meeting: %s", v->link);
		*hl = curl_slist_append(*hl, hdr);
	}
	if (*hl == NULL)
		die("out of memory");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hl);
	curl_easy_setopt(h, CURLOPT_URL, url);
	return h;
}

static long
perform(CURL *h)
{
	long st = -1;

	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	return st;
}

static void *
probe_main(void *arg)
{
	struct prober *p = arg;
	struct curl_slist *hl;
	CURL *h = rg_handle(p->base, p->v, p->join, &hl);

	p->at = NAN;
	while (now_s() < p->deadline) {
		long st = perform(h);

		if (st == 200) {
			p->stale++;
			nap_ms(2);
			continue;
		}
		if (st < 0) {
			nap_ms(2);
			continue;
		}
		p->at = now_s();
		p->status = st;
		break;
	}
	curl_easy_cleanup(h);
	curl_slist_free_all(hl);
	return NULL;
}

static void
load_meeting_lines(const char *path, char ***links, char ***codes, size_t *n)
{
	char line[MAX_LINE];
	FILE *f = fopen(path, "r");
	size_t cap = 0;

	if (f == NULL)
		die("cannot read %s: %s", path, strerror(errno));
	*n = 0;
	*links = *codes = NULL;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *sp = strchr(line, ' '), *nl;

		if (sp == NULL)
			die("bad meeting line in %s", path);
		*sp = '\0';
		if ((nl = strchr(sp + 1, '\n')) != NULL)
			*nl = '\0';
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*links = realloc(*links, cap * sizeof(**links));
			*codes = realloc(*codes, cap * sizeof(**codes));
			if (*links == NULL || *codes == NULL)
				die("out of memory");
		}
		(*links)[*n] = strdup(line);
		(*codes)[*n] = strdup(sp + 1);
		if ((*links)[*n] == NULL || (*codes)[*n] == NULL)
			die("out of memory");
		(*n)++;
	}
	fclose(f);
	if (*n == 0)
		die("%s holds no meetings", path);
}

/* Victims: lines FIRST..FIRST+N-1 of the sessions file ("m uid cookie"). */
static struct victim *
load_victims(const char *path, long first, long n, char **links,
	     char **codes, size_t nmeetings)
{
	char line[MAX_LINE];
	FILE *f = fopen(path, "r");
	struct victim *v = calloc((size_t)n, sizeof(*v));
	long i = 0, k = 0;

	if (f == NULL || v == NULL)
		die("cannot read %s", path);
	while (k < n && fgets(line, sizeof(line), f) != NULL) {
		char *sp1 = strchr(line, ' '), *sp2, *nl;
		size_t m = (size_t)i % nmeetings;
		json_t *o;

		if (sp1 == NULL || (sp2 = strchr(sp1 + 1, ' ')) == NULL)
			die("bad session line in %s", path);
		if (i++ < first)
			continue;
		if (line[0] != 'm')
			die("line %ld of %s is not a member session", i, path);
		*sp2 = '\0';
		if ((nl = strchr(sp2 + 1, '\n')) != NULL)
			*nl = '\0';
		snprintf(v[k].uid, sizeof(v[k].uid), "%s", sp1 + 1);
		snprintf(v[k].cookie, sizeof(v[k].cookie), "%s", sp2 + 1);
		v[k].link = links[m];
		o = json_pack("{s:s}", "code", codes[m]);
		v[k].join_body = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (v[k].join_body == NULL)
			die("out of memory");
		k++;
	}
	fclose(f);
	if (k < n)
		die("%s holds %ld sessions from line %ld, %ld wanted", path, k,
		    first, n);
	return v;
}

static int
cmd_roomgate(int argc, char **argv)
{
	const char *uri, *bind_dn, *pwfile, *group, *people, *base;
	char secret[256];
	char **links, **codes, **dns;
	size_t nmeetings;
	long first, n, wait_ms, removed = 0, pre_failed = 0;
	unsigned stale = 0, authz_allowed = 0;
	struct victim *v;
	struct dist d_join = {0}, d_authz = {0}, d_hook = {0};
	struct MHD_Daemon *d;
	LDAP *ld;
	json_t *o;
	double t_run;

	if (argc != 17)
		die("usage: revoke roomgate LDAP_URI BIND_DN PASSWORD_FILE "
		    "GROUP_DN PEOPLE_BASE BASE SESSIONS MEETINGS HOOK_PORT "
		    "HOOK_SECRET_FILE FIRST N WAIT_MS LABEL OUT_JSON");
	uri = argv[2];
	bind_dn = argv[3];
	pwfile = argv[4];
	group = argv[5];
	people = argv[6];
	base = argv[7];
	first = num_arg(argv[12], 0, 1000000, "FIRST");
	n = num_arg(argv[13], 1, 4096, "N");
	wait_ms = num_arg(argv[14], 10, 600000, "WAIT_MS");
	read_secret(argv[11], secret, sizeof(secret));
	H.keylen = strlen(secret);
	memcpy(H.key, secret, H.keylen);
	sodium_memzero(secret, sizeof(secret));
	load_meeting_lines(argv[9], &links, &codes, &nmeetings);
	v = load_victims(argv[8], first, n, links, codes, nmeetings);
	dns = calloc((size_t)n, sizeof(*dns));
	if (dns == NULL)
		die("out of memory");
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				     MHD_USE_THREAD_PER_CONNECTION,
			     (uint16_t)num_arg(argv[10], 1, 65535, "HOOK_PORT"),
			     NULL, NULL, on_hook, NULL,
			     MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
			     MHD_OPTION_END);
	if (d == NULL)
		die("cannot listen on port %s for webhooks", argv[10]);
	ld = ldap_open_bound(uri, bind_dn, pwfile);
	t_run = now_s();
	for (long i = 0; i < n; i++) {
		struct prober pj = {0}, pa = {0};
		pthread_t tj, ta;
		struct curl_slist *hl;
		CURL *h = rg_handle(base, &v[i], 0, &hl);
		long st = perform(h);
		double t0, t_mod, hook;

		curl_easy_cleanup(h);
		curl_slist_free_all(hl);
		if (st != 200) {
			/* Not admitted to begin with: nothing to measure. */
			fprintf(stderr, "revoke: %s: /v1/authz answered %ld "
				"before the removal; skipped\n", v[i].uid, st);
			pre_failed++;
			continue;
		}
		dns[removed] = person_dn(v[i].uid, people);
		t_mod = now_s();
		group_modify(ld, group, LDAP_MOD_DELETE, &dns[removed], 1);
		removed++;
		t0 = now_s();
		pj.base = pa.base = base;
		pj.v = pa.v = &v[i];
		pj.since = pa.since = t0;
		pj.deadline = pa.deadline = t0 + (double)wait_ms / 1000.0;
		pj.join = 1;
		if (pthread_create(&tj, NULL, probe_main, &pj) != 0 ||
		    pthread_create(&ta, NULL, probe_main, &pa) != 0)
			die("cannot start a thread");
		/* A webhook cannot precede the modify, but it may in
		 * theory beat its answer to us: counted as 0. */
		hook = hook_wait(v[i].uid, t_mod, pj.deadline);
		pthread_join(tj, NULL);
		pthread_join(ta, NULL);
		stale += pj.stale;
		authz_allowed += pa.stale;
		if (isnan(pj.at) || pj.status != 403)
			d_join.timeouts++;
		else
			dist_add(&d_join, pj.at - t0);
		if (isnan(pa.at) || pa.status != 403)
			d_authz.timeouts++;
		else
			dist_add(&d_authz, pa.at - t0);
		if (isnan(hook))
			d_hook.timeouts++;
		else
			dist_add(&d_hook, hook > t0 ? hook - t0 : 0.0);
		if (pj.stale > 0 || isnan(pj.at) || pj.status != 403)
			fprintf(stderr, "revoke: %s: join after the removal: "
				"%u x 200, then %ld\n", v[i].uid, pj.stale,
				pj.status);
	}
	t_run = now_s() - t_run;
	if (removed > 0)
		group_modify(ld, group, LDAP_MOD_ADD, dns, (size_t)removed);
	ldap_unbind_ext_s(ld, NULL, NULL);
	MHD_stop_daemon(d);
	o = json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:o, s:o, s:o, s:i, "
		      "s:i, s:i, s:f}",
		      "kind", "revocation", "label", argv[15], "removals",
		      (json_int_t)removed, "not_admitted_before",
		      (json_int_t)pre_failed, "stale_admissions", (int)stale,
		      "authz_allowed_after_removal", (int)authz_allowed,
		      "join_refused", dist_json(&d_join), "authz_403",
		      dist_json(&d_authz), "webhook", dist_json(&d_hook),
		      "webhook_events", (int)H.events,
		      "webhook_bad_signatures", (int)H.bad_signatures,
		      "wait_ms", (int)wait_ms, "seconds", t_run);
	if (json_dump_file(o, argv[16], JSON_INDENT(2)) != 0)
		die("cannot write %s", argv[16]);
	json_decref(o);
	fprintf(stderr,
		"revoke: %s: %ld removals, %u stale admissions, %u authz 200s "
		"after a removal; p99 ms: join %.1f, authz %.1f, webhook %.1f; "
		"timeouts %u/%u/%u\n",
		argv[15], removed, stale, authz_allowed, dist_pct(&d_join, 99),
		dist_pct(&d_authz, 99), dist_pct(&d_hook, 99), d_join.timeouts,
		d_authz.timeouts, d_hook.timeouts);
	for (long i = 0; i < removed; i++)
		free(dns[i]);
	free(dns);
	for (long i = 0; i < n; i++)
		free(v[i].join_body);
	free(v);
	for (size_t i = 0; i < nmeetings; i++) {
		sodium_memzero(codes[i], strlen(codes[i]));
		free(codes[i]);
		free(links[i]);
	}
	free(codes);
	free(links);
	free(H.got);
	return removed > 0 && pre_failed == 0 ? 0 : 1;
}

/* ---- the peer ----------------------------------------------------------- */

static int
cmd_apache(int argc, char **argv)
{
	char pw[256];
	char *dn;
	long bound, after = 0;
	double t0, gone = NAN, last_in = 0;
	long st, last = -1;
	LDAP *ld;
	CURL *h;
	json_t *o;

	if (argc != 13)
		die("usage: revoke apache LDAP_URI BIND_DN PASSWORD_FILE "
		    "GROUP_DN PEOPLE_BASE URL UID USER_PASSWORD_FILE BOUND_S "
		    "LABEL OUT_JSON");
	bound = num_arg(argv[10], 1, 3600, "BOUND_S");
	read_secret(argv[9], pw, sizeof(pw));
	h = curl_easy_init();
	if (h == NULL)
		die("curl_easy_init failed");
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_URL, argv[7]);
	curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(h, CURLOPT_USERNAME, argv[8]);
	curl_easy_setopt(h, CURLOPT_PASSWORD, pw);
	st = perform(h);
	if (st != 200)
		die("%s: %s was not admitted before the removal (%ld)", argv[7],
		    argv[8], st);
	ld = ldap_open_bound(argv[2], argv[3], argv[4]);
	dn = person_dn(argv[8], argv[6]);
	group_modify(ld, argv[5], LDAP_MOD_DELETE, &dn, 1);
	t0 = now_s();
	while (now_s() - t0 < (double)bound) {
		st = perform(h);
		if (st != 200) {
			gone = now_s() - t0;
			last = st;
			break;
		}
		after++;
		last_in = now_s() - t0;
		nap_ms(50);
	}
	group_modify(ld, argv[5], LDAP_MOD_ADD, &dn, 1);
	ldap_unbind_ext_s(ld, NULL, NULL);
	curl_easy_cleanup(h);
	sodium_memzero(pw, sizeof(pw));
	free(dn);
	o = json_pack("{s:s, s:s, s:b, s:f, s:f, s:i, s:I, s:i}", "kind",
		      "peer_stale", "label", argv[11], "still_admitting",
		      isnan(gone), "seconds", isnan(gone) ? (double)bound : gone,
		      "last_admitted_s", last_in, "bound_s", (int)bound,
		      "admitted_after_removal", (json_int_t)after,
		      "refused_with", (int)last);
	if (json_dump_file(o, argv[12], JSON_INDENT(2)) != 0)
		die("cannot write %s", argv[12]);
	json_decref(o);
	if (isnan(gone))
		fprintf(stderr, "revoke: %s: still admitted after %ld s "
			"(%ld requests)\n", argv[11], bound, after);
	else
		fprintf(stderr, "revoke: %s: refused (%ld) after %.3f s\n",
			argv[11], last, gone);
	return 0;
}

int
main(int argc, char **argv)
{
	int r;

	if (argc < 2)
		die("usage: revoke roomgate|apache ...");
	if (sodium_init() < 0)
		die("libsodium failed to initialise");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(argv[1], "roomgate") == 0)
		r = cmd_roomgate(argc, argv);
	else if (strcmp(argv[1], "apache") == 0)
		r = cmd_apache(argc, argv);
	else
		die("unknown command %s", argv[1]);
	curl_global_cleanup();
	return r;
}
