/*
 * facts — hardware and OS discovery for one machine.
 *
 * Contract:
 *  - facts_collect() reads /proc, /sys, /etc/os-release and friends under a
 *    root prefix ("/" for the running machine, or a fixture tree) and builds
 *    one JSON object whose schema is documented in docs/facts.md.  Every file
 *    is optional (VMs lack DMI, containers lack most of /sys): what cannot be
 *    read becomes null (or an empty array), never an error.  Every read is
 *    bounded.  Nothing here prints, and nothing blocks beyond local file I/O
 *    (and, for root "/" with an NVIDIA GPU, NVML or one nvidia-smi run of at
 *    most 15 s). 
 *  - Collection links into the static kiln-agent (kiln_facts_agent): it uses
 *    only libc, jansson and util.  GPU details come from
 *    /proc/driver/nvidia and amdgpu's sysfs files and, when root is "/" and
 *    an NVIDIA GPU is present, from NVML loaded at run time with dlopen,
 *    else from running nvidia-smi (neither present = fewer details, not an
 *    error).  In a static binary glibc's dlopen works only when the node's
 *    libc matches the one kiln-agent was linked against; otherwise the load
 *    fails and nvidia-smi is the fallback.  Set KILN_NVML_LIBRARY=none to
 *    skip NVML entirely.
 *  - facts_resolve_names() lives in kiln_facts_names and needs libpci and
 *    pci.ids: it runs on the control host, not in the agent.
 *  - Every returned json_t is a new reference owned by the caller.
 *  - Functions return 0 or a negative errno and leave a message in e
 *    (which may be NULL).
 */
#ifndef KILN_FACTS_H
#define KILN_FACTS_H

#include <stddef.h>

#include <jansson.h>

#include "util/util.h"

/* Version of the JSON layout below; bumped on incompatible changes. */
#define FACTS_SCHEMA 1

/*
 * Environment variable naming the NVML library to load (tests use a fake);
 * "none" turns NVML off (the nvidia-smi fallback still runs).
 */
#define FACTS_NVML_ENV "KILN_NVML_LIBRARY"
#define FACTS_NVML_DEFAULT "libnvidia-ml.so.1"

/*
 * Collect facts about the machine whose filesystem is at root ("/" or a
 * fixture tree; NULL means "/").  On success *out is a new JSON object.
 * Fails only on a root that is not a readable directory.  Live-only
 * sources (uname(), getifaddrs(), NVML, nvidia-smi) are consulted only
 * when root is "/".
 */
int facts_collect(const char *root, json_t **out, struct kerr *e);

/*
 * Load the NVML library at path (dlopen; a bare name is searched the usual
 * way) and merge model, memory_bytes, driver_version and uuid into the
 * entries of facts.gpus[] whose slot matches the PCI bus id NVML reports.
 * Returns the number of GPUs merged (>= 0), or -ENOENT when the library
 * cannot be loaded, -EIO when NVML fails to initialise.  facts is modified
 * in place; on error it is left as it was.
 */
int facts_merge_nvml(json_t *facts, const char *path, struct kerr *e);

/*
 * The same from `program --query-gpu=... --format=csv` (program is
 * "nvidia-smi" on a node, searched in PATH): the fallback when NVML cannot
 * be loaded, e.g. by a static kiln-agent on a node with another glibc.
 * Runs the program with a 15 s limit.  Returns the number merged, or the
 * negative errno of running it (-ENOENT: not installed; -EIO: it failed).
 */
int facts_merge_nvidia_smi(json_t *facts, const char *program, struct kerr *e);

/*
 * Fill vendor_name, device_name and class_name in facts.pci[] and
 * facts.gpus[] using libpci and its pci.ids (control host only; in
 * kiln_facts_names).  Ids unknown to the database leave the names absent.
 * Needs no access to PCI devices.  Returns -EINVAL when facts is not an
 * object, -ENOTSUP when libpci fails fatally during a lookup.  Uses a
 * thread-local jump buffer for libpci's error callback, so concurrent
 * calls from different threads are safe.
 */
int facts_resolve_names(json_t *facts, struct kerr *e);

/*
 * Human-readable rendering, appended to out.  facts_format() writes a
 * summary block for one node; facts_format_table() writes a header and one
 * row per node (names[i] with facts[i]; facts[i] may be NULL for a node
 * whose facts are unknown).  Both tolerate missing fields.  Return
 * -EINVAL when facts is not an object, -E2BIG when out's cap would be
 * exceeded (out is then left unchanged).
 */
int facts_format(const json_t *facts, struct buf *out);
int facts_format_table(const char *const *names, json_t *const *facts,
		       size_t n, struct buf *out);

#endif
