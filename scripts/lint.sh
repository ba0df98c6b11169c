#!/usr/bin/env bash
# Formatting and lints of the whole workspace, as CI checks them (.ci/run):
#
#   1. `cargo fmt --all --check` (rustfmt.toml);
#   2. `cargo clippy --workspace --all-targets -- -D warnings`: every
#      warning fails.
#
# Both are rustup components of the toolchain (rustup's default profile
# has them; `rustup component add rustfmt clippy`). When one is missing
# this says loudly that the lints were NOT run and how to install it, and
# exits 0: a toolchain without them must not stop the tests from running,
# and nothing here counts a lint that did not run as passed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

for tool in fmt clippy; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    echo "lint.sh: NOT RUN: cargo $tool is missing from this toolchain; install it with: rustup component add $([[ $tool == fmt ]] && echo rustfmt || echo clippy)" >&2
    exit 0
  fi
done

echo "lint.sh: cargo fmt --all --check"
if ! cargo fmt --all --check; then
  echo "lint.sh: formatting differs from rustfmt.toml (above); run: cargo fmt --all" >&2
  exit 1
fi
echo "lint.sh: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "lint.sh: clean"
