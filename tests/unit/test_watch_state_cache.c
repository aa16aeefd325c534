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
test_fold_and_under(void **state)
{
	char *k;

	(void)state;
	k = dir_wstate_fold("  Bob   SMITH ");
	assert_string_equal(k, "bob smith");
	free(k);
	k = dir_wstate_fold("\xc3\x84RGER"); /* ÄRGER */
	assert_string_equal(k, "\xc3\xa4rger");
	free(k);
	k = dir_wstate_fold("\xff"
	                    "ABC"); /* not UTF-8: ASCII folding */
	assert_string_equal(k, "\xff"
	                       "abc");
	free(k);
	assert_true(dir_dn_under("uid=a,ou=people,dc=x", "ou=people,dc=x"));
	assert_true(dir_dn_under("ou=people,dc=x", "ou=people,dc=x"));
	assert_false(dir_dn_under("uid=a,ou=apeople,dc=x", "ou=people,dc=x"));
	assert_false(dir_dn_under("uid=a\\,ou=people,dc=x", "ou=people,dc=x"));
	assert_true(dir_dn_under("uid=a\\\\,ou=people,dc=x", "ou=people,dc=x"));
	assert_false(dir_dn_under("dc=x", "ou=people,dc=x"));
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
	    cmocka_unit_test(test_fold_and_under),
	    cmocka_unit_test(test_follow_filter),
	    cmocka_unit_test(test_open_follower),
	    cmocka_unit_test(test_decide),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
