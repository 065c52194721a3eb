//! `rekindle run`'s checks before the first restart, through the binary:
//! the adaptive budget's probe name (here taken from the inventory, as it
//! is without `dns.probe_name`) must resolve through the playbook's
//! resolver — a real unbound — or the run stops there, naming it, with no
//! journal written and nothing restarted.

use crate::common;

use common::unbound::{unbound_available, Unbound};
use std::path::Path;
use std::process::Command;

#[test]
fn run_refuses_a_probe_name_that_does_not_resolve_before_anything_restarts() {
    if !unbound_available("run_refuses_a_probe_name_that_does_not_resolve_before_anything_restarts")
    {
        return;
    }
    let server = Unbound::start("");
    let dir = tempfile::tempdir().unwrap();
    let pb = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mongo-sharded.toml"),
    )
    .unwrap()
        + &format!(
            "\n[resolver]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = \"1s\"\nattempts = 1\n",
            server.port
        );
    let pb_path = dir.path().join("pb.toml");
    std::fs::write(&pb_path, pb).unwrap();
    let inventory = |dns_name: &str| {
        serde_json::json!({ "containers": [{
            "id": "c1", "name": "c0-cfg-0", "host": "h1", "dns_name": dns_name,
            "labels": { "db.role": "configsvr", "db.cluster": "c0", "db.replset": "c0-cfg" }
        }] })
        .to_string()
    };
    let inv_path = dir.path().join("inventory.json");
    std::fs::write(&inv_path, inventory("missing-7.fleet.test")).unwrap();
    let state = dir.path().join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "run",
            pb_path.to_str().unwrap(),
            "--inventory",
            inv_path.to_str().unwrap(),
            "--yes",
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("missing-7.fleet.test")
            && stderr.contains("does not resolve")
            && stderr.contains("dns.probe_name"),
        "{stderr}"
    );
    let journals = std::fs::read_dir(&state).map(|d| d.count()).unwrap_or(0);
    assert_eq!(journals, 0, "no journal before the first restart");
}
