/*
 * libFuzzer: the DHCP parser, its accessors, and the engine on whatever
 * parses (against an in-memory lease database).  Any reply the engine
 * builds must parse back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct boot_net nets[2];
static struct boot_host host;
static struct boot_config cfg;
static struct lease_db *db;
static struct dhcp_engine *eng;
static struct dhcp_msg msg, back;
static struct dhcp_reply reply;

static void setup(void)
{
	struct kerr e;
	nets[0].iface = "kbt-fuzz";
	nets[0].subnet = 0x0a4d0000;
	nets[0].prefix = 24;
	nets[0].router = 0x0a4d0001;
	nets[0].dns[0] = 0x0a4d0001;
	nets[0].n_dns = 1;
	nets[0].pool_start = 0x0a4d0064;
	nets[0].pool_end = 0x0a4d0073;
	nets[0].allow_unknown = true;
	nets[1].subnet = 0x0a580000;
	nets[1].prefix = 24;
	nets[1].pool_start = 0x0a580032;
	nets[1].pool_end = 0x0a580036;
	nets[1].allow_unknown = true;
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 0, 0, 1 };
	memcpy(host.mac, mac, 6);
	host.ip = 0x0a4d000a;
	host.name = "gpu-01";
	cfg.server_ip = 0x0a4d0001;
	cfg.nets = nets;
	cfg.n_nets = 2;
	cfg.hosts = &host;
	cfg.n_hosts = 1;
	cfg.http_base = "http://10.77.0.1:8080";
	if (lease_db_open(":memory:", &db, &e) < 0 ||
	    dhcp_engine_new(&cfg, db, &eng, &e) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int64_t now = 1000000;
	char s[64];
	uint32_t ip;
	if (!eng)
		setup();
	if (dhcp_parse(data, size, &msg) < 0)
		return 0;
	/* Every option's extent lies inside optbuf. */
	for (int c = 0; c < 256; c++)
		if (msg.opt[c].present &&
		    (size_t)msg.opt[c].off + msg.opt[c].len > msg.optbuf_len)
			abort();
	dhcp_msg_type(&msg);
	dhcp_opt_str(&msg, DHO_HOSTNAME, s, sizeof(s));
	dhcp_opt_str(&msg, DHO_VENDOR_CLASS, s, sizeof(s));
	dhcp_opt_ip(&msg, DHO_REQUESTED_IP, &ip);
	dhcp_client_arch(&msg);
	dhcp_is_ipxe(&msg);
	struct dhcp_rx rx = { .net = 0 };
	now += 7;
	if (dhcp_engine_handle(eng, &msg, &rx, now, &reply) < 0)
		abort();   /* an in-memory database does not fail */
	if (reply.send) {
		if (reply.out.len < DHCP_REPLY_MIN || reply.out.len > reply.out.max + 1)
			abort();
		if (dhcp_parse(reply.out.buf, reply.out.len, &back) < 0 ||
		    dhcp_msg_type(&back) != reply.type)
			abort();
	}
	return 0;
}
