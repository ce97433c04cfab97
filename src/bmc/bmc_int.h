/*
 * bmc internals shared by bmc.c (dispatch, retries, bulk) and the two
 * protocol back ends.  Not part of the public contract.
 */
#ifndef KILN_BMC_INT_H
#define KILN_BMC_INT_H

#include <errno.h>

#include "bmc/bmc.h"

/*
 * One attempt of one operation.  A back end sets *acted once the
 * state-changing request has left this host, so the retry loop knows
 * whether repeating a non-idempotent action (cycle, reset) could run it
 * twice.  Messages start with the protocol name ("IPMI: ..."); bmc.c adds
 * "bmc LABEL: ".
 */
struct bmc_attempt {
	const struct bmc_target *conf;
	int timeout_ms;
	bool acted;
};

/* Is this return code worth another attempt? */
static inline bool bmc_rc_transient(int rc)
{
	return rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -EBUSY ||
	       rc == -EAGAIN || rc == -ECONNRESET || rc == -EHOSTUNREACH ||
	       rc == -ENETUNREACH;
}

int ipmi_power_get(struct bmc_attempt *a, enum bmc_power *out, struct kerr *e);
int ipmi_power_set(struct bmc_attempt *a, const char *action, struct kerr *e);
int ipmi_bootdev_set(struct bmc_attempt *a, const char *dev, bool once,
		     struct kerr *e);
/* Call once before threads use libfreeipmi (initialises libgcrypt). */
void ipmi_global_init(void);

int redfish_power_get(struct bmc_attempt *a, enum bmc_power *out, struct kerr *e);
int redfish_power_set(struct bmc_attempt *a, const char *action, struct kerr *e);
int redfish_bootdev_set(struct bmc_attempt *a, const char *dev, bool once,
			struct kerr *e);
/* Call once before threads use libcurl (curl_global_init). */
void redfish_global_init(void);
/* The base URL Redfish requests go to (scheme://host[:port]), allocated. */
char *redfish_base_url(const struct bmc_target *c);

#endif
