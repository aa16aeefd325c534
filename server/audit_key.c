/*
 * server/audit_key.c -- the audit Ed25519 key files (server/audit_key.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "server/audit_key.h"

#define SECRET_HEADER "roomgate-audit-key-v1"
#define PUBLIC_HEADER "roomgate-audit-public-key-v1"
#define KEYFILE_MAX 1024

void
gate_audit_kid(const unsigned char pk[32], char kid[17])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, pk, 32);
	sodium_bin2hex(kid, 17, h, 8);
}

void
gate_audit_pub_text(const unsigned char pk[32], char out[128])
{
	char kid[17], hex[65];

	gate_audit_kid(pk, kid);
	sodium_bin2hex(hex, sizeof(hex), pk, 32);
	snprintf(out, 128, PUBLIC_HEADER "\nkid %s\npublic %s\n", kid, hex);
}

/* Reads the whole file (at most KEYFILE_MAX - 1 bytes) into buf; *mode
 * (if mode is not NULL) receives its permission bits. */
static int
read_small(const char *path, int *mode, char *buf, size_t *len, char *err,
	   size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd, r = -1;

	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read audit key file %s: %s%s",
			 path, strerror(errno),
			 errno == ENOENT ? " (make one with `roomgate audit "
					   "keygen --out FILE`)"
					 : "");
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "audit key file %s is not a regular file",
			 path);
		goto out;
	}
	if (mode != NULL)
		*mode = (int)(st.st_mode & 07777);
	while ((n = read(fd, buf + *len, KEYFILE_MAX - 1 - *len)) > 0)
		*len += (size_t)n;
	if (n < 0 || *len == KEYFILE_MAX - 1) {
		snprintf(err, errlen,
			 "audit key file %s is unreadable or larger than %d "
			 "bytes",
			 path, KEYFILE_MAX - 1);
		goto out;
	}
	buf[*len] = '\0';
	r = 0;
out:
	close(fd);
	return r;
}

/*
 * Splits "header\nkid K\nNAME HEX\n" exactly. On success kid holds K and
 * val the decoded 32 bytes; *is_secret says which header it was.
 */
static int
parse_keyfile(const char *path, const char *buf, size_t len, int *is_secret,
	      char kid[17], unsigned char val[32], char *err, size_t errlen)
{
	const char *lines[3];
	size_t lens[3];
	const char *p = buf, *end = buf + len, *nl;
	const char *name;
	size_t bin_len = 0;
	int i;

	for (i = 0; i < 3; i++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			goto bad;
		lines[i] = p;
		lens[i] = (size_t)(nl - p);
		p = nl + 1;
	}
	if (p != end)
		goto bad;
	if (lens[0] == strlen(SECRET_HEADER) &&
	    memcmp(lines[0], SECRET_HEADER, lens[0]) == 0) {
		*is_secret = 1;
		name = "seed ";
	} else if (lens[0] == strlen(PUBLIC_HEADER) &&
		   memcmp(lines[0], PUBLIC_HEADER, lens[0]) == 0) {
		*is_secret = 0;
		name = "public ";
	} else {
		goto bad;
	}
	if (lens[1] != 4 + 16 || memcmp(lines[1], "kid ", 4) != 0)
		goto bad;
	memcpy(kid, lines[1] + 4, 16);
	kid[16] = '\0';
	for (i = 0; i < 16; i++)
		if (!((kid[i] >= '0' && kid[i] <= '9') ||
		      (kid[i] >= 'a' && kid[i] <= 'f')))
			goto bad;
	if (lens[2] != strlen(name) + 64 ||
	    memcmp(lines[2], name, strlen(name)) != 0 ||
	    sodium_hex2bin(val, 32, lines[2] + strlen(name), 64, NULL,
			   &bin_len, NULL) != 0 ||
	    bin_len != 32)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen,
		 "audit key file %s is not a %s or %s file (three lines: the "
		 "header, \"kid <16 hex>\", \"seed|public <64 hex>\"; made by "
		 "`roomgate audit keygen`)",
		 path, SECRET_HEADER, PUBLIC_HEADER);
	return -1;
}

int
gate_audit_key_load(const char *path, struct gate_audit_key *k, char *err,
		    size_t errlen)
{
	char buf[KEYFILE_MAX], kid[17], want[17];
	unsigned char seed[32];
	size_t len;
	int is_secret = 0, mode = 0, r = -1;

	memset(k, 0, sizeof(*k));
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialize");
		return -1;
	}
	if (read_small(path, &mode, buf, &len, err, errlen) != 0)
		goto out;
	if (parse_keyfile(path, buf, len, &is_secret, kid, seed, err,
			  errlen) != 0)
		goto out;
	if (!is_secret) {
		snprintf(err, errlen,
			 "audit key file %s holds only a public key; "
			 "[audit] signing_key_file needs the secret key file "
			 "made by `roomgate audit keygen`",
			 path);
		goto out;
	}
	if ((mode & 077) != 0) {
		snprintf(err, errlen,
			 "audit key file %s is accessible to group or others "
			 "(mode %04o); run: chmod 600 %s",
			 path, (unsigned)mode, path);
		goto out;
	}
	if (crypto_sign_seed_keypair(k->pk, k->sk, seed) != 0) {
		snprintf(err, errlen, "audit key file %s: bad seed", path);
		goto out;
	}
	gate_audit_kid(k->pk, want);
	if (strcmp(kid, want) != 0) {
		snprintf(err, errlen,
			 "audit key file %s: kid %s does not belong to its "
			 "key (expected %s); the file was edited",
			 path, kid, want);
		goto out;
	}
	memcpy(k->kid, kid, sizeof(k->kid));
	r = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(seed, sizeof(seed));
	if (r != 0)
		gate_audit_key_wipe(k);
	return r;
}

int
gate_audit_key_pub_load(const char *path, unsigned char pk[32], char kid[17],
			char *err, size_t errlen)
{
	struct gate_audit_key k;
	char buf[KEYFILE_MAX], fkid[17], want[17];
	unsigned char val[32];
	size_t len;
	int is_secret = 0, r = -1;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialize");
		return -1;
	}
	if (read_small(path, NULL, buf, &len, err, errlen) != 0)
		goto out;
	if (parse_keyfile(path, buf, len, &is_secret, fkid, val, err,
			  errlen) != 0)
		goto out;
	if (is_secret) {
		/* Same checks as for signing (mode, kid). */
		if (gate_audit_key_load(path, &k, err, errlen) != 0)
			goto out;
		memcpy(pk, k.pk, 32);
		memcpy(kid, k.kid, 17);
		gate_audit_key_wipe(&k);
		r = 0;
		goto out;
	}
	gate_audit_kid(val, want);
	if (strcmp(fkid, want) != 0) {
		snprintf(err, errlen,
			 "audit public key file %s: kid %s does not belong to "
			 "its key (expected %s); the file was edited",
			 path, fkid, want);
		goto out;
	}
	memcpy(pk, val, 32);
	memcpy(kid, fkid, 17);
	r = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(val, sizeof(val));
	return r;
}

void
gate_audit_sign(const struct gate_audit_key *k, const unsigned char *m,
		size_t n, unsigned char sig[64])
{
	crypto_sign_detached(sig, NULL, m, n, k->sk);
}

int
gate_audit_verify(const unsigned char pk[32], const unsigned char *m, size_t n,
		  const unsigned char sig[64])
{
	return crypto_sign_verify_detached(sig, m, n, pk) == 0 ? 0 : -1;
}

void
gate_audit_key_wipe(struct gate_audit_key *k)
{
	if (k != NULL)
		sodium_memzero(k, sizeof(*k));
}

static int
write_all(int fd, const char *s, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(fd, s + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	return fsync(fd);
}

int
gate_audit_key_generate(const char *path, const char *pubpath, char kid[17],
			char *err, size_t errlen)
{
	unsigned char seed[32], pk[32], sk[64];
	char text[256], hex[65], pubtext[128];
	int fd = -1, pfd = -1, r = -1, n;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialize");
		return -1;
	}
	randombytes_buf(seed, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	gate_audit_kid(pk, kid);
	sodium_bin2hex(hex, sizeof(hex), seed, sizeof(seed));
	n = snprintf(text, sizeof(text), SECRET_HEADER "\nkid %s\nseed %s\n",
		     kid, hex);
	gate_audit_pub_text(pk, pubtext);

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen,
			 errno == EEXIST ? "%s already exists; refusing to "
					   "overwrite an audit key (move it "
					   "away first)%s"
					 : "cannot create %s: %s",
			 path, errno == EEXIST ? "" : strerror(errno));
		goto out;
	}
	pfd = open(pubpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (pfd < 0) {
		snprintf(err, errlen,
			 errno == EEXIST ? "%s already exists; refusing to "
					   "overwrite it (move it away "
					   "first)%s"
					 : "cannot create %s: %s",
			 pubpath, errno == EEXIST ? "" : strerror(errno));
		close(fd);
		fd = -1;
		unlink(path);
		goto out;
	}
	if (n < 0 || (size_t)n >= sizeof(text) ||
	    write_all(fd, text, (size_t)n) != 0 ||
	    write_all(pfd, pubtext, strlen(pubtext)) != 0) {
		snprintf(err, errlen, "cannot write %s or %s: %s", path,
			 pubpath, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (fd >= 0) {
		close(fd);
		if (r != 0)
			unlink(path);
	}
	if (pfd >= 0) {
		close(pfd);
		if (r != 0)
			unlink(pubpath);
	}
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(hex, sizeof(hex));
	sodium_memzero(text, sizeof(text));
	return r;
}
