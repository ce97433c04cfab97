/*
 * stacks — pure renderers: (model, facts) -> the resources one node needs.
 *
 * Contract:
 *  - Rendering does no I/O, reads no clock, uses no randomness: the same
 *    cluster, node and facts give byte-identical output (golden tests pin it).
 *  - Output is a JSON array of resources in the wire format of
 *    docs/resources.md, owned by the caller (json_decref).
 *  - facts may be NULL (not collected yet); renderers then skip what
 *    depends on them (e.g. per-OS-family package lists) and say so in no
 *    resource: the caller always has facts in practice.
 *  - Errors (a template naming an unknown variable, …) are one line in e,
 *    naming the node and the spec location.
 */
#ifndef KILN_STACKS_H
#define KILN_STACKS_H

#include <jansson.h>

#include "spec/spec.h"
#include "util/util.h"

/* Every enabled stack, in phase order, for node n. */
int stacks_render(const struct cluster *c, const struct node *n, const json_t *facts,
		  json_t **out, struct kerr *e);

/* The base stack (node preparation). Appends to out. */
int stack_base_render(const struct cluster *c, const struct node *n, const json_t *facts,
		      json_t *out, struct kerr *e);

/*
 * Expand "{{ name }}" placeholders in tmpl.  Names: node.name,
 * node.address, node.site, node.roles (comma-joined), node.labels.KEY,
 * cluster.name, and any variable visible to the node (node vars, then
 * group vars, then cluster vars; dotted names descend into objects).
 * An unknown name or an unterminated "{{" is an error.
 */
int template_render(const char *tmpl, const struct cluster *c, const struct node *n,
		    struct buf *out, struct kerr *e);

#endif
