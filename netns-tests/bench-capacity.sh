#!/usr/bin/env bash
# Capacity bench (root): how many packets per second ixgw forwards WireGuard → WireGuard with
# at most 1 % loss, independent of slow userspace facilities, and what it does when offered
# more. Our own load generator (benches/loadgen: boringtun sessions, traffic encrypted before
# each step, sent by UDP GSO from several sockets) in ns cap-gen, ixgw in ns cap-ix, a sink
# that counts without decrypting in ns cap-sink:
#
#   cap-gen 10.9.1.2 ── veth ── 10.9.1.1 cap-ix (ixgw) 10.9.2.1 ── veth ── 10.9.2.2 cap-sink
#
# For each packet size (64, 512, 1420 B): the highest rate with ≤ 1 % loss, ixgw's CPU seconds
# per GB there, and the goodput with 2× and 4× that rate offered; beside it the crypto floor
# (ChaCha20-Poly1305 open + seal of the same packet on one core). A benchmark, not a test:
# test.sh skips bench-*.sh. Results: printed, and written between the `capacity` markers of
# benches/RESULTS.md (RESULTS=file).
#
# Usage: netns-tests/bench-capacity.sh [path/to/ixgw [path/to/loadgen]]
#   env: SIZES=64,512,1420  STEP=2 (seconds per rate)  PEERS=64  SINKS=8  SOCKETS=8
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
repo=$(readlink -f "$here/..")
IXGW=$(readlink -m "${1:-$repo/target/release/ixgw}")
LOADGEN=$(readlink -m "${2:-$repo/target/release/examples/loadgen}")
cd "$here"
source ./lib.sh
netns_begin
need ip awk git
[[ -x $LOADGEN ]] || die "load generator not found at $LOADGEN (cargo build --release --example loadgen)"

SIZES=${SIZES:-64,512,1420} STEP=${STEP:-2} PEERS=${PEERS:-64} SINKS=${SINKS:-8} SOCKETS=${SOCKETS:-8}
RESULTS=${RESULTS:-$repo/benches/RESULTS.md}
[[ $SIZES =~ ^[0-9]+(,[0-9]+)*$ ]] || die "SIZES is a comma-separated list of packet sizes"
for v in PEERS SINKS SOCKETS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] && (( ${!v} <= 10000 )) || die "$v must be 1..10000"
done
[[ $STEP =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "STEP is seconds"
METRICS=127.0.0.1:9479

bench_context "$repo"

log "namespaces"
for ns in cap-gen cap-ix cap-sink; do netns_add $ns; done
link_ns cap-ix cap-gen 10.9.1.1/30 10.9.1.2/30 capix-gen capgen-ix
link_ns cap-ix cap-sink 10.9.2.1/30 10.9.2.2/30 capix-sink capsink-ix

log "crypto floor"
"$LOADGEN" floor --sizes "$SIZES" >"$T_TMP/floor.jsonl"

log "ixgw: $PEERS generator peers, $SINKS sink peers"
"$LOADGEN" config --dir "$T_TMP" --peers "$PEERS" --sinks "$SINKS" \
  --ix-gen 10.9.1.1:51820 --ix-sink 10.9.2.1:51821 --metrics "$METRICS" >"$T_TMP/ixgw.yaml"
"$IXGW" check --config "$T_TMP/ixgw.yaml" >/dev/null || die "the generated configuration does not validate"
IXGW_LOG=warn start_ixgw cap-ix "${METRICS##*:}"

log "sink"
start_bg cap-sink "$T_TMP/sink.log" "$LOADGEN" sink --ix 10.9.2.1:51821 --bind 10.9.2.2 \
  --sinks "$SINKS" --count "$T_TMP/sink.count"
for (( i = 0; i < 100; i++ )); do
  grep -q 'peers up' "$T_TMP/sink.log" 2>/dev/null && break
  kill -0 "$BG_PID" 2>/dev/null || { cat "$T_TMP/sink.log" >&2; die "the sink exited"; }
  sleep 0.2
done
grep -q 'peers up' "$T_TMP/sink.log" || { cat "$T_TMP/sink.log" >&2; die "the sink's peers did not come up"; }

log "generator: capacity search ($STEP s per rate)"
# Bounded: at most 16 search steps + 2 overload steps per size, each STEP s plus its
# pre-building; `timeout` ends it in any case.
ip netns exec cap-gen timeout 1200 "$LOADGEN" gen --ix 10.9.1.1:51820 --bind 10.9.1.2 \
  --peers "$PEERS" --sinks "$SINKS" --sockets "$SOCKETS" --sink-count "$T_TMP/sink.count" \
  --ixgw-pid "$IXGW_PID" --sizes "$SIZES" --step "$STEP" \
  >"$T_TMP/capacity.jsonl" 2> >(tee "$T_TMP/gen.log" >&2) || die "the generator failed"
kill -0 "$IXGW_PID" 2>/dev/null || { cat "$T_TMP/ixgw.log" >&2; die "ixgw exited during the run"; }
DROPS=$(metric cap-ix "$METRICS" ixgw_drops_total '')
SOCKET_DROPS=$(metric cap-ix "$METRICS" ixgw_socket_drops_total '')
DROP_REASONS=$(http_get cap-ix "${METRICS%:*}" "${METRICS##*:}" /metrics \
  | awk '/^ixgw_drops_total\{/ && $NF > 0 { r = $0; sub(/.*reason="/, "", r); sub(/".*/, "", r); n[r] += $NF }
         END { for (k in n) printf "%s%s %d", (s++ ? ", " : ""), k, n[k] }')
log "ixgw's drops: ${DROP_REASONS:-none}"

# ---- the table --------------------------------------------------------------------------------
SECTION=$T_TMP/section.md
{
  echo "<!-- begin capacity -->"
  echo "## Capacity: one ixgw, WireGuard → WireGuard, our own load generator"
  echo
  echo "Written by \`netns-tests/bench-capacity.sh\`."
  echo
  echo "* machine: $(nproc) CPUs, $MODEL, Linux $(uname -r); load average $LOAD0 at the start,"
  echo "  $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "* date: $STARTED; commit \`$COMMIT\`; one data-path worker (ixgw has one so far)"
  echo "* $PEERS generator peers over $SOCKETS sockets, $SINKS sink peers; $STEP s per rate; traffic"
  echo "  encrypted before each step and sent by UDP GSO; the sink counts data messages without"
  echo "  decrypting them. Generator, sink and ixgw share the $(nproc) CPUs: the generator's"
  echo "  sending and the kernel's veth and UDP work compete with ixgw for them"
  echo "* capacity: the highest offered rate with ≤ 1 % loss (doubling, then halving the interval);"
  echo "  CPU s/GB: ixgw's utime+stime over the inner bytes delivered at that rate; floor: one"
  echo "  core's ChaCha20-Poly1305 open + seal of the same packet with ring"
  echo "* ixgw counted $DROPS drops in all (ixgw_drops_total) and the kernel $SOCKET_DROPS at its"
  echo "  sockets (ixgw_socket_drops_total), overload steps included; by reason: ${DROP_REASONS:-none}"
  echo
  echo "| IP packet | capacity | Mbit/s | CPU s/GB | floor | capacity ÷ floor | goodput at 2× offered | at 4× offered |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  while read -r line; do
    size=$(sed -n 's/.*"size":\([0-9]*\).*/\1/p' <<<"$line")
    floor=$(sed -n "s/.*\"size\":$size,\"floor_pps\":\([0-9]*\).*/\1/p" "$T_TMP/floor.jsonl")
    if grep -q '"error"' <<<"$line"; then echo "| $size B | no rate below 1 % loss | | | | | | |"; continue; fi
    f() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$line"; }
    awk -v s="$size" -v c="$(f capacity_pps)" -v m="$(f capacity_mbps)" -v g="$(f cpu_s_per_gb)" \
      -v fl="$floor" -v o2="$(f offered_2x_pps)" -v g2="$(f goodput_2x_pps)" \
      -v o4="$(f offered_4x_pps)" -v g4="$(f goodput_4x_pps)" 'BEGIN {
        printf "| %d B | %.0f kpps | %.0f | %.2f | %.0f kpps | %.2f | %.0f kpps of %.0f (%.2f×) | %.0f kpps of %.0f (%.2f×) |\n",
          s, c / 1e3, m, g, fl / 1e3, c / fl, g2 / 1e3, o2 / 1e3, g2 / c, g4 / 1e3, o4 / 1e3, g4 / c }'
  done <"$T_TMP/capacity.jsonl"
  echo
  echo "Targets of issue 10 this bench judges (the goodput columns are ÷ capacity):"
  echo
  awk -F'[:,}]' -v floor="$(sed -n 's/.*"size":1420,"floor_pps":\([0-9]*\).*/\1/p' "$T_TMP/floor.jsonl")" '
    /"size":1420,/ { for (i = 1; i < NF; i++) v[$i] = $(i + 1) }
    END {
      if (!("\"capacity_pps\"" in v)) { print "* no 1420-byte result"; exit }
      c = v["\"capacity_pps\""] / floor
      printf "* capacity with one worker ≥ 0.6× the crypto floor at 1420 B: %.2f×: %s\n", c, (c >= 0.6 ? "met" : "not met")
      g4 = v["\"goodput_4x_pps\""] / v["\"capacity_pps\""]
      printf "* goodput at 4× offered load ≥ 0.9× capacity: %.2f× at 1420 B: %s\n", g4, (g4 >= 0.9 ? "met" : "not met")
      printf "* CPU per GB at 1420 B: %.2f s (target ≤ 1.5 s: %s)\n", v["\"cpu_s_per_gb\""], (v["\"cpu_s_per_gb\""] <= 1.5 ? "met" : "not met")
    }' "$T_TMP/capacity.jsonl"
  echo
  echo "<details><summary>every step</summary>"
  echo
  echo '```'
  grep '^size' "$T_TMP/gen.log" || true
  echo '```'
  echo
  echo "</details>"
  echo "<!-- end capacity -->"
} >"$SECTION"
cat "$SECTION"
results_section capacity "$SECTION" "$RESULTS"
