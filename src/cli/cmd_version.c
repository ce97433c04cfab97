/* kiln version */
#include "cli.h"

static int run(int argc, char **argv)
{
	if (arg_output == OUTPUT_JSON)
		printf("{\"version\":\"%s\"}\n", KILN_VERSION);
	else
		printf("kiln %s\n", KILN_VERSION);
	return 0;
}

const struct command cmd_version = {
	.name = "version",
	.run = run,
	.summary = "print kiln's version",
	.help = "NAME\n    kiln version - print kiln's version\n\n"
		"SYNOPSIS\n    kiln [-o json] version\n",
};
