/*
 * libFuzzer target: SAML response processing, up to and including
 * roomgate's own checks.
 *
 * At start the target makes a test IdP key pair and an SP key pair
 * (saml_keygen, in a temp dir removed at exit; nothing is committed),
 * writes the IdP's metadata and opens a real SP (saml_sp_open) on it.
 *
 * Input byte 0 picks how the rest (a decoded SAMLResponse) is used:
 *  - bit 0 or bit 1 set: the document is parsed, its first Assertion
 *    (bit 0) and/or the Response (bit 1) signed with the IdP key
 *    (enveloped, RSA-SHA256, exclusive C14N) the way an IdP signs, and
 *    the result goes base64-encoded through saml_sp_acs(): lasso's
 *    signature and issuer checks, then roomgate's (Destination, exactly
 *    one assertion, signature policy, bearer confirmation, Recipient,
 *    time windows with skew, Audience, conditions, InResponseTo, the
 *    directory key). So mutated content reaches the checks behind the
 *    signature, as from a trusted IdP gone wrong.
 *  - neither bit: the bytes go unsigned through saml_sp_acs() (a forged
 *    or broken response) and through saml_raw_precheck() +
 *    saml_check_response() directly on lasso's parse.
 * Contract: an accepted response names the identity, the assertion id
 * and the IdP; a refused one has a reason code and leaves no identity;
 * an unsigned input is never accepted.
 * Run: build/fuzz/fuzz_saml_response -max_len=65536 tests/fuzz/corpus/saml_response
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <sodium.h>
#include <xmlsec/crypto.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>

#include "saml/saml_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1893456000 /* 2030-01-01T00:00:00Z: the seeds' time */
#define IDP "https://idp.example/saml"
#define SP_BASE "https://sp.example"
#define SP_ENTITY SP_BASE "/saml/metadata"
#define NS_SAML "urn:oasis:names:tc:SAML:2.0:assertion"

static char dir[] = "/tmp/rgfuzz-saml.XXXXXX";
static struct saml_sp *sp;
static xmlSecKeyPtr idp_key;

static void
path_in(char *out, size_t outlen, const char *name)
{
	if (snprintf(out, outlen, "%s/%s", dir, name) >= (int)outlen)
		abort();
}

static void
cleanup(void)
{
	static const char *const names[] = {"idp.key", "idp.crt", "sp.key",
	                                    "sp.crt", "idp.xml"};
	char p[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		path_in(p, sizeof(p), names[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* The IdP metadata: its entity id, signing certificate and SSO URL. */
static void
write_idp_metadata(const char *crt_path, const char *md_path)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	char pem[8192], *b, *e;
	size_t n;
	FILE *f = fopen(crt_path, "r");

	if (f == NULL)
		abort();
	n = fread(pem, 1, sizeof(pem) - 1, f);
	fclose(f);
	pem[n] = '\0';
	b = strstr(pem, begin);
	e = b != NULL ? strstr(b, "-----END CERTIFICATE-----") : NULL;
	if (e == NULL)
		abort();
	b += sizeof(begin) - 1;
	*e = '\0';
	f = fopen(md_path, "w");
	if (f == NULL)
		abort();
	fprintf(f,
	        "<md:EntityDescriptor "
	        "xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
	        "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" "
	        "entityID=\"" IDP "\">"
	        "<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:"
	        "names:tc:SAML:2.0:protocol\"><md:KeyDescriptor use=\"signing\">"
	        "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
	        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
	        "</md:KeyDescriptor><md:SingleSignOnService Binding=\"urn:oasis:"
	        "names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"" IDP
	        "/sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>\n",
	        b);
	if (fclose(f) != 0)
		abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct saml_sp_config cfg;
	char err[512], idp_key_p[128], idp_crt_p[128], sp_key_p[128],
	    sp_crt_p[128], md_p[128];

	(void)argc;
	(void)argv;
	if (saml_init(err, sizeof(err)) != 0 || mkdtemp(dir) == NULL)
		abort();
	atexit(cleanup);
	path_in(idp_key_p, sizeof(idp_key_p), "idp.key");
	path_in(idp_crt_p, sizeof(idp_crt_p), "idp.crt");
	path_in(sp_key_p, sizeof(sp_key_p), "sp.key");
	path_in(sp_crt_p, sizeof(sp_crt_p), "sp.crt");
	path_in(md_p, sizeof(md_p), "idp.xml");
	if (saml_keygen(idp_key_p, idp_crt_p, "fuzz-idp", 3650, err,
	                sizeof(err)) != 0 ||
	    saml_keygen(sp_key_p, sp_crt_p, "fuzz-sp", 3650, err,
	                sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_saml_response: %s\n", err);
		abort();
	}
	write_idp_metadata(idp_crt_p, md_p);
	memset(&cfg, 0, sizeof(cfg));
	cfg.entity_id = SP_ENTITY;
	cfg.base_url = SP_BASE;
	cfg.key_file = sp_key_p;
	cfg.cert_file = sp_crt_p;
	cfg.idp_metadata_file = md_p;
	cfg.directory_key = "mail";
	cfg.want_assertions_signed = 0;
	cfg.clock_skew_s = 60;
	cfg.allow_unsolicited = 0;
	cfg.max_response_bytes = 256 * 1024;
	if (saml_sp_open(&cfg, &sp, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_saml_response: %s\n", err);
		abort();
	}
	idp_key = xmlSecOpenSSLAppKeyLoad(idp_key_p, xmlSecKeyDataFormatPem,
	                                  NULL, NULL, NULL);
	if (idp_key == NULL)
		abort();
	return 0;
}

static xmlNode *
find_el(xmlNode *n, const char *name)
{
	for (; n != NULL; n = n->next) {
		xmlNode *f;

		if (n->type == XML_ELEMENT_NODE && n->ns != NULL &&
		    n->ns->href != NULL &&
		    strcmp((const char *)n->ns->href, NS_SAML) == 0 &&
		    strcmp((const char *)n->name, name) == 0)
			return n;
		if ((f = find_el(n->children, name)) != NULL)
			return f;
	}
	return NULL;
}

/* Signs el (which must carry an ID) in place: an enveloped signature
 * after its Issuer child, as SAML places it. 0 or -1. */
static int
sign_element(xmlDoc *doc, xmlNode *el)
{
	xmlAttr *id = xmlHasProp(el, (const xmlChar *)"ID");
	xmlChar *idv;
	xmlNode *sig, *ref, *issuer = NULL;
	xmlSecDSigCtxPtr ctx;
	char uri[256];
	int r = -1;

	if (id == NULL || (idv = xmlNodeGetContent((xmlNode *)id)) == NULL)
		return -1;
	if (snprintf(uri, sizeof(uri), "#%s", (const char *)idv) >=
	        (int)sizeof(uri) ||
	    xmlAddID(NULL, doc, idv, id) == NULL) {
		xmlFree(idv);
		return -1;
	}
	xmlFree(idv);
	sig = xmlSecTmplSignatureCreate(doc, xmlSecTransformExclC14NId,
	                                xmlSecTransformRsaSha256Id, NULL);
	if (sig == NULL)
		return -1;
	for (xmlNode *c = el->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)c->name, "Issuer") == 0) {
			issuer = c;
			break;
		}
	if (issuer != NULL)
		xmlAddNextSibling(issuer, sig);
	else if (el->children != NULL)
		xmlAddPrevSibling(el->children, sig);
	else
		xmlAddChild(el, sig);
	ref = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id,
	                                      NULL, (const xmlChar *)uri, NULL);
	if (ref == NULL ||
	    xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId) ==
	        NULL ||
	    xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId) ==
	        NULL)
		return -1;
	ctx = xmlSecDSigCtxCreate(NULL);
	if (ctx == NULL)
		return -1;
	ctx->signKey = xmlSecKeyDuplicate(idp_key);
	if (ctx->signKey != NULL && xmlSecDSigCtxSign(ctx, sig) == 0)
		r = 0;
	xmlSecDSigCtxDestroy(ctx);
	return r;
}

/* saml_sp_acs on xml (len bytes); 1 when accepted. */
static int
acs(const unsigned char *xml, size_t len)
{
	struct saml_identity id;
	const char *reason = NULL;
	char detail[512];
	size_t b64len = sodium_base64_ENCODED_LEN(
	    len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64len);
	int r;

	if (b64 == NULL)
		return 0;
	sodium_bin2base64(b64, b64len, xml, len,
	                  sodium_base64_VARIANT_ORIGINAL);
	r = saml_sp_acs(sp, b64, strlen(b64), NOW, &id, &reason, detail,
	                sizeof(detail));
	free(b64);
	if (getenv("RG_FUZZ_DEBUG") != NULL) /* to check seeds by hand */
		fprintf(stderr, "acs: %s %s\n", r == 0 ? "accepted" : reason,
		        r == 0 ? id.identity : detail);
	if (r == 0) {
		if (id.identity == NULL || id.identity[0] == '\0' ||
		    id.assertion_id == NULL || id.idp == NULL ||
		    strcmp(id.idp, IDP) != 0)
			abort();
		saml_identity_free(&id);
		return 1;
	}
	if (reason == NULL || reason[0] == '\0' || id.identity != NULL ||
	    id.assertion_id != NULL)
		abort();
	return 0;
}

static void
direct_checks(const uint8_t *data, size_t size)
{
	struct saml_identity id;
	const char *reason;
	char detail[256];
	xmlDoc *doc = NULL;
	LassoNode *node;

	if (saml_raw_precheck((const char *)data, size, &doc, &reason, detail,
	                      sizeof(detail)) != 0)
		return;
	node = lasso_node_new_from_xmlNode(xmlDocGetRootElement(doc));
	if (node != NULL && LASSO_IS_SAMLP2_RESPONSE(node) &&
	    saml_check_response(&sp->pol, LASSO_SAMLP2_RESPONSE(node), doc,
	                        NOW, &id, &reason, detail,
	                        sizeof(detail)) == 0)
		saml_identity_free(&id);
	if (node != NULL)
		g_object_unref(node);
	xmlFreeDoc(doc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	xmlDoc *doc;
	xmlNode *root, *as;
	xmlChar *out = NULL;
	int outlen = 0, mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	if ((mode & 3) == 0) {
		if (acs(data, size))
			abort(); /* nobody signed it */
		direct_checks(data, size);
		return 0;
	}
	if (size > INT32_MAX)
		return 0;
	doc = xmlReadMemory((const char *)data, (int)size, "fuzz.xml", NULL,
	                    XML_PARSE_NONET);
	root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
	if (root == NULL) {
		xmlFreeDoc(doc);
		return 0;
	}
	as = find_el(root, "Assertion");
	if ((mode & 1) && as != NULL && sign_element(doc, as) != 0)
		goto out;
	if ((mode & 2) && sign_element(doc, root) != 0)
		goto out;
	xmlDocDumpMemory(doc, &out, &outlen);
	if (out != NULL && outlen > 0)
		(void)acs(out, (size_t)outlen);
out:
	xmlFree(out);
	xmlFreeDoc(doc);
	return 0;
}
