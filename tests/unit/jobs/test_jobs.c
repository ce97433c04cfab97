/*
 * jobs: what `kiln run` accepts, the placement check (per node, never
 * totals, with the shortfall named), the scripts it runs on the login
 * node, and the parse of squeue + sacct output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs.h"

static void test_parse_gpus(void **s)
{
	struct jobs_request r;
	struct kerr e = { 0 };

	jobs_request_init(&r);
	assert_int_equal(r.nodes, 1);
	assert_int_equal(jobs_parse_gpus("2", &r, &e), 0);
	assert_int_equal(r.gpus, 2);
	assert_null(r.gpu_type);
	assert_int_equal(jobs_parse_gpus("a100-80g:1", &r, &e), 0);
	assert_int_equal(r.gpus, 1);
	assert_string_equal(r.gpu_type, "a100-80g");
	static const char *const bad[] = { "", "0", "65", "a100:", ":1", "A100:1", "a 1:1",
					   "x:y", "1:2:3", "-1", "1x" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(jobs_parse_gpus(bad[i], &r, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "--gpus"));
	}
	jobs_request_release(&r);
}

static void test_parse_mem_time_at_cron(void **s)
{
	struct kerr e = { 0 };
	int64_t mb;
	char *b = NULL;

	assert_int_equal(jobs_parse_mem("512M", &mb, &e), 0);
	assert_int_equal(mb, 512);
	assert_int_equal(jobs_parse_mem("16G", &mb, &e), 0);
	assert_int_equal(mb, 16384);
	assert_int_equal(jobs_parse_mem("2048", &mb, &e), 0);
	assert_int_equal(mb, 2048);
	assert_int_equal(jobs_parse_mem("1536k", &mb, &e), 0);
	assert_int_equal(mb, 2);                  /* rounded up */
	assert_int_equal(jobs_parse_mem("1T", &mb, &e), 0);
	assert_int_equal(mb, 1024 * 1024);
	static const char *const badmem[] = { "", "G", "0", "12X", "1GB", "-4G", "99999999999999T" };
	for (size_t i = 0; i < ARRAY_SIZE(badmem); i++)
		assert_int_equal(jobs_parse_mem(badmem[i], &mb, &e), -EINVAL);

	static const char *const times[] = { "30", "30:00", "1:30:00", "2-0", "2-12:30",
					     "2-12:30:15", "UNLIMITED" };
	for (size_t i = 0; i < ARRAY_SIZE(times); i++)
		assert_int_equal(jobs_check_time(times[i], &e), 0);
	static const char *const badtimes[] = { "", "1:2:3:4", "a", "1-", "-1", "1-2-3", "1::2",
						"30m" };
	for (size_t i = 0; i < ARRAY_SIZE(badtimes); i++)
		assert_int_equal(jobs_check_time(badtimes[i], &e), -EINVAL);

	static const char *const at[][2] = { { "now", "now" }, { "now+15s", "now+15" },
		{ "now+15", "now+15" }, { "now+2m", "now+120" }, { "now+1h", "now+3600" },
		{ "now+1d", "now+86400" }, { "02:00", "02:00" }, { "23:59:59", "23:59:59" },
		{ "2027-01-31T02:00", "2027-01-31T02:00:00" },
		{ "2027-01-31T02:00:30", "2027-01-31T02:00:30" } };
	for (size_t i = 0; i < ARRAY_SIZE(at); i++) {
		assert_int_equal(jobs_parse_at(at[i][0], &b, &e), 0);
		assert_string_equal(b, at[i][1]);
		free(b);
	}
	static const char *const badat[] = { "", "tomorrow", "now+", "now+5y", "now-5", "24:00",
					     "2027-13-01T00:00", "2027-01-31 02:00", "12:60",
					     "now+401d", "now+1ss" };
	for (size_t i = 0; i < ARRAY_SIZE(badat); i++) {
		assert_int_equal(jobs_parse_at(badat[i], &b, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "--at"));
	}

	static const char *const cron[] = { "* * * * *", "*/5 0-6 1,15 * 1-5", "@daily",
					    "0  2 * * *" };
	for (size_t i = 0; i < ARRAY_SIZE(cron); i++)
		assert_int_equal(jobs_check_cron(cron[i], &e), 0);
	static const char *const badcron[] = { "", "* * * *", "* * * * * *", "@often",
					       "* * * * mon", "*;rm * * * *", "$(x) * * * *" };
	for (size_t i = 0; i < ARRAY_SIZE(badcron); i++)
		assert_int_equal(jobs_check_cron(badcron[i], &e), -EINVAL);

	assert_true(jobs_name_ok("train-7.b_2"));
	assert_false(jobs_name_ok(""));
	assert_false(jobs_name_ok("a b"));
	assert_false(jobs_name_ok("x'y"));
}

/* The acceptance cluster: node2 2x A100, node3 1x T4, node4 CPU only. */
static void lab_nodes(struct jobs_node n[3])
{
	memset(n, 0, 3 * sizeof(*n));
	n[0].name = xstrdup("node2");
	n[0].cpus = 8;
	n[0].mem_mb = 16000;
	n[0].gpus[0] = (struct jobs_gpu){ xstrdup("a100"), 2 };
	n[0].ngpus = 1;
	n[1].name = xstrdup("node3");
	n[1].cpus = 4;
	n[1].mem_mb = 8000;
	n[1].gpus[0] = (struct jobs_gpu){ xstrdup("t4"), 1 };
	n[1].ngpus = 1;
	n[2].name = xstrdup("node4");
	n[2].cpus = 16;
	n[2].mem_mb = 64000;
	for (int i = 0; i < 3; i++)
		strv_push(&n[i].partitions, "main");
	strv_push(&n[0].partitions, "a100");
	strv_push(&n[1].partitions, "t4");
}

static int place(const struct jobs_node *n, const char *gpus, int nodes, int cpus, int64_t mem,
		 const char *part, struct strv *fit, struct kerr *e)
{
	struct jobs_request r;
	int ret;

	jobs_request_init(&r);
	if (gpus)
		assert_int_equal(jobs_parse_gpus(gpus, &r, e), 0);
	r.nodes = nodes;
	r.cpus = cpus;
	r.mem_mb = mem;
	r.partition = part ? xstrdup(part) : NULL;
	ret = jobs_place(n, 3, &r, fit, e);
	jobs_request_release(&r);
	return ret;
}

static void test_place(void **s)
{
	struct jobs_node n[3];
	struct kerr e = { 0 };
	struct strv fit = { 0 };

	lab_nodes(n);
	/* fits: where it may run */
	assert_int_equal(place(n, "a100:1", 1, 0, 0, NULL, &fit, &e), 0);
	assert_int_equal(fit.n, 1);
	assert_string_equal(fit.v[0], "node2");
	strv_release(&fit);
	assert_int_equal(place(n, "t4:1", 1, 0, 0, NULL, &fit, &e), 0);
	assert_string_equal(fit.v[0], "node3");
	strv_release(&fit);
	assert_int_equal(place(n, "1", 2, 0, 0, NULL, &fit, &e), 0);     /* any type, 2 nodes */
	assert_int_equal(fit.n, 2);
	strv_release(&fit);
	assert_int_equal(place(n, NULL, 2, 0, 0, NULL, NULL, &e), 0);
	assert_int_equal(place(n, NULL, 1, 16, 64000, NULL, NULL, &e), 0);

	/* no node has 3 A100s (2 is the most) */
	assert_int_equal(place(n, "a100:3", 1, 0, 0, NULL, NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "no node has 3 a100 GPUs (the most on one node: 2, on node2); "
			    "a job's GPUs are per node: use --nodes to span nodes");
	/* 3 GPUs exist (2 + 1), but never on one node: totals do not count */
	assert_int_equal(place(n, "3", 1, 0, 0, NULL, NULL, &e), -ENOSPC);
	assert_non_null(strstr(e.msg, "no node has 3 GPUs (the most on one node: 2, on node2)"));
	/* a type nobody has */
	assert_int_equal(place(n, "h100:1", 1, 0, 0, NULL, NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "no node has h100 GPUs");
	/* two nodes with a T4: one */
	assert_int_equal(place(n, "t4:1", 2, 0, 0, NULL, NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "--nodes 2: only 1 node has 1 t4 GPU (node3)");
	/* more nodes than the cluster, or the partition, has */
	assert_int_equal(place(n, NULL, 4, 0, 0, NULL, NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "--nodes 4: the cluster has 3 compute nodes");
	assert_int_equal(place(n, NULL, 2, 0, 0, "t4", NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "--nodes 2: the partition has 1 compute node");
	assert_int_equal(place(n, NULL, 1, 0, 0, "h100", NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "partition 'h100' has no nodes");
	/* CPUs and memory, per node */
	assert_int_equal(place(n, NULL, 1, 17, 0, NULL, NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "no node has 17 CPUs (the most on one node: 16, on node4)");
	assert_int_equal(place(n, NULL, 1, 0, 64001, NULL, NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "no node has 64001 MiB of memory (the most on one node: 64000, "
			    "on node4)");
	/* each need met somewhere, never together */
	assert_int_equal(place(n, "a100:2", 1, 16, 0, NULL, NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "no node has 2 a100 GPUs, 16 CPUs together");
	assert_int_equal(place(n, "1", 2, 8, 0, NULL, NULL, &e), -ENOSPC);
	assert_string_equal(e.msg, "--nodes 2: only 1 node has 1 GPU, 8 CPUs together (node2)");
	/* in a partition, only its nodes count */
	assert_int_equal(place(n, "1", 1, 0, 0, "t4", &fit, &e), 0);
	assert_int_equal(fit.n, 1);
	assert_string_equal(fit.v[0], "node3");
	strv_release(&fit);
	for (int i = 0; i < 3; i++)
		jobs_node_release(&n[i]);
	jobs_node_release(NULL);
}

static void test_scripts(void **s)
{
	struct jobs_request r;
	struct buf b = BUF_INIT;
	struct kerr e = { 0 };

	jobs_request_init(&r);
	assert_int_equal(jobs_parse_gpus("a100:1", &r, &e), 0);
	r.name = xstrdup("train");
	r.cpus = 4;
	r.mem_mb = 2048;
	r.time = xstrdup("10:00");
	r.begin = xstrdup("now+15");
	r.partition = xstrdup("gpu");
	strv_push(&r.argv, "sh");
	strv_push(&r.argv, "-c");
	strv_push(&r.argv, "hostname; echo $CUDA_VISIBLE_DEVICES 'x'");
	jobs_submit_script(&r, &b);
	assert_string_equal(b.s,
		"sbatch --parsable --job-name='train' --nodes=1 --ntasks-per-node=1 "
		"--cpus-per-task=4 --mem=2048M --gpus-per-node='a100':1 --time='10:00' "
		"--partition='gpu' --begin='now+15' "
		"--wrap='exec srun '\\''sh'\\'' '\\''-c'\\'' '\\''hostname; echo $CUDA_VISIBLE_DEVICES '\\''\\'\\'''\\''x'\\''\\'\\'''\\'''\\'''");
	buf_reset(&b);

	/* --every: one crontab entry under the name ('%' escaped for cron) */
	free(r.begin);
	r.begin = NULL;
	r.cron = xstrdup("*/5 * * * *");
	r.output = xstrdup("/tmp/out-%j");
	jobs_submit_script(&r, &b);
	assert_non_null(strstr(b.s, "{ crontab -l 2>/dev/null || true; } | grep -v -e ' # kiln-run:train$'"));
	assert_non_null(strstr(b.s, "printf '%s\\n' '*/5 * * * * sbatch --parsable --job-name="));
	assert_non_null(strstr(b.s, "--output='\\''/tmp/out-\\%j'\\''"));
	assert_non_null(strstr(b.s, ">/dev/null 2>&1 # kiln-run:train'"));
	assert_non_null(strstr(b.s, "rm -f \"$t\""));
	assert_null(strstr(b.s, "--begin"));
	jobs_request_release(&r);
	buf_reset(&b);
	assert_int_equal(jobs_unschedule_script("train.v2", &b, &e), 0);
	assert_non_null(strstr(b.s, "grep -v -e ' # kiln-run:train\\.v2$'"));
	assert_null(strstr(b.s, "printf"));
	assert_int_equal(jobs_unschedule_script("x;y", &b, &e), -EINVAL);
	buf_reset(&b);

	/* the scripts run, against a fake crontab: replaced, not added; removed */
	char dir[] = "/tmp/kiln-jobs.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *sh = xasprintf("cd %s && printf '%%s\\n' '#!/bin/sh' "
			     "'if [ \"$1\" = -l ]; then cat tab 2>/dev/null || exit 1; else cp \"$1\" tab; fi' "
			     ">crontab && chmod +x crontab && "
			     "printf '0 1 * * * keep # kiln-run:other\\n' >tab", dir);
	assert_int_equal(system(sh), 0);
	free(sh);
	jobs_request_init(&r);
	r.name = xstrdup("nightly");
	r.cron = xstrdup("0 2 * * *");
	strv_push(&r.argv, "echo");
	strv_push(&r.argv, "100%");
	for (int round = 0; round < 3; round++) {
		if (round < 2)
			jobs_submit_script(&r, &b);
		else
			assert_int_equal(jobs_unschedule_script("nightly", &b, &e), 0);
		sh = xasprintf("cd %s && PATH=%s:$PATH; (%s) >/dev/null", dir, dir, b.s);
		assert_int_equal(system(sh), 0);
		free(sh);
		buf_reset(&b);
		char *tab = xasprintf("%s/tab", dir), got[2048];
		FILE *f = fopen(tab, "r");
		assert_non_null(f);
		size_t n = fread(got, 1, sizeof(got) - 1, f);
		got[n] = '\0';
		fclose(f);
		free(tab);
		if (round < 2)
			assert_string_equal(got, "0 1 * * * keep # kiln-run:other\n"
					    "0 2 * * * sbatch --parsable --job-name='nightly' --nodes=1 "
					    "--ntasks-per-node=1 --wrap='exec srun '\\''echo'\\'' "
					    "'\\''100\\%'\\''' >/dev/null 2>&1 # kiln-run:nightly\n");
		else
			assert_string_equal(got, "0 1 * * * keep # kiln-run:other\n");
	}
	sh = xasprintf("rm -rf %s", dir);
	assert_int_equal(system(sh), 0);
	free(sh);
	jobs_request_release(&r);
	buf_reset(&b);

	assert_int_equal(jobs_cancel_script("42", &b, &e), 0);
	assert_string_equal(b.s, "scancel 42");
	buf_reset(&b);
	assert_int_equal(jobs_cancel_script("42_3", &b, &e), 0);
	static const char *const badid[] = { "", "x", "42;reboot", "42_", "_3", "4 2", "-1" };
	for (size_t i = 0; i < ARRAY_SIZE(badid); i++)
		assert_int_equal(jobs_cancel_script(badid[i], &b, &e), -EINVAL);
	buf_release(&b);
	assert_non_null(strstr(jobs_list_script(), "squeue"));
	assert_non_null(strstr(jobs_list_script(), "sacct"));
}

static void test_list_parse(void **s)
{
	static const char out[] =
		"12|train|RUNNING|root|main|1|node2|2026-12-02T10:00:00|2026-12-02T10:00:01|gres/gpu:a100:1\n"
		"13|later|PENDING|root|main|1||2026-12-02T10:00:02|2026-12-02T10:01:00|N/A\n"
		"garbage line\n"
		"x|bad|id|root|main|1|n|a|b|c\n"
		"--kiln-sacct--\n"
		"9|old|COMPLETED|root|main|1|node3|2026-12-02T09:00:00|2026-12-02T09:00:01|2026-12-02T09:00:03|0:0|billing=1,cpu=1,gres/gpu:t4=1,gres/gpu=1,mem=1G,node=1\n"
		"10|gone|CANCELLED by 0|root|main|2|node[2-3]|a|b|c|0:15|cpu=2,node=2\n"
		"12|train|RUNNING|root|main|1|node2|2026-12-02T10:00:00|2026-12-02T10:00:01|Unknown|0:0|gres/gpu:a100=1,gres/gpu=1\n"
		"100|cpu|FAILED|root|main|1|node4|a|b|c|1:0|cpu=1\n"
		"short|line\n";
	json_t *j = jobs_list_parse(out, sizeof(out) - 1), *x;

	assert_int_equal(json_array_size(j), 5);
	/* sorted numerically: 9, 10, 12, 13, 100 */
	static const char *const ids[] = { "9", "10", "12", "13", "100" };
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(j, i), "id")),
				    ids[i]);
	x = json_array_get(j, 0);
	assert_string_equal(json_string_value(json_object_get(x, "state")), "COMPLETED");
	assert_string_equal(json_string_value(json_object_get(x, "gpus")), "t4:1");
	assert_string_equal(json_string_value(json_object_get(x, "exit")), "0:0");
	x = json_array_get(j, 1);
	assert_string_equal(json_string_value(json_object_get(x, "state")), "CANCELLED");
	assert_true(json_is_null(json_object_get(x, "gpus")));
	assert_int_equal(json_integer_value(json_object_get(x, "nodes")), 2);
	x = json_array_get(j, 2);     /* in both: squeue's state, sacct's exit */
	assert_string_equal(json_string_value(json_object_get(x, "state")), "RUNNING");
	assert_string_equal(json_string_value(json_object_get(x, "gpus")), "a100:1");
	assert_string_equal(json_string_value(json_object_get(x, "exit")), "0:0");
	assert_true(json_is_null(json_object_get(x, "end")));
	x = json_array_get(j, 3);
	assert_string_equal(json_string_value(json_object_get(x, "state")), "PENDING");
	assert_true(json_is_null(json_object_get(x, "nodelist")));
	assert_true(json_is_null(json_object_get(x, "gpus")));
	json_decref(j);

	/* a requeued job: one id, a run each time (sacct -D), the next pending */
	static const char cron[] =
		"20|poll|PENDING|root|main|1||2026-12-02T10:02:00|2026-12-02T10:03:00|N/A\n"
		"--kiln-sacct--\n"
		"20|poll|COMPLETED|root|main|1|node4|2026-12-02T10:00:00|2026-12-02T10:01:00|2026-12-02T10:01:01|0:0|cpu=1\n"
		"20|poll|COMPLETED|root|main|1|node4|2026-12-02T10:00:00|2026-12-02T10:00:00|2026-12-02T10:00:01|0:0|cpu=1\n"
		"20|poll|PENDING|root|main|1|None assigned|2026-12-02T10:02:00|Unknown|Unknown|0:0|cpu=1\n";
	j = jobs_list_parse(cron, sizeof(cron) - 1);
	assert_int_equal(json_array_size(j), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "start")),
			    "2026-12-02T10:00:00");
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "start")),
			    "2026-12-02T10:01:00");
	x = json_array_get(j, 2);
	assert_string_equal(json_string_value(json_object_get(x, "state")), "PENDING");
	assert_string_equal(json_string_value(json_object_get(x, "start")), "2026-12-02T10:03:00");
	json_decref(j);

	/* nothing, or only noise: an empty list */
	j = jobs_list_parse("", 0);
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);
	/* an overlong field is cut, not overflowed */
	char big[2048];
	memset(big, 'n', sizeof(big));
	memcpy(big, "7|", 2);
	memcpy(big + sizeof(big) - 20, "|R|u|p|1|n|a|b|gpu:1", 20);
	j = jobs_list_parse(big, sizeof(big));
	assert_int_equal(json_array_size(j), 1);
	assert_true(strlen(json_string_value(json_object_get(json_array_get(j, 0), "name"))) < 256);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_gpus),
		cmocka_unit_test(test_parse_mem_time_at_cron),
		cmocka_unit_test(test_place),
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_list_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
