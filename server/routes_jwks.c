/*
 * GET /.well-known/jwks.json: the public keys a meeting platform verifies
 * RS256 join tokens with (the signing key and the rotated-out ones whose
 * tokens may still be live). No authentication: they are public keys.
 * Under HS256, or with no tokens configured, the set is empty -- nothing
 * about a shared secret is ever published.
 */
#include <stdlib.h>
#include <string.h>

#include "server/http_int.h"
#include "server/jwt.h"

void
gate_h_jwks(struct gate_app *app, const struct gate_rq *rq,
            struct gate_resp *out)
{
	const struct gate_jwt_keys *ks = app->jwt;
	json_t *empty = NULL;
	char *body = NULL;

	if (ks != NULL && ks->jwks != NULL) {
		body = malloc(ks->jwks_len + 1);
		if (body != NULL)
			memcpy(body, ks->jwks, ks->jwks_len + 1);
	} else if ((empty = json_pack("{s:[]}", "keys")) != NULL) {
		body = json_dumps(empty, JSON_COMPACT);
		json_decref(empty);
	}
	if (body == NULL) {
		gate_resp_error(out, rq, 503, "unavailable", NULL,
		                "the key set could not be rendered (out of "
		                "memory); try again");
		return;
	}
	/* Keys change only on a restart with new key files; a platform may
	 * cache them for a while (previous keys stay listed meanwhile). */
	if (gate_resp_header(out, "Cache-Control", "public, max-age=300") !=
	    0) {
		free(body);
		gate_resp_error(out, rq, 503, "unavailable", NULL,
		                "the key set could not be sent (out of "
		                "memory); try again");
		return;
	}
	out->status = 200;
	out->content_type = "application/json";
	out->body = body;
	out->len = strlen(body);
}

/*
 * GET /jwt-keys/{name}: Jitsi's token plugin (asap_key_server) fetches the
 * public key of a token's kid from <asap_key_server>/<hex(sha256(kid))>.pem
 * and caches it by kid. Same keys as the JWKS; unknown names are a 404.
 */
void
gate_h_jwt_key(struct gate_app *app, const struct gate_rq *rq,
               struct gate_resp *out)
{
	const struct gate_jwt_keys *ks = app->jwt;
	const struct gate_jwt_rsa *k = NULL;
	size_t len = rq->params[0].len;
	char *body;

	for (size_t i = 0; ks != NULL && i < ks->nrsa; i++)
		if (len == strlen(ks->rsa[i].asap_name) &&
		    memcmp(rq->params[0].p, ks->rsa[i].asap_name, len) == 0)
			k = &ks->rsa[i];
	if (k == NULL) {
		gate_resp_error(
		    out, rq, 404, "unknown_key", NULL,
		    "no RS256 key of this server has that name; "
		    "names are hex(SHA-256(kid)).pem of the kids in "
		    "/.well-known/jwks.json");
		return;
	}
	if ((body = malloc(k->pem_len + 1)) == NULL ||
	    gate_resp_header(out, "Cache-Control", "public, max-age=300") !=
	        0) {
		free(body);
		gate_resp_error(
		    out, rq, 503, "unavailable", NULL,
		    "the key could not be sent (out of memory); try "
		    "again");
		return;
	}
	memcpy(body, k->pem, k->pem_len + 1);
	out->status = 200;
	out->content_type = "application/x-pem-file";
	out->body = body;
	out->len = k->pem_len;
}
