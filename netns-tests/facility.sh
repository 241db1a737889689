#!/usr/bin/env bash
# End-to-end: facility certificates of a lab CA made with `ixgw ca`, checked by ixgw against
# live peers, and revoked while they carry traffic.
#
#   fac-wga  10.0.0.2/24 on wireguard-go fcwg-a ── veth 172.29.1.2 ↔ .1 ──┐
#   fac-wgc  10.0.0.3/24 on wireguard-go fcwg-c ── veth 172.29.3.2 ↔ .1 ──┤ fac-ix (ixgw)
#   fac-ikeb 10.0.2.1 strongSwan (ipsec0)       ── veth 172.29.2.2 ↔ .1 ──┤   IKE on 192.0.2.1 (lo)
#   fac-sink 192.168.60.10/24 (iperf3 servers)  ── veth .10 ↔ .1 ─────────┘   TUN fcgw-sink
#
# Tenants: ajisai-net 10.0.0.0/16 ↔ 100.64.0.0/16 (A and C, WireGuard), mame-net 10.0.0.0/16 ↔
# 100.65.0.0/16 (B, IPsec), claims 192.168.60.0/24 ↔ 100.127.0.0/24 (the sink, a plain TUN).
# Both facility tenants trust the lab CA `lab` and its crl.pem, which `ixgw ca revoke` rewrites.
#   A  4210000016  certificate file binding A's WireGuard key
#   B  3210000026  `certificate: presented`: strongSwan authenticates with its facility
#                  certificate (FQDN fac-b.mame.test in its SAN); the gateway's IKE certificate
#                  comes from the same CA
#   C  4210000032  certificate file binding another WireGuard key than C's
# Checks, in this order:
#   1. C cannot handshake (binding_mismatch): no handshake in `wg show`, handshakes refused
#      as `certificate`, its pings fail. C runs first, and is stopped after, so that no other
#      peer's refused handshakes or drops count in its checks or in the next ones.
#   2. While A and B each send iperf3 TCP to the sink and A pings every 50 ms (ping -D), A is
#      revoked: A's last reply comes less than 1 s after `ixgw ca revoke` started; B's data
#      keeps flowing (every 0.5 s interval the sink received from 1 s after the revocation on
#      is non-zero) and its IKE SA stays; drops `certificate`, A's state `revoked`, the WARN.
#   3. B is revoked with its SAs up: ixgw's Delete reaches strongSwan within 2 s; initiating
#      again is refused with AUTHENTICATION_FAILED (`certificate_revoked`).
#   4. The audit trail (JSON lines, after SIGTERM): no record dropped; A's and B's certificate
#      states, tunnels up and down, C's and B's refused authentications with their reasons,
#      A's flows to the sink started (translated addresses) and ended with bytes both ways.
#
# Usage: netns-tests/facility.sh [path/to/ixgw]   (root; needs charon-systemd swanctl
#        wireguard-go wg iperf3 jq ping; see .ci/run)
# Env: KEEP_TMP=1 keeps configs and logs; SWAN_LOG (default 2); IXGW_LOG (default info);
#      FAC_IPERF_RATE, iperf3's -b for A's and B's transfers (default 0: as fast as they go).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
IXGW=$(readlink -m "${1:-$here/../target/release/ixgw}")
cd "$here"
source ./lib.sh
netns_begin

CHARON=${CHARON:-/usr/sbin/charon-systemd}
[[ -x $CHARON ]] || die "$CHARON is missing (apt-get install --no-install-recommends charon-systemd, see .ci/run)"
need ip swanctl wireguard-go wg wg-quick iperf3 jq ping timeout awk
SWAN_LOG=${SWAN_LOG:-2}
RATE=${FAC_IPERF_RATE:-0}

METRICS=127.0.0.1:9479
IX=fac-ix NS_A=fac-wga NS_B=fac-ikeb NS_C=fac-wgc SINK=fac-sink
IF_A=fcwg-a IF_C=fcwg-c
GW=192.0.2.1
B_LAN=10.0.2.1 SINK_HOST=192.168.60.10 SINK_EXCH=100.127.0.10
CODE_A=$(facility_code 421000001) CODE_B=$(facility_code 321000002) CODE_C=$(facility_code 421000003)
CODE_GW=$(facility_code 131000009)   # `ca issue` wants a code; the gateway's is in no registry

log "namespaces and underlay"
for ns in $IX $NS_A $NS_B $NS_C $SINK; do netns_add $ns; done
extra_cleanup() { rm -f /var/run/wireguard/$IF_A.sock /var/run/wireguard/$IF_C.sock; }
for s in $IF_A $IF_C; do [[ -S /var/run/wireguard/$s.sock ]] && rm -f /var/run/wireguard/$s.sock; done
veth() { link_ns $IX "$1" "$2" "$3" "fcx-$4" "fcu-$4"; } # veth NS IX_ADDR NS_ADDR NAME
veth $NS_A 172.29.1.1/30 172.29.1.2/30 a
veth $NS_B 172.29.2.1/30 172.29.2.2/30 b
veth $NS_C 172.29.3.1/30 172.29.3.2/30 c
veth $SINK 192.168.60.1/24 $SINK_HOST/24 s
ip -n $SINK route add default via 192.168.60.1
ip -n $IX addr add $GW/32 dev lo
ip -n $NS_B addr add $B_LAN/32 dev fcu-b      # the facility's LAN host (no dummy links here)
ip -n $NS_B route add 192.0.2.0/24 via 172.29.2.1
ip netns exec $NS_B sh -c 'test ! -d /proc/sys/net/ipv6 || sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1'

log "keys, the lab CA and facility certificates (ixgw ca)"
umask 077
for k in gw-a fac-a fac-c other; do "$IXGW" genkey >"$T_TMP/$k.key"; done
pub() { "$IXGW" pubkey <"$T_TMP/$1.key"; }
LAB=$T_TMP/lab P=$T_TMP/pki
mkdir -p "$P"
ca() { "$IXGW" ca "$@" --log warn; }
ca init --dir "$LAB" --name "ixgw netns lab" >/dev/null
ca issue --dir "$LAB" --facility "$CODE_A" --name "fac-a clinic" --wireguard-key "$(pub fac-a)" --out "$P/fac-a" >/dev/null
ca issue --dir "$LAB" --facility "$CODE_B" --name "fac-b hospital" --dns fac-b.mame.test --out "$P/fac-b" >/dev/null
ca issue --dir "$LAB" --facility "$CODE_C" --name "fac-c pharmacy" --wireguard-key "$(pub other)" --out "$P/fac-c" >/dev/null
ca issue --dir "$LAB" --facility "$CODE_GW" --name "ixgw gateway" --dns gw.ix.test --out "$P/gw" >/dev/null

cat >"$T_TMP/ixgw.yaml" <<YAML
ix:
  name: facility-netns-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: $METRICS
audit:
  file: audit.jsonl
  journald: off
trust:
  - name: lab-ca
    ca_file: lab/ca.crt
    crl_files: [lab/crl.pem]
tenants:
  - name: ajisai-net
    trust: [lab-ca]
    networks:
      - { internal: 10.0.0.0/16, exchange: 100.64.0.0/16 }
    attachments:
      - name: ajisai-wg
        type: wireguard
        listen: 172.29.1.1:51820
        private_key_file: gw-a.key
        peers:
          - name: fac-a
            facility: "$CODE_A"
            public_key: "$(pub fac-a)"
            allowed_ips: [10.0.0.2/32]
            address: 10.0.0.2/24
            persistent_keepalive: 25s
      - name: ajisai-wg-c
        type: wireguard
        listen: 172.29.3.1:51820
        private_key_file: gw-a.key
        peers:
          - name: fac-c
            facility: "$CODE_C"
            public_key: "$(pub fac-c)"
            allowed_ips: [10.0.0.3/32]
            address: 10.0.0.3/24
  - name: mame-net
    trust: [lab-ca]
    networks:
      - { internal: 10.0.0.0/16, exchange: 100.65.0.0/16 }
    attachments:
      - name: mame-ipsec
        type: ipsec
        listen: $GW
        raw_esp: false
        local_id: gw.ix.test
        certificate_file: pki/gw.crt
        private_key_file: pki/gw.key
        peers:
          - name: fac-b
            facility: "$CODE_B"
            remote_id: fac-b.mame.test
            auth: certificate
            ca_file: lab/ca.crt
            remote_ts: [10.0.2.0/24]
  - name: claims
    networks:
      - { internal: 192.168.60.0/24, exchange: 100.127.0.0/24 }
    attachments:
      - name: sink-lan
        type: plain
        tun: fcgw-sink
        routes: [192.168.60.0/24]
facilities:
  - { code: "$CODE_A", name: fac-a clinic, tenant: ajisai-net, certificate: pki/fac-a.crt }
  - { code: "$CODE_B", name: fac-b hospital, tenant: mame-net, certificate: presented }
  - { code: "$CODE_C", name: fac-c pharmacy, tenant: ajisai-net, certificate: pki/fac-c.crt }
policies:
  - name: ajisai-to-sink
    from: { tenant: ajisai-net }
    to: { tenant: claims }
    allow: [tcp/5201, icmp]
  - name: mame-to-sink
    from: { tenant: mame-net }
    to: { tenant: claims }
    allow: [tcp/5202, icmp]
  - name: sink-pings
    from: { tenant: claims }
    to: { tenant: [ajisai-net, mame-net] }
    allow: [icmp]
YAML
"$IXGW" check --config "$T_TMP/ixgw.yaml" >"$T_TMP/check.log" 2>&1 || { cat "$T_TMP/check.log" >&2; die "the test configuration does not validate"; }
check "ixgw check warns that C's certificate would be refused (binding_mismatch)" \
  grep -q "warning: facility $CODE_C .* is binding_mismatch" "$T_TMP/check.log"

log "ixgw in ns $IX"
start_ixgw $IX 9479

# ixlog : ixgw's log without colours; ixlog_has REGEX (reads it all: no SIGPIPE under pipefail)
ixlog() { sed 's/\x1b\[[0-9;]*m//g' "$T_TMP/ixgw.log"; }
ixlog_has() { ixlog | grep -E "$1" >/dev/null; }
# fac_state CODE : the certificate state ixgw exports for the facility (the series that is 1)
fac_state() {
  http_get $IX 127.0.0.1 9479 /metrics | awk -v f="facility=\"$1\"" '
    /^ixgw_facility_certificate_state\{/ && index($0, f) && $NF == 1 {
      s = $0; sub(/.*state="/, "", s); sub(/".*/, "", s); print s; exit }'
}
# wait_state CODE STATE SECONDS
wait_state() {
  local i
  for (( i=0; i<$3*5; i++ )); do [[ $(fac_state "$1") == "$2" ]] && return 0; sleep 0.2; done
  return 1
}
# reap PID SECONDS : waits up to SECONDS for a process we started to end, then stops it
reap() {
  local i
  for (( i=0; i<$2*10; i++ )); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}
# since T0 : seconds from T0 (date +%s.%N) to now
since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.3f", a - b }'; }

check "A's state is valid before anything happens ($(fac_state "$CODE_A"))" test "$(fac_state "$CODE_A")" == valid
check "B's state is not_presented before it authenticates ($(fac_state "$CODE_B"))" test "$(fac_state "$CODE_B")" == not_presented
check "C's state is binding_mismatch: its certificate binds another key ($(fac_state "$CODE_C"))" test "$(fac_state "$CODE_C")" == binding_mismatch

# ---------------------------------------------------------------- strongSwan facility B
SW=$T_TMP/fac-b
mkdir -p "$SW"/swanctl/{x509,x509ca,private}
"$IXGW" peer-config --config "$T_TMP/ixgw.yaml" --peer fac-b >"$SW/swanctl/swanctl.conf"
grep -q 'certs = fac-b.crt' "$SW/swanctl/swanctl.conf" && grep -q 'cacerts = mame-ipsec-ca.crt' "$SW/swanctl/swanctl.conf" \
  || { cat "$SW/swanctl/swanctl.conf" >&2; die "peer-config of fac-b does not name fac-b.crt and mame-ipsec-ca.crt"; }
cp "$P/fac-b.crt" "$SW/swanctl/x509/fac-b.crt"
cp "$P/fac-b.key" "$SW/swanctl/private/fac-b.key"
cp "$LAB/ca.crt" "$SW/swanctl/x509ca/mame-ipsec-ca.crt"
strongswan_conf "$SW" yes "ike = $SWAN_LOG; chd = $SWAN_LOG; cfg = $SWAN_LOG; knl = 2"
swan() { # swan COMMAND ARGS...
  swanctl_in "$SW" "$@"
}
swan_count() { grep -cE "$1" "$SW/charon.log" || true; }
child_up() { swan --list-sas 2>/dev/null | grep -E '^ +net: .*INSTALLED' >/dev/null; }
ike_established() { swan --list-sas 2>/dev/null | grep -E '^fac-b: #[0-9]+, ESTABLISHED' >/dev/null; }

log "strongSwan (fac-b) in ns $NS_B"
charon_start "$SW" $NS_B
CHARON_PID=$BG_PID

log "wireguard-go facility A in ns $NS_A"
wg_facility $NS_A $IF_A fac-a

log "A and B come up: pings through exchange addresses both ways"
check "ping A → sink ($SINK_EXCH)" wait_ping $NS_A $SINK_EXCH 20
check "ping sink → A (100.64.0.2)" wait_ping $SINK 100.64.0.2 10
b_ping() { # b_ping TRIES : one ping from B's LAN host to the sink answered
  local i
  for (( i=0; i<$1; i++ )); do
    ip netns exec $NS_B ping -c1 -W1 -I $B_LAN $SINK_EXCH >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  return 1
}
check "ping B ($B_LAN) → sink ($SINK_EXCH) through its CHILD SA" b_ping 60
check "ping sink → B (100.65.2.1)" wait_ping $SINK 100.65.2.1 10
check "B's state is valid once it authenticated with its certificate ($(fac_state "$CODE_B"))" test "$(fac_state "$CODE_B")" == valid
if ! child_up; then
  log "charon log:"; tail -40 "$SW/charon.log" >&2
  log "ixgw log:"; ixlog | tail -30 >&2
  die "B has no CHILD SA: nothing below can be measured"
fi

# ---------------------------------------------------------------- 1. C cannot handshake
log "== 1 C, whose registry certificate binds another key, tries to connect"
hs0=$(metric $IX $METRICS ixgw_handshakes_total 'result="certificate"')
hsok0=$(metric $IX $METRICS ixgw_handshakes_total 'result="ok"')
wg_facility $NS_C $IF_C fac-c
C_WG_PID=$BG_PID
c_replies=0
for (( i=0; i<6; i++ )); do   # wireguard-go retries its handshake every 5 s; about 6 s of tries
  ip netns exec $NS_C ping -c1 -W1 $SINK_EXCH >/dev/null 2>&1 && c_replies=$((c_replies + 1))
done
hs1=$(metric $IX $METRICS ixgw_handshakes_total 'result="certificate"')
hsok1=$(metric $IX $METRICS ixgw_handshakes_total 'result="ok"')
c_hs=$(ip netns exec $NS_C wg show $IF_C latest-handshakes | awk '{ print $2 }')
check "1 C has no latest handshake in wg show (${c_hs:-none})" test "${c_hs:-0}" -eq 0
check "1 ixgw_handshakes_total{result=\"certificate\"} grew ($hs0 → $hs1)" test "$hs1" -gt "$hs0"
check "1 no handshake succeeded meanwhile (ok $hsok0 → $hsok1)" test "$hsok1" -eq "$hsok0"
check "1 none of C's 6 pings to the sink was answered ($c_replies)" test "$c_replies" -eq 0
check "1 C's state is still binding_mismatch" test "$(fac_state "$CODE_C")" == binding_mismatch
reap "$C_WG_PID" 0

# ---------------------------------------------------------------- 2. A revoked under load
log "== 2 A is revoked while A and B send iperf3 TCP (-b $RATE) to the sink and A pings every 50 ms"
SECS=7 rate_before=- rate_after=- cutoff=- rev_cmd=-
start_bg $SINK "$T_TMP/iperf-a-server.json" iperf3 -s -1 -J -i 0.5 -B $SINK_HOST -p 5201
SA_PID=$BG_PID
start_bg $SINK "$T_TMP/iperf-b-server.json" iperf3 -s -1 -J -i 0.5 -B $SINK_HOST -p 5202
SB_PID=$BG_PID
sleep 0.5
drops0=$(metric $IX $METRICS ixgw_drops_total 'reason="certificate"')
swan_deletes0=$(swan_count 'received DELETE for IKE_SA')
tb=$(date +%s.%N)
start_bg $NS_B "$T_TMP/iperf-b.json" timeout $((SECS + 15)) iperf3 -J -B $B_LAN -c $SINK_EXCH -p 5202 -t $SECS -b "$RATE"
CB_PID=$BG_PID
start_bg $NS_A "$T_TMP/iperf-a.json" timeout $((SECS + 4)) iperf3 -J -c $SINK_EXCH -p 5201 -t $SECS -b "$RATE"
CA_PID=$BG_PID
start_bg $NS_A "$T_TMP/ping-a.log" ping -D -n -i 0.05 -W 1 -w $((SECS + 1)) $SINK_EXCH
PA_PID=$BG_PID
sleep 2.5
t_rev=$(date +%s.%N)
ca revoke --dir "$LAB" "$P/fac-a.crt" --reason key-compromise >"$T_TMP/revoke-a.log" 2>&1 || { cat "$T_TMP/revoke-a.log" >&2; die "ixgw ca revoke fac-a failed"; }
rev_cmd=$(since "$t_rev")
state_a='' state_at=''
for (( i=0; i<25; i++ )); do
  [[ $(fac_state "$CODE_A") == revoked ]] && { state_a=revoked; state_at=$(since "$t_rev"); break; }
  sleep 0.1
done
rc=0; wait "$CB_PID" || rc=$?; forget_pid "$CB_PID"
reap "$PA_PID" 3; reap "$CA_PID" 5
# B's server ends with B's test; A's waits for a test that cannot end (it prints its JSON
# when stopped).
reap "$SB_PID" 3; reap "$SA_PID" 0

# A's probe: replies are "[UNIX.micro] 64 bytes from ..."
read -r last_reply before_n after_n total_n <<<"$(awk -v r="$t_rev" '
  /bytes from/ { t = substr($1, 2, length($1) - 2) + 0; n++; last = t
                 if (t <= r && t > r - 0.5) b++; if (t > r) a++ }
  END { printf "%.6f %d %d %d\n", last, b, a, n }' "$T_TMP/ping-a.log")"
cutoff=$(awk -v l="$last_reply" -v r="$t_rev" 'BEGIN { printf "%.3f", l - r }')
log "A: revocation at $t_rev (ixgw ca revoke took ${rev_cmd} s); A's last reply at $last_reply: cut-off ${cutoff} s; $total_n replies, $before_n in the 0.5 s before, $after_n after"
check "2 A's probe was answered right up to the revocation ($before_n replies in the 0.5 s before it)" test "$before_n" -ge 3
check "2 A's last reply came ${cutoff} s after the revocation started (bound 1 s)" \
  awk -v c="$cutoff" 'BEGIN { exit !(c < 1.0) }'
check "2 ixgw exports A's state revoked ${state_at:-never} s after the revocation started" test "$state_a" == revoked
drops1=$(metric $IX $METRICS ixgw_drops_total 'reason="certificate"')
check "2 ixgw_drops_total{reason=\"certificate\"} grew ($drops0 → $drops1)" test "$drops1" -gt "$drops0"
check "2 ixgw logged the WARN naming A's facility $CODE_A" \
  ixlog_has " WARN .*facility certificate refused, its traffic stops.*facility=$CODE_A"
# rxpackets NS IF : the packets a facility's WireGuard interface handed to its kernel
rxpackets() { ip -n "$1" -j -s link show "$2" | jq '.[0].stats64.rx.packets'; }
d=$(rxpackets $NS_A $IF_A)
if wait_ping $SINK 100.64.0.2 2; then fail "2 the sink's ping reached A after its revocation"; else pass "2 the sink's pings to A fail too"; fi
check "2 nothing came out of A's tunnel meanwhile ($IF_A rx packets $d → $(rxpackets $NS_A $IF_A))" test "$(rxpackets $NS_A $IF_A)" -eq "$d"

# What the sink received, in 0.5 s intervals from the start of each test (which began after
# tb: an interval's time from tb is at most what it was in truth). A tail interval shorter than
# 0.4 s is left out. received FILE : "N_AFTER MIN_AFTER MAX_AFTER MBIT_AFTER MBIT_BEFORE", from
# 1 s after the revocation on and before it.
off=$(awk -v r="$t_rev" -v b="$tb" 'BEGIN { printf "%.3f", r - b }')
received() {
  jq -r --argjson r "$off" '
    [.intervals[].sum | select(.seconds >= 0.4)] as $iv
    | [$iv[] | select(.start >= $r + 1)] as $a | [$iv[] | select(.end <= $r)] as $b
    | def mbit(x): if (x | length) > 0 then (x | map(.bytes) | add) * 8 / (x | map(.seconds) | add) / 1e6 | floor else 0 end;
    "\($a | length) \($a | map(.bytes) | min // -1) \($a | map(.bytes) | max // -1) \(mbit($a)) \(mbit($b))"' "$1"
}
if jq -e '.intervals | length > 0' "$T_TMP/iperf-a-server.json" >/dev/null 2>&1; then
  read -r n_after _ max_after a_after a_before <<<"$(received "$T_TMP/iperf-a-server.json")"
  log "A: the sink received $a_before Mbit/s from A before the revocation, $a_after Mbit/s from 1 s after it ($n_after intervals)"
  check "2 the sink received nothing from A in the $n_after intervals from 1 s after the revocation on (largest $max_after B)" \
    test "$n_after" -ge 3 -a "$max_after" -eq 0
else
  cat "$T_TMP/iperf-a-server.json" >&2; fail "2 no intervals from A's iperf3 server"
fi
if [[ $rc == 0 ]] && jq -e '.intervals | length > 0' "$T_TMP/iperf-b-server.json" >/dev/null 2>&1; then
  read -r n_after min_after _ rate_after rate_before <<<"$(received "$T_TMP/iperf-b-server.json")"
  log "B: A was revoked ${off} s into B's transfer; the sink received $rate_before Mbit/s from B before, $rate_after Mbit/s from 1 s after it; smallest 0.5 s interval after: $min_after B"
  check "2 B's transfer has $n_after intervals from 1 s after A's revocation on (at least 3)" test "$n_after" -ge 3
  check "2 B's iperf3 kept moving data: every 0.5 s interval from 1 s after A's revocation carried bytes (smallest $min_after)" \
    test "$min_after" -gt 0
else
  cat "$T_TMP/iperf-b.json" "$T_TMP/iperf-b-server.json" >&2; fail "2 B's iperf3 transfer failed (rc $rc)"
fi
check "2 B's IKE SA was not deleted by the CRL change (strongSwan's Deletes received: $swan_deletes0 → $(swan_count 'received DELETE for IKE_SA'))" \
  test "$(swan_count 'received DELETE for IKE_SA')" -eq "$swan_deletes0"
check "2 B's state is still valid ($(fac_state "$CODE_B"))" test "$(fac_state "$CODE_B")" == valid
check "2 B still pings the sink" b_ping 8

# ---------------------------------------------------------------- 3. B revoked with SAs up
log "== 3 B is revoked while its SAs are up"
check "3 B's CHILD SA is installed before" child_up
refused0=$(metric $IX $METRICS ixgw_ike_refused_total 'attachment="mame-ipsec",reason="certificate_revoked"')
dels0=$(swan_count 'received DELETE for IKE_SA')
t_rev=$(date +%s.%N)
ca revoke --dir "$LAB" "$P/fac-b.crt" >"$T_TMP/revoke-b.log" 2>&1 || { cat "$T_TMP/revoke-b.log" >&2; die "ixgw ca revoke fac-b failed"; }
deleted_at=''
for (( i=0; i<40; i++ )); do
  (( $(swan_count 'received DELETE for IKE_SA') > dels0 )) && { deleted_at=$(since "$t_rev"); break; }
  sleep 0.1
done
log "B: ixgw's Delete reached strongSwan ${deleted_at:-never} s after the revocation started"
check "3 strongSwan received DELETE for B's IKE SA ${deleted_at:-never} s after the revocation started (bound 2 s)" \
  awk -v t="${deleted_at:-99}" 'BEGIN { exit !(t < 2.0) }'
check "3 ixgw logged that it deletes fac-b's IKE SA" \
  ixlog_has "facility certificate refused: deleting the peer's IKE SA.*peer=\"fac-b\""
check "3 B's state is revoked ($(fac_state "$CODE_B"))" wait_state "$CODE_B" revoked 2
# peer-config's close_action = start has strongSwan initiate again at once after the Delete
# (refused too); wait for that attempt to end so that the next one is ours alone.
for (( i=0; i<30; i++ )); do [[ -z $(swan --list-sas 2>/dev/null | grep -E '^fac-b: #') ]] && break; sleep 0.1; done
refused_mid=$(metric $IX $METRICS ixgw_ike_refused_total 'attachment="mame-ipsec",reason="certificate_revoked"')
timeout 15 env STRONGSWAN_CONF="$SW/strongswan.conf" SWANCTL_DIR="$SW/swanctl" \
  swanctl --initiate --uri "unix://$SW/charon.vici" --child net --timeout 10 >"$SW/initiate.log" 2>&1 && init_rc=0 || init_rc=$?
refused1=$(metric $IX $METRICS ixgw_ike_refused_total 'attachment="mame-ipsec",reason="certificate_revoked"')
check "3 swanctl --initiate --child net failed (rc $init_rc)" test "$init_rc" -ne 0
check "3 strongSwan says that initiation received AUTHENTICATION_FAILED" grep -q 'received AUTHENTICATION_FAILED notify error' "$SW/initiate.log"
check "3 ixgw_ike_refused_total{reason=\"certificate_revoked\"} grew ($refused0 → $refused_mid after the revocation, → $refused1 after our initiation)" \
  test "$refused1" -gt "$refused_mid"
check "3 ixgw logged the refusal naming fac-b" ixlog_has 'IKE message refused .*peer="fac-b".*AUTHENTICATION_FAILED.*Revoked'
if ike_established || child_up; then fail "3 B has an IKE SA or a CHILD SA after its revocation"; else pass "3 B has no IKE SA and no CHILD SA left"; fi
revoked=$(metric $IX $METRICS ixgw_facilities 'state="revoked"') mismatch=$(metric $IX $METRICS ixgw_facilities 'state="binding_mismatch"')
check "3 ixgw_facilities: revoked $revoked (A and B), binding_mismatch $mismatch (C)" test "$revoked/$mismatch" == 2/1
listed=$(metric $IX $METRICS ixgw_crl_revoked_certificates 'ca="lab-ca"')
check "3 ixgw_crl_revoked_certificates{ca=\"lab-ca\"} is 2 ($listed)" test "$listed" -eq 2
if b_ping 4; then fail "3 B's ping passed after its revocation"; else pass "3 B's pings fail"; fi

log "SIGTERM"
kill -TERM "$IXGW_PID"
rc=0; wait "$IXGW_PID" || rc=$?
forget_pid "$IXGW_PID"
check "ixgw exited 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0
errors=$(ixlog | grep -c ' ERROR ' || true)
check "ixgw logged no errors ($errors)" test "$errors" -eq 0

log "== 4 the audit trail"
AUDIT=$T_TMP/audit.jsonl
audit_has() { # audit_has DESCRIPTION JQ-FILTER: at least one record matches
  local n; n=$(jq -c "select($2)" "$AUDIT" | wc -l)
  check "4 audit: $1 ($n)" test "$n" -ge 1
}
records=$(wc -l <"$AUDIT")
last_seq=$(tail -1 "$AUDIT" | jq .seq)
check "4 audit: every line is JSON with a seq, none dropped ($records lines, last seq $last_seq)" \
  test "$(jq -c . "$AUDIT" | wc -l)" -eq "$records" -a "$last_seq" -eq "$records"
audit_has "A's certificate valid, then revoked" \
  ".event==\"certificate_state\" and .facility==\"$CODE_A\" and .from==\"valid\" and .to==\"revoked\""
audit_has "A's tunnel down with its certificate" \
  ".event==\"tunnel_down\" and .peer==\"fac-a\" and .reason==\"certificate revoked\""
audit_has "A's tunnel up before" ".event==\"tunnel_up\" and .peer==\"fac-a\" and .kind==\"wireguard\""
audit_has "C's binding mismatch at start" \
  ".event==\"certificate_state\" and .facility==\"$CODE_C\" and .to==\"binding_mismatch\""
audit_has "C's handshakes refused for its certificate" \
  ".event==\"auth\" and .peer==\"fac-c\" and .result==\"refused\" and .reason==\"certificate\""
audit_has "B's authentication accepted and its tunnel up" \
  ".event==\"auth\" and .peer==\"fac-b\" and .result==\"ok\" and .kind==\"ipsec\" and .facility==\"$CODE_B\""
audit_has "B's certificate revoked" \
  ".event==\"certificate_state\" and .facility==\"$CODE_B\" and .to==\"revoked\""
audit_has "B's tunnel down" ".event==\"tunnel_down\" and .peer==\"fac-b\" and .kind==\"ipsec\""
audit_has "B's new authentication refused as revoked" \
  ".event==\"auth\" and .peer==\"fac-b\" and .result==\"refused\" and .reason==\"certificate_revoked\""
audit_has "a flow of A's to the sink started, translated" \
  ".event==\"flow_start\" and .facility==\"$CODE_A\" and .rule==\"ajisai-to-sink\" and .after.dst==\"$SINK_HOST\""
audit_has "a flow of A's ended with bytes both ways" \
  ".event==\"flow_end\" and .facility==\"$CODE_A\" and .bytes[0] > 1000000 and .bytes[1] > 0 and .duration_ms > 0"
audit_has "a flow of B's ended" ".event==\"flow_end\" and .facility==\"$CODE_B\""

log "measured: A cut off ${cutoff} s after its revocation started (ixgw ca revoke took ${rev_cmd} s, state revoked after ${state_at:-never} s); B's transfer $rate_before → $rate_after Mbit/s across it; B's IKE SA deleted ${deleted_at:-never} s after its revocation"
finish 40 "$SW/charon.log" "$T_TMP/ixgw.log"
