#!/usr/bin/env bash
# Real-path benchmark: `rekindle run` against a fake fleet of Docker hosts
# whose containers send real DNS queries to a real unbound limited to the
# scenario's capacity, beside the rehearsal of the same playbook. The
# driver is `rekindle-bench real-path` (testbed/bench/, package
# rekindle-testbed; `rekindle-bench real-path --help` lists its flags);
# this wrapper builds it (release, unless BIN_DIR or PROFILE=debug) and maps
# the environment variables of docs/real-path.md onto its flags. Needs
# unbound (with unbound-control).
#
#   [STATIC=F | SWEEP="F ..."] [SETTING=...] scripts/bench-real-path.sh SCENARIO [PLAYBOOK]
#
# STATIC, SWEEP, DROP_LIMIT, CLAIM, GRANT_AT, ONLY, SURVEY_ONLY=1, FAULTS,
# CRASH, SEED, MEASURE=1, CHAOS=1, CHAOS_HOST_S, DNS_OUTAGE_S, KEEP=1,
# RECORD=NAME (docs/bench/runs/<date>-<machine>/NAME.csv and .txt, or in
# RECORD_DIR), MACHINE,
# BIN_DIR (rekindle, rekindle-fakefleet and rekindle-bench from there, build
# nothing), PROFILE=debug, CARGO_TARGET_DIR; REKINDLE_LOG passes through.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${1:?usage: [STATIC=F | SWEEP=\"F ...\"] scripts/bench-real-path.sh SCENARIO [PLAYBOOK]}"
args=(real-path "$@")
read -ra sweep <<<"${SWEEP:-}"
[ ${#sweep[@]} -gt 0 ] && args+=(--sweep "$(IFS=,; echo "${sweep[*]}")")
for pair in STATIC:--static DROP_LIMIT:--drop-limit CLAIM:--claim GRANT_AT:--grant-at ONLY:--only \
  FAULTS:--faults CRASH:--crash SEED:--seed CHAOS_HOST_S:--chaos-host-s DNS_OUTAGE_S:--dns-outage-s \
  RECORD:--record RECORD_DIR:--out MACHINE:--machine BIN_DIR:--bin-dir; do
  var=${pair%%:*}
  [ -n "${!var:-}" ] && args+=("${pair#*:}" "${!var}")
done
for pair in SURVEY_ONLY:--survey-only MEASURE:--measure CHAOS:--chaos KEEP:--keep; do
  var=${pair%%:*}
  [ "${!var:-}" = 1 ] && args+=("${pair#*:}")
done

if [ -n "${BIN_DIR:-}" ]; then
  BIN=$BIN_DIR
elif [ "${PROFILE:-release}" = "debug" ]; then
  echo "== building (debug: figures are not measurements)"
  cargo build --quiet -p rekindle --bin rekindle -p rekindle-testbed --bin rekindle-fakefleet --bin rekindle-bench
  BIN=${CARGO_TARGET_DIR:-target}/debug
else
  echo "== building (release)"
  cargo build --release --quiet -p rekindle --bin rekindle -p rekindle-testbed --bin rekindle-fakefleet --bin rekindle-bench
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
[ -x "$BIN/rekindle-bench" ] || { echo "bench-real-path: no $BIN/rekindle-bench (cargo build -p rekindle-testbed)" >&2; exit 2; }
exec "$BIN/rekindle-bench" "${args[@]}"
