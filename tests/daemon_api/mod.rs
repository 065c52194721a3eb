//! `rekindle daemon` through its HTTP API on an ephemeral loopback port:
//! rehearsals started, followed, paused, resumed and aborted; bad requests
//! refused without changing anything; every mutating call audited.

use crate::common;
use common::daemon::{
    call, control, get_text, start_body, start_run, wait_for, wait_state, DaemonProc, TOKEN,
};
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

mod events;
mod roles;
mod runs;

fn start() -> DaemonProc {
    DaemonProc::start(
        &format!("{}/config/daemon.toml", env!("CARGO_MANIFEST_DIR")),
        None,
    )
}

#[test]
fn daemon_refuses_bad_requests_without_changing_anything() {
    let d = start();
    let body = start_body("mongo-sharded", "smoke");
    assert_eq!(call(&d.addr, "POST", "/v1/runs", None, Some(&body)).0, 401);
    assert_eq!(
        call(
            &d.addr,
            "POST",
            "/v1/runs",
            Some("wrong-token"),
            Some(&body)
        )
        .0,
        401
    );
    let huge = vec![b' '; 64 * 1024];
    assert_eq!(
        call(&d.addr, "POST", "/v1/runs", Some(TOKEN), Some(&huge)).0,
        413
    );
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(b"{\"playbook\": "),
    );
    assert_eq!(code, 400, "{v}");
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("no-such-playbook", "smoke")),
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("no-such-playbook"),
        "{v}"
    );
    assert_eq!(
        call(&d.addr, "POST", "/v1/runs/r1/pause", None, None).0,
        401
    );
    let (code, v) = call(&d.addr, "GET", "/v1/runs", Some(TOKEN), None);
    assert_eq!(code, 200);
    assert_eq!(
        v["runs"].as_array().unwrap().len(),
        0,
        "nothing may have started: {v}"
    );
    // Each refused call left its trace, and none is an action.
    let audit = std::fs::read_to_string(d.state.join("audit.log")).unwrap_or_default();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<u64> = lines
        .iter()
        .map(|l| l["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [401, 401, 413, 400, 400, 401], "{audit}");
    assert!(
        lines.iter().all(|l| l.get("what").is_none()),
        "refused calls are not actions: {audit}"
    );
    assert_eq!(call(&d.addr, "GET", "/healthz", None, None).0, 200);
}

#[test]
fn daemon_stops_gracefully_on_sigterm_the_moment_it_listens() {
    // The handlers are in before "listening on": SIGTERM then is a clean
    // stop (exit 0), never the signal's default death.
    for _ in 0..3 {
        let mut d = start();
        assert!(Command::new("kill")
            .args(["-TERM", &d.pid()])
            .status()
            .unwrap()
            .success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = d.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}

#[test]
fn daemon_refuses_to_start_without_a_token() {
    let state = tempfile::tempdir().unwrap();
    let config = format!("{}/config/daemon.toml", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "daemon",
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(state.path())
        .env_remove("REKINDLE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("REKINDLE_TOKEN"));
}

#[test]
fn daemon_config_errors_name_the_file_and_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let pb = format!("{}/config/mongo-sharded.toml", env!("CARGO_MANIFEST_DIR"));
    let cases = [
        (format!("[playbooks]\nx = {pb:?}\n[[webhooks]]\nurl = \"http://127.0.0.1:9/\"\nevents = [\"run_strated\"]\n"), "webhooks[0].events: unknown \"run_strated\""),
        (format!("[playbooks]\nx = {pb:?}\n[[webhooks]]\nurl = \"ftp://h/\"\n"), "webhooks[0].url"),
        ("[playbooks]\nrecovery = \"missing.toml\"\n".to_string(), "playbooks.recovery"),
        (format!("[playbooks]\nx = {pb:?}\n[scenarios]\ngame = \"gone.toml\"\n"), "scenario \"game\""),
        (format!("lisen = \"127.0.0.1:1\"\n[playbooks]\nx = {pb:?}\n"), "unknown field `lisen`"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("d{i}.toml"));
        std::fs::write(&config, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
            .args([
                "daemon",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(dir.path().join("state"))
            .env("REKINDLE_TOKEN", TOKEN)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {stderr}");
        assert!(
            stderr.contains(config.to_str().unwrap()) && stderr.contains(want),
            "case {i}: expected the file and {want:?}: {stderr}"
        );
    }
}

/// `--insecure-no-auth` serves every call without a token: refused on an
/// address other hosts can reach, with exit 2 naming the address.
#[test]
fn daemon_refuses_insecure_no_auth_off_loopback() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/daemon.toml");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "daemon",
            "--config",
            config,
            "--listen",
            "0.0.0.0:0",
            "--insecure-no-auth",
        ])
        .arg("--state-dir")
        .arg(dir.path())
        .env_remove("REKINDLE_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("loopback") && stderr.contains("0.0.0.0:0"),
        "{stderr}"
    );
}
