/* state: facts round trip, runs with node results, interrupted runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/state.h"

static char dir[64];

static int setup(void **s)
{
	strcpy(dir, "/tmp/kiln-state-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **s)
{
	return rm_rf(dir);
}

static void test_facts(void **s)
{
	struct state *st;
	struct kerr e = { 0 };
	char *path = xasprintf("%s/sub/state.db", dir);
	assert_int_equal(state_open(path, &st, &e), 0);
	json_t *f = json_pack("{s:s,s:{s:i}}", "hostname", "n1", "cpu", "cores", 8);
	assert_int_equal(state_facts_put(st, "c", "n1", f, &e), 0);
	json_t *got = NULL;
	int64_t at = 0;
	assert_int_equal(state_facts_get(st, "c", "n1", &got, &at, &e), 0);
	assert_true(json_equal(f, got));
	assert_true(at > 0);
	json_decref(got);
	assert_int_equal(state_facts_get(st, "c", "n2", &got, NULL, &e), 0);
	assert_null(got);
	json_decref(f);
	state_close(st);
	/* Reopen: the facts are on disk. */
	assert_int_equal(state_open(path, &st, &e), 0);
	assert_int_equal(state_facts_get(st, "c", "n1", &got, NULL, &e), 0);
	assert_non_null(got);
	json_decref(got);
	state_close(st);
	free(path);
}

/* What state_facts_each saw: per node n0000..n1499, how often and its text. */
#define EACH_NODES 1500
struct seen {
	pthread_mutex_t lock;
	int count[EACH_NODES];
	char *text[EACH_NODES];
	int foreign;
	pthread_t readers[8];
	size_t nreaders;
};

static int see(const char *node, const char *json, size_t len, void *arg)
{
	struct seen *sn = arg;
	int i = node[0] == 'n' ? atoi(node + 1) : -1;

	pthread_mutex_lock(&sn->lock);
	size_t k = 0;
	while (k < sn->nreaders && !pthread_equal(sn->readers[k], pthread_self()))
		k++;
	if (k == sn->nreaders && k < 8)
		sn->readers[sn->nreaders++] = pthread_self();
	if (i < 0 || i >= EACH_NODES || strncmp(node, "n", 1)) {
		sn->foreign++;
	} else {
		sn->count[i]++;
		free(sn->text[i]);
		sn->text[i] = strndup(json, len);
	}
	pthread_mutex_unlock(&sn->lock);
	return 0;
}

static void seen_reset(struct seen *sn)
{
	for (int i = 0; i < EACH_NODES; i++) {
		free(sn->text[i]);
		sn->text[i] = NULL;
		sn->count[i] = 0;
	}
	sn->foreign = 0;
}

/*
 * A table large enough to be read in shares (one reader per core): every
 * node of the cluster once, none of another cluster's, the keys cut out;
 * a damaged record fails the cut (-EBADMSG) and whole records still read.
 */
static void test_facts_each(void **s)
{
	struct state *st;
	struct kerr e = { 0 };
	char *path = xasprintf("%s/each.db", dir);
	struct seen sn = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct strv keys = { 0 };
	sqlite3 *db;

	assert_int_equal(state_open(path, &st, &e), 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	/* inserted in reverse name order: rowid order is not name order */
	for (int i = EACH_NODES - 1; i >= 0; i--) {
		char *q = sqlite3_mprintf("INSERT INTO facts VALUES ('big', 'n%04d', 1, "
					  "'{\"os\": {\"id\": \"d%d\"}, \"mem\": %d}')", i, i, i);
		assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_free(q);
	}
	for (int i = 0; i < 10; i++) {
		char *q = sqlite3_mprintf("INSERT INTO facts VALUES ('other', 'x%d', 1, '{}')", i);
		assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_free(q);
	}
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

	strv_push(&keys, "os");
	assert_int_equal(state_facts_each(st, "big", &keys, see, &sn, &e), 0);
	assert_int_equal(sn.foreign, 0);
	for (int i = 0; i < EACH_NODES; i++) {
		char want[64];
		snprintf(want, sizeof(want), "{\"os\":{\"id\":\"d%d\"}}", i);
		assert_int_equal(sn.count[i], 1);
		assert_string_equal(sn.text[i], want);
	}
	/* read in shares where there is more than one core */
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
		assert_true(sn.nreaders > 1);

	seen_reset(&sn);
	assert_int_equal(sqlite3_exec(db, "UPDATE facts SET json = '{oops' WHERE node = 'n0777'",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(state_facts_each(st, "big", &keys, see, &sn, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "read facts"));
	seen_reset(&sn);
	assert_int_equal(state_facts_each(st, "big", NULL, see, &sn, &e), 0);
	for (int i = 0; i < EACH_NODES; i++)
		assert_int_equal(sn.count[i], 1);
	assert_string_equal(sn.text[777], "{oops");
	assert_non_null(strstr(sn.text[1499], "\"mem\": 1499"));

	seen_reset(&sn);
	strv_release(&keys);
	sqlite3_close(db);
	state_close(st);
	free(path);
}

static void test_runs(void **s)
{
	struct state *st;
	struct kerr e = { 0 };
	char *path = xasprintf("%s/runs.db", dir);
	int64_t id;
	json_t *j;

	assert_int_equal(state_open(path, &st, &e), 0);
	assert_int_equal(state_run_begin(st, "c", "apply", "/x/cluster.yaml", 2, &id, &e), 0);
	json_t *res = json_pack("[{s:s,s:s}]", "id", "file:/etc/hosts", "status", "changed");
	assert_int_equal(state_run_node(st, id, "n1", "changed", 1, 0, 120, NULL, res, &e), 0);
	assert_int_equal(state_run_node(st, id, "n2", "unreachable", 0, 0, 10,
					"ssh: connection refused", NULL, &e), 0);
	assert_int_equal(state_run_end(st, id, "failed", 1, 1, &e), 0);
	assert_int_equal(state_run_show(st, id, &j, &e), 0);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "failed");
	json_t *nodes = json_object_get(j, "node_results");
	assert_int_equal(json_array_size(nodes), 2);
	json_t *n2 = json_array_get(nodes, 1);
	assert_string_equal(json_string_value(json_object_get(n2, "error")),
			    "ssh: connection refused");
	assert_true(json_equal(json_object_get(json_array_get(nodes, 0), "results"), res));
	json_decref(j);
	json_decref(res);
	assert_int_equal(state_run_show(st, 999, &j, &e), -ENOENT);
	assert_string_equal(e.msg, "run 999: no such run");

	/* A run left "running" by a process that died reads as interrupted. */
	pid_t pid = fork();
	if (pid == 0) {
		struct state *cst;
		int64_t cid;
		if (state_open(path, &cst, NULL) < 0 ||
		    state_run_begin(cst, "c", "apply", NULL, 1, &cid, NULL) < 0)
			_exit(1);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(state_runs_list(st, 10, &j, &e), 0);
	assert_int_equal(json_array_size(j), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "status")),
			    "interrupted");
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "status")),
			    "failed");
	json_decref(j);

	/*
	 * A "running" run whose pid now belongs to a process started after
	 * the run began (pid reuse) is interrupted too; one whose process is
	 * alive and older is still running.
	 */
	pid_t young = fork();
	if (young == 0) {
		pause();
		_exit(0);
	}
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *sql = xasprintf("UPDATE runs SET status = 'running', pid = %d, started_ms = %lld"
			      " WHERE id = %lld; ", (int)young,
			      (long long)(wall_ms() - 600000), (long long)id);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	free(sql);
	assert_int_equal(state_run_show(st, id, &j, &e), 0);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "interrupted");
	json_decref(j);
	sql = xasprintf("UPDATE runs SET started_ms = %lld WHERE id = %lld",
			(long long)(wall_ms() + 600000), (long long)id);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	free(sql);
	assert_int_equal(state_run_show(st, id, &j, &e), 0);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "running");
	json_decref(j);
	sqlite3_close(db);
	kill(young, SIGKILL);
	waitpid(young, NULL, 0);
	state_close(st);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_facts),
		cmocka_unit_test(test_facts_each),
		cmocka_unit_test(test_runs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
