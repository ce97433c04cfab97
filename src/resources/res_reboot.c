/*
 * reboot: whether the node needs a reboot for what earlier resources did
 * (a new kernel, a driver whose module the running kernel has not loaded).
 * The resource never reboots: "changed" is its request, and the apply
 * driver reboots the node after the phase, waits for it and goes on
 * (docs/resources.md "reboot", plan.c).  Under a root other than "/" only
 * files are read (ROOT/run/reboot-required, ROOT/sys/module/NAME/version).
 */
#include "res_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PKGS_SHOWN 512            /* bytes of reboot-required.pkgs in the message */

/* ROOT/path's first line (up to n-1 bytes), or "" when absent. */
static bool first_line(const struct res_ctx *ctx, const char *path, char *out, size_t n)
{
	char *p = xasprintf("%s%s", strcmp(ctx->root, "/") ? ctx->root : "", path);
	FILE *f = fopen(p, "re");
	bool ok = f && fgets(out, (int)n, f);

	free(p);
	if (f)
		fclose(f);
	if (!ok)
		out[0] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	return ok;
}

/* Debian's convention: a package's postinst touches /run/reboot-required. */
static void when_required(struct res_ctx *ctx, struct res_result *out)
{
	char *p = xasprintf("%s/run/reboot-required", strcmp(ctx->root, "/") ? ctx->root : "");
	bool needed = access(p, F_OK) == 0;
	char pkgs[PKGS_SHOWN] = "";

	free(p);
	if (!needed)
		return;
	/* the packages that asked, one per line: shown joined, bounded */
	char *q = xasprintf("%s/run/reboot-required.pkgs", strcmp(ctx->root, "/") ? ctx->root : "");
	FILE *f = fopen(q, "re");
	size_t len = 0;
	char line[128];
	while (f && fgets(line, sizeof(line), f) && len + 2 < sizeof(pkgs)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0])
			len += (size_t)snprintf(pkgs + len, sizeof(pkgs) - len, "%s%s",
						len ? ", " : "", line);
		if (len >= sizeof(pkgs))
			len = sizeof(pkgs) - 1;
	}
	if (f)
		fclose(f);
	free(q);
	out->status = RES_CHANGED;
	res_note(out, "reboot: /run/reboot-required%s%s%s", pkgs[0] ? " (" : "", pkgs,
		 pkgs[0] ? ")" : "");
}

/* A kernel module at the wanted version: loaded, or installed and not loaded. */
static void when_module(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *mod = res_str(r, "module"), *want = res_str(r, "version");
	char loaded[128], *path = xasprintf("/sys/module/%s/version", mod);

	if (first_line(ctx, path, loaded, sizeof(loaded))) {
		if (!want || !str_starts(loaded, want)) {
			out->status = RES_CHANGED;
			res_note(out, "reboot: module %s %s is loaded, %s wanted", mod, loaded,
				 want ? want : "another");
		}
		goto out;
	}
	if (!res_is_live(ctx))
		goto out;
	/* not loaded: a reboot loads it if the running kernel has it installed */
	struct buf v;
	struct kerr e = { 0 };
	char *argv[] = { "modinfo", "-F", "version", (char *)mod, NULL };
	buf_init(&v, 4096);
	if (res_run(argv, NULL, NULL, &v, 30000, &e) == 0 && v.s) {
		v.s[strcspn(v.s, "\r\n")] = '\0';
		if (v.s[0] && (!want || str_starts(v.s, want))) {
			out->status = RES_CHANGED;
			res_note(out, "reboot: module %s %s is installed, not loaded", mod, v.s);
		}
	}
	buf_release(&v);
out:
	free(path);
}

static int reboot_validate(const json_t *r, const char *id, struct kerr *e)
{
	const char *when = res_str(r, "when"), *mod = res_str(r, "module");

	if (!strcmp(when, "module") && !mod)
		return kerr_set(e, -EINVAL, "resource '%s': when 'module' needs field 'module'", id);
	if (mod && (*mod == '-' || strspn(mod, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
					  strlen(mod)))
		return kerr_set(e, -EINVAL, "resource '%s': field 'module': '%s' is not a module "
				"name", id, mod);
	return 0;
}

static void reboot_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	out->status = RES_OK;
	if (!strcmp(res_str(r, "when"), "required"))
		when_required(ctx, out);
	else
		when_module(ctx, r, out);
}

static const struct field reboot_fields[] = {
	{ "name", F_STR, true, NULL },
	{ "when", F_ENUM, true, "required|module" },
	{ "module", F_STR, false, NULL },
	{ "version", F_STR, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_reboot = {
	.name = "reboot", .id_field = "name", .fields = reboot_fields,
	.validate = reboot_validate, .run = reboot_run,
};
