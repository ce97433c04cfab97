/*
 * File-like resources: file, directory and line, plus the shared
 * compare-diff-write step (res_file_converge) the other content-bearing
 * types reuse.
 */
#include "res_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool has_nul(const char *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

/* dir + "/" + name, with no doubled slash ("/" + "etc" = "/etc"). */
static char *join_abs(const char *dir, const char *name)
{
	size_t l = strlen(dir);
	return xasprintf("%s%s%s", dir, l && dir[l - 1] == '/' ? "" : "/", name);
}

/* May a symlink in the directory dir (an absolute path) be followed? */
static bool dir_trusted(const char *dir, struct stat *st)
{
	if (stat(dir, st) < 0) {
		memset(st, 0, sizeof(*st));
		return false;
	}
	return (st->st_uid == 0 || st->st_uid == geteuid()) && !(st->st_mode & 022);
}

/*
 * Check the parents of path (relative to root) before acting on it: one
 * that is a symlink is followed only when the directory holding the link
 * belongs to root or to us and nobody else may write to it.  /var/run ->
 * /run is the system's own and works; a link a user planted in a
 * directory they own (~/.ssh -> /root/.ssh) or in /tmp would send root's
 * write elsewhere, and is refused.  A followed link's target is walked
 * the same way, one link at a time (an absolute target from the real /,
 * as the kernel resolves it), so a trusted link cannot lead on through
 * an untrusted one.  A missing parent ends the walk (it will be created
 * as a real directory).  0, or -EPERM/-ELOOP with the message in msg.
 * By name, before acting: it stops a planted link, not a user who swaps
 * one in between this check and the write (docs/resources.md).
 */
static int parents_trusted(const char *root, const char *path, char *msg, size_t len)
{
	char *cur = xstrdup(*root ? root : "/");
	size_t rl = strlen(root);
	int r = 0, hops = 0;

	/* rest: what is still to walk from cur; the last component of path
	 * is the managed path itself and is not walked */
	char *buf = xstrdup(path), *rest = buf;
	char *last = strrchr(buf, '/');
	if (last)
		*last = '\0';
	else
		*buf = '\0';
	for (;;) {
		while (*rest == '/')
			rest++;
		if (!*rest)
			break;
		char *c = rest, *slash = strchr(rest, '/');
		if (slash) {
			*slash = '\0';
			rest = slash + 1;
		} else {
			rest += strlen(rest);
		}
		if (!strcmp(c, "."))
			continue;
		char *p = join_abs(cur, c);
		struct stat st, dst;
		if (lstat(p, &st) < 0) {
			free(p);
			break;   /* missing: created later as a real directory */
		}
		if (!S_ISLNK(st.st_mode)) {
			free(cur);
			cur = p;
			continue;
		}
		char t[PATH_MAX];
		ssize_t n;
		if (!dir_trusted(cur, &dst)) {
			/* shown relative to root when it lies under it */
			const char *shown = rl > 1 && !strncmp(p, root, rl) && p[rl] == '/' ? p + rl : p;
			if (dst.st_ino == 0)
				snprintf(msg, len, "parent %s is a symlink in a directory that "
					 "cannot be checked: not followed", shown);
			else
				snprintf(msg, len, "parent %s is a symlink in a directory %s "
					 "(uid %u, mode %04o): not followed", shown,
					 (dst.st_mode & 022) ? "others may write to" : "owned by a user",
					 (unsigned)dst.st_uid, (unsigned)(dst.st_mode & 07777));
			r = -EPERM;
		} else if (++hops > 40) {
			snprintf(msg, len, "parent %s: too many levels of symlinks", p);
			r = -ELOOP;
		} else if ((n = readlink(p, t, sizeof(t) - 1)) > 0) {
			/* walk the target in place of the link, one link at a
			 * time: absolute from the real /, as the kernel does */
			t[n] = '\0';
			char *more = xasprintf("%s/%s", t, rest);
			free(buf);
			buf = rest = more;
			if (t[0] == '/') {
				free(cur);
				cur = xstrdup("/");
			}
		} else {
			free(p);
			break;   /* gone meanwhile: what follows fails on its own */
		}
		free(p);
		if (r < 0)
			break;
	}
	free(buf);
	free(cur);
	return r;
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

/*
 * What is at full, looked at without following a final symlink: a regular
 * file is opened (O_NOFOLLOW, O_NONBLOCK so a FIFO cannot block us) and read
 * into b, its stat in *st and the open fd in *fd (the caller closes it, and
 * fchown/fchmods through it rather than by name).  Returns 0 for a regular
 * file, -ENOENT when nothing is there, -ELOOP for a symlink (its target is
 * never opened; the link text goes to link when not NULL), -EINVAL for
 * anything else that is not a regular file, -EAGAIN when it was swapped
 * while we looked, or -errno.
 */
static int open_managed(const char *full, struct buf *b, struct stat *st, int *fd,
			char **link)
{
	struct stat lst;
	char tmp[65536];
	int r = 0;

	*fd = -1;
	if (lstat(full, &lst) < 0)
		return -errno;
	if (S_ISLNK(lst.st_mode)) {
		if (link) {
			char t[PATH_MAX];
			ssize_t n = readlink(full, t, sizeof(t) - 1);
			char safe[256];
			str_sanitize(safe, sizeof(safe), t, n > 0 ? (size_t)n : 0);
			*link = xstrdup(n > 0 ? safe : "?");
		}
		return -ELOOP;
	}
	if (!S_ISREG(lst.st_mode))
		return -EINVAL;
	*fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (*fd < 0)
		return errno == ELOOP ? -EAGAIN : -errno;
	if (fstat(*fd, st) < 0) {
		r = -errno;
		goto fail;
	}
	/* Swapped between lstat and open: refuse rather than guess. */
	if (!S_ISREG(st->st_mode) || st->st_dev != lst.st_dev || st->st_ino != lst.st_ino) {
		r = -EAGAIN;
		goto fail;
	}
	for (;;) {
		ssize_t n = read(*fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto fail;
		}
		if (n == 0)
			return 0;
		if (b->cap && b->len + (size_t)n > b->cap) {
			r = -EFBIG;
			goto fail;
		}
		buf_add(b, tmp, (size_t)n);
	}
fail:
	close(*fd);
	*fd = -1;
	return r;
}

/* The message for an open_managed() failure other than -ENOENT/-ELOOP. */
static const char *managed_err(int r)
{
	if (r == -EINVAL)
		return "exists and is not a regular file";
	if (r == -EAGAIN)
		return "changed while being read (replaced by something else)";
	return strerror(-r);
}

enum res_status res_file_converge(struct res_ctx *ctx, const struct file_want *w,
				  struct res_result *out)
{
	char *full = path_join(ctx->root, w->path), *link = NULL;
	struct buf old, diff;
	struct stat st;
	bool exists = true, content_differs, attrs_differ = false;
	int r, mode, fd = -1;
	uid_t uid = w->uid;
	gid_t gid = w->gid;
	enum res_status ret = RES_FAILED;

	buf_init(&old, RES_FILE_CAP);
	buf_init(&diff, RES_DIFF_CAP);
	char why[PATH_MAX + 128];
	if (parents_trusted(ctx->root, w->path, why, sizeof(why)) < 0) {
		res_fail(out, "%s: %s", w->path, why);
		goto out;
	}
	/*
	 * Never follow a symlink at a managed path: a node user who owns the
	 * directory (~/.ssh) could point it at /etc/shadow and have the diff
	 * show it.  A link counts as "no file"; apply renames the file over it.
	 */
	r = open_managed(full, &old, &st, &fd, &link);
	if (r == -ENOENT || r == -ELOOP) {
		exists = false;
	} else if (r < 0) {
		res_fail(out, "%s: %s", w->path, managed_err(r));
		goto out;
	}
	content_differs = !exists || old.len != w->len || memcmp(old.s, w->content, w->len);
	mode = w->mode >= 0 ? w->mode : exists ? (int)(st.st_mode & 07777) : 0644;
	if (content_differs) {
		if (link)
			res_note(out, "replace symlink %s -> %s", w->path, link);
		else if (!exists)
			res_note(out, "create %s", w->path);
		if (w->secret)
			res_note(out, "content differs (secret: not shown)");
		else if (has_nul(old.s, old.len) || has_nul(w->content, w->len))
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
	if (!content_differs && !attrs_differ) {
		ret = RES_OK;
		goto out;
	}
	ret = RES_CHANGED;
	if (ctx->check_only)
		goto out;

	if (content_differs) {
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
	/* Attributes only: through the fd we read, never by name again. */
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0) {
		res_fail(out, "%s: chown: %s", w->path, strerror(errno));
		ret = RES_FAILED;
	} else if (fchmod(fd, (mode_t)mode) < 0) {   /* after chown: it clears setuid */
		res_fail(out, "%s: chmod: %s", w->path, strerror(errno));
		ret = RES_FAILED;
	}
out:
	if (fd >= 0)
		close(fd);
	buf_release(&old);
	buf_release(&diff);
	free(link);
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
		.secret = res_bool(r, "secret", false),
	};

	int pending = res_resolve_owner(ctx, res_str(r, "owner"), res_str(r, "group"),
					&w.uid, &w.gid, out, &e);

	if (pending < 0) {
		res_fail(out, "%s", e.msg);
		return;
	}
	out->status = res_file_converge(ctx, &w, out);
	if (pending && out->status == RES_OK)
		out->status = RES_CHANGED;   /* the owner/group change is still to come */
}

static const struct field file_fields[] = {
	{ "path", F_PATH, true, NULL },
	{ "content", F_TEXT, true, NULL },
	{ "mode", F_MODE, false, NULL },
	{ "owner", F_STR, false, NULL },
	{ "group", F_STR, false, NULL },
	{ "secret", F_BOOL, false, NULL },
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

	int pending = res_resolve_owner(ctx, res_str(r, "owner"), res_str(r, "group"),
					&uid, &gid, out, &e);

	if (pending < 0) {
		res_fail(out, "%s", e.msg);
		goto out;
	}
	char why[PATH_MAX + 128];
	if (parents_trusted(ctx->root, path, why, sizeof(why)) < 0) {
		res_fail(out, "%s: %s", path, why);
		goto out;
	}
	if (lstat(full, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			res_fail(out, "%s: exists and is not a directory", path);
			goto out;
		}
		if (!note_attrs(out, &st, mode, uid, gid) && !pending)
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
	char *full = path_join(ctx->root, path), *link = NULL;
	struct buf cur, next;
	struct stat st;
	regex_t re;
	int q, fd;

	buf_init(&cur, RES_FILE_CAP);
	buf_init(&next, RES_FILE_CAP);
	if (rx && regcomp(&re, rx, REG_EXTENDED | REG_NOSUB) != 0) {
		res_fail(out, "%s: bad regexp '%s'", path, rx);
		rx = NULL;
		goto out;
	}
	char why[PATH_MAX + 128];
	if (parents_trusted(ctx->root, path, why, sizeof(why)) < 0) {
		res_fail(out, "%s: %s", path, why);
		goto out_re;
	}
	/* Never through a symlink (O_NOFOLLOW): that could edit or show
	 * another file; a link here is a clear failure, not a guess. */
	q = open_managed(full, &cur, &st, &fd, &link);
	if (fd >= 0)
		close(fd);
	if (q == -ELOOP) {
		res_fail(out, "%s: is a symlink (-> %s); line resources do not edit "
			 "through symlinks", path, link);
		goto out_re;
	}
	if (q < 0 && q != -ENOENT) {
		res_fail(out, "%s: %s", path, managed_err(q));
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
	free(link);
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
