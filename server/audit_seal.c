/*
 * server/audit_seal.c -- the audit chain (server/audit_seal.h): the
 * sealer thread, verification and the public-key route.
 *
 * The sealer follows committed audit records in seq order. seq values are
 * handed out at INSERT but commit in any order, and a rolled-back insert
 * leaves a hole for ever, so a missing seq below a committed one is waited
 * for, and skipped only when (1) every transaction that was running when
 * the hole was first seen has ended (the snapshot xmin passed that
 * snapshot's xmax) and (2) gap_timeout_ms has passed since, which also
 * covers an insert that drew its seq but had no transaction id yet (a
 * statement lasts at most [database] statement_timeout_ms).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "server/audit_export.h"
#include "server/audit_seal.h"
#include "server/http_int.h"

/* The canonical encoding (hashes, checkpoint text, anchor lines) is in
 * audit_canon.c. Records read and chained per transaction. */
#define SEAL_BATCH 5000
/* How often the sealing node runs the retention purge. */
#define PURGE_EVERY_MS (3600 * 1000)
#define MAX_PUBS 16

static void
utc_now(char out[32], int64_t *unix_ms)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%06uZ",
		 (unsigned)((unsigned long)ts.tv_nsec / 1000u % 1000000u));
	if (unix_ms != NULL)
		*unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- public keys (for the route and verify) --------------------------- */

static pthread_mutex_t pubs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	unsigned char pk[32];
	char kid[17];
} pubs[MAX_PUBS];
static size_t npubs;

int
gate_audit_pubs_load(const struct gate_config *cfg, unsigned char (*pk)[32],
		     char (*kid)[17], size_t max, size_t *n, char *err,
		     size_t errlen)
{
	const char *p;
	char path[4096];
	size_t len;

	*n = 0;
	if (cfg->audit_signing_key_file != NULL) {
		if (gate_audit_key_pub_load(cfg->audit_signing_key_file, pk[0],
					    kid[0], err, errlen) != 0)
			return -1;
		(*n)++;
	}
	p = cfg->audit_previous_public_keys;
	while (p != NULL && *(p += strspn(p, " \t")) != '\0') {
		len = strcspn(p, " \t");
		if (len >= sizeof(path)) {
			snprintf(err, errlen,
				 "[audit] previous_public_keys: a path is "
				 "too long");
			return -1;
		}
		if (*n >= max) {
			snprintf(err, errlen,
				 "[audit] previous_public_keys: at most %zu "
				 "keys",
				 max - 1);
			return -1;
		}
		memcpy(path, p, len);
		path[len] = '\0';
		p += len;
		if (gate_audit_key_pub_load(path, pk[*n], kid[*n], err,
					    errlen) != 0)
			return -1;
		(*n)++;
	}
	return 0;
}

/* ---- the sealer -------------------------------------------------------- */

struct pend {
	long long seq;
	unsigned char ch[32];
};

struct gate_sealer {
	struct gate_app *app;
	struct gate_audit_key key;
	struct db_audit_leader *leader;
	pthread_t thread;
	atomic_int stop, is_leader;
	atomic_ullong sealed, checkpoints, gaps_skipped, failures, takeovers,
	    purged;
	atomic_llong head_seq, last_ckpt_unix_ms;
	/* chain head, valid while have_head */
	int have_head;
	long long h_seq, h_pos;
	unsigned char h_hash[32];
	/* the hole being waited for (gap_hi 0: none) */
	long long gap_hi;
	int64_t gap_seen_ms;
	unsigned long long gap_xmax;
	int64_t last_purge_ms;
	/* batch being read */
	struct pend *p;
	size_t np;
};

static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gate_sealer *cur;
/* roomgate_audit_role_separated: -1 not known yet */
static atomic_int role_separated = -1;

/* Whether the service's database role could switch the audit triggers
 * off; says so loudly at start when it could. */
static void
check_roles(struct gate_app *app)
{
	char owner[128], err[1024];
	int sep = 0;

	if (app->db == NULL)
		return;
	if (db_audit_role_check(app->db, &sep, owner, sizeof(owner), err,
				sizeof(err)) != 0) {
		gate_log(GATE_LOG_WARN, NULL, "audit_role_unknown",
			 "cannot tell whether the database role may change "
			 "the audit trail: %s",
			 err);
		return;
	}
	atomic_store(&role_separated, sep);
	if (!sep)
		gate_log(GATE_LOG_WARN, NULL, "audit_role_not_separated",
			 "AUDIT TRAIL NOT PROTECTED FROM THIS SERVICE: its "
			 "database role owns audit_log (owner %s), is a "
			 "member of its owner or is a superuser, so it can "
			 "switch the append-only triggers off and rewrite or "
			 "cut the trail. Run migrations as an owner role and "
			 "the service as a member of roomgate_service "
			 "(README.md, \"Audit trail\")",
			 owner);
}

static int
collect(void *arg, const struct db_audit_row *r)
{
	struct gate_sealer *s = arg;

	if (s->np >= SEAL_BATCH)
		return 1;
	s->p[s->np].seq = r->seq;
	gate_audit_content_hash(r->f, r->len, s->p[s->np].ch);
	s->np++;
	return 0;
}

/*
 * One batch: reads committed records after the head, chains the ones that
 * follow it without an unexplained hole, and appends them with a signed
 * checkpoint. *more when a full batch was chained (call again at once).
 */
static int
seal_batch(struct gate_sealer *s, int *more, char *err, size_t errlen)
{
	const struct gate_config *cfg = s->app->cfg;
	struct db_audit_link *links = NULL;
	struct db_audit_ckpt dc;
	struct gate_audit_ckpt c;
	unsigned long long xmin = 0, xmax = 0;
	char body[512];
	long long expected;
	size_t nl = 0;
	int64_t now = mono_ms(), unix_ms = 0;
	int r, n;

	*more = 0;
	if (!s->have_head) {
		if ((r = db_audit_head(s->leader, &s->h_seq, &s->h_pos,
				       s->h_hash, err, errlen)) != 0)
			return r;
		s->have_head = 1;
		s->gap_hi = 0;
	}
	s->np = 0;
	r = db_audit_pending(s->leader, s->h_seq, SEAL_BATCH, &xmin, &xmax,
			     collect, s, err, errlen);
	if (r < 0)
		return r;
	links = calloc(s->np + 1, sizeof(*links));
	if (links == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	expected = s->h_seq + 1;
	for (size_t i = 0; i < s->np; i++) {
		struct pend *pe = &s->p[i];

		if (pe->seq != expected) {
			/* A hole below a committed record. */
			int known = s->gap_hi > 0 && expected < s->gap_hi &&
				    pe->seq <= s->gap_hi;

			if (!known) {
				s->gap_hi = pe->seq;
				s->gap_seen_ms = now;
				s->gap_xmax = xmax;
				break;
			}
			if (now - s->gap_seen_ms < cfg->audit_gap_timeout_ms ||
			    xmin < s->gap_xmax)
				break;
			atomic_fetch_add(&s->gaps_skipped,
					 (unsigned long long)(pe->seq -
							      expected));
			gate_log(GATE_LOG_INFO, NULL, "audit_gap_skipped",
				 "audit seq %lld..%lld never committed "
				 "(rolled back); the chain goes on at %lld",
				 expected, pe->seq - 1, pe->seq);
		}
		if (pe->seq >= s->gap_hi)
			s->gap_hi = 0;
		links[nl].seq = pe->seq;
		links[nl].pos = s->h_pos + (long long)nl + 1;
		memcpy(links[nl].content_hash, pe->ch, 32);
		gate_audit_link_hash(nl ? links[nl - 1].hash : s->h_hash,
				     links[nl].pos, pe->seq, pe->ch,
				     links[nl].hash);
		nl++;
		expected = pe->seq + 1;
	}
	if (nl == 0) {
		free(links);
		return 0;
	}
	memset(&c, 0, sizeof(c));
	memcpy(c.kid, s->key.kid, sizeof(c.kid));
	c.last_seq = links[nl - 1].seq;
	c.count = links[nl - 1].pos;
	memcpy(c.last_hash, links[nl - 1].hash, 32);
	utc_now(c.time, &unix_ms);
	n = gate_audit_ckpt_body(&c, body, sizeof(body));
	memset(&dc, 0, sizeof(dc));
	memcpy(dc.kid, c.kid, sizeof(dc.kid));
	dc.last_seq = c.last_seq;
	dc.count = c.count;
	memcpy(dc.last_hash, c.last_hash, 32);
	dc.body = body;
	dc.time = c.time;
	dc.node = cfg->node_name ? cfg->node_name : "";
	gate_audit_sign(&s->key, (const unsigned char *)body, (size_t)n,
			dc.sig);
	r = db_audit_append(s->leader, links, nl, &dc, err, errlen);
	if (r == 0) {
		char anchor[512];

		/* The journal: a copy of every checkpoint outside the
		 * database, for `audit verify --anchor`. */
		if (gate_audit_anchor_line(&c, dc.sig, anchor,
					   sizeof(anchor)) > 0)
			gate_log(GATE_LOG_INFO, NULL, "audit_checkpoint", "%s",
				 anchor);
		s->h_seq = c.last_seq;
		s->h_pos = c.count;
		memcpy(s->h_hash, c.last_hash, 32);
		atomic_fetch_add(&s->sealed, (unsigned long long)nl);
		atomic_fetch_add(&s->checkpoints, 1);
		atomic_store(&s->head_seq, s->h_seq);
		atomic_store(&s->last_ckpt_unix_ms, (long long)unix_ms);
		*more = s->np == SEAL_BATCH && nl == s->np;
	} else {
		s->have_head = 0; /* read it again */
	}
	free(links);
	return r;
}

static void
maybe_purge(struct gate_sealer *s)
{
	const struct gate_config *cfg = s->app->cfg;
	char cutoff[32], err[1024];
	long long purged = 0, upto = 0;
	time_t t;
	struct tm tm;

	if (cfg->audit_retention_days <= 0 ||
	    (s->last_purge_ms != 0 &&
	     mono_ms() - s->last_purge_ms < PURGE_EVERY_MS))
		return;
	s->last_purge_ms = mono_ms();
	t = time(NULL) - (time_t)cfg->audit_retention_days * 86400;
	gmtime_r(&t, &tm);
	strftime(cutoff, sizeof(cutoff), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (db_audit_purge(s->app->db, cutoff,
			   cfg->node_name ? cfg->node_name : "", &purged,
			   &upto, err, sizeof(err)) != 0) {
		gate_log(GATE_LOG_ERROR, NULL, "audit_purge_failed",
			 "retention purge (records before %s): %s", cutoff,
			 err);
		return;
	}
	atomic_fetch_add(&s->purged, (unsigned long long)purged);
	if (purged > 0)
		gate_log(GATE_LOG_INFO, NULL, "audit_purged",
			 "retention: %lld audit records before %s purged "
			 "(up to the checkpoint at seq %lld)",
			 purged, cutoff, upto);
}

/* Sleeps ms in small steps; 0 when stopping. */
static int
nap(struct gate_sealer *s, int ms)
{
	while (ms > 0 && !atomic_load(&s->stop)) {
		int step = ms > 100 ? 100 : ms;

		usleep((useconds_t)step * 1000);
		ms -= step;
	}
	return !atomic_load(&s->stop);
}

static void *
run(void *arg)
{
	struct gate_sealer *s = arg;
	const struct gate_config *cfg = s->app->cfg;
	char err[1024];
	int r, more, last_err = 0;

	while (!atomic_load(&s->stop)) {
		r = db_audit_leader_try(cfg->db_url, cfg->db_connect_timeout_s,
					&s->leader, err, sizeof(err));
		if (r < 0 && !last_err)
			gate_log(GATE_LOG_WARN, NULL, "audit_sealer_no_lock",
				 "cannot ask for the sealer lock: %s", err);
		last_err = r < 0;
		if (r != 1) {
			nap(s, cfg->audit_checkpoint_interval_ms);
			continue;
		}
		atomic_store(&s->is_leader, 1);
		atomic_fetch_add(&s->takeovers, 1);
		s->have_head = 0;
		gate_log(GATE_LOG_INFO, NULL, "audit_sealer_leader",
			 "this node now seals the audit chain");
		while (!atomic_load(&s->stop)) {
			do {
				r = seal_batch(s, &more, err, sizeof(err));
			} while (r == 0 && more && !atomic_load(&s->stop));
			if (r != 0) {
				atomic_fetch_add(&s->failures, 1);
				gate_log(GATE_LOG_ERROR, NULL,
					 "audit_seal_failed",
					 "sealing the audit chain: %s", err);
				if (db_audit_leader_alive(s->leader, err,
							  sizeof(err)) != 0)
					break;
			}
			maybe_purge(s);
			nap(s, cfg->audit_checkpoint_interval_ms);
		}
		atomic_store(&s->is_leader, 0);
		db_audit_leader_release(s->leader);
		s->leader = NULL;
		if (!atomic_load(&s->stop))
			gate_log(GATE_LOG_INFO, NULL, "audit_sealer_standby",
				 "this node no longer seals the audit chain; "
				 "trying again");
		nap(s, cfg->audit_checkpoint_interval_ms);
	}
	return NULL;
}

int
gate_sealer_start(struct gate_app *app, struct gate_sealer **out, char *err,
		  size_t errlen)
{
	const struct gate_config *cfg = app->cfg;
	unsigned char pk[MAX_PUBS][32];
	char kid[MAX_PUBS][17];
	struct gate_sealer *s;
	size_t n = 0;

	*out = NULL;
	check_roles(app);
	if (gate_audit_pubs_load(cfg, pk, kid, MAX_PUBS, &n, err, errlen) != 0)
		return -1;
	pthread_mutex_lock(&pubs_mu);
	for (size_t i = 0; i < n; i++) {
		memcpy(pubs[i].pk, pk[i], 32);
		memcpy(pubs[i].kid, kid[i], 17);
	}
	npubs = n;
	pthread_mutex_unlock(&pubs_mu);
	if (cfg->audit_signing_key_file == NULL) {
		gate_log(GATE_LOG_WARN, NULL, "audit_sealer_off",
			 "[audit] signing_key_file is not set: audit records "
			 "are not chained or signed on this node");
		return 0;
	}
	if (cfg->audit_checkpoint_interval_ms == 0)
		return 0;
	if (cfg->log_level > GATE_LOG_INFO)
		gate_log(GATE_LOG_WARN, NULL, "audit_journal_off",
			 "[log] level is above info, so the checkpoint journal "
			 "(audit_checkpoint lines, the anchors `roomgate audit "
			 "verify --anchor` needs) is not written by this node");
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->app = app;
	s->p = calloc(SEAL_BATCH, sizeof(*s->p));
	if (s->p == NULL ||
	    gate_audit_key_load(cfg->audit_signing_key_file, &s->key, err,
				errlen) != 0) {
		if (s->p == NULL)
			snprintf(err, errlen, "out of memory");
		free(s->p);
		free(s);
		return -1;
	}
	if (pthread_create(&s->thread, NULL, run, s) != 0) {
		gate_audit_key_wipe(&s->key);
		free(s->p);
		free(s);
		snprintf(err, errlen, "cannot start the audit sealer thread");
		return -1;
	}
	pthread_mutex_lock(&cur_mu);
	cur = s;
	pthread_mutex_unlock(&cur_mu);
	*out = s;
	return 0;
}

void
gate_sealer_stop(struct gate_sealer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&cur_mu);
	if (cur == s)
		cur = NULL;
	pthread_mutex_unlock(&cur_mu);
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	db_audit_leader_release(s->leader);
	gate_audit_key_wipe(&s->key);
	free(s->p);
	free(s);
}

void
gate_sealer_metrics(struct gate_buf *b)
{
	struct timespec ts;
	long long last;
	int64_t now_ms;

	if (atomic_load(&role_separated) >= 0)
		gate_buf_printf(
			b,
			"# HELP roomgate_audit_role_separated 0 when the "
			"service's database role owns audit_log or is a "
			"superuser (it could switch the audit triggers off)\n"
			"# TYPE roomgate_audit_role_separated gauge\n"
			"roomgate_audit_role_separated %d\n",
			atomic_load(&role_separated));
	pthread_mutex_lock(&cur_mu);
	if (cur == NULL) {
		pthread_mutex_unlock(&cur_mu);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	last = atomic_load(&cur->last_ckpt_unix_ms);
	gate_buf_printf(
		b,
		"# HELP roomgate_audit_sealer_leader 1 when this node seals "
		"the audit chain\n"
		"# TYPE roomgate_audit_sealer_leader gauge\n"
		"roomgate_audit_sealer_leader %d\n"
		"# TYPE roomgate_audit_sealed_records_total counter\n"
		"roomgate_audit_sealed_records_total %llu\n"
		"# TYPE roomgate_audit_checkpoints_total counter\n"
		"roomgate_audit_checkpoints_total %llu\n"
		"# HELP roomgate_audit_gap_seqs_skipped_total sequence "
		"numbers never committed (rolled back) that the chain "
		"skipped\n"
		"# TYPE roomgate_audit_gap_seqs_skipped_total counter\n"
		"roomgate_audit_gap_seqs_skipped_total %llu\n"
		"# TYPE roomgate_audit_seal_failures_total counter\n"
		"roomgate_audit_seal_failures_total %llu\n"
		"# TYPE roomgate_audit_sealer_takeovers_total counter\n"
		"roomgate_audit_sealer_takeovers_total %llu\n"
		"# TYPE roomgate_audit_purged_records_total counter\n"
		"roomgate_audit_purged_records_total %llu\n"
		"# TYPE roomgate_audit_chain_head_seq gauge\n"
		"roomgate_audit_chain_head_seq %lld\n"
		"# HELP roomgate_audit_last_checkpoint_age_seconds since this "
		"node last signed a checkpoint (-1: never)\n"
		"# TYPE roomgate_audit_last_checkpoint_age_seconds gauge\n"
		"roomgate_audit_last_checkpoint_age_seconds %.3f\n",
		atomic_load(&cur->is_leader),
		(unsigned long long)atomic_load(&cur->sealed),
		(unsigned long long)atomic_load(&cur->checkpoints),
		(unsigned long long)atomic_load(&cur->gaps_skipped),
		(unsigned long long)atomic_load(&cur->failures),
		(unsigned long long)atomic_load(&cur->takeovers),
		(unsigned long long)atomic_load(&cur->purged),
		(long long)atomic_load(&cur->head_seq),
		last > 0 ? (double)(now_ms - last) / 1000.0 : -1.0);
	pthread_mutex_unlock(&cur_mu);
}

/* ---- verification ---------------------------------------------------------- */

struct walk {
	struct db_pool *db;
	const struct gate_audit_verify_opts *o;
	struct gate_audit_verify_result *res;
	struct db_audit_ckpt *ck;
	size_t nck, next; /* next checkpoint to meet */
	long long max_chained;
	long long prev_seq, prev_pos;
	unsigned char prev_hash[32];
	int failed;
	/* the first chained record after the last checkpoint met (0: none) */
	long long first_uncovered;
	/* records with an earlier time ("YYYY-MM-DDTHH:MM:SS") should be
	 * sealed by now */
	char stale_before[32];
};

static void
fail_at(struct walk *w, long long seq, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
fail_at(struct walk *w, long long seq, const char *fmt, ...)
{
	va_list ap;

	if (w->failed)
		return;
	w->failed = 1;
	w->res->ok = 0;
	w->res->bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(w->res->what, sizeof(w->res->what), fmt, ap);
	va_end(ap);
}

/* Checks one checkpoint's body, columns and signature; 0 when good. */
static int
check_ckpt(struct walk *w, const struct db_audit_ckpt *k)
{
	const struct gate_audit_verify_opts *o = w->o;
	struct gate_audit_ckpt c;
	size_t len = strlen(k->body);

	if (gate_audit_ckpt_parse(k->body, len, &c) != 0) {
		fail_at(w, 0, "checkpoint #%lld (seq %lld): its signed text is "
			      "malformed",
			k->id, k->last_seq);
		return -1;
	}
	if (strcmp(c.kid, k->kid) != 0 || c.last_seq != k->last_seq ||
	    c.count != k->count || memcmp(c.last_hash, k->last_hash, 32) != 0) {
		fail_at(w, k->last_seq,
			"checkpoint #%lld: its columns (seq %lld, count %lld) "
			"differ from its signed text (seq %lld, count %lld): "
			"the row was edited",
			k->id, k->last_seq, k->count, c.last_seq, c.count);
		return -1;
	}
	for (size_t i = 0; i < o->npks; i++) {
		if (strcmp(o->kids[i], c.kid) != 0)
			continue;
		if (gate_audit_verify(o->pks[i], (const unsigned char *)k->body,
				      len, k->sig) != 0) {
			fail_at(w, k->last_seq,
				"checkpoint #%lld (seq %lld): bad signature -- "
				"it was altered, or not made by key %s",
				k->id, k->last_seq, c.kid);
			return -1;
		}
		w->res->checkpoints++;
		return 0;
	}
	fail_at(w, k->last_seq,
		"checkpoint #%lld (seq %lld) is signed with key %s, which is "
		"not among the known public keys (pass --public-key FILE, or "
		"list it in [audit] previous_public_keys)",
		k->id, k->last_seq, c.kid);
	return -1;
}

static int
on_row(void *arg, const struct db_audit_row *r)
{
	struct walk *w = arg;
	struct gate_audit_verify_result *res = w->res;
	unsigned char ch[32], h[32];
	long long other = 0;
	char err[256];

	/* A checkpoint whose seq the walk stepped over: that seq is gone
	 * from both the log and the chain. */
	if (w->next < w->nck && w->ck[w->next].last_seq < r->seq) {
		fail_at(w, w->ck[w->next].last_seq,
			"seq %lld: deleted -- checkpoint #%lld sealed the "
			"chain at this record (count %lld), but neither the "
			"record nor its chain entry is there any more",
			w->ck[w->next].last_seq, w->ck[w->next].id,
			w->ck[w->next].count);
		return 1;
	}
	if (r->in_log && !r->in_chain) {
		if (r->seq <= w->max_chained) {
			fail_at(w, r->seq,
				"seq %lld: inserted -- this record is not part "
				"of the sealed chain, which runs past it (to "
				"seq %lld): it was added after sealing",
				r->seq, w->max_chained);
			return 1;
		}
		if (r->f[0] != NULL && w->stale_before[0] != '\0' &&
		    strncmp(r->f[0], w->stale_before, 19) < 0) {
			fail_at(w, r->seq,
				"seq %lld: not sealed -- written at %.32s, more "
				"than %d s ago, and no signed checkpoint covers "
				"it: no node is sealing ([audit] "
				"signing_key_file), or the chain's tail (its "
				"entries and checkpoints) was cut",
				r->seq, r->f[0], w->o->grace_s);
			return 1;
		}
		res->unsealed++;
		return 0;
	}
	if (!r->in_log) {
		fail_at(w, r->seq,
			"seq %lld: deleted -- the record was sealed (chain "
			"position %lld) but is missing from audit_log",
			r->seq, r->pos);
		return 1;
	}
	gate_audit_content_hash(r->f, r->len, ch);
	if (sodium_memcmp(ch, r->content_hash, 32) != 0) {
		if (db_audit_find_content(w->db, ch, r->seq, &other, err,
					  sizeof(err)) == 0 &&
		    other != 0 && other != r->seq)
			fail_at(w, r->seq,
				"seq %lld: reordered -- it holds the record "
				"that was sealed at seq %lld (records were "
				"swapped or moved)",
				r->seq, other);
		else
			fail_at(w, r->seq,
				"seq %lld: modified -- the record no longer "
				"matches the content hash sealed for it (a "
				"field was changed after sealing)",
				r->seq);
		return 1;
	}
	if (r->pos != w->prev_pos + 1) {
		fail_at(w, r->seq,
			"seq %lld: chain position %lld follows %lld -- sealed "
			"records between seq %lld and %lld were deleted with "
			"their chain entries",
			r->seq, r->pos, w->prev_pos, w->prev_seq, r->seq);
		return 1;
	}
	gate_audit_link_hash(w->prev_hash, r->pos, r->seq, ch, h);
	if (sodium_memcmp(h, r->hash, 32) != 0) {
		fail_at(w, r->seq,
			"seq %lld: its chain entry does not follow from the "
			"record before it (seq %lld): the chain was altered",
			r->seq, w->prev_seq);
		return 1;
	}
	memcpy(w->prev_hash, h, 32);
	w->prev_pos = r->pos;
	w->prev_seq = r->seq;
	if (res->records == 0)
		res->first_seq = r->seq;
	res->records++;
	res->last_seq = r->seq;
	if (++res->after_last_ckpt == 1)
		w->first_uncovered = r->seq;
	if (w->next < w->nck && w->ck[w->next].last_seq == r->seq) {
		const struct db_audit_ckpt *k = &w->ck[w->next];

		if (check_ckpt(w, k) != 0)
			return 1;
		if (k->count != r->pos || sodium_memcmp(k->last_hash, h, 32)) {
			fail_at(w, r->seq,
				"checkpoint #%lld (seq %lld, count %lld) does "
				"not match the records before it (count "
				"%lld): records at or before seq %lld were "
				"altered and the chain rebuilt",
				k->id, k->last_seq, k->count, r->pos, r->seq);
			return 1;
		}
		res->after_last_ckpt = 0;
		w->next++;
	}
	if (w->o->progress != NULL && res->records % 100000 == 0)
		fprintf(w->o->progress, "audit verify: %lld records...\n",
			res->records);
	return 0;
}

/*
 * The newest purge must be what audit_purge() writes: its upto_seq is its
 * checkpoint's last_seq, a sealed audit.purge record naming the same
 * range, checkpoint, count and cutoff follows it, and the cutoff is not
 * after that record's time (minus retention_days). 0 when it is.
 */
static int
check_purge(struct walk *w, const struct db_audit_purge *p)
{
	if (p->inconsistent > 0) {
		fail_at(w, 0,
			"%lld retention purge(s) name a checkpoint that does "
			"not end at the purged seq: purge rows were written "
			"by hand",
			p->inconsistent);
		return -1;
	}
	if (p->ckpt_last_seq != p->upto_seq) {
		fail_at(w, 0,
			"the newest retention purge (up to seq %lld) names "
			"checkpoint #%lld, which is gone: the purge row was "
			"written by hand",
			p->upto_seq, p->checkpoint_id);
		return -1;
	}
	if (p->rec_seq == 0) {
		fail_at(w, 0,
			"the newest retention purge (up to seq %lld, cutoff "
			"%s) is not followed by its audit.purge record: the "
			"purge row was written by hand, or that record was "
			"deleted",
			p->upto_seq, p->cutoff);
		return -1;
	}
	if (!p->cutoff_ok) {
		fail_at(w, p->rec_seq,
			"seq %lld: the purge up to seq %lld at %s used cutoff "
			"%s, which is not at least retention_days (%d) before "
			"the purge: records younger than the retention period "
			"were deleted",
			p->rec_seq, p->upto_seq, p->rec_at, p->cutoff,
			w->o->retention_days);
		return -1;
	}
	if (!p->rec_sealed) {
		fail_at(w, p->rec_seq,
			"seq %lld: the audit.purge record of the newest purge "
			"is not sealed yet -- run verify again in a few "
			"seconds; if it stays unsealed, no node seals or the "
			"chain's tail was cut",
			p->rec_seq);
		return -1;
	}
	return 0;
}

/* The checkpoint c (signature sig, signed body body) named by where must
 * be in the database unchanged. */
static int
anchor_in_db(struct walk *w, const struct gate_audit_ckpt *c,
	     const unsigned char sig[64], const char *body, const char *where,
	     char *err, size_t errlen)
{
	struct db_audit_ckpt k;
	int found, r;

	if ((r = db_audit_ckpt_at(w->db, c->last_seq, &k, &found, err,
				  errlen)) != 0)
		return r;
	if (!found) {
		fail_at(w, c->last_seq,
			"seq %lld: truncated -- the checkpoint anchored in %s "
			"(count %lld, signed at %s) is missing from the "
			"database: records, chain entries and checkpoints "
			"after it were deleted",
			c->last_seq, where, c->count, c->time);
	} else if (strcmp(k.body, body) != 0 ||
		   sodium_memcmp(k.sig, sig, 64) != 0) {
		fail_at(w, c->last_seq,
			"seq %lld: the checkpoint in the database (#%lld, "
			"count %lld) differs from the one anchored in %s "
			"(count %lld, signed at %s): the chain was rebuilt "
			"after it",
			c->last_seq, k.id, k.count, where, c->count, c->time);
	} else {
		w->res->anchored++;
	}
	free(k.body);
	return 0;
}

/*
 * An export manifest as the anchor: its signed last checkpoint. 1 when
 * path holds one JSON object with an export_id (checked, and compared with
 * the database), 0 when it is something else (a journal).
 */
static int
check_anchor_manifest(struct walk *w, const char *path, char *err,
		      size_t errlen, int *r)
{
	const struct gate_audit_verify_opts *o = w->o;
	struct gate_export_manifest m;
	char *text, where[700], body[512], merr[768];
	size_t n;
	json_t *j;
	FILE *f = fopen(path, "r");
	int blen;

	*r = 0;
	if (f == NULL)
		return 0; /* the journal path says why */
	text = malloc(GATE_EXPORT_MANIFEST_MAX + 1);
	if (text == NULL) {
		fclose(f);
		return 0;
	}
	n = fread(text, 1, GATE_EXPORT_MANIFEST_MAX + 1, f);
	fclose(f);
	j = n <= GATE_EXPORT_MANIFEST_MAX ? json_loadb(text, n, 0, NULL) : NULL;
	if (j == NULL || !json_is_object(j) ||
	    json_object_get(j, "export_id") == NULL) {
		json_decref(j);
		free(text);
		return 0;
	}
	json_decref(j);
	if (gate_export_manifest_check(text, n,
				       (const unsigned char(*)[32])o->pks,
				       (const char(*)[17])o->kids, o->npks, &m,
				       merr, sizeof(merr)) != 0) {
		fail_at(w, 0,
			"--anchor %s is an export manifest that does not "
			"check: %s",
			path, merr);
	} else if (!m.have_ckpt) {
		fail_at(w, 0,
			"--anchor %s: export %s names no checkpoint (it was "
			"made before the first one), so it anchors nothing",
			path, m.export_id);
	} else {
		snprintf(where, sizeof(where),
			 "export %s's manifest %s as checkpoint #%lld", m.export_id,
			 path, m.ckpt_id);
		blen = gate_audit_ckpt_body(&m.ckpt, body, sizeof(body));
		if (blen < 0)
			fail_at(w, 0, "--anchor %s: its checkpoint is too long",
				path);
		else
			*r = anchor_in_db(w, &m.ckpt, m.ckpt_sig, body, where,
					  err, errlen);
	}
	free(text);
	return 1;
}

/* One anchor file: an export manifest (its last checkpoint), or a journal
 * whose every checkpoint line must be signed by a known key and be in the
 * database unchanged. */
static int
check_anchor_file(struct walk *w, const char *path, char *err, size_t errlen)
{
	const struct gate_audit_verify_opts *o = w->o;
	struct gate_audit_ckpt c;
	unsigned char sig[64];
	char body[512], where[800];
	char *line = NULL;
	size_t cap = 0, i;
	long lineno = 0;
	int r = 0, blen, pr;
	FILE *f;

	if (check_anchor_manifest(w, path, err, errlen, &r))
		return r;
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "--anchor %s: cannot open it", path);
		return -1;
	}
	while (!w->failed && getline(&line, &cap, f) != -1) {
		lineno++;
		pr = gate_audit_anchor_parse(line, &c, sig);
		if (pr == 0)
			continue;
		blen = pr < 0 ? -1 : gate_audit_ckpt_body(&c, body, sizeof(body));
		for (i = 0; blen > 0 && i < o->npks; i++)
			if (strcmp(o->kids[i], c.kid) == 0)
				break;
		if (blen < 0 || i == o->npks ||
		    gate_audit_verify(o->pks[i], (const unsigned char *)body,
				      (size_t)blen, sig) != 0) {
			fail_at(w, 0,
				"anchor %s line %ld is not a checkpoint signed "
				"by a known key (malformed, altered, or an "
				"unknown kid): the anchor file cannot be "
				"trusted",
				path, lineno);
			break;
		}
		snprintf(where, sizeof(where), "%s line %ld", path, lineno);
		if ((r = anchor_in_db(w, &c, sig, body, where, err, errlen)) !=
		    0)
			break;
	}
	free(line);
	fclose(f);
	return r;
}

static int
check_anchors(struct walk *w, char *err, size_t errlen)
{
	for (size_t i = 0; i < w->o->nanchors && !w->failed; i++)
		if (check_anchor_file(w, w->o->anchors[i], err, errlen) != 0)
			return -1;
	if (!w->failed && w->res->anchored == 0)
		fail_at(w, 0, "no anchored checkpoint found in the --anchor "
			      "file(s) (lines holding "
			      "\"roomgate-audit-anchor-v1 ...\")");
	return 0;
}

int
gate_audit_verify_run(struct db_pool *db,
		      const struct gate_audit_verify_opts *o,
		      struct gate_audit_verify_result *res, char *err,
		      size_t errlen)
{
	struct walk w;
	struct db_audit_purge pu;
	long long anchor_id = 0, end = 0, min_seq = 0, newest = 0;
	size_t base = (size_t)-1;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&w, 0, sizeof(w));
	res->ok = 1;
	w.db = db;
	w.o = o;
	w.res = res;
	if (o->grace_s > 0) {
		time_t t = time(NULL) - o->grace_s;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(w.stale_before, sizeof(w.stale_before),
			 "%Y-%m-%dT%H:%M:%S", &tm);
	}
	/* The newest purge is where verify starts; it must be one that
	 * audit_purge() made, not a row written by hand. */
	if ((r = db_audit_purge_newest(db, o->retention_days, &pu, err,
				       errlen)) != 0)
		goto out;
	if (pu.id != 0) {
		anchor_id = pu.checkpoint_id;
		min_seq = pu.upto_seq;
		snprintf(res->purged, sizeof(res->purged),
			 "records up to seq %lld were purged under retention "
			 "at %s (cutoff %s; %lld records; from checkpoint "
			 "#%lld)",
			 pu.upto_seq, pu.rec_at[0] ? pu.rec_at : pu.at,
			 pu.cutoff, pu.records, pu.checkpoint_id);
		if (check_purge(&w, &pu) != 0)
			goto out; /* r is 0: read fine, res->ok is 0 */
	}
	if (o->from_seq > 0) {
		long long before = 0;

		if ((r = db_audit_ckpt_before(db, o->from_seq, &before, err,
					      errlen)) != 0)
			goto out;
		if (before > min_seq)
			min_seq = before;
	}
	if ((r = db_audit_ckpts(db, min_seq - 1, anchor_id, &w.ck, &w.nck,
				err, errlen)) != 0 ||
	    (r = db_audit_max_chained(db, &w.max_chained, err, errlen)) != 0)
		goto out;
	/* Where to start: the purge's checkpoint, or the last checkpoint
	 * before --from, else the first record ever. */
	for (size_t i = 0; i < w.nck; i++) {
		if (w.ck[i].id == anchor_id)
			base = i;
	}
	if (anchor_id != 0 && base == (size_t)-1) {
		fail_at(&w, 0, "the newest retention purge names checkpoint "
			       "#%lld, which is gone",
			anchor_id);
		goto out;
	}
	if (o->from_seq > 0) {
		for (size_t i = base == (size_t)-1 ? 0 : base + 1; i < w.nck;
		     i++)
			if (w.ck[i].last_seq < o->from_seq)
				base = i;
	}
	if (base != (size_t)-1) {
		if (check_ckpt(&w, &w.ck[base]) != 0)
			goto out;
		w.prev_seq = w.ck[base].last_seq;
		w.prev_pos = w.ck[base].count;
		memcpy(w.prev_hash, w.ck[base].last_hash, 32);
		w.next = base + 1;
	}
	if (o->to_seq > 0) {
		end = o->to_seq;
		for (size_t i = w.next; i < w.nck; i++)
			if (w.ck[i].last_seq >= o->to_seq) {
				end = w.ck[i].last_seq;
				break;
			}
	}
	r = db_audit_walk(db, w.prev_seq, end, on_row, &w, err, errlen);
	if (r < 0)
		goto out;
	r = 0;
	/*
	 * Chain entries no signed checkpoint covers: the sealer writes both
	 * in one transaction, so checkpoints were deleted -- unless the
	 * sealer signed one while this walk ran (asked again).
	 */
	if (!w.failed && res->after_last_ckpt > 0 &&
	    (r = db_audit_max_ckpt(db, &newest, err, errlen)) == 0 &&
	    newest < res->last_seq)
		fail_at(&w, w.first_uncovered,
			"seq %lld: chained but no signed checkpoint covers it "
			"(the chain runs to seq %lld, the newest checkpoint "
			"ends at seq %lld): the sealer writes chain entries "
			"and their checkpoint in one transaction, so "
			"checkpoints were deleted or the chain was rebuilt",
			w.first_uncovered, res->last_seq, newest);
	if (r != 0)
		goto out;
	if (!w.failed && o->nanchors > 0 &&
	    (r = check_anchors(&w, err, errlen)) != 0)
		goto out;
	if (!w.failed && w.next < w.nck &&
	    (end == 0 || w.ck[w.next].last_seq <= end))
		fail_at(&w, w.prev_seq + 1,
			"truncated: checkpoint #%lld sealed the chain up to "
			"seq %lld (count %lld), but the records end at seq "
			"%lld (count %lld): the records after seq %lld were "
			"deleted",
			w.ck[w.next].id, w.ck[w.next].last_seq,
			w.ck[w.next].count, w.prev_seq, w.prev_pos,
			w.prev_seq);
	if (!w.failed)
		snprintf(res->what, sizeof(res->what),
			 "%lld records (seq %lld..%lld) match the chain; %lld "
			 "checkpoint signatures good; %lld anchored "
			 "checkpoints match; %lld records not sealed yet%s",
			 res->records, res->first_seq, res->last_seq,
			 res->checkpoints, res->anchored, res->unsealed,
			 anchor_id ? "; older records were purged under "
				     "retention (from a signed checkpoint)"
				   : "");
out:
	db_audit_ckpts_free(w.ck, w.nck);
	return r;
}

/* ---- GET /v1/audit/public-key ---------------------------------------- */

void
gate_h_audit_public_key(struct gate_app *app, const struct gate_rq *rq,
			struct gate_resp *out)
{
	const char *want =
		MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
					    "kid");
	char text[128];
	int found = 0;

	(void)app;
	pthread_mutex_lock(&pubs_mu);
	for (size_t i = 0; i < npubs && !found; i++) {
		if (want != NULL && strcmp(want, pubs[i].kid) != 0)
			continue;
		gate_audit_pub_text(pubs[i].pk, text);
		found = 1;
	}
	pthread_mutex_unlock(&pubs_mu);
	if (!found) {
		gate_resp_error(out, rq, 404, "no_audit_key", NULL,
				want != NULL
					? "no audit public key with that kid "
					  "is configured on this node"
					: "no audit signing key is configured "
					  "([audit] signing_key_file)");
		return;
	}
	out->body = strdup(text);
	if (out->body == NULL) {
		gate_resp_error(out, rq, 503, "out_of_memory", NULL,
				"out of memory; try again");
		return;
	}
	out->len = strlen(text);
	out->status = 200;
	out->content_type = "text/plain; charset=utf-8";
}
