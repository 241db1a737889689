#!/usr/bin/env python3
"""Decrypt a capture.sh run (cstp.pcap + tls-keys.log, TLS 1.3 key log written by GnuTLS for
openconnect) with tshark, one TLS application-data record at a time, and write:
  auth-request.http / auth-response.http        TCP stream 0 (the XML POST and its reply)
  connect-request.http / connect-response.http  TCP stream 1 up to the blank line
  cstp-client-to-server.bin / cstp-server-to-client.bin   the rest of stream 1 (CSTP frames)
  frames.txt                                    every CSTP frame annotated, in time order
Usage: extract.py RUN_DIR (reads and writes in RUN_DIR)."""
import subprocess, sys, os, re, struct
run = sys.argv[1]
CLIENT = '10.250.40.2'
txt = subprocess.run(['tshark', '-r', f'{run}/cstp.pcap', '-o', f'tls.keylog_file:{run}/tls-keys.log',
                      '-Y', 'tls.record.content_type==23', '-T', 'fields', '-e', 'frame.number',
                      '-e', 'frame.time_relative', '-e', 'tcp.stream', '-e', 'ip.src'],
                     capture_output=True, text=True, check=True).stdout
meta = {int(l.split('\t')[0]): l.split('\t') for l in txt.splitlines()}
hexd = subprocess.run(['tshark', '-r', f'{run}/cstp.pcap', '-o', f'tls.keylog_file:{run}/tls-keys.log',
                       '-Y', 'tls.record.content_type==23', '-P', '-x'],
                      capture_output=True, text=True, check=True).stdout
records = []  # (frame, time, stream, dir, bytes)
cur = None; blk = None
for line in hexd.splitlines():
    m = re.match(r'^\s*(\d+)\s+\d+\.\d+\s', line)
    if m and not re.match(r'^[0-9a-f]{4}  ', line):
        cur = int(m.group(1)); blk = None; continue
    m = re.match(r'^Decrypted TLS \((\d+) bytes\):', line)
    if m:
        blk = bytearray(); n = int(m.group(1))
        f = meta[cur]; records.append([cur, float(f[1]), int(f[2]), 'c->s' if f[3] == CLIENT else 's->c', blk, n]); continue
    if re.match(r'^[0-9a-f]{4}  ', line):
        if blk is not None: blk += bytes.fromhex(line[6:6 + 16 * 3 - 1].replace(' ', ''))  # hex columns, not the ASCII
        continue
    if re.match(r'^\S.*:$', line) or not line.strip():
        blk = None; continue
for r in records: assert len(r[4]) == r[5], r[:4]
def stream(s, d): return [r for r in records if r[2] == s and r[3] == d]
def w(name, data):
    with open(os.path.join(run, name), 'wb') as f: f.write(data)
def split_http(buf):
    i = buf.index(b'\r\n\r\n') + 4
    cl = [l for l in buf[:i].split(b'\r\n') if l.lower().startswith(b'content-length:')]
    n = int(cl[0].split(b':')[1]) if cl else 0
    return bytes(buf[:i + n]), bytes(buf[i + n:])
assert sorted({r[2] for r in records}) == [0, 1]
for name, d in (('auth-request.http', 'c->s'), ('auth-response.http', 's->c')):
    msg, rest = split_http(b''.join(r[4] for r in stream(0, d))); assert not rest; w(name, msg)
NAMES = {0: 'DATA', 3: 'DPD_REQ', 4: 'DPD_RESP', 5: 'DISCONNECT', 7: 'KEEPALIVE', 8: 'COMPRESSED', 9: 'TERMINATE'}
def describe(t, p):
    if t == 0 and p and p[0] >> 4 == 4:
        s = '.'.join(map(str, p[12:16])); d = '.'.join(map(str, p[16:20]))
        return f'IPv4 {s} -> {d} ' + (f'ICMP type {p[20]}' if p[9] == 1 else f'proto {p[9]}') + f', {len(p)} bytes'
    if t == 0 and p and p[0] >> 4 == 6:
        icmp = p[40] if p[6] == 58 else p[48] if p[6] == 0 else None
        kind = {133: 'router solicitation', 143: 'MLDv2 report'}.get(icmp, '?')
        return f'IPv6 link-local -> ff02::, ICMPv6 type {icmp} ({kind}), {len(p)} bytes'
    if t == 5: return f'reason byte 0x{p[0]:02x}, text {p[1:].decode()!r}'
    return f'{len(p)} bytes' if p else ''
rows = []
for d, fname, hname in (('c->s', 'cstp-client-to-server.bin', 'connect-request.http'),
                        ('s->c', 'cstp-server-to-client.bin', 'connect-response.http')):
    recs = stream(1, d)
    head, rest = split_http(recs[0][4]); assert not rest, 'headers and a frame in one record'
    w(hname, head)
    body = b''
    for r in recs[1:]:
        b = bytes(r[4]); off = len(body); body += b
        assert b[:4] == b'STF\x01' and b[7] == 0, (run, r[0])
        n = struct.unpack('>H', b[4:6])[0]
        assert len(b) == 8 + n, f'record {r[0]} is not exactly one CSTP frame'
        rows.append((r[1], r[0], d, off, b[:8], b[8:]))
    w(fname, body)
rows.sort()
out = [f'# {os.path.basename(run.rstrip("/"))}: every CSTP frame, in time order, decrypted from cstp.pcap with tls-keys.log.',
       '# time = seconds from the first packet of cstp.pcap; pcap = packet number there (each TLS record',
       '# carried exactly one CSTP frame); off = byte offset in cstp-client-to-server.bin (c->s) or',
       '# cstp-server-to-client.bin (s->c); hdr = the 8-byte header: "STF" 01, u16 BE payload length, type, 00.',
       f'{"time":>8} {"pcap":>4} dir  {"off":>4}  {"hdr":16}  {"type":<11} payload']
for t, fn, d, off, h, p in rows:
    out.append(f'{t:8.3f} {fn:4d} {d} {off:4d}  {h.hex()}  {NAMES.get(h[6], "?"):<11} {describe(h[6], p)}'.rstrip())
w('frames.txt', ('\n'.join(out) + '\n').encode())
