/*
 * GPU details from NVML, or from nvidia-smi when NVML cannot be loaded.
 * NVML is loaded at run time with dlopen so that neither kiln
 * nor kiln-agent needs NVIDIA's headers or libraries to build or run.  The
 * few types below are declared here after NVML's public ABI (nvml.h).
 */
#include "facts.h"
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

typedef int nvml_return;                      /* nvmlReturn_t; 0 = NVML_SUCCESS */
typedef struct nvml_device_st *nvml_device;   /* nvmlDevice_t (opaque) */

struct nvml_pci_info {                        /* nvmlPciInfo_t, as filled by _v3 */
	char bus_id_legacy[16];
	unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
	char bus_id[32];
};

struct nvml_memory {                          /* nvmlMemory_t */
	unsigned long long total, free, used;
};

struct nvml {
	void *lib;
	nvml_return (*init)(void);
	nvml_return (*shutdown)(void);
	nvml_return (*count)(unsigned int *);
	nvml_return (*handle)(unsigned int, nvml_device *);
	nvml_return (*name)(nvml_device, char *, unsigned int);
	nvml_return (*memory)(nvml_device, struct nvml_memory *);
	nvml_return (*pci)(nvml_device, struct nvml_pci_info *);
	nvml_return (*uuid)(nvml_device, char *, unsigned int);
	nvml_return (*driver)(char *, unsigned int);
};

/* Look up the first of two symbol names that the library has. */
static void *sym(void *lib, const char *a, const char *b)
{
	void *p = dlsym(lib, a);

	return p || !b ? p : dlsym(lib, b);
}

/* Load the library and resolve every entry point; -ENOENT if any is missing. */
static int nvml_open(struct nvml *n, const char *path, struct kerr *e)
{
	memset(n, 0, sizeof(*n));
	n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!n->lib) {
		const char *why = dlerror();
		return kerr_set(e, -ENOENT, "nvml: cannot load '%s': %s", path, why ? why : "?");
	}
	*(void **)&n->init = sym(n->lib, "nvmlInit_v2", "nvmlInit");
	*(void **)&n->shutdown = sym(n->lib, "nvmlShutdown", NULL);
	*(void **)&n->count = sym(n->lib, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
	*(void **)&n->handle = sym(n->lib, "nvmlDeviceGetHandleByIndex_v2",
				   "nvmlDeviceGetHandleByIndex");
	*(void **)&n->name = sym(n->lib, "nvmlDeviceGetName", NULL);
	*(void **)&n->memory = sym(n->lib, "nvmlDeviceGetMemoryInfo", NULL);
	*(void **)&n->pci = sym(n->lib, "nvmlDeviceGetPciInfo_v3", NULL);
	*(void **)&n->uuid = sym(n->lib, "nvmlDeviceGetUUID", NULL);
	*(void **)&n->driver = sym(n->lib, "nvmlSystemGetDriverVersion", NULL);
	if (!n->init || !n->shutdown || !n->count || !n->handle || !n->name ||
	    !n->memory || !n->pci || !n->uuid || !n->driver) {
		dlclose(n->lib);
		n->lib = NULL;
		return kerr_set(e, -ENOENT, "nvml: '%s' lacks an entry point kiln needs", path);
	}
	return 0;
}

/* The facts.gpus[] entry with this slot, or NULL. */
static json_t *gpu_by_slot(json_t *facts, const char *slot)
{
	json_t *g;
	size_t i;

	json_array_foreach(json_object_get(facts, "gpus"), i, g) {
		const char *s = json_string_value(json_object_get(g, "slot"));
		if (s && !strcmp(s, slot))
			return g;
	}
	return NULL;
}

/* See facts.h: load, initialise, merge per bus id, shut down, unload. */
int facts_merge_nvml(json_t *facts, const char *path, struct kerr *e)
{
	struct nvml n;
	char drv[96] = "", buf[128];
	unsigned int count = 0;
	int r, merged = 0;

	if ((r = nvml_open(&n, path, e)) < 0)
		return r;
	if ((r = n.init()) != 0) {
		r = kerr_set(e, -EIO, "nvml: nvmlInit failed (error %d)", r);
		goto out_close;
	}
	if (n.driver(drv, sizeof(drv)) != 0)
		drv[0] = '\0';
	drv[sizeof(drv) - 1] = '\0';
	if ((r = n.count(&count)) != 0) {
		r = kerr_set(e, -EIO, "nvml: nvmlDeviceGetCount failed (error %d)", r);
		goto out_shutdown;
	}
	for (unsigned int i = 0; i < count && i < 1024; i++) {
		struct nvml_pci_info pci;
		struct nvml_memory mem;
		nvml_device d;
		char slot[32];
		json_t *g;

		memset(&pci, 0, sizeof(pci));
		if (n.handle(i, &d) != 0 || n.pci(d, &pci) != 0)
			continue;
		pci.bus_id[sizeof(pci.bus_id) - 1] = '\0';
		if (!fx_pci_slot_norm(pci.bus_id, slot, sizeof(slot)) ||
		    !(g = gpu_by_slot(facts, slot)))
			continue;
		buf[sizeof(buf) - 1] = '\0';
		if (n.name(d, buf, sizeof(buf) - 1) == 0)
			json_object_set_new(g, "model", fx_jstr(buf));
		if (n.memory(d, &mem) == 0 && mem.total <= INT64_MAX)
			json_object_set_new(g, "memory_bytes", json_integer((json_int_t)mem.total));
		if (n.uuid(d, buf, sizeof(buf) - 1) == 0)
			json_object_set_new(g, "uuid", fx_jstr(buf));
		if (drv[0])
			json_object_set_new(g, "driver_version", fx_jstr(drv));
		merged++;
	}
	r = merged;
out_shutdown:
	n.shutdown();
out_close:
	dlclose(n.lib);
	return r;
}

/* Split a CSV line of nvidia-smi (", "-separated, no quoting) into n fields. */
static size_t smi_split(char *line, char **f, size_t n)
{
	size_t k = 0;

	while (k < n) {
		f[k++] = line;
		char *c = strchr(line, ',');
		if (!c)
			break;
		*c = '\0';
		line = c + 1;
	}
	for (size_t i = 0; i < k; i++)
		str_trim(f[i]);
	return k;
}

/* See facts.h: one nvidia-smi run, CSV merged per bus id. */
int facts_merge_nvidia_smi(json_t *facts, const char *program, struct kerr *e)
{
	char *argv[] = { (char *)program,
		"--query-gpu=pci.bus_id,name,memory.total,driver_version,uuid",
		"--format=csv,noheader,nounits", NULL };
	struct buf out;
	struct run_opts o = { .out = &out, .timeout_ms = 15000 };
	char *save = NULL;
	int r, merged = 0;

	buf_init(&out, 1024 * 1024);
	if ((r = run_ok(argv, &o, e)) < 0)
		goto out;
	for (char *l = strtok_r(out.s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *f[5], slot[32];
		uint64_t mib;
		json_t *g;
		if (smi_split(l, f, 5) != 5 || !fx_pci_slot_norm(f[0], slot, sizeof(slot)) ||
		    !(g = gpu_by_slot(facts, slot)))
			continue;
		if (*f[1])
			json_object_set_new(g, "model", fx_jstr(f[1]));
		if (parse_u64(f[2], 1, (uint64_t)INT64_MAX >> 20, &mib) == 0)
			json_object_set_new(g, "memory_bytes", json_integer((json_int_t)(mib << 20)));
		if (*f[3])
			json_object_set_new(g, "driver_version", fx_jstr(f[3]));
		if (str_starts(f[4], "GPU-"))
			json_object_set_new(g, "uuid", fx_jstr(f[4]));
		merged++;
	}
	r = merged;
out:
	buf_release(&out);
	return r;
}
