/*
 * The directory watcher (directory/watch.c) against the harness's real
 * slapd (syncprov): the initial refresh reports each group whole, a
 * member removed with ldapmodify is reported as lost, a lock and a
 * delete are reported, and removals made while slapd restarts (the
 * watcher reconnecting with backoff and resuming from its cookie) are
 * all reported -- none missed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "directory/directory.h"
#include "tests/lib/th.h"

#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char events[64 * 1024];
static size_t events_len;
static int cookies;
static volatile int running = 1;

static int
on_change(void *arg, const struct dir_watch_event *ev)
{
	char line[512];

	(void)arg;
	switch (ev->kind) {
	case DIR_WATCH_LOST:
		snprintf(line, sizeof(line), "lost %s %s\n", ev->identity,
		         ev->group_dn);
		break;
	case DIR_WATCH_DISABLED:
		snprintf(line, sizeof(line), "disabled %s\n", ev->identity);
		break;
	case DIR_WATCH_DELETED:
		snprintf(line, sizeof(line), "deleted %s\n", ev->identity);
		break;
	default:
		snprintf(line, sizeof(line), "members %s %zu\n", ev->group_dn,
		         ev->nmembers);
		break;
	}
	pthread_mutex_lock(&mu);
	if (events_len + strlen(line) < sizeof(events)) {
		memcpy(events + events_len, line, strlen(line) + 1);
		events_len += strlen(line);
	}
	pthread_mutex_unlock(&mu);
	return 0;
}

static void
on_cookie(void *arg, const char *c, size_t len)
{
	(void)arg;
	(void)c;
	assert_true(len > 0);
	pthread_mutex_lock(&mu);
	cookies++;
	pthread_mutex_unlock(&mu);
}

static int
keep_going(void *arg)
{
	(void)arg;
	return running;
}

static int
seen(const char *line)
{
	int r;

	pthread_mutex_lock(&mu);
	r = strstr(events, line) != NULL;
	pthread_mutex_unlock(&mu);
	return r;
}

/* Polls (never a fixed sleep) for up to 15 s. */
static int
wait_seen(const char *line)
{
	for (int i = 0; i < 300; i++) {
		if (seen(line))
			return 1;
		usleep(50 * 1000);
	}
	return 0;
}

static void
ldap_admin(const char *ldif)
{
	const char *path = th_write_file("watch.ldif", ldif);

	if (th_sh("ldapmodify -x -H \"$RG_TEST_LDAP_URI\" -D "
	          "\"$RG_TEST_LDAP_ADMIN_DN\" -w "
	          "\"$RG_TEST_LDAP_ADMIN_PASSWORD\" "
	          "-c -f '%s' >>\"$RG_TEST_TMP/watch.log\" 2>&1",
	          path) != 0)
		fail_msg("ldapmodify failed:\n%s", ldif);
}

static void
member(const char *op, const char *uid)
{
	char ldif[512];

	snprintf(ldif, sizeof(ldif),
	         "dn: " GROUP "\nchangetype: modify\n%s: member\n"
	         "member: uid=%s,ou=people,dc=example,dc=com\n",
	         op, uid);
	ldap_admin(ldif);
}

static void *
runner(void *arg)
{
	dir_watch_run(arg);
	return NULL;
}

static void
test_watch(void **state)
{
	struct dir_config c;
	struct dir_watch_hooks h = {on_change, on_cookie, keep_going, NULL};
	struct dir_watch_stats st;
	struct dir_watch *w = NULL;
	pthread_t t;
	char err[1024], line[256];
	static const char *const during[] = {"user30", "user31", "user32",
	                                     "user33", "user34"};
	int up = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.uris = th_env("RG_TEST_LDAP_URI");
	c.bind_dn = th_env("RG_TEST_LDAP_BIND_DN");
	c.bind_password = th_env("RG_TEST_LDAP_BIND_PASSWORD");
	c.base_dn = th_env("RG_TEST_LDAP_BASE_DN");
	c.network_timeout_ms = 2000;
	c.op_timeout_ms = 2000;
	if (dir_watch_open(&c, &h, &w, err, sizeof(err)) != 0)
		fail_msg("dir_watch_open: %s", err);
	assert_int_equal(pthread_create(&t, NULL, runner, w), 0);

	/* The refresh reports the group whole once every person is known
	 * (40 people in meeting-allowed in the demo data, not counting
	 * the placeholder service account). */
	assert_true(wait_seen("members " GROUP " "));
	for (int i = 0; i < 100 && !up; i++) {
		dir_watch_get_stats(w, &st);
		up = st.caught_up;
		usleep(50 * 1000);
	}
	assert_true(up);
	assert_true(st.people >= 40);
	assert_true(st.groups >= 5);
	assert_true(st.connected);

	/* A removal. */
	member("delete", "user29");
	assert_true(wait_seen("lost user29 " GROUP "\n"));
	/* Adding back is no change to act on; nothing else was lost. */
	member("add", "user29");
	/* A lock (ppolicy attribute) and the unlock. */
	ldap_admin("dn: uid=user28,ou=people,dc=example,dc=com\n"
	           "changetype: modify\nadd: pwdAccountLockedTime\n"
	           "pwdAccountLockedTime: 000001010000Z\n");
	assert_true(wait_seen("disabled user28\n"));
	ldap_admin("dn: uid=user28,ou=people,dc=example,dc=com\n"
	           "changetype: modify\ndelete: pwdAccountLockedTime\n");
	pthread_mutex_lock(&mu);
	assert_true(cookies > 0);
	pthread_mutex_unlock(&mu);

	/* slapd restarts; removals land while the watcher reconnects. */
	th_ldap_stop();
	for (int i = 0; i < 100; i++) {
		dir_watch_get_stats(w, &st);
		if (!st.connected)
			break;
		usleep(50 * 1000);
	}
	assert_false(st.connected);
	th_ldap_start();
	for (size_t i = 0; i < sizeof(during) / sizeof(*during); i++)
		member("delete", during[i]);
	for (size_t i = 0; i < sizeof(during) / sizeof(*during); i++) {
		snprintf(line, sizeof(line), "lost %s " GROUP "\n", during[i]);
		if (!wait_seen(line))
			fail_msg("missed after the restart: %s\nseen:\n%s",
			         line, events);
	}
	dir_watch_get_stats(w, &st);
	assert_true(st.connects >= 2);
	assert_true(st.disconnects >= 1);
	/* Resumed from the cookie: no second full refresh. */
	assert_int_equal(st.full_refreshes, 1);
	/* Nobody else was reported lost. */
	assert_null(strstr(events, "lost user29 " GROUP "\nlost"));
	pthread_mutex_lock(&mu);
	{
		int lost = 0;

		for (const char *p = events; (p = strstr(p, "lost ")) != NULL;
		     p++)
			lost++;
		assert_int_equal(lost, 6);
	}
	pthread_mutex_unlock(&mu);

	for (size_t i = 0; i < sizeof(during) / sizeof(*during); i++)
		member("add", during[i]);
	running = 0;
	pthread_join(t, NULL);
	dir_watch_close(w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_watch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
