/*
 * server/audit_export.h -- private to server/: the compliance export of the
 * audit trail (CSV per RFC 4180 with spreadsheet formulas neutralised, or
 * JSON Lines), its signed manifest and the offline check of both, shared by
 * GET /v1/audit/export (routes_audit.c), `roomgate audit export` and
 * `roomgate audit verify-export`.
 *
 * The manifest is a JSON object (see README, "Compliance exports"); its
 * "signature" is Ed25519 (server/audit_key.h) over the manifest without
 * the "signature" member, serialized canonically: keys sorted, no
 * whitespace, non-ASCII as \u escapes (jansson's JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENSURE_ASCII).
 *
 * Errors: 0 or -1 with a message a person can act on in err.
 */
#ifndef ROOMGATE_AUDIT_EXPORT_H
#define ROOMGATE_AUDIT_EXPORT_H

#include <stddef.h>
#include <sys/types.h>

#include "db/db_export.h"
#include "server/audit_seal.h"
#include "server/http_int.h"
#include "server/server.h"

enum gate_export_format { GATE_EXPORT_CSV = 0, GATE_EXPORT_JSONL = 1 };

#define GATE_EXPORT_MANIFEST_VERSION 1
#define GATE_IDENTITY_MAX 1024

/* An export request, validated. f's strings point into this struct. */
struct gate_export_params {
	struct db_export_filter f;
	int format;
	int have_to;
	char meeting[37];
	char identity[GATE_IDENTITY_MAX + 1];
	char outcome[8];
};

/* Parses an RFC 3339 time ("2026-11-28T06:00:00Z", fractions and
 * +hh:mm offsets allowed) or a date ("2026-11-28", midnight UTC) into
 * Unix microseconds. 0 or -1. */
int gate_time_parse_us(const char *s, long long *us);
/* RFC 3339 UTC of us: seconds, or microseconds when there are any. */
void gate_time_fmt_us(long long us, char *out, size_t outlen);

/* A UUID of len characters (any case) into out in lower case. 0 or -1. */
int gate_uuid_parse(const char *s, size_t len, char out[37]);

/* Clears p (format csv, no filters). */
void gate_export_params_init(struct gate_export_params *p);
/* One parameter by name: from, to, meeting, identity, outcome, format.
 * -1 with a message naming the parameter and what it takes. */
int gate_export_param(struct gate_export_params *p, const char *name,
                      const char *value, char *err, size_t errlen);
/* After the last parameter: to defaults to now_us; from must be earlier. */
int gate_export_params_finish(struct gate_export_params *p, long long now_us,
                              char *err, size_t errlen);

/* ---- formatting (pure) ---------------------------------------------- */

/* One CSV cell: a value starting with = + - @, a tab, CR or an apostrophe
 * gets a leading apostrophe (a spreadsheet then shows it as text; a reader
 * drops exactly one), and a value holding a comma, quote, CR or LF is
 * quoted with inner quotes doubled. NULL: an empty cell; "": a quoted
 * empty cell (""), so the two stay apart. */
void gate_csv_cell(struct gate_buf *b, const char *s);
/* The header line / one record (db_export_columns order), CRLF-ended. */
void gate_export_csv_header(struct gate_buf *b);
void gate_export_csv_row(struct gate_buf *b, const char *const *row);
/* One JSON object per line: integers, booleans and details as JSON. */
int gate_export_jsonl_row(struct gate_buf *b, const char *const *row);

/* ---- the manifest, checked (pure) ------------------------------------ */

#define GATE_EXPORT_MANIFEST_MAX 65536

/* What a manifest says, once its signature verified. */
struct gate_export_manifest {
	int format; /* GATE_EXPORT_CSV or GATE_EXPORT_JSONL */
	long long count, bytes;
	unsigned char sha256[32]; /* of the body */
	char kid[17];             /* the key that signed the manifest */
	char export_id[37];
	long long first_seq, last_seq; /* both 0 when count is 0 */
	int filtered; /* a meeting, identity or outcome filter was set */
	/* last_checkpoint: present, its signed body matches its columns and
	 * its signature verifies with the key of its kid */
	int have_ckpt;
	long long ckpt_id;
	struct gate_audit_ckpt ckpt;
	unsigned char ckpt_sig[64];
	/* SHA-256 of the signed (canonical) text: two manifests that check
	 * with the same value say exactly the same */
	unsigned char canon_sha256[32];
};
/*
 * Parses and checks the manifest text[0..len) against the public keys
 * (pks[i] with kid kids[i]): the manifest's signature by the key of its
 * key_id, every member it must have, and its last_checkpoint's body and
 * signature. 0 with m filled, or -1 with err naming the first thing wrong.
 * No I/O.
 */
int gate_export_manifest_check(const char *text, size_t len,
                               const unsigned char (*pks)[32],
                               const char (*kids)[17], size_t npks,
                               struct gate_export_manifest *m, char *err,
                               size_t errlen);

/* ---- the rows of an export, checked (pure) ----------------------------- */

/*
 * Reads an export body as it comes (any chunking) and checks every record:
 * written exactly as roomgate writes one (so the values are the raw ones,
 * formula apostrophes dropped), seq ascending; a sealed record's content
 * hash recomputed from its fields (gate_audit_content_hash, as `audit
 * verify`) equals its content_hash, its chain_hash follows from the row
 * before when their chain positions are consecutive, and it matches every
 * signed checkpoint at its seq (the manifest's, and extra ones, e.g. from
 * the checkpoint journal, whose signatures the caller checked); no sealed
 * record lies past the manifest's checkpoint and no record at or before it
 * is unsealed. The count and seq range must be the manifest's.
 */
struct gate_export_rows_result {
	long long records, first_seq;
	long long sealed;   /* records with a chain entry */
	long long unsealed; /* newer than the last checkpoint: not sealed */
	long long first_unsealed, last_unsealed;
	long long runs;     /* runs of consecutive chain positions */
	long long linked;   /* records whose link to the one before held */
	long long anchored; /* sealed records at or before a matched
	                       checkpoint in their run: sealed and unaltered */
	long long ckpts_met; /* signed checkpoints matched */
};
struct gate_export_rowcheck;
/* NULL when out of memory. m: a checked manifest; extra (may be NULL):
 * more signed checkpoints (at most 63 are used). */
struct gate_export_rowcheck *
gate_export_rows_new(const struct gate_export_manifest *m,
                     const struct gate_audit_ckpt *extra, size_t nextra);
/* 0, or -1 once a check failed (the reason comes from _end). */
int gate_export_rows_feed(struct gate_export_rowcheck *rc, const void *data,
                          size_t n);
/* After the last byte: 0 with *res, or -1 with err naming the first
 * record (by seq) that failed and how. */
int gate_export_rows_end(struct gate_export_rowcheck *rc,
                         struct gate_export_rows_result *res, char *err,
                         size_t errlen);
void gate_export_rows_free(struct gate_export_rowcheck *rc);

/* ---- a running export --------------------------------------------------- */

struct gate_export;
/*
 * Starts an export: loads [audit] signing_key_file (an export nobody can
 * verify is refused), opens the database cursor on a connection of its
 * own. pool: where the finished export is recorded; by: the actor for the
 * audit record (strings copied). with_count: count first (progress).
 * Returns 0, or -1 with *status the HTTP status that fits (400, 503).
 */
int gate_export_begin(const struct gate_config *cfg, struct db_pool *pool,
                      const struct gate_export_params *p,
                      const struct db_actor *by, int with_count,
                      struct gate_export **out, int *status, char *err,
                      size_t errlen);
/*
 * Up to max bytes of the body into buf: > 0 bytes, 0 at the end (the
 * manifest is then signed and recorded, see gate_export_manifest()), -1
 * on an error (err; the export is unusable).
 */
ssize_t gate_export_read(struct gate_export *x, char *buf, size_t max,
                         char *err, size_t errlen);
const char *gate_export_id(const struct gate_export *x);
/* Records streamed so far, and the total counted at the start (0 unless
 * with_count). */
long long gate_export_count(const struct gate_export *x);
long long gate_export_total(const struct gate_export *x);
/* The signed manifest text once gate_export_read() returned 0, else NULL.
 * Owned by x. */
const char *gate_export_manifest(const struct gate_export *x);
/* Closes the cursor, wipes the key and frees x (NULL is fine). */
void gate_export_free(struct gate_export *x);

/*
 * Checks an export offline: the manifest's signature with pk (whose kid
 * must be the manifest's key_id), then the body file's size and SHA-256,
 * then its records against the chain (gate_export_rows_*). 0 when all
 * hold; -1 with err naming the first check that failed. summary (may be
 * NULL) gets one line, naming records not sealed yet.
 */
int gate_export_verify(const char *body_path, const char *manifest_text,
                       const unsigned char pk[32], const char *kid,
                       char *summary, size_t summarylen, char *err,
                       size_t errlen);
/* The same with several public keys (the manifest's and its checkpoint's
 * key may differ after a rotation) and extra signed checkpoints (the
 * journal's anchors; their signatures already checked) to hold the rows
 * against. */
int gate_export_verify_keys(const char *body_path, const char *manifest_text,
                            const unsigned char (*pks)[32],
                            const char (*kids)[17], size_t npks,
                            const struct gate_audit_ckpt *extra,
                            size_t nextra, char *summary, size_t summarylen,
                            char *err, size_t errlen);

/* `roomgate audit export ...` and `roomgate audit verify-export ...`;
 * argv[0] is "audit". Exit status as gate_cli_main. */
int gate_cli_audit_export(const char *cfgpath, int argc, char **argv,
                          char **envp);

/* ---- HTTP handlers (routes_audit.c, analytics.c) ---------------------- */

/* GET /v1/audit/export (compliance): the streamed export. */
void gate_h_audit_export(struct gate_app *app, const struct gate_rq *rq,
                         struct gate_resp *out);
/* GET /v1/audit/exports/{id}/manifest (compliance). */
void gate_h_audit_export_manifest(struct gate_app *app,
                                  const struct gate_rq *rq,
                                  struct gate_resp *out);
/* GET /v1/meetings/{id}/access-review (host of the meeting, admin,
 * compliance). */
void gate_h_access_review(struct gate_app *app, const struct gate_rq *rq,
                          struct gate_resp *out);
/* GET /v1/meetings/{id}/attempts, GET /v1/attempts (every meeting:
 * admin, compliance) and the page GET /m/{id}/attempts. */
void gate_h_meeting_attempts(struct gate_app *app, const struct gate_rq *rq,
                             struct gate_resp *out);
void gate_h_attempts(struct gate_app *app, const struct gate_rq *rq,
                     struct gate_resp *out);
void gate_h_attempts_page(struct gate_app *app, const struct gate_rq *rq,
                          struct gate_resp *out);

#endif
