/*
 * slurm.h — what the slurm stack (slurm.c) and its GPU type names
 * (gputype.c) offer beyond the stack table: the type of a GPU for Slurm's
 * Gres (docs/slurm.md, "GPU types"), for the stack's renders, for
 * `kiln run`'s placement check and for the unit tests.  Pure functions.
 */
#ifndef KILN_STACKS_SLURM_H
#define KILN_STACKS_SLURM_H

#include <jansson.h>
#include <stddef.h>

#define GPU_TYPE_MAX 48

/*
 * The Slurm Gres type of one GPU of facts ("gpus" entry) into out: the NVML
 * model when there is one, else the bracketed part of pci.ids's
 * device_name, normalised by the table in gputype.c ("NVIDIA
 * A100-SXM4-80GB" and "GA100 [A100 SXM4 80GB]" are both "a100-80g").  An
 * unknown name gives a deterministic slug of its words; no name at all,
 * "gpu-VENDOR-DEVICE" from the PCI ids.  Always [a-z0-9-], 1..GPU_TYPE_MAX-1.
 */
const char *gpu_type_of(const json_t *gpu, char out[GPU_TYPE_MAX]);
/* The same from a name alone (NULL or "" gives "gpu"). */
const char *gpu_type_from_name(const char *name, char out[GPU_TYPE_MAX]);

struct cluster;
struct node;
struct render_ctx;
struct jobs_node;
/* The node kiln run submits through: the first (by name) with role
 * slurm-login, else the controller; NULL without stacks.slurm. */
const struct node *slurm_login_node(const struct cluster *c);
/*
 * The compute nodes as the slurm.conf rendered from rc tells Slurm: CPUs,
 * RealMemory, Gres by type, partitions, from the same per-node list the
 * NodeName and PartitionName lines are written from; into *out (the caller
 * releases each with jobs_node_release and frees the array).  Returns the
 * count.
 */
size_t slurm_jobs_nodes(const struct render_ctx *rc, struct jobs_node **out);

#endif
