/*
 * Internal to lab/: the in-memory lab (mirrors the state file) and the
 * host-process side (host.c: the namespaced init, exec, sshd control).
 */
#ifndef KILN_LAB_INT_H
#define KILN_LAB_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "lab.h"

/* An NVIDIA GPU model --gpus can give a host (hw.c). */
#define LAB_GPU_VENDOR 0x10de
struct lab_gpu_model {
	const char *key;           /* "a100", as in --gpus */
	unsigned device;           /* PCI device id */
	unsigned class_code;       /* 0x030200 or 0x030000 */
	unsigned subsys_vendor;    /* 0 when pci.ids names no board */
	unsigned subsys_device;
	const char *pci_name;      /* pci.ids' name for vendor:device */
};

/* A file-backed disk of one host (hw.c). */
struct lab_disk {
	char *file;                /* DIR/disks/HOST-NAME.img */
	char name[8];              /* in the host: "sda" */
	char loop[16];             /* "loop3", "" until attached */
	unsigned major, minor;     /* the loop device's number, once attached */
	uint64_t size;
	bool used;                 /* ext4 with a file, mounted in the host */
};

struct lab_host {
	char *name;            /* "node1", "bastion" */
	bool bastion;
	char *netns;           /* "<lab>-<name>" */
	char *addr;            /* address on the lab bridge */
	char *uplink;          /* bastion only: its address towards the machine */
	char *site;            /* --sites: the host's site, else NULL (sites.c) */
	bool cloud;            /* in a site after the first: on the public bridge */
	char *wan;             /* --sites, bastion only: its address on the public bridge */
	char *rt;              /* runtime dir of the host: <rt>/<name> */
	bool systemd;          /* PID 1 is the machine's systemd (else kiln-lab-init) */
	pid_t pid;             /* the host's init, in the machine's PID namespace */
	unsigned long long start;  /* its start time (field 22 of /proc/PID/stat) */
	const struct lab_gpu_model *gpu;  /* NULL: no GPUs */
	unsigned ngpus;
	struct lab_disk *disks;
	size_t ndisks;
	/* --bmc (nodes only; bmc.c): its ipmi_sim on the management network */
	char *bmc_netns;       /* "<lab>-bmc-<name>", NULL = no BMC */
	char *bmc_addr;        /* its address on the management bridge */
	pid_t bmc_pid;         /* ipmi_sim, 0 before it started */
	unsigned long long bmc_start;
	bool power_off;        /* powered off through its BMC (stays off) */
	char *bootdev;         /* boot device the BMC was last given, NULL = default */
};

struct lab {
	char *name;
	char *dir;             /* absolute */
	char *rt;              /* LAB_RUNTIME_DIR/<name> (a tmpfs) */
	char *state_path;      /* LAB_RUNTIME_DIR/<name>.json */
	char *subnet;          /* "a.b.c.d/p" as given, normalised */
	int prefix;
	bool bastion;
	char *sw_netns;        /* "<lab>-sw" */
	char *root_link;       /* veth in the machine's namespace */
	char *root_addr;       /* its address (no prefix) */
	char *unreachable;     /* route added in the machine's namespace, or NULL */
	bool rt_mounted;
	struct lab_mirror *mirror;  /* NULL = none (mirror.c) */
	struct lab_site *sites;     /* --sites, else NULL (sites.c) */
	size_t nsites;
	char *pub_link;        /* --sites with clouds: the machine's veth on the public bridge */
	char *pub_addr;        /* its address (no prefix) */
	/* --bmc: the management network (NULL without) */
	char *bmc_subnet;      /* "a.b.c.d/p": SUBNET with its second octet + 1 */
	char *bmc_netns;       /* "<lab>-mgmt": the management bridge br0 */
	char *bmc_link;        /* the machine's veth on it ("km-<lab>") */
	char *bmc_root_addr;   /* its address (.1) */
	struct lab_host *hosts;
	size_t nhosts;
};

void lab_free(struct lab *l);
struct lab_host *lab_host_find(struct lab *l, const char *name);

/* ---- labfile.c: the state file ---------------------------------------- */
/* The file in a lab's directory that says it is one (and names it). */
#define LAB_MARKER_FILE ".kiln-lab"
/* A lab name (its cluster's): [a-z0-9][a-z0-9-]*, at most LAB_NAME_MAX. */
bool lab_name_valid(const char *s);
/* The state file of the lab called name (LAB_RUNTIME_DIR/NAME.json). */
char *lab_state_path(const char *name);
/*
 * Save l to its state file (atomically); load the lab called name; open a
 * running lab by name or directory (root only).
 */
int lab_save(const struct lab *l, struct kerr *e);
int lab_load(const char *name, struct lab **out, struct kerr *e);
int lab_open(const char *name_or_dir, struct lab **out, struct kerr *e);
json_t *lab_jstr_or_null(const char *s);

/* ---- lab.c, shared with labops.c ---------------------------------------- */
#define LAB_SSHD_WAIT_MS 30000      /* a host's sshd to answer */
#define LAB_REPORT_WAIT_MS 30000    /* a starting host's init to report */
#define LAB_REBOOT_STOP_MS 20000    /* a host's init to stop */
/* A new ed25519 key pair at path (and path.pub). */
int lab_keygen(const char *path, const char *comment, struct kerr *e);
/* h's runtime directory joined with sub, as a new string. */
char *lab_host_path(const struct lab_host *h, const char *sub);

/* ---- host.c ---------------------------------------------------------- */

/*
 * Make the host's overlay upper and work dirs under h->rt/fs (upper dirs
 * take the machine directory's owner and mode) and the new root's mount
 * point.  Files the host should see (its /etc/hostname ...) go into
 * h->rt/fs/upper afterwards.
 */
int host_prepare_fs(const struct lab_host *h, struct kerr *e);
/*
 * Can hosts boot the machine's systemd here?  0, or -errno with the
 * reason in e (no /lib/systemd/systemd, no writable cgroup2 hierarchy).
 */
int host_systemd_usable(struct kerr *e);
/* Make room for nhosts more systemd hosts in the machine's inotify limit. */
int host_systemd_limits(size_t nhosts, struct kerr *e);
/* Raise the machine's IPv4 neighbour table limits for nhosts hosts talking pairwise. */
int host_neigh_limits(size_t nhosts, struct kerr *e);
/*
 * A systemd host's files in its upper /etc and /usr (never the
 * machine's): machine-id, masks of units and generators no host should
 * run, emptied .wants dirs, volatile journald, the kiln-lab-sshd unit
 * (kiln's sshd_config) enabled, policy-rc.d hidden.  No-op for tiny hosts.
 */
int host_systemd_files(const struct lab_host *h, struct kerr *e);
/*
 * Remove a systemd host's cgroup directories (deepest first), once its
 * processes are gone.  No-op for tiny hosts and when there are none.
 */
int host_cgroups_remove(const struct lab_host *h, struct kerr *e);
/*
 * Stop a host's init and every process of its network namespace: a
 * systemd host is powered off (SIGRTMIN+3, waited for up to timeout_ms,
 * then killed), a tiny one gets SIGTERM.  Its cgroups are removed; its
 * files (upper dirs, keys) stay, so host_spawn() starts it again.
 */
int host_stop(struct lab_host *h, int timeout_ms, struct kerr *e);
/*
 * Start a host's init: fork into its network namespace, unshare mount,
 * UTS and PID namespaces, build and pivot into its root filesystem, start
 * sshd.  Sets h->pid and h->start.  *report_fd receives the read end of a
 * pipe on which the init writes one line: "ok" or an error message; the
 * caller reads it with host_read_report().
 */
int host_spawn(struct lab_host *h, int *report_fd, struct kerr *e);
/*
 * Read a child's one-line setup report from fd (closed) within
 * timeout_ms: "ok", else its (sanitised) message as the error, named
 * "WHO: ..." ("no word from its WHAT" on timeout).
 */
int lab_read_report(int fd, int timeout_ms, const char *who, const char *what,
		    struct kerr *e);
/* Run an `ip` batch (one command a line) in netns (NULL = the machine's). */
int lab_ip_batch(const char *netns, const char *script, struct kerr *e);
/* In a forked child: stdin, stdout and stderr on /dev/null (-errno if it
 * cannot be opened; async-signal-safe). */
int lab_stdio_devnull(void);
/* Read a host's setup report from fd (closed) within timeout_ms. */
int host_read_report(int fd, const struct lab_host *h, int timeout_ms, struct kerr *e);
/* Is the host's init the process we started (and not a zombie)? */
bool host_alive(const struct lab_host *h);
/* Host pid of the host's listening sshd (child of its init), or 0. */
pid_t host_sshd_pid(const struct lab_host *h);
/* Wait until every host's sshd accepts on port 22 (probed inside its netns). */
int hosts_wait_sshd(struct lab_host *const *hs, size_t n,
		    int timeout_ms, struct kerr *e);
/*
 * Stop the host's sshd and every SSH session: systemd hosts by `systemctl
 * stop kiln-lab-sshd` inside, then (both kinds) kill every process of
 * the host's PID namespace named sshd; wait for it.
 */
int host_sshd_kill(const struct lab_host *h, struct kerr *e);
/* Ask the host's init (or systemd) to start sshd (no wait). */
int host_sshd_signal_start(const struct lab_host *h, struct kerr *e);
/* Kill the init and every process in netns (by name); wait until gone. */
int host_kill_netns(const char *const *netns, size_t n, const pid_t *pids,
		    const unsigned long long *starts, size_t npids, struct kerr *e);
/* Run argv in the host's namespaces with inherited stdio. */
int host_exec(const struct lab_host *h, char *const argv[], int *exit_status,
	      struct kerr *e);
/* Process start time, or 0 when the process is gone or a zombie. */
unsigned long long proc_start_time(pid_t pid);

/* ---- hw.c: GPUs and disks ------------------------------------------ */

/* The GPU model table (tests check it against pci.ids). */
const struct lab_gpu_model *lab_gpu_models(size_t *n);
/* Parse --gpus/--disks/--used-disk into l's hosts (l->dir set); no side effects. */
int hw_plan(const struct lab_opts *o, struct lab *l, struct kerr *e);
/* The host's "gpus" (returned) and "disks" (*disks) for the state file. */
json_t *hw_host_json(const struct lab_host *h, json_t **disks);
/* The reverse, from a state file's host entry. */
int hw_host_load(struct lab_host *h, const json_t *gpus, const json_t *disks,
		 struct kerr *e);
void hw_host_release(struct lab_host *h);
/*
 * Make every host's disk files (the state file must already name them)
 * and attach each to a loop device.
 */
int hw_disks_make(struct lab *l, struct kerr *e);
/* Detach the loop devices of every disk file and remove the files. */
int hw_teardown(const struct lab *l, struct kerr *e);
/* Build h->rt/hw/pci and h->rt/hw/block (after hw_disks_make). */
int hw_host_prepare(const struct lab_host *h, struct kerr *e);
/*
 * In the host's init, before pivot_root into newroot: a private /dev
 * (standard nodes, the host's GPU and disk nodes), and the read-only
 * binds of its PCI and block views over the fresh sysfs.  After pivot:
 * the used disk's mount.  No allocation; on failure why says what failed
 * and the return is -errno.
 */
int hw_init_dev(const struct lab_host *h, const char *newroot, char *why, size_t n);
int hw_init_sys(const struct lab_host *h, const char *newroot, char *why, size_t n);
int hw_init_mounts(const struct lab_host *h, char *why, size_t n);

/* ---- sites.c: --sites (docs/lab.md, Sites) ------------------------- */

#define LAB_WG_PORT 51820     /* the public endpoint's port (WireGuard's) */
#define LAB_MESH_NETWORK "10.99.0.0/24"   /* the written spec's stacks.mesh overlay */
#define LAB_SITES_RANGES 18   /* at most 16 sites, the public subnet, spare */

struct lab_site {
	char *name;
	char *subnet;          /* "a.b.c.d/p": the site's hosts */
	bool cloud;            /* false for the first site (on-prem, behind the bastion) */
};

/* How many nodes --sites asks for (the sum; *first: the first site's), checking its syntax. */
int sites_nodes(const char *spec, unsigned *n, unsigned *first, struct kerr *e);
/*
 * Group l's planned hosts (bastion first, then node1..N) into the sites of
 * spec: names, per-site subnets after l's subnet (net), cloud hosts'
 * addresses, the public bridge's addresses.  No side effects.
 */
int sites_plan(const char *spec, struct lab *l, uint32_t net, struct kerr *e);
/* Every IPv4 range l claims (its subnet, its sites' and the public one). */
size_t sites_ranges(const struct lab *l, uint32_t *nets, int *prefixes, size_t max);
/* The public bridge, cloud hosts' links, routes, forwarding and nftables rules. */
int sites_network(const struct lab *l, struct kerr *e);
/* State file round trip: "sites", "public_link", "public_address". */
void sites_to_json(const struct lab *l, json_t *state);
int sites_from_json(struct lab *l, const json_t *state, struct kerr *e);
void sites_free(struct lab *l);

/* ---- bmc.c: the simulated BMCs ------------------------------------ */

#define LAB_BMC_USER "admin"
#define LAB_BMC_PASSWORD_FILE "bmc-password"   /* in the lab's dir, 0600 */
#define LAB_IPMI_SIM "/usr/bin/ipmi_sim"       /* Debian's openipmi */

/*
 * Write DIR/bmc-password (a new random password), each node's lan.conf
 * and bmc.emu under h->rt/bmc, and start one ipmi_sim per node in its
 * BMC namespace (its chassis control program is `kiln lab bmc-action`,
 * this same binary); wait until each listens on UDP 623.  Sets
 * h->bmc_pid and h->bmc_start.  No-op without --bmc.
 */
int bmc_start(struct lab *l, struct kerr *e);
/* Is the node's ipmi_sim the process we started? */
bool bmc_alive(const struct lab_host *h);

/* ---- mirror.c ------------------------------------------------------- */

/*
 * The lab's package mirror: an HTTP server (a process forked from kiln,
 * chrooted into cache/repo, running as nobody) in the switch namespace,
 * on an address of its own on br0, so every host (also behind a bastion)
 * reaches it and nothing of it is in the machine's namespace.  Killing
 * the switch namespace's processes (lab_teardown) stops it.
 */
struct lab_mirror {
	char *cache;               /* absolute; cache/repo is what is served */
	char *addr;                /* on br0 in l->sw_netns */
	unsigned port;
	pid_t pid;                 /* the server, or 0 before it started */
	unsigned long long start;  /* its start time */
};

/* Plan the mirror for l when cache is not NULL (checks it has an index). */
int mirror_plan(struct lab *l, const char *cache, struct kerr *e);
/* Point h's apt at the mirror, in its upper dirs (no-op without a mirror). */
int mirror_host_files(const struct lab *l, const struct lab_host *h, struct kerr *e);
/* Give br0 the mirror's address and start the server (no-op without one). */
int mirror_start(struct lab *l, struct kerr *e);
/*
 * Kill the server (checked against its start time) and wait until it has
 * finished exiting: the netns sweep stops seeing a process a moment
 * before it is gone.  No-op without a mirror or a server.
 */
int mirror_stop(const struct lab_mirror *m, struct kerr *e);
/*
 * The file a decoded request path names (a pointer into path, which is
 * cut up), or NULL: "/" and "." segments are skipped, ".." refuses, and
 * what is left must be one name of [A-Za-z0-9._+~%:-] not starting with
 * '.' (no directories, no hidden files).  The server also chroots and
 * opens with O_NOFOLLOW.
 */
const char *mirror_request_name(char *path);
/* State file round trip (NULL <-> json null) and lab_status()'s view. */
json_t *mirror_to_json(const struct lab_mirror *m);
struct lab_mirror *mirror_from_json(const json_t *j);
json_t *mirror_status(const struct lab_mirror *m);
void mirror_free(struct lab_mirror *m);

#endif
