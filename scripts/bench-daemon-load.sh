#!/usr/bin/env bash
# Load on the daemon while it rehearses braze-us01: 1,000 status requests/s
# for 30 s on loopback (LOAD_RPS, LOAD_SECONDS to change), p50/p99 latency,
# and the rehearsal's makespan and wall time with and without the load.
# Takes about a minute after the release build. LOAD_TLS=1: both daemons
# serve HTTPS (a certificate made with openssl) and the load verifies it.
# See benches/daemon_load.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench daemon_load
