#!/usr/bin/env bash
# Scale bench (root): one WireGuard attachment with PEERS (10,000) peers. Measures the
# configuration's check and load time, ixgw's memory, a handshake storm (every peer initiating
# at once from our load generator, each behaving as a WireGuard client: a cookie reply is kept
# and the initiation retried after 5 s), and the cost of a metrics scrape:
#
#   sc-gen 10.9.3.2 ── veth ── 10.9.3.1 sc-ix (ixgw)
#
# A benchmark, not a test: test.sh skips bench-*.sh. Results: printed, and written between the
# `scale` markers of benches/RESULTS.md (RESULTS=file).
#
# Usage: netns-tests/bench-scale.sh [path/to/ixgw [path/to/loadgen]]   env: PEERS=10000 SOCKETS=16
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
repo=$(readlink -f "$here/..")
IXGW=$(readlink -m "${1:-$repo/target/release/ixgw}")
LOADGEN=$(readlink -m "${2:-$repo/target/release/examples/loadgen}")
cd "$here"
source ./lib.sh
netns_begin
need ip awk git curl
[[ -x $LOADGEN ]] || die "load generator not found at $LOADGEN (cargo build --release --example loadgen)"

PEERS=${PEERS:-10000} SOCKETS=${SOCKETS:-16}
[[ $PEERS =~ ^[1-9][0-9]*$ ]] && (( PEERS <= 10000 )) || die "PEERS must be 1..10000"
[[ $SOCKETS =~ ^[1-9][0-9]*$ ]] && (( SOCKETS <= 256 )) || die "SOCKETS must be 1..256"
RESULTS=${RESULTS:-$repo/benches/RESULTS.md}
METRICS=127.0.0.1:9480
bench_context "$repo"

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

log "namespaces"
for ns in sc-gen sc-ix; do netns_add $ns; done
link_ns sc-ix sc-gen 10.9.3.1/30 10.9.3.2/30 scix-gen scgen-ix

log "configuration: $PEERS peers"
"$LOADGEN" config --dir "$T_TMP" --peers "$PEERS" --sinks 1 \
  --ix-gen 10.9.3.1:51820 --ix-sink 127.0.0.1:51821 --metrics "$METRICS" >"$T_TMP/ixgw.yaml"
CONFIG_MIB=$(awk -v b="$(stat -c %s "$T_TMP/ixgw.yaml")" 'BEGIN { printf "%.1f", b / 1048576 }')
t=$(date +%s.%N)
"$IXGW" check --config "$T_TMP/ixgw.yaml" >/dev/null || die "the generated configuration does not validate"
CHECK_S=$(seconds_since "$t")

log "ixgw start"
t=$(date +%s.%N)
IXGW_LOG=warn start_ixgw sc-ix "${METRICS##*:}"
LOAD_S=$(seconds_since "$t")
sleep 1
RSS_IDLE=$(rss_mib "$IXGW_PID")

scrape() { # median time (ms) of 5 scrapes, and the size of the last (bytes) and its series
  local i times=()
  for i in 1 2 3 4 5; do
    times+=("$(ip netns exec sc-ix curl -s -o "$T_TMP/metrics.txt" -w '%{time_total}' "http://$METRICS/metrics")")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk 'NR == 3 { printf "%.0f", $1 * 1000 }'
}
SCRAPE_IDLE_MS=$(scrape)

log "handshake storm: $PEERS peers at once"
ip netns exec sc-gen timeout 120 "$LOADGEN" storm --ix 10.9.3.1:51820 --bind 10.9.3.2 \
  --peers "$PEERS" --sockets "$SOCKETS" --timeout 60 >"$T_TMP/storm.json" \
  || die "the storm generator failed"
cat "$T_TMP/storm.json"
sleep 1
RSS_UP=$(rss_mib "$IXGW_PID")
UP_METRIC=$(metric sc-ix "$METRICS" ixgw_peer_up '')
SCRAPE_UP_MS=$(scrape)
SCRAPE_BYTES=$(stat -c %s "$T_TMP/metrics.txt")
SERIES=$(grep -vc '^#' "$T_TMP/metrics.txt")
COOKIES=$(metric sc-ix "$METRICS" ixgw_handshakes_total 'result="cookie_sent"')
WORKERS=$(metric sc-ix "$METRICS" ixgw_workers '')
kill -0 "$IXGW_PID" 2>/dev/null || { cat "$T_TMP/ixgw.log" >&2; die "ixgw exited"; }

j() { sed -n "s/.*\"$1\":\([-0-9.]*\).*/\1/p" "$T_TMP/storm.json"; }
SECTION=$T_TMP/section.md
{
  echo "<!-- begin scale -->"
  echo "## Scale: $PEERS WireGuard peers on one attachment"
  echo
  echo "Written by \`netns-tests/bench-scale.sh\`."
  echo
  echo "* machine: $(nproc) CPUs, $MODEL, Linux $(uname -r); load average $LOAD0 at the start,"
  echo "  $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "* date: $STARTED; commit \`$COMMIT\`; $WORKERS data-path workers (the default: one per core)"
  echo "* the storm: every peer sends its initiation at once from $SOCKETS sockets of our load"
  echo "  generator (boringtun clients, which keep a cookie and retry after 5 s); \"up\": the"
  echo "  client has the gateway's response"
  echo
  echo "| what | measured | target |"
  echo "| --- | --- | --- |"
  echo "| configuration | $CONFIG_MIB MiB, \`ixgw check\` $CHECK_S s | |"
  echo "| start until /ready | $LOAD_S s | |"
  awk -v i="$RSS_IDLE" -v u="$RSS_UP" -v p="$PEERS" 'BEGIN {
    printf "| RSS after the start | %.1f MiB | |\n", i
    printf "| RSS with every peer up | %.1f MiB (%.1f KiB per peer) | ≤ 200 MB: %s |\n", u, u * 1024 / p, (u * 1.048576 <= 200 ? "met" : "not met") }'
  awk -v up="$(j up)" -v all="$(j all_up_s)" -v p50="$(j p50_s)" -v p99="$(j p99_s)" -v p="$PEERS" 'BEGIN {
    if (all < 0) printf "| all handshaken | %d of %d up within the timeout (median %.2f s) | ≤ 5 s: not met |\n", up, p, p50
    else printf "| all handshaken | %.2f s (median %.2f s, 99th percentile %.2f s) | ≤ 5 s: %s |\n", all, p50, p99, (all <= 5 ? "met" : "not met") }'
  echo "| cookie replies during the storm | $COOKIES (clients got $(j cookies); initiations sent $(j initiations)) | |"
  echo "| ixgw_peer_up after the storm | $UP_METRIC | |"
  awk -v a="$SCRAPE_IDLE_MS" -v b="$SCRAPE_UP_MS" -v s="$SCRAPE_BYTES" -v n="$SERIES" 'BEGIN {
    printf "| a scrape of /metrics (median of 5) | %d ms before the storm, %d ms after; %.1f MB, %d series | ≤ 100 ms: %s |\n", a, b, s / 1e6, n, (b <= 100 ? "met" : "not met") }'
  echo "<!-- end scale -->"
} >"$SECTION"
cat "$SECTION"
results_section scale "$SECTION" "$RESULTS"
