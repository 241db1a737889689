# shellcheck shell=bash
# Helpers for the netns tests. Source it. Every test builds its own namespaces and removes
# them, and kills only the daemons it started, by PID.

T_PIDS=()
T_NETNS=()
T_FAILS=0
T_TMP=$(mktemp -d /tmp/ixgw-netns.XXXXXX)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

pass() { log "PASS: $*"; }
fail() { log "FAIL: $*"; T_FAILS=$((T_FAILS + 1)); }
check() { # check DESCRIPTION CMD... : run CMD, PASS/FAIL on its status
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# finish LINES LOG... : the test's verdict: after failures the last LINES lines of each LOG
# (colours stripped) and exit 1, else "all checks passed"
finish() {
  local lines=$1 f; shift
  if (( T_FAILS > 0 )); then
    for f in "$@"; do
      log "$(basename "$f"):"
      sed 's/\x1b\[[0-9;]*m//g' "$f" 2>/dev/null | tail -n "$lines" >&2 || true
    done
    die "$T_FAILS check(s) failed"
  fi
  log "all checks passed"
}

# facility_code NINE_DIGITS: the 10-digit facility code with its Luhn check digit appended
facility_code() {
  local nine=$1 sum=0 i d
  for ((i = 0; i < 9; i++)); do
    d=${nine:8-i:1}
    ((i % 2 == 0)) && d=$((d * 2))
    sum=$((sum + d / 10 + d % 10))
  done
  printf '%s%d' "$nine" $(((10 - sum % 10) % 10))
}

# netns_begin : the start every test shares, after `IXGW=` (resolved before `cd "$here"`) and
# `source ./lib.sh`: the cleanup trap, the binary and root checked.
netns_begin() {
  trap cleanup EXIT INT TERM
  [[ -x $IXGW ]] || die "ixgw binary not found at $IXGW (cargo build --release)"
  [[ $(id -u) == 0 ]] || die "netns tests need root (ip netns, TUN, raw sockets)"
}

need() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "required tool '$c' is not installed (see .ci/run)"; done
}

netns_add() {
  local ns=$1
  if ip netns list | grep -w "^$ns" >/dev/null; then die "namespace $ns already exists: another test running? (remove it with 'ip netns del $ns')"; fi
  ip netns add "$ns"
  T_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.default.rp_filter=0
}

# link_ns IX_NS NS IX_ADDR NS_ADDR IX_IF NS_IF : a veth pair, IX_IF in IX_NS and NS_IF in NS,
# addressed and up
link_ns() {
  ip link add "$5" netns "$1" type veth peer name "$6" netns "$2"
  ip -n "$1" addr add "$3" dev "$5"; ip -n "$1" link set "$5" up
  ip -n "$2" addr add "$4" dev "$6"; ip -n "$2" link set "$6" up
}

# start_bg NS LOGFILE CMD... : background daemon inside NS; PID in BG_PID. Never call in $(...).
start_bg() {
  local ns=$1 logf=$2; shift 2
  ip netns exec "$ns" "$@" >"$logf" 2>&1 &
  BG_PID=$!
  T_PIDS+=("$BG_PID")
}

cleanup() {
  local rc=$? i ns
  set +e
  for (( i=${#T_PIDS[@]}-1; i>=0; i-- )); do kill "${T_PIDS[i]}" 2>/dev/null; done
  sleep 0.3
  for (( i=${#T_PIDS[@]}-1; i>=0; i-- )); do
    kill -0 "${T_PIDS[i]}" 2>/dev/null && kill -9 "${T_PIDS[i]}" 2>/dev/null
    wait "${T_PIDS[i]}" 2>/dev/null
  done
  for ns in "${T_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  [[ $(type -t extra_cleanup) == function ]] && extra_cleanup
  if [[ -n ${KEEP_TMP:-} ]]; then log "logs kept in $T_TMP"; else rm -rf "$T_TMP"; fi
  exit "$rc"
}

wait_ping() { # wait_ping NS DST [TRIES]
  local ns=$1 dst=$2 tries=${3:-20} i
  for (( i=0; i<tries; i++ )); do
    ip netns exec "$ns" ping -c1 -W1 "$dst" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

# http_get NS HOST PORT PATH : a minimal HTTP/1.0 GET with bash's /dev/tcp, 5 s bound
http_get() {
  ip netns exec "$1" timeout 5 bash -c 'exec 3<>/dev/tcp/$0/$1 || exit 1; printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$0" >&3; cat <&3' "$2" "$3" "$4"
}

# metric NS ADDR NAME LABELS : the value of one sample (0 when absent)
metric() {
  local body
  body=$(http_get "$1" "${2%:*}" "${2##*:}" /metrics) || { echo 0; return; }
  awk -v n="$3" -v l="$4" '
    index($0, n) == 1 {
      name = $1; sub(/\{.*/, "", name)
      if (name != n) next
      if (l != "" && index($0, l) == 0) next
      v += $NF; found = 1
    }
    END { print (found ? v : 0) }' <<<"$body"
}

# forget_pid PID : after `wait` reaped it, so that cleanup never signals a reused PID
forget_pid() {
  local keep=() p
  for p in "${T_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  T_PIDS=("${keep[@]}")
}

# start_ixgw NS PORT [NAME] : `$IXGW run --config $T_TMP/NAME.yaml` (NAME: ixgw) in NS with
# RUST_LOG=$IXGW_LOG (default info), logging to $T_TMP/NAME.log, waits until /ready on
# 127.0.0.1:PORT answers 200; PID in IXGW_PID. Dies with the log if it exits or never gets ready.
start_ixgw() {
  local ns=$1 port=$2 name=${3:-ixgw} i
  start_bg "$ns" "$T_TMP/$name.log" env RUST_LOG="${IXGW_LOG:-info}" "$IXGW" run --config "$T_TMP/$name.yaml"
  IXGW_PID=$BG_PID
  for (( i=0; i<50; i++ )); do
    http_get "$ns" 127.0.0.1 "$port" /ready 2>/dev/null | grep '^HTTP/1.[01] 200' >/dev/null && return 0
    kill -0 "$IXGW_PID" 2>/dev/null || { cat "$T_TMP/$name.log" >&2; die "$name exited"; }
    sleep 0.2
  done
  cat "$T_TMP/$name.log" >&2; die "$name not ready"
}

# wg_facility NS IFNAME PEER : a wireguard-go facility configured from the wg-quick file that
# `$IXGW peer-config` writes for PEER of $T_TMP/ixgw.yaml (key in $T_TMP/PEER.key)
wg_facility() {
  local ns=$1 ifn=$2 peer=$3 i
  start_bg "$ns" "$T_TMP/$ifn.log" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 LOG_LEVEL=error wireguard-go -f "$ifn"
  for (( i=0; i<50; i++ )); do
    [[ -S /var/run/wireguard/$ifn.sock ]] && ip -n "$ns" link show "$ifn" >/dev/null 2>&1 && break
    sleep 0.1
  done
  wg_configure "$ns" "$ifn" "$peer"
}

# wg_configure NS IFNAME PEER : (re)applies what `$IXGW peer-config` writes for PEER now (keys,
# AllowedIPs and their routes, address, MTU), as a facility does after the IX changed its
# policies
wg_configure() {
  local ns=$1 ifn=$2 peer=$3 conf="$T_TMP/$2.conf" p
  "$IXGW" peer-config --config "$T_TMP/ixgw.yaml" --peer "$peer" --private-key "$T_TMP/$peer.key" >"$conf"
  wg-quick strip "$conf" >"$T_TMP/$ifn.wg"
  ip netns exec "$ns" wg setconf "$ifn" "$T_TMP/$ifn.wg"
  ip -n "$ns" addr replace "$(awk -F' = ' '/^Address/{print $2}' "$conf")" dev "$ifn"
  ip -n "$ns" link set "$ifn" mtu "$(awk -F' = ' '/^MTU/{print $2}' "$conf")" up
  for p in $(awk -F' = ' '/^AllowedIPs/{gsub(/,/, " ", $2); print $2}' "$conf"); do
    ip -n "$ns" route replace "$p" dev "$ifn"
  done
}

# udp_during SERVER_NS BIND CLIENT_NS DST RATE LEN -- CMD... : a 6 s UDP iperf3 from CLIENT_NS to
# DST (an iperf3 server in SERVER_NS on BIND), CMD run 2 s into it (a reload); sets UDP_SENT and
# UDP_LOST (-1 when iperf3 said nothing), and fails the test if the client failed
udp_during() {
  local sns=$1 bind=$2 cns=$3 dst=$4 rate=$5 len=$6 srv cli
  shift 7
  start_bg "$sns" "$T_TMP/udp-server.log" timeout 40 iperf3 -s -B "$bind" -1
  srv=$BG_PID
  sleep 0.5
  ip netns exec "$cns" timeout 30 iperf3 -c "$dst" -u -b "$rate" -l "$len" -t 6 -J >"$T_TMP/udp.json" &
  cli=$!
  sleep 2
  "$@"
  wait "$cli" || fail "iperf3 UDP $cns → $dst"
  wait "$srv" 2>/dev/null || true
  forget_pid "$srv"
  UDP_LOST=$(jq '.end.sum.lost_packets // -1' "$T_TMP/udp.json" 2>/dev/null || echo -1)
  UDP_SENT=$(jq '.end.sum.packets // 0' "$T_TMP/udp.json" 2>/dev/null || echo 0)
}

# reload_with ARG : writes the test's configuration with write_config ARG, checks it, SIGHUPs ixgw
reload_with() {
  write_config "$1"
  "$IXGW" check --config "$T_TMP/ixgw.yaml" >/dev/null || die "the reloaded configuration does not validate"
  kill -HUP "$IXGW_PID"
}

# bench_context REPO : what a benchmark's results name, taken before anything runs: COMMIT (with
# " (dirty)" when the tree differs, RESULTS.md aside), MODEL (the CPU), STARTED (UTC), LOAD0
bench_context() {
  COMMIT=$(git -C "$1" rev-parse --short HEAD)
  [[ -n $(git -C "$1" status --porcelain -- . ':!benches/RESULTS.md') ]] && COMMIT+=" (dirty)"
  MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
  LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
}

# results_section NAME SECTION RESULTS : replaces the part of RESULTS between `<!-- begin NAME -->`
# and `<!-- end NAME -->` with the file SECTION (which holds both markers), appends it when the
# markers are missing, creates RESULTS with its header when it does not exist.
results_section() {
  local name=$1 section=$2 results=$3
  mkdir -p "$(dirname "$results")"
  if [[ ! -f $results ]]; then
    { echo "# Benchmark results"
      echo
      echo "One section per benchmark, each between its \`<!-- begin NAME -->\` and \`<!-- end NAME -->\`"
      echo "markers, which the benchmark's script replaces with its latest run."
      echo
      cat "$section"; } >"$results"
  elif grep -q "^<!-- begin $name -->\$" "$results" && grep -q "^<!-- end $name -->\$" "$results"; then
    awk -v f="$section" -v b="<!-- begin $name -->" -v e="<!-- end $name -->" '
      $0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
      $0 == e { skip = 0; next }
      !skip' "$results" >"$results.new"
    cat "$results.new" >"$results"; rm -f "$results.new"
  else
    { echo; cat "$section"; } >>"$results"
  fi
  log "results written to $results"
}

# strongswan_conf DIR [INSTALL_ROUTES [LEVELS]] : DIR/strongswan.conf for a charon that does
# ESP in userspace (kernel-libipsec: this kernel has no XFRM), with its vici socket and its
# log (charon.log) in DIR; LEVELS: filelog levels beyond `default = 1`, e.g. "knl = 2; esp = 1"
strongswan_conf() {
  local d=$1 routes=${2:-yes} levels=${3:-}
  levels=${levels//; /$'\n      '}
  cat >"$d/strongswan.conf" <<EOC
charon-systemd {
  journal {
    default = -1
  }
}
charon {
  # kernel-libipsec before kernel-netlink (userspace ESP); kdf for 5.9.8's PRF+
  load = random nonce openssl kdf hmac sha2 sha1 pem pkcs1 pkcs8 x509 revocation constraints pubkey kernel-libipsec kernel-netlink socket-default vici updown
  install_routes = $routes
  install_virtual_ip = no
  filelog {
    test {
      path = $d/charon.log
      time_format = %T
      flush_line = yes
      ike_name = yes
      default = 1
      ${levels}
    }
  }
  plugins {
    vici {
      socket = unix://$d/charon.vici
    }
    kernel-libipsec {
      allow_peer_ts = no
    }
  }
}
swanctl {
  load = random nonce openssl pem pkcs1 pkcs8 x509
  socket = unix://$d/charon.vici
}
EOC
}

# swanctl_in DIR COMMAND ARGS... : swanctl against the charon of DIR (strongswan_conf's)
swanctl_in() {
  local d=$1 cmd=$2; shift 2
  STRONGSWAN_CONF="$d/strongswan.conf" SWANCTL_DIR="$d/swanctl" swanctl "$cmd" --uri "unix://$d/charon.vici" "$@"
}

# charon_start DIR NS : charon ($CHARON) with DIR/strongswan.conf in NS, DIR/swanctl loaded
# once its vici socket is up (5 s at most), or die; its PID in BG_PID
charon_start() {
  local d=$1 i
  rm -f "$d/charon.vici"   # left behind by an earlier run of this charon
  start_bg "$2" "$d/stdout.log" env STRONGSWAN_CONF="$d/strongswan.conf" "$CHARON"
  for (( i=0; i<50; i++ )); do
    [[ -S $d/charon.vici ]] && break
    kill -0 "$BG_PID" 2>/dev/null || { cat "$d/stdout.log" "$d/charon.log" >&2 2>/dev/null; die "charon of $d exited at start"; }
    sleep 0.1
  done
  [[ -S $d/charon.vici ]] || { cat "$d/charon.log" >&2 2>/dev/null; die "charon of $d: no vici socket after 5 s"; }
  swanctl_in "$d" --load-all --noprompt >"$d/load-all.log" 2>&1 \
    || { cat "$d/load-all.log" >&2; die "swanctl --load-all for $d failed"; }
}
