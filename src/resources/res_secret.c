/*
 * secret: a random value made on the node once and kept there (the munge
 * key, a database password), handed back to kiln as a secret export so
 * other nodes' renders can install the same bytes.  Its content reaches no
 * diff, message or log: the file step runs with `secret` set, and every
 * buffer that held the value is wiped before it is freed.
 */
#include "res_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MIN_BYTES 16
#define SECRET_MAX_BYTES 1024        /* 2048 hex characters: under the 4 KiB export cap */

/* Is s (len) exactly 2 * bytes lower-case hex digits: a secret kiln made? */
static bool secret_form_ok(const char *s, size_t len, int bytes)
{
	return len == (size_t)bytes * 2 && strspn(s, "0123456789abcdef") == len;
}

/*
 * The value at full when it is a regular file (not followed through a
 * symlink) of kiln's form, into b (cap 2 * SECRET_MAX_BYTES + 1).  Returns
 * 1 when it is, 0 when something else or nothing is there.
 */
static int secret_read(const char *full, int bytes, char *b, size_t cap)
{
	struct stat st;
	int fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	ssize_t n = -1;

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		n = read(fd, b, cap - 1);
	close(fd);
	if (n < 0)
		return 0;
	b[n] = '\0';
	return secret_form_ok(b, (size_t)n, bytes);
}

/* [a-z0-9_]{1,64}: the names the driver accepts for exports. */
static bool export_name_ok(const char *s)
{
	size_t n = strlen(s);
	return n && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static int secret_validate(const json_t *r, const char *id, struct kerr *e)
{
	json_t *b = json_object_get(r, "bytes");

	if (b && (!json_is_integer(b) || json_integer_value(b) < SECRET_MIN_BYTES ||
		  json_integer_value(b) > SECRET_MAX_BYTES))
		return kerr_set(e, -EINVAL, "resource '%s': field 'bytes': expected an "
				"integer %d..%d", id, SECRET_MIN_BYTES, SECRET_MAX_BYTES);
	if (!export_name_ok(res_str(r, "export")))
		return kerr_set(e, -EINVAL, "resource '%s': field 'export': expected "
				"[a-z0-9_]{1,64}", id);
	return 0;
}

/*
 * Keep the value that is there (mode and owner fixed through the file
 * step), make one when the file is missing or not of kiln's form.  Exports
 * the value whenever it exists: in check mode too, but not one still to be
 * made.
 */
static void secret_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *path = res_str(r, "path");
	json_t *bj = json_object_get(r, "bytes");
	int bytes = bj ? (int)json_integer_value(bj) : 32;
	char *full = path_join(ctx->root, path);
	char val[2 * SECRET_MAX_BYTES + 2];
	uint8_t raw[SECRET_MAX_BYTES];
	struct kerr e = { 0 };
	struct file_want w = {
		.path = path, .mode = res_mode(r, "mode"), .secret = true, .dir_mode = 0755,
	};

	if (w.mode < 0)
		w.mode = 0600;
	if (sodium_init() < 0) {
		res_fail(out, "libsodium: init failed");
		goto out;
	}
	int pending = res_resolve_owner(ctx, res_str(r, "owner"), res_str(r, "group"),
					&w.uid, &w.gid, out, &e);
	if (pending < 0) {
		res_fail(out, "%s", e.msg);
		goto out;
	}
	bool have = secret_read(full, bytes, val, sizeof(val)) == 1;
	if (!have) {
		struct stat st;
		bool there = lstat(full, &st) == 0;
		if (ctx->check_only) {
			out->status = RES_CHANGED;
			res_note(out, there ? "replace %s: not a secret of %d bytes in hex "
				 "(content not shown)" : "create secret %s", path, bytes);
			goto out;
		}
		randombytes_buf(raw, (size_t)bytes);
		sodium_bin2hex(val, sizeof(val), raw, (size_t)bytes);
		if (there)
			res_note(out, "replace %s: not a secret of %d bytes in hex", path, bytes);
	}
	w.content = val;
	w.len = strlen(val);
	out->status = res_file_converge(ctx, &w, out);
	if (pending && out->status == RES_OK)
		out->status = RES_CHANGED;
	if (out->status != RES_FAILED && (have || !ctx->check_only))
		res_export(out, res_str(r, "export"), val);
out:
	sodium_memzero(val, sizeof(val));
	sodium_memzero(raw, sizeof(raw));
	free(full);
}

static const struct field secret_fields[] = {
	{ "path", F_PATH, true, NULL },
	{ "export", F_STR, true, NULL },
	{ "bytes", F_INT, false, NULL },
	{ "mode", F_MODE, false, NULL },
	{ "owner", F_STR, false, NULL },
	{ "group", F_STR, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_secret = {
	.name = "secret", .id_field = "path", .fields = secret_fields,
	.validate = secret_validate, .run = secret_run,
};
