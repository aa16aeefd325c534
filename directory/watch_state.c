/*
 * directory/watch_state.c -- the watcher's baseline and diffing (see
 * watch_int.h): pure bookkeeping, no connection, unit tested.
 */
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
};

struct dir_wstate {
	GHashTable *by_uuid; /* hex uuid -> struct went (owned) */
	GHashTable *by_dn;   /* people: ndn -> struct went (borrowed) */
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
	*out = s;
	return 0;
}

void
dir_wstate_clear(struct dir_wstate *s)
{
	g_hash_table_remove_all(s->by_dn);
	g_hash_table_remove_all(s->by_uuid);
	s->in_refresh = s->drop_unseen = 0;
}

void
dir_wstate_free(struct dir_wstate *s)
{
	if (s == NULL)
		return;
	g_hash_table_destroy(s->by_dn);
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
	if (was_known && !e->group)
		g_hash_table_remove(s->by_dn, e->ndn);
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
		for (size_t i = 0; i < e->nmembers && r == 0; i++)
			r = emit_lost(s, e, e->members[i], emit, arg);
	} else {
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
