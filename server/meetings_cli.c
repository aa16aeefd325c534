/*
 * The CLI over meetings, codes and tokens:
 *   roomgate code check [--length N] [CODE...]
 *   roomgate token create|list|revoke
 *   roomgate meeting create|show|list|rotate|archive
 * It runs the same validation, policy and storage as the API (meetings.c,
 * codes_*.c), acting as an admin: whoever can read the config and the key
 * file runs the service anyway. Usage errors exit 2, failures 1.
 */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server/meetings.h"

#define EXIT_USAGE 2

static const char usage_code[] =
    "usage: roomgate code check [--length N] [CODE...]\n"
    "\n"
    "Explains whether each CODE passes the access-code strength policy\n"
    "([codes] in the config when -c FILE or ROOMGATE_CONFIG is given, the\n"
    "defaults otherwise) and why not. Without CODE, reads one code per\n"
    "line from standard input (keeps codes out of the process list).\n"
    "Spaces, hyphens and dots are ignored; other Unicode digits count.\n"
    "  --length N   also require exactly N digits (a meeting's length)\n"
    "Exit status: 0 every code passes, 1 one fails, 2 usage error.\n";

static const char usage_token[] =
    "usage: roomgate [-c FILE] token create --role ROLE --name NAME "
    "[--identity ID]\n"
    "       roomgate [-c FILE] token list [--all]\n"
    "       roomgate [-c FILE] token revoke NAME|ID\n"
    "\n"
    "API service tokens, sent as \"Authorization: Bearer TOKEN\". create\n"
    "prints the token once; only its hash is stored. ROLE is host (sees\n"
    "and changes its own meetings), admin (all meetings) or compliance\n"
    "(reads all meetings, never codes). --identity: the host identity the\n"
    "token acts as (default: token:NAME).\n";

static const char usage_meeting[] =
    "usage: roomgate [-c FILE] meeting create --title T (--group DN... | "
    "--invitee ID...)\n"
    "           [--host ID] [--length N] [--code CODE|-] [--rotate-every "
    "DUR]\n"
    "           [--grace DUR] [--room NAME] [--waiting-room] [--starts "
    "TIME]\n"
    "           [--ends TIME]\n"
    "       roomgate [-c FILE] meeting show ID [--with-code]\n"
    "       roomgate [-c FILE] meeting list [--host ID] [--all] [--limit "
    "N]\n"
    "       roomgate [-c FILE] meeting rotate ID [--code CODE|-] "
    "[--length N] [--grace DUR]\n"
    "       roomgate [-c FILE] meeting archive ID\n"
    "\n"
    "Meetings, as the /v1/meetings API does them (same checks), printed\n"
    "as JSON. DUR: seconds, or a number with s, m, h or d (7d). TIME:\n"
    "RFC 3339 (2026-12-01T14:00:00Z). --code -: read the code from\n"
    "standard input. create and rotate print the new code once.\n";

/* ---- shared set-up -------------------------------------------------- */

struct cli {
	struct gate_config cfg;
	struct gate_keys *keys;
	struct gate_codes *codes;
	struct gate_app app;
	int have_cfg;
};

static void
cli_close(struct cli *c)
{
	db_pool_close(c->app.db);
	gate_codes_close(c->codes);
	gate_keys_free(c->keys);
	if (c->have_cfg)
		gate_config_free(&c->cfg);
	memset(c, 0, sizeof(*c));
}

/* need_db: also keys and a database pool. */
static int
cli_open(struct cli *c, const char *cfgpath, char **envp, int need_db)
{
	struct db_config dbc;
	char err[1024];

	memset(c, 0, sizeof(*c));
	if (cfgpath == NULL)
		cfgpath = getenv("ROOMGATE_CONFIG");
	if (cfgpath != NULL && *cfgpath == '\0')
		cfgpath = NULL;
	if (need_db && cfgpath == NULL) {
		fprintf(stderr, "roomgate: no config file: pass -c FILE or set "
		                "ROOMGATE_CONFIG\n");
		return -1;
	}
	if (gate_config_load(&c->cfg, cfgpath, envp, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: %s\n", err);
		return -1;
	}
	c->have_cfg = 1;
	c->app.cfg = &c->cfg;
	if (!need_db) {
		struct gate_code_policy p;

		if (gate_codes_policy_from_config(&c->cfg, &p, err,
		                                  sizeof(err)) != 0)
			goto fail;
		return 0;
	}
	if (c->cfg.db_url == NULL || c->cfg.keys_file == NULL) {
		snprintf(err, sizeof(err),
		         "[database] url and [keys] file are required");
		goto fail;
	}
	if (gate_keys_load(c->cfg.keys_file, &c->keys, err, sizeof(err)) != 0 ||
	    gate_codes_open(&c->cfg, c->keys, &c->codes, err, sizeof(err)) != 0)
		goto fail;
	c->app.keys = c->keys;
	c->app.codes = c->codes;
	memset(&dbc, 0, sizeof(dbc));
	dbc.conninfo = c->cfg.db_url;
	dbc.pool_size = 1;
	dbc.connect_timeout_s = c->cfg.db_connect_timeout_s;
	dbc.statement_timeout_ms = c->cfg.db_statement_timeout_ms;
	dbc.acquire_timeout_ms = c->cfg.db_acquire_timeout_ms;
	if (db_pool_open(&dbc, &c->app.db, err, sizeof(err)) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "roomgate: %s\n", err);
	cli_close(c);
	return -1;
}

static void
print_json(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;

	if (s != NULL) {
		puts(s);
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

/* Reads one line from stdin into out (no newline). */
static int
read_line(char *out, size_t outsize)
{
	size_t n;

	if (fgets(out, (int)outsize, stdin) == NULL)
		return -1;
	n = strlen(out);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return 0;
}

static int
parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (*s == '\0')
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* 3600, 90s, 30m, 12h, 7d -> seconds. */
static int
parse_duration(const char *s, long long *out)
{
	char *end;
	long long v, mul = 1;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtoll(s, &end, 10);
	if (*end == 's')
		end++;
	else if (*end == 'm')
		mul = 60, end++;
	else if (*end == 'h')
		mul = 3600, end++;
	else if (*end == 'd')
		mul = 86400, end++;
	if (*end != '\0' || v < 0 || v > 400LL * 86400)
		return -1;
	*out = v * mul;
	return 0;
}

/* ---- code check ------------------------------------------------------- */

static int
check_one(const struct gate_code_policy *p, const char *typed, int length)
{
	struct gate_code_verdict v;
	char code[GATE_CODE_BUF], err[256];
	size_t n;
	int r;

	r = gate_code_normalize(typed, strlen(typed), length, code,
	                        sizeof(code), &n, err, sizeof(err));
	if (r != GATE_CODE_OK) {
		printf("not a valid code: %s\n", err);
		return 1;
	}
	if (gate_code_check(p, code, n, &v) == 0) {
		printf("%s: strong: passes every rule of the policy\n", code);
		r = 0;
	} else {
		printf("%s: weak\n", code);
		for (int i = 0; i < GATE_CR_COUNT; i++)
			if (v.failed & (1u << i))
				printf("  %s: %s\n", gate_code_rule_name(i),
				       v.why[i]);
		r = 1;
	}
	sodium_memzero(code, sizeof(code));
	sodium_memzero(&v, sizeof(v));
	return r;
}

int
gate_cli_code(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
	    {"length", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct gate_code_policy p;
	struct cli c;
	char line[GATE_CODE_MAX_INPUT + 2], err[512];
	long length = 0;
	int ch, bad = 0;

	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
		                  strcmp(argv[1], "-h") == 0)) {
			fputs(usage_code, stdout);
			return 0;
		}
		fputs(usage_code, stderr);
		return EXIT_USAGE;
	}
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (parse_int(optarg, GATE_CODE_MIN_LEN,
			              GATE_CODE_MAX_LEN, &length) != 0) {
				fprintf(stderr,
				        "roomgate: --length must be %d to %d\n",
				        GATE_CODE_MIN_LEN, GATE_CODE_MAX_LEN);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage_code, stdout);
			return 0;
		default:
			fputs(usage_code, stderr);
			return EXIT_USAGE;
		}
	}
	if (cli_open(&c, cfgpath, envp, 0) != 0)
		return 1;
	if (gate_codes_policy_from_config(&c.cfg, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: %s\n", err);
		cli_close(&c);
		return 1;
	}
	cli_close(&c);
	if (optind < argc) {
		for (int i = optind; i < argc; i++)
			bad |= check_one(&p, argv[i], (int)length);
	} else {
		while (read_line(line, sizeof(line)) == 0)
			if (line[0] != '\0')
				bad |= check_one(&p, line, (int)length);
		sodium_memzero(line, sizeof(line));
	}
	return bad ? 1 : 0;
}

/* ---- tokens --------------------------------------------------------- */

static void
print_token(const struct db_token *t)
{
	char at[40], rv[40];

	gate_time_fmt(t->created_at, at, sizeof(at));
	gate_time_fmt(t->revoked_at, rv, sizeof(rv));
	printf("%-36s  %-24s  %-10s  %-24s  %s%s%s\n", t->id, t->name, t->role,
	       t->identity, at, t->revoked_at ? "  revoked " : "",
	       t->revoked_at ? rv : "");
}

int
gate_cli_token(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
	    {"role", required_argument, NULL, 'r'},
	    {"name", required_argument, NULL, 'n'},
	    {"identity", required_argument, NULL, 'i'},
	    {"all", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *role = NULL, *name = NULL, *identity = NULL, *sub;
	char tok[GATE_TOKEN_LEN], ident[300], err[1024];
	unsigned char hash[32];
	struct db_token t, *list = NULL;
	struct cli c;
	size_t n = 0;
	int ch, all = 0, r = 1;

	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
		                  strcmp(argv[1], "-h") == 0)) {
			fputs(usage_token, stdout);
			return 0;
		}
		fputs(usage_token, stderr);
		return EXIT_USAGE;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			role = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'i':
			identity = optarg;
			break;
		case 'a':
			all = 1;
			break;
		case 'h':
			fputs(usage_token, stdout);
			return 0;
		default:
			fputs(usage_token, stderr);
			return EXIT_USAGE;
		}
	}
	if (strcmp(sub, "create") == 0) {
		if (role == NULL || name == NULL || optind != argc) {
			fputs(usage_token, stderr);
			return EXIT_USAGE;
		}
		if (gate_role_parse(role) == 0) {
			fprintf(stderr, "roomgate: --role must be host, admin "
			                "or compliance\n");
			return EXIT_USAGE;
		}
	} else if (strcmp(sub, "list") == 0) {
		if (optind != argc) {
			fputs(usage_token, stderr);
			return EXIT_USAGE;
		}
	} else if (strcmp(sub, "revoke") == 0) {
		if (optind != argc - 1) {
			fputs(usage_token, stderr);
			return EXIT_USAGE;
		}
	} else {
		fputs(usage_token, stderr);
		return EXIT_USAGE;
	}
	if (cli_open(&c, cfgpath, envp, 1) != 0)
		return 1;
	if (strcmp(sub, "create") == 0) {
		if (identity == NULL) {
			snprintf(ident, sizeof(ident), "token:%.64s", name);
			identity = ident;
		}
		gate_token_new(tok, hash);
		if (db_token_create(c.app.db, name, role, identity, hash, &t,
		                    err, sizeof(err)) != 0) {
			fprintf(stderr, "roomgate: token create: %s\n", err);
			goto out;
		}
		printf("%s\n", tok);
		fprintf(stderr,
		        "token \"%s\" (role %s, identity %s, id %s) created; "
		        "it is shown only now -- store it safely\n",
		        t.name, t.role, t.identity, t.id);
	} else if (strcmp(sub, "list") == 0) {
		if (db_token_list(c.app.db, all, &list, &n, err, sizeof(err)) !=
		    0) {
			fprintf(stderr, "roomgate: token list: %s\n", err);
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			print_token(&list[i]);
	} else {
		if (db_token_revoke(c.app.db, argv[optind], err, sizeof(err)) !=
		    0) {
			fprintf(stderr, "roomgate: token revoke: %s\n", err);
			goto out;
		}
		printf("revoked %s\n", argv[optind]);
	}
	r = 0;
out:
	sodium_memzero(tok, sizeof(tok));
	free(list);
	cli_close(&c);
	return r;
}

/* ---- meetings ---------------------------------------------------------- */

struct meeting_opts {
	const char *title, *host, *code, *room, *starts, *ends;
	json_t *groups, *invitees;
	long length;
	long long rotate_every, grace;
	int have_rotate, have_grace, waiting_room, show_code, all;
	long limit;
};

/* `meeting show --code` reveals a code: on record first, as the HTTP
 * read is (event "code.read", reason "cli", the operating-system user in
 * details; never the code). No record, no code. */
static int
code_read_record(struct cli *c, const char *id, const struct db_code *dc,
                 char *err, size_t errlen)
{
	const struct passwd *pw = getpwuid(geteuid());
	struct db_actor by;
	struct db_audit_rec a;
	json_t *d;
	char *details;
	int r;

	d = json_pack("{s:i, s:s, s:s}", "version", dc->version, "source",
	              strcmp(dc->source, "custom") == 0 ? "custom"
	                                                : "generated",
	              "os_user", pw != NULL ? pw->pw_name : "?");
	details = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	if (details == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memset(&by, 0, sizeof(by));
	by.identity = "cli";
	by.node = c->cfg.node_name;
	by.via = "cli";
	memset(&a, 0, sizeof(a));
	a.event_type = "code.read";
	a.outcome = "allow";
	a.reason = "cli";
	a.meeting_id = id;
	a.code_ok = a.member_ok = -1;
	a.details_json = details;
	a.by = &by;
	r = db_audit_write(c->app.db, &a, err, errlen);
	free(details);
	return r;
}

static int
print_code(struct cli *c, const char *id)
{
	struct db_code dc;
	char code[GATE_CODE_BUF], err[512];
	int r;

	if (db_code_current(c->app.db, id, &dc, err, sizeof(err)) != 0 ||
	    code_read_record(c, id, &dc, err, sizeof(err)) != 0 ||
	    gate_codes_reveal(c->codes, &dc, code, sizeof(code), err,
	                      sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: reading the code: %s\n", err);
		sodium_memzero(&dc, sizeof(dc));
		return -1;
	}
	printf("code: %s (version %d)\n", code, dc.version);
	r = 0;
	sodium_memzero(code, sizeof(code));
	sodium_memzero(&dc, sizeof(dc));
	return r;
}

static int
read_code_arg(const char *arg, char *buf, size_t bufsize)
{
	if (strcmp(arg, "-") == 0)
		return read_line(buf, bufsize);
	if ((size_t)snprintf(buf, bufsize, "%s", arg) >= bufsize)
		return -1;
	return 0;
}

static int
meeting_create(struct cli *c, struct meeting_opts *o)
{
	struct gate_principal p;
	struct gate_field_err fe;
	struct db_meeting m;
	struct db_code dc;
	struct db_actor by = {.identity = "cli"};
	char custom[GATE_CODE_BUF], code[GATE_CODE_BUF], typed[200], err[1024],
	    id[37];
	json_t *in;
	int r = 1;

	memset(&m, 0, sizeof(m));
	memset(&p, 0, sizeof(p));
	snprintf(p.identity, sizeof(p.identity), "%s",
	         o->host ? o->host : "cli");
	p.roles = GATE_ROLE_ADMIN;
	snprintf(p.via, sizeof(p.via), "cli");
	custom[0] = code[0] = typed[0] = '\0';
	in = json_object();
	if (in == NULL)
		return 1;
	if (o->title)
		json_object_set_new(in, "title", json_string(o->title));
	if (o->host)
		json_object_set_new(in, "host_identity", json_string(o->host));
	if (json_array_size(o->groups) > 0)
		json_object_set(in, "allowed_groups", o->groups);
	if (json_array_size(o->invitees) > 0)
		json_object_set(in, "invitees", o->invitees);
	if (o->length)
		json_object_set_new(in, "code_length", json_integer(o->length));
	if (o->room)
		json_object_set_new(in, "platform_room", json_string(o->room));
	if (o->starts)
		json_object_set_new(in, "starts_at", json_string(o->starts));
	if (o->ends)
		json_object_set_new(in, "ends_at", json_string(o->ends));
	if (o->waiting_room)
		json_object_set_new(in, "waiting_room", json_true());
	if (o->have_rotate)
		json_object_set_new(in, "rotation_interval_seconds",
		                    json_integer(o->rotate_every));
	if (o->have_grace)
		json_object_set_new(in, "grace_period_seconds",
		                    json_integer(o->grace));
	if (o->code != NULL) {
		if (read_code_arg(o->code, typed, sizeof(typed)) != 0) {
			fprintf(stderr,
			        "roomgate: no code on standard input\n");
			goto out;
		}
		json_object_set_new(in, "code", json_string(typed));
	}
	gate_meeting_new_ids(&m);
	if (gate_meeting_from_json(c->codes, in, 1, &p, &m, custom,
	                           sizeof(custom), &fe) != 0) {
		fprintf(stderr, "roomgate: %s: %s (%s)\n", fe.field, fe.message,
		        fe.rule);
		json_decref(fe.extra);
		goto out;
	}
	if (gate_meeting_new_code(c->codes, m.id, m.code_length, custom, code,
	                          sizeof(code), &dc) != 0) {
		fprintf(stderr, "roomgate: no code could be made; check "
		                "[codes] rules\n");
		goto out;
	}
	if (db_meeting_create(c->app.db, &m, &dc, &by, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: meeting create: %s\n", err);
		goto out;
	}
	snprintf(id, sizeof(id), "%s", m.id);
	db_meeting_free(&m);
	if (db_meeting_get(c->app.db, id, &m, err, sizeof(err)) == 0) {
		json_t *j = gate_meeting_to_json(&c->cfg, &m);

		print_json(j);
		json_decref(j);
	}
	printf("code: %s (version 1)\n", code);
	r = 0;
out:
	sodium_memzero(custom, sizeof(custom));
	sodium_memzero(code, sizeof(code));
	sodium_memzero(typed, sizeof(typed));
	sodium_memzero(&dc, sizeof(dc));
	json_decref(in);
	db_meeting_free(&m);
	return r;
}

static int
meeting_rotate(struct cli *c, const char *id, struct meeting_opts *o)
{
	struct gate_field_err fe;
	struct db_meeting m;
	struct db_code dc;
	struct db_actor by = {.identity = "cli"};
	char custom[GATE_CODE_BUF], code[GATE_CODE_BUF], typed[200], err[1024];
	int r = 1, version = 0, len;

	memset(&dc, 0, sizeof(dc));
	custom[0] = code[0] = '\0';
	if (db_meeting_get(c->app.db, id, &m, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: meeting rotate: %s\n", err);
		return 1;
	}
	len = o->length ? (int)o->length : m.code_length;
	if (o->code != NULL) {
		if (read_code_arg(o->code, typed, sizeof(typed)) != 0) {
			fprintf(stderr,
			        "roomgate: no code on standard input\n");
			goto out;
		}
		if (gate_custom_code_check(c->codes, typed, len, custom,
		                           sizeof(custom), &fe) != 0) {
			fprintf(stderr, "roomgate: %s: %s (%s)\n", fe.field,
			        fe.message, fe.rule);
			json_decref(fe.extra);
			goto out;
		}
	}
	if (gate_meeting_new_code(c->codes, m.id, len, custom, code,
	                          sizeof(code), &dc) != 0 ||
	    db_code_rotate(c->app.db, m.id, &dc, (int)o->length,
	                   o->have_grace ? o->grace : m.grace_period_s,
	                   "rotate", 0, &by, &version, err, sizeof(err)) != 0) {
		fprintf(stderr, "roomgate: meeting rotate: %s\n", err);
		goto out;
	}
	printf("code: %s (version %d)\n", code, version);
	r = 0;
out:
	sodium_memzero(custom, sizeof(custom));
	sodium_memzero(code, sizeof(code));
	sodium_memzero(typed, sizeof(typed));
	sodium_memzero(&dc, sizeof(dc));
	db_meeting_free(&m);
	return r;
}

int
gate_cli_meeting(const char *cfgpath, int argc, char **argv, char **envp)
{
	static const struct option opts[] = {
	    {"title", required_argument, NULL, 't'},
	    {"group", required_argument, NULL, 'g'},
	    {"invitee", required_argument, NULL, 'i'},
	    {"host", required_argument, NULL, 'H'},
	    {"length", required_argument, NULL, 'l'},
	    {"code", required_argument, NULL, 'C'},
	    {"rotate-every", required_argument, NULL, 'R'},
	    {"grace", required_argument, NULL, 'G'},
	    {"room", required_argument, NULL, 'r'},
	    {"waiting-room", no_argument, NULL, 'w'},
	    {"starts", required_argument, NULL, 's'},
	    {"ends", required_argument, NULL, 'e'},
	    {"all", no_argument, NULL, 'a'},
	    {"with-code", no_argument, NULL, 'W'},
	    {"limit", required_argument, NULL, 'L'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct meeting_opts o;
	struct db_meeting m, *list = NULL;
	struct db_actor by = {.identity = "cli"};
	struct cli c;
	const char *sub, *id = NULL;
	char err[1024];
	size_t n = 0;
	int ch, r = EXIT_USAGE, nargs;

	memset(&o, 0, sizeof(o));
	memset(&m, 0, sizeof(m));
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
		                  strcmp(argv[1], "-h") == 0)) {
			fputs(usage_meeting, stdout);
			return 0;
		}
		fputs(usage_meeting, stderr);
		return EXIT_USAGE;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	o.groups = json_array();
	o.invitees = json_array();
	o.limit = 50;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			o.title = optarg;
			break;
		case 'g':
			json_array_append_new(o.groups, json_string(optarg));
			break;
		case 'i':
			json_array_append_new(o.invitees, json_string(optarg));
			break;
		case 'H':
			o.host = optarg;
			break;
		case 'l':
			if (parse_int(optarg, GATE_CODE_MIN_LEN,
			              GATE_CODE_MAX_LEN, &o.length) != 0) {
				fprintf(stderr, "roomgate: --length must be "
				                "6 to 12\n");
				goto out;
			}
			break;
		case 'C':
			o.code = optarg;
			break;
		case 'R':
			if (parse_duration(optarg, &o.rotate_every) != 0) {
				fprintf(stderr, "roomgate: --rotate-every: a "
				                "duration such as 7d or 12h\n");
				goto out;
			}
			o.have_rotate = 1;
			break;
		case 'G':
			if (parse_duration(optarg, &o.grace) != 0) {
				fprintf(stderr, "roomgate: --grace: a duration "
				                "such as 10m or 1h\n");
				goto out;
			}
			o.have_grace = 1;
			break;
		case 'r':
			o.room = optarg;
			break;
		case 'w':
			o.waiting_room = 1;
			break;
		case 's':
			o.starts = optarg;
			break;
		case 'e':
			o.ends = optarg;
			break;
		case 'a':
			o.all = 1;
			break;
		case 'W':
			o.show_code = 1;
			break;
		case 'L':
			if (parse_int(optarg, 1, 1000, &o.limit) != 0) {
				fprintf(stderr,
				        "roomgate: --limit: 1 to 1000\n");
				goto out;
			}
			break;
		case 'h':
			fputs(usage_meeting, stdout);
			r = 0;
			goto out;
		default:
			fputs(usage_meeting, stderr);
			goto out;
		}
	}
	nargs = argc - optind;
	if (strcmp(sub, "create") == 0 || strcmp(sub, "list") == 0) {
		if (nargs != 0) {
			fputs(usage_meeting, stderr);
			goto out;
		}
	} else if (strcmp(sub, "show") == 0 || strcmp(sub, "rotate") == 0 ||
	           strcmp(sub, "archive") == 0) {
		if (nargs != 1) {
			fputs(usage_meeting, stderr);
			goto out;
		}
		id = argv[optind];
	} else {
		fputs(usage_meeting, stderr);
		goto out;
	}
	r = 1;
	if (cli_open(&c, cfgpath, envp, 1) != 0)
		goto out;
	if (strcmp(sub, "create") == 0) {
		r = meeting_create(&c, &o);
	} else if (strcmp(sub, "rotate") == 0) {
		r = meeting_rotate(&c, id, &o);
	} else if (strcmp(sub, "show") == 0) {
		if (db_meeting_get(c.app.db, id, &m, err, sizeof(err)) != 0) {
			fprintf(stderr, "roomgate: meeting show: %s\n", err);
		} else {
			json_t *j = gate_meeting_to_json(&c.cfg, &m);

			print_json(j);
			json_decref(j);
			r = 0;
			if (o.show_code && print_code(&c, id) != 0)
				r = 1;
		}
	} else if (strcmp(sub, "archive") == 0) {
		if (db_meeting_archive(c.app.db, id, &by, err, sizeof(err)) !=
		    0) {
			fprintf(stderr, "roomgate: meeting archive: %s\n", err);
		} else {
			printf("archived %s\n", id);
			r = 0;
		}
	} else {
		if (db_meeting_list(c.app.db, o.host, o.all, NULL, (int)o.limit,
		                    &list, &n, err, sizeof(err)) != 0) {
			fprintf(stderr, "roomgate: meeting list: %s\n", err);
		} else {
			json_t *a = json_array();

			for (size_t i = 0; i < n; i++)
				json_array_append_new(
				    a, gate_meeting_to_json(&c.cfg, &list[i]));
			print_json(a);
			json_decref(a);
			for (size_t i = 0; i < n; i++)
				db_meeting_free(&list[i]);
			free(list);
			r = 0;
		}
	}
	cli_close(&c);
out:
	db_meeting_free(&m);
	json_decref(o.groups);
	json_decref(o.invitees);
	return r;
}
