/*
 * Helpers shared by the facts collectors.  Not part of the public API.
 *
 * All paths are absolute paths on the described machine; they are read
 * under the collection root.  Readers return NULL (or a negative errno)
 * when a file is absent or unreadable, which callers treat as "unknown".
 */
#ifndef KILN_FACTS_INTERNAL_H
#define KILN_FACTS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "util/util.h"

/* Default cap for a sysfs/proc attribute; bigger files pass their own. */
#define FX_SMALL_CAP (64u * 1024)
/* Cap for /proc/cpuinfo, /proc/self/mountinfo and the like. */
#define FX_BIG_CAP (8u * 1024 * 1024)

struct fx {
	const char *root;  /* never NULL; "/" for the live machine */
	bool live;         /* root is "/": uname(), getifaddrs(), NVML allowed */
};

/* Read a file under the root into a new string (at most cap bytes), or NULL. */
char *fx_read_cap(const struct fx *x, const char *path, size_t cap);
/* Read a small attribute, whitespace-trimmed; NULL when absent or empty. */
char *fx_read(const struct fx *x, const char *path);
char *fx_readf(const struct fx *x, const char *fmt, ...) PRINTF(2, 3);
/* Read a decimal attribute; -ENOENT, -EINVAL or -ERANGE when unusable. */
int fx_read_i64(const struct fx *x, const char *path, int64_t *out);
/* Basename of a symlink's target (e.g. a "driver" link), or NULL. */
char *fx_link_base(const struct fx *x, const char *path);
/* Sorted names in a directory (no "." and ".."); empty when absent. */
void fx_list(const struct fx *x, const char *path, struct strv *out);
bool fx_exists(const struct fx *x, const char *path);

/* A JSON string for s (made printable ASCII if it is not valid UTF-8), or null. */
json_t *fx_jstr(const char *s);
/* As fx_jstr, and frees s. */
json_t *fx_jstr_take(char *s);
/* A JSON integer, or null when r (the result of a reader) is negative. */
json_t *fx_jint(int r, int64_t v);
/* Replace \ooo octal escapes (as in /proc/mounts) in place. */
void fx_unescape_octal(char *s);

/* Collectors, each adding its keys to facts. */
void fx_collect_pci(const struct fx *x, json_t *facts);
void fx_collect_gpus(const struct fx *x, json_t *facts);
void fx_collect_disks(const struct fx *x, json_t *facts);
void fx_collect_nics(const struct fx *x, json_t *facts);
/* "wireguard": interfaces and peers from `wg show all dump`, when wg is there. */
void fx_collect_wireguard(const struct fx *x, json_t *facts);

/* Normalise a PCI address ("00000000:3B:00.0") to "0000:3b:00.0"; false if malformed. */
bool fx_pci_slot_norm(const char *in, char *out, size_t n);

#endif
