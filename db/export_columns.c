/*
 * db/export_columns.c -- the audit export's columns (db/db_export.h), apart
 * from the queries so that the pure export code (server/audit_export_parse.c)
 * and its libFuzzer targets link without libpq.
 */
#include "db/db_export.h"

const char *const db_export_columns[DB_EXPORT_NCOLS] = {
    "seq",        "at",         "event_type",    "outcome",
    "reason",     "identity",   "idp",           "meeting_id",
    "matched_group", "source_addr", "forwarded_for", "user_agent",
    "request_id", "node",       "code_ok",       "member_ok",
    "details",    "sealed",     "chain_pos",     "content_hash",
    "chain_hash"};
const int db_export_kinds[DB_EXPORT_NCOLS] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                              0, 0, 0, 2, 2, 3, 2, 1, 0, 0};
