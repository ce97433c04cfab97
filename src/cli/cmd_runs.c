/* kiln runs: the history of plan/apply/facts runs from the state database. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state/state.h"

static void when(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void print_run_line(const json_t *r)
{
	char at[32];
	int64_t start = json_integer_value(json_object_get(r, "started_ms"));
	const json_t *fin = json_object_get(r, "finished_ms");

	when(start, at, sizeof(at));
	printf("%-6lld %-20s %-6s %-12s %5lld nodes  %3lld changed  %3lld failed",
	       (long long)json_integer_value(json_object_get(r, "id")), at,
	       json_string_value(json_object_get(r, "kind")),
	       json_string_value(json_object_get(r, "status")),
	       (long long)json_integer_value(json_object_get(r, "nodes")),
	       (long long)json_integer_value(json_object_get(r, "changed")),
	       (long long)json_integer_value(json_object_get(r, "failed")));
	if (fin)
		printf("  %.1f s", (double)(json_integer_value(fin) - start) / 1000);
	putchar('\n');
}

static int run(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	struct state *st = NULL;
	struct kerr e = { 0 };
	const char *show = NULL;
	uint64_t limit = 20;
	json_t *j = NULL;
	int rc = 1;

	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a);
		if (n < 0)
			return 1;
		if (n > 0)
			continue;
		if (!strcmp(argv[i], "show") && i + 1 < argc && !show) {
			show = argv[i + 1];
			i += 2;
		} else if (!strcmp(argv[i], "--last") && i + 1 < argc) {
			if (parse_u64(argv[i + 1], 1, 100000, &limit) < 0)
				return cli_error("runs: --last needs a number, not '%s'", argv[i + 1]);
			i += 2;
		} else {
			return cli_error("runs: unknown argument '%s' (see 'kiln runs --help')", argv[i]);
		}
	}
	char *path = cli_state_path(&a);
	if (!path_exists(path)) {
		rc = cli_error("runs: no state database at '%s' (no run yet?)", path);
		free(path);
		return rc;
	}
	int r = state_open(path, &st, &e);
	free(path);
	if (r < 0)
		return cli_error("%s", e.msg);
	if (show) {
		uint64_t id;
		if (parse_u64(show, 1, INT64_MAX, &id) < 0) {
			rc = cli_error("runs show: '%s' is not a run id", show);
			goto out;
		}
		if (state_run_show(st, (int64_t)id, &j, &e) < 0) {
			rc = cli_error("%s", e.msg);
			goto out;
		}
	} else if (state_runs_list(st, (int)limit, &j, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	rc = 0;
	if (arg_output == OUTPUT_JSON) {
		cli_print_json(j);
	} else if (!show) {
		size_t i;
		json_t *r1;
		printf("%-6s %-20s %-6s %-12s\n", "ID", "STARTED", "KIND", "STATUS");
		json_array_foreach(j, i, r1)
			print_run_line(r1);
	} else {
		print_run_line(j);
		size_t i;
		json_t *n;
		json_array_foreach(json_object_get(j, "node_results"), i, n) {
			/* The error is often the node's own words: shown escaped. */
			const char *err = json_string_value(json_object_get(n, "error"));
			char *name = str_tty(json_string_value(json_object_get(n, "name")), 0),
			     *status = str_tty(json_string_value(json_object_get(n, "status")), 0),
			     *terr = str_tty(err, 0);
			printf("  %-16s %-11s %3lld changed %3lld failed %6.2f s%s%s\n",
			       name, status,
			       (long long)json_integer_value(json_object_get(n, "changed")),
			       (long long)json_integer_value(json_object_get(n, "failed")),
			       (double)json_integer_value(json_object_get(n, "duration_ms")) / 1000,
			       err ? "  " : "", terr);
			free(name);
			free(status);
			free(terr);
		}
	}
out:
	json_decref(j);
	state_close(st);
	return rc;
}

const struct command cmd_runs = {
	.name = "runs",
	.run = run,
	.summary = "list past runs, or show one with its per-node results",
	.help = "NAME\n    kiln runs - the history of runs in the state database\n\n"
		"SYNOPSIS\n    kiln runs [-f FILE | --state FILE] [--last N] [-o json]\n"
		"    kiln runs show ID [-o json]\n\n"
		"DESCRIPTION\n"
		"    Every facts, plan and apply run is recorded before any node is touched,\n"
		"    and each node's outcome as it finishes. A run whose kiln died (kill -9,\n"
		"    power loss) shows as 'interrupted'. 'show' lists each node's status,\n"
		"    counts, time and error; -o json adds every resource result.\n\n"
		"OPTIONS\n"
		"    -f, --file FILE   the spec whose state to read (default: cluster.yaml)\n"
		"    --state FILE      the state database (default: SPECDIR/.kiln/state.db)\n"
		"    --last N          how many runs to list (default 20)\n\n"
		"EXIT STATUS\n    0 success; 1 no state database, no such run, or an error\n",
};
