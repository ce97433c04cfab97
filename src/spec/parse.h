/*
 * spec/parse.h — the spec walker's helpers, for the parsers of stacks.NAME
 * that live with their stacks (src/stacks/, stacks.h).  Every helper
 * reports "FILE:LINE:COL: WHAT: what was expected, found what" through the
 * parser's kerr and returns -EINVAL; `what` is the dotted spec path
 * ("stacks.mesh.port").  The ytree (struct ynode, ymap_get, ...) is in
 * spec_int.h.
 */
#ifndef KILN_SPEC_PARSE_H
#define KILN_SPEC_PARSE_H

#include "spec/spec_int.h"

struct gref;

/* One walk of one spec document. */
struct spec_parser {
	struct cluster *c;
	struct kerr *e;
	const char *file;    /* display name (in c->files) */
	struct gref *refs;
	size_t nrefs, arefs;
	size_t budget;       /* JSON values left for the whole document */
};

int spec_err(struct spec_parser *x, const struct ynode *n, const char *fmt, ...) PRINTF(3, 4);
/* A scalar's text shortened and made printable into tmp, for messages. */
const char *spec_shown(const struct ynode *n, char *tmp, size_t size);
int spec_expect(struct spec_parser *x, const struct ynode *n, enum ykind k, const char *what);
/* Every key of map m must be in allowed (NULL-terminated). */
int spec_check_keys(struct spec_parser *x, const struct ynode *m, const char *what,
		    const char *const *allowed);
/* Any non-null scalar's text (borrowed from the tree). */
int spec_get_text(struct spec_parser *x, const struct ynode *n, const char *what,
		  const char **out);
int spec_get_int(struct spec_parser *x, const struct ynode *n, const char *what,
		 int64_t min, int64_t max, int *out);
/* One word of names[0..count): its index ("expected hub, full or site, found 'x'"). */
int spec_get_choice(struct spec_parser *x, const struct ynode *n, const char *what,
		    const char *const *names, size_t count, int *out);
/* true/false only: "yes" is a string. */
int spec_get_bool(struct spec_parser *x, const struct ynode *n, const char *what, bool *out);
/* A sequence of strings each passing ok() (NULL: any); desc names a valid item. */
int spec_get_strv(struct spec_parser *x, const struct ynode *n, const char *what,
		  bool (*ok)(const char *), const char *desc, struct strv *out);
/* A JSON object from a mapping (null = empty). */
int spec_get_vars(struct spec_parser *x, const struct ynode *n, const char *what,
		  json_t **out);
int spec_get_user(struct spec_parser *x, const struct ynode *n, const char *what, char **out);
/* A path, made absolute against the spec's directory (replacing *out). */
int spec_get_path(struct spec_parser *x, const struct ynode *n, const char *what, char **out);

/* ---- shared by spec.c and bootspec.c (the boot keys' walk) ------------- */
/* "line N", or "FILE:N" when m is in another file than file. */
void spec_where_first(char *out, size_t n, const char *file, const struct mark *m);
/* boot: (networks, images, loaders, enrolled) of the document root. */
int spec_parse_boot(struct spec_parser *x, const struct ynode *root);
/* A node's boot keys: mac, boot_image, bmc (what: "node 'n1'"). */
int spec_parse_node_boot(struct spec_parser *x, const struct ynode *m, struct node *n,
			 const char *what);

#endif
