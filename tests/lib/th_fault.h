/*
 * tests/lib -- fault injection and process gauges for the fault tests and
 * the soak (see th.h for the harness's environment).
 *
 * slapd is frozen and thawed with SIGSTOP / SIGCONT on the pid in
 * RG_TEST_LDAP_DIR/slapd.pid (tests/run.sh thaws it again after a test
 * binary that died mid-freeze). PostgreSQL is restarted with the
 * harness's own stop/start (th_pg_stop / th_pg_start).
 */
#ifndef ROOMGATE_TH_FAULT_H
#define ROOMGATE_TH_FAULT_H

#include <sys/types.h>

/* slapd's pid from its pid file; fails the test when there is none. */
pid_t th_ldap_pid(void);
/* SIGSTOP / SIGCONT slapd; each asserts the signal was delivered, and the
 * freeze returns only once every thread of slapd is stopped. */
void th_ldap_freeze(void);
void th_ldap_thaw(void);
/*
 * After kill(pid, SIGSTOP): waits (at most 5 s) until every thread of pid
 * is stopped. kill() only posts the signal; a thread busy on the other
 * core can still answer a request before it stops, which a test that
 * then expects silence would take for a live server. 0 when stopped, -1
 * when not within the bound (or /proc is unreadable).
 */
int th_proc_wait_stopped(pid_t pid);

/* Stop PostgreSQL, wait down_ms, start it again. */
void th_pg_restart(int down_ms);

/* Value of one exposition line of Prometheus text, e.g.
 * series = "roomgate_db_pool_connections{state=\"in_use\"}"; -1 when the
 * series is not there. */
double th_metric(const char *text, const char *series);

/* Open descriptors and resident set (kB) of pid; -1 when unreadable. */
long th_proc_fds(pid_t pid);
long th_proc_rss_kb(pid_t pid);

#endif
