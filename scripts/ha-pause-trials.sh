#!/usr/bin/env bash
# Repeats the HA test that pauses the leader (SIGSTOP past its lease, then
# SIGCONT) N times and prints how many trials had a container started
# twice. One trial is ~25 s: two daemons on a real etcd, a 2,000-container
# fake fleet, real DNS to unbound (scripts/test.sh installs etcd and
# unbound). Usage: scripts/ha-pause-trials.sh [N=30]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-30}
cargo nextest run --features etcd --test integration --no-run >/dev/null 2>&1 \
  || cargo nextest run --features etcd --test integration --no-run
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
pass=0 fail=0 twice=0
for i in $(seq 1 "$n"); do
  if cargo nextest run --features etcd --test integration \
      ha_daemon::ha_leader_paused_past_its_lease --no-capture >"$log/$i" 2>&1; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    grep -q "started twice" "$log/$i" && twice=$((twice + 1))
  fi
  line=$(grep -h "after waking" "$log/$i" || true)
  echo "trial $i: $( [ -n "$line" ] && echo "$line" || echo "no figures (see below)")"
  if ! grep -q "PASS" "$log/$i"; then grep -E "panicked|started twice" "$log/$i" | head -3; fi
done
echo "pause trials: $n run, $pass passed, $fail failed ($twice with a container started twice)"
