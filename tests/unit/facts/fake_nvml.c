/*
 * A stand-in for libnvidia-ml.so.1 with the entry points facts_merge_nvml()
 * uses.  It describes the four A100s of make-gpu-fixture.sh (bus ids in
 * NVML's own upper-case, 8-digit-domain form) plus one GPU the fixture does
 * not have.  FAKE_NVML_FAIL=init makes nvmlInit_v2 fail.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
	char busIdLegacy[16];
	unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
	char busId[32];
} nvmlPciInfo_t;
typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;

static const unsigned int buses[] = { 0x17, 0x31, 0xb1, 0xca, 0xdd };
static int initialised;

#define N (sizeof(buses) / sizeof(buses[0]))

nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlShutdown(void);
nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int n);
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *c);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d);
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *s, unsigned int n);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m);
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *s, unsigned int n);

/* Handles are index + 1; 0 or out of range is NVML_ERROR_INVALID_ARGUMENT (2). */
static int idx(nvmlDevice_t d)
{
	uintptr_t v = (uintptr_t)d;
	return v >= 1 && v <= N ? (int)v - 1 : -1;
}

nvmlReturn_t nvmlInit_v2(void)
{
	const char *f = getenv("FAKE_NVML_FAIL");
	if (f && !strcmp(f, "init"))
		return 9;   /* NVML_ERROR_DRIVER_NOT_LOADED */
	initialised = 1;
	return 0;
}

nvmlReturn_t nvmlShutdown(void)
{
	initialised = 0;
	return 0;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int n)
{
	if (!initialised)
		return 1;   /* NVML_ERROR_UNINITIALIZED */
	snprintf(v, n, "550.54.15");
	return 0;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *c)
{
	if (!initialised)
		return 1;
	*c = N;
	return 0;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d)
{
	if (!initialised || i >= N)
		return 2;
	*d = (nvmlDevice_t)(uintptr_t)(i + 1);
	return 0;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *s, unsigned int n)
{
	int i = idx(d);
	if (i < 0)
		return 2;
	snprintf(s, n, "NVIDIA A100-SXM4-40GB");
	return 0;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
	int i = idx(d);
	if (i < 0)
		return 2;
	m->total = 40ULL << 30;
	m->used = (unsigned long long)i << 20;
	m->free = m->total - m->used;
	return 0;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p)
{
	int i = idx(d);
	if (i < 0)
		return 2;
	memset(p, 0, sizeof(*p));
	p->domain = 0;
	p->bus = buses[i];
	p->device = 0;
	p->pciDeviceId = 0x20b010de;
	p->pciSubSystemId = 0x134f10de;
	snprintf(p->busIdLegacy, sizeof(p->busIdLegacy), "0000:%02X:00.0", buses[i]);
	snprintf(p->busId, sizeof(p->busId), "00000000:%02X:00.0", buses[i]);
	return 0;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *s, unsigned int n)
{
	int i = idx(d);
	if (i < 0)
		return 2;
	snprintf(s, n, "GPU-fa4e0000-0000-0000-0000-00000000000%d", i);
	return 0;
}
