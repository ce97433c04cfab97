/* lab mirror: which request paths name a served file; state round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lab/lab_int.h"

/* mirror_request_name() on a copy of path; the name or NULL, as a new string. */
static char *name_of(const char *path)
{
	char *p = xstrdup(path);
	const char *n = mirror_request_name(p);
	char *out = n ? xstrdup(n) : NULL;
	free(p);
	return out;
}

static void expect_name(const char *path, const char *want)
{
	char *got = name_of(path);
	if (want)
		assert_non_null(got);
	if (!want && got)
		fail_msg("'%s' named '%s', expected a refusal", path, got);
	if (want)
		assert_string_equal(got, want);
	free(got);
}

static void test_request_names(void **s)
{
	/* What apt asks for with "deb http://ADDR/ ./". */
	expect_name("/./Packages", "Packages");
	expect_name("/./InRelease", "InRelease");
	expect_name("/./zsh_5.9-4+b15_amd64.deb", "zsh_5.9-4+b15_amd64.deb");
	expect_name("/./libcap2_1%3a2.66-4_amd64.deb", "libcap2_1%3a2.66-4_amd64.deb");
	expect_name("//Packages", "Packages");
	expect_name("/Packages", "Packages");
	/* Out of the repository, directories, hidden files, odd bytes. */
	expect_name("/../packages", NULL);
	expect_name("/./../etc/passwd", NULL);
	expect_name("/partial/x.deb", NULL);
	expect_name("/", NULL);
	expect_name("", NULL);
	expect_name("/.lock", NULL);
	expect_name("/..", NULL);
	expect_name("/a b", NULL);
	expect_name("/a\nb", NULL);
	expect_name("/a\\b", NULL);
	expect_name("/\xc3\xa9", NULL);
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	expect_name(longname, NULL);
}

static void test_state_round_trip(void **s)
{
	struct lab_mirror m = { .cache = "/var/cache/kiln/lab-mirror", .addr = "10.213.0.3",
				.port = 80, .pid = 1234, .start = 5678 };
	json_t *j = mirror_to_json(&m);
	struct lab_mirror *back = mirror_from_json(j);

	assert_non_null(back);
	assert_string_equal(back->cache, m.cache);
	assert_string_equal(back->addr, m.addr);
	assert_int_equal(back->port, 80);
	assert_int_equal(back->pid, 1234);
	assert_int_equal(back->start, 5678);
	mirror_free(back);
	json_decref(j);
	/* No mirror, and a state file that is not ours. */
	j = mirror_to_json(NULL);
	assert_true(json_is_null(j));
	assert_null(mirror_from_json(j));
	json_decref(j);
	j = json_pack("{s:s, s:i}", "cache", "/x", "port", 99999);
	assert_null(mirror_from_json(j));
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_names),
		cmocka_unit_test(test_state_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
