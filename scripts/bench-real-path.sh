#!/usr/bin/env bash
# Real-path benchmark: `rekindle run` against a fake fleet of Docker hosts
# (rekindle-fakefleet) whose containers send real DNS queries to a real
# unbound limited to the scenario's capacity (`ip-ratelimit`, every query
# from 127.0.0.1, `ip-ratelimit-factor: 0`: nothing above the limit of a
# second is answered). Prints, beside the rehearsal of the same playbook on
# the same scenario: first start → all healthy, the lower bound and the
# ratio, unbound's own query and rate-limit counters, stuck containers and
# containers started more than once. Not a test: nothing here asserts a
# figure. Needs unbound, python3 (3.11+), curl. See docs/real-path.md.
#
#   scripts/bench-real-path.sh SCENARIO [PLAYBOOK]
#   STATIC=0.8 scripts/bench-real-path.sh SCENARIO [PLAYBOOK]
#   SWEEP="0.6 0.7 0.8 0.9 0.95" scripts/bench-real-path.sh SCENARIO [PLAYBOOK]
#
# Without PLAYBOOK one is derived from config/mongo-sharded.toml (Docker
# health, the scenario's labels, startup lookups and DNS capacity). Either
# way the fake fleet's [[hosts]], [resolver] nameservers (this unbound),
# dns.probe_name (a name of the fleet's zone) and [dns.counter] (this
# unbound's `unbound-control -c CONF stats_noreset`, key total.num.queries,
# dropped_key total.num.queries_ip_ratelimited) are set.
#
# Modes:
#   (default)      one run with the playbook's own pacing (adaptive unless it
#                  says `adaptive = false`).
#   STATIC=F       one run with a static budget: [dns] adaptive = false,
#                  headroom = F (budget = capacity_qps × F).
#   SWEEP="F ..."  one static run per fraction, one after another, then the
#                  adaptive (default) run, each with a fresh unbound and fake
#                  fleet; prints the frontier, the best static budget under
#                  DROP_LIMIT rate-limited, and adaptive / best static.
# Other settings:
#   DROP_LIMIT=0.005  the share of queries the best static budget may have
#                     rate-limited (sweep mode).
#   BIN_DIR=DIR       use rekindle and rekindle-fakefleet from DIR, build
#                     nothing (e.g. BIN_DIR=/work/rt/release).
#   CARGO_TARGET_DIR  honoured when building (binaries from its release/).
#   PROFILE=debug     the debug build (to try the script, not to measure).
#   GRANT_AT=restart  grant each restart's DNS cost before its stop (the
#                     first version's pacing), to measure what the split
#                     into stop and paced start is worth (docs/dns.md).
#   ONLY=broken       rehearse and run with --only broken: survey first,
#                     restart only what the scenario's [broken] broke (and
#                     what the rules add), post-flight survey; the fake
#                     fleet's broken_at_start counts what it broke.
#   SURVEY_ONLY=1     `rekindle survey` alone (no rehearsal, no run): its
#                     wall time, CPU and peak RSS (from /proc), its verdicts
#                     against the fake fleet's count of what it broke, and
#                     the connections each fake host saw.
#   CLAIM=F           the playbook claims F × the scenario's capacity (e.g.
#                     CLAIM=2: twice what unbound serves), static budgets
#                     and the adaptive ceiling following the claim; unbound
#                     keeps the scenario's limit.
#   KEEP=1            keep the work directory (playbooks, logs, reports,
#                     result.json of each run).
#   FAULTS=JSON       faults the fake fleet injects from the start (its
#                     --faults: error_rate, error_after_rate, latency_ms,
#                     latency_alpha, latency_max_ms, restart_failure_rate).
#   CRASH=N           kill -9 `rekindle run` at N random points of the
#                     run's progress (numbers of starts drawn uniformly over
#                     the first 95% of the fleet; each once the new process
#                     has started a container itself), each time starting
#                     it again with --resume (a
#                     run anew if it died before its journal), until it
#                     ends by itself; prints the kills and whether every
#                     container was started once per journaled restart.
#   MEASURE=1         the scale figures (scripts/bench-scale.sh): rekindle's
#                     CPU time (user + sys, read from /proc until it exits)
#                     per core over the run and per start, its peak RSS and
#                     sockets, the connections each fake host saw (the most
#                     open, the most idle at one sample and the most idle
#                     throughout a whole second: sampled every 100 ms; the
#                     connection setups in all), and when the last host had
#                     its first restart call (stop) and its first container
#                     started, as shares of the run. rekindle logs with the
#                     default filter (warn,rekindle=info) unless REKINDLE_LOG
#                     says otherwise.
#   CHAOS=1           mid-run faults (docs/real-path.md): once a quarter of
#                     the fleet has started, one host refuses connections
#                     and another hangs for CHAOS_HOST_S (10) seconds; once
#                     half has, unbound is stopped (by PID) for
#                     DNS_OUTAGE_S (30) seconds and started again. rekindle's
#                     own resolver then goes through the fake fleet's
#                     counting relay, so its queries per second before,
#                     during and after the outage are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:?usage: [STATIC=F | SWEEP="F ..."] scripts/bench-real-path.sh SCENARIO [PLAYBOOK]}
PLAYBOOK=${2:-}
DROP_LIMIT=${DROP_LIMIT:-0.005}
if [ -n "${STATIC:-}" ] && [ -n "${SWEEP:-}" ]; then
  echo "bench-real-path: STATIC and SWEEP are exclusive" >&2; exit 2
fi
if [ "${MEASURE:-}" = "1" ] && [ -n "${CRASH:-}${SWEEP:-}" ]; then
  echo "bench-real-path: MEASURE measures one whole run: not with CRASH or SWEEP" >&2; exit 2
fi
for f in ${STATIC:-} ${SWEEP:-}; do
  python3 -c 'import sys; f = float(sys.argv[1]); sys.exit(0 if 0 < f <= 1 else 1)' "$f" 2>/dev/null \
    || { echo "bench-real-path: $f is not a fraction in (0, 1]" >&2; exit 2; }
done
for tool in unbound unbound-control python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench-real-path: $tool is not installed (apt-get install unbound python3 curl)" >&2; exit 2; }
done

if [ -n "${BIN_DIR:-}" ]; then
  BIN=$BIN_DIR
  echo "== binaries from $BIN (not built)"
elif [ "${PROFILE:-release}" = "debug" ]; then
  echo "== building (debug: figures are not measurements)"
  cargo build --quiet -p rekindle --bin rekindle -p rekindle-testbed --bin rekindle-fakefleet
  BIN=${CARGO_TARGET_DIR:-target}/debug
else
  echo "== building (release)"
  cargo build --release --quiet -p rekindle --bin rekindle -p rekindle-testbed --bin rekindle-fakefleet
  BIN=${CARGO_TARGET_DIR:-target}/release
fi
for b in rekindle rekindle-fakefleet; do
  [ -x "$BIN/$b" ] || { echo "bench-real-path: no $BIN/$b" >&2; exit 2; }
done

work=$(mktemp -d)
# Every process this script starts, by PID (stopped by PID, never by name).
pids=()

# Stops the given PIDs (started by this script) and forgets them: SIGTERM,
# up to 10 s to exit (an interrupted `rekindle run` aborts and watches the
# restarts in flight), then SIGKILL.
stop_pids() {
  local p q keep alive
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 100); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
  keep=()
  for q in "${pids[@]}"; do
    case " $* " in *" $q "*) ;; *) keep+=("$q") ;; esac
  done
  pids=("${keep[@]}")
}

cleanup() {
  # rekindle first (it is last in the list), while its hosts still answer.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pids "${pids[i]}"; done
  if [ "${KEEP:-}" = "1" ]; then echo "== kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# The capacity for unbound, from the file (rekindle's own parser reads the
# rest, via the rehearsal).
CAPACITY=$(python3 -c 'import sys, tomllib; print(int(tomllib.load(open(sys.argv[1], "rb"))["dns"]["capacity_qps"]))' "$SCENARIO")
"$BIN/rekindle-fakefleet" --scenario "$SCENARIO" --zone-out "$work/zone.conf"
PROBE_NAME=$(sed -n 's/^local-data: "\([^ ]*\) 300 IN A.*/\1/p;T;q' "$work/zone.conf")

# The PID of the current unbound (chaos restarts it).
unbound_pid=

# stats_at CONTROL KEY: one figure of the fake fleet's /stats.
stats_at() {
  curl -sf "http://$1/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# wait_starts CONTROL N RUN_PID: until the fleet has N starts (or the run ended).
wait_starts() {
  while kill -0 "$3" 2>/dev/null; do
    [ "$(stats_at "$1" starts_total)" -ge "$2" ] && return 0
    sleep 0.2
  done
  return 1
}

# sample_proc PID OUT: reads /proc/PID until the process is a zombie (its
# CPU times are final then, and it is not reaped before this ends); writes
# its CPU time, peak RSS, sockets and threads to OUT as JSON.
sample_proc() {
  python3 - "$1" "$2" <<'PY'
import json, os, sys, time
pid, out = sys.argv[1], sys.argv[2]
tick = os.sysconf("SC_CLK_TCK")
peak_rss = peak_sockets = peak_threads = 0
cpu = 0.0
while True:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        break
    fields = stat[stat.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / tick
    if fields[0] == "Z":
        break
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                peak_rss = max(peak_rss, int(line.split()[1]))
            elif line.startswith("Threads:"):
                peak_threads = max(peak_threads, int(line.split()[1]))
        n = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    n += 1
            except OSError:
                pass
        peak_sockets = max(peak_sockets, n)
    except OSError:
        pass
    time.sleep(0.2)
json.dump({"cpu_s": cpu, "peak_rss_kb": peak_rss, "peak_sockets": peak_sockets, "peak_threads": peak_threads}, open(out, "w"))
PY
}

# chaos DIR CONTROL RUN_PID: the mid-run faults of CHAOS=1, while rekindle
# runs. Writes DIR/chaos.json (what was done, fleet clock).
chaos() {
  local dir=$1 control=$2 run_pid=$3 n a b t0 t1 d0 d1
  n=$(stats_at "$control" containers)
  read -r a b < <(python3 - "$dir/hosts.toml" <<'PY'
import sys, tomllib
hs = [h["name"] for h in tomllib.load(open(sys.argv[1], "rb"))["hosts"]]
print(hs[len(hs) // 3], hs[2 * len(hs) // 3])
PY
)
  if wait_starts "$control" $((n / 4)) "$run_pid"; then
    t0=$(stats_at "$control" now_s)
    echo "== chaos: host $a refuses, host $b hangs for ${CHAOS_HOST_S:-10}s (fleet clock ${t0%.*}s)"
    curl -sf -XPOST -H 'Content-Type: application/json' -d '{"mode":"refuse"}' "http://$control/hosts/$a/mode" >/dev/null
    curl -sf -XPOST -H 'Content-Type: application/json' -d '{"mode":"hang"}' "http://$control/hosts/$b/mode" >/dev/null
    sleep "${CHAOS_HOST_S:-10}"
    curl -sf -XPOST -H 'Content-Type: application/json' -d '{"mode":"ok"}' "http://$control/hosts/$a/mode" >/dev/null
    curl -sf -XPOST -H 'Content-Type: application/json' -d '{"mode":"ok"}' "http://$control/hosts/$b/mode" >/dev/null
    t1=$(stats_at "$control" now_s)
  fi
  if wait_starts "$control" $((n / 2)) "$run_pid"; then
    d0=$(stats_at "$control" now_s)
    echo "== chaos: unbound (pid $unbound_pid) stopped for ${DNS_OUTAGE_S:-30}s (fleet clock ${d0%.*}s)"
    stop_pids "$unbound_pid"
    sleep "${DNS_OUTAGE_S:-30}"
    unbound -d -c "$dir/unbound.conf" &
    unbound_pid=$!
    pids+=("$unbound_pid")
    d1=$(stats_at "$control" now_s)
    echo "== chaos: unbound started again (pid $unbound_pid, fleet clock ${d1%.*}s)"
  fi
  printf '{"refused": "%s", "hung": "%s", "hosts_from": %s, "hosts_to": %s, "dns_from": %s, "dns_to": %s}\n' \
    "$a" "$b" "${t0:-null}" "${t1:-null}" "${d0:-null}" "${d1:-null}" >"$dir/chaos.json"
}

# run_once LABEL FRACTION|default: a fresh unbound and fake fleet, the
# playbook, the rehearsal, `rekindle run`; prints the figures and writes
# $work/LABEL/result.json. Stops its unbound and fake fleet before returning.
run_once() {
  local label=$1 pacing=$2
  local dir="$work/$label"
  mkdir -p "$dir"
  echo
  echo "######## $label: $( [ "$pacing" = default ] && echo "the playbook's pacing" || echo "static budget, headroom $pacing" )"

  echo "== unbound: the fleet's zone, ip-ratelimit $CAPACITY q/s"
  local dns_port control_port
  dns_port=$(free_port)
  control_port=$(free_port)
  cat >"$dir/unbound.conf" <<CONF
server:
    interface: 127.0.0.1
    port: $dns_port
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$dir"
    pidfile: "$dir/unbound.pid"
    use-syslog: no
    logfile: "$dir/unbound.log"
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
    control-port: $control_port
    control-use-cert: no
CONF
  unbound -d -c "$dir/unbound.conf" &
  unbound_pid=$!
  pids+=("$unbound_pid")
  local uc=(unbound-control -c "$dir/unbound.conf")
  for _ in $(seq 100); do "${uc[@]}" status >/dev/null 2>&1 && break; sleep 0.1; done
  "${uc[@]}" status >/dev/null || { echo "unbound did not start:" >&2; cat "$dir/unbound.log" >&2; exit 1; }

  echo "== fake fleet"
  local ff_args=()
  [ -n "${FAULTS:-}" ] && ff_args+=(--faults "$FAULTS")
  [ "${CHAOS:-}" = "1" ] && ff_args+=(--relay-dns)
  "$BIN/rekindle-fakefleet" --scenario "$SCENARIO" --dns "127.0.0.1:$dns_port" --hosts-out "$dir/hosts.toml" "${ff_args[@]}" \
    >"$dir/fakefleet.out" 2>"$dir/fakefleet.err" &
  local ff_pid=$!
  pids+=("$ff_pid")
  for _ in $(seq 1200); do grep -q '^fakefleet ready' "$dir/fakefleet.out" 2>/dev/null && break; sleep 0.1; done
  local ready
  ready=$(grep '^fakefleet ready' "$dir/fakefleet.out") || { echo "the fake fleet did not come up:" >&2; cat "$dir/fakefleet.err" >&2; exit 1; }
  echo "   $ready"
  local ff_control relay_port=$dns_port
  ff_control=$(sed -n 's/.*control=\([^ ]*\).*/\1/p' <<<"$ready")
  if [ "${CHAOS:-}" = "1" ]; then
    relay_port=$(sed -n 's/.* relay=127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$ready")
    [ -n "$relay_port" ] || { echo "no relay address in: $ready" >&2; exit 1; }
  fi

  echo "== playbook"
  python3 - "$SCENARIO" "${PLAYBOOK:-config/mongo-sharded.toml}" "$dir/pb.toml" "$dir/hosts.toml" "$relay_port" "$PROBE_NAME" "$dir/unbound.conf" "${PLAYBOOK:+given}" "$pacing" <<'PY'
import re, sys, tomllib, json
scenario_path, base_path, out, hosts, dns_port, probe, conf, given, pacing = sys.argv[1:10]
sc = tomllib.load(open(scenario_path, "rb"))
text = open(base_path).read()
if not given:
    # Derived from the shipped playbook: the scenario's labels, lookups and
    # capacity; Docker health (the fake fleet has no MongoDB port).
    labels = sc["labels"]
    text = text.replace('"db.role"', json.dumps(labels["role"])).replace('"db.cluster"', json.dumps(labels["cluster"])).replace('"db.replset"', json.dumps(labels["replset"]))
    name = sc["name"] if sc["name"].startswith("realpath") else f'realpath-{sc["name"]}'
    text = re.sub(r'^name = "[^"]*"', f'name = "{name}"', text, count=1, flags=re.M)
    text = re.sub(r'kind = "(mongos?|tcp)", port = \d+, timeout = "[^"]*"(, max_lag = "[^"]*")?', 'kind = "docker", interval = "500ms"', text)
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

HEADER = re.compile(r'^\s*\[\[?\s*([A-Za-z0-9_.\-"]+)\s*\]\]?\s*(#.*)?$')

def section(lines, table):
    """(header index, end index) of `[table]`, or None."""
    start = None
    for i, line in enumerate(lines):
        m = HEADER.match(line)
        if not m:
            continue
        if start is not None:
            return start, i
        if m.group(1) == table and not line.lstrip().startswith("[["):
            start = i
    return (start, len(lines)) if start is not None else None

def set_key(text, table, key, value):
    """Sets `key = value` in `[table]` (the table is added if missing)."""
    lines = text.split("\n")
    s = section(lines, table)
    if s is None:
        return text.rstrip("\n") + f"\n\n[{table}]\n{key} = {value}\n"
    start, end = s
    for i in range(start + 1, end):
        if re.match(rf'^\s*{re.escape(key)}\s*=', lines[i]):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines)
    lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines)

def drop_table(text, table):
    lines = text.split("\n")
    s = section(lines, table)
    if s is None:
        return text
    return "\n".join(lines[: s[0]] + lines[s[1]:])

pb = tomllib.loads(text)
if pb.get("hosts"):
    sys.exit(f"{base_path}: has [[hosts]] of its own; the benchmark adds the fake fleet's")
if "counter" in pb.get("dns", {}) and section(text.split("\n"), "dns.counter") is None:
    sys.exit(f"{base_path}: [dns] counter is not a [dns.counter] table; the benchmark sets its own")
# The bench's unbound is the only resolver there is: rekindle's probes go
# to it, for a name of its zone, and its counters are read.
text = set_key(text, "dns", "probe_name", json.dumps(probe))
claim = __import__("os").environ.get("CLAIM")
if claim:
    text = set_key(text, "dns", "capacity_qps", f'{float(claim) * sc["dns"]["capacity_qps"]:g}')
if pacing != "default":
    text = set_key(text, "dns", "adaptive", "false")
    text = set_key(text, "dns", "headroom", pacing)
if __import__("os").environ.get("GRANT_AT"):
    text = set_key(text, "dns", "grant_at", json.dumps(__import__("os").environ["GRANT_AT"]))
text = drop_table(text, "dns.counter")
text = set_key(text, "resolver", "nameservers", json.dumps([f"127.0.0.1:{dns_port}"]))
text = text.rstrip("\n") + "\n\n[dns.counter]\n" + \
    f'command = {json.dumps(["unbound-control", "-c", conf, "stats_noreset"])}\n' + \
    'key = "total.num.queries"\ndropped_key = "total.num.queries_ip_ratelimited"\n'
text += "\n" + open(hosts).read()
pb = tomllib.loads(text)
d = pb["dns"]
print(f"   pacing: {'adaptive' if d.get('adaptive', True) else 'static'}, capacity_qps {d['capacity_qps']}, headroom {d.get('headroom', 0.8)} "
      f"(ceiling {d['capacity_qps'] * d.get('headroom', 0.8):.0f} q/s)")
open(out, "w").write(text)
PY
  echo "   $dir/pb.toml"

  local only=()
  [ -n "${ONLY:-}" ] && only=(--only "$ONLY")
  if [ "${SURVEY_ONLY:-}" != "1" ]; then
    echo "== rekindle rehearse (same playbook, same scenario)"
    "$BIN/rekindle" rehearse "$dir/pb.toml" --scenario "$SCENARIO" "${only[@]}" --output json >"$dir/rehearse.json" 2>"$dir/rehearse.err" || true
  fi

  if [ "${SURVEY_ONLY:-}" = "1" ]; then
    echo "== rekindle survey (nothing restarted; /proc sampled)"
    local s0 s1 survey_pid survey_exit=0
    s0=$(date +%s.%N)
    "$BIN/rekindle" survey "$dir/pb.toml" --output json >"$dir/survey.json" 2>"$dir/survey.err" &
    survey_pid=$!
    pids+=("$survey_pid")
    sample_proc "$survey_pid" "$dir/proc.json"
    wait "$survey_pid" || survey_exit=$?
    s1=$(date +%s.%N)
    curl -sf "http://$ff_control/stats" >"$dir/stats.json"
    curl -sf "http://$ff_control/containers" >"$dir/containers.json"
    # The table a person reads, once more (not measured).
    "$BIN/rekindle" survey "$dir/pb.toml" >"$dir/survey.txt" 2>/dev/null || true
    stop_pids "$ff_pid" "$unbound_pid"
    echo "== the survey's table (its first 40 lines)"
    head -40 "$dir/survey.txt"
    python3 - "$dir" "$survey_exit" "$s0" "$s1" <<'PY'
import json, sys
work, code, s0, s1 = sys.argv[1:5]
wall = float(s1) - float(s0)
st = json.load(open(f"{work}/stats.json"))
pr = json.load(open(f"{work}/proc.json"))
cs = json.load(open(f"{work}/containers.json"))
try:
    sv = json.load(open(f"{work}/survey.json"))
except Exception:
    print(open(f"{work}/survey.err").read()[-2000:]); raise
hs = st.get("hosts_seen") or {}
found = {x["container"] for x in sv["findings"] if x["verdict"] != "ok"}
broke = {n for n, c in cs.items() if c["broken_at_start"]}
counts = {v: sum(1 for x in sv["findings"] if x["verdict"] == v) for v in ("ok", "broken", "down", "unknown")}
print(f"\nSurvey of {st['containers']} containers on {st['hosts']} fake hosts: exit {code}, {wall:.1f}s wall")
print(f"  verdicts                  " + ", ".join(f"{n} {v}" for v, n in counts.items()))
print(f"  against the fleet's count {len(broke)} broken at the start: {len(found - broke)} false positives, {len(broke - found)} missed")
print(f"  CPU                       {pr['cpu_s']:.1f}s user+sys over {wall:.1f}s wall: {pr['cpu_s'] / wall:.3f} cores")
print(f"  memory                    peak RSS {pr['peak_rss_kb'] / 1024:.1f} MB; at most {pr['peak_sockets']} sockets, {pr['peak_threads']} threads")
print(f"  connections per host      at most {hs.get('max_open_per_host')} open; idle: at most {hs.get('max_idle_per_host')} at one sample, "
      f"at most {hs.get('max_idle_second_per_host')} throughout a second; {hs.get('accepted_total')} setups in all")
print(f"  restarted                 {st['starts_total']} starts (a survey restarts nothing)")
PY
    return 0
  fi
  if [ -n "${ONLY:-}" ]; then
    echo "== rekindle survey (before the run; the fake fleet's own count beside it)"
    local s0 s1
    s0=$(date +%s.%N)
    "$BIN/rekindle" survey "$dir/pb.toml" --output json >"$dir/survey.json" 2>"$dir/survey.err" || true
    s1=$(date +%s.%N)
    echo "$s0 $s1" >"$dir/survey.time"
    curl -sf "http://$ff_control/containers" >"$dir/containers-before.json"
  fi

  echo "== rekindle run (against the fake fleet)"
  local start end run_exit=0 run_pid kills=0 resume=()
  start=$(date +%s.%N)
  : >"$dir/kills.txt"
  if [ -n "${CRASH:-}" ]; then
    python3 -c 'import random, sys; n, k = int(sys.argv[1]), int(sys.argv[2]); print("\n".join(str(p) for p in sorted(int(random.uniform(0, 0.95) * n) for _ in range(k))))' \
      "$(stats_at "$ff_control" containers)" "$CRASH" >"$dir/points.txt"
  fi
  while :; do
    # After a kill: --resume when the killed run left its journal (it
    # writes it before its first restart), else a run anew.
    resume=()
    [ "$kills" -gt 0 ] && compgen -G "$dir/state/*.journal" >/dev/null && resume=(--resume)
    local log_filter=warn,rekindle=info,rekindle::engine=trace
    # MEASURE: the default filter of a real run (a log line per container
    # event costs CPU too).
    [ "${MEASURE:-}" = "1" ] && log_filter=warn,rekindle=info
    REKINDLE_LOG=${REKINDLE_LOG:-$log_filter} "$BIN/rekindle" --log-format json run "$dir/pb.toml" --yes --output json --state-dir "$dir/state" --report "$dir/report" "${only[@]}" "${resume[@]}" \
      >"$dir/run.out" 2>>"$dir/run.err" &
    run_pid=$!
    pids+=("$run_pid")
    local sampler_pid=
    if [ "${MEASURE:-}" = "1" ]; then
      # Reads /proc/PID until the process is a zombie (its CPU times are
      # final then, and it is not reaped before this ends).
      sample_proc "$run_pid" "$dir/proc.json" &
      sampler_pid=$!
    fi
    if [ "${CHAOS:-}" = "1" ] && [ "$kills" = 0 ]; then chaos "$dir" "$ff_control" "$run_pid"; fi
    if [ "$kills" -lt "${CRASH:-0}" ]; then
      # kill -9 at the next point of the run's progress (a number of starts,
      # drawn uniformly over the first 95% of the fleet, in order), once
      # this process has started at least one container itself, unless it
      # ended first. Points of progress, not of time after each start: a
      # resumed run first waits out what the dead one may have in flight,
      # and kills timed from each start would land in that wait.
      local target from
      target=$(sed -n "$((kills + 1))p" "$dir/points.txt")
      from=$(stats_at "$ff_control" starts_total)
      wait_starts "$ff_control" "$((target > from ? target : from + 1))" "$run_pid" || true
      if kill -0 "$run_pid" 2>/dev/null; then
        kill -KILL "$run_pid"
        wait "$run_pid" 2>/dev/null || true
        stop_pids "$run_pid"
        kills=$((kills + 1))
        echo "$(stats_at "$ff_control" now_s) $(stats_at "$ff_control" starts_total)" >>"$dir/kills.txt"
        echo "   kill -9 #$kills (fleet clock $(tail -1 "$dir/kills.txt" | cut -d' ' -f1 | cut -d. -f1)s, $(tail -1 "$dir/kills.txt" | cut -d' ' -f2) starts so far)"
        continue
      fi
    fi
    run_exit=0
    [ -n "$sampler_pid" ] && { wait "$sampler_pid" || true; }
    wait "$run_pid" || run_exit=$?
    stop_pids "$run_pid"
    break
  done
  end=$(date +%s.%N)
  sleep 1 # the last health transitions and answers
  curl -sf "http://$ff_control/stats" >"$dir/stats.json"
  curl -sf "http://$ff_control/containers" >"$dir/containers.json"
  "${uc[@]}" stats_noreset >"$dir/unbound.stats" || : >"$dir/unbound.stats"
  stop_pids "$ff_pid" "$unbound_pid"

  python3 - "$dir" "$run_exit" "$start" "$end" "$SCENARIO" "$label" "$pacing" <<'PY'
import json, sys
work, run_exit, start, end, scenario, label, pacing = sys.argv[1:8]
st = json.load(open(f"{work}/stats.json"))
ub = dict(l.split("=", 1) for l in open(f"{work}/unbound.stats").read().split() if "=" in l)
try:
    rh = json.load(open(f"{work}/rehearse.json"))
except Exception as e:
    rh = {"error": open(f"{work}/rehearse.err").read()[-500:] or str(e)}
summary = {}
lines = open(f"{work}/run.out").read().strip().splitlines()
if lines:
    try: summary = json.loads(lines[-1])
    except Exception: pass
# The DNS budget over the run, from rekindle's report ([seconds, q/s]).
try:
    report = json.load(open(f"{work}/report/timeline.json"))
except Exception:
    report = {}
budget = report.get("dns_budget") or []
# The adaptive budget's samples and why it saw strain (trace lines of the
# run's JSON log: `DNS sample`, strain = None or Some(Dropped|Lost|Queue|Busy)).
samples, strains = 0, {}
for line in open(f"{work}/run.err", errors="replace"):
    if '"DNS sample"' not in line:
        continue
    try: fields = json.loads(line)["fields"]
    except Exception: continue
    samples += 1
    why = str(fields.get("strain", "None"))
    if why != "None":
        why = why.removeprefix("Some(").removesuffix(")")
        strains[why] = strains.get(why, 0) + 1
lb = rh.get("lower_bound_s")
first, allh = st.get("first_start_s"), st.get("all_healthy_s")
span = allh - first if (first is not None and allh is not None) else None
q, lim = int(ub.get("total.num.queries", 0)), int(ub.get("total.num.queries_ip_ratelimited", 0))
share = lim / q if q else None
rq, rd = rh.get("dns_queries"), rh.get("dns_dropped")
rshare = rd / rq if rq else None
f = lambda x, p=1: "n/a" if x is None else f"{x:.{p}f}"
pct = lambda x: "n/a" if x is None else f"{100 * x:.2f}%"
cap = rh.get("dns_capacity_qps")
print()
print(f"Real path [{label}]: scenario {scenario} ({st['containers']} containers on {st['hosts']} hosts), "
      + ("the playbook's pacing" if pacing == "default" else f"static budget headroom {pacing}"))
print(f"  rekindle run              exit {run_exit}, state {summary.get('state', '?')}, wall {float(end) - float(start):.1f}s")
print(f"  first start → all healthy {f(span)}s" + ("" if span is not None else f" (not all healthy: {st['healthy']} healthy)"))
print(f"  lower bound               {f(lb)}s   ratio {f(span / lb if span and lb else None, 3)}")
print(f"  unbound                   total.num.queries {q}, total.num.queries_ip_ratelimited {lim} ({pct(share)})")
print(f"  fake fleet queries        sent {st['queries_sent']}, answered {st['answers']}, timed out {st['timeouts']}, lookups failed {st['lookups_failed']}")
per_s = st["queries_per_second"] or [0]
print(f"  peak second (fleet clock) {max(per_s)} queries sent (capacity {f(cap, 0)}); {sum(1 for x in per_s if cap and x > cap)} seconds above capacity")
if budget:
    qs = [b[1] for b in budget]
    cuts = sum(1 for a, b in zip(qs, qs[1:]) if b < a)
    print(f"  DNS budget (adaptive)     start {qs[0]:.0f}, min {min(qs):.0f}, max {max(qs):.0f}, final {qs[-1]:.0f} q/s; {len(qs) - 1} changes, {cuts} cuts")
    if samples:
        print(f"  DNS samples               {samples}, strain in " + (", ".join(f"{n} ({why})" for why, n in sorted(strains.items())) or "none"))
elif report:
    print(f"  DNS budget (static)       {f(report.get('dns_budget_qps'), 0)} q/s")
print(f"  at the end                healthy {st['healthy']}, stuck {st['stuck']}, exited {st['exited']}, never started {st['never_started']}")
print(f"  started more than once    {st['started_more_than_once']} (max {st['max_starts']} starts; stop {st['stop_calls']}, start {st['start_calls']}, restart {st['restart_calls']} calls)")
print(f"  rehearsal                 {rh.get('state', rh.get('error'))}: makespan {f(rh.get('makespan_s'))}s (ratio {f(rh.get('ratio'), 3)}), "
      f"{rq} queries, {rd} dropped ({pct(rshare)}), stuck {rh.get('stuck')}")
try:
    survey = json.load(open(f"{work}/survey.json"))
    before = json.load(open(f"{work}/containers-before.json"))
    after = json.load(open(f"{work}/containers.json"))
    s0, s1 = map(float, open(f"{work}/survey.time").read().split())
except Exception:
    survey = None
if survey is not None:
    broke = {n for n, c in before.items() if c["broken_at_start"]}
    found = {x["container"] for x in survey["findings"] if x["verdict"] != "ok"}
    started = {n for n, c in after.items() if c["starts"] > 0}
    print(f"  survey (before the run)   {len(found)} of {len(survey['findings'])} not ok in {s1 - s0:.1f}s; the fake fleet broke {len(broke)}: "
          f"{len(found - broke)} false positives, {len(broke - found)} missed")
    print(f"  only broken               {len(started)} containers started: {len(started - broke)} not broken at the start, {len(broke - started)} broken left unstarted")
    post = summary.get("post_flight") or {}
    print(f"  post-flight               {post.get('ok', 'n/a')} of {post.get('containers', 'n/a')} ok")
    sel = rh.get("selection") or {}
    print(f"  rehearsal's survey        {sel.get('found')} not ok ({sel.get('false_positives')} false positives, {sel.get('missed')} missed), {sel.get('restarted')} restarted")
try:
    chaos = json.load(open(f"{work}/chaos.json"))
except Exception:
    chaos = None
kills = [l.split() for l in open(f"{work}/kills.txt").read().splitlines() if l.strip()]
if kills:
    print(f"  kill -9                   {len(kills)} times, at fleet clock " + ", ".join(f"{float(t):.1f}s" for t, _ in kills)
          + f"; then --resume until it ended by itself")
    print(f"  started exactly once      {st['started_once']} of {st['containers']}; more than once {st['started_more_than_once']}, never {st['never_started']}")
if chaos or kills:
    fl = st["faults"]
    print(f"  faults injected           500 before acting {fl['errors_before']}, 500 after acting {fl['errors_after']}, delayed calls {fl['delayed_calls']} "
          f"({fl['delay_ms_total'] / max(fl['delayed_calls'], 1):.1f} ms mean), hung calls {fl['hung_calls']}, cut connections {fl['cut_connections']}, failed starts {fl['failed_starts']}")
    if chaos:
        print(f"  host faults               {chaos['refused']} refused, {chaos['hung']} hung, fleet clock {f(chaos['hosts_from'])}–{f(chaos['hosts_to'])}s")
    # The witness of "one restart per intent": each container's starts (the
    # fleet's count) against the restarts rekindle journaled for it.
    import glob, struct
    intents = {}
    # The journal, or its archive once the run succeeded (NAME.TIME.done).
    for path in glob.glob(f"{work}/state/*.journal") + glob.glob(f"{work}/state/*.done"):
        data = open(path, "rb").read()
        pos = 0
        while pos + 8 <= len(data):
            n = struct.unpack_from("<I", data, pos)[0]
            rec = data[pos + 8: pos + 8 + n]
            pos += 8 + n
            try: r = json.loads(rec)
            except Exception: break
            if r.get("t") == "intent":
                intents[r["id"]] = intents.get(r["id"], 0) + 1
    cs = json.load(open(f"{work}/containers.json"))
    over = [(n, c["starts"], intents.get(c["id"], 0)) for n, c in cs.items() if c["starts"] > intents.get(c["id"], 0)]
    print(f"  starts beyond intents     {len(over)} containers started more often than rekindle journaled a restart for them" + (f" e.g. {over[:5]}" if over else ""))
    print(f"  starts beyond failures    {st['unexplained_starts']} (started more than once plus their own failures: includes rekindle's deliberate retries)")
    failed = summary.get("failed") or []
    named = lambda n: any(n in x for x in failed) or n in (summary.get("reason") or "")
    stopped = [n for n, c in cs.items() if c["state"] != "running"]
    touched = [n for n, c in cs.items() if c["starts"] > 0 and c["health"] != "healthy"]
    print(f"  left stopped              {len(stopped)}, of which not named in the summary {sum(1 for n in stopped if not named(n))}" + (f" e.g. {stopped[:5]}" if stopped else ""))
    print(f"  restarted, not healthy    {len(touched)}, of which not named in the summary {sum(1 for n in touched if not named(n))}")
    print(f"  never restarted           {sum(1 for c in cs.values() if c['starts'] == 0)} (the run {'halted' if summary.get('state') == 'halted' else 'ended'} before them, or their host was out of the plan)")
    if summary.get("reason"):
        print(f"  halt reason               {summary['reason'][:300]}")
    rl = (st.get("relay") or {}).get("queries_per_second") or []
    if chaos and chaos["dns_from"] is not None and chaos["dns_to"] is not None:
        a, b = int(chaos["dns_from"]), int(chaos["dns_to"])
        span = max(b - a, 1)
        before = rl[max(a - span, 0):a]
        during = rl[a:b]
        after = rl[b:]
        rate = lambda xs: sum(xs) / len(xs) if xs else 0.0
        print(f"  DNS outage                fleet clock {a}–{b}s; rekindle's queries (relay) per second: before {rate(before):.2f} "
              f"(max {max(before or [0])}), during {rate(during):.2f} (max {max(during or [0])}), after {rate(after):.2f}")
if __import__("os").environ.get("MEASURE") == "1":
    try:
        pr = json.load(open(f"{work}/proc.json"))
    except Exception:
        pr = None
    hs = st.get("hosts_seen") or {}
    wall = float(end) - float(start)
    starts = st["starts_total"]
    print(f"  scale                     (rekindle's own process, read from /proc; connections as the fake hosts saw them)")
    if pr:
        print(f"  CPU                       {pr['cpu_s']:.1f}s user+sys over {wall:.1f}s wall: {pr['cpu_s'] / wall:.3f} cores; "
              f"{1000 * pr['cpu_s'] / max(starts, 1):.3f} ms per start ({starts} starts)")
        print(f"  memory                    peak RSS {pr['peak_rss_kb'] / 1024:.1f} MB; at most {pr['peak_sockets']} sockets, {pr['peak_threads']} threads")
    print(f"  connections per host      at most {hs.get('max_open_per_host')} open; idle: at most {hs.get('max_idle_per_host')} at one sample, "
          f"at most {hs.get('max_idle_second_per_host')} throughout a second; "
          f"{hs.get('accepted_total')} connection setups in all ({hs.get('accepted_total', 0) / max(st['hosts'] - st['hosts_down'], 1):.1f} per host)")
    # The run, as the hosts saw it: from the first stop call to all healthy.
    s0 = hs.get("first_stop_s")
    run_s = allh - s0 if (s0 is not None and allh is not None) else None
    into_run = lambda t: f"{100 * (t - s0) / run_s:.1f}% into the run" if (t is not None and run_s) else "n/a"
    print(f"  every host's first stop   by {f(hs.get('last_first_stop_s'))}s (fleet clock; first stop {f(s0)}s, all healthy {f(allh)}s): "
          + into_run(hs.get("last_first_stop_s")) + f" ({hs.get('hosts_stopped')} hosts had one)")
    print(f"  every host's first start  by {f(hs.get('last_first_start_s'))}s: "
          + into_run(hs.get("last_first_start_s")) + f" ({hs.get('hosts_started')} hosts had one)")
    print(f"  started exactly once      {st['started_once']} of {st['containers']}; more than once {st['started_more_than_once']} "
          f"(beyond their own failures {st['unexplained_starts']}), never {st['never_started']}")
if run_exit != "0":
    print(f"\n  rekindle run failed (exit {run_exit}); last lines of its stderr:")
    print("".join(open(f"{work}/run.err", errors="replace").readlines()[-15:]))
json.dump({
    "label": label, "pacing": pacing, "run_exit": int(run_exit), "state": summary.get("state"),
    "wall_s": float(end) - float(start), "span_s": span, "lower_bound_s": lb,
    "ratio": span / lb if span and lb else None,
    "unbound_queries": q, "unbound_ratelimited": lim, "ratelimited_share": share,
    "fleet": {k: st[k] for k in ("containers", "hosts", "queries_sent", "answers", "timeouts", "lookups_failed", "healthy", "stuck", "exited",
                                 "never_started", "started_more_than_once", "max_starts", "stop_calls", "start_calls", "restart_calls")},
    "peak_second": max(st["queries_per_second"] or [0]),
    "rehearse": {k: rh.get(k) for k in ("state", "makespan_s", "ratio", "dns_queries", "dns_dropped", "stuck", "stuck_events", "rerestarts")} | {"dropped_share": rshare},
    "budget": budget, "budget_qps": report.get("dns_budget_qps"), "dns_samples": samples, "strain": strains,
    "hosts_seen": st.get("hosts_seen"),
}, open(f"{work}/result.json", "w"))
PY
}

if [ -n "${SWEEP:-}" ]; then
  for f in $SWEEP; do run_once "static-$f" "$f"; done
  run_once adaptive default
  echo
  echo "== rekindle rehearse --sweep (the simulator's frontier, 0.10..1.00)"
  "$BIN/rekindle" rehearse "$work/adaptive/pb.toml" --scenario "$SCENARIO" --sweep --drop-limit "$DROP_LIMIT" --output json \
    >"$work/rehearse-sweep.json" 2>"$work/rehearse-sweep.err" || true
  python3 - "$work" "$DROP_LIMIT" "$SCENARIO" $SWEEP <<'PY'
import json, sys
work, limit, scenario, *fractions = sys.argv[1:]
limit = float(limit)
runs = [json.load(open(f"{work}/static-{x}/result.json")) for x in fractions]
ad = json.load(open(f"{work}/adaptive/result.json"))
f = lambda x, p=1: "n/a" if x is None else f"{x:.{p}f}"
pct = lambda x: "n/a" if x is None else f"{100 * x:.2f}%"
lb = ad["lower_bound_s"]
print()
print(f"Real-path frontier: {scenario} ({ad['fleet']['containers']} containers on {ad['fleet']['hosts']} hosts), lower bound {f(lb)}s")
hdr = f"{'pacing':>12} {'budget':>7} {'exit':>4} {'first→all healthy':>17} {'ratio':>6} {'unbound q':>9} {'ratelimited':>11} {'share':>7} {'stuck':>5} {'started>1':>9} | {'rehearse':>8} {'dropped':>8} {'share':>7}"
print(hdr)
print("-" * len(hdr))
def row(name, r):
    rh = r["rehearse"]
    b = "adapt." if r["pacing"] == "default" and r["budget"] else f(r["budget_qps"], 0)
    print(f"{name:>12} {b:>7} {r['run_exit']:>4} {f(r['span_s']) + 's':>17} {f(r['ratio'], 3):>6} {r['unbound_queries']:>9} {r['unbound_ratelimited']:>11} "
          f"{pct(r['ratelimited_share']):>7} {r['fleet']['stuck']:>5} {r['fleet']['started_more_than_once']:>9} | "
          f"{f(rh['makespan_s']) + 's':>8} {str(rh['dns_dropped']):>8} {pct(rh['dropped_share']):>7}")
for x, r in zip(fractions, runs):
    row(f"static {x}", r)
row("adaptive", ad)
ok = [(x, r) for x, r in zip(fractions, runs)
      if r["run_exit"] == 0 and r["span_s"] is not None and r["fleet"]["stuck"] == 0 and (r["ratelimited_share"] or 0) < limit]
print()
if ok:
    x, best = min(ok, key=lambda p: p[1]["span_s"])
    print(f"best static under {100 * limit:g}% rate-limited: headroom {x}: {f(best['span_s'])}s, {pct(best['ratelimited_share'])} rate-limited")
    if ad["span_s"] is not None:
        print(f"adaptive: {f(ad['span_s'])}s, {pct(ad['ratelimited_share'])} rate-limited; adaptive / best static = {ad['span_s'] / best['span_s']:.3f}")
    else:
        print("adaptive: did not bring every container to healthy")
else:
    print(f"no static budget finished with stuck 0 and under {100 * limit:g}% rate-limited")
    print(f"adaptive: {f(ad['span_s'])}s, {pct(ad['ratelimited_share'])} rate-limited")
try:
    sw = json.load(open(f"{work}/rehearse-sweep.json"))
    b = sw.get("best")
    print(f"rehearsal's best static (rekindle rehearse --sweep, drop limit {100 * limit:g}%): "
          + (f"headroom {b['fraction']:.2f} ({b['budget_qps']:.0f} q/s): makespan {f(b['makespan_s'])}s, {pct(b['dropped_share'])} dropped" if b else "none"))
except Exception as e:
    print(f"rehearse --sweep: {open(f'{work}/rehearse-sweep.err').read()[-300:] or e}")
PY
elif [ -n "${STATIC:-}" ]; then
  run_once "static-$STATIC" "$STATIC"
else
  run_once default default
fi
