/*
 * bmc: argument checks, secrets, Redfish URLs, and the timeout/retry and
 * bulk machinery against loopback peers that never answer.  Real BMC
 * conversations are in tests/lab/0200-ipmi.sh (ipmi_sim) and
 * tests/lab/0201-redfish.sh (the Redfish mock).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmc/bmc.h"
#include "bmc/bmc_int.h"

static void test_names(void **state)
{
	enum bmc_proto t;

	assert_int_equal(bmc_proto_parse("ipmi", &t), 0);
	assert_int_equal(t, BMC_PROTO_IPMI);
	assert_int_equal(bmc_proto_parse("redfish", &t), 0);
	assert_int_equal(t, BMC_PROTO_REDFISH);
	assert_int_equal(bmc_proto_parse("IPMI", &t), -EINVAL);
	assert_int_equal(bmc_proto_parse(NULL, &t), -EINVAL);
	assert_string_equal(bmc_proto_name(BMC_PROTO_REDFISH), "redfish");
	assert_string_equal(bmc_power_name(BMC_POWER_OFF), "off");
	assert_true(bmc_action_valid("cycle"));
	assert_true(bmc_action_valid("soft"));
	assert_false(bmc_action_valid("explode"));
	assert_false(bmc_action_valid(NULL));
	assert_true(bmc_bootdev_valid("pxe"));
	assert_true(bmc_bootdev_valid("none"));
	assert_false(bmc_bootdev_valid("floppy"));
}

/* Bad arguments fail before any I/O, naming what is wrong. */
static void test_bad_args(void **state)
{
	struct bmc_target c;
	struct kerr e = { 0 };
	enum bmc_power p;

	bmc_target_init(&c);
	assert_int_equal(bmc_power_get(&c, &p, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "no address"));
	c.address = xstrdup("192.0.2.1");
	assert_int_equal(bmc_power_set(&c, "explode", &e), -EINVAL);
	assert_non_null(strstr(e.msg, "unknown power action 'explode'"));
	assert_int_equal(bmc_bootdev_set(&c, "floppy", true, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "unknown boot device 'floppy'"));
	c.port = 70000;
	assert_int_equal(bmc_power_get(&c, &p, &e), -EINVAL);
	c.port = 0;
	/* IPMI 2.0 caps passwords at 20 bytes: say so rather than truncate. */
	c.user = xstrdup("admin");
	c.password = xstrdup("012345678901234567890");
	assert_int_equal(bmc_power_get(&c, &p, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "bmc 192.0.2.1: IPMI: password longer"));
	bmc_target_release(&c);
	assert_null(c.address);
	bmc_target_release(NULL);
}

static char *write_tmp(const char *content, mode_t mode)
{
	char *path = xstrdup("/tmp/kiln-bmc-test-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void test_secret(void **state)
{
	struct kerr e = { 0 };
	char *s = NULL;
	char *f1 = write_tmp("s3cret\nsecond line\n", 0600);
	char *f2 = write_tmp("s3cret\n", 0644);
	char *f3 = write_tmp("\n", 0600);

	assert_int_equal(bmc_secret_load(f1, NULL, &s, &e), 0);
	assert_string_equal(s, "s3cret");
	free(s);
	assert_int_equal(bmc_secret_load(f2, "IGNORED", &s, &e), -EPERM);
	assert_null(s);
	assert_non_null(strstr(e.msg, "chmod 600"));
	assert_int_equal(bmc_secret_load(f3, NULL, &s, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "empty"));
	assert_int_equal(bmc_secret_load("/nonexistent/pw", NULL, &s, &e), -ENOENT);

	setenv("KILN_BMC_TEST_PW", "from-env", 1);
	assert_int_equal(bmc_secret_load(NULL, "KILN_BMC_TEST_PW", &s, &e), 0);
	assert_string_equal(s, "from-env");
	free(s);
	unsetenv("KILN_BMC_TEST_PW");
	assert_int_equal(bmc_secret_load(NULL, "KILN_BMC_TEST_PW", &s, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "KILN_BMC_TEST_PW"));
	assert_int_equal(bmc_secret_load(NULL, NULL, &s, &e), -EINVAL);
	unlink(f1);
	unlink(f2);
	unlink(f3);
	free(f1);
	free(f2);
	free(f3);
}

static void url_is(const char *addr, int port, const char *want)
{
	struct bmc_target c;
	bmc_target_init(&c);
	c.proto = BMC_PROTO_REDFISH;
	c.address = (char *)addr;
	c.port = port;
	char *u = redfish_base_url(&c);
	assert_string_equal(u, want);
	free(u);
}

static void test_redfish_url(void **state)
{
	url_is("10.0.0.5", 0, "https://10.0.0.5");
	url_is("10.0.0.5", 8443, "https://10.0.0.5:8443");
	url_is("bmc-7.example", 0, "https://bmc-7.example");
	url_is("https://10.0.0.5/redfish/v1", 0, "https://10.0.0.5");
	url_is("https://10.0.0.5:8443/", 9999, "https://10.0.0.5:8443");
	url_is("http://127.0.0.1:8000", 0, "http://127.0.0.1:8000");
	url_is("fd00::5", 0, "https://[fd00::5]");
	url_is("fd00::5", 443, "https://[fd00::5]:443");
	url_is("[fd00::5]:8443", 0, "https://[fd00::5]:8443");
	url_is("[fd00::5]", 8443, "https://[fd00::5]:8443");
}

/* A loopback UDP socket that receives and never answers: a dead BMC. */
static int silent_udp(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A loopback TCP listener whose backlog accepts and never answers. */
static int silent_tcp(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A closed loopback TCP port (bound, never listened, then closed). */
static int closed_tcp_port(void)
{
	int port, fd = silent_tcp(&port);
	close(fd);
	return port;
}

/* IPMI to a BMC that never answers: -ETIMEDOUT after all attempts, in time. */
static void test_ipmi_timeout(void **state)
{
	struct bmc_target c;
	struct kerr e = { 0 };
	enum bmc_power p;
	int port, fd = silent_udp(&port);

	bmc_target_init(&c);
	c.address = xstrdup("127.0.0.1");
	c.port = port;
	c.user = xstrdup("admin");
	c.password = xstrdup("pw");
	c.timeout_ms = 300;
	c.retries = 2;
	int64_t t0 = now_ms();
	assert_int_equal(bmc_power_get(&c, &p, &e), -ETIMEDOUT);
	int64_t dt = now_ms() - t0;
	assert_int_equal(p, BMC_POWER_UNKNOWN);
	/* three attempts of 300 ms plus two short pauses, and not much more */
	assert_true(dt >= 900);
	assert_true(dt < 15000);   /* bounded, not hanging: no timing claim */
	char want[128];
	snprintf(want, sizeof(want), "bmc 127.0.0.1:%d: IPMI: no answer within 300 ms (3 attempts)", port);
	assert_string_equal(e.msg, want);
	close(fd);
	bmc_target_release(&c);
}

/* Redfish: refused connections and silent servers, labelled by URL. */
static void test_redfish_errors(void **state)
{
	struct bmc_target c;
	struct kerr e = { 0 };
	enum bmc_power p;
	char want[160];
	int port;

	bmc_target_init(&c);
	c.proto = BMC_PROTO_REDFISH;
	c.user = xstrdup("root");
	c.password = xstrdup("pw");
	c.timeout_ms = 300;
	c.retries = 1;

	port = closed_tcp_port();
	c.address = xasprintf("http://127.0.0.1:%d", port);
	assert_int_equal(bmc_power_get(&c, &p, &e), -ECONNREFUSED);
	snprintf(want, sizeof(want), "bmc http://127.0.0.1:%d: Redfish: cannot connect", port);
	assert_true(str_starts(e.msg, want));
	assert_non_null(strstr(e.msg, "(2 attempts)"));
	free(c.address);

	int fd = silent_tcp(&port);
	c.address = xasprintf("127.0.0.1:%d", port);   /* https by default */
	int64_t t0 = now_ms();
	assert_int_equal(bmc_power_set(&c, "cycle", &e), -ETIMEDOUT);
	int64_t dt = now_ms() - t0;
	assert_true(dt >= 600 && dt < 15000);   /* both attempts waited, none hung */
	snprintf(want, sizeof(want),
		 "bmc https://127.0.0.1:%d: Redfish: no answer within 300 ms (2 attempts)", port);
	assert_string_equal(e.msg, want);
	close(fd);
	bmc_target_release(&c);
}

/*
 * Bulk: many dead BMCs in parallel finish in about one timeout, results
 * land at their own index, and a good argument check in one does not hide
 * another's failure.
 */
static void test_bulk(void **state)
{
	enum { N = 12 };
	struct bmc_target confs[N];
	const struct bmc_target *ptrs[N];
	struct bmc_result res[N];
	int fds[N], ports[N];
	struct bmc_op op = { .kind = BMC_OP_POWER_GET };

	for (int i = 0; i < N; i++) {
		bmc_target_init(&confs[i]);
		fds[i] = silent_udp(&ports[i]);
		confs[i].address = xstrdup("127.0.0.1");
		confs[i].port = ports[i];
		confs[i].user = xstrdup("admin");
		confs[i].password = xstrdup("pw");
		confs[i].timeout_ms = 400;
		confs[i].retries = 0;
		ptrs[i] = &confs[i];
	}
	/* one with no address: fails at once, others unaffected */
	free(confs[5].address);
	confs[5].address = NULL;

	int64_t t0 = now_ms();
	assert_int_equal(bmc_bulk(ptrs, N, &op, N, res), -EIO);
	int64_t dt = now_ms() - t0;
	assert_true(dt < (N - 1) * 400);   /* serially this would take N * 400 ms */
	for (int i = 0; i < N; i++) {
		if (i == 5) {
			assert_int_equal(res[i].rc, -EINVAL);
			continue;
		}
		assert_int_equal(res[i].rc, -ETIMEDOUT);
		assert_int_equal(res[i].power, BMC_POWER_UNKNOWN);
		assert_true(res[i].elapsed_ms >= 400);
		char want[64];
		snprintf(want, sizeof(want), "bmc 127.0.0.1:%d: ", ports[i]);
		assert_true(str_starts(res[i].err.msg, want));
	}

	/* bounded concurrency: 4 at a time -> at least 3 rounds */
	t0 = now_ms();
	assert_int_equal(bmc_bulk(ptrs, N, &op, 4, res), -EIO);
	dt = now_ms() - t0;
	assert_true(dt >= 3 * 400);
	assert_true(dt < (N - 1) * 400);   /* and not one at a time */
	assert_int_equal(bmc_bulk(ptrs, 0, &op, 4, res), 0);

	for (int i = 0; i < N; i++) {
		close(fds[i]);
		bmc_target_release(&confs[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_secret),
		cmocka_unit_test(test_redfish_url),
		cmocka_unit_test(test_ipmi_timeout),
		cmocka_unit_test(test_redfish_errors),
		cmocka_unit_test(test_bulk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
