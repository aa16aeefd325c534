/*
 * Integration tests for the live check (dir_check_member, dir_check_role)
 * against the real slapd that tests/run.sh starts, with the demo
 * directory of deploy/dev/demo-ldif.sh (alice, bob, carol, dave not in
 * meeting-allowed, mallory locked...).
 *
 * Fixtures a test needs beyond the demo data (a second entry for one
 * identity, nested groups, a cycle) are added here with ldapmodify as the
 * directory admin and removed in the test's teardown, also when the test
 * failed: the binaries after this one rely on the demo data as shipped.
 * Changes are made with ldapmodify and checked on the very next call, with
 * no sleep: nothing may be cached.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "directory/directory.h"
#include "tests/lib/th.h"

#define OP_MS 1000
#define NET_MS 1000

#define BASE "dc=example,dc=com"
#define PEOPLE "ou=people," BASE
#define GROUPS "ou=groups," BASE
#define ALLOWED "cn=meeting-allowed," GROUPS
#define HOSTS "cn=meeting-hosts," GROUPS
#define COMPLIANCE "cn=compliance," GROUPS
#define ENGINEERING "cn=engineering," GROUPS
#define PLACEHOLDER "cn=placeholder,ou=services," BASE
#define DN(uid) "uid=" uid "," PEOPLE

/* ---- log hook: keeps what the pool reported ---- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];
static int log_count;

static void
capture_log(void *arg, int level, const char *event, const char *msg)
{
	size_t have;

	(void)arg;
	pthread_mutex_lock(&log_mu);
	have = strlen(log_text);
	if (have < sizeof(log_text) - 1)
		snprintf(log_text + have, sizeof(log_text) - have,
		         "[%d %s] %s\n", level, event, msg);
	log_count++;
	pthread_mutex_unlock(&log_mu);
}

static void
log_reset(void)
{
	pthread_mutex_lock(&log_mu);
	log_text[0] = '\0';
	log_count = 0;
	pthread_mutex_unlock(&log_mu);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
assert_has(const char *msg, const char *needle)
{
	if (strstr(msg, needle) == NULL)
		fail_msg("message '%s' lacks '%s'", msg, needle);
}

static void
assert_no_secret(const char *msg)
{
	if (strstr(msg, th_env("RG_TEST_LDAP_BIND_PASSWORD")) != NULL)
		fail_msg("message holds the bind password: '%s'", msg);
}

static struct dir_config
cfg_check(enum dir_membership m)
{
	struct dir_config c;

	memset(&c, 0, sizeof(c));
	c.uris = th_env("RG_TEST_LDAP_URI");
	c.bind_dn = th_env("RG_TEST_LDAP_BIND_DN");
	c.bind_password = th_env("RG_TEST_LDAP_BIND_PASSWORD");
	c.tls = DIR_TLS_NONE;
	c.network_timeout_ms = NET_MS;
	c.op_timeout_ms = OP_MS;
	c.pool_size = 2;
	c.acquire_timeout_ms = 500;
	c.base_dn = th_env("RG_TEST_LDAP_BASE_DN");
	c.people_base = PEOPLE;
	c.group_base = GROUPS;
	c.user_filter = "(&(objectClass=inetOrgPerson)(uid={identity}))";
	c.active = DIR_ACTIVE_OPENLDAP;
	c.membership = m;
	c.role_groups[DIR_ROLE_HOST] = HOSTS;
	c.role_groups[DIR_ROLE_COMPLIANCE] = COMPLIANCE;
	c.log = capture_log;
	return c;
}

static struct dir_pool *
open_pool(const struct dir_config *c)
{
	struct dir_pool *p = NULL;
	char err[1024];

	if (dir_pool_open(c, &p, err, sizeof(err)) != 0)
		fail_msg("dir_pool_open: %s", err);
	return p;
}

/* One check of `id` against groups; returns the verdict's result and
 * asserts that the call's return agrees with it. */
static int
check(struct dir_pool *p, const char *id, const char *const *groups,
      size_t n, struct dir_verdict *v, char *err, size_t errlen)
{
	struct dir_verdict local;
	int r;

	if (v == NULL)
		v = &local;
	r = dir_check_member(p, id, strlen(id), groups, n, v, err, errlen);
	assert_no_secret(err);
	if (v->result == DIR_V_UNAVAILABLE && r == 0)
		fail_msg("unavailable verdict with return 0: %s", err);
	if (v->result != DIR_V_UNAVAILABLE && r != 0)
		fail_msg("verdict %s with return %d: %s",
		         dir_verdict_name(v->result), r, err);
	return v->result;
}

static void
expect(struct dir_pool *p, const char *id, const char *group, int want)
{
	struct dir_verdict v;
	char err[1024];
	int got = check(p, id, &group, 1, &v, err, sizeof(err));

	if (got != want)
		fail_msg("%s in %s: %s, expected %s (%s)", id, group,
		         dir_verdict_name(got), dir_verdict_name(want), err);
}

/* ---- fixtures through ldapmodify as the directory admin ---- */

static int
ldif_as_admin(const char *tool, const char *flags, const char *text)
{
	const char *path = th_write_file("check-fixture.ldif", text);

	return th_sh("%s -x -H \"$RG_TEST_LDAP_URI\" -D "
	             "\"$RG_TEST_LDAP_ADMIN_DN\" -w "
	             "\"$RG_TEST_LDAP_ADMIN_PASSWORD\" %s -f '%s' "
	             ">>\"$RG_TEST_TMP/check-fixture.log\" 2>&1",
	             tool, flags, path);
}

/* Must succeed (setup and the changes under test). */
static void
ldapmodify_ok(const char *text)
{
	if (ldif_as_admin("ldapmodify", "", text) != 0)
		fail_msg("ldapmodify failed (see check-fixture.log):\n%s",
		         text);
}

/* Teardown: undo whatever is there, ignoring what is not. */
static void
ldapmodify_undo(const char *text)
{
	(void)ldif_as_admin("ldapmodify", "-c", text);
}

static void
ldapdelete_quiet(const char *dns)
{
	(void)th_sh("ldapdelete -x -H \"$RG_TEST_LDAP_URI\" -D "
	            "\"$RG_TEST_LDAP_ADMIN_DN\" -w "
	            "\"$RG_TEST_LDAP_ADMIN_PASSWORD\" -c %s "
	            ">>\"$RG_TEST_TMP/check-fixture.log\" 2>&1",
	            dns);
}

/* ---- the verdicts on the demo data ---- */

static void
test_verdicts_memberof(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *g = ALLOWED;
	const char *two[] = {COMPLIANCE, ALLOWED};
	const char *odd_case =
	    "CN=Meeting-Allowed, OU=Groups, DC=Example, DC=COM";
	char err[1024];

	(void)state;
	p = open_pool(&c);
	assert_int_equal(check(p, "alice", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_MEMBER);
	assert_string_equal(v.entry_dn, DN("alice"));
	assert_string_equal(v.group_dn, ALLOWED);
	assert_int_equal(v.group_index, 0);
	/* The whole check is the lookup: one round trip. */
	assert_int_equal(v.round_trips, 1);
	assert_has(err, "active member");
	print_message("    member in %lld us, %d round trip\n",
	              (long long)v.elapsed_us, v.round_trips);

	assert_int_equal(check(p, "dave", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_NOT_MEMBER);
	assert_string_equal(v.entry_dn, DN("dave"));
	assert_string_equal(v.group_dn, "");
	assert_int_equal(v.group_index, -1);
	assert_int_equal(v.round_trips, 1);

	assert_int_equal(check(p, "mallory", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_INACTIVE);
	assert_has(err, "pwdAccountLockedTime");
	assert_string_equal(v.entry_dn, DN("mallory"));

	assert_int_equal(check(p, "nobody", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_NOT_FOUND);
	assert_string_equal(v.entry_dn, "");
	assert_has(err, "nobody");

	/* Group DNs are compared normalized, case-insensitively; the
	 * verdict names the group as the caller wrote it. */
	assert_int_equal(check(p, "bob", &odd_case, 1, &v, err, sizeof(err)),
	                 DIR_V_MEMBER);
	assert_string_equal(v.group_dn, odd_case);

	/* Several groups: the first that matches, in the caller's order. */
	assert_int_equal(check(p, "carol", two, 2, &v, err, sizeof(err)),
	                 DIR_V_MEMBER);
	assert_string_equal(v.group_dn, COMPLIANCE);
	assert_int_equal(v.group_index, 0);
	assert_int_equal(check(p, "bob", two, 2, &v, err, sizeof(err)),
	                 DIR_V_MEMBER);
	assert_int_equal(v.group_index, 1);
	dir_pool_close(p);
}

static void
test_verdicts_member_compare(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBER);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *missing_first[] = {"cn=no-such-group," GROUPS, ALLOWED};
	char err[1024];

	(void)state;
	log_reset();
	p = open_pool(&c);
	assert_int_equal(check(p, "alice", &missing_first[1], 1, &v, err,
	                       sizeof(err)),
	                 DIR_V_MEMBER);
	assert_int_equal(v.round_trips, 2); /* lookup + one compare */
	expect(p, "dave", ALLOWED, DIR_V_NOT_MEMBER);
	expect(p, "mallory", ALLOWED, DIR_V_INACTIVE);
	expect(p, "nobody", ALLOWED, DIR_V_NOT_FOUND);
	/* A group that does not exist is no match, and is logged. */
	assert_int_equal(
	    check(p, "bob", missing_first, 2, &v, err, sizeof(err)),
	    DIR_V_MEMBER);
	assert_int_equal(v.group_index, 1);
	assert_int_equal(v.round_trips, 3);
	assert_has(log_text, "directory_group_missing");
	assert_has(log_text, "cn=no-such-group");
	dir_pool_close(p);
}

/* The active check as a configured filter costs one more round trip. */
static void
test_active_filter(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *g = ALLOWED;
	char err[1024];

	(void)state;
	c.active = DIR_ACTIVE_FILTER;
	c.active_filter = "(!(pwdAccountLockedTime=*))";
	p = open_pool(&c);
	assert_int_equal(check(p, "alice", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_MEMBER);
	assert_int_equal(v.round_trips, 2);
	assert_int_equal(check(p, "mallory", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_INACTIVE);
	assert_has(err, "directory.active_filter");
	dir_pool_close(p);

	/* With no active check, mallory's lock is not looked at. */
	c.active = DIR_ACTIVE_NONE;
	c.active_filter = NULL;
	p = open_pool(&c);
	assert_int_equal(check(p, "mallory", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_MEMBER);
	dir_pool_close(p);
}

static void
test_roles(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool *p;
	struct dir_verdict v;
	char err[1024];

	(void)state;
	p = open_pool(&c);
	assert_int_equal(dir_check_role(p, "alice", 5, DIR_ROLE_HOST, &v, err,
	                                sizeof(err)),
	                 0);
	assert_int_equal(v.result, DIR_V_MEMBER);
	assert_string_equal(v.group_dn, HOSTS);
	assert_int_equal(dir_check_role(p, "bob", 3, DIR_ROLE_HOST, &v, err,
	                                sizeof(err)),
	                 0);
	assert_int_equal(v.result, DIR_V_NOT_MEMBER);
	assert_int_equal(dir_check_role(p, "carol", 5, DIR_ROLE_COMPLIANCE, &v,
	                                err, sizeof(err)),
	                 0);
	assert_int_equal(v.result, DIR_V_MEMBER);
	/* No admin group configured: nobody is an admin. */
	assert_int_equal(dir_check_role(p, "trent", 5, DIR_ROLE_ADMIN, &v, err,
	                                sizeof(err)),
	                 DIR_EINVAL);
	assert_int_equal(v.result, DIR_V_NOT_MEMBER);
	assert_has(err, "directory.admin_group");
	dir_pool_close(p);
}

/* The same check over ldaps:// (verified certificate). */
static void
test_check_over_ldaps(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool *p;

	(void)state;
	c.uris = th_env("RG_TEST_LDAPS_URI");
	c.tls = DIR_TLS_LDAPS;
	c.ca_file = th_env("RG_TEST_LDAP_CA_FILE");
	p = open_pool(&c);
	expect(p, "alice", ALLOWED, DIR_V_MEMBER);
	expect(p, "dave", ALLOWED, DIR_V_NOT_MEMBER);
	expect(p, "mallory", ALLOWED, DIR_V_INACTIVE);
	dir_pool_close(p);
}

/*
 * The AD settings against a server that is not AD fail closed: slapd has
 * no userAccountControl (the active check cannot be made: unavailable)
 * and no in-chain matching rule (nobody is a member).
 */
static void
test_ad_settings_fail_closed_on_openldap(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *g = ALLOWED;
	char err[1024];
	int r;

	(void)state;
	c.active = DIR_ACTIVE_AD;
	p = open_pool(&c);
	r = dir_check_member(p, "alice", 5, &g, 1, &v, err, sizeof(err));
	assert_int_equal(r, DIR_EINVAL);
	assert_int_equal(v.result, DIR_V_UNAVAILABLE);
	assert_has(err, "userAccountControl");
	dir_pool_close(p);

	c.active = DIR_ACTIVE_OPENLDAP;
	c.membership = DIR_MEMBERSHIP_AD_CHAIN;
	p = open_pool(&c);
	r = dir_check_member(p, "alice", 5, &g, 1, &v, err, sizeof(err));
	print_message("    ad_chain on slapd: %d %s (%s)\n", r,
	              dir_verdict_name(v.result), err);
	assert_int_equal(r, 0);
	assert_int_equal(v.result, DIR_V_NOT_MEMBER);
	assert_int_equal(v.round_trips, 2);
	dir_pool_close(p);
}

/* ---- two entries for one identity ---- */

#define DUP_DN "cn=bob-twin,ou=people," BASE

static int
dup_teardown(void **state)
{
	(void)state;
	ldapdelete_quiet("'" DUP_DN "'");
	return 0;
}

static void
test_ambiguous(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *g = ALLOWED;
	char err[1024];

	(void)state;
	log_reset();
	p = open_pool(&c);
	ldapmodify_ok("dn: " DUP_DN "\nchangetype: add\n"
	              "objectClass: inetOrgPerson\ncn: bob-twin\nsn: Twin\n"
	              "uid: bob\nmail: bob@example.com\n");
	assert_int_equal(check(p, "bob", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_AMBIGUOUS);
	assert_string_equal(v.entry_dn, "");
	assert_string_equal(v.group_dn, "");
	assert_has(err, "more than one");
	assert_has(err, DN("bob"));
	assert_has(err, DUP_DN);
	assert_has(log_text, "directory_ambiguous");
	assert_no_secret(log_text);

	/* The same through a mail filter. */
	dir_pool_close(p);
	c.user_filter = "(&(objectClass=inetOrgPerson)(mail={identity}))";
	p = open_pool(&c);
	assert_int_equal(
	    check(p, "bob@example.com", &g, 1, &v, err, sizeof(err)),
	    DIR_V_AMBIGUOUS);
	assert_int_equal(
	    check(p, "alice@example.com", &g, 1, &v, err, sizeof(err)),
	    DIR_V_MEMBER);

	ldapdelete_quiet("'" DUP_DN "'");
	assert_int_equal(
	    check(p, "bob@example.com", &g, 1, &v, err, sizeof(err)),
	    DIR_V_MEMBER);
	dir_pool_close(p);
}

/* ---- live revocation: the very next call sees the change ---- */

static const char remove_bob[] =
    "dn: " ALLOWED "\nchangetype: modify\ndelete: member\nmember: " DN(
        "bob") "\n";
static const char readd_bob[] =
    "dn: " ALLOWED "\nchangetype: modify\nadd: member\nmember: " DN(
        "bob") "\n";
static const char lock_bob[] =
    "dn: " DN("bob") "\nchangetype: modify\nadd: pwdAccountLockedTime\n"
                     "pwdAccountLockedTime: 000001010000Z\n";
static const char unlock_bob[] =
    "dn: " DN("bob") "\nchangetype: modify\ndelete: pwdAccountLockedTime\n";

static int
bob_teardown(void **state)
{
	(void)state;
	ldapmodify_undo(unlock_bob);
	ldapmodify_undo(readd_bob);
	return 0;
}

static void
live_revocation(enum dir_membership m)
{
	struct dir_config c = cfg_check(m);
	struct dir_pool *p;

	p = open_pool(&c);
	expect(p, "bob", ALLOWED, DIR_V_MEMBER);
	ldapmodify_ok(remove_bob);
	expect(p, "bob", ALLOWED, DIR_V_NOT_MEMBER);
	ldapmodify_ok(readd_bob);
	expect(p, "bob", ALLOWED, DIR_V_MEMBER);
	ldapmodify_ok(lock_bob);
	expect(p, "bob", ALLOWED, DIR_V_INACTIVE);
	ldapmodify_ok(unlock_bob);
	expect(p, "bob", ALLOWED, DIR_V_MEMBER);
	dir_pool_close(p);
}

static void
test_live_revocation_memberof(void **state)
{
	(void)state;
	live_revocation(DIR_MEMBERSHIP_MEMBEROF);
}

static void
test_live_revocation_compare(void **state)
{
	(void)state;
	live_revocation(DIR_MEMBERSHIP_MEMBER);
}

static void
test_live_revocation_nested(void **state)
{
	(void)state;
	live_revocation(DIR_MEMBERSHIP_NESTED);
}

/* ---- nested groups, client-side ---- */

#define INNER "cn=rg-nest-inner," GROUPS
#define MID "cn=rg-nest-mid," GROUPS
#define OUTER "cn=rg-nest-outer," GROUPS
#define CYC_A "cn=rg-cycle-a," GROUPS
#define CYC_B "cn=rg-cycle-b," GROUPS

static int
nest_teardown(void **state)
{
	(void)state;
	ldapdelete_quiet("'" OUTER "' '" MID "' '" INNER "' '" CYC_A
	                 "' '" CYC_B "'");
	return 0;
}

static void
add_group(const char *dn, const char *cn, const char *member)
{
	char ldif[1024];

	snprintf(ldif, sizeof(ldif),
	         "dn: %s\nchangetype: add\nobjectClass: groupOfNames\n"
	         "cn: %s\nmember: %s\n",
	         dn, cn, member);
	ldapmodify_ok(ldif);
}

static void
test_nested_two_levels(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_NESTED);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *g = OUTER;
	const char *both[] = {OUTER, MID};
	char err[1024];

	(void)state;
	nest_teardown(NULL);
	/* dave -> inner -> mid -> outer: outer is two levels above the
	 * group that holds dave. */
	add_group(INNER, "rg-nest-inner", DN("dave"));
	add_group(MID, "rg-nest-mid", INNER);
	add_group(OUTER, "rg-nest-outer", MID);

	p = open_pool(&c);
	assert_int_equal(check(p, "dave", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_MEMBER);
	assert_string_equal(v.group_dn, OUTER);
	assert_int_equal(v.round_trips, 4); /* lookup + 3 levels */
	print_message("    nested member in %lld us, %d round trips\n",
	              (long long)v.elapsed_us, v.round_trips);
	/* The nearest allowed group wins the walk: mid, one level up. */
	assert_int_equal(check(p, "dave", both, 2, &v, err, sizeof(err)),
	                 DIR_V_MEMBER);
	assert_string_equal(v.group_dn, MID);
	assert_int_equal(v.round_trips, 3);
	/* Direct members still count. */
	expect(p, "alice", ALLOWED, DIR_V_MEMBER);
	expect(p, "bob", OUTER, DIR_V_NOT_MEMBER);
	dir_pool_close(p);

	/* The memberOf strategy sees direct groups only. */
	c.membership = DIR_MEMBERSHIP_MEMBEROF;
	p = open_pool(&c);
	expect(p, "dave", OUTER, DIR_V_NOT_MEMBER);
	expect(p, "dave", INNER, DIR_V_MEMBER);
	dir_pool_close(p);

	/* Depth 2 stops below outer, and says so. */
	c.membership = DIR_MEMBERSHIP_NESTED;
	c.nest_depth = 2;
	p = open_pool(&c);
	assert_int_equal(check(p, "dave", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_NOT_MEMBER);
	assert_has(err, "nest_depth");
	assert_int_equal(v.round_trips, 3);
	dir_pool_close(p);
}

static void
test_nested_cycle(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_NESTED);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *g = ALLOWED;
	char err[1024];

	(void)state;
	nest_teardown(NULL);
	/* a holds dave and b; b holds a. */
	add_group(CYC_A, "rg-cycle-a", DN("dave"));
	add_group(CYC_B, "rg-cycle-b", CYC_A);
	ldapmodify_ok("dn: " CYC_A "\nchangetype: modify\nadd: member\n"
	              "member: " CYC_B "\n");

	c.nest_depth = 16;
	p = open_pool(&c);
	assert_int_equal(check(p, "dave", &g, 1, &v, err, sizeof(err)),
	                 DIR_V_NOT_MEMBER);
	/* lookup, {a}, {b}, then a again is skipped: nothing new. */
	assert_true(v.round_trips <= 4);
	assert_null(strstr(err, "nest_depth"));
	expect(p, "dave", CYC_B, DIR_V_MEMBER);
	expect(p, "dave", CYC_A, DIR_V_MEMBER);
	dir_pool_close(p);
}

/* ---- identities that try to be filters ---- */

static void
test_injection(void **state)
{
	static const struct {
		const char *id;
		size_t len;
	} ids[] = {
	    {"*", 1},
	    {"*)(uid=*", 8},
	    {"admin)(|(uid=*", 14},
	    {"alice)(uid=*", 12},
	    {"al*", 3},
	    {"*alice*", 7},
	    {"alice\0", 6},
	    {"\0alice", 6},
	    {"ali\0ce", 6},
	    {"\\2a", 3},
	    {"\\", 1},
	    {"alice)", 6},
	    {"(alice", 6},
	    {"\xff\xfe", 2},
	    {"alic\xc3", 5},
	    {"\xc3\x28", 2},
	    {"alice\n", 6},
	    {"{identity}", 10},
	};
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *g = ALLOWED;
	char err[1024], *big;
	size_t i, k;
	int r;

	(void)state;
	for (k = 0; k < 2; k++) {
		if (k == 1)
			c.user_filter = "(|(uid={identity})(mail={identity}))";
		p = open_pool(&c);
		for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
			r = dir_check_member(p, ids[i].id, ids[i].len, &g, 1,
			                     &v, err, sizeof(err));
			if (r != 0 || v.result != DIR_V_NOT_FOUND)
				fail_msg("identity #%zu: %d %s (%s)", i, r,
				         dir_verdict_name(v.result), err);
			assert_string_equal(v.entry_dn, "");
		}
		/* At the limit: looked up, matches nothing. */
		big = malloc(10 * 1024);
		assert_non_null(big);
		memset(big, '*', 10 * 1024);
		r = dir_check_member(p, big, DIR_MAX_IDENTITY_LEN, &g, 1, &v,
		                     err, sizeof(err));
		if (r != 0 || v.result != DIR_V_NOT_FOUND)
			fail_msg("1 KB of '*': %d %s (%s)", r,
			         dir_verdict_name(v.result), err);
		/* 10 KB: refused before any lookup, still a denial. */
		memcpy(big, "alice)(uid=", 11);
		r = dir_check_member(p, big, 10 * 1024, &g, 1, &v, err,
		                     sizeof(err));
		assert_int_equal(r, DIR_EINVAL);
		assert_int_equal(v.result, DIR_V_NOT_FOUND);
		assert_int_equal(v.round_trips, 0);
		assert_has(err, "too long");
		r = dir_check_member(p, "", 0, &g, 1, &v, err, sizeof(err));
		assert_int_equal(r, DIR_EINVAL);
		assert_int_equal(v.result, DIR_V_NOT_FOUND);
		free(big);
		/* And the real ones still work on the same pool. */
		expect(p, "alice", ALLOWED, DIR_V_MEMBER);
		dir_pool_close(p);
	}
}

/* Bad input from the caller: denied, never a crash. */
static void
test_bad_arguments(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *bad[] = {"not a dn"};
	const char *null_group[] = {NULL};
	char err[1024];

	(void)state;
	p = open_pool(&c);
	assert_int_equal(dir_check_member(p, "alice", 5, bad, 1, &v, err,
	                                  sizeof(err)),
	                 DIR_EINVAL);
	assert_int_equal(v.result, DIR_V_UNAVAILABLE);
	assert_has(err, "not a valid DN");
	assert_int_equal(dir_check_member(p, "alice", 5, null_group, 1, &v,
	                                  err, sizeof(err)),
	                 DIR_EINVAL);
	assert_int_equal(
	    dir_check_member(p, "alice", 5, NULL, 0, &v, err, sizeof(err)),
	    DIR_EINVAL);
	assert_int_equal(v.result, DIR_V_UNAVAILABLE);
	assert_int_equal(dir_check_member(NULL, "alice", 5, bad, 1, &v, err,
	                                  sizeof(err)),
	                 DIR_EINVAL);
	dir_pool_close(p);

	/* A people base that does not exist is a setup error, not
	 * "not found". */
	c.people_base = "ou=nowhere," BASE;
	p = open_pool(&c);
	assert_int_equal(dir_check_member(p, "alice", 5,
	                                  (const char *[]){ALLOWED}, 1, &v,
	                                  err, sizeof(err)),
	                 DIR_EINVAL);
	assert_int_equal(v.result, DIR_V_UNAVAILABLE);
	assert_has(err, "does not exist");
	dir_pool_close(p);
}

/* ---- the directory goes away ---- */

static pid_t frozen_pid;

static pid_t
slapd_pid(void)
{
	char path[1024], buf[32], *end = NULL;
	FILE *f;
	size_t n;
	long pid;

	snprintf(path, sizeof(path), "%s/slapd.pid",
	         th_env("RG_TEST_LDAP_DIR"));
	if ((f = fopen(path, "r")) == NULL)
		fail_msg("cannot read %s", path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	assert_true(errno == 0 && end != buf && pid > 1);
	return (pid_t)pid;
}

static int
thaw_teardown(void **state)
{
	(void)state;
	if (frozen_pid > 0) {
		kill(frozen_pid, SIGCONT);
		frozen_pid = 0;
	}
	return 0;
}

/*
 * dir_check_active: the invitee check -- found, unique and active, no
 * group asked -- in one round trip, with every strategy's settings; a
 * stopped directory is unavailable, never "active".
 */
static void
test_check_active(void **state)
{
	static const int strategies[] = {DIR_MEMBERSHIP_MEMBEROF,
	                                 DIR_MEMBERSHIP_MEMBER,
	                                 DIR_MEMBERSHIP_NESTED};
	struct dir_config c;
	struct dir_pool *p;
	struct dir_verdict v;
	char err[1024];
	int r;

	(void)state;
	for (size_t i = 0; i < sizeof(strategies) / sizeof(strategies[0]);
	     i++) {
		c = cfg_check(strategies[i]);
		p = open_pool(&c);
		/* dave is in no meeting group: active is all that counts. */
		r = dir_check_active(p, "dave", 4, &v, err, sizeof(err));
		assert_int_equal(r, 0);
		assert_int_equal(v.result, DIR_V_NOT_MEMBER);
		assert_string_equal(v.entry_dn, DN("dave"));
		assert_string_equal(v.group_dn, "");
		assert_int_equal(v.group_index, -1);
		assert_int_equal(v.round_trips, 1);
		assert_has(err, "is active");
		assert_no_secret(err);
		/* alice is in groups, still never "member" here. */
		r = dir_check_active(p, "alice", 5, &v, err, sizeof(err));
		assert_int_equal(r, 0);
		assert_int_equal(v.result, DIR_V_NOT_MEMBER);
		assert_int_equal(v.round_trips, 1);
		r = dir_check_active(p, "mallory", 7, &v, err, sizeof(err));
		assert_int_equal(r, 0);
		assert_int_equal(v.result, DIR_V_INACTIVE);
		assert_has(err, "pwdAccountLockedTime");
		r = dir_check_active(p, "nobody", 6, &v, err, sizeof(err));
		assert_int_equal(r, 0);
		assert_int_equal(v.result, DIR_V_NOT_FOUND);
		/* Escaped like every lookup: a wildcard finds nobody. */
		r = dir_check_active(p, "*", 1, &v, err, sizeof(err));
		assert_int_equal(r, 0);
		assert_int_equal(v.result, DIR_V_NOT_FOUND);
		r = dir_check_active(p, "", 0, &v, err, sizeof(err));
		assert_int_equal(r, DIR_EINVAL);
		assert_int_equal(v.result, DIR_V_NOT_FOUND);
		dir_pool_close(p);
	}
	/* The groupless check must not loosen dir_check_member: zero
	 * groups there is still a setup error. */
	c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	p = open_pool(&c);
	assert_int_equal(
	    dir_check_member(p, "dave", 4, NULL, 0, &v, err, sizeof(err)),
	    DIR_EINVAL);
	assert_int_equal(v.result, DIR_V_UNAVAILABLE);
	/* Directory down: unavailable (deny), and back after a restart. */
	th_ldap_stop();
	r = dir_check_active(p, "dave", 4, &v, err, sizeof(err));
	assert_true(r == DIR_EUNAVAIL || r == DIR_ETIMEOUT);
	assert_int_equal(v.result, DIR_V_UNAVAILABLE);
	assert_string_equal(v.entry_dn, "");
	th_ldap_start();
	r = dir_check_active(p, "dave", 4, &v, err, sizeof(err));
	if (r != 0 || v.result != DIR_V_NOT_MEMBER)
		fail_msg("after restart: %d %s (%s)", r,
		         dir_verdict_name(v.result), err);
	dir_pool_close(p);
}

static void
test_stopped_and_restarted(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool *p;
	struct dir_verdict v;
	const char *g = ALLOWED;
	char err[1024];
	int64_t t0, took;
	int r;

	(void)state;
	log_reset();
	p = open_pool(&c);
	expect(p, "alice", ALLOWED, DIR_V_MEMBER);
	th_ldap_stop();
	t0 = now_ms();
	r = dir_check_member(p, "alice", 5, &g, 1, &v, err, sizeof(err));
	took = now_ms() - t0;
	print_message("    stopped: %d %s in %lld ms (%s)\n", r,
	              dir_verdict_name(v.result), (long long)took, err);
	assert_int_equal(r, DIR_EUNAVAIL);
	assert_int_equal(v.result, DIR_V_UNAVAILABLE);
	assert_string_equal(v.entry_dn, "");
	/* Within the configured bounds (a refused connect is fast). */
	assert_true(took <= NET_MS + OP_MS);
	assert_has(log_text, "directory_check_failed");
	assert_no_secret(log_text);

	th_ldap_start();
	/* The next call after the restart succeeds, same pool. */
	r = dir_check_member(p, "alice", 5, &g, 1, &v, err, sizeof(err));
	if (r != 0 || v.result != DIR_V_MEMBER)
		fail_msg("first check after restart: %d %s (%s)", r,
		         dir_verdict_name(v.result), err);
	dir_pool_close(p);
}

static void
test_frozen(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBER);
	struct dir_pool *p, *p2;
	struct dir_verdict v, v2;
	const char *g = ALLOWED;
	char err[1024], err2[1024];
	int64_t t0, took, took2;
	int r, r2;

	(void)state;
	p = open_pool(&c);
	c.check_timeout_ms = 400;
	p2 = open_pool(&c);
	expect(p, "alice", ALLOWED, DIR_V_MEMBER);
	expect(p2, "alice", ALLOWED, DIR_V_MEMBER);

	/* Nothing may assert between freeze and thaw. */
	frozen_pid = slapd_pid();
	assert_int_equal(kill(frozen_pid, SIGSTOP), 0);
	t0 = now_ms();
	r = dir_check_member(p, "alice", 5, &g, 1, &v, err, sizeof(err));
	took = now_ms() - t0;
	t0 = now_ms();
	r2 = dir_check_member(p2, "alice", 5, &g, 1, &v2, err2, sizeof(err2));
	took2 = now_ms() - t0;
	thaw_teardown(NULL);

	print_message("    frozen: %d %s in %lld ms (%s)\n", r,
	              dir_verdict_name(v.result), (long long)took, err);
	print_message("    frozen, check_timeout 400: %d in %lld ms\n", r2,
	              (long long)took2);
	assert_int_equal(r, DIR_ETIMEOUT);
	assert_int_equal(v.result, DIR_V_UNAVAILABLE);
	assert_true(took >= OP_MS - 50 && took <= OP_MS + 500);
	assert_int_equal(r2, DIR_ETIMEOUT);
	assert_int_equal(v2.result, DIR_V_UNAVAILABLE);
	assert_true(took2 >= 350 && took2 <= 400 + 500);
	assert_has(err2, "directory.check_timeout_ms");

	/* Thawed: the same pools answer again. */
	expect(p, "alice", ALLOWED, DIR_V_MEMBER);
	expect(p2, "alice", ALLOWED, DIR_V_MEMBER);
	dir_pool_close(p);
	dir_pool_close(p2);
}

/* ---- stats for /metrics, and threads ---- */

struct worker {
	struct dir_pool *pool;
	int bad;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	const char *g = ALLOWED;
	struct dir_verdict v;
	char err[512];
	int i;

	for (i = 0; i < 50; i++) {
		if (dir_check_member(w->pool, "user12", 6, &g, 1, &v, err,
		                     sizeof(err)) != 0 ||
		    v.result != DIR_V_MEMBER)
			w->bad++;
	}
	return NULL;
}

static void
test_threads_and_stats(void **state)
{
	struct dir_config c = cfg_check(DIR_MEMBERSHIP_MEMBEROF);
	struct dir_pool_stats st;
	struct dir_pool *p;
	struct worker w[4];
	pthread_t t[4];
	uint64_t inbuckets = 0;
	int64_t t0, took;
	int i;

	(void)state;
	c.acquire_timeout_ms = 5000;
	p = open_pool(&c);
	t0 = now_ms();
	for (i = 0; i < 4; i++) {
		w[i].pool = p;
		w[i].bad = 0;
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]),
		                 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].bad, 0);
	}
	took = now_ms() - t0;
	print_message("    200 checks on 4 threads, 2 connections: %lld ms "
	              "(ASan build)\n",
	              (long long)took);
	expect(p, "dave", ALLOWED, DIR_V_NOT_MEMBER);
	expect(p, "nobody", ALLOWED, DIR_V_NOT_FOUND);
	dir_pool_get_stats(p, &st);
	assert_int_equal((int)st.checks[DIR_V_MEMBER], 200);
	assert_int_equal((int)st.checks[DIR_V_NOT_MEMBER], 1);
	assert_int_equal((int)st.checks[DIR_V_NOT_FOUND], 1);
	assert_int_equal((int)st.checks[DIR_V_UNAVAILABLE], 0);
	assert_int_equal((int)st.round_trips, 202);
	for (i = 0; i <= DIR_LATENCY_BUCKETS; i++)
		inbuckets += st.latency_buckets[i];
	assert_int_equal((int)inbuckets, 202);
	assert_true(st.latency_sum_us > 0);
	assert_true(st.connected <= 2);
	dir_pool_close(p);
}

/* ---- through roomgate: the settings and the metrics ---- */

static void
test_serve_settings_and_metrics(void **state)
{
	const char *cfg;
	const char *argv[5];
	struct th_server srv;
	struct th_http *r;
	char out[8192], url[128];

	(void)state;
	/* A lookup filter without {identity} stops the start. */
	cfg = th_config("dircheck-bad.ini",
	                "[directory]\nuser_filter = (uid=alice)\n");
	argv[0] = th_env("RG_TEST_BIN");
	argv[1] = "-c";
	argv[2] = cfg;
	argv[3] = "serve";
	argv[4] = NULL;
	assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)), 1);
	assert_has(out, "directory.user_filter");
	assert_has(out, "{identity}");
	assert_no_secret(out);

	cfg = th_config("dircheck-good.ini",
	                "[directory]\npeople_base = " PEOPLE "\n"
	                "group_base = " GROUPS "\nmembership = nested\n"
	                "host_group = " HOSTS "\n");
	th_server_start(&srv, cfg, th_free_port());
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", srv.port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	assert_has(r->body,
	           "roomgate_directory_checks_total{verdict=\"member\"} 0");
	assert_has(r->body, "roomgate_directory_checks_total{verdict="
	                    "\"unavailable\"} 0");
	assert_has(r->body,
	           "roomgate_directory_check_errors_total{error=\"timeout\"}");
	assert_has(r->body, "roomgate_directory_round_trips_total 0");
	assert_has(r->body,
	           "roomgate_directory_check_duration_seconds_count 0");
	free(r);
	th_server_stop(&srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verdicts_memberof),
	    cmocka_unit_test(test_verdicts_member_compare),
	    cmocka_unit_test(test_active_filter),
	    cmocka_unit_test(test_roles),
	    cmocka_unit_test(test_check_over_ldaps),
	    cmocka_unit_test(test_ad_settings_fail_closed_on_openldap),
	    cmocka_unit_test_teardown(test_ambiguous, dup_teardown),
	    cmocka_unit_test_teardown(test_live_revocation_memberof,
	                              bob_teardown),
	    cmocka_unit_test_teardown(test_live_revocation_compare,
	                              bob_teardown),
	    cmocka_unit_test_teardown(test_live_revocation_nested,
	                              bob_teardown),
	    cmocka_unit_test_teardown(test_nested_two_levels, nest_teardown),
	    cmocka_unit_test_teardown(test_nested_cycle, nest_teardown),
	    cmocka_unit_test(test_injection),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_threads_and_stats),
	    cmocka_unit_test(test_serve_settings_and_metrics),
	    cmocka_unit_test(test_check_active),
	    cmocka_unit_test(test_stopped_and_restarted),
	    cmocka_unit_test_teardown(test_frozen, thaw_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
