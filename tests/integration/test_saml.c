/*
 * Integration: SAML sign-in against the test IdP (tests/idp) with a
 * scripted browser (libcurl + cookie jar). Two roomgate nodes share the
 * database and the public URL (node B stands for a second node behind the
 * same load balancer). Every attack test asserts: the ACS refuses (403),
 * the audit log has the expected reason for that request, the browser has
 * no session, and no session row was created.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "tests/integration/saml_th.h"

static struct {
	int idp_port, a_port, b_port, p_port, ext_port, idp_tls_port;
	int m_port, m2_port, q_port;
	char base[64], base_b[64], idp_base[64], base_ext[64];
	char base_m[64], base_m2[64];
	struct th_server a, b, p, m, m2, q;
	pid_t idp, proxy, idp_proxy;
	time_t m2_started;
	PGconn *pg;
} T;

#define SP_ENTITY "https://roomgate.test/saml/metadata"
#define IDP_ENTITY "https://idp.test/saml"
#define SP_PROXIED_ENTITY "https://roomgate-proxied.test/saml/metadata"
#define SP_M_ENTITY "https://roomgate-m.test/saml/metadata"

/* A node whose IdP metadata comes from https://localhost:TLS/metadata
 * (through the TLS proxy), cached in idp-md-cache.xml. */
static const char *
sp_ini_url(const char *public_url, int refresh_s)
{
	static char ini[4096];
	char key[512], crt[512], cache[512], ca[512], pin[512];

	sth_path(pin, sizeof(pin), "idp.crt"); /* metadata signed by the IdP */
	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(cache, sizeof(cache), "idp-md-cache.xml");
	sth_path(ca, sizeof(ca), "localhost.crt");
	snprintf(ini, sizeof(ini),
		 "[server]\npublic_url = %s\nthreads = 2\n"
		 "[database]\nmigrate_on_start = true\n"
		 "[saml]\nentity_id = " SP_M_ENTITY "\nkey_file = %s\n"
		 "cert_file = %s\nidp_metadata_url = "
		 "https://localhost:%d/metadata\nidp_metadata_ca_file = %s\n"
		 "idp_metadata_file = %s\nidp_metadata_refresh = %d\n"
		 "idp_metadata_signing_cert = %s\n"
		 "name_id_format = urn:oasis:names:tc:SAML:1.1:nameid-format:"
		 "emailAddress\n",
		 public_url, key, crt, T.idp_tls_port, ca, cache, refresh_s,
		 pin);
	return ini;
}

static const char *
sp_ini(const char *public_url, const char *entity)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "idp-md.xml");
	snprintf(ini, sizeof(ini),
		 "[server]\npublic_url = %s\nthreads = 2\n"
		 "[database]\nmigrate_on_start = true\n"
		 "[saml]\nentity_id = %s\nkey_file = %s\n"
		 "cert_file = %s\nidp_metadata_file = %s\n"
		 "name_id_format = urn:oasis:names:tc:SAML:1.1:nameid-format:"
		 "emailAddress\n",
		 public_url, entity, key, crt, md);
	return ini;
}

/* Writes the SP metadata served by base to RG_TEST_TMP/name. */
static void
save_sp_metadata(const char *base, const char *name)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256];

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/saml/metadata", base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	th_write_file(name, r->body);
	free(r);
}

static int
setup(void **state)
{
	char spmd[512], spmd_p[512], spmd_m[512], pkey[512], pcrt[512];
	char base_p[64];
	const char *sps[4];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	sth_keypair("localhost"); /* the TLS proxies' certificate */
	T.idp_port = th_free_port();
	T.a_port = th_free_port();
	T.b_port = th_free_port();
	T.p_port = th_free_port();
	T.ext_port = th_free_port();
	T.idp_tls_port = th_free_port();
	T.m_port = th_free_port();
	T.m2_port = th_free_port();
	T.q_port = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
		 T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.a_port);
	snprintf(T.base_b, sizeof(T.base_b), "http://127.0.0.1:%d", T.b_port);
	snprintf(T.base_ext, sizeof(T.base_ext), "https://localhost:%d",
		 T.ext_port);
	snprintf(T.base_m, sizeof(T.base_m), "http://127.0.0.1:%d", T.m_port);
	snprintf(T.base_m2, sizeof(T.base_m2), "http://127.0.0.1:%d",
		 T.m2_port);
	snprintf(base_p, sizeof(base_p), "http://127.0.0.1:%d", T.p_port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "idp-md.xml");
	sth_path(pkey, sizeof(pkey), "localhost.key");
	sth_path(pcrt, sizeof(pcrt), "localhost.crt");

	/* The IdP first (node M fetches its metadata at start); it reads
	 * the SP metadata files at its first sign-in. */
	sth_path(spmd, sizeof(spmd), "sp-md.xml");
	sth_path(spmd_p, sizeof(spmd_p), "sp-md-proxied.xml");
	sth_path(spmd_m, sizeof(spmd_m), "sp-md-m.xml");
	sps[0] = spmd;
	sps[1] = spmd_p;
	sps[2] = spmd_m;
	sps[3] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	T.idp_proxy = sth_proxy_start(T.idp_tls_port, T.idp_port, pcrt, pkey);

	th_server_start(&T.a,
			th_config("saml-a.ini", sp_ini(T.base, SP_ENTITY)),
			T.a_port);
	/* Node B: same public URL (as behind one load balancer). */
	th_server_start(&T.b,
			th_config("saml-b.ini", sp_ini(T.base, SP_ENTITY)),
			T.b_port);
	/* Node Q: like A, but sends the AuthnRequest with HTTP-POST and takes
 * the identity from the uid attribute. */
	{
		char ini[4200];

		snprintf(ini, sizeof(ini),
			 "%sauthn_request_binding = post\n"
			 "directory_key = uid\n",
			 sp_ini(T.base, SP_ENTITY));
		th_server_start(&T.q, th_config("saml-q.ini", ini), T.q_port);
	}
	/* Node P: behind a TLS-terminating proxy on another port. */
	th_server_start(&T.p,
			th_config("saml-p.ini",
				  sp_ini(T.base_ext, SP_PROXIED_ENTITY)),
			T.p_port);
	T.proxy = sth_proxy_start(T.ext_port, T.p_port, pcrt, pkey);
	/* Nodes M and M2: IdP metadata over https; M refreshes every 2 s,
	 * M2 (same public URL) only when a signature fails. */
	th_server_start(&T.m, th_config("saml-m.ini", sp_ini_url(T.base_m, 2)),
			T.m_port);
	th_server_start(&T.m2,
			th_config("saml-m2.ini", sp_ini_url(T.base_m, 3600)),
			T.m2_port);
	T.m2_started = time(NULL);

	save_sp_metadata(T.base, "sp-md.xml");
	save_sp_metadata(base_p, "sp-md-proxied.xml");
	save_sp_metadata(T.base_m, "sp-md-m.xml");
	T.pg = sth_pg();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sth_idp_stop(T.idp);
	sth_proxy_stop(T.proxy);
	sth_proxy_stop(T.idp_proxy);
	th_server_stop(&T.m);
	th_server_stop(&T.m2);
	th_server_stop(&T.q);
	th_server_stop(&T.a);
	th_server_stop(&T.b);
	th_server_stop(&T.p);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* /saml/login on base → IdP form → signed response (with brk). Returns
 * the base64 SAMLResponse; *acs gets the form's action. */
static char *
saml_response(struct sth_browser *b, const char *base, const char *ret,
	      const char *user, const char *brk, char **acs)
{
	struct sth_resp r;
	char url[8300], *q, *eq, *body, *b64;
	size_t n;

	snprintf(url, sizeof(url), "%s/saml/login?return=%s", base,
		 ret ? ret : "/");
	assert_int_equal(sth_do(b, url, NULL, 0, &r), 302);
	assert_true(strncmp(r.location, T.idp_base, strlen(T.idp_base)) == 0);
	snprintf(url, sizeof(url), "%s", r.location);
	sth_resp_free(&r);
	assert_int_equal(sth_do(b, url, NULL, 0, &r), 200);
	q = sth_form_field(r.body, "q");
	assert_non_null(q);
	sth_resp_free(&r);
	eq = sth_escape(b, q);
	n = strlen(eq) + 256;
	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "q=%s&user=%s&password=%s&break=%s", eq, user,
		 STH_PASSWORD, brk ? brk : "");
	snprintf(url, sizeof(url), "%s/sso", T.idp_base);
	sth_do(b, url, body, strlen(body), &r);
	if (r.status != 200)
		fail_msg("IdP answered %ld: %s", r.status, r.body);
	b64 = sth_form_field(r.body, "SAMLResponse");
	assert_non_null(b64);
	if (acs != NULL)
		*acs = sth_form_action(r.body);
	sth_resp_free(&r);
	free(body);
	free(eq);
	free(q);
	return b64;
}

/* POSTs SAMLResponse=b64 to base's ACS. */
static long
acs_post(struct sth_browser *b, const char *base, const char *b64,
	 struct sth_resp *r)
{
	char url[256], *e = sth_escape(b, b64), *body;
	size_t n = strlen(e) + 32;
	long st;

	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "SAMLResponse=%s", e);
	snprintf(url, sizeof(url), "%s/saml/acs", base);
	st = sth_do(b, url, body, strlen(body), r);
	free(body);
	free(e);
	return st;
}

static long
me(struct sth_browser *b, const char *base, json_t **out)
{
	struct sth_resp r;
	char url[256];
	long st;
	json_error_t je;

	snprintf(url, sizeof(url), "%s/v1/me", base);
	st = sth_do(b, url, NULL, 0, &r);
	if (out != NULL)
		*out = json_loads(r.body, 0, &je);
	sth_resp_free(&r);
	return st;
}

static void
assert_audit_event(const char *request_id, const char *event,
		   const char *want)
{
	char sql[256], *got;

	snprintf(sql, sizeof(sql),
		 "SELECT reason FROM audit_log WHERE request_id = $1 AND "
		 "event_type = '%s' AND outcome = 'deny'",
		 event);
	got = sth_pg_value(T.pg, sql, request_id);
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("audit reason for %s: want %s, got %s", request_id,
			 want, got ? got : "(no record)");
	free(got);
}

static void
assert_audit(const char *request_id, const char *want)
{
	char *got = sth_pg_value(T.pg,
				 "SELECT reason FROM audit_log WHERE "
				 "request_id = $1 AND event_type = 'sso' AND "
				 "outcome = 'deny'",
				 request_id);

	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("audit reason for %s: want %s, got %s", request_id,
			 want, got ? got : "(no record)");
	free(got);
}

/* One attack: the response from the IdP with break mode brk must be
 * refused with reason want, leaving no session. */
static void
attack(const char *brk, const char *want)
{
	struct sth_browser b;
	struct sth_resp r;
	long before = sth_sessions(T.pg);
	char *b64;

	sth_browser_init(&b);
	b64 = saml_response(&b, T.base, "/", "alice", brk, NULL);
	acs_post(&b, T.base, b64, &r);
	if (r.status != 403)
		fail_msg("%s: ACS answered %ld, want 403: %.300s", brk,
			 r.status, r.body);
	assert_non_null(strstr(r.body, "Sign-in failed"));
	assert_audit(r.request_id, want);
	assert_int_equal(me(&b, T.base, NULL), 401);
	assert_int_equal(sth_sessions(T.pg), before);
	sth_resp_free(&r);
	free(b64);
	sth_browser_free(&b);
}

/* ---- the happy path --------------------------------------------------- */

static void
test_metadata_loads_in_idp(void **state)
{
	struct sth_resp r;
	struct sth_browser b;
	char url[256];

	(void)state;
	sth_browser_init(&b);
	snprintf(url, sizeof(url), "%s/saml/metadata", T.base);
	assert_int_equal(sth_do(&b, url, NULL, 0, &r), 200);
	assert_non_null(strstr(r.body, "entityID=\"" SP_ENTITY "\""));
	assert_non_null(strstr(r.body, T.base));
	assert_non_null(strstr(r.body, "/saml/acs\""));
	assert_non_null(strstr(r.body, "WantAssertionsSigned=\"true\""));
	sth_resp_free(&r);
	sth_browser_free(&b);
	/* lasso, on the IdP side, loads it as SP metadata and finds our ACS
	 * (the logins below depend on it too). */
	{
		char bin[512], md[512], out[2048], want[256];
		const char *argv[4];

		sth_idp_bin(bin, sizeof(bin));
		sth_path(md, sizeof(md), "sp-md.xml");
		argv[0] = bin;
		argv[1] = "--check-sp-metadata";
		argv[2] = md;
		argv[3] = NULL;
		assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)),
				 0);
		snprintf(want, sizeof(want), "ACS %s/saml/acs", T.base);
		assert_non_null(strstr(out, want));
		assert_non_null(strstr(out, "entityID " SP_ENTITY));
	}
}

static void
test_full_login(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	json_t *o = NULL;
	char *b64, *acs = NULL;

	(void)state;
	sth_browser_init(&b);
	assert_int_equal(me(&b, T.base, NULL), 401);
	b64 = saml_response(&b, T.base, "/meetings/42?x=1", "alice", NULL,
			    &acs);
	assert_non_null(acs);
	assert_true(strncmp(acs, T.base, strlen(T.base)) == 0);
	acs_post(&b, T.base, b64, &r);
	if (r.status != 303)
		fail_msg("ACS answered %ld: %.400s", r.status, r.body);
	/* Back to where the person was going, on our own origin. */
	assert_true(strncmp(r.location, T.base, strlen(T.base)) == 0);
	assert_string_equal(r.location + strlen(T.base), "/meetings/42?x=1");
	assert_non_null(strstr(r.set_cookie, "rg_session="));
	assert_non_null(strstr(r.set_cookie, "HttpOnly"));
	assert_non_null(strstr(r.set_cookie, "SameSite=Lax"));
	/* Plain http on loopback (the local stack): no Secure. */
	assert_null(strstr(r.set_cookie, "Secure"));
	{
		char *n = sth_pg_value(T.pg,
				       "SELECT count(*) FROM audit_log WHERE "
				       "request_id = $1 AND event_type = 'sso' "
				       "AND outcome = 'allow' AND identity = "
				       "'alice@example.com' AND source_addr = "
				       "'127.0.0.1'",
				       r.request_id);

		assert_string_equal(n, "1");
		free(n);
	}
	sth_resp_free(&r);
	assert_int_equal(me(&b, T.base, &o), 200);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "identity")),
			    "alice@example.com");
	assert_string_equal(json_string_value(json_object_get(o, "idp")),
			    IDP_ENTITY);
	assert_string_equal(
		json_string_value(json_array_get(
			json_object_get(json_object_get(o, "attributes"),
					"uid"),
			0)),
		"alice");
	json_decref(o);
	/* The session is server-side: node B knows it too. */
	assert_int_equal(me(&b, T.base_b, NULL), 200);
	free(acs);
	free(b64);
	sth_browser_free(&b);
}

static void
test_session_id_stored_hashed(void **state)
{
	char *n;

	(void)state;
	/* No row carries a 64-hex cookie value; id_hash is 32 raw bytes. */
	n = sth_pg_value(T.pg,
			 "SELECT count(*) FROM sessions WHERE "
			 "octet_length(id_hash) <> 32",
			 NULL);
	assert_string_equal(n, "0");
	free(n);
}

/* The AuthnRequest by HTTP-POST: an auto-submitting form to the IdP. */
static void
test_authn_request_post_binding(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	char url[256], *req, *action, *e, *body, *q, *eq, *b64;
	size_t n;

	(void)state;
	sth_browser_init(&b);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/saml/login?return=/q",
		 T.q_port);
	assert_int_equal(sth_do(&b, url, NULL, 0, &r), 200);
	req = sth_form_field(r.body, "SAMLRequest");
	action = sth_form_action(r.body);
	assert_non_null(req);
	assert_non_null(action);
	assert_non_null(strstr(r.body, "document.forms[0].submit()"));
	assert_non_null(strstr(r.set_cookie, "rg_saml="));
	assert_true(strncmp(action, T.idp_base, strlen(T.idp_base)) == 0);
	sth_resp_free(&r);
	/* The browser posts the form; the IdP shows its login form. */
	e = sth_escape(&b, req);
	n = strlen(e) + 32;
	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "SAMLRequest=%s", e);
	assert_int_equal(sth_do(&b, action, body, strlen(body), &r), 200);
	q = sth_form_field(r.body, "q");
	assert_non_null(q);
	sth_resp_free(&r);
	free(body);
	eq = sth_escape(&b, q);
	n = strlen(eq) + 256;
	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "q=%s&user=alice&password=%s", eq, STH_PASSWORD);
	assert_int_equal(sth_do(&b, action, body, strlen(body), &r), 200);
	b64 = sth_form_field(r.body, "SAMLResponse");
	assert_non_null(b64);
	sth_resp_free(&r);
	/* Posted to node Q itself (same public URL as A). */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", T.q_port);
	assert_int_equal(acs_post(&b, url, b64, &r), 303);
	assert_string_equal(r.location + strlen(T.base), "/q");
	sth_resp_free(&r);
	{
		json_t *o = NULL;

		/* directory_key = uid: the identity is the attribute. */
		assert_int_equal(me(&b, T.base, &o), 200);
		assert_string_equal(
			json_string_value(json_object_get(o, "identity")),
			"alice");
		assert_string_equal(
			json_string_value(json_object_get(o, "name_id")),
			"alice@example.com");
		json_decref(o);
	}
	free(b64);
	free(body);
	free(eq);
	free(q);
	free(e);
	free(action);
	free(req);
	sth_browser_free(&b);
}

/* Behind a TLS-terminating proxy on another port: the configured public
 * URL is what Destination, Recipient, links and cookies use. */
static void
test_login_behind_tls_proxy(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	struct curl_slist *res = NULL;
	char ca[512], pin[64], *b64, *acs = NULL;
	json_t *o = NULL;

	(void)state;
	sth_browser_init(&b);
	sth_path(ca, sizeof(ca), "localhost.crt");
	snprintf(pin, sizeof(pin), "localhost:%d:127.0.0.1", T.ext_port);
	res = curl_slist_append(NULL, pin);
	curl_easy_setopt(b.h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(b.h, CURLOPT_RESOLVE, res);
	{
		char url[256];

		snprintf(url, sizeof(url), "%s/saml/login", T.base_ext);
		assert_int_equal(sth_do(&b, url, NULL, 0, &r), 302);
		/* The IdP's cross-site POST must carry the binding cookie. */
		assert_non_null(strstr(r.set_cookie, "rg_saml="));
		assert_non_null(strstr(r.set_cookie, "SameSite=None"));
		assert_non_null(strstr(r.set_cookie, "Secure"));
		assert_non_null(strstr(r.set_cookie, "Path=/saml/acs"));
		sth_resp_free(&r);
	}
	b64 = saml_response(&b, T.base_ext, "/after", "bob", NULL, &acs);
	assert_non_null(acs);
	assert_string_equal(acs + strlen(T.base_ext), "/saml/acs");
	assert_true(strncmp(acs, T.base_ext, strlen(T.base_ext)) == 0);
	acs_post(&b, T.base_ext, b64, &r);
	if (r.status != 303)
		fail_msg("ACS via proxy answered %ld: %.300s", r.status, r.body);
	assert_true(strncmp(r.location, T.base_ext, strlen(T.base_ext)) == 0);
	/* https public URL: the session cookie is Secure. */
	assert_non_null(strstr(r.set_cookie, "rg_session="));
	assert_non_null(strstr(r.set_cookie, "Secure"));
	sth_resp_free(&r);
	assert_int_equal(me(&b, T.base_ext, &o), 200);
	assert_string_equal(json_string_value(json_object_get(o, "identity")),
			    "bob@example.com");
	json_decref(o);
	free(acs);
	free(b64);
	sth_browser_free(&b);
	curl_slist_free_all(res);
}

/* ---- return path (open redirect) ------------------------------------- */

static void
test_return_path_rejected(void **state)
{
	static const char *const bad[] = {
		"%2F%2Fevil.example",	  "%2F%2F%2Fevil.example",
		"%5Cevil.example",	  "%2F%5Cevil.example",
		"http%3Aevil.example",	  "javascript%3Aalert(1)",
		"https%3A%2F%2Fevil.example", "%2Fa%09b",
		"evil",
	};
	struct sth_browser b;
	struct sth_resp r;
	char url[512];

	(void)state;
	sth_browser_init(&b);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(url, sizeof(url), "%s/saml/login?return=%s", T.base,
			 bad[i]);
		sth_do(&b, url, NULL, 0, &r);
		if (r.status != 400)
			fail_msg("return=%s answered %ld", bad[i], r.status);
		assert_audit(r.request_id, "return_path_rejected");
		sth_resp_free(&r);
	}
	sth_browser_free(&b);
}

/* ---- attacks ------------------------------------------------------------ */

#define ATTACK(name, brk, reason)                                             \
	static void test_attack_##name(void **state)                          \
	{                                                                     \
		(void)state;                                                  \
		attack(brk, reason);                                          \
	}

ATTACK(xsw1, "xsw1", "response_count")
ATTACK(xsw2, "xsw2", "response_count")
ATTACK(xsw3, "xsw3", "assertion_count")
ATTACK(xsw4, "xsw4", "assertion_count")
ATTACK(xsw5, "xsw5", "assertion_count")
ATTACK(xsw6, "xsw6", "assertion_count")
ATTACK(xsw7, "xsw7", "assertion_count")
ATTACK(xsw8, "xsw8", "assertion_count")
ATTACK(unsigned, "unsigned", "unsigned")
ATTACK(unsigned_response_mixed, "unsigned_response_mixed", "assertion_count")
ATTACK(wrong_key, "wrong_key", "signature_invalid")
ATTACK(tampered, "tamper", "signature_invalid")
ATTACK(issuer_mismatch, "issuer_mismatch", "issuer_mismatch")
ATTACK(expired, "expired", "expired")
ATTACK(not_yet_valid, "notyet", "not_yet_valid")
ATTACK(confirmation_expired, "confirmation_expired", "confirmation_expired")
ATTACK(audience_wrong, "audience_wrong", "audience_mismatch")
ATTACK(audience_missing, "audience_missing", "audience_missing")
ATTACK(recipient_wrong, "recipient_wrong", "recipient_mismatch")
ATTACK(destination_wrong, "destination_wrong", "destination_mismatch")
ATTACK(unsolicited, "unsolicited", "unsolicited")
ATTACK(status_not_success, "status_fail", "status_not_success")
ATTACK(two_assertions, "two_assertions", "assertion_count")
ATTACK(no_nameid, "no_nameid", "no_name_id")
ATTACK(non_bearer, "non_bearer", "confirmation_not_bearer")
ATTACK(doctype, "doctype", "doctype")
ATTACK(rsa_sha1, "sha1", "weak_signature_algorithm")

/* A comment inside the NameID must not cut the value: the signed value
 * "alice@example.com.evil.example" stays whole (never "alice@..."). */
static void
test_attack_comment_in_nameid(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	json_t *o = NULL;
	char *b64;
	long st;

	(void)state;
	sth_browser_init(&b);
	b64 = saml_response(&b, T.base, "/", "alice", "comment_nameid", NULL);
	acs_post(&b, T.base, b64, &r);
	if (r.status == 303) {
		assert_int_equal(me(&b, T.base, &o), 200);
		assert_string_equal(
			json_string_value(json_object_get(o, "identity")),
			"alice@example.com.evil.example");
		json_decref(o);
	} else {
		assert_int_equal(r.status, 403);
		st = me(&b, T.base, NULL);
		assert_int_equal(st, 401);
	}
	sth_resp_free(&r);
	free(b64);
	sth_browser_free(&b);
}

/* InResponseTo names a request made by another browser. */
static void
test_attack_other_browsers_request(void **state)
{
	struct sth_browser victim, attacker;
	struct sth_resp r;
	char *b64;

	(void)state;
	sth_browser_init(&victim);
	sth_browser_init(&attacker);
	b64 = saml_response(&victim, T.base, "/", "alice", NULL, NULL);
	/* The attacker has a pending request of its own (its own cookie). */
	{
		char url[256];
		struct sth_resp lr;

		snprintf(url, sizeof(url), "%s/saml/login", T.base);
		assert_int_equal(sth_do(&attacker, url, NULL, 0, &lr), 302);
		sth_resp_free(&lr);
	}
	acs_post(&attacker, T.base, b64, &r);
	assert_int_equal(r.status, 403);
	assert_audit(r.request_id, "in_response_to_mismatch");
	assert_int_equal(me(&attacker, T.base, NULL), 401);
	sth_resp_free(&r);
	free(b64);
	sth_browser_free(&victim);
	sth_browser_free(&attacker);
}

/* The same response posted twice, and posted to another node. */
static void
test_attack_replay(void **state)
{
	struct sth_browser b, other;
	struct sth_resp r;
	char *b64;

	(void)state;
	sth_browser_init(&b);
	sth_browser_init(&other);
	b64 = saml_response(&b, T.base, "/", "bob", NULL, NULL);
	assert_int_equal(acs_post(&b, T.base, b64, &r), 303);
	sth_resp_free(&r);
	/* Same node, same browser. */
	assert_int_equal(acs_post(&b, T.base, b64, &r), 403);
	assert_audit(r.request_id, "replay");
	sth_resp_free(&r);
	/* Another node, another browser. */
	assert_int_equal(acs_post(&other, T.base_b, b64, &r), 403);
	assert_audit(r.request_id, "replay");
	assert_int_equal(me(&other, T.base_b, NULL), 401);
	sth_resp_free(&r);
	free(b64);
	sth_browser_free(&b);
	sth_browser_free(&other);
}

static void
test_attack_replay_after_logout(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	char url[256], *b64;

	(void)state;
	sth_browser_init(&b);
	b64 = saml_response(&b, T.base, "/", "alice", NULL, NULL);
	assert_int_equal(acs_post(&b, T.base, b64, &r), 303);
	sth_resp_free(&r);
	assert_int_equal(me(&b, T.base, NULL), 200);
	snprintf(url, sizeof(url), "%s/saml/logout", T.base);
	assert_int_equal(sth_do(&b, url, NULL, 0, &r), 302); /* on to SLO */
	sth_resp_free(&r);
	assert_int_equal(me(&b, T.base, NULL), 401);
	assert_int_equal(acs_post(&b, T.base, b64, &r), 403);
	assert_audit(r.request_id, "replay");
	assert_int_equal(me(&b, T.base, NULL), 401);
	sth_resp_free(&r);
	free(b64);
	sth_browser_free(&b);
}

/* A 10 MB POST is refused before parsing (413), and a body within the
 * limit that is not a response is refused with an audit record. */
static void
test_attack_huge_post(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	size_t n = 10 * 1024 * 1024;
	char *body = malloc(n + 1), url[256];
	long before = sth_sessions(T.pg);

	(void)state;
	assert_non_null(body);
	memcpy(body, "SAMLResponse=", 13);
	memset(body + 13, 'A', n - 13);
	body[n] = '\0';
	sth_browser_init(&b);
	snprintf(url, sizeof(url), "%s/saml/acs", T.base);
	sth_do(&b, url, body, n, &r);
	assert_int_equal(r.status, 413);
	sth_resp_free(&r);
	assert_int_equal(sth_sessions(T.pg), before);
	free(body);
	sth_browser_free(&b);
}

static void
test_attack_garbage(void **state)
{
	struct sth_browser b;
	struct sth_resp r;

	(void)state;
	sth_browser_init(&b);
	acs_post(&b, T.base, "PHg+PC94Pg==", &r); /* "<x></x>" */
	assert_int_equal(r.status, 403);
	assert_audit(r.request_id, "not_a_response");
	sth_resp_free(&r);
	sth_browser_free(&b);
}

/* ---- sessions -------------------------------------------------------- */

/* Signs in `user` in browser b on node A. */
static void
sign_in(struct sth_browser *b, const char *user)
{
	struct sth_resp r;
	char *b64 = saml_response(b, T.base, "/", user, NULL, NULL);

	assert_int_equal(acs_post(b, T.base, b64, &r), 303);
	sth_resp_free(&r);
	free(b64);
	assert_int_equal(me(b, T.base, NULL), 200);
}


/* The session cookie's value in the browser's jar, or "". */
static void
session_cookie(struct sth_browser *b, char *out, size_t outlen)
{
	struct curl_slist *cookies = NULL, *c;

	out[0] = '\0';
	curl_easy_getinfo(b->h, CURLINFO_COOKIELIST, &cookies);
	for (c = cookies; c != NULL; c = c->next) {
		/* Netscape format: domain, flag, path, secure, expiry, name,
		 * value, tab-separated. */
		const char *name = c->data;

		for (int i = 0; i < 5 && name != NULL; i++) {
			name = strchr(name, '\t');
			if (name != NULL)
				name++;
		}
		if (name != NULL && strncmp(name, "rg_session\t", 11) == 0)
			snprintf(out, outlen, "%s", name + 11);
	}
	curl_slist_free_all(cookies);
}

/* A session id planted before login is never adopted: login issues a
 * fresh one, and the planted one stays worthless. */
static void
test_session_fixation(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	char planted[] = "rg_session="
			 "00112233445566778899aabbccddeeff"
			 "00112233445566778899aabbccddeeff";
	char cookie[128], *b64;

	(void)state;
	sth_browser_init(&b);
	/* Netscape cookie-file line: host, subdomains, path, secure,
	 * expiry, name, value. */
	snprintf(cookie, sizeof(cookie), "127.0.0.1\tFALSE\t/\tFALSE\t0\t"
		 "rg_session\t%s", planted + 11);
	curl_easy_setopt(b.h, CURLOPT_COOKIELIST, cookie);
	session_cookie(&b, cookie, sizeof(cookie));
	assert_string_equal(cookie, planted + 11);
	assert_int_equal(me(&b, T.base, NULL), 401);
	b64 = saml_response(&b, T.base, "/", "alice", NULL, NULL);
	assert_int_equal(acs_post(&b, T.base, b64, &r), 303);
	sth_resp_free(&r);
	session_cookie(&b, cookie, sizeof(cookie));
	assert_int_equal(strlen(cookie), 64);
	assert_string_not_equal(cookie, planted + 11);
	assert_int_equal(me(&b, T.base, NULL), 200);
	free(b64);
	sth_browser_free(&b);
}

/* Idle and absolute timeouts end a session (moved back in time in the
 * database rather than waited for). */
static void
test_session_timeouts(void **state)
{
	struct sth_browser b;
	char *v;

	(void)state;
	sth_browser_init(&b);
	sign_in(&b, "carol");
	v = sth_pg_value(T.pg,
			 "UPDATE sessions SET last_seen_at = now() - "
			 "interval '31 minutes' WHERE identity = "
			 "'carol@example.com' AND revoked_at IS NULL "
			 "RETURNING 1",
			 NULL);
	assert_non_null(v);
	free(v);
	assert_int_equal(me(&b, T.base, NULL), 401); /* idle > 1800 s */
	sign_in(&b, "carol");
	v = sth_pg_value(T.pg,
			 "UPDATE sessions SET created_at = now() - interval "
			 "'9 hours', expires_at = now() - interval '1 hour' "
			 "WHERE identity = 'carol@example.com' AND "
			 "revoked_at IS NULL AND expires_at > now() "
			 "RETURNING 1",
			 NULL);
	assert_non_null(v);
	free(v);
	assert_int_equal(me(&b, T.base, NULL), 401); /* absolute expiry */
	sth_browser_free(&b);
}

/* Fail closed: with the database down, a valid response gets 503 (the
 * replay cache, request binding and audit cannot be written) and no
 * session; sign-in works again once the database is back. */
static void
test_acs_fails_closed_without_database(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	char *b64;

	(void)state;
	sth_browser_init(&b);
	b64 = saml_response(&b, T.base, "/", "alice", NULL, NULL);
	PQfinish(T.pg);
	th_pg_stop();
	acs_post(&b, T.base, b64, &r);
	th_pg_start();
	T.pg = sth_pg();
	assert_int_equal(r.status, 503);
	assert_null(strstr(r.set_cookie, "rg_session="));
	sth_resp_free(&r);
	assert_int_equal(me(&b, T.base, NULL), 401);
	free(b64);
	sign_in(&b, "alice");
	sth_browser_free(&b);
}

/* ---- single logout ------------------------------------------------- */

static void
test_sp_initiated_slo(void **state)
{
	struct sth_browser b;
	struct sth_resp r;
	char url[8300];

	(void)state;
	sth_browser_init(&b);
	sign_in(&b, "alice");
	snprintf(url, sizeof(url), "%s/saml/logout", T.base);
	assert_int_equal(sth_do(&b, url, NULL, 0, &r), 302);
	/* Our session ends before the browser goes to the IdP. */
	assert_int_equal(me(&b, T.base, NULL), 401);
	assert_true(strncmp(r.location, T.idp_base, strlen(T.idp_base)) == 0);
	assert_non_null(strstr(r.location, "/slo?SAMLRequest="));
	assert_non_null(strstr(r.location, "&Signature="));
	snprintf(url, sizeof(url), "%s", r.location);
	sth_resp_free(&r);
	/* The IdP verifies our signed request and answers. */
	assert_int_equal(sth_do(&b, url, NULL, 0, &r), 302);
	assert_true(strncmp(r.location, T.base, strlen(T.base)) == 0);
	assert_non_null(strstr(r.location, "/saml/slo?SAMLResponse="));
	snprintf(url, sizeof(url), "%s", r.location);
	sth_resp_free(&r);
	assert_int_equal(sth_do(&b, url, NULL, 0, &r), 200);
	assert_non_null(strstr(r.body, "signed out"));
	sth_resp_free(&r);
	sth_browser_free(&b);
}

/* The IdP ends the session: its signed LogoutRequest arrives through
 * some browser (not necessarily the signed-in one). */
static void
idp_logout(const char *user, const char *brk, struct sth_resp *r)
{
	struct sth_browser other;
	struct sth_resp ir;
	char url[8300];

	sth_browser_init(&other);
	snprintf(url, sizeof(url), "%s/logout-init?user=%s%s%s", T.idp_base,
		 user, brk ? "&break=" : "", brk ? brk : "");
	assert_int_equal(sth_do(&other, url, NULL, 0, &ir), 302);
	assert_true(strncmp(ir.location, T.base, strlen(T.base)) == 0);
	snprintf(url, sizeof(url), "%s", ir.location);
	sth_resp_free(&ir);
	sth_do(&other, url, NULL, 0, r);
	sth_browser_free(&other);
}

static void
test_idp_initiated_slo(void **state)
{
	struct sth_browser b;
	struct sth_resp r;

	(void)state;
	sth_browser_init(&b);
	sign_in(&b, "bob");
	idp_logout("bob", NULL, &r);
	assert_int_equal(r.status, 302);
	assert_true(strncmp(r.location, T.idp_base, strlen(T.idp_base)) == 0);
	assert_non_null(strstr(r.location, "SAMLResponse="));
	sth_resp_free(&r);
	assert_int_equal(me(&b, T.base, NULL), 401);
	assert_int_equal(me(&b, T.base_b, NULL), 401);
	sth_browser_free(&b);
}

static void
slo_attack(const char *brk, const char *want)
{
	struct sth_browser b;
	struct sth_resp r;

	sth_browser_init(&b);
	sign_in(&b, "alice");
	idp_logout("alice", brk, &r);
	assert_int_equal(r.status, 403);
	assert_audit_event(r.request_id, "logout", want);
	sth_resp_free(&r);
	/* Still signed in. */
	assert_int_equal(me(&b, T.base, NULL), 200);
	sth_browser_free(&b);
}

static void
test_attack_unsigned_logout_request(void **state)
{
	(void)state;
	slo_attack("unsigned", "unsigned");
}

static void
test_attack_logout_request_wrong_key(void **state)
{
	(void)state;
	slo_attack("wrong_key", "signature_invalid");
}

/* ---- IdP metadata over https --------------------------------------- */

static void
idp_mode(const char *mode)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256];

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/admin?mode=%s", T.idp_base, mode);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	free(r);
}

/* Signs in via node `base` (login there, response posted to post_base);
 * returns the ACS status. */
static long
login_via(const char *base, const char *post_base, const char *user,
	  char *request_id, size_t idlen)
{
	struct sth_browser b;
	struct sth_resp r;
	char *b64;
	long st;

	sth_browser_init(&b);
	b64 = saml_response(&b, base, "/", user, NULL, NULL);
	st = acs_post(&b, post_base, b64, &r);
	if (request_id != NULL)
		snprintf(request_id, idlen, "%s", r.request_id);
	if (st == 303)
		assert_int_equal(me(&b, post_base, NULL), 200);
	sth_resp_free(&r);
	free(b64);
	sth_browser_free(&b);
	return st;
}

static void
test_metadata_url_login(void **state)
{
	char path[512], *cache, *served;
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256];
	FILE *f;
	long n;

	(void)state;
	assert_int_equal(login_via(T.base_m, T.base_m, "alice", NULL, 0), 303);
	/* The last good copy is on disk, identical to what the IdP serves. */
	sth_path(path, sizeof(path), "idp-md-cache.xml");
	f = fopen(path, "r");
	assert_non_null(f);
	cache = calloc(1, 1024 * 1024);
	assert_non_null(cache);
	n = (long)fread(cache, 1, 1024 * 1024 - 1, f);
	fclose(f);
	assert_true(n > 0);
	snprintf(url, sizeof(url), "%s/metadata", T.idp_base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	served = r->body;
	assert_string_equal(cache, served);
	free(cache);
	free(r);
}

/* A failing or expired refresh keeps the last good metadata in use. */
static void
test_metadata_refresh_failure_keeps_last_good(void **state)
{
	(void)state;
	idp_mode("broken");
	usleep(4500 * 1000); /* two refresh periods of node M */
	assert_int_equal(login_via(T.base_m, T.base_m, "bob", NULL, 0), 303);
	idp_mode("expired");
	usleep(4500 * 1000);
	assert_int_equal(login_via(T.base_m, T.base_m, "bob", NULL, 0), 303);
	idp_mode("normal");
}

/* Metadata changed after signing (pinned certificate check) is refused
 * and the last good copy stays in use. */
static void
test_metadata_signature_checked(void **state)
{
	char log[8192];
	FILE *f;
	size_t n;

	(void)state;
	idp_mode("tampered");
	usleep(4500 * 1000);
	assert_int_equal(login_via(T.base_m, T.base_m, "bob", NULL, 0), 303);
	idp_mode("normal");
	f = fopen(T.m.log_path, "r");
	assert_non_null(f);
	/* The refusal is logged (the last lines are enough). */
	fseek(f, 0, SEEK_END);
	if (ftell(f) > (long)sizeof(log) * 8)
		fseek(f, -(long)sizeof(log) * 8, SEEK_END);
	else
		fseek(f, 0, SEEK_SET);
	{
		int found = 0;

		while ((n = fread(log, 1, sizeof(log) - 1, f)) > 0) {
			log[n] = '\0';
			if (strstr(log, "does not verify with the pinned") !=
			    NULL)
				found = 1;
		}
		assert_true(found);
	}
	fclose(f);
}

/* The IdP rolls over to a new key: nodes with the URL pick the new
 * metadata up (M2 only because a signature failed), the node with a
 * static file refuses. */
static void
test_metadata_key_rollover(void **state)
{
	char rid[64];
	time_t since = time(NULL) - T.m2_started;

	(void)state;
	if (since < 12)
		sleep((unsigned)(12 - since)); /* past M2's refetch gap */
	idp_mode("rollover");
	assert_int_equal(login_via(T.base, T.base, "alice", rid, sizeof(rid)),
			 403);
	assert_audit(rid, "signature_invalid");
	assert_int_equal(login_via(T.base_m, T.base_m2, "alice", NULL, 0), 303);
	usleep(4500 * 1000);
	assert_int_equal(login_via(T.base_m, T.base_m, "bob", NULL, 0), 303);
	idp_mode("normal");
	usleep(4500 * 1000);
}

/* After a key rollover (here: back to the first key, which node M2 no
 * longer has), an IdP LogoutRequest that fails verification makes the
 * node refetch the metadata once and verify again. */
static void
test_slo_after_rollover(void **state)
{
	struct sth_browser b, other;
	struct sth_resp r;
	char url[8300], *b64;
	const char *rest;

	(void)state;
	sth_browser_init(&b);
	sth_browser_init(&other);
	b64 = saml_response(&b, T.base_m, "/", "bob", NULL, NULL);
	assert_int_equal(acs_post(&b, T.base_m, b64, &r), 303);
	sth_resp_free(&r);
	free(b64);
	sleep(11); /* past M2's refetch gap after the rollover test */
	snprintf(url, sizeof(url), "%s/logout-init?user=bob", T.idp_base);
	assert_int_equal(sth_do(&other, url, NULL, 0, &r), 302);
	/* Delivered to node M2 (same public URL as M). */
	assert_true(strncmp(r.location, T.base_m, strlen(T.base_m)) == 0);
	rest = r.location + strlen(T.base_m);
	snprintf(url, sizeof(url), "%s%s", T.base_m2, rest);
	sth_resp_free(&r);
	assert_int_equal(sth_do(&other, url, NULL, 0, &r), 302);
	assert_non_null(strstr(r.location, "SAMLResponse="));
	sth_resp_free(&r);
	assert_int_equal(me(&b, T.base_m, NULL), 401);
	sth_browser_free(&b);
	sth_browser_free(&other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadata_loads_in_idp),
		cmocka_unit_test(test_full_login),
		cmocka_unit_test(test_session_id_stored_hashed),
		cmocka_unit_test(test_login_behind_tls_proxy),
		cmocka_unit_test(test_authn_request_post_binding),
		cmocka_unit_test(test_return_path_rejected),
		cmocka_unit_test(test_attack_xsw1),
		cmocka_unit_test(test_attack_xsw2),
		cmocka_unit_test(test_attack_xsw3),
		cmocka_unit_test(test_attack_xsw4),
		cmocka_unit_test(test_attack_xsw5),
		cmocka_unit_test(test_attack_xsw6),
		cmocka_unit_test(test_attack_xsw7),
		cmocka_unit_test(test_attack_xsw8),
		cmocka_unit_test(test_attack_unsigned),
		cmocka_unit_test(test_attack_unsigned_response_mixed),
		cmocka_unit_test(test_attack_wrong_key),
		cmocka_unit_test(test_attack_tampered),
		cmocka_unit_test(test_attack_issuer_mismatch),
		cmocka_unit_test(test_attack_comment_in_nameid),
		cmocka_unit_test(test_attack_expired),
		cmocka_unit_test(test_attack_not_yet_valid),
		cmocka_unit_test(test_attack_confirmation_expired),
		cmocka_unit_test(test_attack_audience_wrong),
		cmocka_unit_test(test_attack_audience_missing),
		cmocka_unit_test(test_attack_recipient_wrong),
		cmocka_unit_test(test_attack_destination_wrong),
		cmocka_unit_test(test_attack_replay),
		cmocka_unit_test(test_attack_replay_after_logout),
		cmocka_unit_test(test_attack_other_browsers_request),
		cmocka_unit_test(test_attack_unsolicited),
		cmocka_unit_test(test_attack_status_not_success),
		cmocka_unit_test(test_attack_two_assertions),
		cmocka_unit_test(test_attack_no_nameid),
		cmocka_unit_test(test_attack_non_bearer),
		cmocka_unit_test(test_attack_doctype),
		cmocka_unit_test(test_attack_rsa_sha1),
		cmocka_unit_test(test_attack_huge_post),
		cmocka_unit_test(test_attack_garbage),
		cmocka_unit_test(test_session_fixation),
		cmocka_unit_test(test_session_timeouts),
		cmocka_unit_test(test_acs_fails_closed_without_database),
		cmocka_unit_test(test_sp_initiated_slo),
		cmocka_unit_test(test_idp_initiated_slo),
		cmocka_unit_test(test_attack_unsigned_logout_request),
		cmocka_unit_test(test_attack_logout_request_wrong_key),
		cmocka_unit_test(test_metadata_url_login),
		cmocka_unit_test(test_metadata_refresh_failure_keeps_last_good),
		cmocka_unit_test(test_metadata_signature_checked),
		cmocka_unit_test(test_metadata_key_rollover),
		cmocka_unit_test(test_slo_after_rollover),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
