/*
 * bmc — power and boot-device control of a node through its baseboard
 * management controller, over IPMI 2.0 (lanplus, via libfreeipmi) or
 * Redfish (HTTPS + JSON, via libcurl and jansson).
 *
 * Contract:
 *  - A struct bmc_target describes one BMC ready to talk to: the spec's
 *    "bmc:" settings (struct bmc_conf in spec/spec.h) with the password
 *    resolved.  This library does not depend on the spec; the command
 *    layer fills a target from a node's bmc_conf and bmc_secret_load().
 *  - A target is owned by the caller; bmc functions only read it and keep
 *    no pointer into it after they return.  bmc_target_release() frees
 *    the strings of a target whose strings were allocated (it wipes the
 *    password first).
 *  - Every call blocks: one operation takes at most about
 *    (retries + 1) * timeout_ms, plus a few round trips for multi-step
 *    operations.  Retries happen only for failures that may be transient
 *    (timeouts, refused connections, BMC busy, HTTP 5xx), never for
 *    authentication or protocol errors.
 *  - Functions return 0 or a negative errno and leave a one-line message in
 *    the struct kerr naming the BMC and the cause, e.g.
 *      bmc 10.0.0.5: IPMI: authentication failed (user 'admin')
 *      bmc https://10.0.0.6: Redfish: HTTP 401 Unauthorized (user 'root')
 *    Codes: -EACCES bad credentials, -EPERM privilege refused,
 *    -ETIMEDOUT no answer after all retries, -ECONNREFUSED / -EHOSTUNREACH
 *    network, -EKEYREJECTED TLS certificate not trusted, -EPROTO peer
 *    spoke nonsense, -ENOTSUP the BMC lacks the operation, -EINVAL bad
 *    arguments, -EBUSY / -EAGAIN BMC busy, -EIO other BMC-reported failure,
 *    -EINPROGRESS outcome unknown (below).
 *  - A power action other than "on" (off, cycle, reset, soft) is on the
 *    wire once: if its request was sent and no reply came, it is neither
 *    retried nor retransmitted (IPMI: not even inside libfreeipmi), and
 *    the call returns -EINPROGRESS with "...; not retried: the request was
 *    sent, the action may or may not have run".  Reads, "on" and boot
 *    device changes are retried.
 *  - The IPMI back end installs a handler for signal SIGRTMIN+5 (it only
 *    sets a flag) the first time a bmc call runs, and sends that signal to
 *    the calling thread, through a timer, while it waits for the reply to
 *    a once-only request; the host program must leave that signal alone.
 *  - Nothing here prints.  All calls are thread-safe as long as each thread
 *    uses its own struct kerr; bmc_bulk() runs many BMCs in parallel.
 */
#ifndef KILN_BMC_H
#define KILN_BMC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

enum bmc_proto { BMC_PROTO_IPMI, BMC_PROTO_REDFISH };

/* Boot firmware mode for bootdev: leave it as the BMC has it, or force. */
enum bmc_boot_mode { BMC_BOOT_MODE_KEEP, BMC_BOOT_MODE_LEGACY, BMC_BOOT_MODE_UEFI };

/*
 * IPMI session privilege: operator is enough for power and boot options;
 * user (read-only accounts) is enough for power status only.
 */
enum bmc_priv { BMC_PRIV_ADMIN, BMC_PRIV_OPERATOR, BMC_PRIV_USER };

struct bmc_target {
	enum bmc_proto proto;
	/*
	 * IPMI: host name or address (IPv4, IPv6 or DNS name).
	 * Redfish: host[:port] or a base URL "https://host[:port]"; "http://"
	 * is accepted only when spelled out.
	 */
	char *address;
	int port;            /* 0 = protocol default (623/udp, 443/tcp) */
	char *user;
	char *password;      /* resolved by the caller */
	bool insecure_tls;   /* Redfish: skip certificate verification */
	char *ca_file;       /* Redfish: CA bundle to verify with (NULL = system) */
	int timeout_ms;      /* per attempt; 0 = BMC_DEFAULT_TIMEOUT_MS */
	int retries;         /* extra attempts after the first (0 = none) */
	int cipher_suite;    /* IPMI: 0 = 3 (HMAC-SHA1, AES-CBC-128); 17 also works */
	enum bmc_priv priv;
	enum bmc_boot_mode boot_mode;
};

#define BMC_DEFAULT_TIMEOUT_MS 10000
#define BMC_DEFAULT_RETRIES 2
#define BMC_DEFAULT_PARALLEL 32

enum bmc_power { BMC_POWER_UNKNOWN, BMC_POWER_ON, BMC_POWER_OFF };

/*
 * Fill c with defaults (IPMI, BMC_DEFAULT_TIMEOUT_MS, BMC_DEFAULT_RETRIES,
 * no strings).  A zeroed target works too, with no retries.
 */
void bmc_target_init(struct bmc_target *c);
/* Free c's strings (password wiped first) and re-initialise; c may be NULL. */
void bmc_target_release(struct bmc_target *c);

/* "ipmi" / "redfish" <-> enum; parse returns 0 or -EINVAL. */
int bmc_proto_parse(const char *s, enum bmc_proto *out);
const char *bmc_proto_name(enum bmc_proto t);
const char *bmc_power_name(enum bmc_power p);   /* "on", "off", "unknown" */

/*
 * Load a secret: from the file at path if path is non-NULL (first line,
 * trailing newline stripped; refused with -EPERM if the file is readable
 * by group or others), else from the environment variable env_name.
 * *out is allocated (caller frees, ideally after wiping).
 */
int bmc_secret_load(const char *path, const char *env_name, char **out,
		    struct kerr *e);

/* Read the chassis power state into *out. */
int bmc_power_get(const struct bmc_target *b, enum bmc_power *out, struct kerr *e);

/*
 * Power action: "on", "off" (hard), "cycle", "reset" (hard), "soft"
 * (ACPI shutdown request).  "cycle" on a machine that is off powers it on,
 * so the node ends up running either way.
 */
int bmc_power_set(const struct bmc_target *b, const char *action, struct kerr *e);

/*
 * Boot device override: "pxe", "disk", "cdrom", "bios" (firmware setup),
 * or "none" to clear an override.  once = next boot only; else persistent.
 */
int bmc_bootdev_set(const struct bmc_target *b, const char *dev, bool once,
		    struct kerr *e);

/* Name checks, for argument validation before any I/O. */
bool bmc_action_valid(const char *action);
bool bmc_bootdev_valid(const char *dev);

/* ---- bulk ------------------------------------------------------------ */

enum bmc_op_kind { BMC_OP_POWER_GET, BMC_OP_POWER_SET, BMC_OP_BOOTDEV_SET };

struct bmc_op {
	enum bmc_op_kind kind;
	const char *arg;     /* action for POWER_SET, device for BOOTDEV_SET */
	bool once;           /* BOOTDEV_SET */
};

struct bmc_result {
	int rc;                /* 0 or -errno, as the single call would return */
	enum bmc_power power;  /* POWER_GET: the state read */
	int64_t elapsed_ms;
	struct kerr err;       /* message when rc != 0 */
};

/*
 * Run op against targets[0..n-1], at most max_parallel at a time (<= 0:
 * BMC_DEFAULT_PARALLEL), and fill results[i] for targets[i].  One BMC failing
 * never stops the others.  Returns 0 if every one succeeded, -EIO if some
 * failed (see results), or -errno if the threads could not be started.
 */
int bmc_bulk(const struct bmc_target *const *targets, size_t n,
	     const struct bmc_op *op, int max_parallel,
	     struct bmc_result *results);

#endif
