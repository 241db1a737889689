#!/usr/bin/env bash
# The TUN device's batched I/O on a real device (`runtime::tun`): TSO and USO super-packets
# read as checksummed segments, a run of TCP segments and a run of UDP datagrams each written
# as one super-packet that a local socket reads whole, a forwarded UDP super-packet leaving as
# its datagrams byte for byte, the mode without offloads, and no allocation per packet once
# warm (`tests/alloc.rs`). Each test makes a network namespace of its own for its thread.
# Usage: netns-tests/tun-io.sh   (root)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
[[ $(id -u) == 0 ]] || { echo "tun-io.sh needs root" >&2; exit 1; }
cargo test --offline --lib -- --ignored runtime::tun::tests
cargo test --offline --test alloc -- --ignored tun_device_reads_and_sends
