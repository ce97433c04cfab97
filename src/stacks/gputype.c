/*
 * GPU type names for Slurm's Gres (slurm.h, docs/slurm.md "GPU types").
 *
 * A name (NVML's "NVIDIA A100-SXM4-40GB", or pci.ids's "GA100 [A100 SXM4
 * 40GB]") is cut into lower-case words; vendor and brand words go; the
 * model word (a100, t4, l40s; rtx + 3090 -> rtx3090) is the base; a memory
 * size and a form factor are added only where they differ from the model's
 * usual one in the table below, so the 40 GB SXM A100 is "a100" whichever
 * source named it, the 80 GB one "a100-80g", the PCIe one "a100-pcie".
 * A model not in the table keeps every size and form word its name has,
 * so two distinct models never share a type.
 */
#include "slurm.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

/* A model's usual memory (GB, 0 = none named) and form factor. */
struct gpu_model {
	const char *word;
	int mem_gb;
	const char *form;   /* "sxm" or "pcie" */
};

static const struct gpu_model gpu_models[] = {
	{ "a100", 40, "sxm" },  { "a800", 80, "sxm" },  { "h100", 80, "sxm" },
	{ "h200", 141, "sxm" }, { "h800", 80, "sxm" },  { "b200", 180, "sxm" },
	{ "v100", 16, "sxm" },  { "p100", 16, "sxm" },  { "k80", 0, "pcie" },
	{ "t4", 16, "pcie" },   { "l4", 24, "pcie" },   { "l40", 48, "pcie" },
	{ "l40s", 48, "pcie" }, { "a10", 24, "pcie" },  { "a30", 24, "pcie" },
	{ "a40", 48, "pcie" },  { "a16", 16, "pcie" },  { "a2", 16, "pcie" },
	{ "p40", 24, "pcie" },  { "p4", 8, "pcie" },
};

/* Words that say who made it or which line it belongs to, not which model. */
static const char *const noise[] = {
	"nvidia", "tesla", "geforce", "quadro", "grid", "corporation", "hbm3", "hbm3e",
	"hbm2", "hbm2e", "gddr6", "gddr6x", "graphics", "gpu", "accelerator",
};

#define WORDS_MAX 16
#define WORD_MAX 24

static bool in_list(const char *w, const char *const *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(w, l[i]))
			return true;
	return false;
}

/* Lower-case alphanumeric words of s, the noise dropped. */
static size_t words_of(const char *s, char w[WORDS_MAX][WORD_MAX])
{
	size_t n = 0, l = 0;

	for (;; s++) {
		bool alnum = *s && isascii((unsigned char)*s) && isalnum((unsigned char)*s);
		if (alnum) {
			if (l < WORD_MAX - 1)
				w[n][l++] = (char)tolower((unsigned char)*s);
			continue;
		}
		if (l) {
			w[n][l] = '\0';
			l = 0;
			if (!in_list(w[n], noise, ARRAY_SIZE(noise)) && ++n == WORDS_MAX)
				break;
		}
		if (!*s)
			break;
	}
	return n;
}

/* "40gb" / "80g" -> 40 / 80, else 0. */
static int mem_word(const char *w)
{
	int v = 0;
	size_t i = 0;

	while (isdigit((unsigned char)w[i]) && i < 5)
		v = v * 10 + (w[i++] - '0');
	if (!i || (strcmp(w + i, "gb") && strcmp(w + i, "g")))
		return 0;
	return v;
}

/* "sxm", "sxm2", "sxm4", "sxm5" -> "sxm"; "pcie" -> "pcie"; "nvl" -> "nvl". */
static const char *form_word(const char *w)
{
	if (!strncmp(w, "sxm", 3) && (!w[3] || (isdigit((unsigned char)w[3]) && !w[4])))
		return "sxm";
	if (!strcmp(w, "pcie"))
		return "pcie";
	if (!strcmp(w, "nvl"))
		return "nvl";
	return NULL;
}

/* A model word: letters then digits, maybe one letter after (a100, t4, l40s). */
static bool model_word(const char *w)
{
	size_t i = 0, l = 0, d = 0;

	while (isalpha((unsigned char)w[i]) && i < 4)
		i++, l++;
	while (isdigit((unsigned char)w[i]))
		i++, d++;
	if (w[i] && isalpha((unsigned char)w[i]) && !w[i + 1])
		i++;
	return l >= 1 && l <= 3 && d >= 1 && d <= 5 && !w[i] && !mem_word(w);
}

static void add(char *out, size_t *len, const char *s)
{
	while (*s && *len < GPU_TYPE_MAX - 1)
		out[(*len)++] = *s++;
	out[*len] = '\0';
}

const char *gpu_type_from_name(const char *name, char out[GPU_TYPE_MAX])
{
	char w[WORDS_MAX][WORD_MAX];
	size_t n = words_of(name ? name : "", w), len = 0;
	const struct gpu_model *known = NULL;
	int mem = 0;
	const char *form = NULL;
	bool used[WORDS_MAX] = { false };
	char base[WORD_MAX * 3] = "";

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!mem && (mem = mem_word(w[i])))
			used[i] = true;
		else if (!form && (form = form_word(w[i])))
			used[i] = true;
	}
	/* the model: rtx/gtx/titan joined with the next word (rtx3090, rtxa6000),
	 * else the first model word */
	for (size_t i = 0; i < n && !base[0]; i++) {
		if (used[i])
			continue;
		if ((!strcmp(w[i], "rtx") || !strcmp(w[i], "gtx") || !strcmp(w[i], "titan")) &&
		    i + 1 < n && !used[i + 1]) {
			/* no model name is that long: overlong words are no model */
			if (snprintf(base, sizeof(base), "%s%s", w[i], w[i + 1]) >= (int)sizeof(base))
				base[0] = '\0';
			used[i] = used[i + 1] = true;
			/* "ti", "super" belong to the model */
			for (size_t k = i + 2; base[0] && k < n && (!strcmp(w[k], "ti") ||
							 !strcmp(w[k], "super")); k++) {
				strncat(base, w[k], sizeof(base) - strlen(base) - 1);
				used[k] = true;
			}
		} else if (model_word(w[i])) {
			if (snprintf(base, sizeof(base), "%s", w[i]) >= (int)sizeof(base))
				base[0] = '\0';
			used[i] = true;
		}
	}
	for (size_t i = 0; base[0] && i < ARRAY_SIZE(gpu_models); i++)
		if (!strcmp(base, gpu_models[i].word))
			known = &gpu_models[i];
	if (!base[0]) {
		/* unknown shape: every remaining word, joined */
		for (size_t i = 0; i < n; i++) {
			if (used[i])
				continue;
			if (len)
				add(out, &len, "-");
			add(out, &len, w[i]);
		}
		if (!len)
			add(out, &len, "gpu");
	} else {
		add(out, &len, base);
	}
	if (mem && (!known || mem != known->mem_gb)) {
		char m[16];
		snprintf(m, sizeof(m), "-%dg", mem);
		add(out, &len, m);
	}
	if (form && (!known || strcmp(form, known->form))) {
		add(out, &len, "-");
		add(out, &len, form);
	}
	/* other words of a known model name a variant (A100X, "H100 CNX") */
	for (size_t i = 0; base[0] && i < n; i++) {
		if (used[i])
			continue;
		add(out, &len, "-");
		add(out, &len, w[i]);
	}
	while (len && out[len - 1] == '-')
		out[--len] = '\0';
	return out;
}

const char *gpu_type_of(const json_t *gpu, char out[GPU_TYPE_MAX])
{
	const char *model = json_string_value(json_object_get(gpu, "model"));
	const char *dev = json_string_value(json_object_get(gpu, "device_name"));
	char tmp[256];

	if (model && *model)
		return gpu_type_from_name(model, out);
	if (dev && *dev) {
		/* "GA100 [A100 SXM4 40GB]": the marketing name is in brackets */
		const char *lb = strchr(dev, '['), *rb = lb ? strchr(lb, ']') : NULL;
		if (lb && rb && rb > lb + 1) {
			size_t l = (size_t)(rb - lb - 1);
			if (l >= sizeof(tmp))
				l = sizeof(tmp) - 1;
			memcpy(tmp, lb + 1, l);
			tmp[l] = '\0';
			return gpu_type_from_name(tmp, out);
		}
		return gpu_type_from_name(dev, out);
	}
	const char *v = json_string_value(json_object_get(gpu, "vendor_id"));
	const char *d = json_string_value(json_object_get(gpu, "device_id"));
	snprintf(tmp, sizeof(tmp), "gpu %s %s", v ? v : "", d ? d : "");
	/* "gpu 0x10de 0x20b0" -> "gpu-0x10de-0x20b0" (no model word: kept whole) */
	size_t len = 0;
	out[0] = '\0';
	for (char *p = tmp; *p && len < GPU_TYPE_MAX - 1; p++) {
		char c = (char)tolower((unsigned char)*p);
		if (isalnum((unsigned char)c))
			out[len++] = c;
		else if (len && out[len - 1] != '-')
			out[len++] = '-';
	}
	while (len && out[len - 1] == '-')
		len--;
	out[len] = '\0';
	return out;
}
