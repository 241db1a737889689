#!/usr/bin/env bash
# End-to-end through two plain attachments, TUN device to TUN device: bytes arrive intact both
# ways (sha256 of 32 MiB each way), iperf3 TCP throughput with ixgw's CPU time per GB, and
# iperf3 UDP: a paced run that must arrive (loss at most TUN_UDP_LOSS %) in writes of several
# datagrams each where the device has USO, and an unpaced one for its throughput.
#
#   tn-x  192.168.10.2/24 ── veth 192.168.10.2 ↔ .1 ── TUN tngw-x ┐
#                                                                  ├ tn-ix (ixgw)
#   tn-y  192.168.20.2/24 ── veth 192.168.20.2 ↔ .1 ── TUN tngw-y ┘
#
# Exchange space: x-net 100.64.0.0/24, y-net 100.65.0.0/24; x-net may open tcp/5201, udp/5201,
# tcp/9000, tcp/8080 and icmp to y-net. The kernel of tn-ix routes each tenant's exchange
# prefix into the other's TUN device and forwards between the veths and the TUN devices; with
# offloads it hands ixgw TSO super-packets and takes coalesced ones (TCP, and UDP with USO).
# Usage: netns-tests/tun.sh [path/to/ixgw]   (root; needs iperf3 jq python3 ethtool ping)
# TUN_SECONDS (default 5) is the length of each iperf3 run; TUN_UDP_RATE (default 500M) the
# paced UDP run's offered rate, TUN_UDP_LOSS (default 1) the loss in % it may have.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
IXGW=$(readlink -m "${1:-$here/../target/release/ixgw}")
cd "$here"
source ./lib.sh
netns_begin

need ip iperf3 jq python3 ethtool ping timeout

METRICS=127.0.0.1:9481
RUN=${TUN_SECONDS:-5}
UDP_RATE=${TUN_UDP_RATE:-500M}
UDP_LOSS_OK=${TUN_UDP_LOSS:-1}
Y_X=100.65.0.2

log "namespaces and underlay"
for ns in tn-ix tn-x tn-y; do netns_add $ns; done
link_ns tn-ix tn-x 192.168.10.1/24 192.168.10.2/24 tx-x tu-x
link_ns tn-ix tn-y 192.168.20.1/24 192.168.20.2/24 tx-y tu-y
ip -n tn-x route add default via 192.168.10.1
ip -n tn-y route add default via 192.168.20.1

cat >"$T_TMP/ixgw.yaml" <<YAML
ix:
  name: netns-tun
  exchange_space: 100.64.0.0/10
metrics:
  listen: $METRICS
tenants:
  - name: x-net
    networks:
      - { internal: 192.168.10.0/24, exchange: 100.64.0.0/24 }
    attachments:
      - name: x-lan
        type: plain
        tun: tngw-x
        routes: [192.168.10.0/24]
        kernel_routes: [100.65.0.0/24]
  - name: y-net
    networks:
      - { internal: 192.168.20.0/24, exchange: 100.65.0.0/24 }
    attachments:
      - name: y-lan
        type: plain
        tun: tngw-y
        routes: [192.168.20.0/24]
        kernel_routes: [100.64.0.0/24]
policies:
  - name: x-to-y
    from: { tenant: x-net }
    to: { tenant: y-net }
    allow: [tcp/5201, udp/5201, tcp/8080, tcp/9000, icmp]
YAML
"$IXGW" check --config "$T_TMP/ixgw.yaml" || die "the test configuration does not validate"

log "ixgw in ns tn-ix"
start_ixgw tn-ix 9481
for d in tngw-x tngw-y; do
  log "$d: $(ip netns exec tn-ix ethtool -k $d | awk -F': ' '/^(tx-checksumming|tcp-segmentation-offload|tx-udp-segmentation):/ { printf "%s %s; ", $1, $2 }')"
done
check "ping x → y ($Y_X)" wait_ping tn-x $Y_X 20

log "32 MiB each way, compared by sha256"
head -c $((32 << 20)) /dev/urandom >"$T_TMP/blob"
want=$(sha256sum "$T_TMP/blob" | cut -d' ' -f1)
# x → y: a socket's sendfile into a receiver that hashes what it reads.
start_bg tn-y "$T_TMP/recv.out" timeout 60 python3 -c '
import hashlib, socket
s = socket.create_server(("192.168.20.2", 9000)); c, _ = s.accept(); h = hashlib.sha256()
for b in iter(lambda: c.recv(1 << 16), b""): h.update(b)
print(h.hexdigest())'
rpid=$BG_PID; sleep 0.5
ip netns exec tn-x timeout 60 python3 -c '
import socket, sys
s = socket.create_connection(("'$Y_X'", 9000)); s.sendfile(open(sys.argv[1], "rb")); s.close()' "$T_TMP/blob" \
  || fail "sending the blob x → y"
wait "$rpid" || true; forget_pid "$rpid"
check "x → y: the receiver's sha256 is the blob's" test "$(cat "$T_TMP/recv.out")" = "$want"
# y → x: x fetches it from an HTTP server in y.
start_bg tn-y "$T_TMP/http.log" python3 -m http.server 8080 --bind 192.168.20.2 --directory "$T_TMP"
sleep 0.5
got=$(ip netns exec tn-x timeout 60 python3 -c '
import hashlib, urllib.request
print(hashlib.sha256(urllib.request.urlopen("http://'$Y_X':8080/blob").read()).hexdigest())' || true)
check "y → x: the sha256 of what x fetched is the blob's" test "$got" = "$want"

ticks() { awk '{ print $14 + $15 }' "/proc/$IXGW_PID/stat"; }
HZ=$(getconf CLK_TCK)
ROWS=()
# iperf_tcp LABEL ARGS... : one iperf3 run from x to y's exchange address, recorded in ROWS
iperf_tcp() {
  local label=$1; shift
  start_bg tn-y "$T_TMP/iperf3-s.log" iperf3 -s -1 -B 192.168.20.2 -p 5201
  local spid=$BG_PID; sleep 0.5
  local t0; t0=$(ticks)
  if ip netns exec tn-x timeout $((RUN + 20)) iperf3 -J -c $Y_X -p 5201 -t "$RUN" "$@" >"$T_TMP/iperf.json" 2>&1; then
    local t1 bps bytes rtx cpu
    t1=$(ticks)
    bps=$(jq '.end.sum_received.bits_per_second' "$T_TMP/iperf.json")
    bytes=$(jq '.end.sum_received.bytes' "$T_TMP/iperf.json")
    rtx=$(jq '.end.sum_sent.retransmits' "$T_TMP/iperf.json")
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
    ROWS+=("$(awk -v l="$label" -v b="$bps" -v n="$bytes" -v r="$rtx" -v c="$cpu" \
      'BEGIN { printf "| %s | %.0f | %d | %s | %.2f |", l, b / 1e6, r, c, c / (n / 1e9) }')")
    pass "iperf3 $label: $(awk -v b="$bps" 'BEGIN { printf "%.0f", b / 1e6 }') Mbit/s, $rtx retransmits"
  else
    cat "$T_TMP/iperf.json" >&2; fail "iperf3 $label"
  fi
  wait "$spid" 2>/dev/null || true; forget_pid "$spid"
}

log "iperf3 TCP, $RUN s each (load average $(cut -d' ' -f1-3 /proc/loadavg))"
iperf_tcp "x → y, 1 stream"
iperf_tcp "x → y, 4 streams" -P 4
iperf_tcp "y → x, 1 stream" -R

# The kernel counts a super-packet once: packets ixgw moved against the reads and writes.
skbs() { ip -n tn-ix -j -s link show "$1" | jq ".[0].stats64.$2.packets"; }
feature() { ip netns exec tn-ix ethtool -k "$1" | awk -F': ' -v f="$2" '$1 == f { print $2 }'; }

UROWS=()
# Packets tngw-x could not queue for ixgw (it read too slowly); UDP datagrams tn-y's sockets
# had no room for.
queue_drops() { ip -n tn-ix -j -s link show tngw-x | jq '.[0].stats64.tx.dropped'; }
rcvbuf_errors() { ip netns exec tn-y awk '/^Udp:/ { if (n++) print $6 }' /proc/net/snmp; }
# iperf_udp LABEL RATE ARGS... : one iperf3 UDP run from x to y's exchange address offered at
# RATE, recorded in UROWS; sets U_LOSS (% of the datagrams sent that did not arrive: the
# receiver's count against the sender's, not iperf3's lost_percent, which misses datagrams
# after the last that arrived) and U_PER_WRITE (packets to y-net per write into tngw-y)
iperf_udp() {
  local label=$1 rate=$2; shift 2
  U_LOSS=100 U_PER_WRITE=0
  start_bg tn-y "$T_TMP/iperf3-s.log" iperf3 -s -1 -B 192.168.20.2 -p 5201
  local spid=$BG_PID; sleep 0.5
  local t0 p0 w0 q0 b0; t0=$(ticks) q0=$(queue_drops) b0=$(rcvbuf_errors)
  p0=$(metric tn-ix $METRICS ixgw_tenant_tx_packets_total 'tenant="y-net"'); w0=$(skbs tngw-y rx)
  if ip netns exec tn-x timeout $((RUN + 20)) iperf3 -J -u -c $Y_X -p 5201 -t "$RUN" -b "$rate" -w 4M "$@" >"$T_TMP/udp.json" 2>&1; then
    local t1 p1 w1 loss sent rcv bytes cpu
    t1=$(ticks)
    p1=$(metric tn-ix $METRICS ixgw_tenant_tx_packets_total 'tenant="y-net"'); w1=$(skbs tngw-y rx)
    read -r loss sent rcv bytes < <(jq -r '.end.sum_sent as $s | (.end.sum_received // .end.sum) as $r |
      ($r.packets - $r.lost_packets) as $got | (if $s.packets > 0 then 100 * (1 - $got / $s.packets) else 100 end) as $l |
      [ (if $l < 0 then 0 else $l end * 100 | round / 100), ($s.bits_per_second / 1e6 | round),
        ($r.bytes * 8 / $s.seconds / 1e6 | round), $r.bytes ] | @tsv' "$T_TMP/udp.json")
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
    U_LOSS=$loss
    U_PER_WRITE=$(awk -v p=$((p1 - p0)) -v w=$((w1 - w0)) 'BEGIN { printf "%.1f", (w > 0 ? p / w : 0) }')
    UROWS+=("$(awk -v l="$label" -v s="$sent" -v r="$rcv" -v x="$loss" -v c="$cpu" -v n="$bytes" -v w="$U_PER_WRITE" \
      'BEGIN { printf "| %s | %d | %d | %s | %.2f | %.2f | %s |", l, s, r, x, c, (n > 0 ? c / (n / 1e9) : 0), w }')")
    pass "iperf3 UDP $label: $(jq .start.test_start.blksize "$T_TMP/udp.json")-byte datagrams, sent $sent Mbit/s, received $rcv Mbit/s, $loss % lost, $U_PER_WRITE packets per write"
    log "  lost where: $(($(queue_drops) - q0)) not queued to ixgw by tngw-x, $(($(rcvbuf_errors) - b0)) by tn-y's socket buffers"
  else
    cat "$T_TMP/udp.json" >&2; fail "iperf3 UDP $label"
  fi
  wait "$spid" 2>/dev/null || true; forget_pid "$spid"
}

log "iperf3 UDP, $RUN s each (load average $(cut -d' ' -f1-3 /proc/loadavg))"
iperf_udp "x → y, paced at $UDP_RATE" "$UDP_RATE"
check "UDP paced at $UDP_RATE: at most $UDP_LOSS_OK % lost ($U_LOSS %)" \
  awk -v l="$U_LOSS" -v m="$UDP_LOSS_OK" 'BEGIN { exit !(l <= m) }'
if [[ $(feature tngw-y tx-udp-segmentation) == on ]]; then
  check "with USO, a write into tngw-y carries several datagrams on average ($U_PER_WRITE)" \
    awk -v w="$U_PER_WRITE" 'BEGIN { exit !(w > 2) }'
fi
iperf_udp "x → y, unpaced" 0
sent=$(metric tn-ix $METRICS ixgw_tenant_tx_packets_total 'tenant="y-net"'); writes=$(skbs tngw-y rx)
taken=$(metric tn-ix $METRICS ixgw_tenant_rx_packets_total 'tenant="x-net"'); reads=$(skbs tngw-x tx)
log "tngw-y: $sent packets to y-net in $writes writes; tngw-x: $taken packets from x-net in $reads reads"
if [[ $(ip netns exec tn-ix ethtool -k tngw-y | awk -F': ' '/^tcp-segmentation-offload:/ { print $2 }') == on ]]; then
  check "with offloads, a write carries several packets on average" test "$sent" -gt $((2 * writes))
  check "with offloads, a read returns several packets on average" test "$taken" -gt $((2 * reads))
fi

log "drops: $(http_get tn-ix 127.0.0.1 9481 /metrics | awk '/^ixgw_drops_total/ && $2 > 0 { printf "%s ", $0 }')"
for reason in oversized send_failed malformed; do
  n=$(metric tn-ix $METRICS ixgw_drops_total "reason=\"$reason\"")
  check "no $reason drops ($n)" test "$n" -eq 0
done

log "results (load average now $(cut -d' ' -f1-3 /proc/loadavg)):"
{ echo "| run | Mbit/s | retransmits | ixgw CPU s | CPU s per GB |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "| UDP run | sent Mbit/s | received Mbit/s | lost % | ixgw CPU s | CPU s per GB received | packets per write |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${UROWS[@]}"; } >&2

log "SIGTERM"
kill -TERM $IXGW_PID
rc=0; wait $IXGW_PID || rc=$?
forget_pid $IXGW_PID
check "ixgw exited 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0

finish 50 "$T_TMP/ixgw.log"
