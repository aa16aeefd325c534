/*
 * db/conn.c -- connection parameters, connecting, and the error messages
 * people see when the database is not there or says no.
 *
 * Messages never contain the password: libpq's connection errors do not,
 * and its conninfo parse errors (which quote the input) are produced from a
 * redacted copy of the string.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db/db_int.h"

#define DB_CONNINFO_MAX 8192 /* longer is a configuration mistake */
#define DB_DEFAULT_CONNECT_TIMEOUT_S 10

void
db_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n < 0)
		err[0] = '\0';
	else if ((size_t)n >= errlen && errlen > 4)
		memcpy(err + errlen - 4, "...", 4); /* show it was cut */
}

/* ---- redaction -------------------------------------------------------- */

struct obuf {
	char *p;
	size_t len, cap;
	int overflow;
};

static void
ob_put(struct obuf *o, const char *s, size_t n)
{
	if (o->overflow || n >= o->cap - o->len) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
ob_puts(struct obuf *o, const char *s)
{
	ob_put(o, s, strlen(s));
}

static int
is_secret_key(const char *k, size_t n)
{
	return (n == 8 && memcmp(k, "password", 8) == 0) ||
	       (n == 11 && memcmp(k, "sslpassword", 11) == 0);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A URI query key, percent-decoded as libpq does before matching it. */
static int
is_secret_uri_key(const char *k, size_t n)
{
	char dec[32];
	size_t i, j = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)k[i];

		if (c == '%' && i + 2 < n && hexval(k[i + 1]) >= 0 &&
		    hexval(k[i + 2]) >= 0) {
			c = hexval(k[i + 1]) * 16 + hexval(k[i + 2]);
			i += 2;
		}
		if (j >= sizeof(dec))
			return 0;
		dec[j++] = (char)c;
	}
	return is_secret_key(dec, j);
}

/* Mirrors conninfo_uri_parse_options() in libpq's fe-connect.c. */
static void
redact_uri(const char *s, size_t prefix_len, struct obuf *o)
{
	const char *start = s + prefix_len, *p, *q, *colon;

	ob_put(o, s, prefix_len);
	for (q = start; *q != '\0' && *q != '@' && *q != '/'; q++)
		;
	p = start;
	if (*q == '@') {
		colon = memchr(start, ':', (size_t)(q - start));
		if (colon != NULL) {
			ob_put(o, start, (size_t)(colon + 1 - start));
			ob_puts(o, "REDACTED");
		} else {
			ob_put(o, start, (size_t)(q - start));
		}
		p = q;
	}
	q = strchr(p, '?');
	if (q == NULL) {
		ob_puts(o, p);
		return;
	}
	ob_put(o, p, (size_t)(q + 1 - p));
	p = q + 1;
	for (;;) {
		const char *amp = strchr(p, '&');
		const char *end = amp != NULL ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(end - p));

		if (eq != NULL && is_secret_uri_key(p, (size_t)(eq - p))) {
			ob_put(o, p, (size_t)(eq + 1 - p));
			ob_puts(o, "REDACTED");
		} else {
			ob_put(o, p, (size_t)(end - p));
		}
		if (amp == NULL)
			break;
		ob_puts(o, "&");
		p = amp + 1;
	}
}

/* Mirrors conninfo_parse() in libpq's fe-connect.c. */
static void
redact_kv(const char *s, struct obuf *o)
{
	const char *p = s, *k, *v;
	size_t klen;
	int secret;

	while (*p != '\0') {
		while (isspace((unsigned char)*p))
			ob_put(o, p++, 1);
		if (*p == '\0')
			break;
		k = p;
		while (*p != '\0' && *p != '=' && !isspace((unsigned char)*p))
			p++;
		klen = (size_t)(p - k);
		ob_put(o, k, klen);
		while (isspace((unsigned char)*p))
			ob_put(o, p++, 1);
		if (*p != '=') {
			/* libpq stops here too ("missing =") and quotes only
			 * the keyword; keep the rest as typed. */
			ob_puts(o, p);
			return;
		}
		ob_put(o, p++, 1);
		while (isspace((unsigned char)*p))
			ob_put(o, p++, 1);
		secret = is_secret_key(k, klen);
		v = p;
		if (*p == '\'') {
			p++;
			for (;;) {
				if (*p == '\0') {
					/* unterminated: everything after is
					 * the value */
					if (secret)
						ob_puts(o, "REDACTED");
					else
						ob_puts(o, v);
					return;
				}
				if (*p == '\\') {
					p++;
					if (*p != '\0')
						p++;
					continue;
				}
				if (*p++ == '\'')
					break;
			}
		} else {
			while (*p != '\0' && !isspace((unsigned char)*p)) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				p++;
			}
		}
		if (secret)
			ob_puts(o, "REDACTED");
		else
			ob_put(o, v, (size_t)(p - v));
	}
}

int
db_conninfo_redact(const char *conninfo, char *out, size_t outlen)
{
	struct obuf o = {out, 0, outlen, 0};

	if (out == NULL || outlen == 0)
		return -1;
	out[0] = '\0';
	if (strncmp(conninfo, "postgresql://", 13) == 0)
		redact_uri(conninfo, 13, &o);
	else if (strncmp(conninfo, "postgres://", 11) == 0)
		redact_uri(conninfo, 11, &o);
	else
		redact_kv(conninfo, &o);
	if (o.overflow) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

/* ---- messages --------------------------------------------------------- */

/* The first line of s (at most outlen-1 bytes), trailing blanks dropped. */
static void
first_line(const char *s, char *out, size_t outlen)
{
	size_t n = strcspn(s, "\n");

	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, s, n);
	while (n > 0 && isspace((unsigned char)out[n - 1]))
		n--;
	out[n] = '\0';
}

static void
describe_where(const char *host, const char *port, char *out, size_t outlen)
{
	int n;

	if (port == NULL || *port == '\0')
		port = "5432";
	if (host == NULL || *host == '\0')
		n = snprintf(out, outlen, "the default address, port %s", port);
	else if (host[0] == '/' || host[0] == '@')
		n = snprintf(out, outlen, "%s (local socket, port %s)", host,
		             port);
	else if (strchr(host, ':') != NULL)
		n = snprintf(out, outlen, "[%s]:%s", host, port);
	else
		n = snprintf(out, outlen, "%s:%s", host, port);
	if (n < 0 || (size_t)n >= outlen)
		snprintf(out, outlen, "the configured address");
}

enum { K_UNREACH, K_REFUSED, K_NOTREADY };

static const struct {
	const char *needle; /* in libpq's text, case-insensitive */
	int kind;
	const char *say;  /* replaces libpq's words; NULL: keep them */
	const char *hint; /* what to do; NULL: none */
} connect_causes[] = {
    {"Connection refused", K_UNREACH, "connection refused",
     "is PostgreSQL running?"},
    {"No such file or directory", K_UNREACH, "no server socket there",
     "is PostgreSQL running?"},
    {"timeout expired", K_UNREACH, NULL,
     "check the host, the port and any firewall in between"},
    {"could not translate host name", K_UNREACH, NULL,
     "check the host name in the database URL"},
    {"Network is unreachable", K_UNREACH, NULL,
     "check the host and the network"},
    {"No route to host", K_UNREACH, NULL, "check the host and the network"},
    {"password authentication failed", K_REFUSED, NULL,
     "check the user name and password in the database URL"},
    {"no password supplied", K_REFUSED,
     "the server asks for a password and none was given",
     "put it in the database URL or a ~/.pgpass file"},
    {"pg_hba.conf", K_REFUSED, NULL,
     "allow this client in the server's pg_hba.conf"},
    {"does not exist", K_REFUSED, NULL, "create it or fix the database URL"},
    {"too many clients", K_REFUSED, NULL,
     "lower the pool sizes or raise max_connections on the server"},
    {"connection slots are reserved", K_REFUSED, NULL,
     "lower the pool sizes or raise max_connections on the server"},
    {"starting up", K_NOTREADY, NULL, "retry in a moment"},
    {"shutting down", K_NOTREADY, NULL, "retry in a moment"},
    {"recovery mode", K_NOTREADY, NULL, "retry in a moment"},
};

void
db_connect_errmsg(const char *host, const char *port, const char *pqmsg,
                  int connect_timeout_s, char *err, size_t errlen)
{
	static const char *const lead[] = {
	    [K_UNREACH] = "database unreachable at",
	    [K_REFUSED] = "the database at",
	    [K_NOTREADY] = "database not ready at",
	};
	char where[300], reason[512], said[128];
	const char *p, *last = NULL, *say, *hint = NULL;
	size_t i;
	int kind = K_UNREACH;

	if (pqmsg == NULL)
		pqmsg = "";
	describe_where(host, port, where, sizeof(where));
	/* libpq: 'connection to server at "h", port p failed: WHY' (one such
	 * line per address tried); the last one is the final word. */
	for (p = pqmsg; (p = strstr(p, "failed: ")) != NULL; p += 8)
		last = p + 8;
	first_line(last != NULL ? last : pqmsg, reason, sizeof(reason));
	p = reason;
	if (strncmp(p, "FATAL:", 6) == 0 || strncmp(p, "ERROR:", 6) == 0)
		for (p += 6; *p == ' '; p++)
			;
	if (*p == '\0')
		p = "no reason given by libpq";
	say = p;
	for (i = 0; i < sizeof(connect_causes) / sizeof(connect_causes[0]);
	     i++) {
		if (strcasestr(last != NULL ? last : pqmsg,
		               connect_causes[i].needle) == NULL)
			continue;
		kind = connect_causes[i].kind;
		hint = connect_causes[i].hint;
		if (connect_causes[i].say != NULL)
			say = connect_causes[i].say;
		if (strcmp(connect_causes[i].needle, "timeout expired") == 0) {
			snprintf(said, sizeof(said), "no answer within %d s",
			         connect_timeout_s);
			say = said;
		}
		break;
	}
	if (kind == K_REFUSED)
		db_seterr(err, errlen, "%s %s refused the connection: %s%s%s",
		          lead[kind], where, say, hint ? " — " : "",
		          hint ? hint : "");
	else
		db_seterr(err, errlen, "%s %s: %s%s%s", lead[kind], where, say,
		          hint ? " — " : "", hint ? hint : "");
}

int
db_sql_line_of(const char *sql, size_t sql_len, long pos)
{
	size_t i;
	long ch = 0;
	int line = 1;

	if (pos < 1)
		return 0;
	for (i = 0; i < sql_len; i++) {
		/* count characters, not UTF-8 continuation bytes */
		if (((unsigned char)sql[i] & 0xC0) != 0x80 && ++ch == pos)
			return line;
		if (sql[i] == '\n')
			line++;
	}
	return 0;
}

int
db_result_err(PGconn *pg, const PGresult *res, const char *what, char *err,
              size_t errlen)
{
	char line[512], where[300];
	const char *primary, *detail, *hint;

	if (pg == NULL || PQstatus(pg) == CONNECTION_BAD) {
		first_line(pg != NULL ? PQerrorMessage(pg) : "", line,
		           sizeof(line));
		/* The server's own FATAL line (e.g. "terminating connection
		 * due to administrator command") says most; libpq's
		 * follow-up "server closed the connection" less. */
		if (res != NULL && (primary = PQresultErrorField(
		                        res, PG_DIAG_MESSAGE_PRIMARY)) != NULL)
			first_line(primary, line, sizeof(line));
		describe_where(pg != NULL ? PQhost(pg) : NULL,
		               pg != NULL ? PQport(pg) : NULL, where,
		               sizeof(where));
		db_seterr(err, errlen,
		          "%s: lost the connection to the database at %s: %s "
		          "— PostgreSQL may have restarted; retry",
		          what, where, line[0] ? line : "connection closed");
		return DB_EUNAVAIL;
	}
	if (res == NULL) {
		first_line(PQerrorMessage(pg), line, sizeof(line));
		db_seterr(err, errlen, "%s: no result from the database: %s",
		          what, line[0] ? line : "out of memory");
		return DB_EQUERY;
	}
	primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	if (primary == NULL) {
		first_line(PQresultErrorMessage(res), line, sizeof(line));
		if (line[0] == '\0')
			snprintf(line, sizeof(line), "unexpected result (%s)",
			         PQresStatus(PQresultStatus(res)));
		primary = line;
	}
	db_seterr(err, errlen, "%s: %s%s%s%s%s%s%s", what, primary,
	          detail ? " (DETAIL: " : "", detail ? detail : "",
	          detail ? ")" : "", hint ? " (HINT: " : "", hint ? hint : "",
	          hint ? ")" : "");
	return DB_EQUERY;
}

/* ---- parameters ------------------------------------------------------- */

static void
wipe_free(char *s)
{
	if (s != NULL) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void
db_params_free(struct db_params *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; p->keys != NULL && p->keys[i] != NULL; i++) {
		free(p->keys[i]);
		wipe_free(p->vals[i]);
	}
	free(p->keys);
	free(p->vals);
	p->keys = NULL;
	p->vals = NULL;
}

static void
options_free(PQconninfoOption *opts)
{
	PQconninfoOption *o;

	if (opts == NULL)
		return;
	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL)
			sodium_memzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
}

static const char *
option_val(const PQconninfoOption *opts, const char *key)
{
	for (; opts->keyword != NULL; opts++)
		if (strcmp(opts->keyword, key) == 0)
			return opts->val;
	return NULL;
}

/* Appends key=val (copies) at index *n. */
static int
params_add(struct db_params *p, size_t *n, const char *key, const char *val)
{
	p->keys[*n] = strdup(key);
	p->vals[*n] = strdup(val);
	if (p->keys[*n] == NULL || p->vals[*n] == NULL) {
		free(p->keys[*n]);
		wipe_free(p->vals[*n]);
		p->keys[*n] = NULL;
		p->vals[*n] = NULL;
		return DB_ENOMEM;
	}
	(*n)++;
	return 0;
}

/* The message for a conninfo libpq refused, without the password. */
static void
parse_errmsg(const char *conninfo, char *err, size_t errlen)
{
	char red[DB_CONNINFO_MAX + 256], line[512];
	PQconninfoOption *opts = NULL;
	char *rerr = NULL;

	if (db_conninfo_redact(conninfo, red, sizeof(red)) == 0) {
		opts = PQconninfoParse(red, &rerr);
		if (opts == NULL && rerr != NULL) {
			first_line(rerr, line, sizeof(line));
			db_seterr(err, errlen,
			          "invalid database connection string: %s "
			          "— see the libpq connection string syntax",
			          line);
			goto out;
		}
	}
	/* Only the password part is malformed (the redacted copy parses),
	 * or we could not redact: say so without quoting anything. */
	db_seterr(err, errlen,
	          "invalid database connection string: the password part is "
	          "malformed — percent-encode special characters in a URL "
	          "(%%40 for @, %%25 for %%) or quote the value in key=value "
	          "form");
out:
	options_free(opts);
	PQfreemem(rerr);
	sodium_memzero(red, sizeof(red));
}

int
db_params_build(const char *conninfo, int connect_timeout_s,
                int statement_timeout_ms, const char *appname,
                struct db_params *out, char *err, size_t errlen)
{
	PQconninfoOption *opts = NULL, *o;
	struct db_params p = {NULL, NULL, 0};
	char num[32], *perr = NULL, *options = NULL;
	const char *v;
	size_t n = 0, count = 0, olen;
	int r = DB_EINVAL, cto;

	memset(out, 0, sizeof(*out));
	if (conninfo == NULL) {
		db_seterr(err, errlen, "no database connection string given");
		goto out;
	}
	if (strlen(conninfo) > DB_CONNINFO_MAX) {
		db_seterr(err, errlen,
		          "database connection string longer than %d bytes",
		          DB_CONNINFO_MAX);
		goto out;
	}
	if (statement_timeout_ms < 0 || connect_timeout_s < 0) {
		db_seterr(err, errlen, "negative database timeout");
		goto out;
	}
	if ((opts = PQconninfoParse(conninfo, &perr)) == NULL) {
		if (perr == NULL) {
			r = DB_ENOMEM;
			db_seterr(err, errlen, "out of memory");
		} else {
			parse_errmsg(conninfo, err, errlen);
		}
		goto out;
	}

	cto = connect_timeout_s;
	if (cto == 0 && (v = option_val(opts, "connect_timeout")) != NULL) {
		char *end;
		long l = strtol(v, &end, 10);

		if (end != v && *end == '\0' && l >= 1 && l <= 3600)
			cto = (int)l;
	}
	if (cto == 0)
		cto = DB_DEFAULT_CONNECT_TIMEOUT_S;

	for (o = opts; o->keyword != NULL; o++)
		count++;
	r = DB_ENOMEM;
	p.keys = calloc(count + 5, sizeof(*p.keys));
	p.vals = calloc(count + 5, sizeof(*p.vals));
	if (p.keys == NULL || p.vals == NULL)
		goto nomem;
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL ||
		    strcmp(o->keyword, "connect_timeout") == 0 ||
		    strcmp(o->keyword, "options") == 0)
			continue;
		if (params_add(&p, &n, o->keyword, o->val) != 0)
			goto nomem;
	}
	snprintf(num, sizeof(num), "%d", cto);
	if (params_add(&p, &n, "connect_timeout", num) != 0)
		goto nomem;
	if (appname != NULL && option_val(opts, "application_name") == NULL &&
	    params_add(&p, &n, "application_name", appname) != 0)
		goto nomem;
	if (option_val(opts, "client_encoding") == NULL &&
	    params_add(&p, &n, "client_encoding", "UTF8") != 0)
		goto nomem;
	/* The server parses options like a command line; ours has no
	 * spaces in values, so plain concatenation is safe. */
	v = option_val(opts, "options");
	olen = (v != NULL ? strlen(v) : 0) + 64;
	if ((options = malloc(olen)) == NULL)
		goto nomem;
	if (statement_timeout_ms > 0)
		snprintf(options, olen, "%s%s-c statement_timeout=%d",
		         v != NULL ? v : "", v != NULL && *v ? " " : "",
		         statement_timeout_ms);
	else
		snprintf(options, olen, "%s", v != NULL ? v : "");
	if (options[0] != '\0' && params_add(&p, &n, "options", options) != 0)
		goto nomem;

	p.connect_timeout_s = cto;
	*out = p;
	memset(&p, 0, sizeof(p));
	r = 0;
	goto out;
nomem:
	db_seterr(err, errlen, "out of memory");
out:
	free(options);
	db_params_free(&p);
	options_free(opts);
	PQfreemem(perr);
	return r;
}

/* Notices (e.g. "relation already exists, skipping") are not errors and
 * libpq would print them on stderr by default. */
static void
quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int
db_connect(const struct db_params *p, PGconn **out, char *err, size_t errlen)
{
	PGconn *pg;

	*out = NULL;
	pg = PQconnectdbParams((const char *const *)p->keys,
	                       (const char *const *)p->vals, 0);
	if (pg == NULL) {
		db_seterr(err, errlen,
		          "out of memory connecting to the "
		          "database");
		return DB_ENOMEM;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		db_connect_errmsg(PQhost(pg), PQport(pg), PQerrorMessage(pg),
		                  p->connect_timeout_s, err, errlen);
		PQfinish(pg);
		return DB_EUNAVAIL;
	}
	PQsetNoticeProcessor(pg, quiet_notice, NULL);
	*out = pg;
	return 0;
}
