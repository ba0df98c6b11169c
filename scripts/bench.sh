#!/usr/bin/env bash
# treem's benchmark suite, one command (issue 5; BENCHMARKS.md has figures).
#
#   scripts/bench.sh [treem-bench options]      e.g.  scripts/bench.sh --dir /srv/bench
#   scripts/bench.sh --smoke                    every stage at its smallest size
#
# What it does:
#   1. a pinned nats-server (scripts/install-nats.sh, a no-op when present),
#      exported as TREEM_NATS_SERVER;
#   2. PostgreSQL from Debian when missing (`apt-get install -y postgresql`,
#      as root; otherwise it says what to install). The benchmark starts its
#      own private cluster (initdb + pg_ctl in its run directory, Unix socket
#      only) and removes it at the end; the system's cluster is never used;
#   3. release build of the services and of treem-bench;
#   4. treem-bench with the binaries of target/release: every stage and, in
#      the same run, the raw limit under it; prints one table (Markdown).
#
# --dir PATH puts the run directory (ward logs, stores, the PostgreSQL
# cluster) on PATH; the nats-servers' stores follow (TMPDIR is set to it).
# Put it on the disk you care about: a tmpfs makes fsync free and the
# figures meaningless. The table goes to stdout, progress to stderr; pass
# --json-out FILE for the figures as JSON. Exit status 1 if a stage failed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [[ "${args[i]}" == "--dir" && $((i + 1)) -lt ${#args[@]} ]]; then
    mkdir -p "${args[i + 1]}"
    TMPDIR="$(cd "${args[i + 1]}" && pwd)"
    export TMPDIR
  fi
done

if [[ -z "${TREEM_NATS_SERVER:-}" ]]; then
  TREEM_NATS_SERVER="$(scripts/install-nats.sh)"
fi
export TREEM_NATS_SERVER
echo "bench.sh: nats-server: $TREEM_NATS_SERVER ($("$TREEM_NATS_SERVER" --version))" >&2

have_postgres() {
  [[ -n "${TREEM_PG_BIN:-}" ]] || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v pg_config >/dev/null
}
if ! have_postgres; then
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
    echo "bench.sh: installing PostgreSQL from Debian (apt-get install -y postgresql)" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
  else
    echo "bench.sh: PostgreSQL is missing: run 'sudo apt-get install -y postgresql' (or set TREEM_PG_BIN to its bin directory)" >&2
    exit 1
  fi
fi

echo "bench.sh: cargo build --release (services and treem-bench)" >&2
cargo build --release -q -p treem-ward -p treem-town -p treem-province -p treem-tests --bins >&2

echo "bench.sh: target/release/treem-bench --bin-dir target/release ${args[*]:-}" >&2
exec target/release/treem-bench --bin-dir "$repo/target/release" "${args[@]}"
