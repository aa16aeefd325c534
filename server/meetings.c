/*
 * Meetings: validation of what a host sends (every error names the field
 * and the rule), the JSON the API shows, new ids and new codes. Shared by
 * the HTTP handlers and the CLI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "server/meetings.h"

#define MAX_TITLE_CHARS 200
#define MAX_GROUPS 100
#define MAX_GROUP_BYTES 1024
#define MAX_INVITEES 1000
#define MAX_IDENTITY_BYTES 256
#define MAX_ROOM_BYTES 256
#define MIN_ROTATION_S 3600LL
#define MAX_ROTATION_S (366LL * 86400)
#define MAX_GRACE_S (7LL * 86400)

static int fail(struct gate_field_err *fe, const char *field, const char *rule,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int
fail(struct gate_field_err *fe, const char *field, const char *rule,
     const char *fmt, ...)
{
	va_list ap;

	snprintf(fe->field, sizeof(fe->field), "%s", field);
	snprintf(fe->rule, sizeof(fe->rule), "%s", rule);
	va_start(ap, fmt);
	vsnprintf(fe->message, sizeof(fe->message), fmt, ap);
	va_end(ap);
	return -1;
}

void
gate_time_fmt(long long t, char *out, size_t outlen)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, outlen, "%lld", t);
}

/* Fixed-width digits at s[0..n). */
static int
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* RFC 3339: 2026-11-28T14:00:00Z, fractions and +hh:mm offsets allowed. */
static int
parse_time(const char *s, long long *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	const char *p;
	time_t t;

	if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' ||
	    digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
	    s[16] != ':' || digits(s + 17, 2, &sec))
		return -1;
	p = s + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (digits(p + 1, 2, &oh) || p[3] != ':' ||
		    digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0' || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 ||
	    d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm normalizes 31 Feb into March: refuse what moved. */
	if (tm.tm_mday != d || tm.tm_mon != mo - 1)
		return -1;
	*out = (long long)t - sign * (oh * 3600LL + om * 60LL);
	return 0;
}

static int
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static size_t
utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* A list of strings: groups (DNs) or invitees (identities). */
static int
string_list(json_t *v, const char *field, size_t max_items, size_t max_bytes,
            int dn, char ***out, size_t *nout, struct gate_field_err *fe)
{
	size_t n, i;
	char **list;

	if (!json_is_array(v))
		return fail(fe, field, "type", "%s must be an array of strings",
		            field);
	n = json_array_size(v);
	if (n > max_items)
		return fail(fe, field, "too_many",
		            "%s has %zu entries; at most %zu are allowed",
		            field, n, max_items);
	list = calloc(n + 1, sizeof(*list));
	if (list == NULL)
		return fail(fe, field, "internal", "out of memory");
	for (i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(v, i));
		size_t len = s ? strlen(s) : 0;

		if (s == NULL) {
			fail(fe, field, "type", "%s[%zu] must be a string",
			     field, i);
			goto bad;
		}
		if (len == 0 || len > max_bytes || has_control(s)) {
			fail(fe, field, "format",
			     "%s[%zu] must be 1 to %zu bytes of text without "
			     "control characters",
			     field, i, max_bytes);
			goto bad;
		}
		if (dn && strchr(s, '=') == NULL) {
			fail(fe, field, "dn",
			     "%s[%zu] is not a group DN (like "
			     "cn=staff,ou=groups,dc=example,dc=com)",
			     field, i);
			goto bad;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(list[j], s) == 0) {
				fail(fe, field, "duplicate",
				     "%s[%zu] repeats %s[%zu]", field, i, field,
				     j);
				goto bad;
			}
		}
		list[i] = strdup(s);
		if (list[i] == NULL) {
			fail(fe, field, "internal", "out of memory");
			goto bad;
		}
	}
	*out = list;
	*nout = n;
	return 0;
bad:
	for (size_t j = 0; j < i; j++)
		free(list[j]);
	free(list);
	return -1;
}

static void
free_list(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

static int
time_field(json_t *v, const char *field, long long *out,
           struct gate_field_err *fe)
{
	if (json_is_null(v)) {
		*out = 0;
		return 0;
	}
	if (!json_is_string(v) || parse_time(json_string_value(v), out) != 0)
		return fail(fe, field, "format",
		            "%s must be an RFC 3339 time such as "
		            "2026-12-01T14:00:00Z, or null",
		            field);
	return 0;
}

static int
int_field(json_t *v, const char *field, long long min, long long max,
          int nullable, long long *out, struct gate_field_err *fe)
{
	if (nullable && json_is_null(v)) {
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v))
		return fail(fe, field, "type", "%s must be a whole number%s",
		            field, nullable ? " or null" : "");
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return fail(fe, field, "range",
		            "%s must be from %lld to %lld%s", field, min, max,
		            nullable ? " (or null)" : "");
	*out = json_integer_value(v);
	return 0;
}

int
gate_custom_code_check(const struct gate_codes *codes, const char *typed,
                       int code_length, char *out, size_t outsize,
                       struct gate_field_err *fe)
{
	struct gate_code_verdict v;
	struct gate_code_policy p = codes->policy;
	char err[256];
	size_t n;
	int r;

	r = gate_code_normalize(typed, strlen(typed), code_length, out, outsize,
	                        &n, err, sizeof(err));
	if (r == GATE_CODE_ELENGTH)
		return fail(fe, "code", "code_length", "%s", err);
	if (r != GATE_CODE_OK)
		return fail(fe, "code", "code_format", "%s", err);
	if (gate_code_check(&p, out, n, &v) != 0) {
		json_t *list = json_array();

		for (int i = 0; i < GATE_CR_COUNT && list != NULL; i++)
			if (v.failed & (1u << i))
				json_array_append_new(
				    list, json_pack("{s:s, s:s}", "rule",
				                    gate_code_rule_name(i),
				                    "message", v.why[i]));
		fail(fe, "code", gate_code_rule_name(v.first), "%s",
		     v.why[v.first]);
		fe->extra = json_pack("{s:o*}", "violations", list);
		sodium_memzero(&v, sizeof(v));
		sodium_memzero(out, outsize);
		return -1;
	}
	return 0;
}

static void
lower_ascii(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static int
room_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MAX_ROOM_BYTES)
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
		      *s == '.'))
			return 0;
	return 1;
}

int
gate_meeting_from_json(const struct gate_codes *codes, json_t *in, int create,
                       const struct gate_principal *p, struct db_meeting *m,
                       char *custom_code, size_t custom_size,
                       struct gate_field_err *fe)
{
	static const char *const known[] = {"title",
	                                    "host_identity",
	                                    "allowed_groups",
	                                    "invitees",
	                                    "waiting_room",
	                                    "starts_at",
	                                    "ends_at",
	                                    "code_length",
	                                    "rotation_interval_seconds",
	                                    "grace_period_seconds",
	                                    "platform_room",
	                                    "code",
	                                    NULL};
	const char *key;
	json_t *v;
	long long n = 0;

	memset(fe, 0, sizeof(*fe));
	if (custom_code != NULL && custom_size > 0)
		custom_code[0] = '\0';
	if (!json_is_object(in))
		return fail(fe, "body", "type",
		            "the body must be a JSON object");
	json_object_foreach(in, key, v)
	{
		int ok = 0;

		for (int i = 0; known[i] != NULL; i++)
			if (strcmp(known[i], key) == 0)
				ok = 1;
		if (!ok)
			return fail(fe, key, "unknown_field",
			            "%.40s is not a meeting field (fields: "
			            "title, host_identity, allowed_groups, "
			            "invitees, waiting_room, starts_at, "
			            "ends_at, code_length, "
			            "rotation_interval_seconds, "
			            "grace_period_seconds, platform_room, "
			            "code)",
			            key);
	}
	if (create) {
		m->code_length = codes->default_length;
		m->waiting_room = 0;
	}

	if ((v = json_object_get(in, "title")) != NULL) {
		const char *s = json_string_value(v);

		if (s == NULL)
			return fail(fe, "title", "type",
			            "title must be a string");
		if (*s == '\0' || utf8_chars(s) > MAX_TITLE_CHARS ||
		    has_control(s))
			return fail(fe, "title", "length",
			            "title must be 1 to %d characters without "
			            "control characters",
			            MAX_TITLE_CHARS);
		free(m->title);
		if ((m->title = strdup(s)) == NULL)
			return fail(fe, "title", "internal", "out of memory");
	} else if (create) {
		return fail(fe, "title", "required", "title is required");
	}

	v = json_object_get(in, "host_identity");
	if (v != NULL && !create)
		return fail(fe, "host_identity", "read_only",
		            "a meeting's host cannot change; create the "
		            "meeting under the new host");
	if (create) {
		const char *s = v ? json_string_value(v) : p->identity;

		if (s == NULL || *s == '\0' || strlen(s) > MAX_IDENTITY_BYTES ||
		    has_control(s))
			return fail(fe, "host_identity", "format",
			            "host_identity must be 1 to %d bytes of "
			            "text",
			            MAX_IDENTITY_BYTES);
		if (strcmp(s, p->identity) != 0 &&
		    !(p->roles & GATE_ROLE_ADMIN))
			return fail(fe, "host_identity", "forbidden",
			            "only an admin may create a meeting for "
			            "another host");
		free(m->host_identity);
		if ((m->host_identity = strdup(s)) == NULL)
			return fail(fe, "host_identity", "internal",
			            "out of memory");
	}

	if ((v = json_object_get(in, "allowed_groups")) != NULL) {
		char **l = NULL;
		size_t k = 0;

		if (string_list(v, "allowed_groups", MAX_GROUPS,
		                MAX_GROUP_BYTES, 1, &l, &k, fe) != 0)
			return -1;
		free_list(m->groups, m->ngroups);
		m->groups = l;
		m->ngroups = k;
	}
	if ((v = json_object_get(in, "invitees")) != NULL) {
		char **l = NULL;
		size_t k = 0;

		if (string_list(v, "invitees", MAX_INVITEES, MAX_IDENTITY_BYTES,
		                0, &l, &k, fe) != 0)
			return -1;
		free_list(m->invitees, m->ninvitees);
		m->invitees = l;
		m->ninvitees = k;
	}
	if (m->ngroups == 0 && m->ninvitees == 0)
		return fail(fe, "allowed_groups", "required",
		            "name at least one allowed directory group "
		            "(allowed_groups), or list the invitees "
		            "explicitly (invitees)");

	if ((v = json_object_get(in, "waiting_room")) != NULL) {
		if (!json_is_boolean(v))
			return fail(fe, "waiting_room", "type",
			            "waiting_room must be true or false");
		m->waiting_room = json_is_true(v);
	}
	if ((v = json_object_get(in, "starts_at")) != NULL &&
	    time_field(v, "starts_at", &m->starts_at, fe) != 0)
		return -1;
	if ((v = json_object_get(in, "ends_at")) != NULL &&
	    time_field(v, "ends_at", &m->ends_at, fe) != 0)
		return -1;
	if (m->starts_at != 0 && m->ends_at != 0 && m->ends_at <= m->starts_at)
		return fail(fe, "ends_at", "after_start",
		            "ends_at must be later than starts_at");

	if ((v = json_object_get(in, "code_length")) != NULL) {
		if (!create)
			return fail(fe, "code_length", "use_rotate",
			            "the code length changes with a new code: "
			            "POST /v1/meetings/{id}/code:rotate with "
			            "{\"code_length\": N}");
		if (int_field(v, "code_length", GATE_CODE_MIN_LEN,
		              GATE_CODE_MAX_LEN, 0, &n, fe) != 0)
			return -1;
		m->code_length = (int)n;
	}
	if ((v = json_object_get(in, "rotation_interval_seconds")) != NULL) {
		if (int_field(v, "rotation_interval_seconds", MIN_ROTATION_S,
		              MAX_ROTATION_S, 1, &n, fe) != 0)
			return -1;
		m->rotation_interval_s = n;
	}
	if ((v = json_object_get(in, "grace_period_seconds")) != NULL) {
		if (int_field(v, "grace_period_seconds", 0, MAX_GRACE_S, 0, &n,
		              fe) != 0)
			return -1;
		m->grace_period_s = n;
	}
	if ((v = json_object_get(in, "platform_room")) != NULL) {
		const char *s = json_string_value(v);

		if (s == NULL || !room_ok(s))
			return fail(fe, "platform_room", "format",
			            "platform_room must be 1 to %d of the "
			            "characters A-Z a-z 0-9 - _ . (kept in "
			            "lower case, as Jitsi compares rooms)",
			            MAX_ROOM_BYTES);
		free(m->platform_room);
		if ((m->platform_room = strdup(s)) == NULL)
			return fail(fe, "platform_room", "internal",
			            "out of memory");
		/* Jitsi compares room names lowercased: "Team" and "team"
		 * are one room there, so they must be one room here too, or
		 * a host could name another meeting's room in different case
		 * and mint tokens for it. Stored lowercased, so the unique
		 * index on live rooms sees them as the same. */
		lower_ascii(m->platform_room);
	} else if (create) {
		char room[40];

		/* Default: unique because the link id is. */
		snprintf(room, sizeof(room), "rg-%.24s", m->link_id);
		lower_ascii(room);
		if ((m->platform_room = strdup(room)) == NULL)
			return fail(fe, "platform_room", "internal",
			            "out of memory");
	}

	if ((v = json_object_get(in, "code")) != NULL) {
		if (!create)
			return fail(fe, "code", "use_rotate",
			            "a new code comes from POST "
			            "/v1/meetings/{id}/code:rotate");
		if (!json_is_string(v))
			return fail(fe, "code", "type",
			            "code must be a string of digits (leading "
			            "zeros count)");
		if (custom_code == NULL ||
		    gate_custom_code_check(codes, json_string_value(v),
		                           m->code_length, custom_code,
		                           custom_size, fe) != 0)
			return -1;
	}
	return 0;
}

static json_t *
str_array(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
time_or_null(long long t)
{
	char buf[40];

	if (t == 0)
		return json_null();
	gate_time_fmt(t, buf, sizeof(buf));
	return json_string(buf);
}

json_t *
gate_meeting_to_json(const struct gate_config *cfg, const struct db_meeting *m)
{
	char link[600];

	snprintf(link, sizeof(link), "%s/j/%s", cfg->public_url, m->link_id);
	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:b, s:o, s:o, s:i, s:o, "
	    "s:I, s:s, s:o, s:o, s:o, s:i, s:o}",
	    "id", m->id, "link_id", m->link_id, "link", link, "title", m->title,
	    "host_identity", m->host_identity, "allowed_groups",
	    str_array(m->groups, m->ngroups), "invitees",
	    str_array(m->invitees, m->ninvitees), "waiting_room",
	    m->waiting_room, "starts_at", time_or_null(m->starts_at), "ends_at",
	    time_or_null(m->ends_at), "code_length", m->code_length,
	    "rotation_interval_seconds",
	    m->rotation_interval_s ? json_integer(m->rotation_interval_s)
	                           : json_null(),
	    "grace_period_seconds", (json_int_t)m->grace_period_s,
	    "platform_room", m->platform_room, "created_at",
	    time_or_null(m->created_at), "updated_at",
	    time_or_null(m->updated_at), "archived_at",
	    time_or_null(m->archived_at), "code_version", m->code_version,
	    "code_rotates_at", time_or_null(m->code_rotates_at));
}

int
gate_meeting_new_code(const struct gate_codes *codes, const char *meeting_id,
                      int length, const char *custom, char *code,
                      size_t codesize, struct db_code *dc)
{
	int r = -1;

	if (custom != NULL && custom[0] != '\0') {
		if ((size_t)snprintf(code, codesize, "%s", custom) >= codesize)
			goto out;
	} else if (gate_code_generate(&codes->policy, length, code, codesize) !=
	           0) {
		goto out;
	}
	if (gate_codes_store(codes, meeting_id, code, strlen(code),
	                     custom != NULL && custom[0] != '\0' ? "custom"
	                                                         : "generated",
	                     dc) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		sodium_memzero(code, codesize);
	return r;
}

void
gate_meeting_new_ids(struct db_meeting *m)
{
	unsigned char u[16], l[32];

	randombytes_buf(u, sizeof(u));
	u[6] = (unsigned char)((u[6] & 0x0F) | 0x40); /* version 4 */
	u[8] = (unsigned char)((u[8] & 0x3F) | 0x80); /* RFC 4122 variant */
	snprintf(m->id, sizeof(m->id),
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	         "%02x%02x%02x%02x%02x%02x",
	         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
	         u[10], u[11], u[12], u[13], u[14], u[15]);
	randombytes_buf(l, sizeof(l));
	sodium_bin2base64(m->link_id, sizeof(m->link_id), l, sizeof(l),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
