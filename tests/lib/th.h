/*
 * tests/lib -- helpers shared by roomgate's cmocka tests.
 *
 * Integration tests run under tests/run.sh, which starts a private
 * PostgreSQL and slapd on free loopback ports in a temp dir and exports:
 *
 *   RG_TEST_ROOT        repository root
 *   RG_TEST_TMP         a scratch dir for this run (removed afterwards)
 *   RG_TEST_BIN         the roomgate binary under test (ASan build)
 *   RG_TEST_PG_DIR      the PostgreSQL stack dir (deploy/dev/pg.sh DIR)
 *   RG_TEST_PG_URL      libpq URI of the application role and database
 *   RG_TEST_PG_ADMIN_URL  libpq URI of the cluster superuser
 *   RG_TEST_LDAP_DIR    the slapd stack dir (deploy/dev/slapd.sh DIR)
 *   RG_TEST_LDAP_URI    ldap://127.0.0.1:PORT
 *   RG_TEST_LDAPS_URI   ldaps://localhost:TLSPORT
 *   RG_TEST_LDAP_STARTTLS_URI  ldap://localhost:PORT (name in the cert)
 *   RG_TEST_LDAP_BASE_DN, RG_TEST_LDAP_BIND_DN, RG_TEST_LDAP_BIND_PASSWORD,
 *   RG_TEST_LDAP_ADMIN_DN, RG_TEST_LDAP_ADMIN_PASSWORD, RG_TEST_LDAP_CA_FILE
 *
 * A missing variable fails the test (it never silently skips).
 */
#ifndef ROOMGATE_TH_H
#define ROOMGATE_TH_H

#include <stddef.h>
#include <sys/types.h>

/* getenv() that fails the current test when the variable is unset. */
const char *th_env(const char *name);

/* Runs a shell command; returns its exit status (or -1). */
int th_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Stop / start the harness's PostgreSQL and slapd (same dirs and ports).
 * Each asserts that the script succeeded. */
void th_pg_stop(void);
void th_pg_start(void);
void th_ldap_stop(void);
void th_ldap_start(void);

/* A free TCP port on 127.0.0.1 (bind to port 0, read it, close). */
int th_free_port(void);

/* Writes text to RG_TEST_TMP/name and returns the path (static buffer
 * overwritten by the next call). */
const char *th_write_file(const char *name, const char *text);

/*
 * A `roomgate serve` child process with the given config file. Waits until
 * GET /healthz answers (at most ~20 s, else fails the test). stderr goes to
 * RG_TEST_TMP/<port>.log.
 */
struct th_server {
	pid_t pid;
	int port;
	char log_path[512];
};
void th_server_start(struct th_server *s, const char *config_path,
		     int port);
/* SIGTERM, wait; asserts a clean exit (status 0, so ASan found nothing). */
void th_server_stop(struct th_server *s);

/*
 * Minimal HTTP client over libcurl for tests. Returns the status code (or
 * -1 if no response); body (may be NULL) receives up to bodylen-1 bytes,
 * NUL-terminated; header_name/header_value (may be NULL) fetch one
 * response header.
 */
struct th_http {
	long status;
	char body[65536];
	size_t body_len;
	char headers[16384];
};
long th_http(const char *method, const char *url, const char *const *req_headers,
	     const char *req_body, size_t req_body_len, struct th_http *out);
/* th_http with its own time limit instead of 10 s (e.g. a request that may
 * have to wait out a fault the test injects). */
long th_http_within(long timeout_ms, const char *method, const char *url,
		    const char *const *req_headers, const char *req_body,
		    size_t req_body_len, struct th_http *out);
/* Case-insensitive lookup of a response header; NULL if absent. */
const char *th_http_header(const struct th_http *r, const char *name,
			   char *buf, size_t buflen);

/*
 * Writes RG_TEST_TMP/name: a roomgate config for the harness's PostgreSQL
 * and slapd (clear-text LDAP), a server key file made once per run with
 * `roomgate keygen`, then extra_ini verbatim (may be NULL; it may reopen
 * sections but must not repeat keys set here: database url, ldap uri,
 * bind_dn, bind_password, keys file). Returns the path (static buffer).
 */
const char *th_config(const char *name, const char *extra_ini);

/*
 * Sends raw bytes to 127.0.0.1:port, half-closes nothing, reads until the
 * server closes or timeout_ms passes. Returns the HTTP status of the first
 * response line, 0 if the server closed without answering, -1 on connect
 * failure. out (may be NULL) receives the response text.
 */
int th_raw(int port, const char *req, size_t len, int timeout_ms, char *out,
	   size_t outlen);

/* Runs argv (no shell) and captures stdout+stderr into out (NUL-terminated).
 * Returns the exit status, or -1. extra_env: NULL-terminated "K=V" list added
 * to the environment (may be NULL). */
int th_run_capture(const char *const *argv, const char *const *extra_env,
		   char *out, size_t outlen);

#endif
