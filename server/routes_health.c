/* /healthz, /readyz and /metrics. */
#include <stdio.h>
#include <string.h>

#include "server/http_int.h"

void
gate_h_healthz(struct gate_app *app, const struct gate_rq *rq,
	       struct gate_resp *out)
{
	(void)app;
	(void)rq;
	gate_resp_json(out, 200,
		       json_pack("{s:s, s:s}", "status", "ok", "version",
				 ROOMGATE_VERSION));
}

/*
 * Ready when both PostgreSQL and the directory answer a round trip now.
 * Both are probed every time (no cached answer) so that a load balancer
 * takes the node out as soon as either is gone, and the 503 names which.
 */
void
gate_h_readyz(struct gate_app *app, const struct gate_rq *rq,
	      struct gate_resp *out)
{
	char dberr[512] = "", direrr[512] = "", msg[1200];
	int dbr, dirr;
	json_t *checks;

	dbr = db_ping(app->db, dberr, sizeof(dberr));
	dirr = dir_ping(app->dir, direrr, sizeof(direrr));
	checks = json_pack("{s:{s:b, s:s?}, s:{s:b, s:s?}}", "database", "ok",
			   dbr == 0, "error", dbr == 0 ? NULL : dberr, "ldap",
			   "ok", dirr == 0, "error", dirr == 0 ? NULL : direrr);
	if (dbr == 0 && dirr == 0) {
		gate_resp_json(out, 200,
			       json_pack("{s:s, s:o}", "status", "ready",
					 "checks", checks));
		return;
	}
	snprintf(msg, sizeof(msg), "not ready:%s%s%s%s%s%s",
		 dbr != 0 ? " PostgreSQL is unavailable (" : "",
		 dbr != 0 ? dberr : "", dbr != 0 ? ")." : "",
		 dirr != 0 ? " LDAP is unavailable (" : "",
		 dirr != 0 ? direrr : "", dirr != 0 ? ")." : "");
	gate_resp_error(out, rq, 503, "not_ready",
			json_pack("{s:o}", "checks", checks), "%s", msg);
	out->retry_after = 5;
}

void
gate_h_metrics(struct gate_app *app, const struct gate_rq *rq,
	       struct gate_resp *out)
{
	struct gate_buf b;

	gate_buf_init(&b, 4u << 20);
	gate_metrics_render(&b, app->db, app->dir);
	out->body = gate_buf_take(&b, &out->len);
	if (out->body == NULL) {
		gate_resp_error(out, rq, 503, "metrics_unavailable", NULL,
				"metrics could not be rendered (out of memory)");
		return;
	}
	out->status = 200;
	out->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
