/*
 * resources: every type checked, applied and checked again in a temp root;
 * diffs, atomic writes, modes and owners, fake /proc and /sys trees, guards,
 * clear failures, validation messages, and diff_unified against patch(1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "resources/res_int.h"

/* ---- helpers ---- */

static char *rp(const char *root, const char *rel)
{
	return xasprintf("%s%s", root, rel);
}

static void put(const char *root, const char *rel, const char *content)
{
	char *p = rp(root, rel);
	char *dir = xstrdup(p);
	*strrchr(dir, '/') = '\0';
	assert_int_equal(mkdir_p(dir, 0755), 0);
	assert_int_equal(file_write_atomic(p, content, strlen(content), 0644, -1, -1), 0);
	free(dir);
	free(p);
}

/* Content of ROOT/rel, or NULL when missing (caller frees). */
static char *get(const char *root, const char *rel)
{
	char *p = rp(root, rel);
	struct buf b;
	buf_init(&b, 0);
	int r = file_read(p, &b, 0);
	free(p);
	if (r < 0) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

static void mkdir_under(const char *root, const char *rel)
{
	char *p = rp(root, rel);
	assert_int_equal(mkdir_p(p, 0755), 0);
	free(p);
}

struct outcome {
	enum res_status status;
	char *diff, *message;
};

/* Run r once under root; the outcome's strings are the caller's to free. */
static struct outcome run(const char *root, bool check_only, const json_t *r)
{
	struct res_ctx ctx;
	struct res_result res;

	res_ctx_init(&ctx, root, check_only);
	resource_run(&ctx, r, &res);
	if (res.status == RES_CHANGED) {
		char *id = resource_id(r);
		assert_true(strv_contains(&ctx.changed, id));
		free(id);
	} else {
		assert_int_equal(ctx.changed.n, 0);
	}
	res_ctx_release(&ctx);
	return (struct outcome){ res.status, res.diff, res.message };
}

static void outcome_free(struct outcome *o)
{
	free(o->diff);
	free(o->message);
}

static void expect(const char *root, bool check_only, const json_t *r,
		   enum res_status want)
{
	struct outcome o = run(root, check_only, r);
	if (o.status != want)
		fail_msg("%s: got %s, want %s (message: %s)", check_only ? "check" : "apply",
			 res_status_name(o.status), res_status_name(want),
			 o.message ? o.message : "-");
	outcome_free(&o);
}

/* check says changed, apply changes, check again is ok. */
static void converge(const char *root, const json_t *r)
{
	expect(root, true, r, RES_CHANGED);
	expect(root, false, r, RES_CHANGED);
	expect(root, true, r, RES_OK);
	expect(root, false, r, RES_OK);
}

static int tmp_seen;
static int find_tmp(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (strstr(path, ".kiln-tmp-"))
		tmp_seen++;
	return 0;
}

static void assert_no_tmp(const char *root)
{
	tmp_seen = 0;
	assert_int_equal(nftw(root, find_tmp, 16, FTW_PHYS), 0);
	assert_int_equal(tmp_seen, 0);
}

static unsigned mode_of(const char *root, const char *rel)
{
	struct stat st;
	char *p = rp(root, rel);
	assert_int_equal(lstat(p, &st), 0);
	free(p);
	return st.st_mode & 07777;
}

static int setup_root(void **state)
{
	char *dir = xstrdup("/tmp/kiln-res-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int teardown_root(void **state)
{
	assert_no_tmp(*state);
	rm_rf(*state);
	free(*state);
	return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!hay || !strstr(hay, needle))
		fail_msg("'%s' not found in '%s'", needle, hay ? hay : "(null)");
}

/* Put an executable script ROOT/fakebin/name and put ROOT/fakebin first in
 * PATH; returns the old PATH for restore_path(). */
static char *fake_tool(const char *root, const char *name, const char *script)
{
	char *rel = xasprintf("/fakebin/%s", name);
	put(root, rel, script);
	char *p = rp(root, rel);
	assert_int_equal(chmod(p, 0755), 0);
	free(p);
	free(rel);
	char *old = xstrdup(getenv("PATH"));
	char *bin = rp(root, "/fakebin");
	char *path = xasprintf("%s:%s", bin, old);
	setenv("PATH", path, 1);
	free(bin);
	free(path);
	return old;
}

static void restore_path(char *old)
{
	setenv("PATH", old, 1);
	free(old);
}

/* ---- diff_unified ---- */

static char *diff_of(const char *a, const char *b)
{
	struct buf out;
	buf_init(&out, 0);
	assert_int_equal(diff_unified("A", a, "B", b, &out), 0);
	return buf_detach(&out, NULL);
}

static void check_diff(const char *a, const char *b, const char *want)
{
	char *d = diff_of(a, b);
	assert_string_equal(d, want);
	free(d);
}

static void test_diff_basic(void **state)
{
	check_diff("a\nb\nc\n", "a\nb\nc\n", "");
	/* change */
	check_diff("a\nb\nc\n", "a\nB\nc\n",
		   "--- A\n+++ B\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
	/* deletion */
	check_diff("1\n2\n3\n4\n5\n", "1\n2\n4\n5\n",
		   "--- A\n+++ B\n@@ -1,5 +1,4 @@\n 1\n 2\n-3\n 4\n 5\n");
	/* insertion into an empty file, and everything deleted */
	check_diff("", "x\ny\n", "--- A\n+++ B\n@@ -0,0 +1,2 @@\n+x\n+y\n");
	check_diff("x\n", "", "--- A\n+++ B\n@@ -1 +0,0 @@\n-x\n");
	/* insertion in the middle */
	check_diff("1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\nnew\n5\n6\n7\n8\n",
		   "--- A\n+++ B\n@@ -2,6 +2,7 @@\n 2\n 3\n 4\n+new\n 5\n 6\n 7\n");
	/* no trailing newline */
	check_diff("a\nb", "a\nb\n",
		   "--- A\n+++ B\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n");
	check_diff("a\n", "a\nc",
		   "--- A\n+++ B\n@@ -1 +1,2 @@\n a\n+c\n\\ No newline at end of file\n");
}

static void test_diff_hunks(void **state)
{
	struct buf a, b6, b7;
	buf_init(&a, 0);
	buf_init(&b6, 0);
	buf_init(&b7, 0);
	for (int i = 1; i <= 13; i++) {
		buf_printf(&a, "%d\n", i);
		if (i == 2 || i == 9)
			buf_adds(&b6, i == 2 ? "two\n" : "nine\n");
		else
			buf_printf(&b6, "%d\n", i);
		if (i == 2 || i == 10)
			buf_adds(&b7, i == 2 ? "two\n" : "ten\n");
		else
			buf_printf(&b7, "%d\n", i);
	}
	/* 6 unchanged lines between changes: one hunk (as diff -u does). */
	char *d = diff_of(a.s, b6.s);
	assert_string_equal(d, "--- A\n+++ B\n@@ -1,12 +1,12 @@\n 1\n-2\n+two\n 3\n 4\n"
			    " 5\n 6\n 7\n 8\n-9\n+nine\n 10\n 11\n 12\n");
	free(d);
	/* 7 unchanged lines: two hunks. */
	d = diff_of(a.s, b7.s);
	assert_string_equal(d, "--- A\n+++ B\n@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n"
			    "@@ -7,7 +7,7 @@\n 7\n 8\n 9\n-10\n+ten\n 11\n 12\n 13\n");
	free(d);
	buf_release(&a);
	buf_release(&b6);
	buf_release(&b7);
}

/* Random edits: patch(1) applied to a with our diff must give b. */
static void test_diff_patch_roundtrip(void **state)
{
	const char *root = *state;
	unsigned seed = 12345;

	for (int round = 0; round < 40; round++) {
		struct buf a, b;
		buf_init(&a, 0);
		buf_init(&b, 0);
		int n = 1 + (int)(rand_r(&seed) % 60);
		for (int i = 0; i < n; i++) {
			int w = (int)(rand_r(&seed) % 8);   /* small alphabet: many repeats */
			buf_printf(&a, "line %d\n", w);
			int op = (int)(rand_r(&seed) % 6);
			if (op == 0)
				continue;                       /* delete */
			if (op == 1)
				buf_printf(&b, "new %d\n", w);  /* insert */
			buf_printf(&b, op == 2 ? "changed %d\n" : "line %d\n", w);
		}
		if (round % 3 == 0)
			buf_adds(&b, "tail without newline");
		char *d = diff_of(a.s, b.s);
		put(root, "/a", a.s);
		put(root, "/p", d);
		char *fa = rp(root, "/a"), *fp = rp(root, "/p");
		char *argv[] = { "patch", "-s", "-u", fa, "-i", fp, NULL };
		int st = 0;
		assert_int_equal(run_argv(argv, NULL, &st), 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		char *got = get(root, "/a");
		assert_string_equal(got, b.s);
		free(got);
		free(fa);
		free(fp);
		free(d);
		buf_release(&a);
		buf_release(&b);
	}
	char *orig = rp(root, "/a.orig");
	unlink(orig);
	free(orig);
}

/* ---- validation, ids, constructors ---- */

static void expect_invalid(const char *json, const char *msg)
{
	struct kerr e = { 0 };
	json_t *r = json_loads(json, 0, NULL);
	assert_non_null(r);
	assert_int_equal(resource_validate(r, &e), -EINVAL);
	assert_string_equal(e.msg, msg);
	json_decref(r);
}

static void test_validate(void **state)
{
	expect_invalid("{\"type\":\"file\",\"path\":\"/x\",\"content\":\"\",\"mode\":\"0999\"}",
		       "resource 'file:/x': field 'mode': expected an octal mode string "
		       "like \"0644\"");
	expect_invalid("{\"type\":\"file\",\"path\":\"/x\"}",
		       "resource 'file:/x': field 'content': missing");
	expect_invalid("{\"type\":\"file\",\"path\":\"x\",\"content\":\"\"}",
		       "resource 'file:x': field 'path': expected an absolute path");
	expect_invalid("{\"type\":\"file\",\"path\":\"/x\",\"content\":\"\",\"colour\":1}",
		       "resource 'file:/x': unknown field 'colour'");
	expect_invalid("{\"type\":\"frobnicate\"}",
		       "resource: field 'type': unknown type 'frobnicate'");
	expect_invalid("{\"path\":\"/x\"}", "resource: field 'type': missing");
	expect_invalid("{\"type\":\"line\",\"path\":\"/x\",\"line\":\"a\",\"state\":\"gone\"}",
		       "resource 'line:/x:a': field 'state': expected one of the allowed "
		       "values: present|absent");
	expect_invalid("{\"type\":\"line\",\"path\":\"/x\",\"line\":\"a\",\"regexp\":\"(\"}",
		       "resource 'line:/x:(': field 'regexp': not a POSIX extended regexp");
	expect_invalid("{\"type\":\"sysctl\",\"file\":\"/x\",\"values\":{\"../etc\":\"1\"}}",
		       "resource 'sysctl:/x': field 'values': bad key '../etc'");
	expect_invalid("{\"type\":\"kmod\",\"file\":\"/x\",\"modules\":[\"a/b\"]}",
		       "resource 'kmod:/x': field 'modules': 'a/b' is not a module name");
	expect_invalid("{\"type\":\"hostname\",\"name\":\"bad_name\"}",
		       "resource 'hostname:bad_name': field 'name': not a valid host name");
	expect_invalid("{\"type\":\"package\",\"names\":[\"-oops\"]}",
		       "resource 'package:-oops': field 'names': '-oops' is not a package name");
	expect_invalid("{\"type\":\"user\",\"name\":\"u\",\"groups\":[\"a b\"]}",
		       "resource 'user:u': field 'groups': 'a b' is not a valid group name");
	expect_invalid("{\"type\":\"swap\",\"state\":\"on\"}",
		       "resource 'swap:on': field 'state': expected one of the allowed "
		       "values: off");

	/* Every constructor makes a valid resource with the expected id. */
	const char *keys[] = { "net.ipv4.ip_forward" }, *vals[] = { "1" };
	const char *mods[] = { "overlay" }, *pk[] = { "curl", "jq" };
	const char *w[] = { "file:/etc/x" }, *g[] = { "docker" }, *k[] = { "ssh-ed25519 AAAA k" };
	struct { json_t *r; const char *id; } c[] = {
		{ res_file("/etc/x", "hi\n", 0640, "root", "root"), "file:/etc/x" },
		{ res_directory("/srv/d", 0755, NULL, NULL), "directory:/srv/d" },
		{ res_line("/etc/ssh/sshd_config", "PermitRootLogin no", "^PermitRootLogin", true),
		  "line:/etc/ssh/sshd_config:^PermitRootLogin" },
		{ res_sysctl("/etc/sysctl.d/90-kiln.conf", keys, vals, 1),
		  "sysctl:/etc/sysctl.d/90-kiln.conf" },
		{ res_kmod("/etc/modules-load.d/kiln.conf", mods, 1),
		  "kmod:/etc/modules-load.d/kiln.conf" },
		{ res_swap_off(), "swap:off" },
		{ res_hostname("gpu-01"), "hostname:gpu-01" },
		{ res_package(pk, 2, true), "package:curl,jq" },
		{ res_service("slurmd", true, true, w, 1), "service:slurmd" },
		{ res_user("alice", "/bin/bash", g, 1, k, 1), "user:alice" },
		{ res_group("docker"), "group:docker" },
		{ res_command("make install", "/usr/local/bin/x", NULL), "command:make install" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		struct kerr e = { 0 };
		if (resource_validate(c[i].r, &e) != 0)
			fail_msg("constructor %zu: %s", i, e.msg);
		char *id = resource_id(c[i].r);
		assert_string_equal(id, c[i].id);
		free(id);
		json_decref(c[i].r);
	}
	json_t *f = res_file("/etc/x", "", 0640, NULL, NULL);
	assert_string_equal(json_string_value(json_object_get(f, "mode")), "0640");
	json_decref(f);
}

/* ---- file, directory, line ---- */

/* secret: made once on the node, kept, exported (also in check mode once
 * it exists), never in a diff or message; a file marked secret shows no
 * content either. */
static void test_secret(void **state)
{
	const char *root = *state;
	json_t *r = res_secret("/etc/munge/munge.key", "munge_key", 32, 0400, NULL, NULL);
	struct res_ctx ctx;
	struct res_result res;

	/* Missing: check would make it, exports nothing, touches nothing. */
	res_ctx_init(&ctx, root, true);
	resource_run(&ctx, r, &res);
	assert_int_equal(res.status, RES_CHANGED);
	assert_string_equal(res.message, "create secret /etc/munge/munge.key");
	assert_null(res.exports);
	assert_null(get(root, "/etc/munge/munge.key"));
	res_result_release(&res);
	res_ctx_release(&ctx);

	/* Apply makes 64 hex characters, 0400, exported; no diff. */
	res_ctx_init(&ctx, root, false);
	resource_run(&ctx, r, &res);
	assert_int_equal(res.status, RES_CHANGED);
	assert_null(res.diff);
	char *key = get(root, "/etc/munge/munge.key");
	assert_non_null(key);
	assert_int_equal(strlen(key), 64);
	assert_int_equal(strspn(key, "0123456789abcdef"), 64);
	assert_int_equal(mode_of(root, "/etc/munge/munge.key"), 0400);
	assert_string_equal(json_string_value(json_object_get(res.exports, "munge_key")), key);
	assert_null(strstr(res.message, key));
	res_result_release(&res);
	res_ctx_release(&ctx);

	/* Again, and in check mode: ok, the same value exported. */
	for (int check = 0; check < 2; check++) {
		res_ctx_init(&ctx, root, check);
		resource_run(&ctx, r, &res);
		assert_int_equal(res.status, RES_OK);
		assert_string_equal(json_string_value(json_object_get(res.exports, "munge_key")),
				    key);
		res_result_release(&res);
		res_ctx_release(&ctx);
	}

	/* Something else there (a package's binary key): replaced, not shown. */
	put(root, "/etc/munge/munge.key", "OLD-SECRET-CONTENT");
	res_ctx_init(&ctx, root, false);
	resource_run(&ctx, r, &res);
	assert_int_equal(res.status, RES_CHANGED);
	assert_null(res.diff);
	assert_null(strstr(res.message, "OLD-SECRET"));
	char *key2 = get(root, "/etc/munge/munge.key");
	assert_int_equal(strlen(key2), 64);
	assert_string_not_equal(key2, key);
	res_result_release(&res);
	res_ctx_release(&ctx);

	/* A file marked secret: the content differs, no diff, a note. */
	json_t *f = res_file_secret("/etc/munge/munge.key", key, 0400, NULL, NULL);
	res_ctx_init(&ctx, root, true);
	resource_run(&ctx, f, &res);
	assert_int_equal(res.status, RES_CHANGED);
	assert_null(res.diff);
	assert_string_equal(res.message, "content differs (secret: not shown)");
	res_result_release(&res);
	res_ctx_release(&ctx);
	converge(root, f);
	char *now = get(root, "/etc/munge/munge.key");
	assert_string_equal(now, key);
	free(now);

	/* validation: bytes in range, an export name */
	struct kerr e = { 0 };
	json_object_set_new(r, "bytes", json_integer(8));
	assert_int_equal(resource_validate(r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "field 'bytes'"));
	json_object_set_new(r, "bytes", json_integer(32));
	json_object_set_new(r, "export", json_string("Bad Name"));
	assert_int_equal(resource_validate(r, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "field 'export'"));
	json_decref(f);
	json_decref(r);
	free(key);
	free(key2);
}

static void test_file(void **state)
{
	const char *root = *state;
	json_t *r = res_file("/etc/kiln/app.conf", "a\nb\nc\n", 0640, NULL, NULL);

	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.diff, "--- /dev/null\n+++ /etc/kiln/app.conf\n@@ -0,0 +1,3 @@\n"
				    "+a\n+b\n+c\n");
	assert_string_equal(o.message, "create /etc/kiln/app.conf");
	outcome_free(&o);
	assert_null(get(root, "/etc/kiln/app.conf"));   /* check touched nothing */
	char *d = rp(root, "/etc");
	assert_false(path_exists(d));
	free(d);

	converge(root, r);
	char *c = get(root, "/etc/kiln/app.conf");
	assert_string_equal(c, "a\nb\nc\n");
	free(c);
	assert_int_equal(mode_of(root, "/etc/kiln/app.conf"), 0640);
	json_decref(r);

	/* Content change: the diff names the file on both sides. */
	r = res_file("/etc/kiln/app.conf", "a\nB\nc\n", 0640, NULL, NULL);
	o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.diff, "--- /etc/kiln/app.conf\n+++ /etc/kiln/app.conf\n"
				    "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
	assert_null(o.message);
	outcome_free(&o);
	converge(root, r);
	json_decref(r);

	/* Mode only: no diff, the change is in the message. */
	r = res_file("/etc/kiln/app.conf", "a\nB\nc\n", 0600, NULL, NULL);
	o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_null(o.diff);
	assert_string_equal(o.message, "mode 0640 -> 0600");
	outcome_free(&o);
	converge(root, r);
	assert_int_equal(mode_of(root, "/etc/kiln/app.conf"), 0600);
	json_decref(r);

	/* Content with NUL bytes: no diff, a note; written byte for byte. */
	r = res_file("/etc/kiln/blob", "", 0644, NULL, NULL);
	json_object_set_new(r, "content", json_stringn("a\0b\n", 4));
	o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_null(o.diff);
	assert_contains(o.message, "binary content differs");
	outcome_free(&o);
	converge(root, r);
	struct buf bin;
	buf_init(&bin, 0);
	char *bp = rp(root, "/etc/kiln/blob");
	assert_int_equal(file_read(bp, &bin, 0), 0);
	assert_int_equal(bin.len, 4);
	assert_memory_equal(bin.s, "a\0b\n", 4);
	buf_release(&bin);
	free(bp);
	json_decref(r);

	/* A huge diff is summarised rather than shipped. */
	struct buf big;
	buf_init(&big, 0);
	for (int i = 0; i < 200000; i++)
		buf_printf(&big, "line %d\n", i);
	r = res_file("/etc/kiln/big", big.s, 0644, NULL, NULL);
	o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_null(o.diff);
	assert_contains(o.message, "diff over 1048576 bytes, not shown");
	outcome_free(&o);
	converge(root, r);
	c = get(root, "/etc/kiln/big");
	assert_string_equal(c, big.s);
	free(c);
	buf_release(&big);
	json_decref(r);

	/* A directory in the way is a clear failure. */
	mkdir_under(root, "/etc/kiln/dir");
	r = res_file("/etc/kiln/dir", "x", 0644, NULL, NULL);
	o = run(root, false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "/etc/kiln/dir: exists and is not a regular file");
	outcome_free(&o);
	json_decref(r);
}

static void test_file_owner(void **state)
{
	const char *root = *state;

	put(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
				 "svc:x:4242:4343::/home/svc:/bin/sh\n");
	put(root, "/etc/group", "root:x:0:\nsvcg:x:4343:\n");
	json_t *r = res_file("/srv/owned", "data\n", 0644, "svc", "svcg");
	converge(root, r);
	struct stat st;
	char *p = rp(root, "/srv/owned");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_uid, 4242);
	assert_int_equal(st.st_gid, 4343);
	json_decref(r);

	/* Owner change only; numeric ids work too. */
	r = res_file("/srv/owned", "data\n", 0644, "0", "0");
	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "owner 4242 -> 0; group 4343 -> 0");
	outcome_free(&o);
	converge(root, r);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_uid, 0);
	json_decref(r);

	r = res_file("/srv/owned", "data\n", 0644, "nobody-here", NULL);
	o = run(root, true, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "owner 'nobody-here': no such user");
	outcome_free(&o);
	json_decref(r);
	free(p);
}

static void test_directory(void **state)
{
	const char *root = *state;

	put(root, "/etc/passwd", "svc:x:4242:4343::/home/svc:/bin/sh\n");
	put(root, "/etc/group", "svcg:x:4343:\n");
	json_t *r = res_directory("/srv/data/a", 0750, "svc", "svcg");
	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "create directory /srv/data/a");
	outcome_free(&o);
	converge(root, r);
	assert_int_equal(mode_of(root, "/srv/data/a"), 0750);
	struct stat st;
	char *p = rp(root, "/srv/data/a");
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, 4242);
	free(p);
	json_decref(r);

	r = res_directory("/srv/data/a", 0700, NULL, NULL);
	o = run(root, true, r);
	assert_string_equal(o.message, "mode 0750 -> 0700");
	outcome_free(&o);
	converge(root, r);
	json_decref(r);

	put(root, "/srv/file", "x");
	r = res_directory("/srv/file", 0755, NULL, NULL);
	o = run(root, false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "/srv/file: exists and is not a directory");
	outcome_free(&o);
	json_decref(r);
}

static void test_line(void **state)
{
	const char *root = *state;

	put(root, "/etc/ssh/sshd_config", "Port 22\n#PermitRootLogin yes\nPermitRootLogin yes\n"
					  "UsePAM yes\n");
	json_t *r = res_line("/etc/ssh/sshd_config", "PermitRootLogin prohibit-password",
			     "^PermitRootLogin[[:space:]]", true);
	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.diff, "--- /etc/ssh/sshd_config\n+++ /etc/ssh/sshd_config\n"
				    "@@ -1,4 +1,4 @@\n Port 22\n #PermitRootLogin yes\n"
				    "-PermitRootLogin yes\n+PermitRootLogin prohibit-password\n"
				    " UsePAM yes\n");
	outcome_free(&o);
	converge(root, r);
	char *c = get(root, "/etc/ssh/sshd_config");
	assert_string_equal(c, "Port 22\n#PermitRootLogin yes\nPermitRootLogin "
			       "prohibit-password\nUsePAM yes\n");
	free(c);
	json_decref(r);

	/* No match: appended (after adding the missing final newline). */
	put(root, "/etc/x.conf", "a=1");
	r = res_line("/etc/x.conf", "b=2", "^b=", true);
	converge(root, r);
	c = get(root, "/etc/x.conf");
	assert_string_equal(c, "a=1\nb=2\n");
	free(c);
	json_decref(r);

	/* Without regexp: exact line. */
	r = res_line("/etc/x.conf", "a=1", NULL, true);
	expect(root, true, r, RES_OK);
	json_decref(r);

	/* Absent by regexp removes every match; by line removes equal lines. */
	put(root, "/etc/y.conf", "keep\ndrop 1\nkeep2\ndrop 2\n");
	r = res_line("/etc/y.conf", "", "^drop", false);
	converge(root, r);
	c = get(root, "/etc/y.conf");
	assert_string_equal(c, "keep\nkeep2\n");
	free(c);
	json_decref(r);
	r = res_line("/etc/y.conf", "keep2", NULL, false);
	converge(root, r);
	c = get(root, "/etc/y.conf");
	assert_string_equal(c, "keep\n");
	free(c);
	json_decref(r);

	/* Missing file: absent is ok, present creates it 0644. */
	r = res_line("/etc/new.conf", "x", NULL, false);
	expect(root, true, r, RES_OK);
	expect(root, false, r, RES_OK);
	json_decref(r);
	r = res_line("/etc/new.conf", "x", NULL, true);
	converge(root, r);
	assert_int_equal(mode_of(root, "/etc/new.conf"), 0644);
	json_decref(r);

	/* An existing file keeps its mode. */
	char *p = rp(root, "/etc/x.conf");
	chmod(p, 0600);
	r = res_line("/etc/x.conf", "c=3", NULL, true);
	converge(root, r);
	assert_int_equal(mode_of(root, "/etc/x.conf"), 0600);
	free(p);
	json_decref(r);
}

/* ---- sysctl, kmod, swap, hostname ---- */

static void test_sysctl(void **state)
{
	const char *root = *state;

	put(root, "/proc/sys/net/ipv4/ip_forward", "0\n");
	put(root, "/proc/sys/net/ipv4/tcp_rmem", "4096\t87380\t6291456\n");
	put(root, "/proc/sys/vm/swappiness", "60\n");
	const char *keys[] = { "vm.swappiness", "net.ipv4.tcp_rmem", "net.ipv4.ip_forward" };
	const char *vals[] = { "10", "4096 87380 6291456", "1" };
	json_t *r = res_sysctl("/etc/sysctl.d/90-kiln.conf", keys, vals, 3);

	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	/* tcp_rmem differs only in whitespace: not a change. */
	assert_string_equal(o.message, "net.ipv4.ip_forward: 0 -> 1; vm.swappiness: 60 -> 10; "
				       "create /etc/sysctl.d/90-kiln.conf");
	assert_string_equal(o.diff, "--- /dev/null\n+++ /etc/sysctl.d/90-kiln.conf\n"
				    "@@ -0,0 +1,4 @@\n+# managed by kiln\n"
				    "+net.ipv4.ip_forward = 1\n+net.ipv4.tcp_rmem = 4096 87380 6291456\n"
				    "+vm.swappiness = 10\n");
	outcome_free(&o);
	char *c = get(root, "/proc/sys/net/ipv4/ip_forward");
	assert_string_equal(c, "0\n");
	free(c);

	converge(root, r);
	c = get(root, "/proc/sys/net/ipv4/ip_forward");
	assert_string_equal(c, "1");
	free(c);
	c = get(root, "/proc/sys/net/ipv4/tcp_rmem");
	assert_string_equal(c, "4096\t87380\t6291456\n");   /* untouched */
	free(c);
	c = get(root, "/etc/sysctl.d/90-kiln.conf");
	assert_string_equal(c, "# managed by kiln\nnet.ipv4.ip_forward = 1\n"
			       "net.ipv4.tcp_rmem = 4096 87380 6291456\nvm.swappiness = 10\n");
	free(c);

	/* Live drift alone is a change, and apply fixes it. */
	put(root, "/proc/sys/vm/swappiness", "30\n");
	converge(root, r);
	json_decref(r);

	/* A key the kernel does not have: failed, nothing written. */
	const char *bk[] = { "net.ipv4.ip_forward", "net.bogus.key" }, *bv[] = { "1", "2" };
	r = res_sysctl("/etc/sysctl.d/91-bad.conf", bk, bv, 2);
	o = run(root, false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "sysctl 'net.bogus.key': no such kernel parameter "
				       "(/proc/sys/net/bogus/key does not exist)");
	outcome_free(&o);
	assert_null(get(root, "/etc/sysctl.d/91-bad.conf"));
	json_decref(r);
}

/* reboot: asks (changed) and never acts, in check and apply alike. */
static void test_reboot(void **state)
{
	const char *root = *state;
	json_t *r = res_reboot("required", NULL, NULL);
	struct outcome o;

	o = run(root, true, r);
	assert_int_equal(o.status, RES_OK);                /* nothing asked */
	outcome_free(&o);
	mkdir_under(root, "/run");
	put(root, "/run/reboot-required", "");
	put(root, "/run/reboot-required.pkgs", "linux-image-6.1.0-99-amd64\nnvidia-kernel-dkms\n");
	for (int apply = 0; apply < 2; apply++) {
		o = run(root, !apply, r);
		assert_int_equal(o.status, RES_CHANGED);
		assert_string_equal(o.message, "reboot: /run/reboot-required "
				    "(linux-image-6.1.0-99-amd64, nvidia-kernel-dkms)");
		outcome_free(&o);
	}
	char *still = get(root, "/run/reboot-required");      /* the driver reboots, not it */
	assert_non_null(still);
	free(still);
	json_decref(r);

	/* a module loaded at another version than the one wanted */
	r = res_reboot("nvidia", "nvidia", "580.");
	mkdir_under(root, "/sys/module/nvidia");
	put(root, "/sys/module/nvidia/version", "535.104.05\n");
	o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "reboot: module nvidia 535.104.05 is loaded, 580. wanted");
	outcome_free(&o);
	put(root, "/sys/module/nvidia/version", "580.95.05\n");
	o = run(root, true, r);
	assert_int_equal(o.status, RES_OK);
	outcome_free(&o);
	json_decref(r);

	/* bad input is refused before anything runs */
	struct kerr e = { 0 };
	r = json_pack("{s:s,s:s,s:s}", "type", "reboot", "name", "x", "when", "module");
	assert_int_equal(resource_validate(r, &e), -EINVAL);
	assert_string_equal(e.msg, "resource 'reboot:x': when 'module' needs field 'module'");
	json_object_set_new(r, "module", json_string("nv;reboot"));
	assert_int_equal(resource_validate(r, &e), -EINVAL);
	json_decref(r);
}

static void test_kmod(void **state)
{
	const char *root = *state;
	struct utsname u;

	assert_int_equal(uname(&u), 0);
	mkdir_under(root, "/sys/module/overlay");
	char *builtin = xasprintf("/lib/modules/%s/modules.builtin", u.release);
	put(root, builtin, "kernel/net/bridge/br_netfilter.ko\nkernel/fs/nfs/nfs-v4.ko\n");
	free(builtin);

	const char *mods[] = { "overlay", "br_netfilter", "nfs_v4" };
	json_t *r = res_kmod("/etc/modules-load.d/kiln.conf", mods, 3);
	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "create /etc/modules-load.d/kiln.conf");   /* all loaded */
	outcome_free(&o);
	converge(root, r);
	char *c = get(root, "/etc/modules-load.d/kiln.conf");
	assert_string_equal(c, "# managed by kiln\noverlay\nbr_netfilter\nnfs_v4\n");
	free(c);
	json_decref(r);

	/* A module that is not there: modprobe runs and its failure is named. */
	const char *m2[] = { "kiln_nosuchmod" };
	r = res_kmod("/etc/modules-load.d/more.conf", m2, 1);
	o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_contains(o.message, "load module kiln_nosuchmod");
	outcome_free(&o);
	char *old_path = fake_tool(root, "modprobe",
	    "#!/bin/sh\n# modprobe -d ROOT NAME\n"
	    "[ \"$3\" = kiln_okmod ] || { echo \"modprobe: FATAL: Module $3 not found\" >&2; "
	    "exit 1; }\nmkdir -p \"$2/sys/module/$3\"\n");
	o = run(root, false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_contains(o.message, "module 'kiln_nosuchmod': modprobe exited 1: "
				   "modprobe: FATAL: Module kiln_nosuchmod not found");
	outcome_free(&o);
	json_decref(r);

	const char *m3[] = { "kiln_okmod" };
	r = res_kmod("/etc/modules-load.d/ok.conf", m3, 1);
	converge(root, r);
	json_decref(r);
	restore_path(old_path);
}

static void test_swap(void **state)
{
	const char *root = *state;
	const char *hdr = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

	put(root, "/proc/swaps", hdr);
	put(root, "/etc/fstab", "UUID=1 / ext4 defaults 0 1\n"
				"/swapfile none swap sw 0 0\n"
				"# /dev/sdb2 none swap sw 0 0\n");
	json_t *r = res_swap_off();
	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.diff, "--- /etc/fstab\n+++ /etc/fstab\n@@ -1,3 +1,3 @@\n"
				    " UUID=1 / ext4 defaults 0 1\n-/swapfile none swap sw 0 0\n"
				    "+#/swapfile none swap sw 0 0\n # /dev/sdb2 none swap sw 0 0\n");
	outcome_free(&o);
	converge(root, r);

	/* Active swap under a prefix root: reported, and apply fails clearly. */
	put(root, "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n"
				 "/dev/sda2 partition 1048572 0 -2\n");
	o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "swapoff /dev/sda2");
	outcome_free(&o);
	o = run(root, false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_contains(o.message, "swap still active (/dev/sda2)");
	outcome_free(&o);
	json_decref(r);
}

static void test_hostname(void **state)
{
	const char *root = *state;
	json_t *r = res_hostname("gpu-07");

	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.diff, "--- /dev/null\n+++ /etc/hostname\n@@ -0,0 +1 @@\n+gpu-07\n");
	outcome_free(&o);
	converge(root, r);
	char *c = get(root, "/etc/hostname");
	assert_string_equal(c, "gpu-07\n");
	free(c);
	json_decref(r);

	/* On the live root the check also compares the running hostname. */
	struct utsname u;
	assert_int_equal(uname(&u), 0);
	char *other = xasprintf("x%.40s", u.nodename);
	r = res_hostname(other);
	o = run("/", true, r);
	assert_int_equal(o.status, RES_CHANGED);
	char *want = xasprintf("hostname %s -> %s", u.nodename, other);
	assert_contains(o.message, want);
	outcome_free(&o);
	free(want);
	free(other);
	json_decref(r);
}

/* ---- command, service, package ---- */

static void test_command(void **state)
{
	const char *root = *state;

	/* cwd is the root: relative paths land under it. */
	json_t *r = res_command("echo ran >> marker", "/marker", NULL);
	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "would run: echo ran >> marker");
	outcome_free(&o);
	assert_null(get(root, "/marker"));
	converge(root, r);
	char *c = get(root, "/marker");
	assert_string_equal(c, "ran\n");   /* ran exactly once */
	free(c);
	json_decref(r);

	/* unless: the guard decides; it runs in check mode too. */
	put(root, "/state", "old\n");
	r = res_command("echo new > state", NULL, "grep -q new state");
	converge(root, r);
	c = get(root, "/state");
	assert_string_equal(c, "new\n");
	free(c);
	json_decref(r);

	/* Failure carries the command's last stderr line. */
	r = res_command("echo oops >&2; exit 3", NULL, NULL);
	o = run(root, false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "ran: echo oops >&2; exit 3; /bin/sh exited 3: oops");
	outcome_free(&o);
	json_decref(r);
}

static void test_service_no_systemd(void **state)
{
	const char *root = *state;
	json_t *r = res_service("slurmd", true, true, NULL, 0);

	for (int check = 0; check < 2; check++) {
		struct outcome o = run(root, check, r);
		assert_int_equal(o.status, RES_FAILED);
		assert_string_equal(o.message,
				    "no systemd on this node: cannot manage service 'slurmd'");
		outcome_free(&o);
	}
	json_decref(r);
}

static void test_package(void **state)
{
	const char *root = *state;

	/* The real dpkg database of this machine. */
	const char *inst[] = { "coreutils", "dpkg" };
	json_t *r = res_package(inst, 2, true);
	expect("/", true, r, RES_OK);
	json_decref(r);
	const char *mixed[] = { "coreutils", "kiln-no-such-package-xyz" };
	r = res_package(mixed, 2, true);
	struct outcome o = run("/", true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "install kiln-no-such-package-xyz");
	outcome_free(&o);
	json_decref(r);
	r = res_package(mixed, 2, false);
	o = run("/", true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "remove coreutils");
	outcome_free(&o);
	json_decref(r);

	/* A prefix root with its own (copied) dpkg database is queried there. */
	char *st = get("/", "/var/lib/dpkg/status");
	put(root, "/var/lib/dpkg/status", st);
	free(st);
	r = res_package(inst, 2, true);
	expect(root, true, r, RES_OK);
	json_decref(r);
	r = res_package(mixed, 2, true);
	o = run(root, false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_contains(o.message, "not supported");
	outcome_free(&o);
	json_decref(r);
	char *db = rp(root, "/var");
	rm_rf(db);
	free(db);

	/* No package database at all. */
	r = res_package(inst, 1, true);
	o = run(root, true, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_contains(o.message, "no package manager found");
	outcome_free(&o);
	json_decref(r);
}

static const char fake_systemctl[] =
	"#!/bin/sh\n"
	"# systemctl VERB -- NAME, state as files in $KILN_FAKE_SYSTEMD\n"
	"D=$KILN_FAKE_SYSTEMD\n"
	"case $1 in\n"
	"is-enabled) [ -e $D/$3.state ] && { cat $D/$3.state; exit 0; }\n"
	"  [ -e $D/$3.enabled ] && { echo enabled; exit 0; }; echo disabled; exit 1;;\n"
	"is-active) [ -e $D/$3.active ] && { echo active; exit 0; }; echo inactive; exit 3;;\n"
	"enable) touch $D/$3.enabled;;\n"
	"disable) rm -f $D/$3.enabled;;\n"
	"start|restart) [ $3 = broken ] && { echo \"Job for $3 failed.\" >&2; exit 1; }; "
	"touch $D/$3.active;;\n"
	"stop) rm -f $D/$3.active;;\n"
	"esac\n"
	"echo \"$1 $3\" >> $D/log\n";

static void test_service_fake_systemd(void **state)
{
	const char *root = *state;
	char *sd = rp(root, "/sd");

	mkdir_under(root, "/run/systemd/system");
	mkdir_under(root, "/sd");
	setenv("KILN_FAKE_SYSTEMD", sd, 1);
	char *old = fake_tool(root, "systemctl", fake_systemctl);

	const char *watch[] = { "file:/etc/slurm/slurm.conf" };
	json_t *svc = res_service("slurmd", true, true, watch, 1);
	struct outcome o = run(root, true, svc);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "enable slurmd; start slurmd");
	outcome_free(&o);
	assert_null(get(root, "/sd/log"));   /* check ran only the queries */
	converge(root, svc);
	char *log = get(root, "/sd/log");
	assert_string_equal(log, "enable slurmd\nstart slurmd\n");
	free(log);

	/* A watched file that changes in the same run restarts the service. */
	json_t *list = json_array();
	json_array_append_new(list, res_file("/etc/slurm/slurm.conf", "v1\n", 0644, NULL, NULL));
	json_array_append(list, svc);
	struct res_ctx ctx;
	size_t counts[3];
	for (int check = 1; check >= 0; check--) {
		res_ctx_init(&ctx, root, check);
		resource_run_list(&ctx, list, NULL, NULL, counts);
		assert_int_equal(counts[RES_CHANGED], 2);
		res_ctx_release(&ctx);
	}
	log = get(root, "/sd/log");
	assert_string_equal(log, "enable slurmd\nstart slurmd\ndaemon-reload \n"
				 "restart slurmd\n");
	free(log);
	/* Nothing changed this time: no restart. */
	res_ctx_init(&ctx, root, false);
	resource_run_list(&ctx, list, NULL, NULL, counts);
	assert_int_equal(counts[RES_OK], 2);
	res_ctx_release(&ctx);
	json_decref(list);
	json_decref(svc);

	svc = res_service("slurmd", false, false, NULL, 0);
	o = run(root, true, svc);
	assert_string_equal(o.message, "disable slurmd; stop slurmd");
	outcome_free(&o);
	converge(root, svc);
	json_decref(svc);

	/* systemctl's complaint reaches the result. */
	svc = res_service("broken", false, true, NULL, 0);
	o = run(root, false, svc);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "start broken; service 'broken': systemctl exited 1: "
				       "Job for broken failed.");
	outcome_free(&o);
	json_decref(svc);
	restore_path(old);
	unsetenv("KILN_FAKE_SYSTEMD");
	free(sd);
}

static void test_package_apply_fake_apt(void **state)
{
	const char *root = *state;
	char *log = rp(root, "/apt.log");
	char *script = xasprintf("#!/bin/sh\necho \"$DEBIAN_FRONTEND $*\" > %s\n", log);
	char *old = fake_tool(root, "apt-get", script);
	const char *names[] = { "coreutils", "kiln-no-such-package-xyz" };
	json_t *r = res_package(names, 2, true);

	/* apt-get "succeeds" but dpkg still lacks the package: failed. */
	struct outcome o = run("/", false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "install kiln-no-such-package-xyz; package "
				       "'kiln-no-such-package-xyz' still missing after apt-get");
	outcome_free(&o);
	char *c = get(root, "/apt.log");
	assert_string_equal(c, "noninteractive -y -q -o Dpkg::Options::=--force-confdef "
			       "-o Dpkg::Options::=--force-confold install "
			       "--no-install-recommends -- kiln-no-such-package-xyz\n");
	free(c);
	restore_path(old);
	free(script);

	old = fake_tool(root, "apt-get", "#!/bin/sh\necho 'Reading package lists...'\n"
		       "echo 'E: Unable to locate package kiln-no-such-package-xyz' >&2\n"
		       "exit 100\n");
	o = run("/", false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "install kiln-no-such-package-xyz; apt-get exited 100: "
				       "E: Unable to locate package kiln-no-such-package-xyz");
	outcome_free(&o);
	restore_path(old);
	json_decref(r);
	free(log);
}

/* ---- users and groups ---- */

static void test_user_group(void **state)
{
	const char *root = *state;

	put(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
	put(root, "/etc/group", "root:x:0:\n");
	put(root, "/etc/shadow", "root:*:19000:0:99999:7:::\n");
	put(root, "/etc/gshadow", "root:*::\n");

	json_t *g = res_group("kilnops");
	converge(root, g);
	char *c = get(root, "/etc/group");
	assert_contains(c, "\nkilnops:x:");
	free(c);

	const char *groups[] = { "kilnops" };
	const char *keys[] = { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 alice@a",
			       "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2 alice@b" };
	json_t *u = res_user("alice", "/bin/sh", groups, 1, keys, 2);
	struct outcome o = run(root, true, u);
	assert_int_equal(o.status, RES_CHANGED);
	assert_contains(o.message, "create user alice");
	assert_contains(o.diff, "+++ /home/alice/.ssh/authorized_keys\n");
	outcome_free(&o);
	c = get(root, "/etc/passwd");
	assert_null(strstr(c, "alice"));   /* check touched nothing */
	free(c);

	converge(root, u);
	struct pwent pw;
	c = get(root, "/etc/passwd");
	assert_contains(c, "\nalice:x:");
	assert_contains(c, ":/home/alice:/bin/sh\n");
	free(c);
	c = get(root, "/etc/group");
	assert_contains(c, "kilnops:x:");
	assert_contains(c, ":alice\n");
	free(c);
	c = get(root, "/home/alice/.ssh/authorized_keys");
	assert_string_equal(c, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 alice@a\n"
			       "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2 alice@b\n");
	free(c);
	assert_int_equal(mode_of(root, "/home/alice/.ssh/authorized_keys"), 0600);
	assert_int_equal(mode_of(root, "/home/alice/.ssh"), 0700);
	struct stat st;
	char *p = rp(root, "/home/alice/.ssh/authorized_keys");
	assert_int_equal(stat(p, &st), 0);
	free(p);
	json_decref(u);

	/* The key set is exact: dropping a key removes it, with a diff. */
	const char *shell_groups[] = { "kilnops" };
	u = res_user("alice", "/bin/bash", shell_groups, 1, keys, 1);
	o = run(root, true, u);
	assert_int_equal(o.status, RES_CHANGED);
	assert_contains(o.message, "shell /bin/sh -> /bin/bash");
	assert_contains(o.diff, "-ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2 alice@b\n");
	outcome_free(&o);
	converge(root, u);
	c = get(root, "/home/alice/.ssh/authorized_keys");
	assert_string_equal(c, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 alice@a\n");
	free(c);
	p = xstrdup(root);
	assert_int_equal(passwd_find(p, "alice", &pw), 0);
	free(p);
	assert_int_equal(st.st_uid, pw.uid);
	assert_int_equal(st.st_gid, pw.gid);
	free(pw.home);
	free(pw.shell);
	json_decref(u);

	/* A group that does not exist fails before useradd runs. */
	const char *nog[] = { "nosuchgroup" };
	u = res_user("bob", NULL, nog, 1, NULL, 0);
	o = run(root, false, u);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "user 'bob': group 'nosuchgroup' does not exist");
	outcome_free(&o);
	json_decref(u);
	json_decref(g);
}

/* ---- lists and watch ---- */

struct seen {
	int n, stop_after;
	char ids[8][64];
	enum res_status st[8];
};

static int emit(void *arg, size_t index, const char *id, const struct res_result *r)
{
	struct seen *s = arg;
	assert_int_equal(index, (size_t)s->n);
	snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", id);
	s->st[s->n++] = r->status;
	return s->n == s->stop_after;
}

static void test_run_list(void **state)
{
	const char *root = *state;
	json_t *list = json_array();
	json_array_append_new(list, res_file("/etc/a", "a\n", 0644, NULL, NULL));
	json_array_append_new(list, json_string("not an object"));
	json_array_append_new(list, res_file("/etc/b", "b\n", 0644, NULL, NULL));
	struct res_ctx ctx;
	struct seen s = { 0 };
	size_t counts[3];

	res_ctx_init(&ctx, root, true);
	resource_run_list(&ctx, list, emit, &s, counts);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.ids[0], "file:/etc/a");
	assert_string_equal(s.ids[1], "invalid:?");
	assert_int_equal(s.st[1], RES_FAILED);
	assert_int_equal(s.st[2], RES_CHANGED);   /* a failure does not stop the list */
	assert_int_equal(counts[RES_CHANGED], 2);
	assert_int_equal(counts[RES_FAILED], 1);
	/* Would-change ids are recorded in check mode too (for service watch). */
	assert_int_equal(ctx.changed.n, 2);
	assert_true(strv_contains(&ctx.changed, "file:/etc/b"));
	res_ctx_release(&ctx);

	/* emit can stop the list: nothing after it runs. */
	struct seen s2 = { .stop_after = 1 };
	res_ctx_init(&ctx, root, false);
	resource_run_list(&ctx, list, emit, &s2, counts);
	assert_int_equal(s2.n, 1);
	assert_int_equal(counts[RES_CHANGED], 1);
	char *b = get(root, "/etc/b");
	assert_null(b);
	char *a = get(root, "/etc/a");
	assert_string_equal(a, "a\n");
	free(a);
	res_ctx_release(&ctx);
	json_decref(list);
}

/* ---- review regressions ---- */

struct collected {
	int n;
	enum res_status st[8];
	char *msg[8], *diff[8];
};

static int collect(void *arg, size_t index, const char *id, const struct res_result *r)
{
	struct collected *c = arg;
	assert_int_equal(index, (size_t)c->n);
	assert_true(c->n < 8);
	c->st[c->n] = r->status;
	c->msg[c->n] = r->message ? xstrdup(r->message) : NULL;
	c->diff[c->n] = r->diff ? xstrdup(r->diff) : NULL;
	c->n++;
	return 0;
}

static void collected_free(struct collected *c)
{
	for (int i = 0; i < c->n; i++) {
		free(c->msg[i]);
		free(c->diff[i]);
	}
	c->n = 0;
}

static void run_list(const char *root, bool check, const json_t *list, struct collected *c)
{
	struct res_ctx ctx;
	res_ctx_init(&ctx, root, check);
	resource_run_list(&ctx, list, collect, c, NULL);
	res_ctx_release(&ctx);
}

/*
 * Check mode sees the whole list: a sysctl key that appears only once an
 * earlier kmod resource loads its module is "changed", not failed; apply
 * still fails when the key really is missing after the load.
 */
static void test_check_sysctl_after_kmod(void **state)
{
	const char *root = *state;
	struct collected c = { 0 };

	put(root, "/proc/sys/net/ipv4/ip_forward", "1\n");
	const char *mods[] = { "kiln_fake_brnf" };
	const char *keys[] = { "net.bridge.bridge-nf-call-iptables", "net.ipv4.ip_forward" };
	const char *vals[] = { "1", "1" };
	json_t *list = json_array();
	json_array_append_new(list, res_kmod("/etc/modules-load.d/kiln.conf", mods, 1));
	json_array_append_new(list, res_sysctl("/etc/sysctl.d/90-kiln.conf", keys, vals, 2));

	run_list(root, true, list, &c);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.st[0], RES_CHANGED);
	if (c.st[1] != RES_CHANGED)
		fail_msg("sysctl after kmod: %s", c.msg[1] ? c.msg[1] : "-");
	assert_contains(c.msg[1], "net.bridge.bridge-nf-call-iptables: would set after "
				  "module load");
	assert_contains(c.diff[1], "+net.bridge.bridge-nf-call-iptables = 1\n");
	collected_free(&c);

	/* Without the kmod resource the same sysctl is a hard failure. */
	json_t *alone = json_array();
	json_array_append(alone, json_array_get(list, 1));
	run_list(root, true, alone, &c);
	assert_int_equal(c.st[0], RES_FAILED);
	assert_contains(c.msg[0], "no such kernel parameter");
	collected_free(&c);
	json_decref(alone);

	/* Apply: a modprobe that does not bring the key still fails clearly. */
	char *old = fake_tool(root, "modprobe", "#!/bin/sh\nmkdir -p \"$2/sys/module/$3\"\n");
	run_list(root, false, list, &c);
	assert_int_equal(c.st[0], RES_CHANGED);
	assert_int_equal(c.st[1], RES_FAILED);
	assert_contains(c.msg[1], "sysctl 'net.bridge.bridge-nf-call-iptables': no such "
				  "kernel parameter");
	collected_free(&c);
	restore_path(old);

	/* Apply where the load brings the key: set, and converged after. */
	char *mp = rp(root, "/sys/module/kiln_fake_brnf");
	rm_rf(mp);
	free(mp);
	old = fake_tool(root, "modprobe", "#!/bin/sh\nmkdir -p \"$2/sys/module/$3\" "
			"\"$2/proc/sys/net/bridge\"\n"
			"echo 0 > \"$2/proc/sys/net/bridge/bridge-nf-call-iptables\"\n");
	run_list(root, false, list, &c);
	assert_int_equal(c.st[0], RES_CHANGED);
	assert_int_equal(c.st[1], RES_CHANGED);
	collected_free(&c);
	char *v = get(root, "/proc/sys/net/bridge/bridge-nf-call-iptables");
	assert_string_equal(v, "1");
	free(v);
	run_list(root, true, list, &c);
	assert_int_equal(c.st[0], RES_OK);
	assert_int_equal(c.st[1], RES_OK);
	collected_free(&c);
	restore_path(old);
	json_decref(list);
}

/*
 * Check mode: owners and groups that earlier user/group resources of the
 * same list would create are "changed" (ids unresolved), not failures;
 * apply resolves them for real.
 */
static void test_check_owner_created_earlier(void **state)
{
	const char *root = *state;
	struct collected c = { 0 };

	put(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
	put(root, "/etc/group", "root:x:0:\n");
	put(root, "/etc/shadow", "root:*:19000:0:99999:7:::\n");
	put(root, "/etc/gshadow", "root:*::\n");
	put(root, "/etc/kfile", "x\n");   /* content already right: only owners */
	put(root, "/etc/login.defs", "UID_MIN 1000\nGID_MIN 1000\n");

	const char *groups[] = { "kg" }, *keys[] = { "ssh-ed25519 AAAA x" };
	json_t *list = json_array();
	json_array_append_new(list, res_group("kg"));
	json_array_append_new(list, res_user("ku", NULL, groups, 1, keys, 1));
	json_array_append_new(list, res_file("/etc/kfile", "x\n", 0644, "ku", "kg"));
	json_array_append_new(list, res_directory("/srv/kdir", 0755, "ku", "ku"));

	run_list(root, true, list, &c);
	assert_int_equal(c.n, 4);
	for (int i = 0; i < 3; i++)
		if (c.st[i] != RES_CHANGED)
			fail_msg("resource %d: %s (%s)", i, res_status_name(c.st[i]),
				 c.msg[i] ? c.msg[i] : "-");
	assert_contains(c.msg[1], "create user ku");
	assert_contains(c.msg[2], "owner ku: user created earlier in this run "
				  "(uid unresolved)");
	assert_contains(c.msg[2], "group kg: group created earlier in this run "
				  "(gid unresolved)");
	/* Without user private groups, group ku will not exist: failed. */
	assert_int_equal(c.st[3], RES_FAILED);
	assert_string_equal(c.msg[3], "group 'ku': no such group");
	collected_free(&c);
	/* With them, ku's group comes with the user (useradd). */
	put(root, "/etc/login.defs", "UID_MIN 1000\nGID_MIN 1000\n USERGROUPS_ENAB\tyes\n");
	run_list(root, true, list, &c);
	assert_int_equal(c.st[3], RES_CHANGED);
	assert_contains(c.msg[3], "group ku: group created earlier in this run");
	collected_free(&c);

	/* The file alone (nothing pending): the unknown owner fails. */
	json_t *alone = json_array();
	json_array_append(alone, json_array_get(list, 2));
	run_list(root, true, alone, &c);
	assert_int_equal(c.st[0], RES_FAILED);
	assert_string_equal(c.msg[0], "owner 'ku': no such user");
	collected_free(&c);

	/* A package install pending before it: its maintainer scripts may
	 * make the user (munge, slurm), so check says changed. */
	char *dpkg = get("/", "/var/lib/dpkg/status");
	put(root, "/var/lib/dpkg/status", dpkg);
	free(dpkg);
	const char *missing[] = { "kiln-no-such-package-xyz" };
	json_t *after_pkg = json_array();
	json_array_append_new(after_pkg, res_package(missing, 1, true));
	json_array_append(after_pkg, json_array_get(list, 2));
	run_list(root, true, after_pkg, &c);
	assert_int_equal(c.st[0], RES_CHANGED);
	assert_int_equal(c.st[1], RES_CHANGED);
	assert_contains(c.msg[1], "owner ku: user created earlier in this run");
	collected_free(&c);
	json_decref(after_pkg);
	json_decref(alone);

	/* Apply never takes "pending" for "exists". */
	struct res_ctx ctx;
	struct res_result res;
	res_ctx_init(&ctx, root, false);
	strv_push(&ctx.changed, "user:ku");
	resource_run(&ctx, json_array_get(list, 2), &res);
	assert_int_equal(res.status, RES_FAILED);
	assert_string_equal(res.message, "owner 'ku': no such user");
	res_result_release(&res);
	res_ctx_release(&ctx);

	/* Apply the list: everything real, owners resolved, then ok. */
	run_list(root, false, list, &c);
	for (int i = 0; i < 4; i++)
		if (c.st[i] != RES_CHANGED)
			fail_msg("apply %d: %s (%s)", i, res_status_name(c.st[i]),
				 c.msg[i] ? c.msg[i] : "-");
	collected_free(&c);
	struct pwent pw = { 0 };
	gid_t kg;
	assert_int_equal(passwd_find(root, "ku", &pw), 0);
	assert_int_equal(group_find(root, "kg", &kg, NULL), 0);
	struct stat st;
	char *p = rp(root, "/etc/kfile");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_uid, pw.uid);
	assert_int_equal(st.st_gid, kg);
	free(p);
	pwent_release(&pw);
	run_list(root, true, list, &c);
	for (int i = 0; i < 4; i++)
		assert_int_equal(c.st[i], RES_OK);
	collected_free(&c);
	json_decref(list);
}

/*
 * A symlink at a managed path is never followed: a node user who points
 * ~/.ssh/authorized_keys at /etc/shadow must not see it in the plan.  The
 * link counts as no file; apply replaces the link, not its target.
 */
static void test_symlink_not_followed(void **state)
{
	const char *root = *state;

	put(root, "/etc/shadow", "root:TOPSECRET:19000::::::\n");
	mkdir_under(root, "/home/k/.ssh");
	char *target = rp(root, "/etc/shadow");
	char *ak = rp(root, "/home/k/.ssh/authorized_keys");
	assert_int_equal(symlink(target, ak), 0);

	json_t *r = res_file("/home/k/.ssh/authorized_keys", "ssh-ed25519 AAAA k\n", 0600,
			     NULL, NULL);
	struct outcome o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.diff, "--- /dev/null\n+++ /home/k/.ssh/authorized_keys\n"
				    "@@ -0,0 +1 @@\n+ssh-ed25519 AAAA k\n");
	char *want = xasprintf("replace symlink /home/k/.ssh/authorized_keys -> %s", target);
	assert_contains(o.message, want);
	free(want);
	assert_null(strstr(o.message, "TOPSECRET"));
	assert_null(strstr(o.message, "mode"));   /* the target's attributes: not ours */
	outcome_free(&o);

	converge(root, r);
	struct stat st;
	assert_int_equal(lstat(ak, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	char *c = get(root, "/etc/shadow");
	assert_string_equal(c, "root:TOPSECRET:19000::::::\n");   /* target untouched */
	free(c);
	assert_int_equal(mode_of(root, "/etc/shadow"), 0644);
	json_decref(r);

	/* Same content through the link: still a change (the link goes). */
	assert_int_equal(unlink(ak), 0);
	assert_int_equal(symlink(target, ak), 0);
	r = res_file("/home/k/.ssh/authorized_keys", "root:TOPSECRET:19000::::::\n", 0644,
		     NULL, NULL);
	o = run(root, true, r);
	assert_int_equal(o.status, RES_CHANGED);
	outcome_free(&o);
	converge(root, r);
	assert_int_equal(lstat(ak, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	json_decref(r);

	/* line: refuses to read or edit through a link, and shows nothing. */
	assert_int_equal(unlink(ak), 0);
	assert_int_equal(symlink(target, ak), 0);
	r = res_line("/home/k/.ssh/authorized_keys", "ssh-ed25519 BBBB k", NULL, true);
	for (int check = 1; check >= 0; check--) {
		o = run(root, check, r);
		assert_int_equal(o.status, RES_FAILED);
		assert_null(o.diff);
		assert_contains(o.message, "is a symlink");
		assert_null(strstr(o.message, "TOPSECRET"));
		outcome_free(&o);
	}
	c = get(root, "/etc/shadow");
	assert_string_equal(c, "root:TOPSECRET:19000::::::\n");
	free(c);
	json_decref(r);

	/* A FIFO at a managed path fails at once (never opened for reading). */
	char *fifo = rp(root, "/etc/fifo");
	assert_int_equal(mkfifo(fifo, 0644), 0);
	r = res_line("/etc/fifo", "x", NULL, true);
	o = run(root, true, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_string_equal(o.message, "/etc/fifo: exists and is not a regular file");
	outcome_free(&o);
	json_decref(r);
	free(fifo);
	free(target);
	free(ak);
}

/*
 * A symlink among the parents is followed only when its directory belongs
 * to root (or us) and nobody else may write there: a user's own link
 * (~/.ssh -> elsewhere) or one in a world-writable directory is refused
 * by file, line and directory alike, and nothing is written through it.
 */
static void test_parent_symlink(void **state)
{
	const char *root = *state;
	char *secret = rp(root, "/root/.ssh");
	mkdir_under(root, "/root/.ssh");

	/* a user's home holding a link to root's .ssh */
	mkdir_under(root, "/home/alice");
	char *home = rp(root, "/home/alice"), *link = rp(root, "/home/alice/.ssh");
	assert_int_equal(chown(home, 4242, 4242), 0);
	assert_int_equal(symlink(secret, link), 0);
	json_t *rs[] = {
		res_file("/home/alice/.ssh/authorized_keys", "ssh-ed25519 EVIL x\n", 0600,
			 NULL, NULL),
		res_line("/home/alice/.ssh/authorized_keys", "ssh-ed25519 EVIL x", NULL, true),
		json_pack("{s:s, s:s}", "type", "directory", "path", "/home/alice/.ssh/sub"),
	};
	for (size_t i = 0; i < ARRAY_SIZE(rs); i++) {
		for (int check = 1; check >= 0; check--) {
			struct outcome o = run(root, check, rs[i]);
			assert_int_equal(o.status, RES_FAILED);
			assert_contains(o.message, "parent /home/alice/.ssh is a symlink in a "
				       "directory owned by a user (uid 4242, mode 0755): not followed");
			outcome_free(&o);
		}
		json_decref(rs[i]);
	}
	char *got = get(root, "/root/.ssh/authorized_keys");
	assert_null(got);
	char *sub = rp(root, "/root/.ssh/sub");
	struct stat st;
	assert_int_equal(lstat(sub, &st), -1);

	/* a link in a world-writable directory (sticky or not) */
	mkdir_under(root, "/tmp");
	char *tmp = rp(root, "/tmp"), *tlink = rp(root, "/tmp/x");
	assert_int_equal(chmod(tmp, 01777), 0);
	assert_int_equal(symlink(secret, tlink), 0);
	json_t *r = res_file("/tmp/x/authorized_keys", "ssh-ed25519 EVIL x\n", 0600, NULL,
			     NULL);
	struct outcome o = run(root, false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_contains(o.message, "others may write to (uid 0, mode 1777)");
	outcome_free(&o);
	json_decref(r);
	assert_null(get(root, "/root/.ssh/authorized_keys"));

	/* a trusted link cannot lead on through an untrusted one */
	mkdir_under(root, "/srv");
	char *l2 = rp(root, "/tmp/l2"), *data = rp(root, "/srv/data");
	assert_int_equal(symlink(secret, l2), 0);
	assert_int_equal(symlink(l2, data), 0);
	r = res_file("/srv/data/authorized_keys", "ssh-ed25519 EVIL x\n", 0600, NULL, NULL);
	o = run(root, false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_contains(o.message, "parent /tmp/l2 is a symlink in a directory others may "
			"write to (uid 0, mode 1777)");
	outcome_free(&o);
	json_decref(r);
	assert_null(get(root, "/root/.ssh/authorized_keys"));

	/* with the real / as root, whatever the working directory */
	char *sys_link = xasprintf("/tmp/kiln-test-link-%d", (int)getpid());
	char *sys_path = xasprintf("%s/authorized_keys", sys_link);
	assert_int_equal(symlink(secret, sys_link), 0);
	assert_int_equal(chdir(root), 0);
	r = res_file(sys_path, "ssh-ed25519 EVIL x\n", 0600, NULL, NULL);
	o = run("/", false, r);
	assert_int_equal(unlink(sys_link), 0);
	assert_int_equal(o.status, RES_FAILED);
	char *want = xasprintf("parent %s is a symlink in a directory others may write to",
			       sys_link);
	assert_contains(o.message, want);
	free(want);
	outcome_free(&o);
	json_decref(r);
	assert_null(get(root, "/root/.ssh/authorized_keys"));
	free(sys_link);
	free(sys_path);
	free(l2);
	free(data);

	/* the system's own link (root's directory, 0755) is followed */
	mkdir_under(root, "/run");
	mkdir_under(root, "/var");
	char *run_dir = rp(root, "/run"), *var_run = rp(root, "/var/run");
	assert_int_equal(symlink(run_dir, var_run), 0);
	r = res_file("/var/run/kiln.conf", "x\n", 0644, NULL, NULL);
	converge(root, r);
	json_decref(r);
	got = get(root, "/run/kiln.conf");
	assert_string_equal(got, "x\n");

	free(got);
	free(secret);
	free(home);
	free(link);
	free(sub);
	free(tmp);
	free(tlink);
	free(run_dir);
	free(var_run);
}

/* The installed version of pkg from the real dpkg database (caller frees). */
static char *dpkg_version(const char *pkg)
{
	char *argv[] = { "dpkg-query", "-W", "-f=${Version}", (char *)pkg, NULL };
	struct buf out;
	struct run_opts o = { .out = &out, .timeout_ms = 60000 };
	int st;
	buf_init(&out, 0);
	assert_int_equal(run_argv(argv, &o, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(out.len > 0);
	return buf_detach(&out, NULL);
}

/* A pinned version converges: compared with ${Version}, not the bare name. */
static void test_package_pin(void **state)
{
	const char *root = *state;
	char *ver = dpkg_version("coreutils");
	char *pinned = xasprintf("coreutils=%s", ver);
	const char *ok[] = { pinned, "dpkg" };
	json_t *r = res_package(ok, 2, true);
	expect("/", true, r, RES_OK);
	json_decref(r);

	const char *wrong[] = { "coreutils=0.0-kiln-not-this", "coreutils" };
	r = res_package(wrong, 2, true);
	struct outcome o = run("/", true, r);
	assert_int_equal(o.status, RES_CHANGED);
	assert_string_equal(o.message, "install coreutils=0.0-kiln-not-this");
	outcome_free(&o);

	/* apt-get gets the pin (a downgrade is allowed); success is still what
	 * the database says. */
	char *log = rp(root, "/apt.log");
	char *script = xasprintf("#!/bin/sh\necho \"$*\" > %s\n", log);
	char *old = fake_tool(root, "apt-get", script);
	o = run("/", false, r);
	assert_int_equal(o.status, RES_FAILED);
	assert_contains(o.message, "package 'coreutils=0.0-kiln-not-this' still missing");
	outcome_free(&o);
	char *c = get(root, "/apt.log");
	assert_contains(c, " install --no-install-recommends --allow-downgrades -- "
			   "coreutils=0.0-kiln-not-this\n");
	free(c);
	restore_path(old);
	free(script);
	free(log);
	json_decref(r);

	/* Malformed pins, and pins with absent, are refused. */
	const char *bad[] = { "coreutils=", "coreutils=1=2", "=1" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct kerr e = { 0 };
		r = res_package(&bad[i], 1, true);
		assert_int_equal(resource_validate(r, &e), -EINVAL);
		assert_contains(e.msg, "is not a package name");
		json_decref(r);
	}
	struct kerr e = { 0 };
	r = res_package(ok, 1, false);
	assert_int_equal(resource_validate(r, &e), -EINVAL);
	assert_contains(e.msg, "a version pin needs state present");
	json_decref(r);
	free(pinned);
	free(ver);
}

/*
 * Units that are static, alias, indirect or generated count as enabled
 * when enabled is wanted; a watched change restarts a running service even
 * when no state was given.
 */
static void test_service_static_and_restart(void **state)
{
	const char *root = *state;
	char *sd = rp(root, "/sd");
	static const char *const kinds[] = { "static", "alias", "indirect", "generated" };

	mkdir_under(root, "/run/systemd/system");
	mkdir_under(root, "/sd");
	setenv("KILN_FAKE_SYSTEMD", sd, 1);
	char *old = fake_tool(root, "systemctl", fake_systemctl);
	put(root, "/sd/u.active", "");
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		char *line = xasprintf("%s\n", kinds[i]);
		put(root, "/sd/u.state", line);
		free(line);
		json_t *svc = res_service("u", true, true, NULL, 0);
		struct outcome o = run(root, true, svc);
		if (o.status != RES_OK)
			fail_msg("is-enabled %s: %s", kinds[i], o.message ? o.message : "-");
		outcome_free(&o);
		json_decref(svc);
	}
	assert_null(get(root, "/sd/log"));

	/* Running, no state given, watched file changes: restarted. */
	const char *watch[] = { "file:/etc/u.conf" };
	json_t *svc = res_service("u", true, true, watch, 1);
	json_object_del(svc, "state");
	json_t *list = json_array();
	json_array_append_new(list, res_file("/etc/u.conf", "v1\n", 0644, NULL, NULL));
	json_array_append_new(list, svc);
	struct collected c = { 0 };
	run_list(root, true, list, &c);
	assert_int_equal(c.st[1], RES_CHANGED);
	assert_string_equal(c.msg[1], "restart u (file:/etc/u.conf changed)");
	collected_free(&c);
	run_list(root, false, list, &c);
	assert_int_equal(c.st[1], RES_CHANGED);
	collected_free(&c);
	char *log = get(root, "/sd/log");
	assert_string_equal(log, "daemon-reload \nrestart u\n");
	free(log);

	/* Stopped and no state: a change does not start it. */
	char *act = rp(root, "/sd/u.active");
	assert_int_equal(unlink(act), 0);
	free(act);
	json_object_set_new(json_array_get(list, 0), "content", json_string("v2\n"));
	run_list(root, false, list, &c);
	assert_int_equal(c.st[0], RES_CHANGED);
	assert_int_equal(c.st[1], RES_OK);
	collected_free(&c);
	json_decref(list);
	restore_path(old);
	unsetenv("KILN_FAKE_SYSTEMD");
	free(sd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diff_basic),
		cmocka_unit_test(test_diff_hunks),
		cmocka_unit_test_setup_teardown(test_diff_patch_roundtrip, setup_root, teardown_root),
		cmocka_unit_test(test_validate),
		cmocka_unit_test_setup_teardown(test_file, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_secret, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_file_owner, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_directory, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_line, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_sysctl, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_kmod, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_reboot, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_swap, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_hostname, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_command, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_service_no_systemd, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_service_fake_systemd, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_package, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_package_apply_fake_apt, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_user_group, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_run_list, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_check_sysctl_after_kmod, setup_root,
						teardown_root),
		cmocka_unit_test_setup_teardown(test_check_owner_created_earlier, setup_root,
						teardown_root),
		cmocka_unit_test_setup_teardown(test_symlink_not_followed, setup_root,
						teardown_root),
		cmocka_unit_test_setup_teardown(test_parent_symlink, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_package_pin, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_service_static_and_restart, setup_root,
						teardown_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
