/*
 * kiln lab: the lab's state file (LAB_RUNTIME_DIR/NAME.json), what `kiln
 * lab up` made and every later command reads: saved after each step of
 * making it, loaded (and the lab found by name or directory) by the rest.
 */
#include "lab_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* (lab_int.h) */
bool lab_name_valid(const char *s)
{
	size_t n = strlen(s);

	/* The lab's name is its cluster's name: [a-z0-9][a-z0-9-]* (spec.md). */
	if (!n || n > LAB_NAME_MAX || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

/* ---- the lab struct and its state file ------------------------------ */

void lab_free(struct lab *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nhosts; i++) {
		struct lab_host *h = &l->hosts[i];
		free(h->name);
		free(h->netns);
		free(h->addr);
		free(h->uplink);
		free(h->rt);
		free(h->bmc_netns);
		free(h->bmc_addr);
		free(h->bootdev);
		hw_host_release(h);
	}
	sites_free(l);
	free(l->hosts);
	free(l->name);
	free(l->dir);
	free(l->rt);
	free(l->state_path);
	free(l->subnet);
	free(l->sw_netns);
	free(l->root_link);
	free(l->root_addr);
	free(l->unreachable);
	free(l->bmc_subnet);
	free(l->bmc_netns);
	free(l->bmc_link);
	free(l->bmc_root_addr);
	mirror_free(l->mirror);
	free(l);
}

struct lab_host *lab_host_find(struct lab *l, const char *name)
{
	for (size_t i = 0; i < l->nhosts; i++)
		if (!strcmp(l->hosts[i].name, name))
			return &l->hosts[i];
	return NULL;
}

char *lab_state_path(const char *name)
{
	return xasprintf("%s/%s.json", LAB_RUNTIME_DIR, name);
}

json_t *lab_jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Write the state file: everything made so far, so `down` can undo it. */
int lab_save(const struct lab *l, struct kerr *e)
{
	json_t *hosts = json_array(), *files = json_array();
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct lab_host *h = &l->hosts[i];
		json_t *disks, *gpus = hw_host_json(h, &disks);
		json_array_append_new(hosts, json_pack(
			"{s:s, s:b, s:s, s:s, s:s, s:o, s:s, s:I, s:I, s:o, s:o}",
			"name", h->name, "bastion", h->bastion, "init",
			h->systemd ? "systemd" : "tiny", "netns", h->netns,
			"address", h->addr, "uplink", lab_jstr_or_null(h->uplink),
			"runtime", h->rt, "pid", (json_int_t)h->pid,
			"start", (json_int_t)h->start, "gpus", gpus, "disks", disks));
		if (h->bmc_netns)
			json_object_set_new(json_array_get(hosts, i), "bmc", json_pack(
				"{s:s, s:s, s:I, s:I, s:b, s:o}", "netns", h->bmc_netns,
				"address", h->bmc_addr, "pid", (json_int_t)h->bmc_pid,
				"start", (json_int_t)h->bmc_start, "power_off", h->power_off,
				"bootdev", lab_jstr_or_null(h->bootdev)));
		for (size_t k = 0; k < h->ndisks; k++)
			json_array_append_new(files, json_string(h->disks[k].file));
	}
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:o, s:b, s:o}",
			      "version", 1, "name", l->name, "dir", l->dir,
			      "runtime", l->rt, "subnet", l->subnet, "bastion", l->bastion,
			      "switch_netns", l->sw_netns, "root_link", l->root_link,
			      "root_address", l->root_addr,
			      "unreachable_route", lab_jstr_or_null(l->unreachable),
			      "runtime_mounted", l->rt_mounted, "hosts", hosts);
	/* Flat lists of what exists on the machine, for people and scripts. */
	json_t *nss = json_array(), *links = json_array(), *mounts = json_array();
	json_array_append_new(nss, json_string(l->sw_netns));
	for (size_t i = 0; i < l->nhosts; i++)
		json_array_append_new(nss, json_string(l->hosts[i].netns));
	json_array_append_new(links, json_string(l->root_link));
	if (l->bmc_netns) {
		json_object_set_new(j, "bmc", json_pack("{s:s, s:s, s:s, s:s}",
			"subnet", l->bmc_subnet, "netns", l->bmc_netns, "root_link", l->bmc_link,
			"root_address", l->bmc_root_addr));
		json_array_append_new(nss, json_string(l->bmc_netns));
		for (size_t i = 0; i < l->nhosts; i++)
			if (l->hosts[i].bmc_netns)
				json_array_append_new(nss, json_string(l->hosts[i].bmc_netns));
		json_array_append_new(links, json_string(l->bmc_link));
	}
	if (l->rt_mounted)
		json_array_append_new(mounts, json_string(l->rt));
	json_object_set_new(j, "made_netns", nss);
	json_object_set_new(j, "made_links", links);
	json_object_set_new(j, "made_mounts", mounts);
	json_object_set_new(j, "made_files", files);
	json_object_set_new(j, "mirror", mirror_to_json(l->mirror));
	sites_to_json(l, j);
	char *text = json_dumps(j, JSON_INDENT(2));
	int r = file_write_atomic(l->state_path, text, strlen(text), 0600, -1, -1);
	if (r < 0)
		kerr_set(e, r, "write %s: %s", l->state_path, strerror(-r));
	free(text);
	json_decref(j);
	return r;
}

static char *jdup(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? xstrdup(s) : NULL;
}

/* Read a lab's state file into *out. */
int lab_load(const char *name, struct lab **out, struct kerr *e)
{
	char *path = lab_state_path(name);
	json_error_t je;
	json_t *j = NULL;
	struct lab *l = NULL;
	int r = 0;

	*out = NULL;
	if (!path_exists(path)) {
		r = kerr_set(e, -ENOENT, "no lab '%s' (no %s)", name, path);
		goto out;
	}
	j = json_load_file(path, 0, &je);
	if (!j) {
		r = kerr_set(e, -EINVAL, "%s:%d: %s", path, je.line, je.text);
		goto out;
	}
	l = xcalloc(1, sizeof(*l));
	l->name = jdup(j, "name");
	l->dir = jdup(j, "dir");
	l->rt = jdup(j, "runtime");
	l->subnet = jdup(j, "subnet");
	l->sw_netns = jdup(j, "switch_netns");
	l->root_link = jdup(j, "root_link");
	l->root_addr = jdup(j, "root_address");
	l->unreachable = jdup(j, "unreachable_route");
	l->bastion = json_is_true(json_object_get(j, "bastion"));
	l->rt_mounted = json_is_true(json_object_get(j, "runtime_mounted"));
	l->state_path = xstrdup(path);
	l->mirror = mirror_from_json(json_object_get(j, "mirror"));
	json_t *bmc = json_object_get(j, "bmc");
	if (json_is_object(bmc)) {
		l->bmc_subnet = jdup(bmc, "subnet");
		l->bmc_netns = jdup(bmc, "netns");
		l->bmc_link = jdup(bmc, "root_link");
		l->bmc_root_addr = jdup(bmc, "root_address");
		if (!l->bmc_subnet || !l->bmc_netns || !l->bmc_link || !l->bmc_root_addr) {
			r = kerr_set(e, -EINVAL, "%s: incomplete bmc", path);
			goto out;
		}
	}
	json_t *hosts = json_object_get(j, "hosts");
	if (!l->name || !l->dir || !l->rt || !l->subnet || !l->sw_netns ||
	    !l->root_link || !l->root_addr || !json_is_array(hosts)) {
		r = kerr_set(e, -EINVAL, "%s: not a kiln lab state file", path);
		goto out;
	}
	l->hosts = xcalloc(json_array_size(hosts) + 1, sizeof(*l->hosts));
	size_t i;
	json_t *hj;
	json_array_foreach(hosts, i, hj) {
		struct lab_host *h = &l->hosts[l->nhosts++];
		h->name = jdup(hj, "name");
		h->netns = jdup(hj, "netns");
		h->addr = jdup(hj, "address");
		h->uplink = jdup(hj, "uplink");
		h->rt = jdup(hj, "runtime");
		h->bastion = json_is_true(json_object_get(hj, "bastion"));
		/* No "init" (an older state file): kiln-lab-init. */
		const char *init = json_string_value(json_object_get(hj, "init"));
		h->systemd = init && !strcmp(init, "systemd");
		h->pid = (pid_t)json_integer_value(json_object_get(hj, "pid"));
		h->start = (unsigned long long)json_integer_value(json_object_get(hj, "start"));
		json_t *hb = json_object_get(hj, "bmc");
		if (json_is_object(hb)) {
			h->bmc_netns = jdup(hb, "netns");
			h->bmc_addr = jdup(hb, "address");
			h->bmc_pid = (pid_t)json_integer_value(json_object_get(hb, "pid"));
			h->bmc_start = (unsigned long long)json_integer_value(json_object_get(hb, "start"));
			h->power_off = json_is_true(json_object_get(hb, "power_off"));
			h->bootdev = jdup(hb, "bootdev");
			if (!h->bmc_netns || !h->bmc_addr) {
				r = kerr_set(e, -EINVAL, "%s: host %zu: incomplete bmc", path, i);
				goto out;
			}
		}
		if (!h->name || !h->netns || !h->addr || !h->rt) {
			r = kerr_set(e, -EINVAL, "%s: host %zu is incomplete", path, i);
			goto out;
		}
		if ((r = hw_host_load(h, json_object_get(hj, "gpus"),
				      json_object_get(hj, "disks"), e)) < 0) {
			kerr_prefix(e, "%s", path);
			goto out;
		}
	}
	if ((r = sites_from_json(l, j, e)) < 0) {
		kerr_prefix(e, "%s", path);
		goto out;
	}
	*out = l;
	l = NULL;
out:
	lab_free(l);
	json_decref(j);
	free(path);
	return r;
}

int lab_list(struct strv *names, struct kerr *e)
{
	DIR *d = opendir(LAB_RUNTIME_DIR);
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0 : kerr_set(e, -errno, "%s: %s", LAB_RUNTIME_DIR,
						      strerror(errno));
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > 5 && str_ends(de->d_name, ".json")) {
			char *name = xstrndup(de->d_name, n - 5);
			if (lab_name_valid(name))
				strv_take(names, name);
			else
				free(name);
		}
	}
	closedir(d);
	/* Sorted, so "the only lab" and listings are stable. */
	for (size_t i = 1; i < names->n; i++)
		for (size_t k = i; k > 0 && strcmp(names->v[k - 1], names->v[k]) > 0; k--) {
			char *t = names->v[k];
			names->v[k] = names->v[k - 1];
			names->v[k - 1] = t;
		}
	return 0;
}

int lab_resolve(const char *name_or_dir, char **name, struct kerr *e)
{
	int r = 0;

	*name = NULL;
	if (!name_or_dir) {
		struct strv names = STRV_INIT;
		if ((r = lab_list(&names, e)) < 0)
			return r;
		if (names.n == 1) {
			*name = xstrdup(names.v[0]);
		} else if (names.n == 0) {
			r = kerr_set(e, -ENOENT, "no lab exists (make one with 'kiln lab up')");
		} else {
			struct buf b;
			buf_init(&b, 0);
			for (size_t i = 0; i < names.n; i++)
				buf_printf(&b, "%s%s", i ? ", " : "", names.v[i]);
			r = kerr_set(e, -EINVAL, "several labs exist (%s): name one with --name",
				     b.s);
			buf_release(&b);
		}
		strv_release(&names);
		return r;
	}
	if (lab_name_valid(name_or_dir)) {
		char *p = lab_state_path(name_or_dir);
		bool there = path_exists(p);
		free(p);
		if (there) {
			*name = xstrdup(name_or_dir);
			return 0;
		}
	}
	char *marker = path_join(name_or_dir, "/" LAB_MARKER_FILE);
	struct buf b;
	buf_init(&b, 256);
	r = file_read(marker, &b, 256);
	if (r == 0) {
		str_trim(b.s);
		if (lab_name_valid(b.s))
			*name = xstrdup(b.s);
		else
			r = kerr_set(e, -EINVAL, "%s: not a lab name", marker);
	} else {
		r = kerr_set(e, -ENOENT, "no lab '%s' (neither a running lab's name nor a lab directory)",
			     name_or_dir);
	}
	buf_release(&b);
	free(marker);
	return r;
}

/* Resolve and load a running lab. */
int lab_open(const char *name_or_dir, struct lab **out, struct kerr *e)
{
	char *name = NULL;
	int r;

	*out = NULL;
	if (geteuid() != 0)
		return kerr_set(e, -EPERM, "kiln lab needs root (it makes namespaces and mounts)");
	if ((r = lab_resolve(name_or_dir, &name, e)) < 0)
		return r;
	r = lab_load(name, out, e);
	free(name);
	return r;
}
