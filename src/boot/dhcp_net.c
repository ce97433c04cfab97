/*
 * libevent glue for DHCP: the sockets, and the path by which a reply
 * leaves only once the lease it promises is on disk.  Owns descriptors,
 * the reply queue and the syncer thread; every decision is the engine's.
 *
 * The pipeline (docs/boot.md, "Group commit"):
 *
 *   read    a burst of up to DHCP_BURST datagrams; the engine decides
 *           each inside the open lease transaction, and the replies queue
 *           as "open" (gen 0).
 *   commit  whenever no sync is in flight: the open transaction commits
 *           without an fsync and goes to the syncer, whose thread fsyncs
 *           the WAL; its replies take that request's generation.
 *   send    when the syncer reports a generation, the next open
 *           transaction commits (so the disk is busy again at once), then
 *           every reply up to that generation leaves, one sendmmsg() per
 *           run of replies on the same socket.
 *
 * The loop never waits for the disk, one fsync covers everything decided
 * while the previous one ran, and no reply leaves before its lease is
 * durable.  A failed commit drops the replies it carried; a failed sync
 * stops DHCP until restart (glue.h says why a later sync cannot vouch
 * for it).
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "boot/boot.h"
#include "boot/glue.h"

/*
 * Datagrams read per wake-up, and replies per sendmmsg().  With the
 * fsync off the loop, 16, 64 and 256 measured the same at 10,000/s
 * asked (docs/benchmarks.md); 256 keeps system calls per wake-up down.
 */
#define DHCP_BURST 256
/* Replies waiting for the disk; reading pauses while the queue is full. */
#define DHCP_QUEUE (4 * DHCP_BURST)
/* A boot storm's first DISCOVERs arrive while the loop is busy: a default
 * 208 KB receive buffer dropped 141-338 of 500; 4 MB dropped none.  The
 * send buffer holds a full queue, so a release does not meet EAGAIN (a
 * daemon started without root may get less: then the reply is dropped
 * with a warning, and the client retries). */
#define DHCP_RCVBUF (4 << 20)
#define DHCP_SNDBUF (4 << 20)
/*
 * Lease syncs start at least this far apart.  Back to back (0.5 ms each
 * on the bench machine) a steady 2,000 leases/s cost ~2,000 fdatasyncs/s
 * and 261 us of CPU per ACK, Kea 107; 2 ms made it 104-118 us at 2,000/s
 * and 60-66 at 10,000/s, at most 2 ms more per reply (docs/benchmarks.md).
 */
#define DHCP_SYNC_GAP_US 2000

/* A reply held back until its lease is on disk. */
struct dhcp_pending {
	uint64_t gen;            /* syncer generation that makes it durable;
				  * 0 while its transaction is still open */
	size_t sock;             /* index into boot_dhcp.socks */
	int type;
	size_t len;
	struct sockaddr_in to;
	uint8_t buf[DHCP_REPLY_MAX];
};

struct dhcp_sock {
	struct boot_dhcp *d;
	int fd;
	int net;
	struct event *ev;
};

struct boot_dhcp {
	const struct boot_config *cfg;
	struct dhcp_engine *eng;
	struct lease_db *db;            /* the engine's; the same across reloads */
	struct dhcp_sock *socks;
	size_t n_socks;
	struct syncer *syncer;

	struct dhcp_pending *q;         /* ring of DHCP_QUEUE */
	size_t q_head, q_len;
	size_t n_open;                  /* queued replies of the open transaction
					 * (the last n_open of the ring) */
	bool txn_open;                  /* a lease batch is begun */
	uint64_t last_gen;              /* the latest request's generation */
	uint64_t durable;               /* the latest generation synced; a sync
					 * is in flight while it is < last_gen */
	bool paused;                    /* read events removed: queue full */
	bool failed;                    /* a sync failed: DHCP is off */
	char error[96];                 /* why, for boot_dhcp_error */

	uint8_t rx[DHCP_MAX_PKT + 1];
	struct dhcp_msg msg;
	struct dhcp_reply reply;
	struct mmsghdr mm[DHCP_BURST];
	struct iovec iov[DHCP_BURST];
	struct boot_dhcp_sent sent[DHCP_BURST];
	boot_dhcp_sent_fn *on_sent;
	void *on_sent_arg;
};

static struct dhcp_pending *q_at(struct boot_dhcp *d, size_t i)
{
	return &d->q[(d->q_head + i) % DHCP_QUEUE];
}

static void dhcp_pause(struct boot_dhcp *d, bool pause)
{
	if (d->paused == pause)
		return;
	d->paused = pause;
	for (size_t i = 0; i < d->n_socks; i++) {
		if (pause) {
			event_del(d->socks[i].ev);
		} else if (event_add(d->socks[i].ev, NULL) < 0) {
			/* stay paused: the next release tries again */
			log_note(LOG_ERR, "dhcp", "cannot resume reading socket %zu", i);
			d->paused = true;
		}
	}
}

/* Commit the open transaction and ask for the sync that makes it durable. */
static void dhcp_commit(struct boot_dhcp *d)
{
	if (!d->txn_open)
		return;
	d->txn_open = false;
	if (lease_db_batch_end(d->db, true) < 0) {
		log_note(LOG_ERR, "dhcp", "lease database commit failed; %zu replies dropped",
			d->n_open);
		d->q_len -= d->n_open;
		d->n_open = 0;
		return;
	}
	/* Writes no reply waits for (RELEASE, DECLINE) ride on the next sync. */
	if (d->n_open == 0)
		return;
	d->last_gen = syncer_request(d->syncer);
	for (size_t i = d->q_len - d->n_open; i < d->q_len; i++)
		q_at(d, i)->gen = d->last_gen;
	d->n_open = 0;
}

/* Send the n replies staged in d->mm (all on socket sock); tell on_sent. */
static void dhcp_send_run(struct boot_dhcp *d, size_t sock, size_t n)
{
	size_t n_sent = 0;
	for (size_t i = 0; i < n;) {
		int k = sendmmsg(d->socks[sock].fd, d->mm + i, (unsigned)(n - i), 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			/* the first unsent message failed: drop it, go on */
			log_note(LOG_WARN, "dhcp", "send: %s", strerror(errno));
			i++;
			continue;
		}
		for (size_t j = i; j < i + (size_t)k; j++) {
			const struct dhcp_pending *p = q_at(d, j);
			if (p->len < 34)
				continue;
			struct boot_dhcp_sent *s = &d->sent[n_sent++];
			s->type = p->type;
			memcpy(s->mac, p->buf + 28, 6);
			s->yiaddr = (uint32_t)p->buf[16] << 24 | (uint32_t)p->buf[17] << 16 |
				    (uint32_t)p->buf[18] << 8 | p->buf[19];
		}
		i += (size_t)k;
	}
	if (d->on_sent && n_sent)
		d->on_sent(d->on_sent_arg, d->sent, n_sent);
}

/* Every queued reply whose generation is durable leaves, in order. */
static void dhcp_release(struct boot_dhcp *d)
{
	for (;;) {
		size_t n = 0, sock = 0;
		while (n < d->q_len && n < DHCP_BURST) {
			struct dhcp_pending *p = q_at(d, n);
			if (!p->gen || p->gen > d->durable || (n && p->sock != sock))
				break;
			sock = p->sock;
			d->iov[n] = (struct iovec){ p->buf, p->len };
			d->mm[n] = (struct mmsghdr){ .msg_hdr = {
				.msg_name = &p->to, .msg_namelen = sizeof(p->to),
				.msg_iov = &d->iov[n], .msg_iovlen = 1 } };
			n++;
		}
		if (n == 0)
			break;
		dhcp_send_run(d, sock, n);
		d->q_head = (d->q_head + n) % DHCP_QUEUE;
		d->q_len -= n;
	}
	if (d->q_len < DHCP_QUEUE && !d->failed)
		dhcp_pause(d, false);
}

static void dhcp_on_synced(void *arg, uint64_t gen, int err)
{
	struct boot_dhcp *d = arg;
	if (err) {
		log_note(LOG_ERR, "dhcp", "lease database sync failed (%s): %zu replies dropped; "
			"DHCP stays off until kiln serve restarts", strerror(-err),
			d->q_len);
		d->failed = true;
		snprintf(d->error, sizeof(d->error), "lease database sync failed (%s): "
			 "DHCP off until restart", strerror(-err));
		d->q_len = d->n_open = 0;
		if (d->txn_open && lease_db_batch_end(d->db, false) == 0)
			d->txn_open = false;
		dhcp_pause(d, true);
		return;
	}
	d->durable = gen;
	if (d->durable == d->last_gen)
		dhcp_commit(d);
	dhcp_release(d);
}

/* Runs on the syncer's thread. */
static int dhcp_sync(void *arg)
{
	return lease_db_sync(arg);
}

static void dhcp_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct dhcp_sock *s = arg;
	struct boot_dhcp *d = s->d;

	(void)what;
	if (!d->txn_open) {
		if (lease_db_batch_begin(d->db) < 0) {
			/* Nothing decided now could be made durable: drop this
			 * burst (clients retry) rather than spin on a socket that
			 * stays readable. */
			size_t n = 0;
			while (n < DHCP_BURST && recv(fd, d->rx, sizeof(d->rx), 0) >= 0)
				n++;
			log_note(LOG_ERR, "dhcp", "lease database: cannot begin a transaction; "
				"%zu requests dropped", n);
			return;
		}
		d->txn_open = true;
	}
	size_t room = DHCP_QUEUE - d->q_len;
	for (size_t i = 0; i < DHCP_BURST && room; i++) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, d->rx, sizeof(d->rx), MSG_TRUNC,
				     (struct sockaddr *)&from, &fl);
		if (n < 0)
			break;   /* EAGAIN or a transient error */
		if ((size_t)n > DHCP_MAX_PKT) {
			log_note(LOG_DEBUG, "dhcp", "dropped %zd-byte datagram", n);
			continue;
		}
		if (dhcp_parse(d->rx, (size_t)n, &d->msg) < 0) {
			char ip[16];
			boot_fmt_ip(ntohl(from.sin_addr.s_addr), ip);
			log_note(LOG_DEBUG, "dhcp", "malformed packet from %s", ip);
			continue;
		}
		struct dhcp_rx rx = {
			.net = s->net,
			.src_ip = ntohl(from.sin_addr.s_addr),
			.src_port = ntohs(from.sin_port),
		};
		int r = dhcp_engine_handle(d->eng, &d->msg, &rx, wall_ms() / 1000,
					   &d->reply);
		if (r < 0) {
			log_note(LOG_ERR, "dhcp", "lease database failed (%s); not answering",
				strerror(-r));
			continue;
		}
		/* Per-packet notes are debug: at thousands of packets a second
		 * the log must not be the bottleneck (leases are logged once,
		 * by whoever records them). */
		if (d->reply.note[0])
			log_note(LOG_DEBUG, "dhcp", "%s", d->reply.note);
		if (!d->reply.send)
			continue;
		struct dhcp_pending *p = q_at(d, d->q_len++);
		d->n_open++;
		room--;
		p->gen = 0;
		p->sock = (size_t)(s - d->socks);
		p->type = d->reply.type;
		p->len = d->reply.out.len;
		memcpy(p->buf, d->reply.out.buf, p->len);
		sin_set(&p->to, d->reply.dst_ip, d->reply.dst_port);
	}
	if (d->durable == d->last_gen)   /* no sync in flight */
		dhcp_commit(d);
	if (room == 0)
		dhcp_pause(d, true);
}

const char *boot_dhcp_error(const struct boot_dhcp *d)
{
	return d->failed ? d->error : NULL;
}

void boot_dhcp_on_sent(struct boot_dhcp *d, boot_dhcp_sent_fn *fn, void *arg)
{
	d->on_sent = fn;
	d->on_sent_arg = arg;
}

int boot_dhcp_set_engine(struct boot_dhcp *d, const struct boot_config *cfg,
			 struct dhcp_engine *eng, struct kerr *e)
{
	const struct boot_config *o = d->cfg;
	if (dhcp_engine_db(eng) != d->db)
		return kerr_set(e, -EINVAL, "the lease database changed: restart needed");
	if (cfg->n_nets != o->n_nets)
		return kerr_set(e, -EINVAL, "the number of boot networks changed "
				"(%zu -> %zu): restart needed", o->n_nets, cfg->n_nets);
	for (size_t i = 0; i < cfg->n_nets; i++) {
		const char *a = o->nets[i].iface, *b = cfg->nets[i].iface;
		if ((a == NULL) != (b == NULL) || (a && strcmp(a, b)))
			return kerr_set(e, -EINVAL, "boot network %zu changed interface "
					"(%s -> %s): restart needed", i, a ? a : "none",
					b ? b : "none");
	}
	d->cfg = cfg;
	d->eng = eng;
	return 0;
}

/* One socket per interface: 0.0.0.0:67 bound to the device (iface NULL:
 * to none). */
static int dhcp_sock_open(const char *iface, struct kerr *e)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kerr_set(e, -errno, "dhcp: socket: %s", strerror(errno));
	struct sockaddr_in a;
	sin_set(&a, 0, DHCP_SERVER_PORT);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) < 0) {
		kerr_set(e, -errno, "dhcp: setsockopt: %s", strerror(errno));
		goto fail_close;
	}
	/* FORCE lifts net.core.[rw]mem_max for root; else what the sysctl
	 * allows */
	int rcvbuf = DHCP_RCVBUF, sndbuf = DHCP_SNDBUF;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (iface && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface,
				(socklen_t)strlen(iface)) < 0) {
		kerr_set(e, -errno, "dhcp: bind to interface '%s': %s", iface,
			 strerror(errno));
		goto fail_close;
	}
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		kerr_set(e, -errno, "dhcp: bind port %d on '%s': %s", DHCP_SERVER_PORT,
			 iface ? iface : "*", strerror(errno));
		goto fail_close;
	}
	return fd;
fail_close:
	close(fd);
	return e ? e->code : -EIO;
}

int boot_dhcp_start(struct event_base *base, const struct boot_config *cfg,
		    struct dhcp_engine *eng, struct boot_dhcp **out,
		    struct kerr *e)
{
	struct boot_dhcp *d = xcalloc(1, sizeof(*d));
	int r = 0;
	d->cfg = cfg;
	d->eng = eng;
	d->db = dhcp_engine_db(eng);
	d->q = xcalloc(DHCP_QUEUE, sizeof(*d->q));
	bool relay_only = false;
	d->socks = xcalloc(cfg->n_nets + 1, sizeof(*d->socks));
	for (size_t i = 0; i <= cfg->n_nets; i++) {
		if (i < cfg->n_nets && !cfg->nets[i].iface) {
			relay_only = true;
			continue;
		}
		if (i == cfg->n_nets && !relay_only)
			break;
		int fd = dhcp_sock_open(i < cfg->n_nets ? cfg->nets[i].iface : NULL, e);
		if (fd < 0) {
			r = fd;
			goto fail;
		}
		struct dhcp_sock *s = &d->socks[d->n_socks++];
		s->d = d;
		s->fd = fd;
		s->net = i < cfg->n_nets ? (int)i : -1;
		s->ev = event_new(base, fd, EV_READ | EV_PERSIST, dhcp_on_read, s);
		if (!s->ev || event_add(s->ev, NULL) < 0) {
			r = kerr_set(e, -ENOMEM, "dhcp: cannot register event");
			goto fail;
		}
	}
	if (d->n_socks == 0) {
		r = kerr_set(e, -EINVAL, "dhcp: no nets configured");
		goto fail;
	}
	/* A thread before the privilege drop is fine: glibc's setresuid()
	 * and friends change every thread's credentials. */
	if ((r = syncer_start(base, dhcp_sync, d->db, dhcp_on_synced, d,
			      DHCP_SYNC_GAP_US, &d->syncer, e)) < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	boot_dhcp_free(d);
	return r;
}

void boot_dhcp_free(struct boot_dhcp *d)
{
	if (!d)
		return;
	/* Replies still queued never leave; their commits stay (a client
	 * that retries gets the same lease).  An open batch had no reply
	 * out: roll it back. */
	syncer_free(d->syncer);
	if (d->txn_open)
		lease_db_batch_end(d->db, false);
	free(d->q);
	for (size_t i = 0; i < d->n_socks; i++) {
		if (d->socks[i].ev)
			event_free(d->socks[i].ev);
		close(d->socks[i].fd);
	}
	free(d->socks);
	free(d);
}
