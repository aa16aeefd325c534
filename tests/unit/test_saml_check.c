/*
 * Unit: the pure SAML checks in saml/check.c -- time parsing, return-path
 * validation and the raw-XML shape checks (DOCTYPE, Response and
 * Assertion counts, issuer agreement) that stop signature wrapping before
 * lasso runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saml/saml_int.h"

static void
test_parse_time(void **state)
{
	time_t t;

	(void)state;
	assert_int_equal(saml_parse_time("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal((long)t, 0);
	assert_int_equal(saml_parse_time("2026-11-28T02:12:51.123Z", &t), 0);
	assert_int_equal(saml_parse_time("2026-11-28T02:12:51+00:00", &t), 0);
	assert_int_equal(saml_parse_time("2026-11-28T02:12:51", &t), -1);
	assert_int_equal(saml_parse_time("2026-11-28T02:12:51+01:00", &t), -1);
	assert_int_equal(saml_parse_time("2026-13-28T02:12:51Z", &t), -1);
	assert_int_equal(saml_parse_time("2026-11-28 02:12:51Z", &t), -1);
	assert_int_equal(saml_parse_time("", &t), -1);
	assert_int_equal(saml_parse_time(NULL, &t), -1);
	assert_int_equal(saml_parse_time("2026-11-28T02:12:51.Z", &t), -1);
}

static void
test_return_path(void **state)
{
	static const char *const good[] = {"/", "/meetings/1?x=y", "/a/b#c"};
	static const char *const bad[] = {
		"", "//evil.example", "///evil.example", "\\evil",
		"/\\evil", "http:evil", "javascript:alert(1)",
		"https://evil.example/", "/a\tb", "/a\nb", "/a b", "/\x7f",
		"/caf\xc3\xa9", "evil", NULL,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(saml_return_path_ok(good[i]), 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(saml_return_path_ok(bad[i]), 0);
}

#define RESP_OPEN                                                          \
	"<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:"        \
	"protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" "  \
	"ID=\"r1\"><saml:Issuer>idp</saml:Issuer>"
#define ASSERTION(id, issuer)                                              \
	"<saml:Assertion ID=\"" id "\"><saml:Issuer>" issuer               \
	"</saml:Issuer></saml:Assertion>"

static const char *
precheck(const char *xml)
{
	xmlDoc *doc = NULL;
	const char *reason = NULL;
	char detail[256];
	int r = saml_raw_precheck(xml, strlen(xml), &doc, &reason, detail,
				  sizeof(detail));

	if (r == 0) {
		assert_non_null(doc);
		xmlFreeDoc(doc);
	} else {
		assert_null(doc);
	}
	return reason;
}

static void
test_precheck(void **state)
{
	(void)state;
	assert_string_equal(
		precheck(RESP_OPEN ASSERTION("a1", "idp") "</samlp:Response>"),
		SAML_R_OK);
	assert_string_equal(precheck("<!DOCTYPE x [<!ENTITY a \"b\">]>"
				     RESP_OPEN "</samlp:Response>"),
			    SAML_R_DOCTYPE);
	assert_string_equal(precheck("<x/>"), SAML_R_NOT_RESPONSE);
	assert_string_equal(precheck("not xml"), SAML_R_XML_INVALID);
	assert_string_equal(precheck(RESP_OPEN "</samlp:Response>"),
			    SAML_R_ASSERTION_COUNT);
	assert_string_equal(precheck(RESP_OPEN ASSERTION("a1", "idp")
					 ASSERTION("a2", "idp")
				     "</samlp:Response>"),
			    SAML_R_ASSERTION_COUNT);
	/* Hidden in Extensions (lasso would ignore it) still counts. */
	assert_string_equal(
		precheck(RESP_OPEN "<samlp:Extensions>" ASSERTION("a2", "idp")
				   "</samlp:Extensions>" ASSERTION("a1", "idp")
				   "</samlp:Response>"),
		SAML_R_ASSERTION_COUNT);
	/* A nested copy of the Response (XSW1/2 shape). */
	assert_string_equal(precheck(RESP_OPEN ASSERTION("a1", "idp") RESP_OPEN
				     "</samlp:Response></samlp:Response>"),
			    SAML_R_RESPONSE_COUNT);
	assert_string_equal(
		precheck(RESP_OPEN "<saml:EncryptedAssertion/>"
				   "</samlp:Response>"),
		SAML_R_ENCRYPTED);
	assert_string_equal(precheck(RESP_OPEN ASSERTION("a1", "other")
				     "</samlp:Response>"),
			    SAML_R_ISSUER_MISMATCH);
	/* The assertion must be a direct child of the Response. */
	assert_string_equal(precheck(RESP_OPEN "<saml:Advice>" ASSERTION(
					     "a1", "idp") "</saml:Advice>"
				     "</samlp:Response>"),
			    SAML_R_ASSERTION_COUNT);
}

/* ---- saml_check_response over lasso's objects ------------------------- */

#define ACS "https://sp.example/saml/acs"
#define SP "https://sp.example/saml/metadata"
#define IDP "https://idp.example/saml"
#define SHA256 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"

/* One knob per check; the defaults make a response every check accepts
 * (signatures are lasso's job: here only their placement and algorithm
 * count). */
struct knobs {
	const char *dest, *resp_issuer, *as_issuer, *status, *irt, *scd_irt;
	const char *recipient, *method, *nb, *nooa, *scd_nooa, *audience;
	const char *nameid, *extra_cond, *sig_alg, *as_id, *as_ref;
	int no_conditions, no_audience, resp_sig, as_sig;
};

static const struct knobs good = {
	.dest = ACS, .resp_issuer = IDP, .as_issuer = IDP,
	.status = "urn:oasis:names:tc:SAML:2.0:status:Success",
	.irt = "_req1", .scd_irt = "_req1", .recipient = ACS,
	.method = "urn:oasis:names:tc:SAML:2.0:cm:bearer",
	.nb = "2029-12-31T23:55:00Z", .nooa = "2030-01-01T00:05:00Z",
	.scd_nooa = "2030-01-01T00:05:00Z", .audience = SP,
	.nameid = "alice@example.com", .extra_cond = "", .sig_alg = SHA256,
	.as_id = "_a1", .as_ref = "#_a1", .resp_sig = 0, .as_sig = 1,
};

static char *
sig(const char *ref, const char *alg)
{
	char *s = malloc(1024);

	assert_non_null(s);
	snprintf(s, 1024,
		 "<ds:Signature><ds:SignedInfo><ds:SignatureMethod "
		 "Algorithm=\"%s\"/><ds:Reference URI=\"%s\"><ds:DigestMethod "
		 "Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>"
		 "</ds:Reference></ds:SignedInfo></ds:Signature>",
		 alg, ref);
	return s;
}

static char *
response_xml(const struct knobs *k)
{
	char *x = malloc(16384), *rs = sig("#_r1", k->sig_alg),
	     *as = sig(k->as_ref, k->sig_alg), irt[128] = "", sirt[128] = "";
	char cond[2048] = "", nid[256] = "";

	assert_non_null(x);
	if (k->irt)
		snprintf(irt, sizeof(irt), " InResponseTo=\"%s\"", k->irt);
	if (k->scd_irt)
		snprintf(sirt, sizeof(sirt), " InResponseTo=\"%s\"",
			 k->scd_irt);
	if (k->nameid)
		snprintf(nid, sizeof(nid), "<saml:NameID>%s</saml:NameID>",
			 k->nameid);
	if (!k->no_conditions)
		snprintf(cond, sizeof(cond),
			 "<saml:Conditions NotBefore=\"%s\" NotOnOrAfter=\"%s\">"
			 "%s%s%s%s</saml:Conditions>",
			 k->nb, k->nooa,
			 k->no_audience ? "" : "<saml:AudienceRestriction>"
					       "<saml:Audience>",
			 k->no_audience ? "" : k->audience,
			 k->no_audience ? "" : "</saml:Audience>"
					       "</saml:AudienceRestriction>",
			 k->extra_cond);
	snprintf(x, 16384,
		 "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:"
		 "protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:"
		 "assertion\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" "
		 "ID=\"_r1\" Version=\"2.0\" IssueInstant=\"2030-01-01T00:00:00Z\" "
		 "Destination=\"%s\"%s><saml:Issuer>%s</saml:Issuer>%s"
		 "<samlp:Status><samlp:StatusCode Value=\"%s\"/></samlp:Status>"
		 "<saml:Assertion ID=\"%s\" Version=\"2.0\" "
		 "IssueInstant=\"2030-01-01T00:00:00Z\"><saml:Issuer>%s"
		 "</saml:Issuer>%s<saml:Subject>%s<saml:SubjectConfirmation "
		 "Method=\"%s\"><saml:SubjectConfirmationData NotOnOrAfter=\"%s\" "
		 "Recipient=\"%s\"%s/></saml:SubjectConfirmation></saml:Subject>%s"
		 "<saml:AuthnStatement AuthnInstant=\"2030-01-01T00:00:00Z\" "
		 "SessionIndex=\"_s1\"/><saml:AttributeStatement><saml:Attribute "
		 "Name=\"mail\"><saml:AttributeValue>alice@example.com"
		 "</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>"
		 "</saml:Assertion></samlp:Response>",
		 k->dest, irt, k->resp_issuer, k->resp_sig ? rs : "", k->status,
		 k->as_id, k->as_issuer, k->as_sig ? as : "", nid, k->method,
		 k->scd_nooa, k->recipient, sirt, cond);
	free(rs);
	free(as);
	return x;
}

/* Runs the pure check; returns the reason code (static). */
static const char *
check(const struct knobs *k, int want_signed, int unsolicited_ok)
{
	struct saml_policy pol = {SP, ACS, IDP, "nameid", want_signed, 60,
				  unsolicited_ok};
	struct saml_identity id;
	char *xml = response_xml(k), detail[256];
	xmlDoc *doc = NULL;
	LassoNode *node;
	const char *reason = NULL;
	time_t now;
	int r;

	assert_int_equal(saml_parse_time("2030-01-01T00:00:00Z", &now), 0);
	if (saml_raw_precheck(xml, strlen(xml), &doc, &reason, detail,
			      sizeof(detail)) != 0) {
		free(xml);
		return reason;
	}
	node = lasso_node_new_from_xmlNode(xmlDocGetRootElement(doc));
	assert_true(LASSO_IS_SAMLP2_RESPONSE(node));
	r = saml_check_response(&pol, LASSO_SAMLP2_RESPONSE(node), doc, now,
				&id, &reason, detail, sizeof(detail));
	if (r == 0) {
		assert_string_equal(id.identity, "alice@example.com");
		assert_string_equal(id.session_index, "_s1");
		assert_string_equal(id.assertion_id, k->as_id);
		assert_true(id.replay_until > now);
		saml_identity_free(&id);
	}
	g_object_unref(node);
	xmlFreeDoc(doc);
	free(xml);
	return reason;
}

static int
lasso_up(void **state)
{
	char err[256];

	(void)state;
	return saml_init(err, sizeof(err));
}

static int
lasso_down(void **state)
{
	(void)state;
	saml_shutdown();
	return 0;
}

static void
test_check_response(void **state)
{
	struct knobs k;

	(void)state;
#define CASE(field, value, want)                                             \
	do {                                                                 \
		k = good;                                                    \
		k.field = value;                                             \
		assert_string_equal(check(&k, 1, 0), want);                  \
	} while (0)
	k = good;
	assert_string_equal(check(&k, 1, 0), SAML_R_OK);
	CASE(dest, "https://evil.example/acs", SAML_R_DESTINATION);
	CASE(resp_issuer, "https://evil.example", SAML_R_ISSUER_MISMATCH);
	CASE(status, "urn:oasis:names:tc:SAML:2.0:status:Responder",
	     SAML_R_STATUS);
	CASE(irt, NULL, SAML_R_UNSOLICITED);
	CASE(scd_irt, "_other", SAML_R_IN_RESPONSE_TO);
	CASE(recipient, "https://evil.example/acs", SAML_R_RECIPIENT);
	CASE(method, "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key",
	     SAML_R_NOT_BEARER);
	CASE(nb, "2030-01-01T00:02:00Z", SAML_R_NOT_YET_VALID);
	CASE(nooa, "2029-12-31T23:58:00Z", SAML_R_EXPIRED);
	CASE(scd_nooa, "2029-12-31T23:58:00Z", SAML_R_CONFIRMATION_EXPIRED);
	CASE(audience, "https://other.example", SAML_R_AUDIENCE);
	CASE(no_audience, 1, SAML_R_AUDIENCE_MISSING);
	CASE(no_conditions, 1, SAML_R_AUDIENCE_MISSING);
	CASE(extra_cond, "<saml:Condition/>", SAML_R_CONDITION_UNKNOWN);
	CASE(extra_cond, "<saml:OneTimeUse/>", SAML_R_OK);
	CASE(nameid, NULL, SAML_R_NO_NAMEID);
	CASE(as_sig, 0, SAML_R_UNSIGNED);
	CASE(sig_alg, "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
	     SAML_R_WEAK_ALGORITHM);
	/* A signature whose reference names another element signs nothing
	 * here. */
	CASE(as_ref, "#_r1", SAML_R_UNSIGNED);
	/* Within the 60 s skew: still valid. */
	CASE(nooa, "2029-12-31T23:59:30Z", SAML_R_OK);
	CASE(nb, "2030-01-01T00:00:30Z", SAML_R_OK);
	/* Policy: response-only signature. */
	k = good;
	k.as_sig = 0;
	k.resp_sig = 1;
	assert_string_equal(check(&k, 1, 0), SAML_R_ASSERTION_UNSIGNED);
	assert_string_equal(check(&k, 0, 0), SAML_R_OK);
	/* Unsolicited allowed by policy. */
	k = good;
	k.irt = NULL;
	k.scd_irt = NULL;
	assert_string_equal(check(&k, 1, 1), SAML_R_OK);
#undef CASE
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_return_path),
		cmocka_unit_test(test_precheck),
		cmocka_unit_test(test_check_response),
	};

	return cmocka_run_group_tests(tests, lasso_up, lasso_down);
}
