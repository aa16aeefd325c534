/*
 * Configuration: an INI file read with inih, then ROOMGATE_<SECTION>_<KEY>
 * environment overrides. Every key is in one table with its type, default
 * and limits, so the parser, the error messages and the reference printed
 * by `roomgate help config` cannot disagree.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>
#include <sodium.h>

#include "server/server.h"

enum ktype { K_STR, K_SECRET, K_INT, K_BOOL, K_ENUM };

struct key {
	const char *section;
	const char *name;
	enum ktype type;
	size_t off;
	long min, max;		    /* K_INT */
	const char *const *choices; /* K_ENUM: index is the stored value */
	const char *def;	    /* NULL: no default */
	const char *help;
};

static const char *const log_levels[] = {"debug", "info", "warn", "error",
					 NULL};
static const char *const tls_modes[] = {"none", "starttls", "ldaps", NULL};
/* Index order is that of enum dir_active / enum dir_membership. */
static const char *const dir_actives[] = {"openldap", "ad", "freeipa", "none",
					  "filter", NULL};
static const char *const dir_memberships[] = {"memberof", "member",
					      "ad_chain", "nested", NULL};
static const char *const dir_watch_modes[] = {"auto", "on", "off", NULL};
static const char *const off_on[] = {"off", "on", NULL};
static const char *const saml_bindings[] = {"redirect", "post", NULL};
/* Index order is that of enum gate_jwt_alg (jwt.h). */
static const char *const token_algs[] = {"auto", "HS256", "RS256", NULL};

#define OFF(f) offsetof(struct gate_config, f)
static const struct key keys[] = {
	{"server", "listen", K_STR, OFF(listen), 0, 0, NULL, "127.0.0.1",
	 "address to bind (IPv4 or IPv6 literal)"},
	{"server", "port", K_INT, OFF(port), 1, 65535, NULL, "8080",
	 "TCP port"},
	{"server", "threads", K_INT, OFF(threads), 1, 256, NULL, "16",
	 "HTTP worker threads, each with its own epoll set"},
	{"server", "max_connections", K_INT, OFF(max_connections), 1, 100000,
	 NULL, "1024", "concurrent client connections"},
	{"server", "connection_timeout", K_INT, OFF(connection_timeout_s), 1,
	 3600, NULL, "30", "seconds a connection may stay idle or slow"},
	{"server", "max_header_bytes", K_INT, OFF(max_header_bytes), 1024,
	 1048576, NULL, "16384",
	 "request line and headers; larger requests get 413"},
	{"server", "max_body_bytes", K_INT, OFF(max_body_bytes), 0, 67108864,
	 NULL, "65536", "request body; larger bodies get 413"},
	{"server", "public_url", K_STR, OFF(public_url), 0, 0, NULL,
	 "http://127.0.0.1:8080",
	 "external base URL (http:// or https://), used in links and SAML"},
	{"server", "node_name", K_STR, OFF(node_name), 0, 0, NULL, NULL,
	 "this node's name in logs and audit records (default: host name)"},
	{"server", "log_level", K_ENUM, OFF(log_level), 0, 0, log_levels,
	 "info", "least severe level written"},
	{"server", "drain_timeout", K_INT, OFF(drain_timeout_s), 0, 3600, NULL,
	 "20",
	 "seconds SIGTERM waits for requests in progress before stopping"},

	{"database", "url", K_SECRET, OFF(db_url), 0, 0, NULL, NULL,
	 "libpq connection URI or key=value string (required)"},
	{"database", "pool_size", K_INT, OFF(db_pool_size), 1, 1000, NULL,
	 "8", "connections kept open"},
	{"database", "connect_timeout", K_INT, OFF(db_connect_timeout_s), 1,
	 300, NULL, "5", "seconds to wait for a connection to open"},
	{"database", "statement_timeout_ms", K_INT, OFF(db_statement_timeout_ms),
	 1, 3600000, NULL, "5000", "server-side limit per statement"},
	{"database", "acquire_timeout_ms", K_INT, OFF(db_acquire_timeout_ms), 1,
	 600000, NULL, "2000", "longest wait for a free pooled connection"},
	{"database", "commit_batch_max", K_INT, OFF(db_commit_batch_max), 1, 64,
	 NULL, "32",
	 "admission attempts recorded together in one transaction (group "
	 "commit; 1: each alone)"},
	{"database", "committers", K_INT, OFF(db_committers), 1, 64, NULL, "2",
	 "admission batches recorded at once on this node (each holds a "
	 "pooled connection; keep it below pool_size)"},
	{"database", "migrate_on_start", K_BOOL, OFF(db_migrate_on_start), 0, 0,
	 NULL, "false", "apply pending migrations when serve starts"},

	{"codes", "length", K_INT, OFF(codes_length), 6, 12, NULL, "8",
	 "digits of a generated access code for new meetings"},
	{"codes", "min_length", K_INT, OFF(codes_min_length), 6, 12, NULL, "6",
	 "fewest digits a custom (host-chosen) code may have"},
	{"codes", "rules", K_STR, OFF(codes_rules), 0, 0, NULL, "all",
	 "strength rules for codes: all, or a list of length, all_same, "
	 "sequential, repeated, keypad, date, few_distinct, common"},
	{"codes", "rotation_check_interval", K_INT, OFF(codes_rotation_check_s),
	 0, 86400, NULL, "60",
	 "seconds between looks for scheduled rotations (0: not on this node)"},
	{"codes", "previous_key_files", K_STR, OFF(codes_previous_key_files), 0,
	 0, NULL, NULL,
	 "older key files, space separated: their code keys still check and "
	 "unseal codes stored under their key id"},

	{"ldap", "uri", K_STR, OFF(ldap_uri), 0, 0, NULL, NULL,
	 "one or more ldap:// or ldaps:// URIs, space separated, tried in "
	 "order (required)"},
	{"ldap", "bind_dn", K_STR, OFF(ldap_bind_dn), 0, 0, NULL, NULL,
	 "service account DN (required)"},
	{"ldap", "bind_password", K_SECRET, OFF(ldap_bind_password), 0, 0, NULL,
	 NULL, "service account password (or bind_password_file)"},
	{"ldap", "bind_password_file", K_STR, OFF(ldap_bind_password_file), 0,
	 0, NULL, NULL, "file holding the service account password"},
	{"ldap", "tls", K_ENUM, OFF(ldap_tls), 0, 0, tls_modes, "none",
	 "none, starttls (required, never falls back) or ldaps"},
	{"ldap", "ca_file", K_STR, OFF(ldap_ca_file), 0, 0, NULL, NULL,
	 "PEM CA bundle for TLS (default: system store)"},
	{"ldap", "base_dn", K_STR, OFF(ldap_base_dn), 0, 0, NULL, NULL,
	 "search base for people and groups"},
	{"ldap", "network_timeout_ms", K_INT, OFF(ldap_network_timeout_ms), 1,
	 600000, NULL, "2000", "connect timeout"},
	{"ldap", "op_timeout_ms", K_INT, OFF(ldap_op_timeout_ms), 1, 600000,
	 NULL, "2000", "per-operation timeout"},
	{"ldap", "pool_size", K_INT, OFF(ldap_pool_size), 1, 1000, NULL, "8",
	 "bound connections kept open"},
	{"ldap", "acquire_timeout_ms", K_INT, OFF(ldap_acquire_timeout_ms), 1,
	 600000, NULL, "2000", "longest wait for a free pooled connection"},

	{"directory", "people_base", K_STR, OFF(dir_people_base), 0, 0, NULL,
	 NULL, "where people are looked up (default: [ldap] base_dn)"},
	{"directory", "group_base", K_STR, OFF(dir_group_base), 0, 0, NULL,
	 NULL, "where membership = nested searches groups (default: base_dn)"},
	{"directory", "user_filter", K_STR, OFF(dir_user_filter), 0, 0, NULL,
	 DIR_DEFAULT_USER_FILTER,
	 "lookup filter; {identity} is replaced by the escaped identity"},
	{"directory", "active", K_ENUM, OFF(dir_active), 0, 0, dir_actives,
	 "openldap",
	 "when an entry is active: openldap (no pwdAccountLockedTime), ad "
	 "(userAccountControl bit 2 clear), freeipa (nsAccountLock not TRUE), "
	 "none, or filter (active_filter)"},
	{"directory", "active_filter", K_STR, OFF(dir_active_filter), 0, 0,
	 NULL, NULL, "filter an active entry matches (with active = filter)"},
	{"directory", "membership", K_ENUM, OFF(dir_membership), 0, 0,
	 dir_memberships, "memberof",
	 "memberof (user attribute, 1 round trip), member (compare on the "
	 "group), ad_chain (AD nested groups), nested (client-side nesting)"},
	{"directory", "member_attribute", K_STR, OFF(dir_member_attribute), 0,
	 0, NULL, "member", "group attribute holding member DNs"},
	{"directory", "nest_depth", K_INT, OFF(dir_nest_depth), 1, 16, NULL,
	 "5", "group levels followed with membership = nested"},
	{"directory", "check_timeout_ms", K_INT, OFF(dir_check_timeout_ms), 0,
	 600000, NULL, "0",
	 "directory time one check may take (0: [ldap] op_timeout_ms)"},
	{"directory", "host_group", K_STR, OFF(dir_host_group), 0, 0, NULL,
	 NULL, "group DN whose members may host meetings"},
	{"directory", "admin_group", K_STR, OFF(dir_admin_group), 0, 0, NULL,
	 NULL, "group DN whose members administer roomgate"},
	{"directory", "compliance_group", K_STR, OFF(dir_compliance_group), 0,
	 0, NULL, NULL, "group DN whose members may export the audit trail"},
	{"directory", "watch", K_ENUM, OFF(dir_watch), 0, 0, dir_watch_modes,
	 "off",
	 "push revocation: follow the directory with an RFC 4533 sync "
	 "(syncprov) and end admissions at once; auto = on with active = "
	 "openldap, else off"},
	{"directory", "watch_retry_ms", K_INT, OFF(dir_watch_retry_ms), 100,
	 60000, NULL, "2000",
	 "how often a node that is not the watcher tries to take over"},
	{"authz", "membership_cache", K_ENUM, OFF(authz_membership_cache), 0,
	 0, off_on, "off",
	 "forward-auth answers positives from an in-memory copy of the "
	 "directory (a sync follower on each node) while it is caught up; "
	 "needs the watcher ([directory] watch) and an OpenLDAP-style setup"},
	{"authz", "session_cache", K_ENUM, OFF(authz_session_cache), 0, 0,
	 dir_watch_modes, "auto",
	 "forward-auth keeps the database part of positive answers in "
	 "memory, dropped on every node by LISTEN roomgate_authz; auto = on "
	 "where the membership cache runs (live mode stays live), on = also "
	 "in live mode"},
	{"authz", "session_cache_ttl_ms", K_INT,
	 OFF(authz_session_cache_ttl_ms), 0, 60000, NULL, "2000",
	 "longest time a cached forward-auth answer is used after its "
	 "database read (0: no session cache)"},
	{"authz", "session_cache_max_entries", K_INT,
	 OFF(authz_session_cache_max_entries), 64, 10000000, NULL, "100000",
	 "most (session, meeting) answers one node keeps; the oldest go"},

	{"keys", "file", K_STR, OFF(keys_file), 0, 0, NULL, NULL,
	 "server key file made by `roomgate keygen` (required)"},

	{"saml", "entity_id", K_STR, OFF(saml_entity_id), 0, 0, NULL, NULL,
	 "our SP entityID; SAML sign-in is off while unset"},
	{"saml", "key_file", K_STR, OFF(saml_key_file), 0, 0, NULL, NULL,
	 "SP private key, PEM (`roomgate saml-keygen` makes one)"},
	{"saml", "cert_file", K_STR, OFF(saml_cert_file), 0, 0, NULL, NULL,
	 "SP certificate, PEM, published in /saml/metadata"},
	{"saml", "idp_metadata_file", K_STR, OFF(saml_idp_metadata_file), 0, 0,
	 NULL, NULL, "the IdP's SAML metadata file (with idp_metadata_url: "
	 "the last good copy, used when a fetch fails)"},
	{"saml", "idp_metadata_url", K_STR, OFF(saml_idp_metadata_url), 0, 0,
	 NULL, NULL, "https URL of the IdP's metadata, refreshed"},
	{"saml", "idp_metadata_ca_file", K_STR, OFF(saml_idp_metadata_ca_file),
	 0, 0, NULL, NULL, "CA bundle for idp_metadata_url (default: system)"},
	{"saml", "idp_metadata_refresh", K_INT,
	 OFF(saml_idp_metadata_refresh_s), 1, 604800, NULL, "3600",
	 "seconds between IdP metadata refreshes"},
	{"saml", "idp_metadata_signing_cert", K_STR,
	 OFF(saml_idp_metadata_signing_cert), 0, 0, NULL, NULL,
	 "PEM certificate the IdP metadata must be signed with (optional)"},
	{"saml", "name_id_format", K_STR, OFF(saml_name_id_format), 0, 0, NULL,
	 NULL, "NameID format asked for (default: unspecified)"},
	{"saml", "directory_key", K_STR, OFF(saml_directory_key), 0, 0, NULL,
	 "nameid", "\"nameid\" or the attribute whose value the directory "
	 "lookup uses (e.g. mail)"},
	{"saml", "want_assertions_signed", K_BOOL,
	 OFF(saml_want_assertions_signed), 0, 0, NULL, "true",
	 "true: the Assertion itself must be signed; false: Response or "
	 "Assertion"},
	{"saml", "clock_skew", K_INT, OFF(saml_clock_skew_s), 0, 600, NULL,
	 "60", "seconds of clock difference allowed in time checks"},
	{"saml", "allow_unsolicited", K_BOOL, OFF(saml_allow_unsolicited), 0,
	 0, NULL, "false", "accept IdP-initiated (unsolicited) responses"},
	{"saml", "authn_request_binding", K_ENUM,
	 OFF(saml_authn_request_binding), 0, 0, saml_bindings, "redirect",
	 "how the AuthnRequest reaches the IdP"},
	{"saml", "acs_max_body_bytes", K_INT, OFF(saml_acs_max_body_bytes),
	 4096, 4194304, NULL, "524288", "largest POST to /saml/acs"},
	{"saml", "request_ttl", K_INT, OFF(saml_request_ttl_s), 30, 3600, NULL,
	 "600", "seconds a sign-in may take from /saml/login to the ACS"},

	{"session", "idle_timeout", K_INT, OFF(session_idle_timeout_s), 60,
	 604800, NULL, "1800", "seconds of inactivity that end a session"},
	{"session", "absolute_timeout", K_INT, OFF(session_absolute_timeout_s),
	 300, 2592000, NULL, "28800", "longest session lifetime in seconds"},

	{"admission", "max_failures", K_INT, OFF(adm_max_failures), 1, 1000,
	 NULL, "5", "failed attempts per identity and meeting before a lock"},
	{"admission", "failure_window", K_INT, OFF(adm_window_s), 10, 86400,
	 NULL, "900", "seconds in which failures are counted"},
	{"admission", "lock_time", K_INT, OFF(adm_lock_s), 1, 86400, NULL,
	 "900", "first lock in seconds; doubles on each repeat"},
	{"admission", "lock_time_max", K_INT, OFF(adm_lock_max_s), 1, 604800,
	 NULL, "86400", "longest lock in seconds"},
	{"admission", "source_max_failures", K_INT, OFF(adm_src_max_failures),
	 1, 10000000, NULL, "100",
	 "failed attempts per source address (high: corporate NAT)"},
	{"admission", "probe_identities", K_INT, OFF(adm_probe_identities), 0,
	 100000, NULL, "10",
	 "distinct failing identities that flag a meeting as probed (0: off)"},
	{"admission", "probe_window", K_INT, OFF(adm_probe_window_s), 10, 86400,
	 NULL, "900", "seconds in which probing identities are counted"},
	{"admission", "trusted_proxies", K_STR, OFF(adm_trusted_proxies), 0, 0,
	 NULL, NULL,
	 "IP literals whose X-Forwarded-For is believed (space separated)"},
	{"admission", "redirect_url", K_STR, OFF(adm_redirect_url), 0, 0, NULL,
	 NULL, "meeting platform URL with {room} and {token}"},
	{"admission", "waiting_timeout", K_INT, OFF(adm_waiting_s), 60, 86400,
	 NULL, "1800", "seconds a person waits for the host before the "
	 "waiting-room entry expires"},

	{"tokens", "hs256_secret", K_SECRET, OFF(tok_hs256_secret), 0, 0, NULL,
	 NULL, "join-token shared secret (Jitsi app_secret)"},
	{"tokens", "hs256_secret_file", K_STR, OFF(tok_hs256_secret_file), 0, 0,
	 NULL, NULL, "file holding hs256_secret"},
	{"tokens", "alg", K_ENUM, OFF(tok_alg), 0, 0, token_algs, "auto",
	 "join-token algorithm, pinned (auto: the one whose key is set)"},
	{"tokens", "rs256_key_file", K_STR, OFF(tok_rs256_key_file), 0, 0,
	 NULL, NULL,
	 "RS256 PEM RSA private key, >= 2048 bits, mode 0600 (`roomgate "
	 "jwt-keygen FILE`)"},
	{"tokens", "rs256_previous_key_files", K_STR,
	 OFF(tok_rs256_previous_key_files), 0, 0, NULL, NULL,
	 "rotated-out RS256 keys (PEM, space separated) kept in the JWKS"},
	{"tokens", "issuer", K_STR, OFF(tok_issuer), 0, 0, NULL, "roomgate",
	 "iss claim (Jitsi app_id)"},
	{"tokens", "audience", K_STR, OFF(tok_audience), 0, 0, NULL, "jitsi",
	 "aud claim"},
	{"tokens", "subject", K_STR, OFF(tok_subject), 0, 0, NULL, "*",
	 "sub claim (Jitsi tenant or domain)"},
	{"tokens", "ttl", K_INT, OFF(tok_ttl_s), 10, 3600, NULL, "120",
	 "join token lifetime in seconds"},

	{"webhooks", "url", K_STR, OFF(wh_url), 0, 0, NULL, NULL,
	 "http(s) endpoint every outbox event is POSTed to (unset: events "
	 "stay queued)"},
	{"webhooks", "secret", K_SECRET, OFF(wh_secret), 0, 0, NULL, NULL,
	 "HMAC-SHA-256 key of X-Roomgate-Signature (or secret_file)"},
	{"webhooks", "secret_file", K_STR, OFF(wh_secret_file), 0, 0, NULL,
	 NULL, "file holding the webhook secret"},
	{"webhooks", "workers", K_INT, OFF(wh_workers), 1, 64, NULL, "2",
	 "delivery threads on this node"},
	{"webhooks", "connect_timeout_ms", K_INT, OFF(wh_connect_timeout_ms),
	 100, 60000, NULL, "3000", "longest wait for the TCP/TLS connection"},
	{"webhooks", "timeout_ms", K_INT, OFF(wh_timeout_ms), 100, 120000, NULL,
	 "10000", "longest time one delivery may take, connect included"},
	{"webhooks", "backoff_base_ms", K_INT, OFF(wh_backoff_base_ms), 10,
	 3600000, NULL, "1000",
	 "retry n waits a random time up to base * 2^(n-1) (full jitter)"},
	{"webhooks", "backoff_cap_ms", K_INT, OFF(wh_backoff_cap_ms), 10,
	 86400000, NULL, "300000", "longest wait between two attempts"},
	{"webhooks", "max_age", K_INT, OFF(wh_max_age_s), 1, 2592000, NULL,
	 "259200", "seconds after which an undelivered event is dead-lettered"},
	{"webhooks", "poll_interval_ms", K_INT, OFF(wh_poll_ms), 10, 60000,
	 NULL, "500", "how often an idle worker looks for due events"},
	{"webhooks", "ca_file", K_STR, OFF(wh_ca_file), 0, 0, NULL, NULL,
	 "PEM CA bundle for an https url (default: system store)"},

	{"audit", "signing_key_file", K_STR, OFF(audit_signing_key_file), 0, 0,
	 NULL, NULL,
	 "Ed25519 key (`roomgate audit keygen`) that signs audit checkpoints "
	 "and exports; unset: no node seals the audit chain"},
	{"audit", "previous_public_keys", K_STR,
	 OFF(audit_previous_public_keys), 0, 0, NULL, NULL,
	 "public key files of earlier signing keys, space separated: their "
	 "checkpoints still verify"},
	{"audit", "checkpoint_interval_ms", K_INT,
	 OFF(audit_checkpoint_interval_ms), 0, 3600000, NULL, "2000",
	 "how often the sealer chains new records and signs a checkpoint (0: "
	 "this node never seals)"},
	{"audit", "gap_timeout_ms", K_INT, OFF(audit_gap_timeout_ms), 1000,
	 3600000, NULL, "15000",
	 "how long a missing sequence number (a rolled-back insert) holds "
	 "the chain back; keep it above [database] statement_timeout_ms"},
	{"audit", "retention_days", K_INT, OFF(audit_retention_days), 0, 36500,
	 NULL, "0",
	 "the sealer purges sealed records older than this (0: keep forever)"},
	{"audit", "max_exports", K_INT, OFF(audit_max_exports), 1, 64, NULL,
	 "2",
	 "exports streaming at once on this node (each holds a database "
	 "connection and a snapshot); more get 429"},
	{"audit", "export_timeout", K_INT, OFF(audit_export_timeout_s), 10,
	 86400, NULL, "3600",
	 "seconds an export may take, slow reader included; then it is cut "
	 "off (incomplete, no manifest)"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Values longer than this are rejected: no key needs more. */
#define MAX_VALUE 4096

struct load {
	struct gate_config *cfg;
	const char *src; /* file name or "environment" */
	int line;
	bool seen[NKEYS];
	char *err;
	size_t errlen;
	int failed;
};

static void
errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const struct key *
find_key(const char *section, const char *name, size_t *idx)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0) {
			*idx = i;
			return &keys[i];
		}
	}
	return NULL;
}

static bool
section_known(const char *section)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0)
			return true;
	return false;
}

static void
list_keys(const char *section, char *out, size_t outlen)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < NKEYS; i++) {
		int n;

		if (strcmp(keys[i].section, section) != 0)
			continue;
		n = snprintf(out + used, outlen - used, "%s%s",
			     used ? ", " : "", keys[i].name);
		if (n < 0 || (size_t)n >= outlen - used)
			break;
		used += (size_t)n;
	}
}

static void
list_sections(char *out, size_t outlen)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < NKEYS; i++) {
		int n;

		if (i > 0 && strcmp(keys[i].section, keys[i - 1].section) == 0)
			continue;
		n = snprintf(out + used, outlen - used, "%s[%s]",
			     used ? ", " : "", keys[i].section);
		if (n < 0 || (size_t)n >= outlen - used)
			break;
		used += (size_t)n;
	}
}

static void
describe_allowed(const struct key *k, char *out, size_t outlen)
{
	size_t used = 0;

	switch (k->type) {
	case K_INT:
		snprintf(out, outlen, "an integer from %ld to %ld", k->min,
			 k->max);
		break;
	case K_BOOL:
		snprintf(out, outlen, "true or false");
		break;
	case K_ENUM:
		out[0] = '\0';
		for (int i = 0; k->choices[i] != NULL; i++) {
			int n = snprintf(out + used, outlen - used, "%s%s",
					 i ? ", " : "one of ", k->choices[i]);
			if (n < 0 || (size_t)n >= outlen - used)
				break;
			used += (size_t)n;
		}
		break;
	default:
		snprintf(out, outlen, "text of at most %d bytes", MAX_VALUE);
		break;
	}
}

static int
parse_int(const char *v, long min, long max, long *out)
{
	char *end;
	long n;

	if (*v == '\0' || isspace((unsigned char)*v))
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int
parse_bool(const char *v, int *out)
{
	if (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
	    strcmp(v, "1") == 0 || strcasecmp(v, "on") == 0)
		*out = 1;
	else if (strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 ||
		 strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static void
free_str(char **p, bool secret)
{
	if (*p == NULL)
		return;
	if (secret)
		sodium_memzero(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

/*
 * Stores one value. where: "FILE:LINE" or "environment ROOMGATE_X"; used
 * in messages. Secret values are never echoed.
 */
static int
set_value(struct gate_config *cfg, const struct key *k, const char *value,
	  const char *where, char *err, size_t errlen)
{
	char allowed[256];
	char *base = (char *)cfg;
	long n;
	int b;

	describe_allowed(k, allowed, sizeof(allowed));
	if (strlen(value) > MAX_VALUE) {
		errf(err, errlen, "%s: [%s] %s: value too long; must be %s",
		     where, k->section, k->name, allowed);
		return -1;
	}
	for (const char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			errf(err, errlen,
			     "%s: [%s] %s: value holds a control character",
			     where, k->section, k->name);
			return -1;
		}
	}
	switch (k->type) {
	case K_STR:
	case K_SECRET: {
		char **dst = (char **)(void *)(base + k->off);
		char *copy = strdup(value);

		if (copy == NULL) {
			errf(err, errlen, "out of memory");
			return -1;
		}
		free_str(dst, k->type == K_SECRET);
		*dst = copy;
		return 0;
	}
	case K_INT:
		if (parse_int(value, k->min, k->max, &n) != 0) {
			errf(err, errlen, "%s: [%s] %s = \"%s\": must be %s",
			     where, k->section, k->name, value, allowed);
			return -1;
		}
		*(int *)(void *)(base + k->off) = (int)n;
		return 0;
	case K_BOOL:
		if (parse_bool(value, &b) != 0) {
			errf(err, errlen, "%s: [%s] %s = \"%s\": must be %s",
			     where, k->section, k->name, value, allowed);
			return -1;
		}
		*(int *)(void *)(base + k->off) = b;
		return 0;
	case K_ENUM:
		for (int i = 0; k->choices[i] != NULL; i++) {
			if (strcmp(k->choices[i], value) == 0) {
				*(int *)(void *)(base + k->off) = i;
				return 0;
			}
		}
		errf(err, errlen, "%s: [%s] %s = \"%s\": must be %s", where,
		     k->section, k->name, value, allowed);
		return -1;
	}
	return -1;
}

static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct load *ld = user;
	char where[1200], list[512];
	const struct key *k;
	size_t idx;

	snprintf(where, sizeof(where), "%s:%d", ld->src, ld->line);
	if (name == NULL)
		return 1; /* a bare [section] line; checked with its keys */
	if (!section_known(section)) {
		list_sections(list, sizeof(list));
		errf(ld->err, ld->errlen,
		     "%s: unknown section [%s]; sections are %s", where,
		     section, list);
		ld->failed = 1;
		return 0;
	}
	k = find_key(section, name, &idx);
	if (k == NULL) {
		list_keys(section, list, sizeof(list));
		errf(ld->err, ld->errlen,
		     "%s: [%s] %s: unknown key; keys in [%s] are %s", where,
		     section, name, section, list);
		ld->failed = 1;
		return 0;
	}
	if (ld->seen[idx]) {
		errf(ld->err, ld->errlen,
		     "%s: [%s] %s: key given twice; keep one", where, section,
		     name);
		ld->failed = 1;
		return 0;
	}
	ld->seen[idx] = true;
	if (set_value(ld->cfg, k, value, where, ld->err, ld->errlen) != 0) {
		ld->failed = 1;
		return 0;
	}
	return 1;
}

/* inih's reader, counting lines so every message can name one. */
struct line_reader {
	FILE *f;
	struct load *ld;
	int too_long;
};

static char *
read_line(char *str, int num, void *stream)
{
	struct line_reader *lr = stream;
	char *r = fgets(str, num, lr->f);
	size_t len;

	if (r == NULL)
		return NULL;
	lr->ld->line++;
	len = strlen(r);
	if (len > 0 && r[len - 1] != '\n' && !feof(lr->f)) {
		lr->too_long = 1;
		return NULL;
	}
	return r;
}

static void
apply_defaults(struct gate_config *cfg)
{
	char where[] = "default";
	char err[64];

	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].def != NULL)
			(void)set_value(cfg, &keys[i], keys[i].def, where, err,
					sizeof(err));
}

/* ROOMGATE_<SECTION>_<KEY>: section and key upper-cased. */
static const struct key *
env_key(const char *var, size_t varlen, size_t *idx)
{
	char want[128];

	for (size_t i = 0; i < NKEYS; i++) {
		int n = snprintf(want, sizeof(want), "ROOMGATE_%s_%s",
				 keys[i].section, keys[i].name);

		if (n < 0 || (size_t)n >= sizeof(want))
			continue;
		for (char *p = want; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		if ((size_t)n == varlen && memcmp(want, var, varlen) == 0) {
			*idx = i;
			return &keys[i];
		}
	}
	return NULL;
}

static int
load_env(struct gate_config *cfg, char *const *envp, char *err,
	 size_t errlen)
{
	for (; envp != NULL && *envp != NULL; envp++) {
		const char *e = *envp, *eq;
		const struct key *k;
		char where[160];
		size_t idx;

		if (strncmp(e, "ROOMGATE_", 9) != 0)
			continue;
		eq = strchr(e, '=');
		if (eq == NULL)
			continue;
		if ((size_t)(eq - e) == 15 && strncmp(e, "ROOMGATE_CONFIG", 15) == 0)
			continue;
		k = env_key(e, (size_t)(eq - e), &idx);
		if (k == NULL) {
			errf(err, errlen,
			     "environment: %.*s is not a roomgate setting; "
			     "use ROOMGATE_<SECTION>_<KEY>, e.g. "
			     "ROOMGATE_SERVER_PORT (see `roomgate help config`)",
			     (int)(eq - e) > 100 ? 100 : (int)(eq - e), e);
			return -1;
		}
		snprintf(where, sizeof(where), "environment %.*s",
			 (int)(eq - e) > 100 ? 100 : (int)(eq - e), e);
		if (set_value(cfg, k, eq + 1, where, err, errlen) != 0)
			return -1;
	}
	return 0;
}

static int
read_secret_file(const char *what, const char *path, char **out, char *err,
		 size_t errlen)
{
	char buf[1024];
	FILE *f;
	size_t n;
	int r = -1;

	f = fopen(path, "r");
	if (f == NULL) {
		errf(err, errlen, "%s: cannot read %s: %s", what, path,
		     strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f) || !feof(f)) {
		errf(err, errlen,
		     "%s: %s is unreadable or longer than %zu bytes", what,
		     path, sizeof(buf) - 2);
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (n == 0) {
		errf(err, errlen, "%s: %s is empty", what, path);
		goto out;
	}
	*out = strdup(buf);
	if (*out == NULL) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	r = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	fclose(f);
	return r;
}

#define GATE_HS256_MIN_SECRET 32

/* [tokens]: a deployment signs join tokens with exactly one algorithm. */
static int
token_alg(struct gate_config *cfg, char *err, size_t errlen)
{
	bool secret = cfg->tok_hs256_secret != NULL;
	bool key = cfg->tok_rs256_key_file != NULL;

	if (secret && key) {
		errf(err, errlen,
		     "[tokens] hs256_secret and rs256_key_file are both set; "
		     "keep the one of the algorithm you sign with");
		return -1;
	}
	/* The secret signs every join token; an admitted person holds one
	 * and could guess a short secret offline, then mint tokens for any
	 * room. 32 bytes, as for an HMAC-SHA-256 key. */
	if (secret && strlen(cfg->tok_hs256_secret) < GATE_HS256_MIN_SECRET) {
		errf(err, errlen,
		     "[tokens] hs256_secret must be at least %d bytes (it "
		     "signs every join token); make one with `openssl rand "
		     "-hex 32` and set the same value as Jitsi's app_secret",
		     GATE_HS256_MIN_SECRET);
		return -1;
	}
	if (cfg->tok_rs256_previous_key_files != NULL && !key) {
		errf(err, errlen,
		     "[tokens] rs256_previous_key_files is set without "
		     "rs256_key_file");
		return -1;
	}
	if (cfg->tok_alg == 1 && !secret) { /* HS256 */
		errf(err, errlen,
		     "[tokens] alg = HS256 needs hs256_secret or "
		     "hs256_secret_file");
		return -1;
	}
	if (cfg->tok_alg == 2 && !key) { /* RS256 */
		errf(err, errlen,
		     "[tokens] alg = RS256 needs rs256_key_file (make one "
		     "with `roomgate jwt-keygen FILE`)");
		return -1;
	}
	if (cfg->tok_alg == 0)
		cfg->tok_alg = secret ? 1 : key ? 2 : 0;
	return 0;
}

/* [webhooks]: an endpoint needs a secret (unsigned events could be forged
 * by anyone who can reach the receiver) and an http(s) URL. */
static int
webhooks_check(struct gate_config *cfg, char *err, size_t errlen)
{
	if (cfg->wh_secret_file != NULL) {
		if (cfg->wh_secret != NULL) {
			errf(err, errlen,
			     "[webhooks] secret and secret_file are both set; "
			     "keep one");
			return -1;
		}
		if (read_secret_file("[webhooks] secret_file",
				     cfg->wh_secret_file, &cfg->wh_secret, err,
				     errlen) != 0)
			return -1;
	}
	if (cfg->wh_url == NULL)
		return 0;
	if (strncmp(cfg->wh_url, "http://", 7) != 0 &&
	    strncmp(cfg->wh_url, "https://", 8) != 0) {
		errf(err, errlen,
		     "[webhooks] url = \"%s\": must start with http:// or "
		     "https://",
		     cfg->wh_url);
		return -1;
	}
	if (cfg->wh_secret == NULL || strlen(cfg->wh_secret) < 16) {
		errf(err, errlen,
		     "[webhooks] url is set: set secret or secret_file too "
		     "(at least 16 bytes, e.g. `openssl rand -hex 32`), the "
		     "key receivers check X-Roomgate-Signature with");
		return -1;
	}
	if (cfg->wh_backoff_cap_ms < cfg->wh_backoff_base_ms) {
		errf(err, errlen,
		     "[webhooks] backoff_cap_ms (%d) is below "
		     "backoff_base_ms (%d)",
		     cfg->wh_backoff_cap_ms, cfg->wh_backoff_base_ms);
		return -1;
	}
	return 0;
}

int
gate_config_load(struct gate_config *cfg, const char *path,
		 char *const *envp, char *err, size_t errlen)
{
	struct load ld;
	struct line_reader lr;
	FILE *f = NULL;
	int r = -1, pr;

	memset(cfg, 0, sizeof(*cfg));
	memset(&ld, 0, sizeof(ld));
	ld.cfg = cfg;
	ld.err = err;
	ld.errlen = errlen;
	apply_defaults(cfg);

	if (path != NULL) {
		cfg->path = strdup(path);
		if (cfg->path == NULL) {
			errf(err, errlen, "out of memory");
			goto out;
		}
		f = fopen(path, "r");
		if (f == NULL) {
			errf(err, errlen,
			     "cannot read config file %s: %s (pass -c FILE or "
			     "set ROOMGATE_CONFIG)",
			     path, strerror(errno));
			goto out;
		}
		ld.src = path;
		lr.f = f;
		lr.ld = &ld;
		lr.too_long = 0;
		pr = ini_parse_stream(read_line, &lr, ini_cb, &ld);
		if (lr.too_long) {
			errf(err, errlen, "%s:%d: line too long", path, ld.line);
			goto out;
		}
		if (ld.failed)
			goto out;
		if (pr > 0) {
			errf(err, errlen,
			     "%s:%d: not an INI line; expected [section], "
			     "key = value or a ; comment",
			     path, pr);
			goto out;
		}
		if (pr < 0) {
			errf(err, errlen, "%s: read error", path);
			goto out;
		}
	}
	if (load_env(cfg, envp, err, errlen) != 0)
		goto out;

	if (cfg->ldap_bind_password_file != NULL) {
		if (cfg->ldap_bind_password != NULL) {
			errf(err, errlen,
			     "[ldap] bind_password and bind_password_file are "
			     "both set; keep one");
			goto out;
		}
		if (read_secret_file("[ldap] bind_password_file",
				     cfg->ldap_bind_password_file,
				     &cfg->ldap_bind_password, err,
				     errlen) != 0)
			goto out;
	}
	if (cfg->tok_hs256_secret_file != NULL) {
		if (cfg->tok_hs256_secret != NULL) {
			errf(err, errlen,
			     "[tokens] hs256_secret and hs256_secret_file are "
			     "both set; keep one");
			goto out;
		}
		if (read_secret_file("[tokens] hs256_secret_file",
				     cfg->tok_hs256_secret_file,
				     &cfg->tok_hs256_secret, err, errlen) != 0)
			goto out;
	}
	if (token_alg(cfg, err, errlen) != 0)
		goto out;
	if (webhooks_check(cfg, err, errlen) != 0)
		goto out;
	if (strncmp(cfg->public_url, "http://", 7) != 0 &&
	    strncmp(cfg->public_url, "https://", 8) != 0) {
		errf(err, errlen,
		     "[server] public_url = \"%s\": must start with http:// or "
		     "https://",
		     cfg->public_url);
		goto out;
	}
	r = 0;
out:
	if (f != NULL)
		fclose(f);
	if (r != 0)
		gate_config_free(cfg);
	return r;
}

int
gate_config_check_serve(const struct gate_config *cfg, char *err,
			size_t errlen)
{
	static const struct {
		const char *section, *name;
		size_t off;
	} req[] = {
		{"database", "url", OFF(db_url)},
		{"ldap", "uri", OFF(ldap_uri)},
		{"ldap", "bind_dn", OFF(ldap_bind_dn)},
		{"ldap", "bind_password", OFF(ldap_bind_password)},
		{"keys", "file", OFF(keys_file)},
	};

	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		const char *v = *(char *const *)(const void *)((const char *)cfg +
							       req[i].off);
		char envname[96];

		if (v != NULL && *v != '\0')
			continue;
		snprintf(envname, sizeof(envname), "ROOMGATE_%s_%s",
			 req[i].section, req[i].name);
		for (char *p = envname; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		errf(err, errlen,
		     "[%s] %s is required: set it in %s or with %s",
		     req[i].section, req[i].name,
		     cfg->path ? cfg->path : "the config file", envname);
		return -1;
	}
	return 0;
}

void
gate_config_free(struct gate_config *cfg)
{
	char *base = (char *)cfg;

	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].type == K_STR || keys[i].type == K_SECRET)
			free_str((char **)(void *)(base + keys[i].off),
				 keys[i].type == K_SECRET);
	/* bind_password may come from bind_password_file: still a secret. */
	free_str(&cfg->ldap_bind_password, true);
	free_str(&cfg->tok_hs256_secret, true);
	free_str(&cfg->wh_secret, true);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

static int
value_differs(const struct key *k, const struct gate_config *a,
	      const struct gate_config *b)
{
	const char *pa = (const char *)a + k->off;
	const char *pb = (const char *)b + k->off;
	const char *sa, *sb;
	size_t la, lb;

	if (k->type != K_STR && k->type != K_SECRET)
		return *(const int *)(const void *)pa !=
		       *(const int *)(const void *)pb;
	sa = *(char *const *)(const void *)pa;
	sb = *(char *const *)(const void *)pb;
	if (sa == NULL || sb == NULL)
		return sa != sb;
	la = strlen(sa);
	lb = strlen(sb);
	if (k->type == K_SECRET) /* secrets: no early exit on content */
		return la != lb || sodium_memcmp(sa, sb, la) != 0;
	return la != lb || memcmp(sa, sb, la) != 0;
}

int
gate_config_diff(const struct gate_config *a, const struct gate_config *b,
		 void (*changed)(void *arg, const char *section,
				 const char *name),
		 void *arg)
{
	int n = 0;

	for (size_t i = 0; i < NKEYS; i++) {
		if (!value_differs(&keys[i], a, b))
			continue;
		n++;
		if (changed != NULL)
			changed(arg, keys[i].section, keys[i].name);
	}
	return n;
}

void
gate_config_print_reference(FILE *out)
{
	char allowed[256];

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		if (i == 0 || strcmp(k->section, keys[i - 1].section) != 0)
			fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
		describe_allowed(k, allowed, sizeof(allowed));
		fprintf(out, "  %-22s %s\n  %-22s %s; default: %s\n", k->name,
			k->help, "", allowed, k->def ? k->def : "(none)");
	}
}
