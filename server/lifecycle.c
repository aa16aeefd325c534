/*
 * `roomgate serve` after start-up: SIGHUP reloads the config, SIGTERM and
 * SIGINT stop gracefully.
 *
 * A reload reads and checks the whole file again, exactly as at start, and
 * compares it with the config in use. A setting that only a restart can
 * apply (listen address, pools, keys, the directory setup...) refuses the
 * whole reload and names the settings: a node never runs half of a new
 * config. The one step that can still fail afterwards -- new IdP metadata
 * into lasso -- runs last and keeps the old metadata when it fails. Then
 * two atomic pointer stores swap the config and the join-token keys in.
 * A request holds whichever it loaded: replaced configs and key sets stay
 * allocated until the service stops (a few KB per reload; reloads are
 * rare), so nothing is freed under a reader.
 *
 * What a reload applies -- everything read per request or per delivery:
 * [server] log_level and drain_timeout, [session], [admission] (except
 * redirect_url: the pages' Content-Security-Policy is built from it once),
 * [tokens] (the key files are read again, so a rotated RS256 key or
 * secret file takes effect), [webhooks] (except workers; url may change but
 * not appear or disappear), and the IdP metadata (re-read from
 * idp_metadata_file, whose path may change, or fetched now from
 * idp_metadata_url). Everything else needs a restart.
 *
 * The config and its keys are also published as one pair (app->live, one
 * store) before the two single stores: a join token is signed with the
 * keys of the same reload whose claims (issuer, audience, lifetime,
 * redirect) it carries, never one of each.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/jwt.h"
#include "server/server.h"

/* One config made by a reload, with the join-token keys made from it. */
struct gen {
	struct gen *next;
	struct gate_config cfg;
	struct gate_jwt_keys *jwt;
	struct gate_live live; /* &cfg and jwt, for app->live */
};

struct gate_lifecycle {
	struct gate_app *app;
	char *const *envp;
	sigset_t set;
	struct gen *gens; /* newest first; freed by gate_lifecycle_close */
	struct gate_live first; /* the start-up pair, until a reload */
};

/* For /metrics: reloads by result and when the last one was applied. */
static _Atomic unsigned long reloads_ok, reloads_failed;
static _Atomic long long last_reload_ok;

/* Settings a reload applies; "section.*" covers a whole section. */
static const char *const reloadable[] = {
	"server.log_level",
	"server.drain_timeout",
	"session.*",
	"admission.max_failures",
	"admission.failure_window",
	"admission.lock_time",
	"admission.lock_time_max",
	"admission.source_max_failures",
	"admission.probe_identities",
	"admission.probe_window",
	"admission.trusted_proxies",
	"admission.waiting_timeout",
	"tokens.*",
	"webhooks.url", /* while set before and after: see check_changes */
	"webhooks.secret",
	"webhooks.secret_file",
	"webhooks.connect_timeout_ms",
	"webhooks.timeout_ms",
	"webhooks.backoff_base_ms",
	"webhooks.backoff_cap_ms",
	"webhooks.max_age",
	"webhooks.poll_interval_ms",
	"webhooks.ca_file",
	"saml.idp_metadata_file", /* with metadata from the file itself */
	NULL,
};

static int
is_reloadable(const char *section, const char *name)
{
	size_t sl = strlen(section);

	for (size_t i = 0; reloadable[i] != NULL; i++) {
		const char *r = reloadable[i];

		if (strncmp(r, section, sl) != 0 || r[sl] != '.')
			continue;
		if (strcmp(r + sl + 1, "*") == 0 ||
		    strcmp(r + sl + 1, name) == 0)
			return 1;
	}
	return 0;
}

/* The changed settings, "[section] key" separated by ", ": all of them
 * (what a reload applied) and those that need a restart. */
struct changes {
	const struct gate_app *app;
	const struct gate_config *old, *new;
	struct gate_buf all, restart;
};

static void
note(struct gate_buf *b, const char *section, const char *name)
{
	gate_buf_printf(b, "%s[%s] %s", b->len ? ", " : "", section, name);
}

static void
on_change(void *arg, const char *section, const char *name)
{
	struct changes *c = arg;
	int ok = is_reloadable(section, name);

	if (ok && strcmp(section, "webhooks") == 0 &&
	    strcmp(name, "url") == 0)
		/* Delivery threads start only with a url. */
		ok = c->old->wh_url != NULL && c->new->wh_url != NULL;
	if (ok && strcmp(section, "saml") == 0)
		/* With a URL the file is the fetch cache the SP writes. */
		ok = c->app->saml != NULL &&
		     !saml_sp_metadata_from_url(c->app->saml);
	note(&c->all, section, name);
	if (!ok)
		note(&c->restart, section, name);
}

static int
fill_node_name(struct gate_config *cfg)
{
	char host[256];

	if (cfg->node_name != NULL)
		return 0;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "roomgate");
	host[sizeof(host) - 1] = '\0';
	cfg->node_name = strdup(host);
	return cfg->node_name != NULL ? 0 : -1;
}

static void
gen_free(struct gen *g)
{
	if (g == NULL)
		return;
	gate_jwt_keys_free(g->jwt);
	gate_config_free(&g->cfg);
	free(g);
}

int
gate_lifecycle_open(struct gate_app *app, char *const *envp,
		    struct gate_lifecycle **out, char *err, size_t errlen)
{
	struct gate_lifecycle *lc = calloc(1, sizeof(*lc));

	*out = NULL;
	if (lc == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	lc->app = app;
	lc->envp = envp;
	/* No reload runs before gate_lifecycle_run, so the two are still
	 * the start-up pair here. */
	lc->first.cfg = app->cfg;
	lc->first.jwt = app->jwt;
	app->live = &lc->first;
	sigemptyset(&lc->set);
	sigaddset(&lc->set, SIGINT);
	sigaddset(&lc->set, SIGTERM);
	sigaddset(&lc->set, SIGHUP);
	*out = lc;
	return 0;
}

int
gate_reload(struct gate_lifecycle *lc)
{
	struct gate_app *app = lc->app;
	const struct gate_config *cur = app->cfg;
	struct changes ch;
	struct gen *g = NULL;
	char err[1024];
	const char *what = "config_reload_failed", *md = "";
	int r = -1, md_r = 0;

	memset(&ch, 0, sizeof(ch));
	gate_buf_init(&ch.all, 4096);
	gate_buf_init(&ch.restart, 4096);
	gate_log(GATE_LOG_INFO, NULL, "config_reload",
		 "SIGHUP: reading %s again",
		 cur->path ? cur->path : "the environment");
	g = calloc(1, sizeof(*g));
	if (g == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	if (gate_config_load(&g->cfg, cur->path, lc->envp, err,
			     sizeof(err)) != 0)
		goto out;
	if (gate_config_check_serve(&g->cfg, err, sizeof(err)) != 0)
		goto out;
	if (fill_node_name(&g->cfg) != 0) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	ch.app = app;
	ch.old = cur;
	ch.new = &g->cfg;
	(void)gate_config_diff(cur, &g->cfg, on_change, &ch);
	if (ch.all.failed || ch.restart.failed) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	if (ch.restart.len > 0) {
		what = "config_reload_refused";
		snprintf(err, sizeof(err),
			 "%s changed, which only a restart applies; restart "
			 "the service, or put the old value%s back and send "
			 "SIGHUP again",
			 ch.restart.p, strchr(ch.restart.p, ',') ? "s" : "");
		goto out;
	}
	/* The key files are read again even when the settings did not
	 * change: a rotated key file is the point of a reload. */
	if (gate_jwt_keys_open(&g->cfg, &g->jwt, err, sizeof(err)) != 0)
		goto out;
	/* Last, as it is the one step that changes something before the
	 * swap: it keeps the old metadata when it fails. */
	if (app->saml != NULL && !saml_sp_metadata_from_url(app->saml)) {
		md_r = saml_sp_reload_idp(app->saml,
					  g->cfg.saml_idp_metadata_file, err,
					  sizeof(err));
		if (md_r < 0)
			goto out;
	}

	g->live.cfg = &g->cfg;
	g->live.jwt = g->jwt;
	app->live = &g->live;
	app->jwt = g->jwt;
	app->cfg = &g->cfg;
	/* The line below is written if the old or the new level wants it. */
	gate_log_set_level(g->cfg.log_level < cur->log_level
				   ? g->cfg.log_level
				   : cur->log_level);
	g->next = lc->gens;
	lc->gens = g;
	g = NULL;
	r = ch.all.len > 0 || md_r == 1 ? 1 : 0;

	/* From a URL: a fetch now; failing keeps the last good copy, as a
	 * scheduled refresh does, and does not undo the rest. */
	if (app->saml != NULL && saml_sp_metadata_from_url(app->saml)) {
		md_r = saml_sp_reload_idp(app->saml, NULL, err, sizeof(err));
		if (md_r < 0)
			gate_log(GATE_LOG_WARN, NULL,
				 "saml_metadata_refresh_failed",
				 "IdP metadata fetch on SIGHUP failed, keeping "
				 "the last good copy: %s",
				 err);
		else if (md_r == 1)
			r = 1;
	}
	if (md_r == 1)
		md = "; new IdP metadata in use";
	reloads_ok++;
	last_reload_ok = (long long)time(NULL);
	gate_log(GATE_LOG_INFO, NULL, "config_reloaded", "%s%s%s",
		 ch.all.len > 0 ? "applied: " : "no setting changed",
		 ch.all.len > 0 ? ch.all.p : "", md);
	gate_log_set_level(app->cfg->log_level);
out:
	if (r < 0) {
		reloads_failed++;
		gate_log(GATE_LOG_ERROR, NULL, what,
			 "reload on SIGHUP refused, the config in use stays: "
			 "%s",
			 err);
	}
	gen_free(g); /* a config that failed to load holds nothing */
	gate_buf_free(&ch.all);
	gate_buf_free(&ch.restart);
	return r;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for the requests in progress, at most drain_timeout. */
static void
drain(struct gate_lifecycle *lc, struct gate_http *http)
{
	const struct gate_config *cfg = lc->app->cfg;
	double t0 = now_s(), left;
	struct timespec ts;
	int n, sig;

	if (gate_http_quiesce(http) != 0)
		gate_log(GATE_LOG_WARN, NULL, "drain",
			 "could not stop the listener early; open "
			 "connections are closed at stop");
	n = gate_http_in_flight(http);
	gate_log(GATE_LOG_INFO, NULL, "drain",
		 "refusing new connections; waiting up to %d s for %d "
		 "request(s) in progress",
		 cfg->drain_timeout_s, n);
	while ((n = gate_http_in_flight(http)) > 0) {
		left = (double)cfg->drain_timeout_s - (now_s() - t0);
		if (left <= 0) {
			gate_log(GATE_LOG_WARN, NULL, "drain_timeout",
				 "%d request(s) still in progress after %d s "
				 "([server] drain_timeout); stopping: each "
				 "one ends when its own database or "
				 "directory timeout does",
				 n, cfg->drain_timeout_s);
			return;
		}
		if (left > 0.05)
			left = 0.05;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		sig = sigtimedwait(&lc->set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			gate_log(GATE_LOG_WARN, NULL, "drain",
				 "second %s: stopping without waiting for "
				 "%d request(s)",
				 sig == SIGTERM ? "SIGTERM" : "SIGINT", n);
			return;
		}
		if (sig == SIGHUP)
			gate_log(GATE_LOG_INFO, NULL, "config_reload",
				 "SIGHUP ignored: the service is stopping");
	}
	gate_log(GATE_LOG_INFO, NULL, "drained",
		 "requests in progress finished after %.2f s", now_s() - t0);
}

void
gate_lifecycle_run(struct gate_lifecycle *lc, struct gate_http *http)
{
	int sig;

	for (;;) {
		if (sigwait(&lc->set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			(void)gate_reload(lc);
			continue;
		}
		break;
	}
	gate_log(GATE_LOG_INFO, NULL, "stopping", "received %s",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT");
	drain(lc, http);
}

void
gate_lifecycle_close(struct gate_lifecycle *lc)
{
	struct gen *g, *next;

	if (lc == NULL)
		return;
	lc->app->live = NULL; /* the pairs are freed below */
	for (g = lc->gens; g != NULL; g = next) {
		next = g->next;
		gen_free(g);
	}
	free(lc);
}

void
gate_app_live(struct gate_app *app, struct gate_live *out)
{
	const struct gate_live *l = app->live;

	if (l != NULL) {
		*out = *l;
		return;
	}
	out->cfg = app->cfg;
	out->jwt = app->jwt;
}

void
gate_lifecycle_metrics(struct gate_buf *b)
{
	gate_buf_printf(
		b,
		"# HELP roomgate_config_reloads_total SIGHUP reloads by "
		"result (failed: refused, the config in use stayed).\n"
		"# TYPE roomgate_config_reloads_total counter\n"
		"roomgate_config_reloads_total{result=\"ok\"} %lu\n"
		"roomgate_config_reloads_total{result=\"failed\"} %lu\n"
		"# HELP roomgate_config_last_reload_success_timestamp_seconds "
		"When a reload was last applied (0: never).\n"
		"# TYPE roomgate_config_last_reload_success_timestamp_seconds "
		"gauge\n"
		"roomgate_config_last_reload_success_timestamp_seconds %lld\n",
		(unsigned long)reloads_ok, (unsigned long)reloads_failed,
		(long long)last_reload_ok);
}
