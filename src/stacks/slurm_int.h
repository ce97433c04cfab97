/*
 * Inside the slurm stack: what its spec parser (slurm_spec.c) hands the
 * renderer (slurm.c).
 */
#ifndef KILN_STACKS_SLURM_INT_H
#define KILN_STACKS_SLURM_INT_H

#include <stdbool.h>

#include "stacks.h"

#define SLURM_STACK "slurm"
#define ROLE_CTL "slurm-controller"
#define ROLE_DB "slurm-db"
#define ROLE_LOGIN "slurm-login"
#define ROLE_COMPUTE "slurm-compute"

enum part_by { PART_GROUP, PART_LABEL, PART_NODES };

struct slurm_part {
	char *name;
	enum part_by by;
	char *group;                  /* PART_GROUP */
	char *key, *value;            /* PART_LABEL: labels.KEY == VALUE */
	struct strv nodes;            /* PART_NODES */
	bool dflt;
};

struct slurm_conf {
	char *cluster_name;
	long long reserve_mib;        /* memory_reserve as MiB, or */
	int reserve_pct;              /* as a percentage (> 0) */
	bool cgroup;                  /* task/cgroup + proctrack/cgroup, else linuxproc */
	bool gpu_compute;             /* nodes with NVIDIA GPUs are compute nodes */
	bool gpu_partitions;          /* one partition per GPU type */
	int check_timeout;            /* seconds */
	char *sched_params;           /* SchedulerParameters, or NULL */
	struct slurm_part *parts;
	size_t nparts;
	size_t ctl;                   /* the controller's node index */
	long db;                      /* the db node's index, -1 = no accounting */
	size_t *order;                /* node indices in name order */
	struct mark mark;
};

static inline bool has_role(const struct node *n, const char *role)
{
	return strv_contains(&n->roles, role);
}

struct spec_parser;
struct ynode;
/* stacks.slurm into *conf (a struct slurm_conf, freed by slurm_free). */
int slurm_parse(struct spec_parser *x, const struct ynode *m, void **conf);
void slurm_free(void *conf);

#endif
