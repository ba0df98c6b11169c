#!/usr/bin/env bash
# Makes PostgreSQL's server binaries (initdb, pg_ctl) available from Debian's
# packages, for the benchmark's comparison with a central PostgreSQL (issue 5)
# and its smoke test. Idempotent: does nothing when they are there. The
# benchmark runs its own private cluster; nothing here starts a server.
set -euo pipefail
if [[ -n "${TREEM_PG_BIN:-}" ]] || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null; then
  echo "install-postgres: PostgreSQL is missing: run 'sudo apt-get install -y postgresql' (or set TREEM_PG_BIN to its bin directory)" >&2
  exit 1
fi
echo "install-postgres: installing PostgreSQL from Debian (apt-get install -y postgresql)" >&2
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql </dev/null >&2
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "install-postgres: initdb still missing after the install" >&2; exit 1; }
