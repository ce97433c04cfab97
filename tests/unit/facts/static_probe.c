/*
 * facts in a fully static executable, as kiln-agent links them: collect a
 * fixture root (argv[1]), check the GPU part, then try NVML from argv[2]
 * through glibc's static dlopen.  The collection must work; NVML may only
 * fail cleanly (-ENOENT), since static dlopen needs the very glibc that the
 * binary was built against.  Prints one line per step for the test log.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "facts/facts.h"

int main(int argc, char **argv)
{
	struct kerr e = { 0 };
	json_t *f = NULL, *g;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: facts_static_probe ROOT NVML_LIBRARY\n");
		return 2;
	}
	if ((r = facts_collect(argv[1], &f, &e)) < 0) {
		fprintf(stderr, "collect: %s\n", e.msg);
		return 1;
	}
	g = json_object_get(f, "gpus");
	printf("collect: %zu gpus, %zu disks, %zu nics\n", json_array_size(g),
	       json_array_size(json_object_get(f, "disks")),
	       json_array_size(json_object_get(f, "nics")));
	if (json_array_size(g) != 5 ||
	    strcmp(json_string_value(json_object_get(json_array_get(g, 0), "model")) ?: "",
		   "NVIDIA A100-SXM4-40GB")) {
		fprintf(stderr, "collect: unexpected gpus\n");
		json_decref(f);
		return 1;
	}
	r = facts_merge_nvml(f, argv[2], &e);
	if (r >= 0) {
		printf("nvml: static dlopen worked, %d gpus merged\n", r);
		const char *v = json_string_value(json_object_get(json_array_get(g, 0), "driver_version"));
		if (r != 4 || !v || strcmp(v, "550.54.15")) {
			fprintf(stderr, "nvml: wrong merge\n");
			r = -1;
		}
	} else if (r == -ENOENT) {
		printf("nvml: not loadable in a static binary: %s\n", e.msg);
		r = 0;
	} else {
		fprintf(stderr, "nvml: unexpected failure %d: %s\n", r, e.msg);
	}
	json_decref(f);
	return r < 0 ? 1 : 0;
}
