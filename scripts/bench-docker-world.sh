#!/usr/bin/env bash
# Benchmark: how the REAL local Docker Engine behaves under the calls rekindle
# makes, so that the simulator and the fake fleet can be calibrated on it.
# Prints figures; asserts nothing. Results and reading: docs/docker-world.md.
#
#   scripts/bench-docker-world.sh
#
# Env (defaults): ROUNDS=3 (rounds per cell, trials per probe),
# CONTAINERS=16 (containers cycled per start level), LEVELS="1 2 4 8 16"
# (calls in flight), SOCK=/var/run/docker.sock.
#
# Every call is one `curl --unix-socket` against Engine API v1.41. A call's
# duration is curl's own %{time_total}; its send time is the wall clock
# ($EPOCHREALTIME) when curl returned, minus that duration (curl's process
# start-up, several ms on a busy box, is outside both). Engine events come from
# one GET /events stream filtered by this run's label (timeNano); a second,
# unfiltered stream of starts counts other users of the engine. Containers
# run a static busybox FROM scratch (no registry), on the default bridge
# network: PID 1 is `sh` that traps TERM (then sleeps $TERM_DELAY, exits 0),
# prints the wall clock once (busybox adjtimex: s + us) to its log, and waits.
set -euo pipefail
export LC_ALL=C
ROUNDS=${ROUNDS:-3}
CONTAINERS=${CONTAINERS:-16}
LEVELS=${LEVELS:-"1 2 4 8 16"}
SOCK=${SOCK:-/var/run/docker.sock}
API=v1.41
IMAGE=rekindle-bench-busybox:test
ID="world-$$-$(date +%s)"
work=$(mktemp -d)
ev_pid=
all_pid=
cleanup() {
  set +e
  [ -n "$ev_pid" ] && kill "$ev_pid" 2>/dev/null
  [ -n "$all_pid" ] && kill "$all_pid" 2>/dev/null
  docker ps -aq --filter "label=rekindle.bench=$ID" | xargs -r docker rm -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the image: busybox FROM scratch, built locally ----------------------
cp /bin/busybox "$work/busybox"
cat >"$work/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV TERM_DELAY=0
ENTRYPOINT ["/bin/busybox", "sh", "-c", "trap 'sleep \"${TERM_DELAY:-0}\"; exit 0' TERM; adjtimex; while :; do sleep 2147483647 & wait $!; done"]
EOF
if ! DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" -f "$work/Dockerfile" "$work" >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  exit 1
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }
mark() { echo "$1 $EPOCHREALTIME $(load)" >>"$work/sections.txt"; } # a section begins
echo "== rekindle docker-world benchmark ($ID)"
echo "date      $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine   $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, kernel $(uname -r)"
echo "engine    Docker $(docker version --format '{{.Server.Version}}'), API $API, storage $(docker info --format '{{.Driver}}'), cgroup $(docker info --format '{{.CgroupDriver}} v{{.CgroupVersion}}')"
echo "load      $(load) (1/5/15 min) at start"
echo "settings  ROUNDS=$ROUNDS CONTAINERS=$CONTAINERS LEVELS=\"$LEVELS\""

# ---- helpers --------------------------------------------------------------
# timed TAG CID METHOD PATH [curl args]: one API call, appended to calls.txt as
# "TAG CID END_S HTTP_CODE TIME_TOTAL_S CURL_RC".
timed() {
  local tag=$1 cid=$2 method=$3 path=$4 out rc end
  shift 4
  out=$(curl -s -o /dev/null -X "$method" -w '%{http_code} %{time_total}' "$@" \
    --unix-socket "$SOCK" "http://localhost/$API$path") && rc=0 || rc=$?
  end=$EPOCHREALTIME
  echo "$tag $cid $end $out $rc" >>"$work/calls.txt"
}
# bulk OP CID...: the same POST on every container at once, untimed.
bulk() {
  local op=$1 id pids=()
  shift
  for id in "$@"; do
    curl -s -o /dev/null -X POST --unix-socket "$SOCK" "http://localhost/$API/containers/$id/$op" &
    pids+=($!)
  done
  if [ ${#pids[@]} -gt 0 ]; then wait "${pids[@]}" || true; fi
}
# run_clients TAG C OP CID...: C clients at once; client i calls OP on
# containers i, i+C, i+2C, ... one after the other (C calls in flight).
run_clients() {
  local tag=$1 c=$2 op=$3 i j pids=()
  shift 3
  local ids=("$@")
  for ((i = 0; i < c; i++)); do
    (
      for ((j = i; j < ${#ids[@]}; j += c)); do
        timed "$tag" "${ids[j]}" POST "/containers/${ids[j]}/$op"
      done
    ) &
    pids+=($!)
  done
  wait "${pids[@]}" || true
}
# poll CID FILE SECONDS: GET /containers/CID/json every 200 ms, appending
# "T_SEND_US T_END_US {State}"; ends 2 polls after "exited", or after SECONDS.
poll() {
  local cid=$1 file=$2 t0 t1 body st after=-1 rem
  local until=$((${EPOCHREALTIME/./} + $3 * 1000000))
  while :; do
    t0=${EPOCHREALTIME/./}
    body=$(curl -s --unix-socket "$SOCK" "http://localhost/$API/containers/$cid/json") || body=
    t1=${EPOCHREALTIME/./}
    st=${body#*\"State\":\{}
    st=${st%%\}*}
    echo "$t0 $t1 {$st}" >>"$file"
    if [[ $st == *'"Status":"exited"'* ]] && [ "$after" -lt 0 ]; then after=2; fi
    if [ "$after" -eq 0 ] || [ "$t1" -gt "$until" ]; then break; fi
    if [ "$after" -gt 0 ]; then after=$((after - 1)); fi
    rem=$((t0 + 200000 - ${EPOCHREALTIME/./}))
    if [ "$rem" -gt 0 ]; then sleep "$(printf '0.%06d' "$rem")"; fi
  done
}
mk() { # NAME TERM_DELAY: one created (never started) container; prints its id
  docker create --label "rekindle.bench=$ID" -e "TERM_DELAY=$2" --name "$ID-$1" "$IMAGE"
}

# ---- the events stream and the containers ---------------------------------
curl -sN --unix-socket "$SOCK" -G "http://localhost/$API/events" \
  --data-urlencode "filters={\"label\":[\"rekindle.bench=$ID\"],\"type\":[\"container\"]}" \
  >"$work/events.jsonl" &
ev_pid=$!
# A second stream: every container start on the engine, to count other users'.
curl -sN --unix-socket "$SOCK" -G "http://localhost/$API/events" \
  --data-urlencode 'filters={"type":["container"],"event":["start"]}' >"$work/all-starts.jsonl" &
all_pid=$!
S=() D0=() D1=() D2=()
for ((i = 1; i <= CONTAINERS; i++)); do S+=("$(mk "s$i" 0)"); done
for ((i = 1; i <= 16; i++)); do
  D0+=("$(mk "d0-$i" 0)")
  D1+=("$(mk "d1-$i" 1)")
  D2+=("$(mk "d2-$i" 2)")
done
T3=$(mk t3 3)
T4=$(mk t4 4)
T20=$(mk t20 20)
echo "containers $((CONTAINERS + 51)) created"
# Warm-up: every start measured below is of a container that ran and stopped.
bulk start "${S[@]}"
sleep 0.5
bulk "stop?t=10" "${S[@]}"
sleep 0.5

# ---- 1, 2: start calls at 1..16 in flight ----------------------------------
mark starts
for c in $LEVELS; do
  for ((r = 1; r <= ROUNDS; r++)); do
    run_clients "start:c$c" "$c" start "${S[@]}"
    bulk "stop?t=10" "${S[@]}"
    sleep 0.5
  done
done

# ---- 3: stop calls, process exits N s after SIGTERM ----------------------
mark stops
for n in 0 1 2; do
  declare -n pool="D$n"
  for c in 1 4; do
    ids=("${pool[@]:0:$((4 * c))}")
    for ((r = 1; r <= ROUNDS; r++)); do
      bulk start "${ids[@]}"
      sleep 0.5 # the shell has set its trap
      run_clients "stop:n$n:c$c" "$c" "stop?t=10" "${ids[@]}"
    done
  done
  unset -n pool
done

# ---- 4: inspect during a stop (TERM_DELAY=3) ------------------------------
mark inspect
for ((r = 1; r <= ROUNDS; r++)); do
  bulk start "$T3"
  sleep 1
  timed "insp:r$r" "$T3" POST "/containers/$T3/stop?t=10" &
  p=$!
  poll "$T3" "$work/poll-insp:r$r" 12
  wait "$p" || true
done

# ---- 5: a stop whose client hangs up after 1 s ----------------------------
# a: TERM_DELAY=4, t=10 (as asked). The process got its SIGTERM before the
#    hang-up and exits at 4 s whatever the daemon does next.
# b: TERM_DELAY=20, t=3: only a stop still running in the daemon kills it at 3 s.
mark disconnect
for ((r = 1; r <= ROUNDS; r++)); do
  bulk start "$T4" "$T20"
  sleep 1
  timed "disc4:r$r" "$T4" POST "/containers/$T4/stop?t=10" --max-time 1 &
  p=$!
  poll "$T4" "$work/poll-disc4:r$r" 12
  wait "$p" || true
  timed "disc20:r$r" "$T20" POST "/containers/$T20/stop?t=3" --max-time 1 &
  p=$!
  poll "$T20" "$work/poll-disc20:r$r" 8
  wait "$p" || true
  bulk "kill" "$T20"
  curl -s -o /dev/null -X POST --unix-socket "$SOCK" "http://localhost/$API/containers/$T20/wait"
done

# ---- 6: starts while 4 stops (TERM_DELAY=2) are in flight ------------------
mark starts-vs-stops
starters=("${S[@]:0:8}")
stoppers=("${D2[@]:0:4}")
for ((r = 1; r <= ROUNDS; r++)); do
  for id in "${starters[@]}"; do timed "s6base:r$r" "$id" POST "/containers/$id/start"; done
  bulk "stop?t=10" "${starters[@]}"
  bulk start "${stoppers[@]}"
  sleep 1
  pids=()
  for id in "${stoppers[@]}"; do
    timed "s6stop:r$r" "$id" POST "/containers/$id/stop?t=10" &
    pids+=($!)
  done
  sleep 0.2
  for id in "${starters[@]}"; do timed "s6with:r$r" "$id" POST "/containers/$id/start"; done
  wait "${pids[@]}" || true
  bulk "stop?t=10" "${starters[@]}"
  sleep 0.5
done
mark end
sleep 0.5 # the last events reach the stream
for id in "${S[@]}"; do docker logs "$id" >"$work/log-$id" 2>&1 || true; done

# ---- report ----------------------------------------------------------------
python3 - "$work" "$LEVELS" <<'PY'
import calendar, collections, json, math, re, statistics, sys, time
work, levels = sys.argv[1], sys.argv[2].split()
calls = []
for line in open(f"{work}/calls.txt"):
    f = line.split()
    if len(f) < 6:
        print("unparsed call line:", line.strip()); continue
    end, dur = float(f[2]), float(f[4])
    calls.append(dict(tag=f[0], cid=f[1], end=end, dur=dur, send=end - dur, code=f[3], rc=int(f[5])))
ev = collections.defaultdict(list)
for line in open(f"{work}/events.jsonl"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    ev[(e.get("id"), e.get("Action"))].append(e["timeNano"] / 1e9)
def event(c, action):  # the first ACTION event of the call's container from its send on
    ts = [t for t in ev[(c["cid"], action)] if c["send"] - 0.05 <= t <= c["end"] + 5]
    return min(ts) if ts else None
proc = collections.defaultdict(list)  # container -> its processes' first clock reads
for c in {x["cid"] for x in calls}:
    try: text = open(f"{work}/log-{c}").read()
    except OSError: continue
    for a, b in re.findall(r"tv_sec:\s*(\d+)\s+time\.tv_usec:\s*(\d+)", text):
        proc[c].append(int(a) + int(b) / 1e6)
def first_proc(c):
    ts = [t for t in proc[c["cid"]] if c["send"] - 0.05 <= t <= c["end"] + 5]
    return min(ts) if ts else None
def pct(xs, p):
    xs = sorted(xs); return xs[max(0, math.ceil(p * len(xs)) - 1)]
def tagged(prefix): return [c for c in calls if c["tag"].split(":r")[0] == prefix]
def odd(cs): return sum(c["code"] not in ("204",) for c in cs)
def ms(x): return "-" if x is None else f"{x * 1000:.1f}"
def stamp(s):  # RFC 3339 with ns -> epoch s; the zero time -> None
    m = re.match(r"(\d+-\d+-\d+T\d+:\d+:\d+)(\.\d+)?Z$", s or "")
    if not m or s.startswith("0001-"): return None
    return calendar.timegm(time.strptime(m[1], "%Y-%m-%dT%H:%M:%S")) + float(m[2] or 0)

print("\n== 1. POST /containers/{id}/start (container exited), ms; C = calls in flight")
print(f"{'C':>3} {'n':>4} {'median':>8} {'p90':>8} {'max':>8} {'non-204':>8}")
for c in levels:
    cs = tagged(f"start:c{c}"); d = [x["dur"] for x in cs]
    if d: print(f"{c:>3} {len(d):>4} {ms(statistics.median(d)):>8} {ms(pct(d, .9)):>8} {ms(max(d)):>8} {odd(cs):>8}")

def lags(title, find, missing):
    print(title)
    print(f"{'C':>3} {'n':>4} {'lag p50':>8} {'lag p90':>8} {'at p10':>7} {'at p50':>7} {'at p90':>7} {'tail p50':>9} {missing:>9}")
    for c in levels:
        cs = tagged(f"start:c{c}"); lag, at, tail, miss = [], [], [], 0
        for x in cs:
            t = find(x)
            if t is None: miss += 1; continue
            lag.append(t - x["send"]); at.append((t - x["send"]) / x["dur"]); tail.append(x["end"] - t)
        if lag: print(f"{c:>3} {len(lag):>4} {ms(statistics.median(lag)):>8} {ms(pct(lag, .9)):>8} {pct(at, .1):>7.2f} "
                      f"{statistics.median(at):>7.2f} {pct(at, .9):>7.2f} {ms(statistics.median(tail)):>9} {miss:>9}")
        else: print(f"{c:>3} nothing matched ({len(cs)} calls)")
lags("\n== 2. start event (GET /events, timeNano) vs the start call; lag = event - send, ms;\n"
     "   at = lag / call duration (0 = send, 1 = response); tail = response - event, ms",
     lambda x: event(x, "start"), "no event")
lags("\n== 2b. the started process's own first clock read (adjtimex, its 2nd command) vs the start call",
     first_proc, "no read")

print("\n== 3. POST /containers/{id}/stop?t=10, process exits N s after SIGTERM, ms;")
print("   die = the die event - send (median); tail = response - die event (median)")
print(f"{'N':>2} {'C':>3} {'n':>4} {'median':>8} {'p90':>8} {'max':>8} {'die p50':>8} {'tail p50':>9} {'non-204':>8}")
for n in (0, 1, 2):
    for c in (1, 4):
        cs = tagged(f"stop:n{n}:c{c}"); d = [x["dur"] for x in cs]
        if not d: continue
        die = [(x, event(x, "die")) for x in cs]; die = [(x, t) for x, t in die if t is not None]
        dl = [t - x["send"] for x, t in die]; tl = [x["end"] - t for x, t in die]
        print(f"{n:>2} {c:>3} {len(d):>4} {ms(statistics.median(d)):>8} {ms(pct(d, .9)):>8} {ms(max(d)):>8} "
              f"{ms(statistics.median(dl) if dl else None):>8} {ms(statistics.median(tl) if tl else None):>9} {odd(cs):>8}")

def states(prefix, title):
    print(title)
    for x in tagged(prefix):
        r = x["tag"].split(":r")[1]; s0 = x["send"]
        print(f"  trial {r}: stop call {ms(x['dur'])} ms, HTTP {x['code']}, curl exit {x['rc']}")
        seq = []
        for line in open(f"{work}/poll-{x['tag']}"):
            t0, t1, st = line.split(" ", 2)
            try: st = json.loads(st)
            except ValueError: st = {}
            key = (st.get("Status"), st.get("Running"), st.get("StartedAt"), st.get("FinishedAt"), st.get("ExitCode"))
            t = int(t0) / 1e6 - s0
            if seq and seq[-1][0] == key: seq[-1][2] = t
            else: seq.append([key, t, t])
        for (status, running, started, finished, code), a, b in seq:
            sa, fa = stamp(started), stamp(finished)
            print(f"    {ms(a):>8} .. {ms(b):>8} ms  {status!s:<8} Running={running!s:<5} "
                  f"StartedAt={'zero' if sa is None else ms(sa - s0) + ' ms'}  "
                  f"FinishedAt={'zero' if fa is None else ms(fa - s0) + ' ms'}  ExitCode={code}")
states("insp", "\n== 4. GET /containers/{id}/json every 200 ms during stop?t=10 of a TERM_DELAY=3 process\n"
       "   (times relative to the stop call's send; 'a .. b' = first .. last poll sent with that state)")
states("disc4", "\n== 5a. stop?t=10 sent with curl --max-time 1 (client hangs up at 1 s), TERM_DELAY=4")
states("disc20", "\n== 5b. stop?t=3 sent with curl --max-time 1, TERM_DELAY=20: killed at ~3 s (137) only if\n"
       "   the daemon goes on with the stop after its client left; polled for 8 s, then killed")

print("\n== 6. start calls (one at a time) with and without 4 stops of TERM_DELAY=2 processes in flight, ms")
win = {}
for x in tagged("s6stop"):
    r = x["tag"]; w = win.setdefault(r, [x["send"], x["end"]]); w[0] = min(w[0], x["send"]); w[1] = max(w[1], x["end"])
inside, outside = [], []
for x in tagged("s6with"):
    w = win.get(x["tag"].replace("s6with", "s6stop"))
    (inside if w and w[0] <= x["send"] and x["end"] <= w[1] else outside).append(x)
rows = [("no stops in flight", tagged("s6base")), ("4 stops in flight (whole call)", inside),
        ("after the stops (same phase)", outside), ("the 4 stops themselves", tagged("s6stop"))]
print(f"  {'':<32} {'n':>4} {'median':>8} {'p90':>8} {'max':>8} {'non-204':>8}")
for name, cs in rows:
    d = [x["dur"] for x in cs]
    if d: print(f"  {name:<32} {len(d):>4} {ms(statistics.median(d)):>8} {ms(pct(d, .9)):>8} {ms(max(d)):>8} {odd(cs):>8}")
    else: print(f"  {name:<32} {0:>4}")

ours = {i for i, _ in ev} | {x["cid"] for x in calls}
other = []
for line in open(f"{work}/all-starts.jsonl"):
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("id") not in ours: other.append(e["timeNano"] / 1e9)
marks = [l.split() for l in open(f"{work}/sections.txt")]
print("\n== the engine and the box during each section: load average (1/5/15 min) at its start,")
print("   and starts of containers that are not this run's (another user of the same engine)")
print(f"  {'section':<16} {'at s':>6} {'load':>17} {'other starts':>13}")
for i, m in enumerate(marks[:-1]):
    a, b = float(m[1]), float(marks[i + 1][1])
    print(f"  {m[0]:<16} {a - float(marks[0][1]):>6.0f} {' '.join(m[2:5]):>17} {sum(a <= t < b for t in other):>13}")
m = marks[-1]; print(f"  {m[0]:<16} {float(m[1]) - float(marks[0][1]):>6.0f} {' '.join(m[2:5]):>17}")
PY

echo
echo "load      $(load) (1/5/15 min) at end"
