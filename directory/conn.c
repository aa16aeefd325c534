/*
 * directory/conn.c -- one bound connection to the directory: per-handle
 * options and TLS, connect, StartTLS, simple bind, failover over the
 * configured URIs, and the mapping of libldap results to DIR_E* with
 * messages a person can act on. See dir_int.h.
 *
 * Each phase runs on its own (ldap_connect, then TLS, then the bind) so a
 * failure can be told apart: cannot reach / TLS / credentials.
 *
 * TLS and libldap 2.5.13 (Debian 12): with LDAP_OPT_NETWORK_TIMEOUT set,
 * ldap_int_tls_start() puts the socket in non-blocking mode and retries
 * the handshake in a loop that neither polls nor checks the deadline: a
 * server that accepts the TCP connection but does not answer (hung,
 * stopped, overloaded) makes the caller spin at 100% CPU forever. So the
 * TCP connect always goes to "ldap://host:port" with the network timeout
 * (ldaps:// included), and the handshake runs afterwards through
 * ldap_install_tls() / ldap_start_tls_s() with the network timeout lifted
 * (blocking socket) and a watchdog thread that shuts the socket down when
 * the deadline passes, which ends the handshake with an error.
 */
#include <ctype.h>
#include <errno.h>
#include <ldap.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "directory/dir_int.h"

static void
ms_to_tv(int ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* The server's diagnostic message, or "" (libldap's placeholder too). */
static void
diag_text(LDAP *ld, char *buf, size_t buflen)
{
	char *m = NULL;

	buf[0] = '\0';
	if (ld == NULL ||
	    ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &m) !=
	        LDAP_OPT_SUCCESS ||
	    m == NULL)
		return;
	/* GnuTLS errors reach libldap as LDAP codes and come out as this. */
	if (strcmp(m, "(unknown error code)") != 0)
		dir_errf(buf, buflen, "%s", m);
	ldap_memfree(m);
	dir_printable(buf);
}

int
dir_conn_dead(int ldap_rc)
{
	return ldap_rc == LDAP_SERVER_DOWN || ldap_rc == LDAP_CONNECT_ERROR;
}

int
dir_conn_broken(int ldap_rc)
{
	/* Client-side errors (< 0: server down, timeout, decoding...) leave
	 * the handle in an unknown state; "unavailable" means the server is
	 * shutting down or refuses to serve this connection. */
	return ldap_rc < 0 || ldap_rc == LDAP_UNAVAILABLE;
}

int
dir_wait_answer(LDAP *ld, int msgid, struct timeval *tv, LDAPMessage **res)
{
	int rc, lrc = LDAP_OTHER;

	*res = NULL;
	rc = ldap_result(ld, LDAP_RES_ANY, LDAP_MSG_ALL, tv, res);
	if (rc > 0 && ldap_msgid(*res) == msgid)
		return LDAP_SUCCESS;
	if (rc > 0) {
		/* Not this request's answer: the server is going away. Its
		 * result code, as libldap would have set it; the caller drops
		 * the connection (dir_conn_broken). */
		if (ldap_parse_result(ld, *res, &lrc, NULL, NULL, NULL, NULL,
		                      0) != LDAP_SUCCESS ||
		    lrc == LDAP_SUCCESS)
			lrc = LDAP_UNAVAILABLE;
		ldap_msgfree(*res);
		*res = NULL;
		return lrc;
	}
	if (*res != NULL) {
		ldap_msgfree(*res);
		*res = NULL;
	}
	if (rc == 0) {
		(void)ldap_abandon_ext(ld, msgid, NULL, NULL);
		return LDAP_TIMEOUT;
	}
	if (ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &lrc) !=
	        LDAP_OPT_SUCCESS ||
	    lrc == LDAP_SUCCESS)
		lrc = LDAP_SERVER_DOWN;
	return lrc;
}

static int
set_opt(LDAP *ld, int opt, const void *val, const char *name, char *err,
        size_t errlen)
{
	if (ldap_set_option(ld, opt, val) != LDAP_OPT_SUCCESS) {
		dir_errf(err, errlen, "libldap refused option %s", name);
		return DIR_EINVAL;
	}
	return 0;
}

int
dir_conn_options(const struct dir_cfg *c, LDAP *ld, int use_tls,
                 int require_cert, char *err, size_t errlen)
{
	struct timeval net, op;
	int v3 = LDAP_VERSION3, idle = DIR_KEEPALIVE_IDLE_S,
	    probes = DIR_KEEPALIVE_PROBES, intvl = DIR_KEEPALIVE_INTERVAL_S,
	    tls12 = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, zero = 0, r;
	char diag[256];

	ms_to_tv(c->network_timeout_ms, &net);
	ms_to_tv(c->op_timeout_ms, &op);
	if ((r = set_opt(ld, LDAP_OPT_PROTOCOL_VERSION, &v3, "protocol 3", err,
	                 errlen)) != 0 ||
	    (r = set_opt(ld, LDAP_OPT_NETWORK_TIMEOUT, &net, "network timeout",
	                 err, errlen)) != 0 ||
	    (r = set_opt(ld, LDAP_OPT_TIMEOUT, &op, "operation timeout", err,
	                 errlen)) != 0 ||
	    (r = set_opt(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF, "referrals off",
	                 err, errlen)) != 0 ||
	    /* A signal must not turn a wait into "server down". */
	    (r = set_opt(ld, LDAP_OPT_RESTART, LDAP_OPT_ON, "restart", err,
	                 errlen)) != 0 ||
	    (r = set_opt(ld, LDAP_OPT_X_KEEPALIVE_IDLE, &idle, "keepalive idle",
	                 err, errlen)) != 0 ||
	    (r = set_opt(ld, LDAP_OPT_X_KEEPALIVE_PROBES, &probes,
	                 "keepalive probes", err, errlen)) != 0 ||
	    (r = set_opt(ld, LDAP_OPT_X_KEEPALIVE_INTERVAL, &intvl,
	                 "keepalive interval", err, errlen)) != 0)
		return r;
	if (!use_tls)
		return 0;
	if ((r = set_opt(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require_cert,
	                 "TLS require cert", err, errlen)) != 0 ||
	    (r = set_opt(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &tls12,
	                 "TLS 1.2 minimum", err, errlen)) != 0)
		return r;
	if (c->ca_file != NULL &&
	    (r = set_opt(ld, LDAP_OPT_X_TLS_CACERTFILE, c->ca_file,
	                 "TLS CA file", err, errlen)) != 0)
		return r;
	/* The handle's own TLS context, so the options above take effect
	 * (otherwise libldap uses the process-wide one). */
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) !=
	    LDAP_OPT_SUCCESS) {
		diag_text(ld, diag, sizeof(diag));
		if (c->ca_file != NULL)
			dir_errf(
			    err, errlen,
			    "cannot set up TLS with ldap.ca_file %s%s%s%s: "
			    "check that the file still exists and holds "
			    "PEM certificates",
			    c->ca_file, diag[0] ? " (" : "", diag,
			    diag[0] ? ")" : "");
		else
			dir_errf(err, errlen,
			         "cannot set up TLS with the system trust "
			         "store%s%s%s: set ldap.ca_file to the "
			         "directory's CA (PEM)",
			         diag[0] ? " (" : "", diag, diag[0] ? ")" : "");
		return DIR_ETLS;
	}
	return 0;
}

void
dir_conn_close(struct dir_conn *conn)
{
	struct dir_sigpipe sp;

	if (conn == NULL || conn->ld == NULL)
		return;
	dir_sigpipe_block(&sp);
	ldap_unbind_ext_s(conn->ld, NULL, NULL);
	dir_sigpipe_restore(&sp);
	conn->ld = NULL;
}

/* Shuts a socket down when a deadline passes, unless disarmed first. */
struct watchdog {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	struct timespec deadline;
	int fd;
	int disarmed;
	int fired;
};

static void *
watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	while (!w->disarmed && rc == 0)
		rc = pthread_cond_timedwait(&w->cv, &w->mu, &w->deadline);
	if (!w->disarmed) {
		/* Wakes the blocked read: the handshake ends with EOF. */
		shutdown(w->fd, SHUT_RDWR);
		w->fired = 1;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int
dir_conn_start_tls(const struct dir_cfg *c, LDAP *ld, int starttls,
                   int *timed_out)
{
	struct watchdog w;
	struct timeval forever = {-1, 0}, net;
	pthread_condattr_t ca;
	pthread_t t;
	int lrc, fd = -1, have_cv = 0, ms, hard = LDAP_OPT_X_TLS_HARD;

	*timed_out = 0;
	if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS ||
	    fd < 0)
		return LDAP_LOCAL_ERROR;
	memset(&w, 0, sizeof(w));
	w.fd = fd;
	/* StartTLS: its request is bounded by the operation timeout, then
	 * the handshake by the network timeout. */
	ms = c->network_timeout_ms + (starttls ? c->op_timeout_ms : 0);
	clock_gettime(CLOCK_MONOTONIC, &w.deadline);
	w.deadline.tv_sec += ms / 1000;
	w.deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (w.deadline.tv_nsec >= 1000000000L) {
		w.deadline.tv_sec++;
		w.deadline.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_init(&w.mu, NULL) != 0)
		return LDAP_NO_MEMORY;
	if (pthread_condattr_init(&ca) == 0) {
		if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
		    pthread_cond_init(&w.cv, &ca) == 0)
			have_cv = 1;
		pthread_condattr_destroy(&ca);
	}
	if (!have_cv || pthread_create(&t, NULL, watchdog_main, &w) != 0) {
		lrc = LDAP_NO_MEMORY;
		goto out;
	}

	/* See the top of this file: no network timeout in the handshake. */
	(void)ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &forever);
	lrc =
	    starttls ? ldap_start_tls_s(ld, NULL, NULL) : ldap_install_tls(ld);
	ms_to_tv(c->network_timeout_ms, &net);
	(void)ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &net);

	pthread_mutex_lock(&w.mu);
	w.disarmed = 1;
	pthread_cond_signal(&w.cv);
	pthread_mutex_unlock(&w.mu);
	pthread_join(t, NULL);
	*timed_out = w.fired;
	if (w.fired && lrc == LDAP_SUCCESS)
		lrc = LDAP_TIMEOUT; /* finished as the socket was shut */
	/* Should libldap ever open another connection on this handle, it
	 * must start with TLS, never in clear text. */
	if (lrc == LDAP_SUCCESS)
		(void)ldap_set_option(ld, LDAP_OPT_X_TLS, &hard);
out:
	if (have_cv)
		pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return lrc;
}

/* Why the TCP connect failed; libldap itself only says "-1". */
static int
connect_failure(const struct dir_cfg *c, const struct dir_uri *u, LDAP *ld,
                int lrc, int64_t elapsed_ms, char *err, size_t errlen)
{
	char why[DIR_ERR_MAX], diag[256];
	int r;

	diag_text(ld, diag, sizeof(diag));
	if (lrc == LDAP_NO_MEMORY) {
		dir_errf(err, errlen, "out of memory connecting to %s", u->uri);
		return DIR_ENOMEM;
	}
	/* The connect is bounded by the network timeout: running into it
	 * means nobody answered. */
	if (lrc == LDAP_TIMEOUT ||
	    (elapsed_ms > 0 && elapsed_ms >= c->network_timeout_ms * 9 / 10)) {
		dir_errf(err, errlen,
		         "cannot reach %s: no answer within %d ms "
		         "(ldap.network_timeout_ms) — the host may be down, or "
		         "a firewall drops the traffic",
		         u->uri, c->network_timeout_ms);
		return DIR_ETIMEOUT;
	}
	/* A fast failure: connect once more to learn the reason. */
	if ((r = dir_diag_tcp(u, c->network_timeout_ms, why, sizeof(why))) !=
	    0) {
		dir_errf(err, errlen, "cannot reach %s: %s", u->uri, why);
		return r;
	}
	dir_errf(err, errlen, "connection to %s failed: %s%s%s%s", u->uri,
	         ldap_err2string(lrc), diag[0] ? " (" : "", diag,
	         diag[0] ? ")" : "");
	return DIR_EUNAVAIL;
}

/* Why TLS (ldaps:// handshake or StartTLS) failed. */
static int
tls_failure(const struct dir_cfg *c, const struct dir_uri *u, LDAP *ld, int lrc,
            int starttls, int timed_out, char *err, size_t errlen)
{
	char why[DIR_ERR_MAX], diag[256];

	diag_text(ld, diag, sizeof(diag));
	if (lrc == LDAP_NO_MEMORY) {
		dir_errf(err, errlen, "out of memory starting TLS with %s",
		         u->uri);
		return DIR_ENOMEM;
	}
	if (timed_out) {
		dir_errf(err, errlen,
		         "%s with %s timed out after %d ms "
		         "(ldap.network_timeout_ms): the server accepts "
		         "connections but does not answer (overloaded or "
		         "hung?)",
		         starttls ? "StartTLS" : "TLS handshake", u->uri,
		         c->network_timeout_ms +
		             (starttls ? c->op_timeout_ms : 0));
		return DIR_ETIMEOUT;
	}
	if (lrc == LDAP_TIMEOUT) {
		/* The StartTLS request itself went unanswered. */
		dir_errf(err, errlen,
		         "StartTLS with %s timed out after %d ms "
		         "(ldap.op_timeout_ms): the server accepts connections "
		         "but does not answer (overloaded or hung?)",
		         u->uri, c->op_timeout_ms);
		return DIR_ETIMEOUT;
	}
	if (starttls && lrc > 0) {
		/* The server answered the StartTLS request with a refusal. */
		dir_errf(err, errlen,
		         "StartTLS refused by %s: %s%s%s%s — the server has "
		         "no TLS set up for StartTLS; configure it there, or "
		         "use an ldaps:// URI with ldap.tls = ldaps",
		         u->uri, ldap_err2string(lrc), diag[0] ? " (" : "",
		         diag, diag[0] ? ")" : "");
		return DIR_ETLS;
	}
	dir_diag_tls(c, u, starttls, why, sizeof(why));
	if (why[0] == '\0')
		dir_errf(why, sizeof(why),
		         "the handshake or the certificate check failed%s%s%s",
		         diag[0] ? " (" : "", diag, diag[0] ? ")" : "");
	dir_errf(err, errlen, "%s to %s failed: %s",
	         starttls ? "StartTLS" : "TLS", u->uri, why);
	return DIR_ETLS;
}

/*
 * Active Directory puts the real reason of a refused bind in the
 * diagnostic message: "... AcceptSecurityContext error, data 52e, v4563".
 */
static const char *
ad_bind_reason(const char *diag)
{
	static const struct {
		const char *code;
		const char *text;
	} tab[] = {
	    {"525", "Active Directory: no such user"},
	    {"52e", "Active Directory: wrong password"},
	    {"530", "Active Directory: logon not permitted at this time"},
	    {"531", "Active Directory: logon not permitted from this "
	            "workstation"},
	    {"532", "Active Directory: the password has expired"},
	    {"533", "Active Directory: the account is disabled"},
	    {"568", "Active Directory: too many security IDs"},
	    {"701", "Active Directory: the account has expired"},
	    {"773", "Active Directory: the password must be reset"},
	    {"775", "Active Directory: the account is locked out"},
	};
	const char *p = strstr(diag, "data ");
	char code[4];
	size_t i, n;

	if (p == NULL)
		return NULL;
	p += 5;
	for (n = 0; n < 3 && isxdigit((unsigned char)p[n]); n++)
		code[n] = (char)tolower((unsigned char)p[n]);
	code[n] = '\0';
	if (n != 3 || isxdigit((unsigned char)p[n]))
		return NULL;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(code, tab[i].code) == 0)
			return tab[i].text;
	return NULL;
}

static int
bind_failure(const struct dir_cfg *c, const struct dir_uri *u, LDAP *ld,
             int lrc, char *err, size_t errlen)
{
	char diag[256], extra[320];
	const char *ad, *hint;
	int r = DIR_EAUTH;

	diag_text(ld, diag, sizeof(diag));
	extra[0] = '\0';
	if ((ad = ad_bind_reason(diag)) != NULL)
		dir_errf(extra, sizeof(extra), " (%s)", ad);
	else if (diag[0] != '\0')
		dir_errf(extra, sizeof(extra), " (%s)", diag);

	switch (lrc) {
	case LDAP_TIMEOUT:
	case LDAP_TIMELIMIT_EXCEEDED:
		dir_errf(err, errlen,
		         "LDAP bind as %s to %s timed out after %d ms "
		         "(ldap.op_timeout_ms): the server accepts connections "
		         "but does not answer (overloaded or hung?)",
		         c->bind_dn, u->uri, c->op_timeout_ms);
		return DIR_ETIMEOUT;
	case LDAP_SERVER_DOWN:
	case LDAP_CONNECT_ERROR:
		dir_errf(err, errlen,
		         "connection to %s was lost during the bind as %s "
		         "(server restarting?)",
		         u->uri, c->bind_dn);
		return DIR_EUNAVAIL;
	case LDAP_NO_MEMORY:
		dir_errf(err, errlen, "out of memory binding to %s", u->uri);
		return DIR_ENOMEM;
	case LDAP_BUSY:
	case LDAP_UNAVAILABLE:
		dir_errf(err, errlen,
		         "%s is %s and did not take the bind as %s%s", u->uri,
		         lrc == LDAP_BUSY ? "busy" : "unavailable", c->bind_dn,
		         extra);
		return DIR_EUNAVAIL;
	case LDAP_INVALID_CREDENTIALS:
		hint = "check ldap.bind_dn and ldap.bind_password";
		break;
	case LDAP_INVALID_DN_SYNTAX:
		hint = "ldap.bind_dn is not a name this server accepts";
		break;
	case LDAP_CONFIDENTIALITY_REQUIRED:
	case LDAP_STRONG_AUTH_REQUIRED:
		hint = "the server wants TLS before a bind: use ldaps:// or "
		       "set ldap.tls = starttls";
		break;
	case LDAP_INAPPROPRIATE_AUTH:
		hint = "the server allows no password bind for this account";
		break;
	default:
		hint = "check the service account on the directory server";
		break;
	}
	if (lrc < 0)
		r = DIR_EUNAVAIL;
	dir_errf(err, errlen, "LDAP bind as %s refused by %s: %s%s — %s",
	         c->bind_dn, u->uri, ldap_err2string(lrc), extra, hint);
	return r;
}

/* Connects to one URI, starts TLS if it or the config says so, binds. */
static int
open_uri(const struct dir_cfg *c, const struct dir_uri *u, LDAP **out,
         char *err, size_t errlen)
{
	struct dir_sigpipe sp;
	struct dir_conn conn = {NULL, u};
	struct berval cred;
	int starttls = !u->ldaps && c->tls == DIR_TLS_STARTTLS;
	int r, lrc, timed_out = 0;
	int64_t t0;

	*out = NULL;
	if ((lrc = ldap_initialize(&conn.ld, u->tcp_uri)) != LDAP_SUCCESS) {
		dir_errf(err, errlen, "cannot use %s: %s", u->uri,
		         ldap_err2string(lrc));
		return lrc == LDAP_NO_MEMORY ? DIR_ENOMEM : DIR_EINVAL;
	}
	if ((r = dir_conn_options(c, conn.ld, u->ldaps || starttls,
	                          LDAP_OPT_X_TLS_DEMAND, err, errlen)) != 0)
		goto out;

	dir_sigpipe_block(&sp);
	t0 = dir_mono_ms();
	if ((lrc = ldap_connect(conn.ld)) != LDAP_SUCCESS) {
		r = connect_failure(c, u, conn.ld, lrc, dir_mono_ms() - t0, err,
		                    errlen);
		goto out_sig;
	}
	if (u->ldaps || starttls) {
		lrc = dir_conn_start_tls(c, conn.ld, starttls, &timed_out);
		if (lrc != LDAP_SUCCESS) {
			r = tls_failure(c, u, conn.ld, lrc, starttls, timed_out,
			                err, errlen);
			goto out_sig;
		}
	}
	cred.bv_val = c->bind_password;
	cred.bv_len = c->bind_password_len;
	lrc = ldap_sasl_bind_s(conn.ld, c->bind_dn, LDAP_SASL_SIMPLE, &cred,
	                       NULL, NULL, NULL);
	if (lrc != LDAP_SUCCESS) {
		r = bind_failure(c, u, conn.ld, lrc, err, errlen);
		goto out_sig;
	}
	*out = conn.ld;
	conn.ld = NULL;
	r = 0;
out_sig:
	dir_sigpipe_restore(&sp);
out:
	dir_conn_close(&conn);
	dir_err_scrub(err, c->bind_password, c->bind_password_len);
	return r;
}

/* Which failure to report when several servers failed differently: the
 * one that most needs a person (config, credentials, TLS) comes first. */
static int
rank(int r)
{
	switch (r) {
	case DIR_EINVAL:
	case DIR_ENOMEM:
		return 5;
	case DIR_EAUTH:
		return 4;
	case DIR_ETLS:
		return 3;
	case DIR_ETIMEOUT:
		return 2;
	default:
		return 1;
	}
}

int
dir_conn_open(const struct dir_cfg *c, struct dir_conn *out, char *err,
              size_t errlen)
{
	char one[DIR_ERR_MAX];
	size_t i;
	int r = DIR_EUNAVAIL, best = 0, tried = 0;

	out->ld = NULL;
	out->uri = NULL;
	dir_errf(err, errlen, "%s", "");
	for (i = 0; i < c->nuris; i++) {
		one[0] = '\0';
		r = open_uri(c, &c->uris[i], &out->ld, one, sizeof(one));
		if (r == 0) {
			out->uri = &c->uris[i];
			dir_errf(err, errlen, "%s", "");
			return 0;
		}
		tried++;
		if (best == 0 || rank(r) > rank(best))
			best = r;
		if (c->nuris == 1)
			dir_errf(err, errlen, "%s", one);
		else
			dir_errcat(err, errlen, "%s%s", tried > 1 ? "; " : "",
			           one);
		/* Same credentials everywhere: more tries only bring the
		 * service account closer to a lockout. */
		if (r == DIR_EAUTH || r == DIR_ENOMEM || r == DIR_EINVAL)
			break;
	}
	if (c->nuris > 1) {
		char all[DIR_ERR_MAX];

		dir_errf(all, sizeof(all), "%s", err);
		dir_errf(err, errlen,
		         "no directory server usable (%d of %zu "
		         "tried): %s",
		         tried, c->nuris, all);
	}
	return best;
}

int
dir_op_error(const struct dir_cfg *c, const struct dir_conn *conn, int ldap_rc,
             const char *what, char *err, size_t errlen)
{
	const char *where =
	    conn->uri != NULL ? conn->uri->uri : "the directory";
	char diag[256];
	int r;

	diag_text(conn->ld, diag, sizeof(diag));
	switch (ldap_rc) {
	case LDAP_TIMEOUT:
	case LDAP_TIMELIMIT_EXCEEDED:
		dir_errf(err, errlen,
		         "%s on %s timed out after %d ms (ldap.op_timeout_ms): "
		         "the directory accepts connections but does not "
		         "answer (overloaded or hung?)",
		         what, where, c->op_timeout_ms);
		r = DIR_ETIMEOUT;
		break;
	case LDAP_SERVER_DOWN:
	case LDAP_CONNECT_ERROR:
		dir_errf(err, errlen,
		         "connection to %s lost during %s (server restarted, "
		         "or an idle connection was dropped)",
		         where, what);
		r = DIR_EUNAVAIL;
		break;
	case LDAP_NO_MEMORY:
		dir_errf(err, errlen, "out of memory during %s", what);
		r = DIR_ENOMEM;
		break;
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_INSUFFICIENT_ACCESS:
		dir_errf(err, errlen,
		         "%s on %s refused for %s: %s%s%s%s — check the "
		         "service account's rights",
		         what, where, c->bind_dn, ldap_err2string(ldap_rc),
		         diag[0] ? " (" : "", diag, diag[0] ? ")" : "");
		r = DIR_EAUTH;
		break;
	default:
		dir_errf(err, errlen, "%s on %s failed: %s%s%s%s", what, where,
		         ldap_err2string(ldap_rc), diag[0] ? " (" : "", diag,
		         diag[0] ? ")" : "");
		r = DIR_EUNAVAIL;
		break;
	}
	dir_err_scrub(err, c->bind_password, c->bind_password_len);
	return r;
}
