//! The fake fleet (`rekindle-fakefleet`) on the real path: its Docker
//! Engine API through bollard (list with label filters, inspect, restart,
//! stop + start, the events stream), its containers' real DNS queries to a
//! real unbound (whose own counters are the witness), unbound's
//! `ip-ratelimit` dropping a router's burst, and `rekindle run` recovering
//! the smoke scenario's fleet end to end. Every process a test starts is
//! killed by its guard, also when the test fails.

use crate::common;
use bollard::query_parameters::{
    EventsOptionsBuilder, InspectContainerOptions, ListContainersOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use common::fakefleet::{http_get_json, http_post_json, smoke_playbook, zone_names, FakeFleet};
use common::unbound::{unbound_available, Unbound};
use futures_util::StreamExt;
use rekindle::scenario::{ResolverMode, Scenario, SimRole};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

mod engine_api;
mod runs;

const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/scenarios/smoke.toml");

const SMOKE_PARTIAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/scenarios/smoke-partial.toml"
);

const REALPATH_SMALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/scenarios/realpath-small.toml"
);

const REALPATH_4K: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/scenarios/realpath-4k.toml"
);

/// The smoke scenario's fake fleet, its zone served by a real unbound, in
/// a temporary folder. Bound in this order, they drop in reverse: the
/// fleet first, unbound last.
fn smoke_fleet() -> (Scenario, Unbound, tempfile::TempDir, FakeFleet) {
    let scenario = Scenario::load(Path::new(SMOKE)).unwrap();
    let unbound = Unbound::start_zone(&scenario.domain, &zone_names(&scenario), "");
    let dir = tempfile::tempdir().unwrap();
    let ff = FakeFleet::start(Path::new(SMOKE), &unbound.addr(), dir.path());
    (scenario, unbound, dir, ff)
}

/// Polls `f` every 100 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn inspect(d: &Docker, id: &str) -> bollard::models::ContainerState {
    d.inspect_container(id, None::<InspectContainerOptions>)
        .await
        .unwrap()
        .state
        .unwrap()
}

fn health(s: &bollard::models::ContainerState) -> String {
    s.health
        .as_ref()
        .and_then(|h| h.status)
        .map(|x| x.to_string())
        .unwrap_or_default()
}

/// `rekindle run --yes --output json` of playbook `text` (written to
/// `dir/pb.toml`), its journal in `dir/state`.
fn run_json(dir: &Path, text: &str) -> common::Ran {
    let pb = dir.join("pb.toml");
    std::fs::write(&pb, text).unwrap();
    let state = dir.join("state");
    common::rekindle(&[
        "run",
        pb.to_str().unwrap(),
        "--yes",
        "--output",
        "json",
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

/// `rekindle run --yes` of playbook `text` against the fake fleet, which
/// must exit 0; its output and the fleet's stats after it.
fn run_to_success(ff: &FakeFleet, dir: &Path, text: &str) -> (common::Ran, Value) {
    let ran = run_json(dir, text);
    let stats = ff.stats();
    assert_eq!(
        ran.code,
        Some(0),
        "{ran}\nfake fleet: {stats}\n{}",
        ff.log()
    );
    (ran, stats)
}
