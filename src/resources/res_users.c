/*
 * Users and groups: lookups read ROOT/etc/passwd and ROOT/etc/group
 * directly (the agent is static, and a prefix root has its own files);
 * changes go through shadow's useradd/usermod/groupadd, with --prefix when
 * the root is not "/".  A user's authorized_keys is the exact key set given.
 */
#include "res_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DB_CAP (16u << 20)

void pwent_release(struct pwent *p)
{
	if (!p)
		return;
	free(p->home);
	free(p->shell);
	p->home = p->shell = NULL;
}

/*
 * Find the colon-separated record whose first field is name in ROOT/file,
 * split into at most nf fields (the last keeps the rest).  Returns the
 * number of fields, -ENOENT when not there, or -errno.
 */
static int db_find(const char *root, const char *file, const char *name,
		   char **f, int nf)
{
	char *path = path_join(root, file);
	struct buf b;
	int r;

	buf_init(&b, DB_CAP);
	if ((r = file_read(path, &b, DB_CAP)) < 0)
		goto out;
	r = -ENOENT;
	size_t nlen = strlen(name);
	for (char *p = b.s; *p;) {
		size_t n = strcspn(p, "\n");
		if (n > nlen && !strncmp(p, name, nlen) && p[nlen] == ':') {
			char *line = xstrndup(p, n), *s = line;
			int k = 0;
			while (k < nf - 1) {
				char *c = strchr(s, ':');
				if (!c)
					break;
				f[k++] = xstrndup(s, (size_t)(c - s));
				s = c + 1;
			}
			f[k++] = xstrdup(s);
			free(line);
			r = k;
			break;
		}
		p += n + (p[n] == '\n');
	}
out:
	buf_release(&b);
	free(path);
	return r;
}

static void fields_free(char **f, int n)
{
	for (int i = 0; i < n; i++)
		free(f[i]);
}

int passwd_find(const char *root, const char *name, struct pwent *out)
{
	char *f[7] = { 0 };
	uint64_t uid, gid;
	int n = db_find(root, "/etc/passwd", name, f, 7);

	if (n < 0)
		return n;
	if (n < 7 || parse_u64(f[2], 0, UINT32_MAX - 1, &uid) < 0 ||
	    parse_u64(f[3], 0, UINT32_MAX - 1, &gid) < 0) {
		fields_free(f, n);
		return -EBADMSG;
	}
	out->uid = (uid_t)uid;
	out->gid = (gid_t)gid;
	out->home = f[5];
	out->shell = f[6];
	f[5] = f[6] = NULL;
	fields_free(f, n);
	return 0;
}

int group_find(const char *root, const char *name, gid_t *gid, struct strv *members)
{
	char *f[4] = { 0 };
	uint64_t g;
	int n = db_find(root, "/etc/group", name, f, 4);

	if (n < 0)
		return n;
	if (n < 4 || parse_u64(f[2], 0, UINT32_MAX - 1, &g) < 0) {
		fields_free(f, n);
		return -EBADMSG;
	}
	if (gid)
		*gid = (gid_t)g;
	if (members) {
		for (char *s = f[3]; *s;) {
			size_t k = strcspn(s, ",");
			if (k)
				strv_take(members, xstrndup(s, k));
			s += k + (s[k] == ',');
		}
	}
	fields_free(f, n);
	return 0;
}

/* Does useradd make a same-named group for each user here (USERGROUPS_ENAB
 * in ROOT/etc/login.defs, which useradd --prefix reads too)? */
static bool user_groups_enabled(const struct res_ctx *ctx)
{
	char *path = path_join(ctx->root, "/etc/login.defs");
	struct buf b;
	bool yes = false;

	buf_init(&b, DB_CAP);
	if (file_read(path, &b, DB_CAP) == 0) {
		for (const char *p = b.s; *p;) {
			size_t n = strcspn(p, "\n");
			const char *q = p + strspn(p, " \t");
			if (str_starts(q, "USERGROUPS_ENAB")) {
				q += strlen("USERGROUPS_ENAB");
				q += strspn(q, " \t");
				yes = !strncasecmp(q, "yes", 3);
			}
			p += n + (p[n] == '\n');
		}
	}
	buf_release(&b);
	free(path);
	return yes;
}

/*
 * Check mode only: would an earlier resource in this run create the user
 * (kind "user") or group (kind "group") called name?  A group may also come
 * from useradd's user private group, so a pending user:NAME counts for it
 * where login.defs enables those.  A pending package install counts for
 * any name: maintainer scripts make system users (munge, slurm).
 */
static bool res_pending(const struct res_ctx *ctx, const char *kind, const char *name)
{
	char *id = xasprintf("%s:%s", kind, name);
	bool yes = strv_contains(&ctx->changed, id);

	free(id);
	for (size_t i = 0; !yes && i < ctx->changed.n; i++)
		yes = !strncmp(ctx->changed.v[i], "package:", 8);
	if (!yes && !strcmp(kind, "group") && res_pending(ctx, "user", name))
		return user_groups_enabled(ctx);
	return yes;
}

int res_resolve_owner(const struct res_ctx *ctx, const char *owner, const char *group,
		      uid_t *uid, gid_t *gid, struct res_result *out, struct kerr *e)
{
	uint64_t n;
	int r, pending = 0;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (owner && parse_u64(owner, 0, UINT32_MAX - 1, &n) == 0) {
		*uid = (uid_t)n;
	} else if (owner) {
		struct pwent p = { 0 };
		r = passwd_find(ctx->root, owner, &p);
		if (r == -ENOENT && ctx->check_only && res_pending(ctx, "user", owner)) {
			pending |= 1;
		} else if (r < 0) {
			return kerr_set(e, r, "owner '%s': %s", owner,
					r == -ENOENT ? "no such user" : strerror(-r));
		} else {
			*uid = p.uid;
		}
		pwent_release(&p);
	}
	if (group && parse_u64(group, 0, UINT32_MAX - 1, &n) == 0) {
		*gid = (gid_t)n;
	} else if (group && (r = group_find(ctx->root, group, gid, NULL)) < 0) {
		*gid = (gid_t)-1;
		if (r == -ENOENT && ctx->check_only && res_pending(ctx, "group", group)) {
			pending |= 2;
		} else {
			return kerr_set(e, r, "group '%s': %s", group,
					r == -ENOENT ? "no such group" : strerror(-r));
		}
	}
	/* Notes only once both resolved: a failure stands alone. */
	if (pending & 1)
		res_note(out, "owner %s: user created earlier in this run (uid unresolved)",
			 owner);
	if (pending & 2)
		res_note(out, "group %s: group created earlier in this run (gid unresolved)",
			 group);
	return pending ? 1 : 0;
}

/* shadow tools take --prefix for a root that is not "/". */
static void push_prefix(struct strv *argv, const struct res_ctx *ctx)
{
	if (!res_is_live(ctx)) {
		strv_push(argv, "--prefix");
		strv_push(argv, ctx->root);
	}
}

/* Portable-ish user/group names: no options, no separators. */
static bool name_ok(const char *s)
{
	if (!*s || *s == '-' || strlen(s) > 32)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

/* name, and every group in groups, must be a valid name. */
static int name_validate(const json_t *r, const char *id, struct kerr *e)
{
	json_t *g = json_object_get(r, "groups");
	size_t i;
	json_t *x;

	if (!name_ok(res_str(r, "name")))
		return kerr_set(e, -EINVAL, "resource '%s': field 'name': not a valid "
				"user or group name", id);
	json_array_foreach(g, i, x)
		if (!name_ok(json_string_value(x)))
			return kerr_set(e, -EINVAL, "resource '%s': field 'groups': '%s' "
					"is not a valid group name", id, json_string_value(x));
	return 0;
}

/* ---- group ---- */

/* group: exists in ROOT/etc/group, else groupadd. */
static void group_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *name = res_str(r, "name");
	struct strv argv = STRV_INIT;
	struct kerr e = { 0 };
	int q = group_find(ctx->root, name, NULL, NULL);

	if (q == 0)
		return;
	if (q != -ENOENT) {
		res_fail(out, "group '%s': /etc/group: %s", name, strerror(-q));
		return;
	}
	out->status = RES_CHANGED;
	res_note(out, "create group %s", name);
	if (ctx->check_only)
		return;
	strv_push(&argv, "groupadd");
	push_prefix(&argv, ctx);
	strv_push(&argv, name);
	if (res_run(argv.v, NULL, NULL, NULL, 60000, &e) < 0)
		res_fail(out, "group '%s': %s", name, e.msg);
	strv_release(&argv);
}

static const struct field group_fields[] = {
	{ "name", F_STR, true, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_group = {
	.name = "group", .id_field = "name", .fields = group_fields,
	.validate = name_validate, .run = group_run,
};

/* ---- user ---- */

/* Join the strings of a JSON array with sep (caller frees). */
static char *json_join(const json_t *a, const char *sep)
{
	struct buf b;
	size_t i;
	json_t *x;

	buf_init(&b, 0);
	json_array_foreach(a, i, x) {
		if (i)
			buf_adds(&b, sep);
		buf_adds(&b, json_string_value(x));
	}
	return buf_detach(&b, NULL);
}

/* The groups of r that name is not yet a member of (by ROOT/etc/group). */
static int missing_groups(const struct res_ctx *ctx, const json_t *r,
			  const char *name, gid_t primary, json_t *missing,
			  struct res_result *out)
{
	size_t i;
	json_t *x;

	json_array_foreach(json_object_get(r, "groups"), i, x) {
		struct strv members = STRV_INIT;
		gid_t gid;
		const char *g = json_string_value(x);
		int q = group_find(ctx->root, g, &gid, &members);
		if (q == -ENOENT && ctx->check_only && res_pending(ctx, "group", g)) {
			/* Check mode: an earlier resource creates it; apply will see it. */
			json_array_append_new(missing, json_string(g));
			strv_release(&members);
			continue;
		}
		if (q == -ENOENT) {
			/* useradd/usermod will fail on it: say so before acting. */
			res_fail(out, "user '%s': group '%s' does not exist", name, g);
			strv_release(&members);
			return -ENOENT;
		}
		if (q < 0) {
			res_fail(out, "user '%s': /etc/group: %s", name, strerror(-q));
			strv_release(&members);
			return q;
		}
		if (gid != primary && !strv_contains(&members, name))
			json_array_append_new(missing, json_string(g));
		strv_release(&members);
	}
	return 0;
}

/* Converge ~/.ssh (0700) and ~/.ssh/authorized_keys (0600) owned by the user. */
static void user_keys(struct res_ctx *ctx, const json_t *keys, const char *name,
		      const struct pwent *pw, struct res_result *out)
{
	char *ssh = xasprintf("%s/.ssh", strcmp(pw->home, "/") ? pw->home : "");
	char *full = path_join(ctx->root, ssh);
	char *ak = xasprintf("%s/authorized_keys", ssh);
	char *content = json_join(keys, "\n");
	char *text = *content ? xasprintf("%s\n", content) : xstrdup("");
	struct stat st;

	if (lstat(full, &st) < 0 || !S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0700 ||
	    st.st_uid != pw->uid || st.st_gid != pw->gid) {
		bool exists = lstat(full, &st) == 0;
		if (exists && !S_ISDIR(st.st_mode)) {
			res_fail(out, "user '%s': %s is not a directory", name, ssh);
			goto out;
		}
		out->status = RES_CHANGED;
		res_note(out, exists ? "fix %s mode/owner" : "create %s", ssh);
		if (!ctx->check_only) {
			if (!exists && mkdir(full, 0700) < 0) {
				res_fail(out, "user '%s': mkdir %s: %s", name, ssh,
					 strerror(errno));
				goto out;
			}
			/* Through an O_NOFOLLOW fd: the user owns the home and could
			 * swap ~/.ssh for a link between the lstat and here. */
			int fd = open(full, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 || fchown(fd, pw->uid, pw->gid) < 0 || fchmod(fd, 0700) < 0) {
				res_fail(out, "user '%s': %s: %s", name, ssh, strerror(errno));
				if (fd >= 0)
					close(fd);
				goto out;
			}
			close(fd);
		}
	}
	struct file_want w = {
		.path = ak, .content = text, .len = strlen(text), .mode = 0600,
		.uid = pw->uid, .gid = pw->gid, .dir_mode = 0700,
	};
	enum res_status s = res_file_converge(ctx, &w, out);
	if (s == RES_FAILED)
		out->status = RES_FAILED;
	else if (s == RES_CHANGED && out->status == RES_OK)
		out->status = RES_CHANGED;
out:
	free(ssh);
	free(full);
	free(ak);
	free(content);
	free(text);
}

/*
 * user: exists with the shell and home given and is a member of at least
 * the groups given (useradd/usermod); then the exact authorized_keys set.
 */
static void user_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *name = res_str(r, "name"), *shell = res_str(r, "shell");
	const char *home = res_str(r, "home");
	json_t *keys = json_object_get(r, "authorized_keys");
	json_t *missing = json_array();
	struct strv argv = STRV_INIT;
	struct pwent pw = { 0 };
	struct kerr e = { 0 };
	int q = passwd_find(ctx->root, name, &pw);

	if (q < 0 && q != -ENOENT) {
		res_fail(out, "user '%s': /etc/passwd: %s", name, strerror(-q));
		goto out;
	}
	if (missing_groups(ctx, r, name, q == 0 ? pw.gid : (gid_t)-1, missing, out) < 0)
		goto out;
	if (q == -ENOENT) {
		out->status = RES_CHANGED;
		res_note(out, "create user %s", name);
		strv_push(&argv, "useradd");
		strv_push(&argv, "--create-home");
		if (home) {
			strv_push(&argv, "--home-dir");
			strv_push(&argv, home);
		}
	} else {
		if (shell && strcmp(shell, pw.shell))
			res_note(out, "shell %s -> %s", pw.shell, shell);
		if (home && strcmp(home, pw.home))
			res_note(out, "home %s -> %s", pw.home, home);
		if (json_array_size(missing)) {
			char *g = json_join(missing, ",");
			res_note(out, "add to groups %s", g);
			free(g);
		}
		if (out->message) {
			out->status = RES_CHANGED;
			strv_push(&argv, "usermod");
			if (home && strcmp(home, pw.home)) {
				strv_push(&argv, "--home");
				strv_push(&argv, home);
			}
			if (json_array_size(missing))
				strv_push(&argv, "--append");
		}
	}
	if (argv.n) {
		push_prefix(&argv, ctx);
		if (shell) {
			strv_push(&argv, "--shell");
			strv_push(&argv, shell);
		}
		if (json_array_size(missing)) {
			strv_push(&argv, "--groups");
			strv_take(&argv, json_join(missing, ","));
		}
		strv_push(&argv, name);
		if (!ctx->check_only) {
			if (res_run(argv.v, NULL, NULL, NULL, 60000, &e) < 0) {
				res_fail(out, "user '%s': %s", name, e.msg);
				goto out;
			}
			pwent_release(&pw);
			if ((q = passwd_find(ctx->root, name, &pw)) < 0) {
				res_fail(out, "user '%s': not in /etc/passwd after %s", name,
					 argv.v[0]);
				goto out;
			}
		}
	}
	if (keys) {
		if (q == -ENOENT) {
			/* Check mode, user to be created: show the keys file it gets. */
			pw.home = home ? xstrdup(home) : xasprintf("/home/%s", name);
			pw.uid = (uid_t)-1;
			pw.gid = (gid_t)-1;
		}
		user_keys(ctx, keys, name, &pw, out);
	}
out:
	pwent_release(&pw);
	strv_release(&argv);
	json_decref(missing);
}

static const struct field user_fields[] = {
	{ "name", F_STR, true, NULL },
	{ "shell", F_PATH, false, NULL },
	{ "groups", F_STRV, false, NULL },
	{ "authorized_keys", F_STRV, false, NULL },
	{ "home", F_PATH, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_user = {
	.name = "user", .id_field = "name", .fields = user_fields,
	.validate = name_validate, .run = user_run,
};
