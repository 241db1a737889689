#!/usr/bin/env bash
# The runtime's kernel route handling for plain attachments (routes at start, differences on
# reload, nothing left behind by a failed reload or at stop), run as the library test
# `runtime::tests::kernel_routes_follow_reloads_in_a_netns` inside a namespace of its own.
# Usage: netns-tests/routes.sh   (root)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
[[ $(id -u) == 0 ]] || { echo "routes.sh needs root" >&2; exit 1; }
ns=ixgw-rt-test
if ip netns list | grep -w "^$ns" >/dev/null; then echo "namespace $ns exists: another run?" >&2; exit 1; fi
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null' EXIT
ip netns exec "$ns" cargo test --offline --lib -- --ignored --exact \
  runtime::tests::kernel_routes_follow_reloads_in_a_netns
