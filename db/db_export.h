/*
 * db/db_export.h -- reading the audit trail for compliance: the streamed
 * export (a server-side cursor in one REPEATABLE READ, READ ONLY
 * transaction on a connection of its own, so memory stays flat whatever
 * the size and the pool is not held for minutes), the record of finished
 * exports and their signed manifests, the access review and the
 * failed-attempt figures.
 *
 * Errors are DB_E* values (db.h) with a message in err. Strings passed in
 * are borrowed.
 */
#ifndef ROOMGATE_DB_EXPORT_H
#define ROOMGATE_DB_EXPORT_H

#include <stddef.h>

#include "db/db.h"

/*
 * The canonical text of the DB_AUDIT_NFIELDS hashed fields of audit_log a
 * (db_audit.h), as SQL select items: what the sealer and `audit verify`
 * hash (queries_audit.c) and what the export prints. Booleans come out of
 * libpq's text format as t / f.
 */
#define DB_AUDIT_FIELDS_SQL                                                \
	"to_char(a.at AT TIME ZONE 'UTC', "                                 \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), a.event_type, a.outcome, "    \
	"a.reason, a.identity, a.idp, a.meeting_id::text, a.matched_group, " \
	"a.source_addr::text, a.forwarded_for, a.user_agent, a.request_id, " \
	"a.node, a.code_ok, a.member_ok, a.details::text"

/* Which records: from inclusive, to exclusive (Unix microseconds; from 0:
 * from the first record). NULL strings: any. */
struct db_export_filter {
	long long from_us, to_us;
	const char *meeting_id; /* uuid text */
	const char *identity;
	const char *outcome; /* allow, deny, error, info */
};

/*
 * The exported columns, in order (also the CSV header and JSON keys): seq,
 * then the DB_AUDIT_NFIELDS fields a record's content hash covers, in that
 * order and exactly as it hashes them (DB_AUDIT_FIELDS_SQL; code_ok /
 * member_ok as t / f), then sealed (the record has a chain entry), chain_pos,
 * content_hash and chain_hash (the entry's link hash; hex), empty when not
 * sealed.
 */
#define DB_EXPORT_NCOLS 21
extern const char *const db_export_columns[DB_EXPORT_NCOLS];
/* Column kinds for JSON: 0 text, 1 integer, 2 boolean, 3 JSON text. */
extern const int db_export_kinds[DB_EXPORT_NCOLS];
enum {
	DB_EXPORT_COL_SEQ = 0,
	DB_EXPORT_COL_AT = 1, /* the first hashed field */
	DB_EXPORT_COL_CODE_OK = 14,
	DB_EXPORT_COL_MEMBER_OK = 15,
	DB_EXPORT_COL_DETAILS = 16,
	DB_EXPORT_COL_SEALED = 17,
	DB_EXPORT_COL_POS = 18,
	DB_EXPORT_COL_CONTENT = 19,
	DB_EXPORT_COL_LINK = 20
};

struct db_export;
/*
 * Opens a connection of its own to conninfo (statement_timeout_ms applies
 * to each FETCH, not to the whole export), starts a REPEATABLE READ READ
 * ONLY transaction and declares the cursor, ordered by seq. with_count:
 * also counts the matching records first (*total; the CLI's progress).
 * last_checkpoint (may be NULL) receives the newest audit checkpoint in
 * the same snapshot as JSON text (malloc()ed) or NULL when there is none
 * or the schema has no checkpoints yet. Free with db_export_close().
 */
int db_export_open(const char *conninfo, int connect_timeout_s,
                   int statement_timeout_ms,
                   const struct db_export_filter *f, int with_count,
                   long long *total, char **last_checkpoint,
                   struct db_export **out, char *err, size_t errlen);
/* 1 and *row (DB_EXPORT_NCOLS values, NULL for SQL NULL; valid until the
 * next call) for the next record, 0 at the end, < 0 on error. */
int db_export_next(struct db_export *x, const char *const **row, char *err,
                   size_t errlen);
void db_export_close(struct db_export *x);

/*
 * Keeps a finished export's manifest (the exact signed text) under its id
 * and writes the audit record "audit.export" (info, by identity) in the
 * same transaction. details_json: the record's details.
 */
int db_export_record(struct db_pool *pool, const char *export_id,
                     const char *identity, const char *format,
                     const char *manifest, const char *details_json,
                     const struct db_actor *by, char *err, size_t errlen);
/* 1 and *manifest (malloc()ed) when the export is known, 0 when not. */
int db_export_manifest(struct db_pool *pool, const char *export_id,
                       char **manifest, char *err, size_t errlen);

/* ---- read-only result tables (access review, attempts) ---------------- */

struct db_table {
	int nrows, ncols;
	void *res; /* private */
};
/* The value at row, col; NULL for SQL NULL. */
const char *db_table_get(const struct db_table *t, int row, int col);
void db_table_free(struct db_table *t);

/*
 * Access review of a meeting for one UTC day (day_start_us, +24 h): every
 * admission that was in force at some moment of the day (admitted before
 * its end, not ended before its start). Columns: identity, matched_group,
 * admitted_at, ended_at, state, revoke_reason, decided_by, admission_id,
 * idp (times RFC 3339 UTC), ordered by identity, admitted_at.
 */
int db_access_review(struct db_pool *pool, const char *meeting_id,
                     long long day_start_us, struct db_table *out, char *err,
                     size_t errlen);

/* The attempts query's scope: meeting_id NULL: every meeting. */
struct db_attempts_q {
	const char *meeting_id;
	long long from_us, to_us;
	long long interval_s;
	int top; /* rows kept for by-identity / by-source lists */
};
/*
 * Admission attempts per interval, by outcome and reason: columns bucket
 * (index from from_us), outcome, reason, count.
 */
int db_attempts_buckets(struct db_pool *pool, const struct db_attempts_q *q,
                        struct db_table *out, char *err, size_t errlen);
/* Failed attempts by identity (by_source 0) or by source address (1):
 * key, failures, distinct reasons as a comma list, first, last (RFC 3339),
 * most failures first, at most q->top rows. */
int db_attempts_by(struct db_pool *pool, const struct db_attempts_q *q,
                   int by_source, struct db_table *out, char *err,
                   size_t errlen);
/* Lockouts (answers "locked") per identity: identity, count, first, last;
 * and probing flags in range ("meeting.probed" records): meeting_id, at,
 * failed_identities. */
int db_attempts_lockouts(struct db_pool *pool, const struct db_attempts_q *q,
                         struct db_table *out, char *err, size_t errlen);
int db_attempts_probes(struct db_pool *pool, const struct db_attempts_q *q,
                       struct db_table *out, char *err, size_t errlen);
/* When the meeting was flagged as probed (RFC 3339 UTC into out), 1; 0
 * when it never was (or there is no such meeting). */
int db_meeting_probed_at(struct db_pool *pool, const char *meeting_id,
                         char out[40], char *err, size_t errlen);

#endif
