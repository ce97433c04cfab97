/*
 * libFuzzer harness: an Ansible inventory (INI or YAML, detected from the
 * content) imported from memory into an empty cluster.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char base[] = "cluster: fuzz\nssh: {known_hosts: /nonexistent/kh}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };

	if (spec_load_string("/nonexistent/cluster.yaml", base, sizeof(base) - 1, &c, &e) < 0)
		abort();
	int r = inventory_load_string(c, "fuzz.ini", (const char *)data, size, &e);
	if (r < 0) {
		if (!e.msg[0] || strchr(e.msg, '\n'))
			abort();
	} else {
		for (size_t i = 0; i < c->nnodes; i++) {
			const struct node *n = &c->nodes[i];
			if (!n->name || !n->address || !json_is_object(n->vars))
				abort();
			(void)cluster_var(c, n, "ansible_user");
			for (size_t g = 0; g < c->ngroups; g++)
				(void)cluster_node_in_group(c, n, c->groups[g].name);
		}
	}
	cluster_free(c);
	return 0;
}
