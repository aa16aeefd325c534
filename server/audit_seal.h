/*
 * server/audit_seal.h -- the audit chain: canonical record encoding and
 * hashes, the sealer (one node at a time chains committed audit records in
 * seq order and signs checkpoints), verification, retention, the
 * `roomgate audit` command and the public-key route. The format is written
 * up in README.md, "Audit trail".
 *
 * Functions returning int give 0 on success, < 0 with a message a person
 * can act on in err.
 */
#ifndef ROOMGATE_AUDIT_SEAL_H
#define ROOMGATE_AUDIT_SEAL_H

#include <stddef.h>
#include <stdio.h>

#include "db/db_audit.h"
#include "server/audit_key.h"
#include "server/server.h"

/* ---- canonical encoding (pure) -------------------------------------- */

/*
 * content_hash = SHA-256("roomgate-audit-record-v1\n" || for each of the
 * DB_AUDIT_NFIELDS fields in order: u32 big-endian length || bytes, or
 * 0xFFFFFFFF for NULL). f[i] NULL means SQL NULL.
 */
void gate_audit_content_hash(const char *const f[], const size_t len[],
			     unsigned char out[32]);
/*
 * link hash = SHA-256("roomgate-audit-link-v1\n" || prev (32) || pos (u64
 * big-endian) || seq (u64 big-endian) || content_hash (32)). The first
 * record's prev is 32 zero bytes.
 */
void gate_audit_link_hash(const unsigned char prev[32], long long pos,
			  long long seq, const unsigned char content[32],
			  unsigned char out[32]);

/* A checkpoint's signed text (README: "Audit trail"). */
struct gate_audit_ckpt {
	char kid[17];
	long long last_seq;
	long long count; /* chain position of last_seq: records since genesis */
	unsigned char last_hash[32];
	char time[32]; /* YYYY-MM-DDTHH:MM:SS.uuuuuuZ */
};
/* Writes the body (NUL-terminated) into out; returns its length, or -1
 * when outlen is too small. */
int gate_audit_ckpt_body(const struct gate_audit_ckpt *c, char *out,
			 size_t outlen);
/* Parses a body exactly as gate_audit_ckpt_body writes it; -1 otherwise. */
int gate_audit_ckpt_parse(const char *body, size_t len,
			  struct gate_audit_ckpt *c);

/* The public keys verify knows: [audit] signing_key_file's public half
 * first, then previous_public_keys; at most max, *n how many. */
int gate_audit_pubs_load(const struct gate_config *cfg,
			 unsigned char (*pk)[32], char (*kid)[17], size_t max,
			 size_t *n, char *err, size_t errlen);

/* ---- the sealer (a thread on every node; one leads) ------------------- */

struct gate_sealer;
/*
 * Starts the sealer when [audit] signing_key_file is set and
 * checkpoint_interval_ms > 0 (else *out stays NULL, not an error). The
 * key is loaded here, so a bad key file refuses to start. app must
 * outlive it.
 */
int gate_sealer_start(struct gate_app *app, struct gate_sealer **out,
		      char *err, size_t errlen);
void gate_sealer_stop(struct gate_sealer *s);
/* Prometheus lines of this node's sealer (nothing when none runs). */
void gate_sealer_metrics(struct gate_buf *b);

/* ---- verification ----------------------------------------------------- */

struct gate_audit_verify_opts {
	long long from_seq, to_seq; /* 0: from the start / to the end */
	unsigned char (*pks)[32]; /* known public keys */
	char (*kids)[17];
	size_t npks;
	FILE *progress; /* NULL: quiet */
	/* [audit] retention_days: a purge's cutoff must be at least this
	 * long before the purge (0: only not after it) */
	int retention_days;
	/* a record not sealed this long after its time fails verify */
	int grace_s;
	/* files holding checkpoint journal lines (roomgate-audit-anchor-v1)
	 * saved outside the database; each must match the database */
	const char *const *anchors;
	size_t nanchors;
};
struct gate_audit_verify_result {
	int ok;
	long long records, checkpoints, unsealed, after_last_ckpt;
	long long first_seq, last_seq;
	long long bad_seq; /* the first bad record (0: none, or a checkpoint) */
	char what[1024];   /* what is wrong, or a summary when ok */
	long long anchored; /* anchor lines checked */
	char purged[512];   /* the newest purge: range, date, cutoff ("") */
};
/* Walks the range; result->ok 0 names the first problem. Returns < 0 only
 * when the database could not be read. */
int gate_audit_verify_run(struct db_pool *db,
			  const struct gate_audit_verify_opts *o,
			  struct gate_audit_verify_result *res, char *err,
			  size_t errlen);

/* The journal line of a checkpoint (one line, no newline): what `audit
 * verify --anchor FILE` reads back. Returns its length, -1 if too long. */
int gate_audit_anchor_line(const struct gate_audit_ckpt *c,
			   const unsigned char sig[64], char *out,
			   size_t outlen);
/* Parses the anchor out of a line holding one (anywhere in it, e.g. in a
 * JSON log line): 1 found, 0 no anchor in the line, -1 malformed. */
int gate_audit_anchor_parse(const char *line, struct gate_audit_ckpt *c,
			    unsigned char sig[64]);

/* ---- CLI and HTTP ------------------------------------------------------ */

/* `roomgate audit keygen|public-key|verify|purge`. */
int gate_cli_audit(const char *cfgpath, int argc, char **argv, char **envp);

struct gate_rq;
struct gate_resp;
/* GET /v1/audit/public-key[?kid=K]: the public key file text. */
void gate_h_audit_public_key(struct gate_app *app, const struct gate_rq *rq,
			     struct gate_resp *out);

#endif
