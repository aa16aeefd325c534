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
	char *idp_md; /* the IdP metadata in use (under mu) */

	/* Metadata from a URL (metadata.c); md_url NULL: from a file. */
	char *md_url, *md_ca_file, *md_cache_file;
	char *md_pinned; /* PEM of the metadata signing cert, or NULL */
	int md_refresh_s;
	time_t md_last_fetch;	/* under md_mu */
	pthread_mutex_t md_mu;	/* one refresh at a time */
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv;
	int stopping;		/* under stop_mu */
	pthread_t md_thread;
	int md_thread_up;
	void (*log)(void *arg, int level, const char *event, const char *msg);
	void *log_arg;
};

/* Reports through the configured log callback (or stderr). */
void saml_log(struct saml_sp *sp, int level, const char *event,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* sp.c: replaces the IdP provider with the one in xml (same entityID
 * once set) and reloads its keys. Caller holds sp->mu. 0 or -1 + err; on
 * failure the previous metadata stays in use. */
int saml_sp_set_idp(struct saml_sp *sp, const char *xml, char *err,
		    size_t errlen);

/* metadata.c: libcurl GET over https with CA verification, <= 1 MiB;
 * malloc()ed text or NULL + err. */
char *saml_md_fetch(const char *url, const char *ca_file, char *err,
		    size_t errlen);
/* One md:EntityDescriptor (for want_entity unless NULL), no DOCTYPE,
 * validUntil (if any) still ahead of now. 0 or -1 + err. */
int saml_md_check(const char *xml, const char *want_entity, time_t now,
		  char *err, size_t errlen);
/* The enveloped signature of the metadata, with the pinned certificate
 * (PEM text) only. 0 or -1 + err. */
int saml_md_verify(const char *xml, const char *pinned_pem, char *err,
		   size_t errlen);
/* Fetch + check + swap: 1 new metadata in use, 0 unchanged, -1 failed
 * (old kept). Takes sp->mu itself. */
int saml_sp_refresh(struct saml_sp *sp, char *err, size_t errlen);
/* After a signature failure: refresh unless one ran within the last
 * 10 s; 1 when new metadata is in use (worth a retry). */
int saml_sp_refresh_on_failure(struct saml_sp *sp);
int saml_sp_start_refresher(struct saml_sp *sp);
void saml_sp_stop_refresher(struct saml_sp *sp);

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
