#!/usr/bin/env bash
# A flamegraph (SVG) of one running treem process, for BENCHMARKS.md.
#
#   scripts/flamegraph.sh PID SECONDS OUT.svg [TITLE]
#
# Samples PID's stacks with perf (99 Hz, DWARF call graphs) for SECONDS, then
# folds them and draws the SVG with inferno (`cargo install inferno`; this
# script installs it into ~/.cargo/bin when missing). perf comes from Debian
# (`apt-get install linux-perf`); it needs root or
# kernel.perf_event_paranoid <= 1. Use it while a benchmark stage runs, e.g.
# `treem-bench --keep` and `pgrep -f treem-town` for the town binary.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: scripts/flamegraph.sh PID SECONDS OUT.svg [TITLE]" >&2
  exit 2
fi
pid="$1"
secs="$2"
out="$3"
title="${4:-treem pid $pid, ${secs} s}"

if ! command -v perf >/dev/null; then
  echo "flamegraph.sh: perf is missing: apt-get install -y linux-perf" >&2
  exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v inferno-flamegraph >/dev/null; then
  echo "flamegraph.sh: installing inferno (cargo install inferno --locked)" >&2
  cargo install inferno --locked >&2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
perf record -F 99 --call-graph dwarf,32768 -o "$work/perf.data" -p "$pid" -- sleep "$secs" >&2
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf > "$work/folded"
inferno-flamegraph --title "$title" --width 1400 < "$work/folded" > "$out"
echo "flamegraph.sh: wrote $out ($(wc -l < "$work/folded") distinct stacks)" >&2
