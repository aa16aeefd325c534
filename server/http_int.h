/*
 * Private to server/: the request and response types handlers see, and the
 * handlers the routing table in http.c points at.
 */
#ifndef ROOMGATE_HTTP_INT_H
#define ROOMGATE_HTTP_INT_H

#include <stddef.h>

#include <jansson.h>

#include "server/server.h"

#define GATE_MAX_PARAMS 4

struct MHD_Connection;

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
};

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

/* routes_health.c */
void gate_h_healthz(struct gate_app *app, const struct gate_rq *rq,
		    struct gate_resp *out);
void gate_h_readyz(struct gate_app *app, const struct gate_rq *rq,
		   struct gate_resp *out);
void gate_h_metrics(struct gate_app *app, const struct gate_rq *rq,
		    struct gate_resp *out);

#endif
