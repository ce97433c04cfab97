/*
 * lab — a multi-host lab of real sshd hosts on this machine (`kiln lab`).
 *
 * Each host (node1..nodeN, and optionally "bastion") is a set of
 * namespaces: a named network namespace "<lab>-<host>", plus mount, UTS, IPC
 * and PID namespaces whose PID 1 is a tiny init forked from kiln that keeps the
 * namespaces alive and runs the host's sshd as its child (so sshd can be
 * stopped and started again in the same root filesystem and network).  The
 * host's root filesystem is a tmpfs with one overlay per machine directory
 * (/etc /usr /var /root /home /opt /srv), private /run, /tmp, /proc, /sys
 * and /dev; writes never reach the machine's own directories.  Hosts sit
 * on a bridge inside the lab's "switch" namespace "<lab>-sw".  Docs:
 * docs/lab.md (address plan, files, state).
 *
 * Contract:
 *  - Everything here needs root; without it functions fail with -EPERM and
 *    say so in e.
 *  - Runtime state lives under LAB_RUNTIME_DIR: "<name>.json" (the state
 *    file: every namespace, link, route, mount and pid made) and "<name>/"
 *    (a tmpfs: per-host sshd config, host keys, overlay upper dirs).  The
 *    lab's directory (--dir) holds only cluster.yaml, ssh_config,
 *    known_hosts, keys/, .kiln-lab (the lab's name) and, with disks,
 *    disks/ (sparse files on loop devices; removed by lab_down()).
 *  - Hardware (hw.c): --gpus and --disks appear to kiln's facts through the
 *    paths of a real server, in their host only (docs/lab.md, Hardware).
 *  - lab_up() either makes the whole lab or, on failure, removes what it
 *    made and returns the error.  lab_down() removes everything the state
 *    file names, tolerating what is already gone (a partial up, a crash).
 *  - Functions block (they run `ip`, `ssh-keygen`, fork hosts and wait for
 *    sshd, with bounded waits); none prints.  Call them from a
 *    single-threaded process: forked children allocate memory before exec.
 *  - A lab is named by its name or by its directory (lab_resolve()); NULL
 *    means "the only lab that exists".
 */
#ifndef KILN_LAB_H
#define KILN_LAB_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "util/util.h"

#define LAB_RUNTIME_DIR "/run/kiln-lab"
#define LAB_DEFAULT_NAME "lab"
#define LAB_DEFAULT_SUBNET "10.213.0.0/24"
#define LAB_DEFAULT_NODES 3
#define LAB_MAX_NODES 250
#define LAB_NAME_MAX 32

struct lab_opts {
	const char *name;     /* NULL = LAB_DEFAULT_NAME */
	const char *dir;      /* NULL = ./NAME */
	const char *subnet;   /* NULL = LAB_DEFAULT_SUBNET; IPv4 CIDR, /16../26 */
	unsigned nodes;       /* 0 = LAB_DEFAULT_NODES; at most LAB_MAX_NODES */
	bool bastion;         /* add a bastion; nodes are then unreachable from here */
	const char *gpus;     /* NULL or "HOST=MODEL:N,...": NVIDIA GPUs per host */
	const char *disks;    /* NULL or "COUNTxSIZE": file-backed disks per node */
	bool used_disk;       /* one more disk per node: ext4 with data, mounted */
	const char *mirror;   /* NULL = no mirror; else a cache dir made by
				 lab_mirror_build() that the lab serves (docs/lab.md) */
	const char *sites;    /* NULL or "NAME:N,...": hosts grouped into sites
				 (needs bastion; docs/lab.md, Sites) */
	bool bmc;             /* one ipmi_sim BMC per node (docs/lab.md, BMCs) */
	const char *init;     /* NULL = the default (docs/lab.md, Hosts);
				 "systemd": the machine's systemd is each host's
				 PID 1; "tiny": kiln-lab-init */
};

/*
 * Make a lab (see the header comment).  Refuses a name that already exists
 * and a subnet that overlaps a running lab.  On success the lab's status
 * (as lab_status()) is stored in *status if status is not NULL; the caller
 * owns it (json_decref).
 */
int lab_up(const struct lab_opts *o, json_t **status, struct kerr *e);

/* Remove a lab and everything it made.  -ENOENT if no such lab. */
int lab_down(const char *name_or_dir, struct kerr *e);

/*
 * The lab's hosts as a JSON object:
 * {"name","dir","subnet","bastion": addr|null,"runtime",
 *  "mirror": {"url","address","cache","pid": pid|null,"alive"}|null,
 *  "hosts":[{"name","role":"node"|"bastion","init":"systemd"|"tiny",
 *            "address","addresses":[..],
 *            "netns","init_pid","sshd_pid": pid|null,"alive": bool,
 *            "bmc": {"address","pid","alive","power":"on"|"off","bootdev"}|null}],
 *  "bmc_subnet": cidr|null}
 * "alive" is true when the host's init and its sshd are running.
 */
int lab_status(const char *name_or_dir, json_t **out, struct kerr *e);

/* Names of every lab on this machine (state files in LAB_RUNTIME_DIR). */
int lab_list(struct strv *names, struct kerr *e);

/*
 * Turn a lab name, a lab directory, or NULL (the only lab there is) into
 * the lab's name (*name, caller frees).
 */
int lab_resolve(const char *name_or_dir, char **name, struct kerr *e);

/*
 * Run argv inside host's namespaces (network, UTS, mount, PID; root and
 * cwd "/"), with kiln's stdin/stdout/stderr.  *exit_status is the
 * command's exit code, or 128+signal when a signal killed it.  Returns 0
 * when the command ran (whatever its exit code), -errno otherwise.
 */
int lab_exec(const char *name_or_dir, const char *host, char *const argv[],
	     int *exit_status, struct kerr *e);

/*
 * Stop a host's sshd (the listener and every SSH session on the host; the
 * host's init, filesystem and network stay), or start it again and wait
 * until it accepts connections.  Both are no-ops when already so.
 */
int lab_sshd_stop(const char *name_or_dir, const char *host, struct kerr *e);
int lab_sshd_start(const char *name_or_dir, const char *host, struct kerr *e);

/*
 * Give a host a new ed25519 host key and restart its sshd.  The lab's
 * known_hosts is deliberately not updated (host-key-change tests).
 */
int lab_rekey(const char *name_or_dir, const char *host, struct kerr *e);

/*
 * Stop a host and start it again with the same upper dirs (files written
 * before are there after), addresses and host key; wait until its sshd
 * accepts.  A systemd host is powered off cleanly first (its enabled
 * units start again at boot).  The state file gets the new init pid.
 */
int lab_reboot(const char *name_or_dir, const char *host, struct kerr *e);

/*
 * The chassis control program of a node's simulated BMC (ipmi_sim runs
 * `kiln lab bmc-action --name LAB HOST get|set ...`): args are "get"
 * followed by parameters (power, boot), or "set" followed by pairs
 * (power 0|1, boot DEV, reset 1, shutdown 1).  get appends "PARAM:VALUE"
 * lines to out.  set power 0 stops the host as lab_reboot() does (its
 * files stay) and marks it powered off; set power 1 starts it again;
 * boot is recorded in the state file.  Holds the lab's lock while it
 * changes the state.
 */
int lab_bmc_action(const char *name_or_dir, const char *host, char *const args[],
		   size_t nargs, struct buf *out, struct kerr *e);

/* The init "up" gives hosts when o->init is NULL: "systemd" or "tiny". */
const char *lab_default_init(void);

/* ---- the lab's package mirror (mirror.c) ------------------------------ */

#define LAB_MIRROR_CACHE "/var/cache/kiln/lab-mirror"
/* Not installed by scripts/deps.sh; depends on zsh-common; its postinst runs add-shell. */
#define LAB_MIRROR_DEFAULT_PACKAGES "zsh"
#define LAB_MIRROR_PORT 80
#define LAB_MIRROR_OFFSET 3   /* its address in the subnet: on br0 in NAME-sw */

struct lab_mirror_result {
	size_t packages;     /* names the cache holds (with their dependencies) */
	size_t files;        /* .deb files in it */
	size_t downloaded;   /* .deb files this call fetched */
	bool refreshed;      /* false: every name was already there, nothing ran */
};

/*
 * Make or refresh an apt repository in cache (NULL = LAB_MIRROR_CACHE):
 * cache/packages lists the names it was asked for, cache/repo/ holds their
 * .debs with every dependency as if nothing were installed (apt-get
 * --download-only against an empty dpkg status, using the machine's apt
 * lists and sources) and a Packages index (dpkg-scanpackages).  packages
 * NULL or empty means the names already listed, or the default set for a
 * new cache.  When every name is already listed nothing runs (no network).
 * Blocks on the network (apt, bounded at 10 minutes) and on another build
 * of the same cache.  The machine's dpkg database, apt lists and caches
 * are not written.
 */
int lab_mirror_build(const char *cache, const struct strv *packages,
		     struct lab_mirror_result *res, struct kerr *e);

#endif
