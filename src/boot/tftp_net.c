/*
 * libevent glue for TFTP: the listening socket and one socket per
 * transfer.  Owns file descriptors and timers, nothing else; every
 * decision is the transfer engine's (tftp_xfer.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "boot/boot.h"
#include "boot/glue.h"

/*
 * Send path (docs/boot.md, TFTP): a window's blocks are read with one
 * preadv() into a buffer shared by all transfers (the loop is single
 * threaded and a burst leaves before the next is built), then leave as
 * UDP GSO sends of up to TFTP_GSO_MAX bytes (one skb through the stack
 * per 44 blocks of 1,468 bytes) or, where GSO does not apply, as one
 * sendmmsg().  ACKs are read with one recvmmsg() per wake-up.
 */
#define TFTP_BURST_BYTES (256 << 10)
/* The largest UDP payload; one GSO send cannot carry more. */
#define TFTP_GSO_MAX 65507
/* The kernel's cap on segments per GSO send (UDP_MAX_SEGMENTS, 64 before
 * Linux 6.10). */
#define TFTP_GSO_SEGS 64
/* ACKs (and ERRORs, truncated: only their first 4 bytes matter) read per
 * recvmmsg(). */
#define TFTP_RX_BATCH 8
#define TFTP_RX_LEN 64

struct tftp_conn {
	struct boot_tftp *t;
	struct tftp_conn *prev, *next;
	int fd;
	struct event *rev, *wev, *tmo;
	struct sockaddr_in peer;
	struct tftp_xfer x;
	uint32_t gso;                   /* GSO segment size; 0 = not used */
	int64_t tmo_at;                 /* deadline the timer is armed for */
	char name[TFTP_NAME_MAX + 1];   /* sanitised, for the log */
	int64_t started_ms;
};

struct boot_tftp {
	struct event_base *base;
	struct boot_tftp_opts o;
	int rootfd, fd;
	struct event *ev;
	struct tftp_conn *conns;
	int active;
	struct boot_tftp_stats st;
	uint8_t buf[TFTP_PKT_MAX + 4];
	uint8_t *burst;                 /* TFTP_BURST_BYTES */
	struct mmsghdr mm[TFTP_BURST_MAX];
	struct iovec iov[TFTP_BURST_MAX];
	uint8_t rx[TFTP_RX_BATCH][TFTP_RX_LEN];
	struct mmsghdr rmm[TFTP_RX_BATCH];
	struct iovec riov[TFTP_RX_BATCH];
};

static void conn_free(struct tftp_conn *c)
{
	if (!c)
		return;
	struct boot_tftp *t = c->t;
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	t->active--;
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	if (c->tmo)
		event_free(c->tmo);
	if (c->fd >= 0)
		close(c->fd);
	tftp_xfer_release(&c->x);
	free(c);
}

static void conn_log_end(struct tftp_conn *c, const char *how)
{
	char ip[16];
	boot_fmt_ip(ntohl(c->peer.sin_addr.s_addr), ip);
	int64_t ms = now_ms() - c->started_ms;
	double mb = (double)c->x.size / 1e6;
	log_note(LOG_INFO, "tftp", "%s:%u '%s' %s: %.1f MB in %lld ms (%.1f MB/s)", ip,
		 ntohs(c->peer.sin_port), c->name, how, mb, (long long)ms,
		 ms > 0 ? mb * 1000.0 / (double)ms : 0.0);
}

/*
 * Hand k back-to-back packets (len bytes in t->burst, each pkt bytes but
 * the last) to the kernel.  Returns how many left (>= 1) or -errno; with
 * GSO it is all or nothing.  A GSO send the path refuses (EIO: no
 * checksum offload on old kernels; EINVAL/EMSGSIZE: segment over the
 * MTU) turns GSO off for the transfer and goes again with sendmmsg().
 */
static int conn_send_burst(struct tftp_conn *c, int k, size_t len, size_t pkt)
{
	struct boot_tftp *t = c->t;
	if (c->gso && k > 1) {
		char cbuf[CMSG_SPACE(sizeof(uint16_t))] = { 0 };
		struct iovec iov = { t->burst, len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_UDP;
		cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		uint16_t seg = (uint16_t)c->gso;
		memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
		t->st.send_calls++;
		if (sendmsg(c->fd, &mh, 0) >= 0) {
			t->st.gso_sends++;
			t->st.data_packets += (uint64_t)k;
			return k;
		}
		if (errno != EIO && errno != EINVAL && errno != EMSGSIZE &&
		    errno != EOPNOTSUPP && errno != ENOPROTOOPT)
			return -errno;
		log_note(LOG_DEBUG, "tftp", "'%s': UDP GSO refused (%s), using sendmmsg",
			  c->name, strerror(errno));
		c->gso = 0;
		t->st.gso_fallbacks++;
	}
	for (int i = 0; i < k; i++) {
		t->iov[i].iov_base = t->burst + (size_t)i * pkt;
		t->iov[i].iov_len = i + 1 < k ? pkt : len - (size_t)i * pkt;
		memset(&t->mm[i], 0, sizeof(t->mm[i]));
		t->mm[i].msg_hdr.msg_iov = &t->iov[i];
		t->mm[i].msg_hdr.msg_iovlen = 1;
	}
	t->st.send_calls++;
	int n = k == 1 ? (send(c->fd, t->iov[0].iov_base, t->iov[0].iov_len, 0) < 0 ? -1 : 1)
		       : sendmmsg(c->fd, t->mm, (unsigned)k, 0);
	if (n < 0)
		return -errno;
	t->st.data_packets += (uint64_t)n;
	return n;
}

/* Arm the retransmission timer for the engine's deadline, unless it
 * already is: one timer per window, not one per block. */
static void conn_arm_timer(struct tftp_conn *c)
{
	if (c->tmo_at == c->x.deadline_ms && evtimer_pending(c->tmo, NULL))
		return;
	int64_t wait = c->x.deadline_ms - now_ms();
	if (wait < 1)
		wait = 1;
	struct timeval tv = { .tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000 };
	evtimer_add(c->tmo, &tv);
	c->tmo_at = c->x.deadline_ms;
}

/* Send what the engine has due; arm the write event or the timer.
 * Returns false when the transfer ended (c is freed). */
static bool conn_pump(struct tftp_conn *c)
{
	struct boot_tftp *t = c->t;
	size_t pkt = (size_t)c->x.blksize + 4;
	while (tftp_xfer_want_send(&c->x)) {
		if (c->x.oack) {
			ssize_t n = tftp_xfer_build(&c->x, t->buf, sizeof(t->buf));
			if (n < 0 || send(c->fd, t->buf, (size_t)n, 0) < 0) {
				if (n >= 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
					       errno == ENOBUFS))
					event_add(c->wev, NULL);
				if (n >= 0 && errno == ECONNREFUSED)
					goto refused;
				break;   /* the timer resends */
			}
			tftp_xfer_sent(&c->x, now_ms());
			continue;
		}
		/* One GSO send's worth, or the window's rest for sendmmsg. */
		unsigned max = TFTP_BURST_MAX;
		if (c->gso) {
			max = (unsigned)(TFTP_GSO_MAX / pkt);
			if (max > TFTP_GSO_SEGS)
				max = TFTP_GSO_SEGS;
			if (max < 1)
				max = 1;
		}
		size_t len;
		int k = tftp_xfer_build_burst(&c->x, t->burst, TFTP_BURST_BYTES, max, &len);
		if (k < 0) {
			size_t l = tftp_build_error(t->buf, sizeof(t->buf), TFTP_EUNDEF,
						    "read error");
			(void)send(c->fd, t->buf, l, 0);
			conn_log_end(c, "failed (read error)");
			conn_free(c);
			return false;
		}
		if (k == 0)
			break;
		int n = conn_send_burst(c, k, len, pkt);
		if (n < 0) {
			if (n == -EAGAIN || n == -EWOULDBLOCK || n == -ENOBUFS) {
				event_add(c->wev, NULL);
				break;
			}
			if (n == -ECONNREFUSED)
				goto refused;
			break;   /* transient: the timer resends */
		}
		tftp_xfer_sent_n(&c->x, (unsigned)n, now_ms());
	}
	conn_arm_timer(c);
	return true;
refused:
	conn_log_end(c, "failed (client port closed)");
	conn_free(c);
	return false;
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	conn_pump(arg);
}

/*
 * ACKs: one recvmmsg() per wake-up normally (a second only when the
 * batch came back full), and the next window leaves from here.
 */
static void conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct tftp_conn *c = arg;
	struct boot_tftp *t = c->t;
	for (int round = 0; round < 32; round++) {
		for (int i = 0; i < TFTP_RX_BATCH; i++) {
			t->riov[i].iov_base = t->rx[i];
			t->riov[i].iov_len = sizeof(t->rx[i]);
			memset(&t->rmm[i], 0, sizeof(t->rmm[i]));
			t->rmm[i].msg_hdr.msg_iov = &t->riov[i];
			t->rmm[i].msg_hdr.msg_iovlen = 1;
		}
		int k = recvmmsg(fd, t->rmm, TFTP_RX_BATCH, MSG_DONTWAIT, NULL);
		if (k < 0) {
			if (errno == ECONNREFUSED) {
				conn_log_end(c, "failed (client port closed)");
				conn_free(c);
				return;
			}
			break;
		}
		int64_t now = now_ms();
		for (int i = 0; i < k; i++) {
			int r = tftp_xfer_input(&c->x, t->rx[i], t->rmm[i].msg_len, now);
			if (r == 1) {
				conn_log_end(c, "done");
				conn_free(c);
				return;
			}
			if (r == -ECONNRESET) {
				conn_log_end(c, "aborted by client");
				conn_free(c);
				return;
			}
		}
		if (k < TFTP_RX_BATCH)
			break;
	}
	conn_pump(c);
}

static void conn_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct tftp_conn *c = arg;
	if (tftp_xfer_timeout(&c->x, now_ms()) < 0) {
		size_t l = tftp_build_error(c->t->buf, sizeof(c->t->buf), TFTP_EUNDEF,
					    "timed out");
		(void)send(c->fd, c->t->buf, l, 0);
		conn_log_end(c, "timed out");
		conn_free(c);
		return;
	}
	conn_pump(c);
}

static void tftp_reply_error(struct boot_tftp *t, const struct sockaddr_in *to,
			     enum tftp_err code, const char *msg)
{
	uint8_t b[128];
	size_t l = tftp_build_error(b, sizeof(b), code, msg);
	(void)sendto(t->fd, b, l, 0, (const struct sockaddr *)to, sizeof(*to));
}

/* Start a transfer for a request that came to local address `local`. */
static void tftp_start_conn(struct boot_tftp *t, const struct tftp_req *rq,
			    const struct sockaddr_in *peer, uint32_t local)
{
	char ip[16], name[TFTP_NAME_MAX + 1];
	boot_fmt_ip(ntohl(peer->sin_addr.s_addr), ip);
	str_sanitize(name, sizeof(name), rq->name, strlen(rq->name));
	int max = t->o.max_transfers ? t->o.max_transfers : 512;
	int per = t->o.max_per_client ? t->o.max_per_client : 64, mine = 0;
	for (struct tftp_conn *c = t->conns; c; c = c->next) {
		if (c->peer.sin_addr.s_addr != peer->sin_addr.s_addr)
			continue;
		if (c->peer.sin_port == peer->sin_port)
			return;   /* a retransmitted request: already serving it */
		mine++;
	}
	uint64_t size;
	int ffd = tftp_open_beneath(t->rootfd, rq->name, &size);
	if (ffd < 0) {
		bool nf = ffd == -ENOENT || ffd == -ENOTDIR;
		log_note(LOG_INFO, "tftp", "%s: '%s' refused: %s", ip, name, strerror(-ffd));
		tftp_reply_error(t, peer, nf ? TFTP_ENOTFOUND : TFTP_EACCESS,
				 nf ? "file not found" : "access violation");
		return;
	}
	if (t->active >= max || mine >= per) {
		close(ffd);
		log_note(LOG_WARN, "tftp", "%s: '%s' refused: %d transfers running (%d from it)",
			 ip, name, t->active, mine);
		tftp_reply_error(t, peer, TFTP_EUNDEF, "server busy");
		return;
	}
	struct tftp_conn *c = xcalloc(1, sizeof(*c));
	c->t = t;
	c->fd = -1;
	c->x.fd = -1;
	c->peer = *peer;
	c->started_ms = now_ms();
	memcpy(c->name, name, sizeof(c->name));
	c->next = t->conns;
	if (t->conns)
		t->conns->prev = c;
	t->conns = c;
	t->active++;
	if (tftp_xfer_start(&c->x, ffd, size, rq, &t->o.lim, now_ms()) < 0)
		goto fail;   /* the engine owns ffd now */
	c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		goto fail;
	struct sockaddr_in a;
	sin_set(&a, local, 0);
	/* A 64-block window of 1,468-byte blocks is about 150 KB of skbs:
	 * any send buffer above net.core.wmem_max's 208 KB default (doubled
	 * by the kernel) holds it, so a window never waits for room.  Ask
	 * for more (capped by wmem_max) for large blocks. */
	int sb = 4 << 20;
	(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
	if (bind(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    connect(c->fd, (const struct sockaddr *)peer, sizeof(*peer)) < 0)
		goto fail;
	/* GSO when a DATA packet fits the route's MTU: the kernel then
	 * checks every segment against it, as it would a plain send. */
	int mtu = 0;
	socklen_t ml = sizeof(mtu);
	if (!t->o.no_gso && c->x.window > 1 &&
	    getsockopt(c->fd, IPPROTO_IP, IP_MTU, &mtu, &ml) == 0 &&
	    (uint64_t)c->x.blksize + 4 + 28 <= (uint64_t)mtu)
		c->gso = c->x.blksize + 4;
	c->rev = event_new(t->base, c->fd, EV_READ | EV_PERSIST, conn_on_read, c);
	c->wev = event_new(t->base, c->fd, EV_WRITE, conn_on_write, c);
	c->tmo = evtimer_new(t->base, conn_on_timeout, c);
	if (!c->rev || !c->wev || !c->tmo || event_add(c->rev, NULL) < 0)
		goto fail;
	log_note(LOG_INFO, "tftp", "%s:%u '%s' size %llu blksize %u window %u%s%s", ip,
		 ntohs(peer->sin_port), name, (unsigned long long)size,
		 c->x.blksize, c->x.window, c->x.oack ? " (OACK)" : "",
		 c->gso ? " (GSO)" : "");
	conn_pump(c);
	return;
fail:
	log_note(LOG_WARN, "tftp", "%s: '%s': cannot start transfer: %s", ip, name, strerror(errno));
	tftp_reply_error(t, peer, TFTP_EUNDEF, "internal error");
	conn_free(c);
}

static void tftp_on_request(evutil_socket_t fd, short what, void *arg)
{
	struct boot_tftp *t = arg;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_in peer;
		char cbuf[CMSG_SPACE(sizeof(struct in_pktinfo))];
		struct iovec iov = { t->buf, sizeof(t->buf) };
		struct msghdr mh = {
			.msg_name = &peer, .msg_namelen = sizeof(peer),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
		};
		ssize_t n = recvmsg(fd, &mh, 0);
		if (n < 0)
			return;
		if (mh.msg_namelen != sizeof(peer) || peer.sin_family != AF_INET)
			continue;
		uint32_t local = t->o.addr;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
				struct in_pktinfo pi;
				memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
				local = ntohl(pi.ipi_addr.s_addr);
			}
		struct tftp_req rq;
		int r = tftp_parse_req(t->buf, (size_t)n, &rq);
		if (r == -EOPNOTSUPP) {
			tftp_reply_error(t, &peer, TFTP_EBADOP, "illegal operation");
			continue;
		}
		if (r < 0) {
			tftp_reply_error(t, &peer, TFTP_EBADOP, "malformed request");
			continue;
		}
		if (rq.op == TFTP_WRQ) {
			tftp_reply_error(t, &peer, TFTP_EACCESS, "read-only server");
			continue;
		}
		if (!rq.octet) {
			tftp_reply_error(t, &peer, TFTP_EUNDEF, "only octet mode is served");
			continue;
		}
		tftp_start_conn(t, &rq, &peer, local);
	}
}

int boot_tftp_start(struct event_base *base, const struct boot_tftp_opts *o,
		    struct boot_tftp **out, struct kerr *e)
{
	struct boot_tftp *t = xcalloc(1, sizeof(*t));
	int one = 1, r;
	t->base = base;
	t->o = *o;
	t->fd = -1;
	t->rootfd = -1;
	t->burst = xmalloc(TFTP_BURST_BYTES);
	t->rootfd = open(o->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (t->rootfd < 0) {
		r = kerr_set(e, -errno, "tftp: root '%s': %s", o->root, strerror(errno));
		goto fail;
	}
	t->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a;
	sin_set(&a, o->addr, o->port ? o->port : TFTP_PORT);
	if (t->fd < 0 ||
	    setsockopt(t->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(t->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0 ||
	    bind(t->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = kerr_set(e, -errno, "tftp: bind port %u: %s",
			     o->port ? o->port : TFTP_PORT, strerror(errno));
		goto fail;
	}
	t->ev = event_new(base, t->fd, EV_READ | EV_PERSIST, tftp_on_request, t);
	if (!t->ev || event_add(t->ev, NULL) < 0) {
		r = kerr_set(e, -ENOMEM, "tftp: cannot register event");
		goto fail;
	}
	t->o.root = NULL;   /* borrowed only for the open above */
	*out = t;
	return 0;
fail:
	boot_tftp_free(t);
	return r;
}

void boot_tftp_free(struct boot_tftp *t)
{
	if (!t)
		return;
	while (t->conns)
		conn_free(t->conns);
	if (t->ev)
		event_free(t->ev);
	if (t->fd >= 0)
		close(t->fd);
	if (t->rootfd >= 0)
		close(t->rootfd);
	free(t->burst);
	free(t);
}

int boot_tftp_active(const struct boot_tftp *t)
{
	return t->active;
}

uint16_t boot_tftp_port(const struct boot_tftp *t)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	if (getsockname(t->fd, (struct sockaddr *)&a, &l) < 0)
		return 0;
	return ntohs(a.sin_port);
}

void boot_tftp_stats(const struct boot_tftp *t, struct boot_tftp_stats *st)
{
	*st = t->st;
}
