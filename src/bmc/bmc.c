/*
 * bmc: the protocol-independent part — argument checks, dispatch to the
 * IPMI or Redfish back end, the retry policy, error labelling and the
 * parallel bulk runner.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bmc/bmc_int.h"

static const char *const power_actions[] = { "on", "off", "cycle", "reset", "soft" };
static const char *const boot_devices[] = { "pxe", "disk", "cdrom", "bios", "none" };

void bmc_target_init(struct bmc_target *c)
{
	memset(c, 0, sizeof(*c));
	c->proto = BMC_PROTO_IPMI;
	c->timeout_ms = BMC_DEFAULT_TIMEOUT_MS;
	c->retries = BMC_DEFAULT_RETRIES;
}

void bmc_target_release(struct bmc_target *c)
{
	if (!c)
		return;
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->address);
	free(c->user);
	free(c->password);
	free(c->ca_file);
	bmc_target_init(c);
}

int bmc_proto_parse(const char *s, enum bmc_proto *out)
{
	if (s && strcmp(s, "ipmi") == 0)
		*out = BMC_PROTO_IPMI;
	else if (s && strcmp(s, "redfish") == 0)
		*out = BMC_PROTO_REDFISH;
	else
		return -EINVAL;
	return 0;
}

const char *bmc_proto_name(enum bmc_proto t)
{
	return t == BMC_PROTO_REDFISH ? "redfish" : "ipmi";
}

const char *bmc_power_name(enum bmc_power p)
{
	switch (p) {
	case BMC_POWER_ON:
		return "on";
	case BMC_POWER_OFF:
		return "off";
	default:
		return "unknown";
	}
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
	if (!s)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

bool bmc_action_valid(const char *action)
{
	return in_list(action, power_actions, ARRAY_SIZE(power_actions));
}

bool bmc_bootdev_valid(const char *dev)
{
	return in_list(dev, boot_devices, ARRAY_SIZE(boot_devices));
}

/*
 * Read a secret from a file the caller names, refusing files others can
 * read: a BMC password in a world-readable file is a password in the
 * open.  Only the first line counts, so "echo pw > file" works.
 */
static int secret_from_file(const char *path, char **out, struct kerr *e)
{
	char tmp[4097];
	struct stat st;
	size_t len = 0;
	int r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return kerr_set(e, -errno, "password file '%s': %s", path,
				strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = kerr_set(e, -errno, "password file '%s': %s", path,
			     strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		r = kerr_set(e, -EINVAL, "password file '%s': not a regular file",
			     path);
		goto out_close;
	}
	if (st.st_mode & 0077) {
		r = kerr_set(e, -EPERM,
			     "password file '%s' is accessible by group or others "
			     "(mode %04o); chmod 600 it", path,
			     (unsigned)(st.st_mode & 07777));
		goto out_close;
	}
	while (len < sizeof(tmp) - 1) {
		ssize_t n = read(fd, tmp + len, sizeof(tmp) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = kerr_set(e, -errno, "password file '%s': %s", path,
				     strerror(errno));
			goto out_wipe;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	tmp[len] = '\0';
	tmp[strcspn(tmp, "\r\n")] = '\0';
	if (!tmp[0]) {
		r = kerr_set(e, -EINVAL, "password file '%s' is empty", path);
		goto out_wipe;
	}
	*out = xstrdup(tmp);
out_wipe:
	explicit_bzero(tmp, sizeof(tmp));
out_close:
	close(fd);
	return r;
}

int bmc_secret_load(const char *path, const char *env_name, char **out,
		    struct kerr *e)
{
	*out = NULL;
	if (path)
		return secret_from_file(path, out, e);
	if (!env_name || !*env_name)
		return kerr_set(e, -EINVAL, "no password file or variable given");
	const char *v = getenv(env_name);
	if (!v || !*v)
		return kerr_set(e, -ENOENT, "environment variable %s is not set",
				env_name);
	*out = xstrdup(v);
	return 0;
}

/* ---- dispatch and retries -------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	ipmi_global_init();
	redfish_global_init();
}

/* How the BMC is named in messages: its address, or its Redfish base URL. */
static char *bmc_label(const struct bmc_target *c)
{
	if (c->proto == BMC_PROTO_REDFISH)
		return redfish_base_url(c);
	if (c->port > 0 && c->port != 623)
		return strchr(c->address, ':') ?
			xasprintf("[%s]:%d", c->address, c->port) :
			xasprintf("%s:%d", c->address, c->port);
	return xstrdup(c->address);
}

/* One try of op against one BMC, through its protocol's back end. */
static int one_attempt(struct bmc_attempt *a, const struct bmc_op *op,
		       enum bmc_power *pw, struct kerr *e)
{
	bool rf = a->conf->proto == BMC_PROTO_REDFISH;

	switch (op->kind) {
	case BMC_OP_POWER_GET:
		return rf ? redfish_power_get(a, pw, e) : ipmi_power_get(a, pw, e);
	case BMC_OP_POWER_SET:
		return rf ? redfish_power_set(a, op->arg, e) :
			    ipmi_power_set(a, op->arg, e);
	case BMC_OP_BOOTDEV_SET:
		return rf ? redfish_bootdev_set(a, op->arg, op->once, e) :
			    ipmi_bootdev_set(a, op->arg, op->once, e);
	}
	return kerr_set(e, -EINVAL, "unknown operation");
}

/*
 * Would running op twice do something running it once would not?  Every
 * power action but "on" counts as a change that must not be repeated
 * blindly: a second "off" or "soft" can undo a power-on that happened in
 * between, a second cycle or reset reboots the machine again.
 */
static bool op_idempotent(const struct bmc_op *op)
{
	return !(op->kind == BMC_OP_POWER_SET && strcmp(op->arg, "on") != 0);
}

/* Reject confs no back end could use, before any I/O. */
static int check_conf(const struct bmc_target *c, struct kerr *e)
{
	if (!c || !c->address || !*c->address)
		return kerr_set(e, -EINVAL, "bmc: no address");
	if (c->proto != BMC_PROTO_IPMI && c->proto != BMC_PROTO_REDFISH)
		return kerr_set(e, -EINVAL, "bmc %s: unknown type", c->address);
	if (c->port < 0 || c->port > 65535)
		return kerr_set(e, -EINVAL, "bmc %s: port %d out of range",
				c->address, c->port);
	if (strpbrk(c->address, " \t\r\n"))
		return kerr_set(e, -EINVAL, "bmc '%s': address contains blanks",
				c->address);
	return 0;
}

/*
 * Run one operation with the conf's retry policy.  A transient failure is
 * retried after a short pause, except when a non-idempotent action may
 * already have reached the BMC: a lost reply to "cycle" must not cycle
 * the machine twice, so that ends with -EINPROGRESS (outcome unknown).
 */
static int bmc_run(const struct bmc_target *c, const struct bmc_op *op,
		   enum bmc_power *pw, struct kerr *e)
{
	struct kerr le = { 0 };
	int timeout, retries, attempt, r;
	char *label;

	if ((r = check_conf(c, e)) < 0)
		return r;
	if (op->kind == BMC_OP_POWER_SET && !bmc_action_valid(op->arg))
		return kerr_set(e, -EINVAL,
				"bmc %s: unknown power action '%s' "
				"(on, off, cycle, reset, soft)",
				c->address, op->arg ? op->arg : "");
	if (op->kind == BMC_OP_BOOTDEV_SET && !bmc_bootdev_valid(op->arg))
		return kerr_set(e, -EINVAL,
				"bmc %s: unknown boot device '%s' "
				"(pxe, disk, cdrom, bios, none)",
				c->address, op->arg ? op->arg : "");
	pthread_once(&global_once, global_init);

	timeout = c->timeout_ms > 0 ? c->timeout_ms : BMC_DEFAULT_TIMEOUT_MS;
	retries = c->retries > 0 ? c->retries : 0;
	for (attempt = 0;; attempt++) {
		struct bmc_attempt a = { .conf = c, .timeout_ms = timeout };

		kerr_clear(&le);
		r = one_attempt(&a, op, pw, &le);
		if (r == 0 || !bmc_rc_transient(r))
			break;
		/*
		 * A timeout or a dropped connection after the request left
		 * leaves it unknown whether the BMC acted; an explicit
		 * "busy" answer means it did not, so that one is retried.
		 */
		if (a.acted && !op_idempotent(op) &&
		    (r == -ETIMEDOUT || r == -ECONNRESET)) {
			size_t l = strlen(le.msg);
			snprintf(le.msg + l, sizeof(le.msg) - l,
				 "; not retried: the request was sent, the "
				 "action may or may not have run");
			r = le.code = -EINPROGRESS;
			break;
		}
		if (attempt >= retries)
			break;
		/* A short, growing pause: a busy BMC needs a moment. */
		sleep_ms(timeout / 10 < 500 ? timeout / 10 * (attempt + 1) :
					      500 * (attempt + 1));
	}
	if (r == 0)
		return 0;
	label = bmc_label(c);
	if (bmc_rc_transient(r) && attempt > 0 && attempt >= retries) {
		size_t l = strlen(le.msg);
		snprintf(le.msg + l, sizeof(le.msg) - l, " (%d attempts)",
			 attempt + 1);
	}
	kerr_prefix(&le, "bmc %s", label);
	free(label);
	if (e)
		*e = le;
	return r;
}

int bmc_power_get(const struct bmc_target *b, enum bmc_power *out, struct kerr *e)
{
	struct bmc_op op = { .kind = BMC_OP_POWER_GET };
	*out = BMC_POWER_UNKNOWN;
	return bmc_run(b, &op, out, e);
}

int bmc_power_set(const struct bmc_target *b, const char *action, struct kerr *e)
{
	struct bmc_op op = { .kind = BMC_OP_POWER_SET, .arg = action };
	return bmc_run(b, &op, NULL, e);
}

int bmc_bootdev_set(const struct bmc_target *b, const char *dev, bool once,
		    struct kerr *e)
{
	struct bmc_op op = { .kind = BMC_OP_BOOTDEV_SET, .arg = dev, .once = once };
	return bmc_run(b, &op, NULL, e);
}

/* ---- bulk ------------------------------------------------------------ */

struct bulk {
	const struct bmc_target *const *confs;
	size_t n;
	const struct bmc_op *op;
	struct bmc_result *res;
	atomic_size_t next;
};

/* Worker: take the next index until none is left. */
static void *bulk_worker(void *arg)
{
	struct bulk *bk = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&bk->next, 1);
		if (i >= bk->n)
			break;
		struct bmc_result *r = &bk->res[i];
		int64_t t0 = now_ms();
		r->power = BMC_POWER_UNKNOWN;
		kerr_clear(&r->err);
		r->rc = bmc_run(bk->confs[i], bk->op, &r->power, &r->err);
		r->elapsed_ms = now_ms() - t0;
	}
	return NULL;
}

int bmc_bulk(const struct bmc_target *const *targets, size_t n,
	     const struct bmc_op *op, int max_parallel,
	     struct bmc_result *results)
{
	struct bulk bk = { .confs = targets, .n = n, .op = op, .res = results };
	size_t nthreads, started = 0;
	pthread_t *tids;
	int r = 0;

	if (n == 0)
		return 0;
	pthread_once(&global_once, global_init);
	atomic_init(&bk.next, 0);
	nthreads = max_parallel > 0 ? (size_t)max_parallel : BMC_DEFAULT_PARALLEL;
	if (nthreads > n)
		nthreads = n;
	tids = xcalloc(nthreads, sizeof(*tids));
	for (size_t i = 0; i < nthreads; i++) {
		pthread_attr_t at;
		pthread_attr_init(&at);
		/* Bounded stacks, so hundreds of workers stay cheap. */
		pthread_attr_setstacksize(&at, 1024 * 1024);
		int pr = pthread_create(&tids[i], &at, bulk_worker, &bk);
		pthread_attr_destroy(&at);
		if (pr != 0) {
			if (started == 0)
				r = -pr;
			break;
		}
		started++;
	}
	/* With at least one worker running, every index still gets done. */
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (results[i].rc != 0)
			return -EIO;
	return 0;
}
