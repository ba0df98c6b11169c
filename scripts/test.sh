#!/usr/bin/env bash
# The treem test command: every test of the workspace, against a real
# nats-server. Run from anywhere; extra arguments go to `cargo nextest run`
# (e.g. `scripts/test.sh -p treem-tests -E 'test(harness)'`).
#
#   1. makes sure a pinned nats-server exists (scripts/install-nats.sh, a
#      no-op when it already does) and exports TREEM_NATS_SERVER for the
#      harness (tests/src/nats.rs); a TREEM_NATS_SERVER already set wins;
#      likewise headless Chromium for the browser test
#      (scripts/install-browser.sh) and PostgreSQL's binaries for the
#      benchmark smoke test (scripts/install-postgres.sh), from Debian;
#   2. doctests (`cargo test --doc`: nextest does not run them), which keep
#      the examples in our docs compiling;
#   3. all other tests with cargo-nextest, profile `ci` when CI=true (see
#      .config/nextest.toml), `default` otherwise. Last, so its summary is
#      the closing line.
# Exits non-zero if either step failed; both always run.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ -z "${TREEM_NATS_SERVER:-}" ]]; then
  TREEM_NATS_SERVER="$(scripts/install-nats.sh)"
fi
export TREEM_NATS_SERVER
echo "test.sh: nats-server: $TREEM_NATS_SERVER ($("$TREEM_NATS_SERVER" --version))"
scripts/install-browser.sh </dev/null >/dev/null
scripts/install-postgres.sh </dev/null

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: cargo-nextest is missing; install it with: cargo install cargo-nextest --locked" >&2
  exit 1
fi

profile="default"
if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then
  profile="ci"
fi

status=0
# The end-to-end tests run the service binaries (kill -9 scenarios): build them first.
echo "test.sh: cargo build --workspace --bins"
cargo build --workspace --bins
echo "test.sh: doctests"
cargo test --workspace --doc || status=1

echo "test.sh: cargo nextest run --workspace --no-fail-fast --profile $profile $*"
cargo nextest run --workspace --no-fail-fast --profile "$profile" "$@" || status=1

exit "$status"
