/* boot: TFTP codec, path checks, option negotiation, windows, rollover. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/boot.h"

/* Build "op name\0mode\0[opt\0val\0]..." from a NUL-separated list. */
static size_t mkreq(uint8_t *b, int op, const char *parts, size_t plen)
{
	b[0] = 0;
	b[1] = (uint8_t)op;
	memcpy(b + 2, parts, plen);
	return plen + 2;
}
#define REQ(b, op, lit) mkreq(b, op, lit, sizeof(lit) - 1)

static void test_parse_req(void **state)
{
	uint8_t b[1024];
	struct tftp_req r;
	size_t n = REQ(b, TFTP_RRQ, "ipxe.efi\0OCTET\0blksize\0001468\0tsize\0000\0"
		       "windowsize\00016\0timeout\0003\0utimeout\0005000\0");
	assert_int_equal(tftp_parse_req(b, n, &r), 0);
	assert_int_equal(r.op, TFTP_RRQ);
	assert_string_equal(r.name, "ipxe.efi");
	assert_true(r.octet);
	assert_true(r.has_blksize && r.blksize == 1468);
	assert_true(r.has_tsize && r.tsize == 0);
	assert_true(r.has_window && r.window == 16);
	assert_true(r.has_timeout && r.timeout == 3);

	/* out-of-range values are ignored, not fatal */
	n = REQ(b, TFTP_RRQ, "f\0octet\0blksize\0007\0windowsize\0000\0timeout\000256\0");
	assert_int_equal(tftp_parse_req(b, n, &r), 0);
	assert_false(r.has_blksize);
	assert_false(r.has_window);
	assert_false(r.has_timeout);
	n = REQ(b, TFTP_RRQ, "f\0octet\0blksize\00065465\0blksize\0x\0");
	assert_int_equal(tftp_parse_req(b, n, &r), 0);
	assert_false(r.has_blksize);
	n = REQ(b, TFTP_RRQ, "f\0octet\0blksize\00065464\0");
	assert_int_equal(tftp_parse_req(b, n, &r), 0);
	assert_int_equal(r.blksize, 65464);
	/* netascii is parsed (the glue refuses it), WRQ is recognised */
	n = REQ(b, TFTP_WRQ, "f\0netascii\0");
	assert_int_equal(tftp_parse_req(b, n, &r), 0);
	assert_int_equal(r.op, TFTP_WRQ);
	assert_false(r.octet);

	/* malformed */
	n = REQ(b, TFTP_RRQ, "f\0octet");        /* mode without NUL */
	assert_int_equal(tftp_parse_req(b, n, &r), -EBADMSG);
	n = REQ(b, TFTP_RRQ, "f\0binary\0");
	assert_int_equal(tftp_parse_req(b, n, &r), -EBADMSG);
	n = REQ(b, TFTP_RRQ, "f\0octet\0blksize\0");   /* option without value */
	assert_int_equal(tftp_parse_req(b, n, &r), -EBADMSG);
	n = REQ(b, TFTP_DATA, "f\0octet\0");
	assert_int_equal(tftp_parse_req(b, n, &r), -EOPNOTSUPP);
	assert_int_equal(tftp_parse_req(b, 1, &r), -EBADMSG);
	/* a 300-byte name */
	b[0] = 0; b[1] = 1;
	memset(b + 2, 'a', 300);
	b[302] = 0;
	memcpy(b + 303, "octet", 6);
	assert_int_equal(tftp_parse_req(b, 309, &r), -EBADMSG);
	/* too many options */
	size_t p = REQ(b, TFTP_RRQ, "f\0octet\0");
	for (int i = 0; i < 20; i++) {
		memcpy(b + p, "x\0001\0", 4);
		p += 4;
	}
	assert_int_equal(tftp_parse_req(b, p, &r), -EBADMSG);

	/* client packets */
	int op;
	uint16_t blk;
	uint8_t ack[4] = { 0, 4, 0xff, 0xfe };
	assert_int_equal(tftp_parse_client(ack, 4, &op, &blk), 0);
	assert_int_equal(op, TFTP_ACK);
	assert_int_equal(blk, 65534);
	assert_int_equal(tftp_parse_client(ack, 3, &op, &blk), -EBADMSG);
	uint8_t data[4] = { 0, 3, 0, 1 };
	assert_int_equal(tftp_parse_client(data, 4, &op, &blk), -EBADMSG);
	uint8_t e[64];
	size_t el = tftp_build_error(e, sizeof(e), TFTP_ENOTFOUND, "file not found");
	assert_int_equal(el, 4 + 14 + 1);
	assert_int_equal(e[1], TFTP_ERROR);
	assert_int_equal(e[3], 1);
	assert_string_equal((char *)e + 4, "file not found");
	el = tftp_build_error(e, 8, TFTP_EUNDEF, "a long message");
	assert_int_equal(el, 8);
	assert_int_equal(e[7], 0);
}

static void test_name_ok(void **state)
{
	assert_true(tftp_name_ok("ipxe.efi"));
	assert_true(tftp_name_ok("a/b/c"));
	assert_true(tftp_name_ok("..a/b.."));
	assert_false(tftp_name_ok(""));
	assert_false(tftp_name_ok("/etc/passwd"));
	assert_false(tftp_name_ok(".."));
	assert_false(tftp_name_ok("../x"));
	assert_false(tftp_name_ok("a/../../x"));
	assert_false(tftp_name_ok("a/.."));
	assert_false(tftp_name_ok("a//b"));
	assert_false(tftp_name_ok("a/"));
	assert_false(tftp_name_ok("a\nb"));
}

static void write_file(const char *path, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	uint8_t b[4096];
	size_t done = 0;
	while (done < n) {
		size_t k = n - done < sizeof(b) ? n - done : sizeof(b);
		for (size_t i = 0; i < k; i++)
			b[i] = (uint8_t)((done + i) * 2654435761u >> 13);
		assert_int_equal(write(fd, b, k), (ssize_t)k);
		done += k;
	}
	close(fd);
}

static void test_open_beneath(void **state)
{
	char dir[] = "/tmp/kiln-tftp-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *root = xasprintf("%s/root", dir), *p;
	assert_int_equal(mkdir_p(root, 0755), 0);
	p = xasprintf("%s/sub", root);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	p = xasprintf("%s/sub/f", root);
	write_file(p, 1000);
	free(p);
	p = xasprintf("%s/secret", dir);
	write_file(p, 10);
	free(p);
	p = xasprintf("%s/in", root);
	assert_int_equal(symlink("sub/f", p), 0);
	free(p);
	p = xasprintf("%s/out", root);
	assert_int_equal(symlink("../secret", p), 0);
	free(p);
	p = xasprintf("%s/abs", root);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	free(p);
	p = xasprintf("%s/fifo", root);
	assert_int_equal(mkfifo(p, 0644), 0);
	free(p);
	int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(rfd >= 0);
	uint64_t size = 0;
	int fd = tftp_open_beneath(rfd, "sub/f", &size);
	assert_true(fd >= 0);
	assert_int_equal(size, 1000);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	fd = tftp_open_beneath(rfd, "in", &size);   /* symlink inside: fine */
	assert_true(fd >= 0);
	close(fd);
	assert_true(tftp_open_beneath(rfd, "out", &size) < 0);
	assert_true(tftp_open_beneath(rfd, "abs", &size) < 0);
	assert_int_equal(tftp_open_beneath(rfd, "../secret", &size), -EACCES);
	assert_int_equal(tftp_open_beneath(rfd, "/etc/passwd", &size), -EACCES);
	assert_int_equal(tftp_open_beneath(rfd, "sub", &size), -EACCES);
	assert_int_equal(tftp_open_beneath(rfd, "fifo", &size), -EACCES);
	assert_int_equal(tftp_open_beneath(rfd, "nope", &size), -ENOENT);
	/* the fallback walk: same answers, but no symlinks at all */
	fd = tftp_open_walk(rfd, "sub/f", &size);
	assert_true(fd >= 0);
	assert_int_equal(size, 1000);
	close(fd);
	assert_true(tftp_open_walk(rfd, "in", &size) < 0);
	assert_true(tftp_open_walk(rfd, "out", &size) < 0);
	assert_true(tftp_open_walk(rfd, "abs", &size) < 0);
	assert_int_equal(tftp_open_walk(rfd, "../secret", &size), -EACCES);
	assert_int_equal(tftp_open_walk(rfd, "sub", &size), -EACCES);
	assert_int_equal(tftp_open_walk(rfd, "fifo", &size), -EACCES);
	assert_int_equal(tftp_open_walk(rfd, "sub/nope", &size), -ENOENT);
	close(rfd);
	rm_rf(dir);
	free(root);
}

/* ---- transfer engine against a simulated client ------------------------ */

struct sim {
	struct tftp_xfer x;
	uint8_t pkt[TFTP_PKT_MAX];
	struct buf got;
	int64_t now;
	uint32_t blksize, window;
	uint16_t last;          /* last in-order wire block the client has */
	uint32_t inwin;
	int drop_at;            /* drop the n-th DATA packet (1-based); 0 none */
	unsigned burst;         /* 0: tftp_xfer_build; else build_burst(max) */
	uint8_t *bbuf;          /* burst buffer (burst mode) */
	size_t bcap;
	int bursts;
	int data_sent, acks, timeouts;
	bool wrapped, oack_seen;
	uint64_t oack_tsize;
	int rc;
};

static void client_ack(struct sim *s, uint16_t blk)
{
	uint8_t a[4] = { 0, TFTP_ACK, (uint8_t)(blk >> 8), (uint8_t)blk };
	s->acks++;
	s->inwin = 0;
	s->rc = tftp_xfer_input(&s->x, a, 4, s->now);
}

/* Parse an OACK's options the way a client would. */
static void client_oack(struct sim *s, const uint8_t *p, size_t n)
{
	size_t i = 2;
	while (i < n) {
		const char *name = (const char *)p + i;
		i += strlen(name) + 1;
		const char *val = (const char *)p + i;
		i += strlen(val) + 1;
		uint64_t v;
		assert_int_equal(parse_u64(val, 0, UINT64_MAX, &v), 0);
		if (!strcmp(name, "blksize"))
			s->blksize = (uint32_t)v;
		else if (!strcmp(name, "windowsize"))
			s->window = (uint32_t)v;
		else if (!strcmp(name, "tsize"))
			s->oack_tsize = v;
	}
	s->oack_seen = true;
	client_ack(s, 0);
}

/* The client receives one DATA packet; true when the transfer ended. */
static bool sim_data(struct sim *s, const uint8_t *p, size_t n)
{
	assert_int_equal(p[1], TFTP_DATA);
	if (++s->data_sent == s->drop_at)
		return false;
	uint16_t blk = (uint16_t)(p[2] << 8 | p[3]);
	if (blk != (uint16_t)(s->last + 1)) {
		client_ack(s, s->last);   /* RFC 7440: say where we are */
		return s->rc != 0;
	}
	if (blk == 0)
		s->wrapped = true;
	buf_add(&s->got, p + 4, n - 4);
	s->last = blk;
	s->inwin++;
	if (n - 4 < s->blksize || s->inwin == s->window)
		client_ack(s, s->last);
	return s->rc != 0;
}

/* Run until done or failed; returns the final rc. */
static int sim_run(struct sim *s)
{
	s->blksize = 512;
	s->window = 1;
	s->rc = 0;
	buf_init(&s->got, 0);
	for (int guard = 0; guard < 10000000; guard++) {
		while (tftp_xfer_want_send(&s->x)) {
			if (s->burst && !s->x.oack) {
				/* a burst is on the wire before any ACK is read */
				size_t len;
				int k = tftp_xfer_build_burst(&s->x, s->bbuf, s->bcap,
							      s->burst, &len);
				assert_true(k >= 1 && (unsigned)k <= s->burst);
				tftp_xfer_sent_n(&s->x, (unsigned)k, s->now);
				s->bursts++;
				size_t off = 0, pkt = s->blksize + 4;
				for (int i = 0; i < k; i++) {
					size_t n = i + 1 < k ? pkt : len - off;
					assert_true(n >= 4 && n <= pkt);
					if (sim_data(s, s->bbuf + off, n))
						return s->rc;
					off += n;
				}
				assert_int_equal(off, len);
				continue;
			}
			ssize_t n = tftp_xfer_build(&s->x, s->pkt, sizeof(s->pkt));
			assert_true(n >= 4);
			tftp_xfer_sent(&s->x, s->now);
			int op = s->pkt[1];
			if (op == TFTP_OACK) {
				client_oack(s, s->pkt, (size_t)n);
				continue;
			}
			if (sim_data(s, s->pkt, (size_t)n))
				return s->rc;
		}
		if (s->rc != 0)
			return s->rc;
		/* nothing due: the client is silent, time passes */
		assert_true(s->x.deadline_ms > s->now);
		s->now = s->x.deadline_ms;
		s->timeouts++;
		s->inwin = 0;
		int r = tftp_xfer_timeout(&s->x, s->now);
		if (r < 0)
			return r;
	}
	fail_msg("transfer did not end");
	return -1;
}

static int open_tmp(size_t size, char *path)
{
	strcpy(path, "/tmp/kiln-tftp-file-XXXXXX");
	int fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	write_file(path, size);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void check_content(const char *path, const struct buf *got, size_t size)
{
	struct buf want = BUF_INIT;
	assert_int_equal(file_read(path, &want, 0), 0);
	assert_int_equal(got->len, size);
	assert_int_equal(want.len, size);
	if (size)
		assert_memory_equal(got->s, want.s, size);
	buf_release(&want);
}

static struct sim *xfer_case(size_t size, const char *reqlit, size_t reqlen,
			     const struct tftp_limits *lim, int drop_at,
			     char *path)
{
	uint8_t b[512];
	struct tftp_req r;
	size_t n = mkreq(b, TFTP_RRQ, reqlit, reqlen);
	assert_int_equal(tftp_parse_req(b, n, &r), 0);
	struct sim *s = calloc(1, sizeof(*s));
	int fd = open_tmp(size, path);
	struct tftp_limits none = { 0 };
	assert_int_equal(tftp_xfer_start(&s->x, fd, size, &r, lim ? lim : &none, 0), 0);
	s->drop_at = drop_at;
	return s;
}

static void sim_free(struct sim *s, const char *path)
{
	tftp_xfer_release(&s->x);
	free(s->bbuf);
	buf_release(&s->got);
	unlink(path);
	free(s);
}

#define CASE(size, lit, lim, drop, path) xfer_case(size, lit, sizeof(lit) - 1, lim, drop, path)

static void test_xfer_plain(void **state)
{
	char path[64];
	/* default 512, no options: no OACK; a multiple of 512 ends with an
	 * empty block */
	struct sim *s = CASE(2048, "f\0octet\0", NULL, 0, path);
	assert_false(s->x.oack);
	assert_int_equal(sim_run(s), 1);
	assert_false(s->oack_seen);
	assert_int_equal(s->data_sent, 5);
	check_content(path, &s->got, 2048);
	sim_free(s, path);
	/* empty file: one empty block */
	s = CASE(0, "f\0octet\0", NULL, 0, path);
	assert_int_equal(sim_run(s), 1);
	assert_int_equal(s->data_sent, 1);
	sim_free(s, path);
}

static void test_xfer_options(void **state)
{
	char path[64];
	struct tftp_limits lim = { .max_blksize = 1468 };
	struct sim *s = CASE(100000, "f\0octet\0blksize\00065464\0tsize\0000\0"
			     "windowsize\0001000\0", &lim, 0, path);
	assert_true(s->x.oack);
	assert_int_equal(sim_run(s), 1);
	assert_true(s->oack_seen);
	assert_int_equal(s->blksize, 1468);         /* capped by the server */
	assert_int_equal(s->window, TFTP_WINDOW_MAX);
	assert_int_equal(s->oack_tsize, 100000);
	check_content(path, &s->got, 100000);
	/* one ACK per window, plus the OACK's ACK 0 */
	assert_int_equal(s->acks, 1 + (100000 / 1468 + 1 + 63) / 64);
	sim_free(s, path);

	/* a junk ACK while waiting for ACK 0 changes nothing */
	s = CASE(10, "f\0octet\0tsize\0000\0", NULL, 0, path);
	assert_true(tftp_xfer_want_send(&s->x));
	assert_true(tftp_xfer_build(&s->x, s->pkt, sizeof(s->pkt)) > 2);
	tftp_xfer_sent(&s->x, 0);
	uint8_t a5[4] = { 0, 4, 0, 5 };
	assert_int_equal(tftp_xfer_input(&s->x, a5, 4, 0), -EBADMSG);
	assert_true(s->x.oack);
	assert_false(tftp_xfer_want_send(&s->x));
	uint8_t err[6] = { 0, 5, 0, 0, 'x', 0 };
	assert_int_equal(tftp_xfer_input(&s->x, err, 6, 0), -ECONNRESET);
	sim_free(s, path);
}

static void test_xfer_rollover(void **state)
{
	char path[64];
	/* blksize 8: 70001 blocks, so the 16-bit block number wraps */
	size_t size = 8 * 70000 + 3;
	struct sim *s = CASE(size, "f\0octet\0blksize\08\0windowsize\0008\0", NULL, 0, path);
	assert_int_equal(sim_run(s), 1);
	assert_true(s->wrapped);
	assert_int_equal(s->x.nblocks, 70001);
	check_content(path, &s->got, size);
	assert_int_equal(s->timeouts, 0);
	sim_free(s, path);
}

static void test_xfer_loss_and_timeout(void **state)
{
	char path[64];
	/* the 2nd block of a window of 4 is lost: the client ACKs 1 and the
	 * server resends from 2 without waiting for a timeout */
	struct sim *s = CASE(512 * 10 + 1, "f\0octet\0windowsize\0004\0", NULL, 2, path);
	assert_int_equal(sim_run(s), 1);
	assert_int_equal(s->timeouts, 0);
	check_content(path, &s->got, 512 * 10 + 1);
	sim_free(s, path);
	/* the last block is lost: only a timeout recovers it */
	s = CASE(512 * 3 + 7, "f\0octet\0", NULL, 4, path);
	assert_int_equal(sim_run(s), 1);
	assert_int_equal(s->timeouts, 1);
	check_content(path, &s->got, 512 * 3 + 7);
	sim_free(s, path);

	/* a silent client: backoff doubles to the cap, then give up */
	struct tftp_limits lim = { .timeout_ms = 100, .max_timeout_ms = 400,
				   .max_retries = 4 };
	s = CASE(1000, "f\0octet\0", &lim, 0, path);
	assert_true(tftp_xfer_build(&s->x, s->pkt, sizeof(s->pkt)) == 516);
	tftp_xfer_sent(&s->x, 0);
	assert_int_equal(s->x.deadline_ms, 100);
	int64_t expect[] = { 200, 400, 400, 400 };
	int64_t now = 0;
	for (int i = 0; i < 4; i++) {
		now = s->x.deadline_ms;
		assert_int_equal(tftp_xfer_timeout(&s->x, now), 0);
		assert_true(tftp_xfer_want_send(&s->x));   /* resend block 1 */
		assert_int_equal(s->x.next, 1);
		tftp_xfer_sent(&s->x, now);
		assert_int_equal(s->x.deadline_ms - now, expect[i]);
	}
	assert_int_equal(tftp_xfer_timeout(&s->x, s->x.deadline_ms), -ETIMEDOUT);
	sim_free(s, path);

	/* window 1: a duplicate ACK does not trigger a resend */
	s = CASE(2000, "f\0octet\0", NULL, 0, path);
	tftp_xfer_build(&s->x, s->pkt, sizeof(s->pkt));
	tftp_xfer_sent(&s->x, 0);
	uint8_t a1[4] = { 0, 4, 0, 1 };
	assert_int_equal(tftp_xfer_input(&s->x, a1, 4, 0), 0);
	assert_true(tftp_xfer_want_send(&s->x));
	tftp_xfer_build(&s->x, s->pkt, sizeof(s->pkt));
	tftp_xfer_sent(&s->x, 0);
	assert_false(tftp_xfer_want_send(&s->x));
	assert_int_equal(tftp_xfer_input(&s->x, a1, 4, 0), 0);
	assert_false(tftp_xfer_want_send(&s->x));
	/* an ACK for a block never sent is ignored */
	uint8_t a9[4] = { 0, 4, 0, 9 };
	assert_int_equal(tftp_xfer_input(&s->x, a9, 4, 0), -EBADMSG);
	assert_int_equal(s->x.acked, 1);
	sim_free(s, path);
}

/* Burst mode: every burst of at most `max`, the same content. */
static struct sim *burst_case(struct sim *s, unsigned max, size_t cap)
{
	s->burst = max;
	s->bcap = cap;
	s->bbuf = xmalloc(cap);
	return s;
}

static void test_xfer_burst_layout(void **state)
{
	char path[64];
	/* 10 blocks of 100 + 37 bytes, window 4 */
	struct sim *s = CASE(1037, "f\0octet\0blksize\000100\0windowsize\0004\0",
			     NULL, 0, path);
	struct buf want = BUF_INIT;
	assert_int_equal(file_read(path, &want, 0), 0);
	uint8_t b[2048];
	size_t len = 99;
	/* the OACK is due: no burst */
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 64, &len), 0);
	assert_int_equal(len, 0);
	assert_true(tftp_xfer_build(&s->x, b, sizeof(b)) > 2);
	tftp_xfer_sent(&s->x, 0);
	uint8_t ack0[4] = { 0, TFTP_ACK, 0, 0 };
	assert_int_equal(tftp_xfer_input(&s->x, ack0, 4, 0), 0);
	/* too small for one packet */
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, 103, 64, &len), -ENOBUFS);
	/* max 64 but the window is 4: blocks 1..4, 104 bytes each */
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 64, &len), 4);
	assert_int_equal(len, 4 * 104);
	for (int i = 0; i < 4; i++) {
		const uint8_t *p = b + i * 104;
		assert_int_equal(p[0], 0);
		assert_int_equal(p[1], TFTP_DATA);
		assert_int_equal(p[2] << 8 | p[3], i + 1);
		assert_memory_equal(p + 4, want.s + i * 100, 100);
	}
	/* building does not advance; two went out, two are still due */
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, 2 * 104 + 50, 64, &len), 2);
	tftp_xfer_sent_n(&s->x, 2, 10);
	assert_int_equal(s->x.next, 3);
	assert_int_equal(s->x.deadline_ms, 10 + 1000);
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 64, &len), 2);
	assert_int_equal(b[3], 3);
	assert_int_equal(b[104 + 3], 4);
	/* more than built cannot run past the window */
	tftp_xfer_sent_n(&s->x, 9, 20);
	assert_int_equal(s->x.next, 5);
	assert_false(tftp_xfer_want_send(&s->x));
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 64, &len), 0);
	/* the client lost block 3: ACK 2 rolls the window back to 3..6 */
	uint8_t ack2[4] = { 0, TFTP_ACK, 0, 2 };
	assert_int_equal(tftp_xfer_input(&s->x, ack2, 4, 30), 0);
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 64, &len), 4);
	assert_int_equal(b[3], 3);
	assert_memory_equal(b + 4, want.s + 200, 100);
	tftp_xfer_sent_n(&s->x, 4, 40);
	/* a timeout resends from the last ACKed block too */
	assert_int_equal(tftp_xfer_timeout(&s->x, 1040), 0);
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 3, &len), 3);
	assert_int_equal(b[3], 3);
	tftp_xfer_sent_n(&s->x, 3, 1040);
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 3, &len), 1);
	assert_int_equal(b[3], 6);
	tftp_xfer_sent_n(&s->x, 1, 1040);
	uint8_t ack9[4] = { 0, TFTP_ACK, 0, 6 };
	assert_int_equal(tftp_xfer_input(&s->x, ack9, 4, 1050), 0);
	/* 7..10 then the last, short block 11 (37 bytes) */
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 64, &len), 4);
	tftp_xfer_sent_n(&s->x, 4, 1060);
	uint8_t ack10[4] = { 0, TFTP_ACK, 0, 10 };
	assert_int_equal(tftp_xfer_input(&s->x, ack10, 4, 1070), 0);
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 64, &len), 1);
	assert_int_equal(len, 4 + 37);
	assert_int_equal(b[3], 11);
	assert_memory_equal(b + 4, want.s + 1000, 37);
	tftp_xfer_sent_n(&s->x, 1, 1080);
	uint8_t ack11[4] = { 0, TFTP_ACK, 0, 11 };
	assert_int_equal(tftp_xfer_input(&s->x, ack11, 4, 1090), 1);
	buf_release(&want);
	sim_free(s, path);

	/* a multiple of blksize: the burst ends with the empty block */
	s = CASE(300, "f\0octet\0blksize\000100\0windowsize\0008\0", NULL, 0, path);
	assert_true(tftp_xfer_build(&s->x, b, sizeof(b)) > 2);
	tftp_xfer_sent(&s->x, 0);
	assert_int_equal(tftp_xfer_input(&s->x, ack0, 4, 0), 0);
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 64, &len), 4);
	assert_int_equal(len, 3 * 104 + 4);
	assert_int_equal(b[3 * 104 + 3], 4);
	sim_free(s, path);

	/* the file shrank under us: a read error, not a short packet */
	s = CASE(1000, "f\0octet\0blksize\000100\0windowsize\0004\0", NULL, 0, path);
	assert_true(tftp_xfer_build(&s->x, b, sizeof(b)) > 2);
	tftp_xfer_sent(&s->x, 0);
	assert_int_equal(tftp_xfer_input(&s->x, ack0, 4, 0), 0);
	assert_int_equal(truncate(path, 250), 0);
	assert_int_equal(tftp_xfer_build_burst(&s->x, b, sizeof(b), 64, &len), -EIO);
	sim_free(s, path);
}

static void test_xfer_burst_sim(void **state)
{
	char path[64];
	/* whole windows per burst, across the 16-bit rollover */
	size_t size = 8 * 70000 + 3;
	struct sim *s = burst_case(CASE(size, "f\0octet\0blksize\08\0windowsize\00064\0",
					NULL, 0, path), 64, 64 * 12);
	assert_int_equal(sim_run(s), 1);
	assert_true(s->wrapped);
	assert_int_equal(s->timeouts, 0);
	assert_int_equal(s->bursts, (70001 + 63) / 64);
	check_content(path, &s->got, size);
	sim_free(s, path);
	/* bursts smaller than the window (a GSO send's worth), a lost block
	 * mid-window: recovered from the client's ACK, no timeout */
	size = 1468 * 500 + 11;
	s = burst_case(CASE(size, "f\0octet\0blksize\0001468\0windowsize\00064\0",
			    NULL, 100, path), 44, 256 << 10);
	assert_int_equal(sim_run(s), 1);
	assert_int_equal(s->timeouts, 0);
	check_content(path, &s->got, size);
	sim_free(s, path);
	/* the burst buffer, not max, limits: 5 packets of 1472 fit in 8000 */
	s = burst_case(CASE(size, "f\0octet\0blksize\0001468\0windowsize\00016\0",
			    NULL, 0, path), 128, 8000);
	assert_int_equal(sim_run(s), 1);
	/* 501 blocks: 31 full windows of 5+5+5+1, then 5 blocks */
	assert_int_equal(s->bursts, 31 * 4 + 1);
	check_content(path, &s->got, size);
	sim_free(s, path);
	/* the last block of the file lost: a timeout resends it */
	s = burst_case(CASE(100 * 9 + 5, "f\0octet\0blksize\000100\0windowsize\0004\0",
			    NULL, 10, path), 4, 4096);
	assert_int_equal(sim_run(s), 1);
	assert_int_equal(s->timeouts, 1);
	check_content(path, &s->got, 100 * 9 + 5);
	sim_free(s, path);
}

static void test_xfer_window_bytes(void **state)
{
	char path[64];
	/* 65464-byte blocks: at most 2 per window by default */
	struct sim *s = CASE(300000, "f\0octet\0blksize\00065464\0windowsize\0008\0",
			     NULL, 0, path);
	assert_int_equal(s->x.window, 2);
	assert_int_equal(sim_run(s), 1);
	assert_int_equal(s->window, 2);   /* what the OACK said */
	check_content(path, &s->got, 300000);
	sim_free(s, path);
	/* a custom cap; never below 1 */
	struct tftp_limits lim = { .max_window_bytes = 4096 };
	s = CASE(1000, "f\0octet\0blksize\0001024\0windowsize\00016\0", &lim, 0, path);
	assert_int_equal(s->x.window, 4);
	sim_free(s, path);
	s = CASE(1000, "f\0octet\0blksize\0008192\0windowsize\00016\0", &lim, 0, path);
	assert_int_equal(s->x.window, 1);
	sim_free(s, path);
	/* 1468-byte blocks keep the full 64 */
	s = CASE(1000, "f\0octet\0blksize\0001468\0windowsize\000100\0", NULL, 0, path);
	assert_int_equal(s->x.window, TFTP_WINDOW_MAX);
	sim_free(s, path);
}

/* ---- the libevent server on loopback ------------------------------------ */

struct lclient {
	int fd;
	struct sockaddr_in srv;   /* the transfer's address once known */
	bool known, done;
	uint32_t blksize, window, inwin;
	uint16_t last;
	struct buf got;
	int err_code;
};

static int udp_client(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void lsend(int fd, const struct sockaddr_in *to, const void *p, size_t n)
{
	assert_int_equal(sendto(fd, p, n, 0, (const struct sockaddr *)to, sizeof(*to)),
			 (ssize_t)n);
}

/* Read what has arrived for c and answer like a client would. */
static void lclient_poll(struct lclient *c)
{
	uint8_t b[TFTP_PKT_MAX];
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(c->fd, b, sizeof(b), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);
		if (n < 0)
			return;
		assert_true(n >= 4);
		if (!c->known) {
			c->srv = from;
			c->known = true;
		}
		/* every packet of a transfer comes from its own port */
		assert_int_equal(from.sin_port, c->srv.sin_port);
		int op = b[1];
		uint16_t blk = (uint16_t)(b[2] << 8 | b[3]);
		uint8_t ack[4] = { 0, TFTP_ACK, 0, 0 };
		if (op == TFTP_ERROR) {
			c->err_code = b[3];
			c->done = true;
			return;
		}
		if (op == TFTP_OACK) {
			lsend(c->fd, &c->srv, ack, 4);
			continue;
		}
		assert_int_equal(op, TFTP_DATA);
		if (blk != (uint16_t)(c->last + 1))
			continue;
		buf_add(&c->got, b + 4, (size_t)n - 4);
		c->last = blk;
		if ((size_t)n - 4 < c->blksize || ++c->inwin == c->window) {
			c->inwin = 0;
			ack[2] = (uint8_t)(blk >> 8);
			ack[3] = (uint8_t)blk;
			lsend(c->fd, &c->srv, ack, 4);
			if ((size_t)n - 4 < c->blksize)
				c->done = true;
		}
	}
}

static void server_loopback(bool no_gso)
{
	char dir[] = "/tmp/kiln-tftpd-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *f = xasprintf("%s/a.bin", dir);
	write_file(f, 300001);
	struct event_base *base = event_base_new();
	assert_non_null(base);
	struct boot_tftp_opts o = { .addr = INADDR_LOOPBACK, .root = dir,
				    .max_per_client = 8, .no_gso = no_gso };
	struct boot_tftp *t = NULL;
	struct kerr e;
	int r = -1;
	for (int i = 0; i < 20 && r < 0; i++) {
		o.port = (uint16_t)(20000 + (getpid() * 7 + i * 101) % 30000);
		r = boot_tftp_start(base, &o, &t, &e);
	}
	assert_int_equal(r, 0);
	assert_int_equal(boot_tftp_port(t), o.port);
	struct sockaddr_in srv = { .sin_family = AF_INET, .sin_port = htons(o.port) };
	srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	/* eight transfers at once, half with options */
	enum { NC = 8 };
	struct lclient c[NC];
	static const char rq_plain[] = "a.bin\0octet\0";
	static const char rq_opts[] = "a.bin\0octet\0blksize\0001024\0windowsize\0004\0";
	for (int i = 0; i < NC; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].fd = udp_client();
		buf_init(&c[i].got, 0);
		uint8_t b[128];
		size_t n;
		if (i % 2) {
			n = mkreq(b, TFTP_RRQ, rq_opts, sizeof(rq_opts) - 1);
			c[i].blksize = 1024;
			c[i].window = 4;
		} else {
			n = mkreq(b, TFTP_RRQ, rq_plain, sizeof(rq_plain) - 1);
			c[i].blksize = 512;
			c[i].window = 1;
		}
		lsend(c[i].fd, &srv, b, n);
	}
	/* refusals */
	struct { const char *lit; size_t len; int op, code; } bad[] = {
		{ "../a.bin\0octet\0", 15, TFTP_RRQ, TFTP_EACCESS },
		{ "/etc/passwd\0octet\0", 18, TFTP_RRQ, TFTP_EACCESS },
		{ "nope\0octet\0", 11, TFTP_RRQ, TFTP_ENOTFOUND },
		{ "a.bin\0octet\0", 12, TFTP_WRQ, TFTP_EACCESS },
		{ "a.bin\0netascii\0", 15, TFTP_RRQ, TFTP_EUNDEF },
		{ "a.bin\0octet\0", 12, 9, TFTP_EBADOP },
	};
	struct lclient bc[ARRAY_SIZE(bad)];
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&bc[i], 0, sizeof(bc[i]));
		bc[i].fd = udp_client();
		buf_init(&bc[i].got, 0);
		uint8_t b[128];
		size_t n = mkreq(b, bad[i].op, bad[i].lit, bad[i].len);
		lsend(bc[i].fd, &srv, b, n);
	}
	/* a ninth concurrent transfer from the same address is over the cap */
	struct lclient over = { 0 };
	over.fd = udp_client();
	buf_init(&over.got, 0);
	{
		uint8_t b[128];
		size_t n = mkreq(b, TFTP_RRQ, rq_plain, sizeof(rq_plain) - 1);
		lsend(over.fd, &srv, b, n);
	}
	int64_t until = now_ms() + 20000;
	bool all;
	do {
		event_base_loop(base, EVLOOP_NONBLOCK);
		all = true;
		for (int i = 0; i < NC; i++) {
			lclient_poll(&c[i]);
			all &= c[i].done;
		}
		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			lclient_poll(&bc[i]);
			all &= bc[i].done;
		}
		lclient_poll(&over);
		all &= over.done;
	} while (!all && now_ms() < until);
	assert_int_equal(over.err_code, TFTP_EUNDEF);
	assert_int_equal(over.got.len, 0);
	close(over.fd);
	buf_release(&over.got);
	assert_true(all);
	for (int i = 0; i < NC; i++) {
		assert_int_equal(c[i].err_code, 0);
		check_content(f, &c[i].got, 300001);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(bc[i].err_code, bad[i].code);
		assert_int_equal(bc[i].got.len, 0);
	}
	/* the final ACKs end every transfer */
	until = now_ms() + 5000;
	while (boot_tftp_active(t) > 0 && now_ms() < until)
		event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(boot_tftp_active(t), 0);
	/*
	 * Send path: 4 plain transfers of 587 blocks (one send each) and 4
	 * of 294 blocks in windows of 4, each window one GSO send or one
	 * sendmmsg(): at least 3 calls saved per window.
	 */
	struct boot_tftp_stats st;
	boot_tftp_stats(t, &st);
	uint64_t plain = 300001 / 512 + 1, win = 300001 / 1024 + 1;
	assert_true(st.data_packets >= 4 * (plain + win));
	assert_true(st.send_calls >= 4 * (plain + win / 4));
	assert_true(st.send_calls + 4 * 3 * (win / 4) <= st.data_packets);
	if (no_gso) {
		assert_int_equal(st.gso_sends, 0);
	} else {
		assert_true(st.gso_sends >= 4 * (win / 4));
		assert_int_equal(st.gso_fallbacks, 0);
	}
	for (int i = 0; i < NC; i++) {
		close(c[i].fd);
		buf_release(&c[i].got);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		close(bc[i].fd);
		buf_release(&bc[i].got);
	}
	boot_tftp_free(t);
	event_base_free(base);
	rm_rf(dir);
	free(f);
}

static void test_server_loopback(void **state)
{
	server_loopback(false);
}

static void test_server_loopback_no_gso(void **state)
{
	server_loopback(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_req),
		cmocka_unit_test(test_name_ok),
		cmocka_unit_test(test_open_beneath),
		cmocka_unit_test(test_xfer_plain),
		cmocka_unit_test(test_xfer_options),
		cmocka_unit_test(test_xfer_rollover),
		cmocka_unit_test(test_xfer_loss_and_timeout),
		cmocka_unit_test(test_xfer_burst_layout),
		cmocka_unit_test(test_xfer_burst_sim),
		cmocka_unit_test(test_xfer_window_bytes),
		cmocka_unit_test(test_server_loopback),
		cmocka_unit_test(test_server_loopback_no_gso),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
