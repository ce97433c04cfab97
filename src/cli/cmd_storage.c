/*
 * kiln storage status: the Ceph cluster of stacks.ceph as its monitors see
 * it — health and its reasons, monitors in quorum, OSDs up/in per node and
 * disk, usage, placement-group states (docs/ceph.md).  Asks the monitors
 * in name order over SSH (`ceph ... -f json`, admin keyring on the node)
 * until one answers.  What a node sends is untrusted: parsed as bounded
 * JSON, shown escaped.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote.h"
#include "spec/spec.h"
#include "stacks/ceph.h"

#define STORAGE_OUT_CAP (8u << 20)
#define STORAGE_SEP "--kiln-storage--"   /* between the answers, on a line of its own */

/* The four answers of one monitor: status, osd tree, osd metadata, health detail. */
static const char storage_cmd[] =
	"C='ceph --connect-timeout 20'; $C status -f json && echo && echo " STORAGE_SEP " && "
	"$C osd tree -f json && echo && echo " STORAGE_SEP " && $C osd metadata -f json && "
	"echo && echo " STORAGE_SEP " && $C health detail -f json";

static json_t *part(const char *s, size_t n)
{
	json_error_t err;
	return json_loadb(s, n, JSON_REJECT_DUPLICATES, &err);
}

/* Split the output into its four JSON documents; 0 or -EBADMSG. */
static int parse_parts(const char *out, json_t *p[4])
{
	const char *s = out;

	for (int i = 0; i < 4; i++) {
		const char *end = i < 3 ? strstr(s, STORAGE_SEP) : s + strlen(s);
		if (!end || !(p[i] = part(s, (size_t)(end - s))))
			return -EBADMSG;
		s = end + (i < 3 ? strlen(STORAGE_SEP) : 0);
	}
	return 0;
}

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* The status object kiln shows and prints, from Ceph's four answers. */
static json_t *summarize(const char *cluster, const char *from, json_t *p[4])
{
	json_t *st = p[0], *tree = p[1], *meta = p[2], *detail = p[3];
	json_t *checks = json_array(), *osds = json_array(), *pgs = json_object();
	const json_t *v, *x;
	const char *k;
	size_t i, j;

	json_object_foreach(json_object_get(detail, "checks"), k, v) {
		json_t *c = json_pack("{s:s,s:s,s:s}", "code", k, "severity", jstr(v, "severity"),
				      "summary", jstr(json_object_get(v, "summary"), "message"));
		json_t *d = json_array();
		json_array_foreach(json_object_get(v, "detail"), i, x)
			if (json_array_size(d) < 20)
				json_array_append_new(d, json_string(jstr(x, "message")));
		json_object_set_new(c, "detail", d);
		json_array_append_new(checks, c);
	}
	json_array_foreach(json_object_get(tree, "nodes"), i, v) {
		if (strcmp(jstr(v, "type"), "host"))
			continue;
		json_array_foreach(json_object_get(v, "children"), j, x) {
			json_int_t id = json_integer_value(x);
			const json_t *o = NULL, *m = NULL, *y;
			size_t q;
			json_array_foreach(json_object_get(tree, "nodes"), q, y)
				if (json_integer_value(json_object_get(y, "id")) == id)
					o = y;
			json_array_foreach(meta, q, y)
				if (json_integer_value(json_object_get(y, "id")) == id)
					m = y;
			json_array_append_new(osds, json_pack(
				"{s:I,s:s,s:s,s:b,s:b}", "id", id, "node", jstr(v, "name"),
				"device", m ? jstr(m, "bluestore_bdev_dev_node") : "",
				"up", o && !strcmp(jstr(o, "status"), "up"),
				"in", o && json_number_value(json_object_get(o, "reweight")) > 0));
		}
	}
	const json_t *pgmap = json_object_get(st, "pgmap");
	json_array_foreach(json_object_get(pgmap, "pgs_by_state"), i, v)
		json_object_set_new(pgs, jstr(v, "state_name"),
				    json_integer(json_integer_value(json_object_get(v, "count"))));
	const json_t *osdmap = json_object_get(st, "osdmap");
	json_t *quorum = json_deep_copy(json_object_get(st, "quorum_names"));
	return json_pack("{s:s,s:s,s:s,s:{s:s,s:o},s:{s:o,s:I},s:{s:I,s:I,s:I,s:o},s:o,"
			 "s:{s:I,s:I}}",
			 "cluster", cluster, "asked", from, "fsid", jstr(st, "fsid"),
			 "health", "status", jstr(json_object_get(st, "health"), "status"),
			 "checks", checks,
			 "monitors", "quorum", json_is_array(quorum) ? quorum : json_array(),
			 "total", json_integer_value(json_object_get(json_object_get(st, "monmap"),
								     "num_mons")),
			 "osds", "total", json_integer_value(json_object_get(osdmap, "num_osds")),
			 "up", json_integer_value(json_object_get(osdmap, "num_up_osds")),
			 "in", json_integer_value(json_object_get(osdmap, "num_in_osds")),
			 "list", osds,
			 "pgs", pgs,
			 "usage", "used_bytes", json_integer_value(json_object_get(pgmap, "bytes_used")),
			 "total_bytes", json_integer_value(json_object_get(pgmap, "bytes_total")));
}

static void put(const char *fmt, const char *s)
{
	char *t = str_tty(s, 0);
	printf(fmt, t);
	free(t);
}

static void print_human(const json_t *s)
{
	const json_t *h = json_object_get(s, "health"), *m = json_object_get(s, "monitors");
	const json_t *o = json_object_get(s, "osds"), *u = json_object_get(s, "usage"), *v;
	const char *k;
	char a[32], b[32];
	size_t i;

	put("cluster %s", jstr(s, "cluster"));
	put(" (fsid %s)", jstr(s, "fsid"));
	put(": %s\n", jstr(h, "status"));
	json_array_foreach(json_object_get(h, "checks"), i, v) {
		put("  %s", jstr(v, "severity"));
		put(" %s", jstr(v, "code"));
		put(": %s\n", jstr(v, "summary"));
	}
	printf("monitors: %zu of %lld in quorum:", json_array_size(json_object_get(m, "quorum")),
	       (long long)json_integer_value(json_object_get(m, "total")));
	json_array_foreach(json_object_get(m, "quorum"), i, v)
		put(" %s", json_string_value(v) ? json_string_value(v) : "?");
	printf("\nOSDs: %lld, %lld up, %lld in\n",
	       (long long)json_integer_value(json_object_get(o, "total")),
	       (long long)json_integer_value(json_object_get(o, "up")),
	       (long long)json_integer_value(json_object_get(o, "in")));
	printf("  %-16s %-6s %-14s %-4s %s\n", "NODE", "OSD", "DEVICE", "UP", "IN");
	json_array_foreach(json_object_get(o, "list"), i, v) {
		char id[24];
		snprintf(id, sizeof(id), "osd.%lld", (long long)json_integer_value(json_object_get(v, "id")));
		put("  %-16s", jstr(v, "node"));
		printf(" %-6s", id);
		put(" %-14s", *jstr(v, "device") ? jstr(v, "device") : "-");
		printf(" %-4s %s\n", json_is_true(json_object_get(v, "up")) ? "up" : "down",
		       json_is_true(json_object_get(v, "in")) ? "in" : "out");
	}
	printf("PGs:");
	json_object_foreach(json_object_get(s, "pgs"), k, v) {
		put(" %s", k);
		printf(" %lld", (long long)json_integer_value(v));
	}
	uint64_t used = (uint64_t)json_integer_value(json_object_get(u, "used_bytes"));
	uint64_t total = (uint64_t)json_integer_value(json_object_get(u, "total_bytes"));
	printf("\nusage: %s used of %s\n", ceph_size_text(used, a, sizeof(a)),
	       ceph_size_text(total, b, sizeof(b)));
}

/* Ask monitor n; 0 with *out, or -errno with e. */
static int ask(struct remote *r, const struct node *n, json_t **out, const char *cluster,
	       struct kerr *e)
{
	struct remote_conn *conn = NULL;
	struct buf o, err;
	json_t *p[4] = { 0 };
	int st = 0, rc;

	buf_init(&o, STORAGE_OUT_CAP);
	buf_init(&err, 64 << 10);
	if ((rc = remote_connect(r, n, &conn, e)) < 0)
		goto out;
	if ((rc = remote_exec(conn, storage_cmd, NULL, 0, &o, &err, &st, e)) < 0)
		goto out;
	if (st != 0) {
		char *t = str_tty(err.len ? err.s : "no output", 0);
		rc = kerr_set(e, -EIO, "%s: ceph exited %d: %.200s", n->name, st, t);
		free(t);
		goto out;
	}
	if (parse_parts(o.s, p) < 0) {
		rc = kerr_set(e, -EBADMSG, "%s: ceph's answer is not the JSON expected", n->name);
		goto out;
	}
	*out = summarize(cluster, n->name, p);
out:
	for (int i = 0; i < 4; i++)
		json_decref(p[i]);
	remote_conn_free(conn);
	buf_release(&o);
	buf_release(&err);
	return rc;
}

static int storage_status(int argc, char **argv)
{
	struct spec_args a = { .spec = "cluster.yaml" };
	struct cluster *c = NULL;
	struct remote *r = NULL;
	struct kerr e = { 0 };
	json_t *s = NULL;
	int rc = 1;

	for (int i = 1; i < argc;) {
		int n = cli_shared_option(argc, argv, &i, &a);
		if (n < 0)
			return 1;
		if (n == 0)
			return cli_error("storage status: unknown argument '%s' (see 'kiln storage "
					 "--help')", argv[i]);
	}
	if ((rc = cli_open(&a, &c, NULL, CLI_STATE_READ)))
		goto out;
	const struct strv *mons = ceph_monitors(c);
	if (!mons) {
		rc = cli_error("%s: no stacks.ceph in the spec", c->path);
		goto out;
	}
	if (remote_new(c, &r, &e) < 0) {
		rc = cli_error("%s", e.msg);
		goto out;
	}
	struct buf why;
	buf_init(&why, 0);
	for (size_t i = 0; i < mons->n && !s; i++) {
		struct kerr ke = { 0 };
		if (ask(r, cluster_node(c, mons->v[i]), &s, c->name, &ke) < 0)
			buf_printf(&why, "%s%s", why.len ? "; " : "", ke.msg);
	}
	if (!s) {
		rc = cli_error("storage status: no monitor answered: %s", why.s);
		buf_release(&why);
		goto out;
	}
	buf_release(&why);
	if (arg_output == OUTPUT_JSON)
		cli_print_json(s);
	else
		print_human(s);
	rc = strcmp(jstr(json_object_get(s, "health"), "status"), "HEALTH_OK") ? 2 : 0;
out:
	json_decref(s);
	remote_free(r);
	cluster_free(c);
	return rc;
}

static int run_storage(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return argc < 2 ? cli_error("storage: name a subcommand: status (see 'kiln storage "
					    "--help')") : cli_help(&cmd_storage);
	if (!strcmp(argv[1], "status"))
		return storage_status(argc - 1, argv + 1);
	return cli_error("storage: unknown subcommand '%s' (status)", argv[1]);
}

const struct command cmd_storage = {
	.name = "storage",
	.run = run_storage,
	.summary = "the Ceph cluster of stacks.ceph: health, monitors, OSDs, usage",
	.help = "NAME\n    kiln storage - the state of the cluster's Ceph storage\n\n"
		"SYNOPSIS\n    kiln storage status [-f FILE] [-o json]\n\n"
		"DESCRIPTION\n"
		"    status: asks the monitors of stacks.ceph (the nodes with role ceph-mon,\n"
		"    in name order, over SSH) until one answers, and shows the health with\n"
		"    its reasons, the monitors in quorum, every OSD with its node, device and\n"
		"    up/in state, placement-group states and usage. docs/ceph.md.\n\n"
		"OPTIONS\n"
		"    -f, --file FILE\n        the spec (default cluster.yaml)\n\n"
		"    -o json\n        {cluster, asked, fsid, health: {status, checks: [{code,\n"
		"        severity, summary, detail}]}, monitors: {quorum, total}, osds: {total,\n"
		"        up, in, list: [{id, node, device, up, in}]}, pgs: {STATE: N}, usage:\n"
		"        {used_bytes, total_bytes}}\n\n"
		"EXIT STATUS\n    0  HEALTH_OK\n    1  error (no monitor answered)\n"
		"    2  the cluster answered, not HEALTH_OK\n\n"
		"EXAMPLES\n    kiln storage status -f lab/cluster.yaml\n",
};
