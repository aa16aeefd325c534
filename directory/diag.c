/*
 * directory/diag.c -- explains a failed connection. libldap reports most
 * connect and TLS failures as "Can't contact LDAP server" (GnuTLS reasons
 * come out as "(unknown error code)"), which nobody can act on. Only after
 * libldap has already refused, this file looks again:
 *
 *   - a plain TCP connect tells "connection refused" from "host not found"
 *     from "no answer";
 *   - a second handshake without verification fetches the server's
 *     certificate (that connection never binds and is closed at once), and
 *     OpenSSL checks it against the configured CA and the URI's host name,
 *     to say which of the two failed and what the certificate names.
 *
 * The decision stays libldap's: nothing here makes a connection succeed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ldap.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "directory/dir_int.h"

static int
tcp_reason(int e, const struct dir_uri *u, int timeout_ms, char *why,
           size_t whylen)
{
	switch (e) {
	case ECONNREFUSED:
		dir_errf(why, whylen,
		         "connection refused — is the directory server "
		         "running and listening on %s port %d?",
		         u->host, u->port);
		return DIR_EUNAVAIL;
	case ETIMEDOUT:
		dir_errf(why, whylen,
		         "no answer within %d ms (ldap.network_timeout_ms) — "
		         "the host may be down or a firewall drops the traffic",
		         timeout_ms);
		return DIR_ETIMEOUT;
	case EHOSTUNREACH:
	case ENETUNREACH:
		dir_errf(why, whylen, "%s — check the host in ldap.uri",
		         strerror(e));
		return DIR_EUNAVAIL;
	default:
		dir_errf(why, whylen, "%s", strerror(e));
		return DIR_EUNAVAIL;
	}
}

int
dir_diag_tcp(const struct dir_uri *u, int timeout_ms, char *why, size_t whylen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16];
	int64_t deadline = dir_mono_ms() + timeout_ms;
	int gai, fd, e = ECONNREFUSED, r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	dir_errf(port, sizeof(port), "%d", u->port);
	if ((gai = getaddrinfo(u->host, port, &hints, &res)) != 0) {
		dir_errf(why, whylen,
		         "host name %s not found (%s) — check the host in "
		         "ldap.uri",
		         u->host, gai_strerror(gai));
		return DIR_EUNAVAIL;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t len = sizeof(e);
		int64_t left;

		fd = socket(ai->ai_family,
		            ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			e = 0;
		} else if (errno != EINPROGRESS) {
			e = errno;
		} else {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			pfd.revents = 0;
			left = deadline - dir_mono_ms();
			r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
			if (r == 0)
				e = ETIMEDOUT;
			else if (r < 0)
				e = errno;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e,
			                    &len) != 0)
				e = errno;
		}
		close(fd);
		if (e == 0)
			break;
	}
	freeaddrinfo(res);
	if (e == 0) {
		why[0] = '\0';
		return 0;
	}
	return tcp_reason(e, u, timeout_ms, why, whylen);
}

/*
 * libldap checks a URI host of "localhost" against this machine's name
 * instead (gethostname, then its canonical name), in every TLS backend.
 */
static int
libldap_localhost_name(char *buf, size_t buflen)
{
	struct addrinfo hints, *res = NULL;
	char host[256];

	if (gethostname(host, sizeof(host)) != 0)
		return -1;
	host[sizeof(host) - 1] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(host, NULL, &hints, &res) == 0 && res != NULL &&
	    res->ai_canonname != NULL)
		dir_errf(buf, buflen, "%s", res->ai_canonname);
	else
		dir_errf(buf, buflen, "%s", host);
	if (res != NULL)
		freeaddrinfo(res);
	return 0;
}

/* "localhost, vm" from the subjectAltName (or the CN when none). */
static void
cert_names(X509 *x, char *buf, size_t buflen)
{
	GENERAL_NAMES *gens;
	int i, n;

	buf[0] = '\0';
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	n = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;
	for (i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char ip[INET6_ADDRSTRLEN];
		const unsigned char *d;
		int len;

		if (g->type == GEN_DNS) {
			d = ASN1_STRING_get0_data(g->d.dNSName);
			len = ASN1_STRING_length(g->d.dNSName);
			dir_errcat(buf, buflen, "%s%.*s", buf[0] ? ", " : "",
			           len, (const char *)d);
		} else if (g->type == GEN_IPADD) {
			d = ASN1_STRING_get0_data(g->d.iPAddress);
			len = ASN1_STRING_length(g->d.iPAddress);
			if ((len == 4 &&
			     inet_ntop(AF_INET, d, ip, sizeof(ip)) != NULL) ||
			    (len == 16 &&
			     inet_ntop(AF_INET6, d, ip, sizeof(ip)) != NULL))
				dir_errcat(buf, buflen, "%sIP %s",
				           buf[0] ? ", " : "", ip);
		}
	}
	if (gens != NULL)
		GENERAL_NAMES_free(gens);
	dir_printable(buf); /* the server chose these bytes */
	if (buf[0] == '\0') {
		char cn[256];

		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		                              NID_commonName, cn,
		                              sizeof(cn)) > 0) {
			dir_errf(buf, buflen, "CN %s", cn);
			dir_printable(buf);
		} else {
			dir_errf(buf, buflen, "no name at all");
		}
	}
}

static int
is_ip_literal(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 ||
	       inet_pton(AF_INET6, host, a) == 1;
}

/* 1 when the certificate names host the way libldap checks it. */
static int
name_matches(X509 *x, const char *host)
{
	if (is_ip_literal(host))
		return X509_check_ip_asc(x, host, 0) == 1;
	return X509_check_host(x, host, 0, 0, NULL) == 1;
}

/* X509_V_OK, or why the chain does not verify with the configured CA. */
static long
chain_error(const struct dir_cfg *c, X509 *x)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	long code = X509_V_ERR_UNSPECIFIED;

	if ((store = X509_STORE_new()) == NULL ||
	    (ctx = X509_STORE_CTX_new()) == NULL)
		goto out;
	if (c->ca_file != NULL) {
		if (X509_STORE_load_file(store, c->ca_file) != 1)
			goto out;
	} else if (X509_STORE_set_default_paths(store) != 1) {
		goto out;
	}
	if (X509_STORE_CTX_init(ctx, store, x, NULL) != 1)
		goto out;
	code = X509_verify_cert(ctx) == 1 ? X509_V_OK
	                                  : X509_STORE_CTX_get_error(ctx);
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return code;
}

static void
check_cert(const struct dir_cfg *c, const struct dir_uri *u,
           const struct berval *der, char *why, size_t whylen)
{
	const unsigned char *p = (const unsigned char *)der->bv_val;
	char names[512], local[256];
	const char *host = u->host;
	X509 *x = NULL;
	long code;
	int name_ok, via_local = 0;

	why[0] = '\0';
	if (der->bv_val == NULL || der->bv_len == 0 ||
	    (x = d2i_X509(NULL, &p, (long)der->bv_len)) == NULL) {
		ERR_clear_error();
		return;
	}
	if (strcasecmp(host, "localhost") == 0 &&
	    libldap_localhost_name(local, sizeof(local)) == 0) {
		host = local;
		via_local = 1;
	}
	cert_names(x, names, sizeof(names));
	name_ok = name_matches(x, host);
	code = chain_error(c, x);

	if (!name_ok) {
		if (via_local)
			dir_errf(why, whylen,
			         "certificate name does not match — libldap "
			         "checks a URI host of 'localhost' against "
			         "this machine's name '%s', which the "
			         "certificate must carry (it names %s); or use "
			         "a host name from the certificate",
			         local, names);
		else
			dir_errf(why, whylen,
			         "certificate name does not match — use the "
			         "host name in the certificate (it names %s; "
			         "ldap.uri says %s)",
			         names, u->host);
	}
	if (code == X509_V_OK)
		goto out;
	dir_errcat(why, whylen, "%s", why[0] ? "; and the " : "");
	if (code == X509_V_ERR_CERT_HAS_EXPIRED ||
	    code == X509_V_ERR_CERT_NOT_YET_VALID)
		dir_errcat(why, whylen,
		           "certificate is not valid now (%s) — renew it on "
		           "the server, or check this machine's clock",
		           X509_verify_cert_error_string(code));
	else if (c->ca_file != NULL)
		dir_errcat(why, whylen,
		           "certificate is not trusted (%s) — ldap.ca_file %s "
		           "does not hold the CA that issued it",
		           X509_verify_cert_error_string(code), c->ca_file);
	else
		dir_errcat(why, whylen,
		           "certificate is not trusted (%s) — no ldap.ca_file "
		           "is set and the system trust store does not know "
		           "its issuer: set ldap.ca_file to the directory's CA "
		           "(PEM)",
		           X509_verify_cert_error_string(code));
out:
	X509_free(x);
	/* Leave no OpenSSL errors behind for other users of this thread. */
	ERR_clear_error();
}

void
dir_diag_tls(const struct dir_cfg *c, const struct dir_uri *u, int starttls,
             char *why, size_t whylen)
{
	struct dir_sigpipe sp;
	struct dir_conn conn = {NULL, u};
	struct berval der = {0, NULL};
	char e[DIR_ERR_MAX], *m = NULL;
	int lrc, timed_out = 0;

	why[0] = '\0';
	if (ldap_initialize(&conn.ld, u->tcp_uri) != LDAP_SUCCESS)
		return;
	/* Verification off: this connection only fetches the certificate
	 * and is closed without a bind. */
	if (dir_conn_options(c, conn.ld, 1, LDAP_OPT_X_TLS_NEVER, e,
	                     sizeof(e)) != 0) {
		dir_errf(why, whylen, "%s", e);
		goto out;
	}
	dir_sigpipe_block(&sp);
	lrc = ldap_connect(conn.ld);
	if (lrc == LDAP_SUCCESS)
		lrc = dir_conn_start_tls(c, conn.ld, starttls, &timed_out);
	if (lrc == LDAP_SUCCESS &&
	    ldap_get_option(conn.ld, LDAP_OPT_X_TLS_PEERCERT, &der) ==
	        LDAP_OPT_SUCCESS)
		check_cert(c, u, &der, why, whylen);
	dir_sigpipe_restore(&sp);
	if (lrc == LDAP_SUCCESS)
		goto out;

	if (ldap_get_option(conn.ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &m) !=
	        LDAP_OPT_SUCCESS ||
	    (m != NULL && strcmp(m, "(unknown error code)") == 0)) {
		ldap_memfree(m);
		m = NULL;
	}
	dir_printable(m);
	if (timed_out)
		dir_errf(why, whylen,
		         "the server did not finish the handshake within %d "
		         "ms",
		         c->network_timeout_ms);
	else if (starttls && lrc > 0)
		dir_errf(why, whylen, "the server refused StartTLS: %s%s%s%s",
		         ldap_err2string(lrc), m ? " (" : "", m ? m : "",
		         m ? ")" : "");
	else if (starttls)
		dir_errf(why, whylen,
		         "the server closed the connection when StartTLS "
		         "began — if port %d is an ldaps:// port, write "
		         "ldaps://%s:%d and set ldap.tls = ldaps",
		         u->port, u->host, u->port);
	else
		dir_errf(why, whylen,
		         "the TLS handshake failed%s%s%s — is port %d an "
		         "ldaps:// port? A StartTLS port wants ldap:// with "
		         "ldap.tls = starttls",
		         m ? " (" : "", m ? m : "", m ? ")" : "", u->port);
out:
	ldap_memfree(m);
	if (der.bv_val != NULL)
		ber_memfree(der.bv_val);
	dir_conn_close(&conn);
}
