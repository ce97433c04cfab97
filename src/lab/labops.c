/*
 * kiln lab: what is done to a running lab's hosts — exec, sshd stop and
 * start, new host keys, reboots and their BMCs' power and boot device.
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

/* Resolve lab and host for the per-host operations. */
static int lab_open_host(const char *name_or_dir, const char *host, struct lab **l,
			 struct lab_host **h, struct kerr *e)
{
	int r = lab_open(name_or_dir, l, e);

	if (r < 0)
		return r;
	*h = lab_host_find(*l, host);
	if (!*h) {
		r = kerr_set(e, -ENOENT, "lab '%s' has no host '%s'", (*l)->name, host);
		lab_free(*l);
		*l = NULL;
	}
	return r;
}

int lab_exec(const char *name_or_dir, const char *host, char *const argv[],
	     int *exit_status, struct kerr *e)
{
	struct lab *l;
	struct lab_host *h;
	int r;

	if (!argv || !argv[0])
		return kerr_set(e, -EINVAL, "no command to run");
	if ((r = lab_open_host(name_or_dir, host, &l, &h, e)) < 0)
		return r;
	if (h->power_off && !host_alive(h))
		r = kerr_set(e, -EHOSTDOWN, "%s is powered off (kiln power on %s)", h->name, h->name);
	else
		r = host_exec(h, argv, exit_status, e);
	lab_free(l);
	return r;
}

int lab_sshd_stop(const char *name_or_dir, const char *host, struct kerr *e)
{
	struct lab *l;
	struct lab_host *h;
	int r;

	if ((r = lab_open_host(name_or_dir, host, &l, &h, e)) < 0)
		return r;
	r = host_sshd_kill(h, e);
	lab_free(l);
	return r;
}

int lab_sshd_start(const char *name_or_dir, const char *host, struct kerr *e)
{
	struct lab *l;
	struct lab_host *h;
	int r;

	if ((r = lab_open_host(name_or_dir, host, &l, &h, e)) < 0)
		return r;
	if ((r = host_sshd_signal_start(h, e)) == 0)
		r = hosts_wait_sshd(&h, 1, LAB_SSHD_WAIT_MS, e);
	lab_free(l);
	return r;
}

int lab_rekey(const char *name_or_dir, const char *host, struct kerr *e)
{
	struct lab *l;
	struct lab_host *h;
	int r;

	if ((r = lab_open_host(name_or_dir, host, &l, &h, e)) < 0)
		return r;
	char *key = lab_host_path(h, "ssh/ssh_host_ed25519_key");
	char *comment = xasprintf("root@%s", h->name);
	/* sshd reads its host key at start, so stop, replace, start. */
	if ((r = host_sshd_kill(h, e)) == 0 && (r = lab_keygen(key, comment, e)) == 0 &&
	    (r = host_sshd_signal_start(h, e)) == 0)
		r = hosts_wait_sshd(&h, 1, LAB_SSHD_WAIT_MS, e);
	free(key);
	free(comment);
	lab_free(l);
	return r;
}

const char *lab_default_init(void)
{
	return host_systemd_usable(NULL) == 0 ? "systemd" : "tiny";
}

static int lab_open_locked(const char *name_or_dir, const char *host, struct lab **l,
			   struct lab_host **h, int *lock, struct kerr *e);

int lab_reboot(const char *name_or_dir, const char *host, struct kerr *e)
{
	struct lab *l;
	struct lab_host *h;
	int fd = -1, lock = -1, r;

	if ((r = lab_open_locked(name_or_dir, host, &l, &h, &lock, e)) < 0)
		return r;
	/* Same upper dirs, addresses and host key: only the processes change. */
	if ((r = host_stop(h, LAB_REBOOT_STOP_MS, e)) < 0)
		goto out;
	h->pid = 0;
	h->start = 0;
	h->power_off = false;
	if ((r = host_spawn(h, &fd, e)) < 0) {
		lab_save(l, NULL);
		goto out;
	}
	if ((r = lab_save(l, e)) < 0) {
		close(fd);
		goto out;
	}
	if ((r = host_read_report(fd, h, LAB_REPORT_WAIT_MS, e)) == 0)
		r = hosts_wait_sshd(&h, 1, LAB_SSHD_WAIT_MS, e);
out:
	lab_free(l);
	close(lock);
	return r;
}

/*
 * Open a lab and one host under the lab's lock (a file in its runtime
 * tmpfs, *lock; close it to release), read after the lock is held: the
 * BMC actions of several nodes and reboot change processes and the state
 * file one at a time.
 */
static int lab_open_locked(const char *name_or_dir, const char *host, struct lab **l,
			   struct lab_host **h, int *lock, struct kerr *e)
{
	int r = lab_open_host(name_or_dir, host, l, h, e);

	*lock = -1;
	if (r < 0)
		return r;
	char *p = xasprintf("%s/lock", (*l)->rt), *name = xstrdup((*l)->name);
	lab_free(*l);
	*l = NULL;
	*lock = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*lock < 0)
		r = kerr_set(e, -errno, "%s: %s", p, strerror(errno));
	while (r == 0 && flock(*lock, LOCK_EX) < 0)
		if (errno != EINTR)
			r = kerr_set(e, -errno, "lock %s: %s", p, strerror(errno));
	if (r == 0)
		r = lab_open_host(name, host, l, h, e);
	if (r < 0 && *lock >= 0) {
		close(*lock);
		*lock = -1;
	}
	free(p);
	free(name);
	return r;
}

/* Power a BMC's host off (the reboot's stop half) or on (its start half). */
static int bmc_power(struct lab *l, struct lab_host *h, bool on, struct kerr *e)
{
	int fd = -1, r;

	if (!on) {
		if ((r = host_stop(h, LAB_REBOOT_STOP_MS, e)) < 0)
			return r;
		h->pid = 0;
		h->start = 0;
		h->power_off = true;
		return lab_save(l, e);
	}
	h->power_off = false;
	if (host_alive(h))
		return lab_save(l, e);
	if ((r = host_spawn(h, &fd, e)) < 0) {
		h->power_off = true;
		lab_save(l, NULL);
		return r;
	}
	if ((r = lab_save(l, e)) < 0) {
		close(fd);
		return r;
	}
	/* Booted, not waited for: a real BMC answers before the OS is up. */
	return host_read_report(fd, h, LAB_REPORT_WAIT_MS, e);
}

static bool bootdev_valid(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 16)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

int lab_bmc_action(const char *name_or_dir, const char *host, char *const args[],
		   size_t nargs, struct buf *out, struct kerr *e)
{
	struct lab *l = NULL;
	struct lab_host *h;
	int lock = -1, r;
	bool get = nargs && !strcmp(args[0], "get"), set = nargs && !strcmp(args[0], "set");

	if (nargs < 2 || (!get && !set) || (set && (nargs - 1) % 2))
		return kerr_set(e, -EINVAL, "bmc-action: expected 'get PARAM...' or 'set PARAM VALUE...'");
	for (size_t i = 1; set && i < nargs; i += 2) {
		const char *k = args[i], *v = args[i + 1];
		if (!strcmp(k, "power") ? strcmp(v, "0") && strcmp(v, "1")
		    : !strcmp(k, "boot") ? !bootdev_valid(v)
		    : strcmp(k, "reset") && strcmp(k, "shutdown"))
			return kerr_set(e, -EINVAL, "bmc-action: cannot set %s to '%s'", k, v);
	}
	for (size_t i = 1; get && i < nargs; i++)
		if (strcmp(args[i], "power") && strcmp(args[i], "boot"))
			return kerr_set(e, -EINVAL, "bmc-action: unknown parameter '%s'", args[i]);
	r = get ? lab_open_host(name_or_dir, host, &l, &h, e)
		: lab_open_locked(name_or_dir, host, &l, &h, &lock, e);
	if (r < 0)
		return r;
	if (!h->bmc_netns) {
		r = kerr_set(e, -ENOENT, "host '%s' has no BMC", h->name);
		goto out;
	}
	for (size_t i = 1; get && i < nargs; i++)
		if (!strcmp(args[i], "power"))
			buf_printf(out, "power:%d\n", host_alive(h) ? 1 : 0);
		else
			buf_printf(out, "boot:%s\n", h->bootdev ? h->bootdev : "default");
	for (size_t i = 1; set && i < nargs && r == 0; i += 2) {
		const char *k = args[i], *v = args[i + 1];
		if (!strcmp(k, "power")) {
			r = bmc_power(l, h, !strcmp(v, "1"), e);
		} else if (!strcmp(k, "shutdown")) {
			r = bmc_power(l, h, false, e);
		} else if (!strcmp(k, "reset")) {
			/* A reset of a machine that is off leaves it off. */
			if (host_alive(h) && (r = bmc_power(l, h, false, e)) == 0)
				r = bmc_power(l, h, true, e);
		} else {
			free(h->bootdev);
			h->bootdev = xstrdup(v);
			r = lab_save(l, e);
		}
	}
out:
	lab_free(l);
	if (lock >= 0)
		close(lock);
	return r;
}
