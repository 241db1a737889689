#!/usr/bin/env bash
# End-to-end: usage records for cost sharing. ixgw persists its counters every second
# (usage.interval: 1s); iperf3 moves UDP traffic of a fixed datagram size between a facility of
# ajisai-net and one of mame-net, both ways; ixgw is stopped (SIGTERM) and started again in
# the middle and reloaded (SIGHUP) during a transfer; then `ixgw usage` must report, per
# tenant pair and per facility, what iperf3 moved, within 1 %. Last, a crash (SIGKILL) after a
# transfer: every record written before it stays, and has the transfer.
#
#   usg-a  10.0.0.2/24 on wireguard-go usa-wg ── veth 172.31.61.2 ↔ 172.31.61.1 ──┐ usg-ix (ixgw)
#   usg-b  10.0.0.2/24 on wireguard-go usb-wg ── veth 172.31.62.2 ↔ 172.31.62.1 ──┘
#
# What iperf3 moved, in ixgw's unit (inner IP bytes): each UDP datagram carries 1000 bytes of
# payload (-l 1000) in 1028 bytes of IP (20 of IPv4, 8 of UDP header). The expected figure is
# the datagrams the receiving iperf3 got (sent less lost) × 1028; ixgw also forwarded iperf3's
# TCP control connections and the pings of the test (a few kB and about 60 packets each way,
# 0.03 % of the bytes and 0.4 % of the packets).
#
# Usage: netns-tests/usage.sh [path/to/ixgw]   (root; needs wireguard-go wg iperf3 jq ping)
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
IXGW=$(readlink -m "${1:-$here/../target/release/ixgw}")
cd "$here"
source ./lib.sh
netns_begin

need ip wireguard-go wg wg-quick iperf3 jq ping timeout awk

PORT=9481
METRICS=127.0.0.1:$PORT
IF_A=usa-wg IF_B=usb-wg
CODE_A=4212345674 CODE_B=3219876541
USAGE_DIR=$T_TMP/usage
DGRAM=1000
IP_BYTES=$((DGRAM + 28))

log "namespaces and underlay"
for ns in usg-ix usg-a usg-b; do netns_add $ns; done
extra_cleanup() { rm -f /var/run/wireguard/$IF_A.sock /var/run/wireguard/$IF_B.sock; }
for s in $IF_A $IF_B; do [[ -S /var/run/wireguard/$s.sock ]] && rm -f /var/run/wireguard/$s.sock; done
veth() { link_ns usg-ix "$1" "$2" "$3" "ix-$4" "up-$4"; } # veth NS IX_ADDR NS_ADDR NAME
veth usg-a 172.31.61.1/30 172.31.61.2/30 a
veth usg-b 172.31.62.1/30 172.31.62.2/30 b

log "keys and configuration"
umask 077
for k in gw-a gw-b fac-a fac-b; do "$IXGW" genkey >"$T_TMP/$k.key"; done
pub() { "$IXGW" pubkey <"$T_TMP/$1.key"; }
cat >"$T_TMP/ixgw.yaml" <<YAML
ix:
  name: usage-ix
  exchange_space: 100.64.0.0/10
metrics:
  listen: $METRICS
usage:
  dir: $USAGE_DIR
  interval: 1s
facilities:
  - { code: "$CODE_A", name: "Omura clinic", tenant: ajisai-net, certificate: none }
  - { code: "$CODE_B", name: "Izumo hospital", tenant: mame-net, certificate: none }
tenants:
  - name: ajisai-net
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.64.0.0/24 }
    attachments:
      - name: ajisai-wg
        type: wireguard
        listen: 172.31.61.1:51820
        private_key_file: gw-a.key
        peers:
          - name: fac-a
            facility: "$CODE_A"
            public_key: "$(pub fac-a)"
            allowed_ips: [10.0.0.2/32]
            address: 10.0.0.2/24
            persistent_keepalive: 25s
  - name: mame-net
    networks:
      - { internal: 10.0.0.0/24, exchange: 100.65.0.0/24 }
    attachments:
      - name: mame-wg
        type: wireguard
        listen: 172.31.62.1:51821
        private_key_file: gw-b.key
        peers:
          - name: fac-b
            facility: "$CODE_B"
            public_key: "$(pub fac-b)"
            allowed_ips: [10.0.0.2/32]
            address: 10.0.0.2/24
            persistent_keepalive: 25s
policies:
  - name: ajisai-to-mame
    from: { tenant: ajisai-net }
    to: { tenant: mame-net }
    allow: [tcp/5201, udp/5201, icmp]
  - name: mame-to-ajisai
    from: { tenant: mame-net }
    to: { tenant: ajisai-net }
    allow: [tcp/5201, udp/5201, icmp]
YAML
"$IXGW" check --config "$T_TMP/ixgw.yaml" >/dev/null || die "the test configuration does not validate"

log "ixgw, facilities"
start_ixgw usg-ix $PORT
wg_facility usg-a $IF_A fac-a
wg_facility usg-b $IF_B fac-b
wait_ping usg-a 100.65.0.2 20 || die "A cannot reach B"
wait_ping usg-b 100.64.0.2 20 || die "B cannot reach A"

# udp_run CLIENT_NS SERVER_NS DST SECONDS RATE OUT : a paced UDP transfer of DGRAM-byte datagrams
udp_run() {
  start_bg "$2" "$T_TMP/iperf3-s.log" iperf3 -s -1 -B 10.0.0.2 -p 5201
  local spid=$BG_PID; sleep 0.5
  local rc=0
  ip netns exec "$1" timeout $(( $4 + 15 )) iperf3 -J -u -l $DGRAM -b "$5" -c "$3" -p 5201 -t "$4" >"$6" 2>&1 || rc=$?
  wait "$spid" 2>/dev/null || true
  forget_pid "$spid"
  return $rc
}
# delivered OUT : datagrams the receiving iperf3 got
delivered() { jq '.end.sum_received.packets - .end.sum_received.lost_packets' "$1"; }

AB=0 BA=0 RUN=0
transfer() { # transfer CLIENT_NS SERVER_NS DST SECONDS RATE DIR(ab|ba)
  RUN=$((RUN + 1))
  local out="$T_TMP/udp-$RUN-$6.json" n
  udp_run "$1" "$2" "$3" "$4" "$5" "$out" || { cat "$out" >&2; die "iperf3 $6 (run $RUN) failed"; }
  n=$(delivered "$out")
  log "run $RUN $6: $n datagrams delivered of $(jq .end.sum_sent.packets "$out") sent ($(jq .end.sum_received.lost_percent "$out") % lost)"
  if [[ $6 == ab ]]; then AB=$((AB + n)); else BA=$((BA + n)); fi
}

log "traffic before the restart"
transfer usg-a usg-b 100.65.0.2 3 20M ab
transfer usg-b usg-a 100.64.0.2 3 20M ba

# restart_ixgw WHEN : starts ixgw again in usg-ix; the facilities' sessions died with the old
# process, so they are set up anew at once (not after WireGuard's timeouts); A reaches B.
restart_ixgw() {
  local when=$1 f
  start_ixgw usg-ix $PORT
  for f in "usg-a $IF_A" "usg-b $IF_B"; do
    set -- $f
    ip netns exec "$1" wg setconf "$2" "$T_TMP/$2.wg"
  done
  wait_ping usg-a 100.65.0.2 20 || die "A cannot reach B after $when"
}

log "SIGTERM, then start again"
kill -TERM "$IXGW_PID"
rc=0; wait "$IXGW_PID" || rc=$?
forget_pid "$IXGW_PID"
check "ixgw exited 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0
last=$(cat "$USAGE_DIR"/usage-*.jsonl | tail -1 | jq -r .cut)
check "the stopped daemon's last record is its stop record (cut: $last)" test "$last" = stop
sleep 1.5
restart_ixgw "the restart"
wait_ping usg-b 100.64.0.2 20 || die "B cannot reach A after the restart"

log "traffic after the restart, a reload in the middle of it"
start_bg usg-b "$T_TMP/iperf3-s-reload.log" iperf3 -s -1 -B 10.0.0.2 -p 5201
spid=$BG_PID; sleep 0.5
RUN=$((RUN + 1)); out="$T_TMP/udp-$RUN-ab.json"
start_bg usg-a "$out" timeout 30 iperf3 -J -u -l $DGRAM -b 20M -c 100.65.0.2 -p 5201 -t 4
cpid=$BG_PID
sleep 2
# The reload puts a new tenant first: every tenant and peer is renumbered, so the counts go on
# only if they are carried by name.
cat >"$T_TMP/aaa.yaml" <<YAML
  - name: aaa-net
    networks:
      - { internal: 10.9.0.0/24, exchange: 100.66.0.0/24 }
    attachments:
      - name: aaa-wg
        type: wireguard
        listen: 172.31.61.1:51830
        private_key_file: gw-a.key
        peers: []
YAML
sed -i "/^tenants:\$/r $T_TMP/aaa.yaml" "$T_TMP/ixgw.yaml"
"$IXGW" check "$T_TMP/ixgw.yaml" >/dev/null || die "the reloaded configuration does not validate"
ok0=$(metric usg-ix $METRICS ixgw_config_reloads_total 'result="ok"')
kill -HUP "$IXGW_PID"
crc=0; wait "$cpid" || crc=$?; forget_pid "$cpid"
check "the reload renumbering the tenants was applied" \
  test "$(metric usg-ix $METRICS ixgw_config_reloads_total 'result="ok"')" -gt "$ok0"
wait "$spid" 2>/dev/null || true; forget_pid "$spid"
[[ $crc == 0 ]] || { cat "$out" >&2; die "iperf3 across the reload failed"; }
n=$(delivered "$out"); AB=$((AB + n))
log "run $RUN ab (across the reload): $n datagrams delivered"
transfer usg-b usg-a 100.64.0.2 3 20M ba

# The records are written at each second's boundary: 2.5 s later everything is on disk.
sleep 2.5
written=$(metric usg-ix $METRICS ixgw_usage_records_written_total '')
failed=$(metric usg-ix $METRICS ixgw_usage_write_failures_total '')
check "the running daemon writes records ($written written, $failed failed)" \
  bash -c "(( $written >= 3 && $failed == 0 ))"
cuts=$(cat "$USAGE_DIR"/usage-*.jsonl | jq -r .cut | sort | uniq -c | tr -s ' \n' ' ')
log "records by cut: $cuts"
check "a reload record was written" grep -q '"cut":"reload"' "$USAGE_DIR"/usage-*.jsonl

# The period: from the first record's start to the last one's end, so that the one gap in it
# is the restart's.
T0=$(cat "$USAGE_DIR"/usage-*.jsonl | head -1 | jq -r .start)
T1=$(cat "$USAGE_DIR"/usage-*.jsonl | tail -1 | jq -r .end)
EXP_AB=$((AB * IP_BYTES)) EXP_BA=$((BA * IP_BYTES))
log "iperf3 moved $AB datagrams A → B ($EXP_AB IP bytes), $BA B → A ($EXP_BA IP bytes); period $T0 .. $T1"

# within NAME GOT EXPECTED : GOT within 1 % of EXPECTED
within() {
  local ratio
  ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.4f", (b > 0 ? a / b : 0) }')
  check "$1: $2 vs $3 expected (ratio $ratio)" awk -v r="$ratio" 'BEGIN { exit !(r >= 0.99 && r <= 1.01) }'
}

log "ixgw usage --by tenant"
"$IXGW" usage --dir "$USAGE_DIR" --from "$T0" --to "$T1" >"$T_TMP/tenant.csv" 2>"$T_TMP/tenant.err" \
  || { cat "$T_TMP/tenant.err" >&2; die "ixgw usage --by tenant failed"; }
cat "$T_TMP/tenant.csv" "$T_TMP/tenant.err" >&2
check "the CSV has its header" grep -qx 'tenant_a,tenant_b,packets_a_to_b,bytes_a_to_b,packets_b_to_a,bytes_b_to_a' "$T_TMP/tenant.csv"
row=$(grep '^ajisai-net,mame-net,' "$T_TMP/tenant.csv" || true)
IFS=, read -r _ _ pab bab pba bba <<<"$row"
within "tenant pair ajisai-net → mame-net bytes" "${bab:-0}" "$EXP_AB"
within "tenant pair mame-net → ajisai-net bytes" "${bba:-0}" "$EXP_BA"
within "tenant pair ajisai-net → mame-net packets" "${pab:-0}" "$AB"
within "tenant pair mame-net → ajisai-net packets" "${pba:-0}" "$BA"
check "the coverage names one gap, the restart's" test "$(grep -c '^coverage: gap ' "$T_TMP/tenant.err")" -eq 1
check "no line was skipped" bash -c "! grep -q skipped '$T_TMP/tenant.err'"

log "ixgw usage --by facility --format json"
"$IXGW" usage --dir "$USAGE_DIR" --from "$T0" --to "$T1" --by facility --format json >"$T_TMP/facility.json" \
  || die "ixgw usage --by facility failed"
jq -c '.rows[]' "$T_TMP/facility.json" >&2
fac() { jq -r --arg c "$1" ".rows[] | select(.facility == \$c) | .$2" "$T_TMP/facility.json"; }
check "facility A is named from the registry" test "$(fac $CODE_A facility_name)" = "Omura clinic"
within "facility $CODE_A bytes from it" "$(fac $CODE_A bytes_from)" "$EXP_AB"
within "facility $CODE_A bytes to it" "$(fac $CODE_A bytes_to)" "$EXP_BA"
within "facility $CODE_B bytes from it" "$(fac $CODE_B bytes_from)" "$EXP_BA"
within "facility $CODE_B bytes to it" "$(fac $CODE_B bytes_to)" "$EXP_AB"
check "the JSON coverage has the restart's gap ($(jq -c .coverage.gaps "$T_TMP/facility.json"), $(jq .coverage.records "$T_TMP/facility.json") records)" \
  test "$(jq '.coverage.gaps | length' "$T_TMP/facility.json")" -eq 1

log "SIGTERM"
kill -TERM "$IXGW_PID"
rc=0; wait "$IXGW_PID" || rc=$?
forget_pid "$IXGW_PID"
check "ixgw exited 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0

log "a torn last line is skipped with a warning, and the next daemon writes after it"
f=$(ls "$USAGE_DIR"/usage-*.jsonl | tail -1)
printf '{"v":1,"start":"20' >>"$f"
"$IXGW" usage --dir "$USAGE_DIR" --from "$T0" --to "$T1" >"$T_TMP/torn.csv" 2>"$T_TMP/torn.err" || die "ixgw usage failed on a torn line"
check "the torn line is reported" grep -q 'skipped: torn last line' "$T_TMP/torn.err"
check "and the figures are unchanged" cmp -s "$T_TMP/tenant.csv" "$T_TMP/torn.csv"
start_ixgw usg-ix $PORT
sleep 1.5
kill -TERM "$IXGW_PID"
rc=0; wait "$IXGW_PID" || rc=$?
forget_pid "$IXGW_PID"
check "the next daemon's records follow on lines of their own" \
  bash -c "tail -1 '$f' | jq -e '.cut == \"stop\"' >/dev/null"
"$IXGW" usage --dir "$USAGE_DIR" --from "$T0" --to "$(date -u -d '+1 min' +%Y-%m-%dT%H:%M:%SZ)" >"$T_TMP/after.csv" 2>"$T_TMP/after.err" \
  || die "ixgw usage failed after the torn line"
check "the torn line, now inside the file, is skipped" grep -q 'skipped: not a usage record' "$T_TMP/after.err"
log "a crash (SIGKILL) keeps every record written before it"
TC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
restart_ixgw "the second restart"
out="$T_TMP/udp-crash.json"
udp_run usg-a usg-b 100.65.0.2 2 20M "$out" || { cat "$out" >&2; die "iperf3 before the crash failed"; }
CRASH_AB=$(delivered "$out")
CRASH_SENT=$(jq .end.sum_sent.packets "$out")
log "before the crash: $CRASH_AB datagrams delivered of $CRASH_SENT sent"
# Past the next boundary, so that the transfer's last second is on disk; then the crash.
sleep 1.5
kill -KILL "$IXGW_PID"
wait "$IXGW_PID" 2>/dev/null || true
forget_pid "$IXGW_PID"
last=$(tail -1 "$(ls "$USAGE_DIR"/usage-*.jsonl | tail -1)")
check "the crashed daemon's last record is a whole interval, not a stop ($(jq -c '[.start, .end, .cut]' <<<"$last"))" \
  jq -e '.cut == "interval"' <<<"$last"
"$IXGW" usage --dir "$USAGE_DIR" --from "$TC" --to "$(date -u -d '+1 min' +%Y-%m-%dT%H:%M:%SZ)" >"$T_TMP/crash.csv" 2>"$T_TMP/crash.err" \
  || die "ixgw usage failed after the crash"
cat "$T_TMP/crash.csv" "$T_TMP/crash.err" >&2
row=$(grep '^ajisai-net,mame-net,' "$T_TMP/crash.csv" || true)
IFS=, read -r _ _ _ bab _ _ <<<"$row"
# What ixgw forwarded lies between what the receiver got and what the sender sent: a
# datagram the receiving facility drops under load (a shared 2-core machine) was forwarded.
check "after the crash, ajisai-net → mame-net bytes of the transfer before it (${bab:-0}) lie between those delivered ($((CRASH_AB * IP_BYTES))) and sent ($((CRASH_SENT * IP_BYTES))), 1 % either way" \
  awk -v v="${bab:-0}" -v lo="$((CRASH_AB * IP_BYTES))" -v hi="$((CRASH_SENT * IP_BYTES))" \
  'BEGIN { exit !(v >= 0.99 * lo && v <= 1.01 * hi) }'
check "a bad date is refused" bash -c "! '$IXGW' usage --dir '$USAGE_DIR' --from 2026-13-01 --to 2026-12-01 2>/dev/null"
check "a missing directory is refused" bash -c "! '$IXGW' usage --dir '$T_TMP/nowhere' --from 2026-11-01 --to 2026-12-01 2>/dev/null"

finish 30 "$T_TMP/ixgw.log"
