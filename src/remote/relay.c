/*
 * remote: the bastion relay.  One TCP+SSH connection per bastion; node
 * sessions reach their node over a direct-tcpip channel on it.
 *
 * libssh sessions are not thread-safe, so one thread per bastion owns the
 * bastion session.  Worker threads queue open requests and wake it through
 * an eventfd; it opens the channel (non-blocking), then pumps bytes between
 * the channel and its end of a socketpair whose other end the worker's
 * node session uses as its socket (SSH_OPTIONS_FD).  Buffers are bounded
 * per channel and direction; a full buffer stops reading that side, so
 * SSH window flow control pushes back on the sender.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/callbacks.h>

#include "remote/remote_int.h"

#define RELAY_BUF (64 * 1024)
#define RELAY_IDLE_MS 1000

struct fwd_req {
	char *host;
	int port;
	int sock;            /* relay's end of the socketpair */
	bool done, abandoned;
	int rc;
	char err[512];
	struct fwd_req *next;
};

struct relay_chan {
	ssh_channel ch;
	int sock;
	struct fwd_req *req;     /* non-NULL while opening */
	struct ssh_channel_callbacks_struct cb;   /* activity notifications */
	char *up, *down;         /* socket -> channel, channel -> socket */
	size_t up_len, down_len;
	bool local_eof, remote_eof, down_shut;
};

struct relay {
	struct remote *r;
	char *user, *host;
	int port;
	char *label;             /* "bastion host:port" */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int wake_fd;
	ssh_session s;
	ssh_event ev;            /* processes bastion input when no channel reads it */
	int fd, keep;            /* the bastion socket, see ssh_session_close() */
	pthread_t thread;
	bool thread_started, connecting, connected, dead, stop;
	bool activity;           /* a channel got data, EOF, close or window */
	char dead_msg[1100];
	int dead_code;
	struct fwd_req *queue;   /* LIFO is fine: each request stands alone */
	/* Owned by the relay thread: */
	struct relay_chan **chans;
	size_t nchans, achans;
};

/* Relays are keyed by user@host:port and live until remote_free. */
struct relay *relay_get(struct remote *r, const char *user, const char *host, int port)
{
	struct relay *rl = NULL;
	char *hp;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->nrelays; i++) {
		rl = r->relays[i];
		if (rl->port == port && !strcmp(rl->host, host) && !strcmp(rl->user, user))
			goto out;
	}
	rl = xcalloc(1, sizeof(*rl));
	rl->r = r;
	rl->user = xstrdup(user);
	rl->host = xstrdup(host);
	rl->port = port;
	hp = hostport(host, port);
	rl->label = xasprintf("bastion %s", hp);
	free(hp);
	rl->wake_fd = rl->fd = rl->keep = -1;
	pthread_mutex_init(&rl->lock, NULL);
	pthread_cond_init(&rl->cond, NULL);
	r->relays = xgrow(r->relays, r->nrelays + 1, &r->arelays, sizeof(*r->relays));
	r->relays[r->nrelays++] = rl;
out:
	pthread_mutex_unlock(&r->lock);
	return rl;
}

static void req_free(struct fwd_req *q)
{
	if (!q)
		return;
	if (q->sock >= 0)
		close(q->sock);
	free(q->host);
	free(q);
}

/* Hand a result back to the waiting worker (or free it if it gave up). */
static void req_complete(struct relay *rl, struct fwd_req *q, int rc, const char *msg)
{
	pthread_mutex_lock(&rl->lock);
	q->rc = rc;
	if (msg)
		snprintf(q->err, sizeof(q->err), "%s", msg);
	q->done = true;
	if (q->abandoned) {
		req_free(q);
	} else {
		pthread_cond_broadcast(&rl->cond);
	}
	pthread_mutex_unlock(&rl->lock);
}

/*
 * Channel callbacks only note that something arrived: libssh may process
 * a packet for one channel while another is being read, and the relay must
 * then not sleep.  Data stays in the channel buffer (we consume nothing).
 */
static int on_data(ssh_session s, ssh_channel ch, void *data, uint32_t len,
		   int is_stderr, void *arg)
{
	((struct relay *)arg)->activity = true;
	return 0;
}

static void on_event(ssh_session s, ssh_channel ch, void *arg)
{
	((struct relay *)arg)->activity = true;
}

static int on_window(ssh_session s, ssh_channel ch, uint32_t bytes, void *arg)
{
	((struct relay *)arg)->activity = true;
	return 0;
}

static void chan_free(struct relay_chan *rc)
{
	if (!rc)
		return;
	if (rc->ch) {
		ssh_remove_channel_callbacks(rc->ch, &rc->cb);
		if (ssh_channel_is_open(rc->ch))
			ssh_channel_close(rc->ch);
		ssh_channel_free(rc->ch);
	}
	if (rc->sock >= 0)
		close(rc->sock);
	free(rc->up);
	free(rc->down);
	free(rc);
}

/* Mark the relay dead with reason msg; fail queued and opening requests. */
static void relay_die(struct relay *rl, int code, const char *msg)
{
	struct fwd_req *q;

	pthread_mutex_lock(&rl->lock);
	if (!rl->dead) {
		rl->dead = true;
		rl->dead_code = code;
		snprintf(rl->dead_msg, sizeof(rl->dead_msg), "ssh: %s: %s", rl->label, msg);
	}
	q = rl->queue;
	rl->queue = NULL;
	pthread_mutex_unlock(&rl->lock);
	while (q) {
		struct fwd_req *next = q->next;

		req_complete(rl, q, code, rl->dead_msg);
		q = next;
	}
	for (size_t i = 0; i < rl->nchans; i++) {
		struct relay_chan *c = rl->chans[i];

		if (c->req)
			req_complete(rl, c->req, code, rl->dead_msg);
		c->req = NULL;
		chan_free(c);
	}
	rl->nchans = 0;
}

/* Start channels for newly queued requests. */
static void relay_take_queue(struct relay *rl)
{
	struct fwd_req *q;
	uint64_t v;

	if (read(rl->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&rl->lock);
	q = rl->queue;
	rl->queue = NULL;
	pthread_mutex_unlock(&rl->lock);
	while (q) {
		struct fwd_req *next = q->next;
		struct relay_chan *c = xcalloc(1, sizeof(*c));

		q->next = NULL;
		c->req = q;
		c->sock = q->sock;
		q->sock = -1;
		c->ch = ssh_channel_new(rl->s);
		c->cb = (struct ssh_channel_callbacks_struct){
			.userdata = rl,
			.channel_data_function = on_data,
			.channel_eof_function = on_event,
			.channel_close_function = on_event,
			.channel_write_wontblock_function = on_window,
		};
		ssh_callbacks_init(&c->cb);
		if (c->ch && ssh_add_channel_callbacks(c->ch, &c->cb) != SSH_OK) {
			ssh_channel_free(c->ch);
			c->ch = NULL;
		}
		if (!c->ch) {
			req_complete(rl, q, -EIO, "cannot make a channel on the bastion");
			c->req = NULL;
			chan_free(c);
		} else {
			rl->chans = xgrow(rl->chans, rl->nchans + 1, &rl->achans,
					  sizeof(*rl->chans));
			rl->chans[rl->nchans++] = c;
		}
		q = next;
	}
}

/* Has the bastion session broken?  (Then relay_die, not EOF, ends channels.) */
static bool session_dead(ssh_session s)
{
	return (ssh_get_status(s) & (SSH_CLOSED | SSH_CLOSED_ERROR)) || !ssh_is_connected(s);
}

/* Drive an opening channel; returns false when it must be dropped. */
static bool chan_step_open(struct relay *rl, struct relay_chan *c)
{
	struct fwd_req *q = c->req;
	int rc = ssh_channel_open_forward(c->ch, q->host, q->port, "127.0.0.1", 0);
	char *hp, *msg;

	if (rc == SSH_AGAIN || (rc == SSH_ERROR && session_dead(rl->s)))
		return true;     /* relay_die answers it */
	if (rc == SSH_OK) {
		c->up = xmalloc(RELAY_BUF);
		c->down = xmalloc(RELAY_BUF);
		c->req = NULL;
		req_complete(rl, q, 0, NULL);
		return true;
	}
	hp = hostport(q->host, q->port);
	msg = xasprintf("ssh: connect to %s via %s: %s", hp, rl->label,
			ssh_get_error(rl->s));
	c->req = NULL;
	req_complete(rl, q, strstr(msg, "efused") ? -ECONNREFUSED : -EHOSTUNREACH, msg);
	free(msg);
	free(hp);
	return false;
}

/* Move bytes both ways on an open channel; returns false when it is finished. */
static bool chan_step_data(struct relay *rl, struct relay_chan *c)
{
	ssize_t n;

	/* channel -> down buffer */
	while (!c->remote_eof && c->down_len < RELAY_BUF) {
		int m = ssh_channel_read_nonblocking(c->ch, c->down + c->down_len,
						     (uint32_t)(RELAY_BUF - c->down_len), 0);
		if (m == SSH_EOF || m < 0 ||
		    (m == 0 && (ssh_channel_is_eof(c->ch) || ssh_channel_is_closed(c->ch)))) {
			c->remote_eof = true;
			break;
		}
		if (m == 0)
			break;
		c->down_len += (size_t)m;
	}
	/* A session failure shows up as a channel error: do not pass it on
	 * as a clean EOF; the caller notices and fails every node with the
	 * bastion's reason. */
	if (session_dead(rl->s))
		return true;
	/* down buffer -> socket */
	if (c->down_len) {
		n = send(c->sock, c->down, c->down_len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			memmove(c->down, c->down + n, c->down_len - (size_t)n);
			c->down_len -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			return false;     /* the node session is gone */
		}
	}
	if (c->remote_eof && !c->down_len && !c->down_shut) {
		shutdown(c->sock, SHUT_WR);
		c->down_shut = true;
	}
	/* socket -> up buffer */
	if (!c->local_eof && c->up_len < RELAY_BUF) {
		n = recv(c->sock, c->up + c->up_len, RELAY_BUF - c->up_len, MSG_DONTWAIT);
		if (n == 0)
			c->local_eof = true;
		else if (n > 0)
			c->up_len += (size_t)n;
		else if (errno != EAGAIN && errno != EINTR)
			return false;
	}
	/* up buffer -> channel, within the peer's window */
	if (c->up_len && !ssh_channel_is_closed(c->ch)) {
		uint32_t w = ssh_channel_window_size(c->ch);
		size_t len = c->up_len < w ? c->up_len : w;

		if (len) {
			int m = ssh_channel_write(c->ch, c->up, (uint32_t)len);

			if (m < 0)
				return false;
			memmove(c->up, c->up + m, c->up_len - (size_t)m);
			c->up_len -= (size_t)m;
		}
	} else if (ssh_channel_is_closed(c->ch)) {
		c->up_len = 0;
	}
	/* The node session closes its socket whole: then we are done. */
	if (c->local_eof && !c->up_len)
		return false;
	return true;
}

/*
 * The relay thread: the only user of the bastion session.  Each round
 * takes new requests, steps every channel, then sleeps in poll() until a
 * socket, the bastion or a wake-up needs it.
 */
static void *relay_main(void *arg)
{
	struct relay *rl = arg;
	struct pollfd *pfd = NULL;
	size_t apfd = 0;

	for (;;) {
		size_t i, np;
		int timeout = RELAY_IDLE_MS, flags;
		bool stop;

		pthread_mutex_lock(&rl->lock);
		stop = rl->stop;
		pthread_mutex_unlock(&rl->lock);
		if (stop)
			break;
		rl->activity = false;
		relay_take_queue(rl);

		for (i = 0; i < rl->nchans;) {
			struct relay_chan *c = rl->chans[i];
			bool keep = c->req ? chan_step_open(rl, c) : chan_step_data(rl, c);

			if (!keep) {
				chan_free(c);
				rl->chans[i] = rl->chans[--rl->nchans];
				continue;
			}
			i++;
		}
		if (session_dead(rl->s)) {
			char *why = xasprintf("connection lost: %s", ssh_get_error(rl->s));

			relay_die(rl, -EIO, why);
			free(why);
			break;
		}

		pfd = xgrow(pfd, rl->nchans + 2, &apfd, sizeof(*pfd));
		pfd[0] = (struct pollfd){ .fd = rl->wake_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = ssh_get_fd(rl->s), .events = POLLIN };
		flags = ssh_get_poll_flags(rl->s);
		if (flags & SSH_WRITE_PENDING) {
			ssh_blocking_flush(rl->s, 0);
			if (ssh_get_poll_flags(rl->s) & SSH_WRITE_PENDING)
				pfd[1].events |= POLLOUT;
		}
		if ((flags & SSH_READ_PENDING) || rl->activity)
			timeout = 0;
		np = 2;
		for (i = 0; i < rl->nchans; i++) {
			struct relay_chan *c = rl->chans[i];
			short ev = 0;

			if (c->req)
				continue;
			if (!c->local_eof && c->up_len < RELAY_BUF)
				ev |= POLLIN;
			if (c->down_len)
				ev |= POLLOUT;
			/* fd -1: poll ignores it (no busy loop on POLLHUP). */
			pfd[np++] = (struct pollfd){ .fd = ev ? c->sock : -1, .events = ev };
		}
		if (poll(pfd, np, timeout) < 0 && errno != EINTR) {
			relay_die(rl, -errno, "relay poll failed");
			break;
		}
		/* Let libssh read the bastion socket even with no channel open
		 * (a peer closing, keepalives); channel data stays buffered. */
		if (pfd[1].revents && ssh_event_dopoll(rl->ev, 0) == SSH_ERROR) {
			char *why = xasprintf("connection lost: %s", ssh_get_error(rl->s));

			relay_die(rl, -EIO, why);
			free(why);
			break;
		}
	}
	free(pfd);
	return NULL;
}

/* Connect and authenticate the bastion session, then start its thread.  Called with rl->lock NOT held. */
static int relay_connect(struct relay *rl, struct kerr *e)
{
	struct remote *r = rl->r;
	int timeout = r->c->ssh.connect_timeout_s > 0 ? r->c->ssh.connect_timeout_s : 10;
	ssh_session s = NULL;
	int fd, keep, rc;

	rc = tcp_connect(rl->host, rl->port, timeout, &fd, e);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&r->lock);
	r->bastion_conns++;
	pthread_mutex_unlock(&r->lock);
	rc = ssh_session_open(r, rl->label, rl->host, rl->port, rl->user, fd, &s, &keep, e);
	if (rc < 0)
		return rc;
	rl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rl->wake_fd < 0) {
		rc = kerr_set(e, -errno, "ssh: %s: eventfd: %s", rl->label, strerror(errno));
		goto fail;
	}
	rl->ev = ssh_event_new();
	if (!rl->ev || ssh_event_add_session(rl->ev, s) != SSH_OK) {
		rc = kerr_set(e, -ENOMEM, "ssh: %s: cannot make an event loop", rl->label);
		goto fail;
	}
	ssh_set_blocking(s, 0);
	rl->s = s;
	rl->fd = fd;
	rl->keep = keep;
	rc = -pthread_create(&rl->thread, NULL, relay_main, rl);
	if (rc < 0) {
		rl->s = NULL;
		rl->fd = rl->keep = -1;
		kerr_set(e, rc, "ssh: %s: cannot start relay thread", rl->label);
		goto fail;
	}
	rl->thread_started = true;
	return 0;
fail:
	if (rl->ev) {
		ssh_event_remove_session(rl->ev, s);
		ssh_event_free(rl->ev);
		rl->ev = NULL;
	}
	ssh_session_close(s, fd, keep);
	return rc;
}

/*
 * Worker side: the first caller connects the bastion (others wait), then
 * each caller queues a request and waits for the relay's answer.  On a
 * timeout the request is abandoned and the relay frees it.
 */
int relay_open(struct relay *rl, const char *host, int port, int *fd, struct kerr *e)
{
	int timeout = rl->r->c->ssh.connect_timeout_s > 0 ? rl->r->c->ssh.connect_timeout_s : 10;
	struct fwd_req *q = NULL;
	struct timespec ts;
	int sv[2], rc = 0;
	uint64_t one = 1;

	*fd = -1;
	pthread_mutex_lock(&rl->lock);
	while (rl->connecting)
		pthread_cond_wait(&rl->cond, &rl->lock);
	if (!rl->connected && !rl->dead) {
		struct kerr ce = { 0 };

		rl->connecting = true;
		pthread_mutex_unlock(&rl->lock);
		rc = relay_connect(rl, &ce);
		pthread_mutex_lock(&rl->lock);
		rl->connecting = false;
		if (rc < 0) {
			const char *m = str_starts(ce.msg, "ssh: ") ? ce.msg + 5 : ce.msg;

			rl->dead = true;
			rl->dead_code = rc;
			/* Name the bastion once, whoever wrote the message. */
			if (str_starts(m, rl->label))
				snprintf(rl->dead_msg, sizeof(rl->dead_msg), "ssh: %s", m);
			else
				snprintf(rl->dead_msg, sizeof(rl->dead_msg), "ssh: %s: %s",
					 rl->label, m);
		} else {
			rl->connected = true;
		}
		pthread_cond_broadcast(&rl->cond);
	}
	if (rl->dead) {
		rc = kerr_set(e, rl->dead_code, "%s", rl->dead_msg);
		goto out_unlock;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = kerr_set(e, -errno, "ssh: socketpair: %s", strerror(errno));
		goto out_unlock;
	}
	q = xcalloc(1, sizeof(*q));
	q->host = xstrdup(host);
	q->port = port;
	q->sock = sv[1];
	q->next = rl->queue;
	rl->queue = q;
	if (write(rl->wake_fd, &one, sizeof(one)) < 0) {
		/* Cannot happen with an eventfd below its limit; the idle poll catches it. */
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout;
	while (!q->done) {
		if (pthread_cond_timedwait(&rl->cond, &rl->lock, &ts) == ETIMEDOUT && !q->done) {
			char *hp = hostport(host, port);

			q->abandoned = true;   /* the relay frees it */
			rc = kerr_set(e, -ETIMEDOUT, "ssh: connect to %s via %s: timed out after %d s",
				      hp, rl->label, timeout);
			free(hp);
			close(sv[0]);
			goto out_unlock;
		}
	}
	rc = q->rc;
	if (rc < 0) {
		kerr_set(e, rc, "%s", q->err);
		close(sv[0]);
	} else {
		*fd = sv[0];
	}
	req_free(q);
out_unlock:
	pthread_mutex_unlock(&rl->lock);
	return rc;
}

bool relay_failed(struct relay *rl, struct kerr *e)
{
	bool dead;

	pthread_mutex_lock(&rl->lock);
	dead = rl->dead;
	if (dead)
		kerr_set(e, rl->dead_code, "%s", rl->dead_msg);
	pthread_mutex_unlock(&rl->lock);
	return dead;
}

void relay_free(struct relay *rl)
{
	uint64_t one = 1;

	if (!rl)
		return;
	if (rl->thread_started) {
		pthread_mutex_lock(&rl->lock);
		rl->stop = true;
		pthread_mutex_unlock(&rl->lock);
		if (write(rl->wake_fd, &one, sizeof(one)) < 0) {
			/* The idle poll timeout still ends the thread. */
		}
		pthread_join(rl->thread, NULL);
	}
	for (size_t i = 0; i < rl->nchans; i++) {
		if (rl->chans[i]->req)
			req_complete(rl, rl->chans[i]->req, -ECANCELED, "relay stopped");
		rl->chans[i]->req = NULL;
		chan_free(rl->chans[i]);
	}
	free(rl->chans);
	while (rl->queue) {
		struct fwd_req *q = rl->queue;

		rl->queue = q->next;
		req_free(q);
	}
	if (rl->ev) {
		ssh_event_remove_session(rl->ev, rl->s);
		ssh_event_free(rl->ev);
	}
	if (rl->s)
		ssh_session_close(rl->s, rl->fd, rl->keep);
	if (rl->wake_fd >= 0)
		close(rl->wake_fd);
	pthread_mutex_destroy(&rl->lock);
	pthread_cond_destroy(&rl->cond);
	free(rl->user);
	free(rl->host);
	free(rl->label);
	free(rl);
}
