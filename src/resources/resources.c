/*
 * The resource core: the type table, generic validation of fields, ids,
 * running one resource or a list, result helpers and the constructors that
 * renderers use.
 */
#include "res_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct res_type *const types[] = {
	&res_type_file, &res_type_directory, &res_type_line, &res_type_sysctl,
	&res_type_kmod, &res_type_swap, &res_type_hostname, &res_type_package,
	&res_type_service, &res_type_user, &res_type_group, &res_type_command,
	&res_type_secret, &res_type_wgkey, &res_type_wireguard, &res_type_reach,
	&res_type_reboot,
};

static const struct res_type *type_of(const json_t *r)
{
	const char *t = json_is_object(r) ? res_str(r, "type") : NULL;

	if (!t)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (!strcmp(types[i]->name, t))
			return types[i];
	return NULL;
}

void res_ctx_init(struct res_ctx *ctx, const char *root, bool check_only)
{
	ctx->root = root && *root ? root : "/";
	ctx->check_only = check_only;
	ctx->changed = (struct strv)STRV_INIT;
}

void res_ctx_release(struct res_ctx *ctx)
{
	if (ctx)
		strv_release(&ctx->changed);
}

bool res_is_live(const struct res_ctx *ctx)
{
	return !ctx->root || !*ctx->root || !strcmp(ctx->root, "/");
}

const char *res_status_name(enum res_status s)
{
	switch (s) {
	case RES_OK:
		return "ok";
	case RES_CHANGED:
		return "changed";
	default:
		return "failed";
	}
}

/* ---- field access ---- */

const char *res_str(const json_t *r, const char *key)
{
	return json_string_value(json_object_get(r, key));
}

bool res_bool(const json_t *r, const char *key, bool dflt)
{
	json_t *v = json_object_get(r, key);
	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* Parse an octal mode from "0644"/"644" or an integer (taken as-is). */
static int mode_parse(const json_t *v)
{
	if (json_is_integer(v)) {
		json_int_t m = json_integer_value(v);
		return m >= 0 && m <= 07777 ? (int)m : -1;
	}
	const char *s = json_string_value(v);
	if (!s || !*s || strlen(s) > 5)
		return -1;
	int m = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return -1;
		m = m * 8 + (*s - '0');
	}
	return m <= 07777 ? m : -1;
}

int res_mode(const json_t *r, const char *key)
{
	json_t *v = json_object_get(r, key);
	return v ? mode_parse(v) : -1;
}

/* ---- ids ---- */

char *resource_id(const json_t *r)
{
	const struct res_type *t = type_of(r);
	const char *tname = json_is_object(r) ? res_str(r, "type") : NULL;

	if (!t)
		return xasprintf("invalid:%s", tname ? tname : "?");
	/* A reach check names no single thing: say how many it pings. */
	if (t == &res_type_reach)
		return xasprintf("reach:%zu targets",
				 json_array_size(json_object_get(r, "targets")));
	json_t *v = json_object_get(r, t->id_field);
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "%s:", t->name);
	if (json_is_string(v)) {
		buf_adds(&b, json_string_value(v));
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			if (i)
				buf_addch(&b, ',');
			buf_adds(&b, json_is_string(x) ? json_string_value(x) : "?");
		}
	} else {
		buf_addch(&b, '?');
	}
	/* Several line resources may edit one file: name the line too. */
	if (t == &res_type_line) {
		const char *sel = res_str(r, "regexp");
		if (!sel)
			sel = res_str(r, "line");
		buf_printf(&b, ":%s", sel ? sel : "?");
	}
	return buf_detach(&b, NULL);
}

/* ---- validation ---- */

static bool has_newline(const char *s)
{
	return strchr(s, '\n') != NULL || strchr(s, '\r') != NULL;
}

static const char *kind_wants(const struct field *f)
{
	switch (f->kind) {
	case F_STR:
		return "a non-empty one-line string";
	case F_TEXT:
		return "a string";
	case F_PATH:
		return "an absolute path";
	case F_MODE:
		return "an octal mode string like \"0644\"";
	case F_BOOL:
		return "true or false";
	case F_STRV:
		return "an array of non-empty one-line strings";
	case F_MAP:
		return "an object of string or integer values";
	case F_INT:
		return "an integer";
	case F_ANY:
		return "a value";
	default:
		return "one of the allowed values";
	}
}

static bool str_ok(const json_t *v)
{
	const char *s = json_string_value(v);
	return s && *s && !has_newline(s) && strlen(s) == json_string_length(v);
}

static bool enum_ok(const char *vals, const char *s)
{
	size_t n = strlen(s);
	for (const char *p = vals; *p;) {
		size_t m = strcspn(p, "|");
		if (m == n && !strncmp(p, s, n))
			return true;
		p += m;
		if (*p)
			p++;
	}
	return false;
}

static bool field_ok(const struct field *f, const json_t *v)
{
	switch (f->kind) {
	case F_STR:
		return str_ok(v);
	case F_TEXT:
		return json_is_string(v);
	case F_PATH: {
		const char *s = json_string_value(v);
		return str_ok(v) && s[0] == '/' && !strstr(s, "/../") &&
		       !str_ends(s, "/..");
	}
	case F_MODE:
		return mode_parse(v) >= 0;
	case F_BOOL:
		return json_is_boolean(v);
	case F_STRV: {
		size_t i;
		json_t *x;
		if (!json_is_array(v))
			return false;
		json_array_foreach(v, i, x)
			if (!str_ok(x))
				return false;
		return true;
	}
	case F_MAP: {
		const char *k;
		json_t *x;
		if (!json_is_object(v))
			return false;
		json_object_foreach((json_t *)v, k, x) {
			if (json_is_string(x) ? has_newline(json_string_value(x))
					      : !json_is_integer(x))
				return false;
		}
		return true;
	}
	case F_ENUM:
		return json_is_string(v) && enum_ok(f->enum_vals, json_string_value(v));
	case F_INT:
		return json_is_integer(v);
	case F_ANY:
		return true;   /* the type's validate() checks it */
	}
	return false;
}

int resource_validate(const json_t *r, struct kerr *e)
{
	const struct res_type *t;
	const char *key;
	json_t *v;
	char *id;
	int ret = 0;

	if (!json_is_object(r))
		return kerr_set(e, -EINVAL, "resource: expected a JSON object");
	if (!res_str(r, "type"))
		return kerr_set(e, -EINVAL, "resource: field 'type': missing");
	if (!(t = type_of(r)))
		return kerr_set(e, -EINVAL, "resource: field 'type': unknown type '%s'",
				res_str(r, "type"));
	id = resource_id(r);
	json_object_foreach((json_t *)r, key, v) {
		const struct field *f = t->fields;
		if (!strcmp(key, "type"))
			continue;
		while (f->name && strcmp(f->name, key))
			f++;
		if (!f->name) {
			ret = kerr_set(e, -EINVAL, "resource '%s': unknown field '%s'", id, key);
			goto out;
		}
		if (!field_ok(f, v)) {
			ret = kerr_set(e, -EINVAL, "resource '%s': field '%s': expected %s%s%s",
				       id, key, kind_wants(f), f->enum_vals ? ": " : "",
				       f->enum_vals ? f->enum_vals : "");
			goto out;
		}
	}
	for (const struct field *f = t->fields; f->name; f++) {
		if (f->required && !json_object_get(r, f->name)) {
			ret = kerr_set(e, -EINVAL, "resource '%s': field '%s': missing", id,
				       f->name);
			goto out;
		}
	}
	if (t->validate)
		ret = t->validate(r, id, e);
out:
	free(id);
	return ret;
}

/* ---- results ---- */

static void vnote(char **msg, const char *fmt, va_list ap)
{
	struct buf b;

	buf_init(&b, 0);
	if (*msg) {
		buf_adds(&b, *msg);
		buf_adds(&b, "; ");
		free(*msg);
	}
	buf_vprintf(&b, fmt, ap);
	*msg = buf_detach(&b, NULL);
}

void res_note(struct res_result *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vnote(&out->message, fmt, ap);
	va_end(ap);
}

void res_fail(struct res_result *out, const char *fmt, ...)
{
	va_list ap;

	out->status = RES_FAILED;
	va_start(ap, fmt);
	vnote(&out->message, fmt, ap);
	va_end(ap);
}

void res_export(struct res_result *out, const char *name, const char *value)
{
	if (!out->exports)
		out->exports = json_object();
	json_object_set_new(out->exports, name, json_string(value));
}

void res_add_diff(struct res_result *out, const struct buf *diff)
{
	if (!diff->len)
		return;
	if (!out->diff) {
		out->diff = xstrdup(diff->s);
		return;
	}
	char *d = xasprintf("%s%s", out->diff, diff->s);
	free(out->diff);
	out->diff = d;
}

void res_result_release(struct res_result *r)
{
	if (!r)
		return;
	free(r->diff);
	free(r->message);
	json_decref(r->exports);
	r->diff = r->message = NULL;
	r->exports = NULL;
}

/* ---- running ---- */

void resource_run(struct res_ctx *ctx, const json_t *r, struct res_result *out)
{
	struct kerr e = { 0 };

	*out = (struct res_result){ .status = RES_OK };
	if (resource_validate(r, &e) < 0) {
		res_fail(out, "%s", e.msg);
		return;
	}
	type_of(r)->run(ctx, r, out);
	if (out->status == RES_CHANGED)
		strv_take(&ctx->changed, resource_id(r));
}

void resource_run_list(struct res_ctx *ctx, const json_t *list,
		       res_emit_fn *emit, void *arg, size_t counts[3])
{
	size_t i;
	json_t *r;

	if (counts)
		counts[RES_OK] = counts[RES_CHANGED] = counts[RES_FAILED] = 0;
	json_array_foreach(list, i, r) {
		struct res_result res;
		char *id = resource_id(r);
		resource_run(ctx, r, &res);
		if (counts)
			counts[res.status]++;
		int stop = emit ? emit(arg, i, id, &res) : 0;
		res_result_release(&res);
		free(id);
		if (stop)
			break;
	}
}

/* ---- constructors ---- */

static json_t *strv_json(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *mode_json(unsigned mode)
{
	char s[8];
	snprintf(s, sizeof(s), "%04o", mode & 07777);
	return json_string(s);
}

static json_t *res_new(const char *type)
{
	json_t *r = json_object();
	json_object_set_new(r, "type", json_string(type));
	return r;
}

static void set_owner(json_t *r, const char *owner, const char *group)
{
	if (owner)
		json_object_set_new(r, "owner", json_string(owner));
	if (group)
		json_object_set_new(r, "group", json_string(group));
}

json_t *res_file(const char *path, const char *content, unsigned mode,
		 const char *owner, const char *group)
{
	json_t *r = res_new("file");
	json_object_set_new(r, "path", json_string(path));
	json_object_set_new(r, "content", json_string(content));
	json_object_set_new(r, "mode", mode_json(mode));
	set_owner(r, owner, group);
	return r;
}

json_t *res_directory(const char *path, unsigned mode, const char *owner,
		      const char *group)
{
	json_t *r = res_new("directory");
	json_object_set_new(r, "path", json_string(path));
	json_object_set_new(r, "mode", mode_json(mode));
	set_owner(r, owner, group);
	return r;
}

json_t *res_line(const char *path, const char *line, const char *regexp, bool present)
{
	json_t *r = res_new("line");
	json_object_set_new(r, "path", json_string(path));
	json_object_set_new(r, "line", json_string(line));
	if (regexp)
		json_object_set_new(r, "regexp", json_string(regexp));
	json_object_set_new(r, "state", json_string(present ? "present" : "absent"));
	return r;
}

json_t *res_sysctl(const char *file, const char *const *keys,
		   const char *const *values, size_t n)
{
	json_t *r = res_new("sysctl"), *vals = json_object();
	json_object_set_new(r, "file", json_string(file));
	for (size_t i = 0; i < n; i++)
		json_object_set_new(vals, keys[i], json_string(values[i]));
	json_object_set_new(r, "values", vals);
	return r;
}

json_t *res_kmod(const char *file, const char *const *modules, size_t n)
{
	json_t *r = res_new("kmod");
	json_object_set_new(r, "file", json_string(file));
	json_object_set_new(r, "modules", strv_json(modules, n));
	return r;
}

json_t *res_swap_off(void)
{
	json_t *r = res_new("swap");
	json_object_set_new(r, "state", json_string("off"));
	return r;
}

json_t *res_hostname(const char *name)
{
	json_t *r = res_new("hostname");
	json_object_set_new(r, "name", json_string(name));
	return r;
}

json_t *res_package(const char *const *names, size_t n, bool present)
{
	json_t *r = res_new("package");
	json_object_set_new(r, "names", strv_json(names, n));
	json_object_set_new(r, "state", json_string(present ? "present" : "absent"));
	return r;
}

json_t *res_service(const char *name, bool enabled, bool running,
		    const char *const *watch, size_t nwatch)
{
	json_t *r = res_new("service");
	json_object_set_new(r, "name", json_string(name));
	json_object_set_new(r, "enabled", json_boolean(enabled));
	json_object_set_new(r, "state", json_string(running ? "running" : "stopped"));
	if (nwatch)
		json_object_set_new(r, "watch", strv_json(watch, nwatch));
	return r;
}

json_t *res_reboot(const char *name, const char *module, const char *version)
{
	json_t *r = res_new("reboot");
	json_object_set_new(r, "name", json_string(name));
	json_object_set_new(r, "when", json_string(module ? "module" : "required"));
	if (module)
		json_object_set_new(r, "module", json_string(module));
	if (module && version)
		json_object_set_new(r, "version", json_string(version));
	return r;
}

json_t *res_user(const char *name, const char *shell, const char *const *groups,
		 size_t ngroups, const char *const *keys, size_t nkeys)
{
	json_t *r = res_new("user");
	json_object_set_new(r, "name", json_string(name));
	if (shell)
		json_object_set_new(r, "shell", json_string(shell));
	json_object_set_new(r, "groups", strv_json(groups, ngroups));
	json_object_set_new(r, "authorized_keys", strv_json(keys, nkeys));
	return r;
}

json_t *res_group(const char *name)
{
	json_t *r = res_new("group");
	json_object_set_new(r, "name", json_string(name));
	return r;
}

json_t *res_command(const char *command, const char *creates, const char *unless)
{
	json_t *r = res_new("command");
	json_object_set_new(r, "command", json_string(command));
	if (creates)
		json_object_set_new(r, "creates", json_string(creates));
	if (unless)
		json_object_set_new(r, "unless", json_string(unless));
	return r;
}

json_t *res_file_secret(const char *path, const char *content, unsigned mode,
			const char *owner, const char *group)
{
	json_t *r = res_file(path, content, mode, owner, group);
	json_object_set_new(r, "secret", json_true());
	return r;
}

/* The generate form of a secret: kind NULL = hex (the default). */
static json_t *secret_generated(const char *path, const char *kind, const char *export_name,
				unsigned mode, const char *owner, const char *group)
{
	json_t *r = res_new("secret");
	json_object_set_new(r, "path", json_string(path));
	if (kind)
		json_object_set_new(r, "generate", json_string(kind));
	json_object_set_new(r, "export", json_string(export_name));
	json_object_set_new(r, "mode", mode_json(mode));
	set_owner(r, owner, group);
	return r;
}

json_t *res_secret(const char *path, const char *export_name, int bytes, unsigned mode,
		   const char *owner, const char *group)
{
	json_t *r = secret_generated(path, NULL, export_name, mode, owner, group);
	json_object_set_new(r, "bytes", json_integer(bytes));
	return r;
}

json_t *res_wgkey(const char *path, bool rotate)
{
	json_t *r = res_new("wgkey");
	json_object_set_new(r, "path", json_string(path));
	json_object_set_new(r, "rotate", json_boolean(rotate));
	return r;
}

json_t *res_secret_generate(const char *path, const char *kind, const char *export_name,
			    const char *owner, const char *group)
{
	return secret_generated(path, kind, export_name, 0600, owner, group);
}

json_t *res_wireguard(const char *iface, const char *private_key_file,
		      int listen_port, const char *address, int mtu,
		      const char *config_file, const char *const *routes,
		      size_t nroutes)
{
	json_t *r = res_new("wireguard");
	json_object_set_new(r, "interface", json_string(iface));
	json_object_set_new(r, "private_key_file", json_string(private_key_file));
	if (listen_port > 0)
		json_object_set_new(r, "listen_port", json_integer(listen_port));
	if (address)
		json_object_set_new(r, "address", json_string(address));
	json_object_set_new(r, "mtu", mtu > 0 ? json_integer(mtu) : json_string("auto"));
	if (config_file)
		json_object_set_new(r, "config_file", json_string(config_file));
	json_object_set_new(r, "peers", json_array());
	json_object_set_new(r, "routes", strv_json(routes, nroutes));
	return r;
}

void res_wireguard_add_peer(json_t *wg, const char *public_key, const char *endpoint,
			    const char *const *allowed_ips, size_t n, int keepalive)
{
	json_t *p = json_object();
	json_object_set_new(p, "public_key", json_string(public_key));
	if (endpoint)
		json_object_set_new(p, "endpoint", json_string(endpoint));
	json_object_set_new(p, "allowed_ips", strv_json(allowed_ips, n));
	if (keepalive > 0)
		json_object_set_new(p, "keepalive", json_integer(keepalive));
	json_array_append_new(json_object_get(wg, "peers"), p);
}

json_t *res_reach(const char *const *names, const char *const *addresses, size_t n,
		  int timeout_ms)
{
	json_t *r = res_new("reach"), *t = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(t, json_pack("{s:s,s:s}", "name", names[i],
						   "address", addresses[i]));
	json_object_set_new(r, "targets", t);
	json_object_set_new(r, "timeout_ms", json_integer(timeout_ms));
	return r;
}
