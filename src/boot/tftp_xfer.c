/*
 * TFTP read transfer engine: option negotiation, windows (RFC 7440),
 * block-number rollover, retransmission with backoff.  No sockets, no
 * clock: the glue passes packets and the time in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
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
	uint64_t off = (x->next - 1) * x->blksize;
	size_t want = off >= x->size ? 0 : (size_t)min_u64(x->blksize, x->size - off);
	size_t got = 0;
	while (got < want) {
		ssize_t k = pread(x->fd, buf + 4 + got, want - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;   /* file shrank under us */
		got += (size_t)k;
	}
	uint16_t wire = (uint16_t)(x->next & 0xffff);
	buf[0] = 0;
	buf[1] = TFTP_DATA;
	buf[2] = wire >> 8;
	buf[3] = wire & 0xff;
	return (ssize_t)(want + 4);
}

void tftp_xfer_sent(struct tftp_xfer *x, int64_t now_ms)
{
	if (x->oack)
		x->oack_sent = true;
	else
		x->next++;
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
	/* Map the 16-bit number onto the blocks in flight (acked .. next-1). */
	uint64_t a = x->acked + (uint16_t)(blk - (uint16_t)(x->acked & 0xffff));
	uint64_t sent_max = x->next - 1;
	if (a > sent_max)
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
	if (a == x->win_end || a < sent_max || x->next > x->win_end)
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
