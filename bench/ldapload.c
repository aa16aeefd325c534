/*
 * bench/ldapload -- the directory ceiling for `make bench`: CLIENTS
 * threads, each with its own bound connection (like roomgate's pool),
 * issue the exact operation roomgate's dir_check_member sends per
 * admission with `membership = memberof` and `active = openldap`
 * (directory/check.c): one subtree search under the people base with the
 * user filter, size limit 2, asking for memberOf and pwdAccountLockedTime.
 * Each answer must hold exactly one entry; anything else is counted.
 *
 *   ldapload URI BIND_DN PASSWORD_FILE BASE UID_PREFIX NUSERS CLIENTS
 *            SECONDS WARMUP SEED LABEL OUT_JSON
 *
 * uids are UID_PREFIX + a 5-digit number in 1..NUSERS, drawn from
 * libsodium's randombytes_buf_deterministic seeded with SEED per thread.
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

#include <jansson.h>
#include <ldap.h>
#include <sodium.h>

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("ldapload: ", stderr);
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

static struct {
	const char *uri, *bind_dn, *base, *prefix;
	char password[256];
	long nusers;
	uint64_t seed;
	double t_count, t_end;
} G;

struct worker {
	pthread_t th;
	int idx;
	double *lat;
	size_t n, cap;
	uint64_t bad, errors;
	uint8_t rnd[4096];
	size_t rpos;
	uint64_t block;
};

static uint32_t
w_rand(struct worker *w)
{
	uint32_t x;

	if (w->rpos + 4 > sizeof(w->rnd)) {
		uint8_t seed[randombytes_SEEDBYTES] = {0};
		uint64_t parts[3] = {G.seed, (uint64_t)w->idx + 1000,
				     w->block++};

		memcpy(seed, parts, sizeof(parts));
		randombytes_buf_deterministic(w->rnd, sizeof(w->rnd), seed);
		w->rpos = 0;
	}
	memcpy(&x, w->rnd + w->rpos, 4);
	w->rpos += 4;
	return x;
}

static LDAP *
connect_bind(void)
{
	LDAP *ld = NULL;
	int v3 = LDAP_VERSION3, rc;
	struct berval cred;

	if (ldap_initialize(&ld, G.uri) != LDAP_SUCCESS)
		die("ldap_initialize(%s) failed", G.uri);
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	cred.bv_val = G.password;
	cred.bv_len = strlen(G.password);
	rc = ldap_sasl_bind_s(ld, G.bind_dn, LDAP_SASL_SIMPLE, &cred, NULL,
			      NULL, NULL);
	if (rc != LDAP_SUCCESS)
		die("bind as %s: %s", G.bind_dn, ldap_err2string(rc));
	return ld;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	LDAP *ld = connect_bind();
	char *attrs[] = {"memberOf", "pwdAccountLockedTime", NULL};
	struct timeval limit = {2, 0};

	w->rpos = sizeof(w->rnd);
	for (;;) {
		char uid[64], filter[256];
		struct berval in, esc = {0, NULL};
		LDAPMessage *res = NULL;
		double t0 = now_s(), t1;
		int rc;

		if (t0 >= G.t_end)
			break;
		snprintf(uid, sizeof(uid), "%s%05ld", G.prefix,
			 (long)(w_rand(w) % (uint32_t)G.nusers) + 1);
		/* RFC 4515 escaping, as roomgate does (the uids here need
		 * none, but the cost is part of the operation). */
		in.bv_val = uid;
		in.bv_len = strlen(uid);
		if (ldap_bv2escaped_filter_value(&in, &esc) != 0)
			die("out of memory");
		snprintf(filter, sizeof(filter),
			 "(&(objectClass=person)(uid=%s))", esc.bv_val);
		ber_memfree(esc.bv_val);
		rc = ldap_search_ext_s(ld, G.base, LDAP_SCOPE_SUBTREE, filter,
				       attrs, 0, NULL, NULL, &limit, 2, &res);
		t1 = now_s();
		if (t0 >= G.t_count && t1 <= G.t_end) {
			if (rc != LDAP_SUCCESS)
				w->errors++;
			else if (ldap_count_entries(ld, res) != 1)
				w->bad++;
			if (w->n == w->cap) {
				w->cap = w->cap ? w->cap * 2 : 8192;
				w->lat = realloc(w->lat,
						 w->cap * sizeof(*w->lat));
				if (w->lat == NULL)
					die("out of memory");
			}
			w->lat[w->n++] = t1 - t0;
		}
		ldap_msgfree(res);
		if (rc == LDAP_SERVER_DOWN)
			die("the directory went away: %s", ldap_err2string(rc));
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const double *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p / 100.0 * (double)n);

	if (n == 0)
		return NAN;
	return v[(k < 1 ? 1 : k) - 1] * 1000.0;
}

int
main(int argc, char **argv)
{
	struct worker *w;
	double *all = NULL, secs, warm;
	size_t n = 0;
	uint64_t bad = 0, errors = 0;
	int clients;
	FILE *f;
	json_t *o;

	if (argc != 13)
		die("usage: ldapload URI BIND_DN PASSWORD_FILE BASE UID_PREFIX "
		    "NUSERS CLIENTS SECONDS WARMUP SEED LABEL OUT_JSON");
	if (sodium_init() < 0)
		die("libsodium failed to initialise");
	G.uri = argv[1];
	G.bind_dn = argv[2];
	f = fopen(argv[3], "r");
	if (f == NULL)
		die("cannot read %s: %s", argv[3], strerror(errno));
	n = fread(G.password, 1, sizeof(G.password) - 1, f);
	fclose(f);
	while (n > 0 && (G.password[n - 1] == '\n' || G.password[n - 1] == '\r'))
		n--;
	G.password[n] = '\0';
	n = 0;
	G.base = argv[4];
	G.prefix = argv[5];
	G.nusers = num_arg(argv[6], 1, 99999, "NUSERS");
	clients = (int)num_arg(argv[7], 1, 1024, "CLIENTS");
	secs = (double)num_arg(argv[8], 1, 3600, "SECONDS");
	warm = (double)num_arg(argv[9], 0, 600, "WARMUP");
	G.seed = (uint64_t)num_arg(argv[10], 0, 0x7fffffff, "SEED");
	w = calloc((size_t)clients, sizeof(*w));
	if (w == NULL)
		die("out of memory");
	G.t_count = now_s() + warm;
	G.t_end = G.t_count + secs;
	for (int i = 0; i < clients; i++) {
		w[i].idx = i;
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
			die("cannot start thread %d", i);
	}
	for (int i = 0; i < clients; i++)
		pthread_join(w[i].th, NULL);
	sodium_memzero(G.password, sizeof(G.password));
	for (int i = 0; i < clients; i++) {
		all = realloc(all, (n + w[i].n + 1) * sizeof(*all));
		if (all == NULL)
			die("out of memory");
		memcpy(all + n, w[i].lat, w[i].n * sizeof(*all));
		n += w[i].n;
		bad += w[i].bad;
		errors += w[i].errors;
		free(w[i].lat);
	}
	free(w);
	qsort(all, n, sizeof(*all), cmp_double);
	o = json_pack("{s:s, s:s, s:i, s:f, s:{s:I, s:f, s:f, s:f}, s:I, s:I, "
		      "s:s}",
		      "kind", "ldap", "label", argv[11], "clients", clients,
		      "seconds", secs, "all", "n", (json_int_t)n, "per_s",
		      (double)n / secs, "p50_ms", pct(all, n, 50), "p99_ms",
		      pct(all, n, 99), "wrong_entry_count", (json_int_t)bad,
		      "errors", (json_int_t)errors, "operation",
		      "search sub (&(objectClass=person)(uid=X)) "
		      "attrs memberOf,pwdAccountLockedTime sizelimit 2");
	if (json_dump_file(o, argv[12], JSON_INDENT(2)) != 0)
		die("cannot write %s", argv[12]);
	json_decref(o);
	free(all);
	fprintf(stderr,
		"ldapload: %s: %zu searches in %.0f s (%.0f/s), %" PRIu64
		" with a wrong entry count, %" PRIu64 " errors\n",
		argv[11], n, secs, (double)n / secs, bad, errors);
	return n > 0 && bad == 0 && errors == 0 ? 0 : 1;
}
