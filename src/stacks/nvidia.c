/*
 * The nvidia stack: the right driver branch and kernel-module flavour for
 * every node's cards (docs/nvidia.md).
 *
 *   driver       kernel headers for the running kernel, the driver from
 *                NVIDIA's repository on the branch the node's cards allow
 *                (apt: a branch pinning package, then nvidia-open or
 *                cuda-drivers; RHEL 8/9: the dnf module stream
 *                nvidia-driver:BRANCH-open or BRANCH-dkms), the container
 *                toolkit.  The choice and why is a note plan shows.
 *   persistence  nvidia-persistenced enabled and running (the driver must
 *                be loaded: after the reboot a new driver needs).
 *
 * A node with no NVIDIA GPU in its facts (or no facts) gets nothing.  The
 * choice (nvidia_choose) is a pure function of the spec and the node's
 * facts: which cards, by PCI device id, against the table in
 * nvidia_gpus.c.
 */
#include "nvidia.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resources/resources.h"
#include "spec/parse.h"

#define NV_STACK "nvidia"
#define NV_BRANCH_MIN 300
#define NV_BRANCH_MAX 999
#define NV_BRANCHES_MAX 16

enum nv_modules { NV_MODULES_AUTO, NV_MODULES_OPEN, NV_MODULES_PROPRIETARY };
static const char *const modules_names[] = { "auto", "open", "proprietary" };

struct nvidia_conf {
	unsigned branch;                  /* preferred */
	unsigned branches[NV_BRANCHES_MAX]; /* allowed, newest first; has branch */
	size_t nbranches;
	enum nv_modules modules;
	bool container_toolkit;
	bool persistenced;
	struct mark mark;                 /* of stacks.nvidia, for node errors */
};

/* ---- the spec: stacks.nvidia ---------------------------------------------- */

static void nvidia_free(void *p)
{
	free(p);
}

static int by_newest(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static int parse_branches(struct spec_parser *x, const struct ynode *v, struct nvidia_conf *c)
{
	int r;

	if ((r = spec_expect(x, v, Y_SEQ, "stacks.nvidia.branches")) < 0)
		return r;
	if (!v->nkids)
		return spec_err(x, v, "stacks.nvidia.branches: expected at least one branch");
	if (v->nkids > NV_BRANCHES_MAX)
		return spec_err(x, v, "stacks.nvidia.branches: at most %d branches",
				NV_BRANCHES_MAX);
	for (size_t i = 0; i < v->nkids; i++) {
		int b;
		if ((r = spec_get_int(x, v->kids[i], "stacks.nvidia.branches", NV_BRANCH_MIN,
				      NV_BRANCH_MAX, &b)) < 0)
			return r;
		for (size_t k = 0; k < c->nbranches; k++)
			if (c->branches[k] == (unsigned)b)
				return spec_err(x, v->kids[i], "stacks.nvidia.branches: %d "
						"is listed twice", b);
		c->branches[c->nbranches++] = (unsigned)b;
	}
	return 0;
}

static int nvidia_parse(struct spec_parser *x, const struct ynode *m, void **conf)
{
	static const char *const keys[] = { "branch", "branches", "modules",
		"container_toolkit", "persistenced", NULL };
	struct nvidia_conf *c = xcalloc(1, sizeof(*c));
	const struct ynode *v, *bv;
	int r, b;

	*conf = c;
	c->container_toolkit = true;
	c->persistenced = true;
	c->mark = (struct mark){ x->file, m->line, m->col };
	if ((r = spec_expect(x, m, Y_MAP, "stacks.nvidia")) < 0 ||
	    (r = spec_check_keys(x, m, "stacks.nvidia", keys)) < 0)
		return r;
	if (!(bv = ymap_get(m, "branch")))
		return spec_err(x, m, "stacks.nvidia: 'branch' is required (the preferred "
				"driver branch, like 580)");
	if ((r = spec_get_int(x, bv, "stacks.nvidia.branch", NV_BRANCH_MIN, NV_BRANCH_MAX,
			      &b)) < 0)
		return r;
	c->branch = (unsigned)b;
	if ((v = ymap_get(m, "branches"))) {
		if ((r = parse_branches(x, v, c)) < 0)
			return r;
		size_t k;
		for (k = 0; k < c->nbranches && c->branches[k] != c->branch; k++)
			;
		if (k == c->nbranches)
			return spec_err(x, v, "stacks.nvidia.branches: does not list the "
					"preferred branch %u", c->branch);
	} else {
		/* the preferred branch and the legacy branches of the table */
		c->branches[c->nbranches++] = c->branch;
		for (enum nv_arch a = NV_KEPLER; a <= NV_BLACKWELL; a++) {
			unsigned l = nv_arch_legacy(a);
			size_t k;
			for (k = 0; k < c->nbranches && c->branches[k] != l; k++)
				;
			if (l && k == c->nbranches)
				c->branches[c->nbranches++] = l;
		}
	}
	qsort(c->branches, c->nbranches, sizeof(c->branches[0]), by_newest);
	if ((v = ymap_get(m, "modules"))) {
		int t;
		if ((r = spec_get_choice(x, v, "stacks.nvidia.modules", modules_names,
					 ARRAY_SIZE(modules_names), &t)) < 0)
			return r;
		c->modules = (enum nv_modules)t;
	}
	if ((v = ymap_get(m, "container_toolkit")) &&
	    (r = spec_get_bool(x, v, "stacks.nvidia.container_toolkit",
			       &c->container_toolkit)) < 0)
		return r;
	if ((v = ymap_get(m, "persistenced")) &&
	    (r = spec_get_bool(x, v, "stacks.nvidia.persistenced", &c->persistenced)) < 0)
		return r;
	return 0;
}

/* ---- the choice ------------------------------------------------------------- */

/* A hex id from facts ("0x10de"), or -1: node-sent, so checked. */
static long hex_id(const json_t *v)
{
	const char *s = json_string_value(v);
	uint64_t n;

	if (!s || strncmp(s, "0x", 2) || strlen(s) > 6 || !s[2])
		return -1;
	for (const char *p = s + 2; *p; p++)
		if (!strchr("0123456789abcdefABCDEF", *p))
			return -1;
	n = strtoull(s + 2, NULL, 16);
	return n <= 0xffff ? (long)n : -1;
}

/* A node-sent name, kept to printable ASCII and the size of out. */
static void copy_name(char *out, size_t size, const char *s)
{
	size_t k = 0;

	for (; s && *s && k + 1 < size; s++)
		out[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	out[k] = '\0';
}

static void card_init(struct nv_card *cd, unsigned device, const json_t *gpu)
{
	const struct nv_gpu *g = nv_gpu_find(device);

	cd->device = device;
	if (g) {
		snprintf(cd->name, sizeof(cd->name), "%s", g->name);
		cd->arch = g->arch;
		cd->legacy = g->legacy;
	} else {
		const char *name = json_string_value(json_object_get(gpu, "model"));
		if (!name)
			name = json_string_value(json_object_get(gpu, "device_name"));
		copy_name(cd->name, sizeof(cd->name), name ? name : "unknown model");
		cd->arch = nv_arch_of_device(device);
		cd->legacy = nv_arch_legacy(cd->arch);
	}
	cd->since = nv_arch_since(cd->arch);
}

static bool card_supports(const struct nv_card *cd, unsigned branch)
{
	return (!cd->legacy || branch <= cd->legacy) && branch >= cd->since;
}

/* "10de:1eb8 Tesla T4 (Turing)", with "2x " for several, into b. */
static void card_text(struct buf *b, const struct nv_card *cd)
{
	if (cd->count > 1)
		buf_printf(b, "%ux ", cd->count);
	buf_printf(b, "10de:%04x %s (%s)", cd->device, cd->name, nv_arch_name(cd->arch));
}

/* The allowed branches, "590, 580, 470", into b. */
static void branches_text(struct buf *b, const struct nvidia_conf *c)
{
	for (size_t i = 0; i < c->nbranches; i++)
		buf_printf(b, "%s%u", i ? ", " : "", c->branches[i]);
}

/* Why a card takes none of the branches: "470 legacy", "needs 570 or newer". */
static void card_bound(struct buf *b, const struct nv_card *cd)
{
	if (cd->legacy)
		buf_printf(b, "%u legacy", cd->legacy);
	else
		buf_printf(b, "needs %u or newer", cd->since);
}

static int node_error(struct kerr *e, const struct nvidia_conf *c, struct buf *b)
{
	int r = kerr_set(e, -EINVAL, "%s; %s:%d:%d: stacks.nvidia", b->s ? b->s : "",
			 c->mark.file, c->mark.line, c->mark.col);
	buf_release(b);
	return r;
}

/* The cards of the node's facts, one entry per model, in device-id order. */
static int collect_cards(const json_t *gpus, const struct node *n, struct nv_choice *out,
			 struct kerr *e)
{
	size_t i;
	json_t *gpu;

	json_array_foreach(gpus, i, gpu) {
		if (hex_id(json_object_get(gpu, "vendor_id")) != 0x10de)
			continue;
		long dev = hex_id(json_object_get(gpu, "device_id"));
		if (dev < 0)
			return kerr_set(e, -EINVAL, "%s: an NVIDIA GPU in the facts has no "
					"valid device_id", n->name);
		size_t k;
		for (k = 0; k < out->ncards && out->cards[k].device != (unsigned)dev; k++)
			;
		if (k == out->ncards) {
			if (k == NV_MAX_MODELS)
				return kerr_set(e, -E2BIG, "%s: more than %d NVIDIA GPU models",
						n->name, NV_MAX_MODELS);
			/* keep them in device-id order: the note does not depend on
			 * the order the facts list them in */
			while (k > 0 && out->cards[k - 1].device > (unsigned)dev) {
				out->cards[k] = out->cards[k - 1];
				k--;
			}
			memset(&out->cards[k], 0, sizeof(out->cards[k]));
			card_init(&out->cards[k], (unsigned)dev, gpu);
			out->ncards++;
		}
		out->cards[k].count++;
	}
	return 0;
}

/* The preferred branch if every card takes it, else the newest allowed
 * one that every card takes; 0 if none. */
static unsigned pick_branch(const struct nvidia_conf *c, const struct nv_choice *ch)
{
	for (size_t i = 0; i < c->nbranches + 1; i++) {
		unsigned b = i ? c->branches[i - 1] : c->branch;
		size_t k;
		for (k = 0; k < ch->ncards && card_supports(&ch->cards[k], b); k++)
			;
		if (k == ch->ncards)
			return b;
	}
	return 0;
}

/* No allowed branch fits: name a card no branch takes, else the pair. */
static int branch_error(const struct nvidia_conf *c, const struct nv_choice *ch,
			const struct node *n, struct kerr *e)
{
	struct buf b;

	buf_init(&b, 0);
	for (size_t k = 0; k < ch->ncards; k++) {
		const struct nv_card *cd = &ch->cards[k];
		size_t i;
		for (i = 0; i < c->nbranches && !card_supports(cd, c->branches[i]); i++)
			;
		if (i < c->nbranches)
			continue;
		buf_printf(&b, "%s: ", n->name);
		card_text(&b, cd);
		buf_adds(&b, ": no configured branch supports it (");
		card_bound(&b, cd);
		buf_adds(&b, "; allowed: ");
		branches_text(&b, c);
		buf_adds(&b, ")");
		return node_error(e, c, &b);
	}
	/* the cards whose bounds exclude each other (a K80 and a B200) */
	buf_printf(&b, "%s: no configured branch supports every card together:", n->name);
	bool first = true;
	for (size_t k = 0; k < ch->ncards; k++) {
		const struct nv_card *cd = &ch->cards[k];
		if (!cd->legacy && !cd->since)
			continue;
		buf_adds(&b, first ? " " : ", ");
		card_text(&b, cd);
		buf_adds(&b, " ");
		card_bound(&b, cd);
		first = false;
	}
	return node_error(e, c, &b);
}

/* The oldest card (pre-Turing keeps a node proprietary), and a Blackwell
 * card (needs open); NULL when none. */
static const struct nv_card *oldest_card(const struct nv_choice *ch)
{
	const struct nv_card *o = NULL;
	for (size_t k = 0; k < ch->ncards; k++)
		if (!o || ch->cards[k].arch < o->arch)
			o = &ch->cards[k];
	return o;
}

static const struct nv_card *open_only_card(const struct nv_choice *ch)
{
	for (size_t k = 0; k < ch->ncards; k++)
		if (nv_arch_needs_open(ch->cards[k].arch))
			return &ch->cards[k];
	return NULL;
}

/* Open or proprietary modules for the chosen branch, with the reason when
 * auto could not take open ones; errors name the card in the way. */
static int pick_modules(const struct nvidia_conf *c, struct nv_choice *ch,
			const struct node *n, struct buf *why, struct kerr *e)
{
	const struct nv_card *old = oldest_card(ch), *blackwell = open_only_card(ch);
	bool old_card = !nv_arch_has_open(old->arch);
	bool can_open = !old_card && ch->branch >= NV_OPEN_SINCE;
	struct buf b;

	buf_init(&b, 0);
	if (c->modules == NV_MODULES_PROPRIETARY && blackwell) {
		buf_printf(&b, "%s: ", n->name);
		card_text(&b, blackwell);
		buf_adds(&b, " needs open kernel modules; stacks.nvidia.modules is proprietary");
		return node_error(e, c, &b);
	}
	if ((c->modules == NV_MODULES_OPEN || blackwell) && !can_open) {
		buf_printf(&b, "%s: ", n->name);
		if (blackwell) {
			card_text(&b, blackwell);
			buf_adds(&b, " needs open kernel modules, ");
		} else {
			buf_adds(&b, "stacks.nvidia.modules is open, ");
		}
		if (old_card) {
			card_text(&b, old);
			buf_adds(&b, " has none (Turing and newer only)");
		} else {
			buf_printf(&b, "branch %u has none (%u and newer)", ch->branch,
				   NV_OPEN_SINCE);
		}
		return node_error(e, c, &b);
	}
	ch->open = c->modules != NV_MODULES_PROPRIETARY && can_open;
	if (!ch->open && c->modules == NV_MODULES_AUTO) {
		if (old_card)
			buf_printf(why, " (%s card)", nv_arch_name(old->arch));
		else
			buf_printf(why, " (branch %u has no open modules)", ch->branch);
	}
	return 0;
}

int nvidia_choose(const void *conf, const json_t *gpus, const struct node *n,
		  struct nv_choice *out, struct kerr *e)
{
	const struct nvidia_conf *c = conf;
	struct buf note, why;
	int r;

	memset(out, 0, sizeof(*out));
	if (!gpus)
		return 0;
	if ((r = collect_cards(gpus, n, out, e)) < 0 || !out->ncards)
		return r;
	for (size_t k = 0; k < out->ncards; k++) {
		const struct nv_card *cd = &out->cards[k];
		if (cd->arch == NV_ARCH_UNKNOWN) {
			buf_init(&note, 0);
			buf_printf(&note, "%s: ", n->name);
			card_text(&note, cd);
			buf_adds(&note, ": not in kiln's NVIDIA table and outside every known "
				 "chip's device ids");
			return node_error(e, c, &note);
		}
	}
	if (!(out->branch = pick_branch(c, out)))
		return branch_error(c, out, n, e);
	buf_init(&why, 0);
	if ((r = pick_modules(c, out, n, &why, e)) < 0) {
		buf_release(&why);
		return r;
	}
	buf_init(&note, 0);
	buf_printf(&note, "%s: ", n->name);
	for (size_t k = 0; k < out->ncards; k++) {
		if (k)
			buf_adds(&note, ", ");
		card_text(&note, &out->cards[k]);
	}
	buf_printf(&note, " \u2192 %u", out->branch);
	if (out->branch != c->branch)
		buf_printf(&note, " (%u not supported)", c->branch);
	buf_printf(&note, ", %s modules%s", out->open ? "open" : "proprietary",
		   why.s ? why.s : "");
	snprintf(out->note, sizeof(out->note), "%s", note.s);
	buf_release(&note);
	buf_release(&why);
	return 0;
}

/* ---- phases ------------------------------------------------------------------ */

/* A kernel release as packages name it: node-sent, so checked. */
static bool valid_release(const char *s)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789._+-~";
	size_t n = s ? strlen(s) : 0;
	return n && n <= 64 && strspn(s, ok) == n;
}

static const char *os_field(const json_t *os, const char *key)
{
	return json_string_value(json_object_get(os, key));
}

/* apt (Debian, Ubuntu; NVIDIA's CUDA repository): the branch pinning
 * package first (it must be in place before the driver resolves), then the
 * driver meta-package of the flavour. */
static void render_apt(const struct nvidia_conf *c, const struct nv_choice *ch,
		       const char *release, json_t *list)
{
	char *headers = xasprintf("linux-headers-%s", release);
	char *pin = xasprintf("nvidia-driver-pinning-%u", ch->branch);
	const char *first[] = { headers, pin };
	const char *driver[] = { ch->open ? "nvidia-open" : "cuda-drivers",
				 "nvidia-container-toolkit" };

	json_array_append_new(list, res_package(first, 2, true));
	json_array_append_new(list, res_package(driver, c->container_toolkit ? 2 : 1, true));
	free(headers);
	free(pin);
}

/* dnf (RHEL 8 and 9 and rebuilds; NVIDIA's CUDA repository): the module
 * stream BRANCH-open or BRANCH-dkms, installed unless that stream already
 * is; a reset first, so another enabled stream does not block it. */
static void render_dnf(const struct nvidia_conf *c, const struct nv_choice *ch,
		       const char *release, json_t *list)
{
	char *devel = xasprintf("kernel-devel-%s", release);
	char *hdrs = xasprintf("kernel-headers-%s", release);
	const char *first[] = { devel, hdrs };
	const char *flavour = ch->open ? "open" : "dkms";
	char *cmd = xasprintf("dnf -y -q module reset nvidia-driver && dnf -y -q module "
			      "install nvidia-driver:%u-%s", ch->branch, flavour);
	char *unless = xasprintf("dnf -q module list --installed nvidia-driver 2>/dev/null | "
				 "grep -Eq '^nvidia-driver +%u-%s( |$)'", ch->branch, flavour);

	json_array_append_new(list, res_package(first, 2, true));
	json_array_append_new(list, res_command(cmd, NULL, unless));
	if (c->container_toolkit) {
		const char *tk[] = { "nvidia-container-toolkit" };
		json_array_append_new(list, res_package(tk, 1, true));
	}
	free(devel);
	free(hdrs);
	free(cmd);
	free(unless);
}

/* The major version of a version_id ("9.3" -> 9), or -1. */
static int major_version(const char *v)
{
	uint64_t n;
	char head[8];
	size_t k = v ? strcspn(v, ".") : 0;

	if (!k || k >= sizeof(head))
		return -1;
	memcpy(head, v, k);
	head[k] = '\0';
	return parse_u64(head, 0, 999, &n) < 0 ? -1 : (int)n;
}

/* Phase driver: headers, the driver on the chosen branch, the toolkit. */
static int render_driver(const struct render_ctx *rc, const void *conf, const struct node *n,
			 struct render_out *out, struct kerr *e)
{
	const struct nvidia_conf *c = conf;
	const json_t *os = render_fact(rc, n, "os");
	struct nv_choice ch;
	int r;

	if ((r = nvidia_choose(c, render_fact(rc, n, "gpus"), n, &ch, e)) < 0 || !ch.ncards)
		return r;
	const char *family = os_field(os, "family");
	const char *release = json_string_value(json_object_get(render_fact(rc, n, "kernel"),
								 "release"));
	if (!valid_release(release))
		return kerr_set(e, -EINVAL, "%s: the facts have no usable kernel.release "
				"(the driver needs the running kernel's headers)", n->name);
	if (family && !strcmp(family, "debian")) {
		render_apt(c, &ch, release, out->resources);
	} else if (family && !strcmp(family, "redhat")) {
		int major = major_version(os_field(os, "version_id"));
		if (major != 8 && major != 9) {
			char v[32];
			copy_name(v, sizeof(v), os_field(os, "version_id"));
			return kerr_set(e, -ENOTSUP, "%s: %s %s: the nvidia stack installs from "
					"dnf module streams, which only RHEL 8 and 9 have", n->name,
					"redhat", v[0] ? v : "(no version_id)");
		}
		render_dnf(c, &ch, release, out->resources);
	} else {
		char f[32];
		copy_name(f, sizeof(f), family);
		return kerr_set(e, -ENOTSUP, "%s: os family '%s': the nvidia stack knows "
				"debian and redhat", n->name, f[0] ? f : "unknown");
	}
	/* the driver is in use only once the module is: a reboot if it is not */
	char want[16];
	snprintf(want, sizeof(want), "%u.", ch.branch);
	json_array_append_new(out->resources, res_reboot("nvidia", "nvidia", want));
	strv_push(&out->notes, ch.note);
	return 0;
}

/* Phase persistence: nvidia-persistenced, where the node has cards. */
static int render_persistence(const struct render_ctx *rc, const void *conf,
			      const struct node *n, struct render_out *out, struct kerr *e)
{
	const struct nvidia_conf *c = conf;
	struct nv_choice ch;
	int r;

	if ((r = nvidia_choose(c, render_fact(rc, n, "gpus"), n, &ch, e)) < 0 || !ch.ncards)
		return r;
	/* after the driver phase (and its reboot): the loaded driver is the branch */
	char *cmd = xasprintf("echo 'the loaded NVIDIA driver is not branch %u "
			      "(/proc/driver/nvidia/version)' >&2; exit 1", ch.branch);
	char *unless = xasprintf("grep -q ' %u\\.' /proc/driver/nvidia/version", ch.branch);
	json_array_append_new(out->resources, res_command(cmd, NULL, unless));
	free(cmd);
	free(unless);
	if (c->persistenced)
		json_array_append_new(out->resources,
				      res_service("nvidia-persistenced", true, true, NULL, 0));
	return 0;
}

static const struct stack_phase nvidia_phases[] = {
	{ "driver", render_driver },
	{ "persistence", render_persistence },
};

const struct stack_type stack_nvidia = {
	.name = NV_STACK,
	.summary = "NVIDIA drivers: the branch and module flavour each node's GPUs allow",
	.parse = nvidia_parse,
	.free = nvidia_free,
	.phases = nvidia_phases,
	.nphases = ARRAY_SIZE(nvidia_phases),
	.facts = (const char *const[]){ "os", "kernel", "gpus", NULL },
};
