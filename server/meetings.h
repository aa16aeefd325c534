/*
 * Private to server/: meetings, access codes at rest, API tokens and role
 * checks -- the logic the HTTP handlers (routes_meetings.c), the CLI
 * (meetings_cli.c) and the rotation job (meetings_sched.c) share, so all
 * three apply the same validation, policy and ownership rules.
 *
 * Errors: 0 or a negative value; messages a person can act on go to err.
 * Nothing here logs a code, a token or a message that quotes one.
 */
#ifndef ROOMGATE_MEETINGS_H
#define ROOMGATE_MEETINGS_H

#include <stddef.h>

#include <jansson.h>

#include "db/db_sweep.h"
#include "server/codes.h"
#include "server/server.h"

/* ---- the code vault (codes_vault.c) ------------------------------------- */

#define GATE_MAX_OLD_KEYS 8

/*
 * The policy from [codes] and the code keys: the current key set (used for
 * every new hash and seal) and older key sets from previous_key_files,
 * which still check and unseal codes stored under their key id. Owned by
 * serve (or a CLI command) and freed with gate_codes_close(); the current
 * keys are borrowed and must outlive it.
 */
struct gate_codes {
	struct gate_code_policy policy;
	int default_length;
	int rotation_check_s;
	const struct gate_keys *cur;
	struct gate_keys *old[GATE_MAX_OLD_KEYS];
	int nold;
};

/* Parses [codes] (rules list, lengths) into a policy. */
int gate_codes_policy_from_config(const struct gate_config *cfg,
                                  struct gate_code_policy *p, char *err,
                                  size_t errlen);
int gate_codes_open(const struct gate_config *cfg, const struct gate_keys *keys,
                    struct gate_codes **out, char *err, size_t errlen);
void gate_codes_close(struct gate_codes *c);

/* Hashes and seals code (len digits) for meeting_id with the current
 * keys. source: "generated" or "custom". out is wiped by the caller. */
int gate_codes_store(const struct gate_codes *c, const char *meeting_id,
                     const char *code, size_t len, const char *source,
                     struct db_code *out);
/* Opens a stored code (any known key id) into out (digits + NUL). */
int gate_codes_reveal(const struct gate_codes *c, const struct db_code *dc,
                      char *out, size_t outsize, char *err, size_t errlen);

/*
 * Checks typed digits against a meeting's live codes (current, and the
 * previous one in its grace period): one HMAC per key id involved (one in
 * the common case), constant-time comparisons. Returns 1 when it matches
 * (*version, may be NULL, gets the matching code's version), 0 when not,
 * < 0 on a database error (the caller denies: fail closed).
 */
int gate_code_verify(struct gate_app *app, const char *meeting_id,
                     const char *digits, size_t len, int *version, char *err,
                     size_t errlen);
/* The same check against live codes the caller already read (db_code_live
 * or the admission's one read, n <= 2): 1 match, 0 not. */
int gate_code_verify_live(struct gate_app *app, const char *meeting_id,
                          const struct db_code *live, size_t n,
                          const char *digits, size_t len, int *version);

/* ---- principals, tokens and roles (auth.c) ------------------------------ */

enum { GATE_ROLE_HOST = 1, GATE_ROLE_ADMIN = 2, GATE_ROLE_COMPLIANCE = 4 };

/* Who is calling: from a service token now, from an SSO session with
 * directory-derived roles later -- both end up here. */
struct gate_principal {
	char identity[257];
	unsigned roles; /* GATE_ROLE_* bits */
	char via[80];   /* "token:NAME" */
	char idp[512];  /* a session's IdP; "" for a token */
};

/* "host" -> GATE_ROLE_HOST...; 0 for an unknown name. */
unsigned gate_role_parse(const char *name);

/*
 * The principal of a request from "Authorization: Bearer TOKEN". 0 and *p
 * when the token is live; otherwise the answer is filled in: 401 for a
 * missing, malformed, unknown or revoked token, 503 when the database
 * cannot say (fail closed). Returns -1 then.
 */
struct gate_rq;
struct gate_resp;
int gate_auth_request(struct gate_app *app, const struct gate_rq *rq,
                      struct gate_principal *p, struct gate_resp *out);

/* Makes a new token (printed once): "rgt_" + 43 base64url chars, and the
 * SHA-256 that is stored. tok is wiped by the caller. */
#define GATE_TOKEN_LEN 48
void gate_token_new(char tok[GATE_TOKEN_LEN], unsigned char hash[32]);
/* SHA-256 of a presented token; -1 if it is not shaped like one. */
int gate_token_hash(const char *tok, size_t len, unsigned char hash[32]);

/* Prometheus lines of the request audit records (gate_role_audit, the
 * code reads, the forward-auth denials): written and failed, by event. */
void gate_audit_records_metrics(struct gate_buf *b);
/* Counts one such record (failed: it could not be written). */
void gate_audit_records_count(const char *event, int failed);

/* May p act on a meeting hosted by host? admin: any; host: its own. */
int gate_may_manage(const struct gate_principal *p, const char *host);
/* May p read it? compliance also reads every meeting. */
int gate_may_read(const struct gate_principal *p, const char *host);

/* ---- meetings (meetings.c) ---------------------------------------------- */

/* A validation failure: the field, a stable rule and a sentence. */
struct gate_field_err {
	char field[48];
	char rule[48];
	char message[400];
	json_t *extra; /* owned; merged into the error object (may be NULL) */
};

/*
 * Fills m from a JSON meeting object. create: all required fields checked,
 * defaults applied; otherwise a PATCH over the existing *m (only the fields
 * present change; id, host and code length stay). p: the caller, for the
 * host_identity rule. On a validation error returns -1 with fe filled; m
 * keeps whatever was set (free it with db_meeting_free()). custom_code
 * (may be NULL): the "code" member, normalized and checked against the
 * policy, or "" when absent.
 */
int gate_meeting_from_json(const struct gate_codes *codes, json_t *in,
                           int create, const struct gate_principal *p,
                           struct db_meeting *m, char *custom_code,
                           size_t custom_size, struct gate_field_err *fe);

/* The meeting as the API shows it (never with its code). */
json_t *gate_meeting_to_json(const struct gate_config *cfg,
                             const struct db_meeting *m);

/* RFC 3339 UTC text of a Unix time ("2026-11-28T02:00:00Z"). */
void gate_time_fmt(long long t, char *out, size_t outlen);

/*
 * Normalizes a custom code for a meeting of code_length digits and checks
 * it against the policy: 0, or -1 with fe (field "code", rule the first
 * failing policy rule or code_format / code_length, extra.violations).
 */
int gate_custom_code_check(const struct gate_codes *codes, const char *typed,
                           int code_length, char *out, size_t outsize,
                           struct gate_field_err *fe);

/*
 * Makes a code (custom if custom is non-empty, else generated at length)
 * and its stored form for meeting_id. code receives the digits (wipe it).
 */
int gate_meeting_new_code(const struct gate_codes *codes,
                          const char *meeting_id, int length,
                          const char *custom, char *code, size_t codesize,
                          struct db_code *dc);

/* A fresh meeting id (UUID v4 text) and link id (43 base64url chars). */
void gate_meeting_new_ids(struct db_meeting *m);

/* ---- the rotation job (meetings_sched.c) -------------------------------- */

struct gate_rotation;
/* Starts the housekeeping thread: db_rotation_run() every [codes]
 * rotation_check_interval seconds (no rotation when 0; the lockout sweep
 * then runs every 60 s) and the lockout sweep on each pass. */
int gate_rotation_start(struct gate_app *app, struct gate_rotation **out,
                        char *err, size_t errlen);
void gate_rotation_stop(struct gate_rotation *r);
/* One pass, as the thread runs it (for the CLI and tests). */
int gate_rotation_once(struct gate_app *app, int *rotated, char *err,
                       size_t errlen);
/* One lockout sweep pass (db_sweep_lockouts() in batches); *deleted rows. */
int gate_sweep_once(struct gate_app *app, int *deleted, char *err,
                    size_t errlen);
/* One housekeeping pass (db_sweep_old() for every kind, in batches);
 * deleted[kind] rows each. 0, or the first error (every kind still ran). */
int gate_housekeeping_once(struct gate_app *app,
                           int deleted[DB_SWEEP_NKINDS], char *err,
                           size_t errlen);
/* Prometheus lines: roomgate_housekeeping_deleted_total{kind}. */
void gate_housekeeping_metrics(struct gate_buf *b);

/* ---- CLI (meetings_cli.c) ------------------------------------------------ */

/* `roomgate code ...`, `roomgate token ...`, `roomgate meeting ...`; argv[0]
 * is the command word. Exit status as gate_cli_main. */
int gate_cli_code(const char *cfgpath, int argc, char **argv, char **envp);
int gate_cli_token(const char *cfgpath, int argc, char **argv, char **envp);
int gate_cli_meeting(const char *cfgpath, int argc, char **argv, char **envp);

#endif
