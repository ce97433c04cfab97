/*
 * The ceph stack: disk selection on fixture facts (every rejection rule,
 * every filter, the reasons text); stacks.ceph's spec errors; golden files
 * for every node's resources, ceph.conf and the ceph-csi files; every
 * resource passes the agent's validation; rendering is pure; a render
 * without the first monitor's keys waits for them, never guesses; replicas
 * never exceed the OSD hosts; an OSD whose disk vanished is reported and
 * not made anew on a spare disk; the secret resource exports a made key and
 * keyrings (files marked secret) keep their content out of diffs and
 * messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "purity.h"
#include "resources/resources.h"
#include "stacks/ceph.h"
#include "stacks/stacks.h"

#define DIR KILN_TEST_DATA "/stacks/ceph"
#define FSID "5b0f6c2e-8a1d-4c3e-9f70-1a2b3c4d5e6f"
#define OTHER "11111111-2222-4333-8444-555555555555"
#define GiB(x) ((long long)(x) << 30)

/* ---- selection ---------------------------------------------------------- */

/* One facts.disks[] entry: a free 8 GiB SSD unless changed by the extras. */
static json_t *disk(const char *name, long long size, const char *extra_json)
{
	json_t *d = json_pack("{s:s,s:I,s:b,s:s,s:s,s:s,s:b,s:b,s:[],s:b,s:n,s:n}", "name", name,
			      "size_bytes", (json_int_t)size, "rotational", 0, "model",
			      "SAMSUNG MZ7L3", "vendor", "ATA", "serial", "S1", "removable", 0,
			      "read_only", 0, "partitions", "in_use", 0, "in_use_reason",
			      "signature");
	if (extra_json) {
		json_error_t err;
		json_t *x = json_loads(extra_json, 0, &err);
		if (!x)
			fail_msg("fixture %s: %s", extra_json, err.text);
		json_object_update(d, x);
		json_decref(x);
	}
	return d;
}

static void filter_init(struct ceph_osd_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->rotational = -1;
}

/* "sda:OSD" or "sdb:REASON" per disk, joined with " | "; gone OSDs count. */
static char *choose_gone(const struct ceph_osd_filter *f, json_t *disks, const char *fsid,
			 size_t gone)
{
	struct ceph_disks d;
	struct buf b;

	buf_init(&b, 0);
	ceph_select_disks(f, disks, fsid, gone, &d);
	for (size_t i = 0; i < d.n; i++)
		buf_printf(&b, "%s%s:%s", i ? " | " : "", d.v[i].name,
			   d.v[i].osd ? (d.v[i].ours ? "ours" : "OSD") : d.v[i].reason);
	for (size_t i = 0; i < d.missing.n; i++)
		buf_printf(&b, " | missing %s", d.missing.v[i]);
	ceph_disks_release(&d);
	json_decref(disks);
	char *t = xstrdup(b.s);
	buf_release(&b);
	return t;
}

static char *choose(const struct ceph_osd_filter *f, json_t *disks, const char *fsid)
{
	return choose_gone(f, disks, fsid, 0);
}

static void test_rejection_rules(void **s)
{
	struct ceph_osd_filter f;
	filter_init(&f);
	json_t *disks = json_pack("[o,o,o,o,o,o,o,o,o,o,o,o,o,o,o,o]",
		disk("sda", GiB(8), NULL),
		disk("sdb", GiB(8), "{\"removable\": true}"),
		disk("sdc", GiB(8), "{\"read_only\": true}"),
		disk("sdd", GiB(4), NULL),
		disk("sde", GiB(8), "{\"in_use\": true, \"in_use_reason\": \"mounted at /srv/data\"}"),
		disk("sdf", GiB(8), "{\"in_use\": true, \"in_use_reason\": \"has partitions\", "
			"\"partitions\": [\"sdf1\"]}"),
		disk("sdg", GiB(8), "{\"in_use\": true, \"in_use_reason\": \"disk held by dm-0\"}"),
		disk("sdh", GiB(8), "{\"in_use\": true, \"in_use_reason\": \"disk held by md0\"}"),
		disk("sdi", GiB(8), "{\"signature\": \"ext4\"}"),
		disk("sdj", GiB(8), "{\"signature\": \"gpt\"}"),
		disk("sdk", GiB(8), "{\"signature\": \"LVM2_member\"}"),
		disk("sdl", GiB(8), "{\"signature\": \"linux_raid_member\"}"),
		disk("sdm", GiB(8), "{\"signature\": \"bluestore\", \"bluestore_fsid\": \"" OTHER "\"}"),
		disk("sdn", GiB(8), "{\"signature\": \"bluestore\", \"bluestore_fsid\": \"" FSID "\"}"),
		disk("sdo", 0, "{\"size_bytes\": null, \"removable\": true, \"signature\": \"xfs\"}"),
		disk("sdp", GiB(5), NULL));
	char *got = choose(&f, disks, FSID);
	assert_string_equal(got,
		"sda:OSD | sdb:removable | sdc:read-only | sdd:smaller than 5 GiB (4.0 GiB) | "
		"sde:mounted at /srv/data | sdf:has partitions | sdg:disk held by dm-0 | "
		"sdh:disk held by md0 | sdi:has a ext4 filesystem | sdj:has a GPT partition table | "
		"sdk:LVM physical volume | sdl:RAID member | "
		"sdm:BlueStore label of another cluster (fsid " OTHER ") | sdn:ours | "
		"sdo:removable; size unknown; has a xfs filesystem | sdp:OSD");
	free(got);
	/* before this cluster has an fsid, every BlueStore label is another's */
	got = choose(&f, json_pack("[o]", disk("sdn", GiB(8), "{\"signature\": \"bluestore\", "
					       "\"bluestore_fsid\": \"" FSID "\"}")), NULL);
	assert_string_equal(got, "sdn:BlueStore label of another cluster (fsid " FSID ")");
	free(got);
	/* no facts: nothing chosen */
	got = choose(&f, NULL, FSID);
	assert_string_equal(got, "");
	free(got);
	/* a node's odd text is shown printable and bounded */
	got = choose(&f, json_pack("[o]", disk("sdz", GiB(8), "{\"in_use\": true, "
					       "\"in_use_reason\": \"a\\u001b[31mb\"}")), NULL);
	assert_string_equal(got, "sdz:a?[31mb");
	free(got);
	/* a name that is not a kernel name never reaches a command */
	got = choose(&f, json_pack("[o]", disk("sd;reboot", GiB(8), NULL)), NULL);
	assert_string_equal(got, "sd;reboot:not a plain device name");
	free(got);
}

static void test_filters(void **s)
{
	struct ceph_osd_filter f;
	char *got;
#define FOUR() json_pack("[o,o,o,o]", disk("sda", GiB(8), NULL), \
	disk("sdb", GiB(100), "{\"rotational\": true, \"model\": \"ST8000NM\", \"vendor\": \"SEAGATE\"}"), \
	disk("sdc", GiB(20), "{\"model\": \"INTEL SSD\", \"vendor\": \"INTEL\"}"), \
	disk("sdd", GiB(2048), "{\"rotational\": true, \"model\": null, \"vendor\": null}"))

	filter_init(&f);
	f.rotational = 0;
	got = choose(&f, FOUR(), FSID);
	assert_string_equal(got, "sda:OSD | sdb:rotational (osds.rotational: false) | sdc:OSD | "
			    "sdd:rotational (osds.rotational: false)");
	free(got);

	filter_init(&f);
	f.rotational = 1;
	got = choose(&f, FOUR(), FSID);
	assert_string_equal(got, "sda:not rotational (osds.rotational: true) | sdb:OSD | "
			    "sdc:not rotational (osds.rotational: true) | sdd:OSD");
	free(got);

	filter_init(&f);
	assert_true(ceph_parse_size_range("10G:1T", &f));
	f.size_text = "10G:1T";
	got = choose(&f, FOUR(), FSID);
	assert_string_equal(got, "sda:size 8.0 GiB outside osds.size 10G:1T | sdb:OSD | sdc:OSD | "
			    "sdd:size 2.0 TiB outside osds.size 10G:1T");
	free(got);

	filter_init(&f);
	assert_true(ceph_parse_size_range(":20G", &f));
	f.size_text = ":20G";
	got = choose(&f, FOUR(), FSID);
	assert_string_equal(got, "sda:OSD | sdb:size 100.0 GiB outside osds.size :20G | sdc:OSD | "
			    "sdd:size 2.0 TiB outside osds.size :20G");
	free(got);

	filter_init(&f);
	f.model = "INTEL";
	got = choose(&f, FOUR(), FSID);
	assert_string_equal(got, "sda:model 'SAMSUNG MZ7L3' does not start with 'INTEL' | "
			    "sdb:model 'ST8000NM' does not start with 'INTEL' | sdc:OSD | "
			    "sdd:model 'unknown' does not start with 'INTEL'");
	free(got);

	filter_init(&f);
	f.vendor = "SEAGATE";
	got = choose(&f, FOUR(), FSID);
	assert_string_equal(got, "sda:vendor 'ATA' does not start with 'SEAGATE' | sdb:OSD | "
			    "sdc:vendor 'INTEL' does not start with 'SEAGATE' | "
			    "sdd:vendor 'unknown' does not start with 'SEAGATE'");
	free(got);

	/* limit counts the disks that pass everything else, in facts order */
	filter_init(&f);
	f.limit = 2;
	got = choose(&f, json_pack("[o,o,o,o]", disk("sda", GiB(1), NULL), disk("sdb", GiB(8), NULL),
				   disk("sdc", GiB(8), NULL), disk("sdd", GiB(8), NULL)), FSID);
	assert_string_equal(got, "sda:smaller than 5 GiB (1.0 GiB) | sdb:OSD | sdc:OSD | "
			    "sdd:over osds.limit 2");
	free(got);

	/* explicit paths: only those, still under the rules; a path no disk has */
	filter_init(&f);
	strv_push(&f.paths, "/dev/sdc");
	strv_push(&f.paths, "/dev/sdb");
	strv_push(&f.paths, "/dev/sdx");
	got = choose(&f, json_pack("[o,o,o]", disk("sda", GiB(8), NULL),
				   disk("sdb", GiB(8), "{\"signature\": \"ext4\"}"),
				   disk("sdc", GiB(8), NULL)), FSID);
	assert_string_equal(got, "sda:not in osds.paths | sdb:has a ext4 filesystem | sdc:OSD | "
			    "missing /dev/sdx");
	free(got);
	strv_release(&f.paths);
#undef FOUR
}

static void test_sizes(void **s)
{
	uint64_t v;
	struct ceph_osd_filter f;

	assert_true(ceph_parse_size("10G", &v));
	assert_int_equal(v, 10ull << 30);
	assert_true(ceph_parse_size("1.5T", &v));
	assert_int_equal(v, 3ull << 39);
	assert_true(ceph_parse_size("500MiB", &v));
	assert_int_equal(v, 500ull << 20);
	assert_true(ceph_parse_size("4096", &v));
	assert_int_equal(v, 4096);
	assert_false(ceph_parse_size("10X", &v));
	assert_false(ceph_parse_size("", &v));
	assert_false(ceph_parse_size("-1G", &v));
	filter_init(&f);
	assert_true(ceph_parse_size_range("10G", &f));
	assert_int_equal(f.size_min, 10ull << 30);
	assert_int_equal(f.size_max, 10ull << 30);
	assert_true(ceph_parse_size_range("10G:", &f));
	assert_int_equal(f.size_max, 0);
	assert_false(ceph_parse_size_range(":", &f));
	assert_false(ceph_parse_size_range("2T:1T", &f));
	assert_false(ceph_parse_size_range("a:b", &f));
}

/* ---- the spec ------------------------------------------------------------ */

static void spec_error(const char *nodes_roles, const char *ceph, const char *want)
{
	char *text = xasprintf("cluster: t\nssh:\n  known_hosts: ../known_hosts\nnodes:\n"
			       "  - {name: a1, address: 10.0.0.1, roles: [%s]}\n"
			       "  - {name: a2, address: 10.0.0.2, roles: [ceph-mon]}\n"
			       "  - {name: a3, address: 10.0.0.3, roles: [ceph-mon]}\n"
			       "stacks:\n  ceph:\n%s", nodes_roles, ceph);
	char *path = xasprintf("%s/bad.yaml", DIR);
	struct cluster *c = NULL;
	struct kerr e = { 0 };

	if (spec_load_string(path, text, strlen(text), &c, &e) == 0)
		fail_msg("accepted:\n%s", text);
	if (!strstr(e.msg, want))
		fail_msg("error '%s' lacks '%s'", e.msg, want);
	free(path);
	free(text);
}

static void test_spec_errors(void **s)
{
	/* stacks.ceph is line 9, its first key line 10 */
	spec_error("worker", "    size: 3\n",
		   "bad.yaml:10:5: stacks.ceph: 2 nodes have role ceph-mon: a monitor quorum "
		   "needs 1, 3 or 5");
	spec_error("ceph-mon", "    colour: blue\n",
		   "10:5: unknown key 'colour' in stacks.ceph");
	spec_error("ceph-mon", "    osds: {size: big}\n",
		   "10:18: stacks.ceph.osds.size: expected a size or a range like 10G, 10G:, "
		   ":2T or 100G:2T, found 'big'");
	spec_error("ceph-mon", "    osds: {paths: [/dev/sda1x/]}\n",
		   "10:20: stacks.ceph.osds.paths");
	spec_error("ceph-mon", "    osds: {limit: 0}\n",
		   "10:19: stacks.ceph.osds.limit: 0 is out of range 1..1024");
	spec_error("ceph-mon", "    osds: {rotational: maybe}\n",
		   "10:24: stacks.ceph.osds.rotational");
	spec_error("ceph-mon", "    osds: {nodes: [zz]}\n",
		   "10:20: stacks.ceph.osds.nodes: no node 'zz' in the spec");
	spec_error("ceph-mon", "    cephfs: {mount: relative/dir}\n",
		   "10:21: stacks.ceph.cephfs.mount: 'relative/dir' is not an absolute path");
	spec_error("ceph-mon", "    cephfs: {nodes: [a1, b9]}\n",
		   "10:26: stacks.ceph.cephfs.nodes: no node 'b9' in the spec");
	spec_error("ceph-mon", "    rbd_pool: \"Bad Pool\"\n",
		   "10:15: stacks.ceph.rbd_pool: 'Bad Pool' is not a name");
	spec_error("ceph-mon", "    osd_memory_target: 100M\n",
		   "10:24: stacks.ceph.osd_memory_target: expected a size of at least 896M");
	spec_error("ceph-mon", "    size: 0\n", "10:11: stacks.ceph.size: 0 is out of range 1..10");
	spec_error("ceph-mon", "    managers: 4\n",
		   "10:15: stacks.ceph.managers: 4, but 3 monitors (managers run on the monitors)");
	spec_error("ceph-mon", "    public_network: 10.0.0/24\n",
		   "10:21: stacks.ceph.public_network: '10.0.0/24' is not an IPv4 network");
	/* config: ceph.conf options, kept as written or refused */
	spec_error("ceph-mon", "    config: {osds: {a: b}}\n",
		   "10:14: stacks.ceph.config: 'osds' is not a ceph.conf section");
	spec_error("ceph-mon", "    config: {osd.: {a: b}}\n",
		   "10:14: stacks.ceph.config: 'osd.' is not a ceph.conf section");
	spec_error("ceph-mon", "    config: {global.x: {a: b}}\n",
		   "10:14: stacks.ceph.config: 'global.x' is not a ceph.conf section");
	spec_error("ceph-mon", "    config: [a]\n",
		   "10:13: stacks.ceph.config: expected a mapping");
	spec_error("ceph-mon", "    config: {osd: {Bad-Name: 1}}\n",
		   "10:20: stacks.ceph.config.osd: 'Bad-Name' is not an option name");
	spec_error("ceph-mon", "    config: {global: {fsid: 1}}\n",
		   "10:23: stacks.ceph.config.global.fsid: kiln writes this option itself");
	spec_error("ceph-mon", "    config: {osd: {osd_memory_target: 2G}}\n",
		   "10:20: stacks.ceph.config.osd.osd_memory_target: kiln writes this option itself");
	spec_error("ceph-mon", "    config: {osd: {a: \"x # y\"}}\n",
		   "10:23: stacks.ceph.config.osd.a: 'x # y' is not a value ceph.conf keeps");
	spec_error("ceph-mon", "    config: {osd: {a: \"x\\ny\"}}\n",
		   "stacks.ceph.config.osd.a:");
	spec_error("ceph-mon", "    config: {osd: {a: [1]}}\n",
		   "10:23: stacks.ceph.config value: expected a string");
}

/* ---- rendering ------------------------------------------------------------- */

static struct cluster *load_spec(void)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };

	if (spec_load(DIR "/cluster.yaml", &c, &e) < 0)
		fail_msg("spec: %s", e.msg);
	return c;
}

/* Fixture facts: Debian; n1..n3 sda, sdb free and sdc mounted; n4 one free disk. */
static json_t *facts_of(const struct node *n)
{
	json_t *disks = json_pack("[o,o]", disk("sda", GiB(8), NULL), disk("sdb", GiB(8), NULL));
	if (strcmp(n->name, "n4"))
		json_array_append_new(disks, disk("sdc", GiB(8), "{\"in_use\": true, "
						  "\"in_use_reason\": \"mounted at /srv/data\", "
						  "\"signature\": \"ext4\"}"));
	else
		json_array_remove(disks, 1);
	/* n4's kernel can mount ceph (the kernel client), n1's cannot (ceph-fuse) */
	json_t *fss = strcmp(n->name, "n4") ? json_pack("[s,s]", "ext4", "fuse")
					    : json_pack("[s,s,s]", "ceph", "ext4", "fuse");
	/* n4's host name is not its node name: its OSDs are under "store-4" */
	const char *host = strcmp(n->name, "n4") ? n->name : "store-4.example.org";
	return json_pack("{s:{s:s},s:o,s:{s:o},s:s}", "os", "family", "debian", "disks", disks,
			 "kernel", "filesystems", fss, "hostname", host);
}

static const char *const key_names[] = { "mon_key", "admin_key", "bootstrap_osd_key", "fs_key",
					 "kubernetes_key" };

/* A well-formed made-up key, different per i. */
static void fake_key(unsigned i, char out[41])
{
	snprintf(out, 41, "AQBfake%02uKeyForTestsOnly0000000000000A==", i);
}

static void exports_all(struct exports *ex, bool keys)
{
	exports_init(ex);
	exports_set(ex, "n1", "ceph", "fsid", FSID, false);
	for (unsigned i = 0; keys && i < ARRAY_SIZE(key_names); i++) {
		char k[41];
		fake_key(i, k);
		exports_set(ex, "n1", "ceph", key_names[i], k, true);
	}
}

struct rendered {
	json_t *res;
	struct strv needs, notes;
};

static void render(const struct cluster *c, const struct node *n, const struct exports *ex,
		   const json_t *const *facts, struct rendered *out)
{
	struct render_out ro;
	struct kerr e = { 0 };
	char what[64];

	render_out_init(&ro);
	struct render_ctx rc = { .c = c, .facts = facts, .exports = ex };
	purity_start();
	int r = stacks_render_node(&rc, n, &ro, &e);
	snprintf(what, sizeof(what), "rendering node '%s'", n->name);
	purity_stop(what);
	if (r < 0)
		fail_msg("render %s: %s", n->name, e.msg);
	size_t i;
	json_t *res;
	json_array_foreach(ro.resources, i, res) {
		json_t *bare = json_deep_copy(res);
		json_object_del(bare, "phase");
		if (resource_validate(bare, &e) < 0)
			fail_msg("node %s: resource %s does not validate: %s", n->name,
				 json_dumps(res, JSON_COMPACT), e.msg);
		json_decref(bare);
	}
	out->res = json_incref(ro.resources);
	out->needs = (struct strv)STRV_INIT;
	out->notes = (struct strv)STRV_INIT;
	for (size_t k = 0; k < ro.needs.n; k++)
		strv_push(&out->needs, ro.needs.v[k]);
	for (size_t k = 0; k < ro.notes.n; k++)
		strv_push(&out->notes, ro.notes.v[k]);
	render_out_release(&ro);
}

static void rendered_release(struct rendered *r)
{
	json_decref(r->res);
	strv_release(&r->needs);
	strv_release(&r->notes);
}

static const json_t *resource_at(const json_t *list, const char *type, const char *path)
{
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		const char *t = json_string_value(json_object_get(r, "type"));
		const char *p = json_string_value(json_object_get(r, "path"));
		if (!strcmp(t, type) && (!path || (p && !strcmp(p, path))))
			return r;
	}
	return NULL;
}

/* A text golden: DIR/golden/NAME (KILN_UPDATE_GOLDEN=1 rewrites it). */
static void text_golden(const char *name, const char *got)
{
	char *path = xasprintf("%s/golden/%s", DIR, name);
	if (getenv("KILN_UPDATE_GOLDEN")) {
		assert_int_equal(file_write_atomic(path, got, strlen(got), 0644, -1, -1), 0);
	} else {
		struct buf want;
		buf_init(&want, 0);
		if (file_read(path, &want, 0) < 0)
			fail_msg("no golden %s", path);
		if (strcmp(want.s, got))
			fail_msg("%s differs from the rendering:\n%s", path, got);
		buf_release(&want);
	}
	free(path);
}

static void test_golden(void **s)
{
	struct cluster *c = load_spec();
	json_t **facts = xcalloc(c->nnodes, sizeof(*facts));
	json_t *all = json_object();
	struct exports ex;

	for (size_t i = 0; i < c->nnodes; i++)
		facts[i] = facts_of(&c->nodes[i]);
	exports_all(&ex, true);
	for (size_t i = 0; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[i];
		struct rendered r, again;
		render(c, n, &ex, (const json_t *const *)facts, &r);
		if (r.needs.n)
			fail_msg("node %s waits for %s", n->name, r.needs.v[0]);
		render(c, n, &ex, (const json_t *const *)facts, &again);
		assert_true(json_equal(r.res, again.res));
		json_t *o = json_pack("{s:O,s:[]}", "resources", r.res, "notes");
		for (size_t k = 0; k < r.notes.n; k++)
			json_array_append_new(json_object_get(o, "notes"), json_string(r.notes.v[k]));
		json_object_set_new(all, n->name, o);
		if (!strcmp(n->name, "n1")) {
			const json_t *conf = resource_at(r.res, "file", "/etc/ceph/ceph.conf");
			assert_non_null(conf);
			text_golden("ceph.conf", json_string_value(json_object_get(conf, "content")));
			static const char *const csi[] = { "ceph-csi-config.yaml",
				"csi-rbd-secret.yaml", "storageclass-rbd.yaml",
				"csi-cephfs-secret.yaml", "storageclass-cephfs.yaml" };
			for (size_t k = 0; k < ARRAY_SIZE(csi); k++) {
				char *p = xasprintf("/etc/kiln/ceph/csi/%s", csi[k]);
				const json_t *f = resource_at(r.res, "file", p);
				if (!f)
					f = resource_at(r.res, "secret", p);
				if (!f)
					fail_msg("n1 has no %s", p);
				text_golden(csi[k], json_string_value(json_object_get(f, "content")));
				free(p);
			}
		}
		rendered_release(&r);
		rendered_release(&again);
	}
	golden_check(DIR "/golden/nodes.json", all);
	/* every key is in a file marked secret only: never a plain file, a
	 * command or an id */
	char *dump = json_dumps(all, JSON_COMPACT);
	for (unsigned i = 0; i < ARRAY_SIZE(key_names); i++) {
		char k[41];
		fake_key(i, k);
		for (const char *p = strstr(dump, k); p; p = strstr(p + 1, k)) {
			/* the object around it must be a secret file */
			const char *open = p;
			while (open > dump && *open != '{')
				open--;
			const char *close = strchr(p, '}');
			char *obj = xstrndup(open, (size_t)(close - open));
			if (!strstr(obj, "\"type\":\"file\"") || !strstr(obj, "\"secret\":true"))
				fail_msg("key %s outside a secret file: %s", key_names[i], obj);
			free(obj);
		}
	}
	free(dump);
	exports_release(&ex);
	json_decref(all);
	for (size_t i = 0; i < c->nnodes; i++)
		json_decref(facts[i]);
	free(facts);
	cluster_free(c);
}

/* Without the first monitor's exports, every later phase waits, naming them. */
static void test_waits_for_keys(void **s)
{
	struct cluster *c = load_spec();
	json_t **facts = xcalloc(c->nnodes, sizeof(*facts));
	struct exports none, fsid_only;
	struct rendered r;

	for (size_t i = 0; i < c->nnodes; i++)
		facts[i] = facts_of(&c->nodes[i]);
	exports_init(&none);
	render(c, cluster_node(c, "n2"), &none, (const json_t *const *)facts, &r);
	assert_true(strv_contains(&r.needs, "n1 ceph.fsid"));
	assert_true(strv_contains(&r.needs, "n1 ceph.mon_key"));
	/* only packages: no ceph.conf, no keyring, no command */
	assert_null(resource_at(r.res, "file", "/etc/ceph/ceph.conf"));
	assert_null(resource_at(r.res, "command", NULL));
	assert_non_null(resource_at(r.res, "package", NULL));
	rendered_release(&r);
	/* the first monitor makes the keys in its first phase */
	render(c, cluster_node(c, "n1"), &none, (const json_t *const *)facts, &r);
	assert_non_null(resource_at(r.res, "secret", "/etc/kiln/ceph/fsid"));
	assert_non_null(resource_at(r.res, "secret", "/etc/kiln/ceph/admin.key"));
	rendered_release(&r);
	/* a secret read back from the state has no value: still waited for */
	exports_all(&fsid_only, false);
	exports_set(&fsid_only, "n1", "ceph", "admin_key", NULL, true);
	render(c, cluster_node(c, "n4"), &fsid_only, (const json_t *const *)facts, &r);
	assert_true(strv_contains(&r.needs, "n1 ceph.bootstrap_osd_key"));
	if (resource_at(r.res, "command", NULL))
		fail_msg("n4 runs %s", json_dumps(resource_at(r.res, "command", NULL), 0));
	rendered_release(&r);
	exports_release(&fsid_only);
	exports_release(&none);
	for (size_t i = 0; i < c->nnodes; i++)
		json_decref(facts[i]);
	free(facts);
	cluster_free(c);
}

/* Replicas follow the OSD hosts: one host with disks -> size 1, never 3. */
static void test_size_from_hosts(void **s)
{
	struct cluster *c = load_spec();
	json_t **facts = xcalloc(c->nnodes, sizeof(*facts));
	struct exports ex;
	struct rendered r;

	/* only n4 has facts (a free disk); the others none */
	facts[3] = facts_of(cluster_node(c, "n4"));
	assert_string_equal(c->nodes[3].name, "n4");
	exports_all(&ex, true);
	render(c, cluster_node(c, "n1"), &ex, (const json_t *const *)facts, &r);
	const char *conf = json_string_value(json_object_get(
		resource_at(r.res, "file", "/etc/ceph/ceph.conf"), "content"));
	assert_non_null(strstr(conf, "osd_pool_default_size = 1\n"));
	assert_non_null(strstr(conf, "osd_pool_default_min_size = 1\n"));
	assert_true(strv_contains(&r.notes, "no facts: no disk chosen"));
	rendered_release(&r);
	render(c, cluster_node(c, "n4"), &ex, (const json_t *const *)facts, &r);
	assert_true(strv_contains(&r.notes, "/dev/sda (8.0 GiB) becomes an OSD"));
	rendered_release(&r);
	exports_release(&ex);
	json_decref(facts[3]);
	free(facts);
	cluster_free(c);
}

/* ---- OSDs of hosts that left the spec ------------------------------------------- */

/* The retire command n1 renders with n3's host name (NULL: none in its
 * facts), or NULL (and its notes in *notes). */
static char *retire_command(const char *n3_host, struct strv *notes)
{
	struct cluster *c = load_spec();
	json_t **facts = xcalloc(c->nnodes, sizeof(*facts));
	struct exports ex;
	struct rendered r;
	char *cmd = NULL;

	for (size_t i = 0; i < c->nnodes; i++) {
		facts[i] = facts_of(&c->nodes[i]);
		if (strcmp(c->nodes[i].name, "n3"))
			continue;
		if (n3_host)
			json_object_set_new(facts[i], "hostname", json_string(n3_host));
		else
			json_object_del(facts[i], "hostname");
	}
	exports_all(&ex, true);
	/* n3 held osd.7 on a disk that vanished: still n3's, never retired */
	exports_set(&ex, "n3", "ceph", "osds", "7:sdz", false);
	render(c, cluster_node(c, "n1"), &ex, (const json_t *const *)facts, &r);
	size_t i;
	json_t *x;
	json_array_foreach(r.res, i, x) {
		const char *t = json_string_value(json_object_get(x, "command"));
		if (t && strstr(t, "ceph-retire ensure"))
			cmd = xstrdup(t);
	}
	for (size_t k = 0; k < r.notes.n; k++)
		strv_push(notes, r.notes.v[k]);
	rendered_release(&r);
	exports_release(&ex);
	for (size_t k = 0; k < c->nnodes; k++)
		json_decref(facts[k]);
	free(facts);
	cluster_free(c);
	return cmd;
}

/*
 * The first monitor keeps every OSD node by name and by short host name
 * (n4's is store-4), and every OSD a node of the spec holds by its record
 * (n3's osd.7, its disk gone); a host name that is not a plain name, or
 * not known, retires nothing that run, with a note.
 */
static void test_retire(void **s)
{
	struct strv notes = STRV_INIT;
	char *cmd = retire_command("n3", &notes);

	assert_non_null(cmd);
	assert_string_equal(cmd, "/usr/local/lib/kiln/ceph-retire ensure n2 n1 n3 n4 store-4 -- 7");
	free(cmd);
	strv_release(&notes);
	assert_null(retire_command("n3;reboot", &notes));
	assert_true(strv_contains(&notes, "no OSD of a departed host retired: n3's host name is "
					  "not a plain name"));
	strv_release(&notes);	assert_null(retire_command(NULL, &notes));
	assert_true(strv_contains(&notes, "no OSD of a departed host retired: n3's host name is "
					  "not known yet"));
	strv_release(&notes);
}

/* ---- a vanished disk ---------------------------------------------------------- */

#define OURS(id) "{\"signature\": \"bluestore\", \"bluestore_fsid\": \"" FSID "\", " \
	"\"bluestore_osd\": " #id "}"

static void record_is(const char *rec, json_t *disks, const char *want, const char *want_gone)
{
	struct strv gone = STRV_INIT;
	char *got = ceph_osd_record(rec, disks, FSID, &gone);
	struct buf g;

	buf_init(&g, 0);
	for (size_t i = 0; i < gone.n; i++)
		buf_printf(&g, "%s%s", i ? ", " : "", gone.v[i]);
	assert_string_equal(got, want);
	assert_string_equal(g.s, want_gone);
	buf_release(&g);
	free(got);
	strv_release(&gone);
	json_decref(disks);
}

/*
 * The record of OSDs per disk: made from facts; an OSD whose disk vanished
 * stays in it and is reported; a new disk in its place makes it forgotten;
 * malformed words are dropped; the record of a record is itself.  Selection
 * counts the vanished OSD against osds.limit, so no spare disk replaces it;
 * the render notes it and makes nothing for it; prepare exports a changed
 * record only.
 */
static void test_vanished_disk(void **s)
{
	struct ceph_osd_filter f;
	char *t;

	record_is(NULL, json_pack("[o,o,o]", disk("sda", GiB(8), OURS(4)),
				  disk("sdb", GiB(8), OURS(3)), disk("sdc", GiB(8), NULL)),
		  "3:sdb 4:sda", "");
	record_is("3:sdb 4:sda", json_pack("[o,o]", disk("sda", GiB(8), OURS(4)),
					   disk("sdc", GiB(8), NULL)),
		  "3:sdb 4:sda", "osd.3 on /dev/sdb");
	record_is("3:sdb 4:sda", json_pack("[o,o]", disk("sda", GiB(8), OURS(4)),
					   disk("sdb", GiB(8), NULL)), "4:sda", "");
	record_is("3:sdb", json_pack("[o]", disk("sdb", GiB(8), "{\"signature\": \"bluestore\", "
						 "\"bluestore_fsid\": \"" OTHER "\", "
						 "\"bluestore_osd\": 3}")), "", "");
	record_is("x:sdb 5:SDB 6:../e -1:sdc 7 9999999999:sdd 8: 4:sdf", json_pack("[o]",
		  disk("sda", GiB(8), OURS(4))), "4:sda", "");
	record_is("3:sdb 4:sda", NULL, "3:sdb 4:sda", "osd.3 on /dev/sdb, osd.4 on /dev/sda");

	filter_init(&f);
	f.limit = 2;
	t = choose_gone(&f, json_pack("[o,o]", disk("sda", GiB(8), OURS(4)),
				      disk("sdc", GiB(8), NULL)), FSID, 1);
	assert_string_equal(t, "sda:ours | sdc:over osds.limit 2 (with 1 OSD whose disk is gone)");
	free(t);
	t = choose(&f, json_pack("[o,o]", disk("sda", GiB(8), OURS(4)), disk("sdc", GiB(8), NULL)),
		   FSID);
	assert_string_equal(t, "sda:ours | sdc:OSD");
	free(t);

	/* the stack: n2's sdb (osd.3) vanished, a spare sdc is there; limit 2 */
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	if (spec_load(DIR "/limit.yaml", &c, &e) < 0)
		fail_msg("spec: %s", e.msg);
	json_t **facts = xcalloc(c->nnodes, sizeof(*facts));
	for (size_t i = 0; i < c->nnodes; i++) {
		const char *name = c->nodes[i].name;
		json_t *disks = !strcmp(name, "n2")
			? json_pack("[o,o]", disk("sda", GiB(8), OURS(4)), disk("sdc", GiB(8), NULL))
			: !strcmp(name, "n3")
			? json_pack("[o,o]", disk("sda", GiB(8), OURS(1)), disk("sdb", GiB(8), OURS(0)))
			: json_pack("[o]", disk("sda", GiB(8), NULL));
		facts[i] = json_pack("{s:{s:s},s:o}", "os", "family", "debian", "disks", disks);
	}
	struct exports ex, made;
	struct rendered r;
	exports_all(&ex, true);
	exports_set(&ex, "n2", "ceph", "osds", "3:sdb 4:sda", false);
	render(c, cluster_node(c, "n2"), &ex, (const json_t *const *)facts, &r);
	assert_true(strv_contains(&r.notes, "n2: osd.3 on /dev/sdb: disk gone, not recreated"));
	assert_true(strv_contains(&r.notes, "/dev/sdc (8.0 GiB) passed over: over osds.limit 2 "
				  "(with 1 OSD whose disk is gone)"));
	assert_true(strv_contains(&r.notes, "/dev/sda (8.0 GiB) is an OSD"));
	size_t i, commands = 0;
	json_t *x;
	json_array_foreach(r.res, i, x) {
		const char *cmd = json_string_value(json_object_get(x, "command"));
		if (!cmd || !strstr(cmd, "/ceph-osd ensure"))
			continue;
		commands++;
		assert_non_null(strstr(cmd, "ensure /dev/sda "));
	}
	assert_int_equal(commands, 1);
	rendered_release(&r);
	/* prepare: n3's record is new, n2's unchanged (not exported again) */
	struct render_ctx rc = { .c = c, .facts = (const json_t *const *)facts, .exports = &ex };
	exports_init(&made);
	assert_int_equal(stacks_prepare(&rc, &made, &e), 0);
	assert_string_equal(exports_get(&made, "n3", "ceph", "osds"), "0:sdb 1:sda");
	assert_null(exports_find(&made, "n2", "ceph", "osds"));
	assert_null(exports_find(&made, "n1", "ceph", "osds"));   /* nothing to record */
	exports_release(&made);
	exports_release(&ex);
	for (size_t k = 0; k < c->nnodes; k++)
		json_decref(facts[k]);
	free(facts);
	cluster_free(c);
}

/* ---- the secret resource ---------------------------------------------------- */

static void test_secret_resource(void **s)
{
	char root[] = "/tmp/kiln-test-secret.XXXXXX";
	struct res_ctx ctx;
	struct res_result out = { 0 };
	struct kerr e = { 0 };

	assert_non_null(mkdtemp(root));
	json_t *gen = res_secret_generate("/etc/kiln/ceph/admin.key", "ceph-key", "admin_key",
					  NULL, NULL);
	assert_int_equal(resource_validate(gen, &e), 0);
	/* check: would create, nothing exported yet, nothing written */
	res_ctx_init(&ctx, root, true);
	resource_run(&ctx, gen, &out);
	assert_int_equal(out.status, RES_CHANGED);
	assert_null(out.exports);
	res_result_release(&out);
	res_ctx_release(&ctx);
	/* apply: made, 0600, exported, never in diff or message */
	res_ctx_init(&ctx, root, false);
	memset(&out, 0, sizeof(out));
	resource_run(&ctx, gen, &out);
	assert_int_equal(out.status, RES_CHANGED);
	const char *key = json_string_value(json_object_get(out.exports, "admin_key"));
	assert_non_null(key);
	assert_int_equal(strlen(key), 40);
	assert_true(str_starts(key, "AQ"));
	char *k1 = xstrdup(key);
	assert_null(out.diff);
	assert_null(strstr(out.message ? out.message : "", k1));
	res_result_release(&out);
	char *path = xasprintf("%s/etc/kiln/ceph/admin.key", root);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* again: ok, the same key */
	memset(&out, 0, sizeof(out));
	resource_run(&ctx, gen, &out);
	assert_int_equal(out.status, RES_OK);
	assert_string_equal(json_string_value(json_object_get(out.exports, "admin_key")), k1);
	res_result_release(&out);
	/* a file that is not a key fails without showing it */
	assert_int_equal(file_write_atomic(path, "hunter2\n", 8, 0600, -1, -1), 0);
	memset(&out, 0, sizeof(out));
	resource_run(&ctx, gen, &out);
	assert_int_equal(out.status, RES_FAILED);
	assert_null(strstr(out.message, "hunter2"));
	res_result_release(&out);
	/* a keyring is a file marked secret: changed without a diff, then ok */
	json_t *kr = res_file_secret("/etc/ceph/k.keyring", "[client.x]\n\tkey = SECRETVALUE\n",
				     0600, NULL, NULL);
	assert_int_equal(resource_validate(kr, &e), 0);
	memset(&out, 0, sizeof(out));
	resource_run(&ctx, kr, &out);
	assert_int_equal(out.status, RES_CHANGED);
	assert_null(out.diff);
	assert_null(strstr(out.message ? out.message : "", "SECRETVALUE"));
	res_result_release(&out);
	memset(&out, 0, sizeof(out));
	resource_run(&ctx, kr, &out);
	assert_int_equal(out.status, RES_OK);
	res_result_release(&out);
	/* the secret type has no content form; an export needs a name */
	json_t *bad = json_pack("{s:s,s:s,s:s,s:s}", "type", "secret", "path", "/x", "content", "a",
				"export", "y");
	assert_int_equal(resource_validate(bad, &e), -EINVAL);
	json_decref(bad);
	bad = json_pack("{s:s,s:s,s:s}", "type", "secret", "path", "/x", "generate", "uuid");
	assert_int_equal(resource_validate(bad, &e), -EINVAL);
	json_decref(bad);
	res_ctx_release(&ctx);
	json_decref(gen);
	json_decref(kr);
	free(k1);
	free(path);
	rm_rf(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rejection_rules),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_spec_errors),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_waits_for_keys),
		cmocka_unit_test(test_size_from_hosts),
		cmocka_unit_test(test_vanished_disk),
		cmocka_unit_test(test_retire),
		cmocka_unit_test(test_secret_resource),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
