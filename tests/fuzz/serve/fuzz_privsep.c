/*
 * The messages between kiln serve's two processes (src/serve/privsep.c):
 * the first byte picks the decoder — the configuration the network
 * process accepts from the privileged one, the failure reply, or the
 * enroll request the privileged one accepts (as root) from the network
 * process.  A configuration that decodes is encoded again and must decode
 * to the same files.  No descriptors ride along here (nfds 0).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void config(const uint8_t *d, size_t n)
{
	struct ps_config c, again;
	int fds[PS_MAX_FDS];
	size_t nfds = 0;
	struct buf b;

	if (ps_config_decode(d, n, NULL, 0, &c) < 0)
		return;
	buf_init(&b, 0);
	if (ps_config_encode(&c, &b, fds, &nfds) < 0 || nfds != 0 ||
	    ps_config_decode(b.s, b.len, NULL, 0, &again) < 0)
		abort();
	if (again.files.n != c.files.n || strcmp(again.spec, c.spec))
		abort();
	for (size_t i = 0; i < c.files.n; i++)
		if (strcmp(again.files.v[i].path, c.files.v[i].path) ||
		    again.files.v[i].len != c.files.v[i].len ||
		    !again.files.v[i].data != !c.files.v[i].data ||
		    (c.files.v[i].data &&
		     memcmp(again.files.v[i].data, c.files.v[i].data, c.files.v[i].len)))
			abort();
	ps_config_release(&again);
	ps_config_release(&c);
	buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	switch (data[0] % 3) {
	case 0:
		config(d, n);
		break;
	case 1: {
		int status;
		char *msg = NULL;
		if (ps_fail_decode(d, n, &status, &msg) == 0 && (!msg || strlen(msg) > n))
			abort();
		free(msg);
		break;
	}
	default: {
		struct ps_enroll keep;
		struct enroll_req q = { 0 };
		struct strv roles = STRV_INIT;
		if (ps_enroll_unpack(d, n, &keep, &q, &roles) == 0 &&
		    (!q.mac || !q.name || strlen(q.name) >= sizeof(keep.name) ||
		     roles.n > PS_MAX_ROLES))
			abort();
		strv_release(&roles);
		break;
	}
	}
	return 0;
}
