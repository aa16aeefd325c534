/*
 * server/audit_export_parse.c -- the export's untrusted-input parsers and
 * the CSV cell: times, UUIDs, the export parameters, RFC 4180 quoting
 * with formula neutralisation, and the signed manifest's check. Pure (no
 * I/O, no database), so the unit tests and the libFuzzer targets
 * (tests/fuzz/fuzz_export.c, fuzz_manifest.c) take it alone with buf.c,
 * audit_canon.c and audit_key.c. See audit_export.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "server/audit_export.h"
#include "server/audit_key.h"

/* ---- times -------------------------------------------------------------- */

/* n digits at s as a number, or -1. */
static int
digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int
gate_time_parse_us(const char *s, long long *us)
{
	struct tm tm, back;
	long long frac = 0, scale = 100000;
	int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;
	size_t len = strlen(s), i;
	time_t t;

	if (len < 10 || (y = digits(s, 4)) < 1900 || s[4] != '-' ||
	    (mo = digits(s + 5, 2)) < 1 || s[7] != '-' ||
	    (d = digits(s + 8, 2)) < 1)
		return -1;
	if (len > 10) {
		if ((s[10] != 'T' && s[10] != 't') || len < 17 ||
		    (h = digits(s + 11, 2)) < 0 || s[13] != ':' ||
		    (mi = digits(s + 14, 2)) < 0)
			return -1;
		i = 16;
		if (s[i] == ':') {
			if ((sec = digits(s + i + 1, 2)) < 0)
				return -1;
			i += 3;
			if (s[i] == '.') {
				i++;
				if (s[i] < '0' || s[i] > '9')
					return -1;
				for (; s[i] >= '0' && s[i] <= '9'; i++) {
					frac += scale * (s[i] - '0');
					scale /= 10;
				}
			}
		}
		if (s[i] == 'Z' || s[i] == 'z') {
			i++;
		} else if (s[i] == '+' || s[i] == '-') {
			int oh = digits(s + i + 1, 2), om;

			if (oh < 0 || oh > 23 || s[i + 3] != ':' ||
			    (om = digits(s + i + 4, 2)) < 0 || om > 59)
				return -1;
			off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
			i += 6;
		} else {
			return -1;
		}
		if (i != len || h > 23 || mi > 59 || sec > 60)
			return -1;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec > 59 ? 59 : sec;
	t = timegm(&tm);
	/* A day that does not exist (Feb 30) comes back moved. */
	if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL ||
	    back.tm_mday != d || back.tm_mon != mo - 1)
		return -1;
	*us = ((long long)t - off) * 1000000LL + frac;
	return 0;
}

void
gate_time_fmt_us(long long us, char *out, size_t outlen)
{
	time_t t = (time_t)(us / 1000000);
	long long frac = us % 1000000;
	struct tm tm;
	char base[32];

	if (frac < 0) {
		t--;
		frac += 1000000;
	}
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(out, outlen, "invalid");
		return;
	}
	if (frac != 0)
		snprintf(out, outlen, "%s.%06lldZ", base, frac);
	else
		snprintf(out, outlen, "%sZ", base);
}

/* ---- parameters ------------------------------------------------------- */

void
gate_export_params_init(struct gate_export_params *p)
{
	memset(p, 0, sizeof(*p));
	p->format = GATE_EXPORT_CSV;
}

int
gate_uuid_parse(const char *s, size_t len, char out[37])
{
	if (len != 36)
		return -1;
	for (size_t i = 0; i < 36; i++) {
		char c = s[i];
		int dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? c != '-'
		         : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		             (c >= 'A' && c <= 'F')))
			return -1;
		out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	out[36] = '\0';
	return 0;
}

int
gate_export_param(struct gate_export_params *p, const char *name,
                  const char *value, char *err, size_t errlen)
{
	if (value == NULL)
		value = "";
	if (strcmp(name, "from") == 0 || strcmp(name, "to") == 0) {
		long long us;

		if (gate_time_parse_us(value, &us) != 0 || us <= 0) {
			snprintf(err, errlen,
			         "%s must be an RFC 3339 time such as "
			         "2026-11-28T06:00:00Z or a date such as "
			         "2026-11-28 (UTC midnight); got \"%.64s\"",
			         name, value);
			return -1;
		}
		if (name[0] == 'f') {
			p->f.from_us = us;
		} else {
			p->f.to_us = us;
			p->have_to = 1;
		}
		return 0;
	}
	if (strcmp(name, "meeting") == 0) {
		if (gate_uuid_parse(value, strlen(value), p->meeting) != 0) {
			snprintf(err, errlen,
			         "meeting must be a meeting id (a UUID such as "
			         "1b4e28ba-2fa1-11d2-883f-0016d3cca427)");
			return -1;
		}
		p->f.meeting_id = p->meeting;
		return 0;
	}
	if (strcmp(name, "identity") == 0) {
		size_t n = strlen(value);

		if (n == 0 || n > GATE_IDENTITY_MAX) {
			snprintf(err, errlen,
			         "identity must be 1 to %d bytes (the SSO "
			         "identity as recorded, e.g. alice)",
			         GATE_IDENTITY_MAX);
			return -1;
		}
		memcpy(p->identity, value, n + 1);
		p->f.identity = p->identity;
		return 0;
	}
	if (strcmp(name, "outcome") == 0) {
		if (strcmp(value, "allow") != 0 && strcmp(value, "deny") != 0 &&
		    strcmp(value, "error") != 0 && strcmp(value, "info") != 0) {
			snprintf(err, errlen,
			         "outcome must be allow, deny, error or info");
			return -1;
		}
		snprintf(p->outcome, sizeof(p->outcome), "%s", value);
		p->f.outcome = p->outcome;
		return 0;
	}
	if (strcmp(name, "format") == 0) {
		if (strcmp(value, "csv") == 0) {
			p->format = GATE_EXPORT_CSV;
		} else if (strcmp(value, "jsonl") == 0) {
			p->format = GATE_EXPORT_JSONL;
		} else {
			snprintf(err, errlen, "format must be csv or jsonl");
			return -1;
		}
		return 0;
	}
	snprintf(err, errlen,
	         "unknown parameter \"%.64s\"; the export takes from, to, "
	         "meeting, identity, outcome and format",
	         name);
	return -1;
}

int
gate_export_params_finish(struct gate_export_params *p, long long now_us,
                          char *err, size_t errlen)
{
	if (!p->have_to)
		p->f.to_us = now_us;
	if (p->f.from_us != 0 && p->f.from_us >= p->f.to_us) {
		snprintf(err, errlen,
		         "from must be earlier than to (to is exclusive%s)",
		         p->have_to ? "" : " and defaults to now");
		return -1;
	}
	return 0;
}

/* ---- formatting --------------------------------------------------------- */

void
gate_csv_cell(struct gate_buf *b, const char *s)
{
	int neutral, quote;

	if (s == NULL)
		return; /* SQL NULL: an empty cell */
	if (*s == '\0') {
		gate_buf_add(b, "\"\"", 2); /* an empty text: "" */
		return;
	}
	/* A leading apostrophe is doubled too, so a reader can always drop
	 * exactly one: the cell reads back as the value. */
	neutral = strchr("=+-@\t\r'", s[0]) != NULL;
	quote = strpbrk(s, ",\"\r\n") != NULL;
	if (quote)
		gate_buf_add(b, "\"", 1);
	if (neutral)
		gate_buf_add(b, "'", 1);
	if (!quote) {
		gate_buf_add(b, s, strlen(s));
		return;
	}
	for (const char *q = s; *q != '\0';) {
		const char *e = strchr(q, '"');
		size_t n = e ? (size_t)(e - q) + 1 : strlen(q);

		gate_buf_add(b, q, n);
		if (e != NULL)
			gate_buf_add(b, "\"", 1);
		q += n;
	}
	gate_buf_add(b, "\"", 1);
}

void
gate_export_csv_header(struct gate_buf *b)
{
	for (int i = 0; i < DB_EXPORT_NCOLS; i++) {
		if (i > 0)
			gate_buf_add(b, ",", 1);
		gate_csv_cell(b, db_export_columns[i]);
	}
	gate_buf_add(b, "\r\n", 2);
}

void
gate_export_csv_row(struct gate_buf *b, const char *const *row)
{
	for (int i = 0; i < DB_EXPORT_NCOLS; i++) {
		if (i > 0)
			gate_buf_add(b, ",", 1);
		gate_csv_cell(b, row[i]);
	}
	gate_buf_add(b, "\r\n", 2);
}

int
gate_export_jsonl_row(struct gate_buf *b, const char *const *row)
{
	json_t *o = json_object();
	char *text;
	int r = -1;

	if (o == NULL)
		return -1;
	for (int i = 0; i < DB_EXPORT_NCOLS; i++) {
		const char *v = row[i];
		json_t *j;

		if (v == NULL)
			j = json_null();
		else if (db_export_kinds[i] == 1)
			j = json_integer(strtoll(v, NULL, 10));
		else if (db_export_kinds[i] == 2 &&
		         (strcmp(v, "t") == 0 || strcmp(v, "f") == 0 ||
		          strcmp(v, "true") == 0 || strcmp(v, "false") == 0))
			j = json_boolean(v[0] == 't');
		else if (db_export_kinds[i] == 3 &&
		         (j = json_loads(v, JSON_DECODE_ANY, NULL)) != NULL)
			;
		else
			j = json_string(v);
		if (j == NULL || json_object_set_new(o, db_export_columns[i],
		                                     j) != 0)
			goto out;
	}
	/* details as an object for people, and the exact text the chain
	 * hashed for verify-export (jsonb's spelling of numbers and spaces
	 * does not survive a parse). */
	if (json_object_set_new(o, "details_text",
	                        row[DB_EXPORT_COL_DETAILS]
	                            ? json_string(row[DB_EXPORT_COL_DETAILS])
	                            : json_null()) != 0)
		goto out;
	text = json_dumps(o, JSON_COMPACT);
	if (text == NULL)
		goto out;
	gate_buf_add(b, text, strlen(text));
	gate_buf_add(b, "\n", 1);
	free(text);
	r = b->failed ? -1 : 0;
out:
	json_decref(o);
	return r;
}

/* ---- the manifest ------------------------------------------------------- */

/* The key of kid among pks; NULL when none. */
static const unsigned char *
find_key(const unsigned char (*pks)[32], const char (*kids)[17], size_t npks,
         const char *kid)
{
	for (size_t i = 0; i < npks; i++)
		if (strcmp(kids[i], kid) == 0)
			return pks[i];
	return NULL;
}

/* 64 lower-case hex digits into out[32]. */
static int
hex32(const char *s, unsigned char out[32])
{
	size_t bl = 0;

	if (s == NULL || strlen(s) != 64 ||
	    strspn(s, "0123456789abcdef") != 64 ||
	    sodium_hex2bin(out, 32, s, 64, NULL, &bl, NULL) != 0 || bl != 32)
		return -1;
	return 0;
}

static int
is_kid(const char *s)
{
	return s != NULL && strlen(s) == 16 &&
	       strspn(s, "0123456789abcdef") == 16;
}

/* A base64 (original alphabet, padded) Ed25519 signature. */
static int
sig64(const char *s, unsigned char out[64])
{
	size_t bl = 0;

	if (s == NULL || sodium_base642bin(out, 64, s, strlen(s), NULL, &bl,
	                                   NULL,
	                                   sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bl != 64)
		return -1;
	return 0;
}

/* A JSON integer > 0 into *v. */
static int
pos_int(json_t *j, long long *v)
{
	if (!json_is_integer(j) || json_integer_value(j) <= 0)
		return -1;
	*v = (long long)json_integer_value(j);
	return 0;
}

/* The manifest's last_checkpoint (an object; not null). */
static int
manifest_ckpt(json_t *cp, const unsigned char (*pks)[32],
              const char (*kids)[17], size_t npks,
              struct gate_export_manifest *m, char *err, size_t errlen)
{
	const char *body = json_string_value(json_object_get(cp, "body"));
	const char *kid = json_string_value(json_object_get(cp, "kid"));
	const unsigned char *pk;
	unsigned char hash[32];
	long long last_seq = 0, count = 0;

	if (body == NULL || !is_kid(kid) ||
	    pos_int(json_object_get(cp, "id"), &m->ckpt_id) != 0 ||
	    pos_int(json_object_get(cp, "last_seq"), &last_seq) != 0 ||
	    pos_int(json_object_get(cp, "count"), &count) != 0 ||
	    hex32(json_string_value(json_object_get(cp, "last_hash")), hash) !=
	        0 ||
	    sig64(json_string_value(json_object_get(cp, "sig")), m->ckpt_sig) !=
	        0) {
		snprintf(err, errlen,
		         "the manifest's last_checkpoint lacks id, kid, last_seq, "
		         "count, last_hash, body or sig, or one is malformed");
		return -1;
	}
	if (gate_audit_ckpt_parse(body, strlen(body), &m->ckpt) != 0 ||
	    strcmp(m->ckpt.kid, kid) != 0 || m->ckpt.last_seq != last_seq ||
	    m->ckpt.count != count || memcmp(m->ckpt.last_hash, hash, 32) != 0) {
		snprintf(err, errlen,
		         "the manifest's last_checkpoint (#%lld): its signed body "
		         "is malformed or differs from its fields",
		         m->ckpt_id);
		return -1;
	}
	pk = find_key(pks, kids, npks, kid);
	if (pk == NULL) {
		snprintf(err, errlen,
		         "the manifest's last_checkpoint (#%lld, seq %lld) is "
		         "signed with key %s, which is not among the public keys "
		         "given: pass that key's public file too",
		         m->ckpt_id, last_seq, kid);
		return -1;
	}
	if (gate_audit_verify(pk, (const unsigned char *)body, strlen(body),
	                      m->ckpt_sig) != 0) {
		snprintf(err, errlen,
		         "the manifest's last_checkpoint (#%lld, seq %lld): bad "
		         "signature -- it was altered, or not made by key %s",
		         m->ckpt_id, last_seq, kid);
		return -1;
	}
	m->have_ckpt = 1;
	return 0;
}

int
gate_export_manifest_check(const char *text, size_t len,
                           const unsigned char (*pks)[32],
                           const char (*kids)[17], size_t npks,
                           struct gate_export_manifest *m, char *err,
                           size_t errlen)
{
	json_t *j = NULL, *rest = NULL, *range, *filters, *cp;
	json_error_t je;
	const char *kid, *fmt;
	const unsigned char *pk;
	unsigned char sig[64];
	char *canon = NULL;
	int r = -1;

	memset(m, 0, sizeof(*m));
	if (len > GATE_EXPORT_MANIFEST_MAX) {
		snprintf(err, errlen, "the manifest is larger than %d bytes",
		         GATE_EXPORT_MANIFEST_MAX);
		return -1;
	}
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL || !json_is_object(j)) {
		snprintf(err, errlen,
		         "the manifest is not a JSON object (line %d: %.80s)",
		         j == NULL ? je.line : 1,
		         j == NULL ? je.text : "not an object");
		goto out;
	}
	if (!json_is_integer(json_object_get(j, "version")) ||
	    json_integer_value(json_object_get(j, "version")) !=
	        GATE_EXPORT_MANIFEST_VERSION) {
		snprintf(err, errlen,
		         "the manifest's version is not %d: not a roomgate "
		         "export manifest this version can check",
		         GATE_EXPORT_MANIFEST_VERSION);
		goto out;
	}
	kid = json_string_value(json_object_get(j, "key_id"));
	if (!is_kid(kid) ||
	    sig64(json_string_value(json_object_get(j, "signature")), sig) !=
	        0) {
		snprintf(err, errlen,
		         "the manifest lacks key_id (16 hex digits) or signature "
		         "(a base64 Ed25519 signature)");
		goto out;
	}
	pk = find_key(pks, kids, npks, kid);
	if (pk == NULL) {
		snprintf(err, errlen,
		         "the manifest was signed with key %s, which is not "
		         "among the public keys given (%s%s): use that key's "
		         "public file",
		         kid, npks > 0 ? kids[0] : "none",
		         npks > 1 ? ", ..." : "");
		goto out;
	}
	rest = json_deep_copy(j);
	if (rest == NULL || json_object_del(rest, "signature") != 0 ||
	    (canon = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS |
	                                  JSON_ENSURE_ASCII)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (gate_audit_verify(pk, (const unsigned char *)canon, strlen(canon),
	                      sig) != 0) {
		snprintf(err, errlen,
		         "the manifest's signature does not verify: the manifest "
		         "was changed after it was signed");
		goto out;
	}
	crypto_hash_sha256(m->canon_sha256, (const unsigned char *)canon,
	                   strlen(canon));
	memcpy(m->kid, kid, sizeof(m->kid));
	/* Signed by a key we trust; still checked, as input. */
	fmt = json_string_value(json_object_get(j, "format"));
	if (fmt != NULL && strcmp(fmt, "csv") == 0)
		m->format = GATE_EXPORT_CSV;
	else if (fmt != NULL && strcmp(fmt, "jsonl") == 0)
		m->format = GATE_EXPORT_JSONL;
	else {
		snprintf(err, errlen, "the manifest's format is not csv or "
		                      "jsonl");
		goto out;
	}
	if (!json_is_integer(json_object_get(j, "count")) ||
	    (m->count = json_integer_value(json_object_get(j, "count"))) < 0 ||
	    !json_is_integer(json_object_get(j, "bytes")) ||
	    (m->bytes = json_integer_value(json_object_get(j, "bytes"))) < 0 ||
	    hex32(json_string_value(json_object_get(j, "sha256")), m->sha256) !=
	        0) {
		snprintf(err, errlen, "the manifest lacks count, bytes or "
		                      "sha256, or one is malformed");
		goto out;
	}
	{
		const char *id = json_string_value(json_object_get(j, "export_id"));

		if (id == NULL || gate_uuid_parse(id, strlen(id), m->export_id) !=
		                      0) {
			snprintf(err, errlen, "the manifest's export_id is not a "
			                      "UUID");
			goto out;
		}
	}
	filters = json_object_get(j, "filters");
	if (!json_is_object(filters)) {
		snprintf(err, errlen, "the manifest lacks filters");
		goto out;
	}
	m->filtered = !json_is_null(json_object_get(filters, "meeting")) ||
	              !json_is_null(json_object_get(filters, "identity")) ||
	              !json_is_null(json_object_get(filters, "outcome"));
	range = json_object_get(j, "range");
	if (!json_is_object(range) ||
	    (m->count > 0
	         ? pos_int(json_object_get(range, "first_seq"),
	                   &m->first_seq) != 0 ||
	               pos_int(json_object_get(range, "last_seq"),
	                       &m->last_seq) != 0 ||
	               m->first_seq > m->last_seq ||
	               m->last_seq - m->first_seq < m->count - 1
	         : !json_is_null(json_object_get(range, "first_seq")) ||
	               !json_is_null(json_object_get(range, "last_seq")))) {
		snprintf(err, errlen,
		         "the manifest's range does not fit its count (first_seq "
		         "and last_seq: 1 or more, in order, as many seqs as "
		         "records at least; null when there are none)");
		goto out;
	}
	cp = json_object_get(j, "last_checkpoint");
	if (cp == NULL || (!json_is_null(cp) && !json_is_object(cp))) {
		snprintf(err, errlen,
		         "the manifest lacks last_checkpoint (an object, or null "
		         "before the first checkpoint)");
		goto out;
	}
	if (json_is_object(cp) &&
	    manifest_ckpt(cp, pks, kids, npks, m, err, errlen) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		memset(m, 0, sizeof(*m));
	free(canon);
	json_decref(rest);
	json_decref(j);
	return r;
}

/* ---- the rows of an export ---------------------------------------------- */

#define ROW_MAX (8u * 1024 * 1024) /* one record is far smaller */
#define MAX_CKPTS 64

struct gate_export_rowcheck {
	struct gate_export_manifest m;
	struct gate_audit_ckpt ck[MAX_CKPTS]; /* by last_seq */
	long long ck_id[MAX_CKPTS];           /* 0: an anchor line */
	size_t nck, next;
	struct gate_buf rec;  /* the record being read */
	struct gate_buf vals; /* its values, NUL-terminated one after another */
	struct gate_buf again; /* the record written again from its values */
	int in_quote, header_done, failed;
	long long prev_seq, prev_pos;
	int prev_sealed;
	unsigned char prev_link[32];
	long long run_rows; /* rows of this run not yet covered by a checkpoint */
	struct gate_export_rows_result res;
	char err[768];
};

static void
rows_fail(struct gate_export_rowcheck *rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void
rows_fail(struct gate_export_rowcheck *rc, const char *fmt, ...)
{
	va_list ap;

	if (rc->failed)
		return;
	rc->failed = 1;
	va_start(ap, fmt);
	vsnprintf(rc->err, sizeof(rc->err), fmt, ap);
	va_end(ap);
}

struct gate_export_rowcheck *
gate_export_rows_new(const struct gate_export_manifest *m,
                     const struct gate_audit_ckpt *extra, size_t nextra)
{
	struct gate_export_rowcheck *rc = calloc(1, sizeof(*rc));

	if (rc == NULL)
		return NULL;
	rc->m = *m;
	if (m->have_ckpt) {
		rc->ck[0] = m->ckpt;
		rc->ck_id[0] = m->ckpt_id;
		rc->nck = 1;
	}
	for (size_t i = 0; i < nextra && rc->nck < MAX_CKPTS; i++) {
		size_t j = rc->nck++;

		/* insertion by last_seq; an anchor equal to one held is kept
		 * too: both must match the row */
		while (j > 0 && rc->ck[j - 1].last_seq > extra[i].last_seq) {
			rc->ck[j] = rc->ck[j - 1];
			rc->ck_id[j] = rc->ck_id[j - 1];
			j--;
		}
		rc->ck[j] = extra[i];
		rc->ck_id[j] = 0;
	}
	gate_buf_init(&rc->rec, ROW_MAX);
	gate_buf_init(&rc->vals, ROW_MAX + DB_EXPORT_NCOLS);
	gate_buf_init(&rc->again, 3 * (size_t)ROW_MAX);
	return rc;
}

void
gate_export_rows_free(struct gate_export_rowcheck *rc)
{
	if (rc == NULL)
		return;
	gate_buf_free(&rc->rec);
	gate_buf_free(&rc->vals);
	gate_buf_free(&rc->again);
	free(rc);
}

/* The values of the record r[0..n) (CSV, no CRLF) into v; the number of
 * cells, or -1 when it is not RFC 4180. */
static int
csv_values(struct gate_export_rowcheck *rc, const char *r, size_t n,
           const char *v[DB_EXPORT_NCOLS])
{
	size_t i = 0, off[DB_EXPORT_NCOLS];
	int null[DB_EXPORT_NCOLS], cells = 0;

	rc->vals.len = 0;
	for (;;) {
		size_t start = rc->vals.len;
		int quoted = i < n && r[i] == '"', isnull = 0;

		if (cells >= DB_EXPORT_NCOLS)
			return -1;
		if (quoted) {
			for (i++;; i++) {
				if (i >= n)
					return -1; /* no closing quote */
				if (r[i] == '"') {
					if (i + 1 < n && r[i + 1] == '"') {
						gate_buf_add(&rc->vals, "\"", 1);
						i++;
						continue;
					}
					i++;
					break;
				}
				gate_buf_add(&rc->vals, r + i, 1);
			}
		} else {
			size_t j = i;

			while (j < n && r[j] != ',')
				j++;
			isnull = j == i;
			gate_buf_add(&rc->vals, r + i, j - i);
			i = j;
		}
		gate_buf_add(&rc->vals, "", 1);
		off[cells] = start;
		null[cells] = isnull;
		cells++;
		if (i == n)
			break;
		if (r[i] != ',')
			return -1; /* text after a closing quote */
		i++;
	}
	if (rc->vals.failed)
		return -1;
	for (int c = 0; c < cells; c++) {
		const char *s = rc->vals.p + off[c];

		/* the neutralising apostrophe */
		v[c] = null[c] ? NULL : s[0] == '\'' ? s + 1 : s;
	}
	return cells;
}

/* Keeps s as value c of the record. */
static void
keep(struct gate_export_rowcheck *rc, size_t off[], int c, const char *s)
{
	off[c] = rc->vals.len;
	gate_buf_add(&rc->vals, s, strlen(s) + 1);
}

/* The values of the JSON Lines record r[0..n) into v; 0 or -1. */
static int
jsonl_values(struct gate_export_rowcheck *rc, const char *r, size_t n,
             const char *v[DB_EXPORT_NCOLS])
{
	json_t *o = json_loadb(r, n, JSON_REJECT_DUPLICATES, NULL);
	size_t off[DB_EXPORT_NCOLS];
	int null[DB_EXPORT_NCOLS], ret = -1;
	char num[24];

	rc->vals.len = 0;
	if (o == NULL || !json_is_object(o))
		goto out;
	for (int c = 0; c < DB_EXPORT_NCOLS; c++) {
		json_t *j = json_object_get(o, c == DB_EXPORT_COL_DETAILS
		                                   ? "details_text"
		                                   : db_export_columns[c]);

		null[c] = j == NULL || json_is_null(j);
		if (j == NULL)
			goto out;
		if (null[c])
			continue;
		if (json_is_integer(j)) {
			snprintf(num, sizeof(num), "%lld",
			         (long long)json_integer_value(j));
			keep(rc, off, c, num);
		} else if (json_is_boolean(j)) {
			keep(rc, off, c, json_is_true(j) ? "t" : "f");
		} else if (json_is_string(j) &&
		           strlen(json_string_value(j)) ==
		               json_string_length(j)) {
			keep(rc, off, c, json_string_value(j));
		} else {
			goto out;
		}
	}
	if (rc->vals.failed)
		goto out;
	for (int c = 0; c < DB_EXPORT_NCOLS; c++)
		v[c] = null[c] ? NULL : rc->vals.p + off[c];
	ret = 0;
out:
	json_decref(o);
	return ret;
}

/* A positive decimal without sign or leading zero. */
static int
seq_num(const char *s, long long *out)
{
	char *end;

	if (s == NULL || s[0] < '1' || s[0] > '9' ||
	    strspn(s, "0123456789") != strlen(s) || strlen(s) > 18)
		return -1;
	*out = strtoll(s, &end, 10);
	return *end == '\0' ? 0 : -1;
}

/* The chain checks of one record's values. */
static void
check_row(struct gate_export_rowcheck *rc, const char *const *v)
{
	struct gate_export_rows_result *res = &rc->res;
	const char *f[DB_AUDIT_NFIELDS];
	size_t len[DB_AUDIT_NFIELDS];
	unsigned char ch[32], want_ch[32], link[32], want_link[32];
	long long seq, pos;
	const char *sealed = v[DB_EXPORT_COL_SEALED];
	const struct gate_audit_ckpt *last = rc->m.have_ckpt ? &rc->m.ckpt : NULL;

	if (seq_num(v[DB_EXPORT_COL_SEQ], &seq) != 0) {
		rows_fail(rc, "record %lld: seq is not a number",
		          res->records + 1);
		return;
	}
	if (res->records == 0)
		res->first_seq = seq;
	if (seq <= rc->prev_seq) {
		rows_fail(rc,
		          "seq %lld follows seq %lld: records were reordered or "
		          "repeated",
		          seq, rc->prev_seq);
		return;
	}
	if (sealed == NULL ||
	    (strcmp(sealed, "t") != 0 && strcmp(sealed, "f") != 0)) {
		rows_fail(rc, "seq %lld: sealed is not t or f", seq);
		return;
	}
	if (sealed[0] == 'f') {
		if (v[DB_EXPORT_COL_POS] != NULL ||
		    v[DB_EXPORT_COL_CONTENT] != NULL ||
		    v[DB_EXPORT_COL_LINK] != NULL) {
			rows_fail(rc,
			          "seq %lld: marked not sealed, yet it has chain "
			          "columns",
			          seq);
			return;
		}
		if (last != NULL && seq <= last->last_seq) {
			rows_fail(rc,
			          "seq %lld: not sealed, yet the manifest's "
			          "checkpoint #%lld sealed the chain up to seq %lld: "
			          "the record was added after sealing",
			          seq, rc->m.ckpt_id, last->last_seq);
			return;
		}
		if (res->unsealed++ == 0)
			res->first_unsealed = seq;
		res->last_unsealed = seq;
		rc->prev_sealed = 0;
		rc->prev_seq = seq;
		return;
	}
	if (seq_num(v[DB_EXPORT_COL_POS], &pos) != 0 ||
	    hex32(v[DB_EXPORT_COL_CONTENT], want_ch) != 0 ||
	    hex32(v[DB_EXPORT_COL_LINK], want_link) != 0) {
		rows_fail(rc,
		          "seq %lld: sealed, but chain_pos, content_hash or "
		          "chain_hash is missing or malformed",
		          seq);
		return;
	}
	if (rc->res.unsealed > 0) {
		rows_fail(rc,
		          "seq %lld: sealed, after seq %lld that is not: the "
		          "chain skipped a record, or the export was edited",
		          seq, rc->res.last_unsealed);
		return;
	}
	if (last == NULL || seq > last->last_seq) {
		rows_fail(rc,
		          "seq %lld has a chain entry past the manifest's newest "
		          "checkpoint (%s%lld): the sealer writes entries and "
		          "their checkpoint together, so checkpoints were "
		          "deleted or the chain rebuilt",
		          seq, last ? "seq " : "none: ",
		          last ? last->last_seq : 0);
		return;
	}
	/* The same canonical encoding as `audit verify`. */
	for (int i = 0; i < DB_AUDIT_NFIELDS; i++) {
		f[i] = v[DB_EXPORT_COL_AT + i];
		len[i] = f[i] ? strlen(f[i]) : 0;
	}
	gate_audit_content_hash(f, len, ch);
	if (sodium_memcmp(ch, want_ch, 32) != 0) {
		rows_fail(rc,
		          "seq %lld: modified -- its exported fields do not "
		          "match the content hash sealed for it",
		          seq);
		return;
	}
	if (rc->prev_sealed && pos <= rc->prev_pos) {
		rows_fail(rc,
		          "seq %lld: chain position %lld after %lld: records "
		          "were reordered",
		          seq, pos, rc->prev_pos);
		return;
	}
	if (rc->prev_sealed && pos == rc->prev_pos + 1) {
		gate_audit_link_hash(rc->prev_link, pos, seq, ch, link);
		if (sodium_memcmp(link, want_link, 32) != 0) {
			rows_fail(rc,
			          "seq %lld: its chain hash does not follow from "
			          "seq %lld's: the chain was altered",
			          seq, rc->prev_seq);
			return;
		}
		res->linked++;
	} else {
		res->runs++;
		rc->run_rows = 0;
	}
	rc->run_rows++;
	while (rc->next < rc->nck && rc->ck[rc->next].last_seq < seq)
		rc->next++;
	for (; rc->next < rc->nck && rc->ck[rc->next].last_seq == seq;
	     rc->next++) {
		const struct gate_audit_ckpt *k = &rc->ck[rc->next];

		if (k->count != pos ||
		    sodium_memcmp(k->last_hash, want_link, 32) != 0) {
			rows_fail(rc,
			          "seq %lld: its chain entry (position %lld) "
			          "differs from the signed checkpoint %s%lld "
			          "(count %lld, %.32s) at that seq: the chain was "
			          "rebuilt",
			          seq, pos,
			          rc->ck_id[rc->next] ? "#" : "anchor of ",
			          rc->ck_id[rc->next] ? rc->ck_id[rc->next]
			                              : k->last_seq,
			          k->count, k->time);
			return;
		}
		res->anchored += rc->run_rows;
		res->ckpts_met++;
		rc->run_rows = 0;
	}
	res->sealed++;
	rc->prev_sealed = 1;
	rc->prev_pos = pos;
	memcpy(rc->prev_link, want_link, 32);
	rc->prev_seq = seq;
}

/* One whole record in rc->rec (its line end not included). */
static void
record(struct gate_export_rowcheck *rc)
{
	const char *v[DB_EXPORT_NCOLS];
	const char *r = rc->rec.p ? rc->rec.p : "";
	size_t n = rc->rec.len;
	int csv = rc->m.format == GATE_EXPORT_CSV, ok;

	rc->again.len = 0;
	if (csv && !rc->header_done) {
		rc->header_done = 1;
		gate_export_csv_header(&rc->again);
		if (rc->again.len != n + 2 || memcmp(rc->again.p, r, n) != 0)
			rows_fail(rc, "the first line is not the header of a "
			              "roomgate export");
		return;
	}
	memset(v, 0, sizeof(v));
	ok = csv ? csv_values(rc, r, n, v) == DB_EXPORT_NCOLS
	         : jsonl_values(rc, r, n, v) == 0;
	if (ok) {
		/* Written again from its values, the record must come out
		 * byte for byte: one spelling per record. */
		if (csv)
			gate_export_csv_row(&rc->again, v);
		else
			ok = gate_export_jsonl_row(&rc->again, v) == 0;
		ok = ok && !rc->again.failed && rc->again.len == n + 1 + csv &&
		     memcmp(rc->again.p, r, n) == 0;
	}
	if (!ok) {
		rows_fail(rc,
		          "record %lld (after seq %lld) is not a record as "
		          "roomgate writes it (%s)",
		          rc->res.records + 1, rc->prev_seq,
		          csv ? "RFC 4180, one cell per column, formulas "
		                "neutralised"
		              : "one JSON object per line with every column");
		return;
	}
	check_row(rc, v);
	rc->res.records++;
}

int
gate_export_rows_feed(struct gate_export_rowcheck *rc, const void *data,
                      size_t n)
{
	const unsigned char *p = data;
	int csv = rc->m.format == GATE_EXPORT_CSV;

	for (size_t i = 0; i < n && !rc->failed; i++) {
		unsigned char c = p[i];
		int end;

		if (csv && c == '"')
			rc->in_quote = !rc->in_quote;
		end = c == '\n' &&
		      (!csv || (!rc->in_quote && rc->rec.len > 0 &&
		                rc->rec.p[rc->rec.len - 1] == '\r'));
		if (!end) {
			if (gate_buf_add(&rc->rec, &c, 1) != 0)
				rows_fail(rc, "record %lld is larger than %u "
				              "bytes: not a roomgate export",
				          rc->res.records + 1, ROW_MAX);
			continue;
		}
		if (csv)
			rc->rec.len--; /* the CR */
		record(rc);
		rc->rec.len = 0;
	}
	return rc->failed ? -1 : 0;
}

int
gate_export_rows_end(struct gate_export_rowcheck *rc,
                     struct gate_export_rows_result *res, char *err,
                     size_t errlen)
{
	if (!rc->failed && rc->rec.len > 0)
		rows_fail(rc, "the export ends inside a record (after seq "
		              "%lld): it was cut short",
		          rc->prev_seq);
	if (!rc->failed && rc->m.format == GATE_EXPORT_CSV && !rc->header_done)
		rows_fail(rc, "the export has no header line");
	if (!rc->failed && rc->res.records != rc->m.count)
		rows_fail(rc, "the export holds %lld records, the manifest says "
		              "%lld",
		          rc->res.records, rc->m.count);
	if (!rc->failed && rc->m.count > 0 &&
	    (rc->prev_seq != rc->m.last_seq ||
	     (rc->res.first_seq != 0 && rc->res.first_seq != rc->m.first_seq)))
		rows_fail(rc, "the export's records run to seq %lld, the "
		              "manifest's range is seq %lld..%lld",
		          rc->prev_seq, rc->m.first_seq, rc->m.last_seq);
	*res = rc->res;
	if (rc->failed) {
		snprintf(err, errlen, "%s", rc->err);
		return -1;
	}
	return 0;
}
