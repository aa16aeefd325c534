/*
 * server/authz_sessions.h -- the forward-auth session cache: the DATABASE
 * part of recent positive /v1/authz decisions (a live session holding an
 * admitted admission to a meeting, with the meeting's groups and invitee
 * fact), kept per node so that a repeat request for the same (session,
 * meeting) needs no PostgreSQL round trip. The directory part is never
 * cached here: it is asked every time (the membership cache or live).
 *
 * Only answers that were a whole 200 are kept (a database "yes" the
 * directory then refused is not); every other answer asks the database
 * every time. Keyed by the SHA-256 of the session cookie (never the
 * cookie) and the meeting reference, a meeting id in lower case (any
 * letter case names the same meeting); one entry per (session, meeting):
 * another reference to the same meeting replaces it.
 *
 * Soundness (DESIGN.md: revocation is immediate, everywhere):
 * - every change that can end a cached "yes" notifies LISTEN
 *   roomgate_authz (migration 0025) and each node drops the entries it
 *   names as the notification is read from its connection; while a
 *   notification is being read, or bytes wait unread on that connection,
 *   no entry is served;
 * - while that connection is down, reconnecting or fails its periodic
 *   check, the cache is flushed and bypassed (the database answers);
 * - an entry is served at most [authz] session_cache_ttl_ms after the
 *   read that made it began, never past the session's expiry, its idle
 *   clock's next touch (db_session_touch_s: the touch still happens, on
 *   the read that follows) or the admission's expiry;
 * - a read that began before an invalidation or reconnection it might not
 *   have seen is not stored.
 *
 * [authz] session_cache = auto|on|off (default auto: on exactly where the
 * membership cache runs; live mode stays strictly live unless on),
 * session_cache_ttl_ms (default 2000; 0 turns the cache off),
 * session_cache_max_entries (default 100000; the oldest entry of a full
 * stripe is evicted). Also bounded in bytes, derived: 1 KiB per allowed
 * entry, at least 256 KiB per stripe (16 MiB); an entry over an eighth of
 * its stripe's budget is not stored; at most 16 entries per session (its
 * oldest goes first). Settings are read at start.
 *
 * Thread safety: 64 stripes, each with its own mutex, chosen by the
 * session hash; a hit lends the entry (reference counted) to the request
 * without holding any lock.
 */
#ifndef ROOMGATE_AUTHZ_SESSIONS_H
#define ROOMGATE_AUTHZ_SESSIONS_H

#include <stddef.h>

#include "db/db.h"
#include "db/db_authz.h"
#include "server/server.h"

/*
 * Starts the cache and its LISTEN thread when the settings turn it on.
 * membership_on: whether the membership cache runs on this node (auto).
 * 0 (started or off), -1 with err.
 */
int gate_authz_sessions_start(const struct gate_config *cfg,
                              int membership_on, char *err, size_t errlen);
/* Stops the thread and frees every entry; no request may be in flight. */
void gate_authz_sessions_stop(void);

/* Taken before the database read, handed to _put after it. */
struct gate_authz_ticket {
	int usable;
	unsigned long long gen, stripe_gen;
	long long t0_ns;
};

struct gate_authz_entry;

/*
 * 1 when a fresh positive answer for (id_hash, ref) is cached: *hit is
 * lent to the caller (give it back with _release), *s has identity and
 * idp and *m id, groups and invitees as db_authz_read fills them --
 * pointing into the entry: never free them. 0: ask the database; *t is
 * the ticket for _put. Counts a hit or a miss (when on).
 */
int gate_authz_sessions_get(const unsigned char id_hash[32], const char *ref,
                            struct gate_authz_ticket *t,
                            struct gate_authz_entry **hit,
                            struct db_session *s, struct db_meeting *m);
void gate_authz_sessions_release(struct gate_authz_entry *hit);

/*
 * Stores what db_authz_read found when it is positive (found->admitted),
 * unless something was invalidated since t was taken. touch_s: the
 * session touch interval the read used. Copies everything.
 */
void gate_authz_sessions_put(const struct gate_authz_ticket *t,
                             const unsigned char id_hash[32], const char *ref,
                             const struct db_session *s,
                             const struct db_meeting *m,
                             const struct db_authz_read *found, int touch_s);

/* Drops every entry of identity on this node, now (the revoke's own
 * node does not wait for its notification). */
void gate_authz_sessions_drop_identity(const char *identity);

/*
 * Pure: how many ms an entry may live, from the read's facts (seconds),
 * the TTL and the touch interval; <= 0: do not store. Unit tested.
 */
long long gate_authz_sessions_life_ms(const struct db_authz_read *found,
                                      int ttl_ms, int touch_s);

/* Prometheus lines: roomgate_authz_session_cache_* (enabled, listen
 * connected, entries, hits, misses, stores, invalidations, dropped,
 * flushes, evictions). */
void gate_authz_sessions_metrics(struct gate_buf *b);

#endif
