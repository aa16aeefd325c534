/*
 * directory/watch.c -- the change watcher (directory.h): an RFC 4533
 * refreshAndPersist search through libldap's ldap_sync_* API on a
 * connection of its own, turned into changes by watch_state.c.
 *
 * libldap's sync API leaves connecting, keepalive and reconnecting to us
 * and frees ls_base, ls_filter, ls_attrs and ls_cookie with ldap_memfree
 * in ldap_sync_destroy, which also unbinds ls_ld: those are allocated
 * with libldap's allocator and the cookie is copied out before every
 * destroy. ldap_sync_poll answers 0 both for "handled" and "timed out"
 * and -1 both for "connection gone" and "interrupted", so progress is
 * counted in the callbacks.
 *
 * Active Directory has no content sync ([directory] active = ad): a
 * paged baseline search (a full refresh) and AD's change-notification
 * search (watch_ad.c builds it) on the same connection, read with
 * ldap_result; every reconnect starts with a new baseline.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "directory/dir_int.h"
#include "directory/watch_int.h"

/* ldap_sync_poll's wait (seconds): how often keep_going() is asked. */
#define WATCH_POLL_S 1
#define WATCH_MAX_COOKIE 4096
/*
 * The follower's own TCP keepalive (tighter than the pool's): a peer that
 * vanished without closing the connection (host gone, a firewall dropping
 * it) is noticed within IDLE + PROBES * INTERVAL seconds, unacknowledged
 * data within USER_TIMEOUT -- and the cache with it.
 */
#define FOLLOW_KEEPALIVE_IDLE_S 5
#define FOLLOW_KEEPALIVE_INTERVAL_S 2
#define FOLLOW_KEEPALIVE_PROBES 3
#define FOLLOW_USER_TIMEOUT_MS 10000

struct dir_watch {
	struct dir_cfg cfg;
	struct dir_watch_hooks hooks;
	char key_attr[DIR_MAX_ATTR_LEN + 1];
	char *base;
	char *filter;
	struct dir_wstate *state;
	struct berval cookie; /* malloc()ed copy, bv_val NULL: none */

	/* per connection */
	int in_refresh;
	int failed; /* a change handler failed: full resync */
	uint64_t seen_msgs;

	pthread_mutex_t mu; /* stats */
	struct dir_watch_stats st;

	/* The follower (dir_watch_open_follower): lookups from other
	 * threads read the state under slock; the sync thread changes it
	 * under slock. */
	int follower;
	char *people_ndn;
	pthread_rwlock_t slock;
	atomic_int usable;         /* refresh done, nothing missed since */
	atomic_int sync_fd;        /* the sync connection's socket, -1 */
	atomic_llong last_poll_ms; /* monotonic, the thread's last poll */
};

static void note(struct dir_watch *w, int level, const char *event,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
note(struct dir_watch *w, int level, const char *event, const char *fmt, ...)
{
	char msg[DIR_ERR_MAX];
	va_list ap;

	if (w->cfg.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dir_printable(msg);
	w->cfg.log(w->cfg.log_arg, level, event, msg);
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Counts a sync message (the proof that a poll did something). */
static void
saw_message(struct dir_watch *w)
{
	w->seen_msgs++;
	pthread_mutex_lock(&w->mu);
	w->st.entries++;
	w->st.last_event_unix_ms = wall_ms();
	pthread_mutex_unlock(&w->mu);
}

static int
emit_change(void *arg, const struct dir_watch_event *ev)
{
	struct dir_watch *w = arg;
	int r;

	if (w->failed)
		return -1;
	r = w->hooks.change(w->hooks.arg, ev);
	if (r != 0) {
		w->failed = 1;
		atomic_store(&w->usable, 0);
		note(w, DIR_LOG_ERROR, "directory_watch_apply_failed",
		     "a directory change could not be applied; resyncing "
		     "the whole directory on a new connection");
		return r;
	}
	pthread_mutex_lock(&w->mu);
	w->st.changes++;
	pthread_mutex_unlock(&w->mu);
	return 0;
}

/*
 * Does the entry hold the member attribute under a range option (AD sends
 * "member;range=0-1499" instead of "member" for a group with more values
 * than its MaxValRange)? Then the member values read are not all of them.
 */
static int
member_ranged(struct dir_watch *w, LDAP *ld, LDAPMessage *msg)
{
	BerElement *ber = NULL;
	int ranged = 0;

	for (char *a = ldap_first_attribute(ld, msg, &ber); a != NULL;
	     a = ldap_next_attribute(ld, msg, ber)) {
		if (dir_watch_ranged(a, w->cfg.member_attribute))
			ranged = 1;
		ldap_memfree(a);
	}
	if (ber != NULL)
		ber_free(ber, 0);
	return ranged;
}

/* Copies the sync's identity attribute and active attribute out of an
 * entry into in (identity points into *idvals). */
static int
read_entry(struct dir_watch *w, LDAP *ld, LDAPMessage *msg,
           struct dir_wentry_in *in, char **dn, struct berval ***idvals,
           struct berval ***members, char ***mstr, int as_group)
{
	struct berval **v;
	static char empty[] = "";

	memset(in, 0, sizeof(*in));
	*dn = ldap_get_dn(ld, msg);
	if (*dn == NULL)
		return DIR_EINVAL;
	in->dn = *dn;
	/* as_group: an AD group, which has the identity attribute too. */
	*idvals = as_group ? NULL : ldap_get_values_len(ld, msg, w->key_attr);
	if (*idvals != NULL && (*idvals)[0] != NULL && w->follower) {
		size_t n = 0, k = 0;

		/* Every value counts for the follower: two entries sharing
		 * any value are ambiguous to the live lookup. A value with a
		 * NUL equals no identity. */
		while ((*idvals)[n] != NULL)
			n++;
		*mstr = calloc(n + 1, sizeof(**mstr));
		if (*mstr == NULL)
			return DIR_ENOMEM;
		for (size_t i = 0; i < n; i++) {
			struct berval *b = (*idvals)[i];

			if (memchr(b->bv_val, '\0', b->bv_len) == NULL)
				(*mstr)[k++] = b->bv_val;
		}
		in->identities = (const char *const *)*mstr;
		in->nidentities = k;
		in->identity = k > 0 ? (*mstr)[0] : "";
		v = ldap_get_values_len(ld, msg, w->cfg.member_attribute);
		in->nocache = k == 0 || (v != NULL && v[0] != NULL);
		ldap_value_free_len(v);
	} else if (*idvals != NULL && (*idvals)[0] != NULL) {
		struct berval *b = (*idvals)[0];
		size_t n = 0, k = 0;

		/* berval values are counted; our strings are not. */
		if (b->bv_len == 0 || b->bv_len > DIR_MAX_IDENTITY_LEN ||
		    memchr(b->bv_val, '\0', b->bv_len) != NULL)
			return DIR_EINVAL;
		in->identity = b->bv_val; /* NUL-terminated by libldap */
		/* Every value too: the state tells from them who else the
		 * live lookup of an identity might find. */
		while ((*idvals)[n] != NULL)
			n++;
		*mstr = calloc(n + 1, sizeof(**mstr));
		if (*mstr == NULL)
			return DIR_ENOMEM;
		for (size_t i = 0; i < n; i++) {
			b = (*idvals)[i];
			if (memchr(b->bv_val, '\0', b->bv_len) == NULL)
				(*mstr)[k++] = b->bv_val;
		}
		in->identities = (const char *const *)*mstr;
		in->nidentities = k;
	}
	if (in->identity != NULL) {
		switch (w->cfg.active) {
		case DIR_ACTIVE_OPENLDAP:
			v = ldap_get_values_len(ld, msg,
			                        "pwdAccountLockedTime");
			in->inactive = v != NULL && v[0] != NULL;
			ldap_value_free_len(v);
			break;
		case DIR_ACTIVE_AD: {
			long long uac;
			int dis = 0;

			v = ldap_get_values_len(ld, msg, "userAccountControl");
			if (v != NULL && v[0] != NULL &&
			    dir_uac_disabled(v[0]->bv_val, v[0]->bv_len, &uac,
			                     &dis) == 0)
				in->inactive = dis;
			ldap_value_free_len(v);
			break;
		}
		case DIR_ACTIVE_FREEIPA:
			v = ldap_get_values_len(ld, msg, "nsAccountLock");
			in->inactive =
			    v != NULL && v[0] != NULL &&
			    dir_ipa_locked(v[0]->bv_val, v[0]->bv_len);
			ldap_value_free_len(v);
			break;
		default:
			break;
		}
		return 0;
	}
	*members = ldap_get_values_len(ld, msg, w->cfg.member_attribute);
	in->incomplete = member_ranged(w, ld, msg);
	if (*members != NULL) {
		size_t n = 0;

		while ((*members)[n] != NULL)
			n++;
		*mstr = calloc(n + 1, sizeof(**mstr));
		if (*mstr == NULL)
			return DIR_ENOMEM;
		for (size_t i = 0; i < n; i++) {
			struct berval *b = (*members)[i];

			(*mstr)[i] = memchr(b->bv_val, '\0', b->bv_len)
			                 ? empty
			                 : b->bv_val;
		}
		in->members = (const char *const *)*mstr;
		in->nmembers = n;
	}
	return 0;
}

static int
ignore_change(void *arg, const struct dir_watch_event *ev)
{
	(void)arg;
	(void)ev;
	return 0;
}

/*
 * The follower could not take an entry in. Its old form must not answer
 * any more: it is forgotten (a person unknown, a group unseen: both go
 * to the live check). Out of memory: nothing can be trusted, full
 * resync.
 */
static void
follower_skip(struct dir_watch *w, struct berval *uuid, int why)
{
	if (why == DIR_ENOMEM) {
		w->failed = 1;
		atomic_store(&w->usable, 0);
		return;
	}
	(void)dir_wstate_delete(w->state, (unsigned char *)uuid->bv_val,
	                        uuid->bv_len, ignore_change, NULL);
}

static int
on_entry(ldap_sync_t *ls, LDAPMessage *msg, struct berval *uuid,
         ldap_sync_refresh_t phase)
{
	struct dir_watch *w = ls->ls_private;
	struct berval **idvals = NULL, **members = NULL;
	char *dn = NULL, **mstr = NULL;
	struct dir_wentry_in in;
	int r = 0, rr;

	saw_message(w);
	if (uuid == NULL)
		return 0;
	pthread_rwlock_wrlock(&w->slock);
	switch (phase) {
	case LDAP_SYNC_CAPI_PRESENT:
		dir_wstate_present(w->state, (unsigned char *)uuid->bv_val,
		                   uuid->bv_len);
		break;
	case LDAP_SYNC_CAPI_DELETE:
		r = dir_wstate_delete(w->state, (unsigned char *)uuid->bv_val,
		                      uuid->bv_len, emit_change, w);
		break;
	case LDAP_SYNC_CAPI_ADD:
	case LDAP_SYNC_CAPI_MODIFY:
		rr = read_entry(w, ls->ls_ld, msg, &in, &dn, &idvals, &members,
		                &mstr, 0);
		if (rr == 0)
			r = dir_wstate_entry(
			    w->state, (unsigned char *)uuid->bv_val,
			    uuid->bv_len, &in, w->in_refresh, emit_change, w);
		else
			note(w, DIR_LOG_WARN, "directory_watch_entry_skipped",
			     "ignored an entry the watcher cannot read (%s)",
			     dn != NULL ? dn : "no DN");
		if (w->follower && (rr != 0 || r != 0))
			follower_skip(w, uuid, rr != 0 ? rr : r);
		if (r == DIR_EINVAL)
			r = 0;
		break;
	default:
		break;
	}
	pthread_rwlock_unlock(&w->slock);
	free(mstr);
	ldap_value_free_len(members);
	ldap_value_free_len(idvals);
	if (dn != NULL)
		ldap_memfree(dn);
	/* A failed change is handled by w->failed (the poll loop starts
	 * over); libldap must keep going through this message. */
	(void)r;
	return 0;
}

static int
on_intermediate(ldap_sync_t *ls, LDAPMessage *msg, BerVarray uuids,
                ldap_sync_refresh_t phase)
{
	struct dir_watch *w = ls->ls_private;

	(void)msg;
	saw_message(w);
	pthread_rwlock_wrlock(&w->slock);
	switch (phase) {
	case LDAP_SYNC_CAPI_PRESENTS_IDSET:
		dir_wstate_presents(w->state);
		for (size_t i = 0; uuids != NULL && uuids[i].bv_val != NULL;
		     i++)
			dir_wstate_present(w->state,
			                   (unsigned char *)uuids[i].bv_val,
			                   uuids[i].bv_len);
		break;
	case LDAP_SYNC_CAPI_PRESENTS:
		dir_wstate_presents(w->state);
		break;
	case LDAP_SYNC_CAPI_DELETES_IDSET:
		/* May name entries never seen: ignored by the state. */
		for (size_t i = 0; uuids != NULL && uuids[i].bv_val != NULL;
		     i++)
			(void)dir_wstate_delete(
			    w->state, (unsigned char *)uuids[i].bv_val,
			    uuids[i].bv_len, emit_change, w);
		break;
	case LDAP_SYNC_CAPI_DONE:
		if (w->in_refresh) {
			w->in_refresh = 0;
			(void)dir_wstate_refresh_done(w->state, emit_change, w);
			pthread_mutex_lock(&w->mu);
			w->st.caught_up = 1;
			w->st.people = dir_wstate_count(w->state, 0);
			w->st.groups = dir_wstate_count(w->state, 1);
			pthread_mutex_unlock(&w->mu);
			if (w->follower && !w->failed) {
				atomic_store(&w->last_poll_ms, mono_ms());
				atomic_store(&w->usable, 1);
			}
			note(w, DIR_LOG_INFO, "directory_watch_caught_up",
			     "directory %s caught up: %zu people, %zu "
			     "groups",
			     w->follower ? "cache follower" : "watcher",
			     dir_wstate_count(w->state, 0),
			     dir_wstate_count(w->state, 1));
		}
		break;
	default:
		break;
	}
	pthread_rwlock_unlock(&w->slock);
	return 0;
}

static int
on_result(ldap_sync_t *ls, LDAPMessage *msg, int refresh_deletes)
{
	struct dir_watch *w = ls->ls_private;

	(void)msg;
	(void)refresh_deletes;
	saw_message(w);
	return 0;
}

static void
keep_cookie(struct dir_watch *w, const struct berval *c)
{
	char *copy;

	if (c == NULL || c->bv_val == NULL || c->bv_len == 0 ||
	    c->bv_len > WATCH_MAX_COOKIE)
		return;
	if (w->cookie.bv_val != NULL && w->cookie.bv_len == c->bv_len &&
	    memcmp(w->cookie.bv_val, c->bv_val, c->bv_len) == 0)
		return;
	copy = malloc(c->bv_len + 1);
	if (copy == NULL)
		return;
	memcpy(copy, c->bv_val, c->bv_len);
	copy[c->bv_len] = '\0';
	free(w->cookie.bv_val);
	w->cookie.bv_val = copy;
	w->cookie.bv_len = c->bv_len;
	if (w->hooks.cookie != NULL)
		w->hooks.cookie(w->hooks.arg, copy, c->bv_len);
}

static void
forget(struct dir_watch *w)
{
	atomic_store(&w->usable, 0);
	free(w->cookie.bv_val);
	w->cookie.bv_val = NULL;
	w->cookie.bv_len = 0;
	pthread_rwlock_wrlock(&w->slock);
	dir_wstate_clear(w->state);
	pthread_rwlock_unlock(&w->slock);
	w->failed = 0;
}

static void
set_connected(struct dir_watch *w, int up)
{
	pthread_mutex_lock(&w->mu);
	if (up) {
		w->st.connected = 1;
		w->st.connects++;
	} else {
		if (w->st.connected)
			w->st.disconnects++;
		w->st.connected = 0;
		w->st.caught_up = 0;
	}
	w->st.people = dir_wstate_count(w->state, 0);
	w->st.groups = dir_wstate_count(w->state, 1);
	pthread_mutex_unlock(&w->mu);
}

/* Fills a fresh ldap_sync_t (libldap-allocated strings; see top). */
static int
sync_setup(struct dir_watch *w, ldap_sync_t *ls, LDAP *ld)
{
	const char *act = NULL;
	int n = 0;

	ldap_sync_initialize(ls);
	ls->ls_ld = ld; /* first: ldap_sync_destroy unbinds it on failure */
	ls->ls_base = ldap_strdup(w->base);
	ls->ls_filter = ldap_strdup(w->filter);
	ls->ls_attrs = ldap_memcalloc(5, sizeof(char *));
	if (ls->ls_base == NULL || ls->ls_filter == NULL ||
	    ls->ls_attrs == NULL)
		return DIR_ENOMEM;
	switch (w->cfg.active) {
	case DIR_ACTIVE_OPENLDAP:
		act = "pwdAccountLockedTime";
		break;
	case DIR_ACTIVE_AD:
		act = "userAccountControl";
		break;
	case DIR_ACTIVE_FREEIPA:
		act = "nsAccountLock";
		break;
	default:
		break;
	}
	if ((ls->ls_attrs[n++] = ldap_strdup(w->key_attr)) == NULL ||
	    (ls->ls_attrs[n++] = ldap_strdup(w->cfg.member_attribute)) ==
	        NULL ||
	    (act != NULL && (ls->ls_attrs[n++] = ldap_strdup(act)) == NULL))
		return DIR_ENOMEM;
	ls->ls_scope = LDAP_SCOPE_SUBTREE;
	ls->ls_timeout = WATCH_POLL_S;
	ls->ls_search_entry = on_entry;
	ls->ls_intermediate = on_intermediate;
	ls->ls_search_result = on_result;
	ls->ls_private = w;
	if (w->cookie.bv_val != NULL) {
		ls->ls_cookie.bv_val = ldap_memalloc(w->cookie.bv_len + 1);
		if (ls->ls_cookie.bv_val == NULL)
			return DIR_ENOMEM;
		memcpy(ls->ls_cookie.bv_val, w->cookie.bv_val,
		       w->cookie.bv_len + 1);
		ls->ls_cookie.bv_len = w->cookie.bv_len;
	}
	return 0;
}

/* The follower watches its socket (dir_watch_usable) and notices a
 * silently dead peer sooner than the pool would. Best effort: without
 * it the pool's keepalive still applies. */
static void
follower_socket(struct dir_watch *w, LDAP *ld)
{
	int fd = -1, idle = FOLLOW_KEEPALIVE_IDLE_S,
	    intvl = FOLLOW_KEEPALIVE_INTERVAL_S, cnt = FOLLOW_KEEPALIVE_PROBES,
	    on = 1;
	unsigned int uto = FOLLOW_USER_TIMEOUT_MS;

	if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS ||
	    fd < 0)
		return;
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
	pthread_rwlock_wrlock(&w->slock);
	atomic_store(&w->sync_fd, fd);
	pthread_rwlock_unlock(&w->slock);
}

/* Sleeps ms in steps, asking keep_going(); 0 when told to stop. */
static int
nap(struct dir_watch *w, int ms)
{
	while (ms > 0) {
		int step = ms > 200 ? 200 : ms;

		if (!w->hooks.keep_going(w->hooks.arg))
			return 0;
		usleep((useconds_t)step * 1000);
		ms -= step;
	}
	return w->hooks.keep_going(w->hooks.arg);
}

/*
 * One connection's life: connect, refresh, persist until it breaks or
 * keep_going() says stop. Returns 1 to stop, 0 after a loss.
 */
static int
one_session(struct dir_watch *w, unsigned *fails)
{
	struct dir_conn conn = {NULL, NULL};
	struct dir_sigpipe sp;
	ldap_sync_t ls;
	char err[DIR_ERR_MAX];
	int rc, stop = 0, full;

	memset(&ls, 0, sizeof(ls));
	if (dir_conn_open(&w->cfg, &conn, err, sizeof(err)) != 0) {
		note(w, DIR_LOG_ERROR, "directory_watch_connect_failed",
		     "directory watcher cannot connect: %s", err);
		return 0;
	}
	if (sync_setup(w, &ls, conn.ld) != 0) {
		ldap_sync_destroy(&ls, 0); /* unbinds conn.ld too */
		note(w, DIR_LOG_ERROR, "directory_watch_failed",
		     "directory watcher: out of memory");
		return 0;
	}
	full = w->cookie.bv_val == NULL;
	atomic_store(&w->usable, 0);
	pthread_rwlock_wrlock(&w->slock);
	if (full) {
		dir_wstate_clear(w->state);
		pthread_mutex_lock(&w->mu);
		w->st.full_refreshes++;
		pthread_mutex_unlock(&w->mu);
	}
	dir_wstate_refresh_begin(w->state, full);
	pthread_rwlock_unlock(&w->slock);
	w->in_refresh = 1;
	set_connected(w, 1);
	dir_sigpipe_block(&sp);
	rc = ldap_sync_init_refresh_and_persist(&ls);
	dir_sigpipe_restore(&sp);
	keep_cookie(w, &ls.ls_cookie);
	if (rc != LDAP_SUCCESS) {
		note(w, DIR_LOG_ERROR, "directory_watch_sync_failed",
		     "directory watcher: the sync search failed at %s: %s "
		     "(the server needs the syncprov overlay and read "
		     "access for the service account)",
		     conn.uri->uri, ldap_err2string(rc));
		if (rc == LDAP_UNWILLING_TO_PERFORM ||
		    rc == LDAP_SYNC_REFRESH_REQUIRED)
			forget(w); /* e.g. a cookie the server refuses */
		goto out;
	}
	*fails = 0;
	if (w->follower)
		follower_socket(w, conn.ld);
	note(w, DIR_LOG_INFO, "directory_watch_connected",
	     "directory watcher following %s under %s (%s refresh)",
	     conn.uri->uri, w->base, full ? "full" : "resumed");
	while (!w->failed) {
		if (!w->hooks.keep_going(w->hooks.arg)) {
			stop = 1;
			break;
		}
		dir_sigpipe_block(&sp);
		rc = ldap_sync_poll(&ls);
		dir_sigpipe_restore(&sp);
		atomic_store(&w->last_poll_ms, mono_ms());
		/* Save the cookie after every poll: writes elsewhere move
		 * it without any callback. */
		keep_cookie(w, &ls.ls_cookie);
		if (rc != 0 && rc != LDAP_SUCCESS) {
			note(w, DIR_LOG_WARN, "directory_watch_lost",
			     "directory watcher lost its sync at %s (%d: %s); "
			     "reconnecting and resuming",
			     conn.uri->uri, rc, ldap_err2string(rc));
			if (rc == LDAP_SYNC_REFRESH_REQUIRED) {
				/* Keep the baseline: a full refresh reports
				 * what vanished as deletions. */
				free(w->cookie.bv_val);
				w->cookie.bv_val = NULL;
				w->cookie.bv_len = 0;
			}
			break;
		}
	}
out:
	/* Whatever ended the session, lookups stop now -- before the
	 * socket goes away (lookups look at it under slock). */
	atomic_store(&w->usable, 0);
	pthread_rwlock_wrlock(&w->slock);
	atomic_store(&w->sync_fd, -1);
	pthread_rwlock_unlock(&w->slock);
	if (w->failed)
		forget(w);
	dir_sigpipe_block(&sp);
	ldap_sync_destroy(&ls, 0); /* unbinds ls_ld = conn.ld */
	dir_sigpipe_restore(&sp);
	set_connected(w, 0);
	return stop;
}

/* ---- Active Directory: baseline search, then change notification ---- */

/* Entries per page of the AD baseline (AD's default MaxPageSize is
 * 1000). */
#define AD_PAGE_SIZE 500

/* One entry of the AD baseline (in_refresh) or a notification. */
static void
ad_entry(struct dir_watch *w, LDAP *ld, LDAPMessage *msg, int in_refresh)
{
	struct berval **guid, **euuid, **isdel, **oc, **idv, **mem, **usnv;
	struct berval **idvals = NULL, **members = NULL;
	unsigned long long usn;
	const struct berval *key = NULL;
	char *dn = NULL, **mstr = NULL;
	struct dir_wentry_in in;
	int kind, r = 0, rr;

	saw_message(w);
	guid = ldap_get_values_len(ld, msg, "objectGUID");
	euuid = ldap_get_values_len(ld, msg, "entryUUID");
	isdel = ldap_get_values_len(ld, msg, "isDeleted");
	oc = ldap_get_values_len(ld, msg, "objectClass");
	idv = ldap_get_values_len(ld, msg, w->key_attr);
	mem = ldap_get_values_len(ld, msg, w->cfg.member_attribute);
	usnv = ldap_get_values_len(ld, msg, "uSNChanged");
	usn = dir_ad_usn(usnv);
	kind = dir_ad_entry_kind(guid, euuid, isdel, oc,
	                         idv != NULL && idv[0] != NULL,
	                         mem != NULL && mem[0] != NULL, &key);
	pthread_rwlock_wrlock(&w->slock);
	switch (kind) {
	case DIR_AD_DELETE:
		/* Not a tombstone older than what the state holds (a
		 * notification queued during the baseline). */
		if (!dir_wstate_stale(w->state, (unsigned char *)key->bv_val,
		                      key->bv_len, usn))
			r = dir_wstate_delete(w->state,
			                      (unsigned char *)key->bv_val,
			                      key->bv_len, emit_change, w);
		break;
	case DIR_AD_GROUP:
	case DIR_AD_PERSON:
		rr = read_entry(w, ld, msg, &in, &dn, &idvals, &members, &mstr,
		                kind == DIR_AD_GROUP);
		in.usn = usn; /* an older one changes nothing */
		if (rr == 0)
			r = dir_wstate_entry(
			    w->state, (unsigned char *)key->bv_val, key->bv_len,
			    &in, in_refresh, emit_change, w);
		else if (rr == DIR_ENOMEM)
			w->failed = 1;
		else
			note(w, DIR_LOG_WARN, "directory_watch_entry_skipped",
			     "ignored an entry the watcher cannot read (%s)",
			     dn != NULL ? dn : "no DN");
		break;
	default:
		break;
	}
	pthread_rwlock_unlock(&w->slock);
	/* A failed change sets w->failed (the loop starts over). */
	(void)r;
	free(mstr);
	ldap_value_free_len(members);
	ldap_value_free_len(idvals);
	if (dn != NULL)
		ldap_memfree(dn);
	ldap_value_free_len(usnv);
	ldap_value_free_len(mem);
	ldap_value_free_len(idv);
	ldap_value_free_len(oc);
	ldap_value_free_len(isdel);
	ldap_value_free_len(euuid);
	ldap_value_free_len(guid);
}

/*
 * The AD baseline: a paged subtree search of the watched entries with
 * the notification's attributes, as a full refresh -- what it does not
 * name is gone, groups are reconciled whole. 0 done, 1 told to stop, -1
 * failed (logged).
 */
static int
ad_baseline(struct dir_watch *w, LDAP *ld, char **attrs, const char *uri)
{
	struct berval cookie = {0, NULL};
	struct timeval tv;
	int rc, more = 1;

	tv.tv_sec = w->cfg.op_timeout_ms > 0 ? w->cfg.op_timeout_ms / 1000 : 0;
	tv.tv_usec =
	    w->cfg.op_timeout_ms > 0 ? (w->cfg.op_timeout_ms % 1000) * 1000 : 0;
	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		tv.tv_sec = 30;
	pthread_rwlock_wrlock(&w->slock);
	dir_wstate_clear(w->state);
	dir_wstate_refresh_begin(w->state, 1);
	pthread_rwlock_unlock(&w->slock);
	pthread_mutex_lock(&w->mu);
	w->st.full_refreshes++;
	pthread_mutex_unlock(&w->mu);
	w->in_refresh = 1;
	while (more && !w->failed) {
		LDAPControl *page = NULL, *sctrls[2] = {NULL, NULL};
		LDAPControl **rctrls = NULL, *pc;
		LDAPMessage *res = NULL, *m;
		char *msg = NULL;
		int prc = LDAP_SUCCESS;
		ber_int_t count = 0;

		if (!w->hooks.keep_going(w->hooks.arg)) {
			ldap_memfree(cookie.bv_val);
			return 1;
		}
		rc = ldap_create_page_control(
		    ld, AD_PAGE_SIZE, cookie.bv_val != NULL ? &cookie : NULL, 0,
		    &page);
		ldap_memfree(cookie.bv_val);
		cookie.bv_val = NULL;
		cookie.bv_len = 0;
		if (rc != LDAP_SUCCESS) {
			note(w, DIR_LOG_ERROR, "directory_watch_failed",
			     "directory watcher: cannot build the paged "
			     "results control: %s",
			     ldap_err2string(rc));
			return -1;
		}
		sctrls[0] = page;
		rc = ldap_search_ext_s(ld, w->base, LDAP_SCOPE_SUBTREE,
		                       w->filter, attrs, 0, sctrls, NULL, &tv,
		                       0, &res);
		ldap_control_free(page);
		if (res == NULL ||
		    (rc != LDAP_SUCCESS && ldap_count_entries(ld, res) <= 0)) {
			note(w, DIR_LOG_ERROR, "directory_watch_sync_failed",
			     "directory watcher: the AD baseline search under "
			     "%s failed at %s: %s (the service account needs "
			     "read access to the watched entries)",
			     w->base, uri, ldap_err2string(rc));
			ldap_msgfree(res);
			return -1;
		}
		for (m = ldap_first_entry(ld, res); m != NULL && !w->failed;
		     m = ldap_next_entry(ld, m))
			ad_entry(w, ld, m, 1);
		rc = ldap_parse_result(ld, res, &prc, NULL, &msg, NULL, &rctrls,
		                       1);
		if (rc != LDAP_SUCCESS || prc != LDAP_SUCCESS) {
			note(w, DIR_LOG_ERROR, "directory_watch_sync_failed",
			     "directory watcher: the AD baseline search under "
			     "%s failed at %s: %s%s%s",
			     w->base, uri,
			     ldap_err2string(rc != LDAP_SUCCESS ? rc : prc),
			     msg != NULL && msg[0] != '\0' ? ": " : "",
			     msg != NULL ? msg : "");
			ldap_memfree(msg);
			ldap_controls_free(rctrls);
			return -1;
		}
		ldap_memfree(msg);
		more = 0;
		pc = rctrls != NULL
		         ? ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls,
		                             NULL)
		         : NULL;
		/* No paging response (a server without paged results sent
		 * everything at once): done. */
		if (pc != NULL &&
		    ldap_parse_pageresponse_control(ld, pc, &count, &cookie) ==
		        LDAP_SUCCESS &&
		    cookie.bv_val != NULL && cookie.bv_len > 0)
			more = 1;
		ldap_controls_free(rctrls);
	}
	ldap_memfree(cookie.bv_val);
	if (w->failed)
		return -1;
	pthread_rwlock_wrlock(&w->slock);
	w->in_refresh = 0;
	(void)dir_wstate_refresh_done(w->state, emit_change, w);
	pthread_rwlock_unlock(&w->slock);
	pthread_mutex_lock(&w->mu);
	w->st.people = dir_wstate_count(w->state, 0);
	w->st.groups = dir_wstate_count(w->state, 1);
	pthread_mutex_unlock(&w->mu);
	return w->failed ? -1 : 0;
}

/*
 * One AD connection's life: the notification search is sent first (so
 * no change between the baseline and it is lost; queued notifications
 * are applied after the baseline, in order, which ends at the current
 * state), then the baseline, then notifications until the search ends
 * or the connection breaks. Caught up only once the baseline is applied
 * and the notification search has stood one poll without being refused.
 * Returns 1 to stop, 0 after a loss.
 */
static int
ad_session(struct dir_watch *w, unsigned *fails)
{
	struct dir_conn conn = {NULL, NULL};
	struct dir_ad_notify n;
	struct dir_sigpipe sp;
	char err[DIR_ERR_MAX], *attrs[DIR_AD_NATTRS + 2];
	int rc, msgid = -1, stop = 0, caught = 0;
	size_t na = 0;

	if (dir_conn_open(&w->cfg, &conn, err, sizeof(err)) != 0) {
		note(w, DIR_LOG_ERROR, "directory_watch_connect_failed",
		     "directory watcher cannot connect: %s", err);
		return 0;
	}
	if (dir_ad_notify_build(conn.ld, w->base, w->key_attr,
	                        w->cfg.member_attribute, &n, err,
	                        sizeof(err)) != 0) {
		note(w, DIR_LOG_ERROR, "directory_watch_failed",
		     "directory watcher: %s", err);
		dir_conn_close(&conn);
		return 0;
	}
	/* The notification's attributes, plus what tells a group from a
	 * person and entryUUID (the key where there is no objectGUID). */
	for (; n.attrs[na] != NULL; na++)
		attrs[na] = n.attrs[na];
	attrs[na++] = (char *)"objectClass";
	attrs[na++] = (char *)"entryUUID";
	attrs[na] = NULL;
	set_connected(w, 1);
	dir_sigpipe_block(&sp);
	rc = ldap_search_ext(conn.ld, n.base, n.scope, n.filter, attrs, 0,
	                     n.ctrls, NULL, NULL, 0, &msgid);
	dir_sigpipe_restore(&sp);
	if (rc != LDAP_SUCCESS) {
		note(w, DIR_LOG_ERROR, "directory_watch_sync_failed",
		     "directory watcher: cannot send the AD change-"
		     "notification search to %s: %s",
		     conn.uri->uri, ldap_err2string(rc));
		goto out;
	}
	dir_sigpipe_block(&sp);
	rc = ad_baseline(w, conn.ld, attrs, conn.uri->uri);
	dir_sigpipe_restore(&sp);
	if (rc != 0) {
		stop = rc == 1;
		goto out;
	}
	note(w, DIR_LOG_INFO, "directory_watch_ad_baseline",
	     "directory watcher: baseline from %s under %s (%zu people, "
	     "%zu groups); waiting on AD change notification",
	     conn.uri->uri, w->base, dir_wstate_count(w->state, 0),
	     dir_wstate_count(w->state, 1));
	while (!w->failed) {
		struct timeval tv = {WATCH_POLL_S, 0};
		LDAPMessage *res = NULL;

		if (!w->hooks.keep_going(w->hooks.arg)) {
			stop = 1;
			break;
		}
		dir_sigpipe_block(&sp);
		rc = ldap_result(conn.ld, msgid, LDAP_MSG_ONE, &tv, &res);
		dir_sigpipe_restore(&sp);
		atomic_store(&w->last_poll_ms, mono_ms());
		if (rc == 0) {
			if (!caught) {
				caught = 1;
				*fails = 0;
				pthread_mutex_lock(&w->mu);
				w->st.caught_up = 1;
				pthread_mutex_unlock(&w->mu);
				note(w, DIR_LOG_INFO,
				     "directory_watch_caught_up",
				     "directory watcher caught up (AD change "
				     "notification): %zu people, %zu groups",
				     dir_wstate_count(w->state, 0),
				     dir_wstate_count(w->state, 1));
			}
			continue;
		}
		if (rc < 0) {
			int e = LDAP_SERVER_DOWN;

			(void)ldap_get_option(conn.ld, LDAP_OPT_RESULT_CODE,
			                      &e);
			note(w, DIR_LOG_WARN, "directory_watch_lost",
			     "directory watcher lost its AD change "
			     "notification at %s (%d: %s); reconnecting with "
			     "a new baseline",
			     conn.uri->uri, e, ldap_err2string(e));
			break;
		}
		if (rc == LDAP_RES_SEARCH_ENTRY) {
			ad_entry(w, conn.ld, res, 0);
		} else if (rc == LDAP_RES_SEARCH_RESULT) {
			int prc = LDAP_OTHER;
			char *msg = NULL;

			(void)ldap_parse_result(conn.ld, res, &prc, NULL, &msg,
			                        NULL, NULL, 0);
			note(
			    w, DIR_LOG_ERROR, "directory_watch_ad_refused",
			    "directory watcher: %s ended the AD change-"
			    "notification search under %s: %s (%d)%s%s%s",
			    conn.uri->uri, w->base, ldap_err2string(prc), prc,
			    msg != NULL && msg[0] != '\0' ? ": " : "",
			    msg != NULL ? msg : "",
			    prc == LDAP_UNAVAILABLE_CRITICAL_EXTENSION
			        ? " -- unavailableCriticalExtension: the "
			          "server implements no change notification "
			          "(1.2.840.113556.1.4.528) or show-deleted "
			          "(1.2.840.113556.1.4.417); it is not Active "
			          "Directory, set [directory] active to its "
			          "kind; retrying with backoff"
			        : "; the base must be a naming context's root "
			          "and the account needs the rights the README "
			          "names; retrying with backoff");
			ldap_memfree(msg);
			ldap_msgfree(res);
			msgid = -1; /* nothing left to abandon */
			break;
		}
		ldap_msgfree(res);
	}
out:
	if (w->failed)
		forget(w);
	dir_sigpipe_block(&sp);
	if (msgid >= 0)
		(void)ldap_abandon_ext(conn.ld, msgid, NULL, NULL);
	dir_conn_close(&conn);
	dir_sigpipe_restore(&sp);
	dir_ad_notify_free(&n);
	set_connected(w, 0);
	return stop;
}

int
dir_watch_run(struct dir_watch *w)
{
	unsigned fails = 0;

	while (w->hooks.keep_going(w->hooks.arg)) {
		/* AD has no content sync: baseline + change notification. */
		if (w->cfg.active == DIR_ACTIVE_AD && !w->follower
		        ? ad_session(w, &fails)
		        : one_session(w, &fails))
			break;
		fails++;
		if (!nap(w, dir_backoff_ms(fails)))
			break;
	}
	return 0;
}

/* The follower's extra checks and its filter (see directory.h). */
static int
follower_setup(struct dir_watch *w, const char *base, char *err, size_t errlen)
{
	const char *people =
	    w->cfg.people_base != NULL ? w->cfg.people_base : w->cfg.base_dn;
	char *base_ndn = NULL;
	size_t flen;
	int r = DIR_EINVAL;

	if (w->cfg.active == DIR_ACTIVE_FILTER ||
	    w->cfg.active == DIR_ACTIVE_AD ||
	    w->cfg.membership == DIR_MEMBERSHIP_AD_CHAIN) {
		dir_errf(err, errlen,
		         "membership cache: it follows an OpenLDAP-style "
		         "directory (RFC 4533 sync) and cannot mirror "
		         "[directory] active = filter / ad or membership = "
		         "ad_chain; set [authz] membership_cache = off");
		return DIR_EINVAL;
	}
	if (people == NULL || dir_dn_norm(people, &w->people_ndn) != 0 ||
	    dir_dn_norm(base, &base_ndn) != 0 ||
	    !dir_dn_under(w->people_ndn, base_ndn)) {
		dir_errf(err, errlen,
		         "membership cache: the people base (%s) must lie "
		         "under the search base it follows (%s); set [ldap] "
		         "base_dn above both people and groups, or [authz] "
		         "membership_cache = off",
		         people != NULL ? people : "unset", base);
		goto out;
	}
	flen =
	    strlen(w->cfg.user_filter) + strlen(w->cfg.member_attribute) + 32;
	free(w->filter);
	w->filter = malloc(flen);
	if (w->filter == NULL) {
		r = DIR_ENOMEM;
		goto out;
	}
	if (dir_watch_follow_filter(w->cfg.user_filter, w->cfg.member_attribute,
	                            w->filter, flen) != 0) {
		dir_errf(err, errlen,
		         "membership cache: [directory] user_filter %s must be "
		         "(attr={identity}) or (&...(attr={identity})...) "
		         "with {identity} once, so the cache sees exactly the "
		         "entries the live lookup finds; set [authz] "
		         "membership_cache = off or write the filter that way",
		         w->cfg.user_filter);
		goto out;
	}
	r = 0;
out:
	free(base_ndn);
	return r;
}

static int
watch_open(const struct dir_config *cfg, const struct dir_watch_hooks *hooks,
           int follower, struct dir_watch **out, char *err, size_t errlen)
{
	pthread_rwlockattr_t ra;
	struct dir_watch *w;
	struct dir_config c;
	const char *base;
	size_t flen;
	int r;

	*out = NULL;
	if (hooks == NULL || hooks->change == NULL ||
	    hooks->keep_going == NULL) {
		dir_errf(err, errlen, "directory watcher: no change handler");
		return DIR_EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return DIR_ENOMEM;
	pthread_mutex_init(&w->mu, NULL);
	/* Writers first: a stream of lookups must never hold a change
	 * back (glibc prefers readers by default). */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(
	    &ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&w->slock, &ra);
	pthread_rwlockattr_destroy(&ra);
	atomic_init(&w->usable, 0);
	atomic_init(&w->sync_fd, -1);
	atomic_init(&w->last_poll_ms, 0);
	w->follower = follower;
	w->hooks = *hooks;
	/* The pool's checks (and defaults) without a pool: one
	 * connection of its own. */
	c = *cfg;
	c.pool_size = 1;
	c.acquire_timeout_ms = 0;
	if ((r = dir_cfg_load(&c, 1, &w->cfg, err, errlen)) != 0)
		goto fail;
	if (dir_watch_key_attr(w->cfg.user_filter, w->key_attr,
	                       sizeof(w->key_attr)) != 0) {
		dir_errf(err, errlen,
		         "directory watcher: [directory] user_filter %s "
		         "compares no attribute with {identity} as "
		         "(attr={identity}); set watch = off or write the "
		         "filter that way",
		         w->cfg.user_filter);
		r = DIR_EINVAL;
		goto fail;
	}
	base = w->cfg.base_dn != NULL      ? w->cfg.base_dn
	       : w->cfg.group_base != NULL ? w->cfg.group_base
	                                   : w->cfg.people_base;
	if (base == NULL) {
		dir_errf(err, errlen,
		         "directory watcher: no search base; set [ldap] "
		         "base_dn (the watcher follows people and groups "
		         "under it)");
		r = DIR_EINVAL;
		goto fail;
	}
	flen = strlen(w->cfg.member_attribute) + strlen(w->key_attr) + 16;
	w->base = strdup(base);
	w->filter = malloc(flen);
	if (w->base == NULL || w->filter == NULL) {
		r = DIR_ENOMEM;
		goto fail;
	}
	snprintf(w->filter, flen, "(|(%s=*)(%s=*))", w->cfg.member_attribute,
	         w->key_attr);
	if (follower && (r = follower_setup(w, base, err, errlen)) != 0)
		goto fail;
	if ((r = dir_wstate_new(&w->state)) != 0)
		goto fail;
	/* Group changes revoke only where a member list is the whole
	 * membership; with nesting the live check decides. */
	dir_wstate_set_direct(w->state,
	                      w->cfg.membership == DIR_MEMBERSHIP_MEMBEROF ||
	                          w->cfg.membership == DIR_MEMBERSHIP_MEMBER);
	*out = w;
	return 0;
fail:
	dir_watch_close(w);
	return r;
}

int
dir_watch_open(const struct dir_config *cfg,
               const struct dir_watch_hooks *hooks, struct dir_watch **out,
               char *err, size_t errlen)
{
	return watch_open(cfg, hooks, 0, out, err, errlen);
}

int
dir_watch_open_follower(const struct dir_config *cfg,
                        int (*keep_going)(void *arg), void *arg,
                        struct dir_watch **out, char *err, size_t errlen)
{
	struct dir_watch_hooks h;

	memset(&h, 0, sizeof(h));
	h.change = ignore_change;
	h.keep_going = keep_going;
	h.arg = arg;
	return watch_open(cfg, &h, 1, out, err, errlen);
}

/* Under slock (read). */
static int
usable_locked(struct dir_watch *w)
{
	struct pollfd pfd;
	int fd;

	if (!w->follower || !atomic_load(&w->usable))
		return 0;
	if (mono_ms() - atomic_load(&w->last_poll_ms) > DIR_WATCH_FRESH_MS)
		return 0;
	if ((fd = atomic_load(&w->sync_fd)) < 0)
		return 0;
	/* A hang-up or an error: the sync is gone even if its thread has
	 * not noticed yet. A message waiting to be read: a change may be on
	 * its way; ask the directory until it is applied. */
	pfd.fd = fd;
	pfd.events = POLLIN | POLLRDHUP;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) == 0;
}

int
dir_watch_usable(struct dir_watch *w)
{
	int u;

	if (w == NULL)
		return 0;
	pthread_rwlock_rdlock(&w->slock);
	u = usable_locked(w);
	pthread_rwlock_unlock(&w->slock);
	return u;
}

int
dir_watch_lookup(struct dir_watch *w, const char *identity,
                 const char *const *groups, size_t ngroups, int *group_index)
{
	char *ng[DIR_MAX_GROUPS];
	int r = DIR_WQ_UNKNOWN;

	*group_index = -1;
	if (w == NULL || !w->follower || ngroups > DIR_MAX_GROUPS ||
	    !atomic_load(&w->usable))
		return DIR_WQ_UNKNOWN;
	for (size_t i = 0; i < ngroups; i++)
		if (groups[i] == NULL || dir_dn_norm(groups[i], &ng[i]) != 0)
			ng[i] = NULL; /* never matches */
	pthread_rwlock_rdlock(&w->slock);
	if (usable_locked(w))
		r = dir_wstate_lookup(w->state, identity, w->people_ndn,
		                      (const char *const *)ng, ngroups,
		                      group_index);
	pthread_rwlock_unlock(&w->slock);
	for (size_t i = 0; i < ngroups; i++)
		free(ng[i]);
	return r;
}

void
dir_watch_get_stats(struct dir_watch *w, struct dir_watch_stats *st)
{
	pthread_mutex_lock(&w->mu);
	*st = w->st;
	pthread_mutex_unlock(&w->mu);
}

void
dir_watch_reset(struct dir_watch *w)
{
	forget(w);
}

void
dir_watch_close(struct dir_watch *w)
{
	if (w == NULL)
		return;
	dir_wstate_free(w->state);
	free(w->cookie.bv_val);
	free(w->base);
	free(w->filter);
	free(w->people_ndn);
	dir_cfg_free(&w->cfg);
	pthread_rwlock_destroy(&w->slock);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int
dir_dn_normalize(const char *dn, char **out)
{
	return dir_dn_norm(dn, out);
}
