#!/usr/bin/env bash
# End-to-end: ixgw between two stock WireGuard facilities (wireguard-go) whose networks both
# use 10.0.0.0/24, and a claims service LAN behind a plain (TUN) attachment.
#
#   fac-a  10.0.0.2/24 on wireguard-go ixa-wg ── veth 172.31.1.2 ↔ 172.31.1.1 ──┐
#   fac-b  10.0.0.2/24 on wireguard-go ixb-wg ── veth 172.31.2.2 ↔ 172.31.2.1 ──┤ ix (ixgw)
#   fac-c  10.0.0.3/24 (added by SIGHUP)      ── veth 172.31.3.2 ↔ 172.31.3.1 ──┤
#   claims 192.168.50.10/24 (HTTP on 8443)    ── veth 192.168.50.10 ↔ .1 ───────┘ TUN ixgw-claims
#
# Exchange space: ajisai-net 100.64.0.0/24, mame-net 100.65.0.0/24, claims 100.127.0.0/24.
# Usage: netns-tests/gateway.sh [path/to/ixgw]   (root; needs wireguard-go wg iperf3 jq ping)
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
IXGW=$(readlink -m "${1:-$here/../target/release/ixgw}")
cd "$here"
source ./lib.sh
netns_begin

need ip wireguard-go wg wg-quick iperf3 jq ping python3 timeout

METRICS=127.0.0.1:9477
IF_A=ixa-wg IF_B=ixb-wg IF_C=ixc-wg
log "namespaces and underlay"
# netns_add refuses names that exist, so a second run cannot disturb a first one; only after
# that are the UAPI sockets of our interface names ours to clean.
for ns in ix fac-a fac-b fac-c claims; do netns_add $ns; done
extra_cleanup() { rm -f /var/run/wireguard/$IF_A.sock /var/run/wireguard/$IF_B.sock /var/run/wireguard/$IF_C.sock; }
for s in $IF_A $IF_B $IF_C; do [[ -S /var/run/wireguard/$s.sock ]] && rm -f /var/run/wireguard/$s.sock; done
veth() { link_ns ix "$1" "$2" "$3" "ix-$4" "up-$4"; } # veth NS IX_ADDR NS_ADDR NAME
veth fac-a 172.31.1.1/30 172.31.1.2/30 a
veth fac-b 172.31.2.1/30 172.31.2.2/30 b
veth fac-c 172.31.3.1/30 172.31.3.2/30 c
veth claims 192.168.50.1/24 192.168.50.10/24 lan
ip -n claims route add default via 192.168.50.1

log "keys"
umask 077
for k in gw-a gw-b fac-a fac-b fac-c standby-b; do "$IXGW" genkey >"$T_TMP/$k.key"; done
pub() { "$IXGW" pubkey <"$T_TMP/$1.key"; }
# cross-check our key derivation against wireguard-tools
[[ $(pub fac-a) == $(wg pubkey <"$T_TMP/fac-a.key") ]] || die "ixgw pubkey disagrees with wg pubkey"

write_config() { # write_config WITH_FAC_C
  cat >"$T_TMP/ixgw.yaml" <<YAML
ix:
  name: netns-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: $METRICS
  admin_socket: $T_TMP/ixgw.sock
# Two workers whatever the machine: fac-b (slot 1, behind the standby peer) lives on worker 1,
# fac-a, fac-c and the claims LAN on worker 0, so their flows cross between workers.
dataplane:
  workers: 2
tenants:
  - name: ajisai-net
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.64.0.0/24 }
    attachments:
      - name: ajisai-wg
        type: wireguard
        listen: 172.31.1.1:51820
        private_key_file: gw-a.key
        peers:
          - name: fac-a
            facility: "4212345674"
            public_key: "$(pub fac-a)"
            allowed_ips: [10.0.0.2/32]
            address: 10.0.0.2/24
            persistent_keepalive: 25s
$(if [[ $1 == 1 ]]; then cat <<MORE
      - name: ajisai-wg-c
        type: wireguard
        listen: 172.31.3.1:51822
        private_key_file: gw-a.key
        peers:
          - name: fac-c
            facility: "4212345617"
            public_key: "$(pub fac-c)"
            allowed_ips: [10.0.0.3/32]
            address: 10.0.0.3/24
            persistent_keepalive: 25s
MORE
fi)
  - name: mame-net
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.65.0.0/24 }
    attachments:
      - name: mame-wg
        type: wireguard
        listen: 172.31.2.1:51821
        private_key_file: gw-b.key
        peers:
          - name: standby-b
            facility: "3219876541"
            public_key: "$(pub standby-b)"
            allowed_ips: [10.0.0.9/32]
          - name: fac-b
            facility: "3219876541"
            public_key: "$(pub fac-b)"
            allowed_ips: [10.0.0.2/32]
            address: 10.0.0.2/24
            persistent_keepalive: 25s
  - name: claims
    networks:
      - { internal: 192.168.50.0/24, exchange: 100.127.0.0/24 }
    attachments:
      - name: claims-lan
        type: plain
        tun: ixgw-claims
        routes: [192.168.50.0/24]
services:
  - name: online-claims
    tenant: claims
    address: 192.168.50.10
    ports: [tcp/8443]
policies:
  - name: ajisai-to-mame
    from: { tenant: ajisai-net }
    to: { tenant: mame-net }
    allow: [tcp/5201, icmp]
  - name: mame-to-ajisai
    from: { tenant: mame-net }
    to: { tenant: ajisai-net }
    allow: [tcp/5201, icmp]
  - name: ajisai-files-claims
    from: { tenant: ajisai-net }
    to: { service: online-claims }
YAML
}
write_config 0
"$IXGW" check --config "$T_TMP/ixgw.yaml" || die "the test configuration does not validate"

log "ixgw in ns ix"
start_ixgw ix 9477

wg_facility fac-a $IF_A fac-a
wg_facility fac-b $IF_B fac-b
grep -q '^AllowedIPs = .*100.65.0.0/24' "$T_TMP/$IF_A.conf" && grep -q '100.127.0.10/32' "$T_TMP/$IF_A.conf" \
  && pass "peer-config gives fac-a the exchange prefixes its policies reach" \
  || { cat "$T_TMP/$IF_A.conf" >&2; fail "peer-config AllowedIPs of fac-a"; }

log "claims service"
mkdir -p "$T_TMP/www"; echo "claims-ok" >"$T_TMP/www/index.html"
start_bg claims "$T_TMP/http.log" python3 -m http.server 8443 --bind 192.168.50.10 --directory "$T_TMP/www"

log "ping through exchange addresses"
check "ping A → B (100.65.0.2)" wait_ping fac-a 100.65.0.2 20
check "ping B → A (100.64.0.2)" wait_ping fac-b 100.64.0.2 20

log "claims service from A"
sleep 0.5
check "A reaches the claims service at 100.127.0.10:8443" bash -c "$(declare -f http_get); http_get fac-a 100.127.0.10 8443 / | grep -q claims-ok"

log "forbidden flows"
# fac-b's own configuration does not route to the claims service (no policy lets mame-net
# reach it); a misconfigured facility that routes there anyway must be stopped by ixgw.
ip netns exec fac-b wg set $IF_B peer "$(awk -F' = ' '/^PublicKey/{print $2}' "$T_TMP/$IF_B.conf")" \
  allowed-ips 100.64.0.0/24,100.127.0.10/32
ip -n fac-b route add 100.127.0.10/32 dev $IF_B
before=$(metric ix $METRICS ixgw_drops_total 'reason="policy"')
if http_get fac-b 100.127.0.10 8443 / >/dev/null 2>&1; then fail "mame-net reached the claims service without a policy"; else pass "mame-net → claims service is refused"; fi
if http_get fac-b 100.64.0.2 22 / >/dev/null 2>&1; then fail "mame-net opened tcp/22 to ajisai-net"; else pass "mame-net → ajisai-net tcp/22 is refused"; fi
after=$(metric ix $METRICS ixgw_drops_total 'reason="policy"')
check "ixgw_drops_total{reason=\"policy\"} rose ($before → $after)" test "$after" -gt "$before"

iperf_run() { # iperf_run CLIENT_NS SERVER_NS SERVER_BIND DST SECONDS OUT
  start_bg "$2" "$T_TMP/iperf3-s.log" iperf3 -s -1 -B "$3" -p 5201
  local spid=$BG_PID; sleep 0.5
  # shellcheck disable=SC2086
  ip netns exec "$1" timeout $(( $5 + 15 )) iperf3 -J -c "$4" -p 5201 -t "$5" ${IPERF_EXTRA:-} >"$6" 2>&1
  local rc=$?
  wait "$spid" 2>/dev/null || true
  return $rc
}

log "iperf3 TCP A → B"
if iperf_run fac-a fac-b 10.0.0.2 100.65.0.2 5 "$T_TMP/ab.json"; then
  pass "iperf3 A → B: $(jq '.end.sum_received.bits_per_second / 1e6 | floor' "$T_TMP/ab.json") Mbit/s, $(jq .end.sum_sent.retransmits "$T_TMP/ab.json") retransmits"
else
  cat "$T_TMP/ab.json" >&2; fail "iperf3 A → B"
fi

# Counter accuracy: a paced transfer, so that no socket on the path overflows and every byte
# iperf3 sends crosses the gateway once. Inner IP bytes exceed TCP payload by the 52 bytes of
# IP+TCP headers per 1368-byte segment (3.8 %).
log "per-peer byte counters against iperf3"
for ns in ix fac-a fac-b; do ip netns exec $ns nstat -n >/dev/null; done
# linkbytes NS IF tx|rx : the kernel's byte counter of a facility's WireGuard interface, i.e.
# the inner IP bytes wireguard-go took from (tx) or gave to (rx) the kernel
linkbytes() { ip -n "$1" -j -s link show "$2" | jq ".[0].stats64.$3.bytes"; }
rx0=$(metric ix $METRICS ixgw_peer_rx_bytes_total 'peer="fac-a"')
tx0=$(metric ix $METRICS ixgw_peer_tx_bytes_total 'peer="fac-b"')
la0=$(linkbytes fac-a $IF_A tx); lb0=$(linkbytes fac-b $IF_B rx)
if IPERF_EXTRA="-b 100M" iperf_run fac-a fac-b 10.0.0.2 100.65.0.2 4 "$T_TMP/paced.json"; then
  sent=$(jq '.end.sum_sent.bytes' "$T_TMP/paced.json")
  rx1=$(metric ix $METRICS ixgw_peer_rx_bytes_total 'peer="fac-a"')
  tx1=$(metric ix $METRICS ixgw_peer_tx_bytes_total 'peer="fac-b"')
  la1=$(linkbytes fac-a $IF_A tx); lb1=$(linkbytes fac-b $IF_B rx)
  log "retransmits: $(jq .end.sum_sent.retransmits "$T_TMP/paced.json"); $(for ns in ix fac-a fac-b; do printf '%s: %s ' $ns "$(ip netns exec $ns nstat -z UdpRcvbufErrors | awk 'NR>1{print $2}')"; done)"
  # Against iperf3's payload: on the 1420-byte tunnel MTU a full segment carries 1368 bytes
  # of payload (MSS 1380 less 12 of TCP timestamps) in 1420 bytes of IP, so what crossed is
  # the payload × 1420 / 1368 (plus retransmissions, a fraction of a percent when paced).
  moved=$(awk -v b="$sent" 'BEGIN { printf "%.0f", b * 1420 / 1368 }')
  for dir in "fac-a rx:$((rx1 - rx0))" "fac-b tx:$((tx1 - tx0))"; do
    ratio=$(awk -v a="${dir#*:}" -v b="$moved" 'BEGIN { printf "%.4f", a / b }')
    check "${dir%%:*} bytes (${dir#*:}) within 5 % of what iperf3 moved ($sent payload, $moved with headers): ratio $ratio" \
      awk -v r="$ratio" 'BEGIN { exit !(r > 0.95 && r < 1.05) }'
  done
  # Against the facilities' own interfaces: the same inner bytes, counted by their kernels.
  for pair in "fac-a rx:$((rx1 - rx0)):$((la1 - la0))" "fac-b tx:$((tx1 - tx0)):$((lb1 - lb0))"; do
    IFS=: read -r what ours theirs <<<"$pair"
    check "$what bytes ($ours) within 1 % of the facility interface's count ($theirs)" \
      awk -v a="$ours" -v b="$theirs" 'BEGIN { exit !(b > 0 && a / b > 0.99 && a / b < 1.01) }'
  done
else
  cat "$T_TMP/paced.json" >&2; fail "paced iperf3 A → B"
fi

log "ixgw show against the metrics"
show() { "$IXGW" show --socket "$T_TMP/ixgw.sock" "$@"; }
m0=$(metric ix $METRICS ixgw_peer_rx_bytes_total 'peer="fac-a"')
if show --json >"$T_TMP/show.json"; then
  m1=$(metric ix $METRICS ixgw_peer_rx_bytes_total 'peer="fac-a"')
  shown=$(jq '[.attachments[].peers[] | select(.name == "fac-a")][0].rx_bytes' "$T_TMP/show.json")
  check "ixgw show's rx bytes of fac-a ($shown) are the metric's ($m0 … $m1)" \
    test "$shown" -ge "$m0" -a "$shown" -le "$m1"
  for peer in fac-a fac-b; do
    tx=$(metric ix $METRICS ixgw_peer_tx_packets_total "peer=\"$peer\"")
    shown=$(jq "[.attachments[].peers[] | select(.name == \"$peer\")][0].tx_packets" "$T_TMP/show.json")
    wire=$(jq "[.attachments[].peers[] | select(.name == \"$peer\")][0].wire_tx_bytes" "$T_TMP/show.json")
    wire_m=$(metric ix $METRICS ixgw_peer_wire_tx_bytes_total "peer=\"$peer\"")
    check "$peer: shown tx packets $shown and wire bytes $wire match the metrics ($tx, $wire_m)" \
      test "$shown" -eq "$tx" -a "$wire" -eq "$wire_m"
  done
  check "every connected peer shown is up" test "$(jq '[.attachments[].peers[] | select(.name != "standby-b" and .state != "up")] | length' "$T_TMP/show.json")" -eq 0
else
  fail "ixgw show --json"
fi
show fac-a >"$T_TMP/show-fac-a.txt" || fail "ixgw show fac-a"
for want in "attachment: ajisai-wg (wireguard, tenant ajisai-net)" "  peer: fac-a" \
    "    facility: 4212345674" "    endpoint: 172.31.1.2:" "    state: up" "    latest handshake: "; do
  check "ixgw show fac-a: '$want'" grep -qF -- "$want" "$T_TMP/show-fac-a.txt"
done
check "ixgw show fac-a shows no other peer" test "$(grep -c '^  peer: ' "$T_TMP/show-fac-a.txt")" -eq 1
if show no-such-peer >/dev/null 2>&1; then fail "ixgw show of an unknown name exits 0"; else pass "ixgw show of an unknown name exits 1"; fi

log "fac-a moves to another port: the gateway follows and logs it"
ip netns exec fac-a wg set $IF_A listen-port 51999
check "A still pings B from its new port" wait_ping fac-a 100.65.0.2 10
check "the move is logged once, named" test "$(grep -c 'peer endpoint changed.*peer="fac-a".*facility="4212345674".*to=172.31.1.2:51999' "$T_TMP/ixgw.log")" -eq 1
check "ixgw show follows it" bash -c "'$IXGW' show --socket '$T_TMP/ixgw.sock' fac-a | grep -qF 'endpoint: 172.31.1.2:51999'"

log "iperf3 TCP B → A"
if iperf_run fac-b fac-a 10.0.0.2 100.64.0.2 5 "$T_TMP/ba.json"; then
  pass "iperf3 B → A: $(jq '.end.sum_received.bits_per_second / 1e6 | floor' "$T_TMP/ba.json") Mbit/s"
else
  cat "$T_TMP/ba.json" >&2; fail "iperf3 B → A"
fi

log "SIGHUP adding fac-c during an A → B transfer"
start_bg fac-b "$T_TMP/iperf3-s2.log" iperf3 -s -1 -B 10.0.0.2 -p 5201
spid=$BG_PID; sleep 0.5
start_bg fac-a "$T_TMP/long.json" timeout 30 iperf3 -J -c 100.65.0.2 -p 5201 -t 8 -i 1
cpid=$BG_PID
sleep 3
write_config 1
reloads0=$(metric ix $METRICS ixgw_config_reloads_total 'result="ok"')
kill -HUP $IXGW_PID
crc=0; wait $cpid || crc=$?; forget_pid $cpid
wait $spid 2>/dev/null || true
reloads1=$(metric ix $METRICS ixgw_config_reloads_total 'result="ok"')
check "the reload was applied (reloads ok $reloads0 → $reloads1)" test "$reloads1" -gt "$reloads0"
if [[ $crc == 0 ]]; then
  min=$(jq '[.intervals[].sum.bytes] | min' "$T_TMP/long.json")
  n=$(jq '.intervals | length' "$T_TMP/long.json")
  check "no 1-second interval of the transfer stalled across the reload (min $min bytes in $n intervals)" \
    test "$min" -gt 100000
else
  cat "$T_TMP/long.json" >&2; fail "the A → B transfer across the reload failed"
fi
wg_facility fac-c $IF_C fac-c
check "fac-c, added by the reload, pings B (100.65.0.2)" wait_ping fac-c 100.65.0.2 20

log "the unit's ExecReload= refuses a bad file without signalling"
# systemd is not PID 1 here (nor on CI's containers): run the unit's own ExecReload= lines as
# systemd would, one after the other, stopping at the first that fails.
exec_reload() {
  local line cmd
  while IFS= read -r line; do
    cmd=${line#ExecReload=}
    cmd=${cmd//\/usr\/bin\/ixgw/$IXGW}
    cmd=${cmd//\/etc\/ixgw\/ixgw.yaml/$T_TMP/ixgw.yaml}
    cmd=${cmd//\$MAINPID/$IXGW_PID}
    eval "$cmd" || return 1
  done < <(grep '^ExecReload=' "$here/../systemd/ixgw.service")
}
check "the unit has ExecReload= lines that check, then signal" \
  bash -c "grep '^ExecReload=' '$here/../systemd/ixgw.service' | head -1 | grep -q ' check ' && grep '^ExecReload=' '$here/../systemd/ixgw.service' | tail -1 | grep -q -- '-HUP'"
cp "$T_TMP/ixgw.yaml" "$T_TMP/good.yaml"
ok0=$(metric ix $METRICS ixgw_config_reloads_total 'result="ok"')
failed0=$(metric ix $METRICS ixgw_config_reloads_total 'result="failed"')
sed -i 's|exchange: 100.65.0.0/24|exchange: 100.64.0.0/24|' "$T_TMP/ixgw.yaml"
if exec_reload 2>"$T_TMP/exec-reload.err"; then fail "ExecReload= succeeded on a bad file"; else pass "ExecReload= fails on a bad file"; fi
check "  and says where ($(head -1 "$T_TMP/exec-reload.err"))" grep -q 'ixgw.yaml:[0-9]*: tenants\[1\]' "$T_TMP/exec-reload.err"
sleep 0.5
check "  and never signalled the daemon (reloads unchanged, last reload successful)" \
  test "$(metric ix $METRICS ixgw_config_reloads_total 'result="ok"')" -eq "$ok0" \
    -a "$(metric ix $METRICS ixgw_config_reloads_total 'result="failed"')" -eq "$failed0" \
    -a "$(metric ix $METRICS ixgw_config_last_reload_successful '')" -eq 1
cp "$T_TMP/good.yaml" "$T_TMP/ixgw.yaml"
check "ExecReload= on the good file succeeds" exec_reload
for (( i=0; i<20; i++ )); do
  (( $(metric ix $METRICS ixgw_config_reloads_total 'result="ok"') > ok0 )) && break
  sleep 0.2
done
check "  and the daemon reloaded it" test "$(metric ix $METRICS ixgw_config_reloads_total 'result="ok"')" -gt "$ok0"

log "SIGHUP with a bad file keeps the running configuration"
failed0=$(metric ix $METRICS ixgw_config_reloads_total 'result="failed"')
sed -i 's|exchange: 100.65.0.0/24|exchange: 100.64.0.0/24|' "$T_TMP/ixgw.yaml"
kill -HUP $IXGW_PID
for (( i=0; i<20; i++ )); do
  failed1=$(metric ix $METRICS ixgw_config_reloads_total 'result="failed"')
  (( failed1 > failed0 )) && break
  sleep 0.2
done
check "the bad reload is counted (failed $failed0 → $failed1)" test "$failed1" -gt "$failed0"
check "the bad reload is logged with file, line and key" grep -q 'reload rejected.*ixgw.yaml:[0-9]*: tenants\[1\].networks\[0\].exchange' "$T_TMP/ixgw.log"
check "ixgw_config_last_reload_successful is 0 after it" test "$(metric ix $METRICS ixgw_config_last_reload_successful '')" -eq 0
check "traffic still flows A → B after the rejected reload" wait_ping fac-a 100.65.0.2 5
check "and fac-c too" wait_ping fac-c 100.65.0.2 5

log "counters"
hs=$(metric ix $METRICS ixgw_handshakes_total 'result="ok"')
check "handshakes counted ($hs)" test "$hs" -ge 3
up=$(metric ix $METRICS ixgw_peers_up '')
check "ixgw_peers_up is 3 ($up)" test "$up" -eq 3

log "drops by tenant and reason: $(http_get ix 127.0.0.1 9477 /metrics | awk '/^ixgw_drops_total/ && $2 > 0 { printf "%s ", $0 }')"
pol=$(metric ix $METRICS ixgw_drops_total 'tenant="mame-net",reason="policy"')
check "mame-net's refused flows count as its policy drops ($pol)" test "$pol" -gt 0
handed=$(http_get ix 127.0.0.1 9477 /metrics | awk '/^ixgw_drops_total/ && /reason="(worker_queue_full|handoff_stale)"/ { s += $2 } END { print s + 0 }')
check "nothing lost between the two workers ($handed)" test "$handed" -eq 0
w1=$(metric ix $METRICS ixgw_worker_received_total 'worker="1"')
check "worker 1 read fac-b's traffic ($w1 packets)" test "$w1" -gt 10000
moved=$(metric ix $METRICS ixgw_worker_handed_on_total 'worker="0"')
check "worker 0 handed packets to worker 1 ($moved)" test "$moved" -gt 1000
threads=$(cat /proc/"$IXGW_PID"/task/*/comm | grep -c '^ixgw-worker' || true)
check "two data-path worker threads run ($threads)" test "$threads" -eq 2

log "log lines"
check "no escape codes in the log (stderr is not a terminal)" bash -c "! grep -q $'\x1b' '$T_TMP/ixgw.log'"
for peer in fac-a:4212345674 fac-b:3219876541 fac-c:4212345617; do
  n=$(grep -c "peer up.*peer=\"${peer%%:*}\".*facility=\"${peer#*:}\"" "$T_TMP/ixgw.log" || true)
  check "${peer%%:*} came up once, named with its facility ($n line)" test "$n" -eq 1
  check "${peer%%:*}'s handshakes are logged" grep -q "handshake completed.*peer=\"${peer%%:*}\".*remote=" "$T_TMP/ixgw.log"
done
check "the reload that added fac-c says what changed" grep -q 'configuration reloaded.*added.*ajisai-wg-c' "$T_TMP/ixgw.log"
ipv6=$(metric ix $METRICS ixgw_drops_total 'reason="ipv6"')
check "no IPv6 reached the data path (the TUN device's own IPv6 is off): $ipv6" test "$ipv6" -eq 0

log "SIGTERM drains and exits 0"
kill -TERM $IXGW_PID
rc=0; wait $IXGW_PID || rc=$?
forget_pid $IXGW_PID
check "ixgw exited 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0

finish 50 "$T_TMP/ixgw.log"
