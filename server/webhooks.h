/*
 * server/webhooks.h -- the outbox deliverer: worker threads that POST
 * every outbox event (db/db_outbox.h) to [webhooks] url, signed, with
 * retries, backoff and dead letters; its metrics and admin API.
 *
 * What a receiver is sent (one POST per event, at least once):
 *   Content-Type: application/json
 *   X-Roomgate-Event-Id: <id>          (decimal; the dedupe key)
 *   X-Roomgate-Event-Type: <type>      (e.g. code.rotated)
 *   X-Roomgate-Timestamp: <unix seconds when this attempt was signed>
 *   X-Roomgate-Signature: v1=<lowercase hex HMAC-SHA-256>
 *   body: {"id": <id>, "type": <type>, "created_at": <RFC 3339 UTC>,
 *          "data": <the event's payload object>}
 * The signature is HMAC-SHA-256 under [webhooks] secret (its bytes as
 * written) over  <timestamp> "." <raw body bytes>.  To verify: recompute
 * it over the raw body as received, compare in constant time, reject a
 * timestamp more than a few minutes from your clock (replays), then drop
 * ids already processed (a node that dies mid-delivery sends again). Any
 * 2xx answer means delivered; anything else, or no answer within
 * [webhooks] timeout_ms, is retried.
 */
#ifndef ROOMGATE_WEBHOOKS_H
#define ROOMGATE_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "server/server.h"

#define GATE_WEBHOOK_SIG_LEN 68 /* "v1=" + 64 hex + NUL */

/* "v1=" + hex HMAC-SHA-256(key, ts "." body) into out. -1 on bad input. */
int gate_webhook_sign(const unsigned char *key, size_t keylen, long long ts,
                      const char *body, size_t len,
                      char out[GATE_WEBHOOK_SIG_LEN]);

enum {
	GATE_WH_OK = 0,
	GATE_WH_BAD_SIG = -1,
	GATE_WH_STALE = -2,
	GATE_WH_MALFORMED = -3
};
/*
 * A receiver's check of the headers' values: ts_hdr must be a decimal
 * timestamp within window_s of now, sig_hdr a v1= signature of ts "." body
 * under key (compared in constant time). Returns a GATE_WH_* value.
 */
int gate_webhook_verify(const unsigned char *key, size_t keylen,
                        const char *ts_hdr, const char *sig_hdr,
                        const char *body, size_t len, long long now,
                        int window_s);

/* The longest wait before attempt number `failed` + 1 after `failed`
 * failures (>= 1): min(cap, base * 2^(failed-1)), overflow-safe. */
long long gate_webhook_backoff_ceiling_ms(int failed, long long base_ms,
                                          long long cap_ms);
/* Full jitter: uniform in [0, ceiling]; rnd is a uniform random number
 * (libsodium's randombytes_random() in the deliverer). */
long long gate_webhook_backoff_ms(int failed, long long base_ms,
                                  long long cap_ms, uint32_t rnd);

struct gate_webhooks;
/*
 * Starts [webhooks] workers threads; *out stays NULL (and a log line says
 * events stay queued) when no url is configured. The app must outlive
 * them. gate_webhooks_stop() aborts transfers in flight, puts their
 * events back in the queue and joins the threads (NULL is fine).
 */
int gate_webhooks_start(struct gate_app *app, struct gate_webhooks **out,
                        char *err, size_t errlen);
void gate_webhooks_stop(struct gate_webhooks *w);

/* Prometheus lines: outbox depth, dead letters, oldest pending age (from
 * the database, so every node shows the same), deliveries by result. */
void gate_webhooks_metrics(struct gate_buf *b, struct db_pool *db);

/* Admin API (role admin): GET /v1/outbox?state=pending|dead[&limit=N] and
 * POST /v1/outbox/{id}:retry. */
struct gate_rq;
struct gate_resp;
void gate_h_outbox_list(struct gate_app *app, const struct gate_rq *rq,
                        struct gate_resp *out);
void gate_h_outbox_retry(struct gate_app *app, const struct gate_rq *rq,
                         struct gate_resp *out);

#endif
