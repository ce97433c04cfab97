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
					      "resources", "done" };
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
};

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
	pthread_mutex_lock(&cl->d->lock);
	json_array_append(nr->results, (json_t *)msg);
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

/* Everything for one node, start to finish, over one SSH session. */
static void node_work(struct driver *d, struct node_run *nr)
{
	const struct node *n = nr->node;
	struct remote_conn *conn = NULL;
	struct agent_session *s = NULL;
	struct kerr e = { 0 };
	struct collect cl = { .d = d, .nr = nr };
	json_t *req = NULL, *resources = NULL;

	nr->started_ms = now_ms();
	set_phase(d, nr, PHASE_CONNECTING);
	if (remote_connect(d->remote, n, &conn, &e) < 0) {
		fail(nr, OUTCOME_UNREACHABLE, &e);
		goto out;
	}
	set_phase(d, nr, PHASE_AGENT);
	if (agent_open(conn, d->o->agent_path, &s, &e) < 0) {
		fail(nr, OUTCOME_FAILED, &e);
		goto out;
	}
	nr->uploaded = agent_was_uploaded(s);
	set_phase(d, nr, PHASE_FACTS);
	req = json_pack("{s:s}", "op", "facts");
	if (agent_request(s, req, on_msg, &cl, &e) < 0 || !json_is_object(cl.facts)) {
		if (cl.agent_err)
			kerr_set(&e, -EPROTO, "agent: %s", cl.agent_err);
		else if (!e.msg[0])
			kerr_set(&e, -EPROTO, "agent sent no facts");
		kerr_prefix(&e, "facts");
		fail(nr, OUTCOME_FAILED, &e);
		goto out;
	}
	json_decref(req);
	req = NULL;
	nr->facts = cl.facts;
	cl.facts = NULL;
	facts_resolve_names(nr->facts, NULL);
	if (d->o->mode == PLAN_FACTS) {
		nr->outcome = OUTCOME_OK;
		goto out;
	}
	if (stacks_render(d->c, n, nr->facts, &resources, &e) < 0) {
		fail(nr, OUTCOME_FAILED, &e);
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	nr->total = (int)json_array_size(resources);
	pthread_mutex_unlock(&d->lock);
	set_phase(d, nr, PHASE_RESOURCES);
	req = json_pack("{s:s,s:O}", "op", d->o->mode == PLAN_APPLY ? "apply" : "check",
			"resources", resources);
	int rc = agent_request(s, req, on_msg, &cl, &e);
	if (rc == -EPROTO && nr->done >= nr->total && !cl.agent_err)
		kerr_set(&e, -EPROTO, "agent: more results than the %d resources sent", nr->total);
	if (rc < 0 || cl.agent_err || nr->done != nr->total) {
		if (cl.agent_err)
			kerr_set(&e, -EPROTO, "agent: %s", cl.agent_err);
		else if (rc >= 0)
			kerr_set(&e, -EPROTO, "agent: %d results for %d resources", nr->done,
				 nr->total);
		fail(nr, OUTCOME_FAILED, &e);
		goto out;
	}
	if (nr->failed) {
		/* Name the first failing resource: that is what the operator reads. */
		size_t i;
		json_t *r;
		json_array_foreach(nr->results, i, r) {
			const char *st = json_string_value(json_object_get(r, "status"));
			if (st && strcmp(st, "ok") && strcmp(st, "changed")) {
				const char *msg = json_string_value(json_object_get(r, "message"));
				kerr_set(&e, -EIO, "%s: %s%s",
					 json_string_value(json_object_get(r, "id")),
					 msg ? msg : "failed",
					 nr->failed > 1 ? " (and more)" : "");
				break;
			}
		}
		fail(nr, OUTCOME_FAILED, &e);
	} else {
		nr->outcome = nr->changed ? OUTCOME_CHANGED : OUTCOME_OK;
	}
out:
	agent_close(s);
	remote_conn_free(conn);
	json_decref(req);
	json_decref(resources);
	json_decref(cl.facts);
	free(cl.agent_err);
	nr->duration_ms = now_ms() - nr->started_ms;
	if (d->o->state) {
		struct kerr se = { 0 };
		if (nr->facts && state_facts_put(d->o->state, d->c->name, n->name, nr->facts,
						 &se) < 0)
			log_warn("node '%s': %s", n->name, se.msg);
		if (state_run_node(d->o->state, d->run->id, n->name,
				   node_outcome_name(nr->outcome), nr->changed, nr->failed,
				   nr->duration_ms, nr->error, nr->results, &se) < 0)
			log_warn("node '%s': %s", n->name, se.msg);
	}
	set_phase(d, nr, PHASE_DONE);
}

static void *worker(void *arg)
{
	struct driver *d = arg;
	size_t i;

	while ((i = atomic_fetch_add(&d->next, 1)) < d->end)
		node_work(d, &d->run->nodes[i]);
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

int plan_execute(const struct cluster *c, const struct plan_opts *o, struct plan_run **out,
		 struct kerr *e)
{
	static const char *const kinds[] = { "facts", "check", "apply" };
	struct driver d = { .c = c, .o = o };
	bool *sel = xcalloc(c->nnodes ? c->nnodes : 1, sizeof(*sel));
	struct plan_run *run = xcalloc(1, sizeof(*run));
	int r;

	*out = NULL;
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
	while (from < run->n) {
		size_t to = from + batch < run->n ? from + batch : run->n;
		int threads = (int)(to - from) < conc ? (int)(to - from) : conc;
		run_batch(&d, from, to, threads);
		bool failed = false;
		for (size_t i = from; i < to; i++)
			failed |= run->nodes[i].outcome == OUTCOME_FAILED ||
				  run->nodes[i].outcome == OUTCOME_UNREACHABLE;
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
	free(sel);
	*out = run;
	return 0;
fail:
	remote_free(d.remote);
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
	}
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
		if (run->mode == PLAN_FACTS) {
			if (nr->facts)
				json_object_set(o, "facts", nr->facts);
		} else {
			json_object_set(o, "results", nr->results);
		}
		json_array_append_new(nodes, o);
	}
	plan_summarize(run, &s);
	return json_pack("{s:s,s:s,s:I,s:i,s:I,s:o,s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i}}",
			 "cluster", run->cluster->name, "mode", modes[run->mode],
			 "run", (json_int_t)run->id, "bastion_connections", run->bastion_connections, "duration_ms", (json_int_t)run->duration_ms,
			 "nodes", nodes, "summary", "nodes", s.nodes, "ok", s.ok,
			 "changed", s.changed, "failed", s.failed, "unreachable", s.unreachable,
			 "skipped", s.skipped, "resources_changed", s.resources_changed);
}
