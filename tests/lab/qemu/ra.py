#!/usr/bin/env python3
"""Minimal IPv6 router advertiser for the QEMU PXE test.

iPXE configures IPv6 alongside DHCPv4 and waits ~13 s for a router
advertisement before it runs the boot script.  This sends an RA with router
lifetime 0 and no options (no default route, no prefix, no DHCPv6) to all
nodes on IFACE every INTERVAL seconds, and at once when a router solicitation
arrives, so iPXE's IPv6 configuration finishes immediately.  Runs until killed.

usage: ra.py IFACE [INTERVAL]
"""
import select
import socket
import struct
import sys
import time

ICMP6_RS, ICMP6_RA = 133, 134


def main():
    iface = sys.argv[1]
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    idx = socket.if_nametoindex(iface)
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
    # ff02::2 (all routers) so solicitations reach us.
    mreq = socket.inet_pton(socket.AF_INET6, "ff02::2") + struct.pack("@I", idx)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    # type, code, checksum (kernel fills it), cur hop limit, flags (no M/O),
    # router lifetime 0, reachable time, retrans timer.
    ra = struct.pack("!BBHBBHII", ICMP6_RA, 0, 0, 64, 0, 0, 0, 0)
    dst = ("ff02::1", 0, 0, idx)
    next_at = 0.0
    while True:
        now = time.monotonic()
        if now >= next_at:
            try:
                s.sendto(ra, dst)
            except OSError:
                pass  # link not up yet (the tap opens when QEMU starts)
            next_at = now + interval
        r, _, _ = select.select([s], [], [], max(0.0, next_at - now))
        if r:
            data, _ = s.recvfrom(1500)
            if data and data[0] == ICMP6_RS:
                next_at = 0.0


if __name__ == "__main__":
    main()
