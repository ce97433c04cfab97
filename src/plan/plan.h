/*
 * plan — the apply driver: for every selected node, connect over SSH,
 * start the agent, collect facts, render the node's resources, and send
 * them in one message to check or apply; results stream back.
 *
 * Contract:
 *  - plan_execute() never stops because one node failed: each node's
 *    outcome (and its cause) is in its struct node_run.  With serial > 0
 *    nodes go in batches of that size and a batch with a failure stops
 *    the run; the nodes not reached are "skipped".
 *  - The progress callback is called from worker threads, serialised by a
 *    lock, every time a node changes phase or a result arrives; it may
 *    read the whole run but must not block for long.
 *  - Facts and per-node results go to the state store as each node
 *    finishes, when one is given.
 *  - The caller owns the returned run (plan_run_free).
 */
#ifndef KILN_PLAN_H
#define KILN_PLAN_H

#include <jansson.h>
#include <stdbool.h>

#include "spec/spec.h"
#include "state/state.h"
#include "util/util.h"

enum plan_mode { PLAN_FACTS, PLAN_CHECK, PLAN_APPLY };

enum node_phase { PHASE_PENDING, PHASE_CONNECTING, PHASE_AGENT, PHASE_FACTS,
		  PHASE_RESOURCES, PHASE_DONE };

enum node_outcome { OUTCOME_NONE, OUTCOME_OK, OUTCOME_CHANGED, OUTCOME_FAILED,
		    OUTCOME_UNREACHABLE, OUTCOME_SKIPPED };

struct node_run {
	const struct node *node;
	enum node_phase phase;
	enum node_outcome outcome;
	int total, done, ok, changed, failed;   /* resources */
	json_t *results;      /* array of agent result objects */
	json_t *facts;        /* as collected (names resolved in PLAN_FACTS) */
	char *error;          /* why the node failed, one line */
	bool uploaded;        /* the agent binary was copied this time */
	int64_t started_ms, duration_ms;
};

struct plan_run {
	const struct cluster *cluster;
	enum plan_mode mode;
	int64_t id;                 /* state run id, 0 without a state store */
	size_t n;
	struct node_run *nodes;     /* the selected nodes, spec order */
	int64_t duration_ms;
	int bastion_connections;
};

struct plan_opts {
	enum plan_mode mode;
	const char *limit;          /* --limit pattern, NULL = every node */
	int serial;                 /* 0 = all (bounded by ssh.concurrency) */
	const char *agent_path;     /* the local kiln-agent to run on nodes */
	struct state *state;        /* may be NULL */
	void (*progress)(const struct plan_run *run, const struct node_run *nr, void *arg);
	void *arg;
};

int plan_execute(const struct cluster *c, const struct plan_opts *o, struct plan_run **out,
		 struct kerr *e);
void plan_run_free(struct plan_run *run);

/* Counts over a finished run. */
struct plan_summary {
	int nodes, ok, changed, failed, unreachable, skipped, resources_changed;
};
void plan_summarize(const struct plan_run *run, struct plan_summary *s);

const char *node_outcome_name(enum node_outcome o);
/* The run as JSON (for -o json and the API). */
json_t *plan_run_to_json(const struct plan_run *run);

#endif
