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

void
th_ldap_freeze(void)
{
	assert_int_equal(kill(th_ldap_pid(), SIGSTOP), 0);
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
