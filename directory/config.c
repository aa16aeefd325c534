/*
 * directory/config.c -- checks a struct dir_config before anything
 * connects, and makes the owned copy (struct dir_cfg) the pool keeps.
 * Every message names the setting to change. See dir_int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <ldap.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "directory/dir_int.h"

/* Largest CA bundle we read to look for a certificate. */
#define CA_FILE_MAX (8 * 1024 * 1024)

static const char *
url_err_text(int e)
{
	switch (e) {
	case LDAP_URL_ERR_BADSCHEME:
		return "the scheme must be ldap:// or ldaps://";
	case LDAP_URL_ERR_BADENCLOSURE:
		return "unbalanced < >";
	case LDAP_URL_ERR_BADURL:
		return "malformed URI";
	case LDAP_URL_ERR_BADHOST:
		return "bad host name";
	case LDAP_URL_ERR_BADATTRS:
	case LDAP_URL_ERR_BADSCOPE:
	case LDAP_URL_ERR_BADFILTER:
	case LDAP_URL_ERR_BADEXTS:
		return "only scheme, host and port belong in ldap.uri";
	case LDAP_URL_ERR_MEM:
		return "out of memory";
	}
	return "malformed URI";
}

/* Copies setting `name` (at most max bytes) into *out. */
static int
copy_setting(const char *name, const char *in, size_t max, char **out,
             char *err, size_t errlen)
{
	size_t n = strnlen(in, max + 1);

	*out = NULL;
	if (n > max) {
		dir_errf(err, errlen, "%s is longer than %zu bytes", name, max);
		return DIR_EINVAL;
	}
	if ((*out = malloc(n + 1)) == NULL) {
		dir_errf(err, errlen, "out of memory");
		return DIR_ENOMEM;
	}
	memcpy(*out, in, n);
	(*out)[n] = '\0';
	return 0;
}

/* Parses one URI token [tok, tok+len) into u. */
static int
parse_uri(const char *tok, size_t len, struct dir_uri *u, char *err,
          size_t errlen)
{
	LDAPURLDesc *lud = NULL;
	char *uri = NULL;
	int r = DIR_EINVAL, e;

	memset(u, 0, sizeof(*u));
	/* On success uri moves to u->uri; the analyzer loses c->nuris across
	 * parse_uris' loop and takes the next call for an overwrite of this
	 * entry: NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
	if ((uri = malloc(len + 1)) == NULL) {
		r = DIR_ENOMEM;
		dir_errf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(uri, tok, len);
	uri[len] = '\0';
	if (memchr(uri, ',', len) != NULL) {
		dir_errf(err, errlen,
		         "ldap.uri entry '%s' contains a comma: separate "
		         "several URIs with spaces",
		         uri);
		goto out;
	}
	if ((e = ldap_url_parse(uri, &lud)) != LDAP_URL_SUCCESS) {
		dir_errf(err, errlen,
		         "ldap.uri entry '%s' is not an LDAP URI: %s (example: "
		         "ldaps://ldap.example.com)",
		         uri, url_err_text(e));
		r = e == LDAP_URL_ERR_MEM ? DIR_ENOMEM : DIR_EINVAL;
		goto out;
	}
	if (lud->lud_scheme == NULL ||
	    (strcasecmp(lud->lud_scheme, "ldap") != 0 &&
	     strcasecmp(lud->lud_scheme, "ldaps") != 0)) {
		dir_errf(err, errlen,
		         "ldap.uri entry '%s': the scheme must be ldap:// or "
		         "ldaps://",
		         uri);
		goto out;
	}
	if (lud->lud_host == NULL || lud->lud_host[0] == '\0') {
		dir_errf(
		    err, errlen,
		    "ldap.uri entry '%s' names no host: write the "
		    "directory server's name, e.g. ldaps://ldap.example.com",
		    uri);
		goto out;
	}
	u->ldaps = strcasecmp(lud->lud_scheme, "ldaps") == 0;
	u->port = lud->lud_port > 0 ? lud->lud_port : (u->ldaps ? 636 : 389);
	if ((u->host = strdup(lud->lud_host)) == NULL ||
	    (u->tcp_uri = malloc(len + 32)) == NULL) {
		r = DIR_ENOMEM;
		dir_errf(err, errlen, "out of memory");
		goto out;
	}
	/* IPv6 literals keep their brackets. */
	dir_errf(u->tcp_uri, len + 32,
	         strchr(u->host, ':') != NULL ? "ldap://[%s]:%d"
	                                      : "ldap://%s:%d",
	         u->host, u->port);
	u->uri = uri;
	uri = NULL;
	r = 0;
out:
	if (r != 0) {
		free(u->host);
		free(u->tcp_uri);
		memset(u, 0, sizeof(*u));
	}
	if (lud != NULL)
		ldap_free_urldesc(lud);
	free(uri);
	return r;
}

static int
parse_uris(const char *uris, struct dir_cfg *c, char *err, size_t errlen)
{
	const char *p = uris, *tok;
	size_t len;
	int r;

	if (uris == NULL || strspn(uris, " \t") == strlen(uris)) {
		dir_errf(err, errlen,
		         "ldap.uri is empty: set it to the directory server, "
		         "e.g. ldaps://ldap.example.com (several, separated by "
		         "spaces, for failover)");
		return DIR_EINVAL;
	}
	if (strnlen(uris, DIR_MAX_URIS_LEN + 1) > DIR_MAX_URIS_LEN) {
		dir_errf(err, errlen, "ldap.uri is longer than %d characters",
		         DIR_MAX_URIS_LEN);
		return DIR_EINVAL;
	}
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		tok = p;
		len = strcspn(p, " \t");
		p += len;
		if (c->nuris == DIR_MAX_URIS) {
			dir_errf(err, errlen,
			         "ldap.uri lists more than %d servers",
			         DIR_MAX_URIS);
			return DIR_EINVAL;
		}
		if ((r = parse_uri(tok, len, &c->uris[c->nuris], err,
		                   errlen)) != 0)
			return r;
		c->nuris++;
	}
	return 0;
}

/* TLS mode and URI schemes must agree: never a silent clear-text path. */
static int
check_tls_mode(const struct dir_cfg *c, char *err, size_t errlen)
{
	size_t i;

	if (c->tls != DIR_TLS_NONE && c->tls != DIR_TLS_STARTTLS &&
	    c->tls != DIR_TLS_LDAPS) {
		dir_errf(err, errlen,
		         "ldap.tls has an unknown value (%d): use none, "
		         "starttls or ldaps",
		         (int)c->tls);
		return DIR_EINVAL;
	}
	for (i = 0; i < c->nuris; i++) {
		const struct dir_uri *u = &c->uris[i];

		if (c->tls == DIR_TLS_STARTTLS && u->ldaps) {
			dir_errf(err, errlen,
			         "ldap.tls is starttls but %s already uses "
			         "TLS from the first byte: StartTLS is for "
			         "ldap:// URIs. Set ldap.tls = ldaps, or use "
			         "ldap://%s with the server's StartTLS port",
			         u->uri, u->host);
			return DIR_EINVAL;
		}
		if (c->tls == DIR_TLS_LDAPS && !u->ldaps) {
			dir_errf(err, errlen,
			         "ldap.tls is ldaps but %s is a clear-text "
			         "ldap:// URI: write ldaps://%s (port 636 by "
			         "default), or set ldap.tls = starttls",
			         u->uri, u->host);
			return DIR_EINVAL;
		}
	}
	return 0;
}

/*
 * The CA file must be readable, hold at least one PEM certificate, and
 * load into a TLS context the way each connection will load it.
 */
static int
check_ca_file(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t have = 0;
	ssize_t n;
	LDAP *ld = NULL;
	int fd = -1, r = DIR_EINVAL, req = LDAP_OPT_X_TLS_DEMAND, zero = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		dir_errf(err, errlen,
		         "ldap.ca_file %s cannot be read: %s — set it to the "
		         "PEM file of the CA that issued the directory's "
		         "certificate",
		         path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		dir_errf(err, errlen,
		         "ldap.ca_file %s is not a regular file: set it to a "
		         "PEM file of CA certificates",
		         path);
		goto out;
	}
	if (st.st_size > CA_FILE_MAX) {
		dir_errf(err, errlen,
		         "ldap.ca_file %s is larger than %d bytes: is it a "
		         "certificate file?",
		         path, CA_FILE_MAX);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		r = DIR_ENOMEM;
		dir_errf(err, errlen, "out of memory");
		goto out;
	}
	while (have < (size_t)st.st_size &&
	       (n = read(fd, buf + have, (size_t)st.st_size - have)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			dir_errf(err, errlen,
			         "ldap.ca_file %s cannot be read: %s", path,
			         strerror(errno));
			goto out;
		}
		have += (size_t)n;
	}
	buf[have] = '\0';
	if (memmem(buf, have, "-----BEGIN CERTIFICATE-----", 27) == NULL) {
		dir_errf(err, errlen,
		         "ldap.ca_file %s holds no PEM certificate (no "
		         "\"-----BEGIN CERTIFICATE-----\" line): set it to the "
		         "CA certificate in PEM form",
		         path);
		goto out;
	}
	/* Load it the way each connection will (libldap's TLS library). */
	if (ldap_initialize(&ld, NULL) != LDAP_SUCCESS) {
		r = DIR_ENOMEM;
		dir_errf(err, errlen, "cannot create an LDAP handle");
		goto out;
	}
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &req) !=
	        LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, path) !=
	        LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) !=
	        LDAP_OPT_SUCCESS) {
		dir_errf(err, errlen,
		         "ldap.ca_file %s could not be loaded as CA "
		         "certificates: check that it is PEM and not damaged",
		         path);
		goto out;
	}
	r = 0;
out:
	if (ld != NULL)
		ldap_unbind_ext_s(ld, NULL, NULL);
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

static int
check_ms(const char *name, int v, int min, char *err, size_t errlen)
{
	if (v < min || v > DIR_MAX_TIMEOUT_MS) {
		dir_errf(err, errlen,
		         "%s is %d: it must be between %d and %d milliseconds",
		         name, v, min, DIR_MAX_TIMEOUT_MS);
		return DIR_EINVAL;
	}
	return 0;
}

static int
check_dn(const char *name, const char *dn, char *err, size_t errlen)
{
	LDAPDN parsed = NULL;

	if (ldap_str2dn(dn, &parsed, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS) {
		dir_errf(err, errlen,
		         "%s '%s' is not a valid DN (example: "
		         "dc=example,dc=com)",
		         name, dn);
		return DIR_EINVAL;
	}
	ldap_dnfree(parsed);
	return 0;
}

void
dir_cfg_free(struct dir_cfg *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nuris; i++) {
		free(c->uris[i].uri);
		free(c->uris[i].tcp_uri);
		free(c->uris[i].host);
	}
	if (c->bind_password != NULL) {
		sodium_memzero(c->bind_password, c->bind_password_len);
		free(c->bind_password);
	}
	free(c->bind_dn);
	free(c->ca_file);
	free(c->base_dn);
	free(c->people_base);
	free(c->group_base);
	free(c->user_filter);
	free(c->active_filter);
	free(c->member_attribute);
	for (i = 0; i < DIR_ROLE_COUNT; i++)
		free(c->role_groups[i]);
	memset(c, 0, sizeof(*c));
}

/* An optional DN setting: copied and checked when set. */
static int
copy_dn(const char *name, const char *in, char **out, char *err,
        size_t errlen)
{
	int r;

	*out = NULL;
	if (in == NULL || in[0] == '\0')
		return 0;
	if ((r = copy_setting(name, in, DIR_MAX_DN_LEN, out, err, errlen)) !=
	    0)
		return r;
	return check_dn(name, *out, err, errlen);
}

/* The settings of dir_check_member / dir_check_role. */
static int
load_checks(const struct dir_config *in, struct dir_cfg *c, char *err,
            size_t errlen)
{
	static const char *const role_names[DIR_ROLE_COUNT] = {
	    "directory.host_group", "directory.admin_group",
	    "directory.compliance_group"};
	const char *uf = in->user_filter, *ma = in->member_attribute;
	int r, i;

	if ((r = copy_dn("directory.people_base", in->people_base,
	                 &c->people_base, err, errlen)) != 0 ||
	    (r = copy_dn("directory.group_base", in->group_base,
	                 &c->group_base, err, errlen)) != 0)
		return r;
	for (i = 0; i < DIR_ROLE_COUNT; i++)
		if ((r = copy_dn(role_names[i], in->role_groups[i],
		                 &c->role_groups[i], err, errlen)) != 0)
			return r;

	if (uf == NULL || uf[0] == '\0')
		uf = DIR_DEFAULT_USER_FILTER;
	if ((r = dir_filter_check("directory.user_filter", uf, err,
	                          errlen)) != 0)
		return r;
	if (strstr(uf, DIR_IDENTITY_PLACEHOLDER) == NULL) {
		dir_errf(err, errlen,
		         "directory.user_filter '%s' has no %s placeholder: "
		         "write where the identity goes, e.g. "
		         "(&(objectClass=person)(mail=%s))",
		         uf, DIR_IDENTITY_PLACEHOLDER, DIR_IDENTITY_PLACEHOLDER);
		return DIR_EINVAL;
	}
	if ((r = copy_setting("directory.user_filter", uf, DIR_MAX_FILTER_LEN,
	                      &c->user_filter, err, errlen)) != 0)
		return r;

	switch (in->active) {
	case DIR_ACTIVE_OPENLDAP:
	case DIR_ACTIVE_AD:
	case DIR_ACTIVE_FREEIPA:
	case DIR_ACTIVE_NONE:
		break;
	case DIR_ACTIVE_FILTER:
		if ((r = dir_filter_check("directory.active_filter",
		                          in->active_filter, err, errlen)) != 0)
			return r;
		if ((r = copy_setting("directory.active_filter",
		                      in->active_filter, DIR_MAX_FILTER_LEN,
		                      &c->active_filter, err, errlen)) != 0)
			return r;
		break;
	default:
		dir_errf(err, errlen,
		         "directory.active has an unknown value (%d): use "
		         "openldap, ad, freeipa, none or filter",
		         (int)in->active);
		return DIR_EINVAL;
	}
	c->active = in->active;

	switch (in->membership) {
	case DIR_MEMBERSHIP_MEMBEROF:
	case DIR_MEMBERSHIP_MEMBER:
	case DIR_MEMBERSHIP_AD_CHAIN:
	case DIR_MEMBERSHIP_NESTED:
		break;
	default:
		dir_errf(err, errlen,
		         "directory.membership has an unknown value (%d): use "
		         "memberof, member, ad_chain or nested",
		         (int)in->membership);
		return DIR_EINVAL;
	}
	c->membership = in->membership;
	if (ma == NULL || ma[0] == '\0')
		ma = "member";
	if ((r = dir_attr_check("directory.member_attribute", ma, err,
	                        errlen)) != 0 ||
	    (r = copy_setting("directory.member_attribute", ma,
	                      DIR_MAX_ATTR_LEN, &c->member_attribute, err,
	                      errlen)) != 0)
		return r;
	c->nest_depth = in->nest_depth == 0 ? DIR_DEFAULT_NEST_DEPTH
	                                    : in->nest_depth;
	if (c->nest_depth < 1 || c->nest_depth > DIR_MAX_NEST_DEPTH) {
		dir_errf(err, errlen,
		         "directory.nest_depth is %d: it must be between 1 and "
		         "%d",
		         in->nest_depth, DIR_MAX_NEST_DEPTH);
		return DIR_EINVAL;
	}
	c->check_timeout_ms = in->check_timeout_ms == 0 ? c->op_timeout_ms
	                                                : in->check_timeout_ms;
	if ((r = check_ms("directory.check_timeout_ms", c->check_timeout_ms, 1,
	                  err, errlen)) != 0)
		return r;
	c->log = in->log;
	c->log_arg = in->log_arg;
	return 0;
}

int
dir_cfg_load(const struct dir_config *in, int for_pool, struct dir_cfg *out,
             char *err, size_t errlen)
{
	struct dir_cfg c;
	int r = DIR_EINVAL;

	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	dir_errf(err, errlen, "%s", "");
	if (in == NULL) {
		dir_errf(err, errlen, "no LDAP configuration given");
		goto out;
	}
	if ((r = parse_uris(in->uris, &c, err, errlen)) != 0)
		goto out;
	c.tls = in->tls;
	if ((r = check_tls_mode(&c, err, errlen)) != 0)
		goto out;

	r = DIR_EINVAL;
	if (in->bind_dn == NULL || in->bind_dn[0] == '\0') {
		dir_errf(err, errlen,
		         "ldap.bind_dn is empty: set it to the service "
		         "account roomgate binds as, e.g. "
		         "cn=roomgate,ou=services,dc=example,dc=com");
		goto out;
	}
	if ((r = copy_setting("ldap.bind_dn", in->bind_dn, DIR_MAX_DN_LEN,
	                      &c.bind_dn, err, errlen)) != 0)
		goto out;
	r = DIR_EINVAL;
	/* An empty password makes an "unauthenticated bind" (RFC 4513
	 * 5.1.2), which many servers accept as anonymous: never send one. */
	if (in->bind_password == NULL || in->bind_password[0] == '\0') {
		dir_errf(err, errlen,
		         "ldap.bind_password is empty: set the service "
		         "account's password (an empty one would bind "
		         "anonymously on many servers)");
		goto out;
	}
	if ((r = copy_setting("ldap.bind_password", in->bind_password,
	                      DIR_MAX_PASSWORD_LEN, &c.bind_password, err,
	                      errlen)) != 0)
		goto out;
	c.bind_password_len = strlen(c.bind_password);

	if (in->ca_file != NULL && in->ca_file[0] != '\0') {
		if ((r = copy_setting("ldap.ca_file", in->ca_file,
		                      DIR_MAX_PATH_LEN, &c.ca_file, err,
		                      errlen)) != 0)
			goto out;
		if ((r = check_ca_file(c.ca_file, err, errlen)) != 0)
			goto out;
	}
	if (in->base_dn != NULL && in->base_dn[0] != '\0') {
		if ((r = copy_setting("ldap.base_dn", in->base_dn,
		                      DIR_MAX_DN_LEN, &c.base_dn, err,
		                      errlen)) != 0)
			goto out;
		if ((r = check_dn("ldap.base_dn", c.base_dn, err, errlen)) != 0)
			goto out;
	}

	if ((r = check_ms("ldap.network_timeout_ms", in->network_timeout_ms, 1,
	                  err, errlen)) != 0 ||
	    (r = check_ms("ldap.op_timeout_ms", in->op_timeout_ms, 1, err,
	                  errlen)) != 0)
		goto out;
	c.network_timeout_ms = in->network_timeout_ms;
	c.op_timeout_ms = in->op_timeout_ms;
	if (for_pool) {
		if (in->pool_size < 1 || in->pool_size > DIR_MAX_POOL_SIZE) {
			r = DIR_EINVAL;
			dir_errf(err, errlen,
			         "ldap.pool_size is %d: it must be between 1 "
			         "and %d",
			         in->pool_size, DIR_MAX_POOL_SIZE);
			goto out;
		}
		if ((r = check_ms("ldap.acquire_timeout_ms",
		                  in->acquire_timeout_ms, 0, err, errlen)) != 0)
			goto out;
		c.pool_size = in->pool_size;
		c.acquire_timeout_ms = in->acquire_timeout_ms;
		if ((r = load_checks(in, &c, err, errlen)) != 0)
			goto out;
	}
	*out = c;
	memset(&c, 0, sizeof(c));
	dir_errf(err, errlen, "%s", "");
	r = 0;
out:
	dir_cfg_free(&c);
	return r;
}
