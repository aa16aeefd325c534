/*
 * `roomgate audit ...`: the audit signing key (keygen, public-key), chain
 * verification (verify) and retention (purge). Usage errors exit 2,
 * failures 1.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "server/audit_seal.h"

#define EXIT_USAGE 2

static const char usage_audit[] =
	"usage: roomgate [-c FILE] audit COMMAND [OPTIONS]\n"
	"\n"
	"  keygen --out FILE [--public FILE]  create an audit signing key\n"
	"  public-key [--key FILE]            print the public key file\n"
	"  verify [--from SEQ|TIME] [--to SEQ|TIME] [--public-key FILE]\n"
	"         [--anchor FILE] [--grace SECONDS]\n"
	"                                     check the chain and checkpoints\n"
	"  purge [--before TIME]              apply retention now\n"
	"`roomgate audit COMMAND --help` describes a command.\n";

static const char usage_keygen[] =
	"usage: roomgate audit keygen --out FILE [--public PUBFILE]\n"
	"\n"
	"Creates FILE (mode 0600) with a fresh Ed25519 key for [audit]\n"
	"signing_key_file, and PUBFILE (default FILE.pub) with its public\n"
	"half, which auditors use to check checkpoints and exports offline.\n"
	"Refuses to overwrite either file. Prints the key id (kid).\n"
	"To rotate: make a new key, point signing_key_file at it and list\n"
	"the old PUBFILE in [audit] previous_public_keys.\n";

static const char usage_public_key[] =
	"usage: roomgate [-c FILE] audit public-key [--key FILE]\n"
	"\n"
	"Prints the public key file of the audit signing key ([audit]\n"
	"signing_key_file, or --key FILE: a secret or public key file).\n"
	"The same text is served at GET /v1/audit/public-key.\n";

static const char usage_verify[] =
	"usage: roomgate [-c FILE] audit verify [--from SEQ|TIME] [--to "
	"SEQ|TIME]\n"
	"           [--public-key FILE]... [--anchor FILE]... [--grace SECONDS]\n"
	"\n"
	"Recomputes the audit chain from the records in the database and\n"
	"checks every signed checkpoint on the way. Names the first record\n"
	"that was modified, deleted, inserted or reordered (by seq), a\n"
	"checkpoint with a bad or unknown signature, or a truncated tail.\n"
	"Fails too when chain entries run past the newest checkpoint, when a\n"
	"record is still not sealed SECONDS (300) after its time, and when\n"
	"the newest retention purge is not one audit_purge() made (its\n"
	"checkpoint, its sealed audit.purge record, a cutoff at least\n"
	"[audit] retention_days before it). --anchor FILE: a copy of the\n"
	"checkpoint journal kept outside the database (the server's log\n"
	"lines \"roomgate-audit-anchor-v1 ...\"), or an export's signed\n"
	"manifest (its last checkpoint); every checkpoint in it must be in\n"
	"the database unchanged, so a cut tail or a rebuilt chain is found.\n"
	"Keys: [audit] signing_key_file (its public half),\n"
	"previous_public_keys, and each --public-key FILE. TIME is RFC 3339\n"
	"(2026-12-01T14:00:00Z). Exit status 0 when everything verifies,\n"
	"1 when something does not (or the database cannot be read), 2 on\n"
	"a usage error.\n";

static const char usage_purge[] =
	"usage: roomgate [-c FILE] audit purge [--before TIME]\n"
	"\n"
	"Deletes sealed audit records older than [audit] retention_days (or\n"
	"TIME), up to the newest signed checkpoint that allows it; that\n"
	"checkpoint is kept and recorded, so `audit verify` still verifies\n"
	"what is left. The sealing node does this hourly on its own.\n";

static int
cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"out", required_argument, NULL, 'o'},
		{"output", required_argument, NULL, 'o'},
		{"public", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *out = NULL, *pub = NULL;
	char pubbuf[4096], kid[17], err[1024];
	int ch, n;

	while ((ch = getopt_long(argc, argv, "o:p:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'p':
			pub = optarg;
			break;
		case 'h':
			fputs(usage_keygen, stdout);
			return 0;
		default:
			fputs(usage_keygen, stderr);
			return EXIT_USAGE;
		}
	}
	if (out == NULL || optind != argc) {
		fputs(usage_keygen, stderr);
		return EXIT_USAGE;
	}
	if (pub == NULL) {
		n = snprintf(pubbuf, sizeof(pubbuf), "%s.pub", out);
		if (n < 0 || (size_t)n >= sizeof(pubbuf)) {
			fprintf(stderr, "roomgate: audit keygen: path too "
					"long\n");
			return EXIT_USAGE;
		}
		pub = pubbuf;
	}
	if (gate_audit_key_generate(out, pub, kid, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: audit keygen: %s\n", err);
		return 1;
	}
	printf("wrote audit signing key %s (mode 0600) and public key %s; "
	       "kid %s\n",
	       out, pub, kid);
	return 0;
}

/* Loads the config from -c / $ROOMGATE_CONFIG; quiet 1 when there is
 * none and none is required. */
static int
load_cfg(const char *cfgpath, char **envp, struct gate_config *cfg)
{
	char err[1024];
	const char *path = cfgpath ? cfgpath : getenv("ROOMGATE_CONFIG");

	if (path == NULL || *path == '\0') {
		fprintf(stderr,
			"roomgate: no config file: pass -c FILE or set "
			"ROOMGATE_CONFIG\n");
		return -1;
	}
	if (gate_config_load(cfg, path, envp, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: %s\n", err);
		return -1;
	}
	return 0;
}

static int
cmd_public_key(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gate_config cfg;
	unsigned char pk[32];
	char kid[17], text[128], err[1024];
	const char *key = NULL;
	int ch, have_cfg = 0, r = 1;

	while ((ch = getopt_long(argc, argv, "k:c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			key = optarg;
			break;
		case 'c':
			cfgpath = optarg;
			break;
		case 'h':
			fputs(usage_public_key, stdout);
			return 0;
		default:
			fputs(usage_public_key, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage_public_key, stderr);
		return EXIT_USAGE;
	}
	if (key == NULL) {
		if (load_cfg(cfgpath, envp, &cfg) != 0)
			return 1;
		have_cfg = 1;
		key = cfg.audit_signing_key_file;
		if (key == NULL) {
			fprintf(stderr,
				"roomgate: [audit] signing_key_file is not set "
				"in %s; pass --key FILE or make a key with "
				"`roomgate audit keygen --out FILE`\n",
				cfg.path);
			goto out;
		}
	}
	if (gate_audit_key_pub_load(key, pk, kid, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: audit public-key: %s\n", err);
		goto out;
	}
	gate_audit_pub_text(pk, text);
	fputs(text, stdout);
	r = 0;
out:
	if (have_cfg)
		gate_config_free(&cfg);
	return r;
}

static int
open_db(const struct gate_config *cfg, struct db_pool **db)
{
	struct db_config dbc;
	char err[1024];

	*db = NULL;
	if (cfg->db_url == NULL) {
		fprintf(stderr,
			"roomgate: [database] url is required: set it in %s "
			"or with ROOMGATE_DATABASE_URL\n",
			cfg->path);
		return -1;
	}
	memset(&dbc, 0, sizeof(dbc));
	dbc.conninfo = cfg->db_url;
	dbc.pool_size = 2;
	dbc.connect_timeout_s = cfg->db_connect_timeout_s;
	dbc.statement_timeout_ms = cfg->db_statement_timeout_ms;
	dbc.acquire_timeout_ms = cfg->db_acquire_timeout_ms;
	if (db_pool_open(&dbc, db, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: %s\n", err);
		return -1;
	}
	return 0;
}

/* SEQ (digits) or TIME (anything else, PostgreSQL reads it). */
static int
bound(struct db_pool *db, const char *what, const char *arg, int last,
      long long *seq)
{
	char err[1024], *end;
	int r;

	if (arg == NULL) {
		*seq = 0;
		return 0;
	}
	if (strspn(arg, "0123456789") == strlen(arg)) {
		*seq = strtoll(arg, &end, 10);
		if (*arg == '\0' || *end != '\0' || *seq <= 0) {
			fprintf(stderr,
				"roomgate: %s %s: a seq must be 1 or more\n",
				what, arg);
			return -1;
		}
		return 0;
	}
	r = db_audit_seq_at(db, arg, last, seq, err, sizeof(err));
	if (r != 0) {
		fprintf(stderr,
			"roomgate: %s %s: not a seq or a time PostgreSQL "
			"reads (e.g. 2026-12-01T14:00:00Z): %s\n",
			what, arg, err);
		return -1;
	}
	if (*seq == 0) {
		fprintf(stderr, "roomgate: %s %s: no audit record %s that "
				"time\n",
			what, arg, last ? "at or before" : "at or after");
		return -1;
	}
	return 0;
}

#define MAX_KEYS 32

static int
cmd_verify(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
		{"from", required_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},
		{"public-key", required_argument, NULL, 'k'},
		{"anchor", required_argument, NULL, 'a'},
		{"grace", required_argument, NULL, 'g'},
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gate_audit_verify_opts o;
	struct gate_audit_verify_result res;
	struct gate_config cfg;
	struct db_pool *db = NULL;
	unsigned char pks[MAX_KEYS][32];
	char kids[MAX_KEYS][17], err[1024];
	const char *from = NULL, *to = NULL, *extra[MAX_KEYS];
	const char *anchors[MAX_KEYS];
	size_t nextra = 0, n = 0, nanchors = 0;
	long grace = 300;
	char *end;
	struct timespec t0, t1;
	int ch, r = 1;

	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			from = optarg;
			break;
		case 't':
			to = optarg;
			break;
		case 'k':
			if (nextra >= MAX_KEYS / 2) {
				fprintf(stderr, "roomgate: at most %d "
						"--public-key\n",
					MAX_KEYS / 2);
				return EXIT_USAGE;
			}
			extra[nextra++] = optarg;
			break;
		case 'a':
			if (nanchors >= MAX_KEYS) {
				fprintf(stderr, "roomgate: at most %d "
						"--anchor\n",
					MAX_KEYS);
				return EXIT_USAGE;
			}
			anchors[nanchors++] = optarg;
			break;
		case 'g':
			grace = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || grace < 1 ||
			    grace > 31 * 86400) {
				fprintf(stderr,
					"roomgate: --grace %s: seconds, 1 to "
					"2678400\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'c':
			cfgpath = optarg;
			break;
		case 'h':
			fputs(usage_verify, stdout);
			return 0;
		default:
			fputs(usage_verify, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage_verify, stderr);
		return EXIT_USAGE;
	}
	if (load_cfg(cfgpath, envp, &cfg) != 0)
		return 1;
	if (gate_audit_pubs_load(&cfg, pks, kids, MAX_KEYS / 2, &n, err,
				 sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: audit verify: %s\n", err);
		goto out;
	}
	for (size_t i = 0; i < nextra; i++, n++) {
		if (gate_audit_key_pub_load(extra[i], pks[n], kids[n], err,
					    sizeof(err)) != 0) {
			fprintf(stderr, "roomgate: audit verify: %s\n", err);
			goto out;
		}
	}
	if (n == 0) {
		fprintf(stderr,
			"roomgate: audit verify: no public key to check "
			"checkpoints with: pass --public-key FILE or set "
			"[audit] signing_key_file\n");
		r = EXIT_USAGE;
		goto out;
	}
	if (open_db(&cfg, &db) != 0)
		goto out;
	memset(&o, 0, sizeof(o));
	if (bound(db, "--from", from, 0, &o.from_seq) != 0 ||
	    bound(db, "--to", to, 1, &o.to_seq) != 0)
		goto out;
	if (o.to_seq > 0 && o.from_seq > o.to_seq) {
		fprintf(stderr, "roomgate: audit verify: --from (seq %lld) is "
				"after --to (seq %lld)\n",
			o.from_seq, o.to_seq);
		r = EXIT_USAGE;
		goto out;
	}
	o.pks = pks;
	o.kids = kids;
	o.npks = n;
	o.progress = stderr;
	o.retention_days = cfg.audit_retention_days;
	o.grace_s = (int)grace;
	o.anchors = anchors;
	o.nanchors = nanchors;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (gate_audit_verify_run(db, &o, &res, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: audit verify: %s\n", err);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (res.purged[0] != '\0')
		printf("audit verify: purged: %s\n", res.purged);
	if (!res.ok) {
		printf("audit verify: FAILED: %s\n", res.what);
		goto out;
	}
	printf("audit verify: OK: %s (%.2f s)\n", res.what,
	       (double)(t1.tv_sec - t0.tv_sec) +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	r = 0;
out:
	db_pool_close(db);
	gate_config_free(&cfg);
	return r;
}

static int
cmd_purge(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
		{"before", required_argument, NULL, 'b'},
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gate_config cfg;
	struct db_pool *db = NULL;
	const char *before = NULL;
	char cutoff[64], err[1024];
	long long purged = 0, upto = 0;
	int ch, r = 1;

	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			before = optarg;
			break;
		case 'c':
			cfgpath = optarg;
			break;
		case 'h':
			fputs(usage_purge, stdout);
			return 0;
		default:
			fputs(usage_purge, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage_purge, stderr);
		return EXIT_USAGE;
	}
	if (load_cfg(cfgpath, envp, &cfg) != 0)
		return 1;
	if (before != NULL) {
		if (strlen(before) >= sizeof(cutoff)) {
			fprintf(stderr, "roomgate: --before: too long\n");
			r = EXIT_USAGE;
			goto out;
		}
		snprintf(cutoff, sizeof(cutoff), "%s", before);
	} else if (cfg.audit_retention_days > 0) {
		time_t t = time(NULL) -
			   (time_t)cfg.audit_retention_days * 86400;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(cutoff, sizeof(cutoff), "%Y-%m-%dT%H:%M:%SZ", &tm);
	} else {
		fprintf(stderr,
			"roomgate: audit purge: [audit] retention_days is 0 "
			"(keep forever) in %s; set it, or pass --before "
			"TIME\n",
			cfg.path);
		r = EXIT_USAGE;
		goto out;
	}
	if (open_db(&cfg, &db) != 0)
		goto out;
	if (db_audit_purge(db, cutoff, cfg.node_name ? cfg.node_name : "cli",
			   &purged, &upto, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: audit purge: %s\n", err);
		goto out;
	}
	if (purged == 0 && upto == 0)
		printf("audit purge: nothing to purge before %s (no signed "
		       "checkpoint covers only older records)\n",
		       cutoff);
	else
		printf("audit purge: %lld records before %s purged, up to "
		       "the checkpoint at seq %lld\n",
		       purged, cutoff, upto);
	r = 0;
out:
	db_pool_close(db);
	gate_config_free(&cfg);
	return r;
}

int
gate_cli_audit(const char *cfgpath, int argc, char **argv, char **envp)
{
	const char *sub;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		fputs(usage_audit, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	if (strcmp(sub, "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (strcmp(sub, "public-key") == 0)
		return cmd_public_key(cfgpath, argc, argv, envp);
	if (strcmp(sub, "verify") == 0)
		return cmd_verify(cfgpath, argc, argv, envp);
	if (strcmp(sub, "purge") == 0)
		return cmd_purge(cfgpath, argc, argv, envp);
	fprintf(stderr, "roomgate: unknown audit command \"%s\"\n\n%s", sub,
		usage_audit);
	return EXIT_USAGE;
}
