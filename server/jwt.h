/*
 * Private to server/: join-token signing keys and the JWKS document.
 *
 * A deployment signs with exactly one algorithm ([tokens] alg): HS256 with
 * the platform's shared secret (Jitsi app_secret), or RS256 with an RSA
 * private key of at least 2048 bits whose public half is published at
 * GET /.well-known/jwks.json (Jitsi asap_key_server style). Verification
 * is pinned to that same algorithm: a token whose header names another
 * (none, HS256 under RS256 -- the alg-confusion attack -- or RS256 under
 * HS256) is refused, and so is an RS256 token whose kid is not one of ours.
 *
 * kid is the RFC 7638 JWK thumbprint: base64url(SHA-256) of the canonical
 * {"e","kty","n"} JSON, 43 characters.
 *
 * Errors: 0 or -1, with a message a person can act on in err.
 */
#ifndef ROOMGATE_JWT_H
#define ROOMGATE_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "server/admit.h"
#include "server/server.h"

/* Index order is that of the [tokens] alg choices in config.c. */
enum gate_jwt_alg { GATE_JWT_AUTO = 0, GATE_JWT_HS256 = 1, GATE_JWT_RS256 = 2 };

#define GATE_JWT_RSA_MIN_BITS 2048
#define GATE_JWT_RSA_MAX_BITS 8192
/* Most RS256 keys in a JWKS: the current one and the rotated-out ones. */
#define GATE_JWT_MAX_KEYS 8
/* A thumbprint: 43 base64url characters and a NUL. */
#define GATE_JWT_KID_SIZE 44

/* Jitsi's asap_key_server file name of a key: hex(SHA-256(kid)) ".pem". */
#define GATE_JWT_ASAP_NAME_SIZE 69

struct gate_jwt_rsa {
	EVP_PKEY *pkey; /* one reference, freed with the key set */
	char kid[GATE_JWT_KID_SIZE];
	char asap_name[GATE_JWT_ASAP_NAME_SIZE];
	char *pem; /* the public key, PEM (SubjectPublicKeyInfo) */
	size_t pem_len;
};

/*
 * The keys of one deployment. HS256: secret (a copy, wiped on free).
 * RS256: rsa[0] is the signing key (private), rsa[1..] are previous keys
 * kept for verification and the JWKS only. jwks is the rendered JWKS
 * document ({"keys":[]} under HS256). Freed with gate_jwt_keys_free().
 */
struct gate_jwt_keys {
	enum gate_jwt_alg alg; /* HS256 or RS256, never AUTO */
	unsigned char *secret;
	size_t secretlen;
	struct gate_jwt_rsa rsa[GATE_JWT_MAX_KEYS];
	size_t nrsa;
	char *jwks;
	size_t jwks_len;
};

/*
 * The key set [tokens] describes (alg already resolved by the config
 * loader): reads rs256_key_file (PEM private key; refused when group or
 * others may access it, when not RSA, or smaller than 2048 bits) and
 * rs256_previous_key_files (space separated; public-key PEM, or an old
 * private key held to the same file-mode rule). With no signing key or
 * secret configured *out is NULL and 0 is returned: admission then answers
 * not_configured and the JWKS is empty.
 */
int gate_jwt_keys_open(const struct gate_config *cfg,
                       struct gate_jwt_keys **out, char *err, size_t errlen);

/* An HS256 key set over a copy of secret. */
int gate_jwt_keys_hs256(const unsigned char *secret, size_t len,
                        struct gate_jwt_keys **out, char *err, size_t errlen);

/*
 * An RS256 key set: current must hold an RSA private key; previous[0..n)
 * may be public keys. Each must be RSA with 2048..8192 bits. Takes a new
 * reference to each key (callers keep and free theirs).
 */
int gate_jwt_keys_rs256(EVP_PKEY *current, EVP_PKEY *const *previous,
                        size_t nprevious, struct gate_jwt_keys **out, char *err,
                        size_t errlen);

void gate_jwt_keys_free(struct gate_jwt_keys *ks);

/* 0 when pk is an RSA key of 2048..8192 bits; else err says why. */
int gate_jwt_rsa_key_ok(EVP_PKEY *pk, char *err, size_t errlen);

/*
 * Reads a PEM key file. want_private: a private key is required (the
 * signing key); otherwise a public key or a private key is accepted. A
 * file holding a private key must not be accessible by group or others.
 */
int gate_jwt_read_key_file(const char *path, int want_private, EVP_PKEY **out,
                           char *err, size_t errlen);

/* RFC 7638 thumbprint of an RSA public key given as base64url n and e. */
int gate_jwk_thumbprint(const char *n, const char *e,
                        char out[GATE_JWT_KID_SIZE]);

/*
 * Signs c with the key set's algorithm: HS256 as gate_jwt_sign_hs256();
 * RS256 with header {"alg":"RS256","kid":...,"typ":"JWT"} and RSASSA
 * PKCS#1 v1.5 over SHA-256 with rsa[0]. *out (heap, caller frees) is NULL
 * on failure.
 */
int gate_jwt_mint(const struct gate_jwt_keys *ks,
                  const struct gate_jwt_claims *c, char **out, char *err,
                  size_t errlen);

/*
 * Verifies token against the key set, alg pinned to ks->alg (see the top
 * of this file), typ JWT, nbf <= now < exp. *claims (caller json_decref()s)
 * is the payload on success and NULL on failure.
 */
int gate_jwt_verify(const struct gate_jwt_keys *ks, const char *token,
                    int64_t now, json_t **claims, char *err, size_t errlen);

/*
 * Creates path (O_EXCL, mode 0600) with a fresh RSA private key of bits
 * bits (2048..8192) in PKCS#8 PEM; refuses to overwrite. Prints nothing.
 */
int gate_jwt_keygen(const char *path, int bits, char *err, size_t errlen);

struct gate_app;
struct gate_rq;
struct gate_resp;
/* GET /.well-known/jwks.json (routes_jwks.c). */
void gate_h_jwks(struct gate_app *app, const struct gate_rq *rq,
                 struct gate_resp *out);
/* GET /jwt-keys/{hex(sha256(kid))}.pem: one public key as PEM, the way
 * Jitsi's asap_key_server fetches it (routes_jwks.c). */
void gate_h_jwt_key(struct gate_app *app, const struct gate_rq *rq,
                    struct gate_resp *out);

#endif
