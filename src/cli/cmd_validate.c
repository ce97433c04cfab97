/*
 * kiln validate: the offline plan.  Load and check the spec, then render
 * every node through every phase of every enabled stack with the facts and
 * exports the state database last recorded; no node is contacted, and a
 * missing state database is not created.
 */
#include "cli.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan/plan.h"
#include "spec/spec.h"
#include "stacks/stacks.h"
#include "state/state.h"

struct validate {
	const struct cluster *c;
	const json_t **facts;     /* per node, NULL when none recorded */
	json_t **owned;           /* the same, owned */
	struct exports ex;
	struct exports replaced;  /* recorded values prepare replaced */
};

/*
 * The last recorded facts per node and every recorded export of the
 * cluster's nodes, from the state database at path if it exists (opened
 * only then: state_open would create it).
 */
static int load_state(struct validate *v, const char *path, struct kerr *e)
{
	struct state *st = NULL;
	int r;

	if (!path_exists(path))
		return 0;
	if ((r = state_open(path, &st, e)) < 0)
		return r;
	/* forget nothing: validate never writes */
	r = plan_state_load(st, v->c, NULL, v->owned, &v->ex, false, e);
	for (size_t i = 0; i < v->c->nnodes; i++)
		v->facts[i] = v->owned[i];
	state_close(st);
	return r;
}

/* The values kiln makes itself (stacks_prepare), merged in as apply does. */
static int prepare(struct validate *v, struct kerr *e)
{
	struct render_ctx rc = { .c = v->c, .facts = v->facts, .exports = &v->ex };
	struct exports made;
	int r;

	exports_init(&made);
	if ((r = stacks_prepare(&rc, &made, e)) == 0) {
		stacks_prepare_replaced(&v->ex, &made, &v->replaced);
		for (size_t i = 0; i < made.n; i++) {
			const struct export_entry *x = &made.v[i];
			const struct stack_type *t = stack_type_find(x->stack);
			exports_set(&v->ex, x->node, x->stack, x->name, x->value,
				    t && stack_export_secret(t, x->name));
		}
	}
	exports_release(&made);
	return r;
}

/*
 * Render node n through every phase into *entry: {name, resources, needs,
 * facts}.  The resources are counted, then dropped: a large cluster never
 * holds every node's rendering at once.
 */
static int render_node(const struct validate *v, const struct node *n, json_t **entry,
		       struct kerr *e)
{
	struct render_ctx rc = { .c = v->c, .facts = v->facts, .exports = &v->ex,
				 .replaced = &v->replaced };
	struct render_out ro;
	int r;

	render_out_init(&ro);
	ro.unstamped = true;     /* counted, not shown */
	if ((r = stacks_render_node(&rc, n, &ro, e)) == 0) {
		json_t *needs = json_array(), *notes = json_array();
		for (size_t k = 0; k < ro.needs.n; k++)
			json_array_append_new(needs, json_string(ro.needs.v[k]));
		for (size_t k = 0; k < ro.notes.n; k++)
			json_array_append_new(notes, json_string(ro.notes.v[k]));
		*entry = json_pack("{s:s,s:I,s:o,s:o,s:b}", "name", n->name, "resources",
				   (json_int_t)json_array_size(ro.resources), "needs", needs,
				   "notes", notes, "facts", render_has_facts(&rc, n));
	}
	render_out_release(&ro);
	return r;
}

/* Every node's render, spread over the cores (renders are pure). */
struct render_all {
	const struct validate *v;
	json_t **entry;          /* per node */
	struct kerr *err;        /* per node */
	bool *failed;            /* per node */
	atomic_size_t next;
};

static void *render_some(void *arg)
{
	struct render_all *ra = arg;
	const struct cluster *c = ra->v->c;
	size_t i;

	/* no early stop: the error reported is the first node's, as in order */
	while ((i = atomic_fetch_add(&ra->next, 1)) < c->nnodes)
		ra->failed[i] = render_node(ra->v, &c->nodes[i], &ra->entry[i], &ra->err[i]) < 0;
	return NULL;
}

/*
 * Render every node; nodes gets the entries in spec order up to the first
 * node whose render failed (its error in e; -1), as a one-thread run would.
 */
static int render_all(const struct validate *v, json_t *nodes, struct kerr *e)
{
	const struct cluster *c = v->c;
	struct render_all ra = { .v = v };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nt = 0, want = c->nnodes > 256 && ncpu > 1 ? (size_t)(ncpu < 8 ? ncpu : 8) - 1 : 0;
	pthread_t *t = xcalloc(want + 1, sizeof(*t));
	int r = 0;

	ra.entry = xcalloc(c->nnodes + 1, sizeof(*ra.entry));
	ra.err = xcalloc(c->nnodes + 1, sizeof(*ra.err));
	ra.failed = xcalloc(c->nnodes + 1, sizeof(*ra.failed));
	atomic_store(&ra.next, 0);
	while (nt < want && pthread_create(&t[nt], NULL, render_some, &ra) == 0)
		nt++;
	render_some(&ra);
	for (size_t i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
	for (size_t i = 0; i < c->nnodes; i++) {
		if (!r && !ra.failed[i]) {
			json_array_append_new(nodes, ra.entry[i]);
		} else if (!r) {
			*e = ra.err[i];
			r = -1;
		} else {
			json_decref(ra.entry[i]);
		}
	}
	free(ra.entry);
	free(ra.err);
	free(ra.failed);
	free(t);
	return r;
}

static void put_text(const struct cluster *c, const json_t *nodes)
{
	size_t i, total = 0, nofacts = 0, waits = 0;
	json_t *x;

	json_array_foreach(nodes, i, x) {
		json_int_t nres = json_integer_value(json_object_get(x, "resources"));
		bool facts = json_is_true(json_object_get(x, "facts"));
		/* a node name is a valid host name (the spec checks): printed as is */
		const char *name = json_string_value(json_object_get(x, "name"));
		size_t k;
		json_t *w;

		printf("%-16s %6lld resources%s\n", name, (long long)nres,
		       facts ? "" : " (no facts: what needs them is left out)");
		total += (size_t)nres;
		nofacts += !facts;
		json_array_foreach(json_object_get(x, "needs"), k, w) {
			char *t = str_tty(json_string_value(w), 0);
			printf("    waits for %s\n", t);
			free(t);
			waits++;
		}
		json_array_foreach(json_object_get(x, "notes"), k, w) {
			char *t = str_tty(json_string_value(w), 0);
			printf("    note: %s\n", t);
			free(t);
		}
	}
	char *cname = str_tty(c->name, 0);
	printf("ok: cluster %s: %zu nodes, %zu resources, %zu nodes without facts, "
	       "%zu waits\n", cname, json_array_size(nodes), total, nofacts, waits);
	free(cname);
}

static int run(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	struct validate v = { 0 };
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	json_t *nodes = json_array();
	char *path = NULL;
	int64_t t0 = now_ms(), t;
	int rc = 1;

	exports_init(&v.ex);
	exports_init(&v.replaced);
	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a);
		if (n < 0)
			goto out;
		if (n == 0) {
			cli_error("validate: unknown argument '%s' (see 'kiln validate --help')",
				  argv[i]);
			goto out;
		}
	}
	if (spec_load(a.spec, &c, &e) < 0)
		goto fail;
	log_debug("validate: spec loaded in %lld ms (%zu nodes)", (long long)(now_ms() - t0),
		  c->nnodes);
	v.c = c;
	v.facts = xcalloc(c->nnodes + 1, sizeof(*v.facts));
	v.owned = xcalloc(c->nnodes + 1, sizeof(*v.owned));
	path = cli_state_path(&a);
	t = now_ms();
	if (load_state(&v, path, &e) < 0)
		goto fail;
	log_debug("validate: state read in %lld ms (%zu exports)", (long long)(now_ms() - t),
		  v.ex.n);
	t = now_ms();
	if (prepare(&v, &e) < 0)
		goto fail;
	log_debug("validate: prepare in %lld ms", (long long)(now_ms() - t));
	t = now_ms();
	if (render_all(&v, nodes, &e) < 0)
		goto fail;
	log_debug("validate: rendered in %lld ms", (long long)(now_ms() - t));
	if (arg_output == OUTPUT_JSON) {
		json_t *j = json_pack("{s:O,s:b}", "nodes", nodes, "ok", true);
		cli_print_json(j);
		json_decref(j);
	} else {
		put_text(c, nodes);
	}
	rc = 0;
	goto out;
fail:
	/* a render error may quote facts a node sent: escaped */
	{
		char *msg = str_tty(e.msg, 0);
		if (arg_output == OUTPUT_JSON) {
			json_t *j = json_pack("{s:O,s:b,s:s}", "nodes", nodes, "ok", false,
					      "error", e.msg);
			cli_print_json(j);
			json_decref(j);
		}
		rc = cli_error("%s", msg);
		free(msg);
	}
out:
	if (c)
		for (size_t i = 0; i < c->nnodes; i++)
			json_decref(v.owned[i]);
	free(v.owned);
	free(v.facts);
	exports_release(&v.ex);
	exports_release(&v.replaced);
	json_decref(nodes);
	free(path);
	cluster_free(c);
	return rc;
}

const struct command cmd_validate = {
	.name = "validate",
	.run = run,
	.summary = "check a spec and render every node offline (for CI and git hooks)",
	.help = "NAME\n    kiln validate - check a spec and render every node, offline\n\n"
		"SYNOPSIS\n    kiln validate [-f FILE] [--state FILE] [-o json]\n\n"
		"DESCRIPTION\n"
		"    What a CI job or a git pre-commit hook runs on a spec before it is\n"
		"    applied: the offline plan. It loads and checks the spec (and the\n"
		"    inventories and key files it reads), then renders every node through\n"
		"    every phase of every enabled stack, as 'kiln apply' would, without\n"
		"    contacting any node: nothing needs SSH, root or the network.\n\n"
		"    Renders use what the state database last recorded: each node's facts\n"
		"    (a node never reached renders without what needs them, such as its\n"
		"    OS family's packages) and the stacks' exports (public keys, addresses),\n"
		"    plus the values kiln makes itself before the first phase. Without a\n"
		"    state database every node renders without facts or exports; a missing\n"
		"    database is never created.\n\n"
		"    A render that needs an export nobody made yet (a peer that has not\n"
		"    run its keys phase) is not an error: the node's lines say what it\n"
		"    waits for ('waits for node2 mesh.public_key'), which the next apply\n"
		"    fills in.\n\n"
		"    The first error stops the check: a spec error as FILE:LINE:COL, a\n"
		"    render error (a template naming an unknown variable) naming the node\n"
		"    and the spec location; one line on stderr.\n\n"
		"    Text output: one line per node, NAME  N resources, '(no facts...)' when\n"
		"    none are recorded, its waits and notes ('note: node3: ... -> 580, open\n"
		"    modules': what a stack decided) indented below, then a summary line\n"
		"    starting 'ok:'.\n\n"
		"    JSON output (-o json):\n"
		"      {\"ok\": BOOL, \"nodes\": [{\"name\", \"resources\", \"needs\": [..],\n"
		"                           \"notes\": [..], \"facts\": BOOL}], \"error\": MESSAGE}\n"
		"    \"error\" only when ok is false; nodes then lists those rendered before\n"
		"    the error.\n\n"
		"OPTIONS\n"
		"    -f, --file FILE   the cluster spec (default cluster.yaml)\n"
		"    --state FILE      the state database to read facts and exports from\n"
		"                      (default: SPECDIR/.kiln/state.db)\n"
		"    -o json           the result as JSON\n"
		"    -vv               log the time each step took\n\n"
		"EXIT STATUS\n    0 every node renders; 1 a spec or render error (or bad arguments)\n\n"
		"EXAMPLES\n    kiln validate -f cluster.yaml\n"
		"    # .git/hooks/pre-commit\n"
		"    kiln validate -f cluster.yaml >/dev/null || exit 1\n"
		"    kiln validate -o json | jq '.nodes[] | select(.needs != [])'\n",
};
