/* Network interfaces from /sys/class/net (and their addresses, live only). */
#include "internal.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Prefix length of a netmask (the count of its set bits), or -1. */
static int prefix_len(const struct sockaddr *mask)
{
	const unsigned char *p;
	size_t n;
	int bits = 0;

	if (!mask)
		return -1;
	if (mask->sa_family == AF_INET) {
		p = (const unsigned char *)&((const struct sockaddr_in *)mask)->sin_addr;
		n = 4;
	} else if (mask->sa_family == AF_INET6) {
		p = (const unsigned char *)&((const struct sockaddr_in6 *)mask)->sin6_addr;
		n = 16;
	} else {
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		for (int b = 7; b >= 0; b--)
			bits += (p[i] >> b) & 1;
	return bits;
}

/*
 * "addr/prefix" strings per interface from getifaddrs(); IPv6 link-local
 * addresses are left out (every interface has one; they say nothing).
 */
static json_t *live_addresses(const char *ifname, struct ifaddrs *all)
{
	json_t *arr = json_array();

	for (struct ifaddrs *a = all; a; a = a->ifa_next) {
		char host[INET6_ADDRSTRLEN];
		const void *src;
		int fam;
		if (!a->ifa_addr || strcmp(a->ifa_name, ifname))
			continue;
		fam = a->ifa_addr->sa_family;
		if (fam == AF_INET) {
			src = &((const struct sockaddr_in *)a->ifa_addr)->sin_addr;
		} else if (fam == AF_INET6) {
			const struct in6_addr *in6 = &((const struct sockaddr_in6 *)a->ifa_addr)->sin6_addr;
			if (IN6_IS_ADDR_LINKLOCAL(in6))
				continue;
			src = in6;
		} else {
			continue;
		}
		if (!inet_ntop(fam, src, host, sizeof(host)))
			continue;
		int pl = prefix_len(a->ifa_netmask);
		char *s = pl >= 0 ? xasprintf("%s/%d", host, pl) : xstrdup(host);
		json_array_append_new(arr, json_string(s));
		free(s);
	}
	return arr;
}

/* facts.nics[]: every interface in /sys/class/net but lo, in name order. */
void fx_collect_nics(const struct fx *x, json_t *facts)
{
	struct strv names = STRV_INIT;
	struct ifaddrs *ifa = NULL;
	json_t *arr = json_array();

	if (x->live && getifaddrs(&ifa) < 0)
		ifa = NULL;
	fx_list(x, "/sys/class/net", &names);
	for (size_t i = 0; i < names.n; i++) {
		const char *n = names.v[i];
		char *p, *s;
		int64_t v;
		int r;
		if (!strcmp(n, "lo"))
			continue;
		p = xasprintf("/sys/class/net/%s/address", n);
		if (!fx_exists(x, p)) {   /* bonding_masters and other non-interfaces */
			free(p);
			continue;
		}
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(n));
		json_object_set_new(o, "mac", fx_jstr_take(fx_read(x, p)));
		free(p);
		p = xasprintf("/sys/class/net/%s/mtu", n);
		r = fx_read_i64(x, p, &v);
		json_object_set_new(o, "mtu", fx_jint(r, v));
		free(p);
		/* speed reads -1 or fails with EINVAL while the link is down */
		p = xasprintf("/sys/class/net/%s/speed", n);
		r = fx_read_i64(x, p, &v);
		json_object_set_new(o, "speed_mbps", fx_jint(r < 0 || v <= 0 ? -1 : 0, v));
		free(p);
		p = xasprintf("/sys/class/net/%s/device/driver", n);
		json_object_set_new(o, "driver", fx_jstr_take(fx_link_base(x, p)));
		free(p);
		p = xasprintf("/sys/class/net/%s/device", n);
		json_object_set_new(o, "virtual", json_boolean(!fx_exists(x, p)));
		free(p);
		/* "unknown" is what drivers without operstate support report; trust carrier then */
		s = fx_readf(x, "/sys/class/net/%s/operstate", n);
		bool up = s && !strcmp(s, "up");
		if (s && !strcmp(s, "unknown")) {
			char *c = fx_readf(x, "/sys/class/net/%s/carrier", n);
			up = c && !strcmp(c, "1");
			free(c);
		}
		free(s);
		json_object_set_new(o, "link", json_string(up ? "up" : "down"));
		if (x->live && ifa)
			json_object_set_new(o, "addresses", live_addresses(n, ifa));
		json_array_append_new(arr, o);
	}
	if (ifa)
		freeifaddrs(ifa);
	json_object_set_new(facts, "nics", arr);
	strv_release(&names);
}
