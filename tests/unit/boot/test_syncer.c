/* boot: the syncer thread (glue.h) — group commit and sticky failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "boot/glue.h"

struct fx {
	struct event_base *base;
	atomic_int calls;
	atomic_int fail_at;      /* call number that returns -EIO; 0 = none */
	atomic_int finished;     /* calls that returned */
	int slow_ms;             /* every call sleeps this long */
	struct timespec started[8];  /* when each call began */
	uint64_t last_gen;       /* reported by done */
	int last_err;
	bool regressed;          /* a report went backwards */
};

static int fx_sync(void *arg)
{
	struct fx *f = arg;
	int n = atomic_fetch_add(&f->calls, 1) + 1;
	if (n <= 8)
		clock_gettime(CLOCK_MONOTONIC, &f->started[n - 1]);
	struct timespec ts = { 0, (long)f->slow_ms * 1000000L };
	nanosleep(&ts, NULL);
	atomic_fetch_add(&f->finished, 1);
	return n == atomic_load(&f->fail_at) ? -EIO : 0;
}

static void fx_done(void *arg, uint64_t gen, int err)
{
	struct fx *f = arg;
	if (gen < f->last_gen)
		f->regressed = true;
	f->last_gen = gen;
	f->last_err = err;
}

/* Run the loop until done reported gen (or 5 s passed). */
static void wait_gen(struct fx *f, uint64_t gen)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (f->last_gen < gen) {
		struct timeval tv = { 0, 50000 };
		event_base_loopexit(f->base, &tv);
		event_base_loop(f->base, EVLOOP_ONCE);
		clock_gettime(CLOCK_MONOTONIC, &t);
		assert_true(t.tv_sec - t0.tv_sec < 5);
	}
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->base = event_base_new();
	*state = f;
	return f->base ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Requests made while a sync runs share the next one: fewer syncs than
 * requests, every generation reported, in order. */
static void test_group(void **state)
{
	struct fx *f = *state;
	struct syncer *s;
	struct kerr e;
	f->slow_ms = 50;
	assert_int_equal(syncer_start(f->base, fx_sync, f, fx_done, f, 0, &s, &e), 0);
	assert_int_equal(syncer_request(s), 1);
	for (uint64_t g = 2; g <= 10; g++)
		assert_int_equal(syncer_request(s), g);
	wait_gen(f, 10);
	assert_int_equal(f->last_err, 0);
	assert_false(f->regressed);
	/* request 1 may or may not have started alone; 2..10 arrived while a
	 * 50 ms sync ran, so at most two syncs covered all ten */
	assert_in_range(atomic_load(&f->calls), 1, 2);
	int before = atomic_load(&f->calls);
	assert_int_equal(syncer_request(s), 11);
	wait_gen(f, 11);
	assert_int_equal(atomic_load(&f->calls), before + 1);
	syncer_free(s);
}

/* After a failed sync every later request fails too, and fn is not run
 * again: a later fsync could succeed without the lost pages. */
static void test_sticky_failure(void **state)
{
	struct fx *f = *state;
	struct syncer *s;
	struct kerr e;
	atomic_store(&f->fail_at, 2);
	assert_int_equal(syncer_start(f->base, fx_sync, f, fx_done, f, 0, &s, &e), 0);
	syncer_request(s);
	wait_gen(f, 1);
	assert_int_equal(f->last_err, 0);
	syncer_request(s);
	wait_gen(f, 2);
	assert_int_equal(f->last_err, -EIO);
	syncer_request(s);
	wait_gen(f, 3);
	assert_int_equal(f->last_err, -EIO);
	assert_int_equal(atomic_load(&f->calls), 2);
	syncer_free(s);
}

/* With a 300 ms gap, a request made right after a sync waits for the gap;
 * the first sync of an idle syncer does not. */
static void test_pacing(void **state)
{
	struct fx *f = *state;
	struct syncer *s;
	struct kerr e;
	struct timespec t0;
	assert_int_equal(syncer_start(f->base, fx_sync, f, fx_done, f, 300000, &s, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	syncer_request(s);
	wait_gen(f, 1);
	syncer_request(s);
	wait_gen(f, 2);
	assert_int_equal(atomic_load(&f->calls), 2);
	long first_ms = (f->started[0].tv_sec - t0.tv_sec) * 1000 +
			(f->started[0].tv_nsec - t0.tv_nsec) / 1000000;
	long gap_ms = (f->started[1].tv_sec - f->started[0].tv_sec) * 1000 +
		      (f->started[1].tv_nsec - f->started[0].tv_nsec) / 1000000;
	assert_true(first_ms < 250);   /* not held back by the gap */
	assert_true(gap_ms >= 299);
	syncer_free(s);
}

/* Freeing waits for a sync in progress to return (its fn may use what
 * the caller frees next). */
static void test_free_while_busy(void **state)
{
	struct fx *f = *state;
	struct syncer *s;
	struct kerr e;
	f->slow_ms = 100;
	assert_int_equal(syncer_start(f->base, fx_sync, f, fx_done, f, 0, &s, &e), 0);
	syncer_request(s);
	struct timespec ts = { 0, 20 * 1000000L };
	nanosleep(&ts, NULL);
	assert_int_equal(atomic_load(&f->calls), 1);
	assert_int_equal(atomic_load(&f->finished), 0);   /* 80 ms still to go */
	syncer_free(s);
	assert_int_equal(atomic_load(&f->finished), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sticky_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pacing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_while_busy, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
