#!/usr/bin/env bash
# The README's quick start on the local Docker Engine: builds the test image
# (FROM scratch, nothing pulled), makes one sharded cluster of it (3 config
# servers, a shard of 3, 2 routers) labelled rekindle.quickstart=1 on a
# network of its own, shows rekindle's plan for config/quickstart.toml and
# runs it. Everything it made is removed when it ends, even on failure.
#   REKINDLE_BIN=target/debug/rekindle scripts/quickstart.sh   # a binary already built
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${REKINDLE_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet
  BIN=target/release/rekindle
fi
IMAGE=rekindle-dbnode:test
NET=rekindle-quickstart
scripts/build-test-image.sh >/dev/null
state=$(mktemp -d)
cleanup() {
  ids=$(docker ps -aq --filter label=rekindle.quickstart=1)
  # shellcheck disable=SC2086 # one id per word
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  docker network rm "$NET" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT
cleanup
docker network create "$NET" >/dev/null

c=qs
node() { # name role port env...
  local name=$1 role=$2 port=$3; shift 3
  local args=(--label rekindle.quickstart=1 --label "db.role=$role" --label "db.cluster=$c" --env "DBNODE_PORT=$port")
  for e in "$@"; do
    args+=(--env "$e")
    case $e in DBNODE_SET=*) args+=(--label "db.replset=${e#DBNODE_SET=}") ;; esac
  done
  docker run -d --name "$name" --network "$NET" "${args[@]}" "$IMAGE" >/dev/null
}
for i in 0 1 2; do
  primary=(); [ $i = 0 ] && primary=(DBNODE_PRIMARY=1)
  node "$c-cfg-$i" configsvr 27019 DBNODE_SET=$c-cfg "${primary[@]}"
  node "$c-rs00-$i" shard 27018 DBNODE_SET=$c-rs00 "${primary[@]}"
done
shards="$c-cfg=$c-cfg-0:27019,$c-cfg-1:27019,$c-cfg-2:27019;$c-rs00=$c-rs00-0:27018,$c-rs00-1:27018,$c-rs00-2:27018"
for i in 0 1; do
  node "$c-mongos-$i" router 27017 DBNODE_MONGOS=1 "DBNODE_SHARDS=$shards"
done
echo "\$ rekindle plan config/quickstart.toml"
"$BIN" plan config/quickstart.toml
echo
echo "\$ rekindle run config/quickstart.toml --yes"
"$BIN" run config/quickstart.toml --yes --state-dir "$state"
