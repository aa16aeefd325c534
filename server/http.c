/*
 * The HTTP listener on libmicrohttpd: a pool of threads, each with its own
 * epoll set. Per request: an id, route lookup (404/405), size limits (413),
 * the handler, security headers, then metrics and one access-log line when
 * libmicrohttpd reports the request complete (where its state is freed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "server/http_int.h"

struct gate_http {
	struct MHD_Daemon *d;
	struct gate_app *app;
	_Atomic int in_flight; /* requests between uri_seen and completed */
	_Atomic int draining;  /* quiesced: answers close their connection */
	MHD_socket listen_fd;  /* closed after MHD_stop_daemon once quiesced */
};

/* Per-request state; freed in on_completed(). */
struct req {
	char id[33];
	struct timespec t0;
	int route;
	int status;	   /* of the queued response */
	int early;	   /* response already queued before the body */
	int too_big;	   /* body exceeded max_body_bytes */
	struct gate_buf body;
	char method[16];
	char remote[INET6_ADDRSTRLEN];
	char *query;	   /* raw query string (SAML Redirect binding) */
	int started;	   /* on_request has set this request up */
	struct gate_http *h; /* counted in h->in_flight while set */
};

static double
elapsed(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) +
	       (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void
gate_resp_json(struct gate_resp *out, int status, json_t *obj)
{
	free(out->body);
	out->status = status;
	out->content_type = "application/json";
	out->body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	out->len = out->body ? strlen(out->body) : 0;
	json_decref(obj);
	if (out->body == NULL) {
		/* Out of memory: still answer, with a fixed body. */
		static const char oom[] =
			"{\"error\":{\"code\":\"internal\",\"message\":\"out "
			"of memory\"}}";
		out->status = 503;
		out->body = strdup(oom);
		out->len = out->body ? strlen(oom) : 0;
	}
}

void
gate_resp_error(struct gate_resp *out, const struct gate_rq *rq, int status,
		const char *code, json_t *extra, const char *fmt, ...)
{
	char msg[1024];
	json_t *o, *e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_object();
	e = json_object();
	if (o == NULL || e == NULL) {
		json_decref(o);
		json_decref(e);
		json_decref(extra);
		gate_resp_json(out, status, NULL);
		return;
	}
	json_object_set_new(e, "code", json_string(code));
	json_object_set_new(e, "message", json_string(msg));
	if (rq != NULL && rq->id != NULL)
		json_object_set_new(e, "request_id", json_string(rq->id));
	json_object_set_new(o, "error", e);
	if (extra != NULL) {
		json_object_update_missing(o, extra);
		json_decref(extra);
	}
	gate_resp_json(out, status, o);
}

int
gate_resp_header(struct gate_resp *out, const char *name, const char *value)
{
	char *v;

	if (out->nheaders >= GATE_MAX_RESP_HEADERS ||
	    (v = strdup(value)) == NULL)
		return -1;
	out->headers[out->nheaders].name = name;
	out->headers[out->nheaders].value = v;
	out->nheaders++;
	return 0;
}

void
gate_resp_html(struct gate_resp *out, int status, char *html)
{
	free(out->body);
	out->status = status;
	out->content_type = "text/html; charset=utf-8";
	out->body = html;
	out->len = html ? strlen(html) : 0;
}

/* A handler may set its own Cache-Control (the JWKS is cacheable). */
static int
resp_has_header(const struct gate_resp *resp, const char *name)
{
	for (int i = 0; i < resp->nheaders; i++)
		if (strcasecmp(resp->headers[i].name, name) == 0)
			return 1;
	return 0;
}

static void
resp_free_headers(struct gate_resp *resp)
{
	for (int i = 0; i < resp->nheaders; i++)
		free(resp->headers[i].value);
	resp->nheaders = 0;
}

static enum MHD_Result
queue(struct MHD_Connection *c, struct req *r, struct gate_resp *resp)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;
	char ra[16];

	if (resp->stream != NULL) {
		free(resp->body);
		resp->body = NULL;
		mr = MHD_create_response_from_callback(
			MHD_SIZE_UNKNOWN, 64 * 1024, resp->stream,
			resp->stream_cls, resp->stream_free);
		if (mr == NULL) {
			if (resp->stream_free != NULL)
				resp->stream_free(resp->stream_cls);
			resp_free_headers(resp);
			return MHD_NO;
		}
		goto made;
	}
	if (resp->body == NULL) {
		resp->body = strdup("");
		resp->len = 0;
	}
	if (resp->body == NULL) {
		resp_free_headers(resp);
		return MHD_NO;
	}
	mr = MHD_create_response_from_buffer(resp->len, resp->body,
					     MHD_RESPMEM_MUST_FREE);
	if (mr == NULL) {
		free(resp->body);
		resp->body = NULL;
		resp_free_headers(resp);
		return MHD_NO;
	}
	resp->body = NULL; /* owned by mr now */
made:
	MHD_add_response_header(mr, "X-Request-Id", r->id);
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
				resp->content_type ? resp->content_type
						   : "application/json");
	MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
	if (!resp_has_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL))
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL,
					"no-store");
	MHD_add_response_header(mr, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(mr, "X-Frame-Options", "DENY");
	MHD_add_response_header(mr, "Content-Security-Policy",
				resp->csp ? resp->csp
					  : "default-src 'none'; "
					    "frame-ancestors 'none'");
	for (int i = 0; i < resp->nheaders; i++)
		MHD_add_response_header(mr, resp->headers[i].name,
					resp->headers[i].value);
	resp_free_headers(resp);
	if (resp->allow[0] != '\0')
		MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, resp->allow);
	if (resp->retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", resp->retry_after);
		MHD_add_response_header(mr, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (r->h != NULL && r->h->draining)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION,
					"close");
	r->status = resp->status;
	ret = MHD_queue_response(c, (unsigned int)resp->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

static void
client_addr(struct MHD_Connection *c, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	snprintf(out, outlen, "-");
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET,
			  &((const struct sockaddr_in *)(const void *)sa)
				   ->sin_addr,
			  out, (socklen_t)outlen);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)(const void *)sa)
				   ->sin6_addr,
			  out, (socklen_t)outlen);
}

/*
 * Requests that read two ways are refused before any handler sees them:
 * a query parameter or a one-value header sent twice (which one would a
 * proxy in front have looked at?). Headers that may legitimately repeat
 * (X-Forwarded-For, Accept...) are not in the list.
 */
static const char *const single_headers[] = {
	"Host", "Content-Type", "Content-Length", "Authorization", "Cookie",
	"X-Roomgate-Meeting", "X-Original-URI", "X-Forwarded-Uri",
	"Origin", "Transfer-Encoding",
};
#define NSINGLE (sizeof(single_headers) / sizeof(single_headers[0]))
#define MAX_QUERY_ARGS 64

struct dup_scan {
	unsigned seen[NSINGLE];
	const char *args[MAX_QUERY_ARGS];
	int nargs;
	const char *dup; /* the name seen twice (or one too many) */
};

static enum MHD_Result
scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
	    const char *value)
{
	struct dup_scan *d = cls;

	(void)kind;
	(void)value;
	for (size_t i = 0; key != NULL && i < NSINGLE; i++)
		if (strcasecmp(key, single_headers[i]) == 0 &&
		    ++d->seen[i] == 2) {
			d->dup = single_headers[i];
			return MHD_NO;
		}
	return MHD_YES;
}

static enum MHD_Result
scan_arg(void *cls, enum MHD_ValueKind kind, const char *key,
	 const char *value)
{
	struct dup_scan *d = cls;

	(void)kind;
	(void)value;
	if (key == NULL)
		return MHD_YES;
	for (int i = 0; i < d->nargs; i++)
		if (strcmp(d->args[i], key) == 0) {
			d->dup = key;
			return MHD_NO;
		}
	if (d->nargs == MAX_QUERY_ARGS) {
		d->dup = key;
		return MHD_NO;
	}
	d->args[d->nargs++] = key;
	return MHD_YES;
}

/* A 4xx for a request that is malformed or ambiguous as a whole (before
 * routing); 0 when it is fine. */
static int
refuse_malformed(struct MHD_Connection *c, const char *url,
		 const char *version, const struct gate_rq *rq,
		 struct gate_resp *resp)
{
	struct dup_scan d;

	if (url[0] != '/' && strstr(url, "://") != NULL) {
		gate_resp_error(resp, rq, 400, "absolute_form", NULL,
				"send the path only (e.g. GET /healthz), not a "
				"full URL: absolute-form request targets are "
				"for proxies");
		return -1;
	}
	if (strcmp(version, MHD_HTTP_VERSION_1_1) == 0 &&
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_HOST) == NULL) {
		gate_resp_error(resp, rq, 400, "bad_request", NULL,
				"an HTTP/1.1 request needs a Host header");
		return -1;
	}
	memset(&d, 0, sizeof(d));
	MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &d);
	if (d.dup != NULL) {
		gate_resp_error(resp, rq, 400, "duplicate_header", NULL,
				"the %s header was sent more than once; send "
				"it once",
				d.dup);
		return -1;
	}
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, scan_arg, &d);
	if (d.dup != NULL) {
		if (d.nargs == MAX_QUERY_ARGS)
			gate_resp_error(resp, rq, 400, "duplicate_parameter",
					NULL,
					"more than %d query parameters; no "
					"endpoint takes that many",
					MAX_QUERY_ARGS);
		else
			gate_resp_error(resp, rq, 400, "duplicate_parameter",
					NULL,
					"the query parameter %s was sent more "
					"than once; send it once",
					d.dup);
		return -1;
	}
	return 0;
}

/*
 * The JSON API takes JSON only. Requests with the session cookie are left
 * to the handlers, which answer a non-JSON change as a CSRF attempt (403).
 */
static int
refuse_media_type(struct MHD_Connection *c, const char *url,
		  const struct gate_rq *rq, struct gate_resp *resp)
{
	const char *ct = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *cl = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

	if (strncmp(url, "/v1/", 4) != 0 ||
	    MHD_lookup_connection_value(c, MHD_COOKIE_KIND,
					GATE_SESSION_COOKIE) != NULL ||
	    ((cl == NULL || strcmp(cl, "0") == 0) && te == NULL) ||
	    ct == NULL)
		return 0;
	if (strncasecmp(ct, "application/json", 16) == 0 &&
	    (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' '))
		return 0;
	gate_resp_error(resp, rq, 415, "unsupported_media_type", NULL,
			"send the body as Content-Type: application/json "
			"(got %.100s)",
			ct);
	return -1;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload_data,
	   size_t *upload_data_size, void **con_cls)
{
	struct gate_http *h = cls;
	const struct gate_config *cfg = h->app->cfg;
	struct gate_resp resp;
	struct gate_rq rq;
	struct gate_rq_caller caller;
	struct req *r = *con_cls;
	unsigned char raw[16];
	gate_handler fn;
	int m;

	memset(&resp, 0, sizeof(resp));
	memset(&rq, 0, sizeof(rq));
	rq.conn = c;
	rq.path = url;
	rq.method = strcmp(method, "HEAD") == 0 ? "GET" : method;

	if (r == NULL || !r->started) {
		const char *cl;

		if (r == NULL) {
			r = calloc(1, sizeof(*r));
			if (r == NULL)
				return MHD_NO;
			r->h = h;
			h->in_flight++;
		}
		*con_cls = r;
		r->started = 1;
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(r->id, sizeof(r->id), raw, sizeof(raw));
		snprintf(r->method, sizeof(r->method), "%s", method);
		client_addr(c, r->remote, sizeof(r->remote));
		gate_buf_init(&r->body, (size_t)cfg->max_body_bytes);
		rq.id = r->id;
		rq.remote = r->remote;

		m = gate_route_match(method, url, &r->route, NULL, resp.allow,
				     sizeof(resp.allow));
		if (refuse_malformed(c, url, version, &rq, &resp) != 0) {
			/* answered */
		} else if (m == GATE_ROUTE_NOT_FOUND) {
			gate_resp_error(&resp, &rq, 404, "not_found", NULL,
					"no such endpoint: %s", url);
		} else if (m == GATE_ROUTE_BAD_METHOD) {
			gate_resp_error(&resp, &rq, 405, "method_not_allowed",
					NULL,
					"%s is not allowed on %s; allowed: %s",
					method, url, resp.allow);
		} else if (refuse_media_type(c, url, &rq, &resp) != 0) {
			/* answered */
		} else {
			r->body.max = gate_route_body_limit(r->route, cfg);
			cl = MHD_lookup_connection_value(
				c, MHD_HEADER_KIND,
				MHD_HTTP_HEADER_CONTENT_LENGTH);
			if (cl != NULL) {
				char *end;
				unsigned long long n;

				errno = 0;
				n = strtoull(cl, &end, 10);
				if (errno != 0 || *end != '\0' ||
				    n > (unsigned long long)r->body.max)
					gate_resp_error(
						&resp, &rq, 413,
						"body_too_large", NULL,
						"request body is larger than "
						"the %zu bytes allowed",
						r->body.max);
			}
		}
		if (resp.status != 0) {
			r->early = 1;
			return queue(c, r, &resp);
		}
		return MHD_YES;
	}
	if (r->early) {
		/* Answered already; drop whatever body still arrives. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	rq.id = r->id;
	rq.remote = r->remote;
	rq.query = r->query;
	if (*upload_data_size > 0) {
		/* A body trickled in a byte at a time never trips the idle
		 * timeout; the whole body has connection_timeout seconds,
		 * then the connection is dropped (it cannot be answered in
		 * the middle of a body). */
		if (elapsed(&r->t0) > (double)cfg->connection_timeout_s) {
			gate_log(GATE_LOG_WARN, r->id, "http_slow_body",
				 "request body not complete after %d s; "
				 "connection dropped",
				 cfg->connection_timeout_s);
			r->status = 408;
			return MHD_NO;
		}
		if (!r->too_big &&
		    gate_buf_add(&r->body, upload_data, *upload_data_size) != 0)
			r->too_big = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->too_big) {
		gate_resp_error(&resp, &rq, 413, "body_too_large", NULL,
				"request body is larger than the %zu bytes "
				"allowed",
				r->body.max);
		return queue(c, r, &resp);
	}
	rq.body = r->body.p ? r->body.p : "";
	rq.body_len = r->body.len;
	(void)gate_route_match(method, url, &r->route, &rq, NULL, 0);
	fn = gate_route_handler(r->route);
	if (fn == NULL) {
		gate_resp_error(&resp, &rq, 404, "not_found", NULL,
				"no such endpoint: %s", url);
	} else {
		memset(&caller, 0, sizeof(caller));
		rq.caller = &caller;
		fn(h->app, &rq, &resp);
		if (resp.status == 0)
			gate_resp_error(&resp, &rq, 500, "internal", NULL,
					"the handler gave no answer");
		gate_role_audit(h->app, &rq, &resp);
	}
	return queue(c, r, &resp);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;
	double secs;
	json_t *f;

	(void)cls;
	(void)c;
	if (r == NULL)
		return;
	if (r->h != NULL)
		r->h->in_flight--;
	if (!r->started) {
		/* Only uri_seen() ran: libmicrohttpd gave up on the request
		 * before on_request (as it did before uri_seen existed). */
		free(r->query);
		free(r);
		*con_cls = NULL;
		return;
	}
	secs = elapsed(&r->t0);
	gate_metrics_observe(r->route, r->status, secs);
	f = json_pack("{s:s, s:s, s:i, s:f, s:s}", "method", r->method,
		      "route", gate_route_name(r->route), "status", r->status,
		      "duration_ms", secs * 1000.0, "remote", r->remote);
	if (f != NULL && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		json_object_set_new(f, "terminated", json_integer(toe));
	gate_log_fields(GATE_LOG_INFO, r->id, "http_request", f, "%s %s %d",
			r->method, gate_route_name(r->route), r->status);
	gate_buf_free(&r->body);
	free(r->query);
	free(r);
	*con_cls = NULL;
}

/*
 * Keeps the raw query string: a Redirect-binding SAML signature covers
 * its exact bytes, which decoding and re-encoding would not reproduce.
 * The per-request state starts here (on_request finishes it).
 */
static void *
uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct req *r;
	const char *q;

	(void)c;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->h = cls;
	r->h->in_flight++;
	q = uri != NULL ? strchr(uri, '?') : NULL;
	if (q != NULL)
		r->query = strdup(q + 1);
	return r;
}

static void
mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	gate_log(GATE_LOG_WARN, NULL, "http_library", "%s", msg);
}

/*
 * libmicrohttpd decodes %XX in the path and query before we see them. A
 * decoded control character (NUL above all) would let "/healthz%00x" look
 * like "/healthz"; such strings are left undecoded, so they match no route
 * and fail every later validation.
 */
static size_t
unescape(void *cls, struct MHD_Connection *c, char *s)
{
	size_t len = strlen(s), n;
	char *copy;

	(void)cls;
	(void)c;
	copy = malloc(len + 1);
	if (copy == NULL)
		return len;
	memcpy(copy, s, len + 1);
	n = MHD_http_unescape(copy);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)copy[i];

		if (ch < 0x20 || ch == 0x7f) {
			free(copy);
			return len;
		}
	}
	memcpy(s, copy, n + 1);
	free(copy);
	return n;
}

int
gate_http_start(struct gate_app *app, struct gate_http **out, char *err,
		size_t errlen)
{
	const struct gate_config *cfg = app->cfg;
	struct sockaddr_storage ss;
	struct gate_http *h;
	/* ITC: MHD_quiesce_daemon() needs it with a thread pool. */
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			     MHD_USE_ERROR_LOG | MHD_USE_ITC;

	*out = NULL;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, cfg->listen,
		      &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port =
			htons((uint16_t)cfg->port);
	} else if (inet_pton(AF_INET6, cfg->listen,
			     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port =
			htons((uint16_t)cfg->port);
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, errlen,
			 "[server] listen = \"%s\": not an IPv4 or IPv6 "
			 "address",
			 cfg->listen);
		return -1;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->app = app;
	h->listen_fd = MHD_INVALID_SOCKET;
	/*
	 * The per-connection memory pool holds the request line and headers;
	 * sizing it caps them (bodies stream through it in pieces). Extra
	 * room is left for the response headers that share the pool.
	 */
	h->d = MHD_start_daemon(
		flags, (uint16_t)cfg->port, NULL, NULL, on_request, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
		MHD_OPTION_CONNECTION_LIMIT,
		(unsigned int)cfg->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned int)cfg->connection_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)cfg->max_header_bytes + 4096,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_URI_LOG_CALLBACK, uri_seen, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,
		MHD_OPTION_UNESCAPE_CALLBACK, unescape, h, MHD_OPTION_END);
	if (h->d == NULL) {
		snprintf(err, errlen,
			 "cannot listen on %s port %d (in use, or not allowed?)",
			 cfg->listen, cfg->port);
		free(h);
		return -1;
	}
	*out = h;
	return 0;
}

int
gate_http_quiesce(struct gate_http *h)
{
	if (h == NULL || h->listen_fd != MHD_INVALID_SOCKET)
		return -1;
	h->draining = 1;
	h->listen_fd = MHD_quiesce_daemon(h->d);
	if (h->listen_fd == MHD_INVALID_SOCKET)
		return -1;
	/* The socket stays open (a pool thread may still hold it until
	 * MHD_stop_daemon) but stops listening: connections queued or
	 * arriving now are refused instead of waiting for a node that will
	 * never accept them. */
	(void)shutdown(h->listen_fd, SHUT_RDWR);
	return 0;
}

int
gate_http_in_flight(struct gate_http *h)
{
	return h != NULL ? h->in_flight : 0;
}

void
gate_http_stop(struct gate_http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	if (h->listen_fd != MHD_INVALID_SOCKET)
		close(h->listen_fd);
	free(h);
}
