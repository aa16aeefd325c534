/*
 * bench/loadgen -- the load generator and report tool behind `make bench`
 * (bench/run.sh). Not part of roomgate; never linked into it.
 *
 *   loadgen signin  BASE PASSWORD_FILE OUT < "uid idp_port class" lines
 *       signs every listed user in through the real test IdP (SAML
 *       HTTP-Redirect + HTTP-POST, libcurl with a cookie jar per user) and
 *       writes "class uid cookie-header" lines to OUT. class is m (member of
 *       the meeting's group) or n (not).
 *   loadgen meetings BASE TOKEN_FILE GROUP N OUT
 *       creates N meetings allowing GROUP over the API with a host token;
 *       writes "link code" lines.
 *   loadgen join BASE SESSIONS MEETINGS CLIENTS SECONDS WARMUP SEED
 *                WRONG_SHARE NONMEMBER_SHARE LABEL OUT_JSON [KIND]
 *       CLIENTS threads, each one keep-alive connection, POST
 *       /v1/join/{link} as fast as answered for SECONDS (the first WARMUP
 *       seconds are not counted). Each request draws (deterministically
 *       from SEED) a member or non-member session, a meeting and a right
 *       or wrong code (same length, so a 401 and never a 400). Latency per
 *       class, and every answer that is not the expected one is counted.
 *       KIND (default "admission") tags the result, e.g. "timing".
 *       With LOADGEN_XFF=1 in the environment each session sends its own
 *       X-Forwarded-For address (10.1.x.y members, 10.2.x.y non-members),
 *       as behind a proxy roomgate trusts; otherwise all come from
 *       127.0.0.1 (one address: corporate NAT).
 *       LOADGEN_XFF_NET=N (with LOADGEN_XFF=1) puts every session in
 *       10.N.x.y instead (the attack phase's flood: its own addresses).
 *   loadgen admit BASE SESSIONS MEETINGS CLIENTS
 *       admits every member session (the i-th to meeting i % meetings)
 *       with the right code; each answer must be 200.
 *   loadgen authz BASE SESSIONS MEETINGS USERS CLIENTS SECONDS WARMUP SEED
 *                 LABEL OUT_JSON
 *       forward-auth load: GET /v1/authz as nginx auth_request sends it
 *       (the session cookie, X-Roomgate-Meeting naming the meeting the
 *       session was admitted to by `admit`), each request from one of the
 *       first USERS member sessions drawn at random (so USERS distinct
 *       people rotate); each answer must be 200.
 *   loadgen basic URL USERS_FILE PASSWORD_FILE USERS EXPECT CLIENTS SECONDS
 *                 WARMUP SEED LABEL OUT_JSON
 *       the peer's load: GET URL with HTTP Basic credentials of one of the
 *       first USERS uids of USERS_FILE (one a line) drawn at random;
 *       EXPECT is the status every answer must have (200), or 0 for a
 *       denial (401 or 403).
 *   loadgen get URL CLIENTS SECONDS WARMUP LABEL OUT_JSON
 *       the same for a plain GET (the HTTP floor).
 *   loadgen note OUT_JSON KIND key=value...
 *       one result fragment (numbers stay numbers).
 *   loadgen report OUT_JSON FRAGMENT...
 *       merges the fragments into one JSON document and prints the table.
 *
 * Randomness is libsodium's randombytes_buf_deterministic, seeded per
 * thread from SEED, so a run's request sequence is reproducible.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libxml/HTMLparser.h>
#include <libxml/xpath.h>
#include <sodium.h>

#define MAX_LINE 8192
#define RAND_BLOCK 4096

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
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

static double
share_arg(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || end == s || !(v >= 0.0 && v <= 1.0))
		die("%s must be a share in 0..1, got '%s'", what, s);
	return v;
}

/* Splits line into at most max space-separated words (in place); returns
 * how many. */
static int
split_words(char *line, char **w, int max)
{
	int n = 0;
	char *p = line;

	while (n < max) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			*p++ = '\0';
		if (*p == '\0')
			break;
		w[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n' &&
		       *p != '\r')
			p++;
	}
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		*p++ = '\0';
	return n;
}

/* ---- a growable response body ------------------------------------------ */

struct body {
	char *p;
	size_t n;
};

static size_t
on_body(char *p, size_t sz, size_t nm, void *ud)
{
	struct body *b = ud;
	size_t add = sz * nm;
	char *np;

	if (b->n + add > 4 * 1024 * 1024)
		return 0; /* far more than any page we read */
	np = realloc(b->p, b->n + add + 1);
	if (np == NULL)
		return 0;
	memcpy(np + b->n, p, add);
	b->n += add;
	np[b->n] = '\0';
	b->p = np;
	return add;
}

static size_t
discard(char *p, size_t sz, size_t nm, void *ud)
{
	(void)p;
	(void)ud;
	return sz * nm;
}

/* GET (form NULL) or POST a form / JSON body; no redirects followed. */
static long
do_req(CURL *h, const char *url, const char *ctype, const char *payload,
       struct body *b, char **location)
{
	struct curl_slist *hl = NULL;
	char hdr[128];
	long st = -1;
	char *loc = NULL;

	free(b->p);
	b->p = NULL;
	b->n = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	if (payload != NULL) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
		hl = curl_slist_append(hl, hdr);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)strlen(payload));
		curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, payload);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	if (location != NULL) {
		*location = NULL;
		if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc) ==
			    CURLE_OK &&
		    loc != NULL)
			*location = strdup(loc);
	}
	return st;
}

/* The string value of an XPath expression over an HTML page (libxml2's
 * HTML parser decodes the entities); NULL when absent. */
static char *
html_xpath(const char *html, const char *expr)
{
	htmlDocPtr doc;
	xmlXPathContextPtr ctx = NULL;
	xmlXPathObjectPtr o = NULL;
	char *out = NULL;

	doc = htmlReadMemory(html, (int)strlen(html), NULL, "UTF-8",
			     HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
				     HTML_PARSE_NONET);
	if (doc == NULL)
		return NULL;
	ctx = xmlXPathNewContext(doc);
	if (ctx != NULL)
		o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	if (o != NULL && o->type == XPATH_STRING && o->stringval != NULL &&
	    o->stringval[0] != '\0')
		out = strdup((const char *)o->stringval);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return out;
}

/* ---- signin ------------------------------------------------------------ */

struct signin_job {
	char uid[64];
	int idp_port;
	char cls;
	char cookie[1024];
	int ok;
};

static struct {
	const char *base;
	char password[256];
	struct signin_job *jobs;
	size_t njobs, next;
	pthread_mutex_t mu;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Points url (an IdP URL) at 127.0.0.1:port: the bench runs several IdP
 * processes sharing one entity id and key (the test IdP holds at most 64
 * users), and each user lives in one of them. */
static int
idp_url_for(const char *url, int port, char *out, size_t outlen)
{
	const char *host = strstr(url, "://"), *path;
	int k;

	if (host == NULL)
		return -1;
	host += 3;
	path = strchr(host, '/');
	if (path == NULL)
		return -1;
	k = snprintf(out, outlen, "http://127.0.0.1:%d%s", port, path);
	return k > 0 && (size_t)k < outlen ? 0 : -1;
}

static int
signin_one(struct signin_job *j)
{
	CURL *h = curl_easy_init();
	struct body b = {0};
	struct curl_slist *cookies = NULL, *c;
	char url[8192], *loc = NULL, *q = NULL, *eq = NULL, *form = NULL;
	char *saml = NULL, *action = NULL, *esaml = NULL;
	size_t n, used = 0;
	int r = -1;

	if (h == NULL)
		return -1;
	curl_easy_setopt(h, CURLOPT_COOKIEFILE, "");
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	snprintf(url, sizeof(url), "%s/saml/login?return=/", S.base);
	if (do_req(h, url, NULL, NULL, &b, &loc) != 302 || loc == NULL) {
		fprintf(stderr, "loadgen: %s: /saml/login did not redirect\n",
			j->uid);
		goto out;
	}
	if (idp_url_for(loc, j->idp_port, url, sizeof(url)) != 0 ||
	    do_req(h, url, NULL, NULL, &b, NULL) != 200 ||
	    (q = html_xpath(b.p, "string(//input[@name='q']/@value)")) ==
		    NULL) {
		fprintf(stderr, "loadgen: %s: the IdP showed no login form\n",
			j->uid);
		goto out;
	}
	eq = curl_easy_escape(h, q, 0);
	if (eq == NULL)
		goto out;
	n = strlen(eq) + strlen(j->uid) + strlen(S.password) + 64;
	form = malloc(n);
	if (form == NULL)
		goto out;
	snprintf(form, n, "q=%s&user=%s&password=%s", eq, j->uid,
		 S.password);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/sso", j->idp_port);
	if (do_req(h, url, "application/x-www-form-urlencoded", form, &b,
		   NULL) != 200 ||
	    (saml = html_xpath(b.p,
			       "string(//input[@name='SAMLResponse']/@value)")) ==
		    NULL ||
	    (action = html_xpath(b.p, "string(//form/@action)")) == NULL) {
		fprintf(stderr, "loadgen: %s: the IdP refused the sign-in\n",
			j->uid);
		goto out;
	}
	esaml = curl_easy_escape(h, saml, 0);
	free(form);
	n = (esaml ? strlen(esaml) : 0) + 32;
	form = malloc(n);
	if (esaml == NULL || form == NULL)
		goto out;
	snprintf(form, n, "SAMLResponse=%s", esaml);
	if (do_req(h, action, "application/x-www-form-urlencoded", form, &b,
		   NULL) != 303) {
		fprintf(stderr, "loadgen: %s: the ACS refused the response: %s\n",
			j->uid, b.p ? b.p : "");
		goto out;
	}
	/* The session: every cookie the jar holds for roomgate. */
	if (curl_easy_getinfo(h, CURLINFO_COOKIELIST, &cookies) != CURLE_OK)
		goto out;
	j->cookie[0] = '\0';
	for (c = cookies; c != NULL; c = c->next) {
		/* Netscape format: domain, tailmatch, path, secure, expiry,
		 * name, value -- tab separated. */
		const char *f = c->data, *name = NULL, *val = NULL;
		int k;

		for (int i = 0; i < 5 && f != NULL; i++) {
			f = strchr(f, '\t');
			if (f != NULL)
				f++;
		}
		if (f == NULL || strstr(c->data, "127.0.0.1") == NULL)
			continue;
		name = f;
		val = strchr(name, '\t');
		if (val == NULL)
			continue;
		k = snprintf(j->cookie + used, sizeof(j->cookie) - used,
			     "%s%.*s=%s", used ? "; " : "", (int)(val - name),
			     name, val + 1);
		if (k < 0 || (size_t)k >= sizeof(j->cookie) - used)
			goto out;
		used += (size_t)k;
	}
	if (strstr(j->cookie, "rg_session=") == NULL) {
		fprintf(stderr, "loadgen: %s: no session cookie after sign-in\n",
			j->uid);
		goto out;
	}
	r = 0;
out:
	curl_slist_free_all(cookies);
	curl_free(eq);
	curl_free(esaml);
	free(loc);
	free(q);
	free(form);
	free(saml);
	free(action);
	free(b.p);
	curl_easy_cleanup(h);
	return r;
}

static void *
signin_worker(void *arg)
{
	(void)arg;
	for (;;) {
		struct signin_job *j;

		pthread_mutex_lock(&S.mu);
		j = S.next < S.njobs ? &S.jobs[S.next++] : NULL;
		pthread_mutex_unlock(&S.mu);
		if (j == NULL)
			return NULL;
		j->ok = signin_one(j) == 0;
	}
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
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	if (n == 0)
		die("%s is empty", path);
}

static int
cmd_signin(int argc, char **argv)
{
	char line[MAX_LINE];
	/* 8 at once: a sign-in waits on the IdP, roomgate and a commit. */
	pthread_t th[8];
	size_t cap = 0, ok = 0;
	FILE *out;

	if (argc != 5)
		die("usage: loadgen signin BASE PASSWORD_FILE OUT < users");
	S.base = argv[2];
	read_secret(argv[3], S.password, sizeof(S.password));
	while (fgets(line, sizeof(line), stdin) != NULL) {
		struct signin_job *j;
		char *w[3];

		if (split_words(line, w, 3) != 3 || strlen(w[0]) >= 64)
			die("bad user line (want: uid idp_port m|n)");
		if (S.njobs == cap) {
			cap = cap ? cap * 2 : 256;
			S.jobs = realloc(S.jobs, cap * sizeof(*S.jobs));
			if (S.jobs == NULL)
				die("out of memory");
		}
		j = &S.jobs[S.njobs++];
		memset(j, 0, sizeof(*j));
		snprintf(j->uid, sizeof(j->uid), "%s", w[0]);
		j->idp_port = (int)num_arg(w[1], 1, 65535, "idp_port");
		j->cls = w[2][0];
	}
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, signin_worker, NULL);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	out = fopen(argv[4], "w");
	if (out == NULL)
		die("cannot write %s: %s", argv[4], strerror(errno));
	for (size_t i = 0; i < S.njobs; i++) {
		if (!S.jobs[i].ok)
			continue;
		fprintf(out, "%c %s %s\n", S.jobs[i].cls, S.jobs[i].uid,
			S.jobs[i].cookie);
		ok++;
	}
	fclose(out);
	sodium_memzero(S.password, sizeof(S.password));
	fprintf(stderr, "loadgen: %zu of %zu users signed in\n", ok, S.njobs);
	free(S.jobs);
	return ok == S.njobs ? 0 : 1;
}

/* ---- meetings ---------------------------------------------------------- */

static int
cmd_meetings(int argc, char **argv)
{
	char token[128], auth[200], url[512];
	long n;
	FILE *out;
	CURL *h;
	struct body b = {0};

	if (argc != 7)
		die("usage: loadgen meetings BASE TOKEN_FILE GROUP N OUT");
	read_secret(argv[3], token, sizeof(token));
	n = num_arg(argv[5], 1, 1000, "N");
	out = fopen(argv[6], "w");
	h = curl_easy_init();
	if (out == NULL || h == NULL)
		die("cannot write %s", argv[6]);
	snprintf(url, sizeof(url), "%s/v1/meetings", argv[2]);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	for (long i = 0; i < n; i++) {
		struct curl_slist *hl = NULL;
		json_t *req, *res;
		char title[64], *payload;
		const char *link, *code;
		long st = -1;

		snprintf(title, sizeof(title), "bench meeting %ld", i + 1);
		req = json_pack("{s:s, s:[s], s:b}", "title", title,
				"allowed_groups", argv[4], "waiting_room", 0);
		payload = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		hl = curl_slist_append(hl, auth);
		hl = curl_slist_append(hl, "Content-Type: application/json");
		free(b.p);
		b.p = NULL;
		b.n = 0;
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, payload);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		if (curl_easy_perform(h) == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
		curl_slist_free_all(hl);
		free(payload);
		if (st != 201 || b.p == NULL)
			die("POST /v1/meetings answered %ld: %s", st,
			    b.p ? b.p : "");
		res = json_loads(b.p, 0, NULL);
		link = json_string_value(json_object_get(res, "link_id"));
		code = json_string_value(json_object_get(
			json_object_get(res, "code"), "code"));
		if (link == NULL || code == NULL)
			die("POST /v1/meetings: no link_id or code in %s", b.p);
		fprintf(out, "%s %s\n", link, code);
		json_decref(res);
	}
	sodium_memzero(token, sizeof(token));
	free(b.p);
	curl_easy_cleanup(h);
	fclose(out);
	return 0;
}

/* ---- latency samples --------------------------------------------------- */

enum { C_MR, C_MW, C_NR, C_NW, C_GET, C_AUTHZ, NCLASS };
static const char *class_name[NCLASS] = {
	"member_right_code", "member_wrong_code", "nonmember_right_code",
	"nonmember_wrong_code", "get", "authz"};
/* What each class must answer; anything else counts as unexpected.
 * 0: a denial, 401 or 403 (`basic` with EXPECT 0). */
static long class_expect[NCLASS] = {200, 401, 403, 403, 200, 200};

struct samples {
	double *v;
	size_t n, cap;
};

static void
samples_add(struct samples *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (s->v == NULL)
			die("out of memory");
	}
	s->v[s->n++] = x;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in ms. */
static double
pct(const struct samples *s, double p)
{
	size_t k;

	if (s->n == 0)
		return NAN;
	k = (size_t)ceil(p / 100.0 * (double)s->n);
	if (k < 1)
		k = 1;
	return s->v[k - 1] * 1000.0;
}

static json_t *
samples_json(struct samples *s, double secs)
{
	double sum = 0;

	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	for (size_t i = 0; i < s->n; i++)
		sum += s->v[i];
	if (s->n == 0)
		return json_pack("{s:i}", "n", 0);
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "n",
			 (json_int_t)s->n, "per_s", (double)s->n / secs,
			 "p50_ms", pct(s, 50), "p99_ms", pct(s, 99), "mean_ms",
			 sum / (double)s->n * 1000.0, "max_ms",
			 s->v[s->n - 1] * 1000.0);
}

/* ---- join / get load ---------------------------------------------------- */

struct session {
	char cls;
	char uid[64];
	char cookie[1024];
	struct curl_slist *headers; /* Content-Type [+ X-Forwarded-For] */
};

struct meeting {
	char link[96];
	char *body_right, *body_wrong;
	struct curl_slist *authz_header; /* X-Roomgate-Meeting (authz) */
};

static struct {
	const char *base, *url;
	struct session *members, *nonmembers;
	size_t nmembers, nnonmembers;
	struct meeting *meetings;
	size_t nmeetings;
	double wrong_share, nonmember_share;
	double t_start, t_count, t_end;
	uint64_t seed;
	enum { M_JOIN, M_GET, M_AUTHZ, M_BASIC } mode;
	size_t nusers; /* authz, basic: the first nusers rotate */
	char **uids;   /* basic */
	char password[256];
} L;

struct worker {
	pthread_t th;
	int idx;
	struct samples cls[NCLASS];
	uint64_t unexpected[NCLASS];
	uint64_t failed; /* transport errors */
	long last_bad_status;
	uint8_t rnd[RAND_BLOCK];
	size_t rnd_pos;
	uint64_t rnd_block;
};

/* A deterministic stream of uniform 32-bit numbers per worker. */
static uint32_t
w_rand(struct worker *w)
{
	uint32_t x;

	if (w->rnd_pos + 4 > sizeof(w->rnd)) {
		uint8_t seed[randombytes_SEEDBYTES] = {0};
		uint64_t parts[3] = {L.seed, (uint64_t)w->idx, w->rnd_block++};

		memcpy(seed, parts, sizeof(parts));
		randombytes_buf_deterministic(w->rnd, sizeof(w->rnd), seed);
		w->rnd_pos = 0;
	}
	memcpy(&x, w->rnd + w->rnd_pos, 4);
	w->rnd_pos += 4;
	return x;
}

static double
w_unit(struct worker *w)
{
	return (double)w_rand(w) / 4294967296.0;
}

static void *
load_worker(void *arg)
{
	struct worker *w = arg;
	CURL *h = curl_easy_init();
	char url[512];

	if (h == NULL)
		die("curl_easy_init failed");
	w->rnd_pos = sizeof(w->rnd);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	if (L.mode == M_GET || L.mode == M_BASIC)
		curl_easy_setopt(h, CURLOPT_URL, L.url);
	if (L.mode == M_BASIC) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_PASSWORD, L.password);
	}
	if (L.mode == M_AUTHZ) {
		snprintf(url, sizeof(url), "%s/v1/authz", L.base);
		curl_easy_setopt(h, CURLOPT_URL, url);
	}
	for (;;) {
		double t0 = now_s(), t1;
		long st = -1;
		int c = C_GET;

		if (t0 >= L.t_end)
			break;
		if (L.mode == M_BASIC) {
			curl_easy_setopt(h, CURLOPT_USERNAME,
					 L.uids[w_rand(w) % L.nusers]);
			t0 = now_s();
		} else if (L.mode == M_AUTHZ) {
			size_t k = w_rand(w) % L.nusers;

			c = C_AUTHZ;
			curl_easy_setopt(h, CURLOPT_COOKIE, L.members[k].cookie);
			curl_easy_setopt(h, CURLOPT_HTTPHEADER,
					 L.meetings[k % L.nmeetings].authz_header);
			t0 = now_s();
		} else if (L.mode == M_JOIN) {
			int non = L.nnonmembers > 0 &&
				  w_unit(w) < L.nonmember_share;
			int wrong = w_unit(w) < L.wrong_share;
			const struct session *s =
				non ? &L.nonmembers[w_rand(w) % L.nnonmembers]
				    : &L.members[w_rand(w) % L.nmembers];
			const struct meeting *m =
				&L.meetings[w_rand(w) % L.nmeetings];

			c = non ? (wrong ? C_NW : C_NR)
				: (wrong ? C_MW : C_MR);
			snprintf(url, sizeof(url), "%s/v1/join/%s", L.base,
				 m->link);
			curl_easy_setopt(h, CURLOPT_URL, url);
			curl_easy_setopt(h, CURLOPT_COOKIE, s->cookie);
			curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->headers);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS,
					 wrong ? m->body_wrong : m->body_right);
			t0 = now_s();
		}
		if (curl_easy_perform(h) == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
		t1 = now_s();
		if (t0 < L.t_count)
			continue; /* warm-up */
		if (t1 > L.t_end)
			break; /* only requests that ended inside the window */
		if (st < 0) {
			w->failed++;
			continue;
		}
		if (class_expect[c] == 0 ? st != 401 && st != 403
					 : st != class_expect[c]) {
			w->unexpected[c]++;
			w->last_bad_status = st;
		}
		samples_add(&w->cls[c], t1 - t0);
	}
	curl_easy_cleanup(h);
	return NULL;
}

static void
load_sessions(const char *path)
{
	char line[MAX_LINE];
	FILE *f = fopen(path, "r");
	size_t capm = 0, capn = 0;
	const char *x = getenv("LOADGEN_XFF");
	const char *net = getenv("LOADGEN_XFF_NET");
	int xff = x != NULL && strcmp(x, "1") == 0;
	long xnet = net != NULL ? num_arg(net, 0, 255, "LOADGEN_XFF_NET") : 0;

	if (f == NULL)
		die("cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		char *sp1 = strchr(line, ' '), *sp2, *nl;
		struct session *s;

		if (sp1 == NULL || (sp2 = strchr(sp1 + 1, ' ')) == NULL)
			die("bad session line in %s", path);
		if ((nl = strchr(sp2, '\n')) != NULL)
			*nl = '\0';
		if (line[0] == 'm') {
			if (L.nmembers == capm) {
				capm = capm ? capm * 2 : 256;
				L.members = realloc(L.members,
						    capm * sizeof(*L.members));
			}
			s = &L.members[L.nmembers++];
		} else {
			if (L.nnonmembers == capn) {
				capn = capn ? capn * 2 : 64;
				L.nonmembers = realloc(
					L.nonmembers,
					capn * sizeof(*L.nonmembers));
			}
			s = &L.nonmembers[L.nnonmembers++];
		}
		if (s == NULL)
			die("out of memory");
		s->cls = line[0];
		*sp2 = '\0';
		snprintf(s->uid, sizeof(s->uid), "%s", sp1 + 1);
		snprintf(s->cookie, sizeof(s->cookie), "%s", sp2 + 1);
		s->headers = curl_slist_append(NULL,
					       "Content-Type: application/json");
		if (xff) {
			size_t k = line[0] == 'm' ? L.nmembers : L.nnonmembers;
			char h[64];

			snprintf(h, sizeof(h), "X-Forwarded-For: 10.%ld.%zu.%zu",
				 xnet > 0 ? xnet : line[0] == 'm' ? 1 : 2,
				 (k / 256) % 256, k % 256);
			s->headers = curl_slist_append(s->headers, h);
		}
		if (s->headers == NULL)
			die("out of memory");
	}
	fclose(f);
	if (L.nmembers == 0)
		die("%s holds no member sessions", path);
}

static char *
code_body(const char *code)
{
	json_t *o = json_pack("{s:s}", "code", code);
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	if (s == NULL)
		die("out of memory");
	return s;
}

static void
load_meetings(const char *path)
{
	char line[MAX_LINE];
	FILE *f = fopen(path, "r");
	size_t cap = 0;

	if (f == NULL)
		die("cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		struct meeting *m;
		char *w[2], *code;

		if (split_words(line, w, 2) != 2 || strlen(w[0]) >= 96 ||
		    strlen(w[1]) >= 32)
			die("bad meeting line in %s (want: link code)", path);
		code = w[1];
		if (L.nmeetings == cap) {
			cap = cap ? cap * 2 : 16;
			L.meetings = realloc(L.meetings, cap * sizeof(*L.meetings));
			if (L.meetings == NULL)
				die("out of memory");
		}
		m = &L.meetings[L.nmeetings++];
		memset(m, 0, sizeof(*m));
		snprintf(m->link, sizeof(m->link), "%s", w[0]);
		m->body_right = code_body(code);
		/* Same length, first digit changed: a wrong code, never a
		 * malformed one. */
		code[0] = code[0] == '9' ? '0' : (char)(code[0] + 1);
		m->body_wrong = code_body(code);
		sodium_memzero(code, strlen(code));
	}
	fclose(f);
	if (L.nmeetings == 0)
		die("%s holds no meetings", path);
}

static int
run_load(int clients, double seconds, double warmup, const char *label,
	 const char *kind, const char *out_path)
{
	struct worker *w = calloc((size_t)clients, sizeof(*w));
	struct samples all[NCLASS];
	uint64_t unexpected[NCLASS] = {0}, failed = 0, total = 0, bad = 0;
	long last_bad = 0;
	json_t *res, *cls;

	if (w == NULL)
		die("out of memory");
	memset(all, 0, sizeof(all));
	L.t_start = now_s();
	L.t_count = L.t_start + warmup;
	L.t_end = L.t_count + seconds;
	for (int i = 0; i < clients; i++) {
		w[i].idx = i;
		if (pthread_create(&w[i].th, NULL, load_worker, &w[i]) != 0)
			die("cannot start thread %d", i);
	}
	for (int i = 0; i < clients; i++)
		pthread_join(w[i].th, NULL);
	for (int i = 0; i < clients; i++) {
		for (int c = 0; c < NCLASS; c++) {
			for (size_t k = 0; k < w[i].cls[c].n; k++)
				samples_add(&all[c], w[i].cls[c].v[k]);
			unexpected[c] += w[i].unexpected[c];
			free(w[i].cls[c].v);
		}
		failed += w[i].failed;
		if (w[i].last_bad_status)
			last_bad = w[i].last_bad_status;
	}
	free(w);
	res = json_pack("{s:s, s:s, s:i, s:f}", "kind", kind, "label", label,
			"clients", clients, "seconds", seconds);
	if (L.nusers > 0)
		json_object_set_new(res, "users",
				    json_integer((json_int_t)L.nusers));
	cls = json_object();
	{
		struct samples every = {0};

		for (int c = 0; c < NCLASS; c++) {
			if (all[c].n == 0)
				continue;
			for (size_t k = 0; k < all[c].n; k++)
				samples_add(&every, all[c].v[k]);
			total += all[c].n;
			bad += unexpected[c];
			json_object_set_new(cls, class_name[c],
					    samples_json(&all[c], seconds));
			json_object_set_new(json_object_get(cls, class_name[c]),
					    "unexpected",
					    json_integer((json_int_t)unexpected[c]));
			free(all[c].v);
		}
		json_object_set_new(res, "all", samples_json(&every, seconds));
		free(every.v);
	}
	json_object_set_new(res, "classes", cls);
	json_object_set_new(res, "unexpected_answers",
			    json_integer((json_int_t)bad));
	json_object_set_new(res, "transport_errors",
			    json_integer((json_int_t)failed));
	if (bad > 0)
		json_object_set_new(res, "last_unexpected_status",
				    json_integer(last_bad));
	{
		/* The load generator's own CPU: it shares the machine. */
		struct rusage ru;

		if (getrusage(RUSAGE_SELF, &ru) == 0)
			json_object_set_new(
				res, "loadgen_cpu_s",
				json_real((double)ru.ru_utime.tv_sec +
					  (double)ru.ru_utime.tv_usec / 1e6 +
					  (double)ru.ru_stime.tv_sec +
					  (double)ru.ru_stime.tv_usec / 1e6));
	}
	if (json_dump_file(res, out_path, JSON_INDENT(2)) != 0)
		die("cannot write %s", out_path);
	fprintf(stderr,
		"loadgen: %s: %" PRIu64 " requests in %.0f s (%.0f/s), %" PRIu64
		" unexpected answers, %" PRIu64 " transport errors\n",
		label, total, seconds, (double)total / seconds, bad, failed);
	json_decref(res);
	return total > 0 && failed == 0 ? 0 : 1;
}

static int
cmd_join(int argc, char **argv)
{
	if (argc != 13 && argc != 14)
		die("usage: loadgen join BASE SESSIONS MEETINGS CLIENTS SECONDS "
		    "WARMUP SEED WRONG_SHARE NONMEMBER_SHARE LABEL OUT_JSON "
		    "[KIND]");
	L.base = argv[2];
	load_sessions(argv[3]);
	load_meetings(argv[4]);
	L.seed = (uint64_t)num_arg(argv[8], 0, 0x7fffffff, "SEED");
	L.wrong_share = share_arg(argv[9], "WRONG_SHARE");
	L.nonmember_share = share_arg(argv[10], "NONMEMBER_SHARE");
	return run_load((int)num_arg(argv[5], 1, 1024, "CLIENTS"),
			(double)num_arg(argv[6], 1, 3600, "SECONDS"),
			(double)num_arg(argv[7], 0, 600, "WARMUP"), argv[11],
			argc == 14 ? argv[13] : "admission", argv[12]);
}

static int
cmd_get(int argc, char **argv)
{
	if (argc != 8)
		die("usage: loadgen get URL CLIENTS SECONDS WARMUP LABEL OUT_JSON");
	L.url = argv[2];
	L.mode = M_GET;
	return run_load((int)num_arg(argv[3], 1, 1024, "CLIENTS"),
			(double)num_arg(argv[4], 1, 3600, "SECONDS"),
			(double)num_arg(argv[5], 0, 600, "WARMUP"), argv[6],
			"http", argv[7]);
}

/* ---- admit / authz / basic ------------------------------------------------ */

static struct {
	size_t next, ok;
	pthread_mutex_t mu;
} A = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *
admit_worker(void *arg)
{
	CURL *h = curl_easy_init();
	char url[512];

	(void)arg;
	if (h == NULL)
		die("curl_easy_init failed");
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	for (;;) {
		const struct session *s;
		const struct meeting *m;
		size_t k;
		long st = -1;

		pthread_mutex_lock(&A.mu);
		k = A.next++;
		pthread_mutex_unlock(&A.mu);
		if (k >= L.nmembers)
			break;
		s = &L.members[k];
		m = &L.meetings[k % L.nmeetings];
		snprintf(url, sizeof(url), "%s/v1/join/%s", L.base, m->link);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_COOKIE, s->cookie);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->headers);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, m->body_right);
		if (curl_easy_perform(h) == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
		if (st != 200) {
			fprintf(stderr, "loadgen: admit %s: answered %ld\n",
				s->uid, st);
			continue;
		}
		pthread_mutex_lock(&A.mu);
		A.ok++;
		pthread_mutex_unlock(&A.mu);
	}
	curl_easy_cleanup(h);
	return NULL;
}

static int
cmd_admit(int argc, char **argv)
{
	pthread_t th[64];
	int n;
	double t0 = now_s();

	if (argc != 6)
		die("usage: loadgen admit BASE SESSIONS MEETINGS CLIENTS");
	L.base = argv[2];
	load_sessions(argv[3]);
	load_meetings(argv[4]);
	n = (int)num_arg(argv[5], 1, 64, "CLIENTS");
	for (int i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, admit_worker, NULL) != 0)
			die("cannot start thread %d", i);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "loadgen: %zu of %zu member sessions admitted in %.1f s\n",
		A.ok, L.nmembers, now_s() - t0);
	return A.ok == L.nmembers ? 0 : 1;
}

static int
cmd_authz(int argc, char **argv)
{
	if (argc != 12)
		die("usage: loadgen authz BASE SESSIONS MEETINGS USERS CLIENTS "
		    "SECONDS WARMUP SEED LABEL OUT_JSON");
	L.base = argv[2];
	load_sessions(argv[3]);
	load_meetings(argv[4]);
	L.nusers = (size_t)num_arg(argv[5], 1, 1000000, "USERS");
	if (L.nusers > L.nmembers)
		die("USERS is %zu but %s holds %zu member sessions", L.nusers,
		    argv[3], L.nmembers);
	for (size_t i = 0; i < L.nmeetings; i++) {
		char h[160];

		snprintf(h, sizeof(h), "X-Roomgate-Meeting: %s",
			 L.meetings[i].link);
		L.meetings[i].authz_header = curl_slist_append(NULL, h);
		if (L.meetings[i].authz_header == NULL)
			die("out of memory");
	}
	L.mode = M_AUTHZ;
	L.seed = (uint64_t)num_arg(argv[9], 0, 0x7fffffff, "SEED");
	return run_load((int)num_arg(argv[6], 1, 1024, "CLIENTS"),
			(double)num_arg(argv[7], 1, 3600, "SECONDS"),
			(double)num_arg(argv[8], 0, 600, "WARMUP"), argv[10],
			"authz", argv[11]);
}

static int
cmd_basic(int argc, char **argv)
{
	char line[MAX_LINE];
	FILE *f;
	size_t cap = 0, n = 0;

	if (argc != 13)
		die("usage: loadgen basic URL USERS_FILE PASSWORD_FILE USERS "
		    "EXPECT CLIENTS SECONDS WARMUP SEED LABEL OUT_JSON");
	L.url = argv[2];
	f = fopen(argv[3], "r");
	if (f == NULL)
		die("cannot read %s: %s", argv[3], strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		char *w[1];

		if (split_words(line, w, 1) != 1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			L.uids = realloc(L.uids, cap * sizeof(*L.uids));
			if (L.uids == NULL)
				die("out of memory");
		}
		if ((L.uids[n++] = strdup(w[0])) == NULL)
			die("out of memory");
	}
	fclose(f);
	read_secret(argv[4], L.password, sizeof(L.password));
	L.nusers = (size_t)num_arg(argv[5], 1, 1000000, "USERS");
	if (L.nusers > n)
		die("USERS is %zu but %s holds %zu", L.nusers, argv[3], n);
	class_expect[C_GET] = num_arg(argv[6], 0, 599, "EXPECT");
	L.mode = M_BASIC;
	L.seed = (uint64_t)num_arg(argv[10], 0, 0x7fffffff, "SEED");
	return run_load((int)num_arg(argv[7], 1, 1024, "CLIENTS"),
			(double)num_arg(argv[8], 1, 3600, "SECONDS"),
			(double)num_arg(argv[9], 0, 600, "WARMUP"), argv[11],
			"peer", argv[12]);
}

/* ---- note / report ------------------------------------------------------ */

static int
cmd_note(int argc, char **argv)
{
	json_t *o;

	if (argc < 4)
		die("usage: loadgen note OUT_JSON KIND key=value...");
	o = json_pack("{s:s}", "kind", argv[3]);
	for (int i = 4; i < argc; i++) {
		char *eq = strchr(argv[i], '='), *end;
		double d;

		if (eq == NULL)
			die("note: '%s' is not key=value", argv[i]);
		*eq = '\0';
		errno = 0;
		d = strtod(eq + 1, &end);
		if (eq[1] != '\0' && *end == '\0' && errno == 0 && isfinite(d))
			json_object_set_new(o, argv[i], json_real(d));
		else
			json_object_set_new(o, argv[i], json_string(eq + 1));
	}
	if (json_dump_file(o, argv[2], JSON_INDENT(2)) != 0)
		die("cannot write %s", argv[2]);
	json_decref(o);
	return 0;
}

static double
jnum(json_t *o, const char *path)
{
	char buf[256], *tok, *dot;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = buf; tok != NULL && o != NULL; tok = dot) {
		dot = strchr(tok, '.');
		if (dot != NULL)
			*dot++ = '\0';
		o = json_object_get(o, tok);
	}
	return json_is_number(o) ? json_number_value(o) : NAN;
}

/* A string member, or a number member printed as one (in one of 16
 * static buffers used in turn, so one printf may hold several). */
static const char *
jstr(json_t *o, const char *key)
{
	static char num[16][64];
	static unsigned next;
	json_t *v = json_object_get(o, key);

	if (json_is_number(v)) {
		char *b = num[next++ % 16];

		snprintf(b, sizeof(num[0]), "%.15g", json_number_value(v));
		return b;
	}
	return json_is_string(v) ? json_string_value(v) : "";
}

/* The fragment of kind (any: NULL), label (any: NULL) and clients (any:
 * 0). */
static json_t *
find(json_t *results, const char *kind, const char *label, int clients)
{
	size_t i;
	json_t *r;

	json_array_foreach(results, i, r) {
		if (kind != NULL && strcmp(jstr(r, "kind"), kind) != 0)
			continue;
		if (label != NULL && strcmp(jstr(r, "label"), label) != 0)
			continue;
		if (clients > 0 && (int)jnum(r, "clients") != clients)
			continue;
		return r;
	}
	return NULL;
}

static void
ratio(json_t *into, const char *key, double num, double den)
{
	if (isfinite(num) && isfinite(den) && den > 0)
		json_object_set_new(into, key, json_real(num / den));
}

/* all.per_s of the result labelled "<what>, <users> people", NAN when
 * absent. */
static double
rate_of(json_t *results, const char *what, long users)
{
	char label[128];
	json_t *r;

	snprintf(label, sizeof(label), "%s, %ld people", what, users);
	r = find(results, NULL, label, 0);
	return r ? jnum(r, "all.per_s") : NAN;
}

static json_t *
find_kind_label(json_t *results, const char *kind, const char *label)
{
	return find(results, kind, label, 0);
}

/* One line of issue 9's targets: met / MISSED / not measured, also kept
 * in the JSON. */
static void
target(json_t *targets, const char *what, int measured, int met,
       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void
target(json_t *targets, const char *what, int measured, int met,
       const char *fmt, ...)
{
	char fig[512];
	va_list ap;
	const char *verdict = !measured ? "not measured" : met ? "met"
							       : "MISSED";

	va_start(ap, fmt);
	vsnprintf(fig, sizeof(fig), fmt, ap);
	va_end(ap);
	printf("  %-12s %s: %s\n", verdict, what, fig);
	json_array_append_new(targets,
			      json_pack("{s:s, s:s, s:s}", "target", what,
					"verdict", verdict, "figures", fig));
}

static void
print_dist(const char *name, json_t *d)
{
	printf("    %-34s p50 %8.1f  p99 %8.1f  max %8.1f ms  (n=%.0f, "
	       "timeouts %.0f)\n",
	       name, jnum(d, "p50_ms"), jnum(d, "p99_ms"), jnum(d, "max_ms"),
	       jnum(d, "n"), jnum(d, "timeouts"));
}

/* The sections after the ceilings and admissions: forward-auth against
 * the peer, the revocation distributions, the attack, the peer's stale
 * admissions, and issue 9's targets line by line. */
static void
report_more(json_t *results, json_t *ratios)
{
	json_t *targets = json_array(), *r, *q, *l, *f, *au, *rss, *adm;
	long users[8];
	struct {
		double live, cache, pc, pn;
	} fa[8];
	char b[160];
	size_t i;
	int have_peer = 0, have_cache = 0, nu = 0;

	/* The people counts of the forward-auth runs, in run order. */
	json_array_foreach(results, i, r) {
		long u = (long)jnum(r, "users");
		int dup = 0;

		if (strcmp(jstr(r, "kind"), "authz") != 0 || nu == 8)
			continue;
		for (int k = 0; k < nu; k++)
			dup |= users[k] == u;
		if (dup)
			continue;
		/* The rates of roomgate and the peer with u people. */
		users[nu] = u;
		fa[nu].live = rate_of(results, "forward-auth live", u);
		fa[nu].cache = rate_of(results, "forward-auth cache", u);
		fa[nu].pc = rate_of(results, "peer: Apache, cache default", u);
		fa[nu].pn = rate_of(results, "peer: Apache, cache off", u);
		nu++;
	}
	json_array_foreach(results, i, r) {
		if (strcmp(jstr(r, "kind"), "peer") == 0)
			have_peer = 1;
		if (strcmp(jstr(r, "kind"), "authz") == 0 &&
		    strstr(jstr(r, "label"), "cache") != NULL)
			have_cache = 1;
	}
	printf("\nforward-auth /v1/authz vs the peer (requests/s; same "
	       "people, same clients):\n");
	for (int k = 0; k < nu; k++) {
		double live = fa[k].live, cache = fa[k].cache, pc = fa[k].pc,
		       pn = fa[k].pn;
		if (isnan(live) && isnan(cache))
			continue;
		printf("  %4ld people: live %.0f (%.2f x Apache uncached %.0f), "
		       "cache %.0f (%.2f x Apache cached %.0f)\n",
		       users[k], live, live / pn, pn, cache, cache / pc, pc);
		snprintf(b, sizeof(b), "authz_%ld_people", users[k]);
		q = json_object();
		ratio(q, "live_vs_apache_uncached", live, pn);
		ratio(q, "cache_vs_apache_cached", cache, pc);
		ratio(q, "live_vs_apache_cached", live, pc);
		json_object_set_new(ratios, b, q);
	}
	r = find(results, "authz_cache", NULL, 0);
	if (r != NULL)
		printf("  cache mode: %.0f decisions from the cache, %.0f "
		       "asked live (/metrics)\n",
		       jnum(r, "decisions_from_cache"),
		       jnum(r, "decisions_live"));
	printf("\nrevocation (from the LDAP modify returning):\n");
	json_array_foreach(results, i, r) {
		if (strcmp(jstr(r, "kind"), "revocation") != 0)
			continue;
		printf("  %s: %.0f removals, %.0f stale admissions, %.0f "
		       "/v1/authz 200s after a removal, %.0f webhooks "
		       "(%.0f bad signatures)\n",
		       jstr(r, "label"), jnum(r, "removals"),
		       jnum(r, "stale_admissions"),
		       jnum(r, "authz_allowed_after_removal"),
		       jnum(r, "webhook_events"),
		       jnum(r, "webhook_bad_signatures"));
		print_dist("(a) next join refused (403)",
			   json_object_get(r, "join_refused"));
		print_dist("(b) /v1/authz 403", json_object_get(r, "authz_403"));
		print_dist("(c) admission.revoked webhook",
			   json_object_get(r, "webhook"));
	}
	q = find_kind_label(results, "attack_quiet", NULL);
	l = find_kind_label(results, "attack_legit", NULL);
	f = find_kind_label(results, "attack_flood", NULL);
	au = find_kind_label(results, "attack_audit", NULL);
	if (q != NULL && l != NULL && f != NULL) {
		printf("\nunder attack: legitimate p99 %.2f ms quiet, %.2f ms "
		       "beside the flood (%.2f x); legitimate %.0f/s -> "
		       "%.0f/s; flood %.0f wrong codes/s from %s people and "
		       "addresses (%.0f unexpected answers); wrong-code "
		       "admissions: %s in the audit trail (%s for flood "
		       "identities)\n",
		       jnum(q, "all.p99_ms"), jnum(l, "all.p99_ms"),
		       jnum(l, "all.p99_ms") / jnum(q, "all.p99_ms"),
		       jnum(q, "all.per_s"), jnum(l, "all.per_s"),
		       jnum(f, "all.per_s"), jstr(au, "flood_identities"),
		       jnum(f, "unexpected_answers"),
		       jstr(au, "wrong_code_admissions_run"),
		       jstr(au, "flood_identity_admissions"));
		ratio(ratios, "attack_p99_vs_quiet", jnum(l, "all.p99_ms"),
		      jnum(q, "all.p99_ms"));
	}
	r = find(results, "peer", "peer: Apache denials, cache default", 0);
	if (r != NULL)
		printf("peer denials (non-members, cache default): %.0f "
		       "completed in %.0f s by %.0f clients (%.1f/s, p50 %.0f "
		       "ms, max %.0f ms)\n",
		       jnum(r, "all.n"), jnum(r, "seconds"), jnum(r, "clients"),
		       jnum(r, "all.n") / jnum(r, "seconds"),
		       jnum(r, "all.p50_ms"), jnum(r, "all.max_ms"));
	json_array_foreach(results, i, r) {
		if (strcmp(jstr(r, "kind"), "peer_stale") != 0)
			continue;
		if (json_is_true(json_object_get(r, "still_admitting")))
			printf("%s: still let in after >= %.0f s (%.0f "
			       "requests admitted after the removal)\n",
			       jstr(r, "label"), jnum(r, "bound_s"),
			       jnum(r, "admitted_after_removal"));
		else
			printf("%s: %.0f requests let in, the last %.3f s "
			       "after the removal; refused (%.0f) %.3f s "
			       "after it\n",
			       jstr(r, "label"), jnum(r, "admitted_after_removal"),
			       jnum(r, "last_admitted_s"),
			       jnum(r, "refused_with"), jnum(r, "seconds"));
	}

	printf("\nissue 9 targets (this run):\n");
	adm = find(results, "admission", NULL, 64);
	target(targets, "admissions >= 3,000/s, p99 <= 50 ms at 64 clients",
	       adm != NULL,
	       adm && jnum(adm, "all.per_s") >= 3000 &&
		       jnum(adm, "all.p99_ms") <= 50,
	       "%.0f/s, p99 %.1f ms", adm ? jnum(adm, "all.per_s") : NAN,
	       adm ? jnum(adm, "all.p99_ms") : NAN);
	{
		/* Denials' median against admissions' median in the
		 * timing run (no queueing); 10% for noise. */
		json_t *t = find(results, "timing", NULL, 0);
		double ok = t ? jnum(t, "classes.member_right_code.p50_ms")
			      : NAN;
		double worst = NAN;
		const char *deny[3] = {"classes.member_wrong_code.p50_ms",
				       "classes.nonmember_right_code.p50_ms",
				       "classes.nonmember_wrong_code.p50_ms"};

		for (int k = 0; t && k < 3; k++) {
			double v = jnum(t, deny[k]);

			if (isnan(worst) || v > worst)
				worst = v;
		}
		target(targets, "denials cost no more than admissions",
		       t != NULL, worst <= ok * 1.10,
		       "slowest denial class median %.2f ms vs admission "
		       "%.2f ms (timing run; 10%% allowed for noise)",
		       worst, ok);
	}
	for (int k = 0; k < nu; k++) {
		double live = fa[k].live, cache = fa[k].cache, pc = fa[k].pc,
		       pn = fa[k].pn;
		snprintf(b, sizeof(b),
			 "forward-auth live >= 2 x Apache uncached (%ld people)",
			 users[k]);
		target(targets, b, !isnan(live) && have_peer, live >= 2 * pn,
		       "%.0f/s vs %.0f/s = %.2f x", live, pn, live / pn);
		/* Issue 9: at least Apache's rate with 500 people, 5 x
		 * with 5,000 (where Apache's cache thrashes). */
		int five = users[k] >= 5000;

		snprintf(b, sizeof(b), "forward-auth cache %s Apache cached "
			 "(%ld people)", five ? ">= 5 x" : ">=", users[k]);
		target(targets, b, have_cache && have_peer,
		       cache >= (five ? 5.0 : 1.0) * pc,
		       "%.0f/s vs %.0f/s = %.2f x", cache, pc, cache / pc);
	}
	json_array_foreach(results, i, r) {
		json_t *d;
		int cache;

		if (strcmp(jstr(r, "kind"), "revocation") != 0)
			continue;
		cache = strstr(jstr(r, "label"), "cache") != NULL;
		snprintf(b, sizeof(b), "%s: 0 stale admissions", jstr(r, "label"));
		target(targets, b, 1,
		       jnum(r, "stale_admissions") == 0 &&
			       jnum(json_object_get(r, "join_refused"),
				    "timeouts") == 0,
		       "%.0f stale, %.0f not refused in time",
		       jnum(r, "stale_admissions"),
		       jnum(json_object_get(r, "join_refused"), "timeouts"));
		d = json_object_get(r, "authz_403");
		if (cache) {
			snprintf(b, sizeof(b), "%s: authz 403 p99 <= 100 ms",
				 jstr(r, "label"));
			target(targets, b, 1,
			       jnum(d, "p99_ms") <= 100 &&
				       jnum(d, "timeouts") == 0,
			       "p99 %.1f ms, max %.1f ms", jnum(d, "p99_ms"),
			       jnum(d, "max_ms"));
		} else {
			snprintf(b, sizeof(b),
				 "%s: authz never 200 after the removal",
				 jstr(r, "label"));
			target(targets, b, 1,
			       jnum(r, "authz_allowed_after_removal") == 0 &&
				       jnum(d, "timeouts") == 0,
			       "%.0f answers 200, 403 p99 %.1f ms",
			       jnum(r, "authz_allowed_after_removal"),
			       jnum(d, "p99_ms"));
		}
		d = json_object_get(r, "webhook");
		snprintf(b, sizeof(b), "%s: webhook p99 <= 500 ms",
			 jstr(r, "label"));
		target(targets, b, 1,
		       jnum(d, "p99_ms") <= 500 && jnum(d, "timeouts") == 0,
		       "p99 %.1f ms, max %.1f ms, %.0f missing",
		       jnum(d, "p99_ms"), jnum(d, "max_ms"),
		       jnum(d, "timeouts"));
	}
	if (!have_cache)
		target(targets, "revocation, authz cache mode", 0, 0,
		       "cache not built");
	target(targets, "legitimate p99 under a wrong-code flood <= 2 x quiet",
	       q && l, q && l && jnum(l, "all.p99_ms") <= 2 * jnum(q, "all.p99_ms"),
	       "%.2f ms vs %.2f ms = %.2f x", l ? jnum(l, "all.p99_ms") : NAN,
	       q ? jnum(q, "all.p99_ms") : NAN,
	       q && l ? jnum(l, "all.p99_ms") / jnum(q, "all.p99_ms") : NAN);
	target(targets, "zero wrong-code admissions", au != NULL,
	       au && jnum(au, "wrong_code_admissions_run") == 0 &&
		       jnum(au, "flood_identity_admissions") == 0,
	       "%s in the run's audit trail, %s for flood identities",
	       au ? jstr(au, "wrong_code_admissions_run") : "?",
	       au ? jstr(au, "flood_identity_admissions") : "?");
	rss = find(results, "rss", NULL, 0);
	target(targets, "peak RSS <= 64 MB", rss != NULL,
	       rss && jnum(rss, "peak_rss_kb") <= 64 * 1024,
	       "%.1f MB", rss ? jnum(rss, "peak_rss_kb") / 1024.0 : NAN);
	json_object_set_new(ratios, "targets", targets);
}

static int
cmd_report(int argc, char **argv)
{
	json_t *doc, *results = json_array(), *meta = NULL, *ratios, *r;
	size_t i;

	if (argc < 3)
		die("usage: loadgen report OUT_JSON FRAGMENT...");
	for (int k = 3; k < argc; k++) {
		json_error_t err;
		json_t *f = json_load_file(argv[k], 0, &err);

		if (f == NULL)
			die("%s: %s", argv[k], err.text);
		if (strcmp(jstr(f, "kind"), "meta") == 0)
			meta = f;
		else
			json_array_append_new(results, f);
	}
	doc = json_pack("{s:o, s:o}", "meta", meta ? meta : json_object(),
			"results", results);
	ratios = json_object();
	printf("\nroomgate bench (%s, ", jstr(meta, "date"));
	printf("commit %s, ", jstr(meta, "commit"));
	printf("seed %s)\n", jstr(meta, "seed"));
	printf("machine: %s\n", jstr(meta, "machine"));
	printf("directory: %s people; meetings allow %s (%s meetings); ",
	       jstr(meta, "directory_people"), jstr(meta, "meeting_group"),
	       jstr(meta, "meetings"));
	printf("signed in through the IdP: %s members + ",
	       jstr(meta, "signed_in_members"));
	printf("%s non-members (in %s s)\n", jstr(meta, "signed_in_nonmembers"),
	       jstr(meta, "signin_seconds"));
	printf("source addresses: %s (%s seen in the audit); lockout: %s\n",
	       jstr(meta, "sources"), jstr(meta, "source_addresses_seen"),
	       jstr(meta, "lockout"));
	printf("roomgate: %s server threads, database pool %s, LDAP pool %s\n",
	       jstr(meta, "roomgate_threads"), jstr(meta, "db_pool"),
	       jstr(meta, "ldap_pool"));
	printf("run: %s s measured per admission run, %s s per ceiling, ",
	       jstr(meta, "seconds"), jstr(meta, "ceiling_seconds"));
	printf("%s s warm-up each; whole bench %s s\n\n", jstr(meta, "warmup"),
	       jstr(meta, "wall_seconds"));
	printf("%-44s %8s %12s %9s %9s\n", "what", "clients", "per second",
	       "p50 ms", "p99 ms");
	json_array_foreach(results, i, r) {
		const char *kind = jstr(r, "kind");
		char what[64];

		if (strcmp(kind, "todo") == 0 || strcmp(kind, "rss") == 0 ||
		    strcmp(kind, "directory") == 0 ||
		    strcmp(kind, "profile") == 0 ||
		    strcmp(kind, "statements") == 0 ||
		    strcmp(kind, "revocation") == 0 ||
		    strcmp(kind, "peer_stale") == 0 ||
		    strcmp(kind, "attack_audit") == 0 ||
		    strcmp(kind, "authz_cache") == 0)
			continue;
		snprintf(what, sizeof(what), "%s", jstr(r, "label"));
		printf("%-44s %8.0f %12.0f %9.2f %9.2f\n", what,
		       jnum(r, "clients"),
		       isfinite(jnum(r, "all.per_s")) ? jnum(r, "all.per_s")
						     : jnum(r, "per_s"),
		       isfinite(jnum(r, "all.p50_ms")) ? jnum(r, "all.p50_ms")
						      : jnum(r, "p50_ms"),
		       isfinite(jnum(r, "all.p99_ms")) ? jnum(r, "all.p99_ms")
						      : jnum(r, "p99_ms"));
	}
	printf("\nadmission latency per class (p50 / p99 ms, count):\n");
	json_array_foreach(results, i, r) {
		json_t *cls = json_object_get(r, "classes");
		const char *name;
		json_t *c;

		if (strcmp(jstr(r, "kind"), "admission") != 0 &&
		    strcmp(jstr(r, "kind"), "timing") != 0)
			continue;
		printf("  %s, %.0f clients\n", jstr(r, "label"),
		       jnum(r, "clients"));
		json_object_foreach(cls, name, c) {
			printf("    %-24s %8.2f / %8.2f  n=%.0f  unexpected=%.0f\n",
			       name, jnum(c, "p50_ms"), jnum(c, "p99_ms"),
			       jnum(c, "n"), jnum(c, "unexpected"));
		}
	}
	printf("\nadmissions as a share of the ceilings (same concurrency):\n");
	json_array_foreach(results, i, r) {
		int cl = (int)jnum(r, "clients");
		json_t *pg, *ld, *fl, *rr;
		double a;
		char key[32];

		if (strcmp(jstr(r, "kind"), "admission") != 0)
			continue;
		pg = find(results, "pgbench", NULL, cl);
		ld = find(results, "ldap", NULL, cl);
		fl = find(results, "http", NULL, cl);
		rr = json_object();
		a = jnum(r, "all.per_s");
		ratio(rr, "vs_pgbench_inserts", a, pg ? jnum(pg, "per_s") : NAN);
		ratio(rr, "vs_slapd_checks", a,
		      ld ? jnum(ld, "all.per_s") : NAN);
		ratio(rr, "vs_http_floor", a, fl ? jnum(fl, "all.per_s") : NAN);
		printf("  %2d clients: %.0f decisions/s = %.3f x pgbench "
		       "inserts, %.3f x slapd checks, %.3f x HTTP floor\n",
		       cl, a, jnum(rr, "vs_pgbench_inserts"),
		       jnum(rr, "vs_slapd_checks"), jnum(rr, "vs_http_floor"));
		snprintf(key, sizeof(key), "clients_%d", cl);
		json_object_set_new(ratios, key, rr);
	}
	r = find(results, "timing", NULL, 0);
	if (r != NULL) {
		printf("\nissue 6 timing figure (%s): median ms\n",
		       jstr(r, "label"));
		printf("  non-members: right code %.2f  vs  wrong code %.2f\n",
		       jnum(r, "classes.nonmember_right_code.p50_ms"),
		       jnum(r, "classes.nonmember_wrong_code.p50_ms"));
		printf("  members:     right code %.2f  vs  wrong code %.2f\n",
		       jnum(r, "classes.member_right_code.p50_ms"),
		       jnum(r, "classes.member_wrong_code.p50_ms"));
	}
	json_array_foreach(results, i, r) {
		if (strcmp(jstr(r, "kind"), "rss") == 0)
			printf("\nroomgate peak RSS (VmHWM): %.1f MB\n",
			       jnum(r, "peak_rss_kb") / 1024.0);
		if (strcmp(jstr(r, "kind"), "profile") == 0) {
			printf("CPU during the admission runs (cores): "
			       "roomgate %.2f, PostgreSQL %.2f, slapd %.2f, "
			       "load generator %.2f; machine busy %.0f%% "
			       "(everything running on it)\n",
			       jnum(r, "roomgate_cores"),
			       jnum(r, "postgres_cores"), jnum(r, "slapd_cores"),
			       jnum(r, "loadgen_cores"),
			       jnum(r, "machine_busy_pct"));
			printf("CPU per admission (ms, warm-ups included): "
			       "PostgreSQL %.3f, roomgate %.3f, slapd %.3f "
			       "(%s decisions)\n",
			       jnum(r, "postgres_cpu_ms_per_admission"),
			       jnum(r, "roomgate_cpu_ms_per_admission"),
			       jnum(r, "slapd_cpu_ms_per_admission"),
			       jstr(r, "admissions"));
			printf("PostgreSQL wait events of roomgate's "
			       "backends (samples, highest concurrency): %s\n",
			       jstr(r, "pg_waits"));
		}
		if (strcmp(jstr(r, "kind"), "statements") == 0) {
			size_t k;
			json_t *st;

			printf("PostgreSQL statements per %s: %.2f, "
			       "executing %.3f ms; by total time:\n",
			       jstr(r, "per"), jnum(r, "calls_per_request"),
			       jnum(r, "exec_ms_per_request"));
			json_array_foreach(json_object_get(r, "top"), k, st) {
				printf("  %5.1f%% %8.0f calls %7.3f ms  %s\n",
				       jnum(st, "pct"), jnum(st, "calls"),
				       jnum(st, "mean_ms"), jstr(st, "query"));
			}
		}
		if (strcmp(jstr(r, "kind"), "directory") == 0)
			printf("directory round trips per check (from /metrics "
			       "during the admission runs): %.2f\n",
			       jnum(r, "round_trips_per_check"));
	}
	report_more(results, ratios);
	printf("\n");
	json_array_foreach(results, i, r) {
		if (strcmp(jstr(r, "kind"), "todo") == 0)
			printf("%s: not measured: %s\n", jstr(r, "what"),
			       jstr(r, "why"));
	}
	json_object_set_new(doc, "ratios", ratios);
	if (json_dump_file(doc, argv[2], JSON_INDENT(2)) != 0)
		die("cannot write %s", argv[2]);
	printf("\nJSON: %s\n", argv[2]);
	json_decref(doc);
	return 0;
}

int
main(int argc, char **argv)
{
	int r;

	if (argc < 2)
		die("usage: loadgen signin|meetings|join|admit|authz|basic|get|"
		    "note|report ...");
	if (sodium_init() < 0)
		die("libsodium failed to initialise");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(argv[1], "signin") == 0)
		r = cmd_signin(argc, argv);
	else if (strcmp(argv[1], "meetings") == 0)
		r = cmd_meetings(argc, argv);
	else if (strcmp(argv[1], "join") == 0)
		r = cmd_join(argc, argv);
	else if (strcmp(argv[1], "get") == 0)
		r = cmd_get(argc, argv);
	else if (strcmp(argv[1], "admit") == 0)
		r = cmd_admit(argc, argv);
	else if (strcmp(argv[1], "authz") == 0)
		r = cmd_authz(argc, argv);
	else if (strcmp(argv[1], "basic") == 0)
		r = cmd_basic(argc, argv);
	else if (strcmp(argv[1], "note") == 0)
		r = cmd_note(argc, argv);
	else if (strcmp(argv[1], "report") == 0)
		r = cmd_report(argc, argv);
	else
		die("unknown command %s", argv[1]);
	curl_global_cleanup();
	return r;
}
