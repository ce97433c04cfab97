/*
 * kiln's entry point: global flags, the subcommand table, help, and the
 * check that stdout was written and closed without error.
 */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum output_format arg_output = OUTPUT_HUMAN;
int arg_verbose;

static const struct command *const commands[] = {
	&cmd_facts, &cmd_inventory, &cmd_plan, &cmd_apply, &cmd_runs, &cmd_lab, &cmd_serve, &cmd_boot,
	&cmd_validate, &cmd_exports, &cmd_mesh, &cmd_run, &cmd_jobs, &cmd_storage, &cmd_power,
	&cmd_bootdev, &cmd_version,
};

int cli_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("kiln: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_help(const struct command *c)
{
	fputs(c->help, stdout);
	return 0;
}

int cli_global_option(int argc, char **argv, int i)
{
	const char *a = argv[i], *v = NULL;
	int used = 1;

	if ((a[0] == '-' && a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) ||
	    !strcmp(a, "--verbose")) {
		arg_verbose += a[1] == 'v' ? (int)strlen(a + 1) : 1;
		log_threshold = arg_verbose > 1 ? LOG_DEBUG : LOG_INFO;
		return 1;
	}
	if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
		if (i + 1 >= argc) {
			cli_error("option '%s' needs a format (human or json)", a);
			return -1;
		}
		v = argv[i + 1];
		used = 2;
	} else if (str_starts(a, "--output=")) {
		v = a + 9;
	} else if (str_starts(a, "-o") && a[2]) {
		v = a + 2;
	} else {
		return 0;
	}
	if (!strcmp(v, "json")) {
		arg_output = OUTPUT_JSON;
	} else if (!strcmp(v, "human")) {
		arg_output = OUTPUT_HUMAN;
	} else {
		cli_error("output format '%s': expected 'human' or 'json'", v);
		return -1;
	}
	return used;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: kiln [-o json] [-v] COMMAND [ARGS...]\n\n"
		   "kiln turns a pile of machines into one cluster, from one "
		   "declarative file.\n\nCommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f, "\nRun 'kiln help COMMAND' or 'kiln COMMAND --help' for a "
		   "command's manual.\n");
}

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i]->name, name))
			return commands[i];
	return NULL;
}

/* Close stdout and report a write error (a full disk, a closed pipe). */
static int finish(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
		if (errno != EPIPE)
			fprintf(stderr, "kiln: write error on standard output: %s\n",
				strerror(errno));
		return 1;   /* never 0 or 2: what was printed is incomplete */
	}
	return rc;
}

int main(int argc, char **argv)
{
	int i = 1;

	signal(SIGPIPE, SIG_IGN);
	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return finish(0);
		}
		if (!strcmp(argv[i], "--version"))
			return finish(cmd_version.run(1, argv));
		int n = cli_global_option(argc, argv, i);
		if (n < 0)
			return 1;
		if (n == 0) {
			cli_error("unknown option '%s' (see 'kiln --help')", argv[i]);
			return 1;
		}
		i += n;
	}
	if (i >= argc) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[i], "help")) {
		if (i + 1 >= argc) {
			usage(stdout);
			return finish(0);
		}
		const struct command *c = find(argv[i + 1]);
		if (!c)
			return cli_error("no command '%s' (see 'kiln help')", argv[i + 1]);
		return finish(cli_help(c));
	}
	const struct command *c = find(argv[i]);
	if (!c)
		return cli_error("no command '%s' (see 'kiln help')", argv[i]);
	for (int j = i + 1; j < argc && strcmp(argv[j], "--"); j++)
		if (!strcmp(argv[j], "-h") || !strcmp(argv[j], "--help"))
			return finish(cli_help(c));
	return finish(c->run(argc - i, argv + i));
}
