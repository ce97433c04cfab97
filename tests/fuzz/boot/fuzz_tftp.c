/*
 * libFuzzer: the TFTP request parser and name checks, then a transfer
 * driven by the rest of the input as client packets and timeouts.
 * Input: [len] request[len] then items [kind][len] bytes[len].
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int file_fd = -1;
static uint8_t pkt[TFTP_PKT_MAX];
#define FILE_SIZE 3000

static void setup(void)
{
	uint8_t b[FILE_SIZE];
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)i;
	file_fd = memfd_create("kbt-fuzz", MFD_CLOEXEC);
	if (file_fd < 0 || write(file_fd, b, sizeof(b)) != (ssize_t)sizeof(b))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tftp_req r;
	struct tftp_xfer x;
	if (file_fd < 0)
		setup();
	if (size < 1)
		return 0;
	size_t rl = data[0];
	if (rl > size - 1)
		rl = size - 1;
	if (tftp_parse_req(data + 1, rl, &r) < 0)
		return 0;
	if (strlen(r.name) > TFTP_NAME_MAX)
		abort();
	tftp_name_ok(r.name);
	struct tftp_limits lim = { .max_retries = 3 };
	int fd = dup(file_fd);
	if (fd < 0)
		return 0;
	if (tftp_xfer_start(&x, fd, FILE_SIZE, &r, &lim, 0) < 0)
		abort();
	if (x.blksize < TFTP_BLKSIZE_MIN || x.blksize > TFTP_BLKSIZE_MAX ||
	    x.window < 1 || x.window > TFTP_WINDOW_MAX)
		abort();
	const uint8_t *p = data + 1 + rl;
	size_t left = size - 1 - rl;
	int64_t now = 0;
	while (left >= 2) {
		uint8_t kind = p[0], l = p[1];
		p += 2;
		left -= 2;
		if (l > left)
			l = (uint8_t)left;
		for (int i = 0; i < 100 && tftp_xfer_want_send(&x); i++) {
			ssize_t n = tftp_xfer_build(&x, pkt, sizeof(pkt));
			if (n < 4)
				abort();
			tftp_xfer_sent(&x, now);
		}
		if (kind & 1) {
			now = x.deadline_ms;
			if (tftp_xfer_timeout(&x, now) < 0)
				break;
		} else if (tftp_xfer_input(&x, p, l, now) == 1) {
			break;
		}
		if (x.acked > x.nblocks || x.next > x.nblocks + 1)
			abort();
		p += l;
		left -= l;
	}
	tftp_xfer_release(&x);
	return 0;
}
