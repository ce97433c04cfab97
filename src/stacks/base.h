/*
 * The base stack's model (stacks.base in the spec; docs/spec.md): what
 * the parser in base.c makes and its render reads.  Tests read it too.
 */
#ifndef KILN_STACKS_BASE_H
#define KILN_STACKS_BASE_H

#include "stacks/stacks.h"

/* One managed file of the base stack; exactly one of content/template. */
struct spec_file {
	char *path;
	char *content;
	struct template *template;   /* "{{ node.name }}"-style, see template_compile() */
	unsigned mode;      /* default 0644 */
	char *owner, *group; /* default root */
	struct mark mark;
};

/* stacks.base.services[]: a systemd unit kept enabled/running. */
struct spec_service {
	char *name;          /* a unit name */
	bool enabled;        /* default true */
	bool running;        /* state: running (default) or stopped */
	struct strv watch;   /* paths of stacks.base.files: restart when one changed */
	struct mark mark;
};

struct sysctl_kv {
	char *key, *value;
};

struct admin_user {
	char *name;              /* NULL = no admin user */
	char *shell;             /* default /bin/bash */
	struct strv keys;        /* authorized_keys lines (key files are read at load) */
	struct strv groups;      /* supplementary groups, e.g. sudo */
};

/*
 * stacks.base — node preparation.  When the key is present, unset
 * fields take the documented defaults (docs/spec.md):
 * modules [overlay, br_netfilter]; sysctls bridge-nf-call-iptables=1,
 * bridge-nf-call-ip6tables=1, ip_forward=1; swap_off true; hostname true;
 * hosts_file true.
 */
struct stack_base {
	struct strv modules;
	struct sysctl_kv *sysctls;
	size_t nsysctls;
	bool swap_off;
	bool hostname;
	bool hosts_file;
	bool reboot;             /* reboot a node a package asked to (/run/reboot-required) */
	struct admin_user admin;
	json_t *packages;        /* object: os family ("debian", "redhat") -> array of names */
	struct spec_file *files;
	size_t nfiles;
	struct spec_service *services;
	size_t nservices;
	/*
	 * Made at parse (nodes come first), shared by every node's render
	 * (stacks.h: rendered resources are immutable): every resource that is
	 * the same on all nodes.  /etc/hosts names every node: made per node it
	 * was O(nodes^2), ~3 GB held at 10,000 nodes.
	 */
	json_t *head;            /* array: modules, sysctls, swap */
	json_t *hosts;           /* the /etc/hosts file, or NULL */
	json_t *user;            /* the admin user, or NULL */
	json_t **file_res;       /* per files[i]: the file, NULL when templated */
	json_t *pkgs;            /* object: os family -> package resource */
	json_t *tail;            /* array: services */
};

extern const struct stack_type stack_base;

/* The cluster's stacks.base, or NULL when the spec does not enable it. */
static inline const struct stack_base *stack_base_conf(const struct cluster *c)
{
	return stack_conf(c, &stack_base);
}

#endif
