/*
 * The checks roomgate makes on a SAML Response beyond lasso's (see
 * ../shared/notes/lasso-sp.md): pure functions over the raw XML and the
 * objects lasso parsed from the same bytes. No I/O, no clock (now is an
 * argument), so unit tests and fuzz targets call them directly.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "saml/saml_int.h"

#define NS_SAMLP "urn:oasis:names:tc:SAML:2.0:protocol"
#define NS_SAML "urn:oasis:names:tc:SAML:2.0:assertion"
#define NS_DS "http://www.w3.org/2000/09/xmldsig#"
#define CM_BEARER "urn:oasis:names:tc:SAML:2.0:cm:bearer"
#define ST_SUCCESS "urn:oasis:names:tc:SAML:2.0:status:Success"

static void
det(char *d, size_t dl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void
det(char *d, size_t dl, const char *fmt, ...)
{
	va_list ap;

	if (d == NULL || dl == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(d, dl, fmt, ap);
	va_end(ap);
}

static int
is_el(const xmlNode *n, const char *ns, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE && n->ns != NULL &&
	       n->ns->href != NULL &&
	       strcmp((const char *)n->ns->href, ns) == 0 &&
	       strcmp((const char *)n->name, name) == 0;
}

/* Counts ns:name elements anywhere below (and including) n. */
static int
count_deep(const xmlNode *n, const char *ns, const char *name)
{
	int c = 0;

	for (; n != NULL; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (is_el(n, ns, name))
			c++;
		c += count_deep(n->children, ns, name);
	}
	return c;
}

static xmlNode *
child(const xmlNode *parent, const char *ns, const char *name)
{
	for (xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
		if (is_el(c, ns, name))
			return c;
	return NULL;
}

int
saml_parse_time(const char *s, time_t *out)
{
	static const int len[] = {4, 2, 2, 2, 2, 2};
	static const char sep[] = "--T::";
	int v[6];
	struct tm tm;
	size_t i = 0;

	if (s == NULL)
		return -1;
	for (int f = 0; f < 6; f++) {
		v[f] = 0;
		for (int k = 0; k < len[f]; k++, i++) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			v[f] = v[f] * 10 + (s[i] - '0');
		}
		if (f < 5 && s[i++] != sep[f])
			return -1;
	}
	if (s[i] == '.') {
		i++;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		while (s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (strcmp(s + i, "Z") != 0 && strcmp(s + i, "+00:00") != 0)
		return -1;
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	*out = timegm(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

int
saml_raw_precheck(const char *xml, size_t len, xmlDoc **docp,
		  const char **reason, char *detail, size_t detaillen)
{
	xmlDoc *doc = NULL;
	xmlNode *root, *a;
	int r = -1;

	*docp = NULL;
	*reason = SAML_R_XML_INVALID;
	if (len > (size_t)0x7fffffff)
		goto out;
	/* A DTD is never legitimate in a SAML message; refuse before the
	 * parser sees one (entity expansion, external fetches). */
	if (memmem(xml, len, "<!DOCTYPE", 9) != NULL ||
	    memmem(xml, len, "<!ENTITY", 8) != NULL) {
		*reason = SAML_R_DOCTYPE;
		det(detail, detaillen, "the response carries a DOCTYPE");
		goto out;
	}
	doc = xmlReadMemory(xml, (int)len, "response.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	if (doc == NULL) {
		det(detail, detaillen, "the response is not well-formed XML");
		goto out;
	}
	if (doc->intSubset != NULL || doc->extSubset != NULL) {
		*reason = SAML_R_DOCTYPE;
		det(detail, detaillen, "the response carries a DOCTYPE");
		goto out;
	}
	root = xmlDocGetRootElement(doc);
	if (!is_el(root, NS_SAMLP, "Response")) {
		*reason = SAML_R_NOT_RESPONSE;
		det(detail, detaillen, "the document is not a samlp:Response");
		goto out;
	}
	if (count_deep(root, NS_SAMLP, "Response") != 1) {
		*reason = SAML_R_RESPONSE_COUNT;
		det(detail, detaillen, "more than one Response element");
		goto out;
	}
	if (count_deep(root, NS_SAML, "EncryptedAssertion") != 0) {
		*reason = SAML_R_ENCRYPTED;
		det(detail, detaillen,
		    "encrypted assertions are not supported; configure the "
		    "IdP to sign, not encrypt");
		goto out;
	}
	if (count_deep(root, NS_SAML, "Assertion") != 1) {
		*reason = SAML_R_ASSERTION_COUNT;
		det(detail, detaillen,
		    "the response must hold exactly one Assertion");
		goto out;
	}
	a = child(root, NS_SAML, "Assertion");
	if (a == NULL) {
		*reason = SAML_R_ASSERTION_COUNT;
		det(detail, detaillen,
		    "the Assertion is not a direct child of the Response");
		goto out;
	}
	/* The Assertion's Issuer must be the Response's (lasso would call
	 * a foreign one an unknown provider; say what it is). */
	{
		xmlNode *ri = child(root, NS_SAML, "Issuer");
		xmlNode *ai = child(a, NS_SAML, "Issuer");
		xmlChar *rv = ri ? xmlNodeGetContent(ri) : NULL;
		xmlChar *av = ai ? xmlNodeGetContent(ai) : NULL;
		int same = rv != NULL && av != NULL &&
			   strcmp((const char *)rv, (const char *)av) == 0;

		xmlFree(rv);
		xmlFree(av);
		if (!same) {
			*reason = SAML_R_ISSUER_MISMATCH;
			det(detail, detaillen,
			    "Assertion Issuer differs from Response Issuer");
			goto out;
		}
	}
	*docp = doc;
	doc = NULL;
	*reason = SAML_R_OK;
	r = 0;
out:
	if (doc != NULL)
		xmlFreeDoc(doc);
	return r;
}

/*
 * Whether el carries an enveloped ds:Signature as a direct child whose one
 * Reference points at el's own ID. lasso verified any signature present;
 * this tells which element the verified signature covers.
 */
static int
signed_by_child(xmlNode *el)
{
	xmlNode *sig, *si, *ref;
	xmlChar *id = NULL, *uri = NULL;
	int refs = 0, ok = 0;

	sig = child(el, NS_DS, "Signature");
	si = sig ? child(sig, NS_DS, "SignedInfo") : NULL;
	if (si == NULL)
		return 0;
	for (xmlNode *c = si->children; c; c = c->next)
		if (is_el(c, NS_DS, "Reference"))
			refs++;
	ref = child(si, NS_DS, "Reference");
	if (refs != 1 || ref == NULL)
		return 0;
	id = xmlGetProp(el, (const xmlChar *)"ID");
	uri = xmlGetProp(ref, (const xmlChar *)"URI");
	if (id != NULL && uri != NULL && uri[0] == '#' &&
	    strcmp((const char *)uri + 1, (const char *)id) == 0)
		ok = 1;
	xmlFree(id);
	xmlFree(uri);
	return ok;
}

static int
alg_in(xmlNode *n, const char *const *allowed)
{
	xmlChar *a = n ? xmlGetProp(n, (const xmlChar *)"Algorithm") : NULL;
	int ok = 0;

	for (size_t i = 0; a != NULL && allowed[i] != NULL; i++)
		if (strcmp((const char *)a, allowed[i]) == 0)
			ok = 1;
	xmlFree(a);
	return ok;
}

/*
 * Our algorithm policy for a signature lasso verified: RSA or ECDSA with
 * SHA-256 or stronger, SHA-256 or stronger digests. lasso itself still
 * accepts RSA-SHA1; a collision-prone digest must not vouch for an
 * identity. 1 when acceptable.
 */
static int
sig_algs_ok(xmlNode *el)
{
	static const char *const sig_algs[] = {
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
		NULL,
	};
	static const char *const digests[] = {
		"http://www.w3.org/2001/04/xmlenc#sha256",
		"http://www.w3.org/2001/04/xmldsig-more#sha384",
		"http://www.w3.org/2001/04/xmlenc#sha512",
		NULL,
	};
	xmlNode *si = child(child(el, NS_DS, "Signature"), NS_DS, "SignedInfo");

	if (si == NULL || !alg_in(child(si, NS_DS, "SignatureMethod"), sig_algs))
		return 0;
	for (xmlNode *c = si->children; c; c = c->next)
		if (is_el(c, NS_DS, "Reference") &&
		    !alg_in(child(c, NS_DS, "DigestMethod"), digests))
			return 0;
	return 1;
}

static int
prop_eq(xmlNode *n, const char *name, const char *want)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
	int eq = v != NULL && want != NULL &&
		 strcmp((const char *)v, want) == 0;

	xmlFree(v);
	return eq;
}

/* A bearer SubjectConfirmation for us that is still valid. */
static const char *
check_confirmation(const struct saml_policy *pol, xmlNode *subject,
		   const char *irt, time_t now, time_t *until, char *detail,
		   size_t detaillen)
{
	const char *why = SAML_R_NOT_BEARER;
	int any = 0;

	for (xmlNode *c = subject->children; c; c = c->next) {
		xmlNode *d;
		xmlChar *nooa, *nb, *dirt;
		time_t t = 0, tb;
		const char *w = NULL;

		if (!is_el(c, NS_SAML, "SubjectConfirmation"))
			continue;
		any = 1;
		if (!prop_eq(c, "Method", CM_BEARER))
			continue;
		d = child(c, NS_SAML, "SubjectConfirmationData");
		if (d == NULL || !prop_eq(d, "Recipient", pol->acs_url)) {
			why = SAML_R_RECIPIENT;
			continue;
		}
		nooa = xmlGetProp(d, (const xmlChar *)"NotOnOrAfter");
		nb = xmlGetProp(d, (const xmlChar *)"NotBefore");
		dirt = xmlGetProp(d, (const xmlChar *)"InResponseTo");
		if (nooa == NULL ||
		    saml_parse_time((const char *)nooa, &t) != 0 ||
		    now >= t + pol->clock_skew_s)
			w = SAML_R_CONFIRMATION_EXPIRED;
		else if (nb != NULL &&
			 (saml_parse_time((const char *)nb, &tb) != 0 ||
			  now + pol->clock_skew_s < tb))
			w = SAML_R_NOT_YET_VALID;
		else if (dirt != NULL &&
			 (irt == NULL || strcmp((const char *)dirt, irt) != 0))
			w = SAML_R_IN_RESPONSE_TO;
		xmlFree(nooa);
		xmlFree(nb);
		xmlFree(dirt);
		if (w != NULL) {
			why = w;
			continue;
		}
		if (t > *until)
			*until = t;
		return NULL;
	}
	det(detail, detaillen, "%s",
	    any ? "no valid bearer SubjectConfirmation for our ACS"
		: "the Subject has no SubjectConfirmation");
	return why;
}

/* Audience required; every AudienceRestriction must name us. Only
 * Conditions we understand are allowed. */
static const char *
check_conditions_raw(const struct saml_policy *pol, xmlNode *cond,
		     char *detail, size_t detaillen)
{
	int restrictions = 0;

	if (cond == NULL) {
		det(detail, detaillen, "the assertion has no Conditions");
		return SAML_R_AUDIENCE_MISSING;
	}
	for (xmlNode *c = cond->children; c; c = c->next) {
		int ours = 0;

		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (is_el(c, NS_SAML, "OneTimeUse") ||
		    is_el(c, NS_SAML, "ProxyRestriction"))
			continue;
		if (!is_el(c, NS_SAML, "AudienceRestriction")) {
			det(detail, detaillen, "unknown condition <%s>",
			    (const char *)c->name);
			return SAML_R_CONDITION_UNKNOWN;
		}
		restrictions++;
		for (xmlNode *a = c->children; a; a = a->next) {
			xmlChar *v;

			if (!is_el(a, NS_SAML, "Audience"))
				continue;
			v = xmlNodeGetContent(a);
			if (v != NULL &&
			    strcmp((const char *)v, pol->sp_entity_id) == 0)
				ours = 1;
			xmlFree(v);
		}
		if (!ours) {
			det(detail, detaillen,
			    "an AudienceRestriction does not name %s",
			    pol->sp_entity_id);
			return SAML_R_AUDIENCE;
		}
	}
	if (restrictions == 0) {
		det(detail, detaillen, "no AudienceRestriction naming us");
		return SAML_R_AUDIENCE_MISSING;
	}
	return NULL;
}

/* {"Name": ["value", ...]} from the AttributeStatements of assertion a. */
static char *
attributes_json(xmlNode *a, const char *want, char **want_value)
{
	json_t *o = json_object();
	char *s = NULL;

	if (o == NULL)
		return NULL;
	for (xmlNode *st = a->children; st; st = st->next) {
		if (!is_el(st, NS_SAML, "AttributeStatement"))
			continue;
		for (xmlNode *at = st->children; at; at = at->next) {
			xmlChar *name;
			json_t *arr;

			if (!is_el(at, NS_SAML, "Attribute"))
				continue;
			name = xmlGetProp(at, (const xmlChar *)"Name");
			if (name == NULL)
				continue;
			arr = json_object_get(o, (const char *)name);
			if (arr == NULL) {
				arr = json_array();
				json_object_set_new(o, (const char *)name, arr);
			}
			for (xmlNode *v = at->children; v; v = v->next) {
				xmlChar *t;

				if (!is_el(v, NS_SAML, "AttributeValue"))
					continue;
				t = xmlNodeGetContent(v);
				if (t == NULL)
					continue;
				json_array_append_new(
					arr, json_string((const char *)t));
				if (want != NULL && *want_value == NULL &&
				    strcmp((const char *)name, want) == 0 &&
				    t[0] != '\0')
					*want_value = strdup((const char *)t);
				xmlFree(t);
			}
			xmlFree(name);
		}
	}
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int
saml_check_response(const struct saml_policy *pol, LassoSamlp2Response *resp,
		    xmlDoc *raw, time_t now, struct saml_identity *out,
		    const char **reason, char *detail, size_t detaillen)
{
	LassoSamlp2StatusResponse *sr;
	LassoSaml2Assertion *as;
	xmlNode *root, *a, *subj, *nid;
	xmlChar *raw_nameid = NULL;
	const char *why = SAML_R_INTERNAL, *irt;
	time_t t, until = 0;
	int r = -1, resp_signed, as_signed;

	memset(out, 0, sizeof(*out));
	*reason = SAML_R_INTERNAL;
	if (pol == NULL || resp == NULL || raw == NULL)
		goto out;
	sr = LASSO_SAMLP2_STATUS_RESPONSE(resp);
	root = xmlDocGetRootElement(raw);
	a = child(root, NS_SAML, "Assertion");

	/* Shape again (the caller may have skipped the precheck), and lasso
	 * must have parsed the same single assertion. */
	why = SAML_R_ASSERTION_COUNT;
	if (a == NULL || count_deep(root, NS_SAML, "Assertion") != 1 ||
	    g_list_length(resp->Assertion) != 1 ||
	    resp->EncryptedAssertion != NULL ||
	    !LASSO_IS_SAML2_ASSERTION(resp->Assertion->data)) {
		det(detail, detaillen, "exactly one plain Assertion required");
		goto out;
	}
	as = LASSO_SAML2_ASSERTION(resp->Assertion->data);
	if (as->ID == NULL || !prop_eq(a, "ID", as->ID)) {
		det(detail, detaillen, "assertion ID differs from the parsed one");
		goto out;
	}

	why = SAML_R_STATUS;
	if (sr->Status == NULL || sr->Status->StatusCode == NULL ||
	    sr->Status->StatusCode->Value == NULL ||
	    strcmp(sr->Status->StatusCode->Value, ST_SUCCESS) != 0) {
		det(detail, detaillen, "status is not Success");
		goto out;
	}

	why = SAML_R_DESTINATION;
	if (sr->Destination == NULL ||
	    strcmp(sr->Destination, pol->acs_url) != 0) {
		det(detail, detaillen, "Destination %.200s is not %s",
		    sr->Destination ? sr->Destination : "(none)",
		    pol->acs_url);
		goto out;
	}

	why = SAML_R_UNKNOWN_ISSUER;
	if (sr->Issuer == NULL || sr->Issuer->content == NULL ||
	    strcmp(sr->Issuer->content, pol->idp_entity_id) != 0) {
		det(detail, detaillen, "Response Issuer is not %s",
		    pol->idp_entity_id);
		goto out;
	}
	why = SAML_R_ISSUER_MISMATCH;
	if (as->Issuer == NULL || as->Issuer->content == NULL ||
	    strcmp(as->Issuer->content, sr->Issuer->content) != 0) {
		det(detail, detaillen,
		    "Assertion Issuer differs from Response Issuer");
		goto out;
	}

	resp_signed = signed_by_child(root);
	as_signed = signed_by_child(a);
	if (!resp_signed && !as_signed) {
		why = SAML_R_UNSIGNED;
		det(detail, detaillen, "neither Response nor Assertion signed");
		goto out;
	}
	if ((resp_signed && !sig_algs_ok(root)) ||
	    (as_signed && !sig_algs_ok(a))) {
		why = SAML_R_WEAK_ALGORITHM;
		det(detail, detaillen,
		    "signed with a weak algorithm (SHA-256 or stronger "
		    "required)");
		goto out;
	}
	if (pol->want_assertions_signed && !as_signed) {
		why = SAML_R_ASSERTION_UNSIGNED;
		det(detail, detaillen, "the Assertion must be signed");
		goto out;
	}

	irt = sr->InResponseTo;
	if (irt == NULL && !pol->allow_unsolicited) {
		why = SAML_R_UNSOLICITED;
		det(detail, detaillen,
		    "unsolicited response (no InResponseTo) refused");
		goto out;
	}

	why = SAML_R_NO_SUBJECT;
	subj = child(a, NS_SAML, "Subject");
	if (subj == NULL || as->Subject == NULL) {
		det(detail, detaillen, "the assertion has no Subject");
		goto out;
	}
	why = SAML_R_NO_NAMEID;
	nid = child(subj, NS_SAML, "NameID");
	if (nid == NULL || as->Subject->NameID == NULL ||
	    as->Subject->NameID->content == NULL) {
		det(detail, detaillen, "the Subject has no NameID");
		goto out;
	}
	/* Whole value: text of every child, comments skipped, never cut. */
	raw_nameid = xmlNodeGetContent(nid);
	if (raw_nameid == NULL || raw_nameid[0] == '\0' ||
	    strcmp((const char *)raw_nameid, as->Subject->NameID->content) !=
		    0) {
		why = SAML_R_XML_INVALID;
		det(detail, detaillen, "NameID value is ambiguous");
		goto out;
	}

	/* Conditions: time window with skew, then the raw element list. */
	if (as->Conditions != NULL && as->Conditions->NotBefore != NULL) {
		why = SAML_R_NOT_YET_VALID;
		if (saml_parse_time(as->Conditions->NotBefore, &t) != 0 ||
		    now + pol->clock_skew_s < t) {
			det(detail, detaillen, "not valid before %.40s",
			    as->Conditions->NotBefore);
			goto out;
		}
	}
	if (as->Conditions != NULL && as->Conditions->NotOnOrAfter != NULL) {
		why = SAML_R_EXPIRED;
		if (saml_parse_time(as->Conditions->NotOnOrAfter, &t) != 0 ||
		    now >= t + pol->clock_skew_s) {
			det(detail, detaillen, "expired at %.40s",
			    as->Conditions->NotOnOrAfter);
			goto out;
		}
		if (t > until)
			until = t;
	}
	why = check_confirmation(pol, subj, irt, now, &until, detail,
				 detaillen);
	if (why != NULL)
		goto out;

	why = check_conditions_raw(pol, child(a, NS_SAML, "Conditions"),
				   detail, detaillen);
	if (why != NULL)
		goto out;

	why = SAML_R_INTERNAL;
	out->name_id = strdup((const char *)raw_nameid);
	out->name_id_format = dup_or_null(as->Subject->NameID->Format);
	out->idp = strdup(sr->Issuer->content);
	out->assertion_id = strdup(as->ID);
	out->in_response_to = dup_or_null(irt);
	if (as->AuthnStatement != NULL &&
	    LASSO_IS_SAML2_AUTHN_STATEMENT(as->AuthnStatement->data)) {
		LassoSaml2AuthnStatement *st =
			LASSO_SAML2_AUTHN_STATEMENT(as->AuthnStatement->data);

		out->session_index = dup_or_null(st->SessionIndex);
		out->authn_instant = dup_or_null(st->AuthnInstant);
	}
	if (strcmp(pol->directory_key, "nameid") == 0) {
		out->attributes_json = attributes_json(a, NULL, NULL);
		out->identity = dup_or_null(out->name_id);
	} else {
		out->attributes_json =
			attributes_json(a, pol->directory_key, &out->identity);
	}
	if (out->name_id == NULL || out->idp == NULL ||
	    out->assertion_id == NULL || out->attributes_json == NULL ||
	    (irt != NULL && out->in_response_to == NULL))
		goto out;
	if (out->identity == NULL) {
		why = SAML_R_DIRECTORY_KEY;
		det(detail, detaillen, "the assertion has no %s value",
		    pol->directory_key);
		goto out;
	}
	out->replay_until = until + pol->clock_skew_s;
	why = SAML_R_OK;
	r = 0;
out:
	xmlFree(raw_nameid);
	*reason = why;
	if (r != 0)
		saml_identity_free(out);
	return r;
}

void
saml_identity_free(struct saml_identity *id)
{
	if (id == NULL)
		return;
	free(id->identity);
	free(id->name_id);
	free(id->name_id_format);
	free(id->idp);
	free(id->session_index);
	free(id->authn_instant);
	free(id->assertion_id);
	free(id->in_response_to);
	free(id->attributes_json);
	memset(id, 0, sizeof(*id));
}

int
saml_return_path_ok(const char *s)
{
	size_t n;

	if (s == NULL || s[0] != '/' || s[1] == '/' || s[1] == '\\')
		return 0;
	n = strlen(s);
	if (n > 2048)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c >= 0x7f || c == '\\')
			return 0;
	}
	return 1;
}
