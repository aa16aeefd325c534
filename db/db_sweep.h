/*
 * db/db_sweep.h -- housekeeping of rows that no longer mean anything.
 *
 * Lockout counters are written on every failed attempt (per identity and
 * meeting, per source address, per meeting), so a flood of wrong codes from
 * many addresses leaves one row per address behind. A row whose window is
 * over, whose lock has ended and which has been quiet for longer than the
 * longest lock is indistinguishable from no row at all (the next failure
 * starts a new window and, after such a quiet spell, forgets earlier
 * locks), so deleting it changes no decision.
 */
#ifndef ROOMGATE_DB_SWEEP_H
#define ROOMGATE_DB_SWEEP_H

#include <stddef.h>

#include "db/db.h"

/*
 * Deletes up to `limit` lockout counters untouched for more than quiet_s
 * seconds and not locked now; *deleted is set to how many went. quiet_s must
 * cover the longest counting window and the longest lock (the caller
 * passes the largest of them). 0 or a DB_E* error.
 */
int db_sweep_lockouts(struct db_pool *pool, long long quiet_s, int limit,
                      int *deleted, char *err, size_t errlen);

/*
 * Rows of other tables that have outlived their use, deleted by the same
 * housekeeping pass so no table grows for ever:
 * - SAML requests (AuthnRequests sent, answered or not) past expiry: any
 *   visitor can make one by opening /saml/login;
 * - SAML replay entries past the assertion's own expiry (a replay is
 *   refused by the assertion's time checks from then on);
 * - sessions past expiry (revoked ones too: a revoked session cannot come
 *   back, and a lookup that finds no row refuses the same way); an
 *   admission keeps its history (session_hash set to NULL);
 * - webhook events delivered, or given up (dead-lettered and not queued
 *   again), a while ago;
 * - admissions that ended (revoked, expired, turned away) before the
 *   audit retention's cutoff: the access review reads them, so they go
 *   only when the audit records of the same time may go.
 */
enum db_sweep_kind {
	DB_SWEEP_SAML_REQUESTS,
	DB_SWEEP_SAML_REPLAY,
	DB_SWEEP_SESSIONS,
	DB_SWEEP_OUTBOX_DELIVERED,
	DB_SWEEP_OUTBOX_DEAD,
	DB_SWEEP_ADMISSIONS_ENDED,
	DB_SWEEP_NKINDS
};

/* The table (and which of its rows) a kind deletes, for logs and metrics:
 * "saml_requests", ..., "outbox_delivered", "admissions_ended". */
const char *db_sweep_kind_name(enum db_sweep_kind kind);

/*
 * Deletes up to `limit` rows of one kind whose time (expiry, delivery,
 * dead-lettering, end) lies more than older_than_s seconds in the past,
 * oldest first, skipping rows another transaction holds; *deleted is set to
 * how many went. older_than_s >= 0, limit >= 1. 0 or a DB_E* error.
 */
int db_sweep_old(struct db_pool *pool, enum db_sweep_kind kind,
                 long long older_than_s, int limit, int *deleted, char *err,
                 size_t errlen);

#endif
