/*
 * directory/watch_int.h -- private to directory/watch.c and its unit
 * tests: the watcher's baseline (what each watched entry looked like
 * last) and the diffing that turns sync messages into changes, free of
 * any LDAP connection so it can be tested on its own.
 *
 * Entries are keyed by their entryUUID (the sync protocol names deleted
 * entries by it alone). Strings passed in are copied.
 */
#ifndef ROOMGATE_WATCH_INT_H
#define ROOMGATE_WATCH_INT_H

#include <stddef.h>

#include <ldap.h>

#include "directory/directory.h"

/* Receives each change; non-zero stops the call and is returned. */
typedef int (*dir_wemit_fn)(void *arg, const struct dir_watch_event *ev);

/* One entry as a sync message delivered it (ADD or MODIFY: all of it). */
struct dir_wentry_in {
	const char *dn;             /* as the server sent it */
	const char *identity;       /* people: the identity attribute; NULL:
	                               a group */
	int inactive;               /* people: the active preset says no */
	const char *const *members; /* groups: member DNs as sent */
	size_t nmembers;
	/* people, for lookups: every value of the identity attribute
	 * (NULL: just identity) */
	const char *const *identities;
	size_t nidentities;
	int nocache; /* people: the entry is a group too; never answered */
	/* groups: the member values did not all come (AD's ranged
	 * "member;range=0-1499", dir_watch_ranged): nothing is revoked on
	 * the strength of this list and the cache does not answer from it */
	int incomplete;
	/* AD: the entry's uSNChanged (0: not known). An entry whose known
	 * usn is not lower is not changed by it (an older notification,
	 * queued while the baseline read a newer state). */
	unsigned long long usn;
};

struct dir_wstate;
int dir_wstate_new(struct dir_wstate **out);
/*
 * direct (the default): membership is what the groups' member lists say
 * ([directory] membership = memberof or member). 0 for nested and
 * ad_chain: then no group change revokes anything (LOST and
 * GROUP_MEMBERS are never reported; a person outside a group's list may
 * be in it through a subgroup) -- the live check decides.
 *
 * In either mode a revocation is reported only where the live check
 * cannot admit: LOST / GROUP_MEMBERS (its revocable question) only for
 * an ASCII identity that is byte for byte a value of a watched person
 * when nobody its live lookup might find (same dir_wstate_skel, or a
 * non-ASCII value whose pattern matches) is a direct member, never for a
 * group whose list is incomplete; DISABLED / DELETED only when no other
 * watched person might be found by the live lookup of the identity.
 */
void dir_wstate_set_direct(struct dir_wstate *s, int direct);
/* 1 when the entry uuid is known with an AD uSNChanged >= usn (> 0): a
 * notification about it that is not newer (a tombstone too). */
int dir_wstate_stale(const struct dir_wstate *s, const unsigned char *uuid,
                     size_t len, unsigned long long usn);
void dir_wstate_free(struct dir_wstate *s);
/* Forgets every entry (the next refresh is a full one). */
void dir_wstate_clear(struct dir_wstate *s);
size_t dir_wstate_count(const struct dir_wstate *s, int groups);

/*
 * A refresh starts. full: no cookie was sent (everything comes again,
 * so what does not come is gone at refresh_done).
 */
void dir_wstate_refresh_begin(struct dir_wstate *s, int full);
/* The server switched to the present phase (PRESENTS_IDSET / PRESENT):
 * entries it does not name are gone at refresh_done. */
void dir_wstate_presents(struct dir_wstate *s);
/* An entry named present (only its UUID). */
void dir_wstate_present(struct dir_wstate *s, const unsigned char *uuid,
                        size_t len);
/*
 * An added or modified entry. in_refresh: before the refresh is done
 * (first-seen groups then wait for refresh_done). DIR_EINVAL for a DN
 * that does not parse (the entry is ignored, nothing emitted).
 */
int dir_wstate_entry(struct dir_wstate *s, const unsigned char *uuid,
                     size_t len, const struct dir_wentry_in *in, int in_refresh,
                     dir_wemit_fn emit, void *arg);
/* A deleted entry (unknown UUIDs are ignored). */
int dir_wstate_delete(struct dir_wstate *s, const unsigned char *uuid,
                      size_t len, dir_wemit_fn emit, void *arg);
/* The refresh is done: deletes what a full or present-phase refresh did
 * not name, then reports the groups that waited (GROUP_MEMBERS). */
int dir_wstate_refresh_done(struct dir_wstate *s, dir_wemit_fn emit, void *arg);

/*
 * The membership cache's question (dir_watch_lookup), answered from the
 * baseline: DIR_WQ_MEMBER (*group_index set) when identity is ASCII,
 * exactly one person might be found by its live lookup (an identity value
 * with the same dir_wstate_skel, or a non-ASCII value whose pattern
 * matches it), one of that person's values is identity byte for byte,
 * the entry is active, its DN ASCII and under people_ndn, and a direct
 * member of group_ndns[*group_index] (normalized; NULL entries and
 * incomplete groups are skipped); DIR_WQ_ACTIVE when such a person is in
 * none of them; DIR_WQ_UNKNOWN otherwise (nobody, several, inactive,
 * non-ASCII, ...).
 */
int dir_wstate_lookup(const struct dir_wstate *s, const char *identity,
                      const char *people_ndn, const char *const *group_ndns,
                      size_t ngroups, int *group_index);
/*
 * An identity value's skeleton, the lookup key: ASCII letters lower-cased,
 * ASCII spaces and controls dropped, and every run of non-ASCII bytes one
 * DIR_WSKEL_WILD (*wild set, may be NULL) that stands for any run. Coarser
 * than any directory's caseIgnoreMatch (RFC 4518: case folding, NFKC,
 * mapped and insignificant characters), whatever it folds non-ASCII
 * characters to: two values the directory takes as equal have equal
 * skeletons or a wildcard pattern that matches -- never keys that differ
 * where the directory sees none. malloc()ed; NULL when out of memory.
 */
#define DIR_WSKEL_WILD '\x01'
char *dir_wstate_skel(const char *id, int *wild);
/* Is attribute description desc (as a search result names it)
 * member_attr with AD's range option, e.g. "member;range=0-1499": the
 * values are only a part (ASCII case ignored)? */
int dir_watch_ranged(const char *desc, const char *member_attr);
/* Is normalized dn base_ndn itself or below it? */
int dir_dn_under(const char *ndn, const char *base_ndn);
/*
 * The follower's sync filter: (|(<member_attr>=*)<user_filter with
 * {identity} as *>). DIR_EINVAL unless user_filter holds exactly one
 * "(attr={identity})" that is the whole filter or a direct part of a
 * top-level (&...) -- the forms where that filter selects exactly the
 * entries the live lookup can find.
 */
int dir_watch_follow_filter(const char *user_filter, const char *member_attr,
                            char *out, size_t outlen);

/*
 * The identity attribute of a user filter: the attribute compared with
 * {identity}, e.g. "uid" in (&(objectClass=person)(uid={identity})).
 * DIR_EINVAL when there is no "(attr={identity})".
 */
int dir_watch_key_attr(const char *user_filter, char *out, size_t outlen);

/*
 * watch_ad.c: the Active Directory change-notification search (see the
 * file's comment). ctrls is NULL-terminated (notification, critical;
 * show-deleted, critical) for ldap_search_ext's server controls; attrs
 * NULL-terminated. Everything owned, freed by dir_ad_notify_free (also
 * after a failed build).
 */
#define DIR_AD_NCTRLS 3
#define DIR_AD_NATTRS 7
struct dir_ad_notify {
	LDAPControl *ctrls[DIR_AD_NCTRLS];
	char *base;
	int scope;
	char *filter;
	char *attrs[DIR_AD_NATTRS];
};
int dir_ad_notify_build(LDAP *ld, const char *base, const char *key_attr,
                        const char *member_attr, struct dir_ad_notify *out,
                        char *err, size_t errlen);
void dir_ad_notify_free(struct dir_ad_notify *n);
/* An entry's uSNChanged (decimal, as AD sends it), 0 when absent or not
 * a number. */
unsigned long long dir_ad_usn(struct berval **usn);
/* A notified entry's isDeleted values (n): TRUE means it was deleted. */
int dir_ad_is_deleted(const char *const *is_deleted, size_t n);

/*
 * What the AD watcher does with an entry its baseline or notification
 * search returned (values as ldap_get_values_len gives them, NULL for
 * none). *key: the entry's key for the state -- objectGUID, else
 * entryUUID (servers without objectGUID, e.g. slapd in the tests).
 *   DIR_AD_SKIP    no key, or neither a group nor a person
 *   DIR_AD_DELETE  isDeleted TRUE (a tombstone under show-deleted)
 *   DIR_AD_GROUP   objectClass group (AD groups carry sAMAccountName
 *                  too, so this comes before the identity), or member
 *                  values and no identity
 *   DIR_AD_PERSON  has the identity attribute
 */
enum dir_ad_kind {
	DIR_AD_SKIP = 0,
	DIR_AD_DELETE,
	DIR_AD_GROUP,
	DIR_AD_PERSON
};
int dir_ad_entry_kind(struct berval **object_guid, struct berval **entry_uuid,
                      struct berval **is_deleted, struct berval **object_class,
                      int has_identity, int has_members,
                      const struct berval **key);

#endif
