/*
 * stacks.ceph: the spec's part of the ceph stack (docs/spec.md, "ceph";
 * docs/ceph.md).  The parser checks every key with FILE:LINE:COL errors
 * and fills struct ceph_conf, which ceph.c renders from.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ceph.h"
#include "ceph_int.h"
#include "spec/parse.h"

/* ---- the spec: stacks.ceph ----------------------------------------------- */

void ceph_free(void *p)
{
	struct ceph_conf *c = p;

	free(c->public_network);
	free(c->osds.size_text);
	free(c->osds.model);
	free(c->osds.vendor);
	strv_release(&c->osds.paths);
	strv_release(&c->osd_nodes);
	free(c->rbd_pool);
	free(c->fs_name);
	free(c->fs_mount);
	strv_release(&c->fs_nodes);
	strv_release(&c->conf_sections);
	strv_release(&c->conf_lines);
	strv_release(&c->mons);
	free(c);
}

static bool valid_cidr4(const char *s)
{
	uint32_t net;
	int prefix;
	return ipv4_cidr_parse(s, &net, &prefix);
}

/* A pool or filesystem name Ceph and a shell both take as is. */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 32)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

static bool valid_dev(const char *s)
{
	if (!str_starts(s, "/dev/") || !s[5] || strlen(s) > 64)
		return false;
	for (s += 5; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

static bool valid_mount(const char *s)
{
	if (s[0] != '/' || !s[1] || strlen(s) > 200 || strstr(s, "/../") || strstr(s, "//"))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("/_-.", *s)))
			return false;
	return true;
}

static bool valid_prefix_text(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (*s < 0x20 || *s >= 0x7f)
			return false;
	return true;
}

/* A ceph.conf section: a daemon type, optionally with an id ("osd.3"). */
static bool valid_conf_section(const char *s)
{
	static const char *const types[] = { "global", "mon", "mgr", "osd", "mds", "client" };
	size_t n = strcspn(s, ".");

	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (strlen(types[i]) == n && !strncmp(s, types[i], n))
			return !s[n] || (i && s[n + 1] && strlen(s) <= 64 &&
					 strspn(s + n + 1, "abcdefghijklmnopqrstuvwxyz0123456789_-") ==
						 strlen(s + n + 1));
	return false;
}

/* An option value ceph.conf reads back as written: printable, no comment
 * or escape characters, no space at either end. */
static bool valid_conf_value(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 256 || s[0] == ' ' || s[n - 1] == ' ')
		return false;
	for (; *s; s++)
		if (*s < 0x20 || *s >= 0x7f || strchr("#;\\\"'", *s))
			return false;
	return true;
}

/*
 * Options kiln writes from the spec or needs as they are: set them through
 * their stacks.ceph key, never through config (two values, one silently
 * lost).  The tuning defaults kiln writes (managers, debug logs) may be
 * overridden: a [global] option of the same name replaces kiln's line.
 */
static const char *const conf_owned[] = {
	"fsid", "mon_host", "mon_initial_members", "public_network", "auth_cluster_required",
	"auth_service_required", "auth_client_required", "auth_allow_insecure_global_id_reclaim",
	"osd_pool_default_size", "osd_pool_default_min_size", "osd_pool_default_pg_num",
	"osd_pool_default_pgp_num", "osd_pool_default_pg_autoscale_mode",
	"osd_crush_chooseleaf_type", "osd_memory_target", "mon_allow_pool_size_one",
	"keyring", "mon_data", "osd_data", "mgr_data", "mds_data", NULL,
};

static int parse_config(struct spec_parser *x, const struct ynode *m, struct ceph_conf *c)
{
	char tmp[64];
	int r;

	if ((r = spec_expect(x, m, Y_MAP, "stacks.ceph.config")) < 0)
		return r;
	for (size_t i = 0; i + 1 < m->nkids; i += 2) {
		const struct ynode *k = m->kids[i], *opts = m->kids[i + 1];
		const char *sect;
		struct buf b;
		if ((r = spec_get_text(x, k, "stacks.ceph.config", &sect)) < 0)
			return r;
		if (!valid_conf_section(sect))
			return spec_err(x, k, "stacks.ceph.config: '%s' is not a ceph.conf section "
					"(global, mon, mgr, osd, mds, client, or TYPE.ID)",
					spec_shown(k, tmp, sizeof(tmp)));
		if ((r = spec_expect(x, opts, Y_MAP, "stacks.ceph.config section")) < 0)
			return r;
		buf_init(&b, 0);
		for (size_t j = 0; j + 1 < opts->nkids; j += 2) {
			const struct ynode *on = opts->kids[j], *ov = opts->kids[j + 1];
			const char *name, *val;
			if ((r = spec_get_text(x, on, "stacks.ceph.config option", &name)) < 0 ||
			    (r = spec_get_text(x, ov, "stacks.ceph.config value", &val)) < 0) {
				buf_release(&b);
				return r;
			}
			if (!str_is_ident(name, 64)) {
				buf_release(&b);
				return spec_err(x, on, "stacks.ceph.config.%s: '%s' is not an option "
						"name of [a-z0-9_]", sect, spec_shown(on, tmp, sizeof(tmp)));
			}
			for (size_t o = 0; conf_owned[o]; o++)
				if (!strcmp(name, conf_owned[o])) {
					buf_release(&b);
					return spec_err(x, on, "stacks.ceph.config.%s.%s: kiln writes this "
							"option itself (docs/ceph.md)", sect, name);
				}
			if (!valid_conf_value(val)) {
				buf_release(&b);
				return spec_err(x, ov, "stacks.ceph.config.%s.%s: '%s' is not a value "
						"ceph.conf keeps as written (printable, at most 256, "
						"no # ; \\ or quotes)", sect, name,
						spec_shown(ov, tmp, sizeof(tmp)));
			}
			buf_printf(&b, "%s = %s\n", name, val);
		}
		strv_push(&c->conf_sections, sect);
		strv_push(&c->conf_lines, b.s ? b.s : "");
		buf_release(&b);
	}
	return 0;
}

bool ceph_conf_has(const struct ceph_conf *c, const char *sect, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < c->conf_sections.n; i++) {
		if (strcmp(c->conf_sections.v[i], sect))
			continue;
		for (const char *l = c->conf_lines.v[i]; *l; l = strchr(l, '\n') + 1)
			if (!strncmp(l, name, n) && !strncmp(l + n, " = ", 3))
				return true;
	}
	return false;
}

static int node_list(struct spec_parser *x, const struct ynode *v, const char *what,
		     struct strv *out)
{
	int r = spec_get_strv(x, v, what, NULL, NULL, out);
	char tmp[80];

	for (size_t i = 0; r == 0 && i < out->n; i++)
		if (!cluster_node(x->c, out->v[i]))
			return spec_err(x, v->kids[i], "%s: no node '%s' in the spec", what,
					spec_shown(v->kids[i], tmp, sizeof(tmp)));
	return r;
}

static int parse_osds(struct spec_parser *x, const struct ynode *m, struct ceph_conf *c)
{
	static const char *const keys[] = { "rotational", "size", "model", "vendor", "limit",
		"paths", "nodes", NULL };
	const struct ynode *v;
	const char *s;
	char tmp[64];
	bool b;
	int r;

	if ((r = spec_expect(x, m, Y_MAP, "stacks.ceph.osds")) < 0 ||
	    (r = spec_check_keys(x, m, "stacks.ceph.osds", keys)) < 0)
		return r;
	if ((v = ymap_get(m, "rotational"))) {
		if ((r = spec_get_bool(x, v, "stacks.ceph.osds.rotational", &b)) < 0)
			return r;
		c->osds.rotational = b;
	}
	if ((v = ymap_get(m, "size"))) {
		if ((r = spec_get_text(x, v, "stacks.ceph.osds.size", &s)) < 0)
			return r;
		if (!ceph_parse_size_range(s, &c->osds))
			return spec_err(x, v, "stacks.ceph.osds.size: expected a size or a range "
					"like 10G, 10G:, :2T or 100G:2T, found '%s'",
					spec_shown(v, tmp, sizeof(tmp)));
		c->osds.size_text = xstrdup(s);
	}
	const char *pk[] = { "model", "vendor" };
	char **pv[] = { &c->osds.model, &c->osds.vendor };
	for (size_t i = 0; i < 2; i++) {
		char what[64];
		if (!(v = ymap_get(m, pk[i])))
			continue;
		snprintf(what, sizeof(what), "stacks.ceph.osds.%s", pk[i]);
		if ((r = spec_get_text(x, v, what, &s)) < 0)
			return r;
		if (!valid_prefix_text(s))
			return spec_err(x, v, "%s: expected a prefix of 1 to 64 printable "
					"characters", what);
		*pv[i] = xstrdup(s);
	}
	if ((v = ymap_get(m, "limit")) &&
	    (r = spec_get_int(x, v, "stacks.ceph.osds.limit", 1, 1024, &c->osds.limit)) < 0)
		return r;
	if ((v = ymap_get(m, "paths")) &&
	    (r = spec_get_strv(x, v, "stacks.ceph.osds.paths", valid_dev,
			       "a disk like /dev/sdb", &c->osds.paths)) < 0)
		return r;
	if ((v = ymap_get(m, "nodes")) &&
	    (r = node_list(x, v, "stacks.ceph.osds.nodes", &c->osd_nodes)) < 0)
		return r;
	return 0;
}

static int parse_cephfs(struct spec_parser *x, const struct ynode *m, struct ceph_conf *c)
{
	static const char *const keys[] = { "name", "mount", "nodes", NULL };
	const struct ynode *v;
	const char *s;
	char tmp[64];
	bool on;
	int r;

	if (m->kind == Y_SCALAR && !ynode_is_null(m)) {
		if ((r = spec_get_bool(x, m, "stacks.ceph.cephfs", &on)) < 0)
			return r;
		if (!on) {
			free(c->fs_name);
			c->fs_name = NULL;
		}
		return 0;
	}
	if (ynode_is_null(m))
		return 0;
	if ((r = spec_expect(x, m, Y_MAP, "stacks.ceph.cephfs")) < 0 ||
	    (r = spec_check_keys(x, m, "stacks.ceph.cephfs", keys)) < 0)
		return r;
	if ((v = ymap_get(m, "name"))) {
		if ((r = spec_get_text(x, v, "stacks.ceph.cephfs.name", &s)) < 0)
			return r;
		if (!valid_name(s))
			return spec_err(x, v, "stacks.ceph.cephfs.name: '%s' is not a name of "
					"[a-z0-9_-], at most 32", spec_shown(v, tmp, sizeof(tmp)));
		free(c->fs_name);
		c->fs_name = xstrdup(s);
	}
	if ((v = ymap_get(m, "mount"))) {
		if ((r = spec_get_text(x, v, "stacks.ceph.cephfs.mount", &s)) < 0)
			return r;
		if (!valid_mount(s))
			return spec_err(x, v, "stacks.ceph.cephfs.mount: '%s' is not an absolute "
					"path of [A-Za-z0-9/_.-]", spec_shown(v, tmp, sizeof(tmp)));
		free(c->fs_mount);
		c->fs_mount = xstrdup(s);
	}
	if ((v = ymap_get(m, "nodes")) &&
	    (r = node_list(x, v, "stacks.ceph.cephfs.nodes", &c->fs_nodes)) < 0)
		return r;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ceph_parse(struct spec_parser *x, const struct ynode *m, void **conf)
{
	static const char *const keys[] = { "public_network", "osd_memory_target", "size",
		"pg_num", "health_timeout", "managers", "osds", "rbd_pool", "cephfs", "config",
		NULL };
	struct ceph_conf *c = xcalloc(1, sizeof(*c));
	const struct ynode *v;
	const char *s;
	char tmp[64];
	int r;

	*conf = c;
	c->size = 3;
	c->pg_num = 32;
	c->health_timeout = 300;
	c->osds.rotational = -1;
	c->rbd_pool = xstrdup("rbd");
	c->fs_name = xstrdup("cephfs");
	c->fs_mount = xstrdup("/shared");
	if (!ynode_is_null(m) && ((r = spec_expect(x, m, Y_MAP, "stacks.ceph")) < 0 ||
				  (r = spec_check_keys(x, m, "stacks.ceph", keys)) < 0))
		return r;
	if (!ynode_is_null(m)) {
		if ((v = ymap_get(m, "public_network"))) {
			if ((r = spec_get_text(x, v, "stacks.ceph.public_network", &s)) < 0)
				return r;
			if (!valid_cidr4(s))
				return spec_err(x, v, "stacks.ceph.public_network: '%s' is not an "
						"IPv4 network like 10.0.0.0/24",
						spec_shown(v, tmp, sizeof(tmp)));
			c->public_network = xstrdup(s);
		}
		if ((v = ymap_get(m, "osd_memory_target"))) {
			if ((r = spec_get_text(x, v, "stacks.ceph.osd_memory_target", &s)) < 0)
				return r;
			if (!ceph_parse_size(s, &c->osd_memory_target) ||
			    c->osd_memory_target < (896ull << 20))
				return spec_err(x, v, "stacks.ceph.osd_memory_target: expected a "
						"size of at least 896M, found '%s'",
						spec_shown(v, tmp, sizeof(tmp)));
		}
		if ((v = ymap_get(m, "size")) &&
		    (r = spec_get_int(x, v, "stacks.ceph.size", 1, 10, &c->size)) < 0)
			return r;
		if ((v = ymap_get(m, "pg_num")) &&
		    (r = spec_get_int(x, v, "stacks.ceph.pg_num", 1, 4096, &c->pg_num)) < 0)
			return r;
		if ((v = ymap_get(m, "health_timeout")) &&
		    (r = spec_get_int(x, v, "stacks.ceph.health_timeout", 10, 3600,
				      &c->health_timeout)) < 0)
			return r;
		if ((v = ymap_get(m, "managers")) &&
		    (r = spec_get_int(x, v, "stacks.ceph.managers", 1, 5, &c->managers)) < 0)
			return r;
		if ((v = ymap_get(m, "osds")) && !ynode_is_null(v) &&
		    (r = parse_osds(x, v, c)) < 0)
			return r;
		if ((v = ymap_get(m, "rbd_pool"))) {
			free(c->rbd_pool);
			c->rbd_pool = NULL;
			if (!(v->kind == Y_SCALAR && !strcmp(v->str, "false"))) {
				if ((r = spec_get_text(x, v, "stacks.ceph.rbd_pool", &s)) < 0)
					return r;
				if (!valid_name(s))
					return spec_err(x, v, "stacks.ceph.rbd_pool: '%s' is not a "
							"name of [a-z0-9_-], at most 32 (or false)",
							spec_shown(v, tmp, sizeof(tmp)));
				c->rbd_pool = xstrdup(s);
			}
		}
		if ((v = ymap_get(m, "cephfs")) && (r = parse_cephfs(x, v, c)) < 0)
			return r;
		if ((v = ymap_get(m, "config")) && !ynode_is_null(v) &&
		    (r = parse_config(x, v, c)) < 0)
			return r;
	}
	for (size_t i = 0; i < x->c->nnodes; i++)
		if (strv_contains(&x->c->nodes[i].roles, CEPH_ROLE))
			strv_push(&c->mons, x->c->nodes[i].name);
	qsort(c->mons.v, c->mons.n, sizeof(*c->mons.v), by_name);
	if (c->mons.n != 1 && c->mons.n != 3 && c->mons.n != 5)
		return spec_err(x, m, "stacks.ceph: %zu nodes have role %s: a monitor quorum "
				"needs 1, 3 or 5", c->mons.n, CEPH_ROLE);
	/* one active and one standby, as cephadm places them: each manager
	 * holds ~175 MiB of Python modules */
	if (!c->managers)
		c->managers = c->mons.n < 2 ? (int)c->mons.n : 2;
	else if ((size_t)c->managers > c->mons.n)
		return spec_err(x, ymap_get(m, "managers"), "stacks.ceph.managers: %d, but %zu "
				"monitor%s (managers run on the monitors)", c->managers, c->mons.n,
				c->mons.n == 1 ? "" : "s");
	for (size_t i = 0; i < c->mons.n; i++) {
		const struct node *n = cluster_node(x->c, c->mons.v[i]);
		struct in_addr a;
		if (inet_pton(AF_INET, n->address, &a) != 1)
			return spec_err(x, m, "stacks.ceph: monitor %s's address '%s' is not an "
					"IPv4 address (the monmap needs one)", n->name, n->address);
	}
	return 0;
}
