/*
 * db/authz_listen.c -- the node's LISTEN roomgate_authz connection
 * (db/db_authz.h): the notifications that drop cached forward-auth
 * answers, and a periodic query that proves the connection still
 * delivers them.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#include "db/db_authz.h"
#include "db/db_int.h"

struct db_authz_listen {
	PGconn *pg;
	long long quiet_since_ms; /* last proof of life */
	long long ping_sent_ms;	  /* 0: no query outstanding */
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
db_authz_listen_open(const char *conninfo, int connect_timeout_s,
                     struct db_authz_listen **out, char *err, size_t errlen)
{
	struct db_params p;
	PGconn *pg = NULL;
	PGresult *res;
	int r;

	*out = NULL;
	if ((r = db_params_build(conninfo, connect_timeout_s, 10000,
	                         "roomgate-authz-listen", &p, err, errlen)) != 0)
		return r;
	r = db_connect(&p, &pg, err, errlen);
	db_params_free(&p);
	if (r != 0)
		return r;
	res = PQexec(pg, "LISTEN roomgate_authz");
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = db_result_err(pg, res, "listening for forward-auth changes",
		                  err, errlen);
		PQclear(res);
		PQfinish(pg);
		return r != 0 ? r : DB_EQUERY;
	}
	PQclear(res);
	if (PQsetnonblocking(pg, 1) != 0 ||
	    (*out = calloc(1, sizeof(**out))) == NULL) {
		PQfinish(pg);
		db_seterr(err, errlen, "out of memory");
		return DB_ENOMEM;
	}
	(*out)->pg = pg;
	(*out)->quiet_since_ms = now_ms();
	return 0;
}

/* The ping's answer, once complete: 0 done or still coming, -1 failed. */
static int
ping_collect(struct db_authz_listen *l, char *err, size_t errlen)
{
	PGresult *res;

	while (l->ping_sent_ms != 0 && !PQisBusy(l->pg)) {
		res = PQgetResult(l->pg);
		if (res == NULL) {
			l->ping_sent_ms = 0;
			l->quiet_since_ms = now_ms();
			break;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			db_seterr(err, errlen,
			          "the forward-auth LISTEN connection failed "
			          "its check: %s",
			          PQerrorMessage(l->pg));
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
	return 0;
}

/* Hands over every notification libpq has parsed so far. */
static void
drain(struct db_authz_listen *l, void (*on)(void *, const char *), void *arg)
{
	PGnotify *n;

	while ((n = PQnotifies(l->pg)) != NULL) {
		on(arg, n->extra);
		PQfreemem(n);
	}
}

int
db_authz_listen_wait(struct db_authz_listen *l, int timeout_ms, int ping_ms,
                     void (*on)(void *, const char *),
                     void (*busy)(void *, int), void *arg, char *err,
                     size_t errlen)
{
	struct pollfd pfd;
	long long t = now_ms();
	int pr, r = 0;

	pfd.fd = PQsocket(l->pg);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0 || PQstatus(l->pg) != CONNECTION_OK) {
		db_seterr(err, errlen,
		          "the forward-auth LISTEN connection is gone");
		return DB_EUNAVAIL;
	}
	if (l->ping_sent_ms != 0 && t - l->ping_sent_ms > ping_ms) {
		db_seterr(err, errlen,
		          "the forward-auth LISTEN connection did not answer "
		          "its check within %d ms",
		          ping_ms);
		return DB_EUNAVAIL;
	}
	if (l->ping_sent_ms == 0 && t - l->quiet_since_ms >= ping_ms) {
		if (PQsendQuery(l->pg, "SELECT 1") != 1) {
			db_seterr(err, errlen,
			          "the forward-auth LISTEN connection cannot "
			          "send its check: %s",
			          PQerrorMessage(l->pg));
			return DB_EUNAVAIL;
		}
		l->ping_sent_ms = t;
	}
	if (l->ping_sent_ms != 0 && PQflush(l->pg) < 0) {
		db_seterr(err, errlen,
		          "the forward-auth LISTEN connection was lost: %s",
		          PQerrorMessage(l->pg));
		return DB_EUNAVAIL;
	}
	if (l->ping_sent_ms != 0 && timeout_ms > ping_ms / 4 + 1)
		timeout_ms = ping_ms / 4 + 1;
	pr = poll(&pfd, 1, timeout_ms);
	if (pr < 0 && errno != EINTR) {
		db_seterr(err, errlen,
		          "waiting for forward-auth changes failed");
		return DB_EUNAVAIL;
	}
	if (pr <= 0)
		return 0;
	busy(arg, 1);
	/* Readable with nothing to read is the server closing. */
	if (PQconsumeInput(l->pg) == 0 || PQstatus(l->pg) != CONNECTION_OK) {
		db_seterr(err, errlen,
		          "the forward-auth LISTEN connection was lost: %s",
		          PQerrorMessage(l->pg));
		r = DB_EUNAVAIL;
		goto out;
	}
	drain(l, on, arg);
	if (ping_collect(l, err, errlen) != 0) {
		r = DB_EUNAVAIL;
		goto out;
	}
	/* Collecting the check's answer parses what followed it: a
	 * notification read in the same read as the answer is only in
	 * libpq's list now, and the socket is drained. Hand it over before
	 * reporting quiet, not on the next check's answer. */
	drain(l, on, arg);
out:
	/* A failing connection stays "being handled" for the caller, who
	 * stops trusting it first (db_authz.h). */
	if (r == 0)
		busy(arg, 0);
	return r;
}

int
db_authz_listen_fd(const struct db_authz_listen *l)
{
	return l != NULL ? PQsocket(l->pg) : -1;
}

void
db_authz_listen_close(struct db_authz_listen *l)
{
	if (l == NULL)
		return;
	PQfinish(l->pg);
	free(l);
}
