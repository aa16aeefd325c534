/*
 * Integration: RS256 join tokens and GET /.well-known/jwks.json, end to
 * end. The signing key is made here with libcrypto, a rotated-out key with
 * `roomgate jwt-keygen`; alice signs in at the test IdP, types the code on
 * the join page and is sent to the platform URL. The test then does what
 * a platform does: fetches the JWKS, rebuilds the public key from n and e,
 * checks the signature and every claim -- with its own code, not jwt.c's.
 * Also: the JWKS is empty under HS256, and serve refuses missing, small,
 * non-RSA and readable-by-others key files at startup, saying why.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

/* The shared SAML helpers: this file uses only some of them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tests/integration/admit_th.h"
#pragma GCC diagnostic pop

#define SP_ENTITY "https://roomgate-jwks.test/saml/metadata"
#define IDP_ENTITY "https://idp-jwks.test/saml"
#define SECRET "jitsi-shared-secret-for-the-jwks-tests"
#define GROUP "cn=meeting-allowed,ou=groups,dc=example,dc=com"

static struct {
	int idp_port, rs_port, hs_port;
	char base[64], hs_base[64], idp_base[64];
	struct th_server rs, hs;
	pid_t idp;
	PGconn *pg;
	char host_token[64];
	char key_path[512], prev_path[512], cfg_path[512];
	char kid[64], prev_kid[64]; /* thumbprints computed here */
	struct sth_browser alice;
} T;

/* base64url (no padding) of data, as a heap string. */
static char *
b64url(const unsigned char *data, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(
	    len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *s = malloc(n);

	assert_non_null(s);
	sodium_bin2base64(s, n, data, len,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

/* Decodes base64url into a heap buffer; *len its length. */
static unsigned char *
unb64url(const char *s, size_t slen, size_t *len)
{
	unsigned char *out = malloc(slen + 1);

	assert_non_null(out);
	if (sodium_base642bin(out, slen + 1, s, slen, NULL, len, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		fail_msg("not base64url: %.*s", (int)slen, s);
	return out;
}

/* RFC 7638 thumbprint from base64url n and e, computed by this test. */
static void
thumbprint(const char *n, const char *e, char out[64])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char canon[4096];
	char *s;

	snprintf(canon, sizeof(canon),
	         "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e, n);
	crypto_hash_sha256(h, (const unsigned char *)canon, strlen(canon));
	s = b64url(h, sizeof(h));
	snprintf(out, 64, "%s", s);
	free(s);
}

static void
thumbprint_of(EVP_PKEY *pk, char out[64])
{
	BIGNUM *n = NULL, *e = NULL;
	unsigned char nb[1024], eb[16];
	char *ns, *es;

	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n),
	                 1);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e),
	                 1);
	ns = b64url(nb, (size_t)BN_bn2bin(n, nb));
	es = b64url(eb, (size_t)BN_bn2bin(e, eb));
	thumbprint(ns, es, out);
	free(ns);
	free(es);
	BN_free(n);
	BN_free(e);
}

/* A PEM private key of bits bits (RSA) or an EC key, written with mode. */
static void
write_key(const char *name, int bits, mode_t mode, char *path, size_t n,
          EVP_PKEY **keep)
{
	EVP_PKEY *pk = bits > 0 ? EVP_RSA_gen((unsigned int)bits)
	                        : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	FILE *f;

	assert_non_null(pk);
	sth_path(path, n, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL),
	                 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	if (keep != NULL)
		*keep = pk;
	else
		EVP_PKEY_free(pk);
}

static const char *
node_ini(const char *tokens)
{
	static char ini[4096];
	char key[512], crt[512], md[512];

	sth_path(key, sizeof(key), "sp.key");
	sth_path(crt, sizeof(crt), "sp.crt");
	sth_path(md, sizeof(md), "jwks-idp-md.xml");
	snprintf(ini, sizeof(ini),
	         "[server]\npublic_url = %s\nthreads = 4\n"
	         "[database]\nmigrate_on_start = true\n"
	         "[ldap]\nbase_dn = %s\n"
	         "[saml]\nentity_id = " SP_ENTITY "\nkey_file = %s\n"
	         "cert_file = %s\nidp_metadata_file = %s\n"
	         "directory_key = uid\n"
	         "[admission]\nredirect_url = https://meet.example.com/{room}"
	         "?jwt={token}\n"
	         "[tokens]\nissuer = roomgate-test\naudience = jitsi\n"
	         "subject = meet.example.com\n%s",
	         T.base, th_env("RG_TEST_LDAP_BASE_DN"), key, crt, md, tokens);
	return ini;
}

/* ---- fixture ---------------------------------------------------------- */

static int
setup(void **state)
{
	char spmd[512], tokens[1200], out[2048];
	const char *sps[2];
	EVP_PKEY *cur = NULL, *prev = NULL;
	const char *argv[6];
	FILE *f;
	struct stat st;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sth_keypair("sp");
	sth_keypair("idp");
	sth_keypair("alt");
	/* The signing key, made here; the rotated-out one by the CLI. */
	write_key("jwks-rs256.pem", 2048, 0600, T.key_path, sizeof(T.key_path),
	          &cur);
	thumbprint_of(cur, T.kid);
	EVP_PKEY_free(cur);
	sth_path(T.prev_path, sizeof(T.prev_path), "jwks-rs256-old.pem");
	argv[0] = th_env("RG_TEST_BIN");
	argv[1] = "jwt-keygen";
	argv[2] = "--bits";
	argv[3] = "2048";
	argv[4] = T.prev_path;
	argv[5] = NULL;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 0)
		fail_msg("jwt-keygen failed: %s", out);
	assert_int_equal(stat(T.prev_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	f = fopen(T.prev_path, "r");
	assert_non_null(f);
	prev = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(prev);
	thumbprint_of(prev, T.prev_kid);
	EVP_PKEY_free(prev);
	/* It prints the kid; a second run never overwrites the file. */
	assert_non_null(strstr(out, T.prev_kid));
	assert_int_equal(th_run_capture(argv, NULL, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "never overwritten"));

	T.idp_port = th_free_port();
	T.rs_port = th_free_port();
	T.hs_port = th_free_port();
	snprintf(T.idp_base, sizeof(T.idp_base), "http://127.0.0.1:%d",
	         T.idp_port);
	snprintf(T.base, sizeof(T.base), "http://127.0.0.1:%d", T.rs_port);
	snprintf(T.hs_base, sizeof(T.hs_base), "http://127.0.0.1:%d",
	         T.hs_port);
	sth_idp_metadata(IDP_ENTITY, T.idp_base, "jwks-idp-md.xml");
	sth_path(spmd, sizeof(spmd), "jwks-sp-md.xml");
	sps[0] = spmd;
	sps[1] = NULL;
	T.idp = sth_idp_start(IDP_ENTITY, T.idp_base, T.idp_port, sps);
	snprintf(tokens, sizeof(tokens),
	         "alg = RS256\nrs256_key_file = %s\n"
	         "rs256_previous_key_files = %s\n",
	         T.key_path, T.prev_path);
	snprintf(T.cfg_path, sizeof(T.cfg_path), "%s",
	         th_config("jwks-rs.ini", node_ini(tokens)));
	th_server_start(&T.rs, T.cfg_path, T.rs_port);
	th_server_start(
	    &T.hs,
	    th_config("jwks-hs.ini", node_ini("hs256_secret = " SECRET "\n")),
	    T.hs_port);
	sth_save_sp_metadata(T.base, "jwks-sp-md.xml");
	T.pg = sth_pg();
	ath_token(T.cfg_path, "host", "jwks-host", "alice", T.host_token);
	sth_browser_init(&T.alice);
	sth_sign_in(&T.alice, T.base, T.idp_base, "alice");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sth_browser_free(&T.alice);
	sth_idp_stop(T.idp);
	th_server_stop(&T.rs);
	th_server_stop(&T.hs);
	PQfinish(T.pg);
	curl_global_cleanup();
	return 0;
}

/* ---- helpers ---------------------------------------------------------- */

/* GET base/.well-known/jwks.json: the parsed document; headers checked. */
static json_t *
fetch_jwks(const char *base)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128], v[256];
	json_t *doc;

	assert_non_null(r);
	snprintf(url, sizeof(url), "%s/.well-known/jwks.json", base);
	if (th_http("GET", url, NULL, NULL, 0, r) != 200)
		fail_msg("jwks: %ld %s", r->status, r->body);
	assert_non_null(th_http_header(r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/json");
	assert_non_null(th_http_header(r, "Cache-Control", v, sizeof(v)));
	assert_string_equal(v, "public, max-age=300");
	/* Only that one: not also the default no-store. */
	assert_null(strstr(r->headers, "no-store"));
	doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);
	if (doc == NULL)
		fail_msg("jwks is not JSON: %s", r->body);
	free(r);
	return doc;
}

/* The RSA public key rebuilt from a JWK's n and e with libcrypto. */
static EVP_PKEY *
key_from_jwk(json_t *jwk)
{
	const char *ns = json_string_value(json_object_get(jwk, "n"));
	const char *es = json_string_value(json_object_get(jwk, "e"));
	unsigned char *nb, *eb;
	size_t nl, el;
	BIGNUM *n, *e;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pk = NULL;

	assert_non_null(ns);
	assert_non_null(es);
	nb = unb64url(ns, strlen(ns), &nl);
	eb = unb64url(es, strlen(es), &el);
	/* Minimal big-endian octets, as JWK requires (RFC 7518 6.3.1). */
	assert_true(nl > 0 && nb[0] != 0);
	assert_true(el > 0 && eb[0] != 0);
	n = BN_bin2bn(nb, (int)nl, NULL);
	e = BN_bin2bn(eb, (int)el, NULL);
	assert_non_null(bld);
	assert_non_null(ctx);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n),
	                 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e),
	                 1);
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	free(nb);
	free(eb);
	return pk;
}

/* The JWK with this kid in doc, or NULL. */
static json_t *
jwk_by_kid(json_t *doc, const char *kid)
{
	json_t *keys = json_object_get(doc, "keys"), *k;
	size_t i;

	json_array_foreach(keys, i, k)
	{
		const char *v = json_string_value(json_object_get(k, "kid"));

		if (v != NULL && strcmp(v, kid) == 0)
			return k;
	}
	return NULL;
}

/* Verifies tok the way a platform does, with the JWKS: header, signature
 * (RSASSA-PKCS1-v1_5 SHA-256 under the key named by kid), returns the
 * header and claims. */
static void
platform_verify(const char *tok, json_t *jwks, json_t **header, json_t **claims)
{
	const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
	unsigned char *hb, *pb, *sig;
	size_t hl, pl, sl;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pk;
	json_t *jwk;
	const char *kid;

	assert_non_null(d1);
	assert_true(d2 > d1);
	hb = unb64url(tok, (size_t)(d1 - tok), &hl);
	pb = unb64url(d1 + 1, (size_t)(d2 - d1 - 1), &pl);
	sig = unb64url(d2 + 1, strlen(d2 + 1), &sl);
	*header =
	    json_loadb((const char *)hb, hl, JSON_REJECT_DUPLICATES, NULL);
	*claims =
	    json_loadb((const char *)pb, pl, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(*header);
	assert_non_null(*claims);
	kid = json_string_value(json_object_get(*header, "kid"));
	assert_non_null(kid);
	jwk = jwk_by_kid(jwks, kid);
	if (jwk == NULL)
		fail_msg("kid %s is not in the JWKS", kid);
	pk = key_from_jwk(jwk);
	assert_int_equal(EVP_PKEY_get_bits(pk), 2048);
	assert_int_equal((int)sl, EVP_PKEY_get_size(pk));
	assert_int_equal(
	    EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pk), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING),
	                 1);
	assert_int_equal(EVP_DigestVerify(md, sig, sl,
	                                  (const unsigned char *)tok,
	                                  (size_t)(d2 - tok)),
	                 1);
	/* One flipped signature bit and it fails. */
	sig[sl / 2] ^= 0x01;
	assert_int_equal(
	    EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pk), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING),
	                 1);
	assert_int_not_equal(EVP_DigestVerify(md, sig, sl,
	                                      (const unsigned char *)tok,
	                                      (size_t)(d2 - tok)),
	                     1);
	EVP_PKEY_free(pk);
	EVP_MD_CTX_free(md);
	free(hb);
	free(pb);
	free(sig);
}

/* GET the join page and POST the form with the code; the response. */
static long
join_page(struct sth_browser *b, const char *link, const char *code,
          struct sth_resp *r)
{
	char url[256], body[512];
	char *csrf;

	snprintf(url, sizeof(url), "%s/j/%s", T.base, link);
	if (sth_do(b, url, NULL, 0, r) != 200)
		fail_msg("GET /j/%s: %ld %s", link, r->status, r->body);
	csrf = sth_form_field(r->body, "csrf");
	assert_non_null(csrf);
	sth_resp_free(r);
	snprintf(body, sizeof(body), "csrf=%s&code=%s", csrf, code);
	free(csrf);
	return sth_do(b, url, body, strlen(body), r);
}

/* What Jitsi's token plugin does with asap_key_server: GET
 * <server>/<hex(sha256(kid))>.pem and read the PEM public key. */
static EVP_PKEY *
fetch_asap_key(const char *base, const char *kid)
{
	struct th_http *r = calloc(1, sizeof(*r));
	unsigned char h[crypto_hash_sha256_BYTES];
	char hexname[2 * crypto_hash_sha256_BYTES + 1], url[256], v[128];
	EVP_PKEY *pk;
	BIO *bio;

	assert_non_null(r);
	crypto_hash_sha256(h, (const unsigned char *)kid, strlen(kid));
	sodium_bin2hex(hexname, sizeof(hexname), h, sizeof(h));
	snprintf(url, sizeof(url), "%s/jwt-keys/%s.pem", base, hexname);
	if (th_http("GET", url, NULL, NULL, 0, r) != 200)
		fail_msg("asap key %s: %ld %s", url, r->status, r->body);
	assert_non_null(th_http_header(r, "Cache-Control", v, sizeof(v)));
	assert_string_equal(v, "public, max-age=300");
	assert_non_null(strstr(r->body, "-----BEGIN PUBLIC KEY-----"));
	assert_null(strstr(r->body, "PRIVATE"));
	bio = BIO_new_mem_buf(r->body, (int)r->body_len);
	assert_non_null(bio);
	pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	assert_non_null(pk);
	BIO_free(bio);
	free(r);
	return pk;
}

/* ---- tests ------------------------------------------------------------ */

static void
jwks_lists_current_and_previous_keys(void **state)
{
	json_t *doc = fetch_jwks(T.base), *keys, *k;
	size_t i;

	(void)state;
	assert_int_equal(json_object_size(doc), 1);
	keys = json_object_get(doc, "keys");
	assert_int_equal(json_array_size(keys), 2);
	json_array_foreach(keys, i, k)
	{
		char tp[64];
		EVP_PKEY *pk;

		assert_int_equal(json_object_size(k), 6);
		assert_string_equal(
		    json_string_value(json_object_get(k, "kty")), "RSA");
		assert_string_equal(
		    json_string_value(json_object_get(k, "use")), "sig");
		assert_string_equal(
		    json_string_value(json_object_get(k, "alg")), "RS256");
		/* kid is the thumbprint of the n and e published with it. */
		thumbprint(json_string_value(json_object_get(k, "n")),
		           json_string_value(json_object_get(k, "e")), tp);
		assert_string_equal(
		    json_string_value(json_object_get(k, "kid")), tp);
		pk = key_from_jwk(k);
		assert_int_equal(EVP_PKEY_get_bits(pk), 2048);
		EVP_PKEY_free(pk);
	}
	/* The signing key first, then the rotated-out one. */
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(keys, 0), "kid")),
	    T.kid);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(keys, 1), "kid")),
	    T.prev_kid);
	/* Public parts only. */
	assert_null(json_object_get(json_array_get(keys, 0), "d"));
	assert_null(json_object_get(json_array_get(keys, 1), "d"));
	json_decref(doc);
}

static void
asap_key_server_serves_each_key_as_pem(void **state)
{
	json_t *doc = fetch_jwks(T.base), *k;
	struct th_http *r = calloc(1, sizeof(*r));
	char url[256];
	size_t i;

	(void)state;
	assert_non_null(r);
	json_array_foreach(json_object_get(doc, "keys"), i, k)
	{
		EVP_PKEY *pem = fetch_asap_key(
		    T.base, json_string_value(json_object_get(k, "kid")));
		EVP_PKEY *jwk = key_from_jwk(k);

		assert_int_equal(EVP_PKEY_eq(pem, jwk), 1);
		EVP_PKEY_free(pem);
		EVP_PKEY_free(jwk);
	}
	/* A kid itself, a name of no key, and anything under HS256: 404. */
	snprintf(url, sizeof(url), "%s/jwt-keys/%s.pem", T.base, T.kid);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 404);
	assert_non_null(strstr(r->body, "unknown_key"));
	snprintf(
	    url, sizeof(url),
	    "%s/jwt-keys/"
	    "00000000000000000000000000000000000000000000000000000000000000"
	    "00.pem",
	    T.base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 404);
	snprintf(
	    url, sizeof(url),
	    "%s/jwt-keys/"
	    "00000000000000000000000000000000000000000000000000000000000000"
	    "00.pem",
	    T.hs_base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 404);
	json_decref(doc);
	free(r);
}

static void
join_redirect_carries_an_rs256_token_the_platform_verifies(void **state)
{
	char link[80], code[16], id[40], *room, *adm;
	struct sth_resp r;
	json_t *jwks, *h, *c, *u;
	const char *jwt;
	long long now = (long long)time(NULL), nbf, exp;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "jwks rs256", 0, link,
	                code, id);
	assert_int_equal(join_page(&T.alice, link, code, &r), 303);
	assert_true(strncmp(r.location, "https://meet.example.com/", 25) == 0);
	jwt = strstr(r.location, "?jwt=");
	assert_non_null(jwt);
	jwt += 5;
	jwks = fetch_jwks(T.base);
	platform_verify(jwt, jwks, &h, &c);
	/* Jitsi's route to the same key: asap_key_server by kid. */
	{
		EVP_PKEY *a = fetch_asap_key(T.base, T.kid);
		EVP_PKEY *j = key_from_jwk(jwk_by_kid(jwks, T.kid));

		assert_int_equal(EVP_PKEY_eq(a, j), 1);
		EVP_PKEY_free(a);
		EVP_PKEY_free(j);
	}
	/* Header: exactly alg, kid, typ. */
	assert_int_equal(json_object_size(h), 3);
	assert_string_equal(json_string_value(json_object_get(h, "alg")),
	                    "RS256");
	assert_string_equal(json_string_value(json_object_get(h, "typ")),
	                    "JWT");
	assert_string_equal(json_string_value(json_object_get(h, "kid")),
	                    T.kid);
	/* Claims, against the database. */
	room = sth_pg_value(
	    T.pg, "SELECT platform_room FROM meetings WHERE id = $1", id);
	adm = sth_pg_value(T.pg,
	                   "SELECT id::text FROM admissions WHERE meeting_id = "
	                   "$1::uuid AND identity = 'alice' AND state = "
	                   "'admitted'",
	                   id);
	assert_non_null(room);
	assert_non_null(adm);
	assert_non_null(strstr(r.location, room));
	assert_int_equal(json_object_size(c), 8);
	assert_string_equal(json_string_value(json_object_get(c, "iss")),
	                    "roomgate-test");
	assert_string_equal(json_string_value(json_object_get(c, "aud")),
	                    "jitsi");
	assert_string_equal(json_string_value(json_object_get(c, "sub")),
	                    "meet.example.com");
	assert_string_equal(json_string_value(json_object_get(c, "room")),
	                    room);
	assert_string_equal(json_string_value(json_object_get(c, "jti")), adm);
	nbf = json_integer_value(json_object_get(c, "nbf"));
	exp = json_integer_value(json_object_get(c, "exp"));
	assert_int_equal(exp - nbf, 120);
	assert_true(nbf >= now - 60 && nbf <= now + 60);
	u = json_object_get(json_object_get(c, "context"), "user");
	assert_string_equal(json_string_value(json_object_get(u, "id")),
	                    "alice");
	assert_string_equal(json_string_value(json_object_get(u, "email")),
	                    "alice@example.com");
	json_decref(h);
	json_decref(c);
	json_decref(jwks);
	free(room);
	free(adm);
	sth_resp_free(&r);
}

static void
join_api_token_is_rs256_too(void **state)
{
	char link[80], code[16], id[40], body[64];
	struct sth_resp r;
	json_t *o, *jwks, *h, *c;
	const char *tok;

	(void)state;
	ath_new_meeting(T.base, T.host_token, GROUP, "jwks api", 0, link, code,
	                id);
	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	{
		char path[128];

		snprintf(path, sizeof(path), "/v1/join/%s", link);
		if (ath_req(T.base, &T.alice, "POST", path, NULL, body, &r) !=
		    200)
			fail_msg("join: %ld %s", r.status, r.body);
	}
	o = json_loads(r.body, 0, NULL);
	assert_non_null(o);
	tok = json_string_value(json_object_get(o, "token"));
	assert_non_null(tok);
	jwks = fetch_jwks(T.base);
	platform_verify(tok, jwks, &h, &c);
	assert_string_equal(
	    json_string_value(json_object_get(c, "jti")),
	    json_string_value(json_object_get(o, "admission_id")));
	assert_int_equal(json_integer_value(json_object_get(c, "exp")),
	                 json_integer_value(json_object_get(o, "expires_at")));
	json_decref(h);
	json_decref(c);
	json_decref(jwks);
	json_decref(o);
	sth_resp_free(&r);
}

static void
jwks_is_empty_under_hs256(void **state)
{
	struct th_http *r = calloc(1, sizeof(*r));
	char url[128];
	json_t *doc = fetch_jwks(T.hs_base);

	(void)state;
	assert_non_null(r);
	assert_int_equal(json_object_size(doc), 1);
	assert_true(json_is_array(json_object_get(doc, "keys")));
	assert_int_equal(json_array_size(json_object_get(doc, "keys")), 0);
	json_decref(doc);
	snprintf(url, sizeof(url), "%s/.well-known/jwks.json", T.hs_base);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, r), 200);
	assert_string_equal(r->body, "{\"keys\":[]}");
	assert_null(strstr(r->body, SECRET));
	/* Not a POST target. */
	assert_int_equal(th_http("POST", url, NULL, "x", 1, r), 405);
	free(r);
}

/* serve with [tokens] as given must exit 1 at startup, saying want. */
static void
expect_startup_refused(const char *name, const char *tokens, const char *want)
{
	char out[8192];
	const char *argv[] = {"/usr/bin/timeout",
	                      "60",
	                      th_env("RG_TEST_BIN"),
	                      "serve",
	                      "-c",
	                      NULL,
	                      NULL};
	char cfg[512];

	snprintf(cfg, sizeof(cfg), "%s", th_config(name, node_ini(tokens)));
	argv[5] = cfg;
	if (th_run_capture(argv, NULL, out, sizeof(out)) != 1)
		fail_msg("serve with %s did not refuse to start: %s", tokens,
		         out);
	if (strstr(out, want) == NULL)
		fail_msg("serve's error lacks \"%s\": %s", want, out);
}

static void
startup_refuses_bad_key_files(void **state)
{
	char path[512], tokens[1200];

	(void)state;
	sth_path(path, sizeof(path), "jwks-missing.pem");
	snprintf(tokens, sizeof(tokens), "rs256_key_file = %s\n", path);
	expect_startup_refused("jwks-bad1.ini", tokens,
	                       "[tokens] rs256_key_file: cannot read");
	write_key("jwks-1024.pem", 1024, 0600, path, sizeof(path), NULL);
	snprintf(tokens, sizeof(tokens), "alg = RS256\nrs256_key_file = %s\n",
	         path);
	expect_startup_refused("jwks-bad2.ini", tokens, "1024-bit RSA key");
	write_key("jwks-ec.pem", 0, 0600, path, sizeof(path), NULL);
	snprintf(tokens, sizeof(tokens), "rs256_key_file = %s\n", path);
	expect_startup_refused("jwks-bad3.ini", tokens, "not an RSA key");
	write_key("jwks-0644.pem", 2048, 0644, path, sizeof(path), NULL);
	snprintf(tokens, sizeof(tokens), "rs256_key_file = %s\n", path);
	expect_startup_refused("jwks-bad4.ini", tokens, "chmod 600");
	/* Pinned to RS256 with only a secret; and both at once. */
	expect_startup_refused("jwks-bad5.ini",
	                       "alg = RS256\nhs256_secret = " SECRET "\n",
	                       "alg = RS256 needs rs256_key_file");
	snprintf(tokens, sizeof(tokens),
	         "hs256_secret = " SECRET "\nrs256_key_file = %s\n",
	         T.key_path);
	expect_startup_refused("jwks-bad6.ini", tokens, "both set");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(jwks_lists_current_and_previous_keys),
	    cmocka_unit_test(asap_key_server_serves_each_key_as_pem),
	    cmocka_unit_test(
	        join_redirect_carries_an_rs256_token_the_platform_verifies),
	    cmocka_unit_test(join_api_token_is_rs256_too),
	    cmocka_unit_test(jwks_is_empty_under_hs256),
	    cmocka_unit_test(startup_refuses_bad_key_files),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
