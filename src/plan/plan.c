/* The apply driver (see plan.h). */
#include "plan.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "facts/facts.h"
#include "remote/remote.h"
#include "stacks/stacks.h"

struct driver {
	const struct cluster *c;
	const struct plan_opts *o;
	struct plan_run *run;
	struct remote *remote;
	pthread_mutex_t lock;
	atomic_size_t next;     /* next node index in the current batch */
	size_t end;             /* end of the current batch */
	void (*stage)(struct driver *d, struct node_run *nr);   /* what workers run */
	const char *phase;      /* the stack phase being run ("mesh.link") */
	struct exports ex;      /* every export known (state, then this run) */
	struct exports replaced; /* recorded values prepare replaced (render_recorded) */
	const json_t **facts;   /* per c->nodes index: this run's, or the state's */
	json_t **stored_facts;  /* the state's, owned */
};
static const char *const outcome_names[] = {
	[OUTCOME_NONE] = "pending", [OUTCOME_OK] = "ok", [OUTCOME_CHANGED] = "changed",
	[OUTCOME_FAILED] = "failed", [OUTCOME_UNREACHABLE] = "unreachable",
	[OUTCOME_SKIPPED] = "skipped",
};

const char *node_outcome_name(enum node_outcome o)
{
	return outcome_names[o];
}

/* Move a node to a new phase and tell the progress callback. */
static void set_phase(struct driver *d, struct node_run *nr, enum node_phase p)
{
	static const char *const names[] = { "pending", "connecting", "agent", "facts",
					      "resources", "rebooting", "done" };
	log_debug("node '%s': %s at +%lld ms", nr->node->name, names[p],
		  (long long)(now_ms() - nr->started_ms));
	pthread_mutex_lock(&d->lock);
	nr->phase = p;
	if (d->o->progress)
		d->o->progress(d->run, nr, d->o->arg);
	pthread_mutex_unlock(&d->lock);
}

struct collect {
	struct driver *d;
	struct node_run *nr;
	json_t *facts;
	char *agent_err;      /* the agent's "error" reply, if any */
	char *bad_export;     /* why a result's exports were refused */
};

#define EXPORTS_PER_RESULT 64
#define EXPORT_VALUE_MAX 4096

static bool export_name_ok(const char *s)
{
	return str_is_ident(s, 64);
}

/* Printable ASCII only: a value may end up in another node's files. */
static bool export_value_ok(const char *s)
{
	if (strlen(s) > EXPORT_VALUE_MAX)
		return false;
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

/*
 * A result's "exports" (untrusted: the node sent them): into nr->exports
 * when every one is well-formed, else a reason in cl->bad_export.  Values
 * never stay in the result itself (run records, -o json).
 */
static void take_exports(struct collect *cl, json_t *result)
{
	json_t *x = json_object_get(result, "exports");
	const char *k;
	json_t *v;

	if (!x)
		return;
	if (!json_is_object(x) || json_object_size(x) > EXPORTS_PER_RESULT) {
		free(cl->bad_export);
		cl->bad_export = xstrdup("a result's exports are not an object of at most 64 values");
	} else {
		json_object_foreach(x, k, v) {
			if (!export_name_ok(k) || !json_is_string(v) ||
			    !export_value_ok(json_string_value(v))) {
				char *name = str_tty(k, 0);
				free(cl->bad_export);
				cl->bad_export = xasprintf("export '%.64s' refused: names are "
							   "[a-z0-9_]{1,64}, values printable "
							   "text up to 4 KiB", name);
				free(name);
				break;
			}
			if (!cl->nr->exports)
				cl->nr->exports = json_object();
			json_object_set(cl->nr->exports, k, v);
		}
	}
	json_object_del(result, "exports");
}

/*
 * One reply line from the agent: facts, a result, the final tally, or an
 * error.  More results than resources sent is a protocol error: it also
 * bounds what a misbehaving node can make kiln keep in memory.
 */
static int on_msg(const json_t *msg, void *arg)
{
	struct collect *cl = arg;
	struct node_run *nr = cl->nr;
	const char *op = json_string_value(json_object_get(msg, "op"));

	if (!op)
		return 0;
	if (!strcmp(op, "facts")) {
		json_decref(cl->facts);
		cl->facts = json_incref(json_object_get(msg, "facts"));
		return 0;
	}
	if (!strcmp(op, "error")) {
		const char *m = json_string_value(json_object_get(msg, "message"));
		free(cl->agent_err);
		cl->agent_err = xstrdup(m ? m : "error reply without a message");
		return 0;
	}
	if (strcmp(op, "result"))
		return 0;
	if (nr->done >= nr->total)
		return -EPROTO;
	const char *status = json_string_value(json_object_get(msg, "status"));
	json_t *res = json_deep_copy(msg);
	take_exports(cl, res);
	if (cl->d->phase)
		json_object_set_new(res, "phase", json_string(cl->d->phase));
	/* a reboot resource that would change asks the driver for a reboot */
	const char *id = json_string_value(json_object_get(msg, "id"));
	if (cl->d->o->mode == PLAN_APPLY && id && str_starts(id, "reboot:") && status &&
	    !strcmp(status, "changed"))
		nr->reboot = true;
	pthread_mutex_lock(&cl->d->lock);
	json_array_append_new(nr->results, res);
	nr->done++;
	if (status && !strcmp(status, "changed"))
		nr->changed++;
	else if (status && !strcmp(status, "ok"))
		nr->ok++;
	else
		nr->failed++;
	if (cl->d->o->progress)
		cl->d->o->progress(cl->d->run, nr, cl->d->o->arg);
	pthread_mutex_unlock(&cl->d->lock);
	return 0;
}

static void fail(struct node_run *nr, enum node_outcome o, const struct kerr *e)
{
	nr->outcome = o;
	free(nr->error);
	nr->error = xstrdup(e->msg[0] ? e->msg : "unknown error");
}

/* The end of a node's part in the run: close its session. */
static void node_close(struct node_run *nr)
{
	agent_close(nr->session);
	remote_conn_free(nr->conn);
	nr->session = NULL;
	nr->conn = NULL;
}

static bool node_live(const struct node_run *nr)
{
	return nr->outcome == OUTCOME_NONE && nr->session;
}

/* Stage one: connect, start the agent, collect facts; the session stays open. */
static void agent_facts(struct driver *d, struct node_run *nr);

static void stage_facts(struct driver *d, struct node_run *nr)
{
	struct kerr e = { 0 };

	nr->started_ms = now_ms();
	set_phase(d, nr, PHASE_CONNECTING);
	if (remote_connect(d->remote, nr->node, &nr->conn, &e) < 0) {
		fail(nr, OUTCOME_UNREACHABLE, &e);
		goto out;
	}
	agent_facts(d, nr);
out:
	if (nr->outcome != OUTCOME_NONE)
		node_close(nr);
}

/* On a connected node: start the agent, (re)collect its facts. */
static void agent_facts(struct driver *d, struct node_run *nr)
{
	struct kerr e = { 0 };
	struct collect cl = { .d = d, .nr = nr };
	json_t *req = NULL;

	set_phase(d, nr, PHASE_AGENT);
	if (agent_open(nr->conn, d->o->agent_path, &nr->session, &e) < 0) {
		fail(nr, OUTCOME_FAILED, &e);
		goto out;
	}
	nr->uploaded |= agent_was_uploaded(nr->session);
	set_phase(d, nr, PHASE_FACTS);
	req = json_pack("{s:s}", "op", "facts");
	if (agent_request(nr->session, req, on_msg, &cl, &e) < 0 || !json_is_object(cl.facts)) {
		if (cl.agent_err)
			kerr_set(&e, -EPROTO, "agent: %s", cl.agent_err);
		else if (!e.msg[0])
			kerr_set(&e, -EPROTO, "agent sent no facts");
		kerr_prefix(&e, "facts");
		fail(nr, OUTCOME_FAILED, &e);
		goto out;
	}
	json_decref(nr->facts);
	nr->facts = cl.facts;
	cl.facts = NULL;
	facts_resolve_names(nr->facts, NULL);
out:
	json_decref(req);
	json_decref(cl.facts);
	free(cl.agent_err);
}

/* A stack phase on one node: its rendered resources in one message. */
static void stage_resources(struct driver *d, struct node_run *nr)
{
	struct kerr e = { 0 };
	struct collect cl = { .d = d, .nr = nr };
	int before_done = nr->done, before_failed = nr->failed;
	size_t nsent = json_array_size(nr->pending);

	set_phase(d, nr, PHASE_RESOURCES);
	json_t *req = json_pack("{s:s,s:O}", "op", d->o->mode == PLAN_APPLY ? "apply" : "check",
				"resources", nr->pending);
	int rc = agent_request(nr->session, req, on_msg, &cl, &e);
	json_decref(req);
	if (rc == -EPROTO && nr->done >= nr->total && !cl.agent_err)
		kerr_set(&e, -EPROTO, "agent: more results than the %zu resources sent", nsent);
	if (!e.msg[0] && cl.bad_export)
		kerr_set(&e, -EPROTO, "agent: %s", cl.bad_export);
	if (rc < 0 || cl.agent_err || cl.bad_export || nr->done != nr->total) {
		if (cl.agent_err)
			kerr_set(&e, -EPROTO, "agent: %s", cl.agent_err);
		else if (rc >= 0 && !cl.bad_export)
			kerr_set(&e, -EPROTO, "agent: %d results for %zu resources",
				 nr->done - before_done, nsent);
		fail(nr, OUTCOME_FAILED, &e);
	} else if (nr->failed > before_failed) {
		/* Name the first failing resource: that is what the operator reads. */
		size_t i;
		json_t *r;
		json_array_foreach(nr->results, i, r) {
			if ((int)i < before_done)
				continue;
			const char *st = json_string_value(json_object_get(r, "status"));
			if (st && strcmp(st, "ok") && strcmp(st, "changed")) {
				const char *msg = json_string_value(json_object_get(r, "message"));
				kerr_set(&e, -EIO, "%s: %s%s",
					 json_string_value(json_object_get(r, "id")),
					 msg ? msg : "failed",
					 nr->failed - before_failed > 1 ? " (and more)" : "");
				break;
			}
		}
		fail(nr, OUTCOME_FAILED, &e);
	}
	if (nr->outcome == OUTCOME_FAILED) {
		free(nr->failed_in);
		nr->failed_in = xstrdup(d->phase);
		char *m = xasprintf("phase %s: %s", d->phase, nr->error);
		free(nr->error);
		nr->error = m;
		node_close(nr);
	}
	free(cl.agent_err);
	free(cl.bad_export);
}

/*
 * What tells one boot from the next: the kernel's boot_id, and the start
 * time of PID 1 (a container's or lab host's init restarts without a new
 * kernel).
 */
#define BOOT_IDENTITY "cat /proc/sys/kernel/random/boot_id; cut -d' ' -f22 /proc/1/stat"
/* Reboot 2 s from now, so the command returns before the connection goes. */
#define REBOOT_COMMAND \
	"if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then " \
	"systemd-run --quiet --on-active=2 --timer-property=AccuracySec=100ms " \
	"systemctl reboot; else nohup sh -c 'sleep 2; reboot' >/dev/null 2>&1 </dev/null & fi"
#define REBOOT_POLL_MS 2000

static int node_exec(struct remote_conn *conn, const char *cmd, struct buf *out, struct kerr *e)
{
	struct buf err;
	int status = 0, r;

	buf_init(&err, 1024);
	r = remote_exec(conn, cmd, NULL, 0, out, &err, &status, e);
	if (r == 0 && status != 0) {
		char *t = str_tty(err.s ? err.s : "", 0);
		r = kerr_set(e, -EIO, "exit %d: %s", status, t);
		free(t);
	}
	buf_release(&err);
	return r;
}

/* A node a reboot resource asked to reboot: reboot it, wait, start again. */
static void stage_reboot(struct driver *d, struct node_run *nr)
{
	int64_t t0 = now_ms(), limit = (d->o->reboot_timeout_s > 0 ? d->o->reboot_timeout_s : 600);
	struct buf before, now;
	struct kerr e = { 0 };

	nr->reboot = false;
	set_phase(d, nr, PHASE_REBOOTING);
	buf_init(&before, 256);
	buf_init(&now, 256);
	agent_close(nr->session);
	nr->session = NULL;
	if (node_exec(nr->conn, BOOT_IDENTITY, &before, &e) < 0 ||
	    node_exec(nr->conn, REBOOT_COMMAND, NULL, &e) < 0) {
		kerr_prefix(&e, "reboot");
		fail(nr, OUTCOME_FAILED, &e);
		goto out;
	}
	node_close(nr);
	/* back when it answers with another boot identity */
	for (;;) {
		sleep_ms(REBOOT_POLL_MS);
		if (now_ms() - t0 > limit * 1000) {
			kerr_set(&e, -ETIMEDOUT, "reboot: not back within %lld s (last: %s)",
				 (long long)limit, e.msg[0] ? e.msg : "no answer");
			fail(nr, OUTCOME_UNREACHABLE, &e);
			goto out;
		}
		if (remote_connect(d->remote, nr->node, &nr->conn, &e) < 0)
			continue;
		buf_reset(&now);
		if (node_exec(nr->conn, BOOT_IDENTITY, &now, &e) == 0 && now.s && before.s &&
		    strcmp(now.s, before.s))
			break;
		node_close(nr);          /* not down yet, or not answering yet */
	}
	nr->reboots++;
	strv_pushf(&nr->notes, "%s: rebooted, back in %lld s", d->phase ? d->phase : "reboot",
		   (long long)((now_ms() - t0 + 500) / 1000));
	agent_facts(d, nr);
	if (nr->outcome == OUTCOME_NONE)
		set_phase(d, nr, PHASE_RESOURCES);
out:
	if (nr->outcome != OUTCOME_NONE) {
		free(nr->failed_in);
		nr->failed_in = xstrdup(d->phase ? d->phase : "reboot");
		node_close(nr);
	}
	buf_release(&before);
	buf_release(&now);
}

/* Record a node's part of the run in the state store. */
static void node_record(struct driver *d, struct node_run *nr)
{
	struct kerr se = { 0 };

	if (!d->o->state)
		return;
	if (nr->facts && state_facts_put(d->o->state, d->c->name, nr->node->name, nr->facts,
					 &se) < 0)
		log_warn("node '%s': %s", nr->node->name, se.msg);
	if (state_run_node(d->o->state, d->run->id, nr->node->name,
			   node_outcome_name(nr->outcome), nr->changed, nr->failed,
			   nr->duration_ms, nr->error, nr->results, &se) < 0)
		log_warn("node '%s': %s", nr->node->name, se.msg);
}

static void *worker(void *arg)
{
	struct driver *d = arg;
	size_t i;

	while ((i = atomic_fetch_add(&d->next, 1)) < d->end) {
		struct node_run *nr = &d->run->nodes[i];
		if (d->stage == stage_facts ||
		    (d->stage == stage_reboot && node_live(nr) && nr->reboot) ||
		    (d->stage == stage_resources && node_live(nr) && json_array_size(nr->pending)))
			d->stage(d, nr);
	}
	return NULL;
}

/* Run nodes [from, to) with up to `threads` workers; wait for all. */
static void run_batch(struct driver *d, size_t from, size_t to, int threads)
{
	pthread_t *t = xcalloc((size_t)threads, sizeof(*t));
	int started = 0;

	atomic_store(&d->next, from);
	d->end = to;
	for (int i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, worker, d) == 0)
			started++;
	if (!started)
		worker(d);
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
}

/* Facts rows as read, parsed later on several threads. */
struct facts_rows {
	const struct cluster *c;
	const bool *want;
	json_t **out;            /* per node index */
};

/* Called by several readers at once, never twice at once for one node. */
static int keep_row(const char *node, const char *json, size_t len, void *arg)
{
	struct facts_rows *fr = arg;
	const struct node *n = cluster_node(fr->c, node);

	if (!n)
		return 0;
	size_t i = (size_t)(n - fr->c->nodes);
	if (fr->want && !fr->want[i])
		return 0;
	/* a second read of the same node replaces the first (whole records) */
	json_decref(fr->out[i]);
	fr->out[i] = json_loadb(json, len, 0, NULL);
	return 0;
}

struct exports_rows {
	const struct cluster *c;
	struct exports *ex;
	struct strv gone;        /* nodes that left the spec, each once */
};

static int keep_export(const struct state_export *x, void *arg)
{
	struct exports_rows *er = arg;

	if (!cluster_node(er->c, x->node)) {
		strv_push_unique(&er->gone, x->node);
		return 0;
	}
	exports_set(er->ex, x->node, x->stack, x->name, x->value, x->secret);
	return 0;
}

int plan_exports_load(struct state *st, const struct cluster *c, struct exports *ex, bool forget,
		      struct kerr *e)
{
	struct exports_rows er = { .c = c, .ex = ex };
	int r = state_exports_each(st, c->name, keep_export, &er, e);

	/* a node that left the spec: its values (an address) are free */
	for (size_t i = 0; r == 0 && forget && i < er.gone.n; i++)
		state_exports_drop_node(st, c->name, er.gone.v[i], NULL);
	strv_release(&er.gone);
	return r;
}

/* plan_exports_load as a thread of its own */
struct exports_job {
	struct state *st;
	const struct cluster *c;
	struct exports *ex;
	bool forget;
	struct kerr e;
	int r;
};

static void *exports_job_run(void *arg)
{
	struct exports_job *x = arg;

	x->r = plan_exports_load(x->st, x->c, x->ex, x->forget, &x->e);
	return NULL;
}

int plan_state_load(struct state *st, const struct cluster *c, const bool *want,
		    json_t **facts, struct exports *ex, bool forget, struct kerr *e)
{
	struct facts_rows fr = { .c = c, .want = want, .out = facts };
	struct exports_job xj = { .st = st, .c = c, .ex = ex, .forget = forget };
	struct strv keys = { 0 };
	pthread_t t;
	bool threaded;
	int r;

	/* the exports meanwhile: the facts readers use connections of their own */
	threaded = c->nnodes > 256 && pthread_create(&t, NULL, exports_job_run, &xj) == 0;
	/* only what the enabled stacks' renders read (stacks.h) */
	stacks_facts_keys(c, &keys);
	r = state_facts_each(st, c->name, &keys, keep_row, &fr, e);
	if (r == -EBADMSG) {
		/* a damaged record: read them whole; it parses to NULL (no facts) */
		log_debug("%s; reading whole records", e->msg);
		r = state_facts_each(st, c->name, NULL, keep_row, &fr, e);
	}
	strv_release(&keys);
	if (threaded)
		pthread_join(t, NULL);
	else
		exports_job_run(&xj);
	if (!r && xj.r < 0) {
		*e = xj.e;
		r = xj.r;
	}
	return r;
}

/* Exports recorded by earlier runs, and stored facts for nodes not selected. */
static int load_state(struct driver *d, const bool *sel, struct kerr *e)
{
	const struct cluster *c = d->c;
	bool *unsel = xcalloc(c->nnodes + 1, sizeof(*unsel));
	int r;

	d->facts = xcalloc(c->nnodes ? c->nnodes : 1, sizeof(*d->facts));
	d->stored_facts = xcalloc(c->nnodes ? c->nnodes : 1, sizeof(*d->stored_facts));
	if (!d->o->state) {
		free(unsel);
		return 0;
	}
	for (size_t i = 0; i < c->nnodes; i++)
		unsel[i] = !sel[i];
	r = plan_state_load(d->o->state, c, unsel, d->stored_facts, &d->ex,
			    d->o->mode == PLAN_APPLY, e);
	for (size_t i = 0; i < c->nnodes; i++)
		d->facts[i] = d->stored_facts[i];
	free(unsel);
	return r;
}

/* A value known now: in memory for later phases, stored by apply. */
static void export_learn(struct driver *d, const char *node, const struct stack_type *t,
			 const char *name, const char *value)
{
	bool secret = stack_export_secret(t, name);
	struct kerr e = { 0 };

	if (exports_set(&d->ex, node, t->name, name, value, secret) &&
	    d->o->mode == PLAN_APPLY && d->o->state &&
	    state_export_put(d->o->state, d->c->name, node, t->name, name, value, secret, &e) < 0)
		log_warn("node '%s': %s", node, e.msg);
}

/* Stack values kiln makes itself (addresses), before the first phase. */
static int prepare(struct driver *d, struct kerr *e)
{
	struct render_ctx rc = { .c = d->c, .facts = d->facts, .exports = &d->ex,
				 .rotate = d->o->rotate };
	struct exports made;
	int r;

	exports_init(&made);
	if ((r = stacks_prepare(&rc, &made, e)) == 0) {
		stacks_prepare_replaced(&d->ex, &made, &d->replaced);
		for (size_t i = 0; i < made.n; i++) {
			const struct export_entry *x = &made.v[i];
			export_learn(d, x->node, stack_type_find(x->stack), x->name, x->value);
		}
	}
	exports_release(&made);
	return r;
}

/* One stack phase over nodes [from, to): render each, run, learn exports. */
static void run_phase(struct driver *d, const struct phase_ref *ph, size_t index, size_t from,
		      size_t to, int threads)
{
	struct render_ctx rc = { .c = d->c, .facts = d->facts, .exports = &d->ex,
				 .rotate = d->o->rotate, .stack = ph->stack,
				 .replaced = &d->replaced };
	char name[128];

	phase_ref_name(ph, name, sizeof(name));
	d->phase = name;
	for (size_t i = from; i < to; i++) {
		struct node_run *nr = &d->run->nodes[i];
		struct render_out ro;
		struct kerr e = { 0 };
		if (!node_live(nr))
			continue;
		render_out_init(&ro);
		if (ph->phase->render(&rc, ph->conf, nr->node, &ro, &e) < 0) {
			fail(nr, OUTCOME_FAILED, &e);
			nr->failed_in = xstrdup(name);
			node_close(nr);
		} else {
			for (size_t k = 0; k < ro.needs.n; k++)
				strv_pushf(&nr->waits, "%s: waits for %s", name, ro.needs.v[k]);
			for (size_t k = 0; k < ro.notes.n; k++)
				strv_pushf(&nr->notes, "%s: %s", name, ro.notes.v[k]);
			nr->pending = json_incref(ro.resources);
			pthread_mutex_lock(&d->lock);
			nr->total += (int)json_array_size(nr->pending);
			nr->stage = index < d->run->nphases ? d->run->phases[index] : NULL;
			pthread_mutex_unlock(&d->lock);
		}
		render_out_release(&ro);
	}
	d->stage = stage_resources;
	int64_t t0 = now_ms();
	log_debug("phase %s: rendered, checking%s", name,
		  d->o->mode == PLAN_APPLY ? " and applying" : "");
	run_batch(d, from, to, threads);
	log_debug("phase %s: every node done in %lld ms", name, (long long)(now_ms() - t0));
	bool reboots = false;
	for (size_t i = from; i < to; i++) {
		struct node_run *nr = &d->run->nodes[i];
		const char *k;
		json_t *v;
		json_object_foreach(nr->exports, k, v)
			export_learn(d, nr->node->name, ph->stack, k, json_string_value(v));
		json_decref(nr->exports);
		json_decref(nr->pending);
		nr->exports = nr->pending = NULL;
		reboots |= node_live(nr) && nr->reboot;
	}
	if (reboots) {
		/* the batch's nodes that asked reboot together; facts anew */
		d->stage = stage_reboot;
		run_batch(d, from, to, threads);
		for (size_t i = from; i < to; i++)
			d->facts[d->run->nodes[i].node - d->c->nodes] = d->run->nodes[i].facts;
	}
	d->phase = NULL;
}

/* A node at the end of the run: its outcome, its session closed, recorded. */
static void node_finish(struct driver *d, struct node_run *nr)
{
	if (nr->outcome == OUTCOME_NONE) {
		if (d->o->mode == PLAN_FACTS)
			nr->outcome = OUTCOME_OK;
		else
			nr->outcome = nr->changed || (d->o->mode == PLAN_CHECK && nr->waits.n)
				      ? OUTCOME_CHANGED : OUTCOME_OK;
	}
	node_close(nr);
	nr->stage = NULL;
	nr->duration_ms = now_ms() - nr->started_ms;
	node_record(d, nr);
	set_phase(d, nr, PHASE_DONE);
}

int plan_execute(const struct cluster *c, const struct plan_opts *o, struct plan_run **out,
		 struct kerr *e)
{
	static const char *const kinds[] = { "facts", "check", "apply" };
	struct driver d = { .c = c, .o = o };
	bool *sel = xcalloc(c->nnodes ? c->nnodes : 1, sizeof(*sel));
	struct plan_run *run = xcalloc(1, sizeof(*run));
	struct phase_ref ph[STACKS_MAX_PHASES];
	size_t nph = o->mode == PLAN_FACTS ? 0 : stacks_phases(c, ph, ARRAY_SIZE(ph));
	int r;

	*out = NULL;
	exports_init(&d.ex);
	exports_init(&d.replaced);
	if (o->limit) {
		if ((r = cluster_select(c, o->limit, sel, e)) < 0)
			goto fail;
	} else {
		for (size_t i = 0; i < c->nnodes; i++)
			sel[i] = true;
	}
	run->cluster = c;
	run->mode = o->mode;
	run->nodes = xcalloc(c->nnodes ? c->nnodes : 1, sizeof(*run->nodes));
	for (size_t i = 0; i < c->nnodes; i++) {
		if (!sel[i])
			continue;
		struct node_run *nr = &run->nodes[run->n++];
		nr->node = &c->nodes[i];
		nr->results = json_array();
	}
	for (size_t i = 0; i < nph && i < ARRAY_SIZE(run->phases); i++) {
		char name[128];
		run->phases[run->nphases++] = xstrdup(phase_ref_name(&ph[i], name, sizeof(name)));
	}
	if ((r = load_state(&d, sel, e)) < 0)
		goto fail;
	if ((r = remote_new(c, &d.remote, e)) < 0)
		goto fail;
	if (o->state && (r = state_run_begin(o->state, c->name, kinds[o->mode], c->path,
					     (int)run->n, &run->id, e)) < 0)
		goto fail;

	int64_t t0 = now_ms();
	d.run = run;
	pthread_mutex_init(&d.lock, NULL);
	size_t batch = o->serial > 0 ? (size_t)o->serial : run->n;
	int conc = c->ssh.concurrency > 0 ? c->ssh.concurrency : 50;
	size_t from = 0;
	bool prepared = false;
	while (from < run->n) {
		size_t to = from + batch < run->n ? from + batch : run->n;
		int threads = (int)(to - from) < conc ? (int)(to - from) : conc;
		d.stage = stage_facts;
		run_batch(&d, from, to, threads);
		for (size_t i = from; i < to; i++)
			d.facts[run->nodes[i].node - c->nodes] = run->nodes[i].facts;
		if (nph && !prepared) {
			struct kerr pe = { 0 };
			prepared = true;
			if (prepare(&d, &pe) < 0)
				for (size_t i = 0; i < run->n; i++)
					if (run->nodes[i].outcome == OUTCOME_NONE) {
						fail(&run->nodes[i], OUTCOME_FAILED, &pe);
						node_close(&run->nodes[i]);
					}
		}
		for (size_t p = 0; p < nph; p++)
			run_phase(&d, &ph[p], p, from, to, threads);
		bool failed = false;
		for (size_t i = from; i < to; i++) {
			node_finish(&d, &run->nodes[i]);
			failed |= run->nodes[i].outcome == OUTCOME_FAILED ||
				  run->nodes[i].outcome == OUTCOME_UNREACHABLE;
		}
		from = to;
		if (failed && o->serial > 0)
			break;
	}
	for (size_t i = from; i < run->n; i++) {
		struct node_run *nr = &run->nodes[i];
		nr->outcome = OUTCOME_SKIPPED;
		nr->error = xstrdup("not attempted: an earlier batch failed (--serial)");
		nr->phase = PHASE_DONE;
		if (o->state)
			state_run_node(o->state, run->id, nr->node->name, "skipped", 0, 0, 0,
				       nr->error, NULL, NULL);
	}
	pthread_mutex_destroy(&d.lock);
	run->duration_ms = now_ms() - t0;
	run->bastion_connections = remote_bastion_connections(d.remote);
	remote_free(d.remote);
	if (o->state) {
		struct plan_summary s;
		plan_summarize(run, &s);
		bool bad = s.failed || s.unreachable || s.skipped;
		state_run_end(o->state, run->id, bad ? "failed" : "ok", s.changed,
			      s.failed + s.unreachable, NULL);
	}
	r = 0;
	*out = run;
	run = NULL;
fail:
	if (r < 0)
		remote_free(d.remote);
	for (size_t i = 0; d.stored_facts && i < c->nnodes; i++)
		json_decref(d.stored_facts[i]);
	free(d.stored_facts);
	free((void *)d.facts);
	exports_release(&d.ex);
	exports_release(&d.replaced);
	free(sel);
	plan_run_free(run);
	return r;
}

void plan_run_free(struct plan_run *run)
{
	if (!run)
		return;
	for (size_t i = 0; i < run->n; i++) {
		json_decref(run->nodes[i].results);
		json_decref(run->nodes[i].facts);
		free(run->nodes[i].error);
		free(run->nodes[i].failed_in);
		strv_release(&run->nodes[i].waits);
		strv_release(&run->nodes[i].notes);
	}
	for (size_t i = 0; i < run->nphases; i++)
		free(run->phases[i]);
	free(run->nodes);
	free(run);
}

void plan_summarize(const struct plan_run *run, struct plan_summary *s)
{
	memset(s, 0, sizeof(*s));
	s->nodes = (int)run->n;
	for (size_t i = 0; i < run->n; i++) {
		const struct node_run *nr = &run->nodes[i];
		s->resources_changed += nr->changed;
		switch (nr->outcome) {
		case OUTCOME_OK: s->ok++; break;
		case OUTCOME_CHANGED: s->changed++; break;
		case OUTCOME_FAILED: s->failed++; break;
		case OUTCOME_UNREACHABLE: s->unreachable++; break;
		case OUTCOME_SKIPPED: s->skipped++; break;
		case OUTCOME_NONE: break;
		}
	}
}

json_t *plan_run_to_json(const struct plan_run *run)
{
	static const char *const modes[] = { "facts", "check", "apply" };
	struct plan_summary s;
	json_t *nodes = json_array();

	for (size_t i = 0; i < run->n; i++) {
		const struct node_run *nr = &run->nodes[i];
		json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:I,s:b}",
				      "name", nr->node->name, "address", nr->node->address,
				      "status", node_outcome_name(nr->outcome),
				      "ok", nr->ok, "changed", nr->changed, "failed", nr->failed,
				      "duration_ms", (json_int_t)nr->duration_ms,
				      "agent_uploaded", nr->uploaded);
		if (nr->error)
			json_object_set_new(o, "error", json_string(nr->error));
		if (nr->failed_in)
			json_object_set_new(o, "failed_in", json_string(nr->failed_in));
		if (nr->reboots)
			json_object_set_new(o, "reboots", json_integer(nr->reboots));
		if (nr->waits.n) {
			json_t *w = json_array();
			for (size_t k = 0; k < nr->waits.n; k++)
				json_array_append_new(w, json_string(nr->waits.v[k]));
			json_object_set_new(o, "waits", w);
		}
		if (nr->notes.n) {
			json_t *w = json_array();
			for (size_t k = 0; k < nr->notes.n; k++)
				json_array_append_new(w, json_string(nr->notes.v[k]));
			json_object_set_new(o, "notes", w);
		}
		if (run->mode == PLAN_FACTS) {
			if (nr->facts)
				json_object_set(o, "facts", nr->facts);
		} else {
			json_object_set(o, "results", nr->results);
		}
		json_array_append_new(nodes, o);
	}
	plan_summarize(run, &s);
	json_t *phases = json_array();
	for (size_t i = 0; i < run->nphases; i++)
		json_array_append_new(phases, json_string(run->phases[i]));
	return json_pack("{s:s,s:s,s:I,s:i,s:I,s:o,s:o,s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i}}",
			 "cluster", run->cluster->name, "mode", modes[run->mode],
			 "run", (json_int_t)run->id, "bastion_connections", run->bastion_connections, "duration_ms", (json_int_t)run->duration_ms,
			 "phases", phases, "nodes", nodes, "summary", "nodes", s.nodes, "ok", s.ok,
			 "changed", s.changed, "failed", s.failed, "unreachable", s.unreachable,
			 "skipped", s.skipped, "resources_changed", s.resources_changed);
}
