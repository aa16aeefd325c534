/*
 * directory/check.c -- "is this identity an active member of an allowed
 * group, right now?": dir_check_member and dir_check_role. See
 * directory.h for the contract and dir_int.h for the helpers.
 *
 * One check runs on one pooled connection (dir_pool_run: a connection
 * found dead is replaced and the whole check runs once more) and asks the
 * directory every time: nothing is cached, so a removal or a lock shows
 * on the very next call.
 *
 * Round trips (what a check costs; DESIGN.md: they are what matters):
 *   1  the lookup: one subtree search under people_base with the
 *      configured filter, size limit 2 (two entries are enough to call
 *      it ambiguous), asking for exactly the attributes the checks need:
 *      memberOf (MEMBEROF) and the active preset's attribute
 *      (pwdAccountLockedTime, userAccountControl or nsAccountLock, all
 *      requested by name since some are operational). The presets and
 *      MEMBEROF are decided on that one answer: 1 round trip in all.
 *   +1 DIR_ACTIVE_FILTER: a base search on the entry with the filter
 *      (the only way to evaluate an arbitrary filter faithfully).
 *   +k MEMBER: a compare per allowed group until one says true.
 *   +k AD_CHAIN: a base search on the entry per allowed group with the
 *      in-chain rule until one matches.
 *   +d NESTED: a search per level for the groups whose member attribute
 *      holds any DN of the level before (the entry first), until an
 *      allowed group shows up, no new group appears, or nest_depth.
 * Every operation waits at most op_timeout_ms, and all of one check
 * together at most check_timeout_ms: a frozen server costs one timeout,
 * then the connection is dropped.
 *
 * The order of the verdicts: not_found / ambiguous, then inactive (no
 * membership round trips for a locked account), then member/not_member.
 */
#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "directory/dir_int.h"

/* Shown identities are cut to this many bytes. */
#define SHOW_IDENTITY_MAX 64

/* A list of malloc()ed strings. */
struct strlist {
	char **v;
	size_t n, cap;
};

static int
sl_push(struct strlist *l, char *s)
{
	char **nv;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;

		if ((nv = realloc(l->v, cap * sizeof(*nv))) == NULL)
			return DIR_ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = s;
	return 0;
}

static void
sl_free(struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
sl_has(const struct strlist *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

/* Everything one check needs; lives in dir_check_member's frame. */
struct check {
	const char *identity;
	size_t identity_len;
	char shown[SHOW_IDENTITY_MAX + 8]; /* printable, for messages */
	const char *const *groups;
	size_t ngroups;
	char **norm_groups; /* dir_dn_norm of each group */
	char *filter;	    /* the expanded lookup filter */
	const char *people_base;
	const char *group_base;
	struct dir_verdict *v;
	int64_t deadline_ms; /* of the current attempt */
};

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *
dir_verdict_name(int result)
{
	switch (result) {
	case DIR_V_MEMBER:
		return "member";
	case DIR_V_NOT_MEMBER:
		return "not_member";
	case DIR_V_INACTIVE:
		return "inactive";
	case DIR_V_NOT_FOUND:
		return "not_found";
	case DIR_V_AMBIGUOUS:
		return "ambiguous";
	default:
		return "unavailable";
	}
}

static void
check_log(const struct dir_cfg *c, int level, const char *event,
          const char *msg)
{
	char copy[DIR_ERR_MAX];

	if (c->log == NULL)
		return;
	dir_errf(copy, sizeof(copy), "%s", msg);
	dir_err_scrub(copy, c->bind_password, c->bind_password_len);
	c->log(c->log_arg, level, event, copy);
}

/* The identity for messages: at most SHOW_IDENTITY_MAX bytes, anything
 * but printable ASCII as '?', so logs stay one valid line. */
static void
show_identity(const char *id, size_t len, char *out, size_t outlen)
{
	size_t i, n = len < SHOW_IDENTITY_MAX ? len : SHOW_IDENTITY_MAX;

	if (outlen < n + 4)
		n = outlen > 4 ? outlen - 4 : 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)id[i];

		out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (n < len && outlen >= n + 4) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/* Time left in this attempt, within one operation's limit. */
static void
op_wait_tv(const struct dir_cfg *c, const struct check *x,
           struct timeval *tv)
{
	int64_t left = x->deadline_ms - dir_mono_ms();

	if (left > c->op_timeout_ms)
		left = c->op_timeout_ms;
	if (left < 1)
		left = 1;
	tv->tv_sec = (time_t)(left / 1000);
	tv->tv_usec = (suseconds_t)((left % 1000) * 1000);
}

/* Waits for the whole answer to msgid within this attempt's time
 * (dir_wait_answer: also a Notice of Disconnection, without a leak). */
static int
wait_result(const struct dir_cfg *c, const struct check *x, LDAP *ld,
            int msgid, LDAPMessage **res)
{
	struct timeval tv;

	op_wait_tv(c, x, &tv);
	return dir_wait_answer(ld, msgid, &tv, res);
}

/*
 * One search. Returns LDAP_SUCCESS when the server answered (its result
 * code in *srv_rc, entries in *res), else the client-side error.
 */
static int
search(const struct dir_cfg *c, struct check *x, LDAP *ld, const char *base,
       int scope, const char *filter, char **attrs, int sizelimit,
       LDAPMessage **res, int *srv_rc)
{
	struct dir_sigpipe sp;
	struct timeval limit;
	int msgid = -1, lrc;

	*res = NULL;
	*srv_rc = LDAP_OTHER;
	/* The server's own time limit, in whole seconds. */
	limit.tv_sec = (c->op_timeout_ms + 999) / 1000;
	limit.tv_usec = 0;
	x->v->round_trips++;
	dir_sigpipe_block(&sp);
	lrc = ldap_search_ext(ld, base, scope, filter, attrs, 0, NULL, NULL,
	                      &limit, sizelimit, &msgid);
	if (lrc == LDAP_SUCCESS)
		lrc = wait_result(c, x, ld, msgid, res);
	dir_sigpipe_restore(&sp);
	if (lrc != LDAP_SUCCESS)
		return lrc;
	if (ldap_parse_result(ld, *res, srv_rc, NULL, NULL, NULL, NULL, 0) !=
	    LDAP_SUCCESS) {
		ldap_msgfree(*res);
		*res = NULL;
		return LDAP_DECODING_ERROR;
	}
	return LDAP_SUCCESS;
}

/* One compare. LDAP_SUCCESS with the server's code in *srv_rc. */
static int
compare(const struct dir_cfg *c, struct check *x, LDAP *ld, const char *dn,
        const char *attr, const char *value, int *srv_rc)
{
	struct dir_sigpipe sp;
	struct berval bv;
	LDAPMessage *res = NULL;
	int msgid = -1, lrc;

	*srv_rc = LDAP_OTHER;
	bv.bv_val = (char *)(uintptr_t)value;
	bv.bv_len = strlen(value);
	x->v->round_trips++;
	dir_sigpipe_block(&sp);
	lrc = ldap_compare_ext(ld, dn, attr, &bv, NULL, NULL, &msgid);
	if (lrc == LDAP_SUCCESS)
		lrc = wait_result(c, x, ld, msgid, &res);
	dir_sigpipe_restore(&sp);
	if (lrc != LDAP_SUCCESS)
		return lrc;
	if (ldap_parse_result(ld, res, srv_rc, NULL, NULL, NULL, NULL, 1) !=
	    LDAP_SUCCESS)
		return LDAP_DECODING_ERROR;
	return LDAP_SUCCESS;
}

/* A client-side failure (no answer), as DIR_E* and a message. When the
 * whole check's budget, not the operation's, ran out, say so. */
static int
op_failed(const struct dir_cfg *c, const struct check *x,
          struct dir_conn *conn, int lrc, const char *what, char *err,
          size_t errlen)
{
	if (lrc == LDAP_TIMEOUT && c->check_timeout_ms < c->op_timeout_ms &&
	    dir_mono_ms() >= x->deadline_ms) {
		dir_errf(err, errlen,
		         "%s on %s timed out: the check took longer than "
		         "%d ms (directory.check_timeout_ms); the directory "
		         "accepts connections but does not answer in time",
		         what, conn->uri->uri, c->check_timeout_ms);
		return DIR_ETIMEOUT;
	}
	return dir_op_error(c, conn, lrc, what, err, errlen);
}

/* A server's refusal of an operation, as DIR_E* and a message. */
static int
server_error(const struct dir_cfg *c, struct dir_conn *conn, int srv_rc,
             const char *what, const char *base, char *err, size_t errlen)
{
	switch (srv_rc) {
	case LDAP_NO_SUCH_OBJECT:
		dir_errf(err, errlen,
		         "%s on %s: the search base %s does not exist — check "
		         "directory.people_base / directory.group_base (or "
		         "ldap.base_dn)",
		         what, conn->uri->uri, base);
		return DIR_EINVAL;
	case LDAP_FILTER_ERROR:
	case LDAP_PROTOCOL_ERROR:
	case LDAP_INAPPROPRIATE_MATCHING:
	case LDAP_UNDEFINED_TYPE:
		dir_errf(err, errlen,
		         "%s on %s: the server rejects the filter (%s) — check "
		         "directory.user_filter, directory.active_filter and "
		         "directory.member_attribute",
		         what, conn->uri->uri, ldap_err2string(srv_rc));
		return DIR_EINVAL;
	default:
		return dir_op_error(c, conn, srv_rc, what, err, errlen);
	}
}

/* The entry's DN, as the server names it, into v->entry_dn. */
static int
take_entry_dn(LDAP *ld, LDAPMessage *e, struct dir_verdict *v, char *err,
              size_t errlen)
{
	char *dn = ldap_get_dn(ld, e);
	size_t n;

	if (dn == NULL) {
		dir_errf(err, errlen, "the directory sent an entry without "
		                      "a readable DN");
		return DIR_EUNAVAIL;
	}
	n = strlen(dn);
	if (n >= sizeof(v->entry_dn)) {
		dir_errf(err, errlen,
		         "the directory entry's DN is longer than %zu bytes",
		         sizeof(v->entry_dn) - 1);
		ldap_memfree(dn);
		return DIR_EINVAL;
	}
	memcpy(v->entry_dn, dn, n + 1);
	ldap_memfree(dn);
	return 0;
}

/* A berval (not necessarily NUL-terminated) as a C string, or NULL. */
static char *
bv_str(const struct berval *bv)
{
	char *s;

	if (bv->bv_len >= DIR_DN_MAX || memchr(bv->bv_val, 0, bv->bv_len))
		return NULL;
	if ((s = malloc(bv->bv_len + 1)) == NULL)
		return NULL;
	memcpy(s, bv->bv_val, bv->bv_len);
	s[bv->bv_len] = '\0';
	return s;
}

/*
 * The presets, on the looked-up entry. Returns 0 with *active set, or
 * DIR_EINVAL when the attribute the preset needs is unreadable (AD).
 */
static int
eval_active_preset(const struct dir_cfg *c, LDAP *ld, LDAPMessage *e,
                   int *active, char *why, size_t whylen)
{
	struct berval **vals = NULL;
	int r = 0;

	*active = 0;
	switch (c->active) {
	case DIR_ACTIVE_NONE:
	case DIR_ACTIVE_FILTER:
		*active = 1;
		return 0;
	case DIR_ACTIVE_OPENLDAP:
		/* Any value locks: 000001010000Z for good, or a time. */
		vals = ldap_get_values_len(ld, e, "pwdAccountLockedTime");
		*active = vals == NULL || vals[0] == NULL;
		if (!*active)
			dir_errf(why, whylen,
			         "locked (pwdAccountLockedTime is set)");
		break;
	case DIR_ACTIVE_FREEIPA:
		vals = ldap_get_values_len(ld, e, "nsAccountLock");
		*active = vals == NULL || vals[0] == NULL ||
		          !dir_ipa_locked(vals[0]->bv_val, vals[0]->bv_len);
		if (!*active)
			dir_errf(why, whylen,
			         "disabled (nsAccountLock is TRUE)");
		break;
	case DIR_ACTIVE_AD: {
		long long uac = 0;
		int disabled = 0;

		vals = ldap_get_values_len(ld, e, "userAccountControl");
		if (vals == NULL || vals[0] == NULL) {
			dir_errf(why, whylen,
			         "has no userAccountControl value the service "
			         "account can read, so the active check "
			         "(directory.active = ad) cannot be made");
			r = DIR_EINVAL;
			break;
		}
		if (dir_uac_disabled(vals[0]->bv_val, vals[0]->bv_len, &uac,
		                     &disabled) != 0) {
			dir_errf(why, whylen,
			         "has a userAccountControl value that is no "
			         "32-bit number");
			r = DIR_EINVAL;
			break;
		}
		*active = !disabled;
		if (disabled)
			dir_errf(why, whylen,
			         "disabled (userAccountControl %lld has "
			         "ACCOUNTDISABLE)",
			         uac);
		break;
	}
	}
	if (vals != NULL)
		ldap_value_free_len(vals);
	return r;
}

/* DIR_ACTIVE_FILTER: does the entry match active_filter? */
static int
eval_active_filter(const struct dir_cfg *c, struct check *x,
                   struct dir_conn *conn, int *active, int *gone,
                   int *ldap_rc, char *err, size_t errlen)
{
	static char *no_attrs[] = {LDAP_NO_ATTRS, NULL};
	LDAPMessage *res = NULL;
	int lrc, srv = LDAP_OTHER, r;

	*active = *gone = 0;
	lrc = search(c, x, conn->ld, x->v->entry_dn, LDAP_SCOPE_BASE,
	             c->active_filter, no_attrs, 1, &res, &srv);
	if (lrc != LDAP_SUCCESS) {
		*ldap_rc = lrc;
		return op_failed(c, x, conn, lrc, "the active check", err,
		                    errlen);
	}
	if (srv == LDAP_NO_SUCH_OBJECT) {
		*gone = 1; /* removed since the lookup */
		r = 0;
	} else if (srv != LDAP_SUCCESS) {
		*ldap_rc = srv;
		r = server_error(c, conn, srv, "the active check",
		                 x->v->entry_dn, err, errlen);
	} else {
		*active = ldap_count_entries(conn->ld, res) == 1;
		r = 0;
	}
	ldap_msgfree(res);
	return r;
}

/* First allowed group (in the caller's order) whose normalized DN is in
 * have; -1 if none. */
static int
first_allowed(const struct check *x, const struct strlist *have)
{
	size_t i;

	for (i = 0; i < x->ngroups; i++)
		if (sl_has(have, x->norm_groups[i]))
			return (int)i;
	return -1;
}

/* MEMBEROF: the entry's memberOf values against the allowed groups. */
static int
member_by_memberof(struct check *x, LDAP *ld, LDAPMessage *e, int *idx)
{
	struct berval **vals;
	struct strlist have = {NULL, 0, 0};
	char *s, *n;
	size_t i;
	int r = 0;

	*idx = -1;
	vals = ldap_get_values_len(ld, e, "memberOf");
	for (i = 0; vals != NULL && vals[i] != NULL; i++) {
		if ((s = bv_str(vals[i])) == NULL)
			continue;
		r = dir_dn_norm(s, &n);
		free(s);
		if (r == DIR_ENOMEM)
			goto out;
		r = 0;
		if (n != NULL && sl_push(&have, n) != 0) {
			free(n);
			r = DIR_ENOMEM;
			goto out;
		}
	}
	*idx = first_allowed(x, &have);
out:
	if (vals != NULL)
		ldap_value_free_len(vals);
	sl_free(&have);
	return r;
}

/* MEMBER: compare member_attribute on each allowed group. */
static int
member_by_compare(const struct dir_cfg *c, struct check *x,
                  struct dir_conn *conn, int *idx, int *ldap_rc, char *err,
                  size_t errlen)
{
	char msg[DIR_ERR_MAX];
	size_t i;
	int lrc, srv;

	*idx = -1;
	for (i = 0; i < x->ngroups; i++) {
		lrc = compare(c, x, conn->ld, x->groups[i],
		              c->member_attribute, x->v->entry_dn, &srv);
		if (lrc != LDAP_SUCCESS) {
			*ldap_rc = lrc;
			return op_failed(c, x, conn, lrc,
			                    "the membership compare", err,
			                    errlen);
		}
		switch (srv) {
		case LDAP_COMPARE_TRUE:
			*idx = (int)i;
			return 0;
		case LDAP_COMPARE_FALSE:
		case LDAP_NO_SUCH_ATTRIBUTE:
			break;
		case LDAP_NO_SUCH_OBJECT:
			dir_errf(msg, sizeof(msg),
			         "allowed group %s does not exist on %s",
			         x->groups[i], conn->uri->uri);
			check_log(c, DIR_LOG_WARN, "directory_group_missing",
			          msg);
			break;
		default:
			*ldap_rc = srv;
			return server_error(c, conn, srv,
			                    "the membership compare",
			                    x->groups[i], err, errlen);
		}
	}
	return 0;
}

/* AD_CHAIN: a base search on the entry per group, in-chain rule. */
static int
member_by_ad_chain(const struct dir_cfg *c, struct check *x,
                   struct dir_conn *conn, int *idx, int *ldap_rc, char *err,
                   size_t errlen)
{
	static char *no_attrs[] = {LDAP_NO_ATTRS, NULL};
	LDAPMessage *res = NULL;
	char *f = NULL;
	size_t i;
	int lrc, srv, r = 0, n;

	*idx = -1;
	for (i = 0; i < x->ngroups && *idx < 0; i++) {
		if ((r = dir_filter_ad_chain(x->groups[i], &f, err, errlen)) !=
		    0)
			return r;
		lrc = search(c, x, conn->ld, x->v->entry_dn, LDAP_SCOPE_BASE,
		             f, no_attrs, 1, &res, &srv);
		free(f);
		f = NULL;
		if (lrc != LDAP_SUCCESS) {
			*ldap_rc = lrc;
			return op_failed(c, x, conn, lrc,
			                    "the nested membership search", err,
			                    errlen);
		}
		n = ldap_count_entries(conn->ld, res);
		ldap_msgfree(res);
		res = NULL;
		if (srv != LDAP_SUCCESS && srv != LDAP_NO_SUCH_OBJECT) {
			*ldap_rc = srv;
			return server_error(c, conn, srv,
			                    "the nested membership search",
			                    x->v->entry_dn, err, errlen);
		}
		if (srv == LDAP_SUCCESS && n == 1)
			*idx = (int)i;
	}
	return 0;
}

/*
 * NESTED: walk up from the entry, a level per round trip. visited holds
 * every DN seen (normalized), so a cycle of groups, or a group reached
 * twice, is expanded once. *stopped is set when nest_depth ended a walk
 * that still had groups to follow.
 */
static int
member_by_nesting(const struct dir_cfg *c, struct check *x,
                  struct dir_conn *conn, int *idx, int *stopped,
                  int *levels, int *ldap_rc, char *err, size_t errlen)
{
	static char *no_attrs[] = {LDAP_NO_ATTRS, NULL};
	struct strlist level = {NULL, 0, 0}, next = {NULL, 0, 0},
	               visited = {NULL, 0, 0};
	LDAPMessage *res = NULL, *e;
	char *f = NULL, *s = NULL, *n = NULL;
	int r, lrc, srv, depth, best;
	size_t i;

	*idx = -1;
	*stopped = 0;
	*levels = 0;
	if ((f = strdup(x->v->entry_dn)) == NULL ||
	    sl_push(&level, f) != 0) {
		r = DIR_ENOMEM;
		goto out; /* f freed there */
	}
	f = NULL; /* owned by level */
	if ((r = dir_dn_norm(x->v->entry_dn, &n)) == 0) {
		if ((r = sl_push(&visited, n)) != 0)
			goto out; /* n freed there */
	} else if (r == DIR_ENOMEM) {
		goto out;
	}
	n = NULL;
	for (depth = 1; depth <= c->nest_depth && level.n > 0; depth++) {
		r = dir_filter_eq_any(c->member_attribute,
		                      (const char *const *)level.v, level.n,
		                      &f, err, errlen);
		if (r != 0)
			goto out;
		*levels = depth;
		lrc = search(c, x, conn->ld, x->group_base, LDAP_SCOPE_SUBTREE,
		             f, no_attrs, DIR_MAX_NEST_GROUPS, &res, &srv);
		free(f);
		f = NULL;
		if (lrc != LDAP_SUCCESS) {
			*ldap_rc = lrc;
			r = op_failed(c, x, conn, lrc, "the group search", err,
			                 errlen);
			goto out;
		}
		if (srv == LDAP_SIZELIMIT_EXCEEDED) {
			dir_errf(err, errlen,
			         "the group search under %s found more than %d "
			         "groups at nesting level %d: narrow "
			         "directory.group_base",
			         x->group_base, DIR_MAX_NEST_GROUPS, depth);
			r = DIR_EINVAL;
			goto out;
		}
		if (srv != LDAP_SUCCESS) {
			*ldap_rc = srv;
			r = server_error(c, conn, srv, "the group search",
			                 x->group_base, err, errlen);
			goto out;
		}
		best = -1;
		for (e = ldap_first_entry(conn->ld, res); e != NULL;
		     e = ldap_next_entry(conn->ld, e)) {
			s = ldap_get_dn(conn->ld, e);
			if (s == NULL)
				continue;
			r = dir_dn_norm(s, &n);
			if (r == DIR_ENOMEM)
				goto out;
			if (r != 0 || sl_has(&visited, n)) {
				ldap_memfree(s);
				s = NULL;
				free(n);
				n = NULL;
				continue;
			}
			if (visited.n >= DIR_MAX_NEST_GROUPS) {
				dir_errf(err, errlen,
				         "the nested groups above %s reach more "
				         "than %d groups",
				         x->v->entry_dn, DIR_MAX_NEST_GROUPS);
				r = DIR_EINVAL;
				goto out;
			}
			if ((r = sl_push(&visited, n)) != 0)
				goto out;
			n = NULL;
			for (i = 0; i < x->ngroups; i++)
				if (strcmp(visited.v[visited.n - 1],
				           x->norm_groups[i]) == 0 &&
				    (best < 0 || (int)i < best))
					best = (int)i;
			r = (n = strdup(s)) == NULL ? DIR_ENOMEM
			                            : sl_push(&next, n);
			ldap_memfree(s);
			s = NULL;
			if (r != 0)
				goto out;
			n = NULL;
		}
		ldap_msgfree(res);
		res = NULL;
		if (best >= 0) {
			*idx = best;
			r = 0;
			goto out;
		}
		sl_free(&level);
		level = next;
		memset(&next, 0, sizeof(next));
	}
	*stopped = level.n > 0;
	r = 0;
out:
	if (res != NULL)
		ldap_msgfree(res);
	if (s != NULL)
		ldap_memfree(s);
	free(n);
	free(f);
	sl_free(&level);
	sl_free(&next);
	sl_free(&visited);
	return r;
}

/* Up to two DNs of an ambiguous answer, for the message. */
static void
ambiguous_dns(LDAP *ld, LDAPMessage *res, char *out, size_t outlen)
{
	LDAPMessage *e;
	char *dn;
	int i = 0;

	out[0] = '\0';
	for (e = ldap_first_entry(ld, res); e != NULL && i < 2;
	     e = ldap_next_entry(ld, e), i++) {
		if ((dn = ldap_get_dn(ld, e)) == NULL)
			continue;
		dir_errcat(out, outlen, "%s%s", i ? "; " : "", dn);
		ldap_memfree(dn);
	}
}

/* The attributes the lookup asks for: exactly what the checks read. */
static void
lookup_attrs(const struct dir_cfg *c, int want_groups, char **attrs)
{
	int n = 0;

	switch (c->active) {
	case DIR_ACTIVE_OPENLDAP:
		attrs[n++] = "pwdAccountLockedTime";
		break;
	case DIR_ACTIVE_AD:
		attrs[n++] = "userAccountControl";
		break;
	case DIR_ACTIVE_FREEIPA:
		attrs[n++] = "nsAccountLock";
		break;
	default:
		break;
	}
	if (want_groups && c->membership == DIR_MEMBERSHIP_MEMBEROF)
		attrs[n++] = "memberOf";
	if (n == 0)
		attrs[n++] = LDAP_NO_ATTRS;
	attrs[n] = NULL;
}

/* The whole check on one connection (a dir_op_fn for dir_pool_run). */
static int
check_op(const struct dir_cfg *c, struct dir_conn *conn, void *arg,
         int *ldap_rc, char *err, size_t errlen)
{
	struct check *x = arg;
	struct dir_verdict *v = x->v;
	LDAPMessage *res = NULL, *e;
	char *attrs[4], why[DIR_ERR_MAX], dns[DIR_ERR_MAX];
	int r, lrc, srv, n, active, gone, idx = -1, stopped = 0, levels = 0;

	v->result = DIR_V_UNAVAILABLE;
	v->entry_dn[0] = v->group_dn[0] = '\0';
	v->group_index = -1;
	x->deadline_ms = dir_mono_ms() + c->check_timeout_ms;
	why[0] = '\0';

	/* 1. The lookup. */
	lookup_attrs(c, x->ngroups > 0, attrs);
	lrc = search(c, x, conn->ld, x->people_base, LDAP_SCOPE_SUBTREE,
	             x->filter, attrs, 2, &res, &srv);
	if (lrc != LDAP_SUCCESS) {
		*ldap_rc = lrc;
		r = op_failed(c, x, conn, lrc, "the identity lookup", err,
		                 errlen);
		goto out;
	}
	if (srv != LDAP_SUCCESS && srv != LDAP_SIZELIMIT_EXCEEDED) {
		*ldap_rc = srv;
		r = server_error(c, conn, srv, "the identity lookup",
		                 x->people_base, err, errlen);
		goto out;
	}
	n = ldap_count_entries(conn->ld, res);
	if (n == 0 && srv == LDAP_SUCCESS) {
		v->result = DIR_V_NOT_FOUND;
		dir_errf(err, errlen,
		         "no directory entry under %s matches the identity "
		         "'%s'",
		         x->people_base, x->shown);
		r = 0;
		goto out;
	}
	if (n != 1) {
		ambiguous_dns(conn->ld, res, dns, sizeof(dns));
		v->result = DIR_V_AMBIGUOUS;
		dir_errf(err, errlen,
		         "the identity '%s' matches more than one directory "
		         "entry (%s): denied — make directory.user_filter "
		         "match one entry per identity",
		         x->shown, dns);
		check_log(c, DIR_LOG_WARN, "directory_ambiguous", err);
		r = 0;
		goto out;
	}
	e = ldap_first_entry(conn->ld, res);
	if ((r = take_entry_dn(conn->ld, e, v, err, errlen)) != 0)
		goto out;

	/* 2. Active? */
	if (c->active == DIR_ACTIVE_FILTER) {
		if ((r = eval_active_filter(c, x, conn, &active, &gone, ldap_rc,
		                            err, errlen)) != 0)
			goto out;
		if (gone) {
			v->entry_dn[0] = '\0';
			v->result = DIR_V_NOT_FOUND;
			dir_errf(err, errlen,
			         "the entry for '%s' was removed during the "
			         "check",
			         x->shown);
			goto out;
		}
		if (!active)
			dir_errf(why, sizeof(why),
			         "does not match directory.active_filter %s",
			         c->active_filter);
	} else if ((r = eval_active_preset(c, conn->ld, e, &active, why,
	                                   sizeof(why))) != 0) {
		dir_errf(err, errlen, "%s %s", v->entry_dn, why);
		goto out;
	}
	if (!active) {
		v->result = DIR_V_INACTIVE;
		dir_errf(err, errlen, "%s is %s", v->entry_dn, why);
		r = 0;
		goto out;
	}

	/* 3. Member of an allowed group? dir_check_active asks none: an
	 * active entry is all it wants to know. */
	if (x->ngroups == 0) {
		v->result = DIR_V_NOT_MEMBER;
		dir_errf(err, errlen, "%s is active (no group was asked)",
		         v->entry_dn);
		r = 0;
		goto out;
	}
	switch (c->membership) {
	case DIR_MEMBERSHIP_MEMBEROF:
		r = member_by_memberof(x, conn->ld, e, &idx);
		if (r == DIR_ENOMEM)
			dir_errf(err, errlen, "out of memory");
		break;
	case DIR_MEMBERSHIP_MEMBER:
		r = member_by_compare(c, x, conn, &idx, ldap_rc, err, errlen);
		break;
	case DIR_MEMBERSHIP_AD_CHAIN:
		r = member_by_ad_chain(c, x, conn, &idx, ldap_rc, err, errlen);
		break;
	case DIR_MEMBERSHIP_NESTED:
		r = member_by_nesting(c, x, conn, &idx, &stopped, &levels,
		                      ldap_rc, err, errlen);
		if (r == DIR_ENOMEM)
			dir_errf(err, errlen, "out of memory");
		break;
	default:
		r = DIR_EINVAL;
		dir_errf(err, errlen, "unknown membership strategy");
		break;
	}
	if (r != 0)
		goto out;
	if (idx >= 0) {
		v->group_index = idx;
		dir_errf(v->group_dn, sizeof(v->group_dn), "%s",
		         x->groups[idx]);
		v->result = DIR_V_MEMBER;
		dir_errf(err, errlen, "%s is an active member of %s",
		         v->entry_dn, v->group_dn);
	} else {
		v->result = DIR_V_NOT_MEMBER;
		dir_errf(err, errlen,
		         "%s is active but in none of the %zu allowed "
		         "group%s (first: %s)%s",
		         v->entry_dn, x->ngroups, x->ngroups == 1 ? "" : "s",
		         x->groups[0],
		         stopped ? "; nesting deeper than directory.nest_depth "
		                   "was not followed"
		                 : "");
		if (c->membership == DIR_MEMBERSHIP_NESTED)
			dir_errcat(err, errlen, " (%d group level%s searched)",
			           levels, levels == 1 ? "" : "s");
	}
	r = 0;
out:
	if (res != NULL)
		ldap_msgfree(res);
	if (r != 0) {
		v->result = DIR_V_UNAVAILABLE;
		v->entry_dn[0] = v->group_dn[0] = '\0';
		v->group_index = -1;
	}
	return r;
}

static void
verdict_reset(struct dir_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->result = DIR_V_UNAVAILABLE;
	v->group_index = -1;
}

/* dir_check_member, and with no_groups dir_check_active (groups ignored,
 * step 3 of check_op skipped). */
static int
check_run(struct dir_pool *pool, const char *identity, size_t identity_len,
          const char *const *groups, size_t ngroups, int no_groups,
          struct dir_verdict *v, char *err, size_t errlen)
{
	const struct dir_cfg *c = NULL;
	struct check x;
	struct dir_verdict scratch;
	char msg[DIR_ERR_MAX];
	int64_t t0 = mono_us();
	size_t i;
	int r;

	if (v == NULL)
		v = &scratch;
	verdict_reset(v);
	memset(&x, 0, sizeof(x));
	x.v = v;
	dir_errf(err, errlen, "%s", "");
	if (pool == NULL) {
		dir_errf(err, errlen, "no directory pool");
		return DIR_EINVAL;
	}
	c = dir_pool_cfg(pool);
	if (identity == NULL || identity_len == 0 ||
	    identity_len > DIR_MAX_IDENTITY_LEN) {
		/* Not looked up: no entry can be had for it. */
		v->result = DIR_V_NOT_FOUND;
		dir_errf(err, errlen,
		         "the identity is %s: it must be 1 to %d bytes",
		         identity == NULL || identity_len == 0 ? "empty"
		                                               : "too long",
		         DIR_MAX_IDENTITY_LEN);
		r = DIR_EINVAL;
		goto out;
	}
	show_identity(identity, identity_len, x.shown, sizeof(x.shown));
	x.identity = identity;
	x.identity_len = identity_len;
	x.people_base = c->people_base ? c->people_base : c->base_dn;
	x.group_base = c->group_base ? c->group_base : c->base_dn;
	r = DIR_EINVAL;
	if (x.people_base == NULL ||
	    (c->membership == DIR_MEMBERSHIP_NESTED && x.group_base == NULL)) {
		dir_errf(err, errlen,
		         "no search base: set directory.people_base%s or "
		         "ldap.base_dn",
		         c->membership == DIR_MEMBERSHIP_NESTED
		             ? " and directory.group_base"
		             : "");
		goto out;
	}
	if (no_groups) {
		groups = NULL;
		ngroups = 0;
	} else if (groups == NULL || ngroups == 0 ||
	           ngroups > DIR_MAX_GROUPS) {
		dir_errf(err, errlen,
		         "a check needs 1 to %d allowed groups (got %zu)",
		         DIR_MAX_GROUPS, groups == NULL ? (size_t)0 : ngroups);
		goto out;
	}
	if (ngroups > 0 &&
	    (x.norm_groups = calloc(ngroups, sizeof(char *))) == NULL) {
		r = DIR_ENOMEM;
		dir_errf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < ngroups; i++) {
		if (groups[i] == NULL || groups[i][0] == '\0' ||
		    (r = dir_dn_norm(groups[i], &x.norm_groups[i])) != 0) {
			if (r != DIR_ENOMEM)
				r = DIR_EINVAL;
			dir_errf(err, errlen,
			         "allowed group %zu ('%s') is not a valid DN",
			         i + 1, groups[i] ? groups[i] : "");
			goto out;
		}
	}
	x.groups = groups;
	x.ngroups = ngroups;
	if ((r = dir_filter_expand(c->user_filter, identity, identity_len,
	                           &x.filter, err, errlen)) != 0)
		goto out;
	r = dir_pool_run(pool, check_op, &x, err, errlen);
	if (r != 0) {
		v->result = DIR_V_UNAVAILABLE;
		dir_errf(msg, sizeof(msg), "check of '%s' failed: %s",
		         x.shown, err);
		check_log(c, DIR_LOG_ERROR, "directory_check_failed", msg);
	}
out:
	if (x.norm_groups != NULL)
		for (i = 0; i < ngroups; i++)
			free(x.norm_groups[i]);
	free(x.norm_groups);
	free(x.filter);
	v->elapsed_us = mono_us() - t0;
	dir_pool_note_check(pool, v->result, r, v->round_trips,
	                    v->elapsed_us);
	if (c != NULL)
		dir_err_scrub(err, c->bind_password, c->bind_password_len);
	return r;
}

int
dir_check_member(struct dir_pool *pool, const char *identity,
                 size_t identity_len, const char *const *groups,
                 size_t ngroups, struct dir_verdict *v, char *err,
                 size_t errlen)
{
	return check_run(pool, identity, identity_len, groups, ngroups, 0, v,
	                 err, errlen);
}

int
dir_check_active(struct dir_pool *pool, const char *identity,
                 size_t identity_len, struct dir_verdict *v, char *err,
                 size_t errlen)
{
	return check_run(pool, identity, identity_len, NULL, 0, 1, v, err,
	                 errlen);
}

int
dir_check_role(struct dir_pool *pool, const char *identity,
               size_t identity_len, enum dir_role role,
               struct dir_verdict *v, char *err, size_t errlen)
{
	static const char *const names[DIR_ROLE_COUNT] = {
	    "directory.host_group", "directory.admin_group",
	    "directory.compliance_group"};
	const struct dir_cfg *c;
	const char *group;

	if (v != NULL)
		verdict_reset(v);
	if (pool == NULL || (int)role < 0 || role >= DIR_ROLE_COUNT) {
		dir_errf(err, errlen, "no directory pool, or unknown role");
		return DIR_EINVAL;
	}
	c = dir_pool_cfg(pool);
	if ((group = c->role_groups[role]) == NULL) {
		if (v != NULL)
			v->result = DIR_V_NOT_MEMBER;
		dir_errf(err, errlen,
		         "%s is not set: nobody holds this role until it "
		         "names a group",
		         names[role]);
		return DIR_EINVAL;
	}
	return dir_check_member(pool, identity, identity_len, &group, 1, v, err,
	                        errlen);
}
