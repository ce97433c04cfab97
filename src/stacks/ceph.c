/*
 * The ceph stack: a Ceph 16.2 cluster from the distribution's packages
 * (docs/ceph.md), with no containers and no registry.  Its spec is parsed
 * in ceph_spec.c, the disks chosen in ceph_disks.c; here, the phases:
 *
 *   (prepare) the record of which OSD each disk held (export "osds"), so
 *           a vanished disk's OSD is reported, never made anew elsewhere.
 *   keys    every Ceph node gets its packages; the first monitor (by name)
 *           makes the fsid and every cephx key once (secret resources) and
 *           exports them: the keys as secrets, never stored or shown; the
 *           keyrings made from them are files marked secret (no diff).
 *   mon     each monitor: ceph.conf, its keyrings, the monmap every
 *           monitor builds alike from the spec, ceph-mon --mkfs, the unit.
 *   mgr     the first monitors (2 unless the spec says) run a manager (its
 *           key from the monitors).
 *   osd     each node: the disks facts found free and the filters select
 *           become BlueStore OSDs (ceph-volume raw), one unit each.
 *   fs      pools (RBD, CephFS) sized from the OSD hosts, the client keys,
 *           an MDS per monitor, CephFS mounted where the spec says (the
 *           kernel client where the node's kernel has it, else ceph-fuse),
 *           the ceph-csi files for Kubernetes.
 *   health  the first monitor retires the OSDs of hosts that left the spec
 *           (out, drained, purged), then waits (bounded) for HEALTH_OK with
 *           every monitor in quorum, else fails with Ceph's reasons.
 */
#include "stacks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ceph.h"
#include "ceph_int.h"
#include "resources/resources.h"

#define CEPH_CONF "/etc/ceph/ceph.conf"
#define CEPH_KILN "/etc/kiln/ceph"          /* keys and keyrings kiln keeps, 0700 */
#define CEPH_LIB "/usr/local/lib/kiln"
#define CEPH_ADMIN_KEYRING "/etc/ceph/ceph.client.admin.keyring"
#define CEPH_BOOTSTRAP_KEYRING "/var/lib/ceph/bootstrap-osd/ceph.keyring"
/* read by ceph-mon --mkfs after it drops to user ceph: not under CEPH_KILN */
#define CEPH_MKFS_KEYRING "/etc/ceph/kiln-mkfs.keyring"
#define CEPH_MONMAP "/etc/ceph/kiln-monmap"
#define CEPH_FS_CLIENT "fs"
#define CEPH_HEALTH_SETTLE 30   /* s the health check waits before it says "not healthy" */
#define CEPH_PG_SETTLE 10       /* s after an OSD up/in change before PG states count */
#define CEPH_RETIRE_WAIT_S "300" /* s a departed host's OSDs may take to drain in one apply */
#define CEPH_K8S_CLIENT "kubernetes"
/* manager modules never loaded (mgr_disabled_modules; always-on ones load) */
#define CEPH_MGR_UNLOADED "alerts,diskprediction_local,influx,insights,localpool,mirroring," \
	"nfs,osd_perf_query,osd_support,restful,selftest,telegraf,test_orchestrator,zabbix"

/* ---- the model a render works from ----------------------------------------- */

static bool is_mon(const struct ceph_conf *c, const struct node *n)
{
	return strv_contains(&c->mons, n->name);
}

/* A manager runs on the first `managers` monitors by name. */
static bool is_mgr(const struct ceph_conf *c, const struct node *n)
{
	for (size_t i = 0; i < c->mons.n && i < (size_t)c->managers; i++)
		if (!strcmp(c->mons.v[i], n->name))
			return true;
	return false;
}

static const char *first_mon(const struct ceph_conf *c)
{
	return c->mons.v[0];
}

static bool osd_node(const struct ceph_conf *c, const struct node *n)
{
	return !c->osd_nodes.n || strv_contains(&c->osd_nodes, n->name);
}

static bool fs_node(const struct ceph_conf *c, const struct node *n)
{
	return c->fs_name && (!c->fs_nodes.n || strv_contains(&c->fs_nodes, n->name));
}

/*
 * Whether node n mounts CephFS with the kernel client: its kernel can
 * mount "ceph" (facts kernel.filesystems: built in, loaded, or a module on
 * disk).  Else ceph-fuse, which needs no kernel support; a node without
 * facts yet gets ceph-fuse too, and the kernel client once facts say so.
 */
static bool kernel_cephfs(const struct render_ctx *rc, const struct node *n)
{
	const json_t *fss = json_object_get(render_fact(rc, n, "kernel"), "filesystems");
	size_t i;
	json_t *f;

	json_array_foreach(fss, i, f) {
		const char *name = json_string_value(f);
		if (name && !strcmp(name, "ceph"))
			return true;
	}
	return false;
}

static bool ceph_node(const struct ceph_conf *c, const struct node *n)
{
	return is_mon(c, n) || osd_node(c, n) || fs_node(c, n);
}

/* The fsid as the first monitor exported it (not a secret), checked. */
static const char *fsid_of(const struct render_ctx *rc, const struct ceph_conf *c,
			   struct render_out *out)
{
	const char *f = out ? render_export(rc, out, first_mon(c), CEPH_STACK, "fsid")
			    : exports_get(rc->exports, first_mon(c), CEPH_STACK, "fsid");
	if (!f || strlen(f) != 36 || strspn(f, "0123456789abcdef-") != 36)
		return NULL;
	return f;
}

/* A key the first monitor exported: 40 base64 characters, else NULL (noted). */
static const char *key_of(const struct render_ctx *rc, const struct ceph_conf *c,
			  struct render_out *out, const char *name)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
	const char *k = render_export(rc, out, first_mon(c), CEPH_STACK, name);

	if (k && (strlen(k) != 40 || strspn(k, b64) != 40)) {
		strv_pushf(&out->needs, "%s %s.%s (the one made is malformed)", first_mon(c),
			   CEPH_STACK, name);
		return NULL;
	}
	return k;
}

/* The cluster exists as far as a render can tell: its fsid and admin key are
 * made (else what needs them waits, noted). */
static bool cluster_made(const struct render_ctx *rc, const struct ceph_conf *c,
			 struct render_out *out)
{
	bool f = fsid_of(rc, c, out) != NULL;
	return key_of(rc, c, out, "admin_key") && f;
}

/*
 * The disks of node n: chosen under the filter, with this cluster's fsid;
 * the OSDs whose disk is gone (the record, ceph.h) count against the
 * limit and go into gone ("osd.3 on /dev/sdb"; gone may be NULL).
 */
static void node_disks(const struct render_ctx *rc, const struct ceph_conf *c,
		       const struct node *n, struct ceph_disks *d, struct strv *gone)
{
	const json_t *disks = osd_node(c, n) ? render_fact(rc, n, "disks") : NULL;
	const char *fsid = fsid_of(rc, c, NULL);
	struct strv g = STRV_INIT;

	if (disks && fsid)
		free(ceph_osd_record(exports_get(rc->exports, n->name, CEPH_STACK, "osds"), disks,
				     fsid, &g));
	ceph_select_disks(&c->osds, disks, fsid, g.n, d);
	for (size_t i = 0; gone && i < g.n; i++)
		strv_push(gone, g.v[i]);
	strv_release(&g);
}

/* OSD hosts: nodes with at least one disk chosen (recorded facts for the others). */
static size_t osd_hosts(const struct render_ctx *rc, const struct ceph_conf *c)
{
	size_t hosts = 0;

	for (size_t i = 0; i < rc->c->nnodes; i++) {
		struct ceph_disks d;
		node_disks(rc, c, &rc->c->nodes[i], &d, NULL);
		hosts += d.nosd > 0;
		ceph_disks_release(&d);
	}
	return hosts;
}

/* Replicas: the spec's size, never more than the OSD hosts (CRUSH places one
 * copy per host); 0 when there is no OSD host yet. */
static int pool_size(const struct render_ctx *rc, const struct ceph_conf *c)
{
	size_t h = osd_hosts(rc, c);
	return h < (size_t)c->size ? (int)h : c->size;
}

static int min_size(int size)
{
	return size - size / 2;   /* Ceph's own default: 3 -> 2, 2 -> 1 */
}

static const char *mon_address(const struct render_ctx *rc, const char *name)
{
	return cluster_node(rc->c, name)->address;
}

/* ---- files ----------------------------------------------------------------- */

static char *conf_text(const struct render_ctx *rc, const struct ceph_conf *c, const char *fsid,
		       int size)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "# managed by kiln (stacks.ceph); docs/ceph.md\n[global]\nfsid = %s\n",
		   fsid);
	buf_adds(&b, "mon_initial_members = ");
	for (size_t i = 0; i < c->mons.n; i++)
		buf_printf(&b, "%s%s", i ? ", " : "", c->mons.v[i]);
	buf_adds(&b, "\nmon_host = ");
	for (size_t i = 0; i < c->mons.n; i++) {
		const char *a = mon_address(rc, c->mons.v[i]);
		buf_printf(&b, "%s[v2:%s:3300,v1:%s:6789]", i ? "," : "", a, a);
	}
	buf_adds(&b, "\n");
	if (c->public_network)
		buf_printf(&b, "public_network = %s\n", c->public_network);
	buf_adds(&b, "auth_cluster_required = cephx\nauth_service_required = cephx\n"
		     "auth_client_required = cephx\n"
		     "auth_allow_insecure_global_id_reclaim = false\n");
	if (size > 0)
		buf_printf(&b, "osd_pool_default_size = %d\nosd_pool_default_min_size = %d\n",
			   size, min_size(size));
	if (size == 1)
		buf_adds(&b, "mon_allow_pool_size_one = true\n"
			     "mon_warn_on_pool_no_redundancy = false\n");
	/* pg_num is the spec's: the autoscaler would change it under a
	 * running cluster (PGs peering long after apply said healthy) */
	buf_printf(&b, "osd_pool_default_pg_num = %d\nosd_pool_default_pgp_num = %d\n"
		   "osd_pool_default_pg_autoscale_mode = off\n"
		   "osd_crush_chooseleaf_type = 1\n", c->pg_num, c->pg_num);
	if (c->osd_memory_target)
		buf_printf(&b, "osd_memory_target = %llu\n",
			   (unsigned long long)c->osd_memory_target);
	/*
	 * Managers: a standby starts no module, and modules nobody enabled
	 * (integrations, test modules, restful without its certificate, nfs
	 * without an orchestrator) are never loaded: every manager imported
	 * them all, ~280 MiB each.  The monitors' config database overrides
	 * this (docs/ceph.md).  The storage path keeps no in-memory debug
	 * log: gathering it costs CPU on every write.
	 */
	static const char *const tuning[][2] = {
		{ "mgr_standby_modules", "false" }, { "mgr_initial_modules", "iostat" },
		{ "mgr_disabled_modules", CEPH_MGR_UNLOADED }, { "debug_bluestore", "0/0" },
		{ "debug_bluefs", "0/0" }, { "debug_bdev", "0/0" }, { "debug_rocksdb", "0/0" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(tuning); i++)
		if (!ceph_conf_has(c, "global", tuning[i][0]))
			buf_printf(&b, "%s = %s\n", tuning[i][0], tuning[i][1]);
	/* stacks.ceph.config: [global]'s options here, every other section after */
	for (size_t i = 0; i < c->conf_sections.n; i++)
		if (!strcmp(c->conf_sections.v[i], "global"))
			buf_adds(&b, c->conf_lines.v[i]);
	for (size_t i = 0; i < c->conf_sections.n; i++)
		if (strcmp(c->conf_sections.v[i], "global"))
			buf_printf(&b, "[%s]\n%s", c->conf_sections.v[i], c->conf_lines.v[i]);
	return b.s;
}

/* ceph.conf for node n, or NULL (noted) while the fsid is not made. */
static json_t *conf_file(const struct render_ctx *rc, const struct ceph_conf *c,
			 struct render_out *out)
{
	const char *fsid = fsid_of(rc, c, out);
	if (!fsid)
		return NULL;
	char *t = conf_text(rc, c, fsid, pool_size(rc, c));
	json_t *r = res_file(CEPH_CONF, t, 0644, "root", "root");
	free(t);
	return r;
}

static char *keyring(const char *entity, const char *key, const char *const *caps)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "[%s]\n\tkey = %s\n", entity, key);
	for (; caps && caps[0]; caps += 2)
		buf_printf(&b, "\tcaps %s = \"%s\"\n", caps[0], caps[1]);
	return b.s;
}

static const char *const admin_caps[] = { "mds", "allow *", "mgr", "allow *", "mon", "allow *",
					  "osd", "allow *", NULL };
static const char *const bootstrap_caps[] = { "mgr", "allow r", "mon", "profile bootstrap-osd",
					      NULL };

/* client.fs: this file system only. */
static void fs_caps(const struct ceph_conf *c, char *mds, char *osd, size_t n)
{
	snprintf(mds, n, "allow rw fsname=%s", c->fs_name);
	snprintf(osd, n, "allow rw tag cephfs data=%s", c->fs_name);
}

static void push(struct render_out *out, json_t *r)
{
	if (r)
		json_array_append_new(out->resources, r);
}

static void push_secret(struct render_out *out, const char *path, char *content,
			const char *owner)
{
	push(out, res_file_secret(path, content, 0600, owner, owner));
	free(content);
}

static json_t *dir(const char *path, unsigned mode, const char *owner)
{
	return res_directory(path, mode, owner, owner);
}

/*
 * A unit enabled, its state not managed: the ceph targets, which the
 * packages leave disabled, so that the daemons enabled under them start at
 * boot.
 */
static void enabled(struct render_out *out, const char *unit)
{
	json_t *r = res_service(unit, true, true, NULL, 0);
	json_object_del(r, "state");
	push(out, r);
}

/* ---- phase keys -------------------------------------------------------------- */

static int render_keys(const struct render_ctx *rc, const void *conf, const struct node *n,
		       struct render_out *out, struct kerr *e)
{
	const struct ceph_conf *c = conf;
	const char *family = json_string_value(json_object_get(render_fact(rc, n, "os"),
								"family"));
	const char *pk[8];
	size_t np = 0;

	(void)e;
	if (!ceph_node(c, n))
		return 0;
	pk[np++] = "ceph-common";
	if (is_mon(c, n)) {
		pk[np++] = "ceph-mon";
		pk[np++] = "ceph-mgr";
		if (c->fs_name)
			pk[np++] = "ceph-mds";
	}
	if (osd_node(c, n)) {
		pk[np++] = "ceph-osd";
	}
	if (fs_node(c, n) && !kernel_cephfs(rc, n))
		pk[np++] = "ceph-fuse";     /* the kernel client's mount.ceph is in ceph-common */
	if (family && !strcmp(family, "debian"))
		push(out, res_package(pk, np, true));
	else if (render_has_facts(rc, n))
		strv_pushf(&out->notes, "packages only on Debian (os.family %.32s): "
			   "install Ceph 16.2 yourself", family ? family : "unknown");
	if (strcmp(n->name, first_mon(c)))
		return 0;
	push(out, dir(CEPH_KILN, 0700, "root"));
	push(out, res_secret_generate(CEPH_KILN "/fsid", "uuid", "fsid", NULL, NULL));
	static const char *const keys[][2] = {
		{ "mon.key", "mon_key" }, { "admin.key", "admin_key" },
		{ "bootstrap-osd.key", "bootstrap_osd_key" },
		{ "client.fs.key", "fs_key" }, { "client.kubernetes.key", "kubernetes_key" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		char *p = xasprintf("%s/%s", CEPH_KILN, keys[i][0]);
		push(out, res_secret_generate(p, "ceph-key", keys[i][1], NULL, NULL));
		free(p);
	}
	return 0;
}

/* ---- phase mon ----------------------------------------------------------------- */

static int render_mon(const struct render_ctx *rc, const void *conf, const struct node *n,
		      struct render_out *out, struct kerr *e)
{
	const struct ceph_conf *c = conf;
	json_t *cf;

	(void)e;
	if (!is_mon(c, n))
		return 0;
	const char *fsid = fsid_of(rc, c, out);
	const char *mon = key_of(rc, c, out, "mon_key"), *admin = key_of(rc, c, out, "admin_key");
	const char *boot = key_of(rc, c, out, "bootstrap_osd_key");
	if (!fsid || !mon || !admin || !boot || !(cf = conf_file(rc, c, out)))
		return 0;
	push(out, cf);
	push(out, dir("/var/run/ceph", 0770, "ceph"));
	push(out, dir("/var/log/ceph", 0770, "ceph"));
	push(out, dir(CEPH_KILN, 0700, "root"));
	push_secret(out, CEPH_ADMIN_KEYRING, keyring("client.admin", admin, admin_caps), "root");
	/* the keyring --mkfs seeds the monitors' auth database with */
	struct buf k;
	char *a = keyring("mon.", mon, (const char *const[]){ "mon", "allow *", NULL });
	char *b = keyring("client.admin", admin, admin_caps);
	char *d = keyring("client.bootstrap-osd", boot, bootstrap_caps);
	buf_init(&k, 0);
	buf_printf(&k, "%s%s%s", a, b, d);
	free(a);
	free(b);
	free(d);
	push_secret(out, CEPH_MKFS_KEYRING, k.s, "ceph");
	char *data = xasprintf("/var/lib/ceph/mon/ceph-%s", n->name);
	push(out, dir(data, 0750, "ceph"));
	struct buf cmd;
	buf_init(&cmd, 0);
	buf_printf(&cmd, "monmaptool --create --clobber --enable-all-features "
		   "--set-min-mon-release pacific --fsid %s", fsid);
	for (size_t i = 0; i < c->mons.n; i++) {
		const char *ad = mon_address(rc, c->mons.v[i]);
		buf_printf(&cmd, " --addv %s '[v2:%s:3300,v1:%s:6789]'", c->mons.v[i], ad, ad);
	}
	buf_printf(&cmd, " %s >/dev/null && ceph-mon --mkfs -i %s --monmap %s --keyring %s "
		   "--setuser ceph --setgroup ceph && touch %s/kiln-done && "
		   "{ systemctl reset-failed ceph-mon@%s 2>/dev/null || true; }", CEPH_MONMAP,
		   n->name, CEPH_MONMAP, CEPH_MKFS_KEYRING, data, n->name);
	char *done = xasprintf("%s/kiln-done", data);
	push(out, res_command(cmd.s, done, NULL));
	buf_release(&cmd);
	free(done);
	free(data);
	char *unit = xasprintf("ceph-mon@%s", n->name);
	const char *watch[] = { "file:" CEPH_CONF };
	push(out, res_service(unit, true, true, watch, 1));
	free(unit);
	enabled(out, "ceph.target");
	enabled(out, "ceph-mon.target");
	return 0;
}

/* ---- phase mgr ----------------------------------------------------------------- */

/* A daemon's key from the monitors (the admin key asks), then its unit. */
static void daemon_key(struct render_out *out, const char *type, const char *name,
		       const char *caps)
{
	char *data = xasprintf("/var/lib/ceph/%s/ceph-%s", type, name);
	char *kr = xasprintf("%s/keyring", data);
	char *cmd = xasprintf("ceph --connect-timeout 120 auth get-or-create %s.%s %s -o %s.kiln-new"
			      " && chown ceph:ceph %s.kiln-new && chmod 0600 %s.kiln-new && "
			      "mv %s.kiln-new %s && { systemctl reset-failed ceph-%s@%s 2>/dev/null "
			      "|| true; }", type, name, caps, kr, kr, kr, kr, kr, type, name);
	char *unit = xasprintf("ceph-%s@%s", type, name);
	char *target = xasprintf("ceph-%s.target", type);
	const char *watch[] = { "file:" CEPH_CONF };

	push(out, dir(data, 0750, "ceph"));
	push(out, res_command(cmd, kr, NULL));
	push(out, res_service(unit, true, true, watch, 1));
	enabled(out, target);
	free(target);
	free(unit);
	free(cmd);
	free(kr);
	free(data);
}

static int render_mgr(const struct render_ctx *rc, const void *conf, const struct node *n,
		      struct render_out *out, struct kerr *e)
{
	const struct ceph_conf *c = conf;

	(void)e;
	if (!is_mgr(c, n) || !cluster_made(rc, c, out))
		return 0;
	daemon_key(out, "mgr", n->name, "mon 'allow profile mgr' osd 'allow *' mds 'allow *'");
	return 0;
}

/* ---- phase osd ----------------------------------------------------------------- */

/*
 * One BlueStore OSD on one disk, made the way ceph-volume raw makes one but
 * without it (ceph-volume asks lsblk, which cannot see a disk whose
 * /sys/block entry is renamed, as in the lab): `osd new` with a fresh
 * cephx key, a data directory holding the key and a `block` link,
 * `ceph-osd --mkfs` (the monitors from ceph.conf: no `mon getmap`, a
 * `ceph` process less).  `check DEV FSID` only looks (made, ready, running);
 * `ensure DEV FSID` makes what is missing; a data directory lost while the
 * disk keeps its label is primed again from the label.  A label of another
 * cluster is refused here too.  `boot ID` runs before every start of
 * ceph-osd@ID (a drop-in): after a reboot /dev is new, so it finds the disk
 * by its label and gives it to ceph, and the OSD starts without an apply.
 */
static const char osd_script[] =
	"#!/bin/sh\n"
	"# managed by kiln (stacks.ceph): one BlueStore OSD on one disk; docs/ceph.md\n"
	"set -eu\n"
	"field() {\n"
	"\tceph-bluestore-tool show-label --dev \"$dev\" 2>/dev/null |\n"
	"\t\tsed -n \"s/.*\\\"$1\\\": \\\"\\([^\\\"]*\\)\\\".*/\\1/p\" | head -n 1\n"
	"}\n"
	"if [ \"${1:-}\" = boot ]; then\n"
	"\t# before ceph-osd@ID starts (the drop-in): the disk that holds the OSD\n"
	"\t# (its label's osd_uuid, whatever its name now) linked and owned by ceph\n"
	"\tdir=/var/lib/ceph/osd/ceph-$2\n"
	"\t[ -f \"$dir/fsid\" ] || exit 0\n"
	"\twant=$(cat \"$dir/fsid\") dev=$(readlink -f \"$dir/block\")\n"
	"\tif [ \"$(field osd_uuid)\" != \"$want\" ]; then\n"
	"\t\tfor s in /sys/block/*; do\n"
	"\t\t\tdev=/dev/${s##*/}\n"
	"\t\t\tif [ -b \"$dev\" ] && [ \"$(field osd_uuid)\" = \"$want\" ]; then\n"
	"\t\t\t\tln -sfn \"$dev\" \"$dir/block\"; break\n"
	"\t\t\tfi\n"
	"\t\tdone\n"
	"\tfi\n"
	"\t[ \"$(field osd_uuid)\" = \"$want\" ] || { echo \"osd.$2: no disk holds it\" >&2; exit 1; }\n"
	"\texec chown ceph:ceph \"$dev\"\n"
	"fi\n"
	"act=$1 dev=$2 fsid=$3\n"
	"B=\"--connect-timeout 120 --name client.bootstrap-osd --keyring " CEPH_BOOTSTRAP_KEYRING "\"\n"
	"id=$(field whoami)\n"
	"if [ -n \"$id\" ] && [ \"$(field ceph_fsid)\" != \"$fsid\" ]; then\n"
	"\techo \"$dev: BlueStore label of another cluster: not taken\" >&2; exit 1\n"
	"fi\n"
	"dir=/var/lib/ceph/osd/ceph-$id\n"
	"case $act in\n"
	"check)\n"
	"\t[ -n \"$id\" ] && [ -f \"$dir/keyring\" ] && [ \"$(stat -L -c %U \"$dev\")\" = ceph ] &&\n"
	"\t\tsystemctl -q is-enabled ceph.target ceph-osd.target \"ceph-osd@$id\" &&\n"
	"\t\t[ \"$(systemctl show -p NeedDaemonReload --value \"ceph-osd@$id\")\" = no ] &&\n"
	"\t\tsystemctl -q is-active \"ceph-osd@$id\" ;;\n"
	"ensure)\n"
	"\tchown ceph:ceph \"$dev\"\n"
	"\tif [ -z \"$id\" ]; then\n"
	"\t\tuuid=$(cat /proc/sys/kernel/random/uuid)\n"
	"\t\tkey=$(ceph-authtool --gen-print-key)\n"
	"\t\tid=$(printf '{\"cephx_secret\": \"%s\"}' \"$key\" | ceph $B osd new \"$uuid\" -i -)\n"
	"\t\tdir=/var/lib/ceph/osd/ceph-$id\n"
	"\t\tmkdir -p \"$dir\"\n"
	"\t\tln -sfn \"$dev\" \"$dir/block\"\n"
	"\t\tceph-authtool \"$dir/keyring\" --create-keyring --name \"osd.$id\" --add-key \"$key\" >/dev/null\n"
	"\t\tchown -R ceph:ceph \"$dir\"\n"
	"\t\tceph-osd --cluster ceph --osd-objectstore bluestore --mkfs -i \"$id\" \\\n"
	"\t\t\t--osd-data \"$dir\" --osd-uuid \"$uuid\" \\\n"
	"\t\t\t--setuser ceph --setgroup ceph 2>&1 | tail -n 1 >&2\n"
	"\t\t[ \"$(field whoami)\" = \"$id\" ] || { echo \"$dev: ceph-osd --mkfs failed\" >&2; exit 1; }\n"
	"\telif [ ! -f \"$dir/keyring\" ]; then\n"
	"\t\tmkdir -p \"$dir\"\n"
	"\t\tceph-bluestore-tool prime-osd-dir --dev \"$dev\" --path \"$dir\" --no-mon-config\n"
	"\t\tln -sfn \"$dev\" \"$dir/block\"\n"
	"\t\tchown -R ceph:ceph \"$dir\"\n"
	"\tfi\n"
	"\tsystemctl enable -q ceph.target ceph-osd.target \"ceph-osd@$id\" 2>/dev/null\n"
	"\t[ \"$(systemctl show -p NeedDaemonReload --value \"ceph-osd@$id\")\" = no ] ||\n"
	"\t\tsystemctl daemon-reload\n"
	"\tsystemctl reset-failed \"ceph-osd@$id\" 2>/dev/null || true\n"
	"\tsystemctl start \"ceph-osd@$id\" ;;\n"
	"*) echo \"usage: $0 check|ensure DEV FSID | boot ID\" >&2; exit 2 ;;\n"
	"esac\n";

/* Plan's notes: which disks become OSDs and why the others do not. */
static void note_disks(const struct ceph_disks *d, bool have_facts, struct render_out *out)
{
	char s[32];

	if (!have_facts) {
		strv_push(&out->notes, "no facts: no disk chosen");
		return;
	}
	for (size_t i = 0; i < d->n; i++) {
		const struct ceph_disk_choice *x = &d->v[i];
		ceph_size_text(x->size, s, sizeof(s));
		if (x->osd)
			strv_pushf(&out->notes, "/dev/%s (%s) %s", x->name, s,
				   x->ours ? "is an OSD" : "becomes an OSD");
		else
			strv_pushf(&out->notes, "/dev/%s (%s) passed over: %s", x->name, s,
				   x->reason);
	}
	for (size_t i = 0; i < d->missing.n; i++)
		strv_pushf(&out->notes, "%s (osds.paths) not found", d->missing.v[i]);
	if (!d->n)
		strv_push(&out->notes, "no disks");
}

static int render_osd(const struct render_ctx *rc, const void *conf, const struct node *n,
		      struct render_out *out, struct kerr *e)
{
	const struct ceph_conf *c = conf;
	struct strv gone = STRV_INIT;
	struct ceph_disks d;
	json_t *cf;

	(void)e;
	if (!osd_node(c, n))
		return 0;
	node_disks(rc, c, n, &d, &gone);
	note_disks(&d, render_has_facts(rc, n), out);
	/* reported, never made anew elsewhere: Ceph keeps it down until the
	 * operator purges it (docs/ceph.md) */
	for (size_t i = 0; i < gone.n; i++)
		strv_pushf(&out->notes, "%s: %s: disk gone, not recreated", n->name, gone.v[i]);
	strv_release(&gone);
	const char *fsid = fsid_of(rc, c, out);
	const char *boot = d.nosd ? key_of(rc, c, out, "bootstrap_osd_key") : NULL;
	if (!d.nosd || !fsid || !boot || !(cf = conf_file(rc, c, out))) {
		ceph_disks_release(&d);
		return 0;
	}
	push(out, cf);
	push(out, dir("/var/run/ceph", 0770, "ceph"));
	push(out, dir("/var/log/ceph", 0770, "ceph"));
	push(out, dir("/var/lib/ceph/bootstrap-osd", 0755, "ceph"));
	push_secret(out, CEPH_BOOTSTRAP_KEYRING, keyring("client.bootstrap-osd", boot, NULL),
		    "ceph");
	push(out, res_file(CEPH_LIB "/ceph-osd", osd_script, 0755, "root", "root"));
	/*
	 * Debian's ceph-osd allocates with glibc's malloc (upstream's packages
	 * link tcmalloc).  Its per-thread arenas and its mmap threshold, which
	 * rises to the largest block freed, keep the 4 MiB message buffers of
	 * a write burst in the heap: an OSD stayed at ~400 MiB after one
	 * (docs/ceph.md).  A fixed threshold returns blocks of 512 KiB and more
	 * to the system when freed; two arenas bound the rest.
	 */
	push(out, res_file("/etc/systemd/system/ceph-osd@.service.d/kiln.conf",
			   "# managed by kiln (stacks.ceph): the OSD's disk found and owned by "
			   "ceph before it starts; glibc's malloc held to what the OSD uses\n"
			   "[Service]\nExecStartPre=" CEPH_LIB "/ceph-osd boot %i\n"
			   "Environment=MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=524288\n",
			   0644, "root", "root"));
	for (size_t i = 0; i < d.n; i++) {
		if (!d.v[i].osd)
			continue;
		char *ens = xasprintf(CEPH_LIB "/ceph-osd ensure /dev/%s %s", d.v[i].name, fsid);
		char *chk = xasprintf(CEPH_LIB "/ceph-osd check /dev/%s %s", d.v[i].name, fsid);
		push(out, res_command(ens, NULL, chk));
		free(ens);
		free(chk);
	}
	ceph_disks_release(&d);
	return 0;
}

/* ---- phase fs ------------------------------------------------------------------- */

/*
 * Pools, file system and client keys, on the first monitor: `check` only
 * looks, `ensure` makes.  The parameters are the render's (sizes from the
 * OSD hosts); the keys come from keyring files beside it.  One `ceph`
 * process reads what is there and one makes what is missing (its commands
 * on stdin, as the interactive ceph reads them): every process costs about
 * a second of Python start-up on a small node.  The keys are imported in
 * one more (`auth import` reads a file, which the interactive form does
 * not take); the key lines of `auth get` are dropped as they are read.
 */
static char *pools_script(const struct ceph_conf *c, int size)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "#!/bin/sh\n# managed by kiln (stacks.ceph): pools, CephFS and client "
		   "keys; docs/ceph.md\nset -eu\nact=$1\nsize=%d min=%d pg=%d\n"
		   "C=\"ceph --connect-timeout 120\"\n"
		   "look() {\n"
		   "\tprintf 'osd pool ls detail\\nfs ls\\n%s%sauth get client.%s\\n' |\n"
		   "\t\t$C 2>&1 | grep -v 'key = ' || true\n"
		   "}\n"
		   "add() { todo=\"$todo$*\n\"; }\n"
		   "pool() {\n"
		   "\tline=$(printf '%%s\\n' \"$have\" | grep \"^pool [0-9]* '$1' \") || line=\n"
		   "\t[ -n \"$line\" ] || add osd pool create \"$1\" $pg $pg\n"
		   "\tcase \"$line\" in *\" size $size min_size $min \"*) ;; *)\n"
		   "\t\tadd osd pool set \"$1\" size $size --yes-i-really-mean-it\n"
		   "\t\tadd osd pool set \"$1\" min_size $min ;; esac\n"
		   "\t[ $2 = - ] || case \"$line\" in *\" application $2\"*) ;; *)\n"
		   "\t\tadd osd pool application enable \"$1\" $2 ;; esac\n"
		   "}\n"
		   "client() {\n"
		   "\tprintf '%%s\\n' \"$have\" | grep -qx \"\\[client\\.$1\\]\" ||\n"
		   "\t\tkeys=\"$keys " CEPH_KILN "/client.$1.keyring\"\n"
		   "}\n"
		   "want() {\n"
		   "\ttodo= keys=\n",
		   size, min_size(size), c->pg_num, c->fs_name ? "auth get client." : "",
		   c->fs_name ? CEPH_FS_CLIENT "\\n" : "", CEPH_K8S_CLIENT);
	if (c->rbd_pool)
		buf_printf(&b, "\tpool %s rbd\n", c->rbd_pool);
	if (c->fs_name)
		buf_printf(&b, "\tpool %s_metadata -\n\tpool %s_data -\n"
			   "\tprintf '%%s\\n' \"$have\" | grep -q \"^name: %s,\" ||\n"
			   "\t\tadd fs new %s %s_metadata %s_data\n"
			   "\tclient " CEPH_FS_CLIENT "\n", c->fs_name, c->fs_name, c->fs_name,
			   c->fs_name, c->fs_name, c->fs_name);
	buf_adds(&b, "\tclient " CEPH_K8S_CLIENT "\n"
		     "}\n"
		     "have=$(look)\n"
		     "want\n"
		     "[ -n \"$todo$keys\" ] || exit 0\n"
		     "[ $act = ensure ] || exit 1\n"
		     "[ -z \"$todo\" ] || printf '%s' \"$todo\" | $C >/dev/null 2>&1 || true\n"
		     "[ -z \"$keys\" ] || cat $keys | $C auth import -i - >/dev/null 2>&1 || true\n"
		     "have=$(look)\n"
		     "want\n"
		     "[ -z \"$todo$keys\" ] || { echo \"not made: $(printf '%s' \"$todo\" | "
		     "tr '\\n' ';')$keys\" >&2; exit 1; }\n");
	return b.s;
}

static char *k8s_caps_keyring(const struct ceph_conf *c, const char *key)
{
	char osd[256], mgr[256], mds[128];

	snprintf(osd, sizeof(osd), "profile rbd pool=%s%s%s%s%s", c->rbd_pool ? c->rbd_pool : "-",
		 c->fs_name ? ", allow rw tag cephfs metadata=" : "", c->fs_name ? c->fs_name : "",
		 c->fs_name ? ", allow rw tag cephfs data=" : "", c->fs_name ? c->fs_name : "");
	snprintf(mgr, sizeof(mgr), "profile rbd pool=%s, allow rw",
		 c->rbd_pool ? c->rbd_pool : "-");
	snprintf(mds, sizeof(mds), "allow rw fsname=%s", c->fs_name ? c->fs_name : "-");
	const char *caps[] = { "mds", mds, "mgr", mgr, "mon", "profile rbd, allow r", "osd", osd,
			       NULL };
	if (!c->fs_name)
		return keyring("client." CEPH_K8S_CLIENT, key, caps + 2);
	return keyring("client." CEPH_K8S_CLIENT, key, caps);
}

/* The ceph-csi files (docs/ceph.md): ConfigMap, Secrets, StorageClasses. */
static void csi_files(const struct render_ctx *rc, const struct ceph_conf *c, const char *fsid,
		      const char *k8s_key, struct render_out *out)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "# managed by kiln (stacks.ceph): kubectl apply -f this directory\n"
		   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ceph-csi-config\n"
		   "data:\n  config.json: |-\n    [{\"clusterID\": \"%s\", \"monitors\": [", fsid);
	for (size_t i = 0; i < c->mons.n; i++)
		buf_printf(&b, "%s\"%s:6789\"", i ? ", " : "", mon_address(rc, c->mons.v[i]));
	buf_adds(&b, "]}]\n");
	push(out, res_file(CEPH_KILN "/csi/ceph-csi-config.yaml", b.s, 0644, "root", "root"));
	buf_reset(&b);
	if (c->rbd_pool) {
		buf_printf(&b, "# managed by kiln (stacks.ceph)\napiVersion: v1\nkind: Secret\n"
			   "metadata:\n  name: csi-rbd-secret\n  namespace: default\n"
			   "stringData:\n  userID: %s\n  userKey: %s\n", CEPH_K8S_CLIENT, k8s_key);
		push(out, res_file_secret(CEPH_KILN "/csi/csi-rbd-secret.yaml", b.s, 0600, "root",
					  "root"));
		buf_reset(&b);
		buf_printf(&b, "# managed by kiln (stacks.ceph)\n"
			   "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n"
			   "  name: csi-rbd-sc\nprovisioner: rbd.csi.ceph.com\nparameters:\n"
			   "  clusterID: %s\n  pool: %s\n  imageFeatures: layering\n"
			   "  csi.storage.k8s.io/provisioner-secret-name: csi-rbd-secret\n"
			   "  csi.storage.k8s.io/provisioner-secret-namespace: default\n"
			   "  csi.storage.k8s.io/controller-expand-secret-name: csi-rbd-secret\n"
			   "  csi.storage.k8s.io/controller-expand-secret-namespace: default\n"
			   "  csi.storage.k8s.io/node-stage-secret-name: csi-rbd-secret\n"
			   "  csi.storage.k8s.io/node-stage-secret-namespace: default\n"
			   "reclaimPolicy: Delete\nallowVolumeExpansion: true\n"
			   "mountOptions:\n  - discard\n", fsid, c->rbd_pool);
		push(out, res_file(CEPH_KILN "/csi/storageclass-rbd.yaml", b.s, 0644, "root",
				   "root"));
		buf_reset(&b);
	}
	if (c->fs_name) {
		buf_printf(&b, "# managed by kiln (stacks.ceph)\napiVersion: v1\nkind: Secret\n"
			   "metadata:\n  name: csi-cephfs-secret\n  namespace: default\n"
			   "stringData:\n  userID: %s\n  userKey: %s\n  adminID: %s\n"
			   "  adminKey: %s\n", CEPH_K8S_CLIENT, k8s_key, CEPH_K8S_CLIENT, k8s_key);
		push(out, res_file_secret(CEPH_KILN "/csi/csi-cephfs-secret.yaml", b.s, 0600,
					  "root", "root"));
		buf_reset(&b);
		buf_printf(&b, "# managed by kiln (stacks.ceph)\n"
			   "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n"
			   "  name: csi-cephfs-sc\nprovisioner: cephfs.csi.ceph.com\nparameters:\n"
			   "  clusterID: %s\n  fsName: %s\n"
			   "  csi.storage.k8s.io/provisioner-secret-name: csi-cephfs-secret\n"
			   "  csi.storage.k8s.io/provisioner-secret-namespace: default\n"
			   "  csi.storage.k8s.io/controller-expand-secret-name: csi-cephfs-secret\n"
			   "  csi.storage.k8s.io/controller-expand-secret-namespace: default\n"
			   "  csi.storage.k8s.io/node-stage-secret-name: csi-cephfs-secret\n"
			   "  csi.storage.k8s.io/node-stage-secret-namespace: default\n"
			   "reclaimPolicy: Delete\nallowVolumeExpansion: true\n", fsid, c->fs_name);
		push(out, res_file(CEPH_KILN "/csi/storageclass-cephfs.yaml", b.s, 0644, "root",
				   "root"));
	}
	buf_release(&b);
}

/*
 * The unit that keeps CephFS mounted at fs_mount as client.fs: the kernel
 * client (mount.ceph finds the monitors in ceph.conf and the key in
 * /etc/ceph/ceph.client.fs.keyring; mds_namespace rather than fs=, which
 * older kernels lack), else ceph-fuse in the foreground.  One unit name
 * for both, so a node that gains the kernel module switches on the next
 * apply (the changed file restarts it).
 */
static char *cephfs_unit(const struct ceph_conf *c, bool kernel)
{
	char *svc = kernel ? xasprintf("Type=oneshot\nRemainAfterExit=yes\n"
				       "ExecStartPre=/bin/mkdir -p %s\n"
				       "ExecStart=/bin/mount -t ceph :/ %s -o name=" CEPH_FS_CLIENT
				       ",mds_namespace=%s\nExecStop=/bin/umount %s\n",
				       c->fs_mount, c->fs_mount, c->fs_name, c->fs_mount)
			   : xasprintf("ExecStartPre=/bin/mkdir -p %s\n"
				       "ExecStart=/usr/bin/ceph-fuse -f --id " CEPH_FS_CLIENT
				       " --client_fs %s %s\nRestart=on-failure\nRestartSec=5\n",
				       c->fs_mount, c->fs_name, c->fs_mount);
	char *unit = xasprintf("# managed by kiln (stacks.ceph)\n[Unit]\n"
			       "Description=kiln: CephFS %s at %s (%s)\n"
			       "After=network-online.target\nWants=network-online.target\n"
			       "[Service]\n%s[Install]\nWantedBy=multi-user.target\n", c->fs_name,
			       c->fs_mount, kernel ? "kernel client" : "ceph-fuse", svc);
	free(svc);
	return unit;
}

static int render_fs(const struct render_ctx *rc, const void *conf, const struct node *n,
		     struct render_out *out, struct kerr *e)
{
	const struct ceph_conf *c = conf;
	bool first = !strcmp(n->name, first_mon(c));
	char mds[128], osd[128];

	(void)e;
	if (!first && !fs_node(c, n) && !(c->fs_name && is_mon(c, n)))
		return 0;
	const char *fsid = fsid_of(rc, c, out);
	const char *fskey = c->fs_name && (first || fs_node(c, n)) ? key_of(rc, c, out, "fs_key")
				: NULL;
	if (!fsid || (c->fs_name && (first || fs_node(c, n)) && !fskey))
		return 0;
	if (c->fs_name)
		fs_caps(c, mds, osd, sizeof(mds));
	if (first) {
		const char *k8s = key_of(rc, c, out, "kubernetes_key");
		int size = pool_size(rc, c);
		if (!k8s)
			return 0;
		if (!size) {
			strv_push(&out->notes, "no OSD host yet: no pools made");
			return 0;
		}
		if (c->fs_name) {
			const char *caps[] = { "mds", mds, "mon", "allow r", "osd", osd, NULL };
			push_secret(out, CEPH_KILN "/client." CEPH_FS_CLIENT ".keyring",
				    keyring("client." CEPH_FS_CLIENT, fskey, caps), "root");
		}
		push_secret(out, CEPH_KILN "/client." CEPH_K8S_CLIENT ".keyring",
			    k8s_caps_keyring(c, k8s), "root");
		char *script = pools_script(c, size);
		push(out, res_file(CEPH_LIB "/ceph-pools", script, 0755, "root", "root"));
		free(script);
		push(out, res_command(CEPH_LIB "/ceph-pools ensure", NULL,
				      CEPH_LIB "/ceph-pools check"));
		csi_files(rc, c, fsid, k8s, out);
	}
	if (c->fs_name && is_mon(c, n) && cluster_made(rc, c, out))
		daemon_key(out, "mds", n->name, "mon 'allow profile mds' mgr 'allow profile mds' "
			   "mds 'allow *' osd 'allow *'");
	if (fs_node(c, n)) {
		json_t *cf = conf_file(rc, c, out);
		const char *caps[] = { "mds", mds, "mon", "allow r", "osd", osd, NULL };
		if (!cf)
			return 0;
		push(out, cf);
		push_secret(out, "/etc/ceph/ceph.client." CEPH_FS_CLIENT ".keyring",
			    keyring("client." CEPH_FS_CLIENT, fskey, caps), "root");
		push(out, res_directory(c->fs_mount, 0755, NULL, NULL));
		bool kernel = kernel_cephfs(rc, n);
		char *unit = cephfs_unit(c, kernel);
		if (render_has_facts(rc, n))
			strv_pushf(&out->notes, "CephFS %s at %s: %s", c->fs_name, c->fs_mount,
				   kernel ? "kernel client"
					  : "ceph-fuse (this kernel cannot mount ceph)");
		push(out, res_file("/etc/systemd/system/kiln-cephfs.service", unit, 0644, "root",
				   "root"));
		free(unit);
		const char *watch[] = { "file:/etc/systemd/system/kiln-cephfs.service",
					"file:" CEPH_CONF };
		push(out, res_service("kiln-cephfs", true, true, watch, 2));
		/*
		 * Wait for the mount (ceph-fuse mounts after it starts).  A kernel
		 * mount someone took away leaves its oneshot unit "active":
		 * restart it, as a dead ceph-fuse is restarted.
		 */
		char *restart = kernel ? xasprintf("mountpoint -q %s || systemctl restart "
						   "kiln-cephfs; ", c->fs_mount) : xstrdup("");
		char *wait = xasprintf("%si=0; until mountpoint -q %s; do i=$((i+1)); "
				       "[ $i -lt 120 ] || { echo 'CephFS not mounted at %s "
				       "after 60 s (journalctl -u kiln-cephfs)' >&2; exit 1; }; "
				       "sleep 0.5; done", restart, c->fs_mount, c->fs_mount);
		free(restart);
		char *unless = xasprintf("mountpoint -q %s", c->fs_mount);
		push(out, res_command(wait, NULL, unless));
		free(wait);
		free(unless);
	}
	return 0;
}

/* ---- retiring the OSDs of hosts that left the spec -------------------------------- */

/*
 * ceph-retire check|ensure HOST... -- OSD...: the OSDs of every CRUSH host
 * not named (the OSD nodes and their short host names), but for the OSDs
 * named (those a node of the spec holds), belonged to a node that left the
 * spec.  ensure marks them out, waits (bounded) until Ceph says they are
 * safe to destroy (every PG clean elsewhere), then purges them and removes
 * the emptied host bucket.  Data still moving after the wait fails with
 * what is left, and the next apply goes on from there.
 */
static const char retire_script[] =
	"#!/bin/sh\n"
	"# managed by kiln (stacks.ceph): the OSDs of hosts that left the spec are taken\n"
	"# out, drained and purged; docs/ceph.md\n"
	"# usage: ceph-retire check|ensure HOST... -- OSD...  (the hosts and OSDs kept)\n"
	"set -eu\n"
	"act=$1\n"
	"shift\n"
	"C=\"ceph --connect-timeout 120\"\n"
	"tree=$($C osd tree -f json)\n"
	"# \"HOST ID...\" per CRUSH host not kept: its OSDs not kept (none: the empty\n"
	"# bucket); a host left with kept OSDs only is not listed\n"
	"gone=$(printf '%s' \"$tree\" | python3 -c '\n"
	"import json, sys\n"
	"a = sys.argv[1:]\n"
	"hosts, ids = set(a[:a.index(\"--\")]), set(int(x) for x in a[a.index(\"--\") + 1:])\n"
	"for n in json.load(sys.stdin)[\"nodes\"]:\n"
	"    if n[\"type\"] != \"host\" or n[\"name\"] in hosts:\n"
	"        continue\n"
	"    kids = n.get(\"children\", [])\n"
	"    out = sorted(c for c in kids if c not in ids)\n"
	"    if out or not kids:\n"
	"        print(\" \".join([n[\"name\"]] + [str(c) for c in out]))\n"
	"' \"$@\")\n"
	"[ -n \"$gone\" ] || exit 0\n"
	"[ \"$act\" = ensure ] || { printf 'to retire (host OSD...): %s\\n' \"$gone\" | tr '\\n' ';'; exit 1; }\n"
	"ids=$(printf '%s\\n' \"$gone\" | cut -s -d' ' -f2- | tr '\\n' ' ')\n"
	"ids=${ids% }\n"
	"hosts=$(printf '%s\\n' \"$gone\" | cut -d' ' -f1 | tr '\\n' ' ')\n"
	"if [ -n \"$ids\" ]; then\n"
	"\t$C osd out $ids >/dev/null 2>&1 || true\n"
	"\tt=$(($(date +%s) + " CEPH_RETIRE_WAIT_S "))\n"
	"\tuntil $C osd safe-to-destroy $ids >/dev/null 2>&1; do\n"
	"\t\t[ \"$(date +%s)\" -lt $t ] || { echo \"osd $ids on ${hosts% } (left the spec):\" \\\n"
	"\t\t\t\"out, data still moving after " CEPH_RETIRE_WAIT_S " s; apply again once\" \\\n"
	"\t\t\t\"'ceph osd safe-to-destroy $ids' says so\" >&2; exit 1; }\n"
	"\t\tsleep 2\n"
	"\tdone\n"
	"\tfor id in $ids; do\n"
	"\t\t$C osd down $id >/dev/null 2>&1 || true\n"
	"\t\t$C osd purge $id --yes-i-really-mean-it >/dev/null\n"
	"\tdone\n"
	"fi\n"
	"# a bucket that still holds a kept OSD stays (ENOTEMPTY)\n"
	"for h in $hosts; do $C osd crush remove \"$h\" >/dev/null 2>&1 || true; done\n";

/* A short host name a shell and CRUSH take as is. */
static bool plain_host(const char *s, size_t n)
{
	if (!n || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/*
 * On the first monitor: the retire command, keeping every OSD node's name
 * and its short host name (the CRUSH host its OSDs register under), and
 * every OSD whose disk an OSD node holds (its record, ceph.h, as prepare
 * made it from this run's facts, vanished disks included): an OSD still
 * in a node of the spec is never retired, whatever bucket CRUSH has it in
 * (a renamed host's OSDs stay under the old name until they restart).
 * Without the host name of a node (no facts yet, or one that is not a
 * plain name) nothing is retired this run: a kept OSD taken for a
 * departed one would move data for nothing.
 */
static void render_retire(const struct render_ctx *rc, const struct ceph_conf *c,
			  struct render_out *out)
{
	struct buf keep, ids;

	buf_init(&keep, 0);
	buf_init(&ids, 0);
	for (size_t i = 0; i < rc->c->nnodes; i++) {
		const struct node *m = &rc->c->nodes[i];
		if (!osd_node(c, m))
			continue;
		const char *h = json_string_value(render_fact(rc, m, "hostname"));
		size_t hn = h ? strcspn(h, ".") : 0;
		if (!h || !plain_host(h, hn)) {
			strv_pushf(&out->notes, "no OSD of a departed host retired: %s's host name is "
				   "%s", m->name, h ? "not a plain name" : "not known yet");
			buf_release(&keep);
			buf_release(&ids);
			return;
		}
		buf_printf(&keep, " %s", m->name);
		if (strlen(m->name) != hn || strncmp(m->name, h, hn))
			buf_printf(&keep, " %.*s", (int)hn, h);
		/* the record as prepare left it for this run: "ID:NAME ..." */
		const char *rec = exports_get(rc->exports, m->name, CEPH_STACK, "osds");
		for (const char *w = rec ? rec : ""; *w; w += strcspn(w, " "), w += strspn(w, " "))
			buf_printf(&ids, " %ld", strtol(w, NULL, 10));
	}
	push(out, res_file(CEPH_LIB "/ceph-retire", retire_script, 0755, "root", "root"));
	char *ensure = xasprintf(CEPH_LIB "/ceph-retire ensure%s --%s", keep.s, ids.s);
	char *check = xasprintf(CEPH_LIB "/ceph-retire check%s --%s", keep.s, ids.s);
	push(out, res_command(ensure, NULL, check));
	free(ensure);
	free(check);
	buf_release(&keep);
	buf_release(&ids);
}

/* ---- phase health ------------------------------------------------------------------ */

static int render_health(const struct render_ctx *rc, const void *conf, const struct node *n,
			 struct render_out *out, struct kerr *e)
{
	const struct ceph_conf *c = conf;

	(void)e;
	if (strcmp(n->name, first_mon(c)) || !cluster_made(rc, c, out))
		return 0;
	render_retire(rc, c, out);
	/*
	 * HEALTH_OK, every monitor in quorum and every placement group
	 * active+clean (scrubbing or not; the manager reports them).  The
	 * check waits up to CEPH_HEALTH_SETTLE s for it, so a healthy cluster
	 * that blinks (a scrub, an election) is "ok", not a change; only then
	 * does the command wait up to health_timeout and fail with Ceph's
	 * reasons on one line (the command's last stderr line).  One `ceph
	 * status` per look (a `ceph` process costs about a second of Python
	 * start-up; the python3 it depends on reads the JSON in milliseconds).
	 * Every OSD must be up (a new one that has not booted yet counts for
	 * no health check), and the last OSD up/in change CEPH_PG_SETTLE s old:
	 * the placement groups' states come from the manager, seconds behind
	 * the OSD map, and read "clean" until they peer with a new OSD.
	 */
	char *ok = xasprintf("ceph --connect-timeout 30 status -f json 2>/dev/null | python3 -c "
			     "'import json, sys, time; j = json.load(sys.stdin); p = j[\"pgmap\"]; "
			     "o = j[\"osdmap\"]; s = p.get(\"pgs_by_state\", []); "
			     "sys.exit(not (j[\"health\"][\"status\"] == \"HEALTH_OK\" and "
			     "len(j[\"quorum_names\"]) == %zu and "
			     "o[\"num_up_osds\"] == o[\"num_osds\"] and o[\"num_remapped_pgs\"] == 0 "
			     "and time.time() - max(o[\"osd_up_since\"], o[\"osd_in_since\"]) >= %d "
			     "and all(x[\"state_name\"].startswith(\"active+clean\") for x in s) and "
			     "0 < sum(x[\"count\"] for x in s) == p[\"num_pgs\"]))' 2>/dev/null",
			     c->mons.n, CEPH_PG_SETTLE);
	char *settle = xasprintf("t=$(($(date +%%s) + %d)); until %s; do "
				 "[ $(date +%%s) -lt $t ] || exit 1; sleep 1; done",
				 CEPH_HEALTH_SETTLE, ok);
	char *cmd = xasprintf("t=$(($(date +%%s) + %d)); until %s; do "
			      "if [ $(date +%%s) -ge $t ]; then echo \"not HEALTH_OK after %d s: "
			      "$(ceph --connect-timeout 30 health detail 2>&1 | head -n 8 | tr "
			      "'\\n' ' ')\" >&2; exit 1; fi; sleep 1; done",
			      c->health_timeout, ok, c->health_timeout);
	push(out, res_command(cmd, NULL, settle));
	free(cmd);
	free(settle);
	free(ok);
	return 0;
}

/* ---- prepare: the record of OSDs per disk ---------------------------------------- */

/*
 * Every OSD node's record (ceph.h) from this run's facts and the record so
 * far, exported as "osds" (kept in the state): a disk that vanishes later
 * is still known to have held its OSD.
 */
static int ceph_prepare(const struct render_ctx *rc, const void *conf, struct exports *made,
			struct kerr *e)
{
	const struct ceph_conf *c = conf;
	const char *fsid = fsid_of(rc, c, NULL);

	(void)e;
	for (size_t i = 0; fsid && i < rc->c->nnodes; i++) {
		const struct node *n = &rc->c->nodes[i];
		const json_t *disks = osd_node(c, n) ? render_fact(rc, n, "disks") : NULL;
		if (!disks)
			continue;
		const char *old = exports_get(rc->exports, n->name, CEPH_STACK, "osds");
		struct strv gone = STRV_INIT;
		char *rec = ceph_osd_record(old, disks, fsid, &gone);
		if (old ? strcmp(old, rec) != 0 : *rec != '\0')
			exports_set(made, n->name, CEPH_STACK, "osds", rec, false);
		free(rec);
		strv_release(&gone);
	}
	return 0;
}

static const struct stack_phase ceph_phases[] = {
	{ "keys", render_keys },
	{ "mon", render_mon },
	{ "mgr", render_mgr },
	{ "osd", render_osd },
	{ "fs", render_fs },
	{ "health", render_health },
};

const struct stack_type stack_ceph = {
	.name = CEPH_STACK,
	.summary = "a Ceph 16.2 cluster from the distribution's packages: monitors, OSDs on "
		   "free disks, RBD, CephFS",
	.parse = ceph_parse,
	.free = ceph_free,
	.prepare = ceph_prepare,
	.phases = ceph_phases,
	.nphases = ARRAY_SIZE(ceph_phases),
	.secret_exports = (const char *const[]){ "mon_key", "admin_key", "bootstrap_osd_key",
						 "fs_key", "kubernetes_key", NULL },
	.facts = (const char *const[]){ "os", "disks", "kernel", "hostname", NULL },
};

const struct strv *ceph_monitors(const struct cluster *c)
{
	const struct ceph_conf *cc = stack_conf(c, &stack_ceph);
	return cc ? &cc->mons : NULL;
}
