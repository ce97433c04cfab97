/* lab --sites: parsing, the address plan, claimed ranges, state round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lab/lab_int.h"

static void expect_refused(const char *spec, const char *why)
{
	struct kerr e = { 0 };
	unsigned n, first;
	assert_int_equal(sites_nodes(spec, &n, &first, &e), -EINVAL);
	if (!strstr(e.msg, why))
		fail_msg("--sites '%s': '%s' does not say '%s'", spec, e.msg, why);
}

static void test_parse(void **s)
{
	unsigned n, first;
	assert_int_equal(sites_nodes("onprem:4,cloud:2", &n, &first, NULL), 0);
	assert_int_equal(n, 6);
	assert_int_equal(first, 4);
	assert_int_equal(sites_nodes("a:1,b_2:1,c-3:250", &n, &first, NULL), -EINVAL);  /* 252 */
	expect_refused("onprem:4", "at least two sites");
	expect_refused("onprem:4,", "trailing");
	expect_refused("onprem:4,cloud", "expected NAME:N");
	expect_refused("OnPrem:1,cloud:1", "expected NAME:N");
	expect_refused("a:0,b:1", "needs 1 to");
	expect_refused("a:x,b:1", "needs 1 to");
	expect_refused("a:1,a:1", "named twice");
	expect_refused("a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1,j:1,k:1,l:1,m:1,n:1,o:1,p:1,q:1",
		       "at most 16 sites");
	(void)s;
}

/* A lab as lab_plan() leaves it before sites_plan(): bastion, node1..n. */
static struct lab *lab_new(const char *subnet, int prefix, unsigned n, bool bastion)
{
	struct lab *l = xcalloc(1, sizeof(*l));
	l->name = xstrdup("t");
	l->subnet = xstrdup(subnet);
	l->prefix = prefix;
	l->bastion = bastion;
	l->hosts = xcalloc(n + 1, sizeof(*l->hosts));
	if (bastion) {
		l->hosts[l->nhosts].name = xstrdup("bastion");
		l->hosts[l->nhosts++].bastion = true;
	}
	for (unsigned i = 0; i < n; i++) {
		struct lab_host *h = &l->hosts[l->nhosts++];
		h->name = xasprintf("node%u", i + 1);
		h->addr = xasprintf("10.213.0.%u", 11 + i);
	}
	return l;
}

static uint32_t ip(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return ntohl(a.s_addr);
}

static void test_plan(void **s)
{
	struct lab *l = lab_new("10.213.0.0/24", 24, 6, true);
	assert_int_equal(sites_plan("onprem:3,c1:2,c2:1", l, ip("10.213.0.0"), NULL), 0);
	assert_int_equal(l->nsites, 3);
	assert_string_equal(l->sites[0].subnet, "10.213.0.0/24");
	assert_false(l->sites[0].cloud);
	assert_string_equal(l->sites[1].subnet, "10.213.1.0/24");
	assert_string_equal(l->sites[2].subnet, "10.213.2.0/24");
	assert_true(l->sites[2].cloud);
	assert_string_equal(l->pub_addr, "10.213.3.1");
	assert_string_equal(l->pub_link, "ks-t");
	assert_string_equal(l->hosts[0].wan, "10.213.3.2");
	assert_string_equal(l->hosts[0].site, "onprem");
	static const char *const want[][2] = {
		{ "10.213.0.11", "onprem" }, { "10.213.0.12", "onprem" }, { "10.213.0.13", "onprem" },
		{ "10.213.1.11", "c1" }, { "10.213.1.12", "c1" }, { "10.213.2.11", "c2" },
	};
	for (size_t i = 0; i < 6; i++) {
		assert_string_equal(l->hosts[i + 1].addr, want[i][0]);
		assert_string_equal(l->hosts[i + 1].site, want[i][1]);
		assert_int_equal(l->hosts[i + 1].cloud, i >= 3);
	}
	uint32_t nets[LAB_SITES_RANGES];
	int prefixes[LAB_SITES_RANGES];
	assert_int_equal(sites_ranges(l, nets, prefixes, LAB_SITES_RANGES), 4);
	assert_int_equal(nets[3], ip("10.213.3.0"));
	assert_int_equal(prefixes[3], 24);

	/* The state file keeps it all. */
	json_t *j = json_pack("{s:[{}, {}, {}, {}, {}, {}, {}], s:[]}", "hosts", "made_links");
	sites_to_json(l, j);
	struct lab *back = lab_new("10.213.0.0/24", 24, 6, true);
	assert_int_equal(sites_from_json(back, j, NULL), 0);
	assert_int_equal(back->nsites, 3);
	assert_string_equal(back->sites[1].name, "c1");
	assert_string_equal(back->pub_link, "ks-t");
	assert_string_equal(back->hosts[0].wan, "10.213.3.2");
	assert_string_equal(back->hosts[6].site, "c2");
	assert_true(back->hosts[6].cloud);
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "made_links"), 0)), "ks-t");
	json_decref(j);
	lab_free(back);
	lab_free(l);

	/* Without sites a lab claims its subnet alone. */
	l = lab_new("10.213.0.0/24", 24, 1, false);
	assert_int_equal(sites_ranges(l, nets, prefixes, LAB_SITES_RANGES), 1);
	lab_free(l);
	(void)s;
}

static void test_plan_refusals(void **s)
{
	struct kerr e = { 0 };
	struct lab *l = lab_new("10.213.0.0/24", 24, 2, false);
	assert_int_equal(sites_plan("a:1,b:1", l, ip("10.213.0.0"), &e), -EINVAL);
	assert_non_null(strstr(e.msg, "needs --bastion"));
	lab_free(l);
	l = lab_new("255.255.254.0/24", 24, 2, true);
	assert_int_equal(sites_plan("a:1,b:1", l, ip("255.255.254.0"), &e), -EINVAL);
	assert_non_null(strstr(e.msg, "run past"));
	lab_free(l);
	l = lab_new("10.213.0.0/26", 26, 60, true);
	assert_int_equal(sites_plan("a:1,b:59", l, ip("10.213.0.0"), &e), -EINVAL);
	assert_non_null(strstr(e.msg, "site 'b' has 59 nodes"));
	lab_free(l);
	(void)s;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_plan_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
