#!/usr/bin/env bash
# Two ixgw instances peer over IPsec with raw ESP (IP protocol 50, no NAT, no UDP
# encapsulation): IX A initiates with a pre-shared key, IX B responds. Each has a LAN behind a
# plain (TUN) attachment numbered 10.0.0.0/24 — the same on both sides.
#
#   rw-a: ixgw A, LAN host 10.0.0.1 (lo), TUN rwa0 ── veth 10.251.0.1 ↔ 10.251.0.2 ── rw-b: ixgw B, LAN host 10.0.0.5 (lo), TUN rwb0
#
# IX A: lan-a 10.0.0.0/24 ↔ 100.64.0.0/24; site-b (B's exchange prefix 100.81.0.0/24 as its
# internal numbering) ↔ 100.65.0.0/24 over IPsec. IX B: lan-b 10.0.0.0/24 ↔ 100.81.0.0/24;
# site-a (100.64.0.0/24) ↔ 100.80.0.0/24 over IPsec. A ping from A's 10.0.0.1 to 100.65.0.5
# reaches B's 10.0.0.5 from 100.80.0.1.
# Usage: netns-tests/ipsec-raw.sh [path/to/ixgw]   (root; needs ping tcpdump)
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
IXGW=$(readlink -m "${1:-$here/../target/release/ixgw}")
cd "$here"
source ./lib.sh
netns_begin

need ip ping tcpdump timeout

log "namespaces and underlay"
for ns in rw-a rw-b; do netns_add $ns; done
ip link add rw-va netns rw-a type veth peer name rw-vb netns rw-b
ip -n rw-a addr add 10.251.0.1/30 dev rw-va && ip -n rw-a link set rw-va up
ip -n rw-b addr add 10.251.0.2/30 dev rw-vb && ip -n rw-b link set rw-vb up
ip -n rw-a addr add 10.0.0.1/32 dev lo
ip -n rw-b addr add 10.0.0.5/32 dev lo
wait_ping rw-a 10.251.0.2 || die "underlay"

printf 'raw esp between two ixgw instances\n' >"$T_TMP/psk"
# ipsec_ix NAME LISTEN LAN_X SITE_NAME SITE_INTERNAL SITE_X PEER PEER_FACILITY START
ipsec_ix() {
  cat >"$T_TMP/$1.yaml" <<EOC
ix:
  name: $1
  exchange_space: 100.64.0.0/10
metrics:
  listen: 127.0.0.1:9479
tenants:
  - name: lan
    networks:
      - { internal: 10.0.0.0/24, exchange: $3 }
    attachments:
      - name: lan
        type: plain
        tun: $1-lan
        routes: [10.0.0.0/24]
  - name: $4
    networks:
      - { internal: $5, exchange: $6 }
    attachments:
      - name: $4-ipsec
        type: ipsec
        listen: $2
        raw_esp: true
        local_id: $1.example
        peers:
          - name: $7
            facility: "$8"
            remote_id: $7.example
            auth: psk
            psk_file: psk
            remote_ts: [$5]
$9
policies:
  - { name: out, from: { tenant: lan }, to: { tenant: $4 }, allow: [icmp] }
  - { name: in, from: { tenant: $4 }, to: { tenant: lan }, allow: [icmp] }
EOC
}
ipsec_ix rwa 10.251.0.1 100.64.0.0/24 site-b 100.81.0.0/24 100.65.0.0/24 rwb 4212345674 \
  "            start: initiate
            endpoint: 10.251.0.2"
ipsec_ix rwb 10.251.0.2 100.81.0.0/24 site-a 100.64.0.0/24 100.80.0.0/24 rwa 3211234566 ""

log "tcpdump of ESP on the underlay"
start_bg rw-b "$T_TMP/tcpdump.log" tcpdump -n -U -i rw-vb -w "$T_TMP/esp.pcap" 'ip proto 50 or udp port 4500'
TCPDUMP_PID=$BG_PID
sleep 0.5
log "ixgw B responds, ixgw A initiates"
start_ixgw rw-b 9479 rwb
PID_B=$IXGW_PID
start_ixgw rw-a 9479 rwa
PID_A=$IXGW_PID

up() { [[ $(metric "$1" 127.0.0.1:9479 ixgw_peers_up "") == 1 ]]; }
for (( i=0; i<50; i++ )); do up rw-a && up rw-b && break; sleep 0.2; done
check "IX A's peer is up" up rw-a
check "IX B's peer is up" up rw-b

ping_from() { # ping_from NS SRC DST : one answered ping within 10 tries
  local i
  for (( i=0; i<10; i++ )); do
    ip netns exec "$1" ping -c1 -W1 -I "$2" "$3" >/dev/null 2>&1 && return 0
    sleep 0.3
  done
  return 1
}
check "A's LAN 10.0.0.1 pings B's LAN 10.0.0.5 as 100.65.0.5" ping_from rw-a 10.0.0.1 100.65.0.5
check "B's LAN 10.0.0.5 pings A's LAN 10.0.0.1 as 100.80.0.1" ping_from rw-b 10.0.0.5 100.80.0.1
ip netns exec rw-a ping -c 20 -i 0.05 -I 10.0.0.1 100.65.0.5 >"$T_TMP/ping.log" 2>&1 || true
received=$(awk '/packets transmitted/ {print $4}' "$T_TMP/ping.log")
check "20 pings, ${received:-0} answered" test "${received:-0}" -ge 19

sleep 1  # let tcpdump read what the kernel still holds for it
kill -INT "$TCPDUMP_PID" 2>/dev/null || true
wait "$TCPDUMP_PID" 2>/dev/null || true
forget_pid "$TCPDUMP_PID"
esp_ab=$(tcpdump -n -r "$T_TMP/esp.pcap" 'ip proto 50 and src 10.251.0.1' 2>/dev/null | wc -l)
esp_ba=$(tcpdump -n -r "$T_TMP/esp.pcap" 'ip proto 50 and src 10.251.0.2' 2>/dev/null | wc -l)
esp_in_udp=$(tcpdump -n -r "$T_TMP/esp.pcap" 'udp port 4500 and udp[8:4] != 0' 2>/dev/null | wc -l)
# 20 pings and the two single ones, each way.
check "ESP from A to B as IP protocol 50 ($esp_ab packets)" test "$esp_ab" -ge 22
check "ESP from B to A as IP protocol 50 ($esp_ba packets)" test "$esp_ba" -ge 22
check "no ESP in UDP without a NAT ($esp_in_udp packets)" test "$esp_in_udp" -eq 0
for ns in rw-a rw-b; do
  for r in esp_unknown_spi esp_replay esp_integrity esp_malformed; do
    n=$(metric $ns 127.0.0.1:9479 ixgw_drops_total "reason=\"$r\"")
    check "$ns: no $r drops ($n)" test "$n" -eq 0
  done
done

log "SIGTERM: both exit 0, A's delete reaches B"
kill -TERM "$PID_A"; rc=0; wait "$PID_A" || rc=$?
forget_pid "$PID_A"
check "ixgw A exited 0 (rc=$rc)" test "$rc" -eq 0
down() { ! up "$1"; }
for (( i=0; i<25; i++ )); do down rw-b && break; sleep 0.2; done
check "B's peer is down after A's INFORMATIONAL delete" down rw-b
kill -TERM "$PID_B"; rc=0; wait "$PID_B" || rc=$?
forget_pid "$PID_B"
check "ixgw B exited 0 (rc=$rc)" test "$rc" -eq 0

finish 40 "$T_TMP/rwa.log" "$T_TMP/rwb.log"
