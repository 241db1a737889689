#!/usr/bin/env bash
# End-to-end: two carrier IP-VPN tenants that both number themselves 10.0.0.0/24, each handed
# over on an Ethernet port that ixgw owns (`ethernet` attachments: AF_PACKET, ARP of its own),
# one of them on VLAN 200, and a WireGuard facility of a third tenant with the same numbers.
#
#   car-a  10.0.0.2/24 ── veth up-a ↔ ix-ca (untagged) ────────────────────────┐
#   car-b  10.0.0.2/24 ── veth up-b ↔ rl-c ─ relay (VLAN 200) ─ rl-ix ↔ ix-cb ──┤ ix (ixgw)
#   fac-w  10.0.0.2/24 on wireguard-go ── veth 172.31.9.2 ↔ 172.31.9.1 ──────────┘
#
# Exchange space: carrier-a 100.64.0.0/24, carrier-b 100.65.0.0/24, wg-net 100.66.0.0/24.
# The kernel here has no 8021q module and no bridge VLAN filtering: vlan_relay.py tags and
# untags on the carrier's side. carrier-b arrives by SIGHUP while UDP runs between the others.
# Usage: netns-tests/carrier.sh [path/to/ixgw]   (root; needs wireguard-go wg iperf3 python3)
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
IXGW=$(readlink -m "${1:-$here/../target/release/ixgw}")
cd "$here"
source ./lib.sh
netns_begin

need ip wireguard-go wg wg-quick iperf3 jq ping python3 timeout ethtool

METRICS=127.0.0.1:9477
IF_W=ixw-wg
MAC_A=02:00:5e:00:53:0a
log "namespaces and links"
for ns in ix car-a car-b relay fac-w; do netns_add $ns; done
extra_cleanup() { rm -f /var/run/wireguard/$IF_W.sock; }
[[ -S /var/run/wireguard/$IF_W.sock ]] && rm -f /var/run/wireguard/$IF_W.sock
# Ports without addresses: ixgw owns them.
ip link add ix-ca netns ix type veth peer name up-a netns car-a
ip link add ix-cb netns ix type veth peer name rl-ix netns relay
ip link add rl-c netns relay type veth peer name up-b netns car-b
for ns_if in car-a:up-a car-b:up-b; do
  ns=${ns_if%:*} ifn=${ns_if#*:}
  ip -n "$ns" addr add 10.0.0.2/24 dev "$ifn"
  ip -n "$ns" link set "$ifn" up
  ip -n "$ns" route add default via 10.0.0.1
done
for ifn in rl-ix rl-c; do
  ip netns exec relay sysctl -qw "net.ipv6.conf.$ifn.disable_ipv6=1"
  ip -n relay link set "$ifn" up
done
# A carrier's router sends whole frames of its MTU with their checksums: a veth would hand a
# packet socket at its far end 64 KiB super-frames (segmentation offload) and TCP/UDP
# checksums left for the "hardware" to fill in (checksum offload). Both off on the carrier side.
for ns_if in car-a:up-a car-b:up-b relay:rl-ix relay:rl-c; do
  ip netns exec "${ns_if%:*}" ethtool -K "${ns_if#*:}" tx off tso off gso off gro off >/dev/null \
    || die "ethtool -K ${ns_if#*:} in ${ns_if%:*}"
done
link_ns ix fac-w 172.31.9.1/30 172.31.9.2/30 ix-w up-w

log "keys"
umask 077
for k in gw-w fac-w; do "$IXGW" genkey >"$T_TMP/$k.key"; done
pub() { "$IXGW" pubkey <"$T_TMP/$1.key"; }

write_config() { # write_config WITH_CARRIER_B
  cat >"$T_TMP/ixgw.yaml" <<YAML
ix:
  name: carrier-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: $METRICS
  admin_socket: $T_TMP/ixgw.sock
tenants:
  - name: carrier-a
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.64.0.0/24 }
    attachments:
      - name: carrier-a-port
        type: ethernet
        interface: ix-ca
        address: 10.0.0.1/24
        mac: $MAC_A
$(if [[ $1 == 1 ]]; then cat <<MORE
  - name: carrier-b
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.65.0.0/24 }
    attachments:
      - name: carrier-b-vlan
        type: ethernet
        interface: ix-cb
        vlan: 200
        address: 10.0.0.1/24
MORE
fi)
  - name: wg-net
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.66.0.0/24 }
    attachments:
      - name: wg-net-wg
        type: wireguard
        listen: 172.31.9.1:51820
        private_key_file: gw-w.key
        peers:
          - name: fac-w
            facility: "4212345674"
            public_key: "$(pub fac-w)"
            allowed_ips: [10.0.0.2/32]
            address: 10.0.0.2/24
            persistent_keepalive: 25s
policies:
  - name: carriers-and-facility
    from: { tenant: [carrier-a, wg-net$( [[ $1 == 1 ]] && echo ", carrier-b")] }
    to: { tenant: [carrier-a, wg-net$( [[ $1 == 1 ]] && echo ", carrier-b")] }
    allow: [icmp, tcp/5201, udp/5201]
YAML
}
write_config 0
"$IXGW" check --config "$T_TMP/ixgw.yaml" || die "the test configuration does not validate"

log "ixgw in ns ix"
start_ixgw ix 9477
wg_facility fac-w $IF_W fac-w

log "carrier A and the WireGuard facility, both 10.0.0.2, through exchange addresses"
check "ping car-a → fac-w (100.66.0.2)" wait_ping car-a 100.66.0.2 20
check "ping fac-w → car-a (100.64.0.2)" wait_ping fac-w 100.64.0.2 10
neigh=$(ip -n car-a neigh show 10.0.0.1)
[[ $neigh == *"lladdr $MAC_A"* ]] && pass "ixgw answered ARP for 10.0.0.1 with its MAC ($neigh)" \
  || fail "car-a's neighbour entry for 10.0.0.1: '$neigh'"

log "reload adding carrier B while UDP runs fac-w → car-a"
udp_during car-a 10.0.0.2 fac-w 100.64.0.2 20M 1200 -- reload_with 1
[[ $UDP_SENT -gt 1000 && $UDP_LOST == 0 ]] && pass "no UDP packet lost across the reload ($UDP_SENT sent)" \
  || fail "UDP across the reload: $UDP_LOST of $UDP_SENT lost"
grep -q 'reload' "$T_TMP/ixgw.log" && grep -q 'carrier-b-vlan' "$T_TMP/ixgw.log" \
  || fail "the reload is logged with the new attachment"

log "carrier B on VLAN 200 through the test's relay"
wg_configure fac-w $IF_W fac-w # its policies now reach carrier B's exchange prefix too
grep -q '^AllowedIPs = .*100.65.0.0/24' "$T_TMP/$IF_W.conf" || fail "peer-config gives fac-w carrier B's prefix"
start_bg relay "$T_TMP/relay.log" python3 "$here/vlan_relay.py" rl-ix rl-c 200 60
RELAY_PID=$BG_PID
check "ping car-b → car-a (100.64.0.2)" wait_ping car-b 100.64.0.2 20
check "ping car-a → car-b (100.65.0.2)" wait_ping car-a 100.65.0.2 10
check "ping car-b → fac-w (100.66.0.2)" wait_ping car-b 100.66.0.2 10
check "ping fac-w → car-b (100.65.0.2)" wait_ping fac-w 100.65.0.2 10

log "TCP: car-a → fac-w and car-b → car-a"
start_bg fac-w "$T_TMP/iperf-w.log" timeout 40 iperf3 -s -B 10.0.0.2 -1
sleep 0.5
if ip netns exec car-a timeout 30 iperf3 -c 100.66.0.2 -t 3 -J >"$T_TMP/tcp-w.json"; then
  bps=$(jq '.end.sum_received.bits_per_second | floor' "$T_TMP/tcp-w.json")
  [[ $bps -gt 10000000 ]] && pass "TCP car-a → fac-w: $((bps / 1000000)) Mbit/s" || fail "TCP car-a → fac-w only $bps bit/s"
else fail "iperf3 car-a → fac-w"; fi
start_bg car-a "$T_TMP/iperf-a2.log" timeout 40 iperf3 -s -B 10.0.0.2 -1
sleep 0.5
if ip netns exec car-b timeout 30 iperf3 -c 100.64.0.2 -t 3 -J >"$T_TMP/tcp-b.json"; then
  bytes=$(jq '.end.sum_received.bytes' "$T_TMP/tcp-b.json")
  [[ $bytes -gt 100000 ]] && pass "TCP car-b → car-a across the VLAN: $bytes bytes" || fail "TCP car-b → car-a only $bytes bytes"
else fail "iperf3 car-b → car-a"; fi

kill "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true; forget_pid "$RELAY_PID"
counts=$(tail -1 "$T_TMP/relay.log")
log "relay: $counts"
[[ $counts =~ from_trunk=([0-9]+) && ${BASH_REMATCH[1]} -gt 100 ]] \
  && [[ $counts == *"from_trunk_untagged=0"* && $counts == *"from_trunk_other_vlan=0"* ]] \
  && pass "every frame ixgw sent towards carrier B carried VLAN 200" \
  || fail "relay counts: $counts"

log "the port is closed to the host's IP stack"
ip netns exec ix nft list table netdev ixgw_port_ix_ca >/dev/null 2>&1 \
  && pass "nft table ixgw_port_ix_ca drops the port's frames before the host" || fail "no nft table for ix-ca"
# A frame to the port's own MAC for an address of the host (172.31.9.1 on ix-w) must not
# reach the host's IP stack: car-a sends pings there through a made-up next hop that resolves
# to that MAC, and the host's ICMP counters (nstat IcmpInEchos) must not move. (No reply could
# come back anyway: the host has no route to the tenant.)
echos() { ip netns exec ix nstat -az IcmpInEchos | awk '/IcmpInEchos/{print $2}'; }
port_mac=$(ip -n ix link show ix-ca | awk '/link\/ether/{print $2}')
ip -n car-a neigh replace 10.0.0.99 lladdr "$port_mac" dev up-a nud permanent
ip -n car-a route replace 172.31.9.0/30 via 10.0.0.99
before=$(echos)
ip netns exec car-a ping -c 3 -i 0.2 -W 1 172.31.9.1 >/dev/null 2>&1 || true
after=$(echos)
[[ $after == "$before" ]] && pass "the host's IP stack saw none of the tenant's pings to its own address" \
  || fail "the host's IP stack took tenant pings through the port ($before → $after echo requests)"
# The control: without the table the same pings reach the host's stack.
ip netns exec ix nft delete table netdev ixgw_port_ix_ca
before=$(echos)
ip netns exec car-a ping -c 3 -i 0.2 -W 1 172.31.9.1 >/dev/null 2>&1 || true
after=$(echos)
[[ $after -ge $((before + 3)) ]] && pass "control: without ixgw's table the host's stack takes them ($before → $after)" \
  || fail "control: no echo request reached the host even without the table ($before → $after): the check proves nothing"
ip -n car-a route del 172.31.9.0/30 via 10.0.0.99

log "the host's routing knows none of the tenants' prefixes"
routes=$(ip -n ix -4 route show table all)
if grep -Eq '(^|[^0-9])(10\.0\.0\.|100\.6[4-6]\.)' <<<"$routes"; then
  fail "tenant prefixes in the ix namespace's routing tables:"; echo "$routes" >&2
else pass "no 10.0.0.0/24 or exchange prefix in any routing table of ns ix"; fi

log "counted drops"
ip netns exec car-a ping -c1 -W1 10.0.0.9 >/dev/null 2>&1 || true   # ARP for another host
ip netns exec fac-w ping -c1 -W1 100.64.0.77 >/dev/null 2>&1 || true # nobody at 10.0.0.77
sleep 4
ignored=$(metric ix $METRICS ixgw_drops_total 'reason="arp_ignored"')
unresolved=$(metric ix $METRICS ixgw_drops_total 'reason="arp_unresolved"')
[[ $ignored -ge 1 ]] && pass "ARP for another host counted ($ignored arp_ignored)" || fail "arp_ignored: $ignored"
[[ $unresolved -ge 1 ]] && pass "a packet for a silent host counted ($unresolved arp_unresolved)" || fail "arp_unresolved: $unresolved"
show=$("$IXGW" show --config "$T_TMP/ixgw.yaml" --json)
jq -e '.attachments[] | select(.name == "carrier-b-vlan") | .listen | index("link ix-cb vlan 200")' <<<"$show" >/dev/null \
  && pass "ixgw show names the port and VLAN" || { echo "$show" >&2; fail "ixgw show of carrier-b-vlan"; }

finish 60 "$T_TMP/ixgw.log"
