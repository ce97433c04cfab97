/*
 * TFTP read transfer engine: option negotiation, windows (RFC 7440),
 * block-number rollover, retransmission with backoff.  No sockets, no
 * clock: the glue passes packets and the time in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "boot/boot.h"

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Append "name\0value\0" to the OACK; the buffer is sized for all four. */
static void oack_add(struct tftp_xfer *x, const char *name, uint64_t v)
{
	int n = snprintf((char *)x->oackbuf + x->oacklen,
			 sizeof(x->oackbuf) - x->oacklen, "%s%c%" PRIu64, name, 0, v);
	if (n > 0 && (size_t)n + 1 < sizeof(x->oackbuf) - x->oacklen)
		x->oacklen += (size_t)n + 1;
}

int tftp_xfer_start(struct tftp_xfer *x, int fd, uint64_t size,
		    const struct tftp_req *r, const struct tftp_limits *lim,
		    int64_t now_ms)
{
	memset(x, 0, sizeof(*x));
	x->fd = fd;
	x->size = size;
	x->blksize = 512;
	x->window = 1;
	x->base_rto_ms = lim->timeout_ms ? lim->timeout_ms : 1000;
	x->max_rto_ms = lim->max_timeout_ms ? lim->max_timeout_ms : 8000;
	x->max_retries = lim->max_retries ? lim->max_retries : 6;
	x->oackbuf[0] = 0;
	x->oackbuf[1] = TFTP_OACK;
	x->oacklen = 2;
	if (r->has_blksize) {
		uint32_t max = lim->max_blksize ? lim->max_blksize : TFTP_BLKSIZE_MAX;
		if (max > TFTP_BLKSIZE_MAX)
			max = TFTP_BLKSIZE_MAX;
		x->blksize = r->blksize < max ? r->blksize : max;
		oack_add(x, "blksize", x->blksize);
	}
	if (r->has_timeout) {
		x->base_rto_ms = r->timeout * 1000;
		if (x->max_rto_ms < x->base_rto_ms)
			x->max_rto_ms = x->base_rto_ms;
		oack_add(x, "timeout", r->timeout);
	}
	if (r->has_tsize)
		oack_add(x, "tsize", size);
	if (r->has_window) {
		uint32_t max = lim->max_window ? lim->max_window : TFTP_WINDOW_MAX;
		uint32_t bytes = lim->max_window_bytes ? lim->max_window_bytes
						       : TFTP_WINDOW_BYTES;
		if (max > bytes / x->blksize)
			max = bytes / x->blksize;
		if (max < 1)
			max = 1;
		x->window = r->window < max ? r->window : max;
		oack_add(x, "windowsize", x->window);
	}
	x->rto_ms = x->base_rto_ms;
	x->nblocks = size / x->blksize + 1;
	if (x->nblocks == 0)
		return -EFBIG;
	x->oack = x->oacklen > 2;
	x->acked = 0;
	x->next = 1;
	x->win_end = x->oack ? 0 : min_u64(x->window, x->nblocks);
	x->deadline_ms = now_ms + x->rto_ms;
	return 0;
}

void tftp_xfer_release(struct tftp_xfer *x)
{
	if (x && x->fd >= 0) {
		close(x->fd);
		x->fd = -1;
	}
}

bool tftp_xfer_want_send(const struct tftp_xfer *x)
{
	if (x->done || x->failed)
		return false;
	if (x->oack)
		return !x->oack_sent;
	return x->next <= x->win_end;
}

/*
 * preadv() until all of iov (cnt entries, modified) is filled from off.
 * -EIO when the file is shorter than it was at the start (it shrank).
 */
static int preadv_full(int fd, struct iovec *iov, int cnt, uint64_t off)
{
	while (cnt > 0) {
		if (iov->iov_len == 0) {
			iov++;
			cnt--;
			continue;
		}
		ssize_t k = preadv(fd, iov, cnt, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;   /* file shrank under us */
		off += (uint64_t)k;
		while (cnt > 0 && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

/*
 * The due DATA packets, back to back: one preadv() fills the data slots
 * of all of them, so a window costs one read however many blocks it has.
 */
int tftp_xfer_build_burst(struct tftp_xfer *x, uint8_t *buf, size_t n,
			  unsigned max, size_t *len)
{
	struct iovec iov[TFTP_BURST_MAX];
	size_t pkt = (size_t)x->blksize + 4, total = 0;
	*len = 0;
	if (x->oack || !tftp_xfer_want_send(x))
		return 0;
	uint64_t due = x->win_end - x->next + 1;
	if (max > TFTP_BURST_MAX)
		max = TFTP_BURST_MAX;
	due = min_u64(due, min_u64(max, n / pkt));
	if (due == 0)
		return -ENOBUFS;
	uint64_t off = (x->next - 1) * x->blksize;
	for (unsigned i = 0; i < due; i++) {
		uint64_t o = off + (uint64_t)i * x->blksize;
		size_t want = o >= x->size ? 0 : (size_t)min_u64(x->blksize, x->size - o);
		uint8_t *p = buf + total;
		uint16_t wire = (uint16_t)((x->next + i) & 0xffff);
		p[0] = 0;
		p[1] = TFTP_DATA;
		p[2] = wire >> 8;
		p[3] = wire & 0xff;
		iov[i].iov_base = p + 4;
		iov[i].iov_len = want;
		total += want + 4;
	}
	int r = preadv_full(x->fd, iov, (int)due, off);
	if (r < 0)
		return r;
	*len = total;
	return (int)due;
}

ssize_t tftp_xfer_build(struct tftp_xfer *x, uint8_t *buf, size_t n)
{
	if (x->oack) {
		if (n < x->oacklen)
			return -ENOBUFS;
		memcpy(buf, x->oackbuf, x->oacklen);
		return (ssize_t)x->oacklen;
	}
	if (n < (size_t)x->blksize + 4)
		return -ENOBUFS;
	size_t len;
	int k = tftp_xfer_build_burst(x, buf, n, 1, &len);
	if (k < 0)
		return k;
	return k == 0 ? -EINVAL : (ssize_t)len;
}

void tftp_xfer_sent(struct tftp_xfer *x, int64_t now_ms)
{
	if (x->oack) {
		x->oack_sent = true;
	} else {
		x->next++;
		if (x->sent_hi < x->next - 1)
			x->sent_hi = x->next - 1;
	}
	x->deadline_ms = now_ms + x->rto_ms;
}

void tftp_xfer_sent_n(struct tftp_xfer *x, unsigned k, int64_t now_ms)
{
	if (k == 0 || x->oack)
		return;
	uint64_t room = x->win_end >= x->next ? x->win_end - x->next + 1 : 0;
	x->next += min_u64(k, room);
	if (x->sent_hi < x->next - 1)
		x->sent_hi = x->next - 1;
	x->deadline_ms = now_ms + x->rto_ms;
}

/* Open a new window starting after the last acknowledged block. */
static void window_from_acked(struct tftp_xfer *x)
{
	x->next = x->acked + 1;
	x->win_end = min_u64(x->acked + x->window, x->nblocks);
}

int tftp_xfer_input(struct tftp_xfer *x, const uint8_t *pkt, size_t len,
		    int64_t now_ms)
{
	int op;
	uint16_t blk;
	if (x->done || x->failed)
		return x->done ? 1 : -ECONNRESET;
	if (tftp_parse_client(pkt, len, &op, &blk) < 0)
		return -EBADMSG;
	if (op == TFTP_ERROR) {
		x->failed = true;
		return -ECONNRESET;
	}
	if (x->oack) {
		if (!x->oack_sent || blk != 0)
			return -EBADMSG;
		x->oack = false;
		x->retries = 0;
		x->rto_ms = x->base_rto_ms;
		window_from_acked(x);
		return 0;
	}
	/*
	 * Map the 16-bit number onto the blocks in flight (acked ..
	 * sent_hi).  After a rollback blocks past next-1 are still on the
	 * wire, and a client that got them acknowledges them: valid.
	 */
	uint64_t a = x->acked + (uint16_t)(blk - (uint16_t)(x->acked & 0xffff));
	uint64_t sent_max = x->next - 1;
	if (a > x->sent_hi)
		return -EBADMSG;          /* not a block we sent */
	if (a == x->acked) {
		/*
		 * A repeat of the last ACK.  With window 1 ignore it (the
		 * Sorcerer's Apprentice bug); with a window, a client that
		 * saw the window's first block missing says so this way
		 * (RFC 7440 4.) once the whole window is out: resend.
		 */
		if (x->window > 1 && x->next > x->win_end)
			window_from_acked(x);
		return 0;
	}
	x->acked = a;
	x->retries = 0;
	x->rto_ms = x->base_rto_ms;
	if (x->acked >= x->nblocks) {
		x->done = true;
		return 1;
	}
	/* The whole window acked, or a partial ACK (client lost a block):
	 * either way continue right after what the client has. */
	if (a != sent_max || a == x->win_end || x->next > x->win_end)
		window_from_acked(x);
	x->deadline_ms = now_ms + x->rto_ms;
	return 0;
}

int tftp_xfer_timeout(struct tftp_xfer *x, int64_t now_ms)
{
	if (x->done)
		return 0;
	if (++x->retries > x->max_retries) {
		x->failed = true;
		return -ETIMEDOUT;
	}
	x->rto_ms = x->rto_ms * 2 > x->max_rto_ms ? x->max_rto_ms : x->rto_ms * 2;
	if (x->oack)
		x->oack_sent = false;
	else
		window_from_acked(x);
	x->deadline_ms = now_ms + x->rto_ms;
	return 0;
}
