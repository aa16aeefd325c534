/*
 * server/audit_export_parse.c -- the export's untrusted-input parsers and
 * the CSV cell: times, UUIDs, the export parameters, and RFC 4180 quoting
 * with formula neutralisation. Pure (no I/O, no database), so the unit
 * tests and the libFuzzer target (tests/fuzz/fuzz_export.c) take it alone
 * with buf.c. See audit_export.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/audit_export.h"

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
