/*
 * Unit test for directory/check.c: a server that answers a check with a
 * Notice of Disconnection (RFC 4511 4.4.1: an unsolicited extended
 * response, message id 0, resultCode unavailable), as slapd does to a
 * request that reaches it while it shuts down.
 *
 * libldap (2.5) leaks the notice's BerElement when ldap_result() waits
 * for one message id and the notice arrives instead; test_faults caught
 * it as a LeakSanitizer report when its roomgate node stopped (slapd had
 * been restarted under load). The check must answer "unavailable" and
 * leave nothing behind: this binary runs under LeakSanitizer (and under
 * valgrind in the static step), so a leaked notice fails it at exit.
 *
 * The peer is a few lines of liblber on a loopback socket, in a thread of
 * this process: no slapd can be made to send the notice on cue.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lber.h>
#include <ldap.h>

#include "directory/directory.h"

struct peer {
	int lfd;
	int port;
	int requests; /* answered: the bind, then the notice */
	pthread_t t;
};

/* The next request's message id and operation tag, or -1. */
static int
read_request(Sockbuf *sb, ber_tag_t *op)
{
	BerElement *ber = ber_alloc_t(LBER_USE_DER);
	ber_len_t len;
	ber_int_t msgid = -1;
	int r = -1;

	if (ber == NULL)
		return -1;
	/* ber_get_next leaves ber inside the LDAPMessage sequence. */
	if (ber_get_next(sb, &len, ber) == LDAP_TAG_MESSAGE &&
	    ber_get_int(ber, &msgid) != LBER_ERROR) {
		*op = ber_peek_tag(ber, &len);
		r = msgid;
	}
	ber_free(ber, 1);
	return r;
}

/* Sends what ber holds and frees it; 0 on success. */
static int
send_msg(Sockbuf *sb, BerElement *ber, int printed)
{
	if (printed == -1) {
		ber_free(ber, 1);
		return -1;
	}
	return ber_flush2(sb, ber, LBER_FLUSH_FREE_ALWAYS) == 0 ? 0 : -1;
}

/* Accepts one connection: the bind succeeds, the next request is
 * answered with a Notice of Disconnection, then the peer hangs up. */
static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	Sockbuf *sb = NULL;
	BerElement *ber;
	ber_tag_t op = 0;
	int fd, msgid;

	fd = accept(p->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	sb = ber_sockbuf_alloc();
	if (sb == NULL ||
	    ber_sockbuf_add_io(sb, &ber_sockbuf_io_tcp,
			       LBER_SBIOD_LEVEL_PROVIDER, &fd) != 0)
		goto out;
	msgid = read_request(sb, &op);
	if (msgid < 0 || op != LDAP_REQ_BIND ||
	    (ber = ber_alloc_t(LBER_USE_DER)) == NULL ||
	    send_msg(sb, ber,
		     ber_printf(ber, "{it{ess}}", msgid, LDAP_RES_BIND,
				LDAP_SUCCESS, "", "")) != 0)
		goto out;
	p->requests++;
	msgid = read_request(sb, &op);
	if (msgid < 0 || (ber = ber_alloc_t(LBER_USE_DER)) == NULL ||
	    send_msg(sb, ber,
		     ber_printf(ber, "{it{essts}}", 0, LDAP_RES_EXTENDED,
				LDAP_UNAVAILABLE, "", "",
				LDAP_TAG_EXOP_RES_OID,
				LDAP_NOTICE_OF_DISCONNECTION)) != 0)
		goto out;
	p->requests++;
	/* The server closes after its notice (RFC 4511 4.4.1); wait for
	 * the client's side to go first so nothing else arrives. */
	(void)read_request(sb, &op);
out:
	if (sb != NULL)
		ber_sockbuf_free(sb); /* closes fd */
	else
		close(fd);
	return NULL;
}

static void
peer_start(struct peer *p)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(p, 0, sizeof(*p));
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(p->lfd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->lfd, 4), 0);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &sl), 0);
	p->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&p->t, NULL, peer_main, p), 0);
}

static void
peer_stop(struct peer *p)
{
	shutdown(p->lfd, SHUT_RDWR); /* an accept() still waiting returns */
	pthread_join(p->t, NULL);
	close(p->lfd);
}

static void
test_notice_of_disconnection_is_unavailable_and_freed(void **state)
{
	static const char *const groups[] = {
		"cn=meeting-allowed,ou=groups,dc=example,dc=com"};
	struct dir_config dc;
	struct dir_pool *pool = NULL;
	struct dir_verdict v;
	struct peer p;
	char uri[64], err[512];
	int r;

	(void)state;
	peer_start(&p);
	snprintf(uri, sizeof(uri), "ldap://127.0.0.1:%d", p.port);
	memset(&dc, 0, sizeof(dc));
	dc.uris = uri;
	dc.bind_dn = "cn=roomgate,dc=example,dc=com";
	dc.bind_password = "not-a-secret";
	dc.tls = DIR_TLS_NONE;
	dc.network_timeout_ms = 2000;
	dc.op_timeout_ms = 5000;
	dc.pool_size = 1;
	dc.acquire_timeout_ms = 1000;
	dc.base_dn = "dc=example,dc=com";
	if (dir_pool_open(&dc, &pool, err, sizeof(err)) != 0)
		fail_msg("dir_pool_open: %s", err);
	r = dir_check_member(pool, "alice", 5, groups, 1, &v, err,
			     sizeof(err));
	/* Fail closed, saying that the server went away. */
	assert_true(r < 0);
	assert_int_equal(v.result, DIR_V_UNAVAILABLE);
	assert_string_equal(v.group_dn, "");
	if (strstr(err, "unavailable") == NULL)
		fail_msg("the reason does not name the server's notice: %s",
			 err);
	dir_pool_close(pool);
	peer_stop(&p);
	assert_int_equal(p.requests, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_notice_of_disconnection_is_unavailable_and_freed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
