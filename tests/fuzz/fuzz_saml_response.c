/*
 * libFuzzer target: untrusted bytes as a decoded SAMLResponse, through
 * saml_raw_precheck() and, when the shape passes, lasso's parser and
 * saml_check_response(). Nothing is verified cryptographically here (that
 * is lasso's part); the target looks for crashes, leaks and undefined
 * behaviour in roomgate's own checks. `make fuzz` builds it with clang;
 * run: build/fuzz/fuzz_saml_response -max_len=65536 CORPUS_DIR
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "saml/saml_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	if (saml_init(err, sizeof(err)) != 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct saml_policy pol = {
		"https://sp.example/saml/metadata",
		"https://sp.example/saml/acs",
		"https://idp.example/saml",
		"mail",
		1,
		60,
		0,
	};
	struct saml_identity id;
	const char *reason;
	char detail[256];
	xmlDoc *doc = NULL;
	LassoNode *node;

	if (saml_raw_precheck((const char *)data, size, &doc, &reason, detail,
			      sizeof(detail)) != 0)
		return 0;
	node = lasso_node_new_from_xmlNode(xmlDocGetRootElement(doc));
	if (node != NULL && LASSO_IS_SAMLP2_RESPONSE(node) &&
	    saml_check_response(&pol, LASSO_SAMLP2_RESPONSE(node), doc,
				1893456000, &id, &reason, detail,
				sizeof(detail)) == 0)
		saml_identity_free(&id);
	if (node != NULL)
		g_object_unref(node);
	xmlFreeDoc(doc);
	return 0;
}
