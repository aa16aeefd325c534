/*
 * db/db_audit.h -- what the audit chain keeps in PostgreSQL (migration
 * 0010): the sealer's leader lock, reading committed records in seq order,
 * appending chain entries and signed checkpoints, the retention purge,
 * and the reads `roomgate audit verify` needs. Hashing and signing are
 * server/audit_seal.c's; this file only moves rows.
 *
 * Errors are DB_E* values (db.h) with a message in err.
 */
#ifndef ROOMGATE_DB_AUDIT_H
#define ROOMGATE_DB_AUDIT_H

#include <stddef.h>

#include "db/db.h"

/* pg_try_advisory_lock key of the sealer: "roomseal" in ASCII. */
#define DB_AUDIT_LOCK_KEY "8245931958616809836"

/*
 * The fields of a record that its content hash covers, in this order, as
 * text the way queries_audit.c renders them: at (UTC,
 * YYYY-MM-DDTHH:MM:SS.uuuuuuZ), event_type, outcome, reason, identity,
 * idp, meeting_id (lower-case uuid), matched_group, source_addr
 * (PostgreSQL inet text), forwarded_for, user_agent, request_id, node,
 * code_ok ("t"/"f"), member_ok ("t"/"f"), details (PostgreSQL jsonb text).
 */
#define DB_AUDIT_NFIELDS 16
extern const char *const db_audit_field_names[DB_AUDIT_NFIELDS];

/* One seq as a walk sees it. Pointers are valid during the callback. */
struct db_audit_row {
	long long seq;
	int in_log;   /* the audit_log record exists */
	int in_chain; /* its audit_chain entry exists */
	const char *f[DB_AUDIT_NFIELDS]; /* NULL: SQL NULL (in_log only) */
	size_t len[DB_AUDIT_NFIELDS];
	long long pos; /* in_chain only */
	unsigned char content_hash[32], hash[32];
};
/* Non-zero stops the walk (and is returned). */
typedef int (*db_audit_row_fn)(void *arg, const struct db_audit_row *r);

/* A chain entry to append. */
struct db_audit_link {
	long long seq, pos;
	unsigned char content_hash[32], hash[32];
};

/* A signed checkpoint. body is NUL-terminated; strings are owned by
 * whoever filled the struct (db_audit_ckpts_free for read ones). */
struct db_audit_ckpt {
	long long id;
	char kid[17];
	long long last_seq, count;
	unsigned char last_hash[32];
	char *body;
	unsigned char sig[64];
	const char *node;
	const char *time; /* created_at, as in the body */
};

/* ---- the sealer (one dedicated connection holding the lock) ---------- */

struct db_audit_leader;
/* 1 with *out when this node seals now, 0 when another node does, < 0
 * when the database could not be asked. */
int db_audit_leader_try(const char *conninfo, int connect_timeout_s,
                        struct db_audit_leader **out, char *err,
                        size_t errlen);
int db_audit_leader_alive(struct db_audit_leader *l, char *err, size_t errlen);
void db_audit_leader_release(struct db_audit_leader *l);

/* The newest chain entry (seq, pos, hash); all 0 when none. */
int db_audit_head(struct db_audit_leader *l, long long *seq, long long *pos,
                  unsigned char hash[32], char *err, size_t errlen);
/*
 * In one snapshot: up to limit committed records with seq > after in seq
 * order (cb for each; in_chain is 0), and the snapshot's xmin and xmax
 * (pg_current_snapshot()): every transaction with an id below xmin had
 * ended when the records were read.
 */
int db_audit_pending(struct db_audit_leader *l, long long after, int limit,
                     unsigned long long *xmin, unsigned long long *xmax,
                     db_audit_row_fn cb, void *arg, char *err,
                     size_t errlen);
/* Appends n links and the checkpoint c (may be NULL) in one transaction;
 * c->id is set. */
int db_audit_append(struct db_audit_leader *l, const struct db_audit_link *lk,
                    size_t n, struct db_audit_ckpt *c, char *err,
                    size_t errlen);
/*
 * Retention: purges the records older than cutoff (timestamptz text) up to
 * the newest checkpoint that allows it (audit_purge() in migration 0010).
 * *purged: records deleted (0: nothing due), *upto: the checkpoint's seq.
 */
int db_audit_purge(struct db_pool *pool, const char *cutoff, const char *node,
                   long long *purged, long long *upto, char *err,
                   size_t errlen);

/* ---- verification ------------------------------------------------------ */

/* The newest purge: the checkpoint verify starts from and its seq (0
 * when none). */
int db_audit_anchor(struct db_pool *pool, long long *ckpt_id, long long *upto,
                    char *err, size_t errlen);
/* The last_seq of the newest checkpoint below seq (0: none). */
int db_audit_ckpt_before(struct db_pool *pool, long long seq,
                         long long *last_seq, char *err, size_t errlen);
/* Checkpoints with last_seq > min_seq or id = also_id, by last_seq. */
int db_audit_ckpts(struct db_pool *pool, long long min_seq, long long also_id,
                   struct db_audit_ckpt **out, size_t *n, char *err,
                   size_t errlen);
void db_audit_ckpts_free(struct db_audit_ckpt *c, size_t n);
/*
 * Every seq in (after, upto] (upto 0: no end) that has a record or a chain
 * entry, in seq order, read in batches within one snapshot.
 */
int db_audit_walk(struct db_pool *pool, long long after, long long upto,
                  db_audit_row_fn cb, void *arg, char *err, size_t errlen);
/* The seq of the chain entry with this content hash nearest to near
 * (0 when none within a million). */
int db_audit_find_content(struct db_pool *pool, const unsigned char ch[32],
                          long long near, long long *seq, char *err,
                          size_t errlen);
/* The seq of the first record at or after time (timestamptz text), or
 * with last of the last one at or before it; 0 when none. */
int db_audit_seq_at(struct db_pool *pool, const char *time, int last,
                    long long *seq, char *err, size_t errlen);
/* The newest chained seq (0: none). */
int db_audit_max_chained(struct db_pool *pool, long long *seq, char *err,
                         size_t errlen);

/* The newest checkpoint's last_seq (0: no checkpoint at all). */
int db_audit_max_ckpt(struct db_pool *pool, long long *seq, char *err,
                      size_t errlen);

/* The newest retention purge as verify checks it (id 0: none). Times are
 * UTC text as in a checkpoint ("" when NULL). */
struct db_audit_purge {
	long long id, upto_seq, checkpoint_id, records;
	long long ckpt_last_seq; /* last_seq of checkpoint_id; -1: gone */
	char cutoff[40], at[40];
	/* the audit.purge record after it naming the same purge (0: none) */
	long long rec_seq;
	int rec_sealed; /* it has a chain entry */
	char rec_at[40];
	/* cutoff <= the record's at - retention_days */
	int cutoff_ok;
	/* purges (any) whose upto_seq is not their checkpoint's last_seq */
	long long inconsistent;
};
int db_audit_purge_newest(struct db_pool *pool, int retention_days,
                          struct db_audit_purge *out, char *err,
                          size_t errlen);
/* The checkpoint at last_seq: *found 1 and out filled (free out->body),
 * or *found 0. */
int db_audit_ckpt_at(struct db_pool *pool, long long last_seq,
                     struct db_audit_ckpt *out, int *found, char *err,
                     size_t errlen);
/*
 * *separated 0 when the connected role owns audit_log (or is a member of
 * its owner, or a superuser) and so can switch its triggers off; owner
 * receives the owner's name.
 */
int db_audit_role_check(struct db_pool *pool, int *separated, char *owner,
                        size_t ownerlen, char *err, size_t errlen);

#endif
