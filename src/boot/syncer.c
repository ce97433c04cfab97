/*
 * The syncer thread (glue.h).  One mutex guards the generation counters;
 * an eventfd wakes the loop, which reads the counters back under the same
 * mutex, so a wake-up that arrives late or twice reports nothing wrong.
 */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "boot/glue.h"

struct syncer {
	syncer_fn *fn;
	void *fn_arg;
	syncer_done_fn *done;
	void *done_arg;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t requested;  /* last generation asked for */
	uint64_t synced;     /* last generation covered by a finished fn() */
	int err;             /* first failure, sticky; 0 while all is well */
	bool stop;
	unsigned min_gap_us;         /* pacing, see syncer_main */
	struct timespec last_start;  /* CLOCK_MONOTONIC */

	int efd;             /* eventfd: the thread's "synced moved" */
	struct event *ev;
	uint64_t reported;   /* loop side: last generation passed to done */
};

static void *syncer_main(void *arg)
{
	struct syncer *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && s->synced == s->requested)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->stop)
			break;
		/* Pace: no sync starts sooner than min_gap after the last one
		 * started, so one sync covers more under a steady load. */
		struct timespec next = s->last_start;
		next.tv_nsec += (long)s->min_gap_us * 1000;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec += next.tv_nsec / 1000000000L;
			next.tv_nsec %= 1000000000L;
		}
		while (!s->stop && s->min_gap_us &&
		       pthread_cond_timedwait(&s->cv, &s->mu, &next) != ETIMEDOUT)
			;
		if (s->stop)
			break;
		clock_gettime(CLOCK_MONOTONIC, &s->last_start);
		uint64_t target = s->requested;
		bool failed = s->err != 0;
		pthread_mutex_unlock(&s->mu);
		int r = failed ? 0 : s->fn(s->fn_arg);
		pthread_mutex_lock(&s->mu);
		if (r < 0 && !s->err)
			s->err = r;
		s->synced = target;
		uint64_t one = 1;
		/* Cannot fail short of a counter overflow (2^64 - 1 wake-ups);
		 * the loop reads the state under the mutex anyway. */
		(void)!write(s->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void syncer_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct syncer *s = arg;
	uint64_t n;

	(void)what;
	(void)!read(fd, &n, sizeof(n));
	pthread_mutex_lock(&s->mu);
	uint64_t gen = s->synced;
	int err = s->err;
	pthread_mutex_unlock(&s->mu);
	if (gen == s->reported && !err)
		return;
	s->reported = gen;
	s->done(s->done_arg, gen, err);
}

int syncer_start(struct event_base *base, syncer_fn *fn, void *fn_arg,
		 syncer_done_fn *done, void *done_arg, unsigned min_gap_us,
		 struct syncer **out, struct kerr *e)
{
	struct syncer *s = xcalloc(1, sizeof(*s));
	int r;

	s->fn = fn;
	s->fn_arg = fn_arg;
	s->done = done;
	s->done_arg = done_arg;
	s->min_gap_us = min_gap_us;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		r = kerr_set(e, -errno, "syncer: eventfd: %s", strerror(errno));
		goto fail;
	}
	s->ev = event_new(base, s->efd, EV_READ | EV_PERSIST, syncer_on_wake, s);
	if (!s->ev || event_add(s->ev, NULL) < 0) {
		r = kerr_set(e, -ENOMEM, "syncer: cannot register event");
		goto fail;
	}
	/* Signals are the loop's business: the thread starts with all blocked
	 * (so none interrupts its fdatasync), the caller's mask is restored. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&s->thread, NULL, syncer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		r = kerr_set(e, -r, "syncer: thread: %s", strerror(r));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->ev)
		event_free(s->ev);
	if (s->efd >= 0)
		close(s->efd);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return r;
}

uint64_t syncer_request(struct syncer *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t gen = ++s->requested;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return gen;
}

void syncer_free(struct syncer *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	event_free(s->ev);
	close(s->efd);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
