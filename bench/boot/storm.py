#!/usr/bin/python3
"""Boot storm client for bench/boot.sh: N simulated PXE machines in one
network namespace, all started at once (or spread over --spread seconds).

Each client, with its own MAC and, once leased, its own IP address:
  1. DHCP as a PXE ROM (vendor class PXEClient, arch 0, broadcast flag):
     DISCOVER/OFFER/REQUEST/ACK, retransmitting after 4, 8, 16, 32 s like
     the PXE spec; the ACK must carry a boot file and a TFTP server.
  2. uses the leased address as its own from then on, so the following
     traffic comes from a distinct address, as real machines do (with
     --anyip the script has routed the pool to this namespace as local,
     AnyIP-style, so no per-client `ip addr add` fork slows the client
     side; without it each client runs `ip addr add A/32`);
  3. TFTP: fetches the boot file (blksize 1456, tsize; 1 s timeout doubling
     to 4 s, 6 tries a packet), checks its size and SHA-256;
  4. DHCP again as iPXE (user class "iPXE"): the ACK must name an HTTP URL
     (the per-host iPXE script) and give the same address;
  5. HTTP GET of that URL (kiln serve's /boot/MAC.ipxe: an iPXE script
     naming this MAC, for unknown machines the discovery one) and of the
     kernel it names (/images/NAME/kernel), checks the content.

A client that fails a step stops there and is counted under that step.
Prints a summary table and a final JSON line (prefix "RESULT ").
Bounded: every wait has a timeout and the whole run has --deadline.
Needs root (SO_BINDTODEVICE, port 68, ip addr add)."""

import argparse
import asyncio
import hashlib
import json
import os
import random
import socket
import struct
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--iface", required=True)
ap.add_argument("--server", required=True, help="expected DHCP/TFTP server address")
ap.add_argument("--clients", type=int, default=500)
ap.add_argument("--spread", type=float, default=0.0, help="start clients uniformly over S seconds")
ap.add_argument("--boot-sha256", required=True)
ap.add_argument("--boot-size", type=int, required=True)
ap.add_argument("--kernel-size", type=int, required=True)
ap.add_argument("--deadline", type=float, default=240.0)
ap.add_argument("--mac-prefix", default="02:b0:07")
ap.add_argument("--anyip", action="store_true", help="pool already routed locally; no ip addr add")
args = ap.parse_args()

COOKIE = bytes([99, 130, 83, 99])
PXE_VCI = b"PXEClient:Arch:00000:UNDI:002001"
DHCP_TIMEOUTS = (4, 8, 16, 32)          # PXE spec retransmission schedule


def now():
    return time.monotonic()


class Stats:
    def __init__(self):
        self.fail = {}          # step -> count
        self.fail_why = {}      # step -> {reason: count}
        self.done = []          # completion times (s since start)
        self.step_t = {"dhcp-pxe": [], "tftp": [], "dhcp-ipxe": [], "http": []}
        self.dhcp_retx = 0
        self.tftp_retx = 0
        self.addr_changed = 0
        self.lag = 0.0          # worst event-loop lag seen (client overload)
        self.dhcp_rtt = []      # send of the latest try -> its reply
        self.late = 0           # replies that came after we had retransmitted

    def failed(self, step, why):
        self.fail[step] = self.fail.get(step, 0) + 1
        w = self.fail_why.setdefault(step, {})
        w[why] = w.get(why, 0) + 1


S = Stats()


# ---- DHCP -----------------------------------------------------------------
def dhcp_packet(mac, xid, typ, extra):
    b = bytearray(236)
    b[0:4] = bytes([1, 1, 6, 0])
    b[4:8] = struct.pack("!I", xid)
    b[10:12] = struct.pack("!H", 0x8000)        # broadcast flag
    b[28:34] = mac
    o = bytearray(COOKIE)
    o += bytes([53, 1, typ])
    o += bytes([57, 2]) + struct.pack("!H", 1260)
    o += bytes([93, 2, 0, 0])                   # arch: x86 BIOS
    o += bytes([94, 3, 1, 2, 1])                # UNDI 2.1
    uuid = bytes([0]) + hashlib.md5(mac).digest()
    o += bytes([97, len(uuid)]) + uuid
    o += bytes([60, len(PXE_VCI)]) + PXE_VCI
    o += bytes([55, 7, 1, 3, 6, 43, 60, 66, 67])
    o += extra
    o += b"\xff"
    return bytes(b + o)


def dhcp_parse(p):
    """(fields, options) of a BOOTREPLY, or None when it is not one."""
    if len(p) < 240 or p[0] != 2 or p[236:240] != COOKIE:
        return None
    opts, i = {}, 240
    while i < len(p):
        c = p[i]
        if c == 255:
            break
        if c == 0:
            i += 1
            continue
        if i + 1 >= len(p) or i + 2 + p[i + 1] > len(p):
            return None
        opts[c] = opts.get(c, b"") + p[i + 2:i + 2 + p[i + 1]]
        i += 2 + p[i + 1]
    f = {
        "xid": struct.unpack("!I", p[4:8])[0],
        "yiaddr": socket.inet_ntoa(p[16:20]),
        "siaddr": socket.inet_ntoa(p[20:24]),
        "file": p[108:236].split(b"\0", 1)[0].decode("latin-1"),
    }
    return f, opts


class DhcpMux:
    """One socket on port 68 for all clients; replies are matched by xid.
    The socket is drained completely on each wakeup: asyncio's datagram
    transport reads one datagram per loop iteration, which with hundreds of
    busy TFTP sockets in the same loop delayed DHCP replies by seconds on
    the client side and made it look like a slow server."""

    def __init__(self, sock):
        self.waiters = {}
        self.sock = sock
        sock.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self.drain)

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            r = dhcp_parse(data)
            if r and r[0]["xid"] in self.waiters:
                self.waiters[r[0]["xid"]].put_nowait(r)

    def send(self, pkt):
        try:
            self.sock.sendto(pkt, ("255.255.255.255", 67))
        except (BlockingIOError, InterruptedError):
            pass            # counts as a lost packet; the client retransmits


async def exchange(mux, mac, xid, pkt, want_type):
    """Send pkt and wait for a reply of want_type (2 OFFER, 5 ACK) with the
    PXE retransmission schedule; raises on NAK or when all tries time out."""
    q = mux.waiters[xid]
    for n, t in enumerate(DHCP_TIMEOUTS):
        if n:
            S.dhcp_retx += 1
        mux.send(pkt)
        sent = now()
        end = sent + t
        while True:
            left = end - now()
            if left <= 0:
                break
            try:
                f, o = await asyncio.wait_for(q.get(), left)
            except asyncio.TimeoutError:
                break
            typ = o.get(53, b"\0")[0]
            if typ == 6:
                raise RuntimeError("NAK")
            if typ == want_type:
                S.dhcp_rtt.append(now() - sent)
                if n:
                    S.late += 1
                return f, o
    raise RuntimeError("no %s" % ("OFFER" if want_type == 2 else "ACK"))


async def dhcp(mux, mac, extra):
    xid = random.getrandbits(32)
    while xid in mux.waiters:
        xid = random.getrandbits(32)
    mux.waiters[xid] = asyncio.Queue()
    try:
        f, o = await exchange(mux, mac, xid, dhcp_packet(mac, xid, 1, extra), 2)
        sid = o.get(54)
        if not sid:
            raise RuntimeError("OFFER without server id")
        req = extra + bytes([50, 4]) + socket.inet_aton(f["yiaddr"]) + bytes([54, 4]) + sid
        return await exchange(mux, mac, xid, dhcp_packet(mac, xid, 3, req), 5)
    finally:
        del mux.waiters[xid]


def boot_file(f, o):
    if 67 in o:
        return o[67].split(b"\0", 1)[0].decode("latin-1")
    return f["file"]


# ---- TFTP -----------------------------------------------------------------
class TftpProto(asyncio.DatagramProtocol):
    def __init__(self):
        self.q = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.q.put_nowait((data, addr))

    def error_received(self, exc):
        pass


async def tftp_get(local, server, name, blksize=1456):
    loop = asyncio.get_running_loop()
    tr, pr = await loop.create_datagram_endpoint(TftpProto, local_addr=(local, 0))
    try:
        rrq = (struct.pack("!H", 1) + name.encode() + b"\0octet\0blksize\0" +
               str(blksize).encode() + b"\0tsize\0" + b"0\0")
        last, dest = rrq, (server, 69)
        tid, blk, expect, out, tsize = None, 512, 1, bytearray(), None
        t, tries = 1.0, 0
        tr.sendto(last, dest)
        while True:
            try:
                data, addr = await asyncio.wait_for(pr.q.get(), t)
            except asyncio.TimeoutError:
                tries += 1
                if tries >= 6:
                    raise RuntimeError("timeout")
                S.tftp_retx += 1
                t = min(t * 2, 4.0)
                tr.sendto(last, dest)
                continue
            if tid is None:
                tid = dest = addr
            elif addr != tid:
                continue
            if len(data) < 4:
                raise RuntimeError("short packet")
            op = struct.unpack("!H", data[:2])[0]
            if op == 5:
                raise RuntimeError("error: " + data[4:].split(b"\0")[0].decode("latin-1"))
            if op == 6:
                kv = data[2:].split(b"\0")
                o = {kv[i].decode().lower(): kv[i + 1].decode() for i in range(0, len(kv) - 1, 2)}
                blk = int(o.get("blksize", 512))
                tsize = int(o["tsize"]) if "tsize" in o else None
                last = struct.pack("!HH", 4, 0)
                tr.sendto(last, dest)
                t, tries = 1.0, 0
                continue
            if op != 3:
                raise RuntimeError("unexpected opcode %d" % op)
            n = struct.unpack("!H", data[2:4])[0]
            if n == expect & 0xFFFF:
                out += data[4:]
                last = struct.pack("!HH", 4, n)
                tr.sendto(last, dest)
                expect += 1
                t, tries = 1.0, 0
                if len(data) - 4 < blk:
                    if tsize is not None and tsize != len(out):
                        raise RuntimeError("tsize %d but got %d bytes" % (tsize, len(out)))
                    return bytes(out)
            elif n == (expect - 1) & 0xFFFF:
                tr.sendto(last, dest)          # our ACK was lost
    finally:
        tr.close()


# ---- HTTP -----------------------------------------------------------------
async def http_get(local, url):
    if not url.startswith("http://"):
        raise RuntimeError("not an http URL: %r" % url)
    hostport, _, path = url[7:].partition("/")
    host, _, port = hostport.partition(":")
    r, w = await asyncio.open_connection(host, int(port or 80), local_addr=(local, 0))
    try:
        w.write(("GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, hostport)).encode())
        await w.drain()
        data = await r.read()
    finally:
        w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError("HTTP status %r" % status.decode("latin-1"))
    return body


# ---- one client -----------------------------------------------------------
async def add_addr(ip):
    if args.anyip:
        return
    p = await asyncio.create_subprocess_exec(
        "ip", "addr", "add", ip + "/32", "dev", args.iface,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await p.communicate()
    if p.returncode != 0 and b"exists" not in err:
        raise RuntimeError("ip addr add: " + err.decode().strip())


async def client(i, mux, t_start):
    mac = bytes.fromhex(args.mac_prefix.replace(":", "")) + struct.pack("!I", i)[1:]
    macs = ":".join("%02x" % b for b in mac)
    await asyncio.sleep(random.uniform(0, args.spread) if args.spread > 0 else 0)
    step = "dhcp-pxe"
    try:
        t0 = now()
        f, o = await dhcp(mux, mac, b"")
        ip = f["yiaddr"]
        bf = boot_file(f, o)
        tftp = o[66].split(b"\0")[0].decode() if 66 in o else f["siaddr"]
        if not bf or tftp in ("", "0.0.0.0"):
            raise RuntimeError("ACK without boot file/TFTP server")
        S.step_t["dhcp-pxe"].append(now() - t0)

        step = "tftp"
        t0 = now()
        await add_addr(ip)
        data = await asyncio.wait_for(tftp_get(ip, tftp, bf), 120)
        if len(data) != args.boot_size or hashlib.sha256(data).hexdigest() != args.boot_sha256:
            raise RuntimeError("boot file content mismatch")
        S.step_t["tftp"].append(now() - t0)

        step = "dhcp-ipxe"
        t0 = now()
        ipxe = bytes([77, 4]) + b"iPXE"
        f2, o2 = await dhcp(mux, mac, ipxe)
        if f2["yiaddr"] != ip:
            S.addr_changed += 1
            await add_addr(f2["yiaddr"])
            ip = f2["yiaddr"]
        url = boot_file(f2, o2)
        S.step_t["dhcp-ipxe"].append(now() - t0)

        step = "http"
        t0 = now()
        script = await asyncio.wait_for(http_get(ip, url), 60)
        if not script.startswith(b"#!ipxe"):
            raise RuntimeError("not an iPXE script")
        if macs.encode() not in script:
            raise RuntimeError("script for another host")
        kurl = None
        for line in script.decode("latin-1").splitlines():
            if line.startswith("kernel "):
                kurl = line.split()[1]
        if not kurl:
            raise RuntimeError("script names no kernel")
        k = await asyncio.wait_for(http_get(ip, kurl), 60)
        if len(k) != args.kernel_size:
            raise RuntimeError("kernel size %d" % len(k))
        S.step_t["http"].append(now() - t0)
        S.done.append(now() - t_start)
    except (RuntimeError, OSError, asyncio.TimeoutError, KeyError, ValueError) as e:
        S.failed(step, str(e) or type(e).__name__)


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


async def lag_monitor():
    while True:
        t = now()
        await asyncio.sleep(0.05)
        S.lag = max(S.lag, now() - t - 0.05)


async def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.iface.encode())
    s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)    # SO_RCVBUFFORCE
    s.bind(("0.0.0.0", 68))
    s.setsockopt(socket.SOL_SOCKET, 32, 4 << 20)    # SO_SNDBUFFORCE
    mux = DhcpMux(s)
    mon = asyncio.create_task(lag_monitor())
    t_start = now()
    tasks = [asyncio.create_task(client(i, mux, t_start)) for i in range(1, args.clients + 1)]
    done, pending = await asyncio.wait(tasks, timeout=args.deadline)
    for t in pending:
        t.cancel()
    if pending:
        S.failed("deadline", "not finished in %.0f s" % args.deadline)
        S.fail["deadline"] = len(pending)
    wall = now() - t_start
    mon.cancel()
    ok = len(S.done)
    failed = args.clients - ok
    print("clients %d, completed %d, failed %d, wall %.2f s" % (args.clients, ok, failed, wall))
    print("%-10s %8s %8s %8s %8s" % ("step", "ok", "p50 s", "p95 s", "max s"))
    for k, v in S.step_t.items():
        print("%-10s %8d %8.3f %8.3f %8.3f" % (k, len(v), pct(v, 50), pct(v, 95), max(v) if v else float("nan")))
    print("%-10s %8d %8.3f %8.3f %8.3f" % ("complete", ok, pct(S.done, 50), pct(S.done, 95),
                                            max(S.done) if S.done else float("nan")))
    print("DHCP retransmissions %d, TFTP retransmissions %d, address changed at iPXE %d" %
          (S.dhcp_retx, S.tftp_retx, S.addr_changed))
    print("DHCP reply time (after the try it answered or a later one): p50 %.3f s, p99 %.3f s, "
          "max %.3f s; %d exchanges finished after a retransmission" %
          (pct(S.dhcp_rtt, 50), pct(S.dhcp_rtt, 99), max(S.dhcp_rtt or [0]), S.late))
    print("client event loop: worst lag %.2f s (timeouts can fire late or early relative to "
          "the server when this is large)" % S.lag)
    for k, v in S.fail_why.items():
        for why, n in v.items():
            print("failed at %s: %d (%s)" % (k, n, why))
    print("RESULT " + json.dumps({
        "clients": args.clients, "completed": ok, "failed": failed, "wall_s": round(wall, 3),
        "fail": S.fail, "p50_s": pct(S.done, 50) if S.done else None,
        "p95_s": pct(S.done, 95) if S.done else None,
        "max_s": max(S.done) if S.done else None,
        "dhcp_retx": S.dhcp_retx, "tftp_retx": S.tftp_retx, "addr_changed": S.addr_changed,
        "client_lag_s": round(S.lag, 3)}))
    return 0 if failed == 0 else 1


sys.exit(asyncio.run(main()))
