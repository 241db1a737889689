#!/usr/bin/env bash
# End-to-end: the stock openconnect client (--protocol=anyconnect, certificate login) against
# ixgw's `tls` attachment, and a WireGuard facility of another tenant with the same address.
#
#   ssl-a  openconnect, tun gets 10.0.0.1 (ajisai-net's pool) ── veth 172.31.5.2 ↔ .1 ──┐
#   fac-w  10.0.0.1/32 on wireguard-go (mame-net)             ── veth 172.31.6.2 ↔ .1 ──┤ ix
#
# Exchange space: ajisai-net 100.64.0.0/24, mame-net 100.65.0.0/24. Certificates from two lab
# CAs made with `ixgw ca`: `lab` (ajisai-net's) and `other` (mame-net's).
# Usage: netns-tests/tls.sh [path/to/ixgw]   (root; needs openconnect vpnc-scripts wireguard-go wg iperf3)
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
IXGW=$(readlink -m "${1:-$here/../target/release/ixgw}")
cd "$here"
source ./lib.sh
netns_begin

need ip openconnect wireguard-go wg wg-quick iperf3 jq ping timeout
[[ -x /usr/share/vpnc-scripts/vpnc-script ]] || die "vpnc-scripts is not installed (see .ci/run)"

METRICS=127.0.0.1:9477
IF_W=ixt-wg
CODE_A=$(facility_code 421234567) CODE_R=$(facility_code 421234568) CODE_N=$(facility_code 421234569)
CODE_W=$(facility_code 321987654) CODE_GW=$(facility_code 131234567)
log "namespaces and underlay"
for ns in ix ssl-a ssl-n fac-w; do netns_add $ns; done
extra_cleanup() { rm -f /var/run/wireguard/$IF_W.sock; }
[[ -S /var/run/wireguard/$IF_W.sock ]] && rm -f /var/run/wireguard/$IF_W.sock
link_ns ix ssl-a 172.31.5.1/30 172.31.5.2/30 ix-ssl up-ssl
link_ns ix fac-w 172.31.6.1/30 172.31.6.2/30 ix-w up-w
# clinic N reaches the same listener through ns ix's second link (routed by ix's kernel).
link_ns ix ssl-n 172.31.7.1/30 172.31.7.2/30 ix-ssn up-ssn
ip -n ssl-n route add 172.31.5.0/30 via 172.31.7.1

log "certificates (ixgw ca): lab (ajisai-net) and other (mame-net)"
umask 077
for k in gw-w fac-w; do "$IXGW" genkey >"$T_TMP/$k.key"; done
pub() { "$IXGW" pubkey <"$T_TMP/$1.key"; }
ca() { "$IXGW" ca "$@" --log warn >/dev/null; }
LAB=$T_TMP/lab OTHER=$T_TMP/other P=$T_TMP/pki
mkdir -p "$P"
ca init --dir "$LAB" --name "ixgw netns lab"
ca init --dir "$OTHER" --name "another network's CA"
ca issue --dir "$LAB" --facility "$CODE_GW" --name "ixgw gateway" --dns gw.ix.test --out "$P/gw"
ca issue --dir "$LAB" --facility "$CODE_A" --name "clinic A" --out "$P/clinic-a"
ca issue --dir "$LAB" --facility "$CODE_R" --name "clinic R" --out "$P/clinic-r"
ca issue --dir "$LAB" --facility "$CODE_N" --name "clinic N" --out "$P/clinic-n"
ca issue --dir "$OTHER" --facility "$CODE_A" --name "clinic A, wrong CA" --out "$P/foreign"
ca revoke --dir "$LAB" "$P/clinic-r.crt" --reason key-compromise

write_config() { # write_config WITH_CLINIC_N
  cat >"$T_TMP/ixgw.yaml" <<YAML
ix:
  name: tls-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: $METRICS
  admin_socket: $T_TMP/ixgw.sock
trust:
  - name: lab
    ca_file: lab/ca.crt
    crl_files: [lab/crl.pem]
  - name: other
    ca_file: other/ca.crt
    crl_files: [other/crl.pem]
facilities:
  - { code: "$CODE_A", name: Clinic A, tenant: ajisai-net, certificate: presented }
  - { code: "$CODE_R", name: Clinic R, tenant: ajisai-net, certificate: presented }
  - { code: "$CODE_N", name: Clinic N, tenant: ajisai-net, certificate: presented }
  - { code: "$CODE_W", name: Izumo hospital, tenant: mame-net, certificate: none }
tenants:
  - name: ajisai-net
    trust: [lab]
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.64.0.0/24 }
    attachments:
      - name: ajisai-ssl
        type: tls
        listen: 172.31.5.1:443
        certificate_file: pki/gw.crt
        private_key_file: pki/gw.key
        client_ca: [lab]
        pool: 10.0.0.0/29
        dpd: 10s
        keepalive: 10s
        peers:
          - { name: clinic-a, facility: "$CODE_A" }
          - { name: clinic-r, facility: "$CODE_R" }
$( [[ $1 == 1 ]] && echo "          - { name: clinic-n, facility: \"$CODE_N\" }")
  - name: mame-net
    trust: [other]
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.65.0.0/24 }
    attachments:
      - name: mame-wg
        type: wireguard
        listen: 172.31.6.1:51820
        private_key_file: gw-w.key
        peers:
          - name: fac-w
            facility: "$CODE_W"
            public_key: "$(pub fac-w)"
            allowed_ips: [10.0.0.1/32]
            address: 10.0.0.1/24
            persistent_keepalive: 25s
policies:
  - name: ajisai-to-mame
    from: { tenant: ajisai-net }
    to: { tenant: mame-net }
    allow: [icmp, tcp/5201, udp/5201]
  - name: mame-to-ajisai
    from: { tenant: mame-net }
    to: { tenant: ajisai-net }
    allow: [icmp]
YAML
}
write_config 0
"$IXGW" check --config "$T_TMP/ixgw.yaml" >/dev/null || die "the test configuration does not validate"

log "ixgw in ns ix"
start_ixgw ix 9477
wg_facility fac-w $IF_W fac-w

"$IXGW" peer-config --config "$T_TMP/ixgw.yaml" --peer clinic-a >"$T_TMP/clinic-a.sh"
grep -q -- '--protocol=anyconnect' "$T_TMP/clinic-a.sh" && grep -q 'pin-sha256:' "$T_TMP/clinic-a.sh" \
  && pass "peer-config prints the openconnect command line with the gateway's pin" \
  || { cat "$T_TMP/clinic-a.sh" >&2; fail "peer-config for a TLS peer"; }
PIN=$(grep -o 'pin-sha256:[A-Za-z0-9+/=]*' "$T_TMP/clinic-a.sh")

# openconnect NS LOG CERT... : the stock client, certificate login, no DTLS; PID in OC_PID
openconnect_start() {
  local ns=$1 logf=$2; shift 2
  start_bg "$ns" "$logf" openconnect --protocol=anyconnect "$@" --servercert "$PIN" --non-inter \
    --interface oc0 --script /usr/share/vpnc-scripts/vpnc-script -v https://172.31.5.1:443/
  OC_PID=$BG_PID
}
handshakes() { metric ix $METRICS ixgw_handshakes_total "attachment=\"ajisai-ssl\",result=\"$1\""; }

log "clinic A logs in with its facility certificate"
openconnect_start ssl-a "$T_TMP/oc-a.log" --certificate "$P/clinic-a.crt" --sslkey "$P/clinic-a.key"
for i in $(seq 50); do ip -n ssl-a addr show oc0 2>/dev/null | grep 'inet ' >/dev/null && break; sleep 0.2; done
if ip -n ssl-a addr show oc0 2>/dev/null | grep 'inet 10.0.0.1' >/dev/null; then
  pass "openconnect got 10.0.0.1 from the pool"
else
  tail -30 "$T_TMP/oc-a.log" >&2; tail -20 "$T_TMP/ixgw.log" >&2; die "openconnect did not connect"
fi
# vpnc-script adds the routes after the address.
for i in $(seq 25); do ip -n ssl-a route | grep '100.65.0.0/24 dev oc0' >/dev/null && break; sleep 0.2; done
ip -n ssl-a route | grep '100.65.0.0/24 dev oc0' >/dev/null && pass "the split route to mame-net's exchange prefix is in the client's table" \
  || { ip -n ssl-a route >&2; fail "split route 100.65.0.0/24"; }
check "ping client → fac-w (100.65.0.1, also 10.0.0.1 inside)" wait_ping ssl-a 100.65.0.1 20
check "ping fac-w → client (100.64.0.1)" wait_ping fac-w 100.64.0.1 10
start_bg fac-w "$T_TMP/iperf-w.log" timeout 40 iperf3 -s -B 10.0.0.1 -1
sleep 0.5
if ip netns exec ssl-a timeout 30 iperf3 -c 100.65.0.1 -t 3 -J >"$T_TMP/tcp.json"; then
  bps=$(jq '.end.sum_received.bits_per_second | floor' "$T_TMP/tcp.json")
  [[ $bps -gt 5000000 ]] && pass "TCP client → fac-w: $((bps / 1000000)) Mbit/s" || fail "TCP client → fac-w only $bps bit/s"
else fail "iperf3 client → fac-w"; fi
[[ $(handshakes ok) -ge 1 ]] && pass "the login counted (handshakes ok)" || fail "handshakes ok: $(handshakes ok)"
[[ $(metric ix $METRICS ixgw_peer_up 'peer="clinic-a"') == 1 ]] && pass "clinic-a up" || fail "ixgw_peer_up clinic-a"

log "refused: no certificate, a revoked one, another tenant's CA"
cert_before=$(handshakes certificate)
for c in none clinic-r foreign; do
  if [[ $c == none ]]; then args=(); else args=(--certificate "$P/$c.crt" --sslkey "$P/$c.key"); fi
  if ip netns exec ssl-a timeout 20 openconnect --protocol=anyconnect "${args[@]}" --servercert "$PIN" \
      --non-inter --authenticate https://172.31.5.1:443/ >"$T_TMP/oc-$c.log" 2>&1; then
    fail "a client with $c was let in"; tail -5 "$T_TMP/oc-$c.log" >&2
  else pass "a client with $c is refused"; fi
done
cert_after=$(handshakes certificate)
[[ $((cert_after - cert_before)) -ge 3 ]] && pass "three refusals counted as certificate ($cert_before → $cert_after)" \
  || fail "refusals counted: $cert_before → $cert_after"
grep -q 'TLS login refused.*revoked' "$T_TMP/ixgw.log" && pass "the revoked certificate's refusal is logged" \
  || fail "no log line for the revoked certificate"

log "reload adding TLS peer clinic-n while clinic A sends UDP to fac-w"
udp_during fac-w 10.0.0.1 ssl-a 100.65.0.1 10M 1000 -- reload_with 1
[[ $UDP_SENT -gt 1000 && $UDP_LOST == 0 ]] && pass "clinic A's session kept across the reload: no UDP lost ($UDP_SENT sent)" \
  || fail "UDP across the reload: $UDP_LOST of $UDP_SENT lost"
grep -q 'configuration reloaded' "$T_TMP/ixgw.log" || fail "the reload is logged"
start_bg ssl-n "$T_TMP/oc-n.log" openconnect --protocol=anyconnect --certificate "$P/clinic-n.crt" --sslkey "$P/clinic-n.key" \
  --servercert "$PIN" --non-inter --interface oc0 --script /usr/share/vpnc-scripts/vpnc-script -v https://172.31.5.1:443/
OC_N=$BG_PID
for i in $(seq 50); do ip -n ssl-n addr show oc0 2>/dev/null | grep 'inet ' >/dev/null && break; sleep 0.2; done
addr_n=$(ip -n ssl-n -4 addr show oc0 2>/dev/null | awk '/inet /{print $2}')
[[ $addr_n == 10.0.0.2/* ]] && pass "clinic N, added by the reload, got 10.0.0.2" || { tail -20 "$T_TMP/oc-n.log" >&2; fail "clinic N's address: '$addr_n'"; }
check "ping clinic N → fac-w" wait_ping ssl-n 100.65.0.1 20
kill -INT "$OC_N"; wait "$OC_N" 2>/dev/null || true; forget_pid "$OC_N"

log "the connection breaks: openconnect comes back with its cookie and keeps its address"
ip netns exec ssl-a ss -K dst 172.31.5.1 dport = 443 >/dev/null 2>&1 || true
for i in $(seq 60); do grep -q 'up again (reconnect)' "$T_TMP/ixgw.log" && break; sleep 0.5; done
grep -q 'up again (reconnect)' "$T_TMP/ixgw.log" && pass "the client reconnected to its session" \
  || { tail -20 "$T_TMP/oc-a.log" >&2; fail "no reconnect"; }
ip -n ssl-a addr show oc0 2>/dev/null | grep 'inet 10.0.0.1' >/dev/null && pass "same address after the reconnect" || fail "address after reconnect"
check "ping after the reconnect" wait_ping ssl-a 100.65.0.1 20

log "logoff: SIGINT makes openconnect send DISCONNECT"
kill -INT "$OC_PID"
for i in $(seq 30); do kill -0 "$OC_PID" 2>/dev/null || break; sleep 0.2; done
for i in $(seq 20); do grep -q 'logged off' "$T_TMP/ixgw.log" && break; sleep 0.2; done
grep -q 'TLS session ended: the client logged off' "$T_TMP/ixgw.log" && pass "the logoff ended the session" \
  || fail "no logoff in the log"
[[ $(metric ix $METRICS ixgw_peer_up 'peer="clinic-a"') == 0 ]] && pass "clinic-a down after logoff" || fail "ixgw_peer_up after logoff"

log "revocation: clinic A logs in again, then its certificate is revoked"
openconnect_start ssl-a "$T_TMP/oc-a2.log" --certificate "$P/clinic-a.crt" --sslkey "$P/clinic-a.key"
OC_A2=$OC_PID
for i in $(seq 50); do ip -n ssl-a addr show oc0 2>/dev/null | grep 'inet ' >/dev/null && break; sleep 0.2; done
check "clinic A back (ping fac-w)" wait_ping ssl-a 100.65.0.1 20
t0=$(date +%s.%N)
ca revoke --dir "$LAB" "$P/clinic-a.crt" --reason key-compromise
for i in $(seq 50); do grep -q 'TLS session ended: the facility certificate is refused now' "$T_TMP/ixgw.log" && break; sleep 0.1; done
t1=$(date +%s.%N)
grep -q 'TLS session ended: the facility certificate is refused now' "$T_TMP/ixgw.log" \
  && pass "the revoked client's session ended $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s after the revocation" \
  || fail "the session of a revoked certificate did not end"
ip netns exec ssl-a ping -c 2 -W 1 100.65.0.1 >/dev/null 2>&1 && fail "the revoked client still reaches fac-w" \
  || pass "nothing passes for the revoked client"
for i in $(seq 30); do kill -0 "$OC_A2" 2>/dev/null || break; sleep 0.2; done
kill -0 "$OC_A2" 2>/dev/null && { kill -INT "$OC_A2"; fail "openconnect kept running after its session was ended"; } \
  || pass "openconnect exited: its session was ended and its cookie refused"

finish 60 "$T_TMP/ixgw.log"
