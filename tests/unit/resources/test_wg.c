/*
 * wgkey, wireguard and reach against the real tools: keys checked against
 * `wg pubkey`, and a two-node mesh in two network namespaces this test
 * makes (kt-wg-a / kt-wg-b joined by a veth pair, 10.213.250.0/30), with
 * wireguard-go as the interface (no kernel module here).  Needs root.
 * Namespaces, wireguard-go processes and temp dirs are removed in teardown,
 * also when an assertion fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "resources/res_int.h"

#define NS_A "kt-wg-a"
#define NS_B "kt-wg-b"
#define IF_A "ktwga0"
#define IF_B "ktwgb0"
#define IF_T "ktwgt0"
#define KEY "/etc/kiln/mesh/private.key"

static char tmpdir[] = "/tmp/kt-wg-XXXXXX";

/* ---- helpers ---- */

/* Run argv; returns its exit code (or -errno); stdout into out if given. */
static int sh(struct buf *out, const char *in, const char *arg0, ...)
{
	char *argv[32];
	va_list ap;
	int n = 0, st = 0;

	argv[n++] = (char *)arg0;
	va_start(ap, arg0);
	while (n < 31 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	struct run_opts o = { .in = in, .in_len = in ? strlen(in) : 0, .out = out,
			      .timeout_ms = 20000 };
	int r = run_argv(argv, &o, &st);
	if (r < 0)
		return r;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* stdout of a command in a namespace (caller frees); NULL when it failed. */
static char *ns_out(const char *ns, const char *a, const char *b, const char *c,
		    const char *d)
{
	struct buf o;
	buf_init(&o, 1 << 20);
	if (sh(&o, NULL, "ip", "netns", "exec", ns, a, b, c, d, NULL) != 0) {
		buf_release(&o);
		return NULL;
	}
	return buf_detach(&o, NULL);
}

/* pid of "wireguard-go IFNAME" (any argument form), 0 when none. */
static pid_t wg_go_pid(const char *ifname)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	while (d && (de = readdir(d)) && !found) {
		char p[300], cmd[256];
		snprintf(p, sizeof(p), "/proc/%s/cmdline", de->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (n <= 0)
			continue;
		cmd[n] = '\0';
		const char *base = strrchr(cmd, '/') ? strrchr(cmd, '/') + 1 : cmd;
		if (strcmp(base, "wireguard-go"))
			continue;
		for (char *a = cmd + strlen(cmd) + 1; a < cmd + n; a += strlen(a) + 1)
			if (!strcmp(a, ifname))
				found = (pid_t)atoi(de->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

/* Stop the wireguard-go this test started for ifname; waits until gone. */
static void wg_go_stop(const char *ifname)
{
	pid_t p = wg_go_pid(ifname);
	char sock[64];

	if (p > 0) {
		kill(p, SIGTERM);
		for (int i = 0; i < 100 && kill(p, 0) == 0; i++)
			usleep(50 * 1000);
		if (kill(p, 0) == 0)
			kill(p, SIGKILL);
		for (int i = 0; i < 100 && kill(p, 0) == 0; i++)
			usleep(50 * 1000);
	}
	snprintf(sock, sizeof(sock), "/var/run/wireguard/%s.sock", ifname);
	unlink(sock);
}

static void cleanup(void)
{
	wg_go_stop(IF_A);
	wg_go_stop(IF_B);
	wg_go_stop(IF_T);
	sh(NULL, NULL, "ip", "netns", "del", NS_A, NULL);
	sh(NULL, NULL, "ip", "netns", "del", NS_B, NULL);
	sh(NULL, NULL, "ip", "link", "del", "kt-wga-v", NULL);
}

static char *root_of(const char *side)
{
	return xasprintf("%s/%s", tmpdir, side);
}

/*
 * resource_run in network namespace ns (a forked child that setns(2)s
 * there), the result sent back as JSON.  ns NULL = here.
 */
static void ns_run(const char *ns, const char *root, bool check, const json_t *res,
		   struct res_result *out)
{
	int p[2];
	pid_t pid;
	struct buf b;
	char tmp[4096];
	ssize_t n;
	int st;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char path[128];
		snprintf(path, sizeof(path), "/run/netns/%s", ns);
		int fd = ns ? open(path, O_RDONLY | O_CLOEXEC) : -1;
		if (ns && (fd < 0 || setns(fd, CLONE_NEWNET) < 0))
			_exit(3);
		struct res_ctx ctx;
		struct res_result r;
		res_ctx_init(&ctx, root, check);
		resource_run(&ctx, res, &r);
		json_t *j = json_pack("{s:i,s:s?,s:s?,s:O?}", "status", (int)r.status,
				      "diff", r.diff, "message", r.message, "exports",
				      r.exports);
		char *s = json_dumps(j, 0);
		size_t len = strlen(s), off = 0;
		while (off < len) {
			ssize_t w = write(p[1], s + off, len - off);
			if (w <= 0)
				_exit(4);
			off += (size_t)w;
		}
		_exit(0);
	}
	close(p[1]);
	buf_init(&b, 0);
	while ((n = read(p[0], tmp, sizeof(tmp))) > 0)
		buf_add(&b, tmp, (size_t)n);
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	json_t *j = json_loads(b.s, 0, NULL);
	assert_non_null(j);
	*out = (struct res_result){ .status = json_integer_value(json_object_get(j, "status")) };
	if (json_string_value(json_object_get(j, "diff")))
		out->diff = xstrdup(json_string_value(json_object_get(j, "diff")));
	if (json_string_value(json_object_get(j, "message")))
		out->message = xstrdup(json_string_value(json_object_get(j, "message")));
	if (json_is_object(json_object_get(j, "exports")))
		out->exports = json_incref(json_object_get(j, "exports"));
	json_decref(j);
	buf_release(&b);
}

static void show(const char *what, const struct res_result *r)
{
	printf("# %s: %s; %s\n%s", what, res_status_name(r->status),
	       r->message ? r->message : "", r->diff ? r->diff : "");
}

static const char *export_of(const struct res_result *r, const char *k)
{
	return json_string_value(json_object_get(r->exports, k));
}

/* File content under root (caller frees) or NULL. */
static char *slurp(const char *root, const char *path)
{
	char *full = path_join(root, path);
	struct buf b;
	buf_init(&b, 0);
	int r = file_read(full, &b, 0);
	free(full);
	if (r < 0) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

/* `wg pubkey` of a private key text. */
static char *wg_pubkey(const char *priv)
{
	struct buf o;
	buf_init(&o, 4096);
	assert_int_equal(sh(&o, priv, "wg", "pubkey", NULL), 0);
	return str_trim(buf_detach(&o, NULL));
}

static bool has_key(const struct res_result *r, const char *priv)
{
	char k[45];
	snprintf(k, sizeof(k), "%s", priv);   /* without the newline */
	return (r->diff && strstr(r->diff, k)) || (r->message && strstr(r->message, k));
}

static int setup_tmp(void **state)
{
	strcpy(tmpdir, "/tmp/kt-wg-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
	rm_rf(tmpdir);
	return 0;
}

/* ---- wgkey ---- */

static void test_wgkey(void **state)
{
	char *root = root_of("k"), *full = path_join(root, KEY), *dir = NULL;
	json_t *k = res_wgkey(KEY, false);
	struct res_result r;
	struct stat st;

	/* Missing: check would make it, exports nothing, touches nothing. */
	ns_run(NULL, root, true, k, &r);
	assert_int_equal(r.status, RES_CHANGED);
	assert_null(r.exports);
	assert_false(path_exists(full));
	res_result_release(&r);

	ns_run(NULL, root, false, k, &r);
	show("wgkey create", &r);
	assert_int_equal(r.status, RES_CHANGED);
	char *priv = slurp(root, KEY);
	assert_non_null(priv);
	assert_int_equal(strlen(priv), 45);
	assert_int_equal(priv[44], '\n');
	char *pub = wg_pubkey(priv);
	assert_string_equal(export_of(&r, "public_key"), pub);
	assert_false(has_key(&r, priv));
	assert_int_equal(lstat(full, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, 0);
	dir = xstrdup(full);
	*strrchr(dir, '/') = '\0';
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	res_result_release(&r);

	/* Idempotent: ok, same key, same export. */
	ns_run(NULL, root, false, k, &r);
	assert_int_equal(r.status, RES_OK);
	assert_string_equal(export_of(&r, "public_key"), pub);
	res_result_release(&r);

	/* Wrong mode: would change (still exporting), apply keeps the key. */
	assert_int_equal(chmod(full, 0644), 0);
	ns_run(NULL, root, true, k, &r);
	assert_int_equal(r.status, RES_CHANGED);
	assert_non_null(strstr(r.message, "mode 0644 -> 0600"));
	assert_string_equal(export_of(&r, "public_key"), pub);
	res_result_release(&r);
	ns_run(NULL, root, false, k, &r);
	assert_int_equal(r.status, RES_CHANGED);
	assert_int_equal(stat(full, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	char *same = slurp(root, KEY);
	assert_string_equal(same, priv);
	res_result_release(&r);

	/* Rotate: check says it would and touches nothing; apply makes a new key. */
	json_t *rot = res_wgkey(KEY, true);
	ns_run(NULL, root, true, rot, &r);
	assert_int_equal(r.status, RES_CHANGED);
	res_result_release(&r);
	char *still = slurp(root, KEY);
	assert_string_equal(still, priv);
	ns_run(NULL, root, false, rot, &r);
	assert_int_equal(r.status, RES_CHANGED);
	char *priv2 = slurp(root, KEY);
	assert_string_not_equal(priv2, priv);
	char *pub2 = wg_pubkey(priv2);
	assert_string_equal(export_of(&r, "public_key"), pub2);
	assert_string_not_equal(pub2, pub);
	assert_false(has_key(&r, priv2) || has_key(&r, priv));
	res_result_release(&r);

	/* Not a key: failed, content not echoed. */
	assert_int_equal(file_write_atomic(full, "hello\n", 6, 0600, 0, 0), 0);
	ns_run(NULL, root, false, k, &r);
	assert_int_equal(r.status, RES_FAILED);
	assert_non_null(strstr(r.message, "does not hold a WireGuard key"));
	res_result_release(&r);

	/* The static agent carries exports on its result line. */
	char *list = xasprintf("%s/list.json", tmpdir);
	json_t *arr = json_pack("[O]", k);
	assert_int_equal(json_dump_file(arr, list, 0), 0);
	unlink(full);
	struct buf o;
	buf_init(&o, 1 << 20);
	assert_int_equal(sh(&o, NULL, KILN_AGENT, "apply", list, "--root", root, NULL), 0);
	char *priv3 = slurp(root, KEY);
	char *pub3 = wg_pubkey(priv3);
	char *want = xasprintf("\"exports\": {\"public_key\": \"%s\"}", pub3);
	char *want2 = xasprintf("\"exports\":{\"public_key\":\"%s\"}", pub3);
	assert_true(strstr(o.s, want) || strstr(o.s, want2));
	assert_null(strstr(o.s, priv3 ? (priv3[44] = '\0', priv3) : "x"));
	buf_release(&o);

	free(want);
	free(want2);
	free(priv3);
	free(pub3);
	json_decref(arr);
	free(list);
	json_decref(rot);
	free(priv2);
	free(pub2);
	free(still);
	free(same);
	free(pub);
	free(priv);
	json_decref(k);
	free(dir);
	free(full);
	free(root);
}

static void test_validate(void **state)
{
	struct kerr e = { 0 };
	const char *routes[] = { "10.50.0.0/16" };
	json_t *w = res_wireguard("kiln0", KEY, 51820, "10.99.0.1/24", 0, NULL, routes, 1);
	const char *ai[] = { "10.99.0.2/32" };
	const char *pk = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

	res_wireguard_add_peer(w, pk, "10.213.1.11:51820", ai, 1, 25);
	assert_int_equal(resource_validate(w, &e), 0);
	char *id = resource_id(w);
	assert_string_equal(id, "wireguard:kiln0");
	free(id);

	json_t *bad = json_deep_copy(w);
	json_object_set_new(bad, "interface", json_string("Kiln0"));
	assert_true(resource_validate(bad, &e) < 0);
	json_object_set_new(bad, "interface", json_string("kiln0"));
	json_object_set_new(bad, "routes", json_pack("[s]", "10.50.0.1/16"));
	assert_true(resource_validate(bad, &e) < 0);
	assert_non_null(strstr(e.msg, "routes"));
	json_object_set_new(bad, "routes", json_array());
	json_object_set_new(json_array_get(json_object_get(bad, "peers"), 0), "public_key",
			    json_string("AAAA"));
	assert_true(resource_validate(bad, &e) < 0);
	assert_non_null(strstr(e.msg, "peers[0]"));
	json_decref(bad);

	bad = json_deep_copy(w);
	res_wireguard_add_peer(bad, pk, NULL, ai, 1, 0);
	assert_true(resource_validate(bad, &e) < 0);
	assert_non_null(strstr(e.msg, "twice"));
	json_decref(bad);

	bad = json_deep_copy(w);
	json_object_set_new(json_array_get(json_object_get(bad, "peers"), 0), "endpoint",
			    json_string("node2:51820"));
	assert_true(resource_validate(bad, &e) < 0);
	json_object_set_new(bad, "listen_port", json_integer(70000));
	assert_true(resource_validate(bad, &e) < 0);
	json_decref(bad);
	json_decref(w);

	const char *names[] = { "n2", "n3" }, *addrs[] = { "10.99.0.2", "10.99.0.3" };
	json_t *reach = res_reach(names, addrs, 2, 5000);
	assert_int_equal(resource_validate(reach, &e), 0);
	id = resource_id(reach);
	assert_string_equal(id, "reach:2 targets");
	free(id);
	json_object_set_new(reach, "timeout_ms", json_integer(60001));
	assert_true(resource_validate(reach, &e) < 0);
	json_decref(reach);
}

/* ---- the mesh ---- */

static int setup_mesh(void **state)
{
	if (setup_tmp(state) < 0)
		return -1;
	cleanup();
	const char *steps[][12] = {
		{ "ip", "netns", "add", NS_A, NULL },
		{ "ip", "netns", "add", NS_B, NULL },
		{ "ip", "link", "add", "kt-wga-v", "mtu", "1400", "type", "veth", "peer",
		  "name", "kt-wgb-v", NULL },
		{ "ip", "link", "set", "kt-wga-v", "netns", NS_A, NULL },
		{ "ip", "link", "set", "kt-wgb-v", "netns", NS_B, "mtu", "1400", NULL },
		{ "ip", "-n", NS_A, "addr", "add", "10.213.250.1/30", "dev", "kt-wga-v", NULL },
		{ "ip", "-n", NS_B, "addr", "add", "10.213.250.2/30", "dev", "kt-wgb-v", NULL },
		{ "ip", "-n", NS_A, "link", "set", "kt-wga-v", "up", NULL },
		{ "ip", "-n", NS_B, "link", "set", "kt-wgb-v", "up", NULL },
		{ "ip", "-n", NS_A, "link", "set", "lo", "up", NULL },
		{ "ip", "-n", NS_B, "link", "set", "lo", "up", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		int st = 0;
		struct run_opts o = { .timeout_ms = 10000 };
		if (run_argv((char *const *)steps[i], &o, &st) < 0 || st != 0) {
			fprintf(stderr, "setup step %zu failed\n", i);
			return -1;
		}
	}
	return 0;
}

static int teardown_mesh(void **state)
{
	cleanup();
	return teardown_tmp(state);
}

/* The dump line of peer key on ifname in ns, fields split (caller frees). */
static char *peer_line(const char *ns, const char *ifname, const char *key)
{
	char *d = ns_out(ns, "wg", "show", ifname, "dump");
	char *line = NULL;

	assert_non_null(d);
	for (char *s = d; *s;) {
		size_t n = strcspn(s, "\n");
		if (!strncmp(s, key, strlen(key)))
			line = xstrndup(s, n);
		s += n + (s[n] == '\n');
	}
	sodium_memzero(d, strlen(d));
	free(d);
	return line;
}

/* Field i (0-based, tab-separated) of a dump line (caller frees). */
static char *field(const char *line, int i)
{
	const char *s = line;
	while (i-- > 0) {
		s = strchr(s, '\t');
		assert_non_null(s);
		s++;
	}
	return xstrndup(s, strcspn(s, "\t"));
}

static void test_mesh(void **state)
{
	char *ra = root_of("a"), *rb = root_of("b"), *rc = root_of("c");
	struct res_result r;
	json_t *k = res_wgkey(KEY, false);

	/* Keys for A, B and a third node C (never started). */
	ns_run(NULL, ra, false, k, &r);
	char *pa = xstrdup(export_of(&r, "public_key"));
	res_result_release(&r);
	ns_run(NULL, rb, false, k, &r);
	char *pb = xstrdup(export_of(&r, "public_key"));
	res_result_release(&r);
	ns_run(NULL, rc, false, k, &r);
	char *pc = xstrdup(export_of(&r, "public_key"));
	res_result_release(&r);
	char *priva = slurp(ra, KEY), *privb = slurp(rb, KEY);

	const char *ai_b[] = { "10.99.0.2/32" }, *ai_a[] = { "10.99.0.1/32" },
		   *ai_c[] = { "10.99.0.3/32" }, *routes[] = { "10.50.0.0/16" };
	/* A: mtu auto (veth 1400 - 80), endpoint for B; B: no endpoint for A. */
	json_t *wa = res_wireguard(IF_A, KEY, 51820, "10.99.0.1/24", 0,
				   "/etc/wireguard/" IF_A ".conf", routes, 1);
	res_wireguard_add_peer(wa, pb, "10.213.250.2:51820", ai_b, 1, 0);
	json_t *wb = res_wireguard(IF_B, KEY, 51820, "10.99.0.2/24", 1320, NULL, NULL, 0);
	res_wireguard_add_peer(wb, pa, NULL, ai_a, 1, 0);

	ns_run(NS_A, ra, false, wa, &r);
	show("apply A", &r);
	assert_int_equal(r.status, RES_CHANGED);
	assert_non_null(strstr(r.message, "interface created (wireguard-go)"));
	assert_non_null(strstr(r.diff, "+ peer "));
	assert_non_null(strstr(r.diff, "PrivateKey = (from " KEY ")"));
	assert_false(has_key(&r, priva));
	res_result_release(&r);
	ns_run(NS_B, rb, false, wb, &r);
	show("apply B", &r);
	assert_int_equal(r.status, RES_CHANGED);
	assert_false(has_key(&r, privb));
	res_result_release(&r);

	char *peers = ns_out(NS_A, "wg", "show", IF_A, "peers");
	assert_non_null(strstr(peers, pb));
	free(peers);
	char *link = ns_out(NS_A, "ip", "link", "show", IF_A);
	assert_non_null(strstr(link, "mtu 1320"));
	free(link);
	struct buf rtb;
	buf_init(&rtb, 1 << 20);
	assert_int_equal(sh(&rtb, NULL, "ip", "-n", NS_A, "route", "show", "proto", "77",
			    NULL), 0);
	char *rt = buf_detach(&rtb, NULL);
	assert_non_null(strstr(rt, "10.50.0.0/16 dev " IF_A));
	free(rt);

	/* The overlay carries packets; a silent address is named. */
	const char *nb[] = { "node-b" }, *ab[] = { "10.99.0.2" };
	json_t *reach = res_reach(nb, ab, 1, 5000);
	ns_run(NS_A, ra, false, reach, &r);
	show("reach B", &r);
	assert_int_equal(r.status, RES_OK);
	assert_string_equal(r.message, "1 peer answered");
	res_result_release(&r);
	ns_run(NS_A, ra, true, reach, &r);
	assert_int_equal(r.status, RES_OK);
	assert_string_equal(r.message, "checked on apply");
	res_result_release(&r);
	const char *nc[] = { "node-b", "node-c" }, *ac[] = { "10.99.0.2", "10.99.0.3" };
	json_t *reach2 = res_reach(nc, ac, 2, 1000);
	ns_run(NS_A, ra, false, reach2, &r);
	assert_int_equal(r.status, RES_FAILED);
	assert_string_equal(r.message, "no reply from node-c (10.99.0.3) within 1 s");
	res_result_release(&r);

	/* Second apply: nothing to do on either side. */
	ns_run(NS_A, ra, false, wa, &r);
	show("again A", &r);
	assert_int_equal(r.status, RES_OK);
	assert_null(r.diff);
	res_result_release(&r);
	ns_run(NS_B, rb, false, wb, &r);
	show("again B", &r);
	assert_int_equal(r.status, RES_OK);
	res_result_release(&r);

	/* A third peer: B's entry (handshake, rx) is untouched. */
	char *before = peer_line(NS_A, IF_A, pb);
	assert_non_null(before);
	char *hs = field(before, 4);
	assert_string_not_equal(hs, "0");        /* a session exists */
	json_t *wa3 = json_deep_copy(wa);
	res_wireguard_add_peer(wa3, pc, NULL, ai_c, 1, 25);
	ns_run(NS_A, ra, false, wa3, &r);
	show("add C", &r);
	assert_int_equal(r.status, RES_CHANGED);
	char *plus = xasprintf("+ peer %.8s… (10.99.0.3/32)", pc);
	assert_non_null(strstr(r.diff, plus));
	assert_null(strstr(r.diff, "- peer"));
	assert_null(strstr(r.diff, "~ peer"));
	res_result_release(&r);
	char *after = peer_line(NS_A, IF_A, pb);
	assert_non_null(after);
	for (int f = 2; f <= 5; f++) {   /* endpoint, allowed-ips, handshake, rx */
		char *x = field(before, f), *y = field(after, f);
		assert_string_equal(x, y);
		free(x);
		free(y);
	}
	char *lc = peer_line(NS_A, IF_A, pc);
	assert_non_null(lc);
	char *kac = field(lc, 7);
	assert_string_equal(kac, "25");

	/* Removing C removes only C. */
	ns_run(NS_A, ra, false, wa, &r);
	show("remove C", &r);
	assert_int_equal(r.status, RES_CHANGED);
	char *minus = xasprintf("- peer %.8s…", pc);
	assert_non_null(strstr(r.diff, minus));
	assert_null(strstr(r.diff, "+ peer"));
	res_result_release(&r);
	char *gone = peer_line(NS_A, IF_A, pc);
	assert_null(gone);
	char *after2 = peer_line(NS_A, IF_A, pb);
	assert_non_null(after2);
	char *hs2 = field(after2, 4);
	assert_string_equal(hs2, hs);

	/* wireguard-go gone: check says so and touches nothing; apply restores. */
	wg_go_stop(IF_A);
	ns_run(NS_A, ra, true, wa, &r);
	show("check after kill", &r);
	assert_int_equal(r.status, RES_CHANGED);
	assert_non_null(strstr(r.message, "interface " IF_A " missing: would create"));
	res_result_release(&r);
	assert_int_equal(wg_go_pid(IF_A), 0);
	ns_run(NS_A, ra, false, wa, &r);
	show("apply after kill", &r);
	assert_int_equal(r.status, RES_CHANGED);
	assert_non_null(strstr(r.message, "interface created (wireguard-go)"));
	assert_null(r.diff ? strstr(r.diff, "PrivateKey") : NULL);  /* file was right */
	res_result_release(&r);
	ns_run(NS_A, ra, false, reach, &r);
	assert_int_equal(r.status, RES_OK);
	res_result_release(&r);

	/* The config file: the real key, 0600, and wg-quick strip + wg setconf take it. */
	char *conf_path = path_join(ra, "/etc/wireguard/" IF_A ".conf");
	struct stat st;
	assert_int_equal(stat(conf_path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	char *conf = slurp(ra, "/etc/wireguard/" IF_A ".conf");
	priva[44] = '\0';
	char *pkline = xasprintf("PrivateKey = %s\n", priva);
	assert_non_null(strstr(conf, pkline));
	struct buf stripped;
	buf_init(&stripped, 1 << 20);
	assert_int_equal(sh(&stripped, NULL, "wg-quick", "strip", conf_path, NULL), 0);
	assert_null(strstr(stripped.s, "Address"));
	wg_go_stop(IF_A);   /* frees port 51820 in NS_A for the throwaway */
	assert_int_equal(sh(NULL, NULL, "ip", "netns", "exec", NS_A, "wireguard-go", IF_T,
			    NULL), 0);
	int ok = -1;
	for (int i = 0; i < 50 && ok != 0; i++) {
		ok = sh(NULL, NULL, "wg", "show", IF_T, NULL);
		if (ok)
			usleep(100 * 1000);
	}
	assert_int_equal(ok, 0);
	assert_int_equal(sh(NULL, stripped.s, "ip", "netns", "exec", NS_A, "wg", "setconf",
			    IF_T, "/dev/stdin", NULL), 0);
	char *tpeers = ns_out(NS_A, "wg", "show", IF_T, "peers");
	assert_non_null(strstr(tpeers, pb));
	char *tpub = ns_out(NS_A, "wg", "show", IF_T, "public-key");
	assert_non_null(strstr(tpub, pa));
	wg_go_stop(IF_T);

	sodium_memzero(stripped.s, stripped.alloc);
	buf_release(&stripped);
	free(tpeers);
	free(tpub);
	free(pkline);
	sodium_memzero(conf, strlen(conf));
	free(conf);
	free(conf_path);
	free(hs2);
	free(after2);
	free(minus);
	free(kac);
	free(lc);
	free(after);
	free(plus);
	json_decref(wa3);
	free(hs);
	free(before);
	json_decref(reach2);
	json_decref(reach);
	json_decref(wa);
	json_decref(wb);
	free(priva);
	free(privb);
	free(pa);
	free(pb);
	free(pc);
	json_decref(k);
	free(ra);
	free(rb);
	free(rc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate),
		cmocka_unit_test_setup_teardown(test_wgkey, setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_mesh, setup_mesh, teardown_mesh),
	};
	if (geteuid() != 0) {
		fprintf(stderr, "test_wg: needs root (network namespaces, wireguard-go)\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
