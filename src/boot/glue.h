/*
 * Private to the boot glue (dhcp_net.c, tftp_net.c, syncer.c): what the
 * socket files share.  Not part of boot.h's interface.
 */
#ifndef KILN_BOOT_GLUE_H
#define KILN_BOOT_GLUE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "util/util.h"

struct event_base;

/* ip and port in host order. */
static inline void sin_set(struct sockaddr_in *s, uint32_t ip, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->sin_family = AF_INET;
	s->sin_addr.s_addr = htonl(ip);
	s->sin_port = htons(port);
}

/*
 * syncer: makes writes durable off the event loop.
 *
 * The loop writes (a database commit without fsync), then calls
 * syncer_request(), which returns that request's generation.  A thread
 * runs fn(fn_arg) (an fsync) for every run of requests that arrived while
 * it was busy, so one fsync covers them all, and the loop hears back
 * through done(done_arg, gen, err): every request up to gen is durable,
 * or err (negative errno) says it is not.  A failed sync is final: after
 * fsync fails the kernel may already have dropped the dirty pages, so a
 * later fsync that succeeds proves nothing; every later report carries
 * the first error.
 *
 * min_gap_us paces the thread: a sync starts no sooner than that after
 * the previous one started (0: back to back).  Under a steady load each
 * sync then covers more requests; an idle syncer starts at once.
 *
 * fn runs on the syncer's thread and must touch nothing the loop uses
 * without a lock (an fd of its own is the intended case).  done runs on
 * the loop.  Generations start at 1 and only grow.
 */
typedef int syncer_fn(void *arg);
typedef void syncer_done_fn(void *arg, uint64_t gen, int err);
struct syncer;

int syncer_start(struct event_base *base, syncer_fn *fn, void *fn_arg,
		 syncer_done_fn *done, void *done_arg, unsigned min_gap_us,
		 struct syncer **out, struct kerr *e);
uint64_t syncer_request(struct syncer *s);
/* Waits for a sync in progress, then stops the thread (NULL is fine).
 * Requests not yet reported are never reported. */
void syncer_free(struct syncer *s);

#endif
