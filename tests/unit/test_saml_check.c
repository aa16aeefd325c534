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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_return_path),
		cmocka_unit_test(test_precheck),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
