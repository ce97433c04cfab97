/*
 * File-like resources: file, directory and line, plus the shared
 * compare-diff-write step (res_file_converge) the other content-bearing
 * types reuse.
 */
#include "res_int.h"

#include <errno.h>
#include <libgen.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool has_nul(const char *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

/* Create the missing parents of full (a path already under root). */
static int make_parents(const char *full, mode_t mode)
{
	char *copy = xstrdup(full);
	int r = mkdir_p(dirname(copy), mode ? mode : 0755);
	free(copy);
	return r;
}

/* Note mode/owner differences between st and the wanted values. */
static bool note_attrs(struct res_result *out, const struct stat *st, int mode,
		       uid_t uid, gid_t gid)
{
	bool differs = false;

	if (mode >= 0 && (int)(st->st_mode & 07777) != mode) {
		res_note(out, "mode %04o -> %04o", (unsigned)(st->st_mode & 07777),
			 (unsigned)mode);
		differs = true;
	}
	if (uid != (uid_t)-1 && st->st_uid != uid) {
		res_note(out, "owner %u -> %u", (unsigned)st->st_uid, (unsigned)uid);
		differs = true;
	}
	if (gid != (gid_t)-1 && st->st_gid != gid) {
		res_note(out, "group %u -> %u", (unsigned)st->st_gid, (unsigned)gid);
		differs = true;
	}
	return differs;
}

enum res_status res_file_converge(struct res_ctx *ctx, const struct file_want *w,
				  struct res_result *out)
{
	char *full = path_join(ctx->root, w->path);
	struct buf old, diff;
	struct stat st;
	bool exists = true, is_link = false, content_differs, attrs_differ = false;
	int r, mode;
	uid_t uid = w->uid;
	gid_t gid = w->gid;
	enum res_status ret = RES_FAILED;

	buf_init(&old, RES_FILE_CAP);
	buf_init(&diff, RES_DIFF_CAP);
	if (lstat(full, &st) < 0) {
		if (errno != ENOENT) {
			res_fail(out, "%s: %s", w->path, strerror(errno));
			goto out;
		}
		exists = false;
	} else if (S_ISLNK(st.st_mode)) {
		is_link = true;
		if (stat(full, &st) < 0)   /* dangling: replace it */
			exists = false;
	}
	if (exists && !S_ISREG(st.st_mode)) {
		res_fail(out, "%s: exists and is not a regular file", w->path);
		goto out;
	}
	if (exists && (r = file_read(full, &old, RES_FILE_CAP)) < 0) {
		res_fail(out, "%s: read: %s", w->path, strerror(-r));
		goto out;
	}
	content_differs = !exists || old.len != w->len || memcmp(old.s, w->content, w->len);
	mode = w->mode >= 0 ? w->mode : exists ? (int)(st.st_mode & 07777) : 0644;
	if (content_differs) {
		if (!exists)
			res_note(out, "create %s", w->path);
		if (has_nul(old.s, old.len) || has_nul(w->content, w->len))
			res_note(out, "binary content differs");
		else if (diff_unified(exists ? w->path : "/dev/null", old.s, w->path,
				      w->content, &diff) < 0) {
			buf_reset(&diff);
			res_note(out, "content differs (diff over %u bytes, not shown)",
				 RES_DIFF_CAP);
		}
		res_add_diff(out, &diff);
	}
	if (exists)
		attrs_differ = note_attrs(out, &st, mode, uid, gid);
	if (is_link)
		res_note(out, "replace symlink %s with a file", w->path);
	if (!content_differs && !attrs_differ && !is_link) {
		ret = RES_OK;
		goto out;
	}
	ret = RES_CHANGED;
	if (ctx->check_only)
		goto out;

	if (content_differs || is_link) {
		/* Keep an unmanaged owner of an existing file. */
		if (exists && uid == (uid_t)-1)
			uid = st.st_uid;
		if (exists && gid == (gid_t)-1)
			gid = st.st_gid;
		if ((r = make_parents(full, w->dir_mode)) < 0) {
			res_fail(out, "%s: create parent directories: %s", w->path,
				 strerror(-r));
			ret = RES_FAILED;
		} else if ((r = file_write_atomic(full, w->content, w->len, (mode_t)mode,
						  uid, gid)) < 0) {
			res_fail(out, "%s: write: %s", w->path, strerror(-r));
			ret = RES_FAILED;
		}
		goto out;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && lchown(full, uid, gid) < 0) {
		res_fail(out, "%s: chown: %s", w->path, strerror(errno));
		ret = RES_FAILED;
	} else if (chmod(full, (mode_t)mode) < 0) {   /* after chown: it clears setuid */
		res_fail(out, "%s: chmod: %s", w->path, strerror(errno));
		ret = RES_FAILED;
	}
out:
	buf_release(&old);
	buf_release(&diff);
	free(full);
	return ret;
}

/* ---- file ---- */

/* file: content, mode and owner of one regular file. */
static void file_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	json_t *c = json_object_get(r, "content");
	struct kerr e = { 0 };
	struct file_want w = {
		.path = res_str(r, "path"),
		.content = json_string_value(c),
		.len = json_string_length(c),
		.mode = res_mode(r, "mode"),
	};

	if (res_resolve_owner(ctx->root, res_str(r, "owner"), res_str(r, "group"),
			      &w.uid, &w.gid, &e) < 0) {
		res_fail(out, "%s", e.msg);
		return;
	}
	out->status = res_file_converge(ctx, &w, out);
}

static const struct field file_fields[] = {
	{ "path", F_PATH, true, NULL },
	{ "content", F_TEXT, true, NULL },
	{ "mode", F_MODE, false, NULL },
	{ "owner", F_STR, false, NULL },
	{ "group", F_STR, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_file = {
	.name = "file", .id_field = "path", .fields = file_fields, .run = file_run,
};

/* ---- directory ---- */

/* directory: exists (parents too), with mode and owner when given. */
static void directory_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *path = res_str(r, "path");
	char *full = path_join(ctx->root, path);
	int mode = res_mode(r, "mode");
	struct kerr e = { 0 };
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (res_resolve_owner(ctx->root, res_str(r, "owner"), res_str(r, "group"),
			      &uid, &gid, &e) < 0) {
		res_fail(out, "%s", e.msg);
		goto out;
	}
	if (lstat(full, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			res_fail(out, "%s: exists and is not a directory", path);
			goto out;
		}
		if (!note_attrs(out, &st, mode, uid, gid))
			goto out;
		out->status = RES_CHANGED;
		if (ctx->check_only)
			goto out;
	} else if (errno != ENOENT) {
		res_fail(out, "%s: %s", path, strerror(errno));
		goto out;
	} else {
		out->status = RES_CHANGED;
		res_note(out, "create directory %s", path);
		if (ctx->check_only)
			goto out;
		int q = mkdir_p(full, 0755);
		if (q < 0) {
			res_fail(out, "%s: mkdir: %s", path, strerror(-q));
			goto out;
		}
		if (mode < 0)
			mode = 0755;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && lchown(full, uid, gid) < 0)
		res_fail(out, "%s: chown: %s", path, strerror(errno));
	else if (mode >= 0 && chmod(full, (mode_t)mode) < 0)
		res_fail(out, "%s: chmod: %s", path, strerror(errno));
out:
	free(full);
}

static const struct field directory_fields[] = {
	{ "path", F_PATH, true, NULL },
	{ "mode", F_MODE, false, NULL },
	{ "owner", F_STR, false, NULL },
	{ "group", F_STR, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_directory = {
	.name = "directory", .id_field = "path", .fields = directory_fields,
	.run = directory_run,
};

/* ---- line ---- */

/*
 * Build the wanted content of a line-managed file from its current content:
 * present replaces every line matching re (or equal to want) with want, or
 * appends want; absent drops matching/equal lines.
 */
static void line_edit(const char *cur, const char *want, const regex_t *re,
		      bool present, struct buf *out)
{
	bool matched = false, found = false;

	for (const char *p = cur; *p;) {
		size_t n = strcspn(p, "\n");
		char *l = xstrndup(p, n);
		bool nl = p[n] == '\n';
		bool eq = !strcmp(l, want);
		bool hit = re ? regexec(re, l, 0, NULL, 0) == 0 : eq;
		found |= eq;
		if (hit && present) {
			matched = true;
			buf_adds(out, want);
		} else if (!hit) {
			buf_adds(out, l);
		}
		if (nl && (!hit || present))
			buf_addch(out, '\n');
		free(l);
		p += n + nl;
	}
	if (present && !matched && !found) {
		if (out->len && out->s[out->len - 1] != '\n')
			buf_addch(out, '\n');
		buf_adds(out, want);
		buf_addch(out, '\n');
	}
}

/* line: edit one line of a file in place (see line_edit), keeping its mode. */
static void line_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *path = res_str(r, "path"), *rx = res_str(r, "regexp");
	const char *state = res_str(r, "state");
	bool present = !state || !strcmp(state, "present");
	char *full = path_join(ctx->root, path);
	struct buf cur, next;
	regex_t re;
	int q;

	buf_init(&cur, RES_FILE_CAP);
	buf_init(&next, RES_FILE_CAP);
	if (rx && regcomp(&re, rx, REG_EXTENDED | REG_NOSUB) != 0) {
		res_fail(out, "%s: bad regexp '%s'", path, rx);
		rx = NULL;
		goto out;
	}
	if ((q = file_read(full, &cur, RES_FILE_CAP)) < 0 && q != -ENOENT) {
		res_fail(out, "%s: read: %s", path, strerror(-q));
		goto out_re;
	}
	if (q == -ENOENT && !present)
		goto out_re;   /* nothing to remove */
	if (memchr(cur.s, '\0', cur.len)) {
		res_fail(out, "%s: binary file, refusing to edit lines", path);
		goto out_re;
	}
	line_edit(cur.s, res_str(r, "line"), rx ? &re : NULL, present, &next);
	struct file_want w = {
		.path = path, .content = next.s, .len = next.len,
		.mode = -1, .uid = (uid_t)-1, .gid = (gid_t)-1,
	};
	out->status = res_file_converge(ctx, &w, out);
out_re:
	if (rx)
		regfree(&re);
out:
	buf_release(&cur);
	buf_release(&next);
	free(full);
}

/* line must be one line and regexp a valid POSIX ERE. */
static int line_validate(const json_t *r, const char *id, struct kerr *e)
{
	const char *rx = res_str(r, "regexp");
	const char *line = res_str(r, "line");
	regex_t re;

	if (strchr(line, '\n') ||
	    strlen(line) != json_string_length(json_object_get(r, "line")))
		return kerr_set(e, -EINVAL, "resource '%s': field 'line': must be one line",
				id);
	if (rx) {
		if (regcomp(&re, rx, REG_EXTENDED | REG_NOSUB) != 0)
			return kerr_set(e, -EINVAL,
					"resource '%s': field 'regexp': not a POSIX extended regexp",
					id);
		regfree(&re);
	}
	return 0;
}

static const struct field line_fields[] = {
	{ "path", F_PATH, true, NULL },
	{ "line", F_TEXT, true, NULL },
	{ "regexp", F_STR, false, NULL },
	{ "state", F_ENUM, false, "present|absent" },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_line = {
	.name = "line", .id_field = "path", .fields = line_fields,
	.validate = line_validate, .run = line_run,
};
