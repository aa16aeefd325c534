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

#endif
