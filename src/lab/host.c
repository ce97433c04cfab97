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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SSHD_PATH "/usr/sbin/sshd"

/* The machine directories each host sees through its own overlay. */
static const char *const overlay_dirs[] = {
	"etc", "usr", "var", "root", "home", "opt", "srv",
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

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

/*
 * PID 1 of a host.  Builds the root filesystem, pivots into it, reports
 * "ok" on fd, starts sshd, then reaps children forever.  SIGUSR1 starts
 * sshd when it is not running; SIGTERM (and SIGINT, SIGHUP) end the host.
 */
static _Noreturn void init_main(const struct lab_host *h, int fd)
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
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (devnull > 2)
			close(devnull);
	}
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

/* First process of a host: join its netns, unshare the rest, fork init. */
static _Noreturn void host_first_child(const struct lab_host *h, int netfd,
				       int report, int pidpipe)
{
	if (setns(netfd, CLONE_NEWNET) < 0)
		init_fail(report, "setns", h->netns, errno);
	/* A host never routes (the bastion reaches nodes by SSH forwarding). */
	int f = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (f < 0 || write(f, "0\n", 2) != 2)
		init_fail(report, "ip_forward=0 in", h->netns, errno);
	close(f);
	if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID) < 0)
		init_fail(report, "unshare", NULL, errno);
	pid_t pid = fork();
	if (pid < 0)
		init_fail(report, "fork", NULL, errno);
	if (pid == 0) {
		close(pidpipe);
		init_main(h, report);
	}
	if (write(pidpipe, &pid, sizeof(pid)) != sizeof(pid))
		_exit(1);
	_exit(0);
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
		host_first_child(h, netfd, report[1], pidp[1]);
	}
	close(report[1]);
	close(pidp[1]);
	report[1] = pidp[1] = -1;
	ssize_t n;
	while ((n = read(pidp[0], &init, sizeof(init))) < 0 && errno == EINTR)
		;
	while (waitpid(first, NULL, 0) < 0 && errno == EINTR)
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

int host_read_report(int fd, const struct lab_host *h, int timeout_ms, struct kerr *e)
{
	char msg[1024];
	size_t len = 0;
	int64_t deadline = now_ms() + timeout_ms;
	int r = 0;

	for (;;) {
		int left = (int)(deadline - now_ms());
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0) {
			r = kerr_set(e, -ETIMEDOUT, "host '%s': no word from its init in %d ms",
				     h->name, timeout_ms);
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
		r = kerr_set(e, -EIO, "host '%s': setup failed: %s", h->name,
			     *clean ? clean : "its init died");
	}
out:
	close(fd);
	return r;
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

int host_exec(const struct lab_host *h, char *const argv[], int *exit_status,
	      struct kerr *e)
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
