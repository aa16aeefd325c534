/*
 * A bounded growable buffer, after curl's dynbuf: each carries its maximum.
 * Request bodies (typed codes, form tokens) live in these, so memory given
 * back is wiped first: growing copies into a new block and wipes the old
 * one (realloc would leave the old bytes behind), and freeing wipes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/server.h"

void
gate_buf_init(struct gate_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

int
gate_buf_add(struct gate_buf *b, const void *data, size_t len)
{
	size_t need, ncap;
	char *np;

	if (b->failed)
		return -1;
	if (len > b->max - b->len) {
		b->failed = 1;
		return -1;
	}
	need = b->len + len + 1;
	if (need > b->cap) {
		ncap = b->cap ? b->cap : 256;
		while (ncap < need)
			ncap *= 2;
		if (ncap > b->max + 1)
			ncap = b->max + 1;
		np = malloc(ncap);
		if (np == NULL) {
			b->failed = 1;
			return -1;
		}
		if (b->p != NULL) {
			memcpy(np, b->p, b->len + 1);
			sodium_memzero(b->p, b->cap);
			free(b->p);
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

int
gate_buf_printf(struct gate_buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return -1;
	}
	if ((size_t)n < sizeof(small))
		return gate_buf_add(b, small, (size_t)n);
	{
		char *big = malloc((size_t)n + 1);
		int r;

		if (big == NULL) {
			b->failed = 1;
			return -1;
		}
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		r = gate_buf_add(b, big, (size_t)n);
		sodium_memzero(big, (size_t)n + 1);
		free(big);
		return r;
	}
}

char *
gate_buf_take(struct gate_buf *b, size_t *len)
{
	char *p = b->p;

	if (p == NULL && !b->failed) {
		p = calloc(1, 1);
	}
	if (len != NULL)
		*len = b->len;
	if (b->failed && p != NULL) {
		sodium_memzero(p, b->cap);
		free(p);
		p = NULL;
	}
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
	return p;
}

void
gate_buf_free(struct gate_buf *b)
{
	if (b->p != NULL)
		sodium_memzero(b->p, b->cap);
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
