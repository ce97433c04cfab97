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
#include <sqlite3.h>

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

/* The stored state of mac, or -1 (never seen). */
static int state_of(struct serve_state *st, const char *mac)
{
	enum sstate v;
	return serve_state_get(st, mac, &v) == 0 ? (int)v : -1;
}

/* States: fetch -> booting, provisioned sticks, discovered for unknown MACs. */
static void test_state(void **state)
{
	char dir[] = "/tmp/kiln-serve-state.XXXXXX";
	struct kerr e = { 0 };
	struct serve_state *st = NULL;

	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/serve.db", dir);
	assert_int_equal(serve_state_open(path, false, &st, &e), 0);
	assert_int_equal(state_of(st, "52:54:00:12:34:56"), -1);
	assert_int_equal(serve_state_lease(st, "52:54:00:12:34:56", "gpu-07", "10.0.0.1"), 0);
	assert_int_equal(state_of(st, "52:54:00:12:34:56"), SSTATE_BOOTING);
	assert_int_equal(serve_state_set(st, "52:54:00:12:34:56", "gpu-07", SSTATE_PROVISIONED),
			 0);
	assert_int_equal(serve_state_fetch(st, "52:54:00:12:34:56", "gpu-07", "10.0.0.1",
					   "script"), 0);
	assert_int_equal(serve_state_lease(st, "52:54:00:12:34:56", "gpu-07", "10.0.0.1"), 0);
	assert_int_equal(state_of(st, "52:54:00:12:34:56"), SSTATE_PROVISIONED);
	assert_int_equal(serve_state_fetch(st, "02:00:00:00:00:01", NULL, "10.0.0.9",
					   "script"), 0);
	assert_int_equal(state_of(st, "02:00:00:00:00:01"), SSTATE_SEEN);
	assert_int_equal(serve_state_unknown_rows(st, SSTATE_SEEN), 1);
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", "10.0.0.9",
						"{\"cpu\":{\"threads\":4}}", NULL), 0);
	assert_int_equal(state_of(st, "02:00:00:00:00:01"), SSTATE_DISCOVERED);
	assert_int_equal(serve_state_unknown_rows(st, SSTATE_SEEN), 0);
	assert_int_equal(serve_state_unknown_rows(st, SSTATE_DISCOVERED), 1);
	/* the same machine again from its own address: facts replaced */
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", "10.0.0.9",
						"{\"cpu\":{\"threads\":4}}", NULL), 0);
	/* from elsewhere: refused, unless that is the address leased to it */
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", "10.0.0.66",
						"{\"cpu\":{\"threads\":1}}", NULL), -EPERM);
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", "10.0.0.66",
						"{\"cpu\":{\"threads\":1}}", "10.0.0.9"), -EPERM);
	/* fetching its script from elsewhere does not move its address */
	assert_int_equal(serve_state_fetch(st, "02:00:00:00:00:01", NULL, "10.0.0.66",
					   "script"), 0);
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", "10.0.0.66",
						"{\"cpu\":{\"threads\":1}}", NULL), -EPERM);
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", "10.0.0.66",
						"{\"cpu\":{\"threads\":4}}", "10.0.0.66"), 0);
	/* once a node (name known), a fetch makes it booting */
	assert_int_equal(serve_state_fetch(st, "02:00:00:00:00:01", "disc-1", "10.0.0.9",
					   "script"), 0);
	assert_int_equal(state_of(st, "02:00:00:00:00:01"), SSTATE_BOOTING);
	assert_int_equal(serve_state_unknown_rows(st, SSTATE_DISCOVERED), 0);
	/* a node's row never takes posted facts, whatever the address */
	assert_int_equal(serve_state_discovered(st, "52:54:00:12:34:56", "10.0.0.1", "{}",
						"10.0.0.1"), -EEXIST);
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", "10.0.0.9",
						"{\"cpu\":{\"threads\":99}}", NULL), -EEXIST);
	assert_int_equal(state_of(st, "52:54:00:12:34:56"), SSTATE_PROVISIONED);
	json_t *rows = serve_state_machines(st);
	assert_int_equal(json_array_size(rows), 2);
	json_t *r1 = json_array_get(rows, 0);
	assert_string_equal(json_string_value(json_object_get(r1, "mac")), "02:00:00:00:00:01");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
		json_object_get(r1, "facts"), "cpu"), "threads")), 4);
	assert_true(json_is_null(json_object_get(json_array_get(rows, 1), "facts")));
	json_decref(rows);
	serve_state_close(st);
	rm_rf(dir);
	free(path);
}

/* One name per state, both ways. */
static void test_state_names(void **state)
{
	for (int i = 0; i < SSTATE_COUNT; i++)
		assert_int_equal(sstate_parse(sstate_name((enum sstate)i)), i);
	assert_string_equal(sstate_name(SSTATE_SEEN), "seen");
	assert_int_equal(sstate_parse("nope"), -1);
	assert_int_equal(sstate_parse(NULL), -1);
}

static int count_rows(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = -1;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/*
 * Caps: unknown `seen` rows evict the least recently seen; `discovered`
 * rows are refused at the cap while all are recent, evicted when old
 * enough; node rows are never evicted; events keep the newest N.  The
 * counts survive a reopen (recounted from the table).
 */
static void test_state_bounds(void **state)
{
	char dir[] = "/tmp/kiln-serve-bounds.XXXXXX";
	struct kerr e = { 0 };
	struct serve_state *st = NULL;
	char mac[18];
	struct serve_state_limits lim = { .seen_max = 8, .discovered_max = 4,
					  .discovered_min_age = 3600, .events_max = 20 };

	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/serve.db", dir);
	assert_int_equal(serve_state_open(path, false, &st, &e), 0);
	assert_int_equal(serve_state_set_limits(st, &lim), 0);
	assert_int_equal(serve_state_set(st, "52:54:00:12:34:56", "gpu-07", SSTATE_PROVISIONED),
			 0);
	for (int i = 0; i < 100; i++) {
		snprintf(mac, sizeof(mac), "02:00:00:00:01:%02x", i);
		assert_int_equal(serve_state_fetch(st, mac, NULL, "10.0.0.9", "script"), 0);
		assert_true(serve_state_unknown_rows(st, SSTATE_SEEN) <= 8);
	}
	assert_int_equal(count_rows(path, "SELECT count(*) FROM machines WHERE state = 'seen'"),
			 8);
	/* the newest eight are kept, the node is untouched */
	assert_int_equal(state_of(st, "02:00:00:00:01:63"), SSTATE_SEEN);
	assert_int_equal(state_of(st, "02:00:00:00:01:5c"), SSTATE_SEEN);
	assert_int_equal(state_of(st, "02:00:00:00:01:5b"), -1);
	assert_int_equal(state_of(st, "52:54:00:12:34:56"), SSTATE_PROVISIONED);
	/* a known row updated again does not count twice */
	assert_int_equal(serve_state_fetch(st, "02:00:00:00:01:63", NULL, "10.0.0.9", "x"), 0);
	assert_int_equal(serve_state_unknown_rows(st, SSTATE_SEEN), 8);

	for (int i = 0; i < 4; i++) {
		snprintf(mac, sizeof(mac), "02:00:00:00:02:%02x", i);
		assert_int_equal(serve_state_discovered(st, mac, "10.0.0.9", "{}", NULL), 0);
	}
	/* full of recent machines: the fifth is refused, none evicted */
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:02:ff", "10.0.0.9", "{}",
						NULL), -ENOSPC);
	assert_int_equal(state_of(st, "02:00:00:00:02:00"), SSTATE_DISCOVERED);
	/* a seen row turning discovered is a new discovered row too */
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:01:63", "10.0.0.9", "{}",
						NULL), -ENOSPC);
	/* a discovered machine posting again is not a new row */
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:02:01", "10.0.0.9", "{}",
						NULL), 0);
	/* with no minimum age the oldest discovered row makes room */
	lim.discovered_min_age = 0;
	assert_int_equal(serve_state_set_limits(st, &lim), 0);
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:02:ff", "10.0.0.9", "{}",
						NULL), 0);
	assert_int_equal(serve_state_unknown_rows(st, SSTATE_DISCOVERED), 4);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM machines WHERE state ="
				    " 'discovered'"), 4);
	assert_int_equal(state_of(st, "02:00:00:00:02:ff"), SSTATE_DISCOVERED);

	/* events: the newest 20 are kept, a few pruned per insert */
	for (int i = 0; i < 200; i++)
		assert_int_equal(serve_state_event(st, NULL, "test", "x"), 0);
	assert_true(count_rows(path, "SELECT count(*) FROM events") <= 20);
	assert_int_equal(count_rows(path, "SELECT max(id) - min(id) + 1 FROM events"),
			 count_rows(path, "SELECT count(*) FROM events"));
	serve_state_close(st);

	/* a reopen with the default limits recounts; smaller limits trim at once */
	assert_int_equal(serve_state_open(path, false, &st, &e), 0);
	assert_int_equal(serve_state_unknown_rows(st, SSTATE_SEEN), 8);
	assert_int_equal(serve_state_unknown_rows(st, SSTATE_DISCOVERED), 4);
	lim.seen_max = 2;
	lim.discovered_max = 1;
	lim.events_max = 5;
	assert_int_equal(serve_state_set_limits(st, &lim), 0);
	assert_int_equal(serve_state_unknown_rows(st, SSTATE_SEEN), 2);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM machines"), 2 + 1 + 1);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM events"), 5);
	serve_state_close(st);
	rm_rf(dir);
	free(path);
}

/*
 * The rate limiter: a burst, then per_s a second; sources are separate;
 * the table never holds more than its slots, and the least recently seen
 * source is the one that loses its bucket.
 */
static void test_rate_limit(void **state)
{
	struct rate_limit *rl = rate_limit_new(4, 2, 5);
	int64_t t = 1000000;
	char src[32];

	for (int i = 0; i < 5; i++)
		assert_true(rate_limit_allow(rl, "10.0.0.1", t));
	assert_false(rate_limit_allow(rl, "10.0.0.1", t));
	assert_true(rate_limit_allow(rl, "10.0.0.2", t));
	/* 2 a second: one token after 500 ms, not before */
	assert_false(rate_limit_allow(rl, "10.0.0.1", t + 499));
	assert_true(rate_limit_allow(rl, "10.0.0.1", t + 500));
	assert_false(rate_limit_allow(rl, "10.0.0.1", t + 500));
	/* a long pause refills to the burst, no more */
	int ok = 0;
	for (int i = 0; i < 20; i++)
		ok += rate_limit_allow(rl, "10.0.0.1", t + 3600 * 1000);
	assert_int_equal(ok, 5);
	/* a clock that goes back gives nothing */
	assert_false(rate_limit_allow(rl, "10.0.0.1", t));

	/* many sources: the table stays at 4 */
	for (int i = 0; i < 1000; i++) {
		snprintf(src, sizeof(src), "10.1.%d.%d", i / 256, i % 256);
		assert_true(rate_limit_allow(rl, src, t + 5000));
		assert_true(rate_limit_sources(rl) <= 4);
	}
	/* LRU: keep 10.0.0.1 recent while three others churn; it keeps its
	 * (empty) bucket, so it is still limited */
	for (int i = 0; i < 5; i++)
		rate_limit_allow(rl, "10.0.0.9", t + 6000);
	assert_false(rate_limit_allow(rl, "10.0.0.9", t + 6000));
	for (int i = 0; i < 30; i++) {
		snprintf(src, sizeof(src), "10.2.0.%d", i % 3);
		rate_limit_allow(rl, src, t + 6000);
		assert_false(rate_limit_allow(rl, "10.0.0.9", t + 6000));
	}
	/* evicted once four other sources came after it: a fresh bucket */
	for (int i = 0; i < 4; i++) {
		snprintf(src, sizeof(src), "10.3.0.%d", i);
		rate_limit_allow(rl, src, t + 6000);
	}
	assert_true(rate_limit_allow(rl, "10.0.0.9", t + 6000));
	rate_limit_free(rl);
	rate_limit_free(NULL);
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
	assert_int_equal(serve_state_set(st, "52:54:00:12:34:56", "gpu-07", SSTATE_PROVISIONED),
			 0);
	assert_int_equal(serve_state_discovered(st, "02:00:00:00:00:01", "10.213.0.101",
		"{\"cpu\":{\"model\":\"X\",\"threads\":8},\"memory\":{\"total_bytes\":"
		"17179869184},\"gpus\":[{},{}]}", NULL), 0);
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
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_state_bounds),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_enroll),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
