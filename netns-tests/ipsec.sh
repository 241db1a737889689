#!/usr/bin/env bash
# End-to-end: ixgw's IKEv2 + ESP against live strongSwan 5.9.8 facilities (charon-systemd with
# kernel-libipsec: userspace ESP in UDP 4500 on a TUN `ipsec0`, as this kernel has no XFRM),
# and a wireguard-go facility of another tenant whose internal numbering overlaps.
#
#   ips-gcm  10.0.1.1 ─ veth 172.30.11.2 ↔ .1 ─┐            ajisai-net 10.0.0.0/16 ↔ 100.64.0.0/16
#   ips-ec   10.0.2.1 ─ veth 172.30.12.2 ↔ .1 ─┤ ips-ix
#   ips-rsa  10.0.3.1 ─ veth 172.30.13.2 ↔ .1 ─┤  ixgw: ajisai-ipsec on 192.0.2.1 (lo), ECDSA cert
#   ips-init 10.0.4.1 ─ veth 172.30.14.2 ↔ .1 ─┤        ajisai-rsa   on 192.0.2.2 (lo), RSA cert
#   ips-bad  10.0.5.1 ─ veth 172.30.15.2 ↔ .1 ─┤        mame-wg      on 172.30.2.1:51820
#   ips-cbc  10.0.6.1 ─ veth 172.30.16.2 ↔ .1 ─┤
#   ips-rkgw 10.0.7.1 ─ veth 172.30.17.2 ↔ .1 ─┤
#   ips-rksw 10.0.8.1 ─ veth 172.30.18.2 ↔ .1 ─┤
#   ips-dpd  10.0.9.1 ─ veth 172.30.19.2 ↔ .1 ─┤
#   ips-deny 10.0.0.1 ─ veth 172.30.10.2 ↔ .1 ─┤
#   ips-wg   10.0.1.1 on wireguard-go ─ veth 172.30.2.2 ↔ .1 ─┘   mame-net 10.0.0.0/16 ↔ 100.65.0.0/16
#
# Each strongSwan facility (charon with its own strongswan.conf, swanctl dir and vici socket)
# is configured from `ixgw peer-config --peer NAME [--with-psk]` plus certificates made with
# `pki`; its LAN address lies on its veth (no dummy links here), inside its `local_ts`.
# Scenarios, one facility each, run one after another (only one charon at a time):
#   1. fac-gcm  PSK, strongSwan initiates; IKE aes256gcm16-prfsha256-ecp256, ESP aes256gcm16
#   2. fac-ec   ECDSA P-256 certificates, FQDN identities with SANs, default proposals
#      fac-rsa  RSA 2048 certificates (a second attachment with an RSA gateway certificate)
#   3. fac-init PSK, ixgw initiates (`start: initiate`), strongSwan only responds
#   4. fac-bad  a wrong PSK is refused on both sides
#   5. fac-cbc  PSK; IKE aes256-sha256-ecp256, ESP aes256-sha256 (with fac-gcm: both families)
#   6. fac-cbc  keeps its SAs over a reload that leaves it unchanged; comes back after a
#               reload that changes it and after a restart of ixgw
#   7. rekeys with lifetimes of 10 s (CHILD SA) and 20 s (IKE SA) under iperf3 TCP
#      (IPSEC_REKEY_SECONDS, default 22): fac-rkgw ixgw initiates them (its peer's
#      child_rekey_time / ike_rekey_time; strongSwan's are off), fac-rksw strongSwan does (its
#      rekey_time; ixgw's are the defaults). No stall of 1 s, no SA lost, one of each left.
#   8. fac-dpd  per-peer byte counters: paced iperf3 both ways; ixgw's counters equal those of
#      the facility's ipsec0 to the byte (less only what counted UDP drops carried) and
#      iperf3's payload with its headers within 1 %
#   9. fac-dpd  dead peer detection (dpd_interval 5 s, dpd_timeout 10 s): charon is killed,
#      ixgw marks the peer down in time; charon restarts and the tunnel comes back
#  10. fac-deny refusals: a weak IKE proposal and a weak ESP proposal (NO_PROPOSAL_CHOSEN), and
#      traffic selectors outside the peer's (TS_UNACCEPTABLE), counted and logged by name
# fac-gcm and fac-cbc are also rekeyed by strongSwan (CHILD SA, IKE SA, CHILD SA again), and
# fac-init's charon restarts (deleting its IKE SA): ixgw initiates again.
# Traffic checks per scenario 1-5: ping both ways through exchange addresses, iperf3 TCP both
# ways (IPSEC_IPERF_SECONDS, default 3), ixgw's per-peer counters moved.
#
# Usage: netns-tests/ipsec.sh [path/to/ixgw]   (root; needs charon-systemd swanctl pki
#        wireguard-go wg iperf3 jq ping nstat; see .ci/run)
# Env: KEEP_TMP=1 keeps configs and logs; SWAN_LOG=4 raises charon's IKE log level (default 2);
#      IXGW_LOG sets ixgw's RUST_LOG (default info); IPSEC_REKEY_SECONDS (at least 21, to
#      cover an IKE SA rekey); IPSEC_COUNTER_RATE, iperf3's -b in scenario 8 (default 50M).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
IXGW=$(readlink -m "${1:-$here/../target/release/ixgw}")
cd "$here"
source ./lib.sh
netns_begin

CHARON=${CHARON:-/usr/sbin/charon-systemd}
[[ -x $CHARON ]] || die "$CHARON is missing (apt-get install --no-install-recommends charon-systemd, see .ci/run)"
need ip swanctl pki wireguard-go wg wg-quick iperf3 jq ping timeout nstat awk
SECS=${IPSEC_IPERF_SECONDS:-3}
REKEY_SECS=${IPSEC_REKEY_SECONDS:-22}
SWAN_LOG=${SWAN_LOG:-2}

METRICS=127.0.0.1:9478
IX=ips-ix WGNS=ips-wg IF_WG=ipswg0
GW=192.0.2.1 GW_RSA=192.0.2.2
B_HOST=10.0.1.1 B_EXCH=100.65.1.1

# facility NAME -> "NS INDEX": namespace, and N of its veth 172.30.1N.0/30, LAN 10.0.N.1
declare -A FAC=([fac-gcm]="ips-gcm 1" [fac-ec]="ips-ec 2" [fac-rsa]="ips-rsa 3"
                [fac-init]="ips-init 4" [fac-bad]="ips-bad 5" [fac-cbc]="ips-cbc 6"
                [fac-rkgw]="ips-rkgw 7" [fac-rksw]="ips-rksw 8" [fac-dpd]="ips-dpd 9"
                [fac-deny]="ips-deny 0")
fac_ns() { read -r ns _ <<<"${FAC[$1]}"; echo "$ns"; }
fac_n() { read -r _ n <<<"${FAC[$1]}"; echo "$n"; }

log "namespaces and underlay"
for ns in $IX $WGNS $(for f in "${!FAC[@]}"; do fac_ns "$f"; done); do netns_add "$ns"; done
extra_cleanup() { rm -f /var/run/wireguard/$IF_WG.sock; }
[[ -S /var/run/wireguard/$IF_WG.sock ]] && rm -f /var/run/wireguard/$IF_WG.sock
ip -n $IX addr add $GW/32 dev lo
ip -n $IX addr add $GW_RSA/32 dev lo
for f in "${!FAC[@]}"; do
  ns=$(fac_ns "$f") n=$(fac_n "$f")
  ip link add "ixf$n" netns $IX type veth peer name "upf$n" netns "$ns"
  ip -n $IX addr add "172.30.1$n.1/30" dev "ixf$n"; ip -n $IX link set "ixf$n" up
  ip -n "$ns" addr add "172.30.1$n.2/30" dev "upf$n"
  ip -n "$ns" addr add "10.0.$n.1/32" dev "upf$n"      # the facility's LAN host
  ip -n "$ns" link set "upf$n" up
  ip -n "$ns" route add 192.0.2.0/24 via "172.30.1$n.1"
  # No IPv6: charon's TUN ipsec0 would send router solicitations into it, which the facility's
  # counters count and the tunnel does not carry (scenario 8 compares them to the byte).
  ip netns exec "$ns" sh -c 'test ! -d /proc/sys/net/ipv6 || sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1'
done
ip link add ixwg netns $IX type veth peer name upwg netns $WGNS
ip -n $IX addr add 172.30.2.1/30 dev ixwg; ip -n $IX link set ixwg up
ip -n $WGNS addr add 172.30.2.2/30 dev upwg; ip -n $WGNS link set upwg up

log "keys, pre-shared keys and certificates"
umask 077
for k in gw-b fac-wg; do "$IXGW" genkey >"$T_TMP/$k.key"; done
for p in gcm init cbc rkgw rksw dpd deny; do head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/0x/' >"$T_TMP/$p.psk"; done
printf 'the right key is not this one\n' >"$T_TMP/bad.psk"   # the gateway's; the facility gets another
P=$T_TMP/pki; mkdir -p "$P"
printf 'pki {\n  load = random nonce openssl pem pkcs1 pkcs8 x509 gmp\n}\n' >"$P/pki.conf"
spki() { STRONGSWAN_CONF="$P/pki.conf" pki "$@"; }
# mkca NAME TYPE SIZE ; mkcert CA NAME TYPE SIZE SAN
mkca() {
  spki --gen --type "$2" --size "$3" --outform pem >"$P/$1.key"
  spki --self --ca --lifetime 30 --in "$P/$1.key" --type "$2" \
       --dn "C=JP, O=ixgw test, CN=$1" --outform pem >"$P/$1.crt"
}
mkcert() {
  spki --gen --type "$3" --size "$4" --outform pem >"$P/$2.key"
  spki --pub --in "$P/$2.key" --type "$3" \
    | spki --issue --lifetime 30 --cacert "$P/$1.crt" --cakey "$P/$1.key" \
        --dn "C=JP, O=ixgw test, CN=$5" --san "$5" \
        --flag serverAuth --flag clientAuth --outform pem >"$P/$2.crt"
}
mkca ca-ec ecdsa 256
mkcert ca-ec gw-ec ecdsa 256 gw.ix.test
mkcert ca-ec fac-ec ecdsa 256 fac-ec.ajisai.test
mkca ca-rsa rsa 2048
mkcert ca-rsa gw-rsa rsa 2048 gw-rsa.ix.test
mkcert ca-rsa fac-rsa rsa 2048 fac-rsa.ajisai.test

# ipsec_peer NAME AUTH(psk FILE | cert CA) [EXTRA YAML LINES...]
ipsec_peer() {
  local name=$1 n; n=$(fac_n "$1")
  printf '          - name: %s\n            facility: "%s"\n            remote_id: %s.ajisai.test\n' "$name" "$(facility_code "$(printf '4210000%02d' "$n")")" "$name"
  if [[ $2 == psk ]]; then
    printf '            auth: psk\n            psk_file: %s\n' "$3"
  else
    printf '            auth: certificate\n            ca_file: pki/%s.crt\n' "$3"
  fi
  printf '            remote_ts: [10.0.%s.0/24]\n' "$n"
  shift 3
  local l; for l in "$@"; do printf '            %s\n' "$l"; done
}

cat >"$T_TMP/ixgw.yaml" <<YAML
ix:
  name: ipsec-netns-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: $METRICS
tenants:
  - name: ajisai-net
    networks:
      - { internal: 10.0.0.0/16, exchange: 100.64.0.0/16 }
    attachments:
      - name: ajisai-ipsec
        type: ipsec
        listen: $GW
        raw_esp: false
        local_id: gw.ix.test
        certificate_file: pki/gw-ec.crt
        private_key_file: pki/gw-ec.key
        peers:
$(ipsec_peer fac-gcm psk gcm.psk "proposals: [aes256gcm16-prfsha256-ecp256]" "esp_proposals: [aes256gcm16]")
$(ipsec_peer fac-ec cert ca-ec)
$(ipsec_peer fac-init psk init.psk "start: initiate" "endpoint: 172.30.14.2")
$(ipsec_peer fac-bad psk bad.psk)
$(ipsec_peer fac-cbc psk cbc.psk "proposals: [aes256-sha256-ecp256]" "esp_proposals: [aes256-sha256]")
$(ipsec_peer fac-rkgw psk rkgw.psk "ike_rekey_time: 20s" "child_rekey_time: 10s")
$(ipsec_peer fac-rksw psk rksw.psk)
$(ipsec_peer fac-dpd psk dpd.psk "dpd_interval: 5s" "dpd_timeout: 10s")
$(ipsec_peer fac-deny psk deny.psk "endpoint: 172.30.10.2")
      - name: ajisai-rsa
        type: ipsec
        listen: $GW_RSA
        raw_esp: false
        local_id: gw-rsa.ix.test
        certificate_file: pki/gw-rsa.crt
        private_key_file: pki/gw-rsa.key
        peers:
$(ipsec_peer fac-rsa cert ca-rsa)
  - name: mame-net
    networks:
      - { internal: 10.0.0.0/16, exchange: 100.65.0.0/16 }
    attachments:
      - name: mame-wg
        type: wireguard
        listen: 172.30.2.1:51820
        private_key_file: gw-b.key
        peers:
          - name: fac-wg
            facility: "3219876541"
            public_key: "$("$IXGW" pubkey <"$T_TMP/fac-wg.key")"
            allowed_ips: [10.0.1.0/24]
            address: $B_HOST/24
            persistent_keepalive: 25s
policies:
  - name: ajisai-to-mame
    from: { tenant: ajisai-net }
    to: { tenant: mame-net }
    allow: [tcp/5201, icmp]
  - name: mame-to-ajisai
    from: { tenant: mame-net }
    to: { tenant: ajisai-net }
    allow: [tcp/5201, icmp]
YAML
"$IXGW" check --config "$T_TMP/ixgw.yaml" || die "the test configuration does not validate"

log "ixgw in ns $IX"
start_ixgw $IX 9478
wg_facility $WGNS $IF_WG fac-wg

# ---------------------------------------------------------------- strongSwan facilities
declare -A CHARON_PID=()
# swan_conf NAME [--with-psk] : the facility's strongswan.conf and swanctl dir, swanctl.conf
# from `ixgw peer-config`
swan_conf() {
  local name=$1 d=$T_TMP/$1; shift
  mkdir -p "$d"/swanctl/{x509,x509ca,private}
  "$IXGW" peer-config --config "$T_TMP/ixgw.yaml" --peer "$name" "$@" >"$d/swanctl/swanctl.conf"
  strongswan_conf "$d" yes "ike = $SWAN_LOG; chd = $SWAN_LOG; cfg = $SWAN_LOG; enc = $(( SWAN_LOG > 2 ? SWAN_LOG : 1 )); knl = 2; esp = 1"
}
swan() { # swan NAME COMMAND ARGS...
  local d=$T_TMP/$1; shift
  swanctl_in "$d" "$@"
}
start_charon() { # start_charon NAME : charon in the facility's namespace, then swanctl --load-all
  local name=$1 d=$T_TMP/$1 ns; ns=$(fac_ns "$1")
  charon_start "$d" "$ns"
  CHARON_PID[$name]=$BG_PID
}
stop_charon() { # stop_charon NAME : SIGTERM (charon deletes its SAs), wait, forget the PID
  local pid=${CHARON_PID[$1]}
  kill "$pid" 2>/dev/null || true
  timeout 10 tail --pid="$pid" -f /dev/null || kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
  unset "CHARON_PID[$1]"
}
child_up() { # child_up NAME : the facility's CHILD SA `net` is installed
  swan "$1" --list-sas 2>/dev/null | grep -E '^ +net: .*INSTALLED' >/dev/null
}
wait_child() { # wait_child NAME SECONDS
  local i
  for (( i=0; i<$2*4; i++ )); do child_up "$1" && return 0; sleep 0.25; done
  return 1
}
iperf_run() { # iperf_run CLIENT_NS CLIENT_BIND SERVER_NS SERVER_BIND DST SECONDS OUT (+ $IPERF_EXTRA)
  start_bg "$3" "$T_TMP/iperf3-s.log" iperf3 -s -1 -B "$4" -p 5201
  local spid=$BG_PID rc=0; sleep 0.5
  # shellcheck disable=SC2086
  ip netns exec "$1" timeout $(( $6 + 15 )) iperf3 -J -B "$2" -c "$5" -p 5201 -t "$6" ${IPERF_EXTRA:-} >"$7" 2>&1 || rc=$?
  wait "$spid" 2>/dev/null || true
  forget_pid "$spid"
  return $rc
}
mbits() { jq '.end.sum_received.bits_per_second / 1e6 | floor' "$1"; }
declare -a RESULTS=()

# traffic NAME LABEL : ping and iperf3 both ways between the facility's LAN host and mame-net's
# wireguard-go host, through exchange addresses; ixgw's counters of the peer move
traffic() {
  local name=$1 label=$2 ns n lan exch
  ns=$(fac_ns "$name") n=$(fac_n "$name")
  lan=10.0.$n.1 exch=100.64.$n.1
  local rx0 tx0 rx1 tx1
  rx0=$(metric $IX $METRICS ixgw_peer_rx_bytes_total "peer=\"$name\"")
  tx0=$(metric $IX $METRICS ixgw_peer_tx_bytes_total "peer=\"$name\"")
  check "$label: ping $lan → mame-net $B_EXCH through the tunnel" \
    bash -c "for i in \$(seq 20); do ip netns exec $ns ping -c1 -W1 -I $lan $B_EXCH >/dev/null 2>&1 && exit 0; sleep 0.25; done; exit 1"
  check "$label: ping mame-net → $exch (the facility's LAN host)" wait_ping $WGNS "$exch" 10
  if iperf_run "$ns" "$lan" $WGNS $B_HOST $B_EXCH "$SECS" "$T_TMP/$name-up.json"; then
    local up; up=$(mbits "$T_TMP/$name-up.json")
    pass "$label: iperf3 TCP facility → mame-net: $up Mbit/s, $(jq .end.sum_sent.retransmits "$T_TMP/$name-up.json") retransmits"
    RESULTS+=("$label facility→mame $up Mbit/s")
  else
    tail -5 "$T_TMP/$name-up.json" >&2; fail "$label: iperf3 TCP facility → mame-net"
  fi
  if iperf_run $WGNS $B_HOST "$ns" "$lan" "$exch" "$SECS" "$T_TMP/$name-down.json"; then
    local down; down=$(mbits "$T_TMP/$name-down.json")
    pass "$label: iperf3 TCP mame-net → facility: $down Mbit/s, $(jq .end.sum_sent.retransmits "$T_TMP/$name-down.json") retransmits"
    RESULTS+=("$label mame→facility $down Mbit/s")
  else
    tail -5 "$T_TMP/$name-down.json" >&2; fail "$label: iperf3 TCP mame-net → facility"
  fi
  rx1=$(metric $IX $METRICS ixgw_peer_rx_bytes_total "peer=\"$name\"")
  tx1=$(metric $IX $METRICS ixgw_peer_tx_bytes_total "peer=\"$name\"")
  check "$label: ixgw_peer_rx_bytes_total{peer=\"$name\"} moved by over 1 MB ($rx0 → $rx1)" test $(( rx1 - rx0 )) -gt 1000000
  check "$label: ixgw_peer_tx_bytes_total{peer=\"$name\"} moved by over 1 MB ($tx0 → $tx1)" test $(( tx1 - tx0 )) -gt 1000000
}

# selected NAME : the proposals strongSwan selected ("IKE:... ESP:...")
selected() { sed -n 's/.*selected proposal: //p' "$T_TMP/$1/charon.log" | paste -sd ' ' -; }
# ixlog : ixgw's log without colours
ixlog() { sed 's/\x1b\[[0-9;]*m//g' "$T_TMP/ixgw.log"; }
ixlog_has() { ixlog | grep -E "$1" >/dev/null; }

dump_logs() { # dump_logs NAME : the tail of both sides' logs after a failure
  log "charon log of $1:"; tail -40 "$T_TMP/$1/charon.log" >&2 || true
  log "ixgw log:"; tail -30 "$T_TMP/ixgw.log" >&2 || true
}

# established NAME LABEL PROPOSALS : the CHILD SA is installed with the expected proposals,
# and ixgw logged it
established() {
  local got; got=$(selected "$1")
  pass "$2: strongSwan's CHILD SA is installed"
  check "$2: strongSwan selected $3 (got: $got)" test "$got" == "$3"
  check "$2: ixgw logs the CHILD SA of $1" ixlog_has "CHILD SA established .*peer=\"$1\""
}

# log_count REGEX : lines of ixgw's log that match
log_count() { ixlog | grep -cE "$1" || true; }
# wait_log REGEX MIN SECONDS : until ixgw's log has MIN lines matching
wait_log() {
  local i
  for (( i=0; i<$3*4; i++ )); do (( $(log_count "$1") >= $2 )) && return 0; sleep 0.25; done
  return 1
}
# ping_through NAME : one ping from the facility's LAN host to mame-net's host answered
ping_through() {
  local ns n i; ns=$(fac_ns "$1") n=$(fac_n "$1")
  for (( i=0; i<20; i++ )); do
    ip netns exec "$ns" ping -c1 -W1 -I "10.0.$n.1" $B_EXCH >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  return 1
}

# rekeys NAME LABEL : strongSwan rekeys the CHILD SA, then the IKE SA, then the CHILD SA under
# the new IKE SA; traffic passes after each
rekeys() {
  local name=$1 label=$2 c k
  c=$(log_count "CHILD SA established .*peer=\"$name\".*rekey=true")
  swan "$name" --rekey --child net >/dev/null
  check "$label: strongSwan rekeys the CHILD SA, ixgw installs the new one" \
    wait_log "CHILD SA established .*peer=\"$name\".*rekey=true" $(( c + 1 )) 10
  check "$label: traffic after the CHILD SA rekey" ping_through "$name"
  k=$(log_count "IKE SA rekeyed .*peer=\"$name\"")
  swan "$name" --rekey --ike "$name" >/dev/null
  check "$label: strongSwan rekeys the IKE SA, ixgw follows" wait_log "IKE SA rekeyed .*peer=\"$name\"" $(( k + 1 )) 10
  check "$label: traffic after the IKE SA rekey" ping_through "$name"
  swan "$name" --rekey --child net >/dev/null
  check "$label: a CHILD SA rekey under the new IKE SA" \
    wait_log "CHILD SA established .*peer=\"$name\".*rekey=true" $(( c + 2 )) 10
  check "$label: traffic after it" ping_through "$name"
  check "$label: strongSwan has one IKE SA and one CHILD SA left" \
    test "$(swan "$name" --list-sas | grep -cE '^[a-z-]+: #[0-9]+, ESTABLISHED')/$(swan "$name" --list-sas | grep -cE '^ +net: #[0-9]+.*INSTALLED')" == 1/1
}

# responder_scenario NAME LABEL PROPOSALS [peer-config options] : strongSwan initiates
# (start_action = start, as peer-config writes it for a responding gateway); with REKEY=1 the
# rekeys too; with KEEP=1 its charon keeps running
responder_scenario() {
  local name=$1 label=$2 props=$3; shift 3
  log "== $label"
  swan_conf "$name" "$@"
  start_charon "$name"
  if wait_child "$name" 15; then
    established "$name" "$label" "$props"
    traffic "$name" "$label"
    [[ ${REKEY:-0} == 1 ]] && rekeys "$name" "$label"
  else
    fail "$label: no CHILD SA within 15 s"; dump_logs "$name"
  fi
  [[ ${KEEP:-0} == 1 ]] || stop_charon "$name"
}

# 1. PSK, strongSwan initiates, AES-GCM-256
GCM="IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256 ESP:AES_GCM_16_256/NO_EXT_SEQ"
REKEY=1 responder_scenario fac-gcm "1 psk/aes-gcm-256" "$GCM" --with-psk
grep -q 'proposals = aes256gcm16-prfsha256-ecp256' "$T_TMP/fac-gcm/swanctl/swanctl.conf" \
  && grep -q 'start_action = start' "$T_TMP/fac-gcm/swanctl/swanctl.conf" \
  || fail "peer-config of fac-gcm lacks the proposals or start_action = start"

# 2. certificates: ECDSA P-256, then RSA 2048
cert_files() { # cert_files NAME ATTACHMENT CA : the facility's certificate, key and the gateway's CA
  local d=$T_TMP/$1/swanctl
  mkdir -p "$d"/{x509,x509ca,private}
  cp "$P/$1.crt" "$d/x509/$1.crt"; cp "$P/$1.key" "$d/private/$1.key"; cp "$P/$3.crt" "$d/x509ca/$2-ca.crt"
}
cert_files fac-ec ajisai-ipsec ca-ec
# default proposals on both sides: the first of each, AES-GCM-256 with PRF SHA-256 and P-256
responder_scenario fac-ec "2 ecdsa-p256 certificates" "$GCM"
cert_files fac-rsa ajisai-rsa ca-rsa
responder_scenario fac-rsa "2 rsa-2048 certificates" "$GCM"

# 3. ixgw initiates; strongSwan only responds. The facility is loaded first, then a reload
# (fac-init unchanged) makes ixgw try its down peer again at once rather than at its next
# retransmission.
log "== 3 ixgw initiates (psk)"
swan_conf fac-init --with-psk
grep -q 'start_action = none' "$T_TMP/fac-init/swanctl/swanctl.conf" || fail "peer-config of fac-init: start_action is not none"
start_charon fac-init
kill -HUP "$IXGW_PID"
if wait_child fac-init 15; then
  established fac-init "3 ixgw initiates" "$GCM"
  check "3 ixgw initiates: strongSwan logs that ixgw initiated" grep -q "$GW is initiating an IKE_SA" "$T_TMP/fac-init/charon.log"
  traffic fac-init "3 ixgw initiates"
else
  fail "3 ixgw initiates: no CHILD SA within 15 s"; dump_logs fac-init
fi
# A facility restarting its daemon deletes the IKE SA on the way down and then waits
# (start_action = none): ixgw keeps the tunnel up, so it initiates again (after 10 s).
log "== 3 the facility restarts charon"
stop_charon fac-init
start_charon fac-init
if wait_child fac-init 25; then
  pass "3 ixgw initiates again after the facility's restart"
  check "3 ping after the facility's restart" ping_through fac-init
else
  fail "3 ixgw did not initiate again within 25 s of the facility's restart"; dump_logs fac-init
fi
stop_charon fac-init

# 4. a wrong pre-shared key
log "== 4 wrong psk"
swan_conf fac-bad --with-psk
sed -i 's/^\( *secret = \).*/\10x000102030405060708090a0b0c0d0e0f1011121314151617/' "$T_TMP/fac-bad/swanctl/swanctl.conf"
start_charon fac-bad
for (( i=0; i<40; i++ )); do grep -q 'AUTHENTICATION_FAILED' "$T_TMP/fac-bad/charon.log" && break; sleep 0.25; done
check "4 wrong psk: strongSwan logs AUTHENTICATION_FAILED" grep -q 'AUTHENTICATION_FAILED' "$T_TMP/fac-bad/charon.log"
check "4 wrong psk: ixgw logs the refusal naming fac-bad" ixlog_has 'IKE message refused .*peer="fac-bad".*AUTHENTICATION_FAILED'
if child_up fac-bad; then fail "4 wrong psk: a CHILD SA came up"; else pass "4 wrong psk: no CHILD SA"; fi
stop_charon fac-bad
check "4 wrong psk: no packet went through for fac-bad" test "$(metric $IX $METRICS ixgw_peer_rx_packets_total 'peer="fac-bad"')" -eq 0

# 5. AES-CBC-256 + HMAC-SHA-256 for IKE and ESP (AES-GCM-256 was scenario 1)
REKEY=1 KEEP=1 responder_scenario fac-cbc "5 psk/aes-cbc-256-sha256" \
  "IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256 ESP:AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ" --with-psk

log "throughput (TCP, ${SECS} s each): ${RESULTS[*]/%/;}"
for r in "${RESULTS[@]}"; do log "  $r"; done
log "drops by reason: $(http_get $IX 127.0.0.1 9478 /metrics | awk '/^ixgw_drops_total/ && $2 > 0 { printf "%s ", $0 }')"

# 6. The gateway reloads, then restarts, while fac-cbc (strongSwan initiates) is connected.
# A reload that leaves fac-cbc's keys alone keeps its SAs: strongSwan's CHILD SA keeps its
# SPIs and ixgw negotiates nothing. A reload that changes fac-cbc (its dpd_interval) deletes
# its IKE SA, and a stop deletes every IKE SA; peer-config's close_action = start and
# keyingtries = 0 bring the facility back each time.
log "== 6 gateway reload and restart with fac-cbc connected"
grep -q 'close_action = start' "$T_TMP/fac-cbc/swanctl/swanctl.conf" && grep -q 'keyingtries = 0' "$T_TMP/fac-cbc/swanctl/swanctl.conf" \
  || fail "peer-config of fac-cbc lacks close_action = start or keyingtries = 0"
# swan_spis NAME : the SPIs of the facility's CHILD SAs, as strongSwan lists them
swan_spis() { swan "$1" --list-sas | grep -oE '^ +(in|out) +[0-9a-f]{8}' | tr -s ' ' | paste -sd ' ' -; }
spis=$(swan_spis fac-cbc)
[[ -n $spis ]] || fail "6 strongSwan lists no CHILD SA of fac-cbc"
ups=$(log_count 'CHILD SA established .*peer="fac-cbc"')
reloads=$(log_count 'configuration reloaded')
kept_lines=$(log_count 'IKE engine reconfigured.*ajisai-ipsec')
kill -HUP "$IXGW_PID"
check "6 ixgw reloads" wait_log 'configuration reloaded' $(( reloads + 1 )) 10
kept=$(ixlog | grep -E 'IKE engine reconfigured.*ajisai-ipsec' | sed -n "$(( kept_lines + 1 ))p" | grep -oE 'child_sas_kept=[0-9]+' | cut -d= -f2)
check "6 this reload kept the IKE engine and fac-cbc's CHILD SA (child_sas_kept=${kept:-none})" test "${kept:-0}" -ge 1
check "6 ping right after the reload" ping_through fac-cbc
check "6 strongSwan's CHILD SA is the same ($spis)" test "$(swan_spis fac-cbc)" == "$spis"
check "6 ixgw negotiated nothing for fac-cbc" test "$(log_count 'CHILD SA established .*peer="fac-cbc"')" -eq "$ups"
sed -i 's/^\( *\)esp_proposals: \[aes256-sha256\]$/&\n\1dpd_interval: 20s/' "$T_TMP/ixgw.yaml"
grep -q 'dpd_interval: 20s' "$T_TMP/ixgw.yaml" || fail "6 could not change fac-cbc in the configuration"
deletes=$(grep -c 'received DELETE for IKE_SA' "$T_TMP/fac-cbc/charon.log" || true)
news=$(log_count 'CHILD SA established .*peer="fac-cbc".*rekey=false')
kill -HUP "$IXGW_PID"
# swan_deletes_over N : until fac-cbc's charon has logged more than N Deletes of IKE SAs (10 s)
swan_deletes_over() {
  local i
  for (( i=0; i<40; i++ )); do
    (( $(grep -c 'received DELETE for IKE_SA' "$T_TMP/fac-cbc/charon.log" || true) > $1 )) && return 0
    sleep 0.25
  done
  return 1
}
check "6 strongSwan received ixgw's DELETE after a reload that changed fac-cbc" swan_deletes_over "$deletes"
check "6 fac-cbc is back under its changed configuration" wait_log 'CHILD SA established .*peer="fac-cbc".*rekey=false' $(( news + 1 )) 15
check "6 ping after that reload" ping_through fac-cbc
kill -TERM "$IXGW_PID"
rc=0; wait "$IXGW_PID" || rc=$?
forget_pid "$IXGW_PID"
check "6 ixgw exited 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0
check "6 strongSwan received ixgw's DELETE of the IKE SA" grep -q 'received DELETE for IKE_SA' "$T_TMP/fac-cbc/charon.log"
mv "$T_TMP/ixgw.log" "$T_TMP/ixgw.log.1"
sleep 1
start_ixgw $IX 9478
check "6 fac-cbc is back after the restart" wait_log 'CHILD SA established .*peer="fac-cbc"' 1 30
check "6 ping after the restart" ping_through fac-cbc
stop_charon fac-cbc

# ---------------------------------------------------------------- 7. rekeys under load
declare -a MEASURED=()
# stall FILE : "LONGEST MEDIAN N MIN" over the intervals of an iperf3 -J run whose client
# received (-R): LONGEST is the longest run, in seconds, of consecutive intervals that each
# carried less than 1 % of the median interval (a stall: TCP waiting out a retransmission
# timeout, or nothing passing at all); MEDIAN and MIN are bytes per interval, N the intervals.
stall() {
  jq -r '[.intervals[].sum | {b: .bytes, s: .seconds}] as $iv
    | ($iv | map(.b) | sort | .[length / 2 | floor]) as $med
    | (reduce $iv[] as $x ({run: 0, max: 0};
        if $x.b < $med / 100 then .run += $x.s | .max = ([.max, .run] | max) else .run = 0 end)) as $r
    | "\($r.max * 100 | round / 100) \($med) \($iv | length) \($iv | map(.b) | min)"' "$1"
}
# sa_counts NAME : "IKE/CHILD" SAs strongSwan lists for NAME (IKE SAs in any state, CHILD SAs
# INSTALLED: strongSwan keeps a replaced one 5 s for late packets, as DELETED), then ixgw's
# ixgw_ike_sas of ajisai-ipsec (established IKE SAs / CHILD SAs), e.g. "1/1 1/1". No other
# peer of ajisai-ipsec has an IKE SA meanwhile (fac-init's are attempts, not established).
sa_counts() {
  local l; l=$(swan "$1" --list-sas 2>/dev/null || true)
  printf '%s/%s %s/%s' "$(grep -cE '^[a-z-]+: #[0-9]+,' <<<"$l" || true)" \
    "$(grep -cE '^ +net: #[0-9]+, .*INSTALLED' <<<"$l" || true)" \
    "$(metric $IX $METRICS ixgw_ike_sas 'attachment="ajisai-ipsec",state="established"')" \
    "$(metric $IX $METRICS ixgw_ike_sas 'attachment="ajisai-ipsec",state="child"')"
}
# swan_count NAME REGEX : lines of the facility's charon log that match
swan_count() { grep -cE "$2" "$T_TMP/$1/charon.log" || true; }

# rekey_scenario NAME LABEL WHO DIRECTION SED : WHO (ixgw | strongSwan) rekeys while iperf3
# TCP runs for REKEY_SECS in DIRECTION (up: facility → mame-net, down: the reverse), measured
# where the data is received in intervals of 0.25 s. SED edits the facility's swanctl.conf.
# The rekey timers start as the CHILD SA comes up, and iperf3 starts within 2 s of it, before
# the first rekey (9-10 s): every rekey counted happened under load.
rekey_scenario() {
  local name=$1 label=$2 who=$3 dir=$4 edit=$5 ns n out c0 k0 d0 c1 k1 d1 i counts
  ns=$(fac_ns "$name") n=$(fac_n "$name") out=$T_TMP/$name-rekey.json
  log "== $label"
  swan_conf "$name" --with-psk
  sed -i -E "$edit" "$T_TMP/$name/swanctl/swanctl.conf"
  start_charon "$name"
  if ! wait_child "$name" 15; then
    fail "$label: no CHILD SA within 15 s"; dump_logs "$name"; stop_charon "$name"; return
  fi
  c0=$(log_count "CHILD SA established .*peer=\"$name\".*rekey=true")
  k0=$(log_count "IKE SA rekeyed .*peer=\"$name\"")
  d0=$(log_count "peer down .*peer=\"$name\"")
  # strongSwan logs each request it sends ("generating") and receives ("parsed"); a CHILD SA
  # rekey carries N(REKEY_SA), an IKE SA rekey is [ SA No KE ] alone.
  local child_rq='CREATE_CHILD_SA request [0-9]+ \[ N\(REKEY_SA\)' ike_rq='CREATE_CHILD_SA request [0-9]+ \[ SA No KE \]'
  local theirs=generating ours=parsed
  [[ $who == strongSwan ]] && theirs=parsed ours=generating
  local sc0 si0 sx0
  sc0=$(swan_count "$name" "$ours $child_rq") si0=$(swan_count "$name" "$ours $ike_rq")
  sx0=$(swan_count "$name" "$theirs CREATE_CHILD_SA request")
  local rc=0
  if [[ $dir == up ]]; then
    IPERF_EXTRA="-R -i 0.25" iperf_run $WGNS $B_HOST "$ns" "10.0.$n.1" "100.64.$n.1" "$REKEY_SECS" "$out" || rc=$?
  else
    IPERF_EXTRA="-R -i 0.25" iperf_run "$ns" "10.0.$n.1" $WGNS $B_HOST $B_EXCH "$REKEY_SECS" "$out" || rc=$?
  fi
  c1=$(log_count "CHILD SA established .*peer=\"$name\".*rekey=true")
  k1=$(log_count "IKE SA rekeyed .*peer=\"$name\"")
  if (( rc == 0 )); then
    local longest med nint min mb
    read -r longest med nint min <<<"$(stall "$out")"
    mb=$(jq '.end.sum_received.bits_per_second / 1e6 | floor' "$out")
    pass "$label: iperf3 TCP $dir for $REKEY_SECS s: $mb Mbit/s"
    check "$label: no stall of 1 s or more (longest run of 0.25 s intervals under 1 % of the median $med B: ${longest} s; $nint intervals, smallest $min B)" \
      awk -v x="$longest" 'BEGIN { exit !(x < 1.0) }'
    MEASURED+=("$label: $dir $mb Mbit/s, longest stall ${longest} s, smallest 0.25 s interval $min B (median $med B)")
  else
    tail -5 "$out" >&2; fail "$label: iperf3 TCP $dir across the rekeys"
  fi
  check "$label: ixgw logged CHILD SA rekeys of $name under load ($((c1 - c0)))" test $((c1 - c0)) -ge 1
  check "$label: ixgw logged IKE SA rekeys of $name under load ($((k1 - k0)))" test $((k1 - k0)) -ge 1
  local sc1 si1 sx1
  sc1=$(swan_count "$name" "$ours $child_rq") si1=$(swan_count "$name" "$ours $ike_rq")
  sx1=$(swan_count "$name" "$theirs CREATE_CHILD_SA request")
  check "$label: $who initiated them: strongSwan's log has $((sc1 - sc0)) CHILD SA and $((si1 - si0)) IKE SA rekey requests '$ours'" \
    test $((sc1 - sc0)) -ge 1 -a $((si1 - si0)) -ge 1
  check "$label: the other side initiated no CREATE_CHILD_SA ($((sx1 - sx0)))" test $((sx1 - sx0)) -eq 0
  # A rekey may be under way at this instant (the CHILD SA's every 10 s): a few tries.
  for (( i=0; i<20; i++ )); do
    counts=$(sa_counts "$name")
    [[ $counts == "1/1 1/1" ]] && break
    sleep 0.25
  done
  check "$label: one IKE SA and one CHILD SA left on both sides (strongSwan, ixgw: $counts)" test "$counts" == "1/1 1/1"
  d1=$(log_count "peer down .*peer=\"$name\"")
  check "$label: ixgw logged no 'peer down' for $name" test "$d1" -eq "$d0"
  check "$label: traffic after the rekeys" ping_through "$name"
  stop_charon "$name"
}
# 7a. ixgw's peer rekeys the CHILD SA every 10 s and the IKE SA every 20 s (both less up to
# 10 % of jitter); strongSwan's rekey_time (peer-config copies ixgw's) is off.
rekey_scenario fac-rkgw "7 ixgw rekeys" ixgw up 's/^( *rekey_time = ).*/\10/'
# 7b. strongSwan rekeys the CHILD SA at rekey_time 10 s (rand_time 1 s) and the IKE SA at
# 20 s (less up to 2 s); ixgw's peer has the default 1 h and 4 h.
rekey_scenario fac-rksw "7 strongSwan rekeys" strongSwan down 's/^(    rekey_time = ).*/\120s/; s/^(        rekey_time = ).*/\110s/'

# ---------------------------------------------------------------- 8. per-peer byte counters
# What each counter counts:
#   ixgw_peer_rx_bytes_total{peer}  inner IP bytes ixgw decrypted out of the peer's CHILD SAs
#                                   (every packet, also those then dropped)
#   ixgw_peer_tx_bytes_total{peer}  inner IP bytes ixgw encrypted into the peer's CHILD SA
#   ipsec0 tx bytes (facility)      inner IP packets the facility's kernel routed into the
#                                   tunnel, counted as charon's kernel-libipsec reads them
#                                   from its TUN to encrypt them
#   ipsec0 rx bytes (facility)      inner IP packets kernel-libipsec decrypted and wrote
#   iperf3 sum_sent.bytes           TCP payload only
# Between ixgw and ipsec0 lie only the ESP-in-UDP datagrams on one veth, one inner packet
# each: each pair of counters is equal to the byte unless the receiving namespace's UDP
# sockets overflowed (UdpRcvbufErrors; pacing with -b keeps that rare), and then the
# sender's count exceeds the receiver's by what those datagrams carried: at least 0 and at
# most 1400 bytes (ipsec0's MTU) each. Against iperf3: a full segment carries 1348 bytes of
# payload (MSS 1360 on the facility's 1400-byte ipsec0, less 12 of TCP timestamps) in 1400
# bytes of IP, so the data direction moves the payload × 1400 / 1348 plus 1400 bytes per
# retransmission, and a few kB of the control connection: within 1 %.
# tunbytes NS rx|tx : the byte counter of the facility's ipsec0
tunbytes() { ip -n "$1" -j -s link show ipsec0 | jq ".[0].stats64.$2.bytes"; }
peerbytes() { metric $IX $METRICS "ixgw_peer_$2_bytes_total" "peer=\"$1\""; }
# within PCT A B : A is within PCT % of B
within() { awk -v p="$1" -v a="$2" -v b="$3" 'BEGIN { exit !(b > 0 && a / b > 1 - p / 100 && a / b < 1 + p / 100) }'; }
# lost_only SENT RECEIVED DROPS : RECEIVED is SENT less what DROPS datagrams carried
lost_only() { (( $1 - $2 >= 0 && $1 - $2 <= $3 * 1400 )); }
# udp_drops NS : UdpRcvbufErrors since the last `nstat -n` in NS
udp_drops() { ip netns exec "$1" nstat -az UdpRcvbufErrors | awk 'NR > 1 { print $2 }'; }
COUNTER_RATE=${IPSEC_COUNTER_RATE:-50M}
log "== 8 per-peer byte counters (fac-dpd)"
swan_conf fac-dpd --with-psk
start_charon fac-dpd
if wait_child fac-dpd 15; then
  ns=$(fac_ns fac-dpd) n=$(fac_n fac-dpd)
  check "8 counters: ping through" ping_through fac-dpd
  sleep 0.5
  for x in $IX "$ns"; do ip netns exec "$x" nstat -n >/dev/null; done
  declare -A B0 B1 B2
  snap() { # snap ARRAY : ixgw's two counters of fac-dpd and ipsec0's
    local -n a=$1
    a[rx]=$(peerbytes fac-dpd rx) a[tx]=$(peerbytes fac-dpd tx) a[ttx]=$(tunbytes "$ns" tx) a[trx]=$(tunbytes "$ns" rx)
  }
  snap B0
  IPERF_EXTRA="-b $COUNTER_RATE" iperf_run "$ns" "10.0.$n.1" $WGNS $B_HOST $B_EXCH 4 "$T_TMP/counters-up.json" || fail "8 counters: paced iperf3 up"
  sleep 0.5; snap B1
  IPERF_EXTRA="-b $COUNTER_RATE" iperf_run $WGNS $B_HOST "$ns" "10.0.$n.1" "100.64.$n.1" 4 "$T_TMP/counters-down.json" || fail "8 counters: paced iperf3 down"
  sleep 0.5; snap B2
  ixdrops=$(udp_drops $IX) facdrops=$(udp_drops "$ns")
  rx=$(( B2[rx] - B0[rx] )) ttx=$(( B2[ttx] - B0[ttx] )) tx=$(( B2[tx] - B0[tx] )) trx=$(( B2[trx] - B0[trx] ))
  check "8 counters: ixgw_peer_rx_bytes_total ($rx) is what fac-dpd's ipsec0 sent ($ttx) less what $ixdrops datagrams dropped in $IX carried (difference $((ttx - rx)))" \
    lost_only "$ttx" "$rx" "$ixdrops"
  check "8 counters: fac-dpd's ipsec0 received ($trx) what ixgw_peer_tx_bytes_total counts ($tx) less what $facdrops datagrams dropped in $ns carried (difference $((tx - trx)))" \
    lost_only "$tx" "$trx" "$facdrops"
  MEASURED+=("8 counters: ipsec0 tx − ixgw rx = $((ttx - rx)) B ($ixdrops UDP drops), ixgw tx − ipsec0 rx = $((tx - trx)) B ($facdrops UDP drops)")
  for run in "up rx counters-up B0 B1" "down tx counters-down B1 B2"; do
    read -r dir what f from to <<<"$run"
    declare -n b_from=$from b_to=$to
    sent=$(jq '.end.sum_sent.bytes' "$T_TMP/$f.json") re=$(jq '.end.sum_sent.retransmits' "$T_TMP/$f.json")
    moved=$(awk -v b="$sent" -v r="$re" 'BEGIN { printf "%.0f", b * 1400 / 1348 + r * 1400 }')
    ours=$(( b_to[$what] - b_from[$what] ))
    check "8 counters: $dir: ixgw_peer_${what}_bytes_total moved $ours, within 1 % of iperf3's $sent payload with headers and $re retransmissions ($moved; ratio $(awk -v a="$ours" -v b="$moved" 'BEGIN { printf "%.4f", a / b }'))" \
      within 1 "$ours" "$moved"
    MEASURED+=("8 counters $dir: ixgw $ours B, iperf3 $sent B payload, $re retransmissions ($moved B expected)")
    unset -n b_from b_to
  done
else
  fail "8 counters: no CHILD SA within 15 s"; dump_logs fac-dpd
fi

# ---------------------------------------------------------------- 9. dead peer detection
# wait_metric NAME LABELS VALUE SECONDS : until ixgw's metric has VALUE
wait_metric() {
  local i
  for (( i=0; i<$4*4; i++ )); do [[ $(metric $IX $METRICS "$1" "$2") == "$3" ]] && return 0; sleep 0.25; done
  return 1
}
# fac-dpd's charon is killed (no Delete reaches ixgw). ixgw sends a liveness check after
# dpd_interval (5 s) without anything from the peer and gives up dpd_timeout (10 s) later:
# the peer is down within 15 s of the kill, 16 s as the data path reports inbound ESP once
# a second; 17 s leaves a second for this loop's polling and a loaded machine.
log "== 9 dead peer detection: fac-dpd's charon is killed"
DPD_BOUND=17
downs0=$(log_count 'peer down .*peer="fac-dpd"')
dpd0=$(metric $IX $METRICS ixgw_ike_peer_down_total 'attachment="ajisai-ipsec",reason="dpd_timeout"')
check "9 dpd: ixgw_peer_up{peer=\"fac-dpd\"} is 1 before" test "$(metric $IX $METRICS ixgw_peer_up 'peer="fac-dpd"')" -eq 1
pid=${CHARON_PID[fac-dpd]}
t0=$(date +%s.%N)
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
forget_pid "$pid"; unset 'CHARON_PID[fac-dpd]'
logged='' zeroed='' elapsed=0
for (( i=0; i<DPD_BOUND*20 && elapsed<DPD_BOUND+3; i++ )); do
  now=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
  elapsed=${now%.*}
  [[ -z $logged ]] && (( $(log_count 'peer down .*peer="fac-dpd"') > downs0 )) && logged=$now
  [[ -z $zeroed && $(metric $IX $METRICS ixgw_peer_up 'peer="fac-dpd"') == 0 ]] && zeroed=$now
  [[ -n $logged && -n $zeroed ]] && break
  sleep 0.1
done
check "9 dpd: ixgw logged 'peer down' for fac-dpd ${logged:-never} s after the kill (bound $DPD_BOUND s)" \
  awk -v t="${logged:-999}" -v b=$DPD_BOUND 'BEGIN { exit !(t <= b) }'
check "9 dpd: ixgw_peer_up{peer=\"fac-dpd\"} was 0 ${zeroed:-never} s after the kill" \
  awk -v t="${zeroed:-999}" -v b=$DPD_BOUND 'BEGIN { exit !(t <= b) }'
check "9 dpd: the reason logged is DpdTimeout" ixlog_has 'peer down .*peer="fac-dpd".*reason=DpdTimeout'
dpd1=$(metric $IX $METRICS ixgw_ike_peer_down_total 'attachment="ajisai-ipsec",reason="dpd_timeout"')
check "9 dpd: ixgw_ike_peer_down_total{reason=\"dpd_timeout\"} rose by 1 ($dpd0 → $dpd1)" test $((dpd1 - dpd0)) -eq 1
MEASURED+=("9 dpd: peer down logged after ${logged:-never} s, ixgw_peer_up 0 after ${zeroed:-never} s (bound $DPD_BOUND s)")
# Nothing is done to ixgw: strongSwan's start_action = start brings the tunnel back.
log "== 9 fac-dpd's charon restarts"
start_charon fac-dpd
if wait_child fac-dpd 15; then
  pass "9 dpd: the tunnel is back after charon's restart"
  check "9 dpd: ping through" ping_through fac-dpd
  check "9 dpd: ixgw_peer_up{peer=\"fac-dpd\"} is 1 again" wait_metric ixgw_peer_up 'peer="fac-dpd"' 1 3
else
  fail "9 dpd: no CHILD SA within 15 s of charon's restart"; dump_logs fac-dpd
fi
stop_charon fac-dpd

# ---------------------------------------------------------------- 10. refusals
# One ixgw peer, fac-deny, with its `endpoint` configured: an IKE_SA_INIT refused before any
# identity is known is attributed to the peer by that source address (else it is logged at
# debug level only, as from no one). strongSwan is configured three ways, one after another.
# refusal LABEL SED SWAN_REGEX REASON NOTIFY
refusal() {
  local label=$1 edit=$2 swan_re=$3 reason=$4 notify=$5 r0 r1 l0 l1 i
  log "== $label"
  swan_conf fac-deny --with-psk
  sed -i -E "$edit" "$T_TMP/fac-deny/swanctl/swanctl.conf"
  : >"$T_TMP/fac-deny/charon.log"
  r0=$(metric $IX $METRICS ixgw_ike_refused_total "attachment=\"ajisai-ipsec\",reason=\"$reason\"")
  l0=$(log_count "IKE message refused .*peer=\"fac-deny\".*$notify")
  start_charon fac-deny
  for (( i=0; i<40; i++ )); do grep -qE "$swan_re" "$T_TMP/fac-deny/charon.log" && break; sleep 0.25; done
  check "$label: strongSwan logs '$swan_re'" grep -qE "$swan_re" "$T_TMP/fac-deny/charon.log"
  r1=$(metric $IX $METRICS ixgw_ike_refused_total "attachment=\"ajisai-ipsec\",reason=\"$reason\"")
  l1=$(log_count "IKE message refused .*peer=\"fac-deny\".*$notify")
  check "$label: ixgw_ike_refused_total{reason=\"$reason\"} rose ($r0 → $r1)" test "$r1" -gt "$r0"
  check "$label: ixgw logged the refusal with $notify naming fac-deny ($l0 → $l1)" test "$l1" -gt "$l0"
  if child_up fac-deny; then fail "$label: a CHILD SA came up"; else pass "$label: no CHILD SA"; fi
  stop_charon fac-deny
}
refusal "10 weak IKE proposal" 's/^(    proposals = ).*/\1aes128-sha1-modp1024/' \
  'received NO_PROPOSAL_CHOSEN notify error' no_proposal_chosen NO_PROPOSAL_CHOSEN
check "10 weak IKE proposal: strongSwan offered it" \
  grep -q 'configured proposals: IKE:AES_CBC_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024$' "$T_TMP/fac-deny/charon.log"
refusal "10 weak ESP proposal" 's/^( *esp_proposals = ).*/\1aes128-sha1/' \
  'received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built' no_proposal_chosen NO_PROPOSAL_CHOSEN
# Selectors outside the tenant (192.168.77.0/24) and of another facility of it (fac-gcm's).
refusal "10 traffic selectors outside the peer's" 's|^( *local_ts = ).*|\1192.168.77.0/24,10.0.1.0/24|' \
  'received TS_UNACCEPTABLE notify, no CHILD_SA built' ts_unacceptable TS_UNACCEPTABLE

log "measured in scenarios 7-9:"
for r in "${MEASURED[@]}"; do log "  $r"; done

# With several workers the peers' SAs are spread over them: each CHILD SA's log line names
# its worker, and every peer above was pinged through its own.
workers=$(metric $IX $METRICS ixgw_workers '')
owners=$(cat "$T_TMP/ixgw.log.1" "$T_TMP/ixgw.log" | sed 's/\x1b\[[0-9;]*m//g' \
  | grep -E 'CHILD SA established' | grep -oE 'worker=[0-9]+' | sort -u | tr '\n' ' ' || true)
if (( workers > 1 )); then
  check "workers: the CHILD SAs live on more than one of the $workers workers (${owners:-none})" \
    test "$(wc -w <<<"$owners")" -ge 2
else
  pass "workers: one worker, nothing to spread"
fi

log "SIGTERM"
kill -TERM "$IXGW_PID"
rc=0; wait "$IXGW_PID" || rc=$?
forget_pid "$IXGW_PID"
check "ixgw exited 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0
# Nothing above may log an error (e.g. the peers' answers to the Deletes of a stop, arriving
# while the worker drains, once took the IKE thread for dead).
errors=$(cat "$T_TMP/ixgw.log.1" "$T_TMP/ixgw.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -c ' ERROR ' || true)
check "ixgw logged no errors ($errors)" test "$errors" -eq 0

finish 60 "$T_TMP/ixgw.log"
