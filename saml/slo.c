/*
 * Single Logout on lasso, HTTP-Redirect binding. roomgate keeps no lasso
 * session between requests: the session row holds the NameID and
 * SessionIndex, and a one-assertion lasso session is rebuilt from them when
 * lasso needs one. IdP LogoutRequests must be signed.
 *
 * Ownership: everything lasso allocates here is released before return;
 * strings handed out are malloc()ed for the caller.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_subject.h>
#include <lasso/xml/saml-2.0/samlp2_logout_request.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "saml/saml_int.h"

#define SIG_SHA256 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#define SIG_SHA384 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
#define SIG_SHA512 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"

static void
errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A lasso session holding one assertion from the IdP for this subject. */
static LassoSession *
synthetic_session(const char *idp, const char *name_id, const char *format,
		  const char *session_index)
{
	LassoSession *s = lasso_session_new();
	LassoSaml2Assertion *a = LASSO_SAML2_ASSERTION(lasso_saml2_assertion_new());
	LassoSaml2NameID *n;

	a->Subject = LASSO_SAML2_SUBJECT(lasso_saml2_subject_new());
	n = LASSO_SAML2_NAME_ID(
		lasso_saml2_name_id_new_with_string((char *)name_id));
	if (format != NULL)
		n->Format = g_strdup(format);
	a->Subject->NameID = n;
	a->Issuer = LASSO_SAML2_NAME_ID(
		lasso_saml2_name_id_new_with_string((char *)idp));
	if (session_index != NULL) {
		LassoSaml2AuthnStatement *st = LASSO_SAML2_AUTHN_STATEMENT(
			lasso_saml2_authn_statement_new());

		st->SessionIndex = g_strdup(session_index);
		a->AuthnStatement = g_list_append(NULL, st);
	}
	lasso_session_add_assertion(s, idp, LASSO_NODE(a));
	g_object_unref(a);
	return s;
}

int
saml_sp_logout_request(struct saml_sp *sp, const char *name_id,
		       const char *format, const char *session_index,
		       char **url, char *err, size_t errlen)
{
	LassoLogout *lo;
	LassoProfile *p;
	int r = -1, rc;

	*url = NULL;
	pthread_mutex_lock(&sp->mu);
	lo = lasso_logout_new(sp->server);
	if (lo == NULL) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	p = LASSO_PROFILE(lo);
	p->session = synthetic_session(sp->idp_entity_id, name_id, format,
				       session_index);
	rc = lasso_logout_init_request(lo, sp->idp_entity_id,
				       LASSO_HTTP_METHOD_REDIRECT);
	if (rc == LASSO_PROFILE_ERROR_UNSUPPORTED_PROFILE ||
	    rc == LASSO_PROFILE_ERROR_UNKNOWN_PROFILE_URL) {
		r = 0; /* the IdP has no SLO endpoint: local logout only */
		goto out;
	}
	if (rc != 0 || (rc = lasso_logout_build_request_msg(lo)) != 0 ||
	    p->msg_url == NULL) {
		errf(err, errlen, "cannot build the LogoutRequest: %s",
		     lasso_strerror(rc));
		goto out;
	}
	*url = strdup(p->msg_url);
	if (*url == NULL) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	r = 0;
out:
	if (lo != NULL)
		g_object_unref(lo);
	pthread_mutex_unlock(&sp->mu);
	return r;
}

/* The raw (still percent-encoded) value of name in query, or NULL. */
static char *
raw_param(const char *query, const char *name)
{
	size_t nl = strlen(name);
	const char *p = query;

	while (p != NULL && *p != '\0') {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		if (len > nl && p[nl] == '=' && strncmp(p, name, nl) == 0)
			return g_strndup(p + nl + 1, len - nl - 1);
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

/*
 * Verifies an HTTP-Redirect binding signature ourselves (SAML bindings
 * 3.4.4.1): over "SAMLRequest=v[&RelayState=v]&SigAlg=v" exactly as
 * received, with a signing key from the IdP's metadata, RSA with SHA-256
 * or stronger. lasso's own check leaks its decoded signature on every
 * call (lasso 2.8.1), so lasso later sees the message without it.
 */
static const char *
verify_redirect(struct saml_sp *sp, const char *query, const char *field,
		char *detail, size_t detaillen)
{
	char *msg = raw_param(query, field), *relay = raw_param(query,
								"RelayState");
	char *alg = raw_param(query, "SigAlg"), *sig = raw_param(query,
								 "Signature");
	char *alg_d = NULL, *sig_d = NULL, *signed_part = NULL;
	guchar *raw = NULL;
	gsize rawlen = 0;
	const EVP_MD *md = NULL;
	const char *why = SAML_R_UNSIGNED;

	if (msg == NULL || alg == NULL || sig == NULL) {
		errf(detail, detaillen, "unsigned %s refused", field);
		goto out;
	}
	why = SAML_R_SIGNATURE_INVALID;
	alg_d = g_uri_unescape_string(alg, NULL);
	sig_d = g_uri_unescape_string(sig, NULL);
	if (alg_d == NULL || sig_d == NULL)
		goto out;
	if (strcmp(alg_d, SIG_SHA256) == 0)
		md = EVP_sha256();
	else if (strcmp(alg_d, SIG_SHA384) == 0)
		md = EVP_sha384();
	else if (strcmp(alg_d, SIG_SHA512) == 0)
		md = EVP_sha512();
	if (md == NULL) {
		errf(detail, detaillen,
		     "signature algorithm %.100s not allowed (RSA-SHA256 or "
		     "stronger)", alg_d);
		goto out;
	}
	raw = g_base64_decode(sig_d, &rawlen);
	signed_part = relay ? g_strdup_printf("%s=%s&RelayState=%s&SigAlg=%s",
					      field, msg, relay, alg)
			    : g_strdup_printf("%s=%s&SigAlg=%s", field, msg,
					      alg);
	for (int i = 0; i < sp->nidp_keys && raw != NULL; i++) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		int ok = ctx != NULL &&
			 EVP_DigestVerifyInit(ctx, NULL, md, NULL,
					      sp->idp_keys[i]) == 1 &&
			 EVP_DigestVerify(ctx, raw, rawlen,
					  (const unsigned char *)signed_part,
					  strlen(signed_part)) == 1;

		EVP_MD_CTX_free(ctx);
		if (ok) {
			why = NULL;
			goto out;
		}
	}
	errf(detail, detaillen, "%s signature does not verify with the IdP's "
				"keys", field);
out:
	g_free(msg);
	g_free(relay);
	g_free(alg);
	g_free(sig);
	g_free(alg_d);
	g_free(sig_d);
	g_free(signed_part);
	g_free(raw);
	return why;
}

void
saml_slo_request_free(struct saml_slo_request *q)
{
	if (q == NULL)
		return;
	free(q->name_id);
	free(q->session_index);
	memset(q, 0, sizeof(*q));
}

int
saml_sp_slo(struct saml_sp *sp, const char *query, int *kind,
	    struct saml_slo_request *req, char **response_url,
	    const char **reason, char *detail, size_t detaillen)
{
	LassoLogout *lo = NULL;
	LassoProfile *p;
	LassoSamlp2LogoutRequest *lr;
	char *q = NULL;
	int r = -1, rc;

	memset(req, 0, sizeof(*req));
	*response_url = NULL;
	*kind = 0;
	*reason = SAML_R_BAD_REQUEST;
	if (query == NULL || *query == '\0' || strlen(query) > 64 * 1024) {
		errf(detail, detaillen, "no SAML message in the query");
		return -1;
	}
	if ((q = strdup(query)) == NULL) {
		*reason = SAML_R_INTERNAL;
		return -1;
	}
	pthread_mutex_lock(&sp->mu);
	lo = lasso_logout_new(sp->server);
	if (lo == NULL) {
		*reason = SAML_R_INTERNAL;
		goto out;
	}
	p = LASSO_PROFILE(lo);
	/* Only signed LogoutRequests (verify_redirect): an unsigned one
	 * could end anyone's session. */
	if (strstr(q, "SAMLResponse=") != NULL) {
		/* Our session ended before we sent the browser to the IdP;
		 * nothing depends on its answer, which is not processed. */
		*kind = SAML_SLO_RESPONSE;
		r = 0;
		goto out;
	}
	*kind = SAML_SLO_REQUEST;
	*reason = verify_redirect(sp, q, "SAMLRequest", detail, detaillen);
	if (*reason != NULL &&
	    strcmp(*reason, SAML_R_SIGNATURE_INVALID) == 0 &&
	    sp->md_url != NULL) {
		/* Perhaps the IdP rolled its key over: refetch once. */
		int changed;

		pthread_mutex_unlock(&sp->mu);
		changed = saml_sp_refresh_on_failure(sp);
		pthread_mutex_lock(&sp->mu);
		if (changed)
			*reason = verify_redirect(sp, q, "SAMLRequest", detail,
						  detaillen);
	}
	if (*reason != NULL)
		goto out;
	/* Verified above; lasso gets the message without the signature. */
	{
		char *sa = strstr(q, "&SigAlg=");
		char *sg = strstr(q, "&Signature=");

		if (sg != NULL)
			*sg = '\0';
		if (sa != NULL)
			*sa = '\0';
	}
	lasso_profile_set_signature_verify_hint(
		p, LASSO_PROFILE_SIGNATURE_VERIFY_HINT_IGNORE);
	rc = lasso_logout_process_request_msg(lo, q);
	if (rc != 0) {
		*reason = SAML_R_LASSO;
		errf(detail, detaillen, "LogoutRequest: %s (%d)",
		     lasso_strerror(rc), rc);
		goto out;
	}
	lr = LASSO_SAMLP2_LOGOUT_REQUEST(p->request);
	if (p->remote_providerID == NULL ||
	    strcmp(p->remote_providerID, sp->idp_entity_id) != 0) {
		*reason = SAML_R_UNKNOWN_ISSUER;
		goto out;
	}
	if (lr->NameID == NULL || lr->NameID->content == NULL) {
		*reason = SAML_R_NO_NAMEID;
		errf(detail, detaillen, "LogoutRequest without NameID");
		goto out;
	}
	req->name_id = strdup(lr->NameID->content);
	req->session_index = lr->SessionIndex ? strdup(lr->SessionIndex)
					      : NULL;
	if (req->name_id == NULL ||
	    (lr->SessionIndex != NULL && req->session_index == NULL)) {
		*reason = SAML_R_INTERNAL;
		goto out;
	}
	/* Answer Success: the caller ends every matching session. */
	p->session = synthetic_session(sp->idp_entity_id, lr->NameID->content,
				       lr->NameID->Format, lr->SessionIndex);
	rc = lasso_logout_validate_request(lo);
	if (rc == 0)
		rc = lasso_logout_build_response_msg(lo);
	if (rc != 0 || p->msg_url == NULL) {
		*reason = SAML_R_LASSO;
		errf(detail, detaillen, "LogoutResponse: %s",
		     lasso_strerror(rc));
		goto out;
	}
	*response_url = strdup(p->msg_url);
	if (*response_url == NULL) {
		*reason = SAML_R_INTERNAL;
		goto out;
	}
	r = 0;
out:
	if (lo != NULL)
		g_object_unref(lo);
	pthread_mutex_unlock(&sp->mu);
	free(q);
	if (r != 0)
		saml_slo_request_free(req);
	else
		*reason = SAML_R_OK;
	return r;
}
