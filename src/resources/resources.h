/*
 * resources — check-then-act resource types (file, directory, line, sysctl,
 * kmod, swap, hostname, package, service, user, group, command, secret,
 * reboot, and for the mesh: wgkey, wireguard, reach).
 *
 * A resource is a JSON object, the same one that travels to kiln-agent
 * (docs/resources.md describes every type and field).  Renderers build them
 * with the res_*() constructors; the agent validates and runs them.
 *
 * Contract:
 *  - resource_run() with ctx->check_only runs exactly the code that apply
 *    runs up to the point of acting, and touches nothing: a dry run never
 *    lies.  Without check_only it converges the resource.
 *  - Every path in a resource is absolute and is taken under ctx->root
 *    ("/" on nodes, a temp dir in tests).  Live-system actions (sethostname,
 *    swapoff, modprobe, systemctl, package managers) only make sense with
 *    root "/"; docs/resources.md says what each type does under a prefix.
 *  - Files are replaced atomically (file_write_atomic): never half-written.
 *  - Failures are results, never aborts: one resource failing does not stop
 *    the list.  res_result strings are owned by the result; release with
 *    res_result_release().
 *  - Owners and groups are resolved by reading ROOT/etc/passwd and
 *    ROOT/etc/group (not NSS: the agent is static), or given as numbers.
 *  - Nothing here prints.  resource_run() may block on child processes
 *    (package managers, commands); no global state, not thread-safe per ctx.
 */
#ifndef KILN_RESOURCES_H
#define KILN_RESOURCES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

struct res_ctx {
	const char *root;      /* filesystem prefix ("/" on nodes, a temp dir in tests) */
	bool check_only;       /* true: report, touch nothing */
	struct strv changed;   /* ids of resources changed so far in this run (service watch) */
};

enum res_status { RES_OK, RES_CHANGED, RES_FAILED };

/*
 * diff, message and exports are owned by the result and may be NULL.
 * exports is an object NAME -> string of values the resource hands back to
 * the controller (wgkey: "public_key"); they never appear in diff or message.
 */
struct res_result {
	enum res_status status;
	char *diff;
	char *message;
	json_t *exports;
};

/* Set up ctx for a run under root (borrowed) in check or apply mode. */
void res_ctx_init(struct res_ctx *ctx, const char *root, bool check_only);
void res_ctx_release(struct res_ctx *ctx);

/* Validate r; on error a one-line message naming the resource and the field. */
int resource_validate(const json_t *r, struct kerr *e);
/* The resource's id, e.g. "file:/etc/hosts", "sysctl:/etc/sysctl.d/90-kiln.conf"
 * (caller frees).  Works on any object; an invalid one gets "invalid:TYPE". */
char *resource_id(const json_t *r);
/* Check (ctx->check_only) or converge one resource.  Validates first.  Never
 * aborts the list: failures are results.  A changed (or would-change)
 * resource's id is added to ctx->changed. */
void resource_run(struct res_ctx *ctx, const json_t *r, struct res_result *out);
void res_result_release(struct res_result *r);
/* "ok", "changed" or "failed". */
const char *res_status_name(enum res_status s);

/*
 * Run a whole list (a JSON array) in order, calling emit for each result
 * (used by the agent).  A non-object element gets a failed result.  The
 * result passed to emit is released after emit returns.  emit returns 0 to
 * go on, or non-zero to stop the list there (the reader has gone away).
 * Counts go to counts[RES_OK..RES_FAILED] when counts is not NULL.
 */
typedef int res_emit_fn(void *arg, size_t index, const char *id,
			const struct res_result *r);
void resource_run_list(struct res_ctx *ctx, const json_t *list,
		       res_emit_fn *emit, void *arg, size_t counts[3]);

/*
 * Constructors for renderers (stacks/) — each returns a new JSON object
 * (caller owns the reference).  owner/group NULL = not managed; mode is
 * always set.  String arrays are copied.
 */
json_t *res_file(const char *path, const char *content, unsigned mode,
		 const char *owner, const char *group);
json_t *res_directory(const char *path, unsigned mode, const char *owner,
		      const char *group);
json_t *res_line(const char *path, const char *line,
		 const char *regexp /* may be NULL */, bool present);
json_t *res_sysctl(const char *file, const char *const *keys,
		   const char *const *values, size_t n);
json_t *res_kmod(const char *file, const char *const *modules, size_t n);
json_t *res_swap_off(void);
json_t *res_hostname(const char *name);
json_t *res_package(const char *const *names, size_t n, bool present);
json_t *res_service(const char *name, bool enabled, bool running,
		    const char *const *watch, size_t nwatch);
json_t *res_user(const char *name, const char *shell, const char *const *groups,
		 size_t ngroups, const char *const *keys, size_t nkeys);
json_t *res_group(const char *name);
/*
 * A reboot when needed (the driver reboots; the resource only asks):
 * module NULL = when /run/reboot-required exists; else when module is not
 * loaded at a version starting with version (NULL: any) but is installed.
 */
json_t *res_reboot(const char *name, const char *module, const char *version);
json_t *res_command(const char *command, const char *creates, const char *unless);
/* A file whose content is a secret: never shown in a diff ("secret": true). */
json_t *res_file_secret(const char *path, const char *content, unsigned mode,
			const char *owner, const char *group);
/* A random value of bytes bytes made on the node once, kept there as lower-case
 * hex (no newline) and exported under export_name (a secret export). */
json_t *res_secret(const char *path, const char *export_name, int bytes, unsigned mode,
		   const char *owner, const char *group);
/* A WireGuard private key made on the node; exports "public_key". */
json_t *res_wgkey(const char *path, bool rotate);
/*
 * A secret file (never diffed or shown) whose value the node makes once
 * (kind "ceph-key" or "uuid", file 0600) and exports as export_name.  A
 * secret file of given content is res_file_secret.
 */
json_t *res_secret_generate(const char *path, const char *kind, const char *export_name,
			    const char *owner, const char *group);
/*
 * One WireGuard interface, converged live.  listen_port <= 0 and address
 * NULL: not managed; mtu <= 0: "auto"; config_file NULL: none written.
 * Starts with no peers: add them with res_wireguard_add_peer() (endpoint
 * NULL = behind NAT, keepalive <= 0 = none).  The stack may also build the
 * JSON itself: resource_validate() checks every field strictly.
 */
json_t *res_wireguard(const char *iface, const char *private_key_file,
		      int listen_port, const char *address, int mtu,
		      const char *config_file, const char *const *routes,
		      size_t nroutes);
void res_wireguard_add_peer(json_t *wg, const char *public_key, const char *endpoint,
			    const char *const *allowed_ips, size_t n, int keepalive);
/* ICMP echo to each target (name, IPv4 address) in parallel; never changes. */
json_t *res_reach(const char *const *names, const char *const *addresses, size_t n,
		  int timeout_ms);

/*
 * A unified diff (---/+++ headers, @@ hunks, 3 lines of context) of a and b,
 * appended to out.  Identical inputs append nothing.  A last line without a
 * newline is marked "\ No newline at end of file".  Very different large
 * inputs may get a correct but non-minimal diff.  Returns 0 or -E2BIG when
 * out's cap is hit.
 */
int diff_unified(const char *label_a, const char *a, const char *label_b,
		 const char *b, struct buf *out);

#endif
