/* kiln plan / kiln apply: check or converge every selected node. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"
#include "spec/spec.h"
#include "state/state.h"

struct apply_args {
	struct spec_args spec;
	const char *limit;
	int serial;
	bool check;
	struct strv rotate;
};

static int parse(int argc, char **argv, struct apply_args *a, const char *cmd)
{
	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a->spec);
		if (n < 0)
			return -1;
		if (n > 0)
			continue;
		const char *o = argv[i];
		if (!strcmp(o, "--limit") || !strcmp(o, "-l")) {
			if (i + 1 >= argc)
				return cli_error("option '%s' needs a pattern", o), -1;
			a->limit = argv[i + 1];
			i += 2;
		} else if (!strcmp(o, "--serial")) {
			uint64_t v;
			if (i + 1 >= argc || parse_u64(argv[i + 1], 1, 100000, &v) < 0)
				return cli_error("option '--serial' needs a number of nodes (1 or more)"), -1;
			a->serial = (int)v;
			i += 2;
		} else if (!strcmp(o, "--rotate")) {
			if (i + 1 >= argc)
				return cli_error("option '--rotate' needs a node name"), -1;
			strv_push(&a->rotate, argv[i + 1]);
			i += 2;
		} else if (!strcmp(o, "--check") || !strcmp(o, "-n")) {
			a->check = true;
			i++;
		} else {
			return cli_error("%s: unknown argument '%s' (see 'kiln %s --help')", cmd, o, cmd), -1;
		}
	}
	return 0;
}

/*
 * Print the diff text indented under its resource.  It comes from the
 * node: every line is shown escaped (str_tty), tabs kept.
 */
static void print_indented(const char *text, const char *indent)
{
	struct buf line;

	buf_init(&line, 0);
	while (*text) {
		size_t n = strcspn(text, "\n");
		buf_reset(&line);
		buf_add_tty(&line, text, n, TTY_LINES);
		printf("%s%s\n", indent, line.s);
		text += n + (text[n] == '\n');
	}
	buf_release(&line);
}

static void print_human(const struct plan_run *run, bool show_diffs)
{
	struct plan_summary s;

	if (run->nphases) {
		printf("phases:");
		for (size_t i = 0; i < run->nphases; i++)
			printf(" %s", run->phases[i]);
		printf("\n");
	}

	for (size_t i = 0; i < run->n; i++) {
		const struct node_run *nr = &run->nodes[i];
		char *name = str_tty(nr->node->name, 0);
		printf("%-16s %-11s", name, node_outcome_name(nr->outcome));
		free(name);
		if (nr->error) {
			char *err = str_tty(nr->error, 0);
			printf(" %s\n", err);
			free(err);
		} else
			printf(" %d of %d resources %s  (%.2f s)\n", nr->changed, nr->total,
			       run->mode == PLAN_APPLY ? "changed" : "would change",
			       (double)nr->duration_ms / 1000);
		size_t k;
		json_t *r;
		json_array_foreach(nr->results, k, r) {
			const char *st = json_string_value(json_object_get(r, "status"));
			if (!st || !strcmp(st, "ok"))
				continue;
			const char *id = json_string_value(json_object_get(r, "id"));
			const char *phase = json_string_value(json_object_get(r, "phase"));
			const char *msg = json_string_value(json_object_get(r, "message"));
			const char *diff = json_string_value(json_object_get(r, "diff"));
			/* Node-sent text: shown, never interpreted by the terminal. */
			char *tid = str_tty(id ? id : "?", 0), *tmsg = str_tty(msg, 0);
			printf("  %s %s%s%s%s%s\n", !strcmp(st, "changed") ? "~" : "!",
			       phase ? phase : "", phase ? " " : "", tid, *tmsg ? ": " : "", tmsg);
			free(tid);
			free(tmsg);
			if (show_diffs && diff && *diff)
				print_indented(diff, "      ");
		}
		for (size_t w = 0; w < nr->waits.n; w++) {
			char *t = str_tty(nr->waits.v[w], 0);
			printf("  ? %s\n", t);
			free(t);
		}
		for (size_t w = 0; w < nr->notes.n; w++) {
			char *t = str_tty(nr->notes.v[w], 0);
			printf("  = %s\n", t);
			free(t);
		}
	}
	plan_summarize(run, &s);
	printf("%d nodes, %d %s (%d ok", s.nodes, s.changed,
	       run->mode == PLAN_APPLY ? "changed" : "with changes pending", s.ok);
	if (s.failed)
		printf(", %d failed", s.failed);
	if (s.unreachable)
		printf(", %d unreachable", s.unreachable);
	if (s.skipped)
		printf(", %d skipped", s.skipped);
	printf(") in %.1f s\n", (double)run->duration_ms / 1000);
}

static int run_cmd(int argc, char **argv, bool apply)
{
	struct apply_args a = { .spec.spec = "cluster.yaml" };
	struct cluster *c = NULL;
	struct state *st = NULL;
	struct plan_run *run = NULL;
	struct kerr e = { 0 };
	char *agent = NULL;
	int rc = 1;

	if (parse(argc, argv, &a, argv[0]) < 0)
		return 1;
	if (!apply)
		a.check = true;
	if ((rc = cli_open(&a.spec, &c, &st, CLI_STATE_MAKE)))
		goto out;
	rc = 1;
	for (size_t i = 0; i < a.rotate.n; i++)
		if (!cluster_node(c, a.rotate.v[i])) {
			rc = cli_error("--rotate: no node '%s' in %s", a.rotate.v[i], c->path);
			goto out;
		}
	if (!(agent = cli_agent_path(&a.spec)))
		goto out;
	struct plan_opts o = {
		.mode = a.check ? PLAN_CHECK : PLAN_APPLY,
		.limit = a.limit,
		.serial = a.serial,
		.agent_path = agent,
		.state = st,
		.rotate = &a.rotate,
		.progress = cli_progress,
	};
	if (plan_execute(c, &o, &run, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	cli_progress_end();
	if (arg_output == OUTPUT_JSON) {
		json_t *j = plan_run_to_json(run);
		cli_print_json(j);
		json_decref(j);
	} else {
		print_human(run, a.check || arg_verbose);
	}
	struct plan_summary s;
	plan_summarize(run, &s);
	if (s.failed || s.unreachable || s.skipped)
		rc = 1;
	else if (a.check && s.changed)
		rc = 2;
	else
		rc = 0;
out:
	plan_run_free(run);
	state_close(st);
	cluster_free(c);
	free(agent);
	strv_release(&a.rotate);
	return rc;
}

static int run_plan(int argc, char **argv)
{
	return run_cmd(argc, argv, false);
}

static int run_apply(int argc, char **argv)
{
	return run_cmd(argc, argv, true);
}

#define COMMON_OPTIONS \
	"    -f, --file FILE\n        The cluster spec (default: cluster.yaml).\n\n" \
	"    -l, --limit PATTERN\n        Only these nodes: a comma-separated list of node names,\n" \
	"        group names and globs over node names (node[1-3], gpu-*).\n\n" \
	"    --serial N\n        Rolling: N nodes at a time; stop after a batch in which a node\n" \
	"        failed. The nodes not reached are reported as skipped. A node a\n" \
	"        'reboot' resource asks to reboot (a new kernel or driver) is\n" \
	"        rebooted after that phase and waited for (up to 600 s) before the\n" \
	"        next phase, so at most N nodes are down at once.\n\n" \
	"    --state FILE\n        The state database (default: SPECDIR/.kiln/state.db).\n\n" \
	"    --agent FILE\n        The kiln-agent executable to copy to nodes (default: $KILN_AGENT,\n" \
	"        else the kiln-agent beside the kiln executable).\n\n" \
	"    -o json\n        Print the run as JSON: per node status, counts, results with diffs.\n\n" \
	"    -v\n        More detail (diffs on apply, debug logs with -vv).\n\n"

const struct command cmd_plan = {
	.name = "plan",
	.run = run_plan,
	.summary = "show what apply would change on each node, with diffs",
	.help = "NAME\n    kiln plan - show what apply would change, per node, with diffs\n\n"
		"SYNOPSIS\n    kiln plan [-f FILE] [--limit PATTERN] [-o json]\n\n"
		"DESCRIPTION\n"
		"    Connects to every selected node (through the bastion when the spec names\n"
		"    one), starts kiln-agent there, collects facts, then for every phase of\n"
		"    every enabled stack renders the nodes' resources and runs their checks.\n"
		"    Nothing on the node is changed: the checks are the very code apply runs\n"
		"    before acting, so a plan never lies. Where a later phase needs a value an\n"
		"    earlier one has not made yet (a new node's public key), the plan says\n"
		"    what it waits for ('? mesh.link: waits for node4 mesh.public_key')\n"
		"    instead of guessing. What a stack decided for a node, and why, is a\n"
		"    note ('= nvidia.driver: node3: 10de:1eb8 Tesla T4 (Turing) -> 580,\n"
		"    open modules'; '= ceph.osd: /dev/sdc (8.0 GiB) passed over: mounted at\n"
		"    /srv/data'); -o json has them under \"notes\".\n\n"
		"OPTIONS\n" COMMON_OPTIONS
		"EXIT STATUS\n    0  nothing would change\n    2  changes are pending\n"
		"    1  an error: bad spec, or a node unreachable or failing\n\n"
		"EXAMPLES\n    kiln plan -f lab/cluster.yaml\n    kiln plan --limit gpu -o json\n",
};

const struct command cmd_apply = {
	.name = "apply",
	.run = run_apply,
	.summary = "converge every node to the spec",
	.help = "NAME\n    kiln apply - converge every selected node to the spec\n\n"
		"SYNOPSIS\n    kiln apply [-f FILE] [--limit PATTERN] [--serial N] [--check] [-o json]\n\n"
		"DESCRIPTION\n"
		"    Over one SSH session per node: start kiln-agent (copied once per version,\n"
		"    checksum-verified) and collect facts on every selected node; then run the\n"
		"    enabled stacks' phases in order (base.prepare, mesh.keys, mesh.link,\n"
		"    mesh.check, ...): render every node's resources for the phase, send them\n"
		"    in one message per node, and wait for every node before the next phase.\n"
		"    The agent checks each resource and changes only what differs, writing\n"
		"    files atomically. Values a phase makes (a public key) are recorded\n"
		"    ('kiln exports') for later phases and runs. Nodes run in parallel\n"
		"    (ssh.concurrency). One node failing never stops the others: it takes no\n"
		"    part in later phases, and the report names it, the phase and why.\n"
		"    A second apply on a converged cluster changes nothing and says so.\n"
		"    Progress is live on a terminal, one line per node otherwise (stderr).\n"
		"    Every run is recorded in the state database: see 'kiln runs'.\n\n"
		"OPTIONS\n"
		"    --check, -n\n        Check only, like 'kiln plan'.\n\n"
		"    --rotate NODE\n        Make NODE's keys anew in this run (the mesh stack's WireGuard\n"
		"        key: 'kiln mesh rotate'); its peers take the new public key in the\n"
		"        same run. May be given more than once.\n\n" COMMON_OPTIONS
		"EXIT STATUS\n    0  every selected node converged\n"
		"    1  an error: bad spec, or some node unreachable, failing or skipped\n"
		"    2  with --check: changes are pending\n\n"
		"EXAMPLES\n    kiln apply -f lab/cluster.yaml\n"
		"    kiln apply --limit 'node1,gpu' --serial 1\n",
};
