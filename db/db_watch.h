/*
 * db/db_watch.h -- what the directory watcher (server/watcher.c) keeps in
 * PostgreSQL: the leader lock, the sync cookie, and the revocations it
 * applies.
 *
 * Exactly one watcher runs across nodes: the one whose dedicated
 * connection holds a session advisory lock (DB_WATCH_LOCK_KEY). The lock
 * ends with that connection, so a node that dies (kill -9, lost network)
 * hands over as soon as PostgreSQL notices; the others try again every
 * few seconds.
 *
 * Errors are DB_E* values (db.h) with a message in err.
 */
#ifndef ROOMGATE_DB_WATCH_H
#define ROOMGATE_DB_WATCH_H

#include <stddef.h>

#include "db/db.h"

/* pg_try_advisory_lock key: "roomgate" in ASCII. */
#define DB_WATCH_LOCK_KEY "8245071146339856485"

struct db_watch_leader;
/*
 * Opens a connection of its own (application_name roomgate-watch) and
 * tries the lock once. 1 with *out when this node leads now (the caller
 * keeps *out, and so the lock, until db_watch_leader_release), 0 when
 * another node holds it (nothing kept), < 0 when the database could not
 * be asked. Also records node as leader in directory_watch.
 */
int db_watch_leader_try(const char *conninfo, int connect_timeout_s,
                        const char *node, struct db_watch_leader **out,
                        char *err, size_t errlen);
/* A round trip on the lock's connection: 0 while it (and the lock)
 * lives. */
int db_watch_leader_alive(struct db_watch_leader *l, char *err, size_t errlen);
/* Closes the connection, which ends the lock. NULL is fine. */
void db_watch_leader_release(struct db_watch_leader *l);

/* The sync cookie (len bytes, any bytes) of the leading watcher. */
int db_watch_cookie_save(struct db_pool *pool, const char *cookie, size_t len,
                         char *err, size_t errlen);

/* Stored group names that mean group_dn (the watcher's normalized DN):
 * returns non-zero when stored names the same group. */
typedef int (*db_watch_same_group_fn)(const char *stored, const char *group_dn);

enum db_watch_kind {
	DB_WATCH_LOST = 1,     /* identity left group_dn */
	DB_WATCH_DISABLED,     /* identity's entry turned inactive */
	DB_WATCH_DELETED,      /* identity's entry is gone */
	DB_WATCH_GROUP_MEMBERS /* group_dn seen whole: revocable() says who
	                          is not in it */
};

struct db_watch_change {
	int kind; /* enum db_watch_kind */
	const char *identity;
	const char *group_dn;
	const char *const *members; /* GROUP_MEMBERS: for the log only */
	size_t nmembers;
	const char *node;
	/* GROUP_MEMBERS: non-zero for an identity whose admissions that
	 * depend on group_dn may end; NULL: none may. */
	int (*revocable)(const void *ctx, const char *identity);
	const void *revocable_ctx;
};

/*
 * Applies one change in one statement (so in one transaction): the live
 * admissions (admitted / waiting) that depended on it become revoked
 * (LOST, GROUP_MEMBERS: those whose matched_group is group_dn, for the
 * identity / for the identities revocable() answers non-zero for --
 * asked once for each distinct identity of those admissions --, reason
 * directory_removed;
 * DISABLED: every one of the identity's, directory_disabled; DELETED:
 * likewise, directory_removed), for DISABLED and DELETED the identity's
 * live sessions end too; one audit record per admission and session
 * ended, and outbox events admission.revoked (one per admission) and
 * session.revoked (one per identity whose sessions ended). Nothing is
 * written when nothing was live. *admissions and *sessions say how many
 * ended.
 */
int db_watch_apply(struct db_pool *pool, const struct db_watch_change *c,
                   db_watch_same_group_fn same, long *admissions,
                   long *sessions, char *err, size_t errlen);

/* What every node's metrics show (from the database). */
struct db_watch_status {
	char leader_node[257]; /* "" when none recorded */
	double cookie_age_s;   /* since the cookie last moved; -1: none */
	double change_age_s;   /* since the last applied change; -1 */
	long long changes_applied;
};
int db_watch_status(struct db_pool *pool, struct db_watch_status *st, char *err,
                    size_t errlen);

#endif
