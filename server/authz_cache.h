/*
 * server/authz_cache.h -- the forward-auth membership cache: every node
 * runs a directory sync follower of its own (dir_watch_open_follower: no
 * lock, no database) and /v1/authz asks it first. It only ever answers
 * "yes, admit" -- an active member of one of the meeting's groups, or an
 * invitee the directory knows as active -- and only while the follower
 * is connected and caught up (dir_watch_usable); everything else goes to
 * the live check, so it can never deny what the live check would admit.
 *
 * [authz] membership_cache = on|off (default off). It runs only where
 * the directory watcher runs ([directory] watch = on, or auto with
 * active = openldap): with watch = off it refuses to start, with auto
 * and the watcher off it stays off with a warning.
 *
 * One cache per process; gate_authz_cache_start / _stop from the
 * watcher's start and stop (server/watcher.c).
 */
#ifndef ROOMGATE_AUTHZ_CACHE_H
#define ROOMGATE_AUTHZ_CACHE_H

#include <stddef.h>

#include "db/db.h"
#include "server/server.h"

/*
 * Starts the follower thread when [authz] membership_cache = on. watching:
 * whether this node runs the directory watcher thread (see above). dc: the
 * pool's directory settings (copied). 0 when started or off on purpose;
 * -1 with err for a setup it cannot follow (it names the setting).
 */
int gate_authz_cache_start(const struct gate_config *cfg,
                           const struct dir_config *dc, int watching, char *err,
                           size_t errlen);
/* Stops the thread (within about a second). No-op when not started. */
void gate_authz_cache_stop(void);

/*
 * 1 when the cache admits identity to meeting m right now: *group is the
 * meeting's group that matched (a string of m) or "invitee". 0: ask the
 * directory live. The same rule as gate_admit_member (server/admit.h).
 */
int gate_authz_cache_admits(const struct db_meeting *m, const char *identity,
                            const char **group);

/* Pure: the decision from the follower's answer (unit tested). answer is
 * an enum dir_watch_answer, gi the group index it gave. */
int gate_authz_cache_decide(const struct db_meeting *m, const char *identity,
                            int answer, int gi, const char **group);

/* Counts one /v1/authz directory decision by where it came from. */
void gate_authz_cache_count(int from_cache);

/* Prometheus lines: roomgate_authz_cache_active, _decisions_total{source},
 * entries, follower connects / disconnects. */
void gate_authz_cache_metrics(struct gate_buf *b);

#endif
