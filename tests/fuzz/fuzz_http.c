/*
 * libFuzzer target: the pure parts of HTTP request handling that read
 * untrusted input. libmicrohttpd parses the request line, headers and
 * cookies; what roomgate does with the pieces is fuzzed here, without a
 * socket, a database or a directory:
 *  - the routing table (server/router.c): method and decoded path;
 *  - form bodies (gate_form_value, server/routes_saml.c): the join form's
 *    code and csrf, the ACS's SAMLResponse, the host form's fields;
 *  - JSON bodies: a meeting as POST/PATCH /v1/meetings sends it
 *    (gate_meeting_from_json, server/meetings.c, with the code policy);
 *  - the bearer token of an Authorization header (gate_token_hash);
 *  - the forward-auth meeting reference (gate_authz_ref) from the path.
 *
 * Input: "METHOD\nPATH\nAUTHORIZATION\nBODY" (the body may hold anything).
 * Checks the contract, not just absence of crashes: a matched route's
 * parameters are non-empty single segments inside the path, a 405 names
 * the allowed methods, a form value is NUL-terminated at its length and
 * no longer than the raw field, a meeting that parses has its limits,
 * a token hash is made only for an rgt_ token of 47 characters.
 * Run: build/fuzz/fuzz_http tests/fuzz/corpus/http
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server/authz_ref.h"
#include "server/codes.h"
#include "server/http_int.h"
#include "server/meetings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *
next_line(char **p)
{
	char *s = *p, *nl;

	if (s == NULL)
		return NULL;
	nl = strchr(s, '\n');
	if (nl != NULL) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = NULL;
	}
	return s;
}

static void
check_route(const char *method, const char *path)
{
	struct gate_rq rq;
	char allow[64];
	int route = -1, m;

	memset(&rq, 0, sizeof(rq));
	m = gate_route_match(method, path, &route, &rq, allow, sizeof(allow));
	if (memchr(allow, '\0', sizeof(allow)) == NULL)
		abort();
	if (route < 0 || route >= gate_route_count() ||
	    gate_route_name(route) == NULL)
		abort();
	if (m == GATE_ROUTE_OK) {
		if (gate_route_handler(route) == NULL || rq.nparams < 0 ||
		    rq.nparams > GATE_MAX_PARAMS)
			abort();
		for (int i = 0; i < rq.nparams; i++) {
			const char *p = rq.params[i].p;
			size_t n = rq.params[i].len;

			if (n == 0 || p < path || p + n > path + strlen(path) ||
			    memchr(p, '/', n) != NULL)
				abort();
		}
	} else if (m == GATE_ROUTE_BAD_METHOD) {
		if (allow[0] == '\0')
			abort();
	} else if (m != GATE_ROUTE_NOT_FOUND ||
	           route != gate_route_count() - 1) {
		abort();
	}
}

static void
check_form(const char *body, size_t len)
{
	static const char *const names[] = {"code", "csrf", "SAMLResponse",
	                                    "admission", "action"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = (size_t)-1;
		char *v = gate_form_value(body, len, names[i], &n);

		if (v == NULL)
			continue;
		if (n > len || v[n] != '\0')
			abort();
		free(v);
	}
}

static void
check_meeting(const char *body, size_t len)
{
	struct gate_codes codes;
	struct gate_principal who;
	struct gate_field_err fe;
	struct db_meeting m;
	char custom[GATE_CODE_BUF];
	json_t *in;

	in = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	if (in == NULL)
		return;
	memset(&codes, 0, sizeof(codes));
	gate_code_policy_default(&codes.policy);
	codes.default_length = GATE_CODE_DEFAULT_LEN;
	memset(&who, 0, sizeof(who));
	memcpy(who.identity, "host@example.com", 17);
	memcpy(who.via, "token:fuzz", 11);
	who.roles = GATE_ROLE_HOST;
	for (int create = 1; create >= 0; create--) {
		memset(&m, 0, sizeof(m));
		m.code_length = GATE_CODE_DEFAULT_LEN;
		if (gate_meeting_from_json(&codes, in, create, &who, &m, custom,
		                           sizeof(custom), &fe) == 0) {
			size_t cl = strlen(custom);

			if (m.code_length < GATE_CODE_MIN_LEN ||
			    m.code_length > GATE_CODE_MAX_LEN ||
			    (cl != 0 && cl != (size_t)m.code_length))
				abort();
			for (size_t i = 0; i < cl; i++)
				if (custom[i] < '0' || custom[i] > '9')
					abort();
		} else if (fe.rule[0] == '\0' || fe.message[0] == '\0') {
			/* (the field may be "": a body can use an empty
			 * key, and the answer names it) */
			abort();
		}
		json_decref(fe.extra);
		db_meeting_free(&m);
	}
	json_decref(in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *p, *method, *path, *auth, *body, ref[GATE_AUTHZ_REF_MAX + 1];
	const char *why = NULL;
	unsigned char hash[32];
	size_t body_len = 0;

	buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	p = buf;
	method = next_line(&p);
	path = next_line(&p);
	auth = next_line(&p);
	body = p != NULL ? p : buf + size;
	body_len = size - (size_t)(body - buf);
	if (path == NULL)
		path = "";
	if (auth == NULL)
		auth = "";

	check_route(method, path);
	check_route("HEAD", path);

	if (strncmp(auth, "Bearer ", 7) == 0) {
		const char *t = auth + 7;

		if (gate_token_hash(t, strlen(t), hash) == 0 &&
		    (strlen(t) != 47 || strncmp(t, "rgt_", 4) != 0))
			abort();
	}
	if (gate_authz_ref(auth[0] != '\0' ? auth : NULL,
	                   path[0] != '\0' ? path : NULL, ref, &why) == 0) {
		if (ref[0] == '\0' || strlen(ref) > GATE_AUTHZ_REF_MAX)
			abort();
	}

	check_form(body, body_len);
	check_meeting(body, body_len);
	free(buf);
	return 0;
}
