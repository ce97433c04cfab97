/* facts_collect(): host, OS, kernel, CPU, memory, NUMA, DMI, init, swap. */
#include "facts.h"
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

/* ---- os-release ------------------------------------------------------ */

/* Unquote an os-release value in place (shell-like: "..." with \ escapes, '...'). */
static char *osrel_unquote(char *v)
{
	char *w = v, *p = v;
	char q = 0;

	if (*p == '"' || *p == '\'')
		q = *p++;
	while (*p && *p != q) {
		if (q == '"' && p[0] == '\\' && p[1])
			p++;
		*w++ = *p++;
	}
	*w = '\0';
	return v;
}

/* Return a new copy of KEY's value in an os-release text, or NULL. */
static char *osrel_get(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		while (*l == ' ' || *l == '\t')
			l++;
		if (strncmp(l, key, kl) || l[kl] != '=')
			continue;
		const char *end = strchr(l, '\n');
		char *v = end ? xstrndup(l + kl + 1, (size_t)(end - l - kl - 1))
			      : xstrdup(l + kl + 1);
		str_trim(v);
		osrel_unquote(v);
		if (!*v) {
			free(v);
			return NULL;
		}
		return v;
	}
	return NULL;
}

/* True if the space-separated list has word. */
static bool word_in(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; p && *p;) {
		while (*p == ' ')
			p++;
		const char *e = strchr(p, ' ');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && !strncmp(p, word, n))
			return true;
		p = e;
	}
	return false;
}

/* The package family the stacks select on: debian, redhat, or the id itself. */
static const char *os_family(const char *id, const char *like)
{
	static const char *const deb[] = { "debian", "ubuntu" };
	static const char *const rh[] = { "rhel", "fedora", "rocky", "almalinux",
					  "centos", "ol", "amzn" };

	if (!id)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(deb); i++)
		if (!strcmp(id, deb[i]))
			return "debian";
	for (size_t i = 0; i < ARRAY_SIZE(rh); i++)
		if (!strcmp(id, rh[i]))
			return "redhat";
	if (word_in(like, "debian") || word_in(like, "ubuntu"))
		return "debian";
	if (word_in(like, "rhel") || word_in(like, "fedora") || word_in(like, "centos"))
		return "redhat";
	return id;
}

/* facts.os from /etc/os-release, else /usr/lib/os-release (os-release(5)). */
static void collect_os(const struct fx *x, json_t *facts)
{
	char *t = fx_read_cap(x, "/etc/os-release", FX_SMALL_CAP);
	json_t *os = json_object();

	if (!t)
		t = fx_read_cap(x, "/usr/lib/os-release", FX_SMALL_CAP);
	char *id = t ? osrel_get(t, "ID") : NULL;
	char *like = t ? osrel_get(t, "ID_LIKE") : NULL;
	json_object_set_new(os, "id", fx_jstr(id));
	json_object_set_new(os, "id_like", fx_jstr(like));
	json_object_set_new(os, "version_id",
			    fx_jstr_take(t ? osrel_get(t, "VERSION_ID") : NULL));
	json_object_set_new(os, "pretty_name",
			    fx_jstr_take(t ? osrel_get(t, "PRETTY_NAME") : NULL));
	json_object_set_new(os, "family", fx_jstr(os_family(id, like)));
	json_object_set_new(facts, "os", os);
	free(id);
	free(like);
	free(t);
}

/* ---- host and kernel ------------------------------------------------- */

/* hostname and facts.kernel from /proc/sys/kernel; uname() fills gaps when live. */
/*
 * kernel.filesystems: what the kernel can mount, now or by loading a module
 * on the first mount — the types in /proc/filesystems, and each directory
 * NAME under /lib/modules/RELEASE/kernel/fs holding NAME.ko (compressed or
 * not).  A stack reads it to choose a kernel client (CephFS) over a FUSE
 * one.  Sorted, each once; a name that is not a short word is skipped.
 */
#define FS_MAX 256
static json_t *kernel_filesystems(const struct fx *x, const char *release)
{
	static const char *const ko[] = { ".ko", ".ko.xz", ".ko.zst", ".ko.gz" };
	char *text = fx_read_cap(x, "/proc/filesystems", FX_SMALL_CAP);
	struct strv names = { 0 }, dirs = { 0 };
	json_t *out = json_array();

	for (char *line = text, *next; line && *line && names.n < FS_MAX; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		/* "nodev\tsysfs" or "\text4": the type is the last field */
		char *t = strrchr(line, '\t');
		t = t ? t + 1 : line;
		if (str_is_ident(t, 32))
			strv_push_unique(&names, t);
	}
	free(text);
	if (release && !strchr(release, '/')) {
		char *dir = xasprintf("/lib/modules/%s/kernel/fs", release);
		fx_list(x, dir, &dirs);
		for (size_t i = 0; i < dirs.n && names.n < FS_MAX; i++) {
			const char *n = dirs.v[i];
			bool has = false;
			for (size_t k = 0; !has && k < ARRAY_SIZE(ko); k++) {
				char *f = xasprintf("%s/%s/%s%s", dir, n, n, ko[k]);
				has = fx_exists(x, f);
				free(f);
			}
			if (has && str_is_ident(n, 32))
				strv_push_unique(&names, n);
		}
		free(dir);
	}
	strv_sort(&names);
	for (size_t i = 0; i < names.n; i++)
		json_array_append_new(out, json_string(names.v[i]));
	strv_release(&names);
	strv_release(&dirs);
	return out;
}

static void collect_kernel(const struct fx *x, json_t *facts)
{
	struct utsname u;
	bool have_u = x->live && uname(&u) == 0;
	char *rel = fx_read(x, "/proc/sys/kernel/osrelease");
	char *ver = fx_read(x, "/proc/sys/kernel/version");
	char *arch = fx_read(x, "/proc/sys/kernel/arch");
	char *host = fx_read(x, "/proc/sys/kernel/hostname");
	json_t *k = json_object();

	if (!host)
		host = fx_read(x, "/etc/hostname");
	if (have_u) {
		if (!rel)
			rel = xstrdup(u.release);
		if (!ver)
			ver = xstrdup(u.version);
		if (!arch)
			arch = xstrdup(u.machine);
		if (!host)
			host = xstrdup(u.nodename);
	}
	json_object_set_new(facts, "hostname", fx_jstr_take(host));
	json_object_set_new(k, "release", fx_jstr_take(rel));
	json_object_set_new(k, "version", fx_jstr_take(ver));
	json_object_set_new(k, "machine", fx_jstr_take(arch));
	json_object_set_new(k, "filesystems", kernel_filesystems(x, json_string_value(
						json_object_get(k, "release"))));
	json_object_set_new(facts, "kernel", k);
}

/* ---- CPU ------------------------------------------------------------- */

struct cpu_count {
	struct { int64_t socket, core; } *cores;   /* distinct (physical id, core id) */
	size_t ncores, alloc_c;
	int64_t *sockets;                          /* distinct physical ids */
	size_t nsockets, alloc_s;
};

static void cpu_note(struct cpu_count *c, int64_t phys, int64_t core)
{
	size_t i;

	for (i = 0; i < c->nsockets && c->sockets[i] != phys; i++)
		;
	if (i == c->nsockets) {
		c->sockets = xgrow(c->sockets, c->nsockets + 1, &c->alloc_s, sizeof(int64_t));
		c->sockets[c->nsockets++] = phys;
	}
	if (core < 0)
		return;
	for (i = 0; i < c->ncores; i++)
		if (c->cores[i].socket == phys && c->cores[i].core == core)
			return;
	c->cores = xgrow(c->cores, c->ncores + 1, &c->alloc_c, sizeof(*c->cores));
	c->cores[c->ncores].socket = phys;
	c->cores[c->ncores++].core = core;
}

/* Value of a "key\t: value" cpuinfo line, or NULL if the line is another key. */
static const char *cpuinfo_val(const char *line, const char *key)
{
	size_t n = strlen(key);

	if (strncmp(line, key, n) || (line[n] != ' ' && line[n] != '\t' && line[n] != ':'))
		return NULL;
	const char *c = strchr(line + n, ':');
	if (!c)
		return NULL;
	c++;
	while (*c == ' ' || *c == '\t')
		c++;
	return c;
}

/*
 * Count sockets, cores and threads from /proc/cpuinfo ("physical id" and
 * "core id" per processor); when those are missing (some arm64 kernels and
 * VMs), fall back to sysfs topology, then to one socket with one core per
 * thread.
 */
static void collect_cpu(const struct fx *x, json_t *facts)
{
	char *t = fx_read_cap(x, "/proc/cpuinfo", FX_BIG_CAP);
	struct cpu_count c = { 0 };
	char *model = NULL, *save = NULL;
	int64_t threads = 0, phys = -1, core = -1;
	bool have_topo = false;
	json_t *cpu = json_object();

	for (char *l = t ? strtok_r(t, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		const char *v;
		int64_t n;
		if (cpuinfo_val(l, "processor")) {
			if (threads && phys >= 0)
				cpu_note(&c, phys, core);
			threads++;
			phys = core = -1;
		} else if ((v = cpuinfo_val(l, "physical id")) &&
			   parse_i64(v, 0, INT32_MAX, &n) == 0) {
			phys = n;
			have_topo = true;
		} else if ((v = cpuinfo_val(l, "core id")) &&
			   parse_i64(v, 0, INT32_MAX, &n) == 0) {
			core = n;
		} else if (!model && ((v = cpuinfo_val(l, "model name")) ||
				      (v = cpuinfo_val(l, "cpu model")) ||
				      (v = cpuinfo_val(l, "Model")) ||
				      (v = cpuinfo_val(l, "uarch")))) {
			model = xstrdup(v);
			str_trim(model);
		}
	}
	if (threads && phys >= 0)
		cpu_note(&c, phys, core);

	if (!have_topo) {
		/* sysfs topology: /sys/devices/system/cpu/cpuN/topology/ */
		struct strv cpus = STRV_INIT;
		int64_t seen = 0;
		fx_list(x, "/sys/devices/system/cpu", &cpus);
		for (size_t i = 0; i < cpus.n; i++) {
			int64_t p, co;
			const char *nm = cpus.v[i];
			if (!str_starts(nm, "cpu") || parse_i64(nm + 3, 0, INT32_MAX, &p) < 0)
				continue;
			char *pp = xasprintf("/sys/devices/system/cpu/%s/topology/physical_package_id", nm);
			char *cp = xasprintf("/sys/devices/system/cpu/%s/topology/core_id", nm);
			if (fx_read_i64(x, pp, &p) == 0 && fx_read_i64(x, cp, &co) == 0) {
				cpu_note(&c, p, co);
				seen++;
			}
			free(pp);
			free(cp);
		}
		strv_release(&cpus);
		if (seen) {
			have_topo = true;
			if (!threads)
				threads = seen;
		}
	}
	json_object_set_new(cpu, "model", fx_jstr_take(model));
	if (have_topo) {
		json_object_set_new(cpu, "sockets", json_integer((json_int_t)c.nsockets));
		json_object_set_new(cpu, "cores",
				    json_integer((json_int_t)(c.ncores ? c.ncores : (size_t)threads)));
	} else {
		json_object_set_new(cpu, "sockets", threads ? json_integer(1) : json_null());
		json_object_set_new(cpu, "cores", threads ? json_integer(threads) : json_null());
	}
	json_object_set_new(cpu, "threads", threads ? json_integer(threads) : json_null());
	json_object_set_new(facts, "cpu", cpu);
	free(c.cores);
	free(c.sockets);
	free(t);
}

/* ---- memory and NUMA ------------------------------------------------- */

/* Find "KEY:   N kB" in a meminfo-style text (KEY may be preceded by "Node N "). */
static int meminfo_kb(const char *text, const char *key, uint64_t *bytes)
{
	const char *p = text;
	size_t kl = strlen(key);

	while (p && (p = strstr(p, key))) {
		if ((p == text || p[-1] == ' ' || p[-1] == '\n') && p[kl] == ':') {
			char num[32];
			size_t i = 0;
			const char *q = p + kl + 1;
			while (*q == ' ' || *q == '\t')
				q++;
			while (i + 1 < sizeof(num) && *q >= '0' && *q <= '9')
				num[i++] = *q++;
			num[i] = '\0';
			uint64_t kb;
			if (parse_u64(num, 0, UINT64_MAX / 1024, &kb) < 0)
				return -EINVAL;
			*bytes = kb * 1024;
			return 0;
		}
		p += kl;
	}
	return -ENOENT;
}

/* facts.memory: MemTotal of /proc/meminfo. */
static void collect_memory(const struct fx *x, json_t *facts)
{
	char *t = fx_read_cap(x, "/proc/meminfo", FX_SMALL_CAP);
	uint64_t total = 0;
	int r = t ? meminfo_kb(t, "MemTotal", &total) : -ENOENT;
	json_t *m = json_object();

	json_object_set_new(m, "total_bytes", fx_jint(r, (int64_t)total));
	json_object_set_new(facts, "memory", m);
	free(t);
}

static int cmp_node(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
	return (x > y) - (x < y);
}

/* facts.numa[]: one entry per /sys/devices/system/node/nodeN, sorted by id. */
static void collect_numa(const struct fx *x, json_t *facts)
{
	struct strv names = STRV_INIT;
	json_t **nodes = NULL;
	size_t n = 0, alloc = 0;
	json_t *arr = json_array();

	fx_list(x, "/sys/devices/system/node", &names);
	for (size_t i = 0; i < names.n; i++) {
		int64_t id;
		if (!str_starts(names.v[i], "node") ||
		    parse_i64(names.v[i] + 4, 0, INT32_MAX, &id) < 0)
			continue;
		json_t *o = json_object();
		char *mi = fx_readf(x, "/sys/devices/system/node/%s/meminfo", names.v[i]);
		uint64_t bytes = 0;
		int r = mi ? meminfo_kb(mi, "MemTotal", &bytes) : -ENOENT;
		json_object_set_new(o, "id", json_integer(id));
		json_object_set_new(o, "cpus", fx_jstr_take(
			fx_readf(x, "/sys/devices/system/node/%s/cpulist", names.v[i])));
		json_object_set_new(o, "memory_bytes", fx_jint(r, (int64_t)bytes));
		free(mi);
		nodes = xgrow(nodes, n + 1, &alloc, sizeof(*nodes));
		nodes[n++] = o;
	}
	if (n > 1)
		qsort(nodes, n, sizeof(*nodes), cmp_node);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, nodes[i]);
	json_object_set_new(facts, "numa", arr);
	free(nodes);
	strv_release(&names);
}

/* ---- DMI, init, swaps, virtualization -------------------------------- */

/* facts.dmi: a few /sys/class/dmi/id strings (absent in most VMs and on arm64). */
static void collect_dmi(const struct fx *x, json_t *facts)
{
	static const char *const keys[] = { "sys_vendor", "product_name",
		"product_serial", "board_vendor", "board_name", "bios_version" };
	json_t *d = json_object();

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		json_object_set_new(d, keys[i], fx_jstr_take(
			fx_readf(x, "/sys/class/dmi/id/%s", keys[i])));
	json_object_set_new(facts, "dmi", d);
}

static void collect_init(const struct fx *x, json_t *facts)
{
	json_t *i = json_object();

	/* sd_booted(): systemd is PID 1 iff /run/systemd/system exists. */
	json_object_set_new(i, "systemd", json_boolean(fx_exists(x, "/run/systemd/system")));
	json_object_set_new(facts, "init", i);
}

/* facts.swaps[]: active swap areas from /proc/swaps (sizes there are KiB). */
static void collect_swaps(const struct fx *x, json_t *facts)
{
	char *t = fx_read_cap(x, "/proc/swaps", FX_SMALL_CAP);
	json_t *arr = json_array();
	char *save = NULL;
	bool header = true;

	for (char *l = t ? strtok_r(t, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		char *f[5], *s2 = NULL;
		size_t nf = 0;
		if (header) {   /* "Filename Type Size Used Priority" */
			header = false;
			continue;
		}
		for (char *w = strtok_r(l, " \t", &s2); w && nf < 5; w = strtok_r(NULL, " \t", &s2))
			f[nf++] = w;
		uint64_t kb;
		if (nf < 3 || parse_u64(f[2], 0, UINT64_MAX / 1024, &kb) < 0)
			continue;
		fx_unescape_octal(f[0]);
		json_t *o = json_object();
		json_object_set_new(o, "name", fx_jstr(f[0]));
		json_object_set_new(o, "type", fx_jstr(f[1]));
		json_object_set_new(o, "size_bytes", json_integer((json_int_t)(kb * 1024)));
		json_array_append_new(arr, o);
	}
	json_object_set_new(facts, "swaps", arr);
	free(t);
}

/*
 * A best guess at the hypervisor from DMI strings, /sys/hypervisor and the
 * CPU "hypervisor" flag: "kvm", "vmware", ..., "vm" (some hypervisor), or
 * "none".  Containers are not detected.
 */
static void collect_virt(const struct fx *x, json_t *facts)
{
	static const struct { const char *needle, *name; } dmi[] = {
		{ "KVM", "kvm" }, { "QEMU", "qemu" }, { "VMware", "vmware" },
		{ "VirtualBox", "virtualbox" }, { "innotek", "virtualbox" },
		{ "Xen", "xen" }, { "Amazon EC2", "amazon" },
		{ "Google Compute Engine", "google" }, { "Virtual Machine", "hyperv" },
		{ "OpenStack", "openstack" }, { "Bochs", "bochs" },
	};
	const char *result = NULL;
	char *vendor = fx_read(x, "/sys/class/dmi/id/sys_vendor");
	char *product = fx_read(x, "/sys/class/dmi/id/product_name");
	char *hyp = fx_read(x, "/sys/hypervisor/type");

	for (size_t i = 0; i < ARRAY_SIZE(dmi) && !result; i++)
		if ((vendor && strstr(vendor, dmi[i].needle)) ||
		    (product && strstr(product, dmi[i].needle)))
			result = dmi[i].name;
	if (!result && hyp)
		result = hyp;
	if (!result) {
		char *t = fx_read_cap(x, "/proc/cpuinfo", FX_BIG_CAP);
		if (t) {
			/* The flags line of the first processor is enough. */
			char *fl = strstr(t, "\nflags");
			char *end = fl ? strchr(fl + 1, '\n') : NULL;
			if (end)
				*end = '\0';
			if (fl && strstr(fl, " hypervisor"))
				result = "vm";
			else if (fl)
				result = "none";
			free(t);
		}
	}
	if (result)
		json_object_set_new(facts, "virtualization", json_string(result));
	free(vendor);
	free(product);
	free(hyp);
}

/* Run every collector in turn; see facts.h for the contract. */
int facts_collect(const char *root, json_t **out, struct kerr *e)
{
	struct fx x = { .root = root && *root ? root : "/" };
	struct stat st;
	json_t *facts;

	x.live = !strcmp(x.root, "/");
	*out = NULL;
	if (stat(x.root, &st) < 0)
		return kerr_set(e, -errno, "facts: root '%s': %s", x.root, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return kerr_set(e, -ENOTDIR, "facts: root '%s' is not a directory", x.root);

	facts = json_object();
	json_object_set_new(facts, "schema", json_integer(FACTS_SCHEMA));
	collect_kernel(&x, facts);
	collect_os(&x, facts);
	collect_cpu(&x, facts);
	collect_memory(&x, facts);
	collect_numa(&x, facts);
	fx_collect_pci(&x, facts);
	fx_collect_gpus(&x, facts);
	collect_swaps(&x, facts);     /* before disks, which consult swaps */
	fx_collect_disks(&x, facts);
	fx_collect_nics(&x, facts);
	collect_dmi(&x, facts);
	collect_init(&x, facts);
	collect_virt(&x, facts);
	fx_collect_wireguard(&x, facts);

	if (x.live) {
		/*
		 * GPU details from NVML when an NVIDIA GPU is present, else from
		 * nvidia-smi; neither being there is fine.
		 */
		json_t *g;
		size_t i;
		json_array_foreach(json_object_get(facts, "gpus"), i, g) {
			if (!strcmp(json_string_value(json_object_get(g, "vendor")) ?: "", "nvidia")) {
				const char *lib = getenv(FACTS_NVML_ENV);
				if (!lib || !*lib)
					lib = FACTS_NVML_DEFAULT;
				if (!strcmp(lib, "none") || facts_merge_nvml(facts, lib, NULL) < 0)
					facts_merge_nvidia_smi(facts, "nvidia-smi", NULL);
				break;
			}
		}
	}
	*out = facts;
	return 0;
}
