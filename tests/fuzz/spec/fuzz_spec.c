/*
 * libFuzzer harness: cluster.yaml from memory (spec_load_string).
 * Invariants checked beyond "no crash, no leak": an error leaves no
 * cluster and one non-empty line; a success has a name and objects.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };

	int r = spec_load_string("fuzz.yaml", (const char *)data, size, &c, &e);
	if (r < 0) {
		if (c || !e.msg[0] || strchr(e.msg, '\n'))
			abort();
		return 0;
	}
	if (!c || !c->name || !json_is_object(c->vars) || !c->ssh.known_hosts)
		abort();
	for (size_t i = 0; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[i];
		if (!n->name || !n->address || !json_is_object(n->vars) ||
		    !json_is_object(n->labels) || node_port(c, n) <= 0)
			abort();
		(void)cluster_var(c, n, "x");
		(void)cluster_node_in_group(c, n, "g");
	}
	bool *sel = calloc(c->nnodes + 1, sizeof(*sel));
	(void)cluster_select(c, "all,!g,n*", sel, NULL);
	free(sel);
	cluster_free(c);
	return 0;
}
