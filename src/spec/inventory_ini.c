/*
 * Ansible INI inventories into the small inventory (inventory_int.h):
 * [group], [group:vars], [group:children] sections, host lines with
 * key=value variables and ranges, values typed as Ansible reads them.
 */
#include "inventory_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * An INI value as Ansible's literal_eval would read it: integers, floats,
 * True/False, None, a quoted string; anything else is the text itself.
 */
static json_t *ini_value(const char *s)
{
	int64_t i;
	size_t n = strlen(s);

	if (parse_i64(s, INT64_MIN, INT64_MAX, &i) == 0 && !(s[0] == '0' && s[1]) &&
	    !(s[0] == '+'))
		return json_integer(i);
	if (!strcmp(s, "True") || !strcmp(s, "true"))
		return json_true();
	if (!strcmp(s, "False") || !strcmp(s, "false"))
		return json_false();
	if (!strcmp(s, "None"))
		return json_null();
	if (n >= 2 && (s[0] == '\'' || s[0] == '"') && s[n - 1] == s[0])
		return json_stringn(s + 1, n - 2);
	char *end;
	if (strpbrk(s, ".eE") && s[0] != '.' && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))) {
		double d = strtod(s, &end);
		if (!*end && d == d && d - d == 0)
			return json_real(d);
	}
	return json_string(s);
}

/* json_string may refuse bad UTF-8; keep such bytes visible but valid. */
static json_t *ini_value_checked(struct inv *iv, const char *s, int line, int col)
{
	json_t *v = ini_value(s);
	if (!v)
		err_at(iv->e, iv->file, line, col, "invalid UTF-8 in value");
	return v;
}

enum sect { S_HOSTS, S_VARS, S_CHILDREN };

/* "[name]", "[name:vars]", "[name:children]": the section that follows. */
static int ini_section(struct inv *iv, char *line, int lineno, int indent,
		       struct igroup **cur, enum sect *kind)
{
	char *rb = strchr(line, ']');
	char tmp[80];
	int r;

	if (!rb)
		return err_at(iv->e, iv->file, lineno, indent + (int)strlen(line) + 1,
			      "expected ']' to close the section header");
	char *after = rb + 1;
	while (*after == ' ' || *after == '\t')
		after++;
	if (*after && *after != '#' && *after != ';')
		return err_at(iv->e, iv->file, lineno, indent + (int)(after - line) + 1,
			      "unexpected text after the section header");
	*rb = '\0';
	char *name = line + 1, *type = strchr(name, ':');
	if (type)
		*type++ = '\0';
	*kind = S_HOSTS;
	if (type) {
		if (!strcmp(type, "vars"))
			*kind = S_VARS;
		else if (!strcmp(type, "children"))
			*kind = S_CHILDREN;
		else if (strcmp(type, "hosts")) {
			str_sanitize(tmp, sizeof(tmp), type, strlen(type));
			return err_at(iv->e, iv->file, lineno, indent + (int)(type - line) + 1,
				      "unknown section type '%s' (expected vars, children "
				      "or hosts)", tmp);
		}
	}
	if ((r = inv_group_get(iv, name, lineno, indent + 2, cur)) < 0)
		return r;
	return 0;
}

/*
 * "PATTERN [key=value ...]" in a hosts section: every host the pattern
 * names joins g (NULL: ungrouped) and takes the values.
 */
static int ini_host_line(struct inv *iv, const char *line, int lineno, int indent,
			 struct igroup *g)
{
	struct toks t = { 0 };
	struct strv names = STRV_INIT;
	size_t bad = 0;
	char tmp[80];
	int r;

	if (inv_shell_split(line, &t, &bad) < 0)
		return err_at(iv->e, iv->file, lineno, indent + (int)bad + 1,
			      "unterminated quote");
	/* "host:port": exactly one ':' outside range brackets (not IPv6) */
	char *pat = t.v[0].s, *colon = NULL;
	int depth = 0, ncolons = 0;
	for (char *p = pat; *p; p++) {
		if (*p == '[')
			depth++;
		else if (*p == ']' && depth > 0)
			depth--;
		else if (*p == ':' && depth == 0) {
			colon = p;
			ncolons++;
		}
	}
	uint64_t port = 0;
	if (colon && ncolons == 1) {
		if (parse_u64(colon + 1, 1, 65535, &port) < 0) {
			r = err_at(iv->e, iv->file, lineno, indent + t.v[0].col + (int)(colon - pat),
				   "port after ':' must be an integer in 1..65535");
			goto out;
		}
		*colon = '\0';
	}
	if ((r = inv_hosts_from_pattern(iv, pat, lineno, indent + t.v[0].col, &names)) < 0)
		goto out;
	for (size_t k = 1; k < t.n; k++) {
		const char *eq = strchr(t.v[k].s, '=');
		if (!eq || eq == t.v[k].s) {
			str_sanitize(tmp, sizeof(tmp), t.v[k].s, strlen(t.v[k].s));
			r = err_at(iv->e, iv->file, lineno, indent + t.v[k].col,
				   "expected key=value after the host name, found '%s'", tmp);
			goto out;
		}
		char *key = xstrndup(t.v[k].s, (size_t)(eq - t.v[k].s));
		if (!inv_valid_var_name(key)) {
			str_sanitize(tmp, sizeof(tmp), key, strlen(key));
			r = err_at(iv->e, iv->file, lineno, indent + t.v[k].col,
				   "invalid variable name '%s'", tmp);
			free(key);
			goto out;
		}
		free(key);
	}
	for (size_t i = 0; i < names.n; i++) {
		struct ihost *h;
		if ((r = inv_host_get(iv, names.v[i], lineno, indent + t.v[0].col, &h)) < 0)
			goto out;
		if (g)
			strv_push_unique(&h->groups, g->name);
		if (port)
			inv_vars_set(&h->vars, "ansible_port", json_integer((json_int_t)port),
				  iv->file, lineno, indent + t.v[0].col);
		for (size_t k = 1; k < t.n; k++) {
			const char *eq = strchr(t.v[k].s, '=');
			char *key = xstrndup(t.v[k].s, (size_t)(eq - t.v[k].s));
			json_t *v = ini_value_checked(iv, eq + 1, lineno, indent + t.v[k].col);
			if (v)
				inv_vars_set(&h->vars, key, v, iv->file, lineno,
					  indent + t.v[k].col + (int)(eq - t.v[k].s) + 1);
			free(key);
			if (!v) {
				r = -EINVAL;
				goto out;
			}
		}
	}
out:
	inv_toks_release(&t);
	strv_release(&names);
	return r;
}

/* "key = value" in [g:vars]; the value is read as ini_value() says. */
static int ini_vars_line(struct inv *iv, char *line, int lineno, int indent, struct igroup *g)
{
	char *eq = strchr(line, '=');
	char tmp[80];

	if (!eq || eq == line)
		return err_at(iv->e, iv->file, lineno, indent + 1,
			      "expected key=value in [%s:vars]", g->name);
	*eq = '\0';
	char *key = str_trim(line), *val = str_trim(eq + 1);
	if (!inv_valid_var_name(key)) {
		str_sanitize(tmp, sizeof(tmp), key, strlen(key));
		return err_at(iv->e, iv->file, lineno, indent + 1,
			      "invalid variable name '%s'", tmp);
	}
	int vcol = indent + (int)(val - line) + 1;
	json_t *v = ini_value_checked(iv, val, lineno, vcol);
	if (!v)
		return -EINVAL;
	inv_vars_set(&g->vars, key, v, iv->file, lineno, vcol);
	return 0;
}

/* One child group name in [g:children]; the child is created if new. */
static int ini_children_line(struct inv *iv, const char *line, int lineno, int indent,
			     struct igroup *g)
{
	struct toks t = { 0 };
	size_t bad = 0, gi = (size_t)(g - iv->groups);
	struct igroup *child;
	int r;

	if (inv_shell_split(line, &t, &bad) < 0)
		return err_at(iv->e, iv->file, lineno, indent + (int)bad + 1,
			      "unterminated quote");
	if (t.n > 1) {
		r = err_at(iv->e, iv->file, lineno, indent + t.v[1].col,
			   "expected one group name per line in [%s:children]", g->name);
		goto out;
	}
	if ((r = inv_group_get(iv, t.v[0].s, lineno, indent + t.v[0].col, &child)) < 0)
		goto out;
	/* group_get may have moved the array */
	strv_push_unique(&iv->groups[gi].children, t.v[0].s);
out:
	inv_toks_release(&t);
	return r;
}

/* An INI inventory, line by line; columns are 1-based bytes. */
int inv_ini_parse(struct inv *iv, const char *text, size_t len)
{
	struct igroup *cur = NULL;   /* NULL: before any section (ungrouped) */
	size_t cur_idx = 0;
	enum sect kind = S_HOSTS;
	int r = 0, lineno = 0;

	for (size_t off = 0; off < len && r == 0;) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		char *line = xstrndup(text + off, n);
		off += n + 1;
		lineno++;
		if (strlen(line) != n) {
			r = err_at(iv->e, iv->file, lineno, (int)strlen(line) + 1,
				   "NUL byte in inventory");
			free(line);
			break;
		}
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		int indent = 0;
		while (line[indent] == ' ' || line[indent] == '\t')
			indent++;
		char *s = line + indent;
		if (!*s || *s == '#' || *s == ';') {
			free(line);
			continue;
		}
		if (cur)
			cur = &iv->groups[cur_idx];
		if (*s == '[') {
			r = ini_section(iv, s, lineno, indent, &cur, &kind);
			if (r == 0)
				cur_idx = (size_t)(cur - iv->groups);
		} else if (kind == S_VARS) {
			r = ini_vars_line(iv, s, lineno, indent, cur);
		} else if (kind == S_CHILDREN) {
			r = ini_children_line(iv, s, lineno, indent, cur);
		} else {
			r = ini_host_line(iv, s, lineno, indent, cur);
		}
		free(line);
	}
	return r;
}
