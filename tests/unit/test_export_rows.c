/* Unit tests: the export's row-by-row check (gate_export_rows_*) on bodies
 * made here the way the exporter writes them, with content and link hashes
 * from the chain's own encoding and a checkpoint signed by a key made at
 * test time: CSV and JSON Lines verify whatever the chunking (NULL and ""
 * kept apart, formula apostrophes dropped, jsonb text exact); a changed
 * field, a broken link, a checkpoint that does not match, an unsealed
 * record inside the sealed range, a record out of order and a cell not
 * written as the exporter writes it are each named; filtered exports
 * verify record by record; unsealed records are counted, not passed
 * silently. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/audit_export.h"
#include "server/audit_key.h"

#define N 6

/* The records: seq, the 16 hashed fields. */
static const char *const fields[N][DB_AUDIT_NFIELDS] = {
    {"2026-11-28T06:00:00.000001Z", "join", "allow", NULL, "alice",
     "https://idp.example.org", "0e0e0e0e-0000-4000-8000-00000000000a",
     "cn=staff,dc=example,dc=org", "10.0.0.1/32", NULL, "Mozilla/5.0",
     "r1", "node-a", "t", "t", "{\"n\": 1, \"why\": \"a \\\"q\\\"\"}"},
    {"2026-11-28T06:00:01.000000Z", "join", "deny", "wrong_code",
     "=HYPERLINK(\"x\")", NULL, NULL, NULL, "2001:db8::1/128",
     "-1+2, 10.0.0.1", "", "r2", "node-b", "f", "t", NULL},
    {"2026-11-28T06:00:02.000000Z", "authz", "deny", "not_member",
     "'quoted", "", NULL, NULL, "10.0.0.0/8", NULL, "@SUM(A1)", "r3",
     "node-a", NULL, "f", "{\"empty\": \"\", \"x\": 1.50}"},
    {"2026-11-28T06:00:03.000000Z", "code.rotate", "info", NULL,
     "bob\r\nsmith", NULL, NULL, NULL, NULL, NULL, "a,b", "r4", "node-a",
     NULL, NULL, "{}"},
    {"2026-11-28T06:00:04.000000Z", "join", "allow", NULL, "\tcarol",
     NULL, NULL, NULL, "10.0.0.2/32", NULL, "\xc3\xbcn\xc3\xaf", "r5",
     "node-a", "t", "t", "[1, 2]"},
    {"2026-11-28T06:00:05.000000Z", "join", "error", "directory_down",
     "+dave", NULL, NULL, NULL, NULL, NULL, NULL, NULL, "node-a", NULL,
     NULL, NULL},
};
static const long long seqs[N] = {3, 4, 7, 8, 9, 12};

static struct gate_audit_key key;
static unsigned char content[N][32], link[N][32];
static char content_hex[N][65], link_hex[N][65], pos_txt[N][24],
    seq_txt[N][24];

static void
setup_chain(void)
{
	unsigned char prev[32] = {0};
	size_t len[DB_AUDIT_NFIELDS];

	assert_true(sodium_init() >= 0);
	crypto_sign_keypair(key.pk, key.sk);
	gate_audit_kid(key.pk, key.kid);
	for (int i = 0; i < N; i++) {
		for (int f = 0; f < DB_AUDIT_NFIELDS; f++)
			len[f] = fields[i][f] ? strlen(fields[i][f]) : 0;
		gate_audit_content_hash(fields[i], len, content[i]);
		/* positions 101.. : older records were purged */
		gate_audit_link_hash(prev, 101 + i, seqs[i], content[i],
		                     link[i]);
		memcpy(prev, link[i], 32);
		sodium_bin2hex(content_hex[i], 65, content[i], 32);
		sodium_bin2hex(link_hex[i], 65, link[i], 32);
		snprintf(pos_txt[i], sizeof(pos_txt[i]), "%d", 101 + i);
		snprintf(seq_txt[i], sizeof(seq_txt[i]), "%lld", seqs[i]);
	}
}

/* The manifest's checkpoint sealed the chain at record `at` (-1: none). */
static void
manifest(struct gate_export_manifest *m, int format, int at, long long count,
         long long first, long long last)
{
	memset(m, 0, sizeof(*m));
	m->format = format;
	m->count = count;
	m->first_seq = first;
	m->last_seq = last;
	if (at >= 0) {
		m->have_ckpt = 1;
		m->ckpt_id = 42;
		memcpy(m->ckpt.kid, key.kid, 17);
		m->ckpt.last_seq = seqs[at];
		m->ckpt.count = 101 + at;
		memcpy(m->ckpt.last_hash, link[at], 32);
		snprintf(m->ckpt.time, sizeof(m->ckpt.time),
		         "2026-11-28T06:00:06.000000Z");
	}
}

/* Record i as the exporter's row (sealed unless unsealed). */
static void
row_of(int i, int sealed, const char *row[DB_EXPORT_NCOLS])
{
	row[0] = seq_txt[i];
	for (int f = 0; f < DB_AUDIT_NFIELDS; f++)
		row[1 + f] = fields[i][f];
	row[DB_EXPORT_COL_SEALED] = sealed ? "t" : "f";
	row[DB_EXPORT_COL_POS] = sealed ? pos_txt[i] : NULL;
	row[DB_EXPORT_COL_CONTENT] = sealed ? content_hex[i] : NULL;
	row[DB_EXPORT_COL_LINK] = sealed ? link_hex[i] : NULL;
}

/* The body of records mask (bit i: record i), the ones from `unsealed`
 * on without chain entries. */
static void
body(struct gate_buf *b, int format, unsigned mask, int unsealed)
{
	const char *row[DB_EXPORT_NCOLS];

	gate_buf_init(b, 1 << 20);
	if (format == GATE_EXPORT_CSV)
		gate_export_csv_header(b);
	for (int i = 0; i < N; i++) {
		if (!(mask & (1u << i)))
			continue;
		row_of(i, i < unsealed, row);
		if (format == GATE_EXPORT_CSV)
			gate_export_csv_row(b, row);
		else
			assert_int_equal(gate_export_jsonl_row(b, row), 0);
	}
	assert_false(b->failed);
}

/* Checks b against m fed step bytes at a time; 0 or -1 (err). */
static int
run(const struct gate_export_manifest *m, const struct gate_buf *b,
    size_t step, const struct gate_audit_ckpt *extra, size_t nextra,
    struct gate_export_rows_result *res, char *err, size_t errlen)
{
	struct gate_export_rowcheck *rc = gate_export_rows_new(m, extra, nextra);
	int r;

	assert_non_null(rc);
	for (size_t off = 0; off < b->len; off += step)
		gate_export_rows_feed(rc, b->p + off,
		                      b->len - off < step ? b->len - off : step);
	r = gate_export_rows_end(rc, res, err, errlen);
	gate_export_rows_free(rc);
	return r;
}

static void
all_sealed_verifies(void **state)
{
	struct gate_export_manifest m;
	struct gate_export_rows_result res;
	struct gate_buf b;
	char err[1024];
	const size_t steps[] = {1, 7, 1 << 20};

	(void)state;
	for (int fmt = 0; fmt < 2; fmt++) {
		manifest(&m, fmt, N - 1, N, seqs[0], seqs[N - 1]);
		body(&b, fmt, (1u << N) - 1, N);
		for (size_t s = 0; s < 3; s++) {
			if (run(&m, &b, steps[s], NULL, 0, &res, err,
			        sizeof(err)) != 0)
				fail_msg("format %d step %zu: %s", fmt,
				         steps[s], err);
			assert_int_equal(res.records, N);
			assert_int_equal(res.sealed, N);
			assert_int_equal(res.unsealed, 0);
			assert_int_equal(res.runs, 1);
			assert_int_equal(res.linked, N - 1);
			assert_int_equal(res.anchored, N);
			assert_int_equal(res.ckpts_met, 1);
		}
		gate_buf_free(&b);
	}
}

static void
unsealed_are_counted(void **state)
{
	struct gate_export_manifest m;
	struct gate_export_rows_result res;
	struct gate_buf b;
	char err[1024];

	(void)state;
	for (int fmt = 0; fmt < 2; fmt++) {
		/* Sealed up to record 3 (seq 8), 9 and 12 not yet. */
		manifest(&m, fmt, 3, N, seqs[0], seqs[N - 1]);
		body(&b, fmt, (1u << N) - 1, 4);
		assert_int_equal(run(&m, &b, 5, NULL, 0, &res, err,
		                     sizeof(err)),
		                 0);
		assert_int_equal(res.sealed, 4);
		assert_int_equal(res.anchored, 4);
		assert_int_equal(res.unsealed, 2);
		assert_int_equal(res.first_unsealed, 9);
		assert_int_equal(res.last_unsealed, 12);
		gate_buf_free(&b);
		/* Not sealed, yet at or before the checkpoint. */
		manifest(&m, fmt, 4, N, seqs[0], seqs[N - 1]);
		body(&b, fmt, (1u << N) - 1, 4);
		assert_int_equal(run(&m, &b, 5, NULL, 0, &res, err,
		                     sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "seq 9: not sealed, yet"));
		gate_buf_free(&b);
		/* Sealed past the manifest's newest checkpoint. */
		manifest(&m, fmt, 2, N, seqs[0], seqs[N - 1]);
		body(&b, fmt, (1u << N) - 1, N);
		assert_int_equal(run(&m, &b, 5, NULL, 0, &res, err,
		                     sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "seq 8 has a chain entry past"));
		gate_buf_free(&b);
	}
}

static void
filtered_export_checks_each_record(void **state)
{
	struct gate_export_manifest m;
	struct gate_export_rows_result res;
	struct gate_audit_ckpt extra;
	struct gate_buf b;
	char err[1024];
	unsigned mask = 1u << 0 | 1u << 2 | 1u << 3 | 1u << 5;

	(void)state;
	manifest(&m, GATE_EXPORT_CSV, N - 1, 4, seqs[0], seqs[N - 1]);
	m.filtered = 1;
	body(&b, GATE_EXPORT_CSV, mask, N);
	assert_int_equal(run(&m, &b, 3, NULL, 0, &res, err, sizeof(err)), 0);
	assert_int_equal(res.records, 4);
	assert_int_equal(res.sealed, 4);
	assert_int_equal(res.runs, 3); /* 3 | 7 8 | 12 */
	assert_int_equal(res.linked, 1);
	assert_int_equal(res.anchored, 1); /* only 12 reaches the checkpoint */
	/* A journal checkpoint at seq 8 covers the run 7, 8. */
	extra = m.ckpt;
	extra.last_seq = seqs[3];
	extra.count = 101 + 3;
	memcpy(extra.last_hash, link[3], 32);
	assert_int_equal(run(&m, &b, 3, &extra, 1, &res, err, sizeof(err)), 0);
	assert_int_equal(res.anchored, 3);
	assert_int_equal(res.ckpts_met, 2);
	/* One that does not match the record at its seq. */
	extra.count++;
	assert_int_equal(run(&m, &b, 3, &extra, 1, &res, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "seq 8: its chain entry"));
	gate_buf_free(&b);
}

/* Record i written with field f (0-based hashed field) set to v. */
static void
tampered(struct gate_buf *b, int format, int i, int col, const char *v)
{
	const char *row[DB_EXPORT_NCOLS];

	gate_buf_init(b, 1 << 20);
	if (format == GATE_EXPORT_CSV)
		gate_export_csv_header(b);
	for (int k = 0; k < N; k++) {
		row_of(k, 1, row);
		if (k == i)
			row[col] = v;
		if (format == GATE_EXPORT_CSV)
			gate_export_csv_row(b, row);
		else
			assert_int_equal(gate_export_jsonl_row(b, row), 0);
	}
}

static void
changes_are_named(void **state)
{
	struct gate_export_manifest m;
	struct gate_export_rows_result res;
	struct gate_buf b;
	char err[1024], hex[65];
	unsigned char junk[32];

	(void)state;
	randombytes_buf(junk, sizeof(junk));
	sodium_bin2hex(hex, sizeof(hex), junk, 32);
	for (int fmt = 0; fmt < 2; fmt++) {
		manifest(&m, fmt, N - 1, N, seqs[0], seqs[N - 1]);
		/* A field: the content hash no longer holds. */
		tampered(&b, fmt, 2, 5, "mallory");
		assert_int_equal(run(&m, &b, 64, NULL, 0, &res, err,
		                     sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "seq 7: modified"));
		gate_buf_free(&b);
		/* "" where the record had NULL (forwarded_for): a
		 * different record. */
		tampered(&b, fmt, 0, 10, "");
		assert_int_equal(run(&m, &b, 64, NULL, 0, &res, err,
		                     sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "seq 3: modified"));
		gate_buf_free(&b);
		/* A field and its content hash: the link breaks. */
		tampered(&b, fmt, 3, DB_EXPORT_COL_LINK, hex);
		assert_int_equal(run(&m, &b, 64, NULL, 0, &res, err,
		                     sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "seq 8: its chain hash does not "
		                            "follow from seq 7"));
		gate_buf_free(&b);
		/* The last link: the signed checkpoint does not match. */
		tampered(&b, fmt, N - 1, DB_EXPORT_COL_LINK, hex);
		assert_int_equal(run(&m, &b, 64, NULL, 0, &res, err,
		                     sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "seq 12: its chain hash"));
		gate_buf_free(&b);
		/* A seq out of order. */
		tampered(&b, fmt, 3, DB_EXPORT_COL_SEQ, "5");
		assert_int_equal(run(&m, &b, 64, NULL, 0, &res, err,
		                     sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "seq 5 follows seq 7"));
		gate_buf_free(&b);
		/* Counts and range. */
		manifest(&m, fmt, N - 1, N + 1, seqs[0], seqs[N - 1]);
		body(&b, fmt, (1u << N) - 1, N);
		assert_int_equal(run(&m, &b, 64, NULL, 0, &res, err,
		                     sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "holds 6 records, the manifest "
		                            "says 7"));
		/* Cut inside the last record. */
		manifest(&m, fmt, N - 1, N, seqs[0], seqs[N - 1]);
		b.len -= 3;
		assert_int_equal(run(&m, &b, 64, NULL, 0, &res, err,
		                     sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "ends inside a record"));
		gate_buf_free(&b);
	}
}

/* Spellings the exporter never writes are refused even when the values
 * would hash right. */
static void
one_spelling_per_record(void **state)
{
	static const struct {
		const char *from, *to, *want;
	} edits[] = {
	    /* needless quotes */
	    {",alice,", ",\"alice\",", "record 1 (after seq 0) is not"},
	    /* an apostrophe not needed */
	    {",alice,", ",'alice,", "record 1 (after seq 0) is not"},
	    /* "" turned into NULL: written right, but another record */
	    {",\"\",r2,", ",,r2,", "seq 4: modified"},
	    /* a bare LF after the header */
	    {"\r\n3,", "\n3,", "not the header"},
	    /* another header */
	    {"seq,at,", "seq,time,", "not the header"},
	};
	struct gate_export_manifest m;
	struct gate_export_rows_result res;
	struct gate_buf b, e;
	char err[1024];

	(void)state;
	manifest(&m, GATE_EXPORT_CSV, N - 1, N, seqs[0], seqs[N - 1]);
	body(&b, GATE_EXPORT_CSV, (1u << N) - 1, N);
	/* What a spreadsheet shows: the apostrophe-prefixed formulas. */
	assert_non_null(strstr(b.p, ",\"'=HYPERLINK(\"\"x\"\")\","));
	assert_non_null(strstr(b.p, ",''quoted,"));
	assert_non_null(strstr(b.p, ",10.0.0.1/32,"));
	assert_non_null(strstr(b.p, ",\"\",r2,"));
	for (size_t k = 0; k < sizeof(edits) / sizeof(edits[0]); k++) {
		const char *at = strstr(b.p, edits[k].from);
		size_t pre;

		assert_non_null(at);
		pre = (size_t)(at - b.p);
		gate_buf_init(&e, 1 << 20);
		gate_buf_add(&e, b.p, pre);
		gate_buf_add(&e, edits[k].to, strlen(edits[k].to));
		gate_buf_add(&e, at + strlen(edits[k].from),
		             b.len - pre - strlen(edits[k].from));
		if (run(&m, &e, 16, NULL, 0, &res, err, sizeof(err)) != -1)
			fail_msg("edit %zu accepted", k);
		if (strstr(err, edits[k].want) == NULL)
			fail_msg("edit %zu: %s", k, err);
		gate_buf_free(&e);
	}
	gate_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(all_sealed_verifies),
	    cmocka_unit_test(unsealed_are_counted),
	    cmocka_unit_test(filtered_export_checks_each_record),
	    cmocka_unit_test(changes_are_named),
	    cmocka_unit_test(one_spelling_per_record),
	};

	setup_chain();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
