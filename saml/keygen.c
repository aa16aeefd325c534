/* A self-signed RSA key pair for SAML signing, with OpenSSL libcrypto. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "saml/saml.h"

/* Opens path for writing; refuses an existing file. Caller fcloses. */
static FILE *
create_excl(const char *path, mode_t mode, char *err, size_t errlen)
{
	FILE *f;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s%s", path,
			 strerror(errno),
			 errno == EEXIST ? " (never overwritten; remove it "
					   "first)"
					 : "");
		return NULL;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		snprintf(err, errlen, "cannot write %s: %s", path,
			 strerror(errno));
		close(fd);
	}
	return f;
}

int
saml_keygen(const char *key_path, const char *cert_path, const char *cn,
	    int days, char *err, size_t errlen)
{
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	FILE *kf = NULL, *cf = NULL;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int r = -1, key_made = 0, cert_made = 0;

	if (key_path == NULL || cert_path == NULL || cn == NULL || days < 1) {
		snprintf(err, errlen, "key, certificate and name are required");
		goto out;
	}
	pk = EVP_RSA_gen(2048);
	x = X509_new();
	if (pk == NULL || x == NULL || RAND_bytes(serial, sizeof(serial)) != 1) {
		snprintf(err, errlen, "key generation failed");
		goto out;
	}
	serial[0] &= 0x7f; /* a positive serial */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ==
				  NULL ||
	    X509_set_version(x, 2) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -300) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L) ==
		    NULL ||
	    X509_set_pubkey(x, pk) != 1 ||
	    (name = X509_get_subject_name(x)) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
				       (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 ||
	    X509_sign(x, pk, EVP_sha256()) <= 0) {
		snprintf(err, errlen,
			 "certificate creation failed (is the name \"%.64s\" "
			 "too long?)",
			 cn);
		goto out;
	}
	if ((kf = create_excl(key_path, 0600, err, errlen)) == NULL)
		goto out;
	key_made = 1;
	if ((cf = create_excl(cert_path, 0644, err, errlen)) == NULL)
		goto out;
	cert_made = 1;
	if (PEM_write_PrivateKey(kf, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_X509(cf, x) != 1) {
		snprintf(err, errlen, "cannot write the key or certificate");
		goto out;
	}
	if (fclose(kf) != 0 || fclose(cf) != 0) {
		kf = cf = NULL;
		snprintf(err, errlen, "cannot write the key or certificate");
		goto out;
	}
	kf = cf = NULL;
	r = 0;
out:
	if (kf != NULL)
		fclose(kf);
	if (cf != NULL)
		fclose(cf);
	if (r != 0) {
		/* Leave no half-made pair behind. */
		if (key_made)
			unlink(key_path);
		if (cert_made)
			unlink(cert_path);
	}
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pk);
	return r;
}
