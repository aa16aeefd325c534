/*
 * The code vault: the [codes] policy plus the code keys -- the current key
 * set and older ones still accepted for codes stored under their key id --
 * and the operations that need them: store (hash + seal), reveal (unseal)
 * and verify a typed code. The only place that touches the code keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server/meetings.h"

int
gate_codes_policy_from_config(const struct gate_config *cfg,
                              struct gate_code_policy *p, char *err,
                              size_t errlen)
{
	char e[256];

	gate_code_policy_default(p);
	if (cfg->codes_rules != NULL &&
	    gate_code_rules_parse(cfg->codes_rules, &p->rules, e, sizeof(e)) !=
	        0) {
		snprintf(err, errlen, "[codes] rules = \"%.100s\": %s",
		         cfg->codes_rules, e);
		return -1;
	}
	if (cfg->codes_min_length >= GATE_CODE_MIN_LEN)
		p->min_length = cfg->codes_min_length;
	if (cfg->codes_length != 0 && cfg->codes_length < p->min_length) {
		snprintf(err, errlen,
		         "[codes] length = %d is below [codes] min_length = "
		         "%d; raise length or lower min_length",
		         cfg->codes_length, p->min_length);
		return -1;
	}
	return 0;
}

int
gate_codes_open(const struct gate_config *cfg, const struct gate_keys *keys,
                struct gate_codes **out, char *err, size_t errlen)
{
	struct gate_codes *c;
	const char *p;
	int r = -1;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->cur = keys;
	c->default_length =
	    cfg->codes_length ? cfg->codes_length : GATE_CODE_DEFAULT_LEN;
	c->rotation_check_s = cfg->codes_rotation_check_s;
	if (gate_codes_policy_from_config(cfg, &c->policy, err, errlen) != 0)
		goto out;
	p = cfg->codes_previous_key_files;
	while (p != NULL && *p != '\0') {
		char path[1024], e[768];
		size_t n;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (n == 0)
			break;
		if (n >= sizeof(path) || c->nold == GATE_MAX_OLD_KEYS) {
			snprintf(err, errlen,
			         "[codes] previous_key_files: at most %d files "
			         "of at most %zu bytes of path each",
			         GATE_MAX_OLD_KEYS, sizeof(path) - 1);
			goto out;
		}
		memcpy(path, p, n);
		path[n] = '\0';
		p += n;
		if (gate_keys_load(path, &c->old[c->nold], e, sizeof(e)) != 0) {
			snprintf(err, errlen, "[codes] previous_key_files: %s",
			         e);
			goto out;
		}
		c->nold++;
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	gate_codes_close(c);
	return r;
}

void
gate_codes_close(struct gate_codes *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < c->nold; i++)
		gate_keys_free(c->old[i]);
	free(c);
}

static const struct gate_keys *
keys_for(const struct gate_codes *c, const char *key_id)
{
	if (c->cur != NULL && strcmp(c->cur->key_id, key_id) == 0)
		return c->cur;
	for (int i = 0; i < c->nold; i++)
		if (strcmp(c->old[i]->key_id, key_id) == 0)
			return c->old[i];
	return NULL;
}

int
gate_codes_store(const struct gate_codes *c, const char *meeting_id,
                 const char *code, size_t len, const char *source,
                 struct db_code *out)
{
	memset(out, 0, sizeof(*out));
	gate_code_hash(c->cur->code_hmac, meeting_id, code, len, out->hash);
	if (gate_code_seal(c->cur->code_seal, code, len, out->sealed,
	                   sizeof(out->sealed), &out->sealed_len) != 0) {
		sodium_memzero(out, sizeof(*out));
		return -1;
	}
	snprintf(out->key_id, sizeof(out->key_id), "%s", c->cur->key_id);
	snprintf(out->source, sizeof(out->source), "%s", source);
	return 0;
}

int
gate_codes_reveal(const struct gate_codes *c, const struct db_code *dc,
                  char *out, size_t outsize, char *err, size_t errlen)
{
	const struct gate_keys *k = keys_for(c, dc->key_id);

	if (k == NULL) {
		snprintf(
		    err, errlen,
		    "the code was sealed with key id %s, which this server "
		    "does not have; add that key file to [codes] "
		    "previous_key_files, or rotate the code",
		    dc->key_id);
		return -1;
	}
	if (gate_code_unseal(k->code_seal, dc->sealed, dc->sealed_len, out,
	                     outsize) != 0) {
		snprintf(err, errlen,
		         "the stored code does not open with key id %s (wrong "
		         "key file, or the row was altered); rotate the code",
		         dc->key_id);
		return -1;
	}
	return 0;
}

int
gate_code_verify_live(struct gate_app *app, const char *meeting_id,
                      const struct db_code *live, size_t n,
                      const char *digits, size_t len, int *version)
{
	unsigned char mac[GATE_CODE_HASH_LEN];
	const struct gate_keys *done = NULL;
	int ok = 0;

	if (version != NULL)
		*version = 0;
	for (size_t i = 0; i < n && i < 2; i++) {
		const struct gate_keys *k =
		    keys_for(app->codes, live[i].key_id);

		if (k == NULL)
			continue; /* unknown key id: cannot match */
		/* Same key for both codes (the usual case): one HMAC. */
		if (k != done) {
			gate_code_hash(k->code_hmac, meeting_id, digits, len,
			               mac);
			done = k;
		}
		if (sodium_memcmp(mac, live[i].hash, sizeof(mac)) == 0 && !ok) {
			ok = 1;
			if (version != NULL)
				*version = live[i].version;
		}
	}
	sodium_memzero(mac, sizeof(mac));
	return ok;
}

int
gate_code_verify(struct gate_app *app, const char *meeting_id,
                 const char *digits, size_t len, int *version, char *err,
                 size_t errlen)
{
	struct db_code live[2];
	size_t n = 0;
	int r;

	if (version != NULL)
		*version = 0;
	r = db_code_live(app->db, meeting_id, live, &n, err, errlen);
	if (r != 0)
		return r;
	r = gate_code_verify_live(app, meeting_id, live, n, digits, len,
	                          version);
	sodium_memzero(live, sizeof(live));
	return r;
}
