/*
 * remote internals shared by ssh.c, relay.c and agent.c.
 */
#ifndef KILN_REMOTE_INT_H
#define KILN_REMOTE_INT_H

#include <libssh/libssh.h>
#include <pthread.h>

#include "remote/remote.h"

struct relay;

struct remote {
	const struct cluster *c;
	char *key_b64;            /* private key file text; NULL = ssh-agent only */
	char *agent_dir;          /* NULL = "$HOME/.cache/kiln" on the node */
	pthread_mutex_t lock;     /* relays[] and bastion_conns */
	pthread_mutex_t kh_lock;  /* known_hosts check + update */
	struct relay **relays;
	size_t nrelays, arelays;
	int bastion_conns;
	/* The local agent binary, read and hashed once per run (agent.c). */
	pthread_mutex_t agent_lock;
	char *agent_path;         /* the path agent_bin/agent_hash belong to */
	struct buf agent_bin;
	char agent_hash[65];      /* sha256, hex */
};

struct remote_conn {
	struct remote *r;
	ssh_session s;
	int fd, keep;             /* see ssh_session_close() */
	char *name;
	struct relay *relay;      /* borrowed; NULL = direct */
};

/* "host:port", or "[host]:port" for IPv6 literals.  Caller frees. */
char *hostport(const char *host, int port);

/*
 * Open a TCP connection to host:port within timeout_s; *fd is CLOEXEC and
 * blocking.  Errors: "connect to H:P: connection refused" etc.
 */
int tcp_connect(const char *host, int port, int timeout_s, int *fd, struct kerr *e);

/*
 * Run the SSH handshake on fd, verify the host key for host:port (label
 * names it in messages) and authenticate as user.  *out is a connected,
 * authenticated session and *keep a dup of fd; release both with
 * ssh_session_close(*out, fd, *keep).  On error fd is closed.
 */
int ssh_session_open(struct remote *r, const char *label, const char *host,
		     int port, const char *user, int fd, ssh_session *out,
		     int *keep, struct kerr *e);
/* Disconnect and free s, and close its socket fd exactly once. */
void ssh_session_close(ssh_session s, int fd, int keep);

/* Find or make the relay for bastion b (user resolved by the caller). */
struct relay *relay_get(struct remote *r, const char *user, const char *host, int port);
/*
 * Ask the relay for a direct-tcpip channel to host:port; on success *fd is
 * the local end of a socketpair carrying it.  Connects the bastion on
 * first use.  Thread-safe.
 */
int relay_open(struct relay *rl, const char *host, int port, int *fd, struct kerr *e);
/* If the relay has died, copy its reason into e (keeping code) and return true. */
bool relay_failed(struct relay *rl, struct kerr *e);
void relay_free(struct relay *rl);

/*
 * Pump one exec channel: write in (then EOF when send_eof), read stdout
 * into out and stderr into err (capped; the rest dropped).  After new
 * stdout data, check(arg) is called when given: > 0 stops with 0, < 0
 * stops with that error.  Returns 1 when the remote side finished (EOF),
 * 0 when check stopped it, -ETIMEDOUT at deadline_ms (now_ms clock,
 * checked every round; check may move it forward), -EIO when the session
 * broke.
 */
struct pump {
	ssh_channel ch;
	const char *in;
	size_t in_len, in_off;
	bool send_eof, eof_sent;
	struct buf *out, *err;
	bool out_strict;          /* out overflowing its cap is -E2BIG, not dropped */
	int (*check)(void *arg);
	void *arg;
	int64_t deadline_ms;
};
int chan_pump(struct remote_conn *c, struct pump *p);
/* Open a session channel and exec cmd on it. */
int chan_exec(struct remote_conn *c, const char *cmd, ssh_channel *out, struct kerr *e);
/* The command_timeout of c's cluster, in ms. */
int64_t conn_command_timeout_ms(const struct remote_conn *c);
/* Fill e for a broken session on c: the bastion's reason if it died, else libssh's. */
int conn_broken(struct remote_conn *c, struct kerr *e, const char *what);

#endif
