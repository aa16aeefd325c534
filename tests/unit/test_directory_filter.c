/*
 * Unit tests for directory/filter.c (no server): RFC 4515 escaping of the
 * identity in the lookup filter, the active presets and the AD filter
 * strings, the group search filters, DN normalization, and the checks of
 * the new settings in dir_pool_open (which fail before anything
 * connects).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "directory/dir_int.h"
#include "directory/directory.h"
#include "server/server.h"

static void
expand_is(const char *tmpl, const char *value, size_t len, const char *want)
{
	char err[256], *out = NULL;
	int r = dir_filter_expand(tmpl, value, len, &out, err, sizeof(err));

	if (r != 0)
		fail_msg("expand '%s': %d (%s)", tmpl, r, err);
	assert_non_null(out);
	assert_string_equal(out, want);
	free(out);
}

static void
test_expand_escapes_every_special(void **state)
{
	(void)state;
	expand_is("(uid={identity})", "alice", 5, "(uid=alice)");
	expand_is("(uid={identity})", "*", 1, "(uid=\\2A)");
	expand_is("(uid={identity})", "*)(uid=*", 8,
	          "(uid=\\2A\\29\\28uid=\\2A)");
	expand_is("(uid={identity})", "admin)(|(uid=*", 14,
	          "(uid=admin\\29\\28|\\28uid=\\2A)");
	expand_is("(uid={identity})", "a\\b", 3, "(uid=a\\5Cb)");
	/* NUL bytes stay in the value, escaped, never end it early. */
	expand_is("(uid={identity})", "alice\0x", 7, "(uid=alice\\00x)");
	/* Bytes that are no UTF-8 are escaped, not passed raw. */
	expand_is("(uid={identity})", "\xff\xc3", 2, "(uid=\\FF\\C3)");
	/* Every placeholder; the value's own "{identity}" is not expanded
	 * again. */
	expand_is("(|(uid={identity})(mail={identity}))", "{identity}", 10,
	          "(|(uid={identity})(mail={identity}))");
	expand_is("(|(uid={identity})(mail={identity}))", "b*", 2,
	          "(|(uid=b\\2A)(mail=b\\2A))");
}

/*
 * Any bytes at all: the expanded filter keeps the template's structure
 * (one item, balanced), and between "(uid=" and the closing ")" only
 * escapes and harmless bytes appear.
 */
static void
test_expand_random_bytes(void **state)
{
	unsigned char id[64];
	char err[256], *out = NULL;
	unsigned seed = 4711;
	size_t i, len, k, n;
	int round;

	(void)state;
	for (round = 0; round < 20000; round++) {
		len = 1 + (size_t)(round % (int)sizeof(id));
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			id[i] = (unsigned char)(seed >> 16);
		}
		assert_int_equal(dir_filter_expand("(uid={identity})",
		                                   (const char *)id, len, &out,
		                                   err, sizeof(err)),
		                 0);
		assert_int_equal(dir_filter_check("f", out, err, sizeof(err)),
		                 0);
		n = strlen(out);
		assert_true(n >= 6 && memcmp(out, "(uid=", 5) == 0);
		for (k = 5; k < n - 1; k++) {
			unsigned char ch = (unsigned char)out[k];

			if (ch == '\\') {
				/* Always two hex digits after. */
				assert_true(k + 2 < n - 1);
				k += 2;
				continue;
			}
			if (ch == '(' || ch == ')' || ch == '*' || ch < 0x20 ||
			    ch >= 0x7f)
				fail_msg("unescaped byte 0x%02x in '%s'", ch,
				         out);
		}
		free(out);
		out = NULL;
	}
}

static void
test_expand_refuses(void **state)
{
	char err[256], *out = (char *)0x1, *big;
	size_t n = DIR_MAX_SEARCH_FILTER;

	(void)state;
	assert_int_equal(dir_filter_expand("(uid=x)", "a", 1, &out, err,
	                                   sizeof(err)),
	                 DIR_EINVAL);
	assert_null(out);
	assert_non_null(strstr(err, "{identity}"));
	/* A value whose escaped form outgrows the limit. */
	big = malloc(n);
	assert_non_null(big);
	memset(big, '*', n);
	assert_int_equal(dir_filter_expand("(uid={identity})", big, n, &out,
	                                   err, sizeof(err)),
	                 DIR_EINVAL);
	assert_null(out);
	assert_non_null(strstr(err, "longer than"));
	free(big);
}

static void
test_active_presets(void **state)
{
	const char *ad = dir_active_preset_filter(DIR_ACTIVE_AD);

	(void)state;
	assert_string_equal(dir_active_preset_filter(DIR_ACTIVE_OPENLDAP),
	                    "(!(pwdAccountLockedTime=*))");
	/* Bit 2 by the bitwise-AND rule; never the "=514" shortcut. */
	assert_string_equal(
	    ad, "(!(userAccountControl:1.2.840.113556.1.4.803:=2))");
	assert_null(strstr(ad, "514"));
	assert_string_equal(dir_active_preset_filter(DIR_ACTIVE_FREEIPA),
	                    "(!(nsAccountLock=TRUE))");
	assert_null(dir_active_preset_filter(DIR_ACTIVE_NONE));
	assert_null(dir_active_preset_filter(DIR_ACTIVE_FILTER));
}

/* userAccountControl: bit 2 decides, whatever else is set. */
static void
test_ad_user_account_control(void **state)
{
	static const struct {
		const char *v;
		int disabled;
	} ok[] = {
	    {"512", 0},	   /* NORMAL_ACCOUNT */
	    {"514", 1},	   /* NORMAL_ACCOUNT | ACCOUNTDISABLE */
	    {"66048", 0},  /* + DONT_EXPIRE_PASSWORD */
	    {"66050", 1},  /* the same, disabled: "=514" would miss it */
	    {"546", 1},	   /* + PASSWD_NOTREQD, disabled */
	    {"544", 0},	   /* + PASSWD_NOTREQD */
	    {"4096", 0},   /* WORKSTATION_TRUST_ACCOUNT */
	    {"2", 1},
	    {"16", 0},	   /* LOCKOUT alone is not ACCOUNTDISABLE */
	    {"-2147483646", 1}, /* 0x80000002 printed signed */
	    {"4294967295", 1},
	};
	static const char *const bad[] = {"", "abc", "512x", " 512", "1e3",
	                                  "4294967296", "-2147483649",
	                                  "99999999999999999999999"};
	long long uac;
	int disabled;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (dir_uac_disabled(ok[i].v, strlen(ok[i].v), &uac,
		                     &disabled) != 0)
			fail_msg("'%s' refused", ok[i].v);
		if (disabled != ok[i].disabled)
			fail_msg("'%s': disabled %d", ok[i].v, disabled);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dir_uac_disabled(bad[i], strlen(bad[i]), &uac,
		                     &disabled) != DIR_EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_int_equal(disabled, 1);
	}
	/* A NUL inside the value is no number either. */
	assert_int_equal(dir_uac_disabled("51\0", 3, &uac, &disabled),
	                 DIR_EINVAL);
	assert_int_equal(dir_uac_disabled(NULL, 0, &uac, &disabled),
	                 DIR_EINVAL);
}

static void
test_freeipa_lock(void **state)
{
	(void)state;
	assert_true(dir_ipa_locked("TRUE", 4));
	assert_true(dir_ipa_locked("true", 4));
	assert_false(dir_ipa_locked("FALSE", 5));
	assert_false(dir_ipa_locked("TRUEX", 5));
	assert_false(dir_ipa_locked("", 0));
	assert_false(dir_ipa_locked(NULL, 0));
}

static void
test_ad_chain_filter(void **state)
{
	char err[256], *out = NULL;

	(void)state;
	assert_int_equal(dir_filter_ad_chain("CN=Meeting Allowed,OU=Groups,"
	                                     "DC=corp,DC=example",
	                                     &out, err, sizeof(err)),
	                 0);
	assert_string_equal(out, "(memberOf:1.2.840.113556.1.4.1941:="
	                         "CN=Meeting Allowed,OU=Groups,DC=corp,"
	                         "DC=example)");
	free(out);
	/* DNs may hold filter specials: escaped like any value. */
	assert_int_equal(dir_filter_ad_chain("CN=Sales (EMEA)*,DC=corp", &out,
	                                     err, sizeof(err)),
	                 0);
	assert_string_equal(out, "(memberOf:1.2.840.113556.1.4.1941:="
	                         "CN=Sales \\28EMEA\\29\\2A,DC=corp)");
	free(out);
}

static void
test_eq_any(void **state)
{
	const char *one[] = {"uid=a,dc=x"};
	const char *two[] = {"uid=a,dc=x", "cn=Smith\\, J (HR),dc=x"};
	char err[256], *out = NULL;

	(void)state;
	assert_int_equal(dir_filter_eq_any("member", one, 1, &out, err,
	                                   sizeof(err)),
	                 0);
	assert_string_equal(out, "(member=uid=a,dc=x)");
	free(out);
	assert_int_equal(dir_filter_eq_any("uniqueMember", two, 2, &out, err,
	                                   sizeof(err)),
	                 0);
	assert_string_equal(out, "(|(uniqueMember=uid=a,dc=x)"
	                         "(uniqueMember=cn=Smith\\5C, J \\28HR\\29,"
	                         "dc=x))");
	free(out);
	assert_int_equal(dir_filter_eq_any("member", one, 0, &out, err,
	                                   sizeof(err)),
	                 DIR_EINVAL);
	assert_null(out);
}

static void
test_filter_check(void **state)
{
	static const char *const good[] = {
	    "(uid={identity})",
	    "(&(objectClass=person)(uid={identity}))",
	    "(!(userAccountControl:1.2.840.113556.1.4.803:=2))",
	    "(cn=a\\28b\\29)",
	};
	static const char *const bad[] = {
	    "uid={identity}", "(uid={identity}",  "(uid={identity}))",
	    "(a)(b)",	      "((uid={identity})", ")(",
	    "(uid=\x01)",
	};
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (dir_filter_check("f", good[i], err, sizeof(err)) != 0)
			fail_msg("'%s' refused: %s", good[i], err);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (dir_filter_check("f", bad[i], err, sizeof(err)) !=
		    DIR_EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(dir_filter_check("f", "", err, sizeof(err)),
	                 DIR_EINVAL);
	assert_int_equal(dir_filter_check("f", NULL, err, sizeof(err)),
	                 DIR_EINVAL);
}

static void
test_attr_check(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(dir_attr_check("a", "member", err, sizeof(err)), 0);
	assert_int_equal(dir_attr_check("a", "uniqueMember", err, sizeof(err)),
	                 0);
	assert_int_equal(dir_attr_check("a", "2.5.4.31", err, sizeof(err)), 0);
	assert_int_equal(dir_attr_check("a", "member)(x", err, sizeof(err)),
	                 DIR_EINVAL);
	assert_int_equal(dir_attr_check("a", "", err, sizeof(err)),
	                 DIR_EINVAL);
	assert_int_equal(dir_attr_check("a", "2..5", err, sizeof(err)),
	                 DIR_EINVAL);
	assert_int_equal(dir_attr_check("a", "-x", err, sizeof(err)),
	                 DIR_EINVAL);
}

static void
norm_is(const char *dn, const char *want)
{
	char *out = NULL;

	if (dir_dn_norm(dn, &out) != 0)
		fail_msg("'%s' not normalized", dn);
	assert_string_equal(out, want);
	free(out);
}

static void
test_dn_norm(void **state)
{
	char *out = (char *)0x1, big[DIR_DN_MAX + 8];

	(void)state;
	norm_is("cn=meeting-allowed,ou=groups,dc=example,dc=com",
	        "cn=meeting-allowed,ou=groups,dc=example,dc=com");
	norm_is("CN=Meeting-Allowed, OU=Groups,DC=Example,  DC=COM",
	        "cn=meeting-allowed,ou=groups,dc=example,dc=com");
	/* One escape form for one value. */
	norm_is("cn=Smith\\, J,dc=x", "cn=smith\\2c j,dc=x");
	norm_is("cn=Smith\\2C J,dc=x", "cn=smith\\2c j,dc=x");
	assert_int_equal(dir_dn_norm("not a dn", &out), DIR_EINVAL);
	assert_null(out);
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "cn=", 3);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(dir_dn_norm(big, &out), DIR_EINVAL);
}

static void
test_verdict_names(void **state)
{
	(void)state;
	assert_string_equal(dir_verdict_name(DIR_V_MEMBER), "member");
	assert_string_equal(dir_verdict_name(DIR_V_NOT_MEMBER), "not_member");
	assert_string_equal(dir_verdict_name(DIR_V_INACTIVE), "inactive");
	assert_string_equal(dir_verdict_name(DIR_V_NOT_FOUND), "not_found");
	assert_string_equal(dir_verdict_name(DIR_V_AMBIGUOUS), "ambiguous");
	assert_string_equal(dir_verdict_name(DIR_V_UNAVAILABLE),
	                    "unavailable");
	assert_string_equal(dir_verdict_name(42), "unavailable");
}

/* ---- the settings, checked by dir_pool_open (no connection) ---- */

static struct dir_config
good_cfg(void)
{
	struct dir_config c;

	memset(&c, 0, sizeof(c));
	c.uris = "ldap://127.0.0.1:1";
	c.bind_dn = "cn=roomgate,ou=services,dc=example,dc=com";
	c.bind_password = "Unit-Secret-pw-4711";
	c.network_timeout_ms = 1000;
	c.op_timeout_ms = 1000;
	c.pool_size = 1;
	c.acquire_timeout_ms = 100;
	c.base_dn = "dc=example,dc=com";
	return c;
}

static void
expect_open_fails(const struct dir_config *c, const char *needle)
{
	struct dir_pool *p = NULL;
	char err[1024];

	assert_int_equal(dir_pool_open(c, &p, err, sizeof(err)), DIR_EINVAL);
	assert_null(p);
	if (strstr(err, needle) == NULL)
		fail_msg("message '%s' lacks '%s'", err, needle);
	assert_null(strstr(err, "Unit-Secret-pw-4711"));
}

static void
test_check_settings(void **state)
{
	struct dir_config c = good_cfg();
	struct dir_pool *p = NULL;
	char err[1024];

	(void)state;
	/* Defaults everywhere: fine. */
	assert_int_equal(dir_pool_open(&c, &p, err, sizeof(err)), 0);
	assert_int_equal(dir_pool_cfg(p)->nest_depth, DIR_DEFAULT_NEST_DEPTH);
	assert_string_equal(dir_pool_cfg(p)->user_filter,
	                    DIR_DEFAULT_USER_FILTER);
	assert_string_equal(dir_pool_cfg(p)->member_attribute, "member");
	assert_int_equal(dir_pool_cfg(p)->check_timeout_ms, 1000);
	dir_pool_close(p);

	c.user_filter = "(uid=alice)";
	expect_open_fails(&c, "no {identity} placeholder");
	c.user_filter = "uid={identity}";
	expect_open_fails(&c, "directory.user_filter");
	c = good_cfg();
	c.active = DIR_ACTIVE_FILTER;
	expect_open_fails(&c, "directory.active_filter is empty");
	c.active_filter = "(employeeType=staff";
	expect_open_fails(&c, "directory.active_filter");
	c = good_cfg();
	c.active = (enum dir_active)9;
	expect_open_fails(&c, "directory.active");
	c = good_cfg();
	c.membership = (enum dir_membership)9;
	expect_open_fails(&c, "directory.membership");
	c = good_cfg();
	c.nest_depth = 17;
	expect_open_fails(&c, "directory.nest_depth");
	c = good_cfg();
	c.member_attribute = "member)(x";
	expect_open_fails(&c, "directory.member_attribute");
	c = good_cfg();
	c.people_base = "not a dn";
	expect_open_fails(&c, "directory.people_base");
	c = good_cfg();
	c.role_groups[DIR_ROLE_ADMIN] = "admins";
	expect_open_fails(&c, "directory.admin_group");
	c = good_cfg();
	c.check_timeout_ms = -1;
	expect_open_fails(&c, "directory.check_timeout_ms");
}

/* ---- the [directory] section of the INI file ---- */

static int
load_ini(const char *text, char *const *envp, struct gate_config *cfg,
         char *err, size_t errlen)
{
	char path[] = "/tmp/rg-dircfg-XXXXXX";
	int fd = mkstemp(path), r;
	size_t n = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	r = gate_config_load(cfg, path, envp, err, errlen);
	unlink(path);
	return r;
}

static void
test_gate_config_directory(void **state)
{
	char *env[] = {"ROOMGATE_DIRECTORY_NEST_DEPTH=7", NULL};
	char *noenv[] = {NULL};
	struct gate_config cfg;
	char err[1024];

	(void)state;
	/* Defaults, in the enums' order. */
	assert_int_equal(load_ini("", noenv, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.dir_active, DIR_ACTIVE_OPENLDAP);
	assert_int_equal(cfg.dir_membership, DIR_MEMBERSHIP_MEMBEROF);
	assert_string_equal(cfg.dir_user_filter, DIR_DEFAULT_USER_FILTER);
	assert_string_equal(cfg.dir_member_attribute, "member");
	assert_int_equal(cfg.dir_nest_depth, 5);
	assert_int_equal(cfg.dir_check_timeout_ms, 0);
	assert_null(cfg.dir_host_group);
	gate_config_free(&cfg);

	assert_int_equal(
	    load_ini("[directory]\n"
	             "people_base = OU=Users,DC=corp,DC=example\n"
	             "group_base = OU=Groups,DC=corp,DC=example\n"
	             "user_filter = (&(objectClass=user)"
	             "(userPrincipalName={identity}))\n"
	             "active = ad\nmembership = ad_chain\n"
	             "host_group = CN=Hosts,OU=Groups,DC=corp,DC=example\n"
	             "admin_group = CN=Admins,OU=Groups,DC=corp,DC=example\n"
	             "compliance_group = CN=Audit,OU=Groups,DC=corp,"
	             "DC=example\n"
	             "check_timeout_ms = 1500\n",
	             env, &cfg, err, sizeof(err)),
	    0);
	assert_int_equal(cfg.dir_active, DIR_ACTIVE_AD);
	assert_int_equal(cfg.dir_membership, DIR_MEMBERSHIP_AD_CHAIN);
	assert_string_equal(cfg.dir_user_filter,
	                    "(&(objectClass=user)(userPrincipalName="
	                    "{identity}))");
	assert_string_equal(cfg.dir_people_base, "OU=Users,DC=corp,DC=example");
	assert_string_equal(cfg.dir_compliance_group,
	                    "CN=Audit,OU=Groups,DC=corp,DC=example");
	assert_int_equal(cfg.dir_nest_depth, 7); /* from the environment */
	assert_int_equal(cfg.dir_check_timeout_ms, 1500);
	gate_config_free(&cfg);

	assert_int_equal(load_ini("[directory]\nactive = filter\n"
	                          "active_filter = (employeeType=staff)\n"
	                          "membership = nested\n",
	                          noenv, &cfg, err, sizeof(err)),
	                 0);
	assert_int_equal(cfg.dir_active, DIR_ACTIVE_FILTER);
	assert_int_equal(cfg.dir_membership, DIR_MEMBERSHIP_NESTED);
	gate_config_free(&cfg);

	assert_int_equal(load_ini("[directory]\nactive = 514\n", noenv, &cfg,
	                          err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "openldap, ad, freeipa, none, filter"));
	assert_int_equal(load_ini("[directory]\nnest_depth = 0\n", noenv,
	                          &cfg, err, sizeof(err)),
	                 -1);
	assert_int_equal(load_ini("[directory]\nmembership = tokengroups\n",
	                          noenv, &cfg, err, sizeof(err)),
	                 -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_expand_escapes_every_special),
	    cmocka_unit_test(test_expand_random_bytes),
	    cmocka_unit_test(test_expand_refuses),
	    cmocka_unit_test(test_active_presets),
	    cmocka_unit_test(test_ad_user_account_control),
	    cmocka_unit_test(test_freeipa_lock),
	    cmocka_unit_test(test_ad_chain_filter),
	    cmocka_unit_test(test_eq_any),
	    cmocka_unit_test(test_filter_check),
	    cmocka_unit_test(test_attr_check),
	    cmocka_unit_test(test_dn_norm),
	    cmocka_unit_test(test_verdict_names),
	    cmocka_unit_test(test_check_settings),
	    cmocka_unit_test(test_gate_config_directory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
