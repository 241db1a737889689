#!/usr/bin/env bash
# End-to-end: one facility floods another tenant with RST-answered SYNs; the other tenants
# must not notice. Facility A sends 200,000 SYNs from every address of its /24 to closed ports
# of tenant B, whose kernel answers each with a RST, so that each one is an *answered* TCP flow
# to ixgw. Meanwhile, every second, B and C ping each other, each opens a new TCP connection
# to the other, and a line crosses a TCP connection B opened to C before the flood; none of
# these may fail, during the flood or in the 10 s after it.
# The flood must show up under its own drop reason (`facility_flow_quota`), never as
# `flow_table_full`, and the SYNs must really have reached B (B's kernel sent the RSTs).
#
#   fl-a  10.0.0.1/24 on wireguard-go fla-wg   ── veth 172.31.11.2 ↔ 172.31.11.1 ──┐
#         (all of 10.0.0.0/24 local: the flood's sources, where the RSTs end)       │
#   fl-c  10.0.0.3/24 on wireguard-go flc-wg   ── veth 172.31.13.2 ↔ 172.31.13.1 ──┤ fl-ix (ixgw)
#         (HTTP on 8080, echo on 8081)                                               │
#   fl-b  10.0.0.2/24 (HTTP on 8080, nothing   ── veth 10.0.0.2 ↔ 10.0.0.1 ────────┘ TUN flgw-b
#         on 20000-29999)
#
# B is a plain attachment so that no UDP socket of a userspace peer stands between ixgw and
# B's kernel: wireguard-go there overflows its socket at this rate and would lose probes for
# reasons of its own.
#
# Exchange space: a-net 100.64.1.0/24, b-net 100.64.2.0/24, c-net 100.64.3.0/24; all three
# tenants number their networks 10.0.0.0/24. Policies: a-net → b-net tcp/20000-29999 and icmp;
# b-net ↔ c-net tcp/8080 and icmp, b-net → c-net tcp/8081 too. Default `dataplane` limits
# (131072 flows). The flood comes from synflood.py beside this file.
# Usage: netns-tests/flood.sh [path/to/ixgw]   (root; needs wireguard-go wg jq ping python3
# nstat). FLOOD_RATE (SYNs/s, default 20000) paces the flood.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
IXGW=$(readlink -m "${1:-$here/../target/release/ixgw}")
cd "$here"
source ./lib.sh
netns_begin

need ip wireguard-go wg wg-quick jq ping python3 nstat timeout

METRICS=127.0.0.1:9478
IF_A=fla-wg IF_C=flc-wg
SYNS=200000
FLOOD_RATE=${FLOOD_RATE:-20000}
FLOOD_SECONDS=60       # bound on the flood's duration, whatever the rate achieved
AFTER=10               # seconds of probing after the flood
B_X=100.64.2.2 C_X=100.64.3.3

log "namespaces and underlay"
for ns in fl-ix fl-a fl-b fl-c; do netns_add $ns; done
extra_cleanup() { rm -f /var/run/wireguard/$IF_A.sock /var/run/wireguard/$IF_C.sock; }
for s in $IF_A $IF_C; do [[ -S /var/run/wireguard/$s.sock ]] && rm -f /var/run/wireguard/$s.sock; done
veth() { link_ns fl-ix "$1" "$2" "$3" "fx-$4" "fu-$4"; } # veth NS IX_ADDR NS_ADDR NAME
veth fl-a 172.31.11.1/30 172.31.11.2/30 a
veth fl-c 172.31.13.1/30 172.31.13.2/30 c
veth fl-b 10.0.0.1/24 10.0.0.2/24 b
ip -n fl-b route add default via 10.0.0.1

log "keys and configuration"
umask 077
for k in gw-a gw-c fl-fac-a fl-fac-c; do "$IXGW" genkey >"$T_TMP/$k.key"; done
pub() { "$IXGW" pubkey <"$T_TMP/$1.key"; }
cat >"$T_TMP/ixgw.yaml" <<YAML
ix:
  name: netns-flood
  exchange_space: 100.64.0.0/10
metrics:
  listen: $METRICS
tenants:
  - name: a-net
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.64.1.0/24 }
    attachments:
      - name: a-wg
        type: wireguard
        listen: 172.31.11.1:51830
        private_key_file: gw-a.key
        peers:
          - name: fl-fac-a
            facility: "4210000016"
            public_key: "$(pub fl-fac-a)"
            allowed_ips: [10.0.0.0/24]
            address: 10.0.0.1/24
            persistent_keepalive: 25s
  - name: b-net
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.64.2.0/24 }
    attachments:
      - name: b-lan
        type: plain
        tun: flgw-b
        routes: [10.0.0.0/24]
  - name: c-net
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.64.3.0/24 }
    attachments:
      - name: c-wg
        type: wireguard
        listen: 172.31.13.1:51832
        private_key_file: gw-c.key
        peers:
          - name: fl-fac-c
            facility: "4210000008"
            public_key: "$(pub fl-fac-c)"
            allowed_ips: [10.0.0.3/32]
            address: 10.0.0.3/24
            persistent_keepalive: 25s
policies:
  - name: a-to-b
    from: { tenant: a-net }
    to: { tenant: b-net }
    allow: [tcp/20000-29999, icmp]
  - name: b-to-c
    from: { tenant: b-net }
    to: { tenant: c-net }
    allow: [tcp/8080, tcp/8081, icmp]
  - name: c-to-b
    from: { tenant: c-net }
    to: { tenant: b-net }
    allow: [tcp/8080, icmp]
YAML
"$IXGW" check --config "$T_TMP/ixgw.yaml" || die "the test configuration does not validate"

log "ixgw in ns fl-ix"
start_ixgw fl-ix 9478

wg_facility fl-a $IF_A fl-fac-a
wg_facility fl-c $IF_C fl-fac-c
# The RSTs come back to every address of A's /24: make them all local to fl-a, so that its
# kernel swallows them (no socket, no answer) instead of forwarding them into the tunnel again.
ip -n fl-a route add local 10.0.0.0/24 dev lo

log "HTTP servers in B and C"
for who in b c; do mkdir -p "$T_TMP/www-$who"; echo "$who-ok" >"$T_TMP/www-$who/index.html"; done
start_bg fl-b "$T_TMP/http-b.log" python3 -m http.server 8080 --bind 10.0.0.2 --directory "$T_TMP/www-b"
start_bg fl-c "$T_TMP/http-c.log" python3 -m http.server 8080 --bind 10.0.0.3 --directory "$T_TMP/www-c"
start_bg fl-c "$T_TMP/echo-c.log" python3 -c '
import socketserver, sys
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)
socketserver.ThreadingTCPServer((sys.argv[1], int(sys.argv[2])), Echo).serve_forever()' 10.0.0.3 8081

# tcp_new NS HOST PORT WANT : a new TCP connection carrying an HTTP GET whose body has WANT,
# 3 s bound (a lost SYN is retransmitted once within it)
tcp_new() {
  ip netns exec "$1" timeout 3 bash -c 'exec 3<>/dev/tcp/$0/$1 || exit 1; printf "GET / HTTP/1.0\r\n\r\n" >&3; grep -q "$2" <&3' "$2" "$3" "$4"
}

log "before the flood"
check "ping A → B ($B_X)" wait_ping fl-a $B_X 20
check "ping B → C ($C_X)" wait_ping fl-b $C_X 20
check "ping C → B ($B_X)" wait_ping fl-c $B_X 20
sleep 0.5
check "B opens TCP to C's HTTP server" tcp_new fl-b $C_X 8080 c-ok
check "C opens TCP to B's HTTP server" tcp_new fl-c $B_X 8080 b-ok
refused() { # refused NS HOST PORT : a TCP connection attempt is answered with a RST
  local out
  out=$(ip netns exec "$1" timeout 3 bash -c 'exec 3<>/dev/tcp/$0/$1' "$2" "$3" 2>&1) && return 1
  [[ $out == *"Connection refused"* ]]
}
check "A's SYN to a closed port of B is answered with a RST" refused fl-a $B_X 20000

# probe_loop : every second until $T_TMP/stop appears (at most 150 rounds), B and C ping each
# other and each opens a new TCP connection to the other, all four at once and each bounded
# (a slow round does not delay the next); one line per probe
probe_loop() {
  local r t
  for (( r=0; r<150; r++ )); do
    [[ -e $T_TMP/stop ]] && break
    t=$(date +%s.%N)
    { ip netns exec fl-b ping -c1 -W2 $C_X >/dev/null 2>&1 && echo "$t ping-b-c ok" || echo "$t ping-b-c FAIL"; } &
    { ip netns exec fl-c ping -c1 -W2 $B_X >/dev/null 2>&1 && echo "$t ping-c-b ok" || echo "$t ping-c-b FAIL"; } &
    { tcp_new fl-b $C_X 8080 c-ok 2>/dev/null && echo "$t tcp-b-c ok" || echo "$t tcp-b-c FAIL"; } &
    { tcp_new fl-c $B_X 8080 b-ok 2>/dev/null && echo "$t tcp-c-b ok" || echo "$t tcp-c-b FAIL"; } &
    sleep 1
  done >>"$T_TMP/probes.log"
  wait
}

# held_conn HOST PORT OUT : one TCP connection, opened now and kept; every second until
# $T_TMP/stop appears (at most 150 rounds) a line goes through it and must come back within 2 s
held_conn() {
  local r t line
  exec 3<>"/dev/tcp/$1/$2" || { echo "$(date +%s.%N) held-b-c FAIL" >>"$3"; return 1; }
  for (( r=0; r<150; r++ )); do
    [[ -e $T_TMP/stop ]] && break
    t=$(date +%s.%N)
    echo "round $r" >&3
    if read -r -t 2 -u 3 line && [[ $line == "round $r" ]]; then echo "$t held-b-c ok"; else echo "$t held-b-c FAIL"; fi
    sleep 1
  done >>"$3"
}

# counters the flood is judged by
scrape() { http_get fl-ix 127.0.0.1 9478 /metrics; }
m() { metric fl-ix $METRICS "$@"; }
rsts() { ip netns exec fl-b nstat -asz TcpOutRsts | awk '$1 == "TcpOutRsts" { print $2 }'; }
quota0=$(m ixgw_drops_total 'reason="facility_flow_quota"')
full0=$(m ixgw_drops_total 'reason="flow_table_full"')
rx_a0=$(m ixgw_peer_rx_packets_total 'peer="fl-fac-a"')
tx_b0=$(m ixgw_tenant_tx_packets_total 'tenant="b-net"')
rst0=$(rsts)

log "probing B ↔ C every second; flooding B with $SYNS SYNs from A (paced at $FLOOD_RATE/s, at most ${FLOOD_SECONDS}s)"
probe_loop &
PROBE_PID=$!
T_PIDS+=("$PROBE_PID")
start_bg fl-b "$T_TMP/held.log" env T_TMP="$T_TMP" bash -c "$(declare -f held_conn); held_conn $C_X 8081 $T_TMP/probes.log"
HELD_PID=$BG_PID
sleep 3
f0=$(date +%s.%N)
ip netns exec fl-a timeout $(( FLOOD_SECONDS + 5 )) python3 "$here/synflood.py" \
  --src-prefix 10.0.0.0/24 --dst $B_X --ports 20000-29999 \
  --count $SYNS --rate "$FLOOD_RATE" --seconds $FLOOD_SECONDS >"$T_TMP/flood.json" || true
f1=$(date +%s.%N)
log "flood: $(cat "$T_TMP/flood.json"); fla-wg tx_dropped $(ip -n fl-a -j -s link show $IF_A | jq '.[0].stats64.tx.dropped')"
log "right after the flood: flows $(m ixgw_flows '')"
sleep $AFTER
touch "$T_TMP/stop"
wait "$PROBE_PID" || true
forget_pid "$PROBE_PID"
wait "$HELD_PID" || true
forget_pid "$HELD_PID"

log "the flood"
sent=$(jq '.sent // 0' "$T_TMP/flood.json" 2>/dev/null || echo 0)
check "A sent all $SYNS SYNs within ${FLOOD_SECONDS}s ($sent, $(jq '.rate' "$T_TMP/flood.json" 2>/dev/null)/s)" test "$sent" -eq $SYNS
rx_a=$(( $(m ixgw_peer_rx_packets_total 'peer="fl-fac-a"') - rx_a0 ))
tx_b=$(( $(m ixgw_tenant_tx_packets_total 'tenant="b-net"') - tx_b0 ))
rst=$(( $(rsts) - rst0 ))
quota=$(( $(m ixgw_drops_total 'reason="facility_flow_quota"') - quota0 ))
full=$(( $(m ixgw_drops_total 'reason="flow_table_full"') - full0 ))
log "ixgw took $rx_a packets from fl-fac-a and sent $tx_b to b-net; B's kernel sent $rst RSTs; facility_flow_quota +$quota; flow_table_full +$full"
# The SYNs reached B and were answered: RSTs by the thousand, most of what a facility's
# default quota (10 % of 131072 flows, 13107) holds at once.
check "B's kernel answered the SYNs it got with RSTs ($rst ≥ 10000)" test "$rst" -ge 10000
# Every SYN ixgw took from A went on to B or was dropped for A's quota (what ixgw sent to B
# also holds the probes from C, a few hundred packets).
check "every flood SYN ixgw took was sent on to B or dropped as facility_flow_quota ($tx_b + $quota ≥ $rx_a)" \
  test $(( tx_b + quota )) -ge "$rx_a"
# A facility's quota holds at most 10 % of the table; most of 200,000 SYNs must hit it.
check "the flood shows up as facility_flow_quota (+$quota ≥ 50000)" test "$quota" -ge 50000
check "no flow_table_full drop (+$full)" test "$full" -eq 0

log "B ↔ C during and after the flood"
awk -v f0="$f0" -v f1="$f1" '
  { phase = ($1 < f0) ? "before" : ($1 <= f1) ? "during" : "after"; n[phase]++
    if ($3 != "ok") { bad[phase]++; kinds[$2]++ } }
  END { for (p in n) printf "%s: %d probes, %d failed\n", p, n[p], bad[p]
        for (k in kinds) printf "failed %s: %d\n", k, kinds[k] }' "$T_TMP/probes.log" | sort >"$T_TMP/probes.sum"
while read -r line; do log "  $line"; done <"$T_TMP/probes.sum"
during=$(awk -v f0="$f0" -v f1="$f1" '$1 >= f0 && $1 <= f1' "$T_TMP/probes.log" | wc -l)
after=$(awk -v f1="$f1" '$1 > f1' "$T_TMP/probes.log" | wc -l)
failed=$(grep -c FAIL "$T_TMP/probes.log" || true)
check "probes ran during the flood ($during) and after it ($after)" test "$during" -ge 15 -a "$after" -ge $(( 5 * (AFTER - 2) ))
if (( failed == 0 )); then
  pass "no ping, new TCP connection or line over the held connection between B and C failed ($(wc -l <"$T_TMP/probes.log") probes)"
else
  fail "$failed of $(wc -l <"$T_TMP/probes.log") B ↔ C probes failed; the first: $(sort -n "$T_TMP/probes.log" |
    awk -v f0="$f0" '$3 != "ok" { printf "%s, %+.1f s from the start of the flood", $2, $1 - f0; exit }')"
fi

log "flows $(m ixgw_flows '') of $(m ixgw_flow_table_capacity ''); per tenant: $(scrape | awk '/^ixgw_tenant_flows\{/ { s = s $0 " " } END { print (s == "" ? "(ixgw_tenant_flows not exported)" : s) }')"
log "drops by reason: $(scrape | awk '/^ixgw_drops_total/ && $2 > 0 { printf "%s ", $0 }')"
check "ixgw is still running" kill -0 $IXGW_PID

finish 20 "$T_TMP/ixgw.log"
