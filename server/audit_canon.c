/*
 * server/audit_canon.c -- the audit chain's canonical encoding, pure (no
 * I/O, no database, no threads): record content hashes, link hashes, the
 * signed checkpoint text and the checkpoint journal's anchor lines.
 * Shared by the sealer and `audit verify` (audit_seal.c), the offline
 * export check (audit_export.c, audit_export_parse.c) and the libFuzzer
 * targets (tests/fuzz/fuzz_anchor.c, fuzz_manifest.c). Declared in
 * server/audit_seal.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/audit_seal.h"

#define RECORD_DOMAIN "roomgate-audit-record-v1\n"
#define LINK_DOMAIN "roomgate-audit-link-v1\n"
#define CKPT_HEADER "roomgate-audit-checkpoint-v1"

/* ---- canonical encoding ---------------------------------------------------- */

static void
be64(unsigned char out[8], unsigned long long v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

void
gate_audit_content_hash(const char *const f[], const size_t len[],
			unsigned char out[32])
{
	crypto_hash_sha256_state st;
	unsigned char l[4];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)RECORD_DOMAIN,
				  strlen(RECORD_DOMAIN));
	for (int i = 0; i < DB_AUDIT_NFIELDS; i++) {
		unsigned long v = f[i] == NULL ? 0xFFFFFFFFul
					       : (unsigned long)len[i];

		l[0] = (unsigned char)(v >> 24);
		l[1] = (unsigned char)(v >> 16);
		l[2] = (unsigned char)(v >> 8);
		l[3] = (unsigned char)v;
		crypto_hash_sha256_update(&st, l, 4);
		if (f[i] != NULL && len[i] > 0)
			crypto_hash_sha256_update(
				&st, (const unsigned char *)f[i], len[i]);
	}
	crypto_hash_sha256_final(&st, out);
}

void
gate_audit_link_hash(const unsigned char prev[32], long long pos,
		     long long seq, const unsigned char content[32],
		     unsigned char out[32])
{
	crypto_hash_sha256_state st;
	unsigned char n[8];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)LINK_DOMAIN,
				  strlen(LINK_DOMAIN));
	crypto_hash_sha256_update(&st, prev, 32);
	be64(n, (unsigned long long)pos);
	crypto_hash_sha256_update(&st, n, 8);
	be64(n, (unsigned long long)seq);
	crypto_hash_sha256_update(&st, n, 8);
	crypto_hash_sha256_update(&st, content, 32);
	crypto_hash_sha256_final(&st, out);
}

int
gate_audit_ckpt_body(const struct gate_audit_ckpt *c, char *out,
		     size_t outlen)
{
	char hex[65];
	int n;

	sodium_bin2hex(hex, sizeof(hex), c->last_hash, 32);
	n = snprintf(out, outlen,
		     CKPT_HEADER "\nkid %s\nlast_seq %lld\ncount %lld\n"
				 "last_hash %s\ntime %s\n",
		     c->kid, c->last_seq, c->count, hex, c->time);
	return (n < 0 || (size_t)n >= outlen) ? -1 : n;
}

int
gate_audit_ckpt_parse(const char *body, size_t len, struct gate_audit_ckpt *c)
{
	char again[1024], hex[65], *end;
	const char *p;
	size_t bl = 0;

	/* Parse the fields out, then insist that writing them back gives
	 * exactly body: one spelling per checkpoint. */
	memset(c, 0, sizeof(*c));
	if (len >= sizeof(again) || memchr(body, '\0', len) != NULL)
		return -1;
	p = strstr(body, "\nkid ");
	if (p == NULL || strlen(p + 5) < 16)
		return -1;
	memcpy(c->kid, p + 5, 16);
	p = strstr(body, "\nlast_seq ");
	if (p == NULL)
		return -1;
	c->last_seq = strtoll(p + 10, &end, 10);
	p = strstr(body, "\ncount ");
	if (p == NULL)
		return -1;
	c->count = strtoll(p + 7, &end, 10);
	p = strstr(body, "\nlast_hash ");
	if (p == NULL || strlen(p + 11) < 64)
		return -1;
	memcpy(hex, p + 11, 64);
	hex[64] = '\0';
	if (sodium_hex2bin(c->last_hash, 32, hex, 64, NULL, &bl, NULL) != 0 ||
	    bl != 32)
		return -1;
	p = strstr(body, "\ntime ");
	if (p == NULL)
		return -1;
	end = strchr(p + 6, '\n');
	if (end == NULL || (size_t)(end - (p + 6)) >= sizeof(c->time))
		return -1;
	memcpy(c->time, p + 6, (size_t)(end - (p + 6)));
	if (gate_audit_ckpt_body(c, again, sizeof(again)) != (int)len ||
	    memcmp(again, body, len) != 0)
		return -1;
	return 0;
}

/* ---- the checkpoint journal (anchors outside the database) -------------- */

#define ANCHOR_MARK "roomgate-audit-anchor-v1 "

int
gate_audit_anchor_line(const struct gate_audit_ckpt *c,
		       const unsigned char sig[64], char *out, size_t outlen)
{
	char hex[65], shex[129];
	int n;

	sodium_bin2hex(hex, sizeof(hex), c->last_hash, 32);
	sodium_bin2hex(shex, sizeof(shex), sig, 64);
	n = snprintf(out, outlen,
		     ANCHOR_MARK "last_seq=%lld count=%lld last_hash=%s "
				 "kid=%s time=%s sig=%s",
		     c->last_seq, c->count, hex, c->kid, c->time, shex);
	return (n < 0 || (size_t)n >= outlen) ? -1 : n;
}

/* Copies the value of "key=" at *p (up to a space, quote, backslash or
 * the end) into out and moves *p past it and one space; -1 otherwise. */
static int
anchor_field(const char **p, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key), n;

	if (strncmp(*p, key, kl) != 0)
		return -1;
	*p += kl;
	n = strcspn(*p, " \"\\\r\n");
	if (n == 0 || n >= outlen)
		return -1;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p += n;
	if (**p == ' ')
		(*p)++;
	return 0;
}

static int
parse_num(const char *s, long long *out)
{
	char *end;

	if (strspn(s, "0123456789") != strlen(s))
		return -1;
	*out = strtoll(s, &end, 10);
	return *end == '\0' && *out > 0 ? 0 : -1;
}

int
gate_audit_anchor_parse(const char *line, struct gate_audit_ckpt *c,
			unsigned char sig[64])
{
	const char *p = strstr(line, ANCHOR_MARK);
	char seq[24], count[24], hex[65], kid[17], shex[129];
	size_t bl = 0;

	memset(c, 0, sizeof(*c));
	if (p == NULL)
		return 0;
	p += strlen(ANCHOR_MARK);
	if (anchor_field(&p, "last_seq=", seq, sizeof(seq)) != 0 ||
	    anchor_field(&p, "count=", count, sizeof(count)) != 0 ||
	    anchor_field(&p, "last_hash=", hex, sizeof(hex)) != 0 ||
	    anchor_field(&p, "kid=", kid, sizeof(kid)) != 0 ||
	    anchor_field(&p, "time=", c->time, sizeof(c->time)) != 0 ||
	    anchor_field(&p, "sig=", shex, sizeof(shex)) != 0 ||
	    parse_num(seq, &c->last_seq) != 0 ||
	    parse_num(count, &c->count) != 0 || strlen(kid) != 16 ||
	    strspn(kid, "0123456789abcdef") != 16 ||
	    sodium_hex2bin(c->last_hash, 32, hex, strlen(hex), NULL, &bl,
			   NULL) != 0 ||
	    bl != 32 ||
	    sodium_hex2bin(sig, 64, shex, strlen(shex), NULL, &bl, NULL) !=
		    0 ||
	    bl != 64)
		return -1;
	memcpy(c->kid, kid, sizeof(c->kid));
	return 1;
}
