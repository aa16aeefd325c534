/*
 * libFuzzer target: the export manifest's check (gate_export_manifest_check
 * in server/audit_export_parse.c), what `roomgate audit verify-export` and
 * `roomgate audit verify --anchor MANIFEST` run on an untrusted file.
 * Two keys are made at start from fixed seeds (nothing is stored). Checks
 * contracts, not just absence of crashes:
 *  - the input as given: a refusal always says why; an accepted manifest
 *    holds only valid values (format, counts, a range that fits the count,
 *    a checkpoint whose body re-parses and whose signature verifies);
 *  - the input re-signed (the manifest and, when its last_checkpoint body
 *    parses, the checkpoint, with one of the two keys): it never fails on
 *    a signature, and when accepted its canonical hash is that of the
 *    text signed;
 *  - that signed text with one byte flipped: either refused, or it says
 *    exactly the same (same canonical hash, same values) -- a flip may hit
 *    insignificant whitespace, never a value.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "server/audit_export.h"
#include "server/audit_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gate_audit_key keys[2];
static unsigned char pks[2][32];
static char kids[2][17];
static int ready;

static void
setup(void)
{
	unsigned char seed[32];

	if (ready)
		return;
	if (sodium_init() < 0)
		abort();
	for (int i = 0; i < 2; i++) {
		memset(seed, 0x41 + i, sizeof(seed));
		crypto_sign_seed_keypair(keys[i].pk, keys[i].sk, seed);
		gate_audit_kid(keys[i].pk, keys[i].kid);
		memcpy(pks[i], keys[i].pk, 32);
		memcpy(kids[i], keys[i].kid, 17);
	}
	ready = 1;
}

static int
check(const char *text, size_t len, struct gate_export_manifest *m,
      char *err, size_t errlen)
{
	return gate_export_manifest_check(text, len,
	                                  (const unsigned char(*)[32])pks,
	                                  (const char(*)[17])kids, 2, m, err,
	                                  errlen);
}

/* Member by member (the structs have padding). */
static int
ckpt_eq(const struct gate_audit_ckpt *a, const struct gate_audit_ckpt *b)
{
	return strcmp(a->kid, b->kid) == 0 && a->last_seq == b->last_seq &&
	       a->count == b->count &&
	       memcmp(a->last_hash, b->last_hash, 32) == 0 &&
	       strcmp(a->time, b->time) == 0;
}

static int
manifest_eq(const struct gate_export_manifest *a,
            const struct gate_export_manifest *b)
{
	return a->format == b->format && a->count == b->count &&
	       a->bytes == b->bytes && memcmp(a->sha256, b->sha256, 32) == 0 &&
	       strcmp(a->kid, b->kid) == 0 &&
	       strcmp(a->export_id, b->export_id) == 0 &&
	       a->first_seq == b->first_seq && a->last_seq == b->last_seq &&
	       a->filtered == b->filtered && a->have_ckpt == b->have_ckpt &&
	       a->ckpt_id == b->ckpt_id && ckpt_eq(&a->ckpt, &b->ckpt) &&
	       memcmp(a->ckpt_sig, b->ckpt_sig, 64) == 0 &&
	       memcmp(a->canon_sha256, b->canon_sha256, 32) == 0;
}

/* What an accepted manifest must hold. */
static void
contracts(const struct gate_export_manifest *m)
{
	char body[512];
	struct gate_audit_ckpt back;
	int n, k;

	if (m->format != GATE_EXPORT_CSV && m->format != GATE_EXPORT_JSONL)
		abort();
	if (m->count < 0 || m->bytes < 0)
		abort();
	if ((m->count == 0) != (m->first_seq == 0) ||
	    (m->count == 0) != (m->last_seq == 0))
		abort();
	if (m->count > 0 && (m->first_seq <= 0 || m->first_seq > m->last_seq ||
	                     m->last_seq - m->first_seq < m->count - 1))
		abort();
	if (strcmp(m->kid, kids[0]) != 0 && strcmp(m->kid, kids[1]) != 0)
		abort();
	if (strlen(m->export_id) != 36)
		abort();
	if (!m->have_ckpt)
		return;
	if (m->ckpt.last_seq <= 0 || m->ckpt.count <= 0 || m->ckpt_id <= 0)
		abort();
	k = strcmp(m->ckpt.kid, kids[0]) == 0   ? 0
	    : strcmp(m->ckpt.kid, kids[1]) == 0 ? 1
	                                        : -1;
	if (k < 0)
		abort();
	n = gate_audit_ckpt_body(&m->ckpt, body, sizeof(body));
	if (n < 0 || gate_audit_ckpt_parse(body, (size_t)n, &back) != 0 ||
	    !ckpt_eq(&back, &m->ckpt) ||
	    gate_audit_verify(pks[k], (const unsigned char *)body, (size_t)n,
	                      m->ckpt_sig) != 0)
		abort();
}

/* Re-signs the checkpoint inside cp with key k when its body parses. */
static void
resign_ckpt(json_t *cp, int k)
{
	const char *body = json_string_value(json_object_get(cp, "body"));
	struct gate_audit_ckpt c;
	unsigned char sig[64];
	char nb[512], hex[65],
	    b64[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
	int n;

	if (body == NULL || gate_audit_ckpt_parse(body, strlen(body), &c) != 0)
		return;
	memcpy(c.kid, kids[k], 17);
	n = gate_audit_ckpt_body(&c, nb, sizeof(nb));
	if (n < 0)
		return;
	gate_audit_sign(&keys[k], (const unsigned char *)nb, (size_t)n, sig);
	sodium_bin2base64(b64, sizeof(b64), sig, 64,
	                  sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2hex(hex, sizeof(hex), c.last_hash, 32);
	json_object_set_new(cp, "body", json_string(nb));
	json_object_set_new(cp, "kid", json_string(c.kid));
	json_object_set_new(cp, "last_seq", json_integer(c.last_seq));
	json_object_set_new(cp, "count", json_integer(c.count));
	json_object_set_new(cp, "last_hash", json_string(hex));
	json_object_set_new(cp, "sig", json_string(b64));
}

static void
resigned(const uint8_t *data, size_t size)
{
	struct gate_export_manifest m, m2;
	json_t *j = json_loadb((const char *)data, size, 0, NULL), *cp;
	unsigned char sig[64], want[32];
	char b64[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
	char *canon = NULL, *text = NULL, err[1024];
	size_t len, pos;
	int k = size > 0 ? data[0] & 1 : 0, r, r2;
	unsigned h = 2166136261u;

	if (j == NULL || !json_is_object(j))
		goto out;
	cp = json_object_get(j, "last_checkpoint");
	if (json_is_object(cp))
		resign_ckpt(cp, size > 1 ? data[1] & 1 : 0);
	json_object_set_new(j, "key_id", json_string(kids[k]));
	json_object_del(j, "signature");
	canon = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	if (canon == NULL)
		goto out;
	gate_audit_sign(&keys[k], (const unsigned char *)canon, strlen(canon),
	                sig);
	crypto_hash_sha256(want, (const unsigned char *)canon, strlen(canon));
	sodium_bin2base64(b64, sizeof(b64), sig, 64,
	                  sodium_base64_VARIANT_ORIGINAL);
	json_object_set_new(j, "signature", json_string(b64));
	text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	if (text == NULL)
		goto out;
	len = strlen(text);
	err[0] = '\0';
	r = check(text, len, &m, err, sizeof(err));
	if (r != 0) {
		if (err[0] == '\0')
			abort();
		/* Signed right: refused for what it says, never for its
		 * signature (a checkpoint signed by the other known key is
		 * fine too). */
		if (len <= GATE_EXPORT_MANIFEST_MAX &&
		    strstr(err, "manifest's signature") != NULL)
			abort();
		goto out;
	}
	contracts(&m);
	if (memcmp(m.canon_sha256, want, 32) != 0)
		abort();
	/* One byte flipped. */
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	pos = h % len;
	text[pos] = (char)(text[pos] ^ (1 + (h >> 8) % 255));
	r2 = check(text, len, &m2, err, sizeof(err));
	if (r2 == 0 && !manifest_eq(&m, &m2))
		abort();
out:
	free(canon);
	free(text);
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gate_export_manifest m;
	char err[1024];

	setup();
	err[0] = '\0';
	if (check((const char *)data, size, &m, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort();
	} else {
		contracts(&m);
	}
	resigned(data, size);
	return 0;
}
