#!/usr/bin/env python3
"""Paced TCP SYN flood for the netns tests (stdlib only, needs CAP_NET_RAW).

Sends COUNT SYNs to DST (one address or several, comma-separated), destination ports
PORT_LO..PORT_HI, from every address of SRC_PREFIX (a /24 or larger, network and broadcast
addresses left out) with source ports that make every 5-tuple distinct: each SYN can open a
flow of its own. Hand-built IPv4 + TCP headers (IP_HDRINCL), TCP checksum computed here.

Paced to RATE SYNs per second (0: as fast as the kernel takes them); stops after COUNT SYNs
or SECONDS, whichever comes first. Prints one JSON line: sent, seconds, rate, send errors.
"""
import argparse
import ipaddress
import json
import random
import socket
import struct
import sys
import time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn(src, dst, sport, dport, seq, ident):
    # TCP: SYN with one MSS option (1460), window 64240
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 6 << 4, 0x02, 64240, 0, 0)
    tcp += struct.pack("!BBH", 2, 4, 1460)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ident, 0x4000, 64,
                     socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + tcp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src-prefix", required=True)
    ap.add_argument("--dst", required=True, help="address[,address...]")
    ap.add_argument("--ports", default="20000-29999", help="destination ports LO-HI")
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--rate", type=float, default=20000)
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()

    net = ipaddress.ip_network(a.src_prefix)
    srcs = [h.packed for h in net.hosts()]
    dsts = [ipaddress.ip_address(d).packed for d in a.dst.split(",")]
    lo, hi = (int(p) for p in a.ports.split("-"))
    # Source ports: a random starting point, then one step per pass over the sources; with
    # fewer than 64512 passes no (source, port) pair repeats.
    passes = -(-a.count // len(srcs))
    if passes > 64512:
        sys.exit("too many SYNs for distinct 5-tuples from %s" % net)
    port0 = random.randrange(64512)

    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    batch = 64
    sent = errors = 0
    start = time.monotonic()
    deadline = start + a.seconds
    while sent < a.count:
        now = time.monotonic()
        if now >= deadline:
            break
        if a.rate > 0:
            ahead = sent / a.rate - (now - start)
            if ahead > 0:
                time.sleep(ahead)
        for _ in range(min(batch, a.count - sent)):
            i = sent
            src = srcs[i % len(srcs)]
            sport = 1024 + (port0 + i // len(srcs)) % 64512
            dst = dsts[i % len(dsts)]
            dport = lo + random.randrange(hi - lo + 1)
            pkt = syn(src, dst, sport, dport, random.getrandbits(32), i & 0xFFFF)
            while True:
                try:
                    s.sendto(pkt, (socket.inet_ntoa(dst), 0))
                    sent += 1
                    break
                except OSError:
                    # ENOBUFS: the tunnel device's queue is full; back off briefly
                    errors += 1
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.001)
            if time.monotonic() >= deadline:
                break
    took = time.monotonic() - start
    print(json.dumps({"sent": sent, "seconds": round(took, 3),
                      "rate": round(sent / took) if took > 0 else 0, "send_errors": errors}))


if __name__ == "__main__":
    main()
