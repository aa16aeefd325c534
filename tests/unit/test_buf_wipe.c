/*
 * Unit tests: the bounded buffer wipes what it gives back. Request bodies
 * carry typed codes, so no block the buffer frees -- on growth, on
 * gate_buf_free, on a failed take -- may still hold their bytes. buf.c is
 * compiled into this file with malloc/free routed through a ledger that
 * checks each block is all zeros when it is freed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/server.h"

#define LEDGER_MAX 64

static struct {
	void *p;
	size_t n;
} ledger[LEDGER_MAX];
static int frees, dirty_frees;

static void *
ledger_malloc(size_t n)
{
	void *p = malloc(n);

	for (int i = 0; p != NULL && i < LEDGER_MAX; i++)
		if (ledger[i].p == NULL) {
			ledger[i].p = p;
			ledger[i].n = n;
			return p;
		}
	fail_msg("ledger full");
	return p;
}

static void
ledger_free(void *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < LEDGER_MAX; i++)
		if (ledger[i].p == p) {
			const unsigned char *b = p;

			frees++;
			for (size_t k = 0; k < ledger[i].n; k++)
				if (b[k] != 0) {
					dirty_frees++;
					break;
				}
			ledger[i].p = NULL;
			break;
		}
	free(p);
}

static void *
ledger_calloc(size_t k, size_t n)
{
	void *p = ledger_malloc(k * n);

	if (p != NULL)
		memset(p, 0, k * n);
	return p;
}

/* buf.c with its allocations going through the ledger; realloc would
 * not, so a realloc left in buf.c fails to build here. */
#define malloc(n) ledger_malloc(n)
#define calloc(k, n) ledger_calloc(k, n)
#define free(p) ledger_free(p)
#define realloc(p, n) buf_must_not_realloc(p, n)
#include "server/buf.c" /* NOLINT(bugprone-suspicious-include): built with the ledger allocator */
#undef malloc
#undef calloc
#undef free
#undef realloc

static const char code[] = "12345678";

static void
growth_wipes_every_old_block(void **state)
{
	struct gate_buf b;

	(void)state;
	frees = dirty_frees = 0;
	gate_buf_init(&b, 1 << 16);
	/* 256 -> 512 -> ... -> 8192: five growths, each freeing a block
	 * full of copies of the code. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(gate_buf_add(&b, code, sizeof(code) - 1), 0);
	assert_int_equal(b.len, 1000 * (sizeof(code) - 1));
	for (size_t i = 0; i < b.len; i += sizeof(code) - 1)
		assert_memory_equal(b.p + i, code, sizeof(code) - 1);
	assert_int_equal(b.p[b.len], '\0');
	assert_int_equal(frees, 5);
	gate_buf_free(&b);
	assert_int_equal(frees, 6);
	assert_int_equal(dirty_frees, 0);
	assert_null(b.p);
}

static void
failed_take_wipes(void **state)
{
	struct gate_buf b;
	size_t len = 99;

	(void)state;
	frees = dirty_frees = 0;
	gate_buf_init(&b, 12);
	assert_int_equal(gate_buf_add(&b, code, sizeof(code) - 1), 0);
	/* Over the maximum: the buffer fails, and taking it frees it. */
	assert_int_equal(gate_buf_add(&b, code, sizeof(code) - 1), -1);
	assert_null(gate_buf_take(&b, &len));
	assert_int_equal(frees, 1);
	assert_int_equal(dirty_frees, 0);
}

static void
printf_scratch_is_wiped(void **state)
{
	struct gate_buf b;
	char big[600];

	(void)state;
	frees = dirty_frees = 0;
	memset(big, '7', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	gate_buf_init(&b, 4096);
	/* Longer than printf's stack scratch: a heap scratch is used. */
	assert_int_equal(gate_buf_printf(&b, "%s", big), 0);
	assert_int_equal(b.len, sizeof(big) - 1);
	assert_int_equal(frees, 1); /* the scratch (the first block stays) */
	gate_buf_free(&b);
	assert_int_equal(dirty_frees, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(growth_wipes_every_old_block),
	    cmocka_unit_test(failed_take_wipes),
	    cmocka_unit_test(printf_scratch_is_wiped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
