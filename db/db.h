/*
 * db/ -- PostgreSQL access for roomgate: a thread-safe libpq connection
 * pool with reconnect, versioned SQL migrations, and (in later issues) the
 * queries, the audit chain, the outbox and the export.
 *
 * This is the only header other folders include. libpq types stay inside
 * db/: callers hold opaque handles. Every SQL statement is sent with
 * parameters (PQexecParams); no caller-provided text is ever spliced into
 * SQL.
 *
 * Errors: functions return 0 on success and a negative DB_E* value on
 * failure, and write a message a person can act on into err (always
 * NUL-terminated when errlen > 0). Messages never contain the password.
 */
#ifndef ROOMGATE_DB_H
#define ROOMGATE_DB_H

#include <stddef.h>
#include <stdint.h>

enum {
	DB_OK = 0,
	DB_EINVAL = -1,	 /* bad configuration or argument */
	DB_EUNAVAIL = -2, /* server unreachable, connection lost */
	DB_ETIMEOUT = -3, /* no pool connection free within acquire_timeout */
	DB_EQUERY = -4,	 /* the server rejected a statement */
	DB_ENOMEM = -5,
	DB_ESCHEMA = -6,  /* the database schema does not fit this binary:
			   * a migration changed after it was applied, or the
			   * database is newer than the binary. Not retryable. */
};

struct db_config {
	const char *conninfo;	/* libpq URI or key=value string */
	int pool_size;		/* connections kept, >= 1 */
	int connect_timeout_s;	/* libpq connect_timeout, >= 1 */
	int statement_timeout_ms; /* server-side per-statement limit */
	int acquire_timeout_ms; /* longest wait for a free connection */
};

struct db_pool;
struct db_conn;

/*
 * Creates a pool. Validates conninfo (PQconninfoParse) but does not need
 * the server to be up: connections are made on first use and remade after
 * they break, so the service starts and becomes ready when the database
 * does. The strings in cfg are copied. On success *out is owned by the
 * caller and freed with db_pool_close(), which must not be called while a
 * connection is borrowed or a thread is inside db_acquire()/db_ping().
 */
int db_pool_open(const struct db_config *cfg, struct db_pool **out,
		 char *err, size_t errlen);
void db_pool_close(struct db_pool *pool);

/*
 * Borrows a connected connection, waiting at most acquire_timeout_ms for a
 * free one (DB_ETIMEOUT) and reconnecting a broken one (DB_EUNAVAIL if the
 * server cannot be reached). Give it back with db_release() exactly once.
 * db_release() rolls back a transaction left open and drops a connection
 * that is broken or busy, so the next borrower always gets a clean one.
 * Queries on a borrowed connection use the helpers in db/ (later issues).
 */
int db_acquire(struct db_pool *pool, struct db_conn **out, char *err,
	       size_t errlen);
void db_release(struct db_pool *pool, struct db_conn *conn);

/*
 * Readiness probe: a round trip ("SELECT 1") on a pooled connection. A
 * connection found dead is replaced and the probe tried once more, so the
 * first probe after a database restart already answers correctly.
 */
int db_ping(struct db_pool *pool, char *err, size_t errlen);

struct db_pool_stats {
	int size;		/* configured connections */
	int in_use;		/* borrowed right now */
	int connected;		/* slots with a live connection */
	int waiting;		/* threads waiting in db_acquire */
	uint64_t connects;	/* successful (re)connects since open */
	uint64_t connect_failures;
	uint64_t acquire_timeouts;
};
void db_pool_get_stats(struct db_pool *pool, struct db_pool_stats *st);

/* ---- meetings, access codes, API tokens (queries_meetings.c,
 * queries_tokens.c) -------------------------------------------------------
 *
 * Codes reach the database only as a keyed hash and a sealed copy made by
 * server/ with keys the database never sees. Times are Unix seconds (0:
 * none). Strings passed in are borrowed; strings in returned structs are
 * malloc()ed and freed by the struct's free function.
 */
enum {
	DB_ECONFLICT = -20, /* a unique rule refused the write (err names it) */
	DB_ENOTFOUND = -21  /* no such row (or not live) */
};

struct db_meeting {
	char id[37];	  /* uuid, made by the caller on create */
	char link_id[65]; /* URL-safe random, made by the caller */
	char *title, *host_identity, *platform_room;
	char **groups;	 /* allowed group DNs */
	size_t ngroups;
	char **invitees; /* directory identities */
	size_t ninvitees;
	int waiting_room;
	long long starts_at, ends_at; /* 0: none */
	int code_length;
	long long rotation_interval_s; /* 0: on demand only */
	long long grace_period_s;
	/* read only */
	long long created_at, updated_at, archived_at, code_rotates_at;
	int code_version;
};
void db_meeting_free(struct db_meeting *m);

/* A code as stored: never the code itself. */
struct db_code {
	unsigned char hash[32]; /* HMAC-SHA-256 */
	unsigned char sealed[64];
	size_t sealed_len;
	char key_id[65];
	char source[16]; /* "generated" or "custom" */
	/* read only */
	int version;
	char state[16]; /* current, previous */
	long long valid_from, grace_until;
};

/* Who did it and from where, for the audit record (borrowed strings; any
 * may be NULL): the request context every administrative record carries.
 * idp: the IdP the actor signed in with; via: "session" or "token:NAME"
 * (kept in details); forwarded_for: X-Forwarded-For as received. */
struct db_actor {
	const char *identity, *request_id, *node, *source_addr;
	const char *idp, *forwarded_for, *user_agent, *via;
};

/* One audit_log record of a request that is not an admission (role use,
 * a code read, a forward-auth denial). by: identity, IdP and request
 * facts; code_ok, member_ok: 1, 0 or -1 (not known). Borrowed strings,
 * NULL where none. Never a code, session id, token or assertion. */
struct db_audit_rec {
	const char *event_type, *outcome, *reason;
	const char *meeting_id, *matched_group;
	int code_ok, member_ok;
	const char *details_json; /* JSON object or NULL */
	const struct db_actor *by;
};
/* Writes it on its own (autocommit). 0 or DB_E*. (queries_authz.c) */
int db_audit_write(struct db_pool *pool, const struct db_audit_rec *a,
		   char *err, size_t errlen);

/* Creates the meeting, its invitees and its first code in one
 * transaction. DB_ECONFLICT when platform_room is taken by a live
 * meeting ("platform_room"). */
int db_meeting_create(struct db_pool *pool, const struct db_meeting *m,
		      const struct db_code *code, const struct db_actor *by,
		      char *err, size_t errlen);
/* DB_ENOTFOUND when there is no such meeting (archived ones are found). */
int db_meeting_get(struct db_pool *pool, const char *id,
		   struct db_meeting *out, char *err, size_t errlen);
/* Replaces the mutable fields (title, groups, invitees, waiting room,
 * times, rotation interval, grace period, platform room). A changed
 * rotation interval reschedules the next rotation from now. DB_ENOTFOUND
 * for an unknown or archived meeting, DB_ECONFLICT as for create. */
int db_meeting_update(struct db_pool *pool, const struct db_meeting *m,
		      const struct db_actor *by, char *err, size_t errlen);
/* Archives (idempotent for an archived meeting); its codes stop working. */
int db_meeting_archive(struct db_pool *pool, const char *id,
		       const struct db_actor *by, char *err, size_t errlen);
/*
 * Newest first. host: only that host's meetings (NULL: all). after: the
 * last id of the previous page (NULL: first page). On success *out (n
 * entries, free each with db_meeting_free() and the array with free()).
 */
int db_meeting_list(struct db_pool *pool, const char *host,
		    int include_archived, const char *after, int limit,
		    struct db_meeting **out, size_t *n, char *err,
		    size_t errlen);

/* The current code of a live meeting. DB_ENOTFOUND if none. */
int db_code_current(struct db_pool *pool, const char *meeting_id,
		    struct db_code *out, char *err, size_t errlen);
/*
 * The codes a typed code is checked against: the current one and, during
 * its grace period, the previous one. *n is 0 for an archived or unknown
 * meeting. out[0] is the current code.
 */
int db_code_live(struct db_pool *pool, const char *meeting_id,
		 struct db_code out[2], size_t *n, char *err, size_t errlen);

/*
 * Rotates: the current code becomes "previous" until now + grace_s (or is
 * retired at once when grace_s is 0), an older previous code is retired,
 * code becomes current with the next version, and code_length (if > 0)
 * becomes the meeting's. Records the rotation in audit_log (no code).
 * reason: "rotate" or "scheduled". only_if_due: skip (DB_ENOTFOUND) unless
 * the meeting's scheduled rotation is due -- two nodes never rotate twice.
 * On success *version receives the new version.
 */
int db_code_rotate(struct db_pool *pool, const char *meeting_id,
		   const struct db_code *code, int code_length,
		   long long grace_s, const char *reason, int only_if_due,
		   const struct db_actor *by, int *version, char *err,
		   size_t errlen);

/*
 * Scheduled rotation: if this node gets the rotation advisory lock
 * (pg_try_advisory_lock, so only one node works at a time), calls make()
 * for each live meeting whose code_rotates_at has passed (at most limit)
 * and rotates it with the meeting's own grace period; the lock is held
 * until the batch ends. *rotated (may be NULL) counts rotations; 0 with
 * *rotated = 0 when another node holds the lock.
 */
typedef int (*db_code_maker)(void *ctx, const char *meeting_id,
			     int code_length, struct db_code *out);
int db_rotation_run(struct db_pool *pool, int limit, db_code_maker make,
		    void *ctx, const char *node, int *rotated, char *err,
		    size_t errlen);

/* ---- API tokens ---- */
struct db_token {
	char id[37];
	char name[65];
	char role[16];	    /* host, admin, compliance */
	char identity[257]; /* who the token acts as */
	long long created_at, revoked_at;
};
/* hash: SHA-256 of the token; the token itself is never stored.
 * DB_ECONFLICT when a live token already has this name. */
int db_token_create(struct db_pool *pool, const char *name, const char *role,
		    const char *identity, const unsigned char hash[32],
		    struct db_token *out, char *err, size_t errlen);
/* 1 and *out for a live token with this hash, 0 for none (unknown or
 * revoked), < 0 on a database error. */
int db_token_lookup(struct db_pool *pool, const unsigned char hash[32],
		    struct db_token *out, char *err, size_t errlen);
/* Revokes by id or name. DB_ENOTFOUND if no live token matches. */
int db_token_revoke(struct db_pool *pool, const char *id_or_name,
		    char *err, size_t errlen);
/* Every token, newest first (include_revoked: also revoked ones). */
int db_token_list(struct db_pool *pool, int include_revoked,
		  struct db_token **out, size_t *n, char *err, size_t errlen);

/*
 * Migrations: the SQL files under db/migrations/ (NNNN_name.sql), embedded
 * in the binary at build time, applied in order, each in its own
 * transaction together with its row in schema_migrations. A
 * session-level advisory lock serializes concurrent runs from several
 * nodes; a run that finds everything applied changes nothing.
 *
 * *applied (may be NULL) receives how many migrations this call applied
 * (also on failure: the ones before the failing one stay applied).
 *
 * Errors: DB_EINVAL (conninfo), DB_EUNAVAIL (cannot connect, connection
 * lost), DB_EQUERY ("migration 0002_x failed at line 7: <server message>";
 * that migration was rolled back), DB_ESCHEMA (a recorded migration differs
 * from the built-in one, or the database has a version this binary does not
 * know: an old binary must not run against a newer schema).
 */
int db_migrate(const char *conninfo, int *applied, char *err, size_t errlen);

/* The highest migration version built into this binary. */
int db_migrations_latest(void);

/* ---- SAML and sessions (queries_saml.c) -------------------------------
 *
 * Hashes are 32 raw bytes (SHA-256 of a browser-held random value); the
 * random values themselves never reach the database. Strings passed in
 * are borrowed; strings returned are malloc()ed for the caller.
 */

/* Records a pending AuthnRequest bound to one browser, for ttl_s. */
int db_saml_request_put(struct db_pool *pool, const char *request_id,
			const unsigned char binding_hash[32],
			const char *return_path, int ttl_s, char *err,
			size_t errlen);
/* Marks the pending request request_id of this browser used. 1 and
 * *return_path (caller frees) if it was pending, unexpired and bound to
 * binding_hash; 0 if not; < 0 on a database error. */
int db_saml_request_take(struct db_pool *pool, const char *request_id,
			 const unsigned char binding_hash[32],
			 char **return_path, char *err, size_t errlen);
/* Adds an assertion id to the replay cache, kept until `until` (Unix
 * time). 1 if new, 0 if already seen (a replay), < 0 on error. */
int db_saml_replay_add(struct db_pool *pool, const char *assertion_id,
		       long long until, char *err, size_t errlen);

struct db_session_new {
	const unsigned char *id_hash; /* 32 bytes */
	const char *identity, *idp, *name_id;
	const char *name_id_format, *session_index; /* may be NULL */
	const char *authn_instant;  /* xsd:dateTime or NULL */
	const char *attributes_json; /* JSON object or NULL */
	int absolute_timeout_s;
	const char *source_addr, *user_agent; /* may be NULL */
};
int db_session_create(struct db_pool *pool, const struct db_session_new *s,
		      char *err, size_t errlen);

/* A live session; every string malloc()ed, freed by db_session_free(). */
struct db_session {
	char *identity, *idp, *name_id, *name_id_format, *session_index;
	char *authn_instant, *attributes_json, *expires_at;
};
/* 1 and *out when the session is live (and marks it used, writing
 * last_seen_at only when older than db_session_touch_s()), 0 when it is
 * unknown, revoked, expired or idle too long, < 0 on error. */
int db_session_get(struct db_pool *pool, const unsigned char id_hash[32],
		   int idle_timeout_s, struct db_session *out, char *err,
		   size_t errlen);
void db_session_free(struct db_session *s);
/* How stale (seconds) a session's last_seen_at may get before using the
 * session writes it again: a sixteenth of idle_timeout_s, at most 60, so
 * a session ends at most that much before its exact idle timeout. Every
 * reader that moves last_seen_at uses this rule (db_session_get; the
 * admission read's touch_s). */
int db_session_touch_s(int idle_timeout_s);
/* reason: a sessions.revoke_reason value ('logout', 'idp_logout'...). */
int db_session_revoke(struct db_pool *pool, const unsigned char id_hash[32],
		      const char *reason, char *err, size_t errlen);

/* Ends the live sessions of one subject of one IdP (an IdP-initiated
 * logout); session_index NULL: all of them. *count: how many. */
int db_session_revoke_subject(struct db_pool *pool, const char *idp,
			      const char *name_id, const char *session_index,
			      const char *reason, long *count, char *err,
			      size_t errlen);

/* One audit_log row for sign-in events (event_type 'sso'/'logout').
 * Every field may be NULL except event_type and outcome. */
struct db_audit_sso {
	const char *event_type, *outcome, *reason, *identity, *idp;
	const char *source_addr, *user_agent, *request_id, *node;
	const char *details_json;
	const char *forwarded_for; /* X-Forwarded-For as received */
};
int db_audit_sso(struct db_pool *pool, const struct db_audit_sso *a,
		 char *err, size_t errlen);

/* ---- admission decisions (queries_admit.c) -----------------------------
 *
 * One attempt to join a meeting: the audit record, the lockout counters
 * and (when admitted) the admission row are written in one transaction,
 * so an answer is only sent for an attempt that is on record.
 */

/* The live (not archived) meeting behind a join link. DB_ENOTFOUND for
 * an unknown or archived one. *out as for db_meeting_get(). */
int db_admit_meeting_by_link(struct db_pool *pool, const char *link_id,
			     struct db_meeting *out, char *err, size_t errlen);

/*
 * Everything an admission attempt reads, in one round trip (two pipelined
 * statements on one connection): the live session behind the cookie hash
 * (as db_session_get, but last_seen_at is written only when older than
 * touch_s seconds, so most attempts write nothing here), the live meeting
 * behind link (NULL: none asked), its live codes (as db_code_live), and
 * the later end of the locks in force on "<meeting id> <identity>" (or
 * "unknown-link <identity>") and on src_key, and a fresh id for the
 * admission this attempt may make. Strings malloc()ed; free with
 * db_admit_ctx_free, also after a failure. 0 or DB_E*.
 */
struct db_admit_ctx {
	int have_session;
	struct db_session session;
	int have_meeting;
	struct db_meeting meeting;
	struct db_code codes[2]; /* live codes, newest first; wiped on free */
	size_t ncodes;
	long long locked_until; /* Unix seconds; 0: no lock in force */
	char new_id[37];	/* uuid (gen_random_uuid) */
};
int db_admit_context(struct db_pool *pool, const unsigned char id_hash[32],
		     int idle_timeout_s, int touch_s, const char *link,
		     const char *src_key, struct db_admit_ctx *out, char *err,
		     size_t errlen);
void db_admit_ctx_free(struct db_admit_ctx *c);

/* How long the lock_count-th lock lasts (seconds). */
typedef long long (*db_lock_duration_fn)(void *ctx, int lock_count);

struct db_attempt {
	/* What the audit record says. meeting_id NULL: unknown link. */
	const char *meeting_id, *identity, *idp;
	const char *source_addr, *forwarded_for, *user_agent;
	const char *request_id, *node;
	const char *outcome; /* "allow" or "deny" */
	const char *reason;
	const char *matched_group; /* may be NULL */
	int code_ok, member_ok;	   /* 1, 0, or -1: not known */
	const char *details_json;  /* JSON object or NULL */
	/* The admission row, for outcome "allow": state "admitted" or
	 * "waiting"; session_hash: 32 bytes. */
	const char *state;
	const unsigned char *session_hash;
	/* Lockout: whether this attempt counts as a failure, the counter
	 * keys and the limits. */
	int failure;
	const char *im_key, *src_key;
	int max_failures, window_s, src_max_failures;
	long long src_lock_s, quiet_s; /* quiet_s: lock_count forgotten */
	db_lock_duration_fn im_duration;
	void *duration_ctx;
	int probe_identities, probe_window_s; /* 0: no probing check */
	long long waiting_s; /* state "waiting": how long the entry lasts */
	/* 1: this answer ranks below "locked" (DESIGN.md's order), so a
	 * lock found in force while recording turns it into a "locked"
	 * denial; 0 for answers that rank above it (malformed input). */
	int lockable;
	/* 1: the source's lock is read but this failure is not counted
	 * against the source (an attempt a foreign page can make a browser
	 * send, which must not lock out everyone behind its address). */
	int source_not_counted;
	/* Outcome allow: the new admission's id (db_admit_ctx.new_id); the
	 * join token is made after the record, with this id as its jti. */
	const char *admission_id;
};

struct db_attempt_result {
	char admission_id[37]; /* "" when nothing was admitted */
	long long locked_until; /* a lock this attempt started; 0: none */
	int probed;		/* this attempt flagged the meeting as probed */
	/* The attempt was recorded as a "locked" denial (see lockable):
	 * nothing admitted, nothing counted; retry_at: when the lock (the
	 * later of identity+meeting and source) ends, epoch seconds. */
	int locked;
	long long retry_at;
	/* Outcome allow, not locked, but the session was revoked or had
	 * expired by the time of the record (its row is read FOR SHARE):
	 * recorded as a denial, reason "session_revoked", nothing admitted,
	 * nothing counted. */
	int session_gone;
};

/*
 * Writes the attempt in one transaction, serialized per identity+meeting
 * and then per source (advisory transaction locks, always in that order):
 * the lock state is read again under them, and a lockable attempt that
 * finds a lock in force (or the failure count at max_failures) is recorded
 * as a "locked" denial instead (out->locked). Otherwise: the admission row
 * (outcome allow), the audit record (event "admission"), the failure
 * counters with row locks (identity+meeting locks at max_failures within
 * window_s for im_duration(lock_count) seconds; the source at
 * src_max_failures for src_lock_s; failures during a lock are not
 * counted), and the probing
 * check: when probe_identities distinct identities failed at this meeting
 * within probe_window_s, the meeting is flagged (probed_at), its waiting
 * room switched on and an outbox event "meeting.probed" written for the
 * host, once. Any failure rolls everything back (the caller denies).
 * One round trip: the transaction is one statement (migration 0011's
 * roomgate_admit_record). out->admission_id is set only when the
 * admission row was written.
 */
int db_admit_record(struct db_pool *pool, const struct db_attempt *a,
		    struct db_attempt_result *out, char *err, size_t errlen);

/*
 * Ends an admission db_admit_record just wrote whose answer (the join
 * token) could not be made, so the person, told nobody was admitted, is
 * not: state revoked, revoke_reason token_failed, and an audit record
 * (event "admission.unissued", reason token_failed, with a's identity,
 * meeting and request facts) in one statement. *ended: the row was still
 * live and is ended now. 0 or DB_E*.
 */
int db_admission_unissue(struct db_pool *pool, const struct db_attempt *a,
			 const char *admission_id, int *ended, char *err,
			 size_t errlen);

/* ---- the waiting room (queries_admit.c) --------------------------------
 *
 * A "waiting" admission lasts until its expires_at; an entry found past
 * it is turned into "expired" by whichever of these calls sees it first,
 * so no sweeper is needed for correctness.
 */

/* One person in a meeting's waiting room. Strings malloc()ed, freed by
 * db_waiting_free(). */
struct db_waiting {
	char admission_id[37];
	char *identity;
	char *display_name; /* from the session's attributes; may be NULL */
	long long since, expires_at;
};
/* The live waiting entries of a meeting (sessions still live), oldest
 * first, at most limit. On success *out (n entries; db_waiting_free). */
int db_waiting_list(struct db_pool *pool, const char *meeting_id, int limit,
		    struct db_waiting **out, size_t *n, char *err,
		    size_t errlen);
void db_waiting_free(struct db_waiting *w, size_t n);

/* An admission as its meeting's host or its own session sees it. */
struct db_admission_view {
	char id[37];
	char meeting_id[37];
	char state[16];	       /* after expiry: "expired" */
	char revoke_reason[24]; /* "" when none */
	char identity[257];
	int host_decided;	/* a host let the person in */
	long long expires_at;	/* waiting: when the entry ends; else 0 */
	long long admitted_at;	/* 0: not admitted */
	int token_collected;	/* the waiting room's one token was taken */
};
/* The admission admission_id of meeting meeting_id. DB_ENOTFOUND when
 * that meeting has no such admission. */
int db_admission_get(struct db_pool *pool, const char *meeting_id,
		     const char *admission_id, struct db_admission_view *out,
		     char *err, size_t errlen);
/* The newest admission of the session (32-byte id hash) to the meeting.
 * DB_ENOTFOUND when it has none. */
int db_admission_of_session(struct db_pool *pool, const char *meeting_id,
			    const unsigned char session_hash[32],
			    struct db_admission_view *out, char *err,
			    size_t errlen);

/* A host's decision on a waiting entry (borrowed strings). */
struct db_waiting_decision {
	const char *meeting_id, *admission_id;
	/* "admit": state admitted (matched_group required);
	 * "deny": state host_denied;
	 * "end": the directory no longer admits the person: state revoked
	 * with revoke_reason ("directory_removed" or "directory_disabled"). */
	const char *action;
	const char *matched_group, *revoke_reason;
	const char *audit_reason; /* e.g. "host_admitted", "not_member" */
	const char *directory;	  /* the live check's verdict, for audit */
	const char *actor, *via;  /* the host and how they signed in */
	const char *actor_idp;	  /* the host's IdP (details.decided_by_idp) */
	const char *source_addr, *forwarded_for, *user_agent, *request_id;
	const char *node;
};
/*
 * Applies d to the entry if it is still waiting and unexpired, with the
 * audit record (event "waiting.admit", "waiting.deny" or "waiting.end":
 * who decided, whom, outcome, the directory verdict) in the same
 * statement. Of two racing decisions exactly one applies: the other gets
 * DB_ECONFLICT, as does an entry no longer waiting (out->state says what
 * it is now). DB_ENOTFOUND: no such admission in that meeting. out (may
 * be NULL) receives the entry after the call.
 */
int db_waiting_decide(struct db_pool *pool,
		      const struct db_waiting_decision *d,
		      struct db_admission_view *out, char *err,
		      size_t errlen);

/* The join token a person gets from the waiting room after a host let
 * them in, or why not (borrowed strings; NULL where unknown). */
struct db_waiting_token {
	const char *meeting_id, *admission_id, *identity, *idp;
	const char *outcome;	   /* "allow" (token issued) or "deny" */
	const char *reason;	   /* "token_issued", "not_member"... */
	const char *matched_group; /* allow */
	int member_ok;		   /* 1, 0, -1 unknown */
	const char *directory;	   /* the live check's verdict */
	/* deny because the directory no longer admits the person: the
	 * admission ends (state revoked with this revoke_reason); NULL:
	 * the state does not change. */
	const char *revoke_reason;
	const char *source_addr, *forwarded_for, *user_agent, *request_id;
	const char *node;
};
/* Records it (audit event "waiting.token") and, with revoke_reason, ends
 * the admission, in one statement. A failure means no token leaves.
 * Outcome "allow" also marks the token collected, and only while the
 * admission is still "admitted" and not yet collected: else the record
 * says deny ("not_admitted") and the call returns DB_ECONFLICT (a revoke
 * that landed meanwhile, or a second pickup) -- no token may leave. */
int db_waiting_token(struct db_pool *pool, const struct db_waiting_token *t,
		     char *err, size_t errlen);

/* ---- revocation (queries_authz.c; forward-auth: db_authz.h) ------------ */

/* Who revokes whom (borrowed strings; all but identity may be NULL). */
struct db_identity_revoke {
	const char *identity;
	const char *actor, *via; /* the admin and how they signed in */
	const char *source_addr, *user_agent, *request_id, *node;
	const char *note;	/* free text from the request */
	/* the admin's IdP (details.by_idp: identity is the person
	 * revoked); X-Forwarded-For as received */
	const char *idp, *forwarded_for;
};
/*
 * Ends every live session (revoke_reason 'admin') and every admitted or
 * waiting admission (state 'revoked', revoke_reason 'admin') of one
 * identity, with an audit record (event 'identity.revoke', reason
 * 'admin_revoked') and an outbox event 'identity.revoked', in one
 * statement: all or nothing. *sessions, *admissions: how many ended.
 */
int db_identity_revoke(struct db_pool *pool,
		       const struct db_identity_revoke *rv, long *sessions,
		       long *admissions, char *err, size_t errlen);

#endif
