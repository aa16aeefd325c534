/* Unit tests: the export's pure parts -- CSV cells (RFC 4180 quoting and
 * formula neutralisation), JSON Lines records, times, parameters, and the
 * offline check of a manifest signed here with a key made at test time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "server/audit_export.h"
#include "server/audit_key.h"

static const char *
cell(const char *in)
{
	static char out[256];
	struct gate_buf b;

	gate_buf_init(&b, 1024);
	gate_csv_cell(&b, in);
	snprintf(out, sizeof(out), "%s", b.p ? b.p : "");
	gate_buf_free(&b);
	return out;
}

static void
csv_cells(void **state)
{
	(void)state;
	assert_string_equal(cell(NULL), "");
	/* NULL and "" stay apart: an empty cell, a quoted empty one. */
	assert_string_equal(cell(""), "\"\"");
	assert_string_equal(cell("alice"), "alice");
	assert_string_equal(cell("a,b"), "\"a,b\"");
	assert_string_equal(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
	assert_string_equal(cell("two\nlines"), "\"two\nlines\"");
	assert_string_equal(cell("=1+2"), "'=1+2");
	assert_string_equal(cell("+1"), "'+1");
	assert_string_equal(cell("-1"), "'-1");
	assert_string_equal(cell("@A1"), "'@A1");
	assert_string_equal(cell("\tx"), "'\tx");
	assert_string_equal(cell("\rx"), "\"'\rx\"");
	assert_string_equal(cell("=HYPERLINK(\"u\",\"t\")"),
	                    "\"'=HYPERLINK(\"\"u\"\",\"\"t\"\")\"");
	/* Only the first character counts. */
	assert_string_equal(cell("a=b"), "a=b");
	/* A leading apostrophe is doubled: a reader drops exactly one. */
	assert_string_equal(cell("'=x"), "''=x");
	assert_string_equal(cell("it's"), "it's");
}

static void
jsonl_record_types(void **state)
{
	const char *row[DB_EXPORT_NCOLS] = {NULL};
	struct gate_buf b;
	json_t *o;

	(void)state;
	row[0] = "42";
	row[1] = "2026-01-01T00:00:00.000000Z";
	row[2] = "admission";
	row[3] = "deny";
	row[14] = "false";
	row[15] = "true";
	row[16] = "{\"a\": [1, 2]}";
	gate_buf_init(&b, 4096);
	assert_int_equal(gate_export_jsonl_row(&b, row), 0);
	assert_int_equal(b.p[b.len - 1], '\n');
	o = json_loads(b.p, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 42);
	assert_true(json_is_false(json_object_get(o, "code_ok")));
	assert_true(json_is_true(json_object_get(o, "member_ok")));
	assert_true(json_is_array(
	    json_object_get(json_object_get(o, "details"), "a")));
	assert_true(json_is_null(json_object_get(o, "identity")));
	json_decref(o);
	gate_buf_free(&b);
}

static void
times(void **state)
{
	long long us;
	char out[40];

	(void)state;
	assert_int_equal(gate_time_parse_us("2026-11-28", &us), 0);
	assert_int_equal(us, 1795824000LL * 1000000);
	assert_int_equal(gate_time_parse_us("2026-11-28T06:00:00Z", &us), 0);
	assert_int_equal(us, (1795824000LL + 6 * 3600) * 1000000);
	assert_int_equal(gate_time_parse_us("2026-11-28T07:30:00+01:30", &us),
	                 0);
	assert_int_equal(us, (1795824000LL + 6 * 3600) * 1000000);
	assert_int_equal(gate_time_parse_us("2026-11-28T06:00:00.25Z", &us),
	                 0);
	assert_int_equal(us % 1000000, 250000);
	gate_time_fmt_us(us, out, sizeof(out));
	assert_string_equal(out, "2026-11-28T06:00:00.250000Z");
	gate_time_fmt_us(1795824000LL * 1000000, out, sizeof(out));
	assert_string_equal(out, "2026-11-28T00:00:00Z");
	assert_int_equal(gate_time_parse_us("2024-02-29", &us), 0);
	assert_int_equal(gate_time_parse_us("2026-02-29", &us), -1);
	assert_int_equal(gate_time_parse_us("2026-13-01", &us), -1);
	assert_int_equal(gate_time_parse_us("2026-11-28T24:00:00Z", &us), -1);
	assert_int_equal(gate_time_parse_us("2026-11-28T06:00:00", &us), -1);
	assert_int_equal(gate_time_parse_us("2026-11-28 06:00:00Z", &us), -1);
	assert_int_equal(gate_time_parse_us("yesterday", &us), -1);
	assert_int_equal(gate_time_parse_us("2026-11-28T06:00:00Zx", &us), -1);
}

static void
parameters(void **state)
{
	struct gate_export_params p;
	char err[512];

	(void)state;
	gate_export_params_init(&p);
	assert_int_equal(gate_export_param(&p, "format", "jsonl", err,
	                                   sizeof(err)),
	                 0);
	assert_int_equal(p.format, GATE_EXPORT_JSONL);
	assert_int_equal(gate_export_param(&p, "meeting",
	                                   "0E0E0E0E-0000-4000-8000-00000000000A",
	                                   err, sizeof(err)),
	                 0);
	assert_string_equal(p.f.meeting_id,
	                    "0e0e0e0e-0000-4000-8000-00000000000a");
	assert_int_equal(gate_export_param(&p, "outcome", "deny", err,
	                                   sizeof(err)),
	                 0);
	assert_string_equal(p.f.outcome, "deny");
	assert_int_equal(gate_export_param(&p, "outcome", "nope", err,
	                                   sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "outcome"));
	assert_int_equal(gate_export_param(&p, "limit", "5", err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "unknown parameter \"limit\""));
	assert_int_equal(gate_export_param(&p, "identity", "", err,
	                                   sizeof(err)),
	                 -1);
	assert_int_equal(gate_export_param(&p, "from", "2026-02-01", err,
	                                   sizeof(err)),
	                 0);
	assert_int_equal(gate_export_params_finish(&p, 1700000000LL * 1000000,
	                                           err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "earlier"));
	assert_int_equal(gate_export_params_finish(&p, 1900000000LL * 1000000,
	                                           err, sizeof(err)),
	                 0);
	assert_int_equal(p.f.to_us, 1900000000LL * 1000000);
}

/* A manifest signed here, checked by gate_export_verify. */
static void
verify_offline(void **state)
{
	char dir[] = "/tmp/rg-export-unit-XXXXXX", key[128], pub[128],
	     body[128], kid[17], err[512], sum[512];
	struct gate_audit_key k;
	unsigned char digest[32], sig[64], pk[32];
	char hex[65], b64[100], *canon, *text;
	const char *row[DB_EXPORT_NCOLS] = {NULL};
	struct gate_buf data;
	json_t *m;
	FILE *f;

	(void)state;
	assert_int_equal(sodium_init() < 0, 0);
	assert_non_null(mkdtemp(dir));
	snprintf(key, sizeof(key), "%s/k", dir);
	snprintf(pub, sizeof(pub), "%s/k.pub", dir);
	snprintf(body, sizeof(body), "%s/body.csv", dir);
	assert_int_equal(gate_audit_key_generate(key, pub, kid, err,
	                                         sizeof(err)),
	                 0);
	assert_int_equal(gate_audit_key_load(key, &k, err, sizeof(err)), 0);
	/* Two records no checkpoint covers yet (sealed f), one with a CRLF
	 * inside a cell. */
	gate_buf_init(&data, 1 << 16);
	gate_export_csv_header(&data);
	row[DB_EXPORT_COL_AT] = "2026-11-28T06:00:00.000000Z";
	row[DB_EXPORT_COL_SEALED] = "f";
	row[DB_EXPORT_COL_SEQ] = "1";
	row[2] = "join";
	gate_export_csv_row(&data, row);
	row[DB_EXPORT_COL_SEQ] = "2";
	row[2] = "a\r\nb";
	gate_export_csv_row(&data, row);
	f = fopen(body, "wb");
	assert_non_null(f);
	fwrite(data.p, 1, data.len, f);
	fclose(f);
	crypto_hash_sha256(digest, (const unsigned char *)data.p, data.len);
	sodium_bin2hex(hex, sizeof(hex), digest, 32);
	m = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:s, s:{s:n, s:s, s:n, "
	              "s:n, s:n}, s:{s:i, s:i}, s:n}",
	              "version", 1, "export_id",
	              "0e0e0e0e-0000-4000-8000-00000000000a", "format", "csv",
	              "count", (json_int_t)2, "bytes",
	              (json_int_t)data.len, "sha256", hex, "key_id",
	              k.kid, "filters", "from", "to", "2026-11-28T00:00:00Z",
	              "meeting", "identity", "outcome", "range", "first_seq", 1,
	              "last_seq", 2, "last_checkpoint");
	assert_non_null(m);
	canon = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	gate_audit_sign(&k, (const unsigned char *)canon, strlen(canon), sig);
	sodium_bin2base64(b64, sizeof(b64), sig, 64,
	                  sodium_base64_VARIANT_ORIGINAL);
	json_object_set_new(m, "signature", json_string(b64));
	text = json_dumps(m, JSON_INDENT(2));
	assert_int_equal(gate_audit_key_pub_load(pub, pk, kid, err, sizeof(err)),
	                 0);
	/* Two records: the quoted CRLF inside the second is not a record
	 * end. */
	assert_int_equal(gate_export_verify(body, text, pk, kid, sum,
	                                    sizeof(sum), err, sizeof(err)),
	                 0);
	assert_non_null(strstr(sum, "2 records"));
	assert_non_null(strstr(sum, "2 NOT SEALED (seq 1..2"));
	/* Another key id: refused, naming both. */
	assert_int_equal(gate_export_verify(body, text, pk, "0000000000000000",
	                                    NULL, 0, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "signed with key"));
	/* A changed count: the signature no longer holds. */
	free(text);
	json_object_set_new(m, "count", json_integer(3));
	text = json_dumps(m, JSON_INDENT(2));
	assert_int_equal(gate_export_verify(body, text, pk, kid, NULL, 0, err,
	                                    sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "signature"));
	free(text);
	free(canon);
	json_decref(m);
	gate_buf_free(&data);
	gate_audit_key_wipe(&k);
	unlink(body);
	unlink(key);
	unlink(pub);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(csv_cells),       cmocka_unit_test(jsonl_record_types),
	    cmocka_unit_test(times),           cmocka_unit_test(parameters),
	    cmocka_unit_test(verify_offline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
