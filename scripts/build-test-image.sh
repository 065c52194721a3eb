#!/usr/bin/env bash
# Builds the test image rekindle-dbnode:test (FROM scratch, one static binary)
# on the local Docker Engine. The engine has no registry: nothing is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${REKINDLE_TEST_IMAGE:-rekindle-dbnode:test}
fixture=tests/fixtures/dbnode
RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release \
  --manifest-path "$fixture/Cargo.toml" --target x86_64-unknown-linux-gnu \
  --target-dir "$fixture/target"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$fixture/target/x86_64-unknown-linux-gnu/release/dbnode" "$fixture/Dockerfile" "$ctx/"
if ! DOCKER_BUILDKIT=0 docker build --quiet -t "$IMAGE" "$ctx" >"$ctx/build.log" 2>&1; then cat "$ctx/build.log" >&2; exit 1; fi
echo "built $IMAGE ($(du -h "$ctx/dbnode" | cut -f1) binary)"
