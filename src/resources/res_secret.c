/*
 * secret: a file whose content is a secret (docs/resources.md).  Two forms:
 *
 *   generate  the node makes the value once (a Ceph key, a UUID) and keeps
 *             it in the file; the value is exported under `export` so other
 *             nodes can be rendered with it (a stack lists the name in its
 *             secret_exports: never stored or shown).
 *   content   the file holds exactly this content (a keyring made from
 *             exported keys).
 *
 * Either way no diff is ever produced and no message holds the content:
 * only "create PATH", "content differs (secret, not shown)", mode and owner.
 */
#include "res_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SECRET_MAX 4096   /* a generated value's file is read up to this */
#define CEPH_KEY_B64 40   /* base64 of 28 bytes: u16 type, u32 sec, u32 nsec, u16 len, 16 key */

/* A Ceph AES key as `ceph-authtool --gen-print-key` prints it. */
static bool ceph_key_valid(const char *s, size_t n)
{
	uint8_t b[32];
	size_t len = 0;

	if (n != CEPH_KEY_B64 ||
	    sodium_base642bin(b, sizeof(b), s, n, NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) < 0 || len != 28)
		return false;
	return b[0] == 1 && b[1] == 0 && b[10] == 16 && b[11] == 0;
}

static void ceph_key_make(char out[CEPH_KEY_B64 + 1])
{
	uint8_t b[28] = { 1, 0 };
	uint32_t sec = (uint32_t)time(NULL);

	for (int i = 0; i < 4; i++)
		b[2 + i] = (uint8_t)(sec >> (8 * i));
	b[10] = 16;
	randombytes_buf(b + 12, 16);
	sodium_bin2base64(out, CEPH_KEY_B64 + 1, b, sizeof(b), sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(b, sizeof(b));
}

static bool uuid_valid(const char *s, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
			return false;
	}
	return true;
}

static void uuid_make(char out[37])
{
	uint8_t b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

/* The value in a generated secret's file (trailing whitespace cut), or -errno. */
static int read_value(const char *full, char *v, size_t cap, struct stat *st)
{
	int fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), r = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		r = -errno;
	else if (!S_ISREG(st->st_mode))
		r = -EBADF;
	else if ((n = read(fd, v, cap - 1)) < 0)
		r = -errno;
	else {
		while (n > 0 && (v[n - 1] == '\n' || v[n - 1] == '\r' || v[n - 1] == ' '))
			n--;
		v[n] = '\0';
	}
	close(fd);
	return r;
}

static void generate_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *path = res_str(r, "path"), *kind = res_str(r, "generate");
	bool ceph = !strcmp(kind, "ceph-key");
	char *full = path_join(ctx->root, path), v[SECRET_MAX];
	struct kerr e = { 0 };
	struct stat st;
	uid_t uid;
	gid_t gid;
	int mode = res_mode(r, "mode") < 0 ? 0600 : res_mode(r, "mode");
	int q, pending = res_resolve_owner(ctx, res_str(r, "owner"), res_str(r, "group"), &uid,
					   &gid, out, &e);

	if (pending < 0) {
		res_fail(out, "%s", e.msg);
		goto out;
	}
	q = read_value(full, v, sizeof(v), &st);
	if (q == 0) {
		size_t n = strlen(v);
		if (ceph ? !ceph_key_valid(v, n) : !uuid_valid(v, n)) {
			res_fail(out, "%s does not hold a %s (content not shown)", path, kind);
			goto out;
		}
	} else if (q != -ENOENT) {
		res_fail(out, "%s: %s", path, q == -ELOOP ? "is a symlink: not followed"
				     : q == -EBADF ? "is not a regular file" : strerror(-q));
		goto out;
	} else {
		if (ceph)
			ceph_key_make(v);
		else
			uuid_make(v);
		res_note(out, "create %s", path);
		if (ctx->check_only) {
			out->status = RES_CHANGED;
			goto out;   /* nothing to export yet */
		}
	}
	size_t n = strlen(v);
	v[n] = '\n';
	struct file_want w = { .path = path, .content = v, .len = n + 1, .mode = mode,
			       .uid = uid, .gid = gid, .dir_mode = 0700 };
	out->status = res_file_converge(ctx, &w, out);
	free(out->diff);   /* never shown: the value is the secret */
	out->diff = NULL;
	v[n] = '\0';
	if (pending && out->status == RES_OK)
		out->status = RES_CHANGED;
	if (out->status != RES_FAILED)
		res_export(out, res_str(r, "export"), v);
out:
	sodium_memzero(v, sizeof(v));
	free(full);
}

static void content_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	json_t *c = json_object_get(r, "content");
	struct kerr e = { 0 };
	struct file_want w = {
		.path = res_str(r, "path"),
		.content = json_string_value(c),
		.len = json_string_length(c),
		.mode = res_mode(r, "mode") < 0 ? 0600 : res_mode(r, "mode"),
		.dir_mode = 0755,
	};
	int pending = res_resolve_owner(ctx, res_str(r, "owner"), res_str(r, "group"), &w.uid,
					&w.gid, out, &e);

	if (pending < 0) {
		res_fail(out, "%s", e.msg);
		return;
	}
	out->status = res_file_converge(ctx, &w, out);
	if (out->diff && str_starts(out->diff, "--- /dev/null")) {
		free(out->diff);   /* a new file: "create PATH" says it */
		out->diff = NULL;
	} else if (out->diff) {
		free(out->diff);
		out->diff = NULL;
		res_note(out, "content differs (secret, not shown)");
	}
	if (pending && out->status == RES_OK)
		out->status = RES_CHANGED;
}

static void secret_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	if (sodium_init() < 0) {
		res_fail(out, "libsodium: init failed");
		return;
	}
	if (res_str(r, "generate"))
		generate_run(ctx, r, out);
	else
		content_run(ctx, r, out);
}

static int secret_validate(const json_t *r, const char *id, struct kerr *e)
{
	bool gen = json_object_get(r, "generate") != NULL;
	const char *x = res_str(r, "export");

	if (gen == (json_object_get(r, "content") != NULL))
		return kerr_set(e, -EINVAL, "resource '%s': exactly one of 'generate' and "
				"'content'", id);
	if (gen != (x != NULL))
		return kerr_set(e, -EINVAL, "resource '%s': field 'export': %s", id,
				gen ? "required with 'generate'" : "only with 'generate'");
	if (x && !str_is_ident(x, 64))
		return kerr_set(e, -EINVAL, "resource '%s': field 'export': expected a name of "
				"[a-z0-9_], at most 64", id);
	return 0;
}

static const struct field secret_fields[] = {
	{ "path", F_PATH, true, NULL },
	{ "generate", F_ENUM, false, "ceph-key|uuid" },
	{ "export", F_STR, false, NULL },
	{ "content", F_TEXT, false, NULL },
	{ "mode", F_MODE, false, NULL },
	{ "owner", F_STR, false, NULL },
	{ "group", F_STR, false, NULL },
	{ NULL, 0, false, NULL },
};

const struct res_type res_type_secret = {
	.name = "secret", .id_field = "path", .fields = secret_fields,
	.validate = secret_validate, .run = secret_run,
};
