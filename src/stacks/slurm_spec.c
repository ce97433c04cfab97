/*
 * stacks.slurm: the spec's part of the slurm stack (docs/spec.md, "slurm";
 * docs/slurm.md).  The parser checks every key with FILE:LINE:COL errors
 * and fills struct slurm_conf, which slurm.c renders from.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slurm_int.h"
#include "spec/parse.h"

/* ---- the spec: stacks.slurm ------------------------------------------------ */

static bool slurm_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	return n && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

void slurm_free(void *p)
{
	struct slurm_conf *s = p;

	if (!s)
		return;
	for (size_t i = 0; i < s->nparts; i++) {
		free(s->parts[i].name);
		free(s->parts[i].group);
		free(s->parts[i].key);
		free(s->parts[i].value);
		strv_release(&s->parts[i].nodes);
	}
	free(s->parts);
	free(s->cluster_name);
	free(s->sched_params);
	free(s->order);
	free(s);
}

/* "1G", "512M", "2048" (MiB) or "5%". */
static int parse_reserve(struct spec_parser *x, const struct ynode *v, struct slurm_conf *s)
{
	const char *t;
	char tmp[64], num[32];
	uint64_t n;
	int r;

	if ((r = spec_get_text(x, v, "stacks.slurm.memory_reserve", &t)) < 0)
		return r;
	size_t l = strlen(t);
	char unit = l ? t[l - 1] : 0;
	size_t digits = (unit >= '0' && unit <= '9') ? l : l - 1;
	if (l && digits < sizeof(num)) {
		memcpy(num, t, digits);
		num[digits] = '\0';
		if (unit == '%' && parse_u64(num, 0, 50, &n) == 0) {
			s->reserve_pct = (int)n;
			s->reserve_mib = 0;
			return 0;
		}
		uint64_t mul = unit == 'G' || unit == 'g' ? 1024 : 1;
		if ((unit == 'G' || unit == 'g' || unit == 'M' || unit == 'm' || digits == l) &&
		    parse_u64(num, 0, (1ull << 30) / mul, &n) == 0) {
			s->reserve_mib = (long long)(n * mul);
			s->reserve_pct = 0;
			return 0;
		}
	}
	return spec_err(x, v, "stacks.slurm.memory_reserve: expected a size like 1G or "
			"512M, or a percentage up to 50%%, found '%s'",
			spec_shown(v, tmp, sizeof(tmp)));
}

static int parse_partitions(struct spec_parser *x, const struct ynode *m, struct slurm_conf *s)
{
	static const char *const keys[] = { "group", "label", "nodes", "default", NULL };
	char tmp[80];
	int r;

	if ((r = spec_expect(x, m, Y_MAP, "stacks.slurm.partitions")) < 0)
		return r;
	s->parts = xcalloc(ymap_len(m) + 1, sizeof(*s->parts));
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *k = ymap_key(m, i), *v = ymap_val(m, i), *w;
		struct slurm_part *p = &s->parts[s->nparts++];
		const char *t;
		int nsel = 0;

		p->name = xstrdup(k->str);
		if (!slurm_name_ok(k->str, 32))
			return spec_err(x, k, "stacks.slurm.partitions: '%s' is not a partition "
					"name ([a-z0-9_-], at most 32)", spec_shown(k, tmp, sizeof(tmp)));
		if ((r = spec_expect(x, v, Y_MAP, "stacks.slurm.partitions.NAME")) < 0 ||
		    (r = spec_check_keys(x, v, "stacks.slurm.partitions.NAME", keys)) < 0)
			return r;
		if ((w = ymap_get(v, "group"))) {
			nsel++;
			if ((r = spec_get_text(x, w, "stacks.slurm.partitions.NAME.group", &t)) < 0)
				return r;
			if (!cluster_group(x->c, t) && strcmp(t, "all"))
				return spec_err(x, w, "stacks.slurm.partitions.%s.group: no group "
						"'%s' in the spec", p->name,
						spec_shown(w, tmp, sizeof(tmp)));
			p->by = PART_GROUP;
			p->group = xstrdup(t);
		}
		if ((w = ymap_get(v, "label"))) {
			nsel++;
			if ((r = spec_get_text(x, w, "stacks.slurm.partitions.NAME.label", &t)) < 0)
				return r;
			const char *eq = strchr(t, '=');
			if (!eq || eq == t)
				return spec_err(x, w, "stacks.slurm.partitions.%s.label: expected "
						"KEY=VALUE, found '%s'", p->name,
						spec_shown(w, tmp, sizeof(tmp)));
			p->by = PART_LABEL;
			p->key = xstrndup(t, (size_t)(eq - t));
			p->value = xstrdup(eq + 1);
		}
		if ((w = ymap_get(v, "nodes"))) {
			nsel++;
			if ((r = spec_expect(x, w, Y_SEQ, "stacks.slurm.partitions.NAME.nodes")) < 0)
				return r;
			for (size_t j = 0; j < w->nkids; j++) {
				if ((r = spec_get_text(x, w->kids[j],
						       "stacks.slurm.partitions.NAME.nodes", &t)) < 0)
					return r;
				if (!cluster_node(x->c, t))
					return spec_err(x, w->kids[j], "stacks.slurm.partitions.%s."
							"nodes: no node '%s' in the spec", p->name,
							spec_shown(w->kids[j], tmp, sizeof(tmp)));
				strv_push(&p->nodes, t);
			}
			p->by = PART_NODES;
		}
		if (nsel != 1)
			return spec_err(x, v, "stacks.slurm.partitions.%s: expected exactly one of "
					"group, label or nodes", p->name);
		if ((w = ymap_get(v, "default")) &&
		    (r = spec_get_bool(x, w, "stacks.slurm.partitions.NAME.default", &p->dflt)) < 0)
			return r;
		for (size_t j = 0; j + 1 < s->nparts; j++)
			if (p->dflt && s->parts[j].dflt)
				return spec_err(x, w, "stacks.slurm.partitions.%s: partition '%s' "
						"is already the default", p->name, s->parts[j].name);
	}
	return 0;
}

static int by_name(const void *a, const void *b)
{
	const struct node *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

/* The roles: one controller, at most one db node, no unknown slurm-* role. */
static int parse_roles(struct spec_parser *x, const struct ynode *m, struct slurm_conf *s)
{
	const struct cluster *c = x->c;
	static const char *const known[] = { ROLE_CTL, ROLE_DB, ROLE_LOGIN, ROLE_COMPUTE };
	long ctl = -1;

	s->db = -1;
	for (size_t i = 0; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[i];
		struct kerr *e = x->e;
		for (size_t j = 0; j < n->roles.n; j++) {
			const char *role = n->roles.v[j];
			bool ok = strncmp(role, "slurm-", 6) != 0;
			for (size_t k = 0; k < ARRAY_SIZE(known); k++)
				ok |= !strcmp(role, known[k]);
			if (!ok)
				return kerr_set(e, -EINVAL, "%s:%d:%d: node '%s': unknown role '%s' "
						"(stacks.slurm knows slurm-controller, slurm-login, "
						"slurm-db and slurm-compute)", n->mark.file,
						n->mark.line, n->mark.col, n->name, role);
		}
		if (has_role(n, ROLE_CTL)) {
			if (ctl >= 0)
				return kerr_set(e, -EINVAL, "%s:%d:%d: node '%s': role %s is "
						"already node '%s''s (stacks.slurm has one "
						"controller)", n->mark.file, n->mark.line,
						n->mark.col, n->name, ROLE_CTL,
						c->nodes[ctl].name);
			ctl = (long)i;
		}
		if (has_role(n, ROLE_DB)) {
			if (s->db >= 0)
				return kerr_set(e, -EINVAL, "%s:%d:%d: node '%s': role %s is "
						"already node '%s''s (stacks.slurm has one "
						"accounting database)", n->mark.file, n->mark.line,
						n->mark.col, n->name, ROLE_DB,
						c->nodes[s->db].name);
			s->db = (long)i;
		}
	}
	if (ctl < 0)
		return spec_err(x, m, "stacks.slurm: no node has role %s (give it to one node)",
				ROLE_CTL);
	s->ctl = (size_t)ctl;
	const struct node **p = xcalloc(c->nnodes + 1, sizeof(*p));
	for (size_t i = 0; i < c->nnodes; i++)
		p[i] = &c->nodes[i];
	qsort(p, c->nnodes, sizeof(*p), by_name);
	s->order = xcalloc(c->nnodes + 1, sizeof(*s->order));
	for (size_t i = 0; i < c->nnodes; i++)
		s->order[i] = (size_t)(p[i] - c->nodes);
	free(p);
	return 0;
}

int slurm_parse(struct spec_parser *x, const struct ynode *m, void **conf)
{
	static const char *const keys[] = { "cluster_name", "memory_reserve", "cgroup",
		"gpu_compute", "gpu_partitions", "partitions", "scheduler_parameters",
		"check_timeout", NULL };
	struct slurm_conf *s = xcalloc(1, sizeof(*s));
	const struct ynode *v;
	const char *t;
	char tmp[80];
	int r;

	*conf = s;
	s->reserve_mib = 1024;
	s->cgroup = s->gpu_compute = s->gpu_partitions = true;
	s->check_timeout = 60;
	s->mark = (struct mark){ x->file, m->line, m->col };
	if (!ynode_is_null(m) && ((r = spec_expect(x, m, Y_MAP, "stacks.slurm")) < 0 ||
				  (r = spec_check_keys(x, m, "stacks.slurm", keys)) < 0))
		return r;
	if ((v = ymap_get(m, "cluster_name"))) {
		if ((r = spec_get_text(x, v, "stacks.slurm.cluster_name", &t)) < 0)
			return r;
		if (!slurm_name_ok(t, 40))
			return spec_err(x, v, "stacks.slurm.cluster_name: '%s' is not a Slurm "
					"cluster name ([a-z0-9_-], at most 40)",
					spec_shown(v, tmp, sizeof(tmp)));
		s->cluster_name = xstrdup(t);
	} else if (slurm_name_ok(x->c->name, 40)) {
		s->cluster_name = xstrdup(x->c->name);
	} else {
		return spec_err(x, m, "stacks.slurm: the cluster name '%s' is not a Slurm "
				"cluster name ([a-z0-9_-], at most 40): set cluster_name",
				x->c->name);
	}
	if ((v = ymap_get(m, "memory_reserve")) && (r = parse_reserve(x, v, s)) < 0)
		return r;
	if ((v = ymap_get(m, "cgroup")) &&
	    (r = spec_get_bool(x, v, "stacks.slurm.cgroup", &s->cgroup)) < 0)
		return r;
	if ((v = ymap_get(m, "gpu_compute")) &&
	    (r = spec_get_bool(x, v, "stacks.slurm.gpu_compute", &s->gpu_compute)) < 0)
		return r;
	if ((v = ymap_get(m, "gpu_partitions")) &&
	    (r = spec_get_bool(x, v, "stacks.slurm.gpu_partitions", &s->gpu_partitions)) < 0)
		return r;
	if ((v = ymap_get(m, "check_timeout")) &&
	    (r = spec_get_int(x, v, "stacks.slurm.check_timeout", 1, 3600,
			      &s->check_timeout)) < 0)
		return r;
	if ((v = ymap_get(m, "scheduler_parameters"))) {
		if ((r = spec_get_text(x, v, "stacks.slurm.scheduler_parameters", &t)) < 0)
			return r;
		for (const char *p = t; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			      strchr("_=,.:-", *p)))
				return spec_err(x, v, "stacks.slurm.scheduler_parameters: '%s' is "
						"not a list like bf_interval=2,sched_interval=2",
						spec_shown(v, tmp, sizeof(tmp)));
		s->sched_params = xstrdup(t);
	}
	if ((v = ymap_get(m, "partitions")) && (r = parse_partitions(x, v, s)) < 0)
		return r;
	return parse_roles(x, m, s);
}
