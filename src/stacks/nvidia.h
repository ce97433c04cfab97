/*
 * The nvidia stack's model (stacks.nvidia in the spec; docs/nvidia.md):
 * the supported-GPU table (nvidia_gpus.c), the per-node choice of driver
 * branch and kernel-module flavour, and the stack type (nvidia.c).  Tests
 * read the choice directly.
 */
#ifndef KILN_STACKS_NVIDIA_H
#define KILN_STACKS_NVIDIA_H

#include <stdbool.h>
#include <stdint.h>

#include "stacks/stacks.h"

/* GPU architectures, oldest first (the order is used: Turing and newer
 * have open kernel modules). */
enum nv_arch {
	NV_ARCH_UNKNOWN,
	NV_KEPLER,
	NV_MAXWELL,
	NV_PASCAL,
	NV_VOLTA,
	NV_TURING,
	NV_AMPERE,
	NV_HOPPER,
	NV_ADA,
	NV_BLACKWELL,
};

/* One row of the table: a PCI device id of vendor 0x10de. */
struct nv_gpu {
	uint16_t device;
	const char *name;       /* as NVIDIA's data (and NVML) names it */
	enum nv_arch arch;
	uint16_t legacy;        /* last branch that supports it; 0 = current */
};

extern const struct nv_gpu nv_gpus[];
extern const size_t nv_gpus_n;

/* The row of a device id, or NULL (binary search: nv_gpus is sorted). */
const struct nv_gpu *nv_gpu_find(unsigned device);
/* The architecture of a device id by NVIDIA's id ranges per chip, for ids
 * the table lacks; NV_ARCH_UNKNOWN outside every range. */
enum nv_arch nv_arch_of_device(unsigned device);
const char *nv_arch_name(enum nv_arch a);
/* The last branch of an architecture (Kepler 470, Maxwell..Volta 580), 0 =
 * still current. */
unsigned nv_arch_legacy(enum nv_arch a);
/* The first production branch that supports an architecture (0 = any). */
unsigned nv_arch_since(enum nv_arch a);

/* Open kernel modules need a GSP: Turing and newer.  Blackwell has no
 * proprietary ones (its rows lack "gsp_proprietary_supported"). */
bool nv_arch_has_open(enum nv_arch a);
bool nv_arch_needs_open(enum nv_arch a);

/* The first branch with open kernel modules (R515). */
#define NV_OPEN_SINCE 515
/* Distinct GPU models one node may hold. */
#define NV_MAX_MODELS 16

/* One GPU model on a node, as the choice sees it. */
struct nv_card {
	unsigned device;
	char name[72];          /* the table's, else the facts' (printable ASCII) */
	enum nv_arch arch;
	unsigned legacy, since; /* 0 = no bound */
	unsigned count;
};

/* What a node gets. */
struct nv_choice {
	struct nv_card cards[NV_MAX_MODELS];
	size_t ncards;          /* 0: no NVIDIA GPU (or no facts): nothing */
	unsigned branch;
	bool open;              /* open kernel modules */
	char note[512];         /* "node3: 10de:1eb8 Tesla T4 (Turing) -> 580, open modules" */
};

/*
 * The branch and module flavour for node n from its facts' "gpus" array
 * (NULL: no cards), as docs/nvidia.md "Rules" says; pure.  Errors name the
 * node and the card.  conf is the stack's parsed config (stack_conf()).
 */
int nvidia_choose(const void *conf, const json_t *gpus, const struct node *n,
		  struct nv_choice *out, struct kerr *e);

extern const struct stack_type stack_nvidia;

#endif
