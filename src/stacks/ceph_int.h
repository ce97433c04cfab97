/*
 * Inside the ceph stack: what its spec parser (ceph_spec.c) hands the
 * renderer (ceph.c).
 */
#ifndef KILN_STACKS_CEPH_INT_H
#define KILN_STACKS_CEPH_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "ceph.h"
#include "stacks.h"

#define CEPH_STACK "ceph"
#define CEPH_ROLE "ceph-mon"

struct ceph_conf {
	char *public_network;         /* NULL: not written */
	uint64_t osd_memory_target;   /* 0: Ceph's default */
	int size;                     /* wanted replicas (3); fewer when fewer OSD hosts */
	int pg_num;                   /* per pool (32) */
	int health_timeout;           /* seconds the health phase waits (300) */
	int managers;                 /* on the first monitors by name; 0: 2, or 1 with 1 monitor */
	struct ceph_osd_filter osds;
	struct strv osd_nodes;        /* empty: every node */
	char *rbd_pool;               /* NULL: none */
	char *fs_name;                /* NULL: no CephFS */
	char *fs_mount;
	struct strv fs_nodes;         /* empty: every node */
	struct strv mons;             /* nodes with role ceph-mon, in name order */
	/* stacks.ceph.config, in spec order: section i's name and its
	 * "NAME = VALUE\n" lines */
	struct strv conf_sections;    /* "global", "osd", "osd.3", ... */
	struct strv conf_lines;
};

struct spec_parser;
struct ynode;
/* stacks.ceph into *conf (a struct ceph_conf, freed by ceph_free). */
int ceph_parse(struct spec_parser *x, const struct ynode *m, void **conf);
void ceph_free(void *conf);
/* Whether stacks.ceph.config sets option name in section sect. */
bool ceph_conf_has(const struct ceph_conf *c, const char *sect, const char *name);

#endif
