/*
 * Typed codes: what a person enters on the code form or in an API call,
 * turned into ASCII digits. Separators people type or paste (spaces,
 * hyphens, dots, in their ASCII and common Unicode forms) are dropped, any
 * Unicode decimal digit (general category Nd) becomes its ASCII digit, and
 * anything else is a format error that names the character and where it
 * is. Error messages never quote digits: they are (part of) the code.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "server/codes.h"

/*
 * The first code point of every run of ten decimal digits in Unicode 15
 * (category Nd: each run is contiguous, zero first). Sorted.
 */
static const unsigned int nd_zero[] = {
    0x0030,  0x0660,  0x06F0,  0x07C0,  0x0966,  0x09E6,  0x0A66,  0x0AE6,
    0x0B66,  0x0BE6,  0x0C66,  0x0CE6,  0x0D66,  0x0DE6,  0x0E50,  0x0ED0,
    0x0F20,  0x1040,  0x1090,  0x17E0,  0x1810,  0x1946,  0x19D0,  0x1A80,
    0x1A90,  0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,  0xA8D0,  0xA900,
    0xA9D0,  0xA9F0,  0xAA50,  0xABF0,  0xFF10,  0x104A0, 0x10D30, 0x11066,
    0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0,
    0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60,
    0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140,
    0x1E2F0, 0x1E4F0, 0x1E950, 0x1FBF0,
};

/* Spaces, hyphens and dots a person may type or paste between digits. */
static const unsigned int separators[] = {
    0x0020, /* space */
    0x002D, /* hyphen-minus */
    0x002E, /* full stop */
    0x00A0, /* no-break space */
    0x00B7, /* middle dot */
    0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005,
    0x2006, 0x2007, 0x2008, 0x2009, 0x200A,         /* the typographic spaces */
    0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, /* hyphens, dashes */
    0x2024,                                         /* one dot leader */
    0x202F,                                         /* narrow no-break space */
    0x205F,         /* medium mathematical space */
    0x2212,         /* minus sign */
    0x3000,         /* ideographic space */
    0x3002,         /* ideographic full stop */
    0xFE58, 0xFE63, /* small em dash, small hyphen-minus */
    0xFF0D,         /* full-width hyphen-minus */
    0xFF0E,         /* full-width full stop */
    0xFF61,         /* half-width ideographic full stop */
};

static int
digit_value(unsigned int cp)
{
	size_t lo = 0, hi = sizeof(nd_zero) / sizeof(nd_zero[0]);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cp < nd_zero[mid])
			hi = mid;
		else if (cp >= nd_zero[mid] + 10)
			lo = mid + 1;
		else
			return (int)(cp - nd_zero[mid]);
	}
	return -1;
}

static int
is_separator(unsigned int cp)
{
	for (size_t i = 0; i < sizeof(separators) / sizeof(separators[0]); i++)
		if (separators[i] == cp)
			return 1;
	return 0;
}

/* Strict UTF-8: no overlong forms, surrogates or values past U+10FFFF.
 * Returns the sequence length, 0 if invalid. */
static size_t
utf8_next(const unsigned char *s, size_t n, unsigned int *cp)
{
	unsigned int c = s[0], min;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		c &= 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		c &= 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

int
gate_code_normalize(const char *in, size_t inlen, int expected_len, char *out,
                    size_t outsize, size_t *outlen, char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, n = 0, pos = 0;
	int r = GATE_CODE_EFORMAT;

	*outlen = 0;
	if (outsize == 0)
		return GATE_CODE_EFORMAT;
	out[0] = '\0';
	if (inlen > GATE_CODE_MAX_INPUT) {
		snprintf(err, errlen,
		         "the code field is too long (%zu bytes; at most %d): "
		         "type only the code's digits",
		         inlen, GATE_CODE_MAX_INPUT);
		goto out;
	}
	while (i < inlen) {
		unsigned int cp;
		size_t len = utf8_next(s + i, inlen - i, &cp);
		int d;

		pos++;
		if (len == 0) {
			snprintf(err, errlen,
			         "the code holds bytes that are not valid "
			         "UTF-8 text at character %zu; type only the "
			         "code's digits",
			         pos);
			goto out;
		}
		i += len;
		if (is_separator(cp))
			continue;
		d = digit_value(cp);
		if (d < 0) {
			if (cp > 0x20 && cp < 0x7F)
				snprintf(err, errlen,
				         "'%c' (character %zu) is not a digit; "
				         "the code is digits only (spaces, "
				         "hyphens and dots between them are "
				         "fine)",
				         (char)cp, pos);
			else
				snprintf(err, errlen,
				         "character %zu (U+%04X) is not a "
				         "digit; the code is digits only "
				         "(spaces, hyphens and dots between "
				         "them are fine)",
				         pos, cp);
			goto out;
		}
		if (n + 1 >= outsize || n >= GATE_CODE_MAX_LEN) {
			snprintf(err, errlen,
			         "too many digits: codes have at most %d%s",
			         expected_len > 0 ? expected_len
			                          : GATE_CODE_MAX_LEN,
			         expected_len > 0 ? " for this meeting" : "");
			r = expected_len > 0 ? GATE_CODE_ELENGTH
			                     : GATE_CODE_EFORMAT;
			goto out;
		}
		out[n++] = (char)('0' + d);
	}
	out[n] = '\0';
	if (n == 0) {
		snprintf(err, errlen,
		         "no digits were typed; enter the "
		         "meeting's access code");
		goto out;
	}
	if (expected_len > 0 && n != (size_t)expected_len) {
		snprintf(err, errlen,
		         "this meeting's code has %d digits; you typed %zu "
		         "\xE2\x80\x94 %s",
		         expected_len, n,
		         n < (size_t)expected_len
		             ? "check for a missing leading zero or digit"
		             : "check for an extra digit");
		r = GATE_CODE_ELENGTH;
		goto out;
	}
	*outlen = n;
	r = GATE_CODE_OK;
out:
	if (r != GATE_CODE_OK)
		sodium_memzero(out, outsize);
	return r;
}
