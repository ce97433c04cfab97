/*
 * The slurm stack: GPU type names (the table and the slug for unknown
 * names); golden files pin slurm.conf, every gres.conf and cgroup.conf (as
 * lines, readable in review) and every node's resources for a 5-node spec
 * with fixture facts (2x A100 named by NVML and pci.ids, 1x T4, CPU only,
 * an AMD-only node outside Slurm); every resource passes the agent's
 * validation; rendering is pure and does not depend on the spec's node
 * order; secrets are waited for, never guessed, and a malformed one is not
 * used; a node without facts is left out and said; stacks.slurm's spec
 * errors point at FILE:LINE:COL; kiln run's node list; prepare records
 * each compute node's definition and a render names a node whose facts
 * give less (a GPU gone).  KILN_UPDATE_GOLDEN=1 rewrites goldens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resources/resources.h"
#include "purity.h"
#include "jobs/jobs.h"
#include "stacks/slurm.h"
#include "stacks/stacks.h"

#define DIR KILN_TEST_DATA "/stacks/slurm"

/* 64 and 24 bytes as hex, as the node's secret resources would export them. */
#define MUNGE_HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" \
		  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define DBPASS_HEX "00112233445566778899aabbccddeeff0011223344556677"

/* ---- helpers ----------------------------------------------------------- */

static struct cluster *load_path(const char *path)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	if (spec_load(path, &c, &e) < 0)
		fail_msg("spec %s: %s", path, e.msg);
	return c;
}

static int load_text(const char *text, struct cluster **c, struct kerr *e)
{
	return spec_load_string(DIR "/t.yaml", text, strlen(text), c, e);
}

/* The fixture facts, in c's node order (entries NULL for nodes without). */
static const json_t **facts_for(const struct cluster *c, json_t *all)
{
	const json_t **f = xcalloc(c->nnodes + 1, sizeof(*f));
	for (size_t i = 0; i < c->nnodes; i++)
		f[i] = json_object_get(all, c->nodes[i].name);
	return f;
}

static json_t *load_facts(void)
{
	json_error_t je;
	json_t *j = json_load_file(DIR "/facts.json", 0, &je);
	if (!j)
		fail_msg("facts.json: %s", je.text);
	return j;
}

static void exports_with_secrets(struct exports *ex, const char *munge, const char *db)
{
	exports_init(ex);
	if (munge)
		exports_set(ex, "node1", "slurm", "munge_key", munge, true);
	if (db)
		exports_set(ex, "node1", "slurm", "db_password", db, true);
}

/* Every phase for node n; pure, every resource valid; needs into needs. */
static json_t *render(const struct cluster *c, const json_t **facts, const struct node *n,
		      const struct exports *ex, struct strv *needs)
{
	struct render_ctx rc = { .c = c, .facts = facts, .exports = ex };
	return render_node_checked(&rc, n, needs);
}

/* The content of the file resource at path, or NULL. */
static const char *file_content(const json_t *list, const char *path)
{
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r)
		if (!strcmp(json_string_value(json_object_get(r, "type")), "file") &&
		    !strcmp(json_string_value(json_object_get(r, "path")), path))
			return json_string_value(json_object_get(r, "content"));
	return NULL;
}

static const json_t *resource_with(const json_t *list, const char *type, const char *key,
				   const char *value)
{
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r)
		if (!strcmp(json_string_value(json_object_get(r, "type")), type) &&
		    (!key || !strcmp(json_string_value(json_object_get(r, key)), value)))
			return r;
	return NULL;
}

static json_t *lines_of(const char *text)
{
	json_t *a = json_array();
	const char *p = text;
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		json_array_append_new(a, json_stringn(p, l));
		p = nl ? nl + 1 : NULL;
	}
	return a;
}

/* ---- GPU types ----------------------------------------------------------- */

static void test_gpu_types(void **s)
{
	static const char *const cases[][2] = {
		/* NVML names and pci.ids names of one model give one type */
		{ "NVIDIA A100-SXM4-40GB", "a100" },
		{ "A100 SXM4 40GB", "a100" },
		{ "NVIDIA A100-SXM4-80GB", "a100-80g" },
		{ "A100 SXM4 80GB", "a100-80g" },
		{ "NVIDIA A100-PCIE-40GB", "a100-pcie" },
		{ "A100 PCIe 40GB", "a100-pcie" },
		{ "NVIDIA A100 80GB PCIe", "a100-80g-pcie" },
		{ "A100 PCIe 80GB", "a100-80g-pcie" },
		{ "A100-SXM-64GB", "a100-64g" },
		{ "A100X", "a100x" },
		{ "NVIDIA H100 80GB HBM3", "h100" },
		{ "H100 SXM5 80GB", "h100" },
		{ "NVIDIA H100 PCIe", "h100-pcie" },
		{ "H100 PCIe", "h100-pcie" },
		{ "NVIDIA H100 NVL", "h100-nvl" },
		{ "H100 CNX", "h100-cnx" },
		{ "Tesla T4", "t4" },
		{ "Tesla V100-SXM2-16GB", "v100" },
		{ "Tesla V100 SXM2 16GB", "v100" },
		{ "Tesla V100-SXM2-32GB", "v100-32g" },
		{ "Tesla V100-PCIE-16GB", "v100-pcie" },
		{ "NVIDIA L40S", "l40s" },
		{ "L40S", "l40s" },
		{ "NVIDIA L40", "l40" },
		{ "NVIDIA L4", "l4" },
		{ "NVIDIA A30", "a30" },
		{ "A30 PCIe", "a30" },
		{ "Tesla K80", "k80" },
		{ "NVIDIA GeForce RTX 3090", "rtx3090" },
		{ "GeForce RTX 3090", "rtx3090" },
		{ "NVIDIA GeForce RTX 3090 Ti", "rtx3090ti" },
		{ "NVIDIA GeForce RTX 4090", "rtx4090" },
		{ "NVIDIA RTX A6000", "rtxa6000" },
		{ "Quadro RTX 8000", "rtx8000" },
		{ "NVIDIA B200", "b200" },
		/* unknown shapes: a deterministic slug, never empty */
		{ "CMP 170HX", "cmp-170hx" },
		{ "Tesla T40 24GB", "t40-24g" },
		{ "", "gpu" },
		{ "!!!", "gpu" },
	};
	char t[GPU_TYPE_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		gpu_type_from_name(cases[i][0], t);
		if (strcmp(t, cases[i][1]))
			fail_msg("'%s': got '%s', expected '%s'", cases[i][0], t, cases[i][1]);
	}
	/* Distinct models never collide: every expected type above is unique
	 * per distinct model (the pairs of names of one model aside). */

	/* From facts: NVML model first, else the bracketed pci.ids name, else ids. */
	json_t *g = json_pack("{s:s,s:s}", "model", "NVIDIA A100-SXM4-80GB", "device_name",
			      "GA100 [A100 SXM4 40GB]");
	assert_string_equal(gpu_type_of(g, t), "a100-80g");
	json_object_del(g, "model");
	assert_string_equal(gpu_type_of(g, t), "a100");
	json_object_set_new(g, "device_name", json_string("GH100[H100 SXM5 80GB]"));
	assert_string_equal(gpu_type_of(g, t), "h100");
	json_object_set_new(g, "device_name", json_string("GH100"));
	assert_string_equal(gpu_type_of(g, t), "gh100");
	json_object_del(g, "device_name");
	json_object_set_new(g, "vendor_id", json_string("0x10de"));
	json_object_set_new(g, "device_id", json_string("0x2bff"));
	assert_string_equal(gpu_type_of(g, t), "gpu-0x10de-0x2bff");
	json_decref(g);

	/* Hostile names stay within [a-z0-9-] and the size. */
	char longname[600];
	memset(longname, 'A', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	gpu_type_from_name(longname, t);
	assert_true(strlen(t) > 0 && strlen(t) < GPU_TYPE_MAX);
	gpu_type_from_name("RTX \"; rm -rf / #\n 3090 \xc3\xa9", t);
	for (const char *p = t; *p; p++)
		assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-');
}

/* ---- goldens ------------------------------------------------------------- */

static void test_golden(void **s)
{
	struct cluster *c = load_path(DIR "/cluster.yaml");
	json_t *allf = load_facts();
	const json_t **facts = facts_for(c, allf);
	struct exports ex;
	json_t *nodes = json_object(), *confs = json_object();

	exports_with_secrets(&ex, MUNGE_HEX, DBPASS_HEX);
	for (size_t i = 0; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[i];
		struct strv needs = STRV_INIT;
		json_t *out = render(c, facts, n, &ex, &needs);
		if (needs.n)
			fail_msg("node %s waits for %s", n->name, needs.v[0]);
		json_t *again = render(c, facts, n, &ex, NULL);
		assert_true(json_equal(out, again));
		json_decref(again);
		const char *g = file_content(out, "/etc/slurm/gres.conf");
		if (g)
			json_object_set_new(confs, n->name, json_pack("{s:o}", "gres.conf",
								      lines_of(g)));
		json_object_set_new(nodes, n->name, out);
		strv_release(&needs);
	}
	const json_t *n1 = json_object_get(nodes, "node1");
	json_object_set_new(confs, "slurm.conf",
			    lines_of(file_content(n1, "/etc/slurm/slurm.conf")));
	json_object_set_new(confs, "cgroup.conf",
			    lines_of(file_content(n1, "/etc/slurm/cgroup.conf")));
	golden_check(DIR "/golden/confs.json", confs);
	golden_check(DIR "/golden/resources.json", nodes);

	/* The same slurm.conf on every node of the cluster; none for node5. */
	const char *conf = file_content(n1, "/etc/slurm/slurm.conf");
	for (const char *nn = "node2"; nn; nn = !strcmp(nn, "node2") ? "node3" :
					       !strcmp(nn, "node3") ? "node4" : NULL)
		assert_string_equal(file_content(json_object_get(nodes, nn),
						 "/etc/slurm/slurm.conf"), conf);
	assert_int_equal(json_array_size(json_object_get(nodes, "node5")), 0);
	/* What the goldens must hold, said plainly as well. */
	assert_non_null(strstr(conf, "NodeName=node2 NodeAddr=10.0.0.12 CPUs=64 Sockets=2 "
			       "CoresPerSocket=16 ThreadsPerCore=2 RealMemory=522240 "
			       "Gres=gpu:a100:2 State=UNKNOWN\n"));
	assert_non_null(strstr(conf, "NodeName=node3 NodeAddr=10.0.0.13 CPUs=16 Sockets=1 "
			       "CoresPerSocket=8 ThreadsPerCore=2 RealMemory=63488 "
			       "Gres=gpu:t4:1 State=UNKNOWN\n"));
	assert_non_null(strstr(conf, "NodeName=node4 NodeAddr=10.0.0.14 CPUs=4 Sockets=1 "
			       "CoresPerSocket=4 ThreadsPerCore=1 RealMemory=14336 State=UNKNOWN\n"));
	assert_null(strstr(conf, "NodeName=node1"));
	assert_null(strstr(conf, "NodeName=node5"));
	assert_non_null(strstr(conf, "PartitionName=t4 Nodes=node3 Default=YES"));
	assert_non_null(strstr(conf, "PartitionName=all Nodes=node2,node3,node4 Default=NO"));
	assert_non_null(strstr(conf, "PartitionName=a100 Nodes=node2 Default=NO"));
	assert_null(strstr(conf, "PartitionName=t4 Nodes=node3 Default=NO"));
	assert_string_equal(file_content(json_object_get(nodes, "node2"), "/etc/slurm/gres.conf"),
			    "# managed by kiln (stacks.slurm); changes here are overwritten\n"
			    "AutoDetect=off\n"
			    "NodeName=node2 Name=gpu Type=a100 File=/dev/nvidia0 Cores=0-15\n"
			    "NodeName=node2 Name=gpu Type=a100 File=/dev/nvidia1 Cores=16-31\n");

	/* Secrets: the munge key installed as a secret file, 0400 munge, on
	 * every node but the controller (which made it); the password only in
	 * slurmdbd.conf, 0600 slurm, marked secret. */
	for (size_t i = 0; i < c->nnodes; i++) {
		const char *name = c->nodes[i].name;
		const json_t *list = json_object_get(nodes, name);
		const json_t *k = resource_with(list, "file", "path", "/etc/munge/munge.key");
		if (!strcmp(name, "node5") || !strcmp(name, "node1")) {
			assert_null(k);
			continue;
		}
		assert_non_null(k);
		assert_string_equal(json_string_value(json_object_get(k, "content")), MUNGE_HEX);
		assert_true(json_is_true(json_object_get(k, "secret")));
		assert_string_equal(json_string_value(json_object_get(k, "mode")), "0400");
		assert_string_equal(json_string_value(json_object_get(k, "owner")), "munge");
	}
	const json_t *sec = resource_with(n1, "secret", "path", "/etc/munge/munge.key");
	assert_non_null(sec);
	assert_string_equal(json_string_value(json_object_get(sec, "export")), "munge_key");
	const json_t *dbd = resource_with(n1, "file", "path", "/etc/slurm/slurmdbd.conf");
	assert_true(json_is_true(json_object_get(dbd, "secret")));
	assert_non_null(strstr(json_string_value(json_object_get(dbd, "content")),
			       "StoragePass=" DBPASS_HEX "\n"));
	char *dump = json_dumps(nodes, JSON_COMPACT);
	/* the password appears in slurmdbd.conf and nowhere else */
	const char *first = strstr(dump, DBPASS_HEX);
	assert_non_null(first);
	assert_null(strstr(first + 1, DBPASS_HEX));
	free(dump);

	/* The same spec in another node order renders the same. */
	const char *order = "cluster: lab-gpu\nssh:\n  known_hosts: ../known_hosts\n"
		"groups:\n  gpu:\nnodes:\n"
		"  - name: node5\n    address: 10.0.0.15\n"
		"  - name: node4\n    address: 10.0.0.14\n    roles: [slurm-compute]\n"
		"    labels: {rack: r1}\n"
		"  - name: node2\n    address: 10.0.0.12\n    groups: [gpu]\n"
		"  - name: node1\n    address: 10.0.0.11\n"
		"    roles: [slurm-controller, slurm-login, slurm-db]\n"
		"  - name: node3\n    address: 10.0.0.13\n    groups: [gpu]\n"
		"    labels: {rack: r1}\n"
		"stacks:\n  slurm:\n    memory_reserve: 2G\n    partitions:\n"
		"      gpus:\n        group: gpu\n      rack1:\n        label: rack=r1\n"
		"      t4:\n        nodes: [node3]\n        default: true\n";
	struct cluster *c2 = NULL;
	struct kerr e = { 0 };
	if (load_text(order, &c2, &e) < 0)
		fail_msg("%s", e.msg);
	const json_t **f2 = facts_for(c2, allf);
	for (size_t i = 0; i < c2->nnodes; i++) {
		json_t *out = render(c2, f2, &c2->nodes[i], &ex, NULL);
		assert_true(json_equal(out, json_object_get(nodes, c2->nodes[i].name)));
		json_decref(out);
	}
	free(f2);
	cluster_free(c2);

	exports_release(&ex);
	json_decref(nodes);
	json_decref(confs);
	free(facts);
	json_decref(allf);
	cluster_free(c);
}

/* ---- waits ----------------------------------------------------------------- */

static void test_waits(void **s)
{
	struct cluster *c = load_path(DIR "/cluster.yaml");
	json_t *allf = load_facts();
	const json_t **facts = facts_for(c, allf);
	struct exports ex;
	struct strv needs = STRV_INIT;

	/* No run has reached the controller: no munge key file anywhere, the
	 * wait said; slurmdbd.conf waits for the password. */
	exports_with_secrets(&ex, NULL, NULL);
	json_t *out = render(c, facts, cluster_node(c, "node2"), &ex, &needs);
	assert_null(resource_with(out, "file", "path", "/etc/munge/munge.key"));
	assert_non_null(file_content(out, "/etc/slurm/slurm.conf"));
	assert_true(strv_contains(&needs, "node1 slurm.munge_key"));
	json_decref(out);
	strv_release(&needs);
	out = render(c, facts, cluster_node(c, "node1"), &ex, &needs);
	assert_null(resource_with(out, "file", "path", "/etc/slurm/slurmdbd.conf"));
	assert_non_null(resource_with(out, "secret", "path", "/etc/munge/munge.key"));
	assert_true(strv_contains(&needs, "node1 slurm.db_password"));
	json_decref(out);
	strv_release(&needs);
	exports_release(&ex);

	/* A malformed key (not hex, wrong length) is not installed. */
	exports_with_secrets(&ex, "evil\nkey", DBPASS_HEX);
	out = render(c, facts, cluster_node(c, "node3"), &ex, &needs);
	assert_null(resource_with(out, "file", "path", "/etc/munge/munge.key"));
	assert_true(strv_contains(&needs,
				  "node1 slurm.munge_key (the one exported is malformed)"));
	char *dump = json_dumps(out, JSON_COMPACT);
	assert_null(strstr(dump, "evil"));
	free(dump);
	json_decref(out);
	strv_release(&needs);
	exports_release(&ex);

	/* node4 never collected: out of slurm.conf, the controller says so. */
	facts[cluster_node(c, "node4") - c->nodes] = NULL;
	exports_with_secrets(&ex, MUNGE_HEX, DBPASS_HEX);
	out = render(c, facts, cluster_node(c, "node1"), &ex, &needs);
	assert_null(strstr(file_content(out, "/etc/slurm/slurm.conf"), "node4"));
	assert_true(strv_contains(&needs, "node4 facts (cpu and memory, for its NodeName "
				  "line)"));
	json_decref(out);
	strv_release(&needs);
	/* node4 itself: packages need facts; its config is the cluster's, no gres */
	out = render(c, facts, cluster_node(c, "node4"), &ex, &needs);
	assert_null(resource_with(out, "package", NULL, NULL));
	assert_null(file_content(out, "/etc/slurm/gres.conf"));
	json_decref(out);
	strv_release(&needs);
	exports_release(&ex);
	free(facts);
	json_decref(allf);
	cluster_free(c);
}

/* A partition edit changes the reconfigure stamp only; a node's GPUs change
 * the restart stamps. */
static const char *stamp_of(const json_t *list, const char *name)
{
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		const char *cmd = json_string_value(json_object_get(r, "command"));
		char *tail = xasprintf("/var/lib/kiln/slurm/%s", name);
		bool hit = cmd && strstr(cmd, tail) && strstr(cmd, name) &&
			   (!strcmp(name, "reconfigure") ? !strncmp(cmd, "scontrol", 8)
							 : !strncmp(cmd, "systemctl", 9));
		free(tail);
		if (hit)
			return json_string_value(json_object_get(r, "unless"));
	}
	return NULL;
}

static void test_handlers(void **s)
{
	struct cluster *c = load_path(DIR "/cluster.yaml");
	json_t *allf = load_facts();
	const json_t **facts = facts_for(c, allf);
	struct exports ex;
	exports_with_secrets(&ex, MUNGE_HEX, DBPASS_HEX);
	const struct node *n1 = cluster_node(c, "node1"), *n3 = cluster_node(c, "node3");

	json_t *a1 = render(c, facts, n1, &ex, NULL), *a3 = render(c, facts, n3, &ex, NULL);
	char *ctl = xstrdup(stamp_of(a1, "slurmctld")), *rec = xstrdup(stamp_of(a1, "reconfigure"));
	char *d3 = xstrdup(stamp_of(a3, "slurmd"));

	/* partitions only: reconfigure, no restart */
	/* the spec without the 'rack1' partition */
	struct cluster *c2 = NULL;
	const char *edited = "cluster: lab-gpu\nssh:\n  known_hosts: ../known_hosts\n"
		"groups:\n  gpu:\nnodes:\n"
		"  - name: node3\n    address: 10.0.0.13\n    groups: [gpu]\n"
		"    labels: {rack: r1}\n"
		"  - name: node1\n    address: 10.0.0.11\n"
		"    roles: [slurm-controller, slurm-login, slurm-db]\n"
		"  - name: node2\n    address: 10.0.0.12\n    groups: [gpu]\n"
		"  - name: node4\n    address: 10.0.0.14\n    roles: [slurm-compute]\n"
		"    labels: {rack: r1}\n"
		"  - name: node5\n    address: 10.0.0.15\n"
		"stacks:\n  slurm:\n    memory_reserve: 2G\n    partitions:\n"
		"      gpus:\n        group: gpu\n"
		"      t4:\n        nodes: [node3]\n        default: true\n";
	struct kerr e = { 0 };
	if (load_text(edited, &c2, &e) < 0)
		fail_msg("%s", e.msg);
	const json_t **f2 = facts_for(c2, allf);
	json_t *b1 = render(c2, f2, cluster_node(c2, "node1"), &ex, NULL);
	json_t *b3 = render(c2, f2, cluster_node(c2, "node3"), &ex, NULL);
	assert_string_equal(stamp_of(b1, "slurmctld"), ctl);
	assert_string_not_equal(stamp_of(b1, "reconfigure"), rec);
	assert_string_equal(stamp_of(b3, "slurmd"), d3);
	json_decref(b1);
	json_decref(b3);

	/* node3's T4 gone: both daemons restart (slurmd on node3 too) */
	json_t *f3 = json_deep_copy(json_object_get(allf, "node3"));
	json_array_clear(json_object_get(f3, "gpus"));
	f2[cluster_node(c2, "node3") - c2->nodes] = f3;
	b1 = render(c2, f2, cluster_node(c2, "node1"), &ex, NULL);
	b3 = render(c2, f2, cluster_node(c2, "node3"), &ex, NULL);
	assert_string_not_equal(stamp_of(b1, "slurmctld"), ctl);
	/* node3 is still a compute node: role-less, it has no GPU now, so it
	 * leaves Slurm (gpu_compute) */
	assert_null(strstr(file_content(b1, "/etc/slurm/slurm.conf"), "NodeName=node3"));
	json_decref(b1);
	json_decref(b3);
	json_decref(f3);

	free(f2);
	cluster_free(c2);
	free(ctl);
	free(rec);
	free(d3);
	json_decref(a1);
	json_decref(a3);
	exports_release(&ex);
	free(facts);
	json_decref(allf);
	cluster_free(c);
}

/* ---- spec errors ------------------------------------------------------------ */

/* a valid kiln cluster name, too long for Slurm (40) */
#define LONG_NAME "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEAD "cluster: c1\nssh:\n  known_hosts: ../known_hosts\nnodes:\n" \
	     "  - name: a\n    address: 10.0.0.1\n    roles: [slurm-controller]\n" \
	     "  - name: b\n    address: 10.0.0.2\n"

static void test_spec_errors(void **s)
{
	static const char *const cases[][2] = {
		{ HEAD "stacks:\n  slurm:\n    bogus: 1\n",
		  "t.yaml:12:5: unknown key 'bogus' in stacks.slurm" },
		{ HEAD "stacks:\n  slurm:\n    memory_reserve: lots\n",
		  "t.yaml:12:21: stacks.slurm.memory_reserve: expected a size like 1G or 512M, "
		  "or a percentage up to 50%, found 'lots'" },
		{ HEAD "stacks:\n  slurm:\n    memory_reserve: 80%\n",
		  "t.yaml:12:21: stacks.slurm.memory_reserve" },
		{ HEAD "stacks:\n  slurm:\n    cluster_name: Big Cluster\n",
		  "t.yaml:12:19: stacks.slurm.cluster_name: 'Big Cluster' is not a Slurm "
		  "cluster name" },
		{ HEAD "stacks:\n  slurm:\n    partitions:\n      p1:\n        group: nope\n",
		  "t.yaml:14:16: stacks.slurm.partitions.p1.group: no group 'nope' in the spec" },
		{ HEAD "stacks:\n  slurm:\n    partitions:\n      p1:\n        nodes: [a, zz]\n",
		  "t.yaml:14:20: stacks.slurm.partitions.p1.nodes: no node 'zz' in the spec" },
		{ HEAD "stacks:\n  slurm:\n    partitions:\n      p1:\n        label: rack\n",
		  "t.yaml:14:16: stacks.slurm.partitions.p1.label: expected KEY=VALUE" },
		{ HEAD "stacks:\n  slurm:\n    partitions:\n      p1:\n        nodes: [a]\n"
		  "        group: all\n",
		  "t.yaml:14:9: stacks.slurm.partitions.p1: expected exactly one of group, "
		  "label or nodes" },
		{ HEAD "stacks:\n  slurm:\n    partitions:\n      p1:\n        nodes: [a]\n"
		  "        default: true\n      p2:\n        nodes: [b]\n        default: true\n",
		  "t.yaml:18:18: stacks.slurm.partitions.p2: partition 'p1' is already the "
		  "default" },
		{ HEAD "stacks:\n  slurm:\n    partitions:\n      Bad Name:\n        nodes: [a]\n",
		  "t.yaml:13:7: stacks.slurm.partitions: 'Bad Name' is not a partition name" },
		{ HEAD "stacks:\n  slurm:\n    check_timeout: 0\n",
		  "t.yaml:12:20: stacks.slurm.check_timeout" },
		{ HEAD "stacks:\n  slurm:\n    scheduler_parameters: \"a;reboot\"\n",
		  "t.yaml:12:27: stacks.slurm.scheduler_parameters: 'a;reboot' is not a list" },
		{ "cluster: c1\nssh:\n  known_hosts: ../known_hosts\nnodes:\n"
		  "  - name: a\n    address: 10.0.0.1\n"
		  "stacks:\n  slurm:\n",
		  "t.yaml:8:9: stacks.slurm: no node has role slurm-controller" },
		{ HEAD "  - name: c\n    address: 10.0.0.3\n    roles: [slurm-controller]\n"
		  "stacks:\n  slurm:\n",
		  "t.yaml:10:5: node 'c': role slurm-controller is already node 'a''s" },
		{ HEAD "  - name: c\n    address: 10.0.0.3\n    roles: [slurm-compte]\n"
		  "stacks:\n  slurm:\n",
		  "t.yaml:10:5: node 'c': unknown role 'slurm-compte'" },
		{ "cluster: " LONG_NAME "\nssh:\n  known_hosts: ../known_hosts\nnodes:\n"
		  "  - name: a\n    address: 10.0.0.1\n    roles: [slurm-controller]\n"
		  "stacks:\n  slurm:\n    cgroup: false\n",
		  "t.yaml:10:5: stacks.slurm: the cluster name '" LONG_NAME "' is not a Slurm "
		  "cluster name" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cluster *c = NULL;
		struct kerr e = { 0 };
		int r = load_text(cases[i][0], &c, &e);
		if (r != -EINVAL || !strstr(e.msg, cases[i][1]))
			fail_msg("case %zu: got %d '%s', expected '%s'", i, r, e.msg,
				 cases[i][1]);
		assert_null(c);
	}
	/* "slurm:" alone is fine with a controller; defaults apply */
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	assert_int_equal(load_text(HEAD "stacks:\n  slurm:\n", &c, &e), 0);
	cluster_free(c);
}

/* kiln run's view: the structured node list slurm.conf is written from. */
static void test_jobs_nodes(void **s)
{
	struct cluster *c = load_path(DIR "/cluster.yaml");
	json_t *all = load_facts();
	const json_t **facts = facts_for(c, all);
	struct render_ctx rc = { .c = c, .facts = facts };
	struct jobs_node *v = NULL;
	size_t n = slurm_jobs_nodes(&rc, &v);

	assert_string_equal(slurm_login_node(c)->name, "node1");
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "node2");
	assert_int_equal(v[0].cpus, 64);
	assert_int_equal(v[0].mem_mb, 522240);
	assert_int_equal(v[0].ngpus, 1);
	assert_string_equal(v[0].gpus[0].type, "a100");
	assert_int_equal(v[0].gpus[0].count, 2);
	assert_string_equal(v[1].name, "node3");
	assert_string_equal(v[1].gpus[0].type, "t4");
	assert_int_equal(v[1].gpus[0].count, 1);
	assert_string_equal(v[2].name, "node4");
	assert_int_equal(v[2].ngpus, 0);
	assert_true(strv_contains(&v[1].partitions, "t4"));
	assert_true(strv_contains(&v[1].partitions, "gpus"));
	assert_true(strv_contains(&v[1].partitions, "rack1"));
	assert_true(strv_contains(&v[1].partitions, "all"));
	assert_false(strv_contains(&v[1].partitions, "a100"));
	assert_true(strv_contains(&v[0].partitions, "a100"));

	/* the placement check over them: per node, never totals */
	struct jobs_request rq;
	struct kerr e = { 0 };
	jobs_request_init(&rq);
	assert_int_equal(jobs_parse_gpus("3", &rq, &e), 0);
	assert_int_equal(jobs_place(v, n, &rq, NULL, &e), -ENOSPC);
	assert_non_null(strstr(e.msg, "no node has 3 GPUs (the most on one node: 2, on node2)"));
	jobs_request_release(&rq);
	for (size_t i = 0; i < n; i++)
		jobs_node_release(&v[i]);
	free(v);

	/* without facts, no node is known */
	rc.facts = NULL;
	assert_int_equal(slurm_jobs_nodes(&rc, &v), 0);
	free(v);
	free(facts);
	json_decref(all);
	cluster_free(c);
}

/* ---- a node's facts against its recorded definition ------------------------ */

/* prepare over facts with recorded (may be NULL) into made, and what it replaced. */
static void prepare_with(const struct cluster *c, const json_t **facts,
			 const struct exports *recorded, struct exports *made,
			 struct exports *replaced)
{
	struct render_ctx rc = { .c = c, .facts = facts, .exports = recorded };
	struct kerr e = { 0 };

	exports_init(made);
	exports_init(replaced);
	purity_start();
	assert_int_equal(stacks_prepare(&rc, made, &e), 0);
	purity_stop("stacks_prepare");
	stacks_prepare_replaced(recorded, made, replaced);
}

/* The notes of node name's render, joined by newlines, into out. */
static void notes_of(const struct cluster *c, const json_t **facts, const struct exports *ex,
		     const struct exports *replaced, const char *name, struct buf *out)
{
	struct render_ctx rc = { .c = c, .facts = facts, .exports = ex, .replaced = replaced };
	struct render_out ro;
	struct kerr e = { 0 };

	render_out_init(&ro);
	purity_start();
	assert_int_equal(stacks_render_node(&rc, cluster_node(c, name), &ro, &e), 0);
	purity_stop("render");
	buf_reset(out);
	buf_adds(out, "");
	for (size_t i = 0; i < ro.notes.n; i++)
		buf_printf(out, "%s\n", ro.notes.v[i]);
	render_out_release(&ro);
}

/* Drop the GPU at index k of node's facts (a copy in all). */
static void gpu_gone(json_t *all, const char *node, size_t k)
{
	json_array_remove(json_object_get(json_object_get(all, node), "gpus"), k);
}

static void test_definition_shortfall(void **s)
{
	struct cluster *c = load_path(DIR "/cluster.yaml");
	json_t *all = load_facts();
	const json_t **facts = facts_for(c, all);
	struct exports rec, made, replaced, known;
	struct buf notes;

	buf_init(&notes, 0);
	/* prepare: one definition per compute node, as its NodeName line says */
	exports_with_secrets(&rec, MUNGE_HEX, DBPASS_HEX);
	prepare_with(c, facts, &rec, &made, &replaced);
	assert_string_equal(exports_get(&made, "node2", "slurm", "definition"),
			    "CPUs=64 RealMemory=522240 Gres=gpu:a100:2");
	assert_non_null(strstr(exports_get(&made, "node3", "slurm", "definition"),
			       " Gres=gpu:t4:1"));
	assert_null(strstr(exports_get(&made, "node4", "slurm", "definition"), "Gres"));
	assert_null(exports_get(&made, "node1", "slurm", "definition"));
	assert_null(exports_get(&made, "node5", "slurm", "definition"));
	/* new values: replaced says there was none */
	assert_non_null(exports_find(&replaced, "node2", "slurm", "definition"));
	assert_null(exports_find(&replaced, "node2", "slurm", "definition")->value);
	/* recorded as apply stores them; the same facts again: nothing said */
	for (size_t i = 0; i < made.n; i++)
		exports_set(&rec, made.v[i].node, "slurm", made.v[i].name, made.v[i].value, false);
	exports_release(&made);
	exports_release(&replaced);
	prepare_with(c, facts, &rec, &made, &replaced);
	assert_int_equal(replaced.n, 0);
	notes_of(c, facts, &rec, &replaced, "node2", &notes);
	assert_string_equal(notes.s, "");
	exports_release(&made);
	exports_release(&replaced);

	/* node2 lost a GPU, node3 its only one (so it no longer computes) */
	gpu_gone(all, "node2", 1);
	gpu_gone(all, "node3", 0);
	prepare_with(c, facts, &rec, &made, &replaced);
	assert_string_equal(exports_get(&made, "node2", "slurm", "definition"),
			    "CPUs=64 RealMemory=522240 Gres=gpu:a100:1");
	assert_string_equal(exports_get(&made, "node3", "slurm", "definition"), "");
	assert_string_equal(exports_find(&replaced, "node2", "slurm", "definition")->value,
			    "CPUs=64 RealMemory=522240 Gres=gpu:a100:2");
	/* the renders see the new values in exports, the recorded in replaced */
	exports_init(&known);
	for (size_t i = 0; i < rec.n; i++)
		exports_set(&known, rec.v[i].node, rec.v[i].stack, rec.v[i].name, rec.v[i].value,
			    rec.v[i].secret);
	for (size_t i = 0; i < made.n; i++)
		exports_set(&known, made.v[i].node, "slurm", made.v[i].name, made.v[i].value, false);
	notes_of(c, facts, &known, &replaced, "node2", &notes);
	assert_string_equal(notes.s, "node2: facts show 1 GPU (a100), slurm.conf defined "
			    "gpu:a100:2 — a GPU gone; Slurm would drain it\n");
	notes_of(c, facts, &known, &replaced, "node3", &notes);
	assert_string_equal(notes.s, "node3: facts show 0 GPUs (t4), slurm.conf defined "
			    "gpu:t4:1 — a GPU gone; Slurm would drain it\n");
	notes_of(c, facts, &known, &replaced, "node4", &notes);
	assert_string_equal(notes.s, "");
	/* without replaced (the run after an apply stored the new ones): nothing */
	notes_of(c, facts, &known, NULL, "node2", &notes);
	assert_string_equal(notes.s, "");
	exports_release(&known);
	exports_release(&made);
	exports_release(&replaced);

	/* fewer CPUs and less memory than recorded; more GPUs is no shortfall */
	exports_set(&rec, "node2", "slurm", "definition",
		    "CPUs=128 RealMemory=1000000 Gres=gpu:a100:1", false);
	notes_of(c, facts, &rec, NULL, "node2", &notes);
	assert_string_equal(notes.s, "node2: facts show 64 CPUs, slurm.conf defined CPUs=128; "
			    "facts show 524288 MiB of memory, slurm.conf defined "
			    "RealMemory=1000000; Slurm would drain it\n");
	/* a recorded value of another form is not trusted */
	exports_set(&rec, "node2", "slurm", "definition", "CPUs=64 Gres=gpu:A100;rm:2", false);
	notes_of(c, facts, &rec, NULL, "node2", &notes);
	assert_string_equal(notes.s, "node2: the recorded slurm.definition is malformed; "
			    "not compared\n");

	exports_release(&rec);
	buf_release(&notes);
	free(facts);
	json_decref(all);
	cluster_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gpu_types),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_waits),
		cmocka_unit_test(test_handlers),
		cmocka_unit_test(test_spec_errors),
		cmocka_unit_test(test_jobs_nodes),
		cmocka_unit_test(test_definition_shortfall),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
