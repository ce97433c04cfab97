/*
 * agent — the node side of kiln: the JSON-lines protocol of
 * docs/agent-protocol.md on a pair of streams, and the one-shot helpers the
 * kiln-agent command offers for tests and debugging.
 *
 * Contract:
 *  - agent_serve() writes the hello line, then answers one request line at
 *    a time, flushing after every reply line.  A line over AGENT_LINE_MAX,
 *    bad JSON or an unknown op gets an "error" reply and the loop goes on.
 *    It returns 0 on "exit" or end of input, -EPIPE (or -errno) when the
 *    output stream fails, -errno when reading fails.
 *  - Resources run under root ("/" on nodes); facts are collected under it.
 *  - Nothing here writes to stderr; the streams are borrowed, not closed.
 *  - Blocks on input and on whatever the resources run.
 */
#ifndef KILN_AGENT_H
#define KILN_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "util/util.h"

#define AGENT_PROTOCOL 1
#define AGENT_LINE_MAX (64u << 20)

int agent_serve(FILE *in, FILE *out, const char *root);

/* Collect facts under root into *out (new reference); -ENOTSUP when this
 * agent was built without facts/. */
int agent_facts(const char *root, json_t **out, struct kerr *e);

/*
 * Run the JSON array of resources in file path (check or apply) and write
 * one result object per line to out, then the done line; *failed gets the
 * number of failed resources.  -errno with e set when the file cannot be
 * read or is not an array.
 */
int agent_run_file(const char *path, const char *root, bool check_only, FILE *out,
		   size_t *failed, struct kerr *e);

#endif
