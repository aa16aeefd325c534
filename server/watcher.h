/*
 * server/watcher.h -- push revocation: runs the directory watcher
 * (directory.h, dir_watch_*) on the one node that holds the watcher lock
 * (db/db_watch.h) and turns each directory change into ended admissions
 * and sessions, audit records and outbox events (db_watch_apply).
 *
 * Every node runs a gate_watcher thread: it tries the lock every
 * [directory] watch_retry_ms; the node that holds it runs the watcher
 * (a full refresh first, which also reconciles what changed while no
 * node watched) until it stops, loses the lock's connection or dies --
 * then another node takes over.
 */
#ifndef ROOMGATE_WATCHER_H
#define ROOMGATE_WATCHER_H

#include <stddef.h>

#include "server/server.h"

struct gate_watcher;
/*
 * Starts the thread when [directory] watch is on (or auto with active =
 * openldap); *out stays NULL (and a log line says so) when off. With
 * watch = on, fails on a setup the watcher cannot follow (no base, a
 * user_filter without (attr={identity})); with auto such a setup leaves
 * the watcher off with a warning. dc: the directory settings of the pool (copied).
 * The app must outlive it.
 */
int gate_watcher_start(struct gate_app *app, const struct dir_config *dc,
                       struct gate_watcher **out, char *err, size_t errlen);
/* Stops the watcher (within about a second) and releases the lock. NULL
 * is fine. */
void gate_watcher_stop(struct gate_watcher *w);

/* Prometheus lines for this node's watcher (none when it does not run)
 * and the shared state in the database. */
void gate_watcher_metrics(struct gate_buf *b, struct db_pool *db);

#endif
