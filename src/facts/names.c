/*
 * PCI vendor, device and class names from the pci.ids database through
 * libpci (udev's hwdb is not consulted, so results depend on pci.ids
 * alone).  Lives in its own library because the static kiln-agent cannot
 * link libpci: the control host resolves names for every node.
 */
#include "facts.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <pci/pci.h>

/*
 * libpci reports fatal errors through a callback that must not return.
 * We jump back to facts_resolve_names() from it; the jump buffer is
 * thread-local so concurrent callers do not share it.
 */
static _Thread_local jmp_buf *pci_fail;

static void PCI_NONRET pci_error(char *msg, ...)
{
	(void)msg;
	longjmp(*pci_fail, 1);
}

static void pci_quiet(char *msg, ...)
{
	(void)msg;   /* library code never prints */
}

/* Parse "0x10de" (at most max) into *v. */
static bool hex_id(const json_t *j, unsigned long max, unsigned int *v)
{
	const char *s = json_string_value(j);
	char *end;
	unsigned long n;

	if (!s || strncmp(s, "0x", 2) || !s[2])
		return false;
	n = strtoul(s + 2, &end, 16);
	if (*end || n > max)
		return false;
	*v = (unsigned int)n;
	return true;
}

/* Set key to name, or remove it when the database has no entry. */
static void set_name(json_t *o, const char *key, const char *name)
{
	if (name && *name)
		json_object_set_new(o, key, json_string(name) ?: json_null());
	else
		json_object_del(o, key);
}

/* Names for one pci/gpus entry; class_src is the pci entry carrying "class". */
static void resolve_one(struct pci_access *pa, json_t *o, const json_t *class_src)
{
	char buf[256];
	unsigned int ven, dev, cls;
	const int f = PCI_LOOKUP_NO_NUMBERS | PCI_LOOKUP_NO_HWDB;

	if (hex_id(json_object_get(o, "vendor_id"), 0xffff, &ven)) {
		set_name(o, "vendor_name", pci_lookup_name(pa, buf, sizeof(buf),
							   PCI_LOOKUP_VENDOR | f, ven));
		if (hex_id(json_object_get(o, "device_id"), 0xffff, &dev))
			set_name(o, "device_name", pci_lookup_name(pa, buf, sizeof(buf),
								   PCI_LOOKUP_DEVICE | f, ven, dev));
	}
	/* class is "0xCCSSPP"; the name is per base class and subclass */
	if (class_src && hex_id(json_object_get(class_src, "class"), 0xffffff, &cls))
		set_name(o, "class_name", pci_lookup_name(pa, buf, sizeof(buf),
							  PCI_LOOKUP_CLASS | f, cls >> 8));
}

/* The facts.pci[] entry for a slot, or NULL. */
static const json_t *pci_by_slot(const json_t *facts, const char *slot)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(facts, "pci"), i, p) {
		const char *s = json_string_value(json_object_get(p, "slot"));
		if (s && slot && !strcmp(s, slot))
			return p;
	}
	return NULL;
}

/* See facts.h. */
int facts_resolve_names(json_t *facts, struct kerr *e)
{
	struct pci_access *pa;
	volatile bool looking_up = false;
	jmp_buf jb;
	json_t *o;
	size_t i;

	if (!json_is_object(facts))
		return kerr_set(e, -EINVAL, "facts: not a JSON object");
	pa = pci_alloc();
	pa->error = pci_error;
	pa->warning = pci_quiet;
	pa->debug = pci_quiet;
	pci_fail = &jb;
	if (setjmp(jb)) {
		if (looking_up) {
			pci_fail = NULL;
			/* libpci's state is unknown after a fatal error: leak it rather than free it */
			return kerr_set(e, -ENOTSUP, "facts: libpci failed to look up PCI names");
		}
		/*
		 * pci_init() found no way to reach devices (a container without
		 * /sys/bus/pci): it fails before touching any state, and name
		 * lookups need no device access, so carry on.
		 */
	} else {
		pci_init(pa);
	}
	looking_up = true;
	json_array_foreach(json_object_get(facts, "pci"), i, o)
		resolve_one(pa, o, o);
	json_array_foreach(json_object_get(facts, "gpus"), i, o)
		resolve_one(pa, o, pci_by_slot(facts,
			json_string_value(json_object_get(o, "slot"))));
	pci_cleanup(pa);
	pci_fail = NULL;
	return 0;
}
