/*
 * Private to server/: the request and response types handlers see, and the
 * handlers the routing table in http.c points at.
 */
#ifndef ROOMGATE_HTTP_INT_H
#define ROOMGATE_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "server/server.h"

#define GATE_MAX_PARAMS 4
#define GATE_MAX_RESP_HEADERS 6

struct MHD_Connection;
struct gate_principal;
struct db_actor;

/* Who a request authenticated as: gate_auth_request (auth.c) fills it,
 * gate_role_audit reads it after the handler. One per request, owned by
 * http.c; NULL for requests made outside the HTTP server. */
struct gate_rq_caller {
	int known;
	unsigned roles; /* GATE_ROLE_* */
	char identity[257], idp[512], via[80];
};

/* What a handler may read. Strings live until the request completes. */
struct gate_rq {
	const char *id;	    /* request id (32 hex chars) */
	const char *method; /* HEAD is passed as GET to handlers */
	const char *path;   /* decoded path, no query */
	const char *remote; /* client address, text */
	const char *body;   /* NUL-terminated, body_len bytes (may hold NUL) */
	size_t body_len;
	struct {
		const char *p; /* points into path; not NUL-terminated */
		size_t len;
	} params[GATE_MAX_PARAMS]; /* {name} segments of the route, in order */
	int nparams;
	struct MHD_Connection *conn; /* for headers, query, cookies */
	const char *query; /* raw query string, undecoded; NULL if none */
	struct gate_rq_caller *caller; /* see above; may be NULL */
};

/*
 * What a handler fills. body is malloc()ed and owned by the response until
 * http.c hands it to libmicrohttpd.
 */
struct gate_resp {
	int status;
	const char *content_type; /* static string */
	char *body;
	size_t len;
	char allow[64];	      /* Allow header for 405, or empty */
	int retry_after;      /* seconds, 0: none */
	/* Extra headers (Location, Set-Cookie...): names static, values
	 * malloc()ed and owned by the response (gate_resp_header()). */
	int nheaders;
	struct {
		const char *name;
		char *value;
	} headers[GATE_MAX_RESP_HEADERS];
	const char *csp; /* static; replaces the default CSP when set */
	/* A streamed body instead of body (audit export): libmicrohttpd
	 * calls stream() for more as the client takes it (its content
	 * reader contract), and stream_free(stream_cls) once the response
	 * is gone, finished or not. */
	ssize_t (*stream)(void *cls, uint64_t pos, char *buf, size_t max);
	void (*stream_free)(void *cls);
	void *stream_cls;
};

/* Adds a header (value copied). -1 when full or out of memory. */
int gate_resp_header(struct gate_resp *out, const char *name,
		     const char *value);
/* Sets an HTML body; takes ownership of html (malloc()ed). */
void gate_resp_html(struct gate_resp *out, int status, char *html);

/* Sets a JSON body; takes ownership of obj. */
void gate_resp_json(struct gate_resp *out, int status, json_t *obj);
/*
 * Sets the stable error shape
 *   {"error": {"code": CODE, "message": MESSAGE, "request_id": ID}}
 * extra (may be NULL; ownership taken) is merged at the top level.
 */
void gate_resp_error(struct gate_resp *out, const struct gate_rq *rq,
		     int status, const char *code, json_t *extra,
		     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

typedef void (*gate_handler)(struct gate_app *app, const struct gate_rq *rq,
			     struct gate_resp *out);

/* router.c: like gate_route_lookup(), also filling rq->params. */
int gate_route_match(const char *method, const char *path, int *route,
		     struct gate_rq *rq, char *allow, size_t allowlen);
gate_handler gate_route_handler(int route);
/* The body limit of a route: [server] max_body_bytes, or a route's own
 * (the SAML ACS takes [saml] acs_max_body_bytes). */
size_t gate_route_body_limit(int route, const struct gate_config *cfg);

/*
 * auth.c: the request facts of an administrative audit record: the source
 * address (the [admission] trusted_proxies rule), X-Forwarded-For and
 * User-Agent as received, request id, node, and the caller p (identity,
 * IdP, how it signed in; may be NULL). src (64 bytes) holds the address;
 * by borrows from rq, p and src.
 */
void gate_rq_actor(const struct gate_app *app, const struct gate_rq *rq,
		   const struct gate_principal *p, struct db_actor *by,
		   char src[64]);
/*
 * auth.c, called by http.c after every handler: a request that
 * authenticated (gate_auth_request) as a holder of the admin or
 * compliance role, or with an API token, is recorded as "role.use"; one
 * answered 403 after authenticating, as "role.denied". A read whose
 * record cannot be written is answered 503 instead (its data does not
 * leave); otherwise the failure is logged and counted.
 */
void gate_role_audit(struct gate_app *app, const struct gate_rq *rq,
		     struct gate_resp *out);

/* routes_health.c */
void gate_h_healthz(struct gate_app *app, const struct gate_rq *rq,
		    struct gate_resp *out);
void gate_h_readyz(struct gate_app *app, const struct gate_rq *rq,
		   struct gate_resp *out);
void gate_h_metrics(struct gate_app *app, const struct gate_rq *rq,
		    struct gate_resp *out);

/* routes_meetings.c (/v1/meetings...) */
void gate_h_meetings_create(struct gate_app *app, const struct gate_rq *rq,
			    struct gate_resp *out);
void gate_h_meetings_list(struct gate_app *app, const struct gate_rq *rq,
			  struct gate_resp *out);
void gate_h_meeting_get(struct gate_app *app, const struct gate_rq *rq,
			struct gate_resp *out);
void gate_h_meeting_update(struct gate_app *app, const struct gate_rq *rq,
			   struct gate_resp *out);
void gate_h_meeting_archive(struct gate_app *app, const struct gate_rq *rq,
			    struct gate_resp *out);
void gate_h_meeting_code(struct gate_app *app, const struct gate_rq *rq,
			 struct gate_resp *out);
void gate_h_meeting_rotate(struct gate_app *app, const struct gate_rq *rq,
			   struct gate_resp *out);

/* routes_saml.c */
void gate_h_saml_metadata(struct gate_app *app, const struct gate_rq *rq,
			  struct gate_resp *out);
void gate_h_saml_login(struct gate_app *app, const struct gate_rq *rq,
		       struct gate_resp *out);
void gate_h_saml_acs(struct gate_app *app, const struct gate_rq *rq,
		     struct gate_resp *out);
void gate_h_saml_logout(struct gate_app *app, const struct gate_rq *rq,
			struct gate_resp *out);
void gate_h_saml_slo(struct gate_app *app, const struct gate_rq *rq,
		     struct gate_resp *out);
void gate_h_me(struct gate_app *app, const struct gate_rq *rq,
	       struct gate_resp *out);

/* HTML-escapes s (& < > " ') into b. */
void gate_html_escape(struct gate_buf *b, const char *s);
/* The value of field name in an x-www-form-urlencoded body (malloc()ed,
 * decoded with MHD_http_unescape, '+' as space; *outlen its length), or
 * NULL when absent or out of memory. The caller frees it. */
char *gate_form_value(const char *body, size_t len, const char *name,
		      size_t *outlen);

/* csrf.c: the join form's CSRF token, bound to the session: hex of
 * HMAC-SHA-256 under a key derived from the server keys, over the session
 * id's hash. -1 without server keys. */
#define GATE_CSRF_HEX 65
int gate_csrf_token(const struct gate_keys *keys,
		    const unsigned char session_hash[32],
		    char out[GATE_CSRF_HEX]);
/* 1 when tok (len bytes) is the session's token (constant time), else 0. */
int gate_csrf_check(const struct gate_keys *keys,
		    const unsigned char session_hash[32], const char *tok,
		    size_t len);

/* pages.c: the HTML join pages (GET and POST /j/{link}). */
void gate_h_join_page(struct gate_app *app, const struct gate_rq *rq,
		      struct gate_resp *out);
void gate_h_join_form(struct gate_app *app, const struct gate_rq *rq,
		      struct gate_resp *out);

/* admit.c: the admission decision (JSON API). */
void gate_h_join(struct gate_app *app, const struct gate_rq *rq,
		 struct gate_resp *out);

/* authz.c: forward-auth and revoking a person everywhere. */
void gate_h_authz(struct gate_app *app, const struct gate_rq *rq,
		  struct gate_resp *out);
void gate_h_identity_revoke(struct gate_app *app, const struct gate_rq *rq,
			    struct gate_resp *out);

/* session.c: cookies. */
#define GATE_SESSION_COOKIE "rg_session"
#define GATE_SAML_BINDING_COOKIE "rg_saml"
/* 0 only for a plain-http public URL on loopback (the local stack). */
int gate_cookie_secure(const struct gate_config *cfg);
/* Adds Set-Cookie: HttpOnly, Secure (see above), SameSite=Lax, or None
 * when cross_site_post (and Secure). max_age < 0: a browser-session
 * cookie. value is wiped from the local copy. */
int gate_cookie_add(struct gate_resp *out, const struct gate_config *cfg,
		    const char *name, const char *value, const char *path,
		    int max_age, int cross_site_post);
/* SHA-256 of the 32 random bytes in cookie `name` (64 hex chars). 1 if
 * present and well-formed, else 0. */
int gate_cookie_hash(const struct gate_rq *rq, const char *name,
		     unsigned char hash[32]);
/* 32 random bytes as hex (the cookie) and their SHA-256 (the database). */
int gate_random_token(char hex[65], unsigned char hash[32]);

/* session.c: the signed-in person of a request, from the session cookie.
 * 1 and *out (db_session_free()) when live, 0 when not signed in, < 0 on a
 * database error (the caller answers 503: fail closed). */
int gate_session_of(struct gate_app *app, const struct gate_rq *rq,
		    struct db_session *out, char *err, size_t errlen);

#endif
