/*
 * directory/watch_state.c -- the watcher's baseline and diffing (see
 * watch_int.h): pure bookkeeping, no connection, unit tested.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "directory/dir_int.h"
#include "directory/watch_int.h"

struct went {
	char *uuid;     /* hex, the table key */
	int group;      /* 0: a person */
	char *ndn;      /* normalized DN */
	char *identity; /* people */
	int inactive;
	char **members; /* groups: normalized member DNs, sorted */
	size_t nmembers;
	int seen;           /* named during the current refresh */
	int await_snapshot; /* first seen during a refresh */
	/* people, for lookups (dir_wstate_lookup): every value of the
	 * identity attribute as sent, and folded (keys, no duplicates) */
	char **ids;
	size_t nids;
	char **keys;
	size_t nkeys;
	int nocache; /* a person that is also a group: never answered */
};

struct dir_wstate {
	GHashTable *by_uuid; /* hex uuid -> struct went (owned) */
	GHashTable *by_dn;   /* people: ndn -> struct went (borrowed) */
	GHashTable *by_key;  /* people: folded identity -> GPtrArray of
	                        struct went (array owned, entries borrowed) */
	GHashTable *groups;  /* groups: ndn -> struct went (borrowed) */
	int in_refresh, drop_unseen;
};

static void
went_free(gpointer p)
{
	struct went *e = p;

	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nmembers; i++)
		free(e->members[i]);
	free(e->members);
	for (size_t i = 0; i < e->nids; i++)
		free(e->ids[i]);
	free(e->ids);
	for (size_t i = 0; i < e->nkeys; i++)
		free(e->keys[i]);
	free(e->keys);
	free(e->ndn);
	free(e->identity);
	free(e->uuid);
	free(e);
}

static char *
uuid_hex(const unsigned char *uuid, size_t len)
{
	static const char hx[] = "0123456789abcdef";
	char *s;

	if (uuid == NULL || len == 0 || len > 64)
		return NULL;
	s = malloc(len * 2 + 1);
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		s[2 * i] = hx[uuid[i] >> 4];
		s[2 * i + 1] = hx[uuid[i] & 15];
	}
	s[len * 2] = '\0';
	return s;
}

static void
key_list_free(gpointer p)
{
	g_ptr_array_free(p, TRUE);
}

char *
dir_wstate_fold(const char *id)
{
	gchar *cf, *nf;
	char *out;
	size_t o = 0;
	int space = 0;

	if (id == NULL)
		return NULL;
	if (g_utf8_validate(id, -1, NULL)) {
		cf = g_utf8_casefold(id, -1);
		nf = cf != NULL
		         ? g_utf8_normalize(cf, -1, G_NORMALIZE_ALL_COMPOSE)
		         : NULL;
		g_free(cf);
	} else {
		nf = g_ascii_strdown(id, -1);
	}
	if (nf == NULL)
		return NULL;
	out = malloc(strlen(nf) + 1);
	if (out != NULL) {
		/* Insignificant spaces (RFC 4518): runs count as one, none
		 * at the ends. */
		for (const char *p = nf; *p != '\0'; p++) {
			if (*p == ' ') {
				space = o > 0;
				continue;
			}
			if (space)
				out[o++] = ' ';
			space = 0;
			out[o++] = *p;
		}
		out[o] = '\0';
	}
	g_free(nf);
	return out;
}

/* Takes a person out of the lookup index and forgets its values. */
static void
person_unindex(struct dir_wstate *s, struct went *e)
{
	for (size_t i = 0; i < e->nkeys; i++) {
		GPtrArray *l = g_hash_table_lookup(s->by_key, e->keys[i]);

		if (l != NULL) {
			g_ptr_array_remove(l, e);
			if (l->len == 0)
				g_hash_table_remove(s->by_key, e->keys[i]);
		}
		free(e->keys[i]);
	}
	free(e->keys);
	e->keys = NULL;
	e->nkeys = 0;
	for (size_t i = 0; i < e->nids; i++)
		free(e->ids[i]);
	free(e->ids);
	e->ids = NULL;
	e->nids = 0;
}

/* Copies a person's identity values and indexes them by folded key (each
 * entry once per key). */
static int
person_index(struct dir_wstate *s, struct went *e,
             const struct dir_wentry_in *in)
{
	const char *const *v = in->identities;
	size_t n = in->nidentities;

	if (v == NULL) {
		v = &in->identity;
		n = 1;
	}
	e->nocache = in->nocache;
	e->ids = calloc(n + 1, sizeof(*e->ids));
	e->keys = calloc(n + 1, sizeof(*e->keys));
	if (e->ids == NULL || e->keys == NULL)
		return DIR_ENOMEM;
	e->nids = 0;
	e->nkeys = 0;
	for (size_t i = 0; i < n; i++) {
		char *k;
		GPtrArray *l;
		int dup = 0;

		if ((e->ids[e->nids] = strdup(v[i])) == NULL)
			return DIR_ENOMEM;
		e->nids++;
		if ((k = dir_wstate_fold(v[i])) == NULL)
			return DIR_ENOMEM;
		for (size_t j = 0; j < e->nkeys && !dup; j++)
			dup = strcmp(e->keys[j], k) == 0;
		if (dup) {
			free(k);
			continue;
		}
		e->keys[e->nkeys++] = k;
		l = g_hash_table_lookup(s->by_key, k);
		if (l == NULL) {
			char *kk = strdup(k);

			if (kk == NULL)
				return DIR_ENOMEM;
			l = g_ptr_array_new();
			g_hash_table_insert(s->by_key, kk, l);
		}
		g_ptr_array_add(l, e);
	}
	return 0;
}

/* Removes the index entry of table for key only if it names e. */
static void
unmap_if(GHashTable *t, const char *key, const struct went *e)
{
	if (key != NULL && g_hash_table_lookup(t, key) == e)
		g_hash_table_remove(t, key);
}

int
dir_wstate_new(struct dir_wstate **out)
{
	struct dir_wstate *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s == NULL)
		return DIR_ENOMEM;
	s->by_uuid =
	    g_hash_table_new_full(g_str_hash, g_str_equal, NULL, went_free);
	s->by_dn = g_hash_table_new(g_str_hash, g_str_equal);
	s->by_key =
	    g_hash_table_new_full(g_str_hash, g_str_equal, free, key_list_free);
	s->groups = g_hash_table_new(g_str_hash, g_str_equal);
	*out = s;
	return 0;
}

void
dir_wstate_clear(struct dir_wstate *s)
{
	g_hash_table_remove_all(s->by_dn);
	g_hash_table_remove_all(s->by_key);
	g_hash_table_remove_all(s->groups);
	g_hash_table_remove_all(s->by_uuid);
	s->in_refresh = s->drop_unseen = 0;
}

void
dir_wstate_free(struct dir_wstate *s)
{
	if (s == NULL)
		return;
	g_hash_table_destroy(s->by_dn);
	g_hash_table_destroy(s->by_key);
	g_hash_table_destroy(s->groups);
	g_hash_table_destroy(s->by_uuid);
	free(s);
}

size_t
dir_wstate_count(const struct dir_wstate *s, int groups)
{
	GHashTableIter it;
	gpointer k, v;
	size_t n = 0;

	g_hash_table_iter_init(&it, s->by_uuid);
	while (g_hash_table_iter_next(&it, &k, &v))
		if (((struct went *)v)->group == (groups != 0))
			n++;
	return n;
}

void
dir_wstate_refresh_begin(struct dir_wstate *s, int full)
{
	GHashTableIter it;
	gpointer k, v;

	g_hash_table_iter_init(&it, s->by_uuid);
	while (g_hash_table_iter_next(&it, &k, &v))
		((struct went *)v)->seen = 0;
	s->in_refresh = 1;
	s->drop_unseen = full;
}

void
dir_wstate_presents(struct dir_wstate *s)
{
	s->drop_unseen = 1;
}

void
dir_wstate_present(struct dir_wstate *s, const unsigned char *uuid, size_t len)
{
	char *h = uuid_hex(uuid, len);
	struct went *e;

	if (h == NULL)
		return;
	e = g_hash_table_lookup(s->by_uuid, h);
	if (e != NULL)
		e->seen = 1;
	free(h);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The identity of a member DN (normalized), or NULL: not a watched
 * person. */
static const char *
member_identity(struct dir_wstate *s, const char *ndn)
{
	struct went *p = g_hash_table_lookup(s->by_dn, ndn);

	return p != NULL ? p->identity : NULL;
}

static int
emit_lost(struct dir_wstate *s, const struct went *g, const char *member,
          dir_wemit_fn emit, void *arg)
{
	struct dir_watch_event ev;
	const char *id = member_identity(s, member);

	if (id == NULL)
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.kind = DIR_WATCH_LOST;
	ev.identity = id;
	ev.group_dn = g->ndn;
	return emit(arg, &ev);
}

static int
emit_snapshot(struct dir_wstate *s, const struct went *g, dir_wemit_fn emit,
              void *arg)
{
	struct dir_watch_event ev;
	const char **ids;
	size_t n = 0;
	int r;

	/* No person known at all (e.g. people unreadable to the service
	 * account): the members cannot be named, and reporting an empty
	 * list would end everything that depends on the group. */
	if (g->nmembers > 0 && g_hash_table_size(s->by_dn) == 0)
		return 0;
	ids = calloc(g->nmembers + 1, sizeof(*ids));
	if (ids == NULL)
		return DIR_ENOMEM;
	for (size_t i = 0; i < g->nmembers; i++) {
		const char *id = member_identity(s, g->members[i]);

		if (id != NULL)
			ids[n++] = id;
	}
	memset(&ev, 0, sizeof(ev));
	ev.kind = DIR_WATCH_GROUP_MEMBERS;
	ev.group_dn = g->ndn;
	ev.members = ids;
	ev.nmembers = n;
	r = emit(arg, &ev);
	free(ids);
	return r;
}

static int
emit_person(const struct went *p, int kind, dir_wemit_fn emit, void *arg)
{
	struct dir_watch_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.identity = p->identity;
	return emit(arg, &ev);
}

/* Members in old (sorted) that are not in new (sorted). */
static int
diff_members(struct dir_wstate *s, const struct went *g, char **old,
             size_t nold, dir_wemit_fn emit, void *arg)
{
	size_t i = 0, j = 0;
	int r;

	while (i < nold) {
		int c = j < g->nmembers ? strcmp(old[i], g->members[j]) : -1;

		if (c == 0) {
			i++;
			j++;
		} else if (c < 0) {
			if ((r = emit_lost(s, g, old[i], emit, arg)) != 0)
				return r;
			i++;
		} else {
			j++;
		}
	}
	return 0;
}

static int
set_members(struct went *e, const struct dir_wentry_in *in)
{
	char **m = NULL;
	size_t n = 0;

	if (in->nmembers > 0) {
		m = calloc(in->nmembers, sizeof(*m));
		if (m == NULL)
			return DIR_ENOMEM;
	}
	for (size_t i = 0; i < in->nmembers; i++) {
		char *nd = NULL;
		int r = dir_dn_norm(in->members[i], &nd);

		if (r == DIR_ENOMEM) {
			while (n > 0)
				free(m[--n]);
			free(m);
			return r;
		}
		if (r == 0)
			m[n++] = nd;
	}
	if (n > 1)
		qsort(m, n, sizeof(*m), cmp_str);
	e->members = m;
	e->nmembers = n;
	return 0;
}

int
dir_wstate_entry(struct dir_wstate *s, const unsigned char *uuid, size_t len,
                 const struct dir_wentry_in *in, int in_refresh,
                 dir_wemit_fn emit, void *arg)
{
	char *h = NULL, *ndn = NULL, *ident = NULL;
	char **old = NULL;
	size_t nold = 0;
	struct went *e;
	int r, was_known, was_active;

	if ((h = uuid_hex(uuid, len)) == NULL)
		return DIR_EINVAL;
	if ((r = dir_dn_norm(in->dn, &ndn)) != 0) {
		free(h);
		return r;
	}
	if (in->identity != NULL && (ident = strdup(in->identity)) == NULL) {
		free(h);
		free(ndn);
		return DIR_ENOMEM;
	}
	e = g_hash_table_lookup(s->by_uuid, h);
	was_known = e != NULL;
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL) {
			free(h);
			free(ndn);
			free(ident);
			return DIR_ENOMEM;
		}
		e->uuid = h;
		h = NULL;
		g_hash_table_insert(s->by_uuid, e->uuid, e);
	}
	free(h);
	e->seen = 1;
	was_active = was_known && !e->group && !e->inactive;

	/* A person renamed (identity changed) or turned into something
	 * else: the old identity is gone. */
	if (was_known && !e->group &&
	    (ident == NULL || strcmp(ident, e->identity) != 0)) {
		if ((r = emit_person(e, DIR_WATCH_DELETED, emit, arg)) != 0)
			goto out_fail;
	}
	if (was_known && !e->group) {
		g_hash_table_remove(s->by_dn, e->ndn);
		person_unindex(s, e);
	}
	if (was_known && e->group)
		unmap_if(s->groups, e->ndn, e);
	free(e->ndn);
	e->ndn = ndn;
	ndn = NULL;
	if (e->group) {
		old = e->members;
		nold = e->nmembers;
		e->members = NULL;
		e->nmembers = 0;
	}

	if (ident != NULL) {
		free(e->identity);
		e->identity = ident;
		ident = NULL;
		e->group = 0;
		e->inactive = in->inactive;
		e->await_snapshot = 0;
		g_hash_table_replace(s->by_dn, e->ndn, e);
		if ((r = person_index(s, e, in)) != 0)
			goto out_fail;
		/* Inactive now and not known inactive before: first sight
		 * (a start or a full refresh may follow a lock) included,
		 * since acting on it twice changes nothing. */
		if (in->inactive && (was_active || !was_known))
			r = emit_person(e, DIR_WATCH_DISABLED, emit, arg);
		else
			r = 0;
	} else {
		int had_baseline = was_known && e->group && !e->await_snapshot;

		free(e->identity);
		e->identity = NULL;
		e->group = 1;
		if ((r = set_members(e, in)) != 0)
			goto out_fail;
		g_hash_table_replace(s->groups, e->ndn, e);
		if (had_baseline) {
			r = diff_members(s, e, old, nold, emit, arg);
		} else if (in_refresh) {
			e->await_snapshot = 1;
			r = 0;
		} else {
			r = emit_snapshot(s, e, emit, arg);
		}
	}
	for (size_t i = 0; i < nold; i++)
		free(old[i]);
	free(old);
	return r;
out_fail:
	for (size_t i = 0; i < nold; i++)
		free(old[i]);
	free(old);
	free(ndn);
	free(ident);
	return r;
}

static int
drop_entry(struct dir_wstate *s, struct went *e, dir_wemit_fn emit, void *arg)
{
	int r = 0;

	if (e->group) {
		unmap_if(s->groups, e->ndn, e);
		for (size_t i = 0; i < e->nmembers && r == 0; i++)
			r = emit_lost(s, e, e->members[i], emit, arg);
	} else {
		person_unindex(s, e);
		r = emit_person(e, DIR_WATCH_DELETED, emit, arg);
		g_hash_table_remove(s->by_dn, e->ndn);
	}
	g_hash_table_remove(s->by_uuid, e->uuid);
	return r;
}

int
dir_wstate_delete(struct dir_wstate *s, const unsigned char *uuid, size_t len,
                  dir_wemit_fn emit, void *arg)
{
	char *h = uuid_hex(uuid, len);
	struct went *e;

	if (h == NULL)
		return 0;
	e = g_hash_table_lookup(s->by_uuid, h);
	free(h);
	if (e == NULL)
		return 0;
	return drop_entry(s, e, emit, arg);
}

int
dir_wstate_refresh_done(struct dir_wstate *s, dir_wemit_fn emit, void *arg)
{
	GHashTableIter it;
	gpointer k, v;
	GPtrArray *gone;
	int r = 0;

	s->in_refresh = 0;
	if (s->drop_unseen) {
		/* Groups first: their members' identities are still
		 * known while the lost memberships are reported. */
		gone = g_ptr_array_new();
		g_hash_table_iter_init(&it, s->by_uuid);
		while (g_hash_table_iter_next(&it, &k, &v))
			if (!((struct went *)v)->seen)
				g_ptr_array_add(gone, v);
		for (int pass = 1; pass >= 0; pass--)
			for (guint i = 0; i < gone->len && r == 0; i++) {
				struct went *e = g_ptr_array_index(gone, i);

				if (e != NULL && e->group == pass) {
					r = drop_entry(s, e, emit, arg);
					g_ptr_array_index(gone, i) = NULL;
				}
			}
		g_ptr_array_free(gone, TRUE);
		s->drop_unseen = 0;
		if (r != 0)
			return r;
	}
	g_hash_table_iter_init(&it, s->by_uuid);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		struct went *e = v;

		if (e->group && e->await_snapshot) {
			if ((r = emit_snapshot(s, e, emit, arg)) != 0)
				return r;
			e->await_snapshot = 0;
		}
	}
	return 0;
}

int
dir_watch_key_attr(const char *user_filter, char *out, size_t outlen)
{
	const char *p, *eq, *start;
	size_t n;

	if (outlen > 0)
		out[0] = '\0';
	if (user_filter == NULL ||
	    (p = strstr(user_filter, "={"
	                             "identity}")) == NULL)
		return DIR_EINVAL;
	eq = p;
	start = eq;
	while (start > user_filter && start[-1] != '(')
		start--;
	if (start == user_filter)
		return DIR_EINVAL;
	n = (size_t)(eq - start);
	if (n == 0 || n >= outlen || n > DIR_MAX_ATTR_LEN)
		return DIR_EINVAL;
	memcpy(out, start, n);
	out[n] = '\0';
	if (dir_attr_check("identity attribute", out, NULL, 0) != 0) {
		out[0] = '\0';
		return DIR_EINVAL;
	}
	return 0;
}

int
dir_dn_under(const char *ndn, const char *base_ndn)
{
	size_t n, b, bs = 0;

	if (ndn == NULL || base_ndn == NULL)
		return 0;
	n = strlen(ndn);
	b = strlen(base_ndn);
	if (b == 0)
		return 1;
	if (n < b || strcmp(ndn + n - b, base_ndn) != 0)
		return 0;
	if (n == b)
		return 1;
	if (n < b + 2 || ndn[n - b - 1] != ',')
		return 0;
	/* The comma must be a separator, not an escaped "\," in a value. */
	for (size_t i = n - b - 1; i > 0 && ndn[i - 1] == '\\'; i--)
		bs++;
	return bs % 2 == 0;
}

int
dir_wstate_lookup(const struct dir_wstate *s, const char *identity,
                  const char *people_ndn, const char *const *group_ndns,
                  size_t ngroups, int *group_index)
{
	GPtrArray *l;
	const struct went *p;
	char *key;
	size_t n;
	int exact = 0;

	*group_index = -1;
	if (identity == NULL || (n = strlen(identity)) == 0 ||
	    n > DIR_MAX_IDENTITY_LEN ||
	    (key = dir_wstate_fold(identity)) == NULL)
		return DIR_WQ_UNKNOWN;
	l = g_hash_table_lookup(s->by_key, key);
	free(key);
	/* Nobody, or several entries the live lookup could find (it would
	 * answer ambiguous): only the live check may answer. */
	if (l == NULL || l->len != 1)
		return DIR_WQ_UNKNOWN;
	p = g_ptr_array_index(l, 0);
	if (p->nocache || p->inactive || p->group)
		return DIR_WQ_UNKNOWN;
	for (size_t i = 0; i < p->nids && !exact; i++)
		exact = strcmp(p->ids[i], identity) == 0;
	if (!exact || !dir_dn_under(p->ndn, people_ndn))
		return DIR_WQ_UNKNOWN;
	for (size_t i = 0; i < ngroups; i++) {
		const struct went *g;

		if (group_ndns[i] == NULL)
			continue;
		g = g_hash_table_lookup(s->groups, group_ndns[i]);
		if (g != NULL && g->group && g->nmembers > 0 &&
		    bsearch(&p->ndn, g->members, g->nmembers, sizeof(char *),
		            cmp_str) != NULL) {
			*group_index = (int)i;
			return DIR_WQ_MEMBER;
		}
	}
	return DIR_WQ_ACTIVE;
}

int
dir_watch_follow_filter(const char *user_filter, const char *member_attr,
                        char *out, size_t outlen)
{
	static const char ph[] = "{identity}";
	const char *at, *open;
	char attr[DIR_MAX_ATTR_LEN + 1];
	size_t alen, flen, o = 0;
	int depth = 0;

	if (outlen > 0)
		out[0] = '\0';
	if (user_filter == NULL || member_attr == NULL ||
	    dir_watch_key_attr(user_filter, attr, sizeof(attr)) != 0)
		return DIR_EINVAL;
	at = strstr(user_filter, ph);
	/* Exactly one {identity}, as a whole equality value. */
	if (at == NULL || strstr(at + 1, ph) != NULL ||
	    at[sizeof(ph) - 1] != ')')
		return DIR_EINVAL;
	alen = strlen(attr);
	open = at - 1 - alen - 1; /* "(" attr "=" */
	if (open < user_filter || *open != '(')
		return DIR_EINVAL;
	/* The equality is the whole filter or a direct part of a top-level
	 * AND: then the live lookup finds exactly the entries that match the
	 * filter with the value replaced by a presence test and hold the
	 * identity among their values. */
	flen = strlen(user_filter);
	if (open != user_filter) {
		if (strncmp(user_filter, "(&", 2) != 0 ||
		    user_filter[flen - 1] != ')')
			return DIR_EINVAL;
		for (const char *p = user_filter; p < open; p++)
			depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
		if (depth != 1)
			return DIR_EINVAL;
	} else if ((size_t)(at - user_filter) + sizeof(ph) != flen) {
		return DIR_EINVAL;
	}
	if (flen + strlen(member_attr) + 16 > outlen)
		return DIR_EINVAL;
	o = (size_t)snprintf(out, outlen, "(|(%s=*)", member_attr);
	memcpy(out + o, user_filter, (size_t)(at - user_filter));
	o += (size_t)(at - user_filter);
	out[o++] = '*';
	memcpy(out + o, at + sizeof(ph) - 1,
	       flen - (size_t)(at - user_filter) - (sizeof(ph) - 1));
	o += flen - (size_t)(at - user_filter) - (sizeof(ph) - 1);
	out[o++] = ')';
	out[o] = '\0';
	return 0;
}
