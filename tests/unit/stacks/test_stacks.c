/*
 * stacks: golden files pin the base stack's output for a fixed spec and
 * facts (KILN_UPDATE_GOLDEN=1 rewrites them after an intended change), and
 * the template language's names and errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "stacks/stacks.h"

#define DIR KILN_TEST_DATA "/stacks"

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
	free(path);
}

static void test_base_golden(void **s)
{
	struct cluster *c = load();
	json_t *debian = json_pack("{s:{s:s}}", "os", "family", "debian");
	json_t *out = NULL;
	struct kerr e = { 0 };

	for (size_t i = 0; i < c->nnodes; i++) {
		assert_int_equal(stacks_render(c, &c->nodes[i], debian, &out, &e), 0);
		check_golden(c->nodes[i].name, out);
		/* Pure: a second rendering is identical. */
		json_t *again = NULL;
		assert_int_equal(stacks_render(c, &c->nodes[i], debian, &again, &e), 0);
		assert_true(json_equal(out, again));
		json_decref(again);
		json_decref(out);
	}
	/* Without facts there is no package list to choose. */
	assert_int_equal(stacks_render(c, &c->nodes[0], NULL, &out, &e), 0);
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
	int r = template_render(tmpl, c, &c->nodes[0], &b, &e);
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
	render_expect(c, "a\nb {{ nope }}", NULL, "template line 2: unknown variable 'nope'");
	render_expect(c, "x {{ node.name", NULL, "template line 1: '{{' without '}}'");
	render_expect(c, "{{ site_info }}", NULL,
		      "template line 1: variable 'site_info' is not a scalar");
	render_expect(c, "{{  }}", NULL, "template line 1: empty or overlong name in '{{ }}'");
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
