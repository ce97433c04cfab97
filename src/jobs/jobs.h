/*
 * jobs — ML jobs on the cluster's Slurm, the way `kiln run` and `kiln jobs`
 * put them (docs/jobs.md).  Pure functions: parsing what a user types,
 * deciding whether any set of nodes can hold a request (the placement
 * check), writing the one shell command that submits it on the login node,
 * and reading back what squeue and sacct print there.  Nothing here opens
 * a connection, reads a file or a clock; the command layer does the I/O.
 *
 * Request semantics (every resource is PER NODE, so a request names what
 * one node must have): --nodes N (default 1) distinct nodes, each with
 * --gpus [TYPE:]G GPUs (of that Slurm GPU type), --cpus C CPUs and --mem
 * bytes.  So "--gpus 3" on a cluster whose GPUs are 2 + 1 on two nodes is
 * refused: no node has 3, and Slurm would otherwise be free to spread them.
 *
 * Ownership: struct jobs_request and struct jobs_node own their strings;
 * *_release frees them (NULL-safe, idempotent).  Output JSON is new.
 */
#ifndef KILN_JOBS_H
#define KILN_JOBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

#define JOBS_GPU_TYPES_MAX 8      /* distinct GPU types on one node */
#define JOBS_GPUS_MAX 64          /* GPUs per node a request may ask for */
#define JOBS_NAME_MAX 64          /* job name: [A-Za-z0-9._-]{1,64} */

/* A compute node as Slurm knows it: what the slurm stack renders. */
struct jobs_gpu {
	char *type;               /* the Slurm type ("a100"); never NULL */
	int count;
};
struct jobs_node {
	char *name;
	int cpus;                 /* CPUs= of its NodeName line */
	int64_t mem_mb;           /* RealMemory= */
	struct jobs_gpu gpus[JOBS_GPU_TYPES_MAX];
	size_t ngpus;
	struct strv partitions;   /* partitions it is in */
};
void jobs_node_release(struct jobs_node *n);

struct jobs_request {
	char *name;               /* --name; NULL = Slurm's (the command) */
	int nodes;                /* >= 1 */
	int gpus;                 /* per node; 0 = none asked */
	char *gpu_type;           /* NULL = any type */
	int cpus;                 /* per node; 0 = Slurm's default */
	int64_t mem_mb;           /* per node; 0 = Slurm's default */
	char *time;               /* --time, as Slurm reads it; NULL = partition's */
	char *begin;              /* --at, as sbatch --begin reads it; NULL = now */
	char *cron;               /* --every: five cron fields or @daily...; NULL = once;
				     the command may then hold no newline */
	char *partition;          /* NULL = the default partition */
	char *output;             /* --log PATH: sbatch --output on the node; NULL = Slurm's */
	struct strv argv;         /* the command, argv[0] first; at least one */
};
void jobs_request_init(struct jobs_request *r);
void jobs_request_release(struct jobs_request *r);

/*
 * Parsers for the options of `kiln run`: each checks the whole string and
 * says what is wrong in e ("--gpus 'x:0': the count must be 1..64").
 */
/* "N" or "TYPE:N" (TYPE [a-z0-9_-], 1..32; N 1..JOBS_GPUS_MAX). */
int jobs_parse_gpus(const char *s, struct jobs_request *r, struct kerr *e);
/* "512M", "16G", "1T", "2048" (MiB as Slurm counts them: M = MiB). */
int jobs_parse_mem(const char *s, int64_t *mb, struct kerr *e);
/* Slurm's time limit forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, UNLIMITED. */
int jobs_check_time(const char *s, struct kerr *e);
/*
 * --at: "now", "now+N" with N seconds or N followed by s, m, h or d
 * ("now+15s", "now+2h"), "HH:MM[:SS]" (the next such time), or
 * "YYYY-MM-DDTHH:MM[:SS]" (the node's local time).  *begin gets what sbatch
 * --begin takes ("now+15", "2027-01-31T02:00:00").
 */
int jobs_parse_at(const char *s, char **begin, struct kerr *e);
/* --every: five cron fields ([0-9*,/-] each) or @hourly, @daily, ... */
int jobs_check_cron(const char *s, struct kerr *e);
/* --name and --partition: [A-Za-z0-9._-]{1,64}. */
bool jobs_name_ok(const char *s);

/*
 * The placement check: can rq run now or later on these nodes, counting
 * each node's own GPUs (by type), CPUs and memory, never cluster totals?
 * 0 with the names of every node that fits in *fit (may be NULL); else
 * -ENOSPC and e names the shortfall, e.g.
 *   "no node has 3 a100 GPUs (the most on one node: 2, on node2)"
 *   "--nodes 2: only 1 node has 1 t4 GPU (node3)"
 *   "no node has 2 GPUs, 16 CPUs and 64 GiB together"
 */
int jobs_place(const struct jobs_node *nodes, size_t n, const struct jobs_request *rq,
	       struct strv *fit, struct kerr *e);

/*
 * The shell command, run on the login node, that submits rq: sbatch for a
 * one-off job (prints the job id and nothing else), or, with rq->cron, an
 * edit of the user's crontab that puts that sbatch on the schedule under
 * rq->name, replacing an entry of the same name (prints "cron").  Every
 * user value is single-quoted; '%' escaped for cron.
 */
void jobs_submit_script(const struct jobs_request *rq, struct buf *out);
/* The crontab edit that removes schedule name (kiln jobs cancel --every). */
int jobs_unschedule_script(const char *name, struct buf *out, struct kerr *e);

/*
 * The shell command that lists jobs (squeue and sacct, one output) and the
 * parser of its output into [{id, name, state, user, partition, nodes,
 * nodelist, submit, start, end, exit, gpus}] sorted by id: a job
 * squeue still knows takes squeue's state; sacct adds finished jobs and
 * their end, exit code and GPU TRES ("gres/gpu:a100=1" -> gpus "a100:1").
 * Lines that do not parse are skipped; every string is bounded (256 bytes)
 * and escaped later by the printer, never here.
 */
const char *jobs_list_script(void);
json_t *jobs_list_parse(const char *text, size_t len);

/* The shell command that cancels job id (digits, or digits_digits). */
int jobs_cancel_script(const char *id, struct buf *out, struct kerr *e);

#endif
