/*
 * server/audit_export_parse.c -- the export's untrusted-input parsers and
 * the CSV cell: times, UUIDs, the export parameters, RFC 4180 quoting
 * with formula neutralisation, and the signed manifest's check. Pure (no
 * I/O, no database), so the unit tests and the libFuzzer targets
 * (tests/fuzz/fuzz_export.c, fuzz_manifest.c) take it alone with buf.c,
 * audit_canon.c and audit_key.c. See audit_export.h.
 */
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

	if (s == NULL || *s == '\0')
		return;
	neutral = strchr("=+-@\t\r", s[0]) != NULL;
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
