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

need() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "required tool '$c' is not installed (see .ci/run)"; done
}

netns_add() {
  local ns=$1
  if ip netns list | grep -qw "^$ns"; then die "namespace $ns already exists: another test running? (remove it with 'ip netns del $ns')"; fi
  ip netns add "$ns"
  T_NETNS+=("$ns")
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.default.rp_filter=0
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
      v = $NF; found = 1
    }
    END { print (found ? v : 0) }' <<<"$body"
}

# forget_pid PID : after `wait` reaped it, so that cleanup never signals a reused PID
forget_pid() {
  local keep=() p
  for p in "${T_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  T_PIDS=("${keep[@]}")
}
