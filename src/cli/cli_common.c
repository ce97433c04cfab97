/* Helpers shared by the commands that read a spec: options, paths, progress. */
#include "cli.h"

#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan/plan.h"
#include "spec/spec.h"
#include "state/state.h"

int cli_spec_option(int argc, char **argv, int *i, struct spec_args *a)
{
	static const struct { const char *s, *l; size_t off; } opts[] = {
		{ "-f", "--file", offsetof(struct spec_args, spec) },
		{ NULL, "--state", offsetof(struct spec_args, state) },
		{ NULL, "--agent", offsetof(struct spec_args, agent) },
	};
	const char *arg = argv[*i];

	for (size_t k = 0; k < ARRAY_SIZE(opts); k++) {
		const char *val = NULL;
		size_t ll = strlen(opts[k].l);
		if ((opts[k].s && !strcmp(arg, opts[k].s)) || !strcmp(arg, opts[k].l)) {
			if (*i + 1 >= argc) {
				cli_error("option '%s' needs a value", arg);
				return -1;
			}
			val = argv[++*i];
		} else if (!strncmp(arg, opts[k].l, ll) && arg[ll] == '=') {
			val = arg + ll + 1;
		} else {
			continue;
		}
		*(const char **)((char *)a + opts[k].off) = val;
		if (k == 0)
			a->spec_given = true;
		(*i)++;
		return 1;
	}
	return 0;
}

int cli_shared_option(int argc, char **argv, int *i, struct spec_args *a)
{
	int n = cli_spec_option(argc, argv, i, a);

	if (n != 0)
		return n;
	n = cli_global_option(argc, argv, *i);
	if (n < 0)
		return -1;
	*i += n;
	return n > 0;
}

char *cli_state_path(const struct spec_args *a)
{
	if (a->state)
		return xstrdup(a->state);
	char *copy = xstrdup(a->spec ? a->spec : "cluster.yaml");
	char *p = xasprintf("%s/.kiln/state.db", dirname(copy));
	free(copy);
	return p;
}

int cli_open(const struct spec_args *a, struct cluster **c, struct state **st,
	     enum cli_state_mode mode)
{
	struct kerr e = { 0 };
	char *path = NULL;
	int rc = 0;

	*c = NULL;
	if (st)
		*st = NULL;
	if (spec_load(a->spec ? a->spec : "cluster.yaml", c, &e) < 0)
		return cli_error("%s", e.msg);
	if (st) {
		path = cli_state_path(a);
		if ((mode == CLI_STATE_MAKE || path_exists(path)) && state_open(path, st, &e) < 0) {
			rc = cli_error("%s", e.msg);
			cluster_free(*c);
			*c = NULL;
		}
		free(path);
	}
	return rc;
}

char *cli_agent_path(const struct spec_args *a)
{
	const char *env = getenv("KILN_AGENT");
	char self[PATH_MAX];
	char *p;

	if (a->agent)
		p = xstrdup(a->agent);
	else if (env && *env)
		p = xstrdup(env);
	else {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0) {
			cli_error("cannot find kiln-agent: /proc/self/exe unreadable; use --agent");
			return NULL;
		}
		self[n] = '\0';
		p = xasprintf("%s/kiln-agent", dirname(self));
	}
	if (access(p, X_OK) < 0) {
		cli_error("kiln-agent '%s': not an executable file (set --agent or KILN_AGENT)", p);
		free(p);
		return NULL;
	}
	return p;
}

static bool live = false, live_checked = false;
static int64_t last_draw;

static const char *phase_word(enum node_phase p)
{
	static const char *const w[] = { "pending", "connecting", "starting agent",
					  "collecting facts", "converging", "rebooting", "done" };
	return w[p];
}

/*
 * On a terminal: one status line, redrawn (at most every 100 ms and at
 * every node's end).  Otherwise: a plain line per node as it finishes.
 */
void cli_progress(const struct plan_run *run, const struct node_run *nr, void *arg)
{
	if (!live_checked) {
		live = isatty(STDERR_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb");
		live_checked = true;
	}
	if (nr->phase == PHASE_DONE && !live) {
		char *name = str_tty(nr->node->name, 0);
		fprintf(stderr, "%s: %s", name, node_outcome_name(nr->outcome));
		free(name);
		if (nr->error) {
			/* Often the node's own words: shown escaped. */
			char *err = str_tty(nr->error, 0);
			fprintf(stderr, ": %s", err);
			free(err);
		}
		else if (run->mode != PLAN_FACTS)
			fprintf(stderr, " (%d of %d resources %s)", nr->changed, nr->total,
				run->mode == PLAN_APPLY ? "changed" : "would change");
		fprintf(stderr, " [%.2f s]\n", (double)nr->duration_ms / 1000);
		return;
	}
	if (!live)
		return;
	int64_t t = now_ms();
	if (nr->phase != PHASE_DONE && t - last_draw < 100)
		return;
	last_draw = t;
	size_t done = 0, failed = 0;
	const struct node_run *busy = NULL;
	for (size_t i = 0; i < run->n; i++) {
		const struct node_run *x = &run->nodes[i];
		if (x->phase == PHASE_DONE) {
			done++;
			failed += x->outcome == OUTCOME_FAILED || x->outcome == OUTCOME_UNREACHABLE;
		} else if (x->phase != PHASE_PENDING && !busy) {
			busy = x;
		}
	}
	fprintf(stderr, "\r\033[K[%zu/%zu nodes done", done, run->n);
	if (failed)
		fprintf(stderr, ", %zu failed", failed);
	fputc(']', stderr);
	char *name = busy ? str_tty(busy->node->name, 0) : NULL;
	if (busy && busy->total)
		fprintf(stderr, " %s: %s%s%s (%d/%d)", name, phase_word(busy->phase),
			busy->stage ? " " : "", busy->stage ? busy->stage : "",
			busy->done, busy->total);
	else if (busy)
		fprintf(stderr, " %s: %s", name, phase_word(busy->phase));
	free(name);
	fflush(stderr);
}

void cli_progress_end(void)
{
	if (live)
		fprintf(stderr, "\r\033[K");
}

void cli_print_json(const json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	putchar('\n');
}

void cli_puts_tty(const char *s, FILE *f)
{
	struct buf b;

	buf_init(&b, 0);
	buf_add_tty(&b, s, strlen(s), TTY_LINES);
	fputs(b.s ? b.s : "", f);
	buf_release(&b);
}
