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
#include <sys/syscall.h>
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
	assert_false(strv_push_unique(&sv, "a"));
	assert_true(strv_push_unique(&sv, "B"));
	strv_push(&sv, "a");
	strv_sort(&sv);     /* byte order, duplicates kept */
	assert_string_equal(sv.v[0], "B");
	assert_string_equal(sv.v[1], "a");
	assert_string_equal(sv.v[2], "a");
	assert_string_equal(sv.v[3], "b2");
	assert_null(sv.v[4]);
	strv_release(&sv);
	const char *raw[] = { "z", "", "m" };
	qsort(raw, 3, sizeof(*raw), str_ptr_cmp);
	assert_string_equal(raw[0], "");
	assert_string_equal(raw[2], "z");
	/* a buffer's size hint stays within its cap */
	buf_init(&b, 8);
	buf_reserve(&b, 100);
	assert_true(b.alloc >= 9 && b.alloc < 101);   /* 8 and the NUL, not 100 */
	assert_int_equal(buf_adds(&b, "12345678"), 0);
	buf_reserve(&b, 100);
	assert_int_equal(buf_addch(&b, '9'), -E2BIG);
	buf_release(&b);
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

static volatile sig_atomic_t chld_seen;
static void on_chld(int sig) { chld_seen++; }
static void on_term(int sig) { }

/* The value of "NAME:\t%llx" in the text of a /proc/PID/status. */
static unsigned long long status_mask(const char *status, const char *name)
{
	char key[16];
	snprintf(key, sizeof(key), "\n%s:\t", name);
	const char *p = strstr(status, key);
	assert_non_null(p);
	return strtoull(p + strlen(key), NULL, 16);
}

/*
 * Whatever the caller ignores (SIGPIPE, as every kiln command does,
 * SIGHUP, and glibc's signal 32), handles (SIGTERM) or blocks (SIGUSR1),
 * the child starts with nothing ignored and nothing blocked; the caller's
 * own dispositions and mask are as they were.  Before, SIGHUP and 32
 * stayed ignored and SIGUSR1 blocked in the child.
 */
static void test_run_signals_reset(void **state)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, h = { .sa_handler = on_term };
	struct sigaction old_pipe, old_hup, old_term, now;
	sigset_t usr1, old_mask, mask;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	assert_int_equal(sigaction(SIGPIPE, &ign, &old_pipe), 0);
	assert_int_equal(sigaction(SIGHUP, &ign, &old_hup), 0);
	assert_int_equal(sigaction(SIGTERM, &h, &old_term), 0);
	assert_int_equal(sigprocmask(SIG_BLOCK, &usr1, &old_mask), 0);
	/* Signal 32 is glibc's own (sigaction() refuses it), yet a caller may
	 * have it ignored: cmake --build runs tests that way. */
	unsigned long ign32[8] = { (unsigned long)SIG_IGN }, old32[8];
	assert_int_equal(syscall(SYS_rt_sigaction, 32, ign32, old32, (NSIG - 1) / 8), 0);

	struct buf out;
	buf_init(&out, 0);
	char *grep[] = { "grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status", NULL };
	struct run_opts o = { .out = &out };
	int st = -1;
	int r = run_argv(grep, &o, &st);

	/* The caller's side first, then restore it whatever the child saw. */
	assert_int_equal(sigprocmask(SIG_SETMASK, NULL, &mask), 0);
	assert_true(sigismember(&mask, SIGUSR1));
	assert_false(sigismember(&mask, SIGTERM));
	assert_int_equal(sigaction(SIGTERM, NULL, &now), 0);
	assert_ptr_equal(now.sa_handler, on_term);
	assert_int_equal(sigaction(SIGPIPE, NULL, &now), 0);
	assert_ptr_equal(now.sa_handler, SIG_IGN);
	syscall(SYS_rt_sigaction, 32, old32, NULL, (NSIG - 1) / 8);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	sigaction(SIGTERM, &old_term, NULL);

	assert_int_equal(r, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	char *text = xasprintf("\n%s", out.s);
	assert_int_equal(status_mask(text, "SigIgn"), 0);
	assert_int_equal(status_mask(text, "SigBlk"), 0);
	free(text);
	buf_release(&out);
}

/* The pgrp field of /proc/PID/stat (after the ")" that ends comm). */
static long stat_pgrp(const char *stat)
{
	const char *p = strrchr(stat, ')');
	char state;
	long ppid, pgrp;
	assert_non_null(p);
	assert_int_equal(sscanf(p + 1, " %c %ld %ld", &state, &ppid, &pgrp), 3);
	return pgrp;
}

/* Process gone, or a zombie nobody reaped yet: either way, not running. */
static bool pid_dead(long pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	struct buf b;
	buf_init(&b, 0);
	bool dead = file_read(path, &b, 4096) < 0;
	if (!dead) {
		const char *p = strrchr(b.s, ')');
		dead = p && (p[2] == 'Z' || p[2] == 'X');
	}
	buf_release(&b);
	return dead;
}

/*
 * The child leads its own process group, and the timeout kills that whole
 * group: a grandchild the child started dies with it.
 */
static void test_run_process_group(void **state)
{
	struct buf out;
	buf_init(&out, 0);
	char *sh[] = { "sh", "-c", "echo $$; cat /proc/$$/stat", NULL };
	struct run_opts o = { .out = &out };
	int st;
	assert_int_equal(run_argv(sh, &o, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	long pid = strtol(out.s, NULL, 10);
	const char *nl = strchr(out.s, '\n');
	assert_non_null(nl);
	assert_true(pid > 1);
	assert_int_equal(stat_pgrp(nl + 1), pid);
	assert_int_not_equal(pid, (long)getpgrp());
	buf_release(&out);

	/* The clock starts once sh has been exec'd; 2 s is for it to start
	 * the sleep and write its pid, the test then waits out the timeout. */
	char dir[] = "/tmp/kiln-util-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *pidf = xasprintf("%s/grandchild", dir);
	char *script = xasprintf("sleep 60 & echo $! > %s.tmp && mv %s.tmp %s; wait", pidf,
				 pidf, pidf);
	char *bg[] = { "sh", "-c", script, NULL };
	struct run_opts t = { .timeout_ms = 2000 };
	assert_int_equal(run_argv(bg, &t, &st), -ETIMEDOUT);
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(file_read(pidf, &b, 64), 0);
	long gc = strtol(b.s, NULL, 10);
	assert_true(gc > 1);
	/* SIGKILL was sent before run_argv returned; its delivery and the
	 * reaping by init are the kernel's: wait (bounded) for them. */
	bool dead = false;
	for (int i = 0; i < 500 && !(dead = pid_dead(gc)); i++)
		usleep(20000);
	if (!dead)
		kill((pid_t)gc, SIGKILL);
	assert_true(dead);
	buf_release(&b);
	assert_int_equal(rm_rf(dir), 0);
	free(script);
	free(pidf);
}

/*
 * Lookup happens in the caller: a program not in PATH is -ENOENT without
 * a fork (no SIGCHLD arrives), one found only without execute permission
 * is -EACCES, as is an explicit path to a non-executable file (that one
 * from the child's execve, over the exec pipe), an executable in a PATH
 * directory is found and run, one in a relative PATH entry is not.
 */
static void test_run_exec_errors(void **state)
{
	struct sigaction h = { .sa_handler = on_chld }, old;
	assert_int_equal(sigaction(SIGCHLD, &h, &old), 0);
	chld_seen = 0;
	char *nope[] = { "kiln-no-such-program", NULL };
	int st, r = run_argv(nope, NULL, &st);
	int seen = chld_seen;
	sigaction(SIGCHLD, &old, NULL);
	assert_int_equal(r, -ENOENT);
	assert_int_equal(seen, 0);
	char *empty[] = { "", NULL };
	assert_int_equal(run_argv(empty, NULL, &st), -ENOENT);

	char dir[] = "/tmp/kiln-util-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *noexec = xasprintf("%s/kiln-noexec", dir);
	char *yes = xasprintf("%s/kiln-yes", dir);
	assert_int_equal(file_write_atomic(noexec, "#!/bin/sh\nexit 0\n", 17, 0644, -1, -1), 0);
	assert_int_equal(file_write_atomic(yes, "#!/bin/sh\necho found\n", 21, 0755, -1, -1), 0);
	const char *saved = getenv("PATH");
	char *keep = saved ? xstrdup(saved) : NULL;
	char *path = xasprintf("%s:%s", dir, saved ? saved : "/bin:/usr/bin");
	setenv("PATH", path, 1);
	char *byname[] = { "kiln-noexec", NULL };
	int r1 = run_argv(byname, NULL, &st);
	struct buf out;
	buf_init(&out, 0);
	struct run_opts o = { .out = &out };
	char *found[] = { "kiln-yes", NULL };
	int r2 = run_argv(found, &o, &st);
	if (keep)
		setenv("PATH", keep, 1);
	else
		unsetenv("PATH");
	assert_int_equal(r1, -EACCES);
	assert_int_equal(r2, 0);
	assert_string_equal(out.s, "found\n");
	char *bypath[] = { noexec, NULL };
	assert_int_equal(run_argv(bypath, NULL, &st), -EACCES);
	/* A relative PATH entry is not searched: with .cwd the child would
	 * run something else than the parent found. */
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/tmp"), 0);
	char *rel = xasprintf("%s", dir + strlen("/tmp/"));
	setenv("PATH", rel, 1);
	int r3 = run_argv(found, NULL, &st);
	if (keep)
		setenv("PATH", keep, 1);
	else
		unsetenv("PATH");
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(r3, -ENOENT);
	free(rel);
	buf_release(&out);
	assert_int_equal(rm_rf(dir), 0);
	free(keep);
	free(path);
	free(noexec);
	free(yes);
}

/*
 * A caller started with stdin closed (a daemon's fd 0) gets fd 0 from the
 * first pipe: the child must still see its input on stdin.  Before, the
 * pipe end already at 0 kept its CLOEXEC flag and cat read a closed fd.
 */
static void test_run_stdin_closed(void **state)
{
	int saved = dup(0);
	assert_true(saved > 2);
	close(0);
	struct buf out;
	buf_init(&out, 0);
	struct run_opts o = { .in = "abc", .in_len = 3, .out = &out };
	char *cat[] = { "cat", NULL };
	int st = -1;
	int r = run_argv(cat, &o, &st);
	int gone = fcntl(0, F_GETFD) < 0;
	dup2(saved, 0);
	close(saved);
	assert_int_equal(r, 0);
	assert_true(gone);   /* nothing of run_argv's left behind at 0 */
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_string_equal(out.s, "abc");
	buf_release(&out);
}

/* Prefix lengths at and next to the edges (a shift by 32 is undefined). */
static void test_ipv4_prefix(void **state)
{
	assert_int_equal(ipv4_prefix_mask(0), 0);
	assert_int_equal(ipv4_prefix_mask(-1), 0);
	assert_int_equal(ipv4_prefix_mask(1), 0x80000000u);
	assert_int_equal(ipv4_prefix_mask(24), 0xffffff00u);
	assert_int_equal(ipv4_prefix_mask(31), 0xfffffffeu);
	assert_int_equal(ipv4_prefix_mask(32), 0xffffffffu);
	assert_int_equal(ipv4_prefix_mask(33), 0xffffffffu);
	/* 10.1.2.0/24 */
	assert_true(ipv4_in_subnet(0x0a0102ffu, 0x0a010200u, 24));
	assert_false(ipv4_in_subnet(0x0a010300u, 0x0a010200u, 24));
	assert_true(ipv4_in_subnet(0xc0a80001u, 0x0a010200u, 0));
	assert_true(ipv4_in_subnet(0x0a010203u, 0x0a010203u, 32));
	assert_false(ipv4_in_subnet(0x0a010202u, 0x0a010203u, 32));
	assert_true(ipv4_in_subnet(0x0a010203u, 0x0a010202u, 31));
	/* 10.0.0.0/8 holds 10.1.2.0/24; 10.1.2.0/24 and 10.1.3.0/24 do not meet */
	assert_true(ipv4_subnets_overlap(0x0a000000u, 8, 0x0a010200u, 24));
	assert_true(ipv4_subnets_overlap(0x0a010200u, 24, 0x0a000000u, 8));
	assert_false(ipv4_subnets_overlap(0x0a010200u, 24, 0x0a010300u, 24));
	assert_true(ipv4_subnets_overlap(0x0a010200u, 23, 0x0a010300u, 24));
}

/* Run fn with stderr going to a file; what it wrote ends up in b. */
static void capture_stderr(void (*fn)(void), struct buf *b)
{
	char path[] = "/tmp/kiln-util-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	int saved = dup(2);
	assert_true(saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	buf_init(b, 0);
	assert_int_equal(file_read(path, b, 1 << 20), 0);
	unlink(path);
}

static void log_some(void)
{
	log_note(LOG_INFO, "tftp", "10.0.0.9: '%s' refused", "a\"b\\c\x1b[2J\nd\xff");
	log_event(LOG_WARN, "http", "path=%s status=%d", "/x\ny", 404);
	log_event(LOG_INFO, "ready", NULL);
	log_msg(LOG_ERR, "state: %s", "disk full");
	log_note(LOG_DEBUG, "dhcp", "below the threshold");
}

/* Check one key=value line: the ts= field's shape, then the rest. */
static const char *kv_line(const char *p, const char *rest)
{
	int y, mo, d, h, mi, sec, ms, n = 0;
	assert_int_equal(sscanf(p, "ts=%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %n", &y, &mo, &d, &h, &mi,
				&sec, &ms, &n), 7);
	assert_int_equal(n, 28);
	const char *nl = strchr(p, '\n');
	assert_non_null(nl);
	assert_int_equal((size_t)(nl - p - n), strlen(rest));
	assert_memory_equal(p + n, rest, strlen(rest));
	return nl + 1;
}

/*
 * The CLI format keeps "kiln: LEVEL: [EVENT: ]text"; the daemon's format
 * writes every line, log_msg's and log_note's included, as key=value with
 * the text quoted.  Both escape what a peer could send: a quote or a
 * backslash cannot end msg="..." early, a newline cannot start a forged
 * line, an escape sequence never reaches the terminal.
 */
static void test_log_formats(void **state)
{
	enum log_level saved = log_threshold;
	struct buf b;
	log_threshold = LOG_INFO;

	capture_stderr(log_some, &b);
	assert_string_equal(b.s,
		"kiln: info: tftp: 10.0.0.9: 'a\"b\\c\\x1b[2J\\x0ad\\xff' refused\n"
		"kiln: warning: http: path=/x\\x0ay status=404\n"
		"kiln: info: ready\n"
		"kiln: error: state: disk full\n");
	buf_release(&b);

	log_set_format(LOG_FORMAT_KV);
	capture_stderr(log_some, &b);
	log_set_format(LOG_FORMAT_CLI);
	log_threshold = saved;
	const char *p = b.s;
	p = kv_line(p, "level=info event=tftp msg=\"10.0.0.9: 'a\\\"b\\\\c\\x1b[2J\\x0ad\\xff' refused\"");
	p = kv_line(p, "level=warn event=http path=/x\\x0ay status=404");
	p = kv_line(p, "level=info event=ready");
	p = kv_line(p, "level=error event=log msg=\"state: disk full\"");
	assert_string_equal(p, "");
	buf_release(&b);
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
		cmocka_unit_test(test_run_signals_reset),
		cmocka_unit_test(test_run_process_group),
		cmocka_unit_test(test_run_exec_errors),
		cmocka_unit_test(test_run_stdin_closed),
		cmocka_unit_test(test_ipv4_prefix),
		cmocka_unit_test(test_log_formats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
