/*
 * kiln run: submit a job to the cluster's Slurm through its login node, at
 * once, at a set time (--at) or on a schedule (--every), after a placement
 * check that refuses what no set of nodes can hold (src/jobs/jobs.h).
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs.h"
#include "plan/plan.h"
#include "spec/spec.h"
#include "stacks/slurm.h"
#include "stacks/stacks.h"
#include "state/state.h"

#define OUT_CAP 4096

/* One option with a value: its value, or NULL after an error. */
static const char *value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		cli_error("run: %s needs a value (see 'kiln run --help')", argv[*i]);
		return NULL;
	}
	*i += 2;
	return argv[*i - 1];
}

/* A count option: 1..max. */
static int count(const char *opt, const char *s, int max, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v < 1 || v > max) {
		cli_error("run: %s '%s': a number from 1 to %d", opt, s, max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

/* Parse argv into rq; dry: --dry-run.  0, or 1 after an error message. */
static int parse(int argc, char **argv, struct spec_args *a, struct jobs_request *rq, bool *dry)
{
	struct kerr e = { 0 };
	const char *v;
	int i = 1;

	while (i < argc) {
		const char *o = argv[i];
		int n = cli_shared_option(argc, argv, &i, a);
		if (n < 0)
			return 1;
		if (n > 0)
			continue;
		if (!strcmp(o, "--")) {
			i++;
			break;
		}
		if (o[0] != '-')
			break;                       /* the command starts here */
		if (!strcmp(o, "--dry-run")) {
			*dry = true;
			i++;
			continue;
		}
		if (!(v = value(argc, argv, &i)))
			return 1;
		if (!strcmp(o, "--gpus")) {
			if (jobs_parse_gpus(v, rq, &e) < 0)
				return cli_error("run: %s", e.msg);
		} else if (!strcmp(o, "--nodes")) {
			if (count(o, v, 10000, &rq->nodes) < 0)
				return 1;
		} else if (!strcmp(o, "--cpus")) {
			if (count(o, v, 100000, &rq->cpus) < 0)
				return 1;
		} else if (!strcmp(o, "--mem")) {
			if (jobs_parse_mem(v, &rq->mem_mb, &e) < 0)
				return cli_error("run: %s", e.msg);
		} else if (!strcmp(o, "--time")) {
			if (jobs_check_time(v, &e) < 0)
				return cli_error("run: %s", e.msg);
			free(rq->time);
			rq->time = xstrdup(v);
		} else if (!strcmp(o, "--at")) {
			free(rq->begin);
			rq->begin = NULL;
			if (jobs_parse_at(v, &rq->begin, &e) < 0)
				return cli_error("run: %s", e.msg);
		} else if (!strcmp(o, "--every")) {
			if (jobs_check_cron(v, &e) < 0)
				return cli_error("run: %s", e.msg);
			free(rq->cron);
			rq->cron = xstrdup(v);
		} else if (!strcmp(o, "--name") || !strcmp(o, "--partition")) {
			if (!jobs_name_ok(v))
				return cli_error("run: %s '%s': 1-%d of A-Z a-z 0-9 . _ -", o, v,
						 JOBS_NAME_MAX);
			char **dst = o[2] == 'n' ? &rq->name : &rq->partition;
			free(*dst);
			*dst = xstrdup(v);
		} else if (!strcmp(o, "--log")) {
			if (v[0] != '/' || strlen(v) > 1024)
				return cli_error("run: --log '%s': an absolute path on the node", v);
			free(rq->output);
			rq->output = xstrdup(v);
		} else {
			return cli_error("run: unknown option '%s' (see 'kiln run --help')", o);
		}
	}
	for (; i < argc; i++)
		strv_push(&rq->argv, argv[i]);
	if (!rq->argv.n)
		return cli_error("run: no command (kiln run [OPTIONS] -- CMD [ARG...])");
	if (rq->begin && rq->cron)
		return cli_error("run: --at and --every exclude each other");
	if (rq->cron && !rq->name)
		return cli_error("run: --every needs --name (its runs' job name, and how "
				 "'kiln jobs cancel --every NAME' removes it)");
	for (size_t k = 0; rq->cron && k < rq->argv.n; k++)
		if (strchr(rq->argv.v[k], '\n'))
			return cli_error("run: --every: the command is one crontab line: no newlines");
	return 0;
}

/*
 * The compute nodes as Slurm knows them: the slurm stack's view of the
 * spec and the facts the state recorded (what the last apply wrote into
 * slurm.conf).
 */
static int compute_nodes(const struct cluster *c, const struct spec_args *a,
			 struct jobs_node **out, size_t *n, struct kerr *e)
{
	json_t **facts = xcalloc(c->nnodes + 1, sizeof(*facts));
	char *path = cli_state_path(a);
	struct state *st = NULL;
	struct exports ex;
	int r = 0;

	exports_init(&ex);
	*out = NULL;
	*n = 0;
	if (!path_exists(path)) {
		r = kerr_set(e, -ENOENT, "no state database at '%s': run 'kiln apply' first", path);
		goto out;
	}
	if ((r = state_open(path, &st, e)) < 0 ||
	    (r = plan_state_load(st, c, NULL, facts, &ex, false, e)) < 0)
		goto out;
	struct render_ctx rc = { .c = c, .facts = (const json_t *const *)facts, .exports = &ex };
	*n = slurm_jobs_nodes(&rc, out);
	if (*n == 0)
		r = kerr_set(e, -ENOENT, "no compute node has recorded facts: run 'kiln apply' first");
out:
	for (size_t i = 0; i < c->nnodes; i++)
		json_decref(facts[i]);
	free(facts);
	exports_release(&ex);
	state_close(st);
	free(path);
	return r;
}

static int run(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	struct jobs_request rq;
	struct cluster *c = NULL;
	struct jobs_node *nodes = NULL;
	struct strv fit = { 0 };
	struct buf script = BUF_INIT, out;
	struct kerr e = { 0 };
	size_t nn = 0;
	bool dry = false;
	int rc = 1;

	jobs_request_init(&rq);
	buf_init(&out, OUT_CAP);
	if (parse(argc, argv, &a, &rq, &dry))
		goto out;
	if (spec_load(a.spec, &c, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	if (!slurm_login_node(c)) {
		rc = cli_error("run: %s: no stacks.slurm in the spec", c->path);
		goto out;
	}
	if (compute_nodes(c, &a, &nodes, &nn, &e) < 0 || jobs_place(nodes, nn, &rq, &fit, &e) < 0) {
		rc = cli_error("run: refused: %s", e.msg);
		goto out;
	}
	jobs_submit_script(&rq, &script);
	if (dry) {
		if (arg_output == OUTPUT_JSON) {
			json_t *j = json_pack("{s:s,s:o}", "script", script.s, "fits",
					      json_array());
			for (size_t i = 0; i < fit.n; i++)
				json_array_append_new(json_object_get(j, "fits"),
						      json_string(fit.v[i]));
			cli_print_json(j);
			json_decref(j);
		} else {
			printf("%s\n", script.s);
		}
		rc = 0;
		goto out;
	}
	if (cli_slurm_exec(c, script.s, &out, &e) < 0) {
		rc = cli_error("run: %s", e.msg);
		goto out;
	}
	/* sbatch --parsable: "ID" or "ID;CLUSTER"; the crontab edit: "cron" */
	char *id = out.s ? out.s : "";
	id[strcspn(id, ";\n")] = '\0';
	if (!rq.cron && (!*id || strspn(id, "0123456789") != strlen(id))) {
		char *t = str_tty(id, 0);
		rc = cli_error("run: sbatch printed no job id ('%s')", t);
		free(t);
		goto out;
	}
	if (arg_output == OUTPUT_JSON) {
		json_t *j = rq.cron ? json_pack("{s:s,s:s}", "cron", rq.cron, "name", rq.name)
				    : json_pack("{s:s}", "id", id);
		json_object_set_new(j, "fits", json_array());
		for (size_t i = 0; i < fit.n; i++)
			json_array_append_new(json_object_get(j, "fits"), json_string(fit.v[i]));
		cli_print_json(j);
		json_decref(j);
	} else if (rq.cron) {
		printf("scheduled %s: '%s' (each run a job named %s)\n", rq.name, rq.cron, rq.name);
	} else {
		printf("%s\n", id);
	}
	rc = 0;
out:
	for (size_t i = 0; i < nn; i++)
		jobs_node_release(&nodes[i]);
	free(nodes);
	strv_release(&fit);
	buf_release(&script);
	buf_release(&out);
	jobs_request_release(&rq);
	cluster_free(c);
	return rc;
}

const struct command cmd_run = {
	.name = "run",
	.run = run,
	.summary = "run a job on the cluster's Slurm, now, at a time or on a schedule",
	.help = "NAME\n    kiln run - submit a job to the cluster's Slurm\n\n"
		"SYNOPSIS\n    kiln run [-f FILE] [--gpus [TYPE:]N] [--nodes N] [--cpus N] [--mem SIZE]\n"
		"             [--time LIMIT] [--at TIME | --every CRON] [--name NAME]\n"
		"             [--partition P] [--log PATH] [--dry-run] -- CMD [ARG...]\n\n"
		"DESCRIPTION\n"
		"    Submits CMD through the slurm stack's login node (role slurm-login, else\n"
		"    the controller) with one SSH command, and prints the job id.\n\n"
		"    Every resource is per node: the job gets --nodes nodes (default 1),\n"
		"    each with --gpus GPUs (of TYPE, the Slurm GPU type 'kiln plan' and\n"
		"    'scontrol show node' show: a100, t4, ...), --cpus CPUs and --mem memory.\n"
		"    Before anything is sent, a placement check reads what each compute node\n"
		"    has (the slurm stack's view: the facts the last apply recorded) and\n"
		"    refuses a request that no set of nodes can hold, naming the shortfall:\n"
		"    'no node has 3 a100 GPUs (the most on one node: 2, on node2)'. Totals\n"
		"    never count: 3 GPUs that exist as 2 + 1 on two nodes do not make a\n"
		"    3-GPU node.\n\n"
		"    --at starts the job no earlier than TIME (sbatch --begin): now+N with\n"
		"    N seconds or Ns, Nm, Nh, Nd; HH:MM[:SS]; YYYY-MM-DDTHH:MM[:SS] (the\n"
		"    login node's local time). --every puts the submission in the user's\n"
		"    crontab on the login node (the slurm stack runs cron there): five\n"
		"    cron fields or @hourly, @daily, @weekly, @monthly, @yearly; each run\n"
		"    is a job named NAME that 'kiln jobs' lists; needs --name; the same\n"
		"    name again replaces the schedule; 'kiln jobs cancel --every NAME'\n"
		"    removes it.\n\n"
		"    The command and every value reach the login node's shell single-quoted.\n"
		"    The job's output goes where Slurm puts it (slurm-ID.out in the\n"
		"    submitting user's home on the first node) unless --log says.\n\n"
		"OPTIONS\n"
		"    --gpus [TYPE:]N   GPUs on each node (1-64), of TYPE if given\n"
		"    --nodes N         nodes (default 1)\n"
		"    --cpus N          CPUs on each node\n"
		"    --mem SIZE        memory on each node: 512M, 16G, 1T (plain = MiB)\n"
		"    --time LIMIT      time limit: MINUTES, M:S, H:M:S, D-H[:M[:S]], UNLIMITED\n"
		"    --at TIME         start no earlier than TIME\n"
		"    --every CRON      run on a schedule (cron on the login node)\n"
		"    --name NAME       the job name ([A-Za-z0-9._-], at most 64)\n"
		"    --partition P     the partition (default: Slurm's default)\n"
		"    --log PATH        the job's output file on the node (absolute; Slurm's --output)\n"
		"    --dry-run         check placement and print the command, send nothing\n"
		"    -f, --file FILE   the cluster spec (default cluster.yaml)\n"
		"    --state FILE      the state database (default SPECDIR/.kiln/state.db)\n"
		"    -o json           {\"id\", \"fits\": [nodes that can hold it]}\n\n"
		"EXIT STATUS\n    0 submitted; 1 refused by the placement check, or an error\n"
		"    (Slurm's own message, escaped).\n\n"
		"EXAMPLES\n"
		"    kiln run --gpus a100:1 -- python train.py\n"
		"    kiln run --nodes 2 --gpus 1 --time 2:00:00 -- ./allreduce.sh\n"
		"    kiln run --at 02:00 --gpus t4:1 -- ./nightly-eval.sh\n"
		"    kiln run --every '0 3 * * *' --name backup -- /srv/backup.sh\n",
};
