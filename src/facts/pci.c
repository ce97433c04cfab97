/* PCI devices from /sys/bus/pci/devices, and the GPUs among them. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Lower-case a sysfs hex attribute ("0x10DE" -> "0x10de") into JSON, or null. */
static json_t *hex_attr(const struct fx *x, const char *slot, const char *attr)
{
	char *s = fx_readf(x, "/sys/bus/pci/devices/%s/%s", slot, attr);

	if (!s)
		return json_null();
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return fx_jstr_take(s);
}

/* facts.pci[]: every function in /sys/bus/pci/devices, ids as the kernel prints them. */
void fx_collect_pci(const struct fx *x, json_t *facts)
{
	struct strv slots = STRV_INIT;
	json_t *arr = json_array();

	fx_list(x, "/sys/bus/pci/devices", &slots);
	for (size_t i = 0; i < slots.n; i++) {
		const char *s = slots.v[i];
		char norm[32];
		if (!fx_pci_slot_norm(s, norm, sizeof(norm)))
			continue;
		json_t *o = json_object();
		char *p = xasprintf("/sys/bus/pci/devices/%s/numa_node", s);
		int64_t numa = -1;
		int r = fx_read_i64(x, p, &numa);
		free(p);
		p = xasprintf("/sys/bus/pci/devices/%s/driver", s);
		json_object_set_new(o, "slot", json_string(norm));
		json_object_set_new(o, "class", hex_attr(x, s, "class"));
		json_object_set_new(o, "vendor_id", hex_attr(x, s, "vendor"));
		json_object_set_new(o, "device_id", hex_attr(x, s, "device"));
		json_object_set_new(o, "subsystem_vendor_id", hex_attr(x, s, "subsystem_vendor"));
		json_object_set_new(o, "subsystem_device_id", hex_attr(x, s, "subsystem_device"));
		json_object_set_new(o, "driver", fx_jstr_take(fx_link_base(x, p)));
		json_object_set_new(o, "numa_node", fx_jint(r < 0 || numa < 0 ? -1 : 0, numa));
		free(p);
		json_array_append_new(arr, o);
	}
	json_object_set_new(facts, "pci", arr);
	strv_release(&slots);
}

/* GPU vendor for a display-class PCI function, or NULL if it is not a GPU we count. */
static const char *gpu_vendor(const char *class, const char *vendor)
{
	if (!class || !vendor || strlen(class) != 8)
		return NULL;
	/* 0x0300 VGA, 0x0302 3D controller, 0x0380 other display controller */
	if (strncmp(class, "0x0300", 6) && strncmp(class, "0x0302", 6) &&
	    strncmp(class, "0x0380", 6))
		return NULL;
	if (!strcmp(vendor, "0x10de"))
		return "nvidia";
	if (!strcmp(vendor, "0x1002"))
		return "amd";
	return NULL;
}

/* The value after "Key:" in a /proc/driver/nvidia "information" text, or NULL. */
static char *info_get(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *l = text; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, key, kl) || l[kl] != ':')
			continue;
		const char *e = strchr(l, '\n');
		char *v = e ? xstrndup(l + kl + 1, (size_t)(e - l - kl - 1)) : xstrdup(l + kl + 1);
		str_trim(v);
		if (!*v) {
			free(v);
			return NULL;
		}
		return v;
	}
	return NULL;
}

/*
 * The NVIDIA kernel driver version from /proc/driver/nvidia/version: the
 * first dotted number on the "NVRM version:" line (the wording around it
 * differs between the proprietary and the open kernel modules).
 */
static char *nvidia_proc_version(const struct fx *x)
{
	char *t = fx_read_cap(x, "/proc/driver/nvidia/version", FX_SMALL_CAP);
	char *nl, *res = NULL, *save = NULL;

	if (!t || !str_starts(t, "NVRM version:"))
		goto out;
	if ((nl = strchr(t, '\n')))
		*nl = '\0';
	for (char *w = strtok_r(t + 13, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		size_t dots = 0, i;
		for (i = 0; w[i] && (isdigit((unsigned char)w[i]) || w[i] == '.'); i++)
			dots += w[i] == '.';
		if (!w[i] && dots && isdigit((unsigned char)w[0])) {
			res = xstrdup(w);
			break;
		}
	}
out:
	free(t);
	return res;
}

/* Merge model and uuid from /proc/driver/nvidia/gpus/<slot>/information. */
static void nvidia_proc_info(const struct fx *x, const char *slot, json_t *g,
			     const char *version)
{
	char *p = xasprintf("/proc/driver/nvidia/gpus/%s/information", slot);
	char *t = fx_read_cap(x, p, FX_SMALL_CAP);

	free(p);
	if (version)
		json_object_set_new(g, "driver_version", json_string(version));
	if (!t)
		return;
	char *model = info_get(t, "Model");
	char *uuid = info_get(t, "GPU UUID");
	if (model)
		json_object_set_new(g, "model", fx_jstr(model));
	if (uuid)
		json_object_set_new(g, "uuid", fx_jstr(uuid));
	free(model);
	free(uuid);
	free(t);
}

/* Merge what amdgpu exposes in sysfs: VRAM size and the FRU product name. */
static void amd_sysfs_info(const struct fx *x, const char *slot, json_t *g)
{
	char *p = xasprintf("/sys/bus/pci/devices/%s/mem_info_vram_total", slot);
	int64_t v;
	char *name;

	if (fx_read_i64(x, p, &v) == 0 && v > 0)
		json_object_set_new(g, "memory_bytes", json_integer(v));
	free(p);
	if ((name = fx_readf(x, "/sys/bus/pci/devices/%s/product_name", slot)))
		json_object_set_new(g, "model", fx_jstr(name));
	free(name);
}

/*
 * facts.gpus[]: the NVIDIA and AMD display-class functions among
 * facts.pci[], with what the kernel drivers tell without vendor tools.
 */
void fx_collect_gpus(const struct fx *x, json_t *facts)
{
	json_t *arr = json_array(), *d;
	char *nvver = nvidia_proc_version(x);
	size_t i;

	json_array_foreach(json_object_get(facts, "pci"), i, d) {
		const char *vendor = gpu_vendor(json_string_value(json_object_get(d, "class")),
						json_string_value(json_object_get(d, "vendor_id")));
		if (!vendor)
			continue;
		const char *slot = json_string_value(json_object_get(d, "slot"));
		json_t *g = json_object();
		json_object_set_new(g, "slot", json_string(slot));
		json_object_set_new(g, "vendor", json_string(vendor));
		json_object_set(g, "vendor_id", json_object_get(d, "vendor_id"));
		json_object_set(g, "device_id", json_object_get(d, "device_id"));
		json_object_set(g, "driver", json_object_get(d, "driver"));
		json_object_set(g, "numa_node", json_object_get(d, "numa_node"));
		const char *drv = json_string_value(json_object_get(d, "driver"));
		if (!strcmp(vendor, "nvidia"))   /* the version only if bound to nvidia */
			nvidia_proc_info(x, slot, g,
					 drv && !strcmp(drv, "nvidia") ? nvver : NULL);
		else
			amd_sysfs_info(x, slot, g);
		json_array_append_new(arr, g);
	}
	json_object_set_new(facts, "gpus", arr);
	free(nvver);
}
