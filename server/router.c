/*
 * The routing table: method, path pattern, handler, and the label used in
 * metrics. A pattern segment "{name}" matches one non-empty path segment.
 * Kept free of I/O so it can be unit-tested and fuzzed on its own.
 */
#include <stdio.h>
#include <string.h>

#include "server/admit.h"
#include "server/audit_export.h"
#include "server/audit_seal.h"
#include "server/http_int.h"
#include "server/jwt.h"
#include "server/webhooks.h"

struct route {
	const char *method;
	const char *pattern;
	gate_handler handler;
};

static const struct route routes[] = {
	{"GET", "/healthz", gate_h_healthz},
	{"GET", "/readyz", gate_h_readyz},
	{"GET", "/metrics", gate_h_metrics},
	{"GET", "/.well-known/jwks.json", gate_h_jwks},
	{"GET", "/jwt-keys/{name}", gate_h_jwt_key},
	{"POST", "/v1/meetings", gate_h_meetings_create},
	{"GET", "/v1/meetings", gate_h_meetings_list},
	{"GET", "/v1/meetings/{id}", gate_h_meeting_get},
	{"PATCH", "/v1/meetings/{id}", gate_h_meeting_update},
	{"DELETE", "/v1/meetings/{id}", gate_h_meeting_archive},
	{"GET", "/v1/meetings/{id}/code", gate_h_meeting_code},
	{"GET", "/v1/meetings/{id}/waiting", gate_h_meeting_waiting},
	{"POST", "/v1/meetings/{id}/waiting/{admission}",
	 gate_h_meeting_waiting_decide},
	{"POST", "/v1/meetings/{id}/code:rotate", gate_h_meeting_rotate},
	{"GET", "/v1/meetings/{id}/attempts", gate_h_meeting_attempts},
	{"GET", "/v1/meetings/{id}/access-review", gate_h_access_review},
	{"GET", "/v1/attempts", gate_h_attempts},
	{"GET", "/v1/audit/export", gate_h_audit_export},
	{"GET", "/v1/audit/exports/{id}/manifest",
	 gate_h_audit_export_manifest},
	{"GET", "/m/{id}/attempts", gate_h_attempts_page},
	{"GET", "/saml/metadata", gate_h_saml_metadata},
	{"GET", "/saml/login", gate_h_saml_login},
	{"POST", "/saml/acs", gate_h_saml_acs},
	{"GET", "/saml/logout", gate_h_saml_logout},
	{"GET", "/saml/slo", gate_h_saml_slo},
	{"GET", "/v1/me", gate_h_me},
	{"POST", "/v1/join/{link}", gate_h_join},
	{"GET", "/v1/join/{link}/status", gate_h_join_status},
	{"GET", "/v1/authz", gate_h_authz},
	{"POST", "/v1/identities/{id}", gate_h_identity_revoke},
	{"GET", "/v1/outbox", gate_h_outbox_list},
	{"POST", "/v1/outbox/{id}", gate_h_outbox_retry},
	{"GET", "/v1/audit/public-key", gate_h_audit_public_key},
	{"GET", "/j/{link}", gate_h_join_page},
	{"POST", "/j/{link}", gate_h_join_form},
	{"GET", "/j/{link}/wait", gate_h_join_wait_page},
	{"GET", "/m/{id}/waiting", gate_h_host_waiting_page},
	{"POST", "/m/{id}/waiting", gate_h_host_waiting_form},
};
#define NROUTES ((int)(sizeof(routes) / sizeof(routes[0])))

/* Matches path against pattern; on success fills rq->params if rq. */
static int
pattern_match(const char *pattern, const char *path, struct gate_rq *rq)
{
	const char *p = pattern, *s = path;
	int np = 0;

	while (*p != '\0' && *s != '\0') {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *se = strchr(s, '/');
			size_t seglen = se ? (size_t)(se - s) : strlen(s);

			if (pe == NULL || seglen == 0 || np >= GATE_MAX_PARAMS)
				return 0;
			if (rq != NULL) {
				rq->params[np].p = s;
				rq->params[np].len = seglen;
			}
			np++;
			p = pe + 1;
			s += seglen;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	if (*p != '\0' || *s != '\0')
		return 0;
	if (rq != NULL)
		rq->nparams = np;
	return 1;
}

int
gate_route_match(const char *method, const char *path, int *route,
		 struct gate_rq *rq, char *allow, size_t allowlen)
{
	size_t used = 0;
	int path_found = 0;

	if (allow != NULL && allowlen > 0)
		allow[0] = '\0';
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (int i = 0; i < NROUTES; i++) {
		if (!pattern_match(routes[i].pattern, path, NULL))
			continue;
		path_found = 1;
		if (strcmp(routes[i].method, method) == 0) {
			pattern_match(routes[i].pattern, path, rq);
			*route = i;
			return GATE_ROUTE_OK;
		}
		if (allow != NULL && allowlen > used) {
			int n = snprintf(allow + used, allowlen - used, "%s%s",
					 used ? ", " : "", routes[i].method);

			if (n > 0 && (size_t)n < allowlen - used)
				used += (size_t)n;
			if (strcmp(routes[i].method, "GET") == 0) {
				n = snprintf(allow + used, allowlen - used,
					     ", HEAD");
				if (n > 0 && (size_t)n < allowlen - used)
					used += (size_t)n;
			}
		}
	}
	*route = NROUTES; /* the unmatched bucket */
	return path_found ? GATE_ROUTE_BAD_METHOD : GATE_ROUTE_NOT_FOUND;
}

int
gate_route_lookup(const char *method, const char *path, int *route,
		  char *allow, size_t allowlen)
{
	return gate_route_match(method, path, route, NULL, allow, allowlen);
}

gate_handler
gate_route_handler(int route)
{
	return (route >= 0 && route < NROUTES) ? routes[route].handler : NULL;
}

int
gate_route_count(void)
{
	return NROUTES + 1;
}

const char *
gate_route_name(int route)
{
	return (route >= 0 && route < NROUTES) ? routes[route].pattern
					       : "unmatched";
}

size_t
gate_route_body_limit(int route, const struct gate_config *cfg)
{
	if (route >= 0 && route < NROUTES &&
	    routes[route].handler == gate_h_saml_acs)
		return (size_t)cfg->saml_acs_max_body_bytes;
	return (size_t)cfg->max_body_bytes;
}
