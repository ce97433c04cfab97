#!/usr/bin/python3
"""Spray kiln serve with distinct MACs, for tests/lab/0104-spray.sh.

http: COUNT requests over keep-alive connections, one per source address
  (--sources A.B.C.D/N: the first N addresses from A.B.C.D, which the
  caller has put on an interface).  Request k uses MAC --mac-prefix:k;
  even k fetch /boot/MAC.ipxe, odd k post /api/discover.  Prints one JSON
  line: {"status": {code: count}, "seconds": s}.
dhcp: COUNT relayed DISCOVERs (giaddr = --giaddr, sent from giaddr:67,
  where the server answers) with distinct chaddr, paced at --rate a
  second; every --probe-every packets a DISCOVER from --known-mac, whose
  OFFERs (yiaddr) are counted.  Prints {"sent", "offers", "known_offers":
  {yiaddr: n}, "seconds"}.
Bounded: --deadline seconds for the whole run."""

import argparse
import asyncio
import ipaddress
import json
import socket
import struct
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["http", "dhcp"])
ap.add_argument("--count", type=int, default=100000)
ap.add_argument("--mac-prefix", default="02:5b")
ap.add_argument("--deadline", type=float, default=60.0)
ap.add_argument("--host")
ap.add_argument("--port", type=int, default=8080)
ap.add_argument("--sources")
ap.add_argument("--server")
ap.add_argument("--giaddr")
ap.add_argument("--rate", type=int, default=20000)
ap.add_argument("--known-mac")
ap.add_argument("--probe-every", type=int, default=2000)
args = ap.parse_args()


def mac_of(k):
    return "%s:%02x:%02x:%02x:%02x" % (args.mac_prefix, (k >> 24) & 255, (k >> 16) & 255,
                                        (k >> 8) & 255, k & 255)


async def conn_worker(src, ks, status):
    reader = writer = None
    for k in ks:
        if reader is None:
            reader, writer = await asyncio.open_connection(args.host, args.port,
                                                           local_addr=(src, 0))
        mac = mac_of(k)
        if k % 2 == 0:
            req = "GET /boot/%s.ipxe HTTP/1.1\r\nHost: x\r\n\r\n" % mac
        else:
            body = json.dumps({"mac": mac, "facts": {"cpu": {"threads": 4}}})
            req = ("POST /api/discover HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                   "\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        writer.write(req.encode())
        line = await reader.readline()
        code = int(line.split()[1])
        n, close = 0, False
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b""):
                break
            name, _, v = h.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                n = int(v)
            elif name.lower() == "connection" and "close" in v.lower():
                close = True
        await reader.readexactly(n)
        status[code] = status.get(code, 0) + 1
        if close:
            writer.close()
            reader = writer = None
    if writer:
        writer.close()


async def http_main():
    base, n = args.sources.split("/")
    srcs = [str(ipaddress.IPv4Address(base) + i) for i in range(int(n))]
    status = {}
    # request k goes to source k % n: every source gets its share of both kinds
    per = [[] for _ in srcs]
    for k in range(args.count):
        per[(k // 2) % len(srcs)].append(k)
    t = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(conn_worker(s, ks, status)
                                            for s, ks in zip(srcs, per))), args.deadline)
    return {"status": status, "seconds": round(time.monotonic() - t, 2)}


def discover(mac, xid, giaddr):
    b = bytearray(236)
    b[0:4] = bytes([1, 1, 6, 1])
    b[4:8] = struct.pack("!I", xid)
    b[24:28] = socket.inet_aton(giaddr)
    b[28:34] = mac
    return bytes(b) + bytes([99, 130, 83, 99, 53, 1, 1, 255])


def dhcp_main():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((args.giaddr, 67))
    s.setblocking(False)
    known = bytes.fromhex(args.known_mac.replace(":", ""))
    pre = bytes.fromhex(args.mac_prefix.replace(":", ""))
    res = {"sent": 0, "offers": 0, "known_offers": {}}
    t0 = time.monotonic()

    def drain():
        while True:
            try:
                p = s.recv(4096)
            except BlockingIOError:
                return
            if len(p) < 240 or p[0] != 2:
                continue
            res["offers"] += 1
            if p[28:34] == known:
                y = socket.inet_ntoa(p[16:20])
                res["known_offers"][y] = res["known_offers"].get(y, 0) + 1

    for k in range(args.count):
        if time.monotonic() - t0 > args.deadline:
            break
        mac = (pre + struct.pack("!I", k))[:6]
        if k % args.probe_every == 0:
            s.sendto(discover(known, 0x4b000000 + k, args.giaddr), (args.server, 67))
        s.sendto(discover(mac, k + 1, args.giaddr), (args.server, 67))
        res["sent"] += 1
        if k % 256 == 255:
            drain()
            ahead = (k + 1) / args.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        drain()
        time.sleep(0.05)
    res["seconds"] = round(time.monotonic() - t0, 2)
    return res


if args.mode == "http":
    out = asyncio.run(http_main())
else:
    out = dhcp_main()
print(json.dumps(out))
sys.stdout.flush()
