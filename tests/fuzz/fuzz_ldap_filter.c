/*
 * libFuzzer target: the LDAP filters roomgate builds from untrusted values
 * and the directory values it reads (directory/filter.c).
 *
 * Input: "<template>\n<value>"; the value may hold any byte, NUL too.
 * Checks the contract, not just absence of crashes:
 *  - dir_filter_expand: the result is the template with every
 *    {identity} replaced by one and the same escaped text, which holds no
 *    bare * ( ) or NUL, only \XX escapes after a backslash, and decodes
 *    back to the value; so a template that passes dir_filter_check still
 *    passes after expansion (no value can change a filter's structure);
 *  - dir_filter_eq_any / dir_filter_ad_chain: the same for each value;
 *  - dir_uac_disabled: disabled is bit 2 of the number it read;
 *  - dir_dn_norm, dir_attr_check, dir_ipa_locked on the value as text.
 * Run: build/fuzz/fuzz_ldap_filter tests/fuzz/corpus/ldap_filter
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "directory/dir_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Checks that esc (esclen bytes) is a safe RFC 4515 escaping of value and
 * returns how many bytes of esc it used (escaped values end where the
 * decoded bytes equal value). Aborts on anything unsafe.
 */
static size_t
check_escaped(const char *esc, size_t esclen, const char *value, size_t len)
{
	size_t i = 0, k = 0;

	while (k < len) {
		unsigned char b;

		if (i >= esclen)
			abort();
		if (esc[i] == '\\') {
			size_t n = 0;

			if (i + 2 >= esclen ||
			    sodium_hex2bin(&b, 1, esc + i + 1, 2, NULL, &n,
			                   NULL) != 0 ||
			    n != 1)
				abort();
			i += 3;
		} else {
			b = (unsigned char)esc[i];
			if (b == '*' || b == '(' || b == ')' || b == '\0')
				abort();
			i++;
		}
		if (b != (unsigned char)value[k])
			abort();
		k++;
	}
	return i;
}

/* One parenthesised item with balanced parentheses (dir_filter_check's
 * shape, without its length limit). */
static int
one_item(const char *f, size_t n)
{
	int depth = 0;

	if (n < 2 || f[0] != '(' || f[n - 1] != ')')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (f[i] == '(')
			depth++;
		else if (f[i] == ')' && --depth < 0)
			return 0;
		if (depth == 0 && i != n - 1)
			return 0;
	}
	return depth == 0;
}

static void
check_expand(const char *tmpl, const char *value, size_t len)
{
	static const char ph[] = DIR_IDENTITY_PLACEHOLDER;
	const size_t phlen = sizeof(ph) - 1;
	char err[512], *out = NULL;
	const char *t = tmpl, *o, *hit;
	size_t esclen = 0;
	int r, first = 1;

	r = dir_filter_expand(tmpl, value, len, &out, err, sizeof(err));
	if (r != 0) {
		if (out != NULL || err[0] == '\0')
			abort();
		return;
	}
	if (strstr(tmpl, ph) == NULL)
		abort();
	o = out;
	while ((hit = strstr(t, ph)) != NULL) {
		size_t lit = (size_t)(hit - t), used;

		if (strncmp(o, t, lit) != 0)
			abort();
		o += lit;
		used = check_escaped(o, strlen(o), value, len);
		if (first)
			esclen = used;
		else if (used != esclen)
			abort();
		first = 0;
		o += used;
		t = hit + phlen;
	}
	if (strcmp(o, t) != 0)
		abort();
	if (dir_filter_check("fuzz", tmpl, err, sizeof(err)) == 0 &&
	    !one_item(out, strlen(out)))
		abort();
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *nl, *value, err[512], *out = NULL;
	const char *vals[4];
	size_t vlen, nvals = 0;
	long long uac = 0;
	int disabled = 0;

	buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	nl = memchr(buf, '\n', size);
	if (nl == NULL) {
		free(buf);
		return 0;
	}
	*nl = '\0';
	value = nl + 1;
	vlen = size - (size_t)(value - buf);

	check_expand(buf, value, vlen);

	/* The value as text (up to its first NUL), as DNs and attribute
	 * values from the server arrive. */
	if (dir_filter_ad_chain(value, &out, err, sizeof(err)) == 0) {
		static const char pre[] = "(memberOf:1.2.840.113556.1.4.1941:=";
		size_t n = strlen(out), used;

		if (strncmp(out, pre, sizeof(pre) - 1) != 0 || out[n - 1] != ')')
			abort();
		used = check_escaped(out + sizeof(pre) - 1,
		                     n - sizeof(pre), value, strlen(value));
		if (used != n - sizeof(pre))
			abort();
		free(out);
	}
	if (dir_uac_disabled(value, vlen, &uac, &disabled) == 0) {
		if (disabled != (((unsigned long long)uac & 2ULL) != 0) ||
		    uac < -2147483648LL || uac > 4294967295LL)
			abort();
	} else if (disabled != 1) {
		abort();
	}
	(void)dir_ipa_locked(value, vlen);
	(void)dir_attr_check("fuzz", value, err, sizeof(err));
	if (dir_dn_norm(value, &out) == 0) {
		for (const char *p = out; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				abort();
		free(out);
	}
	/* Last: splitting the value at '|' writes into it. */
	for (char *p = value; nvals < 4 && p != NULL && *p != '\0';) {
		char *sep = strchr(p, '|');

		vals[nvals++] = p;
		if (sep != NULL)
			*sep++ = '\0';
		p = sep;
	}
	if (nvals > 0 &&
	    dir_filter_eq_any("member", vals, nvals, &out, err, sizeof(err)) ==
	        0) {
		if (!one_item(out, strlen(out)))
			abort();
		free(out);
	}
	free(buf);
	return 0;
}
