/*
 * kiln exports: the values stacks recorded per (node, stack, name) in the
 * state database (a node's public key, its overlay address), offline.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spec/spec.h"
#include "state/state.h"

static void when(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * The state's rows as the command shows them: {node, stack, name, value
 * (absent for a secret), secret, updated, updated_ms}.
 */
static json_t *rows_json(const json_t *list)
{
	json_t *out = json_array(), *x;
	size_t i;

	json_array_foreach(list, i, x) {
		int64_t ms = json_integer_value(json_object_get(x, "updated_ms"));
		bool secret = json_is_true(json_object_get(x, "secret"));
		const json_t *v = json_object_get(x, "value");
		char at[32];

		when(ms, at, sizeof(at));
		json_t *o = json_pack("{s:O,s:O,s:O,s:b,s:s,s:I}",
				      "node", json_object_get(x, "node"),
				      "stack", json_object_get(x, "stack"),
				      "name", json_object_get(x, "name"),
				      "secret", secret, "updated", at,
				      "updated_ms", (json_int_t)ms);
		/* a secret's value is never stored; never show one that was */
		if (o && v && !secret)
			json_object_set(o, "value", (json_t *)v);
		if (o)
			json_array_append_new(out, o);
	}
	return out;
}

/* One line per export; every field escaped (values came from nodes). */
static void put_text(const json_t *rows)
{
	size_t i;
	json_t *x;

	if (!json_array_size(rows))
		return;
	printf("%-16s %-8s %-16s %-20s %s\n", "NODE", "STACK", "NAME", "UPDATED", "VALUE");
	json_array_foreach(rows, i, x) {
		char *node = str_tty(json_string_value(json_object_get(x, "node")), 0),
		     *stack = str_tty(json_string_value(json_object_get(x, "stack")), 0),
		     *name = str_tty(json_string_value(json_object_get(x, "name")), 0),
		     *value = json_is_true(json_object_get(x, "secret"))
				      ? xstrdup("(secret)")
				      : str_tty(json_string_value(json_object_get(x, "value")), 0);
		printf("%-16s %-8s %-16s %-20s %s\n", node, stack, name,
		       json_string_value(json_object_get(x, "updated")), value);
		free(node);
		free(stack);
		free(name);
		free(value);
	}
}

static int run(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	struct cluster *c = NULL;
	struct state *st = NULL;
	struct kerr e = { 0 };
	json_t *list = NULL, *rows = NULL;
	int rc = 1;

	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a);
		if (n < 0)
			return 1;
		if (n == 0)
			return cli_error("exports: unknown argument '%s' (see 'kiln exports --help')",
					 argv[i]);
	}
	/* the spec names the cluster whose rows to read */
	if ((rc = cli_open(&a, &c, &st, CLI_STATE_READ)))
		goto out;
	if (!st) {
		/* no run yet: nothing recorded, and no database made for a read */
		list = json_array();
	} else if (state_exports_list(st, c->name, &list, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	rows = rows_json(list);
	if (arg_output == OUTPUT_JSON)
		cli_print_json(rows);
	else
		put_text(rows);
	rc = 0;
out:
	json_decref(rows);
	json_decref(list);
	state_close(st);
	cluster_free(c);
	return rc;
}

const struct command cmd_exports = {
	.name = "exports",
	.run = run,
	.summary = "list the values stacks recorded per node (keys, addresses)",
	.help = "NAME\n    kiln exports - the values stacks recorded per node in the state database\n\n"
		"SYNOPSIS\n    kiln exports [-f FILE] [--state FILE] [-o json]\n\n"
		"DESCRIPTION\n"
		"    A stack's resources may return named values (exports) that later phases\n"
		"    and later runs render with: a node's public key, the overlay address kiln\n"
		"    gave it. 'kiln apply' records them per node, stack and name in the state\n"
		"    database. This lists the cluster's records, sorted by node, stack and\n"
		"    name. Nothing is contacted.\n\n"
		"    Text output: one line per export, NODE STACK NAME UPDATED VALUE (UTC).\n"
		"    Values came from the nodes: control characters and escape sequences are\n"
		"    shown escaped, never interpreted by the terminal. A secret (a private\n"
		"    key) is recorded as existing, its value never written: it shows as\n"
		"    '(secret)'. With no export recorded nothing is printed.\n\n"
		"    JSON output (-o json): an array of\n"
		"      {\"node\", \"stack\", \"name\", \"value\", \"secret\", \"updated\", \"updated_ms\"}\n"
		"    where a secret has no \"value\", \"updated\" is ISO 8601 UTC and\n"
		"    \"updated_ms\" milliseconds since the epoch; non-ASCII is \\uXXXX.\n\n"
		"    A missing state database means no run has recorded anything: the list\n"
		"    is empty, and no database is created.\n\n"
		"OPTIONS\n"
		"    -f, --file FILE   the spec; it names the cluster (default cluster.yaml)\n"
		"    --state FILE      the state database (default: SPECDIR/.kiln/state.db)\n"
		"    -o json           the list as JSON\n\n"
		"EXIT STATUS\n    0 the list was printed (even empty); 1 a bad spec or an unreadable\n"
		"    state database\n\n"
		"EXAMPLES\n    kiln exports -f lab/cluster.yaml\n"
		"    kiln exports -o json | jq -r '.[] | select(.name == \"public_key\") | .value'\n",
};
