/*
 * reach: does the overlay carry packets?  ICMP echo to every target at once
 * over one raw socket (the agent runs as root; no ping processes), resent
 * every 200 ms to those that have not answered, until all have or the
 * timeout passes.  Replies are parsed with a remaining-length count and
 * matched on source address, identifier and sequence.
 */
#include "res_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REACH_MAX_TARGETS 10000
#define REACH_MAX_MS 60000
#define REACH_RESEND_MS 200
#define REACH_REPORT_MAX 20        /* silent targets named in the message */

static int reach_validate(const json_t *r, const char *id, struct kerr *e)
{
	json_t *t = json_object_get(r, "targets"), *x, *v;
	size_t i;
	struct in_addr a;

	if (!json_is_array(t) || !json_array_size(t) ||
	    json_array_size(t) > REACH_MAX_TARGETS)
		return kerr_set(e, -EINVAL, "resource '%s': field 'targets': expected 1 to "
				"%d targets", id, REACH_MAX_TARGETS);
	if ((v = json_object_get(r, "timeout_ms")) &&
	    (json_integer_value(v) < 1 || json_integer_value(v) > REACH_MAX_MS))
		return kerr_set(e, -EINVAL, "resource '%s': field 'timeout_ms': expected "
				"1..%d", id, REACH_MAX_MS);
	json_array_foreach(t, i, x) {
		const char *k;
		json_t *y;
		if (!json_is_object(x))
			return kerr_set(e, -EINVAL, "resource '%s': targets[%zu]: expected an "
					"object", id, i);
		json_object_foreach(x, k, y)
			if (strcmp(k, "name") && strcmp(k, "address"))
				return kerr_set(e, -EINVAL, "resource '%s': targets[%zu]: "
						"unknown field '%s'", id, i, k);
		const char *n = res_str(x, "name"), *ad = res_str(x, "address");
		if (!n || !*n || strlen(n) > 253 || strpbrk(n, "\n\r"))
			return kerr_set(e, -EINVAL, "resource '%s': targets[%zu]: field 'name': "
					"expected a one-line name", id, i);
		if (!ad || inet_pton(AF_INET, ad, &a) != 1)
			return kerr_set(e, -EINVAL, "resource '%s': targets[%zu]: field "
					"'address': expected an IPv4 address", id, i);
	}
	return 0;
}

static uint16_t icmp_sum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Echo request: type 8, code 0, checksum, id, seq, 8 bytes of payload. */
static void echo_send(int fd, struct in_addr to, uint16_t id, uint16_t seq)
{
	uint8_t pk[16] = { 8, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff,
			   'k', 'i', 'l', 'n', 'r', 'e', 'a', 'c' };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = to };
	uint16_t c = icmp_sum(pk, sizeof(pk));

	pk[2] = c >> 8;
	pk[3] = c & 0xff;
	/* A full send buffer or an unreachable route is retried next round. */
	(void)sendto(fd, pk, sizeof(pk), MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof(sa));
}

/*
 * Parse one datagram from a raw ICMP socket (IPv4 header included): the
 * index of the target it answers, or -1 when it is not ours.
 */
static long echo_match(const uint8_t *p, size_t len, uint16_t id,
		       const struct in_addr *addrs, size_t n)
{
	size_t ihl;
	uint32_t src;

	if (len < 20)
		goto not_ours;
	ihl = (size_t)(p[0] & 0x0f) * 4;
	if ((p[0] >> 4) != 4 || ihl < 20 || len < ihl + 8)
		goto not_ours;
	memcpy(&src, p + 12, 4);
	p += ihl;
	if (p[0] != 0 || p[1] != 0 || (uint16_t)(p[4] << 8 | p[5]) != id)
		goto not_ours;
	uint16_t seq = (uint16_t)(p[6] << 8 | p[7]);
	if (seq >= n || addrs[seq].s_addr != src)
		goto not_ours;
	return seq;
not_ours:
	return -1;
}

static void reach_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	json_t *t = json_object_get(r, "targets"), *x;
	size_t n = json_array_size(t), left = n, i;
	json_t *tv = json_object_get(r, "timeout_ms");
	int timeout = tv ? (int)json_integer_value(tv) : 5000;
	struct in_addr *addrs = NULL;
	bool *got = NULL;
	uint16_t id;
	int fd = -1;

	if (ctx->check_only) {
		res_note(out, "checked on apply");
		return;
	}
	addrs = xcalloc(n, sizeof(*addrs));
	got = xcalloc(n, sizeof(*got));
	json_array_foreach(t, i, x)
		inet_pton(AF_INET, res_str(x, "address"), &addrs[i]);
	fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ICMP);
	if (fd < 0) {
		res_fail(out, "raw ICMP socket: %s", strerror(errno));
		goto out;
	}
	id = (uint16_t)(getpid() ^ (now_ms() & 0xffff));
	int64_t end = now_ms() + timeout, next = 0;
	while (left) {
		int64_t now = now_ms();
		if (now >= end)
			break;
		if (now >= next) {
			for (i = 0; i < n; i++)
				if (!got[i])
					echo_send(fd, addrs[i], id, (uint16_t)i);
			next = now + REACH_RESEND_MS;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t wait = (next < end ? next : end) - now;
		if (poll(&pfd, 1, (int)(wait > 0 ? wait : 0)) <= 0)
			continue;
		for (;;) {
			uint8_t pk[1500];
			ssize_t len = recv(fd, pk, sizeof(pk), MSG_DONTWAIT);
			if (len < 0)
				break;
			long k = echo_match(pk, (size_t)len, id, addrs, n);
			if (k >= 0 && !got[k]) {
				got[k] = true;
				left--;
			}
		}
	}
	if (!left) {
		res_note(out, "%zu peer%s answered", n, n == 1 ? "" : "s");
		goto out;
	}
	struct buf b;
	size_t shown = 0;
	buf_init(&b, 0);
	for (i = 0; i < n; i++) {
		if (got[i])
			continue;
		if (shown++ == REACH_REPORT_MAX) {
			buf_printf(&b, " and %zu more", left - REACH_REPORT_MAX);
			break;
		}
		buf_printf(&b, "%s%s (%s)", shown > 1 ? ", " : "",
			   res_str(json_array_get(t, i), "name"),
			   res_str(json_array_get(t, i), "address"));
	}
	if (timeout % 1000)
		res_fail(out, "no reply from %s within %d ms", b.s, timeout);
	else
		res_fail(out, "no reply from %s within %d s", b.s, timeout / 1000);
	buf_release(&b);
out:
	if (fd >= 0)
		close(fd);
	free(addrs);
	free(got);
}

static const struct field reach_fields[] = {
	{ "targets", F_ANY, true, NULL },
	{ "timeout_ms", F_INT, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_reach = {
	.name = "reach", .id_field = "targets", .fields = reach_fields,
	.validate = reach_validate, .run = reach_run,
};
