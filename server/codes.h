/*
 * Private to server/ (and its tests): access codes -- the strength policy,
 * the generator, normalization of typed codes, and keyed hashing / sealing
 * for storage.
 *
 * Everything here is pure (no I/O, no database) so the API, the CLI and
 * `roomgate code check` run the same rules and the unit tests can drive
 * them with large tables.
 *
 * A code is a string of ASCII digits, 6 to 12 long, leading zeros
 * significant. Buffers that hold a code are the caller's; wipe them with
 * sodium_memzero() when done. No function here logs anything.
 */
#ifndef ROOMGATE_CODES_H
#define ROOMGATE_CODES_H

#include <stddef.h>
#include <stdint.h>

#define GATE_CODE_MIN_LEN 6
#define GATE_CODE_MAX_LEN 12
#define GATE_CODE_DEFAULT_LEN 8
/* Longest typed input accepted before normalization (bytes). */
#define GATE_CODE_MAX_INPUT 128
/* Room for a code and its NUL. */
#define GATE_CODE_BUF (GATE_CODE_MAX_LEN + 1)

/* ---- strength policy (codes_policy.c) --------------------------------- */

/* The rules, in the order a verdict reports them. Names are stable API
 * error codes (gate_code_rule_name). */
enum gate_code_rule {
	GATE_CR_LENGTH = 0,   /* code_length */
	GATE_CR_ALL_SAME,     /* code_all_same */
	GATE_CR_SEQUENTIAL,   /* code_sequential */
	GATE_CR_REPEATED,     /* code_repeated */
	GATE_CR_KEYPAD,       /* code_keypad */
	GATE_CR_DATE,         /* code_date */
	GATE_CR_FEW_DISTINCT, /* code_few_distinct */
	GATE_CR_COMMON,       /* code_common */
	GATE_CR_COUNT
};
#define GATE_CR_ALL ((1u << GATE_CR_COUNT) - 1u)

struct gate_code_policy {
	unsigned rules; /* bit (1u << enum gate_code_rule) per rule on */
	int min_length; /* custom codes shorter than this fail code_length */
	int max_length; /* longer ones too (<= GATE_CODE_MAX_LEN) */
};

#define GATE_CODE_WHY 200
struct gate_code_verdict {
	unsigned failed; /* bit per failed rule */
	int first;       /* first failed rule, or -1 when the code passed */
	/* A sentence per failed rule that a person understands. It quotes
	 * the code: show it to whoever chose the code, never log it. */
	char why[GATE_CR_COUNT][GATE_CODE_WHY];
};

/* All rules on, lengths 6..12. */
void gate_code_policy_default(struct gate_code_policy *p);

/*
 * Parses a rule list for [codes] rules: "all", or names separated by commas
 * and/or spaces, with or without the "code_" prefix ("sequential, date").
 * code_length is always on. -1 with a message naming the unknown rule.
 */
int gate_code_rules_parse(const char *list, unsigned *mask, char *err,
                          size_t errlen);

/* "code_sequential"... NULL for an unknown rule. */
const char *gate_code_rule_name(int rule);

/*
 * Runs every enabled rule on code[0..len) (ASCII digits only; anything
 * else is -1, a caller bug: normalize first). Returns 0 when the code
 * passes, 1 when it fails at least one rule (v says which and why).
 */
int gate_code_check(const struct gate_code_policy *p, const char *code,
                    size_t len, struct gate_code_verdict *v);

/* ---- generator (codes_gen.c) -------------------------------------------- */

/*
 * Draws a code of length digits (6..12) from libsodium's CSPRNG, each digit
 * uniform (randombytes_uniform: no modulo bias, leading zeros allowed),
 * redrawing whole codes until one passes policy p (its length limits are
 * ignored: the meeting's length decides). out receives length digits and a
 * NUL; outlen >= length + 1. -1 on bad arguments or if no passing code
 * came up in many draws (a policy that rejects nearly everything).
 */
int gate_code_generate(const struct gate_code_policy *p, int length, char *out,
                       size_t outlen);

/* ---- typed codes (codes_normalize.c) ------------------------------------ */

enum {
	GATE_CODE_OK = 0,
	GATE_CODE_EFORMAT = -1, /* not a code: err says what was wrong */
	GATE_CODE_ELENGTH = -2  /* digits, but not the expected count */
};

/*
 * Normalizes what a person typed: drops spaces, hyphens, dots (ASCII and
 * their common Unicode forms), maps every Unicode decimal digit (Nd) to
 * ASCII, and rejects anything else, naming the character and its position.
 * in is UTF-8 of inlen bytes (at most GATE_CODE_MAX_INPUT). On success out
 * holds the digits and a NUL, *outlen their count. expected_len > 0: a
 * different count is GATE_CODE_ELENGTH ("this meeting's code has 8 digits;
 * you typed 7 -- check for a missing leading zero"). out is wiped on
 * failure. The messages never quote the digits typed.
 */
int gate_code_normalize(const char *in, size_t inlen, int expected_len,
                        char *out, size_t outsize, size_t *outlen, char *err,
                        size_t errlen);

/* ---- storage (codes_store.c) ------------------------------------------- */

#define GATE_CODE_HASH_LEN 32 /* HMAC-SHA-256 */
/* nonce (24) + MAC (16) + code */
#define GATE_CODE_SEALED_MAX (24 + 16 + GATE_CODE_MAX_LEN)

/*
 * HMAC-SHA-256 under key (the key file's code_hmac) of a domain tag, the
 * meeting id and the code, so a hash is useless for any other meeting.
 * Verification of a typed code costs one call to this.
 */
void gate_code_hash(const unsigned char key[32], const char *meeting_id,
                    const char *code, size_t len,
                    unsigned char out[GATE_CODE_HASH_LEN]);

/* Seals code with key (code_seal) in a libsodium secretbox with a random
 * nonce: out = nonce || box. *outlen = 24 + 16 + len. */
int gate_code_seal(const unsigned char key[32], const char *code, size_t len,
                   unsigned char *out, size_t outsize, size_t *outlen);
/* Opens it again into out (digits + NUL). -1 if forged or the wrong key. */
int gate_code_unseal(const unsigned char key[32], const unsigned char *in,
                     size_t inlen, char *out, size_t outsize);

#endif
