/*
 * secret: a value the node makes once and keeps in a file
 * (docs/resources.md "secret").  Its content reaches no diff, message or
 * log; buffers that held it are wiped.  The value is exported under
 * `export` (a stack lists the name in its secret_exports: never stored or
 * shown) so other nodes' renders can install the same bytes, as a `file`
 * with "secret": true (a keyring made from exported keys).  Kinds: "hex"
 * (the default: `bytes` random bytes as lower-case hex, no newline; the
 * munge key, a database password), "ceph-key" (a Ceph AES key as
 * `ceph-authtool --gen-print-key` prints it), "uuid".
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

/* ---- generate hex (the munge key, a database password) ---- */

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

/*
 * Keep the value that is there (mode and owner fixed through the file
 * step), make one when the file is missing or not of kiln's form.  Exports
 * the value whenever it exists: in check mode too, but not one still to be
 * made.
 */
static void hex_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
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

static void secret_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	const char *kind = res_str(r, "generate");

	if (sodium_init() < 0) {
		res_fail(out, "libsodium: init failed");
		return;
	}
	if (!kind || !strcmp(kind, "hex"))
		hex_run(ctx, r, out);
	else
		generate_run(ctx, r, out);
}

static int secret_validate(const json_t *r, const char *id, struct kerr *e)
{
	const char *x = res_str(r, "export"), *kind = res_str(r, "generate");
	json_t *b = json_object_get(r, "bytes");

	if (!x || !str_is_ident(x, 64))
		return kerr_set(e, -EINVAL, "resource '%s': field 'export': expected "
				"[a-z0-9_]{1,64}", id);
	if (b && kind && strcmp(kind, "hex"))
		return kerr_set(e, -EINVAL, "resource '%s': field 'bytes': only with "
				"generate 'hex'", id);
	if (b && (!json_is_integer(b) || json_integer_value(b) < SECRET_MIN_BYTES ||
		  json_integer_value(b) > SECRET_MAX_BYTES))
		return kerr_set(e, -EINVAL, "resource '%s': field 'bytes': expected an "
				"integer %d..%d", id, SECRET_MIN_BYTES, SECRET_MAX_BYTES);
	return 0;
}

static const struct field secret_fields[] = {
	{ "path", F_PATH, true, NULL },
	{ "generate", F_ENUM, false, "hex|ceph-key|uuid" },
	{ "export", F_STR, false, NULL },
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
