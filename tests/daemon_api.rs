//! `rekindle daemon` through its HTTP API on an ephemeral loopback port:
//! rehearsals started, followed, paused, resumed and aborted; bad requests
//! refused without changing anything; every mutating call audited.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use crate::common;
use common::daemon::{
    call, control, get_text, start_body, wait_for, wait_state, DaemonProc, TOKEN,
};

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
fn daemon_runs_pauses_resumes_and_aborts_rehearsals() {
    let d = start();
    let (code, v) = call(&d.addr, "GET", "/v1/playbooks", Some(TOKEN), None);
    assert_eq!(code, 200);
    assert!(
        v["playbooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "mongo-sharded"),
        "{v}"
    );

    // The smoke scenario, to its end.
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "smoke")),
    );
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let done = wait_state(&d.addr, &id, &["succeeded", "halted", "aborted", "failed"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["healthy"], done["result"]["total"], "{done}");
    // Its timeline: the page, the JSON, the Markdown; bad format 400, unknown run 404.
    let page = get_text(&d.addr, &format!("/v1/runs/{id}/report"));
    assert!(
        page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
        "{page}"
    );
    assert!(
        page.contains("text/html")
            && page.contains("Rehearsal: mongo-sharded on smoke")
            && page.matches("<svg").count() == 3,
        "{page}"
    );
    let (code, timeline) = call(
        &d.addr,
        "GET",
        &format!("/v1/runs/{id}/report?format=json"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 200, "{timeline}");
    assert_eq!(
        timeline["healthy_per_second"].as_array().unwrap().last(),
        Some(&done["result"]["total"]),
        "{timeline}"
    );
    assert_eq!(
        timeline["wave_spans"].as_array().unwrap().len() as u64,
        timeline["waves"].as_u64().unwrap()
    );
    assert!(
        get_text(&d.addr, &format!("/v1/runs/{id}/report?format=md")).contains("## DNS per second")
    );
    assert_eq!(
        call(
            &d.addr,
            "GET",
            &format!("/v1/runs/{id}/report?format=pdf"),
            Some(TOKEN),
            None
        )
        .0,
        400
    );
    assert_eq!(
        call(&d.addr, "GET", "/v1/runs/r999/report", Some(TOKEN), None).0,
        404
    );

    // braze-us01: pause, a second start refused, resume, to the end.
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "braze-us01")),
    );
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let paused = control(&d.addr, &id, "pause");
    assert_ne!(paused["state"], "succeeded", "{paused}");
    wait_state(&d.addr, &id, &["paused"]);
    let (code, v) = call(
        &d.addr,
        "GET",
        &format!("/v1/runs/{id}/report"),
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 404, "no report before the end: {v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("has not ended"),
        "{v}"
    );
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "smoke")),
    );
    assert_eq!(code, 409, "one active run per playbook: {v}");
    assert_eq!(
        call(
            &d.addr,
            "POST",
            &format!("/v1/runs/{id}/resume"),
            Some(TOKEN),
            None
        )
        .0,
        200
    );
    let done = wait_state(&d.addr, &id, &["succeeded", "halted", "aborted", "failed"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["healthy"], 22_200);

    // Another, aborted.
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "braze-us01")),
    );
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    control(&d.addr, &id, "abort");
    // An abort is final: a pause, a resume or a retune after it is refused
    // (409) and the run ends aborted, with no restart after the abort.
    for action in ["pause", "resume"] {
        let (code, v) = call(
            &d.addr,
            "POST",
            &format!("/v1/runs/{id}/{action}"),
            Some(TOKEN),
            Some(b"{\"reason\":\"test\"}"),
        );
        assert_eq!(code, 409, "{action} after the abort: {v}");
    }
    let (code, v) = call(
        &d.addr,
        "PATCH",
        &format!("/v1/runs/{id}"),
        Some(TOKEN),
        Some(b"{\"dns_budget_qps\": 100}"),
    );
    assert_eq!(code, 409, "retune after the abort: {v}");
    let done = wait_state(&d.addr, &id, &["succeeded", "halted", "aborted", "failed"]);
    assert_eq!(done["state"], "aborted", "{done}");

    let audit = std::fs::read_to_string(d.state.join("audit.log")).unwrap();
    for what in ["start r1", "start r2", "pause r2", "resume r2", "abort r3"] {
        assert!(audit.contains(what), "audit log lacks {what:?}:\n{audit}");
    }
    assert!(audit.contains("game day"));
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

/// Reads a whole SSE stream (HTTP/1.0: no chunking; the stream ends after
/// `run_ended`); returns (id, event name, data) triples.
fn sse(
    addr: &str,
    path: &str,
    last_event_id: Option<u64>,
) -> Vec<(u64, String, serde_json::Value)> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\n"
    );
    if let Some(id) = last_event_id {
        req += &format!("Last-Event-ID: {id}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let (mut id, mut ev, mut data) = (None, String::new(), String::new());
        for line in block.lines() {
            if let Some(x) = line.strip_prefix("id:") {
                id = x.trim().parse().ok();
            } else if let Some(x) = line.strip_prefix("event:") {
                ev = x.trim().to_string();
            } else if let Some(x) = line.strip_prefix("data:") {
                data += x.trim();
            }
        }
        if let Some(id) = id {
            out.push((
                id,
                ev,
                serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            ));
        }
    }
    out
}

#[test]
fn daemon_streams_events_resumably_reports_metrics_and_retunes() {
    let d = start();
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "smoke")),
    );
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // Followed over SSE to the end.
    let all = sse(&d.addr, &format!("/v1/runs/{id}/events"), None);
    let last = all.last().expect("events");
    assert_eq!(last.1, "run_ended", "{last:?}");
    assert_eq!(last.2["state"], "succeeded");
    assert!(all.iter().any(|e| e.1 == "wave_started") && all.iter().any(|e| e.1 == "healthy"));
    // For watchers: the plan's outline before the first wave, and load
    // samples on the run's clock, the last at its end with every container
    // healthy.
    let plan = all
        .iter()
        .position(|e| e.1 == "plan")
        .expect("a plan event");
    let first_wave = all.iter().position(|e| e.1 == "wave_started").unwrap();
    assert!(plan < first_wave, "the plan comes before the first wave");
    let outline = &all[plan].2;
    let waves = outline["waves"].as_array().unwrap();
    let started = all.iter().filter(|e| e.1 == "wave_started").count();
    assert_eq!(
        waves.len(),
        started,
        "every wave of the plan started: {outline}"
    );
    assert!(waves
        .iter()
        .all(|w| w["role"].is_string() && w["containers"].as_u64() > Some(0)));
    assert!(["static", "adaptive"].contains(&outline["pacing"].as_str().unwrap()));
    let loads: Vec<_> = all.iter().filter(|e| e.1 == "load").map(|e| &e.2).collect();
    assert!(loads.len() >= 2, "{loads:?}");
    let at: Vec<f64> = loads.iter().map(|l| l["at_s"].as_f64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    let end = loads.last().unwrap();
    assert_eq!(end["healthy"], outline["containers"], "{end}");
    assert!(end["dns_budget_qps"].as_f64().unwrap() > 0.0, "{end}");
    let ids: Vec<u64> = all.iter().map(|e| e.0).collect();
    assert_eq!(
        ids,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "ids count up from 1"
    );
    // Resumed after event 10: exactly the rest.
    let rest = sse(&d.addr, &format!("/v1/runs/{id}/events"), Some(10));
    assert_eq!(rest.len(), all.len() - 10);
    assert_eq!(rest[0].0, 11);
    assert_eq!(
        rest.iter().map(|e| &e.2).collect::<Vec<_>>(),
        all[10..].iter().map(|e| &e.2).collect::<Vec<_>>()
    );

    // Retune a running braze rehearsal; bad values refused.
    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&start_body("mongo-sharded", "braze-us01")),
    );
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    control(&d.addr, &id, "pause");
    wait_for(
        &d.addr,
        &id,
        Duration::from_secs(60),
        "the engine's start",
        |v| v["status"].is_object(),
    );
    let (code, v) = call(
        &d.addr,
        "PATCH",
        &format!("/v1/runs/{id}"),
        Some(TOKEN),
        Some(b"{\"dns_budget_qps\": -5}"),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        call(
            &d.addr,
            "PATCH",
            &format!("/v1/runs/{id}"),
            None,
            Some(b"{\"dns_budget_qps\": 1000}")
        )
        .0,
        401
    );
    let (code, v) = call(
        &d.addr,
        "PATCH",
        &format!("/v1/runs/{id}"),
        Some(TOKEN),
        Some(b"{\"dns_budget_qps\": 1000, \"reason\": \"resolver busy\"}"),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"]["pace"]["dns_budget_qps"], 1000.0, "{v}");

    // Metrics while one run is paused and one succeeded.
    let text = get_text(&d.addr, "/metrics");
    assert!(
        text.contains("rekindle_runs{state=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(text.contains("rekindle_runs{state=\"paused\"} 1"), "{text}");
    assert!(
        text.contains(&format!(
            "rekindle_run_dns_budget_qps{{run=\"{id}\",playbook=\"mongo-sharded\"}} 1000"
        )),
        "{text}"
    );
    assert!(text.contains("rekindle_run_restarts_total{"), "{text}");
    // Restarts by role and outcome, and wave durations, from the smoke run.
    let smoke_routers = text
        .lines()
        .find(|l| l.starts_with("rekindle_restarts_total{playbook=\"mongo-sharded\",mode=\"rehearse\",role=\"router\",outcome=\"healthy\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        smoke_routers.ends_with(" 4"),
        "smoke has 2 clusters × 2 routers: {smoke_routers}"
    );
    assert!(text.contains("rekindle_wave_duration_seconds_count{playbook=\"mongo-sharded\",mode=\"rehearse\",role=\"configsvr\"}"), "{text}");
    assert!(
        text.contains("# TYPE rekindle_wave_duration_seconds histogram"),
        "{text}"
    );
    call(
        &d.addr,
        "POST",
        &format!("/v1/runs/{id}/abort"),
        Some(TOKEN),
        None,
    );

    // The OpenAPI document served is the one in the repo.
    let (code, v) = call(&d.addr, "GET", "/v1/openapi.json", Some(TOKEN), None);
    assert_eq!(code, 200);
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/docs/openapi.json", env!("CARGO_MANIFEST_DIR")))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v, file);
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

/// `mode: survey` and `only: "broken"` through the API, on a world where
/// the outage broke part of the fleet: the survey counts what the scenario
/// broke, a plan of only what is broken says what it restarts and leaves
/// alone, a rehearsal restarts that and its post-flight finds all ok; a
/// survey with `only` is refused.
#[test]
fn daemon_surveys_and_restarts_only_what_is_broken() {
    let d = start();
    let body = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    let run = |v: serde_json::Value| {
        let (code, r) = call(&d.addr, "POST", "/v1/runs", Some(TOKEN), Some(&body(v)));
        assert_eq!(code, 201, "{r}");
        let id = r["id"].as_str().unwrap().to_string();
        wait_state(&d.addr, &id, &["succeeded", "halted", "aborted", "failed"])
    };
    let survey = run(serde_json::json!({
        "playbook": "mongo-sharded", "mode": "survey", "scenario": "smoke-partial", "reason": "how bad is it"
    }));
    assert_eq!(survey["state"], "succeeded", "{survey}");
    let r = &survey["result"];
    // smoke-partial: 1 + 1 of 6 config servers, 6 of 12 shard members,
    // 2 of 4 routers.
    assert_eq!(r["containers"], 22, "{r}");
    assert_eq!(r["broken"], 10, "{r}");
    assert_eq!(r["not_ok"].as_array().unwrap().len(), 10, "{r}");

    let plan = run(serde_json::json!({
        "playbook": "mongo-sharded", "mode": "plan", "scenario": "smoke-partial", "only": "broken", "reason": "what would it restart"
    }));
    let p = &plan["result"];
    assert_eq!(plan["only"], "broken", "{plan}");
    assert_eq!(
        p["selection"]["sets_without_primary"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{p}"
    );
    assert_eq!(
        p["containers"], 12,
        "the 10 broken and the 2 healthy members of sets without a primary: {p}"
    );
    assert_eq!(p["left_alone"], 10, "{p}");

    let rehearsal = run(serde_json::json!({
        "playbook": "mongo-sharded", "mode": "rehearse", "scenario": "smoke-partial", "only": "broken", "reason": "game day"
    }));
    assert_eq!(rehearsal["state"], "succeeded", "{rehearsal}");
    let sel = &rehearsal["result"]["selection"];
    assert_eq!(sel["restarted"], 12, "{sel}");
    assert_eq!(
        (sel["false_positives"].as_u64(), sel["missed"].as_u64()),
        (Some(0), Some(0)),
        "{sel}"
    );
    assert_eq!(sel["post_flight_ok"], 22, "{sel}");

    let (code, v) = call(
        &d.addr,
        "POST",
        "/v1/runs",
        Some(TOKEN),
        Some(&body(serde_json::json!({
            "playbook": "mongo-sharded", "mode": "survey", "only": "broken", "reason": "x"
        }))),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("only"), "{v}");
}

/// Tokens with roles and an audit of every call: a viewer's token reads
/// and is refused (403) what an operator's may do (201); no token or a
/// wrong one is 401 on every route but /healthz (and /metrics, made public
/// here); a body too large is 413; each refusal and each mutating call is
/// a line of audit.log naming the token's name (never its secret), the
/// remote address, the call and its status. audit.log is 0600 in a 0700
/// state dir. A token file that others may read is refused at start,
/// naming it.
#[test]
fn daemon_tokens_have_roles_and_every_mutating_or_refused_call_is_audited() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let viewer = dir.path().join("viewer.token");
    std::fs::write(&viewer, "viewer-secret-91c2\n").unwrap();
    std::fs::set_permissions(&viewer, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "metrics_public = true\n[playbooks]\nmongo-sharded = \"{root}/config/mongo-sharded.toml\"\n\
             [scenarios]\nsmoke = \"{root}/config/scenarios/smoke.toml\"\n\
             [[tokens]]\nname = \"dashboard\"\nrole = \"viewer\"\nfile = \"viewer.token\"\n\
             [[tokens]]\nname = \"automation\"\nrole = \"operator\"\nenv = \"OPERATOR_TOKEN\"\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let d = DaemonProc::start_env(
        config.to_str().unwrap(),
        Some(&state),
        "127.0.0.1:0",
        None,
        &[("OPERATOR_TOKEN", "operator-secret-5d0e")],
    );
    let addr = d.addr.strip_prefix("http://").unwrap().to_string();
    let (v, o) = (Some("viewer-secret-91c2"), Some("operator-secret-5d0e"));
    let body = start_body("mongo-sharded", "smoke");

    assert_eq!(call(&addr, "GET", "/healthz", None, None).0, 200);
    // The live page holds no data: served without a token, locked to this
    // origin; who a token is comes from /v1/whoami (name, never secret).
    let page = raw_get(&addr, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("content-security-policy: default-src 'self'"),
        "{page}"
    );
    assert!(raw_get(&addr, "/page.js").starts_with("HTTP/1.1 200"));
    assert_eq!(call(&addr, "GET", "/v1/whoami", None, None).0, 401);
    let (code, me) = call(&addr, "GET", "/v1/whoami", v, None);
    assert_eq!(
        (code, &me["name"], &me["role"]),
        (
            200,
            &serde_json::json!("dashboard"),
            &serde_json::json!("viewer")
        ),
        "{me}"
    );
    let (code, me) = call(&addr, "GET", "/v1/whoami", o, None);
    assert_eq!(
        (code, &me["role"]),
        (200, &serde_json::json!("operator")),
        "{me}"
    );
    assert!(!me.to_string().contains("secret"), "{me}");
    // A watched rehearsal's speed: only for rehearsals, above 0.
    for (speed, mode) in [
        ("0", "rehearse"),
        ("-1", "rehearse"),
        ("1e9", "rehearse"),
        ("2", "plan"),
    ] {
        let bad = format!("{{\"playbook\":\"mongo-sharded\",\"mode\":\"{mode}\",\"scenario\":\"smoke\",\"reason\":\"x\",\"speed\":{speed}}}");
        let (code, e) = call(&addr, "POST", "/v1/runs", o, Some(bad.as_bytes()));
        assert_eq!(code, 400, "speed {speed} for {mode}: {e}");
        assert!(e["error"].as_str().unwrap().starts_with("speed:"), "{e}");
    }
    assert_eq!(
        call(&addr, "GET", "/v1/runs", None, None).0,
        401,
        "reads need a token"
    );
    assert_eq!(call(&addr, "GET", "/v1/runs", Some("nope"), None).0, 401);
    assert_eq!(call(&addr, "GET", "/v1/runs", v, None).0, 200);
    assert_eq!(call(&addr, "GET", "/v1/openapi.json", v, None).0, 200);
    assert!(get_metrics_without_token(&addr).starts_with("HTTP/1.0 200"));
    let (code, refused) = call(&addr, "POST", "/v1/runs", v, Some(&body));
    assert_eq!(code, 403, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("dashboard"),
        "{refused}"
    );
    assert_eq!(call(&addr, "POST", "/v1/runs", None, Some(&body)).0, 401);
    let big = vec![b' '; 64 * 1024];
    assert_eq!(call(&addr, "POST", "/v1/runs", o, Some(&big)).0, 413);
    let (code, started) = call(&addr, "POST", "/v1/runs", o, Some(&body));
    assert_eq!(code, 201, "{started}");
    let id = started["id"].as_str().unwrap();
    assert_eq!(
        call(
            &addr,
            "POST",
            &format!("/v1/runs/{id}/pause"),
            v,
            Some(b"{}")
        )
        .0,
        403
    );

    let audit = std::fs::read_to_string(state.join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l.get("status").is_some())
        .collect();
    let has = |who: &str, call: &str, status: u64| {
        lines.iter().any(|l| {
            l["who"] == who
                && l["call"].as_str().unwrap().starts_with(call)
                && l["status"] == status
                && l["remote"].as_str().unwrap().starts_with("127.0.0.1:")
        })
    };
    assert!(has("unauthenticated", "GET /v1/runs", 401), "{audit}");
    assert!(has("dashboard", "POST /v1/runs", 403), "{audit}");
    assert!(has("unauthenticated", "POST /v1/runs", 401), "{audit}");
    assert!(has("automation", "POST /v1/runs", 413), "{audit}");
    assert!(has("automation", "POST /v1/runs", 201), "{audit}");
    assert!(
        has("dashboard", &format!("POST /v1/runs/{id}/pause"), 403),
        "{audit}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["call"] == "GET /v1/runs" && l["status"] == 200),
        "a read that passes is not audited: {audit}"
    );
    assert!(
        !audit.contains("secret-"),
        "no secret in the audit log: {audit}"
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.join("audit.log")), 0o600);
    assert_eq!(mode(&state), 0o700);
    drop(d);

    // A token file others may read: refused at start, naming it.
    std::fs::set_permissions(&viewer, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rekindle"))
        .args([
            "daemon",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir.path().join("state2"))
        .env("OPERATOR_TOKEN", "operator-secret-5d0e")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(viewer.to_str().unwrap()) && stderr.contains("644"),
        "{stderr}"
    );
}

/// `GET /metrics` with no Authorization header at all.
/// A GET without a token: the raw HTTP answer, headers lowercased.
fn raw_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    format!(
        "{}\r\n\r\n{body}",
        head.to_lowercase().replacen("http/1.1", "HTTP/1.1", 1)
    )
}

fn get_metrics_without_token(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// SSE clients that never read: the daemon holds for each at most what its
/// socket takes (the stream is drawn from the run's history only as the
/// socket drains), so 16 of them on a braze-us01 rehearsal (tens of
/// thousands of events each) cost the daemon about what the rehearsal
/// costs without them, and it answers and finishes the run meanwhile.
/// Were each stalled stream buffered, the 16 would hold the run's events
/// 16 times over (hundreds of MB).
#[test]
fn daemon_memory_stays_bounded_with_sse_clients_that_never_read() {
    let d = start();
    let rss_kb = || -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", d.pid()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let rehearse = || {
        let (code, v) = call(
            &d.addr,
            "POST",
            "/v1/runs",
            Some(TOKEN),
            Some(&start_body("mongo-sharded", "braze-us01")),
        );
        assert_eq!(code, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    };
    let finish = |id: &str| {
        let done = wait_for(&d.addr, id, Duration::from_secs(300), "the end", |v| {
            v["ended_at"].is_f64()
        });
        assert_eq!(done["state"], "succeeded", "{done}");
    };
    // Two runs without clients: what one more run's history costs.
    let id = rehearse();
    finish(&id);
    let after_first = rss_kb();
    let id = rehearse();
    finish(&id);
    let after_second = rss_kb();
    // A third with 16 clients that never read its events.
    let id = rehearse();
    // A 4 KiB receive buffer each: what the kernel holds for a client that
    // never reads stays small, so a stream the daemon buffered would show.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stalled: Vec<std::net::TcpStream> = (0..16)
        .map(|_| {
            let s = rt.block_on(async {
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.set_recv_buffer_size(4096).unwrap();
                sock.connect(d.addr.parse().unwrap()).await.unwrap()
            });
            let s = s.into_std().unwrap();
            s.set_nonblocking(false).unwrap();
            let mut w = &s;
            w.write_all(
                format!(
                    "GET /v1/runs/{id}/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
                    d.addr
                )
                .as_bytes(),
            )
            .unwrap();
            s
        })
        .collect();
    finish(&id);
    let with_stalled = rss_kb();
    let one_run = after_second.saturating_sub(after_first);
    let grew = with_stalled.saturating_sub(after_second);
    assert!(
        grew <= one_run + 64 * 1024,
        "16 stalled SSE clients grew the daemon by {grew} kB, one run alone by {one_run} kB (RSS {after_first} → {after_second} → {with_stalled} kB)"
    );
    // And the streams were held, not cut: one read now gets the whole run,
    // far more than its socket's buffers held, to its run_ended.
    let mut s = &stalled[0];
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (mut got, mut tail, mut buf) = (0usize, Vec::new(), vec![0u8; 1 << 16]);
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended before run_ended after {got} bytes");
        got += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.windows(16).any(|w| w == b"event: run_ended") {
            break;
        }
        let keep = tail.len().saturating_sub(32);
        tail.drain(..keep);
    }
    assert!(
        got > 4 << 20,
        "a braze-us01 run's events are MBs, not {got} bytes"
    );
    drop(stalled);
}
