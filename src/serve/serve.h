/*
 * serve — `kiln serve`, the provisioning daemon: one libevent loop with
 * DHCP + TFTP (boot/) on each boot network and HTTP (evhttp) for iPXE
 * scripts, kernels/initrds with Range, cloud-init NoCloud, discovery and
 * the JSON API.  docs/serve.md describes the behaviour; this header the
 * pieces the command layer and the tests call.
 *
 * Layers:
 *  - Pure helpers (ipxe.c, range.c): the iPXE template renderer and the
 *    HTTP Range parser.  No I/O; fuzzed.
 *  - Configuration (config.c): a spec turned into everything the daemon
 *    needs (struct serve_config), built whole before it replaces the old
 *    one, so a bad reload changes nothing.
 *  - State (sstate.c): the machines table and boot events in SQLite (WAL)
 *    under boot.state_dir, shared with `kiln boot status`.
 *  - The daemon (daemon.c, http.c, http_api.c): sockets, privilege drop, reload.
 *
 * Conventions: functions return 0 or -errno with a message in struct kerr;
 * nothing here prints except the daemon's structured log lines (log_*()).
 * Not thread-safe: one daemon per process.
 */
#ifndef KILN_SERVE_H
#define KILN_SERVE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "boot/boot.h"
#include "spec/spec.h"
#include "util/util.h"

/* ---- iPXE templates (ipxe.c) ---------------------------------------- */

/* One template variable. */
struct tmpl_var {
	const char *name;
	const char *value;
};

#define IPXE_MAX_SCRIPT (64u << 10)

/*
 * Render tmpl into out: "{{ name }}" (spaces optional) is replaced by the
 * value of the variable of that name; "{{" without a closing "}}", an
 * unknown name or a value holding a control byte (a newline would inject
 * iPXE commands) is an error (-EINVAL, message in e).  The output is capped
 * at IPXE_MAX_SCRIPT (-E2BIG).  out is appended to.
 */
int ipxe_render(const char *tmpl, const struct tmpl_var *vars, size_t nvars,
		struct buf *out, struct kerr *e);

enum ipxe_kind {
	IPXE_INSTALL,     /* a node with an image: boot the installer */
	IPXE_DISCOVERY,   /* an unknown MAC where discovery is allowed */
	IPXE_UNKNOWN,     /* an unknown MAC elsewhere: say so and exit */
	IPXE_LOCAL,       /* a provisioned node (or no image): boot the local disk */
};

/* The built-in template for a kind (variables: see docs/serve.md). */
const char *ipxe_template(enum ipxe_kind kind);

/* ---- HTTP Range (range.c) -------------------------------------------- */

/*
 * Parse a Range header value against a resource of size bytes.
 * Returns 0 with [*first, *last] (inclusive) for one satisfiable byte
 * range, 1 when the header must be ignored and the whole body sent
 * (absent, not "bytes=", several ranges, malformed), or -ERANGE when the
 * range cannot be satisfied (416).
 */
int http_range_parse(const char *hdr, uint64_t size, uint64_t *first,
		     uint64_t *last);

/* ---- configuration (config.c) ---------------------------------------- */

struct serve_config {
	struct cluster *cluster;       /* owned */
	struct boot_config boot;       /* nets/hosts arrays owned; strings
					* borrowed from cluster */
	char *http_base;               /* "http://SERVER:PORT" */
};

/*
 * Load the spec at path and build the daemon's configuration.  Requires
 * a boot: section.  Checks what the engines check (dhcp_engine_new's
 * rules) so a config that loads also starts.  files: NULL reads the disk;
 * else recorded into or replayed from (spec_load_files()).
 */
int serve_config_load(const char *path, struct spec_files *files,
		      struct serve_config **out, struct kerr *e);
void serve_config_free(struct serve_config *c);
/* The node of a MAC ("aa:bb:.."), or NULL. */
const struct node *serve_config_node(const struct serve_config *c,
				     const char *mac);
/*
 * Render the iPXE script for mac (normalised) into out.  provisioned: the
 * state DB says the node is installed.  client_ip (host order, 0 =
 * unknown) picks the boot network whose allow_unknown applies to an
 * unknown MAC (unknown: any network's).  *kind_out says which was chosen.
 */
int serve_ipxe_for(const struct serve_config *c, const char *mac,
		   uint32_t client_ip, bool provisioned, struct buf *out,
		   enum ipxe_kind *kind_out, struct kerr *e);
/* The URL a machine fetches an image's kernel or initrd from. */
char *serve_image_url(const struct serve_config *c, const struct boot_image *im,
		      bool initrd);

/* ---- state (sstate.c) ------------------------------------------------- */

/*
 * Machine states, as stored in serve.db and shown by `kiln boot status`
 * and the API.  The names come from one table (sstate_name); SQL binds
 * them as parameters, nothing else spells them.
 */
enum sstate {
	SSTATE_SEEN,         /* an unknown MAC fetched a script or got a lease */
	SSTATE_DISCOVERED,   /* an unknown MAC posted its facts */
	SSTATE_NEW,          /* a node that has not booted yet (status only) */
	SSTATE_BOOTING,
	SSTATE_PROVISIONED,
	SSTATE_UNMANAGED,    /* a node without a MAC (status only) */
	SSTATE_COUNT
};

/* The name of a state ("seen", "booting", ...). */
const char *sstate_name(enum sstate st);
/* The state of a name, or -1. */
int sstate_parse(const char *name);

/*
 * What an unauthenticated peer can make the daemon store is bounded
 * (docs/serve.md "Bounds").  Rows of unknown MACs (name NULL) are capped
 * per state: `seen` rows are evicted least recently seen first;
 * `discovered` rows (they carry facts an operator may want) only when
 * not seen for discovered_min_age seconds, else the new one is refused.
 * events keeps the newest events_max rows, pruned a few per insert.
 */
struct serve_state_limits {
	unsigned seen_max;
	unsigned discovered_max;
	unsigned discovered_min_age;   /* seconds */
	unsigned events_max;
};
#define SSTATE_SEEN_MAX 4096u
#define SSTATE_DISCOVERED_MAX 4096u
#define SSTATE_DISCOVERED_MIN_AGE 3600u
#define SSTATE_EVENTS_MAX 50000u

struct serve_state;

/*
 * Open (creating, unless readonly) the state database at path.  WAL, so
 * `kiln boot status` reads while the daemon writes.  A writable open
 * trims the tables to the default limits.
 */
int serve_state_open(const char *path, bool readonly, struct serve_state **out,
		     struct kerr *e);
void serve_state_close(struct serve_state *s);
/* Replace the limits (tests use small ones); trims at once. */
int serve_state_set_limits(struct serve_state *s, const struct serve_state_limits *l);
/* Rows of unknown MACs in state st (SSTATE_SEEN or SSTATE_DISCOVERED). */
unsigned serve_state_unknown_rows(const struct serve_state *s, enum sstate st);
/* Append a boot event (mac may be NULL); detail is sanitised by callers. */
int serve_state_event(struct serve_state *s, const char *mac, const char *kind,
		      const char *detail);
/*
 * A machine fetched something (what: "script", "kernel", ...) from ip:
 * records the fetch; a known node that is neither provisioned nor
 * discovered becomes booting.  An unknown discovered machine keeps the
 * address it was discovered from (see serve_state_discovered).
 */
int serve_state_fetch(struct serve_state *s, const char *mac, const char *name,
		      const char *ip, const char *what);
/*
 * Group writes in one transaction (one WAL append for all of them):
 * _begin, writes, _end(s, true) commits, _end(s, false) rolls back.
 */
int serve_state_begin(struct serve_state *s);
int serve_state_end(struct serve_state *s, bool commit);
/* A machine got a DHCP lease (stored with its "lease" event, all or
 * nothing, inside the caller's transaction or one of its own): known
 * nodes in state new become booting. */
int serve_state_lease(struct serve_state *s, const char *mac, const char *name,
		      const char *ip);
/*
 * Store the facts (a JSON text, already checked) an unknown MAC posted
 * from address ip; the row becomes discovered.  lease_ip: the address
 * kiln's DHCP leases to mac now, or NULL.  Nothing is written and:
 *  -EEXIST  the row belongs to a node (facts of nodes never change here);
 *  -EPERM   the MAC is discovered already and ip is neither the address
 *           it was discovered from nor lease_ip;
 *  -ENOSPC  the discovered rows are at their cap and none is old enough
 *           to evict.
 */
int serve_state_discovered(struct serve_state *s, const char *mac, const char *ip,
			   const char *facts_json, const char *lease_ip);
/*
 * Store the facts a node posted about itself (the caller checked that
 * they came from the node's own address); its state is kept.
 */
int serve_state_node_facts(struct serve_state *s, const char *mac, const char *name,
			   const char *ip, const char *facts_json);
/* Set a machine's state (provisioned, booting for reprovision, ...). */
int serve_state_set(struct serve_state *s, const char *mac, const char *name,
		    enum sstate st);
/* The stored state of mac; -ENOENT when never seen. */
int serve_state_get(struct serve_state *s, const char *mac, enum sstate *out);
/*
 * Every machine row as a JSON array of objects {mac, name, state, ip,
 * first_seen, last_seen, last_fetch, last_fetch_what, facts}.  New ref.
 */
json_t *serve_state_machines(struct serve_state *s);

/* ---- per-source rate limit (ratelimit.c) ------------------------------ */

/*
 * Token buckets, one per source address, in a table of `slots` entries:
 * a source gets `burst` requests at once and `per_s` a second after
 * that.  When the table is full a new source takes the bucket of the
 * least recently seen one, so memory is fixed at creation.  O(1) per
 * call.  Unauthenticated requests that make the daemon store something
 * go through one (docs/serve.md "Bounds").
 */
#define SERVE_RL_SLOTS 4096u
#define SERVE_RL_PER_S 2u
#define SERVE_RL_BURST 20u

struct rate_limit;
struct rate_limit *rate_limit_new(unsigned slots, unsigned per_s, unsigned burst);
void rate_limit_free(struct rate_limit *rl);
/* Whether source (an address as text) may make one more request at now_ms. */
bool rate_limit_allow(struct rate_limit *rl, const char *source, int64_t now_ms);
/* Sources that hold a bucket (at most slots). */
unsigned rate_limit_sources(const struct rate_limit *rl);

/* ---- status (status.c): what `kiln boot status` and the API show ------ */

/*
 * Per node of c: {name, mac, address, state, lease: {ip, expires}|null,
 * last_fetch, image}, plus "discovered": machines that are not nodes.
 * st and leases may be NULL (no database yet).  New reference.
 */
json_t *serve_status_json(const struct cluster *c, struct serve_state *st,
			  struct lease_db *leases);

/* ---- enroll (enroll.c) ------------------------------------------------ */

struct enroll_req {
	const char *mac;          /* any case, ':' or '-' */
	const char *name;
	const struct strv *roles; /* may be NULL */
	const char *image;        /* boot image; NULL = none (local boot) */
	const char *address;      /* NULL = first free one outside the pool */
	const char *ip_hint;      /* the machine's current address: picks the network */
};

/*
 * Append a node for a discovered machine to the spec's boot.enrolled file
 * (atomic rewrite), then load the whole spec again; if it no longer
 * loads, the old file is restored and the error returned.  *address_out
 * gets the node's address.  -EEXIST when the MAC or name is taken.
 */
int serve_enroll(const char *spec_path, const struct enroll_req *q,
		 char **address_out, struct kerr *e);

/* ---- API client (client.c) --------------------------------------------- */

/*
 * One request to a running daemon of cluster cl (boot.listen[0] or
 * boot.server, http_port), with the bearer token from api_token_file.
 * Blocks up to 10 s.  0 with *status (and *resp, a new reference, when
 * the body is JSON), or -ECONNREFUSED when no daemon answers.
 */
int serve_api_call(const struct cluster *cl, const char *method, const char *path,
		   const char *body, int *status, json_t **resp, struct kerr *e);

/* ---- the daemon (daemon.c) -------------------------------------------- */

struct serve_opts {
	const char *spec;        /* path of cluster.yaml */
	bool check_only;         /* -n: validate everything, bind nothing */
};

/*
 * Run the daemon until SIGTERM/SIGINT (0) or a startup failure (-errno,
 * message in e).  With check_only, validate (spec, image files, token
 * file, interfaces, user) and return without serving.
 */
int serve_run(const struct serve_opts *o, struct kerr *e);

/* Read the API token file: one line, 16..512 printable bytes. */
int serve_read_token(const char *path, char **out, struct kerr *e);

#endif
