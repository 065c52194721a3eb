//! Planner benchmarks: building the wave DAG for 100,000 containers (the
//! issue's goal: under 250 ms) with the recovery and the rolling playbooks,
//! and generating the fleet from a scenario.

use criterion::{criterion_group, criterion_main, Criterion};
use rekindle::config::Playbook;
use rekindle::plan::Plan;
use rekindle::scenario::Scenario;
use std::path::Path;
use std::time::Duration;

fn root(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn bench(c: &mut Criterion) {
    let scenario = Scenario::load(&root("benches/scenarios/scale-100k.toml")).unwrap();
    let inv = scenario.fleet().into_inventory();
    assert_eq!(inv.containers.len(), 100_000);
    let mut g = c.benchmark_group("plan_100k");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for pb in ["mongo-sharded", "mongo-rolling"] {
        let playbook = Playbook::load(&root(&format!("config/{pb}.toml"))).unwrap();
        g.bench_function(pb, |b| b.iter(|| Plan::build(&inv, &playbook).unwrap()));
    }
    g.bench_function("fleet_generation", |b| b.iter(|| scenario.fleet()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
