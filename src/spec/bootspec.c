/*
 * boot: and the per-node boot keys — the model helpers (release, look-ups,
 * MAC normalisation).  The schema walk itself is in spec.c with the rest.
 */
#include "spec_int.h"

#include <stdlib.h>
#include <string.h>

void bmc_conf_free(struct bmc_conf *b)
{
	if (!b)
		return;
	free(b->address);
	free(b->user);
	free(b->password_file);
	free(b->password_env);
	free(b);
}

void boot_conf_release(struct boot_conf *b)
{
	if (!b)
		return;
	free(b->server);
	free(b->tftp_root);
	free(b->state_dir);
	free(b->user);
	free(b->api_token_file);
	free(b->enrolled);
	strv_release(&b->listen);
	for (size_t i = 0; i < b->nnetworks; i++) {
		free(b->networks[i].name);
		free(b->networks[i].iface);
	}
	free(b->networks);
	for (size_t i = 0; i < b->nimages; i++) {
		free(b->images[i].name);
		free(b->images[i].kernel);
		free(b->images[i].initrd);
		free(b->images[i].cmdline);
	}
	free(b->images);
	free(b->discovery_image);
	free(b->loader_bios);
	free(b->loader_efi64);
	free(b->loader_arm64);
	memset(b, 0, sizeof(*b));
}

const struct boot_image *cluster_boot_image(const struct cluster *c, const char *name)
{
	for (size_t i = 0; name && i < c->boot.nimages; i++)
		if (!strcmp(c->boot.images[i].name, name))
			return &c->boot.images[i];
	return NULL;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Six pairs of hex digits separated by ':' or '-' (one kind throughout);
 * written back lower case with ':', the form iPXE's ${net0/mac} uses.
 */
bool spec_mac_normalize(const char *s, char out[18])
{
	static const char hex[] = "0123456789abcdef";
	if (strlen(s) != 17)
		return false;
	char sep = s[2];
	if (sep != ':' && sep != '-')
		return false;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != sep))
			return false;
		out[3 * i] = hex[hi];
		out[3 * i + 1] = hex[lo];
		out[3 * i + 2] = i < 5 ? ':' : '\0';
	}
	return true;
}

struct node *cluster_node_by_mac(const struct cluster *c, const char *mac)
{
	char m[18];
	if (!spec_mac_normalize(mac, m))
		return NULL;
	for (size_t i = 0; i < c->nnodes; i++)
		if (c->nodes[i].mac && !strcmp(c->nodes[i].mac, m))
			return &c->nodes[i];
	return NULL;
}
