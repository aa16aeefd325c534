/*
 * libFuzzer target: the checkpoint journal's anchor-line parser
 * (gate_audit_anchor_parse in server/audit_canon.c), what `roomgate audit
 * verify --anchor FILE` runs on every line of an untrusted file, and the
 * checkpoint body it rebuilds from the line (gate_audit_ckpt_body /
 * _parse). A key is made at start from a fixed seed. Checks contracts:
 *  - 0 ("no anchor here") only for a line without the marker;
 *  - an accepted line holds valid values (seq and count 1 or more, a
 *    16-hex kid, a time without separators), writes back to a line that
 *    parses to the same values, and its checkpoint body parses back to
 *    the same checkpoint (what verify compares with the database);
 *  - the accepted values signed with the key make a line that verifies;
 *    that line with one byte flipped is refused, does not verify, or
 *    says exactly the same (a hex digit's case, say).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/audit_key.h"
#include "server/audit_seal.h"

#define MARK "roomgate-audit-anchor-v1 "

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gate_audit_key key;
static int ready;

static void
setup(void)
{
	unsigned char seed[32];

	if (ready)
		return;
	if (sodium_init() < 0)
		abort();
	memset(seed, 0x61, sizeof(seed));
	crypto_sign_seed_keypair(key.pk, key.sk, seed);
	gate_audit_kid(key.pk, key.kid);
	ready = 1;
}

/* Member by member (the struct has padding). */
static int
ckpt_eq(const struct gate_audit_ckpt *a, const struct gate_audit_ckpt *b)
{
	return strcmp(a->kid, b->kid) == 0 && a->last_seq == b->last_seq &&
	       a->count == b->count &&
	       memcmp(a->last_hash, b->last_hash, 32) == 0 &&
	       strcmp(a->time, b->time) == 0;
}

static int
same(const struct gate_audit_ckpt *a, const unsigned char asig[64],
     const struct gate_audit_ckpt *b, const unsigned char bsig[64])
{
	return ckpt_eq(a, b) && memcmp(asig, bsig, 64) == 0;
}

/* 1 when line is an anchor signed by key, c and sig then filled. */
static int
verifies(const char *line, struct gate_audit_ckpt *c, unsigned char sig[64])
{
	char body[512];
	int n;

	if (gate_audit_anchor_parse(line, c, sig) != 1 ||
	    strcmp(c->kid, key.kid) != 0)
		return 0;
	n = gate_audit_ckpt_body(c, body, sizeof(body));
	return n > 0 && gate_audit_verify(key.pk, (const unsigned char *)body,
	                                  (size_t)n, sig) == 0;
}

static void
accepted(const struct gate_audit_ckpt *c, const unsigned char sig[64],
         const uint8_t *data, size_t size)
{
	struct gate_audit_ckpt c2, mine = *c;
	unsigned char sig2[64], msig[64];
	char line[1024], body[512];
	size_t len, t;
	int n;
	unsigned h = 2166136261u;

	if (c->last_seq <= 0 || c->count <= 0 || strlen(c->kid) != 16 ||
	    strspn(c->kid, "0123456789abcdef") != 16 || c->time[0] == '\0' ||
	    strpbrk(c->time, " \"\\\r\n") != NULL)
		abort();
	/* Written back, parsed again: the same. */
	if (gate_audit_anchor_line(c, sig, line, sizeof(line)) < 0 ||
	    gate_audit_anchor_parse(line, &c2, sig2) != 1 ||
	    !same(c, sig, &c2, sig2))
		abort();
	/* The body verify rebuilds parses back to the same checkpoint. */
	n = gate_audit_ckpt_body(c, body, sizeof(body));
	if (n < 0 || gate_audit_ckpt_parse(body, (size_t)n, &c2) != 0 ||
	    !ckpt_eq(&c2, c))
		abort();
	/* Signed with the key: verifies. */
	memcpy(mine.kid, key.kid, sizeof(mine.kid));
	n = gate_audit_ckpt_body(&mine, body, sizeof(body));
	if (n < 0)
		abort();
	gate_audit_sign(&key, (const unsigned char *)body, (size_t)n, msig);
	if (gate_audit_anchor_line(&mine, msig, line, sizeof(line)) < 0 ||
	    !verifies(line, &c2, sig2) || !same(&mine, msig, &c2, sig2))
		abort();
	/* One byte flipped: refused, or the very same checkpoint. */
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	len = strlen(line);
	t = h % len;
	line[t] = (char)(line[t] ^ (1 + (h >> 8) % 255));
	if (line[t] == '\0')
		line[t] = '\n';
	if (verifies(line, &c2, sig2) && !same(&mine, msig, &c2, sig2))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gate_audit_ckpt c;
	unsigned char sig[64];
	char *s = malloc(size + 1);
	int r;

	if (s == NULL)
		return 0;
	setup();
	memcpy(s, data, size);
	s[size] = '\0';
	r = gate_audit_anchor_parse(s, &c, sig);
	if (r == 0 && strstr(s, MARK) != NULL)
		abort();
	if (r == 1)
		accepted(&c, sig, data, size);
	free(s);
	return 0;
}
