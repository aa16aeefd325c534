/*
 * Unit tests for the membership cache's data structure: the follower's
 * baseline (directory/watch_state.c) answering dir_wstate_lookup -- only
 * positives it is sure of -- through members added and removed, locks and
 * unlocks, deletes, refreshes; ambiguous, case-different and multi-valued
 * identities; people outside people_base; the follower's sync filter
 * (dir_watch_follow_filter) and dir_watch_open_follower's refusals; and
 * the admit decision built on an answer (gate_authz_cache_decide).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/dir_int.h"
#include "directory/directory.h"
#include "directory/watch_int.h"
#include "server/authz_cache.h"

#define PEOPLE "ou=people,dc=example,dc=com"
#define P(x) "uid=" x "," PEOPLE
#define G1 "cn=allowed,ou=groups,dc=example,dc=com"
#define G2 "cn=eng,ou=groups,dc=example,dc=com"
#define G3 "cn=never-seen,ou=groups,dc=example,dc=com"

static const unsigned char U_ALICE[16] = {1}, U_BOB[16] = {2}, U_BOB2[16] = {3},
                           U_CAROL[16] = {4}, U_DAVE[16] = {5}, U_G1[16] = {10},
                           U_G2[16] = {11};

static int
ignore(void *arg, const struct dir_watch_event *ev)
{
	(void)arg;
	(void)ev;
	return 0;
}

static void
person_at(struct dir_wstate *st, const unsigned char *u, const char *dn,
          const char *const *ids, size_t nids, int inactive, int nocache)
{
	struct dir_wentry_in in;

	memset(&in, 0, sizeof(in));
	in.dn = dn;
	in.identity = ids[0];
	in.identities = ids;
	in.nidentities = nids;
	in.inactive = inactive;
	in.nocache = nocache;
	assert_int_equal(dir_wstate_entry(st, u, 16, &in, 0, ignore, NULL), 0);
}

static void
person(struct dir_wstate *st, const unsigned char *u, const char *uid,
       int inactive)
{
	char dn[256];
	const char *ids[1] = {uid};

	snprintf(dn, sizeof(dn), "uid=%s," PEOPLE, uid);
	person_at(st, u, dn, ids, 1, inactive, 0);
}

static void
group(struct dir_wstate *st, const unsigned char *u, const char *dn,
      const char *const *m, size_t n)
{
	struct dir_wentry_in in;

	memset(&in, 0, sizeof(in));
	in.dn = dn;
	in.members = m;
	in.nmembers = n;
	assert_int_equal(dir_wstate_entry(st, u, 16, &in, 0, ignore, NULL), 0);
}

/* The answer for identity against the groups G1, G2, G3 (normalized as
 * the follower does); *gi the matched index. */
static int
ask(struct dir_wstate *st, const char *identity, int *gi)
{
	const char *groups[3] = {G1, G2, G3};
	char *ng[3];
	int r, g;

	for (int i = 0; i < 3; i++)
		assert_int_equal(dir_dn_norm(groups[i], &ng[i]), 0);
	r = dir_wstate_lookup(st, identity, PEOPLE, (const char *const *)ng, 3,
	                      &g);
	for (int i = 0; i < 3; i++)
		free(ng[i]);
	if (gi != NULL)
		*gi = g;
	if (r != DIR_WQ_MEMBER)
		assert_int_equal(g, -1);
	return r;
}

/* alice and bob in G1 (bob also in G2), carol in no group. */
static struct dir_wstate *
baseline(void)
{
	struct dir_wstate *st;
	const char *m1[] = {"UID=alice, ou=People,dc=example,dc=com", P("bob")};
	const char *m2[] = {P("bob")};

	assert_int_equal(dir_wstate_new(&st), 0);
	dir_wstate_refresh_begin(st, 1);
	person(st, U_ALICE, "alice", 0);
	person(st, U_BOB, "bob", 0);
	person(st, U_CAROL, "carol", 0);
	group(st, U_G1, G1, m1, 2);
	group(st, U_G2, G2, m2, 1);
	assert_int_equal(dir_wstate_refresh_done(st, ignore, NULL), 0);
	return st;
}

static void
test_members_follow_changes(void **state)
{
	struct dir_wstate *st = baseline();
	const char *m1_less[] = {P("bob")};
	const char *m1_more[] = {P("bob"), P("carol"), P("alice")};
	int gi;

	(void)state;
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_MEMBER);
	assert_int_equal(gi, 0);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_MEMBER);
	assert_int_equal(gi, 0);
	/* Active, in none of the groups. */
	assert_int_equal(ask(st, "carol", &gi), DIR_WQ_ACTIVE);
	/* Nobody by that name. */
	assert_int_equal(ask(st, "mallory", &gi), DIR_WQ_UNKNOWN);

	/* alice removed from G1: no longer a member (the live check
	 * decides). */
	group(st, U_G1, G1, m1_less, 1);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_ACTIVE);
	/* carol and alice added: members at once. */
	group(st, U_G1, G1, m1_more, 3);
	assert_int_equal(ask(st, "carol", &gi), DIR_WQ_MEMBER);
	assert_int_equal(gi, 0);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_MEMBER);

	/* bob locked: not answered at all; unlocked: member again. */
	person(st, U_BOB, "bob", 1);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_UNKNOWN);
	person(st, U_BOB, "bob", 0);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_MEMBER);

	/* G1 deleted: bob is still in G2, alice in nothing seen. */
	assert_int_equal(dir_wstate_delete(st, U_G1, 16, ignore, NULL), 0);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_MEMBER);
	assert_int_equal(gi, 1);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_ACTIVE);

	/* bob deleted: unknown. */
	assert_int_equal(dir_wstate_delete(st, U_BOB, 16, ignore, NULL), 0);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_UNKNOWN);

	/* alice renamed to alicia (same entry): the old name is gone. */
	person(st, U_ALICE, "alicia", 0);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_UNKNOWN);
	assert_int_equal(ask(st, "alicia", &gi), DIR_WQ_ACTIVE);

	/* Cleared (a full resync starts): nothing answered. */
	dir_wstate_clear(st);
	assert_int_equal(ask(st, "carol", &gi), DIR_WQ_UNKNOWN);
	dir_wstate_free(st);
}

static void
test_refresh_drops_unseen(void **state)
{
	struct dir_wstate *st = baseline();
	const char *m1[] = {P("bob")};
	int gi;

	(void)state;
	/* A full refresh that names bob and G1 (alice gone from it) only. */
	dir_wstate_refresh_begin(st, 1);
	person(st, U_BOB, "bob", 0);
	group(st, U_G1, G1, m1, 1);
	assert_int_equal(dir_wstate_refresh_done(st, ignore, NULL), 0);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_UNKNOWN);
	assert_int_equal(ask(st, "carol", &gi), DIR_WQ_UNKNOWN);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_MEMBER);
	assert_int_equal(gi, 0);
	assert_int_equal(dir_wstate_count(st, 0), 1);
	assert_int_equal(dir_wstate_count(st, 1), 1);
	dir_wstate_free(st);
}

static void
test_ambiguous_and_exact(void **state)
{
	struct dir_wstate *st = baseline();
	const char *bob2[] = {"BOB"};
	const char *dave[] = {"dave", "carol"};
	const char *m1[] = {P("bob"), P("alice"), P("Dave"),
	                    "uid=eve,ou=elsewhere,dc=example,dc=com"};
	const char *eve[] = {"eve"};
	int gi;

	(void)state;
	/* A second entry whose value differs only in case: the live lookup
	 * (caseIgnoreMatch) would find both and deny as ambiguous. */
	person_at(st, U_BOB2, "uid=BOB,ou=more," PEOPLE, bob2, 1, 0, 0);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_UNKNOWN);
	assert_int_equal(ask(st, "BOB", &gi), DIR_WQ_UNKNOWN);
	/* Gone again: bob is answered. */
	assert_int_equal(dir_wstate_delete(st, U_BOB2, 16, ignore, NULL), 0);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_MEMBER);
	/* Only byte-for-byte: " Bob " may be the same person to the
	 * directory, but the cache leaves it to the live check. */
	assert_int_equal(ask(st, "Bob", &gi), DIR_WQ_UNKNOWN);
	assert_int_equal(ask(st, " bob", &gi), DIR_WQ_UNKNOWN);

	/* Multi-valued identity: dave's entry also holds "carol", so carol
	 * is ambiguous now; dave is known by both values. */
	person_at(st, U_DAVE, P("Dave"), dave, 2, 0, 0);
	group(st, U_G1, G1, m1, 4);
	assert_int_equal(ask(st, "carol", &gi), DIR_WQ_UNKNOWN);
	assert_int_equal(ask(st, "dave", &gi), DIR_WQ_MEMBER);

	/* An entry outside people_base: the live lookup never finds it. */
	person_at(st, U_CAROL, "uid=eve,ou=elsewhere,dc=example,dc=com", eve, 1,
	          0, 0);
	assert_int_equal(ask(st, "eve", &gi), DIR_WQ_UNKNOWN);
	/* An entry that is a group too: never answered. */
	person_at(st, U_CAROL, P("eve"), eve, 1, 0, 1);
	assert_int_equal(ask(st, "eve", &gi), DIR_WQ_UNKNOWN);
	/* Back to a plain person (carol's entry renamed to eve): unique. */
	person_at(st, U_CAROL, P("eve"), eve, 1, 0, 0);
	assert_int_equal(ask(st, "eve", &gi), DIR_WQ_ACTIVE);
	/* "carol" now names dave's entry alone, as the live lookup finds. */
	assert_int_equal(ask(st, "carol", &gi), DIR_WQ_MEMBER);

	/* Empty and over-long identities are never answered. */
	assert_int_equal(ask(st, "", &gi), DIR_WQ_UNKNOWN);
	{
		char big[DIR_MAX_IDENTITY_LEN + 2];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(ask(st, big, &gi), DIR_WQ_UNKNOWN);
	}
	dir_wstate_free(st);
}

static void
test_skel_and_under(void **state)
{
	char *k;
	int wild = -1;

	(void)state;
	/* ASCII: lower-cased, spaces and controls dropped (coarser than
	 * caseIgnoreMatch's insignificant spaces). */
	k = dir_wstate_skel("  Bob   SMITH ", &wild);
	assert_string_equal(k, "bobsmith");
	assert_int_equal(wild, 0);
	free(k);
	k = dir_wstate_skel("a\tB\x7f", &wild);
	assert_string_equal(k, "ab");
	free(k);
	/* Every run of non-ASCII bytes is one wildcard, whatever the
	 * directory folds it to. */
	k = dir_wstate_skel("\xc3\x84RGER", &wild); /* ÄRGER */
	assert_string_equal(k, "\x01rger");
	assert_int_equal(wild, 1);
	free(k);
	k = dir_wstate_skel("\xff"
	                    "ABC",
	                    &wild); /* not UTF-8 either */
	assert_string_equal(k, "\x01"
	                       "abc");
	free(k);
	k = dir_wstate_skel("al\xc4\xb0"
	                    "ce",
	                    NULL); /* U+0130 */
	assert_string_equal(k, "al\x01"
	                       "ce");
	free(k);
	assert_true(dir_dn_under("uid=a,ou=people,dc=x", "ou=people,dc=x"));
	assert_true(dir_dn_under("ou=people,dc=x", "ou=people,dc=x"));
	assert_false(dir_dn_under("uid=a,ou=apeople,dc=x", "ou=people,dc=x"));
	assert_false(dir_dn_under("uid=a\\,ou=people,dc=x", "ou=people,dc=x"));
	assert_true(dir_dn_under("uid=a\\\\,ou=people,dc=x", "ou=people,dc=x"));
	assert_false(dir_dn_under("dc=x", "ou=people,dc=x"));
}

/* ---- Security review H5 (F2, F3, F5, F6): reproductions, now fixed ---- */

/* What a change handler saw: the kinds and identities reported, and for
 * the last GROUP_MEMBERS of a group containing "cn=allowed" its
 * revocable() answer for each of rec.ask (valid during the call only). */
#define REC_MAX 16
struct rec {
	int n;
	int kind[REC_MAX];
	const char *who[REC_MAX]; /* copied into names */
	char names[REC_MAX][64];
	int snapshots;
	size_t snap_n;
	const char *ask[8];
	int answer[8];
};

static int
rec_fn(void *arg, const struct dir_watch_event *ev)
{
	struct rec *r = arg;

	if (r->n < REC_MAX) {
		r->kind[r->n] = ev->kind;
		snprintf(r->names[r->n], sizeof(r->names[r->n]), "%s",
		         ev->identity != NULL ? ev->identity : "");
		r->who[r->n] = r->names[r->n];
		r->n++;
	}
	if (ev->kind == DIR_WATCH_GROUP_MEMBERS &&
	    strstr(ev->group_dn, "cn=allowed") != NULL) {
		r->snapshots++;
		r->snap_n = ev->nmembers;
		assert_non_null(ev->revocable);
		for (int i = 0; i < 8 && r->ask[i] != NULL; i++)
			r->answer[i] =
			    ev->revocable(ev->revocable_ctx, r->ask[i]);
	}
	return 0;
}

static int
rec_count(const struct rec *r, int kind)
{
	int n = 0;

	for (int i = 0; i < r->n; i++)
		n += r->kind[i] == kind;
	return n;
}

/* F3: slapd's caseIgnoreMatch finds both entries for (uid=alice) (live:
 * ambiguous, deny); the cache must not admit. Any value that may be the
 * same to the directory makes it ask live. */
static void
test_h5_fold_vs_slapd(void **state)
{
	static const unsigned char U_ZOE[16] = {6};
	struct dir_wstate *st;
	const char *a[1] = {"alice"}, *b[1] = {"al\xc4\xb0"
	                                       "ce"};
	const char *bob[1] = {"b\xc3\xb6"
	                      "b"},
	           *zoe[1] = {"zo\xc3\xab"};
	const char *m1[] = {"uid=alice," PEOPLE, P("zo\xc3\xab")};
	int gi = -1;

	(void)state;
	assert_int_equal(dir_wstate_new(&st), 0);
	person_at(st, U_ALICE, "uid=alice," PEOPLE, a, 1, 0, 0);
	person_at(st, U_BOB, "cn=other," PEOPLE, b, 1, 0, 0);
	group(st, U_G1, G1, m1, 2);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_UNKNOWN);
	/* The non-ASCII one itself: never answered. */
	assert_int_equal(ask(st,
	                     "al\xc4\xb0"
	                     "ce",
	                     &gi),
	                 DIR_WQ_UNKNOWN);
	/* The look-alike gone: alice is answered again. */
	assert_int_equal(dir_wstate_delete(st, U_BOB, 16, ignore, NULL), 0);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_MEMBER);
	assert_int_equal(gi, 0);
	/* A non-ASCII value elsewhere in the name ("b\xc3\xb6b" may be
	 * "bob" to a directory): asked live. */
	person(st, U_CAROL, "bob", 0);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_ACTIVE);
	person_at(st, U_BOB2, "cn=b2," PEOPLE, bob, 1, 0, 0);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_UNKNOWN);
	/* An unrelated non-ASCII value changes nothing for alice; a member
	 * whose DN is not ASCII is not answered from the cache. */
	person_at(st, U_ZOE, P("zo\xc3\xab"), zoe, 1, 0, 0);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_MEMBER);
	assert_int_equal(ask(st, "zo\xc3\xab", &gi), DIR_WQ_UNKNOWN);
	dir_wstate_free(st);
}

/* F2: an AD group read without its member values (AD answered
 * member;range=0-1499) is not reported as "holds exactly nobody"; its
 * list is not used to revoke nor to answer. */
static void
test_h5_ranged_group_is_empty(void **state)
{
	struct dir_wstate *st;
	struct dir_wentry_in in;
	struct rec r;
	const char *a[1] = {"alice"};
	const char *m1[] = {"uid=alice," PEOPLE, P("bob")};
	const char *bad[] = {"uid=alice," PEOPLE, "not a DN"};
	int gi;

	(void)state;
	/* The attribute descriptions that mean "part of the values". */
	assert_true(dir_watch_ranged("member;range=0-1499", "member"));
	assert_true(dir_watch_ranged("Member;Range=1500-*", "member"));
	assert_true(dir_watch_ranged("member;x-opt;range=0-*", "member"));
	assert_false(dir_watch_ranged("member", "member"));
	assert_false(dir_watch_ranged("memberOf", "member"));
	assert_false(dir_watch_ranged("memberOf;range=0-1499", "member"));
	assert_false(dir_watch_ranged("member;binary", "member"));
	assert_false(dir_watch_ranged(NULL, "member"));

	memset(&r, 0, sizeof(r));
	r.ask[0] = "alice";
	assert_int_equal(dir_wstate_new(&st), 0);
	dir_wstate_refresh_begin(st, 1);
	person_at(st, U_ALICE, "uid=alice," PEOPLE, a, 1, 0, 0);
	person(st, U_BOB, "bob", 0);
	memset(&in, 0, sizeof(in));
	in.dn = G1; /* members: none readable under plain "member" */
	in.incomplete = 1;
	assert_int_equal(dir_wstate_entry(st, U_G1, 16, &in, 1, rec_fn, &r), 0);
	assert_int_equal(dir_wstate_refresh_done(st, rec_fn, &r), 0);
	assert_int_equal(r.snapshots, 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_ACTIVE);

	/* Read whole: alice and bob members. Then a notification with a
	 * ranged list: no LOST for those not in the part read, and the
	 * cache stops answering from it. */
	in.members = m1;
	in.nmembers = 2;
	in.incomplete = 0;
	assert_int_equal(dir_wstate_entry(st, U_G1, 16, &in, 0, rec_fn, &r), 0);
	assert_int_equal(ask(st, "bob", &gi), DIR_WQ_MEMBER);
	in.nmembers = 1;
	in.incomplete = 1;
	r.n = 0;
	assert_int_equal(dir_wstate_entry(st, U_G1, 16, &in, 0, rec_fn, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_ACTIVE);
	/* Whole again without bob: bob left (alice was in the part). */
	in.incomplete = 0;
	assert_int_equal(dir_wstate_entry(st, U_G1, 16, &in, 0, rec_fn, &r), 0);
	assert_int_equal(r.n, 0); /* bob was not in the part read */
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_MEMBER);

	/* A member value that is not a DN: whom it names is unknown, so
	 * the list is incomplete; a new group reported without a
	 * snapshot. */
	dir_wstate_clear(st);
	r.n = 0;
	dir_wstate_refresh_begin(st, 1);
	person_at(st, U_ALICE, "uid=alice," PEOPLE, a, 1, 0, 0);
	person(st, U_BOB, "bob", 0);
	memset(&in, 0, sizeof(in));
	in.dn = G1;
	in.members = bad;
	in.nmembers = 2;
	assert_int_equal(dir_wstate_entry(st, U_G1, 16, &in, 1, rec_fn, &r), 0);
	assert_int_equal(dir_wstate_refresh_done(st, rec_fn, &r), 0);
	assert_int_equal(r.snapshots, 0);
	dir_wstate_free(st);
}

/* F6: alice is in G1 only through the nested group cn=sub (what
 * membership = ad_chain / nested admits, matched_group = G1). With
 * nesting no group change revokes; with direct membership the snapshot
 * names who may be revoked. */
static void
test_h5_nested_member_dropped(void **state)
{
	static const unsigned char U_SUB[16] = {42};
	struct dir_wstate *st;
	struct dir_wentry_in in;
	struct rec r;
	const char *a[1] = {"alice"};
	const char *sub = "cn=sub,ou=groups,dc=example,dc=com";
	const char *gm[1] = {sub}, *sm[1] = {"uid=alice," PEOPLE};

	(void)state;
	for (int direct = 0; direct <= 1; direct++) {
		memset(&r, 0, sizeof(r));
		r.ask[0] = "alice";
		assert_int_equal(dir_wstate_new(&st), 0);
		dir_wstate_set_direct(st, direct);
		dir_wstate_refresh_begin(st, 1);
		person_at(st, U_ALICE, "uid=alice," PEOPLE, a, 1, 0, 0);
		memset(&in, 0, sizeof(in));
		in.dn = sub;
		in.members = sm;
		in.nmembers = 1;
		assert_int_equal(
		    dir_wstate_entry(st, U_SUB, 16, &in, 1, rec_fn, &r), 0);
		memset(&in, 0, sizeof(in));
		in.dn = G1;
		in.members = gm;
		in.nmembers = 1;
		assert_int_equal(
		    dir_wstate_entry(st, U_G1, 16, &in, 1, rec_fn, &r), 0);
		assert_int_equal(dir_wstate_refresh_done(st, rec_fn, &r), 0);
		if (!direct) {
			/* Nested: nothing reported at all. */
			assert_int_equal(r.snapshots, 0);
			assert_int_equal(rec_count(&r, DIR_WATCH_GROUP_MEMBERS),
			                 0);
			/* alice leaves cn=sub: no LOST either. */
			in.dn = sub;
			in.members = NULL;
			in.nmembers = 0;
			assert_int_equal(
			    dir_wstate_entry(st, U_SUB, 16, &in, 0, rec_fn, &r),
			    0);
			assert_int_equal(r.n, 0);
			/* Person-level changes still count. */
			person_at(st, U_ALICE, "uid=alice," PEOPLE, a, 1, 1, 0);
			assert_int_equal(
			    dir_wstate_delete(st, U_ALICE, 16, rec_fn, &r), 0);
			assert_int_equal(rec_count(&r, DIR_WATCH_DELETED), 1);
		} else {
			/* Direct: G1's list does not name alice; she is not a
			 * member as that mode's live check sees it. */
			assert_int_equal(r.snapshots, 1);
			assert_int_equal(r.snap_n, 0);
			assert_int_equal(r.answer[0], 1);
		}
		dir_wstate_free(st);
	}
}

/* F6: a snapshot revokes only an admission identity that is byte for
 * byte a watched person's value when nobody its live lookup might find
 * is a member: not a case-different spelling, not a second value of a
 * member, not someone unknown, not a look-alike of a member. */
static void
test_revocable_exact_only(void **state)
{
	struct dir_wstate *st;
	struct rec r;
	const char *a[2] = {"alice", "alice2"};
	const char *bob2[1] = {"BOB"};
	const char *m1[] = {P("alice")};

	(void)state;
	memset(&r, 0, sizeof(r));
	r.ask[0] = "alice";
	r.ask[1] = "Alice";
	r.ask[2] = "alice2";
	r.ask[3] = "bob";
	r.ask[4] = "mallory";
	r.ask[5] = "carol";
	assert_int_equal(dir_wstate_new(&st), 0);
	dir_wstate_refresh_begin(st, 1);
	person_at(st, U_ALICE, P("alice"), a, 2, 0, 0);
	person(st, U_BOB, "bob", 0);
	person(st, U_CAROL, "carol", 0);
	/* Seen for the first time within a refresh: reported at its end. */
	{
		struct dir_wentry_in in;

		memset(&in, 0, sizeof(in));
		in.dn = G1;
		in.members = m1;
		in.nmembers = 1;
		assert_int_equal(
		    dir_wstate_entry(st, U_G1, 16, &in, 1, rec_fn, &r), 0);
	}
	assert_int_equal(dir_wstate_refresh_done(st, rec_fn, &r), 0);
	assert_int_equal(r.snapshots, 1);
	assert_int_equal(r.snap_n, 1);
	assert_int_equal(r.answer[0], 0); /* a member */
	assert_int_equal(r.answer[1], 0); /* not a value byte for byte */
	assert_int_equal(r.answer[2], 0); /* alice's second value */
	assert_int_equal(r.answer[3], 1); /* known, not a member */
	assert_int_equal(r.answer[4], 0); /* unknown: the live check */
	assert_int_equal(r.answer[5], 1);

	/* "BOB" is a member now: bob may be the same to the directory. */
	{
		const char *m[] = {P("alice"), "uid=BOB,ou=more," PEOPLE};
		struct dir_wentry_in in;

		dir_wstate_clear(st);
		dir_wstate_refresh_begin(st, 1);
		person_at(st, U_ALICE, P("alice"), a, 2, 0, 0);
		person(st, U_BOB, "bob", 0);
		person_at(st, U_BOB2, "uid=BOB,ou=more," PEOPLE, bob2, 1, 0, 0);
		memset(&in, 0, sizeof(in));
		in.dn = G1;
		in.members = m;
		in.nmembers = 2;
		memset(r.answer, 0, sizeof(r.answer));
		r.answer[3] = -1;
		assert_int_equal(
		    dir_wstate_entry(st, U_G1, 16, &in, 1, rec_fn, &r), 0);
		assert_int_equal(dir_wstate_refresh_done(st, rec_fn, &r), 0);
		assert_int_equal(r.snapshots, 2);
		assert_int_equal(r.answer[3], 0);
	}
	dir_wstate_free(st);
}

/* LOST only for whom nobody alike is still a member; DELETED / DISABLED
 * not while another watched person might answer to the identity. */
static void
test_lost_and_deleted_guarded(void **state)
{
	struct dir_wstate *st;
	struct rec r;
	const char *bob2[1] = {"BOB"};
	const char *m1[] = {P("alice"), P("bob"), "uid=BOB,ou=more," PEOPLE};
	const char *m1_less[] = {P("alice"), "uid=BOB,ou=more," PEOPLE};
	const char *m1_none[] = {P("bob")};

	(void)state;
	memset(&r, 0, sizeof(r));
	st = baseline();
	person_at(st, U_BOB2, "uid=BOB,ou=more," PEOPLE, bob2, 1, 0, 0);
	group(st, U_G1, G1, m1, 3);
	/* bob leaves G1 but "BOB" stays: no LOST (the live lookup of bob
	 * may find BOB's entry). */
	assert_int_equal(dir_wstate_entry(st, U_G1, 16,
	                                  &(struct dir_wentry_in){
	                                      .dn = G1,
	                                      .members = m1_less,
	                                      .nmembers = 2,
	                                  },
	                                  0, rec_fn, &r),
	                 0);
	assert_int_equal(r.n, 0);
	/* alice and BOB leave, bob is back: alice's LOST only -- BOB's is
	 * skipped (bob, who may be the same to the directory, is a
	 * member). */
	assert_int_equal(dir_wstate_entry(st, U_G1, 16,
	                                  &(struct dir_wentry_in){
	                                      .dn = G1,
	                                      .members = m1_none,
	                                      .nmembers = 1,
	                                  },
	                                  0, rec_fn, &r),
	                 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.kind[0], DIR_WATCH_LOST);
	assert_string_equal(r.who[0], "alice");
	/* bob locked, then deleted, while BOB exists: neither reported;
	 * BOB deleted then, with bob gone: DELETED. */
	r.n = 0;
	assert_int_equal(dir_wstate_entry(st, U_BOB, 16,
	                                  &(struct dir_wentry_in){
	                                      .dn = P("bob"),
	                                      .identity = "bob",
	                                      .inactive = 1,
	                                  },
	                                  0, rec_fn, &r),
	                 0);
	assert_int_equal(dir_wstate_delete(st, U_BOB, 16, rec_fn, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(dir_wstate_delete(st, U_BOB2, 16, rec_fn, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.kind[0], DIR_WATCH_DELETED);
	assert_string_equal(r.who[0], "BOB");
	/* carol locked, nobody alike: DISABLED. */
	assert_int_equal(dir_wstate_entry(st, U_CAROL, 16,
	                                  &(struct dir_wentry_in){
	                                      .dn = P("carol"),
	                                      .identity = "carol",
	                                      .inactive = 1,
	                                  },
	                                  0, rec_fn, &r),
	                 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.kind[1], DIR_WATCH_DISABLED);
	dir_wstate_free(st);
}

/* F5: AD notifications queued while the baseline ran may carry a state
 * older than the baseline's; by uSNChanged they change nothing. */
static void
test_ad_stale_notifications(void **state)
{
	struct dir_wstate *st;
	struct rec r;
	const char *a[1] = {"alice"};
	const char *m1[] = {P("alice")};
	struct dir_wentry_in g, p;
	int gi;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(dir_wstate_new(&st), 0);
	/* The baseline: alice (usn 100) in G1 (usn 120). */
	dir_wstate_refresh_begin(st, 1);
	memset(&p, 0, sizeof(p));
	p.dn = P("alice");
	p.identity = "alice";
	p.identities = a;
	p.nidentities = 1;
	p.usn = 100;
	assert_int_equal(dir_wstate_entry(st, U_ALICE, 16, &p, 1, rec_fn, &r),
	                 0);
	memset(&g, 0, sizeof(g));
	g.dn = G1;
	g.members = m1;
	g.nmembers = 1;
	g.usn = 120;
	assert_int_equal(dir_wstate_entry(st, U_G1, 16, &g, 1, rec_fn, &r), 0);
	assert_int_equal(dir_wstate_refresh_done(st, rec_fn, &r), 0);
	r.n = 0;
	/* Queued before: G1 without alice (usn 110), alice disabled (usn
	 * 90), alice's tombstone older still: nothing, state unchanged. */
	g.members = NULL;
	g.nmembers = 0;
	g.usn = 110;
	assert_int_equal(dir_wstate_entry(st, U_G1, 16, &g, 0, rec_fn, &r), 0);
	p.inactive = 1;
	p.usn = 90;
	assert_int_equal(dir_wstate_entry(st, U_ALICE, 16, &p, 0, rec_fn, &r),
	                 0);
	assert_true(dir_wstate_stale(st, U_ALICE, 16, 100));
	assert_true(dir_wstate_stale(st, U_ALICE, 16, 99));
	assert_false(dir_wstate_stale(st, U_ALICE, 16, 101));
	assert_false(dir_wstate_stale(st, U_ALICE, 16, 0));
	assert_false(dir_wstate_stale(st, U_BOB, 16, 5)); /* unknown */
	assert_int_equal(r.n, 0);
	assert_int_equal(ask(st, "alice", &gi), DIR_WQ_MEMBER);
	/* The same change, newer than the baseline (usn 121): LOST. */
	g.usn = 121;
	assert_int_equal(dir_wstate_entry(st, U_G1, 16, &g, 0, rec_fn, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.kind[0], DIR_WATCH_LOST);
	/* Without a usn (OpenLDAP's sync, or AD not sending it): applied. */
	p.usn = 0;
	assert_int_equal(dir_wstate_entry(st, U_ALICE, 16, &p, 0, rec_fn, &r),
	                 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.kind[1], DIR_WATCH_DISABLED);
	dir_wstate_free(st);
}

static void
test_follow_filter(void **state)
{
	char f[512];
	static const char *const refused[] = {
	    "(|(uid={identity})(mail={identity}))", /* twice */
	    "(|(uid={identity})(objectClass=x))",   /* under an OR */
	    "(&(objectClass=person)(|(uid={identity})(cn=x)))",
	    "(mail={identity}@example.com)", /* not the whole value */
	    "(uid~={identity})",
	    "(!(uid={identity}))",
	    "(&(objectClass=person)({identity}))",
	    "(uid=x{identity})",
	};

	(void)state;
	assert_int_equal(
	    dir_watch_follow_filter("(uid={identity})", "member", f, sizeof(f)),
	    0);
	assert_string_equal(f, "(|(member=*)(uid=*))");
	assert_int_equal(
	    dir_watch_follow_filter(
	        "(&(objectClass=inetOrgPerson)(uid={identity})(!(x=y)))",
	        "uniqueMember", f, sizeof(f)),
	    0);
	assert_string_equal(f, "(|(uniqueMember=*)(&(objectClass=inetOrgPerson)"
	                       "(uid=*)(!(x=y))))");
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++)
		if (dir_watch_follow_filter(refused[i], "member", f,
		                            sizeof(f)) != DIR_EINVAL)
			fail_msg("accepted %s as %s", refused[i], f);
	/* Too small an output. */
	assert_int_equal(
	    dir_watch_follow_filter("(uid={identity})", "member", f, 10),
	    DIR_EINVAL);
}

static int
keep(void *arg)
{
	(void)arg;
	return 0;
}

static void
test_open_follower(void **state)
{
	struct dir_config c;
	struct dir_watch *w = NULL;
	char err[512];
	int gi = 7;
	const char *groups[1] = {G1};

	(void)state;
	memset(&c, 0, sizeof(c));
	c.uris = "ldap://127.0.0.1:1";
	c.bind_dn = "cn=x,dc=example,dc=com";
	c.bind_password = "secret";
	c.network_timeout_ms = 1000;
	c.op_timeout_ms = 1000;
	c.base_dn = "dc=example,dc=com";
	c.active = DIR_ACTIVE_FILTER;
	c.active_filter = "(employeeType=staff)";
	assert_int_equal(
	    dir_watch_open_follower(&c, keep, NULL, &w, err, sizeof(err)),
	    DIR_EINVAL);
	assert_null(w);
	assert_non_null(strstr(err, "membership_cache"));
	c.active = DIR_ACTIVE_AD;
	assert_int_equal(
	    dir_watch_open_follower(&c, keep, NULL, &w, err, sizeof(err)),
	    DIR_EINVAL);
	c.active = DIR_ACTIVE_OPENLDAP;
	c.active_filter = NULL;
	c.membership = DIR_MEMBERSHIP_AD_CHAIN;
	assert_int_equal(
	    dir_watch_open_follower(&c, keep, NULL, &w, err, sizeof(err)),
	    DIR_EINVAL);
	c.membership = DIR_MEMBERSHIP_MEMBEROF;
	/* people_base outside what the follower searches. */
	c.base_dn = NULL;
	c.group_base = "ou=groups,dc=example,dc=com";
	c.people_base = PEOPLE;
	assert_int_equal(
	    dir_watch_open_follower(&c, keep, NULL, &w, err, sizeof(err)),
	    DIR_EINVAL);
	assert_non_null(strstr(err, "people base"));
	c.base_dn = "dc=example,dc=com";
	c.group_base = NULL;
	c.user_filter = "(|(uid={identity})(mail={identity}))";
	assert_int_equal(
	    dir_watch_open_follower(&c, keep, NULL, &w, err, sizeof(err)),
	    DIR_EINVAL);
	assert_non_null(strstr(err, "user_filter"));
	c.user_filter = NULL;
	assert_int_equal(
	    dir_watch_open_follower(&c, keep, NULL, &w, err, sizeof(err)), 0);
	/* Never connected: not usable, every answer unknown. */
	assert_false(dir_watch_usable(w));
	assert_int_equal(dir_watch_lookup(w, "alice", groups, 1, &gi),
	                 DIR_WQ_UNKNOWN);
	assert_int_equal(gi, -1);
	assert_int_equal(dir_watch_run(w), 0);
	dir_watch_close(w);
	assert_int_equal(dir_watch_lookup(NULL, "alice", groups, 1, &gi),
	                 DIR_WQ_UNKNOWN);
}

static void
test_decide(void **state)
{
	char *groups[2] = {"cn=a,dc=x", "cn=b,dc=x"};
	char *inv[1] = {"ivy"};
	struct db_meeting m;
	const char *g = "x";

	(void)state;
	memset(&m, 0, sizeof(m));
	m.groups = groups;
	m.ngroups = 2;
	assert_int_equal(
	    gate_authz_cache_decide(&m, "bob", DIR_WQ_MEMBER, 1, &g), 1);
	assert_string_equal(g, "cn=b,dc=x");
	/* Out of range: no. */
	assert_int_equal(
	    gate_authz_cache_decide(&m, "bob", DIR_WQ_MEMBER, 2, &g), 0);
	assert_null(g);
	assert_int_equal(
	    gate_authz_cache_decide(&m, "bob", DIR_WQ_ACTIVE, -1, &g), 0);
	assert_int_equal(
	    gate_authz_cache_decide(&m, "bob", DIR_WQ_UNKNOWN, -1, &g), 0);
	/* Invitees: active is enough, with or without groups. */
	m.invitees = inv;
	m.ninvitees = 1;
	assert_int_equal(
	    gate_authz_cache_decide(&m, "ivy", DIR_WQ_ACTIVE, -1, &g), 1);
	assert_string_equal(g, "invitee");
	assert_int_equal(
	    gate_authz_cache_decide(&m, "ivy", DIR_WQ_UNKNOWN, -1, &g), 0);
	m.ngroups = 0;
	assert_int_equal(
	    gate_authz_cache_decide(&m, "ivy", DIR_WQ_ACTIVE, -1, &g), 1);
	assert_int_equal(
	    gate_authz_cache_decide(&m, "bob", DIR_WQ_ACTIVE, -1, &g), 0);
	/* The cache is not running in this process: nobody is admitted from
	 * it. */
	m.ngroups = 2;
	assert_int_equal(gate_authz_cache_admits(&m, "bob", &g), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_members_follow_changes),
	    cmocka_unit_test(test_refresh_drops_unseen),
	    cmocka_unit_test(test_ambiguous_and_exact),
	    cmocka_unit_test(test_skel_and_under),
	    cmocka_unit_test(test_h5_fold_vs_slapd),
	    cmocka_unit_test(test_h5_ranged_group_is_empty),
	    cmocka_unit_test(test_h5_nested_member_dropped),
	    cmocka_unit_test(test_revocable_exact_only),
	    cmocka_unit_test(test_lost_and_deleted_guarded),
	    cmocka_unit_test(test_ad_stale_notifications),
	    cmocka_unit_test(test_follow_filter),
	    cmocka_unit_test(test_open_follower),
	    cmocka_unit_test(test_decide),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
