/*
 * The access-code strength policy: every rule a custom code must pass, each
 * with a stable name and a sentence a host understands. The same function
 * serves the API, the CLI and `roomgate code check`, and vets generated
 * codes. Pure: no I/O, no allocation.
 */
#include <stdio.h>
#include <string.h>

#include "server/codes.h"

static const char *const rule_names[GATE_CR_COUNT] = {
    "code_length", "code_all_same", "code_sequential",   "code_repeated",
    "code_keypad", "code_date",     "code_few_distinct", "code_common",
};

/* The shipped list of common PINs and numeric passwords (see the file for
 * the source of each group). */
static const char *const common_pins[] = {
#include "server/data/common_pins.inc"
};
#define NCOMMON (sizeof(common_pins) / sizeof(common_pins[0]))

const char *
gate_code_rule_name(int rule)
{
	return (rule >= 0 && rule < GATE_CR_COUNT) ? rule_names[rule] : NULL;
}

void
gate_code_policy_default(struct gate_code_policy *p)
{
	p->rules = GATE_CR_ALL;
	p->min_length = GATE_CODE_MIN_LEN;
	p->max_length = GATE_CODE_MAX_LEN;
}

int
gate_code_rules_parse(const char *list, unsigned *mask, char *err,
                      size_t errlen)
{
	unsigned m = 1u << GATE_CR_LENGTH;
	const char *p = list;

	while (*p != '\0') {
		const char *s;
		size_t n;
		int found = 0;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		s = p;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		n = (size_t)(p - s);
		if (n == 3 && strncmp(s, "all", 3) == 0) {
			m = GATE_CR_ALL;
			continue;
		}
		if (n > 5 && strncmp(s, "code_", 5) == 0) {
			s += 5;
			n -= 5;
		}
		for (int i = 0; i < GATE_CR_COUNT; i++) {
			const char *name = rule_names[i] + 5;

			if (strlen(name) == n && strncmp(name, s, n) == 0) {
				m |= 1u << i;
				found = 1;
			}
		}
		if (!found) {
			snprintf(err, errlen,
			         "unknown code rule \"%.*s\"; rules are all, "
			         "length, all_same, sequential, repeated, "
			         "keypad, date, few_distinct, common",
			         (int)(n > 40 ? 40 : n), s);
			return -1;
		}
	}
	*mask = m;
	return 0;
}

/* ---- the rules ------------------------------------------------------ */

static int
rule_all_same(const char *c, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (c[i] != c[0])
			return 0;
	return 1;
}

/* Constant step modulo 10 (so 890123 and 098765 count). Returns the step
 * in -4..5 (nonzero) or 0. */
static int
rule_step(const char *c, size_t n)
{
	int step = ((c[1] - c[0]) % 10 + 10) % 10;

	if (step == 0)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (((c[i] - c[i - 1]) % 10 + 10) % 10 != step)
			return 0;
	return step > 5 ? step - 10 : step;
}

/* Shortest period (2..n/2) such that the code is that block repeated, the
 * last copy possibly cut short: 1212, 123123, 4084084. 0 if none. */
static size_t
rule_period(const char *c, size_t n)
{
	for (size_t b = 2; b <= n / 2; b++) {
		size_t i;

		for (i = b; i < n; i++)
			if (c[i] != c[i - b])
				break;
		if (i == n)
			return b;
	}
	return 0;
}

static int
rule_mirror(const char *c, size_t n)
{
	for (size_t i = 0; i < n / 2; i++)
		if (c[i] != c[n - 1 - i])
			return 0;
	return 1;
}

/* 112233, 00998877: every digit typed twice. */
static int
rule_doubled(const char *c, size_t n)
{
	if (n % 2 != 0)
		return 0;
	for (size_t i = 0; i < n; i += 2)
		if (c[i] != c[i + 1])
			return 0;
	return 1;
}

/*
 * Keypads. Phone:      1 2 3     Numeric keypad:  7 8 9
 *                      4 5 6                      4 5 6
 *                      7 8 9                      1 2 3
 *                        0                        0 0 .
 * Rows and columns of 1-9 are the same lines on both, so one grid serves;
 * 0 sits under 8 on a phone and under 1 and 2 on a numeric keypad.
 * Positions are (row, col) on the phone layout.
 */
static const int key_row[10] = {3, 0, 0, 0, 1, 1, 1, 2, 2, 2};
static const int key_col[10] = {1, 0, 1, 2, 0, 1, 2, 0, 1, 2};

static int
absdiff(int a, int b)
{
	return a > b ? a - b : b - a;
}

/* Neighbours (8-connected) on either layout. */
static int
keys_adjacent(int a, int b)
{
	if (a == b)
		return 0;
	if (a != 0 && b != 0)
		return absdiff(key_row[a], key_row[b]) <= 1 &&
		       absdiff(key_col[a], key_col[b]) <= 1;
	if (b == 0)
		b = a; /* the other key is 0 */
	/* phone: 0 under 7 8 9; numeric keypad: 0 under 1 2 (and 3). */
	return b == 7 || b == 8 || b == 9 || b == 1 || b == 2 || b == 3;
}

/* Straight lines of three or more keys, read in either direction. */
static const char *const key_lines[] = {
    "123",  "456",  "789", "147",  "258",
    "369",  "159",  "357", "2580", /* phone: 0 below 8 */
    "7410", "8520",                /* numeric keypad: 0 below 1 and 2 */
};

/* Does c[0..n) start with a line segment of length >= 3? Returns the
 * longest such length, 0 if none. */
static size_t
line_prefix(const char *c, size_t n)
{
	size_t best = 0;

	for (size_t i = 0; i < sizeof(key_lines) / sizeof(key_lines[0]); i++) {
		const char *l = key_lines[i];
		size_t ll = strlen(l);

		for (size_t start = 0; start + 3 <= ll; start++) {
			for (size_t len = 3; start + len <= ll; len++) {
				size_t k;

				if (len > n)
					break;
				/* forwards */
				for (k = 0; k < len; k++)
					if (c[k] != l[start + k])
						break;
				if (k == len && len > best)
					best = len;
				/* backwards */
				for (k = 0; k < len; k++)
					if (c[k] != l[start + len - 1 - k])
						break;
				if (k == len && len > best)
					best = len;
			}
		}
	}
	return best;
}

/* The code splits into keypad lines (147258, 159753, 147852369): tried
 * with every split, since a shorter first line may be what fits. */
static int
lines_cover(const char *c, size_t n, int depth)
{
	if (n == 0)
		return 1;
	if (depth > GATE_CODE_MAX_LEN)
		return 0;
	for (size_t len = line_prefix(c, n); len >= 3; len--) {
		size_t best = line_prefix(c, len);

		if (best >= len && lines_cover(c + len, n - len, depth + 1))
			return 1;
	}
	return 0;
}

/* A walk from key to neighbouring key (147896325, 1236987). */
static int
keypad_walk(const char *c, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (!keys_adjacent(c[i - 1] - '0', c[i] - '0'))
			return 0;
	return 1;
}

/* ---- dates ---------------------------------------------------------- */

static int
num(const char *c, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++)
		v = v * 10 + (c[i] - '0');
	return v;
}

static int
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* y < 100: a two-digit year, valid if the date exists in 19yy or 20yy. */
static int
date_valid(int y, int m, int d)
{
	static const int mdays[12] = {31, 29, 31, 30, 31, 30,
	                              31, 31, 30, 31, 30, 31};

	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	if (m == 2 && d == 29) {
		if (y < 100)
			return leap(1900 + y) || leap(2000 + y);
		return leap(y);
	}
	return 1;
}

static int
year_ok(int y)
{
	return y >= 1900 && y <= 2099;
}

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};

/* Finds a reading of the code as a date; fills form and a human reading. */
static int
rule_date(const char *c, size_t n, char *form, size_t formlen, char *reading,
          size_t readlen)
{
	int y, m, d;

#define DATE_HIT(F, Y, M, D)                                                   \
	do {                                                                   \
		snprintf(form, formlen, "%s", F);                              \
		snprintf(reading, readlen, "%d %s %s%02d", D,                  \
		         month_names[(M)-1], (Y) < 100 ? "'" : "", Y);         \
		return 1;                                                      \
	} while (0)

	switch (n) {
	case 4:
		if (year_ok(y = num(c, 4))) {
			snprintf(form, formlen, "YYYY");
			snprintf(reading, readlen, "the year %d", y);
			return 1;
		}
		return 0;
	case 6:
		if (date_valid(y = num(c + 4, 2), m = num(c + 2, 2),
		               d = num(c, 2)))
			DATE_HIT("DDMMYY", y, m, d);
		if (date_valid(y = num(c + 4, 2), m = num(c, 2),
		               d = num(c + 2, 2)))
			DATE_HIT("MMDDYY", y, m, d);
		if (date_valid(y = num(c, 2), m = num(c + 2, 2),
		               d = num(c + 4, 2)))
			DATE_HIT("YYMMDD", y, m, d);
		if (year_ok(y = num(c + 2, 4)) && (m = num(c, 2)) >= 1 &&
		    m <= 12) {
			snprintf(form, formlen, "MMYYYY");
			snprintf(reading, readlen, "%s %d", month_names[m - 1],
			         y);
			return 1;
		}
		if (year_ok(y = num(c, 4)) && (m = num(c + 4, 2)) >= 1 &&
		    m <= 12) {
			snprintf(form, formlen, "YYYYMM");
			snprintf(reading, readlen, "%s %d", month_names[m - 1],
			         y);
			return 1;
		}
		return 0;
	case 7:
		/* Birthdays typed without the leading zero of day or month. */
		if (year_ok(y = num(c + 3, 4)) &&
		    date_valid(y, m = num(c + 1, 2), d = num(c, 1)))
			DATE_HIT("DMMYYYY", y, m, d);
		if (year_ok(y = num(c + 3, 4)) &&
		    date_valid(y, m = num(c, 1), d = num(c + 1, 2)))
			DATE_HIT("MDDYYYY", y, m, d);
		return 0;
	case 8:
		if (year_ok(y = num(c + 4, 4)) &&
		    date_valid(y, m = num(c + 2, 2), d = num(c, 2)))
			DATE_HIT("DDMMYYYY", y, m, d);
		if (year_ok(y = num(c + 4, 4)) &&
		    date_valid(y, m = num(c, 2), d = num(c + 2, 2)))
			DATE_HIT("MMDDYYYY", y, m, d);
		if (year_ok(y = num(c, 4)) &&
		    date_valid(y, m = num(c + 4, 2), d = num(c + 6, 2)))
			DATE_HIT("YYYYMMDD", y, m, d);
		/* Two years: a span like 19852015. */
		if (year_ok(num(c, 4)) && year_ok(num(c + 4, 4))) {
			snprintf(form, formlen, "YYYYYYYY");
			snprintf(reading, readlen, "the years %d and %d",
			         num(c, 4), num(c + 4, 4));
			return 1;
		}
		return 0;
	default:
		return 0;
	}
#undef DATE_HIT
}

/* Fewest distinct digits a code of length n must have. Random codes
 * rarely fall below this (about 1 in 125 at 8 digits). */
static size_t
min_distinct(size_t n)
{
	if (n <= 5)
		return 2;
	if (n <= 7)
		return 3;
	return 4;
}

static size_t
distinct(const char *c, size_t n)
{
	int seen[10] = {0};
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (!seen[c[i] - '0']++)
			k++;
	return k;
}

static int
on_common_list(const char *c, size_t n)
{
	for (size_t i = 0; i < NCOMMON; i++)
		if (strlen(common_pins[i]) == n &&
		    memcmp(common_pins[i], c, n) == 0)
			return 1;
	return 0;
}

int
gate_code_check(const struct gate_code_policy *p, const char *c, size_t n,
                struct gate_code_verdict *v)
{
	char form[16], reading[64];
	unsigned on = p->rules | (1u << GATE_CR_LENGTH);
	int step, ln;
	size_t per;

	memset(v, 0, sizeof(*v));
	v->first = -1;
	if (n == 0 || n > GATE_CODE_MAX_INPUT)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (c[i] < '0' || c[i] > '9')
			return -1;
	ln = (int)n;

#define FAIL(rule, ...)                                                        \
	do {                                                                   \
		v->failed |= 1u << (rule);                                     \
		snprintf(v->why[rule], GATE_CODE_WHY, __VA_ARGS__);            \
	} while (0)

	if (ln < p->min_length)
		FAIL(GATE_CR_LENGTH,
		     "the code has %d digits; codes need at least %d so that "
		     "guessing takes long enough",
		     ln, p->min_length);
	else if (ln > p->max_length)
		FAIL(GATE_CR_LENGTH,
		     "the code has %d digits; codes have at most %d so that "
		     "people can type them",
		     ln, p->max_length);
	if (n < 2)
		goto done;
	if ((on & (1u << GATE_CR_ALL_SAME)) && rule_all_same(c, n))
		FAIL(GATE_CR_ALL_SAME,
		     "%.*s is one digit repeated; it is among the first codes "
		     "anyone tries",
		     ln, c);
	if ((on & (1u << GATE_CR_SEQUENTIAL)) && n >= 3 &&
	    (step = rule_step(c, n)) != 0) {
		if (step == 1 || step == -1)
			FAIL(GATE_CR_SEQUENTIAL,
			     "%.*s is a run of consecutive digits (%s); "
			     "anyone would try it first",
			     ln, c, step > 0 ? "counting up" : "counting down");
		else
			FAIL(GATE_CR_SEQUENTIAL,
			     "%.*s counts %s in steps of %d; a guesser tries "
			     "such runs early",
			     ln, c, step > 0 ? "up" : "down",
			     step > 0 ? step : -step);
	}
	if ((on & (1u << GATE_CR_REPEATED)) && !rule_all_same(c, n)) {
		if ((per = rule_period(c, n)) != 0)
			FAIL(GATE_CR_REPEATED,
			     "%.*s repeats the block %.*s; a repeated block is "
			     "much easier to guess than %d independent digits",
			     ln, c, (int)per, c, ln);
		else if (n >= 4 && rule_mirror(c, n))
			FAIL(GATE_CR_REPEATED,
			     "%.*s reads the same backwards; mirrored codes "
			     "are a common human pattern",
			     ln, c);
		else if (n >= 4 && rule_doubled(c, n))
			FAIL(GATE_CR_REPEATED,
			     "%.*s types each digit twice; doubled digits are "
			     "a common human pattern",
			     ln, c);
	}
	if ((on & (1u << GATE_CR_KEYPAD)) && n >= 4 &&
	    (lines_cover(c, n, 0) || keypad_walk(c, n)))
		FAIL(GATE_CR_KEYPAD,
		     "%.*s traces a pattern on a phone or keyboard keypad; "
		     "shapes like 2580 or 147258 are guessed early",
		     ln, c);
	if ((on & (1u << GATE_CR_DATE)) &&
	    rule_date(c, n, form, sizeof(form), reading, sizeof(reading)))
		FAIL(GATE_CR_DATE,
		     "%.*s reads as a date (%s: %s); birthdays and "
		     "anniversaries are among the first guesses",
		     ln, c, form, reading);
	if ((on & (1u << GATE_CR_FEW_DISTINCT)) &&
	    distinct(c, n) < min_distinct(n))
		FAIL(GATE_CR_FEW_DISTINCT,
		     "%.*s uses only %zu different digits; a %d-digit code "
		     "needs at least %zu",
		     ln, c, distinct(c, n), ln, min_distinct(n));
	if ((on & (1u << GATE_CR_COMMON)) && on_common_list(c, n))
		FAIL(GATE_CR_COMMON,
		     "%.*s is on the list of the most common PINs and numeric "
		     "passwords; attackers try that list first",
		     ln, c);
#undef FAIL
done:
	for (int i = 0; i < GATE_CR_COUNT; i++) {
		if (v->failed & (1u << i)) {
			v->first = i;
			break;
		}
	}
	return v->failed != 0 ? 1 : 0;
}
