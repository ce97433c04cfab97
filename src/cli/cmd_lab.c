/* kiln lab: make, inspect and remove a local lab of real sshd hosts. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lab/lab.h"

static const char help[] =
"NAME\n"
"    kiln lab - a multi-host lab of real sshd hosts on this machine\n"
"\n"
"SYNOPSIS\n"
"    kiln lab up [--nodes N] [--bastion] [--name NAME] [--dir DIR] [--subnet CIDR]\n"
"                [--gpus HOST=MODEL:N,...] [--disks COUNTxSIZE] [--used-disk]\n"
"                [--mirror [--packages P1,P2,...] [--cache CACHE]] [--init systemd|tiny]\n"
"                [--sites NAME:N,NAME:N,...]\n"
"                [--bmc]\n"
"    kiln [-o json] lab mirror [--packages P1,P2,...] [--cache CACHE]\n"
"    kiln lab down [--name NAME | --dir DIR | NAME | DIR]\n"
"    kiln [-o json] lab status [--name NAME | --dir DIR]\n"
"    kiln [-o json] lab list\n"
"    kiln lab exec [--name NAME | --dir DIR] HOST [--] COMMAND [ARG...]\n"
"    kiln lab sshd [--name NAME | --dir DIR] HOST stop|start\n"
"    kiln lab rekey [--name NAME | --dir DIR] HOST\n"
"    kiln lab reboot [--name NAME | --dir DIR] HOST\n"
"\n"
"DESCRIPTION\n"
"    A lab is a small cluster made of namespaces on this machine, for trying\n"
"    kiln and for integration tests against real sshd.  Each host (node1 ..\n"
"    nodeN, and 'bastion' with --bastion) has its own network, mount, UTS,\n"
"    IPC and PID namespaces, its hostname, a root filesystem made of one\n"
"    overlay per machine directory (/etc /usr /var /root /home /opt /srv)\n"
"    with private /run and /tmp, and its own sshd (ed25519 host key, root\n"
"    login by key only).  Writes inside a host never reach the machine's\n"
"    directories.  Hosts share a bridge in the namespace NAME-sw.  Each host\n"
"    has a private /dev, and sees the machine's PCI functions except its\n"
"    display controllers, and no disks but its own.\n"
"\n"
"    --gpus gives hosts NVIDIA GPUs that 'kiln facts' finds as on a real\n"
"    server: PCI functions with the model's real ids in the host's\n"
"    /sys/bus/pci/devices and /dev/nvidia0..N-1 and /dev/nvidiactl in its\n"
"    /dev (no driver: the model name comes from pci.ids).  --disks gives\n"
"    every node COUNT sparse files of SIZE in DIR/disks on loop devices,\n"
"    seen in that node only as /dev/sda, /dev/sdb ...; --used-disk adds one\n"
"    more per node with ext4 and a file, mounted at /srv/data in the node.\n"
"\n"
"    Without --bastion the machine has an address on the bridge (.1) and\n"
"    reaches every node.  With --bastion only the bastion's sshd is\n"
"    reachable from the machine, over a /30 at the end of the subnet; the\n"
"    nodes are not routable from the machine and are reached by SSH\n"
"    forwarding through the bastion (ssh -J).\n"
"\n"
"    Addresses (offsets in CIDR): .1 the machine (no bastion), .2 the\n"
"    bastion's bridge leg, .11 node1, .12 node2, ...; with --bastion the\n"
"    last /30 of CIDR is the machine-bastion link (.253 and .254 in a /24).\n"
"\n"
"    --sites (with --bastion) groups the nodes into sites on separate\n"
"    networks: the first site (on-prem) is the lab's subnet behind the\n"
"    bastion, its NAT router (it forwards only UDP 51820 out); every other\n"
"    site (cloud) gets the next subnet of CIDR's size on a public bridge the\n"
"    machine reaches directly (SSH and UDP 51820 only).  The public network\n"
"    is the subnet after the last site: .1 the machine (ks-NAME), .2 the\n"
"    bastion.  cluster.yaml gives each node 'site:', cloud nodes\n"
"    'vars: {endpoint: ADDR:51820}'.  Details: docs/lab.md, Sites.\n"
"\n"
"    'up' writes into DIR: cluster.yaml (the lab as a kiln cluster spec),\n"
"    disks/ (with --disks or --used-disk; removed by 'down'),\n"
"    known_hosts (every host key), keys/id_ed25519 (the client key, root's\n"
"    authorized key on every host), ssh_config (ssh -F DIR/ssh_config\n"
"    node1) and .kiln-lab.  Runtime state (sshd configs, host keys, overlay\n"
"    upper dirs, the state file) lives in /run/kiln-lab/NAME and\n"
"    /run/kiln-lab/NAME.json.  A failed 'up' removes what it made.\n"
"\n"
"    --bmc gives every node a simulated BMC: Debian's ipmi_sim (IPMI 2.0\n"
"    lanplus, UDP 623) in the namespace NAME-bmc-HOST on a management bridge\n"
"    (namespace NAME-mgmt) whose subnet is CIDR with its second octet plus\n"
"    one (10.213.0.0/24 -> 10.214.0.0/24): .1 the machine, .11 node1's BMC,\n"
"    .12 node2's ...  cluster.yaml gets each node's bmc: settings (user\n"
"    admin, password_file bmc-password, a random password written 0600 in\n"
"    DIR), so 'kiln power' and 'kiln bootdev' drive them.  Power off stops\n"
"    the node as 'reboot' does (its files stay) and it stays off ('exec'\n"
"    refuses) until power on starts it again; cycle and reset do both; the\n"
"    boot device is recorded and shown by 'status'.\n"
"\n"
"    Every subcommand needs root.\n"
"\n"
"SUBCOMMANDS\n"
"    up        Make a lab and wait until every sshd accepts connections.\n"
"              Refuses a NAME that exists or a CIDR that overlaps a lab.\n"
"    down      Remove a lab: its processes, namespaces, veths, routes,\n"
"              mounts, loop devices and disk files.  Works after a partial\n"
"              'up'.  DIR is left in place.\n"
"    status    Each host with its address, sshd pid and alive/dead (with\n"
"              --bmc also its BMC's address, power and boot device).\n"
"    list      The labs on this machine.\n"
"    exec      Run COMMAND inside HOST's namespaces with this terminal;\n"
"              kiln exits with COMMAND's exit status (128+N if killed by\n"
"              signal N).\n"
"    sshd      Stop HOST's sshd (and every SSH session on it), or start it\n"
"              again in the same namespaces and wait until it accepts.\n"
"    rekey     Give HOST a new host key and restart its sshd.  known_hosts\n"
"              in DIR is not updated: strict SSH to HOST fails afterwards.\n"
"    reboot    Stop HOST (systemd: a clean poweroff) and start it again with\n"
"              its files (what was written in it stays), addresses and host\n"
"              key; wait until its sshd accepts.  Enabled units start again.\n"
"    mirror    Make or refresh the package mirror's cache: the .debs of the\n"
"              --packages and of all their dependencies (as if nothing were\n"
"              installed), fetched once with the machine's apt, and an index.\n"
"              Names already in the cache download nothing.  Without\n"
"              --packages: what the cache lists, or 'zsh' for a new cache.\n"
"              'up --mirror' then serves CACHE to the lab at http://CIDR.3/\n"
"              (from NAME-sw, also behind a bastion); each host's apt uses\n"
"              only that repository (its own /etc/apt/sources.list).  The\n"
"              machine installs nothing and its apt sources are untouched.\n"
"\n"
"OPTIONS\n"
"    --nodes N      Number of nodes (default 3, at most 250).\n"
"    --bastion      Add a bastion host; only it is reachable from here.\n"
"    --name NAME    Lab name (default 'lab'); prefixes its namespaces.\n"
"                   Other subcommands: which lab (default: the only one).\n"
"    --dir DIR      Lab directory (default ./NAME); other subcommands\n"
"                   find the lab's name in DIR/.kiln-lab.\n"
"    --subnet CIDR  IPv4 subnet, /16 to /26 (default 10.213.0.0/24).\n"
"    --gpus HOST=MODEL:N,...\n"
"                   Give HOST N GPUs (1 to 16) of MODEL: a100, a100-80g,\n"
"                   a100-pcie, h100, h100-pcie, t4, v100, v100-pcie,\n"
"                   rtx3090, rtx4090.\n"
"    --disks COUNTxSIZE\n"
"                   COUNT (1 to 16) free disks of SIZE (K, M, G or T; 1M to\n"
"                   16T) on every node, e.g. 2x8G.\n"
"    --used-disk    One more disk per node (SIZE of --disks, else 1G) holding\n"
"                   ext4 with a file, mounted at /srv/data: facts reports it\n"
"                   in use.\n"
"    --mirror       Serve the package mirror to the lab (building the cache\n"
"                   first when it lacks a name of --packages).\n"
"    --packages L   Comma-separated package names for the mirror.\n"
"    --cache CACHE  The mirror's cache (default /var/cache/kiln/lab-mirror).\n"
"    --init systemd|tiny\n"
"                   Each host's PID 1: 'systemd' boots the machine's own\n"
"                   systemd in the host (units, systemctl, package scripts\n"
"                   that start services, as on a server; needs\n"
"                   /lib/systemd/systemd and a cgroup2 hierarchy); 'tiny' is\n"
"                   kiln-lab-init, which runs only sshd (no service manager:\n"
"                   service resources fail there).  Default: systemd where\n"
"                   it can run (up raises fs.inotify.max_user_instances to\n"
"                   make room for the hosts), else tiny\n"
"                   ('kiln lab status' shows which).\n"
"    --sites NAME:N,...\n"
"                   Nodes per site, in order (node1.. fill the first site);\n"
"                   at least two sites, at most 16.  Sets the node count\n"
"                   (--nodes, if given, must equal the sum or the first\n"
"                   site's count).  Needs --bastion.\n"
"    --bmc          One simulated IPMI BMC per node (see above).\n"
"    -o json        status, list and up print JSON.\n"
"\n"
"EXIT STATUS\n"
"    0 on success, 1 on error; exec exits with COMMAND's status.\n"
"\n"
"EXAMPLES\n"
"    kiln lab up --nodes 3 --bastion --name t1 --subnet 10.213.7.0/24\n"
"    kiln lab up --nodes 4 --bastion --gpus node2=a100:2,node3=t4:1 --disks 2x8G\n"
"    kiln lab up --nodes 4 --bastion --sites onprem:4,cloud:2   (refused: 4 != 6)\n"
"    kiln lab up --bastion --sites onprem:4,cloud:2\n"
"    kiln facts -f lab/cluster.yaml\n"
"    ssh -F t1/ssh_config node2 hostname\n"
"    kiln lab exec --name t1 node1 -- ip -brief addr\n"
"    kiln lab sshd --name t1 node2 stop\n"
"    kiln -o json lab status --name t1\n"
"    kiln lab down --name t1\n";

/* Human table of a status object. */
static void print_status(const json_t *st)
{
	const json_t *hosts = json_object_get(st, "hosts"), *h;
	const char *bastion = json_string_value(json_object_get(st, "bastion"));
	size_t i;

	printf("lab '%s': subnet %s, dir %s%s%s\n",
	       json_string_value(json_object_get(st, "name")),
	       json_string_value(json_object_get(st, "subnet")),
	       json_string_value(json_object_get(st, "dir")),
	       bastion ? ", bastion " : "", bastion ? bastion : "");
	const json_t *m = json_object_get(st, "mirror");
	if (json_is_object(m))
		printf("mirror %s (%s): %s\n", json_string_value(json_object_get(m, "url")),
		       json_string_value(json_object_get(m, "cache")),
		       json_is_true(json_object_get(m, "alive")) ? "serving" : "dead");
	const char *bmcnet = json_string_value(json_object_get(st, "bmc_subnet"));
	if (bmcnet)
		printf("bmc: management subnet %s\n", bmcnet);
	printf("%-10s %-16s %-9s %-6s%s\n", "HOST", "ADDRESS", "SSHD", "STATE",
	       bmcnet ? " BMC              POWER BOOT" : "");
	json_array_foreach(hosts, i, h) {
		const json_t *sshd = json_object_get(h, "sshd_pid");
		char pid[32] = "-";
		if (json_is_integer(sshd))
			snprintf(pid, sizeof(pid), "%lld", (long long)json_integer_value(sshd));
		const json_t *addrs = json_object_get(h, "addresses");
		const char *addr = json_string_value(json_array_get(addrs, json_array_size(addrs) - 1));
		const json_t *b = json_object_get(h, "bmc");
		printf("%-10s %-16s %-9s %s", json_string_value(json_object_get(h, "name")),
		       addr, pid, json_is_true(json_object_get(h, "alive")) ? "alive" : "dead");
		/* The state ends the line without a BMC (scripts grep for "dead$"). */
		if (json_is_object(b))
			printf("%s  %-16s %-5s %s%s", json_is_true(json_object_get(h, "alive")) ? "" : " ",
			       json_string_value(json_object_get(b, "address")),
			       json_string_value(json_object_get(b, "power")),
			       json_string_value(json_object_get(b, "bootdev")),
			       json_is_true(json_object_get(b, "alive")) ? "" : " (BMC dead)");
		printf("\n");
	}
}

static int print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	return 0;
}

static int opt_value(int argc, char **argv, int *i, const char **out)
{
	if (*i + 1 >= argc)
		return cli_error("option '%s' needs a value (see 'kiln help lab')", argv[*i]);
	*out = argv[++*i];
	return 0;
}

struct lab_args {
	struct lab_opts up;
	const char *which;      /* --name or --dir or a positional NAME|DIR */
	const char *pos[2];     /* positional arguments */
	int npos;
	char **cmd;             /* exec: after HOST (and "--") */
	bool mirror;            /* up --mirror (also implied by --packages, --cache) */
	const char *packages, *cache;
};

/* Parse everything after the subcommand; returns 0 or 1 (error printed). */
static int parse(int argc, char **argv, const char *sub, struct lab_args *a)
{
	bool is_up = !strcmp(sub, "up"), is_exec = !strcmp(sub, "exec");
	bool is_mirror = !strcmp(sub, "mirror");

	for (int i = 2; i < argc; i++) {
		const char *arg = argv[i], *v = NULL;
		int n;
		if (is_exec && a->npos == 1) {
			a->cmd = argv + i + (!strcmp(arg, "--") ? 1 : 0);
			break;
		}
		if (!strcmp(arg, "--"))
			continue;
		if ((n = cli_global_option(argc, argv, i)) < 0)
			return 1;
		if (n > 0) {
			i += n - 1;
			continue;
		}
		if (!strcmp(arg, "--name") || !strcmp(arg, "--dir")) {
			if (opt_value(argc, argv, &i, &v))
				return 1;
			if (is_up && arg[2] == 'n')
				a->up.name = v;
			else if (is_up)
				a->up.dir = v;
			else
				a->which = v;
		} else if (is_up && !strcmp(arg, "--nodes")) {
			uint64_t nodes;
			if (opt_value(argc, argv, &i, &v))
				return 1;
			if (parse_u64(v, 1, LAB_MAX_NODES, &nodes) < 0)
				return cli_error("--nodes '%s': expected a number from 1 to %d", v,
						 LAB_MAX_NODES);
			a->up.nodes = (unsigned)nodes;
		} else if (is_up && !strcmp(arg, "--subnet")) {
			if (opt_value(argc, argv, &i, &a->up.subnet))
				return 1;
		} else if (is_up && !strcmp(arg, "--bastion")) {
			a->up.bastion = true;
		} else if (is_up && !strcmp(arg, "--sites")) {
			if (opt_value(argc, argv, &i, &a->up.sites))
				return 1;
		} else if (is_up && !strcmp(arg, "--gpus")) {
			if (opt_value(argc, argv, &i, &a->up.gpus))
				return 1;
		} else if (is_up && !strcmp(arg, "--disks")) {
			if (opt_value(argc, argv, &i, &a->up.disks))
				return 1;
		} else if (is_up && !strcmp(arg, "--used-disk")) {
			a->up.used_disk = true;
		} else if ((is_up || is_mirror) &&
			   (!strcmp(arg, "--packages") || !strcmp(arg, "--cache"))) {
			if (opt_value(argc, argv, &i, arg[2] == 'p' ? &a->packages : &a->cache))
				return 1;
			a->mirror = true;
		} else if (is_up && !strcmp(arg, "--init")) {
			if (opt_value(argc, argv, &i, &a->up.init))
				return 1;
			if (strcmp(a->up.init, "systemd") && strcmp(a->up.init, "tiny"))
				return cli_error("--init '%s': expected systemd or tiny", a->up.init);
		} else if (is_up && !strcmp(arg, "--bmc")) {
			a->up.bmc = true;
		} else if (is_up && !strcmp(arg, "--mirror")) {
			a->mirror = true;
		} else if (arg[0] == '-' && arg[1]) {
			return cli_error("lab %s: unknown option '%s' (see 'kiln help lab')", sub, arg);
		} else if (a->npos < 2) {
			a->pos[a->npos++] = arg;
		} else {
			return cli_error("lab %s: unexpected argument '%s'", sub, arg);
		}
	}
	return 0;
}

static int run_up(struct lab_args *a)
{
	struct kerr e = { 0 };
	json_t *j = NULL;

	if (a->npos)
		return cli_error("lab up: unexpected argument '%s'", a->pos[0]);
	if (lab_up(&a->up, &j, &e) < 0)
		return cli_error("lab up: %s", e.msg);
	if (arg_output == OUTPUT_JSON) {
		print_json(j);
	} else {
		print_status(j);
		printf("Try: ssh -F %s/ssh_config node1\n",
		       json_string_value(json_object_get(j, "dir")));
	}
	json_decref(j);
	return 0;
}

/*
 * lab mirror, and the mirror half of lab up --mirror: build or refresh
 * the cache, then (up) make the lab serving it.
 */
static int mirror_cmd(struct lab_args *a, const char *sub)
{
	struct strv names = STRV_INIT;
	struct lab_mirror_result res;
	struct kerr e = { 0 };
	const char *cache = a->cache ? a->cache : LAB_MIRROR_CACHE;
	bool up = !strcmp(sub, "up");
	int rc = 0;

	if (a->npos) {
		rc = cli_error("lab %s: unexpected argument '%s'", sub, a->pos[0]);
		goto out;
	}
	for (const char *p = a->packages; p && *p;) {
		size_t n = strcspn(p, ",");
		if (n)
			strv_take(&names, xstrndup(p, n));
		p += n + (p[n] == ',');
	}
	if (lab_mirror_build(cache, &names, &res, &e) < 0) {
		rc = cli_error("lab %s: mirror %s: %s", sub, cache, e.msg);
		goto out;
	}
	if (!up && arg_output == OUTPUT_JSON) {
		json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:b}", "cache", cache,
				      "packages", (json_int_t)res.packages,
				      "files", (json_int_t)res.files,
				      "downloaded", (json_int_t)res.downloaded,
				      "refreshed", res.refreshed);
		print_json(j);
		json_decref(j);
	} else if (!up || arg_output != OUTPUT_JSON) {
		printf("mirror %s: %zu package names, %zu files, %zu downloaded%s\n", cache,
		       res.packages, res.files, res.downloaded,
		       res.refreshed ? "" : " (up to date)");
	}
	if (up) {
		a->up.mirror = cache;
		a->mirror = false;
		rc = run_up(a);
	}
out:
	strv_release(&names);
	return rc;
}

static int run(int argc, char **argv)
{
	struct lab_args a = { 0 };
	struct kerr e = { 0 };
	json_t *j = NULL;
	const char *sub;
	int r;

	if (argc < 2)
		return cli_error("lab: which subcommand? (up, down, status, list, exec, sshd, rekey, reboot, mirror; see 'kiln help lab')");
	sub = argv[1];
	/* ipmi_sim's chassis control program (lab up --bmc): not for people. */
	if (!strcmp(sub, "bmc-action")) {
		struct buf out;
		if (argc < 6 || strcmp(argv[2], "--name"))
			return cli_error("lab bmc-action: usage: kiln lab bmc-action --name NAME HOST get|set ...");
		buf_init(&out, 0);
		r = lab_bmc_action(argv[3], argv[4], argv + 5, (size_t)(argc - 5), &out, &e);
		if (r == 0)
			fputs(out.s ? out.s : "", stdout);
		buf_release(&out);
		return r < 0 ? cli_error("lab bmc-action: %s", e.msg) : 0;
	}
	if (parse(argc, argv, sub, &a))
		return 1;
	if (!strcmp(sub, "mirror") || (!strcmp(sub, "up") && a.mirror))
		return mirror_cmd(&a, sub);

	if (!strcmp(sub, "up"))
		return run_up(&a);
	if (!strcmp(sub, "down")) {
		if (a.npos > 1 || (a.npos && a.which))
			return cli_error("lab down: name one lab");
		const char *which = a.npos ? a.pos[0] : a.which;
		if (lab_down(which, &e) < 0)
			return cli_error("lab down: %s", e.msg);
		return 0;
	}
	if (!strcmp(sub, "status")) {
		if (a.npos)
			return cli_error("lab status: unexpected argument '%s'", a.pos[0]);
		if (lab_status(a.which, &j, &e) < 0)
			return cli_error("lab status: %s", e.msg);
		if (arg_output == OUTPUT_JSON)
			print_json(j);
		else
			print_status(j);
		json_decref(j);
		return 0;
	}
	if (!strcmp(sub, "list")) {
		struct strv names = STRV_INIT;
		if (lab_list(&names, &e) < 0)
			return cli_error("lab list: %s", e.msg);
		if (arg_output == OUTPUT_JSON) {
			j = json_array();
			for (size_t i = 0; i < names.n; i++)
				json_array_append_new(j, json_string(names.v[i]));
			print_json(j);
			json_decref(j);
		} else {
			for (size_t i = 0; i < names.n; i++)
				printf("%s\n", names.v[i]);
		}
		strv_release(&names);
		return 0;
	}
	if (!strcmp(sub, "exec")) {
		int status = 0;
		if (a.npos < 1 || !a.cmd || !a.cmd[0])
			return cli_error("lab exec: usage: kiln lab exec HOST -- COMMAND [ARG...]");
		if (lab_exec(a.which, a.pos[0], a.cmd, &status, &e) < 0)
			return cli_error("lab exec: %s", e.msg);
		return status;
	}
	if (!strcmp(sub, "sshd")) {
		if (a.npos != 2 || (strcmp(a.pos[1], "stop") && strcmp(a.pos[1], "start")))
			return cli_error("lab sshd: usage: kiln lab sshd HOST stop|start");
		if (!strcmp(a.pos[1], "stop"))
			r = lab_sshd_stop(a.which, a.pos[0], &e);
		else
			r = lab_sshd_start(a.which, a.pos[0], &e);
		if (r < 0)
			return cli_error("lab sshd %s: %s", a.pos[1], e.msg);
		return 0;
	}
	if (!strcmp(sub, "rekey")) {
		if (a.npos != 1)
			return cli_error("lab rekey: usage: kiln lab rekey HOST");
		if (lab_rekey(a.which, a.pos[0], &e) < 0)
			return cli_error("lab rekey: %s", e.msg);
		return 0;
	}
	if (!strcmp(sub, "reboot")) {
		if (a.npos != 1)
			return cli_error("lab reboot: usage: kiln lab reboot HOST");
		if (lab_reboot(a.which, a.pos[0], &e) < 0)
			return cli_error("lab reboot: %s", e.msg);
		return 0;
	}
	return cli_error("lab: no subcommand '%s' (see 'kiln help lab')", sub);
}

const struct command cmd_lab = {
	.name = "lab",
	.run = run,
	.summary = "make, inspect and remove a local lab of real sshd hosts",
	.help = help,
};
