/*
 * directory/ -- LDAP / Active Directory access for roomgate: a pool of
 * bound connections (service account), and in later issues the identity
 * lookup, the live active-member check and the change watcher.
 *
 * This is the only header other folders include. libldap types stay
 * inside directory/.
 *
 * Errors: functions return 0 on success and a negative DIR_E* value, and
 * write a message a person can act on into err (always NUL-terminated when
 * errlen > 0). Messages never contain the bind password.
 */
#ifndef ROOMGATE_DIRECTORY_H
#define ROOMGATE_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

enum {
	DIR_OK = 0,
	DIR_EINVAL = -1,   /* bad configuration or argument */
	DIR_EUNAVAIL = -2, /* no server reachable / connection lost */
	DIR_ETIMEOUT = -3, /* network or operation timeout, or pool wait */
	DIR_EAUTH = -4,	   /* bind refused: wrong DN or password */
	DIR_ETLS = -5,	   /* TLS handshake or certificate check failed */
	DIR_ENOMEM = -6,
};

enum dir_tls_mode {
	DIR_TLS_NONE = 0, /* ldap:// in clear (loopback / lab only) */
	DIR_TLS_STARTTLS, /* ldap:// then StartTLS, required */
	DIR_TLS_LDAPS,	  /* ldaps:// (implied by the URI scheme too) */
};

struct dir_config {
	/* One or more URIs separated by spaces, tried in order (failover). */
	const char *uris;
	const char *bind_dn;	   /* required (a DN, or AD's user@domain) */
	const char *bind_password; /* required; copied, wiped on close */
	enum dir_tls_mode tls;
	const char *ca_file;	/* PEM bundle; NULL = system store */
	int network_timeout_ms; /* connect and TLS handshake timeout */
	int op_timeout_ms;	/* per-operation timeout */
	int pool_size;		/* connections kept, >= 1 */
	int acquire_timeout_ms; /* longest wait for a free connection; 0 =
				   do not wait */
	const char *base_dn;	/* search base for later issues */
};

struct dir_pool;

/*
 * Creates a pool. Checks the configuration (URIs parse, TLS mode matches
 * the schemes, CA file readable) but does not need the server to be up:
 * connections are made on first use and remade, with backoff, after they
 * break. The strings in cfg are copied. Freed with dir_pool_close().
 * On failure *out is NULL.
 */
int dir_pool_open(const struct dir_config *cfg, struct dir_pool **out,
		  char *err, size_t errlen);
/* Unbinds every connection and wipes the password copy. Call it only when
 * no other thread uses the pool any more. NULL is a no-op. */
void dir_pool_close(struct dir_pool *pool);

/*
 * Readiness probe: borrows a connection (binding if needed) and runs a
 * bounded round trip (Who am I?) as the service account. A connection
 * found dead is replaced and the probe tried once more. After failed
 * connects the pool backs off (50 ms doubling to 2 s; 60 s after a refused
 * bind, against account lockout): meanwhile it answers at once with the
 * last failure. Thread-safe.
 */
int dir_ping(struct dir_pool *pool, char *err, size_t errlen);

/*
 * Opens one connection with cfg, binds, and closes it: `roomgate` uses it
 * to check settings at start and tests use it to check TLS modes.
 */
int dir_check_bind(const struct dir_config *cfg, char *err, size_t errlen);

struct dir_pool_stats {
	int size;
	int in_use;
	int connected;
	int waiting;
	uint64_t connects;
	uint64_t connect_failures;
	uint64_t acquire_timeouts;
};
void dir_pool_get_stats(struct dir_pool *pool, struct dir_pool_stats *st);

#endif
