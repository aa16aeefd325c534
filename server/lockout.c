/*
 * Lockout policy arithmetic and the source address an attempt counts
 * against. The counters themselves live in PostgreSQL so every node sees
 * the same numbers; this file only decides durations and whose address a
 * request carries, so both are unit-tested without a database.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "server/admit.h"

int64_t
gate_lockout_duration(const struct gate_lockout_policy *p, int lock_count)
{
	int64_t d = p->lock_s;

	if (d <= 0)
		return 0;
	for (int i = 1; i < lock_count && d < p->lock_max_s; i++)
		d *= 2;
	return d > p->lock_max_s ? p->lock_max_s : d;
}

/* A parsed address: family and 16 bytes (IPv4 mapped into the first 4). */
struct addr {
	int af;
	unsigned char b[16];
};

/* Parses s[0..len) (surrounding spaces trimmed) as an IP literal. */
static int
parse_addr(const char *s, size_t len, struct addr *a)
{
	char tmp[INET6_ADDRSTRLEN + 1];

	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, tmp, a->b) == 1) {
		a->af = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, a->b) == 1) {
		a->af = AF_INET6;
		return 0;
	}
	return -1;
}

static int
is_trusted(const struct addr *a, const char *trusted)
{
	const char *t = trusted, *e;
	struct addr ta;

	if (t == NULL)
		return 0;
	while (*t != '\0') {
		while (*t == ' ' || *t == ',')
			t++;
		for (e = t; *e != '\0' && *e != ' ' && *e != ','; e++)
			;
		if (e > t && parse_addr(t, (size_t)(e - t), &ta) == 0 &&
		    ta.af == a->af && memcmp(ta.b, a->b, sizeof(ta.b)) == 0)
			return 1;
		t = e;
	}
	return 0;
}

static int
format_addr(const struct addr *a, char *out, size_t outlen)
{
	return inet_ntop(a->af, a->b, out, (socklen_t)outlen) == NULL ? -1 : 0;
}

int
gate_lockout_source_addr(const char *peer, const char *xff, const char *trusted,
                         char *out, size_t outlen)
{
	struct addr pa, xa, last;
	const char *end, *start;
	int have_last = 0;

	if (peer == NULL || parse_addr(peer, strlen(peer), &pa) != 0)
		return -1;
	if (xff == NULL || !is_trusted(&pa, trusted))
		return format_addr(&pa, out, outlen);
	/* Right to left: the nearest hops are ours, the first other one is
	 * the client as our own proxies saw it. */
	end = xff + strnlen(xff, 4096);
	while (end > xff) {
		start = end;
		while (start > xff && start[-1] != ',')
			start--;
		if (parse_addr(start, (size_t)(end - start), &xa) != 0)
			break; /* malformed: trust nothing further left */
		if (!is_trusted(&xa, trusted))
			return format_addr(&xa, out, outlen);
		last = xa;
		have_last = 1;
		end = start > xff ? start - 1 : start;
	}
	/* Every hop is one of ours: the leftmost one is where it began. */
	return format_addr(have_last && end == xff ? &last : &pa, out, outlen);
}
