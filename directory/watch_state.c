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
	int seen;               /* named during the current refresh */
	int await_snapshot;     /* first seen during a refresh */
	int incomplete;         /* groups: the member list is not all of it */
	unsigned long long usn; /* AD uSNChanged last applied, 0: none */
	/* people, for lookups (dir_wstate_lookup): every value of the
	 * identity attribute as sent, and their skeletons (keys, no
	 * duplicates; dir_wstate_skel) */
	char **ids;
	size_t nids;
	char **keys;
	size_t nkeys;
	int wild;    /* one of keys holds DIR_WSKEL_WILD (in s->wild) */
	int nocache; /* a person that is also a group: never answered */
};

struct dir_wstate {
	GHashTable *by_uuid; /* hex uuid -> struct went (owned) */
	GHashTable *by_dn;   /* people: ndn -> struct went (borrowed) */
	GHashTable *by_key;  /* people: skeleton of an ASCII identity value
	                        -> GPtrArray of struct went (array owned,
	                        entries borrowed) */
	GPtrArray *wild;     /* people with a non-ASCII identity value (their
	                        wildcard keys are not in by_key; borrowed) */
	GHashTable *groups;  /* groups: ndn -> struct went (borrowed) */
	int in_refresh, drop_unseen;
	int direct; /* membership is direct: group changes may revoke */
};

/* Above this many people with non-ASCII identity values the cache stops
 * answering (each lookup scans them) and the watcher stops revoking on
 * group changes: everything goes to the live check. */
#define WSTATE_MAX_WILD 10000

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
dir_wstate_skel(const char *id, int *wild)
{
	char *out;
	size_t o = 0;
	int run = 0;

	if (wild != NULL)
		*wild = 0;
	if (id == NULL || (out = malloc(strlen(id) + 1)) == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)id; *p != '\0';
	     p++) {
		if (*p >= 0x80) {
			/* Any run of non-ASCII bytes: one wildcard. */
			if (!run)
				out[o++] = DIR_WSKEL_WILD;
			run = 1;
			if (wild != NULL)
				*wild = 1;
			continue;
		}
		run = 0;
		/* Spaces and controls: RFC 4518 maps controls to nothing
		 * or to a space, and spaces are partly insignificant; all
		 * are dropped (a coarser key, never a finer one). */
		if (*p <= 0x20 || *p == 0x7f)
			continue;
		out[o++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	}
	out[o] = '\0';
	return out;
}

/* Does skeleton pattern pat (DIR_WSKEL_WILD: any run, also empty) match
 * the wildcard-free skeleton k? */
static int
skel_match(const char *pat, const char *k)
{
	const char *star = NULL, *mark = NULL;

	while (*k != '\0') {
		if (*pat == DIR_WSKEL_WILD) {
			star = pat++;
			mark = k;
		} else if (*pat == *k) {
			pat++;
			k++;
		} else if (star != NULL) {
			pat = star + 1;
			k = ++mark;
		} else {
			return 0;
		}
	}
	while (*pat == DIR_WSKEL_WILD)
		pat++;
	return *pat == '\0';
}

static int
is_ascii(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p >= 0x80)
			return 0;
	return 1;
}

/*
 * Calls fn for every person the live lookup of an identity whose
 * skeleton is k (ASCII, no wildcard) might find -- an ASCII value with
 * the same skeleton, or a non-ASCII value whose pattern matches -- each
 * person once. Stops at fn's first non-zero and returns it; -1 when
 * there are too many non-ASCII values to look through.
 */
static int
each_candidate(const struct dir_wstate *s, const char *k,
               int (*fn)(const struct went *p, void *arg), void *arg)
{
	GPtrArray *l = g_hash_table_lookup(s->by_key, k);
	int r;

	if (s->wild->len > WSTATE_MAX_WILD)
		return -1;
	for (guint i = 0; l != NULL && i < l->len; i++)
		if ((r = fn(g_ptr_array_index(l, i), arg)) != 0)
			return r;
	for (guint i = 0; i < s->wild->len; i++) {
		const struct went *p = g_ptr_array_index(s->wild, i);
		int hit = 0, in_l = 0;

		for (size_t j = 0; j < p->nkeys && !hit; j++)
			hit = strchr(p->keys[j], DIR_WSKEL_WILD) != NULL &&
			      skel_match(p->keys[j], k);
		for (guint j = 0; hit && l != NULL && j < l->len && !in_l; j++)
			in_l = g_ptr_array_index(l, j) == p;
		if (hit && !in_l && (r = fn(p, arg)) != 0)
			return r;
	}
	return 0;
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
	if (e->wild)
		g_ptr_array_remove(s->wild, e);
	e->wild = 0;
	for (size_t i = 0; i < e->nids; i++)
		free(e->ids[i]);
	free(e->ids);
	e->ids = NULL;
	e->nids = 0;
}

/* Copies a person's identity values and indexes them by skeleton (each
 * entry once per key; non-ASCII ones through s->wild). */
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
		int dup = 0, wild;

		if ((e->ids[e->nids] = strdup(v[i])) == NULL)
			return DIR_ENOMEM;
		e->nids++;
		if ((k = dir_wstate_skel(v[i], &wild)) == NULL)
			return DIR_ENOMEM;
		for (size_t j = 0; j < e->nkeys && !dup; j++)
			dup = strcmp(e->keys[j], k) == 0;
		if (dup) {
			free(k);
			continue;
		}
		e->keys[e->nkeys++] = k;
		if (wild) {
			if (!e->wild)
				g_ptr_array_add(s->wild, e);
			e->wild = 1;
			continue;
		}
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
	s->wild = g_ptr_array_new();
	s->direct = 1;
	*out = s;
	return 0;
}

void
dir_wstate_clear(struct dir_wstate *s)
{
	g_hash_table_remove_all(s->by_dn);
	g_hash_table_remove_all(s->by_key);
	g_ptr_array_set_size(s->wild, 0);
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
	g_ptr_array_free(s->wild, TRUE);
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

static int
is_member(const struct went *g, const struct went *p)
{
	return g->nmembers > 0 && bsearch(&p->ndn, g->members, g->nmembers,
	                                  sizeof(char *), cmp_str) != NULL;
}

/* What each_candidate found (cand_fn). */
struct cand {
	const struct went *g;    /* count direct members of g; NULL: none */
	const struct went *skip; /* not counted */
	const char *exact;       /* a value to find byte for byte, or NULL */
	const struct went *first;
	int n, exact_found, member;
};

static int
cand_fn(const struct went *p, void *arg)
{
	struct cand *c = arg;

	if (p == c->skip)
		return 0;
	c->n++;
	if (c->first == NULL)
		c->first = p;
	for (size_t i = 0; c->exact != NULL && i < p->nids; i++)
		if (strcmp(p->ids[i], c->exact) == 0)
			c->exact_found = 1;
	if (c->g != NULL && is_member(c->g, p))
		c->member = 1;
	return 0;
}

/*
 * May the admissions of identity that depend on group g end (g gone: it
 * is being deleted)? Only when membership is direct (with nesting, a
 * person outside g's member list may still be in it through a subgroup),
 * g's member list is whole, identity is ASCII and byte for byte a value
 * of a watched person, and nobody the live lookup of identity might find
 * is a direct member of g. Otherwise the live check decides.
 */
static int
group_may_revoke(const struct dir_wstate *s, const struct went *g,
                 const char *identity, int gone)
{
	struct cand c;
	char *k;
	int r;

	if (!s->direct || (!gone && g->incomplete) || identity == NULL ||
	    !is_ascii(identity) ||
	    (k = dir_wstate_skel(identity, NULL)) == NULL)
		return 0;
	memset(&c, 0, sizeof(c));
	c.g = gone ? NULL : g;
	c.exact = identity;
	r = k[0] != '\0' ? each_candidate(s, k, cand_fn, &c) : -1;
	free(k);
	return r == 0 && c.exact_found && !c.member;
}

/*
 * May person e's deletion or lock end what its identity holds? Not when
 * another watched person might be found by the live lookup of that
 * identity (it may be the one the live check admits).
 */
static int
person_may_revoke(const struct dir_wstate *s, const struct went *e)
{
	struct cand c;
	char *k;
	int r = 0, wild;

	if (e->identity == NULL ||
	    (k = dir_wstate_skel(e->identity, &wild)) == NULL)
		return 0;
	memset(&c, 0, sizeof(c));
	c.skip = e;
	if (k[0] == '\0') {
		r = -1;
	} else if (!wild) {
		r = each_candidate(s, k, cand_fn, &c);
	} else {
		GHashTableIter it;
		gpointer key, v;

		/* A non-ASCII identity: any other non-ASCII person, or an
		 * ASCII value its pattern matches, might be the same to
		 * the directory. */
		for (guint i = 0; i < s->wild->len; i++)
			if (g_ptr_array_index(s->wild, i) != e)
				c.n++;
		if (s->wild->len > WSTATE_MAX_WILD)
			r = -1;
		g_hash_table_iter_init(&it, s->by_key);
		while (r == 0 && c.n == 0 &&
		       g_hash_table_iter_next(&it, &key, &v))
			if (skel_match(k, key))
				for (guint i = 0; i < ((GPtrArray *)v)->len;
				     i++)
					r = cand_fn(g_ptr_array_index(
					                (GPtrArray *)v, i),
					            &c);
	}
	free(k);
	return r == 0 && c.n == 0;
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
          int gone, dir_wemit_fn emit, void *arg)
{
	struct dir_watch_event ev;
	const char *id = member_identity(s, member);

	if (id == NULL || !group_may_revoke(s, g, id, gone))
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.kind = DIR_WATCH_LOST;
	ev.identity = id;
	ev.group_dn = g->ndn;
	return emit(arg, &ev);
}

/* GROUP_MEMBERS' question (dir_watch_event.revocable). */
struct snap_ctx {
	const struct dir_wstate *s;
	const struct went *g;
};

static int
snap_revocable(const void *ctx, const char *identity)
{
	const struct snap_ctx *c = ctx;

	return group_may_revoke(c->s, c->g, identity, 0);
}

static int
emit_snapshot(struct dir_wstate *s, const struct went *g, dir_wemit_fn emit,
              void *arg)
{
	struct dir_watch_event ev;
	struct snap_ctx ctx;
	const char **ids;
	size_t n = 0;
	int r;

	/* Nesting (a member list is not all who are in), a list not read
	 * whole, or no person known at all (e.g. people unreadable to the
	 * service account): nothing to report. */
	if (!s->direct || g->incomplete ||
	    (g->nmembers > 0 && g_hash_table_size(s->by_dn) == 0))
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
	ctx.s = s;
	ctx.g = g;
	ev.kind = DIR_WATCH_GROUP_MEMBERS;
	ev.group_dn = g->ndn;
	ev.members = ids;
	ev.nmembers = n;
	ev.revocable = snap_revocable;
	ev.revocable_ctx = &ctx;
	r = emit(arg, &ev);
	free(ids);
	return r;
}

static int
emit_person(const struct dir_wstate *s, const struct went *p, int kind,
            dir_wemit_fn emit, void *arg)
{
	struct dir_watch_event ev;

	if (!person_may_revoke(s, p))
		return 0;
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
			if ((r = emit_lost(s, g, old[i], 0, emit, arg)) != 0)
				return r;
			i++;
		} else {
			j++;
		}
	}
	return 0;
}

/* Sets a group's members; a value that is not a DN leaves the list
 * incomplete (whom it names is not known). */
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
		else
			e->incomplete = 1;
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
	/* AD: a notification older than what is applied already (queued
	 * while the baseline read a newer state) changes nothing. */
	if (was_known && in->usn > 0 && e->usn >= in->usn) {
		free(h);
		free(ndn);
		free(ident);
		return 0;
	}
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
	if (in->usn > e->usn)
		e->usn = in->usn;
	was_active = was_known && !e->group && !e->inactive;

	/* A person renamed (identity changed) or turned into something
	 * else: the old identity is gone. */
	if (was_known && !e->group &&
	    (ident == NULL || strcmp(ident, e->identity) != 0)) {
		if ((r = emit_person(s, e, DIR_WATCH_DELETED, emit, arg)) != 0)
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
			r = emit_person(s, e, DIR_WATCH_DISABLED, emit, arg);
		else
			r = 0;
	} else {
		int had_baseline = was_known && e->group && !e->await_snapshot;

		free(e->identity);
		e->identity = NULL;
		e->group = 1;
		e->incomplete = in->incomplete;
		if ((r = set_members(e, in)) != 0)
			goto out_fail;
		g_hash_table_replace(s->groups, e->ndn, e);
		/* A list not read whole (AD's ranged member values): who
		 * left is not known. */
		if (had_baseline && e->incomplete) {
			r = 0;
		} else if (had_baseline) {
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
			r = emit_lost(s, e, e->members[i], 1, emit, arg);
	} else {
		person_unindex(s, e);
		r = emit_person(s, e, DIR_WATCH_DELETED, emit, arg);
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
	const struct went *p;
	struct cand c;
	char *key;
	size_t n;
	int r;

	*group_index = -1;
	/* A non-ASCII identity: the directory's matching rule may fold it
	 * differently from any key of ours (slapd finds "al\xc4\xb0ce" for
	 * (uid=alice)); only the live check may answer. */
	if (identity == NULL || (n = strlen(identity)) == 0 ||
	    n > DIR_MAX_IDENTITY_LEN || !is_ascii(identity) ||
	    (key = dir_wstate_skel(identity, NULL)) == NULL)
		return DIR_WQ_UNKNOWN;
	memset(&c, 0, sizeof(c));
	c.exact = identity;
	r = key[0] != '\0' ? each_candidate(s, key, cand_fn, &c) : -1;
	free(key);
	/* Nobody, or several entries the live lookup could find (it would
	 * answer ambiguous): only the live check may answer. */
	if (r != 0 || c.n != 1)
		return DIR_WQ_UNKNOWN;
	p = c.first;
	if (p->nocache || p->inactive || p->group)
		return DIR_WQ_UNKNOWN;
	if (!c.exact_found || !dir_dn_under(p->ndn, people_ndn) ||
	    !is_ascii(p->ndn))
		return DIR_WQ_UNKNOWN;
	for (size_t i = 0; i < ngroups; i++) {
		const struct went *g;

		if (group_ndns[i] == NULL)
			continue;
		g = g_hash_table_lookup(s->groups, group_ndns[i]);
		/* A member list not read whole: asked live. */
		if (g != NULL && g->group && !g->incomplete &&
		    is_member(g, p)) {
			*group_index = (int)i;
			return DIR_WQ_MEMBER;
		}
	}
	return DIR_WQ_ACTIVE;
}

int
dir_wstate_stale(const struct dir_wstate *s, const unsigned char *uuid,
                 size_t len, unsigned long long usn)
{
	char *h;
	const struct went *e;

	if (usn == 0 || (h = uuid_hex(uuid, len)) == NULL)
		return 0;
	e = g_hash_table_lookup(s->by_uuid, h);
	free(h);
	return e != NULL && e->usn >= usn;
}

void
dir_wstate_set_direct(struct dir_wstate *s, int direct)
{
	s->direct = direct != 0;
}

int
dir_watch_ranged(const char *desc, const char *member_attr)
{
	size_t n;

	if (desc == NULL || member_attr == NULL ||
	    (n = strlen(member_attr)) == 0 ||
	    g_ascii_strncasecmp(desc, member_attr, n) != 0)
		return 0;
	/* Options follow ';' in any order (RFC 4512 2.5); range= is AD's
	 * (MS-ADTS 3.1.1.3.1.3.3). */
	for (const char *o = desc + n; o != NULL && *o == ';';
	     o = strchr(o + 1, ';'))
		if (g_ascii_strncasecmp(o + 1, "range=", 6) == 0)
			return 1;
	return 0;
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
