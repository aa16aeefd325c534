/*
 * Helpers shared by the admission, join-page and authz integration tests
 * (header-only, like saml_th.h which it builds on): service tokens from the
 * CLI, JSON requests with a browser's cookies, meetings made over the API,
 * directory fixtures through ldapmodify, counting rows.
 */
#ifndef ROOMGATE_ADMIT_TH_H
#define ROOMGATE_ADMIT_TH_H

#include <jansson.h>

#include "tests/integration/saml_th.h"

/* `roomgate -c cfg token create ...`: the printed token into out. */
__attribute__((unused)) static void
ath_token(const char *cfg, const char *role, const char *name,
          const char *identity, char out[64])
{
	char buf[4096];
	const char *argv[] = {th_env("RG_TEST_BIN"),
	                      "-c",
	                      cfg,
	                      "token",
	                      "create",
	                      "--role",
	                      role,
	                      "--name",
	                      name,
	                      "--identity",
	                      identity,
	                      NULL};
	const char *p;

	if (th_run_capture(argv, NULL, buf, sizeof(buf)) != 0)
		fail_msg("token create failed: %s", buf);
	p = strstr(buf, "rgt_");
	assert_non_null(p);
	memcpy(out, p, 47);
	out[47] = '\0';
}

/* A request to base+path with browser b's cookies and extra headers
 * (NULL-ended); a body is sent as JSON. r is freed with sth_resp_free. */
__attribute__((unused)) static long
ath_req(const char *base, struct sth_browser *b, const char *method,
        const char *path, const char *const *headers, const char *body,
        struct sth_resp *r)
{
	struct curl_slist *hl = NULL;
	char url[512];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", base, path);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		hl = curl_slist_append(hl, headers[i]);
	if (body != NULL)
		hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(b->h, CURLOPT_URL, url);
	curl_easy_setopt(b->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, sth_write);
	curl_easy_setopt(b->h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(b->h, CURLOPT_HEADERFUNCTION, sth_header);
	curl_easy_setopt(b->h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, hl);
	if (body != NULL) {
		curl_easy_setopt(b->h, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)strlen(body));
		curl_easy_setopt(b->h, CURLOPT_COPYPOSTFIELDS, body);
	} else {
		curl_easy_setopt(b->h, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(b->h, CURLOPT_CUSTOMREQUEST,
	                 strcmp(method, "GET") == 0 ? NULL : method);
	rc = curl_easy_perform(b->h);
	curl_easy_setopt(b->h, CURLOPT_CUSTOMREQUEST, NULL);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	r->status = -1;
	if (rc == CURLE_OK)
		curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body == NULL) {
		r->body = calloc(1, 1);
		assert_non_null(r->body);
	}
	return r->status;
}

__attribute__((unused)) static long
ath_req_status(const char *base, struct sth_browser *b, const char *method,
               const char *path, const char *const *headers, const char *body)
{
	struct sth_resp r;
	long st = ath_req(base, b, method, path, headers, body, &r);

	sth_resp_free(&r);
	return st;
}

/* A meeting allowing group, made over the API with a host token. */
__attribute__((unused)) static void
ath_new_meeting(const char *base, const char *host_token, const char *group,
                const char *title, int waiting_room, char link[80],
                char code[16], char id[40])
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256], auth[128], body[512];
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	json_t *o;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/v1/meetings", base);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", host_token);
	snprintf(body, sizeof(body),
	         "{\"title\": \"%s\", \"allowed_groups\": [\"%s\"], "
	         "\"waiting_room\": %s}",
	         title, group, waiting_room ? "true" : "false");
	if (th_http("POST", url, h, body, strlen(body), r) != 201)
		fail_msg("create meeting: %ld %s", r->status, r->body);
	o = json_loads(r->body, 0, NULL);
	assert_non_null(o);
	snprintf(link, 80, "%s",
	         json_string_value(json_object_get(o, "link_id")));
	snprintf(code, 16, "%s",
	         json_string_value(
	             json_object_get(json_object_get(o, "code"), "code")));
	snprintf(id, 40, "%s", json_string_value(json_object_get(o, "id")));
	assert_int_equal(strlen(code), 8);
	json_decref(o);
	free(r);
}

/* ldapmodify as the directory admin (changes the shared demo data:
 * callers undo in teardown). 0 when it worked. */
__attribute__((unused)) static int
ath_ldap_admin_try(const char *ldif)
{
	const char *path = th_write_file("fixture.ldif", ldif);

	return th_sh("ldapmodify -x -H \"$RG_TEST_LDAP_URI\" -D "
	             "\"$RG_TEST_LDAP_ADMIN_DN\" -w "
	             "\"$RG_TEST_LDAP_ADMIN_PASSWORD\" -c -f '%s' "
	             ">>\"$RG_TEST_TMP/fixture.log\" 2>&1",
	             path);
}

__attribute__((unused)) static void
ath_ldap_admin(const char *ldif)
{
	if (ath_ldap_admin_try(ldif) != 0)
		fail_msg("ldapmodify failed:\n%s", ldif);
}

/* The first column of sql ($1 = param) as a number; -1 on failure. */
__attribute__((unused)) static long
ath_pg_count(PGconn *pg, const char *sql, const char *param)
{
	char *v = sth_pg_value(pg, sql, param);
	long n = v ? strtol(v, NULL, 10) : -1;

	free(v);
	return n;
}

#endif
