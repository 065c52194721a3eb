#!/usr/bin/env bash
# Scale benchmark: `rekindle run` on the real path (bollard, hickory, the
# Docker Engine API) against a fake fleet of 100,000 containers on 1,000
# hosts with light DNS (one lookup per start, a resolver far above the load),
# so that the figures are rekindle's own. Prints, besides the real-path
# figures: rekindle's CPU per core averaged over the run and per start, its
# peak RSS, the connections each fake host saw (most open, most idle at
# once, setups in all), how far into the run every host had its first start,
# and whether every container was started exactly once. Not a test: nothing
# here asserts a figure. Takes about ten minutes on 2 cores.
#
#   scripts/bench-scale.sh [SCENARIO [PLAYBOOK]]
#
# SCENARIO defaults to benches/scenarios/scale-light-100k.toml
# (scale-light-20k.toml: the same on 20,000 containers, in about two).
# Every setting of scripts/bench-real-path.sh applies (BIN_DIR, KEEP, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
MEASURE=1 exec scripts/bench-real-path.sh "${1:-benches/scenarios/scale-light-100k.toml}" ${2:+"$2"}
