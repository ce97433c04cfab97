/*
 * NVIDIA GPUs kiln knows by PCI device id (vendor 0x10de): name,
 * architecture, legacy branch.  Data, not code; docs/nvidia.md "The table".
 *
 * Source: NVIDIA's supported-gpus.json, as shipped in the driver packages
 * (supported-gpus/supported-gpus.json: "devid", "name", "legacybranch",
 * "features" with "kernelopen").  The copy read is a recent (590-series:
 * Maxwell, Pascal and Volta rows carry "legacybranch": "580.xx") file kept
 * in the public repository megvadulthangya/nvidia-driver-assistant, path
 * supported-gpus/supported-gpus.json, commit
 * 0b88897252662a364468f5ba6b68b35082164742; read 2026-12-02.  It names no
 * driver version inside.
 *
 * Provenance per row (last column's comment):
 *   J  read from that file: id, name, legacy branch, features.
 *   P  the id and board from pci.ids (Debian pciutils, 2023.04.10); the
 *      name as NVML reports it; the legacy branch is the one the file gives
 *      every row of that architecture (Kepler rows: "470.xx", Maxwell rows:
 *      "580.xx", read in the same file).
 * scripts/nvidia-gpus.py prints these rows from any driver's
 * supported-gpus.json, to re-check or extend the table (docs/nvidia.md).
 *
 * The file's "kernelopen" feature is not copied: it also marks Maxwell,
 * Pascal and Volta rows (which have no GSP, so no open modules); kiln takes
 * open-module support from the architecture (Turing and newer), and the
 * file agrees for every Turing-and-newer row read.  Blackwell rows lack
 * the file's "gsp_proprietary_supported": they need the open modules.
 *
 * Sorted by device id (nv_gpu_find is a binary search; test_nvidia checks
 * the order).
 */
#include "nvidia.h"

#include <stdlib.h>

const struct nv_gpu nv_gpus[] = {
	/* Kepler: 470 legacy */
	{ 0x1021, "Tesla K20Xm",                         NV_KEPLER,    470 }, /* P */
	{ 0x1022, "Tesla K20c",                          NV_KEPLER,    470 }, /* P */
	{ 0x1023, "Tesla K40m",                          NV_KEPLER,    470 }, /* P */
	{ 0x1024, "Tesla K40c",                          NV_KEPLER,    470 }, /* P */
	{ 0x1028, "Tesla K20m",                          NV_KEPLER,    470 }, /* P */
	{ 0x102D, "Tesla K80",                           NV_KEPLER,    470 }, /* P */
	/* Maxwell, Pascal, Volta: 580 legacy */
	{ 0x13F2, "Tesla M60",                           NV_MAXWELL,   580 }, /* P */
	{ 0x13F3, "Tesla M6",                            NV_MAXWELL,   580 }, /* P */
	{ 0x15F7, "Tesla P100-PCIE-12GB",                NV_PASCAL,    580 }, /* P */
	{ 0x15F8, "Tesla P100-PCIE-16GB",                NV_PASCAL,    580 }, /* P */
	{ 0x15F9, "Tesla P100-SXM2-16GB",                NV_PASCAL,    580 }, /* P */
	{ 0x17FD, "Tesla M40",                           NV_MAXWELL,   580 }, /* P */
	{ 0x1B38, "Tesla P40",                           NV_PASCAL,    580 }, /* P */
	{ 0x1BB3, "Tesla P4",                            NV_PASCAL,    580 }, /* P */
	{ 0x1DB1, "Tesla V100-SXM2-16GB",                NV_VOLTA,     580 }, /* P */
	{ 0x1DB4, "Tesla V100-PCIE-16GB",                NV_VOLTA,     580 }, /* P */
	{ 0x1DB5, "Tesla V100-SXM2-32GB",                NV_VOLTA,     580 }, /* P */
	{ 0x1DB6, "Tesla V100-PCIE-32GB",                NV_VOLTA,     580 }, /* P */
	{ 0x1DF6, "Tesla V100S-PCIE-32GB",               NV_VOLTA,     580 }, /* P */
	/* Turing */
	{ 0x1E30, "Quadro RTX 6000",                     NV_TURING,    0 },   /* P */
	{ 0x1EB0, "Quadro RTX 5000",                     NV_TURING,    0 },   /* J */
	{ 0x1EB1, "Quadro RTX 4000",                     NV_TURING,    0 },   /* J */
	{ 0x1EB8, "Tesla T4",                            NV_TURING,    0 },   /* J */
	{ 0x1ED0, "NVIDIA GeForce RTX 2080",             NV_TURING,    0 },   /* J */
	{ 0x1F82, "NVIDIA GeForce GTX 1650",             NV_TURING,    0 },   /* J */
	/* Ampere */
	{ 0x20B0, "NVIDIA A100-SXM4-40GB",               NV_AMPERE,    0 },   /* P */
	{ 0x20B2, "NVIDIA A100-SXM4-80GB",               NV_AMPERE,    0 },   /* P */
	{ 0x20B5, "NVIDIA A100 80GB PCIe",               NV_AMPERE,    0 },   /* P */
	{ 0x20B7, "NVIDIA A30",                          NV_AMPERE,    0 },   /* P */
	{ 0x20F1, "NVIDIA A100-PCIE-40GB",               NV_AMPERE,    0 },   /* P */
	{ 0x2204, "NVIDIA GeForce RTX 3090",             NV_AMPERE,    0 },   /* P */
	{ 0x2230, "NVIDIA RTX A6000",                    NV_AMPERE,    0 },   /* P */
	{ 0x2235, "NVIDIA A40",                          NV_AMPERE,    0 },   /* P */
	{ 0x2236, "NVIDIA A10",                          NV_AMPERE,    0 },   /* P */
	/* Hopper */
	{ 0x2322, "NVIDIA H800 PCIe",                    NV_HOPPER,    0 },   /* P */
	{ 0x2324, "NVIDIA H800",                         NV_HOPPER,    0 },   /* P */
	{ 0x2330, "NVIDIA H100 80GB HBM3",               NV_HOPPER,    0 },   /* P */
	{ 0x2331, "NVIDIA H100 PCIe",                    NV_HOPPER,    0 },   /* P */
	{ 0x2339, "NVIDIA H100",                         NV_HOPPER,    0 },   /* P */
	/* Ampere (GA107) */
	{ 0x2582, "NVIDIA GeForce RTX 3050",             NV_AMPERE,    0 },   /* J */
	/* Ada Lovelace */
	{ 0x2684, "NVIDIA GeForce RTX 4090",             NV_ADA,       0 },   /* J */
	{ 0x2685, "NVIDIA GeForce RTX 4090 D",           NV_ADA,       0 },   /* J */
	{ 0x26B1, "NVIDIA RTX 6000 Ada Generation",      NV_ADA,       0 },   /* J */
	{ 0x26B5, "NVIDIA L40",                          NV_ADA,       0 },   /* J */
	{ 0x26B9, "NVIDIA L40S",                         NV_ADA,       0 },   /* J */
	{ 0x26BA, "NVIDIA L20",                          NV_ADA,       0 },   /* J */
	{ 0x27B8, "NVIDIA L4",                           NV_ADA,       0 },   /* P */
	/* Blackwell */
	{ 0x2901, "NVIDIA B200",                         NV_BLACKWELL, 0 },   /* J */
	{ 0x2909, "NVIDIA B200",                         NV_BLACKWELL, 0 },   /* J */
	{ 0x2941, "NVIDIA GB200",                        NV_BLACKWELL, 0 },   /* J */
	{ 0x2B85, "NVIDIA GeForce RTX 5090",             NV_BLACKWELL, 0 },   /* J */
	{ 0x2BB5, "NVIDIA RTX PRO 6000 Blackwell Server Edition", NV_BLACKWELL, 0 }, /* J */
	{ 0x2C02, "NVIDIA GeForce RTX 5080",             NV_BLACKWELL, 0 },   /* J */
	{ 0x2E12, "NVIDIA GB10",                         NV_BLACKWELL, 0 },   /* J */
	{ 0x3182, "NVIDIA B300 SXM6 AC",                 NV_BLACKWELL, 0 },   /* J */
	{ 0x31C2, "NVIDIA GB300",                        NV_BLACKWELL, 0 },   /* J */
};
const size_t nv_gpus_n = sizeof(nv_gpus) / sizeof(nv_gpus[0]);

/*
 * Device-id ranges per chip, for GPUs the table lacks.  The chip of each
 * range is the one pci.ids (2023.04.10) names for the ids in it (GK…, GM…,
 * GP…, GV…, TU…, GA…, GH…, AD…); Blackwell's from NVIDIA's gpu-admin-tools
 * (gpu/devid_chips.py: GB100 0x2900-0x297F … GB207 0x2D80-0x2DFF) and the
 * GB10/B300/GB300 rows of supported-gpus.json.  0x1200-0x127F is Fermi
 * (GF11x), not Kepler, and stays unknown.
 */
static const struct {
	uint16_t lo, hi;
	enum nv_arch arch;
} arch_ranges[] = {
	{ 0x0FC0, 0x0FFF, NV_KEPLER },     /* GK107 */
	{ 0x1000, 0x103F, NV_KEPLER },     /* GK110, GK180, GK210 */
	{ 0x1180, 0x11FF, NV_KEPLER },     /* GK104, GK106 */
	{ 0x1280, 0x12BF, NV_KEPLER },     /* GK208 */
	{ 0x1340, 0x13BF, NV_MAXWELL },    /* GM107, GM108 */
	{ 0x13C0, 0x13FF, NV_MAXWELL },    /* GM204 */
	{ 0x1400, 0x143F, NV_MAXWELL },    /* GM206 */
	{ 0x15F0, 0x15FF, NV_PASCAL },     /* GP100 */
	{ 0x17C0, 0x17FF, NV_MAXWELL },    /* GM200 */
	{ 0x1B00, 0x1D3F, NV_PASCAL },     /* GP102 .. GP108 */
	{ 0x1D80, 0x1DFF, NV_VOLTA },      /* GV100 */
	{ 0x1E00, 0x1FFF, NV_TURING },     /* TU102, TU104, TU106, TU117 */
	{ 0x2080, 0x20FF, NV_AMPERE },     /* GA100 */
	{ 0x2180, 0x21FF, NV_TURING },     /* TU116 */
	{ 0x2200, 0x22FF, NV_AMPERE },     /* GA102 */
	{ 0x2300, 0x237F, NV_HOPPER },     /* GH100 */
	{ 0x2400, 0x25FF, NV_AMPERE },     /* GA103, GA104, GA106, GA107 */
	{ 0x2680, 0x28FF, NV_ADA },        /* AD102 .. AD107 */
	{ 0x2900, 0x29FF, NV_BLACKWELL },  /* GB100, GB102 */
	{ 0x2B80, 0x2FFF, NV_BLACKWELL },  /* GB202 .. GB207, GB10 */
	{ 0x3180, 0x31FF, NV_BLACKWELL },  /* B300, GB300 */
};

static int cmp_device(const void *key, const void *row)
{
	unsigned k = *(const unsigned *)key;
	unsigned d = ((const struct nv_gpu *)row)->device;
	return k < d ? -1 : k > d;
}

const struct nv_gpu *nv_gpu_find(unsigned device)
{
	return bsearch(&device, nv_gpus, nv_gpus_n, sizeof(nv_gpus[0]), cmp_device);
}

enum nv_arch nv_arch_of_device(unsigned device)
{
	const struct nv_gpu *g = nv_gpu_find(device);

	if (g)
		return g->arch;
	for (size_t i = 0; i < sizeof(arch_ranges) / sizeof(arch_ranges[0]); i++)
		if (device >= arch_ranges[i].lo && device <= arch_ranges[i].hi)
			return arch_ranges[i].arch;
	return NV_ARCH_UNKNOWN;
}

const char *nv_arch_name(enum nv_arch a)
{
	static const char *const names[] = {
		[NV_ARCH_UNKNOWN] = "unknown", [NV_KEPLER] = "Kepler",
		[NV_MAXWELL] = "Maxwell",      [NV_PASCAL] = "Pascal",
		[NV_VOLTA] = "Volta",          [NV_TURING] = "Turing",
		[NV_AMPERE] = "Ampere",        [NV_HOPPER] = "Hopper",
		[NV_ADA] = "Ada",              [NV_BLACKWELL] = "Blackwell",
	};
	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "unknown";
}

/* Kepler's last branch is 470; Maxwell, Pascal and Volta's 580 (the
 * legacybranch of every such row in supported-gpus.json). */
unsigned nv_arch_legacy(enum nv_arch a)
{
	switch (a) {
	case NV_KEPLER:
		return 470;
	case NV_MAXWELL:
	case NV_PASCAL:
	case NV_VOLTA:
		return 580;
	default:
		return 0;
	}
}

/* The first production branch per architecture, from NVIDIA's data center
 * driver release notes: R525 for Hopper and Ada, R570 for Blackwell.  Older
 * architectures predate every branch kiln would install. */
unsigned nv_arch_since(enum nv_arch a)
{
	switch (a) {
	case NV_HOPPER:
	case NV_ADA:
		return 525;
	case NV_BLACKWELL:
		return 570;
	default:
		return 0;
	}
}

bool nv_arch_has_open(enum nv_arch a)
{
	return a >= NV_TURING;
}

bool nv_arch_needs_open(enum nv_arch a)
{
	return a >= NV_BLACKWELL;
}
