/*
 * remote — the SSH transport to nodes and the kiln-agent client.
 *
 * Contract:
 *  - One struct remote per run.  It holds the settings (borrowed from the
 *    cluster, which must outlive it), the private key, the known_hosts
 *    lock and one relay per bastion.  remote_connect() may be called from
 *    many threads at once; everything else on a remote_conn or an
 *    agent_session is for one thread at a time.
 *  - Every node behind a given bastion is reached over ONE TCP+SSH
 *    connection to that bastion: a relay thread owns the bastion session,
 *    opens a direct-tcpip channel per node and pumps it through a
 *    socketpair that the node's own SSH session uses as its socket.
 *    A bastion that cannot be reached (or drops) fails all its nodes with
 *    a message naming the bastion; other nodes are unaffected.
 *  - Host keys are checked against the spec's known_hosts file only
 *    (never ~/.ssh/known_hosts or ~/.ssh/config).  strict: unknown or
 *    changed keys are refused; accept-new: unknown keys are recorded
 *    (serialised by a mutex), changed keys are refused.
 *  - Errors are one line in e->msg ("ssh: ...") with a negative errno:
 *    -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EACCES (authentication),
 *    -EPERM (host key), -EIO (session broke), -EPROTO (agent protocol),
 *    -EMSGSIZE (the agent's replies passed their total cap).
 *  - What a node sends is bounded: a reply line at 16 MiB, all reply
 *    lines of one agent session (one node in one run) at 64 MiB.
 *  - All calls block (connect_timeout / command_timeout bound them, also
 *    against a peer that never stops sending); nothing here prints.
 *    Free every remote_conn and agent_session before remote_free().
 */
#ifndef KILN_REMOTE_H
#define KILN_REMOTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "spec/spec.h"
#include "util/util.h"

struct remote;
struct remote_conn;
struct agent_session;

/*
 * Make the per-run context for cluster c (borrowed).  Reads the private
 * key file now (so a bad key file is reported once).  The agent cache
 * directory on nodes defaults to $KILN_AGENT_DIR from kiln's environment
 * if set, else "$HOME/.cache/kiln" (expanded on the node).
 */
int remote_new(const struct cluster *c, struct remote **out, struct kerr *e);
/* Stops the bastion relays and closes their connections.  NULL is fine. */
void remote_free(struct remote *r);
/* Override the agent cache directory on nodes (absolute path; NULL = default). */
void remote_set_agent_dir(struct remote *r, const char *dir);

/*
 * Connect and authenticate to n, through its bastion if any.  Thread-safe.
 * On error *out is NULL and e says why, e.g.
 *   "ssh: connect to 10.0.0.3:22: connection refused"
 *   "ssh: host key for node2 (10.0.0.3) does not match known_hosts FILE — ..."
 *   "ssh: authentication as root failed"
 */
int remote_connect(struct remote *r, const struct node *n,
		   struct remote_conn **out, struct kerr *e);
void remote_conn_free(struct remote_conn *c);
/* The node name this connection was made for. */
const char *remote_conn_name(const struct remote_conn *c);

/*
 * Run cmd (through the login shell), feed in (may be NULL) then EOF,
 * collect stdout into out and stderr into err (either may be NULL to
 * discard; output beyond a buffer's cap is dropped, not an error), and
 * store the exit status (-1 when the command died of a signal) in
 * *exit_status.  A non-zero exit status is not an error here.
 * command_timeout bounds the whole command, output or not: then the
 * channel is closed and -ETIMEDOUT returned ("... timed out after N s").
 */
int remote_exec(struct remote_conn *c, const char *cmd, const void *in, size_t in_len,
		struct buf *out, struct buf *err, int *exit_status, struct kerr *e);

/* TCP connections opened to bastions so far (tests: one per bastion). */
int remote_bastion_connections(const struct remote *r);

/*
 * Start kiln-agent on the node (docs/agent-protocol.md "Installation"):
 * exec the cached binary DIR/kiln-agent-<16 hex of sha256>; if missing
 * (bootstrap exits 97) upload agent_path to a temporary name, check its
 * sha256sum on the node against ours, sync it, rename it into place and
 * sync the directory, then exec.  A cached copy that does not say a valid
 * hello (e.g. truncated by a crash) is removed and uploaded once, then
 * tried again.  Reads and checks the hello line (within command_timeout).
 * agent_path is read and hashed once per struct remote (the first path
 * given; thread-safe), so it must not change during a run.  The session
 * borrows c: close it before freeing c.
 */
int agent_open(struct remote_conn *c, const char *agent_path,
	       struct agent_session **out, struct kerr *e);
/*
 * Send one request line; call on_msg for each reply line until the
 * terminal reply (op "facts", "done" or "error"), which is also passed to
 * on_msg as received (an error reply's "message" unchanged; it is not an
 * error of agent_request).  on_msg returning non-zero aborts with that
 * value and a message in e ("agent: reply rejected by the caller ..."); the
 * session is then unusable: close it.
 * command_timeout is an idle limit here: the deadline starts when the
 * request is sent and moves forward on each "result" line that on_msg
 * accepts, so a long apply that keeps reporting results is not cut off.
 * Other lines do not move it; -ETIMEDOUT ("agent: request timed out after
 * N s without a result").  Every reply byte of the session counts against
 * its 64 MiB: past it, -EMSGSIZE ("agent: replies exceed 64 MiB in this
 * run"), and the session is unusable.
 */
int agent_request(struct agent_session *s, const json_t *req,
		  int (*on_msg)(const json_t *msg, void *arg), void *arg,
		  struct kerr *e);
/* Send {"op":"exit"}, wait briefly for the agent to finish, close.  NULL ok. */
void agent_close(struct agent_session *s);
/* Did agent_open upload the binary (false = the cached copy was used)? */
bool agent_was_uploaded(const struct agent_session *s);
/* The hello line's "version" (owned by s). */
const char *agent_version(const struct agent_session *s);

#endif
