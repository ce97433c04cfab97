/*
 * Rendering is pure (stacks.h): it reads no file and no clock.  A test
 * binary built with kiln_pure_test (CMakeLists.txt) has every way into a
 * file or a clock wrapped (open*, fopen*, json_load_file, time,
 * gettimeofday, clock_gettime), so each call from kiln's code lands in
 * purity.c first and is counted while watching.
 */
#ifndef KILN_TEST_PURITY_H
#define KILN_TEST_PURITY_H

#include <jansson.h>
#include <stdbool.h>

extern bool purity_watching;
extern int purity_calls;

void purity_start(void);
/* Stop watching; fail the test naming the first call if there was any. */
void purity_stop(const char *what);

/* Compare got (indented, sorted keys) with the golden file at path; with
 * KILN_UPDATE_GOLDEN set, rewrite the file instead (after an intended
 * change: review the diff). */
void golden_check(const char *path, const json_t *got);

/* golden_check on DIR/golden/NAME.json. */
void golden_check_in(const char *dir, const char *name, const json_t *got);

struct cluster;
/* The spec DIR/NAME, loaded; the test fails with the spec's message if it
 * does not load. */
struct cluster *spec_fixture(const char *dir, const char *name);
struct render_ctx;
struct node;
struct strv;
/* Every phase for node n (stacks_render_node) under the purity watch; fails
 * on a render error or a resource the agent's resource_validate() refuses.
 * What the render waited for is appended to needs (may be NULL).  Returns
 * the resources (the caller's reference). */
json_t *render_node_checked(const struct render_ctx *rc, const struct node *n,
			    struct strv *needs);

#endif
