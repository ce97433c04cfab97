/*
 * Resources that drive other programs: package (apt or dnf), service
 * (systemctl) and command (/bin/sh -c with creates/unless guards), plus the
 * child-process helpers they share.
 */
#include "res_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PKG_TIMEOUT_MS (30 * 60 * 1000)
#define CMD_TIMEOUT_MS (60 * 60 * 1000)

/*
 * The full path of program name: PATH first, then the sbin and bin
 * directories, because a non-login SSH session's PATH often lacks sbin
 * (useradd, modprobe, swapoff live there).  NULL when not found.
 */
static char *res_which(const char *name)
{
	const char *path = getenv("PATH");
	char *copy = xasprintf("%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
			       "/sbin:/bin", path ? path : "");
	char *save = NULL, *found = NULL;

	if (strchr(name, '/')) {
		free(copy);
		return xstrdup(name);
	}
	for (char *d = strtok_r(copy, ":", &save); d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", d, name);
		if (*d && access(p, X_OK) == 0)
			found = p;
		else
			free(p);
	}
	free(copy);
	return found;
}

bool res_have_exe(const char *name)
{
	char *p = res_which(name);
	free(p);
	return p != NULL;
}

/* run_argv with argv[0] looked up by res_which(). */
static int run_found(char *const argv[], const struct run_opts *o, int *status)
{
	size_t n = 0;
	while (argv[n])
		n++;
	char **v = xcalloc(n + 1, sizeof(*v));
	char *exe = res_which(argv[0]);
	int r;

	memcpy(v, argv, n * sizeof(*v));
	if (exe)
		v[0] = exe;
	r = run_argv(v, o, status);
	free(exe);
	free(v);
	return r;
}

int res_run_opts(char *const argv[], const struct run_opts *o, struct kerr *e)
{
	char *exe = res_which(argv[0]);
	char **v;
	size_t n = 0;
	int r;

	if (!exe)
		return kerr_set(e, -ENOENT, "%s: command not found", argv[0]);
	while (argv[n])
		n++;
	v = xcalloc(n + 1, sizeof(*v));
	memcpy(v, argv, n * sizeof(*v));
	v[0] = exe;
	r = run_ok(v, o, e);
	if (r == -ETIMEDOUT) {
		kerr_set(e, r, "%s: timed out after %d s", argv[0], o->timeout_ms / 1000);
	} else if (r < 0 && e && str_starts(e->msg, exe)) {
		/* Name the program as the caller did, not by its full path. */
		char rest[sizeof(e->msg)];
		snprintf(rest, sizeof(rest), "%s", e->msg + strlen(exe));
		kerr_set(e, r, "%s%s", argv[0], rest);
	}
	free(exe);
	free(v);
	return r;
}

int res_run(char *const argv[], const char *cwd, char *const *env, struct buf *out,
	    int timeout_ms, struct kerr *e)
{
	struct run_opts o = { .out = out, .timeout_ms = timeout_ms, .cwd = cwd,
			      .env = env };
	return res_run_opts(argv, &o, e);
}

/* ---- package ---- */

enum pkg_mgr { PKG_NONE, PKG_APT, PKG_DNF };

static enum pkg_mgr pkg_detect(const struct res_ctx *ctx)
{
	char *dpkg = path_join(ctx->root, "/var/lib/dpkg/status");
	char *rpm = path_join(ctx->root, "/var/lib/rpm");
	enum pkg_mgr m = PKG_NONE;

	if (path_exists(dpkg) && res_have_exe("dpkg-query"))
		m = PKG_APT;
	else if (path_exists(rpm) && res_have_exe("rpm"))
		m = PKG_DNF;
	free(dpkg);
	free(rpm);
	return m;
}

/*
 * A requested name is NAME, NAME:ARCH, or either with "=VERSION" (a pin).
 * The base is what dpkg-query's ${Package} and rpm's %{NAME} print.
 */
static size_t pkg_base_len(const char *name)
{
	return strcspn(name, ":=");
}

/* The pinned version of a requested name, or NULL. */
static const char *pkg_pin(const char *name)
{
	const char *eq = strchr(name, '=');
	return eq ? eq + 1 : NULL;
}

/* The name as the manager's tools take it: apt "bash=1.0" (dpkg-query gets
 * "bash" only), dnf/rpm "bash-1.0". */
static char *pkg_arg(enum pkg_mgr m, const char *name, bool for_query)
{
	const char *pin = pkg_pin(name);
	size_t n = pin ? (size_t)(pin - 1 - name) : strlen(name);

	if (!pin || (m == PKG_APT && !for_query))
		return xstrdup(name);
	if (m == PKG_APT)
		return xstrndup(name, n);
	return xasprintf("%.*s-%s", (int)n, name, pin);
}

/* Does an installed version satisfy the pin?  rpm's is VERSION-RELEASE, and
 * a pin may name the version alone. */
static bool pkg_version_ok(enum pkg_mgr m, const char *have, size_t len, const char *pin)
{
	size_t n;

	if (!pin)
		return true;
	n = strlen(pin);
	if (len == n && !strncmp(have, pin, n))
		return true;
	return m == PKG_DNF && len > n && !strncmp(have, pin, n) && have[n] == '-';
}

/* Is the query output line p (len bytes, "NAME\tSTATUS\tVERSION") the
 * installed base name (n bytes of name) at the pinned version, if any? */
static bool pkg_line_ok(enum pkg_mgr m, const char *p, size_t len, const char *name,
			size_t n, const char *pin)
{
	static const char inst[] = "installed";
	const size_t il = sizeof(inst) - 1;

	if (len < n + 1 + il || strncmp(p, name, n) || p[n] != '\t' ||
	    strncmp(p + n + 1, inst, il))
		return false;
	const char *rest = p + n + 1 + il, *end = p + len;
	if (rest < end && *rest != '\t')
		return false;   /* a longer status word */
	if (!pin)
		return true;
	return rest < end && pkg_version_ok(m, rest + 1, (size_t)(end - rest - 1), pin);
}

/*
 * Which of names are installed (at the pinned version, when pinned): one
 * dpkg-query or rpm -q for the whole list, printing name, status and
 * version.  Sets installed[i]; -errno only when the tool could not run.
 */
static int pkg_query(const struct res_ctx *ctx, enum pkg_mgr m, const json_t *names,
		     bool *installed, struct kerr *e)
{
	struct strv argv = STRV_INIT;
	struct buf out;
	size_t i;
	json_t *x;
	int st = 0, r;

	buf_init(&out, 16u << 20);
	if (m == PKG_APT) {
		strv_push(&argv, "dpkg-query");
		if (!res_is_live(ctx))
			strv_take(&argv, xasprintf("--admindir=%s/var/lib/dpkg", ctx->root));
		strv_push(&argv, "-W");
		strv_push(&argv, "-f=${Package}\t${db:Status-Status}\t${Version}\n");
	} else {
		strv_push(&argv, "rpm");
		if (!res_is_live(ctx)) {
			strv_push(&argv, "--root");
			strv_push(&argv, ctx->root);
		}
		strv_push(&argv, "-q");
		strv_push(&argv, "--qf");
		strv_push(&argv, "%{NAME}\tinstalled\t%{VERSION}-%{RELEASE}\n");
	}
	strv_push(&argv, "--");
	json_array_foreach(names, i, x)
		strv_take(&argv, pkg_arg(m, json_string_value(x), true));
	struct run_opts o = { .out = &out, .timeout_ms = 120000 };
	/* Both exit non-zero when some name is unknown: read stdout anyway. */
	if ((r = run_found(argv.v, &o, &st)) < 0) {
		kerr_set(e, r, "%s: %s", argv.v[0], strerror(-r));
		goto out;
	}
	json_array_foreach(names, i, x) {
		const char *name = json_string_value(x), *pin = pkg_pin(name);
		size_t n = pkg_base_len(name);
		installed[i] = false;
		for (const char *p = out.s; *p;) {
			size_t len = strcspn(p, "\n");
			if (pkg_line_ok(m, p, len, name, n, pin))
				installed[i] = true;
			p += len + (p[len] == '\n');
		}
	}
out:
	buf_release(&out);
	strv_release(&argv);
	return r;
}

/* Package names only (they go on apt-get/dnf command lines); at most one
 * "=VERSION" pin, and none with state absent. */
static int pkg_validate(const json_t *r, const char *id, struct kerr *e)
{
	json_t *names = json_object_get(r, "names");
	const char *state = res_str(r, "state");
	size_t i;
	json_t *x;

	if (!json_array_size(names))
		return kerr_set(e, -EINVAL, "resource '%s': field 'names': empty", id);
	json_array_foreach(names, i, x) {
		const char *s = json_string_value(x), *pin = pkg_pin(s);
		size_t ok = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "0123456789+-._:~=");
		if (*s == '-' || *s == '=' || ok != strlen(s) ||
		    (pin && (!*pin || strchr(pin, '='))))
			return kerr_set(e, -EINVAL, "resource '%s': field 'names': '%s' is "
					"not a package name", id, s);
		if (pin && state && !strcmp(state, "absent"))
			return kerr_set(e, -EINVAL, "resource '%s': field 'names': '%s': a "
					"version pin needs state present", id, s);
	}
	return 0;
}

/* Build the install/remove command line for the manager. */
static void pkg_argv(enum pkg_mgr m, bool present, const json_t *todo, struct strv *argv)
{
	size_t i;
	json_t *x;

	if (m == PKG_APT) {
		strv_push(argv, "apt-get");
		strv_push(argv, "-y");
		strv_push(argv, "-q");
		if (present) {
			strv_push(argv, "-o");
			strv_push(argv, "Dpkg::Options::=--force-confdef");
			strv_push(argv, "-o");
			strv_push(argv, "Dpkg::Options::=--force-confold");
			strv_push(argv, "install");
			strv_push(argv, "--no-install-recommends");
			/* A pin below the installed version is a downgrade. */
			json_array_foreach(todo, i, x)
				if (pkg_pin(json_string_value(x))) {
					strv_push(argv, "--allow-downgrades");
					break;
				}
		} else {
			strv_push(argv, "remove");
		}
	} else {
		strv_push(argv, res_have_exe("dnf") ? "dnf" : "yum");
		strv_push(argv, "-y");
		strv_push(argv, present ? "install" : "remove");
	}
	strv_push(argv, "--");
	json_array_foreach(todo, i, x)
		strv_take(argv, pkg_arg(m, json_string_value(x), false));
}

/*
 * package: query the database once for all names; install (or remove) the
 * ones not in the wanted state, then query again: success is what the
 * database says, not the installer's exit status.
 */
static void package_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	json_t *names = json_object_get(r, "names"), *todo = json_array();
	const char *state = res_str(r, "state");
	bool present = !state || !strcmp(state, "present");
	size_t n = json_array_size(names), i;
	bool *inst = xcalloc(n, sizeof(*inst));
	struct strv argv = STRV_INIT, env = STRV_INIT;
	enum pkg_mgr m = pkg_detect(ctx);
	struct kerr e = { 0 };
	json_t *x;

	if (m == PKG_NONE) {
		res_fail(out, "no package manager found (no dpkg or rpm database under %s)",
			 ctx->root);
		goto out;
	}
	if (pkg_query(ctx, m, names, inst, &e) < 0) {
		res_fail(out, "%s", e.msg);
		goto out;
	}
	json_array_foreach(names, i, x)
		if (inst[i] != present)
			json_array_append(todo, x);
	if (!json_array_size(todo))
		goto out;
	out->status = RES_CHANGED;
	struct buf list;
	buf_init(&list, 0);
	json_array_foreach(todo, i, x)
		buf_printf(&list, "%s%s", i ? " " : "", json_string_value(x));
	res_note(out, "%s %s", present ? "install" : "remove", list.s);
	buf_release(&list);
	if (ctx->check_only)
		goto out;
	if (!res_is_live(ctx)) {
		res_fail(out, "installing packages under a prefix root (%s) is not "
			 "supported", ctx->root);
		goto out;
	}
	for (char **p = environ; p && *p; p++)
		if (!str_starts(*p, "DEBIAN_FRONTEND="))
			strv_push(&env, *p);
	strv_push(&env, "DEBIAN_FRONTEND=noninteractive");
	pkg_argv(m, present, todo, &argv);
	if (res_run(argv.v, NULL, env.v, NULL, PKG_TIMEOUT_MS, &e) < 0) {
		/*
		 * apt's package lists may be stale or empty (a fresh node, a
		 * repository added by an earlier resource): refresh once, retry.
		 */
		char *update[] = { "apt-get", "-q", "update", NULL };
		if (m != PKG_APT || !present ||
		    res_run(update, NULL, env.v, NULL, PKG_TIMEOUT_MS, &e) < 0 ||
		    res_run(argv.v, NULL, env.v, NULL, PKG_TIMEOUT_MS, &e) < 0) {
			res_fail(out, "%s", e.msg);
			goto out;
		}
	}
	/* Trust the database, not the exit status alone. */
	if (pkg_query(ctx, m, todo, inst, &e) < 0) {
		res_fail(out, "%s", e.msg);
		goto out;
	}
	json_array_foreach(todo, i, x)
		if (inst[i] != present)
			res_fail(out, "package '%s' still %s after %s", json_string_value(x),
				 present ? "missing" : "installed", argv.v[0]);
out:
	free(inst);
	json_decref(todo);
	strv_release(&argv);
	strv_release(&env);
}

static const struct field package_fields[] = {
	{ "names", F_STRV, true, NULL },
	{ "state", F_ENUM, false, "present|absent" },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_package = {
	.name = "package", .id_field = "names", .fields = package_fields,
	.validate = pkg_validate, .run = package_run,
};

/* ---- service ---- */

/* First line of `systemctl VERB name` output ("enabled", "active", ...). */
static char *systemctl_query(const char *verb, const char *name)
{
	char *argv[] = { "systemctl", (char *)verb, "--", (char *)name, NULL };
	struct buf out;
	struct run_opts o = { .out = &out, .timeout_ms = 60000 };
	int st;

	buf_init(&out, 4096);
	run_found(argv, &o, &st);   /* non-zero exit just means "not enabled/active" */
	out.s[strcspn(out.s, "\n")] = '\0';
	char *s = xstrdup(out.s);
	buf_release(&out);
	return s;
}

static int systemctl_do(const char *verb, const char *name, struct kerr *e)
{
	char *argv[] = { "systemctl", (char *)verb, "--", (char *)name, NULL };
	char *reload[] = { "systemctl", "daemon-reload", NULL };
	return res_run(name ? argv : reload, NULL, NULL, NULL, 300000, e);
}

/* A unit name, not an option or a path. */
static int service_validate(const json_t *r, const char *id, struct kerr *e)
{
	const char *n = res_str(r, "name");

	if (*n == '-' || strchr(n, '/') || strchr(n, ' '))
		return kerr_set(e, -EINVAL, "resource '%s': field 'name': not a unit name",
				id);
	return 0;
}

/*
 * service: enabled and running state through systemctl, and a restart when
 * a watched resource changed earlier in this run.  Fails clearly without
 * systemd.
 */
static void service_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *name = res_str(r, "name"), *state = res_str(r, "state");
	json_t *en = json_object_get(r, "enabled");
	char *marker = path_join(ctx->root, "/run/systemd/system");
	char *is_en = NULL, *is_act = NULL;
	const char *trigger = NULL;
	struct kerr e = { 0 };
	size_t i;
	json_t *x;

	if (!path_exists(marker)) {
		res_fail(out, "no systemd on this node: cannot manage service '%s'", name);
		goto out;
	}
	json_array_foreach(json_object_get(r, "watch"), i, x)
		if (!trigger && strv_contains(&ctx->changed, json_string_value(x)))
			trigger = json_string_value(x);
	is_en = systemctl_query("is-enabled", name);
	is_act = systemctl_query("is-active", name);
	bool enabled = !strcmp(is_en, "enabled") || !strcmp(is_en, "enabled-runtime");
	/* Units that cannot be enabled by symlink (no [Install], aliases,
	 * generated) are as enabled as they get: "enable" would never stick. */
	bool enabled_enough = enabled || !strcmp(is_en, "static") ||
			      !strcmp(is_en, "alias") || !strcmp(is_en, "indirect") ||
			      !strcmp(is_en, "generated");
	bool active = !strcmp(is_act, "active");
	bool want_en = json_is_true(en), want_run = state && !strcmp(state, "running");
	bool do_enable = en && (want_en ? !enabled_enough : enabled);
	bool do_state = state && active != want_run;
	/* Any running service whose watched resource changed restarts,
	 * unless it is being stopped. */
	bool do_restart = trigger && active && (!state || want_run);

	if (do_enable)
		res_note(out, "%s %s", want_en ? "enable" : "disable", name);
	if (do_state)
		res_note(out, "%s %s", want_run ? "start" : "stop", name);
	if (do_restart)
		res_note(out, "restart %s (%s changed)", name, trigger);
	if (!do_enable && !do_state && !do_restart)
		goto out;
	out->status = RES_CHANGED;
	if (ctx->check_only)
		goto out;
	if ((trigger && systemctl_do("daemon-reload", NULL, &e) < 0) ||
	    (do_enable && systemctl_do(want_en ? "enable" : "disable", name, &e) < 0) ||
	    (do_state && systemctl_do(want_run ? "start" : "stop", name, &e) < 0) ||
	    (do_restart && systemctl_do("restart", name, &e) < 0))
		res_fail(out, "service '%s': %s", name, e.msg);
out:
	free(marker);
	free(is_en);
	free(is_act);
}

static const struct field service_fields[] = {
	{ "name", F_STR, true, NULL },
	{ "enabled", F_BOOL, false, NULL },
	{ "state", F_ENUM, false, "running|stopped" },
	{ "watch", F_STRV, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_service = {
	.name = "service", .id_field = "name", .fields = service_fields,
	.validate = service_validate, .run = service_run,
};

/* ---- command ---- */

/* command: /bin/sh -c in ROOT unless creates exists or unless exits 0. */
static void command_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *cmd = res_str(r, "command"), *creates = res_str(r, "creates");
	const char *unless = res_str(r, "unless");
	struct kerr e = { 0 };
	int st = 0;

	if (creates) {
		char *full = path_join(ctx->root, creates);
		bool there = path_exists(full);
		free(full);
		if (there)
			return;
	}
	if (unless) {
		/* The guard runs in check mode too: it must only look. */
		char *argv[] = { "/bin/sh", "-c", (char *)unless, NULL };
		struct run_opts o = { .cwd = ctx->root, .timeout_ms = 300000 };
		int q = run_argv(argv, &o, &st);
		if (q < 0) {
			res_fail(out, "unless: %s", strerror(-q));
			return;
		}
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			return;
	}
	out->status = RES_CHANGED;
	res_note(out, "%s: %s", ctx->check_only ? "would run" : "ran", cmd);
	if (ctx->check_only)
		return;
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	if (res_run(argv, ctx->root, NULL, NULL, CMD_TIMEOUT_MS, &e) < 0)
		res_fail(out, "%s", e.msg);
}

static const struct field command_fields[] = {
	{ "command", F_STR, true, NULL },
	{ "creates", F_PATH, false, NULL },
	{ "unless", F_STR, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_command = {
	.name = "command", .id_field = "command", .fields = command_fields,
	.run = command_run,
};
