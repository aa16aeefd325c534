/*
 * /v1/meetings: create, read, update, archive, list (paged), and the
 * meeting's code (view, rotate). Every handler authenticates first, then
 * checks role and ownership (403), and answers 503 when the database
 * cannot (fail closed). Validation errors are 400 with the field and the
 * rule inside the error object. Codes appear only in the bodies of the
 * create, code and rotate answers, never in logs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <sodium.h>

#include "server/admit.h"
#include "server/http_int.h"
#include "server/meetings.h"

#define LIST_DEFAULT 50
#define LIST_MAX 200

static void
field_error(struct gate_resp *out, const struct gate_rq *rq,
            struct gate_field_err *fe)
{
	json_t *e =
	    json_pack("{s:s, s:s, s:s, s:s, s:s}", "code", "invalid_field",
	              "message", fe->message, "field", fe->field, "rule",
	              fe->rule, "request_id", rq->id);

	if (e != NULL && fe->extra != NULL)
		json_object_update(e, fe->extra);
	json_decref(fe->extra);
	fe->extra = NULL;
	gate_resp_json(out, 400, json_pack("{s:o*}", "error", e));
}

static void
db_error(struct gate_resp *out, const struct gate_rq *rq, int r,
         const char *err, const char *what)
{
	if (r == DB_ENOTFOUND) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "no such meeting (or it is archived)");
		return;
	}
	if (r == DB_ECONFLICT) {
		json_t *e = json_pack(
		    "{s:s, s:s, s:s, s:s, s:s}", "code", "conflict", "message",
		    "platform_room is already used by another live "
		    "meeting; choose another room name",
		    "field", "platform_room", "rule", "taken", "request_id",
		    rq->id);

		gate_resp_json(out, 409, json_pack("{s:o*}", "error", e));
		return;
	}
	gate_log(GATE_LOG_ERROR, rq->id, "db_error", "%s: %s", what, err);
	gate_resp_error(out, rq, 503, "database_unavailable", NULL,
	                "%s failed: the database is unavailable; nothing was "
	                "changed, retry shortly",
	                what);
	out->retry_after = 2;
}

static int
uuid_param(const struct gate_rq *rq, char id[37])
{
	if (rq->nparams < 1 || rq->params[0].len != 36)
		return -1;
	for (size_t i = 0; i < 36; i++) {
		char c = rq->params[0].p[i];
		int dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? c != '-'
		         : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		             (c >= 'A' && c <= 'F')))
			return -1;
		id[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	id[36] = '\0';
	return 0;
}

static json_t *
body_json(const struct gate_rq *rq, int allow_empty, struct gate_resp *out)
{
	json_error_t je;
	json_t *o;

	if (rq->body_len == 0 && allow_empty)
		return json_object();
	o = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		struct gate_field_err fe;

		memset(&fe, 0, sizeof(fe));
		snprintf(fe.field, sizeof(fe.field), "body");
		snprintf(fe.rule, sizeof(fe.rule), "json");
		snprintf(fe.message, sizeof(fe.message),
		         "the body must be one JSON object%s%s",
		         o == NULL ? ": " : "", o == NULL ? je.text : "");
		json_decref(o);
		field_error(out, rq, &fe);
		return NULL;
	}
	return o;
}

/* Loads the meeting of the {id} parameter and checks access. 0 when the
 * caller may go on; otherwise the answer is set. */
static int
load_meeting(struct gate_app *app, const struct gate_rq *rq,
             const struct gate_principal *p, int manage, struct db_meeting *m,
             struct gate_resp *out)
{
	char id[37], err[512];
	int r;

	memset(m, 0, sizeof(*m));
	if (uuid_param(rq, id) != 0) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "no such meeting: meeting ids are UUIDs");
		return -1;
	}
	r = db_meeting_get(app->db, id, m, err, sizeof(err));
	if (r != 0) {
		db_error(out, rq, r, err, "reading the meeting");
		return -1;
	}
	if (manage ? !gate_may_manage(p, m->host_identity)
	           : !gate_may_read(p, m->host_identity)) {
		gate_resp_error(out, rq, 403, "forbidden", NULL,
		                "%s may not %s this meeting: it belongs to "
		                "another host",
		                p->via, manage ? "change" : "see");
		db_meeting_free(m);
		return -1;
	}
	return 0;
}

static int
need_role(const struct gate_rq *rq, const struct gate_principal *p,
          unsigned roles, const char *what, struct gate_resp *out)
{
	if (p->roles & roles)
		return 0;
	gate_resp_error(out, rq, 403, "forbidden", NULL,
	                "%s may not %s (role needed: %s)", p->via, what,
	                (roles & GATE_ROLE_HOST) ? "host or admin" : "admin");
	return -1;
}

/* {"meeting_id", "code", "version", "valid_from", "rotates_at"...} */
static json_t *
code_view(const struct db_meeting *m, const struct db_code *dc,
          const char *code, long long prev_until)
{
	char vf[40];
	json_t *o;

	gate_time_fmt(dc->valid_from, vf, sizeof(vf));
	o = json_pack("{s:s, s:s, s:i, s:i, s:s, s:s}", "meeting_id", m->id,
	              "code", code, "version", dc->version, "length",
	              (int)strlen(code), "valid_from", vf, "source",
	              dc->source);
	if (o == NULL)
		return NULL;
	if (m->code_rotates_at != 0) {
		gate_time_fmt(m->code_rotates_at, vf, sizeof(vf));
		json_object_set_new(o, "rotates_at", json_string(vf));
	} else {
		json_object_set_new(o, "rotates_at", json_null());
	}
	if (prev_until != 0) {
		gate_time_fmt(prev_until, vf, sizeof(vf));
		json_object_set_new(o, "previous_valid_until", json_string(vf));
	} else {
		json_object_set_new(o, "previous_valid_until", json_null());
	}
	return o;
}

/* Wipes the code inside a JSON body built for an answer, once dumped. */
static void
answer_with_code(struct gate_resp *out, int status, json_t *o)
{
	json_t *c = json_object_get(o, "code");
	const char *s;

	if (json_is_object(c))
		c = json_object_get(c, "code");
	gate_resp_json(out, status, json_incref(o));
	s = json_string_value(c);
	if (s != NULL)
		sodium_memzero((char *)s, strlen(s));
	json_decref(o);
}

void
gate_h_meetings_create(struct gate_app *app, const struct gate_rq *rq,
                       struct gate_resp *out)
{
	struct gate_principal p;
	struct gate_field_err fe;
	struct db_meeting m, got;
	struct db_code dc;
	struct db_actor by;
	char src[64];
	char custom[GATE_CODE_BUF], code[GATE_CODE_BUF], err[512];
	json_t *in = NULL, *o;
	int r;

	memset(&m, 0, sizeof(m));
	memset(&got, 0, sizeof(got));
	memset(&dc, 0, sizeof(dc));
	custom[0] = code[0] = '\0';
	if (gate_auth_request(app, rq, &p, out) != 0 ||
	    need_role(rq, &p, GATE_ROLE_HOST | GATE_ROLE_ADMIN,
	              "create meetings", out) != 0 ||
	    (in = body_json(rq, 0, out)) == NULL)
		goto out;
	gate_meeting_new_ids(&m);
	if (gate_meeting_from_json(app->codes, in, 1, &p, &m, custom,
	                           sizeof(custom), &fe) != 0) {
		if (strcmp(fe.rule, "forbidden") == 0) {
			json_decref(fe.extra);
			gate_resp_error(out, rq, 403, "forbidden", NULL, "%s",
			                fe.message);
		} else {
			field_error(out, rq, &fe);
		}
		goto out;
	}
	if (gate_meeting_new_code(app->codes, m.id, m.code_length, custom, code,
	                          sizeof(code), &dc) != 0) {
		gate_resp_error(out, rq, 500, "internal", NULL,
		                "no access code could be made; check [codes] "
		                "rules");
		goto out;
	}
	gate_rq_actor(app, rq, &p, &by, src);
	r = db_meeting_create(app->db, &m, &dc, &by, err, sizeof(err));
	if (r == 0)
		r = db_meeting_get(app->db, m.id, &got, err, sizeof(err));
	if (r != 0) {
		db_error(out, rq, r, err, "creating the meeting");
		goto out;
	}
	dc.version = got.code_version;
	dc.valid_from = got.created_at;
	o = gate_meeting_to_json(app->cfg, &got);
	if (o != NULL)
		json_object_set_new(o, "code", code_view(&got, &dc, code, 0));
	answer_with_code(out, 201, o);
out:
	sodium_memzero(custom, sizeof(custom));
	sodium_memzero(code, sizeof(code));
	sodium_memzero(&dc, sizeof(dc));
	json_decref(in);
	db_meeting_free(&m);
	db_meeting_free(&got);
}

void
gate_h_meeting_get(struct gate_app *app, const struct gate_rq *rq,
                   struct gate_resp *out)
{
	struct gate_principal p;
	struct db_meeting m;

	if (gate_auth_request(app, rq, &p, out) != 0 ||
	    load_meeting(app, rq, &p, 0, &m, out) != 0)
		return;
	gate_resp_json(out, 200, gate_meeting_to_json(app->cfg, &m));
	db_meeting_free(&m);
}

void
gate_h_meeting_update(struct gate_app *app, const struct gate_rq *rq,
                      struct gate_resp *out)
{
	struct gate_principal p;
	struct gate_field_err fe;
	struct db_meeting m, got;
	struct db_actor by;
	char src[64];
	char err[512];
	json_t *in = NULL;
	int r;

	memset(&m, 0, sizeof(m));
	memset(&got, 0, sizeof(got));
	if (gate_auth_request(app, rq, &p, out) != 0 ||
	    load_meeting(app, rq, &p, 1, &m, out) != 0)
		return;
	if (m.archived_at != 0) {
		gate_resp_error(out, rq, 409, "archived", NULL,
		                "the meeting is archived and cannot change");
		goto out;
	}
	if ((in = body_json(rq, 0, out)) == NULL)
		goto out;
	if (gate_meeting_from_json(app->codes, in, 0, &p, &m, NULL, 0, &fe) !=
	    0) {
		field_error(out, rq, &fe);
		goto out;
	}
	gate_rq_actor(app, rq, &p, &by, src);
	r = db_meeting_update(app->db, &m, &by, err, sizeof(err));
	if (r == 0)
		r = db_meeting_get(app->db, m.id, &got, err, sizeof(err));
	if (r != 0) {
		db_error(out, rq, r, err, "updating the meeting");
		goto out;
	}
	gate_resp_json(out, 200, gate_meeting_to_json(app->cfg, &got));
out:
	json_decref(in);
	db_meeting_free(&m);
	db_meeting_free(&got);
}

void
gate_h_meeting_archive(struct gate_app *app, const struct gate_rq *rq,
                       struct gate_resp *out)
{
	struct gate_principal p;
	struct db_meeting m, got;
	struct db_actor by;
	char src[64];
	char err[512];
	int r;

	memset(&got, 0, sizeof(got));
	if (gate_auth_request(app, rq, &p, out) != 0 ||
	    load_meeting(app, rq, &p, 1, &m, out) != 0)
		return;
	gate_rq_actor(app, rq, &p, &by, src);
	r = db_meeting_archive(app->db, m.id, &by, err, sizeof(err));
	if (r == 0)
		r = db_meeting_get(app->db, m.id, &got, err, sizeof(err));
	if (r != 0)
		db_error(out, rq, r, err, "archiving the meeting");
	else
		gate_resp_json(out, 200, gate_meeting_to_json(app->cfg, &got));
	db_meeting_free(&m);
	db_meeting_free(&got);
}

void
gate_h_meetings_list(struct gate_app *app, const struct gate_rq *rq,
                     struct gate_resp *out)
{
	struct gate_principal p;
	struct gate_field_err fe;
	struct db_meeting *list = NULL;
	const char *lim, *after, *arch;
	char err[512], after_id[37];
	size_t n = 0;
	long limit = LIST_DEFAULT;
	json_t *arr;
	int r, archived = 0;

	memset(&fe, 0, sizeof(fe));
	if (gate_auth_request(app, rq, &p, out) != 0)
		return;
	lim = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
	                                  "limit");
	after = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
	                                    "after");
	arch = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
	                                   "include_archived");
	if (lim != NULL) {
		char *end;

		limit = strtol(lim, &end, 10);
		if (*lim == '\0' || *end != '\0' || limit < 1 ||
		    limit > LIST_MAX) {
			snprintf(fe.field, sizeof(fe.field), "limit");
			snprintf(fe.rule, sizeof(fe.rule), "range");
			snprintf(fe.message, sizeof(fe.message),
			         "limit must be a whole number from 1 to %d",
			         LIST_MAX);
			field_error(out, rq, &fe);
			return;
		}
	}
	if (after != NULL) {
		struct gate_rq tmp = *rq;

		tmp.params[0].p = after;
		tmp.params[0].len = strlen(after);
		tmp.nparams = 1;
		if (uuid_param(&tmp, after_id) != 0) {
			snprintf(fe.field, sizeof(fe.field), "after");
			snprintf(fe.rule, sizeof(fe.rule), "format");
			snprintf(fe.message, sizeof(fe.message),
			         "after must be the \"next\" value of the "
			         "previous page (a meeting id)");
			field_error(out, rq, &fe);
			return;
		}
	}
	if (arch != NULL) {
		if (strcmp(arch, "true") == 0) {
			archived = 1;
		} else if (strcmp(arch, "false") != 0) {
			snprintf(fe.field, sizeof(fe.field),
			         "include_archived");
			snprintf(fe.rule, sizeof(fe.rule), "type");
			snprintf(fe.message, sizeof(fe.message),
			         "include_archived must be true or false");
			field_error(out, rq, &fe);
			return;
		}
	}
	/* Admin and compliance see all; a host sees its own. */
	r = db_meeting_list(app->db,
	                    (p.roles & (GATE_ROLE_ADMIN | GATE_ROLE_COMPLIANCE))
	                        ? NULL
	                        : p.identity,
	                    archived, after ? after_id : NULL, (int)limit,
	                    &list, &n, err, sizeof(err));
	if (r != 0) {
		db_error(out, rq, r, err, "listing meetings");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr,
		                      gate_meeting_to_json(app->cfg, &list[i]));
	}
	gate_resp_json(out, 200,
	               json_pack("{s:o, s:s?}", "meetings", arr, "next",
	                         n == (size_t)limit ? list[n - 1].id : NULL));
	for (size_t i = 0; i < n; i++)
		db_meeting_free(&list[i]);
	free(list);
}

/* The current code, plus when a previous one stops working. */
static int
current_code(struct gate_app *app, const struct db_meeting *m,
             struct db_code *dc, long long *prev_until, char *code,
             size_t codesize, char *err, size_t errlen)
{
	struct db_code live[2];
	size_t n = 0;
	int r;

	*prev_until = 0;
	r = db_code_live(app->db, m->id, live, &n, err, errlen);
	if (r == 0 && n == 0) {
		snprintf(err, errlen, "the meeting has no live code");
		r = DB_ENOTFOUND;
	}
	if (r == 0) {
		*dc = live[0];
		if (n == 2)
			*prev_until = live[1].grace_until;
		if (gate_codes_reveal(app->codes, dc, code, codesize, err,
		                      errlen) != 0)
			r = 1;
	}
	sodium_memzero(live, sizeof(live));
	return r;
}

/*
 * Revealing a code is on record before the code leaves (event
 * "code.read": who, from where, which version; never the code). No
 * record, no code: 0, or -1 with the 503 answer set.
 */
static int
code_read_record(struct gate_app *app, const struct gate_rq *rq,
                 const struct gate_principal *p, const struct db_meeting *m,
                 const struct db_code *dc, struct gate_resp *out)
{
	struct db_audit_rec a;
	struct db_actor by;
	char src[64], err[512], details[96];
	int r;

	gate_rq_actor(app, rq, p, &by, src);
	snprintf(details, sizeof(details),
	         "{\"version\": %d, \"source\": \"%s\"}", dc->version,
	         strcmp(dc->source, "custom") == 0 ? "custom" : "generated");
	memset(&a, 0, sizeof(a));
	a.event_type = "code.read";
	a.outcome = "allow";
	a.reason = strcmp(p->identity, m->host_identity) == 0 &&
	                   (p->roles & GATE_ROLE_HOST)
	               ? "host"
	               : "admin";
	a.meeting_id = m->id;
	a.code_ok = a.member_ok = -1;
	a.details_json = details;
	a.by = &by;
	r = db_audit_write(app->db, &a, err, sizeof(err));
	gate_audit_records_count("code.read", r != 0);
	if (r == 0)
		return 0;
	gate_log(GATE_LOG_ERROR, rq->id, "code_read_audit_failed", "%s", err);
	gate_resp_error(out, rq, 503, "audit_unavailable", NULL,
	                "the code is not shown because reading it could not "
	                "be recorded; retry shortly");
	out->retry_after = 2;
	return -1;
}

void
gate_h_meeting_code(struct gate_app *app, const struct gate_rq *rq,
                    struct gate_resp *out)
{
	struct gate_principal p;
	struct db_meeting m;
	struct db_code dc;
	char code[GATE_CODE_BUF], err[512];
	long long prev;
	int r;

	memset(&dc, 0, sizeof(dc));
	if (gate_auth_request(app, rq, &p, out) != 0 ||
	    load_meeting(app, rq, &p, 1, &m, out) != 0)
		return;
	r = current_code(app, &m, &dc, &prev, code, sizeof(code), err,
	                 sizeof(err));
	if (r == 1)
		gate_resp_error(out, rq, 500, "code_unreadable", NULL, "%s",
		                err);
	else if (r != 0)
		db_error(out, rq, r, err, "reading the code");
	else if (code_read_record(app, rq, &p, &m, &dc, out) == 0)
		answer_with_code(out, 200, code_view(&m, &dc, code, prev));
	sodium_memzero(code, sizeof(code));
	sodium_memzero(&dc, sizeof(dc));
	db_meeting_free(&m);
}

void
gate_h_meeting_rotate(struct gate_app *app, const struct gate_rq *rq,
                      struct gate_resp *out)
{
	struct gate_principal p;
	struct gate_field_err fe;
	struct db_meeting m, got;
	struct db_code dc;
	struct db_actor by;
	char src[64];
	char custom[GATE_CODE_BUF], code[GATE_CODE_BUF], err[512];
	long long grace, length = 0, prev;
	json_t *in = NULL, *v;
	const char *key;
	int r, version = 0;

	memset(&dc, 0, sizeof(dc));
	memset(&got, 0, sizeof(got));
	memset(&fe, 0, sizeof(fe));
	custom[0] = code[0] = '\0';
	if (gate_auth_request(app, rq, &p, out) != 0 ||
	    load_meeting(app, rq, &p, 1, &m, out) != 0)
		return;
	if (m.archived_at != 0) {
		gate_resp_error(out, rq, 409, "archived", NULL,
		                "the meeting is archived; its code cannot "
		                "rotate");
		goto out;
	}
	if ((in = body_json(rq, 1, out)) == NULL)
		goto out;
	grace = m.grace_period_s;
	json_object_foreach(in, key, v)
	{
		if (strcmp(key, "code") != 0 &&
		    strcmp(key, "code_length") != 0 &&
		    strcmp(key, "grace_period_seconds") != 0) {
			snprintf(fe.field, sizeof(fe.field), "%.40s", key);
			snprintf(fe.rule, sizeof(fe.rule), "unknown_field");
			snprintf(fe.message, sizeof(fe.message),
			         "%.40s is not a rotation field (fields: code, "
			         "code_length, grace_period_seconds)",
			         key);
			field_error(out, rq, &fe);
			goto out;
		}
	}
	if ((v = json_object_get(in, "code_length")) != NULL) {
		if (!json_is_integer(v) ||
		    json_integer_value(v) < GATE_CODE_MIN_LEN ||
		    json_integer_value(v) > GATE_CODE_MAX_LEN) {
			snprintf(fe.field, sizeof(fe.field), "code_length");
			snprintf(fe.rule, sizeof(fe.rule), "range");
			snprintf(fe.message, sizeof(fe.message),
			         "code_length must be a whole number from %d "
			         "to %d",
			         GATE_CODE_MIN_LEN, GATE_CODE_MAX_LEN);
			field_error(out, rq, &fe);
			goto out;
		}
		length = json_integer_value(v);
	}
	if ((v = json_object_get(in, "grace_period_seconds")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 7 * 86400) {
			snprintf(fe.field, sizeof(fe.field),
			         "grace_period_seconds");
			snprintf(fe.rule, sizeof(fe.rule), "range");
			snprintf(fe.message, sizeof(fe.message),
			         "grace_period_seconds must be a whole number "
			         "from 0 to 604800");
			field_error(out, rq, &fe);
			goto out;
		}
		grace = json_integer_value(v);
	}
	if ((v = json_object_get(in, "code")) != NULL) {
		if (!json_is_string(v)) {
			snprintf(fe.field, sizeof(fe.field), "code");
			snprintf(fe.rule, sizeof(fe.rule), "type");
			snprintf(fe.message, sizeof(fe.message),
			         "code must be a string of digits");
			field_error(out, rq, &fe);
			goto out;
		}
		if (gate_custom_code_check(app->codes, json_string_value(v),
		                           length ? (int)length : m.code_length,
		                           custom, sizeof(custom), &fe) != 0) {
			field_error(out, rq, &fe);
			goto out;
		}
	}
	if (gate_meeting_new_code(app->codes, m.id,
	                          length ? (int)length : m.code_length, custom,
	                          code, sizeof(code), &dc) != 0) {
		gate_resp_error(out, rq, 500, "internal", NULL,
		                "no access code could be made; check [codes] "
		                "rules");
		goto out;
	}
	gate_rq_actor(app, rq, &p, &by, src);
	r = db_code_rotate(app->db, m.id, &dc, (int)length, grace, "rotate", 0,
	                   &by, &version, err, sizeof(err));
	if (r == 0)
		r = db_meeting_get(app->db, m.id, &got, err, sizeof(err));
	sodium_memzero(&dc, sizeof(dc));
	if (r == 0)
		r = current_code(app, &got, &dc, &prev, code, sizeof(code), err,
		                 sizeof(err));
	if (r == 1) {
		gate_resp_error(out, rq, 500, "code_unreadable", NULL, "%s",
		                err);
		goto out;
	}
	if (r != 0) {
		db_error(out, rq, r, err, "rotating the code");
		goto out;
	}
	answer_with_code(out, 200, code_view(&got, &dc, code, prev));
out:
	sodium_memzero(custom, sizeof(custom));
	sodium_memzero(code, sizeof(code));
	sodium_memzero(&dc, sizeof(dc));
	json_decref(in);
	db_meeting_free(&m);
	db_meeting_free(&got);
}

/* ---- the waiting room (host side) ---------------------------------------- */

#define WAITING_LIST_MAX 500

void
gate_h_meeting_waiting(struct gate_app *app, const struct gate_rq *rq,
                       struct gate_resp *out)
{
	struct gate_principal p;
	struct db_meeting m;
	struct db_waiting *w = NULL;
	char err[512], since[40], until[40];
	size_t n = 0;
	json_t *arr, *e;
	int r;

	if (gate_auth_request(app, rq, &p, out) != 0 ||
	    load_meeting(app, rq, &p, 1, &m, out) != 0)
		return;
	r = db_waiting_list(app->db, m.id, WAITING_LIST_MAX, &w, &n, err,
	                    sizeof(err));
	if (r != 0) {
		db_error(out, rq, r == DB_ENOTFOUND ? DB_EQUERY : r, err,
		         "listing the waiting room");
		goto out;
	}
	arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++) {
		gate_time_fmt(w[i].since, since, sizeof(since));
		gate_time_fmt(w[i].expires_at, until, sizeof(until));
		e = json_pack("{s:s, s:s, s:s?, s:s, s:s}", "admission_id",
		              w[i].admission_id, "identity", w[i].identity,
		              "display_name", w[i].display_name, "since", since,
		              "expires_at", until);
		if (e == NULL || json_array_append_new(arr, e) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	if (arr == NULL)
		gate_resp_error(out, rq, 500, "internal", NULL,
		                "out of memory");
	else
		gate_resp_json(out, 200,
		               json_pack("{s:s, s:b, s:o}", "meeting_id", m.id,
		                         "waiting_room", m.waiting_room,
		                         "waiting", arr));
out:
	db_waiting_free(w, n);
	db_meeting_free(&m);
}

void
gate_h_meeting_waiting_decide(struct gate_app *app, const struct gate_rq *rq,
                              struct gate_resp *out)
{
	static const char admit_sfx[] = ":admit", deny_sfx[] = ":deny";
	struct gate_principal p;
	struct gate_wait_decision d;
	struct db_meeting m;
	char adm[37];
	const char *seg;
	size_t n, sl;
	json_t *in = NULL, *o;
	int admit;

	if (rq->nparams < 2) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "use POST /v1/meetings/{id}/waiting/"
		                "{admission_id}:admit or :deny");
		return;
	}
	seg = rq->params[1].p;
	n = rq->params[1].len;
	if (n > sizeof(admit_sfx) - 1 &&
	    memcmp(seg + n - (sizeof(admit_sfx) - 1), admit_sfx,
	           sizeof(admit_sfx) - 1) == 0) {
		admit = 1;
		sl = sizeof(admit_sfx) - 1;
	} else if (n > sizeof(deny_sfx) - 1 &&
	           memcmp(seg + n - (sizeof(deny_sfx) - 1), deny_sfx,
	                  sizeof(deny_sfx) - 1) == 0) {
		admit = 0;
		sl = sizeof(deny_sfx) - 1;
	} else {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "use POST /v1/meetings/{id}/waiting/"
		                "{admission_id}:admit or :deny");
		return;
	}
	if (n - sl != 36) {
		gate_resp_error(out, rq, 404, "not_found", NULL,
		                "no such waiting entry: admission ids are "
		                "UUIDs");
		return;
	}
	memcpy(adm, seg, 36);
	adm[36] = '\0';
	if (gate_auth_request(app, rq, &p, out) != 0 ||
	    load_meeting(app, rq, &p, 1, &m, out) != 0)
		return;
	if ((in = body_json(rq, 1, out)) == NULL)
		goto out;
	if (m.archived_at != 0) {
		gate_resp_error(out, rq, 409, "archived", NULL,
		                "the meeting is archived; nobody can be let in");
		goto out;
	}
	gate_waiting_decide(app, rq, &p, &m, adm, admit, &d);
	if (d.status == 200) {
		o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "admission_id",
		              d.admission_id, "meeting_id", m.id, "identity",
		              d.identity, "state", d.state, "decided_by",
		              p.identity);
		gate_resp_json(out, 200, o);
		goto out;
	}
	o = json_object();
	if (o != NULL && d.state[0] != '\0')
		json_object_set_new(o, "state", json_string(d.state));
	if (o != NULL && d.identity[0] != '\0')
		json_object_set_new(o, "identity", json_string(d.identity));
	if (o != NULL && d.directory != NULL)
		json_object_set_new(o, "directory", json_string(d.directory));
	if (d.status == 503)
		out->retry_after = 2;
	gate_resp_error(out, rq, d.status, d.code, o, "%s", d.message);
out:
	json_decref(in);
	db_meeting_free(&m);
}
