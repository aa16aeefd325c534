/*
 * The IdP's metadata from an HTTPS URL: fetched with libcurl (CA
 * verification on, https only, size and time bounded), checked (one
 * EntityDescriptor for the same entityID, validUntil not passed), swapped
 * into the lasso server, and written to the cache file as the last good
 * copy. Refreshed by a thread every refresh_s, and at once (rate-limited)
 * when a response's signature fails, which is how a key rollover shows.
 * A failed refresh keeps the metadata in use.
 *
 * Ownership: the refresh thread belongs to the SP (saml_sp_close() stops
 * and joins it); fetched text is malloc()ed and freed here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/valid.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#include "saml/saml_int.h"

#define MD_MAX (1024 * 1024)
#define MD_TIMEOUT_S 10
/* Least time between two refreshes caused by signature failures. */
#define MD_FORCED_GAP_S 10

static void
errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

struct fetch_buf {
	char *p;
	size_t len;
	int too_big;
};

static size_t
on_data(char *ptr, size_t size, size_t n, void *ud)
{
	struct fetch_buf *b = ud;
	size_t add = size * n;
	char *np;

	if (b->len + add > MD_MAX) {
		b->too_big = 1;
		return 0;
	}
	np = realloc(b->p, b->len + add + 1);
	if (np == NULL)
		return 0;
	memcpy(np + b->len, ptr, add);
	b->len += add;
	np[b->len] = '\0';
	b->p = np;
	return add;
}

char *
saml_md_fetch(const char *url, const char *ca_file, char *err, size_t errlen)
{
	struct fetch_buf b = {NULL, 0, 0};
	char cerr[CURL_ERROR_SIZE] = "";
	CURL *h = curl_easy_init();
	CURLcode rc;
	long status = 0;

	if (h == NULL) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file != NULL && *ca_file != '\0')
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)MD_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK || status != 200 || b.p == NULL) {
		errf(err, errlen, "cannot fetch IdP metadata from %s: %s",
		     url,
		     b.too_big ? "larger than 1 MiB"
		     : rc != CURLE_OK
			     ? (cerr[0] ? cerr : curl_easy_strerror(rc))
			     : "the server did not answer 200");
		free(b.p);
		return NULL;
	}
	return b.p;
}

int
saml_md_check(const char *xml, const char *want_entity, time_t now,
	      char *err, size_t errlen)
{
	xmlDoc *doc;
	xmlNode *root;
	xmlChar *eid = NULL, *vu = NULL;
	time_t t;
	int r = -1;

	if (strstr(xml, "<!DOCTYPE") != NULL) {
		errf(err, errlen, "IdP metadata carries a DOCTYPE");
		return -1;
	}
	doc = xmlReadMemory(xml, (int)strlen(xml), "idp.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (root == NULL || root->ns == NULL ||
	    strcmp((const char *)root->ns->href,
		   "urn:oasis:names:tc:SAML:2.0:metadata") != 0 ||
	    strcmp((const char *)root->name, "EntityDescriptor") != 0) {
		errf(err, errlen, "IdP metadata is not one md:EntityDescriptor");
		goto out;
	}
	eid = xmlGetProp(root, (const xmlChar *)"entityID");
	if (eid == NULL || (want_entity != NULL &&
			    strcmp((const char *)eid, want_entity) != 0)) {
		errf(err, errlen, "IdP metadata names another entityID (%.200s)",
		     eid ? (const char *)eid : "none");
		goto out;
	}
	vu = xmlGetProp(root, (const xmlChar *)"validUntil");
	if (vu != NULL && (saml_parse_time((const char *)vu, &t) != 0 ||
			   now >= t)) {
		errf(err, errlen, "IdP metadata expired (validUntil %.40s)",
		     (const char *)vu);
		goto out;
	}
	r = 0;
out:
	xmlFree(eid);
	xmlFree(vu);
	if (doc != NULL)
		xmlFreeDoc(doc);
	return r;
}

/*
 * The metadata's enveloped signature, checked with the pinned certificate
 * (PEM text) only -- never with a key the document carries. Exactly one
 * ds:Signature, a direct child of the root, with one Reference to the
 * root's ID (or to the whole document): wrapping tricks fail here.
 */
int
saml_md_verify(const char *xml, const char *pinned_pem, char *err,
	       size_t errlen)
{
	xmlDoc *doc;
	xmlNode *root, *sig = NULL, *si, *ref = NULL;
	xmlChar *id = NULL, *uri = NULL;
	xmlSecDSigCtxPtr ctx = NULL;
	int r = -1, nsig = 0, nref = 0;

	doc = xmlReadMemory(xml, (int)strlen(xml), "idp.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (root == NULL) {
		errf(err, errlen, "IdP metadata is not XML");
		goto out;
	}
	for (xmlNode *c = root->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && c->ns &&
		    strcmp((const char *)c->ns->href,
			   (const char *)xmlSecDSigNs) == 0 &&
		    strcmp((const char *)c->name, "Signature") == 0) {
			sig = c;
			nsig++;
		}
	si = sig ? xmlSecFindChild(sig, xmlSecNodeSignedInfo, xmlSecDSigNs)
		 : NULL;
	for (xmlNode *c = si ? si->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)c->name, "Reference") == 0) {
			ref = c;
			nref++;
		}
	if (nsig != 1 || nref != 1) {
		errf(err, errlen, "IdP metadata is not signed (one enveloped "
				  "signature with one reference required)");
		goto out;
	}
	id = xmlGetProp(root, (const xmlChar *)"ID");
	uri = xmlGetProp(ref, (const xmlChar *)"URI");
	if (uri == NULL ||
	    !(uri[0] == '\0' ||
	      (uri[0] == '#' && id != NULL &&
	       strcmp((const char *)uri + 1, (const char *)id) == 0))) {
		errf(err, errlen, "IdP metadata signature does not cover the "
				  "whole EntityDescriptor");
		goto out;
	}
	if (id != NULL)
		xmlAddID(NULL, doc, id, xmlHasProp(root, (const xmlChar *)"ID"));
	ctx = xmlSecDSigCtxCreate(NULL);
	if (ctx == NULL)
		goto out;
	ctx->enabledReferenceUris = xmlSecTransformUriTypeEmpty |
				    xmlSecTransformUriTypeSameDocument;
	ctx->signKey = xmlSecOpenSSLAppKeyLoadMemory(
		(const xmlSecByte *)pinned_pem, (xmlSecSize)strlen(pinned_pem),
		xmlSecKeyDataFormatCertPem, NULL, NULL, NULL);
	if (ctx->signKey == NULL) {
		errf(err, errlen, "the pinned metadata certificate is not a "
				  "PEM certificate");
		goto out;
	}
	if (xmlSecDSigCtxVerify(ctx, sig) < 0 ||
	    ctx->status != xmlSecDSigStatusSucceeded) {
		errf(err, errlen, "IdP metadata signature does not verify with "
				  "the pinned certificate");
		goto out;
	}
	r = 0;
out:
	if (ctx != NULL)
		xmlSecDSigCtxDestroy(ctx);
	xmlFree(id);
	xmlFree(uri);
	if (doc != NULL)
		xmlFreeDoc(doc);
	return r;
}

/* Writes the last good copy: temp file + rename, so readers never see
 * half a file. */
static void
write_cache(const char *path, const char *xml)
{
	char tmp[4096];
	size_t len = strlen(xml);
	int fd, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, xml, len) != (ssize_t)len || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	if (rename(tmp, path) != 0)
		unlink(tmp);
}

/*
 * Fetches, checks and swaps in the IdP metadata. 1 if new metadata is in
 * use, 0 if unchanged, -1 (err) if the refresh failed and the old stays.
 */
int
saml_sp_refresh(struct saml_sp *sp, char *err, size_t errlen)
{
	char *xml;
	int r;

	if (sp->md_url == NULL)
		return 0;
	pthread_mutex_lock(&sp->md_mu);
	sp->md_last_fetch = time(NULL);
	xml = saml_md_fetch(sp->md_url, sp->md_ca_file, err, errlen);
	if (xml == NULL) {
		r = -1;
		goto out;
	}
	if (saml_md_check(xml, sp->idp_entity_id, time(NULL), err, errlen) !=
		    0 ||
	    (sp->md_pinned != NULL &&
	     saml_md_verify(xml, sp->md_pinned, err, errlen) != 0)) {
		r = -1;
		goto out;
	}
	pthread_mutex_lock(&sp->mu);
	if (sp->idp_md != NULL && strcmp(sp->idp_md, xml) == 0) {
		pthread_mutex_unlock(&sp->mu);
		r = 0;
		goto out;
	}
	r = saml_sp_set_idp(sp, xml, err, errlen) == 0 ? 1 : -1;
	pthread_mutex_unlock(&sp->mu);
	if (r == 1)
		saml_log(sp, 0, "saml_metadata_updated",
			 "new IdP metadata from %s in use", sp->md_url);
	if (r == 1 && sp->md_cache_file != NULL)
		write_cache(sp->md_cache_file, xml);
out:
	pthread_mutex_unlock(&sp->md_mu);
	free(xml);
	return r;
}

int
saml_sp_refresh_on_failure(struct saml_sp *sp)
{
	char err[512];
	int r;

	if (sp->md_url == NULL ||
	    time(NULL) - sp->md_last_fetch < MD_FORCED_GAP_S)
		return 0;
	r = saml_sp_refresh(sp, err, sizeof(err));
	if (r < 0)
		saml_log(sp, 1, "saml_metadata_refresh_failed",
			 "IdP metadata refresh after a signature failure "
			 "failed, keeping the last good copy: %s",
			 err);
	return r == 1;
}

static void *
refresher(void *arg)
{
	struct saml_sp *sp = arg;
	struct timespec ts;
	char err[512];

	pthread_mutex_lock(&sp->stop_mu);
	while (!sp->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += sp->md_refresh_s;
		pthread_cond_timedwait(&sp->stop_cv, &sp->stop_mu, &ts);
		if (sp->stopping)
			break;
		pthread_mutex_unlock(&sp->stop_mu);
		if (saml_sp_refresh(sp, err, sizeof(err)) < 0)
			saml_log(sp, 1, "saml_metadata_refresh_failed",
				 "IdP metadata refresh failed, keeping the last "
				 "good copy: %s",
				 err);
		pthread_mutex_lock(&sp->stop_mu);
	}
	pthread_mutex_unlock(&sp->stop_mu);
	return NULL;
}

int
saml_sp_start_refresher(struct saml_sp *sp)
{
	if (sp->md_url == NULL || sp->md_refresh_s <= 0)
		return 0;
	if (pthread_create(&sp->md_thread, NULL, refresher, sp) != 0)
		return -1;
	sp->md_thread_up = 1;
	return 0;
}

void
saml_sp_stop_refresher(struct saml_sp *sp)
{
	if (!sp->md_thread_up)
		return;
	pthread_mutex_lock(&sp->stop_mu);
	sp->stopping = 1;
	pthread_cond_signal(&sp->stop_cv);
	pthread_mutex_unlock(&sp->stop_mu);
	pthread_join(sp->md_thread, NULL);
	sp->md_thread_up = 0;
}
