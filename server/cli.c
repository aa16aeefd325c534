/*
 * The `roomgate` command line: serve, migrate, keygen, version, help.
 * Usage errors exit 2, run-time failures 1.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "saml/saml.h"
#include "server/audit_export.h"
#include "server/audit_seal.h"
#include "server/jwt.h"
#include "server/server.h"
#include "server/meetings.h"
#include "server/watcher.h"
#include "server/webhooks.h"

#define EXIT_USAGE 2

static const char usage_main[] =
	"usage: roomgate [-c FILE] COMMAND [OPTIONS]\n"
	"\n"
	"roomgate admits people to meetings only when their access code is\n"
	"right and their SSO identity is an active member of an allowed\n"
	"directory group right now.\n"
	"\n"
	"commands:\n"
	"  serve     run the HTTP service\n"
	"  migrate   apply pending database migrations\n"
	"  keygen    create a server key file (mode 0600, never overwritten)\n"
	"  meeting   create, show, list, rotate or archive meetings\n"
	"  token     create, list or revoke API tokens\n"
	"  code      `code check`: explain whether codes pass the policy\n"
	"  audit     audit trail: signing key, verify, purge\n"
	"  saml-keygen  create the SAML key pair and certificate\n"
	"  jwt-keygen   create an RS256 join-token key (mode 0600)\n"
	"  version   print the version\n"
	"  help      this text; `roomgate help config` lists every setting\n"
	"\n"
	"The config file comes from -c FILE or $ROOMGATE_CONFIG; any key can be\n"
	"overridden with ROOMGATE_<SECTION>_<KEY>, e.g. ROOMGATE_SERVER_PORT.\n"
	"`roomgate COMMAND --help` describes a command.\n";

static const char usage_serve[] =
	"usage: roomgate serve [-c FILE] [--migrate]\n"
	"\n"
	"Runs the HTTP service until SIGTERM or SIGINT.\n"
	"  -c, --config FILE  config file (default: $ROOMGATE_CONFIG)\n"
	"  --migrate          apply pending migrations first (as\n"
	"                     [database] migrate_on_start = true)\n";

static const char usage_migrate[] =
	"usage: roomgate migrate [-c FILE]\n"
	"\n"
	"Applies the database migrations built into this binary that the\n"
	"database does not have yet, each in its own transaction. Safe to run\n"
	"from several nodes at once (they take turns).\n"
	"  -c, --config FILE  config file (default: $ROOMGATE_CONFIG)\n";

static const char usage_keygen[] =
	"usage: roomgate keygen -o FILE\n"
	"\n"
	"Creates FILE with fresh random server keys (access-code HMAC and\n"
	"sealing keys, join-token key, audit signing seed), mode 0600. Refuses\n"
	"to overwrite an existing file. Keep it out of the database and out of\n"
	"backups that the database's readers can see.\n"
	"  -o, --output FILE  where to write the keys\n";

static const char usage_saml_keygen[] =
	"usage: roomgate saml-keygen --key FILE --cert FILE [--name CN] "
	"[--days N]\n"
	"\n"
	"Creates a SAML signing key pair: an RSA-2048 private key (mode 0600)\n"
	"and a self-signed SHA-256 certificate for it, for [saml] key_file and\n"
	"cert_file. Refuses to overwrite either file.\n"
	"  --key FILE   where to write the private key (PEM)\n"
	"  --cert FILE  where to write the certificate (PEM)\n"
	"  --name CN    the certificate's common name (default: roomgate-sp)\n"
	"  --days N     validity in days (default 3650)\n";

static const char usage_jwt_keygen[] =
	"usage: roomgate jwt-keygen [--bits N] [-o] FILE\n"
	"\n"
	"Creates FILE with a fresh RSA private key (PKCS#8 PEM, mode 0600) for\n"
	"RS256 join tokens: [tokens] rs256_key_file = FILE. Refuses to overwrite\n"
	"an existing file (`openssl genpkey -algorithm RSA -pkeyopt\n"
	"rsa_keygen_bits:3072` makes an equivalent one; chmod 600 it).\n"
	"Platforms verify the tokens with the public key: JWKS at\n"
	"GET /.well-known/jwks.json (kid: its RFC 7638 thumbprint), and for\n"
	"Jitsi Meet (asap_key_server = PUBLIC_URL/jwt-keys) one PEM per kid at\n"
	"/jwt-keys/<hex sha256 of kid>.pem. To rotate: make a new key, point\n"
	"rs256_key_file at it and list the old file (or `openssl pkey -in OLD\n"
	"-pubout`) in rs256_previous_key_files until tokens signed with it have\n"
	"expired.\n"
	"  --bits N           RSA modulus size, 2048 to 8192 (default 3072)\n"
	"  -o, --output FILE  where to write the key\n";

static const char usage_version[] = "usage: roomgate version\n";


static const char *
config_path(const char *opt)
{
	if (opt != NULL)
		return opt;
	return getenv("ROOMGATE_CONFIG");
}

static int
load_config(struct gate_config *cfg, const char *opt_path, char **envp)
{
	char err[1024];
	const char *path = config_path(opt_path);

	if (path == NULL || *path == '\0') {
		fprintf(stderr,
			"roomgate: no config file: pass -c FILE or set "
			"ROOMGATE_CONFIG (`roomgate help config` lists the "
			"settings)\n");
		return -1;
	}
	if (gate_config_load(cfg, path, envp, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: %s\n", err);
		return -1;
	}
	return 0;
}

static int
cmd_migrate(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gate_config cfg;
	char err[1024];
	int ch, applied = 0;

	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'h':
			fputs(usage_migrate, stdout);
			return 0;
		default:
			fputs(usage_migrate, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage_migrate, stderr);
		return EXIT_USAGE;
	}
	if (load_config(&cfg, cfgpath, envp) != 0)
		return 1;
	if (cfg.db_url == NULL) {
		fprintf(stderr,
			"roomgate: [database] url is required: set it in %s or "
			"with ROOMGATE_DATABASE_URL\n",
			cfg.path);
		gate_config_free(&cfg);
		return 1;
	}
	if (db_migrate(cfg.db_url, &applied, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: migrate: %s\n", err);
		gate_config_free(&cfg);
		return 1;
	}
	printf("applied %d migration%s; schema is at version %d\n", applied,
	       applied == 1 ? "" : "s", db_migrations_latest());
	gate_config_free(&cfg);
	return 0;
}

static int
cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *out = NULL;
	char err[1024];
	int ch;

	while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'h':
			fputs(usage_keygen, stdout);
			return 0;
		default:
			fputs(usage_keygen, stderr);
			return EXIT_USAGE;
		}
	}
	if (out == NULL && optind == argc - 1)
		out = argv[optind++];
	if (out == NULL || optind != argc) {
		fputs(usage_keygen, stderr);
		return EXIT_USAGE;
	}
	if (gate_keys_generate(out, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: keygen: %s\n", err);
		return 1;
	}
	printf("wrote server keys to %s (mode 0600)\n", out);
	return 0;
}

static int
cmd_jwt_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"bits", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gate_jwt_keys *ks = NULL;
	EVP_PKEY *pk = NULL;
	const char *out = NULL;
	char err[1024], *end;
	long bits = 3072;
	int ch;

	while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'b':
			bits = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' ||
			    bits < GATE_JWT_RSA_MIN_BITS ||
			    bits > GATE_JWT_RSA_MAX_BITS) {
				fprintf(stderr, "roomgate: --bits must be %d to "
						"%d\n",
					GATE_JWT_RSA_MIN_BITS,
					GATE_JWT_RSA_MAX_BITS);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage_jwt_keygen, stdout);
			return 0;
		default:
			fputs(usage_jwt_keygen, stderr);
			return EXIT_USAGE;
		}
	}
	if (out == NULL && optind == argc - 1)
		out = argv[optind++];
	if (out == NULL || optind != argc) {
		fputs(usage_jwt_keygen, stderr);
		return EXIT_USAGE;
	}
	/* Read back the way serve reads it, for the kid. */
	if (gate_jwt_keygen(out, (int)bits, err, sizeof(err)) != 0 ||
	    gate_jwt_read_key_file(out, 1, &pk, err, sizeof(err)) != 0 ||
	    gate_jwt_keys_rs256(pk, NULL, 0, &ks, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: jwt-keygen: %s\n", err);
		EVP_PKEY_free(pk);
		return 1;
	}
	printf("wrote RS256 join-token key %s (RSA-%ld, mode 0600), kid %s\n",
	       out, bits, ks->rsa[0].kid);
	gate_jwt_keys_free(ks);
	EVP_PKEY_free(pk);
	return 0;
}

/* directory/ does not know server/: its events reach the log here. */
static void
dir_log(void *arg, int level, const char *event, const char *msg)
{
	(void)arg;
	gate_log(level == DIR_LOG_ERROR	 ? GATE_LOG_ERROR
		 : level == DIR_LOG_WARN ? GATE_LOG_WARN
					 : GATE_LOG_INFO,
		 NULL, event, "%s", msg);
}

/* The [directory] settings of the live check; dir_pool_open checks them. */
static void
dir_config_checks(const struct gate_config *cfg, struct dir_config *dc)
{
	dc->people_base = cfg->dir_people_base;
	dc->group_base = cfg->dir_group_base;
	dc->user_filter = cfg->dir_user_filter;
	dc->active = (enum dir_active)cfg->dir_active;
	dc->active_filter = cfg->dir_active_filter;
	dc->membership = (enum dir_membership)cfg->dir_membership;
	dc->member_attribute = cfg->dir_member_attribute;
	dc->nest_depth = cfg->dir_nest_depth;
	dc->check_timeout_ms = cfg->dir_check_timeout_ms;
	dc->role_groups[DIR_ROLE_HOST] = cfg->dir_host_group;
	dc->role_groups[DIR_ROLE_ADMIN] = cfg->dir_admin_group;
	dc->role_groups[DIR_ROLE_COMPLIANCE] = cfg->dir_compliance_group;
	dc->log = dir_log;
	dc->log_arg = NULL;
}

static int
cmd_saml_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"cert", required_argument, NULL, 'c'},
		{"name", required_argument, NULL, 'n'},
		{"days", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key = NULL, *cert = NULL, *cn = "roomgate-sp";
	char err[1024], *end;
	long days = 3650;
	int ch;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			key = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'n':
			cn = optarg;
			break;
		case 'd':
			days = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || days < 1 ||
			    days > 36500) {
				fprintf(stderr, "roomgate: --days must be 1 to "
						"36500\n");
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage_saml_keygen, stdout);
			return 0;
		default:
			fputs(usage_saml_keygen, stderr);
			return EXIT_USAGE;
		}
	}
	if (key == NULL || cert == NULL || optind != argc) {
		fputs(usage_saml_keygen, stderr);
		return EXIT_USAGE;
	}
	if (saml_keygen(key, cert, cn, (int)days, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: saml-keygen: %s\n", err);
		return 1;
	}
	printf("wrote SAML key %s (mode 0600) and certificate %s\n", key,
	       cert);
	return 0;
}

/* saml/ does not know server/: its events reach the log here. */
static void
saml_log_cb(void *arg, int level, const char *event, const char *msg)
{
	(void)arg;
	gate_log(level >= 2 ? GATE_LOG_ERROR
		 : level == 1 ? GATE_LOG_WARN
			      : GATE_LOG_INFO,
		 NULL, event, "%s", msg);
}

static int
open_saml(const struct gate_config *cfg, struct saml_sp **out, char *err,
	  size_t errlen)
{
	struct saml_sp_config sc;

	*out = NULL;
	if (cfg->saml_entity_id == NULL || *cfg->saml_entity_id == '\0')
		return 0;
	memset(&sc, 0, sizeof(sc));
	sc.entity_id = cfg->saml_entity_id;
	sc.base_url = cfg->public_url;
	sc.key_file = cfg->saml_key_file;
	sc.cert_file = cfg->saml_cert_file;
	sc.idp_metadata_file = cfg->saml_idp_metadata_file;
	sc.idp_metadata_url = cfg->saml_idp_metadata_url;
	sc.idp_metadata_ca_file = cfg->saml_idp_metadata_ca_file;
	sc.idp_metadata_refresh_s = cfg->saml_idp_metadata_refresh_s;
	sc.idp_metadata_signing_cert = cfg->saml_idp_metadata_signing_cert;
	sc.log = saml_log_cb;
	sc.name_id_format = cfg->saml_name_id_format;
	sc.directory_key = cfg->saml_directory_key;
	sc.want_assertions_signed = cfg->saml_want_assertions_signed;
	sc.clock_skew_s = cfg->saml_clock_skew_s;
	sc.allow_unsolicited = cfg->saml_allow_unsolicited;
	sc.authn_request_post = cfg->saml_authn_request_binding == 1;
	sc.max_response_bytes = (size_t)cfg->saml_acs_max_body_bytes;
	return saml_sp_open(&sc, out, err, errlen);
}

static int
serve(struct gate_config *cfg, int migrate, char **envp)
{
	struct gate_app app;
	struct gate_http *http = NULL;
	struct gate_keys *keys = NULL;
	struct gate_rotation *rotation = NULL;
	struct gate_webhooks *webhooks = NULL;
	struct gate_watcher *watcher = NULL;
	struct gate_sealer *sealer = NULL;
	struct gate_jwt_keys *jwt = NULL; /* reloads make their own */
	struct gate_lifecycle *lc = NULL;
	struct db_config dbc;
	struct dir_config dc;
	char err[1024], host[256];
	sigset_t set;
	int r = 1, saml_up = 0;

	memset(&app, 0, sizeof(app));
	app.cfg = cfg;
	if (cfg->node_name == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "roomgate");
		host[sizeof(host) - 1] = '\0';
		cfg->node_name = strdup(host);
		if (cfg->node_name == NULL)
			return 1;
	}
	gate_log_setup(cfg->log_level, cfg->node_name);

	/* Signals are taken by sigwait() below: block them before any
	 * thread (pools, libmicrohttpd) exists so every thread inherits
	 * the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (gate_config_check_serve(cfg, err, sizeof(err)) != 0 ||
	    gate_keys_load(cfg->keys_file, &keys, err, sizeof(err)) != 0 ||
	    (saml_up = (saml_init(err, sizeof(err)) == 0)) == 0)
		goto fail;
	app.keys = keys;
	if (gate_jwt_keys_open(cfg, &jwt, err, sizeof(err)) != 0)
		goto fail;
	app.jwt = jwt;
	if (gate_codes_open(cfg, keys, &app.codes, err, sizeof(err)) != 0)
		goto fail;
	if (open_saml(cfg, &app.saml, err, sizeof(err)) != 0)
		goto fail;

	if (migrate || cfg->db_migrate_on_start) {
		int applied = 0;

		if (db_migrate(cfg->db_url, &applied, err, sizeof(err)) != 0)
			goto fail;
		gate_log(GATE_LOG_INFO, NULL, "migrated",
			 "applied %d migration(s); schema at version %d",
			 applied, db_migrations_latest());
	}

	memset(&dbc, 0, sizeof(dbc));
	dbc.conninfo = cfg->db_url;
	dbc.pool_size = cfg->db_pool_size;
	dbc.connect_timeout_s = cfg->db_connect_timeout_s;
	dbc.statement_timeout_ms = cfg->db_statement_timeout_ms;
	dbc.acquire_timeout_ms = cfg->db_acquire_timeout_ms;
	if (db_pool_open(&dbc, &app.db, err, sizeof(err)) != 0)
		goto fail;

	memset(&dc, 0, sizeof(dc));
	dc.uris = cfg->ldap_uri;
	dc.bind_dn = cfg->ldap_bind_dn;
	dc.bind_password = cfg->ldap_bind_password;
	dc.tls = (enum dir_tls_mode)cfg->ldap_tls;
	dc.ca_file = cfg->ldap_ca_file;
	dc.network_timeout_ms = cfg->ldap_network_timeout_ms;
	dc.op_timeout_ms = cfg->ldap_op_timeout_ms;
	dc.pool_size = cfg->ldap_pool_size;
	dc.acquire_timeout_ms = cfg->ldap_acquire_timeout_ms;
	dc.base_dn = cfg->ldap_base_dn;
	dir_config_checks(cfg, &dc);
	if (dir_pool_open(&dc, &app.dir, err, sizeof(err)) != 0)
		goto fail;

	if (gate_http_start(&app, &http, err, sizeof(err)) != 0)
		goto fail;
	if (gate_rotation_start(&app, &rotation, err, sizeof(err)) != 0)
		goto fail;
	if (gate_webhooks_start(&app, &webhooks, err, sizeof(err)) != 0)
		goto fail;
	if (gate_watcher_start(&app, &dc, &watcher, err, sizeof(err)) != 0)
		goto fail;
	if (gate_sealer_start(&app, &sealer, err, sizeof(err)) != 0)
		goto fail;
	gate_log(GATE_LOG_INFO, NULL, "listening",
		 "roomgate %s listening on http://%s:%d/ (public URL %s)",
		 ROOMGATE_VERSION, cfg->listen, cfg->port, cfg->public_url);

	if (gate_lifecycle_open(&app, envp, &lc, err, sizeof(err)) != 0)
		goto fail;
	/* SIGHUP reloads; SIGTERM/SIGINT drain the requests in progress
	 * and return here. */
	gate_lifecycle_run(lc, http);
	r = 0;
	goto out;
fail:
	gate_log(GATE_LOG_ERROR, NULL, "startup_failed", "%s", err);
	fprintf(stderr, "roomgate: %s\n", err);
out:
	gate_http_stop(http);
	gate_sealer_stop(sealer);
	gate_watcher_stop(watcher);
	gate_webhooks_stop(webhooks);
	gate_rotation_stop(rotation);
	dir_pool_close(app.dir);
	db_pool_close(app.db);
	saml_sp_close(app.saml);
	if (saml_up)
		saml_shutdown();
	gate_codes_close(app.codes);
	gate_lifecycle_close(lc);
	gate_jwt_keys_free(jwt);
	gate_keys_free(keys);
	return r;
}

static int
cmd_serve(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"migrate", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gate_config cfg;
	int ch, migrate = 0, r;

	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'm':
			migrate = 1;
			break;
		case 'h':
			fputs(usage_serve, stdout);
			return 0;
		default:
			fputs(usage_serve, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage_serve, stderr);
		return EXIT_USAGE;
	}
	if (load_config(&cfg, cfgpath, envp) != 0)
		return 1;
	r = serve(&cfg, migrate, envp);
	gate_config_free(&cfg);
	return r;
}

static int
cmd_version(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 ||
			 strcmp(argv[1], "-h") == 0)) {
		fputs(usage_version, stdout);
		return 0;
	}
	if (argc > 1) {
		fputs(usage_version, stderr);
		return EXIT_USAGE;
	}
	printf("roomgate %s (libmicrohttpd %s, libsodium %s, jansson %s; "
	       "schema version %d)\n",
	       ROOMGATE_VERSION, MHD_get_version(), sodium_version_string(),
	       jansson_version_str(), db_migrations_latest());
	return 0;
}

int
gate_cli_main(int argc, char **argv, char **envp)
{
	const char *cfgpath = NULL;
	const char *cmd;
	int i = 1;

	/* Global -c FILE may come before the command. */
	while (i < argc && argv[i][0] == '-') {
		if ((strcmp(argv[i], "-c") == 0 ||
		     strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			cfgpath = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "-h") == 0 ||
			   strcmp(argv[i], "--help") == 0) {
			fputs(usage_main, stdout);
			return 0;
		} else {
			fprintf(stderr, "roomgate: unknown option %s\n\n%s",
				argv[i], usage_main);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	cmd = argv[i];
	argc -= i;
	argv += i;
	optind = 1;
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(cfgpath, argc, argv, envp);
	if (strcmp(cmd, "migrate") == 0)
		return cmd_migrate(cfgpath, argc, argv, envp);
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (strcmp(cmd, "saml-keygen") == 0)
		return cmd_saml_keygen(argc, argv);
	if (strcmp(cmd, "jwt-keygen") == 0)
		return cmd_jwt_keygen(argc, argv);
	if (strcmp(cmd, "version") == 0)
		return cmd_version(argc, argv);
	if (strcmp(cmd, "code") == 0)
		return gate_cli_code(cfgpath, argc, argv, envp);
	if (strcmp(cmd, "token") == 0)
		return gate_cli_token(cfgpath, argc, argv, envp);
	if (strcmp(cmd, "meeting") == 0)
		return gate_cli_meeting(cfgpath, argc, argv, envp);
	if (strcmp(cmd, "audit") == 0 && argc > 1 &&
	    (strcmp(argv[1], "export") == 0 ||
	     strcmp(argv[1], "verify-export") == 0))
		return gate_cli_audit_export(cfgpath, argc, argv, envp);
	if (strcmp(cmd, "audit") == 0)
		return gate_cli_audit(cfgpath, argc, argv, envp);
	if (strcmp(cmd, "help") == 0) {
		if (argc > 1 && strcmp(argv[1], "config") == 0) {
			gate_config_print_reference(stdout);
			return 0;
		}
		fputs(usage_main, stdout);
		return 0;
	}
	fprintf(stderr, "roomgate: unknown command \"%s\"\n\n%s", cmd,
		usage_main);
	return EXIT_USAGE;
}
