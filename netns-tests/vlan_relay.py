#!/usr/bin/env python3
"""A carrier's VLAN tagging, done by the test itself: this kernel has neither the 8021q
module nor bridge VLAN filtering. Between a trunk-side interface and an access-side one:
frames from ACCESS get an 802.1Q tag VLAN and leave on TRUNK; frames from TRUNK that carried
tag VLAN leave untagged on ACCESS; everything else from TRUNK is counted and dropped.

Linux takes a received tag out of the frame before a packet socket sees it; PACKET_AUXDATA
gives it back (tp_vlan_tci, with TP_STATUS_VLAN_VALID).

Usage: vlan_relay.py TRUNK ACCESS VLAN SECONDS   (run inside the namespace that holds both)
Prints one line of counts when SECONDS are over or on SIGTERM.
"""
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10

trunk_if, access_if, vlan, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
counts = {"to_trunk": 0, "from_trunk": 0, "from_trunk_untagged": 0, "from_trunk_other_vlan": 0}


def sock(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    return s


def report(*_):
    print(" ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, report)
trunk, access = sock(trunk_if), sock(access_if)
end = time.monotonic() + seconds
while time.monotonic() < end:
    ready, _, _ = select.select([trunk, access], [], [], 0.2)
    for s in ready:
        data, anc, _flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(32))
        if addr[2] == PACKET_OUTGOING:
            continue  # what this relay itself sent
        tci = None
        for level, kind, value in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= 20:
                status, _len, _snap, _mac, _net, vtci = struct.unpack("IIIHHH", value[:18])
                if status & TP_STATUS_VLAN_VALID:
                    tci = vtci
        if s is access:
            tag = struct.pack("!HH", 0x8100, vlan)
            trunk.send(data[:12] + tag + data[12:])
            counts["to_trunk"] += 1
        elif tci is None:
            counts["from_trunk_untagged"] += 1
        elif tci & 0x0FFF != vlan:
            counts["from_trunk_other_vlan"] += 1
        else:
            access.send(data)
            counts["from_trunk"] += 1
report()
