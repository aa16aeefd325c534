/*
 * Server keys: a JSON file of base64 keys made by `roomgate keygen`, never
 * stored in the database (a database dump alone must not reveal codes or
 * let anyone mint join tokens).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "server/server.h"

#define KEYS_FORMAT "roomgate-keys-v1"
#define KEYS_MAX_FILE 8192

static const struct {
	const char *name;
	size_t off;
} key_fields[] = {
	{"code_hmac", offsetof(struct gate_keys, code_hmac)},
	{"code_seal", offsetof(struct gate_keys, code_seal)},
	{"token_hs256", offsetof(struct gate_keys, token_hs256)},
	{"audit_ed25519_seed", offsetof(struct gate_keys, audit_ed25519_seed)},
};
#define NFIELDS (sizeof(key_fields) / sizeof(key_fields[0]))

int
gate_keys_generate(const char *path, char *err, size_t errlen)
{
	unsigned char raw[GATE_KEY_LEN], idraw[8];
	char b64[sodium_base64_ENCODED_LEN(GATE_KEY_LEN,
					   sodium_base64_VARIANT_ORIGINAL)];
	char id[17];
	json_t *o = NULL, *ks;
	char *text = NULL;
	size_t len, off = 0;
	int fd = -1, r = -1;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialize");
		return -1;
	}
	o = json_object();
	ks = json_object();
	if (o == NULL || ks == NULL) {
		json_decref(ks);
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	randombytes_buf(idraw, sizeof(idraw));
	sodium_bin2hex(id, sizeof(id), idraw, sizeof(idraw));
	json_object_set_new(o, "format", json_string(KEYS_FORMAT));
	json_object_set_new(o, "key_id", json_string(id));
	for (size_t i = 0; i < NFIELDS; i++) {
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw),
				  sodium_base64_VARIANT_ORIGINAL);
		json_object_set_new(ks, key_fields[i].name, json_string(b64));
	}
	json_object_set_new(o, "keys", ks);
	text = json_dumps(o, JSON_INDENT(2));
	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	len = strlen(text);

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			snprintf(err, errlen,
				 "%s already exists; refusing to overwrite "
				 "server keys (codes sealed with them could "
				 "no longer be read). Move it away first if "
				 "you really mean to replace it",
				 path);
		else
			snprintf(err, errlen, "cannot create %s: %s", path,
				 strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "cannot write %s: %s", path,
				 strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", path,
			 strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (fd >= 0) {
		close(fd);
		if (r != 0)
			unlink(path);
	}
	if (text != NULL) {
		sodium_memzero(text, strlen(text));
		free(text);
	}
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(b64, sizeof(b64));
	json_decref(o);
	return r;
}

int
gate_keys_load(const char *path, struct gate_keys **out, char *err,
	       size_t errlen)
{
	struct gate_keys *k = NULL;
	char buf[KEYS_MAX_FILE];
	json_error_t jerr;
	json_t *o = NULL, *ks;
	const char *fmt, *id;
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd, r = -1;

	*out = NULL;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialize");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen,
			 "cannot read keys file %s: %s (make one with "
			 "`roomgate keygen -o %s`)",
			 path, strerror(errno), path);
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "keys file %s is not a regular file",
			 path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
			 "keys file %s is accessible to group or others "
			 "(mode %04o); run: chmod 600 %s",
			 path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0 || len == sizeof(buf) - 1) {
		snprintf(err, errlen, "keys file %s is unreadable or too large",
			 path);
		goto out;
	}
	buf[len] = '\0';
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		snprintf(err, errlen, "keys file %s: line %d: %s", path,
			 jerr.line, jerr.text);
		goto out;
	}
	fmt = json_string_value(json_object_get(o, "format"));
	id = json_string_value(json_object_get(o, "key_id"));
	ks = json_object_get(o, "keys");
	if (fmt == NULL || strcmp(fmt, KEYS_FORMAT) != 0 || id == NULL ||
	    strlen(id) != 16 || !json_is_object(ks)) {
		snprintf(err, errlen,
			 "keys file %s is not a %s file made by `roomgate "
			 "keygen`",
			 path, KEYS_FORMAT);
		goto out;
	}
	k = sodium_malloc(sizeof(*k));
	if (k == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memset(k, 0, sizeof(*k));
	snprintf(k->key_id, sizeof(k->key_id), "%s", id);
	for (size_t i = 0; i < NFIELDS; i++) {
		const char *b64 = json_string_value(
			json_object_get(ks, key_fields[i].name));
		size_t bin_len = 0;

		if (b64 == NULL ||
		    sodium_base642bin((unsigned char *)k + key_fields[i].off,
				      GATE_KEY_LEN, b64, strlen(b64), NULL,
				      &bin_len, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    bin_len != GATE_KEY_LEN) {
			snprintf(err, errlen,
				 "keys file %s: key \"%s\" is missing or not "
				 "%d bytes of base64",
				 path, key_fields[i].name, GATE_KEY_LEN);
			goto out;
		}
	}
	*out = k;
	k = NULL;
	r = 0;
out:
	close(fd);
	sodium_memzero(buf, sizeof(buf));
	/* jansson keeps its own copies of the strings: wipe them too. */
	if (o != NULL) {
		json_t *kobj = json_object_get(o, "keys");
		const char *name;
		json_t *v;

		json_object_foreach(kobj, name, v)
		{
			const char *s = json_string_value(v);

			if (s != NULL)
				sodium_memzero((char *)s, strlen(s));
		}
		json_decref(o);
	}
	gate_keys_free(k);
	return r;
}

void
gate_keys_free(struct gate_keys *k)
{
	if (k != NULL)
		sodium_free(k); /* wipes before releasing */
}
