/*
 * db/outbox_listen.c -- a connection of its own in LISTEN roomgate_outbox
 * (migration 0016 notifies on every outbox insert), so the deliverer can
 * wake its workers when an event is committed instead of at its next poll
 * (db/db_outbox.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "db/db_int.h"
#include "db/db_outbox.h"

struct db_outbox_listen {
	PGconn *pg;
};

int
db_outbox_listen_open(const char *conninfo, int connect_timeout_s,
                      struct db_outbox_listen **out, char *err, size_t errlen)
{
	struct db_params p;
	PGconn *pg = NULL;
	PGresult *res;
	int r;

	*out = NULL;
	if ((r = db_params_build(conninfo, connect_timeout_s, 10000,
	                         "roomgate-outbox-listen", &p, err, errlen)) != 0)
		return r;
	r = db_connect(&p, &pg, err, errlen);
	db_params_free(&p);
	if (r != 0)
		return r;
	res = PQexec(pg, "LISTEN roomgate_outbox");
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = db_result_err(pg, res, "listening for outbox events", err,
		                  errlen);
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
	return 0;
}

int
db_outbox_listen_wait(struct db_outbox_listen *l, int timeout_ms, char *err,
                      size_t errlen)
{
	struct pollfd pfd;
	PGnotify *n;
	int got = 0, pr;

	pfd.fd = PQsocket(l->pg);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0 || PQstatus(l->pg) != CONNECTION_OK) {
		db_seterr(err, errlen, "the outbox LISTEN connection is gone");
		return DB_EUNAVAIL;
	}
	pr = poll(&pfd, 1, timeout_ms);
	if (pr < 0 && errno != EINTR) {
		db_seterr(err, errlen, "waiting for outbox events failed");
		return DB_EUNAVAIL;
	}
	if (pr > 0) {
		/* Readable with nothing to read is the server closing. */
		if (PQconsumeInput(l->pg) == 0 ||
		    PQstatus(l->pg) != CONNECTION_OK) {
			db_seterr(err, errlen,
			          "the outbox LISTEN connection was lost: %s",
			          PQerrorMessage(l->pg));
			return DB_EUNAVAIL;
		}
	}
	while ((n = PQnotifies(l->pg)) != NULL) {
		got = 1;
		PQfreemem(n);
	}
	return got;
}

void
db_outbox_listen_close(struct db_outbox_listen *l)
{
	if (l == NULL)
		return;
	PQfinish(l->pg);
	free(l);
}
