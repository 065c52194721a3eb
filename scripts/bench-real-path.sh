#!/usr/bin/env bash
# Real-path benchmark: `rekindle run` against a fake fleet of Docker hosts
# (rekindle-fakefleet) whose containers send real DNS queries to a real
# unbound limited to the scenario's capacity (`ip-ratelimit`, every query
# from 127.0.0.1, nothing above the limit answered). Prints, beside the
# rehearsal of the same playbook on the same scenario: first start → all
# healthy, the lower bound and the ratio, unbound's own query and drop
# counters, stuck containers and containers started more than once.
# Not a test: nothing here asserts a figure. Needs unbound, python3, curl.
#
#   scripts/bench-real-path.sh SCENARIO [PLAYBOOK]
#
# Without PLAYBOOK one is derived from config/mongo-sharded.toml (Docker
# health, the scenario's labels, startup lookups and DNS capacity). Either
# way the fake fleet's [[hosts]], [dns.counter] (unbound-control
# stats_noreset, total.num.queries), [resolver] and dns.probe_name are
# added. KEEP=1 keeps the work directory (playbook, logs, report);
# PROFILE=debug uses the debug build (to try the script, not to measure).
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:?usage: scripts/bench-real-path.sh SCENARIO [PLAYBOOK]}
PLAYBOOK=${2:-}
for tool in unbound unbound-control python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench-real-path: $tool is not installed (apt-get install unbound python3 curl)" >&2; exit 2; }
done

if [ "${PROFILE:-release}" = "debug" ]; then
  echo "== building (debug: figures are not measurements)"
  cargo build --quiet --bin rekindle --bin rekindle-fakefleet
  BIN=target/debug
else
  echo "== building (release)"
  cargo build --release --quiet --bin rekindle --bin rekindle-fakefleet
  BIN=target/release
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ "${KEEP:-}" = "1" ]; then echo "== kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: u.close(); t.close()'
}

# The scenario's facts, read by rekindle's own parser (via the rehearsal
# below) where it matters; the capacity for unbound from the file.
CAPACITY=$(python3 -c 'import sys, tomllib; print(int(tomllib.load(open(sys.argv[1], "rb"))["dns"]["capacity_qps"]))' "$SCENARIO")

echo "== unbound: the fleet's zone, ip-ratelimit $CAPACITY q/s"
"$BIN/rekindle-fakefleet" --scenario "$SCENARIO" --zone-out "$work/zone.conf"
DNS_PORT=$(free_port)
CONTROL_PORT=$(free_port)
cat >"$work/unbound.conf" <<CONF
server:
    interface: 127.0.0.1
    port: $DNS_PORT
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$work"
    pidfile: "$work/unbound.pid"
    use-syslog: no
    logfile: "$work/unbound.log"
    verbosity: 1
    access-control: 127.0.0.0/8 allow
    statistics-cumulative: yes
    extended-statistics: yes
    num-threads: 2
    so-rcvbuf: 8m
    so-sndbuf: 8m
    num-queries-per-thread: 4096
    ip-ratelimit: $CAPACITY
    ip-ratelimit-factor: 0
    include: "$work/zone.conf"
remote-control:
    control-enable: yes
    control-interface: 127.0.0.1
    control-port: $CONTROL_PORT
    control-use-cert: no
CONF
unbound -d -c "$work/unbound.conf" &
pids+=($!)
UC=(unbound-control -c "$work/unbound.conf")
for _ in $(seq 100); do "${UC[@]}" status >/dev/null 2>&1 && break; sleep 0.1; done
"${UC[@]}" status >/dev/null || { echo "unbound did not start:" >&2; cat "$work/unbound.log" >&2; exit 1; }
stat_of() { "${UC[@]}" stats_noreset | sed -n "s/^$1=//p"; }

echo "== fake fleet"
"$BIN/rekindle-fakefleet" --scenario "$SCENARIO" --dns "127.0.0.1:$DNS_PORT" --hosts-out "$work/hosts.toml" \
  >"$work/fakefleet.out" 2>"$work/fakefleet.err" &
pids+=($!)
for _ in $(seq 1200); do grep -q '^fakefleet ready' "$work/fakefleet.out" 2>/dev/null && break; sleep 0.1; done
READY=$(grep '^fakefleet ready' "$work/fakefleet.out") || { echo "the fake fleet did not come up:" >&2; cat "$work/fakefleet.err" >&2; exit 1; }
echo "   $READY"
FF_CONTROL=$(sed -n 's/.*control=\([^ ]*\).*/\1/p' <<<"$READY")

echo "== playbook"
PROBE_NAME=$(sed -n 's/^local-data: "\([^ ]*\) 300 IN A.*/\1/p;T;q' "$work/zone.conf")
python3 - "$SCENARIO" "${PLAYBOOK:-config/mongo-sharded.toml}" "$work/pb.toml" "$work/hosts.toml" "$DNS_PORT" "$PROBE_NAME" "$work/unbound.conf" "${PLAYBOOK:+given}" <<'PY'
import re, sys, tomllib, json
scenario_path, base_path, out, hosts, dns_port, probe, conf, given = sys.argv[1:9]
sc = tomllib.load(open(scenario_path, "rb"))
text = open(base_path).read()
if not given:
    # Derived from the shipped playbook: the scenario's labels, lookups and
    # capacity; Docker health (the fake fleet has no MongoDB port).
    labels = sc["labels"]
    text = text.replace('"db.role"', json.dumps(labels["role"])).replace('"db.cluster"', json.dumps(labels["cluster"])).replace('"db.replset"', json.dumps(labels["replset"]))
    text = re.sub(r'^name = "[^"]*"', f'name = "realpath-{sc["name"]}"', text, count=1, flags=re.M)
    text = re.sub(r'kind = "(mongo|tcp)", port = \d+, timeout = "[^"]*"', 'kind = "docker", interval = "500ms"', text)
    blocks = text.split("[[roles]]")
    for i in range(1, len(blocks)):
        m = re.search(r'^name = "([^"]*)"', blocks[i], flags=re.M)
        if m and m.group(1) in sc["startup_lookups"]:
            blocks[i] = re.sub(r'^startup_lookups = \d+', f'startup_lookups = {sc["startup_lookups"][m.group(1)]}', blocks[i], flags=re.M)
    text = "[[roles]]".join(blocks)
    text = re.sub(r'^stop_timeout = "[^"]*"', 'stop_timeout = "5s"', text, flags=re.M)
    text = re.sub(r'^capacity_qps = [0-9.]+', f'capacity_qps = {sc["dns"]["capacity_qps"]}', text, flags=re.M)
    # The fake containers look up absolute names: one query per lookup.
    text = re.sub(r'^name_dots = \d+', f'name_dots = {probe.rstrip(".").count(".")}', text, flags=re.M)
pb = tomllib.loads(text)
dns = pb.get("dns", {})
if "probe_name" not in dns:
    text = re.sub(r'^(capacity_qps = .*)$', lambda m: m.group(1) + f'\nprobe_name = "{probe}"', text, count=1, flags=re.M)
if "counter" not in dns:
    text += f'\n[dns.counter]\ncommand = ["unbound-control", "-c", "{conf}", "stats_noreset"]\nkey = "total.num.queries"\n'
if "resolver" not in pb:
    text += f'\n[resolver]\nnameservers = ["127.0.0.1:{dns_port}"]\n'
if pb.get("hosts"):
    sys.exit(f"{base_path}: has [[hosts]] of its own; the benchmark adds the fake fleet's")
text += "\n" + open(hosts).read()
tomllib.loads(text)
open(out, "w").write(text)
PY
echo "   $work/pb.toml"

echo "== rekindle rehearse (same playbook, same scenario)"
"$BIN/rekindle" rehearse "$work/pb.toml" --scenario "$SCENARIO" --output json >"$work/rehearse.json" 2>"$work/rehearse.err" || true

echo "== rekindle run (against the fake fleet)"
set +e
start=$(date +%s.%N)
"$BIN/rekindle" run "$work/pb.toml" --yes --output json --state-dir "$work/state" --report "$work/report" >"$work/run.out" 2>"$work/run.err"
RUN_EXIT=$?
end=$(date +%s.%N)
set -e
sleep 1 # the last health transitions and answers
curl -sf "http://$FF_CONTROL/stats" >"$work/stats.json"
QUERIES=$(stat_of total.num.queries)
LIMITED=$(stat_of total.num.queries_ip_ratelimited)

python3 - "$work" "$RUN_EXIT" "$start" "$end" "$QUERIES" "$LIMITED" "$SCENARIO" <<'PY'
import json, sys
work, run_exit, start, end, queries, limited, scenario = sys.argv[1:8]
st = json.load(open(f"{work}/stats.json"))
try:
    rh = json.load(open(f"{work}/rehearse.json"))
except Exception as e:
    rh = {"error": open(f"{work}/rehearse.err").read()[-500:] or str(e)}
summary = {}
lines = open(f"{work}/run.out").read().strip().splitlines()
if lines:
    try: summary = json.loads(lines[-1])
    except Exception: pass
lb = rh.get("lower_bound_s")
first, allh = st.get("first_start_s"), st.get("all_healthy_s")
span = allh - first if (first is not None and allh is not None) else None
q, lim = int(queries or 0), int(limited or 0)
f = lambda x, p=1: "n/a" if x is None else f"{x:.{p}f}"
print()
print(f"Real path: scenario {scenario} ({st['containers']} containers on {st['hosts']} hosts)")
print(f"  rekindle run            exit {run_exit}, state {summary.get('state', '?')}, wall {float(end) - float(start):.1f}s")
print(f"  first start → all healthy  {f(span)}s" + ("" if span is not None else f" (not all healthy: {st['healthy']} healthy)"))
print(f"  lower bound             {f(lb)}s   ratio {f(span / lb if span and lb else None, 3)}")
print(f"  unbound queries         {q}   ip-ratelimited {lim} ({f(100 * lim / q if q else None)}%)")
print(f"  fake fleet queries      sent {st['queries_sent']}, answered {st['answers']}, timed out {st['timeouts']}, lookups failed {st['lookups_failed']}")
print(f"  peak second             {max(st['queries_per_second'] or [0])} queries sent (capacity {rh.get('dns_capacity_qps', '?')})")
print(f"  at the end              healthy {st['healthy']}, stuck {st['stuck']}, exited {st['exited']}, never started {st['never_started']}")
print(f"  started more than once  {st['started_more_than_once']} (max {st['max_starts']} starts; restarts {st['restart_calls']})")
print(f"Rehearsal of the same playbook: {rh.get('state', rh.get('error'))}")
print(f"  makespan                {f(rh.get('makespan_s'))}s   lower bound {f(lb)}s   ratio {f(rh.get('ratio'), 3)}")
print(f"  DNS                     {rh.get('dns_queries')} queries, {rh.get('dns_dropped')} dropped, peak {rh.get('dns_peak_qps')} q/s")
print(f"  stuck                   {rh.get('stuck')} at the end ({rh.get('stuck_events')} stuck events), re-restarts {rh.get('rerestarts')}")
if run_exit != "0":
    print(f"\nrekindle run failed (exit {run_exit}); last lines of its stderr:")
    print("".join(open(f"{work}/run.err").readlines()[-15:]))
PY
