/* serve: iPXE rendering, Range parsing, the spec -> config step, state and enroll. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "serve/serve.h"

#define DATA KILN_TEST_DATA "/serve/data"

/* A scratch copy of data/cluster.yaml whose boot.enrolled points into dir. */
static char *scratch_spec(char *dir)
{
	struct buf b;
	buf_init(&b, 0);
	assert_non_null(mkdtemp(dir));
	assert_int_equal(file_read(DATA "/cluster.yaml", &b, 0), 0);
	char *enr = xasprintf("%s/enrolled.yaml", dir);
	char *at = strstr(b.s, "ENROLLED");
	assert_non_null(at);
	char *text = xasprintf("%.*s%s%s", (int)(at - b.s), b.s, enr, at + 8);
	/* images are relative to the spec: link them */
	char *img = xasprintf("%s/images", dir);
	assert_int_equal(symlink(DATA "/images", img), 0);
	char *path = xasprintf("%s/cluster.yaml", dir);
	assert_int_equal(file_write_atomic(path, text, strlen(text), 0644, -1, -1), 0);
	free(enr);
	free(text);
	free(img);
	buf_release(&b);
	return path;
}

static void test_render(void **state)
{
	struct tmpl_var v[] = { { "a", "one" }, { "bb", "two" }, { "empty", NULL } };
	struct buf b;
	struct kerr e = { 0 };

	buf_init(&b, 0);
	assert_int_equal(ipxe_render("x{{a}}y{{ bb }}z{{empty}}", v, 3, &b, &e), 0);
	assert_string_equal(b.s, "xoneytwoz");
	buf_reset(&b);
	assert_int_equal(ipxe_render("{{nope}}", v, 3, &b, &e), -EINVAL);
	assert_string_equal(e.msg, "template: unknown variable 'nope'");
	buf_reset(&b);
	assert_int_equal(ipxe_render("ab{{a", v, 3, &b, &e), -EINVAL);
	assert_string_equal(e.msg, "template: '{{' at offset 2 is not closed");
	/* a newline in a value would add iPXE commands */
	struct tmpl_var bad[] = { { "c", "quiet\nshell" } };
	buf_reset(&b);
	assert_int_equal(ipxe_render("kernel x {{c}}", bad, 1, &b, &e), -EINVAL);
	/* output is capped */
	char *big = xmalloc(IPXE_MAX_SCRIPT + 2);
	memset(big, 'x', IPXE_MAX_SCRIPT + 1);
	big[IPXE_MAX_SCRIPT + 1] = '\0';
	struct tmpl_var large[] = { { "a", big } };
	buf_reset(&b);
	assert_int_equal(ipxe_render("{{a}}", large, 1, &b, &e), -E2BIG);
	free(big);
	buf_release(&b);
}

static void test_range(void **state)
{
	uint64_t f = 7, l = 7;
	assert_int_equal(http_range_parse(NULL, 100, &f, &l), 1);
	assert_int_equal(http_range_parse("bytes=0-9", 100, &f, &l), 0);
	assert_true(f == 0 && l == 9);
	assert_int_equal(http_range_parse("bytes=90-", 100, &f, &l), 0);
	assert_true(f == 90 && l == 99);
	assert_int_equal(http_range_parse("bytes=50-5000", 100, &f, &l), 0);
	assert_true(f == 50 && l == 99);
	assert_int_equal(http_range_parse("bytes=-10", 100, &f, &l), 0);
	assert_true(f == 90 && l == 99);
	assert_int_equal(http_range_parse("bytes=-1000", 100, &f, &l), 0);
	assert_true(f == 0 && l == 99);
	assert_int_equal(http_range_parse(" bytes=99-99 ", 100, &f, &l), 0);
	assert_true(f == 99 && l == 99);
	assert_int_equal(http_range_parse("bytes=100-", 100, &f, &l), -ERANGE);
	assert_int_equal(http_range_parse("bytes=-0", 100, &f, &l), -ERANGE);
	assert_int_equal(http_range_parse("bytes=0-0", 0, &f, &l), -ERANGE);
	assert_int_equal(http_range_parse("bytes=0-1,5-6", 100, &f, &l), 1);
	assert_int_equal(http_range_parse("bytes=9-1", 100, &f, &l), 1);
	assert_int_equal(http_range_parse("bytes=a-1", 100, &f, &l), 1);
	assert_int_equal(http_range_parse("bytes=1-2x", 100, &f, &l), 1);
	assert_int_equal(http_range_parse("items=0-1", 100, &f, &l), 1);
	assert_int_equal(http_range_parse("bytes=-", 100, &f, &l), 1);
	assert_int_equal(http_range_parse("bytes=99999999999999999999-", 100, &f, &l), 1);
	assert_int_equal(http_range_parse("bytes=18446744073709551615-", 100, &f, &l), -ERANGE);
}

/* The three scripts of a node's life, and the two for unknown machines. */
static void test_scripts(void **state)
{
	char dir[] = "/tmp/kiln-serve-test.XXXXXX";
	char *spec = scratch_spec(dir);
	struct serve_config *c = NULL;
	struct kerr e = { 0 };
	struct buf b;
	enum ipxe_kind k;
	char *want;

	if (serve_config_load(spec, NULL, &c, &e) < 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c->http_base, "http://10.213.0.1:8080");
	assert_int_equal(c->boot.n_nets, 2);
	assert_int_equal(c->boot.n_hosts, 2);
	assert_string_equal(c->boot.hosts[0].name, "gpu-07");
	buf_init(&b, 0);
	assert_int_equal(serve_ipxe_for(c, "52:54:00:12:34:56", 0, false, &b, &k, &e), 0);
	assert_int_equal(k, IPXE_INSTALL);
	assert_true(str_starts(b.s, "#!ipxe\n"));
	want = "\nkernel http://10.213.0.1:8080/images/debian12/kernel initrd=initrd "
	       "console=ttyS0 ip=dhcp kiln.node=gpu-07 kiln.server=http://10.213.0.1:8080\n"
	       "initrd --name initrd http://10.213.0.1:8080/images/debian12/initrd\nboot\n";
	assert_non_null(strstr(b.s, want));

	buf_reset(&b);
	assert_int_equal(serve_ipxe_for(c, "52:54:00:12:34:56", 0, true, &b, &k, &e), 0);
	assert_int_equal(k, IPXE_LOCAL);
	assert_non_null(strstr(b.s, "\nsanboot --no-describe --drive 0x80 || exit\n"));
	assert_null(strstr(b.s, "kernel"));

	/* a node without an image boots its disk too */
	buf_reset(&b);
	assert_int_equal(serve_ipxe_for(c, "52:54:00:12:34:57", 0, false, &b, &k, &e), 0);
	assert_int_equal(k, IPXE_LOCAL);

	/* unknown: discovery on rack1 (allow_unknown), refused on rack2 */
	buf_reset(&b);
	assert_int_equal(serve_ipxe_for(c, "02:00:00:00:00:01", 0x0ad50065, false, &b, &k,
					&e), 0);
	assert_int_equal(k, IPXE_DISCOVERY);
	assert_non_null(strstr(b.s, "\nkernel http://mirror.example/vmlinuz "
			       "kiln.mac=02:00:00:00:00:01 kiln.server=http://10.213.0.1:8080\n"));
	buf_reset(&b);
	assert_int_equal(serve_ipxe_for(c, "02:00:00:00:00:01", 0x0ad60065, false, &b, &k,
					&e), 0);
	assert_int_equal(k, IPXE_UNKNOWN);
	assert_non_null(strstr(b.s, "\nexit 1\n"));
	assert_null(strstr(b.s, "kernel"));
	buf_release(&b);
	serve_config_free(c);
	rm_rf(dir);
	free(spec);
}

/* States: fetch -> booting, provisioned sticks, discovered for unknown MACs. */
static void test_state(void **state)
{
	char dir[] = "/tmp/kiln-serve-state.XXXXXX";
	char s[32];
	struct kerr e = { 0 };
	struct serve_state *st = NULL;

	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/serve.db", dir);
	assert_int_equal(serve_state_open(path, false, &st, &e), 0);
	assert_int_equal(serve_state_get(st, "52:54:00:12:34:56", s, sizeof(s)), -ENOENT);
	assert_int_equal(serve_state_lease(st, "52:54:00:12:34:56", "gpu-07", "10.0.0.1"), 0);
	assert_int_equal(serve_state_get(st, "52:54:00:12:34:56", s, sizeof(s)), 0);
	assert_string_equal(s, "booting");
	assert_int_equal(serve_state_set(st, "52:54:00:12:34:56", "gpu-07", "provisioned"), 0);
	assert_int_equal(serve_state_fetch(st, "52:54:00:12:34:56", "gpu-07", "10.0.0.1",
					   "script"), 0);
	assert_int_equal(serve_state_lease(st, "52:54:00:12:34:56", "gpu-07", "10.0.0.1"), 0);
	assert_int_equal(serve_state_get(st, "52:54:00:12:34:56", s, sizeof(s)), 0);
	assert_string_equal(s, "provisioned");
	assert_int_equal(serve_state_fetch(st, "02:00:00:00:00:01", NULL, "10.0.0.9",
					   "script"), 0);
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", NULL, "10.0.0.9",
						"{\"cpu\":{\"threads\":4}}"), 0);
	assert_int_equal(serve_state_get(st, "02:00:00:00:00:01", s, sizeof(s)), 0);
	assert_string_equal(s, "discovered");
	/* once a node (name known), a fetch makes it booting */
	assert_int_equal(serve_state_fetch(st, "02:00:00:00:00:01", "disc-1", "10.0.0.9",
					   "script"), 0);
	assert_int_equal(serve_state_get(st, "02:00:00:00:00:01", s, sizeof(s)), 0);
	assert_string_equal(s, "booting");
	/* a node posting facts stays what it was */
	assert_int_equal(serve_state_discovered(st, "52:54:00:12:34:56", "gpu-07", "10.0.0.1",
						"{}"), 0);
	assert_int_equal(serve_state_get(st, "52:54:00:12:34:56", s, sizeof(s)), 0);
	assert_string_equal(s, "provisioned");
	assert_int_equal(serve_state_discovered(st, "52:54:00:12:34:58", "gpu-09", "10.0.0.3",
						"{}"), 0);
	assert_int_equal(serve_state_get(st, "52:54:00:12:34:58", s, sizeof(s)), 0);
	assert_string_equal(s, "booting");
	json_t *rows = serve_state_machines(st);
	assert_int_equal(json_array_size(rows), 3);
	json_t *r1 = json_array_get(rows, 0);
	assert_string_equal(json_string_value(json_object_get(r1, "mac")), "02:00:00:00:00:01");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
		json_object_get(r1, "facts"), "cpu"), "threads")), 4);
	json_decref(rows);
	serve_state_close(st);
	rm_rf(dir);
	free(path);
}

/* Enroll appends a node, picks a free address outside the pool, refuses repeats. */
static void test_enroll(void **state)
{
	char dir[] = "/tmp/kiln-serve-enroll.XXXXXX";
	char *spec = scratch_spec(dir), *addr = NULL;
	struct kerr e = { 0 };
	struct strv roles = STRV_INIT;
	struct cluster *c = NULL;

	strv_push(&roles, "worker");
	struct enroll_req q = { .mac = "02-00-00-00-00-0A", .name = "disc-1", .roles = &roles,
				.image = "debian12", .ip_hint = "10.214.0.150" };
	if (serve_enroll(spec, &q, &addr, &e) < 0)
		fail_msg("%s", e.msg);
	assert_string_equal(addr, "10.214.0.1");   /* rack2 has no router or server */
	free(addr);
	assert_int_equal(spec_load(spec, &c, &e), 0);
	struct node *n = cluster_node(c, "disc-1");
	assert_non_null(n);
	assert_true(n->enrolled);
	assert_string_equal(n->mac, "02:00:00:00:00:0a");
	assert_string_equal(n->boot_image, "debian12");
	assert_true(strv_contains(&n->roles, "worker"));
	cluster_free(c);

	struct enroll_req q2 = { .mac = "02:00:00:00:00:0b", .name = "disc-2" };
	assert_int_equal(serve_enroll(spec, &q2, &addr, &e), 0);
	assert_string_equal(addr, "10.213.0.2");   /* .1 is the server and router */
	free(addr);
	q2.name = "disc-3";
	assert_int_equal(serve_enroll(spec, &q2, &addr, &e), -EEXIST);
	struct enroll_req q3 = { .mac = "02:00:00:00:00:0c", .name = "gpu-07" };
	assert_int_equal(serve_enroll(spec, &q3, &addr, &e), -EEXIST);
	/* an address in the pool makes the spec fail: the file is restored */
	struct enroll_req q4 = { .mac = "02:00:00:00:00:0d", .name = "disc-4",
				 .address = "10.213.0.150" };
	assert_int_equal(serve_enroll(spec, &q4, &addr, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "lies inside the pool"));
	assert_int_equal(spec_load(spec, &c, &e), 0);
	assert_null(cluster_node(c, "disc-4"));
	assert_non_null(cluster_node(c, "disc-2"));
	cluster_free(c);
	struct enroll_req q5 = { .mac = "02:00:00:00:00:0e", .name = "x\ny" };
	assert_int_equal(serve_enroll(spec, &q5, &addr, &e), -EINVAL);
	strv_release(&roles);
	rm_rf(dir);
	free(spec);
}

static void test_token(void **state)
{
	char dir[] = "/tmp/kiln-serve-token.XXXXXX";
	char *tok = NULL;
	struct kerr e = { 0 };
	assert_non_null(mkdtemp(dir));
	char *p = xasprintf("%s/t", dir);
	assert_int_equal(file_write_atomic(p, "  0123456789abcdef0123\n", 23, 0600, -1, -1), 0);
	assert_int_equal(serve_read_token(p, &tok, &e), 0);
	assert_string_equal(tok, "0123456789abcdef0123");
	free(tok);
	assert_int_equal(file_write_atomic(p, "short\n", 6, 0600, -1, -1), 0);
	assert_int_equal(serve_read_token(p, &tok, &e), -EINVAL);
	assert_int_equal(file_write_atomic(p, "0123456789 abcdef0123", 21, 0600, -1, -1), 0);
	assert_int_equal(serve_read_token(p, &tok, &e), -EINVAL);
	rm_rf(dir);
	free(p);
}

/* Status: node states from the state DB and the lease DB; discovered machines. */
static void test_status(void **state)
{
	char dir[] = "/tmp/kiln-serve-status.XXXXXX";
	char *spec = scratch_spec(dir);
	struct cluster *c = NULL;
	struct serve_state *st = NULL;
	struct lease_db *ldb = NULL;
	struct kerr e = { 0 };

	assert_int_equal(spec_load(spec, &c, &e), 0);
	char *p = xasprintf("%s/serve.db", dir);
	assert_int_equal(serve_state_open(p, false, &st, &e), 0);
	free(p);
	p = xasprintf("%s/leases.db", dir);
	assert_int_equal(lease_db_open(p, &ldb, &e), 0);
	free(p);

	json_t *j = serve_status_json(c, st, ldb);
	json_t *n0 = json_array_get(json_object_get(j, "nodes"), 0);
	assert_string_equal(json_string_value(json_object_get(n0, "state")), "new");
	assert_true(json_is_null(json_object_get(n0, "lease")));
	json_decref(j);

	/* a bound lease makes gpu-08 booting; gpu-07 reported provisioned */
	struct lease l = { .ip = 0x0ad50012, .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x57 },
			   .state = LEASE_BOUND, .expires = wall_ms() / 1000 + 600 };
	assert_int_equal(lease_db_put(ldb, &l, wall_ms() / 1000, true), 0);
	assert_int_equal(serve_state_set(st, "52:54:00:12:34:56", "gpu-07", "provisioned"), 0);
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", NULL, "10.213.0.101",
		"{\"cpu\":{\"model\":\"X\",\"threads\":8},\"memory\":{\"total_bytes\":"
		"17179869184},\"gpus\":[{},{}]}"), 0);
	j = serve_status_json(c, st, ldb);
	json_t *nodes = json_object_get(j, "nodes"), *d = json_object_get(j, "discovered");
	assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 0), "state")),
			    "provisioned");
	json_t *n1 = json_array_get(nodes, 1);
	assert_string_equal(json_string_value(json_object_get(n1, "state")), "booting");
	assert_string_equal(json_string_value(json_object_get(json_object_get(n1, "lease"), "ip")),
			    "10.213.0.18");
	assert_int_equal(json_array_size(d), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "hardware")),
			    "X, 8 threads, 16.0 GiB, 2 GPUs");
	json_decref(j);
	lease_db_close(ldb);
	serve_state_close(st);
	cluster_free(c);
	rm_rf(dir);
	free(spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_enroll),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
