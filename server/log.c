/*
 * Structured logs: one JSON object per line on stderr, written with a
 * single write() so lines from different threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "server/server.h"

/* Atomic: a SIGHUP reload changes it while other threads log. */
static _Atomic int log_min = GATE_LOG_INFO;
static char log_node[256];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
gate_log_setup(int level, const char *node)
{
	log_min = level;
	snprintf(log_node, sizeof(log_node), "%s", node ? node : "");
}

void
gate_log_set_level(int level)
{
	log_min = level;
}

static void
emit(int level, const char *request_id, const char *event, json_t *fields,
     const char *fmt, va_list ap)
{
	char msg[2048], ts[96];
	struct timespec now;
	struct tm tm;
	json_t *o, *msgj;
	char *line;

	if (level < log_min || level < 0 || level > GATE_LOG_ERROR) {
		json_decref(fields);
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);

	o = json_object();
	if (o == NULL) {
		json_decref(fields);
		return;
	}
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "level", json_string(level_names[level]));
	json_object_set_new(o, "event", json_string(event ? event : "log"));
	if (request_id != NULL)
		json_object_set_new(o, "request_id", json_string(request_id));
	if (log_node[0] != '\0')
		json_object_set_new(o, "node", json_string(log_node));
	/* Messages may carry bytes from the network: keep the JSON valid by
	 * replacing non-ASCII bytes when the text is not valid UTF-8. */
	msgj = json_string(msg);
	if (msgj == NULL) {
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		msgj = json_string(msg);
	}
	json_object_set_new(o, "msg", msgj);
	if (fields != NULL) {
		json_object_update_missing(o, fields);
		json_decref(fields);
	}
	line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII |
				 JSON_REAL_PRECISION(6));
	json_decref(o);
	if (line == NULL)
		return;
	{
		size_t len = strlen(line);
		char *nl = realloc(line, len + 2);

		if (nl != NULL) {
			line = nl;
			line[len] = '\n';
			line[len + 1] = '\0';
			(void)!write(STDERR_FILENO, line, len + 1);
		}
	}
	free(line);
}

void
gate_log(int level, const char *request_id, const char *event,
	 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, request_id, event, NULL, fmt, ap);
	va_end(ap);
}

void
gate_log_fields(int level, const char *request_id, const char *event,
		void *fields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, request_id, event, fields, fmt, ap);
	va_end(ap);
}
