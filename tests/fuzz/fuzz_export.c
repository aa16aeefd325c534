/*
 * libFuzzer target: the audit export's parsers of untrusted input
 * (server/audit_export_parse.c) -- query parameters, times and the CSV
 * cell. Input: "name=value" (cut at the first NUL). Checks contracts, not
 * just absence of crashes:
 *  - a time that parses prints (UTC) to a text that parses to the same
 *    instant;
 *  - an accepted parameter leaves only valid values behind (a lower-case
 *    UUID, an outcome from the list, an identity of 1-1024 bytes, a
 *    positive time, a known format);
 *  - a CSV cell read back per RFC 4180 is the value, with an apostrophe
 *    in front exactly when it starts with = + - @, a tab, a CR or an
 *    apostrophe, an unquoted cell holds no comma, quote, CR or LF, and an
 *    empty value is a quoted empty cell (an empty cell is NULL).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_time(const char *s)
{
	long long us, back;
	char txt[64];

	if (gate_time_parse_us(s, &us) != 0)
		return;
	gate_time_fmt_us(us, txt, sizeof(txt));
	if (gate_time_parse_us(txt, &back) != 0 || back != us)
		abort();
}

static void
check_param(const char *s)
{
	struct gate_export_params p;
	const char *eq = strchr(s, '=');
	char name[32], err[512];
	size_t n;

	if (eq == NULL || (n = (size_t)(eq - s)) >= sizeof(name))
		return;
	memcpy(name, s, n);
	name[n] = '\0';
	gate_export_params_init(&p);
	if (gate_export_param(&p, name, eq + 1, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort(); /* a refusal always says why */
		return;
	}
	if (p.f.meeting_id != NULL) {
		if (strlen(p.f.meeting_id) != 36)
			abort();
		for (size_t i = 0; i < 36; i++)
			if (p.f.meeting_id[i] >= 'A' && p.f.meeting_id[i] <= 'F')
				abort();
	}
	if (p.f.outcome != NULL && strcmp(p.f.outcome, "allow") != 0 &&
	    strcmp(p.f.outcome, "deny") != 0 &&
	    strcmp(p.f.outcome, "error") != 0 &&
	    strcmp(p.f.outcome, "info") != 0)
		abort();
	if (p.f.identity != NULL &&
	    (strlen(p.f.identity) == 0 ||
	     strlen(p.f.identity) > GATE_IDENTITY_MAX))
		abort();
	if (p.f.from_us < 0 || p.f.to_us < 0 ||
	    (p.format != GATE_EXPORT_CSV && p.format != GATE_EXPORT_JSONL))
		abort();
}

static void
check_cell(const char *s)
{
	struct gate_buf b;
	char *want, *got;
	size_t wn = 0, gn = 0, slen = strlen(s);
	int neutral = s[0] != '\0' && strchr("=+-@\t\r'", s[0]) != NULL;

	gate_buf_init(&b, 3 * slen + 16);
	gate_csv_cell(&b, s);
	if (b.failed)
		abort();
	want = malloc(slen + 2);
	got = malloc(b.len + 1);
	if (want == NULL || got == NULL)
		abort();
	if (neutral)
		want[wn++] = '\'';
	memcpy(want + wn, s, slen);
	wn += slen;
	if (slen == 0 && (b.len != 2 || memcmp(b.p, "\"\"", 2) != 0))
		abort();
	if (b.len > 0 && b.p[0] == '"') {
		/* Quoted: ends in a quote, inner quotes doubled. */
		if (b.len < 2 || b.p[b.len - 1] != '"')
			abort();
		for (size_t i = 1; i + 1 < b.len; i++) {
			if (b.p[i] == '"') {
				if (i + 2 >= b.len || b.p[i + 1] != '"')
					abort();
				i++;
			}
			got[gn++] = b.p[i];
		}
	} else {
		if (b.len > 0 && strpbrk(b.p, ",\"\r\n") != NULL)
			abort();
		memcpy(got, b.p ? b.p : "", b.len);
		gn = b.len;
	}
	if (gn != wn || memcmp(got, want, wn) != 0)
		abort();
	free(want);
	free(got);
	gate_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_time(s);
	check_param(s);
	check_cell(s);
	free(s);
	return 0;
}
