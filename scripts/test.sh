#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need on a
# fresh machine, checks formatting and lints, then runs every test. Safe to
# run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use, each with the binaries (or files) that
# show it is there: unbound (the real DNS server), bsdutils (`script`: a
# terminal for the Ctrl-C test), openssl and python3 (a CA and an HTTPS
# webhook receiver), etcd-server and etcd-client (the real etcd of the HA
# tests, and etcdctl), protobuf-compiler and libprotobuf-dev (the `etcd`
# feature's build generates its gRPC code with protoc), chromium and
# chromium-driver (the live page's browser test, over WebDriver). A package counts as
# missing when one of its binaries is, not by the package database (a
# package removed but not purged, or a binary deleted, still shows there);
# missing ones are (re)installed.
declare -A BINARIES=(
  [unbound]="unbound unbound-control"
  [bsdutils]="script"
  [openssl]="openssl"
  [python3]="python3"
  [etcd-server]="etcd"
  [etcd-client]="etcdctl"
  [protobuf-compiler]="protoc"
  [libprotobuf-dev]="/usr/include/google/protobuf/descriptor.proto"
  [chromium]="/usr/lib/chromium/chromium"
  [chromium-driver]="chromedriver"
)
has() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
  esac
}
missing=()
for p in unbound bsdutils openssl python3 etcd-server etcd-client protobuf-compiler libprotobuf-dev chromium chromium-driver; do
  for b in ${BINARIES[$p]}; do
    if ! has "$b"; then missing+=("$p"); break; fi
  done
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} (a binary of each is missing)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "${missing[@]}" >/dev/null
  for p in "${missing[@]}"; do
    for b in ${BINARIES[$p]}; do
      has "$b" || { echo "installed $p, but $b is still missing" >&2; exit 1; }
    done
  done
fi

# The Docker tests' image (FROM scratch, built here: the engine cannot pull).
# Every container a test starts carries the label rekindle.test; a test
# that nextest terminated (.config/nextest.toml) could not remove its own,
# so they are removed at the end, and any an earlier run left at the start.
# Each call is bounded: an engine that stops answering fails the run here
# instead of holding it.
remove_test_containers() {
  local ids
  ids=$(timeout 60 docker ps -aq --filter label=rekindle.test) || {
    echo "docker ps did not answer within 60 s" >&2
    return 0
  }
  [ -z "$ids" ] && return 0
  echo "== removing $(echo "$ids" | wc -w) containers labelled rekindle.test"
  # shellcheck disable=SC2086
  timeout 120 docker rm -f $ids >/dev/null || echo "docker rm -f did not finish within 120 s" >&2
}
if timeout 60 docker info >/dev/null 2>&1; then
  remove_test_containers
  trap remove_test_containers EXIT
  echo "== building the test image"
  scripts/build-test-image.sh
elif [ "${CI:-}" = "true" ]; then
  echo "CI=true but no Docker Engine answers: the Docker tests cannot run" >&2
  exit 1
else
  echo "== no Docker Engine: the Docker tests will skip"
fi

# Lints before tests: formatting (rustfmt.toml) and clippy with every
# warning an error, on every target.
echo "== cargo fmt --check"
cargo fmt --check
# Every target with the `etcd` feature (the HA tests), the same build the
# tests use.
echo "== cargo clippy --workspace --all-targets --features etcd -- -D warnings"
cargo clippy --workspace --all-targets --features etcd --quiet -- -D warnings

# Every member's tests: rekindle's, and the test bed's (testbed/: the fake
# fleet, whose binary rekindle's real-path tests run; building the test
# bed's own tests builds it, in the same build as theirs).
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --features etcd --no-fail-fast "$@"
else
  cargo test --workspace --features etcd --no-fail-fast "$@"
fi
