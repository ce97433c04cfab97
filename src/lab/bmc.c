/*
 * kiln lab --bmc: one Debian ipmi_sim per node, in a network namespace of
 * its own on the lab's management bridge, whose chassis control program is
 * `kiln lab bmc-action` (lab_bmc_action() in labops.c): power off and on stop
 * and start the node, the boot device is recorded in the state file.
 * Docs: docs/lab.md (BMCs).
 */
#include "lab_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BMC_WAIT_MS 10000

bool bmc_alive(const struct lab_host *h)
{
	return h->bmc_pid > 0 && h->bmc_start && proc_start_time(h->bmc_pid) == h->bmc_start;
}

static int write_file(const char *path, const char *text, mode_t mode, struct kerr *e)
{
	int r = file_write_atomic(path, text, strlen(text), mode, -1, -1);
	if (r < 0)
		kerr_set(e, r, "write %s: %s", path, strerror(-r));
	return r;
}

/* 16 random hex digits (IPMI 2.0 passwords hold at most 20 bytes). */
static int random_hex(char *dst, size_t n, struct kerr *e)
{
	unsigned char raw[32];
	size_t want = (n - 1) / 2;

	if (want > sizeof(raw) || getrandom(raw, want, 0) != (ssize_t)want)
		return kerr_set(e, -EIO, "getrandom: %s", strerror(errno));
	for (size_t i = 0; i < want; i++)
		snprintf(dst + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* Only characters ipmi_sim's word splitting of chassis_control leaves alone. */
static bool plain_word(const char *s)
{
	for (; *s; s++)
		if (*s == ' ' || *s == '\t' || *s == '"' || *s == '\'' || *s == '\\' ||
		    *s == '\n')
			return false;
	return true;
}

/* lan.conf and bmc.emu of one node's ipmi_sim in dir. */
static int bmc_config(const struct lab *l, const struct lab_host *h, const char *dir,
		      const char *self, const char *password, struct kerr *e)
{
	char guid[33];
	char *p = NULL, *text = NULL;
	int r;

	if ((r = random_hex(guid, sizeof(guid), e)) < 0)
		return r;
	text = xasprintf("# kiln lab '%s': the BMC of '%s'\n"
			 "name \"%s\"\n"
			 "set_working_mc 0x20\n"
			 "  startlan 1\n"
			 "    addr %s 623\n"
			 "    priv_limit admin\n"
			 "    allowed_auths_callback none md5 straight\n"
			 "    allowed_auths_user none md5 straight\n"
			 "    allowed_auths_operator none md5 straight\n"
			 "    allowed_auths_admin none md5 straight\n"
			 "    guid %s\n"
			 "  endlan\n"
			 "  chassis_control \"%s lab bmc-action --name %s %s\"\n"
			 "  user 2 true \"%s\" \"%s\" admin 10 none md5 straight\n",
			 l->name, h->name, h->name, h->bmc_addr, guid, self, l->name, h->name,
			 LAB_BMC_USER, password);
	p = xasprintf("%s/lan.conf", dir);
	if ((r = write_file(p, text, 0600, e)) < 0)
		goto out;
	free(p);
	p = xasprintf("%s/bmc.emu", dir);
	r = write_file(p, "mc_setbmc 0x20\n"
		       "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n"
		       "mc_enable 0x20\n", 0600, e);
out:
	free(p);
	free(text);
	return r;
}

/* Fork ipmi_sim into the node's BMC namespace, detached, logging to dir/sim.log. */
static int bmc_fork(struct lab_host *h, const char *dir, struct kerr *e)
{
	char *ns = xasprintf("/run/netns/%s", h->bmc_netns);
	char *conf = xasprintf("%s/lan.conf", dir), *emu = xasprintf("%s/bmc.emu", dir);
	char *state = xasprintf("%s/sim", dir), *log = xasprintf("%s/sim.log", dir);
	int r = 0, nfd = -1;

	if ((r = mkdir_p(state, 0700)) < 0) {
		kerr_set(e, r, "mkdir %s: %s", state, strerror(-r));
		goto out;
	}
	nfd = open(ns, O_RDONLY | O_CLOEXEC);
	if (nfd < 0) {
		r = kerr_set(e, -errno, "BMC of '%s': %s: %s", h->name, ns, strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		r = kerr_set(e, -errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		char *argv[] = { LAB_IPMI_SIM, "-n", "-c", conf, "-f", emu, "-s", state, NULL };
		if (setns(nfd, CLONE_NEWNET) < 0)
			_exit(126);
		setsid();
		/* Only async-signal-safe calls here; failures end up in sim.log. */
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		syscall(SYS_close_range, 3, ~0U, 0);
		execv(argv[0], argv);
		static const char msg[] = "kiln: exec " LAB_IPMI_SIM " failed\n";
		ssize_t w = write(2, msg, sizeof(msg) - 1);
		(void)w;
		_exit(127);
	}
	h->bmc_pid = pid;
	h->bmc_start = proc_start_time(pid);
out:
	if (nfd >= 0)
		close(nfd);
	free(ns);
	free(conf);
	free(emu);
	free(state);
	free(log);
	return r;
}

/* Does the process's network namespace have a UDP socket bound to port? */
static bool udp_bound(pid_t pid, unsigned port)
{
	char path[64], line[512], want[16];
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%d/net/udp", (int)pid);
	snprintf(want, sizeof(want), ":%04X ", port);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		/* "  sl  local_address rem_address ...": the local port ends field 2. */
		char *local = strchr(line, ':');
		local = local ? strchr(local + 1, ':') : NULL;
		found = local && !strncmp(local, want, strlen(want));
	}
	fclose(f);
	return found;
}

int bmc_start(struct lab *l, struct kerr *e)
{
	char self[4096], password[17];
	char *pwpath = NULL, *text = NULL, *dir = NULL;
	ssize_t n;
	int r = 0;

	if (!l->bmc_netns)
		return 0;
	if (access(LAB_IPMI_SIM, X_OK) < 0)
		return kerr_set(e, -ENOENT, "--bmc: %s is missing (apt-get install openipmi)", LAB_IPMI_SIM);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return kerr_set(e, -errno, "readlink /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	if (!plain_word(self))
		return kerr_set(e, -EINVAL, "--bmc: kiln's path '%s' has blanks or quotes (ipmi_sim cannot run it)",
				self);
	if ((r = random_hex(password, sizeof(password), e)) < 0)
		return r;
	pwpath = path_join(l->dir, LAB_BMC_PASSWORD_FILE);
	text = xasprintf("%s\n", password);
	if ((r = write_file(pwpath, text, 0600, e)) < 0)
		goto out;
	for (size_t i = 0; i < l->nhosts; i++) {
		struct lab_host *h = &l->hosts[i];
		if (!h->bmc_netns)
			continue;
		free(dir);
		dir = xasprintf("%s/bmc", h->rt);
		if ((r = mkdir_p(dir, 0700)) < 0) {
			kerr_set(e, r, "mkdir %s: %s", dir, strerror(-r));
			goto out;
		}
		if ((r = bmc_config(l, h, dir, self, password, e)) < 0 ||
		    (r = bmc_fork(h, dir, e)) < 0)
			goto out;
	}
	/* All started; now wait until each listens (they start in parallel). */
	int64_t deadline = now_ms() + BMC_WAIT_MS;
	for (size_t i = 0; i < l->nhosts; i++) {
		struct lab_host *h = &l->hosts[i];
		if (!h->bmc_netns)
			continue;
		while (!udp_bound(h->bmc_pid, 623)) {
			if (!bmc_alive(h) || now_ms() > deadline) {
				r = kerr_set(e, bmc_alive(h) ? -ETIMEDOUT : -ESRCH,
					     "BMC of '%s': ipmi_sim %s (see %s/bmc/sim.log)", h->name,
					     bmc_alive(h) ? "does not listen on UDP 623" : "exited",
					     h->rt);
				goto out;
			}
			struct timespec ts = { 0, 10 * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
out:
	free(pwpath);
	free(text);
	free(dir);
	return r;
}
