/*
 * kiln-bmc-test: drive the bmc library from scripts (tests/lab/0200-ipmi.sh,
 * 0201-redfish.sh) against real or simulated BMCs.
 *
 *   kiln-bmc-test [OPTIONS] TYPE ADDRESS USER PASSWORD status
 *   kiln-bmc-test [OPTIONS] TYPE ADDRESS USER PASSWORD power on|off|cycle|reset|soft
 *   kiln-bmc-test [OPTIONS] TYPE ADDRESS USER PASSWORD bootdev DEV [once]
 *   kiln-bmc-test [OPTIONS] bulk OP [ARG] [once] -- TYPE,ADDRESS,USER,PASSWORD ...
 *
 * PASSWORD "@FILE" reads a password file, "env:NAME" a variable.
 * OPTIONS: -t TIMEOUT_MS  -r RETRIES  -p PORT  -k (insecure TLS)
 *          -c CA_FILE  -s CIPHER_SUITE  -j MAX_PARALLEL  -l admin|operator|user
 *          -m legacy|uefi (boot mode)
 * Output: "on"/"off"/"unknown" for status, "ok" for changes; bulk prints
 * "INDEX RC POWER ELAPSED_MS MESSAGE" per BMC.  Errors go to stderr as
 * "error: MESSAGE" with exit status 1, or 3 when the outcome is unknown
 * (-EINPROGRESS: a once-only request sent, no reply); usage errors exit 2.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmc/bmc.h"

static struct bmc_target arg_template;
static int arg_parallel;

static void usage(void)
{
	fputs("usage: kiln-bmc-test [-t MS] [-r N] [-p PORT] [-k] [-c CA] [-s CS] "
	      "[-j N] [-l PRIV] [-m legacy|uefi]\n"
	      "         TYPE ADDRESS USER PASSWORD status|power ACTION|bootdev DEV [once]\n"
	      "       kiln-bmc-test [OPTIONS] bulk OP [ARG] [once] -- "
	      "TYPE,ADDRESS,USER,PASSWORD ...\n", stderr);
	exit(2);
}

static int num_arg(const char *s, int64_t min, int64_t max)
{
	int64_t v;
	if (parse_i64(s, min, max, &v) < 0) {
		fprintf(stderr, "bad number '%s'\n", s);
		usage();
	}
	return (int)v;
}

/* Fill c from the template and the four positional fields. */
static int conf_from(struct bmc_target *c, const char *type, const char *addr,
		     const char *user, const char *pass, struct kerr *e)
{
	*c = arg_template;
	c->address = xstrdup(addr);
	c->user = xstrdup(user);
	c->password = NULL;
	c->ca_file = arg_template.ca_file ? xstrdup(arg_template.ca_file) : NULL;
	if (bmc_proto_parse(type, &c->proto) < 0)
		return kerr_set(e, -EINVAL, "unknown BMC type '%s'", type);
	if (pass[0] == '@')
		return bmc_secret_load(pass + 1, NULL, &c->password, e);
	if (str_starts(pass, "env:"))
		return bmc_secret_load(NULL, pass + 4, &c->password, e);
	c->password = xstrdup(pass);
	return 0;
}

/* Parse "OP [ARG] [once]" from argv[*i...] into op. */
static void op_from(char **argv, int argc, int *i, struct bmc_op *op)
{
	if (*i >= argc)
		usage();
	const char *o = argv[(*i)++];
	memset(op, 0, sizeof(*op));
	if (strcmp(o, "status") == 0) {
		op->kind = BMC_OP_POWER_GET;
	} else if (strcmp(o, "power") == 0 && *i < argc) {
		op->kind = BMC_OP_POWER_SET;
		op->arg = argv[(*i)++];
	} else if (strcmp(o, "bootdev") == 0 && *i < argc) {
		op->kind = BMC_OP_BOOTDEV_SET;
		op->arg = argv[(*i)++];
		if (*i < argc && strcmp(argv[*i], "once") == 0) {
			op->once = true;
			(*i)++;
		}
	} else {
		usage();
	}
}

static int run_single(int argc, char **argv, int i)
{
	struct kerr e = { 0 };
	struct bmc_target c;
	struct bmc_op op;
	enum bmc_power p;
	int r;

	if (argc - i < 5)
		usage();
	if (conf_from(&c, argv[i], argv[i + 1], argv[i + 2], argv[i + 3], &e) < 0)
		goto fail;
	i += 4;
	op_from(argv, argc, &i, &op);
	if (i != argc)
		usage();
	switch (op.kind) {
	case BMC_OP_POWER_GET:
		r = bmc_power_get(&c, &p, &e);
		if (r == 0)
			printf("%s\n", bmc_power_name(p));
		break;
	case BMC_OP_POWER_SET:
		r = bmc_power_set(&c, op.arg, &e);
		break;
	default:
		r = bmc_bootdev_set(&c, op.arg, op.once, &e);
		break;
	}
	if (r < 0)
		goto fail;
	if (op.kind != BMC_OP_POWER_GET)
		printf("ok\n");
	bmc_target_release(&c);
	return 0;
fail:
	fprintf(stderr, "error: %s\n", e.msg);
	bmc_target_release(&c);
	return e.code == -EINPROGRESS ? 3 : 1;
}

static int run_bulk(int argc, char **argv, int i)
{
	struct bmc_op op;
	struct kerr e = { 0 };
	size_t n = 0;
	int r, status = 0;

	op_from(argv, argc, &i, &op);
	if (i >= argc || strcmp(argv[i], "--") != 0)
		usage();
	i++;
	struct bmc_target *confs = xcalloc((size_t)(argc - i) + 1, sizeof(*confs));
	const struct bmc_target **ptrs = xcalloc((size_t)(argc - i) + 1, sizeof(*ptrs));
	struct bmc_result *res = xcalloc((size_t)(argc - i) + 1, sizeof(*res));
	for (; i < argc; i++, n++) {
		char *f = xstrdup(argv[i]), *save = NULL;
		char *t = strtok_r(f, ",", &save), *a = strtok_r(NULL, ",", &save);
		char *u = strtok_r(NULL, ",", &save), *p = strtok_r(NULL, "", &save);
		if (!t || !a || !u || !p)
			usage();
		if (conf_from(&confs[n], t, a, u, p, &e) < 0) {
			fprintf(stderr, "error: %s\n", e.msg);
			free(f);
			return 1;
		}
		ptrs[n] = &confs[n];
		free(f);
	}
	r = bmc_bulk(ptrs, n, &op, arg_parallel, res);
	for (size_t k = 0; k < n; k++)
		printf("%zu %d %s %lld %s\n", k, res[k].rc,
		       bmc_power_name(res[k].power), (long long)res[k].elapsed_ms,
		       res[k].rc ? res[k].err.msg : "ok");
	if (r < 0)
		status = 1;
	for (size_t k = 0; k < n; k++)
		bmc_target_release(&confs[k]);
	free(confs);
	free(ptrs);
	free(res);
	return status;
}

int main(int argc, char **argv)
{
	int ch;

	bmc_target_init(&arg_template);
	while ((ch = getopt(argc, argv, "+t:r:p:kc:s:j:l:m:")) != -1) {
		switch (ch) {
		case 't':
			arg_template.timeout_ms = num_arg(optarg, 1, 600000);
			break;
		case 'r':
			arg_template.retries = num_arg(optarg, 0, 100);
			break;
		case 'p':
			arg_template.port = num_arg(optarg, 1, 65535);
			break;
		case 'k':
			arg_template.insecure_tls = true;
			break;
		case 'c':
			arg_template.ca_file = optarg;
			break;
		case 's':
			arg_template.cipher_suite = num_arg(optarg, 0, 255);
			break;
		case 'j':
			arg_parallel = num_arg(optarg, 1, 4096);
			break;
		case 'l':
			if (strcmp(optarg, "admin") == 0)
				arg_template.priv = BMC_PRIV_ADMIN;
			else if (strcmp(optarg, "operator") == 0)
				arg_template.priv = BMC_PRIV_OPERATOR;
			else if (strcmp(optarg, "user") == 0)
				arg_template.priv = BMC_PRIV_USER;
			else
				usage();
			break;
		case 'm':
			if (strcmp(optarg, "uefi") == 0)
				arg_template.boot_mode = BMC_BOOT_MODE_UEFI;
			else if (strcmp(optarg, "legacy") == 0)
				arg_template.boot_mode = BMC_BOOT_MODE_LEGACY;
			else
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind < argc && strcmp(argv[optind], "bulk") == 0)
		return run_bulk(argc, argv, optind + 1);
	return run_single(argc, argv, optind);
}
