/* The stack registry and the per-node render over every phase (stacks.h). */
#include "stacks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct stack_type stack_base;
extern const struct stack_type stack_mesh;
extern const struct stack_type stack_nvidia;
extern const struct stack_type stack_slurm;
extern const struct stack_type stack_ceph;

/* Phase order: a stack may use the exports of any stack above it. */
const struct stack_type *const stack_types[] = {
	&stack_base,
	&stack_mesh,
	&stack_nvidia,
	&stack_slurm,
	&stack_ceph,
};
const size_t stack_types_n = ARRAY_SIZE(stack_types);

_Static_assert(ARRAY_SIZE(stack_types) <= SPEC_STACKS_MAX, "raise SPEC_STACKS_MAX");

const struct stack_type *stack_type_find(const char *name)
{
	for (size_t i = 0; i < stack_types_n; i++)
		if (!strcmp(stack_types[i]->name, name))
			return stack_types[i];
	return NULL;
}

const void *stack_conf(const struct cluster *c, const struct stack_type *t)
{
	for (size_t i = 0; i < stack_types_n; i++)
		if (stack_types[i] == t)
			return c->stacks[i];
	return NULL;
}

bool stack_export_secret(const struct stack_type *t, const char *name)
{
	for (const char *const *s = t->secret_exports; s && *s; s++)
		if (!strcmp(*s, name))
			return true;
	return false;
}

size_t stacks_phases(const struct cluster *c, struct phase_ref *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < stack_types_n; i++) {
		const struct stack_type *t = stack_types[i];
		if (!c->stacks[i])
			continue;
		for (size_t j = 0; j < t->nphases && n < max; j++)
			out[n++] = (struct phase_ref){ t, &t->phases[j], c->stacks[i] };
	}
	return n;
}

const char *phase_ref_name(const struct phase_ref *p, char *buf, size_t n)
{
	snprintf(buf, n, "%s.%s", p->stack->name, p->phase->name);
	return buf;
}

void render_out_init(struct render_out *o)
{
	memset(o, 0, sizeof(*o));
	o->resources = json_array();
	exports_init(&o->noted);
}

void render_out_release(struct render_out *o)
{
	json_decref(o->resources);
	o->resources = NULL;
	strv_release(&o->needs);
	strv_release(&o->notes);
	exports_release(&o->noted);
}

bool render_has_facts(const struct render_ctx *rc, const struct node *n)
{
	return rc->facts && rc->facts[n - rc->c->nodes];
}

static bool declared(const char *const *keys, const char *key)
{
	for (; keys && *keys; keys++)
		if (!strcmp(*keys, key))
			return true;
	return false;
}

const json_t *render_fact(const struct render_ctx *rc, const struct node *n, const char *key)
{
	if (!rc->stack || !declared(rc->stack->facts, key)) {
		/* a stack bug: recorded facts would lack the key (stacks.h) */
		fprintf(stderr, "kiln: stack %s reads facts key '%s' it does not declare\n",
			rc->stack ? rc->stack->name : "(none)", key);
		abort();
	}
	if (!render_has_facts(rc, n))
		return NULL;
	return json_object_get(rc->facts[n - rc->c->nodes], key);
}

void stacks_facts_keys(const struct cluster *c, struct strv *out)
{
	for (size_t i = 0; i < stack_types_n; i++)
		for (const char *const *k = stack_types[i]->facts; c->stacks[i] && k && *k; k++)
			strv_push_unique(out, *k);
}

const char *render_export(const struct render_ctx *rc, struct render_out *out,
			  const char *node, const char *stack, const char *name)
{
	const char *v = rc->exports ? exports_get(rc->exports, node, stack, name) : NULL;

	if (!v && exports_set(&out->noted, node, stack, name, NULL, false))
		strv_pushf(&out->needs, "%s %s.%s", node, stack, name);
	return v;
}

const char *render_recorded(const struct render_ctx *rc, const char *node, const char *stack,
			    const char *name)
{
	const struct export_entry *x = rc->replaced ? exports_find(rc->replaced, node, stack, name)
						    : NULL;

	if (x)
		return x->value;
	return rc->exports ? exports_get(rc->exports, node, stack, name) : NULL;
}

int stacks_render_node(const struct render_ctx *rc, const struct node *n,
		       struct render_out *out, struct kerr *e)
{
	struct phase_ref ph[STACKS_MAX_PHASES];
	size_t np = stacks_phases(rc->c, ph, ARRAY_SIZE(ph));

	for (size_t i = 0; i < np; i++) {
		size_t from = json_array_size(out->resources);
		struct render_ctx sc = *rc;
		char name[128];
		sc.stack = ph[i].stack;
		int r = ph[i].phase->render(&sc, ph[i].conf, n, out, e);
		if (r < 0)
			return r;
		if (out->unstamped)
			continue;
		phase_ref_name(&ph[i], name, sizeof(name));
		json_t *stamp = json_string(name);
		for (size_t k = from; k < json_array_size(out->resources); k++) {
			/* rendered resources may be shared: stamp a copy */
			json_t *cp = json_copy(json_array_get(out->resources, k));
			json_object_set(cp, "phase", stamp);
			json_array_set_new(out->resources, k, cp);
		}
		json_decref(stamp);
	}
	return 0;
}

int stacks_prepare(const struct render_ctx *rc, struct exports *made, struct kerr *e)
{
	for (size_t i = 0; i < stack_types_n; i++) {
		const struct stack_type *t = stack_types[i];
		struct render_ctx sc = *rc;
		int r;
		if (!rc->c->stacks[i] || !t->prepare)
			continue;
		sc.stack = t;
		if ((r = t->prepare(&sc, rc->c->stacks[i], made, e)) < 0) {
			kerr_prefix(e, "stack %s", t->name);
			return r;
		}
	}
	return 0;
}

void stacks_prepare_replaced(const struct exports *known, const struct exports *made,
			     struct exports *replaced)
{
	for (size_t i = 0; i < made->n; i++) {
		const struct export_entry *m = &made->v[i];
		const struct export_entry *k = exports_find(known, m->node, m->stack, m->name);
		if (m->secret || (k && k->value && m->value && !strcmp(k->value, m->value)))
			continue;
		exports_set(replaced, m->node, m->stack, m->name, k ? k->value : NULL, false);
	}
}
