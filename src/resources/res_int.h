/*
 * Internal to resources/: the per-type table, result helpers and the shared
 * "make this file have this content" step that file, line, sysctl, kmod,
 * hostname and user resources all use.
 */
#ifndef KILN_RES_INT_H
#define KILN_RES_INT_H

#include "resources.h"

#include <sys/types.h>

#define RES_FILE_CAP (64u << 20)   /* largest file a resource reads */
#define RES_DIFF_CAP (1u << 20)    /* larger diffs are summarised, not sent */

/* Field kinds for generic validation. */
enum field_kind {
	F_STR,     /* non-empty string without newline */
	F_TEXT,    /* any string */
	F_PATH,    /* absolute path */
	F_MODE,    /* octal mode string ("0644") or integer, <= 07777 */
	F_BOOL,
	F_STRV,    /* array of non-empty strings without newline */
	F_MAP,     /* object of string or integer values */
	F_ENUM,    /* string, one of enum_vals ("a|b") */
	F_INT,     /* integer; the type's validate() checks the range */
	F_ANY,     /* anything; the type's validate() checks it (nested objects) */
};

struct field {
	const char *name;
	enum field_kind kind;
	bool required;
	const char *enum_vals;
};

struct res_type {
	const char *name;
	const char *id_field;              /* the field that names the resource */
	const struct field *fields;        /* terminated by { NULL } */
	/* Type-specific checks after the generic ones (may be NULL). */
	int (*validate)(const json_t *r, const char *id, struct kerr *e);
	void (*run)(struct res_ctx *ctx, const json_t *r, struct res_result *out);
};

extern const struct res_type res_type_file, res_type_directory, res_type_line,
	res_type_sysctl, res_type_kmod, res_type_swap, res_type_hostname,
	res_type_package, res_type_service, res_type_user, res_type_group,
	res_type_command, res_type_wgkey, res_type_wireguard, res_type_reach,
	res_type_secret;

/* ---- results ---- */
/* Append "; "-separated text to out->message. */
void res_note(struct res_result *out, const char *fmt, ...) PRINTF(2, 3);
/* Mark out failed and note why. */
void res_fail(struct res_result *out, const char *fmt, ...) PRINTF(2, 3);
/* Set exports[name] = value (creating out->exports). */
void res_export(struct res_result *out, const char *name, const char *value);
/* Append a diff to out->diff. */
void res_add_diff(struct res_result *out, const struct buf *diff);

/* ---- field access (after validation) ---- */
const char *res_str(const json_t *r, const char *key);     /* NULL if absent */
bool res_bool(const json_t *r, const char *key, bool dflt);
int res_mode(const json_t *r, const char *key);           /* -1 if absent */
bool res_is_live(const struct res_ctx *ctx);              /* root is "/" */

/* ---- the shared file step ---- */
struct file_want {
	const char *path;        /* absolute, taken under ctx->root */
	const char *content;
	size_t len;
	int mode;                /* -1: keep existing, 0644 for a new file */
	uid_t uid;               /* (uid_t)-1: not managed */
	gid_t gid;               /* (gid_t)-1: not managed */
	mode_t dir_mode;         /* for missing parents (0 = 0755) */
};
/*
 * Compare the file with w (content diff into out->diff, mode and owner
 * changes into out->message) and, unless ctx->check_only, converge it
 * atomically.  Returns RES_OK, RES_CHANGED, or RES_FAILED (out says why).
 */
enum res_status res_file_converge(struct res_ctx *ctx, const struct file_want *w,
				  struct res_result *out);

/* ---- users and groups under a root (ROOT/etc/passwd, ROOT/etc/group) ---- */
struct pwent {
	uid_t uid;
	gid_t gid;
	char *home;
	char *shell;
};
void pwent_release(struct pwent *p);
/* 0 found, -ENOENT not there, other -errno on read errors. */
int passwd_find(const char *root, const char *name, struct pwent *out);
int group_find(const char *root, const char *name, gid_t *gid, struct strv *members);
/*
 * Resolve an owner/group name (or a number) under ctx->root to ids (-1 when
 * not given).  Returns 0, or -errno with the cause in e.  In check mode a
 * name that does not exist yet but that an earlier resource of this run
 * would create (user:NAME, or group:NAME / user:NAME for a group, pending
 * in ctx->changed) is not an error: its id stays -1, a note goes to out and
 * 1 is returned, so the caller reports "changed" rather than failing.
 */
int res_resolve_owner(const struct res_ctx *ctx, const char *owner, const char *group,
		      uid_t *uid, gid_t *gid, struct res_result *out, struct kerr *e);

/* ---- processes ---- */
/* Run argv; 0 when it exits 0, else -errno / -EIO with the cause in e.
 * stdout (capped) goes to out when not NULL. */
int res_run(char *const argv[], const char *cwd, char *const *env, struct buf *out,
	    int timeout_ms, struct kerr *e);
/* The same with every run_argv option (stdin, ...): argv[0] is looked up in
 * PATH and the usual sbin/bin dirs, and errors name it as given. */
int res_run_opts(char *const argv[], const struct run_opts *o, struct kerr *e);
/* Is name an executable in PATH (or the usual sbin/bin dirs)? */
bool res_have_exe(const char *name);

#endif
