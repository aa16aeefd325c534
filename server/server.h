/*
 * server/ -- roomgate's HTTP service, configuration, logging, metrics,
 * server keys and the CLI. It depends on db/, directory/ and saml/ through
 * their single headers; they never include this one.
 *
 * Symbols carry the gate_ prefix. Functions that can fail return 0 or a
 * negative value and write a message a person can act on into err.
 */
#ifndef ROOMGATE_SERVER_H
#define ROOMGATE_SERVER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "db/db.h"
#include "directory/directory.h"
#include "saml/saml.h"

#ifndef ROOMGATE_VERSION
#define ROOMGATE_VERSION "0.1.0"
#endif

/* ---- configuration (config.c) ---------------------------------------- */

enum gate_log_level { GATE_LOG_DEBUG, GATE_LOG_INFO, GATE_LOG_WARN,
		      GATE_LOG_ERROR };

/*
 * Every key of the INI file. Strings are heap copies owned by the struct
 * and freed (secrets wiped first) by gate_config_free(). The table of keys,
 * defaults and limits is in config.c and printed by `roomgate --help-config`.
 */
struct gate_config {
	char *path; /* the file read, for messages */

	/* [server] */
	char *listen;		/* IPv4/IPv6 literal to bind */
	int port;
	int threads;		/* libmicrohttpd worker threads (epoll each) */
	int max_connections;
	int connection_timeout_s; /* idle / slow-client cutoff */
	int max_header_bytes;	/* request line + headers (413 beyond) */
	int max_body_bytes;	/* request body (413 beyond) */
	char *public_url;	/* https://meet-gate.example.com */
	char *node_name;	/* in logs and audit; default: host name */
	int log_level;		/* enum gate_log_level */
	int drain_timeout_s;	/* SIGTERM: wait for requests in progress */

	/* [database] */
	char *db_url; /* secret: may hold a password */
	int db_pool_size;
	int db_connect_timeout_s;
	int db_statement_timeout_ms;
	int db_acquire_timeout_ms;
	int db_commit_batch_max; /* admission records per transaction */
	int db_committers;	 /* admission batches recorded at once */
	int db_migrate_on_start; /* bool */

	/* [codes] (server/codes.h) */
	int codes_length;	     /* generated codes, 6..12 */
	int codes_min_length;	     /* custom codes */
	char *codes_rules;	     /* gate_code_rules_parse() list */
	int codes_rotation_check_s; /* 0: no scheduled rotation here */
	char *codes_previous_key_files; /* space separated paths */

	/* [ldap] */
	char *ldap_uri;
	char *ldap_bind_dn;
	char *ldap_bind_password;      /* secret */
	char *ldap_bind_password_file; /* read at load, into bind_password */
	int ldap_tls;		       /* enum dir_tls_mode */
	char *ldap_ca_file;
	char *ldap_base_dn;
	int ldap_network_timeout_ms;
	int ldap_op_timeout_ms;
	int ldap_pool_size;
	int ldap_acquire_timeout_ms;

	/* [directory]: the live check (directory.h, struct dir_config) */
	char *dir_people_base;	 /* NULL: ldap base_dn */
	char *dir_group_base;	 /* NULL: ldap base_dn */
	char *dir_user_filter;	 /* with {identity} */
	int dir_active;		 /* enum dir_active */
	char *dir_active_filter; /* active = filter */
	int dir_membership;	 /* enum dir_membership */
	char *dir_member_attribute;
	int dir_nest_depth;
	int dir_check_timeout_ms; /* 0: ldap op_timeout_ms */
	char *dir_host_group;	  /* role groups; NULL: nobody */
	char *dir_admin_group;
	char *dir_compliance_group;
	int dir_watch;		  /* 0 auto, 1 on, 2 off (watcher.c) */
	int dir_watch_retry_ms;

	/* [authz] */
	int authz_membership_cache; /* 0 off, 1 on (authz_cache.c) */
	int authz_session_cache;    /* 0 auto, 1 on, 2 off (authz_sessions.c) */
	int authz_session_cache_ttl_ms;	     /* 0: off */
	int authz_session_cache_max_entries;

	/* [keys] */
	char *keys_file;

	/* [saml] (SAML is off while entity_id is unset) */
	char *saml_entity_id;
	char *saml_key_file;
	char *saml_cert_file;
	char *saml_idp_metadata_file;
	char *saml_idp_metadata_url;
	char *saml_idp_metadata_ca_file;
	int saml_idp_metadata_refresh_s;
	char *saml_idp_metadata_signing_cert;
	char *saml_name_id_format;
	char *saml_directory_key; /* "nameid" or an attribute name */
	int saml_want_assertions_signed; /* bool */
	int saml_clock_skew_s;
	int saml_allow_unsolicited; /* bool */
	int saml_authn_request_binding; /* 0 redirect, 1 post */
	int saml_acs_max_body_bytes;
	int saml_request_ttl_s;

	/* [session] */
	int session_idle_timeout_s;
	int session_absolute_timeout_s;

	/* [admission] (admit.c, lockout.c) */
	int adm_max_failures;
	int adm_window_s;
	int adm_lock_s;
	int adm_lock_max_s;
	int adm_src_max_failures;
	int adm_probe_identities;
	int adm_probe_window_s;
	char *adm_trusted_proxies;
	char *adm_redirect_url; /* with {room} and {token} */
	int adm_waiting_s; /* how long a waiting-room entry lasts */

	/* [tokens]: join tokens (jwt.c) */
	char *tok_hs256_secret; /* secret; or read from hs256_secret_file */
	char *tok_hs256_secret_file;
	int tok_alg; /* enum gate_jwt_alg (jwt.h), resolved at load */
	char *tok_rs256_key_file;
	char *tok_rs256_previous_key_files; /* space separated paths */
	char *tok_issuer;
	char *tok_audience;
	char *tok_subject;
	int tok_ttl_s;

	/* [webhooks]: the outbox deliverer (webhooks.c); off without url */
	char *wh_url;
	char *wh_secret; /* secret; or read from secret_file */
	char *wh_secret_file;
	int wh_workers;
	int wh_connect_timeout_ms;
	int wh_timeout_ms;
	int wh_backoff_base_ms;
	int wh_backoff_cap_ms;
	int wh_max_age_s;
	int wh_poll_ms;
	char *wh_ca_file;

	/* [audit]: chain sealer and signing key (audit_seal.h, audit_key.h) */
	char *audit_signing_key_file;
	char *audit_previous_public_keys; /* space separated paths */
	int audit_checkpoint_interval_ms; /* 0: this node never seals */
	int audit_gap_timeout_ms;
	int audit_retention_days; /* 0: keep records forever */
	int audit_max_exports;      /* streaming at once per node */
	int audit_export_timeout_s; /* an export's whole time */
};

/*
 * Loads path (NULL: no file, only defaults and environment) and then every
 * ROOMGATE_<SECTION>_<KEY> variable from envp. Rejects unknown sections and
 * keys, malformed or out-of-range values and unknown ROOMGATE_* variables,
 * naming the file, line, key and what is allowed. Required keys are checked
 * by gate_config_check_serve(). On failure *cfg holds nothing to free.
 */
int gate_config_load(struct gate_config *cfg, const char *path,
		     char *const *envp, char *err, size_t errlen);
/* Keys that `serve` needs (database url, ldap uri, keys file...). */
int gate_config_check_serve(const struct gate_config *cfg, char *err,
			    size_t errlen);
void gate_config_free(struct gate_config *cfg);
/* Writes the key reference (section, key, type, default, range, help). */
void gate_config_print_reference(FILE *out);
/* Calls changed (may be NULL) for every key whose value differs between a
 * and b (secrets compared in constant time, never passed on); returns how
 * many differ. */
int gate_config_diff(const struct gate_config *a, const struct gate_config *b,
		     void (*changed)(void *arg, const char *section,
				     const char *name),
		     void *arg);

/* ---- logging (log.c) ---------------------------------------------------- */

/*
 * One JSON object per line on stderr: ts (UTC, RFC 3339 with ms), level,
 * event, msg, node, and request_id when given. Thread-safe (one write()).
 */
void gate_log_setup(int level, const char *node);
/* Changes the least severe level written (a SIGHUP reload). */
void gate_log_set_level(int level);
void gate_log(int level, const char *request_id, const char *event,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* As gate_log, with extra fields; takes ownership of fields (a json_t *
 * object, declared void * to keep jansson out of this header). */
void gate_log_fields(int level, const char *request_id, const char *event,
		     void *fields, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* ---- bounded growable buffer (buf.c) ---------------------------------- */

/* Like curl's dynbuf: every buffer carries its own maximum. */
struct gate_buf {
	char *p;
	size_t len, cap, max;
	int failed; /* sticky: an append failed (too big or no memory) */
};
void gate_buf_init(struct gate_buf *b, size_t max);
int gate_buf_add(struct gate_buf *b, const void *data, size_t len);
int gate_buf_printf(struct gate_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Hands the NUL-terminated contents to the caller (free()), resets b. */
char *gate_buf_take(struct gate_buf *b, size_t *len);
void gate_buf_free(struct gate_buf *b);

/* ---- server keys (keys.c) ------------------------------------------- */

/*
 * The server's secrets, kept outside the database: the access-code HMAC
 * key and sealing key, the join-token HS256 key and the audit-checkpoint
 * Ed25519 seed. Held in sodium_malloc() memory, wiped by gate_keys_free().
 */
#define GATE_KEY_LEN 32
struct gate_keys {
	char key_id[17]; /* 16 hex chars: identifies this key set */
	unsigned char code_hmac[GATE_KEY_LEN];
	unsigned char code_seal[GATE_KEY_LEN];
	unsigned char token_hs256[GATE_KEY_LEN];
	unsigned char audit_ed25519_seed[GATE_KEY_LEN];
};
/* Creates path (O_EXCL, mode 0600) with fresh random keys; refuses to
 * overwrite an existing file. */
int gate_keys_generate(const char *path, char *err, size_t errlen);
/* Reads path; refuses a file readable or writable by group or others. */
int gate_keys_load(const char *path, struct gate_keys **out, char *err,
		   size_t errlen);
void gate_keys_free(struct gate_keys *k);

/* ---- metrics (metrics.c) ---------------------------------------------- */

/* Route indexes are those of the routing table (http.c); the last index
 * counts requests that matched no route. */
void gate_metrics_observe(int route, int status, double seconds);
/* Renders the Prometheus text exposition (format 0.0.4) into b. */
void gate_metrics_render(struct gate_buf *b, struct db_pool *db,
			 struct dir_pool *dir);

/* ---- HTTP service (http.c, routes_*.c) -------------------------------- */

/*
 * cfg and jwt are swapped by a SIGHUP reload (lifecycle.c) with one atomic
 * store each; a reader uses whichever it loaded, and the old ones stay
 * allocated until the service stops, so a pointer loaded once stays valid.
 * A reader that needs both to belong together (a join token: keys and
 * claims) takes them from live, published with one store
 * (gate_app_live).
 */
struct gate_live {
	const struct gate_config *cfg;
	struct gate_jwt_keys *jwt;
};
struct gate_app {
	const struct gate_config *_Atomic cfg;
	struct db_pool *db;
	struct dir_pool *dir;
	const struct gate_keys *keys;
	struct gate_codes *codes; /* code policy and key ring (meetings.h) */
	struct saml_sp *saml; /* NULL when [saml] is not configured */
	struct gate_jwt_keys *_Atomic jwt; /* join-token keys (jwt.h); NULL: none */
	/* NULL until gate_lifecycle_open (cfg and jwt do not change before) */
	const struct gate_live *_Atomic live;
};

enum gate_route_match { GATE_ROUTE_OK = 0, GATE_ROUTE_NOT_FOUND = 404,
			GATE_ROUTE_BAD_METHOD = 405 };
/*
 * Looks method and path up in the routing table. On GATE_ROUTE_OK *route
 * is the route index; on GATE_ROUTE_BAD_METHOD allow (if not NULL)
 * receives the Allow header value.
 */
int gate_route_lookup(const char *method, const char *path, int *route,
		      char *allow, size_t allowlen);
int gate_route_count(void);	     /* routes + 1 (the unmatched bucket) */
const char *gate_route_name(int route); /* label for metrics and logs */

struct gate_http;
/* Starts the listener; the app must outlive it. */
int gate_http_start(struct gate_app *app, struct gate_http **out, char *err,
		    size_t errlen);
/* Graceful stop, step 1: new connections are refused at once (a proxy
 * moves on to another node); connections already open are still served,
 * each answer now closes its connection. 0, or -1 if not listening. */
int gate_http_quiesce(struct gate_http *h);
/* Requests received and not yet answered in full. */
int gate_http_in_flight(struct gate_http *h);
/* Stops the listener: open connections are closed, a handler still
 * running is waited for. */
void gate_http_stop(struct gate_http *h);

/* ---- signals: reload and graceful stop (lifecycle.c) ------------------ */

struct gate_lifecycle;
/*
 * After start-up: envp is the environment the config was loaded with (its
 * ROOMGATE_* overrides apply to every reload too). The app must outlive
 * the lifecycle; gate_lifecycle_close() frees the configs and key sets
 * reloads made, after every thread that reads them has stopped.
 */
int gate_lifecycle_open(struct gate_app *app, char *const *envp,
			struct gate_lifecycle **out, char *err, size_t errlen);
/*
 * Reloads the config file (SIGHUP): read and checked in full, then either
 * applied as a whole or refused as a whole (the config in use stays,
 * the log says why). 1 applied, 0 nothing to change, -1 refused.
 */
int gate_reload(struct gate_lifecycle *lc);
/*
 * Waits for SIGHUP (reload), SIGTERM or SIGINT, which must be blocked in
 * every thread. On SIGTERM/SIGINT: stops taking connections, waits up to
 * [server] drain_timeout for requests in progress (a second signal cuts
 * the wait short), and returns; the caller then stops the threads.
 */
void gate_lifecycle_run(struct gate_lifecycle *lc, struct gate_http *http);
void gate_lifecycle_close(struct gate_lifecycle *lc);
/* Prometheus lines for reloads (metrics.c). */
void gate_lifecycle_metrics(struct gate_buf *b);
/* The config and join-token keys in use, from one reload (or start). */
void gate_app_live(struct gate_app *app, struct gate_live *out);

/* ---- CLI (cli.c) ------------------------------------------------------ */

/* The whole `roomgate` command line; returns the process exit status. */
int gate_cli_main(int argc, char **argv, char **envp);

#endif
