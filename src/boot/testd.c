/*
 * kiln-boot-testd: DHCP + TFTP from flags, for the lab tests until
 * `kiln serve` takes over.  Logs to stderr; exits on SIGTERM/SIGINT.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"

static const char usage[] =
	"usage: kiln-boot-testd [options]\n"
	"  DHCP (when --iface is given):\n"
	"    --iface IF --server-ip A --subnet A/P [--router A] [--dns A]...\n"
	"    [--pool A-B] [--allow-unknown] [--lease-time S] [--offer-time S]\n"
	"    [--decline-time S] [--host MAC,IP[,NAME[,BOOTFILE]]]...\n"
	"    [--relay-net A/P,POOLSTART-POOLEND[,ROUTER]]... --lease-db PATH\n"
	"    [--http-base URL]\n"
	"  TFTP (when --tftp-root is given):\n"
	"    --tftp-root DIR [--tftp-addr A] [--tftp-port N] [--max-blksize N]\n"
	"    [--max-window N] [--max-transfers N]\n"
	"  --user NAME [--chroot DIR]  drop root after binding\n"
	"  -n  check the configuration, print \"configuration OK\" and exit\n"
	"  -q | -v  less | more logging\n";

enum {
	O_IFACE = 256, O_SERVER_IP, O_SUBNET, O_ROUTER, O_DNS, O_POOL,
	O_ALLOW, O_LEASE_TIME, O_OFFER_TIME, O_DECLINE_TIME, O_HOST, O_RELAY,
	O_DB, O_HTTP, O_TROOT, O_TADDR, O_TPORT, O_MAXBLK, O_MAXWIN, O_MAXX,
	O_USER, O_CHROOT,
};

static const struct option longopts[] = {
	{ "iface", required_argument, NULL, O_IFACE },
	{ "server-ip", required_argument, NULL, O_SERVER_IP },
	{ "subnet", required_argument, NULL, O_SUBNET },
	{ "router", required_argument, NULL, O_ROUTER },
	{ "dns", required_argument, NULL, O_DNS },
	{ "pool", required_argument, NULL, O_POOL },
	{ "allow-unknown", no_argument, NULL, O_ALLOW },
	{ "lease-time", required_argument, NULL, O_LEASE_TIME },
	{ "offer-time", required_argument, NULL, O_OFFER_TIME },
	{ "decline-time", required_argument, NULL, O_DECLINE_TIME },
	{ "host", required_argument, NULL, O_HOST },
	{ "relay-net", required_argument, NULL, O_RELAY },
	{ "lease-db", required_argument, NULL, O_DB },
	{ "http-base", required_argument, NULL, O_HTTP },
	{ "tftp-root", required_argument, NULL, O_TROOT },
	{ "tftp-addr", required_argument, NULL, O_TADDR },
	{ "tftp-port", required_argument, NULL, O_TPORT },
	{ "max-blksize", required_argument, NULL, O_MAXBLK },
	{ "max-window", required_argument, NULL, O_MAXWIN },
	{ "max-transfers", required_argument, NULL, O_MAXX },
	{ "user", required_argument, NULL, O_USER },
	{ "chroot", required_argument, NULL, O_CHROOT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_cidr(const char *s, uint32_t *ip, int *prefix)
{
	char tmp[32];
	uint64_t p;
	const char *slash = strchr(s, '/');
	if (!slash || (size_t)(slash - s) >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, (size_t)(slash - s));
	tmp[slash - s] = 0;
	if (boot_parse_ip(tmp, ip) < 0 || parse_u64(slash + 1, 0, 32, &p) < 0)
		return -EINVAL;
	*prefix = (int)p;
	return 0;
}

static int parse_range(const char *s, uint32_t *a, uint32_t *b)
{
	char tmp[64];
	const char *dash = strchr(s, '-');
	if (!dash || (size_t)(dash - s) >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, (size_t)(dash - s));
	tmp[dash - s] = 0;
	return boot_parse_ip(tmp, a) < 0 || boot_parse_ip(dash + 1, b) < 0 ? -EINVAL : 0;
}

/* MAC,IP[,NAME[,BOOTFILE]] */
static int parse_host(char *s, struct boot_host *h)
{
	char *save = NULL;
	char *mac = strtok_r(s, ",", &save), *ip = strtok_r(NULL, ",", &save);
	char *name = strtok_r(NULL, ",", &save), *file = strtok_r(NULL, ",", &save);
	memset(h, 0, sizeof(*h));
	if (!mac || !ip || boot_parse_mac(mac, h->mac) < 0 || boot_parse_ip(ip, &h->ip) < 0)
		return -EINVAL;
	h->name = name ? xstrdup(name) : NULL;
	h->boot_file = file ? xstrdup(file) : NULL;
	return 0;
}

/* A/P,START-END[,ROUTER] */
static int parse_relay(char *s, struct boot_net *n)
{
	char *save = NULL;
	char *cidr = strtok_r(s, ",", &save), *pool = strtok_r(NULL, ",", &save);
	char *router = strtok_r(NULL, ",", &save);
	if (!cidr || !pool || parse_cidr(cidr, &n->subnet, &n->prefix) < 0 ||
	    parse_range(pool, &n->pool_start, &n->pool_end) < 0 ||
	    (router && boot_parse_ip(router, &n->router) < 0))
		return -EINVAL;
	n->allow_unknown = true;
	return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("testd: signal %d, exiting", (int)sig);
	event_base_loopbreak(arg);
}

static int num(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *v)
{
	if (parse_u64(s, min, max, v) < 0) {
		fprintf(stderr, "kiln-boot-testd: --%s: '%s' is not a number in %llu..%llu\n",
			opt, s, (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct boot_config cfg = { 0 };
	struct boot_net nets[9] = { 0 };
	struct boot_host *hosts = NULL;
	size_t n_hosts = 0, a_hosts = 0, n_relay = 0;
	struct boot_tftp_opts to = { 0 };
	const char *db_path = NULL, *user = NULL, *chroot_dir = NULL;
	bool check = false;
	int c, rc = 1;
	uint64_t v;
	struct kerr e = { 0 };
	struct event_base *base = NULL;
	struct lease_db *db = NULL;
	struct dhcp_engine *eng = NULL;
	struct boot_dhcp *dh = NULL;
	struct boot_tftp *tf = NULL;
	struct event *sigterm = NULL, *sigint = NULL;
	struct boot_net *n0 = &nets[0];

	log_threshold = LOG_INFO;
	while ((c = getopt_long(argc, argv, "nqvh", longopts, NULL)) != -1) {
		switch (c) {
		case O_IFACE: n0->iface = optarg; break;
		case O_SERVER_IP:
			if (boot_parse_ip(optarg, &cfg.server_ip) < 0)
				goto bad_arg;
			break;
		case O_SUBNET:
			if (parse_cidr(optarg, &n0->subnet, &n0->prefix) < 0)
				goto bad_arg;
			break;
		case O_ROUTER:
			if (boot_parse_ip(optarg, &n0->router) < 0)
				goto bad_arg;
			break;
		case O_DNS:
			if (n0->n_dns >= BOOT_MAX_DNS ||
			    boot_parse_ip(optarg, &n0->dns[n0->n_dns++]) < 0)
				goto bad_arg;
			break;
		case O_POOL:
			if (parse_range(optarg, &n0->pool_start, &n0->pool_end) < 0)
				goto bad_arg;
			break;
		case O_ALLOW: n0->allow_unknown = true; break;
		case O_LEASE_TIME:
			if (num("lease-time", optarg, 10, 1u << 30, &v) < 0)
				goto out;
			n0->lease_time = (uint32_t)v;
			break;
		case O_OFFER_TIME:
			if (num("offer-time", optarg, 1, 3600, &v) < 0)
				goto out;
			cfg.offer_time = (uint32_t)v;
			break;
		case O_DECLINE_TIME:
			if (num("decline-time", optarg, 1, 86400, &v) < 0)
				goto out;
			cfg.decline_time = (uint32_t)v;
			break;
		case O_HOST:
			hosts = xgrow(hosts, n_hosts + 1, &a_hosts, sizeof(*hosts));
			if (parse_host(optarg, &hosts[n_hosts]) < 0)
				goto bad_arg;
			n_hosts++;
			break;
		case O_RELAY:
			if (n_relay + 1 >= ARRAY_SIZE(nets) ||
			    parse_relay(optarg, &nets[1 + n_relay]) < 0)
				goto bad_arg;
			n_relay++;
			break;
		case O_DB: db_path = optarg; break;
		case O_HTTP: cfg.http_base = optarg; break;
		case O_TROOT: to.root = optarg; break;
		case O_TADDR:
			if (boot_parse_ip(optarg, &to.addr) < 0)
				goto bad_arg;
			break;
		case O_TPORT:
			if (num("tftp-port", optarg, 1, 65535, &v) < 0)
				goto out;
			to.port = (uint16_t)v;
			break;
		case O_MAXBLK:
			if (num("max-blksize", optarg, 512, TFTP_BLKSIZE_MAX, &v) < 0)
				goto out;
			to.lim.max_blksize = (uint32_t)v;
			break;
		case O_MAXWIN:
			if (num("max-window", optarg, 1, TFTP_WINDOW_MAX, &v) < 0)
				goto out;
			to.lim.max_window = (uint32_t)v;
			break;
		case O_MAXX:
			if (num("max-transfers", optarg, 1, 100000, &v) < 0)
				goto out;
			to.max_transfers = (int)v;
			break;
		case O_USER: user = optarg; break;
		case O_CHROOT: chroot_dir = optarg; break;
		case 'n': check = true; break;
		case 'q': log_threshold = LOG_WARN; break;
		case 'v': log_threshold = LOG_DEBUG; break;
		case 'h': fputs(usage, stdout); rc = 0; goto out;
		default: fputs(usage, stderr); goto out;
		}
	}
	if (optind != argc || (!n0->iface && !to.root)) {
		fputs(usage, stderr);
		goto out;
	}
	cfg.nets = nets;
	cfg.n_nets = n0->iface ? 1 + n_relay : 0;
	cfg.hosts = hosts;
	cfg.n_hosts = n_hosts;
	if (n0->iface && (!cfg.server_ip || !n0->prefix || !db_path)) {
		fprintf(stderr, "kiln-boot-testd: DHCP needs --server-ip, --subnet and --lease-db\n");
		goto out;
	}
	if (n0->iface) {
		if (lease_db_open(check ? ":memory:" : db_path, &db, &e) < 0 ||
		    dhcp_engine_new(&cfg, db, &eng, &e) < 0)
			goto fail;
	}
	if (check) {
		printf("configuration OK\n");
		rc = 0;
		goto out;
	}
	base = event_base_new();
	if (!base) {
		kerr_set(&e, -ENOMEM, "cannot create event loop");
		goto fail;
	}
	if ((eng && boot_dhcp_start(base, &cfg, eng, &dh, &e) < 0) ||
	    (to.root && boot_tftp_start(base, &to, &tf, &e) < 0))
		goto fail;
	if (user && boot_drop_privileges(user, chroot_dir, &e) < 0)
		goto fail;
	signal(SIGPIPE, SIG_IGN);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 ||
	    evsignal_add(sigint, NULL) < 0) {
		kerr_set(&e, -ENOMEM, "cannot register signals");
		goto fail;
	}
	log_info("testd: ready%s%s%s", dh ? " dhcp" : "", tf ? " tftp" : "",
		 user ? " (unprivileged)" : "");
	event_base_dispatch(base);
	rc = 0;
	goto out;
bad_arg:
	fprintf(stderr, "kiln-boot-testd: bad value '%s'\n", optarg);
	goto out;
fail:
	fprintf(stderr, "kiln-boot-testd: %s\n", e.msg);
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	boot_tftp_free(tf);
	boot_dhcp_free(dh);
	dhcp_engine_free(eng);
	lease_db_close(db);
	if (base)
		event_base_free(base);
	for (size_t i = 0; i < n_hosts; i++) {
		free(hosts[i].name);
		free(hosts[i].boot_file);
	}
	free(hosts);
	return rc;
}
