/*
 * stacks: golden files pin the base stack's output for a fixed spec and
 * facts (KILN_UPDATE_GOLDEN=1 rewrites them after an intended change), and
 * the template language's names and errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "purity.h"
#include "stacks/stacks.h"

#define DIR KILN_TEST_DATA "/stacks"

/*
 * Every phase of every stack for node n (stacks_render_node), every node
 * seeing the same facts; fails the test if it touched a file or the clock.
 */
static int render_pure(const struct cluster *c, const struct node *n, const json_t *facts,
		       json_t **out, struct kerr *e)
{
	const json_t **all = xcalloc(c->nnodes, sizeof(*all));
	struct exports ex;
	struct render_out ro;

	for (size_t i = 0; i < c->nnodes; i++)
		all[i] = facts;
	exports_init(&ex);
	render_out_init(&ro);
	struct render_ctx rc = { .c = c, .facts = all, .exports = &ex };
	purity_start();
	int r = stacks_render_node(&rc, n, &ro, e);
	purity_stop(n->name);
	*out = json_incref(ro.resources);
	render_out_release(&ro);
	exports_release(&ex);
	free(all);
	return r;
}

static struct cluster *load(void)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	if (spec_load(DIR "/cluster.yaml", &c, &e) < 0)
		fail_msg("spec: %s", e.msg);
	return c;
}

static void check_golden(const char *name, const json_t *got)
{
	char *path = xasprintf("%s/golden/%s.json", DIR, name);
	golden_check(path, got);
	free(path);
}

static void test_base_golden(void **s)
{
	struct cluster *c = load();
	json_t *debian = json_pack("{s:{s:s}}", "os", "family", "debian");
	json_t *out = NULL;
	struct kerr e = { 0 };

	/* The watch itself works: kiln's own file and clock helpers, and the
	 * calls themselves, are seen (else "no calls" would prove nothing). */
	struct buf b;
	buf_init(&b, 0);
	purity_watching = true;
	purity_calls = 0;
	assert_int_equal(file_read(DIR "/cluster.yaml", &b, 0), 0);
	assert_int_equal(purity_calls, 1);
	(void)now_ms();
	(void)wall_ms();
	assert_int_equal(purity_calls, 3);
	(void)time(NULL);
	fclose(fopen(DIR "/cluster.yaml", "r"));
	assert_int_equal(purity_calls, 5);
	purity_watching = false;
	buf_release(&b);

	for (size_t i = 0; i < c->nnodes; i++) {
		/* Pure: no file, no clock, and a second rendering is identical. */
		assert_int_equal(render_pure(c, &c->nodes[i], debian, &out, &e), 0);
		check_golden(c->nodes[i].name, out);
		json_t *again = NULL;
		assert_int_equal(render_pure(c, &c->nodes[i], debian, &again, &e), 0);
		assert_true(json_equal(out, again));
		json_decref(again);
		json_decref(out);
	}
	/* Without facts there is no package list to choose. */
	assert_int_equal(render_pure(c, &c->nodes[0], NULL, &out, &e), 0);
	size_t i;
	json_t *r;
	json_array_foreach(out, i, r)
		assert_string_not_equal(json_string_value(json_object_get(r, "type")), "package");
	json_decref(out);
	json_decref(debian);
	cluster_free(c);
}

static void render_expect(const struct cluster *c, const char *tmpl, const char *want,
			  const char *err)
{
	struct buf b;
	struct kerr e = { 0 };
	buf_init(&b, 0);
	struct render_ctx rc = { .c = c };
	struct template *t = NULL;
	int r = template_compile(tmpl, &t, &e);
	if (r == 0)
		r = template_render(t, &rc, &c->nodes[0], &b, &e);
	template_free(t);
	if (err) {
		assert_true(r < 0);
		assert_string_equal(e.msg, err);
	} else {
		if (r < 0)
			fail_msg("%s", e.msg);
		assert_string_equal(b.s, want);
	}
	buf_release(&b);
}

static void test_template(void **s)
{
	struct cluster *c = load();

	render_expect(c, "{{node.name}}/{{ node.address }}", "node1/10.213.0.11", NULL);
	render_expect(c, "{{ node.labels.rack }} {{ site_info.rack }}", "r1 7", NULL);
	render_expect(c, "no placeholders", "no placeholders", NULL);
	render_expect(c, "", "", NULL);
	render_expect(c, "{{node.name}}{{\tcluster.name }}}} {", "node1golden}} {", NULL);
	render_expect(c, "{{ node.roles }}|{{ node.site }}", "worker,gpu|default", NULL);
	render_expect(c, "{{ site_info.rack.x }}", NULL,
		      "template line 1: unknown variable 'site_info.rack.x'");
	render_expect(c, "a\n{{ node.name }}\n{{ nope }}", NULL,
		      "template line 3: unknown variable 'nope'");
	render_expect(c, "a\nb {{ nope }}", NULL, "template line 2: unknown variable 'nope'");
	render_expect(c, "x {{ node.name", NULL, "template line 1: '{{' without '}}'");
	render_expect(c, "{{ site_info }}", NULL,
		      "template line 1: variable 'site_info' is not a scalar");
	render_expect(c, "{{  }}", NULL, "template line 1: empty or overlong name in '{{ }}'");
	/* the overlay address comes from the mesh's exports; none yet: unknown */
	render_expect(c, "{{ node.mesh_address }}", NULL,
		      "template line 1: unknown variable 'node.mesh_address'");
	struct exports ex;
	struct buf b;
	struct kerr e = { 0 };
	exports_init(&ex);
	exports_set(&ex, "node1", "mesh", "address", "10.99.0.7", false);
	exports_set(&ex, "node2", "mesh", "address", "10.99.0.8", false);
	struct render_ctx rc = { .c = c, .exports = &ex };
	buf_init(&b, 0);
	struct template *t;
	assert_int_equal(template_compile("bind {{ node.mesh_address }}", &t, &e), 0);
	assert_int_equal(template_render(t, &rc, &c->nodes[0], &b, &e), 0);
	assert_string_equal(b.s, "bind 10.99.0.7");
	template_free(t);
	buf_release(&b);
	exports_release(&ex);
	cluster_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_golden),
		cmocka_unit_test(test_template),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
