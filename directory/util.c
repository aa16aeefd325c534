/*
 * directory/util.c -- error messages, the monotonic clock, the reconnect
 * backoff and the SIGPIPE guard used around libldap. See dir_int.h.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "directory/dir_int.h"

/* Marks a cut message so nobody mistakes it for the whole story. */
static void
mark_truncated(char *err, size_t errlen)
{
	static const char dots[] = "...";

	if (errlen >= sizeof(dots))
		memcpy(err + errlen - sizeof(dots), dots, sizeof(dots));
}

static void
verrf_at(char *err, size_t errlen, size_t at, const char *fmt, va_list ap)
{
	int n;

	if (err == NULL || errlen == 0 || at >= errlen)
		return;
	n = vsnprintf(err + at, errlen - at, fmt, ap);
	if (n < 0)
		err[at] = '\0';
	else if ((size_t)n >= errlen - at)
		mark_truncated(err, errlen);
}

void
dir_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verrf_at(err, errlen, 0, fmt, ap);
	va_end(ap);
}

void
dir_errcat(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	size_t have;

	if (err == NULL || errlen == 0)
		return;
	have = strnlen(err, errlen);
	if (have >= errlen - 1) {
		err[errlen - 1] = '\0';
		return;
	}
	va_start(ap, fmt);
	verrf_at(err, errlen, have, fmt, ap);
	va_end(ap);
}

void
dir_err_scrub(char *err, const char *secret, size_t secret_len)
{
	static const char mask[] = "****";
	char *p;
	size_t len, at = 0;

	if (err == NULL || secret == NULL || secret_len == 0)
		return;
	len = strlen(err);
	while (at < len &&
	       (p = memmem(err + at, len - at, secret, secret_len)) != NULL) {
		size_t tail = len - (size_t)(p - err) - secret_len;
		size_t m = secret_len < sizeof(mask) - 1 ? secret_len
		                                         : sizeof(mask) - 1;

		/* The mask is never longer than the secret: no growth. */
		memcpy(p, mask, m);
		memmove(p + m, p + secret_len, tail + 1);
		len = len - secret_len + m;
		at =
		    (size_t)(p - err) + m; /* the mask itself is not searched */
	}
}

void
dir_printable(char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			*s = '?';
}

int64_t
dir_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
dir_backoff_ms(unsigned fails)
{
	int ms = DIR_BACKOFF_MIN_MS;

	if (fails == 0)
		return 0;
	while (--fails > 0 && ms < DIR_BACKOFF_MAX_MS)
		ms *= 2;
	return ms < DIR_BACKOFF_MAX_MS ? ms : DIR_BACKOFF_MAX_MS;
}

void
dir_sigpipe_block(struct dir_sigpipe *s)
{
	sigset_t pipe_set, pending;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &s->old);
	/* A SIGPIPE pending from before is not ours to consume. */
	s->was_pending = 0;
	if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE))
		s->was_pending = 1;
}

void
dir_sigpipe_restore(struct dir_sigpipe *s)
{
	sigset_t pipe_set, pending;
	const struct timespec zero = {0, 0};

	if (!s->was_pending && !sigismember(&s->old, SIGPIPE) &&
	    sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 &&
		       errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &s->old, NULL);
}
