/*
 * spec — cluster.yaml (and Ansible inventories) parsed into the model.
 *
 * Contract:
 *  - spec_load() parses a file once into a struct cluster that owns every
 *    string and array in it; cluster_free() releases it (NULL is fine).
 *  - Every error is one line "FILE:LINE:COL: what was expected" in e->msg
 *    and a negative errno (-EINVAL for bad content, -errno for I/O).  Unknown
 *    keys, duplicate node names or addresses and bad addresses are errors.
 *  - Relative paths in the spec (ssh key, known_hosts, inventory, admin
 *    user key files, boot: paths, bmc password files) are resolved against
 *    the spec file's directory and stored absolute.  Files read at load
 *    (spec, inventories, key files, boot.enrolled) must be regular files of
 *    at most 16 MiB; boot image files (not URLs) must exist at load.
 *  - Every node, group and base-stack file keeps the mark of where it was
 *    written, so later stages can point at the spec in their messages.
 *  - The format, defaults and inventory mapping are in docs/spec.md.
 *  - Nothing here does network I/O or prints.  Not thread-safe per cluster;
 *    a loaded cluster is read-only and may be shared by threads.
 */
#ifndef KILN_SPEC_H
#define KILN_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Where in which file a thing was written (1-based line and column). */
struct mark {
	const char *file;   /* borrowed: the cluster's path table */
	int line, col;
};

/* user@host:port; user may be NULL (= ssh.user), port 0 (= 22). */
struct endpoint {
	char *user;
	char *host;
	int port;
};

enum hostkey_policy {
	HOSTKEY_STRICT = 0,   /* unknown or changed key: refuse */
	HOSTKEY_ACCEPT_NEW,   /* unknown key: record it; changed key: refuse */
};

struct ssh_conf {
	char *user;                 /* default "root" */
	int port;                   /* default 22 */
	char *key;                  /* private key path, absolute; NULL = ssh-agent only */
	char *known_hosts;          /* absolute path; required */
	enum hostkey_policy hostkey;
	struct endpoint *bastion;   /* NULL = direct */
	int connect_timeout_s;      /* default 10 */
	int command_timeout_s;      /* default 600 */
	int concurrency;            /* default 50 */
};

struct group {
	char *name;
	struct strv children;   /* names of child groups */
	json_t *vars;           /* object, never NULL */
	struct mark mark;
};

/* A node's BMC ("bmc:"); the password is never inline in the spec. */
enum bmc_type { BMC_IPMI = 1, BMC_REDFISH };
struct bmc_conf {
	enum bmc_type type;
	char *address;              /* host or IP literal */
	int port;                   /* 0 = protocol default (623 / 443) */
	char *user;                 /* may be NULL */
	char *password_file;        /* absolute; NULL when password_env is used */
	char *password_env;         /* environment variable name; may be NULL */
	struct mark mark;
};

struct node {
	char *name;
	char *address;              /* IPv4/IPv6 literal or DNS name */
	int port;                   /* 0 = ssh.port */
	char *user;                 /* NULL = ssh.user */
	struct endpoint *bastion;   /* per-node override (inventory ProxyJump); NULL = ssh.bastion */
	struct strv roles;
	char *site;                 /* NULL = "default" */
	struct strv groups;         /* direct groups; see cluster_node_in_group() */
	json_t *labels;             /* object of strings, never NULL */
	json_t *vars;               /* object, never NULL */
	char *mac;                  /* "aa:bb:cc:dd:ee:ff" (lower case) or NULL */
	char *boot_image;           /* a boot.images name, or NULL */
	struct bmc_conf *bmc;       /* NULL = none */
	bool enrolled;              /* read from boot.enrolled, not the spec itself */
	struct mark mark;
};

/*
 * boot: — what `kiln serve` provisions (docs/spec.md, docs/serve.md).
 * IPv4 addresses are uint32_t in host byte order (0 = none).
 */
#define SPEC_BOOT_MAX_DNS 4
struct boot_network {
	char *name;
	char *iface;                /* NULL = reached only through relays */
	uint32_t subnet;
	int prefix;                 /* 8..30 */
	uint32_t router;
	uint32_t dns[SPEC_BOOT_MAX_DNS];
	size_t n_dns;
	uint32_t pool_start, pool_end;   /* 0,0 = no pool */
	uint32_t lease_time;        /* default 3600 */
	bool allow_unknown;         /* default false */
	struct mark mark;
};

struct boot_image {
	char *name;
	char *kernel;               /* absolute path or http(s) URL */
	char *initrd;               /* same; NULL = none */
	char *cmdline;              /* NULL = "" */
	struct mark mark;
};

/* kiln serve's user unless boot.user names another: created when missing. */
#define BOOT_DEFAULT_USER "_kiln"

struct boot_conf {
	bool enabled;               /* the key is present */
	char *server;               /* dotted quad */
	uint32_t server_ip;
	int http_port;              /* default 80 */
	char *tftp_root;            /* absolute; default /usr/lib/ipxe */
	char *state_dir;            /* absolute; default SPECDIR/.kiln/boot */
	char *user;                 /* default BOOT_DEFAULT_USER */
	char *api_token_file;       /* absolute; NULL = no token: the API refuses changes */
	char *enrolled;             /* absolute; default SPECDIR/enrolled.yaml */
	struct strv listen;         /* HTTP bind addresses; empty = all */
	struct boot_network *networks;
	size_t nnetworks;
	struct boot_image *images;
	size_t nimages;
	char *discovery_image;      /* an images name, or NULL */
	/* boot.loaders: file names under tftp_root handed to PXE firmware
	 * (and to UEFI HTTP boot); NULL = the default of each */
	char *loader_bios;          /* default undionly.kpxe */
	char *loader_efi64;         /* default snponly.efi */
	char *loader_arm64;         /* default ipxe-arm64.efi */
	struct mark mark;
};

#define SPEC_STACKS_MAX 16

struct cluster {
	char *name;
	char *path;              /* absolute path of the spec file */
	char *dir;               /* its directory */
	struct strv files;       /* every file read (spec, inventory): marks point here */
	struct ssh_conf ssh;
	json_t *vars;            /* cluster-wide variables, never NULL */
	struct group *groups;
	size_t ngroups;
	struct node *nodes;      /* in spec order */
	size_t nnodes;
	/* stacks.NAME, parsed by the stack (stacks/stacks.h), at its index in
	 * stack_types[]; NULL = the stack is not enabled */
	void *stacks[SPEC_STACKS_MAX];
	struct boot_conf boot;
	struct spec_files *src;  /* while loading: where files come from (NULL = disk) */
	/* cluster_node()'s index: node index + 1 by name hash, 0 = empty */
	size_t *name_slots;
	size_t name_nslots, name_n;
};

/* Parse path into a new cluster (*out).  On error *out is NULL. */
int spec_load(const char *path, struct cluster **out, struct kerr *e);

/*
 * The files one load of a spec read, so that the same spec can be loaded
 * again where the filesystem is out of reach (the unprivileged side of
 * `kiln serve`, chrooted into an empty directory, docs/serve.md).
 * spec_load_files() with an empty set (replay false) reads the disk and
 * records every file it read, and every file it found missing; with a
 * recorded set and replay true it reads nothing but the set (a path not in
 * it is missing) and skips the checks that need the disk (boot image files
 * exist).  Paths are absolute.  The set is owned by the caller.
 */
struct spec_source_file {
	char *path;
	char *data;                /* NULL: the file did not exist */
	size_t len;
};
struct spec_files {
	char *cwd;                 /* the recording loader's working directory */
	struct spec_source_file *v;
	size_t n;
	bool replay;
};
int spec_load_files(const char *path, struct spec_files *f, struct cluster **out,
		    struct kerr *e);
void spec_files_release(struct spec_files *f);
/* Append a file (data NULL: missing) to f; takes copies. */
void spec_files_add(struct spec_files *f, const char *path, const char *data, size_t len);
/* Parse from memory; name is used in messages and to resolve relative paths. */
int spec_load_string(const char *name, const char *text, size_t len,
		     struct cluster **out, struct kerr *e);
void cluster_free(struct cluster *c);

/* Import an Ansible inventory (INI or YAML, detected from content) into c:
 * appends nodes and groups.  Used by spec_load for "inventory:".  A
 * relative path is resolved against c->dir.  On error c may hold part of
 * the inventory: discard it.  (docs/spec.md says how vars map.) */
int inventory_load(struct cluster *c, const char *path, struct kerr *e);
/* The same from memory; name is used in messages (and kept in c->files). */
int inventory_load_string(struct cluster *c, const char *name, const char *text,
			  size_t len, struct kerr *e);

struct node *cluster_node(const struct cluster *c, const char *name);
struct group *cluster_group(const struct cluster *c, const char *name);
/* Is n a member of group g, directly or through child groups? ("all" is every node.) */
bool cluster_node_in_group(const struct cluster *c, const struct node *n, const char *g);
/*
 * Select nodes by a --limit pattern: comma-separated node names, group
 * names or fnmatch globs over node names.  sel[i] is set for chosen nodes.
 * Returns the count chosen, or -EINVAL (message in e) for a pattern
 * matching nothing.
 */
int cluster_select(const struct cluster *c, const char *pattern, bool *sel, struct kerr *e);
/* A variable for templates: node vars, then group vars, then cluster vars. */
const json_t *cluster_var(const struct cluster *c, const struct node *n, const char *name);

/* boot.images entry by name, or NULL. */
const struct boot_image *cluster_boot_image(const struct cluster *c, const char *name);
/* The node with this MAC ("aa:bb:..", any case), or NULL. */
struct node *cluster_node_by_mac(const struct cluster *c, const char *mac);
/* Normalise a MAC ("AA-BB-.." or "aa:bb:..") into out[18]; false if malformed. */
bool spec_mac_normalize(const char *s, char out[18]);

/* Effective connection settings for a node. */
const char *node_user(const struct cluster *c, const struct node *n);
int node_port(const struct cluster *c, const struct node *n);
const struct endpoint *node_bastion(const struct cluster *c, const struct node *n);

#endif
