/*
 * Internal to the Ansible inventory import (inventory.c: the small
 * inventory, resolution and import; inventory_ini.c and inventory_yaml.c:
 * the two readers that fill it).  Every error is FILE:LINE:COL in iv->e.
 */
#ifndef KILN_SPEC_INVENTORY_INT_H
#define KILN_SPEC_INVENTORY_INT_H

#include "spec_int.h"

struct ivar {
	char *key;
	json_t *val;
	const char *file;
	int line, col;
};

struct ivars {
	struct ivar *v;
	size_t n, alloc;
};

struct ihost {
	char *name;
	struct ivars vars;
	struct strv groups;
	int line, col;
};

struct igroup {
	char *name;
	struct ivars vars;
	struct strv children;
	size_t *parents;
	size_t nparents, aparents;
	int line, col;
};

struct inv {
	struct cluster *c;
	const char *file;
	struct kerr *e;
	struct ihost *hosts;
	size_t nhosts, ahosts;
	size_t *htab;          /* open addressing: host index + 1, 0 = empty */
	size_t htab_size;
	struct igroup *groups;
	size_t ngroups, agroups;
	size_t budget;         /* JSON values left for YAML vars */
};

/* Set key in vs (replacing an earlier value), remembering where it was set. */
void inv_vars_set(struct ivars *vs, const char *key, json_t *val, const char *file, int line,
		  int col);
/* The host or group called name, made on first mention (name checked). */
int inv_host_get(struct inv *iv, const char *name, int line, int col, struct ihost **out);
int inv_group_get(struct inv *iv, const char *name, int line, int col, struct igroup **out);
/* Hosts named by a pattern with ranges ("web[01:20]"), into out. */
int inv_hosts_from_pattern(struct inv *iv, const char *pat, int line, int col,
			   struct strv *out);

/* Words of a line, each with its column (1-based). */
struct tok {
	char *s;
	int col;
};

struct toks {
	struct tok *v;
	size_t n, alloc;
};

/*
 * Split a line into words as Python's shlex does for Ansible (inventory.c);
 * *bad: the offset of an unterminated quote.
 */
int inv_shell_split(const char *line, struct toks *out, size_t *bad);
void inv_toks_release(struct toks *t);

/* An Ansible variable name: [A-Za-z_][A-Za-z0-9_]*. */
bool inv_valid_var_name(const char *s);

/* The readers: text into iv (hosts, groups, their variables). */
int inv_ini_parse(struct inv *iv, const char *text, size_t len);
int inv_yaml_parse(struct inv *iv, const char *text, size_t len);
/* Does text look like a YAML inventory (else it is read as INI)? */
bool inv_looks_like_yaml(const char *text, size_t len);

#endif
