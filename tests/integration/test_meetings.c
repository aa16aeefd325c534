/*
 * Integration: meetings, codes and API tokens through a real `roomgate
 * serve` (two of them for the scheduled-rotation race) against the
 * harness's PostgreSQL. Tokens come from the real CLI. Whether a code
 * works is asked of gate_code_verify() against the same database and key
 * file, the function admission will call.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "server/meetings.h"
#include "tests/lib/th.h"

static struct th_server srv, srv2;
static char base[64], base2[64];
static const char *cfg_path;
static char tok_alice[64], tok_bob[64], tok_admin[64], tok_comp[64];
static struct gate_app app; /* for gate_code_verify() */
static struct gate_keys *keys;
static struct gate_config cfg;
static PGconn *pg;

/* ---- helpers -------------------------------------------------------- */

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void
make_token(const char *role, const char *name, const char *identity,
           char out[64])
{
	char buf[4096];
	const char *argv[14];
	const char *p;
	int i = 0;

	argv[i++] = th_env("RG_TEST_BIN");
	argv[i++] = "-c";
	argv[i++] = cfg_path;
	argv[i++] = "token";
	argv[i++] = "create";
	argv[i++] = "--role";
	argv[i++] = role;
	argv[i++] = "--name";
	argv[i++] = name;
	if (identity != NULL) {
		argv[i++] = "--identity";
		argv[i++] = identity;
	}
	argv[i] = NULL;
	if (th_run_capture(argv, NULL, buf, sizeof(buf)) != 0)
		fail_msg("token create failed: %s", buf);
	p = strstr(buf, "rgt_");
	assert_non_null(p);
	assert_true(strlen(p) >= 47);
	memcpy(out, p, 47);
	out[47] = '\0';
}

/* Runs the CLI with the test config; args end with NULL. */
static int
cli(char *out, size_t outlen, ...)
{
	const char *argv[16] = {th_env("RG_TEST_BIN"), "-c", cfg_path};
	const char *a;
	va_list ap;
	int n = 3;

	va_start(ap, outlen);
	while ((a = va_arg(ap, const char *)) != NULL && n < 15)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return th_run_capture(argv, NULL, out, outlen);
}

static struct th_http *
call(const char *base_url, const char *method, const char *path,
     const char *token, const char *body)
{
	static struct th_http r;
	char url[512], auth[128];
	const char *h[3] = {NULL, NULL, NULL};
	int n = 0;

	snprintf(url, sizeof(url), "%s%s", base_url, path);
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h[n++] = auth;
	}
	if (body != NULL)
		h[n++] = "Content-Type: application/json";
	th_http(method, url, h, body, body ? strlen(body) : 0, &r);
	return &r;
}

static struct th_http *
api(const char *method, const char *path, const char *token, const char *body)
{
	return call(base, method, path, token, body);
}

static json_t *
json_of(const struct th_http *r)
{
	json_error_t e;
	json_t *o = json_loadb(r->body, r->body_len, 0, &e);

	if (o == NULL)
		fail_msg("not JSON (%s): %.300s", e.text, r->body);
	return o;
}

static void
expect(const struct th_http *r, long status)
{
	if (r->status != status)
		fail_msg("expected HTTP %ld, got %ld: %.600s", status,
		         r->status, r->body);
}

/* Creates a meeting as token; returns its JSON (caller decrefs). */
static json_t *
create(const char *token, const char *body)
{
	struct th_http *r = api("POST", "/v1/meetings", token, body);

	expect(r, 201);
	return json_of(r);
}

static const char *
sget(json_t *o, const char *path1, const char *path2)
{
	json_t *v = json_object_get(o, path1);

	if (path2 != NULL)
		v = json_object_get(v, path2);
	assert_non_null(json_string_value(v));
	return json_string_value(v);
}

static int
verify_with(struct gate_app *a, const char *meeting_id, const char *code)
{
	char err[512];
	int r = gate_code_verify(a, meeting_id, code, strlen(code), NULL, err,
	                         sizeof(err));

	if (r < 0)
		fail_msg("verify: %s", err);
	return r;
}

static int
verify(const char *meeting_id, const char *code)
{
	char err[512];
	int r = gate_code_verify(&app, meeting_id, code, strlen(code), NULL,
	                         err, sizeof(err));

	if (r < 0)
		fail_msg("verify: %s", err);
	return r;
}

static void
sql(const char *q, const char *p1)
{
	const char *v[1] = {p1};
	PGresult *res = PQexecParams(pg, q, p1 ? 1 : 0, NULL, v, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("sql: %s", PQerrorMessage(pg));
	PQclear(res);
}

static const char group_body[] =
    "\"allowed_groups\": [\"cn=staff,ou=groups,dc=example,dc=com\"]";

/* ---- fixture ---------------------------------------------------------- */

static int
setup(void **state)
{
	struct db_config dbc;
	char err[1024];
	char *env[] = {NULL};

	(void)state;
	cfg_path =
	    th_config("meetings.ini", "[database]\nmigrate_on_start = true\n"
	                              "[codes]\nrotation_check_interval = 1\n");
	th_server_start(&srv, cfg_path, th_free_port());
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", srv.port);

	make_token("host", "alice-scheduler", "alice@example.com", tok_alice);
	make_token("host", "bob-scheduler", "bob@example.com", tok_bob);
	make_token("admin", "ops", NULL, tok_admin);
	make_token("compliance", "audit-team", NULL, tok_comp);

	assert_int_equal(
	    gate_config_load(&cfg, cfg_path, env, err, sizeof(err)), 0);
	assert_int_equal(gate_keys_load(cfg.keys_file, &keys, err, sizeof(err)),
	                 0);
	assert_int_equal(
	    gate_codes_open(&cfg, keys, &app.codes, err, sizeof(err)), 0);
	app.cfg = &cfg;
	app.keys = keys;
	memset(&dbc, 0, sizeof(dbc));
	dbc.conninfo = cfg.db_url;
	dbc.pool_size = 2;
	dbc.connect_timeout_s = 5;
	dbc.statement_timeout_ms = 5000;
	dbc.acquire_timeout_ms = 5000;
	if (db_pool_open(&dbc, &app.db, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	pg = PQconnectdb(th_env("RG_TEST_PG_URL"));
	assert_int_equal(PQstatus(pg), CONNECTION_OK);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	th_server_stop(&srv);
	th_server_stop(&srv2);
	db_pool_close(app.db);
	gate_codes_close(app.codes);
	gate_keys_free(keys);
	gate_config_free(&cfg);
	PQfinish(pg);
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

static void
tokens_are_required_and_revocable(void **state)
{
	char out[4096], tmp[64], hdr[128];
	struct th_http *r;
	json_t *o;

	(void)state;
	expect(api("GET", "/v1/meetings", NULL, NULL), 401);
	r = api("GET", "/v1/meetings", NULL, NULL);
	o = json_of(r);
	assert_string_equal(sget(o, "error", "code"), "unauthenticated");
	json_decref(o);
	assert_non_null(
	    th_http_header(r, "WWW-Authenticate", hdr, sizeof(hdr)));
	assert_non_null(strstr(hdr, "Bearer"));
	expect(api("GET", "/v1/meetings", "not-a-token", NULL), 401);
	/* Well-formed but unknown. */
	expect(api("GET", "/v1/meetings",
	           "rgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL),
	       401);

	make_token("host", "short-lived", NULL, tmp);
	expect(api("GET", "/v1/meetings", tmp, NULL), 200);
	assert_int_equal(cli(out, sizeof(out), "token", "revoke", "short-lived",
	                     (const char *)NULL),
	                 0);
	expect(api("GET", "/v1/meetings", tmp, NULL), 401);
	/* Listed as revoked; the token itself is never shown again. */
	assert_int_equal(
	    cli(out, sizeof(out), "token", "list", "--all", (const char *)NULL),
	    0);
	assert_non_null(strstr(out, "short-lived"));
	assert_non_null(strstr(out, "revoked"));
	assert_null(strstr(out, tmp));
	/* Revoking it again finds no live token. */
	assert_int_not_equal(cli(out, sizeof(out), "token", "revoke",
	                         "short-lived", (const char *)NULL),
	                     0);
}

static void
create_read_update_archive(void **state)
{
	char body[1024], path[128], out[8192];
	const char *id, *code;
	json_t *m, *o;

	(void)state;
	snprintf(body, sizeof(body),
	         "{\"title\": \"Quarterly review\", %s, \"invitees\": "
	         "[\"carol@example.com\"], \"waiting_room\": true, "
	         "\"starts_at\": \"2027-01-05T14:00:00Z\", \"ends_at\": "
	         "\"2027-01-05T15:00:00+01:00\", \"grace_period_seconds\": 60}",
	         group_body);
	expect(api("POST", "/v1/meetings", tok_alice, body),
	       400); /* ends<start */
	snprintf(body, sizeof(body),
	         "{\"title\": \"Quarterly review\", %s, \"invitees\": "
	         "[\"carol@example.com\"], \"waiting_room\": true, "
	         "\"starts_at\": \"2027-01-05T14:00:00Z\", \"ends_at\": "
	         "\"2027-01-05T16:00:00+01:00\", \"grace_period_seconds\": 60}",
	         group_body);
	m = create(tok_alice, body);
	id = sget(m, "id", NULL);
	code = sget(m, "code", "code");
	assert_int_equal(strlen(code), 8);
	assert_string_equal(sget(m, "host_identity", NULL),
	                    "alice@example.com");
	assert_string_equal(sget(m, "ends_at", NULL), "2027-01-05T15:00:00Z");
	assert_int_equal(strlen(sget(m, "link_id", NULL)), 43);
	assert_null(strstr(sget(m, "link_id", NULL), code));
	assert_int_equal(json_integer_value(json_object_get(
	                     json_object_get(m, "code"), "version")),
	                 1);
	assert_int_equal(verify(id, code), 1);
	assert_int_equal(verify(id, "00000000"), 0);

	snprintf(path, sizeof(path), "/v1/meetings/%s", id);
	/* owner, admin and compliance read it; another host may not */
	expect(api("GET", path, tok_alice, NULL), 200);
	expect(api("GET", path, tok_admin, NULL), 200);
	expect(api("GET", path, tok_comp, NULL), 200);
	expect(api("GET", path, tok_bob, NULL), 403);
	expect(api("PATCH", path, tok_bob, "{\"title\": \"mine now\"}"), 403);
	expect(api("DELETE", path, tok_bob, NULL), 403);
	expect(api("PATCH", path, tok_comp, "{\"title\": \"x\"}"), 403);
	snprintf(path, sizeof(path), "/v1/meetings/%s/code", id);
	expect(api("GET", path, tok_bob, NULL), 403);
	expect(api("GET", path, tok_comp, NULL), 403);
	o = json_of(api("GET", path, tok_alice, NULL));
	assert_string_equal(sget(o, "code", NULL), code);
	json_decref(o);
	snprintf(path, sizeof(path), "/v1/meetings/%s/code:rotate", id);
	expect(api("POST", path, tok_bob, NULL), 403);
	expect(api("POST", "/v1/meetings", tok_comp, body), 403);
	expect(api("GET", "/v1/meetings/00000000-0000-4000-8000-000000000000",
	           tok_admin, NULL),
	       404);
	expect(api("GET", "/v1/meetings/not-a-uuid", tok_admin, NULL), 404);

	/* update: only the fields sent change */
	snprintf(path, sizeof(path), "/v1/meetings/%s", id);
	o = json_of(api("PATCH", path, tok_alice,
	                "{\"title\": \"Quarterly review (moved)\", "
	                "\"waiting_room\": false, \"invitees\": []}"));
	assert_string_equal(sget(o, "title", NULL), "Quarterly review (moved)");
	assert_true(json_is_false(json_object_get(o, "waiting_room")));
	assert_int_equal(json_array_size(json_object_get(o, "invitees")), 0);
	assert_int_equal(json_array_size(json_object_get(o, "allowed_groups")),
	                 1);
	json_decref(o);
	/* admin may change any meeting */
	expect(api("PATCH", path, tok_admin, "{\"grace_period_seconds\": 0}"),
	       200);

	/* the CLI shows the same meeting and code */
	assert_int_equal(cli(out, sizeof(out), "meeting", "show", id,
	                     "--with-code", (const char *)NULL),
	                 0);
	assert_non_null(strstr(out, "Quarterly review (moved)"));
	assert_non_null(strstr(out, code));

	/* archive: the code stops working, changes are refused */
	o = json_of(api("DELETE", path, tok_alice, NULL));
	assert_non_null(json_string_value(json_object_get(o, "archived_at")));
	json_decref(o);
	assert_int_equal(verify(id, code), 0);
	expect(api("PATCH", path, tok_alice, "{\"title\": \"again\"}"), 409);
	snprintf(path, sizeof(path), "/v1/meetings/%s/code", id);
	expect(api("GET", path, tok_alice, NULL), 404);
	json_decref(m);
}

static void
bad_input_names_field_and_rule(void **state)
{
	static const struct {
		const char *body, *field, *rule;
	} cases[] = {
	    {"[1]", "body", "json"},
	    {"{\"title\": ", "body", "json"},
	    {"{\"allowed_groups\": [\"cn=a,dc=x\"]}", "title", "required"},
	    {"{\"title\": \"\", \"allowed_groups\": [\"cn=a,dc=x\"]}", "title",
	     "length"},
	    {"{\"title\": 7, \"allowed_groups\": [\"cn=a,dc=x\"]}", "title",
	     "type"},
	    {"{\"title\": \"t\"}", "allowed_groups", "required"},
	    {"{\"title\": \"t\", \"allowed_groups\": []}", "allowed_groups",
	     "required"},
	    {"{\"title\": \"t\", \"allowed_groups\": \"cn=a\"}",
	     "allowed_groups", "type"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"staff\"]}",
	     "allowed_groups", "dn"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\", "
	     "\"cn=a,dc=x\"]}",
	     "allowed_groups", "duplicate"},
	    {"{\"title\": \"t\", \"invitees\": [\"\"]}", "invitees", "format"},
	    {"{\"title\": \"t\", \"invitees\": [3]}", "invitees", "type"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"waiting_room\": \"yes\"}",
	     "waiting_room", "type"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"starts_at\": \"tomorrow\"}",
	     "starts_at", "format"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"ends_at\": \"2027-02-30T10:00:00Z\"}",
	     "ends_at", "format"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"starts_at\": \"2027-01-01T10:00:00Z\", \"ends_at\": "
	     "\"2027-01-01T09:00:00Z\"}",
	     "ends_at", "after_start"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"code_length\": 5}",
	     "code_length", "range"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"code_length\": \"8\"}",
	     "code_length", "type"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"rotation_interval_seconds\": 10}",
	     "rotation_interval_seconds", "range"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"grace_period_seconds\": -1}",
	     "grace_period_seconds", "range"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"platform_room\": \"a room\"}",
	     "platform_room", "format"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"colour\": \"blue\"}",
	     "colour", "unknown_field"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"code\": \"12345678\"}",
	     "code", "code_sequential"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"code\": \"25121999\"}",
	     "code", "code_date"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"code\": \"7046192\"}",
	     "code", "code_length"},
	    {"{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	     "\"code\": \"7046x928\"}",
	     "code", "code_format"},
	};
	struct th_http *r;
	json_t *o, *e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = api("POST", "/v1/meetings", tok_alice, cases[i].body);
		if (r->status != 400)
			fail_msg("case %zu (%s): status %ld: %s", i,
			         cases[i].body, r->status, r->body);
		o = json_of(r);
		e = json_object_get(o, "error");
		assert_string_equal(sget(e, "code", NULL), "invalid_field");
		if (strcmp(sget(e, "field", NULL), cases[i].field) != 0 ||
		    strcmp(sget(e, "rule", NULL), cases[i].rule) != 0)
			fail_msg("case %zu: got %s/%s, want %s/%s: %s", i,
			         sget(e, "field", NULL), sget(e, "rule", NULL),
			         cases[i].field, cases[i].rule,
			         sget(e, "message", NULL));
		assert_true(strlen(sget(e, "message", NULL)) > 10);
		json_decref(o);
	}
	/* The policy message is the one a person reads. */
	o = json_of(
	    api("POST", "/v1/meetings", tok_alice,
	        "{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	        "\"code\": \"12345678\"}"));
	assert_non_null(
	    strstr(sget(o, "error", "message"), "run of consecutive digits"));
	assert_true(json_array_size(json_object_get(json_object_get(o, "error"),
	                                            "violations")) >= 1);
	json_decref(o);
	/* A host may not create meetings for someone else. */
	expect(api("POST", "/v1/meetings", tok_alice,
	           "{\"title\": \"t\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	           "\"host_identity\": \"bob@example.com\"}"),
	       403);
	/* PATCH rules */
	o = create(tok_alice, "{\"title\": \"p\", \"invitees\": [\"d@x\"]}");
	{
		char path[128];

		snprintf(path, sizeof(path), "/v1/meetings/%s",
		         sget(o, "id", NULL));
		expect(api("PATCH", path, tok_alice, "{\"code_length\": 9}"),
		       400);
		expect(
		    api("PATCH", path, tok_alice, "{\"code\": \"70461928\"}"),
		    400);
		expect(api("PATCH", path, tok_alice, "{\"invitees\": []}"),
		       400);
		expect(
		    api("PATCH", path, tok_alice, "{\"host_identity\": \"x\"}"),
		    400);
	}
	json_decref(o);
}

static void
custom_codes_and_platform_rooms(void **state)
{
	char path[128];
	json_t *m, *o;

	(void)state;
	/* Separators and full-width digits normalize; leading zero kept. */
	m = create(
	    tok_alice,
	    "{\"title\": \"custom\", \"allowed_groups\": "
	    "[\"cn=a,dc=x\"], \"code_length\": 10, \"platform_room\": "
	    "\"room-custom-1\", \"code\": \"0491-736 2.8\xEF\xBC\x95\"}");
	assert_string_equal(sget(m, "code", "code"), "0491736285");
	assert_string_equal(sget(m, "code", "source"), "custom");
	assert_int_equal(verify(sget(m, "id", NULL), "0491736285"), 1);
	/* Same live room twice: 409 naming the field. */
	o = json_of(
	    api("POST", "/v1/meetings", tok_bob,
	        "{\"title\": \"dup\", \"allowed_groups\": "
	        "[\"cn=a,dc=x\"], \"platform_room\": \"room-custom-1\"}"));
	assert_string_equal(sget(o, "error", "field"), "platform_room");
	json_decref(o);
	expect(api("POST", "/v1/meetings", tok_bob,
	           "{\"title\": \"dup\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	           "\"platform_room\": \"room-custom-1\"}"),
	       409);
	/* Jitsi compares rooms lowercased: another case of the same room is
	 * the same room (else a host could mint tokens for someone else's
	 * meeting), and a room is stored lower case. */
	expect(api("POST", "/v1/meetings", tok_bob,
	           "{\"title\": \"dup\", \"allowed_groups\": [\"cn=a,dc=x\"], "
	           "\"platform_room\": \"ROOM-Custom-1\"}"),
	       409);
	o = create(tok_bob, "{\"title\": \"upper\", \"allowed_groups\": "
	                    "[\"cn=a,dc=x\"], \"platform_room\": "
	                    "\"Room-Custom-Upper\"}");
	assert_string_equal(sget(o, "platform_room", NULL),
	                    "room-custom-upper");
	json_decref(o);
	/* Archiving frees the room. */
	snprintf(path, sizeof(path), "/v1/meetings/%s", sget(m, "id", NULL));
	expect(api("DELETE", path, tok_alice, NULL), 200);
	o = create(tok_bob, "{\"title\": \"dup\", \"allowed_groups\": "
	                    "[\"cn=a,dc=x\"], \"platform_room\": "
	                    "\"room-custom-1\"}");
	json_decref(o);
	json_decref(m);
}

static void
rotation_with_and_without_grace(void **state)
{
	char path[128], old[16], mid[16];
	const char *id;
	json_t *m, *o;

	(void)state;
	m = create(tok_alice, "{\"title\": \"rotating\", \"allowed_groups\": "
	                      "[\"cn=a,dc=x\"], \"grace_period_seconds\": 2}");
	id = sget(m, "id", NULL);
	snprintf(old, sizeof(old), "%s", sget(m, "code", "code"));
	snprintf(path, sizeof(path), "/v1/meetings/%s/code:rotate", id);

	/* Generated rotation, meeting's grace (2 s). */
	o = json_of(api("POST", path, tok_alice, NULL));
	assert_int_equal(json_integer_value(json_object_get(o, "version")), 2);
	snprintf(mid, sizeof(mid), "%s", sget(o, "code", NULL));
	assert_string_not_equal(mid, old);
	assert_non_null(
	    json_string_value(json_object_get(o, "previous_valid_until")));
	json_decref(o);
	assert_int_equal(verify(id, mid), 1);
	assert_int_equal(verify(id, old), 1); /* in grace */
	sleep_ms(3000);
	assert_int_equal(verify(id, old), 0); /* grace over */
	assert_int_equal(verify(id, mid), 1);

	/* Custom rotation, no grace, new length: old stops at once. */
	o = json_of(api("POST", path, tok_alice,
	                "{\"code\": \"830 571 946\", \"code_length\": 9, "
	                "\"grace_period_seconds\": 0}"));
	assert_string_equal(sget(o, "code", NULL), "830571946");
	assert_int_equal(json_integer_value(json_object_get(o, "version")), 3);
	assert_true(json_is_null(json_object_get(o, "previous_valid_until")));
	json_decref(o);
	assert_int_equal(verify(id, mid), 0);
	assert_int_equal(verify(id, "830571946"), 1);
	/* A weak custom code is refused with its rule; nothing rotates. */
	o = json_of(api("POST", path, tok_alice, "{\"code\": \"147258369\"}"));
	assert_string_equal(sget(o, "error", "rule"), "code_keypad");
	json_decref(o);
	expect(api("POST", path, tok_alice, "{\"code_length\": 20}"), 400);
	expect(api("POST", path, tok_alice, "{\"bogus\": 1}"), 400);
	snprintf(path, sizeof(path), "/v1/meetings/%s/code", id);
	o = json_of(api("GET", path, tok_alice, NULL));
	assert_int_equal(json_integer_value(json_object_get(o, "version")), 3);
	assert_string_equal(sget(o, "code", NULL), "830571946");
	json_decref(o);
	/* GET meeting reflects the new length. */
	snprintf(path, sizeof(path), "/v1/meetings/%s", id);
	o = json_of(api("GET", path, tok_alice, NULL));
	assert_int_equal(json_integer_value(json_object_get(o, "code_length")),
	                 9);
	json_decref(o);
	json_decref(m);
}

/* Scheduled rotation with two nodes: every due meeting rotates exactly
 * once, and each rotation is recorded without the code. */
static void
scheduled_rotation_once_across_nodes(void **state)
{
	enum { N = 12 };
	char ids[N][37], codes[N][16], path[128];
	json_t *m, *o;
	PGresult *res;
	int done = 0;

	(void)state;
	th_server_start(&srv2, cfg_path, th_free_port());
	snprintf(base2, sizeof(base2), "http://127.0.0.1:%d", srv2.port);
	for (int i = 0; i < N; i++) {
		m = create(tok_alice,
		           "{\"title\": \"weekly\", \"allowed_groups\": "
		           "[\"cn=a,dc=x\"], \"rotation_interval_seconds\": "
		           "604800, \"grace_period_seconds\": 600}");
		snprintf(ids[i], sizeof(ids[i]), "%s", sget(m, "id", NULL));
		snprintf(codes[i], sizeof(codes[i]), "%s",
		         sget(m, "code", "code"));
		assert_non_null(
		    json_string_value(json_object_get(m, "code_rotates_at")));
		json_decref(m);
	}
	/* Make them due now. */
	for (int i = 0; i < N; i++)
		sql("UPDATE meetings SET code_rotates_at = now() - interval "
		    "'1 second' WHERE id = $1::uuid",
		    ids[i]);
	for (int t = 0; t < 100 && done < N; t++) {
		sleep_ms(200);
		done = 0;
		for (int i = 0; i < N; i++) {
			snprintf(path, sizeof(path), "/v1/meetings/%s", ids[i]);
			o = json_of(call(t % 2 ? base2 : base, "GET", path,
			                 tok_alice, NULL));
			if (json_integer_value(
			        json_object_get(o, "code_version")) >= 2)
				done++;
			json_decref(o);
		}
	}
	assert_int_equal(done, N);
	sleep_ms(1500); /* a double rotation would show up by now */
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "/v1/meetings/%s", ids[i]);
		o = json_of(api("GET", path, tok_alice, NULL));
		assert_int_equal(
		    json_integer_value(json_object_get(o, "code_version")), 2);
		json_decref(o);
		/* previous code still works within the grace period */
		assert_int_equal(verify(ids[i], codes[i]), 1);
	}
	res = PQexecParams(pg,
	                   "SELECT count(*), count(DISTINCT meeting_id), "
	                   "string_agg(coalesce(details::text, ''), ' ') FROM "
	                   "audit_log WHERE event_type = 'code.rotate' AND "
	                   "details->>'reason' = 'scheduled'",
	                   0, NULL, NULL, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	for (int i = 0; i < N; i++)
		assert_null(strstr(PQgetvalue(res, 0, 2), codes[i]));
	PQclear(res);
	th_server_stop(&srv2);
}

static void
list_is_paged_and_scoped(void **state)
{
	char tok[64], path[256], next[64] = "";
	int seen = 0, pages = 0;
	json_t *o;

	(void)state;
	make_token("host", "pager", "pager@example.com", tok);
	for (int i = 0; i < 5; i++)
		json_decref(create(tok,
		                   "{\"title\": \"paged\", "
		                   "\"allowed_groups\": [\"cn=a,dc=x\"]}"));
	do {
		json_t *a;

		snprintf(path, sizeof(path), "/v1/meetings?limit=2%s%s",
		         next[0] ? "&after=" : "", next);
		o = json_of(api("GET", path, tok, NULL));
		a = json_object_get(o, "meetings");
		for (size_t i = 0; i < json_array_size(a); i++)
			assert_string_equal(
			    sget(json_array_get(a, i), "host_identity", NULL),
			    "pager@example.com");
		seen += (int)json_array_size(a);
		next[0] = '\0';
		if (json_is_string(json_object_get(o, "next")))
			snprintf(next, sizeof(next), "%s",
			         sget(o, "next", NULL));
		json_decref(o);
		pages++;
	} while (next[0] != '\0' && pages < 10);
	assert_int_equal(seen, 5);
	assert_int_equal(pages, 3);
	/* admin sees more than one host: more than pager's five. One page
	 * of six, not of 200: the database is shared by the whole run, and
	 * 200 meetings of other tests (some with many long group DNs) can
	 * pass th_http's 64 KiB body. */
	o = json_of(api("GET", "/v1/meetings?limit=6", tok_admin, NULL));
	assert_int_equal(json_array_size(json_object_get(o, "meetings")), 6);
	json_decref(o);
	expect(api("GET", "/v1/meetings?limit=0", tok, NULL), 400);
	expect(api("GET", "/v1/meetings?after=xyz", tok, NULL), 400);
	expect(api("GET", "/v1/meetings?include_archived=maybe", tok, NULL),
	       400);
}

/* A database dump holds no code in any recoverable form without the key
 * file: search the dump for each code's digits. */
static void
dump_holds_no_code(void **state)
{
	char codes[6][16], cmd_out[256], *dump;
	const char *argv[2] = {NULL, NULL};
	char dump_path[600];
	FILE *f;
	long len;
	json_t *m;

	(void)state;
	(void)argv;
	for (int i = 0; i < 6; i++) {
		m = create(tok_alice, "{\"title\": \"dumped meeting\", "
		                      "\"allowed_groups\": [\"cn=a,dc=x\"], "
		                      "\"code_length\": 12}");
		snprintf(codes[i], sizeof(codes[i]), "%s",
		         sget(m, "code", "code"));
		json_decref(m);
	}
	snprintf(dump_path, sizeof(dump_path), "%s/dump.sql",
	         th_env("RG_TEST_TMP"));
	if (th_sh("\"$(pg_config --bindir)/pg_dump\" --no-owner -d '%s' -f "
	          "'%s' 2>'%s.err'",
	          th_env("RG_TEST_PG_URL"), dump_path, dump_path) != 0)
		fail_msg("pg_dump failed; see %s.err", dump_path);
	f = fopen(dump_path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	dump = malloc((size_t)len + 1);
	assert_non_null(dump);
	assert_int_equal(fread(dump, 1, (size_t)len, f), (size_t)len);
	dump[len] = '\0';
	fclose(f);
	/* The dump is real: it has the meetings and their code rows. */
	assert_non_null(strstr(dump, "dumped meeting"));
	assert_non_null(strstr(dump, "meeting_codes"));
	for (int i = 0; i < 6; i++) {
		if (strstr(dump, codes[i]) != NULL)
			fail_msg("code %d found in the dump", i);
	}
	free(dump);
	/* Nor in the server's log. */
	f = fopen(srv.log_path, "r");
	assert_non_null(f);
	while (fgets(cmd_out, sizeof(cmd_out), f) != NULL)
		for (int i = 0; i < 6; i++)
			assert_null(strstr(cmd_out, codes[i]));
	fclose(f);
}

static void
database_down_is_503(void **state)
{
	struct th_http *r;

	(void)state;
	th_pg_stop();
	r = api("GET", "/v1/meetings", tok_alice, NULL);
	th_pg_start();
	expect(r, 503);
	/* back without a restart of roomgate */
	for (int i = 0; i < 50; i++) {
		if (api("GET", "/v1/meetings", tok_alice, NULL)->status == 200)
			return;
		sleep_ms(200);
	}
	fail_msg("the API did not recover after PostgreSQL came back");
}

static void
cli_meeting_commands(void **state)
{
	char out[16384], id[40], *p;
	const char *argv[16];
	int i = 0;

	(void)state;
	argv[i++] = th_env("RG_TEST_BIN");
	argv[i++] = "-c";
	argv[i++] = cfg_path;
	argv[i++] = "meeting";
	argv[i++] = "create";
	argv[i++] = "--title";
	argv[i++] = "From the CLI";
	argv[i++] = "--group";
	argv[i++] = "cn=staff,ou=groups,dc=example,dc=com";
	argv[i++] = "--host";
	argv[i++] = "dora@example.com";
	argv[i++] = "--rotate-every";
	argv[i++] = "7d";
	argv[i] = NULL;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("meeting create: %s", out);
	p = strstr(out, "\"id\": \"");
	assert_non_null(p);
	snprintf(id, sizeof(id), "%.36s", p + 7);
	assert_non_null(strstr(out, "\"rotation_interval_seconds\": 604800"));
	assert_non_null(strstr(out, "code: "));
	assert_int_equal(
	    cli(out, sizeof(out), "meeting", "rotate", id, (const char *)NULL),
	    0);
	assert_non_null(strstr(out, "(version 2)"));
	/* Showing the code from the CLI is on record (code.read, reason
	 * cli, the version; never the code). */
	assert_int_equal(cli(out, sizeof(out), "meeting", "show", "--with-code",
	                     id, (const char *)NULL),
	                 0);
	assert_non_null(strstr(out, "code: "));
	{
		const char *v[1] = {id};
		PGresult *res = PQexecParams(
		    pg,
		    "SELECT count(*) FROM audit_log WHERE event_type = "
		    "'code.read' AND reason = 'cli' AND meeting_id = $1::uuid "
		    "AND details->>'version' = '2' AND details ? 'os_user'",
		    1, NULL, v, NULL, NULL, 0);

		assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
		assert_string_equal(PQgetvalue(res, 0, 0), "1");
		PQclear(res);
	}
	assert_int_equal(cli(out, sizeof(out), "meeting", "list", "--host",
	                     "dora@example.com", (const char *)NULL),
	                 0);
	assert_non_null(strstr(out, id));
	assert_int_equal(
	    cli(out, sizeof(out), "meeting", "archive", id, (const char *)NULL),
	    0);
	assert_int_equal(cli(out, sizeof(out), "meeting", "list", "--host",
	                     "dora@example.com", (const char *)NULL),
	                 0);
	assert_null(strstr(out, id));
	/* Validation is the API's: a weak code is refused with its rule. */
	argv[9] = "--code";
	argv[10] = "11111111";
	assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "code_all_same"));
	/* code check explains verdicts */
	assert_int_equal(cli(out, sizeof(out), "code", "check", "890123",
	                     (const char *)NULL),
	                 1);
	assert_non_null(strstr(out, "code_sequential"));
	assert_int_equal(cli(out, sizeof(out), "code", "check", "70461928",
	                     (const char *)NULL),
	                 0);
	assert_non_null(strstr(out, "strong"));
	assert_int_equal(cli(out, sizeof(out), "code", "check", "--length", "8",
	                     "1234567", (const char *)NULL),
	                 1);
	assert_non_null(strstr(out, "you typed 7"));
	/* codes on standard input stay out of the process list */
	assert_int_equal(
	    th_sh("printf '890123\\n70461928\\n' | '%s' code check "
	          ">'%s/check.out' 2>&1",
	          th_env("RG_TEST_BIN"), th_env("RG_TEST_TMP")),
	    1);
	assert_int_equal(th_sh("grep -q code_sequential '%s/check.out' && "
	                       "grep -q '70461928: strong' '%s/check.out'",
	                       th_env("RG_TEST_TMP"), th_env("RG_TEST_TMP")),
	                 0);
}

/* After the key file is replaced, codes stored under the old key id still
 * check and open when the old file is listed in previous_key_files; new
 * codes go under the new key id. */
static void
old_key_ids_keep_working(void **state)
{
	struct gate_config c2;
	struct gate_keys *k2 = NULL;
	struct gate_codes *with_old = NULL, *without_old = NULL;
	struct gate_app a2, a3;
	struct db_code dc;
	struct db_actor by = {.identity = "test"};
	char path[600], out[1024], old[16], fresh[GATE_CODE_BUF],
	    seen[GATE_CODE_BUF], err[512];
	const char *argv[5];
	const char *id;
	json_t *m;
	int version = 0;

	(void)state;
	m = create(tok_alice, "{\"title\": \"keys\", \"allowed_groups\": "
	                      "[\"cn=a,dc=x\"]}");
	id = sget(m, "id", NULL);
	snprintf(old, sizeof(old), "%s", sget(m, "code", "code"));

	snprintf(path, sizeof(path), "%s/second.keys", th_env("RG_TEST_TMP"));
	argv[0] = th_env("RG_TEST_BIN");
	argv[1] = "keygen";
	argv[2] = "-o";
	argv[3] = path;
	argv[4] = NULL;
	if (access(path, F_OK) != 0 &&
	    th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("keygen: %s", out);
	assert_int_equal(gate_keys_load(path, &k2, err, sizeof(err)), 0);
	assert_string_not_equal(k2->key_id, keys->key_id);

	c2 = cfg; /* shallow: only read */
	c2.codes_previous_key_files = cfg.keys_file;
	assert_int_equal(gate_codes_open(&c2, k2, &with_old, err, sizeof(err)),
	                 0);
	c2.codes_previous_key_files = NULL;
	assert_int_equal(
	    gate_codes_open(&c2, k2, &without_old, err, sizeof(err)), 0);
	a2 = app;
	a2.codes = with_old;
	a3 = app;
	a3.codes = without_old;

	assert_int_equal(verify_with(&a2, id, old), 1);
	assert_int_equal(verify_with(&a3, id, old), 0);
	assert_int_equal(db_code_current(app.db, id, &dc, err, sizeof(err)), 0);
	assert_string_equal(dc.key_id, keys->key_id);
	assert_int_equal(gate_codes_reveal(with_old, &dc, seen, sizeof(seen),
	                                   err, sizeof(err)),
	                 0);
	assert_string_equal(seen, old);
	assert_int_not_equal(gate_codes_reveal(without_old, &dc, seen,
	                                       sizeof(seen), err, sizeof(err)),
	                     0);
	assert_non_null(strstr(err, "previous_key_files"));

	/* Rotate under the new key, old code in grace: both keys in play. */
	assert_int_equal(gate_meeting_new_code(with_old, id, 8, NULL, fresh,
	                                       sizeof(fresh), &dc),
	                 0);
	assert_string_equal(dc.key_id, k2->key_id);
	assert_int_equal(db_code_rotate(app.db, id, &dc, 0, 600, "rotate", 0,
	                                &by, &version, err, sizeof(err)),
	                 0);
	assert_int_equal(version, 2);
	assert_int_equal(verify_with(&a2, id, fresh), 1);
	assert_int_equal(verify_with(&a2, id, old), 1);
	assert_int_equal(verify(id, fresh), 0); /* old server: unknown key */
	assert_int_equal(verify(id, old), 1);

	gate_codes_close(with_old);
	gate_codes_close(without_old);
	gate_keys_free(k2);
	json_decref(m);
}

/* A bad [codes] section stops `serve` with a message naming it. */
static void
bad_codes_config_stops_serve(void **state)
{
	static const struct {
		const char *ini, *want;
	} cases[] = {
	    {"[codes]\nrules = sequential, bogus\n", "bogus"},
	    {"[codes]\nlength = 6\nmin_length = 8\n", "min_length"},
	    {"[codes]\nlength = 13\n", "[codes] length"},
	    {"[codes]\nprevious_key_files = /nonexistent/old.keys\n",
	     "previous_key_files"},
	};
	char out[4096], name[32];
	const char *argv[5];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "badcodes%zu.ini", i);
		argv[0] = th_env("RG_TEST_BIN");
		argv[1] = "serve";
		argv[2] = "-c";
		argv[3] = th_config(name, cases[i].ini);
		argv[4] = NULL;
		assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)),
		                 1);
		if (strstr(out, cases[i].want) == NULL)
			fail_msg("case %zu: %s", i, out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tokens_are_required_and_revocable),
	    cmocka_unit_test(create_read_update_archive),
	    cmocka_unit_test(bad_input_names_field_and_rule),
	    cmocka_unit_test(custom_codes_and_platform_rooms),
	    cmocka_unit_test(rotation_with_and_without_grace),
	    cmocka_unit_test(scheduled_rotation_once_across_nodes),
	    cmocka_unit_test(list_is_paged_and_scoped),
	    cmocka_unit_test(old_key_ids_keep_working),
	    cmocka_unit_test(dump_holds_no_code),
	    cmocka_unit_test(cli_meeting_commands),
	    cmocka_unit_test(database_down_is_503),
	    cmocka_unit_test(bad_codes_config_stops_serve),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
