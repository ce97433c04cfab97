/*
 * The process side of a lab host: the init that owns a host's mount, UTS
 * and PID namespaces (and runs its sshd), entering those namespaces for
 * `kiln lab exec`, and finding, stopping and starting a host's sshd.
 *
 * The init is forked from kiln, not exec'ed: it needs no program on disk,
 * and the host's whole setup (overlays, pivot_root) happens in C with the
 * error reported back over a pipe.  It is PID 1 of the host's PID
 * namespace, so killing it tears the host down; sshd is its child, so
 * sshd can die and be started again without losing the namespaces.
 */
#include "lab_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <unistd.h>

#define SSHD_PATH "/usr/sbin/sshd"
#define SYSTEMD_PATH "/lib/systemd/systemd"
/* The host's sshd under systemd: its own ssh.service in the host's /etc
 * (over Debian's), so `systemctl status ssh` answers as on a server. */
#define SSHD_UNIT "ssh.service"
#define CONSOLE_LOG_MAX (1 << 20)

static int host_systemctl_sshd(const struct lab_host *h, const char *verb, struct kerr *e);

/* The machine directories each host sees through its own overlay. */
static const char *const overlay_dirs[] = {
	"etc", "usr", "var", "root", "home", "opt", "srv",
};

unsigned long long proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* "pid (comm) S ppid ...": comm may hold spaces, so start after ')'. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return 0;
	p += 2;
	if (*p == 'Z' || *p == 'X')
		return 0;
	/* p is field 3 (state); starttime is field 22. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return 0;
		p++;
	}
	return strtoull(p, NULL, 10);
}

/* Parent pid and comm of a process; -errno when it is gone. */
static int proc_ppid_comm(pid_t pid, pid_t *ppid, char *comm, size_t n)
{
	char path[64], buf[1024];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -EIO;
	buf[len] = '\0';
	char *open_p = strchr(buf, '('), *close_p = strrchr(buf, ')');
	if (!open_p || !close_p || close_p < open_p || close_p[1] != ' ')
		return -EIO;
	size_t clen = (size_t)(close_p - open_p - 1);
	if (clen >= n)
		clen = n - 1;
	memcpy(comm, open_p + 1, clen);
	comm[clen] = '\0';
	if (close_p[2] == 'Z' || close_p[2] == 'X')
		return -ESRCH;
	*ppid = (pid_t)strtol(close_p + 4, NULL, 10);
	return 0;
}

bool host_alive(const struct lab_host *h)
{
	return h->pid > 0 && h->start && proc_start_time(h->pid) == h->start;
}

int host_prepare_fs(const struct lab_host *h, struct kerr *e)
{
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(overlay_dirs); i++) {
		char *lower = xasprintf("/%s", overlay_dirs[i]);
		char *upper = xasprintf("%s/fs/upper/%s", h->rt, overlay_dirs[i]);
		char *work = xasprintf("%s/fs/work/%s", h->rt, overlay_dirs[i]);
		struct stat st;

		/* The upper dir's owner and mode are what the host sees at /X. */
		if (lstat(lower, &st) == 0 && S_ISDIR(st.st_mode)) {
			if ((r = mkdir_p(upper, 0755)) < 0 || (r = mkdir_p(work, 0700)) < 0)
				kerr_set(e, r, "mkdir %s: %s", upper, strerror(-r));
			else if (chmod(upper, st.st_mode & 07777) < 0 ||
				 chown(upper, st.st_uid, st.st_gid) < 0)
				r = kerr_set(e, -errno, "%s: %s", upper, strerror(errno));
		}
		free(lower);
		free(upper);
		free(work);
		if (r < 0)
			return r;
	}
	char *root = xasprintf("%s/fs/root", h->rt);
	if ((r = mkdir_p(root, 0755)) < 0)
		kerr_set(e, r, "mkdir %s: %s", root, strerror(-r));
	free(root);
	return r;
}

/* ---- systemd hosts: cgroups and files ------------------------------- */

/*
 * The cgroup2 hierarchy hosts get a directory in: /sys/fs/cgroup/unified
 * on a hybrid (v1 + v2) machine, /sys/fs/cgroup on a unified one; NULL
 * when there is none.
 */
static const char *cgroup2_root(void)
{
	static const char *const roots[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
	struct statfs sf;

	for (size_t i = 0; i < ARRAY_SIZE(roots); i++)
		if (statfs(roots[i], &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
			return roots[i];
	return NULL;
}

/* The v1 "name=systemd" hierarchy of a hybrid machine, or NULL. */
static const char *cgroup_v1_systemd(void)
{
	struct statfs sf;

	if (statfs("/sys/fs/cgroup/systemd", &sf) == 0 && sf.f_type == CGROUP_SUPER_MAGIC)
		return "/sys/fs/cgroup/systemd";
	return NULL;
}

int host_systemd_usable(struct kerr *e)
{
	const char *root = cgroup2_root();

	if (access(SYSTEMD_PATH, X_OK) < 0)
		return kerr_set(e, -ENOENT, "%s is missing (apt-get install systemd, or --init tiny)",
				SYSTEMD_PATH);
	if (!root)
		return kerr_set(e, -ENOTSUP, "no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified (use --init tiny)");
	if (access(root, W_OK) < 0)
		return kerr_set(e, -errno, "%s: %s (use --init tiny)", root, strerror(errno));
	return 0;
}

/*
 * Each systemd host takes several of the machine's inotify instances
 * (systemd, journald, logind, dbus: ~4, counted per user, and every host's
 * root is the machine's root user).  Debian's fs.inotify.max_user_instances
 * of 128 stops a lab near 25 hosts (measured: node22's sshd never came up
 * at 50); raise it to leave SYSTEMD_INOTIFY_PER_HOST per host on top of
 * what the machine had.  Never lowered; a runtime value, not /etc.
 */
#define SYSTEMD_INOTIFY_PER_HOST 8
#define INOTIFY_INSTANCES "/proc/sys/fs/inotify/max_user_instances"

/* Raise a /proc/sys value to at least want; never lowers it.  0 when it is
 * high enough or the knob does not exist. */
static int raise_sysctl(const char *path, uint64_t want, const char *why, struct kerr *e)
{
	struct buf b;
	uint64_t cur = 0;

	buf_init(&b, 0);
	if (file_read(path, &b, 64) < 0 || parse_u64(str_trim(b.s), 0, UINT32_MAX, &cur) < 0) {
		buf_release(&b);
		return 0;   /* no such knob: nothing to raise */
	}
	buf_release(&b);
	if (cur >= want)
		return 0;
	char v[32];
	int n = snprintf(v, sizeof(v), "%llu\n", (unsigned long long)want);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, v, (size_t)n) != n) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return kerr_set(e, -err, "raising %s to %llu for %s: %s", path,
				(unsigned long long)want, why, strerror(err));
	}
	close(fd);
	return 0;
}

int host_systemd_limits(size_t nhosts, struct kerr *e)
{
	char why[64];
	int r;

	snprintf(why, sizeof(why), "%zu systemd hosts", nhosts);
	r = raise_sysctl(INOTIFY_INSTANCES, 128 + (uint64_t)nhosts * SYSTEMD_INOTIFY_PER_HOST,
			 why, e);
	if (r < 0) {
		char msg[sizeof(e->msg)];
		snprintf(msg, sizeof(msg), "%s", e->msg);
		kerr_set(e, r, "%s (or use --init tiny)", msg);
	}
	return r;
}

/*
 * The IPv4 neighbour table is one for every network namespace, its limits
 * the machine's (gc_thresh3 1024 on Debian).  Hosts that all talk to each
 * other — a full WireGuard mesh over the lab network — need about N^2
 * entries: at 50 hosts the kernel dropped packets ("neighbour table
 * overflow") and the mesh never came together (bench/mesh.sh).  Raise
 * gc_thresh2/3 to 2 N^2 + 1024 (the soft limit half of it); never lowered,
 * a runtime value.
 */
int host_neigh_limits(size_t nhosts, struct kerr *e)
{
	uint64_t n2 = (uint64_t)nhosts * nhosts;
	char why[64];
	int r;

	snprintf(why, sizeof(why), "%zu hosts", nhosts);
	if ((r = raise_sysctl("/proc/sys/net/ipv4/neigh/default/gc_thresh3", 2 * n2 + 1024,
			      why, e)) < 0)
		return r;
	return raise_sysctl("/proc/sys/net/ipv4/neigh/default/gc_thresh2", n2 + 512, why, e);
}

/* The host's cgroup directory under root: ROOT/kiln-lab-<netns>. */
static void host_cgroup_path(const struct lab_host *h, const char *root, char *dst, size_t n)
{
	snprintf(dst, n, "%s/kiln-lab-%s", root, h->netns);
}

/* rmdir dir and every directory under it, deepest first. */
static int cgroup_rmdir_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		char sub[4096];
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) >= sizeof(sub))
			continue;
		int q = cgroup_rmdir_tree(sub);
		if (q < 0 && !r)
			r = q;
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT && !r)
		r = -errno;
	return r;
}

int host_cgroups_remove(const struct lab_host *h, struct kerr *e)
{
	const char *roots[] = { cgroup2_root(), cgroup_v1_systemd() };
	int r = 0;

	if (!h->systemd)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		char dir[4096];
		if (!roots[i])
			continue;
		host_cgroup_path(h, roots[i], dir, sizeof(dir));
		/* A cgroup whose last process is still exiting stays busy briefly. */
		int64_t deadline = now_ms() + 5000;
		int q;
		while ((q = cgroup_rmdir_tree(dir)) == -EBUSY && now_ms() < deadline)
			sleep_ms(10);
		if (q < 0 && !r)
			r = kerr_set(e, q, "host '%s': remove cgroup %s: %s", h->name, dir,
				     strerror(-q));
	}
	return r;
}

/* Units no lab host should run: hardware, the machine's clock and network, gettys. */
static const char *const masked_units[] = {
	"getty@.service", "serial-getty@.service", "console-getty.service",
	"container-getty@.service", "getty-static.service",
	"systemd-udevd.service", "systemd-udevd-control.socket",
	"systemd-udevd-kernel.socket", "systemd-udev-trigger.service",
	"systemd-udev-settle.service", "systemd-hwdb-update.service",
	"systemd-networkd.service", "systemd-networkd.socket",
	"systemd-networkd-wait-online.service", "systemd-resolved.service",
	"systemd-timesyncd.service", "systemd-sysctl.service", "systemd-binfmt.service",
	"proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc.mount",
	"systemd-modules-load.service", "kmod-static-nodes.service",
	"sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
	"sys-fs-fuse-connections.mount", "dev-hugepages.mount",
	"systemd-pcrphase.service", "systemd-pcrphase-sysinit.service",
	"systemd-pcrphase-initrd.service", "systemd-repart.service",
	"systemd-journald-audit.socket", "systemd-remount-fs.service",
	"systemd-pstore.service", "systemd-random-seed.service",
	/* Socket activation of the machine's sshd: the host runs kiln's
	 * (SSHD_UNIT, whose file replaces the machine's ssh.service). */
	"ssh.socket",
};

static int text_file(const char *path, const char *text, mode_t mode, struct kerr *e)
{
	int r = file_write_atomic(path, text, strlen(text), mode, -1, -1);
	if (r < 0)
		kerr_set(e, r, "write %s: %s", path, strerror(-r));
	return r;
}

static int link_or_fail(const char *target, const char *path, struct kerr *e)
{
	unlink(path);
	if (symlink(target, path) < 0)
		return kerr_set(e, -errno, "symlink %s: %s", path, strerror(errno));
	return 0;
}

/* mkdir -p under the host's upper dir; fail with the path. */
static int upper_mkdir(const char *path, struct kerr *e)
{
	int r = mkdir_p(path, 0755);
	if (r < 0)
		kerr_set(e, r, "mkdir %s: %s", path, strerror(-r));
	return r;
}

/* Every generator the machine has, masked, so the host's units are ours alone. */
static int mask_generators(const char *gen, struct kerr *e)
{
	static const char *const dirs[] = {
		"/lib/systemd/system-generators", "/usr/lib/systemd/system-generators",
		"/etc/systemd/system-generators",
	};
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(dirs) && r == 0; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;
		if (!d)
			continue;
		while (r == 0 && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char *p = xasprintf("%s/%s", gen, de->d_name);
			r = link_or_fail("/dev/null", p, e);
			free(p);
		}
		closedir(d);
	}
	return r;
}

int host_systemd_files(const struct lab_host *h, struct kerr *e)
{
	char *up = NULL, *sys = NULL, *p = NULL, *text = NULL;
	unsigned char id[16];
	char hex[33];
	DIR *d = NULL;
	int r, fd;

	if (!h->systemd)
		return 0;
	up = xasprintf("%s/fs/upper", h->rt);
	sys = xasprintf("%s/etc/systemd/system", up);
	/* Its own machine id (journald, dbus), random. */
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, id, sizeof(id)) != (ssize_t)sizeof(id)) {
		r = kerr_set(e, -EIO, "read /dev/urandom: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	for (size_t i = 0; i < sizeof(id); i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	p = xasprintf("%s/etc/machine-id", up);
	text = xasprintf("%s\n", hex);
	if ((r = text_file(p, text, 0444, e)) < 0 || (r = upper_mkdir(sys, e)) < 0)
		goto out;
	/* The machine's enabled units stay the machine's: every .wants dir empty. */
	d = opendir("/etc/systemd/system");
	for (struct dirent *de; d && (de = readdir(d));) {
		if (!str_ends(de->d_name, ".wants") && !str_ends(de->d_name, ".requires"))
			continue;
		free(p);
		p = xasprintf("%s/%s", sys, de->d_name);
		if ((r = upper_mkdir(p, e)) < 0)
			goto out;
		if (setxattr(p, "trusted.overlay.opaque", "y", 1, 0) < 0) {
			r = kerr_set(e, -errno, "mark %s opaque: %s", p, strerror(errno));
			goto out;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(masked_units); i++) {
		free(p);
		p = xasprintf("%s/%s", sys, masked_units[i]);
		if ((r = link_or_fail("/dev/null", p, e)) < 0)
			goto out;
	}
	free(p);
	p = xasprintf("%s/etc/systemd/system-generators", up);
	if ((r = upper_mkdir(p, e)) < 0 || (r = mask_generators(p, e)) < 0)
		goto out;
	free(p);
	p = xasprintf("%s/etc/systemd/journald.conf.d", up);
	if ((r = upper_mkdir(p, e)) < 0)
		goto out;
	free(p);
	p = xasprintf("%s/etc/systemd/journald.conf.d/kiln-lab.conf", up);
	if ((r = text_file(p, "# kiln lab: the journal lives in /run only\n"
			   "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n", 0644, e)) < 0)
		goto out;
	/* kiln's sshd, as a unit: the same config the tiny init runs. */
	free(p);
	free(text);
	p = xasprintf("%s/%s", sys, SSHD_UNIT);
	text = xasprintf("# kiln lab: the sshd of host '%s' (kiln lab sshd stop|start)\n"
			 "[Unit]\nDescription=OpenBSD Secure Shell server (kiln lab)\n"
			 "After=network.target\n\n"
			 "[Service]\nExecStart=%s -D -f %s/ssh/sshd_config -E %s/ssh/sshd.log\n"
			 "RuntimeDirectory=sshd\nRuntimeDirectoryMode=0755\n"
			 "RuntimeDirectoryPreserve=yes\n\n"
			 "[Install]\nWantedBy=multi-user.target\n",
			 h->name, SSHD_PATH, h->rt, h->rt);
	if ((r = text_file(p, text, 0644, e)) < 0)
		goto out;
	free(p);
	p = xasprintf("%s/multi-user.target.wants", sys);
	if ((r = upper_mkdir(p, e)) < 0)
		goto out;
	free(p);
	p = xasprintf("%s/multi-user.target.wants/%s", sys, SSHD_UNIT);
	if ((r = link_or_fail("/etc/systemd/system/" SSHD_UNIT, p, e)) < 0)
		goto out;
	/* Debian's alias, pointing at the host's unit, not the machine's */
	free(p);
	p = xasprintf("%s/sshd.service", sys);
	if ((r = link_or_fail("/etc/systemd/system/" SSHD_UNIT, p, e)) < 0)
		goto out;
	/* Debian's policy-rc.d (if any) forbids starting services: hide it. */
	if (access("/usr/sbin/policy-rc.d", F_OK) == 0) {
		free(p);
		p = xasprintf("%s/usr/sbin", up);
		if ((r = upper_mkdir(p, e)) < 0)
			goto out;
		free(p);
		p = xasprintf("%s/usr/sbin/policy-rc.d", up);
		unlink(p);
		if (mknod(p, S_IFCHR | 0000, makedev(0, 0)) < 0) {
			r = kerr_set(e, -errno, "whiteout %s: %s", p, strerror(errno));
			goto out;
		}
	}
	r = 0;
out:
	if (d)
		closedir(d);
	free(up);
	free(sys);
	free(p);
	free(text);
	return r;
}

/* ---- the init ------------------------------------------------------- */

/* Report a failed setup step over the pipe and end the init. */
static _Noreturn void init_fail(int fd, const char *what, const char *arg, int err)
{
	dprintf(fd, "%s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "",
		strerror(err));
	_exit(1);
}

/* Format a path for the init into a 4096-byte buffer; too long ends the init. */
static void PRINTF(3, 4) init_path(int fd, char *dst, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, 4096, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= 4096)
		init_fail(fd, "path too long:", fmt, ENAMETOOLONG);
}

static bool is_overlay_dir(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(overlay_dirs); i++)
		if (!strcmp(name, overlay_dirs[i]))
			return true;
	return false;
}

/*
 * Mirror the machine's top level in newroot: its symlinks (bin -> usr/bin
 * on merged-/usr systems), an overlay for each overlay_dirs entry, and
 * empty directories for everything else (mount points filled later or
 * left empty: the host does not see /work, /boot, ...).
 */
static void init_build_root(int fd, const char *newroot, const char *rt)
{
	char src[4096], dst[4096], opts[8192];
	DIR *d = opendir("/");
	struct dirent *de;

	if (!d)
		init_fail(fd, "opendir", "/", errno);
	while ((de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		init_path(fd, src, "/%s", de->d_name);
		init_path(fd, dst, "%s/%s", newroot, de->d_name);
		if (lstat(src, &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t n = readlink(src, target, sizeof(target) - 1);
			if (n < 0)
				continue;
			target[n] = '\0';
			if (symlink(target, dst) < 0)
				init_fail(fd, "symlink", dst, errno);
			continue;
		}
		if (!S_ISDIR(st.st_mode))
			continue;
		if (mkdir(dst, st.st_mode & 07777) < 0 || chmod(dst, st.st_mode & 07777) < 0 ||
		    chown(dst, st.st_uid, st.st_gid) < 0)
			init_fail(fd, "mkdir", dst, errno);
		if (!is_overlay_dir(de->d_name))
			continue;
		snprintf(opts, sizeof(opts),
			 "lowerdir=%s,upperdir=%s/fs/upper/%s,workdir=%s/fs/work/%s",
			 src, rt, de->d_name, rt, de->d_name);
		if (mount("overlay", dst, "overlay", 0, opts) < 0)
			init_fail(fd, "overlay mount on", src, errno);
	}
	closedir(d);
}

/* Mount fstype at newroot/sub (which must exist); fail the init on error. */
static void init_mount(int fd, const char *newroot, const char *sub, const char *src,
		       const char *fstype, unsigned long flags, const char *data)
{
	char dst[4096];

	init_path(fd, dst, "%s/%s", newroot, sub);
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		init_fail(fd, "mkdir", dst, errno);
	if (mount(src, dst, fstype, flags, data) < 0)
		init_fail(fd, "mount on", dst, errno);
}

/* Fork sshd -D as the init's child; returns its pid or 0. */
static pid_t init_start_sshd(char *cfg, char *log)
{
	sigset_t none;
	pid_t pid;

	pid = fork();
	if (pid != 0)
		return pid < 0 ? 0 : pid;
	char *const argv[] = { SSHD_PATH, "-D", "-f", cfg, "-E", log, NULL };
	char *const envp[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		NULL,
	};
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(SSHD_PATH, argv, envp);
	_exit(127);
}

/* Capabilities a systemd host's processes never get (its bounding set). */
static const int dropped_caps[] = {
	CAP_SYS_MODULE, CAP_SYS_TIME, CAP_SYS_RAWIO, CAP_WAKE_ALARM,
	CAP_BLOCK_SUSPEND, CAP_SYSLOG, CAP_MAC_ADMIN, CAP_MAC_OVERRIDE, CAP_SYS_PACCT,
};

/*
 * The systemd host's part of the init, before pivot_root: its cgroup2
 * view at /sys/fs/cgroup (rooted at its cgroup namespace), /sys read-only,
 * and the console pty on /dev/console.
 */
static void init_systemd_pre(int fd, const char *newroot, const char *console)
{
	char path[4096];

	init_mount(fd, newroot, "sys/fs/cgroup", "cgroup2", "cgroup2",
		   MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	init_path(fd, path, "%s/sys", newroot);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV |
		  MS_NOEXEC, NULL) < 0)
		init_fail(fd, "remount read-only", path, errno);
	init_path(fd, path, "%s/dev/console", newroot);
	int c = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (c < 0)
		init_fail(fd, "create", path, errno);
	close(c);
	if (mount(console, path, NULL, MS_BIND, NULL) < 0)
		init_fail(fd, "bind mount", console, errno);
}

/*
 * After pivot_root: /proc/sys read-only but for the host's own network
 * sysctls, then exec systemd with a reduced bounding set.  Reports "ok"
 * first: from here on the host's sshd comes from systemd.
 */
static _Noreturn void init_systemd_exec(int fd)
{
	sigset_t none;

	/* A bind inherits its source's flags: bind net while /proc/sys is still rw. */
	if (mount("/proc/sys", "/proc/sys", NULL, MS_BIND | MS_REC, NULL) < 0 ||
	    mount("/proc/sys/net", "/proc/sys/net", NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID |
		  MS_NODEV | MS_NOEXEC, NULL) < 0)
		init_fail(fd, "read-only", "/proc/sys", errno);
	for (size_t i = 0; i < ARRAY_SIZE(dropped_caps); i++)
		if (prctl(PR_CAPBSET_DROP, dropped_caps[i], 0, 0, 0) < 0 && errno != EINVAL)
			init_fail(fd, "drop capability", NULL, errno);
	if (access(SYSTEMD_PATH, X_OK) < 0)
		init_fail(fd, "exec", SYSTEMD_PATH, errno);
	if (write(fd, "ok\n", 3) != 3)
		_exit(1);
	close(fd);
	char *const argv[] = { "systemd", "systemd.unit=multi-user.target",
			       "systemd.show_status=0", NULL };
	char *const envp[] = { "container=kiln-lab", NULL };
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(SYSTEMD_PATH, argv, envp);
	_exit(127);
}

/*
 * PID 1 of a host.  Builds the root filesystem, pivots into it, reports
 * "ok" on fd.  A systemd host then execs systemd (console: the pty slave
 * to bind on /dev/console).  The tiny init starts sshd, then reaps
 * children forever: SIGUSR1 starts sshd when it is not running; SIGTERM
 * (and SIGINT, SIGHUP) end the host.
 */
static _Noreturn void init_main(const struct lab_host *h, int fd, const char *console)
{
	char newroot[4096], path[4096], cfg[4096], log[4096], why[512];
	sigset_t set;
	pid_t sshd;
	int r;

	setsid();
	prctl(PR_SET_NAME, "kiln-lab-init");
	if (fd > 3)
		syscall(SYS_close_range, 3, fd - 1, 0);
	syscall(SYS_close_range, fd + 1, ~0U, 0);
	lab_stdio_devnull();
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		init_fail(fd, "make / private", NULL, errno);
	init_path(fd, newroot, "%s/fs/root", h->rt);
	init_path(fd, cfg, "%s/ssh/sshd_config", h->rt);
	init_path(fd, log, "%s/ssh/sshd.log", h->rt);
	if (mount("tmpfs", newroot, "tmpfs", 0, "mode=0755") < 0)
		init_fail(fd, "tmpfs on", newroot, errno);
	init_build_root(fd, newroot, h->rt);

	/* A private /dev: the host's GPU and disk nodes are its own (hw.c). */
	if ((r = hw_init_dev(h, newroot, why, sizeof(why))) < 0)
		init_fail(fd, why, NULL, -r);
	init_mount(fd, newroot, "dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
		   "newinstance,ptmxmode=0666,mode=0620,gid=5");
	init_mount(fd, newroot, "dev/shm", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV,
		   "mode=1777");
	init_mount(fd, newroot, "sys", "sysfs", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		   NULL);
	/* Its PCI functions and disks, over the fresh sysfs. */
	if ((r = hw_init_sys(h, newroot, why, sizeof(why))) < 0)
		init_fail(fd, why, NULL, -r);
	if (h->systemd)
		init_systemd_pre(fd, newroot, console);
	init_mount(fd, newroot, "run", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	init_mount(fd, newroot, "tmp", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	init_path(fd, path, "%s/run/sshd", newroot);
	if (mkdir(path, 0755) < 0)
		init_fail(fd, "mkdir", path, errno);
	init_path(fd, path, "%s/run/lock", newroot);
	if (mkdir(path, 01777) < 0 || chmod(path, 01777) < 0)
		init_fail(fd, "mkdir", path, errno);
	/* The host's sshd files, at the same path inside as outside. */
	init_path(fd, path, "%s%s/ssh", newroot, h->rt);
	if (mkdir_p(path, 0700) < 0)
		init_fail(fd, "mkdir", path, errno);
	char sshdir[4096];
	init_path(fd, sshdir, "%s/ssh", h->rt);
	if (mount(sshdir, path, NULL, MS_BIND, NULL) < 0)
		init_fail(fd, "bind mount", sshdir, errno);

	/* Leave the machine's tree behind: only newroot's mounts stay. */
	if (chdir(newroot) < 0)
		init_fail(fd, "chdir", newroot, errno);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		init_fail(fd, "pivot_root", newroot, errno);
	if (umount2(".", MNT_DETACH) < 0)
		init_fail(fd, "detach old root", NULL, errno);
	if (chdir("/") < 0)
		init_fail(fd, "chdir", "/", errno);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		init_fail(fd, "mount", "/proc", errno);
	if ((r = hw_init_mounts(h, why, sizeof(why))) < 0)
		init_fail(fd, why, NULL, -r);
	if (sethostname(h->name, strlen(h->name)) < 0)
		init_fail(fd, "sethostname", h->name, errno);
	if (h->systemd)
		init_systemd_exec(fd);
	if (write(fd, "ok\n", 3) != 3)
		_exit(1);
	close(fd);

	sshd = init_start_sshd(cfg, log);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si), st;
		pid_t w;

		if (sig < 0)
			continue;
		/* Reap first, so a SIGUSR1 right after sshd died restarts it. */
		while ((w = waitpid(-1, &st, WNOHANG)) > 0)
			if (w == sshd)
				sshd = 0;
		if (sig == SIGUSR1 && !sshd)
			sshd = init_start_sshd(cfg, log);
		else if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
			kill(-1, SIGKILL);
			_exit(0);
		}
	}
}

/*
 * The console of a systemd host: drain the pty master into
 * h->rt/console.log (at most CONSOLE_LOG_MAX bytes kept) for as long as
 * the host lives.  It holds the slave open itself, so the master never
 * reads EOF; it lives in the host's network namespace, where teardown
 * and host_stop() kill it.
 */
static _Noreturn void console_drain(const struct lab_host *h, int master, const char *slave)
{
	char path[4096], buf[4096];
	size_t kept = 0;

	prctl(PR_SET_NAME, "kiln-lab-cons");
	prctl(PR_SET_PDEATHSIG, 0);
	if (master != 3) {
		if (dup2(master, 3) < 0)
			_exit(1);
		master = 3;
	}
	syscall(SYS_close_range, 4, ~0U, 0);
	lab_stdio_devnull();
	int keep = open(slave, O_RDWR | O_NOCTTY);
	snprintf(path, sizeof(path), "%s/console.log", h->rt);
	int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	(void)keep;
	for (;;) {
		ssize_t n = read(master, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		if (log >= 0 && kept < CONSOLE_LOG_MAX) {
			size_t w = (size_t)n < CONSOLE_LOG_MAX - kept ? (size_t)n : CONSOLE_LOG_MAX - kept;
			if (write(log, buf, w) > 0)
				kept += w;
		}
	}
}

/*
 * A systemd host, before unsharing: its console pty (drained by a child
 * of ours) and its cgroup directories, which this process enters so the
 * new cgroup namespace is rooted there.  The init is forked after the
 * unshare, inside them; this process exits right after, leaving no
 * foreign process in the host's root cgroup.
 */
static void first_child_systemd(const struct lab_host *h, int report, char *console,
				size_t n)
{
	const char *roots[] = { cgroup2_root(), cgroup_v1_systemd() };
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (master < 0 || unlockpt(master) < 0 || ptsname_r(master, console, n) != 0)
		init_fail(report, "console pty for", h->name, errno);
	pid_t d = fork();
	if (d < 0)
		init_fail(report, "fork", NULL, errno);
	if (d == 0)
		console_drain(h, master, console);
	close(master);
	if (!roots[0])
		init_fail(report, "no cgroup2 hierarchy for", h->name, ENOTSUP);
	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		char dir[4096], procs[4200];
		if (!roots[i])
			continue;
		host_cgroup_path(h, roots[i], dir, sizeof(dir));
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			init_fail(report, "mkdir", dir, errno);
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
		int f = open(procs, O_WRONLY | O_CLOEXEC);
		if (f < 0 || write(f, "0\n", 2) != 2)
			init_fail(report, "enter cgroup", dir, errno);
		close(f);
	}
}

/* First process of a host: join its netns, unshare the rest, fork init. */
static _Noreturn void host_first_child(const struct lab_host *h, int netfd,
				       int report, int pidpipe)
{
	char console[128] = "";
	int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID;

	if (setns(netfd, CLONE_NEWNET) < 0)
		init_fail(report, "setns", h->netns, errno);
	/* A host never routes (the bastion reaches nodes by SSH forwarding),
	 * except a --sites bastion: its site's NAT router, filtered (sites.c). */
	const char *fwd = h->bastion && h->site ? "1\n" : "0\n";
	int f = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (f < 0 || write(f, fwd, 2) != 2)
		init_fail(report, "ip_forward=0 in", h->netns, errno);
	close(f);
	if (h->systemd) {
		first_child_systemd(h, report, console, sizeof(console));
		flags |= CLONE_NEWCGROUP;
	}
	if (unshare(flags) < 0)
		init_fail(report, "unshare", NULL, errno);
	pid_t pid = fork();
	if (pid < 0)
		init_fail(report, "fork", NULL, errno);
	if (pid == 0) {
		close(pidpipe);
		init_main(h, report, console);
	}
	if (write(pidpipe, &pid, sizeof(pid)) != sizeof(pid))
		_exit(1);
	_exit(0);
}

/*
 * The keeper of a systemd host: the first child's parent and a child
 * subreaper, so the host's init becomes its child when the first child
 * exits and it learns how the init ended.  An init killed by SIGHUP is a
 * reboot from inside the host (reboot(2) in a PID namespace: `systemctl
 * reboot`, as systemd-nspawn reads it): the keeper starts the host again,
 * as `kiln lab reboot` would (same upper layers, addresses and key), and
 * exits; any other end (lab down, lab reboot's poweroff, a BMC power off)
 * and it just exits.  It forwards the init's pid to host_spawn.
 */
static _Noreturn void keeper_main(struct lab_host *h, int netfd, int report, int pidpipe)
{
	int kp[2];
	pid_t first, init = 0, w;
	int st;

	prctl(PR_SET_NAME, "kiln-lab-keep");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 || pipe2(kp, O_CLOEXEC) < 0)
		init_fail(report, "keeper for", h->name, errno);
	first = fork();
	if (first < 0)
		init_fail(report, "fork", NULL, errno);
	if (first == 0) {
		close(kp[0]);
		close(pidpipe);
		host_first_child(h, netfd, report, kp[1]);
	}
	close(kp[1]);
	while (read(kp[0], &init, sizeof(init)) < 0 && errno == EINTR)
		;
	if (write(pidpipe, &init, sizeof(init)) != sizeof(init) || init <= 0)
		_exit(1);
	/* nothing of kiln's: no lock, no pipe, no terminal */
	char *lab = xstrdup(h->rt), *slash = strrchr(lab, '/');
	char *host = xstrdup(h->name);
	if (!slash)
		_exit(1);
	*slash = '\0';
	slash = strrchr(lab, '/');
	memmove(lab, slash ? slash + 1 : lab, strlen(slash ? slash + 1 : lab) + 1);
	syscall(SYS_close_range, 3, ~0U, 0);
	lab_stdio_devnull();
	setsid();
	for (;;) {
		while ((w = waitpid(-1, &st, 0)) < 0 && errno == EINTR)
			;
		if (w < 0)
			_exit(0);
		if (w != init)
			continue;             /* the first child, the console drainer */
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGHUP)
			_exit(0);
		struct kerr e = { 0 };
		_exit(lab_reboot(lab, host, &e) < 0 ? 1 : 0);
	}
}

int host_spawn(struct lab_host *h, int *report_fd, struct kerr *e)
{
	char nspath[4096];
	int report[2] = { -1, -1 }, pidp[2] = { -1, -1 }, netfd, r = 0;
	pid_t first, init = 0;

	snprintf(nspath, sizeof(nspath), "/run/netns/%s", h->netns);
	netfd = open(nspath, O_RDONLY | O_CLOEXEC);
	if (netfd < 0)
		return kerr_set(e, -errno, "host '%s': %s: %s", h->name, nspath,
				strerror(errno));
	if (pipe2(report, O_CLOEXEC) < 0 || pipe2(pidp, O_CLOEXEC) < 0) {
		r = kerr_set(e, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	first = fork();
	if (first < 0) {
		r = kerr_set(e, -errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (first == 0) {
		close(report[0]);
		close(pidp[0]);
		if (h->systemd)
			keeper_main(h, netfd, report[1], pidp[1]);
		host_first_child(h, netfd, report[1], pidp[1]);
	}
	close(report[1]);
	close(pidp[1]);
	report[1] = pidp[1] = -1;
	ssize_t n;
	while ((n = read(pidp[0], &init, sizeof(init))) < 0 && errno == EINTR)
		;
	/* a systemd host's keeper stays (and is reaped by whoever inherits
	 * it); a tiny host's first child exits once init is forked */
	while (!h->systemd && waitpid(first, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(init) || init <= 0) {
		/* The first child failed; its reason is on the report pipe. */
		r = host_read_report(report[0], h, 5000, e);
		report[0] = -1;
		if (r == 0)
			r = kerr_set(e, -EIO, "host '%s': could not start its init", h->name);
		goto out;
	}
	h->pid = init;
	h->start = proc_start_time(init);
	*report_fd = report[0];
	report[0] = -1;
out:
	close(netfd);
	for (int i = 0; i < 2; i++) {
		if (report[i] >= 0)
			close(report[i]);
		if (pidp[i] >= 0)
			close(pidp[i]);
	}
	return r;
}

int lab_stdio_devnull(void)
{
	int devnull = open("/dev/null", O_RDWR);
	if (devnull < 0)
		return -errno;
	dup2(devnull, 0);
	dup2(devnull, 1);
	dup2(devnull, 2);
	if (devnull > 2)
		close(devnull);
	return 0;
}

int lab_read_report(int fd, int timeout_ms, const char *who, const char *what,
		    struct kerr *e)
{
	char msg[1024];
	size_t len = 0;
	int64_t deadline = now_ms() + timeout_ms;
	int r = 0;

	for (;;) {
		int left = (int)(deadline - now_ms());
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0) {
			r = kerr_set(e, -ETIMEDOUT, "%s: no word from its %s in %d ms", who, what,
				     timeout_ms);
			goto out;
		}
		int k = poll(&p, 1, left);
		if (k < 0 && errno != EINTR) {
			r = kerr_set(e, -errno, "poll: %s", strerror(errno));
			goto out;
		}
		if (k <= 0)
			continue;
		ssize_t n = read(fd, msg + len, sizeof(msg) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(msg, '\n', len) || len == sizeof(msg) - 1)
			break;
	}
	msg[len] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	if (strcmp(msg, "ok") != 0) {
		char clean[512];
		str_sanitize(clean, sizeof(clean), msg, strlen(msg));
		r = kerr_set(e, -EIO, "%s: setup failed: %s", who, *clean ? clean : "it died");
	}
out:
	close(fd);
	return r;
}

int host_read_report(int fd, const struct lab_host *h, int timeout_ms, struct kerr *e)
{
	char who[128];
	snprintf(who, sizeof(who), "host '%s'", h->name);
	return lab_read_report(fd, timeout_ms, who, "init", e);
}

/* ---- finding processes ---------------------------------------------- */

/* Is pid in the namespace (kind ns: "net", "pid") identified by dev/ino? */
static bool ns_same(pid_t pid, const char *ns, dev_t dev, ino_t ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, ns);
	return stat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

pid_t host_sshd_pid(const struct lab_host *h)
{
	char path[128], comm[64];
	struct buf b;
	pid_t found = 0;

	if (!host_alive(h))
		return 0;
	buf_init(&b, 1 << 20);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)h->pid, (int)h->pid);
	if (file_read(path, &b, 1 << 20) < 0)
		goto out;
	for (char *s = b.s, *tok; (tok = strtok_r(s, " \n", &s));) {
		pid_t pid = (pid_t)strtol(tok, NULL, 10), ppid;
		if (pid > 0 && proc_ppid_comm(pid, &ppid, comm, sizeof(comm)) == 0 &&
		    ppid == h->pid && !strcmp(comm, "sshd")) {
			found = pid;
			break;
		}
	}
out:
	buf_release(&b);
	return found;
}

/*
 * Signal every live process (not a zombie) that is in the namespace
 * (kind "pid" or "net") identified by dev/ino and, when comm is not NULL,
 * has that name.  Returns how many there were.
 */
static int kill_in_ns(const char *kind, dev_t dev, ino_t ino, const char *comm, int sig)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int count = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char c[64];
		pid_t pid, ppid;
		uint64_t v;
		if (parse_u64(de->d_name, 1, INT32_MAX, &v) < 0)
			continue;
		pid = (pid_t)v;
		if (pid == getpid() || !ns_same(pid, kind, dev, ino))
			continue;
		if (proc_ppid_comm(pid, &ppid, c, sizeof(c)) < 0)
			continue;
		if (comm && strcmp(c, comm))
			continue;
		kill(pid, sig);
		count++;
	}
	closedir(d);
	return count;
}

int host_sshd_kill(const struct lab_host *h, struct kerr *e)
{
	char path[64];
	struct stat st;

	if (!host_alive(h))
		return kerr_set(e, -ESRCH, "host '%s' is not running", h->name);
	/* Stopping the unit ends its sessions too (they are in its cgroup). */
	if (h->systemd) {
		int r = host_systemctl_sshd(h, "stop", e);
		if (r < 0)
			return r;
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)h->pid);
	if (stat(path, &st) < 0)
		return kerr_set(e, -errno, "%s: %s", path, strerror(errno));
	int64_t deadline = now_ms() + 10000;
	while (kill_in_ns("pid", st.st_dev, st.st_ino, "sshd", SIGKILL) > 0) {
		if (now_ms() > deadline)
			return kerr_set(e, -ETIMEDOUT, "host '%s': sshd does not die", h->name);
		sleep_ms(5);
	}
	return 0;
}

int host_sshd_signal_start(const struct lab_host *h, struct kerr *e)
{
	if (!host_alive(h))
		return kerr_set(e, -ESRCH, "host '%s' is not running", h->name);
	if (h->systemd)
		return host_systemctl_sshd(h, "start", e);
	if (kill(h->pid, SIGUSR1) < 0)
		return kerr_set(e, -errno, "host '%s': signal init: %s", h->name,
				strerror(errno));
	return 0;
}

int host_kill_netns(const char *const *netns, size_t n, const pid_t *pids,
		    const unsigned long long *starts, size_t npids, struct kerr *e)
{
	struct stat *ids = xcalloc(n ? n : 1, sizeof(*ids));
	bool *have = xcalloc(n ? n : 1, sizeof(*have));
	int r = 0;

	/* Killing an init ends every process of its PID namespace. */
	for (size_t i = 0; i < npids; i++)
		if (pids[i] > 0 && starts[i] && proc_start_time(pids[i]) == starts[i])
			kill(pids[i], SIGKILL);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "/run/netns/%s", netns[i]);
		have[i] = stat(path, &ids[i]) == 0;
	}
	int64_t deadline = now_ms() + 10000;
	for (;;) {
		int left = 0;
		for (size_t i = 0; i < npids; i++)
			if (pids[i] > 0 && starts[i] && proc_start_time(pids[i]) == starts[i])
				left++;
		for (size_t i = 0; i < n; i++)
			if (have[i])
				left += kill_in_ns("net", ids[i].st_dev, ids[i].st_ino, NULL,
						   SIGKILL);
		if (!left)
			break;
		if (now_ms() > deadline) {
			r = kerr_set(e, -ETIMEDOUT, "%d lab processes do not die", left);
			break;
		}
		sleep_ms(5);
	}
	free(ids);
	free(have);
	return r;
}

/* ---- waiting for sshd ----------------------------------------------- */

/* Child side of hosts_wait_sshd(): probe each host from inside its netns. */
static _Noreturn void probe_child(struct lab_host *const *hs, size_t n, int64_t deadline,
				  int out)
{
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(22) };
		int nfd;

		snprintf(path, sizeof(path), "/run/netns/%s", hs[i]->netns);
		nfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0 ||
		    inet_pton(AF_INET, hs[i]->addr, &sa.sin_addr) != 1)
			goto fail;
		close(nfd);
		for (;;) {
			int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (s < 0)
				goto fail;
			int ok = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
			close(s);
			if (ok)
				break;
			if (now_ms() > deadline)
				goto fail;
			sleep_ms(5);
		}
		continue;
fail:;
		uint32_t idx = (uint32_t)i;
		if (write(out, &idx, sizeof(idx)) < 0)
			_exit(2);
		_exit(1);
	}
	_exit(0);
}

int hosts_wait_sshd(struct lab_host *const *hs, size_t n,
		    int timeout_ms, struct kerr *e)
{
	int p[2], st = 0, r = 0;
	uint32_t idx = UINT32_MAX;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return kerr_set(e, -errno, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = kerr_set(e, -errno, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		close(p[0]);
		probe_child(hs, n, now_ms() + timeout_ms, p[1]);
	}
	close(p[1]);
	ssize_t got;
	while ((got = read(p[0], &idx, sizeof(idx))) < 0 && errno == EINTR)
		;
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (got == (ssize_t)sizeof(idx) && idx < n) {
		/* sshd's own last word is usually the reason. */
		char *logpath = xasprintf("%s/ssh/sshd.log", hs[idx]->rt), last[512] = "";
		struct buf b;
		buf_init(&b, 0);
		if (file_read(logpath, &b, 1 << 20) == 0) {
			while (b.len && b.s[b.len - 1] == '\n')
				b.s[--b.len] = '\0';
			const char *tail = strrchr(b.s, '\n');
			tail = tail ? tail + 1 : b.s;
			str_sanitize(last, sizeof(last), tail, strlen(tail));
		}
		r = kerr_set(e, -ETIMEDOUT, "host '%s': sshd does not accept on %s:22 after %d ms%s%s",
			     hs[idx]->name, hs[idx]->addr, timeout_ms, *last ? ": sshd: " : "",
			     last);
		buf_release(&b);
		free(logpath);
		return r;
	}
	return kerr_set(e, -EIO, "probing sshd failed");
}

/* ---- exec ----------------------------------------------------------- */

struct exec_fail {
	int step;   /* 0 = setns, 1 = exec */
	int err;
};

/* host_exec(); quiet: the command's stdio is /dev/null. */
static int host_exec_io(const struct lab_host *h, char *const argv[], int *exit_status,
			bool quiet, struct kerr *e)
{
	static const char *const kinds[] = { "net", "uts", "ipc", "pid", "mnt" };
	/* ipc: hosts have their own System V IPC too (see host_first_child). */
	static const int types[] = { CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC,
				     CLONE_NEWPID, CLONE_NEWNS };
	int fds[ARRAY_SIZE(kinds)], p[2] = { -1, -1 }, st = 0, r = 0;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
	struct exec_fail fail = { -1, 0 };
	pid_t pid;

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		fds[i] = -1;
	if (!host_alive(h))
		return kerr_set(e, -ESRCH, "host '%s' is not running", h->name);
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)h->pid, kinds[i]);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			r = kerr_set(e, -errno, "%s: %s", path, strerror(errno));
			goto out;
		}
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = kerr_set(e, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	pid = fork();
	if (pid < 0) {
		r = kerr_set(e, -errno, "fork: %s", strerror(errno));
		goto out_sig;
	}
	if (pid == 0) {
		/* Join the host; the PID namespace applies to our child. */
		close(p[0]);
		for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
			if (setns(fds[i], types[i]) < 0) {
				struct exec_fail f = { 0, errno };
				if (write(p[1], &f, sizeof(f)) < 0)
					_exit(126);
				_exit(126);
			}
		}
		if (chdir("/") < 0)
			_exit(126);
		pid_t c = fork();
		if (c == 0) {
			sigaction(SIGINT, &old_int, NULL);
			sigaction(SIGQUIT, &old_quit, NULL);
			int nul = quiet ? open("/dev/null", O_RDWR) : -1;
			if (nul >= 0) {
				dup2(nul, 0);
				dup2(nul, 1);
				dup2(nul, 2);
			}
			execvp(argv[0], argv);
			struct exec_fail f = { 1, errno };
			if (write(p[1], &f, sizeof(f)) < 0)
				_exit(127);
			_exit(127);
		}
		close(p[1]);
		int cst;
		if (c < 0)
			_exit(126);
		while (waitpid(c, &cst, 0) < 0)
			if (errno != EINTR)
				_exit(126);
		_exit(WIFEXITED(cst) ? WEXITSTATUS(cst) : 128 + WTERMSIG(cst));
	}
	close(p[1]);
	p[1] = -1;
	ssize_t n;
	while ((n = read(p[0], &fail, sizeof(fail))) < 0 && errno == EINTR)
		;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			r = kerr_set(e, -errno, "waitpid: %s", strerror(errno));
			goto out_sig;
		}
	}
	if (n == (ssize_t)sizeof(fail)) {
		if (fail.step == 0)
			r = kerr_set(e, -fail.err, "host '%s': enter namespaces: %s",
				     h->name, strerror(fail.err));
		else
			r = kerr_set(e, -fail.err, "host '%s': %s: %s", h->name, argv[0],
				     strerror(fail.err));
		goto out_sig;
	}
	*exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
out_sig:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
out:
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	return r;
}

int host_exec(const struct lab_host *h, char *const argv[], int *exit_status,
	      struct kerr *e)
{
	return host_exec_io(h, argv, exit_status, false, e);
}

/* systemctl VERB kiln-lab-sshd.service inside a systemd host. */
static int host_systemctl_sshd(const struct lab_host *h, const char *verb, struct kerr *e)
{
	char *argv[] = { "systemctl", (char *)verb, SSHD_UNIT, NULL };
	int st = 0, r = host_exec_io(h, argv, &st, true, e);

	if (r == 0 && st != 0)
		r = kerr_set(e, -EIO, "host '%s': systemctl %s %s exited %d", h->name, verb,
			     SSHD_UNIT, st);
	return r;
}

int host_stop(struct lab_host *h, int timeout_ms, struct kerr *e)
{
	const char *ns[] = { h->netns };
	int r;

	if (host_alive(h)) {
		/* systemd: a clean poweroff (SIGRTMIN+3); kiln-lab-init: SIGTERM. */
		kill(h->pid, h->systemd ? SIGRTMIN + 3 : SIGTERM);
		int64_t deadline = now_ms() + timeout_ms;
		while (host_alive(h) && now_ms() < deadline)
			sleep_ms(10);
	}
	/* Whatever is left (a hung poweroff, the console drainer) is killed. */
	if ((r = host_kill_netns(ns, 1, &h->pid, &h->start, 1, e)) < 0)
		return r;
	return host_cgroups_remove(h, e);
}
