/*
 * saml/ -- roomgate's SAML 2.0 Service Provider, built on lasso: metadata,
 * AuthnRequest, the Assertion Consumer Service checks lasso does not make
 * (see ../shared/notes/lasso-sp.md), SLO and the assertion replay cache.
 *
 * This is the only header other folders include; lasso types stay inside
 * saml/ (saml/saml_int.h is for saml/ and its own tests).
 *
 * Errors: functions return 0 or -1 and write a message a person can act on
 * into err. The ACS returns a stable reason code (SAML_R_*) for the audit
 * log and the error page.
 */
#ifndef ROOMGATE_SAML_H
#define ROOMGATE_SAML_H

#include <stddef.h>
#include <time.h>

/*
 * Initializes lasso, xmlsec and libxml2 and checks that the lasso we run
 * with is ABI-compatible with the one we were built against. Call once,
 * before any thread uses SAML; pair with saml_shutdown(). 0 or -1 + err.
 */
int saml_init(char *err, size_t errlen);
void saml_shutdown(void);

/*
 * Creates an RSA-2048 private key (PEM, mode 0600, O_EXCL) and a
 * self-signed SHA-256 certificate for it (PEM, 0644, O_EXCL), valid for
 * `days`, subject CN = cn. Neither file may exist. For the SP's signing
 * and encryption pair and for the test IdP.
 */
int saml_keygen(const char *key_path, const char *cert_path, const char *cn,
		int days, char *err, size_t errlen);

/* ---- the Service Provider (sp.c) ------------------------------------ */

/* Strings are borrowed for the duration of saml_sp_open() only. */
struct saml_sp_config {
	const char *entity_id; /* our entityID */
	const char *base_url;  /* public base URL, no trailing slash needed */
	const char *key_file;  /* PEM private key (signing, decryption) */
	const char *cert_file; /* PEM certificate of that key */
	/* The IdP's SAML metadata: a file, or an https URL (then the file,
	 * if set, is the last-good cache used when a fetch fails). */
	const char *idp_metadata_file;
	const char *idp_metadata_url;
	const char *idp_metadata_ca_file; /* CA bundle for the URL, or NULL */
	int idp_metadata_refresh_s;	  /* refresh interval for the URL */
	/* PEM file: when set, the metadata (file or URL, every refresh)
	 * must carry a valid signature by this certificate. */
	const char *idp_metadata_signing_cert;
	const char *name_id_format;    /* asked for in NameIDPolicy, or NULL */
	/* "nameid" or the name of an attribute (e.g. "mail"): which value
	 * the directory lookup uses as the identity. */
	const char *directory_key;
	int want_assertions_signed; /* 1: the Assertion itself must be
				     * signed; 0: Response or Assertion */
	int clock_skew_s;
	int allow_unsolicited; /* accept responses without InResponseTo */
	int authn_request_post; /* HTTP-POST binding instead of Redirect */
	size_t max_response_bytes; /* decoded SAMLResponse limit */
	/* Where saml/ reports events no request carries (metadata refresh),
	 * level 0 info, 1 warn, 2 error; NULL: stderr. Called from the
	 * refresh thread too. */
	void (*log)(void *arg, int level, const char *event, const char *msg);
	void *log_arg;
};

struct saml_sp;

/*
 * Loads key, certificate and IdP metadata, builds our metadata and the
 * lasso server. On success *out is owned by the caller (saml_sp_close()).
 * Thread-safe after creation: lasso calls are serialized inside.
 */
int saml_sp_open(const struct saml_sp_config *cfg, struct saml_sp **out,
		 char *err, size_t errlen);
void saml_sp_close(struct saml_sp *sp);

/*
 * Reads the IdP metadata again (SIGHUP): from file (the reloaded
 * idp_metadata_file) when the SP reads a file, else a fetch from its URL
 * now. Checked as at start -- same entityID, validUntil ahead, the pinned
 * signature when configured -- then swapped in. 1 new metadata in use,
 * 0 unchanged, -1 + err: the metadata in use stays.
 */
int saml_sp_reload_idp(struct saml_sp *sp, const char *file, char *err,
		       size_t errlen);
/* 1 when the IdP metadata comes from a URL (saml_sp_reload_idp fetches). */
int saml_sp_metadata_from_url(const struct saml_sp *sp);

/* Our SP metadata (NUL-terminated, owned by sp). */
const char *saml_sp_metadata(const struct saml_sp *sp);
const char *saml_sp_idp_entity_id(const struct saml_sp *sp);
const char *saml_sp_acs_url(const struct saml_sp *sp);

/*
 * A signed AuthnRequest for the IdP. relay_state (may be NULL) is an
 * opaque value echoed by the IdP. On success *request_id and either
 * *redirect_url (Redirect binding) or *post_html (an auto-submitting
 * form, POST binding) are malloc()ed for the caller; the other is NULL.
 */
int saml_sp_authn_request(struct saml_sp *sp, const char *relay_state,
			  char **request_id, char **redirect_url,
			  char **post_html, char *err, size_t errlen);

/* Stable ACS reason codes, written to the audit log. */
#define SAML_R_OK "ok"
#define SAML_R_BAD_REQUEST "bad_request"	/* no/invalid SAMLResponse */
#define SAML_R_TOO_LARGE "too_large"
#define SAML_R_XML_INVALID "xml_invalid"
#define SAML_R_DOCTYPE "doctype"
#define SAML_R_NOT_RESPONSE "not_a_response"
#define SAML_R_RESPONSE_COUNT "response_count"
#define SAML_R_ASSERTION_COUNT "assertion_count"
#define SAML_R_ENCRYPTED "encrypted_unsupported"
#define SAML_R_SIGNATURE_INVALID "signature_invalid"
#define SAML_R_UNSIGNED "unsigned"
#define SAML_R_WEAK_ALGORITHM "weak_signature_algorithm"
#define SAML_R_ASSERTION_UNSIGNED "assertion_unsigned"
#define SAML_R_UNKNOWN_ISSUER "unknown_issuer"
#define SAML_R_ISSUER_MISMATCH "issuer_mismatch"
#define SAML_R_STATUS "status_not_success"
#define SAML_R_DESTINATION "destination_mismatch"
#define SAML_R_NO_SUBJECT "no_subject"
#define SAML_R_NO_NAMEID "no_name_id"
#define SAML_R_NOT_BEARER "confirmation_not_bearer"
#define SAML_R_RECIPIENT "recipient_mismatch"
#define SAML_R_CONFIRMATION_EXPIRED "confirmation_expired"
#define SAML_R_NOT_YET_VALID "not_yet_valid"
#define SAML_R_EXPIRED "expired"
#define SAML_R_AUDIENCE_MISSING "audience_missing"
#define SAML_R_AUDIENCE "audience_mismatch"
#define SAML_R_CONDITION_UNKNOWN "condition_unknown"
#define SAML_R_UNSOLICITED "unsolicited"
#define SAML_R_IN_RESPONSE_TO "in_response_to_mismatch"
#define SAML_R_REPLAY "replay"
#define SAML_R_DIRECTORY_KEY "directory_key_missing"
#define SAML_R_LASSO "lasso_error"
#define SAML_R_INTERNAL "internal_error"

/* What a valid response says. Every string is malloc()ed, owned by the
 * struct and freed by saml_identity_free(). */
struct saml_identity {
	char *identity;	      /* the directory key's value */
	char *name_id;
	char *name_id_format; /* may be NULL */
	char *idp;	      /* the IdP's entityID */
	char *session_index;  /* may be NULL */
	char *authn_instant;  /* may be NULL; xsd:dateTime text */
	char *assertion_id;
	char *in_response_to; /* NULL for an unsolicited response */
	char *attributes_json; /* {"name": ["v", ...], ...} */
	time_t replay_until;  /* keep the assertion id until this time */
};
void saml_identity_free(struct saml_identity *id);

/*
 * The Assertion Consumer Service: b64 is the SAMLResponse form value.
 * Runs lasso's checks and all of roomgate's own (Destination, exactly
 * one assertion, signature policy, issuers, bearer confirmation,
 * Recipient, time windows with skew, Audience required, unknown
 * conditions, InResponseTo present unless unsolicited is allowed,
 * status). The request binding (InResponseTo of this browser) and the
 * replay cache are the caller's, in the database.
 *
 * Returns 0 and fills *out (caller frees), or -1 with *reason set to a
 * SAML_R_* code (static) and detail a message for logs. *out is then
 * empty.
 */
int saml_sp_acs(struct saml_sp *sp, const char *b64, size_t b64len,
		time_t now, struct saml_identity *out, const char **reason,
		char *detail, size_t detaillen);

/* ---- Single Logout (slo.c), HTTP-Redirect binding ------------------- */

/*
 * SP-initiated: a signed LogoutRequest for this subject. *url (malloc()ed)
 * is where to send the browser; NULL with 0 when the IdP has no SLO
 * endpoint (then the logout is local only).
 */
int saml_sp_logout_request(struct saml_sp *sp, const char *name_id,
			   const char *format, const char *session_index,
			   char **url, char *err, size_t errlen);

enum { SAML_SLO_REQUEST = 1, SAML_SLO_RESPONSE = 2 };
/* Who an IdP LogoutRequest names; strings malloc()ed,
 * saml_slo_request_free(). */
struct saml_slo_request {
	char *name_id;
	char *session_index; /* NULL: every session of name_id */
};
void saml_slo_request_free(struct saml_slo_request *q);

/*
 * A message from the IdP at /saml/slo; query is the raw query string (the
 * Redirect-binding signature covers its exact bytes). *kind says which it
 * was. A LogoutRequest must be signed by the IdP; on success *req names
 * the sessions to end and *response_url (malloc()ed) carries our signed
 * LogoutResponse. A LogoutResponse only needs a valid signature if any.
 * -1 with *reason (SAML_R_*) on failure.
 */
int saml_sp_slo(struct saml_sp *sp, const char *query, int *kind,
		struct saml_slo_request *req, char **response_url,
		const char **reason, char *detail, size_t detaillen);

/*
 * Whether s is an acceptable post-login return path: a relative path on
 * our own origin ("/..."), at most 2048 bytes, no "//" or "/\" start, no
 * backslash, no control or non-ASCII byte. 1 if acceptable.
 */
int saml_return_path_ok(const char *s);

#endif
