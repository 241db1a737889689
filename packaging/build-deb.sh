#!/usr/bin/env bash
# Builds the Debian package target/debian/ixgw_VERSION-1_ARCH.deb (and ixgw-dbgsym, its debug
# information) and prints its path last.
# The man pages and shell completions come from the release binary itself (`ixgw man`,
# `ixgw completions`), written into target/assets/; cargo-deb then packages what
# [package.metadata.deb] in Cargo.toml lists.
#
#   packaging/build-deb.sh              # cargo build --release first
#   packaging/build-deb.sh --no-build   # target/release/ixgw is already built
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "cargo-deb is missing: cargo install cargo-deb --locked --version 3.8.0" >&2
  exit 1
fi
case ${1:-} in
  --no-build) ;;
  "") cargo build --release ;;
  *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
esac

bin=${CARGO_TARGET_DIR:-target}/release/ixgw
[[ -x $bin ]] || { echo "$bin is missing: cargo build --release" >&2; exit 1; }
# Relative to the crate, as Cargo.toml's assets name them, wherever the target directory is.
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" man --dir "$assets/man"
"$bin" completions bash >"$assets/completions/ixgw.bash"
"$bin" completions zsh >"$assets/completions/_ixgw"
"$bin" completions fish >"$assets/completions/ixgw.fish"

# cargo-deb prints the path of each package it made (ixgw-dbgsym's .ddeb too): the .deb last.
out=$(cargo deb --no-build)
grep -v '\.deb$' <<<"$out" || true
grep '\.deb$' <<<"$out" || { echo "cargo deb made no .deb" >&2; exit 1; }
