/* kiln serve: the provisioning daemon (DHCP, TFTP, HTTP boot, discovery, API). */
#include "cli.h"

#include <string.h>

#include "serve/serve.h"

static int run(int argc, char **argv)
{
	struct serve_opts o = { .spec = "cluster.yaml" };
	struct kerr e = { 0 };

	for (int i = 1; i < argc;) {
		int n = cli_global_option(argc, argv, i);
		if (n < 0)
			return 1;
		if (n > 0) {
			i += n;
		} else if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc) {
			o.spec = argv[i + 1];
			i += 2;
		} else if (str_starts(argv[i], "--file=")) {
			o.spec = argv[i] + 7;
			i++;
		} else if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--check")) {
			o.check_only = true;
			i++;
		} else if (!strcmp(argv[i], "--foreground")) {
			i++;
		} else {
			return cli_error("serve: unknown argument '%s' (see 'kiln serve --help')",
					 argv[i]);
		}
	}
	if (!o.check_only && log_threshold < LOG_INFO)
		log_threshold = LOG_INFO;
	/* The daemon's lines, slog's and those of the DHCP/TFTP glue alike,
	 * are key=value lines; only the final error is the CLI's. */
	log_set_format(LOG_FORMAT_KV);
	if (serve_run(&o, &e) < 0)
		return cli_error("serve: %s", e.msg);
	if (o.check_only)
		printf("configuration OK\n");
	return 0;
}

const struct command cmd_serve = {
	.name = "serve",
	.run = run,
	.summary = "run the provisioning daemon: DHCP, TFTP, HTTP/iPXE boot, discovery, API",
	.help =
	"NAME\n"
	"    kiln serve - provision bare metal from the cluster spec\n"
	"\n"
	"SYNOPSIS\n"
	"    kiln serve [-f FILE] [-n] [--foreground] [-v]\n"
	"\n"
	"DESCRIPTION\n"
	"    Serves the spec's boot: section: DHCP (port 67) and\n"
	"    TFTP (port 69) on every boot network, and HTTP on boot.http_port for\n"
	"    per-host iPXE scripts (/boot/MAC.ipxe), kernels and initrds with\n"
	"    Range (/images/NAME/kernel|initrd), cloud-init NoCloud\n"
	"    (/cloud-init/MAC/meta-data|user-data|vendor-data), discovery\n"
	"    (POST /api/discover) and a JSON API (/api/status, /api/leases,\n"
	"    /api/nodes, /api/discovered; POST /api/reload, /api/enroll and\n"
	"    /api/nodes/NAME/reprovision need 'Authorization: Bearer TOKEN').\n"
	"\n"
	"    It runs as two processes.  The network process binds the ports,\n"
	"    opens its databases in boot.state_dir as boot.user (default _kiln,\n"
	"    created when missing), chroots into the empty /run/kiln/empty and\n"
	"    drops root before it reads the network; it refuses to run if any\n"
	"    step fails.  The privileged process stays root, reads the spec and\n"
	"    the image files, writes boot.enrolled for POST /api/enroll, and\n"
	"    reads nothing from the network.  kiln serve refuses to start when\n"
	"    boot.user could write the spec, a file it names, their directories\n"
	"    or the token file, or when boot.state_dir is not boot.user's alone\n"
	"    (the message says how to fix it).  SIGHUP (to either process) or\n"
	"    POST /api/reload re-reads the spec: leases and TFTP transfers in\n"
	"    flight are kept; a spec with errors is refused and the old one kept.\n"
	"    Logs go to stderr, one key=value line per event.  It runs in the\n"
	"    foreground until SIGTERM or SIGINT.  See docs/serve.md.\n"
	"\n"
	"OPTIONS\n"
	"    -f, --file FILE   the cluster spec (default cluster.yaml)\n"
	"    -n, --check       check the spec, image files, API token file,\n"
	"                      interfaces, boot loaders, user, state directory\n"
	"                      and who may write the spec; print\n"
	"                      \"configuration OK\" or the error; bind nothing\n"
	"    --foreground      accepted for clarity; the daemon never detaches\n"
	"    -v                more logging\n"
	"\n"
	"EXIT STATUS\n"
	"    0  stopped by a signal, or -n found the configuration OK\n"
	"    1  the configuration is wrong or the daemon could not start\n"
	"\n"
	"EXAMPLES\n"
	"    kiln serve -f cluster.yaml -n\n"
	"    kiln serve -f cluster.yaml\n"
	"    kill -HUP $(pidof kiln)      # reload the spec\n",
};
