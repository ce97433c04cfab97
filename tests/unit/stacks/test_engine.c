/*
 * The stack engine around the stacks themselves: the exports hash, the
 * registry and phase order, the per-node render (phase stamps, needs), and
 * exports in the state store (a secret's value never reaches the disk).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plan/plan.h"
#include "stacks/base.h"
#include "stacks/stacks.h"
#include "state/state.h"

#define DIR KILN_TEST_DATA "/stacks"

/* ---- exports hash -------------------------------------------------------- */

static void test_exports_basic(void **s)
{
	struct exports x;
	const struct export_entry *en;

	exports_init(&x);
	/* empty: nothing found, nothing allocated */
	assert_null(exports_get(&x, "n1", "mesh", "public_key"));
	assert_null(exports_find(&x, "n1", "mesh", "public_key"));

	assert_true(exports_set(&x, "n1", "mesh", "public_key", "K1", false));
	assert_string_equal(exports_get(&x, "n1", "mesh", "public_key"), "K1");
	/* the same value again: not a change */
	assert_false(exports_set(&x, "n1", "mesh", "public_key", "K1", false));
	/* overwrite: a change, one entry */
	assert_true(exports_set(&x, "n1", "mesh", "public_key", "K2", false));
	assert_string_equal(exports_get(&x, "n1", "mesh", "public_key"), "K2");
	assert_int_equal(x.n, 1);
	/* the value is a copy */
	char buf[8] = "K3";
	assert_true(exports_set(&x, "n1", "mesh", "address", buf, false));
	strcpy(buf, "XX");
	assert_string_equal(exports_get(&x, "n1", "mesh", "address"), "K3");

	/* each part of the key counts, and parts do not run into each other */
	assert_true(exports_set(&x, "a", "bc", "d", "v1", false));
	assert_true(exports_set(&x, "ab", "c", "d", "v2", false));
	assert_true(exports_set(&x, "a", "b", "cd", "v3", false));
	assert_string_equal(exports_get(&x, "a", "bc", "d"), "v1");
	assert_string_equal(exports_get(&x, "ab", "c", "d"), "v2");
	assert_string_equal(exports_get(&x, "a", "b", "cd"), "v3");
	assert_null(exports_get(&x, "n2", "mesh", "public_key"));
	assert_null(exports_get(&x, "n1", "base", "public_key"));
	assert_null(exports_get(&x, "n1", "mesh", "public"));

	/* a secret: known to exist, its value only when this run saw it */
	assert_true(exports_set(&x, "n1", "mesh", "private_key", NULL, true));
	assert_null(exports_get(&x, "n1", "mesh", "private_key"));
	en = exports_find(&x, "n1", "mesh", "private_key");
	assert_non_null(en);
	assert_true(en->secret);
	assert_null(en->value);
	assert_false(exports_set(&x, "n1", "mesh", "private_key", NULL, true));
	assert_true(exports_set(&x, "n1", "mesh", "private_key", "PRIV", true));
	assert_string_equal(exports_get(&x, "n1", "mesh", "private_key"), "PRIV");
	/* the secret flag alone changing is a change */
	assert_true(exports_set(&x, "n1", "mesh", "public_key", "K2", true));
	assert_true(exports_find(&x, "n1", "mesh", "public_key")->secret);
	assert_true(exports_set(&x, "n1", "mesh", "public_key", NULL, true));
	assert_null(exports_get(&x, "n1", "mesh", "public_key"));

	/* insertion order is kept in v */
	assert_string_equal(x.v[0].name, "public_key");
	assert_string_equal(x.v[1].name, "address");
	assert_string_equal(x.v[2].node, "a");
	exports_release(&x);
	assert_int_equal(x.n, 0);
	assert_null(x.v);
	exports_release(&x);   /* twice is harmless */
}

static void test_exports_drop_node(void **s)
{
	struct exports x;

	exports_init(&x);
	exports_drop_node(&x, "n1");   /* empty: nothing to do */
	for (int i = 0; i < 5; i++) {
		char node[16], val[16];
		snprintf(node, sizeof(node), "n%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		exports_set(&x, node, "mesh", "public_key", val, false);
		exports_set(&x, node, "mesh", "address", val, false);
		exports_set(&x, node, "mesh", "private_key", NULL, true);
	}
	exports_drop_node(&x, "n2");
	exports_drop_node(&x, "n2-not-there");
	exports_drop_node(&x, "n"); /* a prefix of names is not a name */
	assert_int_equal(x.n, 12);
	assert_null(exports_find(&x, "n2", "mesh", "public_key"));
	assert_null(exports_find(&x, "n2", "mesh", "address"));
	assert_null(exports_find(&x, "n2", "mesh", "private_key"));
	for (int i = 0; i < 5; i++) {
		char node[16], val[16];
		if (i == 2)
			continue;
		snprintf(node, sizeof(node), "n%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		assert_string_equal(exports_get(&x, node, "mesh", "public_key"), val);
		assert_string_equal(exports_get(&x, node, "mesh", "address"), val);
		assert_non_null(exports_find(&x, node, "mesh", "private_key"));
	}
	/* order of the rest kept; a dropped key can come back */
	assert_string_equal(x.v[5].node, "n1");
	assert_string_equal(x.v[6].node, "n3");
	assert_true(exports_set(&x, "n2", "mesh", "address", "back", false));
	assert_string_equal(exports_get(&x, "n2", "mesh", "address"), "back");
	assert_int_equal(x.n, 13);
	exports_release(&x);
}

#define MANY 100000

static void test_exports_many(void **s)
{
	struct exports x;
	char node[32], val[32];

	exports_init(&x);
	for (int i = 0; i < MANY; i++) {
		snprintf(node, sizeof(node), "node%06d", i / 4);
		snprintf(val, sizeof(val), "value-%d", i);
		static const char *const names[] = { "public_key", "address", "endpoint", "private_key" };
		bool secret = i % 4 == 3;
		assert_true(exports_set(&x, node, i % 8 < 4 ? "mesh" : "base", names[i % 4],
					secret ? NULL : val, secret));
	}
	assert_int_equal(x.n, MANY);
	/* the table stays at most half full */
	assert_true(x.nslots >= 2 * x.n);
	for (int i = 0; i < MANY; i++) {
		static const char *const names[] = { "public_key", "address", "endpoint", "private_key" };
		snprintf(node, sizeof(node), "node%06d", i / 4);
		snprintf(val, sizeof(val), "value-%d", i);
		const struct export_entry *en =
			exports_find(&x, node, i % 8 < 4 ? "mesh" : "base", names[i % 4]);
		assert_non_null(en);
		assert_ptr_equal(en, &x.v[i]);
		if (i % 4 == 3) {
			assert_true(en->secret);
			assert_null(en->value);
		} else {
			assert_string_equal(en->value, val);
		}
	}
	/* overwrite every other public key: exactly those are changes */
	int changed = 0;
	for (int n = 0; n < MANY / 4; n++) {
		snprintf(node, sizeof(node), "node%06d", n);
		if (n % 2)
			snprintf(val, sizeof(val), "new-%d", n);
		else
			snprintf(val, sizeof(val), "value-%d", 4 * n);
		changed += exports_set(&x, node, n % 2 ? "base" : "mesh", "public_key", val, false);
	}
	assert_int_equal(changed, MANY / 8);
	assert_int_equal(x.n, MANY);
	/* drop 25 nodes (each drop is a pass over the table and a rehash) */
	for (int n = 0; n < MANY / 4; n += 1000) {
		snprintf(node, sizeof(node), "node%06d", n);
		exports_drop_node(&x, node);
	}
	assert_int_equal(x.n, MANY - 4 * (MANY / 4000));
	assert_null(exports_find(&x, "node001000", "mesh", "address"));
	assert_null(exports_find(&x, "node024000", "mesh", "private_key"));
	assert_string_equal(exports_get(&x, "node000009", "base", "address"), "value-37");
	assert_string_equal(exports_get(&x, "node000011", "base", "public_key"), "new-11");
	assert_string_equal(exports_get(&x, "node000012", "mesh", "address"), "value-49");
	exports_release(&x);
}

/* ---- registry and phases -------------------------------------------------- */

static void test_registry(void **s)
{
	static int confs[SPEC_STACKS_MAX];
	struct cluster c;
	struct phase_ref ph[STACKS_MAX_PHASES];
	char name[128];
	size_t total = 0, n;

	assert_true(stack_types_n >= 1);
	assert_ptr_equal(stack_types[0], &stack_base);   /* base's phases come first */
	assert_ptr_equal(stack_type_find("base"), &stack_base);
	assert_null(stack_type_find("nope"));
	assert_null(stack_type_find(""));
	assert_null(stack_type_find("Base"));
	for (size_t i = 0; i < stack_types_n; i++) {
		assert_ptr_equal(stack_type_find(stack_types[i]->name), stack_types[i]);
		assert_non_null(stack_types[i]->parse);
		assert_true(stack_types[i]->nphases >= 1);
		total += stack_types[i]->nphases;
	}
	assert_true(total <= STACKS_MAX_PHASES);

	/* every stack enabled: every phase, registry order, each stack's own order */
	memset(&c, 0, sizeof(c));
	for (size_t i = 0; i < stack_types_n; i++)
		c.stacks[i] = &confs[i];   /* any non-NULL conf */
	n = stacks_phases(&c, ph, ARRAY_SIZE(ph));
	assert_int_equal(n, total);
	size_t k = 0;
	for (size_t i = 0; i < stack_types_n; i++)
		for (size_t j = 0; j < stack_types[i]->nphases; j++, k++) {
			assert_ptr_equal(ph[k].stack, stack_types[i]);
			assert_ptr_equal(ph[k].phase, &stack_types[i]->phases[j]);
			assert_ptr_equal(ph[k].conf, c.stacks[i]);
			assert_ptr_equal(stack_conf(&c, stack_types[i]), c.stacks[i]);
		}
	assert_string_equal(phase_ref_name(&ph[0], name, sizeof(name)), "base.prepare");
	/* the bound is kept */
	assert_int_equal(stacks_phases(&c, ph, 0), 0);

	/* base disabled: none of its phases, the others unchanged */
	c.stacks[0] = NULL;
	assert_null(stack_conf(&c, &stack_base));
	n = stacks_phases(&c, ph, ARRAY_SIZE(ph));
	assert_int_equal(n, total - stack_base.nphases);
	for (size_t i = 0; i < n; i++)
		assert_ptr_not_equal(ph[i].stack, &stack_base);
	/* nothing enabled: nothing to run */
	memset(c.stacks, 0, sizeof(c.stacks));
	assert_int_equal(stacks_phases(&c, ph, ARRAY_SIZE(ph)), 0);

	/* a type outside the registry has no conf */
	struct stack_type other = { .name = "other" };
	assert_null(stack_conf(&c, &other));
	static const char *const secrets[] = { "private_key", NULL };
	other.secret_exports = secrets;
	assert_true(stack_export_secret(&other, "private_key"));
	assert_false(stack_export_secret(&other, "private"));
	assert_false(stack_export_secret(&stack_base, "private_key"));
}

/* ---- rendering ------------------------------------------------------------------ */

static const char spec_text[] =
	"cluster: engine\n"
	"ssh: {known_hosts: known_hosts}\n"
	"nodes:\n"
	"  - {name: n1, address: 10.0.0.1}\n"
	"  - {name: n2, address: 10.0.0.2}\n"
	"stacks:\n"
	"  base:\n"
	"    packages: {debian: [curl]}\n"
	"    files:\n"
	"      - {path: /etc/a, content: a}\n"
	"      - {path: /etc/b, template: \"{{ node.name }}\"}\n"
	"    services: [{name: chrony}]\n";

static void test_render_node(void **s)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	struct render_out ro;
	json_t *debian = json_pack("{s:{s:s}}", "os", "family", "debian");
	const json_t *facts[2] = { debian, NULL };
	size_t i;
	json_t *r;

	if (spec_load_string(DIR "/engine.yaml", spec_text, strlen(spec_text), &c, &e) < 0)
		fail_msg("spec: %s", e.msg);
	struct render_ctx rc = { .c = c, .facts = facts };

	/* n1 with facts: packages too; every resource stamped with its phase */
	render_out_init(&ro);
	assert_int_equal(stacks_render_node(&rc, &c->nodes[0], &ro, &e), 0);
	/* modules, sysctls, swap, hostname, hosts, 2 files, packages, service */
	assert_int_equal(json_array_size(ro.resources), 9);
	json_array_foreach(ro.resources, i, r)
		assert_string_equal(json_string_value(json_object_get(r, "phase")), "base.prepare");
	assert_int_equal(ro.needs.n, 0);
	render_out_release(&ro);
	assert_null(ro.resources);

	/* n2 without facts: no packages; appends after what is there */
	render_out_init(&ro);
	json_array_append_new(ro.resources, json_pack("{s:s}", "type", "marker"));
	assert_int_equal(stacks_render_node(&rc, &c->nodes[1], &ro, &e), 0);
	assert_int_equal(json_array_size(ro.resources), 1 + 8);
	/* the stamp is only on what the phases rendered */
	assert_null(json_object_get(json_array_get(ro.resources, 0), "phase"));
	for (i = 1; i < json_array_size(ro.resources); i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(ro.resources, i),
								      "phase")),
				    "base.prepare");
	render_out_release(&ro);

	/* without a facts array at all */
	rc.facts = NULL;
	assert_false(render_has_facts(&rc, &c->nodes[0]));
	rc.facts = facts;
	assert_true(render_has_facts(&rc, &c->nodes[0]));
	assert_false(render_has_facts(&rc, &c->nodes[1]));
	json_decref(debian);
	cluster_free(c);
}

static void test_render_export(void **s)
{
	struct exports x;
	struct render_out ro;
	struct render_ctx rc = { 0 };

	exports_init(&x);
	exports_set(&x, "n1", "mesh", "public_key", "K1", false);
	exports_set(&x, "n3", "mesh", "private_key", NULL, true);
	rc.exports = &x;
	render_out_init(&ro);
	assert_string_equal(render_export(&rc, &ro, "n1", "mesh", "public_key"), "K1");
	assert_int_equal(ro.needs.n, 0);
	/* missing: NULL, noted once however often asked */
	assert_null(render_export(&rc, &ro, "n2", "mesh", "public_key"));
	assert_null(render_export(&rc, &ro, "n2", "mesh", "public_key"));
	assert_int_equal(ro.needs.n, 1);
	assert_string_equal(ro.needs.v[0], "n2 mesh.public_key");
	assert_null(render_export(&rc, &ro, "n2", "mesh", "address"));
	assert_null(render_export(&rc, &ro, "n2", "mesh", "public_key"));
	/* a secret whose value this run has not seen is missing too */
	assert_null(render_export(&rc, &ro, "n3", "mesh", "private_key"));
	assert_int_equal(ro.needs.n, 3);
	assert_string_equal(ro.needs.v[1], "n2 mesh.address");
	assert_string_equal(ro.needs.v[2], "n3 mesh.private_key");
	render_out_release(&ro);

	/* no exports at all: every one is waited for */
	rc.exports = NULL;
	render_out_init(&ro);
	assert_null(render_export(&rc, &ro, "n1", "mesh", "public_key"));
	assert_int_equal(ro.needs.n, 1);
	assert_string_equal(ro.needs.v[0], "n1 mesh.public_key");
	render_out_release(&ro);
	exports_release(&x);
}

/* ---- exports in the state store ----------------------------------------------- */

static bool file_holds(const char *path, const char *needle)
{
	struct buf b;
	bool found;

	buf_init(&b, 0);
	if (file_read(path, &b, 0) < 0) {
		buf_release(&b);
		return false;   /* absent (no WAL file): nothing in it */
	}
	found = memmem(b.s, b.len, needle, strlen(needle)) != NULL;
	buf_release(&b);
	return found;
}

static const json_t *find_row(const json_t *list, const char *node, const char *name)
{
	size_t i;
	json_t *x;

	json_array_foreach(list, i, x)
		if (!strcmp(json_string_value(json_object_get(x, "node")), node) &&
		    !strcmp(json_string_value(json_object_get(x, "name")), name))
			return x;
	return NULL;
}

static void test_state_exports(void **s)
{
	char dir[] = "/tmp/kiln-engine.XXXXXX";
	static const char secret[] = "S3CRET-private-key-3b1f9e";
	struct state *st = NULL;
	struct kerr e = { 0 };
	json_t *list = NULL;
	const json_t *row;

	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/state.db", dir), *wal = xasprintf("%s-wal", path);
	assert_int_equal(state_open(path, &st, &e), 0);
	assert_int_equal(state_exports_list(st, "c", &list, &e), 0);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	assert_int_equal(state_export_put(st, "c", "n2", "mesh", "public_key", "PUB2", false, &e), 0);
	assert_int_equal(state_export_put(st, "c", "n1", "mesh", "public_key", "PUB1-old", false, &e), 0);
	assert_int_equal(state_export_put(st, "c", "n1", "mesh", "public_key", "PUB1", false, &e), 0);
	assert_int_equal(state_export_put(st, "c", "n1", "mesh", "private_key", secret, true, &e), 0);
	assert_int_equal(state_export_put(st, "c", "n1", "base", "address", "10.0.0.1", false, &e), 0);
	assert_int_equal(state_export_put(st, "other", "n1", "mesh", "public_key", "OTHER", false, &e), 0);

	/* sorted by node, stack, name; one row per key; the cluster's own */
	assert_int_equal(state_exports_list(st, "c", &list, &e), 0);
	assert_int_equal(json_array_size(list), 4);
	static const char *const order[][3] = { { "n1", "base", "address" },
		{ "n1", "mesh", "private_key" }, { "n1", "mesh", "public_key" },
		{ "n2", "mesh", "public_key" } };
	for (size_t i = 0; i < 4; i++) {
		const json_t *x = json_array_get(list, i);
		assert_string_equal(json_string_value(json_object_get(x, "node")), order[i][0]);
		assert_string_equal(json_string_value(json_object_get(x, "stack")), order[i][1]);
		assert_string_equal(json_string_value(json_object_get(x, "name")), order[i][2]);
		assert_true(json_integer_value(json_object_get(x, "updated_ms")) > 0);
	}
	row = find_row(list, "n1", "public_key");
	assert_string_equal(json_string_value(json_object_get(row, "value")), "PUB1");
	assert_true(json_is_false(json_object_get(row, "secret")));
	row = find_row(list, "n1", "private_key");
	assert_true(json_is_true(json_object_get(row, "secret")));
	assert_null(json_object_get(row, "value"));
	json_decref(list);

	/* the secret's value is in no byte of the database, its WAL or the list */
	assert_false(file_holds(path, secret));
	assert_false(file_holds(wal, secret));
	assert_true(file_holds(path, "PUB2") || file_holds(wal, "PUB2"));   /* the check can see */

	/* a node that left: its rows go, the others stay */
	assert_int_equal(state_exports_drop_node(st, "c", "n1", &e), 0);
	assert_int_equal(state_exports_list(st, "c", &list, &e), 0);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "node")), "n2");
	json_decref(list);
	assert_int_equal(state_exports_list(st, "other", &list, &e), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
	state_close(st);

	/* after close (WAL checkpointed into the file): still absent; and the
	 * rows outlive the process's handle */
	assert_false(file_holds(path, secret));
	assert_false(file_holds(wal, secret));
	assert_true(file_holds(path, "PUB2"));
	assert_int_equal(state_open(path, &st, &e), 0);
	assert_int_equal(state_exports_list(st, "c", &list, &e), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
	state_close(st);
	state_close(NULL);

	assert_int_equal(rm_rf(dir), 0);
	free(wal);
	free(path);
}

/* ---- facts: what renders read, what the state loads --------------------- */

/* Whether fn(arg) aborts the process (a stack reading an undeclared key). */
static bool aborts(void (*fn)(const void *), const void *arg)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		/* the message goes to stderr: keep the test log quiet */
		if (!freopen("/dev/null", "w", stderr))
			_exit(3);
		fn(arg);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void read_gpus(const void *arg)
{
	const struct render_ctx *rc = arg;
	render_fact(rc, &rc->c->nodes[0], "gpus");
}

static void read_os(const void *arg)
{
	const struct render_ctx *rc = arg;
	render_fact(rc, &rc->c->nodes[0], "os");
}

static void test_facts_keys(void **s)
{
	char dir[] = "/tmp/kiln-engine.XXXXXX";
	struct cluster *c = NULL;
	struct state *st = NULL;
	struct kerr e = { 0 };
	struct strv keys = { 0 };
	struct exports ex;
	json_t *full = json_pack("{s:s,s:{s:s,s:s},s:[{s:s}],s:{s:i}}", "hostname", "n1", "os",
				 "family", "debian", "id", "debian", "gpus", "slot",
				 "0000:07:00.0", "cpu", "threads", 8);
	json_t *got[2] = { NULL, NULL };
	const json_t *facts[2] = { full, NULL };
	sqlite3 *db;

	if (spec_load_string(DIR "/engine.yaml", spec_text, strlen(spec_text), &c, &e) < 0)
		fail_msg("spec: %s", e.msg);

	/* the enabled stacks' keys, each once */
	stacks_facts_keys(c, &keys);
	assert_int_equal(keys.n, 1);
	assert_string_equal(keys.v[0], "os");
	strv_release(&keys);

	/* a render reads a declared key; an undeclared one is a stack bug */
	struct render_ctx rc = { .c = c, .facts = facts, .stack = &stack_base };
	assert_ptr_equal(render_fact(&rc, &c->nodes[0], "os"), json_object_get(full, "os"));
	assert_null(render_fact(&rc, &c->nodes[1], "os"));     /* no facts */
	assert_false(aborts(read_os, &rc));
	assert_true(aborts(read_gpus, &rc));
	rc.stack = NULL;                                       /* outside any stack */
	assert_true(aborts(read_os, &rc));

	/* the state hands back only the declared keys */
	assert_non_null(mkdtemp(dir));
	char *path = xasprintf("%s/state.db", dir);
	assert_int_equal(state_open(path, &st, &e), 0);
	assert_int_equal(state_facts_put(st, "engine", "n1", full, &e), 0);
	exports_init(&ex);
	assert_int_equal(plan_state_load(st, c, NULL, got, &ex, false, &e), 0);
	assert_non_null(got[0]);
	assert_int_equal(json_object_size(got[0]), 1);
	assert_true(json_equal(json_object_get(got[0], "os"), json_object_get(full, "os")));
	assert_null(got[1]);
	json_decref(got[0]);
	got[0] = NULL;

	/* one damaged record: the others still load (whole), it does not */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO facts (cluster, node, collected_ms, json) "
					  "VALUES ('engine', 'n2', 1, '{\"os\": [')",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(plan_state_load(st, c, NULL, got, &ex, false, &e), 0);
	assert_non_null(got[0]);
	assert_true(json_equal(json_object_get(got[0], "os"), json_object_get(full, "os")));
	assert_null(got[1]);
	json_decref(got[0]);

	exports_release(&ex);
	state_close(st);
	assert_int_equal(rm_rf(dir), 0);
	free(path);
	json_decref(full);
	cluster_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exports_basic),
		cmocka_unit_test(test_exports_drop_node),
		cmocka_unit_test(test_exports_many),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_render_node),
		cmocka_unit_test(test_render_export),
		cmocka_unit_test(test_state_exports),
		cmocka_unit_test(test_facts_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
