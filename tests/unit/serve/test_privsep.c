/*
 * kiln serve's privsep messages (src/serve/privsep.c): a configuration
 * with a descriptor crosses a real socketpair and decodes to what was
 * sent; framing that breaks the caps, or a peer gone mid-message, is
 * refused; the enroll request round-trips and an unterminated field is
 * refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "serve/serve_int.h"

/* Read until a whole message, an error, or (bounded) nothing more comes. */
static int read_all(struct ps_rx *x, int fd)
{
	for (int i = 0; i < 100000; i++) {
		int r = ps_rx_read(x, fd);
		if (r != 0)
			return r;
	}
	return -ETIMEDOUT;
}

static void test_config_roundtrip(void **state)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

	struct ps_config c = { .spec = xstrdup("cluster.yaml"), .token = xstrdup("t0k3n-t0k3n-t0k3n") };
	c.files.cwd = xstrdup("/etc/kiln");
	spec_files_add(&c.files, "/etc/kiln/cluster.yaml", "cluster: x\n", 11);
	spec_files_add(&c.files, "/etc/kiln/enrolled.yaml", NULL, 0);
	c.images.v = xcalloc(2, sizeof(*c.images.v));
	c.images.n = 1;
	c.images.v[0].name = xstrdup("debian12");
	c.images.v[0].fd[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	c.images.v[0].fd[1] = -1;
	c.enrolled_node = xstrdup("gpu-07");

	struct buf b;
	int fds[PS_MAX_FDS];
	size_t nfds;
	buf_init(&b, 0);
	assert_int_equal(ps_config_encode(&c, &b, fds, &nfds), 0);
	assert_int_equal(nfds, 1);
	assert_int_equal(ps_send(sv[0], PS_CONFIG, 7, b.s, b.len, fds, nfds), 0);

	struct ps_rx x;
	ps_rx_init(&x, PS_MAX_MSG);
	assert_int_equal(read_all(&x, sv[1]), 1);
	assert_int_equal(x.type, PS_CONFIG);
	assert_int_equal(x.id, 7);
	assert_int_equal(x.nfds, 1);

	struct ps_config d;
	assert_int_equal(ps_config_decode(x.body.s, x.len, x.fds, x.nfds, &d), 0);
	assert_string_equal(d.spec, "cluster.yaml");
	assert_string_equal(d.token, "t0k3n-t0k3n-t0k3n");
	assert_true(d.files.replay);
	assert_int_equal(d.files.n, 2);
	assert_memory_equal(d.files.v[0].data, "cluster: x\n", 11);
	assert_null(d.files.v[1].data);
	assert_int_equal(d.images.n, 1);
	assert_int_equal(d.images.v[0].fd[1], -1);
	struct stat st, dn;
	assert_int_equal(fstat(d.images.v[0].fd[0], &st), 0);
	assert_int_equal(stat("/dev/null", &dn), 0);
	assert_true(st.st_rdev == dn.st_rdev);
	assert_string_equal(d.enrolled_node, "gpu-07");
	assert_null(d.enrolled_address);
	assert_int_equal(x.fds[0], -1);   /* taken by the decode */

	ps_config_release(&d);
	ps_config_release(&c);
	ps_rx_release(&x);
	buf_release(&b);
	close(sv[0]);
	close(sv[1]);
}

/* A header promising more than the reader's cap is refused, not buffered. */
static void test_framing_caps(void **state)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	char big[PS_MAX_REQ + 1];
	memset(big, 'x', sizeof(big));
	assert_int_equal(ps_send(sv[0], PS_ENROLL, 1, big, sizeof(big), NULL, 0), 0);
	struct ps_rx x;
	ps_rx_init(&x, PS_MAX_REQ);
	assert_int_equal(read_all(&x, sv[1]), -EBADMSG);
	assert_true(x.body.len == 0);
	ps_rx_release(&x);

	/* a peer that closes mid-message: end of stream */
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ps_rx_init(&x, PS_MAX_REQ);
	assert_int_equal(send(sv[0], "\0\0\0\3", 4, 0), 4);
	close(sv[0]);
	assert_int_equal(read_all(&x, sv[1]), -ECONNRESET);
	ps_rx_release(&x);
	close(sv[1]);

	/* a configuration that does not decode is refused whole */
	struct ps_config c;
	assert_int_equal(ps_config_decode("\0\0\0\5abc", 7, NULL, 0, &c), -EBADMSG);
}

static void test_enroll_message(void **state)
{
	struct strv roles = STRV_INIT, back = STRV_INIT;
	strv_push(&roles, "worker");
	strv_push(&roles, "gpu");
	struct enroll_req q = { .mac = "52:54:00:12:34:56", .name = "gpu-07", .roles = &roles,
				.image = "debian12", .ip_hint = "10.0.0.9" };
	struct ps_enroll m, keep;
	assert_int_equal(ps_enroll_pack(&q, &m), 0);
	struct enroll_req r = { 0 };
	assert_int_equal(ps_enroll_unpack(&m, sizeof(m), &keep, &r, &back), 0);
	assert_string_equal(r.mac, q.mac);
	assert_string_equal(r.name, "gpu-07");
	assert_string_equal(r.image, "debian12");
	assert_null(r.address);
	assert_string_equal(r.ip_hint, "10.0.0.9");
	assert_int_equal(back.n, 2);
	assert_string_equal(back.v[1], "gpu");
	strv_release(&back);

	/* a field without its NUL, a wrong size, too many roles: refused */
	struct ps_enroll bad = m;
	memset(bad.name, 'a', sizeof(bad.name));
	assert_int_equal(ps_enroll_unpack(&bad, sizeof(bad), &keep, &r, &back), -EBADMSG);
	strv_release(&back);
	assert_int_equal(ps_enroll_unpack(&m, sizeof(m) - 1, &keep, &r, &back), -EBADMSG);
	bad = m;
	bad.nroles = PS_MAX_ROLES + 1;
	assert_int_equal(ps_enroll_unpack(&bad, sizeof(bad), &keep, &r, &back), -EBADMSG);
	strv_release(&back);
	char longname[200];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	q.name = longname;
	assert_int_equal(ps_enroll_pack(&q, &m), -ENAMETOOLONG);
	strv_release(&roles);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_roundtrip),
		cmocka_unit_test(test_framing_caps),
		cmocka_unit_test(test_enroll_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
