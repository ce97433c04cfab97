/* Jobs on Slurm: parsing, the placement check, the submit and list scripts (jobs.h). */
#include "jobs.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_MAX 256             /* a squeue/sacct field kept, bytes */

void jobs_node_release(struct jobs_node *n)
{
	if (!n)
		return;
	free(n->name);
	for (size_t i = 0; i < n->ngpus; i++)
		free(n->gpus[i].type);
	strv_release(&n->partitions);
	memset(n, 0, sizeof(*n));
}

void jobs_request_init(struct jobs_request *r)
{
	memset(r, 0, sizeof(*r));
	r->nodes = 1;
}

void jobs_request_release(struct jobs_request *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->gpu_type);
	free(r->time);
	free(r->begin);
	free(r->cron);
	free(r->partition);
	free(r->output);
	strv_release(&r->argv);
	jobs_request_init(r);
}

/* ---- parsing what the user typed ---------------------------------------------- */

/* A decimal in [lo, hi] spanning all of s[0..n). */
static bool number(const char *s, size_t n, long long lo, long long hi, long long *out)
{
	long long v = 0;

	if (n == 0 || n > 12)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < lo || v > hi)
		return false;
	if (out)
		*out = v;
	return true;
}

static bool all_of(const char *s, const char *set)
{
	return strspn(s, set) == strlen(s);
}

bool jobs_name_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= JOBS_NAME_MAX &&
	       all_of(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
}

int jobs_parse_gpus(const char *s, struct jobs_request *r, struct kerr *e)
{
	const char *colon = strchr(s, ':');
	const char *count = colon ? colon + 1 : s;
	long long n;

	if (colon) {
		size_t tl = (size_t)(colon - s);
		if (tl == 0 || tl > 32 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") != tl)
			return kerr_set(e, -EINVAL, "--gpus '%s': the type must be 1-32 of "
				"a-z 0-9 _ - (the Slurm GPU type, as 'kiln plan' shows it: a100, t4)", s);
	}
	if (!number(count, strlen(count), 1, JOBS_GPUS_MAX, &n))
		return kerr_set(e, -EINVAL, "--gpus '%s': the count must be 1..%d (GPUs on each node)",
				s, JOBS_GPUS_MAX);
	free(r->gpu_type);
	r->gpu_type = colon ? xstrndup(s, (size_t)(colon - s)) : NULL;
	r->gpus = (int)n;
	return 0;
}

int jobs_parse_mem(const char *s, int64_t *mb, struct kerr *e)
{
	size_t n = strspn(s, "0123456789");
	long long v;
	int64_t scale_kb;

	switch (toupper((unsigned char)s[n])) {
	case '\0': scale_kb = 1024; break;                       /* MiB, as Slurm */
	case 'K': scale_kb = 1; break;
	case 'M': scale_kb = 1024; break;
	case 'G': scale_kb = 1024 * 1024; break;
	case 'T': scale_kb = 1024LL * 1024 * 1024; break;
	default: goto bad;
	}
	if (s[n] && s[n + 1])
		goto bad;
	if (!number(s, n, 1, 1LL << 40, &v) || v > (INT64_MAX / 1024) / scale_kb)
		goto bad;
	int64_t kb = v * scale_kb;
	if (kb > (1LL << 40))                                   /* 1 PiB */
		goto bad;
	*mb = (kb + 1023) / 1024;
	return 0;
bad:
	return kerr_set(e, -EINVAL, "--mem '%s': a size such as 512M, 16G or 1T (per node)", s);
}

/* 1-3 colon-separated numbers: their count in *parts. */
static bool colon_numbers(const char *s, int *parts)
{
	int k = 0;

	for (;;) {
		size_t n = strspn(s, "0123456789");
		if (!number(s, n, 0, 99999999, NULL) || ++k > 3)
			return false;
		s += n;
		if (!*s)
			break;
		if (*s++ != ':')
			return false;
	}
	*parts = k;
	return true;
}

int jobs_check_time(const char *s, struct kerr *e)
{
	const char *dash = strchr(s, '-');
	int parts;

	if (!strcmp(s, "UNLIMITED") || !strcmp(s, "unlimited") || !strcmp(s, "infinite"))
		return 0;
	if (dash && number(s, (size_t)(dash - s), 0, 9999, NULL) && colon_numbers(dash + 1, &parts))
		return 0;
	if (!dash && colon_numbers(s, &parts))
		return 0;
	return kerr_set(e, -EINVAL, "--time '%s': a Slurm time limit: MINUTES, M:S, H:M:S, "
			"D-H, D-H:M, D-H:M:S or UNLIMITED", s);
}

/* "HH:MM" or "HH:MM:SS" in range. */
static bool clock_ok(const char *s)
{
	size_t n = strlen(s);

	if (n != 5 && n != 8)
		return false;
	if (s[2] != ':' || (n == 8 && s[5] != ':'))
		return false;
	return number(s, 2, 0, 23, NULL) && number(s + 3, 2, 0, 59, NULL) &&
	       (n == 5 || number(s + 6, 2, 0, 59, NULL));
}

int jobs_parse_at(const char *s, char **begin, struct kerr *e)
{
	if (!strcmp(s, "now")) {
		*begin = xstrdup("now");
		return 0;
	}
	if (!strncmp(s, "now+", 4)) {
		const char *p = s + 4;
		size_t n = strspn(p, "0123456789");
		long long v, mult = 1;
		if (p[n] && p[n + 1])
			goto bad;
		switch (p[n]) {
		case '\0': case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: goto bad;
		}
		if (!number(p, n, 0, 400LL * 86400, &v) || v * mult > 400LL * 86400)
			goto bad;
		*begin = xasprintf("now+%lld", v * mult);
		return 0;
	}
	if (clock_ok(s)) {
		*begin = xstrdup(s);
		return 0;
	}
	/* YYYY-MM-DDTHH:MM[:SS] */
	if (strlen(s) >= 16 && s[4] == '-' && s[7] == '-' && s[10] == 'T' &&
	    number(s, 4, 1970, 9999, NULL) && number(s + 5, 2, 1, 12, NULL) &&
	    number(s + 8, 2, 1, 31, NULL) && clock_ok(s + 11)) {
		*begin = strlen(s) == 16 ? xasprintf("%s:00", s) : xstrdup(s);
		return 0;
	}
bad:
	return kerr_set(e, -EINVAL, "--at '%s': now, now+N[s|m|h|d], HH:MM[:SS] or "
			"YYYY-MM-DDTHH:MM[:SS]", s);
}

int jobs_check_cron(const char *s, struct kerr *e)
{
	static const char *const named[] = { "@hourly", "@daily", "@midnight", "@weekly",
					     "@monthly", "@yearly", "@annually" };
	int fields = 0;
	const char *p = s;

	for (size_t i = 0; i < ARRAY_SIZE(named); i++)
		if (!strcmp(s, named[i]))
			return 0;
	while (*p) {
		p += strspn(p, " \t");
		size_t n = strcspn(p, " \t");
		if (!n)
			break;
		if (n > 64 || strspn(p, "0123456789*,/-") != n)
			goto bad;
		fields++;
		p += n;
	}
	if (fields == 5)
		return 0;
bad:
	return kerr_set(e, -EINVAL, "--every '%s': five cron fields (minute hour day month "
			"weekday, each of 0-9 * , / -) or @hourly, @daily, @weekly, @monthly, "
			"@yearly", s);
}

/* ---- the placement check -------------------------------------------------------- */

/* GPUs a node offers for rq: of rq's type, or of any type. */
static int gpus_for(const struct jobs_node *n, const char *type)
{
	int sum = 0;

	for (size_t i = 0; i < n->ngpus; i++)
		if (!type || !strcmp(n->gpus[i].type, type))
			sum += n->gpus[i].count;
	return sum;
}

enum { FIT_GPU = 1, FIT_CPU = 2, FIT_MEM = 4, FIT_ALL = 7 };

static int fits(const struct jobs_node *n, const struct jobs_request *rq)
{
	int f = 0;

	if (!rq->gpus || gpus_for(n, rq->gpu_type) >= rq->gpus)
		f |= FIT_GPU;
	if (!rq->cpus || n->cpus >= rq->cpus)
		f |= FIT_CPU;
	if (!rq->mem_mb || n->mem_mb >= rq->mem_mb)
		f |= FIT_MEM;
	return f;
}

/* "2 a100 GPUs", "1 GPU": what one node must have. */
static void gpu_words(const struct jobs_request *rq, char *out, size_t n)
{
	snprintf(out, n, "%d %s%sGPU%s", rq->gpus, rq->gpu_type ? rq->gpu_type : "",
		 rq->gpu_type ? " " : "", rq->gpus == 1 ? "" : "s");
}

/* "node2, node3" (at most 8, then "..."), the nodes that passed mask. */
static void some_names(const struct jobs_node *nodes, size_t n, const bool *in, const int *f,
		       int mask, char *out, size_t cap)
{
	size_t shown = 0, len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && len + 1 < cap; i++) {
		if (!in[i] || (f[i] & mask) != mask)
			continue;
		if (shown++ == 8) {
			snprintf(out + len, cap - len, ", ...");
			return;
		}
		len += (size_t)snprintf(out + len, cap - len, "%s%s", shown > 1 ? ", " : "",
					nodes[i].name);
		if (len >= cap)
			len = cap - 1;
	}
}

/* The shortfall of one criterion, or 0 when enough nodes meet it. */
static int short_one(const struct jobs_node *nodes, size_t n, const bool *in, const int *f,
		     const struct jobs_request *rq, int mask, struct kerr *e)
{
	size_t count = 0, best = SIZE_MAX;
	int64_t most = -1;
	char what[96], names[256];

	for (size_t i = 0; i < n; i++) {
		if (!in[i])
			continue;
		count += (f[i] & mask) == mask;
		int64_t have = mask == FIT_GPU ? gpus_for(&nodes[i], rq->gpu_type)
			     : mask == FIT_CPU ? nodes[i].cpus : nodes[i].mem_mb;
		if (have > most) {
			most = have;
			best = i;
		}
	}
	if (count >= (size_t)rq->nodes)
		return 0;
	if (mask == FIT_GPU)
		gpu_words(rq, what, sizeof(what));
	else if (mask == FIT_CPU)
		snprintf(what, sizeof(what), "%d CPUs", rq->cpus);
	else
		snprintf(what, sizeof(what), "%" PRId64 " MiB of memory", rq->mem_mb);
	if (count == 0) {
		if (mask == FIT_GPU && rq->gpu_type && most == 0)
			return kerr_set(e, -ENOSPC, "no node has %s GPUs", rq->gpu_type);
		if (mask == FIT_GPU && most == 0)
			return kerr_set(e, -ENOSPC, "no node has a GPU");
		return kerr_set(e, -ENOSPC, "no node has %s (the most on one node: %" PRId64
				", on %s)%s", what, most, best == SIZE_MAX ? "-" : nodes[best].name,
				mask == FIT_GPU && rq->nodes == 1
					? "; a job's GPUs are per node: use --nodes to span nodes"
					: "");
	}
	some_names(nodes, n, in, f, mask, names, sizeof(names));
	return kerr_set(e, -ENOSPC, "--nodes %d: only %zu node%s ha%s %s (%s)", rq->nodes, count,
			count == 1 ? "" : "s", count == 1 ? "s" : "ve", what, names);
}

int jobs_place(const struct jobs_node *nodes, size_t n, const struct jobs_request *rq,
	       struct strv *fit, struct kerr *e)
{
	bool *in = xcalloc(n + 1, sizeof(*in));
	int *f = xcalloc(n + 1, sizeof(*f));
	size_t avail = 0, all = 0;
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		in[i] = !rq->partition || strv_contains(&nodes[i].partitions, rq->partition);
		avail += in[i];
		f[i] = in[i] ? fits(&nodes[i], rq) : 0;
		all += in[i] && f[i] == FIT_ALL;
	}
	if (avail == 0) {
		r = rq->partition ? kerr_set(e, -ENOSPC, "partition '%s' has no nodes", rq->partition)
				  : kerr_set(e, -ENOSPC, "the cluster has no compute nodes");
		goto out;
	}
	if ((size_t)rq->nodes > avail) {
		r = kerr_set(e, -ENOSPC, "--nodes %d: %s has %zu compute node%s", rq->nodes,
			     rq->partition ? "the partition" : "the cluster", avail,
			     avail == 1 ? "" : "s");
		goto out;
	}
	if ((r = short_one(nodes, n, in, f, rq, FIT_GPU, e)) < 0 ||
	    (r = short_one(nodes, n, in, f, rq, FIT_CPU, e)) < 0 ||
	    (r = short_one(nodes, n, in, f, rq, FIT_MEM, e)) < 0)
		goto out;
	if (all < (size_t)rq->nodes) {
		/* each need is met somewhere, but not together */
		char what[160], names[256];
		size_t len = 0;
		what[0] = '\0';
		if (rq->gpus) {
			gpu_words(rq, what, sizeof(what));
			len = strlen(what);
		}
		if (rq->cpus)
			len += (size_t)snprintf(what + len, sizeof(what) - len, "%s%d CPUs",
						len ? ", " : "", rq->cpus);
		if (rq->mem_mb && len < sizeof(what))
			snprintf(what + len, sizeof(what) - len, "%s%" PRId64 " MiB", len ? ", " : "",
				 rq->mem_mb);
		if (all == 0) {
			r = kerr_set(e, -ENOSPC, "no node has %s together", what);
		} else {
			some_names(nodes, n, in, f, FIT_ALL, names, sizeof(names));
			r = kerr_set(e, -ENOSPC, "--nodes %d: only %zu node%s ha%s %s together (%s)",
				     rq->nodes, all, all == 1 ? "" : "s", all == 1 ? "s" : "ve", what,
				     names);
		}
		goto out;
	}
	for (size_t i = 0; fit && i < n; i++)
		if (in[i] && f[i] == FIT_ALL)
			strv_push(fit, nodes[i].name);
out:
	free(in);
	free(f);
	return r;
}

/* ---- the commands run on the login node ---------------------------------------- */

/* The request's sbatch options, each " --opt=VALUE" (user values quoted). */
static void options(const struct jobs_request *rq, struct buf *b)
{
	if (rq->name) {
		buf_adds(b, " --job-name=");
		buf_add_shquote(b, rq->name);
	}
	buf_printf(b, " --nodes=%d --ntasks-per-node=1", rq->nodes);
	if (rq->cpus)
		buf_printf(b, " --cpus-per-task=%d", rq->cpus);
	if (rq->mem_mb)
		buf_printf(b, " --mem=%" PRId64 "M", rq->mem_mb);
	if (rq->gpus) {
		buf_adds(b, " --gpus-per-node=");
		if (rq->gpu_type) {
			buf_add_shquote(b, rq->gpu_type);
			buf_adds(b, ":");
		}
		buf_printf(b, "%d", rq->gpus);
	}
	if (rq->time) {
		buf_adds(b, " --time=");
		buf_add_shquote(b, rq->time);
	}
	if (rq->partition) {
		buf_adds(b, " --partition=");
		buf_add_shquote(b, rq->partition);
	}
	if (rq->output) {
		buf_adds(b, " --output=");
		buf_add_shquote(b, rq->output);
	}
}

/*
 * The command line as one shell string, each argument quoted, under srun:
 * one task on each of the job's nodes (a batch script alone would run it
 * on the first node only), each seeing its node's GPUs.
 */
static void command_line(const struct jobs_request *rq, struct buf *b)
{
	buf_adds(b, "exec srun");
	for (size_t i = 0; i < rq->argv.n; i++) {
		buf_adds(b, " ");
		buf_add_shquote(b, rq->argv.v[i]);
	}
}

/* In a crontab line '%' is a newline: escape every one. */
static void cron_escape(const char *s, struct buf *out)
{
	for (; *s; s++) {
		if (*s == '%')
			buf_addch(out, '\\');
		buf_addch(out, *s);
	}
}

/*
 * The crontab edit for name: the user's table without name's entry (the
 * line ending "# kiln-run:NAME"), plus line when not NULL, installed from a
 * temporary file that is always removed.  crontab -l fails when there is
 * no table yet: that is an empty one.
 */
static void crontab_edit(const char *name, const char *line, struct buf *out)
{
	struct buf re = BUF_INIT;

	/* names are [A-Za-z0-9._-]: only '.' needs escaping in the pattern */
	buf_adds(&re, " # kiln-run:");
	for (const char *p = name; *p; p++) {
		if (*p == '.')
			buf_addch(&re, '\\');
		buf_addch(&re, *p);
	}
	buf_addch(&re, '$');
	buf_adds(out, "t=$(mktemp) || exit 1; { crontab -l 2>/dev/null || true; } | grep -v -e ");
	buf_add_shquote(out, re.s);
	buf_adds(out, " >\"$t\"");
	if (line) {
		buf_adds(out, "; printf '%s\\n' ");
		buf_add_shquote(out, line);
		buf_adds(out, " >>\"$t\"");
	}
	buf_adds(out, "; crontab \"$t\"; rc=$?; rm -f \"$t\"; [ $rc = 0 ] && echo cron; exit $rc");
	buf_release(&re);
}

void jobs_submit_script(const struct jobs_request *rq, struct buf *out)
{
	struct buf opts = BUF_INIT, cmd = BUF_INIT, line = BUF_INIT, sub = BUF_INIT;

	options(rq, &opts);
	command_line(rq, &cmd);
	buf_printf(&sub, "sbatch --parsable%s", opts.s ? opts.s : "");
	if (rq->begin) {
		buf_adds(&sub, " --begin=");
		buf_add_shquote(&sub, rq->begin);
	}
	buf_adds(&sub, " --wrap=");
	buf_add_shquote(&sub, cmd.s);
	if (!rq->cron) {
		buf_add(out, sub.s, sub.len);
		goto out;
	}
	/*
	 * --every: an entry in the submitting user's crontab on the login node
	 * (Debian's Slurm 22.05 has no scrontab): cron runs the same sbatch on
	 * the schedule, each run a job of its own.  One entry per name.
	 */
	buf_printf(&line, "%s ", rq->cron);
	cron_escape(sub.s, &line);
	buf_printf(&line, " >/dev/null 2>&1 # kiln-run:%s", rq->name);
	crontab_edit(rq->name, line.s, out);
out:
	buf_release(&opts);
	buf_release(&cmd);
	buf_release(&line);
	buf_release(&sub);
}

int jobs_unschedule_script(const char *name, struct buf *out, struct kerr *e)
{
	if (!jobs_name_ok(name))
		return kerr_set(e, -EINVAL, "schedule name '%s': 1-%d of A-Z a-z 0-9 . _ -", name,
				JOBS_NAME_MAX);
	crontab_edit(name, NULL, out);
	return 0;
}

#define SACCT_MARK "--kiln-sacct--"

const char *jobs_list_script(void)
{
	/* squeue: every job it still holds (-r: array tasks one per line) */
	return "squeue -h -a -r -o '%i|%j|%T|%u|%P|%D|%N|%V|%S|%b' 2>/dev/null; "
	       "echo '" SACCT_MARK "'; "
	       "sacct -n -P -X -D -a -S now-7days -o "
	       "JobID,JobName,State,User,Partition,NNodes,NodeList,Submit,Start,End,ExitCode,AllocTRES "
	       "2>/dev/null; true";
}

/* Split line at '|' into exactly want fields (bounded copies); false if not. */
static bool split(const char *line, size_t len, char f[][FIELD_MAX], size_t want)
{
	size_t k = 0, at = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && line[i] != '|') {
			if (at + 1 < FIELD_MAX)
				f[k][at++] = line[i];
			continue;
		}
		f[k][at] = '\0';
		at = 0;
		if (++k > want)
			return false;
	}
	return k == want;
}

/* Slurm's "unset" spellings as JSON null. */
static json_t *field(const char *s)
{
	if (!*s || !strcmp(s, "N/A") || !strcmp(s, "(null)") || !strcmp(s, "Unknown") ||
	    !strcmp(s, "None"))
		return json_null();
	return json_string(s);
}

/*
 * GPUs as "a100:1" (or "2" without a type) from squeue's %b
 * ("gres/gpu:a100:1", "gres:gpu:a100:1", "gpu:1") or sacct's AllocTRES
 * ("...,gres/gpu:a100=1,gres/gpu=1,...").
 */
static json_t *gpus_of(const char *s)
{
	struct buf b = BUF_INIT;
	const char *p = s;

	while ((p = strstr(p, "gpu"))) {
		const char *q = p + 3, *end = q + strcspn(q, ",");
		char item[FIELD_MAX];
		size_t n = (size_t)(end - q);
		p = end;
		if (n == 0 || n >= sizeof(item) || (*q != ':' && *q != '='))
			continue;
		memcpy(item, q + 1, n - 1);
		item[n - 1] = '\0';
		/* "a100=1" (TRES) -> "a100:1"; "a100:1" and "1" stay */
		char *eq = strchr(item, '=');
		if (eq)
			*eq = ':';
		if (*q == '=' && b.len)          /* "gres/gpu=1" after typed ones: a total */
			continue;
		buf_printf(&b, "%s%s", b.len ? "," : "", item);
	}
	json_t *j = b.len ? json_string(b.s) : json_null();
	buf_release(&b);
	return j;
}

static int by_id(const void *a, const void *b)
{
	const json_t *p = *(json_t *const *)a, *q = *(json_t *const *)b;
	const char *x = json_string_value(json_object_get(p, "id"));
	const char *y = json_string_value(json_object_get(q, "id"));
	const char *s = json_string_value(json_object_get(p, "start"));
	const char *t = json_string_value(json_object_get(q, "start"));
	unsigned long long u = strtoull(x, NULL, 10), v = strtoull(y, NULL, 10);
	int r = u < v ? -1 : u > v ? 1 : strcmp(x, y);

	/* runs of one id by start; a run with none (pending) last */
	if (r || s == t)
		return r;
	return !s ? 1 : !t ? -1 : strcmp(s, t);
}

/* "CANCELLED by 0" -> "CANCELLED". */
static void first_word(char *s)
{
	s[strcspn(s, " ")] = '\0';
}

/* A run sacct and squeue both see: squeue's live view wins. */
static bool live(const char *state)
{
	return !strcmp(state, "PENDING") || !strcmp(state, "RUNNING") ||
	       !strcmp(state, "REQUEUED") || !strcmp(state, "SUSPENDED");
}

json_t *jobs_list_parse(const char *text, size_t len)
{
	json_t *byid = json_object(), *out = json_array(), *v;
	bool sacct = false;
	const char *p = text, *end = text + len, *key;
	char f[12][FIELD_MAX];

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *line = p;
		p += n + 1;
		if (n == strlen(SACCT_MARK) && !memcmp(line, SACCT_MARK, n)) {
			sacct = true;
			continue;
		}
		if (!split(line, n, f, sacct ? 12 : 10) || !f[0][0] ||
		    strspn(f[0], "0123456789_[]-,") != strlen(f[0]))
			continue;
		first_word(f[2]);
		if (!sacct) {
			json_object_set_new(byid, f[0], json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,"
							       "s:o,s:n,s:n,s:o}",
				"id", f[0], "name", field(f[1]), "state", field(f[2]),
				"user", field(f[3]), "partition", field(f[4]),
				"nodes", json_integer(atoi(f[5])), "nodelist", field(f[6]),
				"submit", field(f[7]), "start", field(f[8]), "end", "exit",
				"gpus", gpus_of(f[9])));
			continue;
		}
		json_t *j = json_object_get(byid, f[0]);
		if (j && live(f[2])) {
			/* the run squeue holds: its live view, sacct's exit code */
			json_object_set_new(j, "exit", field(f[10]));
			if (json_is_null(json_object_get(j, "gpus")))
				json_object_set_new(j, "gpus", gpus_of(f[11]));
			continue;
		}
		/* a finished run; a requeued job's runs share its id (sacct -D
		 * lists each), so the key is the id and the run's start */
		char k[2 * FIELD_MAX + 2];
		snprintf(k, sizeof(k), "%s@%s", f[0], f[8]);
		json_object_set_new(byid, k, json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,"
						       "s:o,s:o,s:o,s:o}",
			"id", f[0], "name", field(f[1]), "state", field(f[2]),
			"user", field(f[3]), "partition", field(f[4]),
			"nodes", json_integer(atoi(f[5])), "nodelist", field(f[6]),
			"submit", field(f[7]), "start", field(f[8]), "end", field(f[9]),
			"exit", field(f[10]), "gpus", gpus_of(f[11])));
	}
	json_object_foreach(byid, key, v)
		json_array_append(out, v);
	json_decref(byid);
	/* by job id (numerically, then array task), then start */
	size_t n = json_array_size(out);
	json_t **v2 = xcalloc(n + 1, sizeof(*v2));
	for (size_t i = 0; i < n; i++)
		v2[i] = json_incref(json_array_get(out, i));
	qsort(v2, n, sizeof(*v2), by_id);
	json_array_clear(out);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, v2[i]);
	free(v2);
	return out;
}

int jobs_cancel_script(const char *id, struct buf *out, struct kerr *e)
{
	size_t n = strspn(id, "0123456789");

	if (n == 0 || n > 12 || (id[n] && (id[n] != '_' || !number(id + n + 1, strlen(id + n + 1),
								   0, 99999999, NULL))))
		return kerr_set(e, -EINVAL, "job id '%s': digits, or digits_digits for an array task",
				id);
	buf_printf(out, "scancel %s", id);
	return 0;
}
