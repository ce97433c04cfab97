/* kiln facts: the hardware of this machine, or of every node in a spec. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "facts/facts.h"
#include "plan/plan.h"
#include "spec/spec.h"
#include "state/state.h"

/* No spec: describe the machine kiln runs on. */
static int local_facts(const char *root)
{
	struct kerr e = { 0 };
	json_t *f = NULL;
	struct buf b;

	if (facts_collect(root, &f, &e) < 0)
		return cli_error("%s", e.msg);
	facts_resolve_names(f, NULL);
	if (arg_output == OUTPUT_JSON) {
		cli_print_json(f);
	} else {
		buf_init(&b, 0);
		facts_format(f, &b);
		/* Firmware and device strings are not ours either. */
		cli_puts_tty(b.s, stdout);
		buf_release(&b);
	}
	json_decref(f);
	return 0;
}

static int run(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	const char *limit = NULL, *root = "/";
	struct cluster *c = NULL;
	struct state *st = NULL;
	struct plan_run *run = NULL;
	struct kerr e = { 0 };
	char *agent = NULL;
	int rc = 1;

	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a);
		if (n < 0)
			return 1;
		if (n > 0)
			continue;
		if ((!strcmp(argv[i], "--limit") || !strcmp(argv[i], "-l") ||
		     !strcmp(argv[i], "--root")) && i + 1 >= argc) {
			return cli_error("facts: option '%s' needs a value", argv[i]);
		} else if (!strcmp(argv[i], "--limit") || !strcmp(argv[i], "-l")) {
			limit = argv[i + 1];
			i += 2;
		} else if (!strcmp(argv[i], "--root")) {
			root = argv[i + 1];
			i += 2;
		} else {
			return cli_error("facts: unknown argument '%s' (see 'kiln facts --help')", argv[i]);
		}
	}
	if (!a.spec_given)
		return local_facts(root);
	if ((rc = cli_open(&a, &c, &st, CLI_STATE_MAKE)))
		goto out;
	rc = 1;
	if (!(agent = cli_agent_path(&a)))
		goto out;
	struct plan_opts o = { .mode = PLAN_FACTS, .limit = limit, .agent_path = agent,
			       .state = st, .progress = cli_progress };
	if (plan_execute(c, &o, &run, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	cli_progress_end();
	rc = 0;
	if (arg_output == OUTPUT_JSON) {
		json_t *j = plan_run_to_json(run);
		cli_print_json(j);
		json_decref(j);
	} else {
		const char **names = xcalloc(run->n + 1, sizeof(*names));
		json_t **facts = xcalloc(run->n + 1, sizeof(*facts));
		size_t k = 0;
		for (size_t i = 0; i < run->n; i++) {
			if (run->nodes[i].facts) {
				names[k] = run->nodes[i].node->name;
				facts[k++] = run->nodes[i].facts;
			}
		}
		struct buf b;
		buf_init(&b, 0);
		facts_format_table(names, facts, k, &b);
		/* Every string in the table came from a node: shown escaped. */
		cli_puts_tty(b.s, stdout);
		buf_release(&b);
		free(names);
		free(facts);
	}
	for (size_t i = 0; i < run->n; i++) {
		if (run->nodes[i].error) {
			char *name = str_tty(run->nodes[i].node->name, 0),
			     *err = str_tty(run->nodes[i].error, 0);
			cli_error("node '%s': %s", name, err);
			free(name);
			free(err);
			rc = 1;
		}
	}
out:
	plan_run_free(run);
	state_close(st);
	cluster_free(c);
	free(agent);
	return rc;
}

const struct command cmd_facts = {
	.name = "facts",
	.run = run,
	.summary = "show the hardware of this machine or of every node",
	.help = "NAME\n    kiln facts - hardware and OS facts of this machine or of every node\n\n"
		"SYNOPSIS\n    kiln facts [--root DIR] [-o json]\n"
		"    kiln facts -f FILE [--limit PATTERN] [-o json]\n\n"
		"DESCRIPTION\n"
		"    Without -f, describes the machine kiln runs on: hostname, OS, kernel, CPU,\n"
		"    memory, NUMA, PCI devices with names, GPUs (with model, memory and driver\n"
		"    from NVML when the NVIDIA driver is loaded), disks (and whether each is in\n"
		"    use: the free ones are Ceph OSD candidates), NICs and DMI.\n"
		"    With -f, collects the same from every node through kiln-agent, prints one\n"
		"    table, and stores the facts in the state database.\n\n"
		"OPTIONS\n"
		"    -f, --file FILE   the cluster spec\n"
		"    -l, --limit PATTERN\n                      only these nodes (names, groups, globs)\n"
		"    --root DIR        read /proc, /sys and /etc under DIR (captured trees)\n"
		"    --state FILE, --agent FILE\n                      as for 'kiln apply'\n"
		"    -o json           the full facts as JSON\n\n"
		"EXIT STATUS\n    0 facts from every node; 1 an error or an unreachable node\n\n"
		"EXAMPLES\n    kiln facts\n    kiln facts -f lab/cluster.yaml -o json\n",
};
