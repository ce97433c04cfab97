/*
 * The nvidia stack: the branch and module flavour each GPU generation gets
 * (a table asserted here and pinned in golden/choices.json: K80, P100,
 * V100, T4, A100, H100, L40S, RTX 3090, RTX 4090, B200, a mixed node, a
 * node without GPUs); fallbacks to older or newer allowed branches; the
 * one-line errors for a card no configured branch supports, for module
 * conflicts and for node-sent ids that are not ids; the rendered packages
 * for Debian, Ubuntu and RHEL (golden/{debian,ubuntu,rhel}.json), each
 * resource passing the agent's validation, rendering pure (purity.c);
 * stacks.nvidia's spec errors with FILE:LINE:COL.  KILN_UPDATE_GOLDEN=1
 * rewrites the goldens after an intended change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "purity.h"
#include "resources/resources.h"
#include "stacks/nvidia.h"
#include "stacks/stacks.h"

#define DIR KILN_TEST_DATA "/stacks/nvidia"

/* ---- fixtures ------------------------------------------------------------ */

/* Each fixture node's cards: device ids (0x10de), a count each. */
static const struct {
	const char *node;
	unsigned device[2], count[2];
} fixture_cards[] = {
	{ "k80",     { 0x102d },         { 1 } },
	{ "p100",    { 0x15f8 },         { 2 } },
	{ "v100",    { 0x1db1 },         { 4 } },
	{ "t4",      { 0x1eb8 },         { 1 } },
	{ "a100",    { 0x20b0 },         { 2 } },
	{ "a100p",   { 0x20f1, 0x20b5 }, { 1, 1 } },
	{ "h100",    { 0x2330 },         { 8 } },
	{ "l40s",    { 0x26b9 },         { 4 } },
	{ "rtx3090", { 0x2204 },         { 2 } },
	{ "rtx4090", { 0x2684 },         { 1 } },
	{ "b200",    { 0x2901 },         { 8 } },
	/* listed newest first: the note must not follow the facts' order */
	{ "mixed",   { 0x1eb8, 0x1db1 }, { 1, 1 } },
	{ "cpu",     { 0 },              { 0 } },
};

/* The expected choice with `branch: 580` (the golden table). */
static const struct {
	const char *node;
	unsigned branch;
	bool open;
} expect_580[] = {
	{ "k80", 470, false },     { "p100", 580, false },    { "v100", 580, false },
	{ "t4", 580, true },       { "a100", 580, true },     { "a100p", 580, true },
	{ "h100", 580, true },     { "l40s", 580, true },     { "rtx3090", 580, true },
	{ "rtx4090", 580, true },  { "b200", 580, true },     { "mixed", 580, false },
	{ "cpu", 0, false },
};

static json_t *gpu_json(unsigned device, unsigned index)
{
	char dev[8], slot[16];

	snprintf(dev, sizeof(dev), "0x%04x", device);
	snprintf(slot, sizeof(slot), "0000:%02x:00.0", 0x17 + index);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "slot", slot, "vendor", "nvidia",
			 "vendor_id", "0x10de", "device_id", dev, "driver", "nvidia",
			 "numa_node", (int)(index % 2));
}

/* Facts of an OS with the cards of fixture node name. */
static json_t *fixture_facts(const char *name, const char *family, const char *id,
			     const char *version, const char *release)
{
	json_t *gpus = json_array();
	unsigned index = 0;

	/* a BMC VGA chip is never an NVIDIA card */
	json_array_append_new(gpus, json_pack("{s:s,s:s,s:s}", "slot", "0000:03:00.0",
					      "vendor_id", "0x1a03", "device_id", "0x2000"));
	for (size_t i = 0; i < ARRAY_SIZE(fixture_cards); i++) {
		if (strcmp(fixture_cards[i].node, name))
			continue;
		for (size_t k = 0; k < 2; k++)
			for (unsigned c = 0; c < fixture_cards[i].count[k]; c++)
				json_array_append_new(gpus, gpu_json(fixture_cards[i].device[k],
								     index++));
	}
	return json_pack("{s:{s:s,s:s,s:s},s:{s:s},s:o}", "os", "family", family, "id", id,
			 "version_id", version, "kernel", "release", release, "gpus", gpus);
}

static struct cluster *load_file(const char *name)
{
	return spec_fixture(DIR, name);
}

/* The spec with stacks.nvidia replaced by stack (YAML under "nvidia:"). */
static int load_with(const char *stack, struct cluster **c, struct kerr *e)
{
	char *path = xasprintf("%s/cluster.yaml", DIR);
	struct buf b;
	int r;

	buf_init(&b, 0);
	if (file_read(path, &b, 0) < 0)
		fail_msg("read %s", path);
	char *cut = strstr(b.s, "  nvidia:\n");
	assert_non_null(cut);
	*cut = '\0';
	char *text = xasprintf("%s  nvidia:\n%s", b.s, stack);
	r = spec_load_string(path, text, strlen(text), c, e);
	free(text);
	free(path);
	buf_release(&b);
	return r;
}

static const void *nv_conf(const struct cluster *c)
{
	const void *conf = stack_conf(c, &stack_nvidia);
	assert_non_null(conf);
	return conf;
}

/* nvidia_choose for node name of c with its fixture cards (Debian facts),
 * under the purity watch. */
static int choose(const struct cluster *c, const char *name, struct nv_choice *ch,
		  struct kerr *e)
{
	const struct node *n = cluster_node(c, name);
	json_t *facts = fixture_facts(name, "debian", "debian", "12", "6.1.0-18-amd64");

	assert_non_null(n);
	purity_start();
	int r = nvidia_choose(nv_conf(c), json_object_get(facts, "gpus"), n, ch, e);
	purity_stop("nvidia_choose");
	json_decref(facts);
	return r;
}

/*
 * Every phase for every node, each with the given OS's facts: node ->
 * {resources, notes}.  Each resource passes the agent's validation; the
 * render touches no file and no clock and gives the same output twice.
 */
static json_t *render_all(const struct cluster *c, const char *family, const char *id,
			  const char *version, const char *release)
{
	const json_t **facts = xcalloc(c->nnodes, sizeof(*facts));
	json_t *all = json_object();
	struct kerr e = { 0 };

	for (size_t i = 0; i < c->nnodes; i++)
		facts[i] = fixture_facts(c->nodes[i].name, family, id, version, release);
	struct render_ctx rc = { .c = c, .facts = facts };
	for (size_t i = 0; i < c->nnodes; i++) {
		struct render_out ro, again;
		render_out_init(&ro);
		render_out_init(&again);
		purity_start();
		int r = stacks_render_node(&rc, &c->nodes[i], &ro, &e);
		purity_stop("rendering a node");
		if (r < 0)
			fail_msg("render %s: %s", c->nodes[i].name, e.msg);
		assert_int_equal(stacks_render_node(&rc, &c->nodes[i], &again, &e), 0);
		assert_true(json_equal(ro.resources, again.resources));
		size_t k;
		json_t *res;
		json_array_foreach(ro.resources, k, res) {
			json_t *bare = json_deep_copy(res);
			json_object_del(bare, "phase");
			if (resource_validate(bare, &e) < 0)
				fail_msg("node %s: resource %zu: %s", c->nodes[i].name, k, e.msg);
			json_decref(bare);
		}
		json_t *notes = json_array();
		for (size_t k2 = 0; k2 < ro.notes.n; k2++)
			json_array_append_new(notes, json_string(ro.notes.v[k2]));
		json_object_set_new(all, c->nodes[i].name,
				    json_pack("{s:O,s:o}", "resources", ro.resources, "notes",
					      notes));
		render_out_release(&ro);
		render_out_release(&again);
	}
	for (size_t i = 0; i < c->nnodes; i++)
		json_decref((json_t *)facts[i]);
	free(facts);
	return all;
}

static void check_golden(const char *name, const json_t *got)
{
	golden_check_in(DIR, name, got);
}

/* ---- the table ------------------------------------------------------------ */

static void test_table(void **s)
{
	for (size_t i = 1; i < nv_gpus_n; i++)
		if (nv_gpus[i - 1].device >= nv_gpus[i].device)
			fail_msg("nv_gpus not sorted at 0x%04x", nv_gpus[i].device);
	for (size_t i = 0; i < nv_gpus_n; i++) {
		const struct nv_gpu *g = &nv_gpus[i];
		assert_ptr_equal(nv_gpu_find(g->device), g);
		/* every row agrees with its chip's id range and its
		 * architecture's legacy branch */
		assert_int_equal(nv_arch_of_device(g->device), g->arch);
		if (g->legacy != nv_arch_legacy(g->arch))
			fail_msg("0x%04x %s: legacy %u, %s's is %u", g->device, g->name,
				 g->legacy, nv_arch_name(g->arch), nv_arch_legacy(g->arch));
	}
	assert_null(nv_gpu_find(0x0001));
	assert_string_equal(nv_gpu_find(0x102d)->name, "Tesla K80");
	assert_int_equal(nv_gpu_find(0x102d)->legacy, 470);
	assert_string_equal(nv_gpu_find(0x2901)->name, "NVIDIA B200");
	/* ids the table lacks, by range: an RTX 5090 D v2, a GTX 1080 Ti; a
	 * Fermi id is not Kepler */
	assert_int_equal(nv_arch_of_device(0x2b8c), NV_BLACKWELL);
	assert_int_equal(nv_arch_of_device(0x1b06), NV_PASCAL);
	assert_int_equal(nv_arch_of_device(0x1200), NV_ARCH_UNKNOWN);
}

/* ---- the choice: the golden table ------------------------------------------ */

static void test_choices_580(void **s)
{
	struct cluster *c = load_file("cluster.yaml");
	json_t *all = json_object();

	for (size_t i = 0; i < ARRAY_SIZE(expect_580); i++) {
		struct nv_choice ch;
		struct kerr e = { 0 };
		if (choose(c, expect_580[i].node, &ch, &e) < 0)
			fail_msg("%s: %s", expect_580[i].node, e.msg);
		if (ch.branch != expect_580[i].branch || ch.open != expect_580[i].open)
			fail_msg("%s: got %u %s, want %u %s", expect_580[i].node, ch.branch,
				 ch.open ? "open" : "proprietary", expect_580[i].branch,
				 expect_580[i].open ? "open" : "proprietary");
		if (!ch.ncards) {
			assert_string_equal(ch.note, "");
			continue;
		}
		json_object_set_new(all, expect_580[i].node,
				    json_pack("{s:i,s:s,s:s}", "branch", (int)ch.branch,
					      "modules", ch.open ? "open" : "proprietary",
					      "note", ch.note));
	}
	/* the notes plan shows, word for word, for the brief's examples */
	struct nv_choice ch;
	struct kerr e = { 0 };
	assert_int_equal(choose(c, "t4", &ch, &e), 0);
	assert_string_equal(ch.note, "t4: 10de:1eb8 Tesla T4 (Turing) \u2192 580, open modules");
	assert_int_equal(choose(c, "k80", &ch, &e), 0);
	assert_string_equal(ch.note, "k80: 10de:102d Tesla K80 (Kepler) \u2192 470 (580 not "
			    "supported), proprietary modules (Kepler card)");
	assert_int_equal(choose(c, "mixed", &ch, &e), 0);
	assert_string_equal(ch.note, "mixed: 10de:1db1 Tesla V100-SXM2-16GB (Volta), "
			    "10de:1eb8 Tesla T4 (Turing) \u2192 580, proprietary modules "
			    "(Volta card)");
	assert_int_equal(choose(c, "a100", &ch, &e), 0);
	assert_string_equal(ch.note, "a100: 2x 10de:20b0 NVIDIA A100-SXM4-40GB (Ampere) "
			    "\u2192 580, open modules");
	check_golden("choices", all);
	json_decref(all);
	cluster_free(c);
}

/* Other preferred branches: newer (590: the 580-legacy cards fall back),
 * older than a card allows (550: Blackwell moves up to 580). */
static void test_choices_other_branches(void **s)
{
	static const struct {
		const char *stack, *node;
		unsigned branch;
		bool open;
	} cases[] = {
		{ "    branch: 590\n", "k80", 470, false },
		{ "    branch: 590\n", "v100", 580, false },
		{ "    branch: 590\n", "t4", 590, true },
		{ "    branch: 590\n", "b200", 590, true },
		{ "    branch: 550\n", "b200", 580, true },
		{ "    branch: 550\n", "h100", 550, true },
		{ "    branch: 550\n", "k80", 470, false },
		/* a newer allowed branch, when the preferred one is too old */
		{ "    branch: 535\n    branches: [535, 570]\n", "b200", 570, true },
		/* 470 has no open modules: auto takes proprietary for a T4 */
		{ "    branch: 470\n", "t4", 470, false },
		{ "    branch: 580\n    modules: proprietary\n", "t4", 580, false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cluster *c = NULL;
		struct kerr e = { 0 };
		struct nv_choice ch;
		if (load_with(cases[i].stack, &c, &e) < 0)
			fail_msg("case %zu: %s", i, e.msg);
		if (choose(c, cases[i].node, &ch, &e) < 0)
			fail_msg("case %zu %s: %s", i, cases[i].node, e.msg);
		if (ch.branch != cases[i].branch || ch.open != cases[i].open)
			fail_msg("case %zu %s: got %u %s, want %u", i, cases[i].node, ch.branch,
				 ch.open ? "open" : "proprietary", cases[i].branch);
		cluster_free(c);
	}
}

/* Choices that must fail: the spec's stack, the node, cards added to its
 * fixture cards (0: none), the start of the one-line error. */
static const struct {
	const char *stack, *node;
	unsigned extra[2];
	const char *msg;
} choice_errors[] = {
	/* the brief's error: no configured branch supports a K80 */
	{ "    branch: 590\n    branches: [590, 580]\n", "k80", { 0 },
	  "k80: 10de:102d Tesla K80 (Kepler): no configured branch supports it (470 "
	  "legacy; allowed: 590, 580)" },
	{ "    branch: 550\n    branches: [550, 535]\n", "b200", { 0 },
	  "b200: 8x 10de:2901 NVIDIA B200 (Blackwell): no configured branch supports it "
	  "(needs 570 or newer; allowed: 550, 535)" },
	/* each card has a branch, but none both (the T4 beside them has no
	 * bound and is not named) */
	{ "    branch: 580\n", "k80", { 0x2901, 0x1eb8 },
	  "k80: no configured branch supports every card together: 10de:102d Tesla K80 "
	  "(Kepler) 470 legacy, 10de:2901 NVIDIA B200 (Blackwell) needs 570 or newer; " },
	/* Blackwell needs open modules: not with proprietary asked for, not
	 * beside a Volta card */
	{ "    branch: 580\n    modules: proprietary\n", "b200", { 0 },
	  "b200: 8x 10de:2901 NVIDIA B200 (Blackwell) needs open kernel modules; "
	  "stacks.nvidia.modules is proprietary" },
	{ "    branch: 580\n", "b200", { 0x1db1 },
	  "b200: 8x 10de:2901 NVIDIA B200 (Blackwell) needs open kernel modules, "
	  "10de:1db1 Tesla V100-SXM2-16GB (Volta) has none (Turing and newer only)" },
	{ "    branch: 580\n    modules: open\n", "v100", { 0 },
	  "v100: stacks.nvidia.modules is open, 4x 10de:1db1 Tesla V100-SXM2-16GB "
	  "(Volta) has none (Turing and newer only)" },
	{ "    branch: 470\n    modules: open\n", "t4", { 0 },
	  "t4: stacks.nvidia.modules is open, branch 470 has none (515 and newer)" },
};

static void test_choice_errors(void **s)
{
	for (size_t i = 0; i < ARRAY_SIZE(choice_errors); i++) {
		struct cluster *c = NULL;
		struct kerr e = { 0 };
		struct nv_choice ch;
		if (load_with(choice_errors[i].stack, &c, &e) < 0)
			fail_msg("case %zu: %s", i, e.msg);
		const char *node = choice_errors[i].node;
		json_t *facts = fixture_facts(node, "debian", "debian", "12", "6.1.0-18-amd64");
		for (unsigned k = 0; k < 2 && choice_errors[i].extra[k]; k++)
			json_array_append_new(json_object_get(facts, "gpus"),
					      gpu_json(choice_errors[i].extra[k], 9 + k));
		if (nvidia_choose(nv_conf(c), json_object_get(facts, "gpus"), cluster_node(c, node), &ch,
				  &e) >= 0)
			fail_msg("case %zu: no error, chose %u", i, ch.branch);
		const char *want = choice_errors[i].msg;
		if (strncmp(e.msg, want, strlen(want)))
			fail_msg("case %zu: got '%s', want '%s...'", i, e.msg, want);
		/* every node error points at the stack in the spec */
		if (!strstr(e.msg, "/nvidia/cluster.yaml:23:5: stacks.nvidia"))
			fail_msg("case %zu: no spec location in '%s'", i, e.msg);
		json_decref(facts);
		cluster_free(c);
	}
}

/* What a node sends is checked: a device id that is not one fails the
 * node; an unknown model's name is kept printable; a card outside every
 * known chip is named, not guessed. */
static void test_untrusted_facts(void **s)
{
	struct cluster *c = load_file("cluster.yaml");
	const struct node *n = cluster_node(c, "t4");
	struct nv_choice ch;
	struct kerr e = { 0 };

	json_t *f = fixture_facts("cpu", "debian", "debian", "12", "6.1.0-18-amd64");
	json_array_append_new(json_object_get(f, "gpus"),
			      json_pack("{s:s,s:s}", "vendor_id", "0x10de", "device_id",
					"0x1eb8; reboot"));
	assert_int_equal(nvidia_choose(nv_conf(c), json_object_get(f, "gpus"), n, &ch, &e), -EINVAL);
	assert_string_equal(e.msg, "t4: an NVIDIA GPU in the facts has no valid device_id");
	json_decref(f);

	/* an RTX 5090 D v2 (not in the table): Blackwell by its id, the name
	 * from the facts with its control characters replaced */
	f = fixture_facts("cpu", "debian", "debian", "12", "6.1.0-18-amd64");
	json_array_append_new(json_object_get(f, "gpus"),
			      json_pack("{s:s,s:s,s:s}", "vendor_id", "0x10de", "device_id",
					"0x2b8c", "model", "RTX\x1b[31m 5090"));
	assert_int_equal(nvidia_choose(nv_conf(c), json_object_get(f, "gpus"), n, &ch, &e), 0);
	assert_string_equal(ch.note, "t4: 10de:2b8c RTX?[31m 5090 (Blackwell) \u2192 580, "
			    "open modules");
	json_decref(f);

	f = fixture_facts("cpu", "debian", "debian", "12", "6.1.0-18-amd64");
	json_array_append_new(json_object_get(f, "gpus"),
			      json_pack("{s:s,s:s}", "vendor_id", "0x10de", "device_id",
					"0x1200"));
	assert_int_equal(nvidia_choose(nv_conf(c), json_object_get(f, "gpus"), n, &ch, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "t4: 10de:1200 unknown model (unknown): not in kiln's "
			       "NVIDIA table"));
	json_decref(f);

	/* no facts, no NVIDIA card: nothing, no note */
	assert_int_equal(nvidia_choose(nv_conf(c), NULL, n, &ch, &e), 0);
	assert_int_equal(ch.ncards, 0);
	cluster_free(c);
}

/* ---- the rendered packages per OS family ------------------------------------ */

static void test_golden_debian(void **s)
{
	struct cluster *c = load_file("cluster.yaml");
	json_t *all = render_all(c, "debian", "debian", "12", "6.1.0-18-amd64");

	/* the node without GPUs gets nothing */
	assert_int_equal(json_array_size(json_object_get(json_object_get(all, "cpu"),
							 "resources")), 0);
	check_golden("debian", all);
	json_decref(all);
	cluster_free(c);
}

static void test_golden_ubuntu(void **s)
{
	struct cluster *c = load_file("cluster.yaml");
	json_t *all = render_all(c, "debian", "ubuntu", "22.04", "5.15.0-91-generic");

	check_golden("ubuntu", all);
	json_decref(all);
	cluster_free(c);
}

static void test_golden_rhel(void **s)
{
	struct cluster *c = load_file("cluster.yaml");
	json_t *all = render_all(c, "redhat", "rhel", "9.3",
				 "5.14.0-362.8.1.el9_3.x86_64");

	check_golden("rhel", all);
	json_decref(all);
	cluster_free(c);
}

/* What the family or the kernel in the facts does not allow: one line. */
static void test_render_errors(void **s)
{
	static const struct {
		const char *family, *id, *version, *release, *msg;
	} cases[] = {
		{ "redhat", "rhel", "10.0", "6.12.0-55.el10.x86_64",
		  "t4: redhat 10.0: the nvidia stack installs from dnf module streams, "
		  "which only RHEL 8 and 9 have" },
		{ "suse", "sles", "15.5", "5.14.21-150500.55.19-default",
		  "t4: os family 'suse': the nvidia stack knows debian and redhat" },
		{ "debian", "debian", "12", "6.1.0-18-amd64; reboot",
		  "t4: the facts have no usable kernel.release (the driver needs the "
		  "running kernel's headers)" },
	};
	struct cluster *c = load_file("cluster.yaml");
	const struct node *n = cluster_node(c, "t4");

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const json_t **facts = xcalloc(c->nnodes, sizeof(*facts));
		json_t *f = fixture_facts("t4", cases[i].family, cases[i].id, cases[i].version,
					  cases[i].release);
		facts[n - c->nodes] = f;
		struct render_ctx rc = { .c = c, .facts = facts };
		struct render_out ro;
		struct kerr e = { 0 };
		render_out_init(&ro);
		assert_true(stacks_render_node(&rc, n, &ro, &e) < 0);
		assert_string_equal(e.msg, cases[i].msg);
		render_out_release(&ro);
		json_decref(f);
		free(facts);
	}
	cluster_free(c);
}

/* ---- stacks.nvidia in the spec ------------------------------------------------ */

static void test_spec_errors(void **s)
{
	static const struct {
		const char *stack, *msg;
	} cases[] = {
		{ "    modules: open\n",
		  ":23:5: stacks.nvidia: 'branch' is required (the preferred driver branch, "
		  "like 580)" },
		{ "    branch: latest\n",
		  ":23:13: stacks.nvidia.branch: expected an integer in 300..999, found "
		  "'latest'" },
		{ "    branch: 580\n    branches: [590, 570]\n",
		  ":24:15: stacks.nvidia.branches: does not list the preferred branch 580" },
		{ "    branch: 580\n    branches: [580, 580]\n",
		  ":24:21: stacks.nvidia.branches: 580 is listed twice" },
		{ "    branch: 580\n    modules: closed\n",
		  ":24:14: stacks.nvidia.modules: expected auto, open or proprietary, found "
		  "'closed'" },
		{ "    branch: 580\n    persistenced: yes\n",
		  ":24:19: stacks.nvidia.persistenced:" },
		{ "    branch: 580\n    toolkit: true\n",
		  ":24:5: unknown key 'toolkit' in stacks.nvidia (expected one of: branch, "
		  "branches, modules, container_toolkit, persistenced)" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cluster *c = NULL;
		struct kerr e = { 0 };
		assert_int_equal(load_with(cases[i].stack, &c, &e), -EINVAL);
		const char *at = strstr(e.msg, "/nvidia/cluster.yaml:");
		if (!at || strncmp(at + strlen("/nvidia/cluster.yaml"), cases[i].msg,
				   strlen(cases[i].msg)))
			fail_msg("case %zu: got '%s', want '...%s'", i, e.msg, cases[i].msg);
		cluster_free(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_choices_580),
		cmocka_unit_test(test_choices_other_branches),
		cmocka_unit_test(test_choice_errors),
		cmocka_unit_test(test_untrusted_facts),
		cmocka_unit_test(test_golden_debian),
		cmocka_unit_test(test_golden_ubuntu),
		cmocka_unit_test(test_golden_rhel),
		cmocka_unit_test(test_render_errors),
		cmocka_unit_test(test_spec_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
