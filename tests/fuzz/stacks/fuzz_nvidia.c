/*
 * libFuzzer harness: a node's facts (node-sent JSON) through the nvidia
 * stack's choice and its driver render (docs/nvidia.md).  Invariants beyond
 * "no crash, no leak": an error is one non-empty line naming the node; a
 * choice has a branch of the spec's and a note naming the node, with no
 * control character in it (model names come from the node).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stacks/nvidia.h"
#include "stacks/stacks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char spec[] =
	"cluster: f\n"
	"ssh: {known_hosts: known_hosts}\n"
	"nodes:\n"
	"  - {name: n1, address: 10.0.0.1}\n"
	"stacks:\n"
	"  nvidia:\n"
	"    branch: 580\n"
	"    branches: [590, 580, 470]\n";

static bool one_line(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cluster *c;
	struct kerr e = { 0 };
	struct nv_choice ch;

	if (!c && spec_load_string("/fuzz/cluster.yaml", spec, sizeof(spec) - 1, &c, &e) < 0)
		abort();
	json_t *facts = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!facts)
		return 0;
	const struct node *n = &c->nodes[0];
	int r = nvidia_choose(stack_conf(c, &stack_nvidia), json_object_get(facts, "gpus"), n,
			      &ch, &e);
	if (r < 0) {
		if (strncmp(e.msg, "n1: ", 4) || !one_line(e.msg))
			abort();
	} else if (ch.ncards) {
		if ((ch.branch != 590 && ch.branch != 580 && ch.branch != 470) ||
		    strncmp(ch.note, "n1: ", 4) || !one_line(ch.note))
			abort();
	}
	/* every phase, as apply renders them */
	const json_t *all[] = { facts };
	struct render_ctx rc = { .c = c, .facts = all };
	struct render_out ro;
	render_out_init(&ro);
	e.msg[0] = '\0';
	if (stacks_render_node(&rc, n, &ro, &e) < 0 && (!e.msg[0] || !one_line(e.msg)))
		abort();
	render_out_release(&ro);
	json_decref(facts);
	return 0;
}
