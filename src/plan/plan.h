/*
 * plan — the apply driver.  For the selected nodes: connect over SSH and
 * start the agent (one session per node for the whole run), collect facts
 * from all of them, let the stacks make their own values (stacks_prepare:
 * overlay addresses), then run every enabled stack's phases in order:
 * render every node -> send each node its resources in one message to
 * check or apply, in parallel -> barrier (the phase's exports are known)
 * -> the next phase.  docs/stacks.md is the design.
 *
 * Contract:
 *  - plan_execute() never stops because one node failed: each node's
 *    outcome (and its cause, with the phase) is in its struct node_run; a
 *    node that failed takes no part in later phases, the others go on.
 *    With serial > 0 nodes go through every phase in batches of that size
 *    and a batch with a failure stops the run; the nodes not reached are
 *    "skipped".
 *  - Exports a node returns are bounded (64 a result, names
 *    [a-z0-9_]{1,64}, printable values up to 4 KiB; else the node fails),
 *    kept out of the results and run records, and stored per (node, stack,
 *    name) by apply (a secret only as existing); a check keeps them in
 *    memory for its own later phases.  Renders see every node's facts:
 *    this run's, or the last recorded for nodes not selected.
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

struct remote_conn;
struct agent_session;

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
	json_t *results;      /* array of agent result objects, each with its "phase" */
	json_t *facts;        /* as collected (names resolved in PLAN_FACTS) */
	char *error;          /* why the node failed, one line */
	char *failed_in;      /* the stack phase it failed in ("mesh.link"), or NULL */
	const char *stage;    /* the stack phase it is in now (progress), or NULL */
	struct strv waits;    /* "mesh.link: waits for node2 mesh.public_key" */
	struct strv notes;    /* the renders' notes ("ceph.osd: /dev/sda becomes an OSD") */
	bool uploaded;        /* the agent binary was copied this time */
	int64_t started_ms, duration_ms;
	/* the driver's own, between phases */
	struct remote_conn *conn;
	struct agent_session *session;
	json_t *pending;      /* this phase's resources */
	json_t *exports;      /* this phase's exports: {name: value} */
};

struct plan_run {
	const struct cluster *cluster;
	enum plan_mode mode;
	int64_t id;                 /* state run id, 0 without a state store */
	size_t n;
	struct node_run *nodes;     /* the selected nodes, spec order */
	int64_t duration_ms;
	int bastion_connections;
	char *phases[64];           /* the stack phases run, in order ("base.prepare") */
	size_t nphases;
};

struct plan_opts {
	enum plan_mode mode;
	const char *limit;          /* --limit pattern, NULL = every node */
	int serial;                 /* 0 = all (bounded by ssh.concurrency) */
	const char *agent_path;     /* the local kiln-agent to run on nodes */
	struct state *state;        /* may be NULL */
	const struct strv *rotate;  /* nodes whose keys this run makes anew (kiln mesh rotate) */
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

/*
 * What a run renders with from the state: the last facts of every node in
 * want (NULL = every node) into facts[i] (owned by the caller; NULL when
 * none), and every export of a node still in the spec into ex.  forget:
 * drop the exports of nodes that left the spec (apply does; an address
 * becomes free).  Used by plan_execute and `kiln validate`.
 */
struct exports;
int plan_state_load(struct state *st, const struct cluster *c, const bool *want,
		    json_t **facts, struct exports *ex, bool forget, struct kerr *e);
/* The exports half of plan_state_load alone (kiln mesh names peers by key). */
int plan_exports_load(struct state *st, const struct cluster *c, struct exports *ex, bool forget,
		      struct kerr *e);
/* The run as JSON (for -o json and the API). */
json_t *plan_run_to_json(const struct plan_run *run);

#endif
