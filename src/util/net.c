/*
 * IPv4 prefix arithmetic, in host byte order: the one place that turns a
 * prefix length into a netmask (spec checks, DHCP replies, enrollment and
 * lab subnets all agree on /0 and /32 because they share it).
 */
#include "util.h"

#include <arpa/inet.h>
#include <string.h>

uint32_t ipv4_prefix_mask(int prefix)
{
	if (prefix <= 0)
		return 0;   /* a shift by 32 would be undefined */
	if (prefix >= 32)
		return 0xffffffffu;
	return 0xffffffffu << (32 - prefix);
}

bool ipv4_in_subnet(uint32_t ip, uint32_t subnet, int prefix)
{
	uint32_t m = ipv4_prefix_mask(prefix);
	return (ip & m) == (subnet & m);
}

bool ipv4_subnets_overlap(uint32_t a, int pa, uint32_t b, int pb)
{
	return ipv4_in_subnet(a, b, pa < pb ? pa : pb);
}

bool ipv4_cidr_parse(const char *s, uint32_t *net, int *prefix)
{
	char head[32];
	const char *slash = strchr(s, '/');
	struct in_addr a;
	uint64_t p;

	if (!slash || (size_t)(slash - s) >= sizeof(head))
		return false;
	memcpy(head, s, (size_t)(slash - s));
	head[slash - s] = '\0';
	if (inet_pton(AF_INET, head, &a) != 1 || parse_u64(slash + 1, 0, 32, &p) < 0)
		return false;
	*net = ntohl(a.s_addr);
	*prefix = (int)p;
	return true;
}
