/*
 * Private to saml/ and its own tests: the pure response checks over
 * lasso's parsed objects and the raw XML, so unit tests and a fuzz target
 * can call them without a server. Other folders include saml/saml.h only.
 */
#ifndef ROOMGATE_SAML_INT_H
#define ROOMGATE_SAML_INT_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_authn_statement.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <libxml/tree.h>
#include <openssl/evp.h>

#include "saml/saml.h"

/* What the checks compare against. Strings borrowed. */
struct saml_policy {
	const char *sp_entity_id;
	const char *acs_url;
	const char *idp_entity_id;
	const char *directory_key; /* "nameid" or an attribute name */
	int want_assertions_signed;
	int clock_skew_s;
	int allow_unsolicited;
};

/* The SP (sp.c, slo.c). lasso is not documented as thread-safe: every
 * lasso call on server runs under mu. */
#define SAML_MAX_IDP_KEYS 4
struct saml_sp {
	pthread_mutex_t mu;
	LassoServer *server;
	char *metadata;
	char *entity_id;
	char *acs_url;
	char *idp_entity_id;
	char *name_id_format;
	char *directory_key;
	struct saml_policy pol; /* strings point into this struct */
	int authn_request_post;
	size_t max_response_bytes;
	/* The IdP's signing keys from its metadata, for Redirect-binding
	 * signatures we verify ourselves (slo.c). */
	EVP_PKEY *idp_keys[SAML_MAX_IDP_KEYS];
	int nidp_keys;
};

/*
 * Decodes nothing, trusts nothing: parses the decoded response XML with
 * libxml2 (no network, no entity substitution), refuses any DOCTYPE, and
 * checks the shape: the root is samlp:Response, it is the only Response,
 * and the document holds exactly one saml:Assertion, a direct child of
 * the root (no EncryptedAssertion). On success *doc is the caller's
 * (xmlFreeDoc). On failure *reason is a SAML_R_* code.
 */
int saml_raw_precheck(const char *xml, size_t len, xmlDoc **doc,
		      const char **reason, char *detail, size_t detaillen);

/*
 * roomgate's own checks on a response lasso has accepted (signatures
 * verified, issuer known). raw is the same document after
 * saml_raw_precheck(). Starts as deny; 0 only after every check passed,
 * with *out filled (caller frees with saml_identity_free()). On failure
 * -1, *reason a SAML_R_* code, *out empty.
 */
int saml_check_response(const struct saml_policy *pol,
			LassoSamlp2Response *resp, xmlDoc *raw, time_t now,
			struct saml_identity *out, const char **reason,
			char *detail, size_t detaillen);

/* xsd:dateTime in UTC ("2026-01-02T03:04:05Z", optional fraction,
 * "Z" or "+00:00"); 0 or -1. */
int saml_parse_time(const char *s, time_t *out);

#endif
