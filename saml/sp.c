/*
 * The Service Provider on lasso: our metadata (generated from config), the
 * signed AuthnRequest, and the ACS (lasso's checks, then check.c's).
 *
 * Ownership: struct saml_sp owns the lasso server, our metadata text and
 * copies of every configured string. lasso is not documented as
 * thread-safe, so every lasso call on the shared server runs under sp->mu.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/samlp2_authn_request.h>
#include <lasso/xml/saml-2.0/samlp2_name_id_policy.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <lasso/xml/saml-2.0/saml2_strings.h>
#include <libxml/parser.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "saml/saml_int.h"

#define SAML_MAX_FILE (1024 * 1024)

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

void
saml_log(struct saml_sp *sp, int level, const char *event, const char *fmt,
	 ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sp->log != NULL)
		sp->log(sp->log_arg, level, event, msg);
	else
		fprintf(stderr, "roomgate: saml: %s: %s\n", event, msg);
}

/* Whole file, NUL-terminated, at most SAML_MAX_FILE bytes. Caller frees
 * (wipe first when it is a key). */
static char *
read_file(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f;
	char *buf = NULL;
	size_t n;

	if (path == NULL || *path == '\0') {
		errf(err, errlen, "[saml] %s is required", what);
		return NULL;
	}
	f = fopen(path, "r");
	if (f == NULL) {
		errf(err, errlen, "[saml] %s: cannot read %s: %s", what, path,
		     strerror(errno));
		return NULL;
	}
	buf = malloc(SAML_MAX_FILE + 1);
	if (buf == NULL) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	n = fread(buf, 1, SAML_MAX_FILE + 1, f);
	if (ferror(f) || n > SAML_MAX_FILE || n == 0) {
		errf(err, errlen, "[saml] %s: %s is empty, unreadable or "
				  "larger than %d bytes",
		     what, path, SAML_MAX_FILE);
		sodium_memzero(buf, SAML_MAX_FILE + 1);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
out:
	fclose(f);
	return buf;
}

/* XML-escapes s into g (attribute or text). */
static void
xml_escape(GString *g, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': g_string_append(g, "&amp;"); break;
		case '<': g_string_append(g, "&lt;"); break;
		case '>': g_string_append(g, "&gt;"); break;
		case '"': g_string_append(g, "&quot;"); break;
		case '\'': g_string_append(g, "&apos;"); break;
		default: g_string_append_c(g, *s); break;
		}
	}
}

/* The base64 body of the first PEM certificate in pem. */
static int
cert_body(const char *pem, GString *out)
{
	const char *b = strstr(pem, "-----BEGIN CERTIFICATE-----");
	const char *e;

	if (b == NULL)
		return -1;
	b += strlen("-----BEGIN CERTIFICATE-----");
	e = strstr(b, "-----END CERTIFICATE-----");
	if (e == NULL)
		return -1;
	for (; b < e; b++)
		if (*b != '\n' && *b != '\r' && *b != ' ')
			g_string_append_c(out, *b);
	return out->len > 0 ? 0 : -1;
}

static char *
build_metadata(const struct saml_sp *sp, const char *base, const char *cert,
	       int want_signed)
{
	GString *g = g_string_new(NULL), *c = g_string_new(NULL);
	char *s = NULL;
	/*
	 * Only a signing key: an SP that advertises an encryption key invites
	 * IdPs (Shibboleth by default) to encrypt assertions, which this SP
	 * refuses until it can decrypt and still verify the inner signature.
	 */
	static const char *const uses[] = {"signing"};

	if (cert_body(cert, c) != 0)
		goto out;
	g_string_append(g, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			   "<md:EntityDescriptor "
			   "xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
			   "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" "
			   "entityID=\"");
	xml_escape(g, sp->entity_id);
	g_string_append_printf(
		g,
		"\">\n <md:SPSSODescriptor AuthnRequestsSigned=\"true\" "
		"WantAssertionsSigned=\"%s\" protocolSupportEnumeration="
		"\"urn:oasis:names:tc:SAML:2.0:protocol\">\n",
		want_signed ? "true" : "false");
	for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++)
		g_string_append_printf(
			g,
			"  <md:KeyDescriptor use=\"%s\"><ds:KeyInfo>"
			"<ds:X509Data><ds:X509Certificate>%s"
			"</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
			"</md:KeyDescriptor>\n",
			uses[i], c->str);
	g_string_append(g, "  <md:SingleLogoutService Binding=\"urn:oasis:"
			   "names:tc:SAML:2.0:bindings:HTTP-Redirect\" "
			   "Location=\"");
	xml_escape(g, base);
	g_string_append(g, "/saml/slo\"/>\n");
	if (sp->name_id_format != NULL) {
		g_string_append(g, "  <md:NameIDFormat>");
		xml_escape(g, sp->name_id_format);
		g_string_append(g, "</md:NameIDFormat>\n");
	}
	g_string_append(g, "  <md:AssertionConsumerService index=\"0\" "
			   "isDefault=\"true\" Binding=\"urn:oasis:names:tc:"
			   "SAML:2.0:bindings:HTTP-POST\" Location=\"");
	xml_escape(g, sp->acs_url);
	g_string_append(g, "\"/>\n </md:SPSSODescriptor>\n"
			   "</md:EntityDescriptor>\n");
	s = strdup(g->str);
out:
	g_string_free(g, TRUE);
	g_string_free(c, TRUE);
	return s;
}

static int
is_md(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && n->ns != NULL &&
	       strcmp((const char *)n->ns->href,
		      "urn:oasis:names:tc:SAML:2.0:metadata") == 0 &&
	       strcmp((const char *)n->name, name) == 0;
}

/* The first X509Certificate below n, as an EVP_PKEY (caller frees). */
static EVP_PKEY *
cert_key(xmlNode *n)
{
	for (; n != NULL; n = n->next) {
		EVP_PKEY *k;

		if (n->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)n->name, "X509Certificate") == 0) {
			xmlChar *t = xmlNodeGetContent(n);
			guchar *der = NULL;
			gsize len = 0;
			const unsigned char *pp;
			X509 *x;

			if (t != NULL)
				der = g_base64_decode((const char *)t, &len);
			xmlFree(t);
			pp = der;
			x = der ? d2i_X509(NULL, &pp, (long)len) : NULL;
			g_free(der);
			k = x ? X509_get_pubkey(x) : NULL;
			X509_free(x);
			return k;
		}
		if ((k = cert_key(n->children)) != NULL)
			return k;
	}
	return NULL;
}

/* The IdP's signing keys (KeyDescriptor use="signing" or no use). */
static void
load_idp_keys(struct saml_sp *sp, const char *md)
{
	xmlDoc *doc = xmlReadMemory(md, (int)strlen(md), "idp.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR |
					    XML_PARSE_NOWARNING);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;

	for (xmlNode *d = root ? root->children : NULL; d; d = d->next) {
		if (!is_md(d, "IDPSSODescriptor"))
			continue;
		for (xmlNode *k = d->children; k; k = k->next) {
			xmlChar *use;
			int signing;

			if (!is_md(k, "KeyDescriptor") ||
			    sp->nidp_keys >= SAML_MAX_IDP_KEYS)
				continue;
			use = xmlGetProp(k, (const xmlChar *)"use");
			signing = use == NULL ||
				  strcmp((const char *)use, "signing") == 0;
			xmlFree(use);
			if (signing &&
			    (sp->idp_keys[sp->nidp_keys] = cert_key(k->children)))
				sp->nidp_keys++;
		}
	}
	if (doc != NULL)
		xmlFreeDoc(doc);
}

static void
first_provider(gpointer key, gpointer value, gpointer user)
{
	char **out = user;

	(void)value;
	if (*out == NULL)
		*out = strdup((const char *)key);
}

int
saml_sp_open(const struct saml_sp_config *cfg, struct saml_sp **out,
	     char *err, size_t errlen)
{
	struct saml_sp *sp = NULL;
	char *key = NULL, *cert = NULL, *idp = NULL, *base = NULL;
	size_t bl;
	int r = -1, rc, have_mu = 0, fetched = 0;

	*out = NULL;
	if (cfg->entity_id == NULL || *cfg->entity_id == '\0' ||
	    cfg->base_url == NULL) {
		errf(err, errlen, "[saml] entity_id and [server] public_url "
				  "are required");
		goto out;
	}
	if ((sp = calloc(1, sizeof(*sp))) == NULL ||
	    (base = strdup(cfg->base_url)) == NULL)
		goto oom;
	bl = strlen(base);
	while (bl > 0 && base[bl - 1] == '/')
		base[--bl] = '\0';
	if (pthread_mutex_init(&sp->mu, NULL) != 0)
		goto oom;
	if (pthread_mutex_init(&sp->md_mu, NULL) != 0) {
		pthread_mutex_destroy(&sp->mu);
		goto oom;
	}
	if (pthread_mutex_init(&sp->stop_mu, NULL) != 0 ||
	    pthread_cond_init(&sp->stop_cv, NULL) != 0) {
		pthread_mutex_destroy(&sp->mu);
		pthread_mutex_destroy(&sp->md_mu);
		goto oom;
	}
	have_mu = 1;
	sp->entity_id = strdup(cfg->entity_id);
	{
		size_t n = bl + sizeof("/saml/acs");

		sp->acs_url = malloc(n);
		if (sp->acs_url == NULL)
			goto oom;
		rc = snprintf(sp->acs_url, n, "%s/saml/acs", base);
		if (rc < 0 || (size_t)rc >= n)
			goto oom;
	}
	sp->name_id_format = cfg->name_id_format && *cfg->name_id_format
				     ? strdup(cfg->name_id_format)
				     : NULL;
	sp->directory_key = strdup(cfg->directory_key ? cfg->directory_key
						       : "nameid");
	if (sp->entity_id == NULL || sp->directory_key == NULL)
		goto oom;
	sp->authn_request_post = cfg->authn_request_post;
	sp->log = cfg->log;
	sp->log_arg = cfg->log_arg;
	sp->max_response_bytes = cfg->max_response_bytes
					 ? cfg->max_response_bytes
					 : 256 * 1024;

	if ((key = read_file("key_file", cfg->key_file, err, errlen)) == NULL ||
	    (cert = read_file("cert_file", cfg->cert_file, err, errlen)) ==
		    NULL)
		goto out;
	if (cfg->idp_metadata_url != NULL && *cfg->idp_metadata_url != '\0') {
		char ferr[512];

		if (strncmp(cfg->idp_metadata_url, "https://", 8) != 0) {
			errf(err, errlen, "[saml] idp_metadata_url must be an "
					  "https:// URL");
			goto out;
		}
		sp->md_url = strdup(cfg->idp_metadata_url);
		sp->md_ca_file = cfg->idp_metadata_ca_file
					 ? strdup(cfg->idp_metadata_ca_file)
					 : NULL;
		sp->md_cache_file = cfg->idp_metadata_file
					    ? strdup(cfg->idp_metadata_file)
					    : NULL;
		sp->md_refresh_s = cfg->idp_metadata_refresh_s;
		sp->md_last_fetch = time(NULL);
		idp = saml_md_fetch(sp->md_url, sp->md_ca_file, ferr,
				    sizeof(ferr));
		if (idp == NULL && sp->md_cache_file != NULL &&
		    access(sp->md_cache_file, R_OK) == 0) {
			saml_log(sp, 1, "saml_metadata_fetch_failed",
				 "%s; using the last good copy %s", ferr,
				 sp->md_cache_file);
			idp = read_file("idp_metadata_file", sp->md_cache_file,
					err, errlen);
		} else if (idp == NULL) {
			errf(err, errlen, "[saml] idp_metadata_url: %s", ferr);
		} else if (sp->md_cache_file != NULL) {
			fetched = 1;
		}
		if (idp == NULL)
			goto out;
	} else if ((idp = read_file("idp_metadata_file",
				    cfg->idp_metadata_file, err, errlen)) ==
		   NULL) {
		goto out;
	}
	if (cfg->idp_metadata_signing_cert != NULL &&
	    *cfg->idp_metadata_signing_cert != '\0' &&
	    (sp->md_pinned = read_file("idp_metadata_signing_cert",
				       cfg->idp_metadata_signing_cert, err,
				       errlen)) == NULL)
		goto out;
	if (saml_md_check(idp, NULL, time(NULL), err, errlen) != 0)
		goto out;
	if (sp->md_pinned != NULL &&
	    saml_md_verify(idp, sp->md_pinned, err, errlen) != 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", err);
		errf(err, errlen, "[saml] IdP metadata: %s", why);
		goto out;
	}
	sp->metadata = build_metadata(sp, base, cert,
				      cfg->want_assertions_signed);
	if (sp->metadata == NULL) {
		errf(err, errlen, "[saml] cert_file %s holds no PEM certificate",
		     cfg->cert_file);
		goto out;
	}
	/* No certificate for lasso: it would embed it in every signature's
	 * KeyInfo, and xmlsec 1.2.37 leaks a BIO each time it attaches one.
	 * The IdP takes our key from our metadata, which carries the cert. */
	sp->server = lasso_server_new_from_buffers(sp->metadata, key, NULL,
						   NULL);
	if (sp->server == NULL) {
		errf(err, errlen,
		     "[saml] key_file/cert_file: lasso cannot use this key "
		     "pair (PEM RSA key and its certificate expected)");
		goto out;
	}
	sp->server->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
	if (saml_sp_set_idp(sp, idp, err, errlen) != 0)
		goto out;
	if (fetched) {
		FILE *f = fopen(sp->md_cache_file, "w");

		if (f != NULL) {
			fputs(idp, f);
			fclose(f);
		}
	}
	sp->pol.sp_entity_id = sp->entity_id;
	sp->pol.acs_url = sp->acs_url;
	sp->pol.idp_entity_id = sp->idp_entity_id;
	sp->pol.directory_key = sp->directory_key;
	sp->pol.want_assertions_signed = cfg->want_assertions_signed;
	sp->pol.clock_skew_s = cfg->clock_skew_s;
	sp->pol.allow_unsolicited = cfg->allow_unsolicited;
	if (saml_sp_start_refresher(sp) != 0) {
		errf(err, errlen, "cannot start the metadata refresh thread");
		goto out;
	}
	*out = sp;
	sp = NULL;
	r = 0;
	goto out;
oom:
	errf(err, errlen, "out of memory");
out:
	if (key != NULL) {
		sodium_memzero(key, strlen(key));
		free(key);
	}
	free(cert);
	free(idp);
	free(base);
	if (sp != NULL) {
		if (!have_mu) {
			free(sp);
		} else {
			saml_sp_close(sp);
		}
	}
	return r;
}

void
saml_sp_close(struct saml_sp *sp)
{
	if (sp == NULL)
		return;
	saml_sp_stop_refresher(sp);
	if (sp->server != NULL)
		lasso_server_destroy(sp->server);
	free(sp->idp_md);
	free(sp->md_url);
	free(sp->md_ca_file);
	free(sp->md_cache_file);
	free(sp->md_pinned);
	free(sp->metadata);
	free(sp->entity_id);
	free(sp->acs_url);
	free(sp->idp_entity_id);
	free(sp->name_id_format);
	free(sp->directory_key);
	for (int i = 0; i < sp->nidp_keys; i++)
		EVP_PKEY_free(sp->idp_keys[i]);
	pthread_mutex_destroy(&sp->mu);
	pthread_mutex_destroy(&sp->md_mu);
	pthread_mutex_destroy(&sp->stop_mu);
	pthread_cond_destroy(&sp->stop_cv);
	free(sp);
}

int
saml_sp_set_idp(struct saml_sp *sp, const char *xml, char *err,
		size_t errlen)
{
	char *copy = strdup(xml);
	int rc;

	if (copy == NULL) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	if (sp->idp_entity_id != NULL)
		g_hash_table_remove(sp->server->providers, sp->idp_entity_id);
	rc = lasso_server_add_provider_from_buffer(
		sp->server, LASSO_PROVIDER_ROLE_IDP, copy, NULL, NULL);
	if (rc != 0 || g_hash_table_size(sp->server->providers) != 1) {
		errf(err, errlen, "not usable IdP metadata (exactly one IdP "
				  "expected): %s",
		     lasso_strerror(rc));
		g_hash_table_remove_all(sp->server->providers);
		if (sp->idp_md != NULL)
			(void)lasso_server_add_provider_from_buffer(
				sp->server, LASSO_PROVIDER_ROLE_IDP,
				sp->idp_md, NULL, NULL);
		free(copy);
		return -1;
	}
	if (sp->idp_entity_id == NULL)
		g_hash_table_foreach(sp->server->providers, first_provider,
				     &sp->idp_entity_id);
	for (int i = 0; i < sp->nidp_keys; i++)
		EVP_PKEY_free(sp->idp_keys[i]);
	sp->nidp_keys = 0;
	load_idp_keys(sp, copy);
	free(sp->idp_md);
	sp->idp_md = copy;
	if (sp->idp_entity_id == NULL) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * SIGHUP: the IdP metadata again, checked as at start (one
 * EntityDescriptor for the entityID in use, validUntil ahead, the pinned
 * signature if one is configured) before it replaces the metadata in use.
 */
int
saml_sp_reload_idp(struct saml_sp *sp, const char *file, char *err,
		   size_t errlen)
{
	char why[512];
	char *xml;
	int r = -1;

	if (sp->md_url != NULL)
		return saml_sp_refresh(sp, err, errlen);
	xml = read_file("idp_metadata_file", file, err, errlen);
	if (xml == NULL)
		return -1;
	if (saml_md_check(xml, sp->idp_entity_id, time(NULL), why,
			  sizeof(why)) != 0 ||
	    (sp->md_pinned != NULL &&
	     saml_md_verify(xml, sp->md_pinned, why, sizeof(why)) != 0)) {
		errf(err, errlen, "[saml] idp_metadata_file %s: %s", file, why);
		goto out;
	}
	pthread_mutex_lock(&sp->mu);
	if (sp->idp_md != NULL && strcmp(sp->idp_md, xml) == 0)
		r = 0;
	else
		r = saml_sp_set_idp(sp, xml, err, errlen) == 0 ? 1 : -1;
	pthread_mutex_unlock(&sp->mu);
out:
	free(xml);
	return r;
}

int
saml_sp_metadata_from_url(const struct saml_sp *sp)
{
	return sp->md_url != NULL;
}

const char *
saml_sp_metadata(const struct saml_sp *sp)
{
	return sp->metadata;
}

const char *
saml_sp_idp_entity_id(const struct saml_sp *sp)
{
	return sp->idp_entity_id;
}

const char *
saml_sp_acs_url(const struct saml_sp *sp)
{
	return sp->acs_url;
}

/* An auto-submitting form (POST binding). */
static char *
post_form(const char *url, const char *field, const char *value,
	  const char *relay)
{
	GString *g = g_string_new(NULL);
	char *s;

	g_string_append(g, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
			   "<title>Signing in</title></head>"
			   "<body onload=\"document.forms[0].submit()\">"
			   "<form method=\"post\" action=\"");
	xml_escape(g, url);
	g_string_append_printf(g, "\"><input type=\"hidden\" name=\"%s\" "
				  "value=\"", field);
	xml_escape(g, value);
	g_string_append(g, "\">");
	if (relay != NULL) {
		g_string_append(g, "<input type=\"hidden\" name=\"RelayState\" "
				   "value=\"");
		xml_escape(g, relay);
		g_string_append(g, "\">");
	}
	g_string_append(g, "<noscript><button type=\"submit\">Continue"
			   "</button></noscript></form></body></html>\n");
	s = strdup(g->str);
	g_string_free(g, TRUE);
	return s;
}

int
saml_sp_authn_request(struct saml_sp *sp, const char *relay_state,
		      char **request_id, char **redirect_url, char **post_html,
		      char *err, size_t errlen)
{
	LassoLogin *login = NULL;
	LassoProfile *prof;
	LassoSamlp2AuthnRequest *req;
	int r = -1, rc;

	*request_id = *redirect_url = *post_html = NULL;
	pthread_mutex_lock(&sp->mu);
	login = lasso_login_new(sp->server);
	if (login == NULL) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	prof = LASSO_PROFILE(login);
	rc = lasso_login_init_authn_request(
		login, sp->idp_entity_id,
		sp->authn_request_post ? LASSO_HTTP_METHOD_POST
				       : LASSO_HTTP_METHOD_REDIRECT);
	if (rc != 0) {
		errf(err, errlen, "cannot start an AuthnRequest: %s",
		     lasso_strerror(rc));
		goto out;
	}
	req = LASSO_SAMLP2_AUTHN_REQUEST(prof->request);
	if (req->NameIDPolicy == NULL)
		req->NameIDPolicy = LASSO_SAMLP2_NAME_ID_POLICY(
			lasso_samlp2_name_id_policy_new());
	g_free(req->NameIDPolicy->Format);
	req->NameIDPolicy->Format =
		g_strdup(sp->name_id_format ? sp->name_id_format
					    : LASSO_SAML2_NAME_IDENTIFIER_FORMAT_UNSPECIFIED);
	req->NameIDPolicy->AllowCreate = TRUE;
	g_free(req->ProtocolBinding);
	req->ProtocolBinding = g_strdup(LASSO_SAML2_METADATA_BINDING_POST);
	if (relay_state != NULL)
		prof->msg_relayState = g_strdup(relay_state);
	rc = lasso_login_build_authn_request_msg(login);
	if (rc != 0 || prof->msg_url == NULL) {
		errf(err, errlen, "cannot build the AuthnRequest: %s",
		     lasso_strerror(rc));
		goto out;
	}
	*request_id = strdup(LASSO_SAMLP2_REQUEST_ABSTRACT(req)->ID);
	if (sp->authn_request_post)
		*post_html = post_form(prof->msg_url, "SAMLRequest",
				       prof->msg_body ? prof->msg_body : "",
				       relay_state);
	else
		*redirect_url = strdup(prof->msg_url);
	if (*request_id == NULL || (*post_html == NULL && *redirect_url == NULL)) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	r = 0;
out:
	if (login != NULL)
		g_object_unref(login);
	pthread_mutex_unlock(&sp->mu);
	if (r != 0) {
		free(*request_id);
		free(*redirect_url);
		free(*post_html);
		*request_id = *redirect_url = *post_html = NULL;
	}
	return r;
}

/* lasso's verdict as one of our reason codes. */
static const char *
lasso_reason(int rc)
{
	switch (rc) {
	case LASSO_DS_ERROR_SIGNATURE_NOT_FOUND:
		return SAML_R_UNSIGNED;
	case LASSO_DS_ERROR_INVALID_SIGNATURE:
	case LASSO_DS_ERROR_SIGNATURE_VERIFICATION_FAILED:
	case LASSO_DS_ERROR_DIGEST_COMPUTE_FAILED:
	case LASSO_DS_ERROR_TOO_MUCH_REFERENCES:
	case LASSO_DS_ERROR_INVALID_REFERENCE_FOR_SAML:
	case LASSO_DS_ERROR_INVALID_SIGALG:
		return SAML_R_SIGNATURE_INVALID;
	case LASSO_SERVER_ERROR_PROVIDER_NOT_FOUND:
	case LASSO_PROFILE_ERROR_MISSING_ISSUER:
	case LASSO_PROFILE_ERROR_INVALID_ISSUER:
	case LASSO_PROFILE_ERROR_UNKNOWN_PROVIDER:
		return SAML_R_UNKNOWN_ISSUER;
	case LASSO_PROFILE_ERROR_STATUS_NOT_SUCCESS:
	case LASSO_LOGIN_ERROR_STATUS_NOT_SUCCESS:
		return SAML_R_STATUS;
	default:
		return SAML_R_LASSO;
	}
}

int
saml_sp_acs(struct saml_sp *sp, const char *b64, size_t b64len, time_t now,
	    struct saml_identity *out, const char **reason, char *detail,
	    size_t detaillen)
{
	LassoLogin *login = NULL;
	LassoProfile *prof;
	xmlDoc *doc = NULL;
	unsigned char *xml = NULL;
	char *msg = NULL;
	size_t xml_len = 0, cap;
	int r = -1, rc, locked = 0;

	memset(out, 0, sizeof(*out));
	*reason = SAML_R_BAD_REQUEST;
	if (detail != NULL && detaillen > 0)
		detail[0] = '\0';
	if (b64 == NULL || b64len == 0) {
		errf(detail, detaillen, "no SAMLResponse in the request");
		goto out;
	}
	cap = b64len / 4 * 3 + 3;
	if (cap > sp->max_response_bytes + 3) {
		*reason = SAML_R_TOO_LARGE;
		errf(detail, detaillen, "SAMLResponse larger than %zu bytes",
		     sp->max_response_bytes);
		goto out;
	}
	if ((xml = malloc(cap + 1)) == NULL ||
	    (msg = malloc(b64len + 1)) == NULL) {
		*reason = SAML_R_INTERNAL;
		goto out;
	}
	if (sodium_base642bin(xml, cap, b64, b64len, " \t\r\n", &xml_len,
			      NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		errf(detail, detaillen, "SAMLResponse is not base64");
		goto out;
	}
	xml[xml_len] = '\0';
	memcpy(msg, b64, b64len);
	msg[b64len] = '\0';
	if (saml_raw_precheck((const char *)xml, xml_len, &doc, reason, detail,
			      detaillen) != 0)
		goto out;

	for (int attempt = 0;; attempt++) {
		pthread_mutex_lock(&sp->mu);
		locked = 1;
		login = lasso_login_new(sp->server);
		if (login == NULL) {
			*reason = SAML_R_INTERNAL;
			goto out;
		}
		prof = LASSO_PROFILE(login);
		rc = lasso_login_process_authn_response_msg(login, msg);
		if (rc == 0)
			break;
		*reason = lasso_reason(rc);
		errf(detail, detaillen, "lasso: %s (%d)", lasso_strerror(rc),
		     rc);
		g_object_unref(login);
		login = NULL;
		pthread_mutex_unlock(&sp->mu);
		locked = 0;
		/* A key rollover shows as a signature failure: refetch the
		 * IdP's metadata once and try again. */
		if (attempt > 0 || strcmp(*reason, SAML_R_SIGNATURE_INVALID) != 0 ||
		    saml_sp_refresh_on_failure(sp) != 1)
			goto out;
		memcpy(msg, b64, b64len);
		msg[b64len] = '\0';
	}
	if (!LASSO_IS_SAMLP2_RESPONSE(prof->response)) {
		*reason = SAML_R_NOT_RESPONSE;
		goto out;
	}
	if (saml_check_response(&sp->pol, LASSO_SAMLP2_RESPONSE(prof->response),
				doc, now, out, reason, detail,
				detaillen) != 0)
		goto out;
	r = 0;
out:
	if (login != NULL)
		g_object_unref(login);
	if (locked)
		pthread_mutex_unlock(&sp->mu);
	if (doc != NULL)
		xmlFreeDoc(doc);
	free(xml);
	free(msg);
	if (r != 0)
		saml_identity_free(out);
	return r;
}
