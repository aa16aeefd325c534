/*
 * Integration: the compliance export, access review and failed-attempt
 * figures against a real PostgreSQL (a database of this test's own, so a
 * large export leaves nothing behind for the other tests) and a real
 * roomgate node: CSV quoting and formula neutralisation, JSON Lines, the
 * filters against SQL counts, the signed manifest checked offline with
 * `roomgate audit verify-export` (and a one-byte change caught), roles,
 * bad parameters, the CLI export, and a large export whose memory is
 * measured while it streams.
 *
 * RG_EXPORT_ROWS sets the size of the large export (default 100000; the
 * README's 1,000,000-record figure comes from tests/export-1m.sh).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"
#define DBNAME "rg_audit_export"
/* Meetings that only the seeded records name (no meeting row). */
#define M_EVIL "0e0e0e0e-0000-4000-8000-000000000001"
#define M_FILT "0e0e0e0e-0000-4000-8000-000000000002"
#define M_BULK "0e0e0e0e-0000-4000-8000-000000000003"

static struct {
	int port;
	char base[64];
	struct th_server s;
	PGconn *pg;
	char cfg_path[512];
	char key[512], pub[600];
	char db_env[1024];
	char compliance[64], host[64], other_host[64];
	char out[65536];
} T;

/* ---- helpers ------------------------------------------------------------ */

static void
pg_exec(const char *sql)
{
	PGresult *res = PQexec(T.pg, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(T.pg));
	PQclear(res);
}

static long
pg_count(const char *sql, const char *param)
{
	return ath_pg_count(T.pg, sql, param);
}

struct hdrs {
	char export_id[64];
	char content_type[128];
};

static size_t
hdr_cb(char *p, size_t sz, size_t n, void *ud)
{
	struct hdrs *h = ud;
	size_t len = sz * n;

	if (len > 22 && strncasecmp(p, "X-Roomgate-Export-Id:", 21) == 0)
		snprintf(h->export_id, sizeof(h->export_id), "%.36s",
		         p + 22);
	if (len > 14 && strncasecmp(p, "Content-Type: ", 14) == 0) {
		snprintf(h->content_type, sizeof(h->content_type), "%.*s",
		         (int)(len - 14), p + 14);
		h->content_type[strcspn(h->content_type, "\r\n")] = '\0';
	}
	return len;
}

/* RSS sampling while a transfer runs. */
struct rss {
	pid_t pid;
	long peak_kb;
	int samples;
};

static long
rss_kb(pid_t pid)
{
	char path[64], line[4096];
	const char *p;
	long kb = -1;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(line, 1, sizeof(line) - 1, f);
	line[n] = '\0';
	if ((p = strstr(line, "VmRSS:")) != NULL)
		kb = strtol(p + 6, NULL, 10);
	fclose(f);
	return kb;
}

static int
progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
            curl_off_t un)
{
	struct rss *r = ud;
	long kb = rss_kb(r->pid);

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	if (kb > r->peak_kb)
		r->peak_kb = kb;
	r->samples++;
	return 0;
}

/* GET base+path with a bearer token; the body goes to path_out (created).
 * Returns the status; *h gets the export id. rss (may be NULL) samples
 * the server's memory during the transfer. */
static long
get_file(const char *path, const char *token, const char *path_out,
         struct hdrs *h, struct rss *rss)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	char url[4096], auth[128];
	long status = -1;
	FILE *f = fopen(path_out, "wb");
	CURLcode rc;

	assert_non_null(c);
	assert_non_null(f);
	memset(h, 0, sizeof(*h));
	snprintf(url, sizeof(url), "%s%s", T.base, path);
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hl = curl_slist_append(hl, auth);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hdr_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
	if (rss != NULL) {
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, rss);
	}
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		printf("# transfer failed: %s\n", curl_easy_strerror(rc));
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	fclose(f);
	return status;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	if (len != NULL)
		*len = (size_t)n;
	return p;
}

static long
api(const char *token, const char *path, struct th_http *r)
{
	char url[4096], auth[128];
	const char *h[] = {auth, NULL};

	snprintf(url, sizeof(url), "%s%s", T.base, path);
	if (token == NULL)
		return th_http("GET", url, NULL, NULL, 0, r);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	return th_http("GET", url, h, NULL, 0, r);
}

/* Fetches the manifest of export id into file name (in RG_TEST_TMP). */
static const char *
save_manifest(const char *id, const char *name)
{
	static char path[512];
	struct th_http *r = calloc(1, sizeof(*r));
	char p[256];

	assert_non_null(r);
	snprintf(p, sizeof(p), "/v1/audit/exports/%s/manifest", id);
	if (api(T.compliance, p, r) != 200)
		fail_msg("manifest: %ld %s", r->status, r->body);
	snprintf(path, sizeof(path), "%s", th_write_file(name, r->body));
	free(r);
	return path;
}

static int
rg(const char *const *args, const char *const *env)
{
	const char *argv[16];
	size_t n = 0;

	argv[n++] = th_env("RG_TEST_BIN");
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return th_run_capture(argv, env, T.out, sizeof(T.out));
}

static int
verify_export(const char *body, const char *manifest)
{
	const char *args[] = {"audit", "verify-export", body, manifest,
	                      "--public-key", T.pub, NULL};

	return rg(args, NULL);
}

/* A tiny RFC 4180 reader: the cells of record `want` (0 = header) of a
 * CSV text, NUL-separated into out; returns the number of cells. */
static int
csv_record(const char *s, int want, char cells[][512], int maxcells)
{
	int rec = 0, cell = 0, q = 0;
	size_t k = 0;

	for (const char *p = s; *p != '\0'; p++) {
		if (q) {
			if (*p == '"' && p[1] == '"') {
				if (rec == want && k < 511)
					cells[cell][k++] = '"';
				p++;
			} else if (*p == '"') {
				q = 0;
			} else if (rec == want && k < 511) {
				cells[cell][k++] = *p;
			}
			continue;
		}
		if (*p == '"') {
			q = 1;
		} else if (*p == ',') {
			if (rec == want) {
				cells[cell][k] = '\0';
				if (cell + 1 >= maxcells)
					return -1;
			}
			cell++;
			k = 0;
		} else if (*p == '\r' && p[1] == '\n') {
			if (rec == want) {
				cells[cell][k] = '\0';
				return cell + 1;
			}
			rec++;
			cell = 0;
			k = 0;
			p++;
		} else if (rec == want && k < 511) {
			cells[cell][k++] = *p;
		}
	}
	return -1;
}

static int
col_index(const char *csv, const char *name)
{
	static char cells[32][512];
	int n = csv_record(csv, 0, cells, 32);

	for (int i = 0; i < n; i++)
		if (strcmp(cells[i], name) == 0)
			return i;
	fail_msg("no column %s in the CSV header", name);
	return -1;
}

/* ---- fixture ------------------------------------------------------------ */

static const char *
node_ini(int seal)
{
	static char ini[2048];

	snprintf(ini, sizeof(ini),
	         "[server]\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[audit]\nsigning_key_file = %s\n"
	         "checkpoint_interval_ms = %d\n",
	         th_env("RG_TEST_LDAP_BASE_DN"), T.key, seal ? 500 : 0);
	return ini;
}

static void
seed(void)
{
	/* Cells a spreadsheet would run as formulas, and cells that need
	 * quoting. */
	pg_exec("INSERT INTO audit_log (at, event_type, outcome, reason, "
	        "identity, idp, meeting_id, matched_group, source_addr, "
	        "forwarded_for, user_agent, request_id, node, code_ok, "
	        "member_ok, details) VALUES "
	        "('2026-01-10T10:00:00Z', 'admission', 'deny', 'invalid_code', "
	        "'=HYPERLINK(\"http://x.example\",\"y\")', 'https://idp', '" M_EVIL
	        "', NULL, '10.0.0.1', '-1+2, 10.0.0.1', '@SUM(A1)', 'r1', "
	        "'n1', false, true, '{\"note\": \"a,b \\\"q\\\"\\nline2\"}'), "
	        "('2026-01-10T10:00:01Z', 'admission', 'allow', 'admitted', "
	        "'+cmd', NULL, '" M_EVIL "', 'cn=a,dc=x', '10.0.0.2', NULL, "
	        "E'\\tTab', 'r2', 'n1', true, true, '{}'), "
	        "('2026-01-10T10:00:02Z', 'admission', 'deny', 'not_member', "
	        "E'\\rcr', NULL, '" M_EVIL "', NULL, NULL, NULL, "
	        "'plain, with comma', 'r3', 'n1', NULL, false, NULL)");
	/* 30 records an hour apart for the filters. */
	pg_exec("INSERT INTO audit_log (at, event_type, outcome, reason, "
	        "identity, meeting_id, request_id, node, code_ok, member_ok) "
	        "SELECT '2026-02-01T00:00:00Z'::timestamptz + i * interval '1 "
	        "hour', 'admission', (ARRAY['allow','deny','error'])[i % 3 + "
	        "1], 'r' || i, 'f-user' || (i % 4), '" M_FILT "', 'q' || i, "
	        "'n2', i % 2 = 0, true FROM generate_series(0, 29) i");
}

static int
setup(void **state)
{
	const char *app = th_env("RG_TEST_PG_URL");
	const char *slash = strrchr(app, '/');
	const char *kg[] = {"audit", "keygen", "--out", NULL, NULL};
	char url[1024];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	assert_int_equal(th_sh("psql -q -v ON_ERROR_STOP=1 '%s' -c 'DROP "
	                       "DATABASE IF EXISTS " DBNAME "' -c 'CREATE "
	                       "DATABASE " DBNAME " OWNER roomgate' >/dev/null",
	                       th_env("RG_TEST_PG_ADMIN_URL")),
	                 0);
	assert_non_null(slash);
	snprintf(url, sizeof(url), "%.*s/" DBNAME, (int)(slash - app), app);
	/* The node, the CLI and the tokens all use this database. */
	setenv("ROOMGATE_DATABASE_URL", url, 1);
	snprintf(T.key, sizeof(T.key), "%s/export-audit.key",
	         th_env("RG_TEST_TMP"));
	snprintf(T.pub, sizeof(T.pub), "%s.pub", T.key);
	unlink(T.key);
	unlink(T.pub);
	kg[3] = T.key;
	if (rg(kg, NULL) != 0)
		fail_msg("audit keygen: %s", T.out);
	T.port = th_free_port();
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("export.ini", node_ini(1)));
	th_server_start(&T.s, T.cfg_path, T.port);
	T.pg = PQconnectdb(url);
	assert_int_equal(PQstatus(T.pg), CONNECTION_OK);
	ath_token(T.cfg_path, "compliance", "exp-compliance", "auditor",
	          T.compliance);
	ath_token(T.cfg_path, "host", "exp-host", "exp-host", T.host);
	ath_token(T.cfg_path, "host", "exp-other", "exp-other", T.other_host);
	seed();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	th_server_stop(&T.s);
	PQfinish(T.pg);
	unsetenv("ROOMGATE_DATABASE_URL");
	(void)th_sh("psql -q '%s' -c 'DROP DATABASE IF EXISTS " DBNAME
	            "' >/dev/null 2>&1",
	            th_env("RG_TEST_PG_ADMIN_URL"));
	curl_global_cleanup();
	return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void
csv_is_rfc4180_with_formulas_neutralised_and_verifies(void **state)
{
	char body[512], cells[32][512], *csv, *mtext;
	const char *manifest;
	struct hdrs h;
	json_t *m;
	size_t len;
	int fd, ci, cu, cf, cd, cr;
	long want;

	(void)state;
	snprintf(body, sizeof(body), "%s/evil.csv", th_env("RG_TEST_TMP"));
	assert_int_equal(get_file("/v1/audit/export?format=csv&meeting=" M_EVIL,
	                          T.compliance, body, &h, NULL),
	                 200);
	assert_non_null(strstr(h.content_type, "text/csv"));
	assert_int_equal(strlen(h.export_id), 36);
	csv = slurp(body, &len);
	/* Header, three records, CRLF line ends. */
	assert_int_equal(strncmp(csv, "seq,at,event_type,outcome,reason,"
	                              "identity,",
	                         40),
	                 0);
	assert_non_null(strstr(csv, "\r\n"));
	ci = col_index(csv, "identity");
	cu = col_index(csv, "user_agent");
	cf = col_index(csv, "forwarded_for");
	cd = col_index(csv, "details");
	cr = col_index(csv, "source_addr");
	assert_true(csv_record(csv, 1, cells, 32) > cd);
	/* A formula cell is prefixed with ' (and quoted, holding quotes
	 * and a comma); the reader gets the text back exactly. */
	assert_string_equal(cells[ci],
	                    "'=HYPERLINK(\"http://x.example\",\"y\")");
	assert_non_null(strstr(csv, "\"'=HYPERLINK(\"\"http://x.example\"\","
	                            "\"\"y\"\")\""));
	assert_string_equal(cells[cu], "'@SUM(A1)");
	assert_string_equal(cells[cf], "'-1+2, 10.0.0.1");
	/* The address as the chain hashes it (inet text). */
	assert_string_equal(cells[cr], "10.0.0.1/32");
	/* JSON details with a comma, quotes and a newline, in one cell. */
	assert_non_null(strstr(cells[cd], "line2"));
	assert_non_null(strstr(cells[cd], "\\\"q\\\""));
	assert_true(csv_record(csv, 2, cells, 32) > cd);
	assert_string_equal(cells[ci], "'+cmd");
	assert_string_equal(cells[cu], "'\tTab");
	assert_true(csv_record(csv, 3, cells, 32) > cd);
	assert_string_equal(cells[ci], "'\rcr");
	assert_string_equal(cells[cu], "plain, with comma");
	assert_int_equal(csv_record(csv, 4, cells, 32), -1);
	want = pg_count("SELECT count(*) FROM audit_log WHERE meeting_id = "
	                "$1::uuid",
	                M_EVIL);
	assert_int_equal(want, 3);

	/* The manifest: count, hash, filters, key id; it verifies offline
	 * with only the public key. */
	manifest = save_manifest(h.export_id, "evil.manifest.json");
	mtext = slurp(manifest, NULL);
	m = json_loads(mtext, 0, NULL);
	assert_non_null(m);
	assert_int_equal(json_integer_value(json_object_get(m, "count")), 3);
	assert_int_equal(json_integer_value(json_object_get(m, "bytes")),
	                 (long)len);
	assert_string_equal(json_string_value(json_object_get(m, "export_id")),
	                    h.export_id);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(m, "filters"),
	                                      "meeting")),
	    M_EVIL);
	assert_string_equal(json_string_value(json_object_get(m, "format")),
	                    "csv");
	assert_int_equal(strlen(json_string_value(json_object_get(m, "key_id"))),
	                 16);
	assert_non_null(json_object_get(m, "last_checkpoint"));
	assert_int_equal(verify_export(body, manifest), 0);
	assert_non_null(strstr(T.out, "OK: 3 records"));
	/* The export is on record. */
	assert_int_equal(pg_count("SELECT count(*) FROM audit_log WHERE "
	                          "event_type = 'audit.export' AND "
	                          "details->>'export_id' = $1 AND identity = "
	                          "'auditor'",
	                          h.export_id),
	                 1);

	/* One byte changed in the body: refused, naming the hash. */
	fd = open(body, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "9", 1, (off_t)(len - 5)), 1);
	close(fd);
	assert_int_equal(verify_export(body, manifest), 1);
	assert_non_null(strstr(T.out, "FAILED"));
	assert_non_null(strstr(T.out, "SHA-256"));
	/* A manifest edited to match a shorter body: the signature fails. */
	json_object_set_new(m, "count", json_integer(2));
	free(mtext);
	mtext = json_dumps(m, JSON_INDENT(2));
	manifest = th_write_file("evil-edited.manifest.json", mtext);
	assert_int_equal(verify_export(body, manifest), 1);
	assert_non_null(strstr(T.out, "signature does not verify"));
	json_decref(m);
	free(mtext);
	free(csv);
}

static void
jsonl_filters_match_sql(void **state)
{
	char body[512], *text, *line, *nl;
	struct hdrs h;
	long want, n = 0, prev = 0;
	const char *manifest;

	(void)state;
	snprintf(body, sizeof(body), "%s/filt.jsonl", th_env("RG_TEST_TMP"));
	assert_int_equal(
	    get_file("/v1/audit/export?format=jsonl&meeting=" M_FILT
	             "&from=2026-02-01T05:00:00Z&to=2026-02-01T20:00:00Z"
	             "&outcome=deny",
	             T.compliance, body, &h, NULL),
	    200);
	want = pg_count("SELECT count(*) FROM audit_log WHERE meeting_id = "
	                "$1::uuid AND at >= '2026-02-01T05:00:00Z' AND at < "
	                "'2026-02-01T20:00:00Z' AND outcome = 'deny'",
	                M_FILT);
	assert_true(want >= 4);
	text = slurp(body, NULL);
	for (line = text; *line != '\0'; line = nl + 1) {
		json_t *o;
		const char *at;

		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		o = json_loads(line, 0, NULL);

		assert_non_null(o);
		assert_true(json_is_integer(json_object_get(o, "seq")));
		assert_true(json_integer_value(json_object_get(o, "seq")) > prev);
		prev = (long)json_integer_value(json_object_get(o, "seq"));
		assert_string_equal(
		    json_string_value(json_object_get(o, "outcome")), "deny");
		assert_string_equal(
		    json_string_value(json_object_get(o, "meeting_id")), M_FILT);
		assert_true(json_is_boolean(json_object_get(o, "code_ok")));
		at = json_string_value(json_object_get(o, "at"));
		assert_true(strcmp(at, "2026-02-01T05:00:00") >= 0 &&
		            strcmp(at, "2026-02-01T20:00:00") < 0);
		json_decref(o);
		n++;
	}
	assert_int_equal(n, want);
	free(text);
	manifest = save_manifest(h.export_id, "filt.manifest.json");
	assert_int_equal(verify_export(body, manifest), 0);

	/* identity, and "to" alone. */
	assert_int_equal(get_file("/v1/audit/export?format=jsonl&identity="
	                          "f-user1&to=2026-02-01T12:00:00Z",
	                          T.compliance, body, &h, NULL),
	                 200);
	want = pg_count("SELECT count(*) FROM audit_log WHERE identity = $1 "
	                "AND at < '2026-02-01T12:00:00Z'",
	                "f-user1");
	text = slurp(body, NULL);
	n = 0;
	for (char *p = text; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	assert_int_equal(n, want);
	assert_true(n == 3);
	free(text);
}

static void
bad_parameters_are_400_with_a_message(void **state)
{
	static const struct {
		const char *query, *says;
	} cases[] = {
	    {"format=xml", "csv or jsonl"},
	    {"from=yesterday", "RFC 3339"},
	    {"from=2026-02-30", "RFC 3339"},
	    {"to=2026-01-01T25:00:00Z", "RFC 3339"},
	    {"meeting=42", "UUID"},
	    {"outcome=maybe", "allow, deny, error or info"},
	    {"colour=blue", "unknown parameter"},
	    {"from=2026-03-01&to=2026-02-01", "earlier than"},
	};
	struct th_http *r = calloc(1, sizeof(*r));
	char path[256];

	(void)state;
	assert_non_null(r);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(path, sizeof(path), "/v1/audit/export?%s",
		         cases[i].query);
		assert_int_equal(api(T.compliance, path, r), 400);
		if (strstr(r->body, cases[i].says) == NULL)
			fail_msg("%s: %s", cases[i].query, r->body);
		assert_non_null(strstr(r->body, "invalid_parameter"));
	}
	assert_int_equal(api(T.compliance,
	                     "/v1/meetings/" M_EVIL "/attempts?interval=7s", r),
	                 400);
	free(r);
}

static void
roles_are_enforced(void **state)
{
	struct th_http *r = calloc(1, sizeof(*r));

	(void)state;
	assert_non_null(r);
	assert_int_equal(api(T.host, "/v1/audit/export", r), 403);
	assert_non_null(strstr(r->body, "compliance"));
	assert_int_equal(api(NULL, "/v1/audit/export", r), 401);
	assert_int_equal(api(T.host,
	                     "/v1/audit/exports/" M_EVIL "/manifest", r),
	                 403);
	assert_int_equal(api(T.compliance,
	                     "/v1/audit/exports/" M_EVIL "/manifest", r),
	                 404);
	assert_int_equal(api(T.host, "/v1/attempts", r), 403);
	assert_int_equal(api(T.compliance, "/v1/attempts", r), 200);
	free(r);
}

static void
cli_export_writes_body_and_manifest_that_verify(void **state)
{
	char out[512], man[600];
	const char *args[] = {"-c",        T.cfg_path, "audit",    "export",
	                      "--out",     out,        "--format", "jsonl",
	                      "--meeting", M_FILT,     NULL};
	json_t *m;
	char *text;

	(void)state;
	snprintf(out, sizeof(out), "%s/cli-export.jsonl", th_env("RG_TEST_TMP"));
	snprintf(man, sizeof(man), "%s.manifest.json", out);
	unlink(out);
	unlink(man);
	if (rg(args, NULL) != 0)
		fail_msg("audit export: %s", T.out);
	assert_non_null(strstr(T.out, "exported 30 records"));
	assert_non_null(strstr(T.out, "of 30 records"));
	assert_int_equal(verify_export(out, man), 0);
	assert_non_null(strstr(T.out, "OK: 30 records"));
	text = slurp(man, NULL);
	m = json_loads(text, 0, NULL);
	assert_non_null(m);
	assert_int_equal(json_integer_value(json_object_get(m, "count")), 30);
	assert_non_null(strstr(json_string_value(json_object_get(m,
	                                                         "created_by")),
	                       "cli:"));
	json_decref(m);
	free(text);
	/* Never overwrites. */
	assert_int_equal(rg(args, NULL), 1);
	assert_non_null(strstr(T.out, "never overwrite"));
}

static void
access_review_lists_who_had_access(void **state)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char link[80], code[16], id[40], sql[2048], path[256];
	json_t *o, *a;

	(void)state;
	assert_non_null(r);
	ath_new_meeting(T.base, T.host, GROUP, "Review", 0, link, code, id);
	/* Three admissions in force on 2026-03-05, one ended the day
	 * before, one made the day after. */
	snprintf(sql, sizeof(sql),
	         "INSERT INTO admissions (meeting_id, identity, matched_group, "
	         "state, created_at, admitted_at, ended_at, revoke_reason) "
	         "VALUES "
	         "('%s', 'ann', 'cn=g1', 'admitted', '2026-03-05T09:00Z', "
	         "'2026-03-05T09:00Z', NULL, NULL), "
	         "('%s', 'ben', 'cn=g2', 'revoked', '2026-03-04T09:00Z', "
	         "'2026-03-04T09:00Z', '2026-03-05T10:00Z', 'admin'), "
	         "('%s', 'ann', 'cn=g1', 'expired', '2026-03-05T12:00Z', "
	         "'2026-03-05T12:00Z', '2026-03-05T13:00Z', NULL), "
	         "('%s', '=cal', 'cn=g1', 'revoked', '2026-03-01T09:00Z', "
	         "'2026-03-01T09:00Z', '2026-03-04T23:00Z', 'admin'), "
	         "('%s', 'dan', 'cn=g2', 'admitted', '2026-03-06T09:00Z', "
	         "'2026-03-06T09:00Z', NULL, NULL)",
	         id, id, id, id, id);
	pg_exec(sql);
	snprintf(path, sizeof(path),
	         "/v1/meetings/%s/access-review?date=2026-03-05", id);
	assert_int_equal(api(T.host, path, r), 200);
	o = json_loads(r->body, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "population")),
	                 2);
	a = json_object_get(o, "admissions");
	assert_int_equal(json_array_size(a), 3);
	assert_string_equal(json_string_value(json_object_get(
	                        json_array_get(a, 2), "identity")),
	                    "ben");
	assert_int_equal(json_integer_value(json_object_get(
	                     json_object_get(o, "admissions_by_group"), "cn=g1")),
	                 2);
	json_decref(o);
	snprintf(path, sizeof(path),
	         "/v1/meetings/%s/access-review?date=2026-03-04&format=csv",
	         id);
	assert_int_equal(api(T.compliance, path, r), 200);
	assert_int_equal(strncmp(r->body, "identity,matched_group,", 23), 0);
	/* =cal had access on the 4th: neutralised. */
	assert_non_null(strstr(r->body, "\r\n'=cal,cn=g1,"));
	assert_non_null(strstr(r->body, "\r\nben,cn=g2,"));
	assert_int_equal(api(T.other_host, path, r), 403);
	snprintf(path, sizeof(path),
	         "/v1/meetings/%s/access-review?date=5.3.2026", id);
	assert_int_equal(api(T.host, path, r), 400);
	assert_non_null(strstr(r->body, "YYYY-MM-DD"));
	free(r);
}

static void
attempts_match_the_audit_log(void **state)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char link[80], code[16], id[40], sql[4096], path[512];
	json_t *o, *t, *b;
	long failed, allowed, sum = 0;

	(void)state;
	assert_non_null(r);
	ath_new_meeting(T.base, T.host, GROUP, "Attempts", 0, link, code, id);
	snprintf(sql, sizeof(sql),
	         "INSERT INTO audit_log (at, event_type, outcome, reason, "
	         "identity, meeting_id, source_addr) SELECT "
	         "'2026-04-01T10:00:00Z'::timestamptz + i * interval '7 "
	         "minutes', 'admission', CASE WHEN i %% 5 = 0 THEN 'allow' "
	         "ELSE 'deny' END, CASE WHEN i %% 5 = 0 THEN 'admitted' WHEN "
	         "i %% 5 = 1 THEN 'not_member' WHEN i > 20 THEN 'locked' ELSE "
	         "'invalid_code' END, 'p' || (i %% 6), '%s', ('10.9.0.' || (i "
	         "%% 3 + 1))::inet FROM generate_series(0, 39) i; "
	         "INSERT INTO audit_log (at, event_type, outcome, reason, "
	         "meeting_id, details) VALUES ('2026-04-01T12:05:00Z', "
	         "'meeting.probed', 'info', 'probing', '%s', "
	         "'{\"failed_identities\": 5}'); "
	         "UPDATE meetings SET probed_at = '2026-04-01T12:05:00Z' WHERE "
	         "id = '%s'",
	         id, id, id);
	pg_exec(sql);
	snprintf(path, sizeof(path),
	         "/v1/meetings/%s/attempts?from=2026-04-01T10:00:00Z&to="
	         "2026-04-01T16:00:00Z&interval=1h",
	         id);
	assert_int_equal(api(T.host, path, r), 200);
	o = json_loads(r->body, 0, NULL);
	assert_non_null(o);
	t = json_object_get(o, "totals");
	failed = pg_count("SELECT count(*) FROM audit_log WHERE meeting_id = "
	                  "$1::uuid AND event_type = 'admission' AND outcome "
	                  "<> 'allow'",
	                  id);
	allowed = pg_count("SELECT count(*) FROM audit_log WHERE meeting_id = "
	                   "$1::uuid AND event_type = 'admission' AND outcome "
	                   "= 'allow'",
	                   id);
	assert_int_equal(json_integer_value(json_object_get(t, "failed")),
	                 failed);
	assert_int_equal(json_integer_value(json_object_get(t, "allowed")),
	                 allowed);
	assert_int_equal(
	    json_integer_value(json_object_get(
	        json_object_get(t, "failed_by_reason"), "locked")),
	    pg_count("SELECT count(*) FROM audit_log WHERE meeting_id = "
	             "$1::uuid AND reason = 'locked'",
	             id));
	b = json_object_get(o, "buckets");
	assert_int_equal(json_array_size(b), 6);
	for (size_t i = 0; i < json_array_size(b); i++)
		sum += (long)json_integer_value(
		    json_object_get(json_array_get(b, i), "failed"));
	assert_int_equal(sum, failed);
	/* 10:00-11:00 holds i = 0..8 (9 attempts). */
	assert_int_equal(json_integer_value(json_object_get(
	                     json_array_get(b, 0), "attempts")),
	                 9);
	assert_true(json_is_true(
	    json_object_get(json_array_get(b, 2), "probing_flagged")));
	assert_true(json_is_true(json_object_get(
	    json_object_get(o, "probing"), "flagged")));
	assert_true(json_integer_value(json_object_get(json_array_get(b, 3),
	                                               "locked")) > 0);
	assert_true(json_array_size(json_object_get(o, "lockouts")) > 0);
	assert_int_equal(json_array_size(json_object_get(o,
	                                                 "failures_by_source")),
	                 3);
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_array_get(json_object_get(o, "failures_by_identity"), 0),
	        "identity")),
	    "p1");
	json_decref(o);
	assert_int_equal(api(T.other_host, path, r), 403);
	assert_int_equal(api(T.compliance, path, r), 200);
	free(r);
}

/* The large export: memory sampled while it streams; it verifies. */
static void
large_export_keeps_memory_flat(void **state)
{
	const char *env_rows = getenv("RG_EXPORT_ROWS");
	long rows = env_rows ? strtol(env_rows, NULL, 10) : 100000;
	char sql[2048], body[512], warm[512], asan[1024];
	const char *manifest;
	struct th_server big;
	struct rss rs;
	struct hdrs h;
	struct timespec t0, t1;
	long base_kb, warm_peak;
	double secs;
	int port;

	(void)state;
	assert_true(rows >= 1000);
	/* The other node seals; this one must not chew on the records
	 * while its memory is measured. */
	th_server_stop(&T.s);
	snprintf(sql, sizeof(sql),
	         "INSERT INTO audit_log (at, event_type, outcome, reason, "
	         "identity, meeting_id, source_addr, user_agent, request_id, "
	         "node, code_ok, member_ok, details) SELECT "
	         "'2025-06-01T00:00:00Z'::timestamptz + i * interval '10 ms', "
	         "'admission', CASE WHEN i %% 3 = 0 THEN 'allow' ELSE 'deny' "
	         "END, CASE WHEN i %% 3 = 0 THEN 'admitted' ELSE "
	         "'invalid_code' END, 'bulk' || (i %% 1000), '" M_BULK "', "
	         "'10.1.0.1', 'Mozilla/5.0 (X11; Linux x86_64) bulk', md5(i::"
	         "text), 'bulk-node', i %% 3 = 0, true, jsonb_build_object("
	         "'i', i) FROM generate_series(1, %ld) i",
	         rows);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pg_exec(sql);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# %ld records inserted in %.1f s\n", rows,
	       (double)(t1.tv_sec - t0.tv_sec) +
	           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	/* ASan keeps freed blocks in a quarantine (256 MB by default) that
	 * would read as growth; a small one measures the export itself. */
	snprintf(asan, sizeof(asan), "%s:quarantine_size_mb=4",
	         getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "");
	setenv("ASAN_OPTIONS", asan, 1);
	port = th_free_port();
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", port);
	th_server_start(&big,
	                th_config("export-big.ini", node_ini(0)), port);
	/* Warm up: a small export, then the baseline. */
	snprintf(warm, sizeof(warm), "%s/warm.csv", th_env("RG_TEST_TMP"));
	memset(&rs, 0, sizeof(rs));
	rs.pid = big.pid;
	assert_int_equal(get_file("/v1/audit/export?meeting=" M_EVIL,
	                          T.compliance, warm, &h, &rs),
	                 200);
	warm_peak = rs.peak_kb;
	base_kb = rss_kb(big.pid);
	memset(&rs, 0, sizeof(rs));
	rs.pid = big.pid;
	snprintf(body, sizeof(body), "%s/bulk.csv", th_env("RG_TEST_TMP"));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(get_file("/v1/audit/export?format=csv&meeting=" M_BULK,
	                          T.compliance, body, &h, &rs),
	                 200);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# export of %ld records: %.1f s (%.0f records/s, roomgate "
	       "%s); roomgate RSS %ld kB before, peak %ld kB during (%d "
	       "samples; warm-up peak %ld kB)\n",
	       rows, secs, (double)rows / secs,
	       strstr(th_env("RG_TEST_BIN"), "rel/roomgate") ? "release build"
	                                              : "test build",
	       base_kb, rs.peak_kb, rs.samples, warm_peak);
	assert_true(rs.samples > 10);
	/* Flat: a batch of 1000 records and a 64 KiB block, not the
	 * export. 1,000,000 records are ~150 MB of CSV. */
	assert_true(rs.peak_kb - base_kb < 48 * 1024);
	manifest = save_manifest(h.export_id, "bulk.manifest.json");
	assert_int_equal(verify_export(body, manifest), 0);
	{
		char want[64];

		snprintf(want, sizeof(want), "OK: %ld records", rows);
		assert_non_null(strstr(T.out, want));
	}
	th_server_stop(&big);
	unlink(body);
	/* The other tests' node again (teardown stops it). */
	T.port = th_free_port();
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	th_server_start(&T.s, T.cfg_path, T.port);
}

/* Opens an export on a socket with a small receive buffer and reads only
 * its first bytes, so the node's stream waits on this client. Returns the
 * socket; first holds the start of the answer. */
static int
stalled_export(int port, const char *token, char *first, size_t firstlen)
{
	struct sockaddr_in a;
	char req[512];
	int fd, small = 4096, n;
	ssize_t got;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small,
	                            sizeof(small)),
	                 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	n = snprintf(req, sizeof(req),
	             "GET /v1/audit/export?format=csv&meeting=" M_BULK
	             " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
	             "%s\r\n\r\n",
	             token);
	assert_int_equal(write(fd, req, (size_t)n), n);
	got = read(fd, first, firstlen - 1);
	assert_true(got > 0);
	first[got] = '\0';
	return fd;
}

/* Security review F4: each export holds a connection and a snapshot, so a
 * node streams at most [audit] max_exports at once (429 beyond, with a
 * message and Retry-After) and cuts one off after [audit] export_timeout
 * however slowly its client reads: no terminating chunk, so the client
 * sees an incomplete transfer, and the slot is free again. Runs after
 * large_export_keeps_memory_flat, whose records it exports. */
static void
exports_are_capped_and_cut_off(void **state)
{
	char ini[2400], first[4096], buf[65536], tail[8] = {0};
	struct th_server cap;
	struct th_http r;
	struct timespec t0, t1;
	long total = 0, status = 0;
	ssize_t n;
	int port, fd;

	(void)state;
	th_server_stop(&T.s);
	snprintf(ini, sizeof(ini), "%smax_exports = 1\nexport_timeout = 10\n",
	         node_ini(0));
	port = th_free_port();
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", port);
	th_server_start(&cap, th_config("export-cap.ini", ini), port);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fd = stalled_export(port, T.compliance, first, sizeof(first));
	assert_non_null(strstr(first, "HTTP/1.1 200"));
	/* The one slot is taken: the next export waits its turn. */
	assert_int_equal(api(T.compliance, "/v1/audit/export?meeting=" M_EVIL,
	                     &r),
	                 429);
	assert_non_null(strstr(r.body, "too_many_exports"));
	assert_non_null(strstr(r.body, "max_exports"));
	assert_non_null(th_http_header(&r, "Retry-After", buf, 64));
	/* Other endpoints are not held up. */
	assert_int_equal(api(NULL, "/healthz", &r), 200);
	/* Past the timeout, reading on ends the stream short. */
	sleep(11);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		total += n;
		if (n >= 5)
			memcpy(tail, buf + n - 5, 5);
	}
	close(fd);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# stalled export cut off after %ld s, %ld bytes read\n",
	       (long)(t1.tv_sec - t0.tv_sec), total);
	/* A whole chunked body ends with the zero-length chunk; this one
	 * does not (15 MB of records would take far longer than 10 s at
	 * the pace of a 4 KB receive buffer read once). */
	assert_true(memcmp(tail, "0\r\n\r\n", 5) != 0);
	/* The slot is free again once the node has let go of it. */
	for (int i = 0; i < 50; i++) {
		status = api(T.compliance, "/v1/audit/export?meeting=" M_EVIL,
		             &r);
		if (status != 429)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(status, 200);
	th_server_stop(&cap);
	{
		char *log = slurp(cap.log_path, NULL);

		assert_non_null(strstr(log, "audit_export_timeout"));
		free(log);
	}
	T.port = th_free_port();
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.port);
	th_server_start(&T.s, T.cfg_path, T.port);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        csv_is_rfc4180_with_formulas_neutralised_and_verifies),
	    cmocka_unit_test(jsonl_filters_match_sql),
	    cmocka_unit_test(bad_parameters_are_400_with_a_message),
	    cmocka_unit_test(roles_are_enforced),
	    cmocka_unit_test(cli_export_writes_body_and_manifest_that_verify),
	    cmocka_unit_test(access_review_lists_who_had_access),
	    cmocka_unit_test(attempts_match_the_audit_log),
	    cmocka_unit_test(large_export_keeps_memory_flat),
	    cmocka_unit_test(exports_are_capped_and_cut_off),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
