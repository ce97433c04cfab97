/*
 * The slurm stack: a Slurm 22.05 cluster from the spec's roles and every
 * node's facts (docs/slurm.md).
 *
 *   install     packages per role (munge, slurm-client everywhere; slurmctld,
 *               slurmd, slurmdbd + mariadb-server where the roles say); then
 *               the controller makes the munge key (a `secret` resource:
 *               made once on the node, exported as a secret, never stored)
 *               and the db node slurmdbd's database password the same way.
 *   config      every node: the munge key (byte-identical, 0400 munge),
 *               slurm.conf, cgroup.conf; compute nodes gres.conf and slurmd;
 *               the db node MariaDB's database and user, slurmdbd.
 *   controller  slurmctld: restarted when what only a restart applies
 *               changed, `scontrol reconfigure` when only the rest did.
 *   check       slurmctld answers and every compute node is usable, within
 *               check_timeout; the reason otherwise.
 *
 * Compute nodes: role slurm-compute, and (gpu_compute, the default) every
 * node whose facts show NVIDIA GPUs.  One NodeName line each, from facts.
 */
#include "stacks.h"
#include "slurm.h"
#include "slurm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs.h"
#include "resources/resources.h"

#define MUNGE_KEY "/etc/munge/munge.key"
#define MUNGE_KEY_BYTES 64
#define SLURM_CONF "/etc/slurm/slurm.conf"
#define GRES_CONF "/etc/slurm/gres.conf"
#define CGROUP_CONF "/etc/slurm/cgroup.conf"
#define DBD_CONF "/etc/slurm/slurmdbd.conf"
#define DBD_PASS "/etc/slurm/slurmdbd.pass"
#define DBD_PASS_BYTES 24
#define DB_NAME "slurm_acct_db"
#define STATE_DIR "/var/lib/slurm/slurmctld"
#define SPOOL_DIR "/var/lib/slurm/slurmd"
#define STAMP_DIR "/var/lib/kiln/slurm"
#define CHECK_SCRIPT "/usr/local/lib/kiln/slurm-check"
#define HEADER "# managed by kiln (stacks.slurm); changes here are overwritten\n"

extern const struct stack_type stack_slurm;

/* ---- the cluster as Slurm sees it ------------------------------------------ */

static const char *os_family(const json_t *os)
{
	return json_string_value(json_object_get(os, "family"));
}

static bool is_nvidia(const json_t *g)
{
	const char *v = json_string_value(json_object_get(g, "vendor"));
	return v && !strcmp(v, "nvidia");
}

static size_t nvidia_count(const json_t *gpus)
{
	size_t i, n = 0;
	json_t *g;
	json_array_foreach(gpus, i, g)
		n += is_nvidia(g);
	return n;
}

static bool is_compute(const struct render_ctx *rc, const struct slurm_conf *s,
		       const struct node *n)
{
	return has_role(n, ROLE_COMPUTE) ||
	       (s->gpu_compute && nvidia_count(render_fact(rc, n, "gpus")) > 0);
}

static bool is_ctl(const struct render_ctx *rc, const struct slurm_conf *s, const struct node *n)
{
	return (size_t)(n - rc->c->nodes) == s->ctl;
}

static bool is_db(const struct render_ctx *rc, const struct slurm_conf *s, const struct node *n)
{
	return s->db >= 0 && (size_t)(n - rc->c->nodes) == (size_t)s->db;
}

/* Does the stack manage n at all? */
static bool in_slurm(const struct render_ctx *rc, const struct slurm_conf *s,
		     const struct node *n)
{
	return is_ctl(rc, s, n) || is_db(rc, s, n) || has_role(n, ROLE_LOGIN) ||
	       is_compute(rc, s, n);
}

static int json_int(const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) && json_integer_value(v) > 0 &&
	       json_integer_value(v) < (1 << 24) ? (int)json_integer_value(v) : 0;
}

/* A compute node's NVIDIA GPUs, by PCI slot (the order of /dev/nvidiaN). */
struct gpu_list {
	const json_t **v;
	size_t n;
};

static int by_slot(const void *a, const void *b)
{
	const json_t *const *x = a, *const *y = b;
	const char *s = json_string_value(json_object_get(*x, "slot"));
	const char *t = json_string_value(json_object_get(*y, "slot"));
	return strcmp(s ? s : "", t ? t : "");
}

static void gpus_of(const json_t *gpus, struct gpu_list *l)
{
	size_t i;
	json_t *g;

	l->v = xcalloc(json_array_size(gpus) + 1, sizeof(*l->v));
	l->n = 0;
	json_array_foreach(gpus, i, g)
		if (is_nvidia(g))
			l->v[l->n++] = g;
	qsort(l->v, l->n, sizeof(*l->v), by_slot);
}

/* RealMemory: MemTotal in MiB less the reserve; half the memory at most. */
static long long real_memory(const struct slurm_conf *s, const json_t *memory)
{
	json_t *t = json_object_get(memory, "total_bytes");
	long long mib = json_is_integer(t) ? (long long)(json_integer_value(t) >> 20) : 0;
	long long res = s->reserve_pct ? mib * s->reserve_pct / 100 : s->reserve_mib;

	if (mib <= 0)
		return 0;
	if (res > mib / 2)
		res = mib / 2;
	return mib - res > 0 ? mib - res : 1;
}

/*
 * One compute node as slurm.conf defines it, from its facts: built once per
 * render (slurm_nodes_make) and used both to write its NodeName line and by
 * kiln run's placement check (slurm_jobs_nodes).
 */
struct slurm_gres {
	char type[GPU_TYPE_MAX];
	size_t count;
};

struct slurm_node {
	const struct node *node;
	int cpus, sockets, cores_per_socket, threads_per_core;
	long long mem_mib;            /* RealMemory */
	struct slurm_gres *gres;      /* by type name */
	size_t ngres;
};

/* The compute nodes that get a NodeName line, in name order. */
struct members {
	struct slurm_node *v;
	size_t n;
};

static void members_release(struct members *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].gres);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

static bool node_has_type(const struct slurm_node *d, const char *type)
{
	for (size_t i = 0; i < d->ngres; i++)
		if (!strcmp(d->gres[i].type, type))
			return true;
	return false;
}

/* The GPU list as counts per type, sorted by type name, into d. */
static void gres_of(const struct gpu_list *l, struct slurm_node *d)
{
	d->gres = xcalloc(l->n + 1, sizeof(*d->gres));
	d->ngres = 0;
	for (size_t i = 0; i < l->n; i++) {
		char t[GPU_TYPE_MAX];
		size_t k;
		gpu_type_of(l->v[i], t);
		for (k = 0; k < d->ngres && strcmp(d->gres[k].type, t); k++)
			;
		if (k == d->ngres)
			memcpy(d->gres[d->ngres++].type, t, GPU_TYPE_MAX);
		d->gres[k].count++;
	}
	/* insertion sort by type name: a handful of types */
	for (size_t i = 1; i < d->ngres; i++)
		for (size_t j = i; j > 0 && strcmp(d->gres[j - 1].type, d->gres[j].type) > 0; j--) {
			struct slurm_gres t = d->gres[j];
			d->gres[j] = d->gres[j - 1];
			d->gres[j - 1] = t;
		}
}

/*
 * Compute node n as Slurm is to be told, into d; false (noting it in ro)
 * when its facts lack what Slurm must be told.
 */
static bool node_def(const struct render_ctx *rc, const struct slurm_conf *s,
		     const struct node *n, struct slurm_node *d, struct render_out *ro)
{
	const json_t *cpu = render_fact(rc, n, "cpu");
	int sockets = json_int(cpu, "sockets"), cores = json_int(cpu, "cores");
	int threads = json_int(cpu, "threads");
	long long mem = real_memory(s, render_fact(rc, n, "memory"));

	if (!render_has_facts(rc, n) || !sockets || !cores || !threads || !mem) {
		if (ro)
			strv_pushf(&ro->needs, "%s facts (cpu and memory, for its NodeName line)",
				   n->name);
		return false;
	}
	struct gpu_list g;
	gpus_of(render_fact(rc, n, "gpus"), &g);
	*d = (struct slurm_node){ .node = n, .cpus = threads, .sockets = sockets,
				  .cores_per_socket = cores / sockets > 0 ? cores / sockets : 1,
				  .threads_per_core = threads / cores > 0 ? threads / cores : 1,
				  .mem_mib = mem };
	gres_of(&g, d);
	free(g.v);
	return true;
}

/* "gpu:a100:2,gpu:t4:1" (types sorted), or "" without GPUs. */
static void gres_text(const struct slurm_node *d, struct buf *out)
{
	for (size_t i = 0; i < d->ngres; i++)
		buf_printf(out, "%sgpu:%s:%zu", i ? "," : "", d->gres[i].type, d->gres[i].count);
}

/* The NodeName line of d into out. */
static void node_line(const struct slurm_node *d, struct buf *out)
{
	buf_printf(out, "NodeName=%s NodeAddr=%s CPUs=%d Sockets=%d CoresPerSocket=%d "
		   "ThreadsPerCore=%d RealMemory=%lld", d->node->name, d->node->address, d->cpus,
		   d->sockets, d->cores_per_socket, d->threads_per_core, d->mem_mib);
	if (d->ngres) {
		buf_adds(out, " Gres=");
		gres_text(d, out);
	}
	buf_adds(out, " State=UNKNOWN\n");
}

/* The compute nodes with what Slurm is told of each, in name order. */
static void compute_nodes(const struct render_ctx *rc, const struct slurm_conf *s,
			  struct members *m, struct render_out *ro)
{
	const struct cluster *c = rc->c;

	m->v = xcalloc(c->nnodes + 1, sizeof(*m->v));
	m->n = 0;
	for (size_t i = 0; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[s->order[i]];
		if (is_compute(rc, s, n) && node_def(rc, s, n, &m->v[m->n], ro))
			m->n++;
	}
}

static bool part_has(const struct cluster *c, const struct slurm_part *p, const struct node *n)
{
	switch (p->by) {
	case PART_GROUP:
		return cluster_node_in_group(c, n, p->group);
	case PART_LABEL: {
		const char *v = json_string_value(json_object_get(n->labels, p->key));
		return v && !strcmp(v, p->value);
	}
	case PART_NODES:
		break;
	}
	return strv_contains(&p->nodes, n->name);
}

/* The GPU types of the compute nodes, in name order. */
static void gpu_types(const struct members *m, struct strv *types)
{
	for (size_t k = 0; k < m->n; k++)
		for (size_t j = 0; j < m->v[k].ngres; j++)
			strv_push_unique(types, m->v[k].gres[j].type);
	strv_sort(types);
}

/* One partition: its name and its compute nodes (indices into members). */
struct slurm_partition {
	char *name;
	size_t *nodes;
	size_t n;
	bool dflt;
};

struct partitions {
	struct slurm_partition *v;
	size_t n, alloc;
};

static void partitions_release(struct partitions *pl)
{
	for (size_t i = 0; i < pl->n; i++) {
		free(pl->v[i].name);
		free(pl->v[i].nodes);
	}
	free(pl->v);
	*pl = (struct partitions){ 0 };
}

static struct slurm_partition *partition_add(struct partitions *pl, const char *name,
					     size_t nmembers, bool dflt)
{
	if (pl->n == pl->alloc) {
		pl->alloc = pl->alloc ? pl->alloc * 2 : 8;
		pl->v = xrealloc(pl->v, pl->alloc * sizeof(*pl->v));
	}
	struct slurm_partition *p = &pl->v[pl->n++];
	*p = (struct slurm_partition){ .name = xstrdup(name), .dflt = dflt,
				       .nodes = xcalloc(nmembers + 1, sizeof(size_t)) };
	return p;
}

/*
 * The partitions: the spec's, in spec order; "all" (every compute node,
 * the default unless a spec partition is) unless the spec names one so;
 * with gpu_partitions one per GPU type (named after it) that the spec does
 * not name itself.
 */
static void partitions_make(const struct render_ctx *rc, const struct slurm_conf *s,
			    const struct members *m, struct partitions *pl)
{
	const struct cluster *c = rc->c;
	bool spec_default = false, spec_all = false;
	struct strv types = STRV_INIT;
	struct slurm_partition *p;

	*pl = (struct partitions){ 0 };
	for (size_t i = 0; i < s->nparts; i++) {
		const struct slurm_part *sp = &s->parts[i];
		spec_default |= sp->dflt;
		spec_all |= !strcmp(sp->name, "all");
		p = partition_add(pl, sp->name, m->n, sp->dflt);
		for (size_t k = 0; k < m->n; k++)
			if (part_has(c, sp, m->v[k].node))
				p->nodes[p->n++] = k;
	}
	if (!spec_all) {
		p = partition_add(pl, "all", m->n, !spec_default);
		for (size_t k = 0; k < m->n; k++)
			p->nodes[p->n++] = k;
	}
	if (s->gpu_partitions)
		gpu_types(m, &types);
	for (size_t i = 0; i < types.n; i++) {
		bool named = false;
		for (size_t j = 0; j < s->nparts; j++)
			named |= !strcmp(s->parts[j].name, types.v[i]);
		if (named || !strcmp(types.v[i], "all"))
			continue;
		p = partition_add(pl, types.v[i], m->n, false);
		for (size_t k = 0; k < m->n; k++)
			if (node_has_type(&m->v[k], types.v[i]))
				p->nodes[p->n++] = k;
	}
	strv_release(&types);
}

/* The PartitionName lines; a partition with no compute node as a comment. */
static void partitions_text(const struct partitions *pl, const struct members *m,
			    struct buf *out)
{
	for (size_t i = 0; i < pl->n; i++) {
		const struct slurm_partition *p = &pl->v[i];
		if (!p->n) {
			buf_printf(out, "# PartitionName=%s: no compute node\n", p->name);
			continue;
		}
		buf_printf(out, "PartitionName=%s Nodes=", p->name);
		for (size_t k = 0; k < p->n; k++)
			buf_printf(out, "%s%s", k ? "," : "", m->v[p->nodes[k]].node->name);
		buf_printf(out, " Default=%s MaxTime=INFINITE State=UP\n", p->dflt ? "YES" : "NO");
	}
}

/*
 * slurm.conf, the same text on every node, in two parts: head, what
 * slurmctld and slurmd apply only when they restart (hosts, ports, plugins,
 * the nodes), then what `scontrol reconfigure` applies (partitions,
 * scheduler parameters).  all is the file.
 */
struct slurm_text {
	struct buf head, all;
	struct members m;             /* the compute nodes listed */
	struct partitions parts;      /* and the partitions, over m */
};

static void slurm_text_release(struct slurm_text *t)
{
	buf_release(&t->head);
	buf_release(&t->all);
	members_release(&t->m);
	partitions_release(&t->parts);
}

/* Build t; needs about nodes left out go to ro (NULL: not noted). */
static void slurm_text_make(const struct render_ctx *rc, const struct slurm_conf *s,
			    struct slurm_text *t, struct render_out *ro)
{
	const struct cluster *c = rc->c;
	const struct node *ctl = &c->nodes[s->ctl];
	struct buf *head = &t->head, *tail = &t->all;
	struct members *m = &t->m;

	buf_init(head, 0);
	buf_init(tail, 0);
	compute_nodes(rc, s, m, ro);
	partitions_make(rc, s, m, &t->parts);
	buf_adds(head, HEADER);
	buf_printf(head, "ClusterName=%s\nSlurmctldHost=%s(%s)\n", s->cluster_name, ctl->name,
		   ctl->address);
	buf_adds(head, "SlurmUser=slurm\nAuthType=auth/munge\nCredType=cred/munge\n"
		 "SlurmctldPort=6817\nSlurmdPort=6818\n"
		 "StateSaveLocation=" STATE_DIR "\nSlurmdSpoolDir=" SPOOL_DIR "\n"
		 "ReturnToService=2\nSchedulerType=sched/backfill\n"
		 "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
		 "GresTypes=gpu\nMpiDefault=none\n");
	if (s->cgroup)
		buf_adds(head, "ProctrackType=proctrack/cgroup\n"
			 "TaskPlugin=task/cgroup,task/affinity\n"
			 "JobAcctGatherType=jobacct_gather/cgroup\n");
	else
		buf_adds(head, "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
			 "JobAcctGatherType=jobacct_gather/linux\n");
	if (s->db >= 0) {
		/* GPUs accounted for by type as well: gres/gpu:a100 */
		struct strv types = STRV_INIT;
		gpu_types(m, &types);
		buf_printf(head, "AccountingStorageType=accounting_storage/slurmdbd\n"
			   "AccountingStorageHost=%s\nAccountingStorageTRES=gres/gpu",
			   c->nodes[s->db].address);
		for (size_t i = 0; i < types.n; i++)
			buf_printf(head, ",gres/gpu:%s", types.v[i]);
		buf_adds(head, "\n");
		strv_release(&types);
	}
	else
		buf_adds(head, "AccountingStorageType=accounting_storage/none\n");
	buf_adds(head, "\n# compute nodes, from their facts\n");
	for (size_t i = 0; i < m->n; i++)
		node_line(&m->v[i], head);
	buf_adds(tail, "\n# partitions\n");
	partitions_text(&t->parts, m, tail);
	if (s->sched_params)
		buf_printf(tail, "SchedulerParameters=%s\n", s->sched_params);
	/* all = head + the rest */
	struct buf rest = *tail;
	buf_init(tail, 0);
	buf_add(tail, head->s, head->len);
	buf_add(tail, rest.s, rest.len);
	buf_release(&rest);
}

/* A cpulist ("0-31,64-95") as Slurm core ids, compressed ("0-31"); "" if none. */
static void cores_of(const char *cpus, int cores, int threads, struct buf *out)
{
	bool *on = xcalloc((size_t)cores + 1, 1);
	const char *p = cpus;

	while (p && *p) {
		char *end;
		long a = strtol(p, &end, 10), b = a;
		if (end == p || a < 0)
			break;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || b < a)
				break;
		}
		/* Linux numbers one thread of every core first, the siblings
		 * after: thread c runs on core c mod cores */
		for (long cpu = a; cpu <= b && cpu < (long)threads; cpu++)
			on[threads > cores ? cpu % cores : cpu] = true;
		p = *end == ',' ? end + 1 : NULL;
	}
	for (int i = 0; i < cores; i++) {
		if (!on[i])
			continue;
		int j = i;
		while (j + 1 < cores && on[j + 1])
			j++;
		buf_printf(out, "%s%d", out->len ? "," : "", i);
		if (j > i)
			buf_printf(out, "-%d", j);
		i = j;
	}
	free(on);
}

/* The NUMA node's cpus in facts, or NULL. */
static const char *numa_cpus(const json_t *numa, const json_t *gpu)
{
	json_t *nn = json_object_get(gpu, "numa_node"), *x;
	size_t i;

	if (!json_is_integer(nn))
		return NULL;
	json_array_foreach(numa, i, x)
		if (json_integer_value(json_object_get(x, "id")) == json_integer_value(nn))
			return json_string_value(json_object_get(x, "cpus"));
	return NULL;
}

/* gres.conf of compute node n: one line per NVIDIA GPU, in device order. */
static void gres_conf_text(const struct render_ctx *rc, const struct node *n, struct buf *out)
{
	const json_t *cpu = render_fact(rc, n, "cpu"), *numa = render_fact(rc, n, "numa");
	int cores = json_int(cpu, "cores"), threads = json_int(cpu, "threads");
	struct gpu_list g;

	buf_adds(out, HEADER "AutoDetect=off\n");
	gpus_of(render_fact(rc, n, "gpus"), &g);
	for (size_t i = 0; i < g.n; i++) {
		char t[GPU_TYPE_MAX];
		const char *cpus = numa_cpus(numa, g.v[i]);
		buf_printf(out, "NodeName=%s Name=gpu Type=%s File=/dev/nvidia%zu", n->name,
			   gpu_type_of(g.v[i], t), i);
		if (cpus && cores && threads) {
			struct buf cl;
			buf_init(&cl, 0);
			buf_adds(&cl, "");
			cl.len = 0;
			cores_of(cpus, cores, threads, &cl);
			if (cl.len)
				buf_printf(out, " Cores=%s", cl.s);
			buf_release(&cl);
		}
		buf_adds(out, "\n");
	}
	free(g.v);
}

static void cgroup_conf_text(const struct slurm_conf *s, struct buf *out)
{
	buf_adds(out, HEADER);
	if (s->cgroup)
		buf_adds(out, "CgroupPlugin=autodetect\nConstrainCores=yes\n"
			 "ConstrainDevices=yes\nConstrainRAMSpace=yes\n");
	else
		/* proctrack/linuxproc and task/none load no cgroup plugin's
		 * controllers; slurmd 22.05 still reads this file */
		buf_adds(out, "CgroupPlugin=cgroup/v1\n");
}

/* A change detector for the stamps (FNV-1a, 64 bits); not a MAC. */
static unsigned long long fnv64(const char *s, size_t n, unsigned long long h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}
#define FNV_SEED 14695981039346656037ull

/*
 * A handler that converges across runs: run `action` once for the
 * configuration whose hash is h, recording h in STAMP_DIR/name; a run
 * whose stamp holds h does nothing (and plan shows it would run when the
 * configuration it is given differs).
 */
static json_t *stamped(const char *name, const char *action, unsigned long long h,
		       const char *also)
{
	char *cmd = xasprintf("%s && mkdir -p " STAMP_DIR " && echo %016llx > " STAMP_DIR
			      "/%s%s", action, h, name, also ? also : "");
	char *unless = xasprintf("grep -qsx %016llx " STAMP_DIR "/%s", h, name);
	json_t *r = res_command(cmd, NULL, unless);
	free(cmd);
	free(unless);
	return r;
}

/* ---- what Slurm was told: each compute node's recorded definition ---------- */

#define DEF_EXPORT "definition"
#define DEF_GRES_MAX 16

/* A node's definition as prepare records it: "CPUs=64 RealMemory=522240
 * Gres=gpu:a100:2,gpu:t4:1" (no Gres= without GPUs). */
static void def_text(const struct slurm_node *d, struct buf *out)
{
	buf_printf(out, "CPUs=%d RealMemory=%lld", d->cpus, d->mem_mib);
	if (d->ngres) {
		buf_adds(out, " Gres=");
		gres_text(d, out);
	}
}

/* A recorded definition read back (from the state: checked, bounded). */
struct def_rec {
	uint64_t cpus, mem_mib;
	struct slurm_gres gres[DEF_GRES_MAX];
	size_t ngres;
};

/* "gpu:TYPE:N" into g; false unless of that form. */
static bool def_gres_parse(const char *w, size_t len, struct slurm_gres *g)
{
	char num[24];
	uint64_t n;

	if (len < 6 || strncmp(w, "gpu:", 4))
		return false;
	const char *t = w + 4, *end = w + len, *c = memchr(t, ':', (size_t)(end - t));
	size_t tl = c ? (size_t)(c - t) : 0, nl = c ? (size_t)(end - c - 1) : 0;
	if (!tl || tl >= GPU_TYPE_MAX || strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789-") < tl ||
	    !nl || nl >= sizeof(num))
		return false;
	memcpy(num, c + 1, nl);
	num[nl] = '\0';
	if (parse_u64(num, 1, 1024, &n) < 0)
		return false;
	memcpy(g->type, t, tl);
	g->type[tl] = '\0';
	g->count = (size_t)n;
	return true;
}

/* text as def_text writes it into d; false for anything else (unknown
 * words, numbers out of range, more than DEF_GRES_MAX types). */
static bool def_parse(const char *text, struct def_rec *d)
{
	char num[24];

	*d = (struct def_rec){ 0 };
	for (const char *p = text; *p;) {
		size_t w = strcspn(p, " ");
		const char *eq = memchr(p, '=', w);
		if (!eq)
			return false;
		size_t kl = (size_t)(eq - p), vl = w - kl - 1;
		const char *v = eq + 1;
		if ((kl == 4 && !strncmp(p, "CPUs", 4)) || (kl == 10 && !strncmp(p, "RealMemory", 10))) {
			if (!vl || vl >= sizeof(num))
				return false;
			memcpy(num, v, vl);
			num[vl] = '\0';
			if (parse_u64(num, 1, 1ull << 40, kl == 4 ? &d->cpus : &d->mem_mib) < 0)
				return false;
		} else if (kl == 4 && !strncmp(p, "Gres", 4)) {
			for (const char *g = v, *ge = v + vl; g < ge;) {
				size_t gl = strcspn(g, ", ");
				if (g + gl > ge)
					gl = (size_t)(ge - g);
				if (d->ngres == DEF_GRES_MAX || !def_gres_parse(g, gl, &d->gres[d->ngres]))
					return false;
				d->ngres++;
				g += gl + (g + gl < ge);
			}
		} else {
			return false;
		}
		p += w;
		p += strspn(p, " ");
	}
	return d->cpus && d->mem_mib;
}

/*
 * prepare: each compute node's definition (what its NodeName line tells
 * Slurm), recorded by apply so that a later run can compare the node's
 * facts with what Slurm was told.  A node no longer computing gets ""
 * (no definition) when one was recorded; a node without facts keeps its.
 */
static int slurm_prepare(const struct render_ctx *rc, const void *conf, struct exports *made,
			 struct kerr *e)
{
	const struct slurm_conf *s = conf;
	const struct cluster *c = rc->c;
	struct buf b;

	(void)e;
	buf_init(&b, 0);
	for (size_t i = 0; i < c->nnodes; i++) {
		const struct node *n = &c->nodes[s->order[i]];
		struct slurm_node d;
		if (!render_has_facts(rc, n))
			continue;
		if (is_compute(rc, s, n) && node_def(rc, s, n, &d, NULL)) {
			buf_reset(&b);
			def_text(&d, &b);
			exports_set(made, n->name, SLURM_STACK, DEF_EXPORT, b.s, false);
			free(d.gres);
		} else {
			const char *old = exports_get(rc->exports, n->name, SLURM_STACK, DEF_EXPORT);
			if (old && *old)
				exports_set(made, n->name, SLURM_STACK, DEF_EXPORT, "", false);
		}
	}
	buf_release(&b);
	return 0;
}

/*
 * A note when node n's facts give less than the definition recorded for it
 * (what Slurm was told): fewer GPUs of a type, CPUs or memory.  slurmd
 * registering with less than its NodeName line says makes slurmctld drain
 * the node; kiln says so first, naming what is gone.
 */
static void note_shortfall(const struct render_ctx *rc, const struct node *n,
			   struct render_out *out)
{
	const char *rec = render_recorded(rc, n->name, SLURM_STACK, DEF_EXPORT);
	struct def_rec d;
	struct buf why;

	if (!rec || !*rec || !render_has_facts(rc, n))
		return;
	if (!def_parse(rec, &d)) {
		strv_pushf(&out->notes, "%s: the recorded slurm.%s is malformed; not compared",
			   n->name, DEF_EXPORT);
		return;
	}
	const json_t *cpu = render_fact(rc, n, "cpu"), *mem = render_fact(rc, n, "memory");
	json_t *tb = json_object_get(mem, "total_bytes");
	long long threads = json_int(cpu, "threads");
	long long mib = json_is_integer(tb) ? (long long)(json_integer_value(tb) >> 20) : 0;
	struct gpu_list g;
	struct slurm_node now = { .node = n };

	gpus_of(render_fact(rc, n, "gpus"), &g);
	gres_of(&g, &now);
	free(g.v);
	buf_init(&why, 0);
	buf_adds(&why, "");
	for (size_t i = 0; i < d.ngres; i++) {
		size_t have = 0;
		for (size_t k = 0; k < now.ngres; k++)
			if (!strcmp(now.gres[k].type, d.gres[i].type))
				have = now.gres[k].count;
		if (have >= d.gres[i].count)
			continue;
		size_t gone = d.gres[i].count - have;
		buf_printf(&why, "%sfacts show %zu GPU%s (%s), slurm.conf defined gpu:%s:%zu — ",
			   why.len ? "; " : "", have, have == 1 ? "" : "s", d.gres[i].type,
			   d.gres[i].type, d.gres[i].count);
		if (gone == 1)
			buf_adds(&why, "a GPU gone");
		else
			buf_printf(&why, "%zu GPUs gone", gone);
	}
	if (threads && (uint64_t)threads < d.cpus)
		buf_printf(&why, "%sfacts show %lld CPUs, slurm.conf defined CPUs=%llu",
			   why.len ? "; " : "", threads, (unsigned long long)d.cpus);
	if (mib && (uint64_t)mib < d.mem_mib)
		buf_printf(&why, "%sfacts show %lld MiB of memory, slurm.conf defined "
			   "RealMemory=%llu", why.len ? "; " : "", mib,
			   (unsigned long long)d.mem_mib);
	if (why.len)
		strv_pushf(&out->notes, "%s: %s; Slurm would drain it", n->name, why.s);
	free(now.gres);
	buf_release(&why);
}

/* ---- phases ------------------------------------------------------------------ */

static int family_check(const struct render_ctx *rc, const struct node *n, struct kerr *e)
{
	const char *fam = os_family(render_fact(rc, n, "os"));
	if (fam && strcmp(fam, "debian"))
		return kerr_set(e, -ENOTSUP, "node '%s': stacks.slurm installs Debian-family "
				"packages; the node's os family is '%s'", n->name, fam);
	return 0;
}

/*
 * The munge key on the controller, the database password on the db node,
 * right after the packages (whose scripts make the munge and slurm users),
 * and the controller's state directory.
 */
static void render_keys(const struct render_ctx *rc, const struct slurm_conf *s,
			const struct node *n, struct render_out *out)
{
	if (is_ctl(rc, s, n)) {
		const char *watch[] = { "secret:" MUNGE_KEY };
		json_array_append_new(out->resources, res_secret(MUNGE_KEY, "munge_key",
								 MUNGE_KEY_BYTES, 0400, "munge",
								 "munge"));
		json_array_append_new(out->resources, res_service("munge", true, true, watch, 1));
	}
	if (is_db(rc, s, n))
		json_array_append_new(out->resources, res_secret(DBD_PASS, "db_password",
								 DBD_PASS_BYTES, 0600, "root",
								 "root"));
	if (is_ctl(rc, s, n))
		json_array_append_new(out->resources, res_directory(STATE_DIR, 0755, "slurm",
								    "slurm"));
}

/* Phase install: the packages each role needs. */
static int render_install(const struct render_ctx *rc, const void *conf, const struct node *n,
			  struct render_out *out, struct kerr *e)
{
	const struct slurm_conf *s = conf;
	const char *pk[8];
	size_t np = 0;
	int r;

	if (!in_slurm(rc, s, n) || !render_has_facts(rc, n))
		return 0;
	if ((r = family_check(rc, n, e)) < 0)
		return r;
	pk[np++] = "munge";
	pk[np++] = "slurm-client";
	if (is_ctl(rc, s, n))
		pk[np++] = "slurmctld";
	if (is_compute(rc, s, n))
		pk[np++] = "slurmd";
	if (is_db(rc, s, n)) {
		pk[np++] = "mariadb-server";
		pk[np++] = "slurmdbd";
	}
	/* kiln run --every: the submitting user's crontab on the login node */
	bool login = n == slurm_login_node(rc->c);
	if (login)
		pk[np++] = "cron";
	json_array_append_new(out->resources, res_package(pk, np, true));
	if (login)
		json_array_append_new(out->resources, res_service("cron", true, true, NULL, 0));
	render_keys(rc, s, n, out);
	return 0;
}

/* A secret as a node exported it: lower-case hex of at least 16 bytes, or NULL
 * (noted) when missing or of another form. */
static const char *secret_export(const struct render_ctx *rc, struct render_out *out,
				 const struct node *from, const char *name, size_t bytes)
{
	const char *v = render_export(rc, out, from->name, SLURM_STACK, name);
	if (!v)
		return NULL;
	if (strlen(v) != bytes * 2 || strspn(v, "0123456789abcdef") != bytes * 2) {
		strv_pushf(&out->needs, "%s slurm.%s (the one exported is malformed)",
			   from->name, name);
		return NULL;
	}
	return v;
}

static void config_db(const struct render_ctx *rc, const struct slurm_conf *s,
		      const struct node *n, struct render_out *out)
{
	const char *pass = secret_export(rc, out, n, "db_password", DBD_PASS_BYTES);
	const char *dbwatch[] = { "file:" DBD_CONF };

	json_array_append_new(out->resources, res_service("mariadb", true, true, NULL, 0));
	/* The password goes from its file to mysql's stdin (printf is the
	 * shell's own): never on a command line, in this resource or a result. */
	json_array_append_new(out->resources, res_command(
		"printf \"CREATE DATABASE IF NOT EXISTS " DB_NAME "; CREATE USER IF NOT EXISTS "
		"'slurm'@'localhost'; ALTER USER 'slurm'@'localhost' IDENTIFIED BY '%s'; "
		"GRANT ALL ON " DB_NAME ".* TO 'slurm'@'localhost';\" \"$(cat " DBD_PASS ")\" "
		"| mysql", NULL,
		"MYSQL_PWD=\"$(cat " DBD_PASS ")\" mysql -u slurm -e 'SELECT 1' " DB_NAME
		" >/dev/null 2>&1"));
	if (!pass)
		return;
	char *text = xasprintf(HEADER "AuthType=auth/munge\nDbdHost=%s\nDbdAddr=%s\n"
			       "SlurmUser=slurm\nStorageType=accounting_storage/mysql\n"
			       "StorageHost=localhost\nStorageUser=slurm\nStorageLoc=" DB_NAME
			       "\nStoragePass=%s\n", n->name, n->address, pass);
	json_array_append_new(out->resources,
			      res_file_secret(DBD_CONF, text, 0600, "slurm", "slurm"));
	free(text);
	json_array_append_new(out->resources, res_service("slurmdbd", true, true, dbwatch, 1));
}

/*
 * Phase config: the munge key everywhere but the controller, slurm.conf
 * and cgroup.conf on every node of the stack, gres.conf and slurmd on
 * compute nodes (restarted only when what a restart applies changed), the
 * database and slurmdbd on the db node.
 */
static int render_config(const struct render_ctx *rc, const void *conf, const struct node *n,
			 struct render_out *out, struct kerr *e)
{
	const struct slurm_conf *s = conf;
	const struct node *ctl = &rc->c->nodes[s->ctl];
	struct slurm_text t;
	struct buf gres, cg;

	note_shortfall(rc, n, out);
	if (!in_slurm(rc, s, n))
		return 0;
	if (!is_ctl(rc, s, n)) {
		const char *key = secret_export(rc, out, ctl, "munge_key", MUNGE_KEY_BYTES);
		const char *watch[] = { "file:" MUNGE_KEY };
		if (key) {
			json_array_append_new(out->resources, res_file_secret(MUNGE_KEY, key, 0400,
									      "munge", "munge"));
			json_array_append_new(out->resources,
					      res_service("munge", true, true, watch, 1));
		}
	}
	buf_init(&gres, 0);
	buf_init(&cg, 0);
	/* needs about other nodes' facts are the controller's to show */
	slurm_text_make(rc, s, &t, is_ctl(rc, s, n) ? out : NULL);
	cgroup_conf_text(s, &cg);
	json_array_append_new(out->resources, res_file(SLURM_CONF, t.all.s, 0644, "root",
						       "root"));
	json_array_append_new(out->resources, res_file(CGROUP_CONF, cg.s, 0644, "root", "root"));
	if (is_db(rc, s, n))
		config_db(rc, s, n, out);
	bool listed = false;
	for (size_t i = 0; i < t.m.n; i++)
		listed |= t.m.v[i].node == n;
	if (listed) {
		gres_conf_text(rc, n, &gres);
		json_array_append_new(out->resources, res_file(GRES_CONF, gres.s, 0644, "root",
							       "root"));
		json_array_append_new(out->resources, res_directory(SPOOL_DIR, 0755, "root",
								    "root"));
		unsigned long long h = fnv64(t.head.s, t.head.len, FNV_SEED);
		h = fnv64(gres.s, gres.len, h);
		h = fnv64(cg.s, cg.len, h);
		json_array_append_new(out->resources,
				      stamped("slurmd", "systemctl restart slurmd", h, NULL));
		json_array_append_new(out->resources, res_service("slurmd", true, true, NULL, 0));
	}
	slurm_text_release(&t);
	buf_release(&gres);
	buf_release(&cg);
	return 0;
}

/* Waits until slurmctld answers and every node named is idle, mixed or
 * allocated; the reason on stderr otherwise (the command's failure). */
static const char check_script[] =
	"#!/bin/sh\n"
	HEADER
	"# usage: slurm-check SECONDS NODE...: wait until slurmctld answers and\n"
	"# every NODE is usable (idle, mixed, allocated, completing)\n"
	"t=$1; shift\n"
	"end=$(( $(date +%s) + t ))\n"
	"while :; do\n"
	"\twhy=\n"
	"\tif ! scontrol ping 2>/dev/null | grep -q 'is UP'; then\n"
	"\t\twhy='slurmctld does not answer scontrol ping'\n"
	"\telif ! states=$(sinfo -h -N -o '%N %T %E' 2>&1); then\n"
	"\t\twhy=\"sinfo: $states\"\n"
	"\telse\n"
	"\t\tfor n in \"$@\"; do\n"
	"\t\t\tline=$(printf '%s\\n' \"$states\" | awk -v n=\"$n\" '$1 == n { print; exit }')\n"
	"\t\t\tst=$(printf '%s\\n' \"$line\" | awk '{ print $2 }')\n"
	"\t\t\tcase \"$st\" in\n"
	"\t\t\tidle|mixed|allocated|completing) ;;\n"
	"\t\t\t'') why=\"$why, $n not in sinfo\" ;;\n"
	"\t\t\t*) why=\"$why, $line\" ;;\n"
	"\t\t\tesac\n"
	"\t\tdone\n"
	"\t\twhy=${why#, }\n"
	"\tfi\n"
	"\t[ -z \"$why\" ] && exit 0\n"
	"\tif [ \"$(date +%s)\" -ge \"$end\" ]; then\n"
	"\t\techo \"slurm not ready after $t s: $why\" | cut -c1-900 >&2\n"
	"\t\texit 1\n"
	"\tfi\n"
	"\tsleep 1\n"
	"done\n";

/*
 * Phase controller: slurmctld, restarted when the part of slurm.conf only
 * a restart applies changed (the nodes, hosts, plugins), reconfigured when
 * only the rest did (partitions, scheduler parameters).  Both stamps: a
 * restart applies everything.  Neither kills a job: slurmctld keeps its
 * state in StateSaveLocation, slurmd and the jobs' slurmstepd run on.
 */
static int render_controller(const struct render_ctx *rc, const void *conf,
			     const struct node *n, struct render_out *out, struct kerr *e)
{
	const struct slurm_conf *s = conf;
	struct slurm_text t;

	if (!is_ctl(rc, s, n))
		return 0;
	slurm_text_make(rc, s, &t, NULL);
	unsigned long long hr = fnv64(t.head.s, t.head.len, FNV_SEED);
	unsigned long long hc = fnv64(t.all.s, t.all.len, FNV_SEED);
	char also[96];
	snprintf(also, sizeof(also), " && echo %016llx > " STAMP_DIR "/reconfigure", hc);

	if (s->db >= 0) {
		/* slurmdbd (started in phase config) may not listen yet: 30 s */
		char *add = xasprintf("for i in $(seq 30); do sacctmgr -n -P list cluster "
				      ">/dev/null 2>&1 && break; sleep 1; done; "
				      "sacctmgr -i add cluster %s", s->cluster_name);
		char *has = xasprintf("sacctmgr -n -P list cluster format=cluster 2>/dev/null "
				      "| grep -qx %s", s->cluster_name);
		json_array_append_new(out->resources, res_command(add, NULL, has));
		free(add);
		free(has);
	}
	json_array_append_new(out->resources,
			      stamped("slurmctld", "systemctl restart slurmctld", hr, also));
	json_array_append_new(out->resources, res_service("slurmctld", true, true, NULL, 0));
	json_array_append_new(out->resources,
			      stamped("reconfigure", "scontrol reconfigure", hc, NULL));
	json_array_append_new(out->resources, res_file(CHECK_SCRIPT, check_script, 0755, "root",
						       "root"));
	slurm_text_release(&t);
	return 0;
}

/* Phase check: the cluster answers and every compute node is usable. */
static int render_check(const struct render_ctx *rc, const void *conf, const struct node *n,
			struct render_out *out, struct kerr *e)
{
	const struct slurm_conf *s = conf;
	struct slurm_text t;
	struct buf names;

	if (!is_ctl(rc, s, n))
		return 0;
	slurm_text_make(rc, s, &t, NULL);
	buf_init(&names, 0);
	buf_adds(&names, "");
	for (size_t i = 0; i < t.m.n; i++)
		buf_printf(&names, " %s", t.m.v[i].node->name);
	char *cmd = xasprintf(CHECK_SCRIPT " %d%s", s->check_timeout, names.s);
	char *quick = xasprintf(CHECK_SCRIPT " 0%s", names.s);
	json_array_append_new(out->resources, res_command(cmd, NULL, quick));
	free(cmd);
	free(quick);
	slurm_text_release(&t);
	buf_release(&names);
	return 0;
}

static const struct stack_phase slurm_phases[] = {
	{ "install", render_install },
	{ "config", render_config },
	{ "controller", render_controller },
	{ "check", render_check },
};

static const char *const slurm_secrets[] = { "munge_key", "db_password", NULL };

/* ---- what kiln run needs ---------------------------------------------------- */

const struct node *slurm_login_node(const struct cluster *c)
{
	const struct slurm_conf *s = stack_conf(c, &stack_slurm);

	if (!s)
		return NULL;
	for (size_t i = 0; i < c->nnodes; i++)
		if (has_role(&c->nodes[s->order[i]], ROLE_LOGIN))
			return &c->nodes[s->order[i]];
	return &c->nodes[s->ctl];
}

/*
 * The compute nodes as slurm.conf tells Slurm: the same structured list
 * the NodeName and PartitionName lines are written from (one source for
 * what Slurm is told and what kiln run checks against).
 */
size_t slurm_jobs_nodes(const struct render_ctx *rc0, struct jobs_node **out)
{
	struct render_ctx rc = *rc0;
	const struct slurm_conf *s = stack_conf(rc.c, &stack_slurm);
	struct slurm_text t;
	struct jobs_node *v;

	*out = NULL;
	if (!s)
		return 0;
	rc.stack = &stack_slurm;
	slurm_text_make(&rc, s, &t, NULL);
	v = xcalloc(t.m.n + 1, sizeof(*v));
	for (size_t i = 0; i < t.m.n; i++) {
		const struct slurm_node *d = &t.m.v[i];
		struct jobs_node *j = &v[i];
		j->name = xstrdup(d->node->name);
		j->cpus = d->cpus;
		j->mem_mb = d->mem_mib;
		for (size_t k = 0; k < d->ngres && j->ngpus < JOBS_GPU_TYPES_MAX; k++) {
			j->gpus[j->ngpus].type = xstrdup(d->gres[k].type);
			j->gpus[j->ngpus++].count = (int)d->gres[k].count;
		}
	}
	for (size_t p = 0; p < t.parts.n; p++)
		for (size_t k = 0; k < t.parts.v[p].n; k++)
			strv_push(&v[t.parts.v[p].nodes[k]].partitions, t.parts.v[p].name);
	size_t n = t.m.n;
	slurm_text_release(&t);
	*out = v;
	return n;
}

const struct stack_type stack_slurm = {
	.name = SLURM_STACK,
	.summary = "a Slurm cluster from roles and facts: munge, slurmctld, slurmd, "
		   "slurmdbd with MariaDB, GPUs as typed Gres",
	.parse = slurm_parse,
	.free = slurm_free,
	.prepare = slurm_prepare,
	.phases = slurm_phases,
	.nphases = ARRAY_SIZE(slurm_phases),
	.secret_exports = slurm_secrets,
	.facts = (const char *const[]){ "os", "cpu", "memory", "numa", "gpus", NULL },
};
