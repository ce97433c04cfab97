/*
 * kiln power / kiln bootdev: drive nodes' BMCs (IPMI or Redfish) from the
 * spec's bmc: settings, many nodes in parallel, one result line per node.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bmc/bmc.h"
#include "spec/spec.h"

/*
 * A node's BMC settings, with the password resolved, as a bmc_target.
 * Messages leave out the node: the result line names it.
 */
static int target_for(const struct node *n, struct bmc_target *t, struct kerr *e)
{
	const struct bmc_conf *b = n->bmc;

	bmc_target_init(t);
	if (!b)
		return kerr_set(e, -ENOENT, "no bmc: settings in the spec");
	t->proto = b->type == BMC_REDFISH ? BMC_PROTO_REDFISH : BMC_PROTO_IPMI;
	t->address = xstrdup(b->address);
	t->port = b->port;
	t->user = b->user ? xstrdup(b->user) : NULL;
	if (bmc_secret_load(b->password_file, b->password_env, &t->password, e) < 0) {
		kerr_prefix(e, "bmc password");
		return e->code;
	}
	return 0;
}

/*
 * Shared by both commands: select nodes by names/groups/globs, resolve
 * their BMCs, run op on all of them in parallel, print, and return the
 * exit code: 0 if every node succeeded, 3 if the outcome on some node is
 * unknown (a once-only action sent, no reply), else 1 if any failed.  A
 * node whose BMC cannot be resolved (no bmc:, unreadable password) fails
 * alone; the others are still done.
 */
static int run_op(const char *spec, const char *pattern, const struct bmc_op *op)
{
	struct cluster *c = NULL;
	struct kerr e = { 0 };
	int rc = 1;

	if (spec_load(spec, &c, &e) < 0)
		return cli_error("%s", e.msg);
	bool *sel = xcalloc(c->nnodes + 1, sizeof(*sel));
	struct bmc_target *t = xcalloc(c->nnodes + 1, sizeof(*t));
	const struct bmc_target **tp = xcalloc(c->nnodes + 1, sizeof(*tp));
	struct bmc_result *res = xcalloc(c->nnodes + 1, sizeof(*res));
	struct bmc_result *bres = xcalloc(c->nnodes + 1, sizeof(*bres));
	size_t *slot = xcalloc(c->nnodes + 1, sizeof(*slot));
	const struct node **nodes = xcalloc(c->nnodes + 1, sizeof(*nodes));
	size_t n = 0, nb = 0;
	bool unknown = false;

	if (cluster_select(c, pattern, sel, &e) < 0) {
		cli_error("%s", e.msg);
		goto out;
	}
	/* res[i] for nodes[i]; tp/bres hold only the nodes with a target. */
	for (size_t i = 0; i < c->nnodes; i++) {
		if (!sel[i])
			continue;
		nodes[n] = &c->nodes[i];
		if (target_for(&c->nodes[i], &t[nb], &res[n].err) < 0) {
			res[n].rc = res[n].err.code < 0 ? res[n].err.code : -EINVAL;
			res[n].power = BMC_POWER_UNKNOWN;
			bmc_target_release(&t[nb]);
		} else {
			tp[nb] = &t[nb];
			slot[nb++] = n;
		}
		n++;
	}
	bmc_bulk(tp, nb, op, 0, bres);
	for (size_t j = 0; j < nb; j++)
		res[slot[j]] = bres[j];
	rc = 0;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		const char *state = op->kind == BMC_OP_POWER_GET ? bmc_power_name(res[i].power) : "done";
		if (res[i].rc == -EINPROGRESS)
			unknown = true;
		else if (res[i].rc < 0)
			rc = 1;
		if (arg_output == OUTPUT_JSON) {
			json_t *o = json_pack("{s:s,s:s?,s:b,s:I}", "name", nodes[i]->name,
					      "bmc", nodes[i]->bmc ? nodes[i]->bmc->address : NULL,
					      "ok", res[i].rc == 0,
					      "elapsed_ms", (json_int_t)res[i].elapsed_ms);
			if (res[i].rc == -EINPROGRESS)
				json_object_set_new(o, "outcome", json_string("unknown"));
			if (res[i].rc < 0)
				json_object_set_new(o, "error", json_string(res[i].err.msg));
			else if (op->kind == BMC_OP_POWER_GET)
				json_object_set_new(o, "power", json_string(state));
			json_array_append_new(arr, o);
		} else if (res[i].rc == -EINPROGRESS) {
			printf("%-16s unknown  %s\n", nodes[i]->name, res[i].err.msg);
		} else if (res[i].rc < 0) {
			printf("%-16s failed   %s\n", nodes[i]->name, res[i].err.msg);
		} else {
			printf("%-16s %s\n", nodes[i]->name, state);
		}
	}
	if (unknown)
		rc = 3;
	if (arg_output == OUTPUT_JSON) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
	}
	json_decref(arr);
out:
	for (size_t i = 0; i < nb; i++)
		bmc_target_release(&t[i]);
	free(sel);
	free(t);
	free(tp);
	free(res);
	free(bres);
	free(slot);
	free(nodes);
	cluster_free(c);
	return rc;
}

/* Parse "-f FILE", global options and positional words (at most max). */
static int parse(int argc, char **argv, const char **spec, const char **pos, int max,
		 bool *once)
{
	int np = 0;

	for (int i = 1; i < argc;) {
		int k = cli_global_option(argc, argv, i);
		if (k < 0)
			return -1;
		if (k > 0) {
			i += k;
		} else if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc) {
			*spec = argv[i + 1];
			i += 2;
		} else if (once && !strcmp(argv[i], "--once")) {
			*once = true;
			i++;
		} else if (argv[i][0] == '-') {
			return cli_error("%s: unknown option '%s' (see 'kiln %s --help')", argv[0],
					 argv[i], argv[0]), -1;
		} else if (np < max) {
			pos[np++] = argv[i++];
		} else {
			return cli_error("%s: unexpected argument '%s'", argv[0], argv[i]), -1;
		}
	}
	return np;
}

static int run_power(int argc, char **argv)
{
	const char *spec = "cluster.yaml", *pos[2];
	int np = parse(argc, argv, &spec, pos, 2, NULL);

	if (np < 0)
		return 1;
	if (np < 2)
		return cli_error("power: usage: kiln power status|on|off|cycle|reset|soft NODES");
	struct bmc_op op = { .kind = BMC_OP_POWER_GET };
	if (strcmp(pos[0], "status")) {
		if (!bmc_action_valid(pos[0]))
			return cli_error("power: unknown action '%s' (expected status, on, off, "
					 "cycle, reset or soft)", pos[0]);
		op.kind = BMC_OP_POWER_SET;
		op.arg = pos[0];
	}
	return run_op(spec, pos[1], &op);
}

static int run_bootdev(int argc, char **argv)
{
	const char *spec = "cluster.yaml", *pos[2];
	bool once = false;
	int np = parse(argc, argv, &spec, pos, 2, &once);

	if (np < 0)
		return 1;
	if (np < 2)
		return cli_error("bootdev: usage: kiln bootdev pxe|disk|cdrom|bios NODES [--once]");
	if (!bmc_bootdev_valid(pos[0]))
		return cli_error("bootdev: unknown device '%s' (expected pxe, disk, cdrom, bios "
				 "or none)", pos[0]);
	struct bmc_op op = { .kind = BMC_OP_BOOTDEV_SET, .arg = pos[0], .once = once };
	return run_op(spec, pos[1], &op);
}

const struct command cmd_power = {
	.name = "power",
	.run = run_power,
	.summary = "read or change nodes' power through their BMCs",
	.help = "NAME\n    kiln power - power status and control through IPMI or Redfish\n\n"
		"SYNOPSIS\n    kiln power status|on|off|cycle|reset|soft NODES [-f FILE] [-o json]\n\n"
		"DESCRIPTION\n"
		"    Drives each selected node's BMC from its bmc: settings in the spec\n"
		"    (type ipmi or redfish, address, user, password_file or password_env;\n"
		"    passwords are never inline). NODES is a comma-separated list of node\n"
		"    names, group names and globs. BMCs are driven in parallel (32 at a\n"
		"    time) with a timeout and retries for failures that may pass. off, cycle,\n"
		"    reset and soft are sent once: if the reply is lost the node is reported\n"
		"    'unknown' (the action may or may not have run; check 'kiln power status'\n"
		"    before repeating it). A node without bmc: fails alone; the others\n"
		"    are still done.\n\n"
		"    on, off   hard power on / off        cycle   off then on\n"
		"    reset     hard reset                 soft    ACPI shutdown request\n\n"
		"EXIT STATUS\n    0 every BMC answered; 3 the outcome on some node is unknown (request\n"
		"    sent, reply lost); else 1 if any failed (each named with its cause)\n\n"
		"EXAMPLES\n    kiln power status all\n    kiln power cycle gpu-07\n",
};

const struct command cmd_bootdev = {
	.name = "bootdev",
	.run = run_bootdev,
	.summary = "set nodes' next boot device through their BMCs",
	.help = "NAME\n    kiln bootdev - set the boot device through IPMI or Redfish\n\n"
		"SYNOPSIS\n    kiln bootdev pxe|disk|cdrom|bios|none NODES [--once] [-f FILE] [-o json]\n\n"
		"DESCRIPTION\n"
		"    Sets the boot device of each selected node (see 'kiln power' for NODES\n"
		"    and the bmc: settings). With --once only the next boot uses it;\n"
		"    otherwise it persists.\n\n"
		"EXIT STATUS\n    0 every BMC accepted; 1 any failed (the others are still done)\n\n"
		"EXAMPLES\n    kiln bootdev pxe gpu-07 --once\n",
};
