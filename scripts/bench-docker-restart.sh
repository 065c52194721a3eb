#!/usr/bin/env bash
# Benchmark: restarting N containers on the local Docker Engine with
# `rekindle run --no-pacing` vs `docker ps -q | xargs -P16 -n1 docker restart`,
# at the same concurrency (16 API calls in flight), side by side in one run.
# Prints each trial and the medians. Not a test: nothing here asserts a time.
#
#   scripts/bench-docker-restart.sh [N=100] [TRIALS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
TRIALS=${2:-3}
CONC=16
IMAGE=rekindle-dbnode:test
ID="bench-$$"
docker image inspect "$IMAGE" >/dev/null 2>&1 || scripts/build-test-image.sh
# REKINDLE_BIN: a release binary built elsewhere (skips the build).
if [ -z "${REKINDLE_BIN:-}" ]; then cargo build --release --quiet; fi
BIN=${REKINDLE_BIN:-target/release/rekindle}
work=$(mktemp -d)
cleanup() {
  ids=$(docker ps -aq --filter "label=rekindle.bench=$ID")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting $N containers ($IMAGE, no HEALTHCHECK: running = healthy for both sides)"
seq 1 "$N" | xargs -P8 -I{} docker run -d --no-healthcheck --name "$ID-{}" \
  --label "rekindle.bench=$ID" --label db.role=node "$IMAGE" >/dev/null

cat >"$work/pb.toml" <<TOML
name = "bench-restart"
[groups]
cluster = "rekindle.bench"
replset = "db.replset"
[[roles]]
name = "node"
selector = { "db.role" = "node" }
startup_lookups = 1
health = { kind = "docker", interval = "50ms", deadline = "60s" }
[limits]
max_per_host = $N
max_wave_size = $N
max_unavailable_per_replset = "all"
api_calls_per_host = $CONC
stop_timeout = "10s"
[dns]
capacity_qps = 1000
[discovery]
labels = { "rekindle.bench" = "$ID" }
TOML

now() { date +%s.%N; }
xargs_run() {
  docker ps -q --filter "label=rekindle.bench=$ID" | xargs -P$CONC -n1 docker restart -t 10 >/dev/null
}
rekindle_run() {
  "$BIN" run "$work/pb.toml" --yes --no-pacing --state-dir "$work/state" --output json >"$work/out.json" 2>"$work/err.log" \
    || { cat "$work/err.log" "$work/out.json" >&2; exit 1; }
  grep -q '"state":"succeeded"' "$work/out.json" || { cat "$work/err.log" "$work/out.json" >&2; exit 1; }
}

xs=(); rs=()
for t in $(seq 1 "$TRIALS"); do
  # Alternate who goes first so neither always meets a warmer engine.
  for who in $( [ $((t % 2)) -eq 1 ] && echo "xargs rekindle" || echo "rekindle xargs"); do
    sleep 1
    s=$(now)
    if [ "$who" = xargs ]; then xargs_run; else rekindle_run; fi
    e=$(now)
    d=$(echo "$e - $s" | bc -l)
    printf 'trial %d  %-9s %6.2f s\n' "$t" "$who" "$d"
    if [ "$who" = xargs ]; then xs+=("$d"); else rs+=("$d"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mx=$(median "${xs[@]}"); mr=$(median "${rs[@]}")
printf '\n%d containers, concurrency %d, %d trials (median)\n' "$N" "$CONC" "$TRIALS"
printf '  xargs -P%d docker restart   %6.2f s\n' "$CONC" "$mx"
printf '  rekindle run --no-pacing    %6.2f s\n' "$mr"
printf '  ratio rekindle / xargs      %6.3f\n' "$(echo "$mr / $mx" | bc -l)"
