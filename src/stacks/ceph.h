/*
 * The ceph stack's parts that tests reach (docs/ceph.md): the OSD disk
 * filter of stacks.ceph.osds, and the selection over one node's facts.
 *
 * Selection is a pure function of facts.disks[] (docs/facts.md), the
 * filter and this cluster's fsid: every disk is either taken (an OSD) or
 * passed over with every reason, like `ceph orch device ls --wide`.  The
 * rejection rules are ceph-volume's availability rules: never a disk that
 * is mounted, swap, partitioned, held by LVM/dm/md (facts' in_use), that
 * carries a partition table, a filesystem, an LVM or RAID signature, or
 * another cluster's BlueStore label, that is under 5 GiB, removable or
 * read-only.  A disk with this cluster's BlueStore label stays an OSD.
 *
 * The record: which OSD each disk of a node held when facts last showed
 * it (the stack's export "osds", made before the phases run), so that an
 * OSD whose disk vanished is reported and not made anew on another disk.
 */
#ifndef KILN_STACKS_CEPH_H
#define KILN_STACKS_CEPH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

#define CEPH_MIN_DISK (5ull << 30)   /* ceph-volume's smallest device */

struct ceph_osd_filter {
	int rotational;          /* -1 any, 0 SSD only, 1 HDD only */
	uint64_t size_min, size_max;   /* bytes; 0 = no bound */
	char *size_text;         /* as written, for reasons ("10G:") */
	char *model, *vendor;    /* prefixes, or NULL */
	int limit;               /* per node; 0 = none */
	struct strv paths;       /* "/dev/NAME": only these; empty = any */
};

struct ceph_disk_choice {
	char *name;              /* "sda" */
	uint64_t size;
	bool osd;                /* taken */
	bool ours;               /* already an OSD of this cluster (its label) */
	char *reason;            /* why passed over ("; "-joined); NULL when taken */
};

struct ceph_disks {
	struct ceph_disk_choice *v;
	size_t n;
	size_t nosd;
	struct strv missing;     /* osds.paths no disk matched */
};

/*
 * Choose among disks (facts.disks, may be NULL) under f.  fsid: this
 * cluster's (NULL: not made yet, so every BlueStore label is another's).
 * gone: OSDs of the node whose disk vanished; they count against
 * osds.limit, so no other disk takes their place.
 */
void ceph_select_disks(const struct ceph_osd_filter *f, const json_t *disks, const char *fsid,
		       size_t gone, struct ceph_disks *out);
void ceph_disks_release(struct ceph_disks *d);
/*
 * One node's record of OSDs ("3:sdb 4:sda": ID:NAME words by id) from the
 * record so far (rec, NULL: none; malformed words are dropped) and the
 * node's facts.disks now.  Every disk with this cluster's label (fsid)
 * and an OSD id is recorded under its name.  An OSD recorded before whose
 * disk facts do not show stays in the record and is appended to gone as
 * "osd.ID on /dev/NAME" (its disk vanished); it is forgotten when a disk
 * of that name is back without this cluster's label (a new disk in its
 * place).  Pure; the same inputs give the same record, and the record of a
 * record is itself.  Returns the record (caller frees; "" when empty).
 */
char *ceph_osd_record(const char *rec, const json_t *disks, const char *fsid, struct strv *gone);
/* "8.0 GiB" into buf. */
const char *ceph_size_text(uint64_t bytes, char *buf, size_t n);
/* "10G", "1.5T", "500M" (powers of 1024; a trailing "B"/"iB" allowed) -> bytes. */
bool ceph_parse_size(const char *s, uint64_t *out);
/* "A:B", "A:", ":B" or "A" (exactly) into f's bounds. */
bool ceph_parse_size_range(const char *s, struct ceph_osd_filter *f);

struct cluster;
/* The monitors of stacks.ceph, in name order; NULL without stacks.ceph. */
const struct strv *ceph_monitors(const struct cluster *c);

#endif
