/*
 * The lab's GPU models (src/lab/hw.c) against pci.ids and kiln's facts:
 * every model's vendor:device resolves through libpci to the name the
 * table cites, its class to the right display class; and the PCI tree the
 * lab builds for a host, collected by facts_collect() under a root, holds
 * exactly that host's GPUs with the model's ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facts/facts.h"
#include "lab/lab_int.h"

/* Each model's ids give, through libpci and pci.ids, the cited names. */
static void test_models_in_pci_ids(void **state)
{
	size_t n;
	const struct lab_gpu_model *m = lab_gpu_models(&n);

	(void)state;
	assert_true(n >= 5);
	for (size_t i = 0; i < n; i++) {
		char vid[16], did[16], cls[16];
		snprintf(vid, sizeof(vid), "0x%04x", LAB_GPU_VENDOR);
		snprintf(did, sizeof(did), "0x%04x", m[i].device);
		snprintf(cls, sizeof(cls), "0x%06x", m[i].class_code);
		json_t *f = json_pack("{s:[{s:s, s:s, s:s, s:s}]}", "pci", "slot", "0000:07:00.0",
				      "vendor_id", vid, "device_id", did, "class", cls);
		struct kerr e = { 0 };
		assert_int_equal(facts_resolve_names(f, &e), 0);
		json_t *p = json_array_get(json_object_get(f, "pci"), 0);
		const char *name = json_string_value(json_object_get(p, "device_name"));
		const char *cname = json_string_value(json_object_get(p, "class_name"));
		if (!name || strcmp(name, m[i].pci_name))
			fail_msg("%s (%s:%s): pci.ids says '%s', the table '%s'", m[i].key, vid,
				 did, name ? name : "(nothing)", m[i].pci_name);
		assert_string_equal(json_string_value(json_object_get(p, "vendor_name")),
				    "NVIDIA Corporation");
		assert_string_equal(cname, m[i].class_code == 0x030000
				    ? "VGA compatible controller" : "3D controller");
		json_decref(f);
	}
	/* The keys the issue names. */
	const char *want[] = { "a100", "h100", "t4", "v100", "rtx3090" };
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		bool found = false;
		for (size_t i = 0; i < n; i++)
			found |= !strcmp(m[i].key, want[w]);
		assert_true(found);
	}
}

/* The host's PCI tree, collected by facts under a root: its GPUs only. */
static void test_tree_through_facts(void **state)
{
	char tmp[] = "/tmp/kiln-labgpu-XXXXXX";
	size_t n;
	const struct lab_gpu_model *m = lab_gpu_models(&n);
	struct lab_host h = { .name = "node1", .ngpus = 3 };
	struct kerr e = { 0 };
	json_t *facts = NULL, *g;
	size_t i;

	(void)state;
	assert_non_null(mkdtemp(tmp));
	for (i = 0; i < n && strcmp(m[i].key, "t4"); i++)
		;
	assert_true(i < n);
	h.gpu = &m[i];
	h.rt = xasprintf("%s/rt", tmp);
	assert_int_equal(hw_host_prepare(&h, &e), 0);
	/* The host sees rt/hw/pci at /sys/bus/pci/devices. */
	char *sys = xasprintf("%s/root/sys/bus/pci", tmp), *link = xasprintf("%s/devices", sys);
	char *target = xasprintf("%s/hw/pci", h.rt);
	assert_int_equal(mkdir_p(sys, 0755), 0);
	assert_int_equal(symlink(target, link), 0);
	char *root = xasprintf("%s/root", tmp);
	assert_int_equal(facts_collect(root, &facts, &e), 0);
	assert_int_equal(json_array_size(json_object_get(facts, "gpus")), 3);
	json_array_foreach(json_object_get(facts, "gpus"), i, g) {
		assert_string_equal(json_string_value(json_object_get(g, "vendor")), "nvidia");
		assert_string_equal(json_string_value(json_object_get(g, "device_id")), "0x1eb8");
	}
	json_decref(facts);
	rm_rf(tmp);
	free(h.rt);
	free(sys);
	free(link);
	free(target);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_models_in_pci_ids),
		cmocka_unit_test(test_tree_through_facts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
