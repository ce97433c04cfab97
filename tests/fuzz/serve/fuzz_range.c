/*
 * The HTTP Range parser: input is 8 bytes of resource size, then the
 * header value.  Checks the contract: a 0 result is a non-empty range
 * inside the resource; -ERANGE only for a resource the range misses.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t rsize = 0, first = 0, last = 0;
	if (size < 8)
		return 0;
	memcpy(&rsize, data, 8);
	if (data[0] & 1)
		rsize &= 0xffff;   /* small sizes too */
	char *hdr = xmalloc(size - 8 + 1);
	memcpy(hdr, data + 8, size - 8);
	hdr[size - 8] = '\0';
	int r = http_range_parse(hdr, rsize, &first, &last);
	if (r == 0 && (first > last || last >= rsize))
		abort();
	if (r != 0 && r != 1 && r != -ERANGE)
		abort();
	free(hdr);
	return 0;
}
