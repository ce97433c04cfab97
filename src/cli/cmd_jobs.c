/*
 * kiln jobs: the cluster's Slurm jobs (pending, running, finished in the
 * last 7 days) as one list merged from squeue and sacct on the login node;
 * kiln jobs cancel ID.  Also the login-node runner kiln run shares.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs.h"
#include "remote/remote.h"
#include "spec/spec.h"
#include "stacks/slurm.h"

#define OUT_CAP (4 << 20)         /* what squeue + sacct may print, bytes */
#define ERR_CAP 4096

int cli_slurm_exec(const struct cluster *c, const char *script, struct buf *out,
		   struct kerr *e)
{
	const struct node *login = slurm_login_node(c);
	struct remote *r = NULL;
	struct remote_conn *conn = NULL;
	struct buf err;
	int status = 0, ret;

	if (!login)
		return kerr_set(e, -ENOENT, "%s: no stacks.slurm in the spec (or no login node)",
				c->path);
	buf_init(&err, ERR_CAP);
	if ((ret = remote_new(c, &r, e)) < 0 || (ret = remote_connect(r, login, &conn, e)) < 0 ||
	    (ret = remote_exec(conn, script, NULL, 0, out, &err, &status, e)) < 0) {
		kerr_prefix(e, "login node '%s'", login->name);
		goto out;
	}
	if (status != 0) {
		/* what Slurm said, one line, escaped: it came from the node */
		char *msg = str_tty(err.s ? err.s : "", 0);
		char *nl = strchr(msg, '\n');
		if (nl && !nl[1])
			*nl = '\0';
		ret = kerr_set(e, -EIO, "login node '%s': exit %d: %s", login->name, status,
			       *msg ? msg : "(no message)");
		free(msg);
	}
out:
	buf_release(&err);
	remote_conn_free(conn);
	remote_free(r);
	return ret;
}

static void put_text(const json_t *jobs)
{
	static const char *const cols[] = { "id", "name", "state", "nodelist", "gpus", "start",
					    "end", "exit" };
	size_t i;
	json_t *x;

	printf("%-10s %-16s %-11s %-14s %-10s %-19s %-19s %s\n", "ID", "NAME", "STATE", "NODES",
	       "GPUS", "START", "END", "EXIT");
	json_array_foreach(jobs, i, x) {
		for (size_t k = 0; k < ARRAY_SIZE(cols); k++) {
			static const int width[] = { 10, 16, 11, 14, 10, 19, 19, 0 };
			const char *v = json_string_value(json_object_get(x, cols[k]));
			char *t = str_tty(v ? v : "-", 0);
			printf(k + 1 < ARRAY_SIZE(cols) ? "%-*s " : "%-*s\n", width[k], t);
			free(t);
		}
	}
}

/* cancel a job, or (every) remove the schedule of that name */
static int cancel(const struct cluster *c, const char *id, bool every)
{
	struct buf script = BUF_INIT, out;
	struct kerr e = { 0 };
	int rc = 1;

	buf_init(&out, ERR_CAP);
	if ((every ? jobs_unschedule_script(id, &script, &e) : jobs_cancel_script(id, &script, &e)) < 0 ||
	    cli_slurm_exec(c, script.s, &out, &e) < 0) {
		rc = cli_error("jobs cancel: %s", e.msg);
		goto out;
	}
	if (arg_output == OUTPUT_JSON) {
		json_t *j = json_pack("{s:s,s:b}", every ? "every" : "id", id, "cancelled", true);
		cli_print_json(j);
		json_decref(j);
	} else {
		printf(every ? "removed schedule %s\n" : "cancelled job %s\n", id);
	}
	rc = 0;
out:
	buf_release(&script);
	buf_release(&out);
	return rc;
}

static int run(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	struct buf out;
	const char *cancel_id = NULL;
	bool every = false;
	json_t *jobs = NULL;
	int rc = 1;

	buf_init(&out, OUT_CAP);
	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a);
		if (n < 0)
			goto out;
		if (n > 0)
			continue;
		if (!strcmp(argv[i], "cancel") && i + 1 < argc && !cancel_id) {
			every = !strcmp(argv[i + 1], "--every") && i + 2 < argc;
			cancel_id = argv[i + 1 + every];
			i += 2 + every;
			continue;
		}
		rc = cli_error("jobs: unknown argument '%s' (see 'kiln jobs --help')", argv[i]);
		goto out;
	}
	if ((rc = cli_open(&a, &c, NULL, CLI_STATE_READ)))
		goto out;
	if (cancel_id) {
		rc = cancel(c, cancel_id, every);
		goto out;
	}
	if (cli_slurm_exec(c, jobs_list_script(), &out, &e) < 0) {
		rc = cli_error("jobs: %s", e.msg);
		goto out;
	}
	jobs = jobs_list_parse(out.s ? out.s : "", out.len);
	if (arg_output == OUTPUT_JSON)
		cli_print_json(jobs);
	else
		put_text(jobs);
	rc = 0;
out:
	json_decref(jobs);
	buf_release(&out);
	cluster_free(c);
	return rc;
}

const struct command cmd_jobs = {
	.name = "jobs",
	.run = run,
	.summary = "list the cluster's Slurm jobs, or cancel one",
	.help = "NAME\n    kiln jobs - the cluster's jobs, from Slurm on the login node\n\n"
		"SYNOPSIS\n    kiln jobs [-f FILE] [-o json]\n"
		"    kiln jobs [-f FILE] cancel ID\n"
		"    kiln jobs [-f FILE] cancel --every NAME\n\n"
		"DESCRIPTION\n"
		"    One list of the jobs Slurm holds (pending, running) and the jobs it\n"
		"    accounted for in the last 7 days (finished, failed, cancelled),\n"
		"    merged by job id: squeue and sacct run on the slurm stack's login\n"
		"    node (role slurm-login, else the controller) in one SSH command. A\n"
		"    job both know shows squeue's state and sacct's exit code. GPUS is\n"
		"    what the job asked for or was given (TYPE:N). Every field came from\n"
		"    the node and is shown escaped.\n\n"
		"    'cancel ID' cancels a job or array task (scancel). 'cancel --every\n"
		"    NAME' removes the schedule 'kiln run --every --name NAME' made (its\n"
		"    crontab entry on the login node); jobs it started are not touched.\n\n"
		"    JSON output (-o json): [{\"id\", \"name\", \"state\", \"user\",\n"
		"    \"partition\", \"nodes\", \"nodelist\", \"submit\", \"start\", \"end\",\n"
		"    \"exit\", \"gpus\"}] sorted by id; null where Slurm has no value.\n\n"
		"OPTIONS\n"
		"    -f, --file FILE   the cluster spec (default cluster.yaml)\n"
		"    -o json           JSON output\n\n"
		"EXIT STATUS\n    0 listed or cancelled; 1 an error (spec, SSH, Slurm's message).\n\n"
		"EXAMPLES\n    kiln jobs\n    kiln -o json jobs | jq '.[] | select(.state == \"RUNNING\")'\n"
		"    kiln jobs cancel 42\n    kiln jobs cancel --every nightly\n",
};
