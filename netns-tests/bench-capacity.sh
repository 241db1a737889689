#!/usr/bin/env bash
# Capacity bench (root): how many packets per second ixgw forwards with at most 1 % loss,
# independent of slow userspace facilities, and what it does when offered more; for each
# path: WireGuard → WireGuard, ESP in UDP → WireGuard, ESP in UDP → ESP in UDP. Our own load
# generator (benches/loadgen: traffic encrypted before each step, sent by UDP GSO from several
# sockets) in ns cap-gen, ixgw in ns cap-ix, a sink that counts without decrypting in ns
# cap-sink:
#
#   cap-gen 10.9.1.2 ── veth ── 10.9.1.1 cap-ix (ixgw) 10.9.2.1 ── veth ── 10.9.2.2 cap-sink
#
# WireGuard peers are boringtun sessions with keys derived from their numbers. ESP peers are
# ixgw's own IKEv2 initiator used as a library: each negotiates a real IKE SA and CHILD SA
# with the gateway (pre-shared key, the gateway's default proposals, NAT-T: ESP in UDP 4500),
# so ixgw runs its production configuration and takes keys only through IKE.
#
# For each path and packet size (64, 512, 1420 B): the highest rate with ≤ 1 % loss, ixgw's
# CPU seconds per GB there, and the goodput with 2× and 4× that rate offered; beside it the
# crypto floor (the ingress AEAD's open and the egress AEAD's seal of the same packet on one
# core, with the ciphers the path negotiated). A benchmark, not a test: test.sh skips
# bench-*.sh. Results: printed, and written between the `capacity` markers of
# benches/RESULTS.md (RESULTS=file).
#
# Usage: netns-tests/bench-capacity.sh [path/to/ixgw [path/to/loadgen]]
#   env: PATHS="wg-wg esp-wg esp-esp" (any of wg-wg, wg-esp, esp-wg, esp-esp)
#        WORKERS="1 all" (ixgw's dataplane.workers for each run; all: one per CPU)
#        SIZES=64,512,1420  STEP=2 (seconds per rate)  PEERS=64  SINKS=8  SOCKETS=PEERS
#   One socket per generator peer by default: a facility is one source address and port, and
#   the kernel steers a GSO run (or a GRO merge) to one worker whole, by its first datagram;
#   runs mixing peers of different workers from one socket would land on one of them.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
repo=$(readlink -f "$here/..")
IXGW=$(readlink -m "${1:-$repo/target/release/ixgw}")
LOADGEN=$(readlink -m "${2:-$repo/target/release/examples/loadgen}")
cd "$here"
source ./lib.sh
netns_begin
need ip awk git sed
[[ -x $LOADGEN ]] || die "load generator not found at $LOADGEN (cargo build --release --example loadgen)"

PATHS=${PATHS:-wg-wg esp-wg esp-esp}
WORKERS=${WORKERS:-1 all}
read -r -a WORKER_LIST <<<"${WORKERS//all/$(nproc)}"
for w in "${WORKER_LIST[@]}"; do
  if ! [[ $w =~ ^[1-9][0-9]*$ ]] || (( w > 64 )); then die "WORKERS: $w is not 1..64 or all"; fi
done
SIZES=${SIZES:-64,512,1420} STEP=${STEP:-2} PEERS=${PEERS:-64} SINKS=${SINKS:-8} SOCKETS=${SOCKETS:-$PEERS}
RESULTS=${RESULTS:-$repo/benches/RESULTS.md}
[[ $SIZES =~ ^[0-9]+(,[0-9]+)*$ ]] || die "SIZES is a comma-separated list of packet sizes"
for v in PEERS SINKS SOCKETS; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]] || (( ${!v} > 10000 )); then die "$v must be 1..10000"; fi
done
[[ $STEP =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "STEP is seconds"
read -r -a PATH_LIST <<<"$PATHS"
(( ${#PATH_LIST[@]} > 0 )) || die "PATHS is empty"
for p in "${PATH_LIST[@]}"; do
  [[ $p =~ ^(wg|esp)-(wg|esp)$ ]] || die "PATHS: $p is none of wg-wg, wg-esp, esp-wg, esp-esp"
done
METRICS=127.0.0.1:9479

bench_context "$repo"

log "namespaces"
for ns in cap-gen cap-ix cap-sink; do netns_add $ns; done
link_ns cap-ix cap-gen 10.9.1.1/30 10.9.1.2/30 capix-gen capgen-ix
link_ns cap-ix cap-sink 10.9.2.1/30 10.9.2.2/30 capix-sink capsink-ix

# tunnel_of wg|esp : the load generator's name of the tunnel
tunnel_of() { [[ $1 == wg ]] && echo wireguard || echo ipsec; }
# title_of wg|esp : the tunnel as the results name it
title_of() { [[ $1 == wg ]] && echo WireGuard || echo "ESP in UDP"; }
# floor_aead CIPHER : the floor's AEAD for a negotiated cipher (ESN costs 4 bytes of AAD more,
# not counted), empty when the floor has none for it
floor_aead() {
  case ${1%-esn} in
    chacha20poly1305 | aes128gcm16 | aes256gcm16) echo "${1%-esn}" ;;
    *) echo "" ;;
  esac
}

# stop PID : ends a process this script started and forgets it
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

# run_path PATH WORKERS : one gateway for PATH (e.g. esp-wg) with WORKERS data-path workers, its
# sink and the generator's search; leaves $T_TMP/PATH-wWORKERS.{jsonl,floor.jsonl,gen.log,drops}
run_path() {
  local path=$1-w$2 gen=${1%-*} sink=${1#*-} workers=$2 ix_gen ix_sink i sink_pid gen_cipher sink_cipher open seal
  ix_gen=10.9.1.1:51820; [[ $gen == esp ]] && ix_gen=10.9.1.1:500
  ix_sink=10.9.2.1:51821; [[ $sink == esp ]] && ix_sink=10.9.2.1:500
  mkdir -p "$T_TMP/$path"
  log "$path: ixgw ($workers workers) with $PEERS generator peers ($(title_of "$gen")), $SINKS sink peers ($(title_of "$sink"))"
  "$LOADGEN" config --dir "$T_TMP/$path" --peers "$PEERS" --sinks "$SINKS" \
    --gen-tunnel "$(tunnel_of "$gen")" --sink-tunnel "$(tunnel_of "$sink")" \
    --ix-gen "$ix_gen" --ix-sink "$ix_sink" --metrics "$METRICS" \
    | sed "s/^dataplane:\$/dataplane:\n  workers: $workers/" >"$T_TMP/ixgw-$path.yaml"
  grep -q "^  workers: $workers\$" "$T_TMP/ixgw-$path.yaml" || die "no dataplane section to set workers in"
  "$IXGW" check --config "$T_TMP/ixgw-$path.yaml" >/dev/null 2>"$T_TMP/check-$path.log" \
    || { cat "$T_TMP/check-$path.log" >&2; die "the generated configuration for $path does not validate"; }
  IXGW_LOG=warn start_ixgw cap-ix "${METRICS##*:}" "ixgw-$path"

  log "$path: sink"
  start_bg cap-sink "$T_TMP/sink-$path.log" "$LOADGEN" sink --tunnel "$(tunnel_of "$sink")" \
    --config "$T_TMP/ixgw-$path.yaml" --ix "$ix_sink" --bind 10.9.2.2 --sinks "$SINKS" \
    --count "$T_TMP/sink-$path.count"
  sink_pid=$BG_PID
  for (( i = 0; i < 350; i++ )); do
    grep -q 'peers up' "$T_TMP/sink-$path.log" 2>/dev/null && break
    kill -0 "$sink_pid" 2>/dev/null || { cat "$T_TMP/sink-$path.log" >&2; die "the sink exited"; }
    sleep 0.2
  done
  grep -q 'peers up' "$T_TMP/sink-$path.log" || { cat "$T_TMP/sink-$path.log" >&2; die "the sink's peers did not come up"; }

  log "$path: generator: capacity search ($STEP s per rate)"
  # Bounded: at most 16 search steps + 2 overload steps per size, each STEP s plus its
  # pre-building; `timeout` ends it in any case.
  ip netns exec cap-gen timeout 1200 "$LOADGEN" gen --tunnel "$(tunnel_of "$gen")" \
    --config "$T_TMP/ixgw-$path.yaml" --ix "$ix_gen" --bind 10.9.1.2 \
    --peers "$PEERS" --sinks "$SINKS" --sockets "$SOCKETS" --sink-count "$T_TMP/sink-$path.count" \
    --ixgw-pid "$IXGW_PID" --sizes "$SIZES" --step "$STEP" \
    >"$T_TMP/$path.jsonl" 2> >(tee "$T_TMP/$path.gen.log" >&2) || die "the generator failed ($path)"
  kill -0 "$IXGW_PID" 2>/dev/null || { cat "$T_TMP/ixgw-$path.log" >&2; die "ixgw exited during the run ($path)"; }
  kill -0 "$sink_pid" 2>/dev/null || { cat "$T_TMP/sink-$path.log" >&2; die "the sink exited during the run ($path)"; }
  {
    echo "DROPS=$(metric cap-ix "$METRICS" ixgw_drops_total '')"
    echo "SOCKET_DROPS=$(metric cap-ix "$METRICS" ixgw_socket_drops_total '')"
    echo "IX_RX=$(metric cap-ix "$METRICS" ixgw_attachment_peer_rx_packets_total 'attachment="gen-')"
    echo "IX_TX=$(metric cap-ix "$METRICS" ixgw_attachment_peer_tx_packets_total 'attachment="sink-')"
    echo "SINK_COUNTED=$(cut -d' ' -f1 "$T_TMP/sink-$path.count" 2>/dev/null || echo 0)"
    echo "DROP_REASONS='$(http_get cap-ix "${METRICS%:*}" "${METRICS##*:}" /metrics \
      | awk '/^ixgw_drops_total\{/ && $NF > 0 { r = $0; sub(/.*reason="/, "", r); sub(/".*/, "", r); n[r] += $NF }
             END { for (k in n) printf "%s%s %d", (s++ ? ", " : ""), k, n[k] }')'"
  } >"$T_TMP/$path.drops"
  sink_cipher=$(sed -n 's/^sink: [0-9]* peers up ([a-z]* \(.*\))$/\1/p' "$T_TMP/sink-$path.log" | head -n1)
  stop "$sink_pid"
  stop "$IXGW_PID"
  log "$path: ixgw's drops: $(sed -n "s/^DROP_REASONS='\(.*\)'$/\1/p" "$T_TMP/$path.drops")"

  gen_cipher=$(sed -n 's/.*"cipher":"\([^"]*\)".*/\1/p' "$T_TMP/$path.jsonl" | head -n1)
  echo "GEN_CIPHER=$gen_cipher SINK_CIPHER=$sink_cipher" >"$T_TMP/$path.ciphers"
  open=$(floor_aead "$gen_cipher") seal=$(floor_aead "$sink_cipher")
  if [[ -n $open && -n $seal ]]; then
    log "$path: crypto floor ($open open + $seal seal)"
    "$LOADGEN" floor --sizes "$SIZES" --open "$open" --seal "$seal" >"$T_TMP/$path.floor.jsonl"
  else
    log "$path: no crypto floor for '$gen_cipher' → '$sink_cipher'"
    : >"$T_TMP/$path.floor.jsonl"
  fi
}

for p in "${PATH_LIST[@]}"; do
  for w in "${WORKER_LIST[@]}"; do run_path "$p" "$w"; done
done

# ---- the tables --------------------------------------------------------------------------------
# table PATH WORKERS : one run's table, the targets it judges and its steps
table() {
  local path=$1-w$2 gen=${1%-*} sink=${1#*-} workers=$2 line size floor DROPS SOCKET_DROPS DROP_REASONS IX_RX IX_TX SINK_COUNTED
  local GEN_CIPHER SINK_CIPHER
  # shellcheck disable=SC1090
  source "$T_TMP/$path.drops"
  # shellcheck disable=SC1090
  source "$T_TMP/$path.ciphers"
  echo "### $(title_of "$gen") ($GEN_CIPHER) → $(title_of "$sink") ($SINK_CIPHER), $workers worker$( (( workers > 1 )) && echo s)"
  echo
  echo "ixgw counted $DROPS drops in all (ixgw_drops_total) and the kernel $SOCKET_DROPS at its"
  echo "sockets (ixgw_socket_drops_total), overload steps included; by reason: ${DROP_REASONS:-none}."
  echo "Over the whole run ixgw received $IX_RX inner packets from the generator's peers and sent"
  echo "$IX_TX to the sink's (ixgw_attachment_peer_{rx,tx}_packets_total), of which the sink counted"
  echo "$SINK_COUNTED (the rest were lost at the sink's sockets: charged to ixgw as loss)."
  echo "Floor: one core's $GEN_CIPHER open + $SINK_CIPHER seal of the same packet."
  echo
  echo "| IP packet | capacity | Mbit/s | CPU s/GB | floor | capacity ÷ floor | goodput at 2× offered | at 4× offered |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  while read -r line; do
    size=$(sed -n 's/.*"size":\([0-9]*\).*/\1/p' <<<"$line")
    floor=$(sed -n "s/.*\"size\":$size,\"floor_pps\":\([0-9]*\).*/\1/p" "$T_TMP/$path.floor.jsonl")
    if grep -q '"error"' <<<"$line"; then echo "| $size B | no rate below 1 % loss | | | | | | |"; continue; fi
    f() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$line"; }
    awk -v s="$size" -v c="$(f capacity_pps)" -v m="$(f capacity_mbps)" -v g="$(f cpu_s_per_gb)" \
      -v fl="${floor:-0}" -v o2="$(f offered_2x_pps)" -v g2="$(f goodput_2x_pps)" \
      -v o4="$(f offered_4x_pps)" -v g4="$(f goodput_4x_pps)" 'BEGIN {
        fls = fl > 0 ? sprintf("%.0f kpps", fl / 1e3) : "–"
        rat = fl > 0 ? sprintf("%.2f", c / fl) : "–"
        printf "| %d B | %.0f kpps | %.0f | %.2f | %s | %s | %.0f kpps of %.0f (%.2f×) | %.0f kpps of %.0f (%.2f×) |\n",
          s, c / 1e3, m, g, fls, rat, g2 / 1e3, o2 / 1e3, g2 / c, g4 / 1e3, o4 / 1e3, g4 / c }'
  done <"$T_TMP/$path.jsonl"
  echo
  echo "Targets of issue 10 this bench judges (the goodput columns are ÷ capacity):"
  echo
  awk -F'[:,}]' -v path="${path%-w*}" -v workers="$workers" \
    -v floor="$(sed -n 's/.*"size":1420,"floor_pps":\([0-9]*\).*/\1/p' "$T_TMP/$path.floor.jsonl")" '
    /"size":1420,/ { for (i = 1; i < NF; i++) v[$i] = $(i + 1) }
    END {
      if (!("\"capacity_pps\"" in v)) { print "* no 1420-byte result"; exit }
      if (floor > 0) {
        c = v["\"capacity_pps\""] / floor
        if (workers == 1) printf "* capacity with one worker ≥ 0.6× the crypto floor at 1420 B: %.2f×: %s\n", c, (c >= 0.6 ? "met" : "not met")
        else printf "* capacity ÷ the crypto floor of one core at 1420 B: %.2f× with %d workers\n", c, workers
      } else print "* capacity ≥ 0.6× the crypto floor at 1420 B: no floor for these ciphers"
      g4 = v["\"goodput_4x_pps\""] / v["\"capacity_pps\""]
      printf "* goodput at 4× offered load ≥ 0.9× capacity: %.2f× at 1420 B: %s\n", g4, (g4 >= 0.9 ? "met" : "not met")
      cpu = v["\"cpu_s_per_gb\""]
      if (path == "wg-wg")
        printf "* CPU per GB at 1420 B: %.2f s (target ≤ 1.5 s: %s)\n", cpu, (cpu <= 1.5 ? "met" : "not met")
      else
        printf "* CPU per GB at 1420 B: %.2f s (the issue sets ≤ 1.5 s for WireGuard → WireGuard: %s by that measure)\n", cpu, (cpu <= 1.5 ? "met" : "not met")
    }' "$T_TMP/$path.jsonl"
  echo
  echo "<details><summary>every step</summary>"
  echo
  echo '```'
  grep -E '^(size|gen:)' "$T_TMP/$path.gen.log" || true
  echo '```'
  echo
  echo "</details>"
  echo
}

SECTION=$T_TMP/section.md
{
  echo "<!-- begin capacity -->"
  echo "## Capacity: one ixgw, WireGuard and ESP facilities, our own load generator"
  echo
  echo "Written by \`netns-tests/bench-capacity.sh\`."
  echo
  echo "* machine: $(nproc) CPUs, $MODEL, Linux $(uname -r); load average $LOAD0 at the start,"
  echo "  $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "* date: $STARTED; commit \`$COMMIT\`; data-path workers per run: ${WORKER_LIST[*]}"
  echo "* $PEERS generator peers over $SOCKETS sockets, $SINKS sink peers, a fresh ixgw per path; $STEP s"
  echo "  per rate; traffic encrypted before each step and sent by UDP GSO; the sink counts data"
  echo "  messages or ESP packets without decrypting them. Generator, sink and ixgw share the"
  echo "  $(nproc) CPUs: the generator's sending and the kernel's veth and UDP work compete with ixgw"
  echo "  for them"
  echo "* ESP peers: ixgw's own IKEv2 initiator (the library's \`IkeEngine\`, as the demo's facility"
  echo "  uses it), one per peer, negotiates a real IKE SA and CHILD SA with the gateway (pre-shared"
  echo "  key; the peer's configuration is the gateway's turned around, so the gateway's default"
  echo "  proposals decide the cipher; NAT-T announced, so ESP goes in UDP 4500). ixgw runs its"
  echo "  production configuration and gets keys only through IKE: no manual SAs, no test hook"
  echo "  (manual SAs exist only in the in-process pipeline bench; strongSwan's kernel-libipsec"
  echo "  sends one packet per system call and builds nothing ahead, so it would measure itself)."
  echo "  IPsec attachments have \`mtu: 1420\` so that ESP carries the same sizes as WireGuard"
  echo "  (1484 bytes of ESP in UDP on the wire with AES-GCM)"
  echo "* capacity: the highest offered rate with ≤ 1 % loss (doubling, then halving the interval);"
  echo "  CPU s/GB: ixgw's utime+stime over the inner bytes delivered at that rate; floor: one"
  echo "  core's open of the ingress AEAD + seal of the egress AEAD over the same packet (ring;"
  echo "  AES-GCM through ixgw::crypto as ESP uses it)"
  echo
  for p in "${PATH_LIST[@]}"; do
    for w in "${WORKER_LIST[@]}"; do table "$p" "$w"; done
  done
  if (( ${#WORKER_LIST[@]} > 1 )); then
    echo "### Workers"
    echo
    echo "Capacity at 1420 B with each worker count ÷ with the first (target: all workers ≥ 1.7× one"
    echo "worker where the cores are free; here the generator, the sink and the kernel's veth work"
    echo "share the same $(nproc) CPUs with ixgw, so a second worker takes CPU time they need too):"
    echo
    for p in "${PATH_LIST[@]}"; do
      base=$(sed -n 's/.*"size":1420,.*"capacity_pps":\([0-9.]*\).*/\1/p' "$T_TMP/$p-w${WORKER_LIST[0]}.jsonl")
      for w in "${WORKER_LIST[@]:1}"; do
        c=$(sed -n 's/.*"size":1420,.*"capacity_pps":\([0-9.]*\).*/\1/p' "$T_TMP/$p-w$w.jsonl")
        awk -v p="$p" -v b="${base:-0}" -v c="${c:-0}" -v w="$w" -v w0="${WORKER_LIST[0]}" 'BEGIN {
          if (b > 0 && c > 0) printf "* %s: %d workers %.0f kpps, %d %.0f kpps: %.2f×%s\n", p, w, c / 1e3, w0, b / 1e3, c / b, (w0 == 1 ? (c / b >= 1.7 ? " (met)" : " (not met)") : "")
          else printf "* %s: no 1420-byte capacity to compare\n", p }'
      done
    done
    echo
    echo "What each delivered with 4× its own capacity offered (no loss criterion: the ≤ 1 % one is"
    echo "set by bursts at the sockets more than by throughput), by packet size:"
    echo
    for p in "${PATH_LIST[@]}"; do
      for w in "${WORKER_LIST[@]:1}"; do
        while read -r line; do
          size=$(sed -n 's/.*"size":\([0-9]*\).*/\1/p' <<<"$line")
          b=$(sed -n "s/.*\"size\":$size,.*\"goodput_4x_pps\":\([0-9.]*\).*/\1/p" "$T_TMP/$p-w${WORKER_LIST[0]}.jsonl")
          c=$(sed -n 's/.*"goodput_4x_pps":\([0-9.]*\).*/\1/p' <<<"$line")
          awk -v p="$p" -v s="$size" -v b="${b:-0}" -v c="${c:-0}" -v w="$w" -v w0="${WORKER_LIST[0]}" 'BEGIN {
            if (b > 0 && c > 0) printf "* %s, %d B: %d workers %.0f kpps, %d %.0f kpps: %.2f×\n", p, s, w, c / 1e3, w0, b / 1e3, c / b }'
        done <"$T_TMP/$p-w$w.jsonl"
      done
    done
    echo
  fi
  echo "<!-- end capacity -->"
} >"$SECTION"
cat "$SECTION"
results_section capacity "$SECTION" "$RESULTS"
