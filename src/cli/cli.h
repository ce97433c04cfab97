/*
 * cli — the command layer: main(), the subcommand table, argument parsing
 * and output.  Command handlers parse argv, call library code, and print;
 * library code never prints (STYLE.md).  Each command lives in its own
 * cmd_NAME.c and exports one `const struct command cmd_NAME`.
 *
 * Exit codes: 0 success, 1 error, 2 "changes pending" (plan, apply --check).
 */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "util/util.h"

enum output_format { OUTPUT_HUMAN, OUTPUT_JSON };

/* Global flags, parsed before the subcommand name (and accepted after it). */
extern enum output_format arg_output;
extern int arg_verbose;

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;   /* one line, for `kiln help` */
	const char *help;      /* man-page grade text: SYNOPSIS, DESCRIPTION, OPTIONS, EXIT STATUS, EXAMPLES */
};

/* Print "kiln: " + message to stderr; returns 1 (the error exit code). */
int cli_error(const char *fmt, ...) PRINTF(1, 2);
/* Print a command's help to stdout; returns 0. */
int cli_help(const struct command *c);
/*
 * Parse a global option out of argv[i] if it is one (-o FMT, --output FMT,
 * -o json, -v).  Returns the number of argv entries consumed (0 = not a
 * global option), or -1 after printing an error.
 */
int cli_global_option(int argc, char **argv, int i);

/* The commands (see cmd_*.c). */
extern const struct command cmd_facts, cmd_inventory, cmd_plan, cmd_apply, cmd_runs, cmd_lab,
	cmd_version, cmd_serve, cmd_boot, cmd_power, cmd_bootdev, cmd_mesh, cmd_exports,
	cmd_validate, cmd_run, cmd_jobs, cmd_storage;

#endif

/* ---- shared by the commands that read a spec (cli_common.c) ---------- */

struct cluster;
/*
 * Run script on the slurm stack's login node (one SSH command, through the
 * bastion as apply goes); stdout into out.  A non-zero exit is an error
 * with the script's stderr, escaped (cmd_jobs.c).
 */
int cli_slurm_exec(const struct cluster *c, const char *script, struct buf *out,
		   struct kerr *e);

/* Options common to facts/plan/apply/runs, filled by cli_spec_option(). */
struct spec_args {
	const char *spec;      /* -f FILE, default "cluster.yaml" */
	const char *state;     /* --state FILE, default SPECDIR/.kiln/state.db */
	const char *agent;     /* --agent FILE, default $KILN_AGENT or beside kiln */
	bool spec_given;
};
/*
 * If argv[*i] is -f/--file, --state or --agent (with its value), store it,
 * advance *i past it and return 1; 0 if it is not one of them; -1 after an
 * error message.
 */
int cli_spec_option(int argc, char **argv, int *i, struct spec_args *a);
/*
 * cli_spec_option() or cli_global_option(), whichever argv[*i] is: 1 (and
 * *i advanced) if it was one, 0 if neither, -1 after an error message.
 */
int cli_shared_option(int argc, char **argv, int *i, struct spec_args *a);
/* The state database path for a, as a new string. */
char *cli_state_path(const struct spec_args *a);
/*
 * What most commands start with: the spec a names, loaded into *c, and,
 * with st, its state database opened into *st — made when missing with
 * CLI_STATE_MAKE; with CLI_STATE_READ a missing one is not made (a command
 * that only reads) and *st stays NULL.  Errors are printed: returns 0, or
 * 1 (the exit status) with *c and *st NULL.
 */
struct state;
enum cli_state_mode { CLI_STATE_READ, CLI_STATE_MAKE };
int cli_open(const struct spec_args *a, struct cluster **c, struct state **st,
	     enum cli_state_mode mode);
/* The kiln-agent to run on nodes, as a new string; NULL after an error. */
char *cli_agent_path(const struct spec_args *a);
/* Progress display for runs over many nodes (live on a terminal). */
struct plan_run;
struct node_run;
void cli_progress(const struct plan_run *run, const struct node_run *nr, void *arg);
void cli_progress_end(void);
/*
 * Output of what nodes sent (STYLE.md: untrusted, escaped before it reaches
 * a terminal).  cli_print_json: j indented on stdout, every non-ASCII
 * character as \uXXXX, so control characters (C0 and C1) never appear raw.
 * cli_puts_tty: multi-line text with control characters and escape
 * sequences shown (buf_add_tty with TTY_LINES), not interpreted.
 */
void cli_print_json(const json_t *j);
void cli_puts_tty(const char *s, FILE *f);
