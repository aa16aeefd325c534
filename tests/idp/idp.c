/*
 * roomgate-test-idp -- a small SAML 2.0 Identity Provider on lasso's IdP
 * API, for the test suite and the local demo stack. Not for production.
 *
 *   GET  /metadata  the IdP's metadata
 *   GET  /sso       HTTP-Redirect AuthnRequest: shows a login form
 *   POST /sso       form (q = the original query, user, password, break):
 *                   checks the password, answers with an auto-submitting
 *                   HTTP-POST form carrying a signed Response to the ACS
 *
 * Users come from a file of "user:password:mail" lines. The "break" field
 * (tests only; refused unless --allow-break) produces deliberately broken
 * responses: altered before signing (still validly signed) or after.
 *
 * Ownership: everything lives for the process; per request state is freed
 * before the handler returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <lasso/lasso.h>
#include <lasso/xml/misc_text_node.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_attribute.h>
#include <lasso/xml/saml-2.0/saml2_attribute_statement.h>
#include <lasso/xml/saml-2.0/saml2_attribute_value.h>
#include <lasso/xml/saml-2.0/saml2_audience_restriction.h>
#include <lasso/xml/saml-2.0/saml2_conditions.h>
#include <lasso/xml/saml-2.0/saml2_strings.h>
#include <lasso/xml/saml-2.0/saml2_subject.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation_data.h>
#include <lasso/xml/saml-2.0/samlp2_logout_request.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <lasso/xml/saml-2.0/samlp2_status.h>
#include <lasso/xml/saml-2.0/samlp2_status_code.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <microhttpd.h>
#include <sodium.h>
#include <xmlsec/crypto.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>

#define NS_SAML "urn:oasis:names:tc:SAML:2.0:assertion"
#define NS_SAMLP "urn:oasis:names:tc:SAML:2.0:protocol"
#define NS_DS "http://www.w3.org/2000/09/xmldsig#"
#define MAX_SP 4
#define MAX_USERS 64

struct user {
	char name[64], password[128], mail[128];
	char *session_dump; /* lasso session of the last login, for SLO */
};

static struct {
	char *entity_id, *base_url, *key, *cert, *alt_key, *alt_cert;
	char *sp_md[MAX_SP];
	int nsp;
	char *metadata;
	char *alt_metadata, *expired_metadata; /* for /admin modes */
	char *tampered_metadata; /* signed, then changed */
	int md_mode; /* 0 normal, 1 rollover to the alt key, 2 broken,
		      * 3 expired, 4 tampered */
	int sign_metadata;
	struct user users[MAX_USERS];
	int nusers;
	int allow_break;
	LassoServer *server, *alt_server;
	LassoServer *twin_server; /* SPs' ACS URLs + "-evil" */
	pthread_mutex_t mu;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("test-idp: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL)
		die("cannot read %s: %s", path, strerror(errno));
	buf = malloc(1024 * 1024 + 1);
	if (buf == NULL)
		die("out of memory");
	n = fread(buf, 1, 1024 * 1024, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void
escape(GString *s, const char *v)
{
	for (; *v; v++) {
		switch (*v) {
		case '&': g_string_append(s, "&amp;"); break;
		case '<': g_string_append(s, "&lt;"); break;
		case '>': g_string_append(s, "&gt;"); break;
		case '"': g_string_append(s, "&quot;"); break;
		default: g_string_append_c(s, *v); break;
		}
	}
}

static char *
build_metadata(const char *certf, const char *valid_until)
{
	GString *s = g_string_new(NULL);
	char *pem = slurp(certf), *b, *e;

	b = strstr(pem, "-----BEGIN CERTIFICATE-----");
	e = b ? strstr(b, "-----END CERTIFICATE-----") : NULL;
	if (e == NULL)
		die("%s holds no certificate", certf);
	b += strlen("-----BEGIN CERTIFICATE-----");
	*e = '\0';
	g_string_append(s, "<?xml version=\"1.0\"?>\n<md:EntityDescriptor "
			   "xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
			   "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" "
			   "entityID=\"");
	escape(s, g.entity_id);
	g_string_append(s, "\" ID=\"_idpmd");
	if (valid_until != NULL)
		g_string_append_printf(s, "\" validUntil=\"%s", valid_until);
	g_string_append(s, "\">\n <md:IDPSSODescriptor WantAuthnRequestsSigned="
			   "\"true\" protocolSupportEnumeration=\"urn:oasis:"
			   "names:tc:SAML:2.0:protocol\">\n  <md:KeyDescriptor "
			   "use=\"signing\"><ds:KeyInfo><ds:X509Data>"
			   "<ds:X509Certificate>");
	for (char *p = b; *p; p++)
		if (*p != '\n' && *p != '\r')
			g_string_append_c(s, *p);
	g_string_append(s, "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
			   "</md:KeyDescriptor>\n  <md:SingleLogoutService "
			   "Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:"
			   "HTTP-Redirect\" Location=\"");
	escape(s, g.base_url);
	g_string_append(s, "/slo\"/>\n  <md:NameIDFormat>urn:oasis:names:tc:"
			   "SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>"
			   "\n  <md:SingleSignOnService Binding=\"urn:oasis:names:"
			   "tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"");
	escape(s, g.base_url);
	g_string_append(s, "/sso\"/>\n  <md:SingleSignOnService Binding=\"urn:"
			   "oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" "
			   "Location=\"");
	escape(s, g.base_url);
	g_string_append(s, "/sso\"/>\n </md:IDPSSODescriptor>\n"
			   "</md:EntityDescriptor>\n");
	free(pem);
	return g_string_free(s, FALSE);
}

/* Signs metadata (enveloped, RSA-SHA256, reference to the root ID) with
 * the IdP key; the result replaces md (freed). */
static char *
sign_md(char *md)
{
	xmlDoc *doc = xmlReadMemory(md, (int)strlen(md), "md.xml", NULL, 0);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNode *sig, *ref;
	xmlSecDSigCtxPtr ctx;
	xmlChar *out = NULL;
	int len = 0;
	char *res;

	if (root == NULL)
		die("cannot parse own metadata");
	xmlAddID(NULL, doc, (const xmlChar *)"_idpmd",
		 xmlHasProp(root, (const xmlChar *)"ID"));
	sig = xmlSecTmplSignatureCreate(doc, xmlSecTransformExclC14NId,
					xmlSecTransformRsaSha256Id, NULL);
	if (root->children != NULL)
		xmlAddPrevSibling(root->children, sig);
	else
		xmlAddChild(root, sig);
	ref = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id, NULL,
					      (const xmlChar *)"#_idpmd", NULL);
	xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId);
	xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId);
	ctx = xmlSecDSigCtxCreate(NULL);
	ctx->signKey = xmlSecOpenSSLAppKeyLoad(g.key, xmlSecKeyDataFormatPem,
					       NULL, NULL, NULL);
	if (ctx->signKey == NULL || xmlSecDSigCtxSign(ctx, sig) < 0)
		die("cannot sign own metadata");
	xmlSecDSigCtxDestroy(ctx);
	xmlDocDumpMemory(doc, &out, &len);
	xmlFreeDoc(doc);
	res = strdup((const char *)out);
	xmlFree(out);
	free(md);
	return res;
}

static LassoServer *
make_server(const char *keyf, const char *certf)
{
	char *key = slurp(keyf), *cert = slurp(certf);
	LassoServer *s = lasso_server_new_from_buffers(g.metadata, key, NULL,
							 cert);

	if (s == NULL)
		die("lasso refuses key %s / cert %s", keyf, certf);
	s->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
	free(key);
	free(cert);
	return s;
}

/* SP metadata is read on first use: the SP may start after the IdP.
 * evil: every ACS Location gets "-evil" appended, so lasso signs a
 * Destination and Recipient that are not the SP's. */
static int
load_sps(LassoServer *s, int evil)
{
	if (g_hash_table_size(s->providers) > 0)
		return 0;
	for (int i = 0; i < g.nsp; i++) {
		char *md = slurp(g.sp_md[i]);
		GString *t = g_string_new(md);
		int rc;

		if (evil)
			g_string_replace(t, "/saml/acs\"", "/saml/acs-evil\"",
					 0);
		rc = lasso_server_add_provider_from_buffer(
			s, LASSO_PROVIDER_ROLE_SP, t->str, NULL, NULL);
		g_string_free(t, TRUE);
		free(md);
		if (rc != 0) {
			fprintf(stderr, "test-idp: SP metadata %s: %s\n",
				g.sp_md[i], lasso_strerror(rc));
			return -1;
		}
	}
	return 0;
}

static void
load_users(const char *path)
{
	char *text = slurp(path), *line = text, *nl;

	for (; line != NULL && *line != '\0'; line = nl) {
		char *p1, *p2;
		struct user *u;

		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl++ = '\0';
		p1 = strchr(line, ':');
		if (p1 == NULL || (p2 = strchr(p1 + 1, ':')) == NULL ||
		    g.nusers >= MAX_USERS)
			continue;
		u = &g.users[g.nusers++];
		*p1 = *p2 = '\0';
		snprintf(u->name, sizeof(u->name), "%s", line);
		snprintf(u->password, sizeof(u->password), "%s", p1 + 1);
		snprintf(u->mail, sizeof(u->mail), "%s", p2 + 1);
	}
	sodium_memzero(text, strlen(text));
	free(text);
}

static struct user *
check_user(const char *name, const char *password)
{
	for (int i = 0; i < g.nusers; i++) {
		size_t a = strlen(password), b = strlen(g.users[i].password);

		if (strcmp(g.users[i].name, name) == 0 && a == b &&
		    sodium_memcmp(password, g.users[i].password, a) == 0)
			return &g.users[i];
	}
	return NULL;
}

/* ---- libxml2 helpers for post-signing breaks ------------------------- */

static int
is_el(const xmlNode *n, const char *ns, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
	       strcmp((const char *)n->ns->href, ns) == 0 &&
	       strcmp((const char *)n->name, name) == 0;
}

static xmlNode *
child(xmlNode *p, const char *ns, const char *name)
{
	for (xmlNode *c = p ? p->children : NULL; c; c = c->next)
		if (is_el(c, ns, name))
			return c;
	return NULL;
}

static xmlNode *
find(xmlNode *n, const char *ns, const char *name)
{
	for (; n; n = n->next) {
		xmlNode *f;

		if (is_el(n, ns, name))
			return n;
		if ((f = find(n->children, ns, name)) != NULL)
			return f;
	}
	return NULL;
}

static void
set_nameid(xmlNode *assertion, const char *v)
{
	xmlNode *n = find(assertion->children, NS_SAML, "NameID");

	if (n != NULL)
		xmlNodeSetContent(n, (const xmlChar *)v);
}

static void
drop(xmlNode *n)
{
	if (n != NULL) {
		xmlUnlinkNode(n);
		xmlFreeNode(n);
	}
}

/* A forged copy of assertion a: other ID and NameID; signature kept only
 * if keep_sig. */
static xmlNode *
evil_copy(xmlDoc *doc, xmlNode *a, int keep_sig, int new_id)
{
	xmlNode *e = xmlDocCopyNode(a, doc, 1);

	if (new_id)
		xmlSetProp(e, (const xmlChar *)"ID", (const xmlChar *)"_evil1");
	set_nameid(e, "evil@example.com");
	if (!keep_sig)
		drop(child(e, NS_DS, "Signature"));
	return e;
}

/* Applies a post-signing break to the decoded XML; returns new XML. */
static char *
post_sign(const char *xml, const char *brk)
{
	xmlDoc *doc;
	xmlNode *root, *a, *e, *sig;
	xmlChar *out = NULL;
	int len = 0;
	char *res;

	doc = xmlReadMemory(xml, (int)strlen(xml), "r.xml", NULL, 0);
	if (doc == NULL)
		return NULL;
	root = xmlDocGetRootElement(doc);
	a = child(root, NS_SAML, "Assertion");
	if (a == NULL) {
		xmlFreeDoc(doc);
		return NULL;
	}
	if (strcmp(brk, "recipient_wrong") == 0) {
		/* Signed with Recipient and Destination ".../acs-evil";
		 * drop the Response signature and put the right
		 * Destination back: only the (signed) Recipient is wrong. */
		xmlChar *dst = xmlGetProp(root, (const xmlChar *)"Destination");
		char *fixed = dst ? g_strdup((const char *)dst) : NULL;
		char *evil = fixed ? strstr(fixed, "-evil") : NULL;

		if (evil != NULL)
			*evil = '\0';
		drop(child(root, NS_DS, "Signature"));
		if (fixed != NULL)
			xmlSetProp(root, (const xmlChar *)"Destination",
				   (const xmlChar *)fixed);
		xmlFree(dst);
		g_free(fixed);
	} else if (strcmp(brk, "unsigned") == 0) {
		drop(child(root, NS_DS, "Signature"));
		drop(child(a, NS_DS, "Signature"));
	} else if (strcmp(brk, "unsigned_response_mixed") == 0) {
		/* CVE-2021-28091 shape: unsigned Response, one signed and one
		 * unsigned assertion. */
		drop(child(root, NS_DS, "Signature"));
		xmlAddNextSibling(a, evil_copy(doc, a, 0, 1));
	} else if (strcmp(brk, "two_assertions") == 0) {
		xmlAddNextSibling(a, xmlDocCopyNode(a, doc, 1));
	} else if (strcmp(brk, "xsw1") == 0 || strcmp(brk, "xsw2") == 0) {
		e = xmlDocCopyNode(root, doc, 1);
		xmlSetProp(e, (const xmlChar *)"ID", (const xmlChar *)"_evilr");
		set_nameid(e, "evil@example.com");
		sig = child(e, NS_DS, "Signature");
		if (sig == NULL)
			sig = child(child(e, NS_SAML, "Assertion"), NS_DS,
				    "Signature");
		if (brk[3] == '1')
			xmlAddChild(sig, xmlDocCopyNode(root, doc, 1));
		else
			xmlAddPrevSibling(sig, xmlDocCopyNode(root, doc, 1));
		xmlDocSetRootElement(doc, e);
		xmlFreeNode(root);
	} else if (strcmp(brk, "xsw3") == 0) {
		xmlAddPrevSibling(a, evil_copy(doc, a, 0, 1));
	} else if (strcmp(brk, "xsw4") == 0) {
		e = evil_copy(doc, a, 0, 1);
		xmlAddPrevSibling(a, e);
		xmlUnlinkNode(a);
		xmlAddChild(e, a);
	} else if (strcmp(brk, "xsw5") == 0) {
		e = evil_copy(doc, a, 1, 0);
		xmlAddPrevSibling(a, e);
		drop(child(a, NS_DS, "Signature"));
		xmlUnlinkNode(a);
		xmlAddChild(root, a);
	} else if (strcmp(brk, "xsw6") == 0) {
		e = evil_copy(doc, a, 1, 0);
		xmlAddPrevSibling(a, e);
		xmlUnlinkNode(a);
		drop(child(a, NS_DS, "Signature"));
		xmlAddChild(child(e, NS_DS, "Signature"), a);
	} else if (strcmp(brk, "xsw7") == 0) {
		xmlNode *ext = xmlNewDocNode(doc, NULL,
					     (const xmlChar *)"Extensions",
					     NULL);
		xmlNs *ns = xmlSearchNsByHref(doc, root,
					      (const xmlChar *)NS_SAMLP);

		xmlSetNs(ext, ns);
		e = evil_copy(doc, a, 0, 1);
		xmlAddPrevSibling(a, e);
		xmlUnlinkNode(a);
		xmlAddChild(ext, a);
		xmlAddPrevSibling(e, ext);
	} else if (strcmp(brk, "xsw8") == 0) {
		xmlNode *obj;
		xmlNs *ns;

		e = evil_copy(doc, a, 1, 0);
		xmlAddPrevSibling(a, e);
		xmlUnlinkNode(a);
		drop(child(a, NS_DS, "Signature"));
		sig = child(e, NS_DS, "Signature");
		ns = xmlSearchNsByHref(doc, sig, (const xmlChar *)NS_DS);
		obj = xmlNewDocNode(doc, ns, (const xmlChar *)"Object", NULL);
		xmlAddChild(sig, obj);
		xmlAddChild(obj, a);
	} else {
		xmlFreeDoc(doc);
		return NULL;
	}
	xmlDocDumpMemory(doc, &out, &len);
	xmlFreeDoc(doc);
	res = out ? strdup((const char *)out) : NULL;
	xmlFree(out);
	return res;
}

/* String-level edits after signing. */
static char *
replace_once(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	GString *r;

	if (p == NULL)
		return NULL;
	r = g_string_new_len(s, p - s);
	g_string_append(r, to);
	g_string_append(r, p + strlen(from));
	return g_string_free(r, FALSE);
}

static char *
b64dec(const char *b64)
{
	size_t n = strlen(b64), len = 0;
	char *out = malloc(n + 1);

	if (out == NULL || sodium_base642bin((unsigned char *)out, n, b64, n,
					     " \r\n", &len, NULL,
					     sodium_base64_VARIANT_ORIGINAL) !=
				   0) {
		free(out);
		return NULL;
	}
	out[len] = '\0';
	return out;
}

static char *
b64enc(const char *s)
{
	size_t n = strlen(s), cap = sodium_base64_encoded_len(
				      n, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(cap);

	if (out != NULL)
		sodium_bin2base64(out, cap, (const unsigned char *)s, n,
				  sodium_base64_VARIANT_ORIGINAL);
	return out;
}

static void
set_str(char **field, const char *v)
{
	g_free(*field);
	*field = v ? g_strdup(v) : NULL;
}

static void
iso(time_t t, char *out, size_t n)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
add_attribute(LassoSaml2AttributeStatement *st, const char *name,
	      const char *value)
{
	LassoSaml2Attribute *at = LASSO_SAML2_ATTRIBUTE(lasso_saml2_attribute_new());
	LassoSaml2AttributeValue *v = lasso_saml2_attribute_value_new();
	LassoMiscTextNode *t = lasso_misc_text_node_new_with_string(value);

	t->text_child = TRUE;
	at->Name = g_strdup(name);
	at->NameFormat = g_strdup(LASSO_SAML2_ATTRIBUTE_NAME_FORMAT_BASIC);
	v->any = g_list_append(NULL, t);
	at->AttributeValue = g_list_append(NULL, v);
	st->Attribute = g_list_append(st->Attribute, at);
}

/* Changes made before signing: the result is validly signed. */
static void
pre_sign(LassoSamlp2Response *resp, LassoSaml2Assertion *as, const char *brk)
{
	LassoSamlp2StatusResponse *sr = LASSO_SAMLP2_STATUS_RESPONSE(resp);
	LassoSaml2SubjectConfirmation *sc = as->Subject->SubjectConfirmation;
	LassoSaml2SubjectConfirmationData *d =
		sc ? sc->SubjectConfirmationData : NULL;
	char past[32], past2[32], future[32];
	time_t now = time(NULL);

	iso(now - 600, past, sizeof(past));
	iso(now - 1200, past2, sizeof(past2));
	iso(now + 600, future, sizeof(future));
	if (strcmp(brk, "audience_wrong") == 0) {
		LassoSaml2AudienceRestriction *ar =
			as->Conditions->AudienceRestriction->data;

		set_str(&ar->Audience, "https://evil.example/sp");
	} else if (strcmp(brk, "audience_missing") == 0) {
		g_list_free_full(as->Conditions->AudienceRestriction,
				 g_object_unref);
		as->Conditions->AudienceRestriction = NULL;
	} else if (strcmp(brk, "expired") == 0) {
		set_str(&as->Conditions->NotBefore, past2);
		set_str(&as->Conditions->NotOnOrAfter, past);
		if (d)
			set_str(&d->NotOnOrAfter, past);
	} else if (strcmp(brk, "notyet") == 0) {
		set_str(&as->Conditions->NotBefore, future);
	} else if (strcmp(brk, "confirmation_expired") == 0) {
		if (d)
			set_str(&d->NotOnOrAfter, past);
	} else if (strcmp(brk, "issuer_mismatch") == 0) {
		set_str(&as->Issuer->content, "https://other-idp.example/");
	} else if (strcmp(brk, "status_fail") == 0) {
		set_str(&sr->Status->StatusCode->Value,
			LASSO_SAML2_STATUS_CODE_RESPONDER);
	} else if (strcmp(brk, "no_nameid") == 0) {
		g_object_unref(as->Subject->NameID);
		as->Subject->NameID = NULL;
	} else if (strcmp(brk, "non_bearer") == 0) {
		if (sc)
			set_str(&sc->Method,
				LASSO_SAML2_CONFIRMATION_METHOD_HOLDER_OF_KEY);
	} else if (strcmp(brk, "unsolicited") == 0) {
		set_str(&sr->InResponseTo, NULL);
		if (d)
			set_str(&d->InResponseTo, NULL);
	} else if (strcmp(brk, "comment_nameid") == 0) {
		set_str(&as->Subject->NameID->content,
			"alice@example.com.evil.example");
	}
}

/* The signed Response for user u, as base64, and the ACS URL. */
static int
respond(const char *query, struct user *u, const char *brk,
	char **b64_out, char **acs_out, char *err, size_t errlen)
{
	LassoServer *srv = g.server;
	LassoLogin *login;
	LassoProfile *p;
	LassoSamlp2Response *resp;
	LassoSaml2Assertion *as;
	LassoSaml2AttributeStatement *st;
	char now_s[32], nb[32], na[32], *xml = NULL, *x2 = NULL;
	time_t now = time(NULL);
	int rc, r = -1;

	*b64_out = *acs_out = NULL;
	if (strcmp(brk, "wrong_key") == 0 || g.md_mode == 1)
		srv = g.alt_server;
	if (strcmp(brk, "recipient_wrong") == 0 ||
	    strcmp(brk, "destination_wrong") == 0)
		srv = g.twin_server;
	if (load_sps(srv, srv == g.twin_server) != 0) {
		snprintf(err, errlen, "SP metadata not loadable");
		return -1;
	}
	login = lasso_login_new(srv);
	p = LASSO_PROFILE(login);
	rc = lasso_login_process_authn_request_msg(login, query);
	if (rc != 0) {
		snprintf(err, errlen, "AuthnRequest refused: %s",
			 lasso_strerror(rc));
		goto out;
	}
	rc = lasso_login_validate_request_msg(login, TRUE, TRUE);
	if (rc != 0) {
		snprintf(err, errlen, "validate_request_msg: %s",
			 lasso_strerror(rc));
		goto out;
	}
	iso(now, now_s, sizeof(now_s));
	iso(now - 60, nb, sizeof(nb));
	iso(now + 300, na, sizeof(na));
	rc = lasso_login_build_assertion(login,
					 LASSO_SAML2_AUTHN_CONTEXT_PASSWORD,
					 now_s, NULL, nb, na);
	if (rc != 0) {
		snprintf(err, errlen, "build_assertion: %s", lasso_strerror(rc));
		goto out;
	}
	resp = LASSO_SAMLP2_RESPONSE(p->response);
	as = LASSO_SAML2_ASSERTION(resp->Assertion->data);
	if (as->Subject->NameID == NULL)
		as->Subject->NameID =
			LASSO_SAML2_NAME_ID(lasso_saml2_name_id_new());
	set_str(&as->Subject->NameID->content, u->mail);
	set_str(&as->Subject->NameID->Format,
		LASSO_SAML2_NAME_IDENTIFIER_FORMAT_EMAIL);
	set_str(&as->Subject->NameID->NameQualifier, NULL);
	set_str(&as->Subject->NameID->SPNameQualifier, NULL);
	st = LASSO_SAML2_ATTRIBUTE_STATEMENT(
		lasso_saml2_attribute_statement_new());
	add_attribute(st, "uid", u->name);
	add_attribute(st, "mail", u->mail);
	as->AttributeStatement = g_list_append(as->AttributeStatement, st);
	pre_sign(resp, as, brk);
	if (strcmp(brk, "sha1") == 0)
		srv->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA1;
	rc = lasso_login_build_authn_response_msg(login);
	srv->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
	if (rc != 0 || p->msg_body == NULL || p->msg_url == NULL) {
		snprintf(err, errlen, "build_authn_response_msg: %s",
			 lasso_strerror(rc));
		goto out;
	}
	*acs_out = strdup(p->msg_url);
	if (p->session != NULL && srv != g.twin_server) {
		g_free(u->session_dump);
		u->session_dump = lasso_session_dump(p->session);
	}
	xml = b64dec(p->msg_body);
	if (xml == NULL)
		goto out;
	if (getenv("IDP_DUMP") != NULL)
		fprintf(stderr, "test-idp: response:\n%s\n", xml);
	if (strcmp(brk, "tamper") == 0) {
		x2 = replace_once(xml, u->mail, "evil@example.com");
	} else if (strcmp(brk, "comment_nameid") == 0) {
		x2 = replace_once(xml, "alice@example.com.evil.example",
				  "alice@example.com<!---->.evil.example");
	} else if (strcmp(brk, "doctype") == 0) {
		const char *e = strncmp(xml, "<?xml", 5) == 0
					? strstr(xml, "?>") + 2
					: xml;
		GString *s = g_string_new_len(xml, e - xml);

		g_string_append(s, "<!DOCTYPE r [<!ENTITY x SYSTEM "
				   "\"file:///etc/passwd\">]>\n");
		g_string_append(s, e);
		x2 = g_string_free(s, FALSE);
	} else if (strcmp(brk, "unsigned") == 0 ||
		   strcmp(brk, "unsigned_response_mixed") == 0 ||
		   strcmp(brk, "two_assertions") == 0 ||
		   strcmp(brk, "recipient_wrong") == 0 ||
		   strncmp(brk, "xsw", 3) == 0) {
		x2 = post_sign(xml, brk);
	}
	if (x2 != NULL) {
		free(xml);
		xml = x2;
	}
	*b64_out = b64enc(xml);
	if (*b64_out == NULL || *acs_out == NULL)
		goto out;
	r = 0;
out:
	free(xml);
	g_object_unref(login);
	if (r != 0) {
		free(*b64_out);
		free(*acs_out);
		*b64_out = *acs_out = NULL;
	}
	return r;
}

/* ---- HTTP --------------------------------------------------------------- */

struct req {
	char *raw_uri;
	GString *body;
};

static void *
uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct req *r = calloc(1, sizeof(*r));

	(void)cls;
	(void)c;
	if (r != NULL)
		r->raw_uri = strdup(uri);
	return r;
}

static enum MHD_Result
send_text(struct MHD_Connection *c, unsigned int status, const char *type,
	  const char *text)
{
	struct MHD_Response *mr = MHD_create_response_from_buffer(
		strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	MHD_add_response_header(mr, "Content-Type", type);
	MHD_add_response_header(mr, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, status, mr);
	MHD_destroy_response(mr);
	return ret;
}

static const char *
form_get(struct MHD_Connection *c, const char *body, const char *name,
	 char *buf, size_t buflen)
{
	size_t nl = strlen(name);
	const char *p = body;

	(void)c;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t flen = amp ? (size_t)(amp - p) : strlen(p);

		if (flen > nl && p[nl] == '=' && strncmp(p, name, nl) == 0) {
			size_t vl = flen - nl - 1;

			if (vl >= buflen)
				return NULL;
			memcpy(buf, p + nl + 1, vl);
			buf[vl] = '\0';
			for (char *q = buf; *q; q++)
				if (*q == '+')
					*q = ' ';
			MHD_http_unescape(buf);
			return buf;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

static enum MHD_Result slo(struct MHD_Connection *c, const char *query);
static enum MHD_Result logout_init(struct MHD_Connection *c);

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload,
	   size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;
	GString *s;
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	if (r == NULL)
		return MHD_NO;
	if (strcmp(method, "POST") == 0) {
		if (r->body == NULL) {
			r->body = g_string_new(NULL);
			return MHD_YES;
		}
		if (*upload_size > 0) {
			if (r->body->len < 256 * 1024)
				g_string_append_len(r->body, upload,
						    (gssize)*upload_size);
			*upload_size = 0;
			return MHD_YES;
		}
	}
	if (strcmp(method, "GET") == 0 && strcmp(url, "/metadata") == 0) {
		if (g.md_mode == 2)
			return send_text(c, 500, "text/plain", "broken\n");
		return send_text(c, 200, "application/samlmetadata+xml",
				 g.md_mode == 1 && g.alt_metadata ? g.alt_metadata
				 : g.md_mode == 3 ? g.expired_metadata
				 : g.md_mode == 4 && g.tampered_metadata
					 ? g.tampered_metadata
					 : g.metadata);
	}
	if (strcmp(method, "GET") == 0 && strcmp(url, "/admin") == 0 &&
	    g.allow_break) {
		const char *m = MHD_lookup_connection_value(
			c, MHD_GET_ARGUMENT_KIND, "mode");
		static const char *const modes[] = {"normal", "rollover",
						    "broken", "expired",
						    "tampered"};

		for (int i = 0; m != NULL && i < 5; i++)
			if (strcmp(m, modes[i]) == 0) {
				g.md_mode = i;
				return send_text(c, 200, "text/plain", "ok\n");
			}
		return send_text(c, 400, "text/plain", "unknown mode\n");
	}
	if (strcmp(method, "GET") == 0 && strcmp(url, "/sso") == 0) {
		const char *q = strchr(r->raw_uri, '?');

		if (q == NULL)
			return send_text(c, 400, "text/plain", "no request\n");
		s = g_string_new("<!DOCTYPE html>\n<html><head><meta charset="
				 "\"utf-8\"><title>Test IdP sign-in</title>"
				 "</head><body><h1>Test IdP</h1><form method="
				 "\"post\" action=\"/sso\"><input type=\"hidden\" "
				 "name=\"q\" value=\"");
		escape(s, q + 1);
		g_string_append(s, "\"><label>User <input name=\"user\"></label> "
				   "<label>Password <input name=\"password\" "
				   "type=\"password\"></label> <button>Sign in"
				   "</button></form></body></html>\n");
		ret = send_text(c, 200, "text/html; charset=utf-8", s->str);
		g_string_free(s, TRUE);
		return ret;
	}
	if (strcmp(method, "POST") == 0 && strcmp(url, "/sso") == 0) {
		static char q[64 * 1024];
		char user[128], pw[256], brk[64], err[512];
		char *b64 = NULL, *acs = NULL;
		struct user *u;

		pthread_mutex_lock(&g.mu);
		if (form_get(c, r->body->str, "SAMLRequest", q, sizeof(q)) !=
		    NULL) {
			/* HTTP-POST binding: the login form carries the
			 * base64 message, which lasso takes like a query. */
			pthread_mutex_unlock(&g.mu);
			s = g_string_new("<!DOCTYPE html>\n<html><body><form "
					 "method=\"post\" action=\"/sso\">"
					 "<input type=\"hidden\" name=\"q\" "
					 "value=\"");
			escape(s, q);
			g_string_append(s, "\"><input name=\"user\"><input "
					   "name=\"password\" type=\"password\">"
					   "<button>Sign in</button></form>"
					   "</body></html>\n");
			ret = send_text(c, 200, "text/html; charset=utf-8",
					s->str);
			g_string_free(s, TRUE);
			return ret;
		}
		if (form_get(c, r->body->str, "q", q, sizeof(q)) == NULL ||
		    form_get(c, r->body->str, "user", user, sizeof(user)) ==
			    NULL ||
		    form_get(c, r->body->str, "password", pw, sizeof(pw)) ==
			    NULL) {
			pthread_mutex_unlock(&g.mu);
			return send_text(c, 400, "text/plain",
					 "q, user and password required\n");
		}
		if (form_get(c, r->body->str, "break", brk, sizeof(brk)) ==
		    NULL)
			brk[0] = '\0';
		if (brk[0] != '\0' && !g.allow_break) {
			pthread_mutex_unlock(&g.mu);
			return send_text(c, 403, "text/plain",
					 "break modes are off\n");
		}
		u = check_user(user, pw);
		sodium_memzero(pw, sizeof(pw));
		if (u == NULL) {
			pthread_mutex_unlock(&g.mu);
			return send_text(c, 403, "text/plain",
					 "wrong user or password\n");
		}
		if (respond(q, u, brk, &b64, &acs, err, sizeof(err)) != 0) {
			pthread_mutex_unlock(&g.mu);
			fprintf(stderr, "test-idp: %s\n", err);
			return send_text(c, 400, "text/plain", err);
		}
		pthread_mutex_unlock(&g.mu);
		s = g_string_new("<!DOCTYPE html>\n<html><head><meta charset="
				 "\"utf-8\"><title>Continue</title></head>"
				 "<body onload=\"document.forms[0].submit()\">"
				 "<form method=\"post\" action=\"");
		escape(s, acs);
		g_string_append(s, "\"><input type=\"hidden\" "
				   "name=\"SAMLResponse\" value=\"");
		escape(s, b64);
		g_string_append(s, "\"><noscript><button>Continue</button>"
				   "</noscript></form></body></html>\n");
		ret = send_text(c, 200, "text/html; charset=utf-8", s->str);
		g_string_free(s, TRUE);
		free(b64);
		free(acs);
		return ret;
	}
	if (strcmp(method, "GET") == 0 && strcmp(url, "/slo") == 0) {
		const char *q = strchr(r->raw_uri, '?');

		pthread_mutex_lock(&g.mu);
		ret = q ? slo(c, q + 1)
			: send_text(c, 400, "text/plain", "no message\n");
		pthread_mutex_unlock(&g.mu);
		return ret;
	}
	if (strcmp(method, "GET") == 0 && strcmp(url, "/logout-init") == 0) {
		pthread_mutex_lock(&g.mu);
		ret = logout_init(c);
		pthread_mutex_unlock(&g.mu);
		return ret;
	}
	return send_text(c, 404, "text/plain", "not found\n");
}

static enum MHD_Result
send_redirect(struct MHD_Connection *c, const char *url)
{
	struct MHD_Response *mr = MHD_create_response_from_buffer(
		0, (void *)(uintptr_t)"", MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	MHD_add_response_header(mr, "Location", url);
	ret = MHD_queue_response(c, 302, mr);
	MHD_destroy_response(mr);
	return ret;
}

static struct user *
user_by(const char *name, const char *mail)
{
	for (int i = 0; i < g.nusers; i++)
		if ((name && strcmp(g.users[i].name, name) == 0) ||
		    (mail && strcmp(g.users[i].mail, mail) == 0))
			return &g.users[i];
	return NULL;
}

/* /slo: the SP's LogoutRequest (answered, signed) or its LogoutResponse. */
static enum MHD_Result
slo(struct MHD_Connection *c, const char *query)
{
	LassoLogout *lo;
	LassoProfile *p;
	LassoSamlp2LogoutRequest *lr;
	struct user *u;
	enum MHD_Result ret;
	int rc;

	if (strstr(query, "SAMLResponse=") != NULL)
		return send_text(c, 200, "text/plain", "logged out at the SP\n");
	if (load_sps(g.server, 0) != 0)
		return send_text(c, 500, "text/plain", "no SP metadata\n");
	lo = lasso_logout_new(g.server);
	p = LASSO_PROFILE(lo);
	rc = lasso_logout_process_request_msg(lo, (char *)query);
	if (rc != 0) {
		g_object_unref(lo);
		return send_text(c, 400, "text/plain", lasso_strerror(rc));
	}
	lr = LASSO_SAMLP2_LOGOUT_REQUEST(p->request);
	u = lr->NameID ? user_by(NULL, lr->NameID->content) : NULL;
	if (u != NULL && u->session_dump != NULL)
		lasso_profile_set_session_from_dump(p, u->session_dump);
	(void)lasso_logout_validate_request(lo);
	rc = lasso_logout_build_response_msg(lo);
	ret = rc == 0 && p->msg_url
		      ? send_redirect(c, p->msg_url)
		      : send_text(c, 500, "text/plain", lasso_strerror(rc));
	g_object_unref(lo);
	return ret;
}

/* /logout-init?user=U[&break=unsigned|wrong_key]: IdP-initiated logout of
 * U's last session at the SP. */
static enum MHD_Result
logout_init(struct MHD_Connection *c)
{
	const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						       "user");
	const char *brk = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						      "break");
	LassoServer *srv = g.server;
	struct user *u = name ? user_by(name, NULL) : NULL;
	LassoLogout *lo;
	LassoProfile *p;
	enum MHD_Result ret;
	char *url;
	int rc;

	if (u == NULL || u->session_dump == NULL)
		return send_text(c, 404, "text/plain", "no session\n");
	if (brk != NULL && !g.allow_break)
		return send_text(c, 403, "text/plain", "break modes are off\n");
	if ((brk != NULL && strcmp(brk, "wrong_key") == 0) || g.md_mode == 1)
		srv = g.alt_server;
	if (load_sps(srv, 0) != 0)
		return send_text(c, 500, "text/plain", "no SP metadata\n");
	lo = lasso_logout_new(srv);
	p = LASSO_PROFILE(lo);
	lasso_profile_set_session_from_dump(p, u->session_dump);
	rc = lasso_logout_init_request(lo, NULL, LASSO_HTTP_METHOD_REDIRECT);
	if (rc == 0)
		rc = lasso_logout_build_request_msg(lo);
	if (rc != 0 || p->msg_url == NULL) {
		g_object_unref(lo);
		return send_text(c, 500, "text/plain", lasso_strerror(rc));
	}
	url = g_strdup(p->msg_url);
	if (brk != NULL && strcmp(brk, "unsigned") == 0) {
		char *sa = strstr(url, "&SigAlg=");

		if (sa != NULL)
			*sa = '\0';
	}
	ret = send_redirect(c, url);
	g_free(url);
	g_object_unref(lo);
	return ret;
}

static void
on_done(void *cls, struct MHD_Connection *c, void **con_cls,
	enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r == NULL)
		return;
	free(r->raw_uri);
	if (r->body)
		g_string_free(r->body, TRUE);
	free(r);
	*con_cls = NULL;
}

static const char usage[] =
	"usage: idp --check-sp-metadata FILE\n"
	"       idp --entity-id ID --base-url URL --key K --cert C\n"
	"           [--metadata-out FILE] [--port P --users FILE\n"
	"            --sp-metadata FILE... [--alt-key K --alt-cert C]\n"
	"            [--allow-break]]\n";

int
main(int argc, char **argv)
{
	const char *md_out = NULL, *users = NULL, *check_sp = NULL;
	struct MHD_Daemon *d;
	struct sockaddr_in sa;
	sigset_t set;
	int port = 0, sig;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--allow-break") == 0) {
			g.allow_break = 1;
			continue;
		}
		if (strcmp(a, "--sign-metadata") == 0) {
			g.sign_metadata = 1;
			continue;
		}
		if (v == NULL)
			die("%s", usage);
		i++;
		if (strcmp(a, "--entity-id") == 0)
			g.entity_id = argv[i];
		else if (strcmp(a, "--base-url") == 0)
			g.base_url = argv[i];
		else if (strcmp(a, "--key") == 0)
			g.key = argv[i];
		else if (strcmp(a, "--cert") == 0)
			g.cert = argv[i];
		else if (strcmp(a, "--alt-key") == 0)
			g.alt_key = argv[i];
		else if (strcmp(a, "--alt-cert") == 0)
			g.alt_cert = argv[i];
		else if (strcmp(a, "--metadata-out") == 0)
			md_out = argv[i];
		else if (strcmp(a, "--check-sp-metadata") == 0)
			check_sp = argv[i];
		else if (strcmp(a, "--users") == 0)
			users = argv[i];
		else if (strcmp(a, "--port") == 0)
			port = (int)strtol(argv[i], NULL, 10);
		else if (strcmp(a, "--sp-metadata") == 0 && g.nsp < MAX_SP)
			g.sp_md[g.nsp++] = argv[i];
		else
			die("%s", usage);
	}
	if (check_sp != NULL) {
		/* Loads SP metadata as lasso's IdP side does: exit 0 when it
		 * is usable, naming its ACS and entityID. */
		LassoProvider *p;
		char *acs;

		if (lasso_init() != 0)
			die("lasso_init failed");
		p = lasso_provider_new(LASSO_PROVIDER_ROLE_SP, check_sp, NULL,
				       NULL);
		if (p == NULL)
			die("%s is not usable SP metadata", check_sp);
		acs = lasso_provider_get_assertion_consumer_service_url(p, NULL);
		printf("entityID %s\nACS %s\n", p->ProviderID,
		       acs ? acs : "(none)");
		g_free(acs);
		g_object_unref(p);
		lasso_shutdown();
		return acs ? 0 : 1;
	}
	if (!g.entity_id || !g.base_url || !g.key || !g.cert)
		die("%s", usage);
	if (lasso_init() != 0 || sodium_init() < 0)
		die("lasso_init failed");
	g.metadata = build_metadata(g.cert, NULL);
	if (g.sign_metadata)
		g.metadata = sign_md(g.metadata);
	if (md_out != NULL) {
		FILE *f = fopen(md_out, "w");

		if (f == NULL || fputs(g.metadata, f) < 0 || fclose(f) != 0)
			die("cannot write %s", md_out);
	}
	if (port == 0) {
		free(g.metadata);
		lasso_shutdown();
		return 0;
	}
	if (users == NULL || g.nsp == 0)
		die("%s", usage);
	load_users(users);
	g.server = make_server(g.key, g.cert);
	g.twin_server = make_server(g.key, g.cert);
	if (g.alt_cert != NULL)
		g.alt_metadata = build_metadata(g.alt_cert, NULL);
	g.expired_metadata = build_metadata(g.cert, "2020-01-01T00:00:00Z");
	if (g.sign_metadata) {
		char *t;

		if (g.alt_metadata != NULL)
			g.alt_metadata = sign_md(g.alt_metadata);
		g.expired_metadata = sign_md(g.expired_metadata);
		t = strstr(g.metadata, "/slo\"");
		g.tampered_metadata = strdup(g.metadata);
		/* 4 bytes overwritten inside the string: no terminator */
		if (t != NULL)
			memcpy(g.tampered_metadata + (t - g.metadata), "/SLO", /* NOLINT(bugprone-not-null-terminated-result) */
			       4);
	}
	g.alt_server = g.alt_key && g.alt_cert
			       ? make_server(g.alt_key, g.alt_cert)
			       : make_server(g.key, g.cert);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(0x7f000001); /* loopback only */
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port,
			     NULL, NULL, on_request, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
			     MHD_OPTION_URI_LOG_CALLBACK, uri_log, NULL,
			     MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
			     MHD_OPTION_END);
	if (d == NULL)
		die("cannot listen on 127.0.0.1:%d", port);
	fprintf(stderr, "test-idp: listening on 127.0.0.1:%d\n", port);
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	lasso_server_destroy(g.server);
	lasso_server_destroy(g.alt_server);
	lasso_server_destroy(g.twin_server);
	for (int i = 0; i < g.nusers; i++)
		g_free(g.users[i].session_dump);
	free(g.metadata);
	free(g.alt_metadata);
	free(g.expired_metadata);
	free(g.tampered_metadata);
	lasso_shutdown();
	return 0;
}
