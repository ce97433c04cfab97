/*
 * DHCP engine: decides what to answer to one parsed request, given the
 * configuration and the lease database.  No sockets, no clock.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"

struct dhcp_engine {
	const struct boot_config *cfg;
	struct lease_db *db;
	uint32_t *reserved;      /* sorted host IPs */
	size_t n_reserved;
	uint32_t *cursor;        /* per net: where the next pool scan starts */
	struct pool_full *full;  /* per net: what the last scan that failed knew */
};

/*
 * A negative cache for an exhausted pool, so that a flood of DISCOVERs
 * from new MACs costs no pool scan each: after a scan found every
 * address taken, the pool stays full until the earliest of those leases
 * expires, unless the lease database freed an address meanwhile (a
 * RELEASE, a rolled-back batch): then the freed addresses are tried, or
 * when it cannot say which, the pool is scanned again.
 */
struct pool_full {
	bool valid;
	int64_t since;       /* when the scan ran (a clock that goes back drops it) */
	int64_t until;       /* earliest expiry among the leases that filled it */
	uint64_t free_gen;   /* lease_db_free_gen when it was known full */
};

#define BCAST 0xffffffffu

int boot_net_find(const struct boot_config *cfg, uint32_t ip)
{
	for (size_t i = 0; i < cfg->n_nets; i++) {
		if (ipv4_in_subnet(ip, cfg->nets[i].subnet, cfg->nets[i].prefix))
			return (int)i;
	}
	return -1;
}

const struct boot_loader_info boot_loaders[BOOT_LOADER_N] = {
	[BOOT_LOADER_BIOS] = { "bios", "undionly.kpxe" },
	[BOOT_LOADER_EFI64] = { "efi64", "snponly.efi" },
	[BOOT_LOADER_ARM64] = { "arm64", "ipxe-arm64.efi" },
};

const char *boot_loader_file(const struct boot_config *cfg, enum boot_loader l)
{
	return cfg->loader[l] ? cfg->loader[l] : boot_loaders[l].dflt;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int dhcp_engine_new(const struct boot_config *cfg, struct lease_db *db,
		    struct dhcp_engine **out, struct kerr *e)
{
	char ip[16], mac[18];
	for (size_t i = 0; i < cfg->n_nets; i++) {
		const struct boot_net *n = &cfg->nets[i];
		if (n->prefix < 8 || n->prefix > 30)
			return kerr_set(e, -EINVAL, "net %zu: prefix /%d out of range 8..30",
					i, n->prefix);
		if (n->pool_start || n->pool_end) {
			if (n->pool_start > n->pool_end ||
			    !ipv4_in_subnet(n->pool_start, n->subnet, n->prefix) ||
			    !ipv4_in_subnet(n->pool_end, n->subnet, n->prefix))
				return kerr_set(e, -EINVAL, "net %zu: pool outside the subnet", i);
			if (n->pool_end - n->pool_start > 1u << 20)
				return kerr_set(e, -EINVAL, "net %zu: pool larger than 2^20", i);
		}
	}
	for (size_t i = 0; i < cfg->n_hosts; i++) {
		const struct boot_host *h = &cfg->hosts[i];
		boot_fmt_mac(h->mac, mac);
		boot_fmt_ip(h->ip, ip);
		if (boot_net_find(cfg, h->ip) < 0)
			return kerr_set(e, -EINVAL, "host '%s': address %s is in no boot net",
					mac, ip);
		for (size_t j = 0; j < i; j++) {
			if (memcmp(cfg->hosts[j].mac, h->mac, 6) == 0)
				return kerr_set(e, -EINVAL, "host '%s': MAC listed twice", mac);
			if (cfg->hosts[j].ip == h->ip)
				return kerr_set(e, -EINVAL, "host '%s': address %s given twice",
						mac, ip);
		}
	}
	struct dhcp_engine *g = xcalloc(1, sizeof(*g));
	g->cfg = cfg;
	g->db = db;
	g->n_reserved = cfg->n_hosts;
	g->reserved = xcalloc(cfg->n_hosts + 1, sizeof(uint32_t));
	for (size_t i = 0; i < cfg->n_hosts; i++)
		g->reserved[i] = cfg->hosts[i].ip;
	qsort(g->reserved, g->n_reserved, sizeof(uint32_t), cmp_u32);
	g->cursor = xcalloc(cfg->n_nets + 1, sizeof(uint32_t));
	g->full = xcalloc(cfg->n_nets + 1, sizeof(*g->full));
	for (size_t i = 0; i < cfg->n_nets; i++)
		g->cursor[i] = cfg->nets[i].pool_start;
	*out = g;
	return 0;
}

struct lease_db *dhcp_engine_db(struct dhcp_engine *g)
{
	return g->db;
}

void dhcp_engine_free(struct dhcp_engine *g)
{
	if (!g)
		return;
	free(g->reserved);
	free(g->cursor);
	free(g->full);
	free(g);
}

static bool is_reserved(const struct dhcp_engine *g, uint32_t ip)
{
	return bsearch(&ip, g->reserved, g->n_reserved, sizeof(uint32_t),
		       cmp_u32) != NULL;
}

static const struct boot_host *find_host(const struct dhcp_engine *g,
					 const uint8_t *mac)
{
	for (size_t i = 0; i < g->cfg->n_hosts; i++)
		if (memcmp(g->cfg->hosts[i].mac, mac, 6) == 0)
			return &g->cfg->hosts[i];
	return NULL;
}

/* An address the dynamic pool of n may hand out at all. */
static bool in_pool(const struct dhcp_engine *g, const struct boot_net *n,
		    uint32_t ip)
{
	uint32_t m = ipv4_prefix_mask(n->prefix);
	if (!n->pool_start || ip < n->pool_start || ip > n->pool_end)
		return false;
	if ((ip & ~m) == 0 || (ip & ~m) == ~m)
		return false;   /* network or broadcast address */
	if (ip == g->cfg->server_ip || ip == n->router)
		return false;
	return !is_reserved(g, ip);
}

/*
 * Whether ip may go to mac now: no row, the row is mac's own (unless
 * quarantined), or the row has expired.  -EIO on database failure.
 */
static int ip_free_until(struct dhcp_engine *g, uint32_t ip, const uint8_t *mac,
			 int64_t now, bool *ok, int64_t *until)
{
	struct lease l;
	int r = lease_db_get(g->db, ip, &l);
	if (r == -ENOENT) {
		*ok = true;
		return 0;
	}
	if (r < 0)
		return r;
	if (l.expires <= now)
		*ok = true;
	else if (l.state == LEASE_DECLINED)
		*ok = false;
	else
		*ok = memcmp(l.mac, mac, 6) == 0;
	if (!*ok && until)
		*until = l.expires;
	return 0;
}

static int ip_free_for(struct dhcp_engine *g, uint32_t ip, const uint8_t *mac,
		       int64_t now, bool *ok)
{
	return ip_free_until(g, ip, mac, now, ok, NULL);
}

/*
 * The pool of net ni is known full: -ENOSPC without looking at it, or an
 * address freed since it was found full (0, *ip), or 1: scan it.
 */
static int pool_full_check(struct dhcp_engine *g, int ni, const uint8_t *mac,
			   int64_t now, uint32_t *ip)
{
	struct pool_full *pf = &g->full[ni];
	const struct boot_net *n = &g->cfg->nets[ni];
	uint32_t freed[LEASE_DB_FREED_RING];
	size_t k;
	bool ok;
	int r;
	if (!pf->valid || now < pf->since || now >= pf->until)
		return 1;
	uint64_t gen = lease_db_free_gen(g->db);
	if (gen == pf->free_gen)
		return -ENOSPC;
	if (!lease_db_freed_since(g->db, pf->free_gen, freed, &k)) {
		pf->valid = false;
		return 1;
	}
	pf->free_gen = gen;
	int found = -ENOSPC;
	int64_t u;
	for (size_t i = 0; i < k; i++) {
		if (!in_pool(g, n, freed[i]))
			continue;
		if ((r = ip_free_until(g, freed[i], mac, now, &ok, &u)) < 0)
			return r;
		if (!ok) {
			/* taken again meanwhile: full until that one expires too */
			if (u < pf->until)
				pf->until = u;
			continue;
		}
		if (found == -ENOSPC) {
			*ip = freed[i];
			found = 0;
		} else {
			pf->valid = false;   /* more than one: no longer full */
			break;
		}
	}
	/* the caller offers *ip: full again, until that offer expires at the latest */
	int64_t offer_end = now + (g->cfg->offer_time ? g->cfg->offer_time : 60);
	if (found == 0 && offer_end < pf->until)
		pf->until = offer_end;
	return found;
}

/*
 * Pick the address for mac on net n: its reservation, else its previous
 * address, else the one it asks for, else the next free pool address.
 * -EPERM (unknown and not allowed), -ENOSPC (pool full), -EBUSY
 * (reservation taken or quarantined), -EIO.
 */
static int choose_addr(struct dhcp_engine *g, int ni, const uint8_t *mac,
		       const struct boot_host *h, uint32_t want, int64_t now,
		       uint32_t *ip)
{
	const struct boot_net *n = &g->cfg->nets[ni];
	bool ok;
	int r;
	if (h) {
		if ((r = ip_free_for(g, h->ip, mac, now, &ok)) < 0)
			return r;
		if (!ok)
			return -EBUSY;
		*ip = h->ip;
		return 0;
	}
	if (!n->allow_unknown)
		return -EPERM;
	struct lease l;
	r = lease_db_find_mac(g->db, mac, now, &l);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && in_pool(g, n, l.ip) &&
	    !(l.state == LEASE_DECLINED && l.expires > now)) {
		*ip = l.ip;
		return 0;
	}
	if (want && in_pool(g, n, want)) {
		if ((r = ip_free_for(g, want, mac, now, &ok)) < 0)
			return r;
		if (ok) {
			*ip = want;
			return 0;
		}
	}
	if (!n->pool_start)
		return -ENOSPC;
	if ((r = pool_full_check(g, ni, mac, now, ip)) <= 0)
		return r;
	uint32_t span = n->pool_end - n->pool_start + 1;
	uint32_t c = g->cursor[ni];
	uint64_t gen = lease_db_free_gen(g->db);
	int64_t until = INT64_MAX, u;
	for (uint32_t i = 0; i < span; i++, c++) {
		if (c < n->pool_start || c > n->pool_end)
			c = n->pool_start;
		if (!in_pool(g, n, c))
			continue;
		if ((r = ip_free_until(g, c, mac, now, &ok, &u)) < 0)
			return r;
		if (ok) {
			*ip = c;
			g->cursor[ni] = c + 1;
			return 0;
		}
		if (u < until)
			until = u;
	}
	g->full[ni] = (struct pool_full){ .valid = true, .since = now, .until = until,
					  .free_gen = gen };
	return -ENOSPC;
}

/* Whether `want` is an address mac may be bound to (REQUEST checks). */
static int addr_allowed(struct dhcp_engine *g, int ni, const uint8_t *mac,
			const struct boot_host *h, uint32_t want, int64_t now,
			bool *ok)
{
	const struct boot_net *n = &g->cfg->nets[ni];
	*ok = false;
	if (h) {
		if (want != h->ip)
			return 0;
		return ip_free_for(g, want, mac, now, ok);
	}
	if (!n->allow_unknown || !in_pool(g, n, want))
		return 0;
	return ip_free_for(g, want, mac, now, ok);
}

static void fmt_url(char *dst, size_t n, const char *base, const char *path,
		    const char *mac)
{
	size_t bl = strlen(base);
	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	snprintf(dst, n, "%.*s/boot/%s%s", (int)bl, base, path, mac ? ".ipxe" : "");
}

/* What boots where: fills file (maybe empty) and the flags. */
struct boot_pick {
	char file[256];
	bool tftp;          /* file is a TFTP path: set siaddr, option 66 */
	bool http_client;   /* echo option 60 "HTTPClient" */
	bool ipxe;          /* send iPXE's no-pxedhcp */
	bool pxe;           /* a PXE ROM: send option 43 discovery control */
	char why[48];
};

static void pick_boot(const struct dhcp_engine *g, const struct dhcp_msg *req,
		      const struct boot_host *h, struct boot_pick *p)
{
	const struct boot_config *c = g->cfg;
	char vc[64] = "", mac[18];
	memset(p, 0, sizeof(*p));
	dhcp_opt_str(req, DHO_VENDOR_CLASS, vc, sizeof(vc));
	bool pxe = str_starts(vc, "PXEClient");
	bool http = str_starts(vc, "HTTPClient");
	int arch = dhcp_client_arch(req);
	boot_fmt_mac(req->chaddr, mac);
	p->pxe = pxe;
	if (dhcp_is_ipxe(req) && (c->http_base || (h && h->script_url))) {
		p->ipxe = true;
		if (h && h->script_url)
			snprintf(p->file, sizeof(p->file), "%s", h->script_url);
		else
			fmt_url(p->file, sizeof(p->file), c->http_base, mac, mac);
		snprintf(p->why, sizeof(p->why), "iPXE script");
		return;
	}
	if (h && h->boot_file) {
		snprintf(p->file, sizeof(p->file), "%s", h->boot_file);
		p->tftp = !str_starts(h->boot_file, "http://") &&
			  !str_starts(h->boot_file, "https://");
		p->http_client = http && !p->tftp;
		snprintf(p->why, sizeof(p->why), "host boot file");
		return;
	}
	if (http && c->http_base) {
		const char *f = boot_loader_file(c, arch == 19 ? BOOT_LOADER_ARM64
						 : BOOT_LOADER_EFI64);
		fmt_url(p->file, sizeof(p->file), c->http_base, f, NULL);
		p->http_client = true;
		snprintf(p->why, sizeof(p->why), "UEFI HTTP boot arch %d", arch);
		return;
	}
	if (!pxe && arch < 0)
		return;
	const char *f = NULL;
	switch (arch) {
	case -1:
	case 0:
		f = boot_loader_file(c, BOOT_LOADER_BIOS);
		break;
	case 7:
	case 9:
		f = boot_loader_file(c, BOOT_LOADER_EFI64);
		break;
	case 11:
		f = boot_loader_file(c, BOOT_LOADER_ARM64);
		break;
	default:
		snprintf(p->why, sizeof(p->why), "no loader for arch %d", arch);
		return;
	}
	snprintf(p->file, sizeof(p->file), "%s", f);
	p->tftp = true;
	snprintf(p->why, sizeof(p->why), "PXE arch %d", arch < 0 ? 0 : arch);
}

static bool param_requested(const struct dhcp_msg *req, uint8_t code)
{
	size_t l;
	const uint8_t *v = dhcp_opt_get(req, DHO_PARAM_LIST, &l);
	return v && memchr(v, code, l) != NULL;
}

/*
 * The options of an OFFER/ACK (lease_time 0 = INFORM: no lease options).
 * Optional extras that do not fit are left out; the essentials must fit.
 */
static int add_config_opts(struct dhcp_engine *g, const struct dhcp_msg *req,
			   const struct boot_net *n, const struct boot_host *h,
			   uint32_t lease_time, struct dhcp_out *o, char *why,
			   size_t whyn)
{
	const struct boot_config *c = g->cfg;
	uint8_t b[4 * BOOT_MAX_DNS];
	int r = 0;
	r |= dhcp_out_opt_u32(o, DHO_SERVER_ID, c->server_ip);
	if (lease_time) {
		r |= dhcp_out_opt_u32(o, DHO_LEASE_TIME, lease_time);
		r |= dhcp_out_opt_u32(o, DHO_T1, lease_time / 2);
		r |= dhcp_out_opt_u32(o, DHO_T2, (uint32_t)((uint64_t)lease_time * 7 / 8));
	}
	uint32_t m = ipv4_prefix_mask(n->prefix);
	r |= dhcp_out_opt_u32(o, DHO_SUBNET_MASK, m);
	r |= dhcp_out_opt_u32(o, DHO_BROADCAST, (n->subnet & m) | ~m);
	if (n->router)
		r |= dhcp_out_opt_u32(o, DHO_ROUTER, n->router);
	if (n->n_dns) {
		size_t k = n->n_dns > BOOT_MAX_DNS ? BOOT_MAX_DNS : n->n_dns;
		for (size_t i = 0; i < k; i++) {
			b[4 * i] = n->dns[i] >> 24;
			b[4 * i + 1] = n->dns[i] >> 16;
			b[4 * i + 2] = n->dns[i] >> 8;
			b[4 * i + 3] = n->dns[i];
		}
		r |= dhcp_out_opt(o, DHO_DNS, b, 4 * k);
	}
	if (r)
		return -E2BIG;
	if (h && h->name)
		dhcp_out_opt(o, DHO_HOSTNAME, h->name, strlen(h->name));

	struct boot_pick p;
	pick_boot(g, req, h, &p);
	if (p.file[0]) {
		snprintf(why, whyn, " file '%.120s' (%s)", p.file, p.why);
		bool in_field = dhcp_out_set_file(o, p.file);
		if (p.tftp) {
			char sip[16];
			boot_fmt_ip(c->server_ip, sip);
			dhcp_out_set_siaddr(o, c->server_ip);
			if (p.pxe || param_requested(req, DHO_TFTP_SERVER))
				dhcp_out_opt(o, DHO_TFTP_SERVER, sip, strlen(sip));
		}
		if (!in_field || p.pxe || p.ipxe || param_requested(req, DHO_BOOTFILE))
			if (dhcp_out_opt(o, DHO_BOOTFILE, p.file, strlen(p.file)) < 0)
				return -E2BIG;
		if (p.http_client)
			dhcp_out_opt(o, DHO_VENDOR_CLASS, "HTTPClient", 10);
		else if (p.pxe)
			dhcp_out_opt(o, DHO_VENDOR_CLASS, "PXEClient", 9);
		if (p.ipxe) {
			/* no-pxedhcp: do not wait for ProxyDHCP offers */
			static const uint8_t enc[] = { 176, 1, 1 };
			dhcp_out_opt(o, DHO_IPXE_ENCAP, enc, sizeof(enc));
		} else if (p.pxe && p.tftp) {
			/* PXE discovery control: boot file from this reply */
			static const uint8_t v43[] = { 6, 1, 8, 255 };
			dhcp_out_opt(o, DHO_VENDOR_OPTS, v43, sizeof(v43));
		}
	} else if (p.why[0]) {
		snprintf(why, whyn, " (%s)", p.why);
	}
	return 0;
}

/* Finish: echo option 82 last (RFC 3046), END, destination. */
static int finish(const struct dhcp_msg *req, struct dhcp_reply *r, int type,
		  uint32_t ciaddr)
{
	size_t l;
	const uint8_t *ri = dhcp_opt_get(req, DHO_RELAY_INFO, &l);
	if (ri && dhcp_out_opt(&r->out, DHO_RELAY_INFO, ri, l) < 0)
		return -E2BIG;
	if (dhcp_out_end(&r->out) < 0)
		return -E2BIG;
	r->send = true;
	r->type = type;
	if (req->giaddr) {
		r->dst_ip = req->giaddr;
		r->dst_port = DHCP_SERVER_PORT;
		if (type == DHCPNAK)
			r->out.buf[10] |= 0x80;   /* relay must broadcast a NAK */
	} else if (type != DHCPNAK && ciaddr) {
		r->dst_ip = ciaddr;
		r->dst_port = DHCP_CLIENT_PORT;
	} else {
		/*
		 * Without ciaddr we would have to unicast to yiaddr, which the
		 * kernel cannot do before the client has an address unless we
		 * plant an ARP entry (needs CAP_NET_ADMIN, which we dropped)
		 * or write raw frames.  Broadcast works for every client
		 * (dhclient and udhcpc read raw sockets), whatever the flag.
		 */
		r->dst_ip = BCAST;
		r->dst_port = DHCP_CLIENT_PORT;
	}
	return 0;
}

static uint32_t lease_time_of(const struct boot_net *n)
{
	return n->lease_time ? n->lease_time : 3600;
}

/*
 * A NAK (the caller wrote the note).  One that cannot carry the relay
 * information it must echo (RFC 3046) is not sent: like an oversized
 * OFFER or ACK, that is the request's fault, not the database's, so it
 * is not an error.
 */
static int do_nak(const struct dhcp_msg *req, struct dhcp_engine *g,
		  struct dhcp_reply *r, const char *msg)
{
	dhcp_out_begin(&r->out, req, DHCPNAK, 0);
	dhcp_out_opt_u32(&r->out, DHO_SERVER_ID, g->cfg->server_ip);
	dhcp_out_opt(&r->out, DHO_MESSAGE, msg, strlen(msg));
	if (finish(req, r, DHCPNAK, 0) < 0) {
		size_t l = strlen(r->note);
		r->send = false;
		snprintf(r->note + l, sizeof(r->note) - l, ", reply too large: not sent");
	}
	return 0;
}

static void note(struct dhcp_reply *r, const char *fmt, ...) PRINTF(2, 3);
static void note(struct dhcp_reply *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->note, sizeof(r->note), fmt, ap);
	va_end(ap);
}

static const char *const type_names[] = {
	"?", "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK",
	"RELEASE", "INFORM",
};

int dhcp_engine_handle(struct dhcp_engine *g, const struct dhcp_msg *req,
		       const struct dhcp_rx *rx, int64_t now,
		       struct dhcp_reply *r)
{
	const struct boot_config *c = g->cfg;
	char mac[18], ip[16], why[200] = "";
	int rc = 0;
	memset(r, 0, offsetof(struct dhcp_reply, out));
	r->note[0] = 0;
	boot_fmt_mac(req->chaddr, mac);
	int type = dhcp_msg_type(req);
	if (req->op != 1 || req->htype != 1 || req->hlen != 6) {
		note(r, "ignored: not an Ethernet BOOTREQUEST");
		return 0;
	}
	if (!type) {
		note(r, "ignored: %s: no DHCP message type (BOOTP not served)", mac);
		return 0;
	}
	const char *tn = type_names[type];
	int ni = req->giaddr ? boot_net_find(c, req->giaddr) : rx->net;
	if (ni < 0 || (size_t)ni >= c->n_nets) {
		boot_fmt_ip(req->giaddr, ip);
		note(r, "ignored: %s from %s: no boot net for giaddr %s", tn, mac, ip);
		return 0;
	}
	const struct boot_net *n = &c->nets[ni];
	const struct boot_host *h = find_host(g, req->chaddr);
	if (h && boot_net_find(c, h->ip) != ni) {
		note(r, "ignored: %s from %s: reserved on another net", tn, mac);
		return 0;
	}
	uint32_t sid = 0, want = 0;
	bool has_sid = dhcp_opt_ip(req, DHO_SERVER_ID, &sid);
	dhcp_opt_ip(req, DHO_REQUESTED_IP, &want);
	size_t maxl;
	const uint8_t *mx = dhcp_opt_get(req, DHO_MAX_SIZE, &maxl);
	size_t max = mx && maxl == 2 ? (size_t)(mx[0] << 8 | mx[1]) : 0;
	struct lease l = { 0 };
	memcpy(l.mac, req->chaddr, 6);
	dhcp_opt_str(req, DHO_HOSTNAME, l.hostname, sizeof(l.hostname));
	uint32_t addr;
	bool ok;

	switch (type) {
	case DHCPDISCOVER:
		rc = choose_addr(g, ni, req->chaddr, h, want, now, &addr);
		if (rc == -EIO)
			return rc;
		if (rc < 0) {
			note(r, "DISCOVER from %s: no offer: %s", mac,
			     rc == -EPERM ? "unknown MAC, net does not allow unknown"
			     : rc == -EBUSY ? "reserved address in use or quarantined"
			     : "pool exhausted");
			return 0;
		}
		struct lease held;
		int gr = lease_db_get(g->db, addr, &held);
		if (gr < 0 && gr != -ENOENT)
			return gr;
		/* An active binding stays bound; otherwise hold it for the offer. */
		if (!(gr == 0 && held.state == LEASE_BOUND && held.expires > now &&
		      memcmp(held.mac, req->chaddr, 6) == 0)) {
			l.ip = addr;
			l.state = LEASE_OFFERED;
			l.expires = now + (c->offer_time ? c->offer_time : 60);
			rc = lease_db_put(g->db, &l, now, false);
			if (rc == -EBUSY) {
				note(r, "DISCOVER from %s: address taken meanwhile", mac);
				return 0;
			}
			if (rc < 0)
				return rc;
		}
		dhcp_out_begin(&r->out, req, DHCPOFFER, max);
		dhcp_out_set_addrs(&r->out, 0, addr, 0);
		if (add_config_opts(g, req, n, h, lease_time_of(n), &r->out, why,
				    sizeof(why)) < 0 ||
		    finish(req, r, DHCPOFFER, 0) < 0) {
			r->send = false;
			note(r, "DISCOVER from %s: reply too large", mac);
			return 0;
		}
		boot_fmt_ip(addr, ip);
		note(r, "DISCOVER from %s: OFFER %s%s%s", mac, ip, h ? " (reserved)" : "", why);
		return 0;

	case DHCPREQUEST:
		if (has_sid && sid != c->server_ip) {
			/* The client took another server's offer: drop ours. */
			struct lease o;
			if (lease_db_find_mac(g->db, req->chaddr, now, &o) == 0 &&
			    o.state == LEASE_OFFERED && o.expires > now) {
				o.state = LEASE_RELEASED;
				o.expires = now;
				if ((rc = lease_db_put(g->db, &o, now, false)) == -EIO)
					return rc;
			}
			note(r, "REQUEST from %s: for another server", mac);
			return 0;
		}
		if (has_sid && !want) {
			note(r, "ignored: REQUEST from %s: server id without address", mac);
			return 0;
		}
		if (!want)
			want = req->ciaddr;
		if (!want) {
			note(r, "ignored: REQUEST from %s: no address asked", mac);
			return 0;
		}
		boot_fmt_ip(want, ip);
		if (boot_net_find(c, want) != ni) {
			note(r, "REQUEST from %s for %s: NAK (wrong network)", mac, ip);
			return do_nak(req, g, r, "wrong network");
		}
		if ((rc = addr_allowed(g, ni, req->chaddr, h, want, now, &ok)) < 0)
			return rc;
		if (!ok) {
			note(r, "REQUEST from %s for %s: NAK (not yours)", mac, ip);
			return do_nak(req, g, r, "address not available");
		}
		l.ip = want;
		l.state = LEASE_BOUND;
		l.expires = now + lease_time_of(n);
		rc = lease_db_put(g->db, &l, now, true);
		if (rc == -EBUSY) {
			note(r, "REQUEST from %s for %s: NAK (taken)", mac, ip);
			return do_nak(req, g, r, "address not available");
		}
		if (rc < 0)
			return rc;   /* not on disk: no ACK */
		dhcp_out_begin(&r->out, req, DHCPACK, max);
		dhcp_out_set_addrs(&r->out, req->ciaddr, want, 0);
		if (add_config_opts(g, req, n, h, lease_time_of(n), &r->out, why,
				    sizeof(why)) < 0 ||
		    finish(req, r, DHCPACK, req->ciaddr) < 0) {
			r->send = false;
			note(r, "REQUEST from %s: reply too large", mac);
			return 0;
		}
		note(r, "REQUEST from %s: ACK %s%s%s", mac, ip, h ? " (reserved)" : "", why);
		return 0;

	case DHCPDECLINE:
	case DHCPRELEASE: {
		if (has_sid && sid != c->server_ip) {
			note(r, "%s from %s: for another server", tn, mac);
			return 0;
		}
		uint32_t a = type == DHCPDECLINE ? want : req->ciaddr;
		struct lease cur;
		boot_fmt_ip(a, ip);
		rc = a ? lease_db_get(g->db, a, &cur) : -ENOENT;
		if (rc == -EIO)
			return rc;
		if (rc < 0 || memcmp(cur.mac, req->chaddr, 6) != 0) {
			note(r, "%s from %s for %s: not its lease", tn, mac, ip);
			return 0;
		}
		cur.state = type == DHCPDECLINE ? LEASE_DECLINED : LEASE_RELEASED;
		cur.expires = type == DHCPDECLINE
			? now + (c->decline_time ? c->decline_time : 600) : now;
		if ((rc = lease_db_put(g->db, &cur, now, true)) < 0 && rc != -EBUSY)
			return rc;
		note(r, "%s from %s: %s %s", tn, mac,
		     type == DHCPDECLINE ? "quarantined" : "freed", ip);
		return 0;
	}

	case DHCPINFORM:
		dhcp_out_begin(&r->out, req, DHCPACK, max);
		dhcp_out_set_addrs(&r->out, req->ciaddr, 0, 0);
		if (add_config_opts(g, req, n, h, 0, &r->out, why, sizeof(why)) < 0 ||
		    finish(req, r, DHCPACK, req->ciaddr) < 0) {
			r->send = false;
			note(r, "INFORM from %s: reply too large", mac);
			return 0;
		}
		note(r, "INFORM from %s: ACK%s", mac, why);
		return 0;

	default:
		note(r, "ignored: %s from %s (a server message)", tn, mac);
		return 0;
	}
}
