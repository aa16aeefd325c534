/*
 * server/audit_export.c -- the audit export: CSV / JSON Lines records, the
 * running export with its SHA-256 and signed manifest, the offline
 * verification, and the two CLI commands. The parsers of its parameters
 * are in audit_export_parse.c. See audit_export.h.
 *
 * Memory stays flat: the body is made a batch of records at a time from a
 * database cursor (db_export_next) as the reader asks for bytes, and the
 * hash is taken over exactly the bytes handed out.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "server/audit_export.h"
#include "server/audit_key.h"

#define EXIT_USAGE 2
#define PEND_MAX (8u * 1024 * 1024) /* one record is far smaller */
#define MANIFEST_MAX GATE_EXPORT_MANIFEST_MAX
#define EXPORT_FETCH_TIMEOUT_MS (10 * 60 * 1000)

/* ---- the running export ----------------------------------------------- */

struct gate_export {
	struct gate_audit_key key;
	struct gate_export_params p;
	struct db_export *cur;
	struct db_pool *pool;
	crypto_hash_sha256_state sha;
	struct gate_buf pend;
	size_t off;
	long long count, total, bytes;
	long long first_seq, last_seq;
	char first_at[40], last_at[40];
	char id[37];
	char created_at[40];
	char *identity, *request_id, *node, *source;
	char *checkpoint; /* JSON text or NULL */
	char *manifest;
	int rows_done, finished, header_done;
};

static void
new_uuid(char out[37])
{
	unsigned char r[16];
	char hex[33];

	randombytes_buf(r, sizeof(r));
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
	         hex + 16, hex + 20);
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

int
gate_export_begin(const struct gate_config *cfg, struct db_pool *pool,
                  const struct gate_export_params *p,
                  const struct db_actor *by, int with_count,
                  struct gate_export **out, int *status, char *err,
                  size_t errlen)
{
	struct gate_export *x;
	char kerr[512], derr[512];
	long long now = (long long)time(NULL) * 1000000LL;

	*out = NULL;
	*status = 503;
	if (cfg->audit_signing_key_file == NULL) {
		snprintf(err, errlen,
		         "exports are signed, and no signing key is configured: "
		         "set [audit] signing_key_file (make one with `roomgate "
		         "audit keygen --out FILE`)");
		return -1;
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	x->p = *p;
	/* The filter's strings point into p: repoint them at our copy. */
	if (p->f.meeting_id != NULL)
		x->p.f.meeting_id = x->p.meeting;
	if (p->f.identity != NULL)
		x->p.f.identity = x->p.identity;
	if (p->f.outcome != NULL)
		x->p.f.outcome = x->p.outcome;
	x->pool = pool;
	crypto_hash_sha256_init(&x->sha);
	gate_buf_init(&x->pend, PEND_MAX);
	new_uuid(x->id);
	gate_time_fmt_us(now, x->created_at, sizeof(x->created_at));
	x->identity = dup_or_null(by && by->identity ? by->identity : "cli");
	x->request_id = dup_or_null(by ? by->request_id : NULL);
	x->node = dup_or_null(by ? by->node : NULL);
	x->source = dup_or_null(by ? by->source_addr : NULL);
	if (x->identity == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (gate_audit_key_load(cfg->audit_signing_key_file, &x->key, kerr,
	                        sizeof(kerr)) != 0) {
		snprintf(err, errlen, "cannot sign the export: %s", kerr);
		goto fail;
	}
	/* A fetch may have to sort the whole range first (a filter served
	 * by another index than seq's): the service's statement_timeout is
	 * sized for admissions, not for that. */
	if (db_export_open(cfg->db_url, cfg->db_connect_timeout_s,
	                   cfg->db_statement_timeout_ms > EXPORT_FETCH_TIMEOUT_MS
	                       ? cfg->db_statement_timeout_ms
	                       : EXPORT_FETCH_TIMEOUT_MS,
	                   &x->p.f, with_count,
	                   &x->total, &x->checkpoint, &x->cur, derr,
	                   sizeof(derr)) != 0) {
		snprintf(err, errlen,
		         "the audit trail cannot be read now (%s); retry "
		         "shortly",
		         derr);
		goto fail;
	}
	*out = x;
	*status = 200;
	return 0;
fail:
	gate_export_free(x);
	return -1;
}

/* Builds, signs and records the manifest. */
static int
finish(struct gate_export *x, char *err, size_t errlen)
{
	unsigned char digest[32], sig[64];
	char hex[65], sigb64[sodium_base64_ENCODED_LEN(
	                  64, sodium_base64_VARIANT_ORIGINAL)];
	char from[40], to[40], derr[512];
	struct db_actor by;
	json_t *m = NULL, *filters, *range, *cp = NULL, *details = NULL;
	char *canon = NULL, *dj = NULL;
	int r = -1;

	crypto_hash_sha256_final(&x->sha, digest);
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	if (x->p.f.from_us != 0)
		gate_time_fmt_us(x->p.f.from_us, from, sizeof(from));
	gate_time_fmt_us(x->p.f.to_us, to, sizeof(to));
	if (x->checkpoint != NULL)
		cp = json_loads(x->checkpoint, 0, NULL);
	filters = json_pack(
	    "{s:o, s:s, s:o, s:o, s:o}", "from",
	    x->p.f.from_us ? json_string(from) : json_null(), "to", to,
	    "meeting", x->p.f.meeting_id ? json_string(x->p.meeting) : json_null(),
	    "identity",
	    x->p.f.identity ? json_string(x->p.identity) : json_null(),
	    "outcome", x->p.f.outcome ? json_string(x->p.outcome) : json_null());
	range = x->count > 0
	            ? json_pack("{s:I, s:I, s:s, s:s}", "first_seq",
	                        (json_int_t)x->first_seq, "last_seq",
	                        (json_int_t)x->last_seq, "first_at", x->first_at,
	                        "last_at", x->last_at)
	            : json_pack("{s:n, s:n, s:n, s:n}", "first_seq", "last_seq",
	                        "first_at", "last_at");
	m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:s, s:o, "
	              "s:s, s:s}",
	              "version", GATE_EXPORT_MANIFEST_VERSION, "export_id", x->id,
	              "created_at", x->created_at, "created_by", x->identity,
	              "format",
	              x->p.format == GATE_EXPORT_CSV ? "csv" : "jsonl",
	              "filters", filters, "range", range, "count",
	              (json_int_t)x->count, "bytes", (json_int_t)x->bytes,
	              "sha256", hex, "last_checkpoint", cp ? cp : json_null(),
	              "key_id", x->key.kid, "signature_alg", "Ed25519");
	if (m == NULL ||
	    (canon = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS |
	                               JSON_ENSURE_ASCII)) == NULL) {
		snprintf(err, errlen, "out of memory making the manifest");
		goto out;
	}
	gate_audit_sign(&x->key, (const unsigned char *)canon, strlen(canon),
	                sig);
	sodium_bin2base64(sigb64, sizeof(sigb64), sig, sizeof(sig),
	                  sodium_base64_VARIANT_ORIGINAL);
	if (json_object_set_new(m, "signature", json_string(sigb64)) != 0 ||
	    (x->manifest = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS |
	                                     JSON_ENSURE_ASCII)) == NULL) {
		snprintf(err, errlen, "out of memory making the manifest");
		goto out;
	}
	details = json_pack("{s:s, s:s, s:I, s:s, s:O}", "export_id", x->id,
	                    "format",
	                    x->p.format == GATE_EXPORT_CSV ? "csv" : "jsonl",
	                    "count", (json_int_t)x->count, "sha256", hex,
	                    "filters", json_object_get(m, "filters"));
	if (details == NULL ||
	    (dj = json_dumps(details, JSON_COMPACT)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memset(&by, 0, sizeof(by));
	by.identity = x->identity;
	by.request_id = x->request_id;
	by.node = x->node;
	by.source_addr = x->source;
	if (db_export_record(x->pool, x->id, x->identity,
	                     x->p.format == GATE_EXPORT_CSV ? "csv" : "jsonl",
	                     x->manifest, dj, &by, derr, sizeof(derr)) != 0) {
		snprintf(err, errlen, "the export could not be recorded: %s",
		         derr);
		free(x->manifest);
		x->manifest = NULL;
		goto out;
	}
	r = 0;
out:
	sodium_memzero(sig, sizeof(sig));
	free(canon);
	free(dj);
	json_decref(details);
	json_decref(m);
	return r;
}

/* Appends the next record (or the header) to pend; 0 when none is left. */
static int
fill(struct gate_export *x, char *err, size_t errlen)
{
	const char *const *row;
	int r;

	if (!x->header_done) {
		x->header_done = 1;
		if (x->p.format == GATE_EXPORT_CSV) {
			gate_export_csv_header(&x->pend);
			return 1;
		}
	}
	r = db_export_next(x->cur, &row, err, errlen);
	if (r <= 0)
		return r;
	if (x->p.format == GATE_EXPORT_CSV)
		gate_export_csv_row(&x->pend, row);
	else if (gate_export_jsonl_row(&x->pend, row) != 0) {
		snprintf(err, errlen, "record %s could not be written as JSON",
		         row[DB_EXPORT_COL_SEQ] ? row[DB_EXPORT_COL_SEQ] : "?");
		return -1;
	}
	if (x->pend.failed) {
		snprintf(err, errlen, "record %s is too large to export",
		         row[DB_EXPORT_COL_SEQ] ? row[DB_EXPORT_COL_SEQ] : "?");
		return -1;
	}
	if (x->count == 0) {
		x->first_seq = strtoll(row[DB_EXPORT_COL_SEQ], NULL, 10);
		snprintf(x->first_at, sizeof(x->first_at), "%s",
		         row[DB_EXPORT_COL_AT]);
	}
	x->last_seq = strtoll(row[DB_EXPORT_COL_SEQ], NULL, 10);
	snprintf(x->last_at, sizeof(x->last_at), "%s", row[DB_EXPORT_COL_AT]);
	x->count++;
	return 1;
}

ssize_t
gate_export_read(struct gate_export *x, char *buf, size_t max, char *err,
                 size_t errlen)
{
	size_t avail, n;
	int r;

	if (x->finished)
		return 0;
	if (x->off > 0) {
		/* What the last call left over goes to the front, so the
		 * buffer holds at most one call's worth plus a record. */
		memmove(x->pend.p, x->pend.p + x->off, x->pend.len - x->off);
		x->pend.len -= x->off;
		x->off = 0;
	}
	while (!x->rows_done && x->pend.len < max) {
		r = fill(x, err, errlen);
		if (r < 0)
			return -1;
		if (r == 0) {
			x->rows_done = 1;
			/* The snapshot is no longer needed. */
			db_export_close(x->cur);
			x->cur = NULL;
		}
	}
	avail = x->pend.len - x->off;
	if (avail == 0) {
		if (finish(x, err, errlen) != 0)
			return -1;
		x->finished = 1;
		return 0;
	}
	n = avail < max ? avail : max;
	memcpy(buf, x->pend.p + x->off, n);
	crypto_hash_sha256_update(&x->sha, (const unsigned char *)buf, n);
	x->bytes += (long long)n;
	x->off += n;
	return (ssize_t)n;
}

const char *
gate_export_id(const struct gate_export *x)
{
	return x->id;
}

long long
gate_export_count(const struct gate_export *x)
{
	return x->count;
}

long long
gate_export_total(const struct gate_export *x)
{
	return x->total;
}

const char *
gate_export_manifest(const struct gate_export *x)
{
	return x->finished ? x->manifest : NULL;
}

void
gate_export_free(struct gate_export *x)
{
	if (x == NULL)
		return;
	db_export_close(x->cur);
	gate_audit_key_wipe(&x->key);
	gate_buf_free(&x->pend);
	free(x->identity);
	free(x->request_id);
	free(x->node);
	free(x->source);
	free(x->checkpoint);
	free(x->manifest);
	free(x);
}

/* ---- offline verification --------------------------------------------- */

int
gate_export_verify_keys(const char *body_path, const char *manifest_text,
                        const unsigned char (*pks)[32],
                        const char (*kids)[17], size_t npks,
                        const struct gate_audit_ckpt *extra, size_t nextra,
                        char *summary, size_t summarylen, char *err,
                        size_t errlen)
{
	struct gate_export_manifest m;
	struct gate_export_rowcheck *rc = NULL;
	struct gate_export_rows_result res;
	unsigned char digest[32], *chunk = NULL;
	char hex[65], want_hex[65], unsealed[160], rerr[768];
	crypto_hash_sha256_state sha;
	long long bytes = 0;
	int fd = -1, r = -1, rows_ok = 1;
	ssize_t n;

	if (summary != NULL && summarylen > 0)
		summary[0] = '\0';
	if (gate_export_manifest_check(manifest_text, strlen(manifest_text),
	                               pks, kids, npks, &m, err, errlen) != 0)
		return -1;
	fd = open(body_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", body_path,
		         strerror(errno));
		goto out;
	}
	rc = gate_export_rows_new(&m, extra, nextra);
	chunk = malloc(65536);
	if (rc == NULL || chunk == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	crypto_hash_sha256_init(&sha);
	while ((n = read(fd, chunk, 65536)) > 0) {
		crypto_hash_sha256_update(&sha, chunk, (size_t)n);
		bytes += n;
		if (rows_ok && gate_export_rows_feed(rc, chunk, (size_t)n) != 0)
			rows_ok = 0; /* reported after the hash */
	}
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s: %s", body_path,
		         strerror(errno));
		goto out;
	}
	crypto_hash_sha256_final(&sha, digest);
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	sodium_bin2hex(want_hex, sizeof(want_hex), m.sha256, sizeof(m.sha256));
	if (bytes != m.bytes) {
		snprintf(err, errlen,
		         "%s has %lld bytes, the manifest says %lld: the export "
		         "was cut short or added to",
		         body_path, bytes, m.bytes);
		goto out;
	}
	if (strcmp(hex, want_hex) != 0) {
		snprintf(err, errlen,
		         "the SHA-256 of %s is %s, the manifest says %s: the "
		         "export was changed",
		         body_path, hex, want_hex);
		goto out;
	}
	/* The body is the one signed; now what it says against the
	 * chain. */
	if (gate_export_rows_end(rc, &res, rerr, sizeof(rerr)) != 0) {
		snprintf(err, errlen, "%s: %s", body_path, rerr);
		goto out;
	}
	if (res.unsealed > 0)
		snprintf(unsealed, sizeof(unsealed),
		         "; %lld NOT SEALED (seq %lld..%lld, newer than the last "
		         "checkpoint: only the manifest's signature vouches for "
		         "them)",
		         res.unsealed, res.first_unsealed, res.last_unsealed);
	else
		unsealed[0] = '\0';
	if (summary != NULL)
		snprintf(summary, summarylen,
		         "%lld records, %lld bytes, sha256 %s, signed by key %s; "
		         "%lld sealed records match their content hashes (%lld "
		         "links checked, %lld run%s of consecutive chain "
		         "positions), %lld of them covered by %lld signed "
		         "checkpoint%s%s",
		         res.records, bytes, hex, m.kid, res.sealed, res.linked,
		         res.runs, res.runs == 1 ? "" : "s", res.anchored,
		         res.ckpts_met, res.ckpts_met == 1 ? "" : "s", unsealed);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	free(chunk);
	gate_export_rows_free(rc);
	return r;
}

int
gate_export_verify(const char *body_path, const char *manifest_text,
                   const unsigned char pk[32], const char *kid,
                   char *summary, size_t summarylen, char *err,
                   size_t errlen)
{
	unsigned char pks[1][32];
	char kids[1][17];

	memcpy(pks[0], pk, 32);
	snprintf(kids[0], sizeof(kids[0]), "%s", kid);
	return gate_export_verify_keys(body_path, manifest_text,
	                               (const unsigned char(*)[32])pks,
	                               (const char(*)[17])kids, 1, NULL, 0,
	                               summary, summarylen, err, errlen);
}

/* ---- CLI ------------------------------------------------------------------ */

static const char usage_export[] =
    "usage: roomgate [-c FILE] audit export --out FILE [--manifest FILE]\n"
    "           [--format csv|jsonl] [--from TIME] [--to TIME]\n"
    "           [--meeting ID] [--identity ID] [--outcome allow|deny|error|"
    "info]\n"
    "  Writes the audit records (from inclusive, to exclusive; to defaults\n"
    "  to now) to FILE (\"-\": standard output) and the signed manifest to\n"
    "  --manifest (default FILE.manifest.json). Neither file is\n"
    "  overwritten. Progress goes to standard error. Needs [database] url\n"
    "  and [audit] signing_key_file.\n";
static const char usage_verify[] =
    "usage: roomgate [-c FILE] audit verify-export FILE MANIFEST "
    "[--public-key PUBFILE]...\n"
    "  Checks offline that FILE is the export MANIFEST describes and that\n"
    "  MANIFEST was signed by the audit key: PUBFILE (`roomgate audit\n"
    "  public-key`; several when the manifest and its checkpoint were\n"
    "  signed by different keys), else [audit] signing_key_file of the\n"
    "  config. Then every record: its content hash recomputed from its\n"
    "  fields, the links between consecutive chain positions, and the\n"
    "  manifest's signed checkpoint where the export reaches it. Records\n"
    "  not sealed yet are counted and named (NOT SEALED).\n"
    "  Exit 0: verified; 1: not (the reason is printed).\n";

static int
load_cfg(struct gate_config *cfg, const char *cfgpath, char **envp,
         int need_file)
{
	char err[1024];

	if (cfgpath == NULL)
		cfgpath = getenv("ROOMGATE_CONFIG");
	if (cfgpath != NULL && *cfgpath == '\0')
		cfgpath = NULL;
	if (need_file && cfgpath == NULL) {
		fprintf(stderr, "roomgate: no config file: pass -c FILE or set "
		                "ROOMGATE_CONFIG\n");
		return -1;
	}
	if (gate_config_load(cfg, cfgpath, envp, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: %s\n", err);
		return -1;
	}
	return 0;
}

static int
open_new(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0)
		fprintf(stderr, "roomgate: cannot create %s: %s%s\n", path,
		        strerror(errno),
		        errno == EEXIST ? " (exports never overwrite a file: "
		                          "choose another name)"
		                        : "");
	return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cli_export(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"manifest", required_argument, NULL, 'm'},
	    {"format", required_argument, NULL, 'f'},
	    {"from", required_argument, NULL, 'F'},
	    {"to", required_argument, NULL, 'T'},
	    {"meeting", required_argument, NULL, 'M'},
	    {"identity", required_argument, NULL, 'i'},
	    {"outcome", required_argument, NULL, 'O'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const char *const names[] = {
	    ['f'] = "format",   ['F'] = "from",    ['T'] = "to",
	    ['M'] = "meeting", ['i'] = "identity", ['O'] = "outcome"};
	struct gate_export_params p;
	struct gate_config cfg;
	struct db_config dbc;
	struct db_pool *pool = NULL;
	struct gate_export *x = NULL;
	struct db_actor by;
	const char *out = NULL, *mpath = NULL;
	char err[1024], mbuf[4096], *buf = NULL, who[300];
	int ch, fd = -1, mfd = -1, status, rc = 1, tty;
	double t0, last = 0;
	ssize_t n;

	gate_export_params_init(&p);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'm':
			mpath = optarg;
			break;
		case 'f':
		case 'F':
		case 'T':
		case 'M':
		case 'i':
		case 'O':
			if (gate_export_param(&p, names[ch], optarg, err,
			                      sizeof(err)) != 0) {
				fprintf(stderr, "roomgate: --%s\n", err);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage_export, stdout);
			return 0;
		default:
			fputs(usage_export, stderr);
			return EXIT_USAGE;
		}
	}
	if (out == NULL || optind != argc ||
	    (strcmp(out, "-") == 0 && mpath == NULL)) {
		if (out != NULL && strcmp(out, "-") == 0 && mpath == NULL)
			fprintf(stderr, "roomgate: with --out - give --manifest "
			                "FILE\n");
		fputs(usage_export, stderr);
		return EXIT_USAGE;
	}
	if (gate_export_params_finish(&p, (long long)time(NULL) * 1000000LL,
	                              err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: %s\n", err);
		return EXIT_USAGE;
	}
	if (mpath == NULL) {
		if (snprintf(mbuf, sizeof(mbuf), "%s.manifest.json", out) >=
		    (int)sizeof(mbuf)) {
			fprintf(stderr, "roomgate: --out is too long\n");
			return EXIT_USAGE;
		}
		mpath = mbuf;
	}
	if (load_cfg(&cfg, cfgpath, envp, 1) != 0)
		return 1;
	if (cfg.db_url == NULL) {
		fprintf(stderr, "roomgate: [database] url is required\n");
		goto out;
	}
	memset(&dbc, 0, sizeof(dbc));
	dbc.conninfo = cfg.db_url;
	dbc.pool_size = 1;
	dbc.connect_timeout_s = cfg.db_connect_timeout_s;
	dbc.statement_timeout_ms = cfg.db_statement_timeout_ms;
	dbc.acquire_timeout_ms = cfg.db_acquire_timeout_ms;
	if (db_pool_open(&dbc, &pool, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: %s\n", err);
		goto out;
	}
	snprintf(who, sizeof(who), "cli:%.200s",
	         getenv("USER") ? getenv("USER") : "unknown");
	memset(&by, 0, sizeof(by));
	by.identity = who;
	by.node = cfg.node_name;
	if (gate_export_begin(&cfg, pool, &p, &by, 1, &x, &status, err,
	                      sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: audit export: %s\n", err);
		goto out;
	}
	fd = strcmp(out, "-") == 0 ? STDOUT_FILENO : open_new(out, 0600);
	if (fd < 0 || (mfd = open_new(mpath, 0644)) < 0)
		goto out;
	buf = malloc(65536);
	if (buf == NULL) {
		fprintf(stderr, "roomgate: out of memory\n");
		goto out;
	}
	tty = isatty(STDERR_FILENO);
	t0 = mono_s();
	while ((n = gate_export_read(x, buf, 65536, err, sizeof(err))) > 0) {
		double now;

		if (write_all(fd, buf, (size_t)n) != 0) {
			fprintf(stderr, "roomgate: writing %s: %s\n", out,
			        strerror(errno));
			goto out;
		}
		now = mono_s();
		if (now - last >= (tty ? 0.2 : 2.0)) {
			long long total = gate_export_total(x);
			long long done = gate_export_count(x);

			fprintf(stderr, "%sexported %lld of %lld records (%.0f%%)%s",
			        tty ? "\r" : "", done, total,
			        total > 0 ? 100.0 * (double)done / (double)total
			                  : 100.0,
			        tty ? "" : "\n");
			last = now;
		}
	}
	if (n < 0) {
		fprintf(stderr, "%sroomgate: audit export failed: %s\n",
		        tty ? "\n" : "", err);
		goto out;
	}
	if (write_all(mfd, gate_export_manifest(x),
	              strlen(gate_export_manifest(x))) != 0 ||
	    write_all(mfd, "\n", 1) != 0) {
		fprintf(stderr, "roomgate: writing %s: %s\n", mpath,
		        strerror(errno));
		goto out;
	}
	{
		double secs = mono_s() - t0;

		fprintf(stderr,
		        "%sexported %lld records in %.1f s (%.0f records/s); "
		        "export %s, manifest %s\n",
		        tty ? "\r" : "", gate_export_count(x), secs,
		        secs > 0 ? (double)gate_export_count(x) / secs : 0.0,
		        gate_export_id(x), mpath);
	}
	rc = 0;
out:
	if (fd >= 0 && fd != STDOUT_FILENO && close(fd) != 0 && rc == 0) {
		fprintf(stderr, "roomgate: closing %s: %s\n", out,
		        strerror(errno));
		rc = 1;
	}
	if (mfd >= 0 && close(mfd) != 0 && rc == 0) {
		fprintf(stderr, "roomgate: closing %s: %s\n", mpath,
		        strerror(errno));
		rc = 1;
	}
	free(buf);
	gate_export_free(x);
	if (pool != NULL)
		db_pool_close(pool);
	gate_config_free(&cfg);
	return rc;
}

static char *
read_small(const char *path, size_t max, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *p;
	size_t n;

	if (f == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		         strerror(errno));
		return NULL;
	}
	p = malloc(max + 1);
	if (p == NULL) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = fread(p, 1, max + 1, f);
	fclose(f);
	if (n > max) {
		free(p);
		snprintf(err, errlen, "%s is larger than %zu bytes: not a "
		                      "manifest", path, max);
		return NULL;
	}
	p[n] = '\0';
	return p;
}

#define VERIFY_MAX_KEYS 8

static int
cli_verify(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
	    {"public-key", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *keyfiles[VERIFY_MAX_KEYS];
	struct gate_config cfg;
	unsigned char pks[VERIFY_MAX_KEYS][32];
	char kids[VERIFY_MAX_KEYS][17], err[1024], summary[1024];
	char *mtext = NULL;
	size_t nkeys = 0;
	int ch, rc = 1, have_cfg = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			if (nkeys >= VERIFY_MAX_KEYS) {
				fprintf(stderr, "roomgate: at most %d "
				                "--public-key\n",
				        VERIFY_MAX_KEYS);
				return EXIT_USAGE;
			}
			keyfiles[nkeys++] = optarg;
			break;
		case 'h':
			fputs(usage_verify, stdout);
			return 0;
		default:
			fputs(usage_verify, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 2) {
		fputs(usage_verify, stderr);
		return EXIT_USAGE;
	}
	if (nkeys == 0) {
		if (load_cfg(&cfg, cfgpath, envp, 0) != 0)
			return 1;
		have_cfg = 1;
		keyfiles[0] = cfg.audit_signing_key_file;
		if (keyfiles[0] == NULL) {
			fprintf(stderr,
			        "roomgate: give --public-key PUBFILE (or a config "
			        "with [audit] signing_key_file)\n");
			rc = EXIT_USAGE;
			goto out;
		}
		nkeys = 1;
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (gate_audit_key_pub_load(keyfiles[i], pks[i], kids[i], err,
		                            sizeof(err)) != 0) {
			fprintf(stderr, "roomgate: %s\n", err);
			goto out;
		}
	}
	if ((mtext = read_small(argv[optind + 1], MANIFEST_MAX, err,
	                        sizeof(err))) == NULL) {
		fprintf(stderr, "roomgate: %s\n", err);
		goto out;
	}
	if (gate_export_verify_keys(argv[optind], mtext,
	                            (const unsigned char(*)[32])pks,
	                            (const char(*)[17])kids, nkeys, NULL, 0,
	                            summary, sizeof(summary), err,
	                            sizeof(err)) != 0) {
		printf("FAILED: %s\n", err);
		goto out;
	}
	printf("OK: %s\n", summary);
	rc = 0;
out:
	free(mtext);
	if (have_cfg)
		gate_config_free(&cfg);
	return rc;
}

int
gate_cli_audit_export(const char *cfgpath, int argc, char **argv,
                      char **envp)
{
	if (argc >= 2 && strcmp(argv[1], "export") == 0)
		return cli_export(cfgpath, argc - 1, argv + 1, envp);
	if (argc >= 2 && strcmp(argv[1], "verify-export") == 0)
		return cli_verify(cfgpath, argc - 1, argv + 1, envp);
	fputs(usage_export, stderr);
	fputs(usage_verify, stderr);
	return EXIT_USAGE;
}
