/* Process-wide lasso setup. */
#include <stdio.h>

#include <curl/curl.h>
#include <lasso/lasso.h>

#include "saml/saml.h"

/* The lasso release this code is written and tested against (Debian 12). */
#define SAML_LASSO_MAJOR 2
#define SAML_LASSO_MINOR 8
#define SAML_LASSO_SUBMINOR 0

int
saml_init(char *err, size_t errlen)
{
	int rc;

	rc = lasso_init();
	if (rc != 0) {
		snprintf(err, errlen, "lasso_init failed: %s",
			 lasso_strerror(rc));
		return -1;
	}
	if (lasso_check_version(SAML_LASSO_MAJOR, SAML_LASSO_MINOR,
				SAML_LASSO_SUBMINOR,
				LASSO_CHECK_VERSION_NUMERIC) != 1) {
		snprintf(err, errlen,
			 "lasso %d.%d or newer is required; install the "
			 "liblasso3 package from Debian 12",
			 SAML_LASSO_MAJOR, SAML_LASSO_MINOR);
		lasso_shutdown();
		return -1;
	}
	/* Before any thread: the IdP metadata refresher uses libcurl. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "libcurl initialization failed");
		lasso_shutdown();
		return -1;
	}
	return 0;
}

void
saml_shutdown(void)
{
	curl_global_cleanup();
	lasso_shutdown();
}
