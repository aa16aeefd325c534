/*
 * directory/dir_int.h -- private to directory/ (and its tests). Other
 * folders include directory/directory.h only. libldap types live here.
 *
 * Files:
 *   config.c  checks a struct dir_config and makes the owned copy (dir_cfg)
 *   conn.c    one bound connection: options, TLS, failover, error mapping
 *   diag.c    why a connection failed: TCP reachability, the certificate
 *   pool.c    the connection pool, dir_ping, dir_check_bind, stats
 *   util.c    messages (format, scrub, printable), monotonic clock,
 *             backoff, SIGPIPE guard
 *   filter.c  search filters (RFC 4515 escaping, templates, presets) and
 *             DN normalization: pure functions, unit tested
 *   check.c   dir_check_member / dir_check_role: lookup, active check,
 *             membership strategies
 *
 * Errors follow directory.h: 0 or a negative DIR_E*, and a message in
 * err[errlen] (always NUL-terminated when errlen > 0; err may be NULL when
 * errlen is 0). No message ever holds the bind password.
 */
#ifndef ROOMGATE_DIR_INT_H
#define ROOMGATE_DIR_INT_H

#include <ldap.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "directory/directory.h"

/* Limits on configuration input. */
#define DIR_MAX_URIS 16
#define DIR_MAX_URIS_LEN 4096
#define DIR_MAX_DN_LEN 1024
#define DIR_MAX_PASSWORD_LEN 1024
#define DIR_MAX_PATH_LEN 4096
#define DIR_MAX_TIMEOUT_MS 600000
#define DIR_MAX_POOL_SIZE 1024

/* Size of the message buffers used inside directory/. */
#define DIR_ERR_MAX 1024

/*
 * TCP keepalive on every connection: a directory or a firewall that drops
 * an idle connection (AD: MaxConnIdleTime, 15 minutes) is noticed within
 * IDLE + PROBES * INTERVAL seconds instead of on the next request.
 */
#define DIR_KEEPALIVE_IDLE_S 60
#define DIR_KEEPALIVE_PROBES 3
#define DIR_KEEPALIVE_INTERVAL_S 10

/* Reconnect backoff after failed connects, per pool: 50 ms doubling to 2 s. */
#define DIR_BACKOFF_MIN_MS 50
#define DIR_BACKOFF_MAX_MS 2000

/*
 * One URI from dir_config.uris, parsed. All strings owned by dir_cfg.
 * tcp_uri is "ldap://host:port", what libldap connects to even for
 * ldaps:// (TLS starts afterwards; see conn.c).
 */
struct dir_uri {
	char *uri;     /* as configured, e.g. "ldaps://ldap.example.com" */
	char *tcp_uri; /* "ldap://host:port" */
	char *host;    /* from the URI, never empty */
	int port;      /* explicit or the scheme's default */
	int ldaps;     /* 1 for ldaps:// */
};

/*
 * A checked, owned copy of struct dir_config. Made by dir_cfg_load(),
 * released by dir_cfg_free(), which wipes the password.
 */
struct dir_cfg {
	struct dir_uri uris[DIR_MAX_URIS];
	size_t nuris;
	char *bind_dn;
	char *bind_password; /* NUL-terminated; wiped by dir_cfg_free */
	size_t bind_password_len;
	enum dir_tls_mode tls;
	char *ca_file; /* NULL = the TLS library's system trust store */
	int network_timeout_ms;
	int op_timeout_ms;
	int pool_size;
	int acquire_timeout_ms;
	char *base_dn; /* NULL when not configured */

	/* The checks; see struct dir_config. Strings owned, NULL = unset. */
	char *people_base;  /* or base_dn */
	char *group_base;   /* or base_dn */
	char *user_filter;  /* always set (default applied) */
	enum dir_active active;
	char *active_filter; /* DIR_ACTIVE_FILTER only */
	enum dir_membership membership;
	char *member_attribute; /* always set */
	int nest_depth;
	int check_timeout_ms;
	char *role_groups[DIR_ROLE_COUNT];
	dir_log_fn log;
	void *log_arg;
};

/* Limits on check settings and inputs. */
#define DIR_MAX_FILTER_LEN 4096	  /* configured filters */
#define DIR_MAX_ATTR_LEN 128	  /* an attribute description */
#define DIR_MAX_NEST_DEPTH 16
#define DIR_DEFAULT_NEST_DEPTH 5
#define DIR_MAX_NEST_GROUPS 1024  /* groups a nested walk may visit */
#define DIR_MAX_SEARCH_FILTER (256 * 1024) /* a built filter */

/*
 * config.c. for_pool != 0 also checks pool_size and acquire_timeout_ms
 * (dir_check_bind does not need them). On failure *out is left zeroed
 * (nothing to free); on success the caller owns *out.
 */
int dir_cfg_load(const struct dir_config *in, int for_pool, struct dir_cfg *out,
                 char *err, size_t errlen);
void dir_cfg_free(struct dir_cfg *c);

/* One bound connection and the server it went to. */
struct dir_conn {
	LDAP *ld;                  /* owned by whoever holds the dir_conn */
	const struct dir_uri *uri; /* points into the dir_cfg */
};

/*
 * conn.c. Opens and binds one connection, trying the URIs in order
 * (failover). On success *out holds a bound handle owned by the caller
 * (dir_conn_close). On failure out->ld is NULL and err says why; with
 * several URIs it lists every attempt. A bind refused for bad credentials
 * stops the failover: the same credentials would be refused everywhere,
 * and each try counts towards the account's lockout.
 */
int dir_conn_open(const struct dir_cfg *c, struct dir_conn *out, char *err,
                  size_t errlen);
/*
 * Sets the options every handle gets: LDAPv3, network and operation
 * timeouts, referrals off, keepalive, and when use_tls the handle's own TLS
 * context with require_cert (LDAP_OPT_X_TLS_DEMAND; diag.c alone uses
 * NEVER, on a connection that never binds) and the CA file.
 */
int dir_conn_options(const struct dir_cfg *c, LDAP *ld, int use_tls,
                     int require_cert, char *err, size_t errlen);
/*
 * Starts TLS on a handle that is TCP-connected (ldap_connect) to
 * u->tcp_uri: the handshake right away for ldaps://, or StartTLS first.
 * Returns the libldap result; *timed_out is set when the server did not
 * finish in time (the socket is then shut down).
 */
int dir_conn_start_tls(const struct dir_cfg *c, LDAP *ld, int starttls,
                       int *timed_out);
/* Unbinds and frees conn->ld (may do network I/O); NULL ld is a no-op. */
void dir_conn_close(struct dir_conn *conn);
/* The connection is certainly gone (retry on a fresh one may succeed). */
int dir_conn_dead(int ldap_rc);
/* The connection must not be reused after this result. */
int dir_conn_broken(int ldap_rc);
/*
 * Waits at most *tv for the whole answer to msgid, the one operation
 * outstanding on ld. LDAP_SUCCESS with *res set (caller frees with
 * ldap_msgfree); else the client-side error (LDAP_TIMEOUT after
 * abandoning the request, LDAP_SERVER_DOWN...) or the result code of a
 * Notice of Disconnection (LDAP_UNAVAILABLE), *res NULL.
 *
 * It waits for any message, not for msgid: libldap 2.5 drops the
 * BerElement of a Notice of Disconnection (RFC 4511 4.4.1: message id 0,
 * what slapd sends to a request that reaches it while it shuts down) that
 * arrives while ldap_result() waits for one message id -- a leak per
 * notice. Waiting for any, the notice comes back as a message and is
 * freed here. libldap itself drops answers to abandoned requests.
 */
int dir_wait_answer(LDAP *ld, int msgid, struct timeval *tv,
                    LDAPMessage **res);
/*
 * Maps the failed result of an operation (not the connect or bind) on an
 * open connection to DIR_E* and a message naming the operation (what,
 * e.g. "Who am I?") and the server.
 */
int dir_op_error(const struct dir_cfg *c, const struct dir_conn *conn,
                 int ldap_rc, const char *what, char *err, size_t errlen);

/*
 * diag.c. Called only after libldap failed, to say why in words a person
 * can act on. Neither sends the bind password.
 *
 * dir_diag_tcp: plain TCP connect to the URI's host and port within
 * timeout_ms. 0 when it connects, else DIR_EUNAVAIL or DIR_ETIMEOUT with
 * the reason ("connection refused", "host name not found", ...) in why.
 */
int dir_diag_tcp(const struct dir_uri *u, int timeout_ms, char *why,
                 size_t whylen);
/*
 * dir_diag_tls: handshakes once more without verification (never binds on
 * that connection), then checks the server's certificate with the
 * configured CA and the URI's host name, the way libldap does. Writes the
 * reason into why ("certificate name does not match ...", "certificate
 * not trusted ...", "handshake failed ..."); empty when it finds none.
 */
void dir_diag_tls(const struct dir_cfg *c, const struct dir_uri *u,
                  int starttls, char *why, size_t whylen);

/*
 * filter.c. Strings returned through char ** are malloc()ed and owned by
 * the caller (free()); on failure *out is NULL and err says why.
 */
/* The active filter of a preset, or NULL (NONE, FILTER). */
const char *dir_active_preset_filter(enum dir_active a);
/*
 * The active presets' values, evaluated client-side on the attributes
 * fetched with the lookup. dir_uac_disabled parses an AD
 * userAccountControl value (len bytes, decimal, 32-bit, signed or not)
 * into *uac and sets *disabled from bit 2 (ACCOUNTDISABLE); DIR_EINVAL
 * for a value that is no such number. dir_ipa_locked: nsAccountLock is
 * TRUE (case-insensitive).
 */
int dir_uac_disabled(const char *val, size_t len, long long *uac,
                     int *disabled);
int dir_ipa_locked(const char *val, size_t len);
/* Replaces every DIR_IDENTITY_PLACEHOLDER in tmpl with value (len bytes,
 * RFC 4515-escaped with ldap_bv2escaped_filter_value). */
int dir_filter_expand(const char *tmpl, const char *value, size_t len,
                      char **out, char *err, size_t errlen);
/* "(attr=<escaped value>)", or "(|(attr=v1)(attr=v2)...)" for n > 1. */
int dir_filter_eq_any(const char *attr, const char *const *values, size_t n,
                      char **out, char *err, size_t errlen);
/* AD nested membership of the entry in group_dn:
 * "(memberOf:1.2.840.113556.1.4.1941:=<escaped group_dn>)". */
int dir_filter_ad_chain(const char *group_dn, char **out, char *err,
                        size_t errlen);
/* Shape of a configured filter: "(...)" with balanced parentheses (the
 * server checks the rest). name is the setting, for the message. */
int dir_filter_check(const char *name, const char *filter, char *err,
                     size_t errlen);
/* An attribute description: letters, digits, '-', ';' (options) or a
 * numeric OID. */
int dir_attr_check(const char *name, const char *attr, char *err,
                   size_t errlen);
/*
 * A DN in a form to compare: parsed and printed again by libldap
 * (ldap_dn_normalize: spaces, escapes) and ASCII lower-cased (attribute
 * types and the demo's values match case-insensitively). DIR_EINVAL for
 * a string that is no DN.
 */
int dir_dn_norm(const char *dn, char **out);

/* util.c */
/* snprintf into err; on truncation ends the message with "...". */
void dir_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends to what err holds already, same truncation rule. */
void dir_errcat(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replaces every occurrence of secret (len > 0) in err with "****". */
void dir_err_scrub(char *err, const char *secret, size_t secret_len);
/* Replaces control characters (from a server: diagnostic messages,
 * certificate names) with '?', so a message stays one clean line. */
void dir_printable(char *s);
/* Milliseconds on CLOCK_MONOTONIC. */
int64_t dir_mono_ms(void);
/* Backoff before the next connect after `fails` failures in a row. */
int dir_backoff_ms(unsigned fails);

/*
 * libldap writes to its sockets with write(2): a server that closed the
 * connection would raise SIGPIPE and kill the process. Every libldap call
 * that may write is wrapped: SIGPIPE is blocked in this thread, and one
 * raised meanwhile is consumed before the old mask comes back (the way
 * libpq does it). Thread-local, no effect on other threads.
 */
struct dir_sigpipe {
	sigset_t old;
	int was_pending;
};
void dir_sigpipe_block(struct dir_sigpipe *s);
void dir_sigpipe_restore(struct dir_sigpipe *s);

/*
 * pool.c, for the lookups built on the pool.
 *
 * A lease is one connection taken from the pool. dir_pool_acquire waits at
 * most acquire_timeout_ms for a free slot (DIR_ETIMEOUT), then connects it
 * if it is empty (subject to the pool's reconnect backoff). The caller
 * alone uses lease->conn until dir_pool_release(), passing broken != 0
 * when the connection must be dropped (see dir_conn_broken); the pool
 * keeps ownership of the handle throughout.
 */
struct dir_lease {
	struct dir_pool *pool;
	int slot;
	struct dir_conn *conn; /* the slot's; conn->ld is never NULL */
	int fresh;             /* connected by this acquire, not reused */
};
int dir_pool_acquire(struct dir_pool *p, struct dir_lease *l, char *err,
                     size_t errlen);
void dir_pool_release(struct dir_lease *l, int broken);
/* The pool's checked configuration (read-only, lives as long as p). */
const struct dir_cfg *dir_pool_cfg(const struct dir_pool *p);
/* Counts one finished check for dir_pool_get_stats (r: its result). */
void dir_pool_note_check(struct dir_pool *p, int result, int r,
                         int round_trips, int64_t elapsed_us);

/*
 * Runs fn on a pooled connection. fn returns 0 or DIR_E* (message in err,
 * e.g. from dir_op_error) and stores the raw libldap result in *ldap_rc;
 * it wraps its libldap calls in dir_sigpipe_block/restore and must not
 * keep the handle. When fn failed because a reused connection was dead,
 * it runs once more on a fresh connection.
 */
typedef int (*dir_op_fn)(const struct dir_cfg *c, struct dir_conn *conn,
                         void *arg, int *ldap_rc, char *err, size_t errlen);
int dir_pool_run(struct dir_pool *p, dir_op_fn fn, void *arg, char *err,
                 size_t errlen);

#endif
