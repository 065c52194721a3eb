//! `rekindle rehearse` end to end through the binary: the braze-us01
//! figures the engine issue asks for (all simulated, deterministic from the
//! scenario's seed: virtual time, not wall time), the report files, and bad
//! input.

use std::path::Path;
use std::process::{Command, Output};

fn root(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p).to_str().unwrap().to_string()
}

fn rekindle(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle")).args(args).output().unwrap();
    eprintln!("$ rekindle {}\n--- stdout\n{}\n--- stderr\n{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn braze_rehearsal_meets_its_figures_and_beats_the_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let out = rekindle(&[
        "rehearse",
        &root("config/mongo-sharded.toml"),
        "--scenario",
        &root("config/scenarios/braze-us01.toml"),
        "--compare",
        "--output",
        "json",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["total"], 22_200);
    assert_eq!(r["healthy"], 22_200);
    assert_eq!(r["dns_dropped"], 0);
    assert_eq!(r["stuck"], 0);
    assert!(r["dns_queries"].as_u64().unwrap() >= 567_000);
    assert_eq!(r["dns_capacity_qps"], 5000.0);
    assert!(r["dns_peak_qps"].as_u64().is_some());
    let makespan = r["makespan_s"].as_f64().unwrap();
    let lb = r["lower_bound_s"].as_f64().unwrap();
    assert!((lb - 116.4).abs() < 0.01);
    assert!(makespan / lb <= 1.10, "ratio {}", makespan / lb);
    let baselines = r["baselines"].as_array().unwrap();
    let aao = baselines.iter().find(|b| b["policy"] == "all-at-once").unwrap();
    let aao_ms = aao["makespan_s"].as_f64().unwrap_or(7200.0);
    assert!(aao_ms >= 10.0 * makespan, "all-at-once {aao_ms}s vs {makespan}s");
    assert!(aao["dns_dropped"].as_u64().unwrap() > 0 && aao["stuck_events"].as_u64().unwrap() > 0);
    let best = baselines
        .iter()
        .filter(|b| b["policy"].as_str().unwrap().starts_with("fixed-batch"))
        .filter_map(|b| b["makespan_s"].as_f64())
        .fold(f64::INFINITY, f64::min);
    assert!(best >= 3.0 * makespan, "best fixed batch {best}s vs {makespan}s");
    assert_eq!(baselines.len(), 7);
    // The timeline files.
    let md = std::fs::read_to_string(report.join("timeline.md")).unwrap();
    assert!(md.contains("DNS queries per second"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(report.join("timeline.json")).unwrap()).unwrap();
    let per_second: u64 = json["dns_per_second"].as_array().unwrap().iter().map(|q| q.as_u64().unwrap()).sum();
    assert_eq!(per_second, r["dns_queries"].as_u64().unwrap());
}

#[test]
fn a_scenario_with_a_wrong_field_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(root("config/scenarios/smoke.toml")).unwrap().replace("capacity_qps = 40", "capacity_qsp = 40");
    std::fs::write(&bad, text).unwrap();
    let out = rekindle(&["rehearse", &root("config/mongo-sharded.toml"), "--scenario", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:") && stderr.contains("capacity_qsp"), "{stderr}");
}

#[test]
fn a_playbook_whose_roles_match_nothing_restarts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("pb.toml");
    let text = std::fs::read_to_string(root("config/mongo-sharded.toml")).unwrap().replace("\"db.role\"", "\"app.kind\"");
    std::fs::write(&pb, text).unwrap();
    let out = rekindle(&["rehearse", pb.to_str().unwrap(), "--scenario", &root("config/scenarios/smoke.toml")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no container matches any role"), "{stderr}");
}

#[test]
fn a_halted_rehearsal_exits_3_naming_the_containers() {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("failing.toml");
    let text = std::fs::read_to_string(root("config/scenarios/smoke.toml")).unwrap().replace("restart_failure_rate = 0.0", "restart_failure_rate = 0.99");
    std::fs::write(&sc, text).unwrap();
    let out = rekindle(&["rehearse", &root("config/mongo-sharded.toml"), "--scenario", sc.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("halted") && stderr.contains("c00"), "{stderr}");
}
