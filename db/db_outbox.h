/*
 * db/db_outbox.h -- the webhook outbox: claiming due events with a lease,
 * recording the outcome of a delivery, dead letters, and what metrics and
 * the admin API show.
 *
 * Events are written by the statement that makes the change they report
 * (queries_admit.c, queries_authz.c, queries_meetings.c). The deliverer
 * (server/webhooks.c) never keeps a transaction or a pooled connection
 * while it posts: db_outbox_claim() sets a lease in one short statement
 * (FOR UPDATE SKIP LOCKED, so nodes never claim the same row while the
 * lease runs), the POST happens, then db_outbox_delivered() or
 * db_outbox_failed() records the outcome. A node that dies mid-delivery
 * leaves a lease that runs out; another node then delivers the event again,
 * so delivery is at least once and receivers dedupe by event id.
 *
 * Errors are DB_E* values (db.h) with a message in err.
 */
#ifndef ROOMGATE_DB_OUTBOX_H
#define ROOMGATE_DB_OUTBOX_H

#include <stddef.h>

#include "db/db.h"

/* A claimed event. payload is the event's JSON text (malloc()ed, freed by
 * db_outbox_event_free()). */
struct db_outbox_event {
	long long id;
	char topic[72];
	char created_at[40]; /* RFC 3339 UTC with milliseconds */
	char *payload;
	int attempts;     /* including this one */
	long long age_ms; /* since created_at (or the last manual retry) */
};
void db_outbox_event_free(struct db_outbox_event *e);

/*
 * Claims the oldest due event (undelivered, not dead, next_attempt_at
 * passed, no live lease) for lease_ms milliseconds under owner (a string
 * unique to this claim, <= 128 bytes) and counts the attempt. 1 and *out
 * when one was claimed, 0 when none is due, < 0 on error.
 */
int db_outbox_claim(struct db_pool *pool, const char *owner, long long lease_ms,
                    struct db_outbox_event *out, char *err, size_t errlen);

/* Marks the event delivered (whoever holds the lease now: a delivery is a
 * delivery) and clears last_error. */
int db_outbox_delivered(struct db_pool *pool, long long id, char *err,
                        size_t errlen);

/*
 * Records a failed attempt by owner: last_error (cut to 1024 bytes), the
 * lease dropped, the next attempt in delay_ms; or, when that attempt
 * would come after max_age_s from the event's creation (or its last manual
 * retry), the dead letter (dead_at). *dead (may be NULL) tells which.
 * Nothing changes when owner lost the lease to another node meanwhile.
 */
int db_outbox_failed(struct db_pool *pool, long long id, const char *owner,
                     const char *error, long long delay_ms, long long max_age_s,
                     int *dead, char *err, size_t errlen);

/* Undelivered events not dead, dead letters, and the age in seconds of the
 * oldest undelivered one (0 when none). */
struct db_outbox_stats {
	long long pending, dead;
	double oldest_pending_s;
};
int db_outbox_stats(struct db_pool *pool, struct db_outbox_stats *st, char *err,
                    size_t errlen);

/*
 * The admin list: state "pending" (oldest first) or "dead" (latest dead
 * first), at most limit rows (1..1000), as a JSON array text (malloc()ed,
 * caller frees) of objects {id, type, created_at, attempts,
 * next_attempt_at, last_attempt_at, dead_at, last_error, data}.
 * DB_EINVAL for another state.
 */
int db_outbox_list_json(struct db_pool *pool, const char *state, int limit,
                        char **json, char *err, size_t errlen);

/* Queues a dead letter again now, its age counted afresh from now, with an
 * audit record (outbox.retry) by `by` in the same statement. DB_ENOTFOUND
 * when id is not a dead letter. */
int db_outbox_retry(struct db_pool *pool, long long id,
                    const struct db_actor *by, char *err, size_t errlen);

/*
 * Wake-ups (db/outbox_listen.c): a connection of its own (application_name
 * roomgate-outbox-listen) in LISTEN roomgate_outbox; migration 0016's
 * trigger notifies it when a transaction that wrote an outbox row commits.
 * A hint only -- a lost connection loses notifications, never events.
 * open: 0 with *out (closed by db_outbox_listen_close; NULL is fine) or
 * DB_E*. wait: up to timeout_ms; 1 when notifications came (all are
 * consumed), 0 when none, < 0 when the connection is gone (close it and
 * open another).
 */
struct db_outbox_listen;
int db_outbox_listen_open(const char *conninfo, int connect_timeout_s,
                          struct db_outbox_listen **out, char *err,
                          size_t errlen);
int db_outbox_listen_wait(struct db_outbox_listen *l, int timeout_ms,
                          char *err, size_t errlen);
void db_outbox_listen_close(struct db_outbox_listen *l);

#endif
