#!/usr/bin/env python3
"""A small Redfish BMC double for kiln's bmc tests.

No Debian package ships a Redfish simulator, so this stands in for the HTTP
peer.  It implements only what kiln uses, with the behaviour of real BMCs
that matters to a client:

  GET   /redfish/v1/Systems                       collection, one member
  GET   /redfish/v1/Systems/1                     PowerState, Boot, Actions, ETag
  POST  /redfish/v1/Systems/1/Actions/ComputerSystem.Reset   {"ResetType": ...}
  PATCH /redfish/v1/Systems/1                     {"Boot": {...}}, If-Match checked

HTTP Basic authentication on everything (401 otherwise); Redfish error
bodies; optional TLS.  State is kept in memory and written to STATE (JSON)
after every change, and every request is appended to STATE.log, so a test
can check the BMC side without asking the client under test.

Knobs for failure tests: --hang METHOD (never answer that method),
--reset-types (the AllowableValues the BMC advertises), --boot-targets,
--fail-patch CODE (answer PATCH with that HTTP error), --bad-json (the
Systems collection is not JSON).
"""
import argparse
import base64
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SYS = "/redfish/v1/Systems/1"
RESET = SYS + "/Actions/ComputerSystem.Reset"


class Bmc:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.state = {
            "PowerState": args.power,
            "Boot": {
                "BootSourceOverrideTarget": "None",
                "BootSourceOverrideEnabled": "Disabled",
                "BootSourceOverrideMode": "UEFI",
            },
            "etag": 1,
            "resets": [],
        }
        self.save()

    def save(self):
        tmp = self.args.state + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.replace(tmp, self.args.state)

    def log(self, line):
        with open(self.args.state + ".log", "a") as f:
            f.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kiln-redfish-mock/1"

    def log_message(self, fmt, *a):  # keep stderr quiet
        pass

    @property
    def bmc(self):
        return self.server.bmc

    def reply(self, code, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, code, msg):
        self.reply(code, {"error": {
            "code": "Base.1.8.GeneralError", "message": msg,
            "@Message.ExtendedInfo": [{"MessageId": "Base.1.8.GeneralError",
                                       "Message": msg}]}})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None

    def authorized(self):
        want = "%s:%s" % (self.bmc.args.user, self.bmc.args.password)
        got = self.headers.get("Authorization", "")
        if got.startswith("Basic ") and \
                base64.b64decode(got[6:]).decode(errors="replace") == want:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="redfish"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def handle_any(self, method):
        payload = self.body() if method in ("POST", "PATCH") else None
        self.bmc.log("%s %s %s" % (method, self.path,
                                   json.dumps(payload) if payload is not None else "-"))
        if method in self.bmc.args.hang:
            time.sleep(3600)
            return
        if not self.authorized():
            return
        route = (method, self.path.rstrip("/") or "/")
        if route == ("GET", "/redfish/v1/Systems") and self.bmc.args.bad_json:
            data = b"<html>\x01oops</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if route == ("PATCH", SYS) and self.bmc.args.fail_patch:
            return self.error(self.bmc.args.fail_patch,
                              "Boot override rejected by mock")
        if route == ("GET", "/redfish/v1/Systems"):
            return self.reply(200, {
                "@odata.id": "/redfish/v1/Systems",
                "Members": [{"@odata.id": SYS}],
                "Members@odata.count": 1})
        if route == ("GET", SYS):
            return self.get_system()
        if route == ("POST", RESET):
            return self.reset(payload)
        if route == ("PATCH", SYS):
            return self.patch(payload)
        if self.path.rstrip("/") in ("/redfish/v1/Systems", SYS, RESET):
            return self.error(405, "method not allowed")
        return self.error(404, "no such resource")

    def get_system(self):
        with self.bmc.lock:
            st = self.bmc.state
            boot = dict(st["Boot"])
            boot["BootSourceOverrideTarget@Redfish.AllowableValues"] = \
                self.bmc.args.boot_targets.split(",")
            body = {
                "@odata.id": SYS, "Id": "1", "Name": "mock system",
                "PowerState": st["PowerState"], "Boot": boot,
                "Actions": {"#ComputerSystem.Reset": {
                    "target": RESET,
                    "ResetType@Redfish.AllowableValues":
                        self.bmc.args.reset_types.split(",")}}}
            etag = 'W/"%d"' % st["etag"]
        self.reply(200, body, {"ETag": etag})

    def reset(self, payload):
        rt = payload.get("ResetType") if isinstance(payload, dict) else None
        if rt not in self.bmc.args.reset_types.split(","):
            return self.error(400, "ResetType %r not allowed" % (rt,))
        with self.bmc.lock:
            st = self.bmc.state
            if rt == "On":
                if st["PowerState"] == "On":
                    return self.error(409, "system is already powered on")
                st["PowerState"] = "On"
            elif rt in ("ForceOff", "GracefulShutdown"):
                if st["PowerState"] == "Off":
                    return self.error(409, "system is already powered off")
                st["PowerState"] = "Off"
            elif rt in ("PowerCycle", "ForceRestart"):
                if st["PowerState"] == "Off":
                    return self.error(409, "system is powered off")
                st["PowerState"] = "On"
            st["resets"].append(rt)
            st["etag"] += 1
            self.bmc.save()
        self.reply(204)

    def patch(self, payload):
        boot = payload.get("Boot") if isinstance(payload, dict) else None
        if not isinstance(boot, dict) or set(payload) != {"Boot"}:
            return self.error(400, "only Boot may be patched")
        allowed = {
            "BootSourceOverrideTarget": self.bmc.args.boot_targets.split(","),
            "BootSourceOverrideEnabled": ["Disabled", "Once", "Continuous"],
            "BootSourceOverrideMode": ["Legacy", "UEFI"],
        }
        for k, v in boot.items():
            if k not in allowed or v not in allowed[k]:
                return self.error(400, "bad value %r for %s" % (v, k))
        with self.bmc.lock:
            st = self.bmc.state
            im = self.headers.get("If-Match")
            if im is not None and im != 'W/"%d"' % st["etag"]:
                return self.error(412, "ETag mismatch")
            if self.bmc.args.require_if_match and im is None:
                return self.error(428, "If-Match required")
            st["Boot"].update(boot)
            st["etag"] += 1
            self.bmc.save()
        self.reply(204)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port")
    ap.add_argument("--port-file", help="write the bound port here")
    ap.add_argument("--state", required=True, help="JSON state file to keep")
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", default="calvin")
    ap.add_argument("--power", default="Off", choices=["On", "Off"])
    ap.add_argument("--cert", help="serve HTTPS with this PEM certificate")
    ap.add_argument("--key", help="... and this key")
    ap.add_argument("--hang", action="append", default=[],
                    help="never answer requests with this method")
    ap.add_argument("--reset-types",
                    default="On,ForceOff,GracefulShutdown,ForceRestart,PowerCycle")
    ap.add_argument("--boot-targets", default="None,Pxe,Hdd,Cd,BiosSetup")
    ap.add_argument("--require-if-match", action="store_true")
    ap.add_argument("--fail-patch", type=int, default=0)
    ap.add_argument("--bad-json", action="store_true")
    args = ap.parse_args()

    srv = ThreadingHTTPServer((args.listen, args.port), Handler)
    srv.daemon_threads = True
    srv.bmc = Bmc(args)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
