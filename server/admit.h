/*
 * Private to server/: the admission decision's building blocks -- the
 * Jitsi-compatible join token (jwt.c) and the lockout policy and source
 * address rules (lockout.c). Pure functions, no database or directory
 * access, so each is unit-tested on its own.
 *
 * Errors: 0 or a negative value; messages a person can act on go to err.
 * Tokens are bearer secrets: callers free them with free() after use and
 * never log them.
 */
#ifndef ROOMGATE_ADMIT_H
#define ROOMGATE_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* ---- join tokens (jwt.c) ------------------------------------------------ */

/* Longest token we sign or accept (header, claims, signature). */
#define GATE_JWT_MAX 4096
/* Longest context.user name (bytes, cut at a UTF-8 character boundary)
 * and email (longer ones are left out) in a join token. */
#define GATE_CLAIM_NAME_MAX 128
#define GATE_CLAIM_MAIL_MAX 254

/*
 * The claims Jitsi Meet's token auth reads. Strings are borrowed; name and
 * email may be NULL (left out of context.user). jti is the admission id.
 */
struct gate_jwt_claims {
	const char *iss;
	const char *aud;
	const char *sub;
	const char *room;
	const char *jti;
	const char *user_id;
	const char *user_name;
	const char *user_email;
	int64_t nbf;
	int64_t exp;
};

/*
 * Signs c as a compact JWT with header {"alg":"HS256","typ":"JWT"} and
 * HMAC-SHA-256 under key (the platform's shared secret). *out is a heap
 * string the caller frees; on failure *out is NULL.
 */
int gate_jwt_sign_hs256(const struct gate_jwt_claims *c,
                        const unsigned char *key, size_t keylen, char **out,
                        char *err, size_t errlen);

/*
 * Verifies token the way a platform does: exactly three base64url parts,
 * header alg pinned to HS256 and typ JWT, signature compared in constant
 * time, nbf <= now < exp. On success *claims (caller json_decref()s) holds
 * the payload; on failure it is NULL and err says which check failed.
 */
int gate_jwt_verify_hs256(const char *token, const unsigned char *key,
                          size_t keylen, int64_t now, json_t **claims,
                          char *err, size_t errlen);

/*
 * Fills a redirect URL template: every "{room}" becomes room
 * percent-encoded (RFC 3986 unreserved characters kept), every "{token}"
 * the token (base64url and dots, URL-safe as is). *out is a heap string
 * the caller frees; a result longer than max is refused.
 */
int gate_admit_render_url(const char *tmpl, const char *room, const char *token,
                          size_t max, char **out, char *err, size_t errlen);

/* ---- lockout policy (lockout.c) ----------------------------------------- */

/* [admission] limits; see config.c for defaults. */
struct gate_lockout_policy {
	int max_failures; /* per identity+meeting in window_s */
	int window_s;
	int lock_s;            /* first lock; doubles on each repeat */
	int lock_max_s;        /* cap for the doubling */
	int addr_max_failures; /* per source address in window_s */
	int probe_identities;  /* distinct failing identities per meeting */
	int probe_window_s;
};

/* How long the lock_count-th lock of an identity+meeting lasts (1: the
 * first): lock_s doubled lock_count - 1 times, capped at lock_max_s. */
int64_t gate_lockout_duration(const struct gate_lockout_policy *p,
                              int lock_count);

/*
 * The client address an attempt is counted against. peer is the
 * connection's address (a numeric literal). When peer is one of the
 * trusted proxies (space-separated IP literals; NULL or empty: none) and
 * xff (X-Forwarded-For, may be NULL) is present, the entries are walked
 * from the right, skipping trusted proxies, and the first other one is the
 * client; a malformed entry there makes the peer the client instead of
 * trusting it. Writes the address in canonical form (inet_ntop) to out.
 */
int gate_lockout_source_addr(const char *peer, const char *xff,
                             const char *trusted, char *out, size_t outlen);

/* ---- the decision (admit.c) --------------------------------------------- */

struct gate_app;
struct gate_rq;
struct gate_resp;
struct db_meeting;
struct db_session;
struct dir_pool;
struct dir_verdict;

/*
 * The answer to one attempt, for each front end (JSON API, HTML pages) to
 * render its own way. status is 200 admitted, 202 waiting, or a denial
 * (400, 401, 403, 404, 429, 503); code is the stable error code (static),
 * message what a person can do. Heap strings are owned by the verdict:
 * gate_join_verdict_free() wipes the token and URL and frees them.
 */
struct gate_join_verdict {
	int status;
	const char *code; /* "admitted", "waiting", "invalid_code"... */
	char message[256];
	char login_url[160]; /* code "login_required": where to sign in */
	long long retry_after, retry_at; /* 429 */
	char *identity;      /* the signed-in person, when there is one */
	char *title;         /* the meeting's, when the link is known */
	char meeting_id[40]; /* 200, 202 */
	char *admission_id;  /* 200, 202 */
	char *token, *redirect_url; /* 200: the join token and where to go */
	long long expires_at;
};

/*
 * The admission decision for the request's session and link (rq->params[0])
 * with code_in as typed (NULL: none given; code_hint then says what to
 * send). Records the attempt (audit, lockout, admission) in one
 * transaction; if that fails the verdict is 503. *v is always filled;
 * returns 0 when admitted or waiting, -1 otherwise.
 */
int gate_join_decide(struct gate_app *app, const struct gate_rq *rq,
                     const char *code_in, const char *code_hint,
                     struct gate_join_verdict *v);
/*
 * The same decision for GET /j/{link} of an unknown link: the identity's
 * failure is counted, the source address's is not -- a foreign page can
 * make browsers send such GETs (SameSite=Lax cookies ride on top-level
 * navigations), and must not lock out everyone behind one address.
 */
int gate_join_decide_get(struct gate_app *app, const struct gate_rq *rq,
                         struct gate_join_verdict *v);
void gate_join_verdict_free(struct gate_join_verdict *v);
struct gate_buf;
/* The admission records' group commit in Prometheus text (batch sizes,
 * failed batches, retries, the queue), for /metrics. */
void gate_admit_metrics(struct gate_buf *b);

/*
 * The directory side of a decision, asked live: is identity an active
 * member of one of m's allowed groups, or an active invitee of m (an
 * invitee needs no group; a meeting without groups admits invitees
 * only, asked with dir_check_active)? 1 yes (*group: the matched group
 * DN, pointing into v, or "invitee"), 0 no (v->result says why), -1 the
 * directory did not answer (v->result DIR_V_UNAVAILABLE, err why).
 */
int gate_admit_member(struct dir_pool *dir, const struct db_meeting *m,
                      const char *identity, struct dir_verdict *v,
                      const char **group, char *err, size_t errlen);

/*
 * Mints the join token of admission admission_id (jti) for session s at
 * meeting m, exp counted from now, and the platform redirect URL, into
 * v->token, v->redirect_url and v->expires_at. Every admission's token --
 * at the decision and when a host lets someone in from the waiting room
 * -- is made here. 0, or -1 (logged; v unchanged).
 */
int gate_join_token(struct gate_app *app, const struct db_meeting *m,
                    const struct db_session *s, const char *admission_id,
                    struct gate_join_verdict *v);
/* 1 when p (len bytes) can be a meeting link: 1..64 of [A-Za-z0-9_-]. */
int gate_join_link_ok(const char *p, size_t len);

/* The length of the longest prefix of s (NUL-terminated UTF-8) of at most
 * max bytes that ends on a character boundary. */
size_t gate_utf8_prefix(const char *s, size_t max);

/* ---- the waiting room (waiting.c) --------------------------------------- */

struct gate_principal;

/*
 * The participant's side: the newest admission of the request's session
 * to the meeting of link rq->params[0], as a verdict for the JSON API
 * and the waiting page to render. status and code:
 *   202 "waiting"        still waiting; expires_at: when the entry ends
 *   200 "admitted"       a host let the person in (within
 *                        [admission] waiting_timeout) and the live
 *                        directory check still passes: token and
 *                        redirect_url minted now (gate_join_token)
 *   403 "host_denied"    the host turned the person away
 *   403 "revoked"        the entry was ended (message says why)
 *   403 "not_on_access_list"  let in, but the directory no longer admits
 *   409 "already_admitted"    admitted some other way or long ago: type
 *                        the code again for a new join link
 *   410 "waiting_expired"     nobody decided in time
 *   404 "not_waiting" / "unknown_link"; 401 "login_required";
 *   503 database or directory unavailable.
 * Reads only (an overdue entry is marked expired); no audit record.
 */
void gate_wait_status(struct gate_app *app, const struct gate_rq *rq,
                      struct gate_join_verdict *v);

/* The outcome of a host's decision on a waiting entry. */
struct gate_wait_decision {
	int status;	  /* 200, 404, 409, 503 */
	const char *code; /* "admitted", "host_denied", "not_waiting",
	                     "not_on_access_list", "not_found",
	                     "directory_unavailable", "database_unavailable" */
	char message[512];
	char state[16];	     /* the entry's state after the call, or "" */
	char identity[257];  /* whom */
	char admission_id[37];
	const char *directory; /* the live check's verdict name, or NULL */
};

/*
 * A host (p, already allowed to manage meeting m) decides on waiting
 * entry admission_id: admit (1) or deny (0). Admitting runs the live
 * directory check again first (gate_admit_member): not an active member
 * or invitee any more -> 409 "not_on_access_list" and the entry ends
 * (state revoked, revoke_reason directory_removed or
 * directory_disabled); directory down -> 503 and nothing changes. Each
 * applied decision is audited (who, whom, outcome) in the statement that
 * changes the state; of two racing decisions one is answered 409 "not_waiting".
 */
void gate_waiting_decide(struct gate_app *app, const struct gate_rq *rq,
                         const struct gate_principal *p,
                         const struct db_meeting *m, const char *admission_id,
                         int admit, struct gate_wait_decision *d);

/* Handlers (routes in router.c). waiting.c: */
void gate_h_join_status(struct gate_app *app, const struct gate_rq *rq,
                        struct gate_resp *out); /* GET /v1/join/{link}/status */
/* routes_meetings.c: GET /v1/meetings/{id}/waiting and
 * POST /v1/meetings/{id}/waiting/{admission}:admit|:deny */
void gate_h_meeting_waiting(struct gate_app *app, const struct gate_rq *rq,
                            struct gate_resp *out);
void gate_h_meeting_waiting_decide(struct gate_app *app,
                                   const struct gate_rq *rq,
                                   struct gate_resp *out);
/* pages.c: GET /j/{link}/wait, GET and POST /m/{id}/waiting */
void gate_h_join_wait_page(struct gate_app *app, const struct gate_rq *rq,
                           struct gate_resp *out);
void gate_h_host_waiting_page(struct gate_app *app, const struct gate_rq *rq,
                              struct gate_resp *out);
void gate_h_host_waiting_form(struct gate_app *app, const struct gate_rq *rq,
                              struct gate_resp *out);

#endif
