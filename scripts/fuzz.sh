#!/usr/bin/env bash
# Fuzzing (issue 12), on the stable toolchain: runs each target of
# tests/fuzz_inputs/ (playbook, scenario, inventory, journal, api, mongo)
# for FUZZ_SECS seconds (default 600): its regressions
# (tests/fuzz/regressions/TARGET/), its corpus (tests/fuzz/corpus/TARGET/),
# then structure-aware mutants and arbitrary bytes. The build is a release
# one with overflow checks and debug assertions on (as cargo-fuzz builds), in
# its own target dir (FUZZ_TARGET_DIR, default target/fuzz) so the usual
# release build is left alone. Prints per target the inputs run and the
# panics (must be 0); a panic's input is saved in target/fuzz-crashes/ and the
# script exits 1. Logs: target/fuzz-logs/TARGET.log.
#
#   scripts/fuzz.sh                        # every target, 600 s each
#   FUZZ_SECS=60 scripts/fuzz.sh journal   # one target (or several)
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(playbook scenario inventory journal api mongo)
SECS=${FUZZ_SECS:-600}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${ALL[@]}")
fi
for t in "${targets[@]}"; do
  if [[ " ${ALL[*]} " != *" $t "* ]]; then
    echo "unknown target $t: expected some of ${ALL[*]}" >&2
    exit 2
  fi
done

export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-target/fuzz}
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
export RUST_BACKTRACE=${RUST_BACKTRACE:-0}
mkdir -p target/fuzz-logs

echo "== building (release, overflow checks on, in $CARGO_TARGET_DIR)"
cargo test --release --test integration --no-run --quiet

summary=()
failed=0
for t in "${targets[@]}"; do
  log=target/fuzz-logs/$t.log
  echo "== fuzz $t: ${SECS} s"
  set +e
  REKINDLE_FUZZ_SECS=$SECS cargo test --release --quiet --test integration "fuzz_inputs::$t" \
    -- --exact --nocapture >"$log" 2>&1
  rc=$?
  set -e
  grep -E "^fuzz $t: |panicked|saved to" "$log" || true
  line=$(grep -E "^fuzz $t: [0-9]+ inputs" "$log" | tail -1 || true)
  if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
    inputs=$(sed -E 's/^fuzz [a-z]+: ([0-9]+) inputs in ([0-9.]+) s.*/\1/' <<<"$line")
    secs=$(sed -E 's/^fuzz [a-z]+: ([0-9]+) inputs in ([0-9.]+) s.*/\2/' <<<"$line")
    slow=$(sed -E 's/.* ([0-9]+) slow .*/\1/' <<<"$line")
    summary+=("$(printf '%-10s %12s %9s %7s %5s' "$t" "$inputs" "$secs" 0 "$slow")")
  else
    failed=1
    inputs=$(grep -oE "after [0-9]+ inputs" "$log" | grep -oE "[0-9]+" | tail -1 || true)
    summary+=("$(printf '%-10s %12s %9s %7s %5s  (see %s)' "$t" "${inputs:-?}" - 1 - "$log")")
  fi
done

echo
printf '%-10s %12s %9s %7s %5s\n' target inputs seconds panics slow
printf '%s\n' "${summary[@]}"
exit $failed
