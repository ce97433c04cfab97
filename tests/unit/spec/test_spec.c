/* spec: cluster.yaml and Ansible inventories into the model; every error case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stacks/base.h"

#include "spec/spec.h"
#include "spec/spec_int.h"

#define DATA KILN_TEST_DATA "/spec"

/* Load or fail the test with the loader's message. */
static struct cluster *load_ok(const char *path)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	int r = spec_load(path, &c, &e);
	if (r < 0)
		fail_msg("%s: %s", path, e.msg);
	assert_non_null(c);
	return c;
}

static struct cluster *load_str_ok(const char *text)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	int r = spec_load_string("/virtual/cluster.yaml", text, strlen(text), &c, &e);
	if (r < 0)
		fail_msg("%s", e.msg);
	return c;
}

/* Message of a spec that must fail. */
static const char *load_str_err(const char *text)
{
	static struct kerr e;
	struct cluster *c = (struct cluster *)1;
	memset(&e, 0, sizeof(e));
	int r = spec_load_string("t.yaml", text, strlen(text), &c, &e);
	assert_int_equal(r, -EINVAL);
	assert_null(c);
	return e.msg;
}

static const char *jstr(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	assert_true(json_is_string(v));
	return json_string_value(v);
}

static void test_full(void **state)
{
	struct cluster *c = load_ok(DATA "/good/full.yaml");

	assert_string_equal(c->name, "lab");
	assert_string_equal(c->path, DATA "/good/full.yaml");
	assert_string_equal(c->dir, DATA "/good");
	/* ssh */
	assert_string_equal(c->ssh.user, "admin");
	assert_int_equal(c->ssh.port, 2222);
	assert_string_equal(c->ssh.key, DATA "/good/keys/id_ed25519");
	assert_string_equal(c->ssh.known_hosts, DATA "/good/known_hosts");
	assert_int_equal(c->ssh.hostkey, HOSTKEY_ACCEPT_NEW);
	assert_non_null(c->ssh.bastion);
	assert_string_equal(c->ssh.bastion->user, "jump");
	assert_string_equal(c->ssh.bastion->host, "10.213.0.1");
	assert_int_equal(c->ssh.bastion->port, 2200);
	assert_int_equal(c->ssh.connect_timeout_s, 5);
	assert_int_equal(c->ssh.command_timeout_s, 900);
	assert_int_equal(c->ssh.concurrency, 8);
	/* vars: YAML scalars typed */
	assert_string_equal(jstr(c->vars, "ntp"), "pool.ntp.org");
	assert_int_equal(json_integer_value(json_object_get(c->vars, "replicas")), 3);
	assert_true(json_is_real(json_object_get(c->vars, "ratio")));
	assert_true(json_real_value(json_object_get(c->vars, "ratio")) == 0.5);
	assert_true(json_is_false(json_object_get(c->vars, "debug")));
	assert_true(json_is_null(json_object_get(c->vars, "nothing")));
	assert_string_equal(jstr(c->vars, "quoted"), "42");
	const json_t *list = json_object_get(c->vars, "list");
	assert_int_equal(json_array_size(list), 3);
	assert_int_equal(json_integer_value(json_array_get(list, 0)), 1);
	assert_string_equal(json_string_value(json_array_get(list, 1)), "two");
	assert_true(json_is_real(json_array_get(list, 2)));
	assert_int_equal(json_integer_value(json_object_get(c->vars, "octal")), 15);
	assert_int_equal(json_integer_value(json_object_get(c->vars, "hex")), 31);
	const json_t *nested = json_object_get(json_object_get(c->vars, "nested"), "a");
	assert_true(json_is_true(json_array_get(json_object_get(nested, "b"), 0)));
	/* groups */
	assert_int_equal(c->ngroups, 3);
	struct group *gpu = cluster_group(c, "gpu");
	assert_non_null(gpu);
	assert_string_equal(jstr(gpu->vars, "driver"), "550");
	assert_true(json_is_real(json_object_get(gpu->vars, "cuda")));
	assert_int_equal(gpu->children.n, 1);
	assert_string_equal(gpu->children.v[0], "a100");
	assert_int_equal(gpu->mark.line, 25);
	assert_int_equal(gpu->mark.col, 3);
	assert_int_equal(json_object_size(cluster_group(c, "storage")->vars), 0);
	/* nodes, in order */
	assert_int_equal(c->nnodes, 3);
	struct node *n1 = &c->nodes[0], *n2 = &c->nodes[1], *n3 = &c->nodes[2];
	assert_string_equal(n1->name, "node1");
	assert_string_equal(n1->address, "10.213.0.11");
	assert_int_equal(n1->port, 0);
	assert_null(n1->user);
	assert_int_equal(n1->roles.n, 2);
	assert_string_equal(n1->roles.v[1], "worker");
	assert_string_equal(n1->site, "onprem");
	assert_string_equal(jstr(n1->labels, "rack"), "r1");
	assert_string_equal(jstr(n1->labels, "kiln.io/zone"), "z1");
	assert_string_equal(jstr(n1->vars, "x"), "y");
	assert_string_equal(n1->mark.file, DATA "/good/full.yaml");
	assert_int_equal(n1->mark.line, 32);
	assert_int_equal(n1->mark.col, 5);
	assert_string_equal(n2->address, "fd00::12");
	assert_int_equal(n2->port, 22);
	assert_string_equal(n2->user, "root");
	assert_null(n2->site);
	assert_string_equal(n3->name, "cloud-1.example.com");
	assert_string_equal(n3->bastion->host, "bastion.example.com");
	assert_string_equal(n3->bastion->user, "ec2-user");
	assert_int_equal(n3->bastion->port, 0);
	/* effective settings */
	assert_string_equal(node_user(c, n1), "admin");
	assert_string_equal(node_user(c, n2), "root");
	assert_int_equal(node_port(c, n1), 2222);
	assert_int_equal(node_port(c, n2), 22);
	assert_ptr_equal(node_bastion(c, n1), c->ssh.bastion);
	assert_ptr_equal(node_bastion(c, n3), n3->bastion);
	/* group membership and variables */
	assert_true(cluster_node_in_group(c, n1, "a100"));
	assert_true(cluster_node_in_group(c, n1, "gpu"));      /* through children */
	assert_true(cluster_node_in_group(c, n1, "all"));
	assert_false(cluster_node_in_group(c, n1, "storage"));
	assert_false(cluster_node_in_group(c, n3, "gpu"));
	assert_string_equal(json_string_value(cluster_var(c, n1, "driver")), "555");
	assert_string_equal(json_string_value(cluster_var(c, n2, "driver")), "550");
	assert_null(cluster_var(c, n3, "driver"));
	assert_true(json_is_real(cluster_var(c, n1, "cuda")));  /* from parent gpu */
	assert_string_equal(json_string_value(cluster_var(c, n1, "x")), "y");
	assert_string_equal(json_string_value(cluster_var(c, n3, "ntp")), "pool.ntp.org");
	assert_string_equal(json_string_value(cluster_var(c, NULL, "ntp")), "pool.ntp.org");
	/* base stack */
	const struct stack_base *b = stack_base_conf(c);
	assert_non_null(b);
	assert_int_equal(b->modules.n, 1);
	assert_string_equal(b->modules.v[0], "overlay");
	assert_int_equal(b->nsysctls, 3);
	assert_string_equal(b->sysctls[0].key, "net.ipv4.ip_forward");
	assert_string_equal(b->sysctls[0].value, "1");
	assert_string_equal(b->sysctls[1].key, "vm.swappiness");
	assert_string_equal(b->sysctls[1].value, "10");
	assert_string_equal(b->sysctls[2].value, "1024 65000");
	assert_false(b->swap_off);
	assert_true(b->hostname);
	assert_true(b->hosts_file);
	assert_string_equal(b->admin.name, "kiln");
	assert_string_equal(b->admin.shell, "/bin/bash");
	assert_int_equal(b->admin.keys.n, 3);
	assert_string_equal(b->admin.keys.v[0], "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx4 ops@example");
	assert_string_equal(b->admin.keys.v[1], "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFile1 key1@host");
	assert_true(str_starts(b->admin.keys.v[2], "ssh-rsa "));
	assert_int_equal(b->admin.groups.n, 2);
	assert_string_equal(b->admin.groups.v[1], "adm");
	const json_t *deb = json_object_get(b->packages, "debian");
	assert_int_equal(json_array_size(deb), 2);
	assert_string_equal(json_string_value(json_array_get(deb, 1)), "chrony=4.3*");
	assert_int_equal(json_array_size(json_object_get(b->packages, "redhat")), 1);
	assert_int_equal(b->nfiles, 3);
	assert_string_equal(b->files[0].path, "/etc/motd");
	assert_string_equal(b->files[0].content, "hi\n");
	assert_null(b->files[0].template);
	assert_int_equal(b->files[0].mode, 0600);
	assert_string_equal(b->files[0].owner, "root");
	assert_string_equal(b->files[0].group, "adm");
	assert_non_null(b->files[1].template);     /* compiled: tests/unit/stacks */
	assert_null(b->files[1].content);
	assert_int_equal(b->files[1].mode, 0640);
	assert_string_equal(b->files[1].group, "root");
	assert_int_equal(b->files[2].mode, 0755);
	assert_string_equal(b->files[2].owner, "1000");
	assert_int_equal(b->files[2].mark.line, 63);
	assert_int_equal(b->files[2].mark.col, 9);
	cluster_free(c);
}

static void test_defaults(void **state)
{
	struct cluster *c = load_ok(DATA "/good/minimal.yaml");

	assert_string_equal(c->name, "m1");
	assert_string_equal(c->ssh.user, "root");
	assert_int_equal(c->ssh.port, 22);
	assert_null(c->ssh.key);
	assert_string_equal(c->ssh.known_hosts, "/etc/kiln/known_hosts");
	assert_int_equal(c->ssh.hostkey, HOSTKEY_STRICT);
	assert_null(c->ssh.bastion);
	assert_int_equal(c->ssh.connect_timeout_s, 10);
	assert_int_equal(c->ssh.command_timeout_s, 600);
	assert_int_equal(c->ssh.concurrency, 50);
	assert_int_equal(c->nnodes, 0);
	assert_true(json_is_object(c->vars));
	const struct stack_base *b = stack_base_conf(c);
	assert_non_null(b);
	assert_int_equal(b->modules.n, 2);
	assert_string_equal(b->modules.v[0], "overlay");
	assert_string_equal(b->modules.v[1], "br_netfilter");
	assert_int_equal(b->nsysctls, 3);
	assert_string_equal(b->sysctls[0].key, "net.bridge.bridge-nf-call-iptables");
	assert_string_equal(b->sysctls[1].key, "net.bridge.bridge-nf-call-ip6tables");
	assert_string_equal(b->sysctls[2].key, "net.ipv4.ip_forward");
	assert_true(b->swap_off && b->hostname && b->hosts_file);
	assert_null(b->admin.name);
	assert_int_equal(b->nfiles, 0);
	cluster_free(c);

	/* no stacks: base stays off */
	c = load_str_ok("cluster: x\nssh: {known_hosts: kh}\n");
	assert_null(stack_base_conf(c));
	assert_string_equal(c->ssh.known_hosts, "/virtual/kh");
	assert_string_equal(c->dir, "/virtual");
	cluster_free(c);
}

static const struct node *node_ok(const struct cluster *c, const char *name)
{
	const struct node *n = cluster_node(c, name);
	if (!n)
		fail_msg("no node '%s'", name);
	return n;
}

static void test_inventory_ini(void **state)
{
	struct cluster *c = load_ok(DATA "/good/inventory.yaml");
	static const char *const order[] = { "spec-node", "bastion-less", "web1.example.com",
		"web2.example.com", "web3.example.com", "web-x", "gpu01", "gpu02", "gpu-pc" };
	const char *ini = DATA "/good/inv/hosts.ini";

	assert_int_equal(c->nnodes, ARRAY_SIZE(order));
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		assert_string_equal(c->nodes[i].name, order[i]);
	assert_int_equal(c->files.n, 2);
	assert_string_equal(c->files.v[1], ini);

	const struct node *n = node_ok(c, "bastion-less");
	assert_string_equal(n->address, "10.214.0.9");
	assert_string_equal(n->user, "ubuntu");              /* all:vars */
	assert_null(n->bastion);
	assert_int_equal(n->groups.n, 0);
	assert_string_equal(n->mark.file, ini);
	assert_int_equal(n->mark.line, 2);
	assert_int_equal(n->mark.col, 1);
	assert_null(json_object_get(n->vars, "ansible_host"));

	n = node_ok(c, "web2.example.com");
	assert_string_equal(n->address, "web2.example.com");
	assert_string_equal(n->user, "deploy");             /* host beats all:vars */
	assert_non_null(n->bastion);                         /* cluster:vars ProxyJump */
	assert_string_equal(n->bastion->user, "jump");
	assert_string_equal(n->bastion->host, "192.0.2.1");
	assert_int_equal(n->bastion->port, 22);
	assert_true(cluster_node_in_group(c, n, "web"));
	assert_true(cluster_node_in_group(c, n, "cluster"));
	assert_false(cluster_node_in_group(c, n, "gpu"));

	n = node_ok(c, "web-x");
	assert_string_equal(n->address, "203.0.113.5");
	assert_int_equal(n->port, 2201);

	n = node_ok(c, "gpu01");
	assert_string_equal(n->address, "10.214.0.1");
	assert_int_equal(n->port, 2222);
	assert_int_equal(n->groups.n, 2);
	assert_string_equal(n->groups.v[0], "gpu");
	assert_string_equal(n->groups.v[1], "a100");
	assert_int_equal(n->roles.n, 2);
	assert_string_equal(n->roles.v[1], "gpu");
	assert_string_equal(n->site, "onprem");
	assert_true(cluster_node_in_group(c, n, "cluster"));
	assert_string_equal(json_string_value(cluster_var(c, n, "driver")), "550");
	assert_string_equal(json_string_value(cluster_var(c, n, "tier")), "prod");
	assert_int_equal(json_integer_value(cluster_var(c, n, "weight")), 3);
	assert_true(json_is_real(cluster_var(c, n, "ratio")));
	assert_true(json_is_true(cluster_var(c, n, "flag")));
	assert_string_equal(json_string_value(cluster_var(c, n, "ntp")), "pool.ntp.org");
	assert_null(json_object_get(n->vars, "kiln_roles"));

	n = node_ok(c, "gpu-pc");
	assert_string_equal(n->address, "10.214.1.1");
	assert_non_null(n->bastion);                         /* host ProxyCommand wins */
	assert_string_equal(n->bastion->user, "ops");
	assert_string_equal(n->bastion->host, "192.0.2.7");
	assert_int_equal(n->bastion->port, 2022);

	/* spec node joins an inventory group; spec group kept */
	n = node_ok(c, "spec-node");
	assert_true(cluster_node_in_group(c, n, "cluster"));
	assert_null(n->bastion);
	assert_non_null(cluster_group(c, "extra"));
	/* groups imported, consumed vars dropped, all:vars into cluster vars */
	const struct group *g = cluster_group(c, "cluster");
	assert_non_null(g);
	assert_int_equal(g->children.n, 2);
	assert_string_equal(g->mark.file, ini);
	assert_null(json_object_get(g->vars, "ansible_ssh_common_args"));
	assert_string_equal(jstr(g->vars, "tier"), "prod");
	assert_null(cluster_group(c, "all"));
	assert_null(cluster_group(c, "ungrouped"));
	assert_string_equal(jstr(c->vars, "ntp"), "pool.ntp.org");
	assert_null(json_object_get(c->vars, "ansible_user"));

	bool sel[16];
	struct kerr e = { 0 };
	assert_int_equal(cluster_select(c, "gpu", sel, &e), 4);   /* gpu01 gpu02 gpu-pc spec-node */
	assert_true(sel[0] && sel[6] && sel[7] && sel[8]);
	assert_false(sel[1]);
	assert_int_equal(cluster_select(c, "web*.example.com,web-x", sel, &e), 4);
	assert_int_equal(cluster_select(c, "cluster,!a100", sel, &e), 7);
	assert_false(sel[6]);
	assert_int_equal(cluster_select(c, "!gpu", sel, &e), 5);
	assert_int_equal(cluster_select(c, "all", sel, &e), 9);
	assert_int_equal(cluster_select(c, "nosuch", sel, &e), -EINVAL);
	assert_string_equal(e.msg, "--limit: 'nosuch' matches no node or group");
	assert_int_equal(cluster_select(c, " , ", sel, &e), -EINVAL);
	cluster_free(c);
}

static void test_inventory_yaml(void **state)
{
	struct cluster *c = load_ok(DATA "/good/inventory-yaml.yaml");
	static const char *const order[] = { "lone", "gpu1", "gpu2", "gpu-pc", "web1" };

	assert_int_equal(c->nnodes, ARRAY_SIZE(order));
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		assert_string_equal(c->nodes[i].name, order[i]);
	const struct node *n = node_ok(c, "lone");
	assert_string_equal(n->address, "10.216.0.1");
	assert_string_equal(n->user, "ubuntu");
	assert_null(n->bastion);
	n = node_ok(c, "gpu1");
	assert_string_equal(n->address, "10.216.0.11");
	assert_int_equal(n->port, 2222);
	assert_string_equal(n->bastion->host, "192.0.2.1");
	assert_string_equal(n->bastion->user, "jump");
	assert_true(cluster_node_in_group(c, n, "a100"));
	assert_true(cluster_node_in_group(c, n, "cluster"));
	assert_string_equal(json_string_value(cluster_var(c, n, "driver")), "550");
	assert_string_equal(n->mark.file, DATA "/good/inv/hosts.yml");
	assert_int_equal(n->mark.line, 18);
	assert_int_equal(n->mark.col, 13);
	n = node_ok(c, "gpu-pc");
	assert_string_equal(n->bastion->user, "ops");
	assert_string_equal(n->bastion->host, "192.0.2.7");
	assert_int_equal(n->bastion->port, 2022);
	assert_int_equal(n->roles.n, 2);
	assert_string_equal(jstr(n->labels, "rack"), "r9");
	assert_null(json_object_get(n->vars, "kiln_labels"));
	n = node_ok(c, "web1");
	assert_string_equal(n->address, "web1.example.com");
	assert_string_equal(n->user, "deploy");
	assert_false(cluster_node_in_group(c, n, "gpu"));
	const struct group *g = cluster_group(c, "gpu");
	assert_int_equal(g->children.n, 1);
	assert_string_equal(jstr(c->vars, "ntp"), "pool.ntp.org");
	cluster_free(c);
}

/* inventory_load_string on its own, and jump-host spellings */
static void test_inventory_direct(void **state)
{
	struct cluster *c = load_str_ok("cluster: d\nssh: {known_hosts: kh, bastion: b.example}\n");
	struct kerr e = { 0 };
	const char *ini =
		"a ansible_host=10.1.0.1 ansible_ssh_common_args='-J u@[fd00::1]:2'\n"
		"b ansible_host=10.1.0.2 ansible_ssh_common_args='-oProxyJump=ssh://j.example'\n"
		"c ansible_host=10.1.0.3 ansible_ssh_common_args='-o \"ProxyCommand ssh -q j2 nc %h %p\"'\n"
		"d ansible_host=10.1.0.4 ansible_ssh_common_args='-o ProxyJump=none'\n"
		"e ansible_host=10.1.0.5 ansible_ssh_extra_args='-o ProxyCommand=\"/usr/bin/ssh -p2 -W %h:%p x@j3\"'\n"
		"n[a:c]x[1:2:1].example port2=\"x y\" # a comment\n";
	int r = inventory_load_string(c, "mem.ini", ini, strlen(ini), &e);
	if (r < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(c->nnodes, 11);
	const struct node *n = node_ok(c, "a");
	assert_string_equal(n->bastion->user, "u");
	assert_string_equal(n->bastion->host, "fd00::1");
	assert_int_equal(n->bastion->port, 2);
	n = node_ok(c, "b");
	assert_null(n->bastion->user);
	assert_string_equal(n->bastion->host, "j.example");
	assert_int_equal(n->bastion->port, 0);
	n = node_ok(c, "c");
	assert_string_equal(n->bastion->host, "j2");
	n = node_ok(c, "d");
	assert_null(n->bastion);
	assert_string_equal(node_bastion(c, n)->host, "b.example");
	n = node_ok(c, "e");
	assert_string_equal(n->bastion->user, "x");
	assert_string_equal(n->bastion->host, "j3");
	assert_int_equal(n->bastion->port, 2);
	assert_null(json_object_get(n->vars, "ansible_ssh_extra_args"));
	n = node_ok(c, "ncx2.example");
	assert_string_equal(n->address, "ncx2.example");
	assert_string_equal(jstr(n->vars, "port2"), "x y");
	assert_int_equal(json_object_size(n->vars), 1);
	assert_non_null(cluster_node(c, "nax1.example"));
	assert_string_equal(c->nodes[5].name, "nax1.example");
	assert_string_equal(c->nodes[6].name, "nax2.example");
	assert_string_equal(c->nodes[7].name, "nbx1.example");
	assert_string_equal(c->files.v[1], "mem.ini");
	assert_string_equal(c->nodes[0].mark.file, "mem.ini");
	cluster_free(c);
	/* from a file, into a cluster that has none */
	c = load_str_ok("cluster: d\nssh: {known_hosts: kh}\n");
	r = inventory_load(c, DATA "/good/inv/hosts.yml", &e);
	if (r < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(c->nnodes, 5);
	assert_string_equal(c->nodes[0].mark.file, DATA "/good/inv/hosts.yml");
	assert_int_equal(inventory_load(c, "nope.ini", &e), -ENOENT);
	assert_string_equal(e.msg, "/virtual/nope.ini: No such file or directory");
	/* a second import of the same hosts is a duplicate */
	assert_int_equal(inventory_load(c, DATA "/good/inv/hosts.yml", &e), -EINVAL);
	assert_string_equal(e.msg, DATA "/good/inv/hosts.yml:7:5: duplicate node name 'lone' "
			    "(first at line 7)");
	cluster_free(c);
	/* scale: 20000 hosts from two ranges stay fast (hash, sorted checks) */
	c = load_str_ok("cluster: d\nssh: {known_hosts: kh}\nnodes: [{name: x, address: 10.9.9.9}]\n");
	const char *big = "[a]\nn[00000:09999].a.example\n[b]\nm[0:9999].b.example\n"
			  "[ab:children]\na\nb\n";
	int64_t t0 = now_ms();
	r = inventory_load_string(c, "big.ini", big, strlen(big), &e);
	if (r < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(c->nnodes, 20001);
	assert_string_equal(c->nodes[1].name, "n00000.a.example");
	assert_string_equal(c->nodes[20000].name, "m9999.b.example");
	assert_true(cluster_node_in_group(c, &c->nodes[20000], "ab"));
	bool *sel = calloc(c->nnodes, sizeof(*sel));
	assert_int_equal(cluster_select(c, "ab,!m1*", sel, &e), 20000 - 1111);
	free(sel);
	assert_true(now_ms() - t0 < 5000);
	/* the same names again: one error, at the first repeated host */
	const char *again = "z.example\nm5.b.example\nn00007.a.example\n";
	assert_int_equal(inventory_load_string(c, "again.ini", again, strlen(again), &e), -EINVAL);
	assert_string_equal(e.msg, "again.ini:2:1: duplicate node name 'm5.b.example' "
			    "(first at big.ini:4)");
	/* a byte order mark before an INI inventory is skipped */
	const char *bom = "\xef\xbb\xbf[g]\nbom1 ansible_host=10.8.0.1\n";
	r = inventory_load_string(c, "bom.ini", bom, strlen(bom), &e);
	if (r < 0)
		fail_msg("%s", e.msg);
	assert_non_null(cluster_node(c, "bom1"));
	assert_true(cluster_node_in_group(c, cluster_node(c, "bom1"), "g"));
	cluster_free(c);
	/* a FIFO would block: refused */
	c = load_str_ok("cluster: d\nssh: {known_hosts: kh}\n");
	assert_int_equal(inventory_load(c, "/dev/null", &e), -EINVAL);
	assert_string_equal(e.msg, "/dev/null: not a regular file");
	cluster_free(c);
}

struct bad_case {
	const char *file;   /* under bad/ */
	const char *msg;    /* exactly what spec_load must say */
};

static const struct bad_case bad_cases[] = {
	{ "01-unknown-key.yaml",
	  "bad/01-unknown-key.yaml:7:5: unknown key 'adress' in node (expected one of: name, address, port, user, roles, site, groups, labels, vars, bastion, mac, boot_image, bmc)" },
	{ "02-bad-ipv4.yaml",
	  "bad/02-bad-ipv4.yaml:8:14: node 'node2': address '10.0.0.300' is not an IPv4/IPv6 address or DNS name" },
	{ "03-dup-name.yaml",
	  "bad/03-dup-name.yaml:7:11: duplicate node name 'node1' (first at line 5)" },
	{ "04-dup-address.yaml",
	  "bad/04-dup-address.yaml:7:5: node 'node2': duplicate address '10.0.0.1' port 22 (node 'node1' at line 5 has the same)" },
	{ "05-ssh-not-mapping.yaml",
	  "bad/05-ssh-not-mapping.yaml:2:6: ssh: expected a mapping, found a sequence" },
	{ "06-missing-cluster.yaml",
	  "bad/06-missing-cluster.yaml:1:1: missing required key 'cluster'" },
	{ "07-missing-known-hosts.yaml",
	  "bad/07-missing-known-hosts.yaml:3:3: missing required key 'known_hosts' in ssh" },
	{ "08-missing-address.yaml",
	  "bad/08-missing-address.yaml:5:5: missing required key 'address' in node 'node1'" },
	{ "09-port-range.yaml",
	  "bad/09-port-range.yaml:7:11: node 'node1': port: 70000 is out of range 1..65535" },
	{ "10-port-not-int.yaml",
	  "bad/10-port-not-int.yaml:4:9: ssh.port: expected an integer in 1..65535, found 'twenty-two'" },
	{ "11-bad-bastion.yaml",
	  "bad/11-bad-bastion.yaml:4:12: ssh.bastion: 'root@10.0.0.1:99999' is not [user@]host[:port]" },
	{ "12-yaml-syntax.yaml",
	  "bad/12-yaml-syntax.yaml:4:16: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 4)" },
	{ "13-undefined-child.yaml",
	  "bad/13-undefined-child.yaml:6:22: group 'gpu': child group 'h100' is not defined (define it under 'groups' or in the inventory)" },
	{ "14-group-cycle.yaml",
	  "bad/14-group-cycle.yaml:5:3: group 'a': cycle in children: a -> b -> c -> a" },
	{ "15-node-undefined-group.yaml",
	  "bad/15-node-undefined-group.yaml:9:24: node 'node1': group 'cpu' is not defined (define it under 'groups' or in the inventory)" },
	{ "16-inventory-missing.yaml",
	  "bad/16-inventory-missing.yaml:4:12: inventory 'no-such-hosts.ini': cannot read '" DATA "/bad/no-such-hosts.ini': No such file or directory" },
	{ "17-bad-cluster-name.yaml",
	  "bad/17-bad-cluster-name.yaml:1:10: cluster name 'Lab_1' is not valid (a-z, 0-9 and '-', starting with a letter or digit, at most 63)" },
	{ "18-hostkey-policy.yaml",
	  "bad/18-hostkey-policy.yaml:4:22: ssh.host_key_checking: expected 'strict' or 'accept-new', found 'no'" },
	{ "19-unknown-top-key.yaml",
	  "bad/19-unknown-top-key.yaml:4:1: unknown key 'node' in the top level (expected one of: cluster, ssh, vars, groups, nodes, inventory, stacks, boot)" },
	{ "20-duplicate-key.yaml",
	  "bad/20-duplicate-key.yaml:7:3: duplicate key 'ntp' (first at line 5)" },
	{ "21-bad-mode.yaml",
	  "bad/21-bad-mode.yaml:7:46: stacks.base.files[0].mode: expected an octal mode like \"0644\", found '0999'" },
	{ "22-content-and-template.yaml",
	  "bad/22-content-and-template.yaml:7:9: stacks.base.files[0]: expected exactly one of 'content' or 'template'" },
	{ "23-relative-file-path.yaml",
	  "bad/23-relative-file-path.yaml:7:16: stacks.base.files[0].path: 'etc/motd' is not an absolute path without '..'" },
	{ "24-key-file-missing.yaml",
	  "bad/24-key-file-missing.yaml:8:19: stacks.base.admin_user.key_files: cannot read '" DATA "/bad/keys/nope.pub': No such file or directory" },
	{ "25-sysctl-bool.yaml",
	  "bad/25-sysctl-bool.yaml:7:28: stacks.base.sysctls: net.ipv4.ip_forward: expected a number or a string, found a boolean" },
	{ "26-unknown-stack.yaml",
	  "bad/26-unknown-stack.yaml:6:3: unknown key 'nosuch' in stacks (expected one of: base, mesh, nvidia, slurm, ceph)" },
	{ "27-reserved-group.yaml",
	  "bad/27-reserved-group.yaml:5:3: group name 'all' is reserved (use the top-level 'vars' for cluster-wide variables)" },
	{ "28-ini-section.yaml",
	  "bad/inv/28-section.ini:4:6: unknown section type 'child' (expected vars, children or hosts)" },
	{ "29-ini-quote.yaml",
	  "bad/inv/29-quote.ini:2:34: unterminated quote" },
	{ "30-ini-port.yaml",
	  "bad/inv/30-port.ini:5:14: host 'node1': ansible_port: expected an integer in 1..65535" },
	{ "31-ini-proxycommand.yaml",
	  "bad/inv/31-proxycommand.ini:1:53: host 'node1': ansible_ssh_common_args: unsupported ProxyCommand 'nc -x proxy:1080 %h %p' (expected 'ssh -W %h:%p [-p PORT] [user@]host')" },
	{ "32-yinv-unknown-key.yaml",
	  "bad/inv/32-unknown-key.yml:4:3: unknown key 'childs' in group 'all' (expected one of: hosts, children, vars)" },
	{ "33-ini-range.yaml",
	  "bad/inv/33-range.ini:2:4: host pattern 'web[3:1].example.com': bad range (expected [START:END] or [START:END:STEP], with START <= END)" },
	{ "34-ini-host-name.yaml",
	  "bad/inv/34-host-name.ini:2:3: host name 'web_1' is not a valid host name (letters, digits, '-' and '.')" },
	{ "35-alias-bomb.yaml",
	  "bad/35-alias-bomb.yaml:5:3: too many values after expanding aliases" },
	{ "36-deep-nesting.yaml",
	  "bad/36-deep-nesting.yaml:5:71: nesting deeper than 64 levels" },
	{ "37-top-sequence.yaml",
	  "bad/37-top-sequence.yaml:1:1: expected a mapping at the top level, found a sequence" },
	{ "38-empty.yaml",
	  "bad/38-empty.yaml:1:1: expected a mapping at the top level, found nothing" },
	{ "39-unknown-tag.yaml",
	  "bad/39-unknown-tag.yaml:5:11: unsupported tag '!vault'" },
	{ "40-bad-ipv6.yaml",
	  "bad/40-bad-ipv6.yaml:6:14: node 'node1': address 'fd00::12::1' is not an IPv4/IPv6 address or DNS name" },
	{ "41-dup-address-inventory.yaml",
	  "bad/inv/41-dup.ini:2:1: node 'node9': duplicate address '10.0.0.1' port 22 (node 'node1' at bad/41-dup-address-inventory.yaml:5 has the same)" },
	{ "42-bad-label-key.yaml",
	  "bad/42-bad-label-key.yaml:7:14: node 'node1': labels: 'rack id' is not a valid label key" },
	{ "43-concurrency-zero.yaml",
	  "bad/43-concurrency-zero.yaml:4:16: ssh.concurrency: 0 is out of range 1..10000" },
	{ "44-bad-dns-label.yaml",
	  "bad/44-bad-dns-label.yaml:6:14: node 'node1': address '-bad.example.com' is not an IPv4/IPv6 address or DNS name" },
	{ "45-node-not-mapping.yaml",
	  "bad/45-node-not-mapping.yaml:4:9: node: expected a mapping, found a string" },
	{ "46-yinv-hosts-list.yaml",
	  "bad/inv/46-hosts-list.yml:2:10: group 'all': hosts: expected a mapping of host names, found a sequence" },
	{ "47-two-documents.yaml",
	  "bad/47-two-documents.yaml:4:1: expected a single YAML document" },
	{ "48-ini-dup-node.yaml",
	  "bad/inv/48-dup.ini:2:1: duplicate node name 'web1' (first at bad/48-ini-dup-node.yaml:5)" },
	{ "49-bad-role.yaml",
	  "bad/49-bad-role.yaml:7:21: node 'node1': roles: 'GPU node' is not a valid role name (a-z, 0-9, '-', '_')" },
	{ "50-ini-children-extra.yaml",
	  "bad/inv/50-children.ini:2:5: expected one group name per line in [cluster:children]" },
	{ "51-ini-multi-jump.yaml",
	  "bad/inv/51-multi-jump.ini:2:25: host 'web1': ansible_ssh_common_args: more than one jump host is not supported" },
	{ "52-inventory-cycle.yaml",
	  "bad/inv/52-cycle.ini:1:2: group 'a': cycle in children: a -> b -> c -> a" },
	{ "53-inventory-dir.yaml",
	  "bad/53-inventory-dir.yaml:4:12: inventory 'inv': cannot read '" DATA "/bad/inv': Is a directory" },
	{ "54-bad-mac.yaml",
	  "bad/54-bad-mac.yaml:16:10: node 'n1': mac '52:54:00:12:34:5g' is not a MAC address like 52:54:00:12:34:56" },
	{ "55-dup-mac.yaml",
	  "bad/55-dup-mac.yaml:19:10: node 'n2': duplicate mac '52:54:00:12:34:56' (node 'n1' at line 14 has it)" },
	{ "56-pool-outside.yaml",
	  "bad/56-pool-outside.yaml:9:13: boot network 'rack1': pool '10.213.0.100-10.213.1.10' is not inside subnet 10.213.0.0/24 (network and broadcast addresses excluded)" },
	{ "57-reservation-in-pool.yaml",
	  "bad/57-reservation-in-pool.yaml:15:14: node 'n1': reserved address 10.213.0.150 lies inside the pool of boot network 'rack1'" },
	{ "58-unknown-image.yaml",
	  "bad/58-unknown-image.yaml:16:17: node 'n1': boot_image: no image 'debian13' under boot.images" },
	{ "59-missing-kernel.yaml",
	  "bad/59-missing-kernel.yaml:7:19: boot image 'deb': cannot use '" DATA "/bad/images/no-vmlinuz': No such file or directory" },
	{ "60-bmc-inline-password.yaml",
	  "bad/60-bmc-inline-password.yaml:16:65: node 'n1': bmc: an inline password is not allowed (use password_file or password_env)" },
	{ "61-unknown-discovery-image.yaml",
	  "bad/61-unknown-discovery-image.yaml:13:20: boot.discovery_image: no image 'discover' under boot.images" },
	{ "62-bmc-type.yaml",
	  "bad/62-bmc-type.yaml:16:17: node 'n1': bmc: type: expected 'ipmi' or 'redfish', found 'idrac'" },
	{ "63-subnet.yaml",
	  "bad/63-subnet.yaml:8:15: boot network 'rack1': subnet '10.213.0.0/33' is not A.B.C.D/P with P in 8..30" },
	{ "65-loader.yaml",
	  "bad/65-loader.yaml:6:19: boot.loaders.bios: '../undionly.kpxe' is not a file name under tftp_root (relative, printable, no '.' or '..' parts, none of \\ % # ?, at most 127 bytes)" },
	{ "66-loader-key.yaml",
	  "bad/66-loader-key.yaml:6:13: unknown key 'efi' in boot.loaders (expected one of: bios, efi64, arm64)" },
	{ "67-template-open.yaml",
	  "bad/67-template-open.yaml:8:19: stacks.base.files[0].template: template line 1: '{{' without '}}'" },
	{ "64-enrolled-dup-mac.yaml",
	  "" DATA "/bad/enr/enrolled.yaml:4:10: node 'n2': duplicate mac '52:54:00:12:34:56' (node 'n1' at bad/64-enrolled-dup-mac.yaml:15 has it)" },
};

/* Every malformed file fails with -EINVAL and exactly its one-line message. */
static void test_bad_files(void **state)
{
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(DATA), 0);   /* so messages say "bad/..." */
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		char path[256];
		struct cluster *c = (struct cluster *)1;
		struct kerr e = { 0 };
		snprintf(path, sizeof(path), "bad/%s", bad_cases[i].file);
		int r = spec_load(path, &c, &e);
		if (r != -EINVAL || strcmp(e.msg, bad_cases[i].msg)) {
			cluster_free(r == 0 ? c : NULL);
			assert_int_equal(chdir(cwd), 0);
			fail_msg("%s: got %d '%s'\n  expected '%s'", path, r, e.msg,
				 bad_cases[i].msg);
		}
		assert_null(c);
		assert_null(strchr(e.msg, '\n'));
	}
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	assert_int_equal(spec_load("bad/none.yaml", &c, &e), -ENOENT);
	assert_string_equal(e.msg, "bad/none.yaml: No such file or directory");
	assert_null(c);
	assert_int_equal(chdir(cwd), 0);
}

/* Errors found while reading the YAML itself. */
static void test_bad_strings(void **state)
{
	static const char *const cases[][2] = {
		{ "cluster: \"a\\0b\"\n", "t.yaml:1:10: NUL bytes are not allowed in strings" },
		{ "cluster: *x\n", "t.yaml:1:10: unknown alias '*x'" },
		{ "vars: &a {b: *a}\n", "t.yaml:1:14: unknown alias '*a'" },
		{ "? [a]\n: b\n", "t.yaml:1:3: expected a scalar as mapping key, found a sequence" },
		{ "a: &k [1]\n*k : 2\n", "t.yaml:2:1: expected a scalar as mapping key, found a sequence" },
		{ "cluster: \xff\n", "t.yaml:1:10: invalid input: invalid leading UTF-8 octet" },
		{ "cluster: a\n\tssh: x\n", "t.yaml:2:1: YAML syntax error: found a tab character "
		  "that violates indentation (while scanning a plain scalar at line 1)" },
		{ "cluster: x\nssh: {known_hosts: k}\nstacks: {base: {files: [{path: /a, "
		  "content: x, mode: 010000}]}}\n",
		  "t.yaml:3:54: stacks.base.files[0].mode: expected an octal mode like \"0644\", "
		  "found '010000'" },
		{ "cluster: x\nssh: {known_hosts: k}\nstacks: {base: {files: [{path: /a/../b, "
		  "content: x}]}}\n",
		  "t.yaml:3:32: stacks.base.files[0].path: '/a/../b' is not an absolute path "
		  "without '..'" },
		{ "cluster: x\nssh: {known_hosts: k}\nvars: {big: .inf}\n",
		  "t.yaml:3:13: '.inf' cannot be stored (not a finite number)" },
		{ "cluster: x\nssh: {known_hosts: k, bastion: {host: h, port: 0}}\n",
		  "t.yaml:2:48: ssh.bastion: 0 is out of range 1..65535" },
		{ "cluster: x\nssh: {known_hosts: k}\nstacks: {base: {admin_user: {name: k, "
		  "keys: [not-a-key]}}}\n",
		  "t.yaml:3:46: stacks.base.admin_user.keys: 'not-a-key' is not an SSH public key line" },
		{ "cluster: x\nssh: {known_hosts: k}\nstacks: {base: {packages: {gentoo: [a]}}}\n",
		  "t.yaml:3:28: unknown key 'gentoo' in stacks.base.packages (expected one of: "
		  "debian, redhat, suse, arch, alpine)" },
		{ "cluster: x\nssh: {known_hosts: k}\nstacks: {base: {swap_off: yes}}\n",
		  "t.yaml:3:27: stacks.base.swap_off: expected true or false, found 'yes'" },
		{ "cluster: x\nssh: {known_hosts: k}\nstacks: {base: {services: [{name: "
		  "\"a b\"}]}}\n",
		  "t.yaml:3:35: stacks.base.services[0].name: 'a b' is not a systemd unit name" },
		{ "cluster: x\nssh: {known_hosts: k}\nstacks: {base: {services: [{name: a, "
		  "state: up}]}}\n",
		  "t.yaml:3:45: stacks.base.services[0].state: expected running or stopped, "
		  "found 'up'" },
		{ "cluster: x\nssh: {known_hosts: k}\nstacks: {base: {services: [{name: a, "
		  "watch: [/etc/a.conf]}]}}\n",
		  "t.yaml:3:46: stacks.base.services[0].watch: '/etc/a.conf' is not a path of "
		  "stacks.base.files" },
		{ "cluster: x\nssh: {known_hosts: k}\nstacks: {base: {services: [{name: a}, "
		  "{name: a}]}}\n",
		  "t.yaml:3:46: stacks.base.services[1]: duplicate service 'a' (first at line 3)" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *m = load_str_err(cases[i][0]);
		if (strcmp(m, cases[i][1]))
			fail_msg("case %zu: got '%s'\n  expected '%s'", i, m, cases[i][1]);
	}
}

static void test_addresses(void **state)
{
	static const char *const good[] = { "10.0.0.1", "255.255.255.255", "fd00::1", "::1",
		"fe80::1%eth0", "node1", "a.example.com", "xn--bcher-kva.example.", "a-b.c",
		"1.2.3.example", "123abc.example" };
	static const char *const bad[] = { "", "10.0.0.300", "10.0.0", "1.2.3.4.5", "fd00::1::2",
		"fe80::1%", "-a.example", "a-.example", "a..b", "a_b.example", "a b", "[::1]",
		"host:22", ".", "1.2.3.04x.5", "999" };
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!valid_address(good[i]))
			fail_msg("'%s' should be valid", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (valid_address(bad[i]))
			fail_msg("'%s' should be invalid", bad[i]);
	char long_label[80];
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".example");
	assert_false(valid_address(long_label));
	long_label[63] = '\0';
	assert_true(valid_address(long_label));

	struct endpoint ep;
	assert_int_equal(endpoint_parse("u@[fd00::1]:2200", &ep), 0);
	assert_string_equal(ep.user, "u");
	assert_string_equal(ep.host, "fd00::1");
	assert_int_equal(ep.port, 2200);
	endpoint_release(&ep);
	assert_int_equal(endpoint_parse("fd00::1", &ep), 0);
	assert_null(ep.user);
	assert_string_equal(ep.host, "fd00::1");
	assert_int_equal(ep.port, 0);
	endpoint_release(&ep);
	assert_int_equal(endpoint_parse("ssh://j.example:22", &ep), 0);
	assert_string_equal(ep.host, "j.example");
	assert_int_equal(ep.port, 22);
	endpoint_release(&ep);
	static const char *const bad_ep[] = { "", "@h", "u@", "h:0", "h:65536", "h:x",
		"[fd00::1", "[fd00::1]x", "u u@h", "a@b@c" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_ep); i++)
		if (endpoint_parse(bad_ep[i], &ep) == 0)
			fail_msg("endpoint '%s' should be invalid", bad_ep[i]);
}

/* Aliases share nodes; a converged spec loads the same from memory. */
static void test_aliases(void **state)
{
	struct cluster *c = load_str_ok(
		"cluster: a\nssh: {known_hosts: /k}\n"
		"vars: {common: &c {x: 1, y: [a, b]}, again: *c}\n"
		"groups: {g: {vars: *c}}\n");
	assert_true(json_equal(json_object_get(c->vars, "common"),
			       json_object_get(c->vars, "again")));
	assert_int_equal(json_integer_value(json_object_get(cluster_group(c, "g")->vars, "x")), 1);
	assert_string_equal(c->ssh.known_hosts, "/k");
	cluster_free(c);
}

/* boot: and the per-node boot keys, with defaults and the enrolled file. */
/*
 * spec_load_files: a load records every file it read (and every one it
 * found missing); a replay reads only the set.  The replay is fed changed
 * bytes: the model must show them, which it could not if it read the disk.
 */
static void test_load_files(void **state)
{
	struct spec_files f = { 0 };
	struct cluster *c = NULL, *d = NULL;
	struct kerr e = { 0 };

	if (spec_load_files(DATA "/good/boot.yaml", &f, &c, &e) < 0)
		fail_msg("%s", e.msg);
	assert_false(f.replay);
	assert_non_null(f.cwd);
	bool spec_seen = false, enrolled_seen = false;
	for (size_t i = 0; i < f.n; i++) {
		if (!strcmp(f.v[i].path, DATA "/good/boot.yaml") && f.v[i].data)
			spec_seen = true;
		/* recorded as it is on disk: present with its bytes, or missing */
		if (!strcmp(f.v[i].path, c->boot.enrolled) &&
		    !f.v[i].data == !path_exists(c->boot.enrolled))
			enrolled_seen = true;
	}
	assert_true(spec_seen);
	assert_true(enrolled_seen);

	/* replay with the server's address changed in the recorded bytes */
	f.replay = true;
	for (size_t i = 0; i < f.n; i++) {
		char *p = f.v[i].data ? strstr(f.v[i].data, "10.213.0.1") : NULL;
		if (p && !strcmp(f.v[i].path, DATA "/good/boot.yaml"))
			memcpy(p, "10.213.0.9", 10);
	}
	if (spec_load_files(DATA "/good/boot.yaml", &f, &d, &e) < 0)
		fail_msg("%s", e.msg);
	assert_string_equal(d->boot.server, "10.213.0.9");
	assert_int_equal(d->nnodes, c->nnodes);
	cluster_free(d);
	d = NULL;

	/* a file the set does not hold is missing, whatever the disk says */
	free(f.v[0].path);
	f.v[0].path = xstrdup("/nonexistent");
	assert_int_equal(spec_load_files(DATA "/good/boot.yaml", &f, &d, &e), -ENOENT);
	assert_null(d);
	cluster_free(c);
	spec_files_release(&f);
}

static void test_boot(void **state)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	int r = spec_load(DATA "/good/boot.yaml", &c, &e);
	if (r < 0)
		fail_msg("%s", e.msg);
	const struct boot_conf *b = &c->boot;
	assert_true(b->enabled);
	assert_string_equal(b->server, "10.213.0.1");
	assert_int_equal(b->server_ip, 0x0ad50001);
	assert_int_equal(b->http_port, 8080);
	assert_string_equal(b->tftp_root, "/usr/lib/ipxe");
	assert_string_equal(b->state_dir, DATA "/good/.kiln/boot");
	assert_string_equal(b->user, "_kiln");
	assert_string_equal(b->api_token_file, DATA "/good/api-token");
	assert_int_equal(b->listen.n, 1);
	assert_int_equal(b->nnetworks, 1);
	const struct boot_network *n = &b->networks[0];
	assert_string_equal(n->iface, "eth1");
	assert_int_equal(n->subnet, 0x0ad50000);
	assert_int_equal(n->prefix, 24);
	assert_int_equal(n->n_dns, 2);
	assert_int_equal(n->dns[1], 0x0ad50002);
	assert_int_equal(n->pool_start, 0x0ad50064);
	assert_int_equal(n->pool_end, 0x0ad500c7);
	assert_int_equal(n->lease_time, 600);
	assert_true(n->allow_unknown);
	assert_int_equal(b->nimages, 2);
	const struct boot_image *im = cluster_boot_image(c, "debian12");
	assert_non_null(im);
	assert_string_equal(im->kernel, DATA "/good/boot/vmlinuz");
	assert_string_equal(im->cmdline, "console=ttyS0");
	assert_string_equal(cluster_boot_image(c, "discover")->kernel,
			    "http://10.213.0.1:8080/x/vmlinuz");
	assert_null(cluster_boot_image(c, "nope"));
	assert_string_equal(b->discovery_image, "discover");
	assert_string_equal(b->loader_efi64, "site/ipxe-snp.efi");
	assert_null(b->loader_bios);   /* the default */
	assert_int_equal(c->nnodes, 3);
	struct node *g7 = cluster_node(c, "gpu-07");
	assert_string_equal(g7->mac, "52:54:00:ab:34:56");
	assert_ptr_equal(cluster_node_by_mac(c, "52-54-00-AB-34-56"), g7);
	assert_string_equal(g7->boot_image, "debian12");
	assert_int_equal(g7->bmc->type, BMC_IPMI);
	assert_string_equal(g7->bmc->user, "admin");
	assert_string_equal(g7->bmc->password_file, DATA "/good/secrets/gpu-07.bmc");
	struct node *g8 = cluster_node(c, "gpu-08");
	assert_null(g8->mac);
	assert_int_equal(g8->bmc->type, BMC_REDFISH);
	assert_int_equal(g8->bmc->port, 8443);
	assert_string_equal(g8->bmc->password_env, "BMC_PW");
	struct node *d = cluster_node(c, "disc-1");
	assert_non_null(d);
	assert_true(d->enrolled);
	assert_false(g7->enrolled);
	assert_true(strv_contains(&d->roles, "worker"));
	cluster_free(c);

	char m[18];
	assert_false(spec_mac_normalize("52:54:00:12:34", m));
	assert_false(spec_mac_normalize("52:54-00:12:34:56", m));
	assert_true(spec_mac_normalize("AA-BB-CC-DD-EE-FF", m));
	assert_string_equal(m, "aa:bb:cc:dd:ee:ff");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_inventory_ini),
		cmocka_unit_test(test_inventory_yaml),
		cmocka_unit_test(test_inventory_direct),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_bad_strings),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_boot),
		cmocka_unit_test(test_load_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
