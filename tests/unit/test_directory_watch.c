/*
 * Unit tests for the directory watcher's baseline and diffing
 * (directory/watch_state.c; no server): members leaving a group, groups
 * deleted, people locked / renamed / deleted, first-seen groups reported
 * whole after the refresh, full and present-phase refreshes dropping
 * what the server no longer names, and the identity attribute taken from
 * the user filter. Plus dir_watch_open's refusals.
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

/* What the emit callback saw, one line per change. */
struct seen {
	char lines[64][512];
	int n;
	int fail_at; /* 1-based change number that fails; 0: none */
};

static int
record(void *arg, const struct dir_watch_event *ev)
{
	struct seen *s = arg;
	char *l;
	size_t off;

	assert_true(s->n < 64);
	l = s->lines[s->n++];
	if (s->fail_at != 0 && s->n == s->fail_at)
		return -1;
	switch (ev->kind) {
	case DIR_WATCH_LOST:
		snprintf(l, 512, "lost %s %s", ev->identity, ev->group_dn);
		break;
	case DIR_WATCH_DISABLED:
		snprintf(l, 512, "disabled %s", ev->identity);
		break;
	case DIR_WATCH_DELETED:
		snprintf(l, 512, "deleted %s", ev->identity);
		break;
	case DIR_WATCH_GROUP_MEMBERS:
		off = (size_t)snprintf(l, 512, "members %s:", ev->group_dn);
		for (size_t i = 0; i < ev->nmembers && off < 512; i++)
			off += (size_t)snprintf(l + off, 512 - off, " %s",
			                        ev->members[i]);
		break;
	default:
		fail_msg("unknown kind %d", ev->kind);
	}
	return 0;
}

static int
has(const struct seen *s, const char *line)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->lines[i], line) == 0)
			return 1;
	return 0;
}

static const unsigned char U_ALICE[16] = {1}, U_BOB[16] = {2},
                           U_CAROL[16] = {3}, U_G1[16] = {10}, U_G2[16] = {11};

#define P(x) "uid=" x ",ou=people,dc=example,dc=com"
#define G1 "cn=allowed,ou=groups,dc=example,dc=com"
#define G2 "cn=eng,ou=groups,dc=example,dc=com"

static void
person(struct dir_wstate *st, const unsigned char *u, const char *uid,
       int inactive, int in_refresh, struct seen *s)
{
	char dn[256];
	struct dir_wentry_in in;

	snprintf(dn, sizeof(dn), "uid=%s,ou=people,dc=example,dc=com", uid);
	memset(&in, 0, sizeof(in));
	in.dn = dn;
	in.identity = uid;
	in.inactive = inactive;
	assert_int_equal(
	    dir_wstate_entry(st, u, 16, &in, in_refresh, record, s), 0);
}

static int
group(struct dir_wstate *st, const unsigned char *u, const char *dn,
      const char *const *m, size_t n, int in_refresh, struct seen *s)
{
	struct dir_wentry_in in;

	memset(&in, 0, sizeof(in));
	in.dn = dn;
	in.members = m;
	in.nmembers = n;
	return dir_wstate_entry(st, u, 16, &in, in_refresh, record, s);
}

/* A full refresh, then changes in the persist phase. */
static struct dir_wstate *
baseline(struct seen *s)
{
	struct dir_wstate *st;
	/* Mixed case and spaces: compared normalized. */
	const char *m1[] = {"UID=alice, ou=People,dc=example,dc=com", P("bob"),
	                    P("carol"),
	                    "cn=placeholder,ou=services,dc=example,dc=com"};
	const char *m2[] = {P("alice")};

	assert_int_equal(dir_wstate_new(&st), 0);
	dir_wstate_refresh_begin(st, 1);
	/* The group before its members: its report waits for the end. */
	assert_int_equal(group(st, U_G1, G1, m1, 4, 1, s), 0);
	person(st, U_ALICE, "alice", 0, 1, s);
	person(st, U_BOB, "bob", 0, 1, s);
	person(st, U_CAROL, "carol", 0, 1, s);
	assert_int_equal(group(st, U_G2, G2, m2, 1, 1, s), 0);
	assert_int_equal(s->n, 0);
	assert_int_equal(dir_wstate_refresh_done(st, record, s), 0);
	assert_int_equal(s->n, 2);
	assert_true(has(s, "members " G1 ": alice bob carol"));
	assert_true(has(s, "members " G2 ": alice"));
	assert_int_equal(dir_wstate_count(st, 0), 3);
	assert_int_equal(dir_wstate_count(st, 1), 2);
	memset(s, 0, sizeof(*s));
	return st;
}

static void
test_member_removed(void **state)
{
	struct seen s = {0};
	struct dir_wstate *st = baseline(&s);
	const char *m1[] = {P("alice"), P("carol"),
	                    "cn=placeholder,ou=services,dc=example,dc=com"};
	const char *m1b[] = {P("carol")};

	(void)state;
	/* bob leaves (the whole entry comes again). */
	assert_int_equal(group(st, U_G1, G1, m1, 3, 0, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.lines[0], "lost bob " G1);
	/* The same list again: nothing. */
	assert_int_equal(group(st, U_G1, G1, m1, 3, 0, &s), 0);
	assert_int_equal(s.n, 1);
	/* alice and the placeholder (not a person) leave: alice only. */
	assert_int_equal(group(st, U_G1, G1, m1b, 1, 0, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.lines[1], "lost alice " G1);
	/* Added members are no change to act on. */
	assert_int_equal(group(st, U_G1, G1, m1, 3, 0, &s), 0);
	assert_int_equal(s.n, 2);
	dir_wstate_free(st);
}

static void
test_group_deleted(void **state)
{
	struct seen s = {0};
	struct dir_wstate *st = baseline(&s);

	(void)state;
	assert_int_equal(dir_wstate_delete(st, U_G1, 16, record, &s), 0);
	assert_int_equal(s.n, 3);
	assert_true(has(&s, "lost alice " G1));
	assert_true(has(&s, "lost bob " G1));
	assert_true(has(&s, "lost carol " G1));
	/* Unknown UUIDs (a DELETES_IDSET may name them) are ignored. */
	assert_int_equal(dir_wstate_delete(st, U_G1, 16, record, &s), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(dir_wstate_count(st, 1), 1);
	dir_wstate_free(st);
}

static void
test_people(void **state)
{
	struct seen s = {0};
	struct dir_wstate *st = baseline(&s);
	const char *m1[] = {P("alice"), P("carol")};

	(void)state;
	/* Locked: disabled once, not again while it stays locked. */
	person(st, U_BOB, "bob", 1, 0, &s);
	person(st, U_BOB, "bob", 1, 0, &s);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.lines[0], "disabled bob");
	/* Unlocked and locked again: disabled again. */
	person(st, U_BOB, "bob", 0, 0, &s);
	person(st, U_BOB, "bob", 1, 0, &s);
	assert_int_equal(s.n, 2);
	/* Deleted: reported by identity though only the UUID comes. */
	assert_int_equal(dir_wstate_delete(st, U_CAROL, 16, record, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.lines[2], "deleted carol");
	/* carol's DN leaving a group later names no one any more. */
	assert_int_equal(group(st, U_G1, G1, m1, 1, 0, &s), 0);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.lines[3], "lost bob " G1);
	/* A renamed identity: the old one is gone. */
	person(st, U_ALICE, "alice2", 0, 0, &s);
	assert_int_equal(s.n, 5);
	assert_string_equal(s.lines[4], "deleted alice");
	dir_wstate_free(st);
}

static void
test_resume_and_presents(void **state)
{
	struct seen s = {0};
	struct dir_wstate *st = baseline(&s);
	const char *m1[] = {P("alice"), P("bob")};

	(void)state;
	/* A resumed refresh: changed entries come as ADD of known UUIDs
	 * and are diffed at once; nothing unnamed is dropped. */
	dir_wstate_refresh_begin(st, 0);
	assert_int_equal(group(st, U_G1, G1, m1, 2, 1, &s), 0);
	assert_int_equal(dir_wstate_refresh_done(st, record, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.lines[0], "lost carol " G1);
	assert_int_equal(dir_wstate_count(st, 0), 3);

	/* The session log no longer covers the cookie: present phase.
	 * carol and G2 are not named, so they are gone. */
	memset(&s, 0, sizeof(s));
	dir_wstate_refresh_begin(st, 0);
	dir_wstate_presents(st);
	dir_wstate_present(st, U_ALICE, 16);
	dir_wstate_present(st, U_BOB, 16);
	dir_wstate_present(st, U_G1, 16);
	assert_int_equal(dir_wstate_refresh_done(st, record, &s), 0);
	assert_int_equal(s.n, 2);
	/* The group first, while alice's identity is still known. */
	assert_string_equal(s.lines[0], "lost alice " G2);
	assert_string_equal(s.lines[1], "deleted carol");
	assert_int_equal(dir_wstate_count(st, 0), 2);
	assert_int_equal(dir_wstate_count(st, 1), 1);
	dir_wstate_free(st);
}

static void
test_first_seen_after_refresh(void **state)
{
	struct seen s = {0};
	struct dir_wstate *st = baseline(&s);
	const char *m[] = {P("bob"), P("nobody")};

	(void)state;
	/* A group created later: reported whole at once. */
	assert_int_equal(group(st, (const unsigned char *)"0123456789abcdef",
	                       "cn=new,ou=groups,dc=example,dc=com", m, 2, 0,
	                       &s),
	                 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.lines[0],
	                    "members cn=new,ou=groups,dc=example,dc=com: bob");
	/* A DN that does not parse is refused, nothing reported. */
	assert_int_equal(group(st, U_G2, "not a dn", m, 2, 0, &s), DIR_EINVAL);
	assert_int_equal(s.n, 1);
	/* A handler that fails stops the report and says so. */
	s.fail_at = 2;
	assert_int_not_equal(dir_wstate_delete(st, U_G1, 16, record, &s), 0);
	dir_wstate_clear(st);
	assert_int_equal(dir_wstate_count(st, 0), 0);
	dir_wstate_free(st);
}

/* Members but no person known (people unreadable): no report, rather
 * than an empty list that would end everything. */
static void
test_no_people_no_snapshot(void **state)
{
	struct seen s = {0};
	struct dir_wstate *st;
	const char *m[] = {P("bob")};

	(void)state;
	assert_int_equal(dir_wstate_new(&st), 0);
	dir_wstate_refresh_begin(st, 1);
	assert_int_equal(group(st, U_G1, G1, m, 1, 1, &s), 0);
	assert_int_equal(dir_wstate_refresh_done(st, record, &s), 0);
	assert_int_equal(s.n, 0);
	dir_wstate_free(st);
}

static void
test_key_attr(void **state)
{
	char a[64];

	(void)state;
	assert_int_equal(
	    dir_watch_key_attr(DIR_DEFAULT_USER_FILTER, a, sizeof(a)), 0);
	assert_string_equal(a, "uid");
	assert_int_equal(
	    dir_watch_key_attr("(sAMAccountName={identity})", a, sizeof(a)), 0);
	assert_string_equal(a, "sAMAccountName");
	assert_int_equal(
	    dir_watch_key_attr("(&(objectClass=user)(|(mail={identity})"
	                       "(uid=x)))",
	                       a, sizeof(a)),
	    0);
	assert_string_equal(a, "mail");
	assert_int_equal(dir_watch_key_attr("(uid=x)", a, sizeof(a)),
	                 DIR_EINVAL);
	assert_int_equal(dir_watch_key_attr("={identity})", a, sizeof(a)),
	                 DIR_EINVAL);
	assert_int_equal(dir_watch_key_attr("(u id={identity})", a, sizeof(a)),
	                 DIR_EINVAL);
	assert_int_equal(dir_watch_key_attr(NULL, a, sizeof(a)), DIR_EINVAL);
}

static int
keep(void *arg)
{
	(void)arg;
	return 0;
}

static int
change(void *arg, const struct dir_watch_event *ev)
{
	(void)arg;
	(void)ev;
	return 0;
}

static void
test_open_refusals(void **state)
{
	struct dir_config c;
	struct dir_watch_hooks h = {change, NULL, keep, NULL};
	struct dir_watch *w = NULL;
	char err[512];

	(void)state;
	memset(&c, 0, sizeof(c));
	c.uris = "ldap://127.0.0.1:1";
	c.bind_dn = "cn=x,dc=example,dc=com";
	c.bind_password = "secret";
	c.network_timeout_ms = 1000;
	c.op_timeout_ms = 1000;
	/* No base. */
	assert_int_equal(dir_watch_open(&c, &h, &w, err, sizeof(err)),
	                 DIR_EINVAL);
	assert_null(w);
	if (strstr(err, "base_dn") == NULL)
		fail_msg("%s", err);
	/* A filter without (attr={identity}). */
	c.base_dn = "dc=example,dc=com";
	c.user_filter = "(&(objectClass=person)({identity}))";
	assert_int_not_equal(dir_watch_open(&c, &h, &w, err, sizeof(err)), 0);
	assert_null(w);
	/* No handler. */
	c.user_filter = NULL;
	h.change = NULL;
	assert_int_equal(dir_watch_open(&c, &h, &w, err, sizeof(err)),
	                 DIR_EINVAL);
	h.change = change;
	/* Fine: opens without connecting; run stops when told. */
	assert_int_equal(dir_watch_open(&c, &h, &w, err, sizeof(err)), 0);
	assert_int_equal(dir_watch_run(w), 0);
	dir_watch_close(w);
}

/* The AD change-notification request (no AD here: what is sent). */
static void
test_ad_notification_request(void **state)
{
	struct dir_ad_notify n;
	LDAP *ld = NULL;
	char err[256];
	const char *yes[] = {"FALSE", "true"}, *no[] = {"FALSE"};

	(void)state;
	assert_int_equal(ldap_initialize(&ld, "ldap://127.0.0.1:1"),
	                 LDAP_SUCCESS);
	assert_int_equal(dir_ad_notify_build(ld, "DC=corp,DC=example,DC=com",
	                                     "sAMAccountName", "member", &n,
	                                     err, sizeof(err)),
	                 0);
	assert_non_null(n.ctrls[0]);
	assert_string_equal(n.ctrls[0]->ldctl_oid, "1.2.840.113556.1.4.528");
	assert_string_equal(n.ctrls[0]->ldctl_oid,
	                    LDAP_CONTROL_X_SERVER_NOTIFICATION);
	assert_true(n.ctrls[0]->ldctl_iscritical);
	/* The control has no value. */
	assert_true(n.ctrls[0]->ldctl_value.bv_len == 0);
	assert_non_null(n.ctrls[1]);
	assert_string_equal(n.ctrls[1]->ldctl_oid, "1.2.840.113556.1.4.417");
	assert_true(n.ctrls[1]->ldctl_iscritical);
	assert_null(n.ctrls[2]);
	assert_string_equal(n.filter, "(objectClass=*)");
	assert_string_equal(n.base, "DC=corp,DC=example,DC=com");
	assert_int_equal(n.scope, LDAP_SCOPE_SUBTREE);
	assert_string_equal(n.attrs[0], "sAMAccountName");
	assert_string_equal(n.attrs[1], "member");
	assert_string_equal(n.attrs[2], "userAccountControl");
	assert_string_equal(n.attrs[3], "objectGUID");
	assert_string_equal(n.attrs[4], "isDeleted");
	/* To drop notifications older than the state (review F5). */
	assert_string_equal(n.attrs[5], "uSNChanged");
	assert_null(n.attrs[6]);
	dir_ad_notify_free(&n);
	assert_null(n.ctrls[0]);
	/* No base: refused with a message, nothing to free. */
	assert_int_equal(dir_ad_notify_build(ld, "", "sAMAccountName", "member",
	                                     &n, err, sizeof(err)),
	                 DIR_EINVAL);
	assert_non_null(strstr(err, "domain"));
	assert_null(n.ctrls[0]);
	assert_true(dir_ad_is_deleted(yes, 2));
	assert_false(dir_ad_is_deleted(no, 1));
	assert_false(dir_ad_is_deleted(NULL, 0));
	ldap_unbind_ext(ld, NULL, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_member_removed),
	    cmocka_unit_test(test_group_deleted),
	    cmocka_unit_test(test_people),
	    cmocka_unit_test(test_resume_and_presents),
	    cmocka_unit_test(test_first_seen_after_refresh),
	    cmocka_unit_test(test_no_people_no_snapshot),
	    cmocka_unit_test(test_key_attr),
	    cmocka_unit_test(test_open_refusals),
	    cmocka_unit_test(test_ad_notification_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
