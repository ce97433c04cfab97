/*
 * What the render tests share (purity.h): the purity watch: every way into a file or
 * a clock, wrapped at link time (--wrap, kiln_pure_test in CMakeLists.txt),
 * counted while watching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/time.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "purity.h"
#include "resources/resources.h"
#include "spec/spec.h"
#include "stacks/stacks.h"
#include "util/util.h"

bool purity_watching;
int purity_calls;
static char impure_what[64];

static void impure(const char *what)
{
	if (!purity_watching)
		return;
	if (!purity_calls++)
		snprintf(impure_what, sizeof(impure_what), "%s", what);
}

void purity_start(void)
{
	purity_calls = 0;
	purity_watching = true;
}

void purity_stop(const char *what)
{
	purity_watching = false;
	if (purity_calls)
		fail_msg("%s called %s (%d calls to files or clocks)", what, impure_what,
			 purity_calls);
}

#define WRAP_OPEN(name, ...)                                                  \
	int __real_##name(__VA_ARGS__, int flags, ...);                       \
	int __wrap_##name(__VA_ARGS__, int flags, ...);                       \
	int __wrap_##name(__VA_ARGS__, int flags, ...)                        \
	{                                                                     \
		va_list ap;                                                   \
		va_start(ap, flags);                                          \
		mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0; \
		va_end(ap);                                                   \
		impure(#name);                                                \
		return __real_##name(ARGS_##name, flags, mode);               \
	}
#define ARGS_open path
#define ARGS_open64 path
#define ARGS_openat dfd, path
#define ARGS_openat64 dfd, path
WRAP_OPEN(open, const char *path)
WRAP_OPEN(open64, const char *path)
WRAP_OPEN(openat, int dfd, const char *path)
WRAP_OPEN(openat64, int dfd, const char *path)

FILE *__real_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode)
{
	impure("fopen");
	return __real_fopen(path, mode);
}

FILE *__real_fopen64(const char *path, const char *mode);
FILE *__wrap_fopen64(const char *path, const char *mode);
FILE *__wrap_fopen64(const char *path, const char *mode)
{
	impure("fopen64");
	return __real_fopen64(path, mode);
}

json_t *__real_json_load_file(const char *path, size_t flags, json_error_t *error);
json_t *__wrap_json_load_file(const char *path, size_t flags, json_error_t *error);
json_t *__wrap_json_load_file(const char *path, size_t flags, json_error_t *error)
{
	impure("json_load_file");
	return __real_json_load_file(path, flags, error);
}

time_t __real_time(time_t *t);
time_t __wrap_time(time_t *t);
time_t __wrap_time(time_t *t)
{
	impure("time");
	return __real_time(t);
}

int __real_gettimeofday(struct timeval *tv, void *tz);
int __wrap_gettimeofday(struct timeval *tv, void *tz);
int __wrap_gettimeofday(struct timeval *tv, void *tz)
{
	impure("gettimeofday");
	return __real_gettimeofday(tv, tz);
}

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	impure("clock_gettime");
	return __real_clock_gettime(id, ts);
}


void golden_check(const char *path, const json_t *got)
{
	char *text = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
	size_t len = strlen(text);

	if (getenv("KILN_UPDATE_GOLDEN")) {
		text = xrealloc(text, len + 2);
		strcpy(text + len, "\n");
		assert_int_equal(file_write_atomic(path, text, len + 1, 0644, -1, -1), 0);
	} else {
		struct buf want;
		buf_init(&want, 0);
		assert_int_equal(file_read(path, &want, 0), 0);
		if (want.len != len + 1 || memcmp(want.s, text, len))
			fail_msg("%s differs from the rendering:\n%s", path, text);
		buf_release(&want);
	}
	free(text);
}

void golden_check_in(const char *dir, const char *name, const json_t *got)
{
	char *path = xasprintf("%s/golden/%s.json", dir, name);
	golden_check(path, got);
	free(path);
}

struct cluster *spec_fixture(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct cluster *c = NULL;
	struct kerr e = { 0 };

	if (spec_load(path, &c, &e) < 0)
		fail_msg("spec %s: %s", path, e.msg);
	free(path);
	return c;
}

/* Fail naming node and resource unless every resource of list passes the
 * agent's resource_validate(). */
static void resources_check_valid(const char *node, const json_t *list)
{
	struct kerr e = { 0 };
	size_t i;
	json_t *res;

	json_array_foreach(list, i, res) {
		/* the "phase" member is the driver's, not the agent's */
		json_t *bare = json_deep_copy(res);
		json_object_del(bare, "phase");
		if (resource_validate(bare, &e) < 0) {
			char *s = json_dumps(res, JSON_COMPACT);
			fail_msg("node %s: resource %s does not validate: %s", node, s, e.msg);
		}
		json_decref(bare);
	}
}

json_t *render_node_checked(const struct render_ctx *rc, const struct node *n,
			    struct strv *needs)
{
	struct render_out ro;
	struct kerr e = { 0 };
	char what[128];

	render_out_init(&ro);
	purity_start();
	int r = stacks_render_node(rc, n, &ro, &e);
	snprintf(what, sizeof(what), "rendering node '%s'", n->name);
	purity_stop(what);
	if (r < 0)
		fail_msg("render %s: %s", n->name, e.msg);
	resources_check_valid(n->name, ro.resources);
	for (size_t k = 0; needs && k < ro.needs.n; k++)
		strv_push(needs, ro.needs.v[k]);
	json_t *out = json_incref(ro.resources);
	render_out_release(&ro);
	return out;
}
