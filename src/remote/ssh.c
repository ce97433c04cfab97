/* remote: SSH sessions to nodes (direct or through a bastion relay), exec. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remote/remote_int.h"

#define KEY_FILE_MAX (64 * 1024)
#define PUMP_CHUNK 32768
#define PUMP_READS 8              /* reads per stream per round, so rounds end */

static pthread_once_t ssh_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc;

/* libssh must be initialised once per process before any session. */
static void ssh_init_once(void)
{
	ssh_init_rc = ssh_init();
}

char *hostport(const char *host, int port)
{
	if (strchr(host, ':'))
		return xasprintf("[%s]:%d", host, port);
	return xasprintf("%s:%d", host, port);
}

int remote_new(const struct cluster *c, struct remote **out, struct kerr *e)
{
	struct remote *r;
	struct buf key = BUF_INIT;
	const char *dir;
	int rc;

	*out = NULL;
	pthread_once(&ssh_once, ssh_init_once);
	if (ssh_init_rc != SSH_OK)
		return kerr_set(e, -EIO, "ssh: cannot initialise libssh");
	if (!c->ssh.known_hosts)
		return kerr_set(e, -EINVAL, "ssh: no known_hosts file configured");

	r = xcalloc(1, sizeof(*r));
	r->c = c;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->kh_lock, NULL);
	pthread_mutex_init(&r->agent_lock, NULL);
	dir = getenv("KILN_AGENT_DIR");
	if (dir && *dir)
		r->agent_dir = xstrdup(dir);

	if (c->ssh.key) {
		ssh_key k = NULL;

		rc = file_read(c->ssh.key, &key, KEY_FILE_MAX);
		if (rc < 0) {
			kerr_set(e, rc, "ssh: cannot read key %s: %s", c->ssh.key,
				 strerror(-rc));
			goto fail;
		}
		if (ssh_pki_import_privkey_base64(key.s, NULL, NULL, NULL, &k) != SSH_OK) {
			rc = kerr_set(e, -EINVAL,
				      "ssh: key %s: not an unencrypted private key",
				      c->ssh.key);
			goto fail;
		}
		ssh_key_free(k);
		r->key_b64 = buf_detach(&key, NULL);
	}
	*out = r;
	return 0;
fail:
	buf_release(&key);
	remote_free(r);
	return rc;
}

void remote_free(struct remote *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nrelays; i++)
		relay_free(r->relays[i]);
	free(r->relays);
	if (r->key_b64) {
		explicit_bzero(r->key_b64, strlen(r->key_b64));
		free(r->key_b64);
	}
	free(r->agent_dir);
	free(r->agent_path);
	buf_release(&r->agent_bin);
	pthread_mutex_destroy(&r->agent_lock);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->kh_lock);
	free(r);
}

void remote_set_agent_dir(struct remote *r, const char *dir)
{
	free(r->agent_dir);
	r->agent_dir = dir ? xstrdup(dir) : NULL;
}

int remote_bastion_connections(const struct remote *r)
{
	int n;

	pthread_mutex_lock((pthread_mutex_t *)&r->lock);
	n = r->bastion_conns;
	pthread_mutex_unlock((pthread_mutex_t *)&r->lock);
	return n;
}

/* Wait for a non-blocking connect on fd to finish; 0 or -errno. */
static int connect_wait(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int64_t deadline = now_ms() + timeout_ms;
	int err = 0;
	socklen_t len = sizeof(err);

	for (;;) {
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

/*
 * Our own connect (not libssh's) so that refused / unreachable / timed out
 * are reported exactly, and so direct and bastion paths both end in an fd.
 */
int tcp_connect(const char *host, int port, int timeout_s, int *fd, struct kerr *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL, *ai;
	char portstr[16];
	char *hp = hostport(host, port);
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	int rc, s = -1, one = 1;

	*fd = -1;
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		rc = kerr_set(e, -EHOSTUNREACH, "ssh: connect to %s: %s", hp,
			      gai_strerror(rc));
		goto out;
	}
	rc = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		int64_t left = deadline - now_ms();

		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			   ai->ai_protocol);
		if (s < 0) {
			rc = -errno;
			continue;
		}
		if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0)
			rc = 0;
		else if (errno == EINPROGRESS)
			rc = connect_wait(s, (int)left);
		else
			rc = -errno;
		if (rc == 0)
			break;
		close(s);
		s = -1;
	}
	if (rc < 0) {
		if (rc == -ETIMEDOUT)
			kerr_set(e, rc, "ssh: connect to %s: timed out after %d s", hp,
				 timeout_s);
		else if (rc == -ECONNREFUSED)
			kerr_set(e, rc, "ssh: connect to %s: connection refused", hp);
		else
			kerr_set(e, rc, "ssh: connect to %s: %s", hp, strerror(-rc));
		goto out;
	}
	/* Back to blocking: libssh manages the socket's mode itself. */
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*fd = s;
out:
	if (res)
		freeaddrinfo(res);
	free(hp);
	return rc;
}

/*
 * Check the server's host key against known_hosts, recording it when the
 * policy allows.  Under kh_lock so that concurrent accept-new updates
 * never interleave with each other or with a reader.
 */
static int hostkey_verify(struct remote *r, ssh_session s, const char *label,
			  const char *host, struct kerr *e)
{
	const char *kh = r->c->ssh.known_hosts;
	enum ssh_known_hosts_e st;
	int rc = 0;

	pthread_mutex_lock(&r->kh_lock);
	st = ssh_session_is_known_server(s);
	switch (st) {
	case SSH_KNOWN_HOSTS_OK:
		break;
	case SSH_KNOWN_HOSTS_CHANGED:
	case SSH_KNOWN_HOSTS_OTHER:
		rc = kerr_set(e, -EPERM,
			      "ssh: host key for %s (%s) does not match known_hosts %s"
			      " \u2014 possible man-in-the-middle; remove the old key"
			      " if the node was reinstalled", label, host, kh);
		break;
	case SSH_KNOWN_HOSTS_UNKNOWN:
	case SSH_KNOWN_HOSTS_NOT_FOUND:
		if (r->c->ssh.hostkey != HOSTKEY_ACCEPT_NEW) {
			rc = kerr_set(e, -EPERM,
				      "ssh: host key for %s (%s) not in known_hosts %s"
				      " (host_key_checking: strict)", label, host, kh);
			break;
		}
		if (ssh_session_update_known_hosts(s) != SSH_OK)
			rc = kerr_set(e, -EIO, "ssh: cannot record host key for %s in %s: %s",
				      label, kh, ssh_get_error(s));
		break;
	default:
		rc = kerr_set(e, -EIO, "ssh: checking host key for %s against %s: %s",
			      label, kh, ssh_get_error(s));
		break;
	}
	pthread_mutex_unlock(&r->kh_lock);
	return rc;
}

/* Public-key authentication: the spec's key first, then ssh-agent. */
static int authenticate(struct remote *r, ssh_session s, const char *user,
			struct kerr *e)
{
	const char *sock = getenv("SSH_AUTH_SOCK");
	int rc = SSH_AUTH_DENIED;

	if (r->key_b64) {
		ssh_key k = NULL;

		if (ssh_pki_import_privkey_base64(r->key_b64, NULL, NULL, NULL, &k) != SSH_OK)
			return kerr_set(e, -EINVAL, "ssh: key %s: cannot import",
					r->c->ssh.key);
		rc = ssh_userauth_publickey(s, NULL, k);
		ssh_key_free(k);
		if (rc == SSH_AUTH_ERROR)
			return kerr_set(e, -EIO, "ssh: authentication as %s: %s", user,
					ssh_get_error(s));
	}
	if (rc != SSH_AUTH_SUCCESS && sock && *sock) {
		rc = ssh_userauth_agent(s, NULL);
		if (rc == SSH_AUTH_ERROR)
			return kerr_set(e, -EIO, "ssh: authentication as %s via ssh-agent: %s",
					user, ssh_get_error(s));
	}
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	if (!r->key_b64 && !(sock && *sock))
		return kerr_set(e, -EACCES, "ssh: authentication as %s failed"
				" (no key file and no ssh-agent)", user);
	return kerr_set(e, -EACCES, "ssh: authentication as %s failed", user);
}

/*
 * libssh 0.10 closes an SSH_OPTIONS_FD socket on some error paths but not
 * in ssh_disconnect()/ssh_free().  So we hold a dup (keep) and afterwards
 * close fd only if it still names the same socket (socket inodes are
 * unique): never a number that libssh closed and another thread reused.
 */
void ssh_session_close(ssh_session s, int fd, int keep)
{
	struct stat a, b;

	if (s) {
		ssh_disconnect(s);
		ssh_free(s);
	}
	if (keep < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd >= 0 && fstat(fd, &a) == 0 && fstat(keep, &b) == 0 &&
	    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
		close(fd);
	close(keep);
}

/*
 * One libssh session on an already connected fd, configured so that only
 * the spec decides: no ~/.ssh/config, no global known_hosts.
 */
int ssh_session_open(struct remote *r, const char *label, const char *host,
		     int port, const char *user, int fd, ssh_session *out,
		     int *keep, struct kerr *e)
{
	const struct ssh_conf *sc = &r->c->ssh;
	long timeout = sc->connect_timeout_s > 0 ? sc->connect_timeout_s : 10;
	unsigned int uport = (unsigned int)port;
	int no = 0, rc;
	int64_t t0 = now_ms();
	ssh_session s;

	*out = NULL;
	*keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (*keep < 0) {
		rc = -errno;
		close(fd);
		return kerr_set(e, rc, "ssh: dup: %s", strerror(-rc));
	}
	s = ssh_new();
	if (!s) {
		rc = kerr_set(e, -ENOMEM, "ssh: cannot create a session");
		goto fail;
	}
	if (ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_HOST, host) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_PORT, &uport) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_USER, user) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, sc->known_hosts) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_FD, &fd) < 0) {
		rc = kerr_set(e, -EINVAL, "ssh: %s: bad option: %s", label,
			      ssh_get_error(s));
		goto fail;
	}
	if (ssh_connect(s) != SSH_OK) {
		if (now_ms() - t0 >= timeout * 1000 - 100)
			rc = kerr_set(e, -ETIMEDOUT, "ssh: %s: timed out after %ld s",
				      label, timeout);
		else
			rc = kerr_set(e, -EIO, "ssh: %s: handshake failed: %s", label,
				      ssh_get_error(s));
		goto fail;
	}
	rc = hostkey_verify(r, s, label, host, e);
	if (rc < 0)
		goto fail;
	rc = authenticate(r, s, user, e);
	if (rc < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	ssh_session_close(s, fd, *keep);
	*keep = -1;
	return rc;
}

/* A node's socket comes from the bastion relay or a direct TCP connect. */
int remote_connect(struct remote *r, const struct node *n,
		   struct remote_conn **out, struct kerr *e)
{
	const struct cluster *c = r->c;
	const struct endpoint *b = node_bastion(c, n);
	const char *user = node_user(c, n);
	int port = node_port(c, n);
	struct remote_conn *conn;
	int fd = -1, rc;

	*out = NULL;
	conn = xcalloc(1, sizeof(*conn));
	conn->r = r;
	conn->name = xstrdup(n->name);
	conn->fd = conn->keep = -1;
	if (b) {
		/* docs/spec.md: a bastion without a user uses the node's user. */
		const char *buser = b->user ? b->user : user;

		conn->relay = relay_get(r, buser, b->host, b->port ? b->port : 22);
		rc = relay_open(conn->relay, n->address, port, &fd, e);
	} else {
		rc = tcp_connect(n->address, port, c->ssh.connect_timeout_s > 0 ?
				 c->ssh.connect_timeout_s : 10, &fd, e);
	}
	if (rc < 0)
		goto fail;
	rc = ssh_session_open(r, n->name, n->address, port, user, fd, &conn->s,
			      &conn->keep, e);
	if (rc == 0)
		conn->fd = fd;
	if (rc < 0) {
		if (conn->relay)
			relay_failed(conn->relay, e);
		goto fail;
	}
	*out = conn;
	return 0;
fail:
	remote_conn_free(conn);
	return rc;
}

void remote_conn_free(struct remote_conn *c)
{
	if (!c)
		return;
	if (c->s)
		ssh_session_close(c->s, c->fd, c->keep);
	free(c->name);
	free(c);
}

const char *remote_conn_name(const struct remote_conn *c)
{
	return c->name;
}

int64_t conn_command_timeout_ms(const struct remote_conn *c)
{
	int t = c->r->c->ssh.command_timeout_s;

	return (int64_t)(t > 0 ? t : 600) * 1000;
}

int conn_broken(struct remote_conn *c, struct kerr *e, const char *what)
{
	kerr_set(e, -EIO, "ssh: %s: %s", what, ssh_get_error(c->s));
	if (c->relay)
		relay_failed(c->relay, e);
	return e ? e->code : -EIO;
}

int chan_exec(struct remote_conn *c, const char *cmd, ssh_channel *out, struct kerr *e)
{
	ssh_channel ch = ssh_channel_new(c->s);

	*out = NULL;
	if (!ch)
		return conn_broken(c, e, "cannot make a channel");
	if (ssh_channel_open_session(ch) != SSH_OK) {
		ssh_channel_free(ch);
		return conn_broken(c, e, "cannot open a session channel");
	}
	if (ssh_channel_request_exec(ch, cmd) != SSH_OK) {
		ssh_channel_close(ch);
		ssh_channel_free(ch);
		return conn_broken(c, e, "exec request failed");
	}
	*out = ch;
	return 0;
}

/* Append up to n bytes to b, dropping what exceeds its cap; -E2BIG if strict and dropped. */
static int add_capped(struct buf *b, const char *d, size_t n, bool strict)
{
	size_t room;

	if (!b)
		return 0;
	room = b->cap ? (b->cap > b->len ? b->cap - b->len : 0) : n;
	if (n > room) {
		if (strict)
			return -E2BIG;
		n = room;
	}
	return n ? buf_add(b, d, n) : 0;
}

/*
 * Interleave writing and reading on one channel so that neither side can
 * block the other (a command that writes while we still feed it stdin).
 * Writes stay within the peer's window, so ssh_channel_write never waits.
 * Each round reads a bounded amount and starts with the deadline check
 * (p->deadline_ms is re-read every round: the caller's check may move it).
 */
int chan_pump(struct remote_conn *c, struct pump *p)
{
	char tmp[PUMP_CHUNK];
	bool eof_out = false, eof_err = false;

	for (;;) {
		bool progress = false;
		int n, rc;

		/* Every round, not only idle ones: a peer that never stops
		 * talking must not keep us past the deadline. */
		if (now_ms() >= p->deadline_ms)
			return -ETIMEDOUT;
		if (p->in_off < p->in_len) {
			uint32_t w = ssh_channel_window_size(p->ch);
			size_t len = p->in_len - p->in_off;

			if (len > w)
				len = w;
			if (len > PUMP_CHUNK)
				len = PUMP_CHUNK;
			if (len > 0) {
				n = ssh_channel_write(p->ch, p->in + p->in_off, (uint32_t)len);
				if (n < 0)
					return -EIO;
				p->in_off += (size_t)n;
				progress = n > 0;
			}
		} else if (p->send_eof && !p->eof_sent) {
			if (ssh_channel_send_eof(p->ch) != SSH_OK)
				return -EIO;
			p->eof_sent = true;
		}
		for (int is_err = 0; is_err <= 1; is_err++) {
			bool *eof = is_err ? &eof_err : &eof_out;

			for (int k = 0; k < PUMP_READS && !*eof; k++) {
				n = ssh_channel_read_nonblocking(p->ch, tmp, sizeof(tmp), is_err);
				if (n == SSH_EOF) {
					*eof = true;
					break;
				}
				if (n < 0) {
					if (ssh_channel_is_closed(p->ch) || ssh_channel_is_eof(p->ch)) {
						*eof = true;
						break;
					}
					return -EIO;
				}
				if (n == 0)
					break;
				progress = true;
				if (now_ms() >= p->deadline_ms)
					return -ETIMEDOUT;
				rc = add_capped(is_err ? p->err : p->out, tmp, (size_t)n,
						!is_err && p->out_strict);
				if (rc < 0)
					return rc;
				if (!is_err && p->check) {
					rc = p->check(p->arg);
					if (rc != 0)
						return rc > 0 ? 0 : rc;
				}
			}
		}
		if (eof_out && eof_err)
			return 1;
		if (!ssh_is_connected(c->s))
			return -EIO;
		if (!progress) {
			struct pollfd pf = { .fd = ssh_get_fd(c->s), .events = POLLIN };
			int64_t left = p->deadline_ms - now_ms();
			int flags = ssh_get_poll_flags(c->s);

			if (left <= 0)
				return -ETIMEDOUT;
			if (flags & SSH_READ_PENDING)
				continue;
			if (flags & SSH_WRITE_PENDING)
				pf.events |= POLLOUT;
			/* A short cap: libssh may have buffered data on the way. */
			if (poll(&pf, 1, left > 200 ? 200 : (int)left) < 0 && errno != EINTR)
				return -errno;
		}
	}
}

/* One command on its own channel; the session stays usable after a timeout. */
int remote_exec(struct remote_conn *c, const char *cmd, const void *in, size_t in_len,
		struct buf *out, struct buf *err, int *exit_status, struct kerr *e)
{
	struct pump p = {
		.in = in, .in_len = in ? in_len : 0, .send_eof = true,
		.out = out, .err = err,
		.deadline_ms = now_ms() + conn_command_timeout_ms(c),
	};
	int rc;

	*exit_status = -1;
	rc = chan_exec(c, cmd, &p.ch, e);
	if (rc < 0)
		return rc;
	rc = chan_pump(c, &p);
	if (rc == -ETIMEDOUT) {
		kerr_set(e, rc, "ssh: command timed out after %lld s",
			 (long long)(conn_command_timeout_ms(c) / 1000));
		goto out;
	}
	if (rc < 0) {
		conn_broken(c, e, "command failed");
		goto out;
	}
	*exit_status = ssh_channel_get_exit_status(p.ch);
	rc = 0;
out:
	ssh_channel_close(p.ch);
	ssh_channel_free(p.ch);
	return rc;
}
