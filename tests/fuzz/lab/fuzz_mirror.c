/*
 * The lab mirror's request paths: whatever a peer sends, a name that comes
 * back is one plain file name at the top of the repository.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lab/lab_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 1);

	if (!path)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';
	const char *name = mirror_request_name(path);
	if (name) {
		size_t n = strlen(name);
		if (!n || n > 200 || name[0] == '.' || strchr(name, '/') ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789._+~%:-") != n)
			abort();
	}
	free(path);
	return 0;
}
