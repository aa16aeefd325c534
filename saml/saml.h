/*
 * saml/ -- roomgate's SAML 2.0 Service Provider, built on lasso: metadata,
 * AuthnRequest, the Assertion Consumer Service checks lasso does not make
 * (see ../shared/notes/lasso-sp.md), SLO and the assertion replay cache.
 *
 * This is the only header other folders include; lasso types stay inside
 * saml/. The SP itself arrives with the SAML issue; the foundation only
 * initializes lasso (and with it libxml2 and xmlsec) once per process.
 */
#ifndef ROOMGATE_SAML_H
#define ROOMGATE_SAML_H

#include <stddef.h>

/*
 * Initializes lasso, xmlsec and libxml2 and checks that the lasso we run
 * with is ABI-compatible with the one we were built against. Call once,
 * before any thread uses SAML; pair with saml_shutdown(). 0 or -1 + err.
 */
int saml_init(char *err, size_t errlen);
void saml_shutdown(void);

#endif
