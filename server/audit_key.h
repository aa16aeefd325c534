/*
 * server/audit_key.h -- the audit signing key: Ed25519 (libsodium) for the
 * audit chain's checkpoints (server/audit_seal.c) and export manifests.
 *
 * Key files are text, one "name value" line each, values in lowercase hex:
 *
 *   secret key file (mode 0600; `roomgate audit keygen --out FILE`):
 *     roomgate-audit-key-v1
 *     kid <16 hex>
 *     seed <64 hex>          the 32-byte Ed25519 seed
 *
 *   public key file (FILE.pub beside it; `roomgate audit public-key`):
 *     roomgate-audit-public-key-v1
 *     kid <16 hex>
 *     public <64 hex>        the 32-byte Ed25519 public key
 *
 * kid is the first 8 bytes of SHA-256(public key) in hex, so a reader can
 * check that a kid and a key belong together; loading checks it. Lines end
 * in "\n"; nothing else is allowed (no blank lines, no comments), and a
 * file is at most 1 KiB.
 *
 * Functions returning int give 0 on success, -1 with a message a person can
 * act on in err. Nothing here allocates; gate_audit_key_wipe() wipes a
 * loaded key (callers keep struct gate_audit_key wherever they like).
 */
#ifndef ROOMGATE_AUDIT_KEY_H
#define ROOMGATE_AUDIT_KEY_H

#include <stddef.h>

struct gate_audit_key {
	unsigned char pk[32];
	unsigned char sk[64];
	char kid[17]; /* kid: 16 hex chars */
};

/* Reads a secret key file; refuses one readable or writable by group or
 * others, and one whose kid does not match its key. */
int gate_audit_key_load(const char *path, struct gate_audit_key *k, char *err,
			size_t errlen);
/* Reads a public key file (or, for convenience, a secret key file, whose
 * public half is derived). */
int gate_audit_key_pub_load(const char *path, unsigned char pk[32],
			    char kid[17], char *err, size_t errlen);
/* Detached Ed25519 signature of m[0..n). */
void gate_audit_sign(const struct gate_audit_key *k, const unsigned char *m,
		     size_t n, unsigned char sig[64]);
/* 0 when sig is a valid signature of m by pk, -1 otherwise. */
int gate_audit_verify(const unsigned char pk[32], const unsigned char *m,
		      size_t n, const unsigned char sig[64]);
void gate_audit_key_wipe(struct gate_audit_key *k);

/* The kid of a public key (16 hex chars + NUL). */
void gate_audit_kid(const unsigned char pk[32], char kid[17]);
/*
 * Creates path (O_EXCL, mode 0600) with a fresh key, and pubpath (mode
 * 0644, O_EXCL) with its public half; refuses to overwrite either. kid
 * receives the new key's id. On failure neither file is left behind.
 */
int gate_audit_key_generate(const char *path, const char *pubpath,
			    char kid[17], char *err, size_t errlen);
/* The public key file text for pk (NUL-terminated, < 128 bytes). */
void gate_audit_pub_text(const unsigned char pk[32], char out[128]);

#endif
