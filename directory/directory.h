/*
 * directory/ -- LDAP / Active Directory access for roomgate: a pool of
 * bound connections (service account), the identity lookup and the live
 * active-member check (dir_check_member, dir_check_role), and the change
 * watcher (dir_watch_*: push revocation).
 *
 * This is the only header other folders include. libldap types stay
 * inside directory/.
 *
 * Errors: functions return 0 on success and a negative DIR_E* value, and
 * write a message a person can act on into err (always NUL-terminated when
 * errlen > 0). Messages never contain the bind password.
 */
#ifndef ROOMGATE_DIRECTORY_H
#define ROOMGATE_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

enum {
	DIR_OK = 0,
	DIR_EINVAL = -1,   /* bad configuration or argument */
	DIR_EUNAVAIL = -2, /* no server reachable / connection lost */
	DIR_ETIMEOUT = -3, /* network or operation timeout, or pool wait */
	DIR_EAUTH = -4,	   /* bind refused: wrong DN or password */
	DIR_ETLS = -5,	   /* TLS handshake or certificate check failed */
	DIR_ENOMEM = -6,
};

/*
 * When an entry counts as active. The presets are evaluated on the
 * attributes fetched with the lookup (no extra round trip):
 *   OPENLDAP  no pwdAccountLockedTime (ppolicy; operational, requested
 *             by name)
 *   AD        userAccountControl without bit 2 (ACCOUNTDISABLE); as a
 *             filter (!(userAccountControl:1.2.840.113556.1.4.803:=2)),
 *             never "=514", which misses every other flag combination
 *   FREEIPA   nsAccountLock not TRUE
 *   NONE      every entry found is active
 *   FILTER    active_filter must match the entry: one more round trip
 *             (a base search on the entry)
 * The order is that of the [directory] active setting.
 */
enum dir_active {
	DIR_ACTIVE_OPENLDAP = 0,
	DIR_ACTIVE_AD,
	DIR_ACTIVE_FREEIPA,
	DIR_ACTIVE_NONE,
	DIR_ACTIVE_FILTER,
};

/*
 * How membership of an allowed group is decided, and its cost in round
 * trips (the lookup included; k = allowed groups tried before a match,
 * at most n; d = nesting levels walked):
 *   MEMBEROF  memberOf values fetched with the lookup            1
 *             (OpenLDAP memberof overlay, AD direct groups)
 *   MEMBER    compare <member_attribute> on each allowed group   1 + k
 *   AD_CHAIN  AD nested groups: a base search on the entry with   1 + k
 *             (memberOf:1.2.840.113556.1.4.1941:=<group>)
 *   NESTED    client-side nesting (any LDAP server): one search   1 + d
 *             per level for the groups whose member_attribute
 *             holds the DNs found so far, up to nest_depth levels,
 *             each group visited once (cycles end)
 * The order is that of the [directory] membership setting.
 */
enum dir_membership {
	DIR_MEMBERSHIP_MEMBEROF = 0,
	DIR_MEMBERSHIP_MEMBER,
	DIR_MEMBERSHIP_AD_CHAIN,
	DIR_MEMBERSHIP_NESTED,
};

/* Role groups (dir_check_role). The order is fixed. */
enum dir_role {
	DIR_ROLE_HOST = 0,
	DIR_ROLE_ADMIN,
	DIR_ROLE_COMPLIANCE,
	DIR_ROLE_COUNT,
};

/* Levels of the optional log hook. */
enum dir_log_level { DIR_LOG_INFO = 1, DIR_LOG_WARN, DIR_LOG_ERROR };
/*
 * Called for events a person should see in the logs (an identity that
 * matches several entries, an allowed group that does not exist, a
 * directory failure during a check). msg never holds the bind password;
 * it may hold identities and DNs. May be called from any thread that runs
 * a check; must not call back into the pool.
 */
typedef void (*dir_log_fn)(void *arg, int level, const char *event,
                           const char *msg);

enum dir_tls_mode {
	DIR_TLS_NONE = 0, /* ldap:// in clear (loopback / lab only) */
	DIR_TLS_STARTTLS, /* ldap:// then StartTLS, required */
	DIR_TLS_LDAPS,	  /* ldaps:// (implied by the URI scheme too) */
};

struct dir_config {
	/* One or more URIs separated by spaces, tried in order (failover). */
	const char *uris;
	const char *bind_dn;	   /* required (a DN, or AD's user@domain) */
	const char *bind_password; /* required; copied, wiped on close */
	enum dir_tls_mode tls;
	const char *ca_file;	/* PEM bundle; NULL = system store */
	int network_timeout_ms; /* connect and TLS handshake timeout */
	int op_timeout_ms;	/* per-operation timeout */
	int pool_size;		/* connections kept, >= 1 */
	int acquire_timeout_ms; /* longest wait for a free connection; 0 =
				   do not wait */
	const char *base_dn;	/* default search base (people and groups) */

	/*
	 * The checks (dir_check_member / dir_check_role). All optional for a
	 * pool that only pings; zero values pick the defaults named here.
	 */
	const char *people_base; /* where entries are looked up; base_dn */
	const char *group_base;	 /* where NESTED searches groups; base_dn */
	/* Lookup filter; every "{identity}" is replaced by the identity,
	 * escaped per RFC 4515. NULL: DIR_DEFAULT_USER_FILTER. */
	const char *user_filter;
	enum dir_active active;
	const char *active_filter; /* DIR_ACTIVE_FILTER only, e.g.
				      "(employeeType=staff)" */
	enum dir_membership membership;
	const char *member_attribute; /* on groups; NULL: "member" */
	int nest_depth;		      /* NESTED: levels, 1..16; 0: 5 */
	int check_timeout_ms; /* a whole check's directory time (each
				 operation also within op_timeout_ms);
				 0: op_timeout_ms */
	const char *role_groups[DIR_ROLE_COUNT]; /* group DN per role, or
						    NULL */
	dir_log_fn log;	    /* may be NULL */
	void *log_arg;
};

#define DIR_DEFAULT_USER_FILTER "(&(objectClass=person)(uid={identity}))"
#define DIR_IDENTITY_PLACEHOLDER "{identity}"
/* Longest identity looked up (bytes) and most groups per check. */
#define DIR_MAX_IDENTITY_LEN 1024
#define DIR_MAX_GROUPS 64
/* Room for a DN in a verdict (longer DNs from the server are refused). */
#define DIR_DN_MAX 1025

struct dir_pool;

/*
 * Creates a pool. Checks the configuration (URIs parse, TLS mode matches
 * the schemes, CA file readable) but does not need the server to be up:
 * connections are made on first use and remade, with backoff, after they
 * break. The strings in cfg are copied. Freed with dir_pool_close().
 * On failure *out is NULL.
 */
int dir_pool_open(const struct dir_config *cfg, struct dir_pool **out,
		  char *err, size_t errlen);
/* Unbinds every connection and wipes the password copy. Call it only when
 * no other thread uses the pool any more. NULL is a no-op. */
void dir_pool_close(struct dir_pool *pool);

/*
 * Readiness probe: borrows a connection (binding if needed) and runs a
 * bounded round trip (Who am I?) as the service account. A connection
 * found dead is replaced and the probe tried once more. After failed
 * connects the pool backs off (50 ms doubling to 2 s; 60 s after a refused
 * bind, against account lockout): meanwhile it answers at once with the
 * last failure. Thread-safe.
 */
int dir_ping(struct dir_pool *pool, char *err, size_t errlen);

/*
 * Opens one connection with cfg, binds, and closes it: `roomgate` uses it
 * to check settings at start and tests use it to check TLS modes.
 */
int dir_check_bind(const struct dir_config *cfg, char *err, size_t errlen);

/*
 * The answer of a check. Decisions start as DIR_V_UNAVAILABLE (deny) and
 * only a completed check changes that. Every value but DIR_V_MEMBER
 * denies.
 */
enum dir_verdict_result {
	DIR_V_UNAVAILABLE = 0, /* directory error or timeout: deny, 503 */
	DIR_V_MEMBER,	       /* active, in group_dn */
	DIR_V_NOT_MEMBER,      /* active, in none of the allowed groups */
	DIR_V_INACTIVE,	       /* locked or disabled */
	DIR_V_NOT_FOUND,       /* no entry matches the identity */
	DIR_V_AMBIGUOUS,       /* several entries match: deny, logged */
	DIR_V_COUNT,
};

/* Filled by the caller's struct; no pointers, nothing to free. */
struct dir_verdict {
	int result;		   /* enum dir_verdict_result */
	char entry_dn[DIR_DN_MAX]; /* the entry, as the server names it;
				      "" for not_found / ambiguous */
	char group_dn[DIR_DN_MAX]; /* member: the allowed group (as the
				      caller gave it); else "" */
	int group_index;	   /* member: index in groups[]; else -1 */
	int round_trips;	   /* LDAP operations this check sent */
	int64_t elapsed_us;	   /* wall time of the check */
};

/* "member", "not_member", "inactive", "not_found", "ambiguous",
 * "unavailable" (for logs, audit reasons and metrics labels). */
const char *dir_verdict_name(int result);

/*
 * Is `identity` (identity_len bytes, any bytes: it is escaped, never
 * trusted) an active member of one of the allowed groups (n DNs) right
 * now? One call: lookup, active check and membership on one pooled
 * connection, nothing cached. Costs per strategy: see enum dir_membership
 * (DIR_ACTIVE_FILTER adds one round trip).
 *
 * Returns 0 when the directory answered: v->result is then member,
 * not_member, inactive, not_found or ambiguous, and err says why in
 * words (e.g. which groups were tried). Returns a negative DIR_E* with
 * v->result DIR_V_UNAVAILABLE when it did not (server down or frozen:
 * within the configured timeouts; DIR_ETIMEOUT / DIR_EUNAVAIL) or when
 * the setup is wrong (DIR_EINVAL: bad group DN, missing base, a filter
 * the server rejects). An identity that is empty or longer than
 * DIR_MAX_IDENTITY_LEN is not looked up: DIR_EINVAL with
 * v->result DIR_V_NOT_FOUND. Callers deny on anything but
 * DIR_V_MEMBER. groups[] and identity are only read during the call.
 * Thread-safe.
 */
int dir_check_member(struct dir_pool *pool, const char *identity,
                     size_t identity_len, const char *const *groups,
                     size_t ngroups, struct dir_verdict *v, char *err,
                     size_t errlen);

/*
 * Is `identity`'s entry there, unique and active right now -- without
 * asking for any group? For people a meeting lists explicitly as
 * invitees. The same lookup and active rules as dir_check_member, in one
 * round trip (two with DIR_ACTIVE_FILTER), nothing cached. Returns 0 when
 * the directory answered: v->result is DIR_V_NOT_MEMBER for an active
 * entry (found, active, and no group was asked -- the caller decides what
 * "active" admits), DIR_V_INACTIVE, DIR_V_NOT_FOUND or DIR_V_AMBIGUOUS
 * otherwise; errors and bad identities as for dir_check_member. It never
 * answers DIR_V_MEMBER. Thread-safe.
 */
int dir_check_active(struct dir_pool *pool, const char *identity,
                     size_t identity_len, struct dir_verdict *v, char *err,
                     size_t errlen);

/*
 * The same check against the role's configured group (role_groups[]),
 * e.g. "may this person host meetings". A role without a group gives
 * DIR_EINVAL and DIR_V_NOT_MEMBER.
 */
int dir_check_role(struct dir_pool *pool, const char *identity,
                   size_t identity_len, enum dir_role role,
                   struct dir_verdict *v, char *err, size_t errlen);

/* Upper bounds (seconds) of the check latency histogram buckets. */
#define DIR_LATENCY_BUCKETS 10
extern const double dir_latency_bounds_s[DIR_LATENCY_BUCKETS];

struct dir_pool_stats {
	int size;
	int in_use;
	int connected;
	int waiting;
	uint64_t connects;
	uint64_t connect_failures;
	uint64_t acquire_timeouts;
	/* Checks (dir_check_member / dir_check_role). */
	uint64_t checks[DIR_V_COUNT]; /* by verdict */
	uint64_t check_errors[8];     /* by -DIR_E* (index 1..6) */
	uint64_t round_trips;	      /* LDAP operations sent by checks */
	/* Latency: counts per bucket (not cumulative), the last one for
	 * everything slower; sum in microseconds. */
	uint64_t latency_buckets[DIR_LATENCY_BUCKETS + 1];
	uint64_t latency_sum_us;
};
void dir_pool_get_stats(struct dir_pool *pool, struct dir_pool_stats *st);

/* ---- the change watcher (watch.c) -------------------------------------- */

/*
 * Follows the directory with an RFC 4533 refreshAndPersist content-sync
 * search (OpenLDAP syncprov) on its own connection -- never the pool's,
 * and nothing else runs on it (libldap loses queued sync messages when
 * other operations share the handle). One search under the watch base
 * (base_dn, else group_base, else people_base) with the filter
 * (|(<member_attribute>=*)(<identity attribute>=*)): the identity
 * attribute is the one user_filter compares with {identity} (uid in the
 * default). Entries holding the identity attribute are people (DN ->
 * identity, kept from the sync itself, and whether the active preset
 * says active); the others are groups (their member DNs, normalized).
 *
 * A modified group arrives whole; the watcher diffs it against the last
 * known member list and reports each member that left. Reported changes:
 *   LOST          identity left group_dn (or group_dn was deleted)
 *   DISABLED      identity's entry turned inactive (OPENLDAP:
 *                 pwdAccountLockedTime set; AD: ACCOUNTDISABLE; FREEIPA:
 *                 nsAccountLock TRUE). Not followed for FILTER / NONE.
 *   DELETED       identity's entry was deleted (or left the watch base)
 *   GROUP_MEMBERS a group seen for the first time (no baseline to diff:
 *                 after a start, a takeover or a full resync): the
 *                 current list of member identities, and revocable():
 *                 the receiver ends what depends on group_dn only for
 *                 the identities it answers non-zero for.
 *                 During a refresh these wait until the refresh is done
 *                 (every person known by then).
 * Member DNs that name no watched person are ignored (service accounts,
 * nested groups). Group changes revoke only with membership = memberof
 * or member, never for a group whose member values came in part (AD's
 * ranged values), and only for an identity no other watched person
 * might answer to (watch_int.h, dir_wstate_set_direct); AD notifications
 * older than the state (uSNChanged) are dropped. The rest is left to the
 * live check.
 *
 * Reconnects with backoff (dir_backoff_ms) after any loss and resumes
 * from its cookie, keeping its baseline; a change handler that fails
 * (returns non-zero) drops the baseline and the cookie so the next
 * connection does a full refresh, whose GROUP_MEMBERS reports reconcile
 * what was missed.
 */
enum dir_watch_kind {
	DIR_WATCH_LOST = 1,
	DIR_WATCH_DISABLED,
	DIR_WATCH_DELETED,
	DIR_WATCH_GROUP_MEMBERS,
};

/* Valid during the callback only. */
struct dir_watch_event {
	int kind;		       /* enum dir_watch_kind */
	const char *identity;	       /* LOST, DISABLED, DELETED */
	const char *group_dn;	       /* LOST, GROUP_MEMBERS (normalized) */
	const char *const *members;    /* GROUP_MEMBERS: identities */
	size_t nmembers;
	/* GROUP_MEMBERS: may the admissions of identity that depend on
	 * group_dn end? Non-zero only where the live check cannot admit
	 * identity through group_dn as the watcher sees it. */
	int (*revocable)(const void *ctx, const char *identity);
	const void *revocable_ctx;
};

struct dir_watch_hooks {
	/* A change; non-zero = not applied (see above). Required. */
	int (*change)(void *arg, const struct dir_watch_event *ev);
	/* The sync cookie after a poll that moved it (len bytes, not
	 * NUL-terminated text in general). Optional. */
	void (*cookie)(void *arg, const char *cookie, size_t len);
	/* Called about once per second and after every poll: 0 stops
	 * dir_watch_run (e.g. shutdown, or leadership lost). Required. */
	int (*keep_going)(void *arg);
	void *arg;
};

/* What metrics show. */
struct dir_watch_stats {
	int connected;	/* the sync search is running */
	int caught_up;	/* connected and the refresh is done */
	uint64_t connects, disconnects, full_refreshes;
	uint64_t changes; /* events reported */
	uint64_t entries; /* sync messages handled */
	int64_t last_event_unix_ms; /* wall clock of the last sync message,
				       0: none */
	size_t people, groups; /* entries known */
};

struct dir_watch;
/*
 * Checks cfg (as dir_pool_open, without the pool settings) and the
 * watch settings, copies what it needs. Does not connect. Freed with
 * dir_watch_close(). DIR_EINVAL with a message for an unusable setup
 * (no base, a user_filter without "(attr={identity})", ...).
 */
int dir_watch_open(const struct dir_config *cfg,
		   const struct dir_watch_hooks *hooks, struct dir_watch **out,
		   char *err, size_t errlen);
/*
 * Runs the sync until keep_going() answers 0: connect, bind, refresh,
 * persist, reconnect with backoff. Blocking, one thread at a time; calls
 * the hooks from that thread. Returns 0 when told to stop.
 */
int dir_watch_run(struct dir_watch *w);
/* Thread-safe snapshot. */
void dir_watch_get_stats(struct dir_watch *w, struct dir_watch_stats *st);
/* Forgets baseline and cookie: the next connection refreshes fully. */
void dir_watch_reset(struct dir_watch *w);
void dir_watch_close(struct dir_watch *w);

/*
 * The follower: a watcher that never reports changes and answers
 * membership questions from its baseline instead (the forward-auth
 * membership cache). Every node may run one; it needs no lock and
 * touches no database. Its sync filter is the live lookup's user_filter
 * with the identity as a presence test, OR the groups' member
 * attribute, so it sees exactly the people the live lookup can find.
 * DIR_EINVAL (with a message) for setups it cannot mirror: active =
 * filter or ad, membership = ad_chain, a user_filter not of the form
 * (attr={identity}) or (&...(attr={identity})...), a search base that
 * does not hold people_base. keep_going as for dir_watch_hooks. Run it
 * with dir_watch_run on a thread of its own; stats as for a watcher.
 */
int dir_watch_open_follower(const struct dir_config *cfg,
                            int (*keep_going)(void *arg), void *arg,
                            struct dir_watch **out, char *err, size_t errlen);

enum dir_watch_answer {
	DIR_WQ_UNKNOWN = 0, /* ask the directory (the live check) */
	DIR_WQ_MEMBER,	    /* active and a direct member of groups[i] */
	DIR_WQ_ACTIVE,	    /* active, unique, in none of the groups */
};
/*
 * Answers only positives it is sure of, and only while usable (below):
 * DIR_WQ_MEMBER with *group_index when identity is, by the follower's
 * baseline, the one active entry the live lookup would find and a direct
 * member of groups[*group_index] (DNs as configured; normalized here);
 * DIR_WQ_ACTIVE when that entry is in none of them (for invitees);
 * DIR_WQ_UNKNOWN for everything else -- unknown or ambiguous identity,
 * inactive, groups it has not seen, nesting, a follower not caught up --
 * and the caller asks the directory. So it never denies anyone the live
 * check would admit. Thread-safe; w may be NULL (unknown).
 */
int dir_watch_lookup(struct dir_watch *w, const char *identity,
                     const char *const *groups, size_t ngroups,
                     int *group_index);
/*
 * 1 while lookups may answer: the follower is connected, its refresh is
 * done (persist phase) with nothing missed since, its thread polled in
 * the last DIR_WATCH_FRESH_MS and its connection shows no hang-up and no
 * unread message. Any gap (disconnect, error, a refresh starting again,
 * an entry it could not take in) makes it 0 at once, until a refresh is
 * done again.
 */
int dir_watch_usable(struct dir_watch *w);
#define DIR_WATCH_FRESH_MS 3000

/*
 * dn in the form the watcher reports (ldap_dn_normalize, ASCII
 * lower-case), for comparing with stored group DNs. malloc()ed into
 * *out; DIR_EINVAL when dn is no DN.
 */
int dir_dn_normalize(const char *dn, char **out);

#endif
