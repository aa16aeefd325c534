/*
 * libFuzzer target: typed access codes and the strength policy
 * (server/codes_normalize.c, server/codes_policy.c).
 *
 * Input: byte 0 picks the meeting's code length (0: any, else 6..12) and
 * byte 1 the policy's rule mask; the rest is what a person typed (UTF-8
 * or not). Checks the contract, not just absence of crashes:
 *  - normalize: on success the output is outlen ASCII digits (1..12, the
 *    expected count when one was given) and normalizing it again gives
 *    it back; on failure there is a message and the output is all zeros;
 *  - the policy: 0 exactly when no rule failed, every failed rule is an
 *    enabled one (or the length rule) and has a sentence, first is the
 *    lowest failed rule; a non-digit string is refused (-1);
 *  - the rule-list parser: success always keeps the length rule on.
 * Run: build/fuzz/fuzz_codes tests/fuzz/corpus/codes
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/codes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_verdict(const struct gate_code_policy *p, const char *c, size_t n)
{
	struct gate_code_verdict v;
	int r, digits = n > 0;
	unsigned allowed = p->rules | (1u << GATE_CR_LENGTH);

	for (size_t i = 0; i < n; i++)
		if (c[i] < '0' || c[i] > '9')
			digits = 0;
	r = gate_code_check(p, c, n, &v);
	if (!digits || n > GATE_CODE_MAX_INPUT) {
		if (r != -1)
			abort();
		return;
	}
	if (r != (v.failed != 0 ? 1 : 0))
		abort();
	if ((v.failed & ~allowed) != 0)
		abort();
	if (v.failed == 0 && v.first != -1)
		abort();
	for (int i = 0; i < GATE_CR_COUNT; i++) {
		int bit = (v.failed >> i) & 1u;

		if (memchr(v.why[i], '\0', GATE_CODE_WHY) == NULL)
			abort();
		if (bit && v.why[i][0] == '\0')
			abort();
		if (bit && v.first > i)
			abort();
		if (bit && gate_code_rule_name(i) == NULL)
			abort();
	}
	if (v.first >= 0 && !((v.failed >> v.first) & 1u))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gate_code_policy pol;
	char out[GATE_CODE_BUF], again[GATE_CODE_BUF], err[256], *list;
	const char *typed;
	size_t outlen = 0, againlen = 0, n;
	int expected = 0, r;
	unsigned mask = 0;

	if (size < 2)
		return 0;
	if (data[0] % 8 != 0)
		expected = GATE_CODE_MIN_LEN + data[0] % 7;
	gate_code_policy_default(&pol);
	pol.rules = data[1] & GATE_CR_ALL;
	typed = (const char *)data + 2;
	n = size - 2;

	err[0] = '\0';
	r = gate_code_normalize(typed, n, expected, out, sizeof(out), &outlen,
	                        err, sizeof(err));
	if (r == GATE_CODE_OK) {
		if (outlen == 0 || outlen > GATE_CODE_MAX_LEN ||
		    strlen(out) != outlen)
			abort();
		if (expected > 0 && outlen != (size_t)expected)
			abort();
		for (size_t i = 0; i < outlen; i++)
			if (out[i] < '0' || out[i] > '9')
				abort();
		if (gate_code_normalize(out, outlen, expected, again,
		                        sizeof(again), &againlen, err,
		                        sizeof(err)) != GATE_CODE_OK ||
		    againlen != outlen || memcmp(again, out, outlen) != 0)
			abort();
		check_verdict(&pol, out, outlen);
		gate_code_policy_default(&pol);
		check_verdict(&pol, out, outlen);
	} else {
		if (r != GATE_CODE_EFORMAT && r != GATE_CODE_ELENGTH)
			abort();
		if (err[0] == '\0' || outlen != 0)
			abort();
		for (size_t i = 0; i < sizeof(out); i++)
			if (out[i] != '\0')
				abort();
	}

	/* The policy on raw bytes: digits of any length up to the input
	 * limit, and the refusal of anything else. */
	check_verdict(&pol, typed, n);

	/* The same bytes as a [codes] rules list. */
	list = malloc(n + 1);
	if (list == NULL)
		return 0;
	memcpy(list, typed, n);
	list[n] = '\0';
	err[0] = '\0';
	if (gate_code_rules_parse(list, &mask, err, sizeof(err)) == 0) {
		if (!(mask & (1u << GATE_CR_LENGTH)) || (mask & ~GATE_CR_ALL))
			abort();
	} else if (err[0] == '\0') {
		abort();
	}
	free(list);
	return 0;
}
