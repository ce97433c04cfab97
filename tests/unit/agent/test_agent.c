/*
 * agent: the protocol loop driven through memory streams (hello, check,
 * apply, facts, malformed and over-long lines, exit, EOF, write errors),
 * the one-shot file runner, and the real static kiln-agent over pipes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"

/* Run agent_serve on input; the reply lines come back as a JSON array. */
static json_t *serve(const char *root, const char *input, size_t len, int *ret)
{
	char *outbuf = NULL;
	size_t outlen = 0;
	FILE *in = fmemopen((void *)input, len, "r");
	FILE *out = open_memstream(&outbuf, &outlen);

	assert_non_null(in);
	assert_non_null(out);
	*ret = agent_serve(in, out, root);
	fclose(in);
	fclose(out);

	json_t *lines = json_array();
	for (char *p = outbuf; *p;) {
		char *nl = strchr(p, '\n');
		assert_non_null(nl);   /* every reply ends with a newline */
		json_error_t err;
		json_t *j = json_loadb(p, (size_t)(nl - p), 0, &err);
		if (!j)
			fail_msg("reply is not JSON: %.*s", (int)(nl - p), p);
		assert_true(json_is_object(j));
		json_array_append_new(lines, j);
		p = nl + 1;
	}
	free(outbuf);
	return lines;
}

static const char *op_of(const json_t *lines, size_t i)
{
	return json_string_value(json_object_get(json_array_get(lines, i), "op"));
}

static const char *str_of(const json_t *lines, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(lines, i), key));
}

static json_int_t int_of(const json_t *lines, size_t i, const char *key)
{
	return json_integer_value(json_object_get(json_array_get(lines, i), key));
}

static int setup_root(void **state)
{
	char *dir = xstrdup("/tmp/kiln-agent-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int teardown_root(void **state)
{
	rm_rf(*state);
	free(*state);
	return 0;
}

#define FILE_RES "{\"type\":\"file\",\"path\":\"/etc/motd\",\"content\":\"hi\\n\",\"mode\":\"0644\"}"
#define BAD_RES "{\"type\":\"sysctl\",\"file\":\"/etc/s.conf\",\"values\":{\"no.such\":\"1\"}}"

static void test_protocol(void **state)
{
	const char *root = *state;
	const char *input =
		"{\"op\":\"check\",\"resources\":[" FILE_RES "," BAD_RES "]}\n"
		"this is not json\n"
		"\n"
		"{\"op\":\"apply\",\"resources\":[" FILE_RES "]}\n"
		"{\"op\":\"frob\"}\n"
		"[1,2]\n"
		"{\"op\":\"check\",\"resources\":{}}\n"
		"{\"op\":\"check\",\"resources\":[" FILE_RES "]}\n"
		"{\"op\":\"exit\"}\n"
		"{\"op\":\"apply\",\"resources\":[]}\n";
	int ret;
	json_t *l = serve(root, input, strlen(input), &ret);

	assert_int_equal(ret, 0);
	assert_int_equal(json_array_size(l), 12);   /* the apply after exit is never read */
	assert_string_equal(op_of(l, 0), "hello");
	assert_string_equal(str_of(l, 0, "version"), KILN_VERSION);
	assert_int_equal(int_of(l, 0, "protocol"), 1);

	/* check: one result per resource, then done */
	assert_string_equal(op_of(l, 1), "result");
	assert_int_equal(int_of(l, 1, "index"), 0);
	assert_string_equal(str_of(l, 1, "id"), "file:/etc/motd");
	assert_string_equal(str_of(l, 1, "status"), "changed");
	assert_string_equal(str_of(l, 1, "diff"),
			    "--- /dev/null\n+++ /etc/motd\n@@ -0,0 +1 @@\n+hi\n");
	assert_string_equal(op_of(l, 2), "result");
	assert_int_equal(int_of(l, 2, "index"), 1);
	assert_string_equal(str_of(l, 2, "status"), "failed");
	assert_non_null(strstr(str_of(l, 2, "message"), "no such kernel parameter"));
	assert_string_equal(op_of(l, 3), "done");
	assert_int_equal(int_of(l, 3, "ok"), 0);
	assert_int_equal(int_of(l, 3, "changed"), 1);
	assert_int_equal(int_of(l, 3, "failed"), 1);

	/* a bad line gets an error and the loop goes on (empty lines are skipped) */
	assert_string_equal(op_of(l, 4), "error");
	assert_non_null(strstr(str_of(l, 4, "message"), "bad request"));

	/* apply really writes */
	assert_string_equal(op_of(l, 5), "result");
	assert_string_equal(str_of(l, 5, "status"), "changed");
	assert_string_equal(op_of(l, 6), "done");
	char *motd = xasprintf("%s/etc/motd", root);
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(file_read(motd, &b, 0), 0);
	assert_string_equal(b.s, "hi\n");
	buf_release(&b);
	free(motd);

	assert_string_equal(op_of(l, 7), "error");
	assert_string_equal(str_of(l, 7, "message"), "unknown op 'frob'");
	assert_string_equal(op_of(l, 8), "error");
	assert_string_equal(str_of(l, 8, "message"),
			    "bad request: expected an object with \"op\"");
	assert_string_equal(op_of(l, 9), "error");
	assert_string_equal(str_of(l, 9, "message"), "check: \"resources\" must be an array");

	/* converged: check again is ok */
	assert_string_equal(str_of(l, 10, "status"), "ok");
	assert_false(json_object_get(json_array_get(l, 10), "diff"));
	assert_string_equal(op_of(l, 11), "done");
	assert_int_equal(int_of(l, 11, "ok"), 1);
	json_decref(l);
}

static void test_exit_and_eof(void **state)
{
	int ret;
	/* End of input without exit, last line without newline. */
	const char *in = "{\"op\":\"check\",\"resources\":[]}";
	json_t *l = serve(*state, in, strlen(in), &ret);
	assert_int_equal(ret, 0);
	assert_int_equal(json_array_size(l), 2);
	assert_string_equal(op_of(l, 1), "done");
	assert_int_equal(int_of(l, 1, "ok"), 0);
	json_decref(l);

	/* exit stops reading: later requests get no reply. */
	in = "{\"op\":\"exit\"}\n{\"op\":\"check\",\"resources\":[]}\n";
	l = serve(*state, in, strlen(in), &ret);
	assert_int_equal(ret, 0);
	assert_int_equal(json_array_size(l), 1);
	json_decref(l);
}

static void test_nul_content(void **state)
{
	const char *root = *state;
	const char *in = "{\"op\":\"apply\",\"resources\":[{\"type\":\"file\","
			 "\"path\":\"/blob\",\"content\":\"a\\u0000b\"}]}\n";
	int ret;
	json_t *l = serve(root, in, strlen(in), &ret);

	assert_int_equal(ret, 0);
	assert_string_equal(str_of(l, 1, "status"), "changed");
	json_decref(l);
	char *p = xasprintf("%s/blob", root);
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(file_read(p, &b, 0), 0);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.s, "a\0b", 3);
	buf_release(&b);
	free(p);
}

static void test_facts(void **state)
{
	int ret;
	const char *in = "{\"op\":\"facts\"}\n";
	json_t *l = serve("/", in, strlen(in), &ret);

	assert_int_equal(ret, 0);
	assert_int_equal(json_array_size(l), 2);
	assert_string_equal(op_of(l, 1), "facts");
	json_t *f = json_object_get(json_array_get(l, 1), "facts");
	assert_true(json_is_object(f));
	assert_true(json_object_size(f) > 0);
	json_decref(l);
}

static void test_long_line(void **state)
{
	/* One line just over the cap, then a good request. */
	size_t big = AGENT_LINE_MAX + 10;
	const char *tail = "\n{\"op\":\"check\",\"resources\":[]}\n";
	char *in = xmalloc(big + strlen(tail) + 1);
	memset(in, 'x', big);
	strcpy(in + big, tail);
	int ret;
	json_t *l = serve(*state, in, big + strlen(tail), &ret);

	assert_int_equal(ret, 0);
	assert_int_equal(json_array_size(l), 3);
	assert_string_equal(op_of(l, 1), "error");
	assert_non_null(strstr(str_of(l, 1, "message"), "longer than"));
	assert_string_equal(op_of(l, 2), "done");
	json_decref(l);
	free(in);
}

static void test_write_error(void **state)
{
	const char *input = "{\"op\":\"check\",\"resources\":[]}\n";
	FILE *in = fmemopen((void *)input, strlen(input), "r");
	FILE *out = fopen("/dev/full", "w");

	assert_non_null(in);
	assert_non_null(out);
	assert_int_equal(agent_serve(in, out, *state), -ENOSPC);
	fclose(in);
	fclose(out);
}

static void test_run_file(void **state)
{
	const char *root = *state;
	char *path = xasprintf("%s/res.json", root);
	const char *list = "[" FILE_RES "," BAD_RES "]";
	char *outbuf = NULL;
	size_t outlen = 0, failed = 99;
	struct kerr e = { 0 };

	assert_int_equal(file_write_atomic(path, list, strlen(list), 0600, -1, -1), 0);
	FILE *out = open_memstream(&outbuf, &outlen);
	assert_int_equal(agent_run_file(path, root, true, out, &failed, &e), 0);
	fclose(out);
	assert_int_equal(failed, 1);
	assert_non_null(strstr(outbuf, "\"status\":\"changed\""));
	assert_non_null(strstr(outbuf, "{\"op\":\"done\",\"ok\":0,\"changed\":1,\"failed\":1}\n"));
	free(outbuf);

	const char *notarray = "{\"type\":\"file\"}";
	assert_int_equal(file_write_atomic(path, notarray, strlen(notarray), 0600, -1, -1), 0);
	out = open_memstream(&outbuf, &outlen);
	assert_int_equal(agent_run_file(path, root, true, out, &failed, &e), -EINVAL);
	fclose(out);
	free(outbuf);
	assert_non_null(strstr(e.msg, "expected a JSON array of resources"));
	free(path);
}

/* ---- the real static executable ---- */

/* Does the ELF file have a program header of this type? */
static bool elf_has_phdr(const char *path, uint32_t type)
{
	struct buf b;
	bool found = false;

	buf_init(&b, 0);
	assert_int_equal(file_read(path, &b, 0), 0);
	assert_true(b.len > sizeof(Elf64_Ehdr));
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)b.s;
	assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
	assert_int_equal(eh->e_ident[EI_CLASS], ELFCLASS64);
	for (int i = 0; i < eh->e_phnum; i++) {
		size_t off = eh->e_phoff + (size_t)i * eh->e_phentsize;
		assert_true(off + sizeof(Elf64_Phdr) <= b.len);
		Elf64_Phdr ph;
		memcpy(&ph, b.s + off, sizeof(ph));
		if (ph.p_type == type)
			found = true;
	}
	buf_release(&b);
	return found;
}

static void test_static_binary(void **state)
{
	const char *root = *state;

	/* Statically linked: no interpreter, no dynamic section. */
	assert_false(elf_has_phdr(KILN_AGENT_BIN, PT_INTERP));
	assert_false(elf_has_phdr(KILN_AGENT_BIN, PT_DYNAMIC));

	char *argv[] = { KILN_AGENT_BIN, "serve", "--root", (char *)root, NULL };
	const char *in = "{\"op\":\"apply\",\"resources\":[" FILE_RES "]}\n"
			 "garbage\n{\"op\":\"exit\"}\n";
	struct buf out;
	buf_init(&out, 0);
	struct run_opts o = { .in = in, .in_len = strlen(in), .out = &out,
			      .timeout_ms = 30000 };
	int st = 0;
	assert_int_equal(run_argv(argv, &o, &st), 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_non_null(strstr(out.s, "{\"op\":\"hello\",\"version\":\"" KILN_VERSION
				      "\",\"protocol\":1}\n"));
	assert_non_null(strstr(out.s, "\"id\":\"file:/etc/motd\",\"status\":\"changed\""));
	assert_non_null(strstr(out.s, "{\"op\":\"error\""));
	buf_release(&out);

	/* check FILE: exit 0 with nothing failed; then --version. */
	char *file = xasprintf("%s/list.json", root);
	const char *list = "[" FILE_RES "]";
	assert_int_equal(file_write_atomic(file, list, strlen(list), 0600, -1, -1), 0);
	char *cargv[] = { KILN_AGENT_BIN, "check", file, "--root", (char *)root, NULL };
	buf_init(&out, 0);
	o = (struct run_opts){ .out = &out, .timeout_ms = 30000 };
	assert_int_equal(run_argv(cargv, &o, &st), 0);
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_non_null(strstr(out.s, "\"status\":\"ok\""));
	buf_release(&out);
	free(file);

	char *vargv[] = { KILN_AGENT_BIN, "--version", NULL };
	buf_init(&out, 0);
	assert_int_equal(run_argv(vargv, &o, &st), 0);
	assert_string_equal(out.s, "kiln-agent " KILN_VERSION " (protocol 1)\n");
	buf_release(&out);

	char *bad[] = { KILN_AGENT_BIN, "check", NULL };
	assert_int_equal(run_argv(bad, NULL, &st), 0);
	assert_int_equal(WEXITSTATUS(st), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_protocol, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_exit_and_eof, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_nul_content, setup_root, teardown_root),
		cmocka_unit_test(test_facts),
		cmocka_unit_test_setup_teardown(test_long_line, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_write_error, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_run_file, setup_root, teardown_root),
		cmocka_unit_test_setup_teardown(test_static_binary, setup_root, teardown_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
