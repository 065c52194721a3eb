#!/usr/bin/env bash
# Rehearsals on resolvers unlike the shipped ones: for each variant, the
# default adaptive pacing of config/mongo-sharded.toml against the best
# static budget chosen with hindsight (`rehearse --sweep` on the same
# variant). Prints one table (docs/dns.md quotes it).
#
# A variant is a shipped scenario with its `[dns]` lines changed (queue size,
# per-second limit mode) and a playbook that claims a capacity: the
# scenario's own capacity for braze-us01 and smoke (as the scenario benchmark
# does), the playbook's 5,000 q/s for the half-DNS scenario (whose resolver
# answers half of that), and 125x the truth for "smoke, over-claimed".
#
#   scripts/bench-dns-variants.sh            # builds release first
#   BIN=target/release/rekindle scripts/bench-dns-variants.sh
#   GRANT_AT=restart scripts/bench-dns-variants.sh   # grant before the stop
#   SEEDS="1 2 3 4 5" scripts/bench-dns-variants.sh  # each variant under
#       several seeds of its scenario (the fleet's draws: restart and ready
#       times, which hosts): one row per seed, then per variant the median
#       and worst ratio. One seed's ratio is one sample of a chaotic system
#       (a sample a quarter second later moves a run by 10%).
#   ONLY='^quarter' scripts/bench-dns-variants.sh    # the variants whose
#       name matches the regex
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet
    BIN=target/release/rekindle
fi
DROP_LIMIT=${DROP_LIMIT:-0.005}
ratios=()
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# variant NAME SCENARIO CLAIM SED_EXPR
variant() {
    local name=$1 scenario=$2 claim=$3 expr=$4
    local f=${name//\//_}
    local sc="$work/$f.toml" pb="$work/$f-playbook.toml"
    sed -e "$expr" "$scenario" >"$sc"
    if [ -n "${SEED:-}" ]; then
        sed -i -e "s/^seed = .*/seed = $SEED/" "$sc"
        name="$name seed $SEED"
    fi
    # The playbook claims `claim` q/s and states the fleet's startup
    # lookups per role, as an operator writes it for that fleet (the
    # scenario benchmark does the same).
    python3 - "$sc" "$claim" >"$pb" <<'PY'
import re, sys, tomllib
scenario = tomllib.load(open(sys.argv[1], "rb"))
text = open("config/mongo-sharded.toml").read()
text = re.sub(r"(?m)^capacity_qps = 5000", f"capacity_qps = {sys.argv[2]}", text)
grant_at = __import__("os").environ.get("GRANT_AT")
if grant_at:
    text = re.sub(r"(?m)^\[dns\]\n", f'[dns]\ngrant_at = "{grant_at}"\n', text, count=1)
for role, n in scenario["startup_lookups"].items():
    text = re.sub(rf'(name = "{role}"\n(?:[^\n]*\n)*?startup_lookups = )\d+', rf"\g<1>{n}", text)
sys.stdout.write(text)
PY
    local adaptive best
    adaptive=$("$BIN" rehearse "$pb" --scenario "$sc" --output json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
share = 100.0 * d["dns_dropped"] / max(d["dns_queries"], 1)
ms = d["makespan_s"]
print(f"{ms:.1f}" if ms is not None else "none", f"{share:.2f}%", d["stuck"], str(d["healthy"]) + "/" + str(d["total"]))')
    best=$("$BIN" rehearse "$pb" --scenario "$sc" --sweep --drop-limit "$DROP_LIMIT" 2>/dev/null | tail -1)
    read -r a_ms a_drop a_stuck a_healthy <<<"$adaptive"
    local b_ms b_q ratio
    if [[ $best =~ :\ ([0-9.]+)\ q/s.*makespan\ ([0-9.]+)s ]]; then
        b_q=${BASH_REMATCH[1]}
        b_ms=${BASH_REMATCH[2]}
        ratio=$(python3 -c "print(f'{$a_ms / $b_ms:.3f}')" 2>/dev/null || echo "-")
    else
        b_q="-"
        b_ms="-"
        ratio="no static budget under the limit"
    fi
    printf '%-34s %7s %10s %9s %6s %9s | %9s %8s | %s\n' "$name" "$claim" "$a_ms" "$a_drop" "$a_stuck" "$a_healthy" "$b_ms" "$b_q" "$ratio"
    ratios+=("$ratio")
}

# With SEEDS, each variant once per seed, then its median and worst ratio.
seeded() {
    if [ -n "${ONLY:-}" ] && ! [[ $1 =~ $ONLY ]]; then
        return
    fi
    if [ -z "${SEEDS:-}" ]; then
        variant "$@"
        return
    fi
    ratios=()
    for SEED in $SEEDS; do
        variant "$@"
    done
    printf '%s\n' "${ratios[@]}" | python3 -c '
import statistics, sys
r = [float(x) for x in sys.stdin.read().split() if x.replace(".", "", 1).isdigit()]
name = sys.argv[1] + " over seeds"
if r:
    print(f"{name:<34} median {statistics.median(r):.3f}, worst {max(r):.3f}, best {min(r):.3f} ({len(r)} of {sys.argv[2]} seeds with a static budget under the limit)")
' "$1" "$(wc -w <<<"$SEEDS")"
}

printf '%-34s %7s %10s %9s %6s %9s | %9s %8s | %s\n' "variant" "claim" "adaptive" "dropped" "stuck" "healthy" "best stat" "at q/s" "adaptive/best"
braze=config/scenarios/braze-us01.toml
half=config/scenarios/braze-us01-half-dns.toml
smoke=config/scenarios/smoke.toml
seeded braze-us01 "$braze" 5000 's/^x//'
seeded braze-us01/queue-250 "$braze" 5000 's/^queue = .*/queue = 250/'
seeded braze-us01/per-second "$braze" 5000 's/^queue = .*/mode = "per_second"/'
seeded half-dns/queue-2500 "$half" 5000 's/^x//'
seeded half-dns/queue-250 "$half" 5000 's/^queue = .*/queue = 250/'
seeded half-dns/per-second "$half" 5000 's/^queue = .*/mode = "per_second"/'
seeded smoke "$smoke" 40 's/^x//'
seeded smoke/per-second "$smoke" 40 's/^queue = .*/mode = "per_second"/'
seeded smoke/over-claimed-125x "$smoke" 5000 's/^x//'
seeded smoke/over-claimed-125x/per-second "$smoke" 5000 's/^queue = .*/mode = "per_second"/'
seeded quarter-dns/queue-1250 "$half" 5000 's/^capacity_qps = .*/capacity_qps = 1250/; s/^queue = .*/queue = 1250/'
seeded quarter-dns/per-second "$half" 5000 's/^capacity_qps = .*/capacity_qps = 1250/; s/^queue = .*/mode = "per_second"/'
