/*
 * state — kiln's state store: one SQLite database (WAL) on the control
 * host holding the last facts per node and every run with its per-node
 * results, timings and errors.
 *
 * Contract:
 *  - state_open() creates the file and schema if needed; state_close()
 *    accepts NULL.  A struct state may be used from several threads: calls
 *    are serialised by an internal mutex.
 *  - Writes are committed before the call returns (a run row exists on disk
 *    before any node is touched; each node's result lands as it finishes), so
 *    a killed kiln leaves a run marked "running" whose pid is gone, which
 *    readers report as "interrupted".
 *  - JSON handed in is borrowed; JSON handed out is owned by the caller.
 */
#ifndef KILN_STATE_H
#define KILN_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

struct state;

int state_open(const char *path, struct state **out, struct kerr *e);
void state_close(struct state *st);

int state_facts_put(struct state *st, const char *cluster, const char *node,
		    const json_t *facts, struct kerr *e);
/* *out is NULL when no facts are stored for the node. */
int state_facts_get(struct state *st, const char *cluster, const char *node,
		    json_t **out, int64_t *collected_ms, struct kerr *e);

/*
 * Every node's stored facts: fn(node, json text, its length, arg) per row,
 * in no particular order.  A large table is read in shares by node name, one
 * reader (a read-only connection and a thread) per core, so fn is called
 * from several threads at once, though never for the same node; a non-zero
 * return stops its reader and is returned.  The text is valid only during
 * the call.  With keys (not NULL;
 * may be empty) the text is an object of just those top-level keys (an
 * absent one is null), cut out by SQLite: far less to parse than the whole
 * record; but one record that is not valid JSON fails the whole walk
 * (-EBADMSG; read them whole, keys NULL, to skip it).
 */
int state_facts_each(struct state *st, const char *cluster, const struct strv *keys,
		     int (*fn)(const char *node, const char *json, size_t len, void *arg),
		     void *arg, struct kerr *e);

/* Start a run ("apply", "check", "facts"); returns its id in *id. */
int state_run_begin(struct state *st, const char *cluster, const char *kind,
		    const char *spec_path, int nnodes, int64_t *id, struct kerr *e);
/*
 * Record one node's outcome.  status: "ok", "changed", "failed",
 * "unreachable", "skipped".  results (array, may be NULL) is stored as is.
 */
int state_run_node(struct state *st, int64_t run, const char *node, const char *status,
		   int changed, int failed, int64_t duration_ms, const char *error,
		   const json_t *results, struct kerr *e);
/* Finish a run: status "ok" or "failed". */
int state_run_end(struct state *st, int64_t run, const char *status, int changed,
		  int failed, struct kerr *e);

/* The last `limit` runs, newest first, as a JSON array of run objects. */
int state_runs_list(struct state *st, int limit, json_t **out, struct kerr *e);
/* One run with its nodes (and their results); -ENOENT if there is none. */
int state_run_show(struct state *st, int64_t id, json_t **out, struct kerr *e);

/*
 * Exports (stacks.h): named values per (node, stack, name) that later
 * phases and runs render with.  A secret is recorded as existing, its value
 * never written (value is ignored).
 */
int state_export_put(struct state *st, const char *cluster, const char *node,
		     const char *stack, const char *name, const char *value, bool secret,
		     struct kerr *e);
/* Forget a node's exports (it left the spec). */
int state_exports_drop_node(struct state *st, const char *cluster, const char *node,
			    struct kerr *e);
/* One export row as state_exports_each hands it over (valid during the call). */
struct state_export {
	const char *node, *stack, *name;
	const char *value;       /* NULL for a secret: never stored */
	bool secret;
	int64_t updated_ms;
};
/*
 * Every export of the cluster, sorted by node, stack, name: fn(x, arg) per
 * row; a non-zero return stops and is returned.  The state is locked during
 * the walk: fn must not call back into it.
 */
int state_exports_each(struct state *st, const char *cluster,
		       int (*fn)(const struct state_export *x, void *arg), void *arg,
		       struct kerr *e);
/* The same as JSON: [{node, stack, name, value?, secret, updated_ms}]. */
int state_exports_list(struct state *st, const char *cluster, json_t **out, struct kerr *e);

#endif
