/*
 * stacks — what kiln deploys, as a registry of stack types.
 *
 * A stack (base, mesh, ...) is one file under src/stacks/ defining one
 * struct stack_type, and one line in stack_types[] (registry.c).  The type
 * parses its own "stacks.NAME" key of the spec (with the spec's
 * FILE:LINE:COL errors, through spec/parse.h), and renders its resources
 * in one or more phases.  docs/stacks.md is the design; this is the
 * contract.
 *
 * Phases.  `kiln apply` gathers facts from every selected node, then runs
 * the enabled stacks' phases in registry order, each phase in its declared
 * order: render every node -> check/apply on every node in parallel ->
 * barrier -> the next phase.  A phase's resources may return named values
 * (exports: a public key) that later phases (and later runs) render with.
 *
 * Render contract:
 *  - A render is a pure function of the model, the facts of every node and
 *    the exports known when its phase starts: no I/O, no clock, no
 *    randomness.  The same inputs give byte-identical output (golden tests
 *    pin it).
 *  - Resources are appended to out->resources in the wire format of
 *    docs/resources.md.  A node the phase has nothing for gets none.
 *  - Rendered resources are immutable: a stack may append one object to
 *    every node's output (json_incref: base's /etc/hosts, made once), and
 *    nobody changes a resource after its render; who needs a changed one
 *    copies it (json_copy).
 *  - A render that needs an export nobody made yet (a peer that has not run
 *    its keys phase) does not guess: it leaves that part out and says what
 *    it waits for in out->needs ("node2 mesh.public_key"), which plan and
 *    apply show.
 *  - A render may say what it decided and why in out->notes (one line
 *    each, naming the node); plan and validate show them, they change
 *    nothing.
 *  - facts[i] may be NULL (never collected): the render then leaves out
 *    what depends on them.  A render reads facts only through
 *    render_fact(), and only the top-level keys its stack declares in
 *    stack_type.facts: for nodes a run does not reach, kiln loads just
 *    those keys of the recorded facts (at 10,000 nodes, parsing whole
 *    records was most of an offline plan).  Reading an undeclared key
 *    aborts, so a test that renders it finds the omission.
 *  - Errors (a template naming an unknown variable) are one line in e,
 *    naming the node and the spec location.
 */
#ifndef KILN_STACKS_H
#define KILN_STACKS_H

#include <jansson.h>

#include "spec/spec.h"
#include "util/util.h"

struct spec_parser;
struct ynode;

/* ---- exports: named values per (node, stack, name) --------------------- */

struct export_entry {
	char *node, *stack, *name;
	char *value;          /* NULL for a secret read back from the state (never stored) */
	bool secret;
};

/* A hash table; entries stay in insertion order in v. */
struct exports {
	struct export_entry *v;
	size_t n, alloc;
	size_t *slots;        /* index + 1 into v; 0 = empty */
	size_t nslots;
};

void exports_init(struct exports *x);
void exports_release(struct exports *x);
/* The value, or NULL (absent, or a secret whose value this run has not seen). */
const char *exports_get(const struct exports *x, const char *node, const char *stack,
			const char *name);
const struct export_entry *exports_find(const struct exports *x, const char *node,
					const char *stack, const char *name);
/* Set (copying); returns true when the value changed or is new. */
bool exports_set(struct exports *x, const char *node, const char *stack, const char *name,
		 const char *value, bool secret);
/* Forget every export of a node (it left the spec). */
void exports_drop_node(struct exports *x, const char *node);

/* ---- rendering ---------------------------------------------------------- */

struct render_ctx {
	const struct cluster *c;
	const json_t *const *facts;    /* facts[i] of c->nodes[i]; an entry may be NULL */
	const struct exports *exports; /* earlier phases of this run, then earlier runs */
	const struct strv *rotate;     /* nodes whose keys this run makes anew; may be NULL */
	const struct stack_type *stack; /* the stack rendering now (the engine sets it) */
	/* The recorded values this run's prepare replaced (a NULL value: there
	 * was none); may be NULL.  render_recorded() reads through it. */
	const struct exports *replaced;
};

struct render_out {
	json_t *resources;   /* array; renders append */
	struct strv needs;   /* "NODE STACK.NAME" exports this render waited for */
	struct exports noted; /* the same, as a set (render_export notes each once) */
	struct strv notes;   /* one-line facts for the operator ("node3: 10de:1eb8 Tesla T4
			      * (Turing) → 580, open modules"): plan and validate show them */
	bool unstamped;      /* stacks_render_node: leave out the "phase" member */
};

void render_out_init(struct render_out *o);
void render_out_release(struct render_out *o);

/* Whether rc holds facts for node n (this run's or recorded). */
bool render_has_facts(const struct render_ctx *rc, const struct node *n);
/*
 * One top-level key of node n's facts ("os", "gpus"), or NULL (no facts, or
 * no such key).  key must be in rc->stack->facts: anything else is a bug in
 * the stack, and aborts.
 */
const json_t *render_fact(const struct render_ctx *rc, const struct node *n, const char *key);
/* An export for a render: the value, or NULL after noting what is missing in
 * out->needs. */
const char *render_export(const struct render_ctx *rc, struct render_out *out,
			  const char *node, const char *stack, const char *name);

/*
 * An export as the state held it before this run: what prepare replaced,
 * else the value known.  For a stack comparing what it made last time (a
 * node's Slurm definition) with what it makes now.  NULL when none.
 */
const char *render_recorded(const struct render_ctx *rc, const char *node, const char *stack,
			    const char *name);

typedef int stack_render_fn(const struct render_ctx *rc, const void *conf,
			    const struct node *n, struct render_out *out, struct kerr *e);

/*
 * Values kiln itself makes for a stack before its phases (a node's overlay
 * address): a pure function of the model, the facts and the exports known,
 * setting entries in made (node, this stack's name, name).  Apply stores
 * them; renders see them in rc->exports and what they replaced in
 * rc->replaced.
 */
typedef int stack_prepare_fn(const struct render_ctx *rc, const void *conf,
			     struct exports *made, struct kerr *e);

struct stack_phase {
	const char *name;            /* "keys", "link", ... */
	stack_render_fn *render;
};

struct stack_type {
	const char *name;            /* the key under "stacks:" */
	const char *summary;         /* one line, for docs and help */
	/* Parse stacks.NAME (m may be a null node: "base:" alone) into *conf. */
	int (*parse)(struct spec_parser *x, const struct ynode *m, void **conf);
	void (*free)(void *conf);
	stack_prepare_fn *prepare;   /* may be NULL */
	const struct stack_phase *phases;
	size_t nphases;
	/* Export names whose values are secrets: never stored, logged or shown. */
	const char *const *secret_exports;
	/* The top-level facts keys its renders and prepare read (render_fact). */
	const char *const *facts;
};

/* Every stack kiln knows, in the order their phases run. */
extern const struct stack_type *const stack_types[];
extern const size_t stack_types_n;

const struct stack_type *stack_type_find(const char *name);
/* The parsed conf of stack t in c, or NULL when the spec does not enable it. */
const void *stack_conf(const struct cluster *c, const struct stack_type *t);
bool stack_export_secret(const struct stack_type *t, const char *name);
/* The facts keys the enabled stacks read, each once, into out. */
void stacks_facts_keys(const struct cluster *c, struct strv *out);

/* One phase of one enabled stack, as the driver runs it. */
struct phase_ref {
	const struct stack_type *stack;
	const struct stack_phase *phase;
	const void *conf;
};
/* The enabled stacks' phases in run order; returns the count (<= max). */
size_t stacks_phases(const struct cluster *c, struct phase_ref *out, size_t max);
#define STACKS_MAX_PHASES 64

/* "mesh.link" into buf. */
const char *phase_ref_name(const struct phase_ref *p, char *buf, size_t n);

/*
 * Every phase of every enabled stack for node n, in order, into out (what
 * `kiln validate` and the golden tests render).  Each resource gets a
 * "phase" member ("mesh.link") on a copy, unless out->unstamped.
 */
int stacks_render_node(const struct render_ctx *rc, const struct node *n,
		       struct render_out *out, struct kerr *e);

/*
 * Run every enabled stack's prepare over rc into made (exports kiln makes
 * itself).  rc->exports is what was known before.
 */
int stacks_prepare(const struct render_ctx *rc, struct exports *made, struct kerr *e);
/*
 * Before known takes made's values: note in replaced each value of made
 * that differs from known's (known's old value, NULL when it had none).
 */
void stacks_prepare_replaced(const struct exports *known, const struct exports *made,
			     struct exports *replaced);

/* The mesh stack's topology as Graphviz dot (kiln mesh graph); -ENOENT when
 * the spec has no stacks.mesh. */
int mesh_graph_dot(const struct cluster *c, const struct exports *ex, struct buf *out);
/* The mesh's interface name, or NULL without stacks.mesh. */
const char *mesh_interface(const struct cluster *c);

/*
 * "{{ name }}" templates.  Names: node.name, node.address, node.site,
 * node.roles (comma-joined), node.labels.KEY, node.mesh_address (the
 * overlay address, with stacks.mesh), cluster.name, and any variable
 * visible to the node (node vars, then group vars, then cluster vars;
 * dotted names descend into objects).
 *
 * template_compile cuts the text into parts once (at spec parse): an
 * unterminated "{{" or an empty name is an error there.  template_render
 * expands it for one node (pure; any thread); a name the node has no value
 * for, or one that is not a scalar, is an error naming the template line.
 */
struct template;
int template_compile(const char *text, struct template **out, struct kerr *e);
int template_render(const struct template *t, const struct render_ctx *rc, const struct node *n,
		    struct buf *out, struct kerr *e);
void template_free(struct template *t);

#endif
