/*
 * kiln-agent: the static executable kiln runs on each node.  A thin command
 * layer over agent.h: parse arguments, call, report once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

static const char *arg_root = "/";

struct cmd {
	const char *name;
	const char *args;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static int cmd_serve(int argc, char **argv);
static int cmd_facts(int argc, char **argv);
static int cmd_check(int argc, char **argv);
static int cmd_apply(int argc, char **argv);

static const struct cmd commands[] = {
	{ "serve", "[--root DIR]", cmd_serve, "speak the kiln agent protocol on stdin/stdout" },
	{ "facts", "[--root DIR]", cmd_facts, "print this machine's facts as JSON" },
	{ "check", "FILE [--root DIR]", cmd_check, "report what a resource list would change" },
	{ "apply", "FILE [--root DIR]", cmd_apply, "converge a resource list" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kiln-agent COMMAND [ARGS]\n       kiln-agent --version\n\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %s %-18s %s\n", commands[i].name, commands[i].args,
			commands[i].help);
}

/*
 * Take "--root DIR" out of argv (setting arg_root); the positional
 * arguments that remain go to pos (at most npos).  -1 on a usage error.
 */
static int parse_args(int argc, char **argv, char **pos, int npos)
{
	int n = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--root")) {
			if (++i >= argc)
				return -1;
			arg_root = argv[i];
		} else if (!strncmp(argv[i], "--root=", 7)) {
			arg_root = argv[i] + 7;
		} else if (argv[i][0] == '-' || n >= npos) {
			return -1;
		} else {
			pos[n++] = argv[i];
		}
	}
	return n;
}

/* Check that everything written to stdout made it out. */
static int stdout_close(void)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "kiln-agent: write error on stdout: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	if (parse_args(argc, argv, NULL, 0) != 0) {
		usage(stderr);
		return 2;
	}
	int r = agent_serve(stdin, stdout, arg_root);
	if (r < 0) {
		fprintf(stderr, "kiln-agent: serve: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

static int cmd_facts(int argc, char **argv)
{
	struct kerr e = { 0 };
	json_t *facts = NULL;

	if (parse_args(argc, argv, NULL, 0) != 0) {
		usage(stderr);
		return 2;
	}
	if (agent_facts(arg_root, &facts, &e) < 0) {
		fprintf(stderr, "kiln-agent: facts: %s\n", e.msg);
		return 1;
	}
	json_dumpf(facts, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	json_decref(facts);
	return stdout_close();
}

static int run_file(int argc, char **argv, bool check_only)
{
	struct kerr e = { 0 };
	char *file = NULL;
	size_t failed = 0;

	if (parse_args(argc, argv, &file, 1) != 1) {
		usage(stderr);
		return 2;
	}
	if (agent_run_file(file, arg_root, check_only, stdout, &failed, &e) < 0) {
		fprintf(stderr, "kiln-agent: %s\n", e.msg);
		return 1;
	}
	if (stdout_close())
		return 1;
	return failed ? 1 : 0;
}

static int cmd_check(int argc, char **argv)
{
	return run_file(argc, argv, true);
}

static int cmd_apply(int argc, char **argv)
{
	return run_file(argc, argv, false);
}

int main(int argc, char **argv)
{
	/* A closed SSH channel must come back as a write error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "--version")) {
		printf("kiln-agent %s (protocol %d)\n", KILN_VERSION, AGENT_PROTOCOL);
		return stdout_close();
	}
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return stdout_close();
	}
	for (size_t i = 0; argc >= 2 && i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	if (argc >= 2)
		fprintf(stderr, "kiln-agent: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
