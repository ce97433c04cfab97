/* kiln boot status | enroll: the provisioning state, and discovered machines into nodes. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"
#include "spec/spec.h"

static void when(json_t *t, char *out, size_t n)
{
	if (!json_is_integer(t)) {
		snprintf(out, n, "-");
		return;
	}
	time_t s = (time_t)json_integer_value(t);
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static const char *str_or(const json_t *j, const char *dflt)
{
	const char *s = json_string_value(j);
	return s ? s : dflt;
}

static void print_status(const json_t *st)
{
	size_t i;
	json_t *n;
	printf("%-16s %-17s %-12s %-24s %s\n", "NODE", "MAC", "STATE", "LEASE", "LAST FETCH");
	json_array_foreach(json_object_get(st, "nodes"), i, n) {
		char lease[64] = "-", fetch[80];
		const json_t *l = json_object_get(n, "lease");
		if (json_is_object(l))
			snprintf(lease, sizeof(lease), "%s (%s)", str_or(json_object_get(l, "ip"), "?"),
				 str_or(json_object_get(l, "state"), "?"));
		when(json_object_get(n, "last_fetch"), fetch, sizeof(fetch) - 20);
		if (json_is_string(json_object_get(n, "last_fetch_what")))
			snprintf(fetch + strlen(fetch), 20, " %s",
				 json_string_value(json_object_get(n, "last_fetch_what")));
		printf("%-16s %-17s %-12s %-24s %s\n", str_or(json_object_get(n, "name"), "?"),
		       str_or(json_object_get(n, "mac"), "-"), str_or(json_object_get(n, "state"), "?"),
		       lease, fetch);
	}
	const json_t *d = json_object_get(st, "discovered");
	if (!json_array_size(d))
		return;
	printf("\n%-17s %-16s %s\n", "DISCOVERED", "ADDRESS", "HARDWARE");
	json_array_foreach(d, i, n)
		printf("%-17s %-16s %s\n", str_or(json_object_get(n, "mac"), "?"),
		       str_or(json_object_get(n, "ip"), "-"),
		       str_or(json_object_get(n, "hardware"), "-"));
}

/* Open what exists of the daemon's databases (none yet is not an error). */
static int open_dbs(const struct cluster *c, struct serve_state **st, struct lease_db **ldb,
		    struct kerr *e)
{
	char *p = xasprintf("%s/serve.db", c->boot.state_dir);
	int r = 0;
	*st = NULL;
	*ldb = NULL;
	if (path_exists(p) && (r = serve_state_open(p, true, st, e)) < 0)
		goto out;
	free(p);
	p = xasprintf("%s/leases.db", c->boot.state_dir);
	if (path_exists(p))
		r = lease_db_open(p, ldb, e);
out:
	free(p);
	return r;
}

static int boot_status(const char *spec)
{
	struct cluster *c = NULL;
	struct serve_state *st = NULL;
	struct lease_db *ldb = NULL;
	struct kerr e = { 0 };
	int rc = 1;

	if (spec_load(spec, &c, &e) < 0)
		return cli_error("%s", e.msg);
	if (!c->boot.enabled) {
		rc = cli_error("boot status: %s has no 'boot' section", spec);
		goto out;
	}
	/* the databases live where the daemon's user writes: read them as
	 * that user, so that a link planted there lends it nothing of root's */
	if (geteuid() == 0 && getpwnam(c->boot.user) &&
	    boot_drop_privileges(c->boot.user, NULL, &e) < 0) {
		rc = cli_error("boot status: %s", e.msg);
		goto out;
	}
	if (open_dbs(c, &st, &ldb, &e) < 0) {
		rc = cli_error("boot status: %s", e.msg);
		goto out;
	}
	json_t *j = serve_status_json(c, st, ldb);
	if (arg_output == OUTPUT_JSON) {
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		print_status(j);
	}
	json_decref(j);
	rc = 0;
out:
	serve_state_close(st);
	lease_db_close(ldb);
	cluster_free(c);
	return rc;
}

static int boot_enroll(const char *spec, struct enroll_req *q)
{
	struct cluster *c = NULL;
	struct serve_state *st = NULL;
	struct lease_db *ldb = NULL;
	struct kerr e = { 0 };
	char *addr = NULL, hint[64] = "";
	json_t *resp = NULL;
	int status = 0, rc = 1;

	if (spec_load(spec, &c, &e) < 0)
		return cli_error("%s", e.msg);
	/* the machine's current address picks the boot network */
	if (c->boot.enabled && open_dbs(c, &st, &ldb, &e) == 0 && st) {
		char mac[18];
		json_t *rows = serve_state_machines(st), *r;
		size_t i;
		json_array_foreach(rows, i, r)
			if (spec_mac_normalize(q->mac, mac) &&
			    !strcmp(str_or(json_object_get(r, "mac"), ""), mac))
				snprintf(hint, sizeof(hint), "%s", str_or(json_object_get(r, "ip"), ""));
		json_decref(rows);
	}
	q->ip_hint = hint[0] ? hint : NULL;
	if (serve_enroll(spec, q, &addr, &e) < 0) {
		rc = cli_error("boot enroll: %s", e.msg);
		goto out;
	}
	int r = serve_api_call(c, "POST", "/api/reload", "{}", &status, &resp, &e);
	bool reloaded = r == 0 && status == 200;
	if (arg_output == OUTPUT_JSON) {
		json_t *j = json_pack("{s:s, s:s, s:b}", "node", q->name, "address", addr,
				      "reloaded", reloaded);
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
	} else {
		printf("enrolled %s as node '%s' at %s (%s)\n", q->mac, q->name, addr,
		       c->boot.enrolled);
	}
	if (r == -ECONNREFUSED)
		fprintf(stderr, "kiln: boot enroll: no kiln serve answered; it picks the node "
			"up at its next start or reload\n");
	else if (r < 0)
		fprintf(stderr, "kiln: boot enroll: reload: %s\n", e.msg);
	else if (status != 200)
		fprintf(stderr, "kiln: boot enroll: the daemon refused the reload (HTTP %d): %s\n",
			status, str_or(json_object_get(resp, "error"), "?"));
	rc = 0;
out:
	json_decref(resp);
	free(addr);
	serve_state_close(st);
	lease_db_close(ldb);
	cluster_free(c);
	return rc;
}

static int run(int argc, char **argv)
{
	const char *spec = "cluster.yaml", *sub = NULL, *roles_arg = NULL;
	struct strv roles = STRV_INIT;
	struct enroll_req q = { 0 };
	int rc;

	for (int i = 1; i < argc;) {
		int n = cli_global_option(argc, argv, i);
		const char *o = argv[i];
		if (n < 0)
			return 1;
		if (n > 0) {
			i += n;
			continue;
		}
		bool has = i + 1 < argc;
		if ((!strcmp(o, "-f") || !strcmp(o, "--file")) && has)
			spec = argv[++i];
		else if (!strcmp(o, "--name") && has)
			q.name = argv[++i];
		else if (!strcmp(o, "--roles") && has)
			roles_arg = argv[++i];
		else if (!strcmp(o, "--image") && has)
			q.image = argv[++i];
		else if (!strcmp(o, "--address") && has)
			q.address = argv[++i];
		else if (o[0] != '-' && !sub)
			sub = o;
		else if (o[0] != '-' && sub && !strcmp(sub, "enroll") && !q.mac)
			q.mac = o;
		else
			return cli_error("boot: unknown or incomplete argument '%s' (see 'kiln boot "
					 "--help')", o);
		i++;
	}
	if (!sub || !strcmp(sub, "status"))
		return boot_status(spec);
	if (strcmp(sub, "enroll"))
		return cli_error("boot: no subcommand '%s' (expected status or enroll)", sub);
	if (!q.mac || !q.name)
		return cli_error("boot enroll: usage: kiln boot enroll MAC --name NAME "
				 "[--roles a,b] [--image IMG] [--address A]");
	if (roles_arg) {
		char *copy = xstrdup(roles_arg), *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			strv_push(&roles, t);
		free(copy);
	}
	q.roles = &roles;
	rc = boot_enroll(spec, &q);
	strv_release(&roles);
	return rc;
}

const struct command cmd_boot = {
	.name = "boot",
	.run = run,
	.summary = "provisioning state of the nodes; enroll discovered machines",
	.help =
	"NAME\n"
	"    kiln boot - what kiln serve knows: nodes, leases, discovered machines\n"
	"\n"
	"SYNOPSIS\n"
	"    kiln boot status [-f FILE] [-o json]\n"
	"    kiln boot enroll MAC --name NAME [--roles a,b] [--image IMG]\n"
	"                     [--address A] [-f FILE] [-o json]\n"
	"\n"
	"DESCRIPTION\n"
	"    status reads the daemon's databases under boot.state_dir (it may run\n"
	"    meanwhile) and shows per node: its state (new, booting, provisioned;\n"
	"    discovered for an enrolled machine that has not booted as a node yet),\n"
	"    its last lease and last fetch; then the discovered machines that are\n"
	"    not nodes, with a hardware summary from the facts they posted.\n"
	"\n"
	"    enroll turns a discovered machine into a node: it is appended to the\n"
	"    file named by boot.enrolled (default enrolled.yaml beside the spec),\n"
	"    written atomically and checked by loading the whole spec again; then\n"
	"    a running kiln serve is told to reload (POST /api/reload with the\n"
	"    token of boot.api_token_file).  Without --address the node gets the\n"
	"    first free address of its boot network outside the dynamic pool.\n"
	"\n"
	"OPTIONS\n"
	"    -f, --file FILE   the cluster spec (default cluster.yaml)\n"
	"    --name NAME       the new node's name\n"
	"    --roles a,b       its roles\n"
	"    --image IMG       the boot image it installs (default: none, local disk)\n"
	"    --address A       its reserved address\n"
	"    -o json           machine-readable output\n"
	"\n"
	"EXIT STATUS\n"
	"    0 success (enroll: also when no daemon runs), 1 error\n"
	"\n"
	"EXAMPLES\n"
	"    kiln boot status -o json\n"
	"    kiln boot enroll 52:54:00:12:34:56 --name gpu-07 --roles worker --image debian12\n",
};
