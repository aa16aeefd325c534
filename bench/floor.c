/*
 * bench/floor -- the HTTP floor for `make bench`: libmicrohttpd answering
 * "200 OK" to every request, started with the daemon flags and options
 * server/http.c uses (internal polling thread, epoll, a thread pool of
 * THREADS, the same connection limit, timeout and per-connection memory),
 * so the difference to roomgate is roomgate's own work.
 *
 *   floor PORT THREADS     runs until SIGTERM/SIGINT
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload,
	   size_t *upload_len, void **state)
{
	static const char ok[] = "OK\n";
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	(void)upload;
	if (*state == NULL) {
		/* First call: headers only; answer on the next one, as a
		 * handler that reads a body would. */
		*state = (void *)1;
		return MHD_YES;
	}
	*upload_len = 0;
	r = MHD_create_response_from_buffer(sizeof(ok) - 1, (void *)ok,
					    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static long
num_arg(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi) {
		fprintf(stderr, "floor: %s must be in %ld..%ld, got '%s'\n",
			what, lo, hi, s);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct MHD_Daemon *d;
	long port, threads;

	if (argc != 3) {
		fprintf(stderr, "usage: floor PORT THREADS\n");
		return 2;
	}
	port = num_arg(argv[1], 1, 65535, "PORT");
	threads = num_arg(argv[2], 1, 256, "THREADS");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* server/http.c's defaults: max_connections 1024, connection_timeout
	 * 30 s, max_header_bytes 16384 + 4096 for the pool. */
	d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			MHD_USE_ERROR_LOG,
		(uint16_t)port, NULL, NULL, on_request, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
		MHD_OPTION_CONNECTION_LIMIT, 1024u,
		MHD_OPTION_CONNECTION_TIMEOUT, 30u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384 + 4096,
		MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "floor: cannot listen on 127.0.0.1:%ld\n", port);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stop)
		pause();
	MHD_stop_daemon(d);
	return 0;
}
