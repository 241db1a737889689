#!/usr/bin/env bash
# Runs every test of ixgw: the alert rules and their unit tests (promtool); unit, property and
# doc tests; the in-memory WireGuard pair harness (virtual time); the Debian package (cargo-deb,
# dpkg-deb); the end-to-end tests in network namespaces against wireguard-go, strongSwan and
# iperf3 (root). Fails on the first failing suite.
set -euo pipefail
cd "$(dirname "$0")"

echo "== promtool (alert rules and their unit tests)"
if ! command -v promtool >/dev/null; then
  echo "promtool is missing: install it (Debian: apt-get install --no-install-recommends prometheus)" >&2
  exit 1
fi
if ! cargo deb --version >/dev/null 2>&1; then
  echo "cargo-deb is missing: install it with cargo install cargo-deb --locked --version 3.8.0" >&2
  exit 1
fi
promtool check rules config/alerts/ixgw-rules.yaml
promtool test rules config/alerts/ixgw-rules.test.yaml
echo "== cargo test (unit, property, integration)"
cargo test --all-targets
echo "== cargo test --features virtual-time (pair harnesses with virtual time)"
cargo test --features virtual-time --test wg_pair --test gateway_pair
cargo build --release
echo "== Debian package (cargo deb, dpkg-deb -c)"
deb=$(packaging/build-deb.sh --no-build | tail -n 1)
packaging/check-deb.sh "$deb"
echo "== netns end-to-end tests (root)"
# netns-tests/bench-*.sh are benchmarks (minutes long, results into benches/RESULTS.md), not
# tests: run them by hand (usage in their headers), never from here.
for t in netns-tests/*.sh; do
  case $(basename "$t") in lib.sh | bench-*.sh) continue ;; esac
  echo "-- $t"
  "$t" target/release/ixgw
done
echo "== all tests passed"
