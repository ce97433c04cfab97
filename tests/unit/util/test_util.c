/* util: buffers, numbers, atomic files, child processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
 * file_write_atomic() names its temporary "path.kiln-tmp-%016llx" from
 * getrandom().  The test binary is linked with --wrap=getrandom, so the
 * test decides the names fs.c tries and plants things at exactly those:
 * something at the name must never be followed or truncated, the writer
 * must move on to the next name, and it must give up after its tries.
 */
static uint64_t rnd_queue[16];
static size_t rnd_n, rnd_next, rnd_calls;

ssize_t __real_getrandom(void *buf, size_t len, unsigned flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags)
{
	if (rnd_next >= rnd_n || len != sizeof(uint64_t))
		return __real_getrandom(buf, len, flags);
	rnd_calls++;
	memcpy(buf, &rnd_queue[rnd_next++], sizeof(uint64_t));
	return (ssize_t)len;
}

static char *tmp_name(const char *path, uint64_t r)
{
	return xasprintf("%s.kiln-tmp-%016llx", path, (unsigned long long)r);
}

static int count_entries(const char *dir)
{
	char *ls = xasprintf("ls -A %s | wc -l", dir);
	FILE *pf = popen(ls, "r");
	int n = -1;

	assert_non_null(pf);
	assert_int_equal(fscanf(pf, "%d", &n), 1);
	pclose(pf);
	free(ls);
	return n;
}

static void test_atomic_write_planted(void **state)
{
	char dir[] = "/tmp/kiln-util-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *f = xasprintf("%s/authorized_keys", dir);
	char *victim = xasprintf("%s/victim", dir);
	struct stat sb;
	struct buf b;
	assert_int_equal(file_write_atomic(victim, "secret\n", 7, 0600, -1, -1), 0);

	/* The first three names fs.c will try: a hard link to the victim (would
	 * be truncated and overwritten), a symlink to it (would be written
	 * through) and a FIFO (would block the writer).  The fourth is free. */
	uint64_t planted[3] = { 0x1111111111111111ull, 0x2222222222222222ull,
				0x3333333333333333ull };
	char *hl = tmp_name(f, planted[0]), *sl = tmp_name(f, planted[1]),
	     *fifo = tmp_name(f, planted[2]);
	assert_int_equal(link(victim, hl), 0);
	assert_int_equal(symlink(victim, sl), 0);
	assert_int_equal(mkfifo(fifo, 0666), 0);
	memcpy(rnd_queue, planted, sizeof(planted));
	rnd_queue[3] = 0x4444444444444444ull;
	rnd_n = 4, rnd_next = 0, rnd_calls = 0;

	/* In a child under alarm(): blocking on the FIFO is a failure, not a hang. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(5);
		_exit(file_write_atomic(f, "key\n", 4, 0600, -1, -1) == 0 &&
		      rnd_calls == 4 ? 0 : 1);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	buf_init(&b, 0);
	assert_int_equal(file_read(victim, &b, 0), 0);
	assert_string_equal(b.s, "secret\n");
	buf_reset(&b);
	assert_int_equal(file_read(f, &b, 0), 0);
	assert_string_equal(b.s, "key\n");
	buf_release(&b);
	/* The regular file at a temporary name, unlocked, looks like a dead
	 * writer's leftover: its name is swept (the victim keeps its content).
	 * The symlink and the FIFO are not ours: left alone. */
	assert_int_equal(lstat(hl, &sb), -1);
	assert_int_equal(lstat(victim, &sb), 0);
	assert_true(S_ISREG(sb.st_mode) && sb.st_nlink == 1 && sb.st_size == 7);
	assert_int_equal(lstat(sl, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	assert_int_equal(lstat(fifo, &sb), 0);
	assert_true(S_ISFIFO(sb.st_mode));
	/* The two planted names left, the victim and the file: the temporary
	 * name that was used is gone. */
	assert_int_equal(count_entries(dir), 4);

	/* A live writer's temporary (its lock held) is left; once the writer
	 * is gone (lock free), the next write removes it. */
	char *live = tmp_name(f, 0x5555555555555555ull);
	int lfd = open(live, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(lfd >= 0);
	assert_int_equal(flock(lfd, LOCK_EX), 0);
	assert_int_equal(file_write_atomic(f, "key\n", 4, 0600, -1, -1), 0);
	assert_true(path_exists(live));
	close(lfd);
	assert_int_equal(file_write_atomic(f, "key\n", 4, 0600, -1, -1), 0);
	assert_false(path_exists(live));
	free(live);
	assert_int_equal(link(victim, hl), 0);

	/* Every name it tries is taken: it gives up, nothing changes. */
	for (size_t i = 0; i < ARRAY_SIZE(rnd_queue); i++)
		rnd_queue[i] = planted[i % 3];
	rnd_n = ARRAY_SIZE(rnd_queue), rnd_next = 0, rnd_calls = 0;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(5);
		_exit(file_write_atomic(f, "key2\n", 5, 0600, -1, -1) == -EEXIST ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	buf_init(&b, 0);
	assert_int_equal(file_read(f, &b, 0), 0);
	assert_string_equal(b.s, "key\n");
	buf_reset(&b);
	assert_int_equal(file_read(victim, &b, 0), 0);
	assert_string_equal(b.s, "secret\n");
	buf_release(&b);
	assert_int_equal(count_entries(dir), 5);
	rnd_n = rnd_next = 0;

	assert_int_equal(rm_rf(dir), 0);
	free(f);
	free(victim);
	free(hl);
	free(sl);
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
