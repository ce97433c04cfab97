/* util: buffers, numbers, atomic files, child processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/util.h"

static void test_buf_cap(void **state)
{
	struct buf b;
	buf_init(&b, 8);
	assert_int_equal(buf_adds(&b, "12345"), 0);
	assert_int_equal(buf_printf(&b, "%d", 678), 0);
	assert_string_equal(b.s, "12345678");
	assert_int_equal(buf_addch(&b, 'x'), -E2BIG);
	assert_string_equal(b.s, "12345678");
	buf_release(&b);
	buf_init(&b, 0);
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%04d", i);
	assert_int_equal(b.len, 4000);
	assert_memory_equal(b.s + 3996, "0999", 4);
	buf_release(&b);
}

static void test_parse(void **state)
{
	uint64_t u;
	int64_t i;
	assert_int_equal(parse_u64("42", 0, 100, &u), 0);
	assert_int_equal(u, 42);
	assert_int_equal(parse_u64("101", 0, 100, &u), -ERANGE);
	assert_int_equal(parse_u64("-1", 0, 100, &u), -EINVAL);
	assert_int_equal(parse_u64("1x", 0, 100, &u), -EINVAL);
	assert_int_equal(parse_u64("", 0, 100, &u), -EINVAL);
	assert_int_equal(parse_u64("99999999999999999999999", 0, UINT64_MAX, &u), -ERANGE);
	assert_int_equal(parse_i64("-5", -10, 10, &i), 0);
	assert_int_equal(i, -5);
	assert_int_equal(parse_i64(" 5", -10, 10, &i), -EINVAL);
}

static void test_strings(void **state)
{
	char s[] = "  a b \n";
	assert_string_equal(str_trim(s), "a b");
	char d[8];
	str_sanitize(d, sizeof(d), "a\x01\xffz-long", 9);
	assert_string_equal(d, "a??z-lo");
	struct buf b = BUF_INIT;
	buf_init(&b, 0);
	buf_add_shquote(&b, "it's");
	assert_string_equal(b.s, "'it'\\''s'");
	buf_release(&b);
	struct strv sv = STRV_INIT;
	strv_push(&sv, "a");
	strv_pushf(&sv, "b%d", 2);
	assert_true(strv_contains(&sv, "b2"));
	assert_false(strv_contains(&sv, "c"));
	assert_null(sv.v[2]);
	strv_release(&sv);
}

/* What a node sends reaches a terminal with nothing left to interpret. */
static void check_tty(const char *in, size_t len, unsigned flags, const char *want)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(buf_add_tty(&b, in, len, flags), 0);
	assert_string_equal(b.s, want);
	for (size_t i = 0; i < b.len; i++) {
		unsigned char c = (unsigned char)b.s[i];
		assert_true(c >= 0x20 || ((flags & TTY_LINES) && (c == '\n' || c == '\t')));
		assert_true(c != 0x7f);
	}
	buf_release(&b);
}

#define CHECK_TTY(in, flags, want) check_tty(in, sizeof(in) - 1, flags, want)

static void test_tty_escape(void **state)
{
	/* An OSC that sets the window title, a screen clear, a bell. */
	CHECK_TTY("a\x1b]0;pwned\a\x1b[2Jb", 0, "a\\e]0;pwned\\a\\e[2Jb");
	/* One field stays one line; multi-line text keeps its lines and tabs. */
	CHECK_TTY("x\ny\tz\r", 0, "x\\ny\\tz\\r");
	CHECK_TTY("x\ny\tz\r\n", TTY_LINES, "x\ny\tz\\r\n");
	CHECK_TTY("\x01\x7f\b\v\f", 0, "\\x01\\x7f\\b\\v\\f");
	CHECK_TTY("nul\0after", 0, "nul\\x00after");
	/* Valid UTF-8 prints as is. */
	CHECK_TTY("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x94\xa5", 0,
		  "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x94\xa5");
	/* C1 controls: encoded (U+009B is CSI) or as raw bytes. */
	CHECK_TTY("\xc2\x9b" "2J", 0, "\\u009b2J");
	CHECK_TTY("\x9b" "2J\x85", 0, "\\x9b2J\\x85");
	/* Invalid UTF-8: overlong ESC and '/', a surrogate, past U+10FFFF, cut short. */
	CHECK_TTY("\xc0\x9b\xc0\xaf", 0, "\\xc0\\x9b\\xc0\\xaf");
	CHECK_TTY("\xed\xa0\x80", 0, "\\xed\\xa0\\x80");
	CHECK_TTY("\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80");
	CHECK_TTY("ok\xe2\x9c", 0, "ok\\xe2\\x9c");
	/* Bidi overrides would reorder what is shown (U+202E, U+2066). */
	CHECK_TTY("a\xe2\x80\xae" "b\xe2\x81\xa6", 0, "a\\u202eb\\u2066");
	/* A cap is all or nothing, like buf_add. */
	struct buf b;
	buf_init(&b, 4);
	assert_int_equal(buf_adds(&b, "ab"), 0);
	assert_int_equal(buf_add_tty(&b, "\x1b", 1, 0), 0);
	assert_int_equal(buf_add_tty(&b, "\x1b", 1, 0), -E2BIG);
	assert_string_equal(b.s, "ab\\e");
	buf_release(&b);
	char *t = str_tty("\x1b[31mred", 0);
	assert_string_equal(t, "\\e[31mred");
	free(t);
	t = str_tty(NULL, 0);
	assert_string_equal(t, "");
	free(t);
}

static void test_atomic_write(void **state)
{
	char dir[] = "/tmp/kiln-util-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *sub = xasprintf("%s/a/b/c", dir);
	assert_int_equal(mkdir_p(sub, 0755), 0);
	char *f = xasprintf("%s/file", sub);
	assert_int_equal(file_write_atomic(f, "hello", 5, 0640, -1, -1), 0);
	struct stat st;
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(file_read(f, &b, 0), 0);
	assert_string_equal(b.s, "hello");
	buf_reset(&b);
	assert_int_equal(file_read(f, &b, 3), -EFBIG);
	buf_release(&b);
	assert_int_equal(rm_rf(dir), 0);
	assert_false(path_exists(dir));
	free(f);
	free(sub);
	char *j = path_join("/r/", "/etc/x");
	assert_string_equal(j, "/r/etc/x");
	free(j);
}

static void test_run(void **state)
{
	struct buf out, err;
	buf_init(&out, 0);
	buf_init(&err, 0);
	struct run_opts o = { .in = "abc", .in_len = 3, .out = &out, .err = &err };
	char *cat[] = { "cat", NULL };
	int st;
	assert_int_equal(run_argv(cat, &o, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_string_equal(out.s, "abc");
	char *nope[] = { "/nonexistent/kiln-prog", NULL };
	assert_int_equal(run_argv(nope, NULL, &st), -ENOENT);
	char *slow[] = { "sleep", "5", NULL };
	struct run_opts t = { .timeout_ms = 200 };
	assert_int_equal(run_argv(slow, &t, &st), -ETIMEDOUT);
	char *fail[] = { "sh", "-c", "echo first >&2; echo 'the cause' >&2; exit 3", NULL };
	struct kerr e = { 0 };
	assert_int_equal(run_ok(fail, NULL, &e), -EIO);
	assert_string_equal(e.msg, "sh exited 3: the cause");
	buf_release(&out);
	buf_release(&err);
}

/*
 * The temporary name must not be guessable or reused: something planted at
 * the old fixed "path.kiln-tmp-PID" (a FIFO would block the writer; a hard
 * link to another file would be truncated and overwritten) is left alone.
 * The write runs in a child under alarm(), so a hang is a failure.
 */
static void test_atomic_write_planted(void **state)
{
	char dir[] = "/tmp/kiln-util-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *f = xasprintf("%s/authorized_keys", dir);
	char *victim = xasprintf("%s/victim", dir);
	char *fifo = xasprintf("%s.kiln-tmp-%ld", f, (long)getpid());
	assert_int_equal(file_write_atomic(victim, "secret\n", 7, 0600, -1, -1), 0);

	/* A hard link to the victim at the predictable name. */
	assert_int_equal(link(victim, fifo), 0);
	assert_int_equal(file_write_atomic(f, "key\n", 4, 0600, -1, -1), 0);
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(file_read(victim, &b, 0), 0);
	assert_string_equal(b.s, "secret\n");
	buf_reset(&b);
	assert_int_equal(file_read(f, &b, 0), 0);
	assert_string_equal(b.s, "key\n");
	buf_release(&b);
	assert_true(path_exists(fifo));
	assert_int_equal(unlink(fifo), 0);

	/* A FIFO there: the write must neither block nor fail. */
	assert_int_equal(mkfifo(fifo, 0666), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(5);
		_exit(file_write_atomic(f, "key2\n", 5, 0600, -1, -1) == 0 ? 0 : 1);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	buf_init(&b, 0);
	assert_int_equal(file_read(f, &b, 0), 0);
	assert_string_equal(b.s, "key2\n");
	buf_release(&b);
	struct stat sb;
	assert_int_equal(lstat(fifo, &sb), 0);
	assert_true(S_ISFIFO(sb.st_mode));
	/* Only the planted FIFO, the victim and the file: no stray temp. */
	char *ls = xasprintf("ls -A %s | wc -l", dir);
	FILE *pf = popen(ls, "r");
	int n = -1;
	assert_non_null(pf);
	assert_int_equal(fscanf(pf, "%d", &n), 1);
	pclose(pf);
	assert_int_equal(n, 3);
	free(ls);
	assert_int_equal(rm_rf(dir), 0);
	free(f);
	free(victim);
	free(fifo);
}

/*
 * A child that exits while something it started keeps the pipes open
 * ("nohup x &", sysv "service x start") is done when it exits, not when the
 * pipes close: before, run_argv waited out the whole timeout and failed.
 */
static void test_run_daemon_holds_pipes(void **state)
{
	struct buf out;
	buf_init(&out, 0);
	char *sh[] = { "sh", "-c", "echo started; sleep 30 & echo $!; exit 4", NULL };
	struct run_opts o = { .out = &out, .timeout_ms = 10000 };
	int st = 0;
	int64_t t0 = now_ms();
	int r = run_argv(sh, &o, &st);
	int64_t took = now_ms() - t0;
	/* Kill the sleep it left behind, whatever happened. */
	long bg = 0;
	if (sscanf(out.s, "started\n%ld", &bg) == 1 && bg > 1)
		kill((pid_t)bg, SIGKILL);
	assert_int_equal(r, 0);
	assert_true(took < 3000);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 4);
	assert_true(bg > 1);
	buf_release(&out);

	/* Output written just before the exit is still collected. */
	buf_init(&out, 0);
	char *burst[] = { "sh", "-c", "sleep 30 & echo $!; seq 1 20000; exit 0", NULL };
	o.out = &out;
	r = run_argv(burst, &o, &st);
	bg = 0;
	if (sscanf(out.s, "%ld", &bg) == 1 && bg > 1)
		kill((pid_t)bg, SIGKILL);   /* the daemon it left, by its pid */
	assert_int_equal(r, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(out.s, "\n20000\n"));
	buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_atomic_write),
		cmocka_unit_test(test_run),
		cmocka_unit_test(test_atomic_write_planted),
		cmocka_unit_test(test_tty_escape),
		cmocka_unit_test(test_run_daemon_holds_pipes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
