#!/usr/bin/env bash
# Runs the whole treem system on this machine with sample data:
# one nats-server, the province, the town of Bình Long and its six wards,
# loaded with the sample figures of 2021–2024 (tests/src/bin/treem-sample.rs).
#
#   scripts/run-local.sh              build, start, load, wait until the town and
#                                     the province have everything, print where to
#                                     look, then run until Ctrl-C / SIGTERM
#   scripts/run-local.sh --no-wait    the same, but stop right after printing
#                                     (a smoke test of the whole system)
#   scripts/run-local.sh --keep       keep .run/ from the last run (its data and
#                                     NATS store) instead of starting fresh; the
#                                     sample is loaded only into empty wards
#
# Environment:
#   TREEM_NATS_SERVER   nats-server binary to use (default: the pinned one that
#                       scripts/install-nats.sh installs into .tools/venv)
#   TREEM_PROFILE       release (default) or debug
#   TREEM_SYNC_TIMEOUT  seconds to wait for the town and province (default 300)
#   RUST_LOG            log filter of the services (default info)
#
# Everything lives in .run/ (git-ignored): .run/logs/<name>.log, one data
# directory per node, the NATS store in .run/nats, and one admin API token
# per office service in .run/town.token and .run/province.token (mode 600;
# the town and province APIs need one, see SECURITY.md). Needs bash and either
# curl, python3 or nothing (bash's /dev/tcp is the last resort) to talk HTTP.
#
# Ports: nats 4222 (another free port if 4222 is taken), province 7430,
# town 7420, wards 7411–7416.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo
cd "$repo"

readonly run="$repo/.run"
readonly logs="$run/logs"

# The wards of Bình Long: code, name, HTTP port.
readonly WARD_CODES=(25320 25324 25325 25326 25333 25336)
readonly WARD_NAMES=("Hưng Chiến" "An Lộc" "Phú Thịnh" "Phú Đức" "Thanh Lương" "Thanh Phú")
readonly WARD_PORTS=(7411 7412 7413 7414 7415 7416)
readonly TOWN_PORT=7420
readonly PROVINCE_PORT=7430
readonly SAMPLE_YEAR=2024

say() { printf 'run-local: %s\n' "$*"; }
warn() { printf 'run-local: WARNING: %s\n' "$*" >&2; }
die() {
  printf 'run-local: ERROR: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

keep=0
no_wait=0
while (($#)); do
  case "$1" in
    --keep) keep=1 ;;
    --no-wait) no_wait=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

profile="${TREEM_PROFILE:-release}"
case "$profile" in
  release) cargo_profile=(--release) ;;
  debug) cargo_profile=() ;;
  *) die "TREEM_PROFILE must be release or debug, not '$profile'" ;;
esac
readonly bin="$repo/target/$profile"
sync_timeout="${TREEM_SYNC_TIMEOUT:-300}"
[[ "$sync_timeout" =~ ^[0-9]+$ ]] || die "TREEM_SYNC_TIMEOUT must be a number of seconds, not '$sync_timeout'"
export RUST_LOG="${RUST_LOG:-info}"
# Plain text in the log files: the services' logs honour NO_COLOR.
export NO_COLOR=1

started=$SECONDS

# --- HTTP, with whatever this machine has ------------------------------------
# curl when installed; else python3's urllib; else a plain HTTP/1.0 request
# over bash's /dev/tcp (enough for our own services on 127.0.0.1).
if command -v curl >/dev/null 2>&1; then
  http_client=curl
elif command -v python3 >/dev/null 2>&1; then
  http_client=python3
else
  http_client=bash
fi

# Prints the body of GET $1, sending the API token $2 if given (the town
# and province need one; wards and /health do not); fails unless the
# answer is 2xx.
http_get() {
  local auth=()
  [[ -n "${2:-}" ]] && auth=(-H "Authorization: Bearer $2")
  case "$http_client" in
    curl) curl -fsS --max-time 10 "${auth[@]}" "$1" ;;
    python3)
      python3 -c 'import sys, urllib.request
req = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2 and sys.argv[2]:
    req.add_header("Authorization", "Bearer " + sys.argv[2])
with urllib.request.urlopen(req, timeout=10) as r:
    sys.stdout.write(r.read().decode("utf-8"))' "$1" "${2:-}"
      ;;
    bash) http_get_bash "$1" "${2:-}" ;;
  esac
}

http_get_bash() {
  local rest="${1#http://}"
  local hostport="${rest%%/*}" path="/${rest#*/}"
  local fd response auth_line=""
  [[ -n "${2:-}" ]] && auth_line="Authorization: Bearer $2"$'\r\n'
  exec {fd}<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n%sConnection: close\r\n\r\n' "$path" "$hostport" "$auth_line" >&"$fd"
  response="$(timeout 10 cat <&"$fd")" || true
  exec {fd}>&-
  [[ "${response%%$'\r'*}" =~ ^HTTP/1\.[01]\ 2 ]] || return 1
  printf '%s' "${response#*$'\r\n\r\n'}"
}

# True when something listens on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The number after "$2": in the JSON text $1 (first occurrence).
json_num() {
  local re="\"$2\":([0-9]+)"
  [[ "$1" =~ $re ]] && printf '%s' "${BASH_REMATCH[1]}"
}

# The object of ward $2 in a town /api/v1/sync answer $1 (flat objects only).
ward_object() { printf '%s' "$1" | tr '{' '\n' | grep -F "\"ward\":\"$2\"" | head -n 1; }

# One line per indicator of an /api/v1/indicators answer:
# "code numerator denominator value status" (null when absent).
indicator_rows() {
  local line code num den value status
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ \"code\":\"([^\"]*)\" ]] || continue
    code="${BASH_REMATCH[1]}"
    num=null den=null value=null status=unknown
    if [[ "$line" =~ \"numerator\":(null|[0-9]+) ]]; then num="${BASH_REMATCH[1]}"; fi
    # The indicator's own value follows its denominator (targets have values too).
    if [[ "$line" =~ \"denominator\":(null|[0-9]+),\"value\":(null|[-0-9.eE+]+) ]]; then
      den="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
    fi
    if [[ "$line" =~ \"status\":\"([^\"]*)\" ]]; then status="${BASH_REMATCH[1]}"; fi
    printf '%s %s %s %s %s\n' "$code" "$num" "$den" "$value" "$status"
  done < <(printf '%s' "$1" | sed 's/{"code":/\n{"code":/g')
}

# --- processes ----------------------------------------------------------------
names=()            # in start order
declare -A pid_of=()
stopping=0

# Starts "$@" in the background as $name, logging to .run/logs/$name.log.
# In a session of its own (setsid), so a Ctrl-C in this terminal reaches only
# this script, which then stops the services in order (wards first, NATS last).
start() {
  local name="$1"
  shift
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  else
    "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  fi
  pid_of[$name]=$!
  names+=("$name")
}

alive() { kill -0 "${pid_of[$1]}" 2>/dev/null; }

show_log() {
  printf -- '--- last lines of %s ---\n' "$logs/$1.log" >&2
  tail -n 25 "$logs/$1.log" >&2 || true
  printf -- '---\n' >&2
}

# Waits up to $2 s until "${@:3}" succeeds, while $1 stays alive.
wait_until() {
  local name="$1" timeout="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      show_log "$name"
      die "$name exited during start-up (log: $logs/$name.log)"
    fi
    if ((SECONDS >= deadline)); then
      show_log "$name"
      die "$name did not answer within ${timeout} s (log: $logs/$name.log)"
    fi
    sleep 0.2
  done
}

# Stops every service, newest first: wards, town, province, then NATS, each
# with SIGTERM (graceful: flush, close) and up to 20 s to finish.
stop_all() {
  ((stopping)) && return 0
  stopping=1
  ((${#names[@]})) || return 0
  say "stopping ${#names[@]} processes"
  local i name pid deadline code
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do
    name="${names[i]}"
    pid="${pid_of[$name]}"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      warn "$name (pid $pid) did not stop within 20 s after SIGTERM; killing it (log: $logs/$name.log)"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    code=0
    wait "$pid" 2>/dev/null || code=$?
    if ((code != 0 && code != 143)); then
      warn "$name exited with status $code (log: $logs/$name.log)"
    fi
  done
  rm -f "$run/run-local.pid"
  say "all stopped; logs and data stay in $run"
}

on_signal() {
  echo
  say "$1 received"
  exit "$2"
}
trap stop_all EXIT
trap 'on_signal SIGINT 130' INT
trap 'on_signal SIGTERM 143' TERM

# --- 1. nats-server -------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust (https://rustup.rs) and run again"
if [[ -z "${TREEM_NATS_SERVER:-}" ]]; then
  say "getting nats-server (scripts/install-nats.sh)"
  TREEM_NATS_SERVER="$(scripts/install-nats.sh)" || die "scripts/install-nats.sh failed (see above); or set TREEM_NATS_SERVER=/path/to/nats-server"
fi
readonly nats="$TREEM_NATS_SERVER"
[[ -x "$nats" ]] || die "TREEM_NATS_SERVER=$nats is not an executable file"
say "nats-server: $nats ($("$nats" --version 2>&1))"

# --- 2. build ---------------------------------------------------------------------
say "building ($profile): cargo build ${cargo_profile[*]} --workspace --bins"
build_started=$SECONDS
cargo build "${cargo_profile[@]}" --workspace --bins
say "built in $((SECONDS - build_started)) s"
for b in treem-ward treem-town treem-province treem-sample; do
  [[ -x "$bin/$b" ]] || die "$bin/$b is missing after the build"
done

# --- 3. start everything ------------------------------------------------------------
if [[ -f "$run/run-local.pid" ]] && kill -0 "$(cat "$run/run-local.pid")" 2>/dev/null; then
  die "another scripts/run-local.sh (pid $(cat "$run/run-local.pid")) is using $run; stop it first (Ctrl-C in its terminal)"
fi
for port in "${WARD_PORTS[@]}" "$TOWN_PORT" "$PROVINCE_PORT"; do
  if port_open "$port"; then
    die "port $port is already in use (another treem?); see which process holds it with: ss -ltnp 'sport = :$port'"
  fi
done
if ((keep)) && [[ -d "$run" ]]; then
  say "keeping $run from the last run (--keep)"
else
  rm -rf "$run"
fi
mkdir -p "$logs"
echo $$ >"$run/run-local.pid"

services_started=$SECONDS
nats_port=4222
if port_open "$nats_port"; then
  nats_port=4223
  while port_open "$nats_port"; do
    ((nats_port++))
    ((nats_port < 4300)) || die "ports 4222–4299 are all in use; free one for nats-server"
  done
  say "port 4222 is busy; nats-server listens on $nats_port instead"
fi
readonly nats_url="nats://127.0.0.1:$nats_port"

say "starting nats-server on $nats_url (store $run/nats)"
start nats "$nats" -c "$repo/deploy/nats/treem.conf" -p "$nats_port" -sd "$run/nats"
wait_until nats 20 port_open "$nats_port"

# One admin token per office service, made once with the `token create`
# command (which works before the service starts) and kept for --keep runs.
api_token() {
  local service="$1" var="$2" file="$run/$1.token"
  if [[ ! -s "$file" ]]; then
    (umask 077 && env "$var=$run/$service" "$bin/treem-$service" --config "$repo/deploy/config/$service.toml" \
      token create --name "run-local ($(id -un))" --role admin >"$file" 2>/dev/null) ||
      die "creating an API token for the $service failed (try: $bin/treem-$service token create --name me --role admin)"
  fi
  cat "$file"
}
province_token="$(api_token province TREEM_PROVINCE_DATA_DIR)"
town_token="$(api_token town TREEM_TOWN_DATA_DIR)"
readonly province_token town_token

# Each ward's signing key, registered at the town as SECURITY.md says
# (`keys show --public | keys add`): the town refuses events of wards whose
# key it does not know. Idempotent, so --keep runs keep their keys.
for code in "${WARD_CODES[@]}"; do
  ward_env=(TREEM_WARD_WARD="$code" TREEM_WARD_DATA_DIR="$run/ward-$code")
  env "${ward_env[@]}" "$bin/treem-ward" --config "$repo/deploy/config/ward.toml" keys init >/dev/null ||
    die "making the signing key of ward $code failed"
  env "${ward_env[@]}" "$bin/treem-ward" --config "$repo/deploy/config/ward.toml" keys show --public |
    env TREEM_TOWN_DATA_DIR="$run/town" "$bin/treem-town" --config "$repo/deploy/config/town.toml" keys add >/dev/null ||
    die "registering the signing key of ward $code at the town failed"
done
say "the six wards' signing keys are registered at the town ($run/town/ward_keys.json)"

say "starting the province (http://127.0.0.1:$PROVINCE_PORT)"
start province env \
  TREEM_PROVINCE_DATA_DIR="$run/province" \
  TREEM_PROVINCE_HTTP_ADDR="127.0.0.1:$PROVINCE_PORT" \
  TREEM_PROVINCE_NATS_URL="$nats_url" \
  "$bin/treem-province" --config "$repo/deploy/config/province.toml" serve

say "starting the town (http://127.0.0.1:$TOWN_PORT)"
start town env \
  TREEM_TOWN_DATA_DIR="$run/town" \
  TREEM_TOWN_HTTP_ADDR="127.0.0.1:$TOWN_PORT" \
  TREEM_TOWN_NATS_URL="$nats_url" \
  "$bin/treem-town" --config "$repo/deploy/config/town.toml" serve

for i in "${!WARD_CODES[@]}"; do
  code="${WARD_CODES[i]}"
  say "starting ward $code ${WARD_NAMES[i]} (http://127.0.0.1:${WARD_PORTS[i]})"
  start "ward-$code" env \
    TREEM_WARD_WARD="$code" \
    TREEM_WARD_AUTHOR="officer-$code" \
    TREEM_WARD_DATA_DIR="$run/ward-$code" \
    TREEM_WARD_HTTP_ADDR="127.0.0.1:${WARD_PORTS[i]}" \
    TREEM_WARD_NATS_URL="$nats_url" \
    "$bin/treem-ward" --config "$repo/deploy/config/ward.toml" serve
done

wait_until province 60 http_get "http://127.0.0.1:$PROVINCE_PORT/health"
wait_until town 60 http_get "http://127.0.0.1:$TOWN_PORT/health"
for i in "${!WARD_CODES[@]}"; do
  wait_until "ward-${WARD_CODES[i]}" 60 http_get "http://127.0.0.1:${WARD_PORTS[i]}/health"
done
say "all ${#names[@]} processes answer ($((SECONDS - services_started)) s after starting them)"

# --- 4. sample data ------------------------------------------------------------------
held=0
for i in "${!WARD_CODES[@]}"; do
  status="$(http_get "http://127.0.0.1:${WARD_PORTS[i]}/api/v1/status")" || die "ward ${WARD_CODES[i]}: GET /api/v1/status failed"
  last="$(json_num "$status" last_seq)" || die "ward ${WARD_CODES[i]}: /api/v1/status has no last_seq: $status"
  held=$((held + last))
done
if ((held > 0)); then
  say "the wards already hold $held events from an earlier run: not loading the sample again (run without --keep for fresh data)"
else
  sample_args=()
  for i in "${!WARD_CODES[@]}"; do
    sample_args+=(--ward "${WARD_CODES[i]}=http://127.0.0.1:${WARD_PORTS[i]}")
  done
  say "loading sample data: $bin/treem-sample ${sample_args[*]}"
  "$bin/treem-sample" "${sample_args[@]}" || die "loading the sample data failed (see above; ward logs in $logs/)"
fi

# --- 5. wait for the town and the province ----------------------------------------------
# The town has everything when, for every ward, the last seq it applied is
# the ward's last seq; the province has it when its figures for the sample
# year are the town's.
town_url="http://127.0.0.1:$TOWN_PORT"
province_url="http://127.0.0.1:$PROVINCE_PORT"

# Prints "applied/recorded"; succeeds when the town applied every ward's last event.
town_progress() {
  local sync status i code last applied total_last=0 total_applied=0 ok=0
  sync="$(http_get "$town_url/api/v1/sync" "$town_token" 2>/dev/null)" || { echo "town not answering"; return 1; }
  for i in "${!WARD_CODES[@]}"; do
    code="${WARD_CODES[i]}"
    status="$(http_get "http://127.0.0.1:${WARD_PORTS[i]}/api/v1/status" 2>/dev/null)" || { echo "ward $code not answering"; return 1; }
    last="$(json_num "$status" last_seq)"
    applied="$(json_num "$(ward_object "$sync" "$code")" last_seq_applied)" || applied=0
    total_last=$((total_last + ${last:-0}))
    total_applied=$((total_applied + ${applied:-0}))
    [[ "${applied:-0}" == "${last:-x}" ]] || ok=1
  done
  echo "town applied $total_applied of $total_last events"
  return "$ok"
}

# The figures (code=numerator/denominator) of an /api/v1/indicators answer,
# leaving out the codes the province withheld
# (small sensitive counts, shown there as suppressed: numerator null).
figures_shown_by() {
  local code num den _ withheld=" "
  while read -r code num _; do [[ "$num" == null ]] && withheld+="$code "; done < <(indicator_rows "$2")
  while read -r code num den _; do
    [[ "$withheld" == *" $code "* ]] && continue
    printf '%s=%s/%s ' "$code" "$num" "$den"
  done < <(indicator_rows "$1")
}

# Succeeds when the province shows the town's figures for every sample year
# (except those it shows as suppressed, which the town withheld on purpose).
province_progress() {
  local year town province
  for year in 2021 2022 2023 "$SAMPLE_YEAR"; do
    town="$(http_get "$town_url/api/v1/indicators?year=$year" "$town_token" 2>/dev/null)" || { echo "town not answering"; return 1; }
    province="$(http_get "$province_url/api/v1/indicators?year=$year" "$province_token" 2>/dev/null)" || { echo "province not answering"; return 1; }
    if ! [[ "$province" =~ \"numerator\":[0-9] ]]; then
      echo "province has no $year figures yet"
      return 1
    fi
    if [[ "$(figures_shown_by "$town" "$province")" != "$(figures_shown_by "$province" "$province")" ]]; then
      echo "province figures for $year differ from the town's (an older snapshot)"
      return 1
    fi
  done
  echo "province has the town's figures for 2021–$SAMPLE_YEAR"
}

# Waits until $2 succeeds, printing its progress every 5 s; $1 names the wait.
wait_for() {
  local what="$1" check="$2" deadline=$((SECONDS + sync_timeout)) next=$((SECONDS + 5)) progress name
  until progress="$($check)"; do
    for name in "${names[@]}"; do
      alive "$name" || {
        show_log "$name"
        die "$name exited while waiting for $what (log: $logs/$name.log)"
      }
    done
    if ((SECONDS >= deadline)); then
      die "$what: not done after ${sync_timeout} s ($progress); see $logs/ and $town_url/api/v1/sync"
    fi
    if ((SECONDS >= next)); then
      say "waiting for $what: $progress"
      next=$((SECONDS + 5))
    fi
    sleep 0.5
  done
  say "$progress"
}

sync_started=$SECONDS
wait_for "the town" town_progress
wait_for "the province" province_progress
say "town and province in step $((SECONDS - sync_started)) s after loading"

sync="$(http_get "$town_url/api/v1/sync" "$town_token")"
parked="$(json_num "$sync" parked)" || parked=0
if ((${parked:-0} > 0)); then
  warn "the town parked $parked message(s) it refused; see $town_url/api/v1/parked"
fi

# --- 6. where to look ------------------------------------------------------------------
town_indicators="$(http_get "$town_url/api/v1/indicators?year=$SAMPLE_YEAR" "$town_token")"
echo
echo "Bình Long (town 690), indicators for $SAMPLE_YEAR, as the town computes them:"
printf '  %-5s %-21s %10s  %s\n' code numerator/denominator value status
while read -r code num den value status; do
  if [[ "$value" == null ]]; then value=-; else value="$(printf '%.2f' "$value")"; fi
  if [[ "$num" == null ]]; then
    fraction=-
  elif [[ "$den" == null ]]; then
    fraction="$num"
  else
    fraction="$num/$den"
  fi
  printf '  %-5s %-21s %10s  %s\n' "$code" "$fraction" "$value" "$status"
done < <(indicator_rows "$town_indicators")

pretty=""
if [[ "$http_client" == curl ]] && command -v python3 >/dev/null 2>&1; then
  pretty=" | python3 -m json.tool"
fi
cat <<EOF

treem is running locally ($((SECONDS - started)) s from start). Look at:

  town dashboard (browser)   $town_url/   (sign in with the token in $run/town.token)
  province dashboard         $province_url/   (token in $run/province.token)
  ward data entry (browser)  http://127.0.0.1:7411/   (this computer only, no sign-in)
  town, indicators $SAMPLE_YEAR     $town_url/api/v1/indicators?year=$SAMPLE_YEAR
  town, one indicator        $town_url/api/v1/indicators?year=$SAMPLE_YEAR&code=4a
  town, one ward's view      $town_url/api/v1/indicators?year=$SAMPLE_YEAR&ward=25336
  town, case summary         $town_url/api/v1/cases?year=$SAMPLE_YEAR
  town, sync per ward        $town_url/api/v1/sync
  town, parked messages      $town_url/api/v1/parked
  province, indicators       $province_url/api/v1/indicators?year=$SAMPLE_YEAR
  province, sync per town    $province_url/api/v1/sync
  ward 25320, status         http://127.0.0.1:7411/api/v1/status
  ward 25320, its events     http://127.0.0.1:7411/api/v1/events?after=0&limit=5
  health, metrics            /health and /metrics on every port above

The town and province APIs need a token (SECURITY.md); run-local made an
admin token for each, so send one of them with every request:
  -H "Authorization: Bearer \$(cat $run/town.token)"       (town, port $TOWN_PORT)
  -H "Authorization: Bearer \$(cat $run/province.token)"   (province, port $PROVINCE_PORT)
Case summaries need an officer (or admin) token, and every read of them is
audited in $run/town/auth/audit.jsonl. Tokens for people:
  TREEM_TOWN_DATA_DIR=$run/town $bin/treem-town token create --name 'Lan' --role viewer

Wards: $(for i in "${!WARD_CODES[@]}"; do printf '%s %s :%s; ' "${WARD_CODES[i]}" "${WARD_NAMES[i]}" "${WARD_PORTS[i]}"; done)
NATS:  $nats_url (store $run/nats)

Try:
  town_auth="Authorization: Bearer \$(cat $run/town.token)"
  curl -s -H "\$town_auth" '$town_url/api/v1/indicators?year=$SAMPLE_YEAR&code=8a'$pretty
  curl -s -H "\$town_auth" '$town_url/api/v1/cases?year=$SAMPLE_YEAR&ward=25325'$pretty
  # record something at a ward, then watch the town pick it up:
  curl -s -X POST http://127.0.0.1:7411/api/v1/events -H 'content-type: application/json' \\
    -d '{"author":"officer-25320","kind":"indicator.observed","body":{"indicator":"4a","year":$SAMPLE_YEAR,"numerator":180,"denominator":900,"source":"health_centre"}}'
  curl -s -H "\$town_auth" '$town_url/api/v1/indicators?year=$SAMPLE_YEAR&ward=25320&code=4a'$pretty
  # the ward CLI talks to the running node:
  TREEM_WARD_WARD=25320 TREEM_WARD_DATA_DIR=$run/ward-25320 $bin/treem-ward --config $repo/deploy/config/ward.toml status
  # town snapshots arriving at the province, live:
  $bin/treem-province watch --nats-url $nats_url

Logs: $logs/<name>.log (nats, province, town, ward-25320 … ward-25336), e.g.
  tail -f $logs/town.log
EOF
if [[ "$http_client" != curl ]]; then
  echo "(curl is not installed; for the examples above: sudo apt-get install -y curl)"
fi
echo

if ((no_wait)); then
  say "--no-wait: stopping now"
  exit 0
fi

say "running; press Ctrl-C to stop everything"
while true; do
  for name in "${names[@]}"; do
    if ! alive "$name"; then
      show_log "$name"
      die "$name exited unexpectedly (log: $logs/$name.log); stopping the rest"
    fi
  done
  # `wait` (unlike a foreground sleep) returns at once when a signal arrives.
  sleep 2 &
  wait $! || true
done
