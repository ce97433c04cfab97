/*
 * bmc Redfish back end: HTTPS + JSON through libcurl and jansson.
 *
 * The first member of /redfish/v1/Systems is the machine.  Power state is
 * its PowerState; power actions POST ComputerSystem.Reset; the boot
 * override PATCHes its Boot object (with If-Match when the BMC sent an
 * ETag).  Basic authentication on every request, no sessions: a handful of
 * requests per operation does not pay for session setup and teardown.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bmc/bmc_int.h"

/* A BMC answer bigger than this is not a Redfish resource we want. */
#define RF_BODY_CAP (1024 * 1024)

void redfish_global_init(void)
{
	/* Not thread-safe in libcurl 7.x: bmc.c calls this once, early. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

char *redfish_base_url(const struct bmc_target *c)
{
	const char *a = c->address, *scheme = "https", *rest;
	bool bare_v6 = false, has_port = false;
	size_t hostlen, colons = 0;
	struct buf b;

	if (str_starts(a, "https://")) {
		rest = a + 8;
	} else if (str_starts(a, "http://")) {
		scheme = "http";
		rest = a + 7;
	} else {
		rest = a;
	}
	/* Only scheme://host[:port] counts; a path given with it is dropped. */
	hostlen = strcspn(rest, "/?#");
	if (rest[0] == '[') {
		const char *close = memchr(rest, ']', hostlen);
		has_port = close && (size_t)(close - rest) + 1 < hostlen &&
			   close[1] == ':';
	} else {
		for (size_t i = 0; i < hostlen; i++)
			colons += rest[i] == ':';
		bare_v6 = colons >= 2;
		has_port = colons == 1;
	}
	buf_init(&b, 0);
	buf_printf(&b, "%s://%s", scheme, bare_v6 ? "[" : "");
	buf_add(&b, rest, hostlen);
	if (bare_v6)
		buf_addch(&b, ']');
	if (c->port > 0 && !has_port)
		buf_printf(&b, ":%d", c->port);
	return buf_detach(&b, NULL);
}

/* One Redfish conversation (one attempt): a curl handle and the last reply. */
struct rf {
	struct bmc_attempt *a;
	const struct bmc_target *c;
	CURL *h;
	char *base;
	struct buf body;
	long status;
	char etag[256];
	char curl_err[CURL_ERROR_SIZE];
};

static size_t rf_on_body(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	/* Returning less than given makes curl stop with CURLE_WRITE_ERROR. */
	if (buf_add(b, p, size * n) < 0)
		return 0;
	return size * n;
}

/* Keep the ETag header, for If-Match on the PATCH that follows. */
static size_t rf_on_header(char *p, size_t size, size_t n, void *arg)
{
	struct rf *rf = arg;
	size_t len = size * n;

	if (len > 5 && strncasecmp(p, "ETag:", 5) == 0) {
		const char *v = p + 5;
		size_t vl = len - 5;
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' ||
			      v[vl - 1] == ' '))
			vl--;
		if (vl < sizeof(rf->etag))
			str_sanitize(rf->etag, sizeof(rf->etag), v, vl);
	}
	return len;
}

/* Start a conversation; rf_close() undoes it even if this fails. */
static int rf_open(struct rf *rf, struct bmc_attempt *a, struct kerr *e)
{
	const struct bmc_target *c = a->conf;

	memset(rf, 0, sizeof(*rf));
	rf->a = a;
	rf->c = c;
	buf_init(&rf->body, RF_BODY_CAP);
	rf->base = redfish_base_url(c);
	if (!(rf->h = curl_easy_init()))
		return kerr_set(e, -ENOMEM, "Redfish: cannot create a curl handle");
	return 0;
}

static void rf_close(struct rf *rf)
{
	if (rf->h)
		curl_easy_cleanup(rf->h);
	buf_release(&rf->body);
	free(rf->base);
}

/* Turn a libcurl failure into -errno and a message. */
static int rf_curl_fail(struct rf *rf, CURLcode cc, struct kerr *e)
{
	const char *detail = rf->curl_err[0] ? rf->curl_err : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return kerr_set(e, -ETIMEDOUT, "Redfish: no answer within %d ms",
				rf->a->timeout_ms);
	case CURLE_COULDNT_CONNECT:
		return kerr_set(e, -ECONNREFUSED, "Redfish: cannot connect: %s",
				detail);
	case CURLE_COULDNT_RESOLVE_HOST:
		return kerr_set(e, -EHOSTUNREACH, "Redfish: cannot resolve host: %s",
				detail);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return kerr_set(e, -EKEYREJECTED,
				"Redfish: TLS certificate not trusted (%s); give a "
				"CA file or allow insecure TLS for this BMC", detail);
	case CURLE_SSL_CONNECT_ERROR:
		return kerr_set(e, -EPROTO, "Redfish: TLS handshake failed: %s",
				detail);
	case CURLE_WRITE_ERROR:
		return kerr_set(e, -EFBIG, "Redfish: reply larger than %d bytes",
				RF_BODY_CAP);
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return kerr_set(e, -ECONNRESET, "Redfish: connection lost: %s",
				detail);
	case CURLE_UNSUPPORTED_PROTOCOL:
		return kerr_set(e, -EINVAL, "Redfish: unsupported URL '%s'",
				rf->base);
	default:
		return kerr_set(e, -EIO, "Redfish: %s", detail);
	}
}

/* The BMC's own words from a Redfish error body, sanitised, or "". */
static void rf_error_text(const struct buf *body, char *out, size_t n)
{
	json_t *j = json_loadb(body->s ? body->s : "", body->len, 0, NULL);
	const char *m = NULL;

	out[0] = '\0';
	if (!j)
		return;
	json_t *err = json_object_get(j, "error");
	json_t *ext = json_object_get(err, "@Message.ExtendedInfo");
	if (json_is_array(ext) && json_array_size(ext) > 0)
		m = json_string_value(json_object_get(json_array_get(ext, 0),
						      "Message"));
	if (!m)
		m = json_string_value(json_object_get(err, "message"));
	if (m)
		str_sanitize(out, n, m, strlen(m));
	json_decref(j);
}

/* Map an HTTP error status to -errno and a message. */
static int rf_http_fail(struct rf *rf, const char *what, struct kerr *e)
{
	const char *user = rf->c->user && *rf->c->user ? rf->c->user : "";
	char why[200];
	long s = rf->status;
	int code;

	rf_error_text(&rf->body, why, sizeof(why));
	if (s == 401)
		return kerr_set(e, -EACCES,
				"Redfish: HTTP 401 Unauthorized (user '%s')", user);
	if (s == 403)
		code = -EPERM;
	else if (s == 404 || s == 405 || s == 501)
		code = -ENOTSUP;
	else if (s == 409 || s == 412 || s == 429 || s == 502 || s == 503 ||
		 s == 504)
		code = -EAGAIN;   /* conflict, stale ETag, throttled, busy */
	else if (s >= 500)
		code = -EIO;
	else
		code = -EPROTO;
	return kerr_set(e, code, "Redfish: %s: HTTP %ld%s%s", what, s,
			why[0] ? ": " : "", why);
}

/*
 * One request.  path must be absolute on the BMC ("/redfish/v1/..."): a
 * link in a reply never sends credentials to another host.  req (may be
 * NULL) is the JSON body.  On success the reply is in rf->body and
 * rf->status is 2xx; any other status is an error.
 */
static int rf_request(struct rf *rf, const char *method, const char *path,
		      json_t *req, const char *if_match, const char *what,
		      struct kerr *e)
{
	const struct bmc_target *c = rf->c;
	struct curl_slist *hdr = NULL;
	char *url = NULL, *data = NULL, *ifm = NULL;
	CURLcode cc;
	CURL *h = rf->h;
	int r = 0;

	if (!path || path[0] != '/' || path[1] == '/' || strpbrk(path, " \r\n"))
		return kerr_set(e, -EPROTO, "Redfish: bad resource link '%s'",
				path ? path : "(none)");
	url = xasprintf("%s%s", rf->base, path);
	buf_reset(&rf->body);
	rf->status = 0;
	rf->etag[0] = '\0';
	rf->curl_err[0] = '\0';

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, rf->curl_err);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)rf->a->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)rf->a->timeout_ms);
	curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(h, CURLOPT_USERNAME, c->user ? c->user : "");
	curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->insecure_tls ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->insecure_tls ? 0L : 2L);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rf_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &rf->body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, rf_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, rf);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	hdr = curl_slist_append(hdr, "Accept: application/json");
	hdr = curl_slist_append(hdr, "OData-Version: 4.0");
	if (req) {
		data = json_dumps(req, JSON_COMPACT);
		if (!data) {
			r = kerr_set(e, -ENOMEM, "Redfish: out of memory");
			goto out;
		}
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
	}
	if (if_match && *if_match) {
		ifm = xasprintf("If-Match: %s", if_match);
		hdr = curl_slist_append(hdr, ifm);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);

	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		r = rf_curl_fail(rf, cc, e);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rf->status);
	if (rf->status < 200 || rf->status > 299)
		r = rf_http_fail(rf, what, e);
out:
	curl_slist_free_all(hdr);
	free(data);
	free(ifm);
	free(url);
	return r;
}

/* GET path and parse the reply as a JSON object into *out. */
static int rf_get_json(struct rf *rf, const char *path, const char *what,
		       json_t **out, struct kerr *e)
{
	json_error_t je;
	int r;

	*out = NULL;
	if ((r = rf_request(rf, "GET", path, NULL, NULL, what, e)) < 0)
		return r;
	*out = json_loadb(rf->body.s ? rf->body.s : "", rf->body.len,
			  JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(*out)) {
		char why[sizeof(je.text)];
		/* jansson quotes bits of the input in its messages */
		str_sanitize(why, sizeof(why), je.text, strlen(je.text));
		json_decref(*out);
		*out = NULL;
		return kerr_set(e, -EPROTO, "Redfish: %s: reply is not a JSON "
				"object (%s)", what, why);
	}
	return 0;
}

/*
 * Find the computer system: the first member of /redfish/v1/Systems.
 * *sys_path is allocated; *sys (may be NULL) receives the system resource
 * and rf->etag its ETag.
 */
static int rf_system(struct rf *rf, char **sys_path, json_t **sys,
		     struct kerr *e)
{
	json_t *coll = NULL, *s = NULL;
	const char *id;
	int r;

	*sys_path = NULL;
	if (sys)
		*sys = NULL;
	if ((r = rf_get_json(rf, "/redfish/v1/Systems", "list systems", &coll, e)) < 0)
		return r;
	id = json_string_value(json_object_get(
		json_array_get(json_object_get(coll, "Members"), 0), "@odata.id"));
	if (!id) {
		r = kerr_set(e, -EPROTO, "Redfish: /redfish/v1/Systems has no members");
		goto out;
	}
	*sys_path = xstrdup(id);
	if (sys) {
		if ((r = rf_get_json(rf, *sys_path, "read the system", &s, e)) < 0)
			goto out;
		*sys = s;
	}
out:
	json_decref(coll);
	if (r < 0) {
		free(*sys_path);
		*sys_path = NULL;
	}
	return r;
}

static enum bmc_power rf_power_of(json_t *sys)
{
	const char *ps = json_string_value(json_object_get(sys, "PowerState"));

	if (!ps)
		return BMC_POWER_UNKNOWN;
	/* A transition counts as where it is heading. */
	if (strcmp(ps, "On") == 0 || strcmp(ps, "PoweringOn") == 0)
		return BMC_POWER_ON;
	if (strcmp(ps, "Off") == 0 || strcmp(ps, "PoweringOff") == 0)
		return BMC_POWER_OFF;
	return BMC_POWER_UNKNOWN;
}

int redfish_power_get(struct bmc_attempt *a, enum bmc_power *out, struct kerr *e)
{
	struct rf rf;
	json_t *sys = NULL;
	char *path = NULL;
	int r;

	if ((r = rf_open(&rf, a, e)) < 0)
		goto out;
	if ((r = rf_system(&rf, &path, &sys, e)) < 0)
		goto out;
	*out = rf_power_of(sys);
out:
	json_decref(sys);
	free(path);
	rf_close(&rf);
	return r;
}

/* Is v allowed by an "...@Redfish.AllowableValues" array (absent = yes)? */
static bool rf_allowed(json_t *allow, const char *v)
{
	size_t i;
	json_t *x;

	if (!json_is_array(allow))
		return true;
	json_array_foreach(allow, i, x)
		if (json_is_string(x) && strcmp(json_string_value(x), v) == 0)
			return true;
	return false;
}

/* "A, B, C" from an AllowableValues array, for error messages. */
static void rf_list_allowed(json_t *allow, char *out, size_t n)
{
	struct buf b;
	size_t i;
	json_t *x;

	buf_init(&b, n > 1 ? n - 1 : 1);
	json_array_foreach(allow, i, x)
		if (json_is_string(x))
			buf_printf(&b, "%s%s", b.len ? ", " : "",
				   json_string_value(x));
	str_sanitize(out, n, b.s ? b.s : "", b.len);
	buf_release(&b);
}

/*
 * POST ComputerSystem.Reset with the first ResetType the BMC offers for
 * the action, after reading the system (action target, allowable values,
 * current state for the idempotent cases).
 */
int redfish_power_set(struct bmc_attempt *a, const char *action, struct kerr *e)
{
	/* ResetType candidates per action, best first. */
	static const char *const t_on[] = { "On", NULL };
	static const char *const t_off[] = { "ForceOff", NULL };
	static const char *const t_cycle[] = { "PowerCycle", "ForceRestart", NULL };
	static const char *const t_reset[] = { "ForceRestart", "PowerCycle", NULL };
	static const char *const t_soft[] = { "GracefulShutdown", NULL };
	const char *const *cand;
	const char *type = NULL, *target;
	struct rf rf;
	json_t *sys = NULL, *act, *allow, *req = NULL;
	char *path = NULL, *def_target = NULL, what[64];
	enum bmc_power now;
	int r;

	if (strcmp(action, "on") == 0)
		cand = t_on;
	else if (strcmp(action, "off") == 0)
		cand = t_off;
	else if (strcmp(action, "cycle") == 0)
		cand = t_cycle;
	else if (strcmp(action, "reset") == 0)
		cand = t_reset;
	else if (strcmp(action, "soft") == 0)
		cand = t_soft;
	else
		return kerr_set(e, -EINVAL, "Redfish: unknown power action '%s'",
				action);

	if ((r = rf_open(&rf, a, e)) < 0)
		goto out;
	if ((r = rf_system(&rf, &path, &sys, e)) < 0)
		goto out;
	now = rf_power_of(sys);
	/*
	 * Asking for the state the machine is already in succeeds without a
	 * request (several BMCs answer 409 to it); a cycle of a machine that
	 * is off powers it on, as with IPMI.
	 */
	if ((strcmp(action, "on") == 0 && now == BMC_POWER_ON) ||
	    (strcmp(action, "off") == 0 && now == BMC_POWER_OFF) ||
	    (strcmp(action, "soft") == 0 && now == BMC_POWER_OFF))
		goto out;
	if (strcmp(action, "cycle") == 0 && now == BMC_POWER_OFF)
		cand = t_on;

	act = json_object_get(json_object_get(sys, "Actions"),
			      "#ComputerSystem.Reset");
	allow = json_object_get(act, "ResetType@Redfish.AllowableValues");
	for (size_t i = 0; cand[i]; i++)
		if (rf_allowed(allow, cand[i])) {
			type = cand[i];
			break;
		}
	if (!type) {
		char list[200];
		rf_list_allowed(allow, list, sizeof(list));
		r = kerr_set(e, -ENOTSUP, "Redfish: power %s: the BMC offers "
			     "only reset types %s", action, list);
		goto out;
	}
	target = json_string_value(json_object_get(act, "target"));
	if (!target) {
		def_target = xasprintf("%s/Actions/ComputerSystem.Reset", path);
		target = def_target;
	}
	req = json_pack("{s:s}", "ResetType", type);
	a->acted = true;
	snprintf(what, sizeof(what), "power %s (%s)", action, type);
	r = rf_request(&rf, "POST", target, req, NULL, what, e);
out:
	json_decref(req);
	json_decref(sys);
	free(def_target);
	free(path);
	rf_close(&rf);
	return r;
}

/*
 * PATCH the system's Boot override, checked against the targets the BMC
 * offers and guarded by If-Match when the BMC sent an ETag.
 */
int redfish_bootdev_set(struct bmc_attempt *a, const char *dev, bool once,
			struct kerr *e)
{
	static const struct {
		const char *dev, *target;
	} map[] = {
		{ "pxe", "Pxe" }, { "disk", "Hdd" }, { "cdrom", "Cd" },
		{ "bios", "BiosSetup" }, { "none", "None" },
	};
	const char *target = NULL;
	const struct bmc_target *c = a->conf;
	bool none = strcmp(dev, "none") == 0;
	json_t *sys = NULL, *boot, *req = NULL;
	char *path = NULL, *etag = NULL, what[64];
	struct rf rf;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (strcmp(dev, map[i].dev) == 0)
			target = map[i].target;
	if (!target)
		return kerr_set(e, -EINVAL, "Redfish: unknown boot device '%s'", dev);

	if ((r = rf_open(&rf, a, e)) < 0)
		goto out;
	if ((r = rf_system(&rf, &path, &sys, e)) < 0)
		goto out;
	etag = rf.etag[0] ? xstrdup(rf.etag) : NULL;
	boot = json_object_get(sys, "Boot");
	if (!rf_allowed(json_object_get(boot,
			"BootSourceOverrideTarget@Redfish.AllowableValues"),
			target)) {
		char list[200];
		rf_list_allowed(json_object_get(boot,
				"BootSourceOverrideTarget@Redfish.AllowableValues"),
				list, sizeof(list));
		r = kerr_set(e, -ENOTSUP, "Redfish: boot device %s (%s) not "
			     "offered by the BMC (only %s)", dev, target, list);
		goto out;
	}
	req = json_pack("{s:{s:s, s:s}}", "Boot",
			"BootSourceOverrideTarget", target,
			"BootSourceOverrideEnabled",
			none ? "Disabled" : once ? "Once" : "Continuous");
	if (c->boot_mode != BMC_BOOT_MODE_KEEP && !none)
		json_object_set_new(json_object_get(req, "Boot"),
				    "BootSourceOverrideMode",
				    json_string(c->boot_mode == BMC_BOOT_MODE_UEFI ?
						"UEFI" : "Legacy"));
	a->acted = true;
	snprintf(what, sizeof(what), "set boot device %s", dev);
	r = rf_request(&rf, "PATCH", path, req, etag, what, e);
out:
	json_decref(req);
	json_decref(sys);
	free(etag);
	free(path);
	rf_close(&rf);
	return r;
}
