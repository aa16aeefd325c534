/*
 * directory/filter.c -- the search filters roomgate sends and the DN form
 * it compares. Pure functions (no connection), unit tested in
 * tests/unit/test_directory_filter.c. See dir_int.h.
 *
 * Values from outside (the identity) and values from the server put into
 * filters (entry and group DNs) go through ldap_bv2escaped_filter_value
 * (RFC 4515: '*', '(', ')', '\', NUL and non-ASCII become \XX), so no
 * value can change a filter's structure. DNs are never built from input:
 * the entry DN is the one the server returned.
 */
#include <ctype.h>
#include <errno.h>
#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory/dir_int.h"

/* Growable string with a maximum; errors are sticky. */
struct sbuf {
	char *p;
	size_t len, cap, max;
	int failed; /* 1 too long, 2 no memory */
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	size_t want;
	char *np;

	if (b->failed)
		return;
	if (n > b->max || b->len > b->max - n) {
		b->failed = 1;
		return;
	}
	want = b->len + n + 1;
	if (want > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < want)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->failed = 2;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* Hands the string over (or reports why not); frees it on failure. */
static int
sb_finish(struct sbuf *b, char **out, const char *what, char *err,
          size_t errlen)
{
	*out = NULL;
	if (!b->failed && b->p == NULL)
		sb_add(b, "", 0);
	if (b->failed) {
		free(b->p);
		if (b->failed == 2) {
			dir_errf(err, errlen, "out of memory");
			return DIR_ENOMEM;
		}
		dir_errf(err, errlen, "%s would be longer than %zu bytes",
		         what, b->max);
		return DIR_EINVAL;
	}
	*out = b->p;
	return 0;
}

/* Appends value (len bytes) escaped per RFC 4515. */
static int
sb_escaped(struct sbuf *b, const char *value, size_t len)
{
	struct berval in, esc = {0, NULL};

	if (len == 0)
		return 0;
	in.bv_val = (char *)(uintptr_t)value;
	in.bv_len = len;
	if (ldap_bv2escaped_filter_value(&in, &esc) != 0 || esc.bv_val == NULL) {
		b->failed = 2;
		return DIR_ENOMEM;
	}
	sb_add(b, esc.bv_val, esc.bv_len);
	ldap_memfree(esc.bv_val);
	return 0;
}

const char *
dir_active_preset_filter(enum dir_active a)
{
	switch (a) {
	case DIR_ACTIVE_OPENLDAP:
		return "(!(pwdAccountLockedTime=*))";
	case DIR_ACTIVE_AD:
		/* Bit 2 (ACCOUNTDISABLE) by the bitwise-AND matching rule:
		 * "=514" would miss 66050 (disabled, password never
		 * expires) and every other combination. */
		return "(!(userAccountControl:1.2.840.113556.1.4.803:=2))";
	case DIR_ACTIVE_FREEIPA:
		return "(!(nsAccountLock=TRUE))";
	case DIR_ACTIVE_NONE:
	case DIR_ACTIVE_FILTER:
		break;
	}
	return NULL;
}

int
dir_uac_disabled(const char *val, size_t len, long long *uac, int *disabled)
{
	char num[24], *end = NULL;
	long long v;

	*disabled = 1; /* unreadable counts as disabled for callers that
			  ignore the error */
	if (val == NULL || len == 0 || len >= sizeof(num) ||
	    memchr(val, 0, len) != NULL ||
	    (!isdigit((unsigned char)val[0]) && val[0] != '-'))
		return DIR_EINVAL;
	memcpy(num, val, len);
	num[len] = '\0';
	errno = 0;
	v = strtoll(num, &end, 10);
	/* AD sends a 32-bit value, some tools print it signed. */
	if (errno != 0 || end == num || *end != '\0' ||
	    v < -2147483648LL || v > 4294967295LL)
		return DIR_EINVAL;
	*uac = v;
	/* ACCOUNTDISABLE is bit 2 (0x2), whatever else is set: 514 is only
	 * NORMAL_ACCOUNT|ACCOUNTDISABLE; 66050 adds DONT_EXPIRE_PASSWORD. */
	*disabled = ((unsigned long long)v & 2ULL) != 0;
	return 0;
}

int
dir_ipa_locked(const char *val, size_t len)
{
	/* nsAccountLock is a Boolean: only TRUE (any case) locks. */
	return val != NULL && len == 4 && strncasecmp(val, "TRUE", 4) == 0;
}

int
dir_filter_expand(const char *tmpl, const char *value, size_t len,
                  char **out, char *err, size_t errlen)
{
	static const char ph[] = DIR_IDENTITY_PLACEHOLDER;
	struct sbuf b = {NULL, 0, 0, DIR_MAX_SEARCH_FILTER, 0};
	const char *p = tmpl, *hit;

	*out = NULL;
	if (tmpl == NULL || strstr(tmpl, ph) == NULL) {
		dir_errf(err, errlen,
		         "the lookup filter has no %s placeholder", ph);
		return DIR_EINVAL;
	}
	while ((hit = strstr(p, ph)) != NULL) {
		sb_add(&b, p, (size_t)(hit - p));
		sb_escaped(&b, value, len);
		p = hit + sizeof(ph) - 1;
	}
	sb_str(&b, p);
	return sb_finish(&b, out, "the lookup filter", err, errlen);
}

int
dir_filter_eq_any(const char *attr, const char *const *values, size_t n,
                  char **out, char *err, size_t errlen)
{
	struct sbuf b = {NULL, 0, 0, DIR_MAX_SEARCH_FILTER, 0};
	size_t i;

	*out = NULL;
	if (n == 0) {
		dir_errf(err, errlen, "no values for a (%s=...) filter", attr);
		return DIR_EINVAL;
	}
	if (n > 1)
		sb_str(&b, "(|");
	for (i = 0; i < n; i++) {
		sb_str(&b, "(");
		sb_str(&b, attr);
		sb_str(&b, "=");
		sb_escaped(&b, values[i], strlen(values[i]));
		sb_str(&b, ")");
	}
	if (n > 1)
		sb_str(&b, ")");
	return sb_finish(&b, out, "a group search filter", err, errlen);
}

int
dir_filter_ad_chain(const char *group_dn, char **out, char *err,
                    size_t errlen)
{
	struct sbuf b = {NULL, 0, 0, DIR_MAX_SEARCH_FILTER, 0};

	/* LDAP_MATCHING_RULE_IN_CHAIN: AD walks the nesting itself. */
	sb_str(&b, "(memberOf:1.2.840.113556.1.4.1941:=");
	sb_escaped(&b, group_dn, strlen(group_dn));
	sb_str(&b, ")");
	return sb_finish(&b, out, "an in-chain filter", err, errlen);
}

int
dir_filter_check(const char *name, const char *filter, char *err,
                 size_t errlen)
{
	size_t i, n;
	int depth = 0;

	n = filter != NULL ? strnlen(filter, DIR_MAX_FILTER_LEN + 1) : 0;
	if (n == 0) {
		dir_errf(err, errlen, "%s is empty", name);
		return DIR_EINVAL;
	}
	if (n > DIR_MAX_FILTER_LEN) {
		dir_errf(err, errlen, "%s is longer than %d bytes", name,
		         DIR_MAX_FILTER_LEN);
		return DIR_EINVAL;
	}
	if (filter[0] != '(' || filter[n - 1] != ')')
		goto bad;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)filter[i];

		if (c < 0x20 || c == 0x7f)
			goto bad;
		if (c == '(')
			depth++;
		else if (c == ')' && --depth < 0)
			goto bad;
		/* The whole filter is one parenthesised item. */
		if (depth == 0 && i != n - 1)
			goto bad;
	}
	if (depth != 0)
		goto bad;
	return 0;
bad:
	dir_errf(err, errlen,
	         "%s '%s' is not an LDAP filter: write one parenthesised "
	         "item with balanced parentheses, e.g. "
	         "(&(objectClass=person)(uid={identity})); a literal ( or ) "
	         "in a value is written \\28 or \\29",
	         name, filter);
	return DIR_EINVAL;
}

int
dir_attr_check(const char *name, const char *attr, char *err, size_t errlen)
{
	size_t i, n;

	n = attr != NULL ? strnlen(attr, DIR_MAX_ATTR_LEN + 1) : 0;
	if (n == 0 || n > DIR_MAX_ATTR_LEN)
		goto bad;
	if (isdigit((unsigned char)attr[0])) {
		/* A numeric OID: digits and single dots. */
		for (i = 0; i < n; i++)
			if (!isdigit((unsigned char)attr[i]) &&
			    (attr[i] != '.' || i + 1 == n || attr[i + 1] == '.'))
				goto bad;
		return 0;
	}
	if (!isalpha((unsigned char)attr[0]))
		goto bad;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)attr[i]) && attr[i] != '-' &&
		    attr[i] != ';')
			goto bad;
	return 0;
bad:
	dir_errf(err, errlen,
	         "%s '%s' is not an attribute name (letters, digits and "
	         "'-', e.g. member or uniqueMember)",
	         name, attr != NULL ? attr : "");
	return DIR_EINVAL;
}

int
dir_dn_norm(const char *dn, char **out)
{
	char *n = NULL, *c;
	int rc;

	*out = NULL;
	if (dn == NULL || strnlen(dn, DIR_DN_MAX) >= DIR_DN_MAX)
		return DIR_EINVAL;
	rc = ldap_dn_normalize(dn, LDAP_DN_FORMAT_LDAPV3, &n,
	                       LDAP_DN_FORMAT_LDAPV3);
	if (rc == LDAP_NO_MEMORY)
		return DIR_ENOMEM;
	if (rc != LDAP_SUCCESS || n == NULL) {
		if (n != NULL)
			ldap_memfree(n);
		return DIR_EINVAL;
	}
	/* Our own copy: callers free() it, not ldap_memfree(). */
	c = strdup(n);
	ldap_memfree(n);
	if (c == NULL)
		return DIR_ENOMEM;
	for (n = c; *n != '\0'; n++)
		if (*n >= 'A' && *n <= 'Z')
			*n = (char)(*n - 'A' + 'a');
	*out = c;
	return 0;
}
