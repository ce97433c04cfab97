/*
 * spec internals — shared by the files of src/spec only.
 *
 * ytree: a YAML document read through libyaml's event API into a small
 * tree that keeps a 1-based line:column on every node.  We build our own
 * tree (rather than yaml_document_t) to bound nesting depth and node count
 * and to keep aliases acyclic: an anchor is usable only once its node is
 * complete, so a tree is always a DAG.  Aliased nodes are shared, not
 * copied; consumers that expand them (ynode_to_json) carry a budget.
 *
 * Mapping keys are always scalars and never repeat (checked at parse).
 */
#ifndef KILN_SPEC_INT_H
#define KILN_SPEC_INT_H

#include <stdint.h>

#include "spec/spec.h"

#define SPEC_MAX_FILE (16u << 20)   /* bytes of one spec or inventory file */
#define YTREE_MAX_DEPTH 64
#define YTREE_MAX_NODES 1000000

enum ykind { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
	enum ykind kind;
	int line, col;          /* 1-based */
	char *str;              /* scalar text (NUL-free); NULL for collections */
	size_t len;
	bool plain;             /* plain (unquoted) scalar: types are resolved */
	bool tag_str;           /* explicit !!str or "!" */
	struct ynode **kids;    /* seq: items; map: key0, val0, key1, val1, ... */
	size_t nkids, alloc;
};

struct yanchor {
	char *name;
	struct ynode *node;
};

struct ydoc {
	const char *file;       /* display name for messages; borrowed */
	struct ynode *root;     /* NULL for an empty document */
	struct ynode **all;     /* every node, for freeing */
	size_t nall, allocall;
	struct yanchor *anchors;
	size_t nanchors, allocanchors;
};

/* Parse text (len bytes) into d.  Errors are "FILE:L:C: ..." in e. */
int ydoc_parse(struct ydoc *d, const char *file, const char *text, size_t len,
	       struct kerr *e);
void ydoc_release(struct ydoc *d);

static inline size_t ymap_len(const struct ynode *n) { return n->nkids / 2; }
static inline struct ynode *ymap_key(const struct ynode *n, size_t i) { return n->kids[2 * i]; }
static inline struct ynode *ymap_val(const struct ynode *n, size_t i) { return n->kids[2 * i + 1]; }
/* Value for key in mapping n, or NULL. */
struct ynode *ymap_get(const struct ynode *n, const char *key);

enum yscalar { YS_NULL, YS_BOOL, YS_INT, YS_FLOAT, YS_STR };
/* Resolve a scalar's type (plain: YAML core-ish rules; quoted: string). */
enum yscalar yscalar_type(const struct ynode *n, bool *b, int64_t *i, double *d);
bool ynode_is_null(const struct ynode *n);
/* "a mapping", "a sequence", "a string", "an integer", "nothing", ... */
const char *ynode_kind_name(const struct ynode *n);

/*
 * Convert to JSON (scalars typed as above, -> json_t).  *budget counts
 * down per value; running out is an error (alias bombs).  NULL on error.
 * Start from ydoc_budget(): a document without aliases never runs out,
 * one whose aliases expand it more than tenfold does.
 */
size_t ydoc_budget(const struct ydoc *d);
json_t *ynode_to_json(const struct ynode *n, const char *file, size_t *budget,
		      struct kerr *e);

/* ---- checks shared by spec.c and inventory.c ------------------------- */
/* "FILE:L:C: msg" into e; returns -EINVAL. */
int err_at(struct kerr *e, const char *file, int line, int col,
	   const char *fmt, ...) PRINTF(5, 6);

bool valid_cluster_name(const char *s);
bool valid_node_name(const char *s);
bool valid_group_name(const char *s);
bool valid_user_name(const char *s);
/* Roles and sites: [a-z0-9_-]{1,64}. */
bool valid_role(const char *s);
/* Label keys: [A-Za-z0-9-_./]{1,128}. */
bool valid_label_key(const char *s);
/* IPv4, IPv6 (optionally %zone) or RFC 1123 DNS name (last label not numeric). */
bool valid_address(const char *s);
/* "[user@]host[:port]", IPv6 hosts in brackets.  On success *out is filled. */
int endpoint_parse(const char *s, struct endpoint *out);
void endpoint_release(struct endpoint *ep);
struct endpoint *endpoint_dup(const struct endpoint *ep);

/*
 * file_read() for regular files only (-EINVAL otherwise, -EISDIR, -EFBIG),
 * through c->src when it is set: recorded on the way, or replayed from it
 * (-ENOENT for a path it does not hold).
 */
int spec_read_file(struct cluster *c, const char *path, struct buf *b, size_t cap);
/* Words for a spec_read_file() error. */
const char *spec_read_error(int r);
/* Resolve p against dir; returns an allocated absolute, normalised path. */
char *spec_abs_path(const char *dir, const char *p);
/* The file's display name for a path p named inside a file shown as `from`. */
char *spec_display_path(const char *from, const char *p);
/* Register a display name in c->files and return the stored (borrowed) copy. */
const char *cluster_add_file(struct cluster *c, const char *display);

/* Checks over the whole model, run after loading. */
int cluster_check_groups(struct cluster *c, struct kerr *e);
int cluster_check_addresses(struct cluster *c, struct kerr *e);

/* New empty cluster for path (absolute path/dir filled, no name). */
/* cwd resolves a relative display name (NULL: the process's own). */
struct cluster *cluster_alloc(const char *display, const char *cwd);
void node_release(struct node *n);
/* Index c->nodes[i] by its name (set) for cluster_node(): every node added
 * to a cluster is indexed once its name is set. */
void cluster_index_node(struct cluster *c, size_t i);
void group_release(struct group *g);
/* bootspec.c: boot: model helpers (NULL is fine for both). */
void boot_conf_release(struct boot_conf *b);
void bmc_conf_free(struct bmc_conf *b);

/* Inventory import from memory; display is its name in messages. */
int inventory_parse(struct cluster *c, const char *display, const char *text,
		    size_t len, struct kerr *e);

#endif
