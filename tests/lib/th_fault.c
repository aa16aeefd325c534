/* Fault injection and process gauges; see th_fault.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/lib/th.h"
#include "tests/lib/th_fault.h"

pid_t
th_ldap_pid(void)
{
	char path[1024], line[64];
	long pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/slapd.pid",
		 th_env("RG_TEST_LDAP_DIR"));
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("no slapd pid file at %s", path);
	if (fgets(line, sizeof(line), f) != NULL)
		pid = strtol(line, NULL, 10);
	fclose(f);
	if (pid <= 1)
		fail_msg("no pid in %s", path);
	return (pid_t)pid;
}

/* State letter of one task from /proc/PID/task/TID/stat ('?' when
 * unreadable): the field after the parenthesised command name. */
static char
task_state(const char *path)
{
	char buf[512], *p;
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' ? p[2] : '?';
}

int
th_proc_wait_stopped(pid_t pid)
{
	char dir[64], path[384];

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	for (int ms = 0; ms < 5000; ms += 5) {
		struct dirent *e;
		DIR *d = opendir(dir);
		int running = 0, tasks = 0;

		if (d == NULL)
			return -1;
		while ((e = readdir(d)) != NULL) {
			char st;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/stat", dir,
			         e->d_name);
			st = task_state(path);
			tasks++;
			/* T: stopped by a signal; t: traced. */
			if (st != 'T' && st != 't')
				running++;
		}
		closedir(d);
		if (tasks > 0 && running == 0)
			return 0;
		nanosleep(&(struct timespec){0, 5 * 1000000L}, NULL);
	}
	return -1;
}

void
th_ldap_freeze(void)
{
	pid_t pid = th_ldap_pid();

	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_int_equal(th_proc_wait_stopped(pid), 0);
}

void
th_ldap_thaw(void)
{
	assert_int_equal(kill(th_ldap_pid(), SIGCONT), 0);
}

void
th_pg_restart(int down_ms)
{
	struct timespec ts = {down_ms / 1000, (long)(down_ms % 1000) * 1000000L};

	th_pg_stop();
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	th_pg_start();
}

double
th_metric(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return -1;
}

long
th_proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

long
th_proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}
